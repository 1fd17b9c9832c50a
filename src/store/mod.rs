//! The store: owns sled. Nothing above this module names sled.
//!
//! Layout: one sled tree `registry` holds records, indexes and idempotency records under
//! one-byte keyspaces (see [`keys`]), so a record and its index entries change in one
//! atomic `apply_batch`. A tree `meta` holds the schema version.
//!
//! Writes go through one writer thread ([`writer`]) that serialises them (so reads it
//! makes before writing cannot race), applies each group of queued writes as one atomic
//! batch and flushes once per group before acknowledging (group commit). Reads go
//! straight to the tree from any thread.

pub mod codec;
pub mod keys;
mod writer;

use std::{
    path::Path,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::{
    domain::{
        rules::{PublicityRules, SweepRules},
        Date, Enterprise, EnterpriseRecords, Uscc,
    },
    error::{Error, Result},
};

pub use writer::{
    error_code, Counters, ImportItem, ImportOutcome, ImportRejection, Outcome, RequestKey,
    SweepCounts, Ticket, WriteOp,
};

/// Schema version of the store layout. A store written by another version is refused
/// at open with both versions named.
pub const SCHEMA_VERSION: u32 = 2;

/// Tuning and rule parameters of a store.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreOptions {
    /// sled page-cache size in bytes.
    pub cache_bytes: u64,
    /// Most write jobs committed under one flush.
    pub max_group: usize,
    /// Queue depth of the writer; senders wait when it is full (back-pressure).
    pub queue_depth: usize,
    /// zstd page compression: about half the disk, about a quarter of the import
    /// throughput (see BENCHMARKS.md). Fixed when the store is created.
    pub compression: bool,
    /// Penalty publicity parameters.
    pub publicity: PublicityRules,
    /// Annual-report sweep parameters.
    pub sweep: SweepRules,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 512 * 1024 * 1024,
            max_group: 512,
            queue_depth: 1024,
            compression: false,
            publicity: PublicityRules::default(),
            sweep: SweepRules::default(),
        }
    }
}

struct Shared {
    db: sled::Db,
    registry: sled::Tree,
    writer: writer::WriterHandle,
    options: StoreOptions,
    counters: Arc<Counters>,
}

/// A cheap-to-clone handle on the store.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

impl Store {
    /// Opens (or creates) the store at `dir`, checking the schema version.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Store> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Unavailable(format!("{}: {e}", dir.display())))?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(options.cache_bytes)
            .flush_every_ms(Some(500))
            .mode(sled::Mode::HighThroughput)
            .use_compression(options.compression)
            .compression_factor(1)
            .open()?;
        let meta = db.open_tree("meta")?;
        let registry = db.open_tree("registry")?;
        match meta.get("schema_version")? {
            None => {
                if !registry.is_empty() {
                    return Err(Error::Corrupt(
                        "registry has data but no schema version".into(),
                    ));
                }
                meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
                db.flush()?;
            }
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| Error::Corrupt("bad schema version record".into()))?;
                if found != SCHEMA_VERSION {
                    return Err(Error::FailedPrecondition(format!(
                        "store schema version {found}, this build reads {SCHEMA_VERSION}"
                    )));
                }
            }
        }
        let counters = Arc::new(Counters::default());
        let count = match registry.get(keys::counter("enterprises"))? {
            Some(v) => <[u8; 8]>::try_from(v.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| Error::Corrupt("bad enterprise counter".into()))?,
            None => 0,
        };
        counters.enterprises.store(count, Ordering::Release);
        let writer = writer::spawn(
            db.clone(),
            registry.clone(),
            options.clone(),
            counters.clone(),
        )?;
        Ok(Store {
            shared: Arc::new(Shared {
                db,
                registry,
                writer,
                options,
                counters,
            }),
        })
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.shared.options
    }

    /// Submits a write and waits until it is durable. `request` makes it idempotent.
    pub async fn write(&self, op: WriteOp, request: Option<RequestKey>) -> Result<Outcome> {
        self.enqueue(op, request).await?.await
    }

    /// Queues a write and returns at once with a ticket to await its outcome. Writes are
    /// applied in the order they are queued.
    pub async fn enqueue(&self, op: WriteOp, request: Option<RequestKey>) -> Result<Ticket> {
        self.shared.writer.enqueue(op, request).await
    }

    /// The stored outcome of an earlier request with this id and fingerprint, if any;
    /// INVALID_ARGUMENT if the id was used for a different request.
    pub fn recall(&self, request: &RequestKey) -> Result<Option<Outcome>> {
        writer::recall(&self.shared.registry, request)
    }

    /// Reads one enterprise's profile.
    pub fn enterprise(&self, u: &Uscc) -> Result<Option<Enterprise>> {
        Ok(self.enterprise_records(u)?.and_then(|d| d.enterprise))
    }

    /// Reads everything about one enterprise (one point read); `None` if it is not
    /// registered.
    pub fn enterprise_records(&self, u: &Uscc) -> Result<Option<EnterpriseRecords>> {
        Ok(writer::read_dossier(&self.shared.registry, u)?.filter(|d| d.enterprise.is_some()))
    }

    /// Number of registered enterprises.
    pub fn enterprise_count(&self) -> u64 {
        self.shared.counters.enterprises.load(Ordering::Acquire)
    }

    /// Whether any enterprise is registered.
    pub fn has_enterprises(&self) -> Result<bool> {
        Ok(self
            .shared
            .registry
            .scan_prefix([keys::RECORDS])
            .next()
            .transpose()?
            .is_some())
    }

    /// Bytes the store occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.shared.db.size_on_disk()?)
    }

    /// Flushes everything to disk (used at shutdown).
    pub fn flush(&self) -> Result<()> {
        self.shared.db.flush()?;
        Ok(())
    }

    /// Checks every index entry has its record and every record its index entries;
    /// returns the number of enterprises checked. For tests and `credit-risk check`.
    pub fn check_indexes(&self) -> Result<u64> {
        writer::check_indexes(&self.shared.registry)
    }

    /// Waits for the writer to drain (for shutdown), at most `timeout`.
    pub fn close(&self, timeout: Duration) -> Result<()> {
        self.shared.writer.close(timeout);
        self.flush()
    }
}

/// Today for defaults; a helper so tests can reason about it.
pub fn today() -> Date {
    Date::today()
}

/// Up to `limit` directory-index entries after the key `after` (from the start if
/// `None`), in key order, with their keys.
pub(crate) fn directory_page(
    tree: &sled::Tree,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<(Vec<u8>, keys::DirectoryEntry)>> {
    let start = match after {
        Some(k) => {
            let mut k = k.to_vec();
            k.push(0);
            k
        }
        None => vec![keys::DIRECTORY],
    };
    let mut out = Vec::new();
    for kv in tree.range(start..) {
        let (k, _) = kv?;
        if k.first() != Some(&keys::DIRECTORY) || out.len() >= limit {
            break;
        }
        let e = keys::decode_directory(&k)
            .ok_or_else(|| Error::Corrupt(format!("bad directory key {k:?}")))?;
        out.push((k.to_vec(), e));
    }
    Ok(out)
}
