//! Credit repair (信用修复): the case state machine, eligibility at submission (each
//! condition explained), and deadlines in working days (DOMAIN.md §4–§6).

use serde::{Deserialize, Serialize};

use super::{
    calendar::WorkCalendar,
    period,
    rules::{report_compliance, Compliance},
    ruleset::{RepairRules, RuleBook},
    scoring::RecordRef,
    Date, DomainError, EnterpriseRecords, ListKind, Listing, ListingReason, Uscc,
};

/// States of a repair case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RepairState {
    Submitted,
    Accepted,
    NotAccepted,
    Approved,
    Denied,
    Revoked,
}

impl RepairState {
    /// Every state.
    pub const ALL: [RepairState; 6] = [
        RepairState::Submitted,
        RepairState::Accepted,
        RepairState::NotAccepted,
        RepairState::Approved,
        RepairState::Denied,
        RepairState::Revoked,
    ];

    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            RepairState::Submitted => "SUBMITTED",
            RepairState::Accepted => "ACCEPTED",
            RepairState::NotAccepted => "NOT_ACCEPTED",
            RepairState::Approved => "APPROVED",
            RepairState::Denied => "DENIED",
            RepairState::Revoked => "REVOKED",
        }
    }

    /// Whether the case still waits for an operator.
    pub fn is_open(self) -> bool {
        matches!(self, RepairState::Submitted | RepairState::Accepted)
    }

    /// The state `action` leads to, or why it cannot be taken from here.
    pub fn apply(self, action: RepairAction) -> Result<RepairState, DomainError> {
        use RepairAction as A;
        use RepairState as S;
        match (self, action) {
            (S::Submitted, A::Accept) => Ok(S::Accepted),
            (S::Submitted, A::NotAccept) => Ok(S::NotAccepted),
            (S::Accepted, A::Approve) => Ok(S::Approved),
            (S::Accepted, A::Deny) => Ok(S::Denied),
            (S::Approved, A::Revoke) => Ok(S::Revoked),
            (from, a) => Err(DomainError::invalid(
                "state",
                format!(
                    "cannot {} a case in state {} (allowed from {})",
                    a.name(),
                    from.name(),
                    a.from_state().name()
                ),
            )),
        }
    }
}

/// Operator actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RepairAction {
    Accept,
    NotAccept,
    Approve,
    Deny,
    Revoke,
}

impl RepairAction {
    /// Every action.
    pub const ALL: [RepairAction; 5] = [
        RepairAction::Accept,
        RepairAction::NotAccept,
        RepairAction::Approve,
        RepairAction::Deny,
        RepairAction::Revoke,
    ];

    /// Verb.
    pub fn name(self) -> &'static str {
        match self {
            RepairAction::Accept => "accept",
            RepairAction::NotAccept => "not-accept",
            RepairAction::Approve => "approve",
            RepairAction::Deny => "deny",
            RepairAction::Revoke => "revoke",
        }
    }

    /// The one state the action applies to.
    pub fn from_state(self) -> RepairState {
        match self {
            RepairAction::Accept | RepairAction::NotAccept => RepairState::Submitted,
            RepairAction::Approve | RepairAction::Deny => RepairState::Accepted,
            RepairAction::Revoke => RepairState::Approved,
        }
    }
}

/// What a case asks to repair.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RepairTarget {
    /// Removal from the abnormal-operations list (or the abnormal-status mark).
    AbnormalListing {
        kind: ListKind,
        listed_on: Date,
        reason: ListingReason,
    },
    /// Early removal from the serious-illegal-dishonest list.
    SeriousListing {
        listed_on: Date,
        reason: ListingReason,
    },
    /// Early end of a penalty's publicity.
    PenaltyPublicity { decision_number: String },
    /// Repair of a false-commitment record: a commitment found broken
    /// (不实承诺信息信用修复).
    FalseCommitment { commitment_id: String },
}

