//! Scoring (评分): a pure function of (an enterprise's records, whether it is related to
//! a high-risk enterprise, the model, the rules, the as-of date) → score, class and the
//! factors that make it up. Records dated after `as_of` are not yet known and count for
//! nothing. A penalty weighs only until the end of the publicity the law gives it, or
//! until an approved repair ended that publicity early
//! ([`PublicityRules::weighs_until`](super::rules::PublicityRules::weighs_until)).
//!
//! Factors are handed to a callback so the batch job can score millions of enterprises
//! without building explanations it does not keep; [`explain`] collects them.

use super::{
    model::{Centi, Condition, Decay, HardRule, Indicator, IndicatorSpec, Model, RiskClass},
    rules::{report_compliance_since, Compliance},
    ruleset::RuleBook,
    Date, EnterpriseRecords, EnterpriseStatus, EntityType, ListKind, PenaltyKind, SamplingCategory,
    ViolationDomain,
};

/// The record a factor comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordRef<'a> {
    /// The registration profile.
    Enterprise,
    /// A penalty, by decision number.
    Penalty(&'a str),
    /// An annual report year.
    AnnualReport(u16),
    /// A listing: (kind, listed on, reason) via its id.
    Listing(&'a super::Listing),
    /// A spot check, by task id.
    Inspection(&'a str),
    /// The legal-representative relation.
    Relation,
    /// A credit-repair case, by id.
    RepairCase(u64),
    /// A credit commitment, by id.
    Commitment(&'a str),
    /// The general model's class (a specialised model's input).
    GeneralClass(RiskClass),
    /// A quality sampling, by report number.
    Sampling(&'a str),
    /// A month's complaint and report summary.
    Complaints(super::stats::Month),
}

impl RecordRef<'_> {
    /// A stable, readable reference: `penalty/<decision number>`, `annual_report/2024`,
    /// `listing/<kind>/<date>/<reason>`, `inspection/<task id>`, `enterprise`,
    /// `relation/legal_representative`.
    pub fn id(&self) -> String {
        match self {
            RecordRef::Enterprise => "enterprise".into(),
            RecordRef::Penalty(d) => format!("penalty/{d}"),
            RecordRef::AnnualReport(y) => format!("annual_report/{y}"),
            RecordRef::Listing(l) => format!("listing/{}", l.listing_id()),
            RecordRef::Inspection(t) => format!("inspection/{t}"),
            RecordRef::Relation => "relation/legal_representative".into(),
            RecordRef::RepairCase(id) => format!("repair_case/{id}"),
            RecordRef::Commitment(id) => format!("commitment/{id}"),
            RecordRef::GeneralClass(c) => format!("classification/general/{c}"),
            RecordRef::Sampling(id) => format!("sampling/{id}"),
            RecordRef::Complaints(m) => format!("complaints/{m}"),
        }
    }
}

/// One contribution to a score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Factor<'a> {
    /// Indicator.
    pub indicator: Indicator,
    /// Points, hundredths (after decay and caps).
    pub points: Centi,
    /// Source record.
    pub record: RecordRef<'a>,
}

/// The result of scoring one enterprise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assessment {
    /// Score in hundredths of a point.
    pub score: Centi,
    /// Final class (after hard rules).
    pub class: RiskClass,
    /// Class the score alone gives.
    pub score_class: RiskClass,
    /// The hard rule that raised the class, if one did.
    pub hard_rule: Option<HardRule>,
    /// Whether this enterprise makes others sharing its legal representative "related":
    /// D before relation points, or an open serious-illegal listing.
    pub relation_source: bool,
    /// The general class a specialised model read (GENERAL_CLASS), kept with the result
    /// so that its explanation can be reproduced later.
    pub general_input: Option<RiskClass>,
    /// How many factors the score sums (0: nothing in the records counts, and the
    /// explanation is empty).
    pub factors: u32,
}

/// A factor with its texts, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explained {
    /// Indicator.
    pub indicator: Indicator,
    /// Points, hundredths.
    pub points: Centi,
    /// Record id ([`RecordRef::id`]).
    pub record: String,
}

/// What a model reads beside the dossier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Inputs {
    /// Shares its legal representative with a high-risk enterprise (the relation).
    pub related: bool,
    /// The general model's class, for a specialised model that reads it
    /// (`GENERAL_CLASS`); `None` when unknown (the enterprise is not classified yet).
    pub general: Option<RiskClass>,
}

impl From<bool> for Inputs {
    /// Only the relation: what the general model reads.
    fn from(related: bool) -> Inputs {
        Inputs {
            related,
            general: None,
        }
    }
}

/// Scores and collects the factors.
pub fn explain(
    r: &EnterpriseRecords,
    inputs: impl Into<Inputs>,
    model: &Model,
    rules: &RuleBook,
    as_of: Date,
) -> (Assessment, Vec<Explained>) {
    let mut out = Vec::new();
    let a = assess(r, inputs, model, rules, as_of, |f| {
        out.push(Explained {
            indicator: f.indicator,
            points: f.points,
            record: f.record.id(),
        })
    });
    (a, out)
}

