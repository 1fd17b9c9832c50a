//! `Date`: a calendar date (Asia/Shanghai), stored as days since 1970-01-01.

use std::fmt;

use chrono::{Datelike, Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use super::DomainError;

/// A calendar date. Serialised as its day number, so it is compact and ordered.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Date(i32);

const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => panic!("epoch"),
};

impl Date {
    /// Earliest date the registry accepts (the PRC's first business registrations).
    pub const MIN: Date = Date(-7305); // 1950-01-01

    /// Parses "YYYY-MM-DD" for `field`.
    pub fn parse(field: &str, s: &str) -> Result<Date, DomainError> {
        let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
            DomainError::invalid(field, format!("{s:?} is not a date of the form YYYY-MM-DD"))
        })?;
        let date = Date::from_naive(d);
        if date < Date::MIN || d.year() > 2200 {
            return Err(DomainError::invalid(field, format!("{s} is out of range")));
        }
        Ok(date)
    }

    /// Parses an optional date: empty means `None`.
    pub fn parse_opt(field: &str, s: &str) -> Result<Option<Date>, DomainError> {
        if s.trim().is_empty() {
            Ok(None)
        } else {
            Date::parse(field, s).map(Some)
        }
    }

    /// From year, month, day; `None` if no such day.
    pub fn ymd(y: i32, m: u32, d: u32) -> Option<Date> {
        NaiveDate::from_ymd_opt(y, m, d).map(Date::from_naive)
    }

    /// Today in Asia/Shanghai (UTC+8, no daylight saving since 1991).
    pub fn today() -> Date {
        let now = chrono::Utc::now() + Duration::hours(8);
        Date::from_naive(now.date_naive())
    }

    fn from_naive(d: NaiveDate) -> Date {
        Date((d - EPOCH).num_days() as i32)
    }

    /// As a chrono date.
    pub fn naive(self) -> NaiveDate {
        EPOCH + Duration::days(i64::from(self.0))
    }

    /// Days since 1970-01-01.
    pub fn days(self) -> i32 {
        self.0
    }

    /// The first instant after this day in Asia/Shanghai (24:00 UTC+8, 16:00 UTC of the
    /// day itself), in Unix milliseconds.
    pub fn end_ms(self) -> i64 {
        (i64::from(self.0) + 1) * 86_400_000 - 8 * 3_600_000
    }

    /// From days since 1970-01-01.
    pub fn from_days(days: i32) -> Date {
        Date(days)
    }

    /// Calendar year.
    pub fn year(self) -> i32 {
        self.naive().year()
    }

    /// This date plus `n` days.
    pub fn add_days(self, n: i32) -> Date {
        Date(self.0 + n)
    }

    /// This date plus `n` calendar months, clamped to the month's last day.
    pub fn add_months(self, n: u32) -> Date {
        let d = self.naive();
        d.checked_add_months(chrono::Months::new(n))
            .map(Date::from_naive)
            .unwrap_or(self)
    }

    /// This date plus `n` years (29 February becomes 28 February).
    pub fn add_years(self, n: u32) -> Date {
        self.add_months(n * 12)
    }

    /// This date minus `n` years (29 February becomes 28 February).
    pub fn add_years_back(self, n: u32) -> Date {
        let d = self.naive();
        d.checked_sub_months(chrono::Months::new(n * 12))
            .map(Date::from_naive)
            .unwrap_or(self)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hand-formatted: chrono's strftime machinery showed up at ~3 % of import time.
        let d = self.naive();
        write!(f, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
    }
}

impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Date({self})")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_day_ends_at_midnight_in_shanghai() {
        // 2026-12-03 ends at 2026-12-03T16:00:00Z.
        let d = Date::parse("d", "2026-12-03").unwrap();
        assert_eq!(d.end_ms(), 1_796_313_600_000);
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_formats() {
        let d = Date::parse("x", "2024-02-29").unwrap();
        assert_eq!(d.to_string(), "2024-02-29");
        assert_eq!(d.add_years(1).to_string(), "2025-02-28");
        assert_eq!(d.add_months(3).to_string(), "2024-05-29");
        assert_eq!(Date::parse("x", "1970-01-01").unwrap().days(), 0);
        let e = Date::parse("penalty.decided_on", "2024-02-30").unwrap_err();
        assert_eq!(e.field, "penalty.decided_on");
        assert!(Date::parse("x", "1900-01-01").is_err());
        assert!(Date::parse("x", "20240101").is_err());
    }

    proptest! {
        #[test]
        fn round_trips(days in -7305i32..80000) {
            let d = Date::from_days(days);
            prop_assert_eq!(Date::parse("x", &d.to_string()).unwrap(), d);
        }
    }
}
