//! Draw plans (抽查计划), their one draw and their inspector teams.

use super::*;
use crate::{domain::joint, store::draws::JointState};

/// Stores a draw plan with its frozen populations (one per stratum), whom the
/// exemptions removed from each and, for a plan naming check items, which items apply to
/// each enterprise of the populations, under a new id.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavePlan {
    pub plan: Box<DrawPlan>,
    pub populations: Vec<Vec<Uscc>>,
    pub exempted: Vec<Vec<(Uscc, Exemption)>>,
    /// Per stratum, parallel to its population (empty without check items).
    pub masks: Vec<Vec<u64>>,
}

impl Operation for SavePlan {
    type Output = DrawPlan;
    fn cause(&self) -> String {
        format!(
            "draw plan for task {:?} on run {}",
            self.plan.task_id, self.plan.run_id
        )
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<DrawPlan> {
        let (w, p) = tx.parts();
        w.save_plan(p, *self.plan, self.populations, self.exempted, self.masks)
    }
    logged!(SavePlan);
}

/// Stores the receipt of a plan's one draw (FAILED_PRECONDITION if it was drawn).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordDraw {
    pub plan_id: u64,
    pub receipt: Box<DrawReceipt>,
    /// For a plan with check items: which apply to each selected enterprise, per
    /// stratum, parallel to the receipt's `selected`; empty otherwise.
    pub selected_masks: Vec<Vec<u64>>,
}

impl Operation for RecordDraw {
    type Output = DrawPlan;
    fn cause(&self) -> String {
        format!(
            "plan/{} drawn with seed {:?}",
            self.plan_id, self.receipt.seed
        )
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<DrawPlan> {
        let (w, p) = tx.parts();
        if let Some(j) = load_joint(p, self.plan_id)? {
            return Err(Error::FailedPrecondition(format!(
                "plan_id: plan {} is committed to the joint draw {}; CompleteJointDraw draws it",
                self.plan_id, j.digest
            )));
        }
        w.record_draw(p, self.plan_id, *self.receipt, self.selected_masks)
    }
    /// A `DrawSample` request id is bound to the receipt of the plan it drew.
    fn binding(plan: &DrawPlan, options: &StoreOptions) -> Option<Remembered> {
        Some(Remembered::Receipt {
            plan: plan.id,
            teams: false,
            instance: options.instance_name.clone(),
        })
    }
    logged!(RecordDraw);
}

/// Commits a plan to a federated joint draw's manifest: checks this instance's entry
/// against the plan and stores the manifest (FAILED_PRECONDITION if the plan was drawn,
/// or is committed to another manifest; the same manifest again changes nothing).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CommitJoint {
    pub plan_id: u64,
    /// This instance's name.
    pub instance: String,
    pub manifest: crate::domain::joint::Manifest,
}

impl Operation for CommitJoint {
    type Output = JointState;
    fn cause(&self) -> String {
        format!(
            "plan/{} committed to joint draw {} of {} instances",
            self.plan_id,
            self.manifest.digest(),
            self.manifest.participants.len()
        )
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<JointState> {
        let (_, p) = tx.parts();
        let plan = load_plan(p, self.plan_id)?;
        let digest = self.manifest.digest();
        if let Some(j) = load_joint(p, self.plan_id)? {
            if j.digest == digest {
                return Ok(j);
            }
            return Err(Error::FailedPrecondition(format!(
                "plan_id: plan {} is committed to the joint draw {}, not {digest}",
                self.plan_id, j.digest
            )));
        }
        if let Some(r) = &plan.receipt {
            return Err(Error::FailedPrecondition(format!(
                "plan_id: plan {} was already drawn (seed {:?})",
                self.plan_id, r.seed
            )));
        }
        joint_entry_matches(&plan, &self.instance, &self.manifest)?;
        let state = JointState {
            manifest: self.manifest,
            digest,
            seed: None,
            outcome: None,
        };
        put_joint(p, self.plan_id, &state)?;
        Ok(state)
    }
    logged!(CommitJoint);
}

/// Records the seed revealed for a committed joint draw (FAILED_PRECONDITION if the
/// plan is not committed, `manifest_digest` is not the one it committed, or another
/// seed was revealed; the same seed again changes nothing).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RevealJointSeed {
    pub plan_id: u64,
    pub seed: String,
    pub manifest_digest: String,
}

