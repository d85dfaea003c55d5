//! An attribute key `#[column]` does not know is an error at that key.
use driftwood::Table;

#[derive(Table)]
pub struct Todo {
    #[column(primary_key)]
    pub id: i64,
    #[column(indexed)]
    pub title: String,
}

fn main() {}
