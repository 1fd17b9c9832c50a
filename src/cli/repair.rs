//! `credit-risk repair …` (operators): credit-repair cases — submit, list, show, accept,
//! decide, revoke — as readable tables or JSON, over the CreditRepairService.

use clap::Subcommand;
use credit_risk::{
    client::{channel, TokenInterceptor},
    proto::{self as pb, credit_repair_service_client::CreditRepairServiceClient},
};

use super::{runtime, CliError, CliResult};

/// Options of `credit-risk repair`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: RepairCommand,
    /// Server address.
    #[arg(
        long,
        global = true,
        env = "CREDIT_RISK_SERVER",
        default_value = "127.0.0.1:50051"
    )]
    server: String,
    /// JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

/// Runs `credit-risk repair`.
pub fn run(a: Args) -> CliResult {
    runtime(0)?.block_on(repair(&a.server, a.command, a.json))
}

/// `credit-risk repair …`
#[derive(Subcommand, Debug)]
pub enum RepairCommand {
    /// File a repair case.
    ///
    /// Example: credit-risk repair submit --uscc 91310115MA1K3BTP2B
    ///   --listing ABNORMAL_OPERATIONS/2026-08-03/UNREACHABLE_AT_ADDRESS
    ///   --reason "reachable again" --evidence "现场核查记录 doc://e/7"
    ///   --commitment "守信承诺书 doc://c/1" --signed
    Submit {
        /// The enterprise's USCC.
        #[arg(long)]
        uscc: String,
        /// A listing id KIND/LISTED_ON/REASON (as the credit report shows it).
        #[arg(long, conflicts_with = "penalty")]
        listing: Option<String>,
        /// A penalty decision number (early end of publicity).
        #[arg(long)]
        penalty: Option<String>,
        /// Why the record should be repaired (what was corrected).
        #[arg(long)]
        reason: String,
        /// The integrity commitment (text or document reference).
        #[arg(long)]
        commitment: String,
        /// The commitment is signed.
        #[arg(long)]
        signed: bool,
        /// Proof of the cure (text or document reference); repeatable. An abnormal
        /// listing for an unreachable address needs one.
        #[arg(long)]
        evidence: Vec<String>,
    },
    /// List cases.
    List {
        /// SUBMITTED, ACCEPTED, NOT_ACCEPTED, APPROVED, DENIED or REVOKED.
        #[arg(long)]
        state: Option<String>,
        /// Only this enterprise's cases.
        #[arg(long)]
        uscc: Option<String>,
        /// Only cases whose next step is late.
        #[arg(long)]
        overdue: bool,
    },
    /// Show one case.
    Show {
        /// The case id.
        id: u64,
    },
    /// Accept a case (or not, with --reject).
    Accept {
        /// The case id.
        id: u64,
        /// Do not accept it (NOT_ACCEPTED).
        #[arg(long)]
        reject: bool,
        /// Why (recorded in the case and the audit trail).
        #[arg(long)]
        reason: String,
    },
    /// Approve a case (or deny it, with --deny).
    Decide {
        /// The case id.
        id: u64,
        /// Deny it (DENIED) instead of approving.
        #[arg(long)]
        deny: bool,
        /// Why (recorded in the case and the audit trail).
        #[arg(long)]
        reason: String,
    },
    /// Revoke an approval for a false commitment.
    Revoke {
        /// The case id.
        id: u64,
        /// Why (recorded in the case and the audit trail).
        #[arg(long)]
        reason: String,
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
            "state": state_name(h.state), "on": h.on, "at": super::instant_utc(h.at.as_ref()), "by": h.by, "reason": h.reason,
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

fn target(listing: Option<String>, penalty: Option<String>) -> Result<pb::RepairTarget, CliError> {
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
async fn repair(addr: &str, cmd: RepairCommand, json: bool) -> Result<(), CliError> {
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
