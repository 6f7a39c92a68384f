//! The config of each promotion step barge runs: one type per step, read by the engine after
//! expressions are evaluated, and used by validation to report unknown fields (at their
//! position) before a promotion starts. Fields follow Kargo's step schemas.

use crate::schema::{Schema, Shape};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

macro_rules! step_config {
    ($(#[$doc:meta])* $name:ident { $($(#[$fattr:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Deserialize, Schema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            $($(#[$fattr])* #[serde(default)] pub $field: $ty,)*
        }
    };
}

step_config!(
    /// git-clone.
    GitClone {
        /// The repository to clone.
        #[serde(rename = "repoURL")]
        repo_url: String,
        /// What to check out, and where.
        checkout: Vec<GitCheckout>,
        /// Skip TLS certificate verification for this repository: git's `http.sslVerify=false`
        /// for every git command of these checkouts (clone, fetch, push), never a global setting.
        #[serde(rename = "insecureSkipTLSVerify")]
        insecure_skip_tls_verify: bool,
        /// Initialise the checkouts' submodules, recursively (`git submodule update --init
        /// --recursive`), with the repository's credentials.
        recurse_submodules: bool,
        /// A blobless fetch (`--filter=blob:none`): file contents are fetched when checked out.
        /// barge's fetches are always blobless where the server allows it, so this changes
        /// nothing.
        blobless: bool,
        /// The identity of commits made in these checkouts.
        author: Option<GitAuthor>,
    }
);

step_config!(
    /// One checkout of git-clone.
    GitCheckout {
        /// A branch (the default: main).
        branch: Option<String>,
        /// A tag.
        tag: Option<String>,
        /// A commit SHA.
        commit: Option<String>,
        /// Deprecated: check out the commit the Freight carries for this repository.
        from_freight: bool,
        /// With fromFreight: the Freight origin (`{kind: Warehouse, name: …}`) to take it from.
        from_origin: Option<Value>,
        /// Start the branch as an empty (orphan) branch when the remote has none.
        create: bool,
        /// Where, relative to the work directory.
        path: String,
        /// The key of this checkout in the `commits` output.
        #[serde(rename = "as")]
        alias: Option<String>,
        /// Check out only these directories (and the files at the repository's root): a
        /// cone-mode sparse checkout. Directory paths, no globs.
        sparse: Vec<String>,
    }
);

step_config!(
    /// A commit identity.
    GitAuthor {
        /// Name.
        name: Option<String>,
        /// Email.
        email: Option<String>,
        /// An ASCII-armoured GPG private key (e.g. `${{ secret('git').signingKey }}`): commits in
        /// these checkouts are signed with it.
        signing_key: Option<String>,
    }
);

step_config!(
    /// git-clear and other steps that take only a path.
    PathOnly {
        /// A path relative to the work directory.
        path: String,
    }
);

step_config!(
    /// git-commit.
    GitCommit {
        /// The checkout to commit in.
        path: String,
        /// The commit message (the promotion trailer is appended).
        message: Option<String>,
        /// Deprecated: the messages are the `commitMessage` outputs of these steps.
        message_from_steps: Vec<String>,
        /// Deprecated: the identity of this commit.
        author: Option<GitAuthor>,
    }
);

step_config!(
    /// git-push.
    GitPush {
        /// The checkout to push.
        path: String,
        /// The branch to push to (default: the checked-out branch).
        target_branch: Option<String>,
        /// Push to `kargo/promotion/<promotion>`.
        generate_target_branch: bool,
        /// Push attempts while others win the race (default 10).
        max_attempts: Option<u32>,
        /// Overwrite the branch with this checkout's history (commits only the remote has are
        /// dropped); no rebase, no retries. Not with `tag`.
        force: bool,
        /// Accepted for Kargo compatibility; the transport is git's.
        provider: Option<String>,
        /// Push this tag instead of a branch.
        tag: Option<String>,
    }
);

