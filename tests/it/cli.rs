//! CLI habits: every subcommand's help carries an example; completions are generated.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_credit-risk");

fn run(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run the binary");
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn every_subcommand_help_shows_an_example() {
    let top = run(&["--help"]);
    let commands: Vec<&str> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 15, "{commands:?}");
    for c in commands {
        let help = run(&[c, "--help"]);
        assert!(
            help.contains("Example"),
            "`{c} --help` has no example:\n{help}"
        );
    }
}

#[test]
fn shell_completions_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["completions", shell]);
        assert!(script.contains("classify"), "{shell}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_prints_json_on_request() {
    use credit_risk::store::{Store, StoreOptions};
    let tmp = tempfile::tempdir().unwrap();
    let count = {
        let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
        credit_risk::server::demo::load(&store, 60).await.unwrap();
        let n = store.enterprise_count();
        store.close(std::time::Duration::from_secs(10)).unwrap();
        n
    };
    let dir = tmp.path().to_str().unwrap();
    let out = run(&["check", "--data-dir", dir, "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(v["enterprises"], count);
    assert_eq!(v["indexes_agree"], true);
    assert_eq!(v["audit_chain_intact"], true);
    assert!(v["audit_events"].as_u64().unwrap() > 0);
    let text = run(&["check", "--data-dir", dir]);
    assert!(text.contains("indexes agree"), "{text}");
}

/// `credit-risk compact` (issue 21 item 3): the same content (digest), a store that opens
/// with its seal, indexes and audit chain intact and keeps taking writes; refused on a
/// store in use and while an earlier compaction's old store is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_keeps_the_content_and_the_seal() {
    use credit_risk::store::{Store, StoreOptions};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let digest = {
        let store = Store::open(&data, StoreOptions::default()).unwrap();
        credit_risk::server::demo::load(&store, 300).await.unwrap();
        let d = store.content_digest().unwrap();
        // In use: refused, nothing touched.
        let busy = Command::new(BIN)
            .args(["compact", "--data-dir", data.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!busy.status.success());
        assert!(
            String::from_utf8_lossy(&busy.stderr).contains("in use"),
            "{busy:?}"
        );
        store.close(std::time::Duration::from_secs(10)).unwrap();
        d
    };
    let dir = data.to_str().unwrap();
    // A copy an interrupted compaction left behind is discarded.
    let stale = tmp.path().join("data.compacting");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("db"), b"half a copy").unwrap();
    let out = run(&["compact", "--data-dir", dir, "--json", "--keep-old"]);
    assert!(!stale.exists());
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(v["keys"], digest.0);
    assert_eq!(v["content_sha256"], digest.2.as_str());
    let kept = tmp.path().join("data.before-compact");
    assert_eq!(v["kept"], kept.to_str().unwrap());
    assert!(data.join("credit-risk.seal").exists());
    // A second compaction while the old store is kept: refused, naming it.
    let again = Command::new(BIN)
        .args(["compact", "--data-dir", dir])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("before-compact"),
        "{again:?}"
    );
    std::fs::remove_dir_all(&kept).unwrap();
    {
        let store = Store::open(&data, StoreOptions::default()).unwrap();
        assert_eq!(store.content_digest().unwrap(), digest);
        assert!(store.check_indexes().unwrap() > 0);
        assert!(store.verify_audit_chain().unwrap().1.is_none());
        store.close(std::time::Duration::from_secs(10)).unwrap();
    }
    // The compacted store serves and takes audited writes.
    let s = crate::common::TestServer::start_at(&data).await;
    let mut c = s.client.clone();
    crate::common::put_enterprise(&mut c, crate::common::enterprise("91310115MA1K3BTP2B")).await;
    s.stop().await;
    let text = run(&["compact", "--data-dir", dir]);
    assert!(text.contains("unchanged"), "{text}");
    assert!(!kept.exists());
    let check = run(&["check", "--data-dir", dir, "--json"]);
    let v: serde_json::Value = serde_json::from_str(check.trim()).expect("JSON");
    assert_eq!(v["audit_chain_intact"], true);
}

