//! `credit-risk restore`: a backup into a new data directory (offline), checked.

use std::{path::PathBuf, time::Duration};

use credit_risk::store::{backup, Store};

use super::CliResult;

/// Options of `credit-risk restore`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The backup file.
    #[arg(long)]
    from: PathBuf,
    /// A new, empty data directory.
    #[arg(long)]
    data_dir: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `credit-risk restore`.
pub fn run(a: Args) -> CliResult {
    let n = backup::restore(&a.from, &a.data_dir)?;
    let store = Store::open(&a.data_dir, Default::default())?;
    let check = store.check_indexes()?;
    let (events, broken) = store.verify_audit_chain()?;
    store.close(Duration::from_secs(10))?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"restored_entries": n, "data_dir": a.data_dir,
                "enterprises": check, "indexes_agree": true,
                "audit_events": events, "audit_chain_intact": broken.is_none()})
        );
    } else {
        println!(
            "restored {n} entries into {}: {check} enterprises, indexes agree; audit chain {} ({events} events)",
            a.data_dir.display(),
            if broken.is_none() { "intact" } else { "BROKEN" }
        );
    }
    Ok(())
}
