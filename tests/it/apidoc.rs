//! The API reference is complete and current: every service, RPC, message, field, enum
//! and enum value of `creditrisk.v1` has a doc comment, and `docs/API.md` is exactly what
//! the generator makes of them. `CREDIT_RISK_UPDATE_DOCS=1 cargo test --test it apidoc`
//! rewrites the file.

use credit_risk::apidoc;

#[test]
fn every_element_is_documented() {
    let set = apidoc::descriptor_set().expect("descriptor set decodes");
    let missing = apidoc::undocumented(&set);
    assert!(
        missing.is_empty(),
        "{} proto elements lack a leading doc comment:\n{}",
        missing.len(),
        missing.join("\n")
    );
}

#[test]
fn api_reference_is_current() {
    let set = apidoc::descriptor_set().expect("descriptor set decodes");
    let fresh = apidoc::render(&set);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/API.md");
    if std::env::var_os("CREDIT_RISK_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &fresh).expect("write docs/API.md");
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == fresh,
        "docs/API.md is stale; regenerate with CREDIT_RISK_UPDATE_DOCS=1 cargo test --test it apidoc"
    );
}

#[test]
fn reference_covers_every_rpc() {
    let set = apidoc::descriptor_set().expect("descriptor set decodes");
    let text = apidoc::render(&set);
    let mut rpcs = 0;
    for file in set.file.iter().filter(|f| f.package() == apidoc::PACKAGE) {
        for s in &file.service {
            for m in &s.method {
                rpcs += 1;
                let heading = format!("### {}.{}\n", s.name(), m.name());
                assert!(text.contains(&heading), "missing {heading}");
            }
        }
    }
    assert!(rpcs > 20, "only {rpcs} RPCs found");
}
