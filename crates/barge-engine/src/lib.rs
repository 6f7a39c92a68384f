//! barge's use cases over the store and the edge crates: discovery passes ([`discover`]),
//! promotions ([`promote`]), verification ([`verify`]), each Stage's status ([`pipeline`]) and
//! the operations people run on a pipeline ([`ops`]). The CLI (`barge`) and the daemon
//! (`barge-server`) drive it; it knows neither command lines nor HTTP.

#![forbid(unsafe_code)]

pub mod access;
pub mod answer;
pub mod config;
pub mod diagnostics;
pub mod discover;
pub mod dryrun;
pub mod error;
pub mod events;
pub mod format;
pub mod notify;
pub mod oidc;
pub mod ops;
pub mod pipeline;
pub mod promote;
pub mod resource;
pub mod stats;
pub mod tokens;
pub mod verify;

pub use answer::Answer;
pub use error::EngineError;

use barge_core::Catalog;

/// Loads and validates sources (the CLI's verbs and the daemon's reload); each git command of
/// a Git source within BARGE_SOURCE_TIMEOUT (a Go duration), 2 minutes by default.
pub fn load_catalog(paths: &[String]) -> Result<Catalog, barge_source::SourceError> {
    let git_timeout = std::env::var("BARGE_SOURCE_TIMEOUT")
        .ok()
        .and_then(|d| barge_core::duration::parse_go_duration(&d).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(barge_source::DEFAULT_GIT_TIMEOUT);
    barge_source::load_catalog(paths, git_timeout)
}

/// The definitions `barge serve` last recorded in the store, loaded and validated.
pub async fn stored_definitions(store: &barge_store::Store) -> Result<Option<Catalog>, EngineError> {
    Ok(store.latest_definitions().await?.map(|d| {
        let mut catalog = Catalog::default();
        for (file, text) in &d.texts {
            catalog.load_text(file, text);
        }
        barge_core::validate::validate(&mut catalog);
        catalog
    }))
}

/// The store used without `--db`: `$XDG_DATA_HOME/barge/barge.db` (XDG Base Directory
/// specification; `~/.local/share` when unset). Not the current directory: barge is run in
/// config repositories, and a store there would be committed by the next `git add -A`.
pub fn default_db() -> Result<String, EngineError> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(std::path::PathBuf::from)
        // The specification: a relative path is invalid and is to be ignored.
        .filter(|d| d.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| std::path::PathBuf::from(h).join(".local/share"))
        })
        .ok_or_else(|| {
            EngineError::Invalid(
                "no default store: neither XDG_DATA_HOME nor HOME is set; give --db URL (or BARGE_DB)".into(),
            )
        })?;
    Ok(format!("sqlite://{}", data.join("barge").join("barge.db").display()))
}

/// The file of a SQLite store that has never been written (so there is nothing to read in it),
/// or None when it exists or the store is PostgreSQL.
pub fn unwritten_store(url: &str) -> Option<std::path::PathBuf> {
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let file = std::path::PathBuf::from(path.split('?').next().unwrap_or(path));
    (!file.exists()).then_some(file)
}

/// Where the repository cache and promotions' work directories live without `--work-dir`:
/// `$XDG_CACHE_HOME/barge`, `~/.cache/barge`, or `.barge` when neither is known.
pub fn default_work_dir() -> std::path::PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))
        .map_or_else(|| std::path::PathBuf::from(".barge"), |c| c.join("barge"))
}
