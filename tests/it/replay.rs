//! Exact replays (SPEC §4) for every mutating RPC, over real gRPC. The list of mutating
//! RPCs comes from the proto descriptors — every RPC whose request carries `request_id` —
//! so a new one cannot be forgotten: each is called twice with one id (the second answer
//! must equal the first byte for byte and write nothing, not even an audit event), then
//! with the same id and other content (INVALID_ARGUMENT naming `request_id`).

use std::collections::BTreeSet;

use crate::common::*;
use credit_risk::proto::{
    self as pb, admin_service_client::AdminServiceClient, alert_service_client::AlertServiceClient,
    classification_service_client::ClassificationServiceClient,
    commitment_service_client::CommitmentServiceClient,
    credit_repair_service_client::CreditRepairServiceClient,
    spot_check_service_client::SpotCheckServiceClient,
};
use prost::Message;
use tonic::{transport::Channel, Code, Status};

/// RPCs that change nothing (reads, streams of reads, checks).
const READ_ONLY: &[&str] = &[
    "GetEnterprise",
    "ListPenalties",
    "GetCreditReport",
    "GetModel",
    "GetClassification",
    "ListScoringRuns",
    "GetScoringRun",
    "MatchClassifications",
    "BatchMatch",
    "QueryCandidates",
    "VerifyDraw",
    "ListPopulation",
    "ListInspectors",
    "GetPlan",
    "ListPlans",
    "GetReceipt",
    "ListCheckItems",
    "ListTaskResults",
    "GetRepairCase",
    "ListRepairCases",
    "ListObjections",
    "ListAuditEvents",
    "VerifyAuditChain",
    "GetRules",
    "WatchAlerts",
    "GetFilingStatistics",
    "GetSpotCheckStatistics",
    "GetModelPerformance",
    "GetRepairStatistics",
    "ListAlerts",
    "GetMeasures",
    "ListMeasures",
    "CheckLegalRepresentative",
    "ListCommitments",
    "ListJointCandidates",
];

/// Mutating RPCs without a request id, and why that is safe.
const NO_REQUEST_ID: &[(&str, &str)] = &[(
    "ImportRecords",
    "a client stream: every record is idempotent by its natural key (a re-sent record is counted unchanged)",
)];

/// (service, method, request message has `request_id`) for every RPC of creditrisk.v1.
fn rpcs() -> Vec<(String, String, bool)> {
    let set = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).unwrap();
    let mut messages = std::collections::HashMap::new();
    for f in &set.file {
        for m in &f.message_type {
            let has = m.field.iter().any(|x| x.name() == "request_id");
            messages.insert(format!(".{}.{}", f.package(), m.name()), has);
        }
    }
    let mut out = Vec::new();
    for f in set.file.iter().filter(|f| f.package() == "creditrisk.v1") {
        for s in &f.service {
            for m in &s.method {
                let has = messages.get(m.input_type()).copied().unwrap_or(false);
                out.push((s.name().to_string(), m.name().to_string(), has));
            }
        }
    }
    out
}

#[test]
fn every_rpc_is_classified() {
    for (svc, m, has_id) in rpcs() {
        let read_only = READ_ONLY.contains(&m.as_str());
        let exempt = NO_REQUEST_ID.iter().any(|(n, _)| *n == m);
        assert!(
            has_id ^ (read_only || exempt),
            "{svc}.{m}: a mutating RPC needs `request_id` in its request; a read-only one belongs in READ_ONLY"
        );
    }
}

struct Ctx {
    reg: RegistryClient,
    cls: ClassificationServiceClient<Channel>,
    spot: SpotCheckServiceClient<Channel>,
    rep: CreditRepairServiceClient<Channel>,
    adm: AdminServiceClient<Channel>,
    al: AlertServiceClient<Channel>,
    com: CommitmentServiceClient<Channel>,
    u: String,
    listed_on: String,
    model_version: String,
    model_toml: String,
    run_id: u64,
    plan_id: u64,
    /// A plan committed to a joint draw with a second (absent) instance whose
    /// populations are empty, and the manifest digest.
    joint_plan: Option<(u64, String)>,
    joint_base: Option<pb::DrawPlan>,
    case_id: u64,
    objection_id: u64,
}

