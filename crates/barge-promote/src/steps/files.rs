//! copy, delete, file-write.

use super::{StepCtx, StepError, StepResult, config, done};
use crate::BoxFuture;
use barge_core::step_config::{Copy, Delete, FileWrite};
use serde_json::{Map, Value as Json};
use std::path::Path;

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            if entry.file_name() == ".git" {
                continue;
            }
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from, to).map(|_| ())
    }
}

pub(super) fn copy<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: Copy = config("copy", cfg)?;
        let (from, to) = (ctx.path(&c.in_path)?, ctx.path(&c.out_path)?);
        if !from.exists() {
            return Err(StepError::Invalid(format!("copy: {} does not exist", c.in_path)));
        }
        copy_tree(&from, &to).map_err(|e| StepError::Invalid(format!("copy {} → {}: {e}", c.in_path, c.out_path)))?;
        done(Map::new())
    })
}

pub(super) fn delete<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: Delete = config("delete", cfg)?;
        for rel in c.path.iter().chain(&c.paths) {
            let p = ctx.path(rel)?;
            if p == ctx.work {
                return Err(StepError::Invalid(
                    "delete: refusing to delete the whole work directory".into(),
                ));
            }
            let r = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            match r {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !c.strict => {}
                Err(e) => return Err(StepError::Invalid(format!("delete {rel}: {e}"))),
            }
        }
        done(Map::new())
    })
}

pub(super) fn file_write<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: FileWrite = config("file-write", cfg)?;
        let p = ctx.path(&c.path)?;
        if p.exists() && !c.overwrite.unwrap_or(true) {
            return Err(StepError::Invalid(format!(
                "file-write: {} exists and overwrite is false",
                c.path
            )));
        }
        // Expressions may have typed the contents (a number, an object): write them as text.
        let text = match &c.contents {
            Json::String(s) => s.clone(),
            Json::Null => String::new(),
            other => other.to_string(),
        };
        ctx.write(&c.path, &text)?;
        let mode = c
            .permissions
            .as_deref()
            .map_or(Ok(0o600), |m| u32::from_str_radix(m.trim_start_matches("0o"), 8));
        let mode = mode.map_err(|_| {
            StepError::Invalid(format!(
                "file-write: permissions `{}` is not octal (e.g. \"0644\")",
                c.permissions.unwrap_or_default()
            ))
        })?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| StepError::Invalid(format!("file-write {}: {e}", c.path)))?;
        done(Map::new())
    })
}
