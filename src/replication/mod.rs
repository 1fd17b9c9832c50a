//! The replicated mode: replicas that share one log on NATS JetStream (docs/DEPLOY.md).
//!
//! Every write a replica accepts is appended to a JetStream stream (Raft-replicated,
//! `replicas` copies) before anything is applied; each replica's applier reads the stream
//! in order from the sequence after the one its store last applied and hands each entry
//! to the store's writer ([`Store::apply_logged`]), which applies it through the same
//! typed operations as single-node mode and records the sequence in the entry's own batch.
//! The replica that took a request answers it once the entry is applied there. Reads are
//! served by any replica; a read may name the sequence it must see
//! ([`MIN_SEQUENCE_HEADER`]), every answer names the sequence its replica had applied
//! ([`SEQUENCE_HEADER`]).
//!
//! The log is NATS's, not ours: no consensus is implemented here.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{self, consumer::pull::OrderedConfig, consumer::DeliverPolicy};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    store::{LogSink, Store},
};

/// Request metadata: the log sequence a read must see; the replica waits (at most
/// `read_wait_ms`) until it has applied it, or answers UNAVAILABLE.
pub const MIN_SEQUENCE_HEADER: &str = "credit-risk-min-sequence";
/// Response metadata: the log sequence the answering replica had applied (after a write:
/// at least the write's own). Pass it as [`MIN_SEQUENCE_HEADER`] to read your writes on
/// any replica.
pub const SEQUENCE_HEADER: &str = "credit-risk-sequence";

/// How long the applier waits for the next entry before it asks the stream whether it
/// is behind (its consumer may be stuck on a NATS node that died).
const IDLE_CHECK: Duration = Duration::from_secs(2);

/// `[replication]`: absent or `servers = []` is single-node mode (the default).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationConfig {
    /// NATS server URLs (any of the cluster's nodes; the client fails over among them).
    pub servers: Vec<String>,
    /// This replica's name, unique among the replicas of one stream.
    pub node: String,
    /// The JetStream stream holding the log.
    pub stream: String,
    /// The stream's subject.
    pub subject: String,
    /// Copies of the stream the NATS cluster keeps (1, 3 or 5; 3 survives one node lost).
    pub replicas: usize,
    /// How long a read naming a minimum sequence waits for this replica to apply it.
    pub read_wait_ms: u64,
    /// How long an append waits for the stream's acknowledgement before the write is
    /// answered UNAVAILABLE.
    pub append_timeout_ms: u64,
    /// How long entries are kept in the stream (0: forever). A replica down for longer
    /// than this recovers from a backup (docs/DEPLOY.md).
    pub max_age_days: u64,
    /// Every how many log entries each replica appends the digest of what the log wrote
    /// in its store so far, for its peers to compare (0: never; docs/DEPLOY.md
    /// "Divergence").
    pub checkpoint_every: u64,
    /// NATS user of this replica (with `password_file`); empty: no user.
    pub user: String,
    /// File holding the NATS user's password (its first line), readable by the service
    /// only — the password is not written in the configuration.
    pub password_file: String,
    /// File holding a NATS authentication token (its first line), instead of a user.
    pub token_file: String,
    /// PEM file of the CA that signed the NATS servers' certificates: the connection is
    /// then TLS only, and the servers are verified against it.
    pub tls_ca_file: String,
    /// PEM certificate and key of this replica, for NATS servers that verify clients
    /// (`tls { verify: true }`); both or neither.
    pub tls_client_cert_file: String,
    pub tls_client_key_file: String,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            servers: Vec::new(),
            node: String::new(),
            stream: "CREDIT_RISK".into(),
            subject: "credit-risk.log".into(),
            replicas: 3,
            read_wait_ms: 5_000,
            append_timeout_ms: 10_000,
            max_age_days: 0,
            checkpoint_every: 1000,
            user: String::new(),
            password_file: String::new(),
            token_file: String::new(),
            tls_ca_file: String::new(),
            tls_client_cert_file: String::new(),
            tls_client_key_file: String::new(),
        }
    }
}

