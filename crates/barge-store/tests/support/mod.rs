//! Helpers shared by the store's conformance suite and its benchmark.

use barge_store::Backend;
use barge_testkit::postgres::{postgres_url, sqlite_url};

/// A fresh, empty database URL for each test, on `backend`.
pub fn url(backend: Backend, dir: &tempfile::TempDir) -> String {
    match backend {
        Backend::Sqlite => sqlite_url(dir),
        Backend::Postgres => postgres_url(),
    }
}
