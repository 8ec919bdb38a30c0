//! Timestamps read fast from SQLite. SQLite keeps them as text, and diesel reads each
//! by trying its formats in turn through chrono's format parser, which parses the
//! format string itself on every value: a tenth of a list page's CPU time. Ours are
//! all written `YYYY-MM-DD HH:MM:SS[.f]` (diesel's own form); that is read here digit
//! by digit, and anything else still goes to diesel. PostgreSQL's binary timestamps
//! go to diesel unchanged.
//!
//! Models keep `NaiveDateTime` fields and read them through these types with
//! `#[diesel(deserialize_as = Ts)]` (or `OptTs` for a nullable column).

use chrono::{NaiveDate, NaiveDateTime};
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::pg::{Pg, PgValue};
use diesel::sql_types::{Nullable, Timestamp};
use diesel::sqlite::{Sqlite, SqliteType, SqliteValue};

use super::{MultiBackend, MultiRawValue};

/// A timestamp column's value.
#[derive(Debug, Clone, Copy, FromSqlRow)]
pub struct Ts(pub NaiveDateTime);

/// A nullable timestamp column's value.
#[derive(Debug, Clone, Copy, FromSqlRow)]
pub struct OptTs(pub Option<NaiveDateTime>);

impl From<Ts> for NaiveDateTime {
    fn from(t: Ts) -> Self {
        t.0
    }
}

impl From<OptTs> for Option<NaiveDateTime> {
    fn from(t: OptTs) -> Self {
        t.0
    }
}

impl FromSql<Timestamp, Sqlite> for Ts {
    fn from_sql(mut value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        if value.value_type() == Some(SqliteType::Text)
            && let Some(at) = plain_timestamp(value.read_text().as_bytes())
        {
            return Ok(Ts(at));
        }
        <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value).map(Ts)
    }
}

impl FromSql<Timestamp, Pg> for Ts {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<Timestamp, Pg>>::from_sql(value).map(Ts)
    }
}

impl FromSql<Timestamp, MultiBackend> for Ts {
    fn from_sql(value: MultiRawValue<'_>) -> deserialize::Result<Self> {
        value.from_sql::<Ts, Timestamp>()
    }
}

impl<DB: Backend> FromSql<Nullable<Timestamp>, DB> for OptTs
where
    Ts: FromSql<Timestamp, DB>,
{
    fn from_sql(value: DB::RawValue<'_>) -> deserialize::Result<Self> {
        Ts::from_sql(value).map(|t| OptTs(Some(t.0)))
    }

    fn from_nullable_sql(value: Option<DB::RawValue<'_>>) -> deserialize::Result<Self> {
        value.map_or(Ok(OptTs(None)), Self::from_sql)
    }
}

/// `YYYY-MM-DD HH:MM:SS` with an optional fraction of up to nine digits, or `None`.
fn plain_timestamp(s: &[u8]) -> Option<NaiveDateTime> {
    let digits = |from: usize, to: usize| -> Option<u32> {
        s.get(from..to)?.iter().try_fold(0u32, |n, b| b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0')))
    };
    let punct = [(4, b'-'), (7, b'-'), (10, b' '), (13, b':'), (16, b':')];
    if s.len() < 19 || punct.iter().any(|(i, c)| s[*i] != *c) {
        return None;
    }
    let nanos = match &s[19..] {
        [] => 0,
        [b'.', frac @ ..] if (1..=9).contains(&frac.len()) => digits(20, s.len())? * 10u32.pow(9 - frac.len() as u32),
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(digits(0, 4)? as i32, digits(5, 7)?, digits(8, 10)?)?;
    date.and_hms_nano_opt(digits(11, 13)?, digits(14, 16)?, digits(17, 19)?, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_timestamps_read_digit_by_digit_or_not_at_all() {
        let at = |s: &str| plain_timestamp(s.as_bytes()).map(|t| t.format("%F %T%.f").to_string());
        assert_eq!(at("2026-10-31 16:30:05").as_deref(), Some("2026-10-31 16:30:05"));
        assert_eq!(at("2026-10-31 16:30:05.25").as_deref(), Some("2026-10-31 16:30:05.250"));
        assert_eq!(at("2026-10-31 16:30:05.123456789").as_deref(), Some("2026-10-31 16:30:05.123456789"));
        // Anything else is left to diesel's own reading (which knows more forms).
        for other in [
            "2026-10-31T16:30:05",
            "2026-10-31 16:30",
            "2026-02-30 00:00:00",
            "2026-10-31 16:30:05Z",
            "2026-10-31 16:30:05.",
        ] {
            assert_eq!(at(other), None, "{other}");
        }
        assert_eq!(at("2026-10-31 24:00:00"), None);
        assert_eq!(at("２026-10-31 16:30:05"), None, "multi-byte digits");
    }

    #[test]
    fn a_model_reads_our_timestamps_and_any_other_form_diesel_knows() -> Result<(), Box<dyn std::error::Error>> {
        use diesel::dsl::sql;
        use diesel::prelude::*;
        let mut conn = super::super::DbConn::Sqlite(diesel::sqlite::SqliteConnection::establish(":memory:")?);
        let mut read = |text: &str| -> Result<String, Box<dyn std::error::Error>> {
            let t: Ts = diesel::select(sql::<Timestamp>(text)).get_result(&mut conn)?;
            Ok(t.0.format("%F %T%.f").to_string())
        };
        assert_eq!(read("'2026-10-31 16:30:05.25'")?, "2026-10-31 16:30:05.250");
        // Not our form: diesel's reading still takes it.
        assert_eq!(read("'2026-10-31T16:30:05'")?, "2026-10-31 16:30:05");
        assert!(read("'31/10/2026'").is_err());
        let none: OptTs = diesel::select(sql::<Nullable<Timestamp>>("NULL")).get_result(&mut conn)?;
        assert!(none.0.is_none());
        let some: OptTs = diesel::select(sql::<Nullable<Timestamp>>("'2026-10-31 16:30:05'")).get_result(&mut conn)?;
        assert_eq!(some.0.map(|t| t.to_string()).as_deref(), Some("2026-10-31 16:30:05"));
        Ok(())
    }
}
