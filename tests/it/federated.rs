//! Federated joint draws across instances (issue 19 item 3): two server processes, each
//! its own store with another generated city, one joint draw coordinated by
//! `credit-risk joint-draw`, re-checked offline by `credit-risk verify-joint` and by the
//! published Python package, and each instance's share verified by its own VerifyDraw.

use std::{
    path::Path,
    process::{Child, Command},
};

use credit_risk::{
    proto::{self as pb, spot_check_service_client::SpotCheckServiceClient},
    server::service::spotcheck::joint::manifest_of_plans,
};
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
    let seed = demo_seed.to_string();
    let (child, addr) = crate::common::spawn_serve(
        dir.path(),
        &[
            "--demo",
            "1500",
            "--demo-seed",
            &seed,
            "--instance-name",
            name,
        ],
        &[],
    );
    Instance {
        child,
        addr: addr.to_string(),
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
    let mut m = manifest_of_plans(&[("shanghai", &pa), ("suzhou", &pb_)]);
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
    let out = verify_joint(&receipt, &pops);
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
    let out = verify_joint(&cut_path, &pops);
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
    let out = verify_joint(&receipt, &pops);
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

/// `credit-risk verify-joint RECEIPT --population-dir POPS`.
fn verify_joint(receipt: &Path, pops: &Path) -> std::process::Output {
    cli(&[
        "verify-joint",
        receipt.to_str().unwrap(),
        "--population-dir",
        pops.to_str().unwrap(),
    ])
}

/// examples/python/verify_joint.py (the published `consistent_sampler` package) on a
/// joint receipt: its exit status and output; `None` where the package is missing
/// (CI requires it: CREDIT_RISK_REQUIRE_PYTHON_SAMPLER).
fn python_verify(receipt: &Path, pops: &Path) -> Option<(bool, String)> {
    if !crate::common::python_has("consistent_sampler", "CREDIT_RISK_REQUIRE_PYTHON_SAMPLER") {
        return None;
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
    Some((out.status.success(), text))
}

/// The Python re-check must refuse `receipt`, saying `why`.
fn python_recheck_fails(receipt: &Path, pops: &Path, why: &str) {
    if let Some((ok, text)) = python_verify(receipt, pops) {
        assert!(!ok, "verify_joint.py accepted {receipt:?}: {text}");
        assert!(text.contains(why), "{text}");
    }
}

/// The Python re-check must accept the receipt (`expect_ok`), or refuse it naming the
/// damaged instance.
fn python_recheck(receipt: &Path, pops: &Path, expect_ok: bool) {
    let Some((ok, text)) = python_verify(receipt, pops) else {
        return;
    };
    if expect_ok {
        assert!(ok, "verify_joint.py: {text}");
        assert!(text.contains("verified"), "{text}");
    } else {
        assert!(!ok, "verify_joint.py accepted a damaged list: {text}");
        assert!(text.contains("instance suzhou"), "{text}");
    }
}
