//! `credit-risk bench-alerts`: what early warning costs and how fast it delivers, on a
//! generated city served by the real server (a child process, loopback):
//!
//! 1. import, then a batch run with the default model (the current run);
//! 2. a batch run with a stricter model (the B and C cut points lowered; by default 4 and
//!    10.5, which worsens ≈ 3.5 % of the generated city) that becomes current:
//!    it raises an alert for every enterprise it puts in a worse class — timed without
//!    watchers;
//! 3. a run with the default model again (the classes improve back: no alerts);
//! 4. the stricter run again, now with N watchers on WatchAlerts: timed, and each
//!    watcher's delivery lag (receipt − raised time) recorded; one watcher disconnects
//!    half-way and resumes from its last sequence number, and must end with exactly the
//!    alerts it missed (no gap, no repeat).
//!
//! Prints one JSON object. Never run in tests or CI: 1 M enterprises take minutes.

use std::{path::PathBuf, time::Instant};

use credit_risk::{
    client::{channel, Authed, TokenInterceptor},
    domain::Date,
    proto::{
        self as pb, alert_service_client::AlertServiceClient,
        classification_service_client::ClassificationServiceClient,
    },
};
use serde_json::json;

use super::{
    suite::{dataset, Server},
    BenchError, CliResult,
};
use crate::cli::import::import_file;

/// Options of `credit-risk bench-alerts`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Enterprises in the generated city.
    #[arg(long, default_value_t = 100_000)]
    enterprises: u64,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Directory for the dataset, the store and the server's log.
    #[arg(long, default_value = "bench-data")]
    data: PathBuf,
    /// WatchAlerts subscribers during the second stricter run.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// The stricter model's B cut point (the default model's is 4.5): lower puts more
    /// enterprises from A into B.
    #[arg(long, default_value_t = 4.0)]
    strict_b: f64,
    /// The stricter model's C cut point (the default model's is 12): lower puts more
    /// enterprises from B into C.
    #[arg(long, default_value_t = 10.5)]
    strict_c: f64,
}

/// Runs `credit-risk bench-alerts`.
pub fn run(a: Args) -> CliResult {
    crate::cli::init_logging("warn", false);
    let record = crate::cli::runtime(0)?.block_on(bench(&a))?;
    println!("{}", serde_json::to_string_pretty(&record)?);
    Ok(())
}

async fn bench(a: &Args) -> Result<serde_json::Value, BenchError> {
    let as_of = Date::ymd(2026, 10, 1).ok_or("as-of")?;
    std::fs::create_dir_all(&a.data)?;
    let (file, _) = dataset(&a.data, a.enterprises, a.seed, as_of)?;
    let dir = a.data.join(format!("bench-alerts-store-{}", a.enterprises));
    let _ = std::fs::remove_dir_all(&dir);
    let server = Server::start(&dir, &a.data.join("bench-alerts-server.log"), 64 << 20)?;
    let addr = server.addr.clone();
    eprintln!("[bench-alerts] import {} into {addr}", file.display());
    let (summary, import_s) = import_file(&addr, &file, 2000).await?;
    let ch = channel(&addr).await?;
    let mut cls =
        ClassificationServiceClient::with_interceptor(ch.clone(), TokenInterceptor::from_env());
    let mut alerts = AlertServiceClient::with_interceptor(ch.clone(), TokenInterceptor::from_env());

    let model = cls
        .get_model(pb::GetModelRequest::default())
        .await?
        .into_inner();
    let strict = model
        .toml
        .replacen(
            &format!("version = \"{}\"", model.version),
            "version = \"bench-strict\"",
            1,
        )
        .replacen("b = 4.5", &format!("b = {}", a.strict_b), 1)
        .replacen("c = 12", &format!("c = {}", a.strict_c), 1);
    if !strict.contains("bench-strict") || strict == model.toml {
        return Err("could not derive the stricter model from the default model's TOML".into());
    }
    cls.register_model(pb::RegisterModelRequest {
        toml: strict,
        ..Default::default()
    })
    .await?;

    let mut runs = Vec::new();
    eprintln!("[bench-alerts] run 1: default model");
    runs.push(timed_run(&mut cls, as_of, &model.version).await?);
    let head0 = head(&mut alerts).await?;
    eprintln!("[bench-alerts] run 2: stricter model, no watchers");
    let quiet = timed_run(&mut cls, as_of, "bench-strict").await?;
    let head1 = head(&mut alerts).await?;
    let raised_quiet = head1 - head0;
    eprintln!("[bench-alerts] run 3: default model (back)");
    runs.push(timed_run(&mut cls, as_of, &model.version).await?);
    let head2 = head(&mut alerts).await?;

    eprintln!(
        "[bench-alerts] run 4: stricter model, {} watchers",
        a.subscribers
    );
    let expected = raised_quiet; // the same model over the same records
    let mut watchers = Vec::new();
    for i in 0..a.subscribers {
        let client = AlertServiceClient::with_interceptor(ch.clone(), TokenInterceptor::from_env());
        watchers.push(tokio::spawn(watch(client, head2, expected, i == 0)));
    }
    // Every watcher is subscribed (its first response headers arrived) before the run.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let loud = timed_run(&mut cls, as_of, "bench-strict").await?;
    let mut lags: Vec<f64> = Vec::new();
    let mut resumed = None;
    let mut counts = Vec::new();
    for w in watchers {
        let r = w.await??;
        counts.push(r.received);
        lags.extend(r.lags_ms);
        if let Some(x) = r.resume {
            resumed = Some(x);
        }
    }
    let head3 = head(&mut alerts).await?;
    lags.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if lags.is_empty() {
            return 0.0;
        }
        lags[((lags.len() as f64 * p).ceil() as usize).clamp(1, lags.len()) - 1]
    };
    let all_complete = counts.iter().all(|&c| c == expected);
    let stop_s = server.stop()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "enterprises": a.enterprises,
        "import": {"records": summary.received, "seconds": import_s},
        "runs_without_alerts": runs,
        "strict_run_no_watchers": {"run": quiet, "alerts_raised": raised_quiet,
            "share_worsened": raised_quiet as f64 / a.enterprises.max(1) as f64},
        "strict_run_with_watchers": {"run": loud, "alerts_raised": head3 - head2,
            "watchers": a.subscribers,
            "slower_than_without": loud["seconds"].as_f64().unwrap_or(0.0)
                / quiet["seconds"].as_f64().unwrap_or(1.0).max(1e-9) - 1.0,
            "every_watcher_received_every_alert": all_complete,
            "deliveries": lags.len(),
            "lag_ms": {"p50": pct(0.50), "p99": pct(0.99), "max": lags.last().copied().unwrap_or(0.0)}},
        "resume": resumed,
        "server_sigterm_exit_seconds": stop_s,
    }))
}

