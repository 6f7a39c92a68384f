//! helm-template end to end with Helm's real engine: the `helm` on PATH is Helm's Go SDK
//! (`scripts/install-helm`, which `scripts/test` runs, puts it in target/tools/bin). A chart
//! with a dependency, CRDs and a test hook, two values files and setValues, promoted from a
//! real git repository into it; and a broken template failing the step with Helm's message.

use barge_testkit::git as git_kit;
mod support;

use barge_core::eval::StepStatus;
use barge_core::promotion::{Phase, State};
use git_kit::git;
use std::path::PathBuf;

const CHART_YAML: &str = "\
apiVersion: v2
name: shop
version: 0.1.0
dependencies:
  - name: cache
    version: 1.2.0
    repository: file://charts/cache
";

const CHART_VALUES: &str = "\
image: {repository: ghcr.io/acme/app, tag: '1.0'}
replicas: 1
env: dev
cache: {size: 1Gi, tier: basic}
";

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
  namespace: {{ .Release.Namespace }}
spec:
  replicas: {{ .Values.replicas }}
  template:
    spec:
      containers:
        - name: web
          image: {{ .Values.image.repository }}:{{ .Values.image.tag }}
          env:
            - {name: ENV, value: {{ .Values.env | quote }}}
";

const SERVICE: &str = "\
apiVersion: v1
kind: Service
metadata: {name: {{ .Release.Name }}-web}
spec:
  ports: [{port: 80}]
";

/// A test hook: skipTests leaves it out.
const TEST_POD: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-test
  annotations: {helm.sh/hook: test}
spec:
  containers: [{name: t, image: busybox}]
";

const CRD: &str = "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: carts.shop.example.com}
";

const CACHE_CHART_YAML: &str = "apiVersion: v2\nname: cache\nversion: 1.2.0\n";

const CACHE_VALUES: &str = "size: 512Mi\ntier: none\nnote: none\n";

/// The subchart's template sees the parent's `cache:` values over its own defaults.
const CACHE_CONFIGMAP: &str = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: {{ .Release.Name }}-cache}
data:
  size: {{ .Values.size | quote }}
  tier: {{ .Values.tier | quote }}
  note: {{ .Values.note | quote }}
  kube: {{ .Capabilities.KubeVersion.Version | quote }}
";

/// A bare repository `config.git` under `root` holding `files`; promotes Stage dev of project
/// shop, whose steps clone main into ./r, run step `uses` with `config` (a YAML flow map),
/// then commit and push; returns the outcome and the bare repository.
async fn promote(
    root: &std::path::Path,
    files: &[(&str, &str)],
    uses: &str,
    config: &str,
) -> (barge_promote::Outcome, PathBuf) {
    let bare = git_kit::bare_repo(root, "config.git", files);
    let e = support::engine(
        root,
        vec![support::rewrite_to_dir("https://git.example.com/acme/", root)],
    );
    let steps = format!(
        r#"
        - uses: git-clone
          config: {{repoURL: https://git.example.com/acme/config.git, checkout: [{{branch: main, path: ./r}}]}}
        - uses: {uses}
          config: {config}
        - uses: git-commit
          config: {{path: ./r, message: render}}
        - uses: git-push
          config: {{path: ./r}}
"#
    );
    let p = support::plan(
        &support::dev_stage(&steps),
        "dev",
        support::image_freight("ghcr.io/acme/app", "1.10"),
    );
    let out = e.run(&p, State::new(&p.steps), &support::Quiet, &support::Quiet).await;
    (out, bare)
}

#[tokio::test]
async fn helm_template_renders_a_chart_with_a_dependency_values_files_and_set_values() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("chart/Chart.yaml", CHART_YAML),
        ("chart/values.yaml", CHART_VALUES),
        ("chart/crds/carts.yaml", CRD),
        ("chart/templates/deployment.yaml", DEPLOYMENT),
        ("chart/templates/service.yaml", SERVICE),
        ("chart/templates/tests/test-web.yaml", TEST_POD),
        ("chart/charts/cache/Chart.yaml", CACHE_CHART_YAML),
        ("chart/charts/cache/values.yaml", CACHE_VALUES),
        ("chart/charts/cache/templates/configmap.yaml", CACHE_CONFIGMAP),
        ("envs/common.yaml", "replicas: 2\nenv: common\ncache: {size: 2Gi}\n"),
        ("envs/prod.yaml", "env: prod\ncache: {tier: gold}\n"),
    ];
    let config = r#"{path: ./r/chart, outPath: ./r/out/shop.yaml, releaseName: shop, namespace: prod,
            valuesFiles: [./r/envs/common.yaml, ./r/envs/prod.yaml],
            setValues: [{key: image.tag, value: "${{ quote(imageFrom('ghcr.io/acme/app').Tag) }}"},
                        {key: replicas, value: 3},
                        {key: cache.note, value: "a,b=c", literal: true}],
            includeCRDs: true, skipTests: true, kubeVersion: "1.30.2"}"#;
    let (out, bare) = promote(dir.path(), &files, "helm-template", config).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    // The file byte for byte (the `git` helper trims its output).
    let shown = std::process::Command::new("git")
        .args(["show", "main:out/shop.yaml"])
        .current_dir(&bare)
        .output()
        .unwrap();
    let rendered = String::from_utf8(shown.stdout).unwrap();
    // Helm's `helm template` output: CRDs first, then manifests in Helm's install order
    // (ConfigMap, Service, Deployment), each under its `# Source:` header, keeping each
    // template's trailing newline as Helm 4's SplitManifests does; the test hook is left out.
    // Values: setValues over prod.yaml over common.yaml over the chart's defaults; the literal
    // keeps its comma; the subchart sees the parent's `cache:` over its own defaults.
    assert_eq!(
        rendered,
        r#"---
# Source: shop/crds/carts.yaml
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: carts.shop.example.com}

