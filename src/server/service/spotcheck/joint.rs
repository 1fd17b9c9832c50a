//! Federated joint draws across instances (see [`crate::domain::joint`]): commit to a
//! manifest, reveal the seed, list this instance's candidates, record the merge result.

use tonic::{Request, Response, Status};

use super::{
    super::{invalid, request_key},
    check_seed, class_from_pb, class_pb, draw_from, populations, receipt_reply_pb, Boxed,
    SpotCheckApi, CANDIDATE_BATCH,
};
use crate::{
    domain::{
        joint::{self, Committed, Manifest, Outcome, Participant, StratumOutcome, StratumSpec},
        sampler::{Sampler, Ticket},
        Date, DomainError,
    },
    proto as pb,
    store::{
        draws::{DrawPlan, JointState},
        op, Store,
    },
};

/// A manifest from its proto (INVALID_ARGUMENT naming the field), validated.
pub fn manifest_from_pb(m: &pb::JointManifest) -> Result<Manifest, DomainError> {
    let mut strata = Vec::with_capacity(m.strata.len());
    for (i, s) in m.strata.iter().enumerate() {
        let field = format!("manifest.strata[{i}]");
        let (count, ratio) =
            match s.size {
                Some(pb::joint_stratum_spec::Size::Count(c)) => (
                    Some(u64::try_from(c).map_err(|_| {
                        DomainError::invalid(format!("{field}.count"), "must be >= 0")
                    })?),
                    None,
                ),
                Some(pb::joint_stratum_spec::Size::Ratio(r)) => (None, Some(r)),
                None => (None, None),
            };
        strata.push(StratumSpec {
            class: class_from_pb(&format!("{field}.risk_class"), s.risk_class)?,
            count,
            ratio,
        });
    }
    let mut participants = Vec::with_capacity(m.participants.len());
    for (i, p) in m.participants.iter().enumerate() {
        let field = format!("manifest.participants[{i}]");
        let mut populations = Vec::with_capacity(p.strata.len());
        for (j, c) in p.strata.iter().enumerate() {
            let class = class_from_pb(&format!("{field}.strata[{j}].risk_class"), c.risk_class)?;
            if strata.get(j).map(|s| s.class) != Some(class) {
                return Err(DomainError::invalid(
                    format!("{field}.strata[{j}].risk_class"),
                    "differs from the manifest's stratum of the same index",
                ));
            }
            populations.push(Committed {
                population: c.population,
                digest: c.population_digest.clone(),
            });
        }
        participants.push(Participant {
            instance: p.instance.clone(),
            plan_id: p.plan_id,
            run_id: p.run_id,
            as_of: Date::parse(&format!("{field}.as_of"), &p.as_of)?,
            populations,
        });
    }
    let out = Manifest {
        task_id: m.task_id.clone(),
        strata,
        participants,
    };
    out.validate()?;
    Ok(out)
}

/// The size a plan's stratum was asked with, as a joint stratum: its count, else its
/// ratio (a plan shows 0 for the one not given; both 0 draws nobody either way).
pub fn stratum_spec_pb(s: &pb::PlannedStratum) -> pb::JointStratumSpec {
    use pb::joint_stratum_spec::Size;
    pb::JointStratumSpec {
        risk_class: s.risk_class,
        size: Some(if s.count > 0 || s.ratio == 0.0 {
            Size::Count(s.count)
        } else {
            Size::Ratio(s.ratio)
        }),
    }
}