impl ReplicationConfig {
    /// Whether the replicated mode is on.
    pub fn enabled(&self) -> bool {
        !self.servers.is_empty()
    }

    /// Checks the settings, naming the first bad key.
    pub fn validate(&self) -> Result<()> {
        if self.node.is_empty()
            || !self
                .node
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::invalid(
                "replication.node",
                "a unique name of this replica: letters, digits, '-' or '_'",
            ));
        }
        if self.stream.is_empty() || self.stream.contains(['.', ' ', '*', '>']) {
            return Err(Error::invalid(
                "replication.stream",
                "a JetStream stream name (no '.', ' ', '*' or '>')",
            ));
        }
        if self.subject.is_empty() || self.subject.contains(['*', '>', ' ']) {
            return Err(Error::invalid(
                "replication.subject",
                "a literal NATS subject (no wildcards)",
            ));
        }
        if ![1, 3, 5].contains(&self.replicas) {
            return Err(Error::invalid("replication.replicas", "1, 3 or 5"));
        }
        if self.user.is_empty() != self.password_file.is_empty() {
            return Err(Error::invalid(
                "replication.password_file",
                "give user and password_file together",
            ));
        }
        if !self.user.is_empty() && !self.token_file.is_empty() {
            return Err(Error::invalid(
                "replication.token_file",
                "a user or a token, not both",
            ));
        }
        if self.tls_client_cert_file.is_empty() != self.tls_client_key_file.is_empty() {
            return Err(Error::invalid(
                "replication.tls_client_key_file",
                "give tls_client_cert_file and tls_client_key_file together",
            ));
        }
        for (field, path) in [
            ("replication.password_file", &self.password_file),
            ("replication.token_file", &self.token_file),
            ("replication.tls_ca_file", &self.tls_ca_file),
            (
                "replication.tls_client_cert_file",
                &self.tls_client_cert_file,
            ),
            ("replication.tls_client_key_file", &self.tls_client_key_file),
        ] {
            if !path.is_empty() && !std::path::Path::new(path).is_file() {
                return Err(Error::invalid(field, format!("{path}: no such file")));
            }
        }
        Ok(())
    }

    /// The NATS connection's options: this replica's name, and its credentials and TLS
    /// as configured (secrets read from their files now).
    fn connect_options(&self) -> Result<async_nats::ConnectOptions> {
        let mut o = async_nats::ConnectOptions::new()
            .name(format!("credit-risk {}", self.node))
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect();
        if !self.user.is_empty() {
            let password = secret("replication.password_file", &self.password_file)?;
            o = o.user_and_password(self.user.clone(), password);
        }
        if !self.token_file.is_empty() {
            o = o.token(secret("replication.token_file", &self.token_file)?);
        }
        if !self.tls_ca_file.is_empty() {
            o = o
                .add_root_certificates(self.tls_ca_file.clone().into())
                .require_tls(true);
        }
        if !self.tls_client_cert_file.is_empty() {
            o = o.add_client_certificate(
                self.tls_client_cert_file.clone().into(),
                self.tls_client_key_file.clone().into(),
            );
        }
        Ok(o)
    }
}

/// The first line of the secret file `path` (config key `field`).
fn secret(field: &str, path: &str) -> Result<String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::invalid(field, format!("{path}: {e}")))?;
    let line = text.lines().next().unwrap_or("").trim().to_string();
    if line.is_empty() {
        return Err(Error::invalid(field, format!("{path} is empty")));
    }
    Ok(line)
}

/// The log on a JetStream stream.
struct JetStreamLog {
    js: jetstream::Context,
    /// The connection (the servers' `max_payload`).
    client: async_nats::Client,
    subject: String,
    timeout: Duration,
}

impl LogSink for JetStreamLog {
    fn max_entry_bytes(&self) -> usize {
        // The server's, once connected (NATS's default, 1 MB, until then).
        match self.client.server_info().max_payload {
            0 => 1 << 20,
            n => n,
        }
    }

