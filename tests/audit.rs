//! AuditService end to end: every mutation leaves a chained event.

mod common;

use common::*;
use credit_risk::proto::{self as pb, audit_service_client::AuditServiceClient};

#[tokio::test]
async fn mutations_are_audited_and_chained() {
    let s = TestServer::start().await;
    let mut c = s.client.clone();
    let mut a = AuditServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let u = uscc_n(b'1', 1);
    put_enterprise(&mut c, enterprise(&u)).await;
    c.record_penalty(pb::RecordPenaltyRequest {
        request_id: "r-1".into(),
        penalty: Some(fine(&u, "沪市监罚〔2026〕7号", "2026-03-01", 3000)),
    })
    .await
    .unwrap();
    // A retry changes nothing and is not audited again.
    c.record_penalty(pb::RecordPenaltyRequest {
        request_id: "r-1".into(),
        penalty: Some(fine(&u, "沪市监罚〔2026〕7号", "2026-03-01", 3000)),
    })
    .await
    .unwrap();
    let mut moved = enterprise(&u);
    moved.status = pb::EnterpriseStatus::Suspended as i32;
    put_enterprise(&mut c, moved).await;
    // Refused input writes nothing.
    let _ = c
        .record_penalty(pb::RecordPenaltyRequest {
            request_id: String::new(),
            penalty: Some(fine(&u, "", "2026-03-01", 1)),
        })
        .await
        .unwrap_err();

    let mut st = a
        .list_audit_events(pb::ListAuditEventsRequest {
            uscc: u.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    while let Some(e) = st.message().await.unwrap() {
        events.push(e);
    }
    assert_eq!(events.len(), 3, "{events:#?}");
    assert_eq!(
        events.iter().map(|e| e.rpc.as_str()).collect::<Vec<_>>(),
        ["UpsertEnterprise", "RecordPenalty", "UpsertEnterprise"]
    );
    assert!(events
        .iter()
        .all(|e| e.principal == "local" && e.target == u));
    assert!(events[1].after.contains("沪市监罚〔2026〕7号"));
    assert!(events[2].before.contains("Operating") && events[2].after.contains("Suspended"));
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(events[0].prev_digest, "0".repeat(64));
    assert_eq!(events[1].prev_digest, events[0].digest);

    let v = a
        .verify_audit_chain(pb::VerifyAuditChainRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(v.intact, "{v:?}");
    assert_eq!(v.events_checked, 3);

    let none = a
        .list_audit_events(pb::ListAuditEventsRequest {
            principal: "someone-else".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap();
    assert!(none.is_none());
    let err = a
        .list_audit_events(pb::ListAuditEventsRequest {
            from: "yesterday".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("from"));

    // The chain survives a restart and goes on from its head.
    let dir = s.dir.clone();
    let tmp = s.stop().await;
    let s = TestServer::start_at(&dir).await;
    let mut c = s.client.clone();
    put_enterprise(&mut c, enterprise(&uscc_n(b'1', 2))).await;
    let mut a = AuditServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let v = a
        .verify_audit_chain(pb::VerifyAuditChainRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(v.intact && v.events_checked == 4, "{v:?}");
    s.stop().await;
    drop(tmp);
}
