//! StatisticsService handlers: filing and spot-check statistics summed from the store's
//! counters, and the model's performance against later spot-check results.

use std::collections::BTreeMap;

use tonic::{Request, Response, Status};

use super::{
    classification::class_pb, convert::entity_type_pb, invalid, region_prefixes, status, Scope,
};
use crate::{
    domain::{
        rules::report_deadline,
        stats::{
            mean_max, ratio, Counter, Month, ObjectionCounts, Performance, RepairCounts,
            FIRST_REPORT_YEAR,
        },
        Date, DomainError, EntityType, RegionCode, RiskClass,
    },
    error::Error,
    proto::{self as pb, statistics_service_server::StatisticsService},
    store::Store,
};

/// The StatisticsService.
#[derive(Clone)]
pub struct StatisticsApi {
    store: Store,
}

impl StatisticsApi {
    /// A service over `store`.
    pub fn new(store: Store) -> Self {
        StatisticsApi { store }
    }
}

/// Whether `r` lies under one of `prefixes` (none: everything).
fn within(prefixes: &[String], r: &RegionCode) -> bool {
    prefixes.is_empty() || prefixes.iter().any(|p| r.as_str().starts_with(p.as_str()))
}

/// A store read on the blocking pool ([`super::blocking`]), its error mapped once.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::error::Result<T> + Send + 'static,
) -> Result<T, Status> {
    super::blocking(move || f().map_err(status)).await
}

/// `filed / obliged` as the API shows it (0 when undefined).
fn rate(num: u64, den: u64) -> f64 {
    ratio(num, den).unwrap_or(0.0)
}

fn filing_rows(
    counters: &[(Counter, u64)],
    years: std::ops::RangeInclusive<u16>,
    prefixes: &[String],
    by_region: bool,
    today: Date,
) -> Vec<pb::FilingRow> {
    // (region or none, entity) → obliged per first year; (year, region, entity) → filed.
    type Group = (Option<RegionCode>, EntityType);
    let mut obliged: BTreeMap<Group, Vec<(u16, u64)>> = BTreeMap::new();
    let mut filed: BTreeMap<(u16, Option<RegionCode>, EntityType), (u64, u64)> = BTreeMap::new();
    let group = |r: RegionCode| by_region.then_some(r);
    for (c, n) in counters {
        match *c {
            Counter::Obliged {
                first_year,
                region,
                entity,
            } if within(prefixes, &region) => {
                obliged
                    .entry((group(region), entity))
                    .or_default()
                    .push((first_year, *n));
            }
            Counter::Filed {
                year,
                region,
                entity,
                on_time,
            } if within(prefixes, &region) && years.contains(&year) => {
                let f = filed.entry((year, group(region), entity)).or_default();
                f.0 += n;
                if on_time {
                    f.1 += n;
                }
            }
            _ => {}
        }
    }
    let mut rows = Vec::new();
    for year in years {
        let deadline = report_deadline(year);
        for ((region, entity), firsts) in &obliged {
            let due: u64 = firsts
                .iter()
                .filter(|(first, _)| *first <= year)
                .map(|(_, n)| n)
                .sum();
            let (f, on_time) = filed
                .get(&(year, *region, *entity))
                .copied()
                .unwrap_or_default();
            if due == 0 && f == 0 {
                continue;
            }
            rows.push(pb::FilingRow {
                report_year: u32::from(year),
                region_code: region.map(|r| r.as_str().to_string()).unwrap_or_default(),
                entity_type: entity_type_pb(*entity) as i32,
                obliged: due,
                filed: f,
                filed_on_time: on_time,
                filing_rate: rate(f, due),
                on_time_rate: rate(on_time, due),
                deadline: deadline.to_string(),
                deadline_passed: today > deadline,
            });
        }
    }
    rows
}

