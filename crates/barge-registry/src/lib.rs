//! OCI registry access for barge's Warehouses.
//!
//! A small client over reqwest rather than `oci-client`: discovery needs control over
//! every request (counting them, a per-host rate limit, retries honouring `Retry-After`,
//! following `Link: rel="next"` pagination), none of which `oci-client` exposes.
//!
//! - [`Registry`]: the HTTP client with auth (anonymous, basic, bearer-token challenges;
//!   credentials from barge rules, docker `config.json` and `docker-credential-*` helpers),
//!   retries, rate limits and repository URL rewrites.
//! - [`Registry::download_layer`], [`Registry::copy_artifact`]: one layer of an artifact into a
//!   file, and an image, chart or index copied between repositories (Kargo's `oci-download` and
//!   `oci-push` steps).
//! - [`discover`]: a subscription's candidates (tags, digests, build times), using the pure
//!   selection rules in `barge_core::select`.

#![forbid(unsafe_code)]

mod auth;
mod client;
pub mod discover;

pub use auth::{CredentialRule, Credentials, SecretSource, rule_credentials};
pub use client::transfer::{Copied, DownloadedLayer, OciReference};
pub use client::{
    RateLimitStatus, Registry, RegistryConfig, RepoRef, RequestEvent, RequestObserver, Rewrite, UrlCredentialLookup,
};

use std::time::Duration;

/// What went wrong talking to a registry, classified so callers can decide what to do.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A network fault or a server error that persisted through every retry.
    #[error("{url}: {message} (after {attempts} attempts)")]
    Transient {
        url: String,
        message: String,
        attempts: u32,
    },
    /// 429 through every retry.
    #[error("{url}: rate limited by the registry (after {attempts} attempts{})", retry_after.map(|d| format!("; it asks to wait {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        url: String,
        attempts: u32,
        retry_after: Option<Duration>,
    },
    /// Missing or rejected credentials.
    #[error("{url}: {message}")]
    Auth { url: String, message: String },
    #[error("{url}: not found")]
    NotFound { url: String },
    /// A response barge cannot use (bad JSON, missing digest), or a bad subscription.
    #[error("{url}: {message}")]
    Invalid { url: String, message: String },
}

impl RegistryError {
    /// A stable, low-cardinality class for metrics and status.
    pub fn class(&self) -> barge_core::ErrorClass {
        match self {
            RegistryError::Transient { .. } => barge_core::ErrorClass::Transient,
            RegistryError::RateLimited { .. } => barge_core::ErrorClass::RateLimited,
            RegistryError::Auth { .. } => barge_core::ErrorClass::Auth,
            RegistryError::NotFound { .. } => barge_core::ErrorClass::NotFound,
            RegistryError::Invalid { .. } => barge_core::ErrorClass::Invalid,
        }
    }
}

/// Installs ring as rustls's process-wide crypto provider (barge uses one provider everywhere).
/// Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
