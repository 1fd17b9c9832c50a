//! CreditRepairService handlers.

use tonic::{Request, Response, Status};

use super::{classification::instant, convert, invalid, request_key};
use crate::{
    domain::{
        repair::{
            accept_due, decide_due, Objection, ObjectionState, ObjectionStep, RepairAction,
            RepairCase, RepairState, RepairStep, RepairTarget,
        },
        Date, DomainError, ListKind,
    },
    proto::{self as pb, credit_repair_service_server::CreditRepairService},
    store::{op, Correction, Store, StoreOptions},
};

/// The CreditRepairService.
#[derive(Clone)]
pub struct CreditRepairApi {
    store: Store,
}

impl CreditRepairApi {
    /// A service over `store`.
    pub fn new(store: Store) -> Self {
        CreditRepairApi { store }
    }
}

fn state_pb(s: RepairState) -> i32 {
    (match s {
        RepairState::Submitted => pb::RepairState::Submitted,
        RepairState::Accepted => pb::RepairState::Accepted,
        RepairState::NotAccepted => pb::RepairState::NotAccepted,
        RepairState::Approved => pb::RepairState::Approved,
        RepairState::Denied => pb::RepairState::Denied,
        RepairState::Revoked => pb::RepairState::Revoked,
    }) as i32
}

fn target_pb(t: &RepairTarget) -> pb::RepairTarget {
    use pb::repair_target::Target;
    let target = match t {
        RepairTarget::AbnormalListing {
            kind,
            listed_on,
            reason,
        } => Target::Listing(pb::ListingKey {
            kind: convert::list_kind_pb(*kind),
            listed_on: listed_on.to_string(),
            reason: convert::listing_reason_pb(*reason),
        }),
        RepairTarget::SeriousListing { listed_on, reason } => Target::Listing(pb::ListingKey {
            kind: convert::list_kind_pb(ListKind::SeriousIllegal),
            listed_on: listed_on.to_string(),
            reason: convert::listing_reason_pb(*reason),
        }),
        RepairTarget::PenaltyPublicity { decision_number } => {
            Target::PenaltyDecisionNumber(decision_number.clone())
        }
        RepairTarget::FalseCommitment { commitment_id } => {
            Target::CommitmentId(commitment_id.clone())
        }
    };
    pb::RepairTarget {
        target: Some(target),
    }
}

fn target_from_pb(t: Option<&pb::RepairTarget>) -> Result<RepairTarget, DomainError> {
    use pb::repair_target::Target;
    match t.and_then(|t| t.target.as_ref()) {
        None => Err(DomainError::invalid(
            "target",
            "is required (a listing, a penalty or a commitment)",
        )),
        Some(Target::CommitmentId(c)) => {
            if c.trim().is_empty() {
                return Err(DomainError::invalid("target.commitment_id", "is required"));
            }
            Ok(RepairTarget::FalseCommitment {
                commitment_id: c.trim().to_string(),
            })
        }
        Some(Target::PenaltyDecisionNumber(d)) => {
            if d.trim().is_empty() {
                return Err(DomainError::invalid(
                    "target.penalty_decision_number",
                    "is required",
                ));
            }
            Ok(RepairTarget::PenaltyPublicity {
                decision_number: d.trim().to_string(),
            })
        }
        Some(Target::Listing(l)) => {
            let kind = convert::list_kind("target.listing.kind", l.kind)?;
            let listed_on = Date::parse("target.listing.listed_on", &l.listed_on)?;
            let reason = convert::listing_reason("target.listing.reason", l.reason)?;
            Ok(match kind {
                ListKind::SeriousIllegal => RepairTarget::SeriousListing { listed_on, reason },
                k => RepairTarget::AbnormalListing {
                    kind: k,
                    listed_on,
                    reason,
                },
            })
        }
    }
}

/// A case as its proto, with its due date judged at `today`; the store's calendar says
/// whether the due date is estimated (past the holiday calendar's years), its rules the
/// version in force on the submission day.
pub fn case_pb(c: &RepairCase, today: Date, o: &StoreOptions) -> pb::RepairCase {
    pb::RepairCase {
        rules_version: o.rules.in_force(c.submitted_on).version.clone(),
        case_id: c.id,
        uscc: c.uscc.to_string(),
        target: Some(target_pb(&c.target)),
        target_id: c.target.id(),
        reason: c.reason.clone(),
        commitment: c.commitment.clone(),
        evidence: c.evidence.clone(),
        state: state_pb(c.state),
        submitted_on: c.submitted_on.to_string(),
        eligibility: c.eligibility.clone(),
        accept_due: c.accept_due.to_string(),
        decide_due: c.decide_due.map(|d| d.to_string()).unwrap_or_default(),
        due: c.due().map(|d| d.to_string()).unwrap_or_default(),
        overdue: c.overdue(today),
        due_estimated: c.due().is_some_and(|d| o.calendar.estimated(d)),
        history: c
            .history
            .iter()
            .map(|s| pb::RepairStep {
                state: state_pb(s.state),
                at: instant(Some(s.at_ms)),
                on: s.on.to_string(),
                by: s.by.clone(),
                reason: s.reason.clone(),
            })
            .collect(),
    }
}