fn bytes<M: Message>(r: Result<tonic::Response<M>, Status>) -> Result<Vec<u8>, Status> {
    r.map(|r| r.into_inner().encode_to_vec())
}

impl Ctx {
    /// Calls `rpc` with request id `id`; `other` changes the content.
    async fn call(&mut self, rpc: &str, id: &str, other: bool) -> Result<Vec<u8>, Status> {
        let id = id.to_string();
        let u = self.u.clone();
        match rpc {
            "UpsertEnterprise" => {
                let mut e = enterprise(&u);
                if other {
                    e.name = "上海另一家公司".into();
                }
                bytes(
                    self.reg
                        .upsert_enterprise(pb::UpsertEnterpriseRequest {
                            request_id: id,
                            enterprise: Some(e),
                        })
                        .await,
                )
            }
            "RecordPenalty" => bytes(
                self.reg
                    .record_penalty(pb::RecordPenaltyRequest {
                        request_id: id,
                        penalty: Some(fine(
                            &u,
                            "沪市监罚〔2026〕501号",
                            "2026-03-01",
                            if other { 9_000 } else { 5_000 },
                        )),
                    })
                    .await,
            ),
            "FileAnnualReport" => bytes(
                self.reg
                    .file_annual_report(pb::FileAnnualReportRequest {
                        request_id: id,
                        report: Some(pb::AnnualReport {
                            uscc: u,
                            year: if other { 2022 } else { 2025 },
                            filed_on: "2026-04-01".into(),
                            ..Default::default()
                        }),
                    })
                    .await,
            ),
            "AddListing" => bytes(
                self.reg
                    .add_listing(pb::AddListingRequest {
                        request_id: id,
                        listing: Some(pb::Listing {
                            uscc: u,
                            kind: pb::ListKind::AbnormalOperations as i32,
                            reason: pb::ListingReason::AnnualReportNotFiled as i32,
                            listed_on: if other {
                                "2025-08-01".into()
                            } else {
                                self.listed_on.clone()
                            },
                            authority: "上海市浦东新区市场监督管理局".into(),
                            report_year: 2024,
                            ..Default::default()
                        }),
                    })
                    .await,
            ),
            "RecordInspectionResult" => bytes(
                self.reg
                    .record_inspection_result(pb::RecordInspectionResultRequest {
                        request_id: id,
                        result: Some(pb::InspectionResult {
                            task_id: "2026-沪-replay".into(),
                            uscc: u,
                            inspected_on: "2026-05-01".into(),
                            check_items: vec!["营业执照".into()],
                            problems_found: other,
                            recorded_at: None,
                            problem_items: vec![],
                        }),
                    })
                    .await,
            ),
            "RecordSamplingResult" => bytes(
                self.reg
                    .record_sampling_result(pb::RecordSamplingResultRequest {
                        request_id: id,
                        sampling: Some(pb::QualitySamplingResult {
                            sample_id: "CJ-2026-replay".into(),
                            uscc: u,
                            sampled_on: "2026-05-01".into(),
                            category: pb::SamplingCategory::Food as i32,
                            product: "速冻水饺".into(),
                            batch: "20260420".into(),
                            passed: !other,
                            authority: "上海市浦东新区市场监督管理局".into(),
                            recorded_at: None,
                        }),
                    })
                    .await,
            ),
            "RecordComplaintSummary" => bytes(
                self.reg
                    .record_complaint_summary(pb::RecordComplaintSummaryRequest {
                        request_id: id,
                        complaints: Some(pb::ComplaintSummary {
                            uscc: u,
                            month: "2026-05".into(),
                            complaints: 3,
                            reports: 1,
                            verified: if other { 2 } else { 1 },
                            source: "12315".into(),
                            recorded_at: None,
                        }),
                    })
                    .await,
            ),
            "SweepAnnualReports" => bytes(
                self.reg
                    .sweep_annual_reports(pb::SweepAnnualReportsRequest {
                        request_id: id,
                        year: if other { 2023 } else { 2024 },
                        as_of: String::new(),
                    })
                    .await,
            ),
            "RegisterModel" => {
                let mut toml = self.model_toml.clone();
                if other {
                    toml = toml.replace("replay-model", "replay-model-2");
                }
                bytes(
                    self.cls
                        .register_model(pb::RegisterModelRequest {
                            toml,
                            request_id: id,
                        })
                        .await,
                )
            }
            "RunBatchScoring" => {
                // A stream: the answer compared is the run its `done` event names.
                let st = self
                    .cls
                    .run_batch_scoring(pb::RunBatchScoringRequest {
                        request_id: id,
                        as_of: String::new(),
                        model_version: self.model_version.clone(),
                        dry_run: !other,
                        family: String::new(),
                        all_families: false,
                    })
                    .await?
                    .into_inner();
                let run = crate::common::scoring_done(st).await?;
                self.run_id = run.run_id;
                Ok(run.run_id.to_be_bytes().to_vec())
            }
            "ActivateScoringRun" => bytes(
                self.cls
                    .activate_scoring_run(pb::ActivateScoringRunRequest {
                        request_id: id,
                        run_id: self.run_id,
                        reason: if other {
                            "其他理由"
                        } else {
                            "复核通过"
                        }
                        .into(),
                    })
                    .await,
            ),
            "UpsertInspector" => bytes(
                self.spot
                    .upsert_inspector(pb::UpsertInspectorRequest {
                        request_id: id,
                        inspector: Some(inspector("R-1", "310104", !other)),
                    })
                    .await,
            ),
            "PlanDraw" => {
                let r = self
                    .spot
                    .plan_draw(pb::PlanDrawRequest {
                        model_family: String::new(),
                        check_items: vec![],
                        request_id: id,
                        override_reason: "test: every class at 100 %".into(),
                        task_id: if other {
                            "2026-沪-other"
                        } else {
                            "2026-沪-replay"
                        }
                        .into(),
                        filter: Some(pb::CandidateFilter {
                            region_codes: vec!["310115".into()],
                            ..Default::default()
                        }),
                        strata: [pb::RiskClass::A, pb::RiskClass::B, pb::RiskClass::C]
                            .iter()
                            .map(|c| pb::Stratum {
                                risk_class: *c as i32,
                                size: Some(pb::stratum::Size::Ratio(1.0)),
                            })
                            .collect(),
                        as_of: String::new(),
                    })
                    .await?
                    .into_inner();
                self.plan_id = r.plan_id;
                Ok(r.encode_to_vec())
            }
            "DrawSample" => bytes(
                self.spot
                    .draw_sample(pb::DrawSampleRequest {
                        request_id: id,
                        plan_id: self.plan_id,
                        seed: if other {
                            "another-seed"
                        } else {
                            "20261202-lottery"
                        }
                        .into(),
                    })
                    .await,
            ),
            "AssignInspectors" => bytes(
                self.spot
                    .assign_inspectors(pb::AssignInspectorsRequest {
                        request_id: id,
                        plan_id: self.plan_id,
                        team_size: if other { 3 } else { 2 },
                        conflicts: Vec::new(),
                    })
                    .await,
            ),
            "CommitJointPopulation" => {
                // One plan for every call (made once, without a request id).
                let plan = match self.joint_base.clone() {
                    Some(p) => p,
                    None => {
                        let p = self
                            .spot
                            .plan_draw(pb::PlanDrawRequest {
                                task_id: "2026-delta-replay".into(),
                                override_reason: "test".into(),
                                strata: vec![pb::Stratum {
                                    risk_class: pb::RiskClass::A as i32,
                                    size: Some(pb::stratum::Size::Ratio(1.0)),
                                }],
                                ..Default::default()
                            })
                            .await?
                            .into_inner();
                        self.joint_base = Some(p.clone());
                        p
                    }
                };
                let population = |n: u64, digest: String| pb::JointPopulation {
                    risk_class: pb::RiskClass::A as i32,
                    population: n,
                    population_digest: digest,
                };
                let s = &plan.strata[0];
                let empty = credit_risk::domain::sampler::population_digest([]);
                let manifest = pb::JointManifest {
                    task_id: plan.task_id.clone(),
                    strata: vec![pb::JointStratumSpec {
                        risk_class: pb::RiskClass::A as i32,
                        size: Some(pb::joint_stratum_spec::Size::Ratio(1.0)),
                    }],
                    participants: vec![
                        pb::JointParticipant {
                            instance: plan.instance.clone(),
                            plan_id: plan.plan_id,
                            run_id: plan.run_id,
                            as_of: plan.as_of.clone(),
                            strata: vec![population(s.population, s.population_digest.clone())],
                        },
                        pb::JointParticipant {
                            instance: if other { "elsewhere" } else { "other-city" }.into(),
                            plan_id: 1,
                            run_id: 1,
                            as_of: plan.as_of.clone(),
                            strata: vec![population(0, empty)],
                        },
                    ],
                };
                let r = self
                    .spot
                    .commit_joint_population(pb::CommitJointPopulationRequest {
                        request_id: id,
                        plan_id: plan.plan_id,
                        manifest: Some(manifest),
                    })
                    .await?
                    .into_inner();
                self.joint_plan = Some((plan.plan_id, r.manifest_digest.clone()));
                Ok(r.encode_to_vec())
            }
            "DrawJointSample" => {
                let (plan_id, digest) = self.joint_plan.clone().expect("committed");
                bytes(
                    self.spot
                        .draw_joint_sample(pb::DrawJointSampleRequest {
                            request_id: id,
                            plan_id,
                            seed: if other { "another" } else { "20261203-delta" }.into(),
                            manifest_digest: digest,
                        })
                        .await,
                )
            }
            "CompleteJointDraw" => {
                let (plan_id, digest) = self.joint_plan.clone().expect("committed");
                let mut s = self
                    .spot
                    .list_joint_candidates(pb::ListJointCandidatesRequest {
                        plan_id,
                        stratum: 0,
                    })
                    .await?
                    .into_inner();
                let mut all = Vec::new();
                while let Some(b) = s.message().await? {
                    all.extend(b.candidates);
                }
                bytes(
                    self.spot
                        .complete_joint_draw(pb::CompleteJointDrawRequest {
                            request_id: id,
                            plan_id,
                            outcome: Some(pb::JointOutcome {
                                manifest_digest: digest,
                                seed: "20261203-delta".into(),
                                strata: vec![pb::JointStratumOutcome {
                                    k: all.len() as u64,
                                    threshold: all
                                        .last()
                                        .map(|c| c.ticket.clone())
                                        .unwrap_or_default(),
                                    selected_here: all.len() as u64,
                                    selection_digest: if other { "1" } else { "0" }.repeat(64),
                                }],
                            }),
                        })
                        .await,
                )
            }
            "SubmitRepair" => {
                let r = self
                    .rep
                    .submit_repair(pb::SubmitRepairRequest {
                        request_id: id,
                        uscc: u,
                        target: Some(pb::RepairTarget {
                            target: Some(pb::repair_target::Target::Listing(pb::ListingKey {
                                kind: pb::ListKind::AbnormalOperations as i32,
                                listed_on: self.listed_on.clone(),
                                reason: pb::ListingReason::AnnualReportNotFiled as i32,
                            })),
                        }),
                        reason: if other {
                            "另一理由"
                        } else {
                            "已补报年度报告"
                        }
                        .into(),
                        commitment: "守信承诺书 doc://commit/replay".into(),
                        commitment_signed: true,
                        evidence: vec!["doc://reports".into()],
                    })
                    .await?
                    .into_inner();
                self.case_id = r.case_id;
                Ok(r.encode_to_vec())
            }
            "AcceptRepair" => bytes(
                self.rep
                    .accept_repair(pb::AcceptRepairRequest {
                        request_id: id,
                        case_id: self.case_id,
                        accept: !other,
                        reason: "材料齐全".into(),
                    })
                    .await,
            ),
            "DecideRepair" => bytes(
                self.rep
                    .decide_repair(pb::DecideRepairRequest {
                        request_id: id,
                        case_id: self.case_id,
                        approve: !other,
                        reason: "符合修复条件".into(),
                    })
                    .await,
            ),
            "RevokeRepair" => bytes(
                self.rep
                    .revoke_repair(pb::RevokeRepairRequest {
                        request_id: id,
                        case_id: self.case_id,
                        reason: if other { "其他" } else { "承诺不实" }.into(),
                    })
                    .await,
            ),
            "FileObjection" => {
                let r = self
                    .rep
                    .file_objection(pb::FileObjectionRequest {
                        request_id: id,
                        uscc: u,
                        record: "penalty/沪市监罚〔2026〕501号".into(),
                        reason: if other {
                            "其他"
                        } else {
                            "罚款金额录入错误"
                        }
                        .into(),
                        evidence: vec!["doc://decision/501".into()],
                    })
                    .await?
                    .into_inner();
                self.objection_id = r.objection_id;
                Ok(r.encode_to_vec())
            }
            "ResolveObjection" => bytes(
                self.rep
                    .resolve_objection(pb::ResolveObjectionRequest {
                        request_id: id,
                        objection_id: self.objection_id,
                        reason: if other { "其他" } else { "核实无误" }.into(),
                        correction: None,
                    })
                    .await,
            ),
            "Backup" => bytes(
                self.adm
                    .backup(pb::BackupRequest {
                        request_id: id,
                        name: if other { "other.crbk" } else { "replay.crbk" }.into(),
                    })
                    .await,
            ),
            // The abnormal listing of "AddListing" raised alert 1.
            "AcknowledgeAlert" => bytes(
                self.al
                    .acknowledge_alert(pb::AcknowledgeAlertRequest {
                        request_id: id,
                        sequence: 1,
                        note: if other { "another note" } else { "seen" }.into(),
                    })
                    .await,
            ),
            "AssignAlert" => bytes(
                self.al
                    .assign_alert(pb::AssignAlertRequest {
                        request_id: id,
                        sequence: 1,
                        assignee: if other { "team-b" } else { "team-a" }.into(),
                    })
                    .await,
            ),
            "CloseAlert" => bytes(
                self.al
                    .close_alert(pb::CloseAlertRequest {
                        request_id: id,
                        sequence: 1,
                        outcome: if other {
                            pb::AlertOutcome::NoProblemFound
                        } else {
                            pb::AlertOutcome::ProblemFound
                        } as i32,
                        reason: String::new(),
                    })
                    .await,
            ),
            "RecordCommitment" => bytes(
                self.com
                    .record_commitment(pb::RecordCommitmentRequest {
                        request_id: id,
                        commitment: Some(pb::Commitment {
                            commitment_id: "LIC-replay".into(),
                            uscc: u,
                            kind: pb::CommitmentKind::LicensingNotification as i32,
                            made_on: "2026-01-10".into(),
                            due_on: if other { "2026-05-10" } else { "2026-04-10" }.into(),
                            content: "补交材料".into(),
                            authority: "浦东新区市场监督管理局".into(),
                            ..Default::default()
                        }),
                    })
                    .await,
            ),
            "VerifyCommitment" => bytes(
                self.com
                    .verify_commitment(pb::VerifyCommitmentRequest {
                        request_id: id,
                        uscc: u,
                        commitment_id: "LIC-replay".into(),
                        verdict: pb::CommitmentVerdict::Broken as i32,
                        verified_on: "2026-04-20".into(),
                        note: if other {
                            "另一说明"
                        } else {
                            "逾期未补交"
                        }
                        .into(),
                    })
                    .await,
            ),
            other => panic!("no replay case for {other}: add one to tests/replay.rs"),
        }
    }
}

