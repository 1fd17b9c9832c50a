//! Scoring runs and models: begin, finish, abort, activate, retire; the model registry;
//! the incremental re-score of every changed enterprise onto the live runs.

use super::*;
use crate::domain::{
    alert::{worsened, AlertDraft, AlertKind},
    scoring::Inputs,
    RiskClass,
};

/// Registers a model version (ALREADY_EXISTS if the version exists with other
/// content); `activate_if_none` makes it active when no model is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegisterModel {
    #[serde(with = "wire::model_source")]
    pub model: Arc<Model>,
    pub activate_if_none: bool,
}

/// What a model registration did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRegistered {
    pub version: String,
    /// False when the same version with the same content was registered already.
    pub created: bool,
}

impl Operation for RegisterModel {
    type Output = ModelRegistered;
    const RESCORES: bool = false;
    fn cause(&self) -> String {
        format!("model/{} registered", self.model.version)
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<ModelRegistered> {
        let (w, p) = tx.parts();
        w.register_model(p, self.model, self.activate_if_none)
    }
    logged!(RegisterModel);
}

/// Starts a scoring run (FAILED_PRECONDITION while another is being computed, unless
/// it is begun `beside` that run: a run of another model family computed in the same
/// pass over the dossiers).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BeginRun {
    #[serde(with = "wire::model_source")]
    pub model: Arc<Model>,
    pub as_of: Date,
    pub dry_run: bool,
    pub requested_by: String,
    /// The run being computed that this one joins (same pass, same as-of date).
    pub beside: Option<u64>,
}

