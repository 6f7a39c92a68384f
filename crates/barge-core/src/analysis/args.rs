//! Building one run from templates: merging several (Cluster)AnalysisTemplates the way Kargo
//! and Rollouts do, resolving arguments (given values, defaults, `valueFrom.secretKeyRef`), and
//! substituting `{{args.name}}` into the metrics. Secret values are remembered so every message
//! derived from the run can be redacted.

use crate::model::analysis::{AnalysisArg, AnalysisTemplateSpec, Metric};
use regex::Regex;
use std::collections::BTreeMap;
use std::sync::LazyLock;

static ARG_REF: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}").expect("valid regex"));

/// Merges templates into one run spec (Rollouts' `NewAnalysisRunFromTemplates`): metrics,
/// dry-run and retention rules are concatenated; an argument declared twice keeps the one with a
/// value, and two different values are an error, as are two metrics with one name.
pub fn merge(templates: &[(&str, &AnalysisTemplateSpec)]) -> Result<AnalysisTemplateSpec, String> {
    let mut out = AnalysisTemplateSpec::default();
    let mut metric_from: BTreeMap<String, &str> = BTreeMap::new();
    for (template, spec) in templates {
        for m in &spec.metrics {
            if let Some(first) = metric_from.insert(m.name.clone(), template) {
                return Err(format!(
                    "metric {:?} is defined by both {first} and {template}; metric names must be unique across a verification's templates",
                    m.name
                ));
            }
            out.metrics.push(m.clone());
        }
        for a in &spec.args {
            match out.args.iter_mut().find(|x| x.name == a.name) {
                None => out.args.push(a.clone()),
                Some(existing) => match (&existing.value, &a.value) {
                    (Some(x), Some(y)) if x != y => {
                        return Err(format!(
                            "argument {:?} has two different default values ({x:?} and {y:?}) in the merged templates",
                            a.name
                        ));
                    }
                    (None, Some(_)) => *existing = a.clone(),
                    _ => {}
                },
            }
        }
        out.dry_run.extend(spec.dry_run.iter().cloned());
        out.measurement_retention
            .extend(spec.measurement_retention.iter().cloned());
    }
    Ok(out)
}

/// Argument values for one run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resolved {
    pub values: BTreeMap<String, String>,
    /// Values that came from secrets: never shown, redacted from every message.
    pub secrets: Vec<String>,
}

/// Resolves the declared arguments: a given value wins, then the template's `value`, then
/// `valueFrom.secretKeyRef` through `secret(name, key)`. A given argument the templates do not
/// declare is an error (a typo would otherwise be silently ignored).
pub fn resolve(
    declared: &[AnalysisArg],
    given: &BTreeMap<String, String>,
    secret: &mut dyn FnMut(&str, &str) -> Result<String, String>,
) -> Result<Resolved, String> {
    resolve_with_fields(declared, given, secret, &mut |path| {
        Err(format!(
            "it reads the Rollout's field {path:?} (valueFrom.fieldRef), and there is no Rollout here"
        ))
    })
}

/// [`resolve`], with `valueFrom.fieldRef` read through `field(fieldPath)` (the fields of the
/// Rollout the analysis is about, as in Rollouts).
pub fn resolve_with_fields(
    declared: &[AnalysisArg],
    given: &BTreeMap<String, String>,
    secret: &mut dyn FnMut(&str, &str) -> Result<String, String>,
    field: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<Resolved, String> {
    if let Some(unknown) = given.keys().find(|k| !declared.iter().any(|a| &a.name == *k)) {
        let names: Vec<&str> = declared.iter().map(|a| a.name.as_str()).collect();
        return Err(format!(
            "argument {unknown:?} is not declared by the template ({})",
            if names.is_empty() {
                "it declares none".to_string()
            } else {
                format!("it declares: {}", names.join(", "))
            }
        ));
    }
    let mut out = Resolved::default();
    for a in declared {
        let value = if let Some(v) = given.get(&a.name).or(a.value.as_ref()) {
            v.clone()
        } else if let Some(r) = a.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()) {
            let v = secret(&r.name, &r.key)
                .map_err(|e| format!("argument {:?}: secret {}.{}: {e}", a.name, r.name, r.key))?;
            out.secrets.push(v.clone());
            v
        } else if let Some(f) = a.value_from.as_ref().and_then(|v| v.field_ref.as_ref()) {
            field(&f.field_path).map_err(|e| {
                format!(
                    "argument {:?}: {e}; give the value instead (--arg {}=... or the Stage's verification.args)",
                    a.name, a.name
                )
            })?
        } else {
            return Err(format!(
                "argument {:?} has no value; give it one (--arg {}=... or the Stage's verification.args)",
                a.name, a.name
            ));
        };
        out.values.insert(a.name.clone(), value);
    }
    Ok(out)
}

