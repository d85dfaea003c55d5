//! Length limits are inclusive ranges; a half-open range is refused with
//! the inclusive spelling to use instead.
use driftwood::Table;

#[derive(Table)]
pub struct Todo {
    #[column(primary_key)]
    pub id: i64,
    #[column(length = 6..10)]
    pub title: String,
}

fn main() {}
