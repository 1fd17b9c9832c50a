//! The store: owns sled. Nothing above this module names sled.
//!
//! Layout: one sled tree `registry` holds records, indexes and idempotency records under
//! one-byte keyspaces (see [`keys`]), so a record and its index entries change in one
//! atomic `apply_batch`. A tree `meta` holds the schema version.
//!
//! Writes go through one writer thread (`writer`) that serialises them (so reads it
//! makes before writing cannot race), applies each group of queued writes as one atomic
//! batch and flushes once per group before acknowledging (group commit). Reads go
//! straight to the tree from any thread.

pub mod alerts;
pub mod audit;
pub mod backup;
pub mod codec;
pub mod compact;
pub mod draws;
pub mod explanations;
pub mod keys;
pub mod repair;
pub mod scoring;
pub mod seal;
pub mod spot;
pub mod staging;
pub mod stats;
mod writer;

use std::{
    path::Path,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, RwLock,
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::{
    domain::stats::{Counter, Month, Outcome, Performance},
    domain::{Date, Enterprise, EnterpriseRecords, Model, Uscc},
    error::{Error, Result},
};

pub use audit::Actor;
pub use scoring::{
    Override, RunEntry, RunState, RunView, ScoringRun, TransitionExample, Transitions,
};
use scoring::{ScoringState, SharedScoring};
pub use writer::op::{
    Correction, ImportItem, ImportOutcome, ImportRejection, SweepCounts, Upserted,
};
pub use writer::{
    op, Answer, BindReply, Checkpoint, Counters, Entry, Envelope, FaultSignal, Foreground,
    ForegroundGuard, LogPart, LogSink, Operation, Origin, Remembered, Render, RequestKey, Stamp,
    Submitted, Ticket, Tx,
};

/// The last log sequence applied as the store holds it (replicated mode; 0: none).
fn stored_log_sequence(registry: &sled::Tree) -> Result<u64> {
    match registry.get(keys::counter(writer::LOG_SEQUENCE))? {
        Some(v) => <[u8; 8]>::try_from(v.as_ref())
            .map(u64::from_be_bytes)
            .map_err(|_| Error::Corrupt("bad log sequence record".into())),
        None => Ok(0),
    }
}

/// Schema version of the store layout. A store written by another version is refused
/// at open with both versions named.
pub const SCHEMA_VERSION: u32 = 5;

/// Tuning and rule parameters of a store.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreOptions {
    /// sled page-cache size in bytes.
    pub cache_bytes: u64,
    /// Explained classifications kept in memory, in (estimated) bytes; 0 keeps none
    /// ([`explanations`]).
    pub explanation_cache_bytes: u64,
    /// Most write jobs committed under one flush.
    pub max_group: usize,
    /// Queue depth of the writer; senders wait when it is full (back-pressure).
    pub queue_depth: usize,
    /// Write the audit trail. Always on in service; `false` exists only so the audit
    /// overhead can be benchmarked in the same run (`credit-risk bench-audit`).
    pub audit: bool,
    /// A holiday calendar file (TOML) extending the built-in 2024–2026 calendar.
    pub calendar_file: Option<std::path::PathBuf>,
    /// The working-day calendar in force (built-in, extended by `calendar_file`).
    #[serde(skip, default = "crate::domain::calendar::WorkCalendar::builtin")]
    pub calendar: crate::domain::calendar::WorkCalendar,
    /// Scoring runs whose results are kept (newest first; the current run and a pending
    /// dry run always are); older runs keep only their record.
    pub keep_runs: usize,
    /// Threads the batch scoring job reads the store with (1 or 2).
    pub scan_threads: usize,
    /// zstd page compression: about half the disk, about a quarter of the import
    /// throughput (see BENCHMARKS.md). Fixed when the store is created.
    pub compression: bool,
    /// After a clean shutdown, re-open sled's files once so sled writes its page-table
    /// snapshot ([`snapshot_closed`]): the next open reads the snapshot instead of
    /// replaying every write since the last open (the shutdown takes those seconds
    /// instead; a `kill -9` leaves the replay to the next open, which stays correct).
    pub snapshot_at_shutdown: bool,
    /// Rules files (TOML, `[[ruleset]]`) adding dated rules versions to the built-in
    /// Shanghai rules (see docs/RULES.md).
    pub rules_files: Vec<std::path::PathBuf>,
    /// The rules versions in force by date (built-in, extended by `rules_files`).
    #[serde(skip)]
    pub rules: crate::domain::ruleset::RuleBook,
    /// The clock writes are stamped with and default as-of dates read (the system's in
    /// service; fixed in tests).
    #[serde(skip)]
    pub clock: crate::domain::Clock,
    /// Which changes raise alerts, the penalty window and threshold, the triage period
    /// (`[store.alerts]`).
    pub alerts: crate::domain::alert::AlertRules,
    /// Alerts buffered per watcher before it must catch up from the log.
    pub alert_buffer: usize,
    /// Records an import sorts in memory (a few hundred bytes each; about 60 on disk)
    /// before it writes them as a sorted run under `staging/` in the data directory
    /// ([`staging`]).
    pub import_run_records: usize,
    /// A catalogue of reward and punishment measures (TOML, the format of the built-in
    /// `src/domain/measures_shanghai.toml`) replacing the built-in one.
    pub measures_file: Option<std::path::PathBuf>,
    /// The measures catalogue in force (built-in, or `measures_file`).
    #[serde(skip, default = "crate::domain::measures::Catalogue::builtin")]
    pub measures: crate::domain::measures::Catalogue,
    /// A catalogue of check items and departments (TOML, the format of the built-in
    /// `src/domain/check_items_shanghai.toml`) replacing the built-in one.
    pub check_items_file: Option<std::path::PathBuf>,
    /// The check-item catalogue in force (built-in, or `check_items_file`).
    #[serde(skip, default = "crate::domain::checkitem::CheckCatalogue::builtin")]
    pub check_items: crate::domain::checkitem::CheckCatalogue,
    /// This instance's name in federated joint draws (1–64 of `a-z 0-9 . _ -`), which
    /// the other instances and the joint receipt know it by.
    pub instance_name: String,
    /// Opened for the replicated mode (`[replication]`; set by the server, not a store
    /// key): a run interrupted here stays being computed at open — the log finishes or
    /// aborts it — instead of being aborted by this replica alone.
    #[serde(skip)]
    pub replicated: bool,
    /// `K` entries of a drawn plan's selections the writer writes per batch after the
    /// draw (see `store::stats`); 0 writes none, which only tests of the window before
    /// they are all written use. Not a configuration key.
    #[serde(skip, default = "default_index_chunk")]
    pub index_chunk: usize,
    /// Replicated mode: this replica's name, and every how many log entries the
    /// replicas exchange the digest of what they wrote (0: never). Set by the server
    /// from `[replication]`, not store keys.
    #[serde(skip)]
    pub replica_node: String,
    #[serde(skip)]
    pub checkpoint_every: u64,
}

fn default_index_chunk() -> usize {
    4096
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 256 * 1024 * 1024,
            explanation_cache_bytes: 64 * 1024 * 1024,
            max_group: 512,
            queue_depth: 1024,
            audit: true,
            calendar_file: None,
            calendar: crate::domain::calendar::WorkCalendar::builtin(),
            keep_runs: 7,
            scan_threads: 2,
            compression: false,
            snapshot_at_shutdown: true,
            rules_files: Vec::new(),
            rules: crate::domain::ruleset::RuleBook::builtin(),
            clock: crate::domain::Clock::System,
            alerts: crate::domain::alert::AlertRules::default(),
            alert_buffer: 4096,
            import_run_records: 1 << 18,
            measures_file: None,
            measures: crate::domain::measures::Catalogue::builtin(),
            check_items_file: None,
            check_items: crate::domain::checkitem::CheckCatalogue::builtin(),
            instance_name: "local".into(),
            replicated: false,
            index_chunk: default_index_chunk(),
            replica_node: String::new(),
            checkpoint_every: 0,
        }
    }
}

impl StoreOptions {
    /// Reads the files the options name: the holiday calendar (`calendar_file`), the
    /// rules versions (`rules_files`), the measures catalogue (`measures_file`) and the
    /// check-item catalogue (`check_items_file`), and checks `instance_name`. A bad
    /// file or key stops the server naming it.
    pub fn load_files(&mut self) -> std::result::Result<(), String> {
        if self.import_run_records == 0 {
            return Err("store.import_run_records: at least 1".into());
        }
        if !crate::domain::joint::valid_instance_name(&self.instance_name) {
            return Err(format!(
                "store.instance_name {:?}: 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit",
                self.instance_name
            ));
        }
        if let Some(f) = &self.calendar_file {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("store.calendar_file {}: {e}", f.display()))?;
            let extra = crate::domain::calendar::WorkCalendar::parse(&text)
                .map_err(|e| format!("store.calendar_file {}: {e}", f.display()))?;
            self.calendar.merge(extra);
        }
        let mut files = Vec::new();
        for f in &self.rules_files {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("store.rules_files {}: {e}", f.display()))?;
            files.push((f.display().to_string(), text));
        }
        self.rules = crate::domain::ruleset::RuleBook::with_files(&files)
            .map_err(|e| format!("store.rules_files: {e}"))?;
        if let Some(f) = &self.measures_file {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("store.measures_file {}: {e}", f.display()))?;
            self.measures = crate::domain::measures::Catalogue::parse(&text)
                .map_err(|e| format!("store.measures_file {}: {e}", f.display()))?;
        }
        if let Some(f) = &self.check_items_file {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("store.check_items_file {}: {e}", f.display()))?;
            self.check_items = crate::domain::checkitem::CheckCatalogue::parse(&text)
                .map_err(|e| format!("store.check_items_file {}: {e}", f.display()))?;
        }
        Ok(())
    }
}

struct Shared {
    /// The data directory.
    dir: std::path::PathBuf,
    /// Records all running imports may hold in memory together, one permit each
    /// (`2 × store.import_run_records`; see [`staging`]).
    import_budget: Arc<tokio::sync::Semaphore>,
    db: sled::Db,
    registry: sled::Tree,
    writer: writer::WriterHandle,
    options: StoreOptions,
    counters: Arc<Counters>,
    scoring: SharedScoring,
    revocations: repair::Revocations,
    fault: Arc<writer::FaultSignal>,
    /// Keys written while a backup runs.
    tracker: Arc<backup::Tracker>,
    /// The watchers of new alerts.
    hub: alerts::AlertHub,
    /// True while the writer loads the pending dry runs' views (after the open, before
    /// its first job).
    loading: Arc<tokio::sync::watch::Sender<bool>>,
    /// USCCs answered by the match RPCs and not yet written: (month, streamed) → count.
    matches: std::sync::Mutex<std::collections::BTreeMap<(u32, bool), u64>>,
    /// Replicated mode: the log writes are appended to, set once (`Store::replicate`).
    log: std::sync::OnceLock<ReplicaLog>,
    /// The last log sequence applied and durable (0: none; single-node stays at 0).
    applied: Arc<tokio::sync::watch::Sender<u64>>,
    /// Replicated mode: the checkpoint this replica appends next (sequence, chain).
    checkpoints: Arc<writer::CheckpointSignal>,
    /// Held by a scoring job from finishing its runs until it has stored their spot
    /// bases and retired old runs: one pass's retirement never deletes a base another
    /// pass is still writing, and a graceful close waits for it.
    pass_tail: std::sync::Mutex<()>,
    /// Draws computing: the writer's idle indexing waits for them.
    foreground: Arc<Foreground>,
    /// Explanations of enterprises unchanged since their live run scored them.
    explanations: explanations::ExplanationCache,
}

