//! `credit-risk match`: classes and exemptions of a list of USCCs over one
//! MatchClassifications stream, as CSV or JSON lines.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::PathBuf,
};

use credit_risk::client::{channel, TokenInterceptor};

use super::{class_letter, read_usccs, runtime, CliError, CliResult, ServerArg};

/// Options of `credit-risk match`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// File with one USCC per line; "-" for standard input.
    file: String,
    #[command(flatten)]
    server: ServerArg,
    /// Exemptions as of (YYYY-MM-DD) [default: today].
    #[arg(long, default_value = "")]
    as_of: String,
    /// JSON lines instead of CSV.
    #[arg(long)]
    jsonl: bool,
    /// Output file [default: standard output].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `credit-risk match`.
pub fn run(a: Args) -> CliResult {
    let usccs = read_usccs(&a.file)?;
    let rt = runtime(0)?;
    let mut sink: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(BufWriter::new(File::create(p)?)),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let n = rt.block_on(match_file(
        &a.server.server,
        usccs,
        a.as_of,
        a.jsonl,
        &mut *sink,
    ))?;
    sink.flush()?;
    eprintln!("{n} USCCs answered");
    Ok(())
}

fn exemption_text(i: &credit_risk::proto::MatchItem) -> &str {
    if i.exempt {
        &i.exemption_reason
    } else {
        ""
    }
}

/// `credit-risk match`: classes of a list of USCCs over one MatchClassifications stream,
/// written as CSV or JSON lines to `out`. Returns the number of USCCs answered.
pub async fn match_file(
    addr: &str,
    usccs: Vec<String>,
    as_of: String,
    jsonl: bool,
    out: &mut dyn std::io::Write,
) -> Result<u64, CliError> {
    use credit_risk::proto::spot_check_service_client::SpotCheckServiceClient;
    let mut c = SpotCheckServiceClient::with_interceptor(
        channel(addr).await?,
        TokenInterceptor::from_env(),
    );
    let batches: Vec<credit_risk::proto::MatchRequest> = usccs
        .chunks(5000)
        .map(|b| credit_risk::proto::MatchRequest {
            usccs: b.to_vec(),
            as_of: as_of.clone(),
        })
        .collect();
    let mut stream = c
        .match_classifications(tokio_stream::iter(batches))
        .await?
        .into_inner();
    if !jsonl {
        writeln!(
            out,
            "uscc,found,class,score,run_id,exempt,exemption_reason,error"
        )?;
    }
    let mut n = 0u64;
    while let Some(m) = stream.message().await? {
        for i in &m.items {
            n += 1;
            let class = if i.found {
                class_letter(i.risk_class)
            } else {
                ""
            };
            if jsonl {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "uscc": i.uscc, "found": i.found, "class": class, "score": i.score,
                        "run_id": i.run_id, "exempt": i.exempt,
                        "exemption_reason": exemption_text(i), "error": i.error,
                    })
                )?;
            } else {
                writeln!(
                    out,
                    "{},{},{},{},{},{},{},{}",
                    i.uscc,
                    i.found,
                    class,
                    i.score,
                    i.run_id,
                    i.exempt,
                    exemption_text(i),
                    i.error.replace(',', ";")
                )?;
            }
        }
    }
    Ok(n)
}
