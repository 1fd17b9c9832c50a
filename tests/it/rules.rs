//! RulesService over gRPC, and rules files refused at start naming the key.

use std::process::Command;

use crate::common::TestServer;
use credit_risk::{
    domain::ruleset::PARAMETERS,
    proto::{self as pb, rules_service_client::RulesServiceClient},
};
use tonic::Code;

#[tokio::test]
async fn get_rules_answers_the_version_in_force_with_sources() {
    let s = TestServer::start().await;
    let mut c = RulesServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let r = c
        .get_rules(pb::GetRulesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.version, "shanghai-2022-07-01");
    assert_eq!(r.jurisdiction, "310000");
    assert_eq!(r.effective_from, "2022-07-01");
    assert!(r.note.is_empty());
    assert_eq!(r.parameters.len(), PARAMETERS.len());
    let short = r
        .parameters
        .iter()
        .find(|p| p.key == "publicity.short_months")
        .unwrap();
    assert_eq!(short.value, "3");
    assert!(short.source.contains("Order 45"), "{short:?}");
    assert_eq!(short.evidence, "V");
    for p in &r.parameters {
        assert!(!p.source.is_empty() && !p.unit.is_empty(), "{p:?}");
    }
    // Before the earliest version: the earliest applies, and the answer says so.
    let early = c
        .get_rules(pb::GetRulesRequest {
            as_of: "2020-01-01".into(),
            jurisdiction: "310000".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(early.version, r.version);
    assert!(early.note.contains("precedes"), "{}", early.note);
    // Bad input names the field; an unknown jurisdiction is NOT_FOUND.
    for (req, code, field) in [
        (("2026-13-01", ""), Code::InvalidArgument, "as_of"),
        (("", "31"), Code::InvalidArgument, "jurisdiction"),
        (("", "440300"), Code::NotFound, "jurisdiction"),
    ] {
        let e = c
            .get_rules(pb::GetRulesRequest {
                as_of: req.0.into(),
                jurisdiction: req.1.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), code, "{e:?}");
        assert!(e.message().contains(field), "{e:?}");
    }
    s.stop().await;
}

/// A rules file with a bad key stops `serve` before it listens, naming the key.
#[test]
fn a_bad_rules_file_stops_the_server_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules-2027.toml");
    let text = credit_risk::domain::ruleset::BUILTIN_RULES
        .replace("shanghai-2022-07-01", "shanghai-2027-07-01")
        .replace("\"2022-07-01\"", "\"2027-07-01\"")
        .replace("decide_other_wd = 15", "decide_other_wd = 0");
    std::fs::write(&rules, text).unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\nrules_files = [{:?}]\n",
            rules.display().to_string()
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
    assert!(stderr.contains("repair.decide_other_wd"), "{stderr}");
    assert!(stderr.contains("rules-2027.toml"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening on"));
}
