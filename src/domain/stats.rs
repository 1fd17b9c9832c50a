//! Outcome statistics (统计) that need no store: how well a scoring run's classes and
//! scores predicted what later spot checks found — the problem-found rate per class,
//! each class's lift over the average, and the AUC of the score against "problem found"
//! — and the filing-rate arithmetic the statistics service reports.
//!
//! An AUC of 0.5 is a coin; 1.0 ranks every inspection that found a problem above every
//! one that did not. Lift 2 means a class's inspections found problems twice as often
//! as the average inspection.

use super::{
    rules::report_on_time, Date, DomainError, EnterpriseRecords, EntityType, RegionCode, RiskClass,
};

/// A calendar month, `yyyy * 100 + mm` (ordered like the months).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Month(pub u32);

impl Month {
    /// The month of `d`.
    pub fn of(d: Date) -> Month {
        use chrono::Datelike;
        let n = d.naive();
        Month(n.year().max(0) as u32 * 100 + n.month())
    }

    /// Parses "YYYY-MM"; the error names `field`.
    pub fn parse(field: &str, s: &str) -> Result<Month, DomainError> {
        let bad = || DomainError::invalid(field, format!("{s:?} is not a month (YYYY-MM)"));
        let (y, m) = s.trim().split_once('-').ok_or_else(bad)?;
        let (y, m): (u32, u32) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if !(1950..=9999).contains(&y) || !(1..=12).contains(&m) {
            return Err(bad());
        }
        Ok(Month(y * 100 + m))
    }
}

impl Month {
    /// The first day of the month.
    pub fn first_day(self) -> Date {
        Date::ymd((self.0 / 100) as i32, self.0 % 100, 1).unwrap_or(Date::from_days(0))
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.0 / 100, self.0 % 100)
    }
}

/// The first report year annual-report statistics count (the year the filing regime
/// counts from, as in [`super::rules::obliged_report_years`]).
pub const FIRST_REPORT_YEAR: u16 = 2000;

/// A counter the store keeps beside the records it counts, changed in the same batch,
/// so a statistic is a sum over a few hundred counters instead of a scan of the city.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Counter {
    /// Active (operating or suspended) entities that must file annual reports from
    /// report year `first_year` on (their establishment year, at least
    /// [`FIRST_REPORT_YEAR`]).
    Obliged {
        first_year: u16,
        region: RegionCode,
        entity: EntityType,
    },
    /// Annual reports for `year` filed by active entities obliged to file it, on time
    /// (by 30 June of the next year) or late.
    Filed {
        year: u16,
        region: RegionCode,
        entity: EntityType,
        on_time: bool,
    },
    /// Spot-check results by month inspected, the enterprise's region, the class the
    /// earliest plan of its task that selected the enterprise drew it in (none when no
    /// recorded draw of the task selected it), and whether problems were found.
    Inspected {
        month: Month,
        region: RegionCode,
        class: Option<RiskClass>,
        problem: bool,
    },
    /// Enterprises drawn, by the month of the plan's as-of date (the day its exemptions
    /// were evaluated), the enterprise's region and the class drawn in.
    Drawn {
        month: Month,
        region: RegionCode,
        class: RiskClass,
    },
    /// Plans drawn, by the month of their as-of date.
    PlansDrawn { month: Month },
    /// USCCs answered by the match RPCs (BatchMatch, or MatchClassifications when
    /// `stream`) in a month: usage, not records, so not derived from them.
    Matched { month: Month, stream: bool },
}

impl std::fmt::Display for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// One selection of an enterprise by a recorded draw: the plan's task and id, the class
/// it was drawn in, and the month of the plan's as-of date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub task_id: String,
    pub plan_id: u64,
    pub class: RiskClass,
    pub month: Month,
}

