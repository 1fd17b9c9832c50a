//! Credit repair cases and objections (the record changes they make ride in the same
//! batch as the case).

use super::{records::same_listing, *};

/// Files a repair case (信用修复申请); eligibility is decided here, on the dossier.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubmitRepair(pub RepairCase);

impl Operation for SubmitRepair {
    type Output = RepairCase;
    fn cause(&self) -> String {
        format!("SubmitRepair {}", self.0.target.id())
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<RepairCase> {
        let (ctx, p) = tx.ctx();
        ctx.submit_repair(p, self.0)
    }
    fn subject(out: &RepairCase) -> Option<Uscc> {
        Some(out.uscc)
    }
    logged!(SubmitRepair);
}

/// An operator's step on a case; approval and revocation change the record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DecideRepairCase {
    pub id: u64,
    pub action: RepairAction,
    pub by: String,
    pub reason: String,
    /// Due date of the next step (for an acceptance).
    pub decide_due: Option<Date>,
}

impl Operation for DecideRepairCase {
    type Output = RepairCase;
    fn cause(&self) -> String {
        format!("repair_case/{} {}", self.id, self.action.name())
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<RepairCase> {
        let (ctx, p) = tx.ctx();
        ctx.decide_repair(p, self)
    }
    fn subject(out: &RepairCase) -> Option<Uscc> {
        Some(out.uscc)
    }
    logged!(DecideRepairCase);
}

/// Files an objection to a record (异议); the record is marked disputed while open.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileObjection(pub Objection);

impl Operation for FileObjection {
    type Output = Objection;
    fn cause(&self) -> String {
        format!("FileObjection {}", self.0.record)
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<Objection> {
        let (ctx, p) = tx.ctx();
        ctx.file_objection(p, self.0)
    }
    fn subject(out: &Objection) -> Option<Uscc> {
        Some(out.uscc)
    }
    logged!(FileObjection);
}

/// Resolves an objection: upheld, or corrected with the correction applied.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResolveObjection {
    pub id: u64,
    pub correction: Option<Correction>,
    pub by: String,
    pub reason: String,
}

impl Operation for ResolveObjection {
    type Output = Objection;
    fn cause(&self) -> String {
        format!(
            "objection/{} {}",
            self.id,
            if self.correction.is_some() {
                "corrected"
            } else {
                "upheld"
            }
        )
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<Objection> {
        let (ctx, p) = tx.ctx();
        ctx.resolve_objection(p, self)
    }
    fn subject(out: &Objection) -> Option<Uscc> {
        Some(out.uscc)
    }
    logged!(ResolveObjection);
}

impl Ctx<'_> {
    fn submit_repair(&self, p: &mut Pending, mut c: RepairCase) -> Result<RepairCase> {
        let u = c.uscc;
        let d = p
            .doc(&u)?
            .filter(|d| d.enterprise.is_some())
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("uscc: enterprise {u}")))?;
        for other in repair::cases_of(p.tree, &u)? {
            if other.state.is_open() && other.target == c.target {
                return Err(Error::AlreadyExists(format!(
                    "target: repair case {} for {} is still open",
                    other.id,
                    c.target.id()
                )));
            }
        }
        let revoked: Vec<Date> = d.false_commitments.iter().map(|(_, on)| *on).collect();
        c.eligibility = crate::domain::repair::eligibility(
            &c.target,
            &d,
            self.today,
            &self.options.rules,
            &revoked,
            &c.evidence,
        )?;
        let id = sc::get_counter(p.tree, "next_case")?.unwrap_or(1);
        p.put(keys::counter("next_case"), (id + 1).to_be_bytes().to_vec());
        c.id = id;
        for step in c.history.iter_mut() {
            step.at_ms = self.now_ms;
        }
        p.put(repair::case_key(id), codec::encode(&c)?);
        p.put(repair::uscc_key(&u, id), Vec::new());
        p.change = Some(Change {
            target: u.to_string(),
            uscc: Some(u),
            before: String::new(),
            after: format!("repair_case/{id} SUBMITTED for {}", c.target.id()),
            reason: c.reason.clone(),
        });
        Ok(c)
    }

    fn decide_repair(&self, p: &mut Pending, op: DecideRepairCase) -> Result<RepairCase> {
        let DecideRepairCase {
            id,
            action,
            by,
            reason,
            decide_due,
        } = op;
        let mut c: RepairCase = match p.get(&repair::case_key(id))? {
            Some(v) => codec::decode(&v)?,
            None => return Err(Error::NotFound(format!("case_id: repair case {id}"))),
        };
        let before = c.state;
        let after = before
            .apply(action)
            .map_err(|e| Error::FailedPrecondition(e.reason))?;
        let marker = format!("credit repair case {id}");
        match action {
            RepairAction::Approve => {
                let target = c.target.clone();
                let d = p.registered_mut(&c.uscc, "uscc")?;
                match &target {
                    RepairTarget::PenaltyPublicity { decision_number } => {
                        let pen = d
                            .penalties
                            .iter_mut()
                            .find(|x| &x.decision_number == decision_number)
                            .ok_or_else(|| {
                                Error::FailedPrecondition(format!("{} is gone", target.id()))
                            })?;
                        pen.publicity_ended_on = Some(self.today);
                    }
                    RepairTarget::FalseCommitment { commitment_id } => {
                        let today = self.today;
                        let x = d
                            .commitments
                            .iter_mut()
                            .find(|x| &x.commitment_id == commitment_id)
                            .filter(|x| x.is_false_on(today))
                            .ok_or_else(|| {
                                Error::FailedPrecondition(format!(
                                    "{} is no longer a false-commitment record",
                                    target.id()
                                ))
                            })?;
                        x.repaired_on = Some(today);
                    }
                    _ => {
                        let key = target.listing_key();
                        let l = d
                            .listings
                            .iter_mut()
                            .find(|l| Some((l.kind, l.listed_on, l.reason)) == key)
                            .ok_or_else(|| {
                                Error::FailedPrecondition(format!("{} is gone", target.id()))
                            })?;
                        if !l.is_open_on(self.today) {
                            return Err(Error::FailedPrecondition(format!(
                                "{} is no longer open",
                                target.id()
                            )));
                        }
                        l.removed_on = Some(self.today);
                        l.removal_reason = marker.clone();
                    }
                }
            }
            RepairAction::Revoke => {
                let target = c.target.clone();
                let today = self.today;
                let d = p.registered_mut(&c.uscc, "uscc")?;
                match &target {
                    RepairTarget::PenaltyPublicity { decision_number } => {
                        if let Some(pen) = d
                            .penalties
                            .iter_mut()
                            .find(|x| &x.decision_number == decision_number)
                        {
                            pen.publicity_ended_on = None;
                        }
                    }
                    RepairTarget::FalseCommitment { commitment_id } => {
                        if let Some(x) = d
                            .commitments
                            .iter_mut()
                            .find(|x| &x.commitment_id == commitment_id)
                        {
                            x.repaired_on = None;
                        }
                    }
                    _ => {
                        for l in d.listings.iter_mut() {
                            if l.removal_reason == marker {
                                l.removed_on = None;
                                l.removal_reason.clear();
                            }
                        }
                    }
                }
                d.false_commitments.push((id, today));
                p.effects.push(Effect::Revocation(c.uscc, id, today));
            }
            RepairAction::Accept => c.decide_due = decide_due,
            RepairAction::NotAccept | RepairAction::Deny => {}
        }
        c.state = after;
        c.history.push(RepairStep {
            state: after,
            at_ms: self.now_ms,
            on: self.today,
            by,
            reason: reason.clone(),
        });
        p.put(repair::case_key(id), codec::encode(&c)?);
        p.change = Some(Change {
            target: c.uscc.to_string(),
            uscc: Some(c.uscc),
            before: format!("repair_case/{id} {}", before.name()),
            after: format!("repair_case/{id} {} ({})", after.name(), c.target.id()),
            reason,
        });
        Ok(c)
    }
}

