//! The single writer thread: serialises writes, applies each job as one atomic sled
//! batch, and flushes once per group of queued jobs before acknowledging them
//! (group commit). Reads a job makes before writing cannot race another writer.

use std::{
    collections::HashMap,
    sync::Mutex,
    thread::JoinHandle,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::{codec, directory_page, keys, read_records, StoreOptions};
use crate::{
    domain::{
        AnnualReport, Date, Enterprise, EnterpriseStatus, InspectionResult, Listing, Penalty, Uscc,
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

/// What a write produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    #[serde(skip)]
    Import(ImportOutcome),
}

/// An outcome as kept for idempotent retries: with the record key, because the record
/// values leave out what their keys hold.
#[derive(Serialize, Deserialize)]
struct StoredOutcome {
    fingerprint: [u8; 32],
    key: Vec<u8>,
    outcome: Outcome,
}

impl Outcome {
    fn record_key(&self) -> Vec<u8> {
        match self {
            Outcome::Enterprise { enterprise, .. } => keys::profile(&enterprise.uscc),
            Outcome::Penalty(p) => keys::penalty(&p.uscc, &p.decision_number),
            Outcome::Report(r) => keys::reports(&r.uscc),
            Outcome::Listing(l) => keys::listing(&l.uscc, l.kind, l.listed_on, l.reason),
            Outcome::Inspection(i) => keys::inspection(&i.uscc, &i.task_id),
            Outcome::Sweep(_) | Outcome::Import(_) => Vec::new(),
        }
    }

    fn restore_key(&mut self, key: &[u8]) {
        use keys::RecordKey as K;
        match (self, keys::decode_record(key)) {
            (Outcome::Enterprise { enterprise, .. }, Some(K::Profile(u))) => enterprise.uscc = u,
            (Outcome::Penalty(p), Some(K::Penalty(u, _))) => p.uscc = u,
            (Outcome::Report(r), Some(K::Reports(u))) => r.uscc = u,
            (Outcome::Listing(l), Some(K::Listing(u, k, d, r))) => {
                l.uscc = u;
                l.kind = k;
                l.listed_on = d;
                l.reason = r;
            }
            (Outcome::Inspection(i), Some(K::Inspection(u, t))) => {
                i.uscc = u;
                i.task_id = t.to_string();
            }
            _ => {}
        }
    }
}

enum Msg {
    Job(Box<Job>),
    Stop,
}

struct Job {
    op: WriteOp,
    request: Option<RequestKey>,
    reply: oneshot::Sender<Result<Outcome>>,
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

/// A queued write: await it for the outcome, acknowledged once durable.
pub struct Ticket(oneshot::Receiver<Result<Outcome>>);

impl std::future::Future for Ticket {
    type Output = Result<Outcome>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| Err(Error::Unavailable("store writer stopped".into()))))
    }
}

/// Looks up the stored outcome of an earlier request with this id.
pub(super) fn recall(tree: &sled::Tree, r: &RequestKey) -> Result<Option<Outcome>> {
    let Some(v) = tree.get(keys::request(r.rpc, &r.id))? else {
        return Ok(None);
    };
    let stored: StoredOutcome = codec::decode(&v)?;
    if stored.fingerprint != r.fingerprint {
        return Err(Error::invalid(
            "request_id",
            format!("{:?} was already used for a different request", r.id),
        ));
    }
    let mut o = stored.outcome;
    o.restore_key(&stored.key);
    Ok(Some(o))
}

pub(super) struct WriterHandle {
    tx: mpsc::Sender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl WriterHandle {
    pub(super) async fn enqueue(&self, op: WriteOp, request: Option<RequestKey>) -> Result<Ticket> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Job(Box::new(Job { op, request, reply })))
            .await
            .map_err(|_| Error::Unavailable("store writer stopped".into()))?;
        Ok(Ticket(rx))
    }

    pub(super) fn close(&self, timeout: Duration) {
        let _ = self.tx.try_send(Msg::Stop);
        let handle = self.thread.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let deadline = std::time::Instant::now() + timeout;
            while !h.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
    }
}