---
# Source: shop/charts/cache/templates/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata: {name: shop-cache}
data:
  size: "2Gi"
  tier: "gold"
  note: "a,b=c"
  kube: "v1.30.2"

---
# Source: shop/templates/service.yaml
apiVersion: v1
kind: Service
metadata: {name: shop-web}
spec:
  ports: [{port: 80}]

---
# Source: shop/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop-web
  namespace: prod
spec:
  replicas: 3
  template:
    spec:
      containers:
        - name: web
          image: ghcr.io/acme/app:1.10
          env:
            - {name: ENV, value: "prod"}
"#
    );
}

/// buildDependencies runs `helm dependency build`: a `file://` dependency outside the chart is
/// packaged into charts/ and rendered.
#[tokio::test]
async fn helm_template_builds_file_dependencies_first() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        (
            "chart/Chart.yaml",
            "apiVersion: v2\nname: shop\nversion: 0.1.0\ndependencies:\n  - {name: cache, version: 1.2.0, repository: file://../cache}\n",
        ),
        ("chart/values.yaml", "cache: {tier: gold}\n"),
        ("cache/Chart.yaml", CACHE_CHART_YAML),
        ("cache/values.yaml", CACHE_VALUES),
        ("cache/templates/configmap.yaml", CACHE_CONFIGMAP),
    ];
    let config = "{path: ./r/chart, outPath: ./r/out, releaseName: shop, buildDependencies: true}";
    let (out, bare) = promote(dir.path(), &files, "helm-template", config).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    let rendered = git(&bare, &["show", "main:out/configmap-shop-cache.yaml"]);
    assert!(rendered.contains("tier: \"gold\"\n  note: \"none\"\n"), "{rendered}");
}

#[tokio::test]
async fn a_broken_template_fails_the_step_with_helms_message() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("chart/Chart.yaml", "apiVersion: v2\nname: shop\nversion: 0.1.0\n"),
        ("chart/templates/cm.yaml", "data: {x: {{ .Values.missing.field }}}\n"),
    ];
    let config = "{path: ./r/chart, outPath: ./r/out.yaml}";
    let (out, bare) = promote(dir.path(), &files, "helm-template", config).await;
    assert_eq!(out.phase, Phase::Errored, "{}", out.message);
    let step = &out.state.steps[1];
    assert_eq!(step.status, StepStatus::Errored);
    assert!(
        step.message.contains("helm template failed")
            && step.message.contains("shop/templates/cm.yaml")
            && step.message.contains("nil pointer evaluating interface {}.field"),
        "{}",
        step.message
    );
    // Nothing was pushed.
    assert_eq!(git(&bare, &["rev-list", "--count", "main"]).trim(), "1");
}

/// kustomize-build runs `kustomize build --enable-helm` (Kargo always enables the Helm chart
/// inflator), whose helmCharts generator runs the `helm` on PATH (`helm version --short`, then
/// `helm template ... -f`).
#[tokio::test]
async fn kustomize_build_inflates_helm_charts_with_the_helm_on_path() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("app/charts/cache/Chart.yaml", CACHE_CHART_YAML),
        ("app/charts/cache/values.yaml", CACHE_VALUES),
        ("app/charts/cache/templates/configmap.yaml", CACHE_CONFIGMAP),
        (
            "app/kustomization.yaml",
            "helmCharts:\n  - {name: cache, releaseName: shop, namespace: prod, valuesInline: {tier: gold}}\nnamePrefix: eu-\n",
        ),
    ];
    let config = "{path: ./r/app, outPath: ./r/out.yaml}";
    let (out, bare) = promote(dir.path(), &files, "kustomize-build", config).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    let rendered = git(&bare, &["show", "main:out.yaml"]);
    assert!(rendered.contains("name: eu-shop-cache"), "{rendered}");
    assert!(rendered.contains("tier: gold"), "{rendered}");
    assert!(rendered.contains("size: 512Mi"), "{rendered}");
}

