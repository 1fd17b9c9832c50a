//! Derived facts: penalty publicity (DOMAIN.md §5), annual-report deadlines and
//! obligations (§4), and the annual-report sweep's decision for one enterprise.
//!
//! The parameters are Shanghai's defaults in [`PublicityRules`] and [`SweepRules`];
//! they are data, so another jurisdiction or a later revision is a configuration change.

use serde::{Deserialize, Serialize};

use super::{
    period, AnnualReport, Date, Enterprise, EntityType, ListKind, Listing, ListingReason, Penalty,
    PenaltyKind,
};

/// Parameters of penalty publicity (SAMR Order 45 and the local lower-amount thresholds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicityRules {
    /// Lower-amount fine threshold for organisations, fen, inclusive (Shanghai ¥50,000).
    pub lower_fine_organisation_fen: u64,
    /// Lower-amount fine threshold for natural persons (individual businesses), fen,
    /// inclusive (Shanghai ¥5,000).
    pub lower_fine_natural_person_fen: u64,
    /// Publicity of public criticism or a lower-amount fine, months.
    pub short_months: u32,
    /// Publicity otherwise, years.
    pub long_years: u32,
    /// Minimum publicity before an early end may be asked, months.
    pub early_end_after_months: u32,
    /// The same for food, drugs, medical devices and special equipment, months.
    pub early_end_after_months_sensitive: u32,
}

impl Default for PublicityRules {
    fn default() -> Self {
        PublicityRules {
            lower_fine_organisation_fen: 5_000_000,
            lower_fine_natural_person_fen: 500_000,
            short_months: 3,
            long_years: 3,
            early_end_after_months: 6,
            early_end_after_months_sensitive: 12,
        }
    }
}

/// The derived publicity of a penalty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publicity {
    /// Published at all.
    pub published: bool,
    /// First and last day of publicity, when published.
    pub window: Option<(Date, Date)>,
    /// First day an early end may be asked, if ever.
    pub early_end_from: Option<Date>,
    /// The rule applied, readable.
    pub rule: &'static str,
    /// The publication date is not recorded, so the window starts on the decision day:
    /// the earliest day it can have started, so an estimated window never ends later
    /// than the true one (issue 14, defect 2).
    pub start_estimated: bool,
}

/// The day publicity counts from (自公示之日起, SAMR Order 45; DOMAIN §5): the recorded
/// publication day, or else the decision day (the earliest it can be).
pub fn start_of(p: &Penalty) -> Date {
    p.published_on.unwrap_or(p.decided_on)
}

impl Publicity {
    /// Whether the penalty is in publicity on `day`, given an early end if any.
    pub fn in_publicity_on(&self, day: Date, ended_early_on: Option<Date>) -> bool {
        match self.window {
            Some((start, end)) => {
                start <= day && day <= end && ended_early_on.is_none_or(|e| day < e)
            }
            None => false,
        }
    }
}

impl PublicityRules {
    /// The last day of the publicity window `p` has, or would have if it were published
    /// (SAMR Order 45 Art. 14), and the rule applied: 3 months for public criticism or
    /// a lower-amount fine, 3 years otherwise, and until a restriction ends where that
    /// is later. Counted from the publication day ([`start_of`]) per 民法典 Art.
    /// 201–202 (see `period`).
    pub fn term(&self, p: &Penalty, entity_type: EntityType) -> (Date, &'static str) {
        let threshold = if entity_type == EntityType::IndividualBusiness {
            self.lower_fine_natural_person_fen
        } else {
            self.lower_fine_organisation_fen
        };
        let light = p.kinds.iter().all(|k| {
            matches!(
                k,
                PenaltyKind::Warning | PenaltyKind::PublicCriticism | PenaltyKind::Fine
            )
        }) && p.fine_fen <= threshold;
        let start = start_of(p);
        let (mut end, mut rule) = if light {
            (
                period::last_day(start, self.short_months),
                "3 months: public criticism or lower-amount fine",
            )
        } else {
            (
                period::last_day(start, self.long_years * 12),
                "3 years: ordinary-procedure penalty",
            )
        };
        if let Some(r) = p.restriction_ends_on {
            if r > end {
                end = r;
                rule = "until the restriction ends (longer than 3 years)";
            }
        }
        (end, rule)
    }

