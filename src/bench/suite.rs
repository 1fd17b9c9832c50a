//! `credit-risk bench`: the whole benchmark in one run, every figure beside a baseline
//! measured in the same run (absolute times drift on shared machines; ratios less so).
//!
//! 1. dataset: the generator's default profile at the chosen scale (cached on disk);
//! 2. the real server as a child process on a fresh store, on loopback;
//! 3. import over gRPC — baseline: a bare sled copy of the same keys and bytes;
//! 4. batch scoring over gRPC — baseline: a bare scan of the dossiers;
//! 5. GetClassification, GetEnterprise, BatchMatch(1) under N clients — baseline: a bare
//!    tonic unary echo with the same clients;
//! 6. the MatchClassifications stream — baseline: a bare bidirectional-streaming echo of
//!    the same messages;
//! 7. candidate pools and plan + draw over the city; server peak RSS; disk bytes.
//!
//! Prints a table and writes JSON. Never run in tests or CI: Shanghai scale takes minutes.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Instant,
};

use serde_json::{json, Value};

use credit_risk::{
    client,
    domain::Date,
    proto::{
        self as pb, classification_service_client::ClassificationServiceClient,
        spot_check_service_client::SpotCheckServiceClient,
    },
    store::{Store, StoreOptions},
    synthetic::{self, Profile},
};

use super::{
    echo::{echo_service_client::EchoServiceClient, EchoMessage},
    load::{self, sample_usccs, LoadReport, LoadTarget},
    query_timed, start_echo, unary_load, BenchError, CliResult,
};
use crate::cli::{import::import_file, progress_bar};

/// Options of `credit-risk bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// 100k, 1m, shanghai (3.5 M) or a number of enterprises.
    #[arg(long, default_value = "100k")]
    scale: String,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Directory for datasets, the store and results.
    #[arg(long, default_value = "bench-data")]
    data: PathBuf,
    /// Concurrent clients of the unary loads.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds per load phase.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Keep the benchmark's store afterwards.
    #[arg(long)]
    keep_store: bool,
    /// Print the JSON record instead of the table.
    #[arg(long)]
    json: bool,
}

/// Runs `credit-risk bench`.
pub fn run(a: Args) -> CliResult {
    crate::cli::init_logging("warn", false);
    let args = SuiteArgs {
        enterprises: parse_scale(&a.scale)?,
        seed: a.seed,
        data: a.data,
        clients: a.clients.clamp(1, 1024),
        seconds: a.seconds.clamp(0.5, 600.0),
        keep_store: a.keep_store,
    };
    let rt = crate::cli::runtime(0)?;
    let (rows, record) = rt.block_on(run_suite(&args))?;
    let out = args.data.join(format!("bench-{}.json", args.enterprises));
    std::fs::write(&out, serde_json::to_string_pretty(&record)?)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&record)?);
    } else {
        print!("{}", table(&rows));
        println!("JSON: {}", out.display());
    }
    Ok(())
}

/// What to run.
#[derive(Clone, Debug)]
pub struct SuiteArgs {
    pub enterprises: u64,
    pub seed: u64,
    /// Where datasets, the store and the results go.
    pub data: PathBuf,
    pub clients: usize,
    /// Seconds per load phase.
    pub seconds: f64,
    /// Keep the store afterwards.
    pub keep_store: bool,
}

/// `100k`, `1m`, `shanghai` (3.5 M) or a number.
pub fn parse_scale(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let n = match t.as_str() {
        "shanghai" => return Ok(3_500_000),
        _ if t.ends_with('k') => t[..t.len() - 1].parse::<f64>().map(|x| x * 1e3),
        _ if t.ends_with('m') => t[..t.len() - 1].parse::<f64>().map(|x| x * 1e6),
        _ => t.parse::<f64>(),
    }
    .map_err(|_| format!("--scale {s:?}: expected 100k, 1m, shanghai or a number"))?;
    if !(1.0..=1e8).contains(&n) {
        return Err(format!("--scale {s:?}: out of range"));
    }
    Ok(n as u64)
}

/// One line of the table: our figure, its baseline, the ratio and the target.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Row {
    pub measure: String,
    pub ours: f64,
    pub unit: String,
    pub baseline_name: String,
    pub baseline: Option<f64>,
    /// ours / baseline (for times: how many times slower; for rates: the fraction).
    pub ratio: Option<f64>,
    pub target: String,
    pub met: Option<bool>,
}

