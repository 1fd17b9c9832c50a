//! docs/RULES.md is exactly what the code makes of the built-in rules.
//! `CREDIT_RISK_UPDATE_DOCS=1 cargo test --test it rulesdoc` rewrites it.

use credit_risk::domain::ruleset::RuleBook;

#[test]
fn rules_page_is_current() {
    let fresh = RuleBook::builtin().markdown();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/RULES.md");
    if std::env::var_os("CREDIT_RISK_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &fresh).expect("write docs/RULES.md");
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == fresh,
        "docs/RULES.md is stale; regenerate with CREDIT_RISK_UPDATE_DOCS=1 cargo test --test it rulesdoc"
    );
}