step_config!(
    /// github-push: the checkout's commits replayed through GitHub's REST API (blobs, trees,
    /// commits, then the branch ref), so GitHub signs them.
    GitHubPush {
        /// The checkout to push.
        path: String,
        /// The branch to push to (default: the checked-out branch).
        target_branch: Option<String>,
        /// Push to `kargo/promotion/<promotion>` (overwritten if it exists, as Kargo does).
        generate_target_branch: bool,
        /// Push attempts while others win the race (default 10).
        max_attempts: Option<u32>,
        /// Overwrite the branch with this checkout's history (commits only the remote has are
        /// dropped); no rebase, no retries.
        force: bool,
        /// Not supported (`unsupported-step-option`): the system's TLS checks apply.
        #[serde(rename = "insecureSkipTLSVerify")]
        insecure_skip_tls_verify: bool,
    }
);

step_config!(
    /// git-tag.
    GitTag {
        /// The checkout.
        path: String,
        /// The tag.
        tag: String,
        /// The annotation (default: the tag).
        message: Option<String>,
        /// Move an existing tag.
        force: bool,
    }
);

step_config!(
    /// git-open-pr.
    GitOpenPr {
        /// The repository.
        #[serde(rename = "repoURL")]
        repo_url: String,
        /// github, gitlab, gitea, azure or bitbucket (default: from the host name).
        provider: Option<String>,
        /// The branch with the changes.
        source_branch: Option<String>,
        /// Deprecated: the `branch` output of this step.
        source_branch_from_step: Option<String>,
        /// The branch to merge into (default main).
        target_branch: Option<String>,
        /// Title (default: "Promote <freight> to <stage>").
        title: Option<String>,
        /// Description.
        description: Option<String>,
        /// Labels.
        labels: Vec<String>,
        /// Deprecated: a no-op in Kargo, and in barge.
        create_target_branch: bool,
        /// Not supported (`unsupported-step-option`).
        #[serde(rename = "insecureSkipTLSVerify")]
        insecure_skip_tls_verify: bool,
    }
);

step_config!(
    /// git-wait-for-pr and git-merge-pr.
    GitPr {
        /// The repository.
        #[serde(rename = "repoURL")]
        repo_url: String,
        /// github, gitlab, gitea, azure or bitbucket (default: from the host name).
        provider: Option<String>,
        /// The PR's number (a number or a string holding one).
        pr_number: Option<Value>,
        /// Deprecated: the PR opened by this step.
        pr_number_from_step: Option<String>,
        /// git-merge-pr: merge, squash or rebase.
        merge_method: Option<String>,
        /// git-merge-pr: wait while the PR is not mergeable yet.
        wait: bool,
        /// Accepted; the engine's poll interval applies.
        poll_interval: Option<String>,
        /// Not supported (`unsupported-step-option`).
        #[serde(rename = "insecureSkipTLSVerify")]
        insecure_skip_tls_verify: bool,
    }
);

step_config!(
    /// yaml-update, json-update, toml-update, hcl-update.
    FileUpdate {
        /// The file.
        path: String,
        /// Keys to set (dotted paths; `\.` for a dot inside a key) and their values. hcl-update:
        /// a block's identifier is followed by its labels (`resource.TYPE.NAME.attribute`), and
        /// values are strings, numbers or booleans.
        updates: Vec<KeyValue>,
    }
);

step_config!(
    /// One update.
    KeyValue {
        /// `a.b.0.c`.
        key: String,
        /// The new value.
        value: Value,
    }
);

step_config!(
    /// helm-update-chart.
    HelmUpdateChart {
        /// The chart directory (holding Chart.yaml).
        path: String,
        /// The dependencies to set, each matched by repository and name (at least one when given).
        charts: Option<Vec<ChartDependencyUpdate>>,
    }
);

step_config!(
    /// One dependency of helm-update-chart.
    ChartDependencyUpdate {
        /// The dependency's repository, as written in Chart.yaml (`https://…`, `oci://…`).
        repository: String,
        /// The dependency's name, as written in Chart.yaml.
        name: String,
        /// The version to set, e.g. `${{ chartFrom(...).Version }}`.
        version: String,
    }
);

step_config!(
    /// yaml-merge.
    YamlMerge {
        /// The YAML files to merge, in order; a later file's values win.
        in_files: Vec<String>,
        /// The merged file, created or replaced.
        out_file: String,
        /// Skip input files that do not exist (default: a missing file is an error).
        ignore_missing_files: bool,
    }
);

