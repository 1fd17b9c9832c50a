//! `credit-risk classify`: one enterprise's class and the factors behind it.

use credit_risk::{
    client::{channel, TokenInterceptor},
    proto::classification_service_client::ClassificationServiceClient,
};

use super::{class_letter, runtime, CliError, CliResult, ServerArg};

/// Options of `credit-risk classify`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The USCC.
    uscc: String,
    #[command(flatten)]
    server: ServerArg,
    /// A scoring run: a retained complete run or the pending dry run [default: the
    /// current run].
    #[arg(long, conflicts_with = "as_of")]
    run: Option<u64>,
    /// The class as it stood on this day (YYYY-MM-DD): from the run current at the end
    /// of that day [default: today, the current run].
    #[arg(long, value_name = "DATE")]
    as_of: Option<String>,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
    /// The class and score only, without the factors (view CLASS: the server reads no
    /// records).
    #[arg(long)]
    brief: bool,
}

/// Runs `credit-risk classify`.
pub fn run(a: Args) -> CliResult {
    let req = credit_risk::proto::GetClassificationRequest {
        uscc: a.uscc,
        run_id: a.run.unwrap_or(0),
        as_of: a.as_of.unwrap_or_default(),
        view: if a.brief {
            credit_risk::proto::ClassificationView::Class as i32
        } else {
            credit_risk::proto::ClassificationView::Full as i32
        },
    };
    runtime(0)?.block_on(classify(&a.server.server, req, a.json))
}

/// `credit-risk classify`: one enterprise's class and factors.
pub async fn classify(
    addr: &str,
    req: credit_risk::proto::GetClassificationRequest,
    json: bool,
) -> Result<(), CliError> {
    let mut c = ClassificationServiceClient::with_interceptor(
        channel(addr).await?,
        TokenInterceptor::from_env(),
    );
    let r = c.get_classification(req).await?.into_inner();
    if json {
        println!("{}", classification_json(&r));
        return Ok(());
    }
    println!(
        "{}: class {} score {:.2} (run {}, model {}, as of {})",
        r.uscc,
        class_letter(r.risk_class),
        r.score,
        r.run_id,
        r.model_version,
        r.as_of
    );
    if !r.hard_rule.is_empty() {
        println!("  hard rule: {}", r.hard_rule);
    }
    if !r.rescored_cause.is_empty() {
        println!(
            "  re-scored {} after {}",
            super::instant_utc(r.rescored_at.as_ref()),
            r.rescored_cause
        );
    }
    for f in &r.factors {
        println!(
            "  {:+7.2}  {:<24} {} / {}  [{}]",
            f.points, f.code, f.description_zh, f.description_en, f.record
        );
    }
    Ok(())
}

/// A classification as JSON (proto field names).
pub fn classification_json(r: &credit_risk::proto::Classification) -> serde_json::Value {
    serde_json::json!({
        "uscc": r.uscc,
        "risk_class": class_letter(r.risk_class),
        "score": r.score,
        "model_version": r.model_version,
        "run_id": r.run_id,
        "as_of": r.as_of,
        "hard_rule": r.hard_rule,
        "rescored_cause": r.rescored_cause,
        "rescored_at": super::instant_utc(r.rescored_at.as_ref()),
        "factors_reproduce_score": r.factors_reproduce_score,
        "factors": r.factors.iter().map(|f| serde_json::json!({
            "code": f.code,
            "dimension": f.dimension,
            "description_zh": f.description_zh,
            "description_en": f.description_en,
            "points": f.points,
            "record": f.record,
        })).collect::<Vec<_>>(),
    })
}
