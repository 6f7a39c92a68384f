//! Evaluating `${{ }}` / `${% %}` expressions the way Kargo does (its `pkg/expressions`), with
//! expr-lang and Kargo's functions.
//!
//! Kargo renders a template string by replacing each expression with its result (strings as
//! they are, everything else as JSON) and then reads the whole text as JSON when it can. So
//! `${{ imageFrom(r).Tag }}` with tag `1.10` becomes the number 1.1, and `quote()` exists to
//! keep a string a string. barge does exactly the same, so values written by promotion steps
//! match what Kargo would write.
//!
//! Purity: the current time is an input ([`Data::now`]); `now()` never reads the clock.

use crate::freight::{normalize_chart, normalize_git, normalize_image};
use crate::model::kargo::{Chart, Freight, GitCommit, Image};
use expr::{Context, Environment, Value};
use indexmap::IndexMap;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;

/// A step's run state as `status()`, `success()` and `failure()` see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StepStatus {
    Pending,
    Running,
    Succeeded,
    Skipped,
    Failed,
    Errored,
    Aborted,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "Pending",
            StepStatus::Running => "Running",
            StepStatus::Succeeded => "Succeeded",
            StepStatus::Skipped => "Skipped",
            StepStatus::Failed => "Failed",
            StepStatus::Errored => "Errored",
            StepStatus::Aborted => "Aborted",
        }
    }

    pub fn is_failure(self) -> bool {
        matches!(self, StepStatus::Failed | StepStatus::Errored | StepStatus::Aborted)
    }
}

/// Everything Kargo's functions read, fixed for one promotion.
#[derive(Clone, Debug, Default)]
pub struct Data {
    /// The `ctx` object: project, stage, promotion, targetFreight, meta …
    pub ctx: Json,
    /// The freight collection: the promoted freight and what the stage keeps from other origins.
    pub freight: Vec<Freight>,
    /// Project secrets by name (`secret(name)`).
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// Shared secrets (`sharedSecret(name)`).
    pub shared_secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// Config values (`configMap(name)`), barge's stand-in for ConfigMaps.
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Shared config values (`sharedConfigMap(name)`).
    pub shared_config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Stage metadata by stage name (`stageMetadata(name)`).
    pub stage_metadata: BTreeMap<String, Map<String, Json>>,
    /// Freight metadata by freight name or alias (`freightMetadata(name)`).
    pub freight_metadata: BTreeMap<String, Map<String, Json>>,
    /// Freight status by Freight name (`freightStatus(name)`): Kargo's FreightStatus as JSON
    /// (`currentlyIn`, `verifiedIn`, `approvedFor`, `metadata`; empty ones left out).
    pub freight_status: BTreeMap<String, Map<String, Json>>,
    /// What `now()` returns (RFC 3339).
    pub now: String,
}

/// The variables one evaluation sees, besides [`Data`].
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub vars: Map<String, Json>,
    /// Outputs of earlier steps by alias.
    pub outputs: Map<String, Json>,
    /// Inside a task: outputs of the task's earlier steps by their local alias.
    pub task_outputs: Option<Map<String, Json>>,
    /// Earlier steps' statuses: (alias, the alias as the evaluating step's scope names it,
    /// status, continueOnError). The second is the local alias of a step of the same task, the
    /// alias of a top-level step when the evaluating step is top-level too, and empty for a step
    /// of another scope (`status()` sees only its own scope's steps, as Kargo's does).
    pub statuses: Vec<(String, String, StepStatus, bool)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{expression}: {message}")]
pub struct EvalError {
    pub expression: String,
    pub message: String,
}

/// Evaluates every expression in the string values of `config` (never in keys), recursively.
pub fn render_value(config: &Json, data: &Data, scope: &Scope) -> Result<Json, EvalError> {
    // One environment for the whole config: building it (every builtin, the context's
    // values) costs more than most expressions.
    render_with(config, data, scope, &mut None)
}

/// Renders one template string (see the module docs for how the result is typed).
pub fn render_string(template: &str, data: &Data, scope: &Scope) -> Result<Json, EvalError> {
    render_value(&Json::String(template.to_string()), data, scope)
}

/// The expression environment and context, built on first use.
type Evaluator<'a> = Option<(Environment<'a>, Context)>;