impl Operation for RevealJointSeed {
    type Output = JointState;
    fn cause(&self) -> String {
        format!(
            "plan/{} joint draw {} seed revealed {:?}",
            self.plan_id, self.manifest_digest, self.seed
        )
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<JointState> {
        let (_, p) = tx.parts();
        let mut state = committed_joint(p, self.plan_id, &self.manifest_digest)?;
        match &state.seed {
            Some(s) if *s == self.seed => return Ok(state),
            Some(s) => {
                return Err(Error::FailedPrecondition(format!(
                    "seed: plan {} revealed the seed {s:?} already; a joint draw has one seed",
                    self.plan_id
                )))
            }
            None => {}
        }
        state.seed = Some(self.seed);
        put_joint(p, self.plan_id, &state)?;
        Ok(state)
    }
    logged!(RevealJointSeed);
}

/// Records this instance's share of a joint draw as the plan's draw, with the merge
/// outcome (checked by the caller against the instance's tickets).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompleteJoint {
    pub plan_id: u64,
    pub outcome: crate::domain::joint::Outcome,
    pub receipt: Box<DrawReceipt>,
    /// As [`RecordDraw::selected_masks`].
    pub selected_masks: Vec<Vec<u64>>,
}

impl Operation for CompleteJoint {
    type Output = (DrawPlan, JointState);
    fn cause(&self) -> String {
        let mine: u64 = self.outcome.strata.iter().map(|s| s.selected_here).sum();
        format!(
            "plan/{} joint draw {} completed: {mine} selected here",
            self.plan_id, self.outcome.manifest_digest
        )
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<(DrawPlan, JointState)> {
        let (w, p) = tx.parts();
        let mut state = committed_joint(p, self.plan_id, &self.outcome.manifest_digest)?;
        if state.seed.as_deref() != Some(self.outcome.seed.as_str()) {
            return Err(Error::FailedPrecondition(format!(
                "outcome.seed: {:?}, the seed this instance revealed is {:?}",
                self.outcome.seed, state.seed
            )));
        }
        if let Some(o) = &state.outcome {
            if *o == self.outcome {
                return Ok((load_plan(p, self.plan_id)?, state));
            }
            return Err(Error::FailedPrecondition(format!(
                "outcome: plan {} was completed with another outcome",
                self.plan_id
            )));
        }
        state.outcome = Some(self.outcome);
        p.put(draws::joint_key(self.plan_id), draws::encode_joint(&state)?);
        let plan = w.record_draw(p, self.plan_id, *self.receipt, self.selected_masks)?;
        Ok((plan, state))
    }
    /// A `CompleteJointDraw` request id is bound to the receipt of the plan it drew.
    fn binding((plan, _): &(DrawPlan, JointState), options: &StoreOptions) -> Option<Remembered> {
        Some(Remembered::Receipt {
            plan: plan.id,
            teams: false,
            instance: options.instance_name.clone(),
        })
    }
    logged!(CompleteJoint);
}

/// Stores a plan's joint state, audited as a change of the plan.
fn put_joint(p: &mut Pending, plan_id: u64, state: &JointState) -> Result<()> {
    p.put(draws::joint_key(plan_id), draws::encode_joint(state)?);
    p.change = Some(Change {
        target: format!("plan/{plan_id}"),
        after: p.cause.clone(),
        ..Change::default()
    });
    Ok(())
}

/// The plan's joint state, committed to `digest` (FAILED_PRECONDITION otherwise).
fn committed_joint(p: &Pending, plan_id: u64, digest: &str) -> Result<JointState> {
    let state = load_joint(p, plan_id)?.ok_or_else(|| {
        Error::FailedPrecondition(format!(
            "plan_id: plan {plan_id} is not committed to a joint draw (CommitJointPopulation)"
        ))
    })?;
    if state.digest != digest {
        return Err(Error::FailedPrecondition(format!(
            "manifest_digest: {digest}, but this instance committed plan {plan_id} to {}",
            state.digest
        )));
    }
    Ok(state)
}

/// Checks that a manifest's entry for `instance` is what `plan` froze, and that the
/// manifest's task and strata are the plan's.
fn joint_entry_matches(plan: &DrawPlan, instance: &str, m: &joint::Manifest) -> Result<()> {
    let fail = |s: String| Err(Error::FailedPrecondition(s));
    let Some(me) = m.participant(instance) else {
        return fail(format!(
            "manifest.participants: no participant is this instance {instance:?}"
        ));
    };
    if m.task_id != plan.task_id {
        return fail(format!(
            "manifest.task_id: {:?}, plan {} has the task {:?}",
            m.task_id, plan.id, plan.task_id
        ));
    }
    if !plan.check_items.is_empty() {
        return fail(format!(
            "plan_id: plan {} names check items; a joint draw across instances draws plans without items",
            plan.id
        ));
    }
    if (me.plan_id, me.run_id) != (plan.id, plan.run_id) || me.as_of != plan.as_of {
        return fail(format!(
            "instance {instance}: plan {} run {} as_of {} in the manifest, this instance's plan {} has run {} as_of {}",
            me.plan_id, me.run_id, me.as_of, plan.id, plan.run_id, plan.as_of
        ));
    }
    if m.strata.len() != plan.strata.len() {
        return fail(format!(
            "manifest.strata: {} strata, plan {} has {}",
            m.strata.len(),
            plan.id,
            plan.strata.len()
        ));
    }
    for (i, (spec, st)) in m.strata.iter().zip(&plan.strata).enumerate() {
        if spec.class != st.class || !same_size(spec.count, spec.ratio, st.count, st.ratio) {
            return fail(format!(
                "manifest.strata[{i}]: class {} {} differs from plan {}'s stratum (class {} {})",
                spec.class.letter(),
                size_text(spec.count, spec.ratio),
                plan.id,
                st.class.letter(),
                size_text(st.count, st.ratio)
            ));
        }
        let c = &me.populations[i];
        if c.population != st.population || c.digest != st.digest {
            return fail(format!(
                "instance {instance}: strata[{i}] population {} digest {} in the manifest, the plan froze {} with digest {}",
                c.population, c.digest, st.population, st.digest
            ));
        }
    }
    Ok(())
}

/// Whether two stratum sizes mean the same: the same count or ratio (a count of 0 and a
/// ratio of 0 both draw nobody).
fn same_size(c1: Option<u64>, r1: Option<f64>, c2: Option<u64>, r2: Option<f64>) -> bool {
    let zero = |c: Option<u64>, r: Option<f64>| c == Some(0) || r == Some(0.0);
    (c1, r1) == (c2, r2) || (zero(c1, r1) && zero(c2, r2))
}

fn size_text(count: Option<u64>, ratio: Option<f64>) -> String {
    match (count, ratio) {
        (Some(c), _) => format!("count {c}"),
        (None, Some(r)) => format!("ratio {r}"),
        (None, None) => "default".into(),
    }
}

/// Stores a drawn plan's inspector teams, one assignment per department
/// (FAILED_PRECONDITION if assigned already).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordAssignment {
    pub plan_id: u64,
    pub assignments: Vec<Assignment>,
}

