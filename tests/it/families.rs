//! Several models at once (issue 18, item 1): the general classification and the
//! food-safety rating (SAMR Order 49) side by side, each family with its own runs, dry
//! runs and activation; GetClassification and BatchMatch answer every applicable class;
//! PlanDraw stratifies by a chosen family's classes over its scope.

use crate::common::{
    connect, enterprise, fine, put_enterprise, scoring_all, scoring_done, uscc_n, TestServer,
};
use credit_risk::proto::{
    self as pb, classification_service_client::ClassificationServiceClient,
    registry_service_client::RegistryServiceClient,
    spot_check_service_client::SpotCheckServiceClient,
};
use tonic::{transport::Channel, Code};

type Classify = ClassificationServiceClient<Channel>;

async fn score(
    k: &mut Classify,
    family: &str,
    dry_run: bool,
) -> Result<pb::ScoringRun, tonic::Status> {
    let events = k
        .run_batch_scoring(pb::RunBatchScoringRequest {
            family: family.into(),
            dry_run,
            ..Default::default()
        })
        .await?
        .into_inner();
    scoring_done(events).await
}

async fn classify(k: &mut Classify, uscc: &str) -> pb::Classification {
    k.get_classification(pb::GetClassificationRequest {
        uscc: uscc.into(),
        run_id: 0,
        ..Default::default()
    })
    .await
    .expect("classified")
    .into_inner()
}

/// A food penalty (食品领域) decided on `on`.
fn food_fine(uscc: &str, decision: &str, on: &str) -> pb::Penalty {
    pb::Penalty {
        domain: pb::ViolationDomain::Food as i32,
        ..fine(uscc, decision, on, 20_000)
    }
}

async fn penalise(r: &mut RegistryServiceClient<Channel>, p: pb::Penalty) {
    r.record_penalty(pb::RecordPenaltyRequest {
        request_id: String::new(),
        penalty: Some(p),
    })
    .await
    .expect("penalty recorded");
}

