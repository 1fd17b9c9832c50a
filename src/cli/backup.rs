//! `credit-risk backup`: asks a running server for a consistent online backup
//! (AdminService.Backup).

use credit_risk::{
    client::{channel, TokenInterceptor},
    proto::{admin_service_client::AdminServiceClient, BackupRequest},
};

use super::{runtime, spinner, CliResult, ServerArg};

/// Options of `credit-risk backup`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// File name under <data_dir>/backups on the server.
    #[arg(long)]
    name: String,
    #[command(flatten)]
    server: ServerArg,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `credit-risk backup`.
pub fn run(a: Args) -> CliResult {
    runtime(0)?.block_on(async move {
        let mut c = AdminServiceClient::with_interceptor(
            channel(&a.server.server).await?,
            TokenInterceptor::from_env(),
        );
        let spinner = spinner("backup");
        let r = c
            .backup(BackupRequest {
                name: a.name,
                ..Default::default()
            })
            .await;
        spinner.finish_and_clear();
        let r = r?.into_inner();
        if a.json {
            println!(
                "{}",
                serde_json::json!({
                    "path": r.path, "entries": r.entries, "bytes": r.bytes, "sha256": r.sha256,
                })
            );
        } else {
            println!(
                "backup written on the server: {} ({} entries, {} bytes, sha256 {})",
                r.path, r.entries, r.bytes, r.sha256
            );
        }
        Ok(())
    })
}
