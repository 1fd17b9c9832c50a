//! The single writer thread: the queue, the group commit and the replies. Each write is
//! an [`Operation`] — a serializable value with its own typed output — applied to a
//! transaction ([`Tx`]: the job's sled batch plus the reads it made); the operations
//! live beside this file, grouped by what they change (records, runs, draws,
//! inspectors, repair cases, backups). Jobs are applied one at a time, each as one atomic
//! batch, and flushed once per group before they are answered (group commit); shared
//! memory changes only after the flush ([`Effect`]).
//!
//! Every write of records, indexes and the audit trail goes through this thread. The one
//! exception is a scoring run's results ([`crate::store::Store::write_run_results`]):
//! the job writes them from its own thread under keys no reader looks at until the
//! writer applies `FinishRun`, which makes the run visible in one batch — and, once the
//! run is current, its spot base ([`crate::store::Store::write_spot_base`]), read only
//! at the next open and only once its header (written last) is there. (In replicated
//! mode both go through the log and the writer, as `WriteRunResults` entries, before
//! `FinishRun`.)

use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    fmt::Debug,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::Duration,
};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::{
    alerts::AlertHub,
    audit::{self, Actor, AuditEvent},
    codec, directory_page,
    draws::{self, Assignment, DrawPlan, DrawReceipt},
    keys,
    repair::{self, Revocations},
    scoring::{
        self as sc, Building, Override, RunEntry, RunState, RunView, ScoringRun, ScoringState,
        SharedScoring,
    },
    spot::{SpotIndex, SpotRow},
    stats, StoreOptions,
};
use crate::{
    domain::alert::AlertDraft,
    domain::ruleset::RuleBook,
    domain::{
        repair::{
            Objection, ObjectionState, ObjectionStep, RepairAction, RepairCase, RepairStep,
            RepairTarget,
        },
        scoring::assess,
        spotcheck::{Exemption, Inspector},
        stats::{Counter, Month, Selection},
        AnnualReport, ComplaintSummary, Date, Enterprise, EnterpriseRecords, EnterpriseStatus,
        InspectionResult, ListKind, Listing, Model, Penalty, QualitySampling, Uscc,
    },
    error::{Error, Result},
};

#[macro_use]
mod log;
mod alerts;
mod backups;
mod cases;
mod commitments;
mod inspectors;
mod plans;
mod records;
mod runs;
mod usage;
mod wire;

pub use log::{BindReply, Checkpoint, Entry, Envelope, LogPart, LogSink, Origin};
pub(super) use log::{Waiter, Waiting};
pub(super) use records::check_indexes;

/// Every write the store performs, one type each (see [`Operation`]).
pub mod op {
    pub use super::alerts::{AlertAction, RaiseOverdueRepairs, TriageAlert};
    pub use super::backups::{BackupAbort, BackupBegin, BackupCatchUp, CatchUp};
    pub use super::cases::{
        Correction, DecideRepairCase, FileObjection, ResolveObjection, SubmitRepair,
    };
    pub use super::commitments::{RecordCommitment, VerifyCommitment};
    pub use super::inspectors::UpsertInspector;
    pub use super::plans::{
        CommitJoint, CompleteJoint, RecordAssignment, RecordDraw, RevealJointSeed, SavePlan,
    };
    pub use super::records::{
        AddListing, FileAnnualReport, Import, ImportItem, ImportOutcome, ImportRejection,
        RecordComplaints, RecordInspection, RecordPenalty, RecordSampling, Remember, SweepChunk,
        SweepCounts, UpsertEnterprise, Upserted,
    };
    pub use super::runs::{
        AbortRun, ActivateRun, BeginRun, FinishRun, ModelRegistered, RegisterModel, RetireRuns,
        WriteRunResults,
    };
    pub use super::usage::RecordMatches;
}

/// One write: a value carrying everything its effect depends on besides the store
/// (the job's [`Stamp`] — today's date and the time — comes with it), so applying the
/// same operation to the same state gives the same result, on this server or on a
/// replica replaying a log. Its output is typed: the caller gets exactly the type the
/// operation produces.
pub trait Operation: Serialize + DeserializeOwned + Debug + Send + 'static {
    /// What the caller gets back.
    type Output: Debug + Send + 'static;

    /// Whether the enterprises this operation changes are re-scored onto the live runs
    /// in its batch (run operations themselves do not).
    const RESCORES: bool = true;

    /// Whether the changes this operation makes raise alerts (a worse class on the
    /// current run, a new listing, the penalty threshold reached), in its batch. A bulk
    /// import of history does not.
    const ALERTS: bool = true;

    /// Whether the operation's change is an audit event (usage counters are not).
    const AUDITED: bool = true;

    /// What the operation changes, as the audit event and the re-score record name it.
    fn cause(&self) -> String;

    /// Applies the operation to the transaction: reads through it, writes into its
    /// batch, queues memory effects on it. An error leaves nothing written.
    fn apply(self, tx: &mut Tx<'_>) -> Result<Self::Output>;

    /// The enterprise the output is about, if one (the audit event's target).
    fn subject(_out: &Self::Output) -> Option<Uscc> {
        None
    }

    /// What a request id is bound to when the operation has no reply renderer (a
    /// scoring run, for `RunBatchScoring`; a drawn plan's receipt).
    fn binding(_out: &Self::Output, _options: &StoreOptions) -> Option<Remembered> {
        None
    }

    /// The operation as an entry of the replicated log, or itself back (`Err`) if it is
    /// applied only where it is submitted. Every operation says which (the `logged!`
    /// and `local_only!` macros), so none is forgotten by the replicated mode.
    fn into_entry(s: Submitted<Self>) -> Result<std::result::Result<Entry, Submitted<Self>>>;

    /// The submitted operation an entry of this kind carries.
    fn from_entry(e: Entry) -> Option<Submitted<Self>>;
}

/// The transaction an operation applies to: the writer's state and the job's pending
/// batch (its reads see its own writes).
pub struct Tx<'a> {
    w: &'a Writer,
    p: Pending<'a>,
}

impl<'a> Tx<'a> {
    /// The writer and the pending batch, borrowed apart.
    fn parts(&mut self) -> (&'a Writer, &mut Pending<'a>) {
        (self.w, &mut self.p)
    }

    /// The record context (options, date, time) and the pending batch.
    fn ctx(&mut self) -> (Ctx<'a>, &mut Pending<'a>) {
        let ctx = Ctx {
            today: self.p.at.today,
            now_ms: self.p.at.now_ms,
            options: &self.w.options,
        };
        (ctx, &mut self.p)
    }
}

/// Renders a fresh output into the encoded reply message. It runs on the writer,
/// before the commit, so the reply stored with a request id is exactly the one the first
/// caller gets, and a failing renderer leaves nothing written.
pub type Render<T> = Box<dyn FnOnce(&T) -> Result<Vec<u8>> + Send>;

/// What a retry with a known request id gets: the first answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Remembered {
    /// The encoded reply message of a unary RPC, byte for byte.
    Reply(Vec<u8>),
    /// The scoring run a `RunBatchScoring` request began (bound when it began).
    Run(u64),
    /// Replicated mode: the request was applied at this sequence of the log; its reply
    /// follows in a [`BindReply`] entry from the replica that took it.
    Applied(u64),
    /// The receipt of drawn plan `plan`, the reply of `DrawSample`, `CompleteJointDraw`
    /// (`teams` false: the receipt as drawn) and `AssignInspectors` (`teams` true):
    /// rendered again from the stored plan on a retry — a receipt never changes once
    /// drawn, nor its teams once assigned — with `instance`, the name this instance
    /// answered with (a joint draw's summary shows it). Stored instead of the reply: a
    /// city-wide receipt is tens of megabytes, and sled rewrites a leaf of 16 such
    /// values whole (BENCHMARKS.md, "A draw's reply bound to its plan").
    Receipt {
        plan: u64,
        teams: bool,
        instance: String,
    },
}

/// The writer's answer to a job.
#[derive(Debug)]
pub enum Answer<T> {
    /// The job was applied: its output, and the reply its renderer made.
    Fresh { outcome: T, reply: Option<Vec<u8>> },
    /// A retry: the first request's answer; nothing was written.
    Replay(Remembered),
}

impl<T> Answer<T> {
    /// The output of a fresh job; a replay is refused (internal writes carry no id).
    pub fn outcome(self) -> Result<T> {
        match self {
            Answer::Fresh { outcome, .. } => Ok(outcome),
            Answer::Replay(_) => Err(Error::Corrupt(
                "an internal write was answered from a request id".into(),
            )),
        }
    }
}

