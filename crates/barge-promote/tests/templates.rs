//! Real Kargo promotion templates run end to end through barge's engine: barge's own examples
//! always, and the real-world corpus's pipelines with the `conformance` feature
//! (`scripts/conformance CORPUS_DIR`).
//!
//! For each chosen repository and Stage: the template is inflated and walked once to learn
//! which repositories, branches and files it expects (git-clone checkouts, the overlays
//! kustomize-set-image edits, the keys yaml-update sets, what copy reads); local bare
//! repositories are seeded with exactly that layout under a URL-rewrite root (every
//! `https://host/path` becomes `file://ROOT/host/path`); Freight is made from the Stage's
//! Warehouses (images at tag 1.4.2, each git subscription at the seeded branch head); then the
//! real steps run and the pushed commits are checked: the trailer, and a diff that changes
//! exactly the expected files, each edit carrying the Freight's version.
//!
//! argocd-update / argocd-wait are left out (they need the cluster access of issue #6).

mod support;

use barge_core::eval::{self, Data, StepStatus};
use barge_core::model::Body;
use barge_core::model::kargo::Freight;
use barge_core::promotion::{Phase, State};
use barge_git::repo::PushPolicy;
use barge_promote::Promotion;
use barge_testkit::fixtures::{corpus, freight_from_warehouse, root};
use barge_testkit::git::git;
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The version freight_from_warehouse gives every image and chart.
const TAG: &str = "1.4.2";

/// `https://github.com/a/b.git` → `github.com/a/b.git` (where its bare repository lives).
fn local_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let rest = rest.trim_end_matches('/');
    if rest.ends_with(".git") {
        rest.to_string()
    } else {
        format!("{rest}.git")
    }
}

