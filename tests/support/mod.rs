//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

pub mod replica_pipeline;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn barge() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_barge"));
    c.env("NO_COLOR", "1");
    c
}

/// Runs barge with `args` and returns its output.
pub fn run(args: &[&str]) -> Output {
    barge().args(args).output().expect("barge runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A `barge serve` in the background, its stderr in `log`; killed when dropped.
pub struct Serve {
    pub child: Child,
    /// Its `--listen` port on 127.0.0.1.
    pub port: u16,
    /// `http://127.0.0.1:PORT`: its API.
    pub url: String,
    pub log: PathBuf,
}

impl Serve {
    /// Spawns `serve` (a `barge serve … --listen 127.0.0.1:PORT` command), its stdout dropped
    /// and its stderr written to `log`.
    pub fn spawn(serve: &mut Command, port: u16, log: PathBuf) -> Serve {
        let child = serve
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Serve {
            child,
            port,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// What it has written to its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills it and waits for it to end.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `done` every 100 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `barge validate -o json PATH...` parsed.
/// What a `barge get … -o json` printed, for tests that read what it lists: a listing is
/// the `List` kubectl and kargo print (`{"apiVersion": "v1", "kind": "List", "metadata": {},
/// "items": [...]}`), read here as its items; a named object as itself. tests/get.rs checks
/// the List's shape.
pub fn listed(printed: serde_json::Value) -> serde_json::Value {
    if printed["apiVersion"] == "v1" && printed["kind"] == "List" {
        return printed["items"].clone();
    }
    printed
}

pub fn validate_json(paths: &[&Path]) -> serde_json::Value {
    let mut args = vec!["validate".to_string(), "-o".into(), "json".into()];
    args.extend(paths.iter().map(|p| p.display().to_string()));
    let out = barge().args(&args).output().expect("barge runs");
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "barge validate exited {:?}: {}",
        out.status,
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(&out)))
}

// Each test crate uses some of the kit.
#[allow(unused_imports)]
pub use barge_testkit::fixtures::{copy_dir, corpus, freight_from_warehouse, root};
#[allow(unused_imports)]
pub use barge_testkit::git::{
    GitDaemon, SmartHttp, bare_repo, empty_commits, files_containing, free_port, git, smart_http,
};
#[allow(unused_imports)]
pub use barge_testkit::web::{HealthServer, health_server};

/// Mints Freight of the Warehouse `app` in project `shop` (image ghcr.io/acme/app at `tag`)
/// into the store `db`, as discovery would have stored it (one Freight per tag); its alias.
pub fn mint_freight(db: &str, tag: &str) -> String {
    mint_annotated_freight(db, tag, Default::default())
}

/// [`mint_freight`] with these OCI annotations on its image.
pub fn mint_annotated_freight(db: &str, tag: &str, annotations: std::collections::BTreeMap<String, String>) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = barge_store::Store::open(db).await.unwrap();
        mint_into(&store, tag, annotations, 1).await
    })
}

/// [`mint_freight`] of each of these tags, over one store connection (for Freight by the
/// thousand), minted at `now` (Unix milliseconds; [`mint_freight`]'s are at 1); their aliases.
#[allow(dead_code)]
pub fn mint_many_freight(db: &str, tags: &[String], now: i64) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = barge_store::Store::open(db).await.unwrap();
        let mut aliases = Vec::new();
        for tag in tags {
            aliases.push(mint_into(&store, tag, Default::default(), now).await);
        }
        aliases
    })
}

async fn mint_into(
    store: &barge_store::Store,
    tag: &str,
    annotations: std::collections::BTreeMap<String, String>,
    now: i64,
) -> String {
    let mut f = barge_core::model::kargo::Freight {
        origin: Some(barge_core::model::kargo::FreightOrigin {
            kind: "Warehouse".into(),
            name: "app".into(),
        }),
        images: vec![barge_core::model::kargo::Image {
            repo_url: "ghcr.io/acme/app".into(),
            tag: tag.into(),
            digest: "sha256:aaaa".into(),
            annotations,
            ..Default::default()
        }],
        ..Default::default()
    };
    // A name per tag, as discovery's name is per content: each tag is one Freight.
    let hex: String = tag.bytes().map(|b| format!("{b:02x}")).collect();
    f.metadata.name = format!("{hex:0>40}");
    let minted = store.mint_freight("shop", "app", f, now).await.unwrap();
    minted.freight.freight.alias.unwrap()
}

/// `shop_definitions!(r#"…Stages…"#)`: the project `shop` (dev and staging auto-promoted), its
/// Warehouse `app` on `ghcr.io/acme/app` and the PromotionTask `update-overlay` (clone, set the
/// image in `env/<stage>`, commit, push), followed by the test's own Stages, as one literal.
#[allow(unused_macros)]
macro_rules! shop_definitions {
    ($stages:literal) => {
        shop_definitions!(config: "", $stages)
    };
    // `config`: more of the ProjectConfig's spec after its policies, indented by two: more
    // policies (as items of the list), then other fields (e.g. `promotionWindows`).
    (config: $config:literal, $stages:literal) => {
        concat!(
            r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata: {name: shop}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata: {name: shop, namespace: shop}
spec:
  promotionPolicies:
    - stageSelector: {name: "regex:^(dev|staging)$"}
      autoPromotionEnabled: true
"#,
            $config,
            r#"---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: app, namespace: shop}
spec:
  interval: 1h
  subscriptions:
    - image: {repoURL: ghcr.io/acme/app, constraint: ^1.0.0}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: PromotionTask
metadata: {name: update-overlay, namespace: shop}
spec:
  steps:
    - uses: git-clone
      config:
        repoURL: https://git.example.com/acme/config.git
        checkout: [{branch: main, path: ./src}]
    - uses: kustomize-set-image
      config:
        path: ./src/env/${{ ctx.stage }}
        images: [{image: ghcr.io/acme/app}]
    - uses: git-commit
      config: {path: ./src, message: "${{ ctx.stage }}: ${{ imageFrom('ghcr.io/acme/app').Tag }}"}
    - uses: git-push
      config: {path: ./src}
---
"#,
            $stages
        )
    };
}
