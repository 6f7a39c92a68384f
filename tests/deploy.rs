//! deploy/: the Helm chart rendered and linted by Helm's own engine (`helm`: scripts/helm, Helm's
//! Go SDK), every rendered manifest validated offline against the JSON schemas generated from
//! Kubernetes' OpenAPI (`kubernetes-validate`, which bundles them), and deploy/Containerfile
//! read by a Dockerfile parser (`containerfile-json`: dockerfile-parse), since no image can be
//! built on the test machines. scripts/test-env installs all three into target/tools/bin
//! (scripts/install-helm, scripts/install-deploy-tools) and puts them on PATH.

mod support;

use serde::Deserialize;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The Kubernetes versions the rendered manifests must be valid for: the chart's oldest
/// (Chart.yaml's kubeVersion) and the newest kubernetes-validate knows.
const KUBE_VERSIONS: [&str; 2] = ["1.25.0", "1.37.0"];

/// The value sets the chart is rendered, linted and validated with.
const POSTGRES_3: &str = "
replicaCount: 3
database:
  type: postgres
  postgres: {existingSecret: barge-db, secretKey: dsn}
api:
  token: {existingSecret: barge-api, secretKey: api-token}
definitions:
  git: {url: 'https://git.example.com/org/platform.git//kargo?ref=main'}
podDisruptionBudget: {enabled: true}
";
const SQLITE_PVC: &str = "
database:
  type: sqlite
  sqlite: {size: 5Gi, storageClass: fast-ssd}
definitions:
  files:
    pipeline.yaml: |
      apiVersion: kargo.akuity.io/v1alpha1
      kind: Project
      metadata: {name: shop}
config:
  git:
    author: {name: barge, email: barge@example.com}
";
const NAMESPACED: &str = "
rbac:
  namespaced: true
  namespaces: [argocd, shop]
analysisRuns: cluster
definitions:
  configMap: {existing: shop-pipelines}
";
const EXPOSED: &str = "
ingress:
  enabled: true
  className: nginx
  hosts:
    - host: barge.example.com
      paths: [{path: /, pathType: Prefix}]
  tls: [{secretName: barge-tls, hosts: [barge.example.com]}]
serviceMonitor:
  enabled: true
  labels: {release: prometheus}
  tokenSecret: {name: barge-prometheus, key: viewer-token}
";

fn value_sets() -> [(&'static str, &'static str); 5] {
    [
        ("defaults", ""),
        ("postgres-3-replicas", POSTGRES_3),
        ("sqlite-pvc", SQLITE_PVC),
        ("namespaced-rbac", NAMESPACED),
        ("ingress-servicemonitor", EXPOSED),
    ]
}

/// The checkout's root, from this crate's own manifest directory.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn chart() -> PathBuf {
    root().join("deploy/helm/barge")
}

/// A tool scripts/test-env installs, run with `args`.
fn run_tool(tool: &str, args: &[&str]) -> Output {
    Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run `{tool}` ({e}): run ./scripts/test, or `. scripts/test-env` first, which installs it")
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `values` (YAML) in a file for `-f`.
fn values_file(dir: &Path, values: &str) -> PathBuf {
    let path = dir.join("values.yaml");
    std::fs::write(&path, values).unwrap();
    path
}

/// `helm template barge deploy/helm/barge --namespace barge -f VALUES`: the manifests as
/// text, or Helm's error.
fn template(values: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = values_file(dir.path(), values);
    let chart = chart();
    let out = run_tool(
        "helm",
        &[
            "template",
            "barge",
            chart.to_str().unwrap(),
            "--namespace",
            "barge",
            "--kube-version",
            KUBE_VERSIONS[1],
            "-f",
            file.to_str().unwrap(),
        ],
    );
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

/// The rendered manifests as JSON documents.
fn render(values: &str) -> Vec<Value> {
    let manifests = template(values).unwrap_or_else(|e| panic!("helm template failed: {e}"));
    yaml_serde::Deserializer::from_str(&manifests)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("helm rendered unreadable YAML ({e}):\n{manifests}"))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

fn all<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = all(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

fn container(docs: &[Value]) -> &Value {
    let containers = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "barge's pod has one container (no sidecar)");
    &containers[0]
}

fn env<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no env {name} in {}", container["env"]))
}

fn args(container: &Value) -> Vec<&str> {
    container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

fn volume<'a>(docs: &'a [Value], name: &str) -> Option<&'a Value> {
    one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
}

