//! The batch scoring job (批量评分): scores every enterprise a model rates as of one
//! date into a new run — or, with `all_families`, every family's active model in one
//! pass over the dossiers (the general model first), one run per family.
//!
//! 1. `BeginRun` (through the writer) per run, the others `beside` the first: refused
//!    while another pass is computed; from now on writes re-score onto the new runs too.
//! 2. Scan: every dossier once, two threads meeting in the middle; each model whose scope
//!    rates the enterprise scores it without relations (a specialised model reading the
//!    general class just computed), and its legal-representative key is kept.
//! 3. Relations, per run: the keys of D-class or serious-illegal-listed enterprises are
//!    counted; the few enterprises sharing one (other than themselves) are re-scored with
//!    the relation points. Linear, no pairwise comparison; relation points do not
//!    cascade. A specialised run also re-scores the enterprises whose general class the
//!    general run's relation points moved.
//! 4. Compare with the family's current run: the class-transition matrix and examples
//!    with the indicators that moved them.
//! 5. Write ≈ 3,400 result blocks per run, flush, then `FinishRun` per run, in order
//!    (through the writer), makes each run current in one step (or its family's pending
//!    candidate, for a dry run).
//! 6. The caller's event stream ends; each run's spot base is stored (single-node: a
//!    restart's shortcut, off the pass's path), then `RetireRuns` deletes the results of
//!    the runs beyond `store.keep_runs`.
//!
//! Any error aborts the runs not yet finished (their partial results are dropped, the
//! old runs stay current); a crash is recovered at the next open the same way.

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
        Centi, Date, Indicator, Model, RiskClass, Uscc,
    },
    error::{Error, Result},
    store::{
        op,
        scoring::{general_input, related, rep_key, Entries, EntryIndex, FLAG_SOURCE},
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
    /// Score every family's active model in one pass over the dossiers (the general
    /// model first); `model_version` and `family` must be `None`.
    pub all_families: bool,
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
    let models: Vec<Arc<Model>> = if req.all_families {
        if req.model_version.is_some() || req.family.is_some() {
            return Err(Error::invalid(
                "all_families",
                "scores every family's active model: leave model_version and family empty",
            ));
        }
        store.active_models()?
    } else {
        vec![match &req.model_version {
            Some(v) => {
                let m = store
                    .model(v)?
                    .ok_or_else(|| Error::NotFound(format!("model_version: model {v:?}")))?;
                if let Some(f) = req.family.as_deref().filter(|f| *f != m.family) {
                    return Err(Error::invalid(
                        "family",
                        format!("{f:?}, but model {v:?} is of family {:?}", m.family),
                    ));
                }
                m
            }
            None => {
                let family = req.family.as_deref().unwrap_or(GENERAL);
                store.active_model_of(family)?.ok_or_else(|| match family {
                    GENERAL => Error::FailedPrecondition("no active model".into()),
                    _ => Error::NotFound(format!("family: an active model of family {family:?}")),
                })?
            }
        }]
    };
    let Some(first_model) = models.first().cloned() else {
        return Err(Error::FailedPrecondition("no active model".into()));
    };
    let actor = req.actor.clone();
    let begin = |model: Arc<Model>, beside: Option<u64>| op::BeginRun {
        model,
        as_of: req.as_of,
        dry_run: req.dry_run,
        requested_by: req.requested_by.clone(),
        beside,
    };
    // The first run binds the request id; the others are begun beside it.
    let answer = store
        .submit(
            actor.clone(),
            begin(first_model.clone(), None),
            request,
            None,
        )
        .await?;
    let first = match answer {
        Answer::Replay(Remembered::Run(id)) => return Ok(Started::Existing(id)),
        a => a.outcome()?,
    };
    let mut runs = vec![(first.clone(), first_model)];
    for m in &models[1..] {
        match store
            .write_as(actor.clone(), begin(m.clone(), Some(first.id)))
            .await
        {
            Ok(r) => runs.push((r, m.clone())),
            Err(e) => {
                abort_all(
                    &store,
                    &actor,
                    runs.iter().map(|(r, _)| r.id),
                    &e.to_string(),
                )
                .await;
                return Err(e);
            }
        }
    }
    let (tx, rx) = mpsc::channel(64);
    let handle = tokio::runtime::Handle::current();
    let id = first.id;
    std::thread::Builder::new()
        .name(format!("scoring-run-{id}"))
        .spawn(move || {
            let t0 = Instant::now();
            let ids: Vec<u64> = runs.iter().map(|(r, _)| r.id).collect();
            let computed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                compute(&store, runs, &tx, t0)
            }));
            let (views, panicked) = match computed {
                Ok(r) => (r, false),
                Err(p) => {
                    let msg = crate::error::panic_message(&*p);
                    (Err(Error::Unavailable(format!("scoring job panicked: {msg}"))), true)
                }
            };
            // From here until the old runs are retired, a graceful close waits for the job.
            let _tail = store.pass_tail();
            // Finish the runs in order (the general one first); a failure aborts the
            // ones not yet finished.
            let mut finished = 0;
            let mut bases = Vec::new();
            let result = views.and_then(|views| {
                for view in views {
                    bases.push((view.run.id, view.spot.clone()));
                    let finish = op::FinishRun { run: view.run.clone(), view: Some(Box::new(view)) };
                    let r = handle.block_on(store.write_as(actor.clone(), finish))?;
                    finished += 1;
                    tracing::info!(run = r.id, seconds = t0.elapsed().as_secs_f64(), classes = ?r.classes, "scoring run complete");
                    let _ = tx.blocking_send(Event::Done(Box::new(r)));
                }
                Ok(())
            });
            if let Err(e) = result {
                tracing::error!(run = id, error = %e, "scoring run failed; aborting it");
                handle.block_on(abort_all(&store, &actor, ids[finished..].iter().copied(), &e.to_string()));
                let _ = tx.blocking_send(Event::Failed(e.to_string()));
                if panicked {
                    store.report_fault(e.to_string());
                }
                return;
            }
            // The caller's stream ends here: the runs are current. Then each run's spot
            // base is stored (0.2–0.5 s at 3.5 M; until it is, a restart scans the
            // dossiers instead) and the runs beyond `store.keep_runs` are retired (an old
            // run's results take 0.4–0.7 s to read and delete at 3.5 M); a failure of
            // either is logged and leaves the work to a restart or the next pass.
            drop(tx);
            crate::fault::point("batch.spot_base");
            for (run, spot) in bases {
                if let Err(e) = store.write_spot_base(run, &spot) {
                    tracing::warn!(run, error = %e, "could not store the run's spot base; a restart will scan the dossiers");
                }
            }
            match handle.block_on(store.write_as(actor.clone(), op::RetireRuns { keep: ids })) {
                Ok(r) if !r.is_empty() => tracing::info!(runs = ?r, "old runs retired"),
                Ok(_) => {}
                Err(e) => tracing::warn!(run = id, error = %e, "could not retire old runs; the next pass will"),
            }
        })
        .map_err(|e| Error::Unavailable(format!("cannot start scoring thread: {e}")))?;
    Ok(Started::New(id, rx))
}

