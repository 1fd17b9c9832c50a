//! Early warning (风险预警): alerts raised when an enterprise turns riskier, and their
//! triage (研判处置) — acknowledged, assigned to an inspector or unit, closed with an
//! outcome.
//!
//! The Shanghai report on credit-risk classification asks for 企业信用风险检测预警和研判处置
//! (risk monitoring, early warning, triage and handling); which changes raise an alert,
//! and the penalty window and threshold, are configurable data ([`AlertRules`], DOMAIN.md
//! marks no statutory value for them: defaults marked \[U\]).
//!
//! Detection is pure: given an enterprise's dossier before and after a change (and its
//! class before and after), [`detect`] names the alerts; the store raises them in the
//! batch of the change.

use serde::{Deserialize, Serialize};

use super::{Date, DomainError, EnterpriseRecords, ListKind, RegionCode, RiskClass, Uscc};

/// What raised an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlertKind {
    /// The class on the current run got worse (B→C, C→D, A→C, …), after a write or when
    /// a batch run replaced the current one.
    ClassWorsened,
    /// Newly put on the abnormal-operations list (经营异常名录).
    ListedAbnormal,
    /// Newly put on the serious-illegal list (严重违法失信名单).
    ListedSeriousIllegal,
    /// Penalties decided within the window reached the threshold.
    PenaltyThreshold,
    /// A credit-repair case passed the due date of its next step (acceptance or
    /// decision) without it.
    RepairOverdue,
    /// Quality samplings failed in [`AlertRules::sampling_failure_years`] consecutive
    /// calendar years (连续多年抽检不合格): the case for listing the enterprise (列异列严)
    /// goes to an official, who decides through the listing procedure (AddListing).
    RepeatedSamplingFailure,
}

impl AlertKind {
    /// Every kind.
    pub const ALL: [AlertKind; 6] = [
        AlertKind::ClassWorsened,
        AlertKind::ListedAbnormal,
        AlertKind::ListedSeriousIllegal,
        AlertKind::PenaltyThreshold,
        AlertKind::RepairOverdue,
        AlertKind::RepeatedSamplingFailure,
    ];
}

/// Where an alert is in its triage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlertState {
    /// Raised, nobody has looked at it yet.
    Open,
    /// Someone has seen it.
    Acknowledged,
    /// Handed to an inspector or unit.
    Assigned,
    /// Handled: an outcome is recorded.
    Closed,
}

/// How an alert was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlertOutcome {
    /// Inspected; a problem was found.
    ProblemFound,
    /// Inspected; no problem was found.
    NoProblemFound,
    /// Referred to another authority.
    Referred,
    /// Dismissed (the reason is required).
    Dismissed,
}

impl AlertOutcome {
    /// The name the API uses (without its `ALERT_OUTCOME_` prefix).
    pub fn name(self) -> &'static str {
        match self {
            AlertOutcome::ProblemFound => "PROBLEM_FOUND",
            AlertOutcome::NoProblemFound => "NO_PROBLEM_FOUND",
            AlertOutcome::Referred => "REFERRED",
            AlertOutcome::Dismissed => "DISMISSED",
        }
    }
}

/// Which changes raise alerts, and the penalty threshold: data, not constants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertRules {
    /// Raise alerts at all.
    pub enabled: bool,
    /// A class change counts when the new class is at least this many steps worse
    /// (1: B→C counts; 2: only B→D, A→C, …). \[U\]
    pub worsen_steps: u8,
    /// The penalty window, days back from the day of the change. \[U\]
    pub penalty_window_days: u32,
    /// Penalties within the window that raise an alert (when a new one reaches it). \[U\]
    pub penalty_threshold: u32,
    /// An alert not closed this many days after it was raised is overdue. \[U\]
    pub triage_days: u32,
    /// How often the server looks for repair cases past their due date, seconds (and
    /// once at start). \[U\]
    pub deadline_check_secs: u64,
    /// Consecutive calendar years with a failed quality sampling that raise a
    /// [`AlertKind::RepeatedSamplingFailure`] (0: never). The Shanghai report lists
    /// enterprises failing product-quality sampling "for several consecutive years"
    /// (对连续多年不合格的企业…采取列异列严) without a number; DOMAIN.md has no statutory
    /// value. \[U\]
    pub sampling_failure_years: u32,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            enabled: true,
            worsen_steps: 1,
            penalty_window_days: 365,
            penalty_threshold: 3,
            triage_days: 10,
            deadline_check_secs: 3600,
            sampling_failure_years: 2,
        }
    }
}

