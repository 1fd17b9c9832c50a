//! The one clock (时钟): what "today" (Asia/Shanghai) and "now" are for the service. The
//! store carries one ([`crate::store::StoreOptions::clock`]); a write reads it once, when
//! it is submitted (its `Stamp`), and a request's default as-of date is read from it, so a
//! test sets the date instead of depending on the day it runs.

use super::Date;

/// The clock: the system's, or a fixed instant (tests, replays).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    /// System time; today in Asia/Shanghai (UTC+8, no daylight saving since 1991).
    #[default]
    System,
    /// Always this day and this instant (Unix milliseconds).
    Fixed { today: Date, now_ms: i64 },
}

impl Clock {
    /// A clock standing at noon (Asia/Shanghai) of `today`.
    pub fn fixed(today: Date) -> Clock {
        let days = i64::from(today.days());
        Clock::Fixed {
            today,
            now_ms: days * 86_400_000 + 4 * 3_600_000,
        }
    }

    /// Today in Asia/Shanghai.
    pub fn today(&self) -> Date {
        match self {
            Clock::System => Date::today(),
            Clock::Fixed { today, .. } => *today,
        }
    }

    /// Now, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            Clock::Fixed { now_ms, .. } => *now_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_stands_still_on_its_day() {
        let d = Date::parse("d", "2025-03-03").unwrap();
        let c = Clock::fixed(d);
        assert_eq!(c.today(), d);
        // Noon in Shanghai is 04:00 UTC of the same day.
        let ms = c.now_ms();
        assert_eq!(ms % 86_400_000, 4 * 3_600_000);
        assert_eq!(c.now_ms(), ms);
        assert!(Clock::System.now_ms() > ms);
    }
}
