//! CommitmentService handlers: record a credit commitment, verify it, list them.

use tonic::{Request, Response, Status};

use super::{convert, invalid, request_key, Scope};
use crate::{
    domain::{
        commitment::{Commitment, CommitmentKind, Verdict, Verification},
        records::check_text,
        Date, DomainError,
    },
    error::Error,
    proto::{self as pb, commitment_service_server::CommitmentService},
    store::{op, Store},
};

/// The CommitmentService.
#[derive(Clone)]
pub struct CommitmentApi {
    store: Store,
}

impl CommitmentApi {
    /// A service over `store`.
    pub fn new(store: Store) -> Self {
        CommitmentApi { store }
    }
}

fn kind_pb(k: CommitmentKind) -> pb::CommitmentKind {
    match k {
        CommitmentKind::LicensingNotification => pb::CommitmentKind::LicensingNotification,
        CommitmentKind::Compliance => pb::CommitmentKind::Compliance,
        CommitmentKind::Repair => pb::CommitmentKind::Repair,
    }
}

fn verdict_pb(v: Verdict) -> pb::CommitmentVerdict {
    match v {
        Verdict::Kept => pb::CommitmentVerdict::Kept,
        Verdict::Broken => pb::CommitmentVerdict::Broken,
    }
}

fn verdict(field: &str, v: i32) -> Result<Verdict, DomainError> {
    match pb::CommitmentVerdict::try_from(v) {
        Ok(pb::CommitmentVerdict::Kept) => Ok(Verdict::Kept),
        Ok(pb::CommitmentVerdict::Broken) => Ok(Verdict::Broken),
        _ => Err(DomainError::invalid(field, "must be KEPT or BROKEN")),
    }
}

/// A commitment as the API shows it, `false_commitment` judged on `as_of`.
pub fn commitment_pb(c: &Commitment, as_of: Date) -> pb::Commitment {
    pb::Commitment {
        commitment_id: c.commitment_id.clone(),
        uscc: c.uscc.to_string(),
        kind: kind_pb(c.kind).into(),
        made_on: c.made_on.to_string(),
        due_on: c.due_on.to_string(),
        content: c.content.clone(),
        authority: c.authority.clone(),
        verification: c.verification.as_ref().map(|v| pb::CommitmentVerification {
            verdict: verdict_pb(v.verdict).into(),
            verified_on: v.verified_on.to_string(),
            verified_by: v.by.clone(),
            note: v.note.clone(),
            recorded_at: convert::timestamp(v.recorded_at_ms),
        }),
        repaired_on: c.repaired_on.map(|d| d.to_string()).unwrap_or_default(),
        false_commitment: c.is_false_on(as_of),
        recorded_at: convert::timestamp(c.recorded_at_ms),
    }
}

/// An imported commitment: history may carry its verification (`verified_by` is kept
/// as given), which is checked as VerifyCommitment checks one.
pub fn imported_commitment(m: &pb::Commitment) -> Result<Commitment, DomainError> {
    let bare = pb::Commitment {
        verification: None,
        ..m.clone()
    };
    let mut c = commitment(&bare)?;
    if let Some(v) = &m.verification {
        let f = |k: &str| format!("commitment.verification.{k}");
        c.verification = Some(Verification {
            verdict: verdict(&f("verdict"), v.verdict)?,
            verified_on: Date::parse(&f("verified_on"), &v.verified_on)?,
            by: {
                check_text(&f("verified_by"), &v.verified_by, false, 100)?;
                v.verified_by.trim().to_string()
            },
            note: v.note.trim().to_string(),
            recorded_at_ms: 0,
        });
    }
    Ok(c)
}

/// A new commitment from its proto; output-only fields must be empty.
fn commitment(m: &pb::Commitment) -> Result<Commitment, DomainError> {
    let f = |k: &str| format!("commitment.{k}");
    let kind = match pb::CommitmentKind::try_from(m.kind) {
        Ok(pb::CommitmentKind::LicensingNotification) => CommitmentKind::LicensingNotification,
        Ok(pb::CommitmentKind::Compliance) => CommitmentKind::Compliance,
        Ok(pb::CommitmentKind::Repair) => CommitmentKind::Repair,
        _ => {
            return Err(DomainError::invalid(
                f("kind"),
                "must be LICENSING_NOTIFICATION, COMPLIANCE or REPAIR",
            ))
        }
    };
    for (set, field) in [
        (m.verification.is_some(), "verification"),
        (!m.repaired_on.is_empty(), "repaired_on"),
        (m.false_commitment, "false_commitment"),
        (m.recorded_at.is_some(), "recorded_at"),
    ] {
        if set {
            return Err(DomainError::invalid(
                f(field),
                "is output only: a new commitment is unverified (VerifyCommitment records the finding)",
            ));
        }
    }
    Ok(Commitment {
        commitment_id: m.commitment_id.trim().to_string(),
        uscc: convert::uscc(&f("uscc"), &m.uscc)?,
        kind,
        made_on: Date::parse(&f("made_on"), &m.made_on)?,
        due_on: Date::parse(&f("due_on"), &m.due_on)?,
        content: m.content.trim().to_string(),
        authority: m.authority.trim().to_string(),
        verification: None,
        repaired_on: None,
        recorded_at_ms: 0,
    })
}

