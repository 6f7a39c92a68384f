//! The `barge` binary end to end: exit codes, the human and JSON output contracts, plans, and
//! loading from Git repositories served by real git transports (file:// and `git daemon`).

mod support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use support::{GitDaemon, copy_dir, free_port, git, root, run, stderr, stdout};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

const STAGE_WITH_TYPO: &str = "apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata:
  name: app
  namespace: demo
spec:
  subscriptions:
    - image:
        repoURL: ghcr.io/example/app
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: dev
  namespace: demo
spec:
  requestedFreight:
    - origin:
        kind: Warehouse
        name: ap
      sources:
        direct: true
";

#[test]
fn exit_status_is_0_clean_1_errors_2_usage() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.yaml",
        &STAGE_WITH_TYPO.replace("name: ap\n", "name: app\n"),
    );
    let bad = write(dir.path(), "bad.yaml", STAGE_WITH_TYPO);
    assert_eq!(run(&["validate", good.to_str().unwrap()]).status.code(), Some(0));
    assert_eq!(run(&["validate", bad.to_str().unwrap()]).status.code(), Some(1));
    let missing = run(&["validate", dir.path().join("nope").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("no such file or directory"),
        "{}",
        stderr(&missing)
    );
    assert_eq!(run(&["validate"]).status.code(), Some(2), "no path is a usage error");
    assert_eq!(
        run(&["validate", "-o", "xml", good.to_str().unwrap()]).status.code(),
        Some(2)
    );
    // Warnings alone pass, unless --deny-warnings.
    let warn = write(
        dir.path(),
        "warn.yaml",
        &STAGE_WITH_TYPO.replace("name: ap\n", "name: app\n").replace(
            "repoURL: ghcr.io/example/app",
            "repoURL: ghcr.io/example/app\n        discoveryLimt: 5",
        ),
    );
    assert_eq!(run(&["validate", warn.to_str().unwrap()]).status.code(), Some(0));
    assert_eq!(
        run(&["validate", "--deny-warnings", warn.to_str().unwrap()])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn human_output_shows_the_source_line_with_a_caret_under_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.yaml", STAGE_WITH_TYPO);
    let out = run(&["validate", bad.to_str().unwrap()]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let head = lines
        .iter()
        .position(|l| l.starts_with("error[unresolved-warehouse]: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        lines[head].contains("Warehouse \"ap\" is not defined in project \"demo\""),
        "{text}"
    );
    assert_eq!(
        lines[head + 1],
        format!("  --> {}:20:15 (Stage demo/dev)", bad.display())
    );
    assert_eq!(lines[head + 2], "   |");
    assert_eq!(lines[head + 3], "20 |         name: ap");
    assert_eq!(lines[head + 4], "   |               ^^");
    assert_eq!(lines[head + 5], "   = help: did you mean \"app\"?");
    assert_eq!(lines.last().copied(), Some("failed: 2 resources, 1 error, 0 warnings"));
}

#[test]
fn json_output_follows_the_documented_contract() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.yaml", STAGE_WITH_TYPO);
    let out = run(&["validate", "-o", "json", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["resources", "diagnostics"]));
    assert_eq!(v["resources"], 2);
    let d = &v["diagnostics"][0];
    let keys: BTreeSet<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "file",
            "line",
            "column",
            "kind",
            "namespace",
            "name",
            "severity",
            "code",
            "message",
            "hint"
        ])
    );
    assert_eq!(d["file"], bad.to_str().unwrap());
    assert_eq!((d["line"].as_u64(), d["column"].as_u64()), (Some(20), Some(15)));
    assert_eq!(
        (d["kind"].as_str(), d["namespace"].as_str(), d["name"].as_str()),
        (Some("Stage"), Some("demo"), Some("dev"))
    );
    assert_eq!(
        (d["severity"].as_str(), d["code"].as_str()),
        (Some("error"), Some("unresolved-warehouse"))
    );

    let yaml = run(&["validate", "-o", "yaml", bad.to_str().unwrap()]);
    let y: Value = yaml_serde::from_slice(&yaml.stdout).unwrap();
    assert_eq!(y, v, "-o yaml carries the same document");
}

