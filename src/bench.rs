//! In-process benchmarks the CLI runs on a stopped server's data directory (never in
//! tests or CI): figures for BENCHMARKS.md.

use std::{path::Path, time::Instant};

use crate::{
    domain::Date,
    error::Result,
    jobs::batch_scoring::{run_to_completion, BatchRequest},
    store::{Store, StoreOptions},
};

/// Peak resident set of this process so far, KiB (Linux).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Bare scans (one and two threads), then a full batch scoring run (and optionally a
/// dry run against it); prints one JSON object per measurement.
pub async fn scoring(
    dir: &Path,
    as_of: Date,
    dry_run: bool,
    model: Option<String>,
    options: StoreOptions,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let store = Store::open(dir, options)?;
    let enterprises = store.enterprise_count();
    println!(
        "{}",
        serde_json::json!({"store": {"enterprises": enterprises, "bytes_on_disk": store.size_on_disk()?}})
    );
    // A warm-up pass first, so every measurement below starts from the same cache state.
    let mut bare = Vec::new();
    for (label, threads) in [("warm_up", 1), ("bare_scan", 1), ("bare_scan", 2)] {
        let s2 = store.clone();
        let t = Instant::now();
        let (keys, bytes) = tokio::task::spawn_blocking(move || s2.scan_raw(threads)).await??;
        let secs = t.elapsed().as_secs_f64();
        if label == "bare_scan" {
            bare.push(secs);
        }
        println!(
            "{}",
            serde_json::json!({label: {"threads": threads, "keys": keys, "bytes": bytes, "seconds": secs}})
        );
    }
    {
        // Decoding every dossier too, without scoring: where the batch's time goes.
        let s2 = store.clone();
        let t = Instant::now();
        let n = tokio::task::spawn_blocking(move || {
            s2.scan_dossiers(
                || 0u64,
                |n, _, d| {
                    *n += d.penalties.len() as u64 + 1;
                    Ok(())
                },
            )
        })
        .await??;
        println!(
            "{}",
            serde_json::json!({"decode_scan": {"threads": 2, "records": n.iter().sum::<u64>(), "seconds": t.elapsed().as_secs_f64()}})
        );
    }
    let mut runs = vec![false];
    if dry_run {
        runs.push(true);
    }
    for dry in runs {
        let t = Instant::now();
        let mut phases: Vec<(&'static str, f64)> = Vec::new();
        let run = run_to_completion(
            store.clone(),
            BatchRequest {
                model_version: model.clone(),
                as_of,
                dry_run: dry,
                requested_by: "bench".into(),
                actor: crate::store::Actor::system("bench-scoring"),
            },
            |p| {
                if phases.last().map(|x| x.0) != Some(p.phase) {
                    phases.push((p.phase, p.elapsed.as_secs_f64()));
                }
            },
        )
        .await?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{}",
            serde_json::json!({"batch_scoring": {
                "dry_run": dry,
                "run_id": run.id,
                "enterprises": run.enterprises,
                "seconds": secs,
                "per_second": run.enterprises as f64 / secs.max(1e-9),
                "vs_bare_scan_1_thread": secs / bare[0].max(1e-9),
                "vs_bare_scan_2_threads": secs / bare[1].max(1e-9),
                "classes": {"A": run.classes[0], "B": run.classes[1], "C": run.classes[2], "D": run.classes[3]},
                "related": run.related,
                "transitions": run.transitions.as_ref().map(|t| t.matrix),
                "peak_rss_kib": peak_rss_kib(),
                "phase_started_at_seconds": phases.iter().map(|(p, t)| serde_json::json!({*p: t})).collect::<Vec<_>>(),
            }})
        );
    }
    {
        let s2 = store.clone();
        let t = Instant::now();
        tokio::task::spawn_blocking(move || s2.scan_raw(2)).await??;
        println!(
            "{}",
            serde_json::json!({"bare_scan_again": {"threads": 2, "seconds": t.elapsed().as_secs_f64()}})
        );
    }
    if let Some(v) = store.current_run()? {
        // Score quantiles at the reference city's class boundaries (DOMAIN.md §2:
        // A 65.4 %, B 25.3 %, C 7.7 %, D 1.5 %): the cut points that would reproduce it.
        let mut scores: Vec<i32> = v.entries.iter().map(|e| e.score).collect();
        scores.sort_unstable();
        let q = |p: f64| {
            let i = ((scores.len() as f64 * p) as usize).min(scores.len().saturating_sub(1));
            f64::from(scores.get(i).copied().unwrap_or(0)) / 100.0
        };
        println!(
            "{}",
            serde_json::json!({"calibration": {
                "score_at_65.4%": q(0.654),
                "score_at_90.7%": q(0.907),
                "score_at_98.4%": q(0.984),
                "p50": q(0.5), "p99": q(0.99), "p99.9": q(0.999),
            }})
        );
    }
    eprintln!("{}", distribution_table(&store)?);
    store.close(std::time::Duration::from_secs(30))?;
    Ok(())
}

