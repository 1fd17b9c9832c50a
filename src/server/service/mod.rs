//! The gRPC services: thin handlers that parse requests into domain values, call the
//! store, and render replies. Errors become statuses in one place ([`status`]).

pub mod admin;
pub mod alerts;
pub mod audit;
pub mod classification;
pub mod commitment;
pub mod convert;
pub mod measures;
pub mod registry;
pub mod repair;
pub mod rules;
pub mod spotcheck;
pub mod statistics;

use prost::Message;
use sha2::{Digest, Sha256};
use tonic::{Code, Status};

use crate::{
    domain::DomainError,
    error::Error,
    store::{Actor, Operation, RequestKey, Store},
};

/// The one mapping from the crate's errors to gRPC statuses (the code from
/// [`Error::code`]); corruption is logged and answered without its details.
pub fn status(e: Error) -> Status {
    match &e {
        Error::Corrupt(_) => {
            tracing::error!(error = %e, "store corruption");
            Status::new(Code::Internal, "internal error (store); see server log")
        }
        _ => Status::new(e.code(), e.to_string()),
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        status(e)
    }
}

/// A domain error as INVALID_ARGUMENT.
pub fn invalid(e: DomainError) -> Status {
    status(Error::Invalid(e))
}

/// The idempotency key of a mutating request: `None` without a request id; the
/// fingerprint is SHA-256 of the whole encoded request.
pub fn request_key<M: Message>(
    rpc: &'static str,
    request_id: &str,
    msg: &M,
) -> Result<Option<RequestKey>, Status> {
    let id = request_id.trim();
    if id.is_empty() {
        return Ok(None);
    }
    if id.len() > 128 {
        return Err(invalid(DomainError::invalid(
            "request_id",
            "at most 128 bytes",
        )));
    }
    let fp: [u8; 32] = Sha256::digest(msg.encode_to_vec()).into();
    Ok(Some(RequestKey {
        rpc: rpc.to_string(),
        id: id.to_string(),
        fingerprint: fp,
    }))
}

/// The first reply of a retried request (same request id, same content), if any;
/// INVALID_ARGUMENT naming `request_id` if the id was used for a different request.
/// Only for handlers that do expensive work or state-dependent checks before their
/// write (plans, draws, teams, the sweep, backups); for the others the writer's own
/// lookup, which decides atomically, is the only one.
pub fn replayed<M: Message + Default + 'static>(
    store: &Store,
    key: &Option<RequestKey>,
) -> Result<Option<M>, Status> {
    let Some(k) = key else {
        return Ok(None);
    };
    store
        .recall(k)?
        .map(|r| remembered(store, &k.rpc, r))
        .transpose()
}

/// The reply a request id is bound to: the stored one, or a drawn plan's receipt,
/// rendered again from the stored plan (byte for byte the first reply) — as the
/// message itself, not encoded and decoded again (a city-wide receipt is large).
fn remembered<M: Message + Default + 'static>(
    store: &Store,
    rpc: &str,
    r: crate::store::Remembered,
) -> Result<M, Status> {
    use crate::store::Remembered;
    match r {
        Remembered::Reply(b) => decode_reply(&b),
        Remembered::Receipt {
            plan,
            teams,
            instance,
        } => {
            let receipt: Box<dyn std::any::Any> = Box::new(spotcheck::stored_receipt_reply(
                store, plan, teams, &instance,
            )?);
            receipt.downcast::<M>().map(|m| *m).map_err(|_| {
                status(Error::Corrupt(format!(
                    "{rpc} request id bound to the receipt of plan {plan}, which is not its reply"
                )))
            })
        }
        Remembered::Run(id) => Err(status(Error::Corrupt(format!(
            "{rpc} request id bound to scoring run {id}"
        )))),
        Remembered::Applied(seq) => Err(status(Error::Unavailable(format!(
            "this request was applied at log sequence {seq}; its reply is not recorded on \
             this replica yet (retry with the same request_id)"
        )))),
    }
}

fn decode_reply<M: Message + Default>(b: &[u8]) -> Result<M, Status> {
    M::decode(b).map_err(|e| status(Error::Corrupt(format!("stored reply: {e}"))))
}

