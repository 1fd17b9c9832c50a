//! Client-side commands: streaming a generated file into a running server.

use std::{
    fs::File,
    io::{BufReader, Read, Write},
    path::Path,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use indicatif::{ProgressBar, ProgressStyle};
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    generate::RecordReader,
    proto::{
        classification_service_client::ClassificationServiceClient,
        registry_service_client::RegistryServiceClient, ImportRecordsRequest,
        ImportRecordsResponse,
    },
};

/// Boxed error for client commands.
pub type ClientError = Box<dyn std::error::Error + Send + Sync>;

/// Normalises an address to a URL (`127.0.0.1:50051` → `http://127.0.0.1:50051`).
pub fn endpoint(addr: &str) -> String {
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// Adds `authorization: Bearer $CREDIT_RISK_TOKEN` to every call when the variable is
/// set (servers with `[server.auth]` tokens need it; development mode does not).
#[derive(Clone, Debug, Default)]
pub struct TokenInterceptor(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl TokenInterceptor {
    /// From the environment.
    pub fn from_env() -> TokenInterceptor {
        TokenInterceptor(
            std::env::var("CREDIT_RISK_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
                .and_then(|t| format!("Bearer {t}").parse().ok()),
        )
    }
}

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            r.metadata_mut().insert("authorization", v.clone());
        }
        Ok(r)
    }
}

/// A channel with the token interceptor.
pub type Authed =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, TokenInterceptor>;

/// Connects to `addr`; with `$CREDIT_RISK_TLS_CA` (a PEM file) over TLS, checking the
/// server name `$CREDIT_RISK_TLS_DOMAIN` (default `localhost`) and presenting
/// `$CREDIT_RISK_TLS_CERT` / `$CREDIT_RISK_TLS_KEY` when set (mTLS).
pub async fn channel(addr: &str) -> Result<tonic::transport::Channel, ClientError> {
    let Ok(ca) = std::env::var("CREDIT_RISK_TLS_CA") else {
        return Ok(tonic::transport::Endpoint::from_shared(endpoint(addr))?
            .connect()
            .await?);
    };
    let url = format!(
        "https://{}",
        addr.trim_start_matches("http://")
            .trim_start_matches("https://")
    );
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(&ca)?))
        .domain_name(
            std::env::var("CREDIT_RISK_TLS_DOMAIN").unwrap_or_else(|_| "localhost".into()),
        );
    if let (Ok(c), Ok(k)) = (
        std::env::var("CREDIT_RISK_TLS_CERT"),
        std::env::var("CREDIT_RISK_TLS_KEY"),
    ) {
        tls = tls.identity(tonic::transport::Identity::from_pem(
            std::fs::read(c)?,
            std::fs::read(k)?,
        ));
    }
    Ok(tonic::transport::Endpoint::from_shared(url)?
        .tls_config(tls)?
        .connect()
        .await?)
}

/// A progress bar on a terminal, hidden in pipes.
pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {wide_bar} {percent:>3}% eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb.set_message(what.to_string());
    pb
}

