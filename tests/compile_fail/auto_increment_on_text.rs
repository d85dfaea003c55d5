//! `auto_increment` on a type that is recognisably not an integer.
use driftwood::Table;

#[derive(Table)]
pub struct Todo {
    #[column(primary_key, auto_increment)]
    pub id: String,
}

fn main() {}
