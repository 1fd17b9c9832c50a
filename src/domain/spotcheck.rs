//! Spot-check rules (双随机、一公开): exemptions from the draw (免抽查), evaluated at an
//! as-of date (DOMAIN.md §3, SPEC §3).

use serde::{Deserialize, Serialize};

use super::{Date, EnterpriseStatus};

/// Which exemptions apply; each can be switched off in the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExemptionRules {
    /// Suspended (歇业) enterprises are not drawn.
    pub suspended: bool,
    /// Enterprises whose spot checks in the last two years all found no problem (at
    /// least one check) are not drawn.
    pub clean_two_years: bool,
    /// Enterprises already checked this many times this calendar year are not drawn;
    /// 0 switches the rule off.
    pub max_checks_per_year: u32,
}

impl Default for ExemptionRules {
    fn default() -> Self {
        ExemptionRules {
            suspended: true,
            clean_two_years: true,
            max_checks_per_year: 2,
        }
    }
}

/// Why an enterprise is exempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Exemption {
    /// 歇业
    Suspended,
    /// Every check in the last two years found no problem.
    CleanRecentChecks,
    /// Checked the yearly maximum already.
    YearlyLimitReached,
}

impl Exemption {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Exemption::Suspended => "SUSPENDED",
            Exemption::CleanRecentChecks => "NO_PROBLEM_IN_TWO_YEARS",
            Exemption::YearlyLimitReached => "YEARLY_CHECK_LIMIT_REACHED",
        }
    }
}

impl ExemptionRules {
    /// The exemption of an enterprise with `status` and spot checks `checks` (date,
    /// problems found) as of `as_of`, if any. Checks after `as_of` are not yet known.
    pub fn exemption(
        &self,
        status: EnterpriseStatus,
        checks: &[(Date, bool)],
        as_of: Date,
    ) -> Option<Exemption> {
        if self.suspended && status == EnterpriseStatus::Suspended {
            return Some(Exemption::Suspended);
        }
        if self.clean_two_years {
            let from = as_of.add_years_back(2);
            let recent = checks.iter().filter(|(d, _)| *d > from && *d <= as_of);
            let (mut n, mut problems) = (0, false);
            for (_, p) in recent {
                n += 1;
                problems |= *p;
            }
            if n > 0 && !problems {
                return Some(Exemption::CleanRecentChecks);
            }
        }
        if self.max_checks_per_year > 0 {
            let this_year = checks
                .iter()
                .filter(|(d, _)| *d <= as_of && d.year() == as_of.year())
                .count();
            if this_year >= self.max_checks_per_year as usize {
                return Some(Exemption::YearlyLimitReached);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse("d", s).unwrap()
    }

    #[test]
    fn exemptions() {
        let r = ExemptionRules::default();
        let op = EnterpriseStatus::Operating;
        let as_of = d("2026-10-01");
        assert_eq!(r.exemption(op, &[], as_of), None);
        assert_eq!(
            r.exemption(EnterpriseStatus::Suspended, &[], as_of),
            Some(Exemption::Suspended)
        );
        assert_eq!(
            r.exemption(op, &[(d("2025-01-01"), false)], as_of),
            Some(Exemption::CleanRecentChecks)
        );
        // Older than two years: no longer counts.
        assert_eq!(r.exemption(op, &[(d("2024-09-30"), false)], as_of), None);
        // One problem in the window spoils it.
        assert_eq!(
            r.exemption(
                op,
                &[(d("2025-01-01"), false), (d("2026-02-01"), true)],
                as_of
            ),
            None
        );
        // Twice this year (with a problem, so not "clean"): the yearly limit.
        assert_eq!(
            r.exemption(
                op,
                &[(d("2026-02-01"), true), (d("2026-05-01"), false)],
                as_of
            ),
            Some(Exemption::YearlyLimitReached)
        );
        // Checks after as_of are not known yet.
        assert_eq!(r.exemption(op, &[(d("2026-10-02"), false)], as_of), None);
        let off = ExemptionRules {
            suspended: false,
            clean_two_years: false,
            max_checks_per_year: 0,
        };
        assert_eq!(
            off.exemption(
                EnterpriseStatus::Suspended,
                &[(d("2026-02-01"), false)],
                as_of
            ),
            None
        );
    }
}
