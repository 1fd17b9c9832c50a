//! The server-wide concurrency limit: over it, RESOURCE_EXHAUSTED at once (not a queue),
//! health checks still answered, and the slot freed when the holding stream ends.

mod common;

use common::{enterprise, uscc_n, TestServer};
use credit_risk::proto as pb;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

#[tokio::test]
async fn requests_over_the_global_limit_are_refused_resource_exhausted() {
    let t = TestServer::start_with_config(|c| c.max_concurrent_requests = 1).await;
    let get = |n| pb::GetEnterpriseRequest {
        uscc: uscc_n(b'1', n),
    };

    // An import stream the client keeps open holds the only slot.
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::ImportRecordsRequest>(4);
    let mut importer = t.client.clone();
    let import = tokio::spawn(async move {
        importer
            .import_records(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    tx.send(pb::ImportRecordsRequest {
        records: vec![pb::ImportRecord {
            record: Some(pb::import_record::Record::Enterprise(enterprise(&uscc_n(
                b'1', 1,
            )))),
        }],
    })
    .await
    .expect("send");

    let mut c = t.client.clone();
    let mut refused = None;
    for _ in 0..200 {
        match c.get_enterprise(get(1)).await {
            Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                refused = Some(s);
                break;
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
    let refused = refused.expect("a request over the limit is refused");
    assert!(
        refused.message().contains("max_concurrent_requests"),
        "{refused:?}"
    );

    let mut health = HealthClient::new(
        tonic::transport::Channel::from_shared(format!("http://{}", t.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect"),
    );
    let h = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health is answered even at the limit");
    assert_eq!(h.into_inner().status, 1, "SERVING");

    // The stream ends: its slot is free again and the import was applied.
    drop(tx);
    let summary = import.await.expect("task").expect("import").into_inner();
    assert_eq!(summary.stored, 1);
    let e = c.get_enterprise(get(1)).await.expect("served again");
    assert!(e.into_inner().enterprise.is_some());
    t.stop().await;
}
