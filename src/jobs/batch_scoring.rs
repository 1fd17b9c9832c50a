//! The batch scoring job (批量评分): scores every enterprise under one model and as-of
//! date into a new run.
//!
//! 1. `BeginRun` (through the writer): refused while another run is computed; from now
//!    on writes re-score onto the new run as well.
//! 2. Scan: every dossier once, two threads meeting in the middle; each enterprise is
//!    scored without relations, and its legal-representative key kept.
//! 3. Relations: the keys of D-class or serious-illegal-listed enterprises are counted;
//!    the few enterprises sharing one (other than themselves) are re-scored with the
//!    relation points. Linear, no pairwise comparison; relation points do not cascade.
//! 4. Compare with the current run: the class-transition matrix and examples with the
//!    indicators that moved them.
//! 5. Write ≈ 3,400 result blocks, flush, then `FinishRun` (through the writer) makes the
//!    run current in one step (or the pending candidate, for a dry run).
//!
//! Any error aborts the run (its partial results are dropped, the old run stays current);
//! a crash is recovered at the next open the same way.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use tokio::sync::mpsc;

use crate::{
    domain::{
        model::GENERAL,
        scoring::{assess, explain, Inputs},
        Centi, Date, Indicator, Model, Uscc,
    },
    error::{Error, Result},
    store::{
        op,
        scoring::{general_input, related, rep_key, FLAG_SOURCE},
        spot::SpotBuilder,
        Actor, Answer, Remembered, RequestKey, RunEntry, RunView, ScoringRun, Store,
        TransitionExample, Transitions,
    },
};

/// What to score.
#[derive(Clone, Debug)]
pub struct BatchRequest {
    /// Registered model version; `None` = the active model of `family`.
    pub model_version: Option<String>,
    /// The model family whose active model scores when no version is named; `None` =
    /// the general model.
    pub family: Option<String>,
    /// As-of date.
    pub as_of: Date,
    /// Do not make the run current.
    pub dry_run: bool,
    /// Who asked (principal).
    pub requested_by: String,
    /// The audit actor of the run's writes.
    pub actor: Actor,
}

/// Progress of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub run_id: u64,
    pub phase: &'static str,
    pub processed: u64,
    pub total: u64,
    pub classes: [u64; 4],
    pub elapsed: Duration,
}

/// An event of a running job.
#[derive(Clone, Debug)]
pub enum Event {
    Progress(Progress),
    Done(Box<ScoringRun>),
    Failed(String),
}

/// Examples kept per changed (from, to) cell.
const EXAMPLES_PER_CELL: usize = 2;

/// How a request started.
pub enum Started {
    /// A new run: its id and its events.
    New(u64, mpsc::Receiver<Event>),
    /// The request id was bound to this run by an earlier request (a retry).
    Existing(u64),
}

/// Validates the request and starts the run; events arrive on the receiver. The job runs
/// on its own thread and goes on if the receiver is dropped. `request` binds the
/// request id to the run as it begins (in the same batch), so a retry finds the run
/// whether or not the first caller read its stream to the end.
///
/// A panic in the job fails closed: the run is marked aborted (the "run in progress"
/// state cleared), the error logged and the store's fault signalled (the server stops).
pub async fn start(
    store: Store,
    req: BatchRequest,
    request: Option<RequestKey>,
) -> Result<Started> {
    if let Some(k) = &request {
        if let Some(Remembered::Run(id)) = store.recall(k)? {
            return Ok(Started::Existing(id));
        }
    }
    if req.as_of > store.today() {
        return Err(Error::invalid(
            "as_of",
            format!("{} is in the future", req.as_of),
        ));
    }
    let model = match &req.model_version {
        Some(v) => store
            .model(v)?
            .ok_or_else(|| Error::NotFound(format!("model_version: model {v:?}")))?,
        None => {
            let family = req.family.as_deref().unwrap_or(GENERAL);
            store
                .active_model_of(family)?
                .ok_or_else(|| match req.family {
                    Some(_) => {
                        Error::NotFound(format!("family: no active model of family {family:?}"))
                    }
                    None => Error::FailedPrecondition("no active model".into()),
                })?
        }
    };
    let actor = req.actor.clone();
    let answer = store
        .submit(
            actor.clone(),
            op::BeginRun {
                model: model.clone(),
                as_of: req.as_of,
                dry_run: req.dry_run,
                requested_by: req.requested_by.clone(),
            },
            request,
            None,
        )
        .await?;
    let run = match answer {
        Answer::Replay(Remembered::Run(id)) => return Ok(Started::Existing(id)),
        a => a.outcome()?,
    };
    let (tx, rx) = mpsc::channel(64);
    let handle = tokio::runtime::Handle::current();
    let id = run.id;
    std::thread::Builder::new()
        .name(format!("scoring-run-{id}"))
        .spawn(move || {
            let t0 = Instant::now();
            let computed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                compute(&store, run, model, &tx, t0)
            }));
            let (result, panicked) = match computed {
                Ok(r) => (r.and_then(|view| {
                    let finish = op::FinishRun { run: view.run.clone(), view: Some(view) };
                    handle.block_on(store.write_as(actor.clone(), finish))
                }), false),
                Err(p) => {
                    let msg = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panic".into());
                    (Err(Error::Unavailable(format!("scoring job panicked: {msg}"))), true)
                }
            };
            match result {
                Ok(r) => {
                    tracing::info!(run = r.id, seconds = t0.elapsed().as_secs_f64(), classes = ?r.classes, "scoring run complete");
                    let _ = tx.blocking_send(Event::Done(Box::new(r)));
                }
                Err(e) => {
                    tracing::error!(run = id, error = %e, "scoring run failed; aborting it");
                    let abort = op::AbortRun {
                        id,
                        error: e.to_string(),
                    };
                    if let Err(e2) = handle.block_on(store.write_as(actor.clone(), abort)) {
                        tracing::error!(run = id, error = %e2, "could not mark the run aborted");
                    }
                    let _ = tx.blocking_send(Event::Failed(e.to_string()));
                    if panicked {
                        store.report_fault(e.to_string());
                    }
                }
            }
        })
        .map_err(|e| Error::Unavailable(format!("cannot start scoring thread: {e}")))?;
    Ok(Started::New(id, rx))
}