impl AlertRules {
    /// Refuses values that would make the rules meaningless.
    pub fn validate(&self) -> Result<(), DomainError> {
        if !(1..=3).contains(&self.worsen_steps) {
            return Err(DomainError::invalid(
                "alerts.worsen_steps",
                format!("{} is not 1, 2 or 3", self.worsen_steps),
            ));
        }
        if self.penalty_window_days == 0 || self.penalty_threshold == 0 {
            return Err(DomainError::invalid(
                "alerts.penalty_window_days",
                "the window and the threshold must be at least 1",
            ));
        }
        if self.sampling_failure_years > 20 {
            return Err(DomainError::invalid(
                "alerts.sampling_failure_years",
                format!("{} is more than 20 years", self.sampling_failure_years),
            ));
        }
        Ok(())
    }
}

/// One step of an alert's triage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertStep {
    /// The state it moved to.
    pub state: AlertState,
    /// When (Unix milliseconds).
    pub at_ms: i64,
    /// Who (the principal).
    pub by: String,
    /// A note, the assignee, or the closing reason.
    pub note: String,
}

/// An alert: what happened to whom, why, and what was done about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Position in the alert log (1, 2, …; no gaps).
    pub seq: u64,
    /// What raised it.
    pub kind: AlertKind,
    /// The enterprise.
    pub uscc: Uscc,
    /// Its region then (the district a scoped token sees).
    pub region: RegionCode,
    /// The class before and after (for a class change; else the class then, if known).
    pub class_before: Option<RiskClass>,
    /// The class after.
    pub class_after: Option<RiskClass>,
    /// The change that raised it (the audit cause: RPC and record, or the run).
    pub cause: String,
    /// The records behind it: decision numbers, listing ids, or `run/N`.
    pub records: Vec<String>,
    /// The scoring run the classes are from, if any.
    pub run_id: u64,
    /// The day it was raised (Asia/Shanghai).
    pub raised_on: Date,
    /// When it was raised (Unix milliseconds).
    pub raised_at_ms: i64,
    /// Where it is in triage.
    pub state: AlertState,
    /// Who handles it (after AssignAlert).
    pub assignee: String,
    /// How it was closed.
    pub outcome: Option<AlertOutcome>,
    /// Every triage step, oldest first.
    pub history: Vec<AlertStep>,
}

/// An alert before the log gives it its sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertDraft {
    /// What raised it.
    pub kind: AlertKind,
    /// The enterprise.
    pub uscc: Uscc,
    /// Its region.
    pub region: RegionCode,
    /// Class before.
    pub class_before: Option<RiskClass>,
    /// Class after.
    pub class_after: Option<RiskClass>,
    /// The records behind it.
    pub records: Vec<String>,
    /// The run the classes are from.
    pub run_id: u64,
}

impl AlertDraft {
    /// The alert at sequence `seq`, raised by `cause` on `on` at `at_ms`.
    pub fn raise(self, seq: u64, cause: &str, on: Date, at_ms: i64) -> Alert {
        Alert {
            seq,
            kind: self.kind,
            uscc: self.uscc,
            region: self.region,
            class_before: self.class_before,
            class_after: self.class_after,
            cause: cause.to_string(),
            records: self.records,
            run_id: self.run_id,
            raised_on: on,
            raised_at_ms: at_ms,
            state: AlertState::Open,
            assignee: String::new(),
            outcome: None,
            history: Vec::new(),
        }
    }
}

