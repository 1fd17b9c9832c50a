//! The alert log (风险预警): every alert under its sequence number, written by the writer
//! in the batch of the change that raised it, and the hub that tells watchers about
//! alerts once they are durable.
//!
//! | key | value |
//! |---|---|
//! | `L seq(8)` | [`Alert`] (codec-encoded) |
//! | `W case_id(8) due` | empty: the repair step due then has been alerted |
//!
//! Sequence numbers start at 1 and have no gaps (the writer assigns them in commit
//! order), so a watcher that has seen `n` resumes exactly after it.

use std::sync::Arc;

use super::codec;
use crate::{
    domain::{
        alert::{Alert, AlertKind, AlertState},
        RiskClass,
    },
    error::{Error, Result},
};

/// The alert keyspace.
pub const ALERTS: u8 = b'L';
/// Repair deadlines already alerted: `W case_id(8) due(4)` → empty.
pub const WARNED: u8 = b'W';

/// `W case due`: the marker that case `id`'s step due on `due` has raised its alert.
pub fn warned_key(id: u64, due: crate::domain::Date) -> Vec<u8> {
    let mut k = vec![WARNED];
    k.extend_from_slice(&id.to_be_bytes());
    k.extend_from_slice(&due.to_string().into_bytes());
    k
}

/// `L seq`.
pub fn key(seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = ALERTS;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The last sequence number used (0 for none).
pub fn head(tree: &sled::Tree) -> Result<u64> {
    match tree.scan_prefix([ALERTS]).next_back() {
        None => Ok(0),
        Some(kv) => {
            let (k, _) = kv?;
            <[u8; 8]>::try_from(&k[1..])
                .map(u64::from_be_bytes)
                .map_err(|_| Error::Corrupt("bad alert key".into()))
        }
    }
}

/// The alert at `seq`, if any.
pub fn get(tree: &sled::Tree, seq: u64) -> Result<Option<Alert>> {
    tree.get(key(seq))?.map(|v| codec::decode(&v)).transpose()
}

/// Which alerts a reader wants.
#[derive(Clone, Debug, Default)]
pub struct AlertFilter {
    /// Region-code prefixes, any of which matches (empty: all).
    pub regions: Vec<String>,
    /// Kinds (empty: all).
    pub kinds: Vec<AlertKind>,
    /// Classes after the change (empty: all).
    pub classes: Vec<RiskClass>,
    /// Triage states (empty: all).
    pub states: Vec<AlertState>,
}

impl AlertFilter {
    /// Whether `a` passes.
    pub fn matches(&self, a: &Alert) -> bool {
        (self.regions.is_empty()
            || self
                .regions
                .iter()
                .any(|p| a.region.as_str().starts_with(p.as_str())))
            && (self.kinds.is_empty() || self.kinds.contains(&a.kind))
            && (self.classes.is_empty() || a.class_after.is_some_and(|c| self.classes.contains(&c)))
            && (self.states.is_empty() || self.states.contains(&a.state))
    }
}

/// Alerts after `after` up to `upto` (inclusive) in sequence order, passing `keep`, at
/// most `limit`; returns them and the last sequence number examined (to continue from),
/// so a page of a sparse filter does not restart from the beginning.
pub fn page(
    tree: &sled::Tree,
    after: u64,
    upto: u64,
    limit: usize,
    mut keep: impl FnMut(&Alert) -> bool,
) -> Result<(Vec<Alert>, u64)> {
    let mut out = Vec::new();
    let mut last = after;
    if after >= upto {
        return Ok((out, last));
    }
    for kv in tree.range(key(after + 1)..=key(upto)) {
        let (_, v) = kv?;
        let a: Alert = codec::decode(&v)?;
        last = a.seq;
        if keep(&a) {
            out.push(a);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok((out, last))
}

/// Tells watchers about alerts once they are durable: a broadcast of every new alert
/// and of the last sequence number. A watcher that misses broadcasts (it lagged) reads
/// them back from the log, so none is skipped; a slow watcher never slows the writer
/// (sending never waits).
#[derive(Clone, Debug)]
pub struct AlertHub {
    tx: tokio::sync::broadcast::Sender<Arc<Alert>>,
    head: tokio::sync::watch::Sender<u64>,
}

impl AlertHub {
    /// A hub whose log ends at `head`, buffering `capacity` alerts per watcher.
    pub fn new(head: u64, capacity: usize) -> AlertHub {
        AlertHub {
            tx: tokio::sync::broadcast::channel(capacity.max(16)).0,
            head: tokio::sync::watch::channel(head).0,
        }
    }

    /// Announces durable alerts (in sequence order). The head moves first, so a
    /// watcher that receives an alert finds it within the head when it reads the log.
    pub fn publish(&self, alerts: Vec<Alert>) {
        if let Some(a) = alerts.last() {
            self.head.send_replace(a.seq);
        }
        for a in alerts {
            // No receivers is fine: nobody watches.
            let _ = self.tx.send(Arc::new(a));
        }
    }

    /// A new receiver of alerts published from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<Alert>> {
        self.tx.subscribe()
    }

    /// The last durable sequence number, and a receiver that changes with it.
    pub fn head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.head.subscribe()
    }
}