fn render_with<'a>(
    config: &Json,
    data: &'a Data,
    scope: &'a Scope,
    evaluator: &mut Evaluator<'a>,
) -> Result<Json, EvalError> {
    Ok(match config {
        Json::String(template) => {
            let found = crate::expr::find(template).map_err(|u| EvalError {
                expression: template.clone(),
                message: format!("`${{{{` at character {} has no closing `{}`", u.offset, u.close),
            })?;
            if found.is_empty() {
                return Ok(config.clone());
            }
            let (env, ctx) = evaluator.get_or_insert_with(|| (environment(data, scope), context(data, scope)));
            let mut out = String::new();
            let mut rest = template.as_str();
            for f in &found {
                // `find` returns bodies as slices of `template`, so positions come from pointers.
                let body_start = f.body.as_ptr() as usize - template.as_ptr() as usize;
                let open = body_start - 3;
                let consumed = template.len() - rest.len();
                out.push_str(&template[consumed..open]);
                out.push_str(&render_text(&eval_body(env, ctx, f.body)?));
                rest = &template[body_start + f.body.len() + 2..];
            }
            out.push_str(rest);
            typed(out)
        }
        Json::Array(items) => Json::Array(
            items
                .iter()
                .map(|v| render_with(v, data, scope, evaluator))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_with(v, data, scope, evaluator)?)))
                .collect::<Result<_, EvalError>>()?,
        ),
        other => other.clone(),
    })
}

/// `v` with every map's keys sorted, as Go writes maps (asJSON, asYAML).
fn sorted(v: Json) -> Json {
    match v {
        Json::Object(m) => {
            let mut entries: Vec<(String, Json)> = m.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Json::Object(entries.into_iter().collect())
        }
        Json::Array(a) => Json::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// The value of a rendered template, typed as Kargo types it (`EvaluateTemplate`): a trailing
/// newline (YAML's `|`) is set aside; then JSON text is its value (a JSON string keeps the
/// newline); text enclosed in quotes that is not JSON (`unsafeQuote`, `asJSON`, `asYAML`) is
/// the text inside them, the newline kept; anything else stays the text as rendered.
fn typed(out: String) -> Json {
    let (body, newline) = match out.strip_suffix('\n') {
        Some(b) => (b, true),
        None => (out.as_str(), false),
    };
    let nl = if newline { "\n" } else { "" };
    match serde_json::from_str::<Json>(body) {
        Ok(Json::String(s)) => Json::String(format!("{s}{nl}")),
        Ok(v) => v,
        Err(_) if body.len() > 1 && body.starts_with('"') && body.ends_with('"') => {
            Json::String(format!("{}{nl}", &body[1..body.len() - 1]))
        }
        Err(_) => Json::String(out),
    }
}

/// Evaluates a condition (a step's `if:`, a Warehouse's creation criteria); it must be a bool.
pub fn condition(expression: &str, data: &Data, scope: &Scope) -> Result<bool, EvalError> {
    let body = strip_delimiters(expression);
    let env = environment(data, scope);
    let ctx = context(data, scope);
    match eval_body(&env, &ctx, body)? {
        Value::Bool(b) => Ok(b),
        other => Err(EvalError {
            expression: expression.to_string(),
            message: format!("the expression must be true or false, got {}", render_text(&other)),
        }),
    }
}

/// Evaluates a bare expression (no delimiters) to JSON, as `yaml-parse` outputs and the `http`
/// step's success expressions do; `extra` adds variables (e.g. `response`).
pub fn expression(body: &str, data: &Data, scope: &Scope, extra: &[(&str, Json)]) -> Result<Json, EvalError> {
    let env = environment(data, scope);
    let mut ctx = context(data, scope);
    for (k, v) in extra {
        ctx.insert(*k, from_json(v));
    }
    Ok(to_json(&eval_body(&env, &ctx, body)?))
}

/// An inbound request as a generic webhook receiver's expressions see it (Kargo's
/// `newBaseEnv` and `newActionEnv`, pkg/webhook/external/generic.go and generic_actions.go):
/// `request.body`, `request.header(name)`, `request.headers(name)`, `request.params(name)`,
/// the action's `params`, and `normalizeGit` / `normalizeImage` / `normalizeChart`. None of
/// the promotion functions: a delivery has no Freight, Stage or secrets.
#[derive(Clone, Debug, Default)]
pub struct WebhookRequest {
    /// Header values by lower-case name, in the order sent.
    pub headers: BTreeMap<String, Vec<String>>,
    /// The URL's query parameters, decoded, in the order sent.
    pub query: Vec<(String, String)>,
    /// The body read as JSON; null when it was empty.
    pub body: Json,
}

impl WebhookRequest {
    /// A `whenExpression`: a bare expression that must be true or false.
    pub fn condition(&self, expression: &str, params: &BTreeMap<String, String>) -> Result<bool, EvalError> {
        let (env, ctx) = self.evaluator(params);
        match eval_body(&env, &ctx, strip_delimiters(expression))? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError {
                expression: expression.to_string(),
                message: format!("the expression must be true or false, got {}", render_text(&other)),
            }),
        }
    }

    /// A target's name, label value or index value: static text or a `${{ }}` template whose
    /// result must be a string (Kargo's `evalAsString`).
    pub fn text(&self, template: &str, params: &BTreeMap<String, String>) -> Result<String, EvalError> {
        let (data, scope) = (Data::default(), Scope::default());
        let mut evaluator = Some(self.evaluator(params));
        match render_with(&Json::String(template.to_string()), &data, &scope, &mut evaluator)? {
            Json::String(s) => Ok(s),
            other => Err(EvalError {
                expression: template.to_string(),
                message: format!("the result must be a string, got {other}"),
            }),
        }
    }

    fn evaluator(&self, params: &BTreeMap<String, String>) -> (Environment<'_>, Context) {
        let mut env = Environment::new();
        // `request.header(name)` is a method call on the `request` map, which the vendored
        // expr-lang hands to the function of that name with the map first.
        env.add_function("header", |c| {
            let name = string_arg("request.header", &c.args, 1)?;
            let first = self.headers.get(&name.to_ascii_lowercase()).and_then(|v| v.first());
            Ok(Value::String(first.cloned().unwrap_or_default()))
        });
        env.add_function("headers", |c| {
            let name = string_arg("request.headers", &c.args, 1)?;
            let all = self.headers.get(&name.to_ascii_lowercase()).into_iter().flatten();
            Ok(Value::Array(all.map(|v| Value::String(v.clone())).collect()))
        });
        env.add_function("params", |c| {
            let name = string_arg("request.params", &c.args, 1)?;
            let first = self.query.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
            Ok(Value::String(first.unwrap_or_default()))
        });
        for (name, normalize) in [
            ("normalizeGit", normalize_git as fn(&str) -> String),
            ("normalizeImage", normalize_image),
            ("normalizeChart", normalize_chart),
        ] {
            env.add_function(name, move |c| {
                Ok(Value::String(normalize(&string_arg(name, &c.args, 0)?)))
            });
        }
        let mut request = IndexMap::new();
        request.insert("body".to_string(), from_json(&self.body));
        let mut ctx = Context::default();
        ctx.insert("request", Value::Map(request));
        ctx.insert(
            "params",
            Value::Map(
                params
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            ),
        );
        (env, ctx)
    }
}

