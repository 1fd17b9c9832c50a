//! Working days (工作日) on the PRC public-holiday calendar with make-up working days
//! (调休): a working day is a Monday–Friday that is not a day off, or a listed make-up
//! working day. The built-in calendar covers 2024–2026 (DOMAIN.md §6); a TOML file can
//! replace or extend it (`[[year]] year = 2027, days_off = [...], make_up = [...]`).

use std::collections::BTreeSet;

use chrono::{Datelike, Weekday};
use serde::Deserialize;

use super::{Date, DomainError};

/// The built-in calendar, 2024–2026.
pub const BUILTIN_CALENDAR: &str = r#"
[[year]]
year = 2024
days_off = ["01-01", "02-10..02-17", "04-04..04-06", "05-01..05-05", "06-10", "09-15..09-17", "10-01..10-07"]
make_up = ["02-04", "02-18", "04-07", "04-28", "05-11", "09-14", "09-29", "10-12"]

[[year]]
year = 2025
days_off = ["01-01", "01-28..02-04", "04-04..04-06", "05-01..05-05", "05-31..06-02", "10-01..10-08"]
make_up = ["01-26", "02-08", "04-27", "09-28", "10-11"]

[[year]]
year = 2026
days_off = ["01-01..01-03", "02-15..02-23", "04-04..04-06", "05-01..05-05", "06-19..06-21", "09-25..09-27", "10-01..10-07"]
make_up = ["01-04", "02-14", "02-28", "05-09", "09-20", "10-10"]
"#;

/// A holiday calendar.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkCalendar {
    days_off: BTreeSet<Date>,
    make_up: BTreeSet<Date>,
    years: BTreeSet<i32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    #[serde(default)]
    year: Vec<YearFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YearFile {
    year: i32,
    #[serde(default)]
    days_off: Vec<String>,
    #[serde(default)]
    make_up: Vec<String>,
}

fn day(field: &str, year: i32, md: &str) -> Result<Date, DomainError> {
    Date::parse(field, &format!("{year}-{}", md.trim()))
}

impl WorkCalendar {
    /// The built-in calendar.
    pub fn builtin() -> WorkCalendar {
        WorkCalendar::parse(BUILTIN_CALENDAR)
            .unwrap_or_else(|e| panic!("built-in calendar is invalid: {e}"))
    }

    /// Parses a calendar file; errors name the entry (`year[1].days_off[3]`).
    pub fn parse(text: &str) -> Result<WorkCalendar, DomainError> {
        let f: CalendarFile =
            toml::from_str(text).map_err(|e| DomainError::invalid("calendar", e.message()))?;
        let mut c = WorkCalendar::default();
        for (i, y) in f.year.iter().enumerate() {
            c.years.insert(y.year);
            for (j, s) in y.days_off.iter().enumerate() {
                let field = format!("year[{i}].days_off[{j}]");
                let (a, b) = match s.split_once("..") {
                    Some((a, b)) => (day(&field, y.year, a)?, day(&field, y.year, b)?),
                    None => {
                        let d = day(&field, y.year, s)?;
                        (d, d)
                    }
                };
                if b < a {
                    return Err(DomainError::invalid(field, "range ends before it starts"));
                }
                let mut d = a;
                while d <= b {
                    c.days_off.insert(d);
                    d = d.add_days(1);
                }
            }
            for (j, s) in y.make_up.iter().enumerate() {
                c.make_up
                    .insert(day(&format!("year[{i}].make_up[{j}]"), y.year, s)?);
            }
        }
        Ok(c)
    }

    /// Adds another calendar's years (a file extending the built-in one).
    pub fn merge(&mut self, other: WorkCalendar) {
        for y in &other.years {
            self.days_off.retain(|d| d.year() != *y);
            self.make_up.retain(|d| d.year() != *y);
        }
        self.days_off.extend(other.days_off);
        self.make_up.extend(other.make_up);
        self.years.extend(other.years);
    }