/// Per-thread scan state.
#[derive(Default)]
struct Part {
    entries: Vec<RunEntry>,
    reps: Vec<u64>,
    regions: HashMap<[u8; 6], [u64; 4]>,
    spot: SpotBuilder,
}

/// The total a progress report gives: the enterprises registered when the run started,
/// raised to those scored so far when enterprises registered during the run are scored
/// too (so a report never reads "28048/28044"; issue 15, probe 8).
fn reported_total(at_start: u64, processed: u64) -> u64 {
    at_start.max(processed)
}

fn compute(
    store: &Store,
    mut run: ScoringRun,
    model: Arc<Model>,
    tx: &mpsc::Sender<Event>,
    t0: Instant,
) -> Result<Box<RunView>> {
    let total = store.enterprise_count();
    let processed = AtomicU64::new(0);
    let classes: [AtomicU64; 4] = Default::default();
    let done = std::sync::atomic::AtomicBool::new(false);
    let as_of = run.as_of;
    let rules = &store.options().rules;
    let run_id = run.id;
    let report = |phase: &'static str, processed: u64, classes: [u64; 4]| {
        let total = reported_total(total, processed);
        store.note_batch_progress(processed, total);
        let _ = tx.try_send(Event::Progress(Progress {
            run_id,
            phase,
            processed,
            total,
            classes,
            elapsed: t0.elapsed(),
        }));
    };
    let snapshot =
        |c: &[AtomicU64; 4]| -> [u64; 4] { [0, 1, 2, 3].map(|i| c[i].load(Ordering::Relaxed)) };
    // A specialised model rates the enterprises in its scope, reading the general class
    // in force (the general current run, with its re-scores) where it has GENERAL_CLASS.
    let general_run = match model.is_general() || model.spec(Indicator::GeneralClass).is_none() {
        true => None,
        false => store.current_run()?.map(|v| v.run.id),
    };
    let inputs = |u: &Uscc, related: bool| -> Result<Inputs> {
        let general = match general_run {
            None => None,
            Some(id) => match store.class_in_run(u, Some(id)) {
                Ok(c) => Some(c.class),
                Err(Error::NotFound(_)) => None,
                Err(e) => return Err(e),
            },
        };
        Ok(Inputs { related, general })
    };
    let rated = |d: &crate::domain::EnterpriseRecords| match &d.enterprise {
        Some(e) => model.rates(e),
        None => model.is_general(),
    };

    // 2. Scan.
    let parts = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(250));
                report(
                    "scan",
                    processed.load(Ordering::Relaxed),
                    snapshot(&classes),
                );
            }
        });
        /// Stops the progress thread however the scan ends — also by a panic, which
        /// `scope` propagates only once every thread it spawned has finished.
        struct Done<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let _done = Done(&done);
        let r = store.scan_dossiers(Part::default, |part, u, d| {
            crate::fault::point("batch.scan");
            if !rated(&d) {
                processed.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            let a = assess(&d, inputs(&u, false)?, &model, rules, as_of, |_| {});
            part.entries.push(RunEntry::new(u, &a, false));
            part.reps.push(rep_key(&d).unwrap_or(0));
            part.spot.push(&d);
            if let Some(e) = &d.enterprise {
                part.regions.entry(*e.region.as_bytes()).or_default()[a.class.index()] += 1;
            }
            processed.fetch_add(1, Ordering::Relaxed);
            classes[a.class.index()].fetch_add(1, Ordering::Relaxed);
            Ok(())
        });
        drop(_done);
        r
    })?;
    let mut entries = Vec::with_capacity(processed.load(Ordering::Relaxed) as usize);
    let mut reps = Vec::with_capacity(entries.capacity());
    let mut regions: HashMap<[u8; 6], [u64; 4]> = HashMap::new();
    let mut spot = SpotBuilder::default();
    for (i, p) in parts.into_iter().enumerate() {
        if i == 0 {
            entries.extend(p.entries);
            reps.extend(p.reps);
            spot.append(p.spot);
        } else {
            entries.extend(p.entries.into_iter().rev());
            reps.extend(p.reps.into_iter().rev());
            spot.append_reversed(p.spot);
        }
        for (r, c) in p.regions {
            let t = regions.entry(r).or_default();
            for k in 0..4 {
                t[k] += c[k];
            }
        }
    }
    debug_assert!(entries.windows(2).all(|w| w[0].uscc < w[1].uscc));
    let mut class_counts = snapshot(&classes);
    // Enterprises read (a specialised run scores those in its scope among them).
    let scanned = processed.load(Ordering::Relaxed);
    report("relations", scanned, class_counts);

    // 3. Relations.
    let mut sources: HashMap<u64, u32> = HashMap::new();
    for (e, &rep) in entries.iter().zip(&reps) {
        if rep != 0 && e.flags & FLAG_SOURCE != 0 {
            *sources.entry(rep).or_default() += 1;
        }
    }
    let mut related_count = 0u64;
    for i in 0..entries.len() {
        let rep = reps[i];
        if rep == 0 || !related(&sources, Some(rep), entries[i].flags & FLAG_SOURCE != 0) {
            continue;
        }
        let u = entries[i].uscc;
        let Some(d) = store.enterprise_records(&u)? else {
            continue;
        };
        let a = assess(&d, inputs(&u, true)?, &model, rules, as_of, |_| {});
        spot.set(i, &d);
        let before = entries[i].class;
        // Keep the source flag of the relation-free scoring (relations do not cascade).
        let source = entries[i].flags & FLAG_SOURCE;
        entries[i] = RunEntry::new(u, &a, true);
        entries[i].flags = (entries[i].flags & !FLAG_SOURCE) | source;
        related_count += 1;
        if before != a.class {
            class_counts[before.index()] -= 1;
            class_counts[a.class.index()] += 1;
            if let Some(e) = &d.enterprise {
                let t = regions.entry(*e.region.as_bytes()).or_default();
                t[before.index()] -= 1;
                t[a.class.index()] += 1;
            }
        }
    }

    // 4. Compare with the current run.
    report("compare", scanned, class_counts);
    let transitions = match store.current_run_of(&model.family)? {
        Some(cur) => Some(compare(store, &cur, &entries, &model, as_of)?),
        None => None,
    };

    // 5. Write.
    report("write", scanned, class_counts);
    store.write_run_results(run_id, &entries, &sources)?;
    let mut regions: Vec<(String, [u64; 4])> = regions
        .into_iter()
        .map(|(r, c)| (String::from_utf8_lossy(&r).to_string(), c))
        .collect();
    regions.sort();
    run.enterprises = entries.len() as u64;
    run.classes = class_counts;
    run.regions = regions;
    run.related = related_count;
    run.transitions = transitions;
    report("activate", scanned, class_counts);
    let spot = Arc::new(spot.finish(entries.iter().map(|e| e.class)));
    Ok(Box::new(RunView {
        run,
        model,
        entries,
        sources,
        spot,
        // Overrides written while the run was computed are marked when it finishes.
        rescored: Arc::default(),
    }))
}