step_config!(
    /// yaml-parse, json-parse, toml-parse.
    FileParse {
        /// The file.
        path: String,
        /// Outputs computed from the document (its top-level keys are variables).
        outputs: Vec<NamedExpression>,
    }
);

step_config!(
    /// An output and the expression that computes it.
    NamedExpression {
        /// The output's name.
        name: String,
        /// An expression (with or without `${{ }}`).
        from_expression: String,
    }
);

step_config!(
    /// kustomize-set-image.
    KustomizeSetImage {
        /// The directory holding kustomization.yaml.
        path: String,
        /// The images to set (default: every image of the Freight).
        images: Option<Vec<KustomizeImage>>,
    }
);

step_config!(
    /// One image of kustomize-set-image.
    KustomizeImage {
        /// The image repository, as in the Freight.
        image: String,
        /// Set this tag (default: the Freight's).
        tag: Option<String>,
        /// Set this digest.
        digest: Option<String>,
        /// Use the Freight's digest instead of its tag.
        use_digest: bool,
        /// Replace the image name.
        new_name: Option<String>,
        /// The name the manifests use (default: `image`).
        name: Option<String>,
        /// Accepted (the Freight's origin disambiguates).
        from_origin: Option<Value>,
    }
);

step_config!(
    /// kustomize-build.
    KustomizeBuild {
        /// The kustomization directory.
        path: String,
        /// A .yaml file, or a directory (one file per resource).
        out_path: String,
        /// File names when `outPath` is a directory: `kargo` (the default:
        /// `[namespace-]kind-name.yaml`) or `kustomize` (`kustomize build -o dir/`'s
        /// `[namespace_]group_version_kind_name.yaml`, the namespace only when there are several).
        output_format: Option<String>,
        /// Options of kustomize's builtin plugins.
        plugin: Option<KustomizePlugin>,
    }
);

step_config!(
    /// kustomize-build's plugin options.
    KustomizePlugin {
        /// Options of the Helm chart inflator (`helmCharts`, which kustomize-build always enables).
        helm: Option<KustomizeHelm>,
    }
);

step_config!(
    /// kustomize-build's Helm chart inflator options.
    KustomizeHelm {
        /// `--helm-api-versions`: the API versions the charts see (`.Capabilities.APIVersions`).
        api_versions: Vec<String>,
        /// `--helm-kube-version`: the Kubernetes version the charts see.
        kube_version: Option<String>,
    }
);

step_config!(
    /// helm-template.
    HelmTemplate {
        /// The chart directory.
        path: String,
        /// A .yaml file, or a directory (one file per resource).
        out_path: String,
        /// Release name (default release-name).
        release_name: Option<String>,
        /// Accepted.
        use_release_name: bool,
        /// Namespace.
        namespace: Option<String>,
        /// Values files.
        values_files: Vec<String>,
        /// Skip values files that do not exist.
        ignore_missing_value_files: bool,
        /// `--set` / `--set-literal` values.
        set_values: Vec<HelmSetValue>,
        /// Run `helm dependency build` first.
        build_dependencies: bool,
        /// Include CRDs.
        #[serde(rename = "includeCRDs")]
        include_crds: bool,
        /// Leave hooks out.
        disable_hooks: bool,
        /// Leave tests out.
        skip_tests: bool,
        /// `--kube-version`.
        kube_version: Option<String>,
        /// `--api-versions`.
        api_versions: Vec<String>,
        /// Accepted.
        out_layout: Option<String>,
    }
);

step_config!(
    /// A helm-template value.
    HelmSetValue {
        /// The key.
        key: String,
        /// The value.
        value: Value,
        /// `--set-literal`.
        literal: bool,
    }
);

step_config!(
    /// copy.
    Copy {
        /// A file or directory.
        in_path: String,
        /// Where to copy it.
        out_path: String,
    }
);

step_config!(
    /// delete.
    Delete {
        /// One path.
        path: Option<String>,
        /// More paths.
        paths: Vec<String>,
        /// A missing path (or a glob matching nothing) is an error.
        strict: bool,
        /// `path` and `paths` are glob patterns (`*`, `?`, `[abc]`, `**/`), matching files and
        /// directories.
        paths_are_globs: bool,
    }
);