impl RepairTarget {
    /// Readable id: `listing/<kind>/<date>/<reason>`, `penalty/<decision number>` or
    /// `commitment/<id>`.
    pub fn id(&self) -> String {
        match self {
            RepairTarget::AbnormalListing {
                kind,
                listed_on,
                reason,
            } => format!("listing/{}/{listed_on}/{}", kind.name(), reason.name()),
            RepairTarget::SeriousListing { listed_on, reason } => format!(
                "listing/{}/{listed_on}/{}",
                ListKind::SeriousIllegal.name(),
                reason.name()
            ),
            RepairTarget::PenaltyPublicity { decision_number } => {
                RecordRef::Penalty(decision_number).id()
            }
            RepairTarget::FalseCommitment { commitment_id } => {
                RecordRef::Commitment(commitment_id).id()
            }
        }
    }

    /// Working days an operator has to decide after acceptance (DOMAIN.md §6; the
    /// values are rules parameters `repair.decide_*_wd`).
    pub fn decide_within(&self, rules: &RepairRules) -> u32 {
        match self {
            RepairTarget::AbnormalListing { .. } => rules.decide_abnormal_listing_wd,
            _ => rules.decide_other_wd,
        }
    }

    /// The natural key (kind, listed on, reason) of the listing the target names; `None`
    /// for a penalty or a commitment.
    pub fn listing_key(&self) -> Option<(ListKind, Date, ListingReason)> {
        match self {
            RepairTarget::AbnormalListing {
                kind,
                listed_on,
                reason,
            } => Some((*kind, *listed_on, *reason)),
            RepairTarget::SeriousListing { listed_on, reason } => {
                Some((ListKind::SeriousIllegal, *listed_on, *reason))
            }
            RepairTarget::PenaltyPublicity { .. } | RepairTarget::FalseCommitment { .. } => None,
        }
    }

    /// The listing the target names, in a dossier.
    pub fn listing<'a>(&self, d: &'a EnterpriseRecords) -> Option<&'a Listing> {
        let key = self.listing_key()?;
        d.listings
            .iter()
            .find(|l| (l.kind, l.listed_on, l.reason) == key)
    }
}

/// One step of a case's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairStep {
    pub state: RepairState,
    pub at_ms: i64,
    pub on: Date,
    pub by: String,
    pub reason: String,
}

/// A repair case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairCase {
    pub id: u64,
    pub uscc: Uscc,
    pub target: RepairTarget,
    pub reason: String,
    /// The signed integrity commitment (守信承诺书), as text or a document reference.
    pub commitment: String,
    pub evidence: Vec<String>,
    pub state: RepairState,
    pub submitted_on: Date,
    /// Why it is eligible, condition by condition.
    pub eligibility: Vec<String>,
    /// Accept or not by this day.
    pub accept_due: Date,
    /// Decide by this day (once accepted).
    pub decide_due: Option<Date>,
    pub history: Vec<RepairStep>,
}

impl RepairCase {
    /// The due date of the next step, if the case is open.
    pub fn due(&self) -> Option<Date> {
        match self.state {
            RepairState::Submitted => Some(self.accept_due),
            RepairState::Accepted => self.decide_due,
            _ => None,
        }
    }

    /// Whether the next step is late on `today`.
    pub fn overdue(&self, today: Date) -> bool {
        self.due().is_some_and(|d| today > d)
    }
}

