//! The generated reference pages are current: `docs/API.md` is exactly what the generator
//! makes of the proto doc comments and `docs/RULES.md` of the built-in rules
//! (`credit-risk docs --check`, run as a user would). `CREDIT_RISK_UPDATE_DOCS=1 cargo
//! test --test it docs` rewrites them, as `cargo run -- docs` does.

#[test]
fn generated_pages_are_current() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_credit-risk"));
    cmd.arg("docs").arg("--dir").arg(&dir);
    if std::env::var_os("CREDIT_RISK_UPDATE_DOCS").is_none() {
        cmd.arg("--check");
    }
    let out = cmd.output().expect("run credit-risk docs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
