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
//! 7. candidate pools and plan + draw over the city; server peak RSS; disk bytes;
//! 8. a restart on the store as the draws left it: the stop's seconds (SIGTERM: drain,
//!    flush, sled's snapshot), the open's seconds until the server listens, and its
//!    memory once settled (a server in service opens its store; the one above built it
//!    in the same process).
//!
//! Prints a table and writes JSON. Never run in tests or CI: Shanghai scale takes minutes.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use credit_risk::{
    client,
    domain::Date,
    proto::{
        self as pb, classification_service_client::ClassificationServiceClient,
        spot_check_service_client::SpotCheckServiceClient,
    },
    store::{
        compact::{dir_bytes, settle, steady},
        Store, StoreOptions,
    },
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
    #[arg(long, default_value_t = 10.0, value_parser = super::finite_seconds)]
    seconds: f64,
    /// Keep the benchmark's store afterwards.
    #[arg(long)]
    keep_store: bool,
    /// Print the JSON record instead of the table.
    #[arg(long)]
    json: bool,
    /// A saved record (bench-N.json of an earlier run): print each figure beside it,
    /// with the ratio, so a change's effect is one command.
    #[arg(long, value_name = "BASE.json")]
    compare: Option<PathBuf>,
    /// Do not run: take the figures from this saved record (with --compare: compare two
    /// saved runs).
    #[arg(long, value_name = "RUN.json", requires = "compare")]
    from: Option<PathBuf>,
    /// The server's configuration (TOML, as `serve --config`), to measure a tuning such
    /// as `[store] cache_bytes`; the bench sets `[server] max_message_bytes` unless the
    /// file does. The record keeps the file's text.
    #[arg(long, value_name = "CONFIG.toml")]
    server_config: Option<PathBuf>,
}

/// The rows of a saved record (`bench-N.json`); errors name the file.
fn saved_rows(path: &Path) -> Result<Vec<Row>, BenchError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BenchError::from(format!("{}: {e}", path.display())))?;
    let record: Value = serde_json::from_str(&text)
        .map_err(|e| BenchError::from(format!("{}: not JSON: {e}", path.display())))?;
    serde_json::from_value(record.get("rows").cloned().unwrap_or(Value::Null)).map_err(|e| {
        BenchError::from(format!(
            "{}: not a `credit-risk bench` record (rows): {e}",
            path.display()
        ))
    })
}

