//! barge's pure core: the resource model, YAML with positions, loading and validation,
//! Masterminds semver constraints, Go durations, expression parsing, the pipeline plan.
//!
//! Architecture invariant: nothing here does IO (no files, network, clock or processes), so
//! every function is deterministic and testable with plain values. Edge crates read sources
//! and hand text in ([`load::Catalog::load_text`]).

#![forbid(unsafe_code)]

extern crate self as barge_core;

pub mod analysis;
pub mod approval;
pub mod authz;
pub mod criteria;
pub mod delivery;
pub mod diag;
pub mod duration;
pub mod error_class;
pub mod eval;
pub mod expr;
pub mod freight;
pub mod glob;
pub mod health;
pub mod load;
pub mod model;
pub mod notify;
pub mod plan;
pub mod promotion;
pub mod retry;
pub mod rewrite;
pub mod schedule;
pub mod schema;
pub mod secret;
pub mod select;
pub mod semver;
pub mod stage;
pub mod step_config;
pub mod steps;
pub mod validate;
pub mod webhook;
pub mod window;
pub mod yaml;
pub mod yamlmut;

pub use diag::{Code, Diagnostic, Severity};
pub use error_class::ErrorClass;
pub use load::{Catalog, Resource};
