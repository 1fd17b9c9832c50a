//! Alerts: raised in the batch of the change that causes them (no alert without its
//! change, no change without its alert), numbered at commit; and their triage steps.

use super::*;
use crate::{
    domain::alert::{worsened, Alert, AlertDraft, AlertKind, AlertOutcome, CloseRefused},
    store::alerts,
};

impl Writer {
    /// The alerts the job's record changes raise (new listings, the penalty threshold),
    /// from each changed dossier as first loaded and as the job leaves it.
    pub(super) fn detect_alerts(&self, p: &mut Pending) {
        let Some(before) = p.before.as_ref() else {
            return;
        };
        let mut drafts = Vec::new();
        for u in &p.dirty {
            let Some(Some(after)) = p.docs.get(u) else {
                continue;
            };
            let was = before.get(u).and_then(|d| d.as_ref());
            drafts.extend(crate::domain::alert::detect(
                &self.options.alerts,
                was,
                after,
                p.at.today,
            ));
        }
        p.drafts.extend(drafts);
    }

    /// Numbers the job's alerts after the last one and puts them in its batch; returns
    /// the new last sequence number (set once the batch is applied) and queues the
    /// alerts for the watchers.
    pub(super) fn raise_alerts(&self, p: &mut Pending) -> Result<Option<u64>> {
        if p.drafts.is_empty() {
            return Ok(None);
        }
        let mut seq = self.alert_head.get();
        let mut raised = Vec::with_capacity(p.drafts.len());
        for d in std::mem::take(&mut p.drafts) {
            seq += 1;
            let a = d.raise(seq, &p.cause, p.at.today, p.at.now_ms);
            p.put_unread(&alerts::key(seq), &codec::encode(&a)?);
            raised.push(a);
        }
        p.effects.push(Effect::Alerts(raised));
        Ok(Some(seq))
    }

    /// The classes of run `id`'s re-score overrides.
    pub(super) fn override_classes(
        &self,
        id: u64,
    ) -> Result<HashMap<Uscc, crate::domain::RiskClass>> {
        let mut out = HashMap::new();
        for kv in self.tree.scan_prefix(sc::overrides_prefix(id)) {
            let (k, v) = kv?;
            let u = Uscc::from_bytes(&k[9..])?;
            out.insert(u, codec::decode::<Override>(&v)?.class);
        }
        Ok(out)
    }

    /// Every enterprise whose class on `new` (about to become current) is worse than on
    /// `old` (the current run it replaces), overrides of both included.
    pub(super) fn run_worsened(
        &self,
        old: &RunView,
        new: &RunView,
        new_overrides: &HashMap<Uscc, crate::domain::RiskClass>,
    ) -> Result<Vec<AlertDraft>> {
        let old_overrides = self.override_classes(old.run.id)?;
        let steps = self.options.alerts.worsen_steps;
        let record = vec![format!("run/{}", new.run.id)];
        let mut out = Vec::new();
        let mut i = 0;
        for (j, e) in new.entries.iter().enumerate() {
            while i < old.entries.len() && old.entries[i].uscc.as_bytes() < e.uscc.as_bytes() {
                i += 1;
            }
            let in_old = old.entries.get(i).filter(|o| o.uscc == e.uscc);
            let Some(before) = old_overrides
                .get(&e.uscc)
                .copied()
                .or(in_old.map(|o| o.class))
            else {
                continue;
            };
            let after = new_overrides.get(&e.uscc).copied().unwrap_or(e.class);
            if !worsened(before, after, steps) {
                continue;
            }
            let Some(region) = new.spot.region_at(j) else {
                continue;
            };
            out.push(AlertDraft {
                kind: AlertKind::ClassWorsened,
                uscc: e.uscc,
                region,
                class_before: Some(before),
                class_after: Some(after),
                records: record.clone(),
                run_id: new.run.id,
            });
        }
        Ok(out)
    }
}

/// Raises a `RepairOverdue` alert for every open repair case whose next step is past
/// its due date and not yet alerted for that date (a marker per case and due date, so a
/// later step's deadline alerts again). Run by the deadline job.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RaiseOverdueRepairs;