/// Per-district class distribution of the current run, as a Markdown table (for the
/// calibration report).
pub fn distribution_table(store: &Store) -> Result<String> {
    let Some(v) = store.current_run()? else {
        return Ok("no current run".into());
    };
    let r = &v.run;
    let pct = |n: u64, t: u64| 100.0 * n as f64 / (t.max(1) as f64);
    let mut out = String::from("| region | district | enterprises | A % | B % | C % | D % |\n|---|---|---:|---:|---:|---:|---:|\n");
    for (code, c) in &r.regions {
        let t: u64 = c.iter().sum();
        let name = crate::domain::RegionCode::parse("r", code)
            .ok()
            .and_then(|rc| rc.district_name())
            .unwrap_or("");
        out += &format!(
            "| {code} | {name} | {t} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
            pct(c[0], t),
            pct(c[1], t),
            pct(c[2], t),
            pct(c[3], t)
        );
    }
    let t = r.enterprises;
    out += &format!(
        "| all | | {t} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
        pct(r.classes[0], t),
        pct(r.classes[1], t),
        pct(r.classes[2], t),
        pct(r.classes[3], t)
    );
    Ok(out)
}

// ---- spot checks ---------------------------------------------------------------------

use std::sync::Arc;

use crate::{
    bench_proto::{
        echo_service_client::EchoServiceClient,
        echo_service_server::{EchoService, EchoServiceServer},
        EchoMessage,
    },
    client::{endpoint, summarise, LoadReport},
    proto::{self as pb, spot_check_service_client::SpotCheckServiceClient},
};

pub(crate) type BenchError = Box<dyn std::error::Error + Send + Sync>;

struct Echo;

#[tonic::async_trait]
impl EchoService for Echo {
    async fn echo(
        &self,
        req: tonic::Request<EchoMessage>,
    ) -> Result<tonic::Response<EchoMessage>, tonic::Status> {
        Ok(tonic::Response::new(req.into_inner()))
    }

    type EchoStreamStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<EchoMessage, tonic::Status>> + Send + 'static>,
    >;

    async fn echo_stream(
        &self,
        req: tonic::Request<tonic::Streaming<EchoMessage>>,
    ) -> Result<tonic::Response<Self::EchoStreamStream>, tonic::Status> {
        Ok(tonic::Response::new(Box::pin(req.into_inner())))
    }
}

/// Starts the bare echo server on a loopback port; returns its address.
pub(crate) async fn start_echo() -> Result<std::net::SocketAddr, BenchError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(EchoServiceServer::new(Echo))
            .serve_with_incoming(incoming)
            .await;
    });
    Ok(addr)
}

