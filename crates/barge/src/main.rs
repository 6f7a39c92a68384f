//! The `barge` command: wires the core and the edge crates into verbs.

mod config;
mod discover;
mod promote;
mod render;

use anyhow::Result;
use barge_core::Catalog;
use barge_core::model::Body;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::process::ExitCode;

/// barge: GitOps promotion pipelines (Kargo-compatible) in one binary.
///
/// barge reads Kargo's v1alpha1 YAML (Project, ProjectConfig, Warehouse, Stage, PromotionTask,
/// ClusterPromotionTask), Argo Rollouts AnalysisTemplates and barge's own `Pipeline`
/// shorthand, from files, directories or Git repositories.
#[derive(Parser, Debug)]
#[command(name = "barge", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

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
    Validate {
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
    },
    /// Show the pipeline graph: warehouses → stages, each stage's freight sources, steps and
    /// verification, in promotion order.
    ///
    /// Examples:
    ///   barge plan pipelines/
    ///   barge plan pipelines/ -o json
    ///   barge plan pipelines/ --expand      # the Kargo resources a Pipeline expands into
    #[command(verbatim_doc_comment)]
    Plan {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<String>,
        #[arg(short, long, value_enum, default_value_t = Format::Text)]
        output: Format,
        /// Print the Kargo resources that barge `Pipeline`s expand into (YAML by default).
        #[arg(long)]
        expand: bool,
    },
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
    Discover {
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
    },
    /// Ask for an immediate pass (`barge refresh warehouse NAME PATH...`).
    Refresh {
        #[command(subcommand)]
        what: RefreshWhat,
    },
    /// Promote Freight into a Stage now: run the Stage's promotion steps in this process.
    ///
    /// The steps (git-clone, kustomize-set-image, yaml-update, git-commit, git-push, …) run
    /// with live progress. The promotion and every step's outcome are recorded in the store;
    /// if barge stops mid-way, running the same command again resumes it, and a commit that
    /// already landed is recognised by its `Barge-Promotion` trailer, never made twice.
    /// `--dry-run` does everything but push and prints the diff each push would land.
    /// Exit status: 0 when the promotion succeeded, 1 otherwise.
    ///
    /// Examples:
    ///   barge promote pipelines/ --stage dev --freight cosmic-ocelot
    ///   barge promote pipelines/ --stage prod --freight 3f2a9c1 --dry-run
    ///   barge promote pipelines/ --stage dev --freight cosmic-ocelot -o json
    #[command(verbatim_doc_comment)]
    Promote {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<String>,
        /// The Stage to promote into.
        #[arg(long)]
        stage: String,
        /// The Freight: its name (ID) or alias.
        #[arg(long, value_name = "ID|ALIAS")]
        freight: String,
        /// The Stage's project (needed only when several projects have a Stage of that name).
        #[arg(long)]
        project: Option<String>,
        /// Run every step but push nothing; print the diff each git-push would land.
        #[arg(long)]
        dry_run: bool,
        /// Who is promoting (recorded in the audit log).
        #[arg(long, env = "USER", default_value = "barge")]
        actor: String,
        /// Where the repository cache and promotions' work directories live.
        #[arg(long, value_name = "DIR", env = "BARGE_WORK_DIR")]
        work_dir: Option<std::path::PathBuf>,
        #[arg(short, long, value_enum, default_value_t = Format::Text)]
        output: Format,
        #[command(flatten)]
        registry: RegistryArgs,
        #[arg(long, value_name = "URL", env = "BARGE_DB", default_value = "sqlite://barge.db")]
        db: String,
    },
    /// Show stored state (`barge get freight`).
    Get {
        #[command(subcommand)]
        what: GetWhat,
    },
}

#[derive(Subcommand, Debug)]
enum RefreshWhat {
    /// Discover one Warehouse now, without waiting for its interval, and store the result.
    ///
    /// Example:
    ///   barge refresh warehouse guestbook pipelines/ --db sqlite://barge.db
    #[command(verbatim_doc_comment)]
    Warehouse {
        name: String,
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<String>,
        #[arg(short, long, value_enum, default_value_t = Format::Text)]
        output: Format,
        #[command(flatten)]
        registry: RegistryArgs,
        #[arg(long, value_name = "URL", env = "BARGE_DB", default_value = "sqlite://barge.db")]
        db: String,
    },
}