#[allow(clippy::too_many_arguments)]
fn row(
    measure: &str,
    ours: f64,
    unit: &str,
    baseline_name: &str,
    baseline: Option<f64>,
    target: &str,
    met: Option<bool>,
) -> Row {
    Row {
        measure: measure.into(),
        ours,
        unit: unit.into(),
        baseline_name: baseline_name.into(),
        baseline,
        ratio: baseline.filter(|b| *b > 0.0).map(|b| ours / b),
        target: target.into(),
        met,
    }
}

/// The server under test, a child process.
pub(super) struct Server {
    child: Child,
    /// Its address (HOST:PORT).
    pub(super) addr: String,
}

impl Server {
    /// Starts `credit-risk serve` on the store at `dir`, logging to `log`.
    pub(super) fn start(dir: &Path, log: &Path) -> Result<Server, BenchError> {
        let exe = std::env::current_exe()?;
        // A city-wide draw's receipt is 20–40 MB at Shanghai scale: above the default
        // 16 MiB message limit, so the bench's server allows 64 MiB.
        let config = log.with_extension("toml");
        std::fs::write(&config, "[server]\nmax_message_bytes = 67108864\n")?;
        let mut child = Command::new(exe)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut addr = None;
        for line in lines.by_ref() {
            let line = line?;
            if let Some(a) = line.strip_prefix("listening on ") {
                addr = Some(a.trim().to_string());
                break;
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let addr = addr.ok_or("the server exited before listening (see its log)")?;
        Ok(Server { child, addr })
    }

    /// A field of the server's /proc status, KiB (VmRSS:, VmHWM:).
    pub(super) fn status_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            })
            .unwrap_or(0)
    }

    /// SIGTERM, then waits; returns the seconds it took to exit.
    pub(super) fn stop(mut self) -> Result<f64, BenchError> {
        let t = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait()?;
        Ok(t.elapsed().as_secs_f64())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// This machine, for the record.
pub fn machine() -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("")
        .trim()
        .to_string();
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": model,
        "memory_gib": (mem_kib as f64 / 1048576.0 * 10.0).round() / 10.0,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
    })
}

fn log(msg: impl AsRef<str>) {
    eprintln!("[bench] {}", msg.as_ref());
}

/// Streams `msgs` through MatchClassifications or the bare streaming echo; returns
/// (USCCs answered, seconds).
async fn stream_timed(
    addr: &str,
    echo: bool,
    msgs: Vec<pb::MatchRequest>,
) -> Result<(u64, f64), BenchError> {
    let ch = client::channel(addr).await?;
    let t = Instant::now();
    let mut n = 0u64;
    if echo {
        let mut c = EchoServiceClient::new(ch).max_decoding_message_size(64 << 20);
        let req = tokio_stream::iter(msgs.into_iter().map(|m| EchoMessage {
            usccs: m.usccs,
            as_of: m.as_of,
        }));
        let mut s = c.echo_stream(req).await?.into_inner();
        while let Some(m) = s.message().await? {
            n += m.usccs.len() as u64;
        }
    } else {
        let mut c =
            SpotCheckServiceClient::with_interceptor(ch, client::TokenInterceptor::from_env())
                .max_decoding_message_size(64 << 20);
        let mut s = c
            .match_classifications(tokio_stream::iter(msgs))
            .await?
            .into_inner();
        while let Some(m) = s.message().await? {
            n += m.items.len() as u64;
        }
    }
    Ok((n, t.elapsed().as_secs_f64()))
}

fn load_json(r: &LoadReport) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

/// The generated city of `n` enterprises (seed `seed`) under `data`, made if missing
/// (the generator is deterministic, so a file made once serves every run); with the
/// generator's figures when it was made now.
pub(super) fn dataset(
    data: &Path,
    n: u64,
    seed: u64,
    as_of: Date,
) -> Result<(PathBuf, Option<Value>), BenchError> {
    let dataset = data.join(format!("city-{n}-{seed}.bin"));
    if dataset.exists() {
        return Ok((dataset, None));
    }
    log(format!(
        "generating {n} enterprises → {}",
        dataset.display()
    ));
    let tmp = dataset.with_extension("bin.tmp");
    let t = Instant::now();
    let profile = Profile {
        enterprises: n,
        seed,
        as_of,
    };
    let bar = progress_bar(n, "generate");
    let counts = {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
        let c = synthetic::generate(&profile, &mut w, |i| bar.set_position(i))?;
        std::io::Write::flush(&mut w)?;
        c
    };
    bar.finish_and_clear();
    std::fs::rename(&tmp, &dataset)?;
    let figures = json!({"records": counts.total(), "seconds": t.elapsed().as_secs_f64()});
    Ok((dataset, Some(figures)))
}

