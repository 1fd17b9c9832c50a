//! Draw plans, their draws and inspector teams, and the inspector directory.

use super::*;

impl Writer {
    /// Stores a plan under a new id with its frozen populations.
    pub(super) fn save_plan(
        &self,
        p: &mut Pending,
        mut plan: Box<DrawPlan>,
        populations: Vec<Vec<Uscc>>,
        now_ms: i64,
    ) -> Result<Outcome> {
        let id = sc::get_counter(&self.tree, "next_plan")?.unwrap_or(1);
        p.put(keys::counter("next_plan"), (id + 1).to_be_bytes().to_vec());
        plan.id = id;
        plan.created_at_ms = now_ms;
        for (i, pop) in populations.into_iter().enumerate() {
            for (k, v) in draws::encode_population(id, i as u8, &pop) {
                p.put_unread(&k, &v);
            }
        }
        p.put(draws::plan_key(id), codec::encode(&*plan)?);
        Ok(Outcome::Plan(plan))
    }

    /// Records a plan's one draw (FAILED_PRECONDITION if it was drawn).
    pub(super) fn record_draw(
        &self,
        p: &mut Pending,
        plan_id: u64,
        mut receipt: DrawReceipt,
        now_ms: i64,
    ) -> Result<Outcome> {
        let mut plan = load_plan(p, plan_id)?;
        if let Some(r) = &plan.receipt {
            return Err(Error::FailedPrecondition(format!(
                "plan_id: plan {plan_id} was already drawn (seed {:?}); a top-up is a new plan with a fresh seed",
                r.seed
            )));
        }
        receipt.drawn_at_ms = now_ms;
        plan.receipt = Some(receipt);
        p.put(draws::plan_key(plan_id), codec::encode(&plan)?);
        Ok(Outcome::Plan(Box::new(plan)))
    }

    /// Creates or replaces an inspector (a scoped actor: only of its regions, before and
    /// after); the same inspector again changes nothing.
    pub(super) fn upsert_inspector(
        &self,
        p: &mut Pending,
        mut x: Box<Inspector>,
        now_ms: i64,
    ) -> Result<Outcome> {
        x.validate()?;
        p.check_region("inspector.home_region_code", &x.home_region)?;
        let key = draws::inspector_key(&x.id);
        if let Some(v) = p.get(&key)? {
            let old: Inspector = codec::decode(&v)?;
            // A district manages only its own inspectors (also when moving one).
            p.check_region("inspector.id", &old.home_region)?;
            x.recorded_at_ms = old.recorded_at_ms;
            if old == *x {
                return Ok(Outcome::Inspector(x));
            }
        }
        x.recorded_at_ms = now_ms;
        p.put(key, codec::encode(&*x)?);
        Ok(Outcome::Inspector(x))
    }

    /// Records a drawn plan's inspector teams (FAILED_PRECONDITION if assigned).
    pub(super) fn record_assignment(
        &self,
        p: &mut Pending,
        plan_id: u64,
        mut assignment: Assignment,
        now_ms: i64,
    ) -> Result<Outcome> {
        let mut plan = load_plan(p, plan_id)?;
        if plan.assignment.is_some() {
            return Err(Error::FailedPrecondition(format!(
                "plan_id: plan {plan_id} already has its inspector teams"
            )));
        }
        assignment.assigned_at_ms = now_ms;
        plan.assignment = Some(assignment);
        p.put(draws::plan_key(plan_id), codec::encode(&plan)?);
        Ok(Outcome::Plan(Box::new(plan)))
    }
}

/// A stored plan (NOT_FOUND naming `plan_id`).
fn load_plan(p: &Pending, plan_id: u64) -> Result<DrawPlan> {
    match p.get(&draws::plan_key(plan_id))? {
        Some(v) => codec::decode::<DrawPlan>(&v),
        None => Err(Error::NotFound(format!("plan_id: plan {plan_id}"))),
    }
}
