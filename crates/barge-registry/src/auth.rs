//! Where registry credentials come from: barge's own rules (matched by repository prefix or
//! regex, secrets read from the environment or a file), then docker's `config.json` (`auths`,
//! `credHelpers`, `credsStore`). Secrets are never formatted: [`Credentials`]'s Debug hides
//! the password.

use base64::Engine;
use std::path::PathBuf;
use std::process::Stdio;

pub use barge_core::secret::Credentials;

/// Where a secret is read from (never written in barge's configuration itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

impl SecretSource {
    fn read(&self) -> Option<String> {
        match self {
            SecretSource::Env(var) => std::env::var(var).ok(),
            SecretSource::File(path) => std::fs::read_to_string(path)
                .ok()
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string()),
        }
    }
}

/// Credentials for repositories whose URL starts with `prefix` (or matches `regex`).
#[derive(Clone, Debug)]
pub struct CredentialRule {
    pub prefix: Option<String>,
    pub regex: Option<regex::Regex>,
    pub username: String,
    pub password: SecretSource,
}

impl CredentialRule {
    fn matches(&self, repo: &str) -> bool {
        self.prefix.as_deref().is_some_and(|p| repo.starts_with(p))
            || self.regex.as_ref().is_some_and(|r| r.is_match(repo))
    }
}

/// The credentials of the first rule matching `url` (a registry repository or a git URL),
/// with the secret read now.
pub fn rule_credentials(rules: &[CredentialRule], url: &str) -> Option<Credentials> {
    let rule = rules.iter().find(|r| r.matches(url))?;
    Some(Credentials {
        username: rule.username.clone(),
        password: rule.password.read()?,
    })
}

/// Finds credentials for a repository (`repo` as written in the subscription, `host` the
/// registry host actually contacted).
/// `helper_path` replaces `PATH` when looking for `docker-credential-*` helpers.
pub(crate) async fn lookup(
    rules: &[CredentialRule],
    docker_config: Option<&PathBuf>,
    helper_path: Option<&std::ffi::OsStr>,
    repo: &str,
    host: &str,
) -> Option<Credentials> {
    for rule in rules.iter().filter(|r| r.matches(repo)) {
        if let Some(password) = rule.password.read() {
            return Some(Credentials {
                username: rule.username.clone(),
                password,
            });
        }
    }
    let path = docker_config.cloned().or_else(default_docker_config)?;
    let text = tokio::fs::read_to_string(&path).await.ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    let keys = [
        host.to_string(),
        format!("https://{host}"),
        format!("http://{host}"),
        format!("https://{host}/v1/"),
    ];
    if let Some(helper) = keys.iter().find_map(|k| config["credHelpers"][k].as_str()) {
        return helper_get(helper, host, helper_path).await;
    }
    for k in &keys {
        let entry = &config["auths"][k];
        if let Some(auth) = entry["auth"].as_str() {
            let decoded = base64::engine::general_purpose::STANDARD.decode(auth).ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (u, p) = text.split_once(':')?;
            return Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            });
        }
        if let (Some(u), Some(p)) = (entry["username"].as_str(), entry["password"].as_str()) {
            return Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            });
        }
    }
    if let Some(store) = config["credsStore"].as_str() {
        return helper_get(store, host, helper_path).await;
    }
    None
}

fn default_docker_config() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// `docker-credential-<helper> get`, with the server on stdin, as docker does.
async fn helper_get(helper: &str, host: &str, path: Option<&std::ffi::OsStr>) -> Option<Credentials> {
    use tokio::io::AsyncWriteExt;
    let mut command = tokio::process::Command::new(format!("docker-credential-{helper}"));
    if let Some(path) = path {
        command.env("PATH", path);
    }
    let mut child = command
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(host.as_bytes()).await.ok()?;
    let out = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait_with_output())
        .await
        .ok()?
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(Credentials {
        username: v["Username"].as_str()?.to_string(),
        password: v["Secret"].as_str()?.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rules_then_docker_config_then_helpers() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "from-file\n").unwrap();
        let rules = vec![CredentialRule {
            prefix: Some("ghcr.io/acme/".into()),
            regex: None,
            username: "acme".into(),
            password: SecretSource::File(secret),
        }];
        let found = lookup(
            &rules,
            Some(&dir.path().join("none.json")),
            None,
            "ghcr.io/acme/app",
            "ghcr.io",
        )
        .await
        .unwrap();
        assert_eq!(
            (found.username.as_str(), found.password.as_str()),
            ("acme", "from-file")
        );

        let cfg = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            &cfg,
            format!(r#"{{"auths": {{"127.0.0.1:5000": {{"auth": "{auth}"}}}}}}"#),
        )
        .unwrap();
        let found = lookup(&[], Some(&cfg), None, "127.0.0.1:5000/demo/app", "127.0.0.1:5000")
            .await
            .unwrap();
        assert_eq!((found.username.as_str(), found.password.as_str()), ("alice", "s3cret"));
        assert!(lookup(&[], Some(&cfg), None, "other.io/x", "other.io").await.is_none());

        // A credential helper is an executable on PATH.
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let helper = bin.join("docker-credential-barge-test");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread host\necho \"{\\\"Username\\\":\\\"helper-user\\\",\\\"Secret\\\":\\\"for-$host\\\"}\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(&cfg, r#"{"credHelpers": {"helped.io": "barge-test"}}"#).unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let found = lookup(
            &[],
            Some(&cfg),
            Some(std::ffi::OsStr::new(&path)),
            "helped.io/x",
            "helped.io",
        )
        .await
        .unwrap();
        assert_eq!(
            (found.username.as_str(), found.password.as_str()),
            ("helper-user", "for-helped.io")
        );
    }
}