fn mount<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
}

/// Where the container mounts the named volume.
fn mount_path_of<'a>(container: &'a Value, name: &str) -> &'a str {
    mount(container, name).unwrap_or_else(|| panic!("no mount {name}"))["mountPath"]
        .as_str()
        .unwrap()
}

/// The rules barge's Kubernetes code needs (crates/barge-kube's `Objects` calls, by caller):
/// argocd-update/argocd-wait and Stage health get, list (selectors) and merge-patch
/// Applications; rollout-wait gets Rollouts; Job metrics create, get and watch Jobs and list
/// their Pods; `--analysis-runs cluster` creates, gets, watches and patches (terminates)
/// AnalysisRuns instead of running Jobs.
fn rule(group: &str, resource: &str, verbs: &[&str]) -> Value {
    json!({"apiGroups": [group], "resources": [resource], "verbs": verbs})
}

#[test]
fn chart_lints_strictly_with_every_value_set() {
    let chart = chart();
    for (name, values) in value_sets() {
        let dir = tempfile::tempdir().unwrap();
        let file = values_file(dir.path(), values);
        let out = run_tool(
            "helm",
            &[
                "lint",
                chart.to_str().unwrap(),
                "--strict",
                "--namespace",
                "barge",
                "--kube-version",
                KUBE_VERSIONS[0],
                "-f",
                file.to_str().unwrap(),
            ],
        );
        let said = text(&out.stdout) + &text(&out.stderr);
        assert!(out.status.success(), "helm lint --strict with {name}:\n{said}");
        assert!(said.contains("1 chart(s) linted, 0 chart(s) failed"), "{name}: {said}");
        assert!(
            !said.contains("[WARNING]") && !said.contains("[ERROR]"),
            "{name}: {said}"
        );
    }
}

#[test]
fn every_rendered_manifest_matches_the_kubernetes_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![(
        "deploy/kubernetes/barge.yaml".to_string(),
        root().join("deploy/kubernetes/barge.yaml"),
        std::fs::read_to_string(root().join("deploy/kubernetes/barge.yaml")).unwrap(),
    )];
    for (name, values) in value_sets() {
        let manifests = template(values).unwrap_or_else(|e| panic!("{name}: {e}"));
        let path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, &manifests).unwrap();
        files.push((name.to_string(), path, manifests));
    }
    for (name, path, manifests) in files {
        let docs: Vec<Value> = yaml_serde::Deserializer::from_str(&manifests)
            .map(|d| Value::deserialize(d).unwrap())
            .filter(|d| !d.is_null())
            .collect();
        // Custom resources: kubernetes-validate bundles only Kubernetes' own schemas, so the
        // ServiceMonitor (monitoring.coreos.com) is skipped and checked field by field in
        // `ingress_and_service_monitor_point_at_the_api_port`.
        let custom: Vec<&Value> = docs
            .iter()
            .filter(|d| d["apiVersion"] == "monitoring.coreos.com/v1")
            .collect();
        let mut argv = vec!["--strict"];
        for v in KUBE_VERSIONS {
            argv.extend(["-k", v]);
        }
        argv.push(path.to_str().unwrap());
        let out = run_tool("kubernetes-validate", &argv);
        let said = text(&out.stdout) + &text(&out.stderr);
        assert!(out.status.success(), "{name} does not validate:\n{said}");
        let lines: Vec<&str> = said.lines().collect();
        let passed = lines
            .iter()
            .filter(|l| l.starts_with("INFO ") && l.contains(" passed for resource "))
            .count();
        assert_eq!(
            passed,
            (docs.len() - custom.len()) * KUBE_VERSIONS.len(),
            "{name}: every built-in resource validated against each version:\n{said}"
        );
        let skipped: Vec<&&str> = lines.iter().filter(|l| l.starts_with("WARN ")).collect();
        assert_eq!(skipped.len(), custom.len() * KUBE_VERSIONS.len(), "{name}: {said}");
        assert!(
            skipped.iter().all(|l| l.contains("kind ServiceMonitor")),
            "{name}: {said}"
        );
        assert!(
            !lines.iter().any(|l| l.starts_with("ERROR") || l.starts_with("FATAL")),
            "{name}: {said}"
        );
    }
}

