//! ClassificationService end to end over real gRPC on a loopback port.

use std::sync::Arc;

use crate::common::*;
use credit_risk::{
    domain::{Date, Model},
    proto::{self as pb, classification_service_client::ClassificationServiceClient},
    store::{op, RunState},
};
use tonic::{transport::Channel, Code};

async fn classification_client(s: &TestServer) -> ClassificationServiceClient<Channel> {
    ClassificationServiceClient::connect(format!("http://{}", s.addr))
        .await
        .expect("connect")
}

/// A young enterprise with no supervision flag and nothing on record: no reports are
/// due yet, so it scores only the new-enterprise points.
fn young(uscc: &str, rep: &str) -> pb::Enterprise {
    let mut e = enterprise(uscc);
    e.established_on = Date::today().add_days(-100).to_string();
    e.supervision_flags.clear();
    e.legal_rep_id_hash = rep.into();
    e
}

fn rep(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

async fn add_listing(c: &mut RegistryClient, uscc: &str, kind: pb::ListKind, days_ago: i32) {
    c.add_listing(pb::AddListingRequest {
        request_id: String::new(),
        listing: Some(pb::Listing {
            uscc: uscc.into(),
            kind: kind as i32,
            reason: pb::ListingReason::UnreachableAtAddress as i32,
            listed_on: Date::today().add_days(-days_ago).to_string(),
            authority: "上海市市场监督管理局".into(),
            ..Default::default()
        }),
    })
    .await
    .expect("listing");
}

/// Runs a batch and returns the final summary, checking the progress events.
async fn run_batch(
    c: &mut ClassificationServiceClient<Channel>,
    req: pb::RunBatchScoringRequest,
) -> Result<pb::ScoringRun, tonic::Status> {
    crate::common::scoring_done(c.run_batch_scoring(req).await?.into_inner()).await
}

fn today_req() -> pb::RunBatchScoringRequest {
    pb::RunBatchScoringRequest {
        as_of: Date::today().to_string(),
        ..Default::default()
    }
}

async fn classify(c: &mut ClassificationServiceClient<Channel>, u: &str) -> pb::Classification {
    c.get_classification(pb::GetClassificationRequest {
        uscc: u.into(),
        run_id: 0,
        ..Default::default()
    })
    .await
    .expect("classification")
    .into_inner()
}

fn codes(c: &pb::Classification) -> Vec<&str> {
    c.factors.iter().map(|f| f.code.as_str()).collect()
}

#[tokio::test]
async fn model_is_served_and_bad_models_are_refused_naming_the_key() {
    let s = TestServer::start().await;
    let mut k = classification_client(&s).await;
    let m = k
        .get_model(pb::GetModelRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(m.active);
    assert_eq!(m.version, Model::builtin().version);
    assert!(m.cut_point_b < m.cut_point_c && m.cut_point_c < m.cut_point_d);
    let fine = m
        .indicators
        .iter()
        .find(|i| i.code == "PENALTY_FINE")
        .unwrap();
    assert_eq!(
        (fine.reads.as_str(), fine.dimension.as_str()),
        ("penalty", "supervision")
    );
    assert!(fine.window_days > 0);
    assert_eq!(m.hard_rules.len(), 2);

    let bad = m
        .toml
        .replace("code = \"PENALTY_FINE\"", "code = \"PENALTY_FIEN\"");
    let err = k
        .register_model(pb::RegisterModelRequest {
            toml: bad,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("toml.indicator[7].code"),
        "{}",
        err.message()
    );
    let overlapping = m.toml.replace("c = 12", "c = 3");
    let err = k
        .register_model(pb::RegisterModelRequest {
            toml: overlapping,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("cut_points"), "{}", err.message());
    let changed_same_version = m.toml.replace("d = 30", "d = 50");
    let err = k
        .register_model(pb::RegisterModelRequest {
            toml: changed_same_version,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let err = k
        .get_model(pb::GetModelRequest {
            version: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    s.stop().await;
}

#[tokio::test]
async fn batch_scoring_classifies_explains_and_rescores_on_writes() {
    let s = TestServer::start().await;
    let mut c = s.client.clone();
    let mut k = classification_client(&s).await;
    let clean = uscc_n(b'1', 10);
    let fined = uscc_n(b'1', 11);
    let serious = uscc_n(b'1', 12);
    let abnormal = uscc_n(b'1', 13);
    let related = uscc_n(b'1', 14);

    let err = k
        .get_classification(pb::GetClassificationRequest {
            uscc: clean.clone(),
            run_id: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "no run yet");

    for (u, r) in [
        (&clean, 1),
        (&fined, 2),
        (&serious, 3),
        (&abnormal, 4),
        (&related, 3),
    ] {
        put_enterprise(&mut c, young(u, &rep(r))).await;
    }
    let recent = Date::today().add_days(-30).to_string();
    c.record_penalty(pb::RecordPenaltyRequest {
        request_id: String::new(),
        penalty: Some(fine(&fined, "沪浦市监罚〔2026〕1号", &recent, 5000)),
    })
    .await
    .unwrap();
    add_listing(&mut c, &serious, pb::ListKind::SeriousIllegal, 20).await;
    add_listing(&mut c, &abnormal, pb::ListKind::AbnormalOperations, 20).await;

    let run = run_batch(&mut k, today_req()).await.unwrap();
    assert!(run.current && !run.dry_run);
    assert_eq!(run.state, "COMPLETE");
    assert_eq!(run.enterprises, 5);
    let counts = run.classes.unwrap();
    assert_eq!(counts.a + counts.b + counts.c + counts.d, 5);
    assert_eq!(run.related, 1);
    assert_eq!(run.regions.len(), 1);
    assert_eq!(run.regions[0].region_code, "310115");

    let a = classify(&mut k, &clean).await;
    assert_eq!(a.risk_class, pb::RiskClass::A as i32);
    assert_eq!(codes(&a), ["NEW_ENTERPRISE"]);
    assert_eq!(a.run_id, run.run_id);
    assert!(a.factors_reproduce_score);
    assert!(a.rescored_cause.is_empty());

    let f = classify(&mut k, &fined).await;
    assert!(f.score > a.score);
    let pen = f.factors.iter().find(|x| x.code == "PENALTY_FINE").unwrap();
    assert_eq!(pen.record, "penalty/沪浦市监罚〔2026〕1号");
    assert!(!pen.description_zh.is_empty() && !pen.description_en.is_empty());
    let sum: f64 = f.factors.iter().map(|x| x.points).sum();
    assert!((sum - f.score).abs() < 1e-6, "factors add up to the score");

    let d = classify(&mut k, &serious).await;
    assert_eq!(d.risk_class, pb::RiskClass::D as i32);
    assert!(codes(&d).contains(&"SERIOUS_ILLEGAL_LISTING"));
    let ab = classify(&mut k, &abnormal).await;
    assert!(ab.risk_class >= pb::RiskClass::C as i32);
    let rel = classify(&mut k, &related).await;
    let relf = rel
        .factors
        .iter()
        .find(|x| x.code == "RELATED_HIGH_RISK")
        .expect("relation factor");
    assert_eq!(relf.record, "relation/legal_representative");
    assert_eq!(relf.dimension, "relations");

    // A write re-scores at once, recording its cause, on top of the same run.
    c.record_penalty(pb::RecordPenaltyRequest {
        request_id: String::new(),
        penalty: Some(fine(&clean, "沪浦市监罚〔2026〕2号", &recent, 200_000)),
    })
    .await
    .unwrap();
    let after = classify(&mut k, &clean).await;
    assert_eq!(after.run_id, run.run_id);
    assert!(after.score > a.score);
    assert_eq!(
        after.rescored_cause,
        "RecordPenalty penalty/沪浦市监罚〔2026〕2号"
    );
    assert!(after.rescored_at.is_some());
    assert!(codes(&after).contains(&"PENALTY_LARGE_AMOUNT"));
    assert!(after.factors_reproduce_score);

    // A new enterprise registered after the run is classified too.
    let late = uscc_n(b'1', 15);
    put_enterprise(&mut c, young(&late, &rep(9))).await;
    let l = classify(&mut k, &late).await;
    assert_eq!(l.rescored_cause, "UpsertEnterprise");

    // The credit report carries the class and its explanation.
    let report = c
        .get_credit_report(pb::GetCreditReportRequest {
            uscc: clean.clone(),
            as_of: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let rc = report.classification.expect("class in the credit report");
    assert_eq!(rc.score, after.score);

    let runs = k
        .list_scoring_runs(pb::ListScoringRunsRequest {})
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert_eq!(runs.len(), 1);
    let got = k
        .get_scoring_run(pb::GetScoringRunRequest { run_id: run.run_id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.classes, run.classes);
    // Issue 14: the rules version in force on the run's as-of date.
    assert_eq!(got.rules_version, "shanghai-2022-07-01");
    assert_eq!(run.rules_version, got.rules_version);
    let err = k
        .get_scoring_run(pb::GetScoringRunRequest { run_id: 99 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = k
        .get_classification(pb::GetClassificationRequest {
            uscc: "91310115MA1K3BTP2C".into(),
            run_id: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("uscc"));

    // After a restart the re-scores are still found (the server relearns which
    // enterprises have one), and an untouched enterprise still has the run's class.
    let dir = s.dir.clone();
    let tmp = s.stop().await;
    let s = TestServer::start_at(&dir).await;
    let mut k = classification_client(&s).await;
    let again = classify(&mut k, &clean).await;
    assert_eq!(again.score, after.score);
    assert_eq!(again.rescored_cause, after.rescored_cause);
    assert_eq!(
        classify(&mut k, &late).await.rescored_cause,
        "UpsertEnterprise"
    );
    let untouched = classify(&mut k, &serious).await;
    assert_eq!(untouched.risk_class, d.risk_class);
    assert!(untouched.rescored_cause.is_empty());
    s.stop().await;
    drop(tmp);
}

#[tokio::test]
async fn bad_batch_requests_are_refused() {
    let s = TestServer::start().await;
    let mut c = s.client.clone();
    let mut k = classification_client(&s).await;
    put_enterprise(&mut c, young(&uscc_n(b'1', 1), "")).await;
    let err = run_batch(
        &mut k,
        pb::RunBatchScoringRequest {
            as_of: Date::today().add_days(1).to_string(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("as_of"));
    let err = run_batch(
        &mut k,
        pb::RunBatchScoringRequest {
            model_version: "no-such-model".into(),
            ..today_req()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("model_version"));

    // A run being computed (begun directly in the store) refuses a second one.
    let model = s.store.active_model().unwrap().unwrap();
    let begun = s
        .store
        .write(op::BeginRun {
            model,
            as_of: Date::today(),
            dry_run: false,
            requested_by: "test".into(),
            beside: None,
        })
        .await
        .unwrap();
    let err = run_batch(&mut k, today_req()).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains(&begun.id.to_string()));
    s.store
        .write(op::AbortRun {
            id: begun.id,
            error: "test".into(),
        })
        .await
        .unwrap();
    let run = run_batch(&mut k, today_req()).await.unwrap();
    assert!(run.current);
    s.stop().await;
}

/// Registers a stricter candidate model (fines weigh three times as much) and runs it
/// as a dry run.
async fn strict_dry_run(k: &mut ClassificationServiceClient<Channel>) -> pb::ScoringRun {
    let toml = Model::builtin()
        .source
        .replace("version = \"cr-2026.4\"", "version = \"cr-2026.4-strict\"")
        .replace(
            "code = \"PENALTY_FINE\"\ndimension = \"supervision\"\nreads = \"penalty\"\npoints = 8",
            "code = \"PENALTY_FINE\"\ndimension = \"supervision\"\nreads = \"penalty\"\npoints = 24",
        );
    let m = k
        .register_model(pb::RegisterModelRequest {
            toml,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!m.active);
    let dry = run_batch(
        k,
        pb::RunBatchScoringRequest {
            model_version: m.version.clone(),
            dry_run: true,
            ..today_req()
        },
    )
    .await
    .unwrap();
    assert!(dry.dry_run && !dry.current);
    dry
}

async fn score_in(k: &mut ClassificationServiceClient<Channel>, u: &str, run_id: u64) -> f64 {
    k.get_classification(pb::GetClassificationRequest {
        uscc: u.into(),
        run_id,
        ..Default::default()
    })
    .await
    .expect("classification in run")
    .into_inner()
    .score
}

async fn penalise(c: &mut RegistryClient, u: &str, decision: &str, amount: i64) {
    c.record_penalty(pb::RecordPenaltyRequest {
        request_id: String::new(),
        penalty: Some(fine(
            u,
            decision,
            &Date::today().add_days(-10).to_string(),
            amount,
        )),
    })
    .await
    .unwrap();
}

/// Issue 21 item 5: a pending dry run's view is loaded after the open, by the writer
/// before its first job. Reads meanwhile answer from its stored results; a write after
/// the restart still re-scores onto it (it is live before any write applies), and it
/// can be activated.
#[tokio::test]
async fn a_pending_dry_run_is_live_for_every_write_after_a_restart() {
    let s = TestServer::start().await;
    let mut c = s.client.clone();
    let mut k = classification_client(&s).await;
    let fined = uscc_n(b'1', 24);
    put_enterprise(&mut c, young(&fined, "")).await;
    penalise(&mut c, &fined, "沪浦市监罚〔2026〕11号", 100).await;
    run_batch(&mut k, today_req()).await.unwrap();
    let dry = strict_dry_run(&mut k).await;
    let before = score_in(&mut k, &fined, dry.run_id).await;
    let dir = s.dir.clone();
    let tmp = s.stop().await;

    let s = TestServer::start_at(&dir).await;
    let mut c = s.client.clone();
    let mut k = classification_client(&s).await;
    // Whether or not the view is loaded yet, the run answers by id.
    assert_eq!(score_in(&mut k, &fined, dry.run_id).await, before);
    // A second fine, written after the restart, moves the dry run's score too.
    penalise(&mut c, &fined, "沪浦市监罚〔2026〕12号", 100).await;
    assert!(!s.store.loading());
    let after = score_in(&mut k, &fined, dry.run_id).await;
    assert!(
        after > before,
        "{after} > {before}: the write re-scored onto the dry run"
    );
    let active = k
        .activate_scoring_run(pb::ActivateScoringRunRequest {
            request_id: String::new(),
            run_id: dry.run_id,
            reason: "approved after the restart".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(active.current);
    assert_eq!(classify(&mut k, &fined).await.score, after);
    s.stop().await;
    drop(tmp);
}

/// A pending dry run that cannot be read back fails the writer's start closed: the
/// server opens and reads are served (the current run), but no write is acknowledged
/// without every live run, and the fault names the run.
#[tokio::test]
async fn a_damaged_pending_dry_run_fails_writes_closed() {
    use credit_risk::store::{scoring, Store, StoreOptions};
    let s = TestServer::start().await;
    let mut c = s.client.clone();
    let mut k = classification_client(&s).await;
    let u = uscc_n(b'1', 25);
    put_enterprise(&mut c, young(&u, "")).await;
    run_batch(&mut k, today_req()).await.unwrap();
    let dry = strict_dry_run(&mut k).await;
    let dir = s.dir.clone();
    let tmp = s.stop().await;
    {
        let db = open_sled_directly(&dir);
        let reg = db.open_tree("registry").unwrap();
        let (key, _) = reg
            .scan_prefix(scoring::blocks_prefix(dry.run_id))
            .next()
            .unwrap()
            .unwrap();
        reg.insert(key, &b"\x01damaged"[..]).unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(&dir, StoreOptions::default()).unwrap();
    let uscc = credit_risk::domain::Uscc::parse(&u).unwrap();
    assert!(store.class_in_run(&uscc, None).is_ok(), "reads still work");
    assert_writes_fail_closed(&store, &format!("pending dry runs [{}]", dry.run_id)).await;
    assert!(!store.loading());
    drop(store);
    drop(tmp);
}

#[tokio::test]
async fn dry_run_reports_transitions_and_activation_is_explicit() {
    let s = TestServer::start().await;
    let mut c = s.client.clone();
    let mut k = classification_client(&s).await;
    let fined = uscc_n(b'1', 21);
    put_enterprise(&mut c, young(&uscc_n(b'1', 20), "")).await;
    put_enterprise(&mut c, young(&fined, "")).await;
    c.record_penalty(pb::RecordPenaltyRequest {
        request_id: String::new(),
        penalty: Some(fine(
            &fined,
            "沪浦市监罚〔2026〕9号",
            &Date::today().add_days(-10).to_string(),
            100,
        )),
    })
    .await
    .unwrap();
    let first = run_batch(&mut k, today_req()).await.unwrap();
    let before = classify(&mut k, &fined).await;

    let dry = strict_dry_run(&mut k).await;
    let t = dry
        .transitions
        .expect("transitions against the current run");
    assert_eq!(t.baseline_run_id, first.run_id);
    let moved: u64 = t
        .cells
        .iter()
        .filter(|c| c.from != c.to)
        .map(|c| c.enterprises)
        .sum();
    assert_eq!(moved, 1, "{t:?}");
    let ex = &t.examples[0];
    assert_eq!(ex.uscc, fined);
    assert_eq!(ex.moved[0].code, "PENALTY_FINE");
    assert!(ex.moved[0].points_after > ex.moved[0].points_before);

    // Readers still see the current run.
    let still = classify(&mut k, &fined).await;
    assert_eq!(still.run_id, first.run_id);
    assert_eq!(still.score, before.score);
    // The dry run can be read by id.
    let in_dry = k
        .get_classification(pb::GetClassificationRequest {
            uscc: fined.clone(),
            run_id: dry.run_id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(in_dry.score > before.score);
    assert_eq!(in_dry.model_version, "cr-2026.4-strict");

    let err = k
        .activate_scoring_run(pb::ActivateScoringRunRequest {
            request_id: String::new(),
            run_id: dry.run_id,
            reason: " ".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = k
        .activate_scoring_run(pb::ActivateScoringRunRequest {
            request_id: String::new(),
            run_id: first.run_id,
            reason: "again".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = k
        .activate_scoring_run(pb::ActivateScoringRunRequest {
            request_id: String::new(),
            run_id: 999,
            reason: "no such run".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().starts_with("run_id"), "{}", err.message());
    let active = k
        .activate_scoring_run(pb::ActivateScoringRunRequest {
            request_id: "act-1".into(),
            run_id: dry.run_id,
            reason: "approved by the risk committee".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(active.current);
    assert_eq!(active.activation_reason, "approved by the risk committee");
    assert!(active.activated_at.is_some());
    let now = classify(&mut k, &fined).await;
    assert_eq!(now.run_id, dry.run_id);
    assert_eq!(now.model_version, "cr-2026.4-strict");
    assert_eq!(now.rules_version, "shanghai-2022-07-01");
    let m = k
        .get_model(pb::GetModelRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.version, "cr-2026.4-strict");
    s.stop().await;
}

#[tokio::test]
async fn an_interrupted_run_leaves_the_previous_run_current() {
    let s = TestServer::start().await;
    let mut c = s.client.clone();
    let mut k = classification_client(&s).await;
    let u = uscc_n(b'1', 30);
    put_enterprise(&mut c, young(&u, "")).await;
    let first = run_batch(&mut k, today_req()).await.unwrap();
    let model = s.store.active_model().unwrap().unwrap();
    let begun = s
        .store
        .write(op::BeginRun {
            model: Arc::clone(&model),
            as_of: Date::today(),
            dry_run: false,
            requested_by: "test".into(),
            beside: None,
        })
        .await
        .unwrap();
    // Partial results of the interrupted run.
    s.store
        .write_run_results(begun.id, &[], &Default::default(), &Default::default())
        .unwrap();
    let dir = s.dir.clone();
    let tmp = s.stop().await;
    let s = TestServer::start_at(&dir).await;
    let runs = s.store.runs().unwrap();
    let interrupted = runs.iter().find(|r| r.id == begun.id).unwrap();
    assert_eq!(interrupted.state, RunState::Aborted);
    assert!(interrupted.error.contains("interrupted"));
    let mut k = classification_client(&s).await;
    assert_eq!(classify(&mut k, &u).await.run_id, first.run_id);
    // And a new run can be started.
    let again = run_batch(&mut k, today_req()).await.unwrap();
    assert!(again.current && again.run_id > begun.id);
    s.stop().await;
    drop(tmp);
}

#[tokio::test]
async fn a_generated_city_is_classified_consistently() {
    let s = TestServer::start().await;
    credit_risk::server::demo::load(&s.store, 400)
        .await
        .unwrap();
    let mut k = classification_client(&s).await;
    let run = run_batch(&mut k, today_req()).await.unwrap();
    assert_eq!(run.enterprises, s.store.enterprise_count());
    let view = s.store.current_run().unwrap().unwrap();
    for e in view.entries.iter().step_by(7) {
        let c = classify(&mut k, e.uscc.as_str()).await;
        assert!(c.factors_reproduce_score, "{c:?}");
        let sum: f64 = c.factors.iter().map(|x| x.points).sum();
        assert!((sum - c.score).abs() < 1e-6);
    }
    s.stop().await;
}

/// A server with the 400-enterprise demo city, scored: the server, a classification
/// client and the current run.
async fn scored_demo() -> (
    TestServer,
    ClassificationServiceClient<Channel>,
    std::sync::Arc<credit_risk::store::scoring::RunView>,
) {
    let s = TestServer::start().await;
    credit_risk::server::demo::load(&s.store, 400)
        .await
        .unwrap();
    let mut k = classification_client(&s).await;
    run_batch(&mut k, today_req()).await.unwrap();
    let view = s.store.current_run().unwrap().unwrap();
    (s, k, view)
}

/// An explained classification as a store gives it, to compare stores and runs.
#[derive(Debug, PartialEq)]
struct Answer {
    run_id: u64,
    class: credit_risk::domain::RiskClass,
    score: i64,
    hard_rule: Option<credit_risk::domain::model::HardRule>,
    factors: Vec<credit_risk::domain::scoring::Explained>,
    factors_reproduce_score: bool,
    rules_version: String,
}

/// The explained classification of each of `usccs` in `store`'s current run.
fn answers(store: &credit_risk::store::Store, usccs: &[credit_risk::domain::Uscc]) -> Vec<Answer> {
    usccs
        .iter()
        .map(|u| {
            let c = store.classify(u, None).unwrap();
            Answer {
                run_id: c.run_id,
                class: c.class,
                score: c.score,
                hard_rule: c.hard_rule,
                factors: c.factors.to_vec(),
                factors_reproduce_score: c.factors_reproduce_score,
                rules_version: c.rules_version,
            }
        })
        .collect()
}

/// `all` (the answers for `usccs`, in order) but the one for `but`, with `run_id` set
/// to `run` (to compare answers of two runs).
fn all_but(
    usccs: &[credit_risk::domain::Uscc],
    all: &[Answer],
    but: &credit_risk::domain::Uscc,
    run: u64,
) -> Vec<Answer> {
    usccs
        .iter()
        .zip(all)
        .filter(|(u, _)| *u != but)
        .map(|(_, a)| Answer {
            run_id: run,
            factors: a.factors.clone(),
            rules_version: a.rules_version.clone(),
            ..*a
        })
        .collect()
}

/// Issue 21 item 2: an enterprise the run found nothing against (no factor, no hard
/// rule) is explained from the run's entry, without its dossier — and that answer is
/// the one the dossier gives: compared, enterprise by enterprise, with the answers of a
/// store opened under other rules (a 2027 version added), which cannot trust the
/// entries' flag and recomputes every explanation. A write re-scores as before.
#[tokio::test]
async fn an_empty_explanation_from_the_run_is_what_the_dossier_gives() {
    use credit_risk::store::{scoring::FLAG_NO_FACTORS, Store, StoreOptions};
    let (s, mut k, view) = scored_demo().await;
    assert!(view.empty_explanations, "scored in this process");
    let run = view.run.id;
    let usccs: Vec<_> = view.entries.iter().map(|e| e.uscc).collect();
    let empty: Vec<_> = view
        .entries
        .iter()
        .filter(|e| e.flags & FLAG_NO_FACTORS != 0)
        .map(|e| e.uscc)
        .collect();
    assert!(
        !empty.is_empty() && empty.len() < usccs.len(),
        "{} of {} without a factor",
        empty.len(),
        usccs.len()
    );
    let from_run = answers(&s.store, &usccs);
    for (u, a) in usccs.iter().zip(&from_run) {
        assert_eq!(a.factors.is_empty(), empty.contains(u), "{u}: {a:?}");
    }
    // A penalty on an enterprise without factors: re-scored, explained by its dossier.
    let target = empty[0];
    penalise(
        &mut s.client.clone(),
        target.as_ref(),
        "沪市监罚〔2026〕901号",
        5_000_000,
    )
    .await;
    let c = classify(&mut k, target.as_ref()).await;
    assert!(codes(&c).contains(&"PENALTY_FINE"), "{c:?}");
    assert!(c.factors_reproduce_score && !c.rescored_cause.is_empty());
    let dir = s.dir.clone();
    let tmp = s.stop().await;
    let expected = all_but(&usccs, &from_run, &target, run);
    // Reopened under the same rules: the stored spot base vouches for the flags.
    {
        let store = Store::open(&dir, StoreOptions::default()).unwrap();
        assert!(store.current_run().unwrap().unwrap().empty_explanations);
        let reopened = answers(&store, &usccs);
        assert_eq!(all_but(&usccs, &reopened, &target, run), expected);
    }
    // Under other rules: every explanation recomputed from the dossier, alike.
    let store = Store::open(&dir, options_under_2027_rules()).unwrap();
    assert!(!store.current_run().unwrap().unwrap().empty_explanations);
    let recomputed = answers(&store, &usccs);
    assert_eq!(all_but(&usccs, &recomputed, &target, run), expected);
    drop(store);
    drop(tmp);
}

/// An explanation kept in memory (`store.explanation_cache_bytes`) answers a repeated
/// question only while the enterprise is unchanged since its live run scored it: its
/// answers are the dossier's (a store reopened without the cache recomputes them all
/// alike), a write to the enterprise is explained at once, and a new run is explained
/// anew (src/store/explanations.rs).
#[tokio::test]
async fn a_kept_explanation_is_the_dossiers_until_the_enterprise_changes() {
    use credit_risk::store::{scoring::FLAG_NO_FACTORS, Store, StoreOptions};
    let (s, mut k, view) = scored_demo().await;
    let run1 = view.run.id;
    let explained: Vec<_> = view
        .entries
        .iter()
        .filter(|e| e.flags & FLAG_NO_FACTORS == 0)
        .map(|e| e.uscc)
        .collect();
    assert!(explained.len() > 50, "{} explained", explained.len());
    let before = s.store.explanation_cache_stats();
    let first = answers(&s.store, &explained);
    let after_first = s.store.explanation_cache_stats();
    let n = explained.len() as u64;
    assert_eq!(after_first.misses - before.misses, n, "{after_first:?}");
    assert_eq!(after_first.entries, n, "{after_first:?}");
    let second = answers(&s.store, &explained);
    let after_second = s.store.explanation_cache_stats();
    assert_eq!(after_second.hits - after_first.hits, n, "{after_second:?}");
    assert_eq!(after_second.misses, after_first.misses);
    assert_eq!(first, second);
    assert!(first
        .iter()
        .all(|a| a.run_id == run1 && (!a.factors.is_empty() || a.hard_rule.is_some())));

    // A penalty on an explained enterprise: its kept explanation no longer answers.
    let target = explained[0];
    penalise(
        &mut s.client.clone(),
        target.as_ref(),
        "沪市监罚〔2026〕902号",
        5_000_000,
    )
    .await;
    let c = classify(&mut k, target.as_ref()).await;
    assert!(
        c.factors
            .iter()
            .any(|f| f.record == "penalty/沪市监罚〔2026〕902号"),
        "{c:?}"
    );
    assert!(c.factors_reproduce_score && !c.rescored_cause.is_empty());
    let c = s.store.classify(&target, None).unwrap();
    assert!(c
        .factors
        .iter()
        .any(|f| f.record == "penalty/沪市监罚〔2026〕902号"));

    // A new run: explained anew (its own entries), alike for the others.
    let hits = s.store.explanation_cache_stats().hits;
    run_batch(&mut k, today_req()).await.unwrap();
    let run2 = s.store.current_run().unwrap().unwrap().run.id;
    let third = answers(&s.store, &explained);
    assert_eq!(s.store.explanation_cache_stats().hits, hits);
    assert!(third.iter().all(|a| a.run_id == run2));
    let expected = all_but(&explained, &first, &target, run2);
    assert_eq!(all_but(&explained, &third, &target, run2), expected);

    // Reopened without the cache: every explanation from the dossier, alike.
    let dir = s.dir.clone();
    let tmp = s.stop().await;
    let store = Store::open(
        &dir,
        StoreOptions {
            explanation_cache_bytes: 0,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let recomputed = answers(&store, &explained);
    assert_eq!(all_but(&explained, &recomputed, &target, run2), expected);
    assert_eq!(
        store.explanation_cache_stats(),
        credit_risk::store::explanations::CacheStats::default()
    );
    drop(store);
    drop(tmp);
}

/// A serious-illegal listing ends after its term (SAMR Order 44, 3 years [U], counted
/// per Civil Code Art. 201-202): it no longer counts nor holds the firm in D, and the
/// listing says when its term ended (issue 14, defect 1).
#[tokio::test]
async fn a_serious_listing_ends_after_its_term() {
    let s = TestServer::start().await;
    let mut c = s.client.clone();
    let mut k = classification_client(&s).await;
    let (old, fresh) = (uscc_n(b'1', 501), uscc_n(b'1', 502));
    for u in [&old, &fresh] {
        let mut e = crate::common::enterprise(u);
        e.established_on = "2015-01-01".into();
        put_enterprise(&mut c, e).await;
    }
    // Listed 3 years and a day ago: the term's last day was yesterday.
    let three_years_ago = Date::today().add_years_back(3);
    add_listing(
        &mut c,
        &old,
        pb::ListKind::SeriousIllegal,
        Date::today().days() - three_years_ago.days() + 1,
    )
    .await;
    add_listing(&mut c, &fresh, pb::ListKind::SeriousIllegal, 30).await;
    let report = c
        .get_credit_report(pb::GetCreditReportRequest {
            uscc: old.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let l = &report.listings[0];
    assert_eq!(
        l.term_ends_on,
        three_years_ago.add_days(-1).add_years(3).to_string()
    );
    assert!(!l.open, "{l:?}");
    run_batch(&mut k, today_req()).await.unwrap();
    let expired = classify(&mut k, &old).await;
    let listed = classify(&mut k, &fresh).await;
    assert_eq!(listed.risk_class, pb::RiskClass::D as i32);
    assert!(codes(&listed).contains(&"SERIOUS_ILLEGAL_LISTING"));
    assert!(
        !codes(&expired).contains(&"SERIOUS_ILLEGAL_LISTING"),
        "{expired:?}"
    );
    assert_ne!(
        expired.hard_rule, "SERIOUS_ILLEGAL_LISTING_OPEN",
        "{expired:?}"
    );
    assert!(!codes(&expired).contains(&"SERIOUS_ILLEGAL_LISTING"));
    s.stop().await;
}

/// `store.keep_runs`: after a pass's stream ends, the runs beyond the newest
/// `keep_runs` are retired — their results deleted, their records kept as RETIRED (a
/// request naming one is refused, saying so), with an audit event — and the kept runs
/// still answer. (The retirement follows the activation, so it is awaited here.)
#[tokio::test]
async fn runs_beyond_keep_runs_are_retired_after_the_pass() {
    let s = TestServer::start_fresh_with(|o| o.keep_runs = 2, |_| {}).await;
    let mut c = connect(s.addr).await;
    let mut k = classification_client(&s).await;
    let u = uscc_n(b'1', 21);
    put_enterprise(&mut c, young(&u, &rep(3))).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(run_batch(&mut k, today_req()).await.expect("run").run_id);
    }
    let state_of = |runs: &[pb::ScoringRun], id: u64| {
        runs.iter()
            .find(|r| r.run_id == id)
            .map(|r| r.state.clone())
            .unwrap_or_default()
    };
    let mut runs = Vec::new();
    for _ in 0..100 {
        runs = k
            .list_scoring_runs(pb::ListScoringRunsRequest {})
            .await
            .expect("list")
            .into_inner()
            .runs;
        if state_of(&runs, ids[0]) == "RETIRED" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(state_of(&runs, ids[0]), "RETIRED", "{runs:?}");
    assert_eq!(state_of(&runs, ids[1]), "COMPLETE");
    assert_eq!(state_of(&runs, ids[2]), "COMPLETE");
    let asked = |run_id| pb::GetClassificationRequest {
        uscc: u.clone(),
        run_id,
        ..Default::default()
    };
    let err = k.get_classification(asked(ids[0])).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        err.message()
            .ends_with("was retired (store.keep_runs): its results are not found"),
        "{err:?}"
    );
    for id in &ids[1..] {
        let got = k.get_classification(asked(*id)).await.expect("kept run");
        assert_eq!(got.into_inner().run_id, *id);
    }
    let retired = audit_of(s.addr, "")
        .await
        .into_iter()
        .filter(|e| e.target == "runs" && e.after.contains(&format!("[{}]", ids[0])))
        .count();
    assert_eq!(retired, 1, "one retirement, audited");
}
