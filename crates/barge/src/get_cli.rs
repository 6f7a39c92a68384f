//! `barge get stages|freight|promotions|warehouses|projects`: Kargo's resources (issue #16),
//! read through the REST API's GETs with `--server`, or computed in-process with `--db` and
//! converted by the same pure conversion the server uses ([`barge_engine::resource`]), so that
//! both print the same objects. Tables render from those objects. `-w` follows the REST
//! watch (Server-Sent Events) and prints each changed object's rows, as `kubectl get -w` does.

use crate::GetFormat;
use crate::client::{self, Server, Target, list_or_dash, reason, short};
use crate::render::{rfc3339_time, table};
use anyhow::{Context as _, Result, bail};
use barge_engine::resource::{Freight, Project, Promotion, Stage, Warehouse};
use barge_engine::{Answer, ops::Call};
use serde_json::Value;
use std::io::Write;

/// The kinds `barge get` reads as Kargo's resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Stages,
    Freight,
    Promotions,
    Warehouses,
    Projects,
}

impl Kind {
    /// The REST API's path segment under a project.
    fn path(self) -> &'static str {
        match self {
            Kind::Stages => "stages",
            Kind::Freight => "freight",
            Kind::Promotions => "promotions",
            Kind::Warehouses => "warehouses",
            Kind::Projects => "",
        }
    }

    /// kubectl's resource name (`-o name`).
    fn resource(self) -> &'static str {
        match self {
            Kind::Stages => "stage.kargo.akuity.io",
            Kind::Freight => "freight.kargo.akuity.io",
            Kind::Promotions => "promotion.kargo.akuity.io",
            Kind::Warehouses => "warehouse.kargo.akuity.io",
            Kind::Projects => "project.kargo.akuity.io",
        }
    }

    /// The kind's name in messages.
    fn singular(self) -> &'static str {
        match self {
            Kind::Stages => "Stage",
            Kind::Freight => "Freight",
            Kind::Promotions => "promotion",
            Kind::Warehouses => "Warehouse",
            Kind::Projects => "project",
        }
    }
}

/// What a `barge get` asks for.
#[derive(Clone, Debug)]
pub struct Query {
    pub kind: Kind,
    pub project: Option<String>,
    /// One object by name (a Freight's name or alias).
    pub name: Option<String>,
    /// Freight of this Warehouse.
    pub warehouse: Option<String>,
    /// Promotions into this Stage.
    pub stage: Option<String>,
}

/// Kargo's resources of one kind.
#[derive(Clone, Debug)]
pub enum Resources {
    Stages(Vec<Stage>),
    Freight(Vec<Freight>),
    Promotions(Vec<Promotion>),
    Warehouses(Vec<Warehouse>),
    Projects(Vec<Project>),
}

impl Resources {
    /// The engine's answer as resources, when it is one of these kinds.
    pub fn of(answer: &Answer) -> Option<Resources> {
        Some(match answer {
            Answer::Stages(l) => Resources::Stages(l.iter().map(Stage::of).collect()),
            Answer::Freight(l) => Resources::Freight(l.iter().map(Freight::of).collect()),
            Answer::Promotions(l) => Resources::Promotions(l.iter().map(Promotion::of).collect()),
            Answer::Warehouses(l) => Resources::Warehouses(l.iter().map(Warehouse::of).collect()),
            _ => return None,
        })
    }

    /// Objects as the REST API sent them.
    fn from_values(kind: Kind, values: Vec<Value>) -> Result<Resources> {
        fn read<T: serde::de::DeserializeOwned>(values: Vec<Value>) -> Result<Vec<T>> {
            values
                .into_iter()
                .map(serde_json::from_value)
                .collect::<Result<_, _>>()
                .context("the server answered with something other than Kargo's resource")
        }
        Ok(match kind {
            Kind::Stages => Resources::Stages(read(values)?),
            Kind::Freight => Resources::Freight(read(values)?),
            Kind::Promotions => Resources::Promotions(read(values)?),
            Kind::Warehouses => Resources::Warehouses(read(values)?),
            Kind::Projects => Resources::Projects(read(values)?),
        })
    }

    fn values(&self) -> Result<Vec<Value>> {
        let v = match self {
            Resources::Stages(l) => serde_json::to_value(l),
            Resources::Freight(l) => serde_json::to_value(l),
            Resources::Promotions(l) => serde_json::to_value(l),
            Resources::Warehouses(l) => serde_json::to_value(l),
            Resources::Projects(l) => serde_json::to_value(l),
        }?;
        Ok(match v {
            Value::Array(items) => items,
            other => vec![other],
        })
    }