/// Class transitions from the current run to `entries`, with a few explained examples.
fn compare(
    store: &Store,
    cur: &RunView,
    entries: &[RunEntry],
    model: &Model,
    as_of: Date,
) -> Result<Transitions> {
    let rules = &store.options().rules;
    let mut t = Transitions {
        baseline_run: cur.run.id,
        ..Transitions::default()
    };
    let mut picked: Vec<(RunEntry, RunEntry)> = Vec::new();
    let mut per_cell = [[0usize; 4]; 4];
    let (mut i, mut j) = (0, 0);
    let old = &cur.entries;
    while j < entries.len() {
        let new = entries[j];
        match old
            .get(i)
            .map(|o| o.uscc.as_bytes().cmp(new.uscc.as_bytes()))
        {
            Some(std::cmp::Ordering::Less) => i += 1,
            Some(std::cmp::Ordering::Equal) => {
                let o = old[i];
                t.matrix[o.class.index()][new.class.index()] += 1;
                let cell = &mut per_cell[o.class.index()][new.class.index()];
                if o.class != new.class && *cell < EXAMPLES_PER_CELL {
                    *cell += 1;
                    picked.push((o, new));
                }
                i += 1;
                j += 1;
            }
            _ => {
                t.new_enterprises += 1;
                j += 1;
            }
        }
    }
    for (o, n) in picked {
        let Some(d) = store.enterprise_records(&o.uscc)? else {
            continue;
        };
        // Each side as it was scored: its relation and the general class it read.
        let inputs = |e: &RunEntry| Inputs {
            related: e.related(),
            general: general_input(e.flags),
        };
        let (_, before) = explain(&d, inputs(&o), &cur.model, rules, cur.run.as_of);
        let (_, after) = explain(&d, inputs(&n), model, rules, as_of);
        t.examples.push(TransitionExample {
            uscc: o.uscc,
            from: o.class,
            to: n.class,
            from_score: o.score.into(),
            to_score: n.score.into(),
            moved: moved(&before, &after),
        });
    }
    Ok(t)
}

