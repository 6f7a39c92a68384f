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
    Scalar,
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
    pub shape: fn() -> Shape,
}

impl StructShape {
    pub fn field(&self, key: &str) -> Option<&FieldShape> {
        self.fields.iter().find(|f| f.name == key || f.aliases.contains(&key))
    }
}

macro_rules! scalar {
    ($($t:ty),*) => { $(impl Schema for $t { fn shape() -> Shape { Shape::Scalar } })* };
}
scalar!(String, bool, i64, u32, u64, i32, f64);

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