#[derive(Subcommand, Debug)]
enum GetWhat {
    /// List stored Freight, newest first, or show one by ID or alias.
    ///
    /// Examples:
    ///   barge get freight
    ///   barge get freight --warehouse guestbook -o json
    ///   barge get freight cosmic-ocelot --project demo -o yaml
    #[command(verbatim_doc_comment)]
    Freight {
        /// A Freight's name (ID) or alias.
        name: Option<String>,
        /// The project (required with NAME when several projects are stored).
        #[arg(long)]
        project: Option<String>,
        #[arg(long, value_name = "NAME")]
        warehouse: Option<String>,
        #[arg(short, long, value_enum, default_value_t = Format::Text)]
        output: Format,
        /// The store (sqlite://PATH or postgres://...).
        #[arg(long, value_name = "URL", env = "BARGE_DB", default_value = "sqlite://barge.db")]
        db: String,
    },
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
    /// The registry configuration: the config file, then the flags (which add rewrites and
    /// plain-HTTP hosts, and override the rate limit when given).
    /// The configuration file, or the defaults without one.
    fn file(&self) -> Result<config::Config> {
        match &self.config {
            Some(path) => config::Config::load(path),
            None => Ok(config::Config::default()),
        }
    }

    fn config(&self) -> Result<barge_registry::RegistryConfig> {
        let file = self.file()?;
        let mut rewrites: Vec<barge_registry::Rewrite> = file
            .rewrites
            .iter()
            .map(|r| barge_registry::Rewrite {
                from: r.from.clone(),
                to: r.to.clone(),
            })
            .collect();
        rewrites.extend(self.rewrite.iter().cloned());
        let mut plain = file.registries.plain_http.clone();
        plain.extend(self.plain_http.iter().cloned());
        Ok(barge_registry::RegistryConfig {
            rewrites,
            plain_http_hosts: plain,
            rate_limit: self.rate_limit.or(file.registries.rate_limit).unwrap_or(20.0),
            page_size: self.page_size,
            credentials: file.credential_rules(),
            ..Default::default()
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
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
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("barge: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Validate {
            paths,
            output,
            deny_warnings,
        } => {
            let catalog = match load(&paths) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let mut out = std::io::stdout().lock();
            match output {
                Format::Json => {
                    serde_json::to_writer_pretty(&mut out, &render::validate_json(&catalog))?;
                    writeln!(out)?;
                }
                Format::Yaml => write!(out, "{}", yaml_serde::to_string(&render::validate_json(&catalog))?)?,
                Format::Text => {
                    let color = render::use_color();
                    write!(out, "{}", render::diagnostics_text(&catalog, color))?;
                    writeln!(out, "{}", render::summary(&catalog))?;
                }
            }
            let warnings = catalog.diagnostics.len() - catalog.errors();
            Ok(if catalog.errors() > 0 || (deny_warnings && warnings > 0) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Discover {
            paths,
            warehouse,
            output,
            registry,
            db,
            watch,
            passes,
        } => {
            let mode = if watch { Mode::Watch(passes) } else { Mode::Once };
            discover(&paths, warehouse.as_deref(), output, &registry, db.as_deref(), mode)
        }
        Command::Refresh {
            what:
                RefreshWhat::Warehouse {
                    name,
                    paths,
                    output,
                    registry,
                    db,
                },
        } => discover(&paths, Some(&name), output, &registry, Some(&db), Mode::Once),
        Command::Get {
            what:
                GetWhat::Freight {
                    name,
                    project,
                    warehouse,
                    output,
                    db,
                },
        } => get_freight(name.as_deref(), project.as_deref(), warehouse.as_deref(), output, &db),
        Command::Promote {
            paths,
            stage,
            freight,
            project,
            dry_run,
            actor,
            work_dir,
            output,
            registry,
            db,
        } => {
            let catalog = match load(&paths) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            if catalog.errors() > 0 {
                eprint!("{}", render::diagnostics_text(&catalog, render::use_color_stderr()));
                eprintln!("{}", render::summary(&catalog));
                return Ok(ExitCode::from(1));
            }
            let work_dir = work_dir.unwrap_or_else(default_work_dir);
            let config = registry.config()?;
            let file = registry.file()?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let (p, outcome) = runtime.block_on(async {
                let store = barge_store::Store::open(&db).await?;
                let engine = promote::engine(work_dir, &config, &file, dry_run)?;
                let req = promote::Request {
                    stage: &stage,
                    project: project.as_deref(),
                    freight: &freight,
                    actor: &actor,
                    dry_run,
                };
                promote::run(&catalog, store, engine, &req).await
            })?;
            let mut out = std::io::stdout().lock();
            let report = serde_json::json!({
                "name": p.name,
                "project": p.project,
                "stage": p.stage,
                "freight": p.freight.metadata.name,
                "dryRun": dry_run,
                "phase": outcome.phase.as_str(),
                "message": outcome.message,
                "steps": outcome.state.steps,
                "outputs": outcome.state.outputs,
                "effects": outcome.effects,
            });
            match output {
                Format::Json => {
                    serde_json::to_writer_pretty(&mut out, &report)?;
                    writeln!(out)?;
                }
                Format::Yaml => write!(out, "{}", yaml_serde::to_string(&report)?)?,
                Format::Text => {
                    if dry_run {
                        for (alias, o) in &outcome.state.outputs {
                            if let Some(diff) = o.get("diff").and_then(|d| d.as_str()) {
                                writeln!(
                                    out,
                                    "# {alias}: the diff a push to {} would land",
                                    o["branch"].as_str().unwrap_or("?")
                                )?;
                                write!(out, "{diff}")?;
                            }
                        }
                    }
                    writeln!(
                        out,
                        "Promotion {} of {} into {}: {}{}",
                        p.name,
                        p.freight.alias.as_deref().unwrap_or(&p.freight.metadata.name),
                        p.stage,
                        outcome.phase.as_str(),
                        if outcome.message.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", outcome.message)
                        }
                    )?;
                    if !outcome.effects.is_empty() {
                        let verb = if dry_run { "Would apply" } else { "Applied" };
                        writeln!(out, "{verb} {} metadata/alias change(s)", outcome.effects.len())?;
                    }
                }
            }
            Ok(if outcome.phase == barge_core::promotion::Phase::Succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Plan { paths, output, expand } => {
            let catalog = match load(&paths) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            // Problems go to stderr so stdout stays a clean plan for scripts.
            if !catalog.diagnostics.is_empty() {
                eprint!("{}", render::diagnostics_text(&catalog, render::use_color_stderr()));
                eprintln!("{}", render::summary(&catalog));
            }
            let mut out = std::io::stdout().lock();
            if expand {
                let docs: Vec<serde_json::Value> = catalog
                    .resources
                    .iter()
                    .filter(|r| r.expanded_from.is_some())
                    .filter_map(|r| r.body.as_ref().map(Body::to_json))
                    .collect();
                if docs.is_empty() {
                    eprintln!("barge: no barge.dev/v1alpha1 Pipeline found; --expand has nothing to show");
                }
                match output {
                    Format::Json => {
                        serde_json::to_writer_pretty(&mut out, &docs)?;
                        writeln!(out)?;
                    }
                    Format::Yaml | Format::Text => {
                        for d in &docs {
                            write!(out, "---\n{}", yaml_serde::to_string(d)?)?;
                        }
                    }
                }
            } else {
                let plan = barge_core::plan::plan(&catalog);
                match output {
                    Format::Json => {
                        serde_json::to_writer_pretty(&mut out, &plan)?;
                        writeln!(out)?;
                    }
                    Format::Yaml => write!(out, "{}", yaml_serde::to_string(&plan)?)?,
                    Format::Text => write!(out, "{}", barge_core::plan::render_text(&plan))?,
                }
            }
            Ok(if catalog.errors() > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// One pass, or passes as Warehouses come due.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Once,
    Watch(Option<u32>),
}

fn discover(
    paths: &[String],
    warehouse: Option<&str>,
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
        eprint!("{}", render::diagnostics_text(&catalog, render::use_color_stderr()));
        eprintln!("{}", render::summary(&catalog));
        eprintln!("barge: error: fix the definitions before discovering");
        return Ok(ExitCode::from(1));
    }
    if let Some(w) = warehouse
        && !catalog
            .resources
            .iter()
            .any(|r| r.kind == barge_core::model::Kind::Warehouse && r.name == w)
    {
        eprintln!("barge: error: no Warehouse named {w:?} in the definitions");
        return Ok(ExitCode::from(2));
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // A bad config file is the user's to fix: exit 2, before anything runs.
    let (registry_config, git_rules) = match registry
        .config()
        .and_then(|c| Ok((c, registry.file()?.git_credential_rules())))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("barge: error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let store = runtime.block_on(async {
        match db {
            Some(url) => anyhow::Ok(Some(barge_store::Store::open(url).await?)),
            None => Ok(None),
        }
    })?;
    if let Mode::Watch(passes) = mode {
        runtime.block_on(watch(
            &catalog,
            warehouse,
            &registry_config,
            &git_rules,
            store.as_ref(),
            output,
            passes,
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let reports = runtime.block_on(discover::run(
        &catalog,
        warehouse,
        registry_config,
        &git_rules,
        store.as_ref(),
    ))?;
    print_reports(&reports, output)?;
    let failed = reports
        .iter()
        .any(|r| r.criteria_failed || r.subscriptions.iter().any(|s| s.error.is_some()));
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn print_reports(reports: &[discover::WarehouseReport], output: Format) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match output {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, reports)?;
            writeln!(out)?;
        }
        Format::Yaml => write!(out, "{}", yaml_serde::to_string(reports)?)?,
        Format::Text => write!(out, "{}", discover::render(reports))?,
    }
    out.flush()?;
    Ok(())
}

/// Discovers Warehouses as they come due, until Ctrl-C (or `passes` Warehouse passes).
async fn watch(
    catalog: &Catalog,
    only: Option<&str>,
    registry: &barge_registry::RegistryConfig,
    git_rules: &[barge_registry::CredentialRule],
    store: Option<&barge_store::Store>,
    output: Format,
    passes: Option<u32>,
) -> Result<()> {
    use barge_core::schedule::Schedule;
    let mut warehouses = Vec::new();
    for (r, spec) in discover::warehouses(catalog, only) {
        let key = format!("{}/{}", r.project, r.name);
        let schedule =
            Schedule::new(spec.interval.as_deref(), spec.schedule.as_deref(), &key).map_err(anyhow::Error::msg)?;
        // With a store, the last pass survives restarts.
        let last = match store {
            Some(s) => s.get_discovery_status(&r.project, &r.name).await?.map(|(_, at)| at),
            None => None,
        };
        warehouses.push((r.name.clone(), schedule, last));
    }
    anyhow::ensure!(!warehouses.is_empty(), "no Warehouse to watch");
    let mut done = 0u32;
    loop {
        let now = discover::now_millis();
        for (name, schedule, last) in &mut warehouses {
            if schedule.next_due(*last, now) <= now {
                let reports = discover::run(catalog, Some(name), registry.clone(), git_rules, store).await?;
                print_reports(&reports, output)?;
                *last = Some(discover::now_millis());
                done += 1;
                if passes.is_some_and(|p| done >= p) {
                    return Ok(());
                }
            }
        }
        let next = warehouses
            .iter()
            .map(|(_, s, last)| s.next_due(*last, now))
            .min()
            .unwrap_or(now + 60_000);
        let wait = std::time::Duration::from_millis((next - discover::now_millis()).clamp(50, 60_000) as u64);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

fn get_freight(
    name: Option<&str>,
    project: Option<&str>,
    warehouse: Option<&str>,
    output: Format,
    db: &str,
) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let list = runtime.block_on(async {
        let store = barge_store::Store::open(db).await?;
        let all = store.list_freight(project, warehouse).await?;
        anyhow::Ok(match name {
            None => all,
            Some(n) => all
                .into_iter()
                .filter(|f| f.freight.metadata.name == n || f.freight.alias.as_deref() == Some(n))
                .collect(),
        })
    })?;
    if let Some(n) = name {
        if list.is_empty() {
            eprintln!(
                "barge: error: no Freight named or aliased {n:?}{}",
                project.map(|p| format!(" in project {p:?}")).unwrap_or_default()
            );
            return Ok(ExitCode::from(1));
        }
        if list.len() > 1 {
            eprintln!("barge: error: {n:?} matches Freight in several projects; add --project");
            return Ok(ExitCode::from(2));
        }
    }
    let mut out = std::io::stdout().lock();
    let values: Vec<serde_json::Value> = list
        .iter()
        .map(|f| barge_core::model::prune(serde_json::to_value(&f.freight).unwrap_or_default()))
        .collect();
    match (output, name) {
        (Format::Json, Some(_)) => serde_json::to_writer_pretty(&mut out, &values[0])?,
        (Format::Json, None) => serde_json::to_writer_pretty(&mut out, &values)?,
        (Format::Yaml, Some(_)) => write!(out, "{}", yaml_serde::to_string(&values[0])?)?,
        (Format::Yaml, None) => write!(out, "{}", yaml_serde::to_string(&values)?)?,
        (Format::Text, _) => write!(out, "{}", render::freight_table(&list))?,
    }
    if output == Format::Json {
        writeln!(out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `$XDG_CACHE_HOME/barge`, `~/.cache/barge`, or `.barge` when neither is known.
fn default_work_dir() -> std::path::PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))
        .map_or_else(|| std::path::PathBuf::from(".barge"), |c| c.join("barge"))
}

/// Loads and validates sources; a usage problem (missing path) becomes exit status 2, a
/// source that cannot be fetched exit status 1.
fn load(paths: &[String]) -> Result<Catalog, ExitCode> {
    let sources: Vec<barge_source::Source> = paths.iter().map(|p| barge_source::parse_source(p)).collect();
    let mut catalog = Catalog::default();
    if let Err(e) = barge_source::load(&sources, &mut catalog) {
        eprintln!("barge: error: {e}");
        return Err(ExitCode::from(if e.is_usage() { 2 } else { 1 }));
    }
    barge_core::validate::validate(&mut catalog);
    Ok(catalog)
}
