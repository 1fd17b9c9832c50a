//! Draw plans (抽查计划), their one draw and their inspector teams.

use super::*;

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
        w.record_draw(p, self.plan_id, *self.receipt, self.selected_masks)
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
        let mut selected: Vec<(Uscc, crate::domain::RiskClass)> = receipt
            .strata
            .iter()
            .flat_map(|s| s.selected.iter().map(move |(u, _)| (*u, s.class)))
            .collect();
        selected.sort_unstable();
        for (u, class) in &selected {
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
            p.put_selection(
                u,
                stats::selection_key(u, &plan.task_id, plan_id),
                stats::selection_value(*class, month),
            );
        }
        plan.receipt = Some(receipt);
        plan.selected_masks = selected_masks;
        p.put(draws::plan_key(plan_id), draws::encode_plan(&plan)?);
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

/// A stored plan (NOT_FOUND naming `plan_id`).
fn load_plan(p: &Pending, plan_id: u64) -> Result<DrawPlan> {
    match p.get(&draws::plan_key(plan_id))? {
        Some(v) => draws::decode_plan(&v),
        None => Err(Error::NotFound(format!("plan_id: plan {plan_id}"))),
    }
}
