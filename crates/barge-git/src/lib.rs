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
    /// Changes that cannot be integrated with the remote branch (a rebase conflict): terminal.
    /// (A branch that merely moved is not one: a push fetches, replays and retries.)
    #[error("{url}: {message}")]
    MergeConflict { url: String, message: String },
    /// git did not finish within its time limit (a server that accepts and never answers).
    #[error("{url}: {message}")]
    TimedOut { url: String, message: String },
}

impl GitError {
    pub fn class(&self) -> barge_core::ErrorClass {
        match self {
            GitError::Transient { .. } => barge_core::ErrorClass::Transient,
            GitError::Auth { .. } => barge_core::ErrorClass::Auth,
            GitError::NotFound { .. } => barge_core::ErrorClass::NotFound,
            GitError::Invalid { .. } => barge_core::ErrorClass::Invalid,
            GitError::MergeConflict { .. } => barge_core::ErrorClass::MergeConflict,
            GitError::TimedOut { .. } => barge_core::ErrorClass::Transient,
        }
    }

    /// What went wrong, without the URL the `Display` starts with.
    pub fn message(&self) -> &str {
        match self {
            GitError::Transient { message, .. }
            | GitError::Auth { message, .. }
            | GitError::NotFound { message, .. }
            | GitError::Invalid { message, .. }
            | GitError::MergeConflict { message, .. }
            | GitError::TimedOut { message, .. } => message,
        }
    }
}

/// [`git_env`] for a caller on a thread without an async runtime (loading definitions, which
/// the daemon does on a thread of its own): the same clean environment, askpass for a URL's
/// userinfo, redaction and time limit.
pub fn git_blocking(dir: &std::path::Path, args: &[&str], url: &str, timeout: Duration) -> Result<Output, GitError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| GitError::Invalid {
            url: redact(url),
            message: format!("cannot start git ({e})"),
        })?;
    runtime.block_on(git_env(Some(dir), args, url, timeout, &[], None))
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

/// [`git`] with extra environment variables (identity) and HTTPS `credentials`. A userinfo
/// in `url` (`https://bot:TOKEN@host/x.git`) is taken off every argument that carries the URL
/// (so it is neither on git's command line nor written to a repository's config by
/// `clone`/`remote add`) and handed over with the credentials, through `GIT_ASKPASS`.
pub(crate) async fn git_env(
    dir: Option<&std::path::Path>,
    args: &[&str],
    url: &str,
    timeout: Duration,
    env: &[(&str, String)],
    credentials: Option<&barge_core::secret::Credentials>,
) -> Result<Output, GitError> {
    let started = std::time::Instant::now();
    let result = run_git(dir, args, url, timeout, env, credentials).await;
    observe(args, url, &result, started.elapsed());
    result
}

/// A git command that talked to a remote ended: what the daemon's metrics count.
#[derive(Debug)]
pub struct RequestEvent<'a> {
    /// `clone`, `fetch`, `push` or `ls-remote`.
    pub operation: &'static str,
    /// The remote's host (`host[:port]`, never its path or credentials); `local` for a path or
    /// `file://` URL.
    pub host: &'a str,
    /// The error's class when it failed.
    pub error: Option<barge_core::ErrorClass>,
    pub took: Duration,
}

