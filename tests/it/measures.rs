//! MeasuresService over gRPC: which measures bind an enterprise and its legal
//! representative, the 3-year bar (企业信息公示暂行条例 Art. 17), the warning on
//! registration, the credit report, and a bad catalogue refused at start.

use std::process::Command;

use crate::common::{enterprise, put_enterprise, score_now, uscc_n, TestServer};
use credit_risk::{
    domain::Date,
    proto::{
        self as pb, classification_service_client::ClassificationServiceClient,
        measures_service_client::MeasuresServiceClient,
    },
};
use tonic::Code;

const TODAY: &str = "2026-06-01";
const LISTED: &str = "2025-03-15";

fn day(s: &str) -> Date {
    Date::parse("day", s).unwrap()
}

fn rep(n: u8) -> String {
    hex::encode([n; 32])
}

fn headed_by(uscc: &str, person: &str) -> pb::Enterprise {
    pb::Enterprise {
        legal_rep_id_hash: person.into(),
        ..enterprise(uscc)
    }
}

fn codes(ms: &[pb::AppliedMeasure]) -> Vec<String> {
    ms.iter()
        .map(|m| m.measure.as_ref().unwrap().code.clone())
        .collect()
}

fn check(person: &str, as_of: &str) -> pb::CheckLegalRepresentativeRequest {
    pb::CheckLegalRepresentativeRequest {
        legal_rep_id_hash: person.into(),
        as_of: as_of.into(),
    }
}

