//! Resource limits over real gRPC: the server-wide and per-principal concurrency limits
//! (over them, RESOURCE_EXHAUSTED at once, not a queue; health still answered; slots
//! freed when the holding stream ends), idle and total deadlines of client streams, and
//! connection handshake and idle timeouts.

use crate::common::{enterprise, uscc_n, TestServer};
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
            other => {
                eprintln!("DBG {other:?}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await
            }
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

/// One caller cannot take the server (issue 15, probe 2): with two client streams per
/// principal, a feed token's third open stream is refused RESOURCE_EXHAUSTED naming the
/// limit, while another token's calls are served; the slot frees when a stream ends.
#[tokio::test]
async fn each_principal_has_its_own_stream_and_request_limits() {
    use credit_risk::proto::registry_service_client::RegistryServiceClient;
    use credit_risk::server::auth::{hash_token, AuthConfig, Role, TokenConfig};
    let token = |name: &str, secret: &str, role| TokenConfig {
        name: name.into(),
        sha256: hash_token(secret),
        role,
        regions: vec![],
    };
    let s = TestServer::start_with_config(|c| {
        c.max_streams_per_principal = 2;
        c.max_requests_per_principal = 3;
        c.auth = AuthConfig {
            tokens: vec![
                token("feed", "feed-secret", Role::Feed),
                token("admin", "admin-secret", Role::Admin),
            ],
        };
    })
    .await;
    let ch = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let with = |secret: &'static str| {
        RegistryServiceClient::with_interceptor(ch.clone(), move |mut r: tonic::Request<()>| {
            r.metadata_mut()
                .insert("authorization", format!("Bearer {secret}").parse().unwrap());
            Ok(r)
        })
    };
    // Two idle streams of the feed token (each sends one message, so it is open).
    let open = |n: u32| {
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::ImportRecordsRequest>(1);
        tx.try_send(pb::ImportRecordsRequest {
            records: vec![pb::ImportRecord {
                record: Some(pb::import_record::Record::Enterprise(enterprise(&uscc_n(
                    b'1', n,
                )))),
            }],
        })
        .unwrap();
        let mut c = with("feed-secret");
        let call = tokio::spawn(async move {
            c.import_records(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
        });
        (tx, call)
    };
    let (mut senders, mut calls): (Vec<_>, Vec<_>) = (0..2).map(open).unzip();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // The third is refused (once the first two are in). A third that arrives before
    // one of the two holds that one's slot for a moment: the one refused then is
    // opened again.
    let mut refused = None;
    for _ in 0..200 {
        for n in 0..2 {
            if calls[n].is_finished() {
                let (tx, call) = open(n as u32);
                let earlier = std::mem::replace(&mut calls[n], call);
                let e = earlier
                    .await
                    .unwrap()
                    .expect_err("refused while a third held its slot");
                assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
                senders[n] = tx;
                // Let it in before the next third arrives.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        let mut c = with("feed-secret");
        let r = c
            .import_records(tokio_stream::iter(Vec::<pb::ImportRecordsRequest>::new()))
            .await;
        match r {
            Err(e) if e.code() == tonic::Code::ResourceExhausted => {
                refused = Some(e);
                break;
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
    let e = refused.expect("a third stream of one principal is refused");
    assert!(e.message().contains("max_streams_per_principal"), "{e:?}");
    assert!(e.message().starts_with("feed:"), "{e:?}");
    // Another principal is served meanwhile.
    let mut admin = with("admin-secret");
    let r = admin
        .get_enterprise(pb::GetEnterpriseRequest {
            uscc: uscc_n(b'1', 9),
        })
        .await
        .expect_err("unknown");
    assert_eq!(r.code(), tonic::Code::NotFound, "{r:?}");
    // A unary call of the feed token still fits its request limit (3).
    let mut feed = with("feed-secret");
    let r = feed
        .get_enterprise(pb::GetEnterpriseRequest {
            uscc: uscc_n(b'1', 9),
        })
        .await;
    assert_eq!(r.map(|_| ()).unwrap_err().code(), tonic::Code::NotFound);
    // Ending the streams frees the slots.
    drop(senders);
    for c in calls {
        let summary = c.await.unwrap().expect("import").into_inner();
        assert_eq!(summary.stored, 1);
    }
    let summary = with("feed-secret")
        .import_records(tokio_stream::iter(Vec::<pb::ImportRecordsRequest>::new()))
        .await
        .expect("a stream slot is free again")
        .into_inner();
    assert_eq!(summary.received, 0);
    s.stop().await;
}

/// A client stream cannot last for ever (issue 15, probe 2): with `stream_total_secs = 2`,
/// an ImportRecords stream that keeps sending (never idle) ends with DEADLINE_EXCEEDED
/// naming the limit after about two seconds.
#[tokio::test]
async fn client_streams_have_a_total_deadline() {
    let s = TestServer::start_with_config(|c| {
        c.stream_total_secs = 2;
        c.stream_idle_secs = 60;
    })
    .await;
    // An empty message every 200 ms, for up to 30 s.
    let chatty = futures::stream::unfold(0, |i| async move {
        if i == 150 {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        Some((pb::ImportRecordsRequest { records: vec![] }, i + 1))
    });
    let t = std::time::Instant::now();
    let mut c = s.client.clone();
    let end = c.import_records(chatty).await.expect_err("cut");
    assert_eq!(end.code(), tonic::Code::DeadlineExceeded, "{end:?}");
    assert!(end.message().contains("stream_total_secs"), "{end:?}");
    let took = t.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(1500) && took < std::time::Duration::from_secs(20),
        "{took:?}"
    );
    s.stop().await;
}

/// Connections that never finish their handshake are closed (issue 15, probe 6): with
/// `handshake_timeout_secs = 1`, a TCP connection that sends nothing and one that sends
/// half the HTTP/2 preface are both closed by the server within a few seconds, while a
/// real client is served.
#[tokio::test]
async fn silent_and_half_open_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with_config(|c| {
        c.handshake_timeout_secs = 1;
        c.connection_idle_secs = 2;
    })
    .await;
    let closed_within = |mut conn: tokio::net::TcpStream| async move {
        let t = std::time::Instant::now();
        let mut buf = [0u8; 256];
        loop {
            match tokio::time::timeout(std::time::Duration::from_secs(8), conn.read(&mut buf)).await
            {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(t.elapsed()),
                Ok(Ok(_)) => continue, // the server's own preface/settings
            }
        }
    };
    let silent = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let mut partial = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    partial.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let (a, b) = tokio::join!(closed_within(silent), closed_within(partial));
    assert!(a.is_some(), "a silent connection stays open");
    assert!(b.is_some(), "a half preface stays open");
    // A full preface then silence: closed after the idle timeout.
    let mut quiet = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    quiet
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    assert!(
        closed_within(quiet).await.is_some(),
        "an idle connection stays open"
    );
    // A real client, idle longer than the idle timeout between calls, is served (the
    // server's keepalive pings are answered, or the channel reconnects).
    let mut c = s.client.clone();
    for _ in 0..2 {
        let e = c
            .get_enterprise(pb::GetEnterpriseRequest {
                uscc: uscc_n(b'1', 1),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    }
    s.stop().await;
}
