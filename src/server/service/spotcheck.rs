//! SpotCheckService handlers: matching, candidate pools, plan / draw / verify.

use std::{pin::Pin, sync::Arc};

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::{
    classification::{class_pb, instant, points},
    convert, invalid, request_key,
};
use crate::{
    domain::{
        checkitem::{self, CheckItem, Department},
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
        draws::{
            Assignment, DrawPlan, DrawReceipt, JointState, PlannedItem, PlannedStratum,
            ReceiptStratum,
        },
        op,
        spot::{Candidate, CandidateFilter},
        Store,
    },
};

pub mod joint;

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
        industry_section: (c.attrs.industry.section as char).to_string(),
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
        created_at: instant(Some(p.created_at_ms)),
        drawn: p.receipt.is_some(),
        rules_version: p.rules_version.clone(),
        override_reason: p.override_reason.clone(),
        check_items: p.check_items.iter().map(planned_item_pb).collect(),
        check_items_version: p.check_items_version.clone(),
        departments: p.departments.iter().map(department_pb).collect(),
        instance: String::new(),
        joint_manifest_digest: String::new(),
    }
}

/// A catalogue department as its proto.
pub fn department_pb(d: &Department) -> pb::Department {
    pb::Department {
        code: d.code.clone(),
        name: d.name.clone(),
    }
}

/// A check item as its proto.
pub fn check_item_pb(i: &CheckItem) -> pb::CheckItem {
    pb::CheckItem {
        code: i.code.clone(),
        name: i.name.clone(),
        department: i.department.clone(),
        legal_basis: i.basis.clone(),
        evidence: i.evidence.clone(),
        entity_types: i
            .entity_types
            .iter()
            .map(|t| convert::entity_type_pb(*t) as i32)
            .collect(),
        licences: i.scope.licence_names(),
        industries: i.scope.industry_names(),
        default_ratios: RiskClass::ALL
            .iter()
            .map(|c| pb::ClassRatio {
                risk_class: class_pb(*c),
                ratio: i.ratio(*c),
            })
            .collect(),
        checks_per_year: i.per_year,
    }
}

