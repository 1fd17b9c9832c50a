//! `credit-risk check`: a stopped server's store checked — indexes against dossiers, the
//! audit chain, the seal (no acknowledged write lost), every value read once.

use std::{path::PathBuf, time::Duration};

use credit_risk::store::{guard_panics, Store};

use super::CliResult;

/// Options of `credit-risk check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The data directory of a stopped server.
    #[arg(long)]
    data_dir: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `credit-risk check`; fails when the audit chain is broken.
pub fn run(a: Args) -> CliResult {
    let store = Store::open(&a.data_dir, Default::default())?;
    // Every read of a damaged store is guarded: an error naming it, never a panic.
    let (enterprises, (events, broken), runs, (keys, bytes, digest)) =
        guard_panics(&a.data_dir, "checking it", || {
            Ok((
                store.check_indexes()?,
                store.verify_audit_chain()?,
                store.runs()?,
                store.content_digest()?,
            ))
        })?;
    store.close(Duration::from_secs(10))?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"enterprises": enterprises, "indexes_agree": true,
                "audit_events": events, "audit_chain_intact": broken.is_none(),
                "audit_chain_broken_at": broken.as_ref().map(|(seq, _)| seq),
                "audit_chain_problem": broken.as_ref().map(|(_, why)| why),
                "scoring_runs": runs.len(), "keys": keys, "bytes": bytes,
                "content_sha256": digest})
        );
    } else {
        println!(
            "{enterprises} enterprises, indexes agree; audit chain: {} ({events} events); {} scoring runs; {keys} keys ({bytes} bytes) read, content sha256 {digest}",
            match &broken {
                None => "intact".to_string(),
                Some((seq, why)) => format!("BROKEN at {seq}: {why}"),
            },
            runs.len()
        );
    }
    if broken.is_some() {
        return Err("audit chain broken".into());
    }
    Ok(())
}
