//! `credit-risk generate`: a deterministic synthetic registry (length-delimited
//! ImportRecord messages) for `import`, demos and benchmarks.

use std::{
    fs::File,
    io::{BufWriter, Write},
};

use credit_risk::{
    domain::Date,
    synthetic::{generate, Profile},
};

use super::{progress_bar, CliResult};

/// Options of `credit-risk generate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Number of market entities.
    #[arg(long, default_value_t = 10_000)]
    enterprises: u64,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The date the data describes (YYYY-MM-DD).
    #[arg(long, default_value = "2026-10-01")]
    as_of: String,
    /// Output file; "-" for standard output.
    #[arg(long, default_value = "-")]
    out: String,
}

/// Runs `credit-risk generate`.
pub fn run(a: Args) -> CliResult {
    let profile = Profile {
        enterprises: a.enterprises,
        seed: a.seed,
        as_of: Date::parse("--as-of", &a.as_of)?,
    };
    let bar = progress_bar(a.enterprises, "generate");
    let mut sink: Box<dyn Write> = if a.out == "-" {
        Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout().lock()))
    } else {
        Box::new(BufWriter::with_capacity(1 << 20, File::create(&a.out)?))
    };
    let counts = generate(&profile, &mut sink, |n| bar.set_position(n))?;
    sink.flush()?;
    bar.finish_and_clear();
    eprintln!(
        "generated {} records: {} enterprises, {} penalties, {} annual reports, {} listings, {} inspections, {} commitments, {} quality samplings, {} complaint months",
        counts.total(),
        counts.enterprises,
        counts.penalties,
        counts.annual_reports,
        counts.listings,
        counts.inspections,
        counts.commitments,
        counts.samplings,
        counts.complaint_months
    );
    Ok(())
}