/// Development mode (no tokens) on a non-loopback address is refused before the server
/// announces an address (issue 15, probe 8): nothing waiting for "listening on" is
/// told it started.
#[test]
fn dev_mode_off_loopback_is_refused_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run the binary");
    assert!(!out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("listening on"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("server.auth"),
        "{out:?}"
    );
}

/// A damaged store never panics (issue 15, probe 5): with its `db` file cut to half,
/// `check` and `serve` exit with an error naming the store and what to do, not exit code
/// 101 with a panic from sled (nor, as a small store did, open a consistent earlier
/// state and call it intact).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_store_is_reported_not_panicked() {
    use credit_risk::store::{Store, StoreOptions};
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
        credit_risk::server::demo::load(&store, 200).await.unwrap();
        store.close(std::time::Duration::from_secs(10)).unwrap();
    }
    let db = tmp.path().join("db");
    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    for args in [
        vec!["check", "--data-dir"],
        vec!["serve", "--listen", "127.0.0.1:0", "--data-dir"],
    ] {
        let out = Command::new(BIN)
            .args(&args)
            .arg(tmp.path())
            .output()
            .expect("run the binary");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.contains("damaged"), "{args:?}: {err}");
        assert!(
            err.contains(&tmp.path().display().to_string()),
            "{args:?}: {err}"
        );
        assert!(err.contains("restore"), "{args:?}: {err}");
    }
    // With sled's files gone (a lost volume, a wrong mount), sled would start an empty
    // store without a word: the seal left beside them refuses it.
    for entry in std::fs::read_dir(tmp.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name() != Some(std::ffi::OsStr::new(credit_risk::store::seal::FILE)) {
            if path.is_dir() {
                std::fs::remove_dir_all(&path).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
    let out = Command::new(BIN)
        .args(["check", "--data-dir"])
        .arg(tmp.path())
        .output()
        .expect("run the binary");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("acknowledged writes are missing"), "{err}");
}

/// `draw` puts data on stdout in the proto JSON mapping (the plan without a seed, nothing
/// with `--out`), and `verify` re-checks the written receipt offline and through
/// VerifyDraw — and catches a receipt altered by one character.
#[tokio::test]
async fn draw_writes_a_receipt_that_verify_checks() {
    use credit_risk::proto::classification_service_client::ClassificationServiceClient;
    let s = crate::common::TestServer::start().await;
    let mut c = s.client.clone();
    for n in 0..12 {
        crate::common::put_enterprise(
            &mut c,
            crate::common::enterprise(&crate::common::uscc_n(b'1', 900 + n)),
        )
        .await;
    }
    let mut k = ClassificationServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    crate::common::score_now(&mut k).await;
    let addr = s.addr.to_string();
    let bin = |args: Vec<String>| {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args(&args)
                .args(["--server", &addr])
                .output()
                .expect("run the binary")
        })
    };
    // `score --all-families`: one summary per run, the general one first.
    let scored = bin(vec![
        "score".into(),
        "--all-families".into(),
        "--json".into(),
    ])
    .await
    .unwrap();
    assert!(scored.status.success(), "{scored:?}");
    let families: Vec<String> = String::from_utf8_lossy(&scored.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            v["model_family"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert_eq!(families, ["general", "food"]);
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    let plan = bin(vec![
        "draw".into(),
        "--task".into(),
        "CLI-1".into(),
        "--stratum".into(),
        "D:0.5".into(),
        "--override-reason".into(),
        "test".into(),
    ])
    .await
    .unwrap();
    assert!(plan.status.success(), "{plan:?}");
    let plan: serde_json::Value =
        serde_json::from_slice(&plan.stdout).expect("the plan as JSON on stdout");
    let id = plan["plan_id"].as_u64().expect("plan_id");
    let drawn = bin(vec![
        "draw".into(),
        "--plan".into(),
        id.to_string(),
        "--seed".into(),
        "20261203".into(),
        "--out".into(),
        d("receipt.json"),
        "--population-dir".into(),
        d("pops"),
    ])
    .await
    .unwrap();
    assert!(drawn.status.success(), "{drawn:?}");
    assert!(drawn.stdout.is_empty(), "with --out stdout stays quiet");
    let receipt = std::fs::read_to_string(d("receipt.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&receipt).unwrap();
    assert_eq!(v["strata"][0]["risk_class"], "RISK_CLASS_D");
    assert!(v["strata"][0]["k"].as_u64().is_some_and(|k| k > 0), "{v}");
    let ok = bin(vec![
        "verify".into(),
        d("receipt.json"),
        "--population-dir".into(),
        d("pops"),
    ])
    .await
    .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stderr)
        .contains("VerifyDraw: the server recomputes the same receipt"));
    // One ticket digit changed: both checks fail.
    let t = v["strata"][0]["selected"][0]["ticket"]
        .as_str()
        .unwrap()
        .to_string();
    let mut bad = t.clone();
    let last = bad.pop().unwrap();
    bad.push(if last == '1' { '2' } else { '1' });
    std::fs::write(d("bad.json"), receipt.replace(&t, &bad)).unwrap();
    let no = bin(vec![
        "verify".into(),
        d("bad.json"),
        "--population-dir".into(),
        d("pops"),
    ])
    .await
    .unwrap();
    assert!(!no.status.success(), "{no:?}");
    let err = String::from_utf8_lossy(&no.stderr);
    assert!(
        err.contains("selects differently") && err.contains("VerifyDraw"),
        "{err}"
    );
    std::fs::write(d("not.json"), "{\"class\": \"A\"}").unwrap();
    let not = bin(vec![
        "verify".into(),
        d("not.json"),
        "--offline".into(),
        "--population-dir".into(),
        d("pops"),
    ])
    .await
    .unwrap();
    assert!(!not.status.success());
    assert!(
        String::from_utf8_lossy(&not.stderr).contains("not.json: not a creditrisk.v1.DrawReceipt"),
        "{not:?}"
    );
    // A plan naming check items: `--population-dir` writes each item's population and
    // `verify` re-checks the items offline, finding a selected enterprise whose item
    // list was cut.
    let joint = bin(vec![
        "draw".into(),
        "--task".into(),
        "CLI-J".into(),
        "--item".into(),
        "SC-GS-01".into(),
        "--item".into(),
        "SC-SP-01".into(),
        "--stratum".into(),
        "D:1.0".into(),
        "--seed".into(),
        "20261203".into(),
        "--out".into(),
        d("joint.json"),
        "--population-dir".into(),
        d("pops2"),
    ])
    .await
    .unwrap();
    assert!(joint.status.success(), "{joint:?}");
    let ok = bin(vec![
        "verify".into(),
        d("joint.json"),
        "--offline".into(),
        "--population-dir".into(),
        d("pops2"),
    ])
    .await
    .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    assert!(
        String::from_utf8_lossy(&ok.stderr).contains("check item SC-SP-01: population of"),
        "{ok:?}"
    );
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d("joint.json")).unwrap()).unwrap();
    let first = &mut v["strata"][0]["selected"][0]["check_items"];
    assert_eq!(first.as_array().map(Vec::len), Some(2), "{v}");
    *first = serde_json::json!(["SC-GS-01"]);
    std::fs::write(d("cut.json"), v.to_string()).unwrap();
    let no = bin(vec![
        "verify".into(),
        d("cut.json"),
        "--offline".into(),
        "--population-dir".into(),
        d("pops2"),
    ])
    .await
    .unwrap();
    assert!(!no.status.success(), "{no:?}");
    assert!(
        String::from_utf8_lossy(&no.stderr).contains("names items"),
        "{no:?}"
    );
    s.stop().await;
}