    fn kind(&self) -> Kind {
        match self {
            Resources::Stages(_) => Kind::Stages,
            Resources::Freight(_) => Kind::Freight,
            Resources::Promotions(_) => Kind::Promotions,
            Resources::Warehouses(_) => Kind::Warehouses,
            Resources::Projects(_) => Kind::Projects,
        }
    }

    fn names(&self) -> Vec<String> {
        let resource = self.kind().resource();
        let names: Vec<&str> = match self {
            Resources::Stages(l) => l.iter().map(|o| o.metadata.name.as_str()).collect(),
            Resources::Freight(l) => l.iter().map(|o| o.metadata.name.as_str()).collect(),
            Resources::Promotions(l) => l.iter().map(|o| o.metadata.name.as_str()).collect(),
            Resources::Warehouses(l) => l.iter().map(|o| o.metadata.name.as_str()).collect(),
            Resources::Projects(l) => l.iter().map(|o| o.metadata.name.as_str()).collect(),
        };
        names.into_iter().map(|n| format!("{resource}/{n}")).collect()
    }

    /// The table for people (`wide` adds columns) and, for one Stage or promotion, its
    /// details.
    pub fn text(&self, wide: bool) -> String {
        let details = match self {
            Resources::Stages(l) if l.len() == 1 => stage_details(&l[0]),
            Resources::Promotions(l) if l.len() == 1 => promotion_steps(&l[0]),
            _ => String::new(),
        };
        self.table(wide) + &details
    }

    /// The table alone: a header line, then the rows.
    fn table(&self, wide: bool) -> String {
        match self {
            Resources::Stages(l) => stages_table(l, wide),
            Resources::Freight(l) => freight_table(l, wide),
            Resources::Promotions(l) => promotions_table(l, wide),
            Resources::Warehouses(l) => warehouses_table(l, wide),
            Resources::Projects(l) => projects_table(l),
        }
    }

    /// Keeps what the query's filters select (a watch follows the whole list).
    fn retain(&mut self, q: &Query) {
        let named =
            |name: &str, alias: Option<&str>| q.name.as_deref().is_none_or(|want| want == name || Some(want) == alias);
        match self {
            Resources::Stages(l) => l.retain(|o| named(&o.metadata.name, None)),
            Resources::Freight(l) => l.retain(|o| {
                named(&o.metadata.name, o.alias.as_deref()) && q.warehouse.as_deref().is_none_or(|w| w == o.warehouse())
            }),
            Resources::Promotions(l) => {
                l.retain(|o| named(&o.metadata.name, None) && q.stage.as_deref().is_none_or(|s| s == o.spec.stage))
            }
            Resources::Warehouses(l) => l.retain(|o| named(&o.metadata.name, None)),
            Resources::Projects(l) => l.retain(|o| named(&o.metadata.name, None)),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Resources::Stages(l) => l.is_empty(),
            Resources::Freight(l) => l.is_empty(),
            Resources::Promotions(l) => l.is_empty(),
            Resources::Warehouses(l) => l.is_empty(),
            Resources::Projects(l) => l.is_empty(),
        }
    }
}

/// Reads what the query asks for, where the target says.
pub async fn read(target: &Target, q: &Query) -> Result<Resources> {
    let (target, q) = &in_context(target, q)?;
    if target.server().is_some() {
        return read_server(&target.remote, q).await;
    }
    let call = |c: Call| client::call(target, c);
    let project = q.project.clone();
    let found = match q.kind {
        Kind::Stages => {
            call(Call::GetStages {
                project,
                name: q.name.clone(),
            })
            .await?
        }
        Kind::Freight => {
            call(Call::GetFreight {
                project,
                warehouse: q.warehouse.clone(),
                name: q.name.clone(),
                page: None,
            })
            .await?
        }
        Kind::Promotions => {
            call(Call::GetPromotions {
                project,
                stage: q.stage.clone(),
                name: q.name.clone(),
            })
            .await?
        }
        Kind::Warehouses => call(Call::GetWarehouses { project }).await?,
        Kind::Projects => {
            let project = q.project.clone().or(q.name.clone());
            let Answer::Stages(stages) = call(Call::GetStages {
                project: project.clone(),
                name: None,
            })
            .await?
            else {
                bail!("the engine did not answer with Stages");
            };
            let Answer::Warehouses(warehouses) = call(Call::GetWarehouses { project }).await? else {
                bail!("the engine did not answer with Warehouses");
            };
            return Ok(Resources::Projects(Project::all(&stages, &warehouses)));
        }
    };
    let mut resources = Resources::of(&found).context("the engine answered another kind")?;
    if q.kind == Kind::Warehouses {
        resources.retain(q);
        if let Some(name) = resources.is_empty().then_some(q.name.as_ref()).flatten() {
            bail!("no Warehouse named {name:?}");
        }
    }
    Ok(resources)
}