    fn append(
        &self,
        msg_id: String,
        payload: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64>> + Send>> {
        let js = self.js.clone();
        let subject = self.subject.clone();
        let timeout = self.timeout;
        let max_payload = self.max_entry_bytes();
        let part_bytes = part_bytes(max_payload);
        Box::pin(async move {
            let appended = async {
                if payload.len() <= max_payload.saturating_sub(HEADERS_ROOM) {
                    return publish(&js, &subject, msg_id, None, payload).await;
                }
                // Larger than one message: the parts, then the last naming their
                // sequences (see `LogPart`).
                let parts: Vec<&[u8]> = payload.chunks(part_bytes).collect();
                let n = parts.len();
                let mut seqs = Vec::with_capacity(n - 1);
                for (i, part) in parts[..n - 1].iter().enumerate() {
                    let h = (PART_HEADER, format!("{}/{n}", i + 1));
                    let id = part_id(&msg_id, i + 1);
                    seqs.push(publish(&js, &subject, id, Some(h), part.to_vec()).await?);
                }
                let list = seqs
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                let h = (PARTS_HEADER, list);
                publish(&js, &subject, msg_id, Some(h), parts[n - 1].to_vec()).await
            };
            tokio::time::timeout(timeout, appended).await.map_err(|_| {
                Error::Unavailable(format!(
                    "the log did not acknowledge the write within {} ms; it may or may \
                         not have been applied (retry with the same request_id)",
                    timeout.as_millis()
                ))
            })?
        })
    }
}

/// NATS header of an entry's earlier part: `i/n` (1-based, of the entry's `n` parts).
const PART_HEADER: &str = "Credit-Risk-Part";
/// NATS header of an entry's last part: the stream sequences of its earlier parts, in
/// order, comma-separated.
const PARTS_HEADER: &str = "Credit-Risk-Parts";

/// Room left in a message for its headers (message id, part headers).
const HEADERS_ROOM: usize = 1024;

/// The bytes of one part of an entry, for a log whose messages hold at most
/// `max_payload` bytes: half, so a part read back by sequence (the server's JSON answer,
/// base64) fits too, less room for the headers. (An entry that fits one message is
/// appended whole.)
fn part_bytes(max_payload: usize) -> usize {
    (max_payload / 2)
        .saturating_sub(HEADERS_ROOM)
        .max(HEADERS_ROOM)
}

/// The deduplication id of part `i` of the entry `msg_id`.
fn part_id(msg_id: &str, i: usize) -> String {
    format!("{msg_id}.part{i}")
}

/// Appends one message; its stream sequence once the stream holds it.
async fn publish(
    js: &jetstream::Context,
    subject: &str,
    msg_id: String,
    header: Option<(&'static str, String)>,
    payload: Vec<u8>,
) -> Result<u64> {
    let mut publish = jetstream::message::PublishMessage::build()
        .payload(payload.into())
        .message_id(msg_id);
    if let Some((name, value)) = header {
        publish = publish.header(name, value.as_str());
    }
    let ack = js
        .send_publish(subject.to_string(), publish)
        .await
        .map_err(|e| unavailable("appending to the log", e))?;
    let ack = ack
        .await
        .map_err(|e| unavailable("the log's acknowledgement", e))?;
    Ok(ack.sequence)
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!(
        "{what}: {e}; the write is not acknowledged (retry with the same request_id)"
    ))
}

/// Connects to the log, creates its stream if it does not exist, puts the store in
/// replicated mode and starts the applier. Returns once the applier has caught up with
/// the stream as it was at the start (so the first reads see what was written before),
/// or after a minute if it has not (it goes on catching up while serving).
pub async fn start(
    cfg: &ReplicationConfig,
    store: Store,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Store> {
    cfg.validate()?;
    // What NATS last said about the connection (a refused password, a bad certificate),
    // for the error if the log never becomes available.
    let said: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let heard = said.clone();
    let client = cfg
        .connect_options()?
        .event_callback(move |event| {
            let heard = heard.clone();
            async move {
                use async_nats::Event;
                let note = match event {
                    Event::ServerError(e) => Some(e.to_string()),
                    Event::ClientError(e) => Some(e.to_string()),
                    Event::Connected => None,
                    _ => return,
                };
                if let Ok(mut h) = heard.lock() {
                    *h = note;
                }
            }
        })
        .connect(cfg.servers.clone())
        .await
        .map_err(|e| Error::Unavailable(format!("replication.servers: {e}")))?;
    let js = jetstream::new(client.clone());
    let config = jetstream::stream::Config {
        name: cfg.stream.clone(),
        subjects: vec![cfg.subject.clone()],
        num_replicas: cfg.replicas,
        storage: jetstream::stream::StorageType::File,
        max_age: Duration::from_secs(cfg.max_age_days.saturating_mul(86_400)),
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    let refused = || {
        said.lock()
            .ok()
            .and_then(|s| s.clone())
            .filter(|s| s.to_lowercase().contains("authorization"))
    };
    let stream = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match js.get_or_create_stream(config.clone()).await {
                Ok(s) => return Ok(s),
                // Credentials NATS refused will not do better on a retry.
                Err(_) if refused().is_some() => return Err(()),
                Err(e) => {
                    tracing::warn!(error = %e, "the log's stream is not available yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    })
    .await
    .unwrap_or(Err(()));
    let mut stream = match stream {
        Ok(s) => s,
        Err(()) => {
            if let Some(why) = refused() {
                return Err(Error::PermissionDenied(format!(
                    "replication.user / replication.password_file / replication.token_file: \
                     NATS refused this replica's credentials ({why})"
                )));
            }
            let said = said.lock().ok().and_then(|s| s.clone());
            return Err(Error::Unavailable(format!(
                "replication.stream {:?}: not available{}",
                cfg.stream,
                said.map(|s| format!(" (NATS: {s})")).unwrap_or_default()
            )));
        }
    };
    let last = stream
        .info()
        .await
        .map_err(|e| Error::Unavailable(format!("replication.stream: {e}")))?
        .state
        .last_sequence;
    if let Some(why) = store.diverged()? {
        return Err(Error::FailedPrecondition(format!(
            "this store stopped as diverged from its peers and is not served replicated: {why}"
        )));
    }
    let applied = store.applied_sequence();
    if applied > last {
        // Every node of the stream lost its unsynced tail at once (power loss with the
        // default sync_interval), or this store belongs to another stream: new entries
        // would reuse sequences this replica has applied.
        return Err(Error::FailedPrecondition(format!(
            "replication.stream {:?} ends at sequence {last} but this replica applied {applied}: \
             the log lost entries this replica applied, or the store belongs to another stream \
             (docs/DEPLOY.md \"Durability\")",
            cfg.stream
        )));
    }
    store.replicate(
        Arc::new(JetStreamLog {
            js: js.clone(),
            client,
            subject: cfg.subject.clone(),
            timeout: Duration::from_millis(cfg.append_timeout_ms.max(1)),
        }),
        &cfg.node,
        Duration::from_millis(cfg.read_wait_ms),
    )?;
    tracing::info!(
        node = %cfg.node,
        stream = %cfg.stream,
        applied = store.applied_sequence(),
        log = last,
        "replicated mode: applying the log"
    );
    tokio::spawn(append_checkpoints(store.clone(), stop.clone()));
    tokio::spawn(apply_loop(store.clone(), stream, cfg.subject.clone(), stop));
    let caught = store.wait_applied(last, Duration::from_secs(60)).await;
    if caught < last {
        tracing::warn!(
            applied = caught,
            log = last,
            "still catching up with the log"
        );
    } else {
        abort_orphaned_runs(&store, &cfg.node).await;
    }
    Ok(store)
}

/// Appends the checkpoints this replica's writer asks for (the newest, when several
/// wait); one that cannot be appended is left to the next.
async fn append_checkpoints(store: Store, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut asks = store.checkpoints();
    loop {
        tokio::select! {
            changed = asks.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = stop.changed() => return,
        }
        let Some((at, since, chain)) = *asks.borrow_and_update() else {
            continue;
        };
        if let Err(e) = store.append_checkpoint(at, since, chain).await {
            tracing::warn!(error = %e, at, "cannot append this replica's checkpoint");
        }
    }
}

/// Reads the stream in order from the sequence after the last one queued and hands each
/// entry to the store. A lost connection is re-established (an ordered consumer starts
/// again where it was); an entry that does not decode, or a writer that stopped, stops the
/// replica (fault): it never skips an entry.
async fn apply_loop(
    store: Store,
    mut stream: jetstream::stream::Stream,
    subject: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut next = store.applied_sequence() + 1;
    loop {
        if *stop.borrow() {
            return;
        }
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: subject.clone(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: next,
                },
                ..Default::default()
            })
            .await;
        let messages = match consumer {
            Ok(c) => c.messages().await,
            Err(e) => {
                tracing::warn!(error = %e, next, "cannot read the log; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, next, "cannot read the log; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        loop {
            let m = tokio::select! {
                m = tokio::time::timeout(IDLE_CHECK, messages.next()) => m,
                _ = stop.wait_for(|s| *s) => return,
            };
            let m = match m {
                Ok(m) => m,
                // Quiet: is the log ahead of us (a consumer stuck on a node that died)?
                // (Bounded: during an outage the stream's info may not come; the
                // consumer is then made again.)
                Err(_) => match tokio::time::timeout(IDLE_CHECK, stream.info()).await {
                    Err(_) => break,
                    Ok(Ok(i)) if i.state.last_sequence >= next => {
                        tracing::info!(
                            next,
                            log = i.state.last_sequence,
                            "the log is ahead; re-reading it"
                        );
                        break;
                    }
                    _ => continue,
                },
            };
            let m = match m {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, next, "reading the log failed; resuming");
                    break;
                }
                None => break,
            };
            let seq = match m.info() {
                Ok(i) => i.stream_sequence,
                Err(e) => {
                    tracing::warn!(error = %e, "a log message without its sequence; resuming");
                    break;
                }
            };
            if seq < next {
                continue;
            }
            if seq > next {
                // The stream no longer holds what this replica has not applied
                // (retention): it cannot catch up from the log.
                store.report_fault(format!(
                    "the log starts at sequence {seq} but this replica needs {next}: it fell \
                     behind the stream's retention; restore a recent backup (docs/DEPLOY.md)"
                ));
                return;
            }
            match apply_message(&store, &stream, seq, &m).await {
                Ok(()) => {}
                Err(Halt::Retry(e)) => {
                    tracing::warn!(error = %e, next, "reading an entry's parts failed; resuming");
                    break;
                }
                Err(Halt::Fault(e)) => {
                    if *stop.borrow() {
                        return;
                    }
                    store.report_fault(format!("applying log sequence {seq}: {e}"));
                    return;
                }
            }
            next = seq + 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Why a log message was not applied.
enum Halt {
    /// The log could not be read (an entry's parts): read again from the same sequence.
    Retry(String),
    /// The entry cannot be applied: the replica stops (it never skips an entry).
    Fault(String),
}

/// Hands log message `seq` to the store: a whole entry; an earlier part of a larger one
/// (passed, [`Store::pass_logged`]); or an entry's last part — the entry is then read
/// back from its parts, by the sequences the last names, each checked to be this
/// entry's part in its place, and applied whole at this sequence.
async fn apply_message(
    store: &Store,
    stream: &jetstream::stream::Stream,
    seq: u64,
    m: &async_nats::Message,
) -> std::result::Result<(), Halt> {
    let fault = |e: Error| Halt::Fault(e.to_string());
    let header = |name: &str| {
        m.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    };
    if header(PART_HEADER).is_some() {
        return store.pass_logged(seq).await.map_err(fault);
    }
    let Some(list) = header(PARTS_HEADER) else {
        return store.apply_logged(seq, &m.payload).await.map_err(fault);
    };
    let corrupt = |why: String| Halt::Fault(format!("log entry {seq} in parts: {why}"));
    let id = header(async_nats::header::NATS_MESSAGE_ID.as_ref())
        .ok_or_else(|| corrupt("its last part has no message id".into()))?;
    let seqs = list
        .split(',')
        .map(|s| s.parse::<u64>())
        .collect::<std::result::Result<Vec<u64>, _>>()
        .map_err(|_| corrupt(format!("part sequences {list:?}")))?;
    let n = seqs.len() + 1;
    let mut whole = Vec::new();
    for (i, &at) in seqs.iter().enumerate() {
        if at >= seq {
            return Err(corrupt(format!(
                "part {} at sequence {at}, not before",
                i + 1
            )));
        }
        let part = match stream.get_raw_message(at).await {
            Ok(p) => p,
            Err(e) if e.kind() == jetstream::stream::RawMessageErrorKind::NoMessageFound => {
                return Err(corrupt(format!(
                    "part {} (sequence {at}) is no longer in the stream (retention); \
                     restore a recent backup (docs/DEPLOY.md)",
                    i + 1
                )))
            }
            Err(e) => return Err(Halt::Retry(format!("part {} at {at}: {e}", i + 1))),
        };
        let want = (format!("{}/{n}", i + 1), part_id(&id, i + 1));
        let got = (
            part.headers.get(PART_HEADER).map(|v| v.as_str()),
            part.headers
                .get(async_nats::header::NATS_MESSAGE_ID)
                .map(|v| v.as_str()),
        );
        if got != (Some(want.0.as_str()), Some(want.1.as_str())) {
            return Err(corrupt(format!(
                "sequence {at} is {got:?}, not part {} of {n} of {id:?}",
                i + 1
            )));
        }
        whole.extend_from_slice(&part.payload);
    }
    whole.extend_from_slice(&m.payload);
    store.apply_logged(seq, &whole).await.map_err(fault)
}

/// Runs being computed when this replica (re)starts and has caught up: the replica that
/// computed one may be gone with its job (this one, restarted), so each is aborted
/// through the log — on every replica alike. A run another live replica still computes
/// fails at its next result entry; its requester sees the failure and runs it again.
async fn abort_orphaned_runs(store: &Store, node: &str) {
    let building = match store.building_runs() {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the runs being computed");
            return;
        }
    };
    for id in building {
        let abort = crate::store::op::AbortRun {
            id,
            error: format!("interrupted: replica {node} restarted while the run was computed"),
        };
        match store
            .write_as(crate::store::Actor::system("replication"), abort)
            .await
        {
            Ok(_) => tracing::warn!(run = id, "a run being computed at the start was aborted"),
            Err(e) => {
                tracing::warn!(run = id, error = %e, "could not abort a run found being computed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ReplicationConfig {
        ReplicationConfig {
            servers: vec!["nats://127.0.0.1:4222".into()],
            node: "a".into(),
            ..Default::default()
        }
    }

    fn refused_naming(c: ReplicationConfig, field: &str) {
        match c.validate() {
            Err(e @ Error::Invalid(_)) => {
                let m = e.to_string();
                assert!(m.contains(field), "{m}")
            }
            other => panic!("{field}: {other:?}"),
        }
    }

    #[test]
    fn credentials_and_tls_settings_are_checked_naming_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\nignored second line\n").expect("write");
        let pw = pw.to_string_lossy().to_string();
        assert!(config().validate().is_ok());
        let with = |f: &dyn Fn(&mut ReplicationConfig)| {
            let mut c = config();
            f(&mut c);
            c
        };
        refused_naming(with(&|c| c.user = "cr".into()), "replication.password_file");
        refused_naming(
            with(&|c| c.password_file = pw.clone()),
            "replication.password_file",
        );
        refused_naming(
            with(&|c| {
                c.user = "cr".into();
                c.password_file = pw.clone();
                c.token_file = pw.clone();
            }),
            "replication.token_file",
        );
        refused_naming(
            with(&|c| c.tls_client_cert_file = pw.clone()),
            "replication.tls_client_key_file",
        );
        refused_naming(
            with(&|c| c.tls_ca_file = "/no/such/ca.pem".into()),
            "replication.tls_ca_file",
        );
        let ok = with(&|c| {
            c.user = "cr".into();
            c.password_file = pw.clone();
        });
        assert!(ok.validate().is_ok());
        assert_eq!(
            secret("replication.password_file", &pw).expect("read"),
            "s3cret"
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").expect("write");
        assert!(secret("replication.token_file", &empty.to_string_lossy()).is_err());
    }
}