impl CreditRepairApi {
    async fn step(
        &self,
        scope: super::Scope,
        actor: crate::store::Actor,
        key: Option<crate::store::RequestKey>,
        id: u64,
        action: RepairAction,
        reason: String,
    ) -> Result<Response<pb::RepairCase>, Status> {
        let today = self.store.today();
        // Read once: the scope check and the acceptance deadline use the same case.
        let case = self.store.repair_case(id)?;
        if let Some(c) = &case {
            if scope.hides(&self.store, &c.uscc)? {
                return Err(case_not_found(id));
            }
        }
        let decide_due = match action {
            RepairAction::Accept => {
                let c = case.ok_or_else(|| case_not_found(id))?;
                let o = self.store.options();
                let rules = &o.rules.in_force(today).repair;
                Some(decide_due(&o.calendar, rules, &c.target, today))
            }
            _ => None,
        };
        let by = actor.principal.clone();
        let store = self.store.clone();
        let reply = super::write_reply(
            &self.store,
            actor,
            op::DecideRepairCase {
                id,
                action,
                by,
                reason,
                decide_due,
            },
            key,
            move |c| Ok(case_pb(c, today, store.options())),
        )
        .await?;
        Ok(Response::new(reply))
    }
}

#[tonic::async_trait]
impl CreditRepairService for CreditRepairApi {
    async fn submit_repair(
        &self,
        req: Request<pb::SubmitRepairRequest>,
    ) -> Result<Response<pb::RepairCase>, Status> {
        let actor = super::actor(&req, "SubmitRepair");
        let scope = super::Scope::of(&req);
        let r = req.into_inner();
        let key = request_key("SubmitRepair", &r.request_id, &r)?;
        let uscc = convert::uscc("uscc", &r.uscc).map_err(invalid)?;
        scope.check_uscc(&self.store, "uscc", &uscc)?;
        let target = target_from_pb(r.target.as_ref()).map_err(invalid)?;
        let reason = super::required_text("reason", &r.reason, 1000)?;
        let commitment = super::required_text("commitment", &r.commitment, 2000)?;
        if !r.commitment_signed {
            return Err(invalid(DomainError::invalid(
                "commitment_signed",
                "the integrity commitment (守信承诺书) must be signed",
            )));
        }
        for (i, e) in r.evidence.iter().enumerate() {
            super::required_text(&format!("evidence[{i}]"), e, 500)?;
        }
        let today = self.store.today();
        let c = RepairCase {
            id: 0,
            uscc,
            target,
            reason: reason.clone(),
            commitment,
            evidence: r.evidence.clone(),
            state: RepairState::Submitted,
            submitted_on: today,
            eligibility: Vec::new(),
            accept_due: accept_due(
                &self.store.options().calendar,
                &self.store.options().rules.in_force(today).repair,
                today,
            ),
            decide_due: None,
            history: vec![RepairStep {
                state: RepairState::Submitted,
                at_ms: 0,
                on: today,
                by: actor.principal.clone(),
                reason,
            }],
        };
        let store = self.store.clone();
        let reply = super::write_reply(&self.store, actor, op::SubmitRepair(c), key, move |c| {
            Ok(case_pb(c, today, store.options()))
        })
        .await?;
        Ok(Response::new(reply))
    }

    async fn accept_repair(
        &self,
        req: Request<pb::AcceptRepairRequest>,
    ) -> Result<Response<pb::RepairCase>, Status> {
        let actor = super::actor(&req, "AcceptRepair");
        let scope = super::Scope::of(&req);
        let r = req.into_inner();
        let key = request_key("AcceptRepair", &r.request_id, &r)?;
        let reason = super::required_text("reason", &r.reason, 1000)?;
        let action = if r.accept {
            RepairAction::Accept
        } else {
            RepairAction::NotAccept
        };
        self.step(scope, actor, key, r.case_id, action, reason)
            .await
    }

