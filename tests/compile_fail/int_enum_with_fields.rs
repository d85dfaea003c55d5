//! An enum stored in one column cannot carry fields.
use driftwood::IntEnum;

#[derive(IntEnum)]
pub enum Shape {
    Point,
    Circle { radius: f64 },
}

fn main() {}
