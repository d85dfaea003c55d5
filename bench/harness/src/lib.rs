//! Shared core of driftwood's benchmark: the workloads and their seed data, the
//! [`Implementation`] trait every benchmarked library implements, the
//! measurement loop, and the protocol between the runner and peer binaries.
//!
//! It links no SQLite on purpose: Cargo allows one `libsqlite3-sys` per
//! workspace, so each peer library (sqlx, diesel, tokio-rusqlite) lives in its
//! own workspace under `bench/peers/`, and all of them — and the runner in
//! driftwood's workspace — compile this same crate, so every implementation is
//! measured by identical code on identical data.

pub mod data;
pub mod implementation;
pub mod measure;
pub mod protocol;
pub mod workload;

pub use data::{
    Comment, Dataset, ENV_QUERY, Grouped, NewUser, PRAGMAS, Post, SCHEMA, UPDATE_USER_NAME, User,
    association_count, group_associations,
};
pub use implementation::{BenchError, BenchResult, Environment, Implementation, Setup, Target};
pub use measure::{Mode, RoundResult, RunSpec, run_round};
pub use protocol::{BASELINE_PREFIX, ListEntry, peer_main};
pub use workload::{Burst, Op, Plan, Step, Workload};
