//! Kargo's own tests as a conformance suite: the cases of Kargo's table-driven Go tests for
//! its builtin steps, expression functions and Freight IDs, ported as data under
//! `tests/fixtures/kargo-cases/` (one file per step or area, each case citing its upstream
//! test), run here through barge's real implementation: a step case is a one-step Stage
//! loaded and validated like any definition, then promoted by the engine in a real work
//! directory.
//!
//! A case where barge deliberately differs from Kargo says so (`differs:` with the reason;
//! docs/migrating-from-kargo.md lists them) and its `expect` is barge's documented behaviour,
//! which is asserted like any other: a differing case is never skipped. `kargo:` keeps what
//! Kargo's test expects there, for the record.

mod support;

use barge_core::eval::{self, Data, Scope};
use barge_core::model::kargo::{Freight, FreightOrigin};
use barge_core::promotion::Phase;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/kargo-cases")
}

/// One fixture file: the cases of one step (or of the expression functions, or Freight IDs).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite<C> {
    /// The step's name (`uses:`), or `expressions` / `freight-id`.
    step: String,
    /// The upstream test files the cases come from.
    #[allow(dead_code)]
    upstream: Vec<String>,
    cases: Vec<C>,
    /// Upstream cases of an internal Go API with no barge counterpart: `source` and `reason`.
    #[serde(default)]
    #[allow(dead_code)]
    not_applicable: Vec<NotApplicable>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotApplicable {
    #[allow(dead_code)]
    source: String,
    #[allow(dead_code)]
    reason: String,
}

/// A text with `<repeat N>…</repeat>` spans written out N times (the long-line cases).
fn expand(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("<repeat ") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "<repeat ".len()..];
        let (n, body) = after.split_once('>').expect("<repeat N>");
        let (body, tail) = body.split_once("</repeat>").expect("</repeat>");
        out.push_str(&body.repeat(n.parse().expect("a count")));
        rest = tail;
    }
    out.push_str(rest);
    out
}

fn load<C: for<'de> Deserialize<'de>>(file: &str) -> Suite<C> {
    let path = fixtures().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What the cases of one file came to; panics listing every failed case.
#[derive(Default)]
struct Tally {
    passed: usize,
    differs: usize,
    failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, name: &str, differs: &Option<String>, problems: Vec<String>) {
        if !problems.is_empty() {
            self.failures.push(format!("{name}:\n    {}", problems.join("\n    ")));
        } else if differs.is_some() {
            self.differs += 1;
        } else {
            self.passed += 1;
        }
    }

    fn finish(self, suite: &str) {
        eprintln!(
            "{suite}: {} cases, {} as Kargo, {} deliberately different, {} failed",
            self.passed + self.differs + self.failures.len(),
            self.passed,
            self.differs,
            self.failures.len()
        );
        assert!(
            self.failures.is_empty(),
            "{suite}: {} case(s) failed:\n  {}",
            self.failures.len(),
            self.failures.join("\n  ")
        );
    }
}