/// A spinner with the elapsed time for an operation of unknown length, on a terminal
/// only (hidden in pipes, like every bar).
pub fn spinner(what: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed_precise}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(what.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Streams the records of `path` (generator format) to `ImportRecords` in chunks of
/// `chunk` records. Returns the server's summary and the elapsed seconds.
pub async fn import_file(
    addr: &str,
    path: &Path,
    chunk: usize,
) -> Result<(ImportRecordsResponse, f64), ClientError> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = file.metadata()?.len();
    let read = Arc::new(AtomicU64::new(0));
    let reader = RecordReader::new(BufReader::with_capacity(
        1 << 20,
        Counting {
            inner: file,
            read: read.clone(),
        },
    ));
    let mut client =
        RegistryServiceClient::with_interceptor(channel(addr).await?, TokenInterceptor::from_env())
            .max_encoding_message_size(64 << 20)
            .max_decoding_message_size(256 << 20);
    let (tx, rx) = tokio::sync::mpsc::channel::<ImportRecordsRequest>(16);
    let chunk = chunk.max(1);
    let producer = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let mut records = Vec::with_capacity(chunk);
        for r in reader {
            records.push(r.map_err(|e| e.to_string())?);
            if records.len() >= chunk {
                let msg = ImportRecordsRequest {
                    records: std::mem::replace(&mut records, Vec::with_capacity(chunk)),
                };
                if tx.blocking_send(msg).is_err() {
                    return Err("server closed the import stream".into());
                }
            }
        }
        if !records.is_empty() && tx.blocking_send(ImportRecordsRequest { records }).is_err() {
            return Err("server closed the import stream".into());
        }
        Ok(())
    });
    let bar = progress_bar(len, "import");
    let ticker = {
        let bar = bar.clone();
        let read = read.clone();
        tokio::spawn(async move {
            loop {
                bar.set_position(read.load(Ordering::Relaxed));
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        })
    };
    let start = Instant::now();
    let resp = client.import_records(ReceiverStream::new(rx)).await;
    ticker.abort();
    bar.finish_and_clear();
    producer.await?.map_err(|e| -> ClientError { e.into() })?;
    Ok((resp?.into_inner(), start.elapsed().as_secs_f64()))
}

/// Result of a bounded load run.
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
pub fn sample_usccs(path: &Path, limit: usize) -> Result<Vec<String>, ClientError> {
    use crate::proto::import_record::Record;
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
    /// Mixed: per 10 calls, 6 GetEnterprise, 3 GetClassification, 1 durable RecordPenalty
    /// (a new decision number each time, on the enterprise just read).
    Mixed,
    /// RegistryService.UpsertEnterprise of a new enterprise each call (a durable write:
    /// dossier, directory index, counter, audit event, re-score).
    Upsert,
}

