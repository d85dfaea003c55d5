//! Date and time columns (feature `time`): `OffsetDateTime` as unix seconds
//! in an `INTEGER` column (drift's default), [`IsoDateTime`] as ISO-8601 text
//! (drift's `storeDateTimeValuesAsText`), and `Date` as `YYYY-MM-DD` text.

use ::time::format_description::well_known::Rfc3339;
use ::time::{Date, OffsetDateTime};

use super::{ColumnType, FromSql, FromSqlError, SqlArg, SqlType, SqlValue, ToSql, ValueRef};

impl ToSql for OffsetDateTime {
    fn to_sql(&self) -> SqlArg<'_> {
        SqlArg::Borrowed(ValueRef::Integer(self.unix_timestamp()))
    }
}

impl FromSql for OffsetDateTime {
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        match value {
            ValueRef::Integer(secs) => OffsetDateTime::from_unix_timestamp(secs)
                .map_err(|_| FromSqlError::mismatch("INTEGER unix time within range", value)),
            other => Err(FromSqlError::mismatch("INTEGER (unix seconds)", other)),
        }
    }
}

impl ColumnType for OffsetDateTime {
    type Base = Self;
    const SQL_TYPE: SqlType = SqlType::Integer;
}

/// A timestamp stored as ISO-8601 (RFC 3339) text, which keeps sub-second
/// precision and the UTC offset and sorts correctly for a fixed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IsoDateTime(pub OffsetDateTime);

impl ToSql for IsoDateTime {
    fn to_sql(&self) -> SqlArg<'_> {
        let text = self
            .0
            .format(&Rfc3339)
            .unwrap_or_else(|_| self.0.to_string());
        SqlArg::Owned(SqlValue::Text(text))
    }
}

impl FromSql for IsoDateTime {
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        match value {
            ValueRef::Text(t) => OffsetDateTime::parse(t, &Rfc3339)
                .map(IsoDateTime)
                .map_err(|_| FromSqlError::mismatch("TEXT (ISO-8601 date-time)", value)),
            other => Err(FromSqlError::mismatch("TEXT (ISO-8601 date-time)", other)),
        }
    }
}

impl ColumnType for IsoDateTime {
    type Base = Self;
    const SQL_TYPE: SqlType = SqlType::Text;
}

const DATE_FORMAT: &[::time::format_description::FormatItem<'static>] =
    ::time::macros::format_description!("[year]-[month]-[day]");

impl ToSql for Date {
    fn to_sql(&self) -> SqlArg<'_> {
        let text = self
            .format(DATE_FORMAT)
            .unwrap_or_else(|_| self.to_string());
        SqlArg::Owned(SqlValue::Text(text))
    }
}

impl FromSql for Date {
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        match value {
            ValueRef::Text(t) => Date::parse(t, DATE_FORMAT)
                .map_err(|_| FromSqlError::mismatch("TEXT (YYYY-MM-DD date)", value)),
            other => Err(FromSqlError::mismatch("TEXT (YYYY-MM-DD date)", other)),
        }
    }
}

impl ColumnType for Date {
    type Base = Self;
    const SQL_TYPE: SqlType = SqlType::Text;
}

#[cfg(test)]
mod tests {
    use ::time::macros::{date, datetime};

    use super::*;

    #[test]
    fn date_times_round_trip_in_both_encodings() {
        let t = datetime!(2024-05-06 07:08:09 UTC);
        let stored = t.to_sql().into_owned();
        assert_eq!(stored, SqlValue::Integer(1_714_979_289));
        assert_eq!(OffsetDateTime::from_sql(stored.as_ref()), Ok(t));

        let iso = IsoDateTime(datetime!(2024-05-06 07:08:09.5 +02:00));
        let stored = iso.to_sql().into_owned();
        assert_eq!(stored, SqlValue::Text("2024-05-06T07:08:09.5+02:00".into()));
        assert_eq!(IsoDateTime::from_sql(stored.as_ref()), Ok(iso));

        let d = date!(2024 - 02 - 29);
        assert_eq!(d.to_sql().into_owned(), SqlValue::Text("2024-02-29".into()));
        assert_eq!(Date::from_sql(ValueRef::Text("2024-02-29")), Ok(d));
    }

    #[test]
    fn malformed_dates_are_mismatches() {
        let err = Date::from_sql(ValueRef::Text("yesterday")).unwrap_err();
        assert_eq!(err.expected, "TEXT (YYYY-MM-DD date)");
        assert_eq!(err.found, "TEXT 'yesterday'");
    }
}
