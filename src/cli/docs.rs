//! `credit-risk docs`: writes the generated reference pages — `API.md` from the proto doc
//! comments, `RULES.md` from the built-in rules — or, with `--check`, fails when the
//! pages on disk differ from what the code makes of them (a test runs that). Either way
//! it fails when a proto element lacks its doc comment.

use std::path::PathBuf;

use credit_risk::domain::ruleset::RuleBook;

use super::{apidoc, CliResult};

/// Options of `credit-risk docs`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory of the pages.
    #[arg(long, default_value = "docs")]
    dir: PathBuf,
    /// Compare instead of writing; fail naming every stale page.
    #[arg(long)]
    check: bool,
}

/// The generated pages: (file name, text).
fn pages() -> Result<Vec<(&'static str, String)>, prost::DecodeError> {
    let set = apidoc::descriptor_set()?;
    Ok(vec![
        ("API.md", apidoc::render(&set)),
        ("RULES.md", RuleBook::builtin().markdown()),
    ])
}

/// Runs `credit-risk docs`.
pub fn run(a: Args) -> CliResult {
    let missing = apidoc::undocumented(&apidoc::descriptor_set()?);
    if !missing.is_empty() {
        return Err(format!(
            "{} proto elements lack a leading doc comment: {}",
            missing.len(),
            missing.join(", ")
        )
        .into());
    }
    let mut stale = Vec::new();
    for (name, text) in pages()? {
        let path = a.dir.join(name);
        if a.check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(path.display().to_string());
            }
        } else {
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    if !stale.is_empty() {
        return Err(format!(
            "stale generated pages: {}; regenerate with `cargo run -- docs`",
            stale.join(", ")
        )
        .into());
    }
    Ok(())
}