/// The correction an objection's resolution applies to its record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Correction {
    /// End the listing today.
    RemoveListing,
    /// Replace the penalty (same decision number).
    Penalty(#[serde(with = "wire::keyed")] Penalty),
    /// Replace the listing (same natural key).
    Listing(#[serde(with = "wire::keyed")] Listing),
    /// Replace the annual report (same year).
    Report(#[serde(with = "wire::keyed")] AnnualReport),
    /// Replace the inspection result (same task id).
    Inspection(#[serde(with = "wire::keyed")] InspectionResult),
}

impl Ctx<'_> {
    fn file_objection(&self, p: &mut Pending, mut o: Objection) -> Result<Objection> {
        let u = o.uscc;
        let rules = p.rules;
        let d = p
            .doc(&u)?
            .filter(|d| d.enterprise.is_some())
            .ok_or_else(|| Error::NotFound(format!("uscc: enterprise {u}")))?;
        if !crate::domain::repair::record_ids(d).contains(&o.record) {
            return Err(Error::NotFound(format!("record: {} of {u}", o.record)));
        }
        // A listing is objected to within its period (DOMAIN.md §4, rules
        // lists.listing_objection_days); later, credit repair is the way.
        if let Some(l) = d
            .listings
            .iter()
            .find(|l| format!("listing/{}", l.listing_id()) == o.record)
        {
            let last = crate::domain::repair::objection_deadline(l, rules);
            if self.today > last {
                return Err(Error::FailedPrecondition(format!(
                    "record: the period to object to {} ended on {last} (rules {}: lists.listing_objection_days); ask for credit repair instead",
                    o.record,
                    rules.in_force(l.listed_on).version
                )));
            }
        }
        for other in repair::objections(p.tree, Some(&u))? {
            if other.state == ObjectionState::Open && other.record == o.record {
                return Err(Error::AlreadyExists(format!(
                    "record: objection {} to {} is still open",
                    other.id, o.record
                )));
            }
        }
        let id = sc::get_counter(p.tree, "next_objection")?.unwrap_or(1);
        p.put(
            keys::counter("next_objection"),
            (id + 1).to_be_bytes().to_vec(),
        );
        o.id = id;
        for s in o.history.iter_mut() {
            s.at_ms = self.now_ms;
        }
        p.put(repair::objection_key(id), codec::encode(&o)?);
        p.put(repair::objection_uscc_key(&u, id), Vec::new());
        p.change = Some(Change {
            target: u.to_string(),
            uscc: Some(u),
            before: String::new(),
            after: format!("objection/{id} OPEN on {} (disputed)", o.record),
            reason: o.reason.clone(),
        });
        Ok(o)
    }

    fn resolve_objection(&self, p: &mut Pending, op: ResolveObjection) -> Result<Objection> {
        let ResolveObjection {
            id,
            correction,
            by,
            reason,
        } = op;
        let mut o: Objection = match p.get(&repair::objection_key(id))? {
            Some(v) => codec::decode(&v)?,
            None => return Err(Error::NotFound(format!("objection_id: objection {id}"))),
        };
        if o.state != ObjectionState::Open {
            return Err(Error::FailedPrecondition(format!(
                "objection {id} is {}, not OPEN",
                o.state.name()
            )));
        }
        let mut applied = String::new();
        if let Some(c) = correction {
            let today = self.today;
            let now = self.now_ms;
            let record = o.record.clone();
            let d = p.registered_mut(&o.uscc, "uscc")?;
            let key_mismatch = |what: String| {
                Error::invalid(
                    "correction",
                    format!("{what} is not the disputed record {record}"),
                )
            };
            match c {
                Correction::RemoveListing => {
                    let l = d
                        .listings
                        .iter_mut()
                        .find(|l| format!("listing/{}", l.listing_id()) == record)
                        .ok_or_else(|| key_mismatch("remove_listing".into()))?;
                    l.removed_on = Some(today);
                    l.removal_reason = format!("objection {id} corrected");
                    applied = format!("listing removed on {today}");
                }
                Correction::Penalty(mut x) => {
                    x.validate(today)?;
                    let slot = d
                        .penalties
                        .iter_mut()
                        .find(|q| {
                            format!("penalty/{}", q.decision_number) == record
                                && q.decision_number == x.decision_number
                        })
                        .ok_or_else(|| key_mismatch(format!("penalty/{}", x.decision_number)))?;
                    x.uscc = slot.uscc;
                    x.recorded_at_ms = now;
                    x.publicity_ended_on = slot.publicity_ended_on;
                    applied = format!("penalty replaced: {:?} fine {} fen", x.kinds, x.fine_fen);
                    *slot = x;
                }
                Correction::Listing(mut x) => {
                    let et = d
                        .enterprise
                        .as_ref()
                        .map(|e| e.entity_type)
                        .ok_or_else(|| Error::Corrupt("dossier without profile".into()))?;
                    x.validate(today, et)?;
                    let slot = d
                        .listings
                        .iter_mut()
                        .find(|l| {
                            format!("listing/{}", l.listing_id()) == record && same_listing(l, &x)
                        })
                        .ok_or_else(|| key_mismatch(format!("listing/{}", x.listing_id())))?;
                    x.recorded_at_ms = now;
                    applied = format!("listing replaced (removed: {:?})", x.removed_on);
                    *slot = x;
                }
                Correction::Report(mut x) => {
                    x.validate(today)?;
                    let slot = d
                        .reports
                        .iter_mut()
                        .find(|r| format!("annual_report/{}", r.year) == record && r.year == x.year)
                        .ok_or_else(|| key_mismatch(format!("annual_report/{}", x.year)))?;
                    x.recorded_at_ms = now;
                    applied = format!(
                        "annual report {} filing date corrected to {}",
                        x.year, x.filed_on
                    );
                    *slot = x;
                }
                Correction::Inspection(mut x) => {
                    x.validate(today)?;
                    let slot = d
                        .inspections
                        .iter_mut()
                        .find(|i| {
                            format!("inspection/{}", i.task_id) == record && i.task_id == x.task_id
                        })
                        .ok_or_else(|| key_mismatch(format!("inspection/{}", x.task_id)))?;
                    x.recorded_at_ms = now;
                    applied = format!("inspection corrected: problems found {}", x.problems_found);
                    *slot = x;
                }
            }
            o.state = ObjectionState::Corrected;
        } else {
            o.state = ObjectionState::Upheld;
        }
        o.resolution = if applied.is_empty() {
            format!("upheld: {reason}")
        } else {
            format!("corrected: {applied}; {reason}")
        };
        o.history.push(ObjectionStep {
            state: o.state,
            at_ms: self.now_ms,
            on: self.today,
            by,
            reason: reason.clone(),
        });
        p.put(repair::objection_key(id), codec::encode(&o)?);
        p.change = Some(Change {
            target: o.uscc.to_string(),
            uscc: Some(o.uscc),
            before: format!("objection/{id} OPEN on {}", o.record),
            after: format!("objection/{id} {}: {}", o.state.name(), o.resolution),
            reason,
        });
        Ok(o)
    }
}