// ---------------------------------------------------------------------------------------
// Steps

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepCase {
    name: String,
    /// The upstream test function and case (`Test_yamlUpdater_run/successful run`).
    #[allow(dead_code)]
    source: String,
    /// The work directory before the step: path → text, or a special entry.
    #[serde(default)]
    files: BTreeMap<String, Input>,
    /// The step's config.
    #[serde(default)]
    config: Json,
    /// The Freight collection (first: the promoted Freight); one Warehouse `app` image if empty.
    #[serde(default)]
    freight: Vec<Freight>,
    /// Why barge deliberately differs here (docs/migrating-from-kargo.md).
    #[serde(default)]
    differs: Option<String>,
    /// What Kargo's test expects where barge differs, for the record.
    #[serde(default)]
    #[allow(dead_code)]
    kargo: Option<Json>,
    expect: StepExpect,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    Text(String),
    Special(Special),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Special {
    /// A symbolic link to this target.
    #[serde(default)]
    symlink: Option<String>,
    /// An (empty) directory.
    #[serde(default)]
    dir: bool,
    /// A tar archive with these entries.
    #[serde(default)]
    tar: Option<TarSpec>,
    /// A file with this text, with `mode`.
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    mode: Option<u32>,
    /// A file of this many zero bytes, written sparse (no disk blocks: the size-limit cases).
    #[serde(default)]
    zeros: Option<u64>,
    /// (git cases' remotes) A submodule: the default branch of this remote.
    #[serde(default)]
    submodule: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TarSpec {
    #[serde(default)]
    gzip: bool,
    entries: Vec<TarEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TarEntry {
    name: String,
    /// `file` (the default), `dir`, `symlink` or `hardlink`.
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    content: String,
    /// A link's target.
    #[serde(default)]
    link: Option<String>,
    /// A file entry of this many zero bytes (instead of `content`): the archive is written
    /// sparse, its zeros holes, so an archive over the size limits takes no disk space.
    #[serde(default)]
    zeros: Option<u64>,
    #[serde(default)]
    mode: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StepExpect {
    /// barge refuses the config when the definitions are loaded: a diagnostic containing this.
    #[serde(default)]
    invalid: Option<String>,
    /// The step errors with a message containing this.
    #[serde(default)]
    error: Option<String>,
    /// The step's outputs, exactly.
    #[serde(default)]
    outputs: Option<Json>,
    /// Files' exact texts afterwards.
    #[serde(default)]
    files: BTreeMap<String, String>,
    /// Texts the files contain afterwards.
    #[serde(default)]
    contains: BTreeMap<String, Vec<String>>,
    /// Texts the files do not contain afterwards.
    #[serde(default)]
    not_contains: BTreeMap<String, Vec<String>>,
    /// Files parsed as YAML (or JSON) afterwards.
    #[serde(default)]
    yaml: BTreeMap<String, Json>,
    /// Paths that exist afterwards (files, directories or links).
    #[serde(default)]
    present: Vec<String>,
    /// Paths that do not exist afterwards.
    #[serde(default)]
    absent: Vec<String>,
    /// Symbolic links afterwards: path → target.
    #[serde(default)]
    symlinks: BTreeMap<String, String>,
    /// Tar archives afterwards: path → the sorted names of their entries (directories end in `/`).
    #[serde(default)]
    archives: BTreeMap<String, Vec<String>>,
}

fn write_inputs(work: &Path, files: &BTreeMap<String, Input>) {
    for (rel, input) in files {
        let path = work.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        match input {
            Input::Text(t) => std::fs::write(&path, expand(t)).unwrap(),
            Input::Special(s) => {
                if let Some(target) = &s.symlink {
                    std::os::unix::fs::symlink(target, &path).unwrap();
                } else if s.dir {
                    std::fs::create_dir_all(&path).unwrap();
                } else if let Some(t) = &s.tar {
                    if t.entries.iter().any(|e| e.zeros.is_some()) {
                        sparse_tar(&path, t);
                    } else {
                        std::fs::write(&path, tar_bytes(t)).unwrap();
                    }
                } else if let Some(n) = s.zeros {
                    std::fs::File::create(&path).unwrap().set_len(n).unwrap();
                } else if let Some(t) = &s.text {
                    std::fs::write(&path, t).unwrap();
                } else {
                    panic!("{rel}: an input is text, symlink, dir or tar");
                }
                if let Some(mode) = s.mode {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
                }
            }
        }
    }
}

/// A tar archive built entry by entry as written, bad names included (a crafted archive).
fn tar_bytes(spec: &TarSpec) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in &spec.entries {
        let mut h = tar::Header::new_gnu();
        let kind = e.kind.as_deref().unwrap_or("file");
        let (ty, size, mode) = match kind {
            "file" => (tar::EntryType::Regular, e.content.len() as u64, 0o644),
            "dir" => (tar::EntryType::Directory, 0, 0o755),
            "symlink" => (tar::EntryType::Symlink, 0, 0o777),
            "hardlink" => (tar::EntryType::Link, 0, 0o644),
            other => panic!("tar entry kind {other}"),
        };
        h.set_entry_type(ty);
        h.set_size(size);
        h.set_mode(e.mode.unwrap_or(mode));
        // Written raw so that `../` and absolute names reach the archive as Kargo's tests write them.
        let name = e.name.as_bytes();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        if let Some(l) = &e.link {
            let l = l.as_bytes();
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l);
        }
        h.set_cksum();
        b.append(&h, e.content.as_bytes()).unwrap();
    }
    let bytes = b.into_inner().unwrap();
    if spec.gzip {
        use std::io::Write;
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&bytes).unwrap();
        z.finish().unwrap()
    } else {
        bytes
    }
}

/// A plain tar archive at `path` whose `zeros` entries are holes: each header is written, the
/// file's data skipped over (zeros, as tar pads with), and the two zero end blocks made by the
/// file's length; the archive is valid and takes a few blocks of disk.
fn sparse_tar(path: &Path, spec: &TarSpec) {
    use std::io::{Seek, SeekFrom, Write};
    assert!(!spec.gzip, "a sparse archive is a plain tar");
    let mut f = std::fs::File::create(path).unwrap();
    let mut at = 0u64;
    for e in &spec.entries {
        let size = e.zeros.unwrap_or(e.content.len() as u64);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(size);
        h.set_mode(e.mode.unwrap_or(0o644));
        h.set_path(&e.name).unwrap();
        h.set_cksum();
        f.write_all(h.as_bytes()).unwrap();
        f.write_all(e.content.as_bytes()).unwrap();
        at += 512 + size.div_ceil(512) * 512;
        f.seek(SeekFrom::Start(at)).unwrap();
    }
    f.set_len(at + 1024).unwrap();
}

fn archive_names(path: &Path) -> Result<Vec<String>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader: Box<dyn std::io::Read> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(&bytes[..]))
    } else {
        Box::new(&bytes[..])
    };
    let mut a = tar::Archive::new(reader);
    let mut names = Vec::new();
    for e in a.entries().map_err(|e| e.to_string())? {
        let e = e.map_err(|e| e.to_string())?;
        let mut n = e.path().map_err(|e| e.to_string())?.to_string_lossy().to_string();
        if e.header().entry_type().is_dir() && !n.ends_with('/') {
            n.push('/');
        }
        names.push(n);
    }
    names.sort();
    Ok(names)
}

