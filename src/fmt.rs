//! Display helpers used by every template: money in đồng, times in Asia/Ho_Chi_Minh,
//! relative ages. Values are stored in UTC; only display converts. And text composed
//! to NFC, as it is stored.

use std::borrow::Cow;
use std::fmt;

use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Asia::Ho_Chi_Minh;

/// The business timezone: every date boundary and every displayed time uses it.
pub const TZ: chrono_tz::Tz = Ho_Chi_Minh;

/// Whole đồng, shown as `1.234.567 đ`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Money(pub i64);

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} đ", Count(self.0))
    }
}

/// A whole number with Vietnamese thousands dots: `20.000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count(pub i64);

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.unsigned_abs().to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 2);
        if self.0 < 0 {
            out.push('-');
        }
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push('.');
            }
            out.push(ch);
        }
        f.write_str(&out)
    }
}

/// A UTC timestamp shown in local time as `24/11/2026 18:30`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime(pub NaiveDateTime);

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Fields, not `format("%d/%m/%Y %H:%M")`: chrono parses a format string anew on
        // every call, and a list page shows a time on every row.
        let l = local_time(self.0);
        write!(f, "{:02}/{:02}/{:04} {:02}:{:02}", l.day(), l.month(), l.year(), l.hour(), l.minute())
    }
}

/// A calendar date shown as `24/11/2026`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalDate(pub NaiveDate);

impl fmt::Display for LocalDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}/{:02}/{:04}", self.0.day(), self.0.month(), self.0.year())
    }
}

/// "vừa xong", "5 phút trước", "3 ngày trước"... relative to `now` (both UTC).
pub fn age_between(then: NaiveDateTime, now: NaiveDateTime) -> String {
    let secs = (now - then).num_seconds();
    if secs < 0 {
        return "sắp tới".into();
    }
    match secs {
        0..60 => "vừa xong".into(),
        60..3600 => format!("{} phút trước", secs / 60),
        3600..86_400 => format!("{} giờ trước", secs / 3600),
        86_400..2_592_000 => format!("{} ngày trước", secs / 86_400),
        2_592_000..31_536_000 => format!("{} tháng trước", secs / 2_592_000),
        _ => format!("{} năm trước", secs / 31_536_000),
    }
}

/// A timestamp's age relative to the present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Age(pub NaiveDateTime);

impl fmt::Display for Age {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&age_between(self.0, crate::db::now()))
    }
}

/// The local (Asia/Ho_Chi_Minh) time of a UTC timestamp.
pub fn local_time(utc: NaiveDateTime) -> NaiveDateTime {
    Utc.from_utc_datetime(&utc).with_timezone(&TZ).naive_local()
}

/// The local (Asia/Ho_Chi_Minh) calendar date of a UTC timestamp.
pub fn local_date(utc: NaiveDateTime) -> NaiveDate {
    Utc.from_utc_datetime(&utc).with_timezone(&TZ).date_naive()
}

/// Local midnight of `date` in Asia/Ho_Chi_Minh, as a UTC timestamp (for range filters).
pub fn local_midnight_utc(date: NaiveDate) -> NaiveDateTime {
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    TZ.from_local_datetime(&midnight).earliest().map(|t| t.with_timezone(&Utc).naive_utc()).unwrap_or(midnight)
}

/// `s` composed to NFC. Nearly every text already is (ASCII, or Vietnamese typed on a
/// keyboard that composes), and the quick check costs a fraction of composing: mail
/// ingest spent a seventh of its time composing bodies that were NFC already.
pub fn nfc(s: &str) -> Cow<'_, str> {
    use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};
    if s.is_ascii() || is_nfc_quick(s.chars()) == IsNormalized::Yes {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.nfc().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_composed_and_copied_only_when_it_was_not() {
        // "Phở" with its tone and horn as combining marks, as windows-1258 writes it.
        assert_eq!(nfc("Pho\u{31B}\u{309}"), "Phở");
        assert!(matches!(nfc("Phở bò"), Cow::Borrowed(_)));
        assert!(matches!(nfc("plain"), Cow::Borrowed(_)));
        assert!(matches!(nfc("Pho\u{31B}\u{309}"), Cow::Owned(_)));
    }

    #[test]
    fn money_uses_dots_and_dong() {
        assert_eq!(Money(1_234_567).to_string(), "1.234.567 đ");
        assert_eq!(Money(0).to_string(), "0 đ");
        assert_eq!(Money(999).to_string(), "999 đ");
        assert_eq!(Money(-1000).to_string(), "-1.000 đ");
    }

    #[test]
    fn time_is_shown_in_vietnam() {
        let utc = NaiveDate::from_ymd_opt(2026, 11, 24).and_then(|d| d.and_hms_opt(11, 30, 0)).unwrap_or_default();
        assert_eq!(LocalTime(utc).to_string(), "24/11/2026 18:30");
        // Past local midnight: the next day, with its zeros.
        let late = NaiveDate::from_ymd_opt(2026, 2, 28).and_then(|d| d.and_hms_opt(17, 5, 59)).unwrap_or_default();
        assert_eq!(LocalTime(late).to_string(), "01/03/2026 00:05");
        assert_eq!(LocalDate(late.date()).to_string(), "28/02/2026");
    }

    #[test]
    fn local_midnight_is_seven_hours_earlier_in_utc() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap_or_default();
        assert_eq!(local_midnight_utc(d).to_string(), "2026-10-31 17:00:00");
    }

    #[test]
    fn ages_read_naturally() {
        let now = NaiveDate::from_ymd_opt(2026, 11, 24).and_then(|d| d.and_hms_opt(12, 0, 0)).unwrap_or_default();
        assert_eq!(age_between(now, now), "vừa xong");
        assert_eq!(age_between(now - chrono::Duration::minutes(5), now), "5 phút trước");
        assert_eq!(age_between(now - chrono::Duration::days(3), now), "3 ngày trước");
    }
}