impl Operation for BeginRun {
    type Output = ScoringRun;
    const RESCORES: bool = false;
    fn cause(&self) -> String {
        format!(
            "scoring run begun: model {} as of {}{}",
            self.model.version,
            self.as_of,
            if self.dry_run { " (dry run)" } else { "" }
        )
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<ScoringRun> {
        let (w, p) = tx.parts();
        w.begin_run(p, self)
    }
    /// A `RunBatchScoring` request id is bound to the run it began.
    fn binding(run: &ScoringRun, _options: &StoreOptions) -> Option<Remembered> {
        Some(Remembered::Run(run.id))
    }
    logged!(BeginRun);
}

/// Completes the run being computed, whose blocks are written: re-scores what changed
/// meanwhile, then makes it current (or the candidate, for a dry run). The value is the
/// run's summary; the job that computed the run hands over its in-memory view with it
/// (not serialized: a replica applying the operation loads the view from the blocks).
#[derive(Debug, Serialize, Deserialize)]
pub struct FinishRun {
    pub run: ScoringRun,
    #[serde(skip)]
    pub view: Option<Box<RunView>>,
}

impl Operation for FinishRun {
    type Output = ScoringRun;
    const RESCORES: bool = false;
    fn cause(&self) -> String {
        format!(
            "run/{} complete: {} enterprises, classes {:?}",
            self.run.id, self.run.enterprises, self.run.classes
        )
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<ScoringRun> {
        let (w, p) = tx.parts();
        let view = match self.view {
            Some(v) => RunView {
                run: self.run,
                ..*v
            },
            None => w.load_view(self.run)?,
        };
        let view = w.finish_run(p, view)?;
        let run = view.run.clone();
        p.scoring(move |st| {
            st.building.retain(|b| b.id != view.run.id);
            let f = st.family_mut(&view.model.family);
            let replaced = if view.run.dry_run {
                [f.candidate.replace(view), None]
            } else {
                f.active_model = Some(view.model.clone());
                [f.current.replace(view), f.candidate.take()]
            };
            drop_apart(replaced);
        });
        Ok(run)
    }
    logged!(FinishRun);
}

/// Writes part of the results of a run being computed (replicated mode: the computing
/// replica ships its result blocks, spot base and relation sources through the log, so
/// every replica stores the same bytes; single-node writes them beside the writer). Only
/// keys of that run's results are accepted. Not an audit event (`FinishRun` is).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WriteRunResults {
    pub run: u64,
    pub items: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Operation for WriteRunResults {
    type Output = ();
    const RESCORES: bool = false;
    const ALERTS: bool = false;
    const AUDITED: bool = false;
    fn cause(&self) -> String {
        format!("run/{} results ({} values)", self.run, self.items.len())
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<()> {
        let id = self.run;
        if !sc::read(&tx.w.scoring)?.building.iter().any(|b| b.id == id) {
            return Err(Error::FailedPrecondition(format!(
                "scoring run {id} is not being computed"
            )));
        }
        let (blocks, spot, sources) = (
            sc::blocks_prefix(id),
            sc::spot_prefix(id),
            sc::sources_key(id),
        );
        for (k, v) in &self.items {
            if !(k.starts_with(&blocks) || k.starts_with(&spot) || *k == sources) {
                return Err(Error::invalid(
                    "items",
                    format!("a key outside run {id}'s results"),
                ));
            }
            tx.p.put_unread(k, v);
        }
        Ok(())
    }
    logged!(WriteRunResults);
}

/// Marks the run being computed aborted and drops its results.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AbortRun {
    pub id: u64,
    pub error: String,
}

impl Operation for AbortRun {
    type Output = ScoringRun;
    const RESCORES: bool = false;
    fn cause(&self) -> String {
        format!("run/{} aborted: {}", self.id, self.error)
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<ScoringRun> {
        let (w, p) = tx.parts();
        let id = self.id;
        let run = w.abort_run(p, id, self.error)?;
        p.scoring(move |st| st.building.retain(|b| b.id != id));
        Ok(run)
    }
    logged!(AbortRun);
}

/// Retires the runs beyond the newest `store.keep_runs` (their results deleted, their
/// records kept as `Retired`), never a live run nor those of `keep`. Applied after a
/// pass's `FinishRun`s rather than in them: reading and deleting an old run's ≈ 3,400
/// result blocks takes 0.4–0.7 s at 3.5 M enterprises, and the new classes are served
/// that much sooner. A crash in between leaves one run too many, retired by the next
/// pass.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RetireRuns {
    pub keep: Vec<u64>,
}

impl Operation for RetireRuns {
    /// The runs retired.
    type Output = Vec<u64>;
    const RESCORES: bool = false;
    const ALERTS: bool = false;
    fn cause(&self) -> String {
        "runs beyond store.keep_runs retired".into()
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<Vec<u64>> {
        let (w, p) = tx.parts();
        w.retire_old_runs(p, &self.keep)
    }
    logged!(RetireRuns);
}

/// Makes the candidate (a complete dry run) current and its model active.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActivateRun {
    pub id: u64,
    pub by: String,
    pub reason: String,
}

impl Operation for ActivateRun {
    type Output = ScoringRun;
    const RESCORES: bool = false;
    fn cause(&self) -> String {
        format!("run/{} activated: {}", self.id, self.reason)
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<ScoringRun> {
        let (w, p) = tx.parts();
        let (run, view) = w.activate_run(p, self.id, self.by, self.reason)?;
        p.scoring(move |st| {
            let f = st.family_mut(&view.model.family);
            f.active_model = Some(view.model.clone());
            drop_apart([f.current.replace(view), f.candidate.take()]);
        });
        Ok(run)
    }
    logged!(ActivateRun);
}

impl Writer {
    /// Re-scores every enterprise the job changed onto every live run (current,
    /// candidate, being computed; of every model family whose scope rates it), in the
    /// job's own batch, recording the cause; with `alerting`, a class on the general
    /// current run worse than before raises an alert. A specialised model that reads the
    /// general class gets the one just re-scored onto the general current run.
    pub(super) fn rescore(
        &self,
        p: &mut Pending,
        cause: &str,
        now_ms: i64,
        alerting: bool,
    ) -> Result<()> {
        if p.dirty.is_empty() {
            return Ok(());
        }
        let st = sc::read(&self.scoring)?;
        /// A run to re-score onto: (id, model, as-of, its view if complete — a run being
        /// computed has no relations or spot index yet; they are resolved when it
        /// finishes).
        type Target<'s> = (u64, &'s Model, Date, Option<&'s RunView>);
        let mut targets: Vec<Target> = st
            .live()
            .map(|v| (v.run.id, &*v.model, v.run.as_of, Some(&**v)))
            .collect();
        for b in &st.building {
            targets.push((b.id, &b.model, b.as_of, None));
        }
        if targets.is_empty() {
            return Ok(());
        }
        // General targets first: a specialised model reads the general class.
        targets.sort_by_key(|t| !t.1.is_general());
        let today = p.at.today;
        let general = st.general().current.as_ref();
        let current = general.map(|v| v.run.id);
        let steps = self.options.alerts.worsen_steps;
        let mut puts = Vec::new();
        let mut drafts = Vec::new();
        for u in &p.dirty {
            let Some(Some(d)) = p.docs.get(u) else {
                continue;
            };
            let Some(e) = d.enterprise.as_ref() else {
                continue;
            };
            // The general class a specialised model reads: this write's re-score onto the
            // general current run (the first target, which rates every enterprise).
            let mut general_class = None;
            for &(id, model, run_as_of, view) in &targets {
                // The override readers see, if one may exist (read only where needed).
                let over = |p: &Pending| -> Result<Option<Override>> {
                    match view {
                        Some(v) if !v.rescored.may_have(u) => Ok(None),
                        _ => p
                            .get(&sc::override_key(id, u))?
                            .map(|o| codec::decode::<Override>(&o))
                            .transpose(),
                    }
                };
                if !model.rates(e) {
                    // Out of the model's scope now: a run that rated the enterprise (its
                    // entry, or a re-score) gets a tombstone, and its selector drops it.
                    let rated = match over(p)? {
                        Some(o) => o.flags & sc::FLAG_UNRATED == 0,
                        None => view.is_some_and(|v| v.lookup(u).is_some()),
                    };
                    if rated {
                        if let Some(v) = view {
                            v.rescored.mark(*u);
                            p.effects.push(Effect::SpotGone(Arc::clone(&v.spot), *u));
                        }
                        let gone = Override::unrated(run_as_of.max(today), cause, now_ms);
                        puts.push((sc::override_key(id, u), codec::encode(&gone)?));
                    }
                    continue;
                }
                let o = rescore_one(
                    d,
                    model,
                    &self.options.rules,
                    run_as_of.max(today),
                    view.map(|v| &*v.sources),
                    general_class,
                    cause,
                    now_ms,
                );
                if current == Some(id) {
                    if alerting {
                        // The class readers saw: the override, else the run's entry.
                        let before = match over(p)? {
                            Some(o) => Some(o.class),
                            None => general.and_then(|v| v.lookup(u)).map(|e| e.class),
                        };
                        if let Some(b) = before {
                            if worsened(b, o.class, steps) {
                                drafts.push(AlertDraft {
                                    kind: AlertKind::ClassWorsened,
                                    uscc: *u,
                                    region: e.region,
                                    class_before: Some(b),
                                    class_after: Some(o.class),
                                    records: Vec::new(),
                                    run_id: id,
                                });
                            }
                        }
                    }
                    general_class = Some(o.class);
                }
                if let Some(v) = view {
                    // Marked before the commit: a reader may then look for an override
                    // that is not there yet (and fall back to the run's entry), but never
                    // skip one that is.
                    v.rescored.mark(*u);
                    if let Some(row) = sc::spot_row(*u, d, o.class, o.score) {
                        p.effects.push(Effect::Spot(Arc::clone(&v.spot), row));
                    }
                }
                puts.push((sc::override_key(id, u), codec::encode(&o)?));
            }
        }
        drop(st);
        for (k, v) in puts {
            p.put(k, v);
        }
        p.drafts.extend(drafts);
        Ok(())
    }

