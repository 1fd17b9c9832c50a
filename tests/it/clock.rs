//! One clock (issue 16, item 2): the store's clock is the date writes are validated and
//! stamped with and the default as-of date of requests, so a test sets the date instead
//! of depending on the day it runs.

use crate::common::{enterprise, fine, put_enterprise, uscc_n, TestServer};
use credit_risk::{domain::Date, proto as pb};

#[tokio::test]
async fn a_server_on_a_fixed_day_validates_stamps_and_scores_on_that_day() {
    let day = Date::parse("d", "2025-03-03").unwrap();
    let s = TestServer::start_on(day).await;
    let mut c = s.client.clone();
    let u = uscc_n(b'1', 1);
    let mut e = enterprise(&u);
    e.established_on = "2020-01-01".into();
    put_enterprise(&mut c, e).await;
    // A decision after the clock's day is in the future there, whatever today is.
    let err = c
        .record_penalty(pb::RecordPenaltyRequest {
            request_id: String::new(),
            penalty: Some(fine(&u, "沪市监罚〔2025〕9号", "2025-06-01", 1_000)),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("today is 2025-03-03"), "{err:?}");
    c.record_penalty(pb::RecordPenaltyRequest {
        request_id: String::new(),
        penalty: Some(fine(&u, "沪市监罚〔2025〕1号", "2025-02-10", 1_000)),
    })
    .await
    .expect("a decision before the clock's day");
    // A run without an as-of date is as of the clock's day.
    let mut k =
        credit_risk::proto::classification_service_client::ClassificationServiceClient::connect(
            format!("http://{}", s.addr),
        )
        .await
        .unwrap();
    let st = k
        .run_batch_scoring(pb::RunBatchScoringRequest::default())
        .await
        .unwrap()
        .into_inner();
    let run = crate::common::scoring_done(st).await.unwrap();
    assert_eq!(run.as_of, "2025-03-03");
    // The audit trail is stamped by the same clock.
    let mut a = credit_risk::proto::audit_service_client::AuditServiceClient::connect(format!(
        "http://{}",
        s.addr
    ))
    .await
    .unwrap();
    let mut events = a
        .list_audit_events(pb::ListAuditEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while let Some(ev) = events.message().await.unwrap() {
        assert!(ev.at.starts_with("2025-03-03T04:00:00"), "{ev:?}");
        n += 1;
    }
    assert!(n >= 2, "{n} events");
    s.stop().await;
}
