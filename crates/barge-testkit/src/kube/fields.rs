//! Field ownership for the test API server: `metadata.managedFields` and server-side apply,
//! minimal but with the real rules (Kubernetes "Server-Side Apply",
//! https://kubernetes.io/docs/reference/using-api/server-side-apply/):
//!
//! - Every write records who set which fields: an apply under its `fieldManager` (operation
//!   `Apply`), any other write under its `fieldManager` or the client's User-Agent (operation
//!   `Update`). An Update takes the fields it changes from their previous owners.
//! - An apply that sets a field another manager owns to a different value is a conflict (409)
//!   unless `force`, which moves the field to the applier. The same value is shared ownership.
//! - A field an applier set before and leaves out now is removed, unless another manager owns it.
//!
//! What is simplified: lists are atomic (one field, as for a CRD list without
//! `x-kubernetes-list-type: map`), there is no schema (an object's keys are always fields),
//! and ownership is not split by subresource.

use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// A field: the keys from the object's root to a leaf (a scalar, a list or an empty object).
pub type Field = Vec<String>;

/// One `managedFields` entry: a manager, its operation, the fields it owns.
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    fields: BTreeSet<Field>,
}

/// The fields an object sets, leaving out its identity (apiVersion, kind, and metadata other
/// than labels and annotations), which no manager owns.
pub fn fields_of(object: &Value) -> BTreeSet<Field> {
    fn walk(v: &Value, at: &mut Field, out: &mut BTreeSet<Field>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    at.push(k.clone());
                    walk(x, at, out);
                    at.pop();
                }
            }
            _ => {
                out.insert(at.clone());
            }
        }
    }
    let mut out = BTreeSet::new();
    let Some(root) = object.as_object() else {
        return out;
    };
    for (k, v) in root {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                for owned in ["labels", "annotations"] {
                    if let Some(x) = v.get(owned) {
                        walk(x, &mut vec!["metadata".into(), owned.into()], &mut out);
                    }
                }
            }
            _ => walk(v, &mut vec![k.clone()], &mut out),
        }
    }
    out
}

fn get<'a>(v: &'a Value, field: &Field) -> Option<&'a Value> {
    field.iter().try_fold(v, |node, k| node.get(k))
}

/// Removes a field, and the objects above it that it leaves empty.
fn remove(v: &mut Value, field: &[String]) {
    let Some((first, rest)) = field.split_first() else {
        return;
    };
    let Some(m) = v.as_object_mut() else {
        return;
    };
    if rest.is_empty() {
        m.remove(first);
        return;
    }
    if let Some(child) = m.get_mut(first) {
        remove(child, rest);
        if child.as_object().is_some_and(Map::is_empty) {
            m.remove(first);
        }
    }
}

/// `.spec.source.targetRevision`, as the API server names a field in a conflict.
fn dotted(field: &Field) -> String {
    field.iter().map(|k| format!(".{k}")).collect()
}

/// The `fieldsV1` form: `{"f:spec": {"f:replicas": {}}}`.
fn to_fields_v1(fields: &BTreeSet<Field>) -> Value {
    let mut root = json!({});
    for f in fields {
        let mut node = &mut root;
        for k in f {
            node = node
                .as_object_mut()
                .expect("fieldsV1 nodes are objects")
                .entry(format!("f:{k}"))
                .or_insert_with(|| json!({}));
        }
    }
    root
}

fn from_fields_v1(v: &Value) -> BTreeSet<Field> {
    fn walk(v: &Value, at: &mut Field, out: &mut BTreeSet<Field>) {
        let children: Vec<(&String, &Value)> = v
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.starts_with("f:"))
            .collect();
        if children.is_empty() {
            if !at.is_empty() {
                out.insert(at.clone());
            }
            return;
        }
        for (k, x) in children {
            at.push(k[2..].to_string());
            walk(x, at, out);
            at.pop();
        }
    }
    let mut out = BTreeSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

fn entries(object: &Value) -> Vec<Entry> {
    object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or("").to_string(),
            operation: e["operation"].as_str().unwrap_or("").to_string(),
            api_version: e["apiVersion"].as_str().unwrap_or("").to_string(),
            time: e["time"].as_str().unwrap_or("").to_string(),
            fields: from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

fn set_entries(object: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            json!({"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&e.fields)})
        })
        .collect();
    match object["metadata"].as_object_mut() {
        Some(meta) if list.is_empty() => {
            meta.remove("managedFields");
        }
        Some(meta) => {
            meta.insert("managedFields".into(), Value::Array(list));
        }
        None => {}
    }
}

/// The entry of `manager` with `operation`, created when missing.
fn entry<'a>(entries: &'a mut Vec<Entry>, manager: &str, operation: &str, object: &Value, now: &str) -> &'a mut Entry {
    let i = match entries
        .iter()
        .position(|e| e.manager == manager && e.operation == operation)
    {
        Some(i) => i,
        None => {
            entries.push(Entry {
                manager: manager.into(),
                operation: operation.into(),
                api_version: object["apiVersion"].as_str().unwrap_or("").to_string(),
                time: String::new(),
                fields: BTreeSet::new(),
            });
            entries.len() - 1
        }
    };
    entries[i].time = now.to_string();
    &mut entries[i]
}