/// Substitutes `{{args.name}}` (spaces allowed inside the braces) in every string of the
/// metric, including int-or-string fields such as `count`. An unknown `args.` reference is an
/// error; other `{{...}}` text is left alone.
pub fn substitute(metric: &Metric, args: &Resolved) -> Result<Metric, String> {
    fn walk(v: &mut serde_json::Value, args: &Resolved) -> Result<(), String> {
        match v {
            serde_json::Value::String(s) if s.contains("{{") => {
                let mut missing = None;
                let replaced = ARG_REF.replace_all(s, |c: &regex::Captures| {
                    let tag = &c[1];
                    match tag.strip_prefix("args.") {
                        Some(name) => match args.values.get(name) {
                            Some(v) => v.clone(),
                            None => {
                                missing.get_or_insert_with(|| name.to_string());
                                c[0].to_string()
                            }
                        },
                        None => c[0].to_string(),
                    }
                });
                if let Some(name) = missing {
                    return Err(format!("{{{{args.{name}}}}} names no argument of the template"));
                }
                *s = replaced.into_owned();
            }
            serde_json::Value::Array(items) => items.iter_mut().try_for_each(|x| walk(x, args))?,
            serde_json::Value::Object(map) => map.values_mut().try_for_each(|x| walk(x, args))?,
            _ => {}
        }
        Ok(())
    }
    let mut json = serde_json::to_value(metric).map_err(|e| e.to_string())?;
    walk(&mut json, args).map_err(|e| format!("metric {:?}: {e}", metric.name))?;
    serde_json::from_value(json).map_err(|e| format!("metric {:?} after substituting arguments: {e}", metric.name))
}

/// Whether a metric is dry-run: a `dryRun[].metricName` regex matches its whole name.
pub fn is_dry_run(spec: &AnalysisTemplateSpec, metric: &str) -> bool {
    spec.dry_run.iter().any(|d| whole_match(&d.metric_name, metric))
}

/// How many measurements of a metric to keep (`measurementRetention`, default 10).
pub fn retention(spec: &AnalysisTemplateSpec, metric: &str) -> usize {
    spec.measurement_retention
        .iter()
        .find(|r| whole_match(&r.metric_name, metric))
        .and_then(|r| r.limit)
        .filter(|l| *l > 0)
        .map_or(10, |l| l as usize)
}

