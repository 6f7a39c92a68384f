//! The `barge` command: wires the core and the edge crates into verbs.

#![forbid(unsafe_code)]

mod analysis_cli;
mod client;
mod config_cli;
mod contexts;
mod get_cli;
mod render;
mod rest_client;
mod token_cli;
mod webhooks_cli;

use barge_engine::{config, diagnostics, discover, ops, promote};
use barge_server::{api, memory, serve};

use anyhow::Result;
use barge_core::Catalog;
use barge_core::eval::StepStatus;
use barge_core::model::Body;
use barge_core::promotion::Phase;
use barge_engine::Answer;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::process::ExitCode;

/// barge: GitOps promotion pipelines (Kargo-compatible) in one binary.
///
/// barge reads Kargo's v1alpha1 YAML (Project, ProjectConfig, Warehouse, Stage, PromotionTask,
/// ClusterPromotionTask), Argo Rollouts AnalysisTemplates and barge's own `Pipeline`
/// shorthand, from files, directories or Git repositories.
#[derive(Parser, Debug)]
#[command(
    name = "barge",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = GLOBAL_FLAGS
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The flags most verbs share, shown under the verb list of `barge --help` (each verb's own
/// `--help` lists the ones it takes).
const GLOBAL_FLAGS: &str = "\
Flags most verbs take:
  -o, --output FORMAT       text, json or yaml; `get` also takes wide and name
      --server URL          ask a running `barge serve` (BARGE_SERVER); its token from
                            BARGE_TOKEN or --token-file FILE (BARGE_TOKEN_FILE); without
                            --server and --db, the current context's (`barge config`)
      --db URL              without --server, the store: sqlite://PATH or postgres://...
                            (BARGE_DB; default ~/.local/share/barge/barge.db, under
                            $XDG_DATA_HOME when set)
  -f, --definitions PATH    with --db, the definitions (default: the ones `barge serve` stored)
      --config FILE         barge's configuration file (BARGE_CONFIG)
      --actor NAME          with --db only (in-process): who acts, for the audit log
                            (default: $USER); through --server it is the token's name

Environment: BARGE_LOG (log filter, default warn), BARGE_LOG_FORMAT=json, NO_COLOR.
Completion: `source <(barge completion bash)` (zsh and fish too).";

#[derive(Subcommand, Debug)]
enum Command {
    /// Check definitions and report every problem with file:line:col and a hint.
    ///
    /// Exit status: 0 when there are no errors (warnings allowed), 1 when there are errors,
    /// 2 for usage errors (a path that does not exist, a bad flag).
    ///
    /// Examples:
    ///   barge validate pipelines/
    ///   barge validate kargo/ analysis-templates.yaml -o json
    ///   barge validate 'https://git.example.com/org/config.git//kargo?ref=main'
    #[command(verbatim_doc_comment)]
    Validate(ValidateArgs),
    /// Show the pipeline graph: warehouses → stages, each stage's freight sources, steps and
    /// verification, in promotion order.
    ///
    /// Examples:
    ///   barge plan pipelines/
    ///   barge plan pipelines/ -o json
    ///   barge plan pipelines/ --expand      # the Kargo resources a Pipeline expands into
    #[command(verbatim_doc_comment)]
    Plan(PlanArgs),
    /// Run one discovery pass: for each Warehouse, list each subscription's candidates (best
    /// first) and the Freight it would mint. Nothing is stored.
    ///
    /// Images (every strategy, platforms, auth from docker's config.json and credential
    /// helpers), git repositories (branch and tag strategies, paths, expressionFilter) and
    /// Helm charts (index.yaml and oci://). `--rewrite` applies to all of them. Exit status 1
    /// when any discovery failed or the definitions have errors.
    ///
    /// Examples:
    ///   barge discover pipelines/
    ///   barge discover pipelines/ --warehouse guestbook -o json
    ///   barge discover pipelines/ --rewrite ghcr.io/barge-demo/=127.0.0.1:5000/barge-demo/
    #[command(verbatim_doc_comment)]
    Discover(DiscoverArgs),
    /// Ask for an immediate pass (`barge refresh warehouse NAME PATH...`).
    Refresh {
        #[command(subcommand)]
        what: RefreshWhat,
    },
    /// Promote Freight into a Stage.
    ///
    /// Without --server, the promotion runs in this process: the steps (git-clone,
    /// kustomize-set-image, yaml-update, git-commit, git-push, …) run with live progress, and
    /// the promotion and every step's outcome are recorded in the store. If barge stops mid-way,
    /// running the same command again resumes it; a commit that already landed is recognised by
    /// its `Barge-Promotion` trailer, never made twice. `--dry-run` does everything but push and
    /// prints the diff each push would land.
    ///
    /// With --server, the promotion is queued on `barge serve`, which runs it; --wait follows
    /// it to the end.
    ///
    /// The Freight must be available to the Stage (straight from its Warehouse, verified and
    /// soaked upstream, or approved with `barge approve`), and the Stage's promotion window open
    /// (or --override-window with a --reason, which is audited).
    /// Exit status: 0 when the promotion succeeded (or was queued), 1 otherwise.
    ///
    /// Examples:
    ///   barge promote pipelines/ --stage dev --freight cosmic-ocelot
    ///   barge promote pipelines/ --stage prod --freight 3f2a9c1 --dry-run
    ///   barge promote --server http://127.0.0.1:7070 --stage prod --freight cosmic-ocelot --wait
    ///   barge promote --stage prod --freight cosmic-ocelot --override-window --reason "hotfix INC-42"
    ///   barge promote --downstream-from staging --freight cosmic-ocelot --server http://127.0.0.1:7070
    #[command(verbatim_doc_comment)]
    Promote(PromoteArgs),
    /// Run the pipeline: discover Warehouses when due, auto-promote where a ProjectConfig
    /// policy allows it, run queued promotions, serve the CLI's API.
    ///
    /// Definitions are reloaded when they change; a change with errors is reported and the
    /// last good definitions keep running. State lives in the store (--db); promotions that
    /// were running when barge stopped resume. SIGTERM or Ctrl-C stops taking work and lets
    /// running promotions finish.
    ///
    /// `--once` is barge inside a CI job: discover every Warehouse once, run every promotion
    /// policy allows until the pipeline is idle, then exit: 0 when everything succeeded, 1 when
    /// a discovery or promotion failed.
    ///
    /// Examples:
    ///   openssl rand -hex 32 > barge.token
    ///   barge serve pipelines/ --listen 127.0.0.1:7070 --token-file barge.token
    ///   barge serve pipelines/ --db postgres://barge@db/barge --replica-id pod-a
    ///   barge serve pipelines/ --once --rewrite ghcr.io/acme/=127.0.0.1:5000/acme/
    #[command(verbatim_doc_comment)]
    Serve(ServeArgs),
    /// The audit log, newest first: freight minted, promotions and their steps, pushes,
    /// approvals, holds, aborts, window overrides, config reloads.
    ///
    /// Examples:
    ///   barge history
    ///   barge history --stage prod --since 24h
    ///   barge history --freight cosmic-ocelot -o json
    #[command(verbatim_doc_comment)]
    History(HistoryArgs),
    /// Each Stage's delivery (DORA) figures from the history: lead time (Freight minted to
    /// entered the Stage), deployment frequency, change failure rate (failed verifications
    /// per successful promotion) and time to restore (failed verification to the next
    /// successful one).
    ///
    /// Examples:
    ///   barge stats
    ///   barge stats --stage prod --since 7d -o json
    #[command(verbatim_doc_comment)]
    Stats(StatsArgs),
    /// Make Freight available to a Stage without upstream verification or soak time (for
    /// hotfixes). It does not promote; auto-promotion or `barge promote` does.
    ///
    /// Example:
    ///   barge approve --freight cosmic-ocelot --stage prod
    #[command(verbatim_doc_comment)]
    Approve(ApproveArgs),
    /// Abort a Pending or Running promotion (`barge abort promotion NAME`).
    Abort {
        #[command(subcommand)]
        what: AbortWhat,
    },
    /// Stop auto-promotion into a Stage at its current Freight (`barge hold stage NAME`).
    Hold {
        #[command(subcommand)]
        what: StageVerb,
    },
    /// Let auto-promotion into a Stage resume (`barge release stage NAME`).
    Release {
        #[command(subcommand)]
        what: StageVerb,
    },
    /// Re-run a Stage's verification on the Freight it has, or stop the running one
    /// (`barge verify stage NAME [--abort]`). `barge serve` runs it; each measurement shows in
    /// `barge get stage NAME` and `barge history --stage NAME`.
    ///
    /// Examples:
    ///   barge verify stage prod --server http://127.0.0.1:7070
    ///   barge verify stage prod --abort
    #[command(verbatim_doc_comment)]
    Verify {
        #[command(subcommand)]
        what: VerifyWhat,
    },
    /// Run AnalysisTemplates on their own (`barge analysis run FILE`).
    Analysis {
        #[command(subcommand)]
        what: AnalysisWhat,
    },
    /// Change Freight (`barge update freight NAME --alias NEW`).
    Update {
        #[command(subcommand)]
        what: UpdateWhat,
    },
    /// Show stored state (`barge get freight`).
    Get {
        #[command(subcommand)]
        what: GetWhat,
    },
    /// Print barge's version and, with --server, the version of the `barge serve` it talks to.
    ///
    /// Examples:
    ///   barge version
    ///   barge version --server http://127.0.0.1:7070 -o json
    #[command(verbatim_doc_comment)]
    Version(VersionArgs),
    /// The API's tokens: create (printed once), list, revoke. Needs an admin token with
    /// --server.
    ///
    /// Examples:
    ///   barge token create --name ci --role promoter --stages dev,staging > ci.token
    ///   barge token list --server http://127.0.0.1:7070
    ///   barge token revoke ci
    #[command(verbatim_doc_comment)]
    Token {
        #[command(subcommand)]
        what: token_cli::TokenWhat,
    },
    /// Contexts: named servers, each with its token file and default project, in
    /// ~/.config/barge/config.yaml ($XDG_CONFIG_HOME/barge/config.yaml, or BARGE_CLI_CONFIG).
    ///
    /// A verb told no --server and no --db (nor BARGE_SERVER, BARGE_DB) asks the current
    /// context's server, with its token file and, without --project, its project. Flags win
    /// over the environment, which wins over the context; a context's token goes to its own
    /// server only. Only the token file's path is stored, never the token.
    ///
    /// Examples:
    ///   barge login --server https://barge.example.com --token-file ~/prod.token --context prod
    ///   barge config set-context staging --server https://staging.example.com --project shop
    ///   barge config use-context staging
    ///   barge config get-contexts
    ///   barge config current-context
    #[command(verbatim_doc_comment)]
    Config {
        #[command(subcommand)]
        what: config_cli::ConfigWhat,
    },
    /// Check a token against a server (`GET /api/v1/whoami`) and save it as a context, made
    /// current: the server, the token file's path (never the token) and a default project.
    /// A refused token changes nothing.
    ///
    /// Examples:
    ///   barge login --server https://barge.example.com --token-file ~/barge.token
    ///   barge login --server http://127.0.0.1:7070 --token-file dev.token --context dev --project shop
    #[command(verbatim_doc_comment)]
    Login(config_cli::LoginArgs),
    /// Print a shell completion script.
    ///
    /// Examples:
    ///   source <(barge completion bash)
    ///   barge completion zsh > "${fpath[1]}/_barge"
    ///   barge completion fish > ~/.config/fish/completions/barge.fish
    #[command(verbatim_doc_comment)]
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand, Debug)]
enum RefreshWhat {
    /// Discover one Warehouse now, without waiting for its interval.
    ///
    /// With PATHs, the discovery runs here and is stored (--db). With --server, the daemon
    /// discovers it right away.
    ///
    /// Examples:
    ///   barge refresh warehouse guestbook pipelines/
    ///   barge refresh warehouse guestbook --server http://127.0.0.1:7070
    #[command(verbatim_doc_comment)]
    Warehouse(RefreshArgs),
}