/// The manifest a coordinator proposes for `plans` (each instance's name and plan): the
/// first plan's task and strata, and every plan's committed populations.
pub fn manifest_of_plans(plans: &[(&str, &pb::DrawPlan)]) -> pb::JointManifest {
    let first = plans.first().map(|(_, p)| *p);
    pb::JointManifest {
        task_id: first.map(|p| p.task_id.clone()).unwrap_or_default(),
        strata: first
            .map(|p| p.strata.iter().map(stratum_spec_pb).collect())
            .unwrap_or_default(),
        participants: plans
            .iter()
            .map(|(name, p)| pb::JointParticipant {
                instance: name.to_string(),
                plan_id: p.plan_id,
                run_id: p.run_id,
                as_of: p.as_of.clone(),
                strata: p
                    .strata
                    .iter()
                    .map(|s| pb::JointPopulation {
                        risk_class: s.risk_class,
                        population: s.population,
                        population_digest: s.population_digest.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// A manifest as its proto.
pub fn manifest_pb(m: &Manifest) -> pb::JointManifest {
    pb::JointManifest {
        task_id: m.task_id.clone(),
        strata: m
            .strata
            .iter()
            .map(|s| pb::JointStratumSpec {
                risk_class: class_pb(s.class),
                size: match (s.count, s.ratio) {
                    (Some(c), _) => Some(pb::joint_stratum_spec::Size::Count(
                        i64::try_from(c).unwrap_or(i64::MAX),
                    )),
                    (None, Some(r)) => Some(pb::joint_stratum_spec::Size::Ratio(r)),
                    (None, None) => None,
                },
            })
            .collect(),
        participants: m
            .participants
            .iter()
            .map(|p| pb::JointParticipant {
                instance: p.instance.clone(),
                plan_id: p.plan_id,
                run_id: p.run_id,
                as_of: p.as_of.to_string(),
                strata: p
                    .populations
                    .iter()
                    .zip(&m.strata)
                    .map(|(c, s)| pb::JointPopulation {
                        risk_class: class_pb(s.class),
                        population: c.population,
                        population_digest: c.digest.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// An outcome from its proto.
pub fn outcome_from_pb(o: &pb::JointOutcome) -> Outcome {
    Outcome {
        manifest_digest: o.manifest_digest.clone(),
        seed: o.seed.clone(),
        strata: o
            .strata
            .iter()
            .map(|s| StratumOutcome {
                k: s.k,
                threshold: s.threshold.clone(),
                selected_here: s.selected_here,
                selection_digest: s.selection_digest.clone(),
            })
            .collect(),
    }
}

/// An outcome as its proto.
pub fn outcome_pb(o: &Outcome) -> pb::JointOutcome {
    pb::JointOutcome {
        manifest_digest: o.manifest_digest.clone(),
        seed: o.seed.clone(),
        strata: o
            .strata
            .iter()
            .map(|s| pb::JointStratumOutcome {
                k: s.k,
                threshold: s.threshold.clone(),
                selected_here: s.selected_here,
                selection_digest: s.selection_digest.clone(),
            })
            .collect(),
    }
}

/// The receipt of a drawn plan as it stands, with its teams if assigned and its joint
/// draw when it has one (read from the store).
pub fn receipt_reply(store: &Store, p: DrawPlan) -> crate::Result<pb::DrawReceipt> {
    let j = store.joint_draw(p.id)?;
    receipt_reply_pb(p, true, &store.options().instance_name, j.as_ref())
}

/// What a receipt shows of its joint draw, once completed.
pub fn summary_pb(instance: &str, j: &JointState) -> Option<pb::JointDrawSummary> {
    j.outcome.as_ref().map(|o| pb::JointDrawSummary {
        manifest_text: j.manifest.text(),
        outcome: Some(outcome_pb(o)),
        instance: instance.to_string(),
    })
}

/// This instance's smallest tickets of every stratum of a seeded joint plan (at most
/// the joint k each), from its frozen populations `pops`.
pub fn local_candidates(
    pops: &[Vec<crate::domain::Uscc>],
    j: &JointState,
    seed: &str,
) -> Vec<Vec<(Ticket, String)>> {
    let s = Sampler::new(&j.manifest.sampler_seed(seed));
    pops.iter()
        .enumerate()
        .map(|(i, ids)| {
            stratum_candidates(&s, j, i, ids)
                .into_iter()
                .map(|(t, id)| (t, id.to_string()))
                .collect()
        })
        .collect()
}

/// This instance's smallest tickets of stratum `i` (population `ids`), at most the
/// joint k and its own population, ascending.
fn stratum_candidates<'a>(
    s: &Sampler,
    j: &JointState,
    i: usize,
    ids: &'a [crate::domain::Uscc],
) -> Vec<(Ticket, &'a str)> {
    s.sample(ids.iter().map(|u| u.as_str()), local_k(j, i, ids.len()))
}

/// How many of its smallest tickets an instance lists for stratum `i`: the joint k,
/// at most its own population.
fn local_k(j: &JointState, i: usize, population: usize) -> usize {
    usize::try_from(j.manifest.k(i))
        .unwrap_or(usize::MAX)
        .min(population)
}

/// The per-stratum k of this instance's recorded share of a joint draw (none before
/// it is completed).
pub fn share_ks(j: &JointState) -> Vec<u64> {
    j.outcome
        .iter()
        .flat_map(|o| o.strata.iter().map(|s| s.selected_here))
        .collect()
}

/// Whether this instance's recorded share of each stratum is exactly its tickets (from
/// its frozen populations `pops`) up to the recorded threshold: the first stratum where
/// it is not, named.
pub fn share_is_complete(
    j: &JointState,
    pops: &[Vec<crate::domain::Uscc>],
    seed: &str,
) -> Option<String> {
    let o = j.outcome.as_ref()?;
    let local = local_candidates(pops, j, seed);
    for (i, (s, c)) in o.strata.iter().zip(&local).enumerate() {
        let threshold = Ticket::parse(&s.threshold);
        let tickets: Vec<Ticket> = c.iter().map(|(t, _)| t.clone()).collect();
        let n = joint::local_count(&tickets, threshold.as_ref());
        if n != s.selected_here {
            return Some(format!(
                "strata[{i}]: {n} of this instance's tickets lie at or below the joint threshold, the recorded share is {}",
                s.selected_here
            ));
        }
    }
    None
}

fn draw_pb(store: &Store, plan: &DrawPlan, j: &JointState) -> pb::JointDraw {
    let seed = j.seed.clone().unwrap_or_default();
    pb::JointDraw {
        instance: store.options().instance_name.clone(),
        plan_id: plan.id,
        manifest_digest: j.digest.clone(),
        sampler_seed: j.manifest.sampler_seed(&seed),
        seed,
        strata: plan
            .strata
            .iter()
            .enumerate()
            .map(|(i, st)| pb::JointDrawStratum {
                risk_class: class_pb(st.class),
                union_population: j.manifest.union_population(i),
                k: j.manifest.k(i),
                population: st.population,
                candidates: j.manifest.k(i).min(st.population),
            })
            .collect(),
    }
}

impl SpotCheckApi {
    pub(super) async fn commit_joint(
        &self,
        req: Request<pb::CommitJointPopulationRequest>,
    ) -> Result<Response<pb::JointCommitment>, Status> {
        let actor = super::super::actor(&req, "CommitJointPopulation");
        let scope = super::super::Scope::of(&req);
        let r = req.into_inner();
        let key = request_key("CommitJointPopulation", &r.request_id, &r)?;
        let m = r
            .manifest
            .as_ref()
            .ok_or_else(|| invalid(DomainError::invalid("manifest", "is required")))?;
        let manifest = manifest_from_pb(m).map_err(invalid)?;
        let plan = self.stored_plan(r.plan_id, &scope)?;
        if let Some(m) = super::super::replayed(&self.store, &key)? {
            return Ok(Response::new(m));
        }
        let instance = self.store.options().instance_name.clone();
        let reply = super::super::write_reply(
            &self.store,
            actor,
            op::CommitJoint {
                plan_id: plan.id,
                instance: instance.clone(),
                manifest,
            },
            key,
            move |j: &JointState| {
                Ok(pb::JointCommitment {
                    instance,
                    plan_id: r.plan_id,
                    manifest_digest: j.digest.clone(),
                    manifest_text: j.manifest.text(),
                })
            },
        )
        .await?;
        Ok(Response::new(reply))
    }

    pub(super) async fn reveal_joint(
        &self,
        req: Request<pb::DrawJointSampleRequest>,
    ) -> Result<Response<pb::JointDraw>, Status> {
        let actor = super::super::actor(&req, "DrawJointSample");
        let scope = super::super::Scope::of(&req);
        let r = req.into_inner();
        let key = request_key("DrawJointSample", &r.request_id, &r)?;
        check_seed(&r.seed)?;
        if r.manifest_digest.trim().is_empty() {
            return Err(invalid(DomainError::invalid(
                "manifest_digest",
                "is required: the digest every instance committed",
            )));
        }
        let plan = self.stored_plan(r.plan_id, &scope)?;
        if let Some(m) = super::super::replayed(&self.store, &key)? {
            return Ok(Response::new(m));
        }
        let store = self.store.clone();
        let reply = super::super::write_reply(
            &self.store,
            actor,
            op::RevealJointSeed {
                plan_id: plan.id,
                seed: r.seed,
                manifest_digest: r.manifest_digest,
            },
            key,
            move |j: &JointState| Ok(draw_pb(&store, &plan, j)),
        )
        .await?;
        Ok(Response::new(reply))
    }

    pub(super) async fn joint_candidates(
        &self,
        req: Request<pb::ListJointCandidatesRequest>,
    ) -> Result<Response<Boxed<pb::JointCandidateBatch>>, Status> {
        let scope = super::super::Scope::of(&req);
        let r = req.into_inner();
        let plan = self.stored_plan(r.plan_id, &scope)?;
        let j = self.store.joint_draw(plan.id)?;
        let Some((j, seed)) = j.and_then(|j| j.seed.clone().map(|s| (j, s))) else {
            return Err(Status::failed_precondition(format!(
                "plan_id: plan {} has no revealed joint seed (DrawJointSample)",
                plan.id
            )));
        };
        let i = r.stratum as usize;
        if i >= plan.strata.len() {
            return Err(invalid(DomainError::invalid(
                "stratum",
                format!("plan {} has {} strata", plan.id, plan.strata.len()),
            )));
        }
        let store = self.store.clone();
        Ok(Response::new(super::super::blocking_stream(
            4,
            move |emit| {
                let pop = store.draw_population(plan.id, i as u8)?;
                let s = Sampler::new(&j.manifest.sampler_seed(&seed));
                let picked = stratum_candidates(&s, &j, i, &pop);
                for chunk in picked.chunks(CANDIDATE_BATCH) {
                    let batch = pb::JointCandidateBatch {
                        candidates: chunk
                            .iter()
                            .map(|(t, id)| pb::Selected {
                                uscc: id.to_string(),
                                ticket: t.as_string(),
                                check_items: Vec::new(),
                            })
                            .collect(),
                    };
                    if !emit(batch) {
                        break;
                    }
                }
                Ok(())
            },
        )))
    }

    pub(super) async fn complete_joint(
        &self,
        req: Request<pb::CompleteJointDrawRequest>,
    ) -> Result<Response<pb::DrawReceipt>, Status> {
        let actor = super::super::actor(&req, "CompleteJointDraw");
        let scope = super::super::Scope::of(&req);
        let r = req.into_inner();
        let key = request_key("CompleteJointDraw", &r.request_id, &r)?;
        let outcome = outcome_from_pb(
            r.outcome
                .as_ref()
                .ok_or_else(|| invalid(DomainError::invalid("outcome", "is required")))?,
        );
        let plan = self.stored_plan(r.plan_id, &scope)?;
        if let Some(m) = super::super::replayed(&self.store, &key)? {
            return Ok(Response::new(m));
        }
        let j = self.store.joint_draw(plan.id)?.ok_or_else(|| {
            Status::failed_precondition(format!(
                "plan_id: plan {} is not committed to a joint draw (CommitJointPopulation)",
                plan.id
            ))
        })?;
        if outcome.manifest_digest != j.digest {
            return Err(Status::failed_precondition(format!(
                "outcome.manifest_digest: {}, but this instance committed plan {} to {}",
                outcome.manifest_digest, plan.id, j.digest
            )));
        }
        let Some(seed) = j.seed.clone() else {
            return Err(Status::failed_precondition(format!(
                "plan_id: plan {} has no revealed joint seed (DrawJointSample)",
                plan.id
            )));
        };
        if outcome.seed != seed {
            return Err(Status::failed_precondition(format!(
                "outcome.seed: {:?}, the seed this instance revealed is {seed:?}",
                outcome.seed
            )));
        }
        match &j.outcome {
            Some(o) if *o == outcome => {
                return Ok(Response::new(receipt_reply(&self.store, plan)?));
            }
            Some(_) => {
                return Err(Status::failed_precondition(format!(
                    "outcome: plan {} was completed with another outcome",
                    plan.id
                )));
            }
            None => {}
        }
        let store = self.store.clone();
        let p2 = plan.clone();
        let o2 = outcome.clone();
        let (receipt, masks) = super::super::blocking(move || {
            // Each population is read once: for the check and for the draw.
            let (pops, masks) = populations(&store, &p2)?;
            let tickets: Vec<Vec<Ticket>> = local_candidates(&pops, &j, &seed)
                .into_iter()
                .map(|c| c.into_iter().map(|(t, _)| t).collect())
                .collect();
            let ks = joint::check_outcome(&j.manifest, &o2, &tickets).map_err(invalid)?;
            Ok(draw_from(&p2, &pops, &masks, &seed, Some(&ks))?)
        })
        .await?;
        let instance = self.store.options().instance_name.clone();
        let reply = super::super::write_bound(
            &self.store,
            actor,
            op::CompleteJoint {
                plan_id: plan.id,
                outcome,
                receipt: Box::new(receipt),
                selected_masks: masks,
            },
            key,
            move |(p, j): (DrawPlan, JointState)| receipt_reply_pb(p, false, &instance, Some(&j)),
        )
        .await?;
        Ok(Response::new(reply))
    }
}
