//! Early warning over real gRPC (issue 17): alerts ride in the batch of their cause, a
//! watcher resumes without gaps or repeats, triage steps are checked, and a district
//! token handles only its district.

use std::time::Duration;

use crate::common::*;
use credit_risk::{
    domain::Date,
    proto::{
        self as pb, alert_service_client::AlertServiceClient,
        classification_service_client::ClassificationServiceClient,
    },
    server::auth::{hash_token, AuthConfig, Role, TokenConfig},
};
use tonic::{transport::Channel, Code};

const TODAY: &str = "2026-06-30";

fn listing(uscc: &str, kind: pb::ListKind) -> pb::AddListingRequest {
    pb::AddListingRequest {
        request_id: String::new(),
        listing: Some(pb::Listing {
            uscc: uscc.into(),
            kind: kind as i32,
            reason: pb::ListingReason::UnreachableAtAddress as i32,
            listed_on: TODAY.into(),
            authority: "浦东".into(),
            ..Default::default()
        }),
    }
}

async fn score(addr: std::net::SocketAddr, model: &str, dry_run: bool) -> pb::ScoringRun {
    let mut k = ClassificationServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let events = k
        .run_batch_scoring(pb::RunBatchScoringRequest {
            model_version: model.into(),
            dry_run,
            ..Default::default()
        })
        .await
        .expect("score")
        .into_inner();
    scoring_done(events).await.expect("a complete run")
}

/// The next `n` alerts of a watch stream (each within 10 s).
async fn next_alerts(s: &mut tonic::Streaming<pb::Alert>, n: usize) -> Vec<pb::Alert> {
    let mut out = Vec::new();
    while out.len() < n {
        let a = tokio::time::timeout(Duration::from_secs(10), s.message())
            .await
            .expect("an alert within 10 s")
            .expect("stream ok")
            .expect("stream open");
        out.push(a);
    }
    out
}

fn kind(a: &pb::Alert) -> pb::AlertKind {
    pb::AlertKind::try_from(a.kind).expect("known kind")
}