#[derive(Subcommand, Debug)]
enum GetWhat {
    /// Stages: the Freight each has, whether it is verified, and what happens next — or exactly why not: not verified upstream, soak time left, no auto-promotion policy, held by whom, window closed until when, a promotion running, verification failed.
    ///
    /// Examples:
    ///   barge get stages
    ///   barge get stage prod
    ///   barge get stages -o json
    ///   barge get stages --project shop -w --server http://127.0.0.1:7070
    #[command(verbatim_doc_comment, alias = "stage")]
    Stages(GetStagesArgs),
    /// Warehouses: their Freight count, newest Freight, last discovery and its error.
    #[command(alias = "warehouse")]
    Warehouses(GetWarehousesArgs),
    /// Projects: how many Stages and Warehouses each has.
    #[command(alias = "project")]
    Projects(GetProjectsArgs),
    /// Stored Freight, newest first, with where it is and where it is verified; or one by ID or alias.
    ///
    /// Examples:
    ///   barge get freight
    ///   barge get freight --warehouse guestbook -o json
    ///   barge get freight cosmic-ocelot --project demo -o yaml
    #[command(verbatim_doc_comment)]
    Freight(GetFreightArgs),
    /// Promotions, newest first; or one by name with its steps and outputs.
    #[command(alias = "promotion", alias = "promo", alias = "promos")]
    Promotions(GetPromotionsArgs),
    /// Webhook receivers (ProjectConfig and ClusterConfig `webhookReceivers`): project, name, provider and the URL path `barge serve --listen` serves each at.
    ///
    /// Examples:
    ///   barge get webhooks pipelines/ --config barge.yaml
    ///   barge get webhooks pipelines/ --project demo -o json
    #[command(verbatim_doc_comment, alias = "webhook")]
    Webhooks(webhooks_cli::GetWebhooksArgs),
    /// The `barge serve` replicas sharing the store: their heartbeat's age, whether they are alive, and the promotions, verifications and Warehouse discoveries each holds.
    ///
    /// Examples:
    ///   barge get replicas --db postgres://barge@db/barge
    ///   barge get replicas -o wide
    #[command(verbatim_doc_comment, alias = "replica")]
    Replicas(GetReplicasArgs),
    /// The notification outbox, newest first: each message's channel, event, state (pending, delivered, failed), attempts, last error and next attempt.
    ///
    /// Examples:
    ///   barge get notifications --project demo --state failed
    ///   barge get notifications -o wide --server https://barge.example.com
    #[command(verbatim_doc_comment, alias = "notification")]
    Notifications(GetNotificationsArgs),
}

