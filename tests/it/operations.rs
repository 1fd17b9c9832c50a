//! Operations are values: each one survives its serialized form, and applying the same
//! submitted operations in the same order to two fresh stores leaves them byte-for-byte
//! equal (what a replicated log relies on).

use std::{sync::Arc, time::Duration};

use credit_risk::{
    domain::{
        repair::{
            Objection, ObjectionState, ObjectionStep, RepairCase, RepairState, RepairStep,
            RepairTarget,
        },
        spotcheck::Inspector,
        Date, Model, RegionCode,
    },
    server::service::{convert, registry::parse_import},
    store::{
        codec, op, Actor, Correction, ImportItem, Operation, Stamp, Store, StoreOptions, Submitted,
    },
    synthetic::{generate, Profile, RecordReader},
};

/// The operation after a trip through its serialized form.
fn wire<O: Operation>(op: &O) -> O {
    let bytes = codec::encode(op).expect("encode");
    codec::decode(&bytes).expect("decode")
}

struct Pair {
    a: Store,
    b: Store,
    at: Stamp,
    steps: u64,
    _tmp: (tempfile::TempDir, tempfile::TempDir),
}

impl Pair {
    fn new() -> Pair {
        let (ta, tb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = Store::open(ta.path(), StoreOptions::default()).unwrap();
        let b = Store::open(tb.path(), StoreOptions::default()).unwrap();
        let today = Date::parse("d", "2026-11-30").unwrap();
        Pair {
            a,
            b,
            at: Stamp {
                today,
                now_ms: 1_796_000_000_000,
            },
            steps: 0,
            _tmp: (ta, tb),
        }
    }

    /// Applies `op` on store `a` as given and on store `b` as decoded from its wire
    /// form; both answer the same (success or refusal). Returns `a`'s answer.
    async fn apply<O: Operation>(&mut self, op: O) -> Result<O::Output, String> {
        self.steps += 1;
        self.at.now_ms += 1_000;
        let decoded = wire(&op);
        assert_eq!(
            format!("{op:?}"),
            format!("{decoded:?}"),
            "wire form of {op:?}"
        );
        let sub = |op| Submitted {
            op,
            at: self.at,
            actor: Actor::system("replay-test"),
            request: None,
        };
        let ra = self.a.apply(sub(op)).await.map_err(|e| e.to_string());
        let rb = self.b.apply(sub(decoded)).await.map_err(|e| e.to_string());
        assert_eq!(format!("{ra:?}"), format!("{rb:?}"), "step {}", self.steps);
        ra
    }

    fn assert_same(&self) {
        assert_eq!(
            self.a.content_digest().unwrap(),
            self.b.content_digest().unwrap(),
            "after {} operations",
            self.steps
        );
    }
}

#[tokio::test]
async fn the_same_operations_make_the_same_store() {
    let mut p = Pair::new();
    p.assert_same();

    // A generated city, imported in chunks.
    let profile = Profile {
        enterprises: 300,
        seed: 7,
        as_of: p.at.today,
    };
    let mut bytes = Vec::new();
    generate(&profile, &mut bytes, |_| {}).unwrap();
    let items: Vec<(u64, ImportItem)> = RecordReader::new(bytes.as_slice())
        .enumerate()
        .filter_map(|(i, r)| parse_import(r.ok()?).ok().map(|x| (i as u64, x)))
        .collect();
    assert!(items.len() > 300);
    let penalty = items
        .iter()
        .find_map(|(_, x)| match x {
            ImportItem::Penalty(p) => Some(p.clone()),
            _ => None,
        })
        .expect("the city has a penalty");
    for chunk in items.chunks(500) {
        let o = p.apply(op::Import(chunk.to_vec())).await.unwrap();
        assert!(o.stored > 0);
    }
    p.assert_same();

    // Registry writes, one refused.
    let u = penalty.uscc;
    let mut e = p.a.enterprise(&u).unwrap().unwrap();
    e.name = "上海改名后贸易有限公司".into();
    assert!(!p.apply(op::UpsertEnterprise(e)).await.unwrap().created);
    let fresh =
        convert::enterprise(&crate::common::enterprise(&crate::common::uscc_n(b'1', 9))).unwrap();
    assert!(p.apply(op::UpsertEnterprise(fresh)).await.unwrap().created);
    let mut again = penalty.clone();
    again.fine_fen += 1;
    assert!(
        p.apply(op::RecordPenalty(again)).await.is_err(),
        "same number, other content"
    );
    let mut second = penalty.clone();
    second.decision_number = "沪市监罚〔2026〕999号".into();
    p.apply(op::RecordPenalty(second)).await.unwrap();

    // A model and a run begun and aborted.
    let model = Arc::new(Model::builtin());
    p.apply(op::RegisterModel {
        model: model.clone(),
        activate_if_none: true,
    })
    .await
    .unwrap();
    let run = p
        .apply(op::BeginRun {
            model,
            as_of: p.at.today,
            dry_run: true,
            requested_by: "test".into(),
            beside: None,
        })
        .await
        .unwrap();
    p.apply(op::AbortRun {
        id: run.id,
        error: "test".into(),
    })
    .await
    .unwrap();
    // A run finished from its summary alone, as a replica would (its view is loaded
    // from the stored blocks; none were written here, so it classifies no one).
    let run = p
        .apply(op::BeginRun {
            model: Arc::new(Model::builtin()),
            as_of: p.at.today,
            dry_run: true,
            requested_by: "test".into(),
            beside: None,
        })
        .await
        .unwrap();
    let done = p
        .apply(op::FinishRun {
            run: run.clone(),
            view: None,
        })
        .await
        .unwrap();
    assert_eq!(done.state, credit_risk::store::RunState::Complete);

    // The sweep, an inspector, a repair case and an objection corrected.
    p.apply(op::SweepChunk {
        year: 2025,
        as_of: p.at.today,
        after: None,
        limit: 1000,
    })
    .await
    .unwrap();
    p.apply(op::UpsertInspector(Inspector {
        id: "SH-310115-1".into(),
        name: "检查员".into(),
        certificate_number: "沪执000001".into(),
        home_region: RegionCode::parse("r", "310115").unwrap(),
        fields: vec!["general".into()],
        active: true,
        recorded_at_ms: 0,
        department: String::new(),
    }))
    .await
    .unwrap();
    let today = p.at.today;
    let step = |state| RepairStep {
        state,
        at_ms: 0,
        on: today,
        by: "operator".into(),
        reason: "test".into(),
    };
    let case = RepairCase {
        id: 0,
        uscc: u,
        target: RepairTarget::PenaltyPublicity {
            decision_number: penalty.decision_number.clone(),
        },
        reason: "整改完毕".into(),
        commitment: "守信承诺".into(),
        evidence: vec![],
        state: RepairState::Submitted,
        submitted_on: today,
        eligibility: vec![],
        accept_due: today,
        decide_due: None,
        history: vec![step(RepairState::Submitted)],
    };
    // Eligible or not, both stores decide the same.
    let _ = p.apply(op::SubmitRepair(case)).await;
    let objection = p
        .apply(op::FileObjection(Objection {
            id: 0,
            uscc: u,
            record: format!("penalty/{}", penalty.decision_number),
            reason: "金额有误".into(),
            evidence: vec![],
            state: ObjectionState::Open,
            filed_on: today,
            decide_due: today,
            resolution: String::new(),
            history: vec![ObjectionStep {
                state: ObjectionState::Open,
                at_ms: 0,
                on: today,
                by: "enterprise".into(),
                reason: "金额有误".into(),
            }],
        }))
        .await
        .unwrap();
    let mut corrected = penalty.clone();
    corrected.fine_fen /= 2;
    let resolved = p
        .apply(op::ResolveObjection {
            id: objection.id,
            correction: Some(Correction::Penalty(corrected)),
            by: "legal".into(),
            reason: "复核更正".into(),
        })
        .await
        .unwrap();
    assert_eq!(resolved.state, ObjectionState::Corrected);
    p.assert_same();

    for s in [&p.a, &p.b] {
        s.close(Duration::from_secs(10)).unwrap();
    }
}