/// The spot-check rows of `counters`, summed over what is not asked apart.
fn spot_rows(
    counters: &[(Counter, u64)],
    prefixes: &[String],
    by_region: bool,
    by_month: bool,
) -> (
    Vec<pb::SpotCheckRow>,
    Vec<pb::PlansInMonth>,
    Vec<pb::MatchesInMonth>,
) {
    // (month, region, class) → (drawn, inspected, problems)
    type Key = (Option<Month>, Option<RegionCode>, Option<RiskClass>);
    let mut rows: BTreeMap<Key, (u64, u64, u64)> = BTreeMap::new();
    let mut plans = Vec::new();
    let mut matches: BTreeMap<Month, pb::MatchesInMonth> = BTreeMap::new();
    let key = |m: Month, r: RegionCode, c: Option<RiskClass>| {
        (by_month.then_some(m), by_region.then_some(r), c)
    };
    for (c, n) in counters {
        match *c {
            Counter::Inspected {
                month,
                region,
                class,
                problem,
            } if within(prefixes, &region) => {
                let row = rows.entry(key(month, region, class)).or_default();
                row.1 += n;
                if problem {
                    row.2 += n;
                }
            }
            Counter::Drawn {
                month,
                region,
                class,
            } if within(prefixes, &region) => {
                rows.entry(key(month, region, Some(class))).or_default().0 += n;
            }
            Counter::PlansDrawn { month } if prefixes.is_empty() => {
                plans.push(pb::PlansInMonth {
                    month: month.to_string(),
                    plans: *n,
                });
            }
            Counter::Matched { month, stream } if prefixes.is_empty() => {
                let m = matches.entry(month).or_insert_with(|| pb::MatchesInMonth {
                    month: month.to_string(),
                    ..Default::default()
                });
                if stream {
                    m.match_stream += n;
                } else {
                    m.batch_match += n;
                }
            }
            _ => {}
        }
    }
    let rows = rows
        .into_iter()
        .map(
            |((m, r, c), (drawn, inspected, problems))| pb::SpotCheckRow {
                month: m.map(|m| m.to_string()).unwrap_or_default(),
                region_code: r.map(|r| r.as_str().to_string()).unwrap_or_default(),
                risk_class: c.map(class_pb).unwrap_or_default(),
                drawn,
                inspected,
                problems_found: problems,
                problem_rate: rate(problems, inspected),
            },
        )
        .collect();
    (rows, plans, matches.into_values().collect())
}

fn performance_pb(
    run: &crate::store::ScoringRun,
    p: &Performance,
    missing: u64,
) -> pb::ModelPerformance {
    pb::ModelPerformance {
        run_id: run.id,
        model_version: run.model_version.clone(),
        as_of: run.as_of.to_string(),
        classes: RiskClass::ALL
            .iter()
            .map(|c| {
                let o = p.classes[c.index()];
                pb::ClassPerformance {
                    risk_class: class_pb(*c),
                    inspected: o.inspected,
                    problems_found: o.problems,
                    problem_rate: o.rate().unwrap_or(0.0),
                    lift: p.lift(*c).unwrap_or(0.0),
                }
            })
            .collect(),
        inspected: p.all.inspected,
        problems_found: p.all.problems,
        problem_rate: p.all.rate().unwrap_or(0.0),
        auc: p.auc.unwrap_or(0.0),
        auc_defined: p.auc.is_some(),
        not_in_run: missing,
    }
}

/// The month range of a request: `to` empty = this month, `from` empty = January of
/// `to`'s year.
fn month_range(from: &str, to: &str, today: Date) -> Result<(Month, Month), Status> {
    let to = match to.trim() {
        "" => Month::of(today),
        s => Month::parse("to_month", s).map_err(invalid)?,
    };
    let from = match from.trim() {
        "" => Month(to.0 / 100 * 100 + 1),
        s => Month::parse("from_month", s).map_err(invalid)?,
    };
    if from > to {
        return Err(invalid(DomainError::invalid(
            "from_month",
            format!("{from} is after to_month {to}"),
        )));
    }
    Ok((from, to))
}

