//! `credit-risk load`: a bounded load test of one read (or write) RPC against a running
//! server, from N concurrent clients; prints throughput and latency percentiles.

use std::{
    fs::File,
    io::BufReader,
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use credit_risk::{
    client::{endpoint, Authed, TokenInterceptor},
    proto::{
        classification_service_client::ClassificationServiceClient,
        measures_service_client::MeasuresServiceClient,
        registry_service_client::RegistryServiceClient,
    },
    synthetic::RecordReader,
};

use super::{BenchError, CliResult};

/// Options of `credit-risk load`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Generated file to take USCCs from.
    #[arg(long)]
    sample: PathBuf,
    #[command(flatten)]
    server: crate::cli::ServerArg,
    /// Concurrent clients (one connection each).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Duration in seconds.
    #[arg(long, default_value_t = 10.0, value_parser = super::finite_seconds)]
    seconds: f64,
    /// RPC to call.
    #[arg(long, value_enum, default_value = "get-enterprise")]
    rpc: LoadTarget,
}

/// `credit-risk bench-echo`: the bare echo in a process of its own.
#[derive(clap::Args, Debug)]
pub struct EchoArgs {
    /// Loopback address to serve on.
    #[arg(long, default_value = "127.0.0.1:50061")]
    listen: std::net::SocketAddr,
    /// Seconds to serve before exiting (at most 3,600).
    #[arg(long, default_value_t = 600.0, value_parser = super::finite_seconds)]
    seconds: f64,
}

/// Runs `credit-risk bench-echo`: serves the bare echo for a bounded time, loopback only.
pub fn run_echo(a: EchoArgs) -> CliResult {
    if !a.listen.ip().is_loopback() {
        return Err(format!("--listen {}: the echo serves on loopback only", a.listen).into());
    }
    crate::cli::runtime(0)?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .map_err(|e| format!("--listen {}: {e}", a.listen))?;
        println!("echo on {}", listener.local_addr()?);
        let limit = std::time::Duration::from_secs_f64(a.seconds.clamp(1.0, 3_600.0));
        let _ = tokio::time::timeout(limit, super::serve_echo(listener)).await;
        Ok(())
    })
}

