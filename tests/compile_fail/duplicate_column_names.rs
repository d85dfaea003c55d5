//! Two fields mapping to the same SQL column name (case-insensitively).
use driftwood::Table;

#[derive(Table)]
pub struct Todo {
    #[column(primary_key)]
    pub id: i64,
    pub body: String,
    #[column(name = "Body")]
    pub content: String,
}

fn main() {}
