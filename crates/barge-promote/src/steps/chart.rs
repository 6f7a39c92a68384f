//! helm-update-chart: sets `dependencies[].version` in a chart's Chart.yaml for the configured
//! dependencies and brings an existing Chart.lock in line with it.
//!
//! Kargo's step (pkg/helm/dependency_manager.go in akuity/kargo) edits Chart.yaml and then runs
//! Helm's `dependency update`. barge does the same edits without Helm and without contacting
//! chart repositories, so (docs/reference/steps.md): it locks exact versions only, keeps the
//! locked version of a dependency it was not asked to change, computes Chart.lock's digest
//! with Helm's algorithm, does not create a Chart.lock, and does not download the dependency
//! archives into charts/ (it removes the ones its change made stale, as Helm does).

use super::update::listed_commit_message;
use super::{StepCtx, StepError, StepResult, config, done};
use crate::BoxFuture;
use barge_core::semver::Version;
use barge_core::step_config::HelmUpdateChart;
use barge_core::yamlmut;
use serde_json::{Map, Value as Json, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

const STEP: &str = "helm-update-chart";

fn invalid(message: impl std::fmt::Display) -> StepError {
    StepError::Invalid(format!("{STEP}: {message}"))
}

/// A string field of a dependency entry; a number or boolean as its text (Helm reads these
/// fields as strings), anything else empty.
fn text(entry: &Map<String, Json>, key: &str) -> String {
    match entry.get(key) {
        Some(Json::String(s)) => s.clone(),
        Some(v @ (Json::Number(_) | Json::Bool(_))) => v.to_string(),
        _ => String::new(),
    }
}

/// The `dependencies` entries of a Chart.yaml or Chart.lock.
fn dependencies(file: &str, text: &str) -> Result<Vec<Map<String, Json>>, StepError> {
    let (docs, err) = barge_core::yaml::parse_stream(text);
    if let Some(e) = err {
        return Err(invalid(format!("{file}:{}:{}: {e}", e.pos.line, e.pos.column)));
    }
    let doc = docs.first().map_or(Json::Null, |d| d.root.to_json());
    match doc.get("dependencies") {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, d)| match d {
                Json::Object(m) => Ok(m.clone()),
                _ => Err(invalid(format!("{file}: dependencies[{i}] is not a mapping"))),
            })
            .collect(),
        Some(_) => Err(invalid(format!("{file}: dependencies is not a list"))),
    }
}

/// One entry of Chart.lock: what Helm writes for each Chart.yaml dependency, in its order.
#[derive(Clone, Debug, PartialEq)]
struct Locked {
    name: String,
    repository: String,
    version: String,
}

impl Locked {
    fn of(entry: &Map<String, Json>) -> Locked {
        Locked {
            name: text(entry, "name"),
            repository: text(entry, "repository"),
            version: text(entry, "version"),
        }
    }
}

