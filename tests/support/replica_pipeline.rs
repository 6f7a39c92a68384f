//! The pipeline of issue #19's replica tests (tests/replicas.rs) and coordination benchmark
//! (crates/barge/benches/replicas.rs): `repos` Warehouses (`app0`…) watching
//! `ghcr.io/acme/app0`…, each with `stages_per_repo` Stages (`a0s0`…) auto-promoted straight
//! from it, each pinning the image in its own overlay (`env/s0`…) of the Warehouse's config
//! repository (`config0`…, reached as `https://git.example.com/acme/config0.git`).

use std::path::Path;
use std::time::Duration;

pub struct Pipeline {
    pub repos: usize,
    pub stages_per_repo: usize,
    /// Every Warehouse's discovery interval.
    pub interval: Duration,
}

impl Pipeline {
    pub fn stages(&self) -> usize {
        self.repos * self.stages_per_repo
    }

    /// The project, its auto-promotion policy, the Warehouses and the Stages, as one YAML
    /// stream.
    pub fn definitions(&self) -> String {
        let mut out = String::from(
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata: {name: shop}\n---\n\
             apiVersion: kargo.akuity.io/v1alpha1\nkind: ProjectConfig\nmetadata: {name: shop, namespace: shop}\n\
             spec:\n  promotionPolicies:\n    - stageSelector: {name: \"regex:.*\"}\n      autoPromotionEnabled: true\n",
        );
        for r in 0..self.repos {
            out.push_str(&format!(
                "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: app{r}, namespace: shop}}\n\
                 spec:\n  interval: {}s\n  subscriptions:\n    - image: {{repoURL: ghcr.io/acme/app{r}, constraint: ^1.0.0}}\n",
                self.interval.as_secs()
            ));
            for s in 0..self.stages_per_repo {
                out.push_str(&format!(
                    r#"---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {{name: a{r}s{s}, namespace: shop}}
spec:
  requestedFreight:
    - origin: {{kind: Warehouse, name: app{r}}}
      sources: {{direct: true}}
  promotionTemplate:
    spec:
      steps:
        - uses: git-clone
          config:
            repoURL: https://git.example.com/acme/config{r}.git
            checkout: [{{branch: main, path: ./src}}]
        - uses: kustomize-set-image
          config:
            path: ./src/env/s{s}
            images: [{{image: ghcr.io/acme/app{r}}}]
        - uses: git-commit
          config: {{path: ./src, message: "a{r}s{s}: ${{{{ imageFrom('ghcr.io/acme/app{r}').Tag }}}}"}}
        - uses: git-push
          config: {{path: ./src}}
"#
                ));
            }
        }
        out
    }

    /// The config repositories `config0.git`… below `git_root`, each's `main` holding every
    /// one of its Stages' overlays at tag 0.9.0.
    pub fn seed_repos(&self, git_root: &Path) {
        for r in 0..self.repos {
            let overlays: Vec<(String, String)> = (0..self.stages_per_repo)
                .map(|s| {
                    (
                        format!("env/s{s}/kustomization.yaml"),
                        format!("resources: [../../base]\nimages:\n  - name: ghcr.io/acme/app{r}\n    newTag: 0.9.0\n"),
                    )
                })
                .collect();
            let files: Vec<(&str, &str)> = overlays.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
            super::bare_repo(git_root, &format!("config{r}.git"), &files);
        }
    }

    /// `barge serve`'s rewrites sending the images to `registry_host` and the config
    /// repositories to a `git daemon` on `git_port`.
    pub fn rewrites(registry_host: &str, git_port: u16) -> [String; 4] {
        [
            "--rewrite".into(),
            format!("ghcr.io/acme/={registry_host}/acme/"),
            "--rewrite".into(),
            format!("https://git.example.com/acme/=git://127.0.0.1:{git_port}/"),
        ]
    }
}

/// The config repository (its number) a Stage `a<r>s<s>` promotes into.
pub fn repo_of(stage: &str) -> usize {
    let digits = stage.strip_prefix('a').and_then(|s| s.split('s').next());
    digits
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("not a pipeline Stage: {stage}"))
}