/// Checks a target at submission; `Ok` carries the explanation of each condition met.
/// `revoked_on`: dates of this enterprise's revoked cases (false commitments).
pub fn eligibility(
    target: &RepairTarget,
    d: &EnterpriseRecords,
    today: Date,
    rules: &RuleBook,
    revoked_on: &[Date],
    evidence: &[String],
) -> Result<Vec<String>, DomainError> {
    let no = |reason: String| DomainError::invalid("target", reason);
    let mut why = Vec::new();
    let now = rules.in_force(today);
    let bar = now.repair.false_commitment_bar_years;
    // The bar runs for `bar` years after the revocation (民法典 Art. 201–202, `period`).
    if let Some(r) = revoked_on
        .iter()
        .find(|r| today < period::elapsed_from(**r, bar * 12))
    {
        return Err(no(format!(
            "a repair was revoked for a false commitment on {r}: no new application before {} (rules {}: repair.false_commitment_bar_years = {bar})",
            period::elapsed_from(*r, bar * 12),
            now.version
        )));
    }
    let e = d
        .enterprise
        .as_ref()
        .ok_or_else(|| no("enterprise not registered".into()))?;
    match target {
        RepairTarget::AbnormalListing { .. } | RepairTarget::SeriousListing { .. } => {
            let l = target
                .listing(d)
                .ok_or_else(|| no(format!("{} is not on record", target.id())))?;
            if !l.is_open_on(today) {
                return Err(no(format!("{} is not open", target.id())));
            }
            why.push(format!("{} is open since {}", target.id(), l.listed_on));
            if let RepairTarget::AbnormalListing { kind, .. } = target {
                if !matches!(
                    kind,
                    ListKind::AbnormalOperations | ListKind::AbnormalStatusMark
                ) {
                    return Err(no("not an abnormal-operations listing or mark".into()));
                }
                // The cure depends on why the firm was listed (SAIC Order 68, 企业经营异常
                // 名录管理暂行办法, Art. 11–14 [R]): a missed annual report is cured by
                // filing it (visible in the records); the other reasons by a fact only
                // the application's evidence can show, which the operator verifies.
                match l.reason {
                    ListingReason::AnnualReportNotFiled => {
                        let missing: Vec<u16> = report_compliance(e, &d.reports, today)
                            .into_iter()
                            .filter(|(_, _, _, c)| *c == Compliance::NotFiled)
                            .map(|(y, _, _, _)| y)
                            .collect();
                        if !missing.is_empty() {
                            return Err(no(format!(
                                "annual reports not made up yet for {missing:?}: file them first"
                            )));
                        }
                        why.push("every annual report due has been filed".into());
                    }
                    reason => {
                        let cure = match reason {
                            ListingReason::UnreachableAtAddress => {
                                "reachable again at the registered address, or the address changed (Art. 14)"
                            }
                            ListingReason::FalsePublicity => {
                                "the false information corrected (Art. 13)"
                            }
                            ListingReason::PublicityOrderIgnored => {
                                "the ordered information published (Art. 12)"
                            }
                            _ => "the cause of the listing removed",
                        };
                        if evidence.iter().all(|x| x.trim().is_empty()) {
                            return Err(DomainError::invalid(
                                "evidence",
                                format!(
                                    "listed for {}: proof of the cure is required ({cure})",
                                    reason.name()
                                ),
                            ));
                        }
                        why.push(format!(
                            "listed for {}: cure claimed with {} piece(s) of evidence, to verify: {cure}",
                            reason.name(),
                            evidence.len()
                        ));
                    }
                }
            } else {
                let years = now.lists.serious_early_removal_after_years;
                let from = period::elapsed_from(l.listed_on, years * 12);
                if today < from {
                    return Err(no(format!(
                        "early removal from the serious list only after {years} full year(s): from {from} (rules {})",
                        now.version
                    )));
                }
                why.push(format!(
                    "listed for at least {years} full year(s) (since {})",
                    l.listed_on
                ));
                // SAMR Order 44 (市场监督管理严重违法失信名单管理办法), early removal:
                // besides the minimum time, no further heavier penalty since the listing
                // and no restriction still running (issue 14 review; DOMAIN.md §5).
                if let Some(p) = d.penalties.iter().find(|p| {
                    p.heavier
                        && !p.no_penalty
                        && p.decided_on > l.listed_on
                        && p.decided_on <= today
                }) {
                    return Err(no(format!(
                        "a heavier penalty ({:?}, decided {}) was imposed after the listing",
                        p.decision_number, p.decided_on
                    )));
                }
                why.push("no heavier penalty since the listing".into());
                if let Some(p) = d.penalties.iter().find(|p| {
                    p.restriction_ends_on.is_some_and(|r| r >= today) && p.decided_on <= today
                }) {
                    return Err(no(format!(
                        "the restriction of penalty {:?} runs until {}",
                        p.decision_number,
                        p.restriction_ends_on
                            .map(|r| r.to_string())
                            .unwrap_or_default()
                    )));
                }
                why.push("no restriction still running".into());
            }
        }
        RepairTarget::FalseCommitment { commitment_id } => {
            let c = d
                .commitments
                .iter()
                .find(|c| &c.commitment_id == commitment_id)
                .ok_or_else(|| no(format!("commitment {commitment_id:?} is not on record")))?;
            let Some(found) = c.broken_on().filter(|_| c.is_false_on(today)) else {
                return Err(no(format!(
                    "commitment {commitment_id:?} is not a false-commitment record (not found broken, or already repaired)"
                )));
            };
            // The minimum period runs from the finding (民法典 Art. 201-202, `period`).
            let months = now.repair.false_commitment_min_months;
            let from = period::elapsed_from(found, months);
            if today < from {
                return Err(no(format!(
                    "a false commitment is repairable only after {months} month(s): from {from} (rules {}: repair.false_commitment_min_months)",
                    now.version
                )));
            }
            why.push(format!(
                "commitment {commitment_id:?} found broken on {found}; {months} month(s) elapsed on {from}"
            ));
        }
        RepairTarget::PenaltyPublicity { decision_number } => {
            let p = d
                .penalties
                .iter()
                .find(|p| &p.decision_number == decision_number)
                .ok_or_else(|| no(format!("penalty {decision_number:?} is not on record")))?;
            // The rules in force when the penalty was decided set its publicity.
            let puby = rules
                .in_force(p.decided_on)
                .publicity
                .publicity(p, e.entity_type);
            if !puby.in_publicity_on(today, p.publicity_ended_on) {
                return Err(no(format!(
                    "penalty {decision_number:?} is not in publicity ({})",
                    puby.rule
                )));
            }
            let Some(from) = puby.early_end_from else {
                return Err(no(format!(
                    "the publicity of penalty {decision_number:?} cannot be ended early ({})",
                    puby.rule
                )));
            };
            if today < from {
                return Err(no(format!(
                    "early end of publicity only from {from} (minimum period not elapsed)"
                )));
            }
            why.push(format!("minimum publicity period elapsed on {from}"));
            let listed = d.listings.iter().any(|l| {
                l.is_open_on(today)
                    && matches!(
                        l.kind,
                        ListKind::AbnormalOperations | ListKind::SeriousIllegal
                    )
            });
            if listed {
                return Err(no(
                    "the enterprise is on the abnormal-operations or serious list".into(),
                ));
            }
            why.push("not on the abnormal-operations or serious list".into());
            if d.penalties.iter().any(|q| {
                q.decision_number != p.decision_number
                    && q.domain == p.domain
                    && q.decided_on > p.decided_on
                    && !q.no_penalty
            }) {
                return Err(no(format!(
                    "a later penalty of the same type ({:?}) is on record",
                    p.domain
                )));
            }
            why.push("no later penalty of the same type".into());
        }
    }
    Ok(why)
}