/// Whether `after` is at least `steps` classes worse than `before`.
pub fn worsened(before: RiskClass, after: RiskClass, steps: u8) -> bool {
    after.index() >= before.index() + usize::from(steps)
}

/// The alerts a change of one enterprise's records raises (not class changes: those
/// need the runs, see [`worsened`]): each listing on the abnormal or serious list that
/// was not there before, and the penalty window reaching its threshold through a new
/// penalty, and a newly recorded failed sampling making a streak of
/// `sampling_failure_years` consecutive years with failures. `today` is the day of the
/// change.
pub fn detect(
    rules: &AlertRules,
    before: Option<&EnterpriseRecords>,
    after: &EnterpriseRecords,
    today: Date,
) -> Vec<AlertDraft> {
    let mut out = Vec::new();
    let Some(e) = after.enterprise.as_ref() else {
        return out;
    };
    if !rules.enabled {
        return out;
    }
    let draft = |kind, records| AlertDraft {
        kind,
        uscc: e.uscc,
        region: e.region,
        class_before: None,
        class_after: None,
        records,
        run_id: 0,
    };
    let had = |l: &super::Listing| {
        before.is_some_and(|b| {
            b.listings
                .iter()
                .any(|x| x.kind == l.kind && x.listed_on == l.listed_on && x.reason == l.reason)
        })
    };
    for l in after.listings.iter().filter(|l| l.removed_on.is_none()) {
        let kind = match l.kind {
            ListKind::AbnormalOperations => AlertKind::ListedAbnormal,
            ListKind::SeriousIllegal => AlertKind::ListedSeriousIllegal,
            ListKind::AbnormalStatusMark => continue,
        };
        if !had(l) {
            out.push(draft(kind, vec![l.listing_id()]));
        }
    }
    let from = today.add_days(-(rules.penalty_window_days.min(i32::MAX as u32) as i32));
    let in_window = |r: &EnterpriseRecords| -> Vec<String> {
        r.penalties
            .iter()
            .filter(|p| p.decided_on > from && p.decided_on <= today)
            .map(|p| p.decision_number.clone())
            .collect()
    };
    let now = in_window(after);
    let was = before.map(in_window).unwrap_or_default();
    let threshold = rules.penalty_threshold as usize;
    if now.len() >= threshold && was.len() < threshold {
        out.push(draft(AlertKind::PenaltyThreshold, now));
    }
    if let Some(records) = repeated_failures(rules.sampling_failure_years, before, after, today) {
        out.push(draft(AlertKind::RepeatedSamplingFailure, records));
    }
    out
}