/// Per indicator, total points before and after, where they differ.
fn moved(
    before: &[crate::domain::scoring::Explained],
    after: &[crate::domain::scoring::Explained],
) -> Vec<(String, Centi, Centi)> {
    let mut sums: std::collections::BTreeMap<&'static str, (Centi, Centi)> = Default::default();
    for f in before {
        sums.entry(f.indicator.code()).or_default().0 += f.points;
    }
    for f in after {
        sums.entry(f.indicator.code()).or_default().1 += f.points;
    }
    sums.into_iter()
        .filter(|(_, (b, a))| b != a)
        .map(|(k, (b, a))| (k.to_string(), b, a))
        .collect()
}

/// Runs a whole batch in process (CLI and benchmarks): waits for completion, calling
/// `on_progress` for each event.
pub async fn run_to_completion(
    store: Store,
    req: BatchRequest,
    mut on_progress: impl FnMut(&Progress),
) -> Result<ScoringRun> {
    let mut rx = match start(store, req, None).await? {
        Started::New(_, rx) => rx,
        Started::Existing(id) => {
            return Err(Error::Corrupt(format!(
                "a run without a request id was bound to run {id}"
            )))
        }
    };
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Progress(p) => on_progress(&p),
            Event::Done(r) => return Ok(*r),
            Event::Failed(e) => return Err(Error::Unavailable(format!("scoring run failed: {e}"))),
        }
    }
    Err(Error::Unavailable(
        "scoring run ended without a result".into(),
    ))
}

/// The events of run `id` for a caller that did not start it (a retry of the request
/// that did): progress while it is being computed (every `every`), then its end.
pub fn follow(store: Store, id: u64, every: Duration) -> mpsc::Receiver<Event> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let t0 = Instant::now();
        // A run begun but not yet published as being computed (its batch is applied,
        // the flush not done) looks "running" for a moment: wait before calling it
        // interrupted.
        let mut patience = 20;
        loop {
            let ev = match store.building_run() {
                Ok(Some(b)) if b == id => {
                    let (processed, total) = store.batch_progress();
                    Some(Event::Progress(Progress {
                        run_id: id,
                        phase: "scan",
                        processed,
                        total,
                        classes: [0; 4],
                        elapsed: t0.elapsed(),
                    }))
                }
                Ok(_) => None,
                Err(e) => {
                    let _ = tx.send(Event::Failed(e.to_string())).await;
                    return;
                }
            };
            match ev {
                Some(ev) => {
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(every).await;
                }
                None => {
                    let end = match store.run(id) {
                        Ok(Some(r)) if r.state == crate::store::RunState::Aborted => {
                            Event::Failed(format!("run {id} aborted: {}", r.error))
                        }
                        Ok(Some(r)) if r.state == crate::store::RunState::Running => {
                            if patience > 0 {
                                patience -= 1;
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                            Event::Failed(format!("run {id} was interrupted"))
                        }
                        Ok(Some(r)) => Event::Done(Box::new(r)),
                        Ok(None) => Event::Failed(format!("run {id} not found")),
                        Err(e) => Event::Failed(e.to_string()),
                    };
                    let _ = tx.send(end).await;
                    return;
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::reported_total;

    /// Enterprises registered during a run may be scored by it: the reported total rises
    /// with them instead of falling below `processed`.
    #[test]
    fn progress_never_exceeds_its_total() {
        assert_eq!(reported_total(28_044, 10), 28_044);
        assert_eq!(reported_total(28_044, 28_048), 28_048);
        for (t, p) in [(0, 0), (0, 5), (5, 0), (7, 7)] {
            assert!(p <= reported_total(t, p));
        }
    }
}
