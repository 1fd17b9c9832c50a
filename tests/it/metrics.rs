//! The Prometheus endpoint: real gRPC calls, then a scrape over HTTP.

use crate::common::{enterprise, fine, put_enterprise, uscc_n, TestServer};
use credit_risk::proto::{self as pb, classification_service_client::ClassificationServiceClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` over plain HTTP/1.1; returns (status line, body).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP response");
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// The value of the sample of `name` whose labels include every one of `labels`
/// (written `key="value"`); `None` if there is no such sample.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && labels.iter().all(|want| rest.contains(want)))
                .then(|| value.parse().ok())?
        })
        .next()
}

#[tokio::test]
async fn rpc_counts_codes_latency_and_store_gauges_are_exported() {
    let mut t = TestServer::start_with_metrics().await;
    let addr = t.metrics_addr.expect("metrics on");
    let (status, body) = http_get(addr, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(sample(&body, "credit_risk_enterprises", &[]), Some(0.0));

    for n in 1..=3 {
        put_enterprise(&mut t.client, enterprise(&uscc_n(b'1', n))).await;
    }
    let get = |u: String| pb::GetEnterpriseRequest { uscc: u };
    t.client
        .get_enterprise(get(uscc_n(b'1', 1)))
        .await
        .expect("found");
    let missing = t.client.get_enterprise(get(uscc_n(b'1', 99))).await;
    assert_eq!(missing.unwrap_err().code(), tonic::Code::NotFound);
    let bad = t.client.get_enterprise(get("nonsense".into())).await;
    assert_eq!(bad.unwrap_err().code(), tonic::Code::InvalidArgument);
    // Refused by a request guard before any handler (a log sequence that is not one):
    // counted all the same.
    let mut guarded = tonic::Request::new(get(uscc_n(b'1', 1)));
    guarded
        .metadata_mut()
        .insert("credit-risk-min-sequence", "soon".parse().expect("ascii"));
    let refused = t.client.get_enterprise(guarded).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("credit-risk-min-sequence"),
        "{refused:?}"
    );
    // Health and reflection read no store: the header is not theirs to refuse.
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        tonic::transport::Channel::from_shared(format!("http://{}", t.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect"),
    );
    let mut check = tonic::Request::new(tonic_health::pb::HealthCheckRequest::default());
    check
        .metadata_mut()
        .insert("credit-risk-min-sequence", "soon".parse().expect("ascii"));
    assert_eq!(
        health
            .check(check)
            .await
            .expect("served")
            .into_inner()
            .status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // A fine, so the run explains one enterprise by a factor (what the explanation
    // cache keeps; an enterprise without factors is answered from the run's entry).
    let fined = uscc_n(b'1', 1);
    t.client
        .record_penalty(pb::RecordPenaltyRequest {
            request_id: String::new(),
            penalty: Some(fine(
                &fined,
                "沪市监罚〔2026〕77号",
                &credit_risk::domain::Date::today().add_days(-10).to_string(),
                5_000,
            )),
        })
        .await
        .expect("penalty recorded");
    let mut cls = ClassificationServiceClient::connect(format!("http://{}", t.addr))
        .await
        .expect("connect");
    let events = cls
        .run_batch_scoring(pb::RunBatchScoringRequest::default())
        .await
        .expect("batch")
        .into_inner();
    let run = crate::common::scoring_done(events)
        .await
        .expect("a summary");

    let (_, body) = http_get(addr, "/metrics").await;
    // The grpc-ecosystem names and labels (go-grpc-prometheus), so its dashboards work.
    let reg = r#"grpc_service="creditrisk.v1.RegistryService""#;
    let get_m = r#"grpc_method="GetEnterprise""#;
    let unary = r#"grpc_type="unary""#;
    let count = |code: &str| {
        sample(
            &body,
            "grpc_server_handled_total",
            &[reg, get_m, unary, &format!(r#"grpc_code="{code}""#)],
        )
    };
    assert_eq!(count("OK"), Some(1.0), "{body}");
    assert_eq!(count("NotFound"), Some(1.0));
    assert_eq!(count("InvalidArgument"), Some(2.0));
    assert_eq!(count("Internal"), None);
    assert_eq!(
        sample(&body, "grpc_server_started_total", &[reg, get_m, unary]),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &body,
            "grpc_server_handled_total",
            &[r#"grpc_method="UpsertEnterprise""#, r#"grpc_code="OK""#]
        ),
        Some(3.0)
    );
    // A server-streaming call: its status travels in the trailers.
    assert_eq!(
        sample(
            &body,
            "grpc_server_handled_total",
            &[
                r#"grpc_method="RunBatchScoring""#,
                r#"grpc_type="server_stream""#,
                r#"grpc_code="OK""#
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&body, "grpc_server_handling_seconds_count", &[reg, get_m]),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &body,
            "grpc_server_handling_seconds_bucket",
            &[reg, get_m, r#"le="+Inf""#]
        ),
        Some(4.0)
    );
    // Buckets start at 50 µs.
    assert!(
        body.lines()
            .any(|l| l.starts_with("grpc_server_handling_seconds_bucket")
                && l.contains(r#"le="0.00005""#)),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            "credit_risk_build_info",
            &[&format!(r#"version="{}""#, env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    // No gauge is named like a counter.
    assert!(
        !body
            .lines()
            .any(|l| l.starts_with("# TYPE") && l.ends_with(" gauge") && l.contains("_total ")),
        "{body}"
    );
    assert_eq!(
        sample(&body, "credit_risk_grpc_requests_in_flight", &[]),
        Some(0.0)
    );
    assert_eq!(sample(&body, "credit_risk_enterprises", &[]), Some(3.0));
    assert_eq!(
        sample(&body, "credit_risk_current_run_id", &[]),
        Some(run.run_id as f64)
    );
    let per_class: f64 = ["A", "B", "C", "D"]
        .iter()
        .filter_map(|c| {
            sample(
                &body,
                "credit_risk_current_run_enterprises",
                &[&format!(r#"class="{c}""#)],
            )
        })
        .sum();
    assert_eq!(per_class, 3.0);
    assert_eq!(
        sample(&body, "credit_risk_batch_scoring_running", &[]),
        Some(0.0)
    );
    assert!(sample(
        &body,
        "credit_risk_batch_scoring_last_duration_seconds",
        &[]
    )
    .is_some());
    assert!(sample(&body, "credit_risk_store_disk_bytes", &[]).unwrap_or(0.0) > 0.0);
    assert_eq!(
        sample(&body, "credit_risk_repair_cases", &[r#"state="SUBMITTED""#]),
        Some(0.0)
    );
    assert_eq!(
        sample(&body, "credit_risk_repair_cases_overdue", &[]),
        Some(0.0)
    );
    assert!(sample(&body, "process_resident_memory_bytes", &[]).unwrap_or(0.0) > 0.0);
    // No explained classification asked for yet: the cache's figures, at zero.
    for (name, labels) in [
        ("credit_risk_explanation_cache_entries", &[][..]),
        ("credit_risk_explanation_cache_bytes", &[]),
        (
            "credit_risk_explanation_cache_lookups_total",
            &[r#"result="hit""#],
        ),
        (
            "credit_risk_explanation_cache_lookups_total",
            &[r#"result="miss""#],
        ),
    ] {
        assert_eq!(sample(&body, name, labels), Some(0.0), "{name}");
    }
    // The fined enterprise explained three times: computed and kept once, then answered
    // from memory.
    for _ in 0..3 {
        let c = cls
            .get_classification(pb::GetClassificationRequest {
                uscc: fined.clone(),
                view: pb::ClassificationView::Full as i32,
                ..Default::default()
            })
            .await
            .expect("classified")
            .into_inner();
        assert!(!c.factors.is_empty(), "{c:?}");
    }
    let (_, cached) = http_get(addr, "/metrics").await;
    let lookups = |result: &str| {
        sample(
            &cached,
            "credit_risk_explanation_cache_lookups_total",
            &[&format!(r#"result="{result}""#)],
        )
    };
    assert_eq!((lookups("miss"), lookups("hit")), (Some(1.0), Some(2.0)));
    assert_eq!(
        sample(&cached, "credit_risk_explanation_cache_entries", &[]),
        Some(1.0)
    );
    assert!(sample(&cached, "credit_risk_explanation_cache_bytes", &[]).unwrap_or(0.0) > 0.0);
    // Another scrape, no new question: the counters stay where the store's counts are.
    let (_, again) = http_get(addr, "/metrics").await;
    assert_eq!(
        sample(
            &again,
            "credit_risk_explanation_cache_lookups_total",
            &[r#"result="hit""#]
        ),
        Some(2.0)
    );

    // The dashboard and the alert rules in deploy/ name only metrics the server exports.
    let families: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let dashboard = std::fs::read_to_string(root.join("grafana-dashboard.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| p.len() >= 8));
    let alerts = std::fs::read_to_string(root.join("prometheus-alerts.yml")).unwrap();
    let mut named = 0;
    for text in [&dashboard, &alerts] {
        let words = text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
        for w in words.filter(|w| {
            ["grpc_server_", "credit_risk_", "process_"]
                .iter()
                .any(|p| w.starts_with(p))
        }) {
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| w.strip_suffix(s).filter(|f| families.contains(f)))
                .unwrap_or(w);
            assert!(
                families.contains(&family),
                "deploy/ names {w}, not exported"
            );
            named += 1;
        }
    }
    assert!(named > 20, "{named}");

    let (status, _) = http_get(addr, "/nope").await;
    assert!(status.contains("404"), "{status}");
    t.stop().await;
}