impl ReplicaLog {
    /// Who appends the next entry: this replica, this boot, the next nonce.
    fn next_origin(&self) -> Origin {
        Origin {
            node: self.node.clone(),
            boot: self.boot,
            nonce: self.nonce.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// How long a replica keeps the renderer of a write whose append was not acknowledged,
/// in case the log takes it after all (then the reply is rendered and bound as usual).
const ORPHAN_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// The replicated mode's side of the store: where writes are appended, as whom, and the
/// writes this replica appended that wait for the applier to reach them.
struct ReplicaLog {
    sink: Arc<dyn LogSink>,
    /// The runtime appends run on when a job's own thread writes (a run's results).
    handle: tokio::runtime::Handle,
    node: String,
    /// Random per process start: entries of an earlier life of this replica are foreign.
    boot: u64,
    nonce: AtomicU64,
    /// How long a read naming a sequence waits for it.
    read_wait: std::time::Duration,
    waiters: std::sync::Mutex<std::collections::HashMap<u64, Box<dyn writer::Waiting>>>,
}

/// A cheap-to-clone handle on the store.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

impl Store {
    /// Opens (or creates) the store at `dir`, checking the schema version, with the
    /// built-in models registered (the general and the food model; each active if its
    /// family has no active model).
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Store> {
        Store::open_with_model(dir, options, Model::builtin())
    }

    /// Opens the store with `model` as the general model and the built-in food model.
    pub fn open_with_model(dir: &Path, options: StoreOptions, model: Model) -> Result<Store> {
        Store::open_with_models(dir, options, vec![model, Model::builtin_food()])
    }

    /// Opens the store and registers `models` (the configured ones, one per family): each
    /// becomes active only if its family has no active model yet; otherwise it waits,
    /// registered, for a dry run and an explicit activation. A different model under an
    /// existing version is refused.
    ///
    /// A damaged store never panics the caller: sled's panics while reading its files are
    /// caught and answered [`Error::Corrupt`] naming the directory and what to do.
    pub fn open_with_models(
        dir: &Path,
        options: StoreOptions,
        models: Vec<Model>,
    ) -> Result<Store> {
        guard_panics(dir, "opening it", || {
            Store::open_unguarded(dir, options, models)
        })
    }

    fn open_unguarded(dir: &Path, options: StoreOptions, models: Vec<Model>) -> Result<Store> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Unavailable(format!("{}: {e}", dir.display())))?;
        let db = open_retrying_lock(&sled_config(dir, &options), dir)?;
        // An import staged when the process stopped was never applied: its runs go.
        let staged = dir.join(staging::STAGING_DIR);
        if staged.exists() {
            if let Err(e) = std::fs::remove_dir_all(&staged) {
                tracing::warn!(dir = %staged.display(), error = %e, "could not remove staged imports");
            }
        }
        let meta = db.open_tree("meta")?;
        let registry = db.open_tree("registry")?;
        // Refuse a store that lost acknowledged writes (sled recovered an earlier state,
        // or an empty one), before writing anything to it.
        let (seq, digest) = audit::head(&registry)?;
        seal::verify(dir, seq, &digest)?;
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
                if found == 2 {
                    migrate_2_to_3(&db, &meta, &registry)?;
                }
                if (2..SCHEMA_VERSION).contains(&found) {
                    migrate_derived(&db, &meta, &registry, found)?;
                } else if found != SCHEMA_VERSION {
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
        let (mut state, deferred) = recover_scoring(&registry, &options.rules, options.replicated)?;
        for model in models {
            register_model_at_open(&registry, &mut state, model)?;
        }
        db.flush()?;
        let scoring = Arc::new(RwLock::new(state));
        let revocations: repair::Revocations =
            Arc::new(RwLock::new(repair::load_revocations(&registry)?));
        let fault = Arc::new(tokio::sync::watch::channel(None).0);
        let tracker = Arc::new(backup::Tracker::default());
        options
            .alerts
            .validate()
            .map_err(|e| Error::FailedPrecondition(format!("store.{e}")))?;
        let hub = alerts::AlertHub::new(alerts::head(&registry)?, options.alert_buffer);
        let loading = Arc::new(tokio::sync::watch::channel(!deferred.is_empty()).0);
        let applied = Arc::new(tokio::sync::watch::channel(stored_log_sequence(&registry)?).0);
        let checkpoints = Arc::new(tokio::sync::watch::channel(None).0);
        let foreground = Arc::new(Foreground::default());
        let writer = writer::spawn(writer::Parts {
            dir: dir.to_path_buf(),
            db: db.clone(),
            tree: registry.clone(),
            options: options.clone(),
            counters: counters.clone(),
            scoring: scoring.clone(),
            revocations: revocations.clone(),
            fault: fault.clone(),
            tracker: tracker.clone(),
            hub: hub.clone(),
            deferred,
            loading: loading.clone(),
            applied: applied.clone(),
            checkpoints: checkpoints.clone(),
            foreground: foreground.clone(),
        })?;
        let explained_cache = explanations::ExplanationCache::new(options.explanation_cache_bytes);
        Ok(Store {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                import_budget: Arc::new(tokio::sync::Semaphore::new(
                    options
                        .import_run_records
                        .saturating_mul(2)
                        .min(tokio::sync::Semaphore::MAX_PERMITS),
                )),
                db,
                registry,
                writer,
                options,
                counters,
                scoring,
                revocations,
                fault,
                tracker,
                hub,
                loading,
                matches: Default::default(),
                pass_tail: Default::default(),
                log: std::sync::OnceLock::new(),
                applied,
                checkpoints,
                foreground,
                explanations: explained_cache,
            }),
        })
    }

    /// Notes that a match RPC answered `n` USCCs today (streamed or not); written by
    /// [`Store::write_match_counts`].
    pub fn note_matches(&self, stream: bool, n: u64) {
        let month = Month::of(self.today()).0;
        if let Ok(mut m) = self.shared.matches.lock() {
            *m.entry((month, stream)).or_insert(0) += n;
        }
    }

    /// Writes the match counts noted since the last call (the usage job calls it every
    /// minute and at shutdown); on a failed write they are kept for the next call.
    pub async fn write_match_counts(&self) -> Result<()> {
        let taken = match self.shared.matches.lock() {
            Ok(mut m) => std::mem::take(&mut *m),
            Err(_) => return Err(Error::Unavailable("match meter poisoned".into())),
        };
        if taken.is_empty() {
            return Ok(());
        }
        let counts = taken.iter().map(|(&(m, s), &n)| (m, s, n)).collect();
        let r = self
            .write_as(Actor::system("match-meter"), op::RecordMatches(counts))
            .await;
        if r.is_err() {
            if let Ok(mut m) = self.shared.matches.lock() {
                for (k, n) in taken {
                    *m.entry(k).or_insert(0) += n;
                }
            }
        }
        r
    }

    /// Whether the writer is still loading the pending dry runs' views after the open:
    /// reads are served meanwhile (a read naming such a run from its stored results),
    /// writes are queued until the views are live.
    pub fn loading(&self) -> bool {
        *self.shared.loading.borrow()
    }

    /// Blocks until the pending dry runs' views are live (or their load failed, which
    /// the writer's fault reports).
    pub fn wait_loaded(&self) {
        while self.loading() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.shared.options
    }

    /// The alert at sequence number `seq`, if any.
    pub fn alert(&self, seq: u64) -> Result<Option<crate::domain::alert::Alert>> {
        alerts::get(&self.shared.registry, seq)
    }

    /// Durable alerts after `after` passing `keep`, at most `limit`, and the last
    /// sequence number examined (see [`alerts::page`]).
    pub fn alerts_after(
        &self,
        after: u64,
        limit: usize,
        keep: impl FnMut(&crate::domain::alert::Alert) -> bool,
    ) -> Result<(Vec<crate::domain::alert::Alert>, u64)> {
        let upto = *self.shared.hub.head().borrow();
        alerts::page(&self.shared.registry, after, upto, limit, keep)
    }

    /// Where watchers learn of new alerts once they are durable.
    pub fn alert_hub(&self) -> &alerts::AlertHub {
        &self.shared.hub
    }

    /// A staging area for one import's records, sorted by USCC and spilled to the data
    /// directory every `store.import_run_records` records ([`staging`]).
    pub fn stage_import(&self) -> staging::ImportStaging {
        staging::ImportStaging::new(&self.shared.dir, self.shared.options.import_run_records)
    }

    /// The memory every running import draws on for its staged records: one permit a
    /// record, `2 × store.import_run_records` in all. An import that finds it taken
    /// spills what it holds and waits, so concurrent imports never hold more.
    pub fn import_budget(&self) -> Arc<tokio::sync::Semaphore> {
        self.shared.import_budget.clone()
    }

    /// Today (Asia/Shanghai) by the store's clock: the default as-of date of a request.
    pub fn today(&self) -> Date {
        self.shared.options.clock.today()
    }

    /// Submits a write by the server itself and waits until it is durable.
    pub async fn write<O: Operation>(&self, op: O) -> Result<O::Output> {
        self.write_as(Actor::system("internal"), op).await
    }

    /// Submits a write on behalf of `actor` (recorded in the audit trail) and waits until
    /// it is durable.
    pub async fn write_as<O: Operation>(&self, actor: Actor, op: O) -> Result<O::Output> {
        self.submit(actor, op, None, None).await?.outcome()
    }

