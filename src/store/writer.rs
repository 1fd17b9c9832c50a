//! The single writer thread: serialises writes, applies each job as one atomic sled
//! batch, and flushes once per group of queued jobs before acknowledging them
//! (group commit). Reads a job makes before writing cannot race another writer.

use std::{
    cell::RefCell,
    collections::{BTreeSet, HashMap, VecDeque},
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::{
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
    StoreOptions,
};
use crate::{
    domain::{
        repair::{
            Objection, ObjectionState, ObjectionStep, RepairAction, RepairCase, RepairStep,
            RepairTarget,
        },
        scoring::assess,
        spotcheck::Inspector,
        AnnualReport, Date, Enterprise, EnterpriseRecords, EnterpriseStatus, InspectionResult,
        ListKind, Listing, Model, Penalty, Uscc,
    },
    error::{Error, Result},
};

/// One record of an import, already parsed.
#[derive(Clone, Debug)]
pub enum ImportItem {
    Enterprise(Enterprise),
    Penalty(Penalty),
    Report(AnnualReport),
    Listing(Listing),
    Inspection(InspectionResult),
}

/// A write the store performs atomically.
#[derive(Clone, Debug)]
pub enum WriteOp {
    UpsertEnterprise(Enterprise),
    RecordPenalty(Penalty),
    FileAnnualReport(AnnualReport),
    AddListing(Listing),
    RecordInspection(InspectionResult),
    /// A chunk of an import: (index in the stream, record); each record is stored or
    /// refused on its own, the stored ones in one batch.
    Import(Vec<(u64, ImportItem)>),
    /// One chunk of the annual-report sweep: `limit` directory entries after the
    /// directory key `after`.
    SweepChunk {
        year: u16,
        as_of: Date,
        after: Option<Vec<u8>>,
        limit: usize,
    },
    /// Stores only the idempotency record of a request whose effects were committed by
    /// earlier jobs (the sweep).
    Remember(Outcome),
    /// Registers a model version (refused if the version exists with other content);
    /// `activate_if_none` makes it active when no model is.
    RegisterModel {
        model: Arc<Model>,
        activate_if_none: bool,
    },
    /// Starts a scoring run (refused while another is being computed).
    BeginRun {
        model: Arc<Model>,
        as_of: Date,
        dry_run: bool,
        requested_by: String,
    },
    /// Completes the run being computed, whose blocks are written: re-scores what
    /// changed meanwhile, then makes it current (or the candidate, for a dry run).
    FinishRun(Box<RunView>),
    /// Marks the run being computed aborted and drops its results.
    AbortRun {
        id: u64,
        error: String,
    },
    /// Makes the candidate (a complete dry run) current and its model active.
    ActivateRun {
        id: u64,
        by: String,
        reason: String,
    },
    /// Stores a draw plan with its frozen populations (one per stratum), under a new id.
    SavePlan {
        plan: Box<DrawPlan>,
        populations: Vec<Vec<Uscc>>,
    },
    /// Stores the receipt of a plan's one draw (refused if it was drawn).
    RecordDraw {
        plan_id: u64,
        receipt: Box<DrawReceipt>,
    },
    /// Creates or replaces an inspector of the directory.
    UpsertInspector(Box<Inspector>),
    /// Starts noting written keys for a backup (FAILED_PRECONDITION if one runs).
    BackupBegin,
    /// Ends a backup's noting: reads the current value of every key written since
    /// `BackupBegin` (the catch-up; no write interleaves: this is the writer).
    BackupCatchUp,
    /// Stops noting after a failed backup.
    BackupAbort,
    /// Files a repair case (eligibility checked here, against the dossier).
    SubmitRepair(Box<RepairCase>),
    /// Files an objection to a record (the record is marked disputed while open).
    FileObjection(Box<Objection>),
    /// Resolves an objection: upheld, or corrected with the correction applied.
    ResolveObjection {
        id: u64,
        correction: Option<Box<Correction>>,
        by: String,
        reason: String,
    },
    /// An operator's step on a case; approval and revocation change the record.
    DecideRepairCase {
        id: u64,
        action: RepairAction,
        by: String,
        reason: String,
        /// Due date of the next step (for an acceptance).
        decide_due: Option<Date>,
    },
    /// Stores a drawn plan's inspector teams (refused if assigned already).
    RecordAssignment {
        plan_id: u64,
        assignment: Box<Assignment>,
    },
}

/// A refused import record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRejection {
    pub index: u64,
    pub kind: &'static str,
    pub key: String,
    pub error: String,
    pub code: &'static str,
}

/// Result of one import chunk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    pub stored: u64,
    pub unchanged: u64,
    pub rejections: Vec<ImportRejection>,
}

/// Counts of one sweep chunk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepCounts {
    pub examined: u64,
    pub listed_abnormal: u64,
    pub marked_abnormal_status: u64,
    pub moved_serious: u64,
    pub already_listed: u64,
    /// Directory key of the last entry of the chunk (the cursor for the next chunk);
    /// `None` when done.
    pub last: Option<Vec<u8>>,
}

/// What a write produced. It is handed to the job's renderer and to internal callers;
/// it is never stored (a retry gets the rendered reply, see [`Remembered`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Enterprise {
        enterprise: Enterprise,
        created: bool,
    },
    Penalty(Penalty),
    Report(AnnualReport),
    Listing(Listing),
    Inspection(InspectionResult),
    Sweep(SweepCounts),
    Import(ImportOutcome),
    Run(Box<ScoringRun>),
    Plan(Box<DrawPlan>),
    Inspector(Box<Inspector>),
    Repair(Box<RepairCase>),
    Objection(Box<Objection>),
    Backup(super::backup::BackupSummary),
    /// A backup's noting started.
    BackupStarted,
    /// A backup's catch-up: each key written since it began, with its value now.
    BackupCatchUp(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    ModelRegistered {
        version: String,
        created: bool,
    },
}

impl Outcome {
    /// The enterprise the outcome is about, if one (the audit event's target).
    fn uscc(&self) -> Option<Uscc> {
        match self {
            Outcome::Enterprise { enterprise, .. } => Some(enterprise.uscc),
            Outcome::Penalty(p) => Some(p.uscc),
            Outcome::Report(r) => Some(r.uscc),
            Outcome::Listing(l) => Some(l.uscc),
            Outcome::Inspection(i) => Some(i.uscc),
            Outcome::Repair(c) => Some(c.uscc),
            Outcome::Objection(o) => Some(o.uscc),
            Outcome::Sweep(_)
            | Outcome::Import(_)
            | Outcome::Run(_)
            | Outcome::Plan(_)
            | Outcome::Inspector(_)
            | Outcome::Backup(_)
            | Outcome::BackupStarted
            | Outcome::BackupCatchUp(_)
            | Outcome::ModelRegistered { .. } => None,
        }
    }
}

/// Renders a fresh outcome into the encoded reply message. It runs on the writer,
/// before the commit, so the reply stored with a request id is exactly the one the first
/// caller gets, and a failing renderer leaves nothing written.
pub type Render = Box<dyn FnOnce(&Outcome) -> Result<Vec<u8>> + Send>;

/// What a retry with a known request id gets: the first answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Remembered {
    /// The encoded reply message of a unary RPC, byte for byte.
    Reply(Vec<u8>),
    /// The scoring run a `RunBatchScoring` request began (bound when it began).
    Run(u64),
}

/// The writer's answer to a job.
#[derive(Debug)]
pub enum Answer {
    /// The job was applied: its outcome, and the reply its renderer made.
    Fresh {
        outcome: Outcome,
        reply: Option<Vec<u8>>,
    },
    /// A retry: the first request's answer; nothing was written.
    Replay(Remembered),
}

impl Answer {
    /// The outcome of a fresh job; a replay is refused (internal writes carry no id).
    pub fn outcome(self) -> Result<Outcome> {
        match self {
            Answer::Fresh { outcome, .. } => Ok(outcome),
            Answer::Replay(_) => Err(Error::Corrupt(
                "an internal write was answered from a request id".into(),
            )),
        }
    }

