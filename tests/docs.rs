//! The generated references in docs/reference are current: regenerate with
//! `BARGE_BLESS=1 cargo test --test docs` and review the diff.

mod support;

fn check(rel: &str, generated: &str) {
    let path = support::root().join(rel);
    if std::env::var_os("BARGE_BLESS").is_some() {
        std::fs::write(&path, generated).expect("write reference");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "{rel} is out of date: run `BARGE_BLESS=1 cargo test --test docs` and review the diff"
    );
}

#[test]
fn reference_docs_are_current() {
    check("docs/reference/resources.md", &barge_core::model::reference_markdown());
    check("docs/reference/diagnostics.md", &barge_core::diag::reference_markdown());
    check(
        "docs/reference/step-config.md",
        &barge_core::step_config::reference_markdown(),
    );
}
