//! What the CLI's integration tests share: running the real binary.
#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs the `driftwood` binary with `args` (and no token from this
/// process's environment) and waits for it.
pub fn driftwood(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_driftwood"))
        .args(args)
        .env_remove("DRIFTWOOD_TOKEN")
        .output()
        .expect("run driftwood")
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