/// Unary calls from `clients` connections for `seconds`; `batch` USCCs per call.
pub(crate) async fn unary_load(
    addr: &str,
    echo: bool,
    usccs: Arc<Vec<String>>,
    batch: usize,
    clients: usize,
    seconds: f64,
) -> Result<LoadReport, BenchError> {
    let deadline = Instant::now() + std::time::Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for w in 0..clients {
        let ch = tonic::transport::Endpoint::from_shared(endpoint(addr))?
            .connect()
            .await?;
        let usccs = usccs.clone();
        tasks.push(tokio::spawn(async move {
            let mut spot = SpotCheckServiceClient::with_interceptor(
                ch.clone(),
                crate::client::TokenInterceptor::from_env(),
            );
            let mut e = EchoServiceClient::new(ch);
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut i = w * 7919;
            while Instant::now() < deadline {
                let ids: Vec<String> = (0..batch)
                    .map(|j| usccs[(i + j) % usccs.len()].clone())
                    .collect();
                i += batch;
                let t = Instant::now();
                let ok = if echo {
                    e.echo(EchoMessage {
                        usccs: ids,
                        as_of: String::new(),
                    })
                    .await
                    .is_ok()
                } else {
                    spot.batch_match(pb::MatchRequest {
                        usccs: ids,
                        as_of: String::new(),
                    })
                    .await
                    .is_ok()
                };
                if ok {
                    lat.push(t.elapsed().as_micros() as u32);
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let start = Instant::now();
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    Ok(summarise(lat, errors, start.elapsed().as_secs_f64()))
}

pub(crate) async fn query_timed(
    c: &mut SpotCheckServiceClient<crate::client::Authed>,
    f: pb::CandidateFilter,
) -> Result<(u64, f64), BenchError> {
    let t = Instant::now();
    let mut s = c
        .query_candidates(pb::QueryCandidatesRequest {
            filter: Some(f),
            as_of: String::new(),
        })
        .await?
        .into_inner();
    let mut n = 0u64;
    while let Some(b) = s.message().await? {
        n += b.candidates.len() as u64;
    }
    Ok((n, t.elapsed().as_secs_f64()))
}

/// The spot-check benchmarks against a running server on a scored store; prints JSON.
pub async fn spot(addr: &str, usccs: Vec<String>, seconds: f64) -> Result<(), BenchError> {
    let usccs = Arc::new(usccs);
    let mut c = SpotCheckServiceClient::with_interceptor(
        crate::client::channel(addr).await?,
        crate::client::TokenInterceptor::from_env(),
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

// ---- audit overhead ------------------------------------------------------------------

/// RecordPenalty through the store's durable write path (no network), `clients`
/// concurrent writers, with and without the audit trail, in the same run; prints JSON.
pub async fn audit_overhead(writes: usize, clients: usize) -> Result<(), BenchError> {
    use crate::{
        domain::{
            Date, Enterprise, EnterpriseStatus, EntityType, IndustryCode, Penalty, PenaltyKind,
            Procedure, RegionCode, Uscc, ViolationDomain,
        },
        store::{op, Actor},
    };
    let mut results = Vec::new();
    for audit in [true, false, true, false] {
        let tmp = tempfile::tempdir()?;
        let store = Store::open(
            tmp.path(),
            StoreOptions {
                audit,
                ..StoreOptions::default()
            },
        )?;
        // Penalties spread over many enterprises (≈ 10 each), as a feed delivers them.
        let n_ent = (writes / 10).max(1);
        let mut ents = Vec::with_capacity(n_ent);
        let mut items = Vec::new();
        for i in 0..n_ent {
            let mut body = *b"MA000000";
            let mut x = i as u64;
            for c in body[2..].iter_mut().rev() {
                *c = crate::domain::uscc::ALPHABET[(x % 31) as usize];
                x /= 31;
            }
            let u = Uscc::assemble(b"91310115", &body)?;
            ents.push(u);
            items.push((
                i as u64,
                crate::store::ImportItem::Enterprise(Enterprise {
                    uscc: u,
                    name: "基准测试有限公司".into(),
                    entity_type: EntityType::Enterprise,
                    region: RegionCode::parse("r", "310115")?,
                    industry: IndustryCode::parse("", "F", "")?,
                    established_on: Date::parse("d", "2020-01-01")?,
                    status: EnterpriseStatus::Operating,
                    registered_capital_fen: 100_000_000,
                    supervision: vec![],
                    legal_rep_hash: None,
                    recorded_at_ms: 0,
                }),
            ));
            if items.len() == 4096 {
                store.write(op::Import(std::mem::take(&mut items))).await?;
            }
        }
        store.write(op::Import(items)).await?;
        let ents = std::sync::Arc::new(ents);
        let t = Instant::now();
        let per = writes / clients;
        let mut tasks = Vec::new();
        for w in 0..clients {
            let store = store.clone();
            let ents = ents.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per {
                    let u = ents[(w * per + i) % ents.len()];
                    let p = Penalty {
                        decision_number: format!("沪市监罚〔2026〕{w}-{i}号"),
                        uscc: u,
                        decided_on: Date::parse("d", "2026-03-01").unwrap_or(Date::MIN),
                        authority: "上海市市场监督管理局".into(),
                        domain: ViolationDomain::Advertising,
                        procedure: Procedure::Ordinary,
                        kinds: vec![PenaltyKind::Fine],
                        fine_fen: 100_000,
                        confiscation_fen: 0,
                        heavier: false,
                        restriction_ends_on: None,
                        no_penalty: false,
                        publicity_ended_on: None,
                        recorded_at_ms: 0,
                        published_on: None,
                    };
                    let actor = Actor {
                        principal: format!("feed-{w}"),
                        role: "feed".into(),
                        rpc: "RecordPenalty".into(),
                        regions: Vec::new(),
                    };
                    if store.write_as(actor, op::RecordPenalty(p)).await.is_err() {
                        return;
                    }
                }
            }));
        }
        for t in tasks {
            t.await?;
        }
        let secs = t.elapsed().as_secs_f64();
        let (events, broken) = store.verify_audit_chain()?;
        store.close(std::time::Duration::from_secs(10))?;
        let rate = (per * clients) as f64 / secs;
        println!(
            "{}",
            serde_json::json!({"record_penalty": {"audit": audit, "writes": per * clients, "clients": clients, "seconds": secs, "per_second": rate, "audit_events": events, "chain_intact": broken.is_none()}})
        );
        results.push((audit, rate));
    }
    let mean = |on: bool| {
        let v: Vec<f64> = results.iter().filter(|r| r.0 == on).map(|r| r.1).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    println!(
        "{}",
        serde_json::json!({"audit_overhead": {"with_per_second": mean(true), "without_per_second": mean(false), "ratio": mean(true) / mean(false).max(1e-9)}})
    );
    Ok(())
}
