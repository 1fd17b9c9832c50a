//! Federated joint draws across instances (issue 19 item 3): two server processes, each
//! its own store with another generated city, one joint draw coordinated by
//! `credit-risk joint-draw`, re-checked offline by `credit-risk verify-joint` and by the
//! published Python package, and each instance's share verified by its own VerifyDraw.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

use credit_risk::proto::{self as pb, spot_check_service_client::SpotCheckServiceClient};
use tonic::{transport::Channel, Code};

/// A `serve --demo` process, killed when dropped.
struct Instance {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(name: &str, demo_seed: u64) -> Instance {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_credit-risk"))
        .args(["serve", "--demo", "1500", "--demo-seed"])
        .arg(demo_seed.to_string())
        .args([
            "--instance-name",
            name,
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .env_remove("CREDIT_RISK_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start credit-risk serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("start line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected start line {line:?}"))
        .to_string();
    Instance {
        child,
        addr,
        _dir: dir,
    }
}

async fn client(addr: &str) -> SpotCheckServiceClient<Channel> {
    SpotCheckServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect")
}

fn strata() -> Vec<pb::Stratum> {
    use pb::stratum::Size;
    vec![
        pb::Stratum {
            risk_class: pb::RiskClass::B as i32,
            size: Some(Size::Ratio(0.05)),
        },
        pb::Stratum {
            risk_class: pb::RiskClass::C as i32,
            size: Some(Size::Ratio(0.3)),
        },
        pb::Stratum {
            risk_class: pb::RiskClass::D as i32,
            size: Some(Size::Count(4)),
        },
    ]
}

async fn plan(c: &mut SpotCheckServiceClient<Channel>, task: &str) -> pb::DrawPlan {
    c.plan_draw(pb::PlanDrawRequest {
        task_id: task.into(),
        strata: strata(),
        override_reason: "joint check of the delta".into(),
        ..Default::default()
    })
    .await
    .expect("plan")
    .into_inner()
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_credit-risk"))
        .args(args)
        .env_remove("CREDIT_RISK_TOKEN")
        .output()
        .expect("run credit-risk")
}

fn manifest_of(plans: &[(&str, &pb::DrawPlan)]) -> pb::JointManifest {
    use pb::joint_stratum_spec::Size;
    let first = plans[0].1;
    pb::JointManifest {
        task_id: first.task_id.clone(),
        strata: first
            .strata
            .iter()
            .map(|s| pb::JointStratumSpec {
                risk_class: s.risk_class,
                size: Some(if s.count > 0 {
                    Size::Count(s.count)
                } else {
                    Size::Ratio(s.ratio)
                }),
            })
            .collect(),
        participants: plans
            .iter()
            .map(|(name, p)| pb::JointParticipant {
                instance: name.to_string(),
                plan_id: p.plan_id,
                run_id: p.run_id,
                as_of: p.as_of.clone(),
                strata: p
                    .strata
                    .iter()
                    .map(|s| pb::JointPopulation {
                        risk_class: s.risk_class,
                        population: s.population,
                        population_digest: s.population_digest.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[tokio::test]
async fn two_instances_draw_one_verifiable_joint_sample() {
    let sh = spawn("shanghai", 1);
    let sz = spawn("suzhou", 2);
    let mut a = client(&sh.addr).await;
    let mut b = client(&sz.addr).await;
    let pa = plan(&mut a, "delta-2026-q4").await;
    let pb_ = plan(&mut b, "delta-2026-q4").await;
    assert_eq!(
        (pa.instance.as_str(), pb_.instance.as_str()),
        ("shanghai", "suzhou")
    );

    // Refusals before anything is committed: the seed cannot come first.
    let err = a
        .draw_joint_sample(pb::DrawJointSampleRequest {
            plan_id: pa.plan_id,
            seed: "s".into(),
            manifest_digest: "0".repeat(64),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("not committed"), "{err:?}");
    // A manifest that does not name this instance, or misstates its plan.
    let mut m = manifest_of(&[("shanghai", &pa), ("suzhou", &pb_)]);
    let err = b
        .commit_joint_population(pb::CommitJointPopulationRequest {
            plan_id: pb_.plan_id,
            manifest: Some(pb::JointManifest {
                participants: m
                    .participants
                    .iter()
                    .cloned()
                    .map(|mut p| {
                        p.instance = format!("x{}", p.instance);
                        p
                    })
                    .collect(),
                ..m.clone()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("\"suzhou\""), "{err:?}");
    let mut wrong = m.clone();
    wrong.participants[1].strata[1].population_digest = "f".repeat(64);
    let err = b
        .commit_joint_population(pb::CommitJointPopulationRequest {
            plan_id: pb_.plan_id,
            manifest: Some(wrong),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("instance suzhou: strata[1]"),
        "{err:?}"
    );
    m.participants[1].instance = "shanghai".into();
    let err = b
        .commit_joint_population(pb::CommitJointPopulationRequest {
            plan_id: pb_.plan_id,
            manifest: Some(m),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message()
            .starts_with("manifest.participants[1].instance"),
        "{err:?}"
    );

    // The coordinator: commit, reveal, merge, record.
    let work = tempfile::tempdir().unwrap();
    let receipt = work.path().join("joint.json");
    let pops = work.path().join("pops");
    let out = cli(&[
        "joint-draw",
        "--participant",
        &format!("shanghai={}/{}", sh.addr, pa.plan_id),
        "--participant",
        &format!("suzhou={}/{}", sz.addr, pb_.plan_id),
        "--seed",
        "20261203-delta",
        "--out",
        receipt.to_str().unwrap(),
        "--population-dir",
        pops.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "joint-draw: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&receipt).unwrap()).unwrap();
    let strata = json["strata"].as_array().unwrap();
    assert_eq!(strata.len(), 3);
    let c = &strata[1];
    let union = pa.strata[1].population + pb_.strata[1].population;
    assert_eq!(c["population"].as_u64().unwrap(), union);
    assert_eq!(c["k"].as_u64().unwrap(), (union as f64 * 0.3).ceil() as u64);
    let instances: std::collections::BTreeSet<&str> = c["selected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["instance"].as_str().unwrap())
        .collect();
    assert_eq!(
        instances.into_iter().collect::<Vec<_>>(),
        ["shanghai", "suzhou"],
        "both cities' enterprises are drawn"
    );

    // Offline re-check, by us and by the published package.
    let out = cli(&[
        "verify-joint",
        receipt.to_str().unwrap(),
        "--population-dir",
        pops.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "verify-joint: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    python_recheck(&receipt, &pops, true);
    // A receipt that draws fewer than the manifest's stratum gives (k and the selection
    // cut alike) is refused by both.
    let mut cut = json.clone();
    let st = &mut cut["strata"][1];
    let k = st["k"].as_u64().unwrap();
    st["k"] = serde_json::json!(k - 1);
    st["selected"].as_array_mut().unwrap().pop();
    let cut_path = work.path().join("cut.json");
    std::fs::write(&cut_path, serde_json::to_string(&cut).unwrap()).unwrap();
    let out = cli(&[
        "verify-joint",
        cut_path.to_str().unwrap(),
        "--population-dir",
        pops.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("strata[1].k"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    python_recheck_fails(&cut_path, &pops, "stratum 1: k");

    // Each instance's share: its receipt carries the joint draw and VerifyDraw agrees.
    let mut shares = 0;
    for (c, p) in [(&mut a, &pa), (&mut b, &pb_)] {
        let r = c
            .get_receipt(pb::GetReceiptRequest { plan_id: p.plan_id })
            .await
            .unwrap()
            .into_inner();
        let joint = r.joint.clone().expect("joint summary");
        assert_eq!(joint.outcome.as_ref().unwrap().seed, "20261203-delta");
        shares += r.strata.iter().map(|s| s.selected.len()).sum::<usize>();
        let v = c
            .verify_draw(pb::VerifyDrawRequest {
                receipt: Some(r.clone()),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(v.matches, "{}", v.first_difference);
        // A share cut by one is found.
        let mut cut = r.clone();
        if let Some(s) = cut.strata.iter_mut().find(|s| !s.selected.is_empty()) {
            s.selected.pop();
            s.k -= 1;
        }
        let v = c
            .verify_draw(pb::VerifyDrawRequest { receipt: Some(cut) })
            .await
            .unwrap()
            .into_inner();
        assert!(!v.matches);
        // The plan is drawn: DrawSample and another seed are refused.
        let err = c
            .draw_sample(pb::DrawSampleRequest {
                plan_id: p.plan_id,
                seed: "other".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        let err = c
            .draw_joint_sample(pb::DrawJointSampleRequest {
                plan_id: p.plan_id,
                seed: "other".into(),
                manifest_digest: joint.outcome.as_ref().unwrap().manifest_digest.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(err.message().starts_with("seed:"), "{err:?}");
        // Inspector teams for the share work as for any draw.
        let r = c
            .assign_inspectors(pb::AssignInspectorsRequest {
                plan_id: p.plan_id,
                team_size: 2,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.joint.is_some());
        let v = c
            .verify_draw(pb::VerifyDrawRequest { receipt: Some(r) })
            .await
            .unwrap()
            .into_inner();
        assert!(v.matches, "{}", v.first_difference);
    }
    let total: u64 = strata.iter().map(|s| s["k"].as_u64().unwrap_or(0)).sum();
    assert_eq!(
        shares as u64, total,
        "the shares add up to the joint sample"
    );

    // A damaged population list is found, naming the instance.
    let f = pops.join("suzhou").join("stratum-1.txt");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, text.lines().skip(1).collect::<Vec<_>>().join("\n")).unwrap();
    let out = cli(&[
        "verify-joint",
        receipt.to_str().unwrap(),
        "--population-dir",
        pops.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("instance suzhou: stratum 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    python_recheck(&receipt, &pops, false);
}

/// Two instances holding the same enterprises (the same generated city) cannot draw
/// jointly: the coordinator names both; and a coordinator that miscounts an instance's
/// share is refused by it.
#[tokio::test]
async fn overlapping_instances_and_a_lying_coordinator_are_refused() {
    let x = spawn("city-x", 3);
    let y = spawn("city-y", 3);
    let mut a = client(&x.addr).await;
    let mut b = client(&y.addr).await;
    let pa = plan(&mut a, "overlap").await;
    let pb_ = plan(&mut b, "overlap").await;
    let out = cli(&[
        "joint-draw",
        "--participant",
        &format!("city-x={}/{}", x.addr, pa.plan_id),
        "--participant",
        &format!("city-y={}/{}", y.addr, pb_.plan_id),
        "--seed",
        "s1",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("instances city-x and city-y"), "{err}");

    // The reveal happened (both committed, both seeded): a miscounted outcome is refused.
    let digest = a
        .get_plan(pb::GetPlanRequest {
            plan_id: pa.plan_id,
        })
        .await
        .unwrap()
        .into_inner()
        .joint_manifest_digest;
    assert_eq!(digest.len(), 64, "the plan shows its joint commitment");
    let d = a
        .draw_joint_sample(pb::DrawJointSampleRequest {
            plan_id: pa.plan_id,
            seed: "s1".into(),
            manifest_digest: digest,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let outcome = pb::JointOutcome {
        manifest_digest: d.manifest_digest.clone(),
        seed: "s1".into(),
        strata: d
            .strata
            .iter()
            .map(|s| pb::JointStratumOutcome {
                k: s.k,
                threshold: if s.k == 0 {
                    String::new()
                } else {
                    format!("0.{}", "9".repeat(70))
                },
                selected_here: 0,
                selection_digest: "0".repeat(64),
            })
            .collect(),
    };
    let err = a
        .complete_joint_draw(pb::CompleteJointDrawRequest {
            plan_id: pa.plan_id,
            outcome: Some(outcome.clone()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("selected_here"), "{err:?}");
    let err = a
        .complete_joint_draw(pb::CompleteJointDrawRequest {
            plan_id: pa.plan_id,
            outcome: Some(pb::JointOutcome {
                seed: "s2".into(),
                ..outcome
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().starts_with("outcome.seed"), "{err:?}");
}

/// examples/python/verify_joint.py must refuse `receipt`, saying `why`.
fn python_recheck_fails(receipt: &Path, pops: &Path, why: &str) {
    if !crate::common::python_has("consistent_sampler", "CREDIT_RISK_REQUIRE_PYTHON_SAMPLER") {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python/verify_joint.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(receipt)
        .arg(pops)
        .output()
        .expect("run python3");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "verify_joint.py accepted {receipt:?}"
    );
    assert!(text.contains(why), "{text}");
}

/// Re-checks the joint receipt with examples/python/verify_joint.py (the published
/// `consistent_sampler` package); `expect_ok` false: it must refuse.
fn python_recheck(receipt: &Path, pops: &Path, expect_ok: bool) {
    if !crate::common::python_has("consistent_sampler", "CREDIT_RISK_REQUIRE_PYTHON_SAMPLER") {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python/verify_joint.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(receipt)
        .arg(pops)
        .output()
        .expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if expect_ok {
        assert!(out.status.success(), "verify_joint.py: {text}");
        assert!(text.contains("verified"), "{text}");
    } else {
        assert!(
            !out.status.success(),
            "verify_joint.py accepted a damaged list: {text}"
        );
        assert!(text.contains("instance suzhou"), "{text}");
    }
}
