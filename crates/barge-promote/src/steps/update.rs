//! Edits and reads of config files: kustomize-set-image, yaml-update, json-update,
//! toml-update, yaml-merge, yaml-parse, json-parse, toml-parse.
//!
//! YAML edits go through barge_core::yamlmut (only the intended scalars change) and TOML
//! edits through toml_edit (comments and layout kept). JSON is rewritten with the file's own
//! indentation.

use super::{StepCtx, StepError, StepResult, config, done};
use crate::BoxFuture;
use barge_core::eval;
use barge_core::freight::normalize_image;
use barge_core::step_config::{FileParse, FileUpdate, KeyValue, KustomizeSetImage, YamlMerge};
use barge_core::yamlmut::{self, ImageEdit};
use serde_json::{Map, Value as Json, json};

/// How an update's value shows in its commit message, as Kargo's updaters write it.
#[derive(Clone, Copy, Debug)]
pub(super) enum Shown {
    /// yaml-update: a string is quoted only when YAML would read it as another type (Kargo's
    /// pkg/yaml QuoteIfNecessary: a number, a Go boolean, or JSON).
    QuotedIfNecessary,
    /// json-update and toml-update: strings are always quoted.
    Quoted,
}

/// The spellings Go's strconv.ParseBool accepts.
const GO_BOOLS: &[&str] = &[
    "1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False",
];

fn reads_as_another_type(s: &str) -> bool {
    s.parse::<f64>().is_ok() || GO_BOOLS.contains(&s) || serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok()
}

fn shown(value: &Json, how: Shown) -> String {
    match (value, how) {
        (Json::String(s), Shown::QuotedIfNecessary) if !reads_as_another_type(s) => s.clone(),
        // Kargo's config numbers are Go float64s, which %v writes as `123` for 123.0.
        (Json::Number(n), _) if n.is_f64() => n.as_f64().map_or_else(|| n.to_string(), go_float),
        // Go's %q: JSON's quoting for the strings commit messages carry.
        (other, _) => other.to_string(),
    }
}

/// A float64 as Go's `%v` writes it: the shortest digits that read back, in exponent form
/// (`1e+21`, `1e-05`) when the exponent is below -4 or at least 21.
fn go_float(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        return format!("{f}");
    }
    // The exponent of the shortest digits, exactly (a logarithm can be off by one at a power
    // of ten).
    let e = format!("{f:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exponent: i32 = exp.parse().unwrap_or(0);
    if (-4..21).contains(&exponent) {
        return format!("{f}");
    }
    let (sign, digits) = exp.strip_prefix('-').map_or(("+", exp), |d| ("-", d));
    format!("{mantissa}e{sign}{digits:0>2}")
}

/// The `commitMessage` output of Kargo's updaters: a headline, a blank line, then `- key: value`
/// per change; no output without changes.
pub(super) fn listed_commit_message(
    headline: &str,
    changes: impl IntoIterator<Item = (String, String)>,
) -> Map<String, Json> {
    let mut m = format!("{headline}\n");
    let mut any = false;
    for (key, value) in changes {
        m.push_str(&format!("\n- {key}: {value}"));
        any = true;
    }
    if !any {
        return Map::new();
    }
    Map::from_iter([("commitMessage".to_string(), json!(m))])
}

/// Kargo's `Updated <file>` message of yaml-update, json-update and toml-update (and barge's
/// hcl-update).
pub(super) fn commit_message(file: &str, updates: &[KeyValue], how: Shown) -> Map<String, Json> {
    listed_commit_message(
        &format!("Updated {file}"),
        updates.iter().map(|u| (u.key.clone(), shown(&u.value, how))),
    )
}

pub(super) fn yaml_update<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c = file_update("yaml-update", cfg)?;
        let text = ctx.read(&c.path)?;
        let pairs: Vec<(&str, Json)> = c.updates.iter().map(|u| (u.key.as_str(), u.value.clone())).collect();
        let out = yamlmut::update_values(&text, &pairs)
            .map_err(|e| StepError::Invalid(format!("yaml-update {}: {e}", c.path)))?;
        ctx.write(&c.path, &out)?;
        done(commit_message(&c.path, &c.updates, Shown::QuotedIfNecessary))
    })
}