/// Points of `spec` for a record `age_days` old; `None` outside the window.
fn points_at(spec: &IndicatorSpec, age_days: i32) -> Option<Centi> {
    if age_days < 0 {
        return None; // after as_of: not yet known
    }
    match spec.window_days {
        Some(w) if age_days as i64 > i64::from(w) => None,
        Some(w) => match spec.decay {
            Decay::None => Some(spec.points),
            Decay::Linear => {
                let w = i64::from(w);
                Some(spec.points * (w - i64::from(age_days)) / w)
            }
        },
        None => Some(spec.points),
    }
}

/// Accumulates factors per indicator, applying `max_points`.
struct Acc<'m, F> {
    model: &'m Model,
    sink: F,
    score: Centi,
    /// Factors given to `sink`.
    factors: u32,
}

impl<'a, F: FnMut(Factor<'a>)> Acc<'_, F> {
    /// Adds one occurrence of `ind`, `age_days` old, to the running total `used` of
    /// that indicator.
    fn add(&mut self, ind: Indicator, age_days: i32, record: RecordRef<'a>, used: &mut Centi) {
        self.add_weighted(ind, age_days, 1000, record, used);
    }

    /// Adds `ind` from one record weighing `thousandths` of one occurrence's points
    /// (after decay): 1,000 for one occurrence, less for a penalty with lenient
    /// treatment, `n` × 1,000 for a record that counts `n` (a month's complaints); the
    /// indicator's `max_points` caps the running total `used`.
    fn add_weighted(
        &mut self,
        ind: Indicator,
        age_days: i32,
        thousandths: i64,
        record: RecordRef<'a>,
        used: &mut Centi,
    ) {
        let Some(spec) = self.model.spec(ind) else {
            return;
        };
        let Some(one) = points_at(spec, age_days) else {
            return;
        };
        let mut p = one.saturating_mul(thousandths) / 1000;
        if let Some(max) = spec.max_points {
            p = p.min(max - *used);
        }
        if p == 0 {
            return;
        }
        *used += p;
        self.score += p;
        self.factors += 1;
        (self.sink)(Factor {
            indicator: ind,
            points: p,
            record,
        });
    }

    fn once(&mut self, ind: Indicator, record: RecordRef<'a>) {
        let mut used = 0;
        self.add(ind, 0, record, &mut used);
    }
}

