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
    let run = score(&mut k).await;
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
        // 2025-03-03T04:00:00Z, the clock the server was started with.
        let at = ev.at.expect("an instant");
        assert_eq!(at.seconds, 1_740_974_400, "{ev:?}");
        n += 1;
    }
    assert!(n >= 2, "{n} events");
    s.stop().await;
}

/// GetClassification and BatchMatch `as_of` (issue 20, item 5): a past day is answered
/// from the general run current at the end of that day — its own class, or a re-score
/// on it made by then — and names that run.
#[tokio::test]
async fn classes_as_of_a_past_day_come_from_the_run_current_then() {
    use pb::classification_service_client::ClassificationServiceClient;
    use pb::spot_check_service_client::SpotCheckServiceClient;
    let day = |s: &str| Date::parse("d", s).unwrap();
    let u = uscc_n(b'1', 7);
    // 2025-03-03: registered and scored (run 1).
    let s = TestServer::start_on(day("2025-03-03")).await;
    let mut c = s.client.clone();
    let mut e = enterprise(&u);
    e.established_on = "2020-01-01".into();
    put_enterprise(&mut c, e).await;
    let mut k = ClassificationServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let run1 = score(&mut k).await;
    let own = classify(&mut k, &u, "").await.unwrap();
    let dir = s.dir.clone();
    let tmp = s.stop().await;

    // 2025-03-10: a penalty re-scores it on run 1.
    let s = TestServer::start_at_on(&dir, day("2025-03-10")).await;
    let mut c = s.client.clone();
    c.record_penalty(pb::RecordPenaltyRequest {
        request_id: String::new(),
        penalty: Some(fine(&u, "沪市监罚〔2025〕3号", "2025-03-05", 900_000)),
    })
    .await
    .unwrap();
    let mut k = ClassificationServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let rescored = classify(&mut k, &u, "").await.unwrap();
    assert_eq!(rescored.run_id, run1.run_id);
    assert!(!rescored.rescored_cause.is_empty(), "{rescored:?}");
    assert_ne!(rescored.score, own.score);
    s.stop().await;

    // 2025-03-15: run 2 becomes current.
    let s = TestServer::start_at_on(&dir, day("2025-03-15")).await;
    let mut k = ClassificationServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let run2 = score(&mut k).await;
    assert_ne!(run2.run_id, run1.run_id);
    s.stop().await;

    // 2025-03-20: asked about each day.
    let s = TestServer::start_at_on(&dir, day("2025-03-20")).await;
    let mut k = ClassificationServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let mut m = SpotCheckServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    // Run 2 scored the penalty as of its own day (decay moves the score a little).
    let now = classify(&mut k, &u, "").await.unwrap();
    assert!(now.rescored_cause.is_empty(), "{now:?}");
    for (as_of, run, score, rescored_then) in [
        ("2025-03-03", run1.run_id, own.score, false),
        ("2025-03-09", run1.run_id, own.score, false),
        ("2025-03-10", run1.run_id, rescored.score, true),
        ("2025-03-14", run1.run_id, rescored.score, true),
        ("2025-03-15", run2.run_id, now.score, false),
        ("2025-03-20", run2.run_id, now.score, false),
    ] {
        let got = classify(&mut k, &u, as_of).await.unwrap();
        assert_eq!(
            (got.run_id, got.score),
            (run, score),
            "as_of {as_of:?}: {got:?}"
        );
        assert_eq!(got.rescored_cause.is_empty(), !rescored_then, "{as_of}");
        // The CLASS view answers the same class without the explanation.
        let brief = k
            .get_classification(pb::GetClassificationRequest {
                uscc: u.clone(),
                as_of: as_of.into(),
                view: pb::ClassificationView::Class as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (
                brief.run_id,
                brief.score,
                brief.risk_class,
                &brief.rescored_cause
            ),
            (got.run_id, got.score, got.risk_class, &got.rescored_cause),
            "view CLASS as_of {as_of:?}"
        );
        assert!(brief.factors.is_empty() && !got.factors.is_empty());
        assert_eq!(brief.rules_version, got.rules_version);
        let matched = m
            .batch_match(pb::MatchRequest {
                usccs: vec![u.clone()],
                as_of: as_of.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .items;
        assert!(matched[0].found, "{as_of}: {matched:?}");
        assert_eq!(
            (matched[0].run_id, matched[0].score, matched[0].risk_class),
            (run, score, got.risk_class),
            "BatchMatch as_of {as_of:?}"
        );
    }
    // Before any run, in the future, or with a run id: refused, naming the field.
    let err = classify(&mut k, &u, "2025-03-02").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("as_of"), "{err:?}");
    let err = m
        .batch_match(pb::MatchRequest {
            usccs: vec![u.clone()],
            as_of: "2025-03-02".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    let err = classify(&mut k, &u, "2025-03-21").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("as_of"), "{err:?}");
    let err = k
        .get_classification(pb::GetClassificationRequest {
            uscc: u.clone(),
            run_id: run1.run_id,
            as_of: "2025-03-03".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    s.stop().await;
    drop(tmp);
}

async fn classify(
    k: &mut pb::classification_service_client::ClassificationServiceClient<
        tonic::transport::Channel,
    >,
    u: &str,
    as_of: &str,
) -> Result<pb::Classification, tonic::Status> {
    k.get_classification(pb::GetClassificationRequest {
        uscc: u.into(),
        run_id: 0,
        as_of: as_of.into(),
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner())
}

/// A batch run as of the server's day, to its summary.
async fn score(
    k: &mut pb::classification_service_client::ClassificationServiceClient<
        tonic::transport::Channel,
    >,
) -> pb::ScoringRun {
    let st = k
        .run_batch_scoring(pb::RunBatchScoringRequest::default())
        .await
        .unwrap()
        .into_inner();
    crate::common::scoring_done(st).await.unwrap()
}