fn inspector(id: &str, region: &str, active: bool) -> pb::Inspector {
    pb::Inspector {
        id: id.into(),
        name: format!("检查员{id}"),
        certificate_number: format!("沪执{id}"),
        home_region_code: region.into(),
        fields: vec!["advertising".into()],
        active,
        department: String::new(),
    }
}

/// The RPCs whose request ids are bound to a drawn plan's receipt (rendered again on a
/// retry) instead of to stored reply bytes.
const RECEIPTS: &[&str] = &["DrawSample", "AssignInspectors", "CompleteJointDraw"];

/// The order the cases run in (later ones use what earlier ones made).
const ORDER: &[&str] = &[
    "UpsertEnterprise",
    "RecordPenalty",
    "AddListing",
    "AcknowledgeAlert",
    "AssignAlert",
    "CloseAlert",
    "FileAnnualReport",
    "RecordInspectionResult",
    "RecordSamplingResult",
    "RecordComplaintSummary",
    "SweepAnnualReports",
    "RegisterModel",
    "RunBatchScoring",
    "ActivateScoringRun",
    "UpsertInspector",
    "PlanDraw",
    "DrawSample",
    "AssignInspectors",
    "CommitJointPopulation",
    "DrawJointSample",
    "CompleteJointDraw",
    "SubmitRepair",
    "AcceptRepair",
    "DecideRepair",
    "RevokeRepair",
    "FileObjection",
    "ResolveObjection",
    "RecordCommitment",
    "VerifyCommitment",
    "Backup",
];