step_config!(
    /// tar.
    Tar {
        /// The file or directory to archive.
        in_path: String,
        /// The archive to create (replaced if it exists).
        out_path: String,
        /// `.gitignore` lines (one per line) of paths to leave out (default: `.git`).
        ignore: Option<String>,
        /// Compress the archive with gzip.
        gzip: bool,
    }
);

step_config!(
    /// untar.
    Untar {
        /// The archive (plain or gzip-compressed, told by its first bytes).
        in_path: String,
        /// The directory to extract into (replaced if it exists).
        out_path: String,
        /// Leading path components to strip from each entry's name.
        strip_components: u32,
        /// `.gitignore` lines (one per line) of entries to leave out (default: `.git`).
        ignore: Option<String>,
    }
);

step_config!(
    /// file-write.
    FileWrite {
        /// The file.
        path: String,
        /// Its contents (non-strings are written as JSON).
        contents: Value,
        /// Replace an existing file (default true).
        overwrite: Option<bool>,
        /// Octal mode (default 0600).
        permissions: Option<String>,
    }
);

step_config!(
    /// http.
    Http {
        /// The URL.
        url: String,
        /// Method (default GET).
        method: Option<String>,
        /// Headers.
        headers: Vec<NameValue>,
        /// Query parameters.
        query_params: Vec<NameValue>,
        /// Request body.
        body: Option<Value>,
        /// The request body: this file of the work directory (at most 2 MiB; not with `body`).
        body_from_file: Option<String>,
        /// Go duration (default 10s).
        timeout: Option<String>,
        /// Send the request through this HTTP proxy (`http://[user:password@]host:port`; an
        /// `https://` URL is tunnelled with CONNECT). Empty: no proxy.
        proxy: Option<String>,
        /// Not supported (`unsupported-step-option`).
        #[serde(rename = "insecureSkipTLSVerify")]
        insecure_skip_tls_verify: bool,
        /// Done when true (over `response{status, headers, body}`).
        success_expression: Option<String>,
        /// Failed when true.
        failure_expression: Option<String>,
        /// When failureExpression is true: a string expression over the response added to the
        /// failure's message (e.g. `response.body.message`).
        error_expression: Option<String>,
        /// Read the response body as `application/json`, `application/yaml` or `text/plain`
        /// (default: by its Content-Type; JSON when it parses, else text).
        response_content_type: Option<String>,
        /// Go duration between polls while neither expression decides (default: the
        /// engine's poll interval, which is also the least).
        poll_interval: Option<String>,
        /// Outputs computed from the response.
        outputs: Vec<NamedExpression>,
    }
);

step_config!(
    /// http-download.
    HttpDownload {
        /// The URL to GET.
        url: String,
        /// The file to write.
        out_path: String,
        /// Replace an existing file (default: an existing file is an error).
        allow_overwrite: bool,
        /// Headers.
        headers: Vec<NameValue>,
        /// Query parameters.
        query_params: Vec<NameValue>,
        /// Not supported: the system's TLS checks apply.
        #[serde(rename = "insecureSkipTLSVerify")]
        insecure_skip_tls_verify: bool,
        /// Go duration for the whole download (default 5m).
        timeout: Option<String>,
    }
);

step_config!(
    /// oci-download.
    OciDownload {
        /// The artifact: `[oci://]host/repo:tag` or `[oci://]host/repo@sha256:…`.
        image_ref: String,
        /// The file to write the layer to.
        out_path: String,
        /// Replace an existing file (default: an existing file is an error).
        allow_overwrite: bool,
        /// The media type of the layer to take (default: the first layer).
        media_type: Option<String>,
        /// Not supported: the system's TLS checks apply.
        #[serde(rename = "insecureSkipTLSVerify")]
        insecure_skip_tls_verify: bool,
    }
);

step_config!(
    /// oci-push.
    OciPush {
        /// The artifact to copy, by tag or digest (`oci://` for Helm charts).
        src_ref: String,
        /// Where to, with a tag (`[oci://]host/repo:tag`); the same repository retags.
        dest_ref: String,
        /// Annotations to set; `index:` / `manifest:` prefixes choose the index or the image
        /// manifests (unprefixed: the image manifests).
        annotations: BTreeMap<String, String>,
        /// Not supported: the system's TLS checks apply.
        #[serde(rename = "insecureSkipTLSVerify")]
        insecure_skip_tls_verify: bool,
    }
);

