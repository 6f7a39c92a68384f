//! Every `${{ }}` expression in the corpus's promotion templates evaluates.
//!
//! For each Stage of each current-format repository: its template is inflated (tasks
//! included), Freight is made up from the Stage's Warehouses (each image subscription at tag
//! 1.4.2, each git subscription at one commit, each chart at 1.4.2), and the steps are walked
//! in order: vars and config are rendered with barge's evaluator, and each step then "returns"
//! the outputs its real runner returns (see `outputs_of`), so later expressions can read them.
//! Every expression that fails is listed with its reason and compared with the reviewed list.

mod support;

use barge_core::eval::{self, Data, StepStatus};
use barge_core::model::Body;
use barge_core::model::kargo::Freight;
use barge_core::promotion::{self, FlatStep, State};
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeMap;

/// The outputs a step's runner returns, shaped as barge's runners return them (which are
/// Kargo's shapes, from its `pkg/promotion/runner/builtin/`), with the step's rendered config where outputs echo it.
fn outputs_of(step: &FlatStep, config: &Json) -> Map<String, Json> {
    let sha = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c";
    let out = match step.uses.as_str() {
        "git-clone" => json!({"commits": {}}),
        "git-commit" => json!({"commit": sha}),
        "git-push" => json!({"branch": "main", "commit": sha, "commitURL": "https://example.com/c"}),
        "git-open-pr" => json!({"pr": {"id": 7, "url": "https://example.com/pr/7"}, "prNumber": 7}),
        "git-wait-for-pr" | "git-merge-pr" => json!({"commit": sha, "pr": {"id": 7}}),
        "kustomize-set-image" | "yaml-update" | "json-update" | "toml-update" | "helm-update-chart" => {
            json!({"commitMessage": "Updated images"})
        }
        "compose-output" => config.clone(),
        "yaml-parse" | "json-parse" | "toml-parse" | "http" => {
            let mut m = Map::new();
            for o in config["outputs"].as_array().into_iter().flatten() {
                if let Some(n) = o["name"].as_str() {
                    m.insert(n.to_string(), json!("value"));
                }
            }
            Json::Object(m)
        }
        _ => json!({}),
    };
    out.as_object().cloned().unwrap_or_default()
}

#[derive(Default)]
struct Tally {
    evaluated: usize,
    failures: Vec<String>,
}

fn count_expressions(v: &Json) -> usize {
    match v {
        Json::String(s) => barge_core::expr::find(s).map_or(0, |f| f.len()),
        Json::Array(a) => a.iter().map(count_expressions).sum(),
        Json::Object(m) => m.values().map(count_expressions).sum(),
        _ => 0,
    }
}

fn walk_stage(catalog: &barge_core::Catalog, project: &str, stage: &str, tally: &mut Tally, where_: &str) {
    let Some(spec) = catalog.resources.iter().find_map(|r| match &r.body {
        Some(Body::Stage(s)) if r.project == project && r.name == stage => s.spec.clone(),
        _ => None,
    }) else {
        return;
    };
    let Some(template) = &spec.promotion_template else {
        return;
    };
    let steps = match promotion::inflate(&template.spec, &|name, kind| {
        promotion::find_task(catalog, project, name, kind).cloned()
    }) {
        Ok(s) => s,
        Err(e) => {
            tally.failures.push(format!("{where_}: {e}"));
            return;
        }
    };
    let freight: Vec<Freight> = spec
        .requested_freight
        .iter()
        .map(|r| support::freight_from_warehouse(catalog, project, &r.origin.name))
        .collect();
    let target = &freight[0];
    let data = Data {
        ctx: json!({
            "project": project, "stage": stage, "promotion": format!("{stage}.01j00000000000000000000000.{}", &target.metadata.name[..7]),
            "targetFreight": {"name": target.metadata.name, "alias": target.alias, "origin": {"kind": "Warehouse", "name": target.origin.as_ref().unwrap().name}},
            "meta": {"promotion": {"actor": "admin"}},
        }),
        freight,
        now: "2026-11-22T10:00:00Z".into(),
        ..Data::default()
    };
    let mut state = State::new(&steps);
    let mut base = Map::new();
    let scope0 = state.scope_for(&steps, 0);
    tally.evaluated += spec
        .vars
        .iter()
        .chain(&template.spec.vars)
        .filter_map(|v| v.value.as_ref())
        .map(count_expressions)
        .sum::<usize>();
    if let Err(e) = promotion::layer_vars(&mut base, &spec.vars, &data, &scope0)
        .and_then(|()| promotion::layer_vars(&mut base, &template.spec.vars, &data, &scope0))
    {
        tally.failures.push(format!("{where_} vars: {e}"));
        return;
    }
    for (i, step) in steps.iter().enumerate() {
        let mut scope = state.scope_for(&steps, i);
        let mut vars = base.clone();
        tally.evaluated += step
            .task_vars
            .iter()
            .chain(&step.vars)
            .filter_map(|v| v.value.as_ref())
            .map(count_expressions)
            .sum::<usize>()
            + usize::from(step.if_.is_some());
        // As the engine does: vars, then the `if`; a skipped step's config is never rendered.
        let rendered = promotion::layer_vars(&mut vars, &step.task_vars, &data, &scope)
            .and_then(|()| promotion::layer_vars(&mut vars, &step.vars, &data, &scope))
            .and_then(|()| {
                scope.vars = vars;
                if !promotion::should_run(step, &data, &scope)? {
                    return Ok(None);
                }
                eval::render_value(&step.config, &data, &scope).map(Some)
            });
        state.steps[i].status = match rendered {
            Ok(Some(config)) => {
                tally.evaluated += count_expressions(&step.config);
                state.record_outputs(step, outputs_of(step, &config));
                StepStatus::Succeeded
            }
            Ok(None) => StepStatus::Skipped,
            Err(e) => {
                tally.failures.push(format!("{where_} {}: {e}", step.alias));
                StepStatus::Succeeded
            }
        };
    }
}