/// Marks runs aborted (their partial results dropped), logging what cannot be.
async fn abort_all(store: &Store, actor: &Actor, ids: impl Iterator<Item = u64>, error: &str) {
    for id in ids {
        let abort = op::AbortRun {
            id,
            error: error.to_string(),
        };
        if let Err(e2) = store.write_as(actor.clone(), abort).await {
            tracing::error!(run = id, error = %e2, "could not mark the run aborted");
        }
    }
}

/// Per-thread, per-run scan state.
struct Part {
    entries: Vec<RunEntry>,
    reps: Vec<u64>,
    regions: rustc_hash::FxHashMap<[u8; 6], [u64; 4]>,
    spot: SpotBuilder,
}

impl Part {
    /// With room for `n` enterprises.
    fn with_capacity(n: usize) -> Part {
        Part {
            entries: Vec::with_capacity(n),
            reps: Vec::with_capacity(n),
            regions: Default::default(),
            spot: SpotBuilder::with_capacity(n),
        }
    }
}

/// The total a progress report gives: the enterprises registered when the run started,
/// raised to those scored so far when enterprises registered during the run are scored
/// too (so a report never reads "28048/28044"; issue 15, probe 8).
fn reported_total(at_start: u64, processed: u64) -> u64 {
    at_start.max(processed)
}

