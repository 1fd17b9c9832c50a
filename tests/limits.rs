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

/// Silent client streams are ended (issue 15, probe 2): with `stream_idle_secs = 1`, idle
/// ImportRecords and MatchClassifications streams get DEADLINE_EXCEEDED after about a
/// second and give back their concurrency slots, so other callers are served again.
#[tokio::test]
async fn idle_client_streams_are_ended_and_free_their_slots() {
    use credit_risk::proto::spot_check_service_client::SpotCheckServiceClient;
    let s = TestServer::start_with_config(|c| {
        c.stream_idle_secs = 1;
        c.max_concurrent_requests = 3;
    })
    .await;
    let addr = format!("http://{}", s.addr);
    let mut spot = SpotCheckServiceClient::connect(addr.clone()).await.unwrap();
    let t = std::time::Instant::now();
    let mut calls = Vec::new();
    for _ in 0..2 {
        let mut c = s.client.clone();
        calls.push(tokio::spawn(async move {
            c.import_records(tokio_stream::pending::<pb::ImportRecordsRequest>())
                .await
                .map(|_| ())
        }));
    }
    let m = spot
        .match_classifications(tokio_stream::pending::<pb::MatchRequest>())
        .await;
    // The match stream's reply opens at once; its end carries the status.
    let match_end = match m {
        Ok(r) => r.into_inner().message().await.map(|_| ()),
        Err(e) => Err(e),
    };
    let err = match_end.unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
    for c in calls {
        let err = c.await.unwrap().unwrap_err();
        assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
        assert!(
            err.message().contains("stream_idle_secs"),
            "{}",
            err.message()
        );
    }
    assert!(
        t.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        t.elapsed()
    );
    // The slots are free again.
    let mut c = s.client.clone();
    c.get_enterprise(pb::GetEnterpriseRequest {
        uscc: uscc_n(b'1', 1),
    })
    .await
    .expect_err("unknown enterprise")
    .code()
    .eq(&tonic::Code::NotFound)
    .then_some(())
    .expect("NOT_FOUND, not RESOURCE_EXHAUSTED");
}
