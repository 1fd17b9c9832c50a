//! Check items and joint tasks end to end over real gRPC: the catalogue, plans naming
//! items (each item's population frozen with its digest), the draw naming each selected
//! enterprise's items, one team per department from that department's own inspectors,
//! and VerifyDraw re-checking all of it (issue 19, items 1 and 2).

use crate::common::*;
use credit_risk::{
    domain::{sampler, spotcheck::draw_team, RegionCode, Uscc},
    proto::{
        self as pb, classification_service_client::ClassificationServiceClient,
        spot_check_service_client::SpotCheckServiceClient,
    },
};
use tonic::{transport::Channel, Code};

type Spot = SpotCheckServiceClient<Channel>;

/// Who is in the test city: 20 food traders, 10 pharmacies (drugs licence, retail
/// F5251), 10 chemical makers (hazardous-chemicals licence, C2614) and 5 individual
/// restaurants without licences.
struct JointCity {
    s: TestServer,
    spot: Spot,
    food: Vec<String>,
    pharmacies: Vec<String>,
    chemicals: Vec<String>,
}

async fn joint_city() -> JointCity {
    let s = TestServer::start().await;
    let mut c = s.client.clone();
    let make = |n: u32, cat: u8, section: &str, code: &str, flags: Vec<pb::SupervisionFlag>| {
        let u = uscc_n(cat, n);
        let mut e = enterprise(&u);
        e.industry_section = section.into();
        e.industry_code = code.into();
        e.supervision_flags = flags.into_iter().map(|f| f as i32).collect();
        (u, e)
    };
    let mut all = Vec::new();
    let (mut food, mut pharmacies, mut chemicals) = (vec![], vec![], vec![]);
    for n in 0..20 {
        let (u, e) = make(100 + n, b'1', "F", "5131", vec![pb::SupervisionFlag::Food]);
        food.push(u);
        all.push(e);
    }
    for n in 0..10 {
        let (u, e) = make(200 + n, b'1', "F", "5251", vec![pb::SupervisionFlag::Drugs]);
        pharmacies.push(u);
        all.push(e);
    }
    for n in 0..10 {
        let flags = vec![pb::SupervisionFlag::HazardousChemicals];
        let (u, e) = make(300 + n, b'1', "C", "2614", flags);
        chemicals.push(u);
        all.push(e);
    }
    for n in 0..5 {
        all.push(make(400 + n, b'2', "H", "6210", vec![]).1);
    }
    for e in all {
        put_enterprise(&mut c, e).await;
    }
    let mut k = ClassificationServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let st = k
        .run_batch_scoring(pb::RunBatchScoringRequest::default())
        .await
        .unwrap()
        .into_inner();
    scoring_done(st).await.unwrap();
    let spot = SpotCheckServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    food.sort();
    pharmacies.sort();
    chemicals.sort();
    JointCity {
        s,
        spot,
        food,
        pharmacies,
        chemicals,
    }
}

