//! Runs Argo Rollouts AnalysisTemplates natively, without a cluster.
//!
//! The decisions (conditions, counters, limits, when the next measurement is due, the run's
//! phase) are `barge_core::analysis`'s pure functions; this crate adds the IO around them:
//! - [`prometheus`] and [`web`] take one measurement each (the providers), over one shared
//!   HTTP layer ([`http`]) for headers, timeouts, TLS and authentication; [`job`] runs a
//!   measurement as a Kubernetes Job;
//! - [`run`] prepares a run from templates and arguments and drives it to a final phase,
//!   measuring due metrics concurrently, honouring `initialDelay`, `interval` (from the
//!   previous measurement's end) and Rollouts' 10 s error retry, and reporting each
//!   measurement as it lands.
//!
//! Secret argument values are redacted from every resolved query, value and message.

#![forbid(unsafe_code)]

pub mod cluster;
pub mod http;
pub mod job;
pub mod prometheus;
pub mod run;
pub mod web;

use barge_core::ErrorClass;

pub use run::{Analysis, Measurement, MetricReport, Providers, Report, run};

/// Why a measurement could not be taken. Every one makes the measurement **Error** (Rollouts
/// semantics); the class tells logs and metrics what kind of fault it was.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// The provider's configuration cannot work (no address, a bad URL, an unsupported field).
    #[error("{0}")]
    Invalid(String),
    /// The network, a timeout, or a 5xx answer.
    #[error("{0}")]
    Transient(String),
    /// Credentials missing or refused (401/403).
    #[error("{0}")]
    Auth(String),
    /// The answer cannot be read as a measurement (not JSON, an unsupported result type).
    #[error("{0}")]
    Unreadable(String),
}

impl MeasureError {
    pub fn class(&self) -> ErrorClass {
        match self {
            MeasureError::Invalid(_) | MeasureError::Unreadable(_) => ErrorClass::Invalid,
            MeasureError::Transient(_) => ErrorClass::Transient,
            MeasureError::Auth(_) => ErrorClass::Auth,
        }
    }
}
