//! `credit-risk report`: charts of the current run and an enterprise's HTML report,
//! fetched over gRPC from the real server by the real binary.

use crate::common::{enterprise, fine, put_enterprise, uscc_n, TestServer};
use credit_risk::proto::{self as pb, classification_service_client::ClassificationServiceClient};

/// Runs `credit-risk report ARGS --server ADDR --json` (without blocking the test's
/// server); the JSON it prints, or its standard error.
async fn report(addr: &str, args: &[&str]) -> Result<serde_json::Value, String> {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_credit-risk"))
        .arg("report")
        .args(args)
        .args(["--server", addr, "--json"])
        .env_remove("CREDIT_RISK_TOKEN")
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

#[tokio::test]
async fn run_charts_and_enterprise_page_are_written() {
    let mut t = TestServer::start().await;
    for n in 1..=6 {
        put_enterprise(&mut t.client, enterprise(&uscc_n(b'1', n))).await;
    }
    let target = uscc_n(b'1', 3);
    t.client
        .record_penalty(pb::RecordPenaltyRequest {
            request_id: String::new(),
            penalty: Some(fine(
                &target,
                "沪市监浦处〔2026〕77号",
                "2026-03-02",
                80_000,
            )),
        })
        .await
        .expect("penalty");
    let addr = t.addr.to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().to_str().expect("utf-8 path");
    let none = report(&addr, &["run", "--out", out]).await;
    assert!(none.is_err(), "no run yet is an error, not an empty chart");

    let mut cls = ClassificationServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let s = cls
        .run_batch_scoring(pb::RunBatchScoringRequest::default())
        .await
        .expect("score")
        .into_inner();
    crate::common::scoring_done(s)
        .await
        .expect("a complete run");

    let r = report(&addr, &["run", "--out", out, "--bin-width", "2"])
        .await
        .expect("report run");
    assert_eq!(r["enterprises"], 6);
    assert_eq!(r["files"].as_array().map(Vec::len), Some(8));
    let svg = std::fs::read_to_string(dir.path().join("classes-by-district.svg")).expect("svg");
    assert!(svg.contains("浦东新区"), "the test city is in Pudong");
    assert!(svg.contains("A类（低风险）"), "classes with their meaning");
    let svg = std::fs::read_to_string(dir.path().join("score-histogram.svg")).expect("svg");
    assert!(svg.contains("D ≥ "), "the model's cut points");
    let svg = std::fs::read_to_string(dir.path().join("filing-rates.svg")).expect("svg");
    assert!(svg.contains("年度报告按期公示率"), "the filing chart");
    let en = tempfile::tempdir().expect("tempdir");
    let en_out = en.path().to_str().expect("utf-8 path");
    report(&addr, &["run", "--out", en_out, "--lang", "en"])
        .await
        .expect("report run --lang en");
    let svg = std::fs::read_to_string(en.path().join("classes-by-district.svg")).expect("svg");
    assert!(svg.contains("Pudong") && svg.contains("A (low risk)"));
    assert!(dir.path().join("problem-rates.png").exists());
    let png = std::fs::read(dir.path().join("score-histogram.png")).expect("png");
    assert_eq!(&png[1..4], b"PNG");

    let page = dir.path().join("e.html");
    let page_arg = page.to_str().expect("utf-8 path");
    report(&addr, &["enterprise", &target, "--out", page_arg])
        .await
        .expect("report enterprise");
    let html = std::fs::read_to_string(&page).expect("html");
    assert!(html.contains(&target));
    assert!(
        html.contains("沪市监浦处〔2026〕77号"),
        "the penalty is listed"
    );
    assert!(html.contains("罚款或没收"), "the factor is explained");
    assert!(
        html.contains("<h2>奖惩措施</h2><table>") && html.contains("P-PN-01"),
        "the penalty in publicity brings its measure"
    );
    assert!(html.contains("<svg"), "with the factor chart");
    assert!(
        html.contains("<h2>分类历史</h2><table>"),
        "and the run history"
    );
    report(
        &addr,
        &["enterprise", &target, "--out", page_arg, "--lang", "en"],
    )
    .await
    .expect("report enterprise --lang en");
    let html = std::fs::read_to_string(&page).expect("html");
    assert!(html.contains("<h2>Reward and punishment measures</h2><table>"));
    assert!(html.contains("<h2>Class history</h2><table>"));
    t.stop().await;
}