#[tokio::test]
async fn every_mutating_rpc_replays_exactly() {
    let mutating: BTreeSet<String> = rpcs().into_iter().filter(|r| r.2).map(|r| r.1).collect();
    let ordered: BTreeSet<String> = ORDER.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        mutating, ordered,
        "the replay cases must cover exactly the RPCs with a request_id"
    );

    let s = TestServer::start().await;
    let addr = format!("http://{}", s.addr);
    let mut cls = ClassificationServiceClient::connect(addr.clone())
        .await
        .unwrap();
    let m = cls
        .get_model(pb::GetModelRequest::default())
        .await
        .unwrap()
        .into_inner();
    let model_toml = m.toml.replacen(
        &format!("version = \"{}\"", m.version),
        "version = \"replay-model\"",
        1,
    );
    assert!(model_toml.contains("replay-model"));
    let mut ctx = Ctx {
        reg: s.client.clone(),
        cls,
        spot: SpotCheckServiceClient::connect(addr.clone()).await.unwrap(),
        rep: CreditRepairServiceClient::connect(addr.clone())
            .await
            .unwrap(),
        adm: AdminServiceClient::connect(addr.clone()).await.unwrap(),
        al: AlertServiceClient::connect(addr.clone()).await.unwrap(),
        com: CommitmentServiceClient::connect(addr).await.unwrap(),
        u: uscc_n(b'1', 501),
        listed_on: "2025-07-15".into(),
        model_version: "replay-model".into(),
        model_toml,
        run_id: 0,
        plan_id: 0,
        joint_plan: None,
        joint_base: None,
        case_id: 0,
        objection_id: 0,
    };
    // Neighbours for the pool and inspectors from other districts for the teams.
    for n in 1..=6 {
        put_enterprise(&mut ctx.reg, enterprise(&uscc_n(b'1', n))).await;
    }
    for (i, region) in ["310101", "310104", "310106", "310110"].iter().enumerate() {
        ctx.spot
            .upsert_inspector(pb::UpsertInspectorRequest {
                request_id: String::new(),
                inspector: Some(inspector(&format!("I-{i}"), region, true)),
            })
            .await
            .unwrap();
    }
    // The first replies of the RPCs whose ids are bound to a plan's receipt, which a
    // retry renders again — also once the plan has inspector teams, and after a restart.
    let mut receipts = std::collections::HashMap::new();
    for rpc in ORDER {
        if *rpc == "SubmitRepair" {
            // Eligible: the missing reports are made up first.
            for year in 2018..=2024 {
                ctx.reg
                    .file_annual_report(pb::FileAnnualReportRequest {
                        request_id: String::new(),
                        report: Some(pb::AnnualReport {
                            uscc: ctx.u.clone(),
                            year,
                            filed_on: "2026-04-01".into(),
                            ..Default::default()
                        }),
                    })
                    .await
                    .unwrap();
            }
        }
        let id = format!("replay-{rpc}");
        let events = || s.store.verify_audit_chain().unwrap();
        let runs = || s.store.runs().unwrap().len();
        let first = ctx
            .call(rpc, &id, false)
            .await
            .unwrap_or_else(|e| panic!("{rpc}: first call failed: {e:?}"));
        let (n1, broken) = events();
        assert!(broken.is_none(), "{rpc}: {broken:?}");
        let runs1 = runs();
        let again = ctx
            .call(rpc, &id, false)
            .await
            .unwrap_or_else(|e| panic!("{rpc}: retry failed: {e:?}"));
        assert_eq!(
            first, again,
            "{rpc}: the retry's reply differs from the first"
        );
        if RECEIPTS.contains(rpc) {
            receipts.insert(*rpc, first.clone());
        }
        assert_eq!(events().0, n1, "{rpc}: the retry wrote an audit event");
        assert_eq!(runs(), runs1, "{rpc}: the retry started a run");
        let err = ctx
            .call(rpc, &id, true)
            .await
            .expect_err(&format!("{rpc}: id reused with other content was accepted"));
        assert_eq!(err.code(), Code::InvalidArgument, "{rpc}: {err:?}");
        assert!(
            err.message().contains("request_id"),
            "{rpc}: {}",
            err.message()
        );
        assert_eq!(
            events().0,
            n1,
            "{rpc}: the refused reuse wrote an audit event"
        );
    }
    let plan = ctx.plan_id;
    let teams = ctx
        .spot
        .get_receipt(pb::GetReceiptRequest { plan_id: plan })
        .await
        .unwrap()
        .into_inner();
    assert!(
        teams.team_size > 0 && !teams.inspector_pool_digest.is_empty(),
        "the plan has its inspector teams: {teams:?}"
    );
    assert_eq!(receipts.len(), RECEIPTS.len());
    assert_eq!(
        ctx.call("DrawSample", "replay-DrawSample", false)
            .await
            .unwrap(),
        receipts["DrawSample"],
        "DrawSample's retry after AssignInspectors differs from its first reply"
    );
    // The answers survive a restart: replays read the store, not memory — also when the
    // instance has been renamed since (a joint draw's receipt names the instance that
    // answered it first).
    let dir = s.dir.clone();
    let today = s.store.today();
    let tmp = s.stop().await;
    let s =
        TestServer::start_at_on_with(&dir, today, |o| o.instance_name = "renamed-instance".into())
            .await;
    let mut reg = s.client.clone();
    let r = reg
        .record_penalty(pb::RecordPenaltyRequest {
            request_id: "replay-RecordPenalty".into(),
            penalty: Some(fine(&ctx.u, "沪市监罚〔2026〕501号", "2026-03-01", 5_000)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.penalty.unwrap().fine_fen, 500_000);
    ctx.spot = SpotCheckServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    for rpc in RECEIPTS {
        assert_eq!(
            ctx.call(rpc, &format!("replay-{rpc}"), false)
                .await
                .unwrap(),
            receipts[rpc],
            "{rpc}: the retry after a restart differs from the first reply"
        );
    }
    drop(tmp);
}