/// A string as Go's encoding/json writes it: HTML-safe (`<`, `>`, `&` escaped), U+2028 and
/// U+2029 escaped, other non-ASCII kept.
fn go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Any value as Go's encoding/json writes an `interface{}`: object keys sorted.
fn go_json(value: &Json, out: &mut String) {
    match value {
        Json::String(s) => go_string(s, out),
        Json::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(v, out);
            }
            out.push(']');
        }
        Json::Object(m) => {
            let sorted: BTreeMap<&String, &Json> = m.iter().collect();
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_string(k, out);
                out.push(':');
                go_json(v, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A Chart.yaml dependency as Go encodes Helm's chart.Dependency (helm pkg/chart/dependency.go):
/// its fields in declaration order, the `omitempty` ones left out when empty.
fn go_dependency(entry: &Map<String, Json>, out: &mut String) {
    out.push_str("{\"name\":");
    go_string(&text(entry, "name"), out);
    let version = text(entry, "version");
    if !version.is_empty() {
        out.push_str(",\"version\":");
        go_string(&version, out);
    }
    out.push_str(",\"repository\":");
    go_string(&text(entry, "repository"), out);
    let condition = text(entry, "condition");
    if !condition.is_empty() {
        out.push_str(",\"condition\":");
        go_string(&condition, out);
    }
    for key in ["tags", "enabled", "import-values", "export-values"] {
        match entry.get(key) {
            Some(Json::Array(a)) if !a.is_empty() => {}
            Some(Json::Bool(true)) => {}
            _ => continue,
        }
        let _ = write!(out, ",\"{key}\":");
        go_json(&entry[key], out);
    }
    let alias = text(entry, "alias");
    if !alias.is_empty() {
        out.push_str(",\"alias\":");
        go_string(&alias, out);
    }
    out.push('}');
}

/// Chart.lock's digest as Helm computes it (HashReq in helm internal/resolver/resolver.go):
/// `sha256:` and the hex SHA-256 of the Go JSON of `[Chart.yaml's dependencies, the locked
/// ones]`. `helm dependency build` refuses a Chart.lock whose digest differs.
fn helm_digest(requested: &[Map<String, Json>], locked: &[Locked]) -> String {
    let mut data = String::from("[[");
    for (i, d) in requested.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        go_dependency(d, &mut data);
    }
    data.push_str("],[");
    for (i, l) in locked.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        let entry = Map::from_iter([
            ("name".to_string(), json!(l.name)),
            ("version".to_string(), json!(l.version)),
            ("repository".to_string(), json!(l.repository)),
        ]);
        go_dependency(&entry, &mut data);
    }
    data.push_str("]]");
    let hash = Sha256::digest(data.as_bytes());
    let mut out = String::from("sha256:");
    for b in hash {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Chart.lock's `generated`: Go's RFC 3339 with nanoseconds, trailing zeros dropped, as Helm
/// writes `time.Now()` (in UTC, as Kargo's controller runs).
fn generated_now() -> String {
    let now = chrono::Utc::now();
    let nanos = format!("{:09}", now.timestamp_subsec_nanos());
    let nanos = nanos.trim_end_matches('0');
    let fraction = if nanos.is_empty() {
        String::new()
    } else {
        format!(".{nanos}")
    };
    format!("{}{fraction}Z", now.format("%Y-%m-%dT%H:%M:%S"))
}

/// The Chart.lock Helm would write for `requested`, given the current lock: an exact version
/// is locked as is; a range or a local (`file://`) dependency keeps its locked version, which
/// barge cannot resolve; a dependency without repository is locked as written (as Helm does).
fn relock(
    chart_rel: &str,
    lock_rel: &str,
    requested: &[Map<String, Json>],
    targeted: &[bool],
    old: &[Locked],
) -> Result<Vec<Locked>, StepError> {
    // Helm locks (and hashes) an aliased repository under the URL its config names.
    if let Some(r) = requested.iter().find(|r| {
        let repository = text(r, "repository");
        repository.starts_with('@') || repository.starts_with("alias:")
    }) {
        return Err(invalid(format!(
            "dependency {:?} names its repository by the alias {:?}; barge reads no Helm repository \
             config to resolve it, so write the repository's URL in {chart_rel}",
            text(r, "name"),
            text(r, "repository")
        )));
    }
    let in_sync = old.len() == requested.len()
        && old
            .iter()
            .zip(requested)
            .all(|(l, r)| l.name == text(r, "name") && l.repository == text(r, "repository"));
    if !in_sync {
        return Err(invalid(format!(
            "{lock_rel} does not lock the dependencies of {chart_rel} in order (it is out of sync); \
             run `helm dependency update` on the chart once and commit the result"
        )));
    }
    let mut new = Vec::with_capacity(requested.len());
    for (i, r) in requested.iter().enumerate() {
        let (name, repository, version) = (text(r, "name"), text(r, "repository"), text(r, "version"));
        let exact = Version::parse(&version, true).is_ok();
        let version = if repository.is_empty() || (exact && !repository.starts_with("file://")) {
            version
        } else if targeted[i] {
            return Err(invalid(format!(
                "version {version:?} of dependency {name:?} is not an exact version; barge does not query \
                 chart repositories to resolve a range, so give an exact version (as chartFrom(...).Version is)"
            )));
        } else {
            old[i].version.clone()
        };
        new.push(Locked {
            name,
            repository,
            version,
        });
    }
    Ok(new)
}

/// Kargo's change list (compareChartVersions): per dependency name, `old -> new`, the new
/// version for an added one, `removed` for a dropped one; sorted by name (Kargo's order is Go's
/// random map order).
fn version_changes(before: &[Locked], after: &[Locked]) -> BTreeMap<String, String> {
    let mut old: BTreeMap<&str, &str> = before.iter().map(|l| (l.name.as_str(), l.version.as_str())).collect();
    let mut changes = BTreeMap::new();
    for l in after {
        match old.remove(l.name.as_str()) {
            Some(v) if v != l.version => {
                changes.insert(l.name.clone(), format!("{v} -> {}", l.version));
            }
            Some(_) => {}
            None => {
                changes.insert(l.name.clone(), l.version.clone());
            }
        }
    }
    for name in old.into_keys() {
        changes.insert(name.to_string(), "removed".to_string());
    }
    changes
}

pub(super) fn helm_update_chart<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: HelmUpdateChart = config(STEP, cfg)?;
        if c.path.is_empty() {
            return Err(invalid("path (the chart directory) is required"));
        }
        // Kargo's schema: `charts`, when given, has at least one item, each with all three fields.
        let charts = match c.charts {
            Some(list) if list.is_empty() => return Err(invalid("charts, when given, needs at least one item")),
            list => list.unwrap_or_default(),
        };
        for (i, u) in charts.iter().enumerate() {
            if u.repository.is_empty() || u.name.is_empty() || u.version.is_empty() {
                return Err(invalid(format!("charts[{i}] needs repository, name and version")));
            }
        }
        let dir = ctx.path(&c.path)?;
        let base = c.path.trim_end_matches('/');
        let (chart_rel, lock_rel) = (format!("{base}/Chart.yaml"), format!("{base}/Chart.lock"));
        if !dir.join("Chart.yaml").is_file() {
            return Err(invalid(format!(
                "{} is not a chart directory: it has no Chart.yaml",
                c.path
            )));
        }
        let chart_text = ctx.read(&chart_rel)?;
        let mut requested = dependencies(&chart_rel, &chart_text)?;
        let before: Vec<Locked> = requested.iter().map(Locked::of).collect();

        let mut targeted = vec![false; requested.len()];
        let mut edits: Vec<(String, Json)> = Vec::new();
        for u in &charts {
            let i = requested
                .iter()
                .position(|d| text(d, "name") == u.name && text(d, "repository") == u.repository)
                .ok_or_else(|| {
                    invalid(format!(
                        "no dependency in {chart_rel} matches update with repository {:?} and name {:?}",
                        u.repository, u.name
                    ))
                })?;
            targeted[i] = true;
            if text(&requested[i], "version") != u.version {
                edits.push((format!("dependencies.{i}.version"), json!(u.version)));
                requested[i].insert("version".to_string(), json!(u.version));
            }
        }
        let yaml_error = |file: &str, e: yamlmut::EditError| invalid(format!("{file}: {e}"));
        let new_chart = if edits.is_empty() {
            None
        } else {
            let pairs: Vec<(&str, Json)> = edits.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            Some(yamlmut::update_values(&chart_text, &pairs).map_err(|e| yaml_error(&chart_rel, e))?)
        };

        // Everything is computed before anything is written: a refusal changes no file.
        let (after, old, new_lock) = if dir.join("Chart.lock").is_file() {
            let lock_text = ctx.read(&lock_rel)?;
            let old: Vec<Locked> = dependencies(&lock_rel, &lock_text)?.iter().map(Locked::of).collect();
            let new = relock(&chart_rel, &lock_rel, &requested, &targeted, &old)?;
            // As Kargo: the lock is rewritten only when a locked version changes (Helm would
            // otherwise refresh `generated` alone).
            let new_lock = if new == old {
                None
            } else {
                let mut pairs: Vec<(String, Json)> = new
                    .iter()
                    .zip(&old)
                    .enumerate()
                    .filter(|(_, (n, o))| n.version != o.version)
                    .map(|(i, (n, _))| (format!("dependencies.{i}.version"), json!(n.version)))
                    .collect();
                pairs.push(("digest".into(), json!(helm_digest(&requested, &new))));
                pairs.push(("generated".into(), json!(generated_now())));
                let pairs: Vec<(&str, Json)> = pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
                Some(yamlmut::update_values(&lock_text, &pairs).map_err(|e| yaml_error(&lock_rel, e))?)
            };
            (new, old, new_lock)
        } else {
            (requested.iter().map(Locked::of).collect(), before, None)
        };

        if let Some(text) = &new_chart {
            ctx.write(&chart_rel, text)?;
        }
        if let Some(text) = &new_lock {
            ctx.write(&lock_rel, text)?;
        }
        // Helm replaces charts/<name>-<version>.tgz when a locked version changes; barge
        // downloads nothing, but removes the archives no dependency is locked to any more, so
        // that no stale subchart is rendered.
        let kept: BTreeSet<(&str, &str)> = after.iter().map(|l| (l.name.as_str(), l.version.as_str())).collect();
        for l in &old {
            if !kept.contains(&(l.name.as_str(), l.version.as_str())) {
                let archive = dir.join("charts").join(format!("{}-{}.tgz", l.name, l.version));
                if archive.is_file() {
                    std::fs::remove_file(&archive)
                        .map_err(|e| invalid(format!("cannot remove {}: {e}", archive.display())))?;
                }
            }
        }
        done(listed_commit_message(
            &format!("Updated chart dependencies for {}", c.path),
            version_changes(&old, &after),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(yaml: &str) -> Vec<Map<String, Json>> {
        dependencies("Chart.yaml", yaml).unwrap()
    }

    /// A Chart.yaml and the Chart.lock Helm wrote for it (in kdwils/homelab, charts/argocd at
    /// commit e422d614, a Kargo helm-update-chart commit): the digest is Helm's.
    #[test]
    fn the_digest_is_helms() {
        let requested = entries(
            "dependencies:\n  - name: argo-cd\n    version: 10.2.2\n    repository: https://argoproj.github.io/argo-helm\n    alias: argocd\n  - name: homelab-chart\n    version: 0.1.31\n    repository: oci://ghcr.io/kdwils/charts\n    alias: homelab\n",
        );
        let locked: Vec<Locked> = requested.iter().map(Locked::of).collect();
        assert_eq!(
            helm_digest(&requested, &locked),
            "sha256:63895cc4ee75a80b0bcf82af8bf4defdc972eba66bae754d8dc77eecb820e501"
        );
    }

    #[test]
    fn go_json_escapes_as_go_does() {
        let mut out = String::new();
        go_json(&json!({"b": ">=1.0 <2.0 & \"x\"\n", "a": [true, 1, null]}), &mut out);
        assert_eq!(out, r#"{"a":[true,1,null],"b":"\u003e=1.0 \u003c2.0 \u0026 \"x\"\n"}"#);
    }

    /// Kargo's helm_chart_updater_test.go (generateCommitMessage) and compareChartVersions.
    #[test]
    fn the_change_list_is_kargos() {
        let l = |name: &str, version: &str| Locked {
            name: name.into(),
            repository: String::new(),
            version: version.into(),
        };
        let changes = version_changes(
            &[l("chart1", "1.0.0"), l("chart2", "2.0.0"), l("chart4", "4.0.0")],
            &[l("chart1", "1.1.0"), l("chart3", "3.0.0"), l("chart4", "4.1.0")],
        );
        assert_eq!(
            listed_commit_message("Updated chart dependencies for charts/mychart", changes)["commitMessage"],
            "Updated chart dependencies for charts/mychart\n\n- chart1: 1.0.0 -> 1.1.0\n- chart2: removed\n- chart3: 3.0.0\n- chart4: 4.0.0 -> 4.1.0"
        );
        assert!(version_changes(&[l("a", "1.0.0")], &[l("a", "1.0.0")]).is_empty());
    }

    #[test]
    fn generated_is_rfc3339_utc() {
        let g = generated_now();
        assert!(g.ends_with('Z') && g.len() >= 20 && !g.contains(".Z"), "{g}");
        assert!(chrono::DateTime::parse_from_rfc3339(&g).is_ok(), "{g}");
    }
}