/// What is told of each [`RequestEvent`].
pub type RequestObserver = std::sync::Arc<dyn Fn(&RequestEvent<'_>) + Send + Sync>;

/// The one observer of this process. Git runs from discovery, the repository cache,
/// promotion steps and definition loading, none of which share a configuration, so the
/// daemon installs its metrics here once (as a registry client takes its observer in its
/// configuration).
static OBSERVER: std::sync::RwLock<Option<RequestObserver>> = std::sync::RwLock::new(None);

/// Installs the observer of every later git request of this process (replacing any).
pub fn observe_requests(observer: RequestObserver) {
    if let Ok(mut o) = OBSERVER.write() {
        *o = Some(observer);
    }
}

fn observe(args: &[&str], url: &str, result: &Result<Output, GitError>, took: Duration) {
    let Some(operation) = ["clone", "fetch", "push", "ls-remote"]
        .into_iter()
        .find(|op| args.first() == Some(op))
    else {
        return;
    };
    let Some(observer) = OBSERVER.read().ok().and_then(|o| o.clone()) else {
        return;
    };
    observer(&RequestEvent {
        operation,
        host: &remote_host(url),
        error: result.as_ref().err().map(GitError::class),
        took,
    });
}

/// The host a remote URL names: `https://user:pw@host:8443/x.git` → `host:8443`,
/// `git@github.com:org/x.git` (scp-like) → `github.com`; a path or `file://` URL → `local`.
pub fn remote_host(url: &str) -> String {
    let authority = match url.split_once("://") {
        Some(("file", _)) => return "local".to_string(),
        Some((_, rest)) => rest.split('/').next().unwrap_or_default(),
        // scp-like syntax has a colon before any slash (git-clone(1), "GIT URLS").
        None => match url.split_once(':') {
            Some((host, _)) if !host.contains('/') => host,
            _ => return "local".to_string(),
        },
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // Anything but a name (or address) and a numeric port is not labelled as written: a
    // label must not carry what a malformed URL put there (`https://user:pw/x@host`).
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') && !host.starts_with('[') => (name, Some(port)),
        _ => (host, None),
    };
    let name_ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || ".-_[]:".contains(c));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if name_ok && port_ok {
        host.to_ascii_lowercase()
    } else {
        "invalid".to_string()
    }
}

async fn run_git(
    dir: Option<&std::path::Path>,
    args: &[&str],
    url: &str,
    timeout: Duration,
    env: &[(&str, String)],
    credentials: Option<&barge_core::secret::Credentials>,
) -> Result<Output, GitError> {
    let (clean_url, embedded) = barge_core::secret::split_userinfo(url);
    let credentials = barge_core::secret::with_configured(embedded, || credentials.cloned());
    // Removed when this call ends, however it ends (an error, a timeout, a dropped future).
    let askpass = credentials.as_ref().map(|c| Askpass::new(c, &clean_url)).transpose()?;
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
    .args(args.iter().map(|a| {
        if clean_url == url {
            (*a).to_string()
        } else {
            a.replace(url, &clean_url)
        }
    }))
    .env("GIT_TERMINAL_PROMPT", "0")
    .env("GIT_ASKPASS", "true")
    .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    .kill_on_drop(true);
    if let Some(askpass) = &askpass {
        cmd.envs(askpass.env());
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let shown = redact(url);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| GitError::TimedOut {
            url: shown.clone(),
            message: format!("git {} timed out after {:?}", args.first().unwrap_or(&""), timeout),
        })?
        .map_err(|e| GitError::Invalid {
            url: shown.clone(),
            message: format!("cannot run git ({e}); install git"),
        })?;
    if out.status.success() {
        return Ok(out);
    }
    let secret = credentials.as_ref().map(|c| c.password.as_str());
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

/// A tiny askpass program that hands credentials to git (never a command line or a URL): git
/// runs it for the username and the password, which it reads from git's environment, so they
/// are never arguments of any process. It lives in a fresh private directory (random name,
/// mode 0700: a predictable path in the temporary directory could be prepared by another user
/// to run their own program with the password in its environment), removed when this is
/// dropped, on every path out of the git call it serves.
///
/// It answers only git's prompts for the server of the repository's URL (`scheme://host[:port]`,
/// as git's prompt names it), as a credential helper keyed by host would: a submodule on
/// another server is never sent these credentials.
pub struct Askpass {
    /// Deleted (with the script) on drop.
    dir: tempfile::TempDir,
    script: std::path::PathBuf,
    username: String,
    password: String,
    /// `host[:port]` of the repository's URL.
    server: String,
}

impl Askpass {
    /// An askpass for `credentials`, answering prompts for the server of `url`.
    pub fn new(credentials: &barge_core::secret::Credentials, url: &str) -> Result<Askpass, GitError> {
        use std::os::unix::fs::PermissionsExt;
        let failed = |e: std::io::Error| GitError::Invalid {
            url: String::new(),
            message: format!("cannot write the askpass helper: {e}"),
        };
        let dir = tempfile::Builder::new()
            .prefix("barge-askpass-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(failed)?;
        let script = dir.path().join("askpass.sh");
        std::fs::write(
            &script,
            "#!/bin/sh\ncase \"$1\" in\n  *\"://$BARGE_GIT_SERVER'\"*|*\"@$BARGE_GIT_SERVER'\"*) ;;\n  *) exit 1 ;;\nesac\ncase \"$1\" in\n  Username*) printf '%s\\n' \"$BARGE_GIT_USERNAME\" ;;\n  *) printf '%s\\n' \"$BARGE_GIT_PASSWORD\" ;;\nesac\n",
        )
        .map_err(failed)?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).map_err(failed)?;
        Ok(Askpass {
            dir,
            script,
            username: credentials.username.clone(),
            password: credentials.password.clone(),
            server: server_of(url).to_string(),
        })
    }

    /// The private directory holding the program.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The environment a git process needs to use it.
    pub fn env(&self) -> [(&'static str, &std::ffi::OsStr); 4] {
        [
            ("GIT_ASKPASS", self.script.as_os_str()),
            ("BARGE_GIT_USERNAME", self.username.as_ref()),
            ("BARGE_GIT_PASSWORD", self.password.as_ref()),
            ("BARGE_GIT_SERVER", self.server.as_ref()),
        ]
    }
}

/// The `host[:port]` of a URL (`scheme://[userinfo@]host[:port]/path`): what git's credential
/// prompts name after the scheme (or the user).
fn server_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority.rsplit_once('@').map_or(authority, |(_, host)| host)
}

/// How a pull request's source branch stands against its target on a remote: what
/// git-open-pr checks before it asks a forge to open one (as Kargo's does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BranchDiff {
    /// The target branch does not exist on the remote.
    TargetMissing,
    /// The source branch does not exist on the remote.
    SourceMissing,
    /// Both exist and their trees are the same (Kargo's `git diff --quiet source..target`).
    NoChanges,
    /// Both exist and their trees differ.
    Changes,
}

/// Compares the tips of `source` and `target` on the remote `url` (after rewrites) with one
/// `ls-remote` and, when their commits differ, a shallow, blobless fetch of both into a
/// throw-away repository to compare their trees.
pub async fn compare_branches(
    url: &str,
    credentials: Option<&barge_core::secret::Credentials>,
    source: &str,
    target: &str,
    timeout: Duration,
) -> Result<BranchDiff, GitError> {
    let dir = tempfile::Builder::new()
        .prefix("barge-git-")
        .tempdir()
        .map_err(|e| GitError::Invalid {
            url: redact(url),
            message: format!("cannot create a work directory: {e}"),
        })?;
    let run = |args: Vec<String>| {
        let dir = dir.path().to_path_buf();
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            git_env(Some(&dir), &refs, url, timeout, &[], credentials).await
        }
    };
    run(vec!["init".into(), "-q".into(), "--bare".into()]).await?;
    let (source_ref, target_ref) = (format!("refs/heads/{source}"), format!("refs/heads/{target}"));
    let listed = run(vec![
        "ls-remote".into(),
        url.into(),
        source_ref.clone(),
        target_ref.clone(),
    ])
    .await?;
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let tip = |name: &str| {
        listed.lines().find_map(|l| {
            let (sha, r) = l.split_once('\t')?;
            (r == name).then(|| sha.to_string())
        })
    };
    let (Some(s), Some(t)) = (tip(&source_ref), tip(&target_ref)) else {
        return Ok(if tip(&target_ref).is_none() {
            BranchDiff::TargetMissing
        } else {
            BranchDiff::SourceMissing
        });
    };
    if s == t {
        return Ok(BranchDiff::NoChanges);
    }
    run(vec![
        "fetch".into(),
        "-q".into(),
        "--no-tags".into(),
        "--depth".into(),
        "1".into(),
        // Trees only: comparing them needs no file contents (a server without partial clone
        // ignores the filter, with a warning, and sends them anyway).
        "--filter=blob:none".into(),
        url.into(),
        format!("+{source_ref}:refs/compare/source"),
        format!("+{target_ref}:refs/compare/target"),
    ])
    .await?;
    let tree = |r: &'static str| run(vec!["rev-parse".into(), format!("{r}^{{tree}}")]);
    let (a, b) = (tree("refs/compare/source").await?, tree("refs/compare/target").await?);
    Ok(if a.stdout == b.stdout {
        BranchDiff::NoChanges
    } else {
        BranchDiff::Changes
    })
}