/// The Stage of one step case: its Freight's origins requested, the step as `step`.
fn stage_of(case: &StepCase, uses: &str, freight: &[Freight]) -> String {
    let requested: Vec<Json> = freight
        .iter()
        .map(|f| json!({"origin": f.origin, "sources": {"direct": true}}))
        .collect();
    let stage = json!({
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": "dev", "namespace": "shop"},
        "spec": {
            "requestedFreight": requested,
            "promotionTemplate": {"spec": {"steps": [{"uses": uses, "as": "step", "config": case.config}]}},
        },
    });
    // The Warehouses the Freight comes from, subscribed to its artifacts.
    let mut docs = vec![stage];
    for f in freight {
        let origin = f.origin.as_ref().unwrap();
        let mut subscriptions: Vec<Json> = f
            .images
            .iter()
            .map(|i| json!({"image": {"repoURL": i.repo_url}}))
            .collect();
        subscriptions.extend(f.commits.iter().map(|c| json!({"git": {"repoURL": c.repo_url}})));
        subscriptions.extend(
            f.charts
                .iter()
                .map(|c| json!({"chart": {"repoURL": c.repo_url, "name": c.name}})),
        );
        docs.push(json!({
            "apiVersion": "kargo.akuity.io/v1alpha1",
            "kind": "Warehouse",
            "metadata": {"name": origin.name, "namespace": "shop"},
            "spec": {"subscriptions": subscriptions},
        }));
    }
    // JSON is YAML: the catalog loads it as it loads any definition.
    docs.iter()
        .map(|d| serde_json::to_string_pretty(d).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

fn freight_of(case: &StepCase) -> Vec<Freight> {
    let mut list = if case.freight.is_empty() {
        vec![support::image_freight("ghcr.io/acme/app", "1.10")]
    } else {
        case.freight.clone()
    };
    for (i, f) in list.iter_mut().enumerate() {
        let origin = f.origin.get_or_insert_with(|| FreightOrigin {
            kind: "Warehouse".into(),
            name: format!("warehouse{}", i + 1),
        });
        if f.metadata.name.is_empty() {
            f.metadata.name = format!("{:0>40}", format!("{i}{}", origin.name.len()));
        }
    }
    list
}

async fn run_step_case(uses: &str, case: &StepCase) -> Vec<String> {
    let mut problems = Vec::new();
    let freight = freight_of(case);
    let mut catalog = barge_core::Catalog::default();
    catalog.load_text("case.yaml", &stage_of(case, uses, &freight));
    barge_core::validate::validate(&mut catalog);
    let errors: Vec<String> = catalog
        .diagnostics
        .iter()
        .filter(|d| d.severity == barge_core::diag::Severity::Error)
        .map(|d| format!("{}: {}", d.code, d.message))
        .collect();
    if let Some(want) = &case.expect.invalid {
        if !errors.iter().any(|e| e.contains(want.as_str())) {
            problems.push(format!(
                "expected a validation error containing {want:?}, got {errors:?}"
            ));
        }
        return problems;
    }
    if !errors.is_empty() {
        problems.push(format!("the config does not validate: {errors:?}"));
        return problems;
    }
    let p = barge_promote::Promotion::plan(
        &catalog,
        "shop",
        "dev",
        freight[0].clone(),
        freight[1..].to_vec(),
        "alice",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut real_work = PathBuf::new();
    let (out, after) = support::run_planned(dir.path(), &p, |work| {
        real_work = work.to_path_buf();
        write_inputs(work, &case.files)
    })
    .await;
    let message = out.state.steps.first().map(|s| s.message.clone()).unwrap_or_default();
    match &case.expect.error {
        Some(want) => {
            if out.phase != Phase::Errored && out.phase != Phase::Failed {
                problems.push(format!(
                    "expected an error containing {want:?}, the step {:?}",
                    out.phase
                ));
            } else if !message.contains(want.as_str()) {
                problems.push(format!("expected an error containing {want:?}, got {message:?}"));
            }
        }
        None => {
            if out.phase != Phase::Succeeded {
                problems.push(format!("the step {:?}: {message}", out.phase));
                return problems;
            }
        }
    }
    if let Some(want) = &case.expect.outputs {
        let got = out.state.outputs.get("step").cloned().unwrap_or(Json::Null);
        if &got != want {
            problems.push(format!("outputs: expected {want}, got {got}"));
        }
    }
    // The work directory after the step; a path starting `../` is outside it (a file a case
    // wrote there must survive the step), looked at where it is.
    let snapshot = after.join("0");
    let at = |rel: &str| match rel.strip_prefix("../") {
        // Lexically: the work directory itself is gone once the promotion ended.
        Some(outside) => real_work.parent().unwrap().join(outside),
        None => snapshot.join(rel),
    };
    let work = &snapshot;
    let e = &case.expect;
    for (rel, want) in &e.files {
        match std::fs::read_to_string(work.join(rel)) {
            Ok(got) if got == expand(want) => {}
            Ok(got) => problems.push(format!("{rel}: expected {want:?}, got {got:?}")),
            Err(err) => problems.push(format!("{rel}: {err}")),
        }
    }
    for (rel, wants) in &e.contains {
        match std::fs::read_to_string(work.join(rel)) {
            Ok(got) => {
                for w in wants.iter().filter(|w| !got.contains(w.as_str())) {
                    problems.push(format!("{rel}: expected to contain {w:?}, got {got:?}"));
                }
            }
            Err(err) => problems.push(format!("{rel}: {err}")),
        }
    }
    for (rel, wants) in &e.not_contains {
        if let Ok(got) = std::fs::read_to_string(work.join(rel)) {
            for w in wants.iter().filter(|w| got.contains(w.as_str())) {
                problems.push(format!("{rel}: expected not to contain {w:?}, got {got:?}"));
            }
        }
    }
    for (rel, want) in &e.yaml {
        match std::fs::read_to_string(work.join(rel)) {
            Ok(got) => match yaml_serde::from_str::<Json>(&got) {
                Ok(v) if &v == want => {}
                Ok(v) => problems.push(format!("{rel}: expected {want}, got {v}")),
                Err(err) => problems.push(format!("{rel}: {err}: {got:?}")),
            },
            Err(err) => problems.push(format!("{rel}: {err}")),
        }
    }
    for rel in &e.present {
        if std::fs::symlink_metadata(at(rel)).is_err() {
            problems.push(format!("{rel}: expected to exist"));
        }
    }
    for rel in &e.absent {
        if std::fs::symlink_metadata(at(rel)).is_ok() {
            problems.push(format!("{rel}: expected not to exist"));
        }
    }
    for (rel, want) in &e.symlinks {
        match std::fs::read_link(work.join(rel)) {
            Ok(got) if got == Path::new(want) => {}
            Ok(got) => problems.push(format!("{rel}: expected a link to {want}, got {}", got.display())),
            Err(err) => problems.push(format!("{rel}: expected a link: {err}")),
        }
    }
    for (rel, want) in &e.archives {
        match archive_names(&work.join(rel)) {
            Ok(got) if &got == want => {}
            Ok(got) => problems.push(format!("{rel}: expected entries {want:?}, got {got:?}")),
            Err(err) => problems.push(format!("{rel}: {err}")),
        }
    }
    problems
}

async fn step_suite(file: &str) {
    let suite: Suite<StepCase> = load(file);
    let mut tally = Tally::default();
    for case in &suite.cases {
        let problems = run_step_case(&suite.step, case).await;
        tally.record(&case.name, &case.differs, problems);
    }
    if !suite.not_applicable.is_empty() {
        eprintln!("{file}: {} upstream case(s) not applicable", suite.not_applicable.len());
    }
    tally.finish(&suite.step);
}

macro_rules! step_suites {
    ($($name:ident => $file:literal),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            step_suite($file).await;
        }
    )*};
}

step_suites! {
    kustomize_set_image => "kustomize-set-image.yaml",
    yaml_update => "yaml-update.yaml",
    json_update => "json-update.yaml",
    helm_update_chart => "helm-update-chart.yaml",
    yaml_merge => "yaml-merge.yaml",
    pkg_yaml_update => "pkg-yaml-update.yaml",
    pkg_yaml_merge => "pkg-yaml-merge.yaml",
    pkg_yaml_parse => "pkg-yaml-parse.yaml",
    copy => "copy.yaml",
    delete => "delete.yaml",
    tar => "tar.yaml",
    untar => "untar.yaml",
}

// ---------------------------------------------------------------------------------------
// Expression functions

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprCase {
    name: String,
    #[allow(dead_code)]
    source: String,
    /// The expression, without `${{ }}` …
    #[serde(default)]
    expression: Option<String>,
    /// … or a config value whose strings hold `${{ }}` templates, rendered as a step's config is.
    #[serde(default)]
    template: Option<Json>,
    /// Secrets (`secret(name)`), config maps (`configMap(name)`): name → key → value.
    #[serde(default)]
    secrets: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Metadata by Stage (`stageMetadata`) and by Freight (`freightMetadata`).
    #[serde(default)]
    stage_metadata: BTreeMap<String, serde_json::Map<String, Json>>,
    #[serde(default)]
    freight_metadata: BTreeMap<String, serde_json::Map<String, Json>>,
    /// The project's Freight statuses by name (`freightStatus`), as the engine gives them.
    #[serde(default)]
    freight_status: BTreeMap<String, serde_json::Map<String, Json>>,
    /// Earlier steps' statuses, as Kargo's test lists them: `[alias, status]`, a task's step
    /// aliased `task::step`.
    #[serde(default)]
    statuses: Vec<(String, String)>,
    /// The alias of the step evaluating the expression (Kargo's `currentStepAlias`; `step-2`
    /// when not given): with `statuses`, barge's engine makes the scope it sees.
    #[serde(default)]
    current: Option<String>,
    /// The Freight collection the functions see.
    #[serde(default)]
    freight: Vec<Freight>,
    /// A Warehouse's discovered artifacts (Kargo's `DiscoveredArtifacts`, each list newest
    /// first): the expression is a `freightCreationCriteria` one, evaluated as barge's
    /// discovery evaluates it, over the Freight it would mint from the first (newest)
    /// candidate of each list (`barge_core::criteria::data`).
    #[serde(default)]
    discovered: Option<Discovered>,
    /// Variables (`vars.x`).
    #[serde(default)]
    vars: serde_json::Map<String, Json>,
    #[serde(default)]
    differs: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    kargo: Option<Json>,
    /// The value (`null` too), or (`error`) a text the error contains.
    #[serde(default, deserialize_with = "present")]
    value: Option<Json>,
    #[serde(default)]
    error: Option<String>,
}

/// Kargo's `DiscoveredArtifacts`, as its tests write them.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Discovered {
    #[serde(default)]
    git: Vec<DiscoveredGit>,
    #[serde(default)]
    images: Vec<DiscoveredImages>,
    #[serde(default)]
    charts: Vec<DiscoveredCharts>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DiscoveredGit {
    #[serde(rename = "repoURL")]
    repo_url: String,
    /// Kargo's `DiscoveredCommit`s (`id`, `tag`, `branch`, …).
    commits: Vec<Json>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DiscoveredImages {
    #[serde(rename = "repoURL")]
    repo_url: String,
    /// Kargo's `DiscoveredImageReference`s (`tag`, `digest`).
    references: Vec<Json>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DiscoveredCharts {
    #[serde(rename = "repoURL")]
    repo_url: String,
    #[serde(default)]
    name: Option<String>,
    versions: Vec<String>,
}

/// The Freight barge's discovery would mint from these artifacts (the first candidate of
/// each list, as a discovery pass keeps the best one of each subscription).
fn minted_from(d: &Discovered) -> Freight {
    let with_repo = |v: &Json, repo: &str| {
        let mut v = v.clone();
        v["repoURL"] = json!(repo);
        v
    };
    let commits = d
        .git
        .iter()
        .filter_map(|g| g.commits.first().map(|c| with_repo(c, &g.repo_url)))
        .map(|c| serde_json::from_value(c).expect("a discovered commit"))
        .collect();
    let images = d
        .images
        .iter()
        .filter_map(|i| i.references.first().map(|r| with_repo(r, &i.repo_url)))
        .map(|i| serde_json::from_value(i).expect("a discovered image reference"))
        .collect();
    let charts = d
        .charts
        .iter()
        .filter_map(|c| {
            c.versions.first().map(|v| barge_core::model::kargo::Chart {
                repo_url: c.repo_url.clone(),
                name: c.name.clone(),
                version: v.clone(),
                ..Default::default()
            })
        })
        .collect();
    let origin = FreightOrigin {
        kind: "Warehouse".into(),
        name: "discovered".into(),
    };
    barge_core::freight::mint(origin, commits, images, charts, &|_| false)
}

/// The scope barge's engine gives the case's current step after the case's earlier steps
/// (their statuses as given): the steps as the engine flattens them (`task::step` is step
/// `step` of task `task`), and `State::scope_for`.
fn status_scope(case: &ExprCase) -> Scope {
    use barge_core::promotion::{FlatStep, State};
    let current = case.current.clone().unwrap_or_else(|| "step-2".into());
    let mut steps: Vec<FlatStep> = case.statuses.iter().map(|(alias, _)| FlatStep::named(alias)).collect();
    steps.push(FlatStep::named(&current));
    let mut state = State::new(&steps);
    for (record, (_, status)) in state.steps.iter_mut().zip(&case.statuses) {
        record.status = serde_json::from_value(json!(status)).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    }
    state.scope_for(&steps, steps.len() - 1)
}

/// A field that is present, whatever its value (`value: null` is a value).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Json>, D::Error> {
    Json::deserialize(d).map(Some)
}

#[test]
fn expressions() {
    let suite: Suite<ExprCase> = load("expressions.yaml");
    let mut tally = Tally::default();
    for case in &suite.cases {
        if let Some(d) = &case.discovered {
            assert!(case.freight.is_empty(), "{}: freight or discovered", case.name);
            let data = barge_core::criteria::data(&minted_from(d));
            let got = eval::expression(
                case.expression.as_deref().expect("an expression"),
                &data,
                &Scope::default(),
                &[],
            );
            tally.record(&case.name, &case.differs, compare(&case.value, &case.error, got));
            continue;
        }
        let data = Data {
            freight: case.freight.clone(),
            now: "2026-11-22T10:00:00Z".into(),
            secrets: case.secrets.clone(),
            config_maps: case.config_maps.clone(),
            stage_metadata: case.stage_metadata.clone(),
            freight_metadata: case.freight_metadata.clone(),
            freight_status: case.freight_status.clone(),
            ..Data::default()
        };
        let mut scope = status_scope(case);
        scope.vars = case.vars.clone();
        let got = match (&case.expression, &case.template) {
            (Some(e), None) => eval::expression(e, &data, &scope, &[]),
            (None, Some(t)) => eval::render_value(t, &data, &scope),
            _ => panic!("{}: a case has an expression or a template", case.name),
        };
        tally.record(&case.name, &case.differs, compare(&case.value, &case.error, got));
    }
    tally.finish(&suite.step);
}

/// What is wrong with an expression's result, given the case's `value` or `error`.
fn compare(value: &Option<Json>, error: &Option<String>, got: Result<Json, eval::EvalError>) -> Vec<String> {
    let mut problems = Vec::new();
    match (value, error, got) {
        (Some(want), None, Ok(v)) if &v == want => {}
        (Some(want), None, Ok(v)) => problems.push(format!("expected {want}, got {v}")),
        (None, Some(want), Err(e)) if e.message.contains(want.as_str()) => {}
        (None, Some(want), Err(e)) => problems.push(format!("expected an error containing {want:?}, got {e}")),
        (None, Some(want), Ok(v)) => problems.push(format!("expected an error containing {want:?}, got {v}")),
        (Some(want), None, Err(e)) => problems.push(format!("expected {want}, got the error {e}")),
        _ => problems.push("a case has exactly one of `value` and `error`".into()),
    }
    problems
}

// ---------------------------------------------------------------------------------------
// Freight IDs

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdCase {
    name: String,
    #[allow(dead_code)]
    source: String,
    /// The Freight (origin and artifacts).
    freight: Freight,
    /// Its ID.
    #[serde(default)]
    id: Option<String>,
    /// The name of an earlier case whose ID this one must equal …
    #[serde(default)]
    same_as: Option<String>,
    /// … or differ from.
    #[serde(default)]
    differs_from: Option<String>,
    #[serde(default)]
    differs: Option<String>,
}

#[test]
fn freight_ids() {
    let suite: Suite<IdCase> = load("freight-id.yaml");
    let mut tally = Tally::default();
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for case in &suite.cases {
        let f = &case.freight;
        let origin = f.origin.clone().expect("a Freight case has an origin");
        let got = barge_core::freight::freight_id(
            &origin,
            &barge_core::freight::Contents {
                commits: &f.commits,
                images: &f.images,
                charts: &f.charts,
            },
        );
        let mut problems = Vec::new();
        if let Some(want) = &case.id
            && &got != want
        {
            problems.push(format!("expected ID {want}, got {got}"));
        }
        if let Some(other) = &case.same_as
            && ids.get(other) != Some(&got)
        {
            problems.push(format!(
                "expected the ID of {other:?} ({:?}), got {got}",
                ids.get(other)
            ));
        }
        if let Some(other) = &case.differs_from
            && ids.get(other).is_none_or(|o| o == &got)
        {
            problems.push(format!("expected an ID other than {other:?}'s ({:?})", ids.get(other)));
        }
        ids.insert(case.name.clone(), got);
        tally.record(&case.name, &case.differs, problems);
    }
    tally.finish(&suite.step);
}

// ---------------------------------------------------------------------------------------
// git-* steps: Kargo's tests build repositories with Go helpers; a case here describes the
// remotes (served by `git daemon`), the steps (a git-clone first: barge's git steps work on
// the checkouts git-clone made, where Kargo's tests put a bare clone and a worktree in place
// by hand), and what the outputs, statuses and remote refs must be afterwards.

/// Where the cases' remotes are, as written in their steps (rewritten to the daemon).
const GIT_BASE: &str = "https://github.com/kargo-cases/";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GitCase {
    name: String,
    #[allow(dead_code)]
    source: String,
    /// A validation case: this config of the suite's step, validated only.
    #[serde(default)]
    config: Option<Json>,
    /// The remotes: `<name>` (at `https://github.com/kargo-cases/<name>.git`) → its branches
    /// (the first one the default) → files; a file whose text is `{submodule: <name>}`
    /// makes a submodule of that remote's default branch at that path.
    #[serde(default)]
    remotes: BTreeMap<String, BTreeMap<String, BTreeMap<String, Input>>>,
    /// A run case: the Stage's steps.
    #[serde(default)]
    steps: Vec<Json>,
    #[serde(default)]
    differs: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    kargo: Option<Json>,
    expect: GitExpect,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GitExpect {
    /// The config is refused when the definitions are loaded: a diagnostic containing this.
    #[serde(default)]
    invalid: Option<String>,
    /// The config is accepted (a validation case with nothing to run).
    #[serde(default)]
    valid: bool,
    /// The promotion errors, the last step that ran with a message containing this.
    #[serde(default)]
    error: Option<String>,
    /// Steps' outputs by alias, exactly. In strings, `<rev REMOTE REF>` is the commit REF
    /// names in that remote afterwards, `<out ALIAS KEY>` another output, `<promotion>` the
    /// promotion's name, and `<sha>` stands for any commit ID.
    #[serde(default)]
    outputs: BTreeMap<String, Json>,
    /// Steps' statuses by alias (`Succeeded`, `Errored`, …).
    #[serde(default)]
    status: BTreeMap<String, String>,
    /// `REMOTE REF` → the files of that commit's tree, exactly.
    #[serde(default)]
    remote: BTreeMap<String, BTreeMap<String, String>>,
    /// `REMOTE REF` → that commit's message, exactly (placeholders as in outputs).
    #[serde(default)]
    messages: BTreeMap<String, String>,
    /// `REMOTE REF`s that do not exist afterwards.
    #[serde(default)]
    no_refs: Vec<String>,
    /// Paths in the work directory after the last step that exist …
    #[serde(default)]
    present: Vec<String>,
    /// … and that do not.
    #[serde(default)]
    absent: Vec<String>,
    /// Files' exact texts in the work directory after the last step.
    #[serde(default)]
    files: BTreeMap<String, String>,
}

fn git_out(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(format!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Creates the case's remotes under `base` (bare repositories `<name>.git`), in order of
/// their submodules (a submodule's remote is made before the remote that includes it).
fn make_remotes(base: &Path, remotes: &BTreeMap<String, BTreeMap<String, BTreeMap<String, Input>>>) {
    use barge_testkit::git::git;
    let mut made: Vec<String> = Vec::new();
    while made.len() < remotes.len() {
        let before = made.len();
        for (name, branches) in remotes {
            if made.contains(name) {
                continue;
            }
            let needs: Vec<&String> = branches
                .values()
                .flat_map(|files| files.values())
                .filter_map(|i| match i {
                    Input::Special(s) => s.submodule.as_ref(),
                    Input::Text(_) => None,
                })
                .collect();
            if needs.iter().any(|n| !made.contains(n)) {
                continue;
            }
            let seed = base.join(format!("seed-{name}"));
            std::fs::create_dir_all(&seed).unwrap();
            let mut first = true;
            for (branch, files) in branches {
                if first {
                    git(&seed, &["init", "-q", "-b", branch]);
                    first = false;
                } else {
                    git(&seed, &["checkout", "-q", "--orphan", branch]);
                    git(&seed, &["rm", "-rfq", "--ignore-unmatch", "."]);
                }
                let mut modules = String::new();
                let mut gitlinks = Vec::new();
                for (rel, input) in files {
                    match input {
                        Input::Special(Special {
                            submodule: Some(sub), ..
                        }) => {
                            let sub_bare = base.join(format!("{sub}.git"));
                            let sha = git(&sub_bare, &["rev-parse", "HEAD"]);
                            gitlinks.push(format!("160000,{sha},{rel}"));
                            // Named as the case's remotes are (where Kargo's test names its
                            // server): the engine's rewrite sends it to the daemon.
                            modules.push_str(&format!(
                                "[submodule \"{rel}\"]\n\tpath = {rel}\n\turl = {GIT_BASE}{sub}.git\n"
                            ));
                        }
                        _ => write_inputs(&seed, &BTreeMap::from([(rel.clone(), clone_input(input))])),
                    }
                }
                if !modules.is_empty() {
                    std::fs::write(seed.join(".gitmodules"), modules).unwrap();
                }
                git(&seed, &["add", "-A"]);
                // The gitlinks after `add -A`, which would take them out of the index again
                // (their paths are not in the seed's worktree).
                for gitlink in &gitlinks {
                    git(&seed, &["update-index", "--add", "--cacheinfo", gitlink]);
                }
                git(
                    &seed,
                    &["commit", "-q", "--allow-empty", "-m", &format!("seed {branch}")],
                );
            }
            let bare = base.join(format!("{name}.git"));
            git(
                base,
                &[
                    "clone",
                    "-q",
                    "--mirror",
                    seed.to_str().unwrap(),
                    bare.to_str().unwrap(),
                ],
            );
            // The default branch is the first one listed.
            let default = branches.keys().next().unwrap();
            git(&bare, &["symbolic-ref", "HEAD", &format!("refs/heads/{default}")]);
            made.push(name.clone());
        }
        assert!(made.len() > before, "the remotes' submodules form a cycle");
    }
}

fn clone_input(i: &Input) -> Input {
    match i {
        Input::Text(t) => Input::Text(t.clone()),
        Input::Special(_) => panic!("a remote's file is text or a submodule"),
    }
}

/// `text` with its placeholders resolved, or why one cannot be.
fn resolve(
    text: &str,
    base: &Path,
    outputs: &serde_json::Map<String, Json>,
    promotion: &str,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start..].find('>') else { break };
        let inner = &rest[start + 1..start + len];
        let words: Vec<&str> = inner.split(' ').collect();
        let value = match words.as_slice() {
            ["rev", remote, reference] => Some(
                git_out(
                    &base.join(format!("{remote}.git")),
                    &["rev-parse", "--verify", &format!("{reference}^{{commit}}")],
                )?
                .trim()
                .to_string(),
            ),
            ["out", alias, key] => Some(
                outputs
                    .get(*alias)
                    .and_then(|o| o.get(*key))
                    .and_then(Json::as_str)
                    .ok_or_else(|| format!("no output {alias}.{key}"))?
                    .to_string(),
            ),
            ["promotion"] => Some(promotion.to_string()),
            _ => None,
        };
        out.push_str(&rest[..start]);
        match value {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..=start + len]),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether `got` is `want` with placeholders resolved (`<sha>`: any commit ID).
fn matches(want: &Json, got: &Json, r: &dyn Fn(&str) -> Result<String, String>) -> Result<bool, String> {
    Ok(match (want, got) {
        (Json::String(w), Json::String(g)) if w == "<sha>" => g.len() == 40 && g.chars().all(|c| c.is_ascii_hexdigit()),
        (Json::String(w), Json::String(g)) => &r(w)? == g,
        (Json::Object(w), Json::Object(g)) => {
            w.len() == g.len()
                && w.iter().try_fold(true, |ok, (k, wv)| {
                    Ok::<_, String>(ok && g.get(k).map(|gv| matches(wv, gv, r)).transpose()?.unwrap_or(false))
                })?
        }
        (Json::Array(w), Json::Array(g)) => {
            w.len() == g.len()
                && w.iter()
                    .zip(g)
                    .try_fold(true, |ok, (wv, gv)| Ok::<_, String>(ok && matches(wv, gv, r)?))?
        }
        _ => want == got,
    })
}

fn resolve_json(v: &Json, r: &dyn Fn(&str) -> Result<String, String>) -> Result<Json, String> {
    Ok(match v {
        Json::String(t) => Json::String(r(t)?),
        Json::Array(a) => Json::Array(a.iter().map(|x| resolve_json(x, r)).collect::<Result<_, _>>()?),
        Json::Object(o) => Json::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), resolve_json(x, r)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn steps_stage(steps: &[Json]) -> String {
    let f = &freight_of_default();
    let stage = json!({
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": "dev", "namespace": "shop"},
        "spec": {
            "requestedFreight": [{"origin": f.origin, "sources": {"direct": true}}],
            "promotionTemplate": {"spec": {"steps": steps}},
        },
    });
    let warehouse = json!({
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Warehouse",
        "metadata": {"name": "app", "namespace": "shop"},
        "spec": {"subscriptions": [{"image": {"repoURL": "ghcr.io/acme/app"}}]},
    });
    format!(
        "{}\n---\n{}",
        serde_json::to_string_pretty(&stage).unwrap(),
        serde_json::to_string_pretty(&warehouse).unwrap()
    )
}

fn freight_of_default() -> Freight {
    support::image_freight("ghcr.io/acme/app", "1.10")
}

async fn run_git_case(
    uses: &str,
    case: &GitCase,
    daemon: &barge_testkit::git::GitDaemon,
    root: &Path,
    n: usize,
) -> Vec<String> {
    let mut problems = Vec::new();
    let remotes = root.join("remotes").join(n.to_string());
    let daemon_url = format!("git://127.0.0.1:{}/{n}/", daemon.port);
    let steps = match &case.config {
        Some(config) => vec![json!({"uses": uses, "as": "step", "config": config})],
        None => {
            // The remotes first: a step may name one of their commits (`<rev REMOTE REF>`).
            std::fs::create_dir_all(&remotes).unwrap();
            make_remotes(&remotes, &case.remotes);
            let none = serde_json::Map::new();
            match resolve_json(&Json::Array(case.steps.clone()), &|t| resolve(t, &remotes, &none, "")) {
                Ok(Json::Array(steps)) => steps,
                Ok(_) => unreachable!(),
                Err(err) => return vec![format!("the steps: {err}")],
            }
        }
    };
    let mut catalog = barge_core::Catalog::default();
    catalog.load_text("case.yaml", &steps_stage(&steps));
    barge_core::validate::validate(&mut catalog);
    let errors: Vec<String> = catalog
        .diagnostics
        .iter()
        .filter(|d| d.severity == barge_core::diag::Severity::Error)
        .map(|d| format!("{}: {}", d.code, d.message))
        .collect();
    let e = &case.expect;
    if let Some(want) = &e.invalid {
        if !errors.iter().any(|e| e.contains(want.as_str())) {
            problems.push(format!(
                "expected a validation error containing {want:?}, got {errors:?}"
            ));
        }
        return problems;
    }
    if !errors.is_empty() {
        problems.push(format!("the config does not validate: {errors:?}"));
        return problems;
    }
    if e.valid {
        return problems;
    }
    let p = barge_promote::Promotion::plan(&catalog, "shop", "dev", freight_of_default(), Vec::new(), "alice").unwrap();
    let run_root = root.join("runs").join(n.to_string());
    let rewrites = vec![barge_core::rewrite::Rewrite {
        from: GIT_BASE.into(),
        to: daemon_url.clone(),
    }];
    let (out, after) = support::run_planned_with(&run_root, rewrites, &p, |_| {}).await;
    let ran: Vec<_> = out
        .state
        .steps
        .iter()
        .filter(|s| s.status != barge_core::eval::StepStatus::Pending)
        .collect();
    let last = ran.last().map(|s| s.message.clone()).unwrap_or_default();
    match &e.error {
        Some(want) => {
            if out.phase == Phase::Succeeded {
                problems.push(format!(
                    "expected an error containing {want:?}, the promotion succeeded"
                ));
            } else if !last.contains(want.as_str()) {
                problems.push(format!("expected an error containing {want:?}, got {last:?}"));
            }
        }
        None if out.phase != Phase::Succeeded => {
            problems.push(format!("the promotion {:?}: {}", out.phase, out.message));
            return problems;
        }
        None => {}
    }
    let outputs = &out.state.outputs;
    let r = |t: &str| resolve(t, &remotes, outputs, &p.name);
    for (alias, want) in &e.outputs {
        let got = outputs.get(alias).cloned().unwrap_or(Json::Null);
        match matches(want, &got, &r) {
            Ok(true) => {}
            Ok(false) => problems.push(format!("outputs of {alias}: expected {want}, got {got}")),
            Err(err) => problems.push(format!("outputs of {alias}: {err}")),
        }
    }
    for (alias, want) in &e.status {
        let got = out
            .state
            .steps
            .iter()
            .find(|s| &s.alias == alias)
            .map(|s| s.status.as_str());
        if got != Some(want.as_str()) {
            problems.push(format!("status of {alias}: expected {want}, got {got:?}"));
        }
    }
    let split = |key: &str| {
        let key = r(key).unwrap_or_else(|_| key.to_string());
        let (remote, reference) = key.split_once(' ').expect("`REMOTE REF`");
        (remotes.join(format!("{remote}.git")), reference.to_string())
    };
    for (key, want) in &e.remote {
        let (bare, reference) = split(key);
        let listed = git_out(&bare, &["ls-tree", "-r", "--name-only", &reference]);
        match listed {
            Ok(names) => {
                let mut got = BTreeMap::new();
                for name in names.lines() {
                    let text = git_out(&bare, &["show", &format!("{reference}:{name}")]).unwrap_or_default();
                    got.insert(name.to_string(), text);
                }
                if &got != want {
                    problems.push(format!("{key}: expected the files {want:?}, got {got:?}"));
                }
            }
            Err(err) => problems.push(format!("{key}: {err}")),
        }
    }
    for (key, want) in &e.messages {
        let (bare, reference) = split(key);
        match (git_out(&bare, &["cat-file", "commit", &reference]), r(want)) {
            (Ok(raw), Ok(want)) => {
                let got = raw.split_once("\n\n").map(|(_, m)| m).unwrap_or("");
                if got != want {
                    problems.push(format!("{key}: expected the message {want:?}, got {got:?}"));
                }
            }
            (Err(err), _) | (_, Err(err)) => problems.push(format!("{key}: {err}")),
        }
    }
    for key in &e.no_refs {
        let (bare, reference) = split(key);
        if git_out(&bare, &["rev-parse", "--verify", "-q", &reference]).is_ok() {
            problems.push(format!("{key}: expected no such ref"));
        }
    }
    let snapshot = after.join((ran.len().max(1) - 1).to_string());
    for rel in &e.present {
        if std::fs::symlink_metadata(snapshot.join(rel)).is_err() {
            problems.push(format!("{rel}: expected to exist"));
        }
    }
    for rel in &e.absent {
        if std::fs::symlink_metadata(snapshot.join(rel)).is_ok() {
            problems.push(format!("{rel}: expected not to exist"));
        }
    }
    for (rel, want) in &e.files {
        match std::fs::read_to_string(snapshot.join(rel)) {
            Ok(got) if &got == want => {}
            Ok(got) => problems.push(format!("{rel}: expected {want:?}, got {got:?}")),
            Err(err) => {
                // What the directory holds instead.
                let dir = snapshot.join(rel);
                let held: Vec<String> = std::fs::read_dir(dir.parent().unwrap())
                    .map(|d| {
                        d.flatten()
                            .map(|e| e.file_name().to_string_lossy().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                problems.push(format!("{rel}: {err} (its directory holds {held:?})"));
            }
        }
    }
    problems
}

async fn git_suite(file: &str) {
    let suite: Suite<GitCase> = load(file);
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("remotes")).unwrap();
    let daemon = barge_testkit::git::GitDaemon::start(&root.path().join("remotes"));
    let mut tally = Tally::default();
    for (n, case) in suite.cases.iter().enumerate() {
        let problems = run_git_case(&suite.step, case, &daemon, root.path(), n).await;
        tally.record(&case.name, &case.differs, problems);
    }
    tally.finish(&suite.step);
}

macro_rules! git_suites {
    ($($name:ident => $file:literal),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            git_suite($file).await;
        }
    )*};
}

git_suites! {
    git_clone => "git-clone.yaml",
    git_commit => "git-commit.yaml",
    git_push => "git-push.yaml",
    git_tag => "git-tag.yaml",
    git_clear => "git-clear.yaml",
    git_open_pr => "git-open-pr.yaml",
    git_wait_for_pr => "git-wait-for-pr.yaml",
    git_merge_pr => "git-merge-pr.yaml",
}