/// Runs `credit-risk load`.
pub fn run(a: Args) -> CliResult {
    let usccs = sample_usccs(&a.sample, 200_000)?;
    let report = crate::cli::runtime(0)?.block_on(load(
        &a.server.server,
        a.rpc,
        usccs,
        a.clients,
        a.seconds.clamp(0.1, 600.0),
    ))?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct LoadReport {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// Reads up to `limit` USCCs of enterprises from a generated file.
pub fn sample_usccs(path: &Path, limit: usize) -> Result<Vec<String>, BenchError> {
    use credit_risk::proto::import_record::Record;
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for r in RecordReader::new(BufReader::new(file)) {
        if let Some(Record::Enterprise(e)) = r?.record {
            out.push(e.uscc);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// Which read RPC a load test calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LoadTarget {
    /// RegistryService.GetEnterprise
    GetEnterprise,
    /// ClassificationService.GetClassification
    GetClassification,
    /// ClassificationService.GetClassification with view CLASS (no explanation)
    GetClassificationClass,
    /// MeasuresService.GetMeasures (dossier, class in force, catalogue)
    GetMeasures,
    /// MeasuresService.GetMeasures with view CODES (codes, kinds and subjects only)
    GetMeasuresCodes,
    /// The baseline: a bare tonic unary echo of one USCC, served in this process (the
    /// server address is not used).
    Echo,
    /// The same bare echo served by another process (`credit-risk bench-echo`) at
    /// `--server`: the baseline with its server outside the load process, as ours is.
    EchoServed,
    /// Mixed: per 10 calls, 6 GetEnterprise, 3 GetClassification, 1 durable RecordPenalty
    /// (a new decision number each time, on the enterprise just read).
    Mixed,
    /// RegistryService.UpsertEnterprise of a new enterprise each call (a durable write:
    /// dossier, directory index, counter, audit event, re-score).
    Upsert,
}

enum LoadClient {
    Registry(RegistryServiceClient<Authed>),
    /// The client, and whether to ask for the class only (view CLASS).
    Classification(ClassificationServiceClient<Authed>, bool),
    /// The client, and whether to ask for codes only.
    Measures(MeasuresServiceClient<Authed>, bool),
    Mixed(
        Box<(
            RegistryServiceClient<Authed>,
            ClassificationServiceClient<Authed>,
            u64,
        )>,
    ),
    /// The client and (worker, calls so far), numbering the new enterprises.
    Upsert(RegistryServiceClient<Authed>, u64, u64),
}

/// The `n`-th new enterprise of load worker `w` (USCCs `91310115MB…`, apart from the
/// generated city's).
fn load_enterprise(w: u64, n: u64) -> credit_risk::proto::Enterprise {
    let mut body = *b"MB000000";
    let mut x = w * 10_000_000 + n;
    for c in body[2..].iter_mut().rev() {
        *c = credit_risk::domain::uscc::ALPHABET[(x % 31) as usize];
        x /= 31;
    }
    let uscc = credit_risk::domain::Uscc::assemble(b"91310115", &body)
        .map(|u| u.to_string())
        .unwrap_or_default();
    credit_risk::proto::Enterprise {
        uscc,
        name: format!("上海负载测试{w}-{n}有限公司"),
        entity_type: credit_risk::proto::EntityType::Enterprise as i32,
        region_code: "310115".into(),
        industry_section: "F".into(),
        industry_code: "5131".into(),
        established_on: "2020-01-02".into(),
        status: credit_risk::proto::EnterpriseStatus::Operating as i32,
        registered_capital_fen: 100_000_000,
        ..Default::default()
    }
}

impl LoadClient {
    async fn call(&mut self, uscc: String) -> Result<(), tonic::Status> {
        match self {
            LoadClient::Mixed(m) => {
                let (r, k, n) = &mut **m;
                *n += 1;
                match *n % 10 {
                    0 => r
                        .record_penalty(credit_risk::proto::RecordPenaltyRequest {
                            request_id: String::new(),
                            penalty: Some(credit_risk::proto::Penalty {
                                decision_number: format!(
                                    "LOAD-{}-{}-{n}",
                                    std::process::id(),
                                    uscc
                                ),
                                uscc,
                                decided_on: credit_risk::domain::Date::today().to_string(),
                                authority: "上海市市场监督管理局".into(),
                                domain: credit_risk::proto::ViolationDomain::Advertising as i32,
                                procedure: credit_risk::proto::PenaltyProcedure::Ordinary as i32,
                                kinds: vec![credit_risk::proto::PenaltyKind::Warning as i32],
                                ..Default::default()
                            }),
                        })
                        .await
                        .map(|_| ()),
                    1..=3 => k
                        .get_classification(credit_risk::proto::GetClassificationRequest {
                            uscc,
                            ..Default::default()
                        })
                        .await
                        .map(|_| ()),
                    _ => r
                        .get_enterprise(credit_risk::proto::GetEnterpriseRequest { uscc })
                        .await
                        .map(|_| ()),
                }
            }
            LoadClient::Upsert(c, w, n) => {
                *n += 1;
                c.upsert_enterprise(credit_risk::proto::UpsertEnterpriseRequest {
                    request_id: String::new(),
                    enterprise: Some(load_enterprise(*w, *n)),
                })
                .await
                .map(|_| ())
            }
            LoadClient::Registry(c) => c
                .get_enterprise(credit_risk::proto::GetEnterpriseRequest { uscc })
                .await
                .map(|_| ()),
            LoadClient::Classification(c, class_only) => c
                .get_classification(credit_risk::proto::GetClassificationRequest {
                    uscc,
                    view: if *class_only {
                        credit_risk::proto::ClassificationView::Class as i32
                    } else {
                        credit_risk::proto::ClassificationView::Full as i32
                    },
                    ..Default::default()
                })
                .await
                .map(|_| ()),
            LoadClient::Measures(c, codes) => c
                .get_measures(credit_risk::proto::GetMeasuresRequest {
                    uscc,
                    as_of: String::new(),
                    view: if *codes {
                        credit_risk::proto::MeasureView::Codes as i32
                    } else {
                        0
                    },
                })
                .await
                .map(|_| ()),
        }
    }
}

/// Calls `target` from `clients` concurrent clients (one connection each) for
/// `seconds`, cycling through `usccs`. Bounded in time; loopback only by intent.
pub async fn load(
    addr: &str,
    target: LoadTarget,
    usccs: Vec<String>,
    clients: usize,
    seconds: f64,
) -> Result<LoadReport, BenchError> {
    let usccs = Arc::new(usccs);
    if usccs.is_empty() {
        return Err("no USCCs to query".into());
    }
    if target == LoadTarget::Echo {
        let echo = super::start_echo().await?.to_string();
        return super::unary_load(&echo, true, usccs, 1, clients, seconds).await;
    }
    if target == LoadTarget::EchoServed {
        return super::unary_load(addr, true, usccs, 1, clients, seconds).await;
    }
    let deadline = Instant::now() + std::time::Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for w in 0..clients {
        let channel = tonic::transport::Endpoint::from_shared(endpoint(addr))?
            .connect()
            .await?;
        let mut c = match target {
            LoadTarget::GetEnterprise => LoadClient::Registry(
                RegistryServiceClient::with_interceptor(channel, TokenInterceptor::from_env()),
            ),
            LoadTarget::GetClassification | LoadTarget::GetClassificationClass => {
                LoadClient::Classification(
                    ClassificationServiceClient::with_interceptor(
                        channel,
                        TokenInterceptor::from_env(),
                    ),
                    target == LoadTarget::GetClassificationClass,
                )
            }
            LoadTarget::GetMeasures | LoadTarget::GetMeasuresCodes => LoadClient::Measures(
                MeasuresServiceClient::with_interceptor(channel, TokenInterceptor::from_env()),
                target == LoadTarget::GetMeasuresCodes,
            ),
            LoadTarget::Echo | LoadTarget::EchoServed => {
                return Err("the echo baseline has no client here".into())
            }
            LoadTarget::Mixed => LoadClient::Mixed(Box::new((
                RegistryServiceClient::with_interceptor(
                    channel.clone(),
                    TokenInterceptor::from_env(),
                ),
                ClassificationServiceClient::with_interceptor(
                    channel,
                    TokenInterceptor::from_env(),
                ),
                w as u64,
            ))),
            LoadTarget::Upsert => LoadClient::Upsert(
                RegistryServiceClient::with_interceptor(channel, TokenInterceptor::from_env()),
                w as u64 + std::process::id() as u64 % 1000 * 100,
                0,
            ),
        };
        let usccs = usccs.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            let mut i = w * 7919;
            while Instant::now() < deadline {
                let u = usccs[i % usccs.len()].clone();
                i += 1;
                let t = Instant::now();
                match c.call(u).await {
                    Ok(()) => lat.push(t.elapsed().as_micros() as u32),
                    Err(_) => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let start = Instant::now();
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(summarise(lat, errors, secs))
}

/// Throughput and latency percentiles of a load run (latencies in microseconds).
pub fn summarise(mut lat: Vec<u32>, errors: u64, seconds: f64) -> LoadReport {
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        f64::from(lat[i]) / 1000.0
    };
    LoadReport {
        requests: lat.len() as u64,
        errors,
        seconds,
        per_second: lat.len() as f64 / seconds.max(1e-9),
        p50_ms: pct(0.50),
        p95_ms: pct(0.95),
        p99_ms: pct(0.99),
    }
}