/// Submits a write and answers with the reply `render` makes from its outcome. The
/// renderer runs on the writer before the commit and its encoded reply is stored with
/// the request id in the same batch, so a retry gets exactly these bytes back (and
/// writes nothing). It must depend only on the outcome and what it captured.
pub async fn write_reply<O, M, F>(
    store: &Store,
    actor: Actor,
    op: O,
    key: Option<RequestKey>,
    render: F,
) -> Result<M, Status>
where
    O: Operation,
    M: Message + Default + 'static,
    F: FnOnce(&O::Output) -> crate::Result<M> + Send + 'static,
{
    let rpc = key.as_ref().map(|k| k.rpc.clone()).unwrap_or_default();
    let render: crate::store::Render<O::Output> =
        Box::new(move |o| render(o).map(|m| m.encode_to_vec()));
    match store.submit(actor, op, key, Some(render)).await? {
        crate::store::Answer::Fresh { reply: Some(b), .. } => decode_reply(&b),
        crate::store::Answer::Fresh { reply: None, .. } => {
            Err(status(Error::Corrupt("a write without a renderer".into())))
        }
        crate::store::Answer::Replay(r) => remembered(store, &rpc, r),
    }
}

/// Submits a write whose request id the writer binds to what it made (an operation's
/// `binding`: no reply is stored) and answers with `render` of the fresh output, run on
/// a blocking thread after the commit, or with the reply a known id is bound to. For
/// replies too large to store with their id (a city-wide receipt): the writer neither
/// renders nor encodes them, and the caller never decodes them again.
pub async fn write_bound<O, M, F>(
    store: &Store,
    actor: Actor,
    op: O,
    key: Option<RequestKey>,
    render: F,
) -> Result<M, Status>
where
    O: Operation,
    O::Output: Send + 'static,
    M: Message + Default + Send + 'static,
    F: FnOnce(O::Output) -> crate::Result<M> + Send + 'static,
{
    let rpc = key.as_ref().map(|k| k.rpc.clone()).unwrap_or_default();
    match store.submit(actor, op, key, None).await? {
        crate::store::Answer::Fresh { outcome, .. } => {
            tokio::task::spawn_blocking(move || render(outcome))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(status)
        }
        crate::store::Answer::Replay(r) => remembered(store, &rpc, r),
    }
}

/// How long a client stream may be silent, and last in all (`server.stream_idle_secs`,
/// `server.stream_total_secs`): a silent or endless stream is ended, its concurrency
/// slot freed, instead of being waited for forever (issue 15, probe 2).
#[derive(Clone, Copy, Debug)]
pub struct StreamLimits {
    pub idle: std::time::Duration,
    pub total: std::time::Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            idle: std::time::Duration::from_secs(60),
            total: std::time::Duration::from_secs(3600),
        }
    }
}

/// The messages of a client stream, ended by DEADLINE_EXCEEDED when it is silent for
/// `limits.idle` or has lasted `limits.total` (the first error ends it).
pub fn guarded_stream<T: Send + 'static>(
    rpc: &'static str,
    limits: StreamLimits,
    inbound: tonic::Streaming<T>,
) -> impl futures::Stream<Item = Result<T, Status>> + Send {
    use tokio::time::Instant;
    let end = Instant::now() + limits.total;
    futures::stream::unfold(Some(inbound), move |s| async move {
        let mut s = s?;
        let left = end.saturating_duration_since(Instant::now());
        // Whichever limit comes first bounds the wait for the next message; the message
        // naming it is built only when it strikes.
        let total_first = left < limits.idle;
        let wait = if total_first { left } else { limits.idle };
        match tokio::time::timeout(wait, s.message()).await {
            Ok(Ok(Some(m))) => Some((Ok(m), Some(s))),
            Ok(Ok(None)) => None,
            Ok(Err(e)) => Some((Err(e), None)),
            Err(_) => {
                let why = if total_first {
                    format!(
                        "lasted {} s (server.stream_total_secs)",
                        limits.total.as_secs()
                    )
                } else {
                    format!(
                        "no message for {} s (server.stream_idle_secs)",
                        limits.idle.as_secs()
                    )
                };
                let status =
                    Status::deadline_exceeded(format!("{rpc}: {why}; the stream is ended"));
                Some((Err(status), None))
            }
        }
    })
}