/// The target and query with the current context filled in (its server, token file and
/// default project), as every other verb has them: a context's server is read through its
/// REST API too.
fn in_context(target: &Target, q: &Query) -> Result<(Target, Query)> {
    let target = target.resolved()?;
    let mut q = q.clone();
    if q.project.is_none() && q.kind != Kind::Projects {
        q.project.clone_from(&target.remote.default_project);
    }
    Ok((target, q))
}

/// The projects to read from the server: the one asked for, or every one the token may read.
async fn projects(remote: &Server, project: Option<&str>) -> Result<Vec<String>> {
    if let Some(p) = project {
        return Ok(vec![p.to_string()]);
    }
    let list = client::rest_get(remote, &["projects"], &[]).await?.ok()?;
    Ok(items(list)?
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect())
}

fn items(mut list: Value) -> Result<Vec<Value>> {
    match list["items"].take() {
        Value::Array(items) => Ok(items),
        _ => bail!("the server answered a list without items"),
    }
}

async fn read_server(remote: &Server, q: &Query) -> Result<Resources> {
    if q.kind == Kind::Projects {
        let values = match q.project.as_deref().or(q.name.as_deref()) {
            Some(p) => vec![client::rest_get(remote, &["projects", p], &[]).await?.ok()?],
            None => items(client::rest_get(remote, &["projects"], &[]).await?.ok()?)?,
        };
        return Resources::from_values(q.kind, values);
    }
    let mut filters: Vec<(&str, &str)> = Vec::new();
    if let Some(w) = &q.warehouse {
        filters.push(("warehouse", w));
    }
    if let Some(s) = &q.stage {
        filters.push(("stage", s));
    }
    let mut values = Vec::new();
    let mut found_in = Vec::new();
    for project in projects(remote, q.project.as_deref()).await? {
        match &q.name {
            Some(name) => {
                let answer = client::rest_get(remote, &["projects", &project, q.kind.path(), name], &[]).await?;
                // Without --project, a name is looked for in every project, as the engine does.
                if q.project.is_none() && answer.is_not_found() {
                    continue;
                }
                values.push(answer.ok()?);
                found_in.push(project);
            }
            None => values.extend(items(
                client::rest_get(remote, &["projects", &project, q.kind.path()], &filters)
                    .await?
                    .ok()?,
            )?),
        }
    }
    if let Some(name) = &q.name {
        match found_in.as_slice() {
            [] => bail!("no {} named {name:?} in any project", q.kind.singular()),
            [_] => {}
            many => bail!(
                "{} {name:?} exists in several projects ({}); add --project",
                q.kind.singular(),
                many.join(", ")
            ),
        }
    }
    Resources::from_values(q.kind, values)
}