#[derive(clap::Args, Debug)]
struct GetNotificationsArgs {
    #[arg(long)]
    project: Option<String>,
    /// Only those in this state.
    #[arg(long, value_parser = barge_engine::answer::NOTIFICATION_STATES)]
    state: Option<String>,
    #[arg(long, default_value_t = 100)]
    limit: i64,
    #[arg(short, long, value_enum, default_value_t = GetFormat::Text)]
    output: GetFormat,
    #[command(flatten)]
    target: client::Target,
}

#[derive(clap::Args, Debug)]
struct GetReplicasArgs {
    #[arg(short, long, value_enum, default_value_t = GetFormat::Text)]
    output: GetFormat,
    #[command(flatten)]
    target: client::Target,
}

#[derive(Subcommand, Debug)]
enum AbortWhat {
    /// Abort a promotion; its runner stops at the next step boundary.
    Promotion(AbortArgs),
}

#[derive(Subcommand, Debug)]
enum StageVerb {
    /// The Stage to hold or release (auto-promotion only; `barge promote` still works).
    ///
    /// Examples:
    ///   barge hold stage prod
    ///   barge release stage prod --server http://127.0.0.1:7070
    #[command(verbatim_doc_comment)]
    Stage(StageArgs),
}

#[derive(Subcommand, Debug)]
enum VerifyWhat {
    /// Re-run the Stage's verification on its current Freight (`barge serve` runs it), or stop
    /// the running one with --abort.
    ///
    /// Examples:
    ///   barge verify stage prod
    ///   barge verify stage prod --abort
    #[command(verbatim_doc_comment)]
    Stage(VerifyArgs),
}

#[derive(Subcommand, Debug)]
enum AnalysisWhat {
    /// Run one AnalysisTemplate (or ClusterAnalysisTemplate) now and print every measurement
    /// and the final phase, with Argo Rollouts' semantics: try a template before it guards
    /// prod. Prometheus, web and Job metrics are measured (Jobs in KUBECONFIG's cluster).
    /// Arguments come from --arg, the template's defaults, and secretKeyRef from the
    /// configuration file's `secrets`.
    ///
    /// Exit status: 0 when the run is Successful, 1 when it is Failed, Error or Inconclusive
    /// (or stopped with Ctrl-C), 2 when it cannot start.
    ///
    /// Examples:
    ///   barge analysis run success-rate.yaml --arg service=api
    ///   barge analysis run templates/ --template success-rate --prometheus http://127.0.0.1:9090
    ///   barge analysis run success-rate.yaml -o json
    #[command(verbatim_doc_comment)]
    Run(AnalysisRunArgs),
}

fn parse_arg(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))
}

#[derive(Subcommand, Debug)]
enum UpdateWhat {
    /// Give Freight a new alias (unique in its project).
    ///
    /// Example:
    ///   barge update freight cosmic-ocelot --alias release-2026-11
    #[command(verbatim_doc_comment)]
    Freight(UpdateFreightArgs),
}

#[derive(clap::Args, Debug)]
struct ValidateArgs {
    /// Files, directories (searched recursively for .yaml/.yml) or Git sources
    /// (`<repo-url>[//<path>][?ref=<branch|tag|commit>]`).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
    /// Treat warnings as errors (exit 1 when there are any).
    #[arg(long)]
    deny_warnings: bool,
}

#[derive(clap::Args, Debug)]
struct PlanArgs {
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
    /// Print the Kargo resources that barge `Pipeline`s expand into (YAML by default).
    #[arg(long)]
    expand: bool,
}