#[cfg(test)]
mod tests {
    use super::{Askpass, remote_host};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_remote_is_counted_by_its_host_alone() {
        for (url, host) in [
            ("https://bot:s3cret@GitHub.com/acme/x.git", "github.com"),
            ("https://bot:s3cret/x@github.com/acme/x.git", "invalid"),
            ("http://127.0.0.1:8443/acme/x", "127.0.0.1:8443"),
            (
                "ssh://git@gitlab.example.com:2222/acme/x.git",
                "gitlab.example.com:2222",
            ),
            ("git@github.com:acme/x.git", "github.com"),
            ("file:///srv/git/x.git", "local"),
            ("/srv/git/x.git", "local"),
            ("./x:y", "local"),
        ] {
            assert_eq!(remote_host(url), host, "{url}");
        }
    }

    #[test]
    fn the_askpass_helper_is_private_and_removed_when_dropped() {
        let askpass = Askpass::new(
            &barge_core::secret::Credentials {
                username: "bot".into(),
                password: "s3cret".into(),
            },
            "https://h/x.git",
        )
        .unwrap();
        let dir = askpass.dir().to_path_buf();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        let [(_, program), ..] = askpass.env();
        let said = std::process::Command::new(program)
            .arg("Password for 'https://bot@h': ")
            .envs(askpass.env().into_iter().skip(1))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&said.stdout), "s3cret\n");
        drop(askpass);
        assert!(!dir.exists(), "{} is left behind", dir.display());
    }

    /// A submodule on another server (or the same host on another port) gets no answer, so its
    /// server never sees the repository's credentials; the repository's own server does.
    #[test]
    fn the_askpass_helper_answers_only_for_the_repository_server() {
        let askpass = Askpass::new(
            &barge_core::secret::Credentials {
                username: "bot".into(),
                password: "s3cret".into(),
            },
            "http://127.0.0.1:8080/config.git",
        )
        .unwrap();
        let [(_, program), ..] = askpass.env();
        let ask = |prompt: &str| {
            std::process::Command::new(program)
                .arg(prompt)
                .envs(askpass.env().into_iter().skip(1))
                .output()
                .unwrap()
        };
        let user = ask("Username for 'http://127.0.0.1:8080': ");
        assert_eq!(String::from_utf8_lossy(&user.stdout), "bot\n");
        let pass = ask("Password for 'http://bot@127.0.0.1:8080': ");
        assert_eq!(String::from_utf8_lossy(&pass.stdout), "s3cret\n");
        for elsewhere in [
            "Username for 'https://evil.example': ",
            "Password for 'http://bot@127.0.0.1:9090': ",
            "Password for 'http://bot@127.0.0.1:80800': ",
        ] {
            let said = ask(elsewhere);
            assert!(!said.status.success(), "{elsewhere}");
            assert!(said.stdout.is_empty(), "{elsewhere}: {:?}", said.stdout);
        }
    }

    #[test]
    fn the_server_of_a_url_is_its_host_and_port() {
        assert_eq!(
            super::server_of("https://bot:t@git.example.com:8443/a/b.git"),
            "git.example.com:8443"
        );
        assert_eq!(super::server_of("http://127.0.0.1/x.git"), "127.0.0.1");
        assert_eq!(super::server_of("file:///srv/x.git"), "");
    }
}