    pub(super) fn register_model(
        &self,
        p: &mut Pending,
        model: Arc<Model>,
        activate_if_none: bool,
    ) -> Result<ModelRegistered> {
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
        let activate = activate_if_none
            && sc::read(&self.scoring)?
                .family(&model.family)
                .active_model
                .is_none();
        if activate {
            p.put(
                keys::counter(&sc::family_counter("active_model", &model.family)),
                model.version.as_bytes().to_vec(),
            );
        }
        let m = model.clone();
        p.scoring(move |st| {
            if activate {
                st.family_mut(&m.family).active_model = Some(m.clone());
            }
            st.models.insert(m.version.clone(), m);
        });
        Ok(ModelRegistered {
            version: model.version.clone(),
            created,
        })
    }

    pub(super) fn begin_run(&self, p: &mut Pending, op: BeginRun) -> Result<ScoringRun> {
        let BeginRun {
            model,
            as_of,
            dry_run,
            requested_by,
            beside,
        } = op;
        let now_ms = p.at.now_ms;
        let st = sc::read(&self.scoring)?;
        match (beside, st.building.first()) {
            (_, None) => {
                if let Some(id) = beside {
                    return Err(Error::FailedPrecondition(format!(
                        "scoring run {id} is not being computed"
                    )));
                }
            }
            (Some(id), Some(_)) if st.building.iter().any(|b| b.id == id) => {
                if st
                    .building
                    .iter()
                    .any(|b| b.model.family == model.family || b.as_of != as_of)
                {
                    return Err(Error::FailedPrecondition(format!(
                        "a run beside run {id} needs another model family and the same as-of date"
                    )));
                }
            }
            (_, Some(b)) => {
                return Err(Error::FailedPrecondition(format!(
                    "scoring run {} is still being computed; wait for it or let it fail",
                    b.id
                )))
            }
        }
        if !st.models.contains_key(&model.version) {
            return Err(Error::NotFound(format!(
                "model: version {:?}",
                model.version
            )));
        }
        let id = sc::get_counter(&self.tree, "next_run")?.unwrap_or(1);
        p.put(keys::counter("next_run"), (id + 1).to_be_bytes().to_vec());
        let run = ScoringRun::begun(
            id,
            model.version.clone(),
            as_of,
            dry_run,
            requested_by,
            now_ms,
        );
        p.put(sc::run_key(id), codec::encode(&run)?);
        drop(st);
        // The run is live for re-scoring once durable (the writer publishes this before
        // it runs another job).
        p.scoring(move |st| st.building.push(Building { id, model, as_of }));
        Ok(run)
    }