#[tonic::async_trait]
impl CommitmentService for CommitmentApi {
    async fn record_commitment(
        &self,
        req: Request<pb::RecordCommitmentRequest>,
    ) -> Result<Response<pb::RecordCommitmentResponse>, Status> {
        let actor = super::actor(&req, "RecordCommitment");
        let scope = Scope::of(&req);
        let r = req.into_inner();
        let key = request_key("RecordCommitment", &r.request_id, &r)?;
        let x = commitment(super::required("commitment", &r.commitment)?).map_err(invalid)?;
        scope.check_uscc(&self.store, "commitment.uscc", &x.uscc)?;
        let today = self.store.today();
        let reply = super::write_reply(
            &self.store,
            actor,
            op::RecordCommitment(x),
            key,
            move |(c, created)| {
                Ok(pb::RecordCommitmentResponse {
                    commitment: Some(commitment_pb(c, today)),
                    created: *created,
                })
            },
        )
        .await?;
        Ok(Response::new(reply))
    }

    async fn verify_commitment(
        &self,
        req: Request<pb::VerifyCommitmentRequest>,
    ) -> Result<Response<pb::VerifyCommitmentResponse>, Status> {
        let actor = super::actor(&req, "VerifyCommitment");
        let scope = Scope::of(&req);
        let r = req.into_inner();
        let key = request_key("VerifyCommitment", &r.request_id, &r)?;
        let uscc = convert::uscc("uscc", &r.uscc).map_err(invalid)?;
        let commitment_id = super::required_text("commitment_id", &r.commitment_id, 64)?;
        let today = self.store.today();
        let verification = Verification {
            verdict: verdict("verdict", r.verdict).map_err(invalid)?,
            verified_on: convert::as_of("verified_on", &r.verified_on, today).map_err(invalid)?,
            by: actor.principal.clone(),
            note: r.note.trim().to_string(),
            recorded_at_ms: 0,
        };
        scope.check_uscc(&self.store, "uscc", &uscc)?;
        let reply = super::write_reply(
            &self.store,
            actor,
            op::VerifyCommitment {
                uscc,
                commitment_id,
                verification,
            },
            key,
            move |c| {
                Ok(pb::VerifyCommitmentResponse {
                    commitment: Some(commitment_pb(c, today)),
                })
            },
        )
        .await?;
        Ok(Response::new(reply))
    }

    async fn list_commitments(
        &self,
        req: Request<pb::ListCommitmentsRequest>,
    ) -> Result<Response<pb::ListCommitmentsResponse>, Status> {
        let scope = Scope::of(&req);
        let r = req.into_inner();
        let today = self.store.today();
        let as_of = convert::past_as_of("as_of", &r.as_of, today).map_err(invalid)?;
        let limit = super::list_limit("limit", r.limit)?;
        let store = self.store.clone();
        let reply = if !r.uscc.trim().is_empty() {
            let u = convert::uscc("uscc", &r.uscc).map_err(invalid)?;
            scope.check_uscc(&self.store, "uscc", &u)?;
            super::blocking(move || {
                let d = store
                    .enterprise_records(&u)?
                    .ok_or_else(|| Error::NotFound(format!("uscc: enterprise {u}")))?;
                Ok(pb::ListCommitmentsResponse {
                    truncated: d.commitments.len() > limit,
                    commitments: d
                        .commitments
                        .iter()
                        .take(limit)
                        .map(|c| commitment_pb(c, as_of))
                        .collect(),
                })
            })
            .await?
        } else {
            let by = Date::parse_opt("due_by", &r.due_by)
                .map_err(invalid)?
                .ok_or_else(|| {
                    invalid(DomainError::invalid(
                        "due_by",
                        "is required without uscc (or give a uscc)",
                    ))
                })?;
            super::blocking(move || {
                let (due, truncated) =
                    store.due_commitments(by, |region| scope.covers(region), limit)?;
                let mut commitments = Vec::with_capacity(due.len());
                for (u, id) in due {
                    let Some(d) = store.enterprise_records(&u)? else {
                        continue;
                    };
                    if let Some(c) = d.commitments.iter().find(|c| c.commitment_id == id) {
                        commitments.push(commitment_pb(c, as_of));
                    }
                }
                Ok(pb::ListCommitmentsResponse {
                    commitments,
                    truncated,
                })
            })
            .await?
        };
        Ok(Response::new(reply))
    }
}
