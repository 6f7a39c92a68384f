//! The test Kubernetes API server and test controllers.

pub mod apiserver;
pub mod controllers;
pub mod fields;