enum LoadClient {
    Registry(RegistryServiceClient<Authed>),
    Classification(ClassificationServiceClient<Authed>),
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
fn load_enterprise(w: u64, n: u64) -> crate::proto::Enterprise {
    let mut body = *b"MB000000";
    let mut x = w * 10_000_000 + n;
    for c in body[2..].iter_mut().rev() {
        *c = crate::domain::uscc::ALPHABET[(x % 31) as usize];
        x /= 31;
    }
    let uscc = crate::domain::Uscc::assemble(b"91310115", &body)
        .map(|u| u.to_string())
        .unwrap_or_default();
    crate::proto::Enterprise {
        uscc,
        name: format!("上海负载测试{w}-{n}有限公司"),
        entity_type: crate::proto::EntityType::Enterprise as i32,
        region_code: "310115".into(),
        industry_section: "F".into(),
        industry_code: "5131".into(),
        established_on: "2020-01-02".into(),
        status: crate::proto::EnterpriseStatus::Operating as i32,
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
                        .record_penalty(crate::proto::RecordPenaltyRequest {
                            request_id: String::new(),
                            penalty: Some(crate::proto::Penalty {
                                decision_number: format!(
                                    "LOAD-{}-{}-{n}",
                                    std::process::id(),
                                    uscc
                                ),
                                uscc,
                                decided_on: crate::domain::Date::today().to_string(),
                                authority: "上海市市场监督管理局".into(),
                                domain: crate::proto::ViolationDomain::Advertising as i32,
                                procedure: crate::proto::PenaltyProcedure::Ordinary as i32,
                                kinds: vec![crate::proto::PenaltyKind::Warning as i32],
                                ..Default::default()
                            }),
                        })
                        .await
                        .map(|_| ()),
                    1..=3 => k
                        .get_classification(crate::proto::GetClassificationRequest {
                            uscc,
                            run_id: 0,
                        })
                        .await
                        .map(|_| ()),
                    _ => r
                        .get_enterprise(crate::proto::GetEnterpriseRequest { uscc })
                        .await
                        .map(|_| ()),
                }
            }
            LoadClient::Upsert(c, w, n) => {
                *n += 1;
                c.upsert_enterprise(crate::proto::UpsertEnterpriseRequest {
                    request_id: String::new(),
                    enterprise: Some(load_enterprise(*w, *n)),
                })
                .await
                .map(|_| ())
            }
            LoadClient::Registry(c) => c
                .get_enterprise(crate::proto::GetEnterpriseRequest { uscc })
                .await
                .map(|_| ()),
            LoadClient::Classification(c) => c
                .get_classification(crate::proto::GetClassificationRequest { uscc, run_id: 0 })
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
) -> Result<LoadReport, ClientError> {
    let usccs = Arc::new(usccs);
    if usccs.is_empty() {
        return Err("no USCCs to query".into());
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
            LoadTarget::GetClassification => {
                LoadClient::Classification(ClassificationServiceClient::with_interceptor(
                    channel,
                    TokenInterceptor::from_env(),
                ))
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

fn class_letter(c: i32) -> &'static str {
    match crate::proto::RiskClass::try_from(c) {
        Ok(crate::proto::RiskClass::A) => "A",
        Ok(crate::proto::RiskClass::B) => "B",
        Ok(crate::proto::RiskClass::C) => "C",
        Ok(crate::proto::RiskClass::D) => "D",
        _ => "?",
    }
}

/// `credit-risk score`: runs batch scoring on the server with a progress bar and prints
/// the summary (and the class transitions).
pub async fn score(
    addr: &str,
    as_of: String,
    model_version: String,
    dry_run: bool,
    json: bool,
) -> Result<(), ClientError> {
    use crate::proto::batch_scoring_event::Event;
    let mut c = ClassificationServiceClient::with_interceptor(
        channel(addr).await?,
        TokenInterceptor::from_env(),
    );
    let mut stream = c
        .run_batch_scoring(crate::proto::RunBatchScoringRequest {
            request_id: String::new(),
            as_of,
            model_version,
            dry_run,
        })
        .await?
        .into_inner();
    let bar = progress_bar(0, "score");
    while let Some(ev) = stream.message().await? {
        match ev.event {
            Some(Event::Progress(p)) => {
                bar.set_length(p.total.max(p.processed));
                bar.set_position(p.processed);
                bar.set_message(format!("run {} {}", p.run_id, p.phase));
            }
            Some(Event::Done(r)) => {
                bar.finish_and_clear();
                let k = r.classes.unwrap_or_default();
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "run_id": r.run_id, "model_version": r.model_version, "as_of": r.as_of,
                            "current": r.current, "dry_run": r.dry_run, "enterprises": r.enterprises,
                            "seconds": r.seconds, "related": r.related,
                            "classes": {"A": k.a, "B": k.b, "C": k.c, "D": k.d},
                        })
                    );
                } else {
                    println!(
                        "run {} ({}, model {}, as of {}): {} enterprises in {:.1} s — A {} B {} C {} D {}; {} related{}",
                        r.run_id,
                        if r.current { "current" } else { "not current" },
                        r.model_version,
                        r.as_of,
                        r.enterprises,
                        r.seconds,
                        k.a, k.b, k.c, k.d,
                        r.related,
                        if r.dry_run { " (dry run: ActivateScoringRun to use it)" } else { "" },
                    );
                }
                if let Some(t) = r.transitions.filter(|_| !json) {
                    println!("transitions from run {}:", t.baseline_run_id);
                    for cell in t.cells.iter().filter(|c| c.from != c.to) {
                        println!(
                            "  {} -> {}: {}",
                            class_letter(cell.from),
                            class_letter(cell.to),
                            cell.enterprises
                        );
                    }
                    for e in &t.examples {
                        let moved: Vec<String> = e
                            .moved
                            .iter()
                            .map(|m| format!("{} {:+.2}", m.code, m.points_after - m.points_before))
                            .collect();
                        println!(
                            "  e.g. {} {} -> {} ({:.2} -> {:.2}): {}",
                            e.uscc,
                            class_letter(e.from),
                            class_letter(e.to),
                            e.score_before,
                            e.score_after,
                            moved.join(", ")
                        );
                    }
                }
                return Ok(());
            }
            None => {}
        }
    }
    Err("the server ended the stream without a summary".into())
}