/// Prints what `get` found. With `one` (a name was asked for) JSON and YAML print the one
/// object, as `kubectl get KIND NAME` does; a listing prints as kubectl's and Kargo's `List`
/// ([`client::list`]), also when it holds one object (Kargo's CLI then prints the object
/// alone, which breaks a script's `.items[]` on a project with one Stage; kubectl does not).
pub fn print(output: GetFormat, found: &Resources, one: bool) -> Result<()> {
    let mut values = found.values()?;
    let shown = match values.len() {
        1 if one => values.remove(0),
        _ => client::list(values),
    };
    let mut out = std::io::stdout().lock();
    match output {
        GetFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&shown)?)?,
        GetFormat::Yaml => write!(out, "{}", yaml_serde::to_string(&shown)?)?,
        GetFormat::Text => write!(out, "{}", found.text(false))?,
        GetFormat::Wide => write!(out, "{}", found.text(true))?,
        GetFormat::Name => {
            for name in found.names() {
                writeln!(out, "{name}")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// `barge get … -w`: the list as the watch's first objects show it, then each change as it
/// comes, printed as kubectl's `-w` prints it (the changed object's rows appended without the
/// header; JSON and YAML one object at a time). Follows one project; reconnects with the
/// last event's id when the connection drops, so nothing is missed.
pub async fn watch(target: &Target, q: &Query, output: GetFormat) -> Result<()> {
    let (target, q) = &in_context(target, q)?;
    let Some(remote) = target.server().map(|_| &target.remote) else {
        bail!("-w follows barge serve's watch: add --server URL");
    };
    if q.kind == Kind::Projects {
        bail!("-w follows Stages, Freight, Promotions or Warehouses, not projects");
    }
    let project = match projects(remote, q.project.as_deref()).await?.as_slice() {
        [one] => one.clone(),
        _ => bail!("-w follows one project's list: add --project"),
    };
    let mut last_id: Option<String> = None;
    let mut first = true;
    let mut failures = 0;
    loop {
        let mut events =
            match client::rest_watch(remote, &["projects", &project, q.kind.path()], last_id.as_deref()).await {
                Ok(events) => events,
                Err(e) if !first && failures < 3 => {
                    failures += 1;
                    eprintln!("barge: watch: {e:#}; reconnecting");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
        failures = 0;
        let mut listing = Vec::new();
        while let Some(event) = events.next().await? {
            if event.id.is_some() {
                last_id.clone_from(&event.id);
            }
            match event.kind.as_deref() {
                // The first objects, up to the id alone that says where the changes start.
                Some(_) if first => listing.push(event.object()?),
                None if first && event.id.is_some() => {
                    first = false;
                    let mut found = Resources::from_values(q.kind, std::mem::take(&mut listing))?;
                    found.retain(q);
                    match output {
                        GetFormat::Text | GetFormat::Wide => {
                            print!("{}", found.table(output == GetFormat::Wide));
                            std::io::stdout().flush()?;
                        }
                        // As `kubectl get -w -o json|yaml`: the objects one at a time, as
                        // their changes print after them, not a List.
                        _ => {
                            for object in found.values()? {
                                print_object(output, q.kind, &object)?;
                            }
                        }
                    }
                }
                Some(kind) => {
                    let object = event.object()?;
                    if kind == "DELETED" {
                        print_deleted(output, q.kind, &object)?;
                        continue;
                    }
                    let mut changed = Resources::from_values(q.kind, vec![object])?;
                    changed.retain(q);
                    if !changed.is_empty() {
                        print_change(output, &changed)?;
                    }
                }
                None => {}
            }
        }
        // The server ended the stream (a restart, a client timeout): resume after a pause, so
        // that a server that keeps closing it is not asked again in a tight loop.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// One changed object: its rows without the header, or the object alone.
fn print_change(output: GetFormat, changed: &Resources) -> Result<()> {
    match output {
        GetFormat::Text | GetFormat::Wide => {
            let table = changed.table(output == GetFormat::Wide);
            let mut out = std::io::stdout().lock();
            for line in table.lines().skip(1) {
                writeln!(out, "{line}")?;
            }
            out.flush()?;
            Ok(())
        }
        GetFormat::Json | GetFormat::Yaml | GetFormat::Name => {
            for object in changed.values()? {
                print_object(output, changed.kind(), &object)?;
            }
            Ok(())
        }
    }
}

/// One object of a watch, alone: JSON, a YAML document, or its name.
fn print_object(output: GetFormat, kind: Kind, object: &Value) -> Result<()> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let mut out = std::io::stdout().lock();
    match output {
        GetFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(object)?)?,
        GetFormat::Yaml => write!(out, "---\n{}", yaml_serde::to_string(object)?)?,
        GetFormat::Name | GetFormat::Text | GetFormat::Wide => writeln!(out, "{}/{name}", kind.resource())?,
    }
    out.flush()?;
    Ok(())
}

fn print_deleted(output: GetFormat, kind: Kind, object: &Value) -> Result<()> {
    match output {
        GetFormat::Text | GetFormat::Wide => {
            println!("{} deleted", object["metadata"]["name"].as_str().unwrap_or_default());
            Ok(())
        }
        _ => print_object(output, kind, object),
    }
}

// ---------------------------------------------------------------------------------------
// Tables

fn opt_time(t: Option<&str>) -> String {
    t.map(rfc3339_time).unwrap_or_default()
}

/// `barge get stages`: one line per freight request. Wide adds the current Freight's ID and
/// the Stage's verification templates.
fn stages_table(list: &[Stage], wide: bool) -> String {
    if list.is_empty() {
        return "no stages\n".into();
    }
    let mut header = vec![
        "PROJECT".to_string(),
        "STAGE".into(),
        "WAREHOUSE".into(),
        "CURRENT".into(),
        "VERIFIED".into(),
        "AUTO".into(),
        "STATE".into(),
    ];
    if wide {
        header.extend(["FREIGHT ID".into(), "VERIFICATION".into()]);
    }
    header.push("WHY".into());
    let mut rows = vec![header];
    for st in list {
        let status = &st.status;
        let templates = st.verification_templates();
        for r in &status.barge.requests {
            let held = status
                .auto_promotion_holds
                .values()
                .any(|h| h.origin.name == r.warehouse);
            let current = r.current.as_ref();
            let mut row = vec![
                st.metadata.namespace.clone(),
                st.metadata.name.clone(),
                r.warehouse.clone(),
                current.map_or("-".into(), |c| c.alias.clone()),
                match current.map(|c| c.verification.as_str()) {
                    None => "-".into(),
                    Some("Succeeded") => "yes".into(),
                    Some("") if !templates.is_empty() => "not run".into(),
                    Some("") => "no".into(),
                    Some(other) => other.to_string(),
                },
                match (status.auto_promotion_enabled, held) {
                    (true, true) => "held".into(),
                    (true, false) => "yes".into(),
                    (false, _) => "no".into(),
                },
                r.state.clone(),
            ];
            if wide {
                row.push(current.map_or("-".into(), |c| c.name.clone()));
                row.push(list_or_dash(&templates));
            }
            row.push(r.message.clone());
            rows.push(row);
        }
    }
    table(rows)
}

/// What `barge get stage NAME` adds under the table.
fn stage_details(st: &Stage) -> String {
    let status = &st.status;
    let mut out = String::new();
    let phase = |p: &barge_engine::resource::PromotionReference| {
        p.status
            .as_ref()
            .map(|s| (s.phase.clone(), s.message.clone()))
            .unwrap_or_default()
    };
    if let Some(p) = &status.current_promotion {
        out += &format!("promotion running: {} ({})\n", p.name, phase(p).0);
    }
    if let Some(p) = &status.last_promotion {
        let (phase, message) = phase(p);
        out += &format!("last promotion: {} {phase}{}\n", p.name, reason(&message));
    }
    if let Some(h) = &status.health {
        let message = h.issues.first().map(String::as_str).unwrap_or_default();
        out += &format!("health: {}{}\n", h.status, reason(message));
    }
    if let Some(v) = &status.barge.last_verification {
        let msg = reason(&v.run.message);
        out += &format!(
            "last verification: {} {} (of {}, by {}){msg}\n",
            v.run.id,
            v.run.phase.as_str(),
            v.alias,
            v.run.actor
        );
        if let Ok(report) = serde_json::from_value::<barge_analysis::Report>(v.run.report.clone()) {
            for line in crate::analysis_cli::report_text(&report)
                .lines()
                .filter(|l| !l.starts_with("Phase: "))
            {
                out += &format!("  {line}\n");
            }
        }
    }
    if let Some(w) = &status.promotion_window_status {
        if w.closed {
            out += &format!(
                "promotion window: closed by {} until {}\n",
                w.reason,
                w.next_open
                    .as_deref()
                    .map_or("(no opening within a year)".into(), rfc3339_time)
            );
        } else {
            out += "promotion window: open\n";
        }
    }
    for h in status.auto_promotion_holds.values() {
        out += &format!(
            "held by {} since {} (warehouse {})\n",
            h.actor,
            opt_time(h.created_at.as_deref()),
            h.origin.name
        );
    }
    out
}

/// `barge get warehouses`; wide adds the number of subscriptions.
fn warehouses_table(list: &[Warehouse], wide: bool) -> String {
    let mut header = vec!["PROJECT".to_string(), "WAREHOUSE".into(), "INTERVAL".into()];
    if wide {
        header.push("SUBSCRIPTIONS".into());
    }
    header.extend([
        "FREIGHT".into(),
        "NEWEST".into(),
        "LAST DISCOVERY".into(),
        "ERROR".into(),
    ]);
    let mut rows = vec![header];
    for w in list {
        let mut row = vec![
            w.metadata.namespace.clone(),
            w.metadata.name.clone(),
            w.spec["interval"].as_str().unwrap_or_default().to_string(),
        ];
        if wide {
            row.push(w.subscriptions().to_string());
        }
        row.extend([
            w.status.barge.freight.to_string(),
            w.status.barge.newest.clone().unwrap_or_default(),
            w.discovered_at().map_or("never".into(), rfc3339_time),
            w.error().unwrap_or_default().to_string(),
        ]);
        rows.push(row);
    }
    table(rows)
}

/// `barge get freight`; wide shows the whole ID and the Stages it is approved for.
fn freight_table(list: &[Freight], wide: bool) -> String {
    if list.is_empty() {
        return "no freight stored\n".into();
    }
    let mut header = vec![
        "NAME".to_string(),
        "ALIAS".into(),
        "WAREHOUSE".into(),
        "CREATED".into(),
        "IN".into(),
        "VERIFIED IN".into(),
    ];
    if wide {
        header.push("APPROVED FOR".into());
    }
    header.push("ARTIFACTS".into());
    let mut rows = vec![header];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    for f in list {
        let mut artifacts: Vec<String> = f
            .images
            .iter()
            .map(|i| format!("{}:{}", s(&i["repoURL"]), s(&i["tag"])))
            .collect();
        artifacts.extend(f.commits.iter().map(|c| {
            let at = c["tag"].as_str().map_or_else(|| short(&s(&c["id"])), str::to_string);
            format!("{}@{at}", s(&c["repoURL"]))
        }));
        artifacts.extend(
            f.charts
                .iter()
                .map(|c| format!("{}:{}", s(&c["repoURL"]), s(&c["version"]))),
        );
        let name = &f.metadata.name;
        let mut row = vec![
            if wide {
                name.clone()
            } else {
                name.chars().take(12).collect()
            },
            f.alias.clone().unwrap_or_default(),
            f.warehouse().to_string(),
            opt_time(f.metadata.creation_timestamp.as_deref()),
            list_or_dash(f.status.currently_in.keys()),
            list_or_dash(f.status.verified_in.keys()),
        ];
        if wide {
            row.push(list_or_dash(f.status.approved_for.keys()));
        }
        row.push(artifacts.join(", "));
        rows.push(row);
    }
    table(rows)
}

/// `barge get promotions`. Wide shows the whole Freight ID and when the promotion last
/// changed.
fn promotions_table(list: &[Promotion], wide: bool) -> String {
    if list.is_empty() {
        return "no promotions\n".into();
    }
    let mut header = vec![
        "NAME".to_string(),
        "STAGE".into(),
        "FREIGHT".into(),
        "PHASE".into(),
        "ACTOR".into(),
        "CREATED".into(),
    ];
    if wide {
        header.push("UPDATED".into());
    }
    header.push("MESSAGE".into());
    let mut rows = vec![header];
    for p in list {
        let mut row = vec![
            p.metadata.name.clone(),
            p.spec.stage.clone(),
            if wide {
                p.spec.freight.clone()
            } else {
                short(&p.spec.freight)
            },
            p.status.phase.clone(),
            p.actor().to_string(),
            opt_time(p.metadata.creation_timestamp.as_deref()),
        ];
        if wide {
            row.push(rfc3339_time(&p.status.barge.updated_at));
        }
        row.push(p.status.message.clone());
        rows.push(row);
    }
    table(rows)
}

/// What `barge get promotion NAME` adds: its steps and what each produced (the commit a
/// git-commit made, the branch a git-push updated).
fn promotion_steps(p: &Promotion) -> String {
    let steps: Vec<Vec<String>> = p
        .status
        .step_execution_metadata
        .iter()
        .map(|step| {
            let outputs = p.status.state.as_ref().and_then(|o| o.get(&step.alias));
            let mut produced = outputs.map(client::step_outputs).unwrap_or_default();
            if !step.message.is_empty() {
                produced.push(step.message.clone());
            }
            vec![
                format!("  {}", step.alias),
                step.status.as_str().to_string(),
                produced.join(" "),
            ]
        })
        .collect();
    table(steps)
}

/// `barge get projects`: each project's Stages and Warehouses.
fn projects_table(list: &[Project]) -> String {
    if list.is_empty() {
        return "no projects\n".into();
    }
    let mut rows = vec![vec!["PROJECT".to_string(), "STAGES".into(), "WAREHOUSES".into()]];
    for p in list {
        rows.push(vec![
            p.metadata.name.clone(),
            p.status.barge.stages.len().to_string(),
            p.status.barge.warehouses.len().to_string(),
        ]);
    }
    table(rows)
}