/// Runs everything; returns (table rows, the full JSON record).
pub async fn run_suite(args: &SuiteArgs) -> Result<(Vec<Row>, Value), BenchError> {
    let n = args.enterprises;
    std::fs::create_dir_all(&args.data)?;
    let as_of = Date::ymd(2026, 10, 1).ok_or("as-of")?;
    let mut raw = serde_json::Map::new();
    let mut rows = Vec::new();

    // 1. Dataset (cached: the generator is deterministic).
    let (dataset, generated) = dataset(&args.data, n, args.seed, as_of)?;
    if let Some(g) = generated {
        raw.insert("generate".into(), g);
    }
    raw.insert(
        "dataset".into(),
        json!({"file": dataset, "bytes": std::fs::metadata(&dataset)?.len()}),
    );

    // 2. The server on a fresh store.
    let store_dir = args.data.join(format!("bench-store-{n}"));
    let _ = std::fs::remove_dir_all(&store_dir);
    let server = Server::start(&store_dir, &args.data.join(format!("bench-server-{n}.log")))?;
    let addr = server.addr.clone();
    log(format!("server on {addr}, store {}", store_dir.display()));

    // 3. Import.
    log("import over gRPC");
    let (summary, import_secs) = import_file(&addr, &dataset, 2000).await?;
    let import_rate = summary.received as f64 / import_secs.max(1e-9);
    let disk = dir_bytes(&store_dir);
    raw.insert(
        "import".into(),
        json!({"received": summary.received, "stored": summary.stored, "rejected": summary.rejected,
               "seconds": import_secs, "records_per_second": import_rate, "store_bytes": disk,
               "server_rss_kib": server.status_kib("VmRSS:"),
               "server_peak_rss_kib": server.status_kib("VmHWM:")}),
    );

    // 4. Batch scoring.
    log("batch scoring over gRPC");
    let ch = client::channel(&addr).await?;
    let mut cls = ClassificationServiceClient::with_interceptor(
        ch.clone(),
        client::TokenInterceptor::from_env(),
    );
    let t = Instant::now();
    let run = super::batch_run(
        &mut cls,
        pb::RunBatchScoringRequest {
            as_of: as_of.to_string(),
            ..Default::default()
        },
    )
    .await?;
    let scoring_secs = t.elapsed().as_secs_f64();
    raw.insert(
        "batch_scoring".into(),
        json!({"run_id": run.run_id, "enterprises": run.enterprises, "seconds": scoring_secs,
               "server_seconds": run.seconds, "server_rss_kib": server.status_kib("VmRSS:"),
               "server_peak_rss_kib": server.status_kib("VmHWM:")}),
    );

    // 5. Unary loads, each beside the bare unary echo with the same clients.
    let usccs = sample_usccs(&dataset, 200_000)?;
    let echo = start_echo().await?.to_string();
    let (c, secs) = (args.clients, args.seconds);
    log(format!("unary loads: {c} clients, {secs} s each"));
    let echo_1 = unary_load(&echo, true, Arc::new(usccs.clone()), 1, c, secs).await?;
    let get_cls = load::load(&addr, LoadTarget::GetClassification, usccs.clone(), c, secs).await?;
    let get_ent = load::load(&addr, LoadTarget::GetEnterprise, usccs.clone(), c, secs).await?;
    let batch_1 = unary_load(&addr, false, Arc::new(usccs.clone()), 1, c, secs).await?;
    raw.insert(
        "unary".into(),
        json!({"clients": c, "seconds_each": secs, "echo": load_json(&echo_1),
               "get_classification": load_json(&get_cls), "get_enterprise": load_json(&get_ent),
               "batch_match_1": load_json(&batch_1),
               "server_rss_kib": server.status_kib("VmRSS:"),
               "server_peak_rss_kib": server.status_kib("VmHWM:")}),
    );

    // 6. The match stream beside the bare streaming echo, same messages.
    let stream_usccs = sample_usccs(&dataset, 1_000_000)?;
    let msgs: Vec<pb::MatchRequest> = stream_usccs
        .chunks(5000)
        .map(|b| pb::MatchRequest {
            usccs: b.to_vec(),
            as_of: String::new(),
        })
        .collect();
    log(format!("match stream of {} USCCs", stream_usccs.len()));
    let (echo_n, echo_s) = stream_timed(&echo, true, msgs.clone()).await?;
    let (match_n, match_s) = stream_timed(&addr, false, msgs).await?;
    raw.insert(
        "stream".into(),
        json!({"usccs": match_n, "match_seconds": match_s, "echo_usccs": echo_n, "echo_seconds": echo_s,
               "server_rss_kib": server.status_kib("VmRSS:"),
               "server_peak_rss_kib": server.status_kib("VmHWM:")}),
    );

    // 7. Pools and the draw.
    log("candidate pools, plan + draw");
    let mut spot =
        SpotCheckServiceClient::with_interceptor(ch, client::TokenInterceptor::from_env())
            .max_decoding_message_size(64 << 20);
    let cd = pb::CandidateFilter {
        classes: vec![pb::RiskClass::C as i32, pb::RiskClass::D as i32],
        statuses: vec![pb::EnterpriseStatus::Operating as i32],
        ..Default::default()
    };
    query_timed(&mut spot, cd.clone()).await?;
    let (pool_n, pool_s) = query_timed(&mut spot, cd).await?;
    let t = Instant::now();
    let plan = spot
        .plan_draw(pb::PlanDrawRequest {
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
            ..Default::default()
        })
        .await?
        .into_inner();
    let receipt = spot
        .draw_sample(pb::DrawSampleRequest {
            plan_id: plan.plan_id,
            seed: "bench-seed".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let draw_s = t.elapsed().as_secs_f64();
    let population: u64 = plan.strata.iter().map(|s| s.population).sum();
    let selected: usize = receipt.strata.iter().map(|s| s.selected.len()).sum();
    let joint = super::spot::joint_plan_and_draw(&mut spot).await?;
    let joint_s = joint["total_seconds"].as_f64().unwrap_or(f64::NAN);
    raw.insert("joint_plan_and_draw".into(), joint);
    let peak_rss_kib = server.status_kib("VmHWM:");
    raw.insert(
        "spot".into(),
        json!({"city_cd_pool": pool_n, "pool_seconds": pool_s, "draw_population": population,
               "drawn": selected, "plan_and_draw_seconds": draw_s,
               "server_rss_kib": server.status_kib("VmRSS:"), "server_peak_rss_kib": peak_rss_kib}),
    );
    let stop_s = server.stop()?;
    raw.insert(
        "server".into(),
        json!({"peak_rss_kib": peak_rss_kib, "sigterm_exit_seconds": stop_s}),
    );

    // 8. Storage ceilings on the same store, the server stopped.
    log("bare sled: scan of the dossiers, copy of every key");
    let (bare_scan_s, bare_keys, bare_bytes, copy_s) = {
        let dir = store_dir.clone();
        let copy_dir = args.data.join(format!("bench-bare-copy-{n}"));
        tokio::task::spawn_blocking(move || -> Result<(f64, u64, u64, f64), BenchError> {
            let store = Store::open(&dir, StoreOptions::default())?;
            super::bare_scan(&store, 2)?; // warm-up, as the server's run had a warm cache
            let t = Instant::now();
            super::bare_scan(&store, 2)?;
            let scan = t.elapsed().as_secs_f64();
            store.close(std::time::Duration::from_secs(10))?;
            drop(store);
            let _ = std::fs::remove_dir_all(&copy_dir);
            let (keys, _, copy) = super::bare_copy(&dir, &copy_dir, 4096)?;
            let disk = dir_bytes(&copy_dir);
            let _ = std::fs::remove_dir_all(&copy_dir);
            Ok((scan, keys, disk, copy))
        })
        .await??
    };
    raw.insert(
        "bare_sled".into(),
        json!({"dossier_scan_seconds_2_threads": bare_scan_s, "copy_keys": bare_keys,
               "copy_disk_bytes": bare_bytes, "copy_seconds": copy_s}),
    );
    if !args.keep_store {
        let _ = std::fs::remove_dir_all(&store_dir);
    }

    // The table.
    let shanghai = n >= 3_000_000;
    let at = |t: &str| {
        if shanghai {
            t.to_string()
        } else {
            format!("({t} at 3.5 M)")
        }
    };
    rows.push(row(
        "import",
        import_rate,
        "records/s",
        "bare sled copy, records/s",
        Some(summary.received as f64 / copy_s.max(1e-9)),
        &at("≥ 200,000/s"),
        Some(import_rate >= 200_000.0),
    ));
    rows.push(row(
        "batch rescore",
        scoring_secs,
        "s",
        "bare dossier scan, s",
        Some(bare_scan_s),
        &at("≤ 10 s and ≤ 3× scan"),
        Some(scoring_secs <= 10.0 && scoring_secs <= 3.0 * bare_scan_s),
    ));
    rows.push(row(
        "GetClassification",
        get_cls.per_second,
        "req/s",
        "unary echo, req/s",
        Some(echo_1.per_second),
        "≥ 40,000/s, p99 ≤ 5 ms",
        Some(get_cls.per_second >= 40_000.0 && get_cls.p99_ms <= 5.0),
    ));
    rows.push(row(
        "GetClassification p99",
        get_cls.p99_ms,
        "ms",
        "unary echo p99, ms",
        Some(echo_1.p99_ms),
        "≤ 5 ms",
        Some(get_cls.p99_ms <= 5.0),
    ));
    rows.push(row(
        "single-USCC unary (GetClassification)",
        get_cls.per_second,
        "req/s",
        "unary echo, req/s",
        Some(echo_1.per_second),
        "≥ 70 % of echo",
        Some(get_cls.per_second >= 0.7 * echo_1.per_second),
    ));
    rows.push(row(
        "single-USCC unary (BatchMatch 1)",
        batch_1.per_second,
        "req/s",
        "unary echo, req/s",
        Some(echo_1.per_second),
        "≥ 70 % of echo",
        Some(batch_1.per_second >= 0.7 * echo_1.per_second),
    ));
    rows.push(row(
        "GetEnterprise",
        get_ent.per_second,
        "req/s",
        "unary echo, req/s",
        Some(echo_1.per_second),
        "",
        None,
    ));
    let match_rate = match_n as f64 / match_s.max(1e-9);
    let echo_rate = echo_n as f64 / echo_s.max(1e-9);
    rows.push(row(
        "match stream",
        match_rate,
        "USCC/s",
        "streaming echo, USCC/s",
        Some(echo_rate),
        "≥ 300,000/s and ≥ 50 % of echo",
        Some(match_rate >= 300_000.0 && match_rate >= 0.5 * echo_rate),
    ));
    rows.push(row(
        "city-wide C/D pool",
        pool_s,
        "s",
        "",
        None,
        &at("≤ 0.5 s"),
        Some(pool_s <= 0.5),
    ));
    rows.push(row(
        "plan + draw, whole city",
        draw_s,
        "s",
        "",
        None,
        &at("≤ 4 s"),
        Some(draw_s <= 4.0),
    ));
    rows.push(row(
        "joint task plan + draw (3 departments, 10 items)",
        joint_s,
        "s",
        "",
        None,
        &at("≤ 6 s"),
        Some(joint_s <= 6.0),
    ));
    let disk_gb = disk as f64 / 1e9;
    rows.push(row(
        "disk after import",
        disk_gb,
        "GB",
        "bare sled copy on disk, GB",
        Some(bare_bytes as f64 / 1e9),
        &at("≤ 2.5 GB"),
        Some(disk_gb <= 2.5 * n as f64 / 3.5e6),
    ));
    let rss_gib = peak_rss_kib as f64 / 1048576.0;
    rows.push(row(
        "server peak RSS",
        rss_gib,
        "GiB",
        "",
        None,
        &at("≤ 1.5 GiB"),
        Some(rss_gib <= 1.5),
    ));

    let record = json!({
        "date": credit_risk::domain::Date::today().to_string(),
        "scale": n,
        "seed": args.seed,
        "clients": args.clients,
        "seconds_per_phase": args.seconds,
        "machine": machine(),
        "rows": rows,
        "raw": Value::Object(raw),
    });
    Ok((rows, record))
}

/// The table, aligned, for a terminal or BENCHMARKS.md (Markdown).
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| measure | ours | baseline (same run) | ratio | target | met |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let fmt = |v: f64, unit: &str| {
            if v >= 1000.0 {
                format!("{:.0} {unit}", v)
            } else {
                format!("{:.3} {unit}", v)
            }
        };
        let baseline = match r.baseline {
            Some(b) => format!("{} ({})", fmt(b, "").trim_end(), r.baseline_name),
            None => "—".into(),
        };
        let ratio = r
            .ratio
            .map(|x| format!("{x:.2}"))
            .unwrap_or_else(|| "—".into());
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.measure,
            fmt(r.ours, &r.unit),
            baseline,
            ratio,
            r.target,
            met
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_parse() {
        assert_eq!(parse_scale("100k"), Ok(100_000));
        assert_eq!(parse_scale("1m"), Ok(1_000_000));
        assert_eq!(parse_scale("Shanghai"), Ok(3_500_000));
        assert_eq!(parse_scale("250000"), Ok(250_000));
        assert!(parse_scale("lots").is_err());
        assert!(parse_scale("0").is_err());
    }

    #[test]
    fn ratios_and_table() {
        let r = row("x", 2.0, "s", "scan", Some(1.0), "≤ 3×", Some(true));
        assert_eq!(r.ratio, Some(2.0));
        let t = table(&[r, row("y", 5.0, "s", "", None, "", None)]);
        assert!(t.contains("| x | 2.000 s |"), "{t}");
        assert!(t.contains("| y | 5.000 s | — | — |"), "{t}");
    }
}
