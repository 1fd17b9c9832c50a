//! An acknowledged write survives `kill -9` of the server process.

use std::process::{Child, Command};

use crate::common::*;
use credit_risk::{
    proto as pb,
    store::{Store, StoreOptions},
};

fn spawn_server(dir: &std::path::Path) -> (Child, std::net::SocketAddr) {
    spawn_server_with(dir, None)
}

/// The server with a fault point armed (`CREDIT_RISK_FAULT`, see `src/fault.rs`).
fn spawn_server_with(dir: &std::path::Path, fault: Option<&str>) -> (Child, std::net::SocketAddr) {
    let env: Vec<(&str, &str)> = fault
        .map(|f| (credit_risk::fault::ENV, f))
        .into_iter()
        .collect();
    spawn_serve(dir, &[], &env)
}

/// Writes answered by the server, and the status that stopped each writer (if any).
type WriterResult = (Vec<String>, Option<tonic::Status>);

/// 16 concurrent writers, each upserting `per_writer` new enterprises numbered from
/// `first` until the server stops answering.
fn spawn_writers(
    client: &RegistryClient,
    first: u32,
    per_writer: u32,
) -> Vec<tokio::task::JoinHandle<WriterResult>> {
    (0..16u32)
        .map(|w| {
            let mut c = client.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..per_writer {
                    let u = uscc_n(b'1', first + w * per_writer + i);
                    let r = c
                        .upsert_enterprise(pb::UpsertEnterpriseRequest {
                            request_id: String::new(),
                            enterprise: Some(enterprise(&u)),
                        })
                        .await;
                    match r {
                        Ok(_) => acked.push(u),
                        Err(s) => return (acked, Some(s)),
                    }
                }
                (acked, None)
            })
        })
        .collect()
}

/// Whether a writer's stop is the server going away (UNAVAILABLE, CANCELLED, UNKNOWN)
/// rather than a refusal the server answered. A status the server sent has no source;
/// one the client made from a transport error carries it. tonic maps an HTTP/2 reset or
/// GOAWAY with NO_ERROR to INTERNAL (its `code_from_h2`, as grpc-java once did:
/// grpc/grpc-java#1355), so INTERNAL is the connection closing only when it comes from
/// the transport; an INTERNAL the server answered fails the test.
fn server_went_away(s: &tonic::Status) -> bool {
    let from_transport = std::error::Error::source(s).is_some();
    matches!(
        s.code(),
        tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown
    ) || (s.code() == tonic::Code::Internal && from_transport)
}

/// Every write the writers had acknowledged, and the statuses that stopped them.
async fn join_writers(
    tasks: Vec<tokio::task::JoinHandle<WriterResult>>,
) -> (Vec<String>, Vec<tonic::Status>) {
    let mut acknowledged = Vec::new();
    let mut stops = Vec::new();
    for t in tasks {
        let (acked, stop) = t.await.unwrap();
        acknowledged.extend(acked);
        stops.extend(stop);
    }
    (acknowledged, stops)
}

