//! SpotCheckService handlers: matching, candidate pools, plan / draw / verify.

use std::{pin::Pin, sync::Arc};

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::{
    classification::{class_pb, points, rfc3339},
    convert, invalid, request_key,
};
use crate::{
    domain::{
        sampler::{self, Sampler},
        spotcheck::{
            check_sampling, draw_team, AskedStratum, Exemption, ExemptionRules, Inspector,
            PoolMember, Team,
        },
        DomainError, IndustryCode, RegionCode, RiskClass, Uscc,
    },
    error::Error,
    proto::{self as pb, spot_check_service_server::SpotCheckService},
    store::{
        draws::{Assignment, DrawPlan, DrawReceipt, PlannedStratum, ReceiptStratum},
        op,
        spot::{Candidate, CandidateFilter},
        Store,
    },
};

/// Most USCCs in one match message.
pub const MAX_MATCH_BATCH: usize = 10_000;
/// Candidates per streamed message.
const CANDIDATE_BATCH: usize = 4096;

/// The SpotCheckService.
#[derive(Clone)]
pub struct SpotCheckApi {
    store: Store,
    /// Longest silence of a MatchClassifications stream.
    stream_limits: super::StreamLimits,
}

impl SpotCheckApi {
    /// A service over `store`.
    pub fn new(store: Store) -> Self {
        SpotCheckApi {
            store,
            stream_limits: super::StreamLimits::default(),
        }
    }

    /// Ends a MatchClassifications stream silent for `idle` (DEADLINE_EXCEEDED).
    pub fn with_stream_limits(mut self, limits: super::StreamLimits) -> Self {
        self.stream_limits = limits;
        self
    }
}

/// A risk class from its proto enum, naming `field`.
pub fn class_from_pb(field: &str, v: i32) -> Result<RiskClass, DomainError> {
    match pb::RiskClass::try_from(v) {
        Ok(pb::RiskClass::A) => Ok(RiskClass::A),
        Ok(pb::RiskClass::B) => Ok(RiskClass::B),
        Ok(pb::RiskClass::C) => Ok(RiskClass::C),
        Ok(pb::RiskClass::D) => Ok(RiskClass::D),
        Ok(pb::RiskClass::Unspecified) => Err(DomainError::invalid(
            field,
            "is required (UNSPECIFIED given)",
        )),
        Err(_) => Err(DomainError::invalid(
            field,
            format!("{v} is not a risk class"),
        )),
    }
}

/// Most region codes a filter may name.
pub const MAX_FILTER_REGIONS: usize = 4_000;

/// A filter from its proto, naming the offending field.
pub fn filter_from_pb(
    prefix: &str,
    f: &pb::CandidateFilter,
) -> Result<CandidateFilter, DomainError> {
    let at = |k: &str, i: usize| format!("{prefix}.{k}[{i}]");
    // Every list is bounded: a filter is matched against every row of a pool, so a
    // million region codes would cost a core for minutes (issue 15, probe 4). There are
    // about 3,200 county codes in China, 21 sections and a handful of the enums.
    for (k, n, max) in [
        ("region_codes", f.region_codes.len(), MAX_FILTER_REGIONS),
        ("industry_sections", f.industry_sections.len(), 21),
        ("entity_types", f.entity_types.len(), 8),
        ("classes", f.classes.len(), 4),
        ("statuses", f.statuses.len(), 8),
    ] {
        if n > max {
            return Err(DomainError::invalid(
                format!("{prefix}.{k}"),
                format!("{n} items; at most {max}"),
            ));
        }
    }
    let mut out = CandidateFilter {
        include_exempt: f.include_exempt,
        ..CandidateFilter::default()
    };
    for (i, r) in f.region_codes.iter().enumerate() {
        out.regions.push(
            RegionCode::parse(&at("region_codes", i), r.trim())
                .map_err(|e| DomainError::invalid(at("region_codes", i), e.reason))?,
        );
    }
    for (i, s) in f.industry_sections.iter().enumerate() {
        let c = IndustryCode::parse("", s, "")
            .map_err(|e| DomainError::invalid(at("industry_sections", i), e.reason))?;
        out.sections.push(c.section());
    }
    for (i, t) in f.entity_types.iter().enumerate() {
        out.entity_types
            .push(convert::entity_type(&at("entity_types", i), *t)?);
    }
    for (i, c) in f.classes.iter().enumerate() {
        out.classes.push(class_from_pb(&at("classes", i), *c)?);
    }
    for (i, s) in f.statuses.iter().enumerate() {
        out.statuses.push(convert::status(&at("statuses", i), *s)?);
    }
    Ok(out)
}

/// A filter as its proto.
pub fn filter_pb(f: &CandidateFilter) -> pb::CandidateFilter {
    pb::CandidateFilter {
        region_codes: f.regions.iter().map(|r| r.as_str().to_string()).collect(),
        industry_sections: f
            .sections
            .iter()
            .map(|c| (*c as char).to_string())
            .collect(),
        entity_types: f
            .entity_types
            .iter()
            .map(|t| convert::entity_type_pb(*t) as i32)
            .collect(),
        classes: f.classes.iter().map(|c| class_pb(*c)).collect(),
        statuses: f
            .statuses
            .iter()
            .map(|s| convert::status_pb(*s) as i32)
            .collect(),
        include_exempt: f.include_exempt,
    }
}

