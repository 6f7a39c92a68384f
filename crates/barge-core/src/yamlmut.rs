//! Format-preserving YAML edits, for the promotion steps that change files in config
//! repositories (`yaml-update`, `kustomize-set-image`): only the intended scalars change;
//! comments, key order, quoting, indentation, flow style, other documents and CRLF survive.
//!
//! Built on yaml-edit (a lossless rowan tree). Two of its behaviours are guarded against here:
//! setting a path that does not exist *creates* it (so `update_values` checks first: Kargo's
//! `yaml-update` requires existing keys), and a written string takes the default quote style
//! (so the existing node's style is read and kept).
//!
//! `yaml-merge` is the exception: like Kargo's, it writes its merged file afresh
//! ([`merge_documents`]).

use std::str::FromStr;
use yaml_edit::path::YamlPath;
use yaml_edit::{Document, ScalarStyle, ScalarValue, YamlFile};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("the file is not valid YAML: {0}")]
    Parse(String),
    #[error("key {0:?} does not exist in the file (yaml-update changes existing keys only)")]
    MissingKey(String),
    #[error("key {0:?} holds a mapping or a list, not a value")]
    NotScalar(String),
    #[error("the file has no document to edit")]
    Empty,
    #[error("{0} holds more than one YAML document; yaml-merge merges single-document files")]
    MultipleDocuments(String),
    #[error("{0}")]
    Key(String),
    #[error("key {0:?} cannot be set: {1}")]
    Write(String, String),
}

/// Splits a key as Kargo's yaml-update does (its pkg/sjson SplitKey): dots separate parts
/// unless escaped (`a\.b`); `\:` is a literal colon; an unescaped colon may only start a part
/// (`:0`, sjson's hint that a number is a mapping key) and is dropped; no part may be empty.
pub fn split_key(key: &str) -> Result<Vec<String>, EditError> {
    let key = key.trim();
    let bad = |why: &str| EditError::Key(format!("{why} in key {key:?}"));
    if key.is_empty() {
        return Err(EditError::Key("empty key".into()));
    }
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = key.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('.' | ':')) => current.push(e),
                _ => return Err(bad("invalid escape sequence")),
            },
            '.' if current.is_empty() => return Err(bad("empty key part")),
            '.' => parts.push(std::mem::take(&mut current)),
            ':' if !current.is_empty() => return Err(bad("unexpected colon")),
            ':' => {}
            c => current.push(c),
        }
    }
    if current.is_empty() {
        return Err(bad("empty key part"));
    }
    parts.push(current);
    Ok(parts)
}

/// Converts Kargo's key (`image.tag`, `containers.0.image`, `a\.b` for a key with a dot) to
/// yaml-edit's path syntax. A part of digits is an index into a list or, in a mapping, the key
/// spelled so (as Kargo matches a mapping key by its text); `[n]` after a part's key, or as a
/// part of its own (`containers[0].image`, `containers.[0].image`), is the index syntax barge's
/// keys took before they followed Kargo's and still take; any other part is a key, its
/// punctuation escaped.
fn to_path(key: &str) -> Result<String, EditError> {
    let mut path = String::new();
    for part in split_key(key)? {
        let (name, indexes) = trailing_indexes(&part);
        if !name.is_empty() {
            if !path.is_empty() {
                path.push('.');
            }
            for c in name.chars() {
                if !c.is_alphanumeric() && c != '_' && c != '-' {
                    path.push('\\');
                }
                path.push(c);
            }
        }
        for n in indexes {
            path.push_str(&format!("[{n}]"));
        }
    }
    Ok(path)
}

/// A key part's name and the `[n]` indexes that end it (`containers[0][1]` is `containers`,
/// 0, 1); a part without them is all name.
fn trailing_indexes(part: &str) -> (&str, Vec<&str>) {
    let mut name = part;
    let mut indexes = Vec::new();
    while let Some(open) = name.strip_suffix(']').and_then(|p| p.rfind('[')) {
        let n = &name[open + 1..name.len() - 1];
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            break;
        }
        indexes.push(n);
        name = &name[..open];
    }
    indexes.reverse();
    (name, indexes)
}

fn style_of(raw: &str) -> ScalarStyle {
    match raw.trim_start().chars().next() {
        Some('"') => ScalarStyle::DoubleQuoted,
        Some('\'') => ScalarStyle::SingleQuoted,
        _ => ScalarStyle::Plain,
    }
}

