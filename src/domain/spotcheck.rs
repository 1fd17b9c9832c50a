//! Spot-check rules (双随机、一公开): exemptions from the draw (免抽查), evaluated at an
//! as-of date (DOMAIN.md §3, SPEC §3).

use serde::{Deserialize, Serialize};

use super::{
    records::check_text,
    sampler::{team_seed, Sampler},
    Date, DomainError, EnterpriseStatus, RegionCode,
};

/// Which exemptions apply; each can be switched off in the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

/// An inspector of the law-enforcement inspector directory (执法检查人员名录库).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inspector {
    /// Directory id, 1..=64 characters.
    pub id: String,
    pub name: String,
    /// Law-enforcement certificate number (执法证号).
    pub certificate_number: String,
    /// Home jurisdiction: never assigned to enterprises there.
    pub home_region: RegionCode,
    /// Fields of competence (e.g. "food", "advertising").
    pub fields: Vec<String>,
    pub active: bool,
    /// When stored (Unix milliseconds).
    pub recorded_at_ms: i64,
}

impl Inspector {
    /// Field checks.
    pub fn validate(&self) -> Result<(), DomainError> {
        check_text("inspector.id", &self.id, true, 64)?;
        if self.id.trim() != self.id {
            return Err(DomainError::invalid(
                "inspector.id",
                "no surrounding spaces",
            ));
        }
        check_text("inspector.name", &self.name, true, 100)?;
        check_text(
            "inspector.certificate_number",
            &self.certificate_number,
            true,
            64,
        )?;
        for (i, f) in self.fields.iter().enumerate() {
            check_text(&format!("inspector.fields[{i}]"), f, true, 64)?;
        }
        Ok(())
    }
}

/// One eligible inspector as frozen in an assignment: id and home region.
pub type PoolMember = (String, RegionCode);

/// The team of one enterprise: inspectors (with tickets) in ticket order, and those
/// who were drawn but recused for a declared conflict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    pub uscc: super::Uscc,
    pub region: RegionCode,
    pub inspectors: Vec<(String, String)>,
    pub recused: Vec<String>,
}

/// Draws a team of `size` for an enterprise in `region` from `pool` (active inspectors)
/// with the draw's sampler seed: never from the enterprise's own region; an inspector
/// with a declared conflict steps aside and the next ticket takes the place. `None` if
/// too few inspectors are eligible.
pub fn draw_team(
    draw_seed: &str,
    uscc: super::Uscc,
    region: RegionCode,
    pool: &[PoolMember],
    conflicts: &[String],
    size: usize,
) -> Option<Team> {
    let eligible: Vec<&str> = pool
        .iter()
        .filter(|(_, home)| *home != region)
        .map(|(id, _)| id.as_str())
        .collect();
    let s = Sampler::new(&team_seed(draw_seed, &uscc.to_string()));
    let order = s.sample(eligible.iter().copied(), eligible.len());
    let mut team = Team {
        uscc,
        region,
        inspectors: Vec::new(),
        recused: Vec::new(),
    };
    for (t, id) in order {
        if team.inspectors.len() == size {
            break;
        }
        if conflicts.iter().any(|c| c == id) {
            team.recused.push(id.to_string());
        } else {
            team.inspectors.push((id.to_string(), t.as_string()));
        }
    }
    (team.inspectors.len() == size).then_some(team)
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

    #[test]
    fn teams_avoid_home_region_and_conflicts() {
        let r = |s: &str| RegionCode::parse("r", s).unwrap();
        let pool: Vec<PoolMember> = (0..10)
            .map(|i| {
                (
                    format!("I{i}"),
                    if i < 4 { r("310115") } else { r("310104") },
                )
            })
            .collect();
        let u = crate::domain::Uscc::placeholder();
        let t = draw_team("seed:task", u, r("310115"), &pool, &[], 2).unwrap();
        assert_eq!(t.inspectors.len(), 2);
        assert!(t
            .inspectors
            .iter()
            .all(|(id, _)| id[1..].parse::<u32>().unwrap() >= 4));
        // Recusing the first drawn brings in the next ticket.
        let first = t.inspectors[0].0.clone();
        let t2 = draw_team(
            "seed:task",
            u,
            r("310115"),
            &pool,
            std::slice::from_ref(&first),
            2,
        )
        .unwrap();
        assert_eq!(t2.recused, vec![first]);
        assert_eq!(t2.inspectors[0], t.inspectors[1]);
        // Deterministic.
        assert_eq!(
            draw_team("seed:task", u, r("310115"), &pool, &[], 2).unwrap(),
            t
        );
        // Too few eligible.
        assert!(draw_team("seed:task", u, r("310115"), &pool, &[], 7).is_none());
    }
}
