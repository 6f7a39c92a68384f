//! A token written in git URLs (`http://bot:TOKEN@host/x.git`), end to end: the definitions
//! come from a Git source whose URL carries it, and a Stage clones and pushes a config repository
//! whose URL carries it, both on git smart HTTP behind basic auth. The promotion authenticates,
//! yet the token is nowhere in the SQLite file, in the work directory (repository cache) or in
//! any git command line (a `git` wrapper first on PATH logs them); the askpass helpers git used
//! were private (0700) and none is left in TMPDIR, after a success or a failure.

mod support;

use std::path::{Path, PathBuf};
use support::{barge, files_containing, git, stderr, stdout};

const TOKEN: &str = "tok-e2e-5f1c9a";
const WRONG: &str = "wrong-e2e-77d2";

const STAGES: &str = r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata: {name: shop}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: app, namespace: shop}
spec:
  subscriptions:
    - git: {repoURL: "http://bot:TOKEN@127.0.0.1:PORT/config.git", branch: main}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: dev, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {direct: true}
  promotionTemplate:
    spec:
      vars:
        - name: repo
          value: http://bot:TOKEN@127.0.0.1:PORT/config.git
      steps:
        - uses: git-clone
          config:
            repoURL: ${{ vars.repo }}
            checkout: [{branch: main, path: ./src}]
        - uses: yaml-update
          config:
            path: ./src/values.yaml
            updates: [{key: image.tag, value: "1.4.0"}]
        - uses: git-commit
          config: {path: ./src, message: "Promote ${{ ctx.targetFreight.alias }}"}
        - uses: git-push
          config: {path: ./src}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: broken, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {direct: true}
  promotionTemplate:
    spec:
      steps:
        - uses: git-clone
          config:
            repoURL: http://bot:WRONG@127.0.0.1:PORT/other.git
            checkout: [{branch: main, path: ./src}]
"#;

struct Fixture {
    dir: tempfile::TempDir,
    port: u16,
    _server: support::SmartHttp,
    db: String,
    alias: String,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("git");
        std::fs::create_dir_all(&root).unwrap();
        let config = support::bare_repo(&root, "config.git", &[("values.yaml", "image:\n  tag: 1.0.0\n")]);
        git(&config, &["config", "http.receivepack", "true"]);
        let (server, port) = support::smart_http(&root, "bot", TOKEN);
        let stages = STAGES
            .replace("PORT", &port.to_string())
            .replace("WRONG", WRONG)
            .replace("TOKEN", TOKEN);
        support::bare_repo(&root, "defs.git", &[("stages.yaml", &stages)]);
        // The server runs as root here; git refuses repositories owned by others unless told.
        let _ = std::process::Command::new("chmod")
            .args(["-R", "a+rwX", root.to_str().unwrap()])
            .status();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        wrap_git(dir.path());
        let db = format!("sqlite://{}/barge.db", dir.path().display());
        let alias = support::mint_freight(&db, "1.4.0");
        Fixture {
            dir,
            port,
            _server: server,
            db,
            alias,
        }
    }

    /// The definitions' Git source, its URL carrying `token`.
    fn source(&self, token: &str) -> String {
        format!("http://bot:{token}@127.0.0.1:{}/defs.git", self.port)
    }

    /// barge with `args`, the logging git first on PATH and TMPDIR in the test's directory.
    fn barge(&self, args: &[&str]) -> std::process::Output {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let work = self.dir.path().join("work").display().to_string();
        barge()
            .args(args)
            .args(["--db", &self.db, "--work-dir", &work])
            .env("PATH", path)
            .env("TMPDIR", self.dir.path().join("tmp"))
            .output()
            .unwrap()
    }

    /// `barge promote` of `stage` from the definitions' Git source.
    fn promote(&self, stage: &str, token: &str) -> std::process::Output {
        let source = self.source(token);
        self.barge(&[
            "promote",
            &source,
            "--stage",
            stage,
            "--freight",
            &self.alias,
            "--actor",
            "alice",
        ])
    }

    /// The files of the SQLite database (its WAL and shared memory too) that contain `needle`.
    fn db_files_containing(&self, needle: &str) -> Vec<PathBuf> {
        let db_files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("barge.db"))
            .collect();
        assert!(!db_files.is_empty());
        db_files
            .into_iter()
            .filter(|f| {
                std::fs::read(f)
                    .unwrap()
                    .windows(needle.len())
                    .any(|w| w == needle.as_bytes())
            })
            .collect()
    }

    /// Every git command line the runs so far started, and the askpass modes they saw.
    fn git_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("git-argv.log")).unwrap_or_default()
    }

    /// The askpass directories left in TMPDIR.
    fn askpass_left(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.path().join("tmp"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("barge-askpass-"))
            .collect()
    }
}

