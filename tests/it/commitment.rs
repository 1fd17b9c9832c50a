//! CommitmentService over gRPC: a commitment recorded, verified broken (a false
//! commitment that re-scores the enterprise and triggers its measure), listed while due,
//! refused where the input is wrong, and repaired through the repair workflow after its
//! minimum period — and restored when that repair is revoked.

use crate::common::{enterprise, put_enterprise, score_now, uscc_n, TestServer};
use credit_risk::{
    domain::Date,
    proto::{
        self as pb, classification_service_client::ClassificationServiceClient,
        commitment_service_client::CommitmentServiceClient,
        credit_repair_service_client::CreditRepairServiceClient,
        measures_service_client::MeasuresServiceClient,
    },
};
use tonic::Code;

const TODAY: &str = "2026-06-01";

fn promise(uscc: &str, id: &str, made_on: &str, due_on: &str) -> pb::RecordCommitmentRequest {
    pb::RecordCommitmentRequest {
        request_id: String::new(),
        commitment: Some(pb::Commitment {
            commitment_id: id.into(),
            uscc: uscc.into(),
            kind: pb::CommitmentKind::LicensingNotification as i32,
            made_on: made_on.into(),
            due_on: due_on.into(),
            content: "三个月内补交食品经营场所平面图".into(),
            authority: "浦东新区市场监督管理局".into(),
            ..Default::default()
        }),
    }
}

fn finding(
    uscc: &str,
    id: &str,
    verdict: pb::CommitmentVerdict,
    on: &str,
) -> pb::VerifyCommitmentRequest {
    pb::VerifyCommitmentRequest {
        request_id: String::new(),
        uscc: uscc.into(),
        commitment_id: id.into(),
        verdict: verdict as i32,
        verified_on: on.into(),
        note: "场所平面图逾期未补交".into(),
    }
}