pub(super) fn spawn(db: sled::Db, tree: sled::Tree, options: StoreOptions) -> Result<WriterHandle> {
    let (tx, rx) = mpsc::channel(options.queue_depth.max(1));
    let thread = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || Writer { db, tree, options }.run(rx))
        .map_err(|e| Error::Unavailable(format!("cannot start store writer: {e}")))?;
    Ok(WriterHandle {
        tx,
        thread: Mutex::new(Some(thread)),
    })
}

struct Writer {
    db: sled::Db,
    tree: sled::Tree,
    options: StoreOptions,
}

impl Writer {
    fn run(self, mut rx: mpsc::Receiver<Msg>) {
        let mut stop = false;
        while !stop {
            let Some(first) = rx.blocking_recv() else {
                break;
            };
            let mut jobs = Vec::new();
            match first {
                Msg::Job(j) => jobs.push(*j),
                Msg::Stop => stop = true,
            }
            while jobs.len() < self.options.max_group {
                match rx.try_recv() {
                    Ok(Msg::Job(j)) => jobs.push(*j),
                    Ok(Msg::Stop) => {
                        stop = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            if jobs.is_empty() {
                continue;
            }
            let mut results: Vec<Result<Outcome>> =
                jobs.iter_mut().map(|j| self.execute(j)).collect();
            if let Err(e) = self.db.flush() {
                let msg = format!("flush failed: {e}");
                tracing::error!(%msg, "store flush failed; failing the group");
                for r in results.iter_mut() {
                    *r = Err(Error::Unavailable(msg.clone()));
                }
            }
            for (job, r) in jobs.into_iter().zip(results) {
                let _ = job.reply.send(r);
            }
        }
        if let Err(e) = self.db.flush() {
            tracing::error!(error = %e, "final flush failed");
        }
    }

    fn execute(&self, job: &mut Job) -> Result<Outcome> {
        let mut p = Pending::new(&self.tree);
        let req_key = match &job.request {
            Some(r) => {
                if let Some(o) = recall(&self.tree, r)? {
                    return Ok(o);
                }
                Some((keys::request(r.rpc, &r.id), r.fingerprint))
            }
            None => None,
        };
        let op = std::mem::replace(&mut job.op, WriteOp::Import(Vec::new()));
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
            WriteOp::Import(items) => Outcome::Import(ctx.import(&mut p, items)),
            WriteOp::SweepChunk {
                year,
                as_of,
                after,
                limit,
            } => Outcome::Sweep(ctx.sweep_chunk(&mut p, year, as_of, after.as_deref(), limit)?),
            WriteOp::Remember(o) => o,
        };
        if let Some((k, fingerprint)) = req_key {
            let stored = StoredOutcome {
                fingerprint,
                key: outcome.record_key(),
                outcome: outcome.clone(),
            };
            p.put(k, codec::encode(&stored)?);
        }
        p.commit()?;
        Ok(outcome)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Writes of one job: an overlay of pending changes (so later reads in the same job see
/// them) and the sled batch that applies them atomically.
struct Pending<'a> {
    tree: &'a sled::Tree,
    overlay: HashMap<Vec<u8>, Option<Vec<u8>>>,
    batch: sled::Batch,
}

impl<'a> Pending<'a> {
    fn new(tree: &'a sled::Tree) -> Self {
        Pending {
            tree,
            overlay: HashMap::new(),
            batch: sled::Batch::default(),
        }
    }

    fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.overlay.get(k) {
            return Ok(v.clone());
        }
        Ok(self.tree.get(k)?.map(|v| v.to_vec()))
    }

    fn exists(&self, k: &[u8]) -> Result<bool> {
        if let Some(v) = self.overlay.get(k) {
            return Ok(v.is_some());
        }
        Ok(self.tree.contains_key(k)?)
    }

    fn put(&mut self, k: Vec<u8>, v: Vec<u8>) {
        self.batch.insert(k.as_slice(), v.as_slice());
        self.overlay.insert(k, Some(v));
    }

    fn del(&mut self, k: Vec<u8>) {
        self.batch.remove(k.as_slice());
        self.overlay.insert(k, None);
    }

    fn commit(self) -> Result<()> {
        if !self.overlay.is_empty() {
            self.tree.apply_batch(self.batch)?;
        }
        Ok(())
    }
}

struct Ctx<'o> {
    today: Date,
    now_ms: i64,
    options: &'o StoreOptions,
}

/// `(outcome, changed)`: changed is false when the record was already stored as is.
type Applied = (Outcome, bool);

impl Ctx<'_> {
    fn enterprise(&self, p: &Pending, u: &Uscc, field: &str) -> Result<Enterprise> {
        match p.get(&keys::profile(u))? {
            Some(v) => {
                let mut e: Enterprise = codec::decode(&v)?;
                e.uscc = *u;
                Ok(e)
            }
            None => Err(Error::NotFound(format!("{field}: enterprise {u}"))),
        }
    }

    fn require_enterprise(&self, p: &Pending, u: &Uscc, field: &str) -> Result<()> {
        if p.exists(&keys::profile(u))? {
            Ok(())
        } else {
            Err(Error::NotFound(format!("{field}: enterprise {u}")))
        }
    }

    fn upsert_enterprise(&self, p: &mut Pending, mut e: Enterprise) -> Result<Applied> {
        e.validate(self.today)?;
        let key = keys::profile(&e.uscc);
        let old = match p.get(&key)? {
            Some(v) => {
                let mut o: Enterprise = codec::decode(&v)?;
                o.uscc = e.uscc;
                Some(o)
            }
            None => None,
        };
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
        let dir = keys::directory(&e);
        if let Some(o) = &old {
            let old_dir = keys::directory(o);
            if old_dir != dir {
                p.del(old_dir);
            }
        }
        p.put(dir, Vec::new());
        p.put(key, codec::encode(&e)?);
        let created = old.is_none();
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
        self.require_enterprise(p, &x.uscc, "penalty.uscc")?;
        let dkey = keys::decision(&x.decision_number);
        if let Some(owner) = p.get(&dkey)? {
            let owner = Uscc::from_bytes(&owner)?;
            if owner == x.uscc {
                if let Some(v) = p.get(&keys::penalty(&owner, &x.decision_number))? {
                    let mut old: Penalty = codec::decode(&v)?;
                    old.uscc = owner;
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
        p.put(dkey, x.uscc.as_bytes().to_vec());
        p.put(
            keys::penalty(&x.uscc, &x.decision_number),
            codec::encode(&x)?,
        );
        Ok((Outcome::Penalty(x), true))
    }

    fn file_report(&self, p: &mut Pending, mut x: AnnualReport) -> Result<Applied> {
        x.validate(self.today)?;
        let e = self.enterprise(p, &x.uscc, "report.uscc")?;
        if i32::from(x.year) < e.established_on.year() {
            return Err(Error::invalid(
                "report.year",
                format!("{} is before establishment ({})", x.year, e.established_on),
            ));
        }
        let key = keys::reports(&x.uscc);
        let mut history: Vec<AnnualReport> = match p.get(&key)? {
            Some(v) => codec::decode(&v)?,
            None => Vec::new(),
        };
        if let Some(old) = history.iter().find(|r| r.year == x.year) {
            let mut old = old.clone();
            old.uscc = x.uscc;
            return Ok((Outcome::Report(old), false));
        }
        x.recorded_at_ms = self.now_ms;
        let at = history.partition_point(|r| r.year < x.year);
        history.insert(at, x.clone());
        p.put(key, codec::encode(&history)?);
        Ok((Outcome::Report(x), true))
    }

    fn add_listing(&self, p: &mut Pending, mut x: Listing) -> Result<Applied> {
        let e = self.enterprise(p, &x.uscc, "listing.uscc")?;
        x.validate(self.today, e.entity_type)?;
        let key = keys::listing(&x.uscc, x.kind, x.listed_on, x.reason);
        if let Some(v) = p.get(&key)? {
            let mut old: Listing = codec::decode(&v)?;
            (old.uscc, old.kind, old.listed_on, old.reason) =
                (x.uscc, x.kind, x.listed_on, x.reason);
            x.recorded_at_ms = old.recorded_at_ms;
            if old == x {
                return Ok((Outcome::Listing(old), false));
            }
            return Err(Error::AlreadyExists(format!(
                "listing: {} of {}",
                x.listing_id(),
                x.uscc
            )));
        }
        x.recorded_at_ms = self.now_ms;
        p.put(key, codec::encode(&x)?);
        Ok((Outcome::Listing(x), true))
    }

    fn record_inspection(&self, p: &mut Pending, mut x: InspectionResult) -> Result<Applied> {
        x.validate(self.today)?;
        self.require_enterprise(p, &x.uscc, "result.uscc")?;
        let key = keys::inspection(&x.uscc, &x.task_id);
        if let Some(v) = p.get(&key)? {
            let mut old: InspectionResult = codec::decode(&v)?;
            old.uscc = x.uscc;
            old.task_id = x.task_id.clone();
            x.recorded_at_ms = old.recorded_at_ms;
            if old == x {
                return Ok((Outcome::Inspection(old), false));
            }
            return Err(Error::AlreadyExists(format!(
                "result: task {:?} for {}",
                x.task_id, x.uscc
            )));
        }
        x.recorded_at_ms = self.now_ms;
        p.put(key, codec::encode(&x)?);
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
            let recs = read_records(p.tree, &entry.uscc)?;
            let Some(e) = recs.enterprise else { continue };
            c.examined += 1;
            let d = self
                .options
                .sweep
                .decide(&e, &recs.reports, &recs.listings, year, as_of);
            if d.already_listed {
                c.already_listed += 1;
            }
            for mut l in d.add {
                match l.kind {
                    crate::domain::ListKind::AbnormalOperations => c.listed_abnormal += 1,
                    crate::domain::ListKind::AbnormalStatusMark => c.marked_abnormal_status += 1,
                    crate::domain::ListKind::SeriousIllegal => c.moved_serious += 1,
                }
                l.recorded_at_ms = self.now_ms;
                p.put(
                    keys::listing(&l.uscc, l.kind, l.listed_on, l.reason),
                    codec::encode(&l)?,
                );
            }
        }
        Ok(c)
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
        Error::ResourceExhausted(_) => "RESOURCE_EXHAUSTED",
        Error::Unavailable(_) => "UNAVAILABLE",
        Error::Corrupt(_) => "INTERNAL",
    }
}

/// Verifies the directory index against the records (both directions).
pub(super) fn check_indexes(tree: &sled::Tree) -> Result<u64> {
    let mut enterprises = 0u64;
    for kv in tree.scan_prefix([keys::RECORDS]) {
        let (k, v) = kv?;
        if let Some(keys::RecordKey::Profile(u)) = keys::decode_record(&k) {
            let mut e: Enterprise = codec::decode(&v)?;
            e.uscc = u;
            enterprises += 1;
            if !tree.contains_key(keys::directory(&e))? {
                return Err(Error::Corrupt(format!("{u}: directory entry missing")));
            }
        }
    }
    let mut entries = 0u64;
    for kv in tree.scan_prefix([keys::DIRECTORY]) {
        let (k, _) = kv?;
        entries += 1;
        let d = keys::decode_directory(&k)
            .ok_or_else(|| Error::Corrupt(format!("bad directory key {k:?}")))?;
        let v = tree
            .get(keys::profile(&d.uscc))?
            .ok_or_else(|| Error::Corrupt(format!("directory names unknown {}", d.uscc)))?;
        let mut e: Enterprise = codec::decode(&v)?;
        e.uscc = d.uscc;
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
    Ok(enterprises)
}