#[test]
fn plan_shows_the_bundled_pipeline_in_promotion_order() {
    let pipelines = root().join("pipelines");
    let out = run(&["plan", pipelines.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let dev = text.find("stage dev").unwrap();
    let staging = text.find("stage staging").unwrap();
    let prod = text.find("stage prod").unwrap();
    assert!(dev < staging && staging < prod, "{text}");
    assert!(
        text.contains("image ghcr.io/barge-demo/guestbook (SemVer ^1.0.0)"),
        "{text}"
    );
    assert!(text.contains("guestbook from stage dev after 2m soak"), "{text}");
    assert!(text.contains("verification: success-rate"), "{text}");

    let json: Value =
        serde_json::from_slice(&run(&["plan", "-o", "json", pipelines.to_str().unwrap()]).stdout).unwrap();
    let project = &json["projects"][0];
    assert_eq!(project["name"], "demo");
    let stages: Vec<(&str, bool)> = project["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["autoPromotion"].as_bool().unwrap()))
        .collect();
    assert_eq!(stages, vec![("dev", true), ("staging", true), ("prod", false)]);
    let steps: Vec<&str> = project["stages"][0]["steps"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["uses"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["git-clone", "kustomize-set-image", "git-commit", "git-push"]);
    assert_eq!(project["stages"][2]["verification"][0], "success-rate");
    assert_eq!(project["stages"][0]["downstream"][0], "staging");

    let yaml: Value =
        yaml_serde::from_slice(&run(&["plan", "-o", "yaml", pipelines.to_str().unwrap()]).stdout).unwrap();
    assert_eq!(yaml, json);
}

#[test]
fn expanded_pipelines_are_valid_kargo_resources() {
    let pipelines = root().join("pipelines");
    let out = run(&["plan", "--expand", pipelines.join("guestbook.yaml").to_str().unwrap()]);
    let expanded = stdout(&out);
    assert!(
        expanded.starts_with("---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Project\n"),
        "{expanded}"
    );
    let kinds: Vec<&str> = expanded.lines().filter_map(|l| l.strip_prefix("kind: ")).collect();
    assert_eq!(
        kinds,
        [
            "Project",
            "ProjectConfig",
            "Warehouse",
            "PromotionTask",
            "Stage",
            "Stage",
            "Stage"
        ]
    );
    // Fed back to barge with the AnalysisTemplate, the expansion is a clean Kargo project.
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "expanded.yaml", &expanded);
    let v = support::validate_json(&[&file, &pipelines.join("analysis.yaml")]);
    assert_eq!(v["resources"], 8);
    assert_eq!(
        v["diagnostics"],
        Value::Array(vec![]),
        "expanded resources validate cleanly"
    );
    // The round trip plans the same pipeline.
    let a: Value = serde_json::from_slice(&run(&["plan", "-o", "json", pipelines.to_str().unwrap()]).stdout).unwrap();
    let b: Value = serde_json::from_slice(
        &run(&[
            "plan",
            "-o",
            "json",
            file.to_str().unwrap(),
            pipelines.join("analysis.yaml").to_str().unwrap(),
        ])
        .stdout,
    )
    .unwrap();
    let strip = |mut v: Value| {
        for s in v["projects"][0]["stages"].as_array_mut().unwrap() {
            s.as_object_mut().unwrap().remove("pipeline");
        }
        for w in v["projects"][0]["warehouses"].as_array_mut().unwrap() {
            w.as_object_mut().unwrap().remove("pipeline");
        }
        v
    };
    assert_eq!(strip(a), strip(b));
}

#[test]
fn bundled_examples_are_valid() {
    // Every directory under examples/, so a new example cannot be left out.
    let mut dirs: Vec<String> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| format!("examples/{}", p.file_name().unwrap().to_str().unwrap()))
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 7, "{dirs:?}");
    dirs.insert(0, "pipelines".into());
    for dir in &dirs {
        let v = support::validate_json(&[&root().join(dir)]);
        assert_eq!(v["diagnostics"], Value::Array(vec![]), "{dir}");
        assert!(v["resources"].as_u64().unwrap() >= 1, "{dir}");
    }
}

#[test]
fn templates_and_binary_files_get_a_clear_diagnostic_not_a_parser_dump() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "templates/stage.yaml",
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata:\n  name: {{ .Values.stage }}\n{{- if .Values.verify }}\nspec: {}\n{{- end }}\n",
    );
    std::fs::write(dir.path().join("blob.yaml"), [0u8, 159, 146, 150, 0, 1]).unwrap();
    let v = support::validate_json(&[dir.path()]);
    let diags = v["diagnostics"].as_array().unwrap();
    let template = diags
        .iter()
        .find(|d| d["file"].as_str().unwrap().ends_with("stage.yaml"))
        .unwrap();
    assert_eq!(template["code"], "not-yaml");
    assert!(
        template["message"].as_str().unwrap().contains("Helm/Go template"),
        "{template}"
    );
    let blob = diags
        .iter()
        .find(|d| d["file"].as_str().unwrap().ends_with("blob.yaml"))
        .unwrap();
    assert_eq!(blob["code"], "not-yaml");
    assert!(blob["message"].as_str().unwrap().contains("binary"), "{blob}");
}