/// Opens the stopped server's store and checks that every acknowledged write is there,
/// the indexes agree with the dossiers and the audit chain is intact; returns how many
/// acknowledged writes were found (all of them, or the test failed).
fn assert_all_present(dir: &std::path::Path, acknowledged: &[String], after: &str) -> usize {
    assert!(
        acknowledged.len() > 100,
        "the load wrote something: {}",
        acknowledged.len()
    );
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    let found = acknowledged
        .iter()
        .filter(|u| {
            let u = credit_risk::domain::Uscc::parse(u).unwrap();
            store.enterprise(&u).unwrap().is_some()
        })
        .count();
    let missing = acknowledged.len() - found;
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged writes lost after {after}",
        acknowledged.len()
    );
    let checked = store.check_indexes().unwrap();
    assert!(checked >= acknowledged.len() as u64);
    let (events, broken) = store.verify_audit_chain().unwrap();
    assert!(
        broken.is_none(),
        "audit chain broken after {after}: {broken:?}"
    );
    assert!(events > 0);
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let mut acknowledged = Vec::new();
    // Kill points are random; the seed is printed, and CREDIT_RISK_KILL_SEED replays it.
    let seed: u64 = match std::env::var("CREDIT_RISK_KILL_SEED") {
        Ok(s) => s.parse().expect("CREDIT_RISK_KILL_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
    let delays: Vec<u64> = (0..3)
        .map(|_| rand::Rng::random_range(&mut rng, 150..1200))
        .collect();
    eprintln!("kill delays (ms) after the load starts: {delays:?} (CREDIT_RISK_KILL_SEED={seed})");
    for round in 0..3u32 {
        let (mut child, addr) = spawn_server(tmp.path());
        let client = connect(addr).await;
        // 16 concurrent writers; kill while they are still writing.
        let tasks = spawn_writers(&client, round * 1_000_000, 10_000);
        tokio::time::sleep(std::time::Duration::from_millis(delays[round as usize])).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        let acked = join_writers(tasks).await.0;
        assert!(
            !acked.is_empty(),
            "round {round}: no write was acknowledged before the kill (seed {seed})"
        );
        acknowledged.extend(acked);
    }
    let found = assert_all_present(tmp.path(), &acknowledged, "kill -9");
    eprintln!(
        "kills survived: 3, writes acknowledged: {}, found: {found}",
        acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_flushes_and_exits_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_server(tmp.path());
    let client = connect(addr).await;
    let tasks = spawn_writers(&client, 0, 100_000);
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let sent = std::time::Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM failed");
    // The default grace period is 10 s; the server must be gone well before a margin.
    let exit = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if sent.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            panic!("server still running 20 s after SIGTERM");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let took = sent.elapsed();
    assert!(exit.success(), "server exit after SIGTERM: {exit:?}");
    // The clean stop re-opened sled once: its page-table snapshot covers the writes (an
    // empty store's open writes none), so the next open need not replay them.
    assert!(
        !sled_snapshots(tmp.path()).is_empty(),
        "no sled snapshot after a clean stop: {:?}",
        std::fs::read_dir(tmp.path()).unwrap().collect::<Vec<_>>()
    );
    let (acknowledged, refusals) = join_writers(tasks).await;
    // Writers stop only because the server went away, never on a write error.
    for s in &refusals {
        assert!(
            server_went_away(s),
            "a writer was refused during shutdown by the server: {s:?}"
        );
    }
    let found = assert_all_present(tmp.path(), &acknowledged, "SIGTERM");
    let stopped_by: Vec<String> = refusals
        .iter()
        .map(|s| format!("{:?}: {}", s.code(), s.message()))
        .collect();
    eprintln!(
        "SIGTERM under 16 writers: exited cleanly after {took:?}; {} writes acknowledged, {found} found; writers stopped by {stopped_by:?}",
        acknowledged.len()
    );
}

/// The `snap.<LSN>` files sled keeps in a store directory, by log position.
fn sled_snapshots(dir: &std::path::Path) -> Vec<u64> {
    let mut lsns: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().ok()?;
            u64::from_str_radix(name.strip_prefix("snap.")?, 16).ok()
        })
        .collect();
    lsns.sort_unstable();
    lsns
}

/// `store::snapshot_closed` (what a clean stop of the server runs last) leaves a store
/// that is still open anywhere untouched, and writes sled's snapshot of a closed one,
/// past everything written, without changing what the store holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_store_gets_sleds_snapshot_and_a_live_one_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    credit_risk::server::demo::load_seeded(&store, 400, 7)
        .await
        .unwrap();
    let count = store.enterprise_count();
    assert_eq!(count, 400);
    let before = sled_snapshots(tmp.path());

    let e = credit_risk::store::snapshot_closed(tmp.path(), &StoreOptions::default())
        .expect_err("a live store is not re-opened");
    assert!(
        matches!(e, credit_risk::error::Error::Unavailable(_)),
        "{e:?}"
    );
    assert_eq!(sled_snapshots(tmp.path()), before, "files touched: {e}");

    store.close(std::time::Duration::from_secs(5)).unwrap();
    drop(store);
    credit_risk::store::snapshot_closed(tmp.path(), &StoreOptions::default()).unwrap();
    let after = sled_snapshots(tmp.path());
    assert_eq!(after.len(), 1, "old snapshots are removed: {after:?}");
    assert!(
        after.last() > before.last(),
        "the snapshot moved past the writes: {before:?} -> {after:?}"
    );

    let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.enterprise_count(), count);
    assert!(store.check_indexes().unwrap() >= count);
    assert!(store.verify_audit_chain().unwrap().1.is_none());
}