/// GetMeasures of `uscc` on `as_of` (empty: today) in `view`, answered.
async fn measures(
    m: &mut MeasuresServiceClient<tonic::transport::Channel>,
    uscc: &str,
    as_of: &str,
    view: pb::MeasureView,
) -> Result<pb::GetMeasuresResponse, tonic::Status> {
    m.get_measures(pb::GetMeasuresRequest {
        uscc: uscc.into(),
        as_of: as_of.into(),
        view: view as i32,
    })
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_serious_listing_binds_the_firm_and_bars_its_legal_representative() {
    let s = TestServer::start_on(day(TODAY)).await;
    let mut reg = s.client.clone();
    let mut m = MeasuresServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let (listed, other) = (uscc_n(b'1', 1), uscc_n(b'1', 2));
    put_enterprise(&mut reg, headed_by(&listed, &rep(7))).await;
    reg.add_listing(pb::AddListingRequest {
        request_id: String::new(),
        listing: Some(pb::Listing {
            uscc: listed.clone(),
            kind: pb::ListKind::SeriousIllegal as i32,
            reason: pb::ListingReason::SeriousViolation as i32,
            listed_on: LISTED.into(),
            authority: "上海市市场监督管理局".into(),
            ..Default::default()
        }),
    })
    .await
    .unwrap();

    // The person is barred for 3 years from the listing: to 15 March 2028.
    let c = m
        .check_legal_representative(check(&rep(7), ""))
        .await
        .unwrap()
        .into_inner();
    assert!(c.barred);
    assert_eq!(c.enterprises, vec![listed.clone()]);
    assert_eq!(c.bars.len(), 1);
    assert_eq!(c.bars[0].uscc, listed);
    let bar = c.bars[0].measure.as_ref().unwrap();
    assert_eq!(bar.measure.as_ref().unwrap().code, "P-SI-05");
    assert_eq!(
        (bar.since.as_str(), bar.until.as_str()),
        (LISTED, "2028-03-15")
    );
    assert_eq!(bar.legal_rep_id_hash, rep(7), "whom it binds");
    assert!(
        bar.record_id
            .starts_with("listing/SERIOUS_ILLEGAL/2025-03-15/"),
        "{bar:?}"
    );
    let before = m
        .check_legal_representative(check(&rep(7), "2025-03-14"))
        .await
        .unwrap()
        .into_inner();
    assert!(!before.barred && before.bars.is_empty());
    let stranger = m
        .check_legal_representative(check(&rep(8), ""))
        .await
        .unwrap()
        .into_inner();
    assert!(!stranger.barred && stranger.enterprises.is_empty());

    // Naming the person for another enterprise is stored, with a warning that says why.
    let w = reg
        .upsert_enterprise(pb::UpsertEnterpriseRequest {
            request_id: String::new(),
            enterprise: Some(headed_by(&other, &rep(7))),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(w.created);
    assert_eq!(w.warnings.len(), 1, "{:?}", w.warnings);
    for part in [
        "legal_rep_id_hash",
        "2028-03-15",
        "P-SI-05",
        listed.as_str(),
    ] {
        assert!(w.warnings[0].contains(part), "{part}: {}", w.warnings[0]);
    }
    // The listed firm's own record is not about heading another firm.
    let own = reg
        .upsert_enterprise(pb::UpsertEnterpriseRequest {
            request_id: String::new(),
            enterprise: Some(headed_by(&listed, &rep(7))),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(own.warnings.is_empty(), "{:?}", own.warnings);
    let both = m
        .check_legal_representative(check(&rep(7), ""))
        .await
        .unwrap()
        .into_inner();
    let mut want = vec![listed.clone(), other.clone()];
    want.sort();
    assert_eq!(both.enterprises, want);

    // The firm's own measures: the serious-list ones, no class yet.
    let g = measures(&mut m, &listed, "", pb::MeasureView::Full)
        .await
        .unwrap();
    assert_eq!(g.as_of, TODAY);
    assert!(g.risk_class.is_empty() && g.run_id == 0);
    assert_eq!(
        codes(&g.measures),
        ["P-SI-01", "P-SI-02", "P-SI-03", "P-SI-04", "P-SI-06"]
    );
    assert_eq!(codes(&g.legal_representative_measures), ["P-SI-05"]);
    assert!(!g.catalogue_version.is_empty());
    // View CODES: the same measures, each its code, kind and subject only.
    let short = measures(&mut m, &listed, "", pb::MeasureView::Codes)
        .await
        .unwrap();
    assert_eq!(codes(&short.measures), codes(&g.measures));
    let first = short.measures[0].measure.as_ref().unwrap();
    assert!(first.name.is_empty() && first.legal_basis.is_empty());
    assert_eq!(first.kind, pb::MeasureKind::Punishment as i32);
    assert_eq!(short.measures[0].since, g.measures[0].since);
    let bad_view = m
        .get_measures(pb::GetMeasuresRequest {
            uscc: listed.clone(),
            view: 9,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        bad_view.message().starts_with("view"),
        "{}",
        bad_view.message()
    );
    let clean = measures(&mut m, &other, "", pb::MeasureView::Full)
        .await
        .unwrap();
    assert!(clean.measures.is_empty() && clean.legal_representative_measures.is_empty());

    // After a scoring run the class-triggered measures follow the class.
    let mut k = ClassificationServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let run = score_now(&mut k).await;
    let g = measures(&mut m, &listed, "", pb::MeasureView::Full)
        .await
        .unwrap();
    assert_eq!(g.risk_class, "D");
    assert_eq!(g.run_id, run.run_id);
    let d = g
        .measures
        .iter()
        .find(|a| a.measure.as_ref().unwrap().code == "P-D-01")
        .expect("the D-class measure");
    assert_eq!(d.because, format!("class D in scoring run {}", run.run_id));
    // Before the run's as-of date its class is not in force.
    let early = measures(&mut m, &listed, "2026-01-01", pb::MeasureView::Full)
        .await
        .unwrap();
    assert!(early.risk_class.is_empty());

    // The credit report lists the same measures.
    let report = reg
        .get_credit_report(pb::GetCreditReportRequest {
            uscc: listed.clone(),
            as_of: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.measures, g.measures);
    assert_eq!(
        report.legal_representative_measures,
        g.legal_representative_measures
    );

    // A new legal representative heads the listed firm now, but the bar stays with the
    // person named when it was listed (Art. 17); the successor is not barred.
    put_enterprise(&mut reg, headed_by(&listed, &rep(9))).await;
    let after = m
        .check_legal_representative(check(&rep(7), ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.enterprises, vec![other.clone()]);
    assert!(after.barred, "the bar follows the person named when listed");
    assert_eq!(after.bars[0].uscc, listed);
    let successor = m
        .check_legal_representative(check(&rep(9), ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(successor.enterprises, vec![listed.clone()]);
    assert!(!successor.barred, "{successor:?}");
    // The firm's own answer still shows the bar, naming the former representative.
    let own = measures(&mut m, &listed, "", pb::MeasureView::Full)
        .await
        .unwrap();
    assert_eq!(
        own.legal_representative_measures[0].legal_rep_id_hash,
        rep(7)
    );
    s.store
        .check_indexes()
        .expect("indexes agree with the records");

    // The catalogue, and one kind of it.
    let all = m
        .list_measures(pb::ListMeasuresRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(all.measures.len() >= 10);
    assert!(all.measures.iter().all(|x| !x.legal_basis.is_empty()));
    let incentives = m
        .list_measures(pb::ListMeasuresRequest {
            kind: pb::MeasureKind::Incentive as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(incentives.measures.len(), 3);

    // Bad input names the field.
    let field_of = |e: tonic::Status| (e.code(), e.message().to_string());
    for (req, field) in [
        (check("", ""), "legal_rep_id_hash"),
        (check("abc", ""), "legal_rep_id_hash"),
        (check(&rep(7), "2026-06-02"), "as_of"),
    ] {
        let (code, msg) = field_of(m.check_legal_representative(req).await.unwrap_err());
        assert_eq!(code, Code::InvalidArgument, "{msg}");
        assert!(msg.starts_with(field), "{msg}");
    }
    let (code, msg) = field_of(
        m.list_measures(pb::ListMeasuresRequest { kind: 9 })
            .await
            .unwrap_err(),
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.starts_with("kind"), "{msg}");
    let (code, _) = field_of(
        measures(&mut m, &uscc_n(b'1', 3), "", pb::MeasureView::Full)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, Code::NotFound);
    let (code, msg) = field_of(
        measures(&mut m, "91310000X", "", pb::MeasureView::Full)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.starts_with("uscc"), "{msg}");
}

#[test]
fn a_bad_measures_file_stops_the_server_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("measures-pudong.toml");
    let text = credit_risk::domain::measures::BUILTIN.replace("CLASS:D", "CLASS:E");
    std::fs::write(&file, text).unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\nmeasures_file = {:?}\n",
            file.display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_credit-risk"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .expect("run the binary");
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("store.measures_file"), "{stderr}");
    assert!(stderr.contains("measures-pudong.toml"), "{stderr}");
    assert!(stderr.contains("].trigger"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening on"));
}

/// A district token sees every bar (the serious-illegal list is public) but only the
/// enterprises of its own district among those the person heads.
#[tokio::test]
async fn a_district_token_sees_bars_but_not_other_districts_enterprises() {
    use credit_risk::server::auth::{hash_token, AuthConfig, Role, TokenConfig};
    let token = |name: &str, role, regions: Vec<String>| TokenConfig {
        name: name.into(),
        role,
        sha256: hash_token(&format!("{name}-secret")),
        regions,
    };
    let s = TestServer::start_with_auth(AuthConfig {
        tokens: vec![
            token("feed", Role::Feed, vec![]),
            token("xuhui", Role::Scheduler, vec!["310104".into()]),
        ],
    })
    .await;
    let ch = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut feed =
        credit_risk::proto::registry_service_client::RegistryServiceClient::with_interceptor(
            ch.clone(),
            crate::common::Bearer(Some("feed-secret")),
        );
    let (pudong, xuhui) = (uscc_n(b'1', 31), uscc_n(b'1', 32));
    for (u, region) in [(&pudong, "310115"), (&xuhui, "310104")] {
        let mut e = headed_by(u, &rep(5));
        e.region_code = region.into();
        feed.upsert_enterprise(pb::UpsertEnterpriseRequest {
            request_id: String::new(),
            enterprise: Some(e),
        })
        .await
        .unwrap();
    }
    feed.add_listing(pb::AddListingRequest {
        request_id: String::new(),
        listing: Some(pb::Listing {
            uscc: pudong.clone(),
            kind: pb::ListKind::SeriousIllegal as i32,
            reason: pb::ListingReason::SeriousViolation as i32,
            listed_on: "2026-01-05".into(),
            authority: "上海市市场监督管理局".into(),
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    let mut m =
        MeasuresServiceClient::with_interceptor(ch, crate::common::Bearer(Some("xuhui-secret")));
    let c = m
        .check_legal_representative(check(&rep(5), ""))
        .await
        .unwrap()
        .into_inner();
    assert!(c.barred, "the public bar is shown");
    assert_eq!(c.bars[0].uscc, pudong);
    assert_eq!(c.enterprises, vec![xuhui.clone()], "only its district's");
    let hidden = m
        .get_measures(pb::GetMeasuresRequest {
            uscc: pudong.clone(),
            as_of: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
}
