//! `credit-risk compact`: a stopped server's store rewritten into a fresh copy in key
//! order, checked (same content digest) and swapped in — after a bulk import, the same
//! data in about two thirds of the disk.

use std::path::PathBuf;

use credit_risk::store::{compact, StoreOptions};

use super::CliResult;

/// Options of `credit-risk compact`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The data directory of a stopped server.
    #[arg(long)]
    data_dir: PathBuf,
    /// Keep the store as it was, at DATA_DIR.before-compact (default: removed once the
    /// checked copy is in place).
    #[arg(long)]
    keep_old: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `credit-risk compact`.
pub fn run(a: Args) -> CliResult {
    let c = compact::compact(&a.data_dir, &StoreOptions::default(), a.keep_old)?;
    if a.json {
        println!("{}", serde_json::to_string(&c)?);
    } else {
        println!(
            "compacted {}: {} keys ({} bytes), content sha256 {} unchanged; disk {} → {} bytes ({:.2}×){}",
            a.data_dir.display(),
            c.keys,
            c.bytes,
            c.content_sha256,
            c.disk_before,
            c.disk_after,
            c.disk_after as f64 / c.disk_before.max(1) as f64,
            match &c.kept {
                Some(p) => format!("; the store before is kept at {}", p.display()),
                None => String::new(),
            }
        );
    }
    Ok(())
}
