//! `credit-risk bench-scoring`: offline, on a stopped server's data directory — bare
//! scans of the dossiers, then a full batch scoring run in process.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use credit_risk::{
    domain::Date,
    error::Result,
    jobs::batch_scoring::{run_to_completion, BatchRequest},
    server::config::Config,
    store::{Store, StoreOptions},
};

use super::{peak_rss_kib, CliResult};

/// Options of `credit-risk bench-scoring`.
#[derive(clap::Args, Debug)]
pub struct Args {
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
    /// Also time passes with every family's active model (general and food) against
    /// general-only passes, alternating (issue 18's ≤ 1.3× target).
    #[arg(long)]
    families: bool,
    /// sled cache size in MiB [default: the store default].
    #[arg(long)]
    cache_mb: Option<u64>,
    /// Configuration file whose [store] section to use (e.g. compression).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Runs `credit-risk bench-scoring`.
pub fn run(a: Args) -> CliResult {
    crate::cli::init_logging("warn", false);
    let as_of = Date::parse("--as-of", &a.as_of)?;
    let mut options = match &a.config {
        Some(p) => Config::from_file(p)?.store,
        None => Default::default(),
    };
    if let Some(mb) = a.cache_mb {
        options.cache_bytes = mb * 1024 * 1024;
    }
    crate::cli::runtime(0)?.block_on(scoring(
        &a.data_dir,
        as_of,
        a.dry_run,
        a.families,
        a.model,
        options,
    ))
}

/// Bare scans (one and two threads), then a full batch scoring run (and optionally a
/// dry run against it); prints one JSON object per measurement.
pub async fn scoring(
    dir: &Path,
    as_of: Date,
    dry_run: bool,
    families: bool,
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
        let (keys, bytes) =
            tokio::task::spawn_blocking(move || super::bare_scan(&s2, threads)).await??;
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
    // (dry run, all families): general-only and all-families passes alternate, so that
    // neither always runs on the warmer cache.
    let mut passes = vec![(false, false)];
    if families {
        passes.extend([(false, true), (false, false), (false, true)]);
    }
    if dry_run {
        passes.push((true, false));
    }
    for (dry, all) in passes {
        let t = Instant::now();
        let mut phases: Vec<(&'static str, f64)> = Vec::new();
        let runs = run_to_completion(
            store.clone(),
            BatchRequest {
                model_version: model.clone().filter(|_| !all),
                family: None,
                all_families: all,
                as_of,
                dry_run: dry,
                requested_by: "bench".into(),
                actor: credit_risk::store::Actor::system("bench-scoring"),
            },
            |p| {
                if phases.last().map(|x| x.0) != Some(p.phase) {
                    phases.push((p.phase, p.elapsed.as_secs_f64()));
                }
            },
        )
        .await?;
        let secs = t.elapsed().as_secs_f64();
        let run = &runs[0];
        println!(
            "{}",
            serde_json::json!({"batch_scoring": {
                "dry_run": dry,
                "all_families": all,
                "runs": runs.iter().map(|r| serde_json::json!({
                    "run_id": r.id, "model": r.model_version, "enterprises": r.enterprises,
                    "classes": {"A": r.classes[0], "B": r.classes[1], "C": r.classes[2], "D": r.classes[3]},
                })).collect::<Vec<_>>(),
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
        tokio::task::spawn_blocking(move || super::bare_scan(&s2, 2)).await??;
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
        let name = credit_risk::domain::RegionCode::parse("r", code)
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