/// The last day an objection to listing `l` may be filed: `lists.listing_objection_days`
/// of the rules in force on its listing day, counted from the day after it (民法典
/// Art. 201).
pub fn objection_deadline(l: &Listing, rules: &RuleBook) -> Date {
    let days = rules.in_force(l.listed_on).lists.listing_objection_days;
    l.listed_on.add_days(days as i32)
}

/// Deadline to accept or not a case submitted on `on`.
pub fn accept_due(cal: &WorkCalendar, rules: &RepairRules, on: Date) -> Date {
    cal.add_working_days(on, rules.accept_within_wd)
}

/// Deadline to decide a case accepted on `on`.
pub fn decide_due(
    cal: &WorkCalendar,
    rules: &RepairRules,
    target: &RepairTarget,
    on: Date,
) -> Date {
    cal.add_working_days(on, target.decide_within(rules))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transition_legal_or_refused_naming_both_states() {
        use RepairAction as A;
        use RepairState as S;
        let legal = [
            (S::Submitted, A::Accept, S::Accepted),
            (S::Submitted, A::NotAccept, S::NotAccepted),
            (S::Accepted, A::Approve, S::Approved),
            (S::Accepted, A::Deny, S::Denied),
            (S::Approved, A::Revoke, S::Revoked),
        ];
        for s in RepairState::ALL {
            for a in RepairAction::ALL {
                match legal.iter().find(|(f, x, _)| *f == s && *x == a) {
                    Some((_, _, to)) => assert_eq!(s.apply(a), Ok(*to)),
                    None => {
                        let e = s.apply(a).unwrap_err();
                        assert!(e.reason.contains(s.name()), "{e}");
                        assert!(e.reason.contains(a.from_state().name()), "{e}");
                    }
                }
            }
        }
        assert!(S::Submitted.is_open() && S::Accepted.is_open());
        assert!(!S::Approved.is_open() && !S::Revoked.is_open());
    }

    fn serious_dossier(listed_on: &str) -> EnterpriseRecords {
        use crate::domain::{fixtures, Uscc};
        let mut r = fixtures::dossier("2015-01-01");
        r.listings.push(fixtures::listing(
            ListKind::SeriousIllegal,
            fixtures::day(listed_on),
        ));
        RuleBook::builtin().restore(Uscc::placeholder(), &mut r);
        r
    }

    fn heavier(decided: &str, restriction_ends: Option<&str>) -> crate::domain::Penalty {
        use crate::domain::fixtures::{self, day};
        crate::domain::Penalty {
            fine_fen: 100_000_000,
            heavier: restriction_ends.is_none(),
            restriction_ends_on: restriction_ends.map(day),
            ..fixtures::penalty(&format!("沪市监处〔{decided}〕"), day(decided))
        }
    }

    /// Early removal from the serious-illegal list (issue 14, defect 1). Rows: listing
    /// day, application day, a penalty after the listing, eligible?, and the source.
    #[test]
    fn serious_list_early_removal_conditions() {
        let d = |s: &str| Date::parse("d", s).unwrap();
        let rules = RuleBook::builtin();
        /// (decided on, restriction ends on) of a penalty after the listing.
        type Later<'a> = Option<(&'a str, Option<&'a str>)>;
        let rows: &[(&str, &str, Later, bool, &str)] = &[
            // SAMR credit-repair measures: at least 1 full year (民法典 Art. 201–202).
            (
                "2025-03-01",
                "2026-03-01",
                None,
                false,
                "1 year not elapsed on its last day",
            ),
            (
                "2025-03-01",
                "2026-03-02",
                None,
                true,
                "1 full year elapsed",
            ),
            // SAMR Order 44: no heavier penalty since the listing.
            (
                "2025-03-01",
                "2026-06-01",
                Some(("2025-09-01", None)),
                false,
                "heavier penalty since",
            ),
            (
                "2025-03-01",
                "2026-06-01",
                Some(("2025-02-01", None)),
                true,
                "heavier penalty before",
            ),
            // SAMR Order 44: no restriction still running.
            (
                "2025-03-01",
                "2026-06-01",
                Some(("2024-01-01", Some("2026-06-01"))),
                false,
                "restriction runs",
            ),
            (
                "2025-03-01",
                "2026-06-01",
                Some(("2024-01-01", Some("2026-05-31"))),
                true,
                "restriction over",
            ),
            // The listing's own 3-year term (SAMR Order 44 [U]): ended, nothing to repair.
            (
                "2023-05-10",
                "2026-05-11",
                None,
                false,
                "term over: not open",
            ),
        ];
        for (listed, today, penalty, ok, why) in rows {
            let mut r = serious_dossier(listed);
            if let Some((decided, restriction)) = penalty {
                r.penalties.push(heavier(decided, *restriction));
            }
            let t = RepairTarget::SeriousListing {
                listed_on: d(listed),
                reason: ListingReason::Other,
            };
            let got = eligibility(&t, &r, d(today), &rules, &[], &[]);
            assert_eq!(got.is_ok(), *ok, "{why}: {got:?}");
        }
    }

    /// A revoked approval bars a new application for 3 full years (repair rules [U];
    /// 民法典 Art. 201–202).
    #[test]
    fn false_commitment_bar_ends_after_three_full_years() {
        let d = |s: &str| Date::parse("d", s).unwrap();
        let r = serious_dossier("2020-01-01");
        let t = RepairTarget::SeriousListing {
            listed_on: d("2020-01-01"),
            reason: ListingReason::Other,
        };
        let rules = RuleBook::builtin();
        let revoked = [d("2021-06-30")];
        let barred = eligibility(&t, &r, d("2022-06-30"), &rules, &revoked, &[]).unwrap_err();
        assert!(barred.reason.contains("2024-07-01"), "{barred}");
        // The listing's 3-year term ended on 2023-01-01: by 2024 nothing is open, so check
        // the bar alone on its last day.
        assert!(eligibility(&t, &r, d("2024-06-30"), &rules, &revoked, &[])
            .unwrap_err()
            .reason
            .contains("false commitment"));
        assert!(!eligibility(&t, &r, d("2024-07-01"), &rules, &revoked, &[])
            .unwrap_err()
            .reason
            .contains("false commitment"));
    }

    #[test]
    fn deadlines_count_working_days() {
        let cal = WorkCalendar::builtin();
        let d = |s: &str| Date::parse("d", s).unwrap();
        // Submitted Wednesday 30 Sep 2026: two working days → Friday 9 Oct (8 Oct, 9 Oct).
        let rules = RepairRules::default();
        assert_eq!(accept_due(&cal, &rules, d("2026-09-30")), d("2026-10-09"));
        let t = RepairTarget::AbnormalListing {
            kind: ListKind::AbnormalOperations,
            listed_on: d("2026-07-01"),
            reason: ListingReason::AnnualReportNotFiled,
        };
        assert_eq!(
            decide_due(&cal, &rules, &t, d("2026-10-09")),
            d("2026-10-13")
        );
    }
}