#[derive(clap::Args, Debug)]
struct DiscoverArgs {
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
    /// Only this Warehouse.
    #[arg(long, value_name = "NAME")]
    warehouse: Option<String>,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Store the discovery and mint the Freight in this database (sqlite://PATH or
    /// postgres://...). Without it, nothing is stored.
    #[arg(long, value_name = "URL", env = "BARGE_DB")]
    db: Option<String>,
    /// Keep running: discover each Warehouse whenever it is due (its `interval`, default
    /// 5m, or barge's cron `schedule`, with a per-Warehouse jitter). Stop with Ctrl-C.
    #[arg(long)]
    watch: bool,
    /// With --watch: stop after this many Warehouse passes.
    #[arg(long, hide = true, requires = "watch")]
    passes: Option<u32>,
}

#[derive(clap::Args, Debug)]
struct PromoteArgs {
    /// The definitions (default: the ones `barge serve` recorded in the store).
    #[arg(value_name = "PATH")]
    paths: Vec<String>,
    /// The Stage to promote into (or --downstream-from).
    // Checked in `promote_verb`, not by clap: clap's "required" error prints a usage line with
    // every flag an environment variable set (BARGE_DB, BARGE_SERVER), which read as if
    // those were what is missing.
    #[arg(long)]
    stage: Option<String>,
    /// Promote into every Stage directly downstream of this one.
    #[arg(long, value_name = "STAGE", conflicts_with = "stage")]
    downstream_from: Option<String>,
    /// The Freight: its name (ID) or alias (`--freight-alias` works too, as in kargo).
    #[arg(long, value_name = "ID|ALIAS", alias = "freight-alias")]
    freight: String,
    /// The Stage's project (needed only when several projects have a Stage of that name).
    #[arg(long)]
    project: Option<String>,
    /// Run every step but push nothing; print the diff each git-push would land.
    #[arg(long)]
    dry_run: bool,
    /// With --server: follow the queued promotion until it finishes.
    #[arg(long)]
    wait: bool,
    /// Promote although the Stage's promotion window is closed (needs --reason).
    #[arg(long, requires = "reason")]
    override_window: bool,
    /// Why the window is overridden (recorded in the audit log).
    #[arg(long)]
    reason: Option<String>,
    /// With --db only (in-process): who is promoting, for the audit log. Through --server
    /// the audit log records the token's name.
    #[arg(long, env = "USER", default_value = "barge")]
    actor: String,
    /// Where the repository cache and promotions' work directories live.
    #[arg(long, value_name = "DIR", env = "BARGE_WORK_DIR")]
    work_dir: Option<std::path::PathBuf>,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    target: client::Target,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
    /// Run until the pipeline is idle, then exit.
    #[arg(long)]
    once: bool,
    /// Serve the CLI's API on this address (e.g. 127.0.0.1:7070).
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// The bootstrap admin token of the API, from this file (or BARGE_ADMIN_TOKEN, or
    /// BARGE_TOKEN). Make one with `openssl rand -hex 32 > barge.token`; more tokens, with
    /// narrower roles, with `barge token create`.
    #[arg(long, value_name = "FILE")]
    token_file: Option<std::path::PathBuf>,
    /// Who the bootstrap admin token's holder is in the audit log: calls through the API are
    /// recorded as `token:NAME`, whatever actor the client names.
    #[arg(long, value_name = "NAME", default_value = api::DEFAULT_TOKEN_NAME, value_parser = api::parse_token_name)]
    token_name: String,
    /// Let requests without a token read (viewer, and never more), e.g. for wall displays.
    /// Off by default.
    #[arg(long, value_name = "ROLE", requires = "listen", value_parser = api::parse_anonymous_role)]
    anonymous_role: Option<barge_core::authz::Role>,
    /// Also accept bearer JWTs this OpenID Connect issuer signed (its
    /// /.well-known/openid-configuration names its keys), as `oidc:SUBJECT` with the role
    /// the first matching rule of --oidc-rules gives; the web UI then offers OIDC sign-in.
    #[arg(long, value_name = "URL", requires_all = ["listen", "oidc_audience", "oidc_rules"])]
    oidc_issuer: Option<String>,
    /// The audience (`aud`) OIDC tokens must be meant for: barge's client id at the issuer.
    #[arg(long, value_name = "AUD", requires = "oidc_issuer")]
    oidc_audience: Option<String>,
    /// The YAML rule file mapping OIDC claims to a role, project and Stages
    /// (docs/reference/access.md).
    #[arg(long, value_name = "FILE", requires = "oidc_issuer")]
    oidc_rules: Option<std::path::PathBuf>,
    /// The client secret for the web UI's OIDC sign-in, from this file (none: a public
    /// client, PKCE only).
    #[arg(long, value_name = "FILE", requires = "oidc_issuer")]
    oidc_client_secret_file: Option<std::path::PathBuf>,
    /// How often to look for changed definitions.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    reload_interval: std::time::Duration,
    /// This replica's name in promotion leases (default: host name and work directory).
    /// Replicas sharing a PostgreSQL store need different ones.
    #[arg(long, value_name = "NAME")]
    replica_id: Option<String>,
    /// How long the work a replica holds (a promotion, a verification, a Warehouse's
    /// discovery) stays reserved for it after its last renewal (renewed every third of it):
    /// shorter hands a dead replica's work to another sooner, longer rides out longer
    /// database outages. Every replica of a database should use the same.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration, env = "BARGE_LEASE")]
    lease: std::time::Duration,
    /// Promotions run at once.
    #[arg(long, default_value_t = barge_promote::DEFAULT_SLOTS)]
    workers: usize,
    /// Keep audit events this long (a Go duration, e.g. 2160h for 90 days); older ones
    /// are deleted hourly. Default: keep everything.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    audit_retention: Option<std::time::Duration>,
    /// Who measures verifications: `native` (barge runs the AnalysisTemplates itself) or
    /// `cluster` (barge creates an AnalysisRun per verification in the project's namespace,
    /// as Kargo does, and follows it; the cluster's Argo Rollouts controller measures).
    #[arg(long, value_enum, default_value_t = AnalysisRuns::Native)]
    analysis_runs: AnalysisRuns,
    /// Webhook deliveries that name a Warehouse within this long of one another are one
    /// burst, and cost one discovery, which starts once none has come for this long. Longer
    /// suits a registry that spreads the notifications of one push over seconds.
    #[arg(long, value_name = "DURATION", default_value = "300ms", value_parser = parse_duration, env = "BARGE_WEBHOOK_QUIET_PERIOD")]
    webhook_quiet_period: std::time::Duration,
    /// ... but a Warehouse that deliveries keep naming is discovered at least this often.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration, env = "BARGE_WEBHOOK_MAX_WAIT")]
    webhook_max_wait: std::time::Duration,
    #[arg(long, value_name = "DIR", env = "BARGE_WORK_DIR")]
    work_dir: Option<std::path::PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// The store (sqlite://PATH or postgres://...). Default:
    /// sqlite://$XDG_DATA_HOME/barge/barge.db (~/.local/share/barge/barge.db).
    #[arg(long, value_name = "URL", env = "BARGE_DB")]
    db: Option<String>,
}

#[derive(clap::Args, Debug)]
struct HistoryArgs {
    #[arg(long)]
    stage: Option<String>,
    /// A Freight's name or alias.
    #[arg(long)]
    freight: Option<String>,
    /// Only events this recent (a duration like 2h) or since this time (RFC 3339).
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Only events at or before this time: that long ago (a duration like 2h) or a time
    /// (RFC 3339).
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,
    /// Only events of this kind (promotion.created, stage.held, ...).
    #[arg(long)]
    kind: Option<String>,
    #[arg(long, default_value_t = 100)]
    limit: i64,
    #[arg(long)]
    project: Option<String>,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
    #[command(flatten)]
    target: client::Target,
}

#[derive(clap::Args, Debug)]
struct StatsArgs {
    #[arg(long)]
    stage: Option<String>,
    /// The window: a duration like 30d (the default) or a time (RFC 3339).
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    #[arg(long)]
    project: Option<String>,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
    #[command(flatten)]
    target: client::Target,
}

#[derive(clap::Args, Debug)]
struct ApproveArgs {
    #[arg(long, value_name = "ID|ALIAS")]
    freight: String,
    #[arg(long)]
    stage: String,
    #[arg(long)]
    project: Option<String>,
    /// With --db only (in-process): who acts, for the audit log. Through --server the
    /// audit log records the token's name.
    #[arg(long, env = "USER", default_value = "barge")]
    actor: String,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
    #[command(flatten)]
    target: client::Target,
}

#[derive(clap::Args, Debug)]
struct VersionArgs {
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
    #[command(flatten)]
    remote: client::Server,
}

#[derive(clap::Args, Debug)]
struct RefreshArgs {
    name: String,
    #[arg(value_name = "PATH")]
    paths: Vec<String>,
    #[arg(long)]
    project: Option<String>,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    target: client::Target,
}

#[derive(clap::Args, Debug)]
struct GetStagesArgs {
    name: Option<String>,
    #[arg(long)]
    project: Option<String>,
    /// After the list, follow changes and print each changed object's rows, as `kubectl get
    /// -w` does (barge serve's watch: needs --server).
    #[arg(short = 'w', long)]
    watch: bool,
    #[arg(short, long, value_enum, default_value_t = GetFormat::Text)]
    output: GetFormat,
    #[command(flatten)]
    target: client::Target,
}

#[derive(clap::Args, Debug)]
struct GetWarehousesArgs {
    name: Option<String>,
    #[arg(long)]
    project: Option<String>,
    /// After the list, follow changes and print each changed object's rows, as `kubectl get
    /// -w` does (barge serve's watch: needs --server).
    #[arg(short = 'w', long)]
    watch: bool,
    #[arg(short, long, value_enum, default_value_t = GetFormat::Text)]
    output: GetFormat,
    #[command(flatten)]
    target: client::Target,
}

#[derive(clap::Args, Debug)]
struct GetFreightArgs {
    /// A Freight's name (ID) or alias.
    name: Option<String>,
    #[arg(long)]
    project: Option<String>,
    #[arg(long, value_name = "NAME")]
    warehouse: Option<String>,
    /// After the list, follow changes and print each changed object's rows, as `kubectl get
    /// -w` does (barge serve's watch: needs --server).
    #[arg(short = 'w', long)]
    watch: bool,
    #[arg(short, long, value_enum, default_value_t = GetFormat::Text)]
    output: GetFormat,
    #[command(flatten)]
    target: client::Target,
}

#[derive(clap::Args, Debug)]
struct GetProjectsArgs {
    name: Option<String>,
    #[arg(short, long, value_enum, default_value_t = GetFormat::Text)]
    output: GetFormat,
    #[command(flatten)]
    target: client::Target,
}

#[derive(clap::Args, Debug)]
struct GetPromotionsArgs {
    name: Option<String>,
    #[arg(long)]
    stage: Option<String>,
    #[arg(long)]
    project: Option<String>,
    /// After the list, follow changes and print each changed object's rows, as `kubectl get
    /// -w` does (barge serve's watch: needs --server).
    #[arg(short = 'w', long)]
    watch: bool,
    #[arg(short, long, value_enum, default_value_t = GetFormat::Text)]
    output: GetFormat,
    #[command(flatten)]
    target: client::Target,
}

#[derive(clap::Args, Debug)]
struct AbortArgs {
    name: String,
    #[arg(long)]
    project: Option<String>,
    /// With --db only (in-process): who acts, for the audit log. Through --server the
    /// audit log records the token's name.
    #[arg(long, env = "USER", default_value = "barge")]
    actor: String,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
    #[command(flatten)]
    target: client::Target,
}

#[derive(clap::Args, Debug)]
struct StageArgs {
    name: String,
    #[arg(long)]
    project: Option<String>,
    /// With --db only (in-process): who acts, for the audit log. Through --server the
    /// audit log records the token's name.
    #[arg(long, env = "USER", default_value = "barge")]
    actor: String,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
    #[command(flatten)]
    target: client::Target,
}

#[derive(clap::Args, Debug)]
struct VerifyArgs {
    name: String,
    /// Stop the running verification instead (the Freight stays unverified).
    #[arg(long)]
    abort: bool,
    #[arg(long)]
    project: Option<String>,
    /// With --db only (in-process): who acts, for the audit log. Through --server the
    /// audit log records the token's name.
    #[arg(long, env = "USER", default_value = "barge")]
    actor: String,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
    #[command(flatten)]
    target: client::Target,
}

#[derive(clap::Args, Debug)]
struct AnalysisRunArgs {
    /// Files or directories holding the template.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
    /// The template to run, when the paths hold several.
    #[arg(long, value_name = "NAME")]
    template: Option<String>,
    /// An argument value (repeatable).
    #[arg(long = "arg", value_name = "NAME=VALUE", value_parser = parse_arg)]
    args: Vec<(String, String)>,
    /// Query this Prometheus instead of the address each metric names (e.g. a
    /// port-forwarded one).
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,
    /// The namespace Job metrics run in (the cluster is KUBECONFIG's current context).
    #[arg(long, default_value = "default")]
    namespace: String,
    /// barge's configuration file (for `secrets`).
    #[arg(long, value_name = "FILE", env = "BARGE_CONFIG")]
    config: Option<std::path::PathBuf>,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
}

#[derive(clap::Args, Debug)]
struct UpdateFreightArgs {
    name: String,
    #[arg(long)]
    alias: String,
    #[arg(long)]
    project: Option<String>,
    /// With --db only (in-process): who acts, for the audit log. Through --server the
    /// audit log records the token's name.
    #[arg(long, env = "USER", default_value = "barge")]
    actor: String,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
    #[command(flatten)]
    target: client::Target,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    barge_core::duration::parse_go_duration(s).map_err(|e| e.to_string())
}

#[derive(clap::Args, Debug)]
struct RegistryArgs {
    /// Send requests for repositories (images, charts, git) starting with FROM to TO instead,
    /// like git's insteadOf; Freight keeps the original names. Repeatable. Example:
    /// --rewrite ghcr.io/acme/=127.0.0.1:5000/acme/
    #[arg(long, value_name = "FROM=TO", value_parser = parse_rewrite)]
    rewrite: Vec<barge_registry::Rewrite>,
    /// Registry hosts to reach over plain HTTP (loopback addresses always are). Repeatable.
    #[arg(long, value_name = "HOST")]
    plain_http: Vec<String>,
    /// Requests per second per registry host (default 20).
    #[arg(long)]
    rate_limit: Option<f64>,
    /// Ask registries for pages of this many tags (default: the registry's choice).
    #[arg(long, value_name = "N")]
    page_size: Option<u32>,
    /// barge's configuration file: registry credentials (from env or files), rewrites,
    /// plain-HTTP hosts, rate limit. See docs/reference/config.md.
    #[arg(long, value_name = "FILE", env = "BARGE_CONFIG")]
    config: Option<std::path::PathBuf>,
}

fn parse_rewrite(s: &str) -> Result<barge_registry::Rewrite, String> {
    barge_registry::Rewrite::parse(s).ok_or_else(|| format!("{s:?} is not FROM=TO"))
}

impl RegistryArgs {
    /// The configuration file (the defaults without one) and the registry configuration: the
    /// file's, with these flags on top.
    fn settings(&self) -> Result<(config::Config, barge_registry::RegistryConfig)> {
        let file = match &self.config {
            Some(path) => config::Config::load(path)?,
            None => config::Config::default(),
        };
        let flags = config::RegistryFlags {
            rewrites: &self.rewrite,
            plain_http: &self.plain_http,
            rate_limit: self.rate_limit,
            page_size: self.page_size,
        };
        let registry = file.registry_config(&flags);
        Ok((file, registry))
    }
}

/// Who measures verifications (`barge serve --analysis-runs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum AnalysisRuns {
    Native,
    Cluster,
}