#[test]
fn defaults_run_one_hardened_replica_on_sqlite_with_probes_and_a_token_file() {
    let docs = render("");
    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(
        deployment["spec"]["strategy"]["type"], "Recreate",
        "two pods never share the SQLite volume"
    );
    let pod = &deployment["spec"]["template"]["spec"];
    let c = container(&docs);

    // The store: SQLite on the chart's claim.
    assert_eq!(env(c, "BARGE_DB")["value"], "sqlite:///var/lib/barge/barge.db");
    assert_eq!(mount_path_of(c, "data"), "/var/lib/barge");
    let claim = one(&docs, "PersistentVolumeClaim");
    assert_eq!(
        volume(&docs, "data").unwrap()["persistentVolumeClaim"]["claimName"],
        claim["metadata"]["name"]
    );

    // Probes: liveness on /healthz, readiness on /readyz (the store answering), both on the
    // port barge listens on.
    let port = c["ports"][0]["containerPort"].as_u64().unwrap();
    assert_eq!(c["ports"][0]["name"], "api");
    assert!(
        args(c).contains(&format!("--listen=0.0.0.0:{port}").as_str()),
        "{:?}",
        args(c)
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "api"})
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "api"})
    );

    // The token: a file from a Secret (never an argument or an environment value).
    let token_secret = all(&docs, "Secret")
        .into_iter()
        .find(|s| s["metadata"]["name"] == "barge-token")
        .expect("the chart's token Secret");
    let token_b64 = token_secret["data"]["token"].as_str().unwrap();
    assert!(token_b64.len() >= 64, "a generated 48-character token: {token_b64}");
    assert_eq!(volume(&docs, "token").unwrap()["secret"]["secretName"], "barge-token");
    assert!(args(c).contains(&format!("--token-file={}/token", mount_path_of(c, "token")).as_str()));

    // The security context: non-root, read-only root, no capabilities, RuntimeDefault seccomp.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_ne!(pod["securityContext"]["runAsUser"], 0);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    // ...so everything barge writes is on a volume: the work directory, HOME and /tmp on
    // emptyDirs.
    let work = mount_path_of(c, "work");
    assert!(volume(&docs, "work").unwrap()["emptyDir"].is_object());
    assert!(volume(&docs, "tmp").unwrap()["emptyDir"].is_object());
    assert_eq!(mount_path_of(c, "tmp"), "/tmp");
    for var in ["BARGE_WORK_DIR", "HOME"] {
        assert!(
            env(c, var)["value"].as_str().unwrap().starts_with(work),
            "{var} on the work volume"
        );
    }

    // Resources from BENCHMARKS.md's idle figure (31.8 MB): requested with headroom.
    assert_eq!(c["resources"]["requests"], json!({"cpu": "50m", "memory": "64Mi"}));
    assert_eq!(c["resources"]["limits"]["memory"], "512Mi");

    // Definitions: the chart's (empty) ConfigMap, read through kubelet's `..data` link.
    let defs = one(&docs, "ConfigMap");
    assert_eq!(
        volume(&docs, "definitions").unwrap()["configMap"]["name"],
        defs["metadata"]["name"]
    );
    assert_eq!(args(c)[0], format!("{}/..data/", mount_path_of(c, "definitions")));

    // RBAC: one ClusterRole with exactly what barge's code does, bound to the pod's account.
    let role = one(&docs, "ClusterRole");
    assert_eq!(
        role["rules"],
        json!([
            rule("argoproj.io", "applications", &["get", "list", "patch"]),
            rule("argoproj.io", "rollouts", &["get"]),
            rule("batch", "jobs", &["create", "get", "list", "watch"]),
            rule("", "pods", &["list"]),
        ])
    );
    let binding = one(&docs, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": "barge"}])
    );
    assert_eq!(
        one(&docs, "ServiceAccount")["metadata"]["name"],
        pod["serviceAccountName"]
    );
    assert!(all(&docs, "Role").is_empty() && all(&docs, "Ingress").is_empty());
    assert!(all(&docs, "ServiceMonitor").is_empty());

    // The Service reaches the pods' API port.
    let service = one(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "api");
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn postgres_runs_three_replicas_with_the_url_and_token_from_existing_secrets() {
    let docs = render(POSTGRES_3);
    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    let c = container(&docs);
    assert_eq!(
        env(c, "BARGE_DB")["valueFrom"]["secretKeyRef"],
        json!({"name": "barge-db", "key": "dsn"})
    );
    assert!(env(c, "BARGE_DB").get("value").is_none());
    // No volume for SQLite, no Secret made for what exists already.
    assert!(all(&docs, "PersistentVolumeClaim").is_empty());
    assert!(volume(&docs, "data").is_none() && mount(c, "data").is_none());
    assert!(
        all(&docs, "Secret").is_empty(),
        "the chart makes no Secret when both exist"
    );
    assert_eq!(volume(&docs, "token").unwrap()["secret"]["secretName"], "barge-api");
    assert!(args(c).contains(&format!("--token-file={}/api-token", mount_path_of(c, "token")).as_str()));
    // Definitions from git, fetched by barge itself: no ConfigMap, no sidecar, no init container.
    assert_eq!(args(c)[0], "https://git.example.com/org/platform.git//kargo?ref=main");
    assert!(all(&docs, "ConfigMap").is_empty() && volume(&docs, "definitions").is_none());
    assert!(deployment["spec"]["template"]["spec"]["initContainers"].is_null());
    let pdb = one(&docs, "PodDisruptionBudget");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn secrets_given_as_values_go_into_secrets_and_never_into_arguments() {
    let url = "postgres://barge:s3cret-pw@db.example.com/barge";
    let token = "tok-0123456789abcdef0123456789abcdef";
    let values = format!(
        "
replicaCount: 2
database: {{type: postgres, postgres: {{url: '{url}'}}}}
api: {{token: {{value: '{token}'}}}}
definitions:
  git: {{url: 'https://git.example.com/org/platform.git', credentialsSecret: git-creds}}
"
    );
    let manifests = template(&values).unwrap();
    let docs = render(&values);
    let secrets = all(&docs, "Secret");
    let db = secrets
        .iter()
        .find(|s| s["metadata"]["name"] == "barge-database")
        .expect("database Secret");
    assert_eq!(db["data"]["url"].as_str().unwrap(), base64(url));
    let tok = secrets
        .iter()
        .find(|s| s["metadata"]["name"] == "barge-token")
        .expect("token Secret");
    assert_eq!(tok["data"]["token"].as_str().unwrap(), base64(token));
    let c = container(&docs);
    assert_eq!(
        env(c, "BARGE_DB")["valueFrom"]["secretKeyRef"],
        json!({"name": "barge-database", "key": "url"})
    );
    // Only the Secrets carry them (base64): the plain text appears nowhere in the manifests.
    for secret in [url, "s3cret-pw", token] {
        assert!(!manifests.contains(secret), "{secret} in plain text in the manifests");
    }
    // The definitions' git credentials: git's store helper reads the mounted Secret's file.
    let helper = env(c, "GIT_CONFIG_VALUE_0")["value"].as_str().unwrap();
    assert_eq!(env(c, "GIT_CONFIG_KEY_0")["value"], "credential.helper");
    assert_eq!(env(c, "GIT_CONFIG_COUNT")["value"], "1");
    assert_eq!(
        helper,
        format!("store --file={}/credentials", mount_path_of(c, "git-credentials"))
    );
    assert_eq!(
        volume(&docs, "git-credentials").unwrap()["secret"]["secretName"],
        "git-creds"
    );
}

/// Standard base64 with padding (RFC 4648 section 4), as a Secret's `data` holds values.
fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

#[test]
fn sqlite_with_more_than_one_replica_is_refused_with_what_to_change() {
    let err = template("replicaCount: 3\n").expect_err("SQLite with 3 replicas must not render");
    assert!(
        err.contains("replicaCount=3 needs database.type=postgres: SQLite is one file on one pod's volume"),
        "{err}"
    );
    // The same holds when SQLite is asked for by name; PostgreSQL without a URL is refused too.
    assert!(
        template("replicaCount: 2\ndatabase: {type: sqlite}\n")
            .unwrap_err()
            .contains("replicaCount=2 needs")
    );
    let err = template("database: {type: postgres}\n").unwrap_err();
    assert!(err.contains("database.postgres.existingSecret"), "{err}");
    let err = template("database: {type: mysql}\n").unwrap_err();
    assert!(err.contains("database.type must be sqlite or postgres"), "{err}");
    let err = template("definitions: {git: {url: 'https://x/y.git'}, configMap: {existing: d}}\n").unwrap_err();
    assert!(err.contains("not several"), "{err}");
}

#[test]
fn namespaced_rbac_grants_roles_in_each_namespace_and_analysis_runs_in_cluster_mode() {
    let docs = render(NAMESPACED);
    assert!(all(&docs, "ClusterRole").is_empty() && all(&docs, "ClusterRoleBinding").is_empty());
    let roles = all(&docs, "Role");
    let bindings = all(&docs, "RoleBinding");
    let namespaces = |objs: &[&Value]| {
        objs.iter()
            .map(|o| o["metadata"]["namespace"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(namespaces(&roles), [json!("argocd"), json!("shop")]);
    assert_eq!(namespaces(&bindings), [json!("argocd"), json!("shop")]);
    let account = one(&docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"].clone();
    for (role, binding) in roles.iter().zip(&bindings) {
        // With --analysis-runs cluster the Rollouts controller runs the Jobs: barge needs
        // AnalysisRuns, and no Jobs or Pods.
        assert_eq!(
            role["rules"],
            json!([
                rule("argoproj.io", "applications", &["get", "list", "patch"]),
                rule("argoproj.io", "rollouts", &["get"]),
                rule(
                    "argoproj.io",
                    "analysisruns",
                    &["create", "get", "list", "watch", "patch"]
                ),
            ])
        );
        assert_eq!(
            binding["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]})
        );
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": account, "namespace": "barge"}])
        );
    }
    let c = container(&docs);
    assert!(args(c).contains(&"--analysis-runs=cluster"));
    // An existing ConfigMap of definitions, read through `..data`.
    assert_eq!(
        volume(&docs, "definitions").unwrap()["configMap"]["name"],
        "shop-pipelines"
    );
    assert!(all(&docs, "ConfigMap").is_empty());
    // Without namespaces the release's own namespace gets the Role.
    let docs = render("rbac: {namespaced: true}\n");
    assert_eq!(namespaces(&all(&docs, "Role")), [json!("barge")]);
}

#[test]
fn ingress_and_service_monitor_point_at_the_api_port() {
    let docs = render(EXPOSED);
    let service = one(&docs, "Service");
    let ingress = one(&docs, "Ingress");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(ingress["spec"]["tls"][0]["secretName"], "barge-tls");
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"], "barge.example.com");
    assert_eq!(
        rule["http"]["paths"][0],
        json!({"path": "/", "pathType": "Prefix", "backend": {"service": {"name": service["metadata"]["name"], "port": {"name": "api"}}}})
    );
    // The ServiceMonitor (no schema bundled for it; checked here field by field against the
    // Prometheus Operator's monitoring.coreos.com/v1 API).
    let monitor = one(&docs, "ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    for label in monitor["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &service["metadata"]["labels"][label.0], label.1,
            "the ServiceMonitor selects the Service"
        );
    }
    assert_eq!(monitor["spec"]["namespaceSelector"], json!({"matchNames": ["barge"]}));
    assert_eq!(
        monitor["spec"]["endpoints"],
        json!([{
            "port": "api",
            "path": "/metrics",
            "interval": "30s",
            "scrapeTimeout": "10s",
            "authorization": {"type": "Bearer", "credentials": {"name": "barge-prometheus", "key": "viewer-token"}}
        }])
    );
    assert_eq!(service["spec"]["ports"][0]["name"], "api");
    // Without a Secret of its own, Prometheus sends the API's token (the chart's Secret).
    let docs = render("serviceMonitor: {enabled: true}\napi: {token: {secretKey: api-token}}\n");
    let secret = one(&docs, "Secret");
    assert_eq!(
        one(&docs, "ServiceMonitor")["spec"]["endpoints"][0]["authorization"],
        json!({"type": "Bearer", "credentials": {"name": secret["metadata"]["name"], "key": "api-token"}})
    );
    assert!(secret["data"]["api-token"].is_string());
}

/// The definitions a chart-made ConfigMap holds load once each through the path the chart
/// gives barge: the ConfigMap's files laid out as kubelet's atomic writer writes a ConfigMap
/// volume (a hidden timestamped directory, a `..data` link to it, and a link per key; see
/// kubernetes pkg/volume/util/atomic_writer.go), then real `barge validate`.
#[test]
fn configmap_definitions_load_once_through_the_path_the_chart_gives_barge() {
    let pipelines = root().join("pipelines");
    let mut files = serde_json::Map::new();
    for name in ["guestbook.yaml", "analysis.yaml"] {
        files.insert(
            name.into(),
            std::fs::read_to_string(pipelines.join(name)).unwrap().into(),
        );
    }
    let values = serde_json::to_string(&json!({"definitions": {"files": files}})).unwrap();
    let docs = render(&values);
    let data = one(&docs, "ConfigMap")["data"].as_object().unwrap().clone();
    assert_eq!(data.len(), 2);

    let volume_root = tempfile::tempdir().unwrap();
    let stamped = volume_root.path().join("..2026_01_01_00_00_00.000000001");
    std::fs::create_dir(&stamped).unwrap();
    for (key, content) in &data {
        std::fs::write(stamped.join(key), content.as_str().unwrap()).unwrap();
        std::os::unix::fs::symlink(Path::new("..data").join(key), volume_root.path().join(key)).unwrap();
    }
    std::os::unix::fs::symlink(stamped.file_name().unwrap(), volume_root.path().join("..data")).unwrap();

    let c = container(&docs);
    let mount_path = mount_path_of(c, "definitions");
    let in_pod = args(c)[0];
    let here = volume_root
        .path()
        .join(in_pod.strip_prefix(mount_path).unwrap().trim_start_matches('/'));
    let loaded = support::validate_json(&[&here]);
    let expected = support::validate_json(&[&pipelines]);
    assert_eq!(loaded["resources"], expected["resources"], "{loaded}");
    assert_eq!(
        loaded["diagnostics"],
        json!([]),
        "each file loaded once, without duplicates: {loaded}"
    );
}

#[test]
fn containerfile_builds_barge_and_runs_serve_as_a_non_root_user() {
    let path = root().join("deploy/Containerfile");
    let out = run_tool("containerfile-json", &[path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let instructions = parsed["instructions"].as_array().unwrap();
    const KNOWN: [&str; 18] = [
        "FROM",
        "RUN",
        "CMD",
        "LABEL",
        "EXPOSE",
        "ENV",
        "ADD",
        "COPY",
        "ENTRYPOINT",
        "VOLUME",
        "USER",
        "WORKDIR",
        "ARG",
        "ONBUILD",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "SHELL",
        "MAINTAINER",
    ];
    for i in instructions {
        let name = i["instruction"].as_str().unwrap();
        assert!(
            KNOWN.contains(&name),
            "unknown instruction {name} at line {}",
            i["startline"]
        );
    }
    let stages = parsed["stages"].as_array().unwrap();
    // Build args first, then two stages: the Rust build and the runtime.
    assert!(stages[0].as_array().unwrap().iter().all(|i| i["instruction"] == "ARG"));
    let stages: Vec<&Vec<Value>> = stages
        .iter()
        .map(|s| s.as_array().unwrap())
        .filter(|s| s[0]["instruction"] == "FROM")
        .collect();
    assert_eq!(stages.len(), 2, "multi-stage: build and runtime");
    let values = |stage: &[Value], what: &str| -> Vec<String> {
        stage
            .iter()
            .filter(|i| i["instruction"] == what)
            .map(|i| i["value"].as_str().unwrap().to_string())
            .collect()
    };

    let build = stages[0];
    let from = &values(build, "FROM")[0];
    assert!(from.contains("/rust:") && from.ends_with(" AS build"), "{from}");
    assert!(
        values(build, "RUN")
            .iter()
            .any(|r| r.contains("cargo build --release --locked -p barge"))
    );
    // What the build copies exists here (it copies no target/ directory).
    for copy in values(build, "COPY") {
        let parts: Vec<&str> = copy.split_whitespace().collect();
        for source in &parts[..parts.len() - 1] {
            assert!(root().join(source).exists(), "COPY {source}: not in the repository");
        }
    }

    let runtime = stages[1];
    let base = &values(runtime, "FROM")[0];
    assert!(base.contains("debian:") && base.contains("-slim"), "{base}");
    let installs = values(runtime, "RUN").join(" ");
    let apt = installs
        .split("apt-get install")
        .nth(1)
        .expect("the runtime installs packages");
    for package in ["git", "ca-certificates", "gnupg", "openssh-client"] {
        assert!(
            apt.split_whitespace().any(|w| w == package),
            "{package} is not installed: {apt}"
        );
    }
    assert!(
        values(runtime, "COPY")
            .iter()
            .any(|c| c.starts_with("--from=build ") && c.ends_with(" /usr/local/bin/barge")),
        "the binary comes from the build stage"
    );
    // The last USER is a numeric, non-root uid (so runAsNonRoot can verify it).
    let user = values(runtime, "USER").pop().expect("a USER");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("USER {user} is not numeric"));
    assert_ne!(uid, 0);
    let docs = render("");
    let pod_user = &one(&docs, "Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"];
    assert_eq!(pod_user, &json!(uid), "the chart runs the image's user");
    // Exec-form entrypoint `barge serve` (JSON, so signals reach barge directly).
    let entrypoint: Value = serde_json::from_str(&values(runtime, "ENTRYPOINT").pop().unwrap()).expect("exec form");
    assert_eq!(entrypoint, json!(["/usr/local/bin/barge", "serve"]));
    let cmd: Value = serde_json::from_str(&values(runtime, "CMD").pop().unwrap()).expect("exec form");
    assert!(cmd.is_array());
    assert_eq!(values(runtime, "EXPOSE"), ["7070"]);
}
