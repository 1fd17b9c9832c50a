//! The `credit-risk` binary: the server, the operators' and schedulers' client commands,
//! the data generator and the benchmarks. Each subcommand is a module of `src/cli/` or
//! `src/bench/` with its `Args` and `run`; this file only lists them.

mod bench;
mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// jemalloc: it returns to the system what a rescore frees, where mimalloc kept up to half
/// a gibibyte more at 3.5 M (BENCHMARKS.md). (The `system-allocator` feature leaves the
/// system's, for heap profilers.)
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main` (a NUL-terminated C string): one arena for
/// every thread instead of four per CPU, so memory one thread frees (a rescore's scan
/// threads, the writer, the RPC workers) is reused by the next instead of held by an
/// arena no one else allocates from — the 3.5 M import and three rescores peaked at
/// 1,224 MiB instead of 1,638 (BENCHMARKS.md, "One arena"). The environment's
/// `_RJEM_MALLOC_CONF` is read after it and overrides it (e.g. `narenas:8` on a machine
/// with many cores serving many requests at once).
#[cfg(not(feature = "system-allocator"))]
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8] = b"narenas:1\0";

/// Enterprise credit-risk classification service for market regulators.
#[derive(Parser)]
#[command(
    version,
    about,
    long_about = None,
    after_help = "Start here:\n  credit-risk serve --demo        a server with a generated city on 127.0.0.1:50051\n  credit-risk classify USCC       ask it for a class\n  credit-risk help <COMMAND>      each command's options and an example"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gRPC server on the embedded store.
    ///
    /// Example: credit-risk serve --demo
    Serve(cli::serve::Args),
    /// Write a deterministic synthetic registry (length-delimited ImportRecord messages).
    ///
    /// Example: credit-risk generate --enterprises 100000 --seed 42 --out city.bin
    Generate(cli::generate::Args),
    /// Stream a generated file into a running server (ImportRecords).
    ///
    /// Example: credit-risk import city.bin --server 127.0.0.1:50051
    Import(cli::import::Args),
    /// Bounded load test of GetEnterprise against a running server (loopback).
    ///
    /// Example: credit-risk load --sample city.bin --clients 64 --seconds 10
    Load(bench::load::Args),
    /// Run batch scoring on a running server (RunBatchScoring) with a progress bar.
    ///
    /// Example: credit-risk score --server 127.0.0.1:50051 --as-of 2026-10-01
    Score(cli::score::Args),
    /// Show one enterprise's class and the factors behind it.
    ///
    /// Example: credit-risk classify 91310115MA1K3YJ12X --server 127.0.0.1:50051
    Classify(cli::classify::Args),
    /// Classes and exemptions of a list of USCCs (MatchClassifications), as CSV or JSONL.
    ///
    /// Example: credit-risk match targets.txt > classes.csv
    Match(cli::matching::Args),
    /// Plan a verifiable draw (commit) and, with --seed, draw it (reveal); prints the
    /// receipt as JSON.
    ///
    /// Without --stratum every class is planned at the default ratio of the rules in
    /// force (A 3 %, B 10 %, C 30 %, D 80 % in Shanghai; see docs/RULES.md).
    ///
    /// Example: credit-risk draw --task 2026-001 --seed 8412
    Draw(cli::draw::Args),
    /// Re-check a draw receipt: offline against the frozen populations (digests and the
    /// consistent-sampler draw) and through the server's VerifyDraw.
    ///
    /// Example: credit-risk verify receipt.json --population-dir pops/
    Verify(cli::verify::Args),
    /// Coordinate a federated joint draw across instances (each its own server and
    /// store): collect their plans, have each commit to the manifest, reveal the seed,
    /// merge their candidates and have each record its share; writes the joint receipt.
    ///
    /// Example: credit-risk joint-draw --participant shanghai=127.0.0.1:50051/3 --participant suzhou=127.0.0.1:50061/1 --seed 20261203 --out joint.json --population-dir joint-pops
    JointDraw(cli::joint::Args),
    /// Re-check a joint receipt offline: the manifest digest, every instance's population
    /// against its committed digest, and the draw over their union.
    ///
    /// Example: credit-risk verify-joint joint.json --population-dir joint-pops
    VerifyJoint(cli::joint::VerifyArgs),
    /// Credit-repair cases (operators): submit, list, show, accept, decide, revoke.
    ///
    /// Example: credit-risk repair list --overdue
    Repair(cli::repair::Args),
    /// Objections to credit records: file, resolve, list.
    ///
    /// Example: credit-risk objection list --uscc 91310115MA1K3BTP2B
    Objection(cli::objection::Args),
    /// Charts of the current scoring run (SVG + PNG) or an HTML credit report.
    ///
    /// Examples:
    ///   credit-risk report run --out charts/
    ///   credit-risk report enterprise 91310115MA1K3BTP2B --out report.html
    Report(cli::report::Args),
    /// Statistics: annual-report filing, spot checks, and whether the model's classes
    /// predict what inspectors find (StatisticsService).
    ///
    /// Examples:
    ///   credit-risk stats filing --by-region
    ///   credit-risk stats spot --from 2026-01 --by-month
    ///   credit-risk stats model --compare 7
    Stats(cli::stats::Args),
    /// Ask a running server for a consistent online backup (AdminService.Backup).
    ///
    /// Example: credit-risk backup --name nightly-2026-11-25.crbk
    Backup(cli::backup::Args),
    /// Restore a backup into a new data directory (offline; then `serve --data-dir`).
    ///
    /// Example: credit-risk restore --from nightly.crbk --data-dir /srv/credit-risk-restored
    Restore(cli::restore::Args),
    /// Check a stopped server's store: indexes against dossiers, the audit chain, the seal
    /// (no acknowledged write lost), and every value read once (content digest).
    ///
    /// Example: credit-risk check --data-dir credit-risk-data
    Check(cli::check::Args),
    /// Compact a stopped server's store: rewrite it into a fresh copy in key order, check
    /// the copy's content digest against the store's, swap it in (after a bulk import:
    /// the same data in about two thirds of the disk).
    ///
    /// Example: credit-risk compact --data-dir credit-risk-data
    Compact(cli::compact::Args),
    /// Print the SHA-256 of a bearer token, for `[[server.auth.tokens]] sha256 = …`.
    ///
    /// Example: openssl rand -hex 32 | tee token.txt | credit-risk hash-token -
    HashToken(cli::hash_token::Args),
    /// Write the generated reference pages (docs/API.md, docs/RULES.md), or check them.
    ///
    /// Example: credit-risk docs --check
    Docs(cli::docs::Args),
    /// Benchmark the audit trail's cost: durable RecordPenalty writes with and without it,
    /// alternating, in one run (temporary stores; no network). Prints JSON.
    ///
    /// Example: credit-risk bench-audit --writes 20000 --clients 16
    BenchAudit(bench::audit::Args),
    /// Benchmark early warning on a generated city (real server, loopback): the cost of
    /// raising alerts in a batch run, the same run with N WatchAlerts subscribers, the
    /// delivery lag, and a subscriber that resumes half-way; prints JSON.
    ///
    /// Example: credit-risk bench-alerts --enterprises 1000000 --subscribers 100
    BenchAlerts(bench::alerts::Args),
    /// Benchmark the SpotCheckService of a running server on a scored store: match
    /// stream, BatchMatch, candidate pools, plan + draw, unary vs a bare echo; JSON.
    ///
    /// Example: credit-risk bench-spot --sample bench-data/city-3500000-42.bin --seconds 10
    BenchSpot(bench::spot::Args),
    /// Benchmark (offline, on a stopped server's data dir): a bare scan of the dossiers,
    /// then a full batch scoring run in process; prints JSON.
    ///
    /// Example: credit-risk bench-scoring --data-dir bench-data/store-3500000 --dry-run
    BenchScoring(bench::scoring::Args),
    /// The whole benchmark in one run, each figure beside a baseline measured in the same
    /// run: generate (cached) → import → batch scoring → unary loads vs a bare echo →
    /// match stream vs a bare streaming echo → pools and draw → bare sled scan and copy.
    /// Prints a table; writes JSON to DATA/bench-N.json. Minutes at Shanghai scale.
    ///
    /// Example: credit-risk bench --scale shanghai --clients 64 --seconds 10
    Bench(bench::suite::Args),
    /// Serve the bare benchmark echo on a loopback port for a bounded time, for `load
    /// --rpc echo-served`: the baseline with its server in a process of its own.
    ///
    /// Example: credit-risk bench-echo --listen 127.0.0.1:50061 --seconds 600
    #[command(hide = true)]
    BenchEcho(bench::load::EchoArgs),
    /// Print a shell completion script.
    ///
    /// Example: credit-risk completions bash > /etc/bash_completion.d/credit-risk
    Completions(cli::completions::Args),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Serve(a) => cli::serve::run(a),
        Command::Generate(a) => cli::generate::run(a),
        Command::Import(a) => cli::import::run(a),
        Command::Load(a) => bench::load::run(a),
        Command::Score(a) => cli::score::run(a),
        Command::Classify(a) => cli::classify::run(a),
        Command::Match(a) => cli::matching::run(a),
        Command::Draw(a) => cli::draw::run(a),
        Command::Repair(a) => cli::repair::run(a),
        Command::Objection(a) => cli::objection::run(a),
        Command::Report(a) => cli::report::run(a),
        Command::Stats(a) => cli::stats::run(a),
        Command::Verify(a) => cli::verify::run(a),
        Command::JointDraw(a) => cli::joint::run(a),
        Command::VerifyJoint(a) => cli::joint::verify(a),
        Command::Backup(a) => cli::backup::run(a),
        Command::Restore(a) => cli::restore::run(a),
        Command::Check(a) => cli::check::run(a),
        Command::Compact(a) => cli::compact::run(a),
        Command::HashToken(a) => cli::hash_token::run(a),
        Command::Docs(a) => cli::docs::run(a),
        Command::BenchAlerts(a) => bench::alerts::run(a),
        Command::BenchAudit(a) => bench::audit::run(a),
        Command::BenchSpot(a) => bench::spot::run(a),
        Command::BenchScoring(a) => bench::scoring::run(a),
        Command::Bench(a) => bench::suite::run(a),
        Command::BenchEcho(a) => bench::load::run_echo(a),
        Command::Completions(a) => cli::completions::run(a, Cli::command()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<cli::PartlyRefused>() => {
            eprintln!("error: {e}");
            ExitCode::from(cli::EXIT_PARTLY_REFUSED)
        }
        Err(e) => {
            eprintln!("error: {}", cli::explain(&*e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Issue 20, item 3: every command, flag and argument says what it is for.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in c.get_arguments() {
                let id = a.get_id().as_str();
                if a.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for s in c.get_subcommands() {
                if s.get_name() == "help" {
                    continue;
                }
                if s.get_about().is_none() && s.get_long_about().is_none() {
                    missing.push(format!("{path} {} (the command)", s.get_name()));
                }
                walk(s, &format!("{path} {}", s.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "credit-risk", &mut missing);
        assert!(missing.is_empty(), "without help: {missing:#?}");
    }
}