    /// Submits a write with its idempotency key and reply renderer and waits until it is
    /// durable: a fresh write is applied and `render` makes the reply stored with the
    /// request id (in the same batch); a retry of a known id gets that reply back and
    /// writes nothing.
    ///
    /// Replicated mode: the write is appended to the log, applied by this replica's
    /// applier in the log's order, and answered once applied here; a fresh reply is
    /// then bound to its request id on every replica by a [`BindReply`] entry before the
    /// caller gets it, and a retry that finds the id applied but its reply not yet bound
    /// waits for it (bounded).
    pub async fn submit<O: Operation>(
        &self,
        actor: Actor,
        op: O,
        request: Option<RequestKey>,
        render: Option<Render<O::Output>>,
    ) -> Result<Answer<O::Output>> {
        let logged = self.shared.log.get().and(request.clone());
        if let Some(k) = &logged {
            // A retry whose reply this replica holds: answered without a log entry.
            if let Some(
                r @ (Remembered::Reply(_) | Remembered::Run(_) | Remembered::Receipt { .. }),
            ) = self.recall(k)?
            {
                return Ok(Answer::Replay(r));
            }
        }
        let ticket = self.enqueue_as(actor, op, request, render).await?;
        let answer = match self.shared.log.get() {
            None => ticket.await?,
            // In the log: answered once applied here, which a stalled applier delays.
            Some(l) => {
                let wait = l.read_wait.max(std::time::Duration::from_secs(1));
                tokio::time::timeout(wait, ticket).await.map_err(|_| {
                    Error::Unavailable(format!(
                        "the write is in the log but not yet applied on this replica (waited {} ms); \
                         retry with the same request_id",
                        wait.as_millis()
                    ))
                })??
            }
        };
        let Some(key) = logged else {
            return Ok(answer);
        };
        let Answer::Replay(Remembered::Applied(seq)) = answer else {
            return Ok(answer);
        };
        // Applied, its reply not bound yet: it normally follows within milliseconds.
        let until = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match self.recall(&key)? {
                Some(Remembered::Applied(_)) | None if tokio::time::Instant::now() < until => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await
                }
                Some(Remembered::Applied(_)) | None => {
                    return Err(Error::FailedPrecondition(format!(
                        "request_id: this request was applied at log sequence {seq}, but its reply \
                         was not recorded (the replica that took it stopped first): the change is \
                         in the store; read it instead of retrying"
                    )))
                }
                Some(r) => return Ok(Answer::Replay(r)),
            }
        }
    }

    /// Queues a write and returns at once with a ticket to await its answer. Writes are
    /// applied in the order they are queued.
    pub async fn enqueue_as<O: Operation>(
        &self,
        actor: Actor,
        op: O,
        request: Option<RequestKey>,
        render: Option<Render<O::Output>>,
    ) -> Result<Ticket<O::Output>> {
        let submitted = Submitted {
            op,
            at: Stamp::at(&self.shared.options.clock),
            actor,
            request,
        };
        let Some(log) = self.shared.log.get() else {
            return self.shared.writer.enqueue(submitted, render).await;
        };
        let key = submitted.request.clone();
        let entry = match O::into_entry(submitted)? {
            Ok(entry) => entry,
            // Applied only here (a backup's steps).
            Err(local) => return self.shared.writer.enqueue(local, render).await,
        };
        let origin = log.next_origin();
        let payload = Envelope {
            origin: origin.clone(),
            entry,
        }
        .encode()?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        let waiter: Box<dyn writer::Waiting> = Box::new(writer::Waiter::<O> { render, reply });
        log.waiters
            .lock()
            .map_err(|_| Error::Unavailable("replica waiters poisoned".into()))?
            .insert(origin.nonce, waiter);
        let appended = log.sink.append(origin.msg_id(), payload).await;
        let Some(key) = key else {
            // Nothing to bind: an append that failed but lands later is applied as any
            // other replica's entry.
            if appended.is_err() {
                if let Ok(mut w) = log.waiters.lock() {
                    w.remove(&origin.nonce);
                }
            }
            return appended.map(|_| Ticket::new(rx));
        };
        // A request id: its reply is rendered here when the entry is applied and bound on
        // every replica by a `BindReply` entry before the caller gets it — also when the
        // append timed out but the log took the entry after all (the caller has gone; its
        // retry then finds the reply).
        let (to_caller, answer) = tokio::sync::oneshot::channel();
        let store = self.clone();
        let nonce = origin.nonce;
        tokio::spawn(async move {
            let answer = match tokio::time::timeout(ORPHAN_WAIT, rx).await {
                Ok(Ok(a)) => a,
                Ok(Err(_)) => Err(Error::Unavailable("store writer stopped".into())),
                Err(_) => {
                    if let Some(l) = store.shared.log.get() {
                        if let Ok(mut w) = l.waiters.lock() {
                            w.remove(&nonce);
                        }
                    }
                    Err(Error::Unavailable("the log never took the write".into()))
                }
            };
            if let Ok(Answer::Fresh {
                reply: Some(bytes), ..
            }) = &answer
            {
                let bind = BindReply {
                    rpc: key.rpc.clone(),
                    id: key.id.clone(),
                    fingerprint: key.fingerprint,
                    reply: bytes.clone(),
                };
                // Durable in the log before the caller is answered; applied here and
                // elsewhere in the log's order.
                if let Err(e) = store.append_bind(bind).await {
                    tracing::warn!(rpc = %key.rpc, id = %key.id, error = %e, "the reply of a request could not be bound in the log");
                }
            }
            let _ = to_caller.send(answer);
        });
        appended.map(|_| Ticket::new(answer))
    }

    /// Appends a `BindReply` entry (nobody waits for its application).
    async fn append_bind(&self, bind: BindReply) -> Result<()> {
        self.append_system(bind, "BindReply").await
    }

    /// Appends an entry of this replica's own (no caller waits for it).
    async fn append_system<O: Operation>(&self, op: O, name: &str) -> Result<()> {
        let log = self
            .shared
            .log
            .get()
            .ok_or_else(|| Error::FailedPrecondition("not replicated".into()))?;
        let submitted = Submitted {
            op,
            at: Stamp::at(&self.shared.options.clock),
            actor: Actor::system(name),
            request: None,
        };
        let entry = O::into_entry(submitted)?
            .map_err(|_| Error::FailedPrecondition(format!("{name} is not logged")))?;
        let origin = log.next_origin();
        let payload = Envelope {
            origin: origin.clone(),
            entry,
        }
        .encode()?;
        log.sink.append(origin.msg_id(), payload).await.map(drop)
    }

    /// Replicated mode: the checkpoints this replica's writer asks to append (the
    /// sequence and its chain before it), newest only.
    pub fn checkpoints(&self) -> tokio::sync::watch::Receiver<Option<(u64, u64, [u8; 32])>> {
        self.shared.checkpoints.subscribe()
    }

    /// Replicated mode: appends this replica's checkpoint (see `writer::log::Checkpoint`).
    pub async fn append_checkpoint(&self, at: u64, since: u64, chain: [u8; 32]) -> Result<()> {
        let node = self.shared.options.replica_node.clone();
        let cp = Checkpoint {
            node,
            at,
            since,
            chain,
        };
        self.append_system(cp, "Checkpoint").await
    }

    /// Replicated mode: why this replica stopped as diverged from its peers, if it did
    /// (it then refuses to start replicated until rebuilt from a peer's backup).
    pub fn diverged(&self) -> Result<Option<String>> {
        Ok(self
            .shared
            .registry
            .get(keys::counter(writer::DIVERGED))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Replicated mode: writes are appended to `sink` as replica `node`, and applied
    /// only when the applier hands them back in the log's order ([`Store::apply_logged`]).
    /// Set once, before serving; FAILED_PRECONDITION if already set.
    pub fn replicate(
        &self,
        sink: Arc<dyn LogSink>,
        node: &str,
        read_wait: std::time::Duration,
    ) -> Result<()> {
        let log = ReplicaLog {
            sink,
            handle: tokio::runtime::Handle::try_current().map_err(|_| {
                Error::FailedPrecondition("replicate() is called within the runtime".into())
            })?,
            node: node.to_string(),
            read_wait,
            boot: rand::random(),
            nonce: AtomicU64::new(0),
            waiters: Default::default(),
        };
        self.shared
            .log
            .set(log)
            .map_err(|_| Error::FailedPrecondition("the store already replicates".into()))
    }

    /// How long a read naming a log sequence waits for this replica to apply it.
    pub fn read_wait(&self) -> std::time::Duration {
        self.shared
            .log
            .get()
            .map(|l| l.read_wait)
            .unwrap_or_default()
    }

    /// Whether writes go through a replicated log.
    pub fn is_replicated(&self) -> bool {
        self.shared.log.get().is_some()
    }

    /// Queues the log's entry at `seq` (the applier calls it in the log's order): this
    /// replica's own entry with its caller's renderer and reply channel, another's
    /// without. CORRUPT if the entry does not decode (the applier stops: a replica never
    /// skips an entry).
    pub async fn apply_logged(&self, seq: u64, payload: &[u8]) -> Result<()> {
        let env = Envelope::decode(payload)
            .map_err(|e| Error::Corrupt(format!("log sequence {seq}: {e}")))?;
        let mine = self
            .shared
            .log
            .get()
            .filter(|l| l.node == env.origin.node && l.boot == env.origin.boot)
            .and_then(|l| l.waiters.lock().ok()?.remove(&env.origin.nonce));
        let job = match mine {
            Some(w) => w.into_job(env.entry, seq)?,
            None => env.entry.into_foreign_job(seq),
        };
        self.shared.writer.enqueue_queued(job).await
    }

    /// Replicated mode: log entry `seq` is a part of a larger entry (applied whole at
    /// its last part's sequence, [`Store::apply_logged`]): the writer passes it, in the
    /// log's order. The same on every replica (no clock is read).
    pub async fn pass_logged(&self, seq: u64) -> Result<()> {
        let part = Submitted {
            op: LogPart,
            at: Stamp {
                today: crate::domain::Date::MIN,
                now_ms: 0,
            },
            actor: Actor::system("replication"),
            request: None,
        };
        let job = Entry::LogPart(part).into_foreign_job(seq);
        self.shared.writer.enqueue_queued(job).await
    }

    /// The last log sequence applied and durable on this replica (0 in single-node).
    pub fn applied_sequence(&self) -> u64 {
        *self.shared.applied.borrow()
    }

    /// Waits until this replica has applied log sequence `seq`, at most `timeout`; the
    /// sequence applied when it returns (below `seq` if the wait timed out).
    pub async fn wait_applied(&self, seq: u64, timeout: std::time::Duration) -> u64 {
        let mut rx = self.shared.applied.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|a| *a >= seq)).await;
        let now = *rx.borrow();
        now
    }

    /// Applies an operation submitted elsewhere (a log, a replica's leader) at its own
    /// stamp, and waits until it is durable. Applying the same submitted operations in
    /// the same order to the same state gives the same store ([`Store::content_digest`]).
    /// No reply is stored with its request id (`request` is ignored).
    pub async fn apply<O: Operation>(&self, submitted: Submitted<O>) -> Result<O::Output> {
        let submitted = Submitted {
            request: None,
            ..submitted
        };
        self.shared
            .writer
            .enqueue(submitted, None)
            .await?
            .await?
            .outcome()
    }

    /// Reads every key and value of every tree, in order (sled checks each page it reads
    /// against its checksum): (keys, bytes, SHA-256 hex over them). Two stores with the
    /// same digest hold the same data (replicas, a replayed log, a restored backup),
    /// whatever their files look like.
    pub fn content_digest(&self) -> Result<(u64, u64, String)> {
        content_digest_of(&self.shared.db, |_, _, _| Ok(()))
    }

    /// The fault signal: becomes `Some(reason)` when the writer or a job failed. The
    /// server then reports NOT_SERVING and exits non-zero (a supervisor restarts it).
    pub fn fault(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.shared.fault.subscribe()
    }

    /// Reports a fault outside the writer (a job's panic).
    pub fn report_fault(&self, reason: String) {
        tracing::error!(error = %reason, "fault: the store stops serving");
        self.shared.fault.send_replace(Some(reason));
    }

    /// Audit events matching `f`, in sequence order.
    pub fn audit_events(&self, f: &audit::AuditFilter) -> Result<Vec<audit::AuditEvent>> {
        audit::list(&self.shared.registry, f)
    }

    /// The first audit sequence number hashed in chain format 2.
    pub fn audit_v2_from(&self) -> Result<u64> {
        audit::v2_from(&self.shared.registry)
    }

    /// Verifies the audit chain: (events checked, first broken link).
    pub fn verify_audit_chain(&self) -> Result<(u64, Option<(u64, String)>)> {
        audit::verify(&self.shared.registry)
    }

    /// The stored outcome of an earlier request with this id and fingerprint, if any;
    /// INVALID_ARGUMENT if the id was used for a different request.
    pub fn recall(&self, request: &RequestKey) -> Result<Option<Remembered>> {
        writer::recall(&self.shared.registry, request)
    }

    /// Reads one enterprise's profile.
    pub fn enterprise(&self, u: &Uscc) -> Result<Option<Enterprise>> {
        Ok(self.enterprise_records(u)?.and_then(|d| d.enterprise))
    }

    /// Reads everything about one enterprise (one point read); `None` if it is not
    /// registered.
    pub fn enterprise_records(&self, u: &Uscc) -> Result<Option<EnterpriseRecords>> {
        let mut d = writer::read_dossier(&self.shared.registry, &self.shared.options.rules, u)?
            .filter(|d| d.enterprise.is_some());
        if let Some(d) = d.as_mut() {
            repair::attach(&self.shared.revocations, u, d)?;
        }
        Ok(d)
    }

    /// The explanation cache's entries, bytes, hits and misses ([`explanations`]).
    pub fn explanation_cache_stats(&self) -> explanations::CacheStats {
        self.shared.explanations.stats()
    }

    /// Number of registered enterprises.
    pub fn enterprise_count(&self) -> u64 {
        self.shared.counters.enterprises.load(Ordering::Acquire)
    }

    /// Notes the progress of the batch run being computed (read by the metrics).
    pub fn note_batch_progress(&self, processed: u64, total: u64) {
        let c = &self.shared.counters;
        c.batch_processed.store(processed, Ordering::Relaxed);
        c.batch_total.store(total, Ordering::Relaxed);
    }

    /// `(processed, total)` of the batch run being computed, as last noted.
    pub fn batch_progress(&self) -> (u64, u64) {
        let c = &self.shared.counters;
        (
            c.batch_processed.load(Ordering::Relaxed),
            c.batch_total.load(Ordering::Relaxed),
        )
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

    /// The active general model (new runs use it unless told otherwise).
    pub fn active_model(&self) -> Result<Option<Arc<Model>>> {
        self.active_model_of(crate::domain::model::GENERAL)
    }

    /// The active model of a family.
    pub fn active_model_of(&self, family: &str) -> Result<Option<Arc<Model>>> {
        Ok(scoring::read(&self.shared.scoring)?
            .family(family)
            .active_model
            .clone())
    }

    /// The model families with an active model, general first.
    pub fn active_models(&self) -> Result<Vec<Arc<Model>>> {
        let st = scoring::read(&self.shared.scoring)?;
        let mut out: Vec<Arc<Model>> = st
            .families
            .values()
            .filter_map(|f| f.active_model.clone())
            .collect();
        out.sort_by_key(|m| (!m.is_general(), m.family.clone()));
        Ok(out)
    }

    /// A registered model.
    pub fn model(&self, version: &str) -> Result<Option<Arc<Model>>> {
        Ok(scoring::read(&self.shared.scoring)?
            .models
            .get(version)
            .cloned())
    }

    /// The general family's current run, loaded.
    pub fn current_run(&self) -> Result<Option<Arc<RunView>>> {
        self.current_run_of(crate::domain::model::GENERAL)
    }

    /// A family's current run, loaded.
    pub fn current_run_of(&self, family: &str) -> Result<Option<Arc<RunView>>> {
        Ok(scoring::read(&self.shared.scoring)?
            .family(family)
            .current
            .clone())
    }

    /// The families of the registered models.
    pub fn families(&self) -> Result<std::collections::BTreeSet<String>> {
        Ok(scoring::read(&self.shared.scoring)?
            .models
            .values()
            .map(|m| m.family.clone())
            .collect())
    }

    /// The ids of every family's current run.
    pub fn current_run_ids(&self) -> Result<Vec<u64>> {
        let st = scoring::read(&self.shared.scoring)?;
        Ok(st
            .families
            .values()
            .filter_map(|f| f.current.as_ref().map(|v| v.run.id))
            .collect())
    }

    /// The family of a registered model version ("general" for an unknown one: runs
    /// made before families existed).
    pub fn family_of(&self, version: &str) -> String {
        scoring::read(&self.shared.scoring)
            .ok()
            .and_then(|st| st.models.get(version).map(|m| m.family.clone()))
            .unwrap_or_else(|| crate::domain::model::GENERAL.to_string())
    }

    /// The current runs of the specialised families (not the general one), by family.
    pub fn specialised_runs(&self) -> Result<Vec<Arc<RunView>>> {
        let st = scoring::read(&self.shared.scoring)?;
        Ok(st
            .families
            .iter()
            .filter(|(n, _)| n.as_str() != crate::domain::model::GENERAL)
            .filter_map(|(_, f)| f.current.clone())
            .collect())
    }

    /// The class of `u` under every specialised family whose current run rates it
    /// (a re-score after a write takes precedence), by family.
    pub fn specialised_classes(&self, u: &Uscc) -> Result<Vec<InRun>> {
        self.specialised_classes_in(&self.specialised_runs()?, u)
    }

    /// [`Store::specialised_classes`] in runs taken once ([`Store::specialised_runs`]),
    /// for a caller answering many enterprises from the same runs.
    pub fn specialised_classes_in(&self, runs: &[Arc<RunView>], u: &Uscc) -> Result<Vec<InRun>> {
        let mut out = Vec::new();
        for v in runs {
            out.extend(self.class_in_view(v, u)?);
        }
        Ok(out)
    }

    /// The class of `u` in a loaded run (its re-score if it has one); `None` if the run
    /// does not classify it (or no longer: it left the model's scope).
    pub fn class_in_view(&self, v: &RunView, u: &Uscc) -> Result<Option<InRun>> {
        self.class_in(u, v.run.id, v.run.as_of, v.model.clone(), Some(v), None)
    }

    /// The registered enterprises whose legal representative has id hash `rep`, USCC
    /// order (the `G` index, kept with the dossiers).
    pub fn enterprises_of_legal_rep(&self, rep: &[u8; 32]) -> Result<Vec<Uscc>> {
        stats::enterprises_of_legal_rep(&self.shared.registry, rep)
    }

    /// Unverified commitments due on or before `by` in regions `keep` passes, by due day
    /// (the `H` index): (USCC, commitment id), at most `limit`, and whether more were left.
    pub fn due_commitments(
        &self,
        by: Date,
        keep: impl Fn(&crate::domain::RegionCode) -> bool,
        limit: usize,
    ) -> Result<(Vec<(Uscc, String)>, bool)> {
        stats::due_commitments(&self.shared.registry, by, keep, limit)
    }

    /// Id of the run being computed, if any (the first of a pass that computes several).
    pub fn building_run(&self) -> Result<Option<u64>> {
        Ok(scoring::read(&self.shared.scoring)?
            .building
            .first()
            .map(|b| b.id))
    }

    /// Ids of every run being computed.
    pub fn building_runs(&self) -> Result<Vec<u64>> {
        Ok(scoring::read(&self.shared.scoring)?
            .building
            .iter()
            .map(|b| b.id)
            .collect())
    }

    /// Every retained run, newest first.
    pub fn runs(&self) -> Result<Vec<ScoringRun>> {
        scoring::list_runs(&self.shared.registry)
    }

    /// One run.
    pub fn run(&self, id: u64) -> Result<Option<ScoringRun>> {
        scoring::load_run(&self.shared.registry, id)
    }

    /// The class of `u` in the current run (or run `run`): a re-score after a write
    /// takes precedence over the run's entry. FAILED_PRECONDITION without a run;
    /// NOT_FOUND for an unknown run or an enterprise the run did not classify.
    pub fn class_in_run(&self, u: &Uscc, run: Option<u64>) -> Result<InRun> {
        let (run_id, as_of, model, view) = self.resolve_run(run)?;
        self.class_in(u, run_id, as_of, model, view.as_deref(), None)?
            .ok_or_else(|| self.not_classified(u, run_id))
    }

    /// The general current run, or run `run` (live, or a retained complete one).
    fn resolve_run(&self, run: Option<u64>) -> Result<ResolvedRun> {
        let tree = &self.shared.registry;
        let st = scoring::read(&self.shared.scoring)?;
        let live = match run {
            None => st.general().current.clone(),
            Some(id) => st.live().find(|v| v.run.id == id).cloned(),
        };
        match (run, live) {
            (_, Some(v)) => Ok((v.run.id, v.run.as_of, v.model.clone(), Some(v))),
            (None, None) => Err(Error::FailedPrecondition(
                "no scoring run yet: run RunBatchScoring (or `credit-risk score`) first".into(),
            )),
            (Some(id), None) => {
                let r = match scoring::load_run(tree, id)? {
                    Some(r) if r.state == RunState::Complete => r,
                    Some(r) if r.state == RunState::Retired => {
                        // (Read with the " not found" the status appends.)
                        return Err(Error::NotFound(format!(
                            "run_id: scoring run {id} was retired (store.keep_runs): its results \
                             are"
                        )));
                    }
                    _ => {
                        return Err(Error::NotFound(format!(
                            "run_id: complete scoring run {id}"
                        )))
                    }
                };
                let m = st.models.get(&r.model_version).cloned().ok_or_else(|| {
                    Error::Corrupt(format!("run {id} names unknown model {}", r.model_version))
                })?;
                Ok((id, r.as_of, m, None))
            }
        }
    }

    /// The run of each family that was current at the end of `day` (24:00 Asia/Shanghai):
    /// the one activated last by then (runs are activated once each, in order), general
    /// first. A family without a run by then is absent; a run whose results were retired
    /// since is included (its state says so).
    pub fn runs_current_on(&self, day: Date) -> Result<Vec<ScoringRun>> {
        let end = day.end_ms();
        let mut by_family: std::collections::BTreeMap<String, ScoringRun> =
            std::collections::BTreeMap::new();
        for r in self.runs()? {
            let Some(at) = r.activated_at_ms.filter(|&at| at < end) else {
                continue;
            };
            if !matches!(r.state, RunState::Complete | RunState::Retired) {
                continue;
            }
            let family = self.family_of(&r.model_version);
            match by_family.get(&family) {
                Some(best) if best.activated_at_ms >= Some(at) => {}
                _ => {
                    by_family.insert(family, r);
                }
            }
        }
        let general = by_family.remove(crate::domain::model::GENERAL);
        Ok(general.into_iter().chain(by_family.into_values()).collect())
    }

    /// The general run current at the end of `day`, and that instant: FAILED_PRECONDITION
    /// naming `field` when no general run was current then, or when that run's results
    /// have been retired (`store.keep_runs`).
    pub fn general_run_on(&self, field: &str, day: Date) -> Result<(u64, i64)> {
        let run = self
            .runs_current_on(day)?
            .into_iter()
            .find(|r| self.family_of(&r.model_version) == crate::domain::model::GENERAL)
            .ok_or_else(|| {
                Error::FailedPrecondition(format!("{field}: no scoring run was current on {day}"))
            })?;
        if run.state == RunState::Retired {
            return Err(Error::FailedPrecondition(format!(
                "{field}: run {} was current on {day}, but its results have been retired \
                 (store.keep_runs)",
                run.id
            )));
        }
        Ok((run.id, day.end_ms()))
    }

    /// The class of `u` as run `run_id` gave it at instant `until_ms`: its re-score if
    /// made before then, else the run's own class (only an enterprise's latest re-score
    /// on a run is kept, so one made later hides any earlier one).
    pub fn class_in_run_until(&self, u: &Uscc, run_id: u64, until_ms: i64) -> Result<InRun> {
        let (run_id, as_of, model, view) = self.resolve_run(Some(run_id))?;
        self.class_in(u, run_id, as_of, model, view.as_deref(), Some(until_ms))?
            .ok_or_else(|| self.not_classified(u, run_id))
    }

    /// The class of `u` in run `run_id` (as of `run_as_of`, scored by `model`), read from
    /// `view` when the run is loaded, else from its stored blocks: its re-score if it
    /// has one; `None` if the run does not classify it (or no longer).
    fn class_in(
        &self,
        u: &Uscc,
        run_id: u64,
        run_as_of: Date,
        model: Arc<Model>,
        view: Option<&RunView>,
        until_ms: Option<i64>,
    ) -> Result<Option<InRun>> {
        let tree = &self.shared.registry;
        // A live run knows which enterprises may have been re-scored since it was
        // computed; for the others the override read is skipped.
        let may_have_override = view.is_none_or(|v| v.rescored.may_have(u));
        let rescored: Option<Override> = if may_have_override {
            tree.get(scoring::override_key(run_id, u))?
                .map(|v| codec::decode(&v))
                .transpose()?
        } else {
            None
        };
        // No re-score at all (before `until_ms` or after): the dossier is the one the
        // run scored (dossiers are never deleted; every write re-scores onto each live
        // run).
        let unchanged = rescored.is_none();
        let rescored = rescored.filter(|o: &Override| until_ms.is_none_or(|until| o.at_ms < until));
        if rescored
            .as_ref()
            .is_some_and(|o| o.flags & scoring::FLAG_UNRATED != 0)
        {
            // Left the scope of the run's (specialised) model after the run.
            return Ok(None);
        }
        let entry = match (&rescored, view) {
            (Some(_), _) => None,
            (None, Some(v)) => v.lookup(u),
            (None, None) => scoring::lookup_entry(tree, run_id, u)?,
        };
        let (class, score, flags, as_of) = match (&rescored, entry) {
            (Some(o), _) => (o.class, o.score, o.flags, o.as_of),
            (None, Some(e)) => (e.class, e.score.into(), e.flags, run_as_of),
            (None, None) => return Ok(None),
        };
        let as_scored = unchanged && view.is_some();
        let explained_empty = as_scored
            && entry.is_some_and(|e| e.flags & scoring::FLAG_NO_FACTORS != 0)
            && view.is_some_and(|v| v.empty_explanations);
        Ok(Some(InRun {
            run_id,
            model,
            run_as_of,
            as_of,
            class,
            score,
            flags,
            rescored,
            explained_empty,
            as_scored,
        }))
    }

    /// Classifies one enterprise in run `run` (default: the current run), with the
    /// explanation of its score.
    pub fn classify(&self, u: &Uscc, run: Option<u64>) -> Result<Classified> {
        let c = self.class_in_run(u, run)?;
        self.explained(u, c)
    }

    /// Classifies one enterprise as the general run current at the end of `day` gave it
    /// then ([`Store::general_run_on`], [`Store::class_in_run_until`]); today or later:
    /// the current run. Errors name `field`.
    pub fn classify_on(&self, u: &Uscc, field: &str, day: Date) -> Result<Classified> {
        let c = self.class_on(u, field, day)?;
        self.explained(u, c)
    }

    /// [`Store::classify_on`] without the explanation: the class and score only (no
    /// dossier read).
    pub fn class_on(&self, u: &Uscc, field: &str, day: Date) -> Result<InRun> {
        if day >= self.today() {
            return self.class_in_run(u, None);
        }
        let (run, until) = self.general_run_on(field, day)?;
        self.class_in_run_until(u, run, until)
    }

    /// The complete runs of the specialised families that were current at the end of
    /// `day` ([`Store::runs_current_on`]; a family whose run of then was retired is left
    /// out).
    pub fn specialised_runs_on(&self, day: Date) -> Result<Vec<u64>> {
        Ok(self
            .runs_current_on(day)?
            .into_iter()
            .filter(|r| {
                r.state == RunState::Complete
                    && self.family_of(&r.model_version) != crate::domain::model::GENERAL
            })
            .map(|r| r.id)
            .collect())
    }

    /// The class of `u` in each of `runs` at the end of `day`
    /// ([`Store::class_in_run_until`]), leaving out the runs that did not rate it.
    pub fn classes_in_runs_on(&self, u: &Uscc, runs: &[u64], day: Date) -> Result<Vec<InRun>> {
        let mut out = Vec::new();
        for &run in runs {
            match self.class_in_run_until(u, run, day.end_ms()) {
                Ok(c) => out.push(c),
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn explained(&self, u: &Uscc, c: InRun) -> Result<Classified> {
        let InRun {
            run_id,
            model,
            run_as_of: _,
            as_of,
            class,
            score,
            flags,
            rescored,
            explained_empty,
            as_scored,
        } = c;
        let rules_version = self.shared.options.rules.in_force(as_of).version.clone();
        // The run found nothing that counts in a dossier unchanged since, under these
        // rules: recomputing would give no factor, no hard rule and the same score
        // (BENCHMARKS.md, "Empty explanations from the run"). Else, unchanged since a
        // live run scored it: the explanation kept for the run, if any
        // (src/store/explanations.rs). Else the dossier, read (and kept, if unchanged).
        let cached = if explained_empty {
            Some(explanations::Explanation::empty())
        } else if as_scored {
            self.shared.explanations.get(run_id, u)
        } else {
            None
        };
        let e = match cached {
            Some(e) => e,
            None => {
                let records = self
                    .enterprise_records(u)?
                    .ok_or_else(|| Error::NotFound(format!("uscc: enterprise {u}")))?;
                let inputs = crate::domain::scoring::Inputs {
                    related: flags & scoring::FLAG_RELATED != 0,
                    general: scoring::general_input(flags),
                };
                let (a, factors) = crate::domain::scoring::explain(
                    &records,
                    inputs,
                    &model,
                    &self.shared.options.rules,
                    as_of,
                );
                let e = explanations::Explanation {
                    hard_rule: a.hard_rule.filter(|_| flags & scoring::FLAG_HARD_RULE != 0),
                    factors_reproduce_score: a.score == score && a.class == class,
                    factors: factors.into(),
                };
                if as_scored {
                    self.shared.explanations.insert(run_id, *u, e.clone());
                }
                e
            }
        };
        let explanations::Explanation {
            hard_rule,
            factors_reproduce_score,
            factors,
        } = e;
        Ok(Classified {
            uscc: *u,
            run_id,
            model,
            as_of,
            class,
            score,
            hard_rule,
            factors_reproduce_score,
            factors,
            rescored: rescored.filter(|o| !o.cause.is_empty()),
            rules_version,
        })
    }

    /// The filing counters up to report year `last_year` (see [`stats::filing`]).
    pub fn filing_counters(&self, last_year: u16) -> Result<Vec<(Counter, u64)>> {
        stats::filing(&self.shared.registry, last_year)
    }

    /// The spot-check counters of the months `from..=to` (see [`stats::spot_checks`]).
    pub fn spot_check_counters(&self, from: Month, to: Month) -> Result<Vec<(Counter, u64)>> {
        stats::spot_checks(&self.shared.registry, from, to)
    }

    /// How run `id` predicted the spot-check results dated `from..=to` whose region
    /// passes `keep`: the run's own classes and scores (not later re-scores), and the
    /// number of results of enterprises it did not score. FAILED_PRECONDITION for a run
    /// that is not complete or whose results were deleted.
    pub fn model_performance(
        &self,
        run: &ScoringRun,
        from: Date,
        to: Date,
        keep: impl Fn(&crate::domain::RegionCode) -> bool,
    ) -> Result<(Performance, u64)> {
        if run.state != scoring::RunState::Complete {
            return Err(Error::FailedPrecondition(format!(
                "run {} is {:?}: only a complete run's results can be evaluated",
                run.id, run.state
            )));
        }
        let tree = &self.shared.registry;
        let results: Vec<_> = stats::inspections_between(tree, from, to)?
            .into_iter()
            .filter(|i| keep(&i.region))
            .collect();
        let view = {
            let st = scoring::read(&self.shared.scoring)?;
            let found = st.live().find(|v| v.run.id == run.id).cloned();
            found
        };
        // A run in memory answers each lookup; another is read whole when that is
        // cheaper than a block read per result.
        let loaded = match &view {
            Some(_) => None,
            None if results.len() as u64 > run.enterprises / 64 => {
                Some(scoring::Entries::new(scoring::load_entries(tree, run.id)?))
            }
            None => None,
        };
        let find = |u: &Uscc| -> Result<Option<RunEntry>> {
            Ok(match (&view, &loaded) {
                (Some(v), _) => v.entries.find(u),
                (None, Some(all)) => all.find(u),
                (None, None) => scoring::lookup_entry(tree, run.id, u)?,
            })
        };
        let mut outcomes = Vec::with_capacity(results.len());
        let mut missing = 0u64;
        for i in &results {
            match find(&i.uscc)? {
                Some(e) => outcomes.push(Outcome {
                    class: e.class,
                    score: i64::from(e.score),
                    problem: i.problem,
                }),
                None => missing += 1,
            }
        }
        // A run retired while it was read lost its results part-way: refuse, as if it
        // had been retired before.
        match scoring::load_run(tree, run.id)? {
            Some(r) if r.state == scoring::RunState::Complete => {}
            _ => {
                return Err(Error::FailedPrecondition(format!(
                    "run {} was retired while it was evaluated",
                    run.id
                )))
            }
        }
        Ok((Performance::of(&outcomes), missing))
    }

    /// The current run, or FAILED_PRECONDITION.
    pub fn require_current_run(&self) -> Result<Arc<RunView>> {
        self.current_run()?.ok_or_else(|| {
            Error::FailedPrecondition(
                "no scoring run yet: run RunBatchScoring (or `credit-risk score`) first".into(),
            )
        })
    }

    /// Candidates of the current run passing `f` at `as_of`, in USCC order, with the run.
    pub fn spot_candidates(
        &self,
        f: &spot::CandidateFilter,
        as_of: Date,
    ) -> Result<(Arc<RunView>, Vec<spot::Candidate>)> {
        let view = self.require_current_run()?;
        let out = view.spot_view().candidates(
            f,
            &self.shared.options.rules.in_force(as_of).exemptions,
            as_of,
        )?;
        Ok((view, out))
    }

    /// The USCCs of the candidates passing `f` at `as_of` in the current run of
    /// `family` (its classes, its scope) split by class, each in USCC order, with the
    /// run (what a draw plan freezes).
    pub fn spot_candidate_usccs(
        &self,
        family: &str,
        f: &spot::CandidateFilter,
        as_of: Date,
        items: &[crate::domain::checkitem::CheckItem],
    ) -> Result<(Arc<RunView>, spot::ByClass)> {
        let view = self.current_run_of(family)?.ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "model_family: {family:?} has no current run (RunBatchScoring with family {family:?} first)"
            ))
        })?;
        let out = view.spot_view().candidate_usccs_by_class(
            f,
            &self.shared.options.rules.in_force(as_of).exemptions,
            as_of,
            items,
        )?;
        Ok((view, out))
    }

    /// One inspector of the directory.
    pub fn inspector(&self, id: &str) -> Result<Option<crate::domain::spotcheck::Inspector>> {
        draws::load_inspector(
            &self.shared.registry,
            id,
            &self.shared.options.check_items.default_department,
        )
    }

    /// The inspector directory, by id.
    pub fn inspectors(&self) -> Result<Vec<crate::domain::spotcheck::Inspector>> {
        draws::list_inspectors(
            &self.shared.registry,
            &self.shared.options.check_items.default_department,
        )
    }

    /// A repair case.
    pub fn repair_case(&self, id: u64) -> Result<Option<crate::domain::repair::RepairCase>> {
        repair::load_case(&self.shared.registry, id)
    }

    /// Repair cases of one enterprise, or all of them, by id.
    pub fn repair_cases(&self, u: Option<&Uscc>) -> Result<Vec<crate::domain::repair::RepairCase>> {
        match u {
            Some(u) => repair::cases_of(&self.shared.registry, u),
            None => repair::all_cases(&self.shared.registry),
        }
    }

    /// An objection.
    pub fn objection(&self, id: u64) -> Result<Option<crate::domain::repair::Objection>> {
        repair::load_objection(&self.shared.registry, id)
    }

    /// Objections of one enterprise, or all of them, by id.
    pub fn objections(&self, u: Option<&Uscc>) -> Result<Vec<crate::domain::repair::Objection>> {
        repair::objections(&self.shared.registry, u)
    }

    /// A stored draw plan.
    pub fn draw_plan(&self, id: u64) -> Result<Option<draws::DrawPlan>> {
        draws::load_plan(&self.shared.registry, id)
    }

    /// Stored plans with an id below `before` (0: every plan), newest first, that pass
    /// `keep`, at most `limit`; and the id to go on before when more may follow (0: none).
    pub fn plans_before(
        &self,
        before: u64,
        limit: usize,
        mut keep: impl FnMut(&draws::DrawPlan) -> bool,
    ) -> Result<(Vec<draws::DrawPlan>, u64)> {
        let tree = &self.shared.registry;
        let next = scoring::get_counter(tree, "next_plan")?.unwrap_or(1);
        let top = if before == 0 { next } else { before.min(next) };
        let mut out = Vec::new();
        let mut id = top;
        while id > 1 {
            id -= 1;
            if let Some(p) = draws::load_plan(tree, id)? {
                if keep(&p) {
                    out.push(p);
                    if out.len() == limit {
                        return Ok((out, if id > 1 { id } else { 0 }));
                    }
                }
            }
        }
        Ok((out, 0))
    }

    /// A plan's federated joint draw, if it is committed to one.
    pub fn joint_draw(&self, id: u64) -> Result<Option<draws::JointState>> {
        draws::load_joint(&self.shared.registry, id)
    }

    /// The frozen population of a plan's stratum.
    pub fn draw_population(&self, id: u64, stratum: u8) -> Result<Vec<Uscc>> {
        draws::load_population(&self.shared.registry, id, stratum)
    }

    /// The item masks of a plan's stratum (parallel to its population; empty for a plan
    /// without check items).
    pub fn draw_masks(&self, plan: &draws::DrawPlan, stratum: u8) -> Result<Vec<u64>> {
        draws::load_masks(&self.shared.registry, plan.id, stratum, plan.mask_width())
    }

    /// Whom the exemptions removed from a plan's stratum, in USCC order.
    pub fn draw_exempted(
        &self,
        id: u64,
        stratum: u8,
    ) -> Result<Vec<(Uscc, crate::domain::spotcheck::Exemption)>> {
        draws::load_exempted(&self.shared.registry, id, stratum)
    }

    fn not_classified(&self, u: &Uscc, run: u64) -> Error {
        Error::NotFound(format!("uscc: enterprise {u} in scoring run {run}"))
    }

    /// Reads every dossier once, split between up to two threads that start at either
    /// end of the keyspace and stop where they meet. Each thread folds into its own
    /// state; returns the states, the first ascending and the second descending. Each
    /// thread decodes every dossier into one value it reuses (lent to `f`), so a scan
    /// allocates per dossier only what the previous one had no room for.
    pub fn scan_dossiers<S, I, F>(&self, init: I, f: F) -> Result<Vec<S>>
    where
        S: Send,
        I: Fn() -> S + Sync,
        F: Fn(&mut S, Uscc, &EnterpriseRecords) -> Result<()> + Sync,
    {
        // A snapshot of the (few) false commitments, so the scan takes no lock.
        let revoked = self
            .shared
            .revocations
            .read()
            .map_err(|_| Error::Unavailable("revocations poisoned".into()))?
            .clone();
        let rules = &self.shared.options.rules;
        let init = || (init(), EnterpriseRecords::default());
        let states = self.scan_dossier_entries(
            self.shared.options.scan_threads,
            init,
            |(state, d), k, v| {
                let u = keys::decode_enterprise(k)
                    .ok_or_else(|| Error::Corrupt(format!("bad dossier key {k:?}")))?;
                codec::decode_dossier_into(v, d)?;
                rules.restore(u, d);
                if let Some(r) = revoked.get(&u) {
                    d.false_commitments.clone_from(r);
                }
                f(state, u, d)
            },
        )?;
        Ok(states.into_iter().map(|(s, _)| s).collect())
    }

    /// The scan under [`Store::scan_dossiers`], on the stored bytes: every dossier's key
    /// and encoded value once, with `threads` threads (1 or 2) starting at either end of
    /// the keyspace and stopping where they meet. (The scoring benchmark measures this
    /// bare, as the floor of a batch run.)
    pub fn scan_dossier_entries<S, I, F>(&self, threads: usize, init: I, f: F) -> Result<Vec<S>>
    where
        S: Send,
        I: Fn() -> S + Sync,
        F: Fn(&mut S, &[u8], &[u8]) -> Result<()> + Sync,
    {
        let tree = &self.shared.registry;
        let threads = threads.clamp(1, 2);
        // (highest key claimed ascending, lowest key claimed descending); claimed a chunk
        // at a time so the two threads rarely touch the lock.
        const CHUNK: usize = 256;
        let claimed = std::sync::Mutex::new((Vec::new(), vec![0xffu8; 32]));
        let run = |descending: bool| -> Result<S> {
            let mut state = init();
            let iter = tree.scan_prefix([keys::RECORDS]);
            let mut iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> =
                if descending {
                    Box::new(iter.rev())
                } else {
                    Box::new(iter)
                };
            let mut chunk: Vec<(sled::IVec, sled::IVec)> = Vec::with_capacity(CHUNK);
            loop {
                chunk.clear();
                for kv in iter.by_ref().take(if threads > 1 { CHUNK } else { 1 }) {
                    chunk.push(kv?);
                }
                if chunk.is_empty() {
                    break;
                }
                let mut take = chunk.len();
                if threads > 1 {
                    let mut c = claimed
                        .lock()
                        .map_err(|_| Error::Unavailable("scan lock poisoned".into()))?;
                    take = if descending {
                        chunk
                            .iter()
                            .take_while(|(k, _)| k.as_ref() > c.0.as_slice())
                            .count()
                    } else {
                        chunk
                            .iter()
                            .take_while(|(k, _)| k.as_ref() < c.1.as_slice())
                            .count()
                    };
                    if let Some((k, _)) = take.checked_sub(1).map(|i| &chunk[i]) {
                        if descending {
                            c.1 = k.to_vec();
                        } else {
                            c.0 = k.to_vec();
                        }
                    }
                }
                for (k, v) in &chunk[..take] {
                    f(&mut state, k, v)?;
                }
                if take < chunk.len() {
                    break;
                }
            }
            Ok(state)
        };
        if threads == 1 {
            return Ok(vec![run(false)?]);
        }
        std::thread::scope(|s| {
            let up = s.spawn(|| run(false));
            let down = run(true);
            // A panic is a bug, not an error: it goes on to the caller's thread
            // boundary (the scoring job fails closed there).
            let up = up.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            Ok(vec![up?, down?])
        })
    }

    /// Writes what a finished run is read from — its result blocks and relation
    /// sources, keys no reader looks at until the run is finished — and flushes them,
    /// from the scoring job's thread, not the writer's (with [`Store::write_spot_base`],
    /// the writes outside the writer); `FinishRun` (through the writer) then makes the
    /// run visible. Replicated mode ships them through the log with the run's spot base
    /// (every replica then holds the same bytes before the run finishes); single-node
    /// writes the base after the run is current ([`Store::write_spot_base`]): its
    /// 0.2–0.5 s at 3.5 M held the blocks' writes back, and a base is only a restart's
    /// shortcut (without one, the open scans the dossiers).
    pub fn write_run_results(
        &self,
        id: u64,
        entries: &[RunEntry],
        sources: &std::collections::HashMap<u64, u32>,
        spot: &spot::SpotBuilder,
    ) -> Result<()> {
        if let Some(log) = self.shared.log.get() {
            return self.log_run_results(log, id, entries, sources, spot);
        }
        let sources = (scoring::sources_key(id), scoring::encode_sources(sources));
        self.write_noted(
            scoring::encode_blocks(id, entries)
                .into_iter()
                .chain([sources]),
        )
    }

    /// Writes `entries` outside the writer and flushes them, each key noted for a
    /// running backup before it is written (its catch-up then reads the value as of
    /// then).
    fn write_noted(&self, entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<()> {
        for (k, v) in entries {
            self.shared.tracker.note([k.clone()])?;
            self.shared.registry.insert(k, v)?;
        }
        self.shared.db.flush()?;
        Ok(())
    }

    /// Stores the spot base of run `id` (finished, current or pending), so a restart
    /// reads it instead of scanning every dossier: the index as the pass built it (later
    /// changes are the run's overrides), header last — a base cut short by a crash is
    /// ignored, and the open scans. Single-node only; replicated mode shipped the base
    /// with the run's results (nothing to do here).
    pub fn write_spot_base(&self, id: u64, index: &spot::SpotIndex) -> Result<()> {
        if self.shared.log.get().is_some() {
            return Ok(());
        }
        let fingerprint = scoring::rules_fingerprint(&self.shared.options.rules);
        self.write_noted(scoring::encode_spot_base(
            id,
            index.len(),
            index.encode_chunks()?,
            &fingerprint,
        )?)
    }

    /// What a scoring job holds from finishing its runs until it has written their spot
    /// bases and retired old runs (see `Shared::pass_tail`); [`Store::close`] waits for
    /// it. It guards no data, so a job that panicked
    /// holding it leaves nothing to distrust: the next takes it all the same.
    pub fn pass_tail(&self) -> std::sync::MutexGuard<'_, ()> {
        self.shared
            .pass_tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replicated mode's [`Store::write_run_results`]: the same keys and values, shipped
    /// through the log in entries of about one log message each (`WriteRunResults`),
    /// each applied here before the next is appended (from the job's thread).
    fn log_run_results(
        &self,
        log: &ReplicaLog,
        id: u64,
        entries: &[RunEntry],
        sources: &std::collections::HashMap<u64, u32>,
        spot: &spot::SpotBuilder,
    ) -> Result<()> {
        let fingerprint = scoring::rules_fingerprint(&self.shared.options.rules);
        let items = scoring::encode_blocks(id, entries)
            .into_iter()
            .chain(scoring::encode_spot_base(
                id,
                spot.len(),
                spot.encode_chunks()?,
                &fingerprint,
            )?)
            .chain([(scoring::sources_key(id), scoring::encode_sources(sources))]);
        // One message each where the log's messages allow (room for the envelope:
        // origin, stamp, actor); with very small messages, entries of 64 KB, which the
        // log appends as parts (as it does a single value larger than that).
        let limit = log
            .sink
            .max_entry_bytes()
            .saturating_sub(4096)
            .max(64 * 1024);
        let mut chunk: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut bytes = 0;
        let send = |items: Vec<(Vec<u8>, Vec<u8>)>| {
            log.handle.block_on(self.write_as(
                Actor::system("RunBatchScoring"),
                op::WriteRunResults { run: id, items },
            ))
        };
        for (k, v) in items {
            let size = k.len() + v.len() + 16;
            if bytes + size > limit && !chunk.is_empty() {
                send(std::mem::take(&mut chunk))?;
                bytes = 0;
            }
            bytes += size;
            chunk.push((k, v));
        }
        if !chunk.is_empty() {
            send(chunk)?;
        }
        Ok(())
    }

    /// Writes a consistent backup to `path` (a new file) while writes go on: noting
    /// begins through the writer, the trees are scanned on a blocking thread, and one
    /// short writer job reads back every key written meanwhile (see `backup`).
    pub async fn backup(
        &self,
        actor: Actor,
        path: std::path::PathBuf,
    ) -> Result<backup::BackupSummary> {
        let mut w = tokio::task::spawn_blocking(move || backup::BackupWriter::create(&path))
            .await
            .map_err(|e| Error::Unavailable(format!("backup: {e}")))??;
        if let Err(e) = self.write_as(actor.clone(), op::BackupBegin).await {
            w.discard();
            return Err(e);
        }
        let db = self.shared.db.clone();
        let scanned = tokio::task::spawn_blocking(move || {
            let r = w.scan(&db);
            (w, r)
        })
        .await
        .map_err(|e| Error::Unavailable(format!("backup scan: {e}")));
        let mut w = match scanned {
            Ok((w, Ok(()))) => w,
            Ok((w, Err(e))) => {
                w.discard();
                let _ = self.write_as(actor, op::BackupAbort).await;
                return Err(e);
            }
            Err(e) => {
                let _ = self.write_as(actor, op::BackupAbort).await;
                return Err(e);
            }
        };
        let items = self.write_as(actor, op::BackupCatchUp).await?;
        tokio::task::spawn_blocking(move || {
            let r = w.catch_up("registry", &items);
            match r {
                Ok(()) => w.finish(),
                Err(e) => {
                    w.discard();
                    Err(e)
                }
            }
        })
        .await
        .map_err(|e| Error::Unavailable(format!("backup: {e}")))?
    }

    /// SHA-256 of every tree's entries (to compare a restore with its source).
    pub fn checksums(&self) -> Result<Vec<(String, String)>> {
        backup::checksums(&self.shared.db)
    }

    /// Bytes the store's data directory occupies on disk ([`compact::dir_bytes`]).
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(compact::dir_bytes(&self.shared.dir))
    }

    /// Flushes everything to disk (used at shutdown).
    pub fn flush(&self) -> Result<()> {
        self.shared.db.flush()?;
        Ok(())
    }

    /// Marks work a caller waits on (a draw's candidate scan or sampling) until the guard
    /// is dropped: meanwhile the writer, when idle, does not index selections.
    pub fn foreground_work(&self) -> ForegroundGuard {
        self.shared.foreground.enter()
    }

    /// Selections of drawn plans whose `K` entries the writer has not written yet (it
    /// writes them between jobs after each draw; see `store::stats`).
    pub fn selections_to_index(&self) -> Result<u64> {
        Ok(stats::unindexed(&self.shared.registry)?
            .iter()
            .map(|p| (p.entries.len() - p.next) as u64)
            .sum())
    }

    /// Checks every index entry has its record and every record its index entries, and
    /// that the statistics equal those recomputed from the records; returns the number
    /// of enterprises checked. For tests and `credit-risk check`.
    pub fn check_indexes(&self) -> Result<u64> {
        let n = writer::check_indexes(&self.shared.registry)?;
        stats::verify(&self.shared.registry)?;
        self.check_spot_bases()?;
        Ok(n)
    }

    /// Checks the stored spot base of every live run against the dossiers: each
    /// enterprise not re-scored since the run (those have an override, which the index
    /// reads instead) must have the attributes and history its dossier gives. Returns
    /// the enterprises checked.
    pub fn check_spot_bases(&self) -> Result<u64> {
        self.wait_loaded();
        let tree = &self.shared.registry;
        let fingerprint = scoring::rules_fingerprint(&self.shared.options.rules);
        let views: Vec<Arc<RunView>> = scoring::read(&self.shared.scoring)?
            .live()
            .cloned()
            .collect();
        let mut checked = 0u64;
        for v in views {
            let Some(base) =
                scoring::load_spot_base(tree, v.run.id, v.entries.len(), &fingerprint)?
            else {
                continue;
            };
            for (i, e) in v.entries.iter().enumerate() {
                if tree.contains_key(scoring::override_key(v.run.id, &e.uscc))? {
                    continue;
                }
                // As the scan at open reads it: any stored dossier (with or without a
                // profile), its listing terms restored.
                let d = match tree.get(keys::enterprise(&e.uscc))? {
                    Some(v) => {
                        let mut d = codec::decode_dossier(&v)?;
                        self.shared.options.rules.restore(e.uscc, &mut d);
                        d
                    }
                    None => crate::domain::EnterpriseRecords::default(),
                };
                let want = (spot::Attrs::of(&d), spot::history_of(&d));
                if base.at(i) != Some(want) {
                    return Err(Error::Corrupt(format!(
                        "run {}: the stored spot index of {} differs from its dossier",
                        v.run.id, e.uscc
                    )));
                }
                checked += 1;
            }
        }
        Ok(checked)
    }

    /// Waits for the writer to drain (for shutdown), at most `timeout`.
    /// Stops taking writes; the writer applies (or, after a fault, refuses) everything
    /// already queued. Waits at most `timeout` for that, then flushes.
    /// A scoring job finishing its runs (and storing their spot bases, retiring old
    /// runs) is waited for first, within the same `timeout`.
    pub fn close(&self, timeout: Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        // Held until the writer is closed: no pass starts its tail meanwhile.
        let _tail = loop {
            match self.shared.pass_tail.try_lock() {
                Ok(g) => break Some(g),
                Err(std::sync::TryLockError::Poisoned(p)) => break Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock)
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(std::sync::TryLockError::WouldBlock) => {
                    tracing::warn!(?timeout, "a scoring pass still finishing at close");
                    break None;
                }
            }
        };
        let timeout = deadline.saturating_duration_since(std::time::Instant::now());
        if !self.shared.writer.close(timeout) {
            tracing::warn!(?timeout, "store writer still draining its queue at close");
        }
        self.flush()
    }
}