/// Items a list answers when the request's `limit` is 0.
pub const DEFAULT_LIST_LIMIT: usize = 1_000;
/// The most items one list call answers (page with the request's cursor for more).
pub const MAX_LIST_LIMIT: usize = 10_000;

/// A required message field, or INVALID_ARGUMENT naming it.
pub fn required<'a, T>(field: &str, m: &'a Option<T>) -> Result<&'a T, Status> {
    m.as_ref()
        .ok_or_else(|| invalid(DomainError::invalid(field, "is required")))
}

/// A list's effective limit: 0 → [`DEFAULT_LIST_LIMIT`]; above [`MAX_LIST_LIMIT`] is
/// INVALID_ARGUMENT naming `field`.
pub fn list_limit(field: &str, limit: u32) -> Result<usize, Status> {
    match limit as usize {
        0 => Ok(DEFAULT_LIST_LIMIT),
        n if n <= MAX_LIST_LIMIT => Ok(n),
        n => Err(invalid(DomainError::invalid(
            field,
            format!("{n} is above the maximum {MAX_LIST_LIMIT}; page with the cursor"),
        ))),
    }
}

/// Runs store reads (scans, many point reads) on the blocking pool, off the async
/// workers that serve every other request.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| status(Error::Unavailable(format!("blocking read failed: {e}"))))?
}

