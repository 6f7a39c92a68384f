//! One fixture pair per diagnostic code: `bad.yaml` triggers the code where its
//! `# expect: CODE at LINE:COL` header says, `good.yaml` (the fix) yields no diagnostic at all.
//! Every code barge defines must have a pair, so a new check cannot land untested.

mod support;

use barge_core::diag::Code;
use std::collections::BTreeSet;
use support::{root, validate_json};

fn fixtures() -> std::path::PathBuf {
    root().join("tests/fixtures/diagnostics")
}

#[test]
fn every_code_has_a_fixture_pair_and_no_fixture_is_orphaned() {
    let dirs: BTreeSet<String> = std::fs::read_dir(fixtures())
        .expect("fixtures")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let codes: BTreeSet<String> = Code::ALL.iter().map(|c| c.as_str().to_string()).collect();
    let missing: Vec<&String> = codes.difference(&dirs).collect();
    let orphaned: Vec<&String> = dirs.difference(&codes).collect();
    assert!(missing.is_empty(), "codes without fixtures: {missing:?}");
    assert!(orphaned.is_empty(), "fixtures for unknown codes: {orphaned:?}");
}

#[test]
fn each_bad_fixture_triggers_its_code_at_the_expected_position() {
    for code in Code::ALL {
        let file = fixtures().join(code.as_str()).join("bad.yaml");
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let header = text.lines().next().unwrap_or_default();
        let expect = header
            .strip_prefix("# expect: ")
            .unwrap_or_else(|| panic!("{}: no `# expect:` header", file.display()));
        let (want_code, position) = match expect.split_once(" at ") {
            Some((c, p)) => {
                let (l, c2) = p.split_once(':').expect("LINE:COL");
                (c, Some((l.parse::<u64>().unwrap(), c2.parse::<u64>().unwrap())))
            }
            None => (expect, None),
        };
        assert_eq!(
            want_code,
            code.as_str(),
            "{}: header names another code",
            file.display()
        );
        let report = validate_json(&[&file]);
        let diags = report["diagnostics"].as_array().unwrap();
        let hit = diags
            .iter()
            .find(|d| d["code"] == code.as_str())
            .unwrap_or_else(|| panic!("{code}: not reported; got {diags:?}"));
        if let Some((line, col)) = position {
            assert_eq!(
                (hit["line"].as_u64(), hit["column"].as_u64()),
                (Some(line), Some(col)),
                "{code}: position"
            );
        }
        assert_eq!(hit["severity"], code.default_severity().to_string(), "{code}: severity");
        assert!(!hit["message"].as_str().unwrap().is_empty(), "{code}: empty message");
        assert!(
            !hit["hint"].as_str().unwrap().is_empty(),
            "{code}: every diagnostic says how to fix it"
        );
        assert!(hit["file"].as_str().unwrap().ends_with("bad.yaml"));
        // Diagnostics about a resource name it.
        if !matches!(code, Code::YamlSyntax | Code::NotYaml | Code::NotAResource) {
            assert!(!hit["kind"].as_str().unwrap().is_empty(), "{code}: no resource kind");
        }
    }
}

#[test]
fn each_good_fixture_is_clean() {
    for code in Code::ALL {
        let file = fixtures().join(code.as_str()).join("good.yaml");
        let report = validate_json(&[&file]);
        assert_eq!(
            report["diagnostics"].as_array().map(Vec::len),
            Some(0),
            "{code}: {}",
            report["diagnostics"]
        );
        assert!(
            report["resources"].as_u64().unwrap() > 0,
            "{code}: the good fixture loads resources"
        );
    }
}

/// A pipeline that validates must run: every Kargo step barge has no runner for, and every
/// option a step cannot honour, is an error at its position.
#[test]
fn steps_and_values_barge_cannot_run_are_reported_where_they_are() {
    let stage = |steps: &str| {
        format!(
            "{}---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: app, namespace: shop}}\nspec:\n  subscriptions:\n    - image: {{repoURL: ghcr.io/example/app}}\n",
            barge_testkit::fixtures::dev_stage(steps)
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stage.yaml");
    let mut steps = String::new();
    for (name, _) in barge_core::steps::NOT_RUNNABLE {
        steps.push_str(&format!("        - uses: {name}\n"));
    }
    // Honoured since git-push has `force`: no diagnostic.
    steps.push_str("        - uses: git-push\n          config: {path: ./out, force: true}\n");
    steps.push_str("        - uses: http-download\n          config: {url: https://x.example.com/a, outPath: a, insecureSkipTLSVerify: true}\n");
    std::fs::write(&file, stage(&steps)).unwrap();
    let report = validate_json(&[&file]);
    let diags = report["diagnostics"].as_array().unwrap();
    let at = |line: u64| {
        diags
            .iter()
            .find(|d| d["line"] == line)
            .unwrap_or_else(|| panic!("nothing at line {line}: {diags:?}"))
    };
    for (i, (name, why)) in barge_core::steps::NOT_RUNNABLE.iter().enumerate() {
        let d = at(11 + i as u64);
        assert_eq!(
            (d["code"].as_str(), d["severity"].as_str(), d["column"].as_u64()),
            (Some("unsupported-step"), Some("error"), Some(17))
        );
        assert_eq!(
            d["message"],
            format!("barge cannot run \"{name}\" (a Kargo step): {why}")
        );
    }
    let n = barge_core::steps::NOT_RUNNABLE.len() as u64;
    let tls = at(14 + n);
    assert_eq!(
        (tls["code"].as_str(), tls["severity"].as_str()),
        (Some("unsupported-step-option"), Some("error"))
    );
    assert_eq!(
        tls["message"],
        "http-download: barge cannot honour `insecureSkipTLSVerify`"
    );
    assert_eq!(diags.len() as u64, n + 1, "{diags:?}");
}
