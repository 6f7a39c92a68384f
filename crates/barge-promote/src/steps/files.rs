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
            // Symbolic links are skipped, as Kargo's copy skips them: following one would copy
            // whatever it points at, inside the work directory or not, into the output.
            if entry.file_name() == ".git" || entry.file_type()?.is_symlink() {
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
        for (field, value) in [("inPath", &c.in_path), ("outPath", &c.out_path)] {
            if value.is_empty() {
                return Err(StepError::Invalid(format!("copy: `{field}` is required")));
            }
        }
        let (from, to) = (ctx.path(&c.in_path)?, ctx.path(&c.out_path)?);
        if !from.exists() {
            return Err(StepError::Invalid(format!("copy: {} does not exist", c.in_path)));
        }
        if from.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(StepError::Invalid(format!(
                "copy: {} is a symbolic link; copy what it points at",
                c.in_path
            )));
        }
        copy_tree(&from, &to).map_err(|e| StepError::Invalid(format!("copy {} → {}: {e}", c.in_path, c.out_path)))?;
        done(Map::new())
    })
}

/// The paths in the work directory (relative, `/`-separated) that the glob `pattern` matches,
/// files and directories alike, as Kargo's delete matches them (doublestar: `*` within a
/// directory, `**/` any number of directories). Only the directory the pattern's literal
/// prefix names is walked; `.git` entries (a checkout's link to its repository) never match.
fn glob_matches(ctx: &StepCtx<'_>, pattern: &str) -> Result<Vec<String>, StepError> {
    let pattern = pattern.trim_start_matches("./");
    let glob = barge_core::glob::Glob::new(pattern).map_err(|e| StepError::Invalid(format!("delete: {e}")))?;
    let literal: Vec<&str> = pattern
        .split('/')
        .take_while(|part| !part.contains(['*', '?', '[']))
        .collect();
    // A pattern without wildcards names one path: its parent is where to look.
    let prefix = match literal.len() == pattern.split('/').count() {
        true => literal[..literal.len() - 1].join("/"),
        false => literal.join("/"),
    };
    let mut found = Vec::new();
    let mut pending = vec![prefix];
    while let Some(rel) = pending.pop() {
        let dir = ctx.path(&rel)?;
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name == ".git" {
                continue;
            }
            let path = match rel.as_str() {
                "" => name.to_string_lossy().into_owned(),
                _ => format!("{rel}/{}", name.to_string_lossy()),
            };
            if glob.matches(&path) {
                found.push(path.clone());
            }
            // Symbolic links are matched, never followed.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

pub(super) fn delete<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: Delete = config("delete", cfg)?;
        let given: Vec<&String> = c.path.iter().chain(&c.paths).collect();
        if given.is_empty() || given.iter().any(|g| g.is_empty()) {
            return Err(StepError::Invalid(
                "delete: give `path` or `paths` (at least one, none empty)".into(),
            ));
        }
        let mut targets = Vec::new();
        for given in given {
            if !c.paths_are_globs {
                let p = ctx.path(given)?;
                // Every path is checked before anything is deleted: a strict step that fails
                // leaves the work directory as it was.
                if c.strict && std::fs::symlink_metadata(&p).is_err() {
                    return Err(StepError::Invalid(format!("delete: {given} does not exist")));
                }
                targets.push(given.clone());
                continue;
            }
            // `dir/` names the directory itself.
            let pattern = match given.trim_end_matches('/') {
                "" => given.as_str(),
                trimmed => trimmed,
            };
            let matched = glob_matches(ctx, pattern)?;
            if matched.is_empty() && c.strict {
                return Err(StepError::Invalid(format!("delete: no path matches {given:?}")));
            }
            targets.extend(matched);
        }
        for rel in &targets {
            let p = ctx.path(rel)?;
            if p == ctx.work {
                return Err(StepError::Invalid(
                    "delete: refusing to delete the whole work directory".into(),
                ));
            }
            // A link is removed as a link, never what it points at.
            let is_dir = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir());
            let r = if is_dir {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            match r {
                Ok(()) => {}
                // Missing: never there (not strict), or deleted with a directory listed before it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
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