/// Runs `credit-risk bench`.
pub fn run(a: Args) -> CliResult {
    crate::cli::init_logging("warn", false);
    if let (Some(base), Some(from)) = (&a.compare, &a.from) {
        print!("{}", compare_table(&saved_rows(from)?, &saved_rows(base)?));
        return Ok(());
    }
    let base = a.compare.as_deref().map(saved_rows).transpose()?;
    let args = SuiteArgs {
        enterprises: parse_scale(&a.scale)?,
        seed: a.seed,
        data: a.data,
        clients: a.clients.clamp(1, 1024),
        seconds: a.seconds.clamp(0.5, 600.0),
        keep_store: a.keep_store,
        server_config: match &a.server_config {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| BenchError::from(format!("{}: {e}", p.display())))?,
            None => String::new(),
        },
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
    if let Some(base) = base {
        print!("{}", compare_table(&rows, &base));
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
    /// The server's configuration (TOML text; empty for the defaults).
    pub server_config: String,
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

/// Rounds of each alternating comparison (baseline, ours, baseline, ours…).
const ROUNDS: usize = 5;

/// Passes of the batch rescore, and bare scans beside them (medians of each).
const RESCORE_ROUNDS: usize = 3;

/// The range of `ours / baseline` over every pairing of a round of each, for measures
/// whose rounds cannot alternate (a rescore runs in the server, the bare scan on the
/// stopped store): the lowest pass against the slowest scan, the highest against the
/// fastest.
fn rounds_spread(ours: &[f64], baseline: &[f64]) -> Option<[f64; 2]> {
    let lo = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if ours.is_empty() || baseline.is_empty() || lo(baseline) <= 0.0 {
        return None;
    }
    Some([lo(ours) / hi(baseline), hi(ours) / lo(baseline)])
}

/// A measure taken in rounds, each right after its baseline: per round (baseline rate,
/// our rate, baseline p99, our p99).
struct Paired(Vec<(f64, f64, f64, f64)>);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

impl Paired {
    fn new() -> Paired {
        Paired(Vec::new())
    }

    fn push(&mut self, echo: LoadReport, ours: LoadReport) {
        self.0
            .push((echo.per_second, ours.per_second, echo.p99_ms, ours.p99_ms));
    }

    fn push_rates(&mut self, echo: f64, ours: f64) {
        self.0.push((echo, ours, 0.0, 0.0));
    }

    fn ratios(&self) -> Vec<f64> {
        self.0
            .iter()
            .map(|r| r.1 / r.0.max(1e-9))
            .collect::<Vec<_>>()
    }

    fn median_p99(&self) -> f64 {
        median(self.0.iter().map(|r| r.3).collect())
    }

    fn median_echo_p99(&self) -> f64 {
        median(self.0.iter().map(|r| r.2).collect())
    }

    /// The table row: median rate beside the median baseline; ratio = median of the
    /// rounds' ratios, with their spread; `met(rate, ratio)`.
    fn row(
        &self,
        measure: &str,
        baseline_name: &str,
        target: &str,
        met: impl Fn(f64, f64) -> bool,
    ) -> Row {
        let rate = median(self.0.iter().map(|r| r.1).collect());
        let ratios = self.ratios();
        let ratio = median(ratios.clone());
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut r = row(
            measure,
            rate,
            "req/s",
            baseline_name,
            Some(median(self.0.iter().map(|r| r.0).collect())),
            target,
            Some(met(rate, ratio)),
        );
        r.ratio = Some(ratio);
        r.spread = Some([lo, hi]);
        r
    }

    fn json(&self) -> Value {
        json!(self
            .0
            .iter()
            .map(|r| json!({"echo_per_second": r.0, "ours_per_second": r.1,
                            "echo_p99_ms": r.2, "ours_p99_ms": r.3}))
            .collect::<Vec<_>>())
    }
}

/// One line of the table: our figure, its baseline, the ratio and the target.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
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
    /// For a figure taken in rounds: the lowest and highest per-round ratio (alternating
    /// rounds), or over every pairing of its rounds with its baseline's (the rescore).
    #[serde(default)]
    pub spread: Option<[f64; 2]>,
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
        spread: None,
    }
}

/// The message limit of the bench's server and clients for a city of `n`: a city-wide
/// draw answers its whole receipt in one message (20–40 MB at Shanghai scale, 146 MB
/// for the general draw at 10 M), above the default 16 MiB.
pub(super) fn max_message_bytes(n: u64) -> usize {
    usize::try_from(n.saturating_mul(48))
        .unwrap_or(usize::MAX)
        .clamp(64 << 20, 1 << 30)
}

/// The bench server's configuration: `config` (TOML text, `--server-config`) with
/// `[server] max_message_bytes = max_message` added unless it sets it.
fn server_config(config: &str, max_message: usize) -> Result<String, BenchError> {
    let mut table: toml::Table =
        toml::from_str(config).map_err(|e| BenchError::from(format!("--server-config: {e}")))?;
    let server = table
        .entry("server")
        .or_insert_with(|| toml::Value::Table(Default::default()));
    let Some(server) = server.as_table_mut() else {
        return Err("--server-config: `server` is not a table".into());
    };
    server
        .entry("max_message_bytes")
        .or_insert(toml::Value::Integer(max_message as i64));
    toml::to_string(&table).map_err(|e| BenchError::from(e.to_string()))
}

/// The server under test, a child process.
pub(super) struct Server {
    child: Child,
    /// Its address (HOST:PORT).
    pub(super) addr: String,
    /// Where its log goes.
    log: std::path::PathBuf,
}