fn repair_pb(month: Option<Month>, c: &RepairCounts) -> pb::RepairCaseCounts {
    let (mean, max) = mean_max(&c.days);
    pb::RepairCaseCounts {
        month: month.map(|m| m.to_string()).unwrap_or_default(),
        submitted: c.submitted,
        open: c.open,
        not_accepted: c.not_accepted,
        approved: c.approved,
        denied: c.denied,
        revoked: c.revoked,
        decided_late: c.late,
        mean_days_to_decision: mean,
        max_days_to_decision: max,
    }
}

fn objection_pb(month: Option<Month>, c: &ObjectionCounts) -> pb::ObjectionCounts {
    let (mean, max) = mean_max(&c.days);
    pb::ObjectionCounts {
        month: month.map(|m| m.to_string()).unwrap_or_default(),
        filed: c.filed,
        open: c.open,
        upheld: c.upheld,
        corrected: c.corrected,
        resolved_late: c.late,
        mean_days_to_resolution: mean,
        max_days_to_resolution: max,
    }
}

#[tonic::async_trait]
impl StatisticsService for StatisticsApi {
    async fn get_repair_statistics(
        &self,
        req: Request<pb::GetRepairStatisticsRequest>,
    ) -> Result<Response<pb::RepairStatistics>, Status> {
        let scope = Scope::of(&req);
        let r = req.into_inner();
        let prefixes = region_prefixes("region_prefix", &r.region_prefix, &scope)?;
        let (from, to) = month_range(&r.from_month, &r.to_month, self.store.today())?;
        let by_month = r.by_month;
        let store = self.store.clone();
        let out = blocking(move || {
            let in_range = |d: Date| (from..=to).contains(&Month::of(d));
            // A region filter reads each enterprise's region once.
            let mut regions: std::collections::HashMap<crate::domain::Uscc, bool> =
                std::collections::HashMap::new();
            let mut keep = |u: &crate::domain::Uscc| -> crate::error::Result<bool> {
                if prefixes.is_empty() {
                    return Ok(true);
                }
                if let Some(k) = regions.get(u) {
                    return Ok(*k);
                }
                let k = store
                    .enterprise(u)?
                    .is_some_and(|e| within(&prefixes, &e.region));
                regions.insert(*u, k);
                Ok(k)
            };
            let key = |d: Date| by_month.then(|| Month::of(d));
            let mut repairs: BTreeMap<Option<Month>, RepairCounts> = BTreeMap::new();
            for c in store.repair_cases(None)? {
                if in_range(c.submitted_on) && keep(&c.uscc)? {
                    repairs.entry(key(c.submitted_on)).or_default().add(&c);
                }
            }
            let mut objections: BTreeMap<Option<Month>, ObjectionCounts> = BTreeMap::new();
            for o in store.objections(None)? {
                if in_range(o.filed_on) && keep(&o.uscc)? {
                    objections.entry(key(o.filed_on)).or_default().add(&o);
                }
            }
            Ok(pb::RepairStatistics {
                repairs: repairs.iter().map(|(m, c)| repair_pb(*m, c)).collect(),
                objections: objections
                    .iter()
                    .map(|(m, c)| objection_pb(*m, c))
                    .collect(),
                from_month: from.to_string(),
                to_month: to.to_string(),
            })
        })
        .await?;
        Ok(Response::new(out))
    }

    async fn get_filing_statistics(
        &self,
        req: Request<pb::GetFilingStatisticsRequest>,
    ) -> Result<Response<pb::FilingStatistics>, Status> {
        let scope = Scope::of(&req);
        let r = req.into_inner();
        let prefixes = region_prefixes("region_prefix", &r.region_prefix, &scope)?;
        let today = self.store.today();
        let this_year = today.year().max(0) as u32;
        let year = |field: &str, v: u32, default: u32| -> Result<u16, Status> {
            let v = if v == 0 { default } else { v };
            if !(u32::from(FIRST_REPORT_YEAR)..=this_year).contains(&v) {
                return Err(invalid(DomainError::invalid(
                    field,
                    format!("{v} is not a report year from {FIRST_REPORT_YEAR} to {this_year}"),
                )));
            }
            Ok(v as u16)
        };
        let to = year("to_year", r.to_year, this_year.saturating_sub(1))?;
        let from = year(
            "from_year",
            r.from_year,
            u32::from(to)
                .saturating_sub(3)
                .max(u32::from(FIRST_REPORT_YEAR)),
        )?;
        if from > to {
            return Err(invalid(DomainError::invalid(
                "from_year",
                format!("{from} is after to_year {to}"),
            )));
        }
        let store = self.store.clone();
        let counters = blocking(move || store.filing_counters(to)).await?;
        let rows = filing_rows(&counters, from..=to, &prefixes, r.by_region, today);
        Ok(Response::new(pb::FilingStatistics {
            rows,
            as_of: today.to_string(),
        }))
    }

