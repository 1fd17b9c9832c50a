//! SpotCheckService end to end over real gRPC on a loopback port, and the draw re-checked
//! with the published `consistent-sampler` Python package.

use crate::common::*;
use credit_risk::{
    domain::{sampler, Date},
    proto::{
        self as pb, classification_service_client::ClassificationServiceClient,
        spot_check_service_client::SpotCheckServiceClient,
    },
};
use tonic::{transport::Channel, Code};

type Spot = SpotCheckServiceClient<Channel>;

struct City {
    s: TestServer,
    spot: Spot,
    /// USCCs by role.
    clean: Vec<String>,
    abnormal: Vec<String>,
    suspended: String,
    inspected_clean: String,
    twice_this_year: String,
}

async fn inspect(c: &mut RegistryClient, u: &str, task: &str, on: Date, problems: bool) {
    c.record_inspection_result(pb::RecordInspectionResultRequest {
        request_id: String::new(),
        result: Some(pb::InspectionResult {
            task_id: task.into(),
            uscc: u.into(),
            inspected_on: on.to_string(),
            check_items: vec!["营业执照".into()],
            problems_found: problems,
            recorded_at: None,
            problem_items: vec![],
        }),
    })
    .await
    .expect("inspection");
}

/// A scored city: 30 clean young enterprises (A), 12 with an open abnormal listing (C or
/// D), one suspended, one with a clean check last year, one checked twice this year.
async fn city() -> City {
    let s = TestServer::start().await;
    let mut c = s.client.clone();
    let young = |u: &str| {
        let mut e = enterprise(u);
        e.established_on = Date::today().add_days(-100).to_string();
        e.supervision_flags.clear();
        e
    };
    let mut clean = Vec::new();
    for n in 0..30 {
        let u = uscc_n(b'1', 100 + n);
        put_enterprise(&mut c, young(&u)).await;
        clean.push(u);
    }
    let mut abnormal = Vec::new();
    for n in 0..12 {
        let u = uscc_n(b'1', 200 + n);
        let mut e = young(&u);
        if n % 2 == 0 {
            e.region_code = "310104".into();
        }
        put_enterprise(&mut c, e).await;
        c.add_listing(pb::AddListingRequest {
            request_id: String::new(),
            listing: Some(pb::Listing {
                uscc: u.clone(),
                kind: pb::ListKind::AbnormalOperations as i32,
                reason: pb::ListingReason::UnreachableAtAddress as i32,
                listed_on: Date::today().add_days(-10).to_string(),
                authority: "上海市市场监督管理局".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
        abnormal.push(u);
    }
    let suspended = uscc_n(b'1', 300);
    let mut e = young(&suspended);
    e.status = pb::EnterpriseStatus::Suspended as i32;
    put_enterprise(&mut c, e).await;
    let inspected_clean = uscc_n(b'1', 301);
    put_enterprise(&mut c, young(&inspected_clean)).await;
    inspect(
        &mut c,
        &inspected_clean,
        "T-2025",
        Date::today().add_days(-60),
        false,
    )
    .await;
    let twice_this_year = uscc_n(b'1', 302);
    put_enterprise(&mut c, young(&twice_this_year)).await;
    let today = Date::today();
    let jan = Date::ymd(today.year(), 1, 1).unwrap();
    inspect(&mut c, &twice_this_year, "T-1", jan, true).await;
    inspect(&mut c, &twice_this_year, "T-2", today, false).await;

    let mut k = ClassificationServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let st = k
        .run_batch_scoring(pb::RunBatchScoringRequest::default())
        .await
        .unwrap()
        .into_inner();
    crate::common::scoring_done(st).await.unwrap();
    let spot = SpotCheckServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    City {
        s,
        spot,
        clean,
        abnormal,
        suspended,
        inspected_clean,
        twice_this_year,
    }
}

fn cd() -> Vec<i32> {
    vec![pb::RiskClass::C as i32, pb::RiskClass::D as i32]
}

#[tokio::test]
async fn matching_answers_per_item_in_order() {
    let mut t = city().await;
    let req = pb::MatchRequest {
        usccs: vec![
            t.clean[0].clone(),
            "not-a-uscc".into(),
            uscc_n(b'1', 999),
            t.suspended.clone(),
            t.inspected_clean.clone(),
            t.twice_this_year.clone(),
            t.abnormal[0].clone(),
        ],
        as_of: String::new(),
    };
    let r = t.spot.batch_match(req.clone()).await.unwrap().into_inner();
    assert_eq!(r.items.len(), 7);
    let items = &r.items;
    assert!(items[0].found && !items[0].exempt);
    assert_eq!(items[0].risk_class, pb::RiskClass::A as i32);
    assert!(
        !items[1].found && items[1].error.starts_with("usccs[1]"),
        "{:?}",
        items[1]
    );
    assert!(!items[2].found && items[2].error.is_empty());
    assert_eq!(items[3].exemption_reason, "SUSPENDED");
    assert_eq!(items[4].exemption_reason, "NO_PROBLEM_IN_TWO_YEARS");
    assert_eq!(items[5].exemption_reason, "YEARLY_CHECK_LIMIT_REACHED");
    assert!(items[6].risk_class >= pb::RiskClass::C as i32);
    for (i, it) in items.iter().enumerate() {
        assert_eq!(it.uscc, req.usccs[i], "answers follow the request order");
    }

    // The stream: three messages, three answers, in order.
    let msgs = vec![
        pb::MatchRequest {
            usccs: vec![t.clean[1].clone()],
            as_of: String::new(),
        },
        pb::MatchRequest {
            usccs: vec!["x".into(), t.clean[2].clone()],
            as_of: String::new(),
        },
        pb::MatchRequest {
            usccs: t.abnormal.clone(),
            as_of: String::new(),
        },
    ];
    let mut st = t
        .spot
        .match_classifications(tokio_stream::iter(msgs.clone()))
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while let Some(m) = st.message().await.unwrap() {
        let got: Vec<&str> = m.items.iter().map(|i| i.uscc.as_str()).collect();
        let want: Vec<&str> = msgs[n].usccs.iter().map(String::as_str).collect();
        assert_eq!(got, want);
        n += 1;
    }
    assert_eq!(n, 3);

    let too_many = pb::MatchRequest {
        usccs: vec![t.clean[0].clone(); 10_001],
        as_of: String::new(),
    };
    let err = t.spot.batch_match(too_many).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("usccs"));
    t.s.stop().await;
}

#[tokio::test]
async fn candidate_pools_filter_and_exempt() {
    let mut t = city().await;
    let all = candidates(&mut t.spot, pb::CandidateFilter::default())
        .await
        .unwrap();
    let ids: Vec<&str> = all.iter().map(|c| c.uscc.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "USCC order");
    assert_eq!(all.len(), 30 + 12, "exempt ones left out");
    assert!(!ids.contains(&t.suspended.as_str()));

    let with_exempt = candidates(
        &mut t.spot,
        pb::CandidateFilter {
            include_exempt: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(with_exempt.len(), 45);
    let s = with_exempt.iter().find(|c| c.uscc == t.suspended).unwrap();
    assert!(s.exempt && s.exemption_reason == "SUSPENDED");

    let high = candidates(
        &mut t.spot,
        pb::CandidateFilter {
            classes: cd(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(high.len(), 12);
    let xuhui = candidates(
        &mut t.spot,
        pb::CandidateFilter {
            classes: cd(),
            region_codes: vec!["310104".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(xuhui.len(), 6);
    assert!(xuhui.iter().all(|c| c.region_code == "310104"));
    let city_wide = candidates(
        &mut t.spot,
        pb::CandidateFilter {
            classes: cd(),
            region_codes: vec!["310000".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(city_wide.len(), 12);

    // A write after the run shows up at once (re-scored onto the run).
    let mut c = t.s.client.clone();
    inspect(&mut c, &t.clean[3], "T-new", Date::today(), false).await;
    let after = candidates(&mut t.spot, pb::CandidateFilter::default())
        .await
        .unwrap();
    assert_eq!(after.len(), 41, "a clean check exempts it");

    // After a restart the index is rebuilt from the dossiers and overrides: same answers.
    let dir = t.s.dir.clone();
    let tmp = t.s.stop().await;
    let s2 = TestServer::start_at(&dir).await;
    let mut spot2 = SpotCheckServiceClient::connect(format!("http://{}", s2.addr))
        .await
        .unwrap();
    let again = candidates(&mut spot2, pb::CandidateFilter::default())
        .await
        .unwrap();
    assert_eq!(again, after);
    let m = spot2
        .batch_match(pb::MatchRequest {
            usccs: vec![t.clean[3].clone()],
            as_of: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.items[0].exemption_reason, "NO_PROBLEM_IN_TWO_YEARS");
    // The index came from the base stored with the run (no dossier scan at open), which
    // agrees with the dossiers of every enterprise not re-scored since the run.
    assert!(s2.store.check_spot_bases().unwrap() > 0);
    t.s = s2;
    t.spot = spot2;
    let _keep = tmp;

    for (f, field) in [
        (
            pb::CandidateFilter {
                region_codes: vec!["99999".into()],
                ..Default::default()
            },
            "filter.region_codes[0]",
        ),
        (
            pb::CandidateFilter {
                classes: vec![0],
                ..Default::default()
            },
            "filter.classes[0]",
        ),
        (
            pb::CandidateFilter {
                industry_sections: vec!["Z".into()],
                ..Default::default()
            },
            "filter.industry_sections[0]",
        ),
    ] {
        let err = candidates(&mut t.spot, f).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
    t.s.stop().await;
}

fn plan_req(task: &str, strata: Vec<pb::Stratum>) -> pb::PlanDrawRequest {
    pb::PlanDrawRequest {
        request_id: String::new(),
        model_family: String::new(),
        check_items: vec![],
        task_id: task.into(),
        filter: Some(pb::CandidateFilter::default()),
        strata,
        as_of: String::new(),
        // These tests exercise the draw's mechanics with small pools and round sizes, not
        // the per-class sampling policy (tested on its own below).
        override_reason: "test: draw mechanics".into(),
    }
}

fn ratio(c: pb::RiskClass, r: f64) -> pb::Stratum {
    pb::Stratum {
        risk_class: c as i32,
        size: Some(pb::stratum::Size::Ratio(r)),
    }
}

fn count(c: pb::RiskClass, n: i64) -> pb::Stratum {
    pb::Stratum {
        risk_class: c as i32,
        size: Some(pb::stratum::Size::Count(n)),
    }
}

async fn population(spot: &mut Spot, plan: u64, stratum: u32) -> Vec<String> {
    stratum_list(spot, plan, stratum, false)
        .await
        .into_iter()
        .map(|(u, _)| u)
        .collect()
}

/// A stratum's population, or (with `exempted`) whom the exemptions removed, with why.
async fn stratum_list(
    spot: &mut Spot,
    plan: u64,
    stratum: u32,
    exempted: bool,
) -> Vec<(String, String)> {
    let mut st = spot
        .list_population(pb::ListPopulationRequest {
            plan_id: plan,
            stratum,
            exempted,
            check_item: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while let Some(b) = st.message().await.unwrap() {
        assert_eq!(
            b.exemption_reasons.len(),
            if exempted { b.usccs.len() } else { 0 }
        );
        let reasons = b
            .exemption_reasons
            .into_iter()
            .chain(std::iter::repeat(String::new()));
        out.extend(b.usccs.into_iter().zip(reasons));
    }
    out
}

#[tokio::test]
async fn plan_then_draw_then_verify() {
    let mut t = city().await;
    let plan = t
        .spot
        .plan_draw(plan_req(
            "2026-沪-001",
            vec![
                ratio(pb::RiskClass::A, 0.1),
                count(pb::RiskClass::C, 3),
                count(pb::RiskClass::D, 100),
            ],
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!plan.drawn);
    let a = &plan.strata[0];
    assert_eq!((a.population, a.k), (30, 3));
    let pop_a = population(&mut t.spot, plan.plan_id, 0).await;
    assert_eq!(pop_a.len(), 30);
    assert_eq!(
        a.population_digest,
        sampler::population_digest(pop_a.iter().map(String::as_str))
    );
    let high = plan.strata[1].population + plan.strata[2].population;
    assert_eq!(high, 12);
    assert_eq!(
        plan.strata[2].k, plan.strata[2].population,
        "a count is capped at the population"
    );

    let err = t
        .spot
        .draw_sample(pb::DrawSampleRequest {
            request_id: String::new(),
            plan_id: plan.plan_id,
            seed: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("seed"));

    let receipt = t
        .spot
        .draw_sample(pb::DrawSampleRequest {
            request_id: String::new(),
            plan_id: plan.plan_id,
            seed: "20261125-0930-公开".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(receipt.algorithm, "consistent-sampler-v1");
    assert_eq!(receipt.sampler_seed, "20261125-0930-公开:2026-沪-001");
    let sel: Vec<&str> = receipt.strata[0]
        .selected
        .iter()
        .map(|s| s.uscc.as_str())
        .collect();
    assert_eq!(sel.len(), 3);
    // Recompute locally with the sampler.
    let s = sampler::Sampler::new(&receipt.sampler_seed);
    let local: Vec<&str> = s
        .sample(pop_a.iter().map(String::as_str), 3)
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert_eq!(sel, local);

    let again = t
        .spot
        .draw_sample(pb::DrawSampleRequest {
            request_id: String::new(),
            plan_id: plan.plan_id,
            seed: "other".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);

    let ok = t
        .spot
        .verify_draw(pb::VerifyDrawRequest {
            receipt: Some(receipt.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ok.matches, "{}", ok.first_difference);
    let mut forged = receipt.clone();
    forged.strata[0].selected[1].uscc = pop_a
        .iter()
        .find(|u| !sel.contains(&u.as_str()))
        .unwrap()
        .clone();
    let bad = t
        .spot
        .verify_draw(pb::VerifyDrawRequest {
            receipt: Some(forged),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!bad.matches);
    assert!(
        bad.first_difference.starts_with("strata[0].selected[1]"),
        "{}",
        bad.first_difference
    );
    let mut other_seed = receipt.clone();
    other_seed.seed = "guess".into();
    let bad = t
        .spot
        .verify_draw(pb::VerifyDrawRequest {
            receipt: Some(other_seed),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(bad.first_difference.starts_with("seed"));
    let mut gone = receipt.clone();
    gone.plan_id = 999;
    let err = t
        .spot
        .verify_draw(pb::VerifyDrawRequest {
            receipt: Some(gone),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // The frozen population does not move when records change after the plan.
    let mut c = t.s.client.clone();
    inspect(&mut c, &pop_a[0], "T-after", Date::today(), false).await;
    let ok = t
        .spot
        .verify_draw(pb::VerifyDrawRequest {
            receipt: Some(receipt.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ok.matches);

    python_recheck(&receipt, &pop_a);
    t.s.stop().await;
}

/// Re-checks the A stratum with `consistent_sampler.sampler` (PyPI, version 1.0.10).
/// CI installs the package and sets CREDIT_RISK_REQUIRE_PYTHON_SAMPLER=1, so there (and
/// wherever `CI` is set) a missing package fails the test; elsewhere it is skipped with a
/// note. A re-check that runs and fails is always a failure.
fn python_recheck(receipt: &pb::DrawReceipt, population: &[String]) {
    if !crate::common::python_has("consistent_sampler", "CREDIT_RISK_REQUIRE_PYTHON_SAMPLER") {
        return;
    }
    let script = r#"
import json, sys
from consistent_sampler import sampler
d = json.load(sys.stdin)
print(json.dumps(list(sampler(d["population"], seed=d["seed"], take=d["k"], output="id"))))
"#;
    let input = serde_json::json!({
        "population": population,
        "seed": receipt.sampler_seed,
        "k": receipt.strata[0].k,
    });
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(input.to_string().as_bytes())?;
            }
            child.wait_with_output()
        })
        .expect("run python3");
    assert!(
        out.status.success(),
        "the consistent-sampler re-check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<String> = serde_json::from_slice(&out.stdout).expect("python output");
    let ours: Vec<String> = receipt.strata[0]
        .selected
        .iter()
        .map(|s| s.uscc.clone())
        .collect();
    assert_eq!(
        ids, ours,
        "the published package draws the same enterprises"
    );
}

#[tokio::test]
async fn bad_plans_are_refused_naming_the_field() {
    let mut t = city().await;
    let cases = vec![
        (
            plan_req("T", vec![ratio(pb::RiskClass::A, 1.5)]),
            "strata[0].ratio",
        ),
        (
            plan_req("T", vec![count(pb::RiskClass::A, -1)]),
            "strata[0].count",
        ),
        (plan_req(" ", vec![count(pb::RiskClass::A, 1)]), "task_id"),
        (
            plan_req(
                "T",
                vec![count(pb::RiskClass::A, 1), ratio(pb::RiskClass::A, 0.5)],
            ),
            "strata[1].risk_class",
        ),
        (
            pb::PlanDrawRequest {
                filter: Some(pb::CandidateFilter {
                    classes: vec![pb::RiskClass::C as i32],
                    ..Default::default()
                }),
                ..plan_req("T", vec![count(pb::RiskClass::A, 1)])
            },
            "strata[0].risk_class",
        ),
    ];
    for (req, field) in cases {
        let err = t.spot.plan_draw(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
    let err = t
        .spot
        .draw_sample(pb::DrawSampleRequest {
            request_id: String::new(),
            plan_id: 42,
            seed: "s".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    t.s.stop().await;
}

#[tokio::test]
async fn inspector_teams_are_drawn_verified_and_part_of_the_receipt() {
    let mut t = city().await;
    // Ten inspectors: four from Pudong (the region of most enterprises), six from Xuhui.
    for i in 0..10 {
        t.spot
            .upsert_inspector(pb::UpsertInspectorRequest {
                request_id: String::new(),
                inspector: Some(pb::Inspector {
                    id: format!("INS-{i:02}"),
                    name: format!("检查员{i}"),
                    certificate_number: format!("沪执{i:06}"),
                    home_region_code: if i < 4 { "310115" } else { "310104" }.into(),
                    fields: vec!["advertising".into()],
                    active: i != 9,
                    department: String::new(),
                }),
            })
            .await
            .unwrap();
    }
    let err = t
        .spot
        .upsert_inspector(pb::UpsertInspectorRequest {
            request_id: String::new(),
            inspector: Some(pb::Inspector {
                id: "X".into(),
                name: "n".into(),
                certificate_number: String::new(),
                home_region_code: "310115".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert!(
        err.message().contains("inspector.certificate_number"),
        "{}",
        err.message()
    );
    let listed = t
        .spot
        .list_inspectors(pb::ListInspectorsRequest {
            active_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.inspectors.len(), 9);

    let plan = t
        .spot
        .plan_draw(plan_req("2026-沪-002", vec![count(pb::RiskClass::A, 4)]))
        .await
        .unwrap()
        .into_inner();
    let early = t
        .spot
        .assign_inspectors(pb::AssignInspectorsRequest {
            request_id: String::new(),
            plan_id: plan.plan_id,
            team_size: 2,
            conflicts: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition, "not drawn yet");
    let draw = pb::DrawSampleRequest {
        request_id: "draw-2026-沪-002".into(),
        plan_id: plan.plan_id,
        seed: "s-1".into(),
    };
    let receipt = t.spot.draw_sample(draw.clone()).await.unwrap().into_inner();
    let first = receipt.strata[0].selected[0].uscc.clone();
    let err = t
        .spot
        .assign_inspectors(pb::AssignInspectorsRequest {
            request_id: String::new(),
            plan_id: plan.plan_id,
            team_size: 1,
            conflicts: vec![],
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("team_size"));

    // Without conflicts, to learn who would be drawn for the first enterprise.
    let seed = receipt.sampler_seed.clone();
    let pool: Vec<(String, credit_risk::domain::RegionCode)> = listed
        .inspectors
        .iter()
        .map(|i| {
            (
                i.id.clone(),
                credit_risk::domain::RegionCode::parse("r", &i.home_region_code).unwrap(),
            )
        })
        .collect();
    let u = credit_risk::domain::Uscc::parse(&first).unwrap();
    let pudong = credit_risk::domain::RegionCode::parse("r", "310115").unwrap();
    let expected =
        credit_risk::domain::spotcheck::draw_team(&seed, u, pudong, &pool, &[], 2).unwrap();
    let conflict_with = expected.inspectors[0].0.clone();

    let with_teams = t
        .spot
        .assign_inspectors(pb::AssignInspectorsRequest {
            request_id: String::new(),
            plan_id: plan.plan_id,
            team_size: 2,
            conflicts: vec![pb::Conflict {
                inspector_id: conflict_with.clone(),
                uscc: first.clone(),
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(with_teams.teams.len(), 4);
    for team in &with_teams.teams {
        assert_eq!(team.inspectors.len(), 2);
        for i in &team.inspectors {
            let home = &listed
                .inspectors
                .iter()
                .find(|x| x.id == i.inspector_id)
                .unwrap()
                .home_region_code;
            assert_ne!(
                home, &team.region_code,
                "never from the enterprise's own region"
            );
            assert_ne!(
                i.inspector_id, "INS-09",
                "inactive inspectors are not drawn"
            );
        }
    }
    let t0 = &with_teams.teams[0];
    assert_eq!(t0.uscc, first);
    assert_eq!(t0.recused, vec![conflict_with.clone()]);
    assert_eq!(
        t0.inspectors[0].inspector_id, expected.inspectors[1].0,
        "the next ticket replaces the recused"
    );
    assert!(t0
        .inspectors
        .iter()
        .all(|i| i.inspector_id != conflict_with));

    let ok = t
        .spot
        .verify_draw(pb::VerifyDrawRequest {
            receipt: Some(with_teams.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ok.matches, "{}", ok.first_difference);
    let mut forged = with_teams.clone();
    forged.teams[1].inspectors.swap(0, 1);
    let bad = t
        .spot
        .verify_draw(pb::VerifyDrawRequest {
            receipt: Some(forged),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        bad.first_difference.starts_with("teams[1]"),
        "{:?} {:?}",
        bad,
        with_teams.teams[1]
    );
    let again = t
        .spot
        .assign_inspectors(pb::AssignInspectorsRequest {
            request_id: String::new(),
            plan_id: plan.plan_id,
            team_size: 2,
            conflicts: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    // A retry of the draw answers its first reply, without the teams assigned since
    // (the id is bound to the plan, whose receipt is rendered again).
    let retried = t.spot.draw_sample(draw).await.unwrap().into_inner();
    assert!(retried.teams.is_empty() && retried.team_size == 0);
    assert_eq!(retried.strata[0].selected.len(), 4);
    assert_eq!(
        prost::Message::encode_to_vec(&retried),
        prost::Message::encode_to_vec(&receipt)
    );
    t.s.stop().await;
}

/// Class-based supervision (issue 14, defect 5): a plan without strata takes the rules'
/// default ratio per class; ratios outside a class's range, falling with risk or
/// skipping a class are refused naming the stratum, unless an override reason is given,
/// which the plan and the audit trail record (DOMAIN.md §3 example ranges).
#[tokio::test]
async fn plans_follow_the_per_class_sampling_policy() {
    use credit_risk::proto::audit_service_client::AuditServiceClient;
    use pb::RiskClass::{A, B, C};
    let mut t = city().await;
    let req = |task: &str, strata: Vec<pb::Stratum>, reason: &str| pb::PlanDrawRequest {
        override_reason: reason.into(),
        ..plan_req(task, strata)
    };
    let p = t
        .spot
        .plan_draw(req("T-default", vec![], ""))
        .await
        .unwrap()
        .into_inner();
    let ratios: Vec<f64> = p.strata.iter().map(|s| s.ratio).collect();
    assert_eq!(ratios, vec![0.03, 0.10, 0.30, 0.80]);
    assert_eq!(p.rules_version, "shanghai-2022-07-01");
    assert!(p.override_reason.is_empty());
    // Rows: strata, the field the refusal names. The first is the README's old example.
    for (strata, field) in [
        (vec![ratio(A, 0.03), ratio(C, 0.2)], "strata[1].ratio"), // C below 21 %
        (vec![ratio(A, 0.03), ratio(C, 0.3)], "strata"),          // B skipped
        (vec![ratio(B, 0.2), count(C, 1)], "strata[1].count"),    // C draws 1/12 < 20 %
        (vec![ratio(A, 0.06)], "strata[0].ratio"),                // A above 5 %
    ] {
        let e = t
            .spot
            .plan_draw(req("T-policy", strata.clone(), ""))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{strata:?}");
        assert!(e.message().starts_with(field), "{field}: {}", e.message());
        assert!(e.message().contains("override_reason"), "{}", e.message());
    }
    let reason = "2026 食品安全专项整治: every C-class firm of the campaign list";
    let p = t
        .spot
        .plan_draw(req(
            "T-campaign",
            vec![ratio(A, 0.03), ratio(C, 1.0)],
            reason,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.override_reason, reason);
    let mut audit = AuditServiceClient::connect(format!("http://{}", t.s.addr))
        .await
        .unwrap();
    let mut st = audit
        .list_audit_events(pb::ListAuditEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(e) = st.message().await.unwrap() {
        last = Some(e);
    }
    let last = last.unwrap();
    assert_eq!(last.target, format!("plan/{}", p.plan_id));
    assert_eq!(last.reason, reason);
    assert!(last.after.contains("overridden"), "{}", last.after);
    t.s.stop().await;
}

/// Class-based supervision before the exemptions (issue 14, defect 4): a firm on the
/// abnormal-operations list is drawn even with a clean check, and a plan counts per
/// stratum whom each exemption removed.
#[tokio::test]
async fn listed_firms_are_never_exempt_and_plans_count_exemptions() {
    let mut t = city().await;
    let mut c = t.s.client.clone();
    let listed = t.abnormal[0].clone();
    // A clean check after the listing (the re-score updates the selector's overlay).
    inspect(
        &mut c,
        &listed,
        "T-clean",
        Date::today().add_days(-5),
        false,
    )
    .await;
    let r = t
        .spot
        .batch_match(pb::MatchRequest {
            usccs: vec![listed.clone(), t.inspected_clean.clone()],
            as_of: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!r.items[0].exempt, "listed: {:?}", r.items[0]);
    assert!(r.items[1].exempt, "clean, not listed: {:?}", r.items[1]);
    assert_eq!(r.items[1].exemption_reason, "NO_PROBLEM_IN_TWO_YEARS");
    let p = t
        .spot
        .plan_draw(pb::PlanDrawRequest {
            override_reason: String::new(),
            ..plan_req("T-exempt", vec![])
        })
        .await
        .unwrap()
        .into_inner();
    let exempted: Vec<(String, u64)> = p
        .strata
        .iter()
        .flat_map(|s| s.exempted.iter().map(|e| (e.reason.clone(), e.count)))
        .collect();
    for reason in [
        "SUSPENDED",
        "NO_PROBLEM_IN_TWO_YEARS",
        "YEARLY_CHECK_LIMIT_REACHED",
    ] {
        assert_eq!(
            exempted
                .iter()
                .filter(|(r, _)| r == reason)
                .map(|(_, n)| n)
                .sum::<u64>(),
            1,
            "{reason}: {exempted:?}"
        );
    }
    let e = p.exemptions.clone().unwrap();
    assert_eq!(e.never_exempt_classes, vec![pb::RiskClass::D as i32]);
    assert!(e.never_exempt_listed);
    // Whom: the plan names each exempted enterprise with its exemption, stratum by
    // stratum, and never one of its population.
    let mut named = Vec::new();
    for (i, s) in p.strata.iter().enumerate() {
        let list = stratum_list(&mut t.spot, p.plan_id, i as u32, true).await;
        assert_eq!(
            list.len() as u64,
            s.exempted.iter().map(|e| e.count).sum::<u64>(),
            "stratum {i}"
        );
        let pop = population(&mut t.spot, p.plan_id, i as u32).await;
        assert!(list.iter().all(|(u, _)| !pop.contains(u)));
        named.extend(list);
    }
    named.sort();
    let mut want = vec![
        (t.suspended.clone(), "SUSPENDED".to_string()),
        (t.inspected_clean.clone(), "NO_PROBLEM_IN_TWO_YEARS".into()),
        (
            t.twice_this_year.clone(),
            "YEARLY_CHECK_LIMIT_REACHED".into(),
        ),
    ];
    want.sort();
    assert_eq!(named, want);
    // The receipt carries the counts.
    let r = t
        .spot
        .draw_sample(pb::DrawSampleRequest {
            request_id: String::new(),
            plan_id: p.plan_id,
            seed: "s".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let counts = |v: &[pb::ExemptionCount]| -> Vec<(String, u64)> {
        v.iter().map(|e| (e.reason.clone(), e.count)).collect()
    };
    for (rs, ps) in r.strata.iter().zip(&p.strata) {
        assert_eq!(counts(&rs.exempted), counts(&ps.exempted));
    }
    t.s.stop().await;
}

/// Plans and receipts are data: GetPlan answers a stored plan, GetReceipt the receipt
/// DrawSample gave (which VerifyDraw accepts as it is), ListPlans pages newest first.
#[tokio::test]
async fn plans_and_receipts_can_be_fetched_again() {
    let mut t = city().await;
    let mut ids = Vec::new();
    for task in ["2026-沪-P1", "2026-沪-P2", "2026-沪-P1"] {
        let plan = t
            .spot
            .plan_draw(plan_req(task, vec![count(pb::RiskClass::C, 2)]))
            .await
            .unwrap()
            .into_inner();
        ids.push(plan.plan_id);
    }
    let drawn = t
        .spot
        .draw_sample(pb::DrawSampleRequest {
            request_id: String::new(),
            plan_id: ids[1],
            seed: "20261203".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let got = t
        .spot
        .get_receipt(pb::GetReceiptRequest { plan_id: ids[1] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, drawn, "the receipt as DrawSample answered it");
    let v = t
        .spot
        .verify_draw(pb::VerifyDrawRequest { receipt: Some(got) })
        .await
        .unwrap()
        .into_inner();
    assert!(v.matches, "{v:?}");
    let plan = t
        .spot
        .get_plan(pb::GetPlanRequest { plan_id: ids[1] })
        .await
        .unwrap()
        .into_inner();
    assert!(plan.drawn && plan.task_id == "2026-沪-P2");
    let e = t
        .spot
        .get_receipt(pb::GetReceiptRequest { plan_id: ids[0] })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let e = t
        .spot
        .get_plan(pb::GetPlanRequest { plan_id: 999 })
        .await
        .unwrap_err();
    assert!(
        e.code() == Code::NotFound && e.message().starts_with("plan_id"),
        "{e:?}"
    );
    // Newest first, a page at a time; filters.
    let list = |req: pb::ListPlansRequest| {
        let mut spot = t.spot.clone();
        async move { spot.list_plans(req).await.unwrap().into_inner() }
    };
    let page = list(pb::ListPlansRequest {
        limit: 2,
        ..Default::default()
    })
    .await;
    let got: Vec<u64> = page.plans.iter().map(|p| p.plan_id).collect();
    assert_eq!(got, vec![ids[2], ids[1]]);
    let rest = list(pb::ListPlansRequest {
        limit: 2,
        before_plan_id: page.next_before_plan_id,
        ..Default::default()
    })
    .await;
    assert_eq!(
        rest.plans.iter().map(|p| p.plan_id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
    assert_eq!(rest.next_before_plan_id, 0);
    let p1 = list(pb::ListPlansRequest {
        task_id: "2026-沪-P1".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        p1.plans.iter().map(|p| p.plan_id).collect::<Vec<_>>(),
        vec![ids[2], ids[0]]
    );
    let drawn_only = list(pb::ListPlansRequest {
        drawn_only: true,
        ..Default::default()
    })
    .await;
    assert_eq!(drawn_only.plans.len(), 1);
    let e = t
        .spot
        .list_plans(pb::ListPlansRequest {
            limit: 10_001,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        e.code() == Code::InvalidArgument && e.message().starts_with("limit"),
        "{e:?}"
    );
    t.s.stop().await;
}

/// A future `as_of` would change what these answer (a yearly check count reset, a
/// publicity ended): it is refused, naming the field, not answered.
#[tokio::test]
async fn a_future_as_of_is_refused_where_it_would_change_the_answer() {
    let mut t = city().await;
    let future = Date::today().add_days(1).to_string();
    let u = t.clean[0].clone();
    let expect = |r: Result<(), tonic::Status>, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.code(), Code::InvalidArgument, "{what}: {e:?}");
        assert!(
            e.message().starts_with("as_of") && e.message().contains("in the future"),
            "{what}: {e:?}"
        );
    };
    let m = pb::MatchRequest {
        usccs: vec![u.clone()],
        as_of: future.clone(),
    };
    expect(t.spot.batch_match(m).await.map(drop), "BatchMatch");
    let q = pb::QueryCandidatesRequest {
        filter: Some(pb::CandidateFilter::default()),
        as_of: future.clone(),
    };
    expect(
        t.spot.query_candidates(q).await.map(drop),
        "QueryCandidates",
    );
    let mut p = plan_req("2026-沪-F", vec![count(pb::RiskClass::A, 1)]);
    p.as_of = future.clone();
    expect(t.spot.plan_draw(p).await.map(drop), "PlanDraw");
    let lp = pb::ListPenaltiesRequest {
        uscc: u.clone(),
        as_of: future.clone(),
        ..Default::default()
    };
    expect(
        t.s.client.list_penalties(lp).await.map(drop),
        "ListPenalties",
    );
    let cr = pb::GetCreditReportRequest {
        uscc: u.clone(),
        as_of: future.clone(),
    };
    expect(
        t.s.client.get_credit_report(cr).await.map(drop),
        "GetCreditReport",
    );
    // Today is still fine.
    let m = pb::MatchRequest {
        usccs: vec![u],
        as_of: Date::today().to_string(),
    };
    assert!(t.spot.batch_match(m).await.is_ok());
    t.s.stop().await;
}

/// A store opened under other rules (here: a 2027 version added) cannot trust the spot
/// index stored with its run — listing terms feed it — and rebuilds it from the
/// dossiers at open; both answer alike (issue 21 item 5).
#[tokio::test]
async fn a_store_opened_under_other_rules_rebuilds_its_spot_index_alike() {
    use credit_risk::store::{spot::CandidateFilter, Store, StoreOptions};
    let t = city().await;
    let mut c = t.s.client.clone();
    inspect(&mut c, &t.clean[3], "T-new", Date::today(), false).await;
    let dir = t.s.dir.clone();
    let tmp = t.s.stop().await;
    let all = CandidateFilter {
        include_exempt: true,
        ..Default::default()
    };
    let today = Date::today();
    let stored = {
        let s = Store::open(&dir, StoreOptions::default()).unwrap();
        assert!(s.check_spot_bases().unwrap() > 0, "the stored base is read");
        s.spot_candidates(&all, today).unwrap().1
    };
    assert!(stored.len() > 40);
    let s = Store::open(&dir, options_under_2027_rules()).unwrap();
    assert_eq!(s.check_spot_bases().unwrap(), 0, "the base is not trusted");
    assert_eq!(s.spot_candidates(&all, today).unwrap().1, stored);
    drop(s);
    drop(tmp);
}
