//! A table has one fixed set of column types, so generic structs are refused.
use driftwood::Table;

#[derive(Table)]
pub struct Keyed<K> {
    #[column(primary_key)]
    pub key: K,
}

fn main() {}