/// A server on a `--demo` city of `n` (scored before it starts) with `fault` armed, and
/// the stream of a new general pass started on it.
async fn demo_and_a_pass(
    dir: &std::path::Path,
    n: u32,
    fault: &str,
) -> (
    Child,
    std::net::SocketAddr,
    tonic::Streaming<pb::BatchScoringEvent>,
) {
    let (child, addr) = spawn_serve(
        dir,
        &["--demo", &n.to_string()],
        &[(credit_risk::fault::ENV, fault)],
    );
    let mut k =
        credit_risk::proto::classification_service_client::ClassificationServiceClient::connect(
            format!("http://{addr}"),
        )
        .await
        .unwrap();
    let stream = k
        .run_batch_scoring(pb::RunBatchScoringRequest::default())
        .await
        .unwrap()
        .into_inner();
    (child, addr, stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_run_killed_midway_leaves_the_previous_run_current() {
    let tmp = tempfile::tempdir().unwrap();
    // --demo loads a generated city of 20,000 and scores it: run 1 is current. Run 2 is
    // then held at its 10,000th enterprise (hit 30,000 of the scan's fault point), so the
    // kill lands mid-way on any machine speed.
    // Start a new run; once its scan reports progress past the middle it is held there.
    let (mut child, _, mut stream) =
        demo_and_a_pass(tmp.path(), 20_000, "batch.scan:30000:hold").await;
    let held = tokio::time::timeout(std::time::Duration::from_secs(120), async {
        while let Ok(Some(ev)) = stream.message().await {
            if let Some(pb::batch_scoring_event::Event::Progress(p)) = &ev.event {
                if p.processed >= 9_000 {
                    return Some(p.processed);
                }
            }
        }
        None
    })
    .await;
    assert!(
        matches!(held, Ok(Some(_))),
        "the run did not reach its hold point: {held:?}"
    );
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    while let Ok(Some(ev)) = stream.message().await {
        assert!(
            !matches!(ev.event, Some(pb::batch_scoring_event::Event::Done(_))),
            "the run finished before the kill: the hold point did not hold"
        );
    }
    let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    let runs = store.runs().unwrap();
    let current = store.current_run().unwrap().expect("a current run");
    // The demo scored run 1 (general) and run 2 (food); the killed run is the newest.
    assert_eq!(current.run.id, 1, "{runs:?}");
    let killed = &runs[0];
    assert!(killed.id > 2, "{runs:?}");
    assert_eq!(killed.state, credit_risk::store::RunState::Aborted);
    let food = store.current_run_of("food").unwrap().expect("the food run");
    assert_eq!(food.run.id, 2, "{runs:?}");
    assert!(store.check_indexes().unwrap() >= 20_000);
    assert!(store.verify_audit_chain().unwrap().1.is_none());
}

/// A kill after a pass's runs are current and its stream has ended, before their spot
/// bases are stored (held at `batch.spot_base`), leaves the new run current; the open
/// rebuilds its spot index from the dossiers, and the selector answers as the server did
/// before the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_before_a_runs_spot_base_is_stored_rebuilds_the_index_alike() {
    use credit_risk::{domain::Date, store::spot::CandidateFilter};
    let tmp = tempfile::tempdir().unwrap();
    // --demo scores its city, and that pass's tail is over, before the server starts
    // and arms the point: the pass below is its first hit.
    let (mut child, addr, stream) =
        demo_and_a_pass(tmp.path(), 3_000, "batch.spot_base:1:hold").await;
    let run = scoring_done(stream)
        .await
        .expect("the pass finished its run")
        .run_id;
    // The pool as the live server answers it, exempt enterprises marked.
    let mut spot = credit_risk::proto::spot_check_service_client::SpotCheckServiceClient::connect(
        format!("http://{addr}"),
    )
    .await
    .unwrap();
    let every = pb::CandidateFilter {
        include_exempt: true,
        ..Default::default()
    };
    let live: Vec<(String, i32, bool)> = candidates(&mut spot, every)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.uscc, c.risk_class, c.exempt))
        .collect();
    assert!(
        live.len() > 2_000 && live.iter().any(|c| c.2),
        "{}",
        live.len()
    );
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    let current = store.current_run().unwrap().expect("a current run");
    assert_eq!(current.run.id, run, "the pass's run stays current");
    // Only the demo's food run has a stored base: the new run's index was rebuilt.
    let food = store.current_run_of("food").unwrap().expect("the food run");
    assert_eq!(store.check_spot_bases().unwrap(), food.entries.len() as u64);
    let all = CandidateFilter {
        include_exempt: true,
        ..Default::default()
    };
    let (_, reopened) = store.spot_candidates(&all, Date::today()).unwrap();
    let reopened: Vec<(String, i32, bool)> = reopened
        .iter()
        .map(|c| {
            (
                c.uscc.to_string(),
                c.class.index() as i32 + 1,
                c.exemption.is_some(),
            )
        })
        .collect();
    assert_eq!(reopened, live);
}