    /// The last day `p` weighs in a credit-risk score (issue 14, defect 3): the last
    /// day of its [`term`](Self::term), or the day before an approved repair ended its
    /// publicity early, whichever is sooner. One rule for every penalty, published or
    /// not: the weight lasts as long as the publicity the law gives it, so a lapse and
    /// a repair end it alike, and a heavier penalty never weighs for less time.
    pub fn weighs_until(&self, p: &Penalty, entity_type: EntityType) -> Date {
        let (end, _) = self.term(p, entity_type);
        match p.publicity_ended_on {
            Some(e) => end.min(e.add_days(-1)),
            None => end,
        }
    }

    /// Derives the publicity of `p` for an entity of type `entity_type`.
    pub fn publicity(&self, p: &Penalty, entity_type: EntityType) -> Publicity {
        if let Some(rule) = p.unpublished_because() {
            return Publicity {
                published: false,
                window: None,
                early_end_from: None,
                rule,
                start_estimated: false,
            };
        }
        let start = start_of(p);
        let (end, rule) = self.term(p, entity_type);
        let early_end_from = if p.kinds.iter().any(|k| k.bars_early_end()) {
            None
        } else {
            let months = if p.domain.is_sensitive() {
                self.early_end_after_months_sensitive
            } else {
                self.early_end_after_months
            };
            Some(period::elapsed_from(start, months)).filter(|d| *d <= end)
        };
        Publicity {
            published: true,
            window: Some((start, end)),
            early_end_from,
            rule,
            start_estimated: p.published_on.is_none(),
        }
    }
}

/// Filing deadline of `year`'s annual report: 30 June of the following year.
pub fn report_deadline(year: u16) -> Date {
    Date::ymd(i32::from(year) + 1, 6, 30).unwrap_or(Date::MIN)
}

/// Whether a filing was on time.
pub fn report_on_time(r: &AnnualReport) -> bool {
    r.filed_on <= report_deadline(r.year)
}

/// Report years `e` must have filed by `as_of` (deadline passed), oldest first: every
/// year from its establishment year on (firms set up in a year file from the next
/// year), while it is operating or suspended.
pub fn obliged_report_years(e: &Enterprise, as_of: Date) -> Vec<u16> {
    let first = e.established_on.year().max(2000);
    let mut last = as_of.year() - 1;
    if as_of <= report_deadline(last as u16) {
        last -= 1;
    }
    (first..=last).map(|y| y as u16).collect()
}

/// Compliance of one report year.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compliance {
    /// Filed on or before the deadline.
    OnTime,
    /// Filed after the deadline.
    Late,
    /// Not filed and the deadline has passed.
    NotFiled,
    /// Not filed, deadline still ahead.
    Pending,
}

impl Compliance {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Compliance::OnTime => "ON_TIME",
            Compliance::Late => "LATE",
            Compliance::NotFiled => "NOT_FILED",
            Compliance::Pending => "PENDING",
        }
    }
}

/// Compliance of every report year from establishment to `as_of` (filings after `as_of`
/// are not yet known then): (year, deadline, filing date, compliance), oldest first.
pub fn report_compliance(
    e: &Enterprise,
    reports: &[AnnualReport],
    as_of: Date,
) -> Vec<(u16, Date, Option<Date>, Compliance)> {
    report_compliance_since(e, reports, as_of, 0)
}

/// [`report_compliance`] for the years from `from_year` on only (scoring needs just the
/// last few).
pub fn report_compliance_since(
    e: &Enterprise,
    reports: &[AnnualReport],
    as_of: Date,
    from_year: i32,
) -> Vec<(u16, Date, Option<Date>, Compliance)> {
    let first = e.established_on.year().max(2000).max(from_year);
    (first..as_of.year())
        .map(|y| {
            let y = y as u16;
            let deadline = report_deadline(y);
            let filed = reports
                .iter()
                .find(|r| r.year == y && r.filed_on <= as_of)
                .map(|r| r.filed_on);
            let c = match filed {
                Some(f) if f <= deadline => Compliance::OnTime,
                Some(_) => Compliance::Late,
                None if as_of > deadline => Compliance::NotFiled,
                None => Compliance::Pending,
            };
            (y, deadline, filed, c)
        })
        .collect()
}