/// The counters an enterprise adds, given its dossier and the recorded draws that
/// selected it (the store subtracts those of the state it replaces, so every counter is
/// a function of the records): while it is active one [`Counter::Obliged`] and one
/// [`Counter::Filed`] per report it filed for a year it had to; whatever its status one
/// [`Counter::Inspected`] per spot-check result and one [`Counter::Drawn`] per selection,
/// in its current region.
pub fn dossier_counters(d: &EnterpriseRecords, selections: &[Selection]) -> Vec<Counter> {
    let Some(e) = d.enterprise.as_ref() else {
        return Vec::new();
    };
    let mut out = filing_counters(d);
    for i in &d.inspections {
        let class = selections
            .iter()
            .filter(|s| s.task_id == i.task_id)
            .min_by_key(|s| s.plan_id)
            .map(|s| s.class);
        out.push(Counter::Inspected {
            month: Month::of(i.inspected_on),
            region: e.region,
            class,
            problem: i.problems_found,
        });
    }
    out.extend(selections.iter().map(|s| Counter::Drawn {
        month: s.month,
        region: e.region,
        class: s.class,
    }));
    out
}

/// The filing counters of a dossier: one [`Counter::Obliged`] while it is active, and
/// one [`Counter::Filed`] per report it filed for a year it had to.
pub fn filing_counters(d: &EnterpriseRecords) -> Vec<Counter> {
    let Some(e) = d.enterprise.as_ref().filter(|e| e.status.is_active()) else {
        return Vec::new();
    };
    let first_year = (e.established_on.year().max(0) as u16).max(FIRST_REPORT_YEAR);
    let mut out = Vec::with_capacity(1 + d.reports.len());
    out.push(Counter::Obliged {
        region: e.region,
        entity: e.entity_type,
        first_year,
    });
    out.extend(
        d.reports
            .iter()
            .filter(|r| r.year >= first_year)
            .map(|r| Counter::Filed {
                year: r.year,
                region: e.region,
                entity: e.entity_type,
                on_time: report_on_time(r),
            }),
    );
    out
}

/// Credit-repair cases of one period: how they ended and how long the decision took.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RepairCounts {
    pub submitted: u64,
    /// Not yet decided (submitted or accepted).
    pub open: u64,
    pub not_accepted: u64,
    pub approved: u64,
    pub denied: u64,
    /// Approved, then revoked (a false commitment).
    pub revoked: u64,
    /// Decided (or refused) after the step's due date.
    pub late: u64,
    /// Calendar days from submission to the decision (acceptance refused, approved or
    /// denied), one per decided case.
    pub days: Vec<u32>,
}

/// Objections of one period: how they ended and how long they took.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectionCounts {
    pub filed: u64,
    pub open: u64,
    pub upheld: u64,
    pub corrected: u64,
    /// Resolved after the due date.
    pub late: u64,
    /// Calendar days from filing to resolution, one per resolved objection.
    pub days: Vec<u32>,
}

/// Mean and maximum of a list of day counts (0 for none).
pub fn mean_max(days: &[u32]) -> (f64, u32) {
    if days.is_empty() {
        return (0.0, 0);
    }
    let sum: u64 = days.iter().map(|d| u64::from(*d)).sum();
    (
        sum as f64 / days.len() as f64,
        days.iter().copied().max().unwrap_or(0),
    )
}

fn days_between(from: Date, to: Date) -> u32 {
    (to.days() - from.days()).max(0) as u32
}

impl RepairCounts {
    /// Adds a case.
    pub fn add(&mut self, c: &super::repair::RepairCase) {
        use super::repair::RepairState as S;
        self.submitted += 1;
        match c.state {
            S::Submitted | S::Accepted => self.open += 1,
            S::NotAccepted => self.not_accepted += 1,
            S::Approved => self.approved += 1,
            S::Denied => self.denied += 1,
            S::Revoked => self.revoked += 1,
        }
        let decision = c
            .history
            .iter()
            .find(|h| matches!(h.state, S::NotAccepted | S::Approved | S::Denied));
        if let Some(h) = decision {
            self.days.push(days_between(c.submitted_on, h.on));
            let due = match h.state {
                S::NotAccepted => Some(c.accept_due),
                _ => c.decide_due,
            };
            if due.is_some_and(|due| h.on > due) {
                self.late += 1;
            }
        }
    }
}

