//! AlertService handlers: watch (server streaming, resumable), list, and triage.

use std::{pin::Pin, sync::Arc};

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::{
    classification::{class_pb, instant},
    invalid, region_prefixes, request_key,
    spotcheck::class_from_pb,
    Scope, StreamLimits,
};
use crate::{
    domain::{
        alert::{Alert, AlertKind, AlertOutcome, AlertState},
        DomainError,
    },
    proto::{self as pb, alert_service_server::AlertService},
    store::{alerts::AlertFilter, op, Store},
};

/// The AlertService.
#[derive(Clone)]
pub struct AlertApi {
    store: Store,
    limits: StreamLimits,
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl AlertApi {
    /// A service over `store`; a watcher that does not read for `limits.idle` while
    /// alerts wait is told it fell behind; every watcher ends when `stopping` turns
    /// true (server shutdown).
    pub fn new(
        store: Store,
        limits: StreamLimits,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        AlertApi {
            store,
            limits,
            stopping,
        }
    }
}

fn kind_pb(k: AlertKind) -> i32 {
    (match k {
        AlertKind::ClassWorsened => pb::AlertKind::ClassWorsened,
        AlertKind::ListedAbnormal => pb::AlertKind::ListedAbnormal,
        AlertKind::ListedSeriousIllegal => pb::AlertKind::ListedSeriousIllegal,
        AlertKind::PenaltyThreshold => pb::AlertKind::PenaltyThreshold,
        AlertKind::RepairOverdue => pb::AlertKind::RepairOverdue,
        AlertKind::RepeatedSamplingFailure => pb::AlertKind::RepeatedSamplingFailure,
    }) as i32
}

fn kind_from_pb(field: &str, v: i32) -> Result<AlertKind, DomainError> {
    match pb::AlertKind::try_from(v) {
        Ok(pb::AlertKind::ClassWorsened) => Ok(AlertKind::ClassWorsened),
        Ok(pb::AlertKind::ListedAbnormal) => Ok(AlertKind::ListedAbnormal),
        Ok(pb::AlertKind::ListedSeriousIllegal) => Ok(AlertKind::ListedSeriousIllegal),
        Ok(pb::AlertKind::PenaltyThreshold) => Ok(AlertKind::PenaltyThreshold),
        Ok(pb::AlertKind::RepairOverdue) => Ok(AlertKind::RepairOverdue),
        Ok(pb::AlertKind::RepeatedSamplingFailure) => Ok(AlertKind::RepeatedSamplingFailure),
        Ok(pb::AlertKind::Unspecified) => Err(DomainError::invalid(field, "UNSPECIFIED")),
        Err(_) => Err(DomainError::invalid(
            field,
            format!("{v} is not an alert kind"),
        )),
    }
}

fn state_pb(s: AlertState) -> i32 {
    (match s {
        AlertState::Open => pb::AlertState::Open,
        AlertState::Acknowledged => pb::AlertState::Acknowledged,
        AlertState::Assigned => pb::AlertState::Assigned,
        AlertState::Closed => pb::AlertState::Closed,
    }) as i32
}

fn state_from_pb(field: &str, v: i32) -> Result<AlertState, DomainError> {
    match pb::AlertState::try_from(v) {
        Ok(pb::AlertState::Open) => Ok(AlertState::Open),
        Ok(pb::AlertState::Acknowledged) => Ok(AlertState::Acknowledged),
        Ok(pb::AlertState::Assigned) => Ok(AlertState::Assigned),
        Ok(pb::AlertState::Closed) => Ok(AlertState::Closed),
        Ok(pb::AlertState::Unspecified) => Err(DomainError::invalid(field, "UNSPECIFIED")),
        Err(_) => Err(DomainError::invalid(
            field,
            format!("{v} is not an alert state"),
        )),
    }
}

fn outcome_pb(o: Option<AlertOutcome>) -> i32 {
    (match o {
        None => pb::AlertOutcome::Unspecified,
        Some(AlertOutcome::ProblemFound) => pb::AlertOutcome::ProblemFound,
        Some(AlertOutcome::NoProblemFound) => pb::AlertOutcome::NoProblemFound,
        Some(AlertOutcome::Referred) => pb::AlertOutcome::Referred,
        Some(AlertOutcome::Dismissed) => pb::AlertOutcome::Dismissed,
    }) as i32
}

fn outcome_from_pb(v: i32) -> Result<AlertOutcome, DomainError> {
    match pb::AlertOutcome::try_from(v) {
        Ok(pb::AlertOutcome::ProblemFound) => Ok(AlertOutcome::ProblemFound),
        Ok(pb::AlertOutcome::NoProblemFound) => Ok(AlertOutcome::NoProblemFound),
        Ok(pb::AlertOutcome::Referred) => Ok(AlertOutcome::Referred),
        Ok(pb::AlertOutcome::Dismissed) => Ok(AlertOutcome::Dismissed),
        Ok(pb::AlertOutcome::Unspecified) => Err(DomainError::invalid(
            "outcome",
            "is required (UNSPECIFIED given)",
        )),
        Err(_) => Err(DomainError::invalid(
            "outcome",
            format!("{v} is not an alert outcome"),
        )),
    }
}

/// An alert as the API shows it; `overdue` as of `today`.
fn alert_pb(a: &Alert, triage_days: u32, today: crate::domain::Date) -> pb::Alert {
    pb::Alert {
        sequence: a.seq as i64,
        kind: kind_pb(a.kind),
        uscc: a.uscc.to_string(),
        region_code: a.region.as_str().to_string(),
        class_before: a.class_before.map(class_pb).unwrap_or_default(),
        class_after: a.class_after.map(class_pb).unwrap_or_default(),
        cause: a.cause.clone(),
        records: a.records.clone(),
        run_id: a.run_id,
        raised_on: a.raised_on.to_string(),
        raised_at: instant(Some(a.raised_at_ms)),
        state: state_pb(a.state),
        assignee: a.assignee.clone(),
        outcome: outcome_pb(a.outcome),
        history: a
            .history
            .iter()
            .map(|s| pb::AlertStep {
                state: state_pb(s.state),
                at: instant(Some(s.at_ms)),
                by: s.by.clone(),
                note: s.note.clone(),
            })
            .collect(),
        overdue: a.overdue(triage_days, today),
    }
}

/// A sequence number from the API: not negative.
fn sequence(field: &str, v: i64) -> Result<u64, Status> {
    u64::try_from(v).map_err(|_| invalid(DomainError::invalid(field, format!("{v} is negative"))))
}

/// A triage step's target: a positive sequence number.
fn target(v: i64) -> Result<u64, Status> {
    match sequence("sequence", v)? {
        0 => Err(invalid(DomainError::invalid("sequence", "is required"))),
        n => Ok(n),
    }
}

/// The filter of a request within the caller's scope: a region prefix outside the
/// token's regions is PERMISSION_DENIED; no prefix means the token's regions.
fn filter(f: Option<&pb::AlertFilter>, scope: &Scope) -> Result<AlertFilter, Status> {
    let mut out = AlertFilter::default();
    let Some(f) = f else {
        out.regions = scope.0.clone();
        return Ok(out);
    };
    for (i, k) in f.kinds.iter().enumerate() {
        out.kinds
            .push(kind_from_pb(&format!("filter.kinds[{i}]"), *k).map_err(invalid)?);
    }
    for (i, c) in f.classes.iter().enumerate() {
        out.classes
            .push(class_from_pb(&format!("filter.classes[{i}]"), *c).map_err(invalid)?);
    }
    out.regions = region_prefixes("filter.region_prefix", &f.region_prefix, scope)?;
    Ok(out)
}

/// Alerts read from the log per catch-up step of a watcher.
const CATCH_UP_PAGE: usize = 1_000;

type AlertStream = Pin<Box<dyn Stream<Item = Result<pb::Alert, Status>> + Send>>;

#[tonic::async_trait]
impl AlertService for AlertApi {
    type WatchAlertsStream = AlertStream;

