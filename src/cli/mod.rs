//! The `credit-risk` command line: one module per subcommand, each with its `Args` and
//! `run`, and the few helpers they share (runtime, logging, progress bars, USCC lists).
//! The benchmarks' commands are in `src/bench/`.

pub mod apidoc;
pub mod backup;
pub mod check;
pub mod classify;
pub mod compact;
pub mod completions;
pub mod docs;
pub mod draw;
pub mod generate;
pub mod hash_token;
pub mod import;
pub mod joint;
pub mod matching;
pub mod objection;
pub mod proto_json;
pub mod repair;
pub mod report;
pub mod report_text;
pub mod restore;
pub mod score;
pub mod serve;
pub mod stats;
pub mod verify;

use std::io::Read;

use indicatif::{ProgressBar, ProgressStyle};
use tracing_subscriber::EnvFilter;

/// The error of a command: printed as `error: …` ([`explain`]) with exit status 1, or 3
/// for [`PartlyRefused`].
pub type CliError = Box<dyn std::error::Error + Send + Sync>;

/// Exit status of a command that ran but whose input the server partly refused (an
/// import with rejected records). The others: 0 success, 1 error, 2 usage (from clap).
pub const EXIT_PARTLY_REFUSED: u8 = 3;

/// A command that ran to the end, but the server refused some of its records: exit
/// status [`EXIT_PARTLY_REFUSED`].
#[derive(Debug)]
pub struct PartlyRefused(pub String);

impl std::fmt::Display for PartlyRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PartlyRefused {}

use credit_risk::server::metrics::code_name;

/// A command's error as a person should read it: a status from the server as `CODE:
/// message` (with what to do for the common ones), anything else with its causes.
pub fn explain(e: &(dyn std::error::Error + 'static)) -> String {
    if let Some(s) = e.downcast_ref::<tonic::Status>() {
        let hint = match s.code() {
            tonic::Code::Unauthenticated => {
                " — set $CREDIT_RISK_TOKEN to a token the server's [server.auth] knows"
            }
            tonic::Code::PermissionDenied => " — this token's role or regions do not cover it",
            tonic::Code::Unavailable if std::error::Error::source(s).is_some() => {
                " — the connection failed: is the server running? set --server or $CREDIT_RISK_SERVER"
            }
            _ => "",
        };
        return format!("{}: {}{hint}", code_name(s.code()), s.message());
    }
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
        next = cause.source();
    }
    out
}

/// What a command returns.
pub type CliResult = Result<(), CliError>;

/// The server a client command talks to.
#[derive(clap::Args, Debug)]
pub struct ServerArg {
    /// Server address.
    #[arg(long, env = "CREDIT_RISK_SERVER", default_value = "127.0.0.1:50051")]
    pub server: String,
}

/// Largest reply the command line accepts: a city-wide receipt or plan is tens of
/// megabytes (the server's own limit is `server.max_message_bytes`).
pub const MAX_REPLY_BYTES: usize = 512 * 1024 * 1024;

/// A tokio runtime with `workers` threads (0: one per core).
pub fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        b.worker_threads(workers);
    }
    b.enable_all().build()
}

/// Logs to standard error, filtered by `$RUST_LOG` or else `filter`: colours only on a
/// terminal (a redirected log has no ANSI codes), JSON lines with `json` (and then no
/// plain-text warnings beside them: the server's loud warnings go to the log only).
pub fn init_logging(filter: &str, json: bool) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    credit_risk::server::plain_warnings(!json);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// A progress bar on a terminal, hidden in pipes.
pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {wide_bar} {percent:>3}% eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb.set_message(what.to_string());
    pb
}

/// A spinner with the elapsed time for an operation of unknown length, on a terminal
/// only (hidden in pipes, like every bar).
pub fn spinner(what: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed_precise}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(what.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

/// An API instant as RFC 3339 in UTC with milliseconds, as the proto JSON mapping writes
/// it; empty when absent.
pub fn instant_utc(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}
/// The letter of a class, `?` for none.
pub fn class_letter(c: i32) -> &'static str {
    match credit_risk::proto::RiskClass::try_from(c) {
        Ok(credit_risk::proto::RiskClass::A) => "A",
        Ok(credit_risk::proto::RiskClass::B) => "B",
        Ok(credit_risk::proto::RiskClass::C) => "C",
        Ok(credit_risk::proto::RiskClass::D) => "D",
        _ => "?",
    }
}

/// Reads USCCs, one per line (blank lines and `#` comments skipped), from a file or `-`.
pub fn read_usccs(path: &str) -> Result<Vec<String>, CliError> {
    let text = if path == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