    async fn decide_repair(
        &self,
        req: Request<pb::DecideRepairRequest>,
    ) -> Result<Response<pb::RepairCase>, Status> {
        let actor = super::actor(&req, "DecideRepair");
        let scope = super::Scope::of(&req);
        let r = req.into_inner();
        let key = request_key("DecideRepair", &r.request_id, &r)?;
        let reason = super::required_text("reason", &r.reason, 1000)?;
        let action = if r.approve {
            RepairAction::Approve
        } else {
            RepairAction::Deny
        };
        self.step(scope, actor, key, r.case_id, action, reason)
            .await
    }

    async fn revoke_repair(
        &self,
        req: Request<pb::RevokeRepairRequest>,
    ) -> Result<Response<pb::RepairCase>, Status> {
        let actor = super::actor(&req, "RevokeRepair");
        let scope = super::Scope::of(&req);
        let r = req.into_inner();
        let key = request_key("RevokeRepair", &r.request_id, &r)?;
        let reason = super::required_text("reason", &r.reason, 1000)?;
        self.step(scope, actor, key, r.case_id, RepairAction::Revoke, reason)
            .await
    }

    async fn file_objection(
        &self,
        req: Request<pb::FileObjectionRequest>,
    ) -> Result<Response<pb::Objection>, Status> {
        let actor = super::actor(&req, "FileObjection");
        let scope = super::Scope::of(&req);
        let r = req.into_inner();
        let key = request_key("FileObjection", &r.request_id, &r)?;
        let uscc = convert::uscc("uscc", &r.uscc).map_err(invalid)?;
        scope.check_uscc(&self.store, "uscc", &uscc)?;
        let record = super::required_text("record", &r.record, 200)?;
        let reason = super::required_text("reason", &r.reason, 1000)?;
        for (i, e) in r.evidence.iter().enumerate() {
            super::required_text(&format!("evidence[{i}]"), e, 500)?;
        }
        let today = self.store.today();
        let cal = &self.store.options().calendar;
        let o = Objection {
            id: 0,
            uscc,
            record,
            reason: reason.clone(),
            evidence: r.evidence.clone(),
            state: ObjectionState::Open,
            filed_on: today,
            decide_due: cal.add_working_days(
                today,
                self.store
                    .options()
                    .rules
                    .in_force(today)
                    .repair
                    .objection_decide_wd,
            ),
            resolution: String::new(),
            history: vec![ObjectionStep {
                state: ObjectionState::Open,
                at_ms: 0,
                on: today,
                by: actor.principal.clone(),
                reason,
            }],
        };
        let store = self.store.clone();
        let reply = super::write_reply(&self.store, actor, op::FileObjection(o), key, move |o| {
            Ok(objection_pb(o, store.options()))
        })
        .await?;
        Ok(Response::new(reply))
    }

    async fn resolve_objection(
        &self,
        req: Request<pb::ResolveObjectionRequest>,
    ) -> Result<Response<pb::Objection>, Status> {
        use pb::resolve_objection_request::Correction as C;
        let actor = super::actor(&req, "ResolveObjection");
        let scope = super::Scope::of(&req);
        let r = req.into_inner();
        let key = request_key("ResolveObjection", &r.request_id, &r)?;
        let reason = super::required_text("reason", &r.reason, 1000)?;
        if let Some(o) = self.store.objection(r.objection_id)? {
            if scope.hides(&self.store, &o.uscc)? {
                let unknown = crate::Error::NotFound(format!("objection_id: objection {}", o.id));
                return Err(unknown.into());
            }
        }
        let correction = match &r.correction {
            None => None,
            Some(C::RemoveListing(false)) => None,
            Some(C::RemoveListing(true)) => Some(Correction::RemoveListing),
            Some(C::Penalty(m)) => Some(Correction::Penalty(
                convert::penalty(m).map_err(|e| invalid(e.within("correction")))?,
            )),
            Some(C::Listing(m)) => Some(Correction::Listing(
                convert::listing(m).map_err(|e| invalid(e.within("correction")))?,
            )),
            Some(C::AnnualReport(m)) => Some(Correction::Report(
                convert::report(m).map_err(|e| invalid(e.within("correction")))?,
            )),
            Some(C::Inspection(m)) => Some(Correction::Inspection(
                convert::inspection(m).map_err(|e| invalid(e.within("correction")))?,
            )),
        };
        let by = actor.principal.clone();
        let store = self.store.clone();
        let reply = super::write_reply(
            &self.store,
            actor,
            op::ResolveObjection {
                id: r.objection_id,
                correction,
                by,
                reason,
            },
            key,
            move |o| Ok(objection_pb(o, store.options())),
        )
        .await?;
        Ok(Response::new(reply))
    }

