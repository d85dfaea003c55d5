//! A foreign key action that SQLite does not have.
use driftwood::Table;

#[derive(Table)]
pub struct Todo {
    #[column(primary_key)]
    pub id: i64,
    #[column(references = "categories(id)", on_delete = "delete")]
    pub category: Option<i64>,
}

fn main() {}