/// A class with its explanation.
#[derive(Clone, Debug)]
pub struct Classified {
    pub uscc: Uscc,
    pub run_id: u64,
    pub model: Arc<Model>,
    pub as_of: Date,
    pub class: crate::domain::RiskClass,
    pub score: crate::domain::Centi,
    pub hard_rule: Option<crate::domain::model::HardRule>,
    pub factors: Arc<[crate::domain::scoring::Explained]>,
    pub factors_reproduce_score: bool,
    /// The re-score after a write, if the enterprise changed since the run.
    pub rescored: Option<Override>,
    /// The rules version in force on `as_of`.
    pub rules_version: String,
}

/// A run to read classes from: its id, as-of date, model and, when loaded, its view.
type ResolvedRun = (u64, Date, Arc<Model>, Option<Arc<RunView>>);

/// An enterprise's class in a run, without the explanation ([`Store::class_in_run`]).
#[derive(Clone, Debug)]
pub struct InRun {
    pub run_id: u64,
    pub model: Arc<Model>,
    /// The run's as-of date.
    pub run_as_of: Date,
    /// The run's as-of date, or the re-score's.
    pub as_of: Date,
    pub class: crate::domain::RiskClass,
    pub score: crate::domain::Centi,
    /// `scoring::FLAG_*`.
    pub flags: u8,
    /// The re-score after a write, if the enterprise changed since the run.
    pub rescored: Option<Override>,
    /// The run's entry says its explanation is empty ([`scoring::FLAG_NO_FACTORS`]) and
    /// still may: a live run scored under these rules, and no re-score since (not even
    /// one after `until_ms`) — the dossier is as the run read it.
    pub explained_empty: bool,
    /// A live run and no re-score of the enterprise on it since (not even one after
    /// `until_ms`): the dossier is the one the run scored, and its explanation may come
    /// from the [`explanations`] cache.
    pub as_scored: bool,
}

