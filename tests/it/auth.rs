//! Bearer tokens and roles over real gRPC; the principal reaches the audit trail.

use crate::common::*;
use credit_risk::{
    proto::{
        self as pb, audit_service_client::AuditServiceClient,
        registry_service_client::RegistryServiceClient,
        spot_check_service_client::SpotCheckServiceClient,
    },
    server::auth::{hash_token, AuthConfig, Role, TokenConfig},
};
use tonic::{transport::Channel, Code};

fn token(name: &str, secret: &str, role: Role) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        sha256: hash_token(secret),
        role,
        regions: vec![],
    }
}

#[tokio::test]
async fn roles_decide_who_may_call_what() {
    let s = TestServer::start_with_auth(AuthConfig {
        tokens: vec![
            token("pudong-feed", "feed-secret", Role::Feed),
            token("auditor-1", "audit-secret", Role::Auditor),
            token("scheduler-1", "sched-secret", Role::Scheduler),
        ],
    })
    .await;
    let ch = Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let reg = |t| RegistryServiceClient::with_interceptor(ch.clone(), Bearer(t));
    let u = uscc_n(b'1', 5);
    let upsert = pb::UpsertEnterpriseRequest {
        request_id: String::new(),
        enterprise: Some(enterprise(&u)),
    };

    let err = reg(None)
        .upsert_enterprise(upsert.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = reg(Some("guess"))
        .upsert_enterprise(upsert.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = reg(Some("audit-secret"))
        .upsert_enterprise(upsert.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("auditor"));
    reg(Some("feed-secret"))
        .upsert_enterprise(upsert)
        .await
        .unwrap();
    // Reads are open to every role.
    reg(Some("sched-secret"))
        .get_enterprise(pb::GetEnterpriseRequest { uscc: u.clone() })
        .await
        .unwrap();

    // The spot-check selector is the scheduler's; the audit trail the auditor's.
    let mut spot_feed =
        SpotCheckServiceClient::with_interceptor(ch.clone(), Bearer(Some("feed-secret")));
    let err = spot_feed
        .batch_match(pb::MatchRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut audit_sched =
        AuditServiceClient::with_interceptor(ch.clone(), Bearer(Some("sched-secret")));
    let err = audit_sched
        .verify_audit_chain(pb::VerifyAuditChainRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let mut audit = AuditServiceClient::with_interceptor(ch.clone(), Bearer(Some("audit-secret")));
    let mut st = audit
        .list_audit_events(pb::ListAuditEventsRequest {
            uscc: u.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let e = st.message().await.unwrap().expect("an event");
    assert_eq!(
        (e.principal.as_str(), e.role.as_str()),
        ("pudong-feed", "feed")
    );
    s.stop().await;
}

#[tokio::test]
async fn region_scoped_tokens_see_and_change_only_their_district() {
    let scoped = |name: &str, secret: &str, role, region: &str| TokenConfig {
        regions: vec![region.into()],
        ..token(name, secret, role)
    };
    let s = TestServer::start_with_auth(AuthConfig {
        tokens: vec![
            token("city-admin", "admin-secret", Role::Admin),
            scoped("pudong-feed", "pudong-secret", Role::Feed, "310115"),
            scoped("xuhui-scheduler", "xuhui-secret", Role::Scheduler, "310104"),
        ],
    })
    .await;
    let ch = Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let reg = |t| RegistryServiceClient::with_interceptor(ch.clone(), Bearer(Some(t)));
    let pudong = uscc_n(b'1', 11);
    let xuhui = uscc_n(b'1', 12);
    let mut xe = enterprise(&xuhui);
    xe.region_code = "310104".into();
    reg("admin-secret")
        .upsert_enterprise(pb::UpsertEnterpriseRequest {
            request_id: String::new(),
            enterprise: Some(xe.clone()),
        })
        .await
        .unwrap();
    reg("pudong-secret")
        .upsert_enterprise(pb::UpsertEnterpriseRequest {
            request_id: String::new(),
            enterprise: Some(enterprise(&pudong)),
        })
        .await
        .unwrap();
    let err = reg("pudong-secret")
        .upsert_enterprise(pb::UpsertEnterpriseRequest {
            request_id: String::new(),
            enterprise: Some(xe),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("enterprise.region_code"),
        "{}",
        err.message()
    );
    // Another district's enterprise answers exactly as an unregistered one (issue 15,
    // probe 7: no existence or district oracle), for reads and writes.
    let unknown = uscc_n(b'1', 13);
    let same_answer = |a: tonic::Status, b: tonic::Status, what: &str| {
        assert_eq!(a.code(), Code::NotFound, "{what}: {a:?}");
        assert_eq!(
            a.message().replace(&xuhui, "U"),
            b.message().replace(&unknown, "U"),
            "{what}"
        );
    };
    let penalty = |u: &str| pb::RecordPenaltyRequest {
        request_id: String::new(),
        penalty: Some(fine(u, "沪徐市监罚〔2026〕1号", "2026-03-01", 100)),
    };
    let a = reg("pudong-secret")
        .record_penalty(penalty(&xuhui))
        .await
        .unwrap_err();
    let b = reg("pudong-secret")
        .record_penalty(penalty(&unknown))
        .await
        .unwrap_err();
    same_answer(a, b, "RecordPenalty");
    let get = |u: &str| pb::GetEnterpriseRequest { uscc: u.into() };
    let a = reg("pudong-secret")
        .get_enterprise(get(&xuhui))
        .await
        .unwrap_err();
    let b = reg("pudong-secret")
        .get_enterprise(get(&unknown))
        .await
        .unwrap_err();
    same_answer(a, b, "GetEnterprise");
    let err = reg("pudong-secret")
        .import_records(tokio_stream::iter(Vec::<pb::ImportRecordsRequest>::new()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Score (city-wide, admin), then the Xuhui scheduler sees only Xuhui.
    let mut k = credit_risk::proto::classification_service_client::ClassificationServiceClient::with_interceptor(
        ch.clone(),
        Bearer(Some("admin-secret")),
    );
    let st = k
        .run_batch_scoring(pb::RunBatchScoringRequest::default())
        .await
        .unwrap()
        .into_inner();
    crate::common::scoring_done(st).await.unwrap();
    let mut spot =
        SpotCheckServiceClient::with_interceptor(ch.clone(), Bearer(Some("xuhui-secret")));
    let mut q = spot
        .query_candidates(pb::QueryCandidatesRequest {
            filter: Some(pb::CandidateFilter::default()),
            as_of: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while let Some(b) = q.message().await.unwrap() {
        seen.extend(b.candidates.into_iter().map(|c| c.uscc));
    }
    assert_eq!(seen, vec![xuhui.clone()]);
    let err = spot
        .query_candidates(pb::QueryCandidatesRequest {
            filter: Some(pb::CandidateFilter {
                region_codes: vec!["310115".into()],
                ..Default::default()
            }),
            as_of: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let m = spot
        .batch_match(pb::MatchRequest {
            usccs: vec![xuhui.clone(), pudong.clone(), uscc_n(b'1', 13)],
            as_of: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(m.items[0].found);
    // Outside the token's regions and unregistered: the same item.
    let blank = |i: &pb::MatchItem| pb::MatchItem {
        uscc: String::new(),
        ..i.clone()
    };
    assert!(!m.items[1].found && m.items[1].error.is_empty());
    assert_eq!(blank(&m.items[1]), blank(&m.items[2]));

    // Inspectors: a district token creates and changes only its district's inspectors.
    let inspector = |id: &str, region: &str| pb::UpsertInspectorRequest {
        request_id: String::new(),
        inspector: Some(pb::Inspector {
            id: id.into(),
            name: "执法人员".into(),
            certificate_number: format!("ZF-{id}"),
            home_region_code: region.into(),
            fields: vec!["food".into()],
            active: true,
            department: String::new(),
        }),
    };
    spot.upsert_inspector(inspector("XH-1", "310104"))
        .await
        .unwrap();
    let err = spot
        .upsert_inspector(inspector("PD-1", "310115"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("inspector.home_region_code"),
        "{}",
        err.message()
    );
    let mut city =
        SpotCheckServiceClient::with_interceptor(ch.clone(), Bearer(Some("admin-secret")));
    city.upsert_inspector(inspector("PD-2", "310115"))
        .await
        .unwrap();
    // Moving Pudong's inspector into Xuhui is a change to a Pudong record: refused.
    let err = spot
        .upsert_inspector(inspector("PD-2", "310104"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("inspector.id"), "{}", err.message());
    // Listing: a district token sees only its district's inspectors (issue 15, probe 7).
    let ids =
        |r: pb::ListInspectorsResponse| r.inspectors.into_iter().map(|i| i.id).collect::<Vec<_>>();
    let xuhui_list = spot
        .list_inspectors(pb::ListInspectorsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(xuhui_list), ["XH-1"]);
    let city_list = city
        .list_inspectors(pb::ListInspectorsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(city_list), ["PD-2", "XH-1"]);
    s.stop().await;
}

/// The writer decides region scope on the state its batch commits on: a scoped actor's
/// write to an enterprise outside its regions is refused there even without any
/// handler pre-read, and so is moving one of its own enterprises out of its district.
#[tokio::test]
async fn the_writer_decides_region_scope() {
    use credit_risk::{
        server::service::convert,
        store::{op, Actor, Store, StoreOptions},
    };
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    let xuhui = Actor {
        principal: "xuhui-feed".into(),
        role: "feed".into(),
        rpc: "test".into(),
        regions: vec!["310104".into()],
    };
    let pudong_firm = enterprise(&uscc_n(b'1', 301));
    let mut xuhui_firm = enterprise(&uscc_n(b'1', 302));
    xuhui_firm.region_code = "310104".into();
    for e in [&pudong_firm, &xuhui_firm] {
        store
            .write_as(
                Actor::system("test"),
                op::UpsertEnterprise(convert::enterprise(e).unwrap()),
            )
            .await
            .unwrap();
    }
    let before = store.verify_audit_chain().unwrap().0;
    let p = convert::penalty(&fine(
        &pudong_firm.uscc,
        "沪市监罚〔2026〕301号",
        "2026-03-01",
        100,
    ))
    .unwrap();
    let err = store
        .write_as(xuhui.clone(), op::RecordPenalty(p))
        .await
        .unwrap_err();
    assert!(
        matches!(err, credit_risk::Error::PermissionDenied(_)),
        "{err}"
    );
    let mut moved = xuhui_firm.clone();
    moved.region_code = "310115".into();
    let err = store
        .write_as(
            xuhui.clone(),
            op::UpsertEnterprise(convert::enterprise(&moved).unwrap()),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("310115"), "{err}");
    assert_eq!(
        store.verify_audit_chain().unwrap().0,
        before,
        "refusals wrote nothing"
    );
    // Inside the district it is accepted.
    let p = convert::penalty(&fine(
        &xuhui_firm.uscc,
        "沪市监罚〔2026〕302号",
        "2026-03-01",
        100,
    ))
    .unwrap();
    store.write_as(xuhui, op::RecordPenalty(p)).await.unwrap();
}

/// A region prefix is matched as a prefix of the code everywhere (issue 15, probe 1): a
/// token scoped to `31010` (Huangpu, Xuhui, Changning, Jing'an, Putuo, Hongkou) sees no
/// Pudong (310115) or Yangpu (310110) enterprise in a pool — with an empty filter, with
/// the prefecture code `310100`, or in a plan — and a filter outside it is refused.
#[tokio::test]
async fn a_five_digit_region_prefix_does_not_widen_to_the_prefecture() {
    use credit_risk::proto::classification_service_client::ClassificationServiceClient;
    let s = TestServer::start_with_auth(AuthConfig {
        tokens: vec![
            token("city-admin", "admin-secret", Role::Admin),
            TokenConfig {
                regions: vec!["31010".into()],
                ..token("central-scheduler", "central-secret", Role::Scheduler)
            },
        ],
    })
    .await;
    let ch = Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut reg = RegistryServiceClient::with_interceptor(ch.clone(), Bearer(Some("admin-secret")));
    let regions = ["310101", "310104", "310110", "310115", "310109"];
    for (i, r) in regions.iter().enumerate() {
        let mut e = enterprise(&uscc_n(b'1', 900 + i as u32));
        e.region_code = (*r).into();
        reg.upsert_enterprise(pb::UpsertEnterpriseRequest {
            request_id: String::new(),
            enterprise: Some(e),
        })
        .await
        .unwrap();
    }
    let st =
        ClassificationServiceClient::with_interceptor(ch.clone(), Bearer(Some("admin-secret")))
            .run_batch_scoring(pb::RunBatchScoringRequest::default())
            .await
            .unwrap()
            .into_inner();
    crate::common::scoring_done(st).await.unwrap();
    let mut spot = SpotCheckServiceClient::with_interceptor(ch, Bearer(Some("central-secret")));
    let pool = |filter: pb::CandidateFilter| {
        let mut spot = spot.clone();
        async move {
            let mut regions: Vec<String> = candidates(&mut spot, filter)
                .await?
                .into_iter()
                .map(|c| c.region_code)
                .collect();
            regions.sort();
            Ok::<_, tonic::Status>(regions)
        }
    };
    let want = ["310101", "310104", "310109"];
    assert_eq!(pool(pb::CandidateFilter::default()).await.unwrap(), want);
    let prefecture = pb::CandidateFilter {
        region_codes: vec!["310100".into()],
        ..Default::default()
    };
    assert_eq!(pool(prefecture.clone()).await.unwrap(), want);
    let outside = pb::CandidateFilter {
        region_codes: vec!["310115".into()],
        ..Default::default()
    };
    assert_eq!(
        pool(outside).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let plan = spot
        .plan_draw(pb::PlanDrawRequest {
            request_id: String::new(),
            model_family: String::new(),
            check_items: vec![],
            override_reason: "test: every class at 100 %".into(),
            task_id: "2026-沪-scope".into(),
            filter: Some(prefecture),
            strata: [
                pb::RiskClass::A,
                pb::RiskClass::B,
                pb::RiskClass::C,
                pb::RiskClass::D,
            ]
            .iter()
            .map(|c| pb::Stratum {
                risk_class: *c as i32,
                size: Some(pb::stratum::Size::Ratio(1.0)),
            })
            .collect(),
            as_of: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let population: u64 = plan.strata.iter().map(|s| s.population).sum();
    assert_eq!(population, 3, "{plan:?}");
}
