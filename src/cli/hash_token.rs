//! `credit-risk hash-token`: the SHA-256 of a bearer token, for the configuration.

use super::CliResult;

/// Options of `credit-risk hash-token`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The token (or "-" to read it from standard input).
    token: String,
}

/// Runs `credit-risk hash-token`.
pub fn run(a: Args) -> CliResult {
    let t = if a.token == "-" {
        let mut s = String::new();
        std::io::stdin().read_line(&mut s)?;
        s.trim().to_string()
    } else {
        a.token
    };
    println!("{}", credit_risk::server::auth::hash_token(&t));
    Ok(())
}