fn normalize(p: &str) -> String {
    Path::new(p)
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.to_string_lossy().to_string()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[derive(Debug)]
struct Checkout {
    path: String,
    url: String,
    branch: Option<String>,
    create: bool,
}

#[derive(Debug, Default)]
struct Needs {
    checkouts: Vec<Checkout>,
    /// work-dir file → YAML keys it must have (empty for "any content").
    files: BTreeMap<String, BTreeSet<String>>,
    /// work-dir files a step edits, with the text the edit must put there.
    edits: BTreeMap<String, Vec<String>>,
}

fn data_for(p: &Promotion) -> Data {
    p.expression_data(&Data {
        now: "2026-11-22T10:00:00Z".into(),
        ..Data::default()
    })
}

/// Walks the steps (without running them) to learn what they expect to find.
fn expected_layout(p: &Promotion) -> Needs {
    let data = data_for(p);
    let mut state = State::new(&p.steps);
    let mut out = Needs::default();
    for (i, step) in p.steps.iter().enumerate() {
        let mut scope = state.scope_for(&p.steps, i);
        let mut vars = serde_json::Map::new();
        let _ = barge_core::promotion::layer_vars(&mut vars, &p.vars, &data, &scope)
            .and_then(|()| barge_core::promotion::layer_vars(&mut vars, &step.task_vars, &data, &scope))
            .and_then(|()| barge_core::promotion::layer_vars(&mut vars, &step.vars, &data, &scope));
        scope.vars = vars;
        state.steps[i].status = StepStatus::Succeeded;
        let Ok(c) = eval::render_value(&step.config, &data, &scope) else {
            continue;
        };
        match step.uses.as_str() {
            "git-clone" => {
                for co in c["checkout"].as_array().into_iter().flatten() {
                    out.checkouts.push(Checkout {
                        path: normalize(co["path"].as_str().unwrap_or("")),
                        url: c["repoURL"].as_str().unwrap_or("").to_string(),
                        branch: co["branch"].as_str().map(str::to_string),
                        create: co["create"].as_bool().unwrap_or(false),
                    });
                }
            }
            "kustomize-set-image" => {
                let f = format!("{}/kustomization.yaml", normalize(c["path"].as_str().unwrap_or("")));
                out.files.entry(f.clone()).or_default();
                out.edits.entry(f).or_default().push(format!("newTag: {TAG}"));
            }
            "yaml-update" => {
                let f = normalize(c["path"].as_str().unwrap_or(""));
                for u in c["updates"].as_array().into_iter().flatten() {
                    out.files
                        .entry(f.clone())
                        .or_default()
                        .insert(u["key"].as_str().unwrap_or("").to_string());
                    let v = match &u["value"] {
                        Json::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    out.edits.entry(f.clone()).or_default().push(v);
                }
            }
            "copy" => {
                let f = normalize(c["inPath"].as_str().unwrap_or(""));
                // A directory or a file: seed a file inside when it has no extension.
                let f = if Path::new(&f).extension().is_some() {
                    f
                } else {
                    format!("{f}/values.yaml")
                };
                out.files.entry(f).or_default();
            }
            _ => {}
        }
    }
    out
}

/// Sets a dotted path (numeric segments are list indexes) in a JSON tree.
fn set_path(at: &mut Json, parts: &[&str]) {
    let Some((first, rest)) = parts.split_first() else {
        *at = json!("0.0.1");
        return;
    };
    if let Ok(i) = first.parse::<usize>() {
        if !at.is_array() {
            *at = json!([]);
        }
        let a = at.as_array_mut().unwrap();
        while a.len() <= i {
            a.push(json!({}));
        }
        set_path(&mut a[i], rest);
    } else {
        if !at.is_object() {
            *at = json!({});
        }
        set_path(
            at.as_object_mut()
                .unwrap()
                .entry(first.to_string())
                .or_insert(Json::Null),
            rest,
        );
    }
}

/// A YAML document with `keys` (dotted paths) set to an old version.
fn yaml_with(keys: &BTreeSet<String>) -> String {
    let mut tree = json!({});
    for k in keys {
        set_path(&mut tree, &k.split('.').collect::<Vec<_>>());
    }
    let mut s = String::from("# seeded by barge's corpus test\n");
    if keys.is_empty() {
        s.push_str("seeded: true\n");
    } else {
        s.push_str(&yaml_serde::to_string(&tree).unwrap());
    }
    s
}

fn run_stage(repo: &str, project: &str, stage: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("remotes");
    let mut catalog = barge_core::Catalog::default();
    let src = source(repo);
    barge_source::load(
        &[barge_source::parse_source(src.to_str().unwrap())],
        &mut catalog,
        barge_source::DEFAULT_GIT_TIMEOUT,
    )
    .unwrap();
    let spec = catalog
        .resources
        .iter()
        .find_map(|r| match &r.body {
            Some(Body::Stage(s)) if r.project == project && r.name == stage => s.spec.clone(),
            _ => None,
        })
        .ok_or("no such stage")?;
    // Freight from the Stage's Warehouses (git commits filled in after seeding).
    let collection: Vec<Freight> = spec
        .requested_freight
        .iter()
        .map(|req| freight_from_warehouse(&catalog, project, &req.origin.name))
        .collect();
    let mut p = Promotion::plan(
        &catalog,
        project,
        stage,
        collection[0].clone(),
        collection.clone(),
        "corpus",
    )?;
    p.steps.retain(|s| !s.uses.starts_with("argocd-"));
    let needs = expected_layout(&p);
    // Seed: one bare repository per URL, each named branch holding the files under its checkout.
    let mut seeded: BTreeMap<(String, String), BTreeMap<String, String>> = BTreeMap::new();
    for co in needs.checkouts.iter().filter(|c| !c.create || c.branch.is_none()) {
        let branch = co.branch.clone().unwrap_or_else(|| "main".into());
        seeded.entry((co.url.clone(), branch)).or_default();
    }
    for (file, keys) in &needs.files {
        let co = needs
            .checkouts
            .iter()
            .filter(|c| file.starts_with(&format!("{}/", c.path)))
            .max_by_key(|c| c.path.len())
            .ok_or_else(|| format!("{file} is outside every checkout"))?;
        let rel = file[co.path.len() + 1..].to_string();
        let branch = co.branch.clone().unwrap_or_else(|| "main".into());
        let text = if rel.ends_with("kustomization.yaml") && keys.is_empty() {
            let mut k = String::from(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\nimages:\n",
            );
            for i in &p.freight.images {
                k.push_str(&format!(
                    "  - name: {}\n    newTag: 0.0.1 # the running version\n",
                    i.repo_url
                ));
            }
            k
        } else {
            yaml_with(keys)
        };
        seeded.entry((co.url.clone(), branch)).or_default().insert(rel, text);
    }
    for f in &p.collection {
        for c in &f.commits {
            seeded
                .entry((c.repo_url.clone(), c.branch.clone().unwrap()))
                .or_default();
        }
    }
    let mut heads = BTreeMap::new();
    for ((url, branch), files) in &seeded {
        let bare = root.join(local_path(url));
        if !bare.exists() {
            std::fs::create_dir_all(&bare).unwrap();
            git(&bare, &["init", "-q", "--bare", "-b", "main"]);
        }
        let work = dir.path().join("seed").join(local_path(url)).join(branch);
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", branch]);
        std::fs::write(work.join("README.md"), "seed\n").unwrap();
        for (rel, text) in files {
            let path = work.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        git(&work, &["add", "."]);
        git(&work, &["commit", "-q", "-m", "seed"]);
        git(
            &work,
            &[
                "push",
                "-q",
                bare.to_str().unwrap(),
                &format!("HEAD:refs/heads/{branch}"),
            ],
        );
        heads.insert((url.clone(), branch.clone()), git(&work, &["rev-parse", "HEAD"]));
    }
    for f in p.collection.iter_mut().chain(std::iter::once(&mut p.freight)) {
        for c in &mut f.commits {
            c.id = heads[&(c.repo_url.clone(), c.branch.clone().unwrap())].clone();
        }
    }
    // The expected edits again, now that the Freight names the seeded commits.
    let needs = expected_layout(&p);
    let mut engine = support::engine(
        dir.path(),
        ["https://", "http://", "ssh://git@"]
            .iter()
            .map(|from| support::rewrite_to_dir(from, &root))
            .collect(),
    );
    engine.push_policy = PushPolicy::default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = runtime.block_on(engine.run(&p, State::new(&p.steps), &support::Quiet, &support::Quiet));
    if out.phase != Phase::Succeeded {
        return Err(format!("{}: {}", out.phase.as_str(), out.message));
    }
    // Every push landed with the trailer, and changed exactly the expected files.
    let mut report = Vec::new();
    for (step, o) in p.steps.iter().zip(&out.state.steps) {
        if step.uses != "git-push" || o.status != StepStatus::Succeeded {
            continue;
        }
        let outputs = &out.state.outputs[&step.alias];
        let commit = outputs["commit"].as_str().unwrap();
        let branch = outputs["branch"].as_str().unwrap();
        let co = needs
            .checkouts
            .iter()
            .find(|c| {
                let cfg = eval::render_value(&step.config, &data_for(&p), &out.state.scope_for(&p.steps, 0))
                    .unwrap_or_default();
                normalize(cfg["path"].as_str().unwrap_or("")) == c.path
            })
            .ok_or("push from an unknown checkout")?;
        let bare = root.join(local_path(&co.url));
        assert_eq!(git(&bare, &["rev-parse", &format!("refs/heads/{branch}")]), commit);
        let body = git(&bare, &["log", "-1", "--format=%B", commit]);
        assert!(body.contains(&format!("Barge-Promotion: {}", p.name)), "{repo}: {body}");
        let base = heads.get(&(co.url.clone(), co.branch.clone().unwrap_or_default()));
        let changed: BTreeSet<String> = match base {
            Some(b) if git(&bare, &["merge-base", "--is-ancestor", b, commit]).is_empty() => {
                git(&bare, &["diff", "--name-only", b, commit])
                    .lines()
                    .map(str::to_string)
                    .collect()
            }
            _ => git(&bare, &["ls-tree", "-r", "--name-only", commit])
                .lines()
                .map(str::to_string)
                .collect(),
        };
        let expected: BTreeSet<String> = needs
            .edits
            .keys()
            .filter_map(|f| f.strip_prefix(&format!("{}/", co.path)).map(str::to_string))
            .collect();
        assert!(
            expected.is_subset(&changed),
            "{repo}/{stage}: expected edits to {expected:?}, the push changed {changed:?}"
        );
        for f in &expected {
            let text = git(&bare, &["show", &format!("{commit}:{f}")]);
            for want in &needs.edits[&format!("{}/{f}", co.path)] {
                assert!(
                    text.contains(want.as_str()),
                    "{repo}/{stage}: {f} lacks {want:?}:\n{text}"
                );
            }
            // The seeded comments survived the edits.
            let comment = if text.starts_with("apiVersion: kustomize") {
                "newTag: 1.4.2 # the running version"
            } else {
                "# seeded by barge's corpus test"
            };
            assert!(text.contains(comment), "{repo}/{stage}: {f} lost its comment:\n{text}");
        }
        report.push(format!("{branch}: {} file(s)", changed.len()));
    }
    if report.is_empty() {
        return Err("no push happened".into());
    }
    Ok(report.join(", "))
}

/// (repository, project, stage) of barge's own examples.
const EXAMPLES: &[(&str, &str, &str)] = &[
    // A Pipeline whose stages set two images' tags in Helm values.
    ("examples/helm-values", "", ""),
];

/// (repository, project, stage) of the corpus: Kargo's own samples and third-party pipelines
/// covering kustomize images, Helm values via yaml-update, copy, tasks, and stage-specific
/// branches.
#[cfg(feature = "conformance")]
const CORPUS: &[(&str, &str, &str)] = &[
    ("02-akuity-kargo-simple", "kargo-simple", "dev"),
    ("04-akuity-kargo-helm", "kargo-helm", "dev"),
    ("17-aftaab60-gitops-playground", "", ""),
    ("27-c-yco-argo-kargo-multicluster-lab", "", ""),
    ("29-christianh814-eks-workshop-template", "", ""),
    ("33-CuistOps-kargo-microservices", "", ""),
    ("35-dhpup-addons-kargo", "", ""),
    ("51-jane-delivery-akuity-poc-config", "", ""),
    ("57-juwondre-swiftwad-gitops", "", ""),
    ("79-rewyekha-microservice-helmcharts", "", ""),
    ("81-rykelley-atmos-proxmox-k8s", "", ""),
    ("87-sohel2020-kargo-flux-demo", "", ""),
];

/// A corpus repository, or one of barge's own examples (`examples/NAME`).
fn source(repo: &str) -> std::path::PathBuf {
    match repo.strip_prefix("examples/") {
        Some(name) => root().join("examples").join(name),
        None => corpus().join("kargo").join(repo),
    }
}

/// Runs every case (each Stage with steps of the repository when none is named); how many
/// Stages promoted, after asserting that none failed.
fn promote_all(cases: &[(&str, &str, &str)]) -> usize {
    let mut failures = Vec::new();
    let mut passed = 0;
    for (repo, project, stage) in cases {
        let mut catalog = barge_core::Catalog::default();
        let src = source(repo);
        barge_source::load(
            &[barge_source::parse_source(src.to_str().unwrap())],
            &mut catalog,
            barge_source::DEFAULT_GIT_TIMEOUT,
        )
        .unwrap();
        // Every Stage of the repository when none is named.
        let stages: Vec<(String, String)> = catalog
            .resources
            .iter()
            .filter(|r| matches!(&r.body, Some(Body::Stage(s)) if s.spec.as_ref().is_some_and(|s| s.promotion_template.is_some())))
            .filter(|r| project.is_empty() || (r.project == *project && r.name == *stage))
            .map(|r| (r.project.clone(), r.name.clone()))
            .collect();
        assert!(!stages.is_empty(), "{repo}: no stage with steps");
        for (project, stage) in stages {
            match run_stage(repo, &project, &stage) {
                Ok(r) => {
                    eprintln!("{repo} {project}/{stage}: {r}");
                    passed += 1;
                }
                Err(e) => failures.push(format!("{repo} {project}/{stage}: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    passed
}

#[test]
fn example_templates_promote_end_to_end() {
    assert_eq!(promote_all(EXAMPLES), 2, "dev and prod of examples/helm-values");
}

#[cfg(feature = "conformance")]
#[test]
fn corpus_templates_promote_end_to_end() {
    let passed = promote_all(CORPUS);
    assert!(passed >= 28, "{passed}");
}
