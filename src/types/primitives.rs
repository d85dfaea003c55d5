//! [`ToSql`], [`FromSql`] and [`ColumnType`] for Rust's primitive types:
//! integers, `bool`, floats, strings and byte vectors.

use super::{ColumnType, FromSql, FromSqlError, SqlArg, SqlType, ToSql, ValueRef};

/// Integers that fit an `i64` losslessly are stored as `INTEGER`; reading
/// checks the range so an out-of-range cell is an error, not a wrap-around.
macro_rules! integer_column {
    ($($ty:ty),*) => {$(
        impl ToSql for $ty {
            #[inline]
            fn to_sql(&self) -> SqlArg<'_> {
                SqlArg::Borrowed(ValueRef::Integer(i64::from(*self)))
            }
        }

        impl FromSql for $ty {
            #[inline]
            fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
                match value {
                    ValueRef::Integer(i) => <$ty>::try_from(i).map_err(|_| {
                        FromSqlError::mismatch(concat!("INTEGER in the range of ", stringify!($ty)), value)
                    }),
                    other => Err(FromSqlError::mismatch("INTEGER", other)),
                }
            }
        }

        impl ColumnType for $ty {
            type Base = Self;
            const SQL_TYPE: SqlType = SqlType::Integer;
        }
    )*};
}

integer_column!(i8, i16, i32, i64, u8, u16, u32);

impl ToSql for bool {
    #[inline]
    fn to_sql(&self) -> SqlArg<'_> {
        SqlArg::Borrowed(ValueRef::Integer(i64::from(*self)))
    }
}

impl FromSql for bool {
    #[inline]
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        match value {
            ValueRef::Integer(0) => Ok(false),
            ValueRef::Integer(1) => Ok(true),
            other => Err(FromSqlError::mismatch("INTEGER 0 or 1 (bool)", other)),
        }
    }
}

impl ColumnType for bool {
    type Base = Self;
    const SQL_TYPE: SqlType = SqlType::Integer;
    fn check_constraint(column: &str) -> Option<String> {
        Some(format!("{column} IN (0, 1)"))
    }
}

impl ToSql for f64 {
    #[inline]
    fn to_sql(&self) -> SqlArg<'_> {
        SqlArg::Borrowed(ValueRef::Real(*self))
    }
}

impl FromSql for f64 {
    #[inline]
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        match value {
            ValueRef::Real(r) => Ok(r),
            // SQLite stores a REAL with an integral value as INTEGER in some
            // cases (e.g. columns without REAL affinity); reading it back as a
            // float is lossless for the values such columns hold.
            ValueRef::Integer(i) => Ok(i as f64),
            other => Err(FromSqlError::mismatch("REAL", other)),
        }
    }
}

impl ColumnType for f64 {
    type Base = Self;
    const SQL_TYPE: SqlType = SqlType::Real;
}

impl ToSql for f32 {
    #[inline]
    fn to_sql(&self) -> SqlArg<'_> {
        SqlArg::Borrowed(ValueRef::Real(f64::from(*self)))
    }
}

impl FromSql for f32 {
    #[inline]
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        f64::from_sql(value).map(|v| v as f32)
    }
}

impl ColumnType for f32 {
    type Base = Self;
    const SQL_TYPE: SqlType = SqlType::Real;
}

impl ToSql for str {
    #[inline]
    fn to_sql(&self) -> SqlArg<'_> {
        SqlArg::Borrowed(ValueRef::Text(self))
    }
}

impl ToSql for String {
    #[inline]
    fn to_sql(&self) -> SqlArg<'_> {
        SqlArg::Borrowed(ValueRef::Text(self))
    }
}

impl FromSql for String {
    #[inline]
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        match value {
            ValueRef::Text(t) => Ok(t.to_owned()),
            other => Err(FromSqlError::mismatch("TEXT", other)),
        }
    }
}

impl ColumnType for String {
    type Base = Self;
    const SQL_TYPE: SqlType = SqlType::Text;
}

impl ToSql for [u8] {
    #[inline]
    fn to_sql(&self) -> SqlArg<'_> {
        SqlArg::Borrowed(ValueRef::Blob(self))
    }
}

impl ToSql for Vec<u8> {
    #[inline]
    fn to_sql(&self) -> SqlArg<'_> {
        SqlArg::Borrowed(ValueRef::Blob(self))
    }
}

impl FromSql for Vec<u8> {
    #[inline]
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        match value {
            ValueRef::Blob(b) => Ok(b.to_vec()),
            other => Err(FromSqlError::mismatch("BLOB", other)),
        }
    }
}

impl ColumnType for Vec<u8> {
    type Base = Self;
    const SQL_TYPE: SqlType = SqlType::Blob;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_check_their_range() {
        assert_eq!(i32::from_sql(ValueRef::Integer(7)), Ok(7));
        let err = i32::from_sql(ValueRef::Integer(i64::MAX)).unwrap_err();
        assert_eq!(err.expected, "INTEGER in the range of i32");
        assert_eq!(err.found, format!("INTEGER {}", i64::MAX));
    }

    #[test]
    fn bool_accepts_only_zero_and_one() {
        assert_eq!(bool::from_sql(ValueRef::Integer(1)), Ok(true));
        let err = bool::from_sql(ValueRef::Integer(2)).unwrap_err();
        assert_eq!(err.found, "INTEGER 2");
        assert_eq!(
            bool::check_constraint("\"done\"").unwrap(),
            "\"done\" IN (0, 1)"
        );
    }

    #[test]
    fn text_mismatch_names_the_value() {
        let err = String::from_sql(ValueRef::Integer(3)).unwrap_err();
        assert_eq!(
            (err.expected.as_str(), err.found.as_str()),
            ("TEXT", "INTEGER 3")
        );
        let err = i64::from_sql(ValueRef::Text("abc")).unwrap_err();
        assert_eq!(err.found, "TEXT 'abc'");
    }
}