impl ObjectionCounts {
    /// Adds an objection.
    pub fn add(&mut self, o: &super::repair::Objection) {
        use super::repair::ObjectionState as S;
        self.filed += 1;
        match o.state {
            S::Open => self.open += 1,
            S::Upheld => self.upheld += 1,
            S::Corrected => self.corrected += 1,
        }
        if let Some(h) = o.history.iter().find(|h| h.state != S::Open) {
            self.days.push(days_between(o.filed_on, h.on));
            if h.on > o.decide_due {
                self.late += 1;
            }
        }
    }
}

/// One inspection as the evaluation sees it: the class and score the run gave the
/// enterprise, and whether the inspection found problems.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub class: RiskClass,
    /// The run's score in hundredths of a point.
    pub score: i64,
    pub problem: bool,
}

/// One class's inspections.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClassOutcomes {
    pub inspected: u64,
    pub problems: u64,
}

impl ClassOutcomes {
    /// Problems found per inspection; `None` with no inspection.
    pub fn rate(&self) -> Option<f64> {
        ratio(self.problems, self.inspected)
    }
}

/// How a run's classes and scores predicted later inspection outcomes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Performance {
    /// Per class, A to D.
    pub classes: [ClassOutcomes; 4],
    /// All inspections evaluated.
    pub all: ClassOutcomes,
    /// Area under the ROC curve of the score against "problem found" (ties count
    /// half); `None` unless there is at least one inspection of each outcome.
    pub auc: Option<f64>,
}

impl Performance {
    /// Evaluates `outcomes`.
    pub fn of(outcomes: &[Outcome]) -> Performance {
        let mut p = Performance::default();
        for o in outcomes {
            let c = &mut p.classes[o.class.index()];
            c.inspected += 1;
            p.all.inspected += 1;
            if o.problem {
                c.problems += 1;
                p.all.problems += 1;
            }
        }
        let mut scored: Vec<(i64, bool)> = outcomes.iter().map(|o| (o.score, o.problem)).collect();
        p.auc = auc(&mut scored);
        p
    }

    /// A class's problem-found rate over the average rate; `None` when either is
    /// undefined or the average is 0.
    pub fn lift(&self, class: RiskClass) -> Option<f64> {
        let all = self.all.rate().filter(|r| *r > 0.0)?;
        Some(self.classes[class.index()].rate()? / all)
    }
}

