//! The CLI's contexts (issue #16): named servers, each with the file its token is in and a
//! default project, in `$XDG_CONFIG_HOME/barge/config.yaml` (`~/.config/barge/config.yaml`;
//! BARGE_CLI_CONFIG names another file). `barge config` and `barge login` edit it, as
//! kubectl's contexts are edited; a verb without --server, --db, BARGE_SERVER or BARGE_DB asks
//! the current context's server. Only the token file's path is stored, never a token.

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The variable naming the contexts file instead of the default one. Not BARGE_CONFIG: that
/// names barge's configuration file (registries, git, secrets; docs/reference/config.md).
pub const FILE_VAR: &str = "BARGE_CLI_CONFIG";

/// The contexts file.
#[derive(Serialize, Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Contexts {
    /// The context verbs use when they are told no server and no store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    #[serde(default)]
    pub contexts: Vec<Context>,
}

/// A server to ask, how to authenticate to it and the project verbs act in by default.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Context {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The file the bearer token is in (read at each call; the token itself is never stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

/// Where the contexts are: BARGE_CLI_CONFIG, else `$XDG_CONFIG_HOME/barge/config.yaml` (XDG
/// Base Directory specification), else `~/.config/barge/config.yaml`.
pub fn path() -> Result<PathBuf> {
    if let Some(file) = std::env::var_os(FILE_VAR).filter(|f| !f.is_empty()) {
        return Ok(PathBuf::from(file));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        // The specification: a relative path is invalid and is to be ignored.
        .filter(|d| d.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })
        .with_context(|| format!("no contexts file: neither XDG_CONFIG_HOME nor HOME is set (or set {FILE_VAR})"))?;
    Ok(config.join("barge").join("config.yaml"))
}

impl Contexts {
    /// The contexts in `file`; none when it does not exist. A file that is not a contexts
    /// file is an error naming FILE:LINE:COLUMN.
    pub fn load(file: &Path) -> Result<Contexts> {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Contexts::default()),
            Err(e) => bail!("cannot read the contexts file {}: {e}", file.display()),
        };
        if text.trim().is_empty() {
            return Ok(Contexts::default());
        }
        let contexts: Contexts = yaml_serde::from_str(&text).map_err(|e| {
            let message = e.to_string();
            // The place leads instead, as a compiler's does.
            let message = message.rsplit_once(" at line ").map_or(message.as_str(), |(m, _)| m);
            match e.location() {
                Some(at) => anyhow::anyhow!("{}:{}:{}: {message}", file.display(), at.line(), at.column()),
                None => anyhow::anyhow!("{}: {message}", file.display()),
            }
        })?;
        let mut names: Vec<&str> = contexts.contexts.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        if let Some(twice) = names.windows(2).find(|w| w[0] == w[1]) {
            bail!("{}: two contexts are named {:?}", file.display(), twice[0]);
        }
        if names.first() == Some(&"") {
            bail!("{}: a context has an empty name", file.display());
        }
        Ok(contexts)
    }

    /// Writes the contexts to `file` whole or not at all (a new file renamed over it), with
    /// the directory made when missing.
    pub fn save(&self, file: &Path) -> Result<()> {
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
        let mut new =
            tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write in {}", dir.display()))?;
        std::io::Write::write_all(&mut new, yaml_serde::to_string(self)?.as_bytes())?;
        new.persist(file)
            .with_context(|| format!("cannot write the contexts file {}", file.display()))?;
        Ok(())
    }

    /// The context named `name`, or an error listing those there are.
    pub fn named(&self, name: &str, file: &Path) -> Result<&Context> {
        self.contexts.iter().find(|c| c.name == name).with_context(|| {
            format!(
                "no context named {name:?} in {} (contexts: {}); `barge config set-context {name} --server URL` adds it",
                file.display(),
                self.names()
            )
        })
    }

    /// The current context, when one is set; an error when it names none of the contexts.
    pub fn current(&self, file: &Path) -> Result<Option<&Context>> {
        self.current_context
            .as_deref()
            .map(|name| {
                self.named(name, file)
                    .with_context(|| format!("the current context of {} is {name:?}", file.display()))
            })
            .transpose()
    }

    fn names(&self) -> String {
        if self.contexts.is_empty() {
            return "none".into();
        }
        let names: Vec<&str> = self.contexts.iter().map(|c| c.name.as_str()).collect();
        names.join(", ")
    }

    /// Adds the context, or changes the fields `changes` sets of the one of its name.
    pub fn set(&mut self, changes: Context) {
        match self.contexts.iter_mut().find(|c| c.name == changes.name) {
            Some(c) => {
                c.server = changes.server.or(c.server.take());
                c.token_file = changes.token_file.or(c.token_file.take());
                c.project = changes.project.or(c.project.take());
            }
            None => self.contexts.push(changes),
        }
    }
}

/// The current context of the contexts file, when one is set.
pub fn current() -> Result<Option<Context>> {
    let file = path()?;
    Ok(Contexts::load(&file)?.current(&file)?.cloned())
}
