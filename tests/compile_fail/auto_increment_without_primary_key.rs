//! `auto_increment` only makes sense on the primary key column.
use driftwood::Table;

#[derive(Table)]
pub struct Todo {
    #[column(auto_increment)]
    pub id: i64,
    pub title: String,
}

fn main() {}