    /// The in-memory view of a run whose blocks are written (a replica finishing a run
    /// it did not compute).
    fn load_view(&self, run: ScoringRun) -> Result<RunView> {
        let model = sc::read(&self.scoring)?
            .models
            .get(&run.model_version)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("model: version {:?}", run.model_version)))?;
        sc::load_views(&self.tree, &self.options.rules, vec![(run, model)])?
            .pop()
            .ok_or_else(|| Error::Corrupt("run view not loaded".into()))
    }

    pub(super) fn finish_run(&self, p: &mut Pending, mut view: RunView) -> Result<Arc<RunView>> {
        let now_ms = p.at.now_ms;
        let id = view.run.id;
        let building = sc::read(&self.scoring)?.building.clone();
        if !building.iter().any(|b| b.id == id) {
            return Err(Error::FailedPrecondition(format!(
                "scoring run {id} is not being computed"
            )));
        }
        // Enterprises written while the run was computed were re-scored onto it without
        // relations; now the relation sources are known.
        let today = p.at.today;
        let as_of = view.run.as_of.max(today);
        let mut changed = Vec::new();
        for kv in self.tree.scan_prefix(sc::overrides_prefix(id)) {
            let (k, _) = kv?;
            let u = Uscc::from_bytes(&k[9..])?;
            view.rescored.mark(u);
            changed.push(u);
        }
        // A specialised run scanned some enterprises before a write took them out of its
        // scope (a changed profile): the general runs re-scored every written enterprise,
        // so their overrides name the candidates; those the run rated but its model no
        // longer rates get a tombstone.
        if !view.model.is_general() {
            let general_ids: Vec<u64> = {
                let st = sc::read(&self.scoring)?;
                st.general()
                    .current
                    .iter()
                    .map(|v| v.run.id)
                    .chain(
                        st.building
                            .iter()
                            .filter(|b| b.model.is_general())
                            .map(|b| b.id),
                    )
                    .collect()
            };
            let seen: std::collections::HashSet<Uscc> = changed.iter().copied().collect();
            let mut gone = std::collections::BTreeSet::new();
            for g in general_ids {
                for kv in self.tree.scan_prefix(sc::overrides_prefix(g)) {
                    let (k, _) = kv?;
                    let u = Uscc::from_bytes(&k[9..])?;
                    if view.lookup(&u).is_none() || seen.contains(&u) || gone.contains(&u) {
                        continue;
                    }
                    let rated = p
                        .doc(&u)?
                        .and_then(|d| d.enterprise.as_ref().map(|e| view.model.rates(e)));
                    if rated == Some(false) {
                        gone.insert(u);
                    }
                }
            }
            for u in gone {
                view.rescored.mark(u);
                view.spot.remove(u)?;
                let tomb = Override::unrated(as_of, "", now_ms);
                p.put(sc::override_key(id, &u), codec::encode(&tomb)?);
            }
        }
        let mut new_overrides = HashMap::new();
        let general = sc::read(&self.scoring)?.general().current.clone();
        for u in changed {
            let Some(d) = p.doc(&u)?.cloned() else {
                continue;
            };
            if !d.enterprise.as_ref().is_some_and(|e| view.model.rates(e)) {
                // Left the model's scope while the run was computed: a tombstone.
                view.spot.remove(u)?;
                let gone = Override::unrated(as_of, "", now_ms);
                p.put(sc::override_key(id, &u), codec::encode(&gone)?);
                continue;
            }
            let general_class = match &general {
                Some(g) if !view.model.is_general() => self.class_on_pending(p, g, &u)?,
                _ => None,
            };
            let mut o = rescore_one(
                &d,
                &view.model,
                &self.options.rules,
                as_of,
                Some(&view.sources),
                general_class,
                "",
                now_ms,
            );
            if let Some(row) = sc::spot_row(u, &d, o.class, o.score) {
                view.spot.upsert(row)?;
            }
            if let Some(old) = self.tree.get(sc::override_key(id, &u))? {
                let old: Override = codec::decode(&old)?;
                o.cause = old.cause;
                o.at_ms = old.at_ms;
            }
            new_overrides.insert(u, o.class);
            p.put(sc::override_key(id, &u), codec::encode(&o)?);
        }
        // The run about to become current: every enterprise it puts in a worse class
        // than the run it replaces raises an alert, in this batch.
        let family = view.model.family.clone();
        if !view.run.dry_run && self.options.alerts.enabled && view.model.is_general() {
            let old = sc::read(&self.scoring)?.general().current.clone();
            if let Some(old) = old {
                let drafts = self.run_worsened(&old, &view, &new_overrides)?;
                p.drafts.extend(drafts);
            }
        }
        view.run.state = RunState::Complete;
        view.run.finished_at_ms = Some(now_ms);
        if !view.run.dry_run {
            view.run.activated_at_ms = Some(now_ms);
            view.run.activated_by = view.run.requested_by.clone();
            view.run.activation_reason = "batch run (not a dry run)".into();
            p.put(
                keys::counter(&sc::family_counter("current_run", &family)),
                id.to_be_bytes().to_vec(),
            );
            p.put(
                keys::counter(&sc::family_counter("active_model", &family)),
                view.model.version.as_bytes().to_vec(),
            );
        }
        p.put(sc::run_key(id), codec::encode(&view.run)?);
        // (The runs beyond `keep_runs` are retired by the `RetireRuns` that follows.)
        Ok(Arc::new(view))
    }