/// ListCommitments answered: one enterprise's (`uscc`), or the unverified ones due by
/// `due_by`.
async fn commitments(
    c: &mut CommitmentServiceClient<tonic::transport::Channel>,
    uscc: &str,
    due_by: &str,
) -> pb::ListCommitmentsResponse {
    c.list_commitments(pb::ListCommitmentsRequest {
        uscc: uscc.into(),
        due_by: due_by.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
}

/// The FALSE_COMMITMENT factors of `u` in the current run (re-scores included).
async fn false_commitment_factors(
    k: &mut ClassificationServiceClient<tonic::transport::Channel>,
    u: &str,
) -> Vec<String> {
    k.get_classification(pb::GetClassificationRequest {
        uscc: u.into(),
        run_id: 0,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .factors
    .into_iter()
    .filter(|f| f.code == "FALSE_COMMITMENT")
    .map(|f| f.record)
    .collect()
}

#[tokio::test]
async fn a_broken_commitment_weighs_until_its_repair() {
    let s = TestServer::start_on(Date::parse("d", TODAY).unwrap()).await;
    let url = format!("http://{}", s.addr);
    let mut reg = s.client.clone();
    let mut c = CommitmentServiceClient::connect(url.clone()).await.unwrap();
    let mut k = ClassificationServiceClient::connect(url.clone())
        .await
        .unwrap();
    let mut m = MeasuresServiceClient::connect(url.clone()).await.unwrap();
    let mut r = CreditRepairServiceClient::connect(url).await.unwrap();
    let u = uscc_n(b'1', 11);
    put_enterprise(&mut reg, enterprise(&u)).await;

    // Recorded once; the same again is unchanged; another under the same id is refused.
    let first = c
        .record_commitment(promise(&u, "LIC-1", "2026-01-10", "2026-04-10"))
        .await
        .unwrap()
        .into_inner();
    assert!(first.created);
    let again = c
        .record_commitment(promise(&u, "LIC-1", "2026-01-10", "2026-04-10"))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created);
    assert_eq!(again.commitment, first.commitment);
    let clash = c
        .record_commitment(promise(&u, "LIC-1", "2026-01-10", "2026-05-10"))
        .await
        .unwrap_err();
    assert_eq!(clash.code(), Code::AlreadyExists);
    c.record_commitment(promise(&u, "LIC-0", "2025-12-01", "2026-01-01"))
        .await
        .unwrap();
    // Both are due and unverified.
    let due = commitments(&mut c, "", TODAY).await;
    let ids: Vec<_> = due
        .commitments
        .iter()
        .map(|x| x.commitment_id.as_str())
        .collect();
    assert_eq!(ids, ["LIC-0", "LIC-1"], "by due day");
    let not_yet = commitments(&mut c, "", "2026-03-01").await;
    assert_eq!(not_yet.commitments.len(), 1);

    score_now(&mut k).await;
    assert!(false_commitment_factors(&mut k, &u).await.is_empty());

    // Both found broken: each is a false commitment, re-scored in the batch, with its
    // measure; neither is due any more.
    for (id, on) in [("LIC-0", "2026-02-01"), ("LIC-1", "2026-05-01")] {
        let v = c
            .verify_commitment(finding(&u, id, pb::CommitmentVerdict::Broken, on))
            .await
            .unwrap()
            .into_inner()
            .commitment
            .unwrap();
        assert!(v.false_commitment);
        assert_eq!(v.verification.unwrap().verified_on, on);
    }
    assert_eq!(
        false_commitment_factors(&mut k, &u).await,
        ["commitment/LIC-0", "commitment/LIC-1"]
    );
    let measures = m
        .get_measures(pb::GetMeasuresRequest {
            uscc: u.clone(),
            as_of: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let fc: Vec<_> = measures
        .measures
        .iter()
        .filter(|a| a.measure.as_ref().unwrap().code == "P-FC-01")
        .map(|a| a.record_id.as_str())
        .collect();
    assert_eq!(fc, ["commitment/LIC-0", "commitment/LIC-1"]);
    assert!(commitments(&mut c, "", TODAY).await.commitments.is_empty());

    // The same finding again changes nothing; another finding, or one dated before the
    // commitment, is refused naming the field.
    let same = c
        .verify_commitment(finding(
            &u,
            "LIC-1",
            pb::CommitmentVerdict::Broken,
            "2026-05-02",
        ))
        .await
        .unwrap()
        .into_inner()
        .commitment
        .unwrap();
    assert_eq!(same.verification.unwrap().verified_on, "2026-05-01");
    for (req, code, field) in [
        (
            finding(&u, "LIC-1", pb::CommitmentVerdict::Kept, "2026-05-02"),
            Code::InvalidArgument,
            "verdict",
        ),
        (
            finding(&u, "LIC-1", pb::CommitmentVerdict::Unspecified, ""),
            Code::InvalidArgument,
            "verdict",
        ),
        (
            finding(&u, "LIC-2", pb::CommitmentVerdict::Kept, ""),
            Code::NotFound,
            "commitment_id",
        ),
    ] {
        let e = c.verify_commitment(req).await.unwrap_err();
        assert_eq!(e.code(), code, "{field}: {}", e.message());
        assert!(e.message().starts_with(field), "{field}: {}", e.message());
    }
    // Recording the same commitment again after its verification: unchanged, verified.
    let again = c
        .record_commitment(promise(&u, "LIC-1", "2026-01-10", "2026-04-10"))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created);
    assert!(again.commitment.unwrap().false_commitment);
    let mut output_only = promise(&u, "LIC-9", "2026-03-01", "2026-04-01");
    output_only.commitment.as_mut().unwrap().repaired_on = "2026-05-01".into();
    let e = c.record_commitment(output_only).await.unwrap_err();
    assert!(
        e.message().starts_with("commitment.repaired_on"),
        "{}",
        e.message()
    );
    c.record_commitment(promise(&u, "LIC-3", "2026-03-01", "2026-03-31"))
        .await
        .unwrap();
    let early = c
        .verify_commitment(finding(
            &u,
            "LIC-3",
            pb::CommitmentVerdict::Kept,
            "2026-02-28",
        ))
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::InvalidArgument);
    assert!(
        early.message().starts_with("verified_on"),
        "{}",
        early.message()
    );
    for (req, field) in [
        (
            promise(&u, "X", "2026-03-01", "2026-02-01"),
            "commitment.due_on",
        ),
        (
            promise(&u, "X", "2026-07-01", "2026-08-01"),
            "commitment.made_on",
        ),
        (
            promise(&u, "", "2026-03-01", "2026-04-01"),
            "commitment.commitment_id",
        ),
    ] {
        let e = c.record_commitment(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().starts_with(field), "{field}: {}", e.message());
    }
    let nobody = c
        .record_commitment(promise(&uscc_n(b'1', 12), "X", "2026-03-01", "2026-04-01"))
        .await
        .unwrap_err();
    assert_eq!(nobody.code(), Code::NotFound);

    // Repair: LIC-1 (found 2026-05-01) is too recent — 3 months elapse on 2026-08-02 —
    // LIC-0 (found 2026-02-01) is repairable.
    let submit = |id: &str| pb::SubmitRepairRequest {
        request_id: String::new(),
        uscc: u.clone(),
        target: Some(pb::RepairTarget {
            target: Some(pb::repair_target::Target::CommitmentId(id.into())),
        }),
        reason: "已补交平面图".into(),
        commitment: "守信承诺书 doc://commit/9".into(),
        commitment_signed: true,
        evidence: vec!["doc://plan/1".into()],
    };
    let too_soon = r.submit_repair(submit("LIC-1")).await.unwrap_err();
    assert_eq!(too_soon.code(), Code::InvalidArgument);
    assert!(
        too_soon.message().contains("2026-08-02"),
        "{}",
        too_soon.message()
    );
    let case = r.submit_repair(submit("LIC-0")).await.unwrap().into_inner();
    r.accept_repair(pb::AcceptRepairRequest {
        request_id: String::new(),
        case_id: case.case_id,
        accept: true,
        reason: "材料齐全".into(),
    })
    .await
    .unwrap();
    r.decide_repair(pb::DecideRepairRequest {
        request_id: String::new(),
        case_id: case.case_id,
        approve: true,
        reason: "核实无误".into(),
    })
    .await
    .unwrap();
    let mine = |c: &pb::ListCommitmentsResponse, id: &str| {
        c.commitments
            .iter()
            .find(|x| x.commitment_id == id)
            .cloned()
            .unwrap()
    };
    let listed = commitments(&mut c, &u, "").await;
    let repaired = mine(&listed, "LIC-0");
    assert_eq!(repaired.repaired_on, TODAY);
    assert!(!repaired.false_commitment);
    assert_eq!(
        false_commitment_factors(&mut k, &u).await,
        ["commitment/LIC-1"]
    );

    // A revoked repair restores the record (and is itself a false commitment).
    r.revoke_repair(pb::RevokeRepairRequest {
        request_id: String::new(),
        case_id: case.case_id,
        reason: "承诺不实".into(),
    })
    .await
    .unwrap();
    let listed = commitments(&mut c, &u, "").await;
    assert!(mine(&listed, "LIC-0").false_commitment);
    let mut after = false_commitment_factors(&mut k, &u).await;
    after.sort();
    assert_eq!(
        after,
        [
            "commitment/LIC-0".to_string(),
            "commitment/LIC-1".into(),
            format!("repair_case/{}", case.case_id)
        ]
    );
    s.store
        .check_indexes()
        .expect("indexes agree with the records");

    // Listing needs a uscc or a due day.
    let e = c
        .list_commitments(pb::ListCommitmentsRequest::default())
        .await
        .unwrap_err();
    assert!(e.message().starts_with("due_by"), "{}", e.message());
    // A future day would judge false commitments on records not yet known: refused.
    let e = c
        .list_commitments(pb::ListCommitmentsRequest {
            due_by: "2026-12-31".into(),
            as_of: "2099-01-01".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("as_of"), "{}", e.message());
}

/// History imports with its verifications: a broken one is a false commitment at once;
/// one verified before it was made is refused naming the field; the same stream again
/// stores nothing new.
#[tokio::test]
async fn imported_commitments_keep_their_verification() {
    let s = TestServer::start_on(Date::parse("d", TODAY).unwrap()).await;
    let mut reg = s.client.clone();
    let u = uscc_n(b'1', 21);
    let record = |id: &str, verified_on: &str| {
        let mut c = promise(&u, id, "2026-01-10", "2026-04-10")
            .commitment
            .unwrap();
        c.verification = Some(pb::CommitmentVerification {
            verdict: pb::CommitmentVerdict::Broken as i32,
            verified_on: verified_on.into(),
            verified_by: "浦东新区市场监督管理局".into(),
            note: "逾期未补交".into(),
            recorded_at: None,
        });
        pb::ImportRecord {
            record: Some(pb::import_record::Record::Commitment(c)),
        }
    };
    let stream = vec![pb::ImportRecordsRequest {
        records: vec![
            pb::ImportRecord {
                record: Some(pb::import_record::Record::Enterprise(enterprise(&u))),
            },
            record("H-1", "2026-04-20"),
            record("H-2", "2025-12-31"),
        ],
    }];
    let summary = reg
        .import_records(tokio_stream::iter(stream.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((summary.stored, summary.rejected), (2, 1), "{summary:?}");
    assert_eq!(summary.rejections[0].index, 2);
    assert!(
        summary.rejections[0]
            .reason
            .contains("commitment.verification.verified_on"),
        "{:?}",
        summary.rejections[0]
    );
    let mut c = CommitmentServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let listed = commitments(&mut c, &u, "").await;
    assert_eq!(listed.commitments.len(), 1);
    let h1 = &listed.commitments[0];
    assert!(h1.false_commitment);
    assert_eq!(
        h1.verification.as_ref().unwrap().verified_by,
        "浦东新区市场监督管理局"
    );
    let again = reg
        .import_records(tokio_stream::iter(stream))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.stored, again.unchanged), (0, 2), "{again:?}");
    let report = reg
        .get_credit_report(pb::GetCreditReportRequest {
            uscc: u.clone(),
            as_of: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.commitments.len(), 1);
    assert!(report.commitments[0].false_commitment);
    // As of a day before the finding, the report shows it as it stood then.
    let then = reg
        .get_credit_report(pb::GetCreditReportRequest {
            uscc: u.clone(),
            as_of: "2026-04-15".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(then.commitments[0].verification.is_none());
    assert!(!then.commitments[0].false_commitment);

    // History re-sent once verified: the stored, unverified commitment takes the
    // verification (not ALREADY_EXISTS); sent again, nothing changes.
    let mut unverified = record("H-3", "2026-04-20");
    if let Some(pb::import_record::Record::Commitment(c)) = unverified.record.as_mut() {
        c.verification = None;
    }
    let import = |records: Vec<pb::ImportRecord>| {
        let mut reg = reg.clone();
        async move {
            reg.import_records(tokio_stream::iter(vec![pb::ImportRecordsRequest {
                records,
            }]))
            .await
            .unwrap()
            .into_inner()
        }
    };
    let first = import(vec![unverified]).await;
    assert_eq!((first.stored, first.rejected), (1, 0), "{first:?}");
    let verified = import(vec![record("H-3", "2026-04-20")]).await;
    assert_eq!((verified.stored, verified.rejected), (1, 0), "{verified:?}");
    let again = import(vec![record("H-3", "2026-04-20")]).await;
    assert_eq!((again.stored, again.unchanged), (0, 1), "{again:?}");
    let listed = commitments(&mut c, &u, "").await;
    let h3 = listed
        .commitments
        .iter()
        .find(|x| x.commitment_id == "H-3")
        .expect("H-3");
    assert!(h3.false_commitment, "{h3:?}");
    s.store.check_indexes().expect("indexes agree");
}