/// Schema 2 → 3: idempotency records now hold the rendered reply (schema 2 stored an
/// outcome that could not always be decoded), so the old ones are dropped — a retry of a
/// request made before the upgrade is applied as new; audit events from the next one on
/// are hashed in chain format 2 (length-prefixed fields), older ones verify as format 1.
fn migrate_2_to_3(db: &sled::Db, meta: &sled::Tree, registry: &sled::Tree) -> Result<()> {
    let mut batch = sled::Batch::default();
    let mut dropped = 0u64;
    for kv in registry.scan_prefix([keys::REQUESTS]) {
        let (k, _) = kv?;
        batch.remove(k);
        dropped += 1;
    }
    let next = audit::head(registry)?.0 + 1;
    batch.insert(keys::counter(audit::CHAIN_V2_FROM), &next.to_be_bytes()[..]);
    registry.apply_batch(batch)?;
    meta.insert("schema_version", &3u32.to_be_bytes())?;
    db.flush()?;
    tracing::warn!(
        dropped,
        audit_v2_from = next,
        "store migrated from schema 2 to 3"
    );
    Ok(())
}

/// Schema 4 added the statistics (counters, the inspection date index, the drawn
/// classes) and schema 5 the legal-representative index (`G`): state derived from the
/// records, so a store of schema 2 (after [`migrate_2_to_3`]), 3 or 4 gets all of it
/// recomputed once ([`stats::rebuild`], streaming) and is then schema 5.
fn migrate_derived(
    db: &sled::Db,
    meta: &sled::Tree,
    registry: &sled::Tree,
    from: u32,
) -> Result<()> {
    let rebuilt = stats::rebuild(registry)?;
    meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
    db.flush()?;
    tracing::warn!(
        counters = rebuilt.counters,
        index_entries = rebuilt.index_entries,
        selections = rebuilt.selections,
        "store migrated from schema {from} to {SCHEMA_VERSION} (statistics and indexes computed from the records)"
    );
    Ok(())
}