/// A batch run with `model` that becomes current; its figures.
async fn timed_run(
    cls: &mut ClassificationServiceClient<Authed>,
    as_of: Date,
    model: &str,
) -> Result<serde_json::Value, BenchError> {
    let t = Instant::now();
    let run = super::batch_run(
        cls,
        pb::RunBatchScoringRequest {
            as_of: as_of.to_string(),
            model_version: model.into(),
            ..Default::default()
        },
    )
    .await?;
    Ok(
        json!({"run_id": run.run_id, "model": model, "seconds": t.elapsed().as_secs_f64(),
              "classes": run.classes.map(|c| [c.a, c.b, c.c, c.d])}),
    )
}

/// The last alert sequence number.
async fn head(al: &mut AlertServiceClient<Authed>) -> Result<u64, BenchError> {
    let mut after = 0i64;
    loop {
        let r = al
            .list_alerts(pb::ListAlertsRequest {
                after_sequence: after,
                limit: 10_000,
                ..Default::default()
            })
            .await?
            .into_inner();
        if r.next_after_sequence == after {
            return Ok(after as u64);
        }
        after = r.next_after_sequence;
    }
}

/// What one watcher saw.
struct Watched {
    received: u64,
    lags_ms: Vec<f64>,
    /// For the watcher that disconnects half-way: what its resume showed.
    resume: Option<serde_json::Value>,
}

/// Watches from `from` until `expected` alerts arrived (at most 10 minutes); with
/// `drop_half_way`, disconnects after half and resumes from the last one seen.
async fn watch(
    mut c: AlertServiceClient<Authed>,
    from: u64,
    expected: u64,
    drop_half_way: bool,
) -> Result<Watched, BenchError> {
    let deadline = Instant::now() + std::time::Duration::from_secs(600);
    let mut last = from as i64;
    let mut received = 0u64;
    let mut lags = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut duplicates = 0u64;
    let mut gaps = 0u64;
    let mut resumed = false;
    let mut resume = None;
    'outer: while received < expected {
        let mut s = c
            .watch_alerts(pb::WatchAlertsRequest {
                from_sequence: last,
                ..Default::default()
            })
            .await?
            .into_inner();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(next) = tokio::time::timeout(left, s.message()).await else {
                break 'outer;
            };
            let Some(a) = next? else {
                break;
            };
            if a.sequence != last + 1 {
                gaps += 1;
            }
            if !seen.insert(a.sequence) {
                duplicates += 1;
            }
            last = a.sequence;
            received += 1;
            if let Some(t) = &a.raised_at {
                let now = chrono::Utc::now();
                let raised_us = t.seconds * 1_000_000 + i64::from(t.nanos / 1000);
                lags.push((now.timestamp_micros() - raised_us) as f64 / 1000.0);
            }
            if received >= expected {
                break 'outer;
            }
            if drop_half_way && !resumed && received * 2 >= expected {
                resumed = true;
                resume = Some(last);
                continue 'outer; // drops the stream: the server sees the client go
            }
        }
    }
    let resume = resume.map(|at| {
        json!({"disconnected_after_sequence": at, "received_in_all": received,
               "expected": expected, "duplicates": duplicates, "gaps": gaps,
               "exact": received == expected && duplicates == 0 && gaps == 0})
    });
    Ok(Watched {
        received,
        lags_ms: lags,
        resume,
    })
}