/// A plan drawing everyone of the filter (every class at 100 %) with these items.
fn items_plan(task: &str, items: &[&str]) -> pb::PlanDrawRequest {
    pb::PlanDrawRequest {
        task_id: task.into(),
        filter: Some(pb::CandidateFilter::default()),
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
        override_reason: "test: everyone of the items".into(),
        check_items: items.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

async fn item_population(spot: &mut Spot, plan: u64, item: &str) -> Vec<String> {
    let mut st = spot
        .list_population(pb::ListPopulationRequest {
            plan_id: plan,
            check_item: item.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while let Some(b) = st.message().await.unwrap() {
        out.extend(b.usccs);
    }
    out
}

/// Today's visit of `uscc` for `task`: the items checked, those with problems, whether
/// problems were found.
fn visit(
    task: &str,
    uscc: &str,
    items: &[&str],
    problems: &[&str],
    found: bool,
) -> pb::RecordInspectionResultRequest {
    pb::RecordInspectionResultRequest {
        request_id: String::new(),
        result: Some(pb::InspectionResult {
            task_id: task.into(),
            uscc: uscc.into(),
            inspected_on: credit_risk::domain::Date::today().to_string(),
            check_items: items.iter().map(|s| s.to_string()).collect(),
            problems_found: found,
            problem_items: problems.iter().map(|s| s.to_string()).collect(),
            recorded_at: None,
        }),
    }
}

fn inspector(id: &str, region: &str, department: &str) -> pb::UpsertInspectorRequest {
    pb::UpsertInspectorRequest {
        request_id: String::new(),
        inspector: Some(pb::Inspector {
            id: id.into(),
            name: format!("检查员{id}"),
            certificate_number: format!("沪执{id}"),
            home_region_code: region.into(),
            fields: vec![],
            active: true,
            department: department.into(),
        }),
    }
}

/// The catalogue: every item with its department and source, filtered by department;
/// an unknown department is named.
#[tokio::test]
async fn the_check_item_catalogue_is_listed() {
    let mut t = joint_city().await;
    let all = t
        .spot
        .list_check_items(pb::ListCheckItemsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(!all.catalogue_version.is_empty());
    assert!(all.items.len() >= 10 && all.departments.len() >= 3);
    assert_eq!(all.default_department, "market");
    for i in &all.items {
        assert!(!i.legal_basis.is_empty(), "{} cites its basis", i.code);
        assert!(all.departments.iter().any(|d| d.code == i.department));
        assert_eq!(i.default_ratios.len(), 4);
        let r: Vec<f64> = i.default_ratios.iter().map(|c| c.ratio).collect();
        assert!(r.windows(2).all(|w| w[0] <= w[1]), "{}: {r:?}", i.code);
    }
    let food = all.items.iter().find(|i| i.code == "SC-SP-01").unwrap();
    assert_eq!(food.licences, vec!["food", "special_food"]);
    let medical = t
        .spot
        .list_check_items(pb::ListCheckItemsRequest {
            department: "medical_products".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!medical.items.is_empty());
    assert!(medical
        .items
        .iter()
        .all(|i| i.department == "medical_products"));
    let err = t
        .spot
        .list_check_items(pb::ListCheckItemsRequest {
            department: "police".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("department"), "{}", err.message());
    t.s.stop().await;
}

/// A joint task of three departments: the population is whom an item applies to, each
/// item's population is frozen with its digest, the receipt names each selected
/// enterprise's items, every department draws its own inspectors (seeded per
/// department), one team per department of the enterprise's items; VerifyDraw re-checks
/// all of it and finds a changed team, item list or item digest.
#[tokio::test]
async fn a_joint_task_draws_each_departments_inspectors_and_verifies() {
    let mut t = joint_city().await;
    let items = ["SC-GS-01", "SC-SP-01", "YJ-YP-01", "YA-WH-01"];
    // Bad items are named by index.
    for (req, field) in [
        (items_plan("T", &["SC-GS-01", "NOPE"]), "check_items[1]"),
        (items_plan("T", &["SC-GS-01", "SC-GS-01"]), "check_items[1]"),
        // Advertising (L725) applies to nobody here.
        (items_plan("T", &["SC-GS-01", "SC-GG-01"]), "check_items[1]"),
    ] {
        let err = t.spot.plan_draw(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        assert!(
            err.message().starts_with(field),
            "{field}: {}",
            err.message()
        );
    }
    let plan = t
        .spot
        .plan_draw(items_plan("2026-联合-001", &items))
        .await
        .unwrap()
        .into_inner();
    let codes: Vec<&str> = plan.departments.iter().map(|d| d.code.as_str()).collect();
    assert_eq!(codes, ["market", "medical_products", "emergency"]);
    assert!(!plan.check_items_version.is_empty());
    // The population is whom an item applies to: the 40 enterprises (the individual
    // restaurants have none of these items).
    let total: u64 = plan.strata.iter().map(|s| s.population).sum();
    assert_eq!(total, 40);
    let want: [(&str, Vec<String>); 4] = [
        (
            "SC-GS-01",
            [&t.food[..], &t.pharmacies[..], &t.chemicals[..]].concat(),
        ),
        ("SC-SP-01", t.food.clone()),
        ("YJ-YP-01", t.pharmacies.clone()),
        ("YA-WH-01", t.chemicals.clone()),
    ];
    for ((code, mut usccs), planned) in want.into_iter().zip(&plan.check_items) {
        usccs.sort();
        let item = planned.item.as_ref().unwrap();
        assert_eq!(item.code, code);
        assert_eq!(planned.population, usccs.len() as u64, "{code}");
        let listed = item_population(&mut t.spot, plan.plan_id, code).await;
        assert_eq!(listed, usccs, "{code}");
        assert_eq!(
            planned.population_digest,
            sampler::population_digest(usccs.iter().map(String::as_str)),
            "{code}"
        );
    }
    let err = t
        .spot
        .list_population(pb::ListPopulationRequest {
            plan_id: plan.plan_id,
            check_item: "SC-GG-01".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.message().starts_with("check_item"), "{}", err.message());

    // A result of the task recorded before the draw (the draw's statistics then give
    // its check the class drawn: the general path, not the selector's row).
    let early = t.chemicals[0].clone();
    t.s.client
        .clone()
        .record_inspection_result(visit("2026-联合-001", &early, &["SC-GS-01"], &[], false))
        .await
        .unwrap();
    let receipt = t
        .spot
        .draw_sample(pb::DrawSampleRequest {
            request_id: String::new(),
            plan_id: plan.plan_id,
            seed: "20261203-公开摇号".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(receipt.check_items, plan.check_items);
    let selected: Vec<&pb::Selected> = receipt.strata.iter().flat_map(|s| &s.selected).collect();
    assert_eq!(selected.len(), 40);
    for s in &selected {
        let want: Vec<&str> = if t.food.contains(&s.uscc) {
            vec!["SC-GS-01", "SC-SP-01"]
        } else if t.pharmacies.contains(&s.uscc) {
            vec!["SC-GS-01", "YJ-YP-01"]
        } else {
            assert!(t.chemicals.contains(&s.uscc));
            vec!["SC-GS-01", "YA-WH-01"]
        };
        assert_eq!(s.check_items, want, "{}", s.uscc);
    }

    // The emergency department has no inspectors yet: refused naming it.
    for (id, region, dept) in [
        ("M-1", "310104", "market"),
        ("M-2", "310101", "market"),
        ("M-3", "310115", "market"),
        ("Y-1", "310104", ""),
        ("P-1", "310104", "medical_products"),
        ("P-2", "310106", "medical_products"),
    ] {
        // "Y-1" without a department joins the default one.
        t.spot
            .upsert_inspector(inspector(id, region, dept))
            .await
            .unwrap();
    }
    let err = t
        .spot
        .upsert_inspector(inspector("Z-1", "310104", "police"))
        .await
        .unwrap_err();
    assert!(
        err.message().starts_with("inspector.department"),
        "{}",
        err.message()
    );
    let assign = |team_size| pb::AssignInspectorsRequest {
        request_id: String::new(),
        plan_id: plan.plan_id,
        team_size,
        conflicts: vec![],
    };
    let err = t.spot.assign_inspectors(assign(2)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("emergency"), "{}", err.message());
    for (id, region) in [("E-1", "310104"), ("E-2", "310101"), ("E-3", "310115")] {
        t.spot
            .upsert_inspector(inspector(id, region, "emergency"))
            .await
            .unwrap();
    }
    let listed = t
        .spot
        .list_inspectors(pb::ListInspectorsRequest {
            department: "emergency".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.inspectors.len(), 3);
    let market = t
        .spot
        .list_inspectors(pb::ListInspectorsRequest {
            department: "market".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        market.inspectors.len(),
        4,
        "Y-1 joined the default department"
    );

    let receipt = t
        .spot
        .assign_inspectors(assign(2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(receipt.team_size, 2);
    assert!(receipt.inspector_pool_digest.is_empty());
    assert_eq!(receipt.departments.len(), 3);
    for d in &receipt.departments {
        assert_eq!(d.inspector_pool_digest.len(), 64, "{}", d.department);
    }
    assert_eq!(receipt.departments[1].check_items, ["YJ-YP-01"]);
    // One visit per enterprise, one team per department of its items: 20 food traders
    // (market), 10 pharmacies (market, medical), 10 chemical makers (market, emergency).
    assert_eq!(receipt.teams.len(), 20 + 2 * 10 + 2 * 10);
    let prefix = |d: &str| match d {
        "market" => ["M-", "Y-"],
        "medical_products" => ["P-", "P-"],
        "emergency" => ["E-", "E-"],
        other => panic!("department {other}"),
    };
    for team in &receipt.teams {
        assert_eq!(team.inspectors.len(), 2);
        for i in &team.inspectors {
            assert!(
                prefix(&team.department)
                    .iter()
                    .any(|p| i.inspector_id.starts_with(p)),
                "{} in a {} team",
                i.inspector_id,
                team.department
            );
            // Never from the enterprise's own region (310115): M-3 and E-3 stay home.
            assert!(!["M-3", "E-3"].contains(&i.inspector_id.as_str()));
        }
    }
    // The documented team seed: sampler_seed + ":" + department + ":" + uscc.
    let first_medical = receipt
        .teams
        .iter()
        .find(|t| t.department == "medical_products")
        .unwrap();
    let pool: Vec<(String, RegionCode)> = [("P-1", "310104"), ("P-2", "310106")]
        .iter()
        .map(|(id, r)| (id.to_string(), RegionCode::parse("r", r).unwrap()))
        .collect();
    let u = Uscc::parse(&first_medical.uscc).unwrap();
    let again = draw_team(
        &format!("{}:medical_products", receipt.sampler_seed),
        u,
        RegionCode::parse("r", "310115").unwrap(),
        &pool,
        &[],
        2,
    )
    .unwrap();
    let ids: Vec<&str> = first_medical
        .inspectors
        .iter()
        .map(|i| i.inspector_id.as_str())
        .collect();
    let again_ids: Vec<&str> = again.inspectors.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(ids, again_ids);

    // GetReceipt answers the same receipt; VerifyDraw accepts it and finds changes.
    let fetched = t
        .spot
        .get_receipt(pb::GetReceiptRequest {
            plan_id: plan.plan_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched, receipt);
    let verify = |r: pb::DrawReceipt| {
        let mut spot = t.spot.clone();
        async move {
            spot.verify_draw(pb::VerifyDrawRequest { receipt: Some(r) })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let ok = verify(receipt.clone()).await;
    assert!(ok.matches, "{}", ok.first_difference);
    let mut bad = receipt.clone();
    let i = bad
        .teams
        .iter()
        .position(|t| t.department == "emergency")
        .unwrap();
    bad.teams[i].department = "market".into();
    let v = verify(bad).await;
    assert!(
        !v.matches && v.first_difference.starts_with("teams["),
        "{}",
        v.first_difference
    );
    let mut bad = receipt.clone();
    let k = bad
        .strata
        .iter()
        .position(|s| !s.selected.is_empty())
        .unwrap();
    bad.strata[k].selected[0].check_items.pop();
    let v = verify(bad).await;
    assert!(
        !v.matches && v.first_difference.contains("check_items"),
        "{}",
        v.first_difference
    );
    let mut bad = receipt.clone();
    bad.check_items[2].population_digest = "0".repeat(64);
    let v = verify(bad).await;
    assert!(
        !v.matches && v.first_difference.starts_with("check_items[2]"),
        "{}",
        v.first_difference
    );
    let mut bad = receipt.clone();
    bad.departments[2].inspector_pool_digest = "0".repeat(64);
    let v = verify(bad).await;
    assert!(
        !v.matches && v.first_difference.starts_with("departments[2]"),
        "{}",
        v.first_difference
    );

    // One visit, recorded once with every department's items, the result per item;
    // shared with every department of the task by ListTaskResults.
    let pharmacy = t.pharmacies[0].clone();
    let pharmacy_visit = |items: &[&str], problems: &[&str], found: bool| {
        visit("2026-联合-001", &pharmacy, items, problems, found)
    };
    let mut reg = t.s.client.clone();
    for (req, field) in [
        (
            pharmacy_visit(&["SC-GS-01"], &["YJ-YP-01"], true),
            "result.problem_items[0]",
        ),
        (
            pharmacy_visit(&["SC-GS-01", "YJ-YP-01"], &["YJ-YP-01"], false),
            "result.problems_found",
        ),
    ] {
        let err = reg.record_inspection_result(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().starts_with(field),
            "{field}: {}",
            err.message()
        );
    }
    // The market inspectors record first, the medical ones correct the same visit.
    reg.record_inspection_result(pharmacy_visit(&["SC-GS-01"], &[], false))
        .await
        .unwrap();
    reg.record_inspection_result(pharmacy_visit(
        &["SC-GS-01", "YJ-YP-01"],
        &["YJ-YP-01"],
        true,
    ))
    .await
    .unwrap();
    let report = reg
        .get_credit_report(pb::GetCreditReportRequest {
            uscc: pharmacy.clone(),
            as_of: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let visits: Vec<_> = report
        .inspections
        .iter()
        .filter(|i| i.task_id == "2026-联合-001")
        .collect();
    assert_eq!(
        visits.len(),
        1,
        "one visit per enterprise for the joint task"
    );
    assert_eq!(visits[0].problem_items, ["YJ-YP-01"]);
    let mut st = t
        .spot
        .list_task_results(pb::ListTaskResultsRequest {
            plan_id: plan.plan_id,
        })
        .await
        .unwrap()
        .into_inner();
    let mut results = Vec::new();
    while let Some(b) = st.message().await.unwrap() {
        results.extend(b.results);
    }
    assert_eq!(results.len(), 40);
    let outcome = |r: &pb::TaskResult| -> Vec<(String, i32)> {
        r.items
            .iter()
            .map(|i| (i.check_item.clone(), i.outcome))
            .collect()
    };
    let p = results.iter().find(|r| r.uscc == pharmacy).unwrap();
    assert_eq!(p.departments, ["market", "medical_products"]);
    assert_eq!(
        outcome(p),
        [
            ("SC-GS-01".to_string(), pb::ItemOutcome::NoProblem as i32),
            ("YJ-YP-01".to_string(), pb::ItemOutcome::Problem as i32)
        ]
    );
    assert!(p.result.as_ref().unwrap().problems_found);
    let f = results.iter().find(|r| r.uscc == t.food[0]).unwrap();
    assert!(f.result.is_none());
    assert!(f
        .items
        .iter()
        .all(|i| i.outcome == pb::ItemOutcome::NotRecorded as i32));
    // The statistics the draw and the visits wrote equal those recomputed from the
    // records (the draw counted most selections from the selector's rows).
    t.s.store
        .check_indexes()
        .expect("statistics agree with the records");
    t.s.stop().await;
}

/// A plan naming items without strata draws, per class, the largest default share of
/// its items; a plan without items keeps the rules' defaults and the default
/// department's inspectors.
#[tokio::test]
async fn items_set_the_default_shares() {
    let mut t = joint_city().await;
    let catalogue = t
        .spot
        .list_check_items(pb::ListCheckItemsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let share = |code: &str, class: usize| {
        catalogue
            .items
            .iter()
            .find(|i| i.code == code)
            .unwrap()
            .default_ratios[class]
            .ratio
    };
    let mut req = items_plan("2026-默认比例", &["SC-GS-01", "YJ-YP-01"]);
    req.strata.clear();
    req.override_reason.clear();
    req.request_id = "joint-defaults-1".into();
    let plan = t.spot.plan_draw(req.clone()).await.unwrap().into_inner();
    // The same request id again: the first plan, nothing frozen twice.
    let again = t.spot.plan_draw(req).await.unwrap().into_inner();
    assert_eq!(again, plan);
    let listed = t
        .spot
        .list_plans(pb::ListPlansRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.plans.len(), 1);
    assert_eq!(plan.strata.len(), 4);
    for (k, s) in plan.strata.iter().enumerate() {
        let want = share("SC-GS-01", k).max(share("YJ-YP-01", k));
        assert_eq!(s.ratio, want, "class index {k}");
    }
    t.s.stop().await;
}

/// The results of a task are shared with every department, but a region-scoped token
/// sees an enterprise's recorded result only while the enterprise is in its regions.
#[tokio::test]
async fn a_scoped_token_sees_task_results_only_in_its_regions() {
    use credit_risk::proto::registry_service_client::RegistryServiceClient;
    use credit_risk::server::auth::{hash_token, AuthConfig, Role, TokenConfig};
    let token = |name: &str, secret: &str, role, regions: Vec<String>| TokenConfig {
        name: name.into(),
        sha256: hash_token(secret),
        role,
        regions,
    };
    let s = TestServer::start_with_auth(AuthConfig {
        tokens: vec![
            token("admin", "admin-secret", Role::Admin, vec![]),
            token(
                "xuhui",
                "xuhui-secret",
                Role::Scheduler,
                vec!["310104".into()],
            ),
        ],
    })
    .await;
    let ch = Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut reg = RegistryServiceClient::with_interceptor(ch.clone(), Bearer(Some("admin-secret")));
    let firms: Vec<String> = (0..3).map(|n| uscc_n(b'1', 500 + n)).collect();
    let in_region = |u: &str, region: &str| {
        let mut e = enterprise(u);
        e.region_code = region.into();
        pb::UpsertEnterpriseRequest {
            request_id: String::new(),
            enterprise: Some(e),
        }
    };
    for u in &firms {
        reg.upsert_enterprise(in_region(u, "310104")).await.unwrap();
    }
    let mut k =
        ClassificationServiceClient::with_interceptor(ch.clone(), Bearer(Some("admin-secret")));
    let st = k
        .run_batch_scoring(pb::RunBatchScoringRequest::default())
        .await
        .unwrap()
        .into_inner();
    scoring_done(st).await.unwrap();
    let mut xuhui =
        SpotCheckServiceClient::with_interceptor(ch.clone(), Bearer(Some("xuhui-secret")));
    let mut admin =
        SpotCheckServiceClient::with_interceptor(ch.clone(), Bearer(Some("admin-secret")));
    let plan = xuhui
        .plan_draw(items_plan("2026-徐汇-食品", &["SC-SP-01"]))
        .await
        .unwrap()
        .into_inner();
    xuhui
        .draw_sample(pb::DrawSampleRequest {
            request_id: String::new(),
            plan_id: plan.plan_id,
            seed: "s".into(),
        })
        .await
        .unwrap();
    let moved = firms[0].clone();
    reg.record_inspection_result(visit(
        "2026-徐汇-食品",
        &moved,
        &["SC-SP-01"],
        &["SC-SP-01"],
        true,
    ))
    .await
    .unwrap();
    async fn results(
        c: &mut SpotCheckServiceClient<
            tonic::service::interceptor::InterceptedService<Channel, Bearer>,
        >,
        plan_id: u64,
    ) -> Vec<pb::TaskResult> {
        let mut st = c
            .list_task_results(pb::ListTaskResultsRequest { plan_id })
            .await
            .unwrap()
            .into_inner();
        let mut out = Vec::new();
        while let Some(b) = st.message().await.unwrap() {
            out.extend(b.results);
        }
        out
    }
    let of = |rs: &[pb::TaskResult]| rs.iter().find(|r| r.uscc == moved).cloned().unwrap();
    assert!(of(&results(&mut xuhui, plan.plan_id).await)
        .result
        .is_some());
    // The enterprise moves to Pudong: Xuhui no longer sees its result; the city does.
    reg.upsert_enterprise(in_region(&moved, "310115"))
        .await
        .unwrap();
    let r = of(&results(&mut xuhui, plan.plan_id).await);
    assert!(r.result.is_none());
    assert!(r
        .items
        .iter()
        .all(|i| i.outcome == pb::ItemOutcome::NotRecorded as i32));
    let r = of(&results(&mut admin, plan.plan_id).await);
    assert_eq!(
        r.items[0].outcome,
        pb::ItemOutcome::Problem as i32,
        "the city sees it"
    );
    s.stop().await;
}
