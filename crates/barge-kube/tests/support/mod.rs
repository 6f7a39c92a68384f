//! The test Kubernetes API server and test controllers (shared with barge-promote's and the
//! end-to-end tests through `#[path]`).

#![allow(dead_code)]

pub mod apiserver;
pub mod controllers;