fn planned_item_pb(i: &PlannedItem) -> pb::PlannedCheckItem {
    pb::PlannedCheckItem {
        item: Some(check_item_pb(&i.item)),
        population: i.population,
        population_digest: i.digest.clone(),
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

/// A drawn plan's receipt as its proto: DrawSample's and CompleteJointDraw's reply
/// without the inspector teams (`teams` false: as drawn — teams assigned later are not
/// part of it), AssignInspectors' and a read's with them; with the joint draw `j`'s
/// summary naming `instance` when the plan has one. A write's retry renders it again
/// from the stored plan ([`stored_receipt_reply`]), so both answers are the same
/// bytes. Built from the plan's own receipt, whose tickets move into the reply instead
/// of being copied (a city-wide receipt holds hundreds of thousands).
pub fn receipt_reply_pb(
    mut plan: DrawPlan,
    teams: bool,
    instance: &str,
    j: Option<&JointState>,
) -> crate::Result<pb::DrawReceipt> {
    if !teams {
        plan.assignments.clear();
    }
    let no_receipt = || crate::Error::Corrupt(format!("plan {} has no receipt", plan.id));
    let mut out = receipt_head_pb(plan.receipt.as_ref().ok_or_else(no_receipt)?, &plan.filter);
    // The teams follow the receipt's order: added while the plan still holds it.
    add_plan_details(&mut out, &plan);
    let r = plan.receipt.take().ok_or_else(no_receipt)?;
    for (o, s) in out.strata.iter_mut().zip(r.strata) {
        o.selected = s
            .selected
            .into_iter()
            .map(|(u, ticket)| selected_pb(&u, ticket))
            .collect();
    }
    add_selected_items(&mut out, &plan);
    out.joint = j.and_then(|j| joint::summary_pb(instance, j));
    Ok(out)
}

/// The reply a request id bound to plan `plan_id`'s receipt answers (a retry's).
pub fn stored_receipt_reply(
    store: &Store,
    plan_id: u64,
    teams: bool,
    instance: &str,
) -> crate::Result<pb::DrawReceipt> {
    let plan = store.draw_plan(plan_id)?.ok_or_else(|| {
        crate::Error::Corrupt(format!(
            "a request id is bound to plan {plan_id}, which is not stored"
        ))
    })?;
    let j = store.joint_draw(plan_id)?;
    receipt_reply_pb(plan, teams, instance, j.as_ref())
}

/// What plan `p` adds to its receipt `out`: the exemption counts, the check items, the
/// departments, and the inspector teams.
fn add_plan_details(out: &mut pb::DrawReceipt, p: &DrawPlan) {
    // The exemption counts are the plan's (frozen with the populations).
    for (rs, ps) in out.strata.iter_mut().zip(&p.strata) {
        rs.exempted = exempted_pb(ps);
    }
    out.check_items = p.check_items.iter().map(planned_item_pb).collect();
    let (teams, departments) = teams_pb(p, &p.assignments);
    out.departments = departments;
    if let Some(a) = p.assignments.first() {
        out.team_size = a.team_size;
        out.conflicts = a
            .conflicts
            .iter()
            .map(|(i, u)| pb::Conflict {
                inspector_id: i.clone(),
                uscc: u.to_string(),
            })
            .collect();
        if p.check_items.is_empty() {
            out.inspector_pool_digest = a.pool_digest.clone();
        }
        out.teams = teams;
    }
}

/// The check items each selected enterprise of receipt `out` is checked on (plan `p`'s).
fn add_selected_items(out: &mut pb::DrawReceipt, p: &DrawPlan) {
    for (rs, masks) in out.strata.iter_mut().zip(&p.selected_masks) {
        for (sel, m) in rs.selected.iter_mut().zip(masks) {
            sel.check_items = checkitem::codes_of(p.check_items.iter().map(|i| &i.item), *m);
        }
    }
}

/// The teams of a plan's `assignments` in receipt order, and its departments with their
/// pool digests. Without check items: the one assignment's teams. With items: per
/// selected enterprise (stratum and ticket order), one team per department of its
/// items, in the plan's department order.
fn teams_pb(p: &DrawPlan, assignments: &[Assignment]) -> (Vec<pb::Team>, Vec<pb::TaskDepartment>) {
    let departments: Vec<pb::TaskDepartment> = p
        .departments
        .iter()
        .map(|d| pb::TaskDepartment {
            department: d.code.clone(),
            name: d.name.clone(),
            check_items: p
                .check_items
                .iter()
                .filter(|i| i.item.department == d.code)
                .map(|i| i.item.code.clone())
                .collect(),
            inspector_pool_digest: assignments
                .iter()
                .find(|a| a.department == d.code)
                .map(|a| a.pool_digest.clone())
                .unwrap_or_default(),
        })
        .collect();
    if p.check_items.is_empty() {
        let teams = assignments
            .iter()
            .flat_map(|a| a.teams.iter().map(|t| team_pb(t, "")))
            .collect();
        return (teams, departments);
    }
    let mut cursors: Vec<(&Assignment, usize)> = p
        .departments
        .iter()
        .filter_map(|d| assignments.iter().find(|a| a.department == d.code))
        .map(|a| (a, 0))
        .collect();
    let mut teams = Vec::new();
    for st in p.receipt.iter().flat_map(|r| &r.strata) {
        for (u, _) in &st.selected {
            for (a, next) in cursors.iter_mut() {
                if let Some(t) = a.teams.get(*next).filter(|t| t.uscc == *u) {
                    teams.push(team_pb(t, &a.department));
                    *next += 1;
                }
            }
        }
    }
    (teams, departments)
}

fn team_pb(t: &Team, department: &str) -> pb::Team {
    pb::Team {
        department: department.to_string(),
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
        department: i.department.clone(),
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

/// Draws the teams of one department for `regions` (the selected enterprises it visits,
/// in receipt order) of a drawn plan. `department` is `None` for a plan without check
/// items (team seed `S:uscc`), else the department (team seed `S:department:uscc`).
pub fn assign_teams(
    plan: &DrawPlan,
    department: Option<&str>,
    regions: &[(Uscc, RegionCode)],
    pool: &[PoolMember],
    conflicts: &[(String, Uscc)],
    team_size: usize,
) -> Result<Vec<Team>, Error> {
    let r = plan.receipt.as_ref().ok_or_else(|| {
        Error::FailedPrecondition(format!("plan_id: plan {} is not drawn yet", plan.id))
    })?;
    let seed = match department {
        None => sampler::draw_seed(&r.seed, &r.task_id),
        Some(d) => format!("{}:{d}", sampler::draw_seed(&r.seed, &r.task_id)),
    };
    let of = department
        .map(|d| format!("department {d:?}: "))
        .unwrap_or_default();
    let mut teams = Vec::new();
    for (u, region) in regions {
        let mine: Vec<String> = conflicts
            .iter()
            .filter(|(_, cu)| cu == u)
            .map(|(i, _)| i.clone())
            .collect();
        let team = draw_team(&seed, *u, *region, pool, &mine, team_size).ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "{of}too few eligible inspectors for {u} (region {region:?}): {team_size} needed from {} active inspectors, none from the enterprise's region",
                pool.len()
            ))
        })?;
        teams.push(team);
    }
    Ok(teams)
}

/// One selected enterprise of a receipt (its check items are the plan's to add).
fn selected_pb(u: &Uscc, ticket: String) -> pb::Selected {
    pb::Selected {
        uscc: u.to_string(),
        ticket,
        check_items: Vec::new(),
    }
}

