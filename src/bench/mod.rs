//! The benchmarks of the `credit-risk` binary (never run in tests or CI: figures for
//! BENCHMARKS.md), one module per command, and what they share: the bare tonic echo
//! baseline, unary loads, peak RSS.

pub mod alerts;
pub mod audit;
pub mod load;
pub mod scoring;
pub mod spot;
pub mod suite;

use std::{path::Path, sync::Arc, time::Instant};

use crate::cli::CliResult;
use credit_risk::{
    client::{endpoint, TokenInterceptor},
    proto::{self as pb, spot_check_service_client::SpotCheckServiceClient},
    store::{Store, StoreOptions},
};

use self::{
    echo::{
        echo_service_client::EchoServiceClient,
        echo_service_server::{EchoService, EchoServiceServer},
        EchoMessage,
    },
    load::{summarise, LoadReport},
};

/// The benchmark-only echo service (the baseline of unary and streaming throughput).
#[allow(missing_docs, clippy::all)]
pub mod echo {
    tonic::include_proto!("creditrisk.bench.v1");
}

/// The error of a benchmark.
pub type BenchError = crate::cli::CliError;

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

/// Parses a `--seconds` flag: a finite number (a NaN or an infinity would survive the
/// commands' clamps and panic in `Duration::from_secs_f64`).
pub fn finite_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        Ok(_) => Err("not a finite number of seconds".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Starts the bare echo server on a loopback port; returns its address.
pub async fn start_echo() -> Result<std::net::SocketAddr, BenchError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve_echo(listener));
    Ok(addr)
}

/// Serves the bare echo on `listener` until the task is dropped.
pub async fn serve_echo(listener: tokio::net::TcpListener) {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let _ = tonic::transport::Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .serve_with_incoming(incoming)
        .await;
}

/// Unary calls from `clients` connections for `seconds`; `batch` USCCs per call.
pub async fn unary_load(
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
            let mut spot =
                SpotCheckServiceClient::with_interceptor(ch.clone(), TokenInterceptor::from_env());
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

pub async fn query_timed(
    c: &mut SpotCheckServiceClient<credit_risk::client::Authed>,
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

/// The floor of a batch run: every dossier's key and value read with `threads` threads
/// and nothing else done. Returns (keys, bytes).
pub fn bare_scan(store: &Store, threads: usize) -> credit_risk::Result<(u64, u64)> {
    let parts = store.scan_dossier_entries(
        threads,
        || (0u64, 0u64),
        |s, k, v| {
            s.0 += 1;
            s.1 += (k.len() + v.len()) as u64;
            Ok(())
        },
    )?;
    Ok(parts
        .into_iter()
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1)))
}

/// The storage ceiling: copies every entry of every tree of the (closed) sled database
/// at `src`, as is, into a new bare sled database at `dst` in atomic batches of `batch`,
/// each flushed (as the writer's group commit does). Returns (keys, key + value bytes,
/// seconds spent in apply + flush — reading the source is not counted).
pub fn bare_copy(src: &Path, dst: &Path, batch: usize) -> Result<(u64, u64, f64), BenchError> {
    let cache = StoreOptions::default().cache_bytes;
    // sled's background threads release a just-closed store's lock shortly after.
    let mut tries = 0;
    let db = loop {
        match sled::Config::new().path(src).cache_capacity(cache).open() {
            Ok(db) => break db,
            Err(_) if tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => return Err(e.into()),
        }
    };
    let out = sled::Config::new().path(dst).cache_capacity(cache).open()?;
    let (mut keys, mut bytes, mut secs) = (0u64, 0u64, 0f64);
    for name in db.tree_names() {
        let (from, to) = (db.open_tree(&name)?, out.open_tree(&name)?);
        let mut b = sled::Batch::default();
        let mut n = 0usize;
        let mut commit = |b: sled::Batch| -> Result<(), BenchError> {
            let t = Instant::now();
            to.apply_batch(b)?;
            out.flush()?;
            secs += t.elapsed().as_secs_f64();
            Ok(())
        };
        for kv in from.iter() {
            let (k, v) = kv?;
            keys += 1;
            bytes += (k.len() + v.len()) as u64;
            b.insert(k, v);
            n += 1;
            if n >= batch.max(1) {
                commit(std::mem::take(&mut b))?;
                n = 0;
            }
        }
        if n > 0 {
            commit(b)?;
        }
    }
    // Measured as the store is: once sled's cleaner is done with the copy's segments.
    credit_risk::store::compact::settle(dst, std::time::Duration::from_secs(120));
    Ok((keys, bytes, secs))
}

/// Runs `req` on the server and waits for its summary.
pub async fn batch_run(
    cls: &mut credit_risk::proto::classification_service_client::ClassificationServiceClient<
        credit_risk::client::Authed,
    >,
    req: pb::RunBatchScoringRequest,
) -> Result<pb::ScoringRun, BenchError> {
    let mut s = cls.run_batch_scoring(req).await?.into_inner();
    let mut run = None;
    while let Some(ev) = s.message().await? {
        if let Some(pb::batch_scoring_event::Event::Done(r)) = ev.event {
            run = Some(r);
        }
    }
    Ok(run.ok_or("batch scoring ended without a summary")?)
}