fn parse(text: &str) -> Result<YamlFile, EditError> {
    // The lossless parser keeps going past syntax errors; an edit of a file that is not YAML
    // would write a file that is still not YAML, so a strict parse refuses it first.
    if let (_, Some(e)) = crate::yaml::parse_stream(text) {
        return Err(EditError::Parse(format!("line {}: {}", e.pos.line, e.message)));
    }
    YamlFile::from_str(text).map_err(|e| EditError::Parse(e.to_string()))
}

/// Sets existing keys to new values: strings keep the old value's quote style (and are
/// quoted when they would otherwise read as a number or boolean, so a tag `1.10` stays a
/// string), numbers and booleans are written plain. Each key is looked up in the first
/// document that has it.
pub fn update_values(text: &str, updates: &[(&str, serde_json::Value)]) -> Result<String, EditError> {
    let file = parse(text)?;
    let docs: Vec<Document> = file.documents().collect();
    if docs.is_empty() {
        return Err(EditError::Empty);
    }
    for (key, value) in updates {
        let path = to_path(key)?;
        let (doc, node) = docs
            .iter()
            .find_map(|d| d.try_get_path(&path).ok().map(|n| (d, n)))
            .ok_or_else(|| EditError::MissingKey(key.to_string()))?;
        let Some(scalar) = node.as_scalar() else {
            return Err(EditError::NotScalar(key.to_string()));
        };
        let set = match value {
            serde_json::Value::String(s) => {
                let mut style = style_of(&scalar.to_string());
                // A plain value that YAML would not read back as this string (`42`, `true`,
                // `null`, `[1]`) is double-quoted, as Kargo's yaml-update writes it.
                if style == ScalarStyle::Plain
                    && yaml_serde::from_str::<serde_json::Value>(s).ok() != Some(serde_json::Value::String(s.clone()))
                {
                    style = ScalarStyle::DoubleQuoted;
                }
                doc.try_set_path(&path, ScalarValue::with_style(s.clone(), style))
            }
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => doc.try_set_path(&path, i),
                (None, Some(f)) => doc.try_set_path(&path, f),
                (None, None) => doc.try_set_path(&path, ScalarValue::with_style(n.to_string(), ScalarStyle::Plain)),
            },
            serde_json::Value::Bool(b) => doc.try_set_path(&path, *b),
            other => doc.try_set_path(
                &path,
                ScalarValue::with_style(other.to_string(), style_of(&scalar.to_string())),
            ),
        };
        set.map_err(|e| EditError::Write(key.to_string(), e.to_string()))?;
    }
    let mut out = file.to_string();
    // Kargo's yaml-update writes every line with its end, so an edited file always ends in a
    // newline (in the file's own line ending).
    if !out.is_empty() && !out.ends_with('\n') {
        out.push_str(if text.contains("\r\n") { "\r\n" } else { "\n" });
    }
    Ok(out)
}

/// What `kustomize edit set image` sets for one image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageEdit {
    /// The image name as the manifests reference it (`images[].name`).
    pub name: String,
    pub new_name: Option<String>,
    pub new_tag: Option<String>,
    /// Pins by digest; replaces `newTag`, as kustomize does.
    pub digest: Option<String>,
}

/// `kustomize edit set image` on a kustomization.yaml: updates the `images[]` entry named
/// `edit.name` (a tag replaces a digest and the other way round) or appends one, creating
/// `images:` when missing.
pub fn set_kustomize_image(text: &str, edit: &ImageEdit) -> Result<String, EditError> {
    let file = parse(text)?;
    let doc = file.documents().next().ok_or(EditError::Empty)?;
    let root = doc.as_mapping().ok_or_else(|| EditError::NotScalar("(root)".into()))?;
    if root.get_sequence("images").is_none() {
        root.set("images", yaml_edit::Sequence::new());
    }
    let images = root
        .get_sequence("images")
        .ok_or_else(|| EditError::NotScalar("images".into()))?;
    let existing = (0..images.len()).find_map(|i| {
        // Rowan nodes are handles onto one shared tree: a clone edits the same file.
        let m = images.get(i)?.as_mapping()?.clone();
        let name = m.get("name")?.as_scalar()?.as_string();
        (name == edit.name).then_some(m)
    });
    let entry = match existing {
        Some(m) => m,
        None => {
            let m = yaml_edit::Mapping::new();
            m.set("name", edit.name.as_str());
            images.push(m);
            images
                .get(images.len() - 1)
                .and_then(|n| n.as_mapping().cloned())
                .ok_or(EditError::Empty)?
        }
    };
    let keep_style = |key: &str, value: &str| {
        let style = entry
            .get(key)
            .and_then(|n| n.as_scalar().map(|s| style_of(&s.to_string())))
            .unwrap_or(ScalarStyle::Plain);
        entry.set(key, ScalarValue::with_style(value, style));
    };
    if let Some(n) = &edit.new_name {
        keep_style("newName", n);
    }
    match (&edit.digest, &edit.new_tag) {
        // Kargo sets both from Freight that has both (kustomize then uses the digest).
        (Some(d), Some(t)) => {
            keep_style("newTag", t);
            keep_style("digest", d);
        }
        (Some(d), None) => {
            entry.remove("newTag");
            keep_style("digest", d);
        }
        (None, Some(t)) => {
            entry.remove("digest");
            keep_style("newTag", t);
        }
        (None, None) => {}
    }
    Ok(file.to_string())
}

