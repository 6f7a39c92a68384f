//! Where definitions come from: files, directories (recursive, `.yaml`/`.yml`, multi-document)
//! and Git repositories, handed to the pure loader in `barge-core` as text.
//!
//! A Git source is written the way kustomize writes remote bases:
//! `<repo-url>[//<path>][?ref=<branch|tag|commit>]`, e.g.
//! `https://git.example.com/org/config.git//kargo?ref=main`. The repository is fetched with the
//! git CLI (shallow where the ref allows) into a temporary directory that is removed afterwards.
//! Credentials in URLs never reach a message: every URL shown is [`redact_url`]ed. Nor do
//! they reach git's command line or the fetched repository's config: the userinfo is taken off
//! the URL and handed to git through barge-git's askpass helper.

#![forbid(unsafe_code)]

use barge_core::Catalog;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One place to load definitions from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Path(PathBuf),
    Git {
        url: String,
        reference: Option<String>,
        path: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The user named something that does not exist: a usage error.
    #[error("{0}: no such file or directory")]
    NotFound(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// git failed; the message names the (redacted) URL and what git said.
    #[error("cannot fetch {url}{}: {message}", reference.as_ref().map(|r| format!(" at {r}")).unwrap_or_default())]
    Git {
        url: String,
        reference: Option<String>,
        message: String,
    },
    #[error("{url}: path {path:?} does not exist in the repository")]
    GitPathNotFound { url: String, path: String },
}

impl SourceError {
    /// Whether the error is the caller's (a path that does not exist) rather than the world's.
    pub fn is_usage(&self) -> bool {
        matches!(self, SourceError::NotFound(_))
    }
}

/// Reads a command-line argument as a source: URLs (and scp-style `git@host:repo`) are Git
/// sources, anything else a local path.
pub fn parse_source(arg: &str) -> Source {
    let is_url = ["https://", "http://", "ssh://", "git://", "file://", "git+"]
        .iter()
        .any(|p| arg.starts_with(p))
        || (arg.contains('@') && arg.contains(':') && !arg.contains("://") && !Path::new(arg).exists());
    if !is_url {
        return Source::Path(PathBuf::from(arg));
    }
    let arg = arg.strip_prefix("git+").unwrap_or(arg);
    let (rest, reference) = match arg.split_once("?ref=") {
        Some((r, q)) => (
            r,
            Some(q.split('&').next().unwrap_or(q).to_string()).filter(|s| !s.is_empty()),
        ),
        None => (arg, None),
    };
    let scheme_end = rest.find("://").map_or(0, |i| i + 3);
    // file:///abs/path keeps its leading slash; the subpath separator is the next `//`.
    let search_from = if rest[scheme_end..].starts_with('/') {
        scheme_end + 1
    } else {
        scheme_end
    };
    let (url, path) = match rest[search_from..].find("//") {
        Some(i) => (
            rest[..search_from + i].to_string(),
            rest[search_from + i + 2..].trim_matches('/').to_string(),
        ),
        None => (rest.to_string(), String::new()),
    };
    Source::Git { url, reference, path }
}

pub use barge_core::secret::redact_url;

/// How long one git command fetching a Git source may take by default: a server that accepts
/// the connection and never answers must not hold a load (or the daemon's reload) forever.
pub const DEFAULT_GIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Loads and validates definitions named on a command line (the CLI's verbs and the daemon's
/// reload): every argument but the [`skipped`] ones, each git command within `git_timeout`.
pub fn load_catalog(args: &[String], git_timeout: Duration) -> Result<Catalog, SourceError> {
    let sources: Vec<Source> = args
        .iter()
        .filter(|a| !skipped(args, a))
        .map(|a| parse_source(a))
        .collect();
    let mut catalog = Catalog::default();
    load(&sources, &mut catalog, git_timeout)?;
    barge_core::validate::validate(&mut catalog);
    Ok(catalog)
}

/// Whether `arg`, one of `args`, is a file to skip: with several arguments (a shell glob such
/// as `examples/*`), files that are not `.yaml`/`.yml` are left out, as a directory's are. A
/// file named alone is read whatever its name.
pub fn skipped(args: &[String], arg: &str) -> bool {
    let p = Path::new(arg);
    args.len() > 1
        && matches!(parse_source(arg), Source::Path(_))
        && p.is_file()
        && !matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// Loads every source into the catalog. Problems with file content become diagnostics in the
/// catalog; only an unreadable source is an `Err`.
pub fn load(sources: &[Source], catalog: &mut Catalog, git_timeout: Duration) -> Result<(), SourceError> {
    for source in sources {
        match source {
            Source::Path(p) => load_path(p, &p.display().to_string(), catalog)?,
            Source::Git { url, reference, path } => load_git(url, reference.as_deref(), path, catalog, git_timeout)?,
        }
    }
    Ok(())
}

fn load_path(path: &Path, shown: &str, catalog: &mut Catalog) -> Result<(), SourceError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => SourceError::NotFound(shown.to_string()),
        _ => SourceError::Io {
            path: shown.to_string(),
            source: e,
        },
    })?;
    if meta.is_dir() {
        for file in yaml_files(path).map_err(|e| SourceError::Io {
            path: shown.to_string(),
            source: e,
        })? {
            let rel = file.strip_prefix(path).unwrap_or(&file);
            let name = Path::new(shown).join(rel).display().to_string();
            load_file(&file, &name, false, catalog)?;
        }
        Ok(())
    } else {
        load_file(path, shown, true, catalog)
    }
}