/// Waits (at most 30 s) for the child to exit.
async fn wait_exit(child: &mut Child, what: &str) -> std::process::ExitStatus {
    for _ in 0..600 {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    panic!("server still running 30 s after {what}");
}

/// Watches the server's overall health; returns the statuses seen until the stream ends.
fn watch_health(
    addr: std::net::SocketAddr,
) -> tokio::task::JoinHandle<Vec<tonic_health::pb::health_check_response::ServingStatus>> {
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    tokio::spawn(async move {
        let mut seen = Vec::new();
        let Ok(ch) = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
        else {
            return seen;
        };
        let Ok(st) = HealthClient::new(ch)
            .watch(HealthCheckRequest {
                service: "creditrisk.v1.RegistryService".into(),
            })
            .await
        else {
            return seen;
        };
        let mut st = st.into_inner();
        while let Ok(Some(m)) = st.message().await {
            seen.push(m.status());
        }
        seen
    })
}

/// A panic injected in the writer at each point fails closed: the failing write is not
/// acknowledged, health turns NOT_SERVING, the process exits non-zero, and a restart
/// finds every acknowledged write and consistent indexes and audit chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_faults_fail_closed() {
    use tonic_health::pb::health_check_response::ServingStatus;
    for (n, point) in [
        "writer.before_apply:400",
        "writer.after_apply:40",
        "writer.after_flush:40",
    ]
    .into_iter()
    .enumerate()
    {
        let tmp = tempfile::tempdir().unwrap();
        let (mut child, addr) = spawn_server_with(tmp.path(), Some(point));
        let client = connect(addr).await;
        let health = watch_health(addr);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let tasks = spawn_writers(&client, 1_000_000 * (n as u32 + 1), 200);
        let (acknowledged, stops) = join_writers(tasks).await;
        let exit = wait_exit(&mut child, point).await;
        assert!(
            !exit.success(),
            "{point}: the server exited 0 after a fault"
        );
        assert!(!stops.is_empty(), "{point}: no write was refused");
        for s in &stops {
            assert!(server_went_away(s), "{point}: a writer stopped with {s:?}");
        }
        let seen = health.await.unwrap();
        assert_eq!(
            seen.first(),
            Some(&ServingStatus::Serving),
            "{point}: {seen:?}"
        );
        assert!(
            seen.contains(&ServingStatus::NotServing),
            "{point}: health never turned NOT_SERVING: {seen:?}"
        );
        let _found = assert_all_present(tmp.path(), &acknowledged, point);
    }
}