/// A request id's key, the request's fingerprint, and what the id answers.
type Binding = ((Vec<u8>, [u8; 32]), Remembered);

/// The idempotency record of a request id (`Q rpc 0 id`).
#[derive(Serialize, Deserialize)]
struct StoredRequest {
    fingerprint: [u8; 32],
    answer: Remembered,
}

/// Changes to shared memory a job makes. They are published only after the group's
/// flush, so a reader never sees in memory what is not durable on disk.
pub(super) enum Effect {
    /// A fresh spot-index row for the run's overlay.
    Spot(Arc<SpotIndex>, SpotRow),
    /// The enterprise left the run's scope: the selector of that run drops it.
    SpotGone(Arc<SpotIndex>, Uscc),
    /// A revoked repair approval (a false commitment) now attached to dossiers.
    Revocation(Uscc, u64, Date),
    /// A change of runs or models.
    Scoring(Box<dyn FnOnce(&mut ScoringState) + Send>),
    /// Newly registered enterprises (the count readers see).
    Enterprises(u64),
    /// Alerts the job raised, for the watchers.
    Alerts(Vec<crate::domain::alert::Alert>),
}

impl Effect {
    /// Whether later jobs must see this effect: the writer publishes it before it runs
    /// another job (it ends the group).
    fn is_barrier(&self) -> bool {
        matches!(self, Effect::Scoring(_) | Effect::Revocation(..))
    }
}

/// When a job was submitted: the date and time its operation applies at. Taken once, at
/// submission, and carried with the job, so applying it reads no clock (the same job
/// applied again — a replica, a replayed log — gives the same result).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// Today in Asia/Shanghai.
    pub today: Date,
    /// Unix milliseconds.
    pub now_ms: i64,
}

impl Stamp {
    /// `clock` now: read once per job, when it is submitted.
    pub fn at(clock: &crate::domain::Clock) -> Stamp {
        Stamp {
            today: clock.today(),
            now_ms: clock.now_ms(),
        }
    }
}

/// A submitted write as a log would carry it: the operation, when it was submitted, who
/// asked, and the request id it answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Submitted<O> {
    pub op: O,
    pub at: Stamp,
    pub actor: Actor,
    pub request: Option<RequestKey>,
}

/// A queued job: the submitted operation, its renderer, and where its answer goes.
struct Job<O: Operation> {
    submitted: Submitted<O>,
    render: Option<Render<O::Output>>,
    reply: oneshot::Sender<Result<Answer<O::Output>>>,
    /// The job's sequence in the replicated log (`None`: single-node, or local only).
    seq: Option<u64>,
}

/// Frees run views a change of runs replaced on a thread of their own. The last
/// reference to a 3.5 M run frees millions of allocations (its entries, its selector
/// index); dropped where they are replaced, that would happen under the scoring lock,
/// stalling every reader, and on the writer, delaying the answer.
pub(super) fn drop_apart(views: [Option<Arc<RunView>>; 2]) {
    if views.iter().all(Option::is_none) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("drop-run-view".into())
        .spawn(move || {
            let t = std::time::Instant::now();
            drop(views);
            tracing::debug!(
                ms = t.elapsed().as_millis() as u64,
                "replaced run views freed"
            );
        });
    // (If no thread can be started, the closure and the views are dropped here.)
    drop(spawned);
}

/// Sends a finished job's answer once its group is durable; given the group's failure
/// instead, it answers UNAVAILABLE.
type Deliver = Box<dyn FnOnce(Option<&str>) + Send>;

/// A job of any operation, as the queue holds it.
pub(super) trait Queued: Send {
    /// Applies the job and returns how to deliver its answer.
    fn run(self: Box<Self>, w: &Writer) -> Deliver;
    /// Answers UNAVAILABLE without applying (the writer failed).
    fn refuse(self: Box<Self>, why: String);
}

impl<O: Operation> Queued for Job<O> {
    fn run(self: Box<Self>, w: &Writer) -> Deliver {
        let Job {
            submitted,
            render,
            reply,
            seq,
        } = *self;
        let answer = w.execute(submitted, render, seq);
        Box::new(move |failed| {
            let answer = match failed {
                None => answer,
                Some(e) => Err(Error::Unavailable(format!(
                    "store failed before this write was durable: {e}"
                ))),
            };
            let _ = reply.send(answer);
        })
    }

    fn refuse(self: Box<Self>, why: String) {
        let _ = self.reply.send(Err(Error::Unavailable(why)));
    }
}

/// The idempotency key of a mutating request (SPEC.md §4 "Cross-cutting").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestKey {
    /// RPC name; ids are scoped per RPC.
    pub rpc: String,
    /// The client's request id.
    pub id: String,
    /// SHA-256 of the whole request, to refuse an id reused for another request.
    pub fingerprint: [u8; 32],
}

/// A queued write: await it for the answer, given once durable.
pub struct Ticket<T>(oneshot::Receiver<Result<Answer<T>>>);

impl<T> Ticket<T> {
    pub(super) fn new(rx: oneshot::Receiver<Result<Answer<T>>>) -> Ticket<T> {
        Ticket(rx)
    }
}

impl<T> std::future::Future for Ticket<T> {
    type Output = Result<Answer<T>>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|r| {
            r.unwrap_or_else(|_| {
                Err(Error::Unavailable(
                    "store writer stopped before answering; the write may or may not have been applied (retry with the same request_id)".into(),
                ))
            })
        })
    }
}

/// Looks up the first answer of an earlier request with this id; INVALID_ARGUMENT
/// (`request_id`) if the id was used for a different request.
pub(super) fn recall(tree: &sled::Tree, r: &RequestKey) -> Result<Option<Remembered>> {
    let Some(v) = tree.get(keys::request(&r.rpc, &r.id))? else {
        return Ok(None);
    };
    let stored: StoredRequest = codec::decode(&v)?;
    if stored.fingerprint != r.fingerprint {
        return Err(Error::invalid(
            "request_id",
            format!(
                "{:?} was already used for a different {} request",
                r.id, r.rpc
            ),
        ));
    }
    Ok(Some(stored.answer))
}

/// The store's fault signal: `Some(reason)` once the writer or a job failed; the server
/// turns health NOT_SERVING and exits non-zero.
pub type FaultSignal = tokio::sync::watch::Sender<Option<String>>;

pub(super) struct WriterHandle {
    /// Dropped by `close`: the writer drains what is queued and stops.
    tx: Mutex<Option<mpsc::Sender<Box<dyn Queued>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Signalled by the writer thread as it ends.
    done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl WriterHandle {
    pub(super) async fn enqueue<O: Operation>(
        &self,
        submitted: Submitted<O>,
        render: Option<Render<O::Output>>,
    ) -> Result<Ticket<O::Output>> {
        let (reply, rx) = oneshot::channel();
        let job: Box<dyn Queued> = Box::new(Job {
            submitted,
            render,
            reply,
            seq: None,
        });
        self.enqueue_queued(job).await?;
        Ok(Ticket(rx))
    }

    /// Queues a job already made (a log entry's).
    pub(super) async fn enqueue_queued(&self, job: Box<dyn Queued>) -> Result<()> {
        let tx = self
            .tx
            .lock()
            .map_err(|_| Error::Unavailable("store writer poisoned".into()))?
            .clone()
            .ok_or_else(|| Error::Unavailable("store is closing".into()))?;
        tx.send(job)
            .await
            .map_err(|_| Error::Unavailable("store writer stopped".into()))
    }

    /// Stops taking writes and waits (at most `timeout`) for the writer to apply or
    /// refuse everything queued; returns whether it finished.
    pub(super) fn close(&self, timeout: Duration) -> bool {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let done = self.done.lock().ok().and_then(|mut d| d.take());
        let finished = match done {
            Some(rx) => !matches!(
                rx.recv_timeout(timeout),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            ),
            None => true,
        };
        if finished {
            if let Some(h) = self.thread.lock().ok().and_then(|mut h| h.take()) {
                let _ = h.join();
            }
        }
        finished
    }
}

/// What the writer shares with the store's readers.
/// Work a caller is waiting on that competes with the writer's background indexing for
/// the cores: a draw's candidate scan and sampling (seconds at city scale). While any is
/// under way the idle writer does not index selections; queued jobs, and the chunk it
/// indexes after each group of them, go on as before.
#[derive(Debug, Default)]
pub struct Foreground(std::sync::atomic::AtomicUsize);

impl Foreground {
    /// Marks foreground work until the guard is dropped.
    pub fn enter(self: &Arc<Self>) -> ForegroundGuard {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        ForegroundGuard(self.clone())
    }