/// `barge get`'s output formats, kubectl's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GetFormat {
    /// A table for people (`table` is accepted too).
    #[value(alias = "table")]
    Text,
    /// The table with more columns.
    Wide,
    /// `kind.kargo.akuity.io/NAME` per line, for scripts (`xargs`).
    Name,
    Json,
    Yaml,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people (`table` is accepted too, as in kubectl).
    #[value(alias = "table")]
    Text,
    Json,
    Yaml,
}

/// Structured logs on stderr: `BARGE_LOG` (an env-filter, default `warn`) and
/// `BARGE_LOG_FORMAT=json` for machines.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BARGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("BARGE_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.with_ansi(render::use_color_stderr()).init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`barge plan | head`) is not an error.
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("barge: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `barge promote` without a Stage: a usage error (exit status 2).
fn missing_stage() -> ExitCode {
    eprintln!(
        "barge: error: which Stage? give --stage STAGE (or --downstream-from STAGE with --server)\n\nFor more information, try 'barge promote --help'."
    );
    ExitCode::from(2)
}

/// Whether writing the output failed because its reader went away: an `io::Error`, or one
/// serde_json's writer wrapped, anywhere in the chain.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        let kind = cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            .or_else(|| {
                cause
                    .downcast_ref::<serde_json::Error>()
                    .and_then(serde_json::Error::io_error_kind)
            });
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Version(args) => version(args),
        Command::Completion { shell } => completion(shell),
        Command::Config { what } => config_cli::run(what),
        Command::Login(args) => config_cli::login(args),
        Command::Token { what } => token_cli::run(what),
        Command::Validate(args) => validate(args),
        Command::Plan(args) => plan(args),
        Command::Discover(args) => discover_verb(args),
        Command::Refresh {
            what: RefreshWhat::Warehouse(args),
        } => refresh(args),
        Command::Get { what } => get_verb(what),
        Command::History(args) => history(args),
        Command::Stats(args) => stats(args),
        Command::Approve(args) => approve(args),
        Command::Abort {
            what: AbortWhat::Promotion(args),
        } => abort(args),
        Command::Hold {
            what: StageVerb::Stage(args),
        } => hold(args),
        Command::Release {
            what: StageVerb::Stage(args),
        } => release(args),
        Command::Verify {
            what: VerifyWhat::Stage(args),
        } => verify(args),
        Command::Analysis {
            what: AnalysisWhat::Run(args),
        } => analysis_cli::run(
            &args.paths,
            args.template.as_deref(),
            &args.args,
            args.prometheus.as_deref(),
            &args.namespace,
            args.config.as_deref(),
            args.output,
        ),
        Command::Update {
            what: UpdateWhat::Freight(args),
        } => update_freight(args),
        Command::Serve(args) => serve_verb(args),
        Command::Promote(args) => promote_verb(args),
    }
}