    /// The encoded reply: the rendered one, or the remembered one.
    pub fn reply(self) -> Result<Vec<u8>> {
        match self {
            Answer::Fresh { reply: Some(b), .. } | Answer::Replay(Remembered::Reply(b)) => Ok(b),
            Answer::Fresh { reply: None, .. } => {
                Err(Error::Corrupt("a write without a renderer".into()))
            }
            Answer::Replay(Remembered::Run(id)) => Err(Error::Corrupt(format!(
                "request id bound to scoring run {id}, not to a reply"
            ))),
        }
    }
}

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
    /// A revoked repair approval (a false commitment) now attached to dossiers.
    Revocation(Uscc, u64, Date),
    /// A change of runs or models.
    Scoring(Box<dyn FnOnce(&mut ScoringState) + Send>),
    /// Newly registered enterprises (the count readers see).
    Enterprises(u64),
}

impl Effect {
    /// Whether later jobs must see this effect: the writer publishes it before it runs
    /// another job (it ends the group).
    fn is_barrier(&self) -> bool {
        matches!(self, Effect::Scoring(_) | Effect::Revocation(..))
    }
}

struct Job {
    op: WriteOp,
    request: Option<RequestKey>,
    render: Option<Render>,
    actor: Actor,
    reply: oneshot::Sender<Result<Answer>>,
}

/// The idempotency key of a mutating request (SPEC §4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestKey {
    /// RPC name; ids are scoped per RPC.
    pub rpc: &'static str,
    /// The client's request id.
    pub id: String,
    /// SHA-256 of the whole request, to refuse an id reused for another request.
    pub fingerprint: [u8; 32],
}

/// A queued write: await it for the answer, given once durable.
pub struct Ticket(oneshot::Receiver<Result<Answer>>);