fn candidate_pb(c: &Candidate) -> pb::Candidate {
    pb::Candidate {
        uscc: c.uscc.to_string(),
        risk_class: class_pb(c.class),
        score: points(c.score.into()),
        region_code: c.attrs.region.as_str().to_string(),
        industry_section: (c.attrs.section as char).to_string(),
        entity_type: convert::entity_type_pb(c.attrs.entity_type) as i32,
        status: convert::status_pb(c.attrs.status) as i32,
        exempt: c.exemption.is_some(),
        exemption_reason: c
            .exemption
            .map(|e| e.name().to_string())
            .unwrap_or_default(),
    }
}

fn exemptions_pb(e: &ExemptionRules) -> pb::ExemptionSettings {
    pb::ExemptionSettings {
        suspended: e.suspended,
        clean_two_years: e.clean_two_years,
        max_checks_per_year: e.max_checks_per_year,
        never_exempt_classes: e
            .never_exempt_classes
            .iter()
            .map(|c| class_pb(*c))
            .collect(),
        never_exempt_listed: e.never_exempt_listed,
    }
}

/// A plan as its proto; `family` is its model's family.
pub fn plan_pb(p: &DrawPlan, family: String) -> pb::DrawPlan {
    pb::DrawPlan {
        model_family: family,
        plan_id: p.id,
        task_id: p.task_id.clone(),
        run_id: p.run_id,
        model_version: p.model_version.clone(),
        as_of: p.as_of.to_string(),
        filter: Some(filter_pb(&p.filter)),
        exemptions: Some(exemptions_pb(&p.exemptions)),
        strata: p
            .strata
            .iter()
            .map(|s| pb::PlannedStratum {
                risk_class: class_pb(s.class),
                ratio: s.ratio.unwrap_or(0.0),
                count: s.count.map(|c| c as i64).unwrap_or(0),
                population: s.population,
                k: s.k,
                population_digest: s.digest.clone(),
                exempted: exempted_pb(s),
            })
            .collect(),
        created_at: rfc3339(Some(p.created_at_ms)),
        drawn: p.receipt.is_some(),
        rules_version: p.rules_version.clone(),
        override_reason: p.override_reason.clone(),
    }
}

/// Whom the exemptions removed from a planned stratum, counted per exemption.
fn exempted_pb(s: &PlannedStratum) -> Vec<pb::ExemptionCount> {
    s.exempted
        .iter()
        .map(|(reason, count)| pb::ExemptionCount {
            reason: reason.clone(),
            count: *count,
        })
        .collect()
}

/// The receipt of a drawn plan as its proto, with the inspector teams if assigned.
pub fn plan_receipt_pb(p: &DrawPlan) -> crate::Result<pb::DrawReceipt> {
    let r = p
        .receipt
        .as_ref()
        .ok_or_else(|| crate::Error::Corrupt(format!("plan {} has no receipt", p.id)))?;
    let mut out = receipt_pb(r, &p.filter);
    // The exemption counts are the plan's (frozen with the populations).
    for (rs, ps) in out.strata.iter_mut().zip(&p.strata) {
        rs.exempted = exempted_pb(ps);
    }
    if let Some(a) = &p.assignment {
        out.team_size = a.team_size;
        out.conflicts = a
            .conflicts
            .iter()
            .map(|(i, u)| pb::Conflict {
                inspector_id: i.clone(),
                uscc: u.to_string(),
            })
            .collect();
        out.inspector_pool_digest = a.pool_digest.clone();
        out.teams = a.teams.iter().map(team_pb).collect();
    }
    Ok(out)
}

fn team_pb(t: &Team) -> pb::Team {
    pb::Team {
        uscc: t.uscc.to_string(),
        region_code: t.region.as_str().to_string(),
        inspectors: t
            .inspectors
            .iter()
            .map(|(id, ticket)| pb::DrawnInspector {
                inspector_id: id.clone(),
                ticket: ticket.clone(),
            })
            .collect(),
        recused: t.recused.clone(),
    }
}

fn inspector_pb(i: &Inspector) -> pb::Inspector {
    pb::Inspector {
        id: i.id.clone(),
        name: i.name.clone(),
        certificate_number: i.certificate_number.clone(),
        home_region_code: i.home_region.as_str().to_string(),
        fields: i.fields.clone(),
        active: i.active,
    }
}

/// SHA-256 hex over "id region" lines of an inspector pool.
pub fn pool_digest(pool: &[PoolMember]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (id, region) in pool {
        h.update(id.as_bytes());
        h.update(b" ");
        h.update(region.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Draws every team of a drawn plan.
pub fn assign_teams(
    plan: &DrawPlan,
    regions: &[(Uscc, RegionCode)],
    pool: &[PoolMember],
    conflicts: &[(String, Uscc)],
    team_size: usize,
) -> Result<Vec<Team>, Error> {
    let r = plan.receipt.as_ref().ok_or_else(|| {
        Error::FailedPrecondition(format!("plan_id: plan {} is not drawn yet", plan.id))
    })?;
    let seed = sampler::draw_seed(&r.seed, &r.task_id);
    let mut teams = Vec::new();
    for (u, region) in regions {
        let mine: Vec<String> = conflicts
            .iter()
            .filter(|(_, cu)| cu == u)
            .map(|(i, _)| i.clone())
            .collect();
        let team = draw_team(&seed, *u, *region, pool, &mine, team_size).ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "too few eligible inspectors for {u} (region {region:?}): {team_size} needed"
            ))
        })?;
        teams.push(team);
    }
    Ok(teams)
}