/// A `git` on PATH that appends its arguments (and, when git is given an askpass helper, the
/// mode of the helper's directory) to `dir/git-argv.log`, then runs the real git.
fn wrap_git(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join("git-argv.log");
    let script = format!(
        "#!/bin/sh\nprintf 'argv: %s\\n' \"$*\" >> '{log}'\nif [ -n \"$GIT_ASKPASS\" ] && [ \"$GIT_ASKPASS\" != true ]; then\n  stat -c 'askpass: %a' \"$(dirname \"$GIT_ASKPASS\")\" >> '{log}'\nfi\nexec '{real}' \"$@\"\n",
        log = log.display(),
        real = real.trim()
    );
    std::fs::write(bin.join("git"), script).unwrap();
    std::fs::set_permissions(bin.join("git"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_token_in_git_urls_authenticates_but_is_never_stored_or_on_a_command_line() {
    let fx = Fixture::new();
    let out = fx.promote("dev", TOKEN);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let pushed = git(&fx.dir.path().join("git/config.git"), &["show", "main:values.yaml"]);
    assert!(pushed.contains("tag: 1.4.0"), "the promotion pushed: {pushed}");

    // Not in the database (the plan), the cache, or git's argv.
    assert_eq!(fx.db_files_containing(TOKEN), Vec::<PathBuf>::new());
    let in_work = files_containing(&fx.dir.path().join("work"), TOKEN);
    assert!(in_work.is_empty(), "the token is stored in {in_work:?}");
    let log = fx.git_log();
    assert!(log.contains("argv: ") && log.contains("/config.git"), "{log}");
    assert!(!log.contains(TOKEN), "the token was on git's command line:\n{log}");
    // Every git that had an askpass helper found it private.
    let modes: Vec<&str> = log.lines().filter_map(|l| l.strip_prefix("askpass: ")).collect();
    assert!(!modes.is_empty(), "git was handed the credentials by askpass:\n{log}");
    assert!(modes.iter().all(|m| *m == "700"), "{modes:?}");
    assert_eq!(
        fx.askpass_left(),
        Vec::<PathBuf>::new(),
        "askpass directories left behind"
    );
    assert!(!stdout(&out).contains(TOKEN) && !stderr(&out).contains(TOKEN));
}

#[test]
fn failures_leave_no_askpass_directory_and_show_no_token() {
    let fx = Fixture::new();
    // A Stage whose URL carries a wrong token: the clone is refused.
    let out = fx.promote("broken", TOKEN);
    assert!(!out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(said.to_lowercase().contains("authentication"), "{said}");
    assert!(!said.contains(WRONG), "{said}");
    assert_eq!(fx.askpass_left(), Vec::<PathBuf>::new());
    // The definitions' source with a wrong token: the fetch is refused.
    let out = fx.promote("dev", WRONG);
    assert!(!out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(!stderr(&out).contains(WRONG), "{}", stderr(&out));
    assert_eq!(fx.askpass_left(), Vec::<PathBuf>::new());
    assert!(!fx.git_log().contains(WRONG), "{}", fx.git_log());
}

#[test]
fn the_daemon_discovers_with_the_token_and_stores_definitions_and_freight_without_it() {
    let fx = Fixture::new();
    let source = fx.source(TOKEN);
    let out = fx.barge(&["serve", &source, "--once"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (definitions, freight) = runtime.block_on(async {
        let store = barge_store::Store::open(&fx.db).await.unwrap();
        let definitions = store
            .latest_definitions()
            .await
            .unwrap()
            .expect("serve records its definitions");
        let freight = store.list_freight(Some("shop"), Some("app")).await.unwrap();
        (definitions, freight)
    });
    let texts = serde_json::to_string(&definitions.texts).unwrap();
    let clean = format!("http://127.0.0.1:{}/config.git", fx.port);
    assert!(texts.contains(&clean), "{texts}");
    assert_eq!(
        definitions.source,
        format!("http://bot:***@127.0.0.1:{}/defs.git", fx.port)
    );
    // Discovery authenticated with the token: the repository's commit is Freight now.
    let minted = serde_json::to_string(&freight.iter().map(|f| &f.freight).collect::<Vec<_>>()).unwrap();
    assert!(minted.contains(&clean), "{minted}");
    assert_eq!(fx.db_files_containing(TOKEN), Vec::<PathBuf>::new());
    assert!(!fx.git_log().contains(TOKEN), "{}", fx.git_log());
    assert_eq!(fx.askpass_left(), Vec::<PathBuf>::new());
}