/// The most barge reads from one file. Real definition files are kilobytes; the cap keeps a
/// huge or endless file (a log, `/dev/urandom` behind a link) from exhausting memory.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Reads one file; `named` when the user named it (not found in a directory), where a file
/// that cannot be read is an error rather than skipped with a warning.
fn load_file(path: &Path, shown: &str, named: bool, catalog: &mut Catalog) -> Result<(), SourceError> {
    let io = |source| SourceError::Io {
        path: shown.to_string(),
        source,
    };
    let mut file = open_without_blocking(path).map_err(io)?;
    // Only regular files are read: a FIFO would block the read until something writes to it
    // (forever, in a definitions directory), and a device may never end.
    let kind = file.metadata().map_err(io)?.file_type();
    if !kind.is_file() {
        let why = format!("it is {}, not a regular file", describe(kind));
        if named {
            catalog.not_text(shown, &why);
        } else {
            catalog.skipped(shown, &why);
        }
        return Ok(());
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, MAX_FILE_BYTES + 1), &mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        catalog.not_text(
            shown,
            &format!(
                "it is larger than {} MiB, the most barge reads from one file",
                MAX_FILE_BYTES >> 20
            ),
        );
        return Ok(());
    }
    catalog.load_bytes(shown, &bytes);
    Ok(())
}

/// Opens a file for reading without waiting: opening a FIFO for reading otherwise blocks until
/// a writer opens it. (Non-blocking mode has no effect on reads of regular files.)
fn open_without_blocking(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    options.open(path)
}

fn describe(kind: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
    }
    if kind.is_dir() { "a directory" } else { "a special file" }
}