/// Scores one enterprise. Pure: the same inputs give the same result.
pub fn assess<'a>(
    r: &'a EnterpriseRecords,
    inputs: impl Into<Inputs>,
    model: &Model,
    rules: &RuleBook,
    as_of: Date,
    sink: impl FnMut(Factor<'a>),
) -> Assessment {
    let Inputs { related, general } = inputs.into();
    let mut acc = Acc {
        model,
        sink,
        score: 0,
        factors: 0,
    };
    // A specialised model's input: points per class step above A.
    if let (Some(g), Some(spec)) = (general, model.spec(Indicator::GeneralClass)) {
        let steps = g.index() as Centi;
        if steps > 0 && spec.points != 0 {
            acc.score += spec.points * steps;
            acc.factors += 1;
            (acc.sink)(Factor {
                indicator: Indicator::GeneralClass,
                points: spec.points * steps,
                record: RecordRef::GeneralClass(g),
            });
        }
    }
    let age = |d: Date| as_of.days() - d.days();
    let mut serious_open = false;
    let mut abnormal_open = false;
    let mut abnormal_scored = false;
    let mut revoked = false;

    if let Some(e) = &r.enterprise {
        let mut used = 0;
        acc.add(
            Indicator::NewEnterprise,
            age(e.established_on),
            RecordRef::Enterprise,
            &mut used,
        );
        if let Some(t) = model
            .spec(Indicator::LowRegisteredCapital)
            .and_then(|s| s.threshold_fen)
        {
            if e.entity_type == EntityType::Enterprise && e.registered_capital_fen < t {
                acc.once(Indicator::LowRegisteredCapital, RecordRef::Enterprise);
            }
        }
        if model
            .spec(Indicator::HighRiskIndustry)
            .is_some_and(|s| s.sections.contains(&e.industry.section()))
        {
            acc.once(Indicator::HighRiskIndustry, RecordRef::Enterprise);
        }
        if !e.supervision.is_empty() {
            acc.once(Indicator::KeySupervision, RecordRef::Enterprise);
        }
        if e.status == EnterpriseStatus::Suspended {
            acc.once(Indicator::Suspended, RecordRef::Enterprise);
        }
        revoked = e.status == EnterpriseStatus::Revoked;

        // Annual reports: late filings and, while the enterprise must file, missing ones.
        // Only years whose deadline can fall inside a window matter.
        let (mut late, mut missing) = (0, 0);
        let window = [Indicator::AnnualReportLate, Indicator::AnnualReportMissing]
            .iter()
            .filter_map(|i| model.spec(*i).and_then(|s| s.window_days))
            .max()
            .unwrap_or(0);
        let from_year = as_of.year() - 2 - (window as i32) / 365;
        for (year, deadline, _, c) in report_compliance_since(e, &r.reports, as_of, from_year) {
            match c {
                Compliance::Late => acc.add(
                    Indicator::AnnualReportLate,
                    age(deadline),
                    RecordRef::AnnualReport(year),
                    &mut late,
                ),
                Compliance::NotFiled if e.status.is_active() => acc.add(
                    Indicator::AnnualReportMissing,
                    age(deadline),
                    RecordRef::AnnualReport(year),
                    &mut missing,
                ),
                _ => {}
            }
        }
    }

    // Penalties.
    let large = model
        .spec(Indicator::PenaltyLargeAmount)
        .and_then(|s| s.threshold_fen);
    let (mut minor, mut fine, mut severe, mut big, mut food) = (0, 0, 0, 0, 0);
    let entity_type = r
        .enterprise
        .as_ref()
        .map_or(EntityType::Enterprise, |e| e.entity_type);
    for p in &r.penalties {
        if p.no_penalty || p.decided_on > as_of {
            continue;
        }
        // One rule for lapse and repair alike (issue 14, defect 3).
        let publicity = &rules.in_force(p.decided_on).publicity;
        if publicity.weighs_until(p, entity_type) < as_of {
            continue;
        }
        let a = age(p.decided_on);
        let rec = RecordRef::Penalty(&p.decision_number);
        // Lenient treatment (从轻 / 减轻, 行政处罚法 2021 Art. 32) weighs the model's share.
        let w = model.lenience.of(p.lenience);
        if p.heavier || p.kinds.iter().any(|k| k.is_severe()) {
            acc.add_weighted(Indicator::PenaltySevere, a, w, rec, &mut severe);
        } else if p
            .kinds
            .iter()
            .any(|k| matches!(k, PenaltyKind::Fine | PenaltyKind::Confiscation))
        {
            acc.add_weighted(Indicator::PenaltyFine, a, w, rec, &mut fine);
        } else {
            acc.add_weighted(Indicator::PenaltyMinor, a, w, rec, &mut minor);
        }
        if large.is_some_and(|t| p.fine_fen.saturating_add(p.confiscation_fen) >= t) {
            acc.add_weighted(Indicator::PenaltyLargeAmount, a, w, rec, &mut big);
        }
        if p.domain == ViolationDomain::Food {
            acc.add_weighted(Indicator::FoodPenalty, a, w, rec, &mut food);
        }
    }

    // Listings.
    let mut past = 0;
    for l in &r.listings {
        if l.listed_on > as_of {
            continue;
        }
        let open = l.is_open_on(as_of);
        match l.kind {
            ListKind::SeriousIllegal if open && !serious_open => {
                serious_open = true;
                acc.once(Indicator::SeriousIllegalListing, RecordRef::Listing(l));
            }
            ListKind::AbnormalOperations | ListKind::AbnormalStatusMark => {
                if open {
                    // The hard rule is about the abnormal-operations list (经营异常名录);
                    // an individual business is not listed but marked (经营异常状态,
                    // DOMAIN §4): the mark scores the indicator's points but does not
                    // trigger the rule (issue 14, defect 6).
                    abnormal_open |= l.kind == ListKind::AbnormalOperations;
                    if !abnormal_scored {
                        abnormal_scored = true;
                        acc.once(Indicator::AbnormalListingOpen, RecordRef::Listing(l));
                    }
                } else if let Some(removed) = l.removed_on {
                    acc.add(
                        Indicator::AbnormalListingPast,
                        age(removed),
                        RecordRef::Listing(l),
                        &mut past,
                    );
                }
            }
            _ => {}
        }
    }

    // Inspections: every one with problems; the latest clean one mitigates.
    let mut problems = 0;
    let mut latest: Option<&super::InspectionResult> = None;
    for i in &r.inspections {
        if i.inspected_on > as_of {
            continue;
        }
        if i.problems_found {
            acc.add(
                Indicator::InspectionProblem,
                age(i.inspected_on),
                RecordRef::Inspection(&i.task_id),
                &mut problems,
            );
        }
        if latest.is_none_or(|l| (l.inspected_on, &l.task_id) < (i.inspected_on, &i.task_id)) {
            latest = Some(i);
        }
    }
    if let Some(l) = latest.filter(|l| !l.problems_found) {
        let mut used = 0;
        acc.add(
            Indicator::InspectionClean,
            age(l.inspected_on),
            RecordRef::Inspection(&l.task_id),
            &mut used,
        );
    }

    // Quality samplings: each failed food sampling; failures in two consecutive
    // calendar years (any category) once, on the latest failure.
    let mut food_failed = 0;
    // Per calendar year, its latest failure (by date, then report number).
    let mut failed_years: std::collections::BTreeMap<i32, (Date, &'a str)> = Default::default();
    let repeat_window = model
        .spec(Indicator::SamplingRepeatedFailure)
        .and_then(|s| s.window_days);
    for x in r.samplings.iter().filter(|x| !x.passed) {
        let a = age(x.sampled_on);
        if x.category == SamplingCategory::Food {
            acc.add(
                Indicator::FoodSamplingFailed,
                a,
                RecordRef::Sampling(&x.sample_id),
                &mut food_failed,
            );
        }
        if repeat_window.is_some_and(|w| a >= 0 && a as i64 <= i64::from(w)) {
            let latest = failed_years
                .entry(x.sampled_on.year())
                .or_insert((x.sampled_on, &x.sample_id));
            *latest = (*latest).max((x.sampled_on, &x.sample_id));
        }
    }
    // The latest year that follows a year with a failure too: cite its latest failure.
    let repeated = failed_years
        .iter()
        .rev()
        .find(|(y, _)| failed_years.contains_key(&(**y - 1)))
        .map(|(_, (_, id))| *id);
    if let Some(id) = repeated {
        acc.once(Indicator::SamplingRepeatedFailure, RecordRef::Sampling(id));
    }

    // Complaints and reports found true, per month known by `as_of` (age from the
    // month's first day).
    let mut verified = 0;
    let known = super::stats::Month::of(as_of);
    for c in r
        .complaints
        .iter()
        .filter(|c| c.month <= known && c.verified > 0)
    {
        acc.add_weighted(
            Indicator::ComplaintsVerified,
            age(c.month.first_day()).max(0),
            i64::from(c.verified) * 1000,
            RecordRef::Complaints(c.month),
            &mut verified,
        );
    }

    // False commitments: found in credit repair (a revoked approval), or a commitment
    // verified broken and not repaired by `as_of`.
    let mut false_commitments = 0;
    for (case, found) in &r.false_commitments {
        acc.add(
            Indicator::FalseCommitment,
            age(*found),
            RecordRef::RepairCase(*case),
            &mut false_commitments,
        );
    }
    for c in r.commitments.iter().filter(|c| c.is_false_on(as_of)) {
        if let Some(found) = c.broken_on() {
            acc.add(
                Indicator::FalseCommitment,
                age(found),
                RecordRef::Commitment(&c.commitment_id),
                &mut false_commitments,
            );
        }
    }

    let holds = |c: Condition| match c {
        Condition::SeriousIllegalListingOpen => serious_open,
        Condition::AbnormalListingOpen => abnormal_open,
        Condition::BusinessLicenceRevoked => revoked,
    };
    let floor = |score: Centi| -> (RiskClass, Option<HardRule>) {
        let by_score = model.class_of(score);
        let mut class = by_score;
        let mut rule = None;
        for h in &model.hard_rules {
            if holds(h.condition) && h.at_least > class {
                class = h.at_least;
                rule = Some(*h);
            }
        }
        (class, rule)
    };
    let (before_relation, _) = floor(acc.score);
    let relation_source = before_relation == RiskClass::D || serious_open;
    if related {
        acc.once(Indicator::RelatedHighRisk, RecordRef::Relation);
    }
    let (class, hard_rule) = floor(acc.score);
    Assessment {
        score: acc.score,
        class,
        score_class: model.class_of(acc.score),
        hard_rule,
        relation_source,
        general_input: general.filter(|_| model.spec(Indicator::GeneralClass).is_some()),
        factors: acc.factors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{InspectionResult, Listing, Penalty, Uscc};
    use proptest::prelude::*;

    use crate::domain::fixtures::{self, day};

    /// A manufacturer founded 2015-03-01 with ¥1 M capital and every report filed.
    fn enterprise() -> EnterpriseRecords {
        let mut r = fixtures::dossier("2015-03-01");
        if let Some(e) = r.enterprise.as_mut() {
            e.registered_capital_fen = 100_000_000;
        }
        r.reports = (2015..=2025)
            .map(|y| crate::domain::AnnualReport {
                uscc: Uscc::placeholder(),
                year: y,
                filed_on: Date::ymd(i32::from(y) + 1, 3, 1).unwrap(),
                recorded_at_ms: 0,
            })
            .collect();
        r
    }

    fn penalty(n: u32, on: Date, kinds: Vec<PenaltyKind>, fine: u64, heavier: bool) -> Penalty {
        Penalty {
            kinds,
            fine_fen: fine,
            heavier,
            ..fixtures::penalty(&format!("沪市监罚〔2025〕{n}号"), on)
        }
    }

    fn listing(kind: ListKind, on: Date, removed: Option<Date>) -> Listing {
        Listing {
            removed_on: removed,
            ..fixtures::listing(kind, on)
        }
    }

    const AS_OF: &str = "2026-10-01";

    fn rules() -> &'static RuleBook {
        static BOOK: std::sync::OnceLock<RuleBook> = std::sync::OnceLock::new();
        BOOK.get_or_init(RuleBook::builtin)
    }

    /// The food model (issue 18): the general class is an input, points per class step
    /// above A; a food-domain penalty weighs FOOD_PENALTY on top of its kind's points.
    #[test]
    fn the_food_model_reads_the_general_class_and_food_penalties() {
        let m = Model::builtin_food();
        let spec = m.spec(Indicator::GeneralClass).unwrap().points;
        let d = enterprise();
        let as_of = day(AS_OF);
        let at = |g| {
            assess(
                &d,
                Inputs {
                    related: false,
                    general: g,
                },
                &m,
                rules(),
                as_of,
                |_| {},
            )
        };
        assert_eq!(at(None).score, at(Some(RiskClass::A)).score);
        for (k, c) in RiskClass::ALL.into_iter().enumerate() {
            assert_eq!(at(Some(c)).score - at(None).score, spec * k as Centi, "{c}");
        }
        let (_, f) = explain(
            &d,
            Inputs {
                related: false,
                general: Some(RiskClass::C),
            },
            &m,
            rules(),
            as_of,
        );
        assert!(f.iter().any(|x| x.indicator == Indicator::GeneralClass
            && x.record == "classification/general/C"
            && x.points == 2 * spec));
        // A fresh food fine: PENALTY_FINE and FOOD_PENALTY at full points; the general
        // model does not read FOOD_PENALTY.
        let mut d2 = enterprise();
        d2.penalties
            .push(fixtures::penalty("沪市监食罚〔2026〕1号", as_of));
        let (_, f) = explain(&d2, false, &m, rules(), as_of);
        let codes: Vec<_> = f.iter().map(|x| x.indicator).collect();
        assert!(codes.contains(&Indicator::FoodPenalty) && codes.contains(&Indicator::PenaltyFine));
        let (_, f) = explain(&d2, false, &Model::builtin(), rules(), as_of);
        assert!(!f.iter().any(|x| x.indicator == Indicator::FoodPenalty));
        // Another domain's penalty is not a food penalty.
        d2.penalties[0].domain = crate::domain::ViolationDomain::Advertising;
        let (_, f) = explain(&d2, false, &m, rules(), as_of);
        assert!(!f.iter().any(|x| x.indicator == Indicator::FoodPenalty));
    }

    /// Failed samplings in two consecutive calendar years weigh once (连续多年抽检不合格),
    /// citing the latest failure of the latest such year; a lone later failure is not
    /// the one cited; passed samplings and failures outside the window do not count.
    #[test]
    fn repeated_sampling_failures_cite_the_later_year_of_the_pair() {
        use crate::domain::{QualitySampling, SamplingCategory};
        let m = Model::builtin_food();
        let sample = |id: &str, on: &str, passed: bool| QualitySampling {
            sample_id: id.into(),
            uscc: Uscc::placeholder(),
            sampled_on: day(on),
            category: SamplingCategory::Product,
            product: "电线".into(),
            batch: String::new(),
            passed,
            authority: "a".into(),
            recorded_at_ms: 0,
        };
        let repeated = |samplings: Vec<QualitySampling>| {
            let mut d = enterprise();
            d.samplings = samplings;
            let (_, f) = explain(&d, false, &m, rules(), day(AS_OF));
            f.into_iter()
                .filter(|x| x.indicator == Indicator::SamplingRepeatedFailure)
                .map(|x| x.record)
                .collect::<Vec<_>>()
        };
        let got = repeated(vec![
            sample("Z-2023", "2023-11-01", false),
            sample("A-2024-late", "2024-08-01", false),
            sample("Z-2024-early", "2024-02-01", false),
            sample("B-2026", "2026-05-01", false),
        ]);
        assert_eq!(got, ["sampling/A-2024-late"]);
        // A passed sampling between them does not make a pair.
        assert!(repeated(vec![
            sample("P", "2025-05-01", true),
            sample("F", "2026-05-01", false)
        ])
        .is_empty());
        // 2022 is outside the 1,095-day window of 2026-10-01.
        assert!(repeated(vec![
            sample("F1", "2022-12-01", false),
            sample("F2", "2024-02-01", false)
        ])
        .is_empty());
        // Product samplings are not FOOD_SAMPLING_FAILED.
        let mut d = enterprise();
        d.samplings = vec![sample("F", "2026-05-01", false)];
        let (_, f) = explain(&d, false, &m, rules(), day(AS_OF));
        assert!(f
            .iter()
            .all(|x| x.indicator != Indicator::FoodSamplingFailed));
    }

    /// Lenient treatment (行政处罚法 2021 Art. 32): a lighter (从轻) penalty weighs the
    /// model's `lenience.lighter` share of its points, a mitigated (减轻) one
    /// `lenience.mitigated`; the food penalty points follow the same share.
    #[test]
    fn a_lenient_penalty_weighs_its_share() {
        use crate::domain::Lenience;
        let m = Model::builtin();
        let on = day("2026-09-01");
        let points = |lenience| {
            let mut d = enterprise();
            let mut p = penalty(1, on, vec![PenaltyKind::Fine], 500_000, false);
            p.lenience = lenience;
            d.penalties.push(p);
            let (a, f) = explain(&d, false, &m, rules(), day(AS_OF));
            assert_eq!(a.score, f.iter().map(|x| x.points).sum::<Centi>());
            f.iter()
                .filter(|x| x.indicator == Indicator::PenaltyFine)
                .map(|x| x.points)
                .sum::<Centi>()
        };
        let full = points(None);
        assert!(full > 0);
        assert_eq!(
            points(Some(Lenience::Lighter)),
            full * i64::from(m.lenience.lighter) / 1000
        );
        assert_eq!(
            points(Some(Lenience::Mitigated)),
            full * i64::from(m.lenience.mitigated) / 1000
        );
        assert!(points(Some(Lenience::Mitigated)) < points(Some(Lenience::Lighter)));
        // A model without [lenience] weighs them fully.
        let plain = Model::parse(
            &m.source
                .replace("[lenience]\nlighter = 0.75\nmitigated = 0.5\n", ""),
        )
        .unwrap();
        assert_eq!(
            plain.lenience,
            crate::domain::model::LenienceWeights::default()
        );
    }

    /// Complaints found true (social evaluation, cr-2026.4): points per verified one,
    /// fading over a year from the month's first day, capped; a month after `as_of` is
    /// not known yet; a failed food sampling is not the general model's.
    #[test]
    fn verified_complaints_weigh_per_month_capped_and_only_once_known() {
        use crate::domain::{stats::Month, ComplaintSummary};
        let m = Model::builtin();
        let spec = m.spec(Indicator::ComplaintsVerified).unwrap().clone();
        let mut d = enterprise();
        let month = |mm: u32, verified: u32| ComplaintSummary {
            uscc: Uscc::placeholder(),
            month: Month(mm),
            complaints: 9,
            reports: 1,
            verified,
            source: "12315".into(),
            recorded_at_ms: 0,
        };
        d.complaints = vec![month(202609, 1), month(202610, 2), month(202611, 1)];
        let (_, f) = explain(&d, false, &m, rules(), day(AS_OF));
        let social: Vec<_> = f
            .iter()
            .filter(|x| x.indicator == Indicator::ComplaintsVerified)
            .collect();
        // 2026-11 is after the as-of month (2026-10): not known yet.
        assert_eq!(social.len(), 2, "{social:?}");
        assert_eq!(social[0].record, "complaints/2026-09");
        // September, 30 days old: one verified, linear decay over 365 days.
        assert_eq!(social[0].points, spec.points * (365 - 30) / 365);
        // October, the as-of month's first day: two, full points.
        assert_eq!(social[1].points, 2 * spec.points);
        d.complaints = vec![month(202610, 50)];
        let (_, f) = explain(&d, false, &m, rules(), day(AS_OF));
        let total: Centi = f
            .iter()
            .filter(|x| x.indicator == Indicator::ComplaintsVerified)
            .map(|x| x.points)
            .sum();
        assert_eq!(Some(total), spec.max_points);
    }

    /// One rule for a penalty's weight (issue 14, defect 3): it weighs from its decision
    /// until the end of the publicity SAMR Order 45 Art. 14 gives it (DOMAIN §5), or
    /// until an approved repair ended that publicity (Order 45 Art. 16), whichever is
    /// sooner. Rows: fine (fen), ended early on, as of, weighs? and the reason.
    #[test]
    fn a_penalty_weighs_while_its_publicity_lasts_lapse_or_repair_alike() {
        let m = Model::builtin();
        let decided = "2025-01-15";
        let rows: &[(u64, Option<&str>, &str, bool, &str)] = &[
            // ¥1,000: lower amount, 3 months counted per 民法典 Art. 201–202.
            (100_000, None, "2025-04-15", true, "last day of 3 months"),
            (
                100_000,
                None,
                "2025-04-16",
                false,
                "3-month publicity lapsed",
            ),
            // ¥50,000 is still the lower amount (inclusive, Shanghai 2022–2027).
            (
                5_000_000,
                None,
                "2025-04-16",
                false,
                "¥50,000 is lower-amount",
            ),
            // ¥50,001: 3 years (the model's 1,095-day linear decay ends with it).
            (5_000_100, None, "2027-12-31", true, "within 3 years"),
            // Repaired: publicity ended 2025-09-01, so the weight ends the day before.
            (
                5_000_100,
                Some("2025-09-01"),
                "2025-08-31",
                true,
                "before the repair",
            ),
            (
                5_000_100,
                Some("2025-09-01"),
                "2025-09-01",
                false,
                "repaired",
            ),
            // A repair after a lapse changes nothing.
            (
                100_000,
                Some("2025-09-01"),
                "2025-04-16",
                false,
                "lapsed first",
            ),
        ];
        for (fine, ended, as_of, weighs, why) in rows {
            let mut r = enterprise();
            let mut p = penalty(1, day(decided), vec![PenaltyKind::Fine], *fine, false);
            p.publicity_ended_on = ended.map(day);
            r.penalties.push(p);
            let (_, f) = explain(&r, false, &m, rules(), day(as_of));
            let has = f.iter().any(|f| f.record.starts_with("penalty/"));
            assert_eq!(
                has, *weighs,
                "{fine} fen, ended {ended:?}, as of {as_of}: {why}"
            );
        }
        let long = penalty(1, day(decided), vec![PenaltyKind::Fine], 5_000_100, false);
        let publicity = &rules().in_force(day(decided)).publicity;
        let weighs_until = |p: &Penalty| publicity.weighs_until(p, EntityType::Enterprise);
        assert_eq!(weighs_until(&long), day("2028-01-15"));
        let banned = Penalty {
            kinds: vec![PenaltyKind::PracticeBan],
            restriction_ends_on: Some(day("2030-06-30")),
            ..long
        };
        assert_eq!(
            weighs_until(&banned),
            day("2030-06-30"),
            "until the restriction ends"
        );
    }

    #[test]
    fn a_clean_enterprise_is_a_and_factors_sum_to_the_score() {
        let m = Model::builtin();
        let mut r = enterprise();
        let (a, f) = explain(&r, false, &m, rules(), day(AS_OF));
        assert_eq!((a.score, a.class), (0, RiskClass::A));
        assert!(f.is_empty());
        r.penalties.push(penalty(
            1,
            day("2026-01-10"),
            vec![PenaltyKind::Fine],
            6_000_000, // ¥60,000: above the lower amount, so 3 years of publicity
            false,
        ));
        r.inspections.push(InspectionResult {
            task_id: "T1".into(),
            uscc: Uscc::placeholder(),
            inspected_on: day("2026-05-01"),
            check_items: vec![],
            problems_found: true,
            recorded_at_ms: 0,
            problem_items: vec![],
        });
        let (a, f) = explain(&r, true, &m, rules(), day(AS_OF));
        assert_eq!(a.score, f.iter().map(|f| f.points).sum::<Centi>());
        let codes: Vec<_> = f.iter().map(|f| f.indicator).collect();
        assert_eq!(
            codes,
            [
                Indicator::PenaltyFine,
                Indicator::InspectionProblem,
                Indicator::RelatedHighRisk
            ]
        );
        assert_eq!(f[0].record, "penalty/沪市监罚〔2025〕1号");
        // 8 points decayed linearly over 1095 days, 264 days old.
        assert_eq!(f[0].points, 800 * (1095 - 264) / 1095);
    }

    #[test]
    fn hard_rules_and_relation_sources() {
        let m = Model::builtin();
        let mut r = enterprise();
        r.listings.push(listing(
            ListKind::AbnormalOperations,
            day("2026-07-01"),
            None,
        ));
        let a = assess(&r, false, &m, rules(), day(AS_OF), |_| {});
        assert!(a.class >= RiskClass::C);
        assert!(!a.relation_source);
        // Before the listing date it is not known.
        let a = assess(&r, false, &m, rules(), day("2026-06-30"), |_| {});
        assert_eq!(a.class, RiskClass::A);
        r.listings
            .push(listing(ListKind::SeriousIllegal, day("2026-08-01"), None));
        let a = assess(&r, false, &m, rules(), day(AS_OF), |_| {});
        assert_eq!(a.class, RiskClass::D);
        assert!(a.relation_source);
        // Removed listings no longer hold.
        r.listings[1].removed_on = Some(day("2026-09-01"));
        r.listings[0].removed_on = Some(day("2026-09-01"));
        let a = assess(&r, false, &m, rules(), day(AS_OF), |_| {});
        assert!(a.class < RiskClass::C, "{a:?}");
    }

    /// An individual business is marked (经营异常状态), not listed (DOMAIN §4): the mark
    /// scores ABNORMAL_LISTING_OPEN's points, but the "≥ C" hard rule is about the
    /// abnormal-operations list (issue 14, defect 6).
    #[test]
    fn an_abnormal_mark_scores_but_is_not_the_listing_hard_rule() {
        // 2 points: below C, so only the hard rule could make it C.
        let m =
            Model::parse(&crate::domain::model::BUILTIN_MODEL.replace("points = 25", "points = 2"))
                .unwrap();
        let mut r = enterprise();
        if let Some(e) = r.enterprise.as_mut() {
            e.entity_type = EntityType::IndividualBusiness;
        }
        r.listings.push(listing(
            ListKind::AbnormalStatusMark,
            day("2026-07-01"),
            None,
        ));
        let (a, f) = explain(&r, false, &m, rules(), day(AS_OF));
        assert_eq!((a.class, a.hard_rule), (RiskClass::A, None), "{a:?}");
        assert!(f
            .iter()
            .any(|f| f.indicator == Indicator::AbnormalListingOpen));
        r.listings[0].kind = ListKind::AbnormalOperations;
        let a = assess(&r, false, &m, rules(), day(AS_OF), |_| {});
        assert_eq!(a.class, RiskClass::C);
        assert_eq!(
            a.hard_rule.map(|h| h.condition),
            Some(Condition::AbnormalListingOpen)
        );
    }

    #[test]
    fn missing_reports_count_only_while_active_and_are_capped() {
        let m = Model::builtin();
        let mut r = enterprise();
        r.reports.clear();
        let (a, f) = explain(&r, false, &m, rules(), day(AS_OF));
        // 2022..2025 deadlines within three years: 2023, 2024, 2025 → capped at 30.
        let missing: Centi = f
            .iter()
            .filter(|f| f.indicator == Indicator::AnnualReportMissing)
            .map(|f| f.points)
            .sum();
        assert_eq!(missing, 3000);
        assert_eq!(a.score, 3000);
        if let Some(e) = r.enterprise.as_mut() {
            e.status = EnterpriseStatus::Deregistered;
        }
        assert_eq!(assess(&r, false, &m, rules(), day(AS_OF), |_| {}).score, 0);
    }

    fn arb_penalty() -> impl Strategy<Value = Penalty> {
        (
            0u32..100_000,
            0i32..3000,
            prop::sample::subsequence(
                vec![
                    PenaltyKind::Warning,
                    PenaltyKind::Fine,
                    PenaltyKind::Confiscation,
                    PenaltyKind::LicenceRevocation,
                ],
                0..3,
            ),
            0u64..50_000_000,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(n, back, kinds, fine, heavier, none)| {
                let mut p = penalty(n, day(AS_OF).add_days(-back), kinds, fine, heavier);
                p.no_penalty = none;
                p
            })
    }

    fn arb_records() -> impl Strategy<Value = EnterpriseRecords> {
        (
            prop::collection::vec(arb_penalty(), 0..6),
            prop::collection::vec((0i32..2000, any::<bool>(), any::<bool>()), 0..4),
            prop::collection::vec((0i32..2000, any::<bool>()), 0..4),
            0usize..12,
        )
            .prop_map(|(penalties, listings, inspections, reports)| {
                let mut r = enterprise();
                r.penalties = penalties;
                r.reports.truncate(reports);
                r.listings = listings
                    .into_iter()
                    .map(|(back, serious, removed)| {
                        let on = day(AS_OF).add_days(-back);
                        let kind = if serious {
                            ListKind::SeriousIllegal
                        } else {
                            ListKind::AbnormalOperations
                        };
                        listing(kind, on, removed.then(|| on.add_days(back / 2)))
                    })
                    .collect();
                r.inspections = inspections
                    .into_iter()
                    .enumerate()
                    .map(|(i, (back, problems))| InspectionResult {
                        task_id: format!("T{i}"),
                        uscc: Uscc::placeholder(),
                        inspected_on: day(AS_OF).add_days(-back),
                        check_items: vec![],
                        problems_found: problems,
                        recorded_at_ms: 0,
                        problem_items: vec![],
                    })
                    .collect();
                r
            })
    }

    proptest! {
        #[test]
        fn adding_a_penalty_never_lowers_the_score(r in arb_records(), p in arb_penalty(), related in any::<bool>()) {
            let m = Model::builtin();
            let before = assess(&r, related, &m, rules(), day(AS_OF), |_| {});
            let mut more = r.clone();
            more.penalties.push(p);
            let after = assess(&more, related, &m, rules(), day(AS_OF), |_| {});
            prop_assert!(after.score >= before.score);
            prop_assert!(after.class >= before.class);
        }

        #[test]
        fn a_penalty_outside_its_window_contributes_nothing(r in arb_records(), p in arb_penalty(), extra in 1i32..5000) {
            let m = Model::builtin();
            let mut old = p.clone();
            // Older than the longest penalty window (severe, five years).
            old.decided_on = day(AS_OF).add_days(-1826 - extra);
            let mut future = p;
            future.decided_on = day(AS_OF).add_days(extra);
            let base = assess(&r, false, &m, rules(), day(AS_OF), |_| {});
            for x in [old, future] {
                let mut more = r.clone();
                more.penalties.push(x);
                prop_assert_eq!(assess(&more, false, &m, rules(), day(AS_OF), |_| {}), base);
            }
        }

        /// Issue 14, defect 3: raising a fine, or removing a repair, never lowers the
        /// score, at any as-of date.
        #[test]
        fn a_larger_fine_or_no_repair_never_lowers_the_score(
            r in arb_records(),
            pick in any::<prop::sample::Index>(),
            raise in 1u64..20_000_000,
            ended_back in 0i32..3000,
            as_of_back in -400i32..3000,
        ) {
            prop_assume!(!r.penalties.is_empty());
            let m = Model::builtin();
            let i = pick.index(r.penalties.len());
            let as_of = day(AS_OF).add_days(-as_of_back);
            let mut repaired = r.clone();
            repaired.penalties[i].publicity_ended_on = Some(day(AS_OF).add_days(-ended_back));
            let mut unrepaired = repaired.clone();
            unrepaired.penalties[i].publicity_ended_on = None;
            let score = |d: &EnterpriseRecords| assess(d, false, &m, rules(), as_of, |_| {});
            prop_assert!(score(&unrepaired).score >= score(&repaired).score);
            for base in [&repaired, &unrepaired] {
                let mut raised = base.clone();
                raised.penalties[i].fine_fen += raise;
                prop_assert!(score(&raised).score >= score(base).score);
                prop_assert!(score(&raised).class >= score(base).class);
            }
        }

        #[test]
        fn hard_rules_always_hold_and_factors_sum(r in arb_records(), related in any::<bool>()) {
            let m = Model::builtin();
            let (a, f) = explain(&r, related, &m, rules(), day(AS_OF));
            prop_assert_eq!(a.score, f.iter().map(|f| f.points).sum::<Centi>());
            // The count a run keeps (an empty explanation is answered without the
            // dossier) is the factors' own.
            prop_assert_eq!(a.factors as usize, f.len());
            prop_assert!(a.class >= a.score_class);
            let open = |k: ListKind| r.listings.iter().any(|l| l.kind == k && l.is_open_on(day(AS_OF)));
            if open(ListKind::SeriousIllegal) {
                prop_assert_eq!(a.class, RiskClass::D);
            }
            if open(ListKind::AbnormalOperations) {
                prop_assert!(a.class >= RiskClass::C);
            }
        }
    }
}