#[test]
fn help_teaches_the_verbs() {
    let out = run(&["--help"]);
    assert!(stdout(&out).contains("validate") && stdout(&out).contains("plan"));
    let out = run(&["validate", "--help"]);
    let text = stdout(&out);
    assert!(text.contains("Exit status: 0 when there are no errors"), "{text}");
    assert!(text.contains("?ref="), "{text}");
}

/// A bare repository holding the bundled pipelines on `main`, tagged `v1`; returns its path
/// and the commit id.
fn config_repo(dir: &Path) -> (std::path::PathBuf, String) {
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    copy_dir(&root().join("pipelines"), &work.join("pipelines"));
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "pipelines"]);
    git(&work, &["tag", "v1"]);
    // A later commit on main breaks the pipeline, so refs are distinguishable.
    write(
        &work,
        "pipelines/broken.yaml",
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata:\n  name: broken\n  namespace: demo\nspec:\n  requestedFreight: []\n",
    );
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "broken"]);
    let bare = dir.join("config.git");
    git(
        dir,
        &["clone", "-q", "--bare", work.to_str().unwrap(), bare.to_str().unwrap()],
    );
    let commit = git(&bare, &["rev-parse", "v1^{commit}"]);
    (bare, commit)
}

#[test]
fn loads_from_a_git_repository_at_a_branch_tag_or_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (bare, commit) = config_repo(dir.path());
    let url = format!("file://{}", bare.display());
    for (reference, expect_errors) in [("v1", false), (commit.as_str(), false), ("main", true)] {
        let src = format!("{url}//pipelines?ref={reference}");
        let out = run(&["validate", "-o", "json", &src]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{reference}: {}", stderr(&out)));
        assert_eq!(
            out.status.code(),
            Some(if expect_errors { 1 } else { 0 }),
            "{reference}: {v}"
        );
        assert_eq!(v["resources"], if expect_errors { 3 } else { 2 }, "{reference}");
        if expect_errors {
            let file = v["diagnostics"][0]["file"].as_str().unwrap();
            assert_eq!(file, format!("{url}//pipelines/broken.yaml"));
        }
    }
    // No ref: the remote's HEAD (main).
    let v: Value =
        serde_json::from_slice(&run(&["validate", "-o", "json", &format!("{url}//pipelines")]).stdout).unwrap();
    assert_eq!(v["resources"], 3);

    let bad_ref = run(&["validate", &format!("{url}//pipelines?ref=no-such-branch")]);
    assert_eq!(bad_ref.status.code(), Some(1));
    assert!(
        stderr(&bad_ref).contains("cannot fetch") && stderr(&bad_ref).contains("no-such-branch"),
        "{}",
        stderr(&bad_ref)
    );
    let bad_path = run(&["validate", &format!("{url}//nowhere?ref=v1")]);
    assert_eq!(bad_path.status.code(), Some(1));
    assert!(
        stderr(&bad_path).contains("\"nowhere\" does not exist in the repository"),
        "{}",
        stderr(&bad_path)
    );
}

#[test]
fn loads_from_a_git_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let (bare, _) = config_repo(dir.path());
    let daemon = GitDaemon::start(dir.path());
    let url = format!(
        "git://127.0.0.1:{}/{}",
        daemon.port,
        bare.file_name().unwrap().to_string_lossy()
    );
    let out = run(&["validate", "-o", "json", &format!("{url}//pipelines?ref=v1")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["resources"], 2);
    drop(daemon);
}

