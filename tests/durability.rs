//! An acknowledged write survives `kill -9` of the server process.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use common::*;
use credit_risk::{
    proto as pb,
    store::{Store, StoreOptions},
};

fn spawn_server(dir: &std::path::Path) -> (Child, std::net::SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_credit-risk"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start credit-risk serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read start line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected start line {line:?}"))
        .parse()
        .expect("address");
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let mut acknowledged = Vec::new();
    // Kill points are random (printed, so a failure can be replayed by hand).
    let seed: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
    let delays: Vec<u64> = (0..3)
        .map(|_| rand::Rng::random_range(&mut rng, 150..1200))
        .collect();
    eprintln!("kill delays (ms) after the load starts: {delays:?} (seed {seed})");
    for round in 0..3u32 {
        let (mut child, addr) = spawn_server(tmp.path());
        let client = connect(addr).await;
        // 16 concurrent writers; kill while they are still writing.
        let mut tasks = Vec::new();
        for w in 0..16u32 {
            let mut c = client.clone();
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..10_000u32 {
                    let u = uscc_n(b'1', round * 1_000_000 + w * 10_000 + i);
                    let r = c
                        .upsert_enterprise(pb::UpsertEnterpriseRequest {
                            request_id: String::new(),
                            enterprise: Some(enterprise(&u)),
                        })
                        .await;
                    match r {
                        Ok(_) => acked.push(u),
                        Err(_) => break,
                    }
                }
                acked
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(delays[round as usize])).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        for t in tasks {
            acknowledged.extend(t.await.unwrap());
        }
    }
    assert!(
        acknowledged.len() > 100,
        "the load wrote something: {}",
        acknowledged.len()
    );
    let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    let mut missing = 0;
    for u in &acknowledged {
        let u = credit_risk::domain::Uscc::parse(u).unwrap();
        if store.enterprise(&u).unwrap().is_none() {
            missing += 1;
        }
    }
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged writes lost",
        acknowledged.len()
    );
    let checked = store.check_indexes().unwrap();
    let (events, broken) = store.verify_audit_chain().unwrap();
    assert!(
        broken.is_none(),
        "audit chain broken after kill -9: {broken:?}"
    );
    assert!(events > 0);
    assert!(checked >= acknowledged.len() as u64);
    eprintln!(
        "kills survived: 3, writes acknowledged: {}, found: {}",
        acknowledged.len(),
        acknowledged.len() - missing
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_flushes_and_exits_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_server(tmp.path());
    let client = connect(addr).await;
    let mut tasks = Vec::new();
    for w in 0..16u32 {
        let mut c = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut refused = None;
            for i in 0..100_000u32 {
                let u = uscc_n(b'1', w * 100_000 + i);
                let r = c
                    .upsert_enterprise(pb::UpsertEnterpriseRequest {
                        request_id: String::new(),
                        enterprise: Some(enterprise(&u)),
                    })
                    .await;
                match r {
                    Ok(_) => acked.push(u),
                    Err(s) => {
                        refused = Some(s.code());
                        break;
                    }
                }
            }
            (acked, refused)
        }));
    }
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
    let mut acknowledged = Vec::new();
    let mut refusals = Vec::new();
    for t in tasks {
        let (acked, refused) = t.await.unwrap();
        acknowledged.extend(acked);
        refusals.extend(refused);
    }
    // Writers stop only because the server went away, never on a write error.
    for code in &refusals {
        assert!(
            matches!(
                code,
                tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown
            ),
            "a writer was refused with {code:?} during shutdown"
        );
    }
    assert!(acknowledged.len() > 100, "{}", acknowledged.len());
    let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    let missing = acknowledged
        .iter()
        .filter(|u| {
            let u = credit_risk::domain::Uscc::parse(u).unwrap();
            store.enterprise(&u).unwrap().is_none()
        })
        .count();
    assert_eq!(missing, 0, "acknowledged writes lost after SIGTERM");
    assert!(store.check_indexes().unwrap() >= acknowledged.len() as u64);
    assert!(store.verify_audit_chain().unwrap().1.is_none());
    eprintln!(
        "SIGTERM under 16 writers: exited cleanly after {took:?}; {} writes acknowledged, all found",
        acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_run_killed_midway_leaves_the_previous_run_current() {
    let tmp = tempfile::tempdir().unwrap();
    // --demo loads a generated city and scores it: run 1 is current.
    let mut child = Command::new(env!("CARGO_BIN_EXE_credit-risk"))
        .args([
            "serve",
            "--demo",
            "20000",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(tmp.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start credit-risk serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("start line");
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("address")
        .parse()
        .unwrap();
    let mut k =
        credit_risk::proto::classification_service_client::ClassificationServiceClient::connect(
            format!("http://{addr}"),
        )
        .await
        .unwrap();
    // Start run 2 and kill the server as soon as it has begun.
    let mut stream = k
        .run_batch_scoring(pb::RunBatchScoringRequest::default())
        .await
        .unwrap()
        .into_inner();
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    while let Ok(Some(ev)) = stream.message().await {
        assert!(
            !matches!(ev.event, Some(pb::batch_scoring_event::Event::Done(_))),
            "the run finished before the kill; the city is too small for this machine"
        );
    }
    let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    let runs = store.runs().unwrap();
    let current = store.current_run().unwrap().expect("a current run");
    assert_eq!(current.run.id, 1, "{runs:?}");
    let killed = runs.iter().find(|r| r.id == 2).expect("run 2 recorded");
    assert_eq!(killed.state, credit_risk::store::RunState::Aborted);
    assert!(store.check_indexes().unwrap() >= 20_000);
    assert!(store.verify_audit_chain().unwrap().1.is_none());
}