fn strip_delimiters(s: &str) -> &str {
    let t = s.trim();
    for (open, close) in [("${{", "}}"), ("${%", "%}")] {
        if let Some(inner) = t.strip_prefix(open).and_then(|x| x.strip_suffix(close)) {
            return inner;
        }
    }
    t
}

fn eval_body(env: &Environment<'_>, ctx: &Context, body: &str) -> Result<Value, EvalError> {
    let err = |message: String| EvalError {
        expression: body.trim().to_string(),
        message,
    };
    let program = crate::expr::compile(body).map_err(err)?;
    env.run(&program, ctx)
        .map_err(|e| err(explain(&crate::expr::one_line(&e))))
}

/// expr-lang's message for reading a field of nil names neither the field's owner nor the
/// usual cause; this says both.
fn explain(message: &str) -> String {
    match message
        .strip_prefix("Invalid operand for operator []: String(\"")
        .and_then(|r| r.strip_suffix("\")"))
    {
        Some(field) => format!(
            "cannot read `{field}` of nil: the value before it does not exist (an imageFrom/commitFrom/chartFrom that found nothing in the Freight, a missing output, or an unset var)"
        ),
        None => message.to_string(),
    }
}

/// How a result is written into the template text: strings as they are, the rest as JSON.
fn render_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::DateTime(t) => t.to_rfc3339(),
        other => to_json(other).to_string(),
    }
}