/// The config of yaml-update, json-update, toml-update and hcl-update, refused as Kargo's
/// schemas refuse it: a path, at least one update, each with a key and a value (`value: null`
/// is a value; a missing one is not).
pub(super) fn file_update(step: &str, cfg: Json) -> Result<FileUpdate, StepError> {
    let missing_value = cfg["updates"]
        .as_array()
        .and_then(|list| list.iter().position(|u| u.is_object() && u.get("value").is_none()));
    let c: FileUpdate = config(step, cfg)?;
    let refuse = |what: String| Err(StepError::Invalid(format!("{step}: {what}")));
    if c.path.is_empty() {
        return refuse("`path` is required".into());
    }
    if c.updates.is_empty() {
        return refuse("`updates` needs at least one update".into());
    }
    if let Some(i) = c.updates.iter().position(|u| u.key.is_empty()) {
        return refuse(format!("`updates[{i}].key` is required"));
    }
    if let Some(i) = missing_value {
        return refuse(format!("`updates[{i}].value` is required"));
    }
    Ok(c)
}

/// Kargo's yaml-merge: the existing `inFiles` merged in order into `outFile`.
pub(super) fn yaml_merge<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: YamlMerge = config("yaml-merge", cfg)?;
        if c.in_files.is_empty() || c.out_file.is_empty() {
            return Err(StepError::Invalid(
                "yaml-merge: inFiles (at least one) and outFile are required".into(),
            ));
        }
        let mut inputs: Vec<(&str, String)> = Vec::new();
        for rel in &c.in_files {
            if !ctx.path(rel)?.exists() {
                if c.ignore_missing_files {
                    continue;
                }
                return Err(StepError::Invalid(format!(
                    "yaml-merge: input file {rel:?} not found (set ignoreMissingFiles to skip missing files)"
                )));
            }
            inputs.push((rel, ctx.read(rel)?));
        }
        let texts: Vec<(&str, &str)> = inputs.iter().map(|(n, t)| (*n, t.as_str())).collect();
        let merged = yamlmut::merge_documents(&texts).map_err(|e| StepError::Invalid(format!("yaml-merge: {e}")))?;
        ctx.write(&c.out_file, &merged)?;
        // Kargo's message names the files that were merged (not the skipped ones).
        let message = match texts.as_slice() {
            [] => return done(Map::new()),
            [(one, _)] => format!("Wrote {one} to {}", c.out_file),
            many => {
                let mut m = format!("Merged {} YAML files to {}", many.len(), c.out_file);
                for (name, _) in many {
                    m.push_str(&format!("\n- {name}"));
                }
                m
            }
        };
        done(Map::from_iter([("commitMessage".to_string(), json!(message))]))
    })
}

/// Splits an sjson-style key (`a.b.0.c`, `a\.b` for a dotted key).
pub(super) fn key_segments(key: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = key.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.last_mut().expect("one segment").push(n);
                }
            }
            '.' => out.push(String::new()),
            c => out.last_mut().expect("one segment").push(c),
        }
    }
    out
}

pub(super) fn json_update<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c = file_update("json-update", cfg)?;
        let text = ctx.read(&c.path)?;
        let mut doc: Json = serde_json::from_str(&text)
            .map_err(|e| StepError::Invalid(format!("json-update {}: not JSON: {e}", c.path)))?;
        for u in &c.updates {
            let mut at = &mut doc;
            for seg in key_segments(&u.key) {
                at = match at {
                    Json::Object(m) => m.get_mut(&seg),
                    Json::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
                    _ => None,
                }
                .ok_or_else(|| StepError::Invalid(format!("json-update {}: key {:?} does not exist", c.path, u.key)))?;
            }
            *at = u.value.clone();
        }
        let indent = text
            .lines()
            .nth(1)
            .map(|l| l.len() - l.trim_start().len())
            .filter(|n| *n > 0)
            .unwrap_or(2);
        let mut buf = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(&b"        "[..indent.min(8)]);
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
        serde::Serialize::serialize(&doc, &mut ser).map_err(|e| StepError::Invalid(e.to_string()))?;
        let mut out = String::from_utf8(buf).map_err(|e| StepError::Invalid(e.to_string()))?;
        if text.ends_with('\n') {
            out.push('\n');
        }
        ctx.write(&c.path, &out)?;
        done(commit_message(&c.path, &c.updates, Shown::Quoted))
    })
}

