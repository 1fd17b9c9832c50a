//! Bearer tokens and roles over real gRPC; the principal reaches the audit trail.

mod common;

use common::*;
use credit_risk::{
    auth::{hash_token, AuthConfig, Role, TokenConfig},
    proto::{
        self as pb, audit_service_client::AuditServiceClient,
        registry_service_client::RegistryServiceClient,
        spot_check_service_client::SpotCheckServiceClient,
    },
};
use tonic::{
    metadata::MetadataValue, service::Interceptor, transport::Channel, Code, Request, Status,
};

#[derive(Clone)]
struct Bearer(Option<&'static str>);

impl Interceptor for Bearer {
    fn call(&mut self, mut r: Request<()>) -> Result<Request<()>, Status> {
        if let Some(t) = self.0 {
            let v: MetadataValue<_> = format!("Bearer {t}")
                .parse()
                .map_err(|_| Status::internal("header"))?;
            r.metadata_mut().insert("authorization", v);
        }
        Ok(r)
    }
}

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
