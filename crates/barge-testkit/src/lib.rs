//! barge's shared test support, used by every crate's tests as a dev-dependency: real
//! components started on loopback ports in temp dirs (no mocks), and fixtures.
//!
//! - [`fixtures`]: the workspace's root, the real-world corpus, Freight from a Warehouse.
//! - [`git`]: the git CLI with a fixed identity, `git daemon`, smart HTTP behind nginx.
//! - [`registry`]: a CNCF distribution registry, OCI image pushes, a fault-injecting proxy.
//! - [`forge`]: a test forge answering the pull-request calls of GitHub, GitLab, Gitea,
//!   Azure DevOps and Bitbucket Cloud over real bare repositories (merges made with git),
//!   and GitHub's `pull_request` webhook payload.
//! - [`github`]: an API-faithful test server for GitHub's Git database endpoints over real
//!   bare repositories.
//! - [`kube`]: a Kubernetes API server in memory, and controllers for Argo CD, Rollouts, Jobs.
//! - [`metrics`]: barge's `/metrics` scraped, its samples read with their labels.
//! - [`postgres`]: a PostgreSQL server per test binary, a fresh database per test.
//! - [`prometheus`]: a real Prometheus serving backfilled counters with known rates.
//! - [`notify`]: receivers for notifications: an HTTP receiver (Slack/generic webhooks) and
//!   an SMTP server (aiosmtpd).
//! - [`oidc`]: an OpenID Connect issuer with real RSA and EC keys, its JWKS, key rotation
//!   and the authorization-code flow with PKCE.
//! - [`web`]: python3's http.server serving a directory (a health endpoint to flip).
//! - [`proxy`]: a forward HTTP proxy (tinyproxy) whose log shows what it forwarded.
//! - [`runtime`]: a tokio runtime on threads of its own, which the in-process servers above
//!   run on, so a test that blocks (a `barge` process, a poll loop's sleep) cannot stall them.
//!
//! Starting a server waits until it answers, and returns then; the deadline of that wait (a
//! minute) is reached only when the server cannot start, not by a loaded 2-core machine on
//! which python3, nginx or chromedriver take seconds to come up.
//!
//! It depends on no barge crate but barge-core, so any crate can use it without a cycle.
#![forbid(unsafe_code)]

pub mod browser;
pub mod fixtures;
pub mod forge;
pub mod git;
pub mod github;
pub mod kube;
pub mod metrics;
pub mod notify;
pub mod oidc;
pub mod postgres;
pub mod prometheus;
pub mod proxy;
pub mod registry;
pub mod runtime;
pub mod web;

/// A loopback port nothing listens on (at the time of asking).
/// A self-signed certificate for 127.0.0.1 (made with openssl, valid one day) and its key:
/// `dir/cert.pem`, `dir/key.pem`.
pub fn self_signed_cert(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-keyout", key.to_str().unwrap(), "-out", cert.to_str().unwrap()])
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (cert, key)
}

/// A loopback port nothing listens on now, for a server a test starts next. Never the same
/// port twice in one test process: two tests running side by side could otherwise both be
/// handed a port before either binds it, and one's readiness probe would be answered by the
/// other's server. (Another process may still take it first; servers that can pick their own
/// port and report it, as `SmtpServer` does, need no port from here.)
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if HANDED_OUT.lock().unwrap().insert(port) {
            return port;
        }
    }
}