/// The failed samplings of a streak of at least `years` consecutive calendar years with
/// failures that a newly recorded failure completed (the streak was shorter before) and
/// that reaches last year or this one (`today`'s), by report number in date order;
/// `None` when no new failure did.
fn repeated_failures(
    years: u32,
    before: Option<&EnterpriseRecords>,
    after: &EnterpriseRecords,
    today: Date,
) -> Option<Vec<String>> {
    use std::collections::BTreeSet;
    if years == 0 {
        return None;
    }
    let failed_years = |r: &EnterpriseRecords| -> BTreeSet<i32> {
        r.samplings
            .iter()
            .filter(|x| !x.passed)
            .map(|x| x.sampled_on.year())
            .collect()
    };
    let now = failed_years(after);
    let was = before.map(failed_years).unwrap_or_default();
    // The streak (first, last year) of `set` around `y`.
    let streak = |set: &BTreeSet<i32>, y: i32| -> (i32, i32) {
        let (mut lo, mut hi) = (y, y);
        while set.contains(&(lo - 1)) {
            lo -= 1;
        }
        while set.contains(&(hi + 1)) {
            hi += 1;
        }
        (lo, hi)
    };
    let longest_within = |set: &BTreeSet<i32>, lo: i32, hi: i32| -> u32 {
        let (mut best, mut run, mut prev) = (0u32, 0u32, None::<i32>);
        for &y in set.range(lo..=hi) {
            run = if prev == Some(y - 1) { run + 1 } else { 1 };
            best = best.max(run);
            prev = Some(y);
        }
        best
    };
    let old: BTreeSet<&str> = before
        .map(|b| b.samplings.iter().map(|x| x.sample_id.as_str()).collect())
        .unwrap_or_default();
    let new_failure = after
        .samplings
        .iter()
        .filter(|x| !x.passed && !old.contains(x.sample_id.as_str()));
    for x in new_failure {
        let (lo, hi) = streak(&now, x.sampled_on.year());
        // A streak that ended before last year is history (a back-filled record), not a
        // case for listing now.
        let current = hi >= today.year() - 1;
        if current && (hi - lo + 1) as u32 >= years && longest_within(&was, lo, hi) < years {
            let mut hits: Vec<&super::QualitySampling> = after
                .samplings
                .iter()
                .filter(|s| !s.passed && (lo..=hi).contains(&s.sampled_on.year()))
                .collect();
            hits.sort_by(|a, b| (a.sampled_on, &a.sample_id).cmp(&(b.sampled_on, &b.sample_id)));
            return Some(hits.into_iter().map(|s| s.sample_id.clone()).collect());
        }
    }
    None
}

/// Why a triage step is refused.
fn refuse(field: &str, reason: String) -> DomainError {
    DomainError::invalid(field, reason)
}

impl Alert {
    /// Acknowledges the alert. An alert already acknowledged, assigned or closed stays
    /// as it is (`Ok(false)`: nothing changed).
    pub fn acknowledge(&mut self, by: &str, note: &str, at_ms: i64) -> Result<bool, DomainError> {
        if self.state != AlertState::Open {
            return Ok(false);
        }
        self.step(AlertState::Acknowledged, by, note, at_ms);
        Ok(true)
    }

    /// Assigns the alert to `assignee` (an inspector id or a unit). Refused once closed.
    pub fn assign(&mut self, assignee: &str, by: &str, at_ms: i64) -> Result<bool, DomainError> {
        let assignee = assignee.trim();
        if assignee.is_empty() {
            return Err(refuse("assignee", "is required".into()));
        }
        if self.state == AlertState::Closed {
            return Err(refuse(
                "sequence",
                format!("alert {} is closed; it cannot be assigned", self.seq),
            ));
        }
        if self.state == AlertState::Assigned && self.assignee == assignee {
            return Ok(false);
        }
        self.assignee = assignee.to_string();
        self.step(AlertState::Assigned, by, assignee, at_ms);
        Ok(true)
    }

    /// Closes the alert with `outcome` (a dismissal needs its reason). Closing again with
    /// the same outcome changes nothing (`Ok(false)`); with another outcome it is refused
    /// (the first outcome stands: the audit trail has it).
    pub fn close(
        &mut self,
        outcome: AlertOutcome,
        reason: &str,
        by: &str,
        at_ms: i64,
    ) -> Result<bool, CloseRefused> {
        if let Some(first) = self.outcome {
            if first == outcome {
                return Ok(false);
            }
            return Err(CloseRefused::ClosedOtherwise(first));
        }
        if outcome == AlertOutcome::Dismissed && reason.trim().is_empty() {
            return Err(CloseRefused::ReasonRequired);
        }
        self.outcome = Some(outcome);
        self.step(AlertState::Closed, by, reason.trim(), at_ms);
        Ok(true)
    }

    /// Whether the alert is still open `triage_days` after it was raised, on `today`.
    pub fn overdue(&self, triage_days: u32, today: Date) -> bool {
        self.state != AlertState::Closed
            && today
                > self
                    .raised_on
                    .add_days(triage_days.min(i32::MAX as u32) as i32)
    }