impl Operation for RecordAssignment {
    type Output = DrawPlan;
    fn cause(&self) -> String {
        let teams: usize = self.assignments.iter().map(|a| a.teams.len()).sum();
        let size = self.assignments.first().map_or(0, |a| a.team_size);
        format!(
            "plan/{} {teams} inspector teams of {size} assigned",
            self.plan_id
        )
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<DrawPlan> {
        let (w, p) = tx.parts();
        w.record_assignment(p, self.plan_id, self.assignments)
    }
    /// An `AssignInspectors` request id is bound to the plan's receipt with its teams.
    fn binding(plan: &DrawPlan, options: &StoreOptions) -> Option<Remembered> {
        Some(Remembered::Receipt {
            plan: plan.id,
            teams: true,
            instance: options.instance_name.clone(),
        })
    }
    logged!(RecordAssignment);
}

impl Writer {
    /// Stores a plan under a new id with its frozen populations.
    pub(super) fn save_plan(
        &self,
        p: &mut Pending,
        mut plan: DrawPlan,
        populations: Vec<Vec<Uscc>>,
        exempted: Vec<Vec<(Uscc, Exemption)>>,
        masks: Vec<Vec<u64>>,
    ) -> Result<DrawPlan> {
        let now_ms = p.at.now_ms;
        let id = sc::get_counter(&self.tree, "next_plan")?.unwrap_or(1);
        p.put(keys::counter("next_plan"), (id + 1).to_be_bytes().to_vec());
        plan.id = id;
        plan.created_at_ms = now_ms;
        for (i, pop) in populations.iter().enumerate() {
            for (k, v) in draws::encode_population(id, i as u8, pop) {
                p.put_unread(&k, &v);
            }
        }
        for (i, list) in exempted.iter().enumerate() {
            for (k, v) in draws::encode_exempted(id, i as u8, list) {
                p.put_unread(&k, &v);
            }
        }
        let width = plan.mask_width();
        for (i, list) in masks.iter().enumerate() {
            for (k, v) in draws::encode_masks(id, i as u8, list, width) {
                p.put_unread(&k, &v);
            }
        }
        p.put(draws::plan_key(id), draws::encode_plan(&plan)?);
        // The audit event carries a departure from the sampling policy and its reason.
        p.change = Some(Change {
            target: format!("plan/{id}"),
            after: format!(
                "{} (rules {}{})",
                p.cause,
                plan.rules_version,
                if plan.override_reason.is_empty() {
                    ""
                } else {
                    ", sampling policy overridden"
                }
            ),
            reason: plan.override_reason.clone(),
            ..Change::default()
        });
        Ok(plan)
    }