/// One run of the pass, being computed.
struct Scored {
    run: ScoringRun,
    model: Arc<Model>,
    entries: Vec<RunEntry>,
    reps: Vec<u64>,
    regions: rustc_hash::FxHashMap<[u8; 6], [u64; 4]>,
    spot: SpotBuilder,
    classes: [u64; 4],
}

/// Computes every run of the pass from one scan of the dossiers: each run's model
/// scores the enterprises its scope rates; a specialised model reads the general class
/// computed in the same pass (or, without a general run in it, the general class in
/// force: the general current run with its re-scores).
fn compute(
    store: &Store,
    runs: Vec<(ScoringRun, Arc<Model>)>,
    tx: &mpsc::Sender<Event>,
    t0: Instant,
) -> Result<Vec<RunView>> {
    let total = store.enterprise_count();
    let processed = AtomicU64::new(0);
    let classes: [AtomicU64; 4] = Default::default();
    let as_of = runs[0].0.as_of;
    let rules = &store.options().rules;
    // Progress is the first run's during the scan, then each run's in its phases.
    let report = |run_id: u64, phase: &'static str, processed: u64, classes: [u64; 4]| {
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
    let run_id = runs[0].0.id;
    let models: Vec<Arc<Model>> = runs.iter().map(|(_, m)| m.clone()).collect();
    // A specialised model reads the general class of the pass — unless the pass is a dry
    // run (its general run may never become current): then, like a pass without a
    // general run, the general class in force (the general current run), as the dry
    // run's later re-scores read it too.
    let general_in_pass = models[0].is_general() && !runs[0].0.dry_run;
    // (Taken once: the scan reads it per enterprise without the scoring lock.)
    let general_run = match general_in_pass {
        true => None,
        false => store.current_run()?,
    };
    let general_in_force = |u: &Uscc| -> Result<Option<RiskClass>> {
        match &general_run {
            None => Ok(None),
            Some(v) => Ok(store.class_in_view(v, u)?.map(|c| c.class)),
        }
    };
    let reads_general: Vec<bool> = models
        .iter()
        .map(|m| !m.is_general() && m.spec(Indicator::GeneralClass).is_some())
        .collect();
    let rated = |m: &Model, d: &crate::domain::EnterpriseRecords| match &d.enterprise {
        Some(e) => m.rates(e),
        None => m.is_general(),
    };

    // Each phase's seconds, logged when the pass is computed (where a nightly run's time
    // goes, for an operator and for BENCHMARKS.md).
    let mut laps = Laps::start();
    // 2. Scan.
    let parts = std::thread::scope(|s| {
        // Progress every 250 ms until the scan ends — also by a panic, which `scope`
        // propagates only once every thread it spawned has finished: `stop` is dropped
        // either way, and the progress thread wakes at once (not at its next tick, which
        // held every pass up by 125 ms on average).
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        {
            let (processed, classes, report, snapshot) = (&processed, &classes, &report, &snapshot);
            s.spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(Duration::from_millis(250))
                {
                    report(
                        run_id,
                        "scan",
                        processed.load(Ordering::Relaxed),
                        snapshot(classes),
                    );
                }
            });
        }
        let _done = stop;
        // Room for every enterprise in each thread's part: the two threads meet wherever
        // they meet, a vector's untouched tail costs address space rather than memory, and
        // the merge below then appends the descending part to the ascending one in place
        // (no copy of either half while they grow, none of the ascending one after).
        let room = usize::try_from(total).unwrap_or(0).saturating_add(1024);
        let init = || -> Vec<Part> { models.iter().map(|_| Part::with_capacity(room)).collect() };
        let r = store.scan_dossiers(init, |parts, u, d| {
            crate::fault::point("batch.scan");
            let mut general = None;
            for (k, m) in models.iter().enumerate() {
                if !rated(m, d) {
                    continue;
                }
                let g = match (reads_general[k], general_in_pass) {
                    (false, _) => None,
                    (true, true) => general,
                    (true, false) => general_in_force(&u)?,
                };
                let a = assess(
                    d,
                    Inputs {
                        related: false,
                        general: g,
                    },
                    m,
                    rules,
                    as_of,
                    |_| {},
                );
                if m.is_general() {
                    general = Some(a.class);
                }
                let part = &mut parts[k];
                part.entries.push(RunEntry::new(u, &a, false));
                part.reps.push(rep_key(d).unwrap_or(0));
                part.spot.push(d);
                if let Some(e) = &d.enterprise {
                    part.regions.entry(*e.region.as_bytes()).or_default()[a.class.index()] += 1;
                }
                if k == 0 {
                    classes[a.class.index()].fetch_add(1, Ordering::Relaxed);
                }
            }
            processed.fetch_add(1, Ordering::Relaxed);
            Ok(())
        });
        drop(_done);
        r
    })?;
    laps.lap("scan");
    // Per run: the threads' parts in USCC order.
    let mut scored: Vec<Scored> = runs
        .into_iter()
        .map(|(run, model)| Scored {
            run,
            model,
            entries: Vec::new(),
            reps: Vec::new(),
            regions: Default::default(),
            spot: SpotBuilder::default(),
            classes: [0; 4],
        })
        .collect();
    for (i, thread) in parts.into_iter().enumerate() {
        for (sc, p) in scored.iter_mut().zip(thread) {
            if i == 0 {
                // Moved, with their room for the other part.
                sc.entries = p.entries;
                sc.reps = p.reps;
                sc.spot = p.spot;
            } else {
                // The spot index's half on a second thread: each copy first touches
                // its vector's tail, ≈ 0.1 s apiece at 3.5 M.
                std::thread::scope(|s| {
                    let (spot, theirs) = (&mut sc.spot, p.spot);
                    s.spawn(move || spot.append_reversed(theirs));
                    sc.entries.extend(p.entries.into_iter().rev());
                    sc.reps.extend(p.reps.into_iter().rev());
                });
            }
            for (r, c) in p.regions {
                let t = sc.regions.entry(r).or_default();
                for k in 0..4 {
                    t[k] += c[k];
                }
            }
        }
    }
    for sc in scored.iter_mut() {
        debug_assert!(sc.entries.windows(2).all(|w| w[0].uscc < w[1].uscc));
        for e in &sc.entries {
            sc.classes[e.class.index()] += 1;
        }
    }
    laps.lap("merge");
    // Enterprises read (a specialised run scores those in its scope among them).
    let scanned = processed.load(Ordering::Relaxed);
    report(run_id, "relations", scanned, scored[0].classes);

    // 3. Relations, run by run (the general one first): the relation points, and for a
    // specialised model the enterprises whose general class the relation points moved.
    let mut general_moved: HashMap<Uscc, RiskClass> = HashMap::new();
    let mut out = Vec::with_capacity(scored.len());
    for (k, mut sc) in scored.into_iter().enumerate() {
        let moved = reads_general[k] && general_in_pass;
        let sources = relations(store, &mut sc, &mut general_moved, moved, as_of)?;
        laps.lap("relations");
        // 4. Compare with the family's current run.
        report(sc.run.id, "compare", scanned, sc.classes);
        let transitions = match store.current_run_of(&sc.model.family)? {
            Some(cur) => Some(compare(store, &cur, &sc.entries, &sc.model, as_of)?),
            None => None,
        };
        laps.lap("compare");
        // 5. Write.
        report(sc.run.id, "write", scanned, sc.classes);
        // The look-up index is built beside the write (0.2 s at 3.5 M).
        let index = std::thread::scope(|s| {
            let index = s.spawn(|| EntryIndex::of(&sc.entries));
            store.write_run_results(sc.run.id, &sc.entries, &sources, &sc.spot)?;
            // (A panic there is a bug: passed on, as the scan's threads pass theirs.)
            Ok::<_, Error>(
                index
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            )
        })?;
        laps.lap("write");
        let mut regions: Vec<(String, [u64; 4])> = sc
            .regions
            .into_iter()
            .map(|(r, c)| (String::from_utf8_lossy(&r).to_string(), c))
            .collect();
        regions.sort();
        let mut run = sc.run;
        run.enterprises = sc.entries.len() as u64;
        run.classes = sc.classes;
        run.regions = regions;
        run.transitions = transitions;
        let spot = Arc::new(sc.spot.finish(sc.entries.iter().map(|e| e.class)));
        laps.lap("spot index");
        out.push(RunView {
            run,
            model: sc.model,
            entries: Arc::new(Entries::with_index(sc.entries, index)),
            sources: Arc::new(sources),
            spot,
            // Overrides written while the run was computed are marked when it finishes.
            rescored: Arc::default(),
            // Scored just now, under the rule book in force.
            empty_explanations: true,
        });
    }
    report(run_id, "activate", scanned, out[0].run.classes);
    tracing::info!(run = run_id, enterprises = scanned, phases = %laps, "scoring pass computed");
    Ok(out)
}

