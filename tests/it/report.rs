//! `credit-risk report`: charts of the current run and an enterprise's HTML report,
//! fetched over gRPC from the real server.

use crate::common::{enterprise, fine, put_enterprise, uscc_n, TestServer};
use credit_risk::proto::{self as pb, classification_service_client::ClassificationServiceClient};

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
    let none = credit_risk::report::run_report(&addr, dir.path(), 2.0).await;
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

    let r = credit_risk::report::run_report(&addr, dir.path(), 2.0)
        .await
        .expect("report run");
    assert_eq!(r.enterprises, 6);
    assert_eq!(r.files.len(), 4);
    let svg = std::fs::read_to_string(dir.path().join("classes-by-district.svg")).expect("svg");
    assert!(svg.contains("Pudong"), "the test city is in Pudong");
    let png = std::fs::read(dir.path().join("score-histogram.png")).expect("png");
    assert_eq!(&png[1..4], b"PNG");

    let page = dir.path().join("e.html");
    credit_risk::report::enterprise_report(&addr, &target, &page)
        .await
        .expect("report enterprise");
    let html = std::fs::read_to_string(&page).expect("html");
    assert!(html.contains(&target));
    assert!(
        html.contains("沪市监浦处〔2026〕77号"),
        "the penalty is listed"
    );
    assert!(html.contains("PENALTY_FINE"), "the factor is explained");
    assert!(html.contains("<svg"), "with the factor chart");
    assert!(
        html.contains("<h2>Class history</h2><table>"),
        "and the run history"
    );
    t.stop().await;
}
