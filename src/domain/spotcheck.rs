//! Spot-check rules (双随机、一公开): exemptions from the draw (免抽查), evaluated at an
//! as-of date (DOMAIN.md §3, SPEC.md §3 SpotCheckService).

use serde::{Deserialize, Serialize};

use super::{
    records::check_text,
    ruleset::SamplingPolicy,
    sampler::{team_seed, Sampler},
    Date, DomainError, EnterpriseStatus, RegionCode, RiskClass,
};

/// A stratum of a plan as asked, with its frozen population.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AskedStratum {
    /// Its index in the request (`strata[i]`).
    pub index: usize,
    pub class: RiskClass,
    pub ratio: Option<f64>,
    pub count: Option<u64>,
    pub population: u64,
}

impl AskedStratum {
    /// The share of its population the stratum draws (the ratio, or count / population);
    /// `None` for an empty population asked by count.
    fn share(&self) -> Option<f64> {
        match (self.ratio, self.count) {
            (Some(r), _) => Some(r),
            (None, Some(c)) if self.population > 0 => {
                Some((c as f64 / self.population as f64).min(1.0))
            }
            _ => None,
        }
    }
}

/// Checks a plan against the per-class sampling policy of the rules in force
/// (class-based supervision, 国市监信发〔2022〕6号; DOMAIN.md §3): each ratio asked lies
/// in its class's range; the share drawn does not fall as risk rises (A ≤ B ≤ C ≤ D among
/// the strata present); no class is skipped between two present ones. A non-empty
/// `override_reason` waives these checks (the plan and the audit trail record it).
/// INVALID_ARGUMENT names the stratum.
pub fn check_sampling(
    policy: &SamplingPolicy,
    strata: &[AskedStratum],
    override_reason: &str,
) -> Result<(), DomainError> {
    if !override_reason.trim().is_empty() {
        return Ok(());
    }
    let hint = "; give override_reason to plan it anyway";
    for s in strata {
        let (min, max, _) = policy.of(s.class);
        if let Some(r) = s.ratio {
            if r < min || r > max {
                return Err(DomainError::invalid(
                    format!("strata[{}].ratio", s.index),
                    format!(
                        "{r} is outside class {}'s range [{min}, {max}] (rules sampling.{}_min/max){hint}",
                        s.class,
                        s.class.letter().to_lowercase()
                    ),
                ));
            }
        }
    }
    let mut sorted: Vec<&AskedStratum> = strata.iter().collect();
    sorted.sort_by_key(|s| s.class);
    for pair in sorted.windows(2) {
        let (lo, hi) = (pair[0], pair[1]);
        if hi.class.index() > lo.class.index() + 1 {
            let missing = RiskClass::from_index(lo.class.index() as u8 + 1).unwrap_or(hi.class);
            return Err(DomainError::invalid(
                "strata",
                format!(
                    "class {missing} is missing between class {} and class {} (every class between the lowest and the highest planned is checked){hint}",
                    lo.class, hi.class
                ),
            ));
        }
        if let (Some(a), Some(b)) = (lo.share(), hi.share()) {
            if b + 1e-12 < a {
                return Err(DomainError::invalid(
                    format!(
                        "strata[{}].{}",
                        hi.index,
                        if hi.ratio.is_some() { "ratio" } else { "count" }
                    ),
                    format!(
                        "class {} would draw {b:.4} of its population, less than class {}'s {a:.4}: ratios must rise with risk{hint}",
                        hi.class, lo.class
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Which exemptions apply, and who is never exempt; rules parameters (`exemptions.*`).
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
    /// Classes never exempt (class-based supervision: D is checked strictly).
    pub never_exempt_classes: Vec<RiskClass>,
    /// Enterprises on the serious-illegal or abnormal-operations list at the as-of date
    /// are never exempt.
    pub never_exempt_listed: bool,
}

impl Default for ExemptionRules {
    fn default() -> Self {
        ExemptionRules {
            suspended: true,
            clean_two_years: true,
            max_checks_per_year: 2,
            never_exempt_classes: vec![RiskClass::D],
            never_exempt_listed: true,
        }
    }
}

/// What the exemptions read of an enterprise besides its status and class: its spot
/// checks and the spans it was on a list that bars exemption.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpotHistory {
    /// Spot checks: (date, problems found).
    pub checks: Vec<(Date, bool)>,
    /// The [`task_hash`] of each check's task, parallel to `checks`: lets a draw tell,
    /// without reading the dossier, that an enterprise has no result of its task yet.
    pub tasks: Vec<u64>,
    /// Spans on the serious-illegal or abnormal-operations list: (first day, last day;
    /// `None` while open).
    pub listed: Vec<(Date, Option<Date>)>,
}

impl SpotHistory {
    /// From a dossier (listing terms restored).
    pub fn of(d: &super::EnterpriseRecords) -> SpotHistory {
        let listed = d
            .listings
            .iter()
            .filter(|l| {
                matches!(
                    l.kind,
                    super::ListKind::SeriousIllegal | super::ListKind::AbnormalOperations
                )
            })
            .filter_map(|l| {
                let removed = l.removed_on.map(|r| r.add_days(-1));
                let last = match (removed, l.term_ends_on) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                match last {
                    Some(last) if last < l.listed_on => None,
                    last => Some((l.listed_on, last)),
                }
            })
            .collect();
        SpotHistory {
            checks: d
                .inspections
                .iter()
                .map(|i| (i.inspected_on, i.problems_found))
                .collect(),
            tasks: d
                .inspections
                .iter()
                .map(|i| task_hash(&i.task_id))
                .collect(),
            listed,
        }
    }

    /// Whether a result of `task` may be among the checks (a hash match: false means
    /// certainly none).
    pub fn may_have_task(&self, task: &str) -> bool {
        let h = task_hash(task);
        self.tasks.contains(&h)
    }

    /// Whether there is nothing to keep.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty() && self.listed.is_empty()
    }

    /// Whether the enterprise is on a barring list on `day`.
    pub fn listed_on(&self, day: Date) -> bool {
        self.listed
            .iter()
            .any(|(from, last)| *from <= day && last.is_none_or(|l| day <= l))
    }
}

/// A 64-bit hash of a task id (in memory only; collisions only cost a dossier read).
pub fn task_hash(task: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    task.hash(&mut h);
    h.finish()
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
    /// Every exemption, in a fixed order (its index).
    pub const ALL: [Exemption; 3] = [
        Exemption::Suspended,
        Exemption::CleanRecentChecks,
        Exemption::YearlyLimitReached,
    ];

    /// Position in [`Exemption::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

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
    /// The exemption of an enterprise of class `class` with `status` and `history` as of
    /// `as_of`, if any. Checks after `as_of` are not yet known. Class-based supervision
    /// first: a class in `never_exempt_classes`, or (with `never_exempt_listed`) a firm on
    /// the serious-illegal or abnormal-operations list on `as_of`, is never exempt (the
    /// Shanghai exemptions sit beside strict supervision of D; issue 14, defect 4).
    pub fn exemption(
        &self,
        status: EnterpriseStatus,
        class: RiskClass,
        history: &SpotHistory,
        as_of: Date,
    ) -> Option<Exemption> {
        if self.never_exempt_classes.contains(&class)
            || (self.never_exempt_listed && history.listed_on(as_of))
        {
            return None;
        }
        let checks = &history.checks;
        if self.suspended && status == EnterpriseStatus::Suspended {
            return Some(Exemption::Suspended);
        }
        if checks.is_empty() {
            return None;
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
    /// The department whose directory lists the inspector (a department code of the
    /// check-item catalogue); each department draws its teams from its own inspectors.
    pub department: String,
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
    let s = Sampler::new(&team_seed(draw_seed, uscc.as_str()));
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

    /// Per-class sampling policy (issue 14, defect 5; DOMAIN.md §3 example ranges A ≤ 5 %,
    /// B 5–20 %, C 21–60 %, D 61–100 %). Rows: strata (class, ratio, count, population),
    /// override, the field an error names ("" = accepted).
    #[test]
    fn sampling_policy_rows() {
        use RiskClass::*;
        let p = SamplingPolicy::default();
        type Row<'a> = (
            &'a [(RiskClass, Option<f64>, Option<u64>, u64)],
            &'a str,
            &'a str,
        );
        let rows: &[Row] = &[
            (
                &[(A, Some(0.05), None, 100), (B, Some(0.05), None, 100)],
                "",
                "",
            ), // boundaries
            (&[(A, Some(0.051), None, 100)], "", "strata[0].ratio"), // A above 5 %
            (&[(C, Some(0.20), None, 100)], "", "strata[0].ratio"),  // C below 21 %
            (&[(D, Some(0.61), None, 100)], "", ""),                 // D at 61 %
            (
                &[(A, Some(0.03), None, 9), (C, Some(0.3), None, 9)],
                "",
                "strata",
            ), // B skipped
            (&[(C, Some(0.3), None, 9), (D, Some(0.7), None, 9)], "", ""), // focused plan
            // Counts compare by the share they draw: C 10/100 below B 20 %.
            (
                &[(B, Some(0.2), None, 50), (C, None, Some(10), 100)],
                "",
                "strata[1].count",
            ),
            (
                &[(B, Some(0.2), None, 50), (C, None, Some(30), 100)],
                "",
                "",
            ),
            // Falling with risk inside the ranges cannot happen for ratios; counts can:
            (
                &[(C, None, Some(50), 100), (D, None, Some(40), 100)],
                "",
                "strata[1].count",
            ),
            // The override reason waives every check (recorded in the plan).
            (
                &[(A, Some(0.5), None, 10), (C, Some(0.1), None, 10)],
                "专项整治",
                "",
            ),
            (&[(B, None, Some(0), 0), (C, Some(0.3), None, 10)], "", ""), // empty B
        ];
        for (strata, reason, field) in rows {
            let asked: Vec<AskedStratum> = strata
                .iter()
                .enumerate()
                .map(|(index, (class, ratio, count, population))| AskedStratum {
                    index,
                    class: *class,
                    ratio: *ratio,
                    count: *count,
                    population: *population,
                })
                .collect();
            let got = check_sampling(&p, &asked, reason);
            match (*field, got) {
                ("", Ok(())) => {}
                ("", Err(e)) => panic!("{strata:?}: refused {e}"),
                (f, Ok(())) => panic!("{strata:?}: accepted, expected {f}"),
                (f, Err(e)) => assert_eq!(e.field, f, "{strata:?}: {e}"),
            }
        }
    }

    fn d(s: &str) -> Date {
        Date::parse("d", s).unwrap()
    }

    fn hist(checks: &[(Date, bool)]) -> SpotHistory {
        SpotHistory {
            checks: checks.to_vec(),
            tasks: vec![],
            listed: vec![],
        }
    }

    #[test]
    fn exemptions() {
        let r = ExemptionRules::default();
        let op = EnterpriseStatus::Operating;
        let b = RiskClass::B;
        let as_of = d("2026-10-01");
        assert_eq!(r.exemption(op, b, &hist(&[]), as_of), None);
        assert_eq!(
            r.exemption(EnterpriseStatus::Suspended, b, &hist(&[]), as_of),
            Some(Exemption::Suspended)
        );
        assert_eq!(
            r.exemption(op, b, &hist(&[(d("2025-01-01"), false)]), as_of),
            Some(Exemption::CleanRecentChecks)
        );
        // Older than two years: no longer counts.
        assert_eq!(
            r.exemption(op, b, &hist(&[(d("2024-09-30"), false)]), as_of),
            None
        );
        // One problem in the window spoils it.
        assert_eq!(
            r.exemption(
                op,
                b,
                &hist(&[(d("2025-01-01"), false), (d("2026-02-01"), true)]),
                as_of
            ),
            None
        );
        // Twice this year (with a problem, so not "clean"): the yearly limit.
        assert_eq!(
            r.exemption(
                op,
                b,
                &hist(&[(d("2026-02-01"), true), (d("2026-05-01"), false)]),
                as_of
            ),
            Some(Exemption::YearlyLimitReached)
        );
        // Checks after as_of are not known yet.
        assert_eq!(
            r.exemption(op, b, &hist(&[(d("2026-10-02"), false)]), as_of),
            None
        );
        let off = ExemptionRules {
            suspended: false,
            clean_two_years: false,
            max_checks_per_year: 0,
            never_exempt_classes: vec![],
            never_exempt_listed: false,
        };
        assert_eq!(
            off.exemption(
                EnterpriseStatus::Suspended,
                b,
                &hist(&[(d("2026-02-01"), false)]),
                as_of
            ),
            None
        );
    }

    /// Class-based supervision before the Shanghai exemptions (issue 14, defect 4;
    /// DOMAIN.md §2–§3): D and firms on the serious or abnormal list at the as-of date are
    /// never exempt; a listing removed or over no longer bars. Rows: class, status,
    /// listing span, exemption expected.
    #[test]
    fn class_and_listings_come_before_exemptions() {
        use RiskClass::*;
        let r = ExemptionRules::default();
        let as_of = d("2026-10-01");
        let clean = (d("2025-06-01"), false);
        /// A listing span: (first day, last day if it ended).
        type Span<'a> = Option<(&'a str, Option<&'a str>)>;
        let rows: &[(RiskClass, EnterpriseStatus, Span, Option<Exemption>)] = &[
            (
                B,
                EnterpriseStatus::Operating,
                None,
                Some(Exemption::CleanRecentChecks),
            ),
            (D, EnterpriseStatus::Operating, None, None),
            (D, EnterpriseStatus::Suspended, None, None),
            (
                C,
                EnterpriseStatus::Operating,
                Some(("2026-01-01", None)),
                None,
            ),
            (
                C,
                EnterpriseStatus::Operating,
                Some(("2026-01-01", Some("2026-10-01"))),
                None,
            ),
            (
                C,
                EnterpriseStatus::Operating,
                Some(("2026-01-01", Some("2026-09-30"))),
                Some(Exemption::CleanRecentChecks),
            ),
            (
                C,
                EnterpriseStatus::Suspended,
                Some(("2026-01-01", None)),
                None,
            ),
        ];
        for (class, status, span, want) in rows {
            let h = SpotHistory {
                tasks: vec![0],
                checks: vec![clean],
                listed: span.iter().map(|(f, l)| (d(f), l.map(d))).collect(),
            };
            assert_eq!(
                r.exemption(*status, *class, &h, as_of),
                *want,
                "{class:?} {status:?} {span:?}"
            );
        }
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