/// `num / den`, `None` when `den` is 0.
pub fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// The AUC of `scored` (score, positive): the chance that a random positive scores above
/// a random negative, ties counting half (the Mann–Whitney U statistic over P·N).
/// Sorts `scored`. `None` without both a positive and a negative.
pub fn auc(scored: &mut [(i64, bool)]) -> Option<f64> {
    scored.sort_unstable_by_key(|(s, _)| *s);
    let positives = scored.iter().filter(|(_, p)| *p).count() as u64;
    let negatives = scored.len() as u64 - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    // Twice the U statistic, so ties stay integral.
    let (mut twice_u, mut negatives_below) = (0u128, 0u64);
    let mut i = 0;
    while i < scored.len() {
        let score = scored[i].0;
        let (mut pos, mut neg) = (0u64, 0u64);
        while i < scored.len() && scored[i].0 == score {
            if scored[i].1 {
                pos += 1;
            } else {
                neg += 1;
            }
            i += 1;
        }
        twice_u += u128::from(pos) * u128::from(2 * negatives_below + neg);
        negatives_below += neg;
    }
    Some(twice_u as f64 / (2.0 * positives as f64 * negatives as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn o(class: RiskClass, score: i64, problem: bool) -> Outcome {
        Outcome {
            class,
            score,
            problem,
        }
    }

    #[test]
    fn months_parse_print_and_order() {
        let m = Month::parse("from_month", "2026-03").unwrap();
        assert_eq!(m.to_string(), "2026-03");
        assert_eq!(Month::of(Date::ymd(2026, 3, 31).unwrap()), m);
        assert!(Month::parse("m", "2026-12").unwrap() < Month::parse("m", "2027-01").unwrap());
        for bad in ["2026", "2026-13", "2026-00", "x-01", ""] {
            let e = Month::parse("to_month", bad).unwrap_err();
            assert_eq!(e.field, "to_month", "{bad}");
        }
    }

    #[test]
    fn filing_counters_follow_the_obligation() {
        use crate::domain::{fixtures, AnnualReport, EnterpriseStatus};
        let mut d = fixtures::dossier("2019-05-01");
        let e = d.enterprise.clone().unwrap();
        let first = e.established_on.year() as u16;
        let report = |year: u16, filed_on: Date| AnnualReport {
            uscc: e.uscc,
            year,
            filed_on,
            recorded_at_ms: 0,
        };
        d.reports = vec![
            report(first - 1, Date::ymd(i32::from(first), 3, 1).unwrap()),
            report(first, Date::ymd(i32::from(first) + 1, 6, 30).unwrap()),
            report(first + 1, Date::ymd(i32::from(first) + 2, 7, 1).unwrap()),
        ];
        let c = filing_counters(&d);
        assert_eq!(
            c.len(),
            3,
            "the report before establishment does not count: {c:?}"
        );
        assert!(
            matches!(c[0], Counter::Obliged { first_year, .. } if first_year == first.max(FIRST_REPORT_YEAR))
        );
        assert!(
            matches!(c[1], Counter::Filed { on_time: true, .. }),
            "30 June is on time"
        );
        assert!(
            matches!(c[2], Counter::Filed { on_time: false, .. }),
            "1 July is late"
        );
        d.enterprise.as_mut().unwrap().status = EnterpriseStatus::Deregistered;
        assert!(
            filing_counters(&d).is_empty(),
            "a deregistered entity no longer files"
        );
    }

    #[test]
    fn mean_and_max_of_days() {
        assert_eq!(mean_max(&[]), (0.0, 0));
        assert_eq!(mean_max(&[2, 4, 9]), (5.0, 9));
    }

    #[test]
    fn auc_of_known_rankings() {
        // Perfect, reversed, all tied.
        assert_eq!(auc(&mut [(1, false), (2, false), (3, true)]), Some(1.0));
        assert_eq!(auc(&mut [(1, true), (2, false), (3, false)]), Some(0.0));
        assert_eq!(auc(&mut [(5, true), (5, false)]), Some(0.5));
        // One of two negatives below the positive, one tied: (1 + 0.5) / 2.
        assert_eq!(auc(&mut [(1, false), (2, true), (2, false)]), Some(0.75));
        assert_eq!(auc(&mut [(1, true), (2, true)]), None);
        assert_eq!(auc(&mut []), None);
    }

    #[test]
    fn rates_and_lift_per_class() {
        use RiskClass::*;
        let p = Performance::of(&[
            o(A, 0, false),
            o(A, 1, false),
            o(A, 2, false),
            o(A, 3, true),
            o(D, 4000, true),
            o(D, 4100, true),
            o(D, 4200, false),
            o(D, 4300, true),
        ]);
        assert_eq!(p.all.inspected, 8);
        assert_eq!(p.all.problems, 4);
        assert_eq!(p.classes[0].rate(), Some(0.25));
        assert_eq!(p.lift(A), Some(0.5));
        assert_eq!(p.lift(D), Some(1.5));
        assert_eq!(p.lift(B), None, "no inspection of class B");
        // Positives 3, 4000, 4100, 4300 beat negatives 0, 1, 2 (and 4300 beats 4200):
        // 3 + 3 + 3 + 4 = 13 of 16 pairs.
        assert_eq!(p.auc, Some(13.0 / 16.0));
    }

    proptest! {
        /// The AUC is the pairwise definition, counted directly.
        #[test]
        fn auc_matches_pairwise_count(v in proptest::collection::vec((0i64..20, any::<bool>()), 0..60)) {
            let (pos, neg): (Vec<_>, Vec<_>) = v.iter().partition(|(_, p)| *p);
            let expected = if pos.is_empty() || neg.is_empty() {
                None
            } else {
                let mut wins = 0.0;
                for (a, _) in &pos {
                    for (b, _) in &neg {
                        wins += if a > b { 1.0 } else if a == b { 0.5 } else { 0.0 };
                    }
                }
                Some(wins / (pos.len() * neg.len()) as f64)
            };
            let got = auc(&mut v.clone());
            match (got, expected) {
                (Some(g), Some(e)) => prop_assert!((g - e).abs() < 1e-12, "{g} vs {e}"),
                (g, e) => prop_assert_eq!(g, e),
            }
        }
    }
}