    /// Whether any foreground work is under way.
    pub fn active(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst) > 0
    }
}

/// Foreground work under way (see [`Foreground`]).
#[derive(Debug)]
pub struct ForegroundGuard(Arc<Foreground>);

impl Drop for ForegroundGuard {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

pub(super) struct Parts {
    /// The data directory (for the seal).
    pub dir: std::path::PathBuf,
    pub db: sled::Db,
    pub tree: sled::Tree,
    pub options: StoreOptions,
    pub counters: Arc<Counters>,
    pub scoring: SharedScoring,
    pub revocations: Revocations,
    pub fault: Arc<FaultSignal>,
    pub tracker: Arc<super::backup::Tracker>,
    /// The watchers of new alerts.
    pub hub: AlertHub,
    /// Pending dry runs whose views the writer loads and installs before its first job,
    /// off the open's path: reads do not need them (a read naming such a run meanwhile
    /// is answered from its stored results), and every write is queued until they are
    /// live, so each write re-scores onto every live run as before.
    pub deferred: Vec<super::DeferredRun>,
    /// Set to false once the deferred views are installed (or their load failed).
    pub loading: Arc<tokio::sync::watch::Sender<bool>>,
    /// The last log sequence applied (replicated mode), moved after each group's flush.
    pub applied: Arc<tokio::sync::watch::Sender<u64>>,
    /// Checkpoints to append (replicated mode): (sequence, chain before it).
    pub checkpoints: Arc<CheckpointSignal>,
    /// Foreground work under way: idle indexing waits for it.
    pub foreground: Arc<Foreground>,
}

pub(super) fn spawn(parts: Parts) -> Result<WriterHandle> {
    let Parts {
        dir,
        db,
        tree,
        options,
        counters,
        scoring,
        revocations,
        fault,
        tracker,
        hub,
        deferred,
        loading,
        applied,
        checkpoints,
        foreground,
    } = parts;
    let head = audit::head(&tree)?;
    let applied_at_start = *applied.borrow();
    // No chain yet: it begins after the sequence applied (0 for a new store).
    let (chain_since, chain_at_start) = match tree.get(keys::counter(log::LOG_CHAIN))? {
        Some(v) if v.len() == 40 => {
            let mut since = [0u8; 8];
            since.copy_from_slice(&v[..8]);
            let mut chain = [0u8; 32];
            chain.copy_from_slice(&v[8..]);
            (u64::from_be_bytes(since), chain)
        }
        Some(_) => {
            return Err(Error::Corrupt(format!("bad {} value", log::LOG_CHAIN)));
        }
        None => (applied_at_start, [0u8; 32]),
    };
    let alert_head = super::alerts::head(&tree)?;
    let (tx, rx) = mpsc::channel(options.queue_depth.max(1));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let enterprises = AtomicU64::new(counters.enterprises.load(Ordering::Acquire));
    let thread = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || {
            // What only writes need is read here, before the first job, not on the
            // open's path: the drawn plans whose selections are not all indexed, and
            // the pending dry runs' views. The enterprises with selections (after years
            // of draws, millions of keys) are read by a thread of their own.
            let prepared = stats::unindexed(&tree)
                .map_err(|e| format!("cannot read the selections index: {e}"))
                .and_then(|unindexed| {
                    let mut selected = Selected::load(&tree, Some(fault.clone()));
                    // Drawn plans whose selections are not all indexed yet: theirs are
                    // read from their receipts until the writer has written them.
                    selected.add(
                        unindexed
                            .iter()
                            .flat_map(|p| p.entries[p.next..].iter().map(|(u, _)| *u)),
                    );
                    let unindexed: BTreeMap<u64, stats::PlanSelections> =
                        unindexed.into_iter().map(|p| (p.plan_id, p)).collect();
                    // sled panics on some damaged files: a failed start, not a hung queue.
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        install_deferred(&tree, &options, &scoring, deferred)
                    }))
                    .unwrap_or_else(|p| {
                        Err(format!(
                            "loading the pending dry runs panicked: {}",
                            crate::error::panic_message(&*p)
                        ))
                    })?;
                    Ok((selected, unindexed))
                });
            loading.send_replace(false);
            let (selected, unindexed) = match prepared {
                Ok(s) => s,
                Err(msg) => {
                    fail_closed(&fault, rx, [], &msg);
                    let _ = done_tx.send(());
                    return;
                }
            };
            Writer {
                sealed: std::cell::Cell::new(head.0),
                dir,
                db,
                tree,
                options,
                counters,
                enterprises,
                scoring,
                audit_head: Mutex::new(head),
                revocations,
                effects: RefCell::new(Vec::new()),
                fault,
                tracker,
                hub,
                alert_head: std::cell::Cell::new(alert_head),
                selected: RefCell::new(selected),
                unindexed: RefCell::new(unindexed),
                log_seq: std::cell::Cell::new(applied_at_start),
                applied,
                chain: std::cell::Cell::new(chain_at_start),
                chain_since,
                votes: RefCell::new(BTreeMap::new()),
                checkpoints,
                diverged: RefCell::new(None),
                foreground,
            }
            .run(rx);
            let _ = done_tx.send(());
        })
        .map_err(|e| Error::Unavailable(format!("cannot start store writer: {e}")))?;
    Ok(WriterHandle {
        tx: Mutex::new(Some(tx)),
        thread: Mutex::new(Some(thread)),
        done: Mutex::new(Some(done_rx)),
    })
}

pub(super) struct Writer {
    /// The data directory, where the seal is written after each flush.
    dir: std::path::PathBuf,
    /// The audit sequence number the seal records.
    sealed: std::cell::Cell<u64>,
    db: sled::Db,
    tree: sled::Tree,
    options: StoreOptions,
    /// What readers see (published after the flush).
    counters: Arc<Counters>,
    /// Registered enterprises as the writer's batches count them (ahead of `counters`
    /// until the group is flushed).
    enterprises: AtomicU64,
    scoring: SharedScoring,
    /// (seq, digest) of the last audit event applied (writer-private).
    audit_head: Mutex<(u64, String)>,
    revocations: Revocations,
    /// Shared-memory effects of the group's applied jobs, published after its flush.
    effects: RefCell<Vec<Effect>>,
    fault: Arc<FaultSignal>,
    /// Keys written while a backup runs.
    tracker: Arc<super::backup::Tracker>,
    /// The watchers of new alerts (told after the flush).
    hub: AlertHub,
    /// The last alert sequence number committed (writer-private).
    alert_head: std::cell::Cell<u64>,
    /// Enterprises that have (or may have) selections (writer-private, see [`Selected`]).
    selected: RefCell<Selected>,
    /// Drawn plans whose selections' `K` entries are not all written yet, by plan id
    /// (writer-private; see `store::stats`): written a chunk at a time between jobs.
    unindexed: RefCell<Unindexed>,
    /// The highest log sequence applied in this group (replicated mode).
    log_seq: std::cell::Cell<u64>,
    /// The highest log sequence applied and durable, for readers waiting on it.
    applied: Arc<tokio::sync::watch::Sender<u64>>,
    /// The chain of the logged batches' digests up to the last one applied ([`log::chain`]).
    chain: std::cell::Cell<[u8; 32]>,
    /// The sequence after which this replica's chain began (see `log::LOG_CHAIN`).
    chain_since: u64,
    /// The recent checkpoints: this replica's chain before each, and its peers' (by node).
    votes: RefCell<BTreeMap<u64, Votes>>,
    /// Checkpoints this replica asks to append.
    checkpoints: Arc<CheckpointSignal>,
    /// Set when this replica finds it diverged from its peers: it fails closed after the
    /// group.
    diverged: RefCell<Option<String>>,
    /// Foreground work under way: idle indexing waits for it.
    foreground: Arc<Foreground>,
}

/// One checkpoint: this replica's chain before it, and each peer's.
struct Votes {
    mine: [u8; 32],
    peers: BTreeMap<String, [u8; 32]>,
}

/// Checkpoints whose votes are kept (older ones are forgotten).
const KEPT_CHECKPOINTS: usize = 64;

/// The counter (`S` key) set, with the reason, when this replica finds it diverged from
/// its peers: it then refuses to start replicated.
pub(super) const DIVERGED: &str = "diverged";