#[tokio::test]
async fn alerts_ride_with_their_cause_resume_exactly_and_are_triaged() {
    let mut t = TestServer::start_on(Date::parse("today", TODAY).unwrap()).await;
    // A bulk import of history (a generated city with listings and penalties) raises none.
    let imported = credit_risk::server::demo::load(&t.store, 300)
        .await
        .unwrap();
    assert!(imported > 300);
    let (e1, e2, e3) = (uscc_n(b'1', 1), uscc_n(b'1', 2), uscc_n(b'1', 3));
    for u in [&e1, &e2, &e3] {
        put_enterprise(&mut t.client, enterprise(u)).await;
    }
    let ch = Channel::from_shared(format!("http://{}", t.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut al = AlertServiceClient::new(ch);
    let first = score(t.addr, "", false).await;
    let mut watch = al
        .watch_alerts(pb::WatchAlertsRequest::default())
        .await
        .expect("watch")
        .into_inner();

    // A serious-illegal listing: the listing itself, and the class it drives to D.
    t.client
        .add_listing(listing(&e1, pb::ListKind::SeriousIllegal))
        .await
        .expect("listing");
    // Three penalties within the window: the third reaches the threshold.
    for (n, day) in [(1, "2026-01-10"), (2, "2026-03-10"), (3, "2026-06-29")] {
        t.client
            .record_penalty(pb::RecordPenaltyRequest {
                request_id: String::new(),
                penalty: Some(fine(&e2, &format!("沪市监浦处〔2026〕{n}号"), day, 5_000)),
            })
            .await
            .expect("penalty");
    }
    let all = al
        .list_alerts(pb::ListAlertsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .alerts;
    assert!(
        all.iter().all(|a| !a.cause.starts_with("ImportRecords")),
        "{all:?}"
    );
    let seqs: Vec<i64> = all.iter().map(|a| a.sequence).collect();
    assert_eq!(seqs, (1..=all.len() as i64).collect::<Vec<_>>(), "no gaps");
    let of = |k: pb::AlertKind| all.iter().filter(move |a| kind(a) == k);
    let listed: Vec<_> = of(pb::AlertKind::ListedSeriousIllegal).collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].uscc, e1);
    assert!(
        listed[0].cause.contains("AddListing"),
        "{}",
        listed[0].cause
    );
    assert!(
        listed[0].records[0].contains(TODAY),
        "{:?}",
        listed[0].records
    );
    let worse: Vec<_> = of(pb::AlertKind::ClassWorsened)
        .filter(|a| a.uscc == e1)
        .collect();
    assert_eq!(worse.len(), 1, "the listing worsened the class: {all:?}");
    assert!(worse[0].class_after > worse[0].class_before);
    assert_eq!(worse[0].run_id, first.run_id);
    let threshold: Vec<_> = of(pb::AlertKind::PenaltyThreshold).collect();
    assert_eq!(threshold.len(), 1, "{all:?}");
    assert_eq!(threshold[0].uscc, e2);
    assert_eq!(threshold[0].records.len(), 3);
    assert!(threshold[0]
        .records
        .iter()
        .any(|r| r.contains("〔2026〕3号")));

    // The watcher opened before the writes saw each of them, in order.
    let seen = next_alerts(&mut watch, all.len()).await;
    assert_eq!(seen, all);

    // A subscriber resuming from the middle gets exactly the rest, then new ones.
    let k = all.len() as i64 / 2;
    let mut resumed = al
        .watch_alerts(pb::WatchAlertsRequest {
            from_sequence: k,
            ..Default::default()
        })
        .await
        .expect("resume")
        .into_inner();
    let rest = next_alerts(&mut resumed, all.len() - k as usize).await;
    assert_eq!(rest.as_slice(), &all[k as usize..]);
    t.client
        .add_listing(listing(&e3, pb::ListKind::AbnormalOperations))
        .await
        .expect("listing");
    let raised = al
        .list_alerts(pb::ListAlertsRequest {
            after_sequence: all.len() as i64,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert!(
        raised
            .iter()
            .any(|a| kind(a) == pb::AlertKind::ListedAbnormal),
        "{raised:?}"
    );
    let new = next_alerts(&mut resumed, raised.len()).await;
    assert_eq!(new, raised);
    assert_eq!(
        new[0].sequence,
        all.len() as i64 + 1,
        "nothing twice, no gap"
    );
    assert_eq!(next_alerts(&mut watch, raised.len()).await, new);

    // Filters: by kind; an unknown kind or a negative sequence is refused by name.
    let by_kind = al
        .list_alerts(pb::ListAlertsRequest {
            filter: Some(pb::AlertFilter {
                kinds: vec![pb::AlertKind::PenaltyThreshold as i32],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_kind.alerts.len(), 1);
    let err = al
        .list_alerts(pb::ListAlertsRequest {
            filter: Some(pb::AlertFilter {
                kinds: vec![99],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("filter.kinds[0]"),
        "{}",
        err.message()
    );
    let err = al
        .watch_alerts(pb::WatchAlertsRequest {
            from_sequence: -1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("from_sequence"),
        "{}",
        err.message()
    );

    // Triage: acknowledge, assign, close; a second close must agree.
    let s1 = threshold[0].sequence;
    let a = al
        .acknowledge_alert(pb::AcknowledgeAlertRequest {
            sequence: s1,
            note: "seen".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.state, pb::AlertState::Acknowledged as i32);
    let a = al
        .assign_alert(pb::AssignAlertRequest {
            sequence: s1,
            assignee: "浦东稽查一队".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.assignee, "浦东稽查一队");
    let close = |outcome: pb::AlertOutcome, reason: &str| pb::CloseAlertRequest {
        request_id: String::new(),
        sequence: s1,
        outcome: outcome as i32,
        reason: reason.into(),
    };
    let err = al
        .close_alert(close(pb::AlertOutcome::Dismissed, " "))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("reason"), "{}", err.message());
    let a = al
        .close_alert(close(pb::AlertOutcome::ProblemFound, "inspected 07-01"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.state, pb::AlertState::Closed as i32);
    assert_eq!(a.history.len(), 3);
    let again = al
        .close_alert(close(pb::AlertOutcome::ProblemFound, "inspected 07-01"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, a, "the same close again changes nothing");
    let err = al
        .close_alert(close(pb::AlertOutcome::NoProblemFound, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().starts_with("outcome"), "{}", err.message());
    let err = al
        .assign_alert(pb::AssignAlertRequest {
            sequence: s1,
            assignee: "another".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = al
        .acknowledge_alert(pb::AcknowledgeAlertRequest {
            sequence: 9_999,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().starts_with("sequence"), "{}", err.message());
    let closed = al
        .list_alerts(pb::ListAlertsRequest {
            states: vec![pb::AlertState::Closed as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].outcome, pb::AlertOutcome::ProblemFound as i32);

    // A batch run with a stricter model that becomes current alerts every enterprise it
    // puts in a worse class, naming the run; a dry run alerts nobody.
    let mut k = ClassificationServiceClient::connect(format!("http://{}", t.addr))
        .await
        .unwrap();
    let m = k
        .get_model(pb::GetModelRequest::default())
        .await
        .unwrap()
        .into_inner();
    let strict = m
        .toml
        .replace(
            &format!("version = \"{}\"", m.version),
            "version = \"strict-1\"",
        )
        .replace("b = 4.5", "b = 0.5")
        .replace("c = 12", "c = 0.6")
        .replace("d = 30", "d = 0.7");
    k.register_model(pb::RegisterModelRequest {
        toml: strict,
        ..Default::default()
    })
    .await
    .expect("register the strict model");
    let before = next_seq(&mut al).await;
    score(t.addr, "strict-1", true).await;
    assert_eq!(next_seq(&mut al).await, before, "a dry run raises no alert");
    let run = score(t.addr, "strict-1", false).await;
    let page = al
        .list_alerts(pb::ListAlertsRequest {
            after_sequence: before - 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert!(!page.is_empty(), "the strict run worsened someone");
    for a in &page {
        assert_eq!(kind(a), pb::AlertKind::ClassWorsened);
        assert_eq!(a.records, [format!("run/{}", run.run_id)]);
        assert_eq!(a.run_id, run.run_id);
        assert!(a.class_after > a.class_before, "{a:?}");
    }
    t.stop().await;
}

/// The sequence number the next alert will get.
async fn next_seq(al: &mut AlertServiceClient<Channel>) -> i64 {
    let mut after = 0;
    loop {
        let r = al
            .list_alerts(pb::ListAlertsRequest {
                after_sequence: after,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if r.next_after_sequence == after {
            return after + 1;
        }
        after = r.next_after_sequence;
    }
}

#[tokio::test]
async fn a_district_token_sees_and_handles_only_its_district() {
    let token = |name: &str, secret: &str, role, regions: Vec<String>| TokenConfig {
        name: name.into(),
        sha256: hash_token(secret),
        role,
        regions,
    };
    let t = TestServer::start_with_auth(AuthConfig {
        tokens: vec![
            token("admin", "admin-secret", Role::Admin, vec![]),
            token(
                "huangpu",
                "huangpu-secret",
                Role::Scheduler,
                vec!["310101".into()],
            ),
        ],
    })
    .await;
    let ch = Channel::from_shared(format!("http://{}", t.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut reg =
        credit_risk::proto::registry_service_client::RegistryServiceClient::with_interceptor(
            ch.clone(),
            Bearer(Some("admin-secret")),
        );
    let u = uscc_n(b'1', 7); // registered in Pudong (310115)
    reg.upsert_enterprise(pb::UpsertEnterpriseRequest {
        request_id: String::new(),
        enterprise: Some(enterprise(&u)),
    })
    .await
    .unwrap();
    reg.add_listing(listing(&u, pb::ListKind::AbnormalOperations))
        .await
        .unwrap();
    let mut admin = AlertServiceClient::with_interceptor(ch.clone(), Bearer(Some("admin-secret")));
    let mut huangpu = AlertServiceClient::with_interceptor(ch, Bearer(Some("huangpu-secret")));
    let all = admin
        .list_alerts(pb::ListAlertsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert_eq!(all.len(), 1);
    let mine = huangpu
        .list_alerts(pb::ListAlertsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert!(mine.is_empty(), "Pudong's alert is not Huangpu's: {mine:?}");
    let err = huangpu
        .watch_alerts(pb::WatchAlertsRequest {
            filter: Some(pb::AlertFilter {
                region_prefix: "310115".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().starts_with("filter.region_prefix"),
        "{}",
        err.message()
    );
    let err = huangpu
        .acknowledge_alert(pb::AcknowledgeAlertRequest {
            sequence: all[0].sequence,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().starts_with("sequence"), "{}", err.message());
    t.stop().await;
}

#[tokio::test]
async fn a_repair_case_past_its_due_date_alerts_once() {
    // Filed on 2026-06-30 (a fixed clock); the server restarted on the real day, months
    // later, finds its acceptance late.
    let t = TestServer::start_on(Date::parse("today", TODAY).unwrap()).await;
    let mut c = t.client.clone();
    let u = uscc_n(b'1', 90);
    let mut e = enterprise(&u);
    e.established_on = "2025-01-02".into();
    put_enterprise(&mut c, e).await;
    let mut l = listing(&u, pb::ListKind::AbnormalOperations);
    if let Some(x) = l.listing.as_mut() {
        x.listed_on = "2026-05-04".into();
    }
    c.add_listing(l).await.expect("listing");
    let mut r =
        credit_risk::proto::credit_repair_service_client::CreditRepairServiceClient::connect(
            format!("http://{}", t.addr),
        )
        .await
        .unwrap();
    let case = r
        .submit_repair(pb::SubmitRepairRequest {
            request_id: String::new(),
            uscc: u.clone(),
            target: Some(pb::RepairTarget {
                target: Some(pb::repair_target::Target::Listing(pb::ListingKey {
                    kind: pb::ListKind::AbnormalOperations as i32,
                    listed_on: "2026-05-04".into(),
                    reason: pb::ListingReason::UnreachableAtAddress as i32,
                })),
            }),
            reason: "可通过登记住所联系".into(),
            commitment: "守信承诺书 doc://commit/90".into(),
            commitment_signed: true,
            evidence: vec!["doc://site-visit/2026-06".into()],
        })
        .await
        .expect("submit")
        .into_inner();
    let tmp = t.stop().await.expect("the store's directory");
    let overdue = |a: &pb::Alert| kind(a) == pb::AlertKind::RepairOverdue;
    for restart in 0..2 {
        let t = TestServer::start_at(tmp.path()).await;
        let ch = Channel::from_shared(format!("http://{}", t.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut al = AlertServiceClient::new(ch);
        // The check runs at start, beside the first requests; after a restart it must
        // find the step alerted already (give it time to run).
        if restart > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let mut found = Vec::new();
        for _ in 0..50 {
            found = al
                .list_alerts(pb::ListAlertsRequest::default())
                .await
                .unwrap()
                .into_inner()
                .alerts
                .into_iter()
                .filter(overdue)
                .collect();
            if !found.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(found.len(), 1, "restart {restart}: one alert per late step");
        assert_eq!(found[0].uscc, u);
        assert!(
            found[0].records[0].starts_with(&format!("repair_case/{} due ", case.case_id)),
            "{:?}",
            found[0].records
        );
        t.stop().await;
    }
}

/// A watcher that stops reading while alerts wait is told so — ABORTED, naming the
/// sequence to resume from — instead of being skipped silently or slowing writers, and
/// resuming from that sequence misses nothing.
#[tokio::test]
async fn a_watcher_that_stops_reading_is_told_where_to_resume() {
    let t = TestServer::start_with_config(|c| c.stream_idle_secs = 1).await;
    // A small receive window, so the unread alerts back up into the server quickly.
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", t.addr))
        .unwrap()
        .initial_stream_window_size(Some(16 * 1024))
        .initial_connection_window_size(Some(16 * 1024))
        .connect()
        .await
        .unwrap();
    let mut al = AlertServiceClient::new(ch);
    let mut watch = al
        .watch_alerts(pb::WatchAlertsRequest::default())
        .await
        .unwrap()
        .into_inner();
    const N: u32 = 1200;
    let usccs: Vec<String> = (0..N).map(|n| uscc_n(b'1', 5000 + n)).collect();
    let writes = usccs.iter().map(|u| {
        let mut c = t.client.clone();
        let u = u.clone();
        async move {
            put_enterprise(&mut c, enterprise(&u)).await;
            let mut l = listing(&u, pb::ListKind::AbnormalOperations);
            l.listing.as_mut().unwrap().listed_on = Date::today().to_string();
            c.add_listing(l).await.expect("listing");
        }
    });
    // Every write is answered although nobody reads the watch: writers never wait.
    let all = futures::StreamExt::collect::<Vec<()>>(futures::StreamExt::buffer_unordered(
        futures::stream::iter(writes),
        64,
    ));
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("writes finish while the watcher reads nothing");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (mut got, mut last) = (0u64, 0i64);
    let status = loop {
        match tokio::time::timeout(Duration::from_secs(10), watch.message()).await {
            Ok(Ok(Some(a))) => {
                assert_eq!(a.sequence, last + 1, "in order, no gap");
                last = a.sequence;
                got += 1;
            }
            Ok(Err(s)) => break s,
            other => panic!("expected ABORTED after the backlog, got {other:?}"),
        }
    };
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert!(
        got < u64::from(N),
        "the watcher fell behind before the end ({got})"
    );
    assert!(
        status
            .message()
            .contains(&format!("resume from sequence {last}")),
        "{status:?} after {last}"
    );
    // Resuming from there gets exactly the rest.
    let mut rest = al
        .watch_alerts(pb::WatchAlertsRequest {
            from_sequence: last,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let tail = next_alerts(&mut rest, (u64::from(N) - got) as usize).await;
    assert_eq!(tail.first().map(|a| a.sequence), Some(last + 1));
    assert_eq!(tail.last().map(|a| a.sequence), Some(i64::from(N)));
    t.stop().await;
}

/// 列异列严 (issue 19 item 4): failed quality samplings in two consecutive calendar years
/// (`sampling_failure_years`, default 2) raise one REPEATED_SAMPLING_FAILURE alert naming
/// them, with the failure that completes the streak; a pass or a gap year raises none.
#[tokio::test]
async fn failed_samplings_in_consecutive_years_raise_a_listing_alert() {
    let mut t = TestServer::start_on(Date::parse("today", TODAY).unwrap()).await;
    let u = uscc_n(b'1', 7);
    put_enterprise(&mut t.client, enterprise(&u)).await;
    let mut al = AlertServiceClient::connect(format!("http://{}", t.addr))
        .await
        .unwrap();
    let sampling = |id: &str, on: &str, passed: bool| pb::RecordSamplingResultRequest {
        request_id: String::new(),
        sampling: Some(pb::QualitySamplingResult {
            sample_id: id.into(),
            uscc: u.clone(),
            sampled_on: on.into(),
            category: pb::SamplingCategory::Product as i32,
            product: "电动自行车".into(),
            batch: String::new(),
            passed,
            authority: "上海市市场监督管理局".into(),
            recorded_at: None,
        }),
    };
    let repeated = |al: &mut AlertServiceClient<Channel>| {
        let mut al = al.clone();
        async move {
            al.list_alerts(pb::ListAlertsRequest {
                filter: Some(pb::AlertFilter {
                    kinds: vec![pb::AlertKind::RepeatedSamplingFailure as i32],
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .alerts
        }
    };
    for (id, on, passed) in [
        ("CC-2024-1", "2024-05-01", false),
        ("CC-2025-1", "2025-05-01", true),
        ("CC-2026-1", "2026-05-01", false),
    ] {
        t.client
            .record_sampling_result(sampling(id, on, passed))
            .await
            .unwrap();
    }
    assert!(
        repeated(&mut al).await.is_empty(),
        "2024 and 2026: a gap year"
    );
    t.client
        .record_sampling_result(sampling("CC-2025-2", "2025-11-20", false))
        .await
        .unwrap();
    let got = repeated(&mut al).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].uscc, u);
    assert_eq!(got[0].records, ["CC-2024-1", "CC-2025-2", "CC-2026-1"]);
    assert!(
        got[0].cause.starts_with("RecordSamplingResult"),
        "{:?}",
        got[0].cause
    );
    // Another failure within the streak raises nothing more.
    t.client
        .record_sampling_result(sampling("CC-2026-2", "2026-06-01", false))
        .await
        .unwrap();
    assert_eq!(repeated(&mut al).await.len(), 1);
}