/// A receipt as its proto.
pub fn receipt_pb(r: &DrawReceipt, filter: &CandidateFilter) -> pb::DrawReceipt {
    pb::DrawReceipt {
        algorithm: r.algorithm.clone(),
        seed: r.seed.clone(),
        task_id: r.task_id.clone(),
        plan_id: r.plan_id,
        run_id: r.run_id,
        filter: Some(filter_pb(filter)),
        as_of: r.as_of.to_string(),
        strata: r
            .strata
            .iter()
            .map(|s| pb::ReceiptStratum {
                risk_class: class_pb(s.class),
                population: s.population,
                k: s.k,
                population_digest: s.digest.clone(),
                selected: s
                    .selected
                    .iter()
                    .map(|(u, t)| pb::Selected {
                        uscc: u.to_string(),
                        ticket: t.clone(),
                    })
                    .collect(),
                exempted: Vec::new(),
            })
            .collect(),
        drawn_at: rfc3339(Some(r.drawn_at_ms)),
        sampler_seed: sampler::draw_seed(&r.seed, &r.task_id),
        ..Default::default()
    }
}

impl SpotCheckApi {
    fn match_batch(
        &self,
        req: &pb::MatchRequest,
        scope: &super::Scope,
        stream: bool,
    ) -> Result<pb::MatchResponse, Status> {
        if req.usccs.len() > MAX_MATCH_BATCH {
            return Err(Status::resource_exhausted(format!(
                "usccs: {} USCCs; at most {MAX_MATCH_BATCH} per message",
                req.usccs.len()
            )));
        }
        let as_of =
            convert::past_as_of("as_of", &req.as_of, self.store.today()).map_err(invalid)?;
        let view = self.store.require_current_run()?;
        // Every item is answered from the same runs: the general one and the
        // specialised ones current when the batch arrived.
        let specialised = self.store.specialised_runs()?;
        let spot = view.spot_view();
        let rules = &self.store.options().rules.in_force(as_of).exemptions;
        let mut items = Vec::with_capacity(req.usccs.len());
        for (i, s) in req.usccs.iter().enumerate() {
            let mut item = pb::MatchItem {
                uscc: s.clone(),
                run_id: view.run.id,
                ..Default::default()
            };
            match Uscc::parse(s) {
                Err(e) => item.error = format!("usccs[{i}]: {}", e.reason),
                Ok(u) => {
                    // Outside a scoped token's regions answers as unknown (found =
                    // false), so the token learns nothing of other districts.
                    let row = spot.row(&u)?.filter(|r| scope.covers(&r.attrs.region));
                    if let Some(row) = row {
                        let ex = rules.exemption(row.attrs.status, row.class, &row.history, as_of);
                        item.found = true;
                        item.risk_class = class_pb(row.class);
                        item.score = points(row.score.into());
                        item.exempt = ex.is_some();
                        item.exemption_reason =
                            ex.map(|e| e.name().to_string()).unwrap_or_default();
                        item.specialised = self
                            .store
                            .specialised_classes_in(&specialised, &u)?
                            .iter()
                            .map(super::classification::specialised_pb)
                            .collect();
                    }
                }
            }
            items.push(item);
        }
        self.store.note_matches(stream, items.len() as u64);
        Ok(pb::MatchResponse { items })
    }
}

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl SpotCheckService for SpotCheckApi {
    type MatchClassificationsStream = Boxed<pb::MatchResponse>;

    async fn match_classifications(
        &self,
        req: Request<Streaming<pb::MatchRequest>>,
    ) -> Result<Response<Self::MatchClassificationsStream>, Status> {
        let api = self.clone();
        let scope = super::Scope::of(&req);
        // A silent or endless stream ends with DEADLINE_EXCEEDED (the first error ends
        // the reply).
        let inbound = req.into_inner();
        let stream = super::guarded_stream("MatchClassifications", self.stream_limits, inbound)
            .map(move |m| api.match_batch(&m?, &scope, true));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn batch_match(
        &self,
        req: Request<pb::MatchRequest>,
    ) -> Result<Response<pb::MatchResponse>, Status> {
        let scope = super::Scope::of(&req);
        Ok(Response::new(self.match_batch(
            req.get_ref(),
            &scope,
            false,
        )?))
    }

    type QueryCandidatesStream = Boxed<pb::CandidateBatch>;

    async fn query_candidates(
        &self,
        req: Request<pb::QueryCandidatesRequest>,
    ) -> Result<Response<Self::QueryCandidatesStream>, Status> {
        let r = req.get_ref();
        let mut f =
            filter_from_pb("filter", &r.filter.clone().unwrap_or_default()).map_err(invalid)?;
        restrict(&super::Scope::of(&req), &mut f)?;
        let as_of = convert::past_as_of("as_of", &r.as_of, self.store.today()).map_err(invalid)?;
        let store = self.store.clone();
        let (view, cands) = tokio::task::spawn_blocking(move || store.spot_candidates(&f, as_of))
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        let run_id = view.run.id;
        let cands = Arc::new(cands);
        let n = cands.len().div_ceil(CANDIDATE_BATCH).max(1);
        let stream = tokio_stream::iter(0..n).map(move |i| {
            let chunk = cands
                .iter()
                .skip(i * CANDIDATE_BATCH)
                .take(CANDIDATE_BATCH)
                .map(candidate_pb)
                .collect();
            Ok(pb::CandidateBatch {
                run_id,
                candidates: chunk,
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn plan_draw(
        &self,
        req: Request<pb::PlanDrawRequest>,
    ) -> Result<Response<pb::DrawPlan>, Status> {
        let actor = super::actor(&req, "PlanDraw");
        let principal = super::principal(&req);
        let scope = super::Scope::of(&req);
        let r = req.into_inner();
        let key = request_key("PlanDraw", &r.request_id, &r)?;
        let task_id = super::required_text("task_id", &r.task_id, 64)?;
        let mut filter =
            filter_from_pb("filter", &r.filter.clone().unwrap_or_default()).map_err(invalid)?;
        restrict(&scope, &mut filter)?;
        let as_of = convert::past_as_of("as_of", &r.as_of, self.store.today()).map_err(invalid)?;
        let family = match r.model_family.trim() {
            "" => crate::domain::model::GENERAL.to_string(),
            f => f.to_string(),
        };
        if !self.store.families()?.contains(&family) {
            return Err(invalid(DomainError::invalid(
                "model_family",
                format!("{family:?}: no model of that family is registered"),
            )));
        }
        let override_reason = r.override_reason.trim().to_string();
        if override_reason.chars().count() > 500 {
            return Err(invalid(DomainError::invalid(
                "override_reason",
                "at most 500 characters",
            )));
        }
        let rules = self.store.options().rules.in_force(as_of).clone();
        // No strata: one per class (of the filter's classes) at the rules' defaults.
        let asked: Vec<pb::Stratum> = if r.strata.is_empty() {
            RiskClass::ALL
                .iter()
                .filter(|c| filter.classes.is_empty() || filter.classes.contains(c))
                .map(|c| pb::Stratum {
                    risk_class: class_pb(*c),
                    size: None,
                })
                .collect()
        } else {
            r.strata.clone()
        };
        let mut strata = Vec::new();
        for (i, s) in asked.iter().enumerate() {
            let at = |k: &str| format!("strata[{i}].{k}");
            let class = class_from_pb(&at("risk_class"), s.risk_class).map_err(invalid)?;
            if strata.iter().any(|x: &PlannedStratum| x.class == class) {
                return Err(invalid(DomainError::invalid(
                    at("risk_class"),
                    format!("class {class} appears twice"),
                )));
            }
            if !filter.classes.is_empty() && !filter.classes.contains(&class) {
                return Err(invalid(DomainError::invalid(
                    at("risk_class"),
                    format!("class {class} is not in filter.classes"),
                )));
            }
            let (ratio, count) = match s.size {
                Some(pb::stratum::Size::Ratio(x)) if (0.0..=1.0).contains(&x) => (Some(x), None),
                Some(pb::stratum::Size::Ratio(x)) => {
                    return Err(invalid(DomainError::invalid(
                        at("ratio"),
                        format!("{x} is outside [0, 1]"),
                    )))
                }
                Some(pb::stratum::Size::Count(c)) if c >= 0 => (None, Some(c as u64)),
                Some(pb::stratum::Size::Count(c)) => {
                    return Err(invalid(DomainError::invalid(
                        at("count"),
                        format!("{c} is negative"),
                    )))
                }
                None => (Some(rules.sampling.of(class).2), None),
            };
            strata.push(PlannedStratum {
                class,
                count,
                ratio,
                population: 0,
                k: 0,
                digest: String::new(),
                exempted: Vec::new(),
            });
        }
        if let Some(m) = super::replayed(&self.store, &key)? {
            return Ok(Response::new(m));
        }
        let store = self.store.clone();
        let f2 = CandidateFilter {
            include_exempt: false,
            ..filter.clone()
        };
        let store_for_reply = self.store.clone();
        let (plan, populations, exempted) = tokio::task::spawn_blocking(move || {
            let (view, mut by_class) = store.spot_candidate_usccs(&family, &f2, as_of)?;
            let (mut populations, mut exempted) = (Vec::new(), Vec::new());
            for s in strata.iter_mut() {
                // Strata have distinct classes (checked above), so each list is taken once.
                let pop: Vec<Uscc> = std::mem::take(&mut by_class.usccs[s.class.index()]);
                let removed = std::mem::take(&mut by_class.exempted[s.class.index()]);
                s.exempted = Exemption::ALL
                    .iter()
                    .map(|e| {
                        let n = removed.iter().filter(|(_, x)| x == e).count();
                        (e.name().to_string(), n as u64)
                    })
                    .filter(|(_, n)| *n > 0)
                    .collect();
                exempted.push(removed);
                s.population = pop.len() as u64;
                s.k = sampler::stratum_size(pop.len(), s.count, s.ratio) as u64;
                s.digest = sampler::population_digest(pop.iter().map(Uscc::as_str));
                populations.push(pop);
            }
            // The per-class sampling policy, on the frozen populations (counts compare by
            // the share they draw).
            let asked: Vec<AskedStratum> = strata
                .iter()
                .enumerate()
                .map(|(index, s)| AskedStratum {
                    index,
                    class: s.class,
                    ratio: s.ratio,
                    count: s.count,
                    population: s.population,
                })
                .collect();
            check_sampling(&rules.sampling, &asked, &override_reason)?;
            let plan = DrawPlan {
                id: 0,
                task_id,
                run_id: view.run.id,
                model_version: view.run.model_version.clone(),
                as_of,
                filter: f2,
                exemptions: rules.exemptions.clone(),
                strata,
                created_at_ms: 0,
                created_by: principal,
                receipt: None,
                assignment: None,
                rules_version: rules.version.clone(),
                override_reason,
            };
            Ok::<_, Error>((plan, populations, exempted))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))??;
        let reply = super::write_reply(
            &self.store,
            actor.clone(),
            op::SavePlan {
                plan: Box::new(plan),
                populations,
                exempted,
            },
            key,
            move |p| Ok(plan_pb(p, store_for_reply.family_of(&p.model_version))),
        )
        .await?;
        Ok(Response::new(reply))
    }

    async fn draw_sample(
        &self,
        req: Request<pb::DrawSampleRequest>,
    ) -> Result<Response<pb::DrawReceipt>, Status> {
        let actor = super::actor(&req, "DrawSample");
        let scope = super::Scope::of(&req);
        let r = req.into_inner();
        let key = request_key("DrawSample", &r.request_id, &r)?;
        // The seed is used verbatim (it is hashed into the draw), but a blank one is no seed.
        if r.seed.trim().is_empty() {
            return Err(invalid(DomainError::invalid(
                "seed",
                "is required (not blank)",
            )));
        }
        if r.seed.chars().count() > 256 {
            return Err(invalid(DomainError::invalid(
                "seed",
                "at most 256 characters",
            )));
        }
        let plan = self
            .store
            .draw_plan(r.plan_id)?
            .ok_or_else(|| Status::not_found(format!("plan_id: plan {} not found", r.plan_id)))?;
        check_plan(&scope, &plan)?;
        if let Some(m) = super::replayed(&self.store, &key)? {
            return Ok(Response::new(m));
        }
        if plan.receipt.is_some() {
            return Err(Status::failed_precondition(format!(
                "plan_id: plan {} was already drawn; a top-up is a new plan with a fresh seed",
                plan.id
            )));
        }
        let store = self.store.clone();
        let seed = r.seed.clone();
        let p2 = plan.clone();
        let receipt = tokio::task::spawn_blocking(move || draw(&store, &p2, &seed))
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        let reply = super::write_reply(
            &self.store,
            actor.clone(),
            op::RecordDraw {
                plan_id: plan.id,
                receipt: Box::new(receipt),
            },
            key,
            plan_receipt_pb,
        )
        .await?;
        Ok(Response::new(reply))
    }

    async fn get_plan(
        &self,
        req: Request<pb::GetPlanRequest>,
    ) -> Result<Response<pb::DrawPlan>, Status> {
        let scope = super::Scope::of(&req);
        let plan = self.stored_plan(req.get_ref().plan_id, &scope)?;
        Ok(Response::new(plan_pb(
            &plan,
            self.store.family_of(&plan.model_version),
        )))
    }

    async fn get_receipt(
        &self,
        req: Request<pb::GetReceiptRequest>,
    ) -> Result<Response<pb::DrawReceipt>, Status> {
        let scope = super::Scope::of(&req);
        let plan = self.stored_plan(req.get_ref().plan_id, &scope)?;
        if plan.receipt.is_none() {
            return Err(Status::failed_precondition(format!(
                "plan_id: plan {} is not drawn yet (DrawSample draws it)",
                plan.id
            )));
        }
        Ok(Response::new(plan_receipt_pb(&plan)?))
    }

    async fn list_plans(
        &self,
        req: Request<pb::ListPlansRequest>,
    ) -> Result<Response<pb::ListPlansResponse>, Status> {
        let scope = super::Scope::of(&req);
        let r = req.into_inner();
        let limit = match r.limit {
            0 => 100,
            n => super::list_limit("limit", n)?,
        };
        let task = super::optional_text("task_id", &r.task_id, 64)?;
        let store = self.store.clone();
        let (plans, next) = super::blocking(move || {
            Ok(store.plans_before(r.before_plan_id, limit, |p| {
                (task.is_empty() || p.task_id == task)
                    && (!r.drawn_only || p.receipt.is_some())
                    && check_plan(&scope, p).is_ok()
            })?)
        })
        .await?;
        Ok(Response::new(pb::ListPlansResponse {
            plans: plans
                .iter()
                .map(|p| plan_pb(p, self.store.family_of(&p.model_version)))
                .collect(),
            next_before_plan_id: next,
        }))
    }

    async fn verify_draw(
        &self,
        req: Request<pb::VerifyDrawRequest>,
    ) -> Result<Response<pb::VerifyDrawResponse>, Status> {
        let scope = super::Scope::of(&req);
        let r = req.into_inner();
        let rec = r
            .receipt
            .ok_or_else(|| invalid(DomainError::invalid("receipt", "is required")))?;
        let plan = self.store.draw_plan(rec.plan_id)?.ok_or_else(|| {
            Status::not_found(format!("receipt.plan_id: plan {} not found", rec.plan_id))
        })?;
        check_plan(&scope, &plan)?;
        if self.store.run(rec.run_id)?.is_none() {
            return Err(Status::not_found(format!(
                "receipt.run_id: scoring run {} no longer exists",
                rec.run_id
            )));
        }
        let store = self.store.clone();
        let diff = tokio::task::spawn_blocking(move || verify(&store, &plan, &rec))
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(pb::VerifyDrawResponse {
            matches: diff.is_none(),
            first_difference: diff.unwrap_or_default(),
        }))
    }

    async fn upsert_inspector(
        &self,
        req: Request<pb::UpsertInspectorRequest>,
    ) -> Result<Response<pb::Inspector>, Status> {
        let actor = super::actor(&req, "UpsertInspector");
        let r = req.into_inner();
        let key = request_key("UpsertInspector", &r.request_id, &r)?;
        let m = r
            .inspector
            .ok_or_else(|| invalid(DomainError::invalid("inspector", "is required")))?;
        let home_region =
            RegionCode::parse("inspector.home_region_code", m.home_region_code.trim())
                .map_err(invalid)?;
        // A district bureau's token manages only its own inspectors: the new home region
        // and, when the inspector exists, the old one must both be in its regions — the
        // writer decides on the stored inspector (no pre-read here).
        let x = Inspector {
            id: m.id,
            name: m.name,
            certificate_number: m.certificate_number,
            home_region,
            fields: m.fields,
            active: m.active,
            recorded_at_ms: 0,
        };
        let reply = super::write_reply(
            &self.store,
            actor.clone(),
            op::UpsertInspector(x),
            key,
            move |i| Ok(inspector_pb(i)),
        )
        .await?;
        Ok(Response::new(reply))
    }

    async fn list_inspectors(
        &self,
        req: Request<pb::ListInspectorsRequest>,
    ) -> Result<Response<pb::ListInspectorsResponse>, Status> {
        // A district token lists only its district's inspectors (names and certificate
        // numbers are personal data); team draws still use the whole directory.
        let scope = super::Scope::of(&req);
        let r = req.into_inner();
        let limit = super::list_limit("limit", r.limit)?;
        let store = self.store.clone();
        let (inspectors, next_page_token) = super::blocking(move || {
            let mut out: Vec<pb::Inspector> = store
                .inspectors()?
                .iter()
                .filter(|i| scope.covers(&i.home_region))
                .filter(|i| i.active || !r.active_only)
                .filter(|i| r.page_token.is_empty() || i.id > r.page_token)
                .take(limit + 1)
                .map(inspector_pb)
                .collect();
            let next = if out.len() > limit {
                out.truncate(limit);
                out.last().map(|i| i.id.clone()).unwrap_or_default()
            } else {
                String::new()
            };
            Ok((out, next))
        })
        .await?;
        Ok(Response::new(pb::ListInspectorsResponse {
            inspectors,
            next_page_token,
        }))
    }

    async fn assign_inspectors(
        &self,
        req: Request<pb::AssignInspectorsRequest>,
    ) -> Result<Response<pb::DrawReceipt>, Status> {
        let actor = super::actor(&req, "AssignInspectors");
        let scope = super::Scope::of(&req);
        let r = req.into_inner();
        let key = request_key("AssignInspectors", &r.request_id, &r)?;
        if r.team_size < 2 {
            return Err(invalid(DomainError::invalid(
                "team_size",
                format!("{} is fewer than two inspectors", r.team_size),
            )));
        }
        let plan = self
            .store
            .draw_plan(r.plan_id)?
            .ok_or_else(|| Status::not_found(format!("plan_id: plan {} not found", r.plan_id)))?;
        check_plan(&scope, &plan)?;
        if let Some(m) = super::replayed(&self.store, &key)? {
            return Ok(Response::new(m));
        }
        let Some(receipt) = &plan.receipt else {
            return Err(Status::failed_precondition(format!(
                "plan_id: plan {} is not drawn yet (DrawSample first)",
                plan.id
            )));
        };
        if plan.assignment.is_some() {
            return Err(Status::failed_precondition(format!(
                "plan_id: plan {} already has its inspector teams",
                plan.id
            )));
        }
        let mut conflicts = Vec::new();
        for (i, c) in r.conflicts.iter().enumerate() {
            let u = convert::uscc(&format!("conflicts[{i}].uscc"), &c.uscc).map_err(invalid)?;
            if c.inspector_id.trim().is_empty() {
                return Err(invalid(DomainError::invalid(
                    format!("conflicts[{i}].inspector_id"),
                    "is required",
                )));
            }
            conflicts.push((c.inspector_id.clone(), u));
        }
        // The directory and one point read per selected enterprise: on the blocking pool.
        let (store, selected) = (self.store.clone(), receipt.strata.clone());
        let (pool, regions) = super::blocking(move || {
            let mut pool: Vec<PoolMember> = store
                .inspectors()?
                .into_iter()
                .filter(|i| i.active)
                .map(|i| (i.id, i.home_region))
                .collect();
            pool.sort();
            // The region of each selected enterprise now (its jurisdiction).
            let mut regions = Vec::new();
            for st in &selected {
                for (u, _) in &st.selected {
                    let e = store
                        .enterprise(u)?
                        .ok_or_else(|| Status::not_found(format!("enterprise {u}")))?;
                    regions.push((*u, e.region));
                }
            }
            Ok((pool, regions))
        })
        .await?;
        let teams = assign_teams(&plan, &regions, &pool, &conflicts, r.team_size as usize)?;
        let assignment = Assignment {
            team_size: r.team_size,
            conflicts,
            pool_digest: pool_digest(&pool),
            pool,
            teams,
            assigned_at_ms: 0,
        };
        let reply = super::write_reply(
            &self.store,
            actor.clone(),
            op::RecordAssignment {
                plan_id: plan.id,
                assignment: Box::new(assignment),
            },
            key,
            plan_receipt_pb,
        )
        .await?;
        Ok(Response::new(reply))
    }

    type ListPopulationStream = Boxed<pb::PopulationBatch>;

    async fn list_population(
        &self,
        req: Request<pb::ListPopulationRequest>,
    ) -> Result<Response<Self::ListPopulationStream>, Status> {
        let r = req.get_ref();
        let plan = self
            .store
            .draw_plan(r.plan_id)?
            .ok_or_else(|| Status::not_found(format!("plan_id: plan {} not found", r.plan_id)))?;
        check_plan(&super::Scope::of(&req), &plan)?;
        if r.stratum as usize >= plan.strata.len() {
            return Err(invalid(DomainError::invalid(
                "stratum",
                format!("plan {} has {} strata", plan.id, plan.strata.len()),
            )));
        }
        let (store, id, stratum) = (self.store.clone(), plan.id, r.stratum as u8);
        let exempted = r.exempted;
        Ok(Response::new(super::blocking_stream(4, move |emit| {
            if exempted {
                let list = store.draw_exempted(id, stratum)?;
                for c in list.chunks(CANDIDATE_BATCH) {
                    let batch = pb::PopulationBatch {
                        usccs: c.iter().map(|(u, _)| u.to_string()).collect(),
                        exemption_reasons: c.iter().map(|(_, e)| e.name().to_string()).collect(),
                    };
                    if !emit(batch) {
                        break;
                    }
                }
                return Ok(());
            }
            let pop = store.draw_population(id, stratum)?;
            for c in pop.chunks(CANDIDATE_BATCH) {
                let batch = pb::PopulationBatch {
                    usccs: c.iter().map(|u| u.to_string()).collect(),
                    exemption_reasons: Vec::new(),
                };
                if !emit(batch) {
                    break;
                }
            }
            Ok(())
        })))
    }
}

/// A scoped token may only query inside its regions. Its prefixes are matched as
/// prefixes of the code (one function, `RegionCode::covering`): an empty region filter
/// becomes the codes covering exactly the token's prefixes; a filter region is kept if
/// everything it covers is inside a prefix, narrowed to the prefix if it covers more (a
/// prefecture code under a district token), and PERMISSION_DENIED if it lies outside.
fn restrict(scope: &super::Scope, f: &mut CandidateFilter) -> Result<(), Status> {
    if !scope.is_scoped() {
        return Ok(());
    }
    let mut allowed = Vec::new();
    for p in &scope.0 {
        allowed.extend(RegionCode::covering(p).map_err(invalid)?);
    }
    if f.regions.is_empty() {
        f.regions = allowed;
        return Ok(());
    }
    let mut out = Vec::new();
    for (i, r) in f.regions.iter().enumerate() {
        let inside = scope.0.iter().any(|p| r.coverage().starts_with(p.as_str()));
        let narrowed: Vec<RegionCode> = allowed.iter().filter(|a| r.covers(a)).copied().collect();
        if inside {
            out.push(*r);
        } else if !narrowed.is_empty() {
            out.extend(narrowed);
        } else {
            return Err(Status::permission_denied(format!(
                "filter.region_codes[{i}]: region {} is outside the token's regions {:?}",
                r.as_str(),
                scope.0
            )));
        }
    }
    out.sort();
    out.dedup();
    f.regions = out;
    Ok(())
}

impl SpotCheckApi {
    /// Plan `id` (NOT_FOUND naming `plan_id`), if the token's scope covers it.
    fn stored_plan(&self, id: u64, scope: &super::Scope) -> Result<DrawPlan, Status> {
        let plan = self
            .store
            .draw_plan(id)?
            .ok_or_else(|| Status::not_found(format!("plan_id: plan {id} not found")))?;
        check_plan(scope, &plan)?;
        Ok(plan)
    }
}

/// PERMISSION_DENIED unless a scoped token's regions cover the plan's filter.
fn check_plan(scope: &super::Scope, plan: &DrawPlan) -> Result<(), Status> {
    if !scope.is_scoped() {
        return Ok(());
    }
    if plan.filter.regions.is_empty() {
        return Err(Status::permission_denied(format!(
            "plan {} covers every region; the token is scoped to {:?}",
            plan.id, scope.0
        )));
    }
    for r in &plan.filter.regions {
        // Everything the plan's region covers must lie inside one of the prefixes.
        if !scope.0.iter().any(|p| r.coverage().starts_with(p.as_str())) {
            return Err(Status::permission_denied(format!(
                "plan.filter.region_codes: region {} is outside the token's regions {:?}",
                r.as_str(),
                scope.0
            )));
        }
    }
    Ok(())
}

/// The frozen population of each stratum of `plan`, as USCC strings (the sampler's ids).
fn populations(store: &Store, plan: &DrawPlan) -> Result<Vec<Vec<Uscc>>, Error> {
    // Kept as 18-byte USCCs: at city scale a `String` per id would double the draw's
    // peak memory and cost ~3 M allocations.
    (0..plan.strata.len())
        .map(|i| store.draw_population(plan.id, i as u8))
        .collect()
}

/// Draws every stratum of `plan` with `seed` from its frozen populations.
pub fn draw(store: &Store, plan: &DrawPlan, seed: &str) -> Result<DrawReceipt, Error> {
    draw_from(plan, &populations(store, plan)?, seed)
}

/// Draws every stratum of `plan` with `seed` from `pops` (one id list per stratum).
fn draw_from(plan: &DrawPlan, pops: &[Vec<Uscc>], seed: &str) -> Result<DrawReceipt, Error> {
    let s = Sampler::new(&sampler::draw_seed(seed, &plan.task_id));
    let mut strata = Vec::new();
    for (st, ids) in plan.strata.iter().zip(pops) {
        let picked = s.sample(ids.iter().map(Uscc::as_str), st.k as usize);
        let selected = picked
            .into_iter()
            .map(|(t, id)| Ok((Uscc::parse(id).map_err(Error::Invalid)?, t.as_string())))
            .collect::<Result<Vec<_>, Error>>()?;
        strata.push(ReceiptStratum {
            class: st.class,
            population: ids.len() as u64,
            k: st.k,
            digest: st.digest.clone(),
            selected,
        });
    }
    Ok(DrawReceipt {
        algorithm: sampler::ALGORITHM.into(),
        seed: seed.into(),
        task_id: plan.task_id.clone(),
        plan_id: plan.id,
        run_id: plan.run_id,
        filter_json: serde_json::to_string(&plan.filter).unwrap_or_default(),
        as_of: plan.as_of,
        strata,
        drawn_at_ms: 0,
    })
}

/// Recomputes a receipt; `Some(first difference)` if it does not match.
fn verify(store: &Store, plan: &DrawPlan, rec: &pb::DrawReceipt) -> Result<Option<String>, Error> {
    macro_rules! differ {
        ($($t:tt)*) => { return Ok(Some(format!($($t)*))) };
    }
    if rec.algorithm != sampler::ALGORITHM {
        differ!(
            "algorithm: {:?}, expected {:?}",
            rec.algorithm,
            sampler::ALGORITHM
        );
    }
    if rec.task_id != plan.task_id {
        differ!(
            "task_id: {:?}, the plan has {:?}",
            rec.task_id,
            plan.task_id
        );
    }
    if rec.run_id != plan.run_id {
        differ!("run_id: {}, the plan has {}", rec.run_id, plan.run_id);
    }
    if rec.as_of != plan.as_of.to_string() {
        differ!("as_of: {}, the plan has {}", rec.as_of, plan.as_of);
    }
    if let Some(stored) = &plan.receipt {
        if stored.seed != rec.seed {
            differ!(
                "seed: {:?}, the recorded draw used {:?}",
                rec.seed,
                stored.seed
            );
        }
    } else {
        differ!("plan {} has not been drawn", plan.id);
    }
    if rec.strata.len() != plan.strata.len() {
        differ!(
            "strata: {} in the receipt, {} in the plan",
            rec.strata.len(),
            plan.strata.len()
        );
    }
    // Each population is read once: for its digest and for the draw.
    let pops = populations(store, plan)?;
    let fresh = draw_from(plan, &pops, &rec.seed)?;
    for (i, (got, want)) in rec.strata.iter().zip(&fresh.strata).enumerate() {
        if got.risk_class != class_pb(want.class) {
            differ!("strata[{i}].risk_class differs");
        }
        let digest = sampler::population_digest(pops[i].iter().map(Uscc::as_str));
        if digest != plan.strata[i].digest {
            differ!("strata[{i}]: the stored population no longer has the planned digest");
        }
        if got.population_digest != digest {
            differ!(
                "strata[{i}].population_digest: {}, recomputed {}",
                got.population_digest,
                digest
            );
        }
        if got.population != want.population || got.k != want.k {
            differ!(
                "strata[{i}]: population/k {}/{}, recomputed {}/{}",
                got.population,
                got.k,
                want.population,
                want.k
            );
        }
        if got.selected.len() != want.selected.len() {
            differ!(
                "strata[{i}].selected: {} entries, recomputed {}",
                got.selected.len(),
                want.selected.len()
            );
        }
        for (j, (g, (u, t))) in got.selected.iter().zip(&want.selected).enumerate() {
            if g.uscc != u.to_string() || &g.ticket != t {
                differ!(
                    "strata[{i}].selected[{j}]: {} {}, recomputed {} {}",
                    g.uscc,
                    g.ticket,
                    u,
                    t
                );
            }
        }
    }
    match (&plan.assignment, rec.teams.is_empty()) {
        (None, true) => {}
        (None, false) => differ!("teams: the plan has no inspector teams"),
        (Some(_), true) => differ!("teams: missing (the plan's inspectors were assigned)"),
        (Some(a), false) => {
            if rec.inspector_pool_digest != a.pool_digest || pool_digest(&a.pool) != a.pool_digest {
                differ!(
                    "inspector_pool_digest: {}, recorded {}",
                    rec.inspector_pool_digest,
                    a.pool_digest
                );
            }
            let regions: Vec<(Uscc, RegionCode)> =
                a.teams.iter().map(|t| (t.uscc, t.region)).collect();
            let mut p2 = plan.clone();
            if let Some(r) = p2.receipt.as_mut() {
                r.seed = rec.seed.clone();
            }
            let fresh = assign_teams(&p2, &regions, &a.pool, &a.conflicts, a.team_size as usize)?;
            if rec.teams.len() != fresh.len() {
                differ!(
                    "teams: {} in the receipt, recomputed {}",
                    rec.teams.len(),
                    fresh.len()
                );
            }
            for (i, (g, w)) in rec.teams.iter().zip(&fresh).enumerate() {
                if *g != team_pb(w) {
                    differ!("teams[{i}] ({}): differs from the recomputed team", g.uscc);
                }
            }
        }
    }
    Ok(None)
}