impl std::future::Future for Ticket {
    type Output = Result<Answer>;

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
    let Some(v) = tree.get(keys::request(r.rpc, &r.id))? else {
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
    tx: Mutex<Option<mpsc::Sender<Box<Job>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Signalled by the writer thread as it ends.
    done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl WriterHandle {
    pub(super) async fn enqueue(
        &self,
        op: WriteOp,
        request: Option<RequestKey>,
        render: Option<Render>,
        actor: Actor,
    ) -> Result<Ticket> {
        let tx = self
            .tx
            .lock()
            .map_err(|_| Error::Unavailable("store writer poisoned".into()))?
            .clone()
            .ok_or_else(|| Error::Unavailable("store is closing".into()))?;
        let (reply, rx) = oneshot::channel();
        tx.send(Box::new(Job {
            op,
            request,
            render,
            actor,
            reply,
        }))
        .await
        .map_err(|_| Error::Unavailable("store writer stopped".into()))?;
        Ok(Ticket(rx))
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
pub(super) struct Parts {
    pub db: sled::Db,
    pub tree: sled::Tree,
    pub options: StoreOptions,
    pub counters: Arc<Counters>,
    pub scoring: SharedScoring,
    pub revocations: Revocations,
    pub fault: Arc<FaultSignal>,
    pub tracker: Arc<super::backup::Tracker>,
}

pub(super) fn spawn(parts: Parts) -> Result<WriterHandle> {
    let Parts {
        db,
        tree,
        options,
        counters,
        scoring,
        revocations,
        fault,
        tracker,
    } = parts;
    let head = audit::head(&tree)?;
    let (tx, rx) = mpsc::channel(options.queue_depth.max(1));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let enterprises = AtomicU64::new(counters.enterprises.load(Ordering::Acquire));
    let thread = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || {
            Writer {
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

struct Writer {
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
}

/// A finished job's reply channel and answer, sent once its group is durable.
type Answered = (oneshot::Sender<Result<Answer>>, Result<Answer>);

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

impl Writer {
    /// The writer loop: takes up to `max_group` queued jobs, applies each as one atomic
    /// batch, flushes once, publishes the memory effects, answers. It ends when every
    /// sender is dropped and the queue is drained, or — failing closed — at the first
    /// panic or failed flush: then every job not yet durable is answered UNAVAILABLE and
    /// the fault is signalled.
    fn run(self, mut rx: mpsc::Receiver<Box<Job>>) {
        let mut backlog: VecDeque<Box<Job>> = VecDeque::new();
        let mut failed: Option<String> = None;
        loop {
            if backlog.is_empty() {
                match rx.blocking_recv() {
                    Some(j) => backlog.push_back(j),
                    None => break,
                }
            }
            while backlog.len() < self.options.max_group.max(1) {
                match rx.try_recv() {
                    Ok(j) => backlog.push_back(j),
                    Err(_) => break,
                }
            }
            let mut group: Vec<Answered> = Vec::new();
            let r = catch_unwind(AssertUnwindSafe(|| self.group(&mut backlog, &mut group)));
            let r = match r {
                Ok(Ok(())) => catch_unwind(AssertUnwindSafe(|| self.publish()))
                    .unwrap_or_else(|p| Err(Error::Unavailable(panic_message(&*p)))),
                Ok(Err(e)) => Err(e),
                Err(p) => Err(Error::Unavailable(format!(
                    "writer panicked: {}",
                    panic_message(&*p)
                ))),
            };
            match r {
                Ok(()) => {
                    for (tx, a) in group {
                        let _ = tx.send(a);
                    }
                }
                Err(e) => {
                    failed = Some(e.to_string());
                    for (tx, _) in group {
                        let _ = tx.send(Err(Error::Unavailable(format!(
                            "store failed before this write was durable: {e}"
                        ))));
                    }
                    break;
                }
            }
        }
        if let Some(msg) = failed {
            tracing::error!(error = %msg, "store writer failed; refusing every further write");
            self.fault.send_replace(Some(msg.clone()));
            rx.close();
            let refuse = |j: Box<Job>| {
                let _ = j.reply.send(Err(Error::Unavailable(format!(
                    "store writer failed ({msg}); the server is restarting"
                ))));
            };
            backlog.into_iter().for_each(refuse);
            while let Some(j) = rx.blocking_recv() {
                refuse(j);
            }
        }
        if let Err(e) = self.db.flush() {
            tracing::error!(error = %e, "final flush failed");
        }
    }

    /// Applies jobs of `backlog` (up to `max_group`, ending early after a job whose
    /// effects later jobs must see), then flushes.
    fn group(&self, backlog: &mut VecDeque<Box<Job>>, group: &mut Vec<Answered>) -> Result<()> {
        while group.len() < self.options.max_group.max(1) {
            let Some(mut job) = backlog.pop_front() else {
                break;
            };
            let before = self.effects.borrow().len();
            let a = self.execute(&mut job);
            let barrier = self.effects.borrow()[before..]
                .iter()
                .any(Effect::is_barrier);
            group.push((job.reply, a));
            if barrier {
                break;
            }
        }
        crate::fault::point("writer.after_apply");
        self.db.flush()?;
        crate::fault::point("writer.after_flush");
        Ok(())
    }

    /// Publishes the group's memory effects (it is durable).
    fn publish(&self) -> Result<()> {
        let effects = std::mem::take(&mut *self.effects.borrow_mut());
        for e in effects {
            match e {
                Effect::Spot(spot, row) => spot.upsert(row)?,
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
            }
        }
        Ok(())
    }

    fn execute(&self, job: &mut Job) -> Result<Answer> {
        let mut p = Pending::new(&self.tree, &self.revocations);
        p.actor = std::mem::take(&mut job.actor);
        p.render = job.render.take();
        let req_key = match &job.request {
            Some(r) => {
                if let Some(a) = recall(&self.tree, r)? {
                    return Ok(Answer::Replay(a));
                }
                Some((keys::request(r.rpc, &r.id), r.fingerprint))
            }
            None => None,
        };
        let op = std::mem::replace(&mut job.op, WriteOp::Import(Vec::new()));
        let cause = cause_of(&op);
        p.cause = cause.clone();
        let ctx = Ctx {
            today: Date::today(),
            now_ms: now_ms(),
            options: &self.options,
        };
        let outcome = match op {
            WriteOp::UpsertEnterprise(e) => ctx.upsert_enterprise(&mut p, e)?.0,
            WriteOp::RecordPenalty(x) => ctx.record_penalty(&mut p, x)?.0,
            WriteOp::FileAnnualReport(x) => ctx.file_report(&mut p, x)?.0,
            WriteOp::AddListing(x) => ctx.add_listing(&mut p, x)?.0,
            WriteOp::RecordInspection(x) => ctx.record_inspection(&mut p, x)?.0,
            WriteOp::Import(items) => {
                let o = ctx.import(&mut p, items);
                p.change = Some(Change {
                    target: "import".into(),
                    after: format!(
                        "ImportRecords chunk: stored {}, unchanged {}, refused {}",
                        o.stored,
                        o.unchanged,
                        o.rejections.len()
                    ),
                    ..Change::default()
                });
                Outcome::Import(o)
            }
            WriteOp::SweepChunk {
                year,
                as_of,
                after,
                limit,
            } => Outcome::Sweep(ctx.sweep_chunk(&mut p, year, as_of, after.as_deref(), limit)?),
            WriteOp::Remember(o) => o,
            WriteOp::RegisterModel {
                model,
                activate_if_none,
            } => self.register_model(&mut p, model, activate_if_none)?,
            WriteOp::BeginRun {
                model,
                as_of,
                dry_run,
                requested_by,
            } => self.begin_run(&mut p, model, as_of, dry_run, requested_by, ctx.now_ms)?,
            WriteOp::FinishRun(view) => {
                let (outcome, view) = self.finish_run(&mut p, *view, ctx.now_ms)?;
                p.scoring(move |st| {
                    st.building = None;
                    if view.run.dry_run {
                        st.candidate = Some(view);
                    } else {
                        st.active_model = Some(view.model.clone());
                        st.current = Some(view);
                        st.candidate = None;
                    }
                });
                return self.commit_then(p, req_key, outcome);
            }
            WriteOp::SavePlan {
                mut plan,
                populations,
            } => {
                let id = sc::get_counter(&self.tree, "next_plan")?.unwrap_or(1);
                p.put(keys::counter("next_plan"), (id + 1).to_be_bytes().to_vec());
                plan.id = id;
                plan.created_at_ms = ctx.now_ms;
                for (i, pop) in populations.into_iter().enumerate() {
                    for (k, v) in draws::encode_population(id, i as u8, &pop) {
                        p.put_unread(&k, &v);
                    }
                }
                p.put(draws::plan_key(id), codec::encode(&*plan)?);
                Outcome::Plan(plan)
            }
            WriteOp::RecordDraw {
                plan_id,
                mut receipt,
            } => {
                let mut plan = match p.get(&draws::plan_key(plan_id))? {
                    Some(v) => codec::decode::<DrawPlan>(&v)?,
                    None => return Err(Error::NotFound(format!("plan_id: plan {plan_id}"))),
                };
                if let Some(r) = &plan.receipt {
                    return Err(Error::FailedPrecondition(format!(
                        "plan_id: plan {plan_id} was already drawn (seed {:?}); a top-up is a new plan with a fresh seed",
                        r.seed
                    )));
                }
                receipt.drawn_at_ms = ctx.now_ms;
                plan.receipt = Some(*receipt);
                p.put(draws::plan_key(plan_id), codec::encode(&plan)?);
                Outcome::Plan(Box::new(plan))
            }
            WriteOp::UpsertInspector(mut x) => {
                x.validate()?;
                p.check_region("inspector.home_region_code", &x.home_region)?;
                let key = draws::inspector_key(&x.id);
                if let Some(v) = p.get(&key)? {
                    let old: Inspector = codec::decode(&v)?;
                    // A district manages only its own inspectors (also when moving one).
                    p.check_region("inspector.id", &old.home_region)?;
                    x.recorded_at_ms = old.recorded_at_ms;
                    if old == *x {
                        return self.commit_then(p, req_key, Outcome::Inspector(x));
                    }
                }
                x.recorded_at_ms = ctx.now_ms;
                p.put(key, codec::encode(&*x)?);
                Outcome::Inspector(x)
            }
            WriteOp::RecordAssignment {
                plan_id,
                mut assignment,
            } => {
                let mut plan = match p.get(&draws::plan_key(plan_id))? {
                    Some(v) => codec::decode::<DrawPlan>(&v)?,
                    None => return Err(Error::NotFound(format!("plan_id: plan {plan_id}"))),
                };
                if plan.assignment.is_some() {
                    return Err(Error::FailedPrecondition(format!(
                        "plan_id: plan {plan_id} already has its inspector teams"
                    )));
                }
                assignment.assigned_at_ms = ctx.now_ms;
                plan.assignment = Some(*assignment);
                p.put(draws::plan_key(plan_id), codec::encode(&plan)?);
                Outcome::Plan(Box::new(plan))
            }
            WriteOp::SubmitRepair(c) => Outcome::Repair(Box::new(ctx.submit_repair(&mut p, *c)?)),
            WriteOp::BackupBegin => {
                self.tracker.begin()?;
                Outcome::BackupStarted
            }
            WriteOp::BackupCatchUp => {
                let keys = self.tracker.finish()?;
                let mut items = Vec::with_capacity(keys.len());
                for k in keys {
                    let v = self.tree.get(&k)?.map(|v| v.to_vec());
                    items.push((k, v));
                }
                Outcome::BackupCatchUp(items)
            }
            WriteOp::BackupAbort => {
                self.tracker.finish()?;
                Outcome::BackupStarted
            }
            WriteOp::FileObjection(o) => {
                Outcome::Objection(Box::new(ctx.file_objection(&mut p, *o)?))
            }
            WriteOp::ResolveObjection {
                id,
                correction,
                by,
                reason,
            } => Outcome::Objection(Box::new(ctx.resolve_objection(
                &mut p,
                id,
                correction.map(|c| *c),
                by,
                reason,
            )?)),
            WriteOp::DecideRepairCase {
                id,
                action,
                by,
                reason,
                decide_due,
            } => Outcome::Repair(Box::new(
                ctx.decide_repair(&mut p, id, action, by, reason, decide_due)?,
            )),
            WriteOp::AbortRun { id, error } => {
                let outcome = self.abort_run(&mut p, id, error, ctx.now_ms)?;
                p.scoring(move |st| {
                    if st.building.as_ref().is_some_and(|b| b.id == id) {
                        st.building = None;
                    }
                });
                return self.commit_then(p, req_key, outcome);
            }
            WriteOp::ActivateRun { id, by, reason } => {
                let (outcome, view) = self.activate_run(&mut p, id, by, reason, ctx.now_ms)?;
                p.scoring(move |st| {
                    st.active_model = Some(view.model.clone());
                    st.current = Some(view);
                    st.candidate = None;
                });
                return self.commit_then(p, req_key, outcome);
            }
        };
        self.rescore(&mut p, &cause, ctx.now_ms)?;
        self.commit_then(p, req_key, outcome)
    }

    /// Renders the reply, stores the idempotency record and the audit event with the
    /// job's batch, commits it, and queues the job's memory effects for publication
    /// after the group's flush.
    fn commit_then(
        &self,
        mut p: Pending,
        req_key: Option<(Vec<u8>, [u8; 32])>,
        outcome: Outcome,
    ) -> Result<Answer> {
        p.check_scope()?;
        let reply = match p.render.take() {
            Some(render) => Some(render(&outcome)?),
            None => None,
        };
        let mut head = self
            .audit_head
            .lock()
            .map_err(|_| Error::Unavailable("audit head poisoned".into()))?;
        let mut new_head = None;
        if self.options.audit && p.changed() {
            let ch = p.change.take().unwrap_or_default();
            let uscc = outcome.uscc();
            let target = if !ch.target.is_empty() {
                ch.target
            } else if let Some(u) = uscc {
                u.to_string()
            } else {
                p.cause.clone()
            };
            let mut e = AuditEvent {
                seq: head.0 + 1,
                at_ms: now_ms(),
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
        if let Some((k, fingerprint)) = req_key {
            let answer = match (&reply, &outcome) {
                (Some(b), _) => Remembered::Reply(b.clone()),
                (None, Outcome::Run(run)) => Remembered::Run(run.id),
                (None, _) => {
                    return Err(Error::Corrupt(
                        "a request id on a write without a renderer".into(),
                    ))
                }
            };
            let stored = StoredRequest {
                fingerprint,
                answer,
            };
            p.put(k, codec::encode(&stored)?);
        }
        crate::fault::point("writer.before_apply");
        let effects = p.commit(&self.enterprises, &self.tracker)?;
        if let Some(h) = new_head {
            *head = h;
        }
        drop(head);
        self.effects.borrow_mut().extend(effects);
        Ok(Answer::Fresh { outcome, reply })
    }

    /// Re-scores every enterprise the job changed onto every live run (current,
    /// candidate, being computed), in the job's own batch, recording the cause.
    fn rescore(&self, p: &mut Pending, cause: &str, now_ms: i64) -> Result<()> {
        if p.dirty.is_empty() {
            return Ok(());
        }
        let st = sc::read(&self.scoring)?;
        /// (run, model, run as-of, relation sources if known, spot index and rescored
        /// set if complete)
        type Target<'s> = (
            u64,
            &'s Model,
            Date,
            Option<&'s HashMap<u64, u32>>,
            Option<(&'s Arc<SpotIndex>, &'s sc::Rescored)>,
        );
        let mut targets: Vec<Target> = Vec::new();
        for v in st.current.iter().chain(st.candidate.iter()) {
            targets.push((
                v.run.id,
                &v.model,
                v.run.as_of,
                Some(&v.sources),
                Some((&v.spot, &*v.rescored)),
            ));
        }
        if let Some(b) = &st.building {
            // Relations and the spot index are resolved when the run finishes.
            targets.push((b.id, &b.model, b.as_of, None, None));
        }
        if targets.is_empty() {
            return Ok(());
        }
        let today = Date::today();
        let mut puts = Vec::new();
        for u in &p.dirty {
            let Some(Some(d)) = p.docs.get(u) else {
                continue;
            };
            for (id, model, run_as_of, sources, spot) in &targets {
                let o = rescore_one(d, model, (*run_as_of).max(today), *sources, cause, now_ms);
                if let Some((spot, rescored)) = spot {
                    // Marked before the commit: a reader may then look for an override
                    // that is not there yet (and fall back to the run's entry), but never
                    // skip one that is.
                    rescored.mark(*u);
                    if let Some(row) = sc::spot_row(*u, d, o.class, o.score) {
                        p.effects.push(Effect::Spot(Arc::clone(spot), row));
                    }
                }
                puts.push((sc::override_key(*id, u), codec::encode(&o)?));
            }
        }
        drop(st);
        for (k, v) in puts {
            p.put(k, v);
        }
        Ok(())
    }

    fn register_model(
        &self,
        p: &mut Pending,
        model: Arc<Model>,
        activate_if_none: bool,
    ) -> Result<Outcome> {
        let key = sc::model_key(&model.version);
        let created = match p.get(&key)? {
            Some(v) if v.get(1..) == Some(model.source.as_bytes()) => false,
            Some(_) => {
                return Err(Error::AlreadyExists(format!(
                    "model version {:?} is registered with different content; give the new model a new version",
                    model.version
                )))
            }
            None => {
                p.put(key, sc::model_value(&model));
                true
            }
        };
        let activate = activate_if_none && sc::read(&self.scoring)?.active_model.is_none();
        if activate {
            p.put(
                keys::counter("active_model"),
                model.version.as_bytes().to_vec(),
            );
        }
        let m = model.clone();
        p.scoring(move |st| {
            if activate {
                st.active_model = Some(m.clone());
            }
            st.models.insert(m.version.clone(), m);
        });
        Ok(Outcome::ModelRegistered {
            version: model.version.clone(),
            created,
        })
    }

    fn begin_run(
        &self,
        p: &mut Pending,
        model: Arc<Model>,
        as_of: Date,
        dry_run: bool,
        requested_by: String,
        now_ms: i64,
    ) -> Result<Outcome> {
        let st = sc::read(&self.scoring)?;
        if let Some(b) = &st.building {
            return Err(Error::FailedPrecondition(format!(
                "scoring run {} is still being computed; wait for it or let it fail",
                b.id
            )));
        }
        if !st.models.contains_key(&model.version) {
            return Err(Error::NotFound(format!(
                "model: version {:?}",
                model.version
            )));
        }
        let id = sc::get_counter(&self.tree, "next_run")?.unwrap_or(1);
        p.put(keys::counter("next_run"), (id + 1).to_be_bytes().to_vec());
        let run = ScoringRun {
            id,
            model_version: model.version.clone(),
            as_of,
            state: RunState::Running,
            dry_run,
            requested_by,
            started_at_ms: now_ms,
            finished_at_ms: None,
            enterprises: 0,
            classes: [0; 4],
            regions: Vec::new(),
            related: 0,
            transitions: None,
            activated_at_ms: None,
            activated_by: String::new(),
            activation_reason: String::new(),
            error: String::new(),
        };
        p.put(sc::run_key(id), codec::encode(&run)?);
        drop(st);
        // The run is live for re-scoring once durable (the writer publishes this before
        // it runs another job).
        p.scoring(move |st| st.building = Some(Building { id, model, as_of }));
        Ok(Outcome::Run(Box::new(run)))
    }

    fn finish_run(
        &self,
        p: &mut Pending,
        mut view: RunView,
        now_ms: i64,
    ) -> Result<(Outcome, Arc<RunView>)> {
        let id = view.run.id;
        let building = sc::read(&self.scoring)?.building.clone();
        if building.as_ref().map(|b| b.id) != Some(id) {
            return Err(Error::FailedPrecondition(format!(
                "scoring run {id} is not being computed"
            )));
        }
        // Enterprises written while the run was computed were re-scored onto it without
        // relations; now the relation sources are known.
        let today = Date::today();
        let as_of = view.run.as_of.max(today);
        let mut changed = Vec::new();
        for kv in self.tree.scan_prefix(sc::overrides_prefix(id)) {
            let (k, _) = kv?;
            let u = Uscc::from_bytes(&k[9..])?;
            view.rescored.mark(u);
            changed.push(u);
        }
        for u in changed {
            let Some(d) = p.doc(&u)?.cloned() else {
                continue;
            };
            let mut o = rescore_one(&d, &view.model, as_of, Some(&view.sources), "", now_ms);
            if let Some(row) = sc::spot_row(u, &d, o.class, o.score) {
                view.spot.upsert(row)?;
            }
            if let Some(old) = self.tree.get(sc::override_key(id, &u))? {
                let old: Override = codec::decode(&old)?;
                o.cause = old.cause;
                o.at_ms = old.at_ms;
            }
            p.put(sc::override_key(id, &u), codec::encode(&o)?);
        }
        view.run.state = RunState::Complete;
        view.run.finished_at_ms = Some(now_ms);
        if !view.run.dry_run {
            view.run.activated_at_ms = Some(now_ms);
            view.run.activated_by = view.run.requested_by.clone();
            view.run.activation_reason = "batch run (not a dry run)".into();
            p.put(keys::counter("current_run"), id.to_be_bytes().to_vec());
            p.put(
                keys::counter("active_model"),
                view.model.version.as_bytes().to_vec(),
            );
        }
        p.put(sc::run_key(id), codec::encode(&view.run)?);
        self.retire_old_runs(p, id)?;
        let outcome = Outcome::Run(Box::new(view.run.clone()));
        Ok((outcome, Arc::new(view)))
    }

    /// Deletes complete and aborted runs beyond the newest `keep_runs`, never the
    /// current run, the candidate or `keep`.
    fn retire_old_runs(&self, p: &mut Pending, keep: u64) -> Result<()> {
        let st = sc::read(&self.scoring)?;
        let protected: Vec<u64> = st
            .current
            .iter()
            .chain(st.candidate.iter())
            .map(|v| v.run.id)
            .chain([keep])
            .collect();
        drop(st);
        let runs = sc::list_runs(&self.tree)?;
        let keep_n = self.options.keep_runs.max(1);
        let mut kept = 0;
        for r in &runs {
            if r.state == RunState::Retired {
                continue;
            }
            kept += 1;
            if kept <= keep_n || protected.contains(&r.id) || r.state == RunState::Running {
                continue;
            }
            // Results go; the run's record stays (receipts and history name it).
            for prefix in [sc::blocks_prefix(r.id), sc::overrides_prefix(r.id)] {
                for kv in self.tree.scan_prefix(prefix) {
                    let (k, _) = kv?;
                    p.del(k.to_vec());
                }
            }
            p.del(sc::sources_key(r.id));
            let mut r = r.clone();
            r.state = RunState::Retired;
            p.put(sc::run_key(r.id), codec::encode(&r)?);
        }
        Ok(())
    }

    fn abort_run(&self, p: &mut Pending, id: u64, error: String, now_ms: i64) -> Result<Outcome> {
        let mut run = sc::load_run(&self.tree, id)?
            .ok_or_else(|| Error::NotFound(format!("scoring run {id}")))?;
        run.state = RunState::Aborted;
        run.error = error;
        run.finished_at_ms = Some(now_ms);
        for prefix in [sc::blocks_prefix(id), sc::overrides_prefix(id)] {
            for kv in self.tree.scan_prefix(prefix) {
                let (k, _) = kv?;
                p.del(k.to_vec());
            }
        }
        p.del(sc::sources_key(id));
        p.put(sc::run_key(id), codec::encode(&run)?);
        Ok(Outcome::Run(Box::new(run)))
    }

    fn activate_run(
        &self,
        p: &mut Pending,
        id: u64,
        by: String,
        reason: String,
        now_ms: i64,
    ) -> Result<(Outcome, Arc<RunView>)> {
        let st = sc::read(&self.scoring)?;
        if st.current.as_ref().is_some_and(|v| v.run.id == id) {
            return Err(Error::FailedPrecondition(format!(
                "scoring run {id} is already current"
            )));
        }
        let Some(candidate) = st.candidate.clone().filter(|v| v.run.id == id) else {
            if sc::load_run(&self.tree, id)?.is_none() {
                return Err(Error::NotFound(format!("run_id: scoring run {id}")));
            }
            return Err(Error::FailedPrecondition(format!(
                "scoring run {id} is not the pending dry run; only the latest complete dry run can be activated"
            )));
        };
        drop(st);
        let mut run = candidate.run.clone();
        run.activated_at_ms = Some(now_ms);
        run.activated_by = by;
        run.activation_reason = reason;
        p.put(sc::run_key(id), codec::encode(&run)?);
        p.put(keys::counter("current_run"), id.to_be_bytes().to_vec());
        p.put(
            keys::counter("active_model"),
            run.model_version.as_bytes().to_vec(),
        );
        let view = Arc::new(RunView {
            run: run.clone(),
            model: candidate.model.clone(),
            entries: candidate.entries.clone(),
            sources: candidate.sources.clone(),
            spot: candidate.spot.clone(),
            rescored: candidate.rescored.clone(),
        });
        Ok((Outcome::Run(Box::new(run)), view))
    }
}

/// Scores one dossier for an override on a run.
fn rescore_one(
    d: &EnterpriseRecords,
    model: &Model,
    as_of: Date,
    sources: Option<&HashMap<u64, u32>>,
    cause: &str,
    now_ms: i64,
) -> Override {
    let base = assess(d, false, model, as_of, |_| {});
    let related = sources.is_some_and(|s| sc::related(s, sc::rep_key(d), base.relation_source));
    let a = if related {
        assess(d, true, model, as_of, |_| {})
    } else {
        base
    };
    let e = RunEntry::new(Uscc::placeholder(), &a, related);
    Override {
        class: e.class,
        score: e.score.into(),
        flags: e.flags,
        as_of,
        cause: cause.to_string(),
        at_ms: now_ms,
    }
}

/// What a write op changes, for the re-score record.
fn cause_of(op: &WriteOp) -> String {
    match op {
        WriteOp::UpsertEnterprise(_) => "UpsertEnterprise".into(),
        WriteOp::RecordPenalty(x) => format!("RecordPenalty penalty/{}", x.decision_number),
        WriteOp::FileAnnualReport(x) => format!("FileAnnualReport annual_report/{}", x.year),
        WriteOp::AddListing(x) => format!("AddListing listing/{}", x.listing_id()),
        WriteOp::RecordInspection(x) => {
            format!("RecordInspectionResult inspection/{}", x.task_id)
        }
        WriteOp::Import(_) => "ImportRecords".into(),
        WriteOp::SweepChunk { year, .. } => format!("SweepAnnualReports {year}"),
        WriteOp::RegisterModel { model, .. } => format!("model/{} registered", model.version),
        WriteOp::BeginRun {
            model,
            as_of,
            dry_run,
            ..
        } => format!(
            "scoring run begun: model {} as of {as_of}{}",
            model.version,
            if *dry_run { " (dry run)" } else { "" }
        ),
        WriteOp::FinishRun(v) => format!(
            "run/{} complete: {} enterprises, classes {:?}",
            v.run.id, v.run.enterprises, v.run.classes
        ),
        WriteOp::AbortRun { id, error } => format!("run/{id} aborted: {error}"),
        WriteOp::ActivateRun { id, reason, .. } => format!("run/{id} activated: {reason}"),
        WriteOp::SavePlan { plan, .. } => format!(
            "draw plan for task {:?} on run {}",
            plan.task_id, plan.run_id
        ),
        WriteOp::RecordDraw { plan_id, receipt } => {
            format!("plan/{plan_id} drawn with seed {:?}", receipt.seed)
        }
        WriteOp::UpsertInspector(x) => format!("inspector/{} active={}", x.id, x.active),
        WriteOp::RecordAssignment {
            plan_id,
            assignment,
        } => format!(
            "plan/{plan_id} inspector teams of {} assigned",
            assignment.team_size
        ),
        WriteOp::Remember(_)
        | WriteOp::BackupBegin
        | WriteOp::BackupCatchUp
        | WriteOp::BackupAbort => String::new(),
        WriteOp::SubmitRepair(c) => format!("SubmitRepair {}", c.target.id()),
        WriteOp::FileObjection(o) => format!("FileObjection {}", o.record),
        WriteOp::ResolveObjection { id, correction, .. } => format!(
            "objection/{id} {}",
            if correction.is_some() {
                "corrected"
            } else {
                "upheld"
            }
        ),
        WriteOp::DecideRepairCase { id, action, .. } => {
            format!("repair_case/{id} {}", action.name())
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Writes of one job: dossiers it loaded (changed ones are marked dirty), an overlay of
/// other pending keys (so later reads in the same job see them), and the sled batch that
/// applies them atomically.
struct Pending<'a> {
    tree: &'a sled::Tree,
    revocations: &'a Revocations,
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
    /// Renders the reply (before the commit; it is stored with the request id).
    render: Option<Render>,
    /// Who asks, and what the change is, for the audit event.
    actor: Actor,
    cause: String,
    change: Option<Change>,
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
    fn new(tree: &'a sled::Tree, revocations: &'a Revocations) -> Self {
        Pending {
            tree,
            revocations,
            overlay: HashMap::new(),
            unread: false,
            unread_keys: Vec::new(),
            docs: HashMap::new(),
            dirty: BTreeSet::new(),
            batch: sled::Batch::default(),
            created: 0,
            effects: Vec::new(),
            loaded_regions: Vec::new(),
            render: None,
            actor: Actor::default(),
            cause: String::new(),
            change: None,
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
        self.batch.insert(k.as_slice(), v.as_slice());
        self.overlay.insert(k, Some(v));
    }

    /// A write this job never reads back (bulk payloads such as a plan's frozen
    /// population): batch only, without the overlay's second copy.
    fn put_unread(&mut self, k: &[u8], v: &[u8]) {
        self.batch.insert(k, v);
        self.unread = true;
        self.unread_keys.push(k.to_vec());
    }

    fn del(&mut self, k: Vec<u8>) {
        self.batch.remove(k.as_slice());
        self.overlay.insert(k, None);
    }

    fn load(&mut self, u: &Uscc) -> Result<()> {
        if !self.docs.contains_key(u) {
            let mut d = read_dossier(self.tree, u)?;
            if let Some(d) = d.as_mut() {
                repair::attach(self.revocations, u, d)?;
            }
            let region = d
                .as_ref()
                .and_then(|d| d.enterprise.as_ref())
                .map(|e| e.region);
            self.loaded_regions.push((*u, region));
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
        self.dirty.insert(*u);
        self.docs
            .get_mut(u)
            .ok_or_else(|| Error::Corrupt("dossier cache".into()))
    }

    /// The registered dossier of `u`, for changing; NOT_FOUND names `field`.
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
    /// is durable. `enterprises` is the writer's running count of registered ones.
    fn commit(
        mut self,
        enterprises: &AtomicU64,
        tracker: &super::backup::Tracker,
    ) -> Result<Vec<Effect>> {
        for u in &self.dirty {
            if let Some(Some(d)) = self.docs.get(u) {
                self.batch
                    .insert(&keys::enterprise(u)[..], codec::encode(d)?.as_slice());
            }
        }
        if self.created > 0 {
            let n = enterprises.load(Ordering::Acquire) + self.created;
            self.batch.insert(
                keys::counter("enterprises").as_slice(),
                &n.to_be_bytes()[..],
            );
        }
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
        Ok(self.effects)
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

struct Ctx<'o> {
    today: Date,
    now_ms: i64,
    options: &'o StoreOptions,
}

/// `(outcome, changed)`: changed is false when the record was already stored as is.
type Applied = (Outcome, bool);

impl Ctx<'_> {
    fn upsert_enterprise(&self, p: &mut Pending, mut e: Enterprise) -> Result<Applied> {
        e.validate(self.today)?;
        let u = e.uscc;
        let old = p.doc(&u)?.and_then(|d| d.enterprise.clone());
        if let Some(o) = &old {
            e.recorded_at_ms = o.recorded_at_ms;
            if *o == e {
                return Ok((
                    Outcome::Enterprise {
                        enterprise: e,
                        created: false,
                    },
                    false,
                ));
            }
        }
        e.recorded_at_ms = self.now_ms;
        let brief = |x: &Enterprise| {
            format!(
                "{} | {:?} | {:?} | region {}",
                x.name,
                x.entity_type,
                x.status,
                x.region.as_str()
            )
        };
        p.change = Some(Change {
            before: old.as_ref().map(brief).unwrap_or_default(),
            after: brief(&e),
            ..Change::default()
        });
        let dir = keys::directory(&e);
        if let Some(o) = &old {
            let old_dir = keys::directory(o);
            if old_dir != dir {
                p.del(old_dir);
            }
        }
        p.put(dir, Vec::new());
        let slot = p.doc_mut(&u)?;
        match slot {
            Some(d) => d.enterprise = Some(e.clone()),
            None => {
                *slot = Some(EnterpriseRecords {
                    enterprise: Some(e.clone()),
                    ..EnterpriseRecords::default()
                })
            }
        }
        let created = old.is_none();
        if created {
            p.created += 1;
        }
        Ok((
            Outcome::Enterprise {
                enterprise: e,
                created,
            },
            true,
        ))
    }

    fn record_penalty(&self, p: &mut Pending, mut x: Penalty) -> Result<Applied> {
        x.validate(self.today)?;
        let u = x.uscc;
        p.registered_mut(&u, "penalty.uscc")?;
        let dkey = keys::decision(&x.decision_number);
        if let Some(owner) = p.get(&dkey)? {
            let owner = Uscc::from_bytes(&owner)?;
            if owner == u {
                let old = p.doc(&owner)?.and_then(|d| {
                    d.penalties
                        .iter()
                        .find(|q| q.decision_number == x.decision_number)
                        .cloned()
                });
                if let Some(old) = old {
                    x.recorded_at_ms = old.recorded_at_ms;
                    x.publicity_ended_on = old.publicity_ended_on;
                    if old == x {
                        return Ok((Outcome::Penalty(old), false));
                    }
                }
            }
            return Err(Error::AlreadyExists(format!(
                "penalty.decision_number: {:?} (recorded for {owner})",
                x.decision_number
            )));
        }
        x.recorded_at_ms = self.now_ms;
        x.publicity_ended_on = None;
        p.change = Some(Change {
            after: format!(
                "penalty/{} decided {} {:?} fine {} fen",
                x.decision_number, x.decided_on, x.kinds, x.fine_fen
            ),
            ..Change::default()
        });
        p.put(dkey, u.as_bytes().to_vec());
        let d = p.registered_mut(&u, "penalty.uscc")?;
        let at = d
            .penalties
            .partition_point(|q| q.decision_number < x.decision_number);
        d.penalties.insert(at, x.clone());
        Ok((Outcome::Penalty(x), true))
    }

    fn file_report(&self, p: &mut Pending, mut x: AnnualReport) -> Result<Applied> {
        x.validate(self.today)?;
        let d = p.registered_mut(&x.uscc, "report.uscc")?;
        let established = d
            .enterprise
            .as_ref()
            .map(|e| e.established_on)
            .unwrap_or(Date::MIN);
        if i32::from(x.year) < established.year() {
            return Err(Error::invalid(
                "report.year",
                format!("{} is before establishment ({established})", x.year),
            ));
        }
        if let Some(old) = d.reports.iter().find(|r| r.year == x.year) {
            return Ok((Outcome::Report(old.clone()), false));
        }
        x.recorded_at_ms = self.now_ms;
        p.change = Some(Change {
            after: format!("annual_report/{} filed {}", x.year, x.filed_on),
            ..Change::default()
        });
        let d = p.registered_mut(&x.uscc, "report.uscc")?;
        let at = d.reports.partition_point(|r| r.year < x.year);
        d.reports.insert(at, x.clone());
        Ok((Outcome::Report(x), true))
    }

    fn add_listing(&self, p: &mut Pending, mut x: Listing) -> Result<Applied> {
        let d = p.registered_mut(&x.uscc, "listing.uscc")?;
        let entity_type = d
            .enterprise
            .as_ref()
            .map(|e| e.entity_type)
            .ok_or_else(|| Error::Corrupt("dossier without profile".into()))?;
        x.validate(self.today, entity_type)?;
        if let Some(old) = d.listings.iter().find(|l| same_listing(l, &x)) {
            x.recorded_at_ms = old.recorded_at_ms;
            if *old == x {
                return Ok((Outcome::Listing(old.clone()), false));
            }
            return Err(Error::AlreadyExists(format!(
                "listing: {} of {}",
                x.listing_id(),
                x.uscc
            )));
        }
        x.recorded_at_ms = self.now_ms;
        p.change = Some(Change {
            after: format!(
                "listing/{}{}",
                x.listing_id(),
                x.removed_on
                    .map(|r| format!(" removed {r}"))
                    .unwrap_or_default()
            ),
            ..Change::default()
        });
        let d = p.registered_mut(&x.uscc, "listing.uscc")?;
        insert_listing(d, x.clone());
        Ok((Outcome::Listing(x), true))
    }

    fn record_inspection(&self, p: &mut Pending, mut x: InspectionResult) -> Result<Applied> {
        x.validate(self.today)?;
        let d = p.registered_mut(&x.uscc, "result.uscc")?;
        if let Some(old) = d.inspections.iter().find(|i| i.task_id == x.task_id) {
            x.recorded_at_ms = old.recorded_at_ms;
            if *old == x {
                return Ok((Outcome::Inspection(old.clone()), false));
            }
            return Err(Error::AlreadyExists(format!(
                "result: task {:?} for {}",
                x.task_id, x.uscc
            )));
        }
        x.recorded_at_ms = self.now_ms;
        p.change = Some(Change {
            after: format!(
                "inspection/{} on {} problems found: {}",
                x.task_id, x.inspected_on, x.problems_found
            ),
            ..Change::default()
        });
        let d = p.registered_mut(&x.uscc, "result.uscc")?;
        let at = d.inspections.partition_point(|i| i.task_id < x.task_id);
        d.inspections.insert(at, x.clone());
        Ok((Outcome::Inspection(x), true))
    }

    fn import(&self, p: &mut Pending, items: Vec<(u64, ImportItem)>) -> ImportOutcome {
        let mut out = ImportOutcome::default();
        for (index, item) in items {
            let (kind, key) = describe(&item);
            let r = match item {
                ImportItem::Enterprise(x) => self.upsert_enterprise(p, x),
                ImportItem::Penalty(x) => self.record_penalty(p, x),
                ImportItem::Report(x) => self.file_report(p, x),
                ImportItem::Listing(x) => self.add_listing(p, x),
                ImportItem::Inspection(x) => self.record_inspection(p, x),
            };
            match r {
                Ok((_, true)) => out.stored += 1,
                Ok((_, false)) => out.unchanged += 1,
                Err(e) => out.rejections.push(ImportRejection {
                    index,
                    kind,
                    key,
                    code: error_code(&e),
                    error: e.to_string(),
                }),
            }
        }
        out
    }

    fn sweep_chunk(
        &self,
        p: &mut Pending,
        year: u16,
        as_of: Date,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<SweepCounts> {
        let page = directory_page(p.tree, after, limit)?;
        let mut c = SweepCounts {
            last: page.last().map(|(k, _)| k.clone()),
            ..SweepCounts::default()
        };
        let active = [
            EnterpriseStatus::Operating.code(),
            EnterpriseStatus::Suspended.code(),
        ];
        for (_, entry) in page {
            if !active.contains(&entry.status) {
                continue;
            }
            let decision = {
                let Some(recs) = p.doc(&entry.uscc)? else {
                    continue;
                };
                let Some(e) = &recs.enterprise else { continue };
                self.options
                    .sweep
                    .decide(e, &recs.reports, &recs.listings, year, as_of)
            };
            c.examined += 1;
            if decision.already_listed {
                c.already_listed += 1;
            }
            if decision.add.is_empty() {
                continue;
            }
            let d = p.registered_mut(&entry.uscc, "uscc")?;
            for mut l in decision.add {
                match l.kind {
                    ListKind::AbnormalOperations => c.listed_abnormal += 1,
                    ListKind::AbnormalStatusMark => c.marked_abnormal_status += 1,
                    ListKind::SeriousIllegal => c.moved_serious += 1,
                }
                l.recorded_at_ms = self.now_ms;
                insert_listing(d, l);
            }
        }
        Ok(c)
    }
}

impl Ctx<'_> {
    fn submit_repair(&self, p: &mut Pending, mut c: RepairCase) -> Result<RepairCase> {
        let u = c.uscc;
        let d = p
            .doc(&u)?
            .filter(|d| d.enterprise.is_some())
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("uscc: enterprise {u}")))?;
        for other in repair::cases_of(p.tree, &u)? {
            if other.state.is_open() && other.target == c.target {
                return Err(Error::AlreadyExists(format!(
                    "target: repair case {} for {} is still open",
                    other.id,
                    c.target.id()
                )));
            }
        }
        let revoked: Vec<Date> = d.false_commitments.iter().map(|(_, on)| *on).collect();
        c.eligibility = crate::domain::repair::eligibility(
            &c.target,
            &d,
            self.today,
            &self.options.publicity,
            &revoked,
        )?;
        let id = sc::get_counter(p.tree, "next_case")?.unwrap_or(1);
        p.put(keys::counter("next_case"), (id + 1).to_be_bytes().to_vec());
        c.id = id;
        for step in c.history.iter_mut() {
            step.at_ms = self.now_ms;
        }
        p.put(repair::case_key(id), codec::encode(&c)?);
        p.put(repair::uscc_key(&u, id), Vec::new());
        p.change = Some(Change {
            target: u.to_string(),
            uscc: Some(u),
            before: String::new(),
            after: format!("repair_case/{id} SUBMITTED for {}", c.target.id()),
            reason: c.reason.clone(),
        });
        Ok(c)
    }

    fn decide_repair(
        &self,
        p: &mut Pending,
        id: u64,
        action: RepairAction,
        by: String,
        reason: String,
        decide_due: Option<Date>,
    ) -> Result<RepairCase> {
        let mut c: RepairCase = match p.get(&repair::case_key(id))? {
            Some(v) => codec::decode(&v)?,
            None => return Err(Error::NotFound(format!("id: repair case {id}"))),
        };
        let before = c.state;
        let after = before
            .apply(action)
            .map_err(|e| Error::FailedPrecondition(e.reason))?;
        let marker = format!("credit repair case {id}");
        match action {
            RepairAction::Approve => {
                let target = c.target.clone();
                let d = p.registered_mut(&c.uscc, "uscc")?;
                match &target {
                    RepairTarget::PenaltyPublicity { decision_number } => {
                        let pen = d
                            .penalties
                            .iter_mut()
                            .find(|x| &x.decision_number == decision_number)
                            .ok_or_else(|| {
                                Error::FailedPrecondition(format!("{} is gone", target.id()))
                            })?;
                        pen.publicity_ended_on = Some(self.today);
                    }
                    _ => {
                        let key = target.listing_key();
                        let l = d
                            .listings
                            .iter_mut()
                            .find(|l| Some((l.kind, l.listed_on, l.reason)) == key)
                            .ok_or_else(|| {
                                Error::FailedPrecondition(format!("{} is gone", target.id()))
                            })?;
                        if !l.is_open_on(self.today) {
                            return Err(Error::FailedPrecondition(format!(
                                "{} is no longer open",
                                target.id()
                            )));
                        }
                        l.removed_on = Some(self.today);
                        l.removal_reason = marker.clone();
                    }
                }
            }
            RepairAction::Revoke => {
                let target = c.target.clone();
                let today = self.today;
                let d = p.registered_mut(&c.uscc, "uscc")?;
                match &target {
                    RepairTarget::PenaltyPublicity { decision_number } => {
                        if let Some(pen) = d
                            .penalties
                            .iter_mut()
                            .find(|x| &x.decision_number == decision_number)
                        {
                            pen.publicity_ended_on = None;
                        }
                    }
                    _ => {
                        for l in d.listings.iter_mut() {
                            if l.removal_reason == marker {
                                l.removed_on = None;
                                l.removal_reason.clear();
                            }
                        }
                    }
                }
                d.false_commitments.push((id, today));
                p.effects.push(Effect::Revocation(c.uscc, id, today));
            }
            RepairAction::Accept => c.decide_due = decide_due,
            RepairAction::NotAccept | RepairAction::Deny => {}
        }
        c.state = after;
        c.history.push(RepairStep {
            state: after,
            at_ms: self.now_ms,
            on: self.today,
            by,
            reason: reason.clone(),
        });
        p.put(repair::case_key(id), codec::encode(&c)?);
        p.change = Some(Change {
            target: c.uscc.to_string(),
            uscc: Some(c.uscc),
            before: format!("repair_case/{id} {}", before.name()),
            after: format!("repair_case/{id} {} ({})", after.name(), c.target.id()),
            reason,
        });
        Ok(c)
    }
}

/// The correction an objection's resolution applies to its record.
#[derive(Clone, Debug)]
pub enum Correction {
    /// End the listing today.
    RemoveListing,
    /// Replace the penalty (same decision number).
    Penalty(Penalty),
    /// Replace the listing (same natural key).
    Listing(Listing),
    /// Replace the annual report (same year).
    Report(AnnualReport),
    /// Replace the inspection result (same task id).
    Inspection(InspectionResult),
}

impl Ctx<'_> {
    fn file_objection(&self, p: &mut Pending, mut o: Objection) -> Result<Objection> {
        let u = o.uscc;
        let d = p
            .doc(&u)?
            .filter(|d| d.enterprise.is_some())
            .ok_or_else(|| Error::NotFound(format!("uscc: enterprise {u}")))?;
        if !crate::domain::repair::record_ids(d).contains(&o.record) {
            return Err(Error::NotFound(format!("record: {} of {u}", o.record)));
        }
        for other in repair::objections(p.tree, Some(&u))? {
            if other.state == ObjectionState::Open && other.record == o.record {
                return Err(Error::AlreadyExists(format!(
                    "record: objection {} to {} is still open",
                    other.id, o.record
                )));
            }
        }
        let id = sc::get_counter(p.tree, "next_objection")?.unwrap_or(1);
        p.put(
            keys::counter("next_objection"),
            (id + 1).to_be_bytes().to_vec(),
        );
        o.id = id;
        for s in o.history.iter_mut() {
            s.at_ms = self.now_ms;
        }
        p.put(repair::objection_key(id), codec::encode(&o)?);
        p.put(repair::objection_uscc_key(&u, id), Vec::new());
        p.change = Some(Change {
            target: u.to_string(),
            uscc: Some(u),
            before: String::new(),
            after: format!("objection/{id} OPEN on {} (disputed)", o.record),
            reason: o.reason.clone(),
        });
        Ok(o)
    }

    fn resolve_objection(
        &self,
        p: &mut Pending,
        id: u64,
        correction: Option<Correction>,
        by: String,
        reason: String,
    ) -> Result<Objection> {
        let mut o: Objection = match p.get(&repair::objection_key(id))? {
            Some(v) => codec::decode(&v)?,
            None => return Err(Error::NotFound(format!("id: objection {id}"))),
        };
        if o.state != ObjectionState::Open {
            return Err(Error::FailedPrecondition(format!(
                "objection {id} is {}, not OPEN",
                o.state.name()
            )));
        }
        let mut applied = String::new();
        if let Some(c) = correction {
            let today = self.today;
            let now = self.now_ms;
            let record = o.record.clone();
            let d = p.registered_mut(&o.uscc, "uscc")?;
            let key_mismatch = |what: String| {
                Error::invalid(
                    "correction",
                    format!("{what} is not the disputed record {record}"),
                )
            };
            match c {
                Correction::RemoveListing => {
                    let l = d
                        .listings
                        .iter_mut()
                        .find(|l| format!("listing/{}", l.listing_id()) == record)
                        .ok_or_else(|| key_mismatch("remove_listing".into()))?;
                    l.removed_on = Some(today);
                    l.removal_reason = format!("objection {id} corrected");
                    applied = format!("listing removed on {today}");
                }
                Correction::Penalty(mut x) => {
                    x.validate(today)?;
                    let slot = d
                        .penalties
                        .iter_mut()
                        .find(|q| {
                            format!("penalty/{}", q.decision_number) == record
                                && q.decision_number == x.decision_number
                        })
                        .ok_or_else(|| key_mismatch(format!("penalty/{}", x.decision_number)))?;
                    x.uscc = slot.uscc;
                    x.recorded_at_ms = now;
                    x.publicity_ended_on = slot.publicity_ended_on;
                    applied = format!("penalty replaced: {:?} fine {} fen", x.kinds, x.fine_fen);
                    *slot = x;
                }
                Correction::Listing(mut x) => {
                    let et = d
                        .enterprise
                        .as_ref()
                        .map(|e| e.entity_type)
                        .ok_or_else(|| Error::Corrupt("dossier without profile".into()))?;
                    x.validate(today, et)?;
                    let slot = d
                        .listings
                        .iter_mut()
                        .find(|l| {
                            format!("listing/{}", l.listing_id()) == record && same_listing(l, &x)
                        })
                        .ok_or_else(|| key_mismatch(format!("listing/{}", x.listing_id())))?;
                    x.recorded_at_ms = now;
                    applied = format!("listing replaced (removed: {:?})", x.removed_on);
                    *slot = x;
                }
                Correction::Report(mut x) => {
                    x.validate(today)?;
                    let slot = d
                        .reports
                        .iter_mut()
                        .find(|r| format!("annual_report/{}", r.year) == record && r.year == x.year)
                        .ok_or_else(|| key_mismatch(format!("annual_report/{}", x.year)))?;
                    x.recorded_at_ms = now;
                    applied = format!(
                        "annual report {} filing date corrected to {}",
                        x.year, x.filed_on
                    );
                    *slot = x;
                }
                Correction::Inspection(mut x) => {
                    x.validate(today)?;
                    let slot = d
                        .inspections
                        .iter_mut()
                        .find(|i| {
                            format!("inspection/{}", i.task_id) == record && i.task_id == x.task_id
                        })
                        .ok_or_else(|| key_mismatch(format!("inspection/{}", x.task_id)))?;
                    x.recorded_at_ms = now;
                    applied = format!("inspection corrected: problems found {}", x.problems_found);
                    *slot = x;
                }
            }
            o.state = ObjectionState::Corrected;
        } else {
            o.state = ObjectionState::Upheld;
        }
        o.resolution = if applied.is_empty() {
            format!("upheld: {reason}")
        } else {
            format!("corrected: {applied}; {reason}")
        };
        o.history.push(ObjectionStep {
            state: o.state,
            at_ms: self.now_ms,
            on: self.today,
            by,
            reason: reason.clone(),
        });
        p.put(repair::objection_key(id), codec::encode(&o)?);
        p.change = Some(Change {
            target: o.uscc.to_string(),
            uscc: Some(o.uscc),
            before: format!("objection/{id} OPEN on {}", o.record),
            after: format!("objection/{id} {}: {}", o.state.name(), o.resolution),
            reason,
        });
        Ok(o)
    }
}

/// Whether two listings have the same natural key (kind, listed on, reason).
fn same_listing(a: &Listing, b: &Listing) -> bool {
    (a.kind, a.listed_on, a.reason) == (b.kind, b.listed_on, b.reason)
}

/// Inserts a listing in natural-key order.
fn insert_listing(d: &mut EnterpriseRecords, l: Listing) {
    let k = (l.kind, l.listed_on, l.reason);
    let at = d
        .listings
        .partition_point(|x| (x.kind, x.listed_on, x.reason) < k);
    d.listings.insert(at, l);
}

/// Reads the dossier of `u`.
pub(super) fn read_dossier(tree: &sled::Tree, u: &Uscc) -> Result<Option<EnterpriseRecords>> {
    match tree.get(keys::enterprise(u))? {
        Some(v) => {
            let mut d: EnterpriseRecords = codec::decode(&v)?;
            d.set_uscc(*u);
            Ok(Some(d))
        }
        None => Ok(None),
    }
}

fn describe(item: &ImportItem) -> (&'static str, String) {
    match item {
        ImportItem::Enterprise(x) => ("enterprise", x.uscc.to_string()),
        ImportItem::Penalty(x) => ("penalty", x.decision_number.clone()),
        ImportItem::Report(x) => ("annual_report", format!("{}/{}", x.uscc, x.year)),
        ImportItem::Listing(x) => ("listing", format!("{}/{}", x.uscc, x.listing_id())),
        ImportItem::Inspection(x) => ("inspection", format!("{}/{}", x.uscc, x.task_id)),
    }
}

/// The gRPC code name an error maps to (for import rejections).
pub fn error_code(e: &Error) -> &'static str {
    match e {
        Error::Invalid(_) => "INVALID_ARGUMENT",
        Error::NotFound(_) => "NOT_FOUND",
        Error::AlreadyExists(_) => "ALREADY_EXISTS",
        Error::FailedPrecondition(_) => "FAILED_PRECONDITION",
        Error::PermissionDenied(_) => "PERMISSION_DENIED",
        Error::ResourceExhausted(_) => "RESOURCE_EXHAUSTED",
        Error::Unavailable(_) => "UNAVAILABLE",
        Error::Corrupt(_) => "INTERNAL",
    }
}

/// Verifies the indexes against the dossiers (both directions): every dossier has its
/// directory entry and its decision numbers, every directory entry and decision number
/// points at a dossier that matches. Returns the number of enterprises.
pub(super) fn check_indexes(tree: &sled::Tree) -> Result<u64> {
    let mut enterprises = 0u64;
    let mut decisions = 0u64;
    for kv in tree.scan_prefix([keys::RECORDS]) {
        let (k, v) = kv?;
        let u = keys::decode_enterprise(&k)
            .ok_or_else(|| Error::Corrupt(format!("bad dossier key {k:?}")))?;
        let mut d: EnterpriseRecords = codec::decode(&v)?;
        d.set_uscc(u);
        let e = d
            .enterprise
            .as_ref()
            .ok_or_else(|| Error::Corrupt(format!("{u}: dossier without profile")))?;
        enterprises += 1;
        if !tree.contains_key(keys::directory(e))? {
            return Err(Error::Corrupt(format!("{u}: directory entry missing")));
        }
        for p in &d.penalties {
            decisions += 1;
            match tree.get(keys::decision(&p.decision_number))? {
                Some(owner) if owner.as_ref() == u.as_bytes() => {}
                _ => {
                    return Err(Error::Corrupt(format!(
                        "{u}: decision number {:?} not indexed",
                        p.decision_number
                    )))
                }
            }
        }
    }
    let mut entries = 0u64;
    for kv in tree.scan_prefix([keys::DIRECTORY]) {
        let (k, _) = kv?;
        entries += 1;
        let d = keys::decode_directory(&k)
            .ok_or_else(|| Error::Corrupt(format!("bad directory key {k:?}")))?;
        let e = read_dossier(tree, &d.uscc)?
            .and_then(|r| r.enterprise)
            .ok_or_else(|| Error::Corrupt(format!("directory names unknown {}", d.uscc)))?;
        if keys::directory(&e) != k.as_ref() {
            return Err(Error::Corrupt(format!(
                "directory entry of {} is stale",
                d.uscc
            )));
        }
    }
    if entries != enterprises {
        return Err(Error::Corrupt(format!(
            "{enterprises} enterprises but {entries} directory entries"
        )));
    }
    let indexed = tree.scan_prefix([keys::DECISIONS]).count() as u64;
    if indexed != decisions {
        return Err(Error::Corrupt(format!(
            "{decisions} penalties but {indexed} decision numbers"
        )));
    }
    Ok(enterprises)
}