impl Server {
    /// Starts `credit-risk serve` on the store at `dir`, logging to `log`; its messages
    /// may be `max_message` bytes.
    pub(super) fn start(dir: &Path, log: &Path, max_message: usize) -> Result<Server, BenchError> {
        Self::configured(dir, log, max_message, "")
    }

    /// [`Server::start`] with the configuration `config` (TOML text), to which
    /// `[server] max_message_bytes = max_message` is added unless it sets it.
    pub(super) fn configured(
        dir: &Path,
        log: &Path,
        max_message: usize,
        config: &str,
    ) -> Result<Server, BenchError> {
        let exe = std::env::current_exe()?;
        let text = server_config(config, max_message)?;
        let config = log.with_extension("toml");
        std::fs::write(&config, text)?;
        let mut child = Command::new(exe)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir)
            // Warnings, and where the time went: each rescore's phases (a line a pass),
            // each import's staging and applying (a line an import), each draw's
            // selections indexed (a line a plan).
            .env(
                "RUST_LOG",
                "warn,credit_risk::jobs::batch_scoring=info,credit_risk::server::service::registry=info,\
                 credit_risk::store::writer=info",
            )
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
        Ok(Server {
            child,
            addr,
            log: log.to_path_buf(),
        })
    }

    /// Waits until the server's log holds `count` lines containing `needle` (checked
    /// every 250 ms), at most `limit`; returns the seconds waited, `None` past `limit`.
    pub(super) async fn await_log(
        &self,
        needle: &str,
        count: usize,
        limit: Duration,
    ) -> Option<f64> {
        let t = Instant::now();
        loop {
            let text = std::fs::read(&self.log).unwrap_or_default();
            let seen = String::from_utf8_lossy(&text).matches(needle).count();
            if seen >= count {
                return Some(t.elapsed().as_secs_f64());
            }
            if t.elapsed() >= limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
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

    /// The server's resident memory once it stops changing: sampled every half second
    /// until six samples in a row (3 s) lie within 1 % of each other, or `limit` passes
    /// (then the last sample). KiB.
    pub(super) async fn settled_rss_kib(&self, limit: Duration) -> u64 {
        let t = Instant::now();
        let mut samples: Vec<u64> = Vec::new();
        loop {
            let now = self.status_kib("VmRSS:");
            samples.push(now);
            if steady(&samples, 6) || t.elapsed() >= limit {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
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

/// Writes the figures so far to DATA/bench-N.partial.json, so a run that fails late
/// (say at 10 M) keeps what it measured.
fn checkpoint(data: &Path, n: u64, raw: &serde_json::Map<String, Value>) {
    let path = data.join(format!("bench-{n}.partial.json"));
    if let Ok(text) = serde_json::to_string_pretty(raw) {
        if let Err(e) = std::fs::write(&path, text) {
            log(format!("cannot write {}: {e}", path.display()));
        }
    }
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
    let max_message = max_message_bytes(n);
    // The server under test on this store, logging to `bench-server-{n}{suffix}.log`.
    let start_server = |suffix: &str| {
        Server::configured(
            &store_dir,
            &args.data.join(format!("bench-server-{n}{suffix}.log")),
            max_message,
            &args.server_config,
        )
    };
    let server = start_server("")?;
    let addr = server.addr.clone();
    log(format!("server on {addr}, store {}", store_dir.display()));

    // 3. Import.
    log("import over gRPC");
    let (summary, import_secs) = import_file(&addr, &dataset, 2000).await?;
    let import_rate = summary.received as f64 / import_secs.max(1e-9);
    let disk_answered = dir_bytes(&store_dir);
    let (disk, settle_s) = {
        let (dir, t) = (store_dir.clone(), Instant::now());
        let d = tokio::task::spawn_blocking(move || settle(&dir, Duration::from_secs(120))).await?;
        (d, t.elapsed().as_secs_f64())
    };
    raw.insert(
        "import".into(),
        json!({"received": summary.received, "stored": summary.stored, "rejected": summary.rejected,
               "seconds": import_secs, "records_per_second": import_rate,
               "store_bytes_answered": disk_answered, "store_bytes": disk,
               "store_settle_seconds": settle_s,
               "server_rss_kib": server.status_kib("VmRSS:"),
               "server_peak_rss_kib": server.status_kib("VmHWM:")}),
    );
    checkpoint(&args.data, n, &raw);

    // 4. Batch scoring, in rounds: a nightly rescore's time on a shared machine drifts
    // from pass to pass, so the figure is the median of RESCORE_ROUNDS passes (the first
    // right after the import, the others each on the run before it, as every night's),
    // beside the median of as many bare scans (section 9).
    log(format!("batch scoring over gRPC, {RESCORE_ROUNDS} passes"));
    let ch = client::channel(&addr).await?;
    let mut cls = ClassificationServiceClient::with_interceptor(
        ch.clone(),
        client::TokenInterceptor::from_env(),
    );
    let mut passes = Vec::new();
    for round in 0..RESCORE_ROUNDS {
        if round > 0 {
            // The pass before stores its spot base and retires old runs after its
            // stream ends (under a second at 3.5 M): not measured as this pass's time.
            let tail = (n as f64 / 1e6 * 0.5).max(3.0);
            tokio::time::sleep(Duration::from_secs_f64(tail)).await;
        }
        let t = Instant::now();
        let run = super::batch_run(
            &mut cls,
            pb::RunBatchScoringRequest {
                as_of: as_of.to_string(),
                ..Default::default()
            },
        )
        .await?;
        let secs = t.elapsed().as_secs_f64();
        passes.push(json!({"run_id": run.run_id, "enterprises": run.enterprises,
                           "seconds": secs, "server_seconds": run.seconds}));
    }
    let scoring_rounds: Vec<f64> = passes
        .iter()
        .filter_map(|p| p["seconds"].as_f64())
        .collect();
    let scoring_secs = median(scoring_rounds.clone());
    let last = passes.last().cloned().unwrap_or_default();
    raw.insert(
        "batch_scoring".into(),
        // `enterprises` and `run_id` (the last pass's) as before the rounds, which
        // `scripts/cost_curve.py` and saved records read; `seconds` is the median.
        json!({"seconds": scoring_secs, "rounds": passes,
               "enterprises": last["enterprises"], "run_id": last["run_id"],
               "server_rss_kib": server.status_kib("VmRSS:"),
               "server_peak_rss_kib": server.status_kib("VmHWM:")}),
    );
    checkpoint(&args.data, n, &raw);

    // 5. Unary loads, alternating with the bare unary echo (same clients) in short
    // rounds — echo, ours, echo, ours… — so each figure is compared with a baseline
    // taken seconds before it, not in another window of a noisy machine.
    let usccs = sample_usccs(&dataset, 200_000)?;
    let echo = start_echo().await?.to_string();
    let (c, secs) = (args.clients, args.seconds / 2.0);
    log(format!(
        "unary loads: {c} clients, {ROUNDS} alternating rounds of {secs} s phases"
    ));
    let (mut get_cls, mut get_ent, mut batch_1) = (Paired::new(), Paired::new(), Paired::new());
    let mut get_cls_class = Paired::new();
    for _ in 0..ROUNDS {
        let e = unary_load(&echo, true, Arc::new(usccs.clone()), 1, c, secs).await?;
        let o = load::load(&addr, LoadTarget::GetClassification, usccs.clone(), c, secs).await?;
        get_cls.push(e, o);
        let e = unary_load(&echo, true, Arc::new(usccs.clone()), 1, c, secs).await?;
        let target = LoadTarget::GetClassificationClass;
        let o = load::load(&addr, target, usccs.clone(), c, secs).await?;
        get_cls_class.push(e, o);
        let e = unary_load(&echo, true, Arc::new(usccs.clone()), 1, c, secs).await?;
        let o = load::load(&addr, LoadTarget::GetEnterprise, usccs.clone(), c, secs).await?;
        get_ent.push(e, o);
        let e = unary_load(&echo, true, Arc::new(usccs.clone()), 1, c, secs).await?;
        let o = unary_load(&addr, false, Arc::new(usccs.clone()), 1, c, secs).await?;
        batch_1.push(e, o);
    }
    raw.insert(
        "unary".into(),
        json!({"clients": c, "seconds_each": secs, "rounds": ROUNDS,
               "get_classification": get_cls.json(),
               "get_classification_class_view": get_cls_class.json(),
               "get_enterprise": get_ent.json(),
               "batch_match_1": batch_1.json(),
               "server_rss_kib": server.status_kib("VmRSS:"),
               "server_peak_rss_kib": server.status_kib("VmHWM:")}),
    );
    checkpoint(&args.data, n, &raw);

    // 6. The match stream beside the bare streaming echo, same messages.
    let stream_usccs = sample_usccs(&dataset, 1_000_000)?;
    let msgs: Vec<pb::MatchRequest> = stream_usccs
        .chunks(5000)
        .map(|b| pb::MatchRequest {
            usccs: b.to_vec(),
            as_of: String::new(),
        })
        .collect();
    log(format!(
        "match stream of {} USCCs, {ROUNDS} rounds alternating with the streaming echo",
        stream_usccs.len()
    ));
    let mut stream = Paired::new();
    for _ in 0..ROUNDS {
        let (echo_n, echo_s) = stream_timed(&echo, true, msgs.clone()).await?;
        let (match_n, match_s) = stream_timed(&addr, false, msgs.clone()).await?;
        stream.push_rates(
            echo_n as f64 / echo_s.max(1e-9),
            match_n as f64 / match_s.max(1e-9),
        );
    }
    raw.insert(
        "stream".into(),
        json!({"usccs_per_round": stream_usccs.len(), "rounds": ROUNDS, "rates": stream.json(),
               "server_rss_kib": server.status_kib("VmRSS:"),
               "server_peak_rss_kib": server.status_kib("VmHWM:")}),
    );
    checkpoint(&args.data, n, &raw);

    // 7. Pools and the draw.
    log("candidate pools, plan + draw");
    let mut spot =
        SpotCheckServiceClient::with_interceptor(ch, client::TokenInterceptor::from_env())
            .max_decoding_message_size(max_message);
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
    // A draw is done once the writer has indexed its selections, which it does after
    // answering (BENCHMARKS.md, "A draw's selections indexed after it"): the peak is
    // read after both plans' lines.
    let peak_at_draws_kib = server.status_kib("VmHWM:");
    let indexed_s = server
        .await_log("selections indexed", 2, Duration::from_secs(300))
        .await;
    if indexed_s.is_none() {
        log(
            "the draws' selections were not indexed within 300 s: the peak RSS leaves out the rest",
        );
    }
    let peak_rss_kib = server.status_kib("VmHWM:");
    raw.insert(
        "spot".into(),
        json!({"city_cd_pool": pool_n, "pool_seconds": pool_s, "draw_population": population,
               "drawn": selected, "plan_and_draw_seconds": draw_s,
               "selections_indexed_after_seconds": indexed_s,
               "server_peak_rss_kib_at_draws": peak_at_draws_kib,
               "server_rss_kib": server.status_kib("VmRSS:"), "server_peak_rss_kib": peak_rss_kib}),
    );
    checkpoint(&args.data, n, &raw);
    let stop_s = server.stop()?;
    raw.insert(
        "server".into(),
        json!({"peak_rss_kib": peak_rss_kib, "sigterm_exit_seconds": stop_s}),
    );

    // 8. A restart on the same store: the open (until the server listens) and what the
    // server holds once its background loads are done.
    log("restart: open, memory once settled");
    let t = Instant::now();
    let server = start_server("-restart")?;
    let open_s = t.elapsed().as_secs_f64();
    let settled_kib = server.settled_rss_kib(Duration::from_secs(60)).await;
    raw.insert(
        "restart".into(),
        json!({"open_seconds": open_s, "settled_rss_kib": settled_kib,
               "peak_rss_kib": server.status_kib("VmHWM:")}),
    );
    server.stop()?;
    checkpoint(&args.data, n, &raw);

    // 9. Storage ceilings on the same store, the server stopped.
    log("bare sled: scan of the dossiers, copy of every key");
    let (bare_scans, bare_keys, bare_bytes, copy_s, compacted) = {
        let dir = store_dir.clone();
        let copy_dir = args.data.join(format!("bench-bare-copy-{n}"));
        tokio::task::spawn_blocking(move || -> Result<_, BenchError> {
            let store = Store::open(&dir, StoreOptions::default())?;
            super::bare_scan(&store, 2)?; // warm-up, as the server's run had a warm cache
            let mut scan = Vec::new();
            for _ in 0..RESCORE_ROUNDS {
                let t = Instant::now();
                super::bare_scan(&store, 2)?;
                scan.push(t.elapsed().as_secs_f64());
            }
            store.close(Duration::from_secs(10))?;
            drop(store);
            let _ = std::fs::remove_dir_all(&copy_dir);
            let (keys, _, copy) = super::bare_copy(&dir, &copy_dir, 4096)?;
            let disk = dir_bytes(&copy_dir);
            let _ = std::fs::remove_dir_all(&copy_dir);
            // `credit-risk compact` on the same store: the product's own fresh copy.
            let t = Instant::now();
            let c = credit_risk::store::compact::compact(&dir, &StoreOptions::default(), false)?;
            Ok((scan, keys, disk, copy, (c, t.elapsed().as_secs_f64())))
        })
        .await??
    };
    let bare_scan_s = median(bare_scans.clone());
    raw.insert(
        "bare_sled".into(),
        json!({"dossier_scan_seconds_2_threads": bare_scan_s,
               "dossier_scan_rounds": bare_scans, "copy_keys": bare_keys,
               "copy_disk_bytes": bare_bytes, "copy_seconds": copy_s}),
    );
    checkpoint(&args.data, n, &raw);
    raw.insert(
        "compact".into(),
        json!({"seconds": compacted.1, "disk_before": compacted.0.disk_before,
               "disk_after": compacted.0.disk_after, "keys": compacted.0.keys}),
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
    let copy_rate = summary.received as f64 / copy_s.max(1e-9);
    rows.push(row(
        "import",
        import_rate,
        "records/s",
        "bare sled copy, records/s",
        Some(copy_rate),
        &at("≥ 200,000/s and ≥ 0.60 of the bare copy"),
        Some(import_rate >= 200_000.0 && import_rate >= 0.6 * copy_rate),
    ));
    let mut rescore = row(
        "batch rescore",
        scoring_secs,
        "s",
        "bare dossier scan, s",
        Some(bare_scan_s),
        &at("≤ 10 s and ≤ 3× scan"),
        Some(scoring_secs <= 10.0 && scoring_secs <= 3.0 * bare_scan_s),
    );
    rescore.spread = rounds_spread(&scoring_rounds, &bare_scans);
    rows.push(rescore);
    // Medians of the rounds; the ratio is the median of each round's ours / echo, with
    // the spread (lowest–highest) of those ratios.
    let cls_p99 = get_cls.median_p99();
    rows.push(get_cls.row(
        "GetClassification",
        "unary echo, req/s",
        "≥ 70 % of echo; ≥ 40,000/s, p99 ≤ 5 ms",
        |rate, ratio| ratio >= 0.7 && rate >= 40_000.0 && cls_p99 <= 5.0,
    ));
    rows.push(get_cls_class.row(
        "GetClassification, view CLASS",
        "unary echo, req/s",
        "≥ 70 % of echo",
        |_, ratio| ratio >= 0.7,
    ));
    rows.push(row(
        "GetClassification p99",
        cls_p99,
        "ms",
        "unary echo p99, ms",
        Some(get_cls.median_echo_p99()),
        "≤ 5 ms",
        Some(cls_p99 <= 5.0),
    ));
    rows.push(batch_1.row(
        "single-USCC unary (BatchMatch 1)",
        "unary echo, req/s",
        "≥ 70 % of echo",
        |_, ratio| ratio >= 0.7,
    ));
    let mut ent = get_ent.row("GetEnterprise", "unary echo, req/s", "", |_, _| true);
    ent.met = None;
    rows.push(ent);
    let mut s = stream.row(
        "match stream",
        "streaming echo, USCC/s",
        "≥ 300,000/s and ≥ 50 % of echo",
        |rate, ratio| rate >= 300_000.0 && ratio >= 0.5,
    );
    s.unit = "USCC/s".into();
    rows.push(s);
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
    rows.push(row(
        "disk after import",
        disk_answered as f64 / 1e9,
        "GB",
        "bare sled copy on disk, GB",
        Some(bare_bytes as f64 / 1e9),
        "",
        None,
    ));
    let disk_gb = disk as f64 / 1e9;
    rows.push(row(
        "disk after import, settled",
        disk_gb,
        "GB",
        "bare sled copy on disk, GB",
        Some(bare_bytes as f64 / 1e9),
        "≤ 1.15× the bare copy",
        Some(disk as f64 <= 1.15 * bare_bytes as f64),
    ));
    let compact_gb = compacted.0.disk_after as f64 / 1e9;
    rows.push(row(
        "disk after `credit-risk compact` (offline)",
        compact_gb,
        "GB",
        "bare sled copy on disk, GB",
        Some(bare_bytes as f64 / 1e9),
        "≤ 1.15× the bare copy",
        Some(compacted.0.disk_after as f64 <= 1.15 * bare_bytes as f64),
    ));
    let rss_gib = peak_rss_kib as f64 / 1048576.0;
    rows.push(row(
        "server peak RSS",
        rss_gib,
        "GiB",
        "",
        None,
        &at("≤ 1.25 GiB"),
        Some(rss_gib <= 1.25),
    ));
    rows.push(row(
        "restart: the stop before it (SIGTERM until exit)",
        stop_s,
        "s",
        "",
        None,
        "",
        None,
    ));
    rows.push(row(
        "restart: open until listening",
        open_s,
        "s",
        "",
        None,
        &at("≤ 2 s"),
        Some(open_s <= 2.0),
    ));
    rows.push(row(
        "restart: server RSS once settled",
        settled_kib as f64 / 1048576.0,
        "GiB",
        "",
        None,
        "",
        None,
    ));

    let record = json!({
        "date": credit_risk::domain::Date::today().to_string(),
        "scale": n,
        "seed": args.seed,
        "clients": args.clients,
        "seconds_per_phase": args.seconds,
        "machine": machine(),
        "server_config": args.server_config,
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
        let ratio = match (r.ratio, r.spread) {
            (Some(x), Some([lo, hi])) => format!("{x:.2} ({lo:.2}–{hi:.2})"),
            (Some(x), None) => format!("{x:.2}"),
            (None, _) => "—".into(),
        };
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

/// Each figure of `now` beside the same measure of `base`: the ratio now / base and
/// whether that is better (a rate higher, a time, size or latency lower).
pub fn compare_table(now: &[Row], base: &[Row]) -> String {
    let mut out = String::from("| measure | now | base | now / base | |\n|---|---|---|---|---|\n");
    for r in now {
        let Some(b) = base.iter().find(|b| b.measure == r.measure) else {
            out.push_str(&format!(
                "| {} | {:.3} {} | — | — | new |\n",
                r.measure, r.ours, r.unit
            ));
            continue;
        };
        let ratio = (b.ours != 0.0).then(|| r.ours / b.ours);
        let higher_is_better = r.unit.ends_with("/s");
        let verdict = match ratio {
            Some(x) if (x - 1.0).abs() < 0.02 => "same",
            Some(x) if (x > 1.0) == higher_is_better => "better",
            Some(_) => "worse",
            None => "",
        };
        out.push_str(&format!(
            "| {} | {:.3} {} | {:.3} {} | {} | {verdict} |\n",
            r.measure,
            r.ours,
            r.unit,
            b.ours,
            b.unit,
            ratio
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "—".into()),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescore_rounds_spread_over_every_pairing_with_the_bare_scans() {
        // Passes 4.7, 5.0, 5.9 s; scans 1.6, 2.0, 2.3 s: 4.7 / 2.3 to 5.9 / 1.6.
        let s = rounds_spread(&[5.0, 4.7, 5.9], &[2.0, 1.6, 2.3]).unwrap();
        assert!((s[0] - 4.7 / 2.3).abs() < 1e-12, "{s:?}");
        assert!((s[1] - 5.9 / 1.6).abs() < 1e-12, "{s:?}");
        assert_eq!(rounds_spread(&[], &[1.0]), None);
        assert_eq!(rounds_spread(&[1.0], &[0.0]), None);
        assert_eq!(median(vec![5.0, 4.7, 5.9]), 5.0);
    }

    #[test]
    fn alternating_rounds_report_the_median_ratio_and_its_spread() {
        let mut p = Paired::new();
        for (echo, ours) in [
            (100.0, 50.0),
            (80.0, 60.0),
            (120.0, 60.0),
            (50.0, 40.0),
            (100.0, 70.0),
        ] {
            p.push_rates(echo, ours);
        }
        let r = p.row("x", "echo", "≥ 70 % of echo", |_, ratio| ratio >= 0.7);
        assert_eq!(r.ours, 60.0, "median of ours");
        assert_eq!(r.baseline, Some(100.0), "median of the baselines");
        // Ratios 0.5, 0.75, 0.5, 0.8, 0.7: median 0.7, spread 0.5–0.8.
        assert_eq!(r.ratio, Some(0.7));
        assert_eq!(r.spread, Some([0.5, 0.8]));
        assert_eq!(r.met, Some(true));
        assert!(table(&[r]).contains("| 0.70 (0.50–0.80) |"));
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), 2.5);
    }

    #[test]
    fn a_tuning_reaches_the_bench_server_with_its_message_size() {
        let text = server_config("[store]\ncache_bytes = 134217728\n", 4096).unwrap();
        let t: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(t["store"]["cache_bytes"].as_integer(), Some(134217728));
        assert_eq!(t["server"]["max_message_bytes"].as_integer(), Some(4096));
        // The file's own message size wins; a malformed file is an error naming the flag.
        let text = server_config("[server]\nmax_message_bytes = 1000\n", 4096).unwrap();
        let t: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(t["server"]["max_message_bytes"].as_integer(), Some(1000));
        let e = server_config("server = 3", 4096).unwrap_err().to_string();
        assert!(e.contains("--server-config"), "{e}");
        let e = server_config("[store", 4096).unwrap_err().to_string();
        assert!(e.contains("--server-config"), "{e}");
    }

    #[test]
    fn a_run_compares_with_a_saved_one() {
        let now = [
            row("import", 150_000.0, "records/s", "", None, "", None),
            row("batch rescore", 6.0, "s", "", None, "", None),
            row("new measure", 1.0, "s", "", None, "", None),
        ];
        let base = [
            row("import", 100_000.0, "records/s", "", None, "", None),
            row("batch rescore", 12.0, "s", "", None, "", None),
        ];
        let t = compare_table(&now, &base);
        assert!(
            t.contains("| import | 150000.000 records/s | 100000.000 records/s | 1.50 | better |"),
            "{t}"
        );
        assert!(
            t.contains("| batch rescore | 6.000 s | 12.000 s | 0.50 | better |"),
            "{t}"
        );
        assert!(t.contains("| new measure | 1.000 s | — | — | new |"), "{t}");
        // Saved records round-trip through JSON.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench-1.json");
        std::fs::write(
            &path,
            serde_json::to_string(&json!({"rows": base})).unwrap(),
        )
        .unwrap();
        assert_eq!(saved_rows(&path).unwrap().len(), 2);
        std::fs::write(&path, "{}").unwrap();
        let err = saved_rows(&path).unwrap_err().to_string();
        assert!(
            err.contains("bench-1.json") && err.contains("rows"),
            "{err}"
        );
    }

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