step_config!(
    /// argocd-update.
    ArgoCdUpdate {
        /// The Applications to update and sync.
        apps: Vec<ArgoCdAppUpdate>,
    }
);

step_config!(
    /// One Application (or several, by label selector) for argocd-update.
    ArgoCdAppUpdate {
        /// The Application's name (or `selector`).
        name: Option<String>,
        /// Labels the Applications must have (instead of `name`).
        selector: Option<AppSelector>,
        /// The Application's namespace (default `argocd`).
        namespace: Option<String>,
        /// The sources to update; none: only sync.
        sources: Vec<ArgoCdSourceUpdate>,
        /// barge: the kubeconfig context of the cluster running Argo CD (default: the current one).
        cluster: Option<String>,
    }
);

step_config!(
    /// A label selector.
    AppSelector {
        /// Labels that must all match.
        match_labels: BTreeMap<String, String>,
        /// Requirements (In, NotIn, Exists, DoesNotExist).
        match_expressions: Vec<crate::model::kargo::LabelSelectorRequirement>,
    }
);

step_config!(
    /// How to update one of an Application's sources.
    ArgoCdSourceUpdate {
        /// The source's repository.
        #[serde(rename = "repoURL")]
        repo_url: String,
        /// For Helm repository sources: the chart name.
        chart: Option<String>,
        /// The revision to sync to and wait for (default: the Freight's commit or chart version from this repository).
        desired_revision: Option<String>,
        /// Deprecated in Kargo: the alias of an earlier step whose `commit` output is the desired revision.
        desired_commit_from_step: Option<String>,
        /// Set the source's `targetRevision` to the desired revision.
        update_target_revision: bool,
        /// Kustomize images to set on the source.
        kustomize: Option<ArgoCdKustomize>,
        /// Helm parameters to set on the source.
        helm: Option<ArgoCdHelm>,
    }
);

step_config!(
    /// Kustomize image overrides.
    ArgoCdKustomize {
        /// The images.
        images: Vec<ArgoCdKustomizeImage>,
    }
);

step_config!(
    /// One kustomize image override.
    ArgoCdKustomizeImage {
        /// The image repository.
        #[serde(rename = "repoURL")]
        repo_url: String,
        /// The tag (default: the Freight's image from this repository).
        tag: Option<String>,
        /// The digest (instead of a tag).
        digest: Option<String>,
        /// Use the Freight image's digest rather than its tag.
        use_digest: bool,
        /// Replace the image name too.
        new_name: Option<String>,
    }
);

step_config!(
    /// Helm parameters.
    ArgoCdHelm {
        /// The parameters, by values key.
        images: Vec<ArgoCdHelmImage>,
    }
);

step_config!(
    /// One Helm parameter.
    ArgoCdHelmImage {
        /// The values key (`image.tag`).
        key: String,
        /// The value.
        value: Value,
    }
);

step_config!(
    /// argocd-wait.
    ArgoCdWait {
        /// The Applications to wait for.
        apps: Vec<ArgoCdAppWait>,
    }
);

step_config!(
    /// One Application (or several, by label selector) for argocd-wait.
    ArgoCdAppWait {
        /// The Application's name (or `selector`).
        name: Option<String>,
        /// Labels the Applications must have (instead of `name`).
        selector: Option<AppSelector>,
        /// The Application's namespace (default `argocd`).
        namespace: Option<String>,
        /// What to wait for: health, sync, operation, suspended, degraded (default health, sync, operation).
        wait_for: Vec<String>,
        /// barge: the kubeconfig context of the cluster running Argo CD (default: the current one).
        cluster: Option<String>,
    }
);

step_config!(
    /// rollout-wait (barge): wait until an Argo Rollouts Rollout has rolled out its current pod template.
    RolloutWait {
        /// The Rollout's name.
        name: String,
        /// Its namespace (default `default`).
        namespace: Option<String>,
        /// The kubeconfig context of its cluster (default: the current one).
        cluster: Option<String>,
    }
);