/// A chart template showing what Helm's Capabilities say.
const CAPABILITIES_CONFIGMAP: &str = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: caps}
data:
  kube: {{ .Capabilities.KubeVersion.Version | quote }}
  widgets: {{ .Capabilities.APIVersions.Has \"widgets.example.com/v1\" | quote }}
";

/// kustomize-build's `plugin.helm` sets what every chart of helmCharts sees
/// (`--helm-kube-version`, `--helm-api-versions`, as Kargo's HelmConfig does).
#[tokio::test]
async fn kustomize_build_plugin_helm_sets_the_kube_version_and_api_versions_charts_see() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        (
            "app/charts/caps/Chart.yaml",
            "apiVersion: v2\nname: caps\nversion: 0.1.0\n",
        ),
        ("app/charts/caps/values.yaml", "{}\n"),
        ("app/charts/caps/templates/configmap.yaml", CAPABILITIES_CONFIGMAP),
        (
            "app/kustomization.yaml",
            "helmCharts:\n  - {name: caps, releaseName: caps}\n",
        ),
    ];
    let config = "{path: ./r/app, outPath: ./r/out.yaml, plugin: {helm: {kubeVersion: v1.29.3, apiVersions: [widgets.example.com/v1]}}}";
    let (out, bare) = promote(dir.path(), &files, "kustomize-build", config).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    let rendered = git(&bare, &["show", "main:out.yaml"]);
    assert!(rendered.contains("kube: v1.29.3"), "{rendered}");
    assert!(rendered.contains("widgets: \"true\""), "{rendered}");
}

const MANIFESTS: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: prod}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: Web, namespace: prod}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: prod}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
";

/// The files of directory `path` on branch main of `bare`, sorted.
fn files_in(bare: &std::path::Path, path: &str) -> Vec<String> {
    let listed = git(bare, &["ls-tree", "--name-only", &format!("main:{path}")]);
    let mut names: Vec<String> = listed.lines().map(str::to_string).collect();
    names.sort();
    names
}

/// kustomize-build into a directory names files as Kargo's `outputFormat` says: `kargo` (the
/// default) `[namespace-]kind-name.yaml`; `kustomize` as `kustomize build -o dir/` does,
/// `[namespace_]group_version_kind_name.yaml` with the namespace only when the namespaced
/// resources are in several (cluster-scoped kinds are in none).
#[tokio::test]
async fn kustomize_build_names_files_by_output_format() {
    let one_namespace = [
        ("app/all.yaml", MANIFESTS),
        ("app/kustomization.yaml", "resources: [all.yaml]\n"),
    ];
    let several =
        format!("{MANIFESTS}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg, namespace: staging}}\n");
    let several_namespaces = [
        ("app/all.yaml", several.as_str()),
        ("app/kustomization.yaml", "resources: [all.yaml]\n"),
    ];
    for (files, format, expected) in [
        (
            &one_namespace,
            "",
            vec![
                "ingressclass-nginx.yaml",
                "namespace-prod.yaml",
                "prod-deployment-web.yaml",
                "prod-service-web.yaml",
            ],
        ),
        (
            &one_namespace,
            ", outputFormat: kustomize",
            vec![
                "apps_v1_deployment_web.yaml",
                "networking.k8s.io_v1_ingressclass_nginx.yaml",
                "v1_namespace_prod.yaml",
                "v1_service_web.yaml",
            ],
        ),
        (
            &several_namespaces,
            ", outputFormat: kustomize",
            vec![
                "networking.k8s.io_v1_ingressclass_nginx.yaml",
                "prod_apps_v1_deployment_web.yaml",
                "prod_v1_service_web.yaml",
                "staging_v1_configmap_cfg.yaml",
                "v1_namespace_prod.yaml",
            ],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = format!("{{path: ./r/app, outPath: ./r/out{format}}}");
        let (out, bare) = promote(dir.path(), files, "kustomize-build", &config).await;
        assert_eq!(out.phase, Phase::Succeeded, "{format}: {}", out.message);
        assert_eq!(files_in(&bare, "out"), expected, "{format}");
        let deployment = expected.iter().find(|f| f.contains("deployment")).unwrap();
        let text = git(&bare, &["show", &format!("main:out/{deployment}")]);
        assert!(text.starts_with("apiVersion: apps/v1\nkind: Deployment\n"), "{text}");
    }
}

/// A value outside Kargo's enum fails the step and says which values there are.
#[tokio::test]
async fn kustomize_build_refuses_an_unknown_output_format() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("app/all.yaml", MANIFESTS),
        ("app/kustomization.yaml", "resources: [all.yaml]\n"),
    ];
    let (out, _) = promote(
        dir.path(),
        &files,
        "kustomize-build",
        "{path: ./r/app, outPath: ./r/out, outputFormat: flat}",
    )
    .await;
    assert_eq!(out.phase, Phase::Errored, "{}", out.message);
    let step = &out.state.steps[1];
    assert!(
        step.message
            .contains("outputFormat \"flat\" is neither `kargo` nor `kustomize`"),
        "{}",
        step.message
    );
}