fn toml_value(v: &Json) -> Result<toml_edit::Value, StepError> {
    Ok(match v {
        Json::String(s) => s.as_str().into(),
        Json::Bool(b) => (*b).into(),
        Json::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().unwrap_or_default().into(),
        },
        Json::Array(a) => {
            let mut arr = toml_edit::Array::new();
            for x in a {
                arr.push(toml_value(x)?);
            }
            arr.into()
        }
        Json::Null | Json::Object(_) => {
            return Err(StepError::Invalid(
                "toml-update: values must be strings, numbers, booleans or lists".into(),
            ));
        }
    })
}

pub(super) fn toml_update<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c = file_update("toml-update", cfg)?;
        let text = ctx.read(&c.path)?;
        let mut doc: toml_edit::DocumentMut = text
            .parse()
            .map_err(|e| StepError::Invalid(format!("toml-update {}: not TOML: {e}", c.path)))?;
        for u in &c.updates {
            let segs = key_segments(&u.key);
            let missing = || StepError::Invalid(format!("toml-update {}: key {:?} does not exist", c.path, u.key));
            let mut item = doc.as_item_mut();
            for seg in &segs {
                item = item.get_mut(seg.as_str()).ok_or_else(missing)?;
            }
            let old = item.as_value().ok_or_else(missing)?;
            let mut new = toml_value(&u.value)?;
            // The value changes; the comments and spacing around it stay.
            *new.decor_mut() = old.decor().clone();
            *item = toml_edit::Item::Value(new);
        }
        ctx.write(&c.path, &doc.to_string())?;
        done(commit_message(&c.path, &c.updates, Shown::Quoted))
    })
}

/// Evaluates each output's expression with the document's top-level keys as variables.
fn parse_outputs(ctx: &StepCtx<'_>, step: &str, c: &FileParse, doc: Json) -> StepResult {
    let extra: Vec<(String, Json)> = match doc {
        Json::Object(m) => m.into_iter().collect(),
        other => vec![("value".to_string(), other)],
    };
    let extra: Vec<(&str, Json)> = extra.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let mut out = Map::new();
    for o in &c.outputs {
        let body = o.from_expression.trim();
        let body = body
            .strip_prefix("${{")
            .and_then(|b| b.strip_suffix("}}"))
            .unwrap_or(body);
        let v = eval::expression(body, ctx.data, ctx.scope, &extra)
            .map_err(|e| StepError::Invalid(format!("{step} {} output {}: {e}", c.path, o.name)))?;
        out.insert(o.name.clone(), v);
    }
    done(out)
}

pub(super) fn yaml_parse<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: FileParse = config("yaml-parse", cfg)?;
        let text = ctx.read(&c.path)?;
        let (docs, err) = barge_core::yaml::parse_stream(&text);
        if let Some(e) = err {
            return Err(StepError::Invalid(format!(
                "yaml-parse {}:{}:{}: {e}",
                c.path, e.pos.line, e.pos.column
            )));
        }
        let doc = docs.first().map_or(Json::Null, |d| d.root.to_json());
        parse_outputs(ctx, "yaml-parse", &c, doc)
    })
}

pub(super) fn json_parse<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: FileParse = config("json-parse", cfg)?;
        let doc = serde_json::from_str(&ctx.read(&c.path)?)
            .map_err(|e| StepError::Invalid(format!("json-parse {}: {e}", c.path)))?;
        parse_outputs(ctx, "json-parse", &c, doc)
    })
}

pub(super) fn toml_parse<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: FileParse = config("toml-parse", cfg)?;
        let doc: toml_edit::DocumentMut = ctx
            .read(&c.path)?
            .parse()
            .map_err(|e| StepError::Invalid(format!("toml-parse {}: {e}", c.path)))?;
        parse_outputs(ctx, "toml-parse", &c, toml_to_json(doc.as_item()))
    })
}

