//! `credit-risk draw`: plan a verifiable draw (commit) and, with a seed, draw it
//! (reveal). Stdout carries data only, in the proto JSON mapping: the plan when there
//! is no seed, else the receipt (unless `--out` writes it to a file); summaries go to
//! stderr.

use std::{fs::File, io::Write, path::PathBuf};

use credit_risk::client::{channel, TokenInterceptor};

use super::{class_letter, proto_json, runtime, CliError, CliResult, ServerArg};

/// Options of `credit-risk draw`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    server: ServerArg,
    /// Spot-check task id (part of the sampler seed).
    #[arg(long, default_value = "")]
    task: String,
    /// CLASS:RATIO (with a decimal point, e.g. C:0.3) or CLASS:COUNT (e.g. D:50);
    /// none = every class at the rules' default ratio (with --item: the largest default
    /// share among the items).
    #[arg(long = "stratum", value_name = "CLASS:SIZE")]
    strata: Vec<String>,
    /// Why the plan departs from the per-class sampling policy (ratios outside a
    /// class's range or falling with risk); recorded in the plan and audit trail.
    #[arg(long)]
    override_reason: Option<String>,
    /// Region code filter (repeatable; 310000 = the whole city).
    #[arg(long = "region")]
    regions: Vec<String>,
    /// Industry section filter (repeatable).
    #[arg(long = "section")]
    sections: Vec<String>,
    /// Stratify by this model family's classes (its scope is the population): general,
    /// food, … [default: general].
    #[arg(long, default_value = "")]
    family: String,
    /// A check item the task checks (repeatable; the codes SpotCheckService.ListCheckItems
    /// lists): only the enterprises an item applies to are drawn; items of several
    /// departments make a joint task.
    #[arg(long = "item", value_name = "CODE")]
    items: Vec<String>,
    /// Draw date [default: today].
    #[arg(long, default_value = "")]
    as_of: String,
    /// Reveal an existing plan instead of planning a new one.
    #[arg(long = "plan")]
    plan_id: Option<u64>,
    /// The seed; without it only the plan is made.
    #[arg(long)]
    seed: Option<String>,
    /// Also draw inspector teams of this size.
    #[arg(long)]
    team_size: Option<u32>,
    /// Write the receipt (JSON) here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write each stratum's frozen population here (one USCC per line), and each check
    /// item's (`plan-N-item-CODE.txt`).
    #[arg(long)]
    population_dir: Option<PathBuf>,
}

/// Runs `credit-risk draw`.
pub fn run(a: Args) -> CliResult {
    let mut strata = Vec::new();
    for s in &a.strata {
        let (c, size) = s
            .split_once(':')
            .ok_or_else(|| format!("--stratum {s:?}: expected CLASS:SIZE"))?;
        strata.push((c.to_string(), size.to_string()));
    }
    runtime(0)?.block_on(draw(
        &a.server.server,
        DrawArgs {
            task_id: a.task,
            strata,
            regions: a.regions,
            sections: a.sections,
            family: a.family,
            items: a.items,
            as_of: a.as_of,
            plan_id: a.plan_id,
            seed: a.seed,
            team_size: a.team_size,
            out: a.out,
            population_dir: a.population_dir,
            override_reason: a.override_reason.unwrap_or_default(),
        },
    ))
}

/// What `credit-risk draw` does.
#[derive(Clone, Debug, Default)]
pub struct DrawArgs {
    pub task_id: String,
    /// (class letter, ratio or count)
    pub strata: Vec<(String, String)>,
    pub regions: Vec<String>,
    pub sections: Vec<String>,
    /// The model family that stratifies (empty = general).
    pub family: String,
    /// Check item codes (empty = none).
    pub items: Vec<String>,
    pub as_of: String,
    /// Draw an existing plan instead of planning.
    pub plan_id: Option<u64>,
    pub seed: Option<String>,
    pub team_size: Option<u32>,
    pub out: Option<std::path::PathBuf>,
    pub population_dir: Option<std::path::PathBuf>,
    /// Why the plan departs from the per-class sampling policy (empty = it does not).
    pub override_reason: String,
}

fn class_pb_of(letter: &str) -> Result<i32, CliError> {
    use credit_risk::proto::RiskClass as R;
    Ok(match letter.trim().to_ascii_uppercase().as_str() {
        "A" => R::A,
        "B" => R::B,
        "C" => R::C,
        "D" => R::D,
        other => return Err(format!("--stratum: {other:?} is not a class A-D").into()),
    } as i32)
}