/// `credit-risk classify`: one enterprise's class and factors.
pub async fn classify(
    addr: &str,
    uscc: String,
    run_id: u64,
    json: bool,
) -> Result<(), ClientError> {
    let mut c = ClassificationServiceClient::with_interceptor(
        channel(addr).await?,
        TokenInterceptor::from_env(),
    );
    let r = c
        .get_classification(crate::proto::GetClassificationRequest { uscc, run_id })
        .await?
        .into_inner();
    if json {
        println!("{}", classification_json(&r));
        return Ok(());
    }
    println!(
        "{}: class {} score {:.2} (run {}, model {}, as of {})",
        r.uscc,
        class_letter(r.risk_class),
        r.score,
        r.run_id,
        r.model_version,
        r.as_of
    );
    if !r.hard_rule.is_empty() {
        println!("  hard rule: {}", r.hard_rule);
    }
    if !r.rescored_cause.is_empty() {
        println!("  re-scored {} after {}", r.rescored_at, r.rescored_cause);
    }
    for f in &r.factors {
        println!(
            "  {:+7.2}  {:<24} {} / {}  [{}]",
            f.points, f.code, f.description_zh, f.description_en, f.record
        );
    }
    Ok(())
}

/// A classification as JSON (proto field names).
pub fn classification_json(r: &crate::proto::Classification) -> serde_json::Value {
    serde_json::json!({
        "uscc": r.uscc,
        "risk_class": class_letter(r.risk_class),
        "score": r.score,
        "model_version": r.model_version,
        "run_id": r.run_id,
        "as_of": r.as_of,
        "hard_rule": r.hard_rule,
        "rescored_cause": r.rescored_cause,
        "rescored_at": r.rescored_at,
        "factors_reproduce_score": r.factors_reproduce_score,
        "factors": r.factors.iter().map(|f| serde_json::json!({
            "code": f.code,
            "dimension": f.dimension,
            "description_zh": f.description_zh,
            "description_en": f.description_en,
            "points": f.points,
            "record": f.record,
        })).collect::<Vec<_>>(),
    })
}

/// Reads USCCs, one per line (blank lines and `#` comments skipped), from a file or `-`.
pub fn read_usccs(path: &str) -> Result<Vec<String>, ClientError> {
    let text = if path == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    } else {
        std::fs::read_to_string(path)?
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

fn exemption_text(i: &crate::proto::MatchItem) -> &str {
    if i.exempt {
        &i.exemption_reason
    } else {
        ""
    }
}

/// `credit-risk match`: classes of a list of USCCs over one MatchClassifications stream,
/// written as CSV or JSON lines to `out`. Returns the number of USCCs answered.
pub async fn match_file(
    addr: &str,
    usccs: Vec<String>,
    as_of: String,
    jsonl: bool,
    out: &mut dyn std::io::Write,
) -> Result<u64, ClientError> {
    use crate::proto::spot_check_service_client::SpotCheckServiceClient;
    let mut c = SpotCheckServiceClient::with_interceptor(
        channel(addr).await?,
        TokenInterceptor::from_env(),
    );
    let batches: Vec<crate::proto::MatchRequest> = usccs
        .chunks(5000)
        .map(|b| crate::proto::MatchRequest {
            usccs: b.to_vec(),
            as_of: as_of.clone(),
        })
        .collect();
    let mut stream = c
        .match_classifications(tokio_stream::iter(batches))
        .await?
        .into_inner();
    if !jsonl {
        writeln!(
            out,
            "uscc,found,class,score,run_id,exempt,exemption_reason,error"
        )?;
    }
    let mut n = 0u64;
    while let Some(m) = stream.message().await? {
        for i in &m.items {
            n += 1;
            let class = if i.found {
                class_letter(i.risk_class)
            } else {
                ""
            };
            if jsonl {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "uscc": i.uscc, "found": i.found, "class": class, "score": i.score,
                        "run_id": i.run_id, "exempt": i.exempt,
                        "exemption_reason": exemption_text(i), "error": i.error,
                    })
                )?;
            } else {
                writeln!(
                    out,
                    "{},{},{},{},{},{},{},{}",
                    i.uscc,
                    i.found,
                    class,
                    i.score,
                    i.run_id,
                    i.exempt,
                    exemption_text(i),
                    i.error.replace(',', ";")
                )?;
            }
        }
    }
    Ok(n)
}

