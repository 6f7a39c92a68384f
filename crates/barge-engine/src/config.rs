//! barge's own configuration file (`--config`, `BARGE_CONFIG`): how to reach registries and
//! repositories, as opposed to the pipeline definitions. Secrets are never written here, only
//! where to read them (an environment variable or a file).
//!
//! ```yaml
//! registries:
//!   rateLimit: 20                  # requests per second per host
//!   plainHTTP: [registry.internal:5000]
//!   credentials:
//!     - prefix: ghcr.io/acme/      # or regex: ^registry\.internal/
//!       username: bot
//!       passwordFrom: {env: GHCR_TOKEN}   # or {file: /run/secrets/ghcr}
//! rewrites:
//!   - {from: ghcr.io/barge-demo/, to: 127.0.0.1:5000/barge-demo/}
//! ```

use crate::error::{EngineError, invalid};
use barge_registry::{CredentialRule, SecretSource};
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    #[serde(default)]
    pub registries: Registries,
    #[serde(default)]
    pub rewrites: Vec<RewriteEntry>,
    #[serde(default)]
    pub git: Git,
    /// Values promotion steps read with `configMap(name)` / `sharedConfigMap(name)`.
    #[serde(default)]
    pub config_maps: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    /// Secrets steps read with `secret(name)` / `sharedSecret(name)`: each key names where its
    /// value is read from (never the value itself).
    #[serde(default)]
    pub secrets: std::collections::BTreeMap<String, std::collections::BTreeMap<String, PasswordFrom>>,
}

/// How promotions write to config repositories.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Git {
    /// The identity of barge's commits (default `barge <barge@localhost>`).
    pub author: Option<GitAuthor>,
    /// HTTPS credentials for repositories (the password is also the token PR steps use).
    #[serde(default)]
    pub credentials: Vec<CredentialEntry>,
    /// PR API addresses for self-hosted providers, by repository URL prefix.
    #[serde(default, rename = "prAPIs")]
    pub pr_apis: Vec<PrApi>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitAuthor {
    pub name: String,
    pub email: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrApi {
    pub prefix: String,
    pub url: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Registries {
    pub rate_limit: Option<f64>,
    #[serde(default, rename = "plainHTTP")]
    pub plain_http: Vec<String>,
    #[serde(default)]
    pub credentials: Vec<CredentialEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CredentialEntry {
    pub prefix: Option<String>,
    pub regex: Option<String>,
    pub username: String,
    pub password_from: PasswordFrom,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordFrom {
    pub env: Option<String>,
    pub file: Option<std::path::PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteEntry {
    pub from: String,
    pub to: String,
}

/// What the command line adds to the configuration file's registry settings.
pub struct RegistryFlags<'a> {
    pub rewrites: &'a [barge_registry::Rewrite],
    pub plain_http: &'a [String],
    /// Overrides the file's rate limit when given.
    pub rate_limit: Option<f64>,
    pub page_size: Option<u32>,
}

impl Config {
    /// The registry configuration: the file's, then the flags (which add rewrites and
    /// plain-HTTP hosts, and override the rate limit when given).
    pub fn registry_config(&self, flags: &RegistryFlags<'_>) -> barge_registry::RegistryConfig {
        let mut rewrites: Vec<barge_registry::Rewrite> = self
            .rewrites
            .iter()
            .map(|r| barge_registry::Rewrite {
                from: r.from.clone(),
                to: r.to.clone(),
            })
            .collect();
        rewrites.extend(flags.rewrites.iter().cloned());
        let mut plain = self.registries.plain_http.clone();
        plain.extend(flags.plain_http.iter().cloned());
        barge_registry::RegistryConfig {
            rewrites,
            plain_http_hosts: plain,
            rate_limit: flags.rate_limit.or(self.registries.rate_limit).unwrap_or(20.0),
            page_size: flags.page_size,
            credentials: self.credential_rules(),
            ..Default::default()
        }
    }

    /// The configuration file at `path`; an [`EngineError::Invalid`] naming the file and what
    /// is wrong with it when it cannot be read or used.
    pub fn load(path: &Path) -> Result<Config, EngineError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| EngineError::Invalid(format!("cannot read the config file {}: {e}", path.display())))?;
        let config: Config = yaml_serde::from_str(&text)
            .map_err(|e| EngineError::Invalid(format!("{} is not a valid barge config: {e}", path.display())))?;
        let all = config
            .registries
            .credentials
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("registries.credentials[{i}]"), c))
            .chain(
                config
                    .git
                    .credentials
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (format!("git.credentials[{i}]"), c)),
            );
        for (entry, c) in all {
            let place = format!("{}: {entry}", path.display());
            match (&c.prefix, &c.regex) {
                (Some(_), Some(_)) | (None, None) => {
                    return invalid!("{place}: set exactly one of `prefix` and `regex`");
                }
                (_, Some(r)) => {
                    regex::Regex::new(r)
                        .map_err(|e| EngineError::Invalid(format!("{place}: invalid regex {r:?}: {e}")))?;
                }
                _ => {}
            }
            if c.password_from.env.is_some() == c.password_from.file.is_some() {
                return invalid!("{place}: passwordFrom needs exactly one of `env` and `file`");
            }
        }
        Ok(config)
    }

    /// The secrets, read now from their environment variables and files; an
    /// [`EngineError::Invalid`] naming the secret whose source cannot be read.
    pub fn read_secrets(
        &self,
    ) -> Result<std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>, EngineError> {
        let mut out = std::collections::BTreeMap::new();
        for (name, keys) in &self.secrets {
            let mut values = std::collections::BTreeMap::new();
            for (key, from) in keys {
                let value = match (&from.env, &from.file) {
                    (Some(var), None) => std::env::var(var).map_err(|e| {
                        EngineError::Invalid(format!(
                            "secret {name}.{key}: environment variable {var} is not set: {e}"
                        ))
                    })?,
                    (None, Some(file)) => std::fs::read_to_string(file)
                        .map_err(|e| {
                            EngineError::Invalid(format!("secret {name}.{key}: cannot read {}: {e}", file.display()))
                        })?
                        .trim_end_matches(['\n', '\r'])
                        .to_string(),
                    _ => return invalid!("secret {name}.{key}: set exactly one of `env` and `file`"),
                };
                values.insert(key.clone(), value);
            }
            out.insert(name.clone(), values);
        }
        Ok(out)
    }

    /// The registry credential rules, compiled.
    pub fn credential_rules(&self) -> Vec<CredentialRule> {
        compile_rules(&self.registries.credentials)
    }

    /// The git credential rules, compiled.
    pub fn git_credential_rules(&self) -> Vec<CredentialRule> {
        compile_rules(&self.git.credentials)
    }
}