/// State of an objection (异议) to a credit record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectionState {
    /// Filed; the record is marked disputed.
    Open,
    /// Verified: the record stands.
    Upheld,
    /// The record was wrong and has been corrected.
    Corrected,
}

impl ObjectionState {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            ObjectionState::Open => "OPEN",
            ObjectionState::Upheld => "UPHELD",
            ObjectionState::Corrected => "CORRECTED",
        }
    }
}

/// An objection to one record of an enterprise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Objection {
    pub id: u64,
    pub uscc: Uscc,
    /// The record disputed: `penalty/<decision number>`, `listing/<kind>/<date>/<reason>`,
    /// `annual_report/<year>` or `inspection/<task id>`.
    pub record: String,
    pub reason: String,
    pub evidence: Vec<String>,
    pub state: ObjectionState,
    pub filed_on: Date,
    pub decide_due: Date,
    /// How it was resolved (and the correction made), once resolved.
    pub resolution: String,
    pub history: Vec<ObjectionStep>,
}

/// One step of an objection's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectionStep {
    pub state: ObjectionState,
    pub at_ms: i64,
    pub on: Date,
    pub by: String,
    pub reason: String,
}

/// Record ids of a dossier, as objections name them.
pub fn record_ids(d: &EnterpriseRecords) -> Vec<String> {
    let mut out = Vec::new();
    out.extend(
        d.penalties
            .iter()
            .map(|p| format!("penalty/{}", p.decision_number)),
    );
    out.extend(
        d.listings
            .iter()
            .map(|l| format!("listing/{}", l.listing_id())),
    );
    out.extend(
        d.reports
            .iter()
            .map(|r| format!("annual_report/{}", r.year)),
    );
    out.extend(
        d.inspections
            .iter()
            .map(|i| format!("inspection/{}", i.task_id)),
    );
    out
}