/// A panic in the scoring job marks its run aborted, clears "run in progress", fails
/// the caller's stream and stops the server (non-zero); after a restart a new run works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoring_job_panic_aborts_the_run_and_stops_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_server_with(tmp.path(), Some("batch.scan:150"));
    let mut c = connect(addr).await;
    for i in 0..300 {
        put_enterprise(&mut c, enterprise(&uscc_n(b'1', 7_000 + i))).await;
    }
    let mut k = pb::classification_service_client::ClassificationServiceClient::connect(format!(
        "http://{addr}"
    ))
    .await
    .unwrap();
    let r = async {
        let st = k
            .run_batch_scoring(pb::RunBatchScoringRequest::default())
            .await?
            .into_inner();
        crate::common::scoring_done(st).await
    }
    .await;
    assert!(r.is_err(), "the run completed despite the fault: {r:?}");
    let exit = wait_exit(&mut child, "batch.scan").await;
    assert!(!exit.success(), "the server exited 0 after a job fault");
    let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    let runs = store.runs().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].state, credit_risk::store::RunState::Aborted);
    assert!(runs[0].error.contains("panicked"), "{}", runs[0].error);
    assert_eq!(store.building_run().unwrap(), None);
    drop(store);
    let (mut child, addr) = spawn_server(tmp.path());
    let mut k = pb::classification_service_client::ClassificationServiceClient::connect(format!(
        "http://{addr}"
    ))
    .await
    .unwrap();
    let st = k
        .run_batch_scoring(pb::RunBatchScoringRequest::default())
        .await
        .unwrap()
        .into_inner();
    crate::common::scoring_done(st)
        .await
        .expect("a complete run");
    let _ = child.kill();
    let _ = child.wait();
}