    /// Deletes complete and aborted runs beyond the newest `keep_runs`, never the
    /// current run, the candidate or those of `keep`. Returns the runs retired.
    pub(super) fn retire_old_runs(&self, p: &mut Pending, keep: &[u64]) -> Result<Vec<u64>> {
        let st = sc::read(&self.scoring)?;
        let protected: Vec<u64> = st
            .live()
            .map(|v| v.run.id)
            .chain(keep.iter().copied())
            .collect();
        drop(st);
        let runs = sc::list_runs(&self.tree)?;
        let keep_n = self.options.keep_runs.max(1);
        let mut kept = 0;
        let mut retired = Vec::new();
        for r in &runs {
            if r.state == RunState::Retired {
                continue;
            }
            kept += 1;
            if kept <= keep_n || protected.contains(&r.id) || r.state == RunState::Running {
                continue;
            }
            // Results go; the run's record stays (receipts and history name it).
            for prefix in [
                sc::blocks_prefix(r.id),
                sc::spot_prefix(r.id),
                sc::overrides_prefix(r.id),
            ] {
                for kv in self.tree.scan_prefix(prefix) {
                    let (k, _) = kv?;
                    p.del(k.to_vec());
                }
            }
            p.del(sc::sources_key(r.id));
            let mut r = r.clone();
            r.state = RunState::Retired;
            p.put(sc::run_key(r.id), codec::encode(&r)?);
            retired.push(r.id);
        }
        if !retired.is_empty() {
            p.describe(|| Change {
                target: "runs".into(),
                after: format!("results of runs {retired:?} deleted (store.keep_runs)"),
                ..Change::default()
            });
        }
        Ok(retired)
    }