#[test]
fn credentials_in_git_urls_never_appear_in_output() {
    let port = free_port(); // nothing listens there: the fetch fails fast
    let out = run(&[
        "validate",
        &format!("http://deploy-bot:hunter2-secret@127.0.0.1:{port}/config.git//kargo?ref=main"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains("hunter2-secret"), "{all}");
    assert!(all.contains("deploy-bot:***@127.0.0.1"), "{all}");
}

/// A git server that accepts the connection and never answers: loading fails with a timeout
/// within the bound (BARGE_SOURCE_TIMEOUT), instead of hanging (and, in the daemon, stalling
/// every reload after it).
#[test]
fn a_git_source_that_never_answers_times_out() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    // Accepts every connection and keeps it open, saying nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming().flatten() {
            held.push(conn);
        }
    });
    let started = std::time::Instant::now();
    let mut child = support::barge()
        .args(["validate", &format!("http://127.0.0.1:{port}/x.git")])
        .env("BARGE_SOURCE_TIMEOUT", "2s")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("barge validate still waiting on a silent git server after 60s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "cannot fetch http://127.0.0.1:{port}/x.git: git fetch timed out after 2s"
        )),
        "{}",
        stderr(&out)
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "one fetch, not one per attempt: {:?}",
        started.elapsed()
    );
}

#[test]
fn a_closed_pipe_ends_barge_quietly() {
    // The reader is gone before barge writes (`barge plan -o json | head -1` once head exits).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = support::barge()
        .args(["plan", root().join("pipelines").to_str().unwrap(), "-o", "json"])
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "nothing about a broken pipe");
}

#[test]
fn a_glob_skips_files_that_are_not_yaml_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.yaml",
        &STAGE_WITH_TYPO.replace("name: ap\n", "name: app\n"),
    );
    let readme = write(dir.path(), "README.md", "# Examples\n\nkey: [unclosed\n");
    // What the shell makes of `dir/*`.
    let out = run(&["validate", readme.to_str().unwrap(), good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("ok: 2 resources"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!("note: skipping {}: not a .yaml/.yml file", readme.display())),
        "{}",
        stderr(&out)
    );
    // A file named alone is read whatever its name.
    assert_eq!(run(&["validate", readme.to_str().unwrap()]).status.code(), Some(1));
}

#[test]
fn promote_without_a_stage_asks_for_the_stage() {
    for env in [
        ("BARGE_DB", "sqlite:///nonexistent/barge.db"),
        ("BARGE_SERVER", "http://127.0.0.1:9"),
    ] {
        let out = support::barge()
            .args(["promote", "--freight", "cosmic-ocelot"])
            .env(env.0, env.1)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert!(err.contains("--stage STAGE"), "{err}");
        assert!(!err.contains("--db") && !err.contains("--server <"), "{err}");
    }
}

#[test]
fn every_verb_and_subcommand_has_a_description() {
    for verb in [
        "hold", "release", "verify", "abort", "refresh", "update", "get", "analysis", "token", "config",
    ] {
        let text = stdout(&run(&[verb, "--help"]));
        let commands = text.split("Commands:\n").nth(1).unwrap_or_else(|| panic!("{text}"));
        // A command's line is indented two spaces; its description's wrapped lines, more.
        let listed = commands.lines().take_while(|l| l.starts_with("  "));
        for line in listed.filter(|l| !l.starts_with("   ")) {
            let mut words = line.split_whitespace();
            let name = words.next().unwrap();
            assert!(
                words.next().is_some(),
                "`barge {verb} {name}` has no description:\n{text}"
            );
        }
    }
}

#[test]
fn help_shows_the_shared_flags_and_completions_are_generated() {
    let text = stdout(&run(&["--help"]));
    for flag in [
        "--server URL",
        "--db URL",
        "-o, --output",
        "BARGE_TOKEN",
        "barge completion bash",
    ] {
        assert!(text.contains(flag), "{flag} in:\n{text}");
    }
    // --actor names who acts only in-process: through --server the token does.
    let approve = stdout(&run(&["approve", "--help"]));
    assert!(approve.contains("With --db only (in-process)"), "{approve}");
    let bash = stdout(&run(&["completion", "bash"]));
    assert!(bash.contains("_barge()") && bash.contains("promote"), "{bash}");
    // The contexts' verbs complete too.
    for verb in ["login", "use-context", "set-context", "get-contexts", "current-context"] {
        assert!(bash.contains(verb), "{verb} in:\n{bash}");
    }
    assert!(stdout(&run(&["completion", "zsh"])).starts_with("#compdef barge"));
    assert!(stdout(&run(&["completion", "fish"])).contains("complete -c barge"));
    assert_eq!(run(&["completion", "tcsh"]).status.code(), Some(2));
}