/// Closing the store with a full queue: every accepted write is applied and answered
/// (none is dropped unanswered), and a write after the close is UNAVAILABLE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_with_a_full_queue_answers_every_accepted_write() {
    use credit_risk::{
        domain::Uscc,
        server::service::convert,
        store::{op, Actor},
    };
    let tmp = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        queue_depth: 64,
        max_group: 8,
        ..StoreOptions::default()
    };
    let store = Store::open(tmp.path(), opts.clone()).unwrap();
    let mut tickets = Vec::new();
    for i in 0..500u32 {
        let e = convert::enterprise(&enterprise(&uscc_n(b'1', 40_000 + i))).unwrap();
        let st = store.clone();
        // Enqueue from tasks: with a 64-deep queue most of them wait to get in.
        tickets.push(tokio::spawn(async move {
            let t = st
                .enqueue_as(Actor::system("test"), op::UpsertEnterprise(e), None, None)
                .await?;
            t.await.map(|_| ())
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let closer = {
        let st = store.clone();
        tokio::task::spawn_blocking(move || st.close(std::time::Duration::from_secs(30)))
    };
    let (mut applied, mut refused) = (0u64, 0u64);
    for t in tickets {
        match t.await.unwrap() {
            Ok(()) => applied += 1,
            Err(credit_risk::Error::Unavailable(m)) => {
                assert!(m.contains("closing"), "{m}");
                refused += 1;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    closer.await.unwrap().unwrap();
    assert_eq!(applied + refused, 500);
    assert!(applied > 0);
    let late = convert::enterprise(&enterprise(&uscc_n(b'1', 49_999))).unwrap();
    let err = store
        .enqueue_as(
            Actor::system("test"),
            op::UpsertEnterprise(late),
            None,
            None,
        )
        .await
        .err()
        .expect("a write after close is refused");
    assert!(matches!(err, credit_risk::Error::Unavailable(_)));
    drop(store);
    let store = Store::open(tmp.path(), opts).unwrap();
    assert_eq!(store.enterprise_count(), applied);
    let present = (0..500u32)
        .filter(|i| {
            let u = Uscc::parse(&uscc_n(b'1', 40_000 + i)).unwrap();
            store.enterprise(&u).unwrap().is_some()
        })
        .count() as u64;
    assert_eq!(present, applied, "every answered write is stored, no other");
}

/// The writer reads its set of selected enterprises (`K` keys) on its own thread, off
/// the open's path: a damaged selection key no longer stops the open, but it fails the
/// writer closed — every write is UNAVAILABLE, and the fault signal
/// (health NOT_SERVING, the server exits) says why; reads keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_selection_index_fails_writes_closed() {
    use credit_risk::{
        server::service::convert,
        store::{op, stats, Actor},
    };
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    let e = convert::enterprise(&enterprise(&uscc_n(b'1', 7))).unwrap();
    store
        .write_as(Actor::system("test"), op::UpsertEnterprise(e))
        .await
        .unwrap();
    store.close(std::time::Duration::from_secs(5)).unwrap();
    drop(store);
    {
        let db = open_sled_directly(tmp.path());
        let reg = db.open_tree("registry").unwrap();
        reg.insert([stats::DRAWN, b'?'], &b""[..]).unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    let u = credit_risk::domain::Uscc::parse(&uscc_n(b'1', 7)).unwrap();
    assert!(store.enterprise(&u).unwrap().is_some(), "reads still work");
    // The index is read beside the writer, which signals the fault as soon as it fails.
    let mut fault = store.fault();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        fault.wait_for(|f| f.is_some()),
    )
    .await
    .expect("the damaged index is found")
    .unwrap();
    assert_writes_fail_closed(&store, "bad selection key").await;
    assert!(store.enterprise(&u).unwrap().is_some(), "reads still work");
}

/// A draw is acknowledged with its selections still to index; a `kill -9` while the
/// writer indexes them (held at its first chunk) loses nothing: the restarted server
/// indexes them, and the statistics and indexes agree with the records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_while_a_draws_selections_are_indexed_loses_nothing() {
    use credit_risk::proto::{
        classification_service_client::ClassificationServiceClient,
        spot_check_service_client::SpotCheckServiceClient,
    };
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_server_with(tmp.path(), Some("writer.index_step:1:hold"));
    let mut c = connect(addr).await;
    for i in 0..40 {
        put_enterprise(&mut c, enterprise(&uscc_n(b'1', 9_000 + i))).await;
    }
    let mut k = ClassificationServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    score_now(&mut k).await;
    let mut spot = SpotCheckServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let strata = (1..=4)
        .map(|cl| pb::Stratum {
            risk_class: cl,
            size: Some(pb::stratum::Size::Ratio(1.0)),
        })
        .collect();
    let plan = spot
        .plan_draw(pb::PlanDrawRequest {
            task_id: "SC-KILL-1".into(),
            filter: Some(pb::CandidateFilter::default()),
            strata,
            override_reason: "test: every enterprise".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let drawn = spot
        .draw_sample(pb::DrawSampleRequest {
            plan_id: plan.plan_id,
            seed: "kill".into(),
            ..Default::default()
        })
        .await
        .expect("the draw is acknowledged before its selections are indexed")
        .into_inner();
    let selected: usize = drawn.strata.iter().map(|s| s.selected.len()).sum();
    assert!(selected >= 30, "selected {selected}");
    // The writer now holds at its first chunk: kill -9 there.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    {
        let store = Store::open(
            tmp.path(),
            StoreOptions {
                index_chunk: 0,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            store.selections_to_index().unwrap(),
            selected as u64,
            "the draw's marker survived, its selections unindexed"
        );
        store.check_indexes().expect("consistent before indexing");
        store.close(std::time::Duration::from_secs(10)).unwrap();
    }
    let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    let t = std::time::Instant::now();
    while store.selections_to_index().unwrap() > 0 {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(20),
            "not indexed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    store.check_indexes().expect("consistent once indexed");
    let plan = store.draw_plan(plan.plan_id).unwrap().expect("the plan");
    assert!(plan.receipt.is_some(), "the acknowledged draw is stored");
}
