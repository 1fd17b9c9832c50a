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
        Ok(())
    }
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
        Box::pin(async move {
            let publish = jetstream::message::PublishMessage::build()
                .payload(payload.into())
                .message_id(msg_id);
            let appended = async {
                let ack = js
                    .send_publish(subject, publish)
                    .await
                    .map_err(|e| unavailable("appending to the log", e))?;
                ack.await
                    .map_err(|e| unavailable("the log's acknowledgement", e))
            };
            let ack = tokio::time::timeout(timeout, appended)
                .await
                .map_err(|_| {
                    Error::Unavailable(format!(
                        "the log did not acknowledge the write within {} ms; it may or may \
                         not have been applied (retry with the same request_id)",
                        timeout.as_millis()
                    ))
                })??;
            Ok(ack.sequence)
        })
    }
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
    let client = async_nats::ConnectOptions::new()
        .name(format!("credit-risk {}", cfg.node))
        .connection_timeout(Duration::from_secs(5))
        .retry_on_initial_connect()
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
    let mut stream = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match js.get_or_create_stream(config.clone()).await {
                Ok(s) => return s,
                Err(e) => {
                    tracing::warn!(error = %e, "the log's stream is not available yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    })
    .await
    .map_err(|_| {
        Error::Unavailable(format!(
            "replication.stream {:?}: not available",
            cfg.stream
        ))
    })?;
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
            if let Err(e) = store.apply_logged(seq, &m.payload).await {
                if *stop.borrow() {
                    return;
                }
                store.report_fault(format!("applying log sequence {seq}: {e}"));
                return;
            }
            next = seq + 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
