//! `barge serve`: the daemon ([`serve`]) that runs the engine's pipeline continuously, and the
//! bearer-token HTTP API ([`api`]) through which the CLI's `--server` runs the engine's
//! operations on it.
//!
//! Every file denies unsafe code (the workspace lint); the one exception is [`memory`], whose
//! two glibc calls are allowed one by one.

#![deny(unsafe_code)]

pub mod api;
pub mod memory;
pub mod metrics;
mod notify;
mod replicas;
pub mod rest;
pub mod serve;
mod ui;
pub mod webhook;