    async fn watch_alerts(
        &self,
        req: Request<pb::WatchAlertsRequest>,
    ) -> Result<Response<AlertStream>, Status> {
        let scope = Scope::of(&req);
        let r = req.into_inner();
        let from = sequence("from_sequence", r.from_sequence)?;
        let f = filter(r.filter.as_ref(), &scope)?;
        let store = self.store.clone();
        let idle = self.limits.idle;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<pb::Alert, Status>>(256);
        let stopping = self.stopping.clone();
        tokio::spawn(async move {
            if let Err(s) = watch(store, f, from, idle, stopping, &tx).await {
                // The client has gone or is told why the stream ends.
                let _ = tx.send(Err(s)).await;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn list_alerts(
        &self,
        req: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::ListAlertsResponse>, Status> {
        let scope = Scope::of(&req);
        let r = req.into_inner();
        let after = sequence("after_sequence", r.after_sequence)?;
        let mut f = filter(r.filter.as_ref(), &scope)?;
        for (i, s) in r.states.iter().enumerate() {
            f.states
                .push(state_from_pb(&format!("states[{i}]"), *s).map_err(invalid)?);
        }
        let limit = match r.limit {
            0 => 100,
            n => super::list_limit("limit", n)?,
        };
        let store = self.store.clone();
        let overdue = r.overdue;
        super::blocking(move || {
            let today = store.today();
            let days = store.options().alerts.triage_days;
            let (page, last) = store.alerts_after(after, limit, |a| {
                f.matches(a) && (!overdue || a.overdue(days, today))
            })?;
            Ok(Response::new(pb::ListAlertsResponse {
                alerts: page.iter().map(|a| alert_pb(a, days, today)).collect(),
                next_after_sequence: last as i64,
            }))
        })
        .await
    }

    async fn acknowledge_alert(
        &self,
        req: Request<pb::AcknowledgeAlertRequest>,
    ) -> Result<Response<pb::Alert>, Status> {
        let actor = super::actor(&req, "AcknowledgeAlert");
        let r = req.into_inner();
        let key = request_key("AcknowledgeAlert", &r.request_id, &r)?;
        let seq = target(r.sequence)?;
        let note = super::optional_text("note", &r.note, 1000)?;
        self.step(actor, key, seq, op::AlertAction::Acknowledge { note })
            .await
    }

    async fn assign_alert(
        &self,
        req: Request<pb::AssignAlertRequest>,
    ) -> Result<Response<pb::Alert>, Status> {
        let actor = super::actor(&req, "AssignAlert");
        let r = req.into_inner();
        let key = request_key("AssignAlert", &r.request_id, &r)?;
        let seq = target(r.sequence)?;
        let assignee = super::required_text("assignee", &r.assignee, 200)?;
        self.step(actor, key, seq, op::AlertAction::Assign { assignee })
            .await
    }

    async fn close_alert(
        &self,
        req: Request<pb::CloseAlertRequest>,
    ) -> Result<Response<pb::Alert>, Status> {
        let actor = super::actor(&req, "CloseAlert");
        let r = req.into_inner();
        let key = request_key("CloseAlert", &r.request_id, &r)?;
        let seq = target(r.sequence)?;
        let outcome = outcome_from_pb(r.outcome).map_err(invalid)?;
        let reason = super::optional_text("reason", &r.reason, 1000)?;
        self.step(actor, key, seq, op::AlertAction::Close { outcome, reason })
            .await
    }
}

impl AlertApi {
    async fn step(
        &self,
        actor: crate::store::Actor,
        key: Option<crate::store::RequestKey>,
        seq: u64,
        action: op::AlertAction,
    ) -> Result<Response<pb::Alert>, Status> {
        let days = self.store.options().alerts.triage_days;
        let today = self.store.today();
        let reply = super::write_reply(
            &self.store,
            actor,
            op::TriageAlert { seq, action },
            key,
            move |a: &Alert| Ok(alert_pb(a, days, today)),
        )
        .await?;
        Ok(Response::new(reply))
    }
}

/// Feeds one watcher: the log after `from`, then each alert as it becomes durable. It
/// subscribes before reading the log, so nothing published meanwhile is lost; whatever
/// the broadcast dropped (the watcher lagged) is read back from the log, so nothing is
/// skipped and, delivering only sequence numbers above the last one sent, nothing comes
/// twice. Returns when the client goes (Ok) or with the status that ends the stream.
async fn watch(
    store: Store,
    f: AlertFilter,
    mut last: u64,
    idle: std::time::Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    tx: &tokio::sync::mpsc::Sender<Result<pb::Alert, Status>>,
) -> Result<(), Status> {
    let mut live = store.alert_hub().subscribe();
    let mut head = store.alert_hub().head();
    let days = store.options().alerts.triage_days;
    let f = Arc::new(f);
    loop {
        // Catch up from the log to the durable head.
        let target = *head.borrow_and_update();
        while last < target {
            let (s, f2) = (store.clone(), f.clone());
            let from = last;
            let (page, examined) =
                super::blocking(
                    move || Ok(s.alerts_after(from, CATCH_UP_PAGE, |a| f2.matches(a))?),
                )
                .await?;
            let today = store.today();
            for a in &page {
                send(tx, alert_pb(a, days, today), a.seq, idle).await?;
            }
            // A short page read everything up to the head it saw (at least `target`).
            last = if page.len() < CATCH_UP_PAGE {
                examined.max(target)
            } else {
                examined
            };
        }
        // Live: alerts as they are published, until a gap sends us back to the log.
        loop {
            tokio::select! {
                got = live.recv() => match got {
                    Ok(a) => {
                        if a.seq <= last {
                            continue;
                        }
                        if a.seq != last + 1 {
                            break; // missed some: read them from the log
                        }
                        last = a.seq;
                        if f.matches(&a) {
                            send(tx, alert_pb(&a, days, store.today()), a.seq, idle).await?;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        return Err(Status::unavailable("the store is closing; resume later"));
                    }
                },
                _ = tx.closed() => return Ok(()),
                _ = async { drop(stopping.wait_for(|s| *s).await) } => {
                    return Err(Status::unavailable(format!(
                        "the server is shutting down; resume from sequence {last}"
                    )));
                }
            }
        }
    }
}

/// Sends one alert, waiting at most `idle` for the client to make room: a client that
/// does not read is told where to resume.
async fn send(
    tx: &tokio::sync::mpsc::Sender<Result<pb::Alert, Status>>,
    a: pb::Alert,
    seq: u64,
    idle: std::time::Duration,
) -> Result<(), Status> {
    match tx.send_timeout(Ok(a), idle).await {
        Ok(()) => Ok(()),
        Err(tokio::sync::mpsc::error::SendTimeoutError::Closed(_)) => {
            Err(Status::cancelled("the client has gone"))
        }
        Err(tokio::sync::mpsc::error::SendTimeoutError::Timeout(_)) => {
            Err(Status::aborted(format!(
                "the subscriber fell behind: nothing read for {} s (server.stream_idle_secs) while alerts waited; resume from sequence {}",
                idle.as_secs(),
                seq.saturating_sub(1)
            )))
        }
    }
}
