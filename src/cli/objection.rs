//! `credit-risk objection …`: objections to credit records — file, resolve, list.

use clap::Subcommand;
use credit_risk::{
    client::{channel, TokenInterceptor},
    proto::{self as pb, credit_repair_service_client::CreditRepairServiceClient},
};

use super::{runtime, CliError, CliResult};

/// Options of `credit-risk objection`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: ObjectionCommand,
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

/// Runs `credit-risk objection`.
pub fn run(a: Args) -> CliResult {
    runtime(0)?.block_on(objection(&a.server, a.command, a.json))
}

/// `credit-risk objection …`
#[derive(Subcommand, Debug)]
pub enum ObjectionCommand {
    /// Dispute a record (e.g. penalty/沪市监浦处〔2026〕1号).
    File {
        /// The enterprise's USCC.
        #[arg(long)]
        uscc: String,
        /// The record, as the credit report names it: penalty/<decision number>,
        /// listing/<KIND>/<LISTED_ON>/<REASON>, annual_report/<year>, inspection/<task>.
        #[arg(long)]
        record: String,
        /// What is wrong with the record.
        #[arg(long)]
        reason: String,
        /// Supporting evidence (text or document reference); repeatable.
        #[arg(long)]
        evidence: Vec<String>,
    },
    /// Resolve: upheld, or --remove-listing to correct a disputed listing.
    Resolve {
        /// The objection id.
        id: u64,
        /// The finding (recorded with the objection and in the audit trail).
        #[arg(long)]
        reason: String,
        /// Correct the record: remove the disputed listing (listings only).
        #[arg(long)]
        remove_listing: bool,
    },
    /// List objections.
    List {
        /// Only this enterprise's objections.
        #[arg(long)]
        uscc: Option<String>,
        /// Only open objections (not yet resolved).
        #[arg(long)]
        open: bool,
    },
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
async fn objection(addr: &str, cmd: ObjectionCommand, json: bool) -> Result<(), CliError> {
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
