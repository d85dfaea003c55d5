//! A tuple struct has no field names to name its columns after.
use driftwood::Table;

#[derive(Table)]
pub struct Pair(i64, String);

fn main() {}