/// Records a write other than an apply (create, update, patch): `manager` owns the fields it
/// added or changed, taken from their previous owners; removed fields lose their owners.
/// `before` is the stored object (None on create); the managedFields of `after` are the
/// server's, whatever the request carried.
pub fn record_update(before: Option<&Value>, after: &mut Value, manager: &str, now: &str) {
    let empty = Value::Null;
    let before = before.unwrap_or(&empty);
    let mut list = entries(before);
    let new = fields_of(after);
    let changed: BTreeSet<Field> = new
        .iter()
        .filter(|f| get(before, f) != get(after, f))
        .cloned()
        .collect();
    for e in &mut list {
        e.fields.retain(|f| new.contains(f) && !changed.contains(f));
    }
    if !changed.is_empty() {
        let mine = entry(&mut list, manager, "Update", after, now);
        mine.fields.extend(changed);
    }
    set_entries(after, list);
}

/// An apply that another manager's fields refuse (409 without `force`).
pub struct Conflicts(BTreeMap<(String, String), Vec<Field>>);

impl Conflicts {
    /// The API server's message: `Apply failed with 1 conflict: conflict with "kubectl" using
    /// argoproj.io/v1alpha1: .spec.source.targetRevision`.
    pub fn message(&self) -> String {
        let count: usize = self.0.values().map(Vec::len).sum();
        let plural = if count == 1 { "" } else { "s" };
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|((manager, api_version), fields)| {
                if fields.len() == 1 {
                    format!(
                        "conflict with \"{manager}\" using {api_version}: {}",
                        dotted(&fields[0])
                    )
                } else {
                    let list: Vec<String> = fields.iter().map(|f| format!("- {}", dotted(f))).collect();
                    format!("conflicts with \"{manager}\" using {api_version}:\n{}", list.join("\n"))
                }
            })
            .collect();
        format!("Apply failed with {count} conflict{plural}: {}", parts.join("\n"))
    }

    /// Each conflicting field, as the Status' `details.causes`.
    pub fn causes(&self) -> Vec<Value> {
        self.0
            .iter()
            .flat_map(|((manager, api_version), fields)| {
                fields.iter().map(move |f| {
                    json!({"type": "FieldManagerConflict",
                        "message": format!("conflict with \"{manager}\" using {api_version}"), "field": dotted(f)})
                })
            })
            .collect()
    }
}

/// Server-side apply of `applied` by `manager` to `current` (None: the object is created).
pub fn apply(
    current: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, Conflicts> {
    let empty = json!({});
    let current = current.unwrap_or(&empty);
    let mut list = entries(current);
    let wanted = fields_of(applied);
    let mut conflicts: BTreeMap<(String, String), Vec<Field>> = BTreeMap::new();
    for e in list.iter().filter(|e| e.manager != manager) {
        for f in e.fields.intersection(&wanted) {
            if get(current, f) != get(applied, f) {
                conflicts
                    .entry((e.manager.clone(), e.api_version.clone()))
                    .or_default()
                    .push(f.clone());
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(Conflicts(conflicts));
    }
    // Forced: the conflicting fields move to the applier.
    for e in list
        .iter_mut()
        .filter(|e| conflicts.contains_key(&(e.manager.clone(), e.api_version.clone())))
    {
        let lost = &conflicts[&(e.manager.clone(), e.api_version.clone())];
        e.fields.retain(|f| !lost.contains(f));
    }
    let mut next = current.clone();
    let before: BTreeSet<Field> = list
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply")
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for dropped in before.difference(&wanted) {
        let owned_elsewhere = list
            .iter()
            .any(|e| !(e.manager == manager && e.operation == "Apply") && e.fields.contains(dropped));
        if !owned_elsewhere {
            remove(&mut next, dropped);
        }
    }
    for f in &wanted {
        let value = get(applied, f).cloned().unwrap_or(Value::Null);
        set(&mut next, f, value);
    }
    for top in ["apiVersion", "kind"] {
        if next[top].is_null() && !applied[top].is_null() {
            next[top] = applied[top].clone();
        }
    }
    entry(&mut list, manager, "Apply", applied, now).fields = wanted;
    set_entries(&mut next, list);
    Ok(next)
}

fn set(v: &mut Value, field: &[String], value: Value) {
    let Some((first, rest)) = field.split_first() else {
        *v = value;
        return;
    };
    if !v.is_object() {
        *v = json!({});
    }
    let child = v
        .as_object_mut()
        .expect("made an object above")
        .entry(first.clone())
        .or_insert(Value::Null);
    set(child, rest, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_v1_round_trips_and_leaves_identity_out() {
        let obj = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a", "labels": {"team": "shop"}},
            "spec": {"replicas": 2, "ports": [1, 2], "empty": {}}});
        let fields = fields_of(&obj);
        let names: Vec<String> = fields.iter().map(dotted).collect();
        assert_eq!(
            names,
            [".metadata.labels.team", ".spec.empty", ".spec.ports", ".spec.replicas"]
        );
        assert_eq!(from_fields_v1(&to_fields_v1(&fields)), fields);
        assert_eq!(
            to_fields_v1(&fields)["f:spec"],
            json!({"f:empty": {}, "f:ports": {}, "f:replicas": {}})
        );
    }
}