/// Parameters of the annual-report sweep.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepRules {
    /// Years on the abnormal-operations list without cure before the serious list.
    pub years_to_serious: u32,
}

impl Default for SweepRules {
    fn default() -> Self {
        SweepRules {
            years_to_serious: 3,
        }
    }
}

/// What the sweep does to one enterprise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepDecision {
    /// New entries to add.
    pub add: Vec<Listing>,
    /// Non-filer already listed for the year.
    pub already_listed: bool,
}

impl SweepRules {
    /// Decides for one enterprise with its reports and listings, sweeping `year` on
    /// `as_of` (which must be after the deadline).
    pub fn decide(
        &self,
        e: &Enterprise,
        reports: &[AnnualReport],
        listings: &[Listing],
        year: u16,
        as_of: Date,
    ) -> SweepDecision {
        let mut out = SweepDecision::default();
        if !e.status.is_active() {
            return out;
        }
        let individual = e.entity_type == EntityType::IndividualBusiness;
        let obliged = e.established_on.year() <= i32::from(year);
        let filed = reports
            .iter()
            .any(|r| r.year == year && r.filed_on <= report_deadline(year));
        if obliged && !filed {
            let kind = if individual {
                ListKind::AbnormalStatusMark
            } else {
                ListKind::AbnormalOperations
            };
            let listed = listings.iter().any(|l| {
                l.kind == kind
                    && l.reason == ListingReason::AnnualReportNotFiled
                    && l.report_year == Some(year)
            });
            if listed {
                out.already_listed = true;
            } else {
                out.add.push(Listing {
                    uscc: e.uscc,
                    kind,
                    listed_on: as_of,
                    reason: ListingReason::AnnualReportNotFiled,
                    reason_text: format!(
                        "{year} annual report not filed by {}",
                        report_deadline(year)
                    ),
                    authority: "annual-report sweep".into(),
                    report_year: Some(year),
                    removed_on: None,
                    removal_reason: String::new(),
                    recorded_at_ms: 0,
                    legal_rep_hash: None,
                    term_ends_on: None,
                });
            }
        }
        if !individual {
            let serious_open = listings
                .iter()
                .any(|l| l.kind == ListKind::SeriousIllegal && l.is_open_on(as_of));
            let long_abnormal = listings.iter().find(|l| {
                l.kind == ListKind::AbnormalOperations
                    && l.is_open_on(as_of)
                    && period::elapsed_from(l.listed_on, self.years_to_serious * 12) <= as_of
            });
            if let (false, Some(old)) = (serious_open, long_abnormal) {
                out.add.push(Listing {
                    uscc: e.uscc,
                    kind: ListKind::SeriousIllegal,
                    listed_on: as_of,
                    reason: ListingReason::AbnormalThreeYears,
                    reason_text: format!(
                        "on the abnormal-operations list since {} without cure",
                        old.listed_on
                    ),
                    authority: "annual-report sweep".into(),
                    report_year: None,
                    removed_on: None,
                    removal_reason: String::new(),
                    recorded_at_ms: 0,
                    legal_rep_hash: None,
                    term_ends_on: None,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{IndustryCode, Procedure, ViolationDomain};

    fn d(s: &str) -> Date {
        Date::parse("d", s).unwrap()
    }

    fn penalty(kinds: Vec<PenaltyKind>, fine_yuan: u64) -> Penalty {
        Penalty {
            authority: "x".into(),
            domain: ViolationDomain::Advertising,
            kinds,
            fine_fen: fine_yuan * 100,
            ..crate::domain::fixtures::penalty("沪市监处〔2024〕1号", d("2024-03-15"))
        }
    }

    /// Issue 14, defect 2: publicity counts from the day of publication (自公示之日起,
    /// SAMR Order 45; DOMAIN §5), which may be up to 20 working days after the decision.
    /// Rows: published on (None: not recorded), window, early end from, estimated.
    #[test]
    fn publicity_counts_from_the_publication_day() {
        let r = PublicityRules::default();
        let org = EntityType::Enterprise;
        type Row<'a> = (Option<&'a str>, (&'a str, &'a str), &'a str, bool);
        let rows: &[Row] = &[
            // Not recorded: the decision day, the earliest it can be, flagged.
            (None, ("2024-03-15", "2027-03-15"), "2024-09-16", true),
            // Published four weeks later: 3 years and 6 months from then.
            (
                Some("2024-04-11"),
                ("2024-04-11", "2027-04-11"),
                "2024-10-12",
                false,
            ),
            // Published the same day: as the estimate, but exact.
            (
                Some("2024-03-15"),
                ("2024-03-15", "2027-03-15"),
                "2024-09-16",
                false,
            ),
        ];
        for (published, (from, to), early, estimated) in rows {
            let mut p = penalty(vec![PenaltyKind::Fine], 50_001);
            p.published_on = published.map(d);
            let x = r.publicity(&p, org);
            assert_eq!(x.window, Some((d(from), d(to))), "{published:?}");
            assert_eq!(x.early_end_from, Some(d(early)), "{published:?}");
            assert_eq!(x.start_estimated, *estimated, "{published:?}");
            assert_eq!(
                r.weighs_until(&p, org),
                d(to),
                "weight ends with the window"
            );
        }
        // Recorded publication dates are checked (named `penalty.published_on`).
        let today = d("2026-12-02");
        let mut p = penalty(vec![PenaltyKind::Fine], 50_001);
        for (on, ok) in [
            ("2024-03-14", false),
            ("2024-03-15", true),
            ("2026-12-03", false),
        ] {
            p.published_on = Some(d(on));
            match p.validate(today) {
                Ok(()) => assert!(ok, "{on}"),
                Err(e) => assert!(!ok && e.field == "penalty.published_on", "{on}: {e}"),
            }
        }
        p.published_on = Some(d("2024-03-20"));
        p.procedure = Procedure::Simple;
        let e = p.validate(today).unwrap_err();
        assert_eq!(
            e.field, "penalty.published_on",
            "a simple-procedure penalty is not published"
        );
    }

    #[test]
    fn publicity_windows() {
        let r = PublicityRules::default();
        let org = EntityType::Enterprise;
        let p = r.publicity(&penalty(vec![PenaltyKind::Fine], 50_000), org);
        assert_eq!(
            p.window,
            Some((d("2024-03-15"), d("2024-06-15"))),
            "¥50,000 is inclusive; 3 months end on the corresponding day (民法典 Art. 201–202)"
        );
        assert_eq!(
            p.early_end_from, None,
            "the 3-month window ends before six months pass"
        );
        let p = r.publicity(&penalty(vec![PenaltyKind::Fine], 50_001), org);
        assert_eq!(p.window, Some((d("2024-03-15"), d("2027-03-15"))));
        // Order 45 Art. 16: after 6 full months, i.e. the day after 15 September.
        assert_eq!(p.early_end_from, Some(d("2024-09-16")));
        let p = r.publicity(
            &penalty(vec![PenaltyKind::Fine], 6_000),
            EntityType::IndividualBusiness,
        );
        assert_eq!(
            p.window.map(|w| w.1),
            Some(d("2027-03-15")),
            "natural-person threshold ¥5,000"
        );
        let p = r.publicity(&penalty(vec![PenaltyKind::Warning], 0), org);
        assert!(!p.published);
        let mut simple = penalty(vec![PenaltyKind::Fine], 100);
        simple.procedure = Procedure::Simple;
        assert!(!r.publicity(&simple, org).published);
        let mut ban = penalty(vec![PenaltyKind::PracticeBan], 0);
        ban.restriction_ends_on = Some(d("2029-01-01"));
        let p = r.publicity(&ban, org);
        assert_eq!(p.window.map(|w| w.1), Some(d("2029-01-01")));
        assert_eq!(p.early_end_from, None);
        let mut food = penalty(vec![PenaltyKind::Fine], 90_000);
        food.domain = ViolationDomain::Food;
        assert_eq!(
            r.publicity(&food, org).early_end_from,
            Some(d("2025-03-16"))
        );
        // SAMR Order 45 as DOMAIN §5 reads it: medical devices take the ordinary 6 months;
        // a temporary licence suspension (暂扣许可证件) does not bar an early end.
        let mut device = penalty(vec![PenaltyKind::Fine], 90_000);
        device.domain = ViolationDomain::MedicalDevices;
        assert_eq!(
            r.publicity(&device, org).early_end_from,
            Some(d("2024-09-16"))
        );
        let suspension = penalty(
            vec![PenaltyKind::Fine, PenaltyKind::LicenceSuspension],
            90_000,
        );
        assert_eq!(
            r.publicity(&suspension, org).early_end_from,
            Some(d("2024-09-16"))
        );
        assert!(p.in_publicity_on(d("2028-12-31"), None));
        assert!(!p.in_publicity_on(d("2028-12-31"), Some(d("2028-01-01"))));
    }

    fn enterprise(est: &str, t: EntityType) -> Enterprise {
        Enterprise {
            entity_type: t,
            industry: IndustryCode::parse("", "F", "").unwrap(),
            ..crate::domain::fixtures::enterprise(est)
        }
    }

    #[test]
    fn report_obligations() {
        let e = enterprise("2021-05-01", EntityType::Enterprise);
        assert_eq!(obliged_report_years(&e, d("2024-06-30")), vec![2021, 2022]);
        assert_eq!(
            obliged_report_years(&e, d("2024-07-01")),
            vec![2021, 2022, 2023]
        );
        let r = AnnualReport {
            uscc: e.uscc,
            year: 2023,
            filed_on: d("2024-06-30"),
            recorded_at_ms: 0,
        };
        assert!(report_on_time(&r));
        let late = AnnualReport {
            filed_on: d("2024-07-01"),
            ..r.clone()
        };
        assert!(!report_on_time(&late));
        let c = report_compliance(&e, &[r, late.clone()], d("2024-12-01"));
        let names: Vec<_> = c.iter().map(|x| (x.0, x.3.name())).collect();
        assert_eq!(
            names,
            vec![(2021, "NOT_FILED"), (2022, "NOT_FILED"), (2023, "ON_TIME")]
        );
        let c = report_compliance(&e, &[], d("2024-03-01"));
        assert_eq!(
            c.last().map(|x| (x.0, x.3)),
            Some((2023, Compliance::Pending))
        );
    }

    #[test]
    fn sweep_lists_non_filers_once_and_escalates() {
        let rules = SweepRules::default();
        let e = enterprise("2019-01-01", EntityType::Enterprise);
        let dec = rules.decide(&e, &[], &[], 2023, d("2024-07-15"));
        assert_eq!(dec.add.len(), 1);
        assert_eq!(dec.add[0].kind, ListKind::AbnormalOperations);
        let again = rules.decide(&e, &[], &dec.add, 2023, d("2024-07-20"));
        assert!(again.add.is_empty() && again.already_listed);
        // 实施细则: three full years on the list (民法典 Art. 201–202: the last day is
        // 2027-07-15), still open: moved to the serious list the day after, not before.
        let not_yet = rules.decide(&e, &[], &dec.add, 2023, d("2027-07-15"));
        assert!(not_yet
            .add
            .iter()
            .all(|l| l.kind != ListKind::SeriousIllegal));
        let later = rules.decide(&e, &[], &dec.add, 2023, d("2027-07-16"));
        assert_eq!(
            later
                .add
                .iter()
                .filter(|l| l.kind == ListKind::SeriousIllegal)
                .count(),
            1
        );
        // Individual businesses are marked and never escalate.
        let ib = enterprise("2019-01-01", EntityType::IndividualBusiness);
        let dec = rules.decide(&ib, &[], &[], 2023, d("2024-07-15"));
        assert_eq!(dec.add[0].kind, ListKind::AbnormalStatusMark);
        assert!(rules
            .decide(&ib, &[], &dec.add, 2023, d("2028-07-15"))
            .add
            .is_empty());
        // Established in the report year's following year: not obliged.
        let young = enterprise("2024-01-05", EntityType::Enterprise);
        assert!(rules
            .decide(&young, &[], &[], 2023, d("2024-07-15"))
            .add
            .is_empty());
    }
}
