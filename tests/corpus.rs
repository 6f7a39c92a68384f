//! Conformance against real-world Kargo pipelines and AnalysisTemplates (the corpus that
//! `scripts/conformance CORPUS_DIR` names).
//!
//! The yardstick of issue #2: every current-format repository loads with the resource count
//! its SOURCES.tsv row says; genuinely invalid content gets exactly the diagnostics reviewed
//! below (each was checked by hand against the file); everything else gets no error. Legacy
//! repositories get one "old Kargo schema" error per old-schema resource.

mod support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use support::{corpus, validate_json};

/// Kinds barge loads (SOURCES.tsv lists every kind in a file, Secrets and Services too).
const LOADED_KINDS: &[&str] = &[
    "Project",
    "ProjectConfig",
    "ClusterConfig",
    "Warehouse",
    "Stage",
    "PromotionTask",
    "ClusterPromotionTask",
    "Freight",
    "CustomPromotionStep",
    "AnalysisTemplate",
    "ClusterAnalysisTemplate",
];

struct Row {
    local_path: String,
    format: String,
    kinds: Vec<(String, usize)>,
}

fn sources() -> Vec<Row> {
    let text = std::fs::read_to_string(corpus().join("SOURCES.tsv")).expect("SOURCES.tsv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("column {name}"))
    };
    let (lp, fmt, kinds) = (col("local_path"), col("format"), col("kinds"));
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let kinds = f[kinds]
                .split(',')
                .filter(|k| !k.is_empty())
                .map(|k| match k.rsplit_once('x') {
                    Some((kind, n)) if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => {
                        (kind.to_string(), n.parse().unwrap())
                    }
                    _ => (k.to_string(), 1),
                })
                .collect();
            Row {
                local_path: f[lp].to_string(),
                format: f[fmt].to_string(),
                kinds,
            }
        })
        .collect()
}

/// Expected resource counts per group (`kargo/NN-repo`, `kargo-legacy/NN-repo`, `analysis/FILE`).
fn expected_counts(rows: &[Row], top: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in rows.iter().filter(|r| r.local_path.starts_with(&format!("{top}/"))) {
        let group = r.local_path.split('/').take(2).collect::<Vec<_>>().join("/");
        let n: usize = r
            .kinds
            .iter()
            .filter(|(k, _)| LOADED_KINDS.contains(&k.as_str()))
            .map(|(_, n)| n)
            .sum();
        *out.entry(group).or_insert(0) += n;
    }
    out
}

fn error_codes(report: &Value) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for d in report["diagnostics"].as_array().expect("diagnostics") {
        if d["severity"] == "error" {
            *out.entry(d["code"].as_str().expect("code").to_string()).or_insert(0) += 1;
        }
    }
    out
}

/// The reviewed errors of the current-format repositories that have any. Every other
/// repository must load without an error.
fn known_errors() -> BTreeMap<&'static str, Vec<(&'static str, usize)>> {
    BTreeMap::from([
        // Seven pkg/server/testdata Stages in Kargo's pre-v0.6 schema.
        ("01-akuity-kargo", vec![("old-kargo-schema", 7)]),
        // Enterprise/custom steps (jira, gha-*, snow-*, tf-*, and custom ones
        // like kyverno-policy-check), NewestCommit, `args` set twice on one Stage, and a Helm
        // chart's templates. (response-time's `{{args.namespace}}` is declared by the other
        // templates its Stages verify with: fine.)
        (
            "06-akuity-sedemo-platform",
            vec![
                ("duplicate-key", 1),
                ("invalid-strategy", 1),
                ("not-yaml", 3),
                ("unknown-step", 19),
                // Its one wait-for-approval and two hcl-update steps are runnable now
                // (issue #20).
                ("unsupported-step", 39),
            ],
        ),
        // conftest / extract-images are undeclared; trivy-image is a CustomPromotionStep.
        (
            "13-jessesuen-kargo-custom-steps",
            vec![("unknown-step", 2), ("unsupported-step", 1)],
        ),
        // No Warehouse in the repository; `${GITOPS_REPO_URL}` never substituted.
        (
            "21-arober39-kargo-demo",
            vec![("unfilled-placeholder", 3), ("unresolved-warehouse", 3)],
        ),
        // helm-update-image (removed in v1.3) and git-overwrite (removed in v1.0).
        ("37-dhpup-kargo-helm", vec![("unsupported-step", 4)]),
        // Vars entries that set `name`/`value` twice, dropping a var.
        ("43-fuskovic-kargo-testing", vec![("duplicate-key", 4)]),
        (
            "53-jjshanks-kargo-poc",
            vec![("unfilled-placeholder", 7), ("unsupported-step", 3)],
        ),
        // http steps with insecureSkipTLSVerify: true, which barge cannot honour (the step
        // refused it when it ran; now validation says so).
        ("61-laprus-devops-config", vec![("unsupported-step-option", 3)]),
        // `promotionPolicies` twice in one ProjectConfig.
        ("63-martinvasseur-lab-helm-deployment", vec![("duplicate-key", 1)]),
        // Two different PromotionTasks named euler-sieve-step.
        ("65-martysohio-kargo-computer", vec![("duplicate-resource", 1)]),
        // `steps` twice in two PromotionTasks; Stages call a `promote` task no file defines.
        (
            "71-nikolinmajmari-odoo-saas",
            vec![("duplicate-key", 2), ("unresolved-task", 6)],
        ),
    ])
}

