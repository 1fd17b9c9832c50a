//! Lists answer a bounded page: `limit = 0` is the documented default (1,000), more than
//! 10,000 is INVALID_ARGUMENT naming `limit`, and a cursor pages through the rest.

use crate::common::*;
use credit_risk::proto::{
    self as pb, audit_service_client::AuditServiceClient,
    spot_check_service_client::SpotCheckServiceClient,
};
use tonic::Code;

#[tokio::test]
async fn inspectors_and_audit_events_page() {
    let s = TestServer::start().await;
    let addr = format!("http://{}", s.addr);
    let mut spot = SpotCheckServiceClient::connect(addr.clone()).await.unwrap();
    let audit = AuditServiceClient::connect(addr).await.unwrap();
    for i in 0..5 {
        spot.upsert_inspector(pb::UpsertInspectorRequest {
            request_id: String::new(),
            inspector: Some(pb::Inspector {
                id: format!("I-{i}"),
                name: format!("检查员{i}"),
                certificate_number: format!("沪执{i}"),
                home_region_code: "310104".into(),
                fields: vec![],
                active: true,
                department: String::new(),
            }),
        })
        .await
        .unwrap();
    }
    // Pages of two: I-0 I-1 | I-2 I-3 | I-4, the last without a token.
    let mut token = String::new();
    let mut pages = Vec::new();
    loop {
        let r = spot
            .list_inspectors(pb::ListInspectorsRequest {
                active_only: false,
                limit: 2,
                page_token: token.clone(),
                department: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        pages.push(
            r.inspectors
                .iter()
                .map(|i| i.id.clone())
                .collect::<Vec<_>>(),
        );
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    assert_eq!(pages, [vec!["I-0", "I-1"], vec!["I-2", "I-3"], vec!["I-4"]]);
    let all = spot
        .list_inspectors(pb::ListInspectorsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.inspectors.len(), 5);
    assert!(all.next_page_token.is_empty());
    let err = spot
        .list_inspectors(pb::ListInspectorsRequest {
            limit: 10_001,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("limit"), "{}", err.message());

    // Audit events: limit 0 is the default page, after_seq the cursor.
    let events = |after_seq: u64, limit: u32| {
        let mut a = audit.clone();
        async move {
            let mut st = a
                .list_audit_events(pb::ListAuditEventsRequest {
                    after_seq,
                    limit,
                    ..Default::default()
                })
                .await?
                .into_inner();
            let mut seqs = Vec::new();
            while let Some(e) = st.message().await? {
                seqs.push(e.seq);
            }
            Ok::<_, tonic::Status>(seqs)
        }
    };
    assert_eq!(events(0, 0).await.unwrap(), [1, 2, 3, 4, 5]);
    assert_eq!(events(0, 2).await.unwrap(), [1, 2]);
    assert_eq!(events(2, 2).await.unwrap(), [3, 4]);
    assert_eq!(events(4, 2).await.unwrap(), [5]);
    let err = events(0, 50_000).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("limit"), "{}", err.message());
}

/// A filter's lists are bounded (issue 15, probe 4): a million region codes are refused
/// at once, naming the field, instead of being matched against every row; and health
/// answers for every service of the API, from the descriptors (probe 8).
#[tokio::test]
async fn filters_are_bounded_and_every_service_has_health() {
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    let s = TestServer::start().await;
    let addr = format!("http://{}", s.addr);
    let mut spot = SpotCheckServiceClient::connect(addr.clone())
        .await
        .unwrap()
        .max_encoding_message_size(64 << 20);
    let t = std::time::Instant::now();
    let err = spot
        .query_candidates(pb::QueryCandidatesRequest {
            filter: Some(pb::CandidateFilter {
                region_codes: vec!["310115".into(); 100_000],
                ..Default::default()
            }),
            as_of: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("filter.region_codes"),
        "{}",
        err.message()
    );
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    let mut h = HealthClient::new(
        tonic::transport::Channel::from_shared(addr)
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    for name in credit_risk::server::service_names() {
        let st = h
            .check(HealthCheckRequest {
                service: name.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .into_inner();
        assert_eq!(
            st.status(),
            tonic_health::pb::health_check_response::ServingStatus::Serving,
            "{name}"
        );
    }
    assert!(credit_risk::server::service_names().len() >= 6);
}