#[tokio::test]
async fn the_food_model_rates_its_scope_beside_the_general_model() {
    let s = TestServer::start().await;
    let mut r = connect(s.addr).await;
    let mut k = ClassificationServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let mut spot = SpotCheckServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    // A food licence holder (the common fixture), a restaurant without a licence flag
    // (H6210, in scope by industry), and a textile wholesaler (out of scope).
    let licensed = uscc_n(b'1', 1);
    let restaurant = uscc_n(b'1', 2);
    let textiles = uscc_n(b'1', 3);
    put_enterprise(&mut r, enterprise(&licensed)).await;
    put_enterprise(
        &mut r,
        pb::Enterprise {
            industry_section: "H".into(),
            industry_code: "6210".into(),
            supervision_flags: vec![],
            ..enterprise(&restaurant)
        },
    )
    .await;
    // The textile wholesaler (class D: three annual reports missing) shares its legal
    // representative with a new food business (class A on its own): the relation points
    // move the newcomer's general class, which the food model reads.
    let person = hex::encode([7u8; 32]);
    put_enterprise(
        &mut r,
        pb::Enterprise {
            supervision_flags: vec![],
            legal_rep_id_hash: person.clone(),
            ..enterprise(&textiles)
        },
    )
    .await;
    let newcomer = uscc_n(b'1', 4);
    let founded = s.store.today().add_days(-100).to_string();
    put_enterprise(
        &mut r,
        pb::Enterprise {
            legal_rep_id_hash: person.clone(),
            established_on: founded,
            ..enterprise(&newcomer)
        },
    )
    .await;
    let today = s.store.today().to_string();
    penalise(
        &mut r,
        food_fine(&restaurant, "沪浦市监食罚〔2026〕1号", &today),
    )
    .await;

    // The food model is built in, registered and active in its own family.
    let food_model = k
        .get_model(pb::GetModelRequest {
            version: "food-2026.1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(food_model.family, "food");
    assert!(food_model.active);
    assert_eq!(food_model.scope_licences, ["food", "special_food"]);
    assert!(food_model.scope_industries.contains(&"H62".to_string()));
    let general_model = k
        .get_model(pb::GetModelRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(general_model.family, "general");
    assert!(general_model.active && general_model.scope_licences.is_empty());

    // A model whose scope names an unknown licence kind or industry is refused, naming
    // the key inside the TOML.
    for (scope, key) in [
        ("licences = [\"food\", \"fireworks\"]", "scope.licences[1]"),
        ("industries = [\"C99\"]", "scope.industries[0]"),
    ] {
        let toml = format!(
            "version = \"food-bad\"\nfamily = \"food\"\n[scope]\n{scope}\n[cut_points]\nb = 1\nc = 2\nd = 3\n[[indicator]]\ncode = \"SUSPENDED\"\npoints = 5\n"
        );
        let e = k
            .register_model(pb::RegisterModelRequest {
                toml,
                request_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains(key), "{key}: {e:?}");
    }

    // No food run yet: a food plan is refused naming the field; an unknown family too.
    let general = score(&mut k, "", false).await.unwrap();
    assert_eq!(general.model_family, "general");
    assert_eq!(general.enterprises, 4);
    let c = classify(&mut k, &restaurant).await;
    assert!(c.specialised.is_empty(), "no food run yet: {c:?}");
    let e = spot
        .plan_draw(pb::PlanDrawRequest {
            task_id: "2026-沪-food".into(),
            model_family: "food".into(),
            override_reason: "test".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().starts_with("model_family:"), "{e:?}");
    let e = score(&mut k, "fireworks", false).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(e.message().starts_with("family:"), "{e:?}");

    // The food run rates the three enterprises in its scope.
    let food = score(&mut k, "food", false).await.unwrap();
    assert_eq!(
        (food.model_family.as_str(), food.model_version.as_str()),
        ("food", "food-2026.1")
    );
    assert_eq!(food.enterprises, 3, "{food:?}");
    assert!(food.current);
    let runs = k
        .list_scoring_runs(pb::ListScoringRunsRequest {})
        .await
        .unwrap()
        .into_inner();
    let current: Vec<_> = runs
        .runs
        .iter()
        .filter(|r| r.current)
        .map(|r| r.run_id)
        .collect();
    assert_eq!(current.len(), 2, "one current run per family: {runs:?}");
    assert!(current.contains(&general.run_id) && current.contains(&food.run_id));

    // GetClassification answers the general class and the food rating beside it.
    let c = classify(&mut k, &restaurant).await;
    assert_eq!(c.run_id, general.run_id);
    assert_eq!(c.specialised.len(), 1, "{c:?}");
    let f = &c.specialised[0];
    assert_eq!((f.family.as_str(), f.run_id), ("food", food.run_id));
    assert_eq!(f.model_version, "food-2026.1");
    assert_eq!(f.as_of, food.as_of);
    assert_ne!(f.risk_class, pb::RiskClass::Unspecified as i32);
    let plain = classify(&mut k, &licensed).await;
    assert_eq!(plain.specialised.len(), 1);
    assert!(classify(&mut k, &textiles).await.specialised.is_empty());
    // Asking for a run by id answers that run alone.
    let by_run = k
        .get_classification(pb::GetClassificationRequest {
            uscc: restaurant.clone(),
            run_id: food.run_id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_run.model_version, "food-2026.1");
    // The food score reads the food penalty on top of the fine, and the general class.
    assert!(
        by_run.factors.iter().any(|x| x.code == "FOOD_PENALTY"),
        "{by_run:?}"
    );
    // The restaurant's general class is D (three annual reports missing): the food
    // model reads it.
    assert_eq!(c.risk_class, pb::RiskClass::D as i32, "{c:?}");
    assert!(
        by_run
            .factors
            .iter()
            .any(|x| x.code == "GENERAL_CLASS" && x.record == "classification/general/D"),
        "{by_run:?}"
    );
    assert_eq!(by_run.risk_class, f.risk_class);
    assert_eq!(by_run.score, f.score);
    assert!(by_run.specialised.is_empty());

    // BatchMatch too.
    let m = spot
        .batch_match(pb::MatchRequest {
            usccs: vec![licensed.clone(), textiles.clone()],
            as_of: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.items[0].specialised.len(), 1);
    assert_eq!(m.items[0].specialised[0].family, "food");
    assert!(m.items[1].found && m.items[1].specialised.is_empty());

    // A write re-scores onto the food run as well.
    let before = plain.specialised[0].score;
    penalise(
        &mut r,
        food_fine(&licensed, "沪浦市监食罚〔2026〕2号", &today),
    )
    .await;
    let after = classify(&mut k, &licensed).await;
    assert!(after.specialised[0].score > before, "{after:?}");

    // PlanDraw by the food classes: the population is the food scope.
    let plan = spot
        .plan_draw(pb::PlanDrawRequest {
            task_id: "2026-沪-food".into(),
            model_family: "food".into(),
            override_reason: "test: every class at 100 %".into(),
            strata: [
                pb::RiskClass::A,
                pb::RiskClass::B,
                pb::RiskClass::C,
                pb::RiskClass::D,
            ]
            .into_iter()
            .map(|c| pb::Stratum {
                risk_class: c as i32,
                size: Some(pb::stratum::Size::Ratio(1.0)),
            })
            .collect(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plan.model_family, "food");
    assert_eq!(plan.run_id, food.run_id);
    // Stratified by the food classes: each stratum holds the enterprises of its food
    // class.
    let mut by_food_class = [0u64; 5];
    for u in [&licensed, &restaurant, &newcomer] {
        by_food_class[classify(&mut k, u).await.specialised[0].risk_class as usize] += 1;
    }
    for s in &plan.strata {
        assert_eq!(
            s.population, by_food_class[s.risk_class as usize],
            "{plan:?}"
        );
    }
    assert_eq!(plan.strata.iter().map(|s| s.population).sum::<u64>(), 3);
    let e = spot
        .plan_draw(pb::PlanDrawRequest {
            task_id: "2026-沪-fireworks".into(),
            model_family: "fireworks".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("model_family:"), "{e:?}");

    // The restaurant turns to textiles: it leaves the food scope, and the food run no
    // longer rates it (GetClassification, BatchMatch, a food plan); back to catering, it
    // is rated again.
    let restaurant_as = |section: &str, code: &str| pb::Enterprise {
        industry_section: section.into(),
        industry_code: code.into(),
        supervision_flags: vec![],
        ..enterprise(&restaurant)
    };
    put_enterprise(&mut r, restaurant_as("F", "5131")).await;
    assert!(classify(&mut k, &restaurant).await.specialised.is_empty());
    let e = k
        .get_classification(pb::GetClassificationRequest {
            uscc: restaurant.clone(),
            run_id: food.run_id,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let m = spot
        .batch_match(pb::MatchRequest {
            usccs: vec![restaurant.clone()],
            as_of: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(m.items[0].found && m.items[0].specialised.is_empty());
    let plan2 = spot
        .plan_draw(pb::PlanDrawRequest {
            task_id: "2026-沪-food-2".into(),
            model_family: "food".into(),
            override_reason: "test: every class at 100 %".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plan2.strata.iter().map(|s| s.population).sum::<u64>(), 2);
    put_enterprise(&mut r, restaurant_as("H", "6210")).await;
    assert_eq!(classify(&mut k, &restaurant).await.specialised.len(), 1);

    // A food dry run waits for its own activation; the general run stays current.
    let dry = score(&mut k, "food", true).await.unwrap();
    assert!(!dry.current && dry.dry_run);
    let active = k
        .activate_scoring_run(pb::ActivateScoringRunRequest {
            request_id: String::new(),
            run_id: dry.run_id,
            reason: "test: the food model re-run".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(active.current);
    assert_eq!(active.model_family, "food");
    assert_eq!(classify(&mut k, &licensed).await.run_id, general.run_id);
    assert_eq!(
        classify(&mut k, &licensed).await.specialised[0].run_id,
        dry.run_id
    );
    let runs = k
        .list_scoring_runs(pb::ListScoringRunsRequest {})
        .await
        .unwrap()
        .into_inner();
    let current: Vec<_> = runs
        .runs
        .iter()
        .filter(|r| r.current)
        .map(|r| r.run_id)
        .collect();
    assert_eq!(current.len(), 2, "{runs:?}");
    assert!(current.contains(&general.run_id) && current.contains(&dry.run_id));

    // The nightly pass: every family in one scan, the general run first; the food run
    // reads the general class of the same pass, so a food run made alone afterwards
    // (reading the new general current run) gives the same classes and scores.
    let e = k
        .run_batch_scoring(pb::RunBatchScoringRequest {
            all_families: true,
            family: "food".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("all_families"), "{e:?}");
    let done = scoring_all(
        k.run_batch_scoring(pb::RunBatchScoringRequest {
            all_families: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner(),
    )
    .await
    .unwrap();
    let families: Vec<_> = done.iter().map(|r| r.model_family.as_str()).collect();
    assert_eq!(families, ["general", "food"]);
    assert!(done.iter().all(|r| r.current));
    assert_eq!((done[0].enterprises, done[1].enterprises), (4, 3));
    let moved = classify(&mut k, &newcomer).await;
    assert_eq!(moved.risk_class, pb::RiskClass::C as i32, "{moved:?}");
    assert!(moved.factors.iter().any(|f| f.code == "RELATED_HIGH_RISK"));
    let food_of_newcomer = k
        .get_classification(pb::GetClassificationRequest {
            uscc: newcomer.clone(),
            run_id: done[1].run_id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        food_of_newcomer
            .factors
            .iter()
            .any(|f| f.code == "GENERAL_CLASS" && f.record == "classification/general/C"),
        "the food model read the general class after its relation points: {food_of_newcomer:?}"
    );
    assert!(food_of_newcomer.factors_reproduce_score);
    let pass: Vec<_> = [&licensed, &restaurant, &newcomer]
        .iter()
        .map(|u| {
            s.store
                .specialised_classes(&credit_risk::domain::Uscc::parse(u).unwrap())
                .unwrap()
        })
        .map(|c| (c[0].run_id, c[0].class, c[0].score))
        .collect();
    assert!(pass.iter().all(|c| c.0 == done[1].run_id));
    let alone = score(&mut k, "food", false).await.unwrap();
    for (u, before) in [&licensed, &restaurant, &newcomer].iter().zip(&pass) {
        let c = &s
            .store
            .specialised_classes(&credit_risk::domain::Uscc::parse(u).unwrap())
            .unwrap()[0];
        assert_eq!(c.run_id, alone.run_id);
        assert_eq!((c.class, c.score), (before.1, before.2), "{u}");
    }
    let general = done[0].clone();
    let dry = alone;

    // Both families survive a restart.
    let dir = s.stop().await.unwrap();
    let s = TestServer::start_at(dir.path()).await;
    assert_eq!(
        s.store.current_run().unwrap().unwrap().run.id,
        general.run_id
    );
    assert_eq!(
        s.store.current_run_of("food").unwrap().unwrap().run.id,
        dry.run_id
    );
    let mut k = ClassificationServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let c = classify(&mut k, &licensed).await;
    assert_eq!(c.specialised[0].run_id, dry.run_id);
    assert_eq!(
        c.specialised[0].score, after.specialised[0].score,
        "the re-score survives"
    );
    s.stop().await;
}

fn sampling(uscc: &str, id: &str, on: &str, passed: bool) -> pb::QualitySamplingResult {
    pb::QualitySamplingResult {
        sample_id: id.into(),
        uscc: uscc.into(),
        sampled_on: on.into(),
        category: pb::SamplingCategory::Food as i32,
        product: "速冻水饺".into(),
        batch: "20250101".into(),
        passed,
        authority: "上海市浦东新区市场监督管理局".into(),
        recorded_at: None,
    }
}

/// Quality samplings (质量抽检, issue 18's food sampling failures): recorded and imported,
/// validated naming the field, read by the food model (each failed food sampling, and
/// failures in consecutive years once more), listed in the credit report.
#[tokio::test]
async fn failed_food_samplings_weigh_in_the_food_rating() {
    let s = TestServer::start().await;
    let mut r = connect(s.addr).await;
    let mut k = ClassificationServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let u = uscc_n(b'1', 11);
    put_enterprise(&mut r, enterprise(&u)).await;
    let runs = scoring_all(
        k.run_batch_scoring(pb::RunBatchScoringRequest {
            all_families: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner(),
    )
    .await
    .unwrap();
    assert_eq!(runs.len(), 2);
    let food = |c: &pb::Classification| c.specialised[0].score;
    let before = food(&classify(&mut k, &u).await);

    // Bad input is refused naming the field; nothing is written.
    let bad = [
        (
            pb::QualitySamplingResult {
                category: 0,
                ..sampling(&u, "CJ-1", "2025-06-01", false)
            },
            Code::InvalidArgument,
            "sampling.category",
        ),
        (
            sampling(&u, "CJ-1", "2099-01-01", false),
            Code::InvalidArgument,
            "sampling.sampled_on",
        ),
        (
            pb::QualitySamplingResult {
                product: " ".into(),
                ..sampling(&u, "CJ-1", "2025-06-01", false)
            },
            Code::InvalidArgument,
            "sampling.product",
        ),
        (
            sampling(&uscc_n(b'1', 12), "CJ-1", "2025-06-01", false),
            Code::NotFound,
            "sampling.uscc",
        ),
    ];
    for (x, code, field) in bad {
        let e = r
            .record_sampling_result(pb::RecordSamplingResultRequest {
                request_id: String::new(),
                sampling: Some(x),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), code, "{e:?}");
        assert!(e.message().contains(field), "{field}: {e:?}");
    }
    assert_eq!(food(&classify(&mut k, &u).await), before);

    // One failed food sampling: FOOD_SAMPLING_FAILED, re-scored at once.
    let stored = r
        .record_sampling_result(pb::RecordSamplingResultRequest {
            request_id: String::new(),
            sampling: Some(sampling(&u, "CJ-2025-1", "2025-06-01", false)),
        })
        .await
        .unwrap()
        .into_inner()
        .sampling
        .unwrap();
    assert!(stored.recorded_at.is_some());
    let one = classify(&mut k, &u).await;
    assert!(food(&one) > before, "{one:?}");
    // The same report with other content is refused; the same content changes nothing.
    let e = r
        .record_sampling_result(pb::RecordSamplingResultRequest {
            request_id: String::new(),
            sampling: Some(sampling(&u, "CJ-2025-1", "2025-06-01", true)),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
    // Audited once, naming the record.
    let audited: Vec<_> = crate::common::audit_of(s.addr, &u)
        .await
        .into_iter()
        .filter(|e| e.rpc == "RecordSamplingResult")
        .collect();
    assert_eq!(audited.len(), 1, "{audited:#?}");
    assert!(
        audited[0].after.starts_with("sampling/CJ-2025-1"),
        "{audited:#?}"
    );

    // A second failure the next year, imported: consecutive years weigh once more.
    let summary = r
        .import_records(tokio_stream::iter(vec![pb::ImportRecordsRequest {
            records: vec![
                pb::ImportRecord {
                    record: Some(pb::import_record::Record::Sampling(sampling(
                        &u,
                        "CJ-2026-1",
                        "2026-03-01",
                        false,
                    ))),
                },
                pb::ImportRecord {
                    record: Some(pb::import_record::Record::Sampling(
                        pb::QualitySamplingResult {
                            category: 7,
                            ..sampling(&u, "CJ-2026-2", "2026-03-02", false)
                        },
                    )),
                },
            ],
        }]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((summary.stored, summary.rejected), (1, 1), "{summary:?}");
    assert_eq!(summary.rejections[0].kind, "sampling");
    assert!(summary.rejections[0].reason.contains("sampling.category"));
    let food_run = s.store.current_run_of("food").unwrap().unwrap().run.id;
    let explained = k
        .get_classification(pb::GetClassificationRequest {
            uscc: u.clone(),
            run_id: food_run,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let codes: Vec<(&str, &str)> = explained
        .factors
        .iter()
        .map(|f| (f.code.as_str(), f.record.as_str()))
        .collect();
    assert!(
        codes.contains(&("FOOD_SAMPLING_FAILED", "sampling/CJ-2025-1")),
        "{codes:?}"
    );
    assert!(
        codes.contains(&("FOOD_SAMPLING_FAILED", "sampling/CJ-2026-1")),
        "{codes:?}"
    );
    assert!(
        codes.contains(&("SAMPLING_REPEATED_FAILURE", "sampling/CJ-2026-1")),
        "{codes:?}"
    );
    assert!(explained.factors_reproduce_score);
    assert!(
        explained.rescored_cause.starts_with("ImportRecords"),
        "{explained:?}"
    );
    // The general model does not read samplings.
    let general = classify(&mut k, &u).await;
    assert!(!general.factors.iter().any(|f| f.code.contains("SAMPLING")));

    // The credit report lists them, newest first.
    let report = r
        .get_credit_report(pb::GetCreditReportRequest {
            uscc: u.clone(),
            as_of: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = report
        .samplings
        .iter()
        .map(|x| x.sample_id.as_str())
        .collect();
    assert_eq!(ids, ["CJ-2026-1", "CJ-2025-1"]);
    assert_eq!(report.classification.unwrap().specialised.len(), 1);
    s.stop().await;
}

/// A write during a pass that takes an enterprise out of the food scope after the scan
/// rated it: the food run, when it finishes, no longer rates it (a tombstone), found
/// through the general run's re-scores of the written enterprises.
#[tokio::test]
async fn an_enterprise_leaving_the_scope_during_a_pass_is_not_rated_by_it() {
    use credit_risk::{
        domain::{model::GENERAL, RiskClass, Uscc},
        store::{op, RunEntry},
    };
    let s = TestServer::start().await;
    let mut r = connect(s.addr).await;
    let u = uscc_n(b'1', 41);
    put_enterprise(&mut r, enterprise(&u)).await;
    let x = Uscc::parse(&u).unwrap();
    let store = &s.store;
    let today = store.today();
    let begin = |family: &str, beside| op::BeginRun {
        model: store.active_model_of(family).unwrap().unwrap(),
        as_of: today,
        dry_run: false,
        requested_by: "test".into(),
        beside,
    };
    let general = store.write(begin(GENERAL, None)).await.unwrap();
    let food = store.write(begin("food", Some(general.id))).await.unwrap();
    // The scan rated the food-licence holder in both runs.
    let entry = RunEntry {
        uscc: x,
        class: RiskClass::B,
        flags: 0,
        score: 500,
    };
    for id in [general.id, food.id] {
        store
            .write_run_results(id, &[entry], &Default::default(), &Default::default())
            .unwrap();
    }
    // Then its food licence is dropped and it turns to textiles.
    put_enterprise(
        &mut r,
        pb::Enterprise {
            supervision_flags: vec![],
            ..enterprise(&u)
        },
    )
    .await;
    for run in [general, food.clone()] {
        store
            .write(op::FinishRun { run, view: None })
            .await
            .unwrap();
    }
    assert_eq!(
        store.current_run_of("food").unwrap().unwrap().run.id,
        food.id
    );
    let e = store.class_in_run(&x, Some(food.id)).unwrap_err();
    assert!(e.to_string().contains("not found"), "{e}");
    assert!(store.specialised_classes(&x).unwrap().is_empty());
    s.stop().await;
}