    fn step(&mut self, state: AlertState, by: &str, note: &str, at_ms: i64) {
        self.state = state;
        self.history.push(AlertStep {
            state,
            at_ms,
            by: by.to_string(),
            note: note.to_string(),
        });
    }
}

/// Why a close is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseRefused {
    /// The alert was already closed with this other outcome.
    ClosedOtherwise(AlertOutcome),
    /// A dismissal needs its reason.
    ReasonRequired,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures;

    fn rules() -> AlertRules {
        AlertRules::default()
    }

    #[test]
    fn worsening_counts_steps() {
        use RiskClass::*;
        assert!(worsened(B, C, 1));
        assert!(worsened(A, D, 1));
        assert!(!worsened(C, C, 1));
        assert!(!worsened(C, B, 1));
        assert!(!worsened(B, C, 2));
        assert!(worsened(B, D, 2));
    }

    #[test]
    fn a_new_listing_raises_one_alert_and_an_old_one_none() {
        let today = fixtures::day("2026-06-30");
        let mut before = fixtures::dossier("2020-01-02");
        before.listings.push(fixtures::listing(
            ListKind::AbnormalOperations,
            fixtures::day("2026-01-10"),
        ));
        let mut after = before.clone();
        assert!(detect(&rules(), Some(&before), &after, today).is_empty());
        after
            .listings
            .push(fixtures::listing(ListKind::SeriousIllegal, today));
        let got = detect(&rules(), Some(&before), &after, today);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].kind, AlertKind::ListedSeriousIllegal);
        assert!(
            got[0].records[0].contains("/2026-06-30/"),
            "{:?}",
            got[0].records
        );
        // A new dossier with a listing: the listing is new.
        let got = detect(&rules(), None, &before, today);
        assert_eq!(got[0].kind, AlertKind::ListedAbnormal);
    }

    #[test]
    fn the_penalty_threshold_alerts_once_when_reached_within_the_window() {
        let today = fixtures::day("2026-06-30");
        let mut d = fixtures::dossier("2020-01-02");
        d.penalties = vec![
            fixtures::penalty("P-1", fixtures::day("2025-06-30")), // outside the 365-day window
            fixtures::penalty("P-2", fixtures::day("2025-07-01")),
            fixtures::penalty("P-3", fixtures::day("2026-03-01")),
        ];
        let before = d.clone();
        d.penalties
            .push(fixtures::penalty("P-4", fixtures::day("2026-06-29")));
        let got = detect(&rules(), Some(&before), &d, today);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].kind, AlertKind::PenaltyThreshold);
        assert_eq!(got[0].records, ["P-2", "P-3", "P-4"]);
        // Above the threshold already: a fourth in the window raises nothing new.
        let mut more = d.clone();
        more.penalties
            .push(fixtures::penalty("P-5", fixtures::day("2026-06-30")));
        assert!(detect(&rules(), Some(&d), &more, today).is_empty());
        // Turned off: nothing.
        let off = AlertRules {
            enabled: false,
            ..rules()
        };
        assert!(detect(&off, Some(&before), &d, today).is_empty());
    }

    fn sampling(id: &str, on: &str, passed: bool) -> crate::domain::QualitySampling {
        crate::domain::QualitySampling {
            sample_id: id.into(),
            uscc: Uscc::placeholder(),
            sampled_on: fixtures::day(on),
            category: crate::domain::SamplingCategory::Product,
            product: "电线电缆".into(),
            batch: String::new(),
            passed,
            authority: "上海市市场监督管理局".into(),
            recorded_at_ms: 0,
        }
    }

    /// 列异列严: failures in consecutive years (2 by default, \[U\], the Shanghai
    /// report's "连续多年不合格") raise one alert when the streak is completed, naming
    /// its failures; a pass, a gap year or a longer streak raise none.
    #[test]
    fn failed_samplings_in_consecutive_years_raise_one_alert() {
        let today = fixtures::day("2026-06-30");
        let mut d = fixtures::dossier("2020-01-02");
        d.samplings = vec![
            sampling("S-1", "2024-05-01", false),
            sampling("S-2", "2025-03-01", true),
        ];
        let before = d.clone();
        let mut after = d.clone();
        after.samplings.push(sampling("S-3", "2026-04-01", false));
        assert!(
            detect(&rules(), Some(&before), &after, today).is_empty(),
            "2024 and 2026: a gap"
        );
        let mut after2 = after.clone();
        after2.samplings.push(sampling("S-4", "2025-09-01", false));
        let got = detect(&rules(), Some(&after), &after2, today);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].kind, AlertKind::RepeatedSamplingFailure);
        assert_eq!(
            got[0].records,
            ["S-1", "S-4", "S-3"],
            "the streak's failures by date"
        );
        // Within a streak already alerted: another failure raises nothing.
        let mut after3 = after2.clone();
        after3.samplings.push(sampling("S-5", "2026-06-01", false));
        assert!(detect(&rules(), Some(&after2), &after3, today).is_empty());
        // A passed sampling raises nothing; three years asked: the 2024–2026 streak does.
        let three = AlertRules {
            sampling_failure_years: 3,
            ..rules()
        };
        assert!(detect(&three, Some(&after), &after2, today).len() == 1);
        assert!(detect(&three, Some(&before), &after, today).is_empty());
        let off = AlertRules {
            sampling_failure_years: 0,
            ..rules()
        };
        assert!(detect(&off, Some(&after), &after2, today).is_empty());
        assert!(AlertRules {
            sampling_failure_years: 21,
            ..rules()
        }
        .validate()
        .is_err());
        // A back-filled streak of 2019–2020 is history: no alert in 2026.
        let mut old = fixtures::dossier("2010-01-02");
        old.samplings = vec![sampling("H-1", "2019-05-01", false)];
        let mut filled = old.clone();
        filled.samplings.push(sampling("H-2", "2020-05-01", false));
        assert!(detect(&rules(), Some(&old), &filled, today).is_empty());
    }

    #[test]
    fn triage_moves_forward_and_a_second_close_must_agree() {
        let today = fixtures::day("2026-06-30");
        let d = fixtures::dossier("2020-01-02");
        let e = d.enterprise.as_ref().unwrap();
        let mut a = AlertDraft {
            kind: AlertKind::ClassWorsened,
            uscc: e.uscc,
            region: e.region,
            class_before: Some(RiskClass::B),
            class_after: Some(RiskClass::C),
            records: vec!["run/2".into()],
            run_id: 2,
        }
        .raise(7, "run/2 complete", today, 1);
        assert!(a.acknowledge("ops", "", 2).unwrap());
        assert!(!a.acknowledge("ops", "", 3).unwrap(), "twice is no change");
        assert!(a.assign("", "ops", 4).is_err(), "an assignee is required");
        assert!(a.assign("team-7", "ops", 4).unwrap());
        assert!(!a.overdue(10, today.add_days(10)));
        assert!(a.overdue(10, today.add_days(11)));
        assert_eq!(
            a.close(AlertOutcome::Dismissed, " ", "ops", 5),
            Err(CloseRefused::ReasonRequired),
            "a dismissal needs its reason"
        );
        assert!(a.close(AlertOutcome::ProblemFound, "", "ops", 5).unwrap());
        assert!(!a.close(AlertOutcome::ProblemFound, "", "ops", 6).unwrap());
        assert_eq!(
            a.close(AlertOutcome::NoProblemFound, "", "ops", 6),
            Err(CloseRefused::ClosedOtherwise(AlertOutcome::ProblemFound))
        );
        assert!(a.assign("team-8", "ops", 7).is_err(), "closed stays closed");
        assert!(!a.overdue(10, today.add_days(30)));
        assert_eq!(a.history.len(), 3);
    }
}