/// A receipt as JSON (what `credit-risk draw` prints and writes).
pub fn receipt_json(r: &crate::proto::DrawReceipt) -> serde_json::Value {
    serde_json::json!({
        "algorithm": r.algorithm,
        "seed": r.seed,
        "sampler_seed": r.sampler_seed,
        "task_id": r.task_id,
        "plan_id": r.plan_id,
        "run_id": r.run_id,
        "as_of": r.as_of,
        "drawn_at": r.drawn_at,
        "filter": r.filter.as_ref().map(|f| serde_json::json!({
            "region_codes": f.region_codes, "industry_sections": f.industry_sections,
            "entity_types": f.entity_types, "classes": f.classes.iter().map(|c| class_letter(*c)).collect::<Vec<_>>(),
            "statuses": f.statuses, "include_exempt": f.include_exempt,
        })),
        "strata": r.strata.iter().map(|s| serde_json::json!({
            "class": class_letter(s.risk_class),
            "population": s.population,
            "k": s.k,
            "population_digest": s.population_digest,
            "selected": s.selected.iter().map(|x| serde_json::json!({"uscc": x.uscc, "ticket": x.ticket})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "team_size": r.team_size,
        "inspector_pool_digest": r.inspector_pool_digest,
        "teams": r.teams.iter().map(|t| serde_json::json!({
            "uscc": t.uscc, "region_code": t.region_code,
            "inspectors": t.inspectors.iter().map(|i| serde_json::json!({"id": i.inspector_id, "ticket": i.ticket})).collect::<Vec<_>>(),
            "recused": t.recused,
        })).collect::<Vec<_>>(),
    })
}

/// What `credit-risk draw` does.
#[derive(Clone, Debug, Default)]
pub struct DrawArgs {
    pub task_id: String,
    /// (class letter, ratio or count)
    pub strata: Vec<(String, String)>,
    pub regions: Vec<String>,
    pub sections: Vec<String>,
    pub as_of: String,
    /// Draw an existing plan instead of planning.
    pub plan_id: Option<u64>,
    pub seed: Option<String>,
    pub team_size: Option<u32>,
    pub out: Option<std::path::PathBuf>,
    pub population_dir: Option<std::path::PathBuf>,
    /// Why the plan departs from the per-class sampling policy (empty = it does not).
    pub override_reason: String,
}

fn class_pb_of(letter: &str) -> Result<i32, ClientError> {
    use crate::proto::RiskClass as R;
    Ok(match letter.trim().to_ascii_uppercase().as_str() {
        "A" => R::A,
        "B" => R::B,
        "C" => R::C,
        "D" => R::D,
        other => return Err(format!("--stratum: {other:?} is not a class A-D").into()),
    } as i32)
}

/// `credit-risk draw`: plan (commit) and, given a seed, draw (reveal); prints the plan
/// digests and the receipt; optionally writes the receipt and the frozen populations.
pub async fn draw(addr: &str, a: DrawArgs) -> Result<(), ClientError> {
    use crate::proto::{self as pb, spot_check_service_client::SpotCheckServiceClient};
    let mut c = SpotCheckServiceClient::with_interceptor(
        channel(addr).await?,
        TokenInterceptor::from_env(),
    );
    let plan_id = match a.plan_id {
        Some(id) => id,
        None => {
            let mut strata = Vec::new();
            for (class, size) in &a.strata {
                let size = if size.contains('.') {
                    pb::stratum::Size::Ratio(
                        size.parse()
                            .map_err(|_| format!("--stratum: {size:?} is not a ratio"))?,
                    )
                } else {
                    pb::stratum::Size::Count(
                        size.parse()
                            .map_err(|_| format!("--stratum: {size:?} is not a count"))?,
                    )
                };
                strata.push(pb::Stratum {
                    risk_class: class_pb_of(class)?,
                    size: Some(size),
                });
            }
            let plan = c
                .plan_draw(pb::PlanDrawRequest {
                    request_id: String::new(),
                    task_id: a.task_id.clone(),
                    filter: Some(pb::CandidateFilter {
                        region_codes: a.regions.clone(),
                        industry_sections: a.sections.clone(),
                        ..Default::default()
                    }),
                    strata,
                    as_of: a.as_of.clone(),
                    override_reason: a.override_reason.clone(),
                })
                .await?
                .into_inner();
            eprintln!(
                "plan {} for task {:?} (run {}, as of {}):",
                plan.plan_id, plan.task_id, plan.run_id, plan.as_of
            );
            for s in &plan.strata {
                eprintln!(
                    "  class {}: population {} k {} digest {}",
                    class_letter(s.risk_class),
                    s.population,
                    s.k,
                    s.population_digest
                );
            }
            plan.plan_id
        }
    };
    if let Some(dir) = &a.population_dir {
        std::fs::create_dir_all(dir)?;
        let mut stratum = 0u32;
        loop {
            let r = c
                .list_population(pb::ListPopulationRequest {
                    plan_id,
                    stratum,
                    exempted: false,
                })
                .await;
            let mut s = match r {
                Ok(s) => s.into_inner(),
                Err(e) if e.code() == tonic::Code::InvalidArgument => break,
                Err(e) => return Err(e.into()),
            };
            let path = dir.join(format!("plan-{plan_id}-stratum-{stratum}.txt"));
            let mut f = std::io::BufWriter::new(File::create(&path)?);
            while let Some(b) = s.message().await? {
                for u in b.usccs {
                    writeln!(f, "{u}")?;
                }
            }
            std::io::Write::flush(&mut f)?;
            eprintln!(
                "population of stratum {stratum} written to {}",
                path.display()
            );
            stratum += 1;
        }
    }
    let Some(seed) = &a.seed else {
        eprintln!("no --seed: the plan is committed; reveal later with `credit-risk draw --plan {plan_id} --seed S`");
        return Ok(());
    };
    let mut receipt = c
        .draw_sample(pb::DrawSampleRequest {
            // Derived from the content: re-running the same command (say after a lost
            // connection) gets the first receipt back; another seed for a drawn plan
            // gets the plan's "already drawn" answer.
            request_id: content_request_id("draw", plan_id, seed),
            plan_id,
            seed: seed.clone(),
        })
        .await?
        .into_inner();
    if let Some(n) = a.team_size {
        receipt = c
            .assign_inspectors(pb::AssignInspectorsRequest {
                request_id: content_request_id("assign", plan_id, &n.to_string()),
                plan_id,
                team_size: n,
                conflicts: vec![],
            })
            .await?
            .into_inner();
    }
    let json = serde_json::to_string_pretty(&receipt_json(&receipt))?;
    if let Some(path) = &a.out {
        std::fs::write(path, &json)?;
        eprintln!("receipt written to {}", path.display());
    }
    println!("{json}");
    Ok(())
}

/// A request id derived from what the request does: `<what>-<plan>-<16 hex of SHA-256 of
/// detail>`, so the same command retried is a replay and a different one is not.
pub fn content_request_id(what: &str, plan_id: u64, detail: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(detail.as_bytes());
    format!("{what}-{plan_id}-{}", &hex::encode(h)[..16])
}