fn whole_match(pattern: &str, name: &str) -> bool {
    // Rollouts compiles the pattern as given; `*` alone is accepted as "all" too.
    if pattern == "*" || pattern == ".*" {
        return true;
    }
    Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|r| r.is_match(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> AnalysisTemplateSpec {
        yaml_serde::from_str(yaml).unwrap()
    }

    fn no_secrets(_: &str, _: &str) -> Result<String, String> {
        Err("no secrets here".into())
    }

    #[test]
    fn given_values_win_then_defaults_then_secrets() {
        let s = spec(
            "args:\n- {name: service}\n- {name: threshold, value: '0.95'}\n- name: token\n  valueFrom: {secretKeyRef: {name: prom, key: token}}\nmetrics: []\n",
        );
        let given = BTreeMap::from([("service".to_string(), "api".to_string())]);
        let mut asked = Vec::new();
        let r = resolve(&s.args, &given, &mut |n, k| {
            asked.push(format!("{n}.{k}"));
            Ok("s3cr3t".into())
        })
        .unwrap();
        assert_eq!(r.values["service"], "api");
        assert_eq!(r.values["threshold"], "0.95");
        assert_eq!(r.values["token"], "s3cr3t");
        assert_eq!(r.secrets, vec!["s3cr3t".to_string()]);
        assert_eq!(asked, vec!["prom.token"]);

        let err = resolve(&s.args, &BTreeMap::new(), &mut no_secrets).unwrap_err();
        assert!(err.contains("\"service\" has no value"), "{err}");
        let typo = BTreeMap::from([("servcie".to_string(), "x".to_string())]);
        let err = resolve(&s.args, &typo, &mut no_secrets).unwrap_err();
        assert!(
            err.contains("\"servcie\" is not declared") && err.contains("service, threshold, token"),
            "{err}"
        );
        let given = BTreeMap::from([("service".to_string(), "api".to_string())]);
        let err = resolve(&s.args, &given, &mut no_secrets).unwrap_err();
        assert!(err.contains("secret prom.token: no secrets here"), "{err}");
    }

    #[test]
    fn field_refs_read_the_rollout() {
        let s = spec(
            "args:\n- name: canary-hash\n  valueFrom: {fieldRef: {fieldPath: status.currentPodHash}}\nmetrics: []\n",
        );
        let r = resolve_with_fields(&s.args, &BTreeMap::new(), &mut no_secrets, &mut |path| {
            assert_eq!(path, "status.currentPodHash");
            Ok("6d4f8c7b9".into())
        })
        .unwrap();
        assert_eq!(r.values["canary-hash"], "6d4f8c7b9");
        let err = resolve(&s.args, &BTreeMap::new(), &mut no_secrets).unwrap_err();
        assert!(
            err.contains("there is no Rollout here") && err.contains("--arg canary-hash="),
            "{err}"
        );
    }

    #[test]
    fn substitution_reaches_every_string_and_int_or_string_fields() {
        let s = spec(
            "metrics:\n- name: rate\n  count: '{{args.count}}'\n  interval: '{{ args.every }}'\n  successCondition: result[0] >= {{args.threshold}}\n  provider:\n    prometheus:\n      query: sum(rate(x{svc=\"{{args.service}}\"}[2m])) {{other}}\n      headers: [{key: Authorization, value: 'Bearer {{args.token}}'}]\n",
        );
        let args = Resolved {
            values: BTreeMap::from([
                ("count".into(), "5".into()),
                ("every".into(), "30s".into()),
                ("threshold".into(), "0.9".into()),
                ("service".into(), "api".into()),
                ("token".into(), "t0k".into()),
            ]),
            secrets: vec![],
        };
        let m = substitute(&s.metrics[0], &args).unwrap();
        let l = crate::analysis::Limits::from_metric(&m).unwrap();
        assert_eq!(l.count, Some(5));
        assert_eq!(l.interval, Some(std::time::Duration::from_secs(30)));
        assert_eq!(m.success_condition.as_deref(), Some("result[0] >= 0.9"));
        let p = m.provider.prometheus.unwrap();
        assert_eq!(p.query.as_deref(), Some("sum(rate(x{svc=\"api\"}[2m])) {{other}}"));
        assert_eq!(p.headers[0].value, "Bearer t0k");

        let missing = Resolved::default();
        let err = substitute(&s.metrics[0], &missing).unwrap_err();
        assert!(
            err.starts_with("metric \"rate\": {{args.") && err.contains("}} names no argument of the template"),
            "{err}"
        );
    }

    #[test]
    fn merging_templates() {
        let a = spec(
            "args: [{name: service}]\nmetrics: [{name: rate, provider: {web: {}}}]\ndryRun: [{metricName: rate}]\n",
        );
        let b = spec("args: [{name: service, value: api}]\nmetrics: [{name: latency, provider: {web: {}}}]\n");
        let m = merge(&[("a", &a), ("b", &b)]).unwrap();
        assert_eq!(m.metrics.len(), 2);
        assert_eq!(m.args.len(), 1);
        assert_eq!(
            m.args[0].value.as_deref(),
            Some("api"),
            "the declaration with a value wins"
        );
        assert!(is_dry_run(&m, "rate") && !is_dry_run(&m, "latency"));
        let err = merge(&[("a", &a), ("again", &a)]).unwrap_err();
        assert!(err.contains("defined by both a and again"), "{err}");
        let c = spec("args: [{name: service, value: web}]\nmetrics: []\n");
        assert!(
            merge(&[("b", &b), ("c", &c)])
                .unwrap_err()
                .contains("two different default values")
        );
    }

    #[test]
    fn dry_run_and_retention_patterns_match_whole_names() {
        let s = spec(
            "metrics: []\ndryRun: [{metricName: 'error.*'}]\nmeasurementRetention: [{metricName: '.*', limit: 3}]\n",
        );
        assert!(is_dry_run(&s, "error-rate"));
        assert!(!is_dry_run(&s, "total-error"), "anchored at both ends");
        assert_eq!(retention(&s, "anything"), 3);
        assert_eq!(retention(&AnalysisTemplateSpec::default(), "x"), 10);
    }
}
