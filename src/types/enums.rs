//! Enums stored as integers or as text (drift's `intEnum` and `textEnum`).
//!
//! `#[derive(IntEnum)]` stores a fieldless enum as its variant index,
//! `#[derive(TextEnum)]` as its variant name; both derives implement the
//! traits below and the value conversions. Text is the safer choice when
//! variants may be reordered later.

/// A fieldless enum stored as its variant's index (`INTEGER`).
pub trait IntEnum: Sized {
    /// The stored index of this variant.
    fn to_index(&self) -> i64;
    /// The variant stored as `index`, if there is one.
    fn from_index(index: i64) -> Option<Self>;
}

/// A fieldless enum stored as its variant's name (`TEXT`).
pub trait TextEnum: Sized {
    /// The stored name of this variant.
    fn to_name(&self) -> &'static str;
    /// The variant stored as `name`, if there is one.
    fn from_name(name: &str) -> Option<Self>;
}
