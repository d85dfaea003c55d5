//! The implementations compiled into the runner itself (driftwood's workspace,
//! driftwood's SQLite). Each is one module implementing
//! [`Implementation`]; this file lists them.
//!
//! To add one (e.g. `driftwood` and `driftwood-server`): write
//! `bench/src/impls/driftwood.rs` with a type implementing
//! [`driftwood_bench_harness::Implementation`] (its doc comment states the
//! rules), declare it below as `#[cfg(feature = "driftwood")] mod driftwood;`
//! and push it in [`in_process`] under the same `cfg` (the feature is on by
//! default; `--no-default-features` builds the runner without the library).
//! Its figures are divided by `rusqlite`'s (same SQLite build).

#[cfg(feature = "driftwood")]
pub mod driftwood;
pub mod rusqlite;

use driftwood_bench_harness::Implementation;

/// The name of the in-process raw-rusqlite baseline.
pub const BASELINE: &str = "rusqlite";

/// Every in-process implementation, in display order; the baseline first.
pub fn in_process() -> Vec<Box<dyn Implementation>> {
    #[cfg_attr(not(feature = "driftwood"), allow(unused_mut))] // only the feature pushes
    let mut all: Vec<Box<dyn Implementation>> =
        vec![Box::new(self::rusqlite::RawRusqlite::new(BASELINE))];
    #[cfg(feature = "driftwood")]
    {
        use self::driftwood::{Driftwood, Mode};
        for mode in [
            Mode::InThread,
            Mode::Server,
            Mode::ServerLoop,
            Mode::ServerQueued,
        ] {
            all.push(Box::new(Driftwood::new(mode)));
        }
    }
    all
}
