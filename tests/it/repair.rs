//! CreditRepairService end to end: an abnormal listing repaired, its class changed, the
//! trail audited; revocation restores it and scores the false commitment.

use crate::common::*;
use credit_risk::{
    domain::Date,
    proto::{
        self as pb, audit_service_client::AuditServiceClient,
        classification_service_client::ClassificationServiceClient,
        credit_repair_service_client::CreditRepairServiceClient,
    },
};
use tonic::Code;

async fn file(c: &mut RegistryClient, u: &str, year: i32) {
    c.file_annual_report(pb::FileAnnualReportRequest {
        request_id: String::new(),
        report: Some(pb::AnnualReport {
            uscc: u.into(),
            year,
            filed_on: Date::today().to_string(),
            ..Default::default()
        }),
    })
    .await
    .expect("report");
}

/// GetRepairStatistics of the server at `addr`.
async fn repair_statistics(
    addr: std::net::SocketAddr,
    req: pb::GetRepairStatisticsRequest,
) -> pb::RepairStatistics {
    credit_risk::proto::statistics_service_client::StatisticsServiceClient::connect(format!(
        "http://{addr}"
    ))
    .await
    .unwrap()
    .get_repair_statistics(req)
    .await
    .unwrap()
    .into_inner()
}

async fn class_of(
    k: &mut ClassificationServiceClient<tonic::transport::Channel>,
    u: &str,
) -> pb::Classification {
    k.get_classification(pb::GetClassificationRequest {
        uscc: u.into(),
        run_id: 0,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
}

#[tokio::test]
async fn abnormal_listing_repaired_then_revoked() {
    let s = TestServer::start().await;
    let addr = format!("http://{}", s.addr);
    let mut c = s.client.clone();
    let mut k = ClassificationServiceClient::connect(addr.clone())
        .await
        .unwrap();
    let mut r = CreditRepairServiceClient::connect(addr.clone())
        .await
        .unwrap();
    let mut a = AuditServiceClient::connect(addr).await.unwrap();

    let u = uscc_n(b'1', 77);
    let mut e = enterprise(&u);
    e.established_on = "2023-03-01".into();
    e.supervision_flags.clear();
    put_enterprise(&mut c, e).await;
    let listed_on = "2025-07-15";
    c.add_listing(pb::AddListingRequest {
        request_id: String::new(),
        listing: Some(pb::Listing {
            uscc: u.clone(),
            kind: pb::ListKind::AbnormalOperations as i32,
            reason: pb::ListingReason::AnnualReportNotFiled as i32,
            listed_on: listed_on.into(),
            authority: "上海市浦东新区市场监督管理局".into(),
            report_year: 2024,
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    let st = k
        .run_batch_scoring(pb::RunBatchScoringRequest::default())
        .await
        .unwrap()
        .into_inner();
    crate::common::scoring_done(st).await.unwrap();
    let before = class_of(&mut k, &u).await;
    assert!(before.risk_class >= pb::RiskClass::C as i32);

    let target = pb::RepairTarget {
        target: Some(pb::repair_target::Target::Listing(pb::ListingKey {
            kind: pb::ListKind::AbnormalOperations as i32,
            listed_on: listed_on.into(),
            reason: pb::ListingReason::AnnualReportNotFiled as i32,
        })),
    };
    let submit = |signed: bool| pb::SubmitRepairRequest {
        request_id: String::new(),
        uscc: u.clone(),
        target: Some(target.clone()),
        reason: "已补报年度报告".into(),
        commitment: "守信承诺书 2026-11 签字版 doc://commit/77".into(),
        commitment_signed: signed,
        evidence: vec!["doc://reports/2023-2025".into()],
    };
    // Not eligible before the reports are made up; unsigned commitments are refused.
    let err = r.submit_repair(submit(true)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .starts_with("target: annual reports not made up"),
        "{}",
        err.message()
    );
    let err = r.submit_repair(submit(false)).await.unwrap_err();
    assert!(err.message().contains("commitment_signed"));
    for y in 2023..=2025 {
        file(&mut c, &u, y).await;
    }
    let case = r.submit_repair(submit(true)).await.unwrap().into_inner();
    assert_eq!(case.state, pb::RepairState::Submitted as i32);
    assert!(
        case.eligibility.iter().any(|w| w.contains("annual report")),
        "{:?}",
        case.eligibility
    );
    assert!(!case.accept_due.is_empty() && case.due == case.accept_due);
    // The built-in holiday calendar covers 2024–2026; a later due date is an estimate.
    assert_eq!(case.due_estimated, case.due.as_str() > "2026-12-31");
    let dup = r.submit_repair(submit(true)).await.unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);
    // Overdue once the acceptance deadline has passed, not before.
    let overdue_at = |as_of: &str| pb::ListRepairCasesRequest {
        overdue: true,
        as_of: as_of.into(),
        ..Default::default()
    };
    let late = r
        .list_repair_cases(overdue_at("2099-01-01"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        late.cases.iter().map(|c| c.case_id).collect::<Vec<_>>(),
        vec![case.case_id]
    );
    assert!(late.cases[0].overdue);
    let on_time = r
        .list_repair_cases(overdue_at(&case.accept_due))
        .await
        .unwrap()
        .into_inner();
    assert!(on_time.cases.is_empty(), "due today is not late");

    // A decision before acceptance names both states.
    let wrong = r
        .decide_repair(pb::DecideRepairRequest {
            request_id: String::new(),
            case_id: case.case_id,
            approve: true,
            reason: "ok".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::FailedPrecondition);
    assert!(
        wrong.message().contains("SUBMITTED") && wrong.message().contains("ACCEPTED"),
        "{}",
        wrong.message()
    );

    let acc = r
        .accept_repair(pb::AcceptRepairRequest {
            request_id: String::new(),
            case_id: case.case_id,
            accept: true,
            reason: "材料齐全".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!acc.decide_due.is_empty());
    assert_eq!(acc.due_estimated, acc.decide_due.as_str() > "2026-12-31");
    let ok = r
        .decide_repair(pb::DecideRepairRequest {
            request_id: String::new(),
            case_id: case.case_id,
            approve: true,
            reason: "核实无误".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.state, pb::RepairState::Approved as i32);
    assert_eq!(
        ok.rules_version, "shanghai-2022-07-01",
        "in force on submission"
    );
    assert_eq!(ok.history.len(), 3);

    // The listing is removed and the class changed, re-scored by the approval.
    let after = class_of(&mut k, &u).await;
    let codes: Vec<&str> = after.factors.iter().map(|f| f.code.as_str()).collect();
    assert!(!codes.contains(&"ABNORMAL_LISTING_OPEN"), "{after:?}");
    assert!(codes.contains(&"ABNORMAL_LISTING_PAST"), "{after:?}");
    assert!(after.hard_rule.is_empty(), "{after:?}");
    assert!(after.score < before.score - 18.0, "{before:?} → {after:?}");
    assert_eq!(
        after.rescored_cause,
        format!("repair_case/{} approve", case.case_id)
    );
    let report = c
        .get_credit_report(pb::GetCreditReportRequest {
            uscc: u.clone(),
            as_of: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(report.open_listings.is_empty());
    assert!(report.listings[0]
        .removal_reason
        .contains(&format!("credit repair case {}", case.case_id)));

    // Revocation: a reason is required; the listing comes back with a false commitment.
    let err = r
        .revoke_repair(pb::RevokeRepairRequest {
            request_id: String::new(),
            case_id: case.case_id,
            reason: " ".into(),
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("reason"));
    let rev = r
        .revoke_repair(pb::RevokeRepairRequest {
            request_id: String::new(),
            case_id: case.case_id,
            reason: "承诺不实: 住所仍无法联系".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rev.state, pb::RepairState::Revoked as i32);
    let again = class_of(&mut k, &u).await;
    assert!(again.risk_class >= pb::RiskClass::C as i32);
    let fc = again
        .factors
        .iter()
        .find(|f| f.code == "FALSE_COMMITMENT")
        .expect("false commitment scored");
    assert_eq!(fc.record, format!("repair_case/{}", case.case_id));
    assert_eq!(fc.dimension, "supervision");
    // A new application is barred.
    let barred = r.submit_repair(submit(true)).await.unwrap_err();
    assert!(
        barred.message().contains("false commitment"),
        "{}",
        barred.message()
    );

    // Every step is in the audit trail, chained.
    let mut st = a
        .list_audit_events(pb::ListAuditEventsRequest {
            uscc: u.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut rpcs = Vec::new();
    while let Some(e) = st.message().await.unwrap() {
        rpcs.push(e.rpc);
    }
    for want in [
        "SubmitRepair",
        "AcceptRepair",
        "DecideRepair",
        "RevokeRepair",
    ] {
        assert!(
            rpcs.iter().any(|r| r == want),
            "{want} missing from {rpcs:?}"
        );
    }
    assert!(
        a.verify_audit_chain(pb::VerifyAuditChainRequest {})
            .await
            .unwrap()
            .into_inner()
            .intact
    );

    let listed = r
        .list_repair_cases(pb::ListRepairCasesRequest {
            uscc: u.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.cases.len(), 1);
    // The statistics count it: submitted, approved, then revoked; decided in time.
    let rs = repair_statistics(
        s.addr,
        pb::GetRepairStatisticsRequest {
            from_month: "2000-01".into(),
            to_month: "2099-12".into(),
            ..Default::default()
        },
    )
    .await;
    let row = &rs.repairs[0];
    assert_eq!(rs.repairs.len(), 1, "{rs:?}");
    assert_eq!(
        (row.submitted, row.revoked, row.open, row.decided_late),
        (1, 1, 0, 0)
    );
    assert!(
        (row.mean_days_to_decision, row.max_days_to_decision) == (0.0, 0)
            && rs.objections.is_empty(),
        "{rs:?}"
    );
    let overdue = r
        .list_repair_cases(pb::ListRepairCasesRequest {
            overdue: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(overdue.cases.is_empty(), "a closed case is never overdue");
    let nf = r
        .get_repair_case(pb::GetRepairCaseRequest { case_id: 99 })
        .await
        .unwrap_err();
    assert_eq!(nf.code(), Code::NotFound);
    s.stop().await;
}

#[tokio::test]
async fn objections_mark_dispute_and_correct_records() {
    let s = TestServer::start().await;
    let addr = format!("http://{}", s.addr);
    let mut c = s.client.clone();
    let mut r = CreditRepairServiceClient::connect(addr.clone())
        .await
        .unwrap();
    let mut a = AuditServiceClient::connect(addr).await.unwrap();
    let u = uscc_n(b'1', 88);
    put_enterprise(&mut c, enterprise(&u)).await;
    let dn = "沪市监罚〔2026〕88号";
    c.record_penalty(pb::RecordPenaltyRequest {
        request_id: String::new(),
        penalty: Some(fine(&u, dn, "2026-05-01", 20_000)),
    })
    .await
    .unwrap();
    let record = format!("penalty/{dn}");
    let file = |rec: &str| pb::FileObjectionRequest {
        request_id: String::new(),
        uscc: u.clone(),
        record: rec.into(),
        reason: "罚款金额录入错误".into(),
        evidence: vec!["doc://decision/88".into()],
    };
    let o = r.file_objection(file(&record)).await.unwrap().into_inner();
    assert_eq!(o.state, "OPEN");
    assert!(!o.decide_due.is_empty());
    assert_eq!(o.decide_due_estimated, o.decide_due.as_str() > "2026-12-31");
    let dup = r.file_objection(file(&record)).await.unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);
    let nf = r.file_objection(file("penalty/none")).await.unwrap_err();
    assert_eq!(nf.code(), Code::NotFound);
    let report = |c: &mut RegistryClient| {
        let mut c = c.clone();
        let u = u.clone();
        async move {
            c.get_credit_report(pb::GetCreditReportRequest {
                uscc: u,
                as_of: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
        }
    };
    let rep = report(&mut c).await;
    assert_eq!(rep.disputed_records, vec![record.clone()]);
    assert_eq!(rep.objections.len(), 1);

    // A correction of another record is refused; the right one is applied and audited.
    let mut wrong = fine(&u, "沪市监罚〔2026〕89号", "2026-05-01", 2000);
    wrong.recorded_at = None;
    let err = r
        .resolve_objection(pb::ResolveObjectionRequest {
            request_id: String::new(),
            objection_id: o.objection_id,
            reason: "核实".into(),
            correction: Some(pb::resolve_objection_request::Correction::Penalty(wrong)),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("correction"), "{}", err.message());
    let fixed = r
        .resolve_objection(pb::ResolveObjectionRequest {
            request_id: String::new(),
            objection_id: o.objection_id,
            reason: "核实后更正金额".into(),
            correction: Some(pb::resolve_objection_request::Correction::Penalty(fine(
                &u,
                dn,
                "2026-05-01",
                2_000,
            ))),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fixed.state, "CORRECTED");
    assert!(
        fixed.resolution.contains("200000 fen"),
        "{}",
        fixed.resolution
    );
    let pens = c
        .list_penalties(pb::ListPenaltiesRequest {
            uscc: u.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pens.penalties[0].fine_fen, 200_000);
    let rep = report(&mut c).await;
    assert!(rep.disputed_records.is_empty());
    let again = r
        .resolve_objection(pb::ResolveObjectionRequest {
            request_id: String::new(),
            objection_id: o.objection_id,
            reason: "x".into(),
            correction: None,
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);

    let mut st = a
        .list_audit_events(pb::ListAuditEventsRequest {
            uscc: u.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut rpcs = Vec::new();
    while let Some(e) = st.message().await.unwrap() {
        rpcs.push(e.rpc);
    }
    assert!(
        rpcs.contains(&"FileObjection".to_string())
            && rpcs.contains(&"ResolveObjection".to_string()),
        "{rpcs:?}"
    );
    let listed = r
        .list_objections(pb::ListObjectionsRequest {
            uscc: u.clone(),
            open_only: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.objections.is_empty());
    let rs = repair_statistics(
        s.addr,
        pb::GetRepairStatisticsRequest {
            by_month: true,
            ..Default::default()
        },
    )
    .await;
    let o = &rs.objections[0];
    assert_eq!(o.month, Date::today().to_string()[..7]);
    assert_eq!(
        (o.filed, o.corrected, o.open, o.resolved_late),
        (1, 1, 0, 0),
        "{rs:?}"
    );
    assert_eq!(
        (o.mean_days_to_resolution, o.max_days_to_resolution),
        (0.0, 0)
    );
    s.stop().await;
}

/// Issue 14, defect 7: removal from the abnormal list follows its reason (SAIC Order 68
/// Art. 11–14: a reason other than a missed report is cured by a fact only evidence
/// shows), and an objection to a listing is filed within lists.listing_objection_days
/// (30, DOMAIN.md §4) of it.
#[tokio::test]
async fn listing_rules_follow_the_reason_and_the_objection_period() {
    let s = TestServer::start().await;
    let addr = format!("http://{}", s.addr);
    let mut c = s.client.clone();
    let mut r = CreditRepairServiceClient::connect(addr).await.unwrap();
    let u = uscc_n(b'1', 78);
    let mut e = enterprise(&u);
    e.established_on = Date::today().add_days(-200).to_string();
    put_enterprise(&mut c, e).await;
    let today = Date::today();
    let listing = |days_ago: i32| pb::Listing {
        uscc: u.clone(),
        kind: pb::ListKind::AbnormalOperations as i32,
        reason: pb::ListingReason::UnreachableAtAddress as i32,
        listed_on: today.add_days(-days_ago).to_string(),
        authority: "上海市浦东新区市场监督管理局".into(),
        ..Default::default()
    };
    for days_ago in [30, 31] {
        c.add_listing(pb::AddListingRequest {
            request_id: String::new(),
            listing: Some(listing(days_ago)),
        })
        .await
        .unwrap();
    }
    let record = |days_ago: i32| {
        format!(
            "listing/ABNORMAL_OPERATIONS/{}/UNREACHABLE_AT_ADDRESS",
            today.add_days(-days_ago)
        )
    };
    let object = |days_ago: i32| pb::FileObjectionRequest {
        request_id: String::new(),
        uscc: u.clone(),
        record: record(days_ago),
        reason: "已在登记住所正常经营".into(),
        evidence: vec![],
    };
    // Day 30 after the listing is the last day (the listing day is not counted).
    r.file_objection(object(30)).await.unwrap();
    let late = r.file_objection(object(31)).await.unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
    assert!(late.message().starts_with("record:"), "{late:?}");
    // Removal of an unreachable-address listing needs proof of the cure.
    let submit = |evidence: Vec<String>| pb::SubmitRepairRequest {
        request_id: String::new(),
        uscc: u.clone(),
        target: Some(pb::RepairTarget {
            target: Some(pb::repair_target::Target::Listing(pb::ListingKey {
                kind: pb::ListKind::AbnormalOperations as i32,
                listed_on: today.add_days(-31).to_string(),
                reason: pb::ListingReason::UnreachableAtAddress as i32,
            })),
        }),
        reason: "可通过登记住所联系".into(),
        commitment: "守信承诺书 doc://commit/78".into(),
        commitment_signed: true,
        evidence,
    };
    let err = r.submit_repair(submit(vec![])).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("evidence:"), "{err:?}");
    let case = r
        .submit_repair(submit(vec!["doc://site-visit/2026-11".into()]))
        .await
        .unwrap()
        .into_inner();
    assert!(
        case.eligibility.iter().any(|w| w.contains("to verify")),
        "{:?}",
        case.eligibility
    );
    s.stop().await;
}