/// Errors say what was wrong and what to do, and the exit status says which kind:
/// 1 an error, 2 usage, 3 records refused (issue 20, item 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_actionable_and_exit_codes_documented() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env_remove("CREDIT_RISK_SERVER")
            .output()
            .expect("run the binary");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // No server: where, why, and what to set.
    let (code, err) = run(&["classify", "91310115MA1K3YJ12X", "--server", "127.0.0.1:9"]);
    assert_eq!(code, Some(1), "{err}");
    for part in [
        "cannot reach 127.0.0.1:9",
        "refused",
        "--server",
        "$CREDIT_RISK_SERVER",
    ] {
        assert!(err.contains(part), "{part}: {err}");
    }
    // A file that is not what the command reads is named.
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("hostname.txt");
    std::fs::write(&junk, "not a record stream\n").unwrap();
    let s = crate::common::TestServer::start().await;
    let addr = s.addr.to_string();
    let (code, err) = run(&["import", junk.to_str().unwrap(), "--server", &addr]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("hostname.txt") && err.contains("record 1"),
        "{err}"
    );
    let missing = tmp.path().join("missing.txt");
    let (code, err) = run(&["match", missing.to_str().unwrap(), "--server", &addr]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("missing.txt"), "{err}");
    // A server refusal prints as CODE: message.
    let valid = crate::common::uscc_n(b'1', 1);
    let (code, err) = run(&["classify", &valid, "--server", &addr]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.starts_with("error: FAILED_PRECONDITION: "), "{err}");
    // Usage errors are clap's: status 2.
    let (code, _) = run(&["classify"]);
    assert_eq!(code, Some(2));
    // Some records refused: status 3, after the summary.
    let city = tmp.path().join("city.bin");
    let (code, err) = run(&[
        "generate",
        "--enterprises",
        "50",
        "--seed",
        "7",
        "--out",
        city.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = run(&["import", city.to_str().unwrap(), "--server", &addr]);
    assert_eq!(code, Some(0), "a clean import: {err}");
    // The same file into a store whose clock is years earlier: records dated after its
    // today are refused.
    let early = crate::common::TestServer::start_on(
        credit_risk::domain::Date::parse("d", "2024-01-02").unwrap(),
    )
    .await;
    let (code, err) = run(&[
        "import",
        city.to_str().unwrap(),
        "--server",
        &early.addr.to_string(),
    ]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("records refused"), "{err}");
    // The store of a running server is named as in use.
    let (code, err) = run(&["check", "--data-dir", s.dir.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("in use by another process"), "{err}");
    s.stop().await;
    early.stop().await;
}

/// Logs redirected to a file carry no ANSI colour codes; with `--log-json` standard error
/// is JSON lines only (the loud warnings go to the log, not beside it) (issue 20, item 5).
#[test]
fn redirected_logs_are_plain_and_json_logs_are_pure() {
    use std::io::{BufRead, BufReader};
    for json in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(tmp.path())
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if json {
            cmd.arg("--log-json");
        }
        let mut child = cmd.spawn().expect("start serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("listening on"), "{line}");
        // The warnings follow the start line (the server is set up after binding).
        std::thread::sleep(std::time::Duration::from_millis(800));
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains('\u{1b}'),
            "ANSI codes in a redirected log: {err}"
        );
        assert!(err.to_lowercase().contains("development mode"), "{err}");
        if json {
            for l in err.lines().filter(|l| !l.trim().is_empty()) {
                assert!(
                    serde_json::from_str::<serde_json::Value>(l).is_ok(),
                    "not a JSON line: {l}"
                );
            }
        }
    }
}

/// `serve --access-log`: one line per RPC with its path, status code, duration and
/// principal (the token's name — also when its role may not call the RPC — and `-`
/// before authentication), never the token itself (issue 20, item 5).
#[tokio::test]
async fn the_access_log_has_one_line_per_rpc_and_no_token() {
    use credit_risk::proto::{self as pb, registry_service_client::RegistryServiceClient};
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.toml");
    // sha256("feed-secret")
    std::fs::write(
        &config,
        "[server]\nshutdown_grace_secs = 1\n\n[[server.auth.tokens]]\nname = \"feed\"\nsha256 = \"4bc7089f2b26791c803bafd109d8433a6cd22c42477c8af3ae172fa875096dde\"\nrole = \"feed\"\n",
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--access-log",
            "--log-json",
        ])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let mut c = RegistryServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let ask = |token: Option<&str>| {
        let mut r = tonic::Request::new(pb::GetEnterpriseRequest {
            uscc: crate::common::uscc_n(b'1', 7),
        });
        if let Some(t) = token {
            r.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        r
    };
    let denied = c.get_enterprise(ask(None)).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::Unauthenticated);
    let answered = c.get_enterprise(ask(Some("feed-secret"))).await;
    assert!(answered.is_err(), "no such enterprise yet");
    // A known token whose role may not call the RPC: refused, and the line names it.
    let mut audit = credit_risk::proto::audit_service_client::AuditServiceClient::connect(format!(
        "http://{addr}"
    ))
    .await
    .unwrap();
    let mut r = tonic::Request::new(pb::ListAuditEventsRequest::default());
    r.metadata_mut()
        .insert("authorization", "Bearer feed-secret".parse().unwrap());
    let refused = audit.list_audit_events(r).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    drop(c);
    drop(audit);
    std::thread::sleep(std::time::Duration::from_millis(300));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("feed-secret"), "a token in the log: {err}");
    let access: Vec<serde_json::Value> = err
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "credit_risk::access")
        .collect();
    assert_eq!(access.len(), 3, "{err}");
    let f =
        |v: &serde_json::Value, k: &str| v["fields"][k].as_str().unwrap_or_default().to_string();
    assert_eq!(
        f(&access[0], "rpc"),
        "/creditrisk.v1.RegistryService/GetEnterprise"
    );
    assert_eq!(f(&access[0], "code"), "UNAUTHENTICATED");
    assert_eq!(f(&access[0], "principal"), "-");
    assert_eq!(f(&access[1], "code"), "NOT_FOUND");
    assert_eq!(f(&access[1], "principal"), "feed");
    assert_eq!(
        f(&access[2], "rpc"),
        "/creditrisk.v1.AuditService/ListAuditEvents"
    );
    assert_eq!(f(&access[2], "code"), "PERMISSION_DENIED");
    assert_eq!(f(&access[2], "principal"), "feed");
    assert!(access[1]["fields"]["ms"]
        .as_f64()
        .is_some_and(|ms| ms >= 0.0));
}