fn version(VersionArgs { output, remote }: VersionArgs) -> Result<ExitCode> {
    let client = env!("CARGO_PKG_VERSION");
    let mut v = serde_json::json!({"clientVersion": client});
    let remote = remote.resolved()?;
    if remote.server.is_some() {
        let Answer::Version(server) = block_on(client::call_server(&remote, ops::Call::Version))? else {
            anyhow::bail!("the server did not answer with its version");
        };
        v["serverVersion"] = server.version.into();
    }
    client::print(output, &v, || {
        let mut text = format!("Client Version: {client}\n");
        if let Some(server) = v["serverVersion"].as_str() {
            text += &format!("Server Version: {server}\n");
        }
        text
    })?;
    Ok(ExitCode::SUCCESS)
}

fn completion(shell: clap_complete::Shell) -> Result<ExitCode> {
    use clap::CommandFactory as _;
    // Into a buffer first: clap_complete panics when its writer fails (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "barge", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(ExitCode::SUCCESS)
}

fn validate(args: ValidateArgs) -> Result<ExitCode> {
    let catalog = match load(&args.paths) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    client::print(args.output, &diagnostics::validate_json(&catalog), || {
        let text = diagnostics::diagnostics_text(&catalog, render::use_color());
        format!("{text}{}\n", diagnostics::summary(&catalog))
    })?;
    let warnings = catalog.diagnostics.len() - catalog.errors();
    Ok(if catalog.errors() > 0 || (args.deny_warnings && warnings > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn plan(PlanArgs { paths, output, expand }: PlanArgs) -> Result<ExitCode> {
    let catalog = match load(&paths) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    // Problems go to stderr so stdout stays a clean plan for scripts.
    if !catalog.diagnostics.is_empty() {
        report_problems(&catalog);
    }
    if expand {
        let mut out = std::io::stdout().lock();
        let docs: Vec<serde_json::Value> = catalog
            .resources
            .iter()
            .filter(|r| r.expanded_from.is_some())
            .filter_map(|r| r.body.as_ref().map(Body::to_json))
            .collect();
        if docs.is_empty() {
            eprintln!("barge: no barge.dev/v1alpha1 Pipeline found; --expand has nothing to show");
        }
        if output == Format::Json {
            client::print(output, &docs, String::new)?;
        }
        // YAML and text alike: the documents as a stream, to apply or read.
        for d in docs.iter().filter(|_| output != Format::Json) {
            write!(out, "---\n{}", yaml_serde::to_string(d)?)?;
        }
    } else {
        let plan = barge_core::plan::plan(&catalog);
        client::print(output, &plan, || barge_core::plan::render_text(&plan))?;
    }
    Ok(if catalog.errors() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints a catalog's diagnostics and summary on stderr.
fn report_problems(catalog: &Catalog) {
    eprint!("{}", diagnostics::diagnostics_text(catalog, render::use_color_stderr()));
    eprintln!("{}", diagnostics::summary(catalog));
}

fn discover_verb(args: DiscoverArgs) -> Result<ExitCode> {
    let mode = if args.watch {
        Mode::Watch(args.passes)
    } else {
        Mode::Once
    };
    let selection = args
        .warehouse
        .as_deref()
        .map_or(discover::Selection::All, discover::Selection::Named);
    discover(
        &args.paths,
        selection,
        args.output,
        &args.registry,
        args.db.as_deref(),
        mode,
    )
}

fn refresh(args: RefreshArgs) -> Result<ExitCode> {
    let RefreshArgs {
        name,
        paths,
        project,
        output,
        registry,
        target,
    } = args;
    let target = target.resolved()?;
    let project = project.or(target.remote.default_project.clone());
    if target.server().is_none() {
        if paths.is_empty() {
            eprintln!("barge: error: give the definitions (PATH...) to discover here, or --server to ask barge serve");
            return Ok(ExitCode::from(2));
        }
        let selection = match &project {
            Some(project) => discover::Selection::One { project, name: &name },
            None => discover::Selection::Named(&name),
        };
        return discover(&paths, selection, output, &registry, Some(&target.db()?), Mode::Once);
    }
    let c = ops::Call::Refresh {
        project,
        warehouse: name,
        actor: whoami(),
    };
    verb(&target, c, output)
}

fn get_verb(what: GetWhat) -> Result<ExitCode> {
    match what {
        GetWhat::Webhooks(args) => webhooks_cli::get_webhooks(args),
        GetWhat::Replicas(GetReplicasArgs { output, target }) => get(&target, ops::Call::GetReplicas, output),
        GetWhat::Notifications(GetNotificationsArgs {
            project,
            state,
            limit,
            output,
            target,
        }) => get(&target, ops::Call::GetNotifications { project, state, limit }, output),
        GetWhat::Stages(a) => {
            let q = query(get_cli::Kind::Stages, a.project, a.name);
            get_resources(&a.target, q, a.watch, a.output)
        }
        GetWhat::Warehouses(a) => {
            let q = query(get_cli::Kind::Warehouses, a.project, a.name);
            get_resources(&a.target, q, a.watch, a.output)
        }
        GetWhat::Projects(a) => get_resources(&a.target, query(get_cli::Kind::Projects, None, a.name), false, a.output),
        GetWhat::Freight(a) => {
            let q = get_cli::Query {
                warehouse: a.warehouse,
                ..query(get_cli::Kind::Freight, a.project, a.name)
            };
            get_resources(&a.target, q, a.watch, a.output)
        }
        GetWhat::Promotions(a) => {
            let q = get_cli::Query {
                stage: a.stage,
                ..query(get_cli::Kind::Promotions, a.project, a.name)
            };
            get_resources(&a.target, q, a.watch, a.output)
        }
    }
}

fn query(kind: get_cli::Kind, project: Option<String>, name: Option<String>) -> get_cli::Query {
    get_cli::Query {
        kind,
        project,
        name,
        warehouse: None,
        stage: None,
    }
}

/// `barge get` of Kargo's resources: printed, or with `watch` followed.
fn get_resources(target: &client::Target, q: get_cli::Query, watch: bool, output: GetFormat) -> Result<ExitCode> {
    block_on(async {
        if watch {
            get_cli::watch(target, &q, output).await?;
        } else {
            let found = get_cli::read(target, &q).await?;
            get_cli::print(output, &found, q.name.is_some())?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn history(args: HistoryArgs) -> Result<ExitCode> {
    let (since, until) = match (time_flag("since", &args.since), time_flag("until", &args.until)) {
        (Ok(since), Ok(until)) => (since, until),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let c = ops::Call::History {
        project: args.project,
        stage: args.stage,
        freight: args.freight,
        since,
        kind: args.kind,
        until,
        before: None,
        limit: args.limit,
    };
    verb(&args.target, c, args.output)
}

fn stats(args: StatsArgs) -> Result<ExitCode> {
    let since = match time_flag("since", &args.since) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let c = ops::Call::Stats {
        project: args.project,
        stage: args.stage,
        since,
    };
    verb(&args.target, c, args.output)
}

fn approve(args: ApproveArgs) -> Result<ExitCode> {
    let c = ops::Call::Approve {
        project: args.project,
        stage: args.stage,
        freight: args.freight,
        actor: args.actor,
    };
    verb(&args.target, c, args.output)
}

fn abort(args: AbortArgs) -> Result<ExitCode> {
    let c = ops::Call::Abort {
        project: args.project,
        name: args.name,
        actor: args.actor,
    };
    verb(&args.target, c, args.output)
}

fn hold(args: StageArgs) -> Result<ExitCode> {
    let c = ops::Call::Hold {
        project: args.project,
        stage: args.name,
        actor: args.actor,
    };
    verb(&args.target, c, args.output)
}

fn release(args: StageArgs) -> Result<ExitCode> {
    let c = ops::Call::Release {
        project: args.project,
        stage: args.name,
        actor: args.actor,
    };
    verb(&args.target, c, args.output)
}

fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let c = ops::Call::Verify {
        project: args.project,
        stage: args.name,
        abort: args.abort,
        actor: args.actor,
    };
    verb(&args.target, c, args.output)
}

fn update_freight(args: UpdateFreightArgs) -> Result<ExitCode> {
    let c = ops::Call::Alias {
        project: args.project,
        freight: args.name,
        alias: args.alias,
        actor: args.actor,
    };
    verb(&args.target, c, args.output)
}

/// Who may call `barge serve --listen`'s API: the bootstrap token, stored tokens and, with
/// --oidc-issuer, the issuer's JWTs.
fn serve_access(args: &ServeArgs) -> Result<api::Access> {
    let access = api::Access::load(args.token_file.as_deref(), &args.token_name, args.anonymous_role)?;
    let (Some(issuer), Some(audience), Some(rules)) = (&args.oidc_issuer, &args.oidc_audience, &args.oidc_rules) else {
        return Ok(access);
    };
    let rules = barge_engine::oidc::Rules::load(rules).map_err(anyhow::Error::msg)?;
    let client_secret = api::read(args.oidc_client_secret_file.as_deref(), &[])?;
    let oidc = barge_engine::oidc::Oidc::new(issuer, audience, rules, client_secret).map_err(anyhow::Error::msg)?;
    Ok(access.with_oidc(oidc))
}

fn serve_verb(args: ServeArgs) -> Result<ExitCode> {
    let catalog = match load(&args.paths) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if catalog.errors() > 0 {
        report_problems(&catalog);
        return Ok(ExitCode::from(1));
    }
    // A bad config file or token is the user's to fix: exit 2, before anything runs.
    let settings = args.registry.settings();
    let token = args.listen.map(|_| serve_access(&args)).transpose();
    let ((file, config), access) = match settings.and_then(|s| Ok((s, token?))) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("barge: error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let work_dir = args.work_dir.unwrap_or_else(barge_engine::default_work_dir);
    let replica_id = args
        .replica_id
        .unwrap_or_else(|| format!("{}:{}", promote::host_name(), work_dir.display()));
    let opts = serve::Options {
        paths: args.paths,
        once: args.once,
        listen: args.listen,
        access,
        reload_interval: args.reload_interval,
        replica_id,
        lease: args.lease,
        git_rules: file.git_credential_rules(),
        defined: config::DefinedCredentials::of(&catalog),
        registry: config,
        audit_retention: args.audit_retention,
        analysis_in_cluster: args.analysis_runs == AnalysisRuns::Cluster,
        webhook_burst: barge_server::webhook::BurstWindow {
            quiet: args.webhook_quiet_period,
            max_wait: args.webhook_max_wait,
        },
    };
    // Before the runtime's threads allocate: they would each get an arena.
    memory::use_few_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let ok = runtime.block_on(serve::start(opts, catalog, args.db, work_dir, &file, args.workers))?;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn promote_verb(mut args: PromoteArgs) -> Result<ExitCode> {
    args.target = args.target.resolved()?;
    args.project = args.project.or(args.target.remote.default_project.clone());
    let override_reason = if args.override_window {
        args.reason.clone()
    } else {
        None
    };
    if args.dry_run && args.downstream_from.is_some() {
        eprintln!("barge: error: --dry-run takes --stage, not --downstream-from");
        return Ok(ExitCode::from(2));
    }
    let dry_run = |stage: String| ops::Call::PromoteDryRun {
        project: args.project.clone(),
        stage,
        freight: args.freight.clone(),
        actor: args.actor.clone(),
        override_reason: override_reason.clone(),
    };
    if args.target.server().is_some() {
        if args.dry_run {
            let Some(stage) = args.stage.clone() else {
                return Ok(missing_stage());
            };
            let answer = block_on(client::call_server(&args.target.remote, dry_run(stage)))?;
            let Answer::PromotionPlan(plan) = answer else {
                anyhow::bail!("barge serve answered a dry run with something else than its plan");
            };
            return print_plan(args.output, &plan);
        }
        let (project, freight, actor) = (args.project, args.freight, args.actor);
        let c = match (args.stage, args.downstream_from) {
            (_, Some(from)) => ops::Call::PromoteDownstream {
                project,
                from,
                freight,
                actor,
            },
            (Some(stage), None) => ops::Call::Promote {
                project,
                stage,
                freight,
                actor,
                override_reason,
            },
            (None, None) => return Ok(missing_stage()),
        };
        return queue_and_wait(&args.target, c, args.wait, args.output);
    }
    let Some(stage) = args.stage.as_deref() else {
        if args.downstream_from.is_none() {
            return Ok(missing_stage());
        }
        eprintln!("barge: error: --downstream-from queues promotions on barge serve; add --server");
        return Ok(ExitCode::from(2));
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let db = args.target.db()?;
    // `-f PATH` as every verb with --db takes it, or the PATHs.
    let paths = [args.paths.as_slice(), &args.target.definitions].concat();
    let catalog = if paths.is_empty() {
        runtime.block_on(promote::stored_catalog(&db))?
    } else {
        match load(&paths) {
            Ok(c) => c,
            Err(code) => return Ok(code),
        }
    };
    if catalog.errors() > 0 {
        report_problems(&catalog);
        return Ok(ExitCode::from(1));
    }
    let (file, registry) = args.registry.settings()?;
    let here = promote::Here {
        db: &db,
        work_dir: args.work_dir.clone().unwrap_or_else(barge_engine::default_work_dir),
        registry: &registry,
        file: &file,
    };
    if args.dry_run {
        let plan = runtime.block_on(barge_engine::dryrun::plan_here(
            &catalog,
            here,
            dry_run(stage.to_string()),
        ))?;
        return print_plan(args.output, &plan);
    }
    let req = promote::Request {
        stage,
        project: args.project.as_deref(),
        freight: &args.freight,
        actor: &args.actor,
        override_window: override_reason.as_deref(),
    };
    let report = runtime.block_on(promote::run_here(&catalog, here, &req))?;
    client::print(args.output, &report, || render::promotion_text(&report))?;
    Ok(if report.phase == Phase::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A dry run's plan; the exit code says whether the promotion would succeed.
fn print_plan(output: Format, plan: &barge_engine::answer::PromotionPlan) -> Result<ExitCode> {
    client::print(output, plan, || render::plan_text(plan))?;
    Ok(if plan.phase == Phase::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One pass, or passes as Warehouses come due.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Once,
    Watch(Option<u32>),
}

fn discover(
    paths: &[String],
    selection: discover::Selection<'_>,
    output: Format,
    registry: &RegistryArgs,
    db: Option<&str>,
    mode: Mode,
) -> Result<ExitCode> {
    let catalog = match load(paths) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if catalog.errors() > 0 {
        report_problems(&catalog);
        eprintln!("barge: error: fix the definitions before discovering");
        return Ok(ExitCode::from(1));
    }
    if let Err(e) = discover::check_selection(&catalog, selection) {
        eprintln!("barge: error: {e}");
        return Ok(ExitCode::from(2));
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // A bad config file is the user's to fix: exit 2, before anything runs.
    let (file, registry_config) = match registry.settings() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("barge: error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let store = db
        .map(|url| runtime.block_on(barge_store::Store::open(url)))
        .transpose()?;
    let discoverer =
        discover::Discoverer::for_catalog(&catalog, registry_config, file.git_credential_rules(), store.as_ref())?;
    if let Mode::Watch(passes) = mode {
        runtime.block_on(discover::watch(
            &catalog,
            selection,
            &discoverer,
            store.as_ref(),
            passes,
            |reports| print_reports(reports, output),
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let reports = runtime.block_on(discoverer.run(&catalog, selection, store.as_ref()))?;
    print_reports(&reports, output)?;
    let failed = reports
        .iter()
        .any(|r| r.criteria_failed || r.subscriptions.iter().any(|s| s.error.is_some()));
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn print_reports(reports: &[discover::WarehouseReport], output: Format) -> Result<()> {
    client::print(output, &reports, || render::discovery_text(reports))
}

/// Loads and validates sources; a usage problem (missing path) becomes exit status 2, a
/// source that cannot be fetched exit status 1.
fn load(paths: &[String]) -> Result<Catalog, ExitCode> {
    for skipped in paths.iter().filter(|p| barge_source::skipped(paths, p)) {
        eprintln!("barge: note: skipping {skipped}: not a .yaml/.yml file");
    }
    barge_engine::load_catalog(paths).map_err(|e| {
        eprintln!("barge: error: {e}");
        ExitCode::from(if e.is_usage() { 2 } else { 1 })
    })
}

pub(crate) fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "barge".into())
}

/// Runs a call where the target says and prints its answer.
fn verb(target: &client::Target, c: ops::Call, output: Format) -> Result<ExitCode> {
    let answer = block_on(client::call(target, c))?;
    client::print(output, &answer, || client::text(&answer, false))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs a `get` call and prints what it found.
fn get(target: &client::Target, c: ops::Call, output: GetFormat) -> Result<ExitCode> {
    let answer = block_on(client::call(target, c))?;
    client::print_get(output, &answer)?;
    Ok(ExitCode::SUCCESS)
}

/// The time flag `--NAME WHEN` ([`parse_since`]) when given, or the error to print.
fn time_flag(name: &str, when: &Option<String>) -> Result<Option<i64>, String> {
    when.as_deref()
        .map(parse_since)
        .transpose()
        .map_err(|e| format!("barge: error: --{name}: {e}"))
}

/// `--since 2h` (that long ago) or `--since 2026-11-22T10:00:00Z`, as Unix milliseconds.
fn parse_since(s: &str) -> Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    // Whole days too (`30d`), which Go durations lack and delivery windows are written in.
    if let Some(days) = s.strip_suffix('d').and_then(|d| d.parse::<u32>().ok()) {
        return Ok(discover::now_millis() - i64::from(days) * 86_400_000);
    }
    let d = barge_core::duration::parse_go_duration(s)
        .map_err(|e| format!("{s:?} is neither a duration (2h, 30d) nor a time (RFC 3339): {e}"))?;
    Ok(discover::now_millis() - d.as_millis() as i64)
}

/// Queues promotions on the server; with `wait`, follows them until they finish.
fn queue_and_wait(target: &client::Target, c: ops::Call, wait: bool, output: Format) -> Result<ExitCode> {
    block_on(async {
        let queued = client::call(target, c).await?;
        let Answer::Queued(names) = &queued else {
            anyhow::bail!("the server did not answer with the promotions it queued");
        };
        if !wait {
            client::print(output, &queued, || client::text(&queued, false))?;
            return Ok(ExitCode::SUCCESS);
        }
        let mut finished = Vec::new();
        for name in &names.promotions {
            eprintln!("waiting for promotion {name} …");
            let mut seen = 0;
            loop {
                let c = ops::Call::GetPromotions {
                    project: None,
                    stage: None,
                    name: Some(name.clone()),
                };
                let Answer::Promotions(mut found) = client::call(target, c).await? else {
                    anyhow::bail!("the server did not answer with promotion {name}");
                };
                let p = found.swap_remove(0);
                // Step progress as it happens.
                for step in p.steps.iter().skip(seen) {
                    if matches!(step.status, StepStatus::Pending | StepStatus::Running) {
                        break;
                    }
                    eprintln!("  {} {}", step.alias, step.status.as_str());
                    seen += 1;
                }
                if p.phase.is_terminal() {
                    finished.push(p);
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
        let ok = finished.iter().all(|p| p.phase == Phase::Succeeded);
        let answer = Answer::Promotions(finished);
        client::print(output, &answer, || client::text(&answer, false))?;
        Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
    })
}
