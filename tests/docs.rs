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

/// deploy/kubernetes manifests parse, and each document names its kind and name (they cannot
/// be applied here: no Kubernetes API server can be installed on the build machine).
#[test]
fn deploy_manifests_parse() {
    let dir = support::root().join("deploy/kubernetes");
    let mut kinds = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("deploy/kubernetes") {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in text.split("\n---\n") {
            let v: serde_json::Value = yaml_serde::from_str(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let kind = v["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: a document without kind", path.display()));
            assert!(
                v["metadata"]["name"].is_string(),
                "{}: {kind} without a name",
                path.display()
            );
            kinds.push(kind.to_string());
        }
    }
    for want in [
        "Deployment",
        "ClusterRole",
        "ClusterRoleBinding",
        "ServiceAccount",
        "Service",
    ] {
        assert!(
            kinds.iter().any(|k| k == want),
            "no {want} in deploy/kubernetes: {kinds:?}"
        );
    }
}

/// The scripts run on a minimal Debian (a container, as root, without sudo): each installs
/// the tools it calls when missing, and finds PostgreSQL whatever its major version.
#[test]
fn scripts_install_what_they_call_and_find_postgresql() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // scripts/test and scripts/conformance install through scripts/test-env.
    for script in ["scripts/test", "scripts/conformance"] {
        let text = std::fs::read_to_string(root.join(script)).unwrap();
        assert!(
            text.contains("\n. scripts/test-env\n"),
            "{script} does not source scripts/test-env"
        );
    }
    for script in ["scripts/demo", "scripts/test-env"] {
        let text = std::fs::read_to_string(root.join(script)).unwrap();
        for tool in ["git", "python3", "curl"] {
            let called = text
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .any(|l| l.contains(&format!("{tool} ")) && !l.contains("command -v"));
            if called || script == "scripts/demo" {
                assert!(
                    text.contains(&format!("command -v {tool} >/dev/null || need")),
                    "{script} calls {tool} without installing it when missing"
                );
            }
        }
        // sudo only when not root; the variable must reach apt-get through sudo.
        assert!(text.contains(r#"[ "$(id -u)" = 0 ] || sudo=sudo"#), "{script}");
        assert!(
            text.contains("$sudo env DEBIAN_FRONTEND=noninteractive apt-get install"),
            "{script}"
        );
        assert!(!text.contains("postgresql/15"), "{script} hard-codes PostgreSQL 15");
    }
    let support = std::fs::read_to_string(root.join("crates/barge-testkit/src/postgres.rs")).unwrap();
    assert!(
        !support.contains("postgresql/15"),
        "the tests' PostgreSQL starter hard-codes 15"
    );
}