fn context(data: &Data, scope: &Scope) -> Context {
    let mut ctx = Context::default();
    ctx.insert("ctx", from_json(&data.ctx));
    ctx.insert("vars", from_json(&Json::Object(scope.vars.clone())));
    ctx.insert("outputs", from_json(&Json::Object(scope.outputs.clone())));
    if let Some(t) = &scope.task_outputs {
        let mut task = IndexMap::new();
        task.insert("outputs".to_string(), from_json(&Json::Object(t.clone())));
        ctx.insert("task", Value::Map(task));
    }
    ctx
}

fn fail<T>(message: impl Into<String>) -> expr::Result<T> {
    Err(expr::Error::ExprError(message.into()))
}

/// Kargo's functions refuse a call with the wrong number of arguments.
fn arity(name: &str, args: &[Value], n: usize) -> Result<(), expr::Error> {
    match args.len() == n {
        true => Ok(()),
        false => Err(expr::Error::ExprError(format!(
            "{name}: expected {n} argument{}, got {}",
            if n == 1 { "" } else { "s" },
            args.len()
        ))),
    }
}

/// Kargo's functions taking `min..=max` arguments refuse any other number of them.
fn arity_range(name: &str, args: &[Value], min: usize, max: usize) -> Result<(), expr::Error> {
    match (min..=max).contains(&args.len()) {
        true => Ok(()),
        false => Err(expr::Error::ExprError(format!(
            "{name}: expected {min}-{max} arguments, got {}",
            args.len()
        ))),
    }
}

/// The one string argument of a function naming something (`warehouse("w")`), not empty.
fn name_arg(name: &str, args: &[Value], what: &str) -> expr::Result<String> {
    arity(name, args, 1)?;
    let s = string_arg(name, args, 0)?;
    if s.is_empty() {
        return fail(format!("{name}: {what} must not be empty"));
    }
    Ok(s)
}

/// Whether an argument is an origin (`warehouse("w")`'s value, or barge's plain name).
fn is_origin(v: &Value) -> bool {
    matches!(v, Value::Map(m) if m.contains_key("Name")) || matches!(v, Value::String(_))
}

fn string_arg(name: &str, args: &[Value], i: usize) -> expr::Result<String> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => fail(format!(
            "{name}: argument {} must be a string, got {}",
            i + 1,
            render_text(other)
        )),
        None => fail(format!("{name}: missing argument {}", i + 1)),
    }
}

