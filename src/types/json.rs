//! JSON columns (feature `json`): `serde_json::Value` and [`Json<T>`] for any
//! serde type, stored as `TEXT`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ColumnType, FromSql, FromSqlError, SqlArg, SqlType, SqlValue, ToSql, ValueRef};

/// A value of any serde type stored as JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Json<T>(pub T);

fn to_json_text<T: Serialize + ?Sized>(value: &T) -> SqlArg<'static> {
    // Serializing plain data to a string cannot fail except for maps with
    // non-string keys; those store as NULL and fail loudly on read instead.
    match serde_json::to_string(value) {
        Ok(text) => SqlArg::Owned(SqlValue::Text(text)),
        Err(_) => SqlArg::Owned(SqlValue::Null),
    }
}

fn from_json_text<T: DeserializeOwned>(value: ValueRef<'_>) -> Result<T, FromSqlError> {
    match value {
        ValueRef::Text(t) => serde_json::from_str(t).map_err(|e| {
            FromSqlError::mismatch(
                format!("TEXT holding JSON of the field's type ({e})"),
                value,
            )
        }),
        other => Err(FromSqlError::mismatch("TEXT (JSON)", other)),
    }
}

impl<T: Serialize> ToSql for Json<T> {
    fn to_sql(&self) -> SqlArg<'_> {
        to_json_text(&self.0)
    }
}

impl<T: DeserializeOwned> FromSql for Json<T> {
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        from_json_text(value).map(Json)
    }
}

impl<T: Serialize + DeserializeOwned> ColumnType for Json<T> {
    type Base = Self;
    const SQL_TYPE: SqlType = SqlType::Text;
}

impl ToSql for serde_json::Value {
    fn to_sql(&self) -> SqlArg<'_> {
        to_json_text(self)
    }
}

impl FromSql for serde_json::Value {
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        from_json_text(value)
    }
}

impl ColumnType for serde_json::Value {
    type Base = Self;
    const SQL_TYPE: SqlType = SqlType::Text;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_and_reports_bad_text() {
        let v = Json(vec![1, 2, 3]);
        let stored = v.to_sql().into_owned();
        assert_eq!(stored, SqlValue::Text("[1,2,3]".into()));
        assert_eq!(Json::<Vec<i32>>::from_sql(stored.as_ref()), Ok(v));
        let err = Json::<Vec<i32>>::from_sql(ValueRef::Text("{")).unwrap_err();
        assert!(
            err.expected.starts_with("TEXT holding JSON"),
            "{}",
            err.expected
        );
    }
}