/// The keys kustomize's kyaml recognises as associative (merge) keys of a list, in the order
/// it tries them (kustomize's cmd/config/docs/api-conventions/merge2.md, "Associative Keys").
const ASSOCIATIVE_KEYS: &[&str] = &[
    "mountPath",
    "devicePath",
    "ip",
    "type",
    "topologyKey",
    "name",
    "containerPort",
];

/// The associative key of two lists: the first of [`ASSOCIATIVE_KEYS`] that every item of both
/// holds (every item a mapping). Lists without one are replaced, not merged.
fn associative_key(dest: &[yaml_serde::Value], src: &[yaml_serde::Value]) -> Option<&'static str> {
    ASSOCIATIVE_KEYS.iter().copied().find(|key| {
        dest.iter()
            .chain(src)
            .all(|item| item.as_mapping().is_some_and(|m| m.contains_key(*key)))
    })
}

/// Merges `src` onto `dest` with kyaml's two-way merge rules (merge2, which Kargo's
/// yaml-merge uses): mappings merge key by key, a null in `src` removes the key, lists whose
/// items share an associative key merge item by item (new items appended), any other value
/// (scalars, other lists) is replaced by `src`'s.
fn merge_value(dest: &mut yaml_serde::Value, src: yaml_serde::Value) {
    use yaml_serde::Value;
    match (dest, src) {
        (Value::Mapping(d), Value::Mapping(s)) => {
            for (key, value) in s {
                if value.is_null() {
                    d.shift_remove(&key);
                } else if let Some(existing) = d.get_mut(&key) {
                    merge_value(existing, value);
                } else {
                    d.insert(key, value);
                }
            }
        }
        (Value::Sequence(d), Value::Sequence(s)) if associative_key(d, &s).is_some() => {
            let key = associative_key(d, &s).expect("checked");
            for item in s {
                let id = item.get(key).cloned();
                match d.iter_mut().find(|existing| existing.get(key) == id.as_ref()) {
                    Some(existing) => merge_value(existing, item),
                    None => d.push(item),
                }
            }
        }
        (dest, src) => *dest = src,
    }
}

