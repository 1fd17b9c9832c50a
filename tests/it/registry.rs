//! RegistryService end to end over real gRPC on a loopback port.

use crate::common::*;
use credit_risk::proto as pb;
use tonic::Code;

#[tokio::test]
async fn enterprise_upsert_get_and_replace() {
    let s = TestServer::start().await;
    let mut c = s.client.clone();
    let u = uscc_n(b'1', 1);
    let r = c
        .upsert_enterprise(pb::UpsertEnterpriseRequest {
            request_id: String::new(),
            enterprise: Some(enterprise(&u)),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.created);
    let stored = r.enterprise.unwrap();
    assert!(stored.recorded_at.is_some());
    let got = c
        .get_enterprise(pb::GetEnterpriseRequest {
            uscc: u.to_lowercase(),
        })
        .await
        .unwrap()
        .into_inner()
        .enterprise
        .unwrap();
    assert_eq!(got, stored, "lower-case USCC is normalised");

    let mut moved = enterprise(&u);
    moved.region_code = "310104".into();
    moved.status = pb::EnterpriseStatus::Suspended as i32;
    let r = c
        .upsert_enterprise(pb::UpsertEnterpriseRequest {
            request_id: String::new(),
            enterprise: Some(moved),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!r.created);
    assert_eq!(r.enterprise.unwrap().region_code, "310104");
    assert_eq!(
        s.store.check_indexes().unwrap(),
        1,
        "directory index follows the move"
    );
    s.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_nothing_is_stored() {
    let s = TestServer::start().await;
    let mut c = s.client.clone();
    let u = uscc_n(b'1', 2);
    type Mutation = Box<dyn Fn(&mut pb::Enterprise)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "enterprise.uscc",
            Box::new(|e| e.uscc = "91310115MA1K3BTP2C".into()),
        ),
        (
            "enterprise.established_on",
            Box::new(|e| e.established_on = "2024-13-01".into()),
        ),
        (
            "enterprise.registered_capital_fen",
            Box::new(|e| e.registered_capital_fen = -1),
        ),
        ("enterprise.status", Box::new(|e| e.status = 99)),
        ("enterprise.entity_type", Box::new(|e| e.entity_type = 0)),
        (
            "enterprise.region_code",
            Box::new(|e| e.region_code = "31011".into()),
        ),
        (
            "enterprise.industry_code",
            Box::new(|e| e.industry_code = "0111".into()),
        ),
        ("enterprise.name", Box::new(|e| e.name = " ".into())),
        (
            "enterprise.established_on",
            Box::new(|e| e.established_on = "2999-01-01".into()),
        ),
        (
            "enterprise.legal_rep_id_hash",
            Box::new(|e| e.legal_rep_id_hash = "110101199001011234".into()),
        ),
    ];
    for (field, mutate) in cases {
        let mut e = enterprise(&u);
        mutate(&mut e);
        let err = c
            .upsert_enterprise(pb::UpsertEnterpriseRequest {
                request_id: String::new(),
                enterprise: Some(e),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(
            err.message().contains(field),
            "{field} not named in {:?}",
            err.message()
        );
    }
    let err = c
        .upsert_enterprise(pb::UpsertEnterpriseRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("enterprise"));
    let err = c
        .get_enterprise(pb::GetEnterpriseRequest { uscc: u.clone() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "nothing was stored");
    let err = c
        .get_enterprise(pb::GetEnterpriseRequest {
            uscc: "not-a-code".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("uscc"));
    s.stop().await;
}

#[tokio::test]
async fn penalties_publicity_uniqueness_and_errors() {
    let s = TestServer::start().await;
    let mut c = s.client.clone();
    let u = uscc_n(b'1', 3);
    // Missing enterprise.
    let err = c
        .record_penalty(pb::RecordPenaltyRequest {
            request_id: String::new(),
            penalty: Some(fine(&u, "沪市监浦处〔2025〕1号", "2025-03-01", 1000)),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    put_enterprise(&mut c, enterprise(&u)).await;

    let small = fine(&u, "沪市监浦处〔2025〕1号", "2025-03-01", 1000);
    let p = c
        .record_penalty(pb::RecordPenaltyRequest {
            request_id: String::new(),
            penalty: Some(small.clone()),
        })
        .await
        .unwrap()
        .into_inner()
        .penalty
        .unwrap();
    let publicity = p.publicity.unwrap();
    assert!(publicity.published);
    assert_eq!(
        publicity.ends_on, "2025-06-01",
        "3 months for a lower-amount fine, ending on the corresponding day (Civil Code Art. 201-202)"
    );
    assert_eq!(publicity.rules_version, "shanghai-2022-07-01");
    assert!(p.published_on.is_empty());
    assert!(
        publicity.starts_on_estimated && publicity.starts_on == "2025-03-01",
        "no publication date: counted from the decision, flagged"
    );
    // With a publication date (issue 14, defect 2) the window counts from it.
    let u2 = uscc_n(b'1', 33);
    put_enterprise(&mut c, enterprise(&u2)).await;
    let mut published = fine(&u2, "沪市监浦处〔2025〕9号", "2025-03-01", 1000);
    published.published_on = "2025-03-20".into();
    let p = c
        .record_penalty(pb::RecordPenaltyRequest {
            request_id: String::new(),
            penalty: Some(published.clone()),
        })
        .await
        .unwrap()
        .into_inner()
        .penalty
        .unwrap();
    let w = p.publicity.unwrap();
    assert_eq!(p.published_on, "2025-03-20");
    assert_eq!(
        (w.starts_on.as_str(), w.ends_on.as_str()),
        ("2025-03-20", "2025-06-20")
    );
    assert!(!w.starts_on_estimated);
    for (on, why) in [
        ("2025-02-28", "before decided_on"),
        ("2999-01-01", "after today"),
    ] {
        published.decision_number = "沪市监浦处〔2025〕10号".into();
        published.published_on = on.into();
        let err = c
            .record_penalty(pb::RecordPenaltyRequest {
                request_id: String::new(),
                penalty: Some(published.clone()),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{why}");
        assert!(
            err.message().starts_with("penalty.published_on"),
            "{why}: {}",
            err.message()
        );
    }
    // The same record again changes nothing; a different one under the number is refused.
    c.record_penalty(pb::RecordPenaltyRequest {
        request_id: String::new(),
        penalty: Some(small.clone()),
    })
    .await
    .unwrap();
    let mut other = small.clone();
    other.fine_fen += 100;
    let err = c
        .record_penalty(pb::RecordPenaltyRequest {
            request_id: String::new(),
            penalty: Some(other),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains("decision_number"));

    let big = fine(&u, "沪市监浦处〔2025〕2号", "2025-04-01", 80_000);
    c.record_penalty(pb::RecordPenaltyRequest {
        request_id: String::new(),
        penalty: Some(big),
    })
    .await
    .unwrap();
    let mut warning = fine(&u, "沪市监浦处〔2025〕3号", "2025-05-01", 0);
    warning.kinds = vec![pb::PenaltyKind::Warning as i32];
    c.record_penalty(pb::RecordPenaltyRequest {
        request_id: String::new(),
        penalty: Some(warning),
    })
    .await
    .unwrap();

    // Bad penalties.
    let mut neg = fine(&u, "x1", "2025-03-01", 10);
    neg.fine_fen = -5;
    let mut unknown = fine(&u, "x2", "2025-03-01", 10);
    unknown.domain = 77;
    let mut no_end = fine(&u, "x3", "2025-03-01", 10);
    no_end.kinds.push(pb::PenaltyKind::PracticeBan as i32);
    let mut bad_date = fine(&u, "x4", "2025-02-30", 10);
    bad_date.authority = "a".into();
    for (p, field) in [
        (neg, "penalty.fine_fen"),
        (unknown, "penalty.domain"),
        (no_end, "penalty.restriction_ends_on"),
        (bad_date, "penalty.decided_on"),
    ] {
        let err = c
            .record_penalty(pb::RecordPenaltyRequest {
                request_id: String::new(),
                penalty: Some(p),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }

    let all = c
        .list_penalties(pb::ListPenaltiesRequest {
            uscc: u.clone(),
            as_of: "2025-07-01".into(),
            in_publicity_only: false,
        })
        .await
        .unwrap()
        .into_inner()
        .penalties;
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].decided_on, "2025-05-01", "newest first");
    let live = c
        .list_penalties(pb::ListPenaltiesRequest {
            uscc: u.clone(),
            as_of: "2025-07-01".into(),
            in_publicity_only: true,
        })
        .await
        .unwrap()
        .into_inner()
        .penalties;
    let numbers: Vec<_> = live.iter().map(|p| p.decision_number.as_str()).collect();
    assert_eq!(
        numbers,
        vec!["沪市监浦处〔2025〕2号"],
        "small fine expired, warning unpublished"
    );
    s.stop().await;
}

#[tokio::test]
async fn reports_listings_inspections_and_credit_report() {
    let s = TestServer::start().await;
    let mut c = s.client.clone();
    let u = uscc_n(b'1', 4);
    let ib = uscc_n(b'2', 5);
    put_enterprise(&mut c, enterprise(&u)).await;
    put_enterprise(&mut c, enterprise(&ib)).await;
    let file = |year: i32, filed_on: &str| pb::FileAnnualReportRequest {
        request_id: String::new(),
        report: Some(pb::AnnualReport {
            uscc: u.clone(),
            year,
            filed_on: filed_on.into(),
            ..Default::default()
        }),
    };
    let r = c
        .file_annual_report(file(2022, "2023-06-30"))
        .await
        .unwrap()
        .into_inner();
    assert!(r.report.unwrap().on_time);
    let r = c
        .file_annual_report(file(2023, "2024-07-01"))
        .await
        .unwrap()
        .into_inner();
    let r = r.report.unwrap();
    assert!(!r.on_time);
    assert_eq!(r.deadline, "2024-06-30");
    let err = c
        .file_annual_report(file(2023, "2023-12-01"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("report.filed_on"));
    let err = c
        .file_annual_report(file(2015, "2016-03-01"))
        .await
        .unwrap_err();
    assert!(
        err.message().contains("report.year"),
        "before establishment"
    );

    let listing = |uscc: &str, kind: pb::ListKind| pb::AddListingRequest {
        request_id: String::new(),
        listing: Some(pb::Listing {
            uscc: uscc.into(),
            kind: kind as i32,
            reason: pb::ListingReason::UnreachableAtAddress as i32,
            listed_on: "2024-09-01".into(),
            authority: "浦东".into(),
            ..Default::default()
        }),
    };
    let l = c
        .add_listing(listing(&u, pb::ListKind::AbnormalOperations))
        .await
        .unwrap()
        .into_inner()
        .listing
        .unwrap();
    assert!(l.open);
    assert_eq!(
        l.listing_id,
        "ABNORMAL_OPERATIONS/2024-09-01/UNREACHABLE_AT_ADDRESS"
    );
    let err = c
        .add_listing(listing(&ib, pb::ListKind::AbnormalOperations))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("listing.kind"));
    c.add_listing(listing(&ib, pb::ListKind::AbnormalStatusMark))
        .await
        .unwrap();

    let insp = |problems: bool| pb::RecordInspectionResultRequest {
        request_id: String::new(),
        result: Some(pb::InspectionResult {
            task_id: "SC-2025-0001".into(),
            uscc: u.clone(),
            inspected_on: "2025-03-03".into(),
            check_items: vec!["公示信息".into()],
            problems_found: problems,
            recorded_at: None,
            problem_items: vec![],
        }),
    };
    c.record_inspection_result(insp(true)).await.unwrap();
    c.record_inspection_result(insp(true)).await.unwrap();
    let err = c.record_inspection_result(insp(false)).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);

    c.record_penalty(pb::RecordPenaltyRequest {
        request_id: String::new(),
        penalty: Some(fine(&u, "沪市监浦处〔2025〕9号", "2025-04-01", 80_000)),
    })
    .await
    .unwrap();
    let rep = c
        .get_credit_report(pb::GetCreditReportRequest {
            uscc: u.clone(),
            as_of: "2025-08-01".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rep.enterprise.unwrap().uscc, u);
    assert_eq!(rep.penalties_in_publicity.len(), 1);
    assert_eq!(rep.open_listings.len(), 1);
    assert_eq!(rep.inspections.len(), 1);
    let years: Vec<_> = rep
        .annual_reports
        .iter()
        .map(|y| (y.year, y.compliance.as_str()))
        .collect();
    assert_eq!(
        years,
        vec![
            (2018, "NOT_FILED"),
            (2019, "NOT_FILED"),
            (2020, "NOT_FILED"),
            (2021, "NOT_FILED"),
            (2022, "ON_TIME"),
            (2023, "LATE"),
            (2024, "NOT_FILED")
        ]
    );
    // As of an earlier date, later records are not yet known.
    let past = c
        .get_credit_report(pb::GetCreditReportRequest {
            uscc: u.clone(),
            as_of: "2024-08-01".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(past.penalties.is_empty() && past.open_listings.is_empty());
    let err = c
        .get_credit_report(pb::GetCreditReportRequest {
            uscc: uscc_n(b'1', 999),
            as_of: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    s.stop().await;
}

#[tokio::test]
async fn request_ids_make_retries_apply_once() {
    let s = TestServer::start().await;
    let mut c = s.client.clone();
    let u = uscc_n(b'1', 6);
    put_enterprise(&mut c, enterprise(&u)).await;
    let req = pb::RecordPenaltyRequest {
        request_id: "feed-42".into(),
        penalty: Some(fine(&u, "沪市监浦处〔2025〕7号", "2025-03-01", 1000)),
    };
    let first = c.record_penalty(req.clone()).await.unwrap().into_inner();
    let again = c.record_penalty(req.clone()).await.unwrap().into_inner();
    assert_eq!(first, again, "the retry returns the first result");
    let mut different = req.clone();
    different.penalty = Some(fine(&u, "沪市监浦处〔2025〕8号", "2025-03-01", 1000));
    let err = c.record_penalty(different).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("request_id"));
    let n = c
        .list_penalties(pb::ListPenaltiesRequest {
            uscc: u.clone(),
            as_of: String::new(),
            in_publicity_only: false,
        })
        .await
        .unwrap()
        .into_inner()
        .penalties
        .len();
    assert_eq!(n, 1);
    // Upsert retried after a change in between still answers with the first result.
    let up = pb::UpsertEnterpriseRequest {
        request_id: "reg-1".into(),
        enterprise: Some(enterprise(&uscc_n(b'1', 7))),
    };
    let a = c.upsert_enterprise(up.clone()).await.unwrap().into_inner();
    let b = c.upsert_enterprise(up).await.unwrap().into_inner();
    assert!(a.created && b.created);
    assert_eq!(a, b);
    s.stop().await;
}

pub(crate) fn rec(r: pb::import_record::Record) -> pb::ImportRecord {
    pb::ImportRecord { record: Some(r) }
}

/// An enterprise, a penalty (decision number `decision`) and a 2023 annual report.
/// `records` as the messages of an import stream, `per` records each.
pub(crate) fn in_messages(
    records: &[pb::ImportRecord],
    per: usize,
) -> Vec<pb::ImportRecordsRequest> {
    records
        .chunks(per)
        .map(|c| pb::ImportRecordsRequest {
            records: c.to_vec(),
        })
        .collect()
}

pub(crate) fn enterprise_with_records(u: &str, decision: &str) -> [pb::ImportRecord; 3] {
    use pb::import_record::Record as R;
    [
        rec(R::Enterprise(enterprise(u))),
        rec(R::Penalty(fine(u, decision, "2025-01-02", 500))),
        rec(R::AnnualReport(pb::AnnualReport {
            uscc: u.into(),
            year: 2023,
            filed_on: "2024-05-05".into(),
            ..Default::default()
        })),
    ]
}

#[tokio::test]
async fn import_stores_the_good_and_reports_the_bad() {
    use pb::import_record::Record as R;
    let s = TestServer::start().await;
    let mut c = s.client.clone();
    let mut records = Vec::new();
    let mut bad = Vec::new();
    for i in 0..300u32 {
        let u = uscc_n(b'1', 1000 + i);
        if i % 50 == 7 {
            let mut e = enterprise(&u);
            e.registered_capital_fen = -1;
            bad.push(records.len() as u64);
            records.push(rec(R::Enterprise(e)));
            // Its penalty then refers to a missing enterprise.
            bad.push(records.len() as u64);
            records.push(rec(R::Penalty(fine(
                &u,
                &format!("imp-{i}"),
                "2025-01-02",
                500,
            ))));
            continue;
        }
        records.extend(enterprise_with_records(&u, &format!("imp-{i}")));
    }
    // A duplicate decision number with other content, and an empty record.
    let dup = fine(&uscc_n(b'1', 1000), "imp-0", "2025-01-03", 900);
    bad.push(records.len() as u64);
    records.push(rec(R::Penalty(dup)));
    bad.push(records.len() as u64);
    records.push(pb::ImportRecord { record: None });
    let total = records.len() as u64;
    let summary = c
        .import_records(tokio_stream::iter(in_messages(&records, 64)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.received, total);
    assert_eq!(summary.rejected, bad.len() as u64);
    assert_eq!(summary.stored + summary.rejected, total);
    let idx: Vec<u64> = summary.rejections.iter().map(|r| r.index).collect();
    assert_eq!(idx, bad);
    let codes: Vec<&str> = summary.rejections.iter().map(|r| r.code.as_str()).collect();
    assert!(codes.contains(&"NOT_FOUND") && codes.contains(&"ALREADY_EXISTS"));
    assert!(summary.rejections[0]
        .reason
        .contains("enterprise.registered_capital_fen"));
    assert_eq!(summary.rejections[0].key, uscc_n(b'1', 1007));
    assert_eq!(s.store.check_indexes().unwrap(), 294);

    // Importing the same stream again stores nothing new.
    let again = c
        .import_records(tokio_stream::iter(in_messages(&records, 100)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.stored, 0);
    assert_eq!(again.unchanged, total - bad.len() as u64);
    s.stop().await;
}

/// Files left in the store's staging directory (none once an import has ended).
fn staged_files(dir: &std::path::Path) -> usize {
    walk(&dir.join("staging"))
}

fn walk(d: &std::path::Path) -> usize {
    std::fs::read_dir(d).map_or(0, |it| {
        it.flatten()
            .map(|e| {
                if e.path().is_dir() {
                    walk(&e.path())
                } else {
                    1
                }
            })
            .sum()
    })
}

#[tokio::test]
async fn an_import_larger_than_its_runs_is_applied_in_key_order() {
    use pb::import_record::Record as R;
    // Runs of 7 records: the 184 records below go through 26 sorted runs on disk.
    let s = TestServer::start_fresh_with(|o| o.import_run_records = 7, |_| {}).await;
    let mut c = s.client.clone();
    let mut records = Vec::new();
    // Enterprises in descending key order, each with a report and a penalty.
    for i in (0..60u32).rev() {
        let u = uscc_n(b'1', 2000 + i);
        records.extend(enterprise_with_records(&u, &format!("ord-{i}")));
    }
    // One enterprise's penalty sent before the enterprise itself: its records apply
    // in the order they were sent, so the penalty finds no enterprise.
    let late = uscc_n(b'1', 2100);
    let early_penalty = records.len() as u64;
    records.push(rec(R::Penalty(fine(&late, "ord-late", "2025-01-02", 500))));
    records.push(rec(R::Enterprise(enterprise(&late))));
    // Two enterprises claim one decision number: the stream sends the higher USCC's
    // first, and the lower USCC's — applied first in key order — is the one stored.
    let (low, high) = (uscc_n(b'1', 2000), uscc_n(b'1', 2059));
    let high_claim = records.len() as u64;
    records.push(rec(R::Penalty(fine(
        &high,
        "ord-shared",
        "2025-02-01",
        800,
    ))));
    records.push(rec(R::Penalty(fine(&low, "ord-shared", "2025-02-01", 800))));
    let total = records.len() as u64;
    let summary = c
        .import_records(tokio_stream::iter(in_messages(&records, 9)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.received, total);
    let refused: Vec<(u64, &str)> = summary
        .rejections
        .iter()
        .map(|r| (r.index, r.code.as_str()))
        .collect();
    assert_eq!(
        refused,
        vec![(early_penalty, "NOT_FOUND"), (high_claim, "ALREADY_EXISTS")]
    );
    assert_eq!(summary.stored, total - 2);
    assert_eq!(s.store.check_indexes().unwrap(), 61);
    // The lower USCC holds the shared decision number: sending its penalty again
    // changes nothing.
    let again = c
        .import_records(tokio_stream::iter(vec![pb::ImportRecordsRequest {
            records: vec![rec(R::Penalty(fine(&low, "ord-shared", "2025-02-01", 800)))],
        }]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.unchanged, again.rejected), (1, 0));
    for i in [0u32, 30, 59] {
        c.get_enterprise(pb::GetEnterpriseRequest {
            uscc: uscc_n(b'1', 2000 + i),
        })
        .await
        .unwrap();
    }
    assert_eq!(staged_files(&s.dir), 0, "the runs are removed");
    s.stop().await;
}

/// Imports at once share the memory for staged records (`2 × import_run_records`):
/// one that finds it taken spills what it holds and waits; all finish, each stores
/// every record, and every permit is back afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_imports_share_the_staging_memory() {
    use pb::import_record::Record as R;
    let s = TestServer::start_fresh_with(|o| o.import_run_records = 6, |_| {}).await;
    let budget = s.store.import_budget();
    assert_eq!(budget.available_permits(), 12);
    let imports = (0..4u32).map(|k| {
        let mut c = s.client.clone();
        async move {
            let records: Vec<pb::ImportRecord> = (0..50u32)
                .rev()
                .map(|i| rec(R::Enterprise(enterprise(&uscc_n(b'1', 5000 + 100 * k + i)))))
                .collect();
            c.import_records(tokio_stream::iter(in_messages(&records, 4)))
                .await
                .unwrap()
                .into_inner()
        }
    });
    let summaries = futures::future::join_all(imports).await;
    for sum in &summaries {
        assert_eq!((sum.received, sum.stored, sum.rejected), (50, 50, 0));
    }
    assert_eq!(s.store.check_indexes().unwrap(), 200);
    assert_eq!(budget.available_permits(), 12, "every permit is back");
    assert_eq!(staged_files(&s.dir), 0);
    s.stop().await;
}

/// An import chunk skips reading dossiers only where none exists: an enterprise
/// registered before, between the new ones of the same chunk, keeps its dossier and
/// gets the chunk's record for it.
#[tokio::test]
async fn an_import_among_existing_enterprises_reads_their_dossiers() {
    use pb::import_record::Record as R;
    let s = TestServer::start().await;
    let mut c = s.client.clone();
    let (low, mid, high) = (uscc_n(b'1', 100), uscc_n(b'1', 200), uscc_n(b'1', 300));
    let mut before = enterprise(&mid);
    before.name = "早已登记的企业".into();
    c.upsert_enterprise(pb::UpsertEnterpriseRequest {
        request_id: String::new(),
        enterprise: Some(before.clone()),
    })
    .await
    .unwrap();
    let mut records: Vec<pb::ImportRecord> = Vec::new();
    records.extend(enterprise_with_records(&low, "among-low"));
    records.push(rec(R::Penalty(fine(&mid, "among-mid", "2025-03-01", 700))));
    records.extend(enterprise_with_records(&high, "among-high"));
    let summary = c
        .import_records(tokio_stream::iter([pb::ImportRecordsRequest {
            records: records.clone(),
        }]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((summary.stored, summary.rejected), (7, 0), "{summary:?}");
    let got = c
        .get_enterprise(pb::GetEnterpriseRequest { uscc: mid.clone() })
        .await
        .unwrap()
        .into_inner();
    let e = got.enterprise.expect("mid is still registered");
    assert_eq!(e.name, before.name, "its dossier was read, not replaced");
    let fines = c
        .list_penalties(pb::ListPenaltiesRequest {
            uscc: mid.clone(),
            as_of: "2025-07-01".into(),
            in_publicity_only: false,
        })
        .await
        .unwrap()
        .into_inner()
        .penalties;
    assert_eq!(fines.len(), 1, "and it got the import's penalty");
    // Again: the same dossiers now all exist, and are read.
    let again = c
        .import_records(tokio_stream::iter([pb::ImportRecordsRequest { records }]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.stored, again.unchanged), (0, 7), "{again:?}");
}

#[tokio::test]
async fn an_import_stream_that_breaks_stores_nothing() {
    use pb::import_record::Record as R;
    // A stream silent for a second is ended by the server.
    let s = TestServer::start_fresh_with(|o| o.import_run_records = 5, |c| c.stream_idle_secs = 1)
        .await;
    let mut c = s.client.clone();
    let u = uscc_n(b'1', 3000);
    let first = pb::ImportRecordsRequest {
        records: (0..20u32)
            .map(|i| rec(R::Enterprise(enterprise(&uscc_n(b'1', 3000 + i)))))
            .collect(),
    };
    // The first message, then silence.
    let stream =
        futures::StreamExt::chain(tokio_stream::iter(vec![first]), futures::stream::pending());
    let err = c.import_records(stream).await.unwrap_err();
    assert_ne!(err.code(), Code::Ok);
    let missing = c
        .get_enterprise(pb::GetEnterpriseRequest { uscc: u })
        .await
        .unwrap_err();
    assert_eq!(
        missing.code(),
        Code::NotFound,
        "nothing of the broken stream is stored"
    );
    assert_eq!(s.store.check_indexes().unwrap(), 0);
    assert_eq!(staged_files(&s.dir), 0, "its runs are removed");
    s.stop().await;
}

#[tokio::test]
async fn sweep_lists_non_filers_once_and_escalates_after_three_years() {
    let s = TestServer::start().await;
    let mut c = s.client.clone();
    let filer = uscc_n(b'1', 11);
    let non_filer = uscc_n(b'1', 12);
    let individual = uscc_n(b'2', 13);
    let mut deregistered = enterprise(&uscc_n(b'1', 14));
    deregistered.status = pb::EnterpriseStatus::Deregistered as i32;
    for u in [&filer, &non_filer, &individual] {
        put_enterprise(&mut c, enterprise(u)).await;
    }
    put_enterprise(&mut c, deregistered).await;
    c.file_annual_report(pb::FileAnnualReportRequest {
        request_id: String::new(),
        report: Some(pb::AnnualReport {
            uscc: filer.clone(),
            year: 2021,
            filed_on: "2022-04-01".into(),
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    let sweep = |year: i32, as_of: &str, id: &str| pb::SweepAnnualReportsRequest {
        request_id: id.into(),
        year,
        as_of: as_of.into(),
    };
    let err = c
        .sweep_annual_reports(sweep(2021, "2022-06-30", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("as_of"));
    let r = c
        .sweep_annual_reports(sweep(2021, "2022-07-15", "sweep-2021"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.examined, 3, "the deregistered entity is not examined");
    assert_eq!((r.listed_abnormal, r.marked_abnormal_status), (1, 1));
    let again = c
        .sweep_annual_reports(sweep(2021, "2022-07-15", "sweep-2021"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, r, "same request id, same answer");
    let rerun = c
        .sweep_annual_reports(sweep(2021, "2022-07-20", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((rerun.listed_abnormal, rerun.already_listed), (0, 2));
    let later = c
        .sweep_annual_reports(sweep(2024, "2025-07-16", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        later.moved_serious, 1,
        "three full years on the abnormal list"
    );
    let rep = c
        .get_credit_report(pb::GetCreditReportRequest {
            uscc: non_filer.clone(),
            as_of: "2025-08-01".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let kinds: Vec<i32> = rep.open_listings.iter().map(|l| l.kind).collect();
    assert!(kinds.contains(&(pb::ListKind::SeriousIllegal as i32)));
    let rep = c
        .get_credit_report(pb::GetCreditReportRequest {
            uscc: individual.clone(),
            as_of: "2025-08-01".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(rep
        .open_listings
        .iter()
        .all(|l| l.kind == pb::ListKind::AbnormalStatusMark as i32));
    s.stop().await;
}

#[tokio::test]
async fn records_survive_a_restart() {
    let s = TestServer::start().await;
    let mut c = s.client.clone();
    let u = uscc_n(b'1', 21);
    put_enterprise(&mut c, enterprise(&u)).await;
    c.record_penalty(pb::RecordPenaltyRequest {
        request_id: String::new(),
        penalty: Some(fine(&u, "restart-1", "2025-03-01", 1000)),
    })
    .await
    .unwrap();
    let dir = s.dir.clone();
    let tmp = s.stop().await;
    let s = TestServer::start_at(&dir).await;
    let mut c = s.client.clone();
    let e = c
        .get_enterprise(pb::GetEnterpriseRequest { uscc: u.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(e.enterprise.unwrap().uscc, u);
    let p = c
        .list_penalties(pb::ListPenaltiesRequest {
            uscc: u,
            as_of: String::new(),
            in_publicity_only: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.penalties.len(), 1);
    s.stop().await;
    drop(tmp);
}

#[tokio::test]
async fn health_is_served() {
    let s = TestServer::start().await;
    let ch = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
    let r = h
        .check(tonic_health::pb::HealthCheckRequest {
            service: "creditrisk.v1.RegistryService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    s.stop().await;
}