/// The seconds of each phase of a pass, in order (a run per model repeats its phases).
struct Laps {
    since: Instant,
    laps: Vec<(&'static str, f64)>,
}

impl Laps {
    fn start() -> Laps {
        Laps {
            since: Instant::now(),
            laps: Vec::new(),
        }
    }

    /// Ends the phase `name` now.
    fn lap(&mut self, name: &'static str) {
        self.laps.push((name, self.since.elapsed().as_secs_f64()));
        self.since = Instant::now();
    }
}

impl std::fmt::Display for Laps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, s)) in self.laps.iter().enumerate() {
            write!(f, "{}{name} {s:.2} s", if i == 0 { "" } else { ", " })?;
        }
        Ok(())
    }
}

/// The relation phase of one run. First, for a specialised model that reads the
/// general class (`reads_moved`), the enterprises in `general_moved` — whose general
/// class the general run's relation points changed in this pass — are re-scored with
/// their new general class (their relation-source flag with them). Then the
/// legal-representative keys of its D-class or serious-illegal-listed enterprises are
/// counted, and the few enterprises sharing one (other than themselves) re-scored with
/// the relation points. A general run records the classes it moves in `general_moved`.
/// Returns the relation sources.
fn relations(
    store: &Store,
    sc: &mut Scored,
    general_moved: &mut HashMap<Uscc, RiskClass>,
    reads_moved: bool,
    as_of: Date,
) -> Result<HashMap<u64, u32>> {
    let rules = &store.options().rules;
    // Re-scores entry `i`; returns its new class if it changed.
    let rescore = |sc: &mut Scored, i: usize, inputs: Inputs| -> Result<Option<RiskClass>> {
        let u = sc.entries[i].uscc;
        let Some(d) = store.enterprise_records(&u)? else {
            return Ok(None);
        };
        let a = assess(&d, inputs, &sc.model, rules, as_of, |_| {});
        sc.spot.set(i, &d);
        let before = sc.entries[i].class;
        let source = sc.entries[i].flags & FLAG_SOURCE;
        sc.entries[i] = RunEntry::new(u, &a, inputs.related);
        if inputs.related {
            // Keep the source flag of the relation-free scoring (relations do not
            // cascade).
            sc.entries[i].flags = (sc.entries[i].flags & !FLAG_SOURCE) | source;
        }
        if before == a.class {
            return Ok(None);
        }
        sc.classes[before.index()] -= 1;
        sc.classes[a.class.index()] += 1;
        if let Some(e) = &d.enterprise {
            let t = sc.regions.entry(*e.region.as_bytes()).or_default();
            t[before.index()] -= 1;
            t[a.class.index()] += 1;
        }
        Ok(Some(a.class))
    };
    if reads_moved && !general_moved.is_empty() {
        for i in 0..sc.entries.len() {
            if let Some(&g) = general_moved.get(&sc.entries[i].uscc) {
                let inputs = Inputs {
                    related: false,
                    general: Some(g),
                };
                rescore(sc, i, inputs)?;
            }
        }
    }
    let mut sources: HashMap<u64, u32> = HashMap::new();
    for (e, &rep) in sc.entries.iter().zip(&sc.reps) {
        if rep != 0 && e.flags & FLAG_SOURCE != 0 {
            *sources.entry(rep).or_default() += 1;
        }
    }
    // One bit per value of a key's low 20 bits (128 KiB, in cache): most enterprises
    // share no key with a source, and the bit rules them out without hashing the key
    // (the map's SipHash look-up for each of 3.5 M enterprises was a third of the phase).
    const MAYBE_BITS: u64 = (1 << 20) - 1;
    let mut maybe = vec![0u64; (MAYBE_BITS as usize + 1) / 64];
    for r in sources.keys() {
        let b = (r & MAYBE_BITS) as usize;
        maybe[b / 64] |= 1 << (b % 64);
    }
    let may_share = |rep: u64| {
        let b = (rep & MAYBE_BITS) as usize;
        maybe[b / 64] & (1 << (b % 64)) != 0
    };
    let mut related_count = 0u64;
    for i in 0..sc.entries.len() {
        let rep = sc.reps[i];
        if rep == 0
            || !may_share(rep)
            || !related(&sources, Some(rep), sc.entries[i].flags & FLAG_SOURCE != 0)
        {
            continue;
        }
        let inputs = Inputs {
            related: true,
            general: general_input(sc.entries[i].flags),
        };
        let moved = rescore(sc, i, inputs)?;
        related_count += 1;
        if let (Some(c), true) = (moved, sc.model.is_general()) {
            general_moved.insert(sc.entries[i].uscc, c);
        }
    }
    sc.run.related = related_count;
    Ok(sources)
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
        match old.get(i).map(|o| o.uscc.cmp(&new.uscc)) {
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
/// `on_progress` for each event; the runs of the pass, in order (one unless
/// `all_families`).
pub async fn run_to_completion(
    store: Store,
    req: BatchRequest,
    mut on_progress: impl FnMut(&Progress),
) -> Result<Vec<ScoringRun>> {
    let mut rx = match start(store, req, None).await? {
        Started::New(_, rx) => rx,
        Started::Existing(id) => {
            return Err(Error::Corrupt(format!(
                "a run without a request id was bound to run {id}"
            )))
        }
    };
    let mut done = Vec::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Progress(p) => on_progress(&p),
            Event::Done(r) => done.push(*r),
            Event::Failed(e) => return Err(Error::Unavailable(format!("scoring run failed: {e}"))),
        }
    }
    if done.is_empty() {
        return Err(Error::Unavailable(
            "scoring run ended without a result".into(),
        ));
    }
    Ok(done)
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
    use super::{reported_total, Laps};

    #[test]
    fn laps_print_each_phase_in_order() {
        let mut l = Laps::start();
        l.lap("scan");
        l.lap("write");
        let s = l.to_string();
        assert!(
            s.starts_with("scan 0.") && s.contains(" s, write 0."),
            "{s}"
        );
        assert!(s.ends_with(" s"), "{s}");
    }

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
