//! The `credit-risk` binary: server, data generator and client commands.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::PathBuf,
    process::ExitCode,
};

use clap::{Parser, Subcommand};
use credit_risk::{
    bench, client,
    config::Config,
    demo,
    domain::Date,
    generate::{self, Profile},
    server,
    store::Store,
};
use tracing_subscriber::EnvFilter;

/// mimalloc: decoding millions of dossiers and import chunks is allocation-heavy.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Enterprise credit-risk classification service for market regulators.
#[derive(Parser)]
#[command(
    version,
    about,
    long_about = None,
    after_help = "Start here:\n  credit-risk serve --demo        a server with a generated city on 127.0.0.1:50051\n  credit-risk classify USCC       ask it for a class\n  credit-risk help <COMMAND>      each command's options and an example"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What `credit-risk report` draws.
#[derive(Subcommand)]
enum ReportCommand {
    /// Enterprises per class and district, and the score histogram, of the current
    /// run: classes-by-district.{svg,png} and score-histogram.{svg,png} in OUT.
    Run {
        /// Output directory.
        #[arg(long, default_value = "report")]
        out: PathBuf,
        /// Width of a histogram bin, points.
        #[arg(long, default_value_t = 2.0)]
        bin_width: f64,
    },
    /// One enterprise's credit report as an HTML page (profile, class, factor chart,
    /// penalties, listings, reports, inspections, repairs, class history).
    Enterprise {
        /// The USCC.
        uscc: String,
        /// Output file [default: USCC.html].
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Run the gRPC server on the embedded store.
    ///
    /// Example: credit-risk serve --demo
    Serve {
        /// Configuration file (TOML); see README "Configuration".
        #[arg(long, env = "CREDIT_RISK_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory of the store [default: ./credit-risk-data].
        #[arg(long, env = "CREDIT_RISK_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Listen address HOST:PORT; port 0 picks a free port [default: 127.0.0.1:50051].
        #[arg(long, env = "CREDIT_RISK_LISTEN")]
        listen: Option<String>,
        /// Fill an empty store with a small generated city (N entities) first.
        #[arg(long, num_args = 0..=1, default_missing_value = "2000", value_name = "N")]
        demo: Option<u64>,
        /// Serve Prometheus metrics on HOST:PORT (GET /metrics), e.g. 127.0.0.1:9464.
        #[arg(long, env = "CREDIT_RISK_METRICS_LISTEN", value_name = "HOST:PORT")]
        metrics_listen: Option<String>,
        /// Log as JSON lines.
        #[arg(long, env = "CREDIT_RISK_LOG_JSON")]
        log_json: bool,
    },
    /// Write a deterministic synthetic registry (length-delimited ImportRecord messages).
    ///
    /// Example: credit-risk generate --enterprises 100000 --seed 42 --out city.bin
    Generate {
        /// Number of market entities.
        #[arg(long, default_value_t = 10_000)]
        enterprises: u64,
        /// Random seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// The date the data describes (YYYY-MM-DD).
        #[arg(long, default_value = "2026-10-01")]
        as_of: String,
        /// Output file; "-" for standard output.
        #[arg(long, default_value = "-")]
        out: String,
    },
    /// Stream a generated file into a running server (ImportRecords).
    ///
    /// Example: credit-risk import city.bin --server 127.0.0.1:50051
    Import {
        /// File written by `generate`.
        file: PathBuf,
        /// Server address.
        #[arg(long, env = "CREDIT_RISK_SERVER", default_value = "127.0.0.1:50051")]
        server: String,
        /// Records per stream message.
        #[arg(long, default_value_t = 2000)]
        chunk: usize,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Bounded load test of GetEnterprise against a running server (loopback).
    ///
    /// Example: credit-risk load --sample city.bin --clients 64 --seconds 10
    Load {
        /// Generated file to take USCCs from.
        #[arg(long)]
        sample: PathBuf,
        /// Server address.
        #[arg(long, env = "CREDIT_RISK_SERVER", default_value = "127.0.0.1:50051")]
        server: String,
        /// Concurrent clients (one connection each).
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Duration in seconds.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// RPC to call.
        #[arg(long, value_enum, default_value = "get-enterprise")]
        rpc: client::LoadTarget,
    },
    /// Run batch scoring on a running server (RunBatchScoring) with a progress bar.
    ///
    /// Example: credit-risk score --server 127.0.0.1:50051 --as-of 2026-10-01
    Score {
        /// Server address.
        #[arg(long, env = "CREDIT_RISK_SERVER", default_value = "127.0.0.1:50051")]
        server: String,
        /// As-of date (YYYY-MM-DD) [default: today, Asia/Shanghai].
        #[arg(long)]
        as_of: Option<String>,
        /// Registered model version [default: the active model].
        #[arg(long)]
        model: Option<String>,
        /// Score into a run that does not become current; prints the class transitions.
        #[arg(long)]
        dry_run: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one enterprise's class and the factors behind it.
    ///
    /// Example: credit-risk classify 91310115MA1K3YJ12X --server 127.0.0.1:50051
    Classify {
        /// The USCC.
        uscc: String,
        /// Server address.
        #[arg(long, env = "CREDIT_RISK_SERVER", default_value = "127.0.0.1:50051")]
        server: String,
        /// A scoring run [default: the current run].
        #[arg(long, default_value_t = 0)]
        run: u64,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Classes and exemptions of a list of USCCs (MatchClassifications), as CSV or JSONL.
    ///
    /// Example: credit-risk match targets.txt > classes.csv
    Match {
        /// File with one USCC per line; "-" for standard input.
        file: String,
        /// Server address.
        #[arg(long, env = "CREDIT_RISK_SERVER", default_value = "127.0.0.1:50051")]
        server: String,
        /// Exemptions as of (YYYY-MM-DD) [default: today].
        #[arg(long, default_value = "")]
        as_of: String,
        /// JSON lines instead of CSV.
        #[arg(long)]
        jsonl: bool,
        /// Output file [default: standard output].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Plan a verifiable draw (commit) and, with --seed, draw it (reveal); prints the
    /// receipt as JSON.
    ///
    /// Without --stratum every class is planned at the default ratio of the rules in
    /// force (A 3 %, B 10 %, C 30 %, D 80 % in Shanghai; see docs/RULES.md).
    ///
    /// Example: credit-risk draw --task 2026-001 --seed 8412
    Draw {
        /// Server address.
        #[arg(long, env = "CREDIT_RISK_SERVER", default_value = "127.0.0.1:50051")]
        server: String,
        /// Spot-check task id (part of the sampler seed).
        #[arg(long, default_value = "")]
        task: String,
        /// CLASS:RATIO (with a decimal point, e.g. C:0.3) or CLASS:COUNT (e.g. D:50);
        /// none = every class at the rules' default ratio.
        #[arg(long = "stratum", value_name = "CLASS:SIZE")]
        strata: Vec<String>,
        /// Why the plan departs from the per-class sampling policy (ratios outside a
        /// class's range or falling with risk); recorded in the plan and audit trail.
        #[arg(long)]
        override_reason: Option<String>,
        /// Region code filter (repeatable; 310000 = the whole city).
        #[arg(long = "region")]
        regions: Vec<String>,
        /// Industry section filter (repeatable).
        #[arg(long = "section")]
        sections: Vec<String>,
        /// Draw date [default: today].
        #[arg(long, default_value = "")]
        as_of: String,
        /// Reveal an existing plan instead of planning a new one.
        #[arg(long = "plan")]
        plan_id: Option<u64>,
        /// The seed; without it only the plan is made.
        #[arg(long)]
        seed: Option<String>,
        /// Also draw inspector teams of this size.
        #[arg(long)]
        team_size: Option<u32>,
        /// Write the receipt (JSON) here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write each stratum's frozen population here (one USCC per line).
        #[arg(long)]
        population_dir: Option<PathBuf>,
    },
    /// Credit-repair cases (operators): submit, list, show, accept, decide, revoke.
    ///
    /// Example: credit-risk repair list --overdue
    Repair {
        #[command(subcommand)]
        command: credit_risk::operator::RepairCommand,
        /// Server address.
        #[arg(
            long,
            global = true,
            env = "CREDIT_RISK_SERVER",
            default_value = "127.0.0.1:50051"
        )]
        server: String,
        /// JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Objections to credit records: file, resolve, list.
    ///
    /// Example: credit-risk objection list --uscc 91310115MA1K3BTP2B
    Objection {
        #[command(subcommand)]
        command: credit_risk::operator::ObjectionCommand,
        /// Server address.
        #[arg(
            long,
            global = true,
            env = "CREDIT_RISK_SERVER",
            default_value = "127.0.0.1:50051"
        )]
        server: String,
        /// JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Charts of the current scoring run (SVG + PNG) or an HTML credit report.
    ///
    /// Examples:
    ///   credit-risk report run --out charts/
    ///   credit-risk report enterprise 91310115MA1K3BTP2B --out report.html
    Report {
        #[command(subcommand)]
        command: ReportCommand,
        /// Server address.
        #[arg(
            long,
            global = true,
            env = "CREDIT_RISK_SERVER",
            default_value = "127.0.0.1:50051"
        )]
        server: String,
        /// Print what was written as JSON.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Ask a running server for a consistent online backup (AdminService.Backup).
    ///
    /// Example: credit-risk backup --name nightly-2026-11-25.crbk
    Backup {
        /// File name under <data_dir>/backups on the server.
        #[arg(long)]
        name: String,
        /// Server address.
        #[arg(long, env = "CREDIT_RISK_SERVER", default_value = "127.0.0.1:50051")]
        server: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup into a new data directory (offline; then `serve --data-dir`).
    ///
    /// Example: credit-risk restore --from nightly.crbk --data-dir /srv/credit-risk-restored
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// A new, empty data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a stopped server's store: indexes against dossiers, the audit chain, the seal
    /// (no acknowledged write lost), and every value read once (content digest).
    ///
    /// Example: credit-risk check --data-dir credit-risk-data
    Check {
        /// The data directory of a stopped server.
        #[arg(long)]
        data_dir: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the SHA-256 of a bearer token, for `[[server.auth.tokens]] sha256 = …`.
    ///
    /// Example: openssl rand -hex 32 | tee token.txt | credit-risk hash-token -
    HashToken {
        /// The token (or "-" to read it from standard input).
        token: String,
    },
    /// Benchmark the audit trail's cost: durable RecordPenalty writes with and without it,
    /// alternating, in one run (temporary stores; no network). Prints JSON.
    ///
    /// Example: credit-risk bench-audit --writes 20000 --clients 16
    BenchAudit {
        #[arg(long, default_value_t = 20_000)]
        writes: usize,
        #[arg(long, default_value_t = 16)]
        clients: usize,
    },
    /// Benchmark the SpotCheckService of a running server on a scored store: match
    /// stream, BatchMatch, candidate pools, plan + draw, unary vs a bare echo; JSON.
    ///
    /// Example: credit-risk bench-spot --sample bench-data/city-3500000-42.bin --seconds 10
    BenchSpot {
        /// Server address.
        #[arg(long, env = "CREDIT_RISK_SERVER", default_value = "127.0.0.1:50051")]
        server: String,
        /// Generated file to take USCCs from.
        #[arg(long)]
        sample: PathBuf,
        /// USCCs to take from it.
        #[arg(long, default_value_t = 1_000_000)]
        usccs: usize,
        /// Seconds per load phase.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
    /// Benchmark (offline, on a stopped server's data dir): a bare scan of the dossiers,
    /// then a full batch scoring run in process; prints JSON.
    ///
    /// Example: credit-risk bench-scoring --data-dir bench-data/store-3500000 --dry-run
    BenchScoring {
        /// Data directory of a store.
        #[arg(long)]
        data_dir: PathBuf,
        /// As-of date [default: 2026-10-01, the generator's default].
        #[arg(long, default_value = "2026-10-01")]
        as_of: String,
        /// Also score a dry run (the comparison against the current run).
        #[arg(long)]
        dry_run: bool,
        /// Score with this registered model version (e.g. a new built-in one) instead of
        /// the active model; the run's transitions then compare the two (re-calibration).
        #[arg(long)]
        model: Option<String>,
        /// sled cache size in MiB [default: the store default].
        #[arg(long)]
        cache_mb: Option<u64>,
        /// Configuration file whose [store] section to use (e.g. compression).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The whole benchmark in one run, each figure beside a baseline measured in the same
    /// run: generate (cached) → import → batch scoring → unary loads vs a bare echo →
    /// match stream vs a bare streaming echo → pools and draw → bare sled scan and copy.
    /// Prints a table; writes JSON to DATA/bench-N.json. Minutes at Shanghai scale.
    ///
    /// Example: credit-risk bench --scale shanghai --clients 64 --seconds 10
    Bench {
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
    },
    /// Print a shell completion script.
    ///
    /// Example: credit-risk completions bash > /etc/bash_completion.d/credit-risk
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

fn init_logging(filter: &str, json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        b.worker_threads(workers);
    }
    b.enable_all().build()
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    match cli.command {
        Command::Serve {
            config,
            data_dir,
            listen,
            demo,
            metrics_listen,
            log_json,
        } => {
            let mut cfg = match &config {
                Some(p) => Config::from_file(p)?,
                None => Config::default(),
            };
            if let Some(d) = data_dir {
                cfg.server.data_dir = d;
            }
            if let Some(l) = listen {
                cfg.server.listen = l;
            }
            if let Some(listen) = metrics_listen {
                cfg.server.metrics = Some(credit_risk::config::MetricsConfig { listen });
            }
            cfg.log.json |= log_json;
            init_logging(&cfg.log.filter, cfg.log.json);
            let rt = runtime(cfg.server.worker_threads)?;
            rt.block_on(async move {
                let addr = cfg.server.listen_addr()?;
                let model = cfg.scoring.model()?;
                cfg.store.load_files()?;
                let store = Store::open_with_model(&cfg.server.data_dir, cfg.store.clone(), model)?;
                if let Some(n) = demo {
                    let stored = demo::load(&store, n).await?;
                    tracing::info!(stored, "demo data loaded (0 = store already had data)");
                    if store.current_run()?.is_none() {
                        let run = credit_risk::jobs::batch_scoring::run_to_completion(
                            store.clone(),
                            credit_risk::jobs::batch_scoring::BatchRequest {
                                model_version: None,
                                as_of: Date::today(),
                                dry_run: false,
                                requested_by: "demo".into(),
                                actor: credit_risk::store::Actor::system("serve --demo"),
                            },
                            |_| {},
                        )
                        .await?;
                        tracing::info!(run = run.id, classes = ?run.classes, "demo data scored");
                    }
                }
                let listener = tokio::net::TcpListener::bind(addr).await?;
                let bound = listener.local_addr()?;
                // Refuse a bad auth configuration (development mode off loopback) before
                // announcing the address: whatever waits for that line may rely on it.
                credit_risk::auth::Authenticator::new(&cfg.server.auth, bound.ip().is_loopback())?;
                println!("listening on {bound}");
                std::io::stdout().flush()?;
                tracing::info!(%bound, data_dir = %cfg.server.data_dir.display(), "serving");
                server::run(&cfg.server, store, listener, shutdown_signal()).await
            })
        }
        Command::Generate {
            enterprises,
            seed,
            as_of,
            out,
        } => {
            let as_of = Date::parse("--as-of", &as_of)?;
            let profile = Profile {
                enterprises,
                seed,
                as_of,
            };
            let bar = client::progress_bar(enterprises, "generate");
            let mut sink: Box<dyn Write> = if out == "-" {
                Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout().lock()))
            } else {
                Box::new(BufWriter::with_capacity(1 << 20, File::create(&out)?))
            };
            let counts = generate::generate(&profile, &mut sink, |n| bar.set_position(n))?;
            sink.flush()?;
            bar.finish_and_clear();
            eprintln!(
                "generated {} records: {} enterprises, {} penalties, {} annual reports, {} listings, {} inspections",
                counts.total(),
                counts.enterprises,
                counts.penalties,
                counts.annual_reports,
                counts.listings,
                counts.inspections
            );
            Ok(())
        }
        Command::Import {
            file,
            server,
            chunk,
            json,
        } => {
            let rt = runtime(0)?;
            let (summary, secs) = rt.block_on(client::import_file(&server, &file, chunk))?;
            let rate = summary.received as f64 / secs.max(1e-9);
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "received": summary.received,
                        "stored": summary.stored,
                        "unchanged": summary.unchanged,
                        "rejected": summary.rejected,
                        "seconds": secs,
                        "records_per_second": rate,
                        "rejections": summary.rejections.iter().map(|r| serde_json::json!({
                            "index": r.index, "kind": r.kind, "key": r.key, "code": r.code, "reason": r.reason
                        })).collect::<Vec<_>>(),
                    })
                );
            } else {
                println!(
                    "received {} stored {} unchanged {} rejected {} in {secs:.1} s ({rate:.0} records/s)",
                    summary.received, summary.stored, summary.unchanged, summary.rejected
                );
                for r in summary.rejections.iter().take(20) {
                    println!(
                        "  #{} {} {} {}: {}",
                        r.index, r.kind, r.key, r.code, r.reason
                    );
                }
                if summary.rejected > 20 {
                    println!("  … {} more (use --json for all)", summary.rejected - 20);
                }
            }
            Ok(())
        }
        Command::Load {
            sample,
            server,
            clients,
            seconds,
            rpc,
        } => load(sample, server, clients, seconds, rpc),
        Command::Score {
            server,
            as_of,
            model,
            dry_run,
            json,
        } => {
            let rt = runtime(0)?;
            rt.block_on(client::score(
                &server,
                as_of.unwrap_or_default(),
                model.unwrap_or_default(),
                dry_run,
                json,
            ))
        }
        Command::Match {
            file,
            server,
            as_of,
            jsonl,
            out,
        } => {
            let usccs = client::read_usccs(&file)?;
            let rt = runtime(0)?;
            let mut sink: Box<dyn Write> = match &out {
                Some(p) => Box::new(BufWriter::new(File::create(p)?)),
                None => Box::new(BufWriter::new(std::io::stdout().lock())),
            };
            let n = rt.block_on(client::match_file(&server, usccs, as_of, jsonl, &mut *sink))?;
            sink.flush()?;
            eprintln!("{n} USCCs answered");
            Ok(())
        }
        Command::Draw {
            server,
            task,
            strata,
            regions,
            sections,
            as_of,
            plan_id,
            seed,
            team_size,
            out,
            population_dir,
            override_reason,
        } => {
            let mut parsed = Vec::new();
            for s in &strata {
                let (c, size) = s
                    .split_once(':')
                    .ok_or_else(|| format!("--stratum {s:?}: expected CLASS:SIZE"))?;
                parsed.push((c.to_string(), size.to_string()));
            }
            let rt = runtime(0)?;
            rt.block_on(client::draw(
                &server,
                client::DrawArgs {
                    task_id: task,
                    strata: parsed,
                    regions,
                    sections,
                    as_of,
                    plan_id,
                    seed,
                    team_size,
                    out,
                    population_dir,
                    override_reason: override_reason.unwrap_or_default(),
                },
            ))
        }
        Command::BenchSpot {
            server,
            sample,
            usccs,
            seconds,
        } => {
            let ids = client::sample_usccs(&sample, usccs)?;
            let rt = runtime(0)?;
            rt.block_on(bench::spot(&server, ids, seconds.clamp(0.5, 120.0)))
        }
        Command::Backup { name, server, json } => {
            let rt = runtime(0)?;
            rt.block_on(async move {
                let mut c =
                    credit_risk::proto::admin_service_client::AdminServiceClient::with_interceptor(
                        client::channel(&server).await?,
                        client::TokenInterceptor::from_env(),
                    );
                let spinner = client::spinner("backup");
                let r = c
                    .backup(credit_risk::proto::BackupRequest {
                        name,
                        ..Default::default()
                    })
                    .await;
                spinner.finish_and_clear();
                let r = r?.into_inner();
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "path": r.path, "entries": r.entries, "bytes": r.bytes, "sha256": r.sha256,
                        })
                    );
                } else {
                    println!(
                        "backup written on the server: {} ({} entries, {} bytes, sha256 {})",
                        r.path, r.entries, r.bytes, r.sha256
                    );
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        }
        Command::Restore {
            from,
            data_dir,
            json,
        } => {
            let n = credit_risk::store::backup::restore(&from, &data_dir)?;
            let store = Store::open(&data_dir, Default::default())?;
            let check = store.check_indexes()?;
            let (events, broken) = store.verify_audit_chain()?;
            store.close(std::time::Duration::from_secs(10))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"restored_entries": n, "data_dir": data_dir,
                        "enterprises": check, "indexes_agree": true,
                        "audit_events": events, "audit_chain_intact": broken.is_none()})
                );
            } else {
                println!(
                    "restored {n} entries into {}: {check} enterprises, indexes agree; audit chain {} ({events} events)",
                    data_dir.display(),
                    if broken.is_none() { "intact" } else { "BROKEN" }
                );
            }
            Ok(())
        }
        Command::Check { data_dir, json } => {
            let store = Store::open(&data_dir, Default::default())?;
            // Every read of a damaged store is guarded: an error naming it, never a panic.
            let (enterprises, (events, broken), runs, (keys, bytes, digest)) =
                credit_risk::store::guard_panics(&data_dir, "checking it", || {
                    Ok((
                        store.check_indexes()?,
                        store.verify_audit_chain()?,
                        store.runs()?,
                        store.content_digest()?,
                    ))
                })?;
            store.close(std::time::Duration::from_secs(10))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"enterprises": enterprises, "indexes_agree": true,
                        "audit_events": events, "audit_chain_intact": broken.is_none(),
                        "audit_chain_broken_at": broken.as_ref().map(|(seq, _)| seq),
                        "audit_chain_problem": broken.as_ref().map(|(_, why)| why),
                        "scoring_runs": runs.len(), "keys": keys, "bytes": bytes,
                        "content_sha256": digest})
                );
            } else {
                println!(
                    "{enterprises} enterprises, indexes agree; audit chain: {} ({events} events); {} scoring runs; {keys} keys ({bytes} bytes) read, content sha256 {digest}",
                    match &broken {
                        None => "intact".to_string(),
                        Some((seq, why)) => format!("BROKEN at {seq}: {why}"),
                    },
                    runs.len()
                );
            }
            if broken.is_some() {
                return Err("audit chain broken".into());
            }
            Ok(())
        }
        Command::HashToken { token } => {
            let t = if token == "-" {
                let mut s = String::new();
                std::io::stdin().read_line(&mut s)?;
                s.trim().to_string()
            } else {
                token
            };
            println!("{}", credit_risk::auth::hash_token(&t));
            Ok(())
        }
        Command::BenchAudit { writes, clients } => {
            let rt = runtime(0)?;
            rt.block_on(bench::audit_overhead(writes, clients.max(1)))
        }
        Command::Report {
            command,
            server,
            json,
        } => {
            let rt = runtime(0)?;
            match command {
                ReportCommand::Run { out, bin_width } => {
                    let r =
                        rt.block_on(credit_risk::report::run_report(&server, &out, bin_width))?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&r)?);
                    } else {
                        println!(
                            "run {} ({}, as of {}, {} enterprises):",
                            r.run_id, r.model_version, r.as_of, r.enterprises
                        );
                        for f in &r.files {
                            println!("  wrote {f}");
                        }
                    }
                }
                ReportCommand::Enterprise { uscc, out } => {
                    let out = out.unwrap_or_else(|| PathBuf::from(format!("{uscc}.html")));
                    rt.block_on(credit_risk::report::enterprise_report(&server, &uscc, &out))?;
                    if json {
                        println!("{}", serde_json::json!({ "uscc": uscc, "file": out }));
                    } else {
                        println!("wrote {}", out.display());
                    }
                }
            }
            Ok(())
        }
        Command::Repair {
            command,
            server,
            json,
        } => {
            let rt = runtime(0)?;
            rt.block_on(credit_risk::operator::repair(&server, command, json))
        }
        Command::Objection {
            command,
            server,
            json,
        } => {
            let rt = runtime(0)?;
            rt.block_on(credit_risk::operator::objection(&server, command, json))
        }
        Command::Classify {
            uscc,
            server,
            run,
            json,
        } => {
            let rt = runtime(0)?;
            rt.block_on(client::classify(&server, uscc, run, json))
        }
        Command::Bench {
            scale,
            seed,
            data,
            clients,
            seconds,
            keep_store,
            json,
        } => {
            init_logging("warn", false);
            let args = credit_risk::bench_suite::SuiteArgs {
                enterprises: credit_risk::bench_suite::parse_scale(&scale)?,
                seed,
                data,
                clients: clients.clamp(1, 1024),
                seconds: seconds.clamp(0.5, 600.0),
                keep_store,
            };
            let rt = runtime(0)?;
            let (rows, record) = rt.block_on(credit_risk::bench_suite::run(&args))?;
            let out = args.data.join(format!("bench-{}.json", args.enterprises));
            std::fs::write(&out, serde_json::to_string_pretty(&record)?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&record)?);
            } else {
                print!("{}", credit_risk::bench_suite::table(&rows));
                println!("JSON: {}", out.display());
            }
            Ok(())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "credit-risk", &mut script);
            use std::io::Write;
            match std::io::stdout().write_all(&script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
        Command::BenchScoring {
            data_dir,
            as_of,
            dry_run,
            model,
            cache_mb,
            config,
        } => {
            init_logging("warn", false);
            let as_of = Date::parse("--as-of", &as_of)?;
            let mut options = match &config {
                Some(p) => Config::from_file(p)?.store,
                None => Default::default(),
            };
            if let Some(mb) = cache_mb {
                options.cache_bytes = mb * 1024 * 1024;
            }
            let rt = runtime(0)?;
            rt.block_on(bench::scoring(&data_dir, as_of, dry_run, model, options))
        }
    }
}

fn load(
    sample: PathBuf,
    server: String,
    clients: usize,
    seconds: f64,
    rpc: client::LoadTarget,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let usccs = client::sample_usccs(&sample, 200_000)?;
    let rt = runtime(0)?;
    let report = rt.block_on(client::load(
        &server,
        rpc,
        usccs,
        clients,
        seconds.clamp(0.1, 600.0),
    ))?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