/// A receipt without its selections (each stratum's `selected` empty).
fn receipt_head_pb(r: &DrawReceipt, filter: &CandidateFilter) -> pb::DrawReceipt {
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
                selected: Vec::new(),
                exempted: Vec::new(),
            })
            .collect(),
        drawn_at: instant(Some(r.drawn_at_ms)),
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
        let today = self.store.today();
        let as_of = convert::past_as_of("as_of", &req.as_of, today).map_err(invalid)?;
        let view = self.store.require_current_run()?;
        // Every item is answered from the same runs: the general one and the
        // specialised ones current when the batch arrived, or at the end of a past
        // `as_of` (then read per enterprise from the run's blocks).
        let past = if as_of < today {
            let (run, _) = self.store.general_run_on("as_of", as_of)?;
            Some((run, self.store.specialised_runs_on(as_of)?))
        } else {
            None
        };
        let specialised = self.store.specialised_runs()?;
        let spot = view.spot_view();
        let rules = &self.store.options().rules.in_force(as_of).exemptions;
        let mut items = Vec::with_capacity(req.usccs.len());
        for (i, s) in req.usccs.iter().enumerate() {
            let mut item = pb::MatchItem {
                uscc: s.clone(),
                run_id: past.as_ref().map_or(view.run.id, |(run, _)| *run),
                ..Default::default()
            };
            match Uscc::parse(s) {
                Err(e) => item.error = format!("usccs[{i}]: {}", e.reason),
                Ok(u) => {
                    // Outside a scoped token's regions answers as unknown (found =
                    // false), so the token learns nothing of other districts.
                    let row = spot.row(&u)?.filter(|r| scope.covers(&r.attrs.region));
                    if let Some(row) = row {
                        let answer = match &past {
                            None => Some((
                                row.class,
                                row.score.into(),
                                self.store.specialised_classes_in(&specialised, &u)?,
                            )),
                            Some((run, runs)) => {
                                match self.store.class_in_run_until(&u, *run, as_of.end_ms()) {
                                    Ok(c) => Some((
                                        c.class,
                                        c.score,
                                        self.store.classes_in_runs_on(&u, runs, as_of)?,
                                    )),
                                    Err(crate::error::Error::NotFound(_)) => None,
                                    Err(e) => return Err(e.into()),
                                }
                            }
                        };
                        if let Some((class, score, specialised)) = answer {
                            let ex = rules.exemption(row.attrs.status, class, &row.history, as_of);
                            item.found = true;
                            item.risk_class = class_pb(class);
                            item.score = points(score);
                            item.exempt = ex.is_some();
                            item.exemption_reason =
                                ex.map(|e| e.name().to_string()).unwrap_or_default();
                            item.specialised = specialised
                                .iter()
                                .map(super::classification::specialised_pb)
                                .collect();
                        }
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
        let catalogue = &self.store.options().check_items;
        let items = plan_items(catalogue, &r.check_items)?;
        let departments: Vec<Department> = {
            let mut out: Vec<Department> = Vec::new();
            for it in &items {
                if !out.iter().any(|d| d.code == it.department) {
                    if let Some(d) = catalogue.department(&it.department) {
                        out.push(d.clone());
                    }
                }
            }
            out
        };
        let catalogue_version = if items.is_empty() {
            String::new()
        } else {
            catalogue.version.clone()
        };
        // No strata: one per class (of the filter's classes) at the default shares (the
        // items' largest, or the rules').
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
                // The items' largest default share, kept inside the class's range in
                // the rules in force (a catalogue may predate a rules version).
                None => {
                    let (min, max, default) = rules.sampling.of(class);
                    let share = checkitem::default_ratio(&items, class)
                        .map_or(default, |r| r.clamp(min, max));
                    (Some(share), None)
                }
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
        let (plan, populations, exempted, masks) = tokio::task::spawn_blocking(move || {
            let _busy = store.foreground_work();
            let (view, mut by_class) = store.spot_candidate_usccs(&family, &f2, as_of, &items)?;
            let (mut populations, mut exempted, mut masks) = (Vec::new(), Vec::new(), Vec::new());
            for s in strata.iter_mut() {
                // Strata have distinct classes (checked above), so each list is taken once.
                let pop: Vec<Uscc> = std::mem::take(&mut by_class.usccs[s.class.index()]);
                masks.push(std::mem::take(&mut by_class.masks[s.class.index()]));
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
            // Each item's population over the strata; an item that applies to nobody
            // there is refused by name.
            let lists: Vec<(&[Uscc], &[u64])> = populations
                .iter()
                .zip(&masks)
                .map(|(p, m): (&Vec<Uscc>, &Vec<u64>)| (p.as_slice(), m.as_slice()))
                .collect();
            let stats = checkitem::item_populations(&lists, items.len());
            let mut check_items = Vec::with_capacity(items.len());
            for (i, (item, (population, digest))) in items.into_iter().zip(stats).enumerate() {
                if population == 0 {
                    return Err(Error::Invalid(DomainError::invalid(
                        format!("check_items[{i}]"),
                        format!(
                            "item {} ({}) applies to no enterprise of the filter and strata (exemptions applied)",
                            item.code, item.name
                        ),
                    )));
                }
                check_items.push(PlannedItem {
                    item,
                    population,
                    digest,
                });
            }
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
                assignments: Vec::new(),
                rules_version: rules.version.clone(),
                override_reason,
                check_items,
                check_items_version: catalogue_version,
                departments,
                selected_masks: Vec::new(),
            };
            Ok::<_, Error>((plan, populations, exempted, masks))
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
                masks,
            },
            key,
            move |p| {
                let mut out = plan_pb(p, store_for_reply.family_of(&p.model_version));
                out.instance = store_for_reply.options().instance_name.clone();
                Ok(out)
            },
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
        check_seed(&r.seed)?;
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
        if let Some(j) = self.store.joint_draw(plan.id)? {
            return Err(Status::failed_precondition(format!(
                "plan_id: plan {} is committed to the joint draw {}; CompleteJointDraw draws it",
                plan.id, j.digest
            )));
        }
        let store = self.store.clone();
        let seed = r.seed.clone();
        let p2 = plan.clone();
        let (receipt, selected_masks) = tokio::task::spawn_blocking(move || {
            let _busy = store.foreground_work();
            draw(&store, &p2, &seed)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))??;
        let reply = super::write_bound(
            &self.store,
            actor.clone(),
            op::RecordDraw {
                plan_id: plan.id,
                receipt: Box::new(receipt),
                selected_masks,
            },
            key,
            // No joint draw: a plan committed to one was refused above.
            move |plan| receipt_reply_pb(plan, false, "", None),
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
        Ok(Response::new(self.plan_reply(&plan)?))
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
        Ok(Response::new(joint::receipt_reply(&self.store, plan)?))
    }

    async fn list_check_items(
        &self,
        req: Request<pb::ListCheckItemsRequest>,
    ) -> Result<Response<pb::ListCheckItemsResponse>, Status> {
        let c = &self.store.options().check_items;
        let department = req.get_ref().department.trim();
        if !department.is_empty() && c.department(department).is_none() {
            return Err(unknown_department("department", &self.store, department));
        }
        Ok(Response::new(pb::ListCheckItemsResponse {
            catalogue_version: c.version.clone(),
            departments: c.departments.iter().map(department_pb).collect(),
            items: c
                .items
                .iter()
                .filter(|i| department.is_empty() || i.department == department)
                .map(check_item_pb)
                .collect(),
            default_department: c.default_department.clone(),
        }))
    }

    async fn commit_joint_population(
        &self,
        req: Request<pb::CommitJointPopulationRequest>,
    ) -> Result<Response<pb::JointCommitment>, Status> {
        self.commit_joint(req).await
    }

    async fn draw_joint_sample(
        &self,
        req: Request<pb::DrawJointSampleRequest>,
    ) -> Result<Response<pb::JointDraw>, Status> {
        self.reveal_joint(req).await
    }

    type ListJointCandidatesStream = Boxed<pb::JointCandidateBatch>;

    async fn list_joint_candidates(
        &self,
        req: Request<pb::ListJointCandidatesRequest>,
    ) -> Result<Response<Self::ListJointCandidatesStream>, Status> {
        self.joint_candidates(req).await
    }

    async fn complete_joint_draw(
        &self,
        req: Request<pb::CompleteJointDrawRequest>,
    ) -> Result<Response<pb::DrawReceipt>, Status> {
        self.complete_joint(req).await
    }

    type ListTaskResultsStream = Boxed<pb::TaskResultBatch>;

    async fn list_task_results(
        &self,
        req: Request<pb::ListTaskResultsRequest>,
    ) -> Result<Response<Self::ListTaskResultsStream>, Status> {
        let scope = super::Scope::of(&req);
        let plan = self.stored_plan(req.get_ref().plan_id, &scope)?;
        if plan.receipt.is_none() {
            return Err(Status::failed_precondition(format!(
                "plan_id: plan {} is not drawn yet (DrawSample draws it)",
                plan.id
            )));
        }
        let store = self.store.clone();
        Ok(Response::new(super::blocking_stream(4, move |emit| {
            let mut batch = Vec::new();
            let strata = plan.receipt.iter().flat_map(|r| r.strata.iter());
            for (k, st) in strata.enumerate() {
                for (j, (u, _)) in st.selected.iter().enumerate() {
                    let mask = plan
                        .selected_masks
                        .get(k)
                        .and_then(|m| m.get(j))
                        .copied()
                        .unwrap_or(0);
                    // A region-scoped token sees the result only while the enterprise
                    // is in its regions (as every dossier read answers it).
                    let result = store
                        .enterprise_records(u)?
                        .filter(|d| {
                            d.enterprise
                                .as_ref()
                                .is_some_and(|e| scope.covers(&e.region))
                        })
                        .and_then(|d| {
                            d.inspections
                                .into_iter()
                                .find(|i| i.task_id == plan.task_id)
                        })
                        .map(|mut i| {
                            i.uscc = *u;
                            i
                        });
                    batch.push(task_result(&plan, *u, st.class, mask, result.as_ref()));
                    if batch.len() == 1000
                        && !emit(pb::TaskResultBatch {
                            results: std::mem::take(&mut batch),
                        })
                    {
                        return Ok(());
                    }
                }
            }
            if !batch.is_empty() {
                emit(pb::TaskResultBatch { results: batch });
            }
            Ok(())
        })))
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
                .map(|p| self.plan_reply(p))
                .collect::<Result<_, _>>()?,
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
            department: m.department.trim().to_string(),
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
        let department = r.department.trim().to_string();
        if !department.is_empty()
            && self
                .store
                .options()
                .check_items
                .department(&department)
                .is_none()
        {
            return Err(unknown_department("department", &self.store, &department));
        }
        let store = self.store.clone();
        let (inspectors, next_page_token) = super::blocking(move || {
            let mut out: Vec<pb::Inspector> = store
                .inspectors()?
                .iter()
                .filter(|i| scope.covers(&i.home_region))
                .filter(|i| department.is_empty() || i.department == department)
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
        if !plan.assignments.is_empty() {
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
        let (directory, regions) = super::blocking(move || {
            let directory = store.inspectors()?;
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
            Ok((directory, regions))
        })
        .await?;
        let default_department = self.store.options().check_items.default_department.clone();
        let assignments = if plan.check_items.is_empty() {
            // Without items: the default department's directory, every selected enterprise.
            let pool = department_pool(&directory, &default_department);
            let teams = assign_teams(
                &plan,
                None,
                &regions,
                &pool,
                &conflicts,
                r.team_size as usize,
            )?;
            vec![Assignment {
                department: default_department,
                team_size: r.team_size,
                conflicts,
                pool_digest: pool_digest(&pool),
                pool,
                teams,
                assigned_at_ms: 0,
            }]
        } else {
            // A joint task: each department its own inspectors, for the selected
            // enterprises one of its items applies to.
            let masks: Vec<u64> = plan.selected_masks.iter().flatten().copied().collect();
            let mut out = Vec::new();
            for d in &plan.departments {
                let pool = department_pool(&directory, &d.code);
                let mine = department_mask(&plan, &d.code);
                let visited: Vec<(Uscc, RegionCode)> = regions
                    .iter()
                    .zip(&masks)
                    .filter(|(_, m)| *m & mine != 0)
                    .map(|(x, _)| *x)
                    .collect();
                if pool.is_empty() && !visited.is_empty() {
                    return Err(Status::failed_precondition(format!(
                        "department {:?} ({}) has no active inspectors: UpsertInspector with department {:?} first",
                        d.code, d.name, d.code
                    )));
                }
                let teams = assign_teams(
                    &plan,
                    Some(&d.code),
                    &visited,
                    &pool,
                    &conflicts,
                    r.team_size as usize,
                )?;
                out.push(Assignment {
                    department: d.code.clone(),
                    team_size: r.team_size,
                    conflicts: conflicts.clone(),
                    pool_digest: pool_digest(&pool),
                    pool,
                    teams,
                    assigned_at_ms: 0,
                });
            }
            out
        };
        let store = self.store.clone();
        let reply = super::write_bound(
            &self.store,
            actor.clone(),
            op::RecordAssignment {
                plan_id: plan.id,
                assignments,
            },
            key,
            move |p: DrawPlan| joint::receipt_reply(&store, p),
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
        if !r.check_item.is_empty() {
            let Some(bit) = plan
                .check_items
                .iter()
                .position(|i| i.item.code == r.check_item)
            else {
                return Err(invalid(DomainError::invalid(
                    "check_item",
                    format!("plan {} names no check item {:?}", plan.id, r.check_item),
                )));
            };
            let store = self.store.clone();
            return Ok(Response::new(super::blocking_stream(4, move |emit| {
                let pop = item_population(&store, &plan, bit)?;
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
            })));
        }
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
    /// A stored plan as its proto, with this instance's name and the digest of the
    /// joint draw it is committed to, if any.
    fn plan_reply(&self, p: &DrawPlan) -> Result<pb::DrawPlan, Status> {
        let mut out = plan_pb(p, self.store.family_of(&p.model_version));
        out.instance = self.store.options().instance_name.clone();
        if let Some(j) = self.store.joint_draw(p.id)? {
            out.joint_manifest_digest = j.digest;
        }
        Ok(out)
    }

    fn stored_plan(&self, id: u64, scope: &super::Scope) -> Result<DrawPlan, Status> {
        let plan = self
            .store
            .draw_plan(id)?
            .ok_or_else(|| Status::not_found(format!("plan_id: plan {id} not found")))?;
        check_plan(scope, &plan)?;
        Ok(plan)
    }
}

/// A revealed seed: used verbatim (it is hashed into the draw), but a blank one is no
/// seed (INVALID_ARGUMENT naming `seed`).
fn check_seed(seed: &str) -> Result<(), Status> {
    if seed.trim().is_empty() {
        return Err(invalid(DomainError::invalid(
            "seed",
            "is required (not blank)",
        )));
    }
    if seed.chars().count() > 256 {
        return Err(invalid(DomainError::invalid(
            "seed",
            "at most 256 characters",
        )));
    }
    Ok(())
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

/// The check items a plan names, from the catalogue (INVALID_ARGUMENT naming
/// `check_items[i]` for an unknown code, a repeat, or more than
/// [`checkitem::MAX_ITEMS_PER_PLAN`]).
fn plan_items(
    catalogue: &checkitem::CheckCatalogue,
    codes: &[String],
) -> Result<Vec<CheckItem>, Status> {
    if codes.len() > checkitem::MAX_ITEMS_PER_PLAN {
        return Err(invalid(DomainError::invalid(
            "check_items",
            format!(
                "{} items; a plan names at most {}",
                codes.len(),
                checkitem::MAX_ITEMS_PER_PLAN
            ),
        )));
    }
    let mut out: Vec<CheckItem> = Vec::with_capacity(codes.len());
    for (i, code) in codes.iter().enumerate() {
        let code = code.trim();
        let item = catalogue.item(code).ok_or_else(|| {
            invalid(DomainError::invalid(
                format!("check_items[{i}]"),
                format!(
                    "{code:?} is not an item of the catalogue {} (ListCheckItems lists them)",
                    catalogue.version
                ),
            ))
        })?;
        if out.iter().any(|x| x.code == item.code) {
            return Err(invalid(DomainError::invalid(
                format!("check_items[{i}]"),
                format!("{code:?} is named twice"),
            )));
        }
        out.push(item.clone());
    }
    Ok(out)
}

/// One selected enterprise's visit: its departments, the recorded result and each of
/// its items' outcome.
fn task_result(
    plan: &DrawPlan,
    uscc: Uscc,
    class: RiskClass,
    mask: u64,
    result: Option<&crate::domain::InspectionResult>,
) -> pb::TaskResult {
    let applying: Vec<&CheckItem> = plan
        .check_items
        .iter()
        .enumerate()
        .filter(|(b, _)| mask & (1 << b) != 0)
        .map(|(_, i)| &i.item)
        .collect();
    let departments = plan
        .departments
        .iter()
        .filter(|d| applying.iter().any(|i| i.department == d.code))
        .map(|d| d.code.clone())
        .collect();
    let items = applying
        .iter()
        .map(|i| {
            let outcome = match result {
                None => pb::ItemOutcome::NotRecorded,
                Some(r) if !r.check_items.contains(&i.code) => pb::ItemOutcome::NotChecked,
                Some(r) if r.problem_items.contains(&i.code) => pb::ItemOutcome::Problem,
                Some(_) => pb::ItemOutcome::NoProblem,
            };
            pb::ItemResult {
                check_item: i.code.clone(),
                department: i.department.clone(),
                outcome: outcome as i32,
            }
        })
        .collect();
    pb::TaskResult {
        uscc: uscc.to_string(),
        risk_class: class_pb(class),
        departments,
        result: result.map(convert::inspection_pb),
        items,
    }
}

/// INVALID_ARGUMENT naming `field`: not a department of the catalogue.
fn unknown_department(field: &str, store: &Store, code: &str) -> Status {
    let c = &store.options().check_items;
    invalid(DomainError::invalid(
        field,
        format!(
            "{code:?} is not a department of the check-item catalogue ({})",
            c.department_codes()
        ),
    ))
}

/// The active inspectors of a department (id, home region), sorted by id.
fn department_pool(directory: &[Inspector], department: &str) -> Vec<PoolMember> {
    let mut pool: Vec<PoolMember> = directory
        .iter()
        .filter(|i| i.active && i.department == department)
        .map(|i| (i.id.clone(), i.home_region))
        .collect();
    pool.sort();
    pool
}

/// The bits of a plan's items that `department` owns.
fn department_mask(plan: &DrawPlan, department: &str) -> u64 {
    plan.check_items
        .iter()
        .enumerate()
        .filter(|(_, i)| i.item.department == department)
        .fold(0, |m, (b, _)| m | (1u64 << b))
}

/// The population of a plan's item `bit`: the enterprises of every stratum it applies
/// to, ascending.
fn item_population(store: &Store, plan: &DrawPlan, bit: usize) -> Result<Vec<Uscc>, Error> {
    let mut out = Vec::new();
    for s in 0..plan.strata.len() {
        let pop = store.draw_population(plan.id, s as u8)?;
        let masks = store.draw_masks(plan, s as u8)?;
        out.extend(
            pop.into_iter()
                .zip(masks)
                .filter(|(_, m)| m & (1 << bit) != 0)
                .map(|(u, _)| u),
        );
    }
    out.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(out)
}

/// Item masks per stratum, parallel to its population or selection.
type Masks = Vec<Vec<u64>>;

/// The frozen population of each stratum of `plan`, as USCC strings (the sampler's ids),
/// with the item masks of each (empty without check items).
fn populations(store: &Store, plan: &DrawPlan) -> Result<(Vec<Vec<Uscc>>, Masks), Error> {
    // Kept as 18-byte USCCs: at city scale a `String` per id would double the draw's
    // peak memory and cost ~3 M allocations.
    let mut pops = Vec::with_capacity(plan.strata.len());
    let mut masks = Vec::with_capacity(plan.strata.len());
    for i in 0..plan.strata.len() {
        pops.push(store.draw_population(plan.id, i as u8)?);
        masks.push(store.draw_masks(plan, i as u8)?);
    }
    Ok((pops, masks))
}

/// Draws every stratum of `plan` with `seed` from its frozen populations; with the item
/// masks of the selected enterprises (per stratum; empty without check items).
pub fn draw(store: &Store, plan: &DrawPlan, seed: &str) -> Result<(DrawReceipt, Masks), Error> {
    let (pops, masks) = populations(store, plan)?;
    draw_from(plan, &pops, &masks, seed, None)
}

/// Draws every stratum of `plan` with `seed` from `pops` (one id list per stratum, with
/// its item masks parallel when the plan names items): the plan's k of each stratum,
/// or `ks` (an instance's share of a joint draw).
fn draw_from(
    plan: &DrawPlan,
    pops: &[Vec<Uscc>],
    masks: &[Vec<u64>],
    seed: &str,
    ks: Option<&[u64]>,
) -> Result<(DrawReceipt, Masks), Error> {
    let s = Sampler::new(&sampler::draw_seed(seed, &plan.task_id));
    let mut strata = Vec::new();
    let mut selected_masks = Vec::new();
    for (i, (st, ids)) in plan.strata.iter().zip(pops).enumerate() {
        let k = ks.and_then(|ks| ks.get(i).copied()).unwrap_or(st.k);
        let picked = s.sample_at(ids, usize::try_from(k).unwrap_or(usize::MAX));
        if !plan.check_items.is_empty() {
            let m = masks.get(i).map(Vec::as_slice).unwrap_or_default();
            selected_masks.push(
                picked
                    .iter()
                    .map(|&(_, at)| {
                        m.get(at).copied().ok_or_else(|| {
                            Error::Corrupt(format!(
                                "plan {}: no item mask for {}",
                                plan.id, ids[at]
                            ))
                        })
                    })
                    .collect::<Result<Vec<u64>, Error>>()?,
            );
        }
        let selected: Vec<(Uscc, String)> = picked
            .into_iter()
            .map(|(t, at)| (ids[at], t.as_string()))
            .collect();
        strata.push(ReceiptStratum {
            class: st.class,
            population: ids.len() as u64,
            k,
            digest: st.digest.clone(),
            selected,
        });
    }
    let receipt = DrawReceipt {
        algorithm: sampler::ALGORITHM.into(),
        seed: seed.into(),
        task_id: plan.task_id.clone(),
        plan_id: plan.id,
        run_id: plan.run_id,
        filter_json: serde_json::to_string(&plan.filter).unwrap_or_default(),
        as_of: plan.as_of,
        strata,
        drawn_at_ms: 0,
    };
    Ok((receipt, selected_masks))
}

/// The first difference between a list of a receipt and its recomputation: their
/// lengths, else the first differing entry as `describe(index, got, want)` says it.
fn list_difference<T: PartialEq>(
    name: &str,
    got: &[T],
    want: &[T],
    describe: impl Fn(usize, &T, &T) -> String,
) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!(
            "{name}: {} in the receipt, recomputed {}",
            got.len(),
            want.len()
        ));
    }
    got.iter()
        .zip(want)
        .enumerate()
        .find(|(_, (g, w))| g != w)
        .map(|(i, (g, w))| describe(i, g, w))
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
    let (pops, masks) = populations(store, plan)?;
    // A share of a joint draw: the recorded share of each stratum, which must be all of
    // this instance's tickets up to the joint threshold.
    let joint = store.joint_draw(plan.id)?.filter(|j| j.outcome.is_some());
    let ks = joint.as_ref().map(joint::share_ks);
    if let Some(j) = &joint {
        if let Some(d) = joint::share_is_complete(j, &pops, &rec.seed) {
            differ!("{d}");
        }
        let stored = joint::summary_pb(&store.options().instance_name, j);
        if rec.joint != stored {
            differ!("joint: differs from the joint draw this instance recorded");
        }
    }
    let (fresh, fresh_masks) = draw_from(plan, &pops, &masks, &rec.seed, ks.as_deref())?;
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
        let items_of = |j: usize| {
            fresh_masks
                .get(i)
                .and_then(|m| m.get(j))
                .map(|m| checkitem::codes_of(plan.check_items.iter().map(|x| &x.item), *m))
                .unwrap_or_default()
        };
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
            let items = items_of(j);
            if g.check_items != items {
                differ!(
                    "strata[{i}].selected[{j}].check_items: {:?}, recomputed {:?}",
                    g.check_items,
                    items
                );
            }
        }
    }
    // The check items: as the plan froze them, their populations recomputed from the
    // stored lists.
    let lists: Vec<(&[Uscc], &[u64])> = pops
        .iter()
        .zip(&masks)
        .map(|(p, m)| (p.as_slice(), m.as_slice()))
        .collect();
    let stats = checkitem::item_populations(&lists, plan.check_items.len());
    if rec.check_items.len() != plan.check_items.len() {
        differ!(
            "check_items: {} in the receipt, {} in the plan",
            rec.check_items.len(),
            plan.check_items.len()
        );
    }
    for (i, ((got, want), (n, digest))) in rec
        .check_items
        .iter()
        .zip(&plan.check_items)
        .zip(&stats)
        .enumerate()
    {
        if (*n, digest) != (want.population, &want.digest) {
            differ!(
                "check_items[{i}] ({}): the stored population no longer has the planned digest",
                want.item.code
            );
        }
        if *got != planned_item_pb(want) {
            differ!(
                "check_items[{i}]: differs from the plan's item {} (population {}, digest {})",
                want.item.code,
                want.population,
                want.digest
            );
        }
    }
    if plan.assignments.is_empty() {
        if !rec.teams.is_empty() {
            differ!("teams: the plan has no inspector teams");
        }
        return Ok(None);
    }
    if rec.teams.is_empty() {
        differ!("teams: missing (the plan's inspectors were assigned)");
    }
    // The teams, recomputed from each recorded pool with the receipt's seed.
    let mut p2 = plan.clone();
    if let Some(r) = p2.receipt.as_mut() {
        r.seed = rec.seed.clone();
    }
    // Which enterprises each department visits: every selected one without items, else
    // those one of its items applies to, in receipt order.
    let selected: Vec<(Uscc, u64)> = fresh
        .strata
        .iter()
        .enumerate()
        .flat_map(|(k, s)| {
            let masks = fresh_masks.get(k);
            s.selected
                .iter()
                .enumerate()
                .map(move |(j, (u, _))| (*u, masks.and_then(|m| m.get(j)).copied().unwrap_or(0)))
        })
        .collect();
    let mut fresh = Vec::with_capacity(plan.assignments.len());
    for a in &plan.assignments {
        let mine = department_mask(plan, &a.department);
        let visited: Vec<Uscc> = selected
            .iter()
            .filter(|(_, m)| plan.check_items.is_empty() || m & mine != 0)
            .map(|(u, _)| *u)
            .collect();
        let teamed: Vec<Uscc> = a.teams.iter().map(|t| t.uscc).collect();
        if teamed != visited {
            differ!(
                "teams of {:?}: the recorded assignment covers {} enterprises, the selection and its items give {}",
                a.department,
                teamed.len(),
                visited.len()
            );
        }
        if pool_digest(&a.pool) != a.pool_digest {
            differ!(
                "inspector pool of {:?}: the recorded pool no longer has its digest {}",
                a.department,
                a.pool_digest
            );
        }
        let regions: Vec<(Uscc, RegionCode)> = a.teams.iter().map(|t| (t.uscc, t.region)).collect();
        let department = (!plan.check_items.is_empty()).then_some(a.department.as_str());
        let teams = assign_teams(
            &p2,
            department,
            &regions,
            &a.pool,
            &a.conflicts,
            a.team_size as usize,
        )?;
        fresh.push(Assignment { teams, ..a.clone() });
    }
    if plan.check_items.is_empty() {
        let a = &plan.assignments[0];
        if rec.inspector_pool_digest != a.pool_digest {
            differ!(
                "inspector_pool_digest: {}, recorded {}",
                rec.inspector_pool_digest,
                a.pool_digest
            );
        }
    }
    let (teams, departments) = teams_pb(plan, &fresh);
    let found = list_difference("departments", &rec.departments, &departments, |i, g, w| {
        format!(
            "departments[{i}] ({}): differs from the recorded {} (inspector pool digest {})",
            g.department, w.department, w.inspector_pool_digest
        )
    })
    .or_else(|| {
        list_difference("teams", &rec.teams, &teams, |i, g, _| {
            format!(
                "teams[{i}] ({} {}): differs from the recomputed team",
                g.uscc, g.department
            )
        })
    });
    if let Some(d) = found {
        differ!("{d}");
    }
    Ok(None)
}