    /// Records a plan's one draw (FAILED_PRECONDITION if it was drawn).
    pub(super) fn record_draw(
        &self,
        p: &mut Pending,
        plan_id: u64,
        mut receipt: DrawReceipt,
        selected_masks: Vec<Vec<u64>>,
    ) -> Result<DrawPlan> {
        let now_ms = p.at.now_ms;
        let mut plan = load_plan(p, plan_id)?;
        if let Some(r) = &plan.receipt {
            return Err(Error::FailedPrecondition(format!(
                "plan_id: plan {plan_id} was already drawn (seed {:?}); a top-up is a new plan with a fresh seed",
                r.seed
            )));
        }
        receipt.drawn_at_ms = now_ms;
        // Statistics: the plan, and whom it selected in which class (their counts move
        // with the selections, see `store::stats`).
        let month = Month::of(receipt.as_of);
        p.count(Counter::PlansDrawn { month }, 1);
        // A selection adds one `Drawn` counter in the enterprise's current region, and
        // changes its `Inspected` counters only if it already has a result of the task.
        // The general run's selector rows hold both (region, and a hash of each result's
        // task), current up to this writer group: so a city-wide draw of hundreds of
        // thousands reads no dossier. An enterprise whose row this group has changed
        // (an effect not yet published), that has no row, or that may have a result of
        // the task takes the general path: its whole contribution before and after.
        let unpublished: std::collections::HashSet<Uscc> = self
            .effects
            .borrow()
            .iter()
            .filter_map(|e| match e {
                Effect::Spot(_, r) => Some(r.uscc),
                Effect::SpotGone(_, u) => Some(*u),
                _ => None,
            })
            .collect();
        let general = sc::read(&self.scoring)?.general().current.clone();
        plan.receipt = Some(receipt);
        plan.selected_masks = selected_masks;
        let drawn = stats::PlanSelections::of(&plan)
            .ok_or_else(|| Error::Corrupt(format!("plan {plan_id}: drawn without a receipt")))?;
        for (u, class) in &drawn.entries {
            let region = match &general {
                Some(v) if !unpublished.contains(u) && !p.docs.contains_key(u) => {
                    v.spot_view().region_without_task(u, &plan.task_id)?
                }
                _ => None,
            };
            match region {
                Some(region) => p.count(
                    Counter::Drawn {
                        month,
                        region,
                        class: *class,
                    },
                    1,
                ),
                None => p.touch_stats(u)?,
            }
        }
        p.put(draws::plan_key(plan_id), draws::encode_plan(&plan)?);
        // After every contribution before them was noted.
        p.put_selections(drawn);
        Ok(plan)
    }

    /// Records a drawn plan's inspector teams (FAILED_PRECONDITION if assigned).
    pub(super) fn record_assignment(
        &self,
        p: &mut Pending,
        plan_id: u64,
        mut assignments: Vec<Assignment>,
    ) -> Result<DrawPlan> {
        let now_ms = p.at.now_ms;
        let mut plan = load_plan(p, plan_id)?;
        if !plan.assignments.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "plan_id: plan {plan_id} already has its inspector teams"
            )));
        }
        for a in assignments.iter_mut() {
            a.assigned_at_ms = now_ms;
        }
        plan.assignments = assignments;
        p.put(draws::plan_key(plan_id), draws::encode_plan(&plan)?);
        Ok(plan)
    }
}

/// A plan's joint state, if committed.
fn load_joint(p: &Pending, plan_id: u64) -> Result<Option<JointState>> {
    p.get(&draws::joint_key(plan_id))?
        .map(|v| draws::decode_joint(&v))
        .transpose()
}

/// A stored plan (NOT_FOUND naming `plan_id`).
fn load_plan(p: &Pending, plan_id: u64) -> Result<DrawPlan> {
    match p.get(&draws::plan_key(plan_id))? {
        Some(v) => draws::decode_plan(&v),
        None => Err(Error::NotFound(format!("plan_id: plan {plan_id}"))),
    }
}