/// `.yaml`/`.yml` files below `dir`, sorted, skipping `.git` directories.
pub fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let p = entry.path();
            let ty = entry.file_type()?;
            if ty.is_dir() {
                // A mounted ConfigMap or Secret keeps each version in a `..<timestamp>` directory
                // behind the `..data` link, and links every key at the top (kubelet's
                // AtomicWriter, pkg/volume/util/atomic_writer.go): reading those directories
                // would load every file twice.
                let name = entry.file_name();
                if name != ".git" && !name.as_encoded_bytes().starts_with(b"..") {
                    todo.push(p);
                }
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn load_git(
    url: &str,
    reference: Option<&str>,
    path: &str,
    catalog: &mut Catalog,
    timeout: Duration,
) -> Result<(), SourceError> {
    let shown_url = redact_url(url);
    let checkout = fetch(url, reference, timeout)?;
    let root = checkout.path().join(path);
    if !root.exists() {
        return Err(SourceError::GitPathNotFound {
            url: shown_url,
            path: path.to_string(),
        });
    }
    let shown = if path.is_empty() {
        shown_url
    } else {
        format!("{shown_url}//{path}")
    };
    load_path(&root, &shown, catalog)
}

/// Fetches `reference` (default: the remote's HEAD) of `url` into a temporary directory, with
/// barge-git's runner: non-interactive, a URL's userinfo through askpass, each git command
/// within `timeout`.
fn fetch(url: &str, reference: Option<&str>, timeout: Duration) -> Result<tempfile::TempDir, SourceError> {
    let err = |message: &str| SourceError::Git {
        url: redact_url(url),
        reference: reference.map(str::to_string),
        message: message.to_string(),
    };
    let dir = tempfile::Builder::new()
        .prefix("barge-source-")
        .tempdir()
        .map_err(|e| err(&e.to_string()))?;
    let git = |args: &[&str]| barge_git::git_blocking(dir.path(), args, url, timeout).map(drop);
    let failed = |e: barge_git::GitError| err(e.message());
    git(&["init", "-q"]).map_err(failed)?;
    let want = reference.unwrap_or("HEAD");
    // Shallow first; a server that refuses to serve an arbitrary commit shallowly gets a full
    // fetch of everything and a checkout of the commit. A server that did not answer in time
    // is not asked again.
    match git(&["fetch", "-q", "--depth", "1", url, want]) {
        Ok(()) => {}
        Err(e @ barge_git::GitError::TimedOut { .. }) => return Err(failed(e)),
        Err(_) => {
            git(&[
                "fetch",
                "-q",
                url,
                "+refs/heads/*:refs/remotes/origin/*",
                "+refs/tags/*:refs/tags/*",
            ])
            .map_err(failed)?;
            git(&["-c", "advice.detachedHead=false", "checkout", "-q", want]).map_err(|e| {
                let said = e.message();
                if said.contains("did not match") || said.contains("reference is not a tree") {
                    err(&format!("no branch, tag or commit named {want:?}"))
                } else {
                    failed(e)
                }
            })?;
            return Ok(dir);
        }
    }
    git(&["-c", "advice.detachedHead=false", "checkout", "-q", "FETCH_HEAD"]).map_err(failed)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mounted_config_map_is_read_once_through_its_key_links() {
        // The layout kubelet writes for a ConfigMap volume with the key app.yaml.
        let dir = tempfile::tempdir().unwrap();
        let version = dir.path().join("..2026_12_06_00_00_00.000000001");
        std::fs::create_dir(&version).unwrap();
        std::fs::write(version.join("app.yaml"), "kind: Project\n").unwrap();
        std::os::unix::fs::symlink(version.file_name().unwrap(), dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/app.yaml", dir.path().join("app.yaml")).unwrap();
        std::fs::create_dir(dir.path().join("nested")).unwrap();
        std::fs::write(dir.path().join("nested/stage.yml"), "kind: Stage\n").unwrap();

        let files = yaml_files(dir.path()).unwrap();
        assert_eq!(
            files,
            vec![dir.path().join("app.yaml"), dir.path().join("nested/stage.yml")]
        );
    }

    #[test]
    fn parses_kustomize_style_git_sources() {
        assert_eq!(
            parse_source("https://git.example.com/org/config.git//kargo/dev?ref=v1.2"),
            Source::Git {
                url: "https://git.example.com/org/config.git".into(),
                reference: Some("v1.2".into()),
                path: "kargo/dev".into()
            }
        );
        assert_eq!(
            parse_source("file:///tmp/repo.git"),
            Source::Git {
                url: "file:///tmp/repo.git".into(),
                reference: None,
                path: String::new()
            }
        );
        assert_eq!(
            parse_source("file:///tmp/repo.git//pipelines?ref=main"),
            Source::Git {
                url: "file:///tmp/repo.git".into(),
                reference: Some("main".into()),
                path: "pipelines".into()
            }
        );
        assert_eq!(parse_source("pipelines/"), Source::Path(PathBuf::from("pipelines/")));
    }
}
