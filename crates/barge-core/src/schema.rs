//! The shape of every model type, for finding fields serde would silently ignore.
//!
//! `#[derive(Schema)]` (crate `barge-schema-derive`) writes the [`StructShape`] of a struct from
//! its serde attributes; the blanket impls below cover containers and scalars. [`unknown_fields`]
//! walks a YAML node along a shape and reports keys no field accepts.

use crate::yaml::{Node, PathSeg, Value};
use std::collections::BTreeMap;

pub use barge_schema_derive::Schema;

pub trait Schema {
    fn shape() -> Shape;
}

#[derive(Clone, Copy)]
pub enum Shape {
    /// Free-form data (step config, opaque provider config): nothing is unknown in it.
    Any,
    /// A scalar, with its type's name for the reference ("string", "integer"...).
    Scalar(&'static str),
    Seq(fn() -> Shape),
    /// A string-keyed map with free keys (labels, annotations).
    Map(fn() -> Shape),
    Struct(&'static StructShape),
}

pub struct StructShape {
    pub name: &'static str,
    pub fields: &'static [FieldShape],
    /// A `#[serde(flatten)]` catch-all accepts any other key.
    pub open: bool,
}

pub struct FieldShape {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    /// The field's doc comment.
    pub doc: &'static str,
    pub shape: fn() -> Shape,
}

impl StructShape {
    pub fn field(&self, key: &str) -> Option<&FieldShape> {
        self.fields.iter().find(|f| f.name == key || f.aliases.contains(&key))
    }
}

macro_rules! scalar {
    ($($t:ty => $name:literal),*) => { $(impl Schema for $t { fn shape() -> Shape { Shape::Scalar($name) } })* };
}
scalar!(String => "string", bool => "boolean", i64 => "integer", u32 => "integer", u64 => "integer", i32 => "integer", f64 => "number");

impl Schema for serde_json::Value {
    fn shape() -> Shape {
        Shape::Any
    }
}
impl<T: Schema> Schema for Option<T> {
    fn shape() -> Shape {
        T::shape()
    }
}
impl<T: Schema> Schema for Box<T> {
    fn shape() -> Shape {
        T::shape()
    }
}
impl<T: Schema> Schema for Vec<T> {
    fn shape() -> Shape {
        Shape::Seq(T::shape)
    }
}
impl<T: Schema> Schema for BTreeMap<String, T> {
    fn shape() -> Shape {
        Shape::Map(T::shape)
    }
}

/// A key that no field of the struct at `path` accepts.
pub struct UnknownField<'a> {
    pub path: Vec<PathSeg>,
    pub key: &'a Node,
    pub known: &'static StructShape,
}

/// Every key below `node` that the shape does not accept.
pub fn unknown_fields<'a>(node: &'a Node, shape: Shape) -> Vec<UnknownField<'a>> {
    let mut out = Vec::new();
    let mut path = Vec::new();
    walk(node, shape, &mut path, &mut out);
    out
}

fn walk<'a>(node: &'a Node, shape: Shape, path: &mut Vec<PathSeg>, out: &mut Vec<UnknownField<'a>>) {
    match (shape, &node.value) {
        (Shape::Seq(item), Value::Seq(items)) => {
            for (i, n) in items.iter().enumerate() {
                path.push(PathSeg::Index(i));
                walk(n, item(), path, out);
                path.pop();
            }
        }
        (Shape::Map(item), Value::Map(entries)) => {
            for e in entries {
                path.push(PathSeg::Key(e.key.key_text()));
                walk(&e.value, item(), path, out);
                path.pop();
            }
        }
        (Shape::Struct(s), Value::Map(entries)) => {
            for e in entries {
                let key = e.key.key_text();
                match s.field(&key) {
                    Some(f) => {
                        path.push(PathSeg::Key(key));
                        walk(&e.value, (f.shape)(), path, out);
                        path.pop();
                    }
                    None if s.open => {}
                    None => out.push(UnknownField {
                        path: path.clone(),
                        key: &e.key,
                        known: s,
                    }),
                }
            }
        }
        // Type mismatches are reported by deserialization, not here.
        _ => {}
    }
}

impl Shape {
    /// A short type description for the reference: `string`, `[]Step`, `map[string]string`.
    pub fn type_name(self) -> String {
        match self {
            Shape::Any => "any".to_string(),
            Shape::Scalar(name) => name.to_string(),
            Shape::Seq(item) => format!("[]{}", item().type_name()),
            Shape::Map(item) => format!("map[string]{}", item().type_name()),
            Shape::Struct(s) => s.name.to_string(),
        }
    }
}

/// Markdown reference of a set of root types: one section per struct reachable from them, in
/// first-seen order, each a table of its fields (name, type, description).
pub fn render_reference(roots: &[(&str, Shape)]) -> String {
    let mut out = String::new();
    let mut seen: Vec<&'static str> = Vec::new();
    let mut queue: std::collections::VecDeque<&'static StructShape> = std::collections::VecDeque::new();
    for (title, shape) in roots {
        if let Shape::Struct(s) = shape {
            out.push_str(&format!("## {title}\n\n"));
            out.push_str(&struct_table(s));
            seen.push(s.name);
            enqueue_children(s, &mut seen, &mut queue);
        }
    }
    while let Some(s) = queue.pop_front() {
        out.push_str(&format!("### {}\n\n", s.name));
        out.push_str(&struct_table(s));
        enqueue_children(s, &mut seen, &mut queue);
    }
    out
}

fn innermost(shape: Shape) -> Shape {
    match shape {
        Shape::Seq(item) | Shape::Map(item) => innermost(item()),
        other => other,
    }
}

fn enqueue_children(
    s: &'static StructShape,
    seen: &mut Vec<&'static str>,
    queue: &mut std::collections::VecDeque<&'static StructShape>,
) {
    for f in s.fields {
        if let Shape::Struct(child) = innermost((f.shape)())
            && !seen.contains(&child.name)
        {
            seen.push(child.name);
            queue.push_back(child);
        }
    }
}

fn struct_table(s: &StructShape) -> String {
    let mut t = String::from("| field | type | description |\n|---|---|---|\n");
    for f in s.fields {
        let ty = (f.shape)().type_name();
        let ty = match innermost((f.shape)()) {
            Shape::Struct(child) => {
                ty.replace(child.name, &format!("[{}](#{})", child.name, child.name.to_lowercase()))
            }
            _ => ty,
        };
        let mut doc = f.doc.replace('|', "\\|");
        if !f.aliases.is_empty() {
            doc.push_str(&format!(" (also read as `{}`)", f.aliases.join("`, `")));
        }
        t.push_str(&format!("| `{}` | {} | {} |\n", f.name, ty, doc.trim()));
    }
    if s.open {
        t.push_str("| *(any other key)* | any | kept as opaque data |\n");
    }
    t.push('\n');
    t
}