step_config!(
    /// A name and a value.
    NameValue {
        /// Name.
        name: String,
        /// Value.
        value: Value,
    }
);

step_config!(
    /// set-metadata.
    SetMetadata {
        /// The changes.
        updates: Vec<MetadataUpdate>,
    }
);

step_config!(
    /// One set-metadata change.
    MetadataUpdate {
        /// Stage or Freight.
        kind: String,
        /// Its name.
        name: String,
        /// Keys to set (null removes one).
        values: BTreeMap<String, Value>,
    }
);

step_config!(
    /// set-freight-alias.
    SetFreightAlias {
        /// The Freight (default: the one promoted).
        name: Option<String>,
        /// Its new alias.
        alias: String,
    }
);

step_config!(
    /// fail.
    Fail {
        /// Why.
        message: Option<String>,
    }
);

/// An option of a step's config (Kargo's) that barge reads but cannot honour: validation
/// reports it (`unsupported-step-option`) unless it holds `false` or null, the values that ask
/// for nothing barge lacks.
pub struct UnsupportedOption {
    /// The top-level config field.
    pub field: &'static str,
    /// Why barge cannot honour it, and what to do instead.
    pub why: &'static str,
}

/// The options of step `uses` that barge cannot honour (see [`UnsupportedOption`]).
pub fn unsupported_options(uses: &str) -> &'static [UnsupportedOption] {
    const TLS: UnsupportedOption = UnsupportedOption {
        field: "insecureSkipTLSVerify",
        why: "barge cannot skip TLS verification; add the server's CA to the system trust store and remove the option",
    };
    match uses {
        "github-push" | "http" | "http-download" | "git-open-pr" | "git-wait-for-pr" | "git-merge-pr"
        | "oci-download" | "oci-push" => &[TLS],
        _ => &[],
    }
}

step_config!(
    /// send-message (Kargo Enterprise's): a message through a MessageChannel or
    /// ClusterMessageChannel (docs/reference/notifications.md).
    SendMessage {
        /// The channel: `{kind: MessageChannel|ClusterMessageChannel, name}`.
        channel: crate::model::notify::ChannelRef,
        /// The message: text, or a document with `encodingType`.
        message: String,
        /// `json` or `yaml` when the message is a document (a Slack body with `blocks`);
        /// empty for plain text.
        encoding_type: String,
        /// Slack options.
        slack: SendMessageSlack,
        /// Email options.
        smtp: SendMessageSmtp,
    }
);

step_config!(
    /// send-message's `slack`.
    SendMessageSlack {
        /// The Slack channel, instead of the webhook's own.
        #[serde(rename = "channelID")]
        channel_id: String,
        /// Reply in this thread (Slack's `thread_ts`); empty: a new message.
        #[serde(rename = "threadTS")]
        thread_ts: String,
    }
);

step_config!(
    /// send-message's `smtp`.
    SendMessageSmtp {
        /// Recipients, instead of the channel's (one address or a list).
        to: StringOrList,
        /// The subject (default: the promotion's project, Stage and Freight).
        subject: String,
    }
);

step_config!(
    /// wait-for-approval (Kargo Enterprise's): waits until enough distinct approvers approved
    /// the promotion's Freight for its Stage (`barge approve`).
    WaitForApproval {
        /// Who may approve (ORed): `{role: promoter|admin}` or `{subject: NAME}`, each
        /// optionally `required: true`; empty: anyone who may approve.
        approvers: Vec<crate::approval::ApproverRule>,
        /// How many distinct approvers must approve (default 1).
        min_approvals: Option<i64>,
        /// How often to re-check as a fallback (an approval wakes the step at once); a Go
        /// duration, at least the engine's poll interval.
        poll_interval: String,
    }
);

impl WaitForApproval {
    /// The policy the step waits for.
    pub fn policy(&self) -> crate::approval::ApprovalPolicy {
        crate::approval::ApprovalPolicy {
            min_approvals: self.min_approvals,
            approvers: self.approvers.clone(),
        }
    }
}