    pub(super) fn abort_run(&self, p: &mut Pending, id: u64, error: String) -> Result<ScoringRun> {
        let now_ms = p.at.now_ms;
        let mut run = sc::load_run(&self.tree, id)?
            .ok_or_else(|| Error::NotFound(format!("scoring run {id}")))?;
        run.state = RunState::Aborted;
        run.error = error;
        run.finished_at_ms = Some(now_ms);
        for prefix in [
            sc::blocks_prefix(id),
            sc::spot_prefix(id),
            sc::overrides_prefix(id),
        ] {
            for kv in self.tree.scan_prefix(prefix) {
                let (k, _) = kv?;
                p.del(k.to_vec());
            }
        }
        p.del(sc::sources_key(id));
        p.put(sc::run_key(id), codec::encode(&run)?);
        Ok(run)
    }

    pub(super) fn activate_run(
        &self,
        p: &mut Pending,
        id: u64,
        by: String,
        reason: String,
    ) -> Result<(ScoringRun, Arc<RunView>)> {
        let now_ms = p.at.now_ms;
        let st = sc::read(&self.scoring)?;
        if st
            .families
            .values()
            .any(|f| f.current.as_ref().is_some_and(|v| v.run.id == id))
        {
            return Err(Error::FailedPrecondition(format!(
                "scoring run {id} is already current"
            )));
        }
        let candidate = st
            .families
            .values()
            .find_map(|f| f.candidate.clone().filter(|v| v.run.id == id));
        let previous = candidate
            .as_ref()
            .and_then(|c| st.family(&c.model.family).current.clone());
        let Some(candidate) = candidate else {
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
        let family = candidate.model.family.clone();
        p.put(sc::run_key(id), codec::encode(&run)?);
        p.put(
            keys::counter(&sc::family_counter("current_run", &family)),
            id.to_be_bytes().to_vec(),
        );
        p.put(
            keys::counter(&sc::family_counter("active_model", &family)),
            run.model_version.as_bytes().to_vec(),
        );
        let view = Arc::new(RunView {
            run: run.clone(),
            model: candidate.model.clone(),
            entries: Arc::clone(&candidate.entries),
            sources: Arc::clone(&candidate.sources),
            spot: candidate.spot.clone(),
            rescored: candidate.rescored.clone(),
            empty_explanations: candidate.empty_explanations,
        });
        // The candidate becomes current: every enterprise it puts in a worse class than
        // the run it replaces raises an alert, in this batch.
        if let (Some(old), true) = (
            previous,
            self.options.alerts.enabled && candidate.model.is_general(),
        ) {
            let overrides = self.override_classes(id)?;
            let drafts = self.run_worsened(&old, &view, &overrides)?;
            p.drafts.extend(drafts);
        }
        Ok((run, view))
    }
}

impl Writer {
    /// The class of `u` on a live run, as this job's batch has it so far: its override
    /// if one may exist, else its entry; `None` if the run does not rate it.
    pub(super) fn class_on_pending(
        &self,
        p: &Pending,
        v: &RunView,
        u: &Uscc,
    ) -> Result<Option<RiskClass>> {
        if v.rescored.may_have(u) {
            if let Some(o) = p.get(&sc::override_key(v.run.id, u))? {
                let o: Override = codec::decode(&o)?;
                return Ok((o.flags & sc::FLAG_UNRATED == 0).then_some(o.class));
            }
        }
        Ok(v.lookup(u).map(|e| e.class))
    }
}

/// Scores one dossier for an override on a run (`general`: the general class, for a
/// specialised model that reads it).
#[allow(clippy::too_many_arguments)] // the scoring inputs, then the cause and its time
pub(super) fn rescore_one(
    d: &EnterpriseRecords,
    model: &Model,
    rules: &RuleBook,
    as_of: Date,
    sources: Option<&HashMap<u64, u32>>,
    general: Option<RiskClass>,
    cause: &str,
    now_ms: i64,
) -> Override {
    let inputs = |related| Inputs { related, general };
    let base = assess(d, inputs(false), model, rules, as_of, |_| {});
    let related = sources.is_some_and(|s| sc::related(s, sc::rep_key(d), base.relation_source));
    let a = if related {
        assess(d, inputs(true), model, rules, as_of, |_| {})
    } else {
        base
    };
    let e = RunEntry::new(Uscc::placeholder(), &a, related);
    Override {
        class: e.class,
        score: e.score.into(),
        // An override is always explained from the dossier: the entries' flag is not its.
        flags: e.flags & !sc::FLAG_NO_FACTORS,
        as_of,
        cause: cause.to_string(),
        at_ms: now_ms,
    }
}
