//! Operator commands (`credit-risk repair …`, `credit-risk objection …`): thin clients of
//! the CreditRepairService with readable tables or JSON.

use clap::Subcommand;

use crate::{
    client::{channel, ClientError, TokenInterceptor},
    proto::{self as pb, credit_repair_service_client::CreditRepairServiceClient},
};

/// `credit-risk repair …`
#[derive(Subcommand, Debug)]
pub enum RepairCommand {
    /// File a repair case.
    ///
    /// Example: credit-risk repair submit --uscc 91310115MA1K3BTP2B
    ///   --listing ABNORMAL_OPERATIONS/2025-07-15/ANNUAL_REPORT_NOT_FILED
    ///   --reason "reports made up" --commitment "signed, doc://c/1" --signed
    Submit {
        #[arg(long)]
        uscc: String,
        /// A listing id KIND/LISTED_ON/REASON (as the credit report shows it).
        #[arg(long, conflicts_with = "penalty")]
        listing: Option<String>,
        /// A penalty decision number (early end of publicity).
        #[arg(long)]
        penalty: Option<String>,
        #[arg(long)]
        reason: String,
        /// The integrity commitment (text or document reference).
        #[arg(long)]
        commitment: String,
        /// The commitment is signed.
        #[arg(long)]
        signed: bool,
        #[arg(long)]
        evidence: Vec<String>,
    },
    /// List cases.
    List {
        /// SUBMITTED, ACCEPTED, NOT_ACCEPTED, APPROVED, DENIED or REVOKED.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        uscc: Option<String>,
        /// Only cases whose next step is late.
        #[arg(long)]
        overdue: bool,
    },
    /// Show one case.
    Show { id: u64 },
    /// Accept a case (or not, with --reject).
    Accept {
        id: u64,
        #[arg(long)]
        reject: bool,
        #[arg(long)]
        reason: String,
    },
    /// Approve a case (or deny it, with --deny).
    Decide {
        id: u64,
        #[arg(long)]
        deny: bool,
        #[arg(long)]
        reason: String,
    },
    /// Revoke an approval for a false commitment.
    Revoke {
        id: u64,
        #[arg(long)]
        reason: String,
    },
}

/// `credit-risk objection …`
#[derive(Subcommand, Debug)]
pub enum ObjectionCommand {
    /// Dispute a record (e.g. penalty/沪市监罚〔2026〕1号).
    File {
        #[arg(long)]
        uscc: String,
        #[arg(long)]
        record: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        evidence: Vec<String>,
    },
    /// Resolve: upheld, or --remove-listing to correct a disputed listing.
    Resolve {
        id: u64,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        remove_listing: bool,
    },
    /// List objections.
    List {
        #[arg(long)]
        uscc: Option<String>,
        #[arg(long)]
        open: bool,
    },
}

fn state_name(s: i32) -> &'static str {
    match pb::RepairState::try_from(s) {
        Ok(pb::RepairState::Submitted) => "SUBMITTED",
        Ok(pb::RepairState::Accepted) => "ACCEPTED",
        Ok(pb::RepairState::NotAccepted) => "NOT_ACCEPTED",
        Ok(pb::RepairState::Approved) => "APPROVED",
        Ok(pb::RepairState::Denied) => "DENIED",
        Ok(pb::RepairState::Revoked) => "REVOKED",
        _ => "?",
    }
}

fn case_json(c: &pb::RepairCase) -> serde_json::Value {
    serde_json::json!({
        "id": c.case_id, "uscc": c.uscc, "target": c.target_id, "state": state_name(c.state),
        "submitted_on": c.submitted_on, "due": c.due, "overdue": c.overdue,
        "eligibility": c.eligibility, "reason": c.reason,
        "history": c.history.iter().map(|h| serde_json::json!({
            "state": state_name(h.state), "on": h.on, "at": h.at, "by": h.by, "reason": h.reason,
        })).collect::<Vec<_>>(),
    })
}

fn print_cases(cases: &[pb::RepairCase], json: bool) {
    if json {
        let v: Vec<_> = cases.iter().map(case_json).collect();
        println!("{}", serde_json::Value::Array(v));
        return;
    }
    println!(
        "{:>6}  {:<18}  {:<12}  {:<10}  {:<8}  target",
        "id", "uscc", "state", "due", "overdue"
    );
    for c in cases {
        println!(
            "{:>6}  {:<18}  {:<12}  {:<10}  {:<8}  {}",
            c.case_id,
            c.uscc,
            state_name(c.state),
            c.due,
            if c.overdue { "yes" } else { "" },
            c.target_id
        );
    }
}

fn print_case(c: &pb::RepairCase, json: bool) {
    if json {
        println!("{}", case_json(c));
        return;
    }
    println!("case {} — {} — {}", c.case_id, c.uscc, state_name(c.state));
    println!("  target: {}", c.target_id);
    println!("  reason: {}", c.reason);
    for e in &c.eligibility {
        println!("  eligible: {e}");
    }
    if !c.due.is_empty() {
        println!(
            "  due: {}{}",
            c.due,
            if c.overdue { " (OVERDUE)" } else { "" }
        );
    }
    for h in &c.history {
        println!(
            "  {} {:<12} by {} — {}",
            h.on,
            state_name(h.state),
            h.by,
            h.reason
        );
    }
}

