//! Counting legal periods (期间计算), one convention everywhere.
//!
//! 民法典 (Civil Code) Art. 201: a period counted in years, months or days does not
//! count its first day — it runs from the next day. Art. 202: a period counted in months
//! or years ends on the corresponding day of its last month; without one (31 August + 6
//! months), on the last day of that month. Art. 203: a last day that is a holiday moves
//! to the next working day — applied only where a rule counts working days (the working-
//! day calendar does that). We apply this to every period the rules give in months or
//! years: publicity windows, early-end minimums, list terms, the abnormal-to-serious
//! move, the false-commitment bar. So 3 months of publicity from 15 January 2025 end on
//! 15 April 2025, and 6 months have elapsed from 16 July 2025.
//! Source: 中华人民共和国民法典 Art. 201–203 (DOMAIN.md §5 leaves the choice open \[U\];
//! this is the cited basis, docs/RULES.md).

use super::Date;

/// The last day of a period of `months` months that begins after `start` (the event
/// day, not counted): the corresponding day `months` later, or that month's last day.
pub fn last_day(start: Date, months: u32) -> Date {
    start.add_months(months)
}

/// The first day on which a period of `months` months from `start` has fully elapsed
/// (the day after its last day).
pub fn elapsed_from(start: Date, months: u32) -> Date {
    last_day(start, months).add_days(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse("d", s).unwrap()
    }

    /// Rows cite 民法典 Art. 201 (first day not counted) and Art. 202 (corresponding
    /// day, else month end).
    #[test]
    fn civil_code_counting() {
        for (start, months, last, elapsed) in [
            ("2025-01-15", 3, "2025-04-15", "2025-04-16"), // Art. 201/202
            ("2024-08-31", 6, "2025-02-28", "2025-03-01"), // Art. 202: no 31 Feb → month end
            ("2023-08-31", 6, "2024-02-29", "2024-03-01"), // leap year month end
            ("2024-02-29", 12, "2025-02-28", "2025-03-01"), // 29 Feb + 1 year
            ("2023-05-10", 36, "2026-05-10", "2026-05-11"), // a 3-year list term
            ("2025-12-31", 1, "2026-01-31", "2026-02-01"), // across a year end
        ] {
            assert_eq!(last_day(d(start), months), d(last), "{start} + {months}");
            assert_eq!(
                elapsed_from(d(start), months),
                d(elapsed),
                "{start} + {months}"
            );
        }
    }
}