impl Operation for RaiseOverdueRepairs {
    /// Alerts raised.
    type Output = usize;
    const RESCORES: bool = false;
    const ALERTS: bool = false;
    fn cause(&self) -> String {
        "repair deadlines checked".into()
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<usize> {
        let (w, p) = tx.parts();
        let today = p.at.today;
        let mut late = Vec::new();
        for kv in w.tree.scan_prefix([repair::CASES]) {
            let (_, v) = kv?;
            let c: RepairCase = codec::decode(&v)?;
            if let (Some(due), true) = (c.due(), c.overdue(today)) {
                late.push((c.id, c.uscc, due));
            }
        }
        let mut n = 0;
        for (id, u, due) in late {
            let marker = alerts::warned_key(id, due);
            if p.get(&marker)?.is_some() {
                continue;
            }
            let Some(region) = p
                .doc(&u)?
                .and_then(|d| d.enterprise.as_ref())
                .map(|e| e.region)
            else {
                continue;
            };
            p.put(marker, Vec::new());
            p.drafts.push(AlertDraft {
                kind: AlertKind::RepairOverdue,
                uscc: u,
                region,
                class_before: None,
                class_after: None,
                records: vec![format!("repair_case/{id} due {due}")],
                run_id: 0,
            });
            n += 1;
        }
        if n > 0 {
            p.change = Some(Change {
                target: "repair deadlines".into(),
                after: format!("{n} repair cases past their due date alerted"),
                ..Change::default()
            });
        }
        Ok(n)
    }
    logged!(RaiseOverdueRepairs);
}

/// A triage step on an alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertAction {
    /// Seen.
    Acknowledge { note: String },
    /// Handed to an inspector or unit.
    Assign { assignee: String },
    /// Handled, with its outcome (a dismissal with its reason).
    Close {
        outcome: AlertOutcome,
        reason: String,
    },
}

/// Moves alert `seq` one triage step; the alert's district must be in the actor's
/// scope. A step that changes nothing (acknowledged twice, closed twice the same way)
/// writes nothing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TriageAlert {
    pub seq: u64,
    pub action: AlertAction,
}

impl Operation for TriageAlert {
    type Output = Alert;
    const RESCORES: bool = false;
    const ALERTS: bool = false;
    fn cause(&self) -> String {
        let what = match &self.action {
            AlertAction::Acknowledge { .. } => "acknowledged".to_string(),
            AlertAction::Assign { assignee } => format!("assigned to {assignee}"),
            AlertAction::Close { outcome, .. } => format!("closed: {}", outcome.name()),
        };
        format!("alert/{} {what}", self.seq)
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<Alert> {
        let cause = self.cause();
        let (_, p) = tx.parts();
        let seq = self.seq;
        let mut a: Alert = match p.get(&alerts::key(seq))? {
            Some(v) => codec::decode(&v)?,
            None => return Err(Error::NotFound(format!("sequence: alert {seq}"))),
        };
        // A district's token handles only its district's alerts.
        p.check_region("sequence", &a.region)?;
        let by = p.actor.principal.clone();
        let at = p.at.now_ms;
        let before = format!("{:?}", a.state);
        let (changed, reason) = match self.action {
            AlertAction::Acknowledge { note } => {
                (a.acknowledge(&by, &note, at).map_err(Error::from)?, note)
            }
            AlertAction::Assign { assignee } => {
                if a.state == crate::domain::alert::AlertState::Closed {
                    return Err(Error::FailedPrecondition(format!(
                        "sequence: alert {seq} is closed; it cannot be assigned"
                    )));
                }
                (
                    a.assign(&assignee, &by, at).map_err(Error::from)?,
                    String::new(),
                )
            }
            AlertAction::Close { outcome, reason } => match a.close(outcome, &reason, &by, at) {
                Ok(c) => (c, reason),
                Err(CloseRefused::ClosedOtherwise(first)) => {
                    return Err(Error::FailedPrecondition(format!(
                        "outcome: alert {seq} is already closed as {}",
                        first.name()
                    )))
                }
                Err(CloseRefused::ReasonRequired) => {
                    return Err(Error::invalid("reason", "a dismissal needs its reason"))
                }
            },
        };
        if changed {
            p.put(alerts::key(seq).to_vec(), codec::encode(&a)?);
            p.change = Some(Change {
                target: format!("alert/{seq}"),
                uscc: Some(a.uscc),
                before: format!("alert/{seq} {before}"),
                after: cause,
                reason,
            });
        }
        Ok(a)
    }
    fn subject(out: &Alert) -> Option<Uscc> {
        Some(out.uscc)
    }
    logged!(TriageAlert);
}