step_config!(
    /// record-audit-event (Kargo Enterprise's): one custom event in barge's audit log.
    RecordAuditEvent {
        /// What happened, recorded verbatim (required).
        message: String,
        /// A short label (e.g. `approved`, `deployed`), recorded as the event's kind
        /// `promotion.custom.<type>`; default `recorded`.
        #[serde(rename = "type")]
        kind: String,
        /// Who the step attributes the event to; recorded as `attributedTo` beside the
        /// promotion's own actor, which stays the event's actor.
        actor: String,
        /// String key/value details recorded with the event.
        data: BTreeMap<String, String>,
    }
);

/// One string or a list of strings (Kargo documents `smtp.to` as a string).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Schema for StringOrList {
    fn shape() -> Shape {
        Shape::Scalar("string or list of strings")
    }
}

impl StringOrList {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            StringOrList::None => Vec::new(),
            StringOrList::One(s) => vec![s.clone()],
            StringOrList::Many(v) => v.clone(),
        }
    }
}

/// Whether a step option's value asks for nothing (absent, null or `false`): an option barge
/// cannot honour may hold it.
pub fn asks_nothing(value: Option<&Value>) -> bool {
    matches!(value, None | Some(Value::Null | Value::Bool(false)))
}

/// The config shape of a step barge runs (`None` for free-form configs and steps it does not run).
pub fn shape_of(uses: &str) -> Option<Shape> {
    Some(match uses {
        "git-clone" => GitClone::shape(),
        "git-clear" => PathOnly::shape(),
        "git-commit" => GitCommit::shape(),
        "git-push" => GitPush::shape(),
        "git-tag" => GitTag::shape(),
        "github-push" => GitHubPush::shape(),
        "git-open-pr" => GitOpenPr::shape(),
        "git-wait-for-pr" | "git-merge-pr" => GitPr::shape(),
        "yaml-update" | "json-update" | "toml-update" | "hcl-update" => FileUpdate::shape(),
        "yaml-parse" | "json-parse" | "toml-parse" => FileParse::shape(),
        "yaml-merge" => YamlMerge::shape(),
        "kustomize-set-image" => KustomizeSetImage::shape(),
        "kustomize-build" => KustomizeBuild::shape(),
        "helm-template" => HelmTemplate::shape(),
        "helm-update-chart" => HelmUpdateChart::shape(),
        "copy" => Copy::shape(),
        "delete" => Delete::shape(),
        "file-write" => FileWrite::shape(),
        "tar" => Tar::shape(),
        "untar" => Untar::shape(),
        "http" => Http::shape(),
        "http-download" => HttpDownload::shape(),
        "oci-download" => OciDownload::shape(),
        "oci-push" => OciPush::shape(),
        "argocd-update" => ArgoCdUpdate::shape(),
        "argocd-wait" => ArgoCdWait::shape(),
        "rollout-wait" => RolloutWait::shape(),
        "set-metadata" => SetMetadata::shape(),
        "set-freight-alias" => SetFreightAlias::shape(),
        "fail" => Fail::shape(),
        "send-message" => SendMessage::shape(),
        "wait-for-approval" => WaitForApproval::shape(),
        "record-audit-event" => RecordAuditEvent::shape(),
        _ => return None,
    })
}

/// docs/reference/step-config.md: every step's config fields, from the same types the engine
/// reads and validation checks.
pub fn reference_markdown() -> String {
    let mut steps: Vec<&str> = crate::steps::BUILTIN
        .iter()
        .copied()
        .filter(|s| shape_of(s).is_some())
        .collect();
    steps.sort_unstable();
    let roots: Vec<(String, Shape)> = steps
        .iter()
        .map(|s| (format!("`{s}`"), shape_of(s).expect("filtered")))
        .collect();
    let roots: Vec<(&str, Shape)> = roots.iter().map(|(t, s)| (t.as_str(), *s)).collect();
    let mut out = String::from(
        "# Step config reference\n\n\
         Generated from the types barge's engine reads (crates/barge-core/src/step_config.rs); \
         `barge validate` reports any other field as `unknown-step-field`. How steps run, \
         their outputs and examples: [steps.md](steps.md). Every field may hold `${{ }}` \
         expressions.\n\n",
    );
    out.push_str(&crate::schema::render_reference(&roots));
    out
}
