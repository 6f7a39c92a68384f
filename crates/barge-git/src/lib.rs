//! Git for barge's Warehouses: discovering a git subscription's candidate commits with the git
//! CLI (the transport Kargo and Argo CD use: ssh config, credential helpers, partial clones).
//!
//! Discovery is one `git ls-remote` (whose refs a caller can compare with the last pass and
//! skip the rest when nothing moved), then a bare, single-branch (or tags-only) clone into a
//! temporary directory, walked with `git log` / `git for-each-ref`.

#![forbid(unsafe_code)]

pub mod cache;
pub mod discover;
pub mod files;
pub mod local;
pub mod repo;

use std::process::Output;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// git could not reach the remote, or it failed mid-transfer.
    #[error("{url}: {message}")]
    Transient { url: String, message: String },
    #[error("{url}: authentication failed ({message})")]
    Auth { url: String, message: String },
    #[error("{url}: {message}")]
    NotFound { url: String, message: String },
    /// A bad subscription (regex, constraint, expression) or an unusable answer.
    #[error("{url}: {message}")]
    Invalid { url: String, message: String },
    /// Changes that cannot be integrated with the remote branch (a rebase conflict).
    #[error("{url}: {message}")]
    Conflict { url: String, message: String },
}

impl GitError {
    pub fn class(&self) -> barge_core::ErrorClass {
        match self {
            GitError::Transient { .. } => barge_core::ErrorClass::Transient,
            GitError::Auth { .. } => barge_core::ErrorClass::Auth,
            GitError::NotFound { .. } => barge_core::ErrorClass::NotFound,
            GitError::Invalid { .. } => barge_core::ErrorClass::Invalid,
            GitError::Conflict { .. } => barge_core::ErrorClass::Conflict,
        }
    }
}

/// Runs git with a clean, non-interactive environment and a time limit; the error text never
/// contains the URL's credentials.
pub(crate) async fn git(
    dir: Option<&std::path::Path>,
    args: &[&str],
    url: &str,
    timeout: Duration,
) -> Result<Output, GitError> {
    git_env(dir, args, url, timeout, &[], None).await
}

/// [`git`] with extra environment variables (identity, askpass credentials); `secret`, when
/// given, is removed from anything git prints before it reaches an error.
pub(crate) async fn git_env(
    dir: Option<&std::path::Path>,
    args: &[&str],
    url: &str,
    timeout: Duration,
    env: &[(&str, String)],
    secret: Option<&str>,
) -> Result<Output, GitError> {
    let mut cmd = tokio::process::Command::new(git_program());
    // No automatic maintenance after each command: it is a process of its own each time.
    // The repository cache runs it now and then instead (`cache::MAINTENANCE_EVERY`).
    cmd.args([
        "-c",
        "core.hooksPath=/dev/null",
        "-c",
        "protocol.file.allow=always",
        "-c",
        "maintenance.auto=false",
    ])
    .args(args)
    .env("GIT_TERMINAL_PROMPT", "0")
    .env("GIT_ASKPASS", "true")
    .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let shown = redact(url);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| GitError::Transient {
            url: shown.clone(),
            message: format!(
                "git {} timed out after {}s",
                args.first().unwrap_or(&""),
                timeout.as_secs()
            ),
        })?
        .map_err(|e| GitError::Invalid {
            url: shown.clone(),
            message: format!("cannot run git ({e}); install git"),
        })?;
    if out.status.success() {
        return Ok(out);
    }
    let stderr = barge_core::secret::redact_text(&String::from_utf8_lossy(&out.stderr), url, secret);
    // Everything git said but its hints ("! [rejected] … (fetch first)" decides a retry).
    let said: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("hint:"))
        .collect();
    let message = if said.is_empty() {
        "git failed".to_string()
    } else {
        said.join("; ")
    };
    let lower = stderr.to_lowercase();
    Err(
        if lower.contains("authentication failed")
            || lower.contains("could not read username")
            || lower.contains("permission denied")
        {
            GitError::Auth { url: shown, message }
        } else if lower.contains("not found")
            || lower.contains("does not appear to be a git repository")
            || lower.contains("couldn't find remote ref")
        {
            GitError::NotFound { url: shown, message }
        } else {
            GitError::Transient { url: shown, message }
        },
    )
}

/// The git executable, found on PATH once: a bare `git` would be looked for in every PATH
/// directory again by each of the dozen git processes a promotion starts.
fn git_program() -> &'static std::path::Path {
    use std::sync::OnceLock;
    static PROGRAM: OnceLock<std::path::PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join("git"))
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
            .unwrap_or_else(|| "git".into())
    })
}

pub(crate) use barge_core::secret::redact_url as redact;

/// Finds the HTTPS credentials for a repository URL (as written, before rewrites).
pub type CredentialLookup = std::sync::Arc<dyn Fn(&str) -> Option<barge_core::secret::Credentials> + Send + Sync>;

/// The environment that hands `credentials` to git through `GIT_ASKPASS` (never a command
/// line or a URL).
pub(crate) fn credential_env(
    credentials: Option<&barge_core::secret::Credentials>,
) -> Result<Vec<(&'static str, String)>, GitError> {
    let Some(c) = credentials else { return Ok(Vec::new()) };
    Ok(vec![
        ("GIT_ASKPASS", askpass_script()?.display().to_string()),
        ("BARGE_GIT_USERNAME", c.username.clone()),
        ("BARGE_GIT_PASSWORD", c.password.clone()),
    ])
}

/// A tiny askpass program: git runs it for the username and the password, which it reads from
/// its own environment (so they are never arguments of any process).
fn askpass_script() -> Result<std::path::PathBuf, GitError> {
    use std::sync::OnceLock;
    static PATH: OnceLock<Result<std::path::PathBuf, String>> = OnceLock::new();
    PATH.get_or_init(|| {
        // A fresh private directory (random name, mode 0700): a predictable path in /tmp could
        // be prepared by another user to run their own program with the password in its
        // environment. It lives as long as the process.
        let dir = tempfile::Builder::new()
            .prefix("barge-askpass-")
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep();
        let path = dir.join("askpass.sh");
        std::fs::write(&path, "#!/bin/sh\ncase \"$1\" in\n  Username*) printf '%s\\n' \"$BARGE_GIT_USERNAME\" ;;\n  *) printf '%s\\n' \"$BARGE_GIT_PASSWORD\" ;;\nesac\n").map_err(|e| e.to_string())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
        Ok(path)
    })
    .clone()
    .map_err(|message| GitError::Invalid { url: String::new(), message: format!("cannot write the askpass helper: {message}") })
}
