//! AuditService handlers.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::{classification::instant, convert, invalid};
use crate::{
    domain::DomainError,
    proto::{self as pb, audit_service_server::AuditService},
    store::{
        audit::{AuditEvent, AuditFilter},
        Store,
    },
};

/// The AuditService.
#[derive(Clone)]
pub struct AuditApi {
    store: Store,
}

impl AuditApi {
    /// A service over `store`.
    pub fn new(store: Store) -> Self {
        AuditApi { store }
    }
}

/// A filter instant as Unix milliseconds (`None` when absent).
fn time_ms(field: &str, t: Option<&prost_types::Timestamp>) -> Result<Option<i64>, DomainError> {
    let Some(t) = t else { return Ok(None) };
    if !(0..1_000_000_000).contains(&t.nanos) || t.seconds < 0 {
        return Err(DomainError::invalid(
            field,
            format!("{t} is not a timestamp from 1970 on with nanos in 0..1e9"),
        ));
    }
    t.seconds
        .checked_mul(1000)
        .and_then(|ms| ms.checked_add(i64::from(t.nanos / 1_000_000)))
        .map(Some)
        .ok_or_else(|| DomainError::invalid(field, format!("{t} is out of range")))
}

fn event_pb(e: &AuditEvent, v2_from: u64) -> pb::AuditEvent {
    pb::AuditEvent {
        seq: e.seq,
        at: instant(Some(e.at_ms)),
        principal: e.principal.clone(),
        role: e.role.clone(),
        rpc: e.rpc.clone(),
        target: e.target.clone(),
        before: e.before.clone(),
        after: e.after.clone(),
        reason: e.reason.clone(),
        prev_digest: e.prev_digest.clone(),
        digest: e.digest.clone(),
        chain_format: crate::store::audit::chain_format(e.seq, v2_from).into(),
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::AuditEvent, Status>> + Send>>;

#[tonic::async_trait]
impl AuditService for AuditApi {
    type ListAuditEventsStream = EventStream;

    async fn list_audit_events(
        &self,
        req: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<Self::ListAuditEventsStream>, Status> {
        super::Scope::of(&req).require_unscoped("ListAuditEvents")?;
        let r = req.get_ref();
        let f = AuditFilter {
            from_ms: time_ms("from", r.from.as_ref()).map_err(invalid)?,
            to_ms: time_ms("to", r.to.as_ref()).map_err(invalid)?,
            principal: Some(r.principal.trim().to_string()).filter(|p| !p.is_empty()),
            uscc: if r.uscc.trim().is_empty() {
                None
            } else {
                Some(convert::uscc("uscc", &r.uscc).map_err(invalid)?)
            },
            after_seq: r.after_seq,
            limit: super::list_limit("limit", r.limit)?,
        };
        let store = self.store.clone();
        Ok(Response::new(super::blocking_stream(64, move |emit| {
            let v2_from = store.audit_v2_from()?;
            for e in store.audit_events(&f)? {
                if !emit(event_pb(&e, v2_from)) {
                    break;
                }
            }
            Ok(())
        })))
    }

    async fn verify_audit_chain(
        &self,
        req: Request<pb::VerifyAuditChainRequest>,
    ) -> Result<Response<pb::VerifyAuditChainResponse>, Status> {
        super::Scope::of(&req).require_unscoped("VerifyAuditChain")?;
        let store = self.store.clone();
        let (n, broken) = tokio::task::spawn_blocking(move || store.verify_audit_chain())
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(pb::VerifyAuditChainResponse {
            intact: broken.is_none(),
            events_checked: n,
            first_broken_seq: broken.as_ref().map(|b| b.0).unwrap_or(0),
            problem: broken.map(|b| b.1).unwrap_or_default(),
        }))
    }
}