/// Replicated mode: the checkpoint a replica's writer asks to append next (the sequence,
/// the sequence its chain began after, and its chain before it).
pub type CheckpointSignal = tokio::sync::watch::Sender<Option<(u64, u64, [u8; 32])>>;

/// What a committed job leaves: memory effects to publish after the flush, the plans it
/// drew (their selections to index) and, for a logged job, the chain after it.
type Committed = (Vec<Effect>, Vec<stats::PlanSelections>, Option<[u8; 32]>);

/// Drawn plans whose selections are not all indexed, by plan id.
type Unindexed = BTreeMap<u64, stats::PlanSelections>;

/// Enterprises that have (or may have) selections — a draw selected them — so the many
/// enterprises no draw ever selected cost no selection read when their dossier
/// changes. Read from the `K` keys by a thread started with the writer (after years of
/// draws, millions of keys: seconds the first write must not wait for); until it is
/// read every enterprise may have selections. Added to by draws; a superset, since a
/// failed job's additions stay.
enum Selected {
    Loading {
        rx: std::sync::mpsc::Receiver<Result<std::collections::HashSet<Uscc>>>,
        /// Added by draws since the start (the thread's scan may have passed them).
        added: std::collections::HashSet<Uscc>,
        /// The reading thread, stopped and joined when this is dropped (held for that).
        _reader: SelectionsReader,
    },
    Ready(std::collections::HashSet<Uscc>),
}

/// The thread reading the `K` keys. It holds a handle of the tree, which keeps sled's
/// directory lock: dropping this (the writer ends, or the set is read) stops the scan
/// within 4,096 keys and waits for the thread, so a store closed while it was still
/// reading (after years of draws: seconds) can be reopened at once — `credit-risk
/// compact` reopens what it has just closed.
struct SelectionsReader {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for SelectionsReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Selected {
    /// Starts reading the `K` keys of `tree` on a thread of its own; if that fails it
    /// signals `fault` at once (the writer then fails closed at its next job).
    fn load(tree: &sled::Tree, fault: Option<Arc<FaultSignal>>) -> Selected {
        let (tx, rx) = std::sync::mpsc::channel();
        let tree = tree.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("store-selections".into())
            .spawn(move || {
                let t = std::time::Instant::now();
                let r = match stats::selected_enterprises(&tree, &stopped) {
                    // Stopped: no one is waiting for it.
                    Ok(None) => return,
                    Ok(Some(set)) => Ok(set),
                    Err(e) => Err(Error::Corrupt(format!(
                        "cannot read the selections index: {e}"
                    ))),
                };
                if let Ok(s) = &r {
                    tracing::info!(
                        enterprises = s.len(),
                        ms = t.elapsed().as_millis() as u64,
                        "selections index read"
                    );
                }
                // The writer's next job finds the error before anyone sees the fault.
                let failed = r.as_ref().err().map(|e| e.to_string());
                let _ = tx.send(r);
                if let (Some(e), Some(fault)) = (failed, &fault) {
                    fault.send_replace(Some(e));
                }
            });
        let thread = match spawned {
            Ok(t) => Some(t),
            Err(e) => {
                // Never read: every enterprise may have selections (correct, slower).
                tracing::warn!(error = %e, "cannot start the selections reader");
                None
            }
        };
        Selected::Loading {
            rx,
            added: std::collections::HashSet::new(),
            _reader: SelectionsReader { stop, thread },
        }
    }