    /// Whether `d` is a working day. Years the calendar does not cover count Monday to
    /// Friday.
    pub fn is_working_day(&self, d: Date) -> bool {
        if self.make_up.contains(&d) {
            return true;
        }
        if self.days_off.contains(&d) {
            return false;
        }
        !matches!(d.naive().weekday(), Weekday::Sat | Weekday::Sun)
    }

    /// The `n`-th working day after `d` (`n` = 0: `d` itself if it is a working day,
    /// else the next one).
    pub fn add_working_days(&self, d: Date, n: u32) -> Date {
        let mut x = d;
        if n == 0 {
            while !self.is_working_day(x) {
                x = x.add_days(1);
            }
            return x;
        }
        let mut left = n;
        while left > 0 {
            x = x.add_days(1);
            if self.is_working_day(x) {
                left -= 1;
            }
        }
        x
    }

    /// Whether a deadline on `d` is an estimate: its year is past the calendar's data,
    /// so its working days were counted Monday to Friday without the year's holidays and
    /// make-up days (issue 14, defect 7). Extend the calendar with `store.calendar_file`.
    pub fn estimated(&self, d: Date) -> bool {
        !self.covers(d.year())
    }

    /// Whether a year is covered by the calendar's data.
    pub fn covers(&self, year: i32) -> bool {
        self.years.contains(&year)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse("d", s).unwrap()
    }

    #[test]
    fn holidays_and_make_up_days() {
        let c = WorkCalendar::builtin();
        assert!(c.covers(2026));
        assert!(!c.is_working_day(d("2026-10-01")), "National Day");
        assert!(c.is_working_day(d("2026-10-10")), "a Saturday make-up day");
        assert!(!c.is_working_day(d("2026-10-11")), "an ordinary Sunday");
        assert!(c.is_working_day(d("2026-09-30")));
        // Wednesday 30 Sep + 1 working day skips the holiday week to Thursday 8 Oct.
        assert_eq!(c.add_working_days(d("2026-09-30"), 1), d("2026-10-08"));
        // Friday 9 Oct + 1 = Saturday 10 Oct (make-up), + 2 = Monday 12 Oct.
        assert_eq!(c.add_working_days(d("2026-10-09"), 1), d("2026-10-10"));
        assert_eq!(c.add_working_days(d("2026-10-09"), 2), d("2026-10-12"));
        // Spring Festival 2025: Monday 27 Jan + 1 = Wednesday 5 Feb.
        assert_eq!(c.add_working_days(d("2025-01-27"), 1), d("2025-02-05"));
        assert_eq!(c.add_working_days(d("2026-10-03"), 0), d("2026-10-08"));
        // An uncovered year: plain weekdays, and a deadline there is flagged as an
        // estimate (issue 14, defect 7): 2027's New Year holiday is not known here.
        assert_eq!(c.add_working_days(d("2030-01-04"), 1), d("2030-01-07"));
        let due = c.add_working_days(d("2026-12-30"), 2);
        assert_eq!(due, d("2027-01-01"));
        assert!(c.estimated(due) && !c.estimated(d("2026-12-31")));
    }

    #[test]
    fn files_extend_and_errors_name_the_entry() {
        let mut c = WorkCalendar::builtin();
        c.merge(WorkCalendar::parse("[[year]]\nyear = 2027\ndays_off = [\"01-01\"]\n").unwrap());
        assert!(!c.is_working_day(d("2027-01-01")));
        assert!(
            !c.estimated(d("2027-01-04")),
            "a covered year is not an estimate"
        );
        assert!(!c.is_working_day(d("2026-10-01")));
        let e = WorkCalendar::parse("[[year]]\nyear = 2027\ndays_off = [\"02-30\"]\n").unwrap_err();
        assert_eq!(e.field, "year[0].days_off[0]");
        let e = WorkCalendar::parse("[[year]]\nyear = 2027\nmake_up = [\"13-01\"]\n").unwrap_err();
        assert_eq!(e.field, "year[0].make_up[0]");
    }
}