/// `credit-risk draw`: plan (commit) and, given a seed, draw (reveal); prints the plan
/// digests and the receipt; optionally writes the receipt and the frozen populations.
pub async fn draw(addr: &str, a: DrawArgs) -> Result<(), CliError> {
    use credit_risk::proto::{self as pb, spot_check_service_client::SpotCheckServiceClient};
    let mut c = SpotCheckServiceClient::with_interceptor(
        channel(addr).await?,
        TokenInterceptor::from_env(),
    )
    .max_decoding_message_size(super::MAX_REPLY_BYTES);
    let plan_id = match a.plan_id {
        Some(id) => id,
        None => {
            let mut strata = Vec::new();
            for (class, size) in &a.strata {
                let size = if size.contains('.') {
                    pb::stratum::Size::Ratio(
                        size.parse()
                            .map_err(|_| format!("--stratum: {size:?} is not a ratio"))?,
                    )
                } else {
                    pb::stratum::Size::Count(
                        size.parse()
                            .map_err(|_| format!("--stratum: {size:?} is not a count"))?,
                    )
                };
                strata.push(pb::Stratum {
                    risk_class: class_pb_of(class)?,
                    size: Some(size),
                });
            }
            let plan = c
                .plan_draw(pb::PlanDrawRequest {
                    request_id: String::new(),
                    task_id: a.task_id.clone(),
                    filter: Some(pb::CandidateFilter {
                        region_codes: a.regions.clone(),
                        industry_sections: a.sections.clone(),
                        ..Default::default()
                    }),
                    strata,
                    model_family: a.family.clone(),
                    as_of: a.as_of.clone(),
                    override_reason: a.override_reason.clone(),
                    check_items: a.items.clone(),
                })
                .await?
                .into_inner();
            // The plan as data on stdout (without a seed it is the command's answer), a
            // summary for people on stderr.
            if a.seed.is_none() {
                println!("{}", proto_json::to_json(&plan, "creditrisk.v1.DrawPlan")?);
            }
            eprintln!(
                "plan {} for task {:?} (run {}, as of {}):",
                plan.plan_id, plan.task_id, plan.run_id, plan.as_of
            );
            for s in &plan.strata {
                eprintln!(
                    "  class {}: population {} k {} digest {}",
                    class_letter(s.risk_class),
                    s.population,
                    s.k,
                    s.population_digest
                );
            }
            for i in &plan.check_items {
                if let Some(item) = &i.item {
                    eprintln!(
                        "  item {} ({}, {}): population {} digest {}",
                        item.code, item.name, item.department, i.population, i.population_digest
                    );
                }
            }
            plan.plan_id
        }
    };
    if let Some(dir) = &a.population_dir {
        std::fs::create_dir_all(dir)?;
        let mut stratum = 0u32;
        loop {
            let r = c
                .list_population(pb::ListPopulationRequest {
                    plan_id,
                    stratum,
                    exempted: false,
                    check_item: String::new(),
                })
                .await;
            let mut s = match r {
                Ok(s) => s.into_inner(),
                Err(e) if e.code() == tonic::Code::InvalidArgument => break,
                Err(e) => return Err(e.into()),
            };
            let path = dir.join(format!("plan-{plan_id}-stratum-{stratum}.txt"));
            write_population(&mut s, &path).await?;
            eprintln!(
                "population of stratum {stratum} written to {}",
                path.display()
            );
            stratum += 1;
        }
        // A plan naming check items: each item's population too.
        let plan = c
            .get_plan(pb::GetPlanRequest { plan_id })
            .await?
            .into_inner();
        for item in plan.check_items.iter().filter_map(|i| i.item.as_ref()) {
            let mut s = c
                .list_population(pb::ListPopulationRequest {
                    plan_id,
                    check_item: item.code.clone(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            let path = dir.join(format!("plan-{plan_id}-item-{}.txt", item.code));
            write_population(&mut s, &path).await?;
            eprintln!(
                "population of item {} written to {}",
                item.code,
                path.display()
            );
        }
    }
    let Some(seed) = &a.seed else {
        eprintln!("no --seed: the plan is committed; reveal later with `credit-risk draw --plan {plan_id} --seed S`");
        return Ok(());
    };
    let mut receipt = c
        .draw_sample(pb::DrawSampleRequest {
            // Derived from the content: re-running the same command (say after a lost
            // connection) gets the first receipt back; another seed for a drawn plan
            // gets the plan's "already drawn" answer.
            request_id: content_request_id("draw", plan_id, seed),
            plan_id,
            seed: seed.clone(),
        })
        .await?
        .into_inner();
    if let Some(n) = a.team_size {
        receipt = c
            .assign_inspectors(pb::AssignInspectorsRequest {
                request_id: content_request_id("assign", plan_id, &n.to_string()),
                plan_id,
                team_size: n,
                conflicts: vec![],
            })
            .await?
            .into_inner();
    }
    // The proto JSON of the receipt: VerifyDraw (and `credit-risk verify`) take it as is.
    let json = proto_json::to_json(&receipt, "creditrisk.v1.DrawReceipt")?;
    match &a.out {
        Some(path) => {
            std::fs::write(path, &json).map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!(
                "receipt of plan {plan_id} written to {} (check it: credit-risk verify {})",
                path.display(),
                path.display()
            );
        }
        None => println!("{json}"),
    }
    Ok(())
}

/// A request id derived from what the request does: `<what>-<plan>-<16 hex of SHA-256 of
/// detail>`, so the same command retried is a replay and a different one is not.
pub fn content_request_id(what: &str, plan_id: u64, detail: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(detail.as_bytes());
    format!("{what}-{plan_id}-{}", &hex::encode(h)[..16])
}

/// Writes a `ListPopulation` stream to `path`, one USCC per line.
pub async fn write_population(
    s: &mut tonic::Streaming<credit_risk::proto::PopulationBatch>,
    path: &std::path::Path,
) -> Result<(), CliError> {
    let mut f = std::io::BufWriter::new(File::create(path)?);
    while let Some(b) = s.message().await? {
        for u in b.usccs {
            writeln!(f, "{u}")?;
        }
    }
    std::io::Write::flush(&mut f)?;
    Ok(())
}