fn compile_rules(entries: &[CredentialEntry]) -> Vec<CredentialRule> {
    entries
        .iter()
        .map(|c| CredentialRule {
            prefix: c.prefix.clone(),
            regex: c.regex.as_deref().and_then(|r| regex::Regex::new(r).ok()),
            username: c.username.clone(),
            password: match (&c.password_from.env, &c.password_from.file) {
                (Some(var), _) => SecretSource::Env(var.clone()),
                (_, Some(file)) => SecretSource::File(file.clone()),
                (None, None) => SecretSource::Env(String::new()),
            },
        })
        .collect()
}

/// The credentials the running definitions wrote in their git URLs
/// (`repoURL: https://bot:TOKEN@host/x.git`). Loading took them out of the text
/// (`barge_core::secret::UrlCredentials`), so the store, plans and output never see them: they
/// live in this process's memory only. Promotions and discovery share one; a daemon's reload
/// replaces its content with the new definitions'.
#[derive(Clone, Default)]
pub struct DefinedCredentials(std::sync::Arc<std::sync::RwLock<barge_core::secret::UrlCredentials>>);

impl DefinedCredentials {
    pub fn of(catalog: &barge_core::Catalog) -> DefinedCredentials {
        let defined = DefinedCredentials::default();
        defined.adopt(catalog);
        defined
    }

    /// Replaces the credentials with those of `catalog` (definitions now running).
    pub fn adopt(&self, catalog: &barge_core::Catalog) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = catalog.url_credentials.clone();
    }

    /// The git credentials of a repository URL (as written, before rewrites): those its URL
    /// carried in the definitions, else the configuration's rules (a URL written with a
    /// username only takes the rule's password, as git did).
    pub fn lookup(&self, rules: Vec<CredentialRule>) -> barge_git::CredentialLookup {
        let defined = self.clone();
        std::sync::Arc::new(move |url: &str| {
            let own = defined
                .0
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(url)
                .cloned();
            barge_core::secret::with_configured(own, || barge_registry::rule_credentials(&rules, url))
        })
    }

    /// The credentials an HTTP request to a URL sends (the `http` steps): those of the longest
    /// URL the definitions wrote that it is or extends (`UrlCredentials::for_request`). Git's
    /// configured rules are for git, not for these.
    pub fn for_requests(&self) -> barge_git::CredentialLookup {
        let defined = self.clone();
        std::sync::Arc::new(move |url: &str| {
            defined
                .0
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .for_request(url)
                .cloned()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unusable_config_file_is_invalid_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.yaml");
        let e = Config::load(&missing).unwrap_err();
        assert_eq!(e.class(), Some(barge_core::ErrorClass::Invalid));
        assert!(
            e.to_string()
                .starts_with(&format!("cannot read the config file {}: ", missing.display())),
            "{e}"
        );

        let both = dir.path().join("both.yaml");
        let text = "registries:\n  credentials:\n    - {prefix: a/, regex: b, username: u, passwordFrom: {env: X}}\n";
        std::fs::write(&both, text).unwrap();
        let e = Config::load(&both).unwrap_err();
        assert_eq!(e.class(), Some(barge_core::ErrorClass::Invalid));
        assert_eq!(
            e.to_string(),
            format!(
                "{}: registries.credentials[0]: set exactly one of `prefix` and `regex`",
                both.display()
            )
        );
    }
}