thread_local! {
    /// Set while [`guard_panics`] runs: the panic hook stays silent (the panic is
    /// reported as an error instead).
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` (which reads the store at `dir`), turning a panic inside it — sled panics on
/// some damaged files, e.g. a truncated `db` — into [`Error::Corrupt`] naming the
/// directory and what to do, without the panic's own message on stderr.
pub fn guard_panics<T>(dir: &Path, doing: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(|g| g.get()) {
                previous(info);
            }
        }));
    });
    let was = GUARDED.with(|g| g.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    let damaged = |why: &str| {
        Error::Corrupt(format!(
            "the store at {} is damaged: {why} while {doing}. Stop every process using it, \
             keep a copy for analysis, then restore the last backup (`credit-risk restore`) \
             or re-import into an empty data directory",
            dir.display()
        ))
    };
    match r {
        Ok(Err(Error::Corrupt(why))) => Err(damaged(&why)),
        Ok(other) => other,
        Err(payload) => {
            let why = crate::error::panic_message(&*payload);
            Err(damaged(&format!(
                "sled could not read its files (db, conf, blobs/, snap.*): {why}"
            )))
        }
    }
}

/// The content digest of `db` (see [`Store::content_digest`]), handing each entry to
/// `each(tree, key, value)` on the way (a compaction copies them).
pub(crate) fn content_digest_of(
    db: &sled::Db,
    mut each: impl FnMut(&[u8], sled::IVec, sled::IVec) -> Result<()>,
) -> Result<(u64, u64, String)> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let (mut keys, mut bytes) = (0u64, 0u64);
    let mut names = db.tree_names();
    names.sort();
    for name in names {
        let tree = db.open_tree(&name)?;
        h.update((name.len() as u64).to_be_bytes());
        h.update(&name);
        for kv in tree.iter() {
            let (k, v) = kv?;
            h.update((k.len() as u64).to_be_bytes());
            h.update(&k);
            h.update((v.len() as u64).to_be_bytes());
            h.update(&v);
            keys += 1;
            bytes += (k.len() + v.len()) as u64;
            each(&name, k, v)?;
        }
    }
    Ok((keys, bytes, hex::encode(h.finalize())))
}

/// The sled configuration of a store at `dir` opened with `options`.
pub(crate) fn sled_config(dir: &Path, options: &StoreOptions) -> sled::Config {
    sled::Config::new()
        .path(dir)
        .cache_capacity(options.cache_bytes)
        .flush_every_ms(Some(500))
        .mode(sled::Mode::HighThroughput)
        .use_compression(options.compression)
        .compression_factor(1)
}

/// Re-opens the sled files of the closed store at `dir` once and closes them again, so
/// that sled replays its log and writes its page-table snapshot (`snap.<LSN>`): sled
/// 0.34 writes one only while opening (vendor/PATCHES.md), so without this the next open
/// replays every write since the previous open — at Shanghai scale, after an import and
/// a rescore, 6 s instead of about 1 s (BENCHMARKS.md, "restart"). Nothing of the store
/// is read or changed beyond what any open does.
///
/// Call it after every handle of the store is dropped: it takes the directory lock like
/// an open, so while a handle lives (here or in another process) it waits two seconds
/// and returns [`Error::Unavailable`] without touching the files. Returns the seconds
/// the re-open took.
pub fn snapshot_closed(dir: &Path, options: &StoreOptions) -> Result<f64> {
    let t = std::time::Instant::now();
    guard_panics(dir, "re-opening it to write sled's snapshot", || {
        let db = open_retrying_lock(&sled_config(dir, options), dir)?;
        db.flush()?;
        drop(db);
        Ok(())
    })?;
    Ok(t.elapsed().as_secs_f64())
}

/// Opens sled, waiting up to two seconds for the directory lock: sled's background I/O
/// threads release it shortly after the previous handle in this process is dropped (a
/// restart, a restore followed by an open). Another live process keeps it: then the
/// lock error is returned.
pub(crate) fn open_retrying_lock(config: &sled::Config, dir: &Path) -> Result<sled::Db> {
    let mut tries = 0;
    loop {
        match config.open() {
            // sled reports the lock as an I/O error of kind Other wrapping EWOULDBLOCK.
            Err(sled::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.to_string().contains("could not acquire lock") =>
            {
                if tries == 40 {
                    return Err(Error::Unavailable(format!(
                        "{} is in use by another process (a running server holds its lock): stop that server first, or work on a copy restored from a backup",
                        dir.display()
                    )));
                }
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            r => return Ok(r?),
        }
    }
}

/// A complete run whose view is loaded after the open, by the writer before its first
/// job: a pending dry run (the candidate of its family).
pub(crate) type DeferredRun = (ScoringRun, Arc<Model>);

/// Rebuilds the scoring state at open: marks runs interrupted by a crash as aborted
/// (dropping their partial results), loads each family's current run and the
/// registered models, and returns the pending dry runs to load after the open (see
/// [`writer::Parts::deferred`]).
fn recover_scoring(
    tree: &sled::Tree,
    rules: &crate::domain::ruleset::RuleBook,
    replicated: bool,
) -> Result<(ScoringState, Vec<DeferredRun>)> {
    let mut st = ScoringState::default();
    for kv in tree.scan_prefix([scoring::MODELS]) {
        let (k, _) = kv?;
        let version = String::from_utf8_lossy(&k[1..]).to_string();
        if let Some(m) = scoring::load_model(tree, &version)? {
            st.models.insert(version, Arc::new(m));
        }
    }
    let families: std::collections::BTreeSet<String> =
        st.models.values().map(|m| m.family.clone()).collect();
    for family in &families {
        let key = keys::counter(&scoring::family_counter("active_model", family));
        if let Some(v) = tree.get(key)? {
            let version = String::from_utf8_lossy(&v).to_string();
            st.family_mut(family).active_model = st.models.get(&version).cloned();
        }
    }
    let runs = scoring::list_runs(tree)?;
    for r in &runs {
        if r.state == scoring::RunState::Running && replicated {
            // Replicated mode: the run is the log's; it stays being computed here (writes
            // go on re-scoring onto it) until the log finishes or aborts it.
            let model = st.models.get(&r.model_version).cloned().ok_or_else(|| {
                Error::Corrupt(format!(
                    "run {} names unknown model {}",
                    r.id, r.model_version
                ))
            })?;
            st.building.push(scoring::Building {
                id: r.id,
                model,
                as_of: r.as_of,
            });
        } else if r.state == scoring::RunState::Running {
            let mut r = r.clone();
            tracing::warn!(
                run = r.id,
                "scoring run was interrupted; marking it aborted"
            );
            let mut batch = sled::Batch::default();
            for prefix in [
                scoring::blocks_prefix(r.id),
                scoring::spot_prefix(r.id),
                scoring::overrides_prefix(r.id),
            ] {
                for kv in tree.scan_prefix(prefix) {
                    batch.remove(kv?.0);
                }
            }
            batch.remove(scoring::sources_key(r.id));
            r.state = scoring::RunState::Aborted;
            r.error = "interrupted: the server stopped while the run was computed".into();
            batch.insert(scoring::run_key(r.id), codec::encode(&r)?);
            tree.apply_batch(batch)?;
        }
    }
    let model_of = |st: &ScoringState, r: &ScoringRun| -> Result<Arc<Model>> {
        st.models.get(&r.model_version).cloned().ok_or_else(|| {
            Error::Corrupt(format!(
                "run {} names unknown model {}",
                r.id, r.model_version
            ))
        })
    };
    // Per family: its current run, and the newest complete dry run after it (the
    // pending candidate).
    let mut wanted = Vec::new();
    let mut deferred = Vec::new();
    for family in &families {
        let current = scoring::get_counter(tree, &scoring::family_counter("current_run", family))?;
        if let Some(id) = current {
            let run = scoring::load_run(tree, id)?
                .ok_or_else(|| Error::Corrupt(format!("current run {id} missing")))?;
            let model = model_of(&st, &run)?;
            wanted.push((run, model));
        }
        let candidate = runs.iter().find(|r| {
            r.state == scoring::RunState::Complete
                && r.dry_run
                && r.activated_at_ms.is_none()
                && Some(r.id) > current
                && st
                    .models
                    .get(&r.model_version)
                    .is_some_and(|m| &m.family == family)
        });
        if let Some(r) = candidate {
            let model = model_of(&st, r)?;
            deferred.push((r.clone(), model));
        }
    }
    for v in scoring::load_views(tree, rules, wanted)? {
        let family = v.model.family.clone();
        st.family_mut(&family).current = Some(Arc::new(v));
    }
    Ok((st, deferred))
}

fn register_model_at_open(tree: &sled::Tree, st: &mut ScoringState, model: Model) -> Result<()> {
    let version = model.version.clone();
    match st.models.get(&version) {
        Some(m) if m.source == model.source => {}
        Some(_) => {
            return Err(Error::FailedPrecondition(format!(
                "model version {version:?} is already registered with different content; give the changed model a new version"
            )))
        }
        None => {
            tree.insert(scoring::model_key(&version), scoring::model_value(&model))?;
            st.models.insert(version.clone(), Arc::new(model));
        }
    }
    let family = st
        .models
        .get(&version)
        .map(|m| m.family.clone())
        .unwrap_or_default();
    let active = st.family(&family).active_model.clone();
    if active.is_none() {
        tree.insert(
            keys::counter(&scoring::family_counter("active_model", &family)),
            version.as_bytes(),
        )?;
        st.family_mut(&family).active_model = st.models.get(&version).cloned();
    } else if active.as_ref().map(|m| &m.version) != Some(&version) {
        tracing::warn!(
            configured = %version,
            active = ?active.as_ref().map(|m| &m.version),
            "configured model is registered but not active: dry-run it and activate the run to use it"
        );
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every keyspace of the registry tree has its own first byte (two sharing one would
    /// read each other's keys: scans, rebuilds and checks go by prefix).
    #[test]
    fn keyspaces_are_distinct() {
        let spaces = [
            ("dossiers", keys::RECORDS),
            ("decision numbers", keys::DECISIONS),
            ("directory", keys::DIRECTORY),
            ("request ids", keys::REQUESTS),
            ("counters", keys::COUNTERS),
            ("audit events", audit::EVENTS),
            ("audit by uscc", audit::BY_USCC),
            ("alerts", alerts::ALERTS),
            ("alert markers", alerts::WARNED),
            ("plans", draws::PLANS),
            ("inspectors", draws::INSPECTORS),
            ("repair cases", repair::CASES),
            ("repair cases by uscc", repair::CASES_BY_USCC),
            ("objections", repair::OBJECTIONS),
            ("objections by uscc", repair::OBJECTIONS_BY_USCC),
            ("runs", scoring::RUNS),
            ("overrides", scoring::OVERRIDES),
            ("models", scoring::MODELS),
            ("statistics", stats::COUNTERS),
            ("inspections by date", stats::INSPECTIONS),
            ("selections", stats::DRAWN),
            ("selections to index", stats::UNINDEXED),
            ("legal representatives", stats::LEGAL_REPS),
            ("commitments awaiting verification", stats::DUE_COMMITMENTS),
        ];
        let mut seen = std::collections::HashMap::new();
        for (name, byte) in spaces {
            if let Some(other) = seen.insert(byte, name) {
                panic!("{name} and {other} share the keyspace {:?}", byte as char);
            }
        }
    }

    #[test]
    fn a_store_open_elsewhere_is_refused_and_reopens_once_closed() {
        let tmp = tempfile::tempdir().unwrap();
        let a = Store::open(tmp.path(), StoreOptions::default()).unwrap();
        let t = std::time::Instant::now();
        let e = Store::open(tmp.path(), StoreOptions::default())
            .err()
            .expect("a second open of a live store is refused");
        assert!(matches!(e, Error::Unavailable(_)), "{e}");
        assert!(
            t.elapsed() >= Duration::from_millis(1500),
            "it waited for the lock: {e:?}"
        );
        a.close(Duration::from_secs(5)).unwrap();
        drop(a);
        // Immediately reopenable once the handle is gone (the wait covers sled's
        // background threads).
        Store::open(tmp.path(), StoreOptions::default()).unwrap();
    }
}