fn toml_to_json(item: &toml_edit::Item) -> Json {
    use toml_edit::{Item, Value};
    fn value(v: &Value) -> Json {
        match v {
            Value::String(s) => json!(s.value()),
            Value::Integer(i) => json!(i.value()),
            Value::Float(f) => json!(f.value()),
            Value::Boolean(b) => json!(b.value()),
            Value::Datetime(d) => json!(d.value().to_string()),
            Value::Array(a) => Json::Array(a.iter().map(value).collect()),
            Value::InlineTable(t) => Json::Object(t.iter().map(|(k, v)| (k.to_string(), value(v))).collect()),
        }
    }
    match item {
        Item::None => Json::Null,
        Item::Value(v) => value(v),
        Item::Table(t) => Json::Object(t.iter().map(|(k, v)| (k.to_string(), toml_to_json(v))).collect()),
        Item::ArrayOfTables(a) => Json::Array(
            a.iter()
                .map(|t| toml_to_json(&toml_edit::Item::Table(t.clone())))
                .collect(),
        ),
    }
}

/// `kustomize edit set image` for each image: tag/digest from the config, or else from the
/// Freight (older Kargo's `useDigest` behaviour); with no `images`, every image in the Freight
/// collection with its tag and digest (Kargo's behaviour). The commit message is Kargo's:
/// `Updated <path> to use new image[s]` and one `- <name>[:tag][@digest]` line per image,
/// sorted by name.
pub(super) fn kustomize_set_image<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: KustomizeSetImage = config("kustomize-set-image", cfg)?;
        if c.path.is_empty() {
            return Err(StepError::Invalid("kustomize-set-image: `path` is required".into()));
        }
        let dir = ctx.path(&c.path)?;
        let found: Vec<_> = ["kustomization.yaml", "kustomization.yml", "Kustomization"]
            .iter()
            .map(|n| dir.join(n))
            .filter(|p| p.is_file())
            .collect();
        let file = match found.as_slice() {
            [one] => one,
            [] => {
                return Err(StepError::Invalid(format!(
                    "kustomize-set-image: no kustomization.yaml in {}",
                    c.path
                )));
            }
            _ => {
                return Err(StepError::Invalid(format!(
                    "kustomize-set-image: ambiguous result: more than one Kustomization file in {}",
                    c.path
                )));
            }
        };
        let rel = file
            .strip_prefix(ctx.work)
            .unwrap_or(file)
            .to_string_lossy()
            .to_string();
        let mut text = ctx.read(&rel)?;
        let freight_images: Vec<_> = ctx.data.freight.iter().flat_map(|f| f.images.iter()).collect();
        let given = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        // The edits by the name the manifests use: Kargo's map, so a name given twice is set once.
        let mut edits: std::collections::BTreeMap<String, ImageEdit> = Default::default();
        match c.images {
            None => {
                for i in &freight_images {
                    let again = freight_images
                        .iter()
                        .filter(|o| normalize_image(&o.repo_url) == normalize_image(&i.repo_url))
                        .count();
                    if again > 1 {
                        return Err(StepError::Invalid(format!(
                            "kustomize-set-image: manual configuration required due to ambiguous result: \
                             image {} is in more than one piece of Freight; list `images`",
                            i.repo_url
                        )));
                    }
                    let tag = Some(i.tag.clone()).filter(|t| !t.is_empty());
                    let digest = Some(i.digest.clone()).filter(|d| !d.is_empty());
                    edits.insert(
                        i.repo_url.clone(),
                        ImageEdit {
                            name: i.repo_url.clone(),
                            new_name: None,
                            new_tag: tag,
                            digest,
                        },
                    );
                }
            }
            Some(list) => {
                for (n, w) in list.iter().enumerate() {
                    let _ = &w.from_origin;
                    if w.image.is_empty() {
                        return Err(StepError::Invalid(format!(
                            "kustomize-set-image: `images[{n}].image` is required"
                        )));
                    }
                    let (tag, digest) = match (given(&w.tag), given(&w.digest)) {
                        (Some(_), Some(_)) => {
                            return Err(StepError::Invalid(format!(
                                "kustomize-set-image: images[{n}] ({}): give `tag` or `digest`, not both",
                                w.image
                            )));
                        }
                        (Some(t), None) => (Some(t), None),
                        (None, Some(d)) => (None, Some(d)),
                        (None, None) => {
                            let i = freight_images
                                .iter()
                                .find(|i| normalize_image(&i.repo_url) == normalize_image(&w.image))
                                .ok_or_else(|| {
                                    StepError::Invalid(format!(
                                        "kustomize-set-image: image {} is not in the Freight; give `tag` or `digest`",
                                        w.image
                                    ))
                                })?;
                            if w.use_digest {
                                (None, Some(i.digest.clone()))
                            } else {
                                (Some(i.tag.clone()), None)
                            }
                        }
                    };
                    let name = given(&w.name).unwrap_or_else(|| w.image.clone());
                    edits.insert(
                        name.clone(),
                        ImageEdit {
                            name,
                            // `*` keeps the kustomization's newName (Kargo's preserve separator).
                            new_name: given(&w.new_name).filter(|n| n != "*"),
                            new_tag: tag,
                            digest,
                        },
                    );
                }
            }
        }
        let mut lines = Vec::new();
        for edit in edits.values() {
            text = yamlmut::set_kustomize_image(&text, edit)
                .map_err(|e| StepError::Invalid(format!("kustomize-set-image {rel}: {e}")))?;
            let mut line = format!("- {}", edit.new_name.as_deref().unwrap_or(&edit.name));
            if let Some(t) = &edit.new_tag {
                line.push_str(&format!(":{t}"));
            }
            if let Some(d) = &edit.digest {
                line.push_str(&format!("@{d}"));
            }
            lines.push(line);
        }
        if edits.is_empty() {
            return done(Map::new());
        }
        ctx.write(&rel, &text)?;
        let plural = if edits.len() > 1 { "s" } else { "" };
        let message = format!("Updated {} to use new image{plural}\n\n{}", c.path, lines.join("\n"));
        done(Map::from_iter([("commitMessage".to_string(), json!(message))]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Go's `%v` of a float64, as Kargo's commit messages show config numbers.
    #[test]
    fn floats_as_go_writes_them() {
        for (f, go) in [
            (123.0, "123"),
            (1.5, "1.5"),
            (-0.25, "-0.25"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (999999999999999999999.0, "1e+21"),
            (1e-4, "0.0001"),
            (9.999999999999999e-5, "9.999999999999999e-05"),
            (1.5e300, "1.5e+300"),
        ] {
            assert_eq!(go_float(f), go, "{f}");
        }
    }

    fn updates(pairs: &[(&str, Json)]) -> Vec<KeyValue> {
        pairs
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.to_string(),
                value: v.clone(),
            })
            .collect()
    }

    /// Kargo's yaml_updater_test.go and json_updater_test.go expected messages.
    #[test]
    fn update_commit_messages_are_kargos() {
        let u = updates(&[
            ("image.tag", json!("fake-tag")),
            ("image.numStr", json!("42")),
            ("image.realNum", json!(42)),
            ("flag", json!("true")),
            ("list", json!("[1]")),
        ]);
        assert_eq!(
            commit_message("values.yaml", &u, Shown::QuotedIfNecessary)["commitMessage"],
            "Updated values.yaml\n\n- image.tag: fake-tag\n- image.numStr: \"42\"\n- image.realNum: 42\n- flag: \"true\"\n- list: \"[1]\""
        );
        assert_eq!(
            commit_message("config.json", &u[..3], Shown::Quoted)["commitMessage"],
            "Updated config.json\n\n- image.tag: \"fake-tag\"\n- image.numStr: \"42\"\n- image.realNum: 42"
        );
        assert!(commit_message("values.yaml", &[], Shown::QuotedIfNecessary).is_empty());
    }

    #[test]
    fn sjson_keys() {
        assert_eq!(super::key_segments("a.b.0"), vec!["a", "b", "0"]);
        assert_eq!(
            super::key_segments(r"metadata.annotations.kargo\.akuity\.io/x"),
            vec!["metadata", "annotations", "kargo.akuity.io/x"]
        );
    }
}
