//! AuditService end to end: every mutation leaves a chained event.

use crate::common::*;
use credit_risk::proto::{self as pb, audit_service_client::AuditServiceClient};
use sha2::{Digest, Sha256};

/// An event's `at` as the Unix milliseconds the digest covers.
fn at_ms(e: &pb::AuditEvent) -> i64 {
    let at = e.at.expect("every event has its instant");
    at.seconds * 1000 + i64::from(at.nanos / 1_000_000)
}

/// Chain format 2, written from the `AuditService` documentation (not the server's code).
fn digest_v2(e: &pb::AuditEvent) -> String {
    let mut h = Sha256::new();
    h.update(b"creditrisk-audit-v2");
    let text = |h: &mut Sha256, s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    text(&mut h, &e.prev_digest);
    h.update(e.seq.to_be_bytes());
    h.update(at_ms(e).to_be_bytes());
    for f in [
        &e.principal,
        &e.role,
        &e.rpc,
        &e.target,
        &e.before,
        &e.after,
        &e.reason,
    ] {
        text(&mut h, f);
    }
    hex::encode(h.finalize())
}

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
    // Every digest recomputes from the reply alone, as the proto documents format 2.
    for e in &events {
        assert_eq!(e.chain_format, 2);
        assert_eq!(e.digest, digest_v2(e), "event {}", e.seq);
    }

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
    // Time filters: `from` inclusive, `to` exclusive, both instants.
    let all = list_events(&mut a, pb::ListAuditEventsRequest::default()).await;
    let (first, last) = (all[0].clone(), all[all.len() - 1].clone());
    let since_last = list_events(
        &mut a,
        pb::ListAuditEventsRequest {
            from: last.at,
            ..Default::default()
        },
    )
    .await;
    assert!(since_last.iter().any(|e| e.seq == last.seq));
    assert!(since_last.iter().all(|e| at_ms(e) >= at_ms(&last)));
    let before_first = list_events(
        &mut a,
        pb::ListAuditEventsRequest {
            to: first.at,
            ..Default::default()
        },
    )
    .await;
    assert!(before_first.is_empty(), "{before_first:?}");
    let err = a
        .list_audit_events(pb::ListAuditEventsRequest {
            from: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: -5,
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("from"), "{err:?}");

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

/// A schema-2 store (audit chain format 1, old retry records) is migrated at open: its
/// chain still verifies, new events are format 2, the old retry records are gone.
#[tokio::test]
async fn a_schema_2_store_is_migrated() {
    use credit_risk::store::{
        audit::{event_key, AuditEvent, GENESIS},
        codec, keys, op, Actor, Store, StoreOptions,
    };
    let tmp = tempfile::tempdir().unwrap();
    let fresh = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    fresh.close(std::time::Duration::from_secs(5)).unwrap();
    drop(fresh);
    {
        let db = open_sled_directly(tmp.path());
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", &2u32.to_be_bytes())
            .unwrap();
        let reg = db.open_tree("registry").unwrap();
        let mut prev = GENESIS.to_string();
        for seq in 1..=2u64 {
            let mut e = AuditEvent {
                seq,
                at_ms: 1_700_000_000_000,
                principal: "old".into(),
                role: "admin".into(),
                rpc: "UpsertEnterprise".into(),
                target: "t".into(),
                before: String::new(),
                after: format!("v1 event {seq}"),
                reason: String::new(),
                prev_digest: prev.clone(),
                digest: String::new(),
            };
            e.digest = e.compute_digest(1);
            prev = e.digest.clone();
            reg.insert(event_key(seq), codec::encode(&e).unwrap())
                .unwrap();
        }
        reg.insert(keys::request("RecordPenalty", "old-id"), &[1u8, 0, 0][..])
            .unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.verify_audit_chain().unwrap(), (2, None));
    assert_eq!(store.audit_v2_from().unwrap(), 3);
    let old = credit_risk::store::RequestKey {
        rpc: "RecordPenalty".into(),
        id: "old-id".into(),
        fingerprint: [0; 32],
    };
    assert_eq!(store.recall(&old).unwrap(), None);
    let e =
        credit_risk::server::service::convert::enterprise(&enterprise(&uscc_n(b'1', 9))).unwrap();
    store
        .write_as(Actor::system("test"), op::UpsertEnterprise(e))
        .await
        .unwrap();
    assert_eq!(store.verify_audit_chain().unwrap(), (3, None));
}

async fn list_events(
    a: &mut AuditServiceClient<tonic::transport::Channel>,
    r: pb::ListAuditEventsRequest,
) -> Vec<pb::AuditEvent> {
    let mut s = a.list_audit_events(r).await.unwrap().into_inner();
    let mut out = Vec::new();
    while let Some(e) = s.message().await.unwrap() {
        out.push(e);
    }
    out
}