#[test]
fn every_corpus_expression_evaluates() {
    let root = support::corpus().join("kargo");
    let mut repos: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    repos.sort();
    let mut tally = Tally::default();
    let mut by_repo: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for repo in repos {
        let name = repo.file_name().unwrap().to_string_lossy().to_string();
        let mut catalog = barge_core::Catalog::default();
        barge_source::load(
            &[barge_source::parse_source(repo.to_str().unwrap())],
            &mut catalog,
            barge_source::DEFAULT_GIT_TIMEOUT,
        )
        .unwrap();
        let stages: Vec<(String, String)> = catalog
            .resources
            .iter()
            .filter(|r| matches!(r.body, Some(Body::Stage(_))))
            .map(|r| (r.project.clone(), r.name.clone()))
            .collect();
        let before = tally.failures.len();
        for (project, stage) in stages {
            walk_stage(&catalog, &project, &stage, &mut tally, &format!("{project}/{stage}"));
        }
        if tally.failures.len() > before {
            by_repo.insert(name, tally.failures[before..].to_vec());
        }
    }
    eprintln!("{} expressions evaluated", tally.evaluated);
    assert!(tally.evaluated > 4000, "{}", tally.evaluated);
    // What fails is what fails in Kargo too, each checked by hand against the files:
    let reviewed: BTreeMap<&str, (usize, &[&str])> = BTreeMap::from([
        // EE steps (tf-output, get-user-input) have no outputs here; one task reads a commit
        // from a Warehouse (fargate) that subscribes to no git repository.
        (
            "06-akuity-sedemo-platform",
            (6, &["tf-output", "collect", "commitFrom"][..]),
        ),
        // The task's image var names ghcr.io/jessesuen/nginx; the Warehouse watches other images.
        ("13-jessesuen-kargo-custom-steps", (12, &["imageFrom"][..])),
        // No Warehouse in the repository, so the Freight has no images.
        ("21-arober39-kargo-demo", (3, &["imageFrom"][..])),
        // `"stage_name": + ctx.stage`: unary plus on a string.
        (
            "23-bartpaczkows-kargo-helm-flow",
            (1, &["Invalid operand for operator +"][..]),
        ),
        // The task's default repoURL is another app's repository and the Stages do not override it.
        ("55-julianderks-kargo-kube-live", (4, &["commitFrom"][..])),
        // A "sieve" computer whose yaml-parse outputs are objects read back from files it writes.
        (
            "65-martysohio-kargo-computer",
            (4, &["outputs.parse.next", "outputs.sieve.message"][..]),
        ),
        // Stages call a `promote` PromotionTask that no file defines.
        (
            "71-nikolinmajmari-odoo-saas",
            (6, &["PromotionTask \"promote\" does not exist"][..]),
        ),
    ]);
    let mut unexpected = Vec::new();
    for (repo, failures) in &by_repo {
        let Some((n, reasons)) = reviewed.get(repo.as_str()) else {
            unexpected.push(format!("{repo}: {failures:#?}"));
            continue;
        };
        if failures.len() != *n || !failures.iter().all(|f| reasons.iter().any(|r| f.contains(r))) {
            unexpected.push(format!("{repo} (expected {n}): {failures:#?}"));
        }
    }
    for repo in reviewed.keys() {
        if !by_repo.contains_key(*repo) {
            unexpected.push(format!("{repo}: expected failures, got none"));
        }
    }
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
}