    /// Takes the thread's set once it is read (an error reading it is the writer's).
    fn poll(&mut self) -> Result<()> {
        if let Selected::Loading { rx, added, .. } = self {
            match rx.try_recv() {
                Ok(Ok(mut set)) => {
                    set.extend(added.drain());
                    *self = Selected::Ready(set);
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// Whether `u` may have selections.
    fn may_have(&self, u: &Uscc) -> bool {
        match self {
            Selected::Loading { .. } => true,
            Selected::Ready(set) => set.contains(u),
        }
    }

    fn add(&mut self, us: impl IntoIterator<Item = Uscc>) {
        match self {
            Selected::Loading { added, .. } => added.extend(us),
            Selected::Ready(set) => set.extend(us),
        }
    }
}

/// The counter (`S` key) holding the last log sequence applied, written in the batch of
/// each entry applied (replicated mode): a restarted replica resumes after it.
pub(super) const LOG_SEQUENCE: &str = "log_sequence";

/// Fails the writer closed: signals the fault (the server turns NOT_SERVING and exits),
/// stops taking jobs and answers every job still queued UNAVAILABLE.
/// Loads the views of the pending dry runs deferred at open and makes them live.
fn install_deferred(
    tree: &sled::Tree,
    options: &StoreOptions,
    scoring: &SharedScoring,
    deferred: Vec<super::DeferredRun>,
) -> std::result::Result<(), String> {
    if deferred.is_empty() {
        return Ok(());
    }
    let t = std::time::Instant::now();
    let ids: Vec<u64> = deferred.iter().map(|(r, _)| r.id).collect();
    let views = sc::load_views(tree, &options.rules, deferred)
        .map_err(|e| format!("cannot load the pending dry runs {ids:?}: {e}"))?;
    let mut st = sc::write(scoring).map_err(|e| e.to_string())?;
    for v in views {
        let family = v.model.family.clone();
        st.family_mut(&family).candidate = Some(Arc::new(v));
    }
    tracing::info!(
        runs = ?ids,
        ms = t.elapsed().as_millis() as u64,
        "pending dry runs loaded; writes proceed"
    );
    Ok(())
}

fn fail_closed(
    fault: &FaultSignal,
    mut rx: mpsc::Receiver<Box<dyn Queued>>,
    backlog: impl IntoIterator<Item = Box<dyn Queued>>,
    msg: &str,
) {
    tracing::error!(error = %msg, "store writer failed; refusing every further write");
    fault.send_replace(Some(msg.to_string()));
    rx.close();
    let refuse = |j: Box<dyn Queued>| {
        j.refuse(format!(
            "store writer failed ({msg}); the server is restarting"
        ))
    };
    backlog.into_iter().for_each(refuse);
    while let Some(j) = rx.blocking_recv() {
        refuse(j);
    }
}

impl Writer {
    /// The writer loop: takes up to `max_group` queued jobs, applies each as one atomic
    /// batch, flushes once, publishes the memory effects, answers. It ends when every
    /// sender is dropped and the queue is drained, or — failing closed — at the first
    /// panic or failed flush: then every job not yet durable is answered UNAVAILABLE and
    /// the fault is signalled.
    fn run(self, mut rx: mpsc::Receiver<Box<dyn Queued>>) {
        let mut backlog: VecDeque<Box<dyn Queued>> = VecDeque::new();
        let mut failed: Option<String> = None;
        loop {
            if backlog.is_empty() {
                if self.unindexed.borrow().is_empty() || self.options.index_chunk == 0 {
                    match rx.blocking_recv() {
                        Some(j) => backlog.push_back(j),
                        None => break,
                    }
                } else {
                    // Idle with selections to index: a chunk of them, then look again.
                    match rx.try_recv() {
                        Ok(j) => backlog.push_back(j),
                        Err(mpsc::error::TryRecvError::Empty) => {
                            if self.foreground.active() {
                                // A draw is computing: leave it the cores, look again
                                // shortly (a job arriving meanwhile waits at most this).
                                std::thread::sleep(std::time::Duration::from_millis(2));
                                continue;
                            }
                            if let Err(e) = self.index_step() {
                                failed = Some(e.to_string());
                                break;
                            }
                            continue;
                        }
                        Err(mpsc::error::TryRecvError::Disconnected) => break,
                    }
                }
            }
            while backlog.len() < self.options.max_group.max(1) {
                match rx.try_recv() {
                    Ok(j) => backlog.push_back(j),
                    Err(_) => break,
                }
            }
            if let Err(e) = self.selected.borrow_mut().poll() {
                failed = Some(e.to_string());
                break;
            }
            let mut group: Vec<Deliver> = Vec::new();
            let r = catch_unwind(AssertUnwindSafe(|| self.group(&mut backlog, &mut group)));
            let r = match r {
                Ok(Ok(())) => catch_unwind(AssertUnwindSafe(|| self.publish()))
                    .unwrap_or_else(|p| Err(Error::Unavailable(crate::error::panic_message(&*p)))),
                Ok(Err(e)) => Err(e),
                Err(p) => Err(Error::Unavailable(format!(
                    "writer panicked: {}",
                    crate::error::panic_message(&*p)
                ))),
            };
            match r {
                Ok(()) => {
                    // Readers waiting for a sequence see it before its writer's caller
                    // gets the answer (which names it).
                    let seq = self.log_seq.get();
                    self.applied
                        .send_if_modified(|a| std::mem::replace(a, seq) != seq);
                    group.into_iter().for_each(|deliver| deliver(None));
                    if let Some(msg) = self.diverged.borrow_mut().take() {
                        failed = Some(msg);
                        break;
                    }
                    // Under load, a chunk of selections to index after each group (so
                    // they are written however busy the writer is).
                    if let Err(e) = self.index_step() {
                        failed = Some(e.to_string());
                        break;
                    }
                }
                Err(e) => {
                    let e = e.to_string();
                    group.into_iter().for_each(|deliver| deliver(Some(&e)));
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(msg) = failed {
            fail_closed(&self.fault, rx, backlog, &msg);
        }
        if let Err(e) = self.db.flush() {
            tracing::error!(error = %e, "final flush failed");
        }
    }

    /// Applies jobs of `backlog` (up to `max_group`, ending early after a job whose
    /// effects later jobs must see), then flushes.
    fn group(
        &self,
        backlog: &mut VecDeque<Box<dyn Queued>>,
        group: &mut Vec<Deliver>,
    ) -> Result<()> {
        while group.len() < self.options.max_group.max(1) {
            let Some(job) = backlog.pop_front() else {
                break;
            };
            let before = self.effects.borrow().len();
            group.push(job.run(self));
            let barrier = self.effects.borrow()[before..]
                .iter()
                .any(Effect::is_barrier);
            if barrier {
                break;
            }
        }
        crate::fault::point("writer.after_apply");
        self.db.flush()?;
        crate::fault::point("writer.after_flush");
        self.seal()
    }

    /// Notes this replica's chain before log entry `seq` and asks for it to be appended
    /// as its checkpoint.
    fn checkpoint(&self, seq: u64) {
        let mine = self.chain.get();
        let mut votes = self.votes.borrow_mut();
        votes.entry(seq).or_insert(Votes {
            mine,
            peers: BTreeMap::new(),
        });
        while votes.len() > KEPT_CHECKPOINTS {
            votes.pop_first();
        }
        self.checkpoints
            .send_replace(Some((seq, self.chain_since, mine)));
    }

    /// A peer's checkpoint, compared with this replica's chain at the same point. This
    /// replica has diverged when it disagrees with two peers that agree with each
    /// other and no peer agrees with it: it records so (the `S diverged` key, in this
    /// job's batch) and fails closed after the group. A single disagreeing peer is
    /// logged (the one that diverged stops itself, by the same rule).
    fn vote(&self, p: &mut Pending, cp: log::Checkpoint) -> Result<()> {
        if cp.node == self.options.replica_node {
            return Ok(());
        }
        if cp.since != self.chain_since {
            // Chains begun at different sequences (replicas first opened by a build with
            // chains at different points): not comparable.
            tracing::debug!(peer = %cp.node, since = cp.since, mine = self.chain_since, "checkpoint not comparable");
            return Ok(());
        }
        let mut votes = self.votes.borrow_mut();
        // Before this replica's start, or forgotten: nothing to compare with.
        let Some(v) = votes.get_mut(&cp.at) else {
            return Ok(());
        };
        v.peers.insert(cp.node.clone(), cp.chain);
        if cp.chain == v.mine {
            return Ok(());
        }
        if let log::Verdict::Diverged(theirs) = log::verdict(&v.mine, &v.peers) {
            let msg = format!(
                "replica {:?} diverged from its peers at log sequence {}: {} agree on what the log wrote before it, this replica does not; rebuild it from a peer's backup (docs/DEPLOY.md)",
                self.options.replica_node,
                cp.at,
                theirs.join(", ")
            );
            tracing::error!(at = cp.at, "{msg}");
            p.put(keys::counter(DIVERGED), msg.clone().into_bytes());
            *self.diverged.borrow_mut() = Some(msg);
        } else {
            tracing::error!(
                peer = %cp.node,
                at = cp.at,
                "replica {:?} disagrees with this one on what the log wrote before sequence {} (a replica that two agreeing peers disagree with stops)",
                cp.node,
                cp.at
            );
        }
        Ok(())
    }

    /// Writes the next chunk of `K` entries of the oldest drawn plan whose selections are
    /// not all indexed, with its marker's new position (or its removal, with the last
    /// chunk) in one batch. Made durable by the next flush; a crash before it leaves the
    /// marker where it was, and the open resumes from there.
    fn index_step(&self) -> Result<()> {
        let chunk = self.options.index_chunk;
        let mut unindexed = self.unindexed.borrow_mut();
        if chunk == 0 {
            return Ok(());
        }
        let Some(mut entry) = unindexed.first_entry() else {
            return Ok(());
        };
        let p = entry.get_mut();
        let end = p.next.saturating_add(chunk).min(p.entries.len());
        let mut batch = sled::Batch::default();
        let mut noted = Vec::new();
        let backup = self.tracker.active();
        for (k, v) in p.entries_between(p.next, end) {
            if backup {
                noted.push(k.clone());
            }
            batch.insert(k, v);
        }
        let marker = stats::unindexed_key(p.plan_id);
        if end >= p.entries.len() {
            batch.remove(marker.as_slice());
        } else {
            batch.insert(marker.as_slice(), &(end as u64).to_be_bytes()[..]);
        }
        if backup {
            noted.push(marker);
            self.tracker.note(noted)?;
        }
        crate::fault::point("writer.index_step");
        self.tree.apply_batch(batch)?;
        p.next = end;
        if p.indexed() {
            let plan = entry.remove();
            tracing::info!(
                plan = plan.plan_id,
                selections = plan.entries.len(),
                "selections indexed"
            );
        }
        Ok(())
    }

    /// Records the last durable audit event in the seal, if it moved (after a flush).
    fn seal(&self) -> Result<()> {
        let (seq, digest) = self
            .audit_head
            .lock()
            .map_err(|_| Error::Unavailable("audit head poisoned".into()))?
            .clone();
        if seq != self.sealed.get() {
            let seal = super::seal::Seal {
                audit_seq: seq,
                audit_digest: digest,
            };
            super::seal::write(&self.dir, &seal)?;
            self.sealed.set(seq);
        }
        Ok(())
    }

    /// Publishes the group's memory effects (it is durable).
    fn publish(&self) -> Result<()> {
        let effects = std::mem::take(&mut *self.effects.borrow_mut());
        for e in effects {
            match e {
                Effect::Spot(spot, row) => spot.upsert(row)?,
                Effect::SpotGone(spot, u) => spot.remove(u)?,
                Effect::Revocation(u, id, on) => self
                    .revocations
                    .write()
                    .map_err(|_| Error::Unavailable("revocations poisoned".into()))?
                    .entry(u)
                    .or_default()
                    .push((id, on)),
                Effect::Scoring(f) => f(&mut *sc::write(&self.scoring)?),
                Effect::Enterprises(n) => {
                    self.counters.enterprises.fetch_add(n, Ordering::AcqRel);
                }
                Effect::Alerts(a) => self.hub.publish(a),
            }
        }
        Ok(())
    }

    /// Applies one job as one atomic batch: a known request id gets its first answer
    /// (nothing written); otherwise the operation is applied to a fresh transaction, the
    /// enterprises it changed are re-scored, and the batch is committed.
    fn execute<O: Operation>(
        &self,
        submitted: Submitted<O>,
        render: Option<Render<O::Output>>,
        seq: Option<u64>,
    ) -> Result<Answer<O::Output>> {
        let Submitted {
            op,
            at,
            actor,
            request,
        } = submitted;
        if let Some(seq) = seq {
            // Applied, whatever the outcome: an entry that fails, fails alike on every
            // replica (and again if it is re-read after a restart).
            self.log_seq.set(self.log_seq.get().max(seq));
            let every = self.options.checkpoint_every;
            if every > 0 && seq % every == 0 {
                self.checkpoint(seq);
            }
        }
        let req_key = match &request {
            Some(r) => {
                if let Some(a) = recall(&self.tree, r)? {
                    return Ok(Answer::Replay(a));
                }
                Some((keys::request(&r.rpc, &r.id), r.fingerprint))
            }
            None => None,
        };
        let mut p = Pending::new(
            &self.tree,
            &self.revocations,
            &self.selected,
            &self.unindexed,
            &self.options.rules,
            at,
        );
        let alerting = O::ALERTS && self.options.alerts.enabled;
        if alerting && O::RESCORES {
            // The dossiers as they were, to tell what the operation added.
            p.before = Some(HashMap::new());
        }
        p.actor = actor;
        p.digest = seq.map(|s| {
            (
                s,
                self.chain_since,
                self.chain.get(),
                log::BatchDigest::default(),
            )
        });
        p.audited = O::AUDITED;
        p.cause = op.cause();
        let mut tx = Tx { w: self, p };
        let outcome = op.apply(&mut tx)?;
        let Tx { mut p, .. } = tx;
        // Listings the operation added or replaced get their terms before anything reads
        // them (re-scoring, the reply).
        p.apply_terms();
        if O::RESCORES {
            let cause = p.cause.clone();
            self.rescore(&mut p, &cause, at.now_ms, alerting)?;
            if alerting {
                self.detect_alerts(&mut p);
            }
        }
        // Scope is decided on the state the batch commits on, before the reply exists.
        p.check_scope()?;
        let subject = O::subject(&outcome);
        let reply = match render {
            Some(render) => Some(render(&outcome)?),
            None => None,
        };
        let binding = match (&reply, req_key) {
            // Replicated: every replica binds the id alike — to the run, or to the
            // entry's sequence until the reply's own entry (`BindReply`) follows.
            (_, Some(k)) if seq.is_some() => Some((
                k,
                O::binding(&outcome, &self.options)
                    .unwrap_or(Remembered::Applied(seq.unwrap_or_default())),
            )),
            (Some(b), Some(k)) => Some((k, Remembered::Reply(b.clone()))),
            (None, Some(k)) => match O::binding(&outcome, &self.options) {
                Some(r) => Some((k, r)),
                None => {
                    return Err(Error::Corrupt(
                        "a request id on a write without a renderer".into(),
                    ))
                }
            },
            (_, None) => None,
        };
        if let Some(seq) = seq {
            p.put(keys::counter(LOG_SEQUENCE), seq.to_be_bytes().to_vec());
        }
        self.commit(p, subject, binding)?;
        Ok(Answer::Fresh { outcome, reply })
    }

    /// Stores the idempotency record and the audit event with
    /// the job's batch, commits it, and queues the job's memory effects for publication
    /// after the group's flush.
    fn commit(&self, mut p: Pending, uscc: Option<Uscc>, binding: Option<Binding>) -> Result<()> {
        let mut head = self
            .audit_head
            .lock()
            .map_err(|_| Error::Unavailable("audit head poisoned".into()))?;
        let mut new_head = None;
        if self.options.audit && p.audited && p.changed() {
            let ch = p.change.take().unwrap_or_default();
            let target = if !ch.target.is_empty() {
                ch.target
            } else if let Some(u) = uscc {
                u.to_string()
            } else {
                p.cause.clone()
            };
            let mut e = AuditEvent {
                seq: head.0 + 1,
                at_ms: p.at.now_ms,
                principal: p.actor.principal.clone(),
                role: p.actor.role.clone(),
                rpc: p.actor.rpc.clone(),
                target,
                before: ch.before,
                after: if ch.after.is_empty() {
                    p.cause.clone()
                } else {
                    ch.after
                },
                reason: ch.reason,
                prev_digest: head.1.clone(),
                digest: String::new(),
            };
            e.digest = e.compute_digest(audit::CHAIN_FORMAT);
            if let Some(u) = ch.uscc.or(uscc) {
                p.put(audit::uscc_key(&u, e.seq), Vec::new());
            }
            p.put(audit::event_key(e.seq), codec::encode(&e)?);
            new_head = Some((e.seq, e.digest));
        }
        let alerts = self.raise_alerts(&mut p)?;
        if let Some(((k, fingerprint), answer)) = binding {
            let stored = StoredRequest {
                fingerprint,
                answer,
            };
            p.put(k, codec::encode(&stored)?);
        }
        crate::fault::point("writer.before_apply");
        let (effects, drawn, chain) = p.commit(&self.enterprises, &self.tracker)?;
        if let Some(c) = chain {
            self.chain.set(c);
        }
        // Applied: later jobs (of this group too) read the plans' selections from here.
        self.unindexed
            .borrow_mut()
            .extend(drawn.into_iter().map(|d| (d.plan_id, d)));
        if let Some(h) = new_head {
            *head = h;
        }
        drop(head);
        if let Some(last) = alerts {
            self.alert_head.set(last);
        }
        self.effects.borrow_mut().extend(effects);
        Ok(())
    }
}

/// Writes of one job: dossiers it loaded (changed ones are marked dirty), an overlay of
/// other pending keys (so later reads in the same job see them), and the sled batch that
/// applies them atomically.
struct Pending<'a> {
    /// When the job was submitted (the only clock a job reads).
    at: Stamp,
    tree: &'a sled::Tree,
    revocations: &'a Revocations,
    /// Enterprises that may have selections (a superset; see [`Selected`]).
    selected: &'a RefCell<Selected>,
    /// Drawn plans whose selections are not all indexed (see [`Writer::unindexed`]).
    unindexed: &'a RefCell<Unindexed>,
    /// The rules (listing terms of dossiers read and written).
    rules: &'a RuleBook,
    overlay: HashMap<Vec<u8>, Option<Vec<u8>>>,
    /// Whether the batch holds writes that are not in the overlay (`put_unread`).
    unread: bool,
    /// Their keys (noted for a running backup).
    unread_keys: Vec<Vec<u8>>,
    docs: HashMap<Uscc, Option<EnterpriseRecords>>,
    dirty: BTreeSet<Uscc>,
    batch: sled::Batch,
    /// Enterprises this job registers.
    created: u64,
    /// Shared-memory changes to publish once the batch is durable.
    effects: Vec<Effect>,
    /// Every dossier the job loaded, with its region then (for the scope check).
    loaded_regions: Vec<(Uscc, Option<crate::domain::RegionCode>)>,
    /// Who asks, and what the change is, for the audit event.
    actor: Actor,
    /// Whether the change is an audit event ([`Operation::AUDITED`]).
    audited: bool,
    cause: String,
    change: Option<Change>,
    /// A job that describes its change as a whole (an import chunk: one audit event for
    /// its records), so its records' own descriptions are not built.
    bulk: bool,
    /// Enterprises known to have no dossier in the store (an import chunk's range, found
    /// empty by one range read): their loads skip the read.
    absent: Option<(Uscc, Uscc)>,
    /// The dossiers as first loaded, when the job's changes raise alerts.
    before: Option<HashMap<Uscc, Option<EnterpriseRecords>>>,
    /// Alerts the job raises, numbered at commit.
    drafts: Vec<AlertDraft>,
    /// The statistics contribution of each enterprise whose dossier or selections the
    /// job changes, as it was before.
    stats_before: BTreeMap<Uscc, stats::Contribution>,
    /// Enterprises whose selections the job changes without changing their dossier,
    /// with the dossier as read.
    stats_touched: BTreeMap<Uscc, Option<EnterpriseRecords>>,
    /// Plans the job draws: their selections (read back by its own contributions), to
    /// be indexed after the job (their `k` markers are in the batch).
    drawn: Vec<stats::PlanSelections>,
    /// A logged job (replicated mode): its sequence, the sequence its chain began after,
    /// the chain before it, and the digest of its writes so far.
    digest: Option<(u64, u64, [u8; 32], log::BatchDigest)>,
    /// Counter changes the operation made itself (plans drawn, match volume).
    stats_delta: HashMap<Counter, i64>,
}

/// What an audit event says about a change (defaults: the target from the outcome, the
/// cause as `after`).
#[derive(Clone, Debug, Default)]
struct Change {
    target: String,
    uscc: Option<Uscc>,
    before: String,
    after: String,
    reason: String,
}

impl<'a> Pending<'a> {
    fn new(
        tree: &'a sled::Tree,
        revocations: &'a Revocations,
        selected: &'a RefCell<Selected>,
        unindexed: &'a RefCell<Unindexed>,
        rules: &'a RuleBook,
        at: Stamp,
    ) -> Self {
        Pending {
            at,
            tree,
            revocations,
            selected,
            unindexed,
            rules,
            overlay: HashMap::new(),
            unread: false,
            unread_keys: Vec::new(),
            docs: HashMap::new(),
            dirty: BTreeSet::new(),
            batch: sled::Batch::default(),
            created: 0,
            effects: Vec::new(),
            loaded_regions: Vec::new(),
            actor: Actor::default(),
            audited: true,
            cause: String::new(),
            change: None,
            bulk: false,
            absent: None,
            before: None,
            drafts: Vec::new(),
            stats_before: BTreeMap::new(),
            stats_touched: BTreeMap::new(),
            drawn: Vec::new(),
            digest: None,
            stats_delta: HashMap::new(),
        }
    }

    /// The selections of `u` as this job sees them (none read for an enterprise no draw
    /// ever selected).
    fn selections_of(&self, u: &Uscc) -> Result<Vec<Selection>> {
        if !self.selected.borrow().may_have(u) {
            return Ok(Vec::new());
        }
        let mut out = stats::selections(self.tree, u)?;
        out.extend(
            self.unindexed
                .borrow()
                .values()
                .chain(&self.drawn)
                .filter_map(|p| p.pending(u)),
        );
        Ok(out)
    }

    /// The statistics contribution of `u` with dossier `d`, as this job sees it.
    fn contribution(&self, u: &Uscc, d: Option<&EnterpriseRecords>) -> Result<stats::Contribution> {
        if d.is_none_or(|d| d.enterprise.is_none()) {
            return Ok(stats::Contribution::default());
        }
        Ok(stats::contribution(u, d, &self.selections_of(u)?))
    }

    /// Notes `u`'s contribution before its selections change (its dossier unchanged).
    fn touch_stats(&mut self, u: &Uscc) -> Result<()> {
        if self.stats_before.contains_key(u) {
            return Ok(());
        }
        let d = match self.docs.get(u) {
            Some(d) => d.clone(),
            None => read_dossier(self.tree, self.rules, u)?,
        };
        let before = self.contribution(u, d.as_ref())?;
        self.stats_before.insert(*u, before);
        self.stats_touched.insert(*u, d);
        Ok(())
    }

    /// Records a plan's selections in this batch: its `k` marker (its `K` entries are
    /// written after the job, see `store::stats`); the job's later reads see them.
    fn put_selections(&mut self, drawn: stats::PlanSelections) {
        if drawn.entries.is_empty() {
            return;
        }
        self.selected
            .borrow_mut()
            .add(drawn.entries.iter().map(|(u, _)| *u));
        self.put(
            stats::unindexed_key(drawn.plan_id),
            0u64.to_be_bytes().to_vec(),
        );
        self.drawn.push(drawn);
    }

    /// Adds `n` to a statistics counter, in this batch.
    fn count(&mut self, c: Counter, n: i64) {
        *self.stats_delta.entry(c).or_insert(0) += n;
    }

    /// Writes the batch's statistics: the operation's own counter changes, and for every
    /// enterprise whose dossier or selections changed its contribution now less the one
    /// before (counters by difference, index entries replaced).
    fn write_counters(&mut self) -> Result<()> {
        let mut delta = std::mem::take(&mut self.stats_delta);
        let before = std::mem::take(&mut self.stats_before);
        let touched = std::mem::take(&mut self.stats_touched);
        for (u, old) in before {
            // A changed dossier as the job leaves it, else the one read when touched.
            let d = if self.dirty.contains(&u) {
                self.docs.get(&u).and_then(|d| d.as_ref())
            } else {
                touched.get(&u).and_then(|d| d.as_ref())
            };
            let new = self.contribution(&u, d)?;
            for c in old.counters {
                *delta.entry(c).or_insert(0) -= 1;
            }
            for c in new.counters {
                *delta.entry(c).or_insert(0) += 1;
            }
            let kept: HashMap<&Vec<u8>, &Vec<u8>> = new.index.iter().map(|(k, v)| (k, v)).collect();
            for (k, _) in &old.index {
                if !kept.contains_key(k) {
                    self.del(k.clone());
                }
            }
            let was: HashMap<&Vec<u8>, &Vec<u8>> = old.index.iter().map(|(k, v)| (k, v)).collect();
            for (k, v) in &new.index {
                if was.get(k) != Some(&v) {
                    self.put(k.clone(), v.clone());
                }
            }
        }
        for (c, n) in delta.into_iter().filter(|(_, n)| *n != 0) {
            let k = super::stats::counter_key(&c);
            let now = match self.get(&k)? {
                Some(v) => super::stats::decode_value(&v)?,
                None => 0,
            };
            let next = now.checked_add_signed(n).ok_or_else(|| {
                Error::Corrupt(format!("statistics counter {c} would go from {now} by {n}"))
            })?;
            if next == 0 {
                self.del(k);
            } else {
                self.put(k, next.to_be_bytes().to_vec());
            }
        }
        Ok(())
    }

    /// Derives the listing terms of every dossier the job changed.
    fn apply_terms(&mut self) {
        for u in &self.dirty {
            if let Some(Some(d)) = self.docs.get_mut(u) {
                d.listings
                    .iter_mut()
                    .for_each(|l| self.rules.apply_terms(l));
            }
        }
    }

    /// Whether the job changes anything.
    fn changed(&self) -> bool {
        !self.overlay.is_empty() || !self.dirty.is_empty() || self.unread
    }

    fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.overlay.get(k) {
            return Ok(v.clone());
        }
        Ok(self.tree.get(k)?.map(|v| v.to_vec()))
    }

    fn put(&mut self, k: Vec<u8>, v: Vec<u8>) {
        self.note_write(&k, Some(&v));
        self.batch.insert(k.as_slice(), v.as_slice());
        self.overlay.insert(k, Some(v));
    }

    /// Adds a write to the digest of a logged job's batch.
    fn note_write(&mut self, k: &[u8], v: Option<&[u8]>) {
        if let Some((_, _, _, d)) = self.digest.as_mut() {
            d.write(k, v);
        }
    }

    /// A write this job never reads back (bulk payloads such as a plan's frozen
    /// population): batch only, without the overlay's second copy.
    fn put_unread(&mut self, k: &[u8], v: &[u8]) {
        self.note_write(k, Some(v));
        self.batch.insert(k, v);
        self.unread = true;
        self.unread_keys.push(k.to_vec());
    }

    fn del(&mut self, k: Vec<u8>) {
        self.note_write(&k, None);
        self.batch.remove(k.as_slice());
        self.overlay.insert(k, None);
    }

    /// Describes the job's change for its audit event (not built in a bulk job).
    fn describe(&mut self, change: impl FnOnce() -> Change) {
        if !self.bulk {
            self.change = Some(change());
        }
    }

    /// Notes whether any dossier exists between `lo` and `hi` (one range read): when
    /// none does — an import of new enterprises — loads in that range skip their reads.
    fn note_absent_between(&mut self, lo: &Uscc, hi: &Uscc) -> Result<()> {
        let range = keys::enterprise(lo)..=keys::enterprise(hi);
        self.absent = match self.tree.range(range).next() {
            None => Some((*lo, *hi)),
            Some(kv) => {
                kv?;
                None
            }
        };
        Ok(())
    }

    fn load(&mut self, u: &Uscc) -> Result<()> {
        if !self.docs.contains_key(u) {
            let known_absent = self.absent.is_some_and(|(lo, hi)| lo <= *u && *u <= hi);
            let mut d = if known_absent {
                None
            } else {
                read_dossier(self.tree, self.rules, u)?
            };
            if let Some(d) = d.as_mut() {
                repair::attach(self.revocations, u, d)?;
            }
            if let Some(before) = self.before.as_mut() {
                before.insert(*u, d.clone());
            }
            if !self.actor.regions.is_empty() {
                // Only a scoped job's loads are checked (`check_scope`).
                let region = d
                    .as_ref()
                    .and_then(|d| d.enterprise.as_ref())
                    .map(|e| e.region);
                self.loaded_regions.push((*u, region));
            }
            self.docs.insert(*u, d);
        }
        Ok(())
    }

    /// PERMISSION_DENIED naming `field` unless the actor's token covers region `r`.
    fn check_region(&self, field: &str, r: &crate::domain::RegionCode) -> Result<()> {
        let scope = &self.actor.regions;
        if scope.is_empty() || scope.iter().any(|p| r.as_str().starts_with(p.as_str())) {
            return Ok(());
        }
        Err(Error::PermissionDenied(format!(
            "{field}: region {} is outside the token's regions {scope:?}",
            r.as_str()
        )))
    }

    /// PERMISSION_DENIED if the actor's token is scoped to regions and the job read or
    /// changed an enterprise outside them — as it was when loaded, or as the job leaves
    /// it (a move out of the district is refused too). Decided here, on the state the
    /// batch commits on, so a concurrent move cannot slip past a handler's pre-read.
    fn check_scope(&self) -> Result<()> {
        let scope = &self.actor.regions;
        if scope.is_empty() {
            return Ok(());
        }
        for (u, before) in &self.loaded_regions {
            let after = self
                .docs
                .get(u)
                .and_then(|d| d.as_ref())
                .and_then(|d| d.enterprise.as_ref())
                .map(|e| e.region);
            for r in before.iter().chain(after.iter()) {
                self.check_region(&format!("enterprise {u}"), r)?;
            }
        }
        Ok(())
    }

    /// The dossier of `u` as this job sees it.
    fn doc(&mut self, u: &Uscc) -> Result<Option<&EnterpriseRecords>> {
        self.load(u)?;
        Ok(self.docs.get(u).and_then(|d| d.as_ref()))
    }

    /// The dossier of `u` for changing; it is written back at commit.
    fn doc_mut(&mut self, u: &Uscc) -> Result<&mut Option<EnterpriseRecords>> {
        self.load(u)?;
        if self.dirty.insert(*u) && !self.stats_before.contains_key(u) {
            let d = self.docs.get(u).and_then(|d| d.as_ref());
            let before = self.contribution(u, d)?;
            self.stats_before.insert(*u, before);
        }
        self.docs
            .get_mut(u)
            .ok_or_else(|| Error::Corrupt("dossier cache".into()))
    }

    /// The registered dossier of `u`, for changing; NOT_FOUND names `field`.
    /// The dossier of a registered enterprise, for reading (NOT_FOUND naming `field`
    /// otherwise): checking a write against it leaves the dossier unchanged, so a write
    /// that turns out to change nothing writes nothing (no re-score, no audit event).
    fn registered(&mut self, u: &Uscc, field: &str) -> Result<&EnterpriseRecords> {
        match self.doc(u)? {
            Some(d) if d.enterprise.is_some() => Ok(d),
            _ => Err(Error::NotFound(format!("{field}: enterprise {u}"))),
        }
    }

    fn registered_mut(&mut self, u: &Uscc, field: &str) -> Result<&mut EnterpriseRecords> {
        match self.doc_mut(u)? {
            Some(d) if d.enterprise.is_some() => Ok(d),
            _ => Err(Error::NotFound(format!("{field}: enterprise {u}"))),
        }
    }

    /// A change of the shared run state, published after the flush.
    fn scoring(&mut self, f: impl FnOnce(&mut ScoringState) + Send + 'static) {
        self.effects.push(Effect::Scoring(Box::new(f)));
    }

    /// Applies the batch (atomically) and returns the memory effects to publish once it
    /// is durable, and the plans it drew (their selections to index). `enterprises` is
    /// the writer's running count of registered ones.
    fn commit(
        mut self,
        enterprises: &AtomicU64,
        tracker: &super::backup::Tracker,
    ) -> Result<Committed> {
        // The contributions after the job read its draws' selections.
        self.write_counters()?;
        let dirty = std::mem::take(&mut self.dirty);
        for u in &dirty {
            if let Some(Some(d)) = self.docs.get(u) {
                let k = keys::enterprise(u);
                let v = codec::encode_dossier(d)?;
                self.note_write(&k[..], Some(&v));
                self.batch.insert(&k[..], v.as_slice());
            }
        }
        self.dirty = dirty;
        if self.created > 0 {
            let n = enterprises.load(Ordering::Acquire) + self.created;
            let k = keys::counter("enterprises");
            self.note_write(&k, Some(&n.to_be_bytes()));
            self.batch.insert(k.as_slice(), &n.to_be_bytes()[..]);
        }
        // A logged batch: the chain moves on by its digest (written outside it).
        let chain = self.digest.take().map(|(seq, since, prev, d)| {
            let c = log::chain(&prev, seq, &d.finish());
            let v = [&since.to_be_bytes()[..], &c[..]].concat();
            self.batch
                .insert(keys::counter(log::LOG_CHAIN).as_slice(), v.as_slice());
            self.overlay.insert(keys::counter(log::LOG_CHAIN), Some(v));
            c
        });
        if tracker.active() {
            // A backup runs: its catch-up re-reads every key this batch writes.
            let dossiers = self.dirty.iter().map(|u| keys::enterprise(u).to_vec());
            let mut noted: Vec<Vec<u8>> = self.overlay.keys().cloned().chain(dossiers).collect();
            noted.extend(std::mem::take(&mut self.unread_keys));
            if self.created > 0 {
                noted.push(keys::counter("enterprises"));
            }
            tracker.note(noted)?;
        }
        if !self.overlay.is_empty() || !self.dirty.is_empty() || self.unread {
            self.tree.apply_batch(self.batch)?;
        }
        if self.created > 0 {
            enterprises.fetch_add(self.created, Ordering::AcqRel);
            self.effects.push(Effect::Enterprises(self.created));
        }
        Ok((self.effects, self.drawn, chain))
    }
}

/// Counters the writer maintains and readers may read.
#[derive(Debug, Default)]
pub struct Counters {
    /// Registered enterprises.
    pub enterprises: AtomicU64,
    /// Enterprises scanned so far by the batch run being computed (metrics).
    pub batch_processed: AtomicU64,
    /// Enterprises the batch run being computed will scan (metrics).
    pub batch_total: AtomicU64,
}

/// What a record operation reads besides the store: the options, the date and time.
struct Ctx<'o> {
    today: Date,
    now_ms: i64,
    options: &'o StoreOptions,
}

/// `(output, changed)`: changed is false when the record was already stored as is.
type Applied<T> = (T, bool);

/// Reads the dossier of `u` (its USCC and listing terms restored).
pub(super) fn read_dossier(
    tree: &sled::Tree,
    rules: &RuleBook,
    u: &Uscc,
) -> Result<Option<EnterpriseRecords>> {
    match tree.get(keys::enterprise(u))? {
        Some(v) => {
            let mut d = codec::decode_dossier(&v)?;
            rules.restore(*u, &mut d);
            Ok(Some(d))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selected_enterprises_are_read_beside_the_writer_and_keep_what_draws_added() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("registry").unwrap();
        let u = |n: u8| {
            Uscc::assemble(
                b"91310115",
                &[b'2', b'0', b'0', b'0', b'0', b'0', b'0', b'0' + n],
            )
            .unwrap()
        };
        tree.insert(
            stats::selection_key(&u(1), "SC-1", 1),
            stats::selection_value(
                crate::domain::RiskClass::B,
                crate::domain::stats::Month(202610),
            ),
        )
        .unwrap();
        let mut s = Selected::load(&tree, None);
        // Until read, anyone may have selections.
        assert!(s.may_have(&u(3)));
        s.add([u(2)]);
        let t = std::time::Instant::now();
        while matches!(s, Selected::Loading { .. }) {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "never read"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
            s.poll().unwrap();
        }
        assert!(s.may_have(&u(1)), "from the K keys");
        assert!(s.may_have(&u(2)), "added while reading");
        assert!(!s.may_have(&u(3)), "never selected");
        s.add([u(3)]);
        assert!(s.may_have(&u(3)));
    }

    /// A store closed while its selections are still being read must not stay locked:
    /// dropping the set stops the reading thread and waits for it, so the tree handle
    /// it holds (and with it sled's directory lock) is gone when the writer has ended.
    #[test]
    fn a_selections_read_is_stopped_and_joined_when_the_writer_ends() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("registry").unwrap();
        let mut batch = sled::Batch::default();
        for n in 0..200_000u32 {
            let mut body = [0u8; 8];
            body.copy_from_slice(format!("{n:08}").as_bytes());
            let u = Uscc::assemble(b"91310115", &body).unwrap();
            batch.insert(
                stats::selection_key(&u, "SC-1", u64::from(n)),
                stats::selection_value(
                    crate::domain::RiskClass::B,
                    crate::domain::stats::Month(202610),
                ),
            );
        }
        tree.apply_batch(batch).unwrap();
        let s = Selected::load(&tree, None);
        let Selected::Loading {
            _reader: reader, ..
        } = &s
        else {
            panic!("not loading")
        };
        let stop = reader.stop.clone();
        drop(s);
        // The thread's clone of the flag (and its tree handle) went with the thread.
        assert_eq!(
            Arc::strong_count(&stop),
            1,
            "the reader outlived the writer"
        );
    }
}
