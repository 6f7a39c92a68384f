//! hcl-update (Kargo Enterprise's): sets attribute values in an HCL file (OpenTofu/Terraform
//! configuration, `.tfvars`) through hcl_edit, so comments, spacing and every other value stay
//! as written.
//!
//! A key is a dotted path (`\.` for a dot inside a name): top-level attributes (`image_uri`
//! in a `.tfvars` file), block identifiers followed by the block's labels
//! (`resource.aws_lambda_function.app.image_uri`), keys of object values (`tags.version`) and
//! indices of list values (`subnets.0`). A key must exist: hcl-update changes values, it never
//! adds attributes or blocks.

use super::update::{Shown, commit_message};
use super::{StepCtx, StepError, StepResult, done};
use crate::BoxFuture;
use hcl_edit::Decorate;
use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::structure::{Body, Structure};
use serde_json::Value as Json;

pub(super) fn hcl_update<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c = super::update::file_update("hcl-update", cfg)?;
        if c.updates.is_empty() {
            return Err(StepError::Invalid("hcl-update: give at least one update".into()));
        }
        let text = ctx.read(&c.path)?;
        let out = update(
            &text,
            &c.updates.iter().map(|u| (u.key.as_str(), &u.value)).collect::<Vec<_>>(),
        )
        .map_err(|e| StepError::Invalid(format!("hcl-update {}: {e}", c.path)))?;
        ctx.write(&c.path, &out)?;
        done(commit_message(&c.path, &c.updates, Shown::QuotedIfNecessary))
    })
}

/// `text` with each `(key, value)` set; only the values change.
pub(crate) fn update(text: &str, updates: &[(&str, &Json)]) -> Result<String, String> {
    let mut body: Body = text.parse().map_err(|e| format!("not HCL: {e}"))?;
    for (key, value) in updates {
        let segments = super::update::key_segments(key);
        if segments.iter().any(String::is_empty) {
            return Err(format!("key {key:?} has an empty part"));
        }
        let new = expression(key, value)?;
        let old = value_in_body(&mut body, &segments).map_err(|why| format!("key {key:?} {why}"))?;
        let mut new = new;
        // The value changes; the spaces and comments around it stay.
        *new.decor_mut() = old.decor().clone();
        *old = new;
    }
    Ok(body.to_string())
}

/// The HCL value of a step's value: strings quoted, numbers and booleans as they are (Kargo's
/// documented types).
fn expression(key: &str, value: &Json) -> Result<Expression, String> {
    Ok(match value {
        Json::String(s) => Expression::from(s.as_str()),
        Json::Bool(b) => Expression::from(*b),
        Json::Number(n) => {
            let number = match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => hcl_edit::Number::from(i),
                (None, Some(u), _) => hcl_edit::Number::from(u),
                (None, None, Some(f)) => {
                    hcl_edit::Number::from_f64(f).ok_or_else(|| format!("key {key:?}: {f} is not an HCL number"))?
                }
                _ => return Err(format!("key {key:?}: {n} is not an HCL number")),
            };
            Expression::from(number)
        }
        Json::Null | Json::Array(_) | Json::Object(_) => {
            return Err(format!(
                "key {key:?}: the value must be a string, a number or a boolean, not {value}"
            ));
        }
    })
}

/// The value `segments` name in `body`: an attribute, or a block (its identifier, then one
/// segment per label) and a key inside it.
fn value_in_body<'a>(body: &'a mut Body, segments: &[String]) -> Result<&'a mut Expression, String> {
    let (first, rest) = segments.split_first().ok_or("is empty")?;
    let attribute = (0..body.len()).find(|i| matches!(body.get(*i), Some(Structure::Attribute(a)) if a.has_key(first)));
    if let Some(i) = attribute {
        let Some(Structure::Attribute(a)) = body.get_mut(i) else {
            unreachable!("found above")
        };
        return value_in_expression(&mut a.value, rest);
    }
    let blocks: Vec<usize> = (0..body.len())
        .filter(|i| match body.get(*i) {
            Some(Structure::Block(b)) => {
                b.has_ident(first)
                    && rest.len() > b.labels.len()
                    && b.labels.iter().zip(rest).all(|(l, s)| l.as_str() == s)
            }
            _ => false,
        })
        .collect();
    match blocks.as_slice() {
        [i] => {
            let Some(Structure::Block(b)) = body.get_mut(*i) else {
                unreachable!("found above")
            };
            let labels = b.labels.len();
            value_in_body(&mut b.body, &rest[labels..])
        }
        [] if body.get_blocks(first).next().is_some() => Err(format!(
            "does not exist: no `{first}` block has the labels and attribute it names (block labels follow the block's name: `resource.TYPE.NAME.attribute`)"
        )),
        [] => Err(format!("does not exist: there is no attribute or block `{first}`")),
        _ => Err(format!("is ambiguous: {} `{first}` blocks match it", blocks.len())),
    }
}

/// The value `segments` name inside `expr`: object keys and list indices.
fn value_in_expression<'a>(expr: &'a mut Expression, segments: &[String]) -> Result<&'a mut Expression, String> {
    let Some((first, rest)) = segments.split_first() else {
        return Ok(expr);
    };
    let inner = match expr {
        Expression::Object(object) => object
            .iter_mut()
            .find(|(k, _)| object_key(k) == Some(first.as_str()))
            .map(|(_, v)| v.expr_mut()),
        Expression::Array(array) => first.parse::<usize>().ok().and_then(|i| array.get_mut(i)),
        _ => {
            return Err(format!(
                "does not exist: the value before `{first}` is not an object or a list"
            ));
        }
    };
    let inner = inner.ok_or_else(|| format!("does not exist: no `{first}` in its object or list"))?;
    value_in_expression(inner, rest)
}

fn object_key(key: &ObjectKey) -> Option<&str> {
    match key {
        ObjectKey::Ident(i) => Some(i.as_str()),
        ObjectKey::Expression(Expression::String(s)) => Some(s.as_str()),
        ObjectKey::Expression(_) => None,
    }
}
