//! `uuid::Uuid` columns (feature `uuid`), stored as 16-byte `BLOB`s.

use ::uuid::Uuid;

use super::{ColumnType, FromSql, FromSqlError, SqlArg, SqlType, ToSql, ValueRef};

impl ToSql for Uuid {
    fn to_sql(&self) -> SqlArg<'_> {
        SqlArg::Borrowed(ValueRef::Blob(self.as_bytes()))
    }
}

impl FromSql for Uuid {
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        match value {
            ValueRef::Blob(b) => Uuid::from_slice(b)
                .map_err(|_| FromSqlError::mismatch("BLOB of 16 bytes (uuid)", value)),
            other => Err(FromSqlError::mismatch("BLOB of 16 bytes (uuid)", other)),
        }
    }
}

impl ColumnType for Uuid {
    type Base = Self;
    const SQL_TYPE: SqlType = SqlType::Blob;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_round_trip_as_blobs() {
        let id = Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
        let stored = id.to_sql().into_owned();
        assert_eq!(Uuid::from_sql(stored.as_ref()), Ok(id));
        let err = Uuid::from_sql(ValueRef::Blob(&[1, 2])).unwrap_err();
        assert_eq!(err.found, "BLOB of 2 bytes");
    }
}
