//! `credit-risk bench-spot`: the SpotCheckService of a running server on a scored store —
//! match stream, BatchMatch, candidate pools, plan + draw, unary vs a bare echo.

use std::{path::PathBuf, sync::Arc, time::Instant};

use credit_risk::proto::{self as pb, spot_check_service_client::SpotCheckServiceClient};

use super::{load::sample_usccs, query_timed, start_echo, unary_load, BenchError, CliResult};

/// Options of `credit-risk bench-spot`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    server: crate::cli::ServerArg,
    /// Generated file to take USCCs from.
    #[arg(long)]
    sample: PathBuf,
    /// USCCs to take from it.
    #[arg(long, default_value_t = 1_000_000)]
    usccs: usize,
    /// Seconds per load phase.
    #[arg(long, default_value_t = 10.0, value_parser = super::finite_seconds)]
    seconds: f64,
}

/// Runs `credit-risk bench-spot`.
pub fn run(a: Args) -> CliResult {
    let ids = sample_usccs(&a.sample, a.usccs)?;
    crate::cli::runtime(0)?.block_on(spot(&a.server.server, ids, a.seconds.clamp(0.5, 120.0)))
}

/// The client the spot-check benchmarks use.
pub type SpotClient = SpotCheckServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        credit_risk::client::TokenInterceptor,
    >,
>;

/// A joint task over the whole city (issue 19): the first ten items of the first three
/// departments of the catalogue in force (the built-in one: seven market-regulation
/// items, two of medical products, one of emergency management), every class at the
/// items' default shares; PlanDraw then DrawSample, timed. JSON with the seconds.
pub async fn joint_plan_and_draw(c: &mut SpotClient) -> Result<serde_json::Value, BenchError> {
    let catalogue = c
        .list_check_items(pb::ListCheckItemsRequest::default())
        .await?
        .into_inner();
    let departments: Vec<&str> = catalogue
        .departments
        .iter()
        .take(3)
        .map(|d| d.code.as_str())
        .collect();
    let items: Vec<String> = catalogue
        .items
        .iter()
        .filter(|i| departments.contains(&i.department.as_str()))
        .take(10)
        .map(|i| i.code.clone())
        .collect();
    let t = Instant::now();
    let plan = c
        .plan_draw(pb::PlanDrawRequest {
            task_id: format!("bench-joint-{}", std::process::id()),
            filter: Some(pb::CandidateFilter::default()),
            check_items: items.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let plan_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let receipt = c
        .draw_sample(pb::DrawSampleRequest {
            plan_id: plan.plan_id,
            seed: "bench-joint-seed".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let draw_secs = t.elapsed().as_secs_f64();
    let population: u64 = plan.strata.iter().map(|s| s.population).sum();
    let selected: usize = receipt.strata.iter().map(|s| s.selected.len()).sum();
    let item_populations: Vec<u64> = plan.check_items.iter().map(|i| i.population).collect();
    Ok(serde_json::json!({
        "departments": plan.departments.len(), "items": items, "population": population,
        "item_populations": item_populations, "selected": selected,
        "plan_seconds": plan_secs, "draw_seconds": draw_secs, "total_seconds": plan_secs + draw_secs,
    }))
}

/// The spot-check benchmarks against a running server on a scored store; prints JSON.
pub async fn spot(addr: &str, usccs: Vec<String>, seconds: f64) -> Result<(), BenchError> {
    let usccs = Arc::new(usccs);
    let mut c = SpotCheckServiceClient::with_interceptor(
        credit_risk::client::channel(addr).await?,
        credit_risk::client::TokenInterceptor::from_env(),
    )
    .max_decoding_message_size(64 << 20);

    // 1. MatchClassifications over one stream.
    let msgs: Vec<pb::MatchRequest> = usccs
        .chunks(5000)
        .map(|b| pb::MatchRequest {
            usccs: b.to_vec(),
            as_of: String::new(),
        })
        .collect();
    let t = Instant::now();
    let mut s = c
        .match_classifications(tokio_stream::iter(msgs))
        .await?
        .into_inner();
    let (mut n, mut found) = (0u64, 0u64);
    while let Some(m) = s.message().await? {
        n += m.items.len() as u64;
        found += m.items.iter().filter(|i| i.found).count() as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"match_stream": {"usccs": n, "found": found, "seconds": secs, "per_second": n as f64 / secs}})
    );

    // 2. BatchMatch of 1,000 at 16 clients.
    let r = unary_load(addr, false, usccs.clone(), 1000, 16, seconds).await?;
    println!("{}", serde_json::json!({"batch_match_1000_16_clients": r}));

    // 3. Candidate pools.
    let op = vec![pb::EnterpriseStatus::Operating as i32];
    let cd = vec![pb::RiskClass::C as i32, pb::RiskClass::D as i32];
    for (name, regions) in [("city", vec![]), ("pudong", vec!["310115".to_string()])] {
        let f = pb::CandidateFilter {
            region_codes: regions,
            classes: cd.clone(),
            statuses: op.clone(),
            ..Default::default()
        };
        query_timed(&mut c, f.clone()).await?; // warm
        let (n, secs) = query_timed(&mut c, f).await?;
        println!(
            "{}",
            serde_json::json!({"query_candidates": {"scope": name, "operating_non_exempt_c_d": n, "seconds": secs}})
        );
    }

    // 4. Plan + draw over the whole city, 4 strata.
    let t = Instant::now();
    let plan = c
        .plan_draw(pb::PlanDrawRequest {
            request_id: String::new(),
            task_id: format!("bench-{}", std::process::id()),
            model_family: String::new(),
            check_items: Vec::new(),
            filter: Some(pb::CandidateFilter::default()),
            strata: [
                (pb::RiskClass::A, 0.01),
                (pb::RiskClass::B, 0.05),
                (pb::RiskClass::C, 0.21),
                (pb::RiskClass::D, 1.0),
            ]
            .into_iter()
            .map(|(k, r)| pb::Stratum {
                risk_class: k as i32,
                size: Some(pb::stratum::Size::Ratio(r)),
            })
            .collect(),
            as_of: String::new(),
            override_reason: String::new(),
        })
        .await?
        .into_inner();
    let plan_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let receipt = c
        .draw_sample(pb::DrawSampleRequest {
            request_id: String::new(),
            plan_id: plan.plan_id,
            seed: "bench-seed".into(),
        })
        .await?
        .into_inner();
    let draw_secs = t.elapsed().as_secs_f64();
    let population: u64 = plan.strata.iter().map(|s| s.population).sum();
    let selected: usize = receipt.strata.iter().map(|s| s.selected.len()).sum();
    println!(
        "{}",
        serde_json::json!({"plan_and_draw": {"population": population, "selected": selected, "plan_seconds": plan_secs, "draw_seconds": draw_secs, "total_seconds": plan_secs + draw_secs}})
    );

    // 4b. A joint task: three departments, ten items, default shares.
    let joint = joint_plan_and_draw(&mut c).await?;
    println!("{}", serde_json::json!({ "joint_plan_and_draw": joint }));

    // 5. Unary BatchMatch(1) vs a bare tonic echo, same client code, same run.
    let echo = start_echo().await?;
    let m = unary_load(addr, false, usccs.clone(), 1, 64, seconds).await?;
    let e = unary_load(&echo.to_string(), true, usccs.clone(), 1, 64, seconds).await?;
    println!(
        "{}",
        serde_json::json!({"unary_batch_match_1": m, "unary_echo": e, "ratio": m.per_second / e.per_second.max(1e-9)})
    );
    Ok(())
}