    async fn list_objections(
        &self,
        req: Request<pb::ListObjectionsRequest>,
    ) -> Result<Response<pb::ListObjectionsResponse>, Status> {
        let scope = super::Scope::of(&req);
        let r = req.get_ref();
        let uscc = if r.uscc.trim().is_empty() {
            None
        } else {
            Some(convert::uscc("uscc", &r.uscc).map_err(invalid)?)
        };
        let objections = self
            .store
            .objections(uscc.as_ref())?
            .iter()
            .filter(|o| !r.open_only || o.state == ObjectionState::Open)
            .filter(|o| scope.check_uscc(&self.store, "uscc", &o.uscc).is_ok())
            .map(|o| objection_pb(o, self.store.options()))
            .collect();
        Ok(Response::new(pb::ListObjectionsResponse { objections }))
    }

    async fn get_repair_case(
        &self,
        req: Request<pb::GetRepairCaseRequest>,
    ) -> Result<Response<pb::RepairCase>, Status> {
        let id = req.get_ref().case_id;
        let c = self
            .store
            .repair_case(id)?
            .ok_or_else(|| case_not_found(id))?;
        if super::Scope::of(&req).hides(&self.store, &c.uscc)? {
            return Err(case_not_found(id));
        }
        Ok(Response::new(case_pb(
            &c,
            self.store.today(),
            self.store.options(),
        )))
    }

    async fn list_repair_cases(
        &self,
        req: Request<pb::ListRepairCasesRequest>,
    ) -> Result<Response<pb::ListRepairCasesResponse>, Status> {
        let scope = super::Scope::of(&req);
        let r = req.get_ref();
        let as_of = convert::as_of("as_of", &r.as_of, self.store.today()).map_err(invalid)?;
        let uscc = if r.uscc.trim().is_empty() {
            None
        } else {
            Some(convert::uscc("uscc", &r.uscc).map_err(invalid)?)
        };
        let state = match pb::RepairState::try_from(r.state) {
            Ok(pb::RepairState::Unspecified) => None,
            Ok(s) => Some(state_pb_inverse(s)),
            Err(_) => {
                return Err(invalid(DomainError::invalid(
                    "state",
                    format!("{} is not a repair state", r.state),
                )))
            }
        };
        let cases = self
            .store
            .repair_cases(uscc.as_ref())?
            .into_iter()
            .filter(|c| state.is_none_or(|s| c.state == s))
            .filter(|c| !r.overdue || c.overdue(as_of))
            .filter(|c| scope.check_uscc(&self.store, "uscc", &c.uscc).is_ok())
            .map(|c| case_pb(&c, as_of, self.store.options()))
            .collect();
        Ok(Response::new(pb::ListRepairCasesResponse { cases }))
    }
}

/// An objection as its proto.
pub fn objection_pb(o: &Objection, opts: &StoreOptions) -> pb::Objection {
    pb::Objection {
        objection_id: o.id,
        uscc: o.uscc.to_string(),
        record: o.record.clone(),
        reason: o.reason.clone(),
        evidence: o.evidence.clone(),
        state: o.state.name().into(),
        filed_on: o.filed_on.to_string(),
        decide_due: o.decide_due.to_string(),
        decide_due_estimated: opts.calendar.estimated(o.decide_due),
        resolution: o.resolution.clone(),
        history: o
            .history
            .iter()
            .map(|s| pb::ObjectionStep {
                state: s.state.name().into(),
                at: instant(Some(s.at_ms)),
                on: s.on.to_string(),
                by: s.by.clone(),
                reason: s.reason.clone(),
            })
            .collect(),
    }
}

fn state_pb_inverse(s: pb::RepairState) -> RepairState {
    match s {
        pb::RepairState::Accepted => RepairState::Accepted,
        pb::RepairState::NotAccepted => RepairState::NotAccepted,
        pb::RepairState::Approved => RepairState::Approved,
        pb::RepairState::Denied => RepairState::Denied,
        pb::RepairState::Revoked => RepairState::Revoked,
        pb::RepairState::Submitted | pb::RepairState::Unspecified => RepairState::Submitted,
    }
}

/// NOT_FOUND for a case id, worded as the writer words an unknown one (a case of another
/// district answers the same to a scoped token).
fn case_not_found(id: u64) -> Status {
    crate::Error::NotFound(format!("case_id: repair case {id}")).into()
}