/// An origin argument: `warehouse("w")` (a map with Name) or a plain name.
fn origin_arg(args: &[Value], i: usize) -> Option<String> {
    match args.get(i) {
        Some(Value::Map(m)) => m.get("Name").and_then(Value::as_string).map(str::to_string),
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

fn kv_map(m: Option<&BTreeMap<String, String>>) -> Value {
    Value::Map(
        m.into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Finds the one artifact matching `pick` across the collection (optionally in one origin).
/// Kargo refuses to guess when several origins carry the same artifact.
fn find_in_collection<T>(
    name: &str,
    freight: &[Freight],
    origin: Option<&str>,
    pick: impl Fn(&Freight) -> Option<T>,
) -> Result<Option<T>, String> {
    let mut hits = freight
        .iter()
        .filter(|f| origin.is_none_or(|o| f.origin.as_ref().is_some_and(|fo| fo.name == o)))
        .filter_map(|f| pick(f).map(|x| (f, x)));
    let first = hits.next();
    if first.is_some() && origin.is_none() && hits.next().is_some() {
        return Err(format!(
            "{name}: several Freight origins carry this artifact; name one with warehouse(\"…\")"
        ));
    }
    Ok(first.map(|(_, x)| x))
}

/// Kargo's `imageFrom(repo[, origin])` over a freight collection (URLs compared normalised).
pub fn image_from(freight: &[Freight], repo: &str, origin: Option<&str>) -> Result<Option<Image>, String> {
    let repo = normalize_image(repo);
    find_in_collection("imageFrom", freight, origin, |f| {
        f.images.iter().find(|i| normalize_image(&i.repo_url) == repo).cloned()
    })
}

/// Kargo's `commitFrom(repo[, origin])`.
pub fn commit_from(freight: &[Freight], repo: &str, origin: Option<&str>) -> Result<Option<GitCommit>, String> {
    let repo = normalize_git(repo);
    find_in_collection("commitFrom", freight, origin, |f| {
        f.commits.iter().find(|x| normalize_git(&x.repo_url) == repo).cloned()
    })
}

/// Kargo's `chartFrom(repo[, name][, origin])`.
pub fn chart_from(
    freight: &[Freight],
    repo: &str,
    name: Option<&str>,
    origin: Option<&str>,
) -> Result<Option<Chart>, String> {
    let repo = normalize_chart(repo);
    find_in_collection("chartFrom", freight, origin, |f| {
        f.charts
            .iter()
            .find(|x| normalize_chart(&x.repo_url) == repo && name.is_none_or(|n| x.name.as_deref() == Some(n)))
            .cloned()
    })
}

fn environment<'a>(data: &'a Data, scope: &'a Scope) -> Environment<'a> {
    let mut env = Environment::new();
    env.add_function("now", move |_| {
        let t = chrono::DateTime::parse_from_rfc3339(&data.now)
            .map_err(|e| expr::Error::ExprError(format!("now(): {e}")))?;
        Ok(Value::DateTime(t.into()))
    });
    env.add_function("quote", |c| {
        let v = c.args.first().cloned().unwrap_or(Value::Nil);
        Ok(Value::String(Json::String(render_text(&v)).to_string()))
    });
    // Kargo's unsafeQuote: the value's JSON inside quotes (a string keeps its own quotes).
    env.add_function("unsafeQuote", |c| {
        arity("unsafeQuote", &c.args, 1)?;
        Ok(Value::String(format!("\"{}\"", to_json(&c.args[0]))))
    });
    // Kargo's asYAML: the value as YAML text (a string, however it reads).
    env.add_function("asYAML", |c| {
        arity("asYAML", &c.args, 1)?;
        let text = yaml_serde::to_string(&sorted(to_json(&c.args[0])))
            .map_err(|e| expr::Error::ExprError(format!("asYAML: {e}")))?;
        Ok(Value::String(format!("\"{text}\"")))
    });
    env.add_function("warehouse", |c| {
        let name = name_arg("warehouse", &c.args, "name")?;
        let mut m = IndexMap::new();
        m.insert("Kind".to_string(), Value::from("Warehouse"));
        m.insert("Name".to_string(), Value::String(name));
        Ok(Value::Map(m))
    });
    env.add_function("imageFrom", move |c| {
        arity_range("imageFrom", &c.args, 1, 2)?;
        let repo = string_arg("imageFrom", &c.args, 0)?;
        let hit =
            image_from(&data.freight, &repo, origin_arg(&c.args, 1).as_deref()).map_err(expr::Error::ExprError)?;
        Ok(hit.map_or(Value::Nil, |i| {
            let mut m = IndexMap::new();
            m.insert("RepoURL".into(), Value::String(i.repo_url));
            m.insert("Tag".into(), Value::String(i.tag));
            m.insert("Digest".into(), Value::String(i.digest));
            m.insert(
                "Annotations".into(),
                Value::Map(i.annotations.into_iter().map(|(k, v)| (k, Value::String(v))).collect()),
            );
            Value::Map(m)
        }))
    });
    env.add_function("commitFrom", move |c| {
        arity_range("commitFrom", &c.args, 1, 2)?;
        let repo = string_arg("commitFrom", &c.args, 0)?;
        let hit =
            commit_from(&data.freight, &repo, origin_arg(&c.args, 1).as_deref()).map_err(expr::Error::ExprError)?;
        Ok(hit.map_or(Value::Nil, |x| {
            let opt = |s: Option<String>| Value::String(s.unwrap_or_default());
            let mut m = IndexMap::new();
            m.insert("RepoURL".into(), Value::String(x.repo_url));
            m.insert("ID".into(), Value::String(x.id));
            m.insert("Branch".into(), opt(x.branch));
            m.insert("Tag".into(), opt(x.tag));
            m.insert("Message".into(), opt(x.message));
            m.insert("Author".into(), opt(x.author));
            m.insert("Committer".into(), opt(x.committer));
            Value::Map(m)
        }))
    });
    env.add_function("chartFrom", move |c| {
        arity_range("chartFrom", &c.args, 1, 3)?;
        let repo = string_arg("chartFrom", &c.args, 0)?;
        // chartFrom(repo[, name][, origin]): the second argument is a name when it is a string.
        let (name, origin) = match (c.args.get(1), c.args.get(2)) {
            (Some(Value::String(n)), third) => {
                if third.is_some_and(|t| !matches!(t, Value::Map(m) if m.contains_key("Name"))) {
                    return fail("chartFrom: the third argument must be a FreightOrigin (warehouse(\"…\"))");
                }
                (Some(n.clone()), origin_arg(&c.args, 2))
            }
            (Some(_), Some(_)) => {
                return fail("chartFrom: when using three arguments, the second must be a string (the chart's name)");
            }
            (Some(second), None) if !is_origin(second) => {
                return fail("chartFrom: the second argument must be a string or a FreightOrigin (warehouse(\"…\"))");
            }
            _ => (None, origin_arg(&c.args, 1)),
        };
        let hit =
            chart_from(&data.freight, &repo, name.as_deref(), origin.as_deref()).map_err(expr::Error::ExprError)?;
        Ok(hit.map_or(Value::Nil, |x| {
            let mut m = IndexMap::new();
            m.insert("RepoURL".into(), Value::String(x.repo_url));
            m.insert("Name".into(), Value::String(x.name.unwrap_or_default()));
            m.insert("Version".into(), Value::String(x.version));
            Value::Map(m)
        }))
    });
    // Kargo's documentation keeps secret() out of vars; real pipelines use it there (corpus
    // 07-krancour), so barge allows it. Secret values are redacted wherever outputs are recorded.
    for (name, store) in [
        ("secret", &data.secrets),
        ("sharedSecret", &data.shared_secrets),
        ("configMap", &data.config_maps),
        ("sharedConfigMap", &data.shared_config_maps),
    ] {
        env.add_function(name, move |c| {
            arity(name, &c.args, 1)?;
            let key = string_arg(name, &c.args, 0)?;
            Ok(kv_map(store.get(&key)))
        });
    }
    env.add_function("stageMetadata", move |c| {
        let stage = name_arg("stageMetadata", &c.args, "stage name")?;
        // No metadata (or no such Stage) is an empty map, where Kargo's function gives nil: real
        // pipelines (Kargo's own examples among them) read `stageMetadata(ctx.stage).key` without
        // `?.`, which must read nil, not fail (docs/migrating-from-kargo.md).
        Ok(from_json(&Json::Object(
            data.stage_metadata.get(&stage).cloned().unwrap_or_default(),
        )))
    });
    env.add_function("freightMetadata", move |c| {
        // freightMetadata(freight[, key]): barge keeps the key form beside Kargo's.
        arity_range("freightMetadata", &c.args, 1, 2)?;
        let freight = string_arg("freightMetadata", &c.args, 0)?;
        if freight.is_empty() {
            return fail("freightMetadata: the freight ref name must not be empty");
        }
        let all = data.freight_metadata.get(&freight);
        match c.args.get(1) {
            Some(Value::String(key)) => Ok(all.and_then(|m| m.get(key)).map_or(Value::Nil, from_json)),
            Some(other) => fail(format!(
                "freightMetadata: argument 2 must be a string, got {}",
                render_text(other)
            )),
            // No metadata (or no such Freight) is an empty map, as for stageMetadata above.
            None => Ok(from_json(&Json::Object(all.cloned().unwrap_or_default()))),
        }
    });
    env.add_function("freightStatus", move |c| {
        // Kargo's: the named Freight's whole status; nil when there is no such Freight.
        let freight = name_arg("freightStatus", &c.args, "freight ref name")?;
        Ok(data
            .freight_status
            .get(&freight)
            .map_or(Value::Nil, |m| from_json(&Json::Object(m.clone()))))
    });
    let failed = move || scope.statuses.iter().any(|(_, _, s, coe)| s.is_failure() && !coe);
    env.add_function("success", move |_| Ok(Value::Bool(!failed())));
    env.add_function("failure", move |_| Ok(Value::Bool(failed())));
    env.add_function("always", |_| Ok(Value::Bool(true)));
    env.add_function("status", move |c| {
        let alias = name_arg("status", &c.args, "the step alias")?;
        // Only the steps of the evaluating step's own scope: inside a task, the task's steps
        // by their local alias; outside, the top-level steps (Kargo's namespace rule).
        let hit = scope
            .statuses
            .iter()
            .rev()
            .find(|(_, local, _, _)| !local.is_empty() && *local == alias);
        match hit {
            Some((_, _, s, _)) => Ok(Value::from(s.as_str())),
            None => fail(format!(
                "status('{alias}'): no earlier step has that alias (in a task, only the task's own steps count)"
            )),
        }
    });
    env.add_function("semverParse", |c| {
        arity("semverParse", &c.args, 1)?;
        let s = string_arg("semverParse", &c.args, 0)?;
        let v = crate::semver::Version::parse(&s, false)
            .map_err(|e| expr::Error::ExprError(format!("semverParse: {e}")))?;
        let mut m = IndexMap::new();
        m.insert("Major".into(), Value::Integer(v.major as i64));
        m.insert("Minor".into(), Value::Integer(v.minor as i64));
        m.insert("Patch".into(), Value::Integer(v.patch as i64));
        m.insert("Prerelease".into(), Value::String(v.pre.clone()));
        m.insert("Metadata".into(), Value::String(v.metadata.clone()));
        m.insert("String".into(), Value::String(v.to_string()));
        Ok(Value::Map(m))
    });
    env.add_function("semverDiff", |c| {
        arity("semverDiff", &c.args, 2)?;
        let a = string_arg("semverDiff", &c.args, 0)?;
        let b = string_arg("semverDiff", &c.args, 1)?;
        let (Ok(a), Ok(b)) = (
            crate::semver::Version::parse(&a, false),
            crate::semver::Version::parse(&b, false),
        ) else {
            return Ok(Value::from("Incomparable"));
        };
        let diff = if a.major != b.major {
            "Major"
        } else if a.minor != b.minor {
            "Minor"
        // Prereleases of one version are no difference, as in Kargo (its semverDiff tests).
        } else if a.patch != b.patch {
            "Patch"
        } else if a.metadata != b.metadata {
            "Metadata"
        } else {
            "None"
        };
        Ok(Value::from(diff))
    });
    // Kargo's asJSON: the value as indented JSON text and a newline (a string, however it reads).
    env.add_function("asJSON", |c| {
        arity("asJSON", &c.args, 1)?;
        let text = serde_json::to_string_pretty(&sorted(to_json(&c.args[0])))
            .map_err(|e| expr::Error::ExprError(format!("asJSON: {e}")))?;
        Ok(Value::String(format!("\"{text}\n\"")))
    });
    env
}

/// expr value → JSON (integers stay integers; non-finite floats become null).
pub fn to_json(v: &Value) -> Json {
    match v {
        Value::Nil => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Integer(i) => Json::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::String(s) => Json::String(s.clone()),
        Value::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        Value::Bytes(b) => Json::Array(b.iter().map(|x| Json::from(*x)).collect()),
        Value::Map(m) => Json::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        Value::KeyedMap(m) => Json::Object(m.iter().map(|(k, v)| (render_text(k), to_json(v))).collect()),
        Value::DateTime(t) => Json::String(t.to_rfc3339()),
        other => Json::String(other.to_string()),
    }
}

/// JSON → expr value.
pub fn from_json(v: &Json) -> Value {
    match v {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => n
            .as_i64()
            .map_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN)), Value::Integer),
        Json::String(s) => Value::String(s.clone()),
        Json::Array(a) => Value::Array(a.iter().map(from_json).collect()),
        Json::Object(m) => Value::Map(m.iter().map(|(k, v)| (k.clone(), from_json(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kargo::{FreightOrigin, Image};
    use serde_json::json;

    fn data() -> Data {
        let image = |repo: &str, tag: &str| Image {
            repo_url: repo.into(),
            tag: tag.into(),
            digest: "sha256:abc".into(),
            ..Image::default()
        };
        let freight = |wh: &str, images: Vec<Image>| Freight {
            origin: Some(FreightOrigin {
                kind: "Warehouse".into(),
                name: wh.into(),
            }),
            images,
            ..Freight::default()
        };
        Data {
            ctx: json!({"stage": "dev", "project": "shop"}),
            freight: vec![
                freight(
                    "front",
                    vec![
                        image("ghcr.io/acme/web", "1.10"),
                        image("docker.io/library/nginx", "1.27.0"),
                    ],
                ),
                freight(
                    "back",
                    vec![image("ghcr.io/acme/api", "2.0.0"), image("nginx", "1.26.0")],
                ),
            ],
            secrets: BTreeMap::from([("db".into(), BTreeMap::from([("password".into(), "s3cret".into())]))]),
            now: "2026-11-22T10:00:00Z".into(),
            ..Data::default()
        }
    }

    fn render(s: &str, scope: &Scope) -> Result<Json, EvalError> {
        render_string(s, &data(), scope)
    }

    #[test]
    fn results_are_typed_as_kargo_types_them() {
        let scope = Scope::default();
        // A tag that looks like a number becomes one, as in Kargo; quote() keeps the string.
        assert_eq!(
            render("${{ imageFrom('ghcr.io/acme/web').Tag }}", &scope).unwrap(),
            json!(1.1)
        );
        assert_eq!(
            render("${{ quote(imageFrom('ghcr.io/acme/web').Tag) }}", &scope).unwrap(),
            json!("1.10")
        );
        assert_eq!(
            render("v${{ imageFrom('ghcr.io/acme/web').Tag }}", &scope).unwrap(),
            json!("v1.10")
        );
        assert_eq!(render("${{ 1 + 2 }}", &scope).unwrap(), json!(3));
        assert_eq!(render("${{ ctx.stage == 'dev' }}", &scope).unwrap(), json!(true));
        assert_eq!(
            render("${{ {'a': [1, ctx.stage]} }}", &scope).unwrap(),
            json!({"a": [1, "dev"]})
        );
        assert_eq!(render("no expressions", &scope).unwrap(), json!("no expressions"));
        assert_eq!(
            render("${% ctx.project %}-${{ ctx.stage }}", &scope).unwrap(),
            json!("shop-dev")
        );
        assert_eq!(
            render("${{ now() }}", &scope).unwrap(),
            json!("2026-11-22T10:00:00+00:00")
        );
    }

    #[test]
    fn map_literals_with_expressions_evaluate() {
        let mut scope = Scope::default();
        scope.vars.insert("branch".into(), json!("env/dev"));
        let v = render(r#"${% quote({"ref": vars.branch, "n": [1, vars.branch]}) %}"#, &scope).unwrap();
        assert_eq!(v, json!(r#"{"ref":"env/dev","n":[1,"env/dev"]}"#));
    }

    #[test]
    fn artifact_lookups_follow_kargo() {
        let scope = Scope::default();
        // Normalised names match (docker.io/library/nginx is nginx), but two origins carry
        // nginx: Kargo refuses to guess, and warehouse() disambiguates.
        let e = render("${{ imageFrom('nginx').Tag }}", &scope).unwrap_err();
        assert!(e.message.contains("warehouse("), "{e}");
        assert_eq!(
            render("${{ imageFrom('nginx', warehouse('back')).Tag }}", &scope).unwrap(),
            json!("1.26.0")
        );
        assert_eq!(render("${{ imageFrom('ghcr.io/none') }}", &scope).unwrap(), json!(null));
        let e = render("${{ imageFrom('ghcr.io/none').Tag }}", &scope).unwrap_err();
        assert!(e.message.contains("cannot read `Tag` of nil"), "{e}");
        assert_eq!(render("${{ secret('db').password }}", &scope).unwrap(), json!("s3cret"));
        assert_eq!(render("${{ secret('nope') }}", &scope).unwrap(), json!({}));
        assert_eq!(
            render("${{ semverDiff('1.2.3', '1.3.0') }}", &scope).unwrap(),
            json!("Minor")
        );
        assert_eq!(
            render("${{ semverParse('v1.2.3-rc.1').Prerelease }}", &scope).unwrap(),
            json!("rc.1")
        );
    }

    #[test]
    fn deep_expressions_are_errors_not_stack_overflows() {
        let deep = format!("{}1", "true ? 1 : ".repeat(5_000));
        let e = render(&format!("${{{{ {deep} }}}}"), &Scope::default()).unwrap_err();
        assert!(e.message.contains("nests more than"), "{}", e.message);
        let e = condition(&deep, &data(), &Scope::default()).unwrap_err();
        assert!(e.message.contains("nests more than"), "{}", e.message);
    }

    #[test]
    fn step_status_functions() {
        let mut scope = Scope {
            statuses: vec![
                ("a".into(), "a".into(), StepStatus::Succeeded, false),
                ("b".into(), "b".into(), StepStatus::Failed, true),
            ],
            ..Scope::default()
        };
        let d = data();
        // b failed but continues on error: success() holds.
        assert!(condition("${{ success() }}", &d, &scope).unwrap());
        assert!(condition("status('b') == 'Failed'", &d, &scope).unwrap());
        scope
            .statuses
            .push(("c".into(), "c".into(), StepStatus::Errored, false));
        assert!(condition("${{ failure() }}", &d, &scope).unwrap());
        assert!(!condition("success()", &d, &scope).unwrap());
        assert!(condition("always()", &d, &scope).unwrap());
        assert!(condition("status('zzz') == 'x'", &d, &scope).is_err());
        assert!(
            condition("'yes'", &d, &scope)
                .unwrap_err()
                .message
                .contains("true or false")
        );
    }
}