    async fn get_spot_check_statistics(
        &self,
        req: Request<pb::GetSpotCheckStatisticsRequest>,
    ) -> Result<Response<pb::SpotCheckStatistics>, Status> {
        let scope = Scope::of(&req);
        let r = req.into_inner();
        let prefixes = region_prefixes("region_prefix", &r.region_prefix, &scope)?;
        let (from, to) = month_range(&r.from_month, &r.to_month, self.store.today())?;
        let store = self.store.clone();
        let counters = blocking(move || store.spot_check_counters(from, to)).await?;
        let (rows, plans, matches) = spot_rows(&counters, &prefixes, r.by_region, r.by_month);
        let sum = |f: fn(&pb::SpotCheckRow) -> u64| rows.iter().map(f).sum();
        Ok(Response::new(pb::SpotCheckStatistics {
            drawn: sum(|r| r.drawn),
            inspected: sum(|r| r.inspected),
            problems_found: sum(|r| r.problems_found),
            rows,
            plans,
            matches,
            from_month: from.to_string(),
            to_month: to.to_string(),
        }))
    }

    async fn get_model_performance(
        &self,
        req: Request<pb::GetModelPerformanceRequest>,
    ) -> Result<Response<pb::ModelPerformanceResponse>, Status> {
        let scope = Scope::of(&req);
        let r = req.into_inner();
        let prefixes = region_prefixes("region_prefix", &r.region_prefix, &scope)?;
        let today = self.store.today();
        let (to, explicit) = match r.inspected_to.trim() {
            "" => (today, false),
            s => (Date::parse("inspected_to", s).map_err(invalid)?, true),
        };
        let store = self.store.clone();
        let (run_id, compare_id) = (r.run_id, r.compare_run_id);
        let out = blocking(move || {
            let load = |field: &str, id: u64| -> crate::error::Result<crate::store::ScoringRun> {
                let id = match id {
                    0 => store
                        .current_run()?
                        .map(|v| v.run.id)
                        .ok_or_else(|| Error::NotFound(format!("{field}: no current run")))?,
                    id => id,
                };
                store
                    .run(id)?
                    .ok_or_else(|| Error::NotFound(format!("{field}: run {id}")))
            };
            let run = load("run_id", run_id)?;
            let compare = match compare_id {
                0 => None,
                id => Some(load("compare_run_id", id)?),
            };
            let start = compare
                .as_ref()
                .map_or(run.as_of, |c| c.as_of.max(run.as_of))
                .add_days(1);
            if to < start && explicit {
                return Err(Error::Invalid(DomainError::invalid(
                    "inspected_to",
                    format!("{to} is before the first day after the runs' as-of date, {start}"),
                )));
            }
            let keep = |r: &RegionCode| within(&prefixes, r);
            let (p, missing) = store.model_performance(&run, start, to, keep)?;
            let mut resp = pb::ModelPerformanceResponse {
                inspected_from: start.to_string(),
                inspected_to: to.to_string(),
                run: Some(performance_pb(&run, &p, missing)),
                compare: None,
            };
            if let Some(c) = compare {
                let (p, missing) = store.model_performance(&c, start, to, keep)?;
                resp.compare = Some(performance_pb(&c, &p, missing));
            }
            Ok(resp)
        })
        .await?;
        Ok(Response::new(out))
    }
}