/// A server stream fed from the blocking pool through a bounded channel: `produce`
/// gets an `emit` that blocks while the client is slow (the channel holds `depth`
/// items) and returns false once the client has gone, so the producer stops reading.
pub fn blocking_stream<T: Send + 'static>(
    depth: usize,
    produce: impl FnOnce(&mut dyn FnMut(T) -> bool) -> Result<(), Status> + Send + 'static,
) -> std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>> {
    let (tx, rx) = tokio::sync::mpsc::channel(depth.max(1));
    tokio::task::spawn_blocking(move || {
        let mut emit = |item: T| tx.blocking_send(Ok(item)).is_ok();
        if let Err(s) = produce(&mut emit) {
            let _ = tx.blocking_send(Err(s));
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Who is calling (the token's name, set by the auth layer), as recorded on runs and
/// audit events; "local" in development mode.
pub fn principal<T>(req: &tonic::Request<T>) -> String {
    req.extensions()
        .get::<crate::server::auth::Principal>()
        .map(|p| p.name.clone())
        .unwrap_or_else(|| "local".into())
}

/// The audit actor of a request: its principal, role and RPC.
pub fn actor<T>(req: &tonic::Request<T>, rpc: &str) -> crate::store::Actor {
    crate::store::Actor {
        principal: principal(req),
        role: req
            .extensions()
            .get::<crate::server::auth::Principal>()
            .map(|p| p.role.name())
            .unwrap_or("admin")
            .into(),
        rpc: rpc.into(),
        regions: Scope::of(req).0,
    }
}

/// The regions a caller's token is scoped to (region-code prefixes; empty = all), and
/// the checks handlers make with it: a district bureau sees and changes only enterprises
/// of its district.
#[derive(Clone, Debug, Default)]
pub struct Scope(pub Vec<String>);

/// The region prefixes a request's `field` (a region-code prefix, 2 to 6 digits; empty:
/// all) selects within the token's scope: the token's own prefixes when empty (none:
/// everything), else the prefix itself, which must lie inside the scope
/// (PERMISSION_DENIED otherwise).
pub fn region_prefixes(field: &str, prefix: &str, scope: &Scope) -> Result<Vec<String>, Status> {
    let p = prefix.trim();
    if p.is_empty() {
        return Ok(scope.0.clone());
    }
    if !(2..=6).contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(DomainError::invalid(
            field,
            format!("{p:?} is not a region-code prefix (2 to 6 digits)"),
        )));
    }
    // Inside the scope: the prefix starts with one of the token's prefixes.
    if scope.is_scoped() && !scope.0.iter().any(|s| p.starts_with(s.as_str())) {
        return Err(Status::permission_denied(format!(
            "{field}: {p} is outside the token's regions {:?}",
            scope.0
        )));
    }
    Ok(vec![p.to_string()])
}

impl Scope {
    /// The scope of a request.
    pub fn of<T>(req: &tonic::Request<T>) -> Scope {
        Scope(
            req.extensions()
                .get::<crate::server::auth::Principal>()
                .map(|p| p.regions.clone())
                .unwrap_or_default(),
        )
    }

    /// Whether the token is restricted.
    pub fn is_scoped(&self) -> bool {
        !self.0.is_empty()
    }

    /// Whether `r` is inside the scope.
    pub fn covers(&self, r: &crate::domain::RegionCode) -> bool {
        !self.is_scoped() || self.0.iter().any(|p| r.as_str().starts_with(p.as_str()))
    }

    /// PERMISSION_DENIED unless `r` is inside the scope.
    pub fn check_region(&self, field: &str, r: &crate::domain::RegionCode) -> Result<(), Status> {
        if self.covers(r) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "{field}: region {} is outside the token's regions {:?}",
                r.as_str(),
                self.0
            )))
        }
    }

    /// For a region-scoped token, NOT_FOUND unless the enterprise exists inside its
    /// regions, worded the same whether it is unknown or lies in another district: a
    /// scoped token learns neither whether a USCC is registered nor where (issue 15,
    /// probe 7). Unscoped tokens pass (the handler answers an unknown enterprise).
    pub fn check_uscc(
        &self,
        store: &crate::store::Store,
        field: &str,
        u: &crate::domain::Uscc,
    ) -> Result<(), Status> {
        if self.hides(store, u)? {
            return Err(Status::not_found(format!(
                "{field}: no enterprise {u} in the token's regions {:?}",
                self.0
            )));
        }
        Ok(())
    }

    /// Whether a scoped token must not see the enterprise (unknown, or outside its
    /// regions); records reached by id (cases, objections) then answer as unknown ids.
    pub fn hides(
        &self,
        store: &crate::store::Store,
        u: &crate::domain::Uscc,
    ) -> Result<bool, Status> {
        if !self.is_scoped() {
            return Ok(false);
        }
        Ok(!store.enterprise(u)?.is_some_and(|e| self.covers(&e.region)))
    }

    /// UpsertEnterprise: PERMISSION_DENIED if the USCC is registered outside the scope (a
    /// write cannot hide that the USCC is taken: creating it would succeed); an unknown
    /// one may be created inside the scope.
    pub fn check_upsert(
        &self,
        store: &crate::store::Store,
        field: &str,
        u: &crate::domain::Uscc,
    ) -> Result<(), Status> {
        if !self.is_scoped() {
            return Ok(());
        }
        match store.enterprise(u)? {
            Some(e) => self.check_region(field, &e.region),
            None => Ok(()),
        }
    }

    /// PERMISSION_DENIED for a region-scoped token (city-wide operations).
    pub fn require_unscoped(&self, what: &str) -> Result<(), Status> {
        if self.is_scoped() {
            Err(Status::permission_denied(format!(
                "{what} needs a token not scoped to regions (this one: {:?})",
                self.0
            )))
        } else {
            Ok(())
        }
    }
}

/// A required free-text field, trimmed: INVALID_ARGUMENT naming `field` when empty or
/// longer than `max` characters.
pub fn required_text(field: &str, s: &str, max: usize) -> Result<String, Status> {
    let t = optional_text(field, s, max)?;
    if t.is_empty() {
        return Err(invalid(DomainError::invalid(field, "is required")));
    }
    Ok(t)
}

/// An optional free-text field, trimmed: INVALID_ARGUMENT naming `field` when longer
/// than `max` characters.
pub fn optional_text(field: &str, s: &str, max: usize) -> Result<String, Status> {
    let t = s.trim();
    if t.chars().count() > max {
        return Err(invalid(DomainError::invalid(
            field,
            format!("at most {max} characters"),
        )));
    }
    Ok(t.to_string())
}
