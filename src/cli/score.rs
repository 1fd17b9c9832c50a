//! `credit-risk score`: batch scoring on a running server (RunBatchScoring) with a
//! progress bar.

use credit_risk::{
    client::{channel, TokenInterceptor},
    proto::classification_service_client::ClassificationServiceClient,
};

use super::{class_letter, progress_bar, runtime, CliError, CliResult, ServerArg};

/// Options of `credit-risk score`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    server: ServerArg,
    /// As-of date (YYYY-MM-DD) [default: today, Asia/Shanghai].
    #[arg(long)]
    as_of: Option<String>,
    /// Registered model version [default: the active model of --family].
    #[arg(long)]
    model: Option<String>,
    /// Model family whose active model scores: general, food, … [default: general].
    #[arg(long)]
    family: Option<String>,
    /// Score every family's active model in one pass (the nightly rescore): one run per
    /// family, the general one first.
    #[arg(long, conflicts_with_all = ["model", "family"])]
    all_families: bool,
    /// Score into a run that does not become current; prints the class transitions.
    #[arg(long)]
    dry_run: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `credit-risk score`.
pub fn run(a: Args) -> CliResult {
    runtime(0)?.block_on(score(
        &a.server.server,
        a.as_of.unwrap_or_default(),
        a.model.unwrap_or_default(),
        a.family.unwrap_or_default(),
        a.all_families,
        a.dry_run,
        a.json,
    ))
}

/// `credit-risk score`: runs batch scoring on the server with a progress bar and prints
/// the summary (and the class transitions).
pub async fn score(
    addr: &str,
    as_of: String,
    model_version: String,
    family: String,
    all_families: bool,
    dry_run: bool,
    json: bool,
) -> Result<(), CliError> {
    use credit_risk::proto::batch_scoring_event::Event;
    let mut c = ClassificationServiceClient::with_interceptor(
        channel(addr).await?,
        TokenInterceptor::from_env(),
    );
    let mut stream = c
        .run_batch_scoring(credit_risk::proto::RunBatchScoringRequest {
            request_id: String::new(),
            as_of,
            model_version,
            dry_run,
            family,
            all_families,
        })
        .await?
        .into_inner();
    let bar = progress_bar(0, "score");
    let mut summaries = 0;
    while let Some(ev) = stream.message().await? {
        match ev.event {
            Some(Event::Progress(p)) => {
                bar.set_length(p.total.max(p.processed));
                bar.set_position(p.processed);
                bar.set_message(format!("run {} {}", p.run_id, p.phase));
            }
            Some(Event::Done(r)) => {
                bar.finish_and_clear();
                let k = r.classes.unwrap_or_default();
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "run_id": r.run_id, "model_version": r.model_version,
                            "model_family": r.model_family, "as_of": r.as_of,
                            "current": r.current, "dry_run": r.dry_run, "enterprises": r.enterprises,
                            "seconds": r.seconds, "related": r.related,
                            "classes": {"A": k.a, "B": k.b, "C": k.c, "D": k.d},
                        })
                    );
                } else {
                    println!(
                        "run {} ({}, {} model {}, as of {}): {} enterprises in {:.1} s — A {} B {} C {} D {}; {} related{}",
                        r.run_id,
                        if r.current { "current" } else { "not current" },
                        r.model_family,
                        r.model_version,
                        r.as_of,
                        r.enterprises,
                        r.seconds,
                        k.a, k.b, k.c, k.d,
                        r.related,
                        if r.dry_run { " (dry run: ActivateScoringRun to use it)" } else { "" },
                    );
                }
                if let Some(t) = r.transitions.filter(|_| !json) {
                    println!("transitions from run {}:", t.baseline_run_id);
                    for cell in t.cells.iter().filter(|c| c.from != c.to) {
                        println!(
                            "  {} -> {}: {}",
                            class_letter(cell.from),
                            class_letter(cell.to),
                            cell.enterprises
                        );
                    }
                    for e in &t.examples {
                        let moved: Vec<String> = e
                            .moved
                            .iter()
                            .map(|m| format!("{} {:+.2}", m.code, m.points_after - m.points_before))
                            .collect();
                        println!(
                            "  e.g. {} {} -> {} ({:.2} -> {:.2}): {}",
                            e.uscc,
                            class_letter(e.from),
                            class_letter(e.to),
                            e.score_before,
                            e.score_after,
                            if !moved.is_empty() {
                                moved.join(", ")
                            } else if e.score_before == e.score_after {
                                "same score: the model's cut points place it in another class"
                                    .to_string()
                            } else {
                                "no indicator moved: the relation points or the general class \
                                 it reads changed"
                                    .to_string()
                            }
                        );
                    }
                }
                // With --all-families, one summary per run follows.
                summaries += 1;
            }
            None => {}
        }
    }
    if summaries == 0 {
        return Err("the server ended the stream without a summary".into());
    }
    Ok(())
}
