//! Test harness: the real server on an ephemeral loopback port, and record builders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use credit_risk::{
    domain::{uscc, Uscc},
    proto::{self as pb, registry_service_client::RegistryServiceClient},
    server,
    server::config::ServerConfig,
    store::{Store, StoreOptions},
};
use tonic::transport::Channel;

/// The registry client.
pub type RegistryClient = RegistryServiceClient<Channel>;

/// A running server and a client connected to it.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub client: RegistryServiceClient<Channel>,
    pub store: Store,
    pub dir: PathBuf,
    /// Where `GET /metrics` is served, if started with metrics.
    pub metrics_addr: Option<std::net::SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _tmp: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts a server on a fresh temporary store.
    pub async fn start() -> TestServer {
        TestServer::start_with_config(|_| {}).await
    }

    /// Starts a server on a fresh store with `auth` configured.
    pub async fn start_with_auth(auth: credit_risk::server::auth::AuthConfig) -> TestServer {
        TestServer::start_with_config(|c| c.auth = auth).await
    }

    /// Starts a server with its Prometheus endpoint on another ephemeral port.
    pub async fn start_with_metrics() -> TestServer {
        TestServer::start_fresh(true, |_| {}).await
    }

    /// Starts a server on the store at `dir` (kept by the caller).
    pub async fn start_at(dir: &Path) -> TestServer {
        TestServer::start_configured(dir, false, |_| {}).await
    }

    /// Starts a server with a fresh store and a changed configuration.
    pub async fn start_with_config(change: impl FnOnce(&mut ServerConfig)) -> TestServer {
        TestServer::start_fresh(false, change).await
    }

    /// Starts a server on a fresh store whose clock stands on `today` (noon, Shanghai).
    pub async fn start_on(today: credit_risk::domain::Date) -> TestServer {
        let tmp = tempfile::tempdir().expect("tempdir");
        let options = StoreOptions {
            clock: credit_risk::domain::Clock::fixed(today),
            ..StoreOptions::default()
        };
        let mut s = TestServer::start_configured_with(tmp.path(), options, false, |_| {}).await;
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server on the store at `dir` (kept by the caller) with its clock on
    /// `today` (noon, Shanghai).
    pub async fn start_at_on(dir: &Path, today: credit_risk::domain::Date) -> TestServer {
        let options = StoreOptions {
            clock: credit_risk::domain::Clock::fixed(today),
            ..StoreOptions::default()
        };
        TestServer::start_configured_with(dir, options, false, |_| {}).await
    }

    /// Starts a server on the store at `dir` (kept by the caller) with its clock on
    /// `today` and store options changed by `change`.
    pub async fn start_at_on_with(
        dir: &Path,
        today: credit_risk::domain::Date,
        change: impl FnOnce(&mut StoreOptions),
    ) -> TestServer {
        let mut options = StoreOptions {
            clock: credit_risk::domain::Clock::fixed(today),
            ..StoreOptions::default()
        };
        change(&mut options);
        TestServer::start_configured_with(dir, options, false, |_| {}).await
    }

    /// Starts a server on a fresh store with its options changed by `store` and the
    /// server's configuration by `config`.
    pub async fn start_fresh_with(
        store: impl FnOnce(&mut StoreOptions),
        config: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut options = StoreOptions::default();
        store(&mut options);
        let mut s = TestServer::start_configured_with(tmp.path(), options, false, config).await;
        s._tmp = Some(tmp);
        s
    }

    /// The one constructor of a fresh temporary store: every other delegates here or to
    /// [`TestServer::start_configured`].
    async fn start_fresh(metrics: bool, change: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = TestServer::start_configured(&dir, metrics, change).await;
        s._tmp = Some(tmp);
        s
    }

    async fn start_configured(
        dir: &Path,
        metrics: bool,
        change: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        TestServer::start_configured_with(dir, StoreOptions::default(), metrics, change).await
    }

    async fn start_configured_with(
        dir: &Path,
        options: StoreOptions,
        metrics: bool,
        change: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        let store = Store::open(dir, options).expect("open store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let metrics_listener = if metrics {
            Some(
                tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind metrics"),
            )
        } else {
            None
        };
        let metrics_addr = metrics_listener
            .as_ref()
            .map(|l| l.local_addr().expect("metrics addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let mut cfg = ServerConfig {
            listen: addr.to_string(),
            data_dir: dir.to_path_buf(),
            ..ServerConfig::default()
        };
        change(&mut cfg);
        let st = store.clone();
        let task = tokio::spawn(async move {
            server::run_with_metrics(&cfg, st, listener, metrics_listener, async move {
                let _ = stopped.await;
            })
            .await
            .expect("server ran");
        });
        let client = connect(addr).await;
        TestServer {
            addr,
            client,
            store,
            dir: dir.to_path_buf(),
            metrics_addr,
            stop: Some(stop),
            task: Some(task),
            _tmp: None,
        }
    }

    /// Stops the server gracefully and waits for the store to close.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task");
        }
        self._tmp.take()
    }
}

