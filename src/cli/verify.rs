//! `credit-risk verify`: re-checks a draw receipt — offline against the frozen
//! populations (their digests and the consistent-sampler draw, as a third party would
//! with the published package), and through the server's VerifyDraw.

use std::path::PathBuf;

use credit_risk::{
    client::{channel, TokenInterceptor},
    domain::sampler::{population_digest, Sampler},
    proto::{self as pb, spot_check_service_client::SpotCheckServiceClient},
};

use super::{class_letter, proto_json, runtime, CliResult, ServerArg};

/// Options of `credit-risk verify`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The receipt, as `credit-risk draw --out` wrote it (the proto JSON of a
    /// DrawReceipt).
    receipt: PathBuf,
    /// Re-check every stratum offline against its population in this directory
    /// (`plan-N-stratum-I.txt`, one USCC per line, as `draw --population-dir` writes),
    /// and for a plan naming check items each item's population (`plan-N-item-CODE.txt`)
    /// and the items of every selected enterprise.
    #[arg(long)]
    population_dir: Option<PathBuf>,
    /// Do not ask the server (only the offline re-check).
    #[arg(long, requires = "population_dir")]
    offline: bool,
    #[command(flatten)]
    server: ServerArg,
}

/// Runs `credit-risk verify`; fails when any check fails.
pub fn run(a: Args) -> CliResult {
    let text =
        std::fs::read_to_string(&a.receipt).map_err(|e| format!("{}: {e}", a.receipt.display()))?;
    let what = a.receipt.display().to_string();
    let r: pb::DrawReceipt = proto_json::from_json(&text, "creditrisk.v1.DrawReceipt", &what)?;
    let mut failed = Vec::new();
    if let Some(dir) = &a.population_dir {
        for (i, s) in r.strata.iter().enumerate() {
            let path = dir.join(format!("plan-{}-stratum-{i}.txt", r.plan_id));
            let pop = std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "{}: {e} (stratum {i} of plan {})",
                    path.display(),
                    r.plan_id
                )
            })?;
            let mut ids: Vec<&str> = pop.split_whitespace().collect();
            ids.sort_unstable();
            let class = class_letter(s.risk_class);
            if population_digest(ids.iter().copied()) != s.population_digest {
                failed.push(format!(
                    "stratum {i} (class {class}): {} does not hash to the receipt's population_digest",
                    path.display()
                ));
                continue;
            }
            let k = usize::try_from(s.k).unwrap_or(usize::MAX);
            let ours: Vec<(String, String)> = Sampler::new(&r.sampler_seed)
                .sample(ids.iter().copied(), k)
                .into_iter()
                .map(|(t, u)| (u.to_string(), t.as_string()))
                .collect();
            let theirs: Vec<(String, String)> = s
                .selected
                .iter()
                .map(|x| (x.uscc.clone(), x.ticket.clone()))
                .collect();
            if ours == theirs {
                eprintln!(
                    "stratum {i} (class {class}): population of {} matches its digest; the draw gives the same {k}",
                    ids.len()
                );
            } else {
                failed.push(format!(
                    "stratum {i} (class {class}): consistent-sampler-v1 with seed {:?} selects differently",
                    r.sampler_seed
                ));
            }
        }
    }
    if let Some(dir) = &a.population_dir {
        failed.extend(check_items(&r, dir)?);
    }
    if !a.offline {
        let verdict = runtime(0)?.block_on(async {
            let mut c = SpotCheckServiceClient::with_interceptor(
                channel(&a.server.server).await?,
                TokenInterceptor::from_env(),
            )
            .max_decoding_message_size(super::MAX_REPLY_BYTES);
            let v = c
                .verify_draw(pb::VerifyDrawRequest {
                    receipt: Some(r.clone()),
                })
                .await?
                .into_inner();
            Ok::<_, super::CliError>(v)
        })?;
        if verdict.matches {
            eprintln!("VerifyDraw: the server recomputes the same receipt");
        } else {
            failed.push(format!("VerifyDraw: {}", verdict.first_difference));
        }
    }
    if failed.is_empty() {
        println!("receipt of plan {} verified", r.plan_id);
        Ok(())
    } else {
        Err(failed.join("; ").into())
    }
}

/// The offline re-check of a receipt's check items: each item's population file hashes
/// to its digest, and each selected enterprise names exactly the items whose population
/// holds it (in plan order). Returns the failures.
fn check_items(r: &pb::DrawReceipt, dir: &std::path::Path) -> Result<Vec<String>, String> {
    let mut failed = Vec::new();
    let mut populations: Vec<(String, std::collections::HashSet<String>)> = Vec::new();
    for (i, planned) in r.check_items.iter().enumerate() {
        let code = planned
            .item
            .as_ref()
            .map(|x| x.code.clone())
            .unwrap_or_default();
        let path = dir.join(format!("plan-{}-item-{code}.txt", r.plan_id));
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{}: {e} (check item {code} of plan {})",
                path.display(),
                r.plan_id
            )
        })?;
        let mut ids: Vec<&str> = text.split_whitespace().collect();
        ids.sort_unstable();
        if population_digest(ids.iter().copied()) != planned.population_digest {
            failed.push(format!(
                "check_items[{i}] ({code}): {} does not hash to the receipt's population_digest",
                path.display()
            ));
        } else {
            eprintln!(
                "check item {code}: population of {} matches its digest",
                ids.len()
            );
        }
        populations.push((code, ids.into_iter().map(String::from).collect()));
    }
    if populations.is_empty() {
        return Ok(failed);
    }
    for (i, s) in r.strata.iter().enumerate() {
        for (j, sel) in s.selected.iter().enumerate() {
            let want: Vec<&String> = populations
                .iter()
                .filter(|(_, p)| p.contains(&sel.uscc))
                .map(|(c, _)| c)
                .collect();
            if sel.check_items.iter().collect::<Vec<_>>() != want {
                failed.push(format!(
                    "strata[{i}].selected[{j}] ({}): names items {:?}, their populations give {want:?}",
                    sel.uscc, sel.check_items
                ));
            }
        }
    }
    if failed.is_empty() {
        eprintln!("every selected enterprise names the items whose population holds it");
    }
    Ok(failed)
}
