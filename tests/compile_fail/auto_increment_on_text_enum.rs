//! `auto_increment` on a type the macro cannot judge by its name: the
//! column type's `SQL_TYPE` is checked at compile time instead.
use driftwood::{Table, TextEnum};

#[derive(TextEnum)]
pub enum Code {
    A,
    B,
}

#[derive(Table)]
pub struct Coded {
    #[column(primary_key, auto_increment)]
    pub code: Code,
}

fn main() {}