/// Connects a client, retrying briefly while the server starts.
pub async fn connect(addr: std::net::SocketAddr) -> RegistryServiceClient<Channel> {
    for _ in 0..100 {
        if let Ok(c) = RegistryServiceClient::connect(format!("http://{addr}")).await {
            return c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("server at {addr} did not come up");
}

/// A valid USCC of category `cat` ('1' enterprise, '2' individual, '3' cooperative)
/// numbered `n`.
pub fn uscc_n(cat: u8, n: u32) -> String {
    let mut body = *b"MA000000";
    let mut x = n;
    for c in body[2..].iter_mut().rev() {
        *c = uscc::ALPHABET[(x % 31) as usize];
        x /= 31;
    }
    let prefix = [b'9', cat, b'3', b'1', b'0', b'1', b'1', b'5'];
    Uscc::assemble(&prefix, &body).expect("valid").to_string()
}

/// An operating enterprise in Pudong.
pub fn enterprise(uscc: &str) -> pb::Enterprise {
    let entity_type = match uscc.as_bytes()[1] {
        b'2' => pb::EntityType::IndividualBusiness,
        b'3' => pb::EntityType::FarmerCooperative,
        _ => pb::EntityType::Enterprise,
    };
    pb::Enterprise {
        uscc: uscc.into(),
        name: "上海测试贸易有限公司".into(),
        entity_type: entity_type as i32,
        region_code: "310115".into(),
        industry_section: "F".into(),
        industry_code: "5131".into(),
        established_on: "2018-04-02".into(),
        status: pb::EnterpriseStatus::Operating as i32,
        registered_capital_fen: 100_000_000,
        supervision_flags: vec![pb::SupervisionFlag::Food as i32],
        legal_rep_id_hash: String::new(),
        recorded_at: None,
    }
}

/// An ordinary-procedure fine of `yuan`.
pub fn fine(uscc: &str, decision: &str, decided_on: &str, yuan: i64) -> pb::Penalty {
    pb::Penalty {
        decision_number: decision.into(),
        uscc: uscc.into(),
        decided_on: decided_on.into(),
        authority: "上海市浦东新区市场监督管理局".into(),
        domain: pb::ViolationDomain::Advertising as i32,
        procedure: pb::PenaltyProcedure::Ordinary as i32,
        kinds: vec![pb::PenaltyKind::Fine as i32],
        fine_fen: yuan * 100,
        confiscation_fen: 0,
        heavier: false,
        restriction_ends_on: String::new(),
        no_penalty: false,
        publicity: None,
        recorded_at: None,
        published_on: String::new(),
        lenience: pb::Lenience::None as i32,
        first_violation: false,
    }
}

/// Upserts an enterprise, panicking on failure.
pub async fn put_enterprise(c: &mut RegistryServiceClient<Channel>, e: pb::Enterprise) {
    c.upsert_enterprise(pb::UpsertEnterpriseRequest {
        request_id: String::new(),
        enterprise: Some(e),
    })
    .await
    .expect("upsert");
}

/// Whether `python3` can import `modules` (comma-separated). When it cannot and the
/// environment requires Python — `require_var` = 1, or `CI` set — this fails the test
/// instead of letting it skip; elsewhere the caller skips with a note. Only the import is
/// probed here: a script that then fails is a failure, never read as "Python missing".
pub fn python_has(modules: &str, require_var: &str) -> bool {
    let probe = std::process::Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output();
    if matches!(&probe, Ok(out) if out.status.success()) {
        return true;
    }
    let required = std::env::var(require_var).is_ok_and(|v| v == "1")
        || std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    assert!(
        !required,
        "python3 cannot import {modules} ({require_var} or CI is set): {probe:?}"
    );
    eprintln!(
        "note: python3 cannot import {modules}; skipped (install examples/python/requirements.txt)"
    );
    false
}

/// Reads a `RunBatchScoring` stream to its end: progress must go forward, and the run's
/// summary (the `done` event) is returned; a stream that ends without one is an error.
pub async fn scoring_done(
    events: tonic::Streaming<pb::BatchScoringEvent>,
) -> Result<pb::ScoringRun, tonic::Status> {
    let mut done = scoring_all(events).await?;
    done.pop()
        .ok_or_else(|| tonic::Status::internal("the scoring stream ended without a summary"))
}

/// Runs a batch scoring with the defaults (today, the active models) and reads it to
/// its end: the run's summary.
pub async fn score_now(
    k: &mut pb::classification_service_client::ClassificationServiceClient<Channel>,
) -> pb::ScoringRun {
    let events = k
        .run_batch_scoring(pb::RunBatchScoringRequest::default())
        .await
        .expect("RunBatchScoring")
        .into_inner();
    scoring_done(events).await.expect("a finished run")
}

/// Reads a `RunBatchScoring` stream of several runs (`all_families`) to its end, with
/// the checks of [`scoring_done`]: every run's summary, in order.
pub async fn scoring_all(
    mut events: tonic::Streaming<pb::BatchScoringEvent>,
) -> Result<Vec<pb::ScoringRun>, tonic::Status> {
    let mut last = 0;
    let mut done = Vec::new();
    while let Some(ev) = events.message().await? {
        match ev.event {
            Some(pb::batch_scoring_event::Event::Progress(p)) => {
                assert!(p.processed >= last, "progress goes forward");
                assert!(p.processed <= p.total, "progress within its total: {p:?}");
                last = p.processed;
            }
            Some(pb::batch_scoring_event::Event::Done(r)) => done.push(r),
            None => panic!("empty scoring event"),
        }
    }
    if done.is_empty() {
        return Err(tonic::Status::internal(
            "the scoring stream ended without a summary",
        ));
    }
    Ok(done)
}

/// The audit events about one enterprise, in order (AuditService.ListAuditEvents).
pub async fn audit_of(addr: std::net::SocketAddr, uscc: &str) -> Vec<pb::AuditEvent> {
    let mut a = pb::audit_service_client::AuditServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let mut st = a
        .list_audit_events(pb::ListAuditEventsRequest {
            uscc: uscc.into(),
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_inner();
    let mut events = Vec::new();
    while let Some(e) = st.message().await.expect("an event") {
        events.push(e);
    }
    events
}

/// Adds `authorization: Bearer TOKEN` to every call (none for `None`).
#[derive(Clone)]
pub struct Bearer(pub Option<&'static str>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = self.0 {
            let v: tonic::metadata::MetadataValue<_> = format!("Bearer {t}")
                .parse()
                .map_err(|_| tonic::Status::internal("header"))?;
            r.metadata_mut().insert("authorization", v);
        }
        Ok(r)
    }
}

/// Starts this build's `credit-risk serve --listen 127.0.0.1:0 --data-dir DIR ARGS…`
/// as a process (with `env`), and waits for its `listening on` line: the child and its
/// address.
pub fn spawn_serve(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, std::net::SocketAddr) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_credit-risk"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .env_remove("CREDIT_RISK_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start credit-risk serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
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

/// The store's sled database opened directly, to damage or age it behind the store's
/// back (sled's background threads release the directory lock shortly after a drop).
pub fn open_sled_directly(dir: &std::path::Path) -> sled::Db {
    (0..100)
        .find_map(|_| {
            sled::open(dir)
                .map_err(|_| std::thread::sleep(std::time::Duration::from_millis(20)))
                .ok()
        })
        .expect("open the store directly")
}

/// A write to `store` is refused UNAVAILABLE (the writer failed closed), and the fault
/// signal names `cause`.
pub async fn assert_writes_fail_closed(store: &credit_risk::store::Store, cause: &str) {
    use credit_risk::store::{op, Actor};
    let e = credit_risk::server::service::convert::enterprise(&enterprise(&uscc_n(b'1', 99)))
        .expect("enterprise");
    let err = store
        .write_as(Actor::system("test"), op::UpsertEnterprise(e))
        .await
        .expect_err("no write once the writer failed closed");
    assert!(
        matches!(err, credit_risk::Error::Unavailable(_)),
        "unexpected {err}"
    );
    let fault = store.fault().borrow().clone().unwrap_or_default();
    assert!(fault.contains(cause), "the fault names {cause:?}: {fault}");
}

/// Every candidate `QueryCandidates` streams for `f` (as of today), through any client
/// (a bare channel, or one with a token interceptor).
pub async fn candidates<T>(
    spot: &mut pb::spot_check_service_client::SpotCheckServiceClient<T>,
    f: pb::CandidateFilter,
) -> Result<Vec<pb::Candidate>, tonic::Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let mut st = spot
        .query_candidates(pb::QueryCandidatesRequest {
            filter: Some(f),
            as_of: String::new(),
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(b) = st.message().await? {
        out.extend(b.candidates);
    }
    Ok(out)
}

/// Store options whose rule book adds a version from 2027-07-01 to the built-in one:
/// nothing in force today changes, but a store opened with it is under other rules (it
/// cannot trust what a run derived under the built-in book: its stored spot base, its
/// entries' empty explanations).
pub fn options_under_2027_rules() -> credit_risk::store::StoreOptions {
    use credit_risk::domain::ruleset::{RuleBook, BUILTIN_RULES};
    let text = BUILTIN_RULES
        .replace("shanghai-2022-07-01", "shanghai-2027-07-01")
        .replace("\"2022-07-01\"", "\"2027-07-01\"");
    credit_risk::store::StoreOptions {
        rules: RuleBook::with_files(&[("rules-2027.toml".into(), text)]).unwrap(),
        ..Default::default()
    }
}