fn target(
    listing: Option<String>,
    penalty: Option<String>,
) -> Result<pb::RepairTarget, ClientError> {
    use pb::repair_target::Target;
    if let Some(p) = penalty {
        return Ok(pb::RepairTarget {
            target: Some(Target::PenaltyDecisionNumber(p)),
        });
    }
    let l = listing.ok_or("--listing or --penalty is required")?;
    let parts: Vec<&str> = l.split('/').collect();
    let [kind, date, reason] = parts[..] else {
        return Err(format!("--listing {l:?}: expected KIND/LISTED_ON/REASON").into());
    };
    let kind = pb::ListKind::from_str_name(&format!("LIST_KIND_{kind}"))
        .ok_or_else(|| format!("--listing: unknown kind {kind:?}"))?;
    let reason = pb::ListingReason::from_str_name(&format!("LISTING_REASON_{reason}"))
        .ok_or_else(|| format!("--listing: unknown reason {reason:?}"))?;
    Ok(pb::RepairTarget {
        target: Some(Target::Listing(pb::ListingKey {
            kind: kind as i32,
            listed_on: date.into(),
            reason: reason as i32,
        })),
    })
}

/// Runs a repair command.
pub async fn repair(addr: &str, cmd: RepairCommand, json: bool) -> Result<(), ClientError> {
    let mut c = CreditRepairServiceClient::with_interceptor(
        channel(addr).await?,
        TokenInterceptor::from_env(),
    );
    match cmd {
        RepairCommand::Submit {
            uscc,
            listing,
            penalty,
            reason,
            commitment,
            signed,
            evidence,
        } => {
            let r = c
                .submit_repair(pb::SubmitRepairRequest {
                    request_id: String::new(),
                    uscc,
                    target: Some(target(listing, penalty)?),
                    reason,
                    commitment,
                    commitment_signed: signed,
                    evidence,
                })
                .await?
                .into_inner();
            print_case(&r, json);
        }
        RepairCommand::List {
            state,
            uscc,
            overdue,
        } => {
            let state = match state {
                Some(s) => {
                    pb::RepairState::from_str_name(&format!("REPAIR_STATE_{}", s.to_uppercase()))
                        .ok_or_else(|| format!("--state {s:?} is not a repair state"))?
                        as i32
                }
                None => 0,
            };
            let r = c
                .list_repair_cases(pb::ListRepairCasesRequest {
                    state,
                    uscc: uscc.unwrap_or_default(),
                    overdue,
                    as_of: String::new(),
                })
                .await?
                .into_inner();
            print_cases(&r.cases, json);
        }
        RepairCommand::Show { id } => {
            let r = c
                .get_repair_case(pb::GetRepairCaseRequest { case_id: id })
                .await?
                .into_inner();
            print_case(&r, json);
        }
        RepairCommand::Accept { id, reject, reason } => {
            let r = c
                .accept_repair(pb::AcceptRepairRequest {
                    request_id: String::new(),
                    case_id: id,
                    accept: !reject,
                    reason,
                })
                .await?
                .into_inner();
            print_case(&r, json);
        }
        RepairCommand::Decide { id, deny, reason } => {
            let r = c
                .decide_repair(pb::DecideRepairRequest {
                    request_id: String::new(),
                    case_id: id,
                    approve: !deny,
                    reason,
                })
                .await?
                .into_inner();
            print_case(&r, json);
        }
        RepairCommand::Revoke { id, reason } => {
            let r = c
                .revoke_repair(pb::RevokeRepairRequest {
                    request_id: String::new(),
                    case_id: id,
                    reason,
                })
                .await?
                .into_inner();
            print_case(&r, json);
        }
    }
    Ok(())
}

fn print_objections(os: &[pb::Objection], json: bool) {
    if json {
        let v: Vec<_> = os
            .iter()
            .map(|o| {
                serde_json::json!({
                    "id": o.objection_id, "uscc": o.uscc, "record": o.record, "state": o.state,
                    "filed_on": o.filed_on, "decide_due": o.decide_due, "resolution": o.resolution,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return;
    }
    println!(
        "{:>6}  {:<18}  {:<10}  {:<10}  record / resolution",
        "id", "uscc", "state", "due"
    );
    for o in os {
        println!(
            "{:>6}  {:<18}  {:<10}  {:<10}  {} {}",
            o.objection_id, o.uscc, o.state, o.decide_due, o.record, o.resolution
        );
    }
}

/// Runs an objection command.
pub async fn objection(addr: &str, cmd: ObjectionCommand, json: bool) -> Result<(), ClientError> {
    use pb::resolve_objection_request::Correction;
    let mut c = CreditRepairServiceClient::with_interceptor(
        channel(addr).await?,
        TokenInterceptor::from_env(),
    );
    let o = match cmd {
        ObjectionCommand::File {
            uscc,
            record,
            reason,
            evidence,
        } => c
            .file_objection(pb::FileObjectionRequest {
                request_id: String::new(),
                uscc,
                record,
                reason,
                evidence,
            })
            .await?
            .into_inner(),
        ObjectionCommand::Resolve {
            id,
            reason,
            remove_listing,
        } => c
            .resolve_objection(pb::ResolveObjectionRequest {
                request_id: String::new(),
                objection_id: id,
                reason,
                correction: remove_listing.then_some(Correction::RemoveListing(true)),
            })
            .await?
            .into_inner(),
        ObjectionCommand::List { uscc, open } => {
            let r = c
                .list_objections(pb::ListObjectionsRequest {
                    uscc: uscc.unwrap_or_default(),
                    open_only: open,
                })
                .await?
                .into_inner();
            print_objections(&r.objections, json);
            return Ok(());
        }
    };
    print_objections(std::slice::from_ref(&o), json);
    Ok(())
}
