//! Records of issue 19 item 4. Complaints and reports (投诉举报): a monthly summary per enterprise,
//! validated naming the field, replaced by corrected counts, imported, listed in the
//! credit report; those found true weigh in the social-evaluation dimension of the
//! general model (COMPLAINTS_VERIFIED, cr-2026.4), capped.

use crate::common::{connect, enterprise, put_enterprise, score_now, uscc_n, TestServer};
use credit_risk::{
    domain::stats::Month,
    proto::{self as pb, classification_service_client::ClassificationServiceClient},
};
use tonic::Code;

fn summary(uscc: &str, month: &str, verified: u32) -> pb::ComplaintSummary {
    pb::ComplaintSummary {
        uscc: uscc.into(),
        month: month.into(),
        complaints: 6,
        reports: 4,
        verified,
        source: "12315".into(),
        recorded_at: None,
    }
}

#[tokio::test]
async fn complaints_found_true_weigh_in_the_social_dimension() {
    let s = TestServer::start().await;
    let mut r = connect(s.addr).await;
    let mut k = ClassificationServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let u = uscc_n(b'1', 21);
    put_enterprise(&mut r, enterprise(&u)).await;
    let run = score_now(&mut k).await;
    assert_eq!(run.model_version, "cr-2026.4");
    let this = Month::of(s.store.today());
    let month = this.to_string();
    let social = |c: &pb::Classification| -> Vec<(String, f64)> {
        c.factors
            .iter()
            .filter(|f| f.dimension == "social")
            .map(|f| (f.record.clone(), f.points))
            .collect()
    };
    let classify = |k: &mut ClassificationServiceClient<tonic::transport::Channel>| {
        let u = u.clone();
        let mut k = k.clone();
        async move {
            k.get_classification(pb::GetClassificationRequest {
                uscc: u,
                run_id: 0,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
        }
    };
    assert!(social(&classify(&mut k).await).is_empty());

    // Bad input, named; nothing written.
    for (x, code, field) in [
        (
            summary(&u, &month, 11),
            Code::InvalidArgument,
            "complaints.verified",
        ),
        (
            summary(&u, "2026-13", 1),
            Code::InvalidArgument,
            "complaints.month",
        ),
        (
            summary(&u, "2999-01", 1),
            Code::InvalidArgument,
            "complaints.month",
        ),
        (
            pb::ComplaintSummary {
                source: String::new(),
                ..summary(&u, &month, 1)
            },
            Code::InvalidArgument,
            "complaints.source",
        ),
        (
            summary(&uscc_n(b'1', 22), &month, 1),
            Code::NotFound,
            "complaints.uscc",
        ),
    ] {
        let e = r
            .record_complaint_summary(pb::RecordComplaintSummaryRequest {
                request_id: String::new(),
                complaints: Some(x),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), code, "{e:?}");
        assert!(e.message().contains(field), "{field}: {e:?}");
    }

    // Two found true this month: 2 points each (fading over a year from the month's
    // first day), re-scored at once.
    let put = |x: pb::ComplaintSummary| {
        let mut r = r.clone();
        async move {
            r.record_complaint_summary(pb::RecordComplaintSummaryRequest {
                request_id: String::new(),
                complaints: Some(x),
            })
            .await
            .unwrap()
            .into_inner()
            .complaints
            .unwrap()
        }
    };
    let stored = put(summary(&u, &month, 2)).await;
    assert_eq!(stored.month, month);
    let c = classify(&mut k).await;
    let f = social(&c);
    assert_eq!(f.len(), 1, "{c:?}");
    assert_eq!(f[0].0, format!("complaints/{month}"));
    assert!(f[0].1 > 3.9 && f[0].1 <= 4.0, "{f:?}");
    assert!(c.factors_reproduce_score);
    assert!(c.rescored_cause.starts_with("RecordComplaintSummary"));

    // Corrected figures replace the month; ten found true are capped at 8 points.
    put(summary(&u, &month, 10)).await;
    let f = social(&classify(&mut k).await);
    assert!(f[0].1 <= 8.0 && f[0].1 > 7.8, "{f:?}");
    put(summary(&u, &month, 0)).await;
    assert!(social(&classify(&mut k).await).is_empty());
    // Audited: each change with what it replaced; the same counts again write nothing.
    put(summary(&u, &month, 0)).await;
    let audited: Vec<_> = crate::common::audit_of(s.addr, &u)
        .await
        .into_iter()
        .filter(|e| e.rpc == "RecordComplaintSummary")
        .collect();
    assert_eq!(audited.len(), 3, "{audited:#?}");
    assert!(audited[0].before.is_empty());
    assert!(audited[1].before.contains("verified 2") && audited[1].after.contains("verified 10"));
    assert!(audited[2].after.contains(&format!("complaints/{month}")));

    // Imported, and listed newest first in the credit report.
    let last_year = Month(if this.0 % 100 == 1 {
        this.0 - 89
    } else {
        this.0 - 1
    })
    .to_string();
    let summary_of = |m: &str, v| pb::ImportRecord {
        record: Some(pb::import_record::Record::Complaints(summary(&u, m, v))),
    };
    let got = r
        .import_records(tokio_stream::iter(vec![pb::ImportRecordsRequest {
            records: vec![summary_of(&last_year, 1), summary_of("2026-00", 1)],
        }]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((got.stored, got.rejected), (1, 1), "{got:?}");
    assert_eq!(got.rejections[0].kind, "complaints");
    let report = r
        .get_credit_report(pb::GetCreditReportRequest {
            uscc: u.clone(),
            as_of: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let months: Vec<_> = report.complaints.iter().map(|x| x.month.as_str()).collect();
    assert_eq!(months, [month.as_str(), last_year.as_str()]);
    let f = social(&classify(&mut k).await);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].0, format!("complaints/{last_year}"));
    s.stop().await;
}

/// Lenient treatment on penalties (行政处罚法 2021 Art. 32–33): recorded and shown; a
/// mitigated penalty weighs the model's share of its points; a decision not to penalise
/// cannot also be lighter or mitigated.
#[tokio::test]
async fn a_mitigated_penalty_weighs_less() {
    use crate::common::fine;
    let s = TestServer::start().await;
    let mut r = connect(s.addr).await;
    let mut k = ClassificationServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let (plain, lenient) = (uscc_n(b'1', 31), uscc_n(b'1', 32));
    put_enterprise(&mut r, enterprise(&plain)).await;
    put_enterprise(&mut r, enterprise(&lenient)).await;
    score_now(&mut k).await;
    let today = s.store.today().to_string();
    let record = |p: pb::Penalty| {
        let mut r = r.clone();
        async move {
            r.record_penalty(pb::RecordPenaltyRequest {
                request_id: String::new(),
                penalty: Some(p),
            })
            .await
        }
    };
    let no_penalty = pb::Penalty {
        kinds: vec![],
        fine_fen: 0,
        no_penalty: true,
        lenience: pb::Lenience::Lighter as i32,
        ..fine(&plain, "沪市监浦处〔2026〕L0号", &today, 0)
    };
    let e = record(no_penalty).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("penalty.lenience"), "{e:?}");
    record(fine(&plain, "沪市监浦处〔2026〕L1号", &today, 20_000))
        .await
        .unwrap();
    let stored = record(pb::Penalty {
        lenience: pb::Lenience::Mitigated as i32,
        first_violation: true,
        ..fine(&lenient, "沪市监浦处〔2026〕L2号", &today, 20_000)
    })
    .await
    .unwrap()
    .into_inner()
    .penalty
    .unwrap();
    assert_eq!(stored.lenience, pb::Lenience::Mitigated as i32);
    assert!(stored.first_violation);
    let points = |u: &str| {
        let mut k = k.clone();
        let u = u.to_string();
        async move {
            k.get_classification(pb::GetClassificationRequest {
                uscc: u,
                run_id: 0,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .factors
            .iter()
            .filter(|f| f.code == "PENALTY_FINE")
            .map(|f| f.points)
            .sum::<f64>()
        }
    };
    let (full, half) = (points(&plain).await, points(&lenient).await);
    assert!(full > 0.0);
    assert!((half - full * 0.5).abs() < 0.011, "{full} vs {half}");
    s.stop().await;
}