/// Kargo's `yaml-merge`: merges `(name, text)` files in order, each later one's values winning,
/// into one YAML text. Empty files (and null documents) are skipped; no input gives an empty
/// text. The result is written afresh: the inputs' comments and layout are not kept.
pub fn merge_documents(files: &[(&str, &str)]) -> Result<String, EditError> {
    use serde::Deserialize;
    let mut merged: Option<yaml_serde::Value> = None;
    for (name, text) in files {
        let mut docs = yaml_serde::Deserializer::from_str(text);
        let Some(first) = docs.next() else { continue };
        let doc = yaml_serde::Value::deserialize(first).map_err(|e| EditError::Parse(format!("{name}: {e}")))?;
        if docs.next().is_some() {
            return Err(EditError::MultipleDocuments(name.to_string()));
        }
        if doc.is_null() {
            continue;
        }
        match merged.as_mut() {
            None => merged = Some(doc),
            Some(m) => merge_value(m, doc),
        }
    }
    match merged {
        None => Ok(String::new()),
        Some(v) => yaml_serde::to_string(&v).map_err(|e| EditError::Parse(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The lines that differ between two texts, as (before, after).
    fn changed(a: &str, b: &str) -> Vec<(String, String)> {
        let (la, lb): (Vec<&str>, Vec<&str>) = (a.split('\n').collect(), b.split('\n').collect());
        assert_eq!(la.len(), lb.len(), "line count changed:\n{b}");
        la.iter()
            .zip(&lb)
            .filter(|(x, y)| x != y)
            .map(|(x, y)| (x.to_string(), y.to_string()))
            .collect()
    }

    #[test]
    fn kustomize_overlay_changes_exactly_the_tag_line() {
        let before = include_str!("../../../stages/dev/kustomization.yaml");
        let after = set_kustomize_image(
            before,
            &ImageEdit {
                name: "ghcr.io/barge-demo/guestbook".into(),
                new_tag: Some("1.2.0".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            changed(before, &after),
            vec![("    newTag: 1.0.0".to_string(), "    newTag: 1.2.0".to_string())]
        );
    }

    #[test]
    fn kustomize_semantics_digest_new_name_and_append() {
        let before = "# comment kept\nresources: [../base]\nimages:\n  - name: app\n    newTag: \"1.0\"\n";
        let digest = set_kustomize_image(
            before,
            &ImageEdit {
                name: "app".into(),
                digest: Some("sha256:abc".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            digest,
            "# comment kept\nresources: [../base]\nimages:\n  - name: app\n    digest: sha256:abc\n"
        );
        let renamed = set_kustomize_image(
            before,
            &ImageEdit {
                name: "app".into(),
                new_name: Some("mirror.io/app".into()),
                new_tag: Some("1.10".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(
            renamed.contains("newTag: \"1.10\""),
            "the quote style is kept:\n{renamed}"
        );
        assert!(renamed.contains("newName: mirror.io/app"), "{renamed}");
        let appended = set_kustomize_image(
            before,
            &ImageEdit {
                name: "sidecar".into(),
                new_tag: Some("2.0.0".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(appended.starts_with(before.trim_end()), "{appended}");
        assert!(
            appended.contains("- name: sidecar") && appended.contains("newTag: 2.0.0"),
            "{appended}"
        );
        let created = set_kustomize_image(
            "resources:\n  - ../base\n",
            &ImageEdit {
                name: "app".into(),
                new_tag: Some("3.0.0".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(created.starts_with("resources:\n  - ../base\nimages:"), "{created}");
        let reparsed: serde_json::Value = yaml_serde::from_str(&created).unwrap();
        assert_eq!(reparsed["images"][0], json!({"name": "app", "newTag": "3.0.0"}));
    }

    #[test]
    fn helm_values_change_only_the_intended_scalars() {
        let before = "# values for prod\nimage:\n  repository: ghcr.io/acme/app  # the app\n  tag: \"1.0.0\"\nreplicas: 3\nsidecar: {image: busybox, tag: '1.36'}\nenabled: true\n";
        let after = update_values(
            before,
            &[
                ("image.tag", json!("1.10")),
                ("sidecar.tag", json!("1.37")),
                ("replicas", json!(5)),
            ],
        )
        .unwrap();
        assert_eq!(
            changed(before, &after),
            vec![
                ("  tag: \"1.0.0\"".to_string(), "  tag: \"1.10\"".to_string()),
                ("replicas: 3".to_string(), "replicas: 5".to_string()),
                (
                    "sidecar: {image: busybox, tag: '1.36'}".to_string(),
                    "sidecar: {image: busybox, tag: '1.37'}".to_string()
                ),
            ]
        );
        // A plain tag that looks like a number is quoted, so it stays a string.
        let plain = update_values("tag: v1\n", &[("tag", json!("1.10"))]).unwrap();
        assert_eq!(plain, "tag: \"1.10\"\n", "double quotes, as Kargo writes them");
        let v: serde_json::Value = yaml_serde::from_str(&plain).unwrap();
        assert_eq!(v["tag"], json!("1.10"), "{plain}");
    }

    #[test]
    fn keys_must_exist_and_be_values() {
        let text = "a:\n  b: 1\n---\nc: [1, 2]\n";
        assert_eq!(
            update_values(text, &[("a.x", json!("1"))]),
            Err(EditError::MissingKey("a.x".into()))
        );
        assert_eq!(
            update_values(text, &[("c", json!("1"))]),
            Err(EditError::NotScalar("c".into()))
        );
        // The second document is edited when it has the key; the first is untouched.
        let out = update_values("a: 1\n---\nlist:\n  - x: old\n", &[("list.0.x", json!("new"))]).unwrap();
        assert_eq!(out, "a: 1\n---\nlist:\n  - x: new\n");
        assert!(matches!(
            update_values("a: [", &[("a", json!(1))]),
            Err(EditError::Parse(_)) | Err(EditError::MissingKey(_))
        ));
    }

    #[test]
    fn crlf_and_escaped_dots() {
        assert_eq!(
            update_values("a: 1\r\nb: x\r\n", &[("b", json!("y"))]).unwrap(),
            "a: 1\r\nb: y\r\n"
        );
        assert_eq!(
            to_path("annotations.example\\.com/tag").unwrap(),
            "annotations.example\\.com\\/tag"
        );
        assert_eq!(to_path("spec.containers.0.image").unwrap(), "spec.containers.0.image");
        // The `[n]` index syntax barge's keys took before they followed Kargo's still works,
        // after a key or as a part of its own.
        let pod = "spec:\n  containers:\n    - name: a\n      image: x:1\n    - name: b\n      image: y:1\n";
        let second = "spec:\n  containers:\n    - name: a\n      image: x:1\n    - name: b\n      image: y:2\n";
        for key in [
            "spec.containers[1].image",
            "spec.containers.[1].image",
            "spec.containers.1.image",
        ] {
            assert_eq!(update_values(pod, &[(key, json!("y:2"))]).unwrap(), second, "{key}");
        }
        assert_eq!(to_path("m[0][1].x").unwrap(), "m[0][1].x");
        assert_eq!(to_path("a[x]").unwrap(), "a\\[x\\]", "not an index: a key");
        assert_eq!(
            update_values(
                "metadata:\n  annotations:\n    example.com/tag: a\n",
                &[("metadata.annotations.example\\.com/tag", json!("b"))]
            )
            .unwrap(),
            "metadata:\n  annotations:\n    example.com/tag: b\n"
        );
    }

    fn yaml(text: &str) -> serde_json::Value {
        yaml_serde::from_str(text).unwrap()
    }

    /// Kargo's pkg/yaml/merge_test.go "successful merge": maps merge, lists of scalars are
    /// replaced whole (as Helm's values layering does), empty files are skipped.
    #[test]
    fn merge_layers_maps_and_replaces_plain_lists() {
        let base = "character:\n  name: Vader\n  ability: Force\n  affiliation: Empire\n  saberColor: red\nvehicles:\n- Star Destroyer";
        let overlay = "character:\n  name: Luke # a comment\n  affiliation: Rebel Alliance\n  saberColor: blue\n  siblings:\n  - Leia\nvehicles:\n- Millennium Falcon";
        let out = merge_documents(&[("empty.yaml", ""), ("base.yaml", base), ("overlay.yaml", overlay)]).unwrap();
        assert_eq!(
            yaml(&out),
            yaml(
                "character:\n  name: Luke\n  ability: Force\n  affiliation: Rebel Alliance\n  saberColor: blue\n  siblings: [Leia]\nvehicles: [Millennium Falcon]\n"
            )
        );
        assert_eq!(merge_documents(&[]).unwrap(), "");
        assert_eq!(merge_documents(&[("a.yaml", "# only a comment\n")]).unwrap(), "");
    }

    #[test]
    fn merge_removes_nulls_and_merges_lists_by_their_associative_key() {
        let base = "env:\n- name: A\n  value: '1'\n- name: B\n  value: '2'\ndrop: me\nkeep: 1\n";
        let overlay = "env:\n- name: B\n  value: '3'\n- name: C\n  value: '4'\ndrop: null\nkeep: \"1.10\"\n";
        let out = merge_documents(&[("base.yaml", base), ("overlay.yaml", overlay)]).unwrap();
        assert_eq!(
            yaml(&out),
            json!({"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}], "keep": "1.10"})
        );
        // A string that reads as a number stays a string in the written file.
        assert!(out.contains("keep: '1.10'"), "{out}");
    }

    #[test]
    fn merge_refuses_bad_yaml_and_several_documents() {
        assert!(matches!(
            merge_documents(&[("bad.yaml", "a: [")]),
            Err(EditError::Parse(m)) if m.starts_with("bad.yaml: ")
        ));
        assert_eq!(
            merge_documents(&[("two.yaml", "a: 1\n---\nb: 2\n")]),
            Err(EditError::MultipleDocuments("two.yaml".into()))
        );
    }
}