/// The benchmark's echo in a process of its own (`bench-echo`, hidden) answers `load
/// --rpc echo-served`, every call; it serves loopback only and stops by itself.
#[test]
fn the_echo_serves_from_a_process_of_its_own() {
    let dir = tempfile::tempdir().expect("temp dir");
    let city = dir.path().join("city.bin");
    let city = city.to_str().expect("utf-8 path");
    run(&[
        "generate",
        "--enterprises",
        "300",
        "--seed",
        "7",
        "--out",
        city,
    ]);
    // A port already taken: refused naming the flag.
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to hold");
    let taken = held.local_addr().expect("its address").to_string();
    for (args, why) in [
        (["--listen", "0.0.0.0:0", "--seconds", "1"], "loopback only"),
        (
            ["--listen", "127.0.0.1:0", "--seconds", "NaN"],
            "not a finite number",
        ),
        (
            ["--listen", &taken, "--seconds", "1"],
            "--listen 127.0.0.1:",
        ),
    ] {
        let refused = Command::new(BIN)
            .arg("bench-echo")
            .args(args)
            .output()
            .expect("run the binary");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{args:?}");
        assert!(
            stderr.contains(why) && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let at = format!("127.0.0.1:{port}");
    let mut echo = Command::new(BIN)
        .args(["bench-echo", "--listen", &at, "--seconds", "30"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the echo");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(echo.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("the echo's first line");
    assert_eq!(line.trim(), format!("echo on {at}"));
    let load = |seconds: &str| {
        Command::new(BIN)
            .args([
                "load",
                "--sample",
                city,
                "--server",
                &at,
                "--rpc",
                "echo-served",
            ])
            .args(["--clients", "4", "--seconds", seconds])
            .output()
            .expect("run the binary")
    };
    let out = load("0.5");
    let _ = echo.kill();
    let _ = echo.wait();
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert!(report["requests"].as_u64().unwrap_or(0) > 0, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    // It is that process that answered: with it gone, the load has no one to call.
    let gone = load("0.2");
    assert!(!gone.status.success(), "{gone:?}");
}