#[test]
fn every_current_repository_loads_with_its_resource_count() {
    let rows = sources();
    let expected = expected_counts(&rows, "kargo");
    assert!(
        expected.len() >= 50,
        "expected at least 50 repositories, found {}",
        expected.len()
    );
    let known = known_errors();
    let mut failures = Vec::new();
    for (group, count) in &expected {
        let repo = group.trim_start_matches("kargo/");
        let report = validate_json(&[&corpus().join(group)]);
        if report["resources"].as_u64() != Some(*count as u64) {
            failures.push(format!(
                "{group}: {} resources loaded, SOURCES.tsv lists {count}",
                report["resources"]
            ));
        }
        let got = error_codes(&report);
        let want: BTreeMap<String, usize> = known
            .get(repo)
            .map(|v| v.iter().map(|(c, n)| (c.to_string(), *n)).collect())
            .unwrap_or_default();
        if got != want {
            failures.push(format!("{group}: errors {got:?}, reviewed {want:?}"));
        }
    }
    for repo in known.keys() {
        assert!(
            expected.contains_key(&format!("kargo/{repo}")),
            "reviewed repository {repo} is not in the corpus"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn known_invalid_content_gets_the_precise_diagnostic() {
    let report = validate_json(&[&corpus().join("kargo/06-akuity-sedemo-platform")]);
    let find = |code: &str, file_part: &str| -> Value {
        report["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["code"] == code && d["file"].as_str().unwrap().contains(file_part))
            .cloned()
            .unwrap_or_else(|| panic!("no {code} in {file_part}"))
    };
    let d = find("invalid-strategy", "demo-auto-rollback__kargo__warehouse.yaml");
    assert_eq!((d["line"].as_u64(), d["column"].as_u64()), (Some(18), Some(32)));
    assert_eq!(d["kind"], "Warehouse");
    assert_eq!(d["namespace"], "demo-auto-rollback");
    assert!(d["message"].as_str().unwrap().contains("NewestCommit"));
    assert!(d["hint"].as_str().unwrap().contains("NewestFromBranch"));

    let report = validate_json(&[&corpus().join("kargo/53-jjshanks-kargo-poc")]);
    let d = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "unfilled-placeholder")
        .unwrap()
        .clone();
    assert!(d["message"].as_str().unwrap().contains("${"), "{d}");
    assert!(d["line"].as_u64().unwrap() > 0);

    // The one legacy Stage without freight sources.
    let report = validate_json(&[&corpus().join("kargo-legacy/09-alkon-final-project-devops-repo")]);
    let d = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "no-freight-sources")
        .expect("no-freight-sources")
        .clone();
    assert_eq!(d["kind"], "Stage");
    assert!(d["file"].as_str().unwrap().ends_with("kargo__stages__dev.yaml"), "{d}");
}

#[test]
fn legacy_repositories_get_one_old_schema_diagnostic_per_resource() {
    let rows = sources();
    let mut legacy_stages: BTreeMap<String, usize> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.format == "legacy") {
        let group = r.local_path.split('/').take(2).collect::<Vec<_>>().join("/");
        *legacy_stages.entry(group).or_insert(0) += r
            .kinds
            .iter()
            .filter(|(k, _)| k == "Stage")
            .map(|(_, n)| n)
            .sum::<usize>();
    }
    assert!(legacy_stages.keys().filter(|g| g.starts_with("kargo-legacy/")).count() >= 10);
    for (group, stages) in legacy_stages {
        let report = validate_json(&[&corpus().join(&group)]);
        let diags = report["diagnostics"].as_array().unwrap();
        let old: Vec<&Value> = diags.iter().filter(|d| d["code"] == "old-kargo-schema").collect();
        // A Stage whose old fields all sit beside their replacements (Kargo v0.6 to v0.9
        // Stages with requestedFreight and a leftover `subscriptions`) has unknown-field
        // warnings for them instead.
        let leftovers: BTreeSet<String> = diags
            .iter()
            .filter(|d| d["code"] == "unknown-field" && d["kind"] == "Stage")
            .filter(|d| {
                d["hint"]
                    .as_str()
                    .unwrap()
                    .contains("is Kargo's old schema, replaced by")
            })
            .map(|d| format!("{}/{}/{}", d["file"], d["namespace"], d["name"]))
            .filter(|stage| {
                !old.iter()
                    .any(|o| format!("{}/{}/{}", o["file"], o["namespace"], o["name"]) == *stage)
            })
            .collect();
        assert_eq!(
            old.len() + leftovers.len(),
            stages,
            "{group}: one old-schema diagnostic per legacy Stage, or leftover warnings"
        );
        // One per resource: no two on the same resource, and nothing else reported about them.
        let names: BTreeSet<String> = old
            .iter()
            .map(|d| format!("{}/{}/{}", d["file"], d["namespace"], d["name"]))
            .collect();
        assert_eq!(names.len(), old.len(), "{group}: duplicate old-schema diagnostics");
        for d in &old {
            assert!(d["message"].as_str().unwrap().contains("old Kargo schema"), "{d}");
            assert!(d["hint"].as_str().unwrap().contains("promotionTemplate"), "{d}");
            let resource = (&d["file"], &d["name"]);
            assert!(
                !diags.iter().any(|x| (&x["file"], &x["name"]) == resource
                    && x["code"] != "old-kargo-schema"
                    && x["kind"] == "Stage"),
                "{group}: a legacy Stage got more than the old-schema diagnostic"
            );
        }
    }
}

#[test]
fn every_analysis_template_loads_and_malformed_ones_are_rejected() {
    let rows = sources();
    let expected = expected_counts(&rows, "analysis");
    assert!(expected.len() >= 50);
    for (group, count) in expected {
        let path = corpus().join(&group);
        let report = validate_json(&[&path]);
        assert_eq!(report["resources"].as_u64(), Some(count as u64), "{group}");
        let errors: Vec<&Value> = report["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["severity"] == "error")
            .collect();
        let malformed = Path::new(&group)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .contains("malformed");
        if malformed {
            assert!(!errors.is_empty(), "{group} must be rejected");
            for e in &errors {
                assert!(
                    !e["message"].as_str().unwrap().is_empty() && !e["hint"].as_str().unwrap().is_empty(),
                    "{e}"
                );
            }
        } else {
            assert!(errors.is_empty(), "{group}: {errors:?}");
        }
    }
}

#[test]
fn the_malformed_template_names_the_bad_quantity() {
    let dir = corpus().join("analysis");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("malformed"))
        .unwrap();
    let report = validate_json(&[&file]);
    let d = &report["diagnostics"][0];
    assert_eq!(d["code"], "invalid-value");
    assert_eq!(d["line"], 18);
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("\"invalid\" is not a Kubernetes quantity"),
        "{d}"
    );
}
