//! ClassificationService handlers and their proto conversions.

use std::{pin::Pin, time::Duration};

use tokio_stream::{wrappers::ReceiverStream, Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::{convert, invalid, request_key};
use crate::{
    domain::{
        model::{Decay, HardRule},
        Centi, DomainError, Model, RiskClass,
    },
    jobs::batch_scoring::{self, BatchRequest, Event, Started},
    proto::{self as pb, classification_service_server::ClassificationService},
    store::{op, Classified, InRun, ScoringRun, Store},
};

/// The ClassificationService.
#[derive(Clone)]
pub struct ClassificationApi {
    store: Store,
}

impl ClassificationApi {
    /// A service over `store`.
    pub fn new(store: Store) -> Self {
        ClassificationApi { store }
    }
}

/// Points in hundredths as a number of points.
pub fn points(c: Centi) -> f64 {
    c as f64 / 100.0
}

/// A class as its proto enum.
pub fn class_pb(c: RiskClass) -> i32 {
    match c {
        RiskClass::A => pb::RiskClass::A as i32,
        RiskClass::B => pb::RiskClass::B as i32,
        RiskClass::C => pb::RiskClass::C as i32,
        RiskClass::D => pb::RiskClass::D as i32,
    }
}

/// An instant (Unix milliseconds) as the API's one time type; absent for none.
pub fn instant(ms: Option<i64>) -> Option<prost_types::Timestamp> {
    ms.map(|ms| prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
}

fn counts_pb(c: &[u64; 4]) -> pb::ClassCounts {
    pb::ClassCounts {
        a: c[0],
        b: c[1],
        c: c[2],
        d: c[3],
    }
}

/// A model as its proto.
pub fn model_pb(m: &Model, active: bool) -> pb::ModelInfo {
    pb::ModelInfo {
        version: m.version.clone(),
        description: m.description.clone(),
        cut_point_b: points(m.cut_points[0]),
        cut_point_c: points(m.cut_points[1]),
        cut_point_d: points(m.cut_points[2]),
        indicators: m
            .indicators
            .iter()
            .map(|s| {
                let info = s.indicator.info();
                pb::IndicatorInfo {
                    code: s.indicator.code().into(),
                    dimension: info.dimension.name().into(),
                    reads: info.reads.name().into(),
                    points: points(s.points),
                    window_days: s.window_days.unwrap_or(0),
                    decay: match s.decay {
                        Decay::None => "none",
                        Decay::Linear => "linear",
                    }
                    .into(),
                    threshold_fen: s.threshold_fen.unwrap_or(0),
                    sections: s
                        .sections
                        .iter()
                        .map(|c| (*c as char).to_string())
                        .collect(),
                    max_points: s.max_points.map(points).unwrap_or(0.0),
                    description_zh: info.zh.into(),
                    description_en: info.en.into(),
                }
            })
            .collect(),
        hard_rules: m.hard_rules.iter().map(hard_rule_pb).collect(),
        active,
        toml: m.source.clone(),
        family: m.family.clone(),
        scope_licences: m.scope.iter().flat_map(|s| s.licence_names()).collect(),
        scope_industries: m.scope.iter().flat_map(|s| s.industry_names()).collect(),
    }
}

fn hard_rule_pb(h: &HardRule) -> pb::HardRuleInfo {
    pb::HardRuleInfo {
        condition: h.condition.code().into(),
        at_least: class_pb(h.at_least),
    }
}

/// A specialised model's class as its proto.
pub fn specialised_pb(c: &InRun) -> pb::SpecialisedClass {
    pb::SpecialisedClass {
        family: c.model.family.clone(),
        model_version: c.model.version.clone(),
        run_id: c.run_id,
        risk_class: class_pb(c.class),
        score: points(c.score),
        as_of: c.as_of.to_string(),
    }
}

/// A classification as its proto, with the specialised classes beside it.
pub fn classification_pb(c: &Classified, specialised: &[InRun]) -> pb::Classification {
    pb::Classification {
        uscc: c.uscc.to_string(),
        risk_class: class_pb(c.class),
        score: points(c.score),
        model_version: c.model.version.clone(),
        run_id: c.run_id,
        as_of: c.as_of.to_string(),
        factors: c
            .factors
            .iter()
            .map(|f| {
                let info = f.indicator.info();
                pb::Factor {
                    code: f.indicator.code().into(),
                    dimension: info.dimension.name().into(),
                    description_zh: info.zh.into(),
                    description_en: info.en.into(),
                    points: points(f.points),
                    record: f.record.clone(),
                }
            })
            .collect(),
        hard_rule: c
            .hard_rule
            .map(|h| h.condition.code().to_string())
            .unwrap_or_default(),
        rescored_cause: c
            .rescored
            .as_ref()
            .map(|o| o.cause.clone())
            .unwrap_or_default(),
        rescored_at: instant(c.rescored.as_ref().map(|o| o.at_ms)),
        factors_reproduce_score: c.factors_reproduce_score,
        rules_version: c.rules_version.clone(),
        specialised: specialised.iter().map(specialised_pb).collect(),
    }
}

/// A class without its explanation (`CLASSIFICATION_VIEW_CLASS`).
pub fn class_only_pb(
    u: &crate::domain::Uscc,
    c: &InRun,
    specialised: &[InRun],
    rules_version: String,
) -> pb::Classification {
    let rescored = c.rescored.as_ref().filter(|o| !o.cause.is_empty());
    pb::Classification {
        uscc: u.to_string(),
        risk_class: class_pb(c.class),
        score: points(c.score),
        model_version: c.model.version.clone(),
        run_id: c.run_id,
        as_of: c.as_of.to_string(),
        // As the explained answer: a re-score without a cause (written when the run
        // completed) is not a re-score after a write.
        rescored_cause: rescored.map(|o| o.cause.clone()).unwrap_or_default(),
        rescored_at: instant(rescored.map(|o| o.at_ms)),
        specialised: specialised.iter().map(specialised_pb).collect(),
        rules_version,
        ..Default::default()
    }
}

/// A run as its proto, with its model's family and the rules version in force on its
/// as-of date.
pub fn run_pb(r: &ScoringRun, current: bool, store: &Store) -> pb::ScoringRun {
    let rules = &store.options().rules;
    pb::ScoringRun {
        model_family: store.family_of(&r.model_version),
        rules_version: rules.in_force(r.as_of).version.clone(),
        run_id: r.id,
        model_version: r.model_version.clone(),
        as_of: r.as_of.to_string(),
        state: match r.state {
            crate::store::RunState::Running => "RUNNING",
            crate::store::RunState::Complete => "COMPLETE",
            crate::store::RunState::Aborted => "ABORTED",
            crate::store::RunState::Retired => "RETIRED",
        }
        .into(),
        dry_run: r.dry_run,
        current,
        started_at: instant(Some(r.started_at_ms)),
        finished_at: instant(r.finished_at_ms),
        enterprises: r.enterprises,
        classes: Some(counts_pb(&r.classes)),
        regions: r
            .regions
            .iter()
            .map(|(code, c)| pb::RegionCounts {
                region_code: code.clone(),
                classes: Some(counts_pb(c)),
            })
            .collect(),
        related: r.related,
        transitions: r.transitions.as_ref().map(|t| pb::Transitions {
            baseline_run_id: t.baseline_run,
            cells: RiskClass::ALL
                .iter()
                .flat_map(|f| RiskClass::ALL.iter().map(move |to| (*f, *to)))
                .filter(|(f, to)| t.matrix[f.index()][to.index()] > 0)
                .map(|(f, to)| pb::TransitionCell {
                    from: class_pb(f),
                    to: class_pb(to),
                    enterprises: t.matrix[f.index()][to.index()],
                })
                .collect(),
            new_enterprises: t.new_enterprises,
            examples: t
                .examples
                .iter()
                .map(|e| pb::TransitionExample {
                    uscc: e.uscc.to_string(),
                    from: class_pb(e.from),
                    to: class_pb(e.to),
                    score_before: points(e.from_score),
                    score_after: points(e.to_score),
                    moved: e
                        .moved
                        .iter()
                        .map(|(code, b, a)| pb::MovedIndicator {
                            code: code.clone(),
                            points_before: points(*b),
                            points_after: points(*a),
                        })
                        .collect(),
                })
                .collect(),
        }),
        activated_at: instant(r.activated_at_ms),
        activated_by: r.activated_by.clone(),
        activation_reason: r.activation_reason.clone(),
        error: r.error.clone(),
        seconds: r
            .finished_at_ms
            .map(|f| (f - r.started_at_ms) as f64 / 1000.0)
            .unwrap_or(0.0),
    }
}

impl ClassificationApi {
    fn is_current(&self, id: u64) -> Result<bool, Status> {
        Ok(self.store.current_run_ids()?.contains(&id))
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::BatchScoringEvent, Status>> + Send>>;

#[tonic::async_trait]
impl ClassificationService for ClassificationApi {
    async fn get_model(
        &self,
        req: Request<pb::GetModelRequest>,
    ) -> Result<Response<pb::ModelInfo>, Status> {
        let v = req.get_ref().version.trim();
        let m = if v.is_empty() {
            self.store
                .active_model()?
                .ok_or_else(|| Status::failed_precondition("no active model"))?
        } else {
            self.store
                .model(v)?
                .ok_or_else(|| Status::not_found(format!("version: model {v:?} not found")))?
        };
        let is_active = self
            .store
            .active_model_of(&m.family)?
            .is_some_and(|a| a.version == m.version);
        Ok(Response::new(model_pb(&m, is_active)))
    }

    async fn register_model(
        &self,
        req: Request<pb::RegisterModelRequest>,
    ) -> Result<Response<pb::ModelInfo>, Status> {
        let actor = super::actor(&req, "RegisterModel");
        super::Scope::of(&req).require_unscoped("RegisterModel")?;
        let r = req.into_inner();
        let key = request_key("RegisterModel", &r.request_id, &r)?;
        let m = Model::parse(&r.toml).map_err(|e| invalid(e.within("toml")))?;
        let m = std::sync::Arc::new(m);
        // Registering never changes the active model (`activate_if_none: false`).
        let active = self
            .store
            .active_model_of(&m.family)?
            .is_some_and(|a| a.version == m.version);
        let reply = super::write_reply(
            &self.store,
            actor,
            op::RegisterModel {
                model: m.clone(),
                activate_if_none: false,
            },
            key,
            move |_| Ok(model_pb(&m, active)),
        )
        .await?;
        Ok(Response::new(reply))
    }

    async fn get_classification(
        &self,
        req: Request<pb::GetClassificationRequest>,
    ) -> Result<Response<pb::Classification>, Status> {
        let r = req.get_ref();
        let u = convert::uscc("uscc", &r.uscc).map_err(invalid)?;
        super::Scope::of(&req).check_uscc(&self.store, "uscc", &u)?;
        let run = (r.run_id != 0).then_some(r.run_id);
        let today = self.store.today();
        let day = convert::past_as_of("as_of", &r.as_of, today).map_err(invalid)?;
        if run.is_some() && !r.as_of.trim().is_empty() {
            return Err(invalid(DomainError::invalid(
                "as_of",
                "give run_id or as_of, not both",
            )));
        }
        // Point reads and in-memory binary searches (the general run, then each
        // specialised one: an override read at most for each): short enough for the
        // runtime thread (like GetEnterprise), cheaper than a hand-off to the blocking
        // pool. A past day also reads the run records (a few hundred at most).
        let specialised = match run {
            Some(_) => Vec::new(),
            None if day < today => {
                self.store
                    .classes_in_runs_on(&u, &self.store.specialised_runs_on(day)?, day)?
            }
            None => self.store.specialised_classes(&u)?,
        };
        if r.view == pb::ClassificationView::Class as i32 {
            // The class alone: no dossier read, no explanation computed.
            let c = match run {
                Some(_) => self.store.class_in_run(&u, run)?,
                None => self.store.class_on(&u, "as_of", day)?,
            };
            let rules = self.store.options().rules.in_force(c.as_of).version.clone();
            return Ok(Response::new(class_only_pb(&u, &c, &specialised, rules)));
        }
        let c = match run {
            Some(_) => self.store.classify(&u, run)?,
            None => self.store.classify_on(&u, "as_of", day)?,
        };
        Ok(Response::new(classification_pb(&c, &specialised)))
    }

    type RunBatchScoringStream = EventStream;

    async fn run_batch_scoring(
        &self,
        req: Request<pb::RunBatchScoringRequest>,
    ) -> Result<Response<Self::RunBatchScoringStream>, Status> {
        let actor = super::actor(&req, "RunBatchScoring");
        super::Scope::of(&req).require_unscoped("RunBatchScoring")?;
        let principal = super::principal(&req);
        let r = req.into_inner();
        let key = request_key("RunBatchScoring", &r.request_id, &r)?;
        let as_of = convert::as_of("as_of", &r.as_of, self.store.today()).map_err(invalid)?;
        let model_version = Some(r.model_version.trim().to_string()).filter(|v| !v.is_empty());
        let family = Some(r.family.trim().to_string()).filter(|v| !v.is_empty());
        // The request id is bound to the run as it begins: a retry (say after a
        // disconnect) follows that run — its progress, then its end — and starts none.
        let rx = match batch_scoring::start(
            self.store.clone(),
            BatchRequest {
                model_version,
                family,
                all_families: r.all_families,
                as_of,
                dry_run: r.dry_run,
                requested_by: principal,
                actor: actor.clone(),
            },
            key,
        )
        .await?
        {
            Started::New(_, rx) => rx,
            Started::Existing(id) => {
                batch_scoring::follow(self.store.clone(), id, Duration::from_millis(250))
            }
        };
        let store = self.store.clone();
        let stream = ReceiverStream::new(rx).then(move |ev| {
            let store = store.clone();
            async move {
                match ev {
                    Event::Progress(p) => Ok(pb::BatchScoringEvent {
                        event: Some(pb::batch_scoring_event::Event::Progress(
                            pb::BatchScoringProgress {
                                run_id: p.run_id,
                                processed: p.processed,
                                total: p.total,
                                classes: Some(counts_pb(&p.classes)),
                                elapsed_seconds: p.elapsed.as_secs_f64(),
                                phase: p.phase.into(),
                            },
                        )),
                    }),
                    Event::Done(run) => {
                        let current = store.current_run_ids()?.contains(&run.id);
                        Ok(pb::BatchScoringEvent {
                            event: Some(pb::batch_scoring_event::Event::Done(run_pb(
                                &run, current, &store,
                            ))),
                        })
                    }
                    Event::Failed(e) => Err(Status::aborted(format!("scoring run failed: {e}"))),
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_scoring_runs(
        &self,
        _req: Request<pb::ListScoringRunsRequest>,
    ) -> Result<Response<pb::ListScoringRunsResponse>, Status> {
        let current = self.store.current_run_ids()?;
        let runs = self
            .store
            .runs()?
            .iter()
            .map(|r| {
                let mut p = run_pb(r, current.contains(&r.id), &self.store);
                // The list is a summary: regions and transitions are in GetScoringRun.
                p.regions.clear();
                if let Some(t) = p.transitions.as_mut() {
                    t.examples.clear();
                }
                p
            })
            .collect();
        Ok(Response::new(pb::ListScoringRunsResponse { runs }))
    }

    async fn get_scoring_run(
        &self,
        req: Request<pb::GetScoringRunRequest>,
    ) -> Result<Response<pb::ScoringRun>, Status> {
        let id = req.get_ref().run_id;
        let run = self
            .store
            .run(id)?
            .ok_or_else(|| Status::not_found(format!("run_id: scoring run {id} not found")))?;
        Ok(Response::new(run_pb(
            &run,
            self.is_current(id)?,
            &self.store,
        )))
    }

    async fn activate_scoring_run(
        &self,
        req: Request<pb::ActivateScoringRunRequest>,
    ) -> Result<Response<pb::ScoringRun>, Status> {
        let actor = super::actor(&req, "ActivateScoringRun");
        super::Scope::of(&req).require_unscoped("ActivateScoringRun")?;
        let principal = super::principal(&req);
        let r = req.into_inner();
        let key = request_key("ActivateScoringRun", &r.request_id, &r)?;
        let reason = r.reason.trim();
        if reason.is_empty() {
            return Err(invalid(DomainError::invalid(
                "reason",
                "is required: say why this run becomes current",
            )));
        }
        let store = self.store.clone();
        let reply = super::write_reply(
            &self.store,
            actor.clone(),
            op::ActivateRun {
                id: r.run_id,
                by: principal,
                reason: reason.to_string(),
            },
            key,
            move |run| Ok(run_pb(run, true, &store)),
        )
        .await?;
        Ok(Response::new(reply))
    }
}
