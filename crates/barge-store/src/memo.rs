//! Values derived from a project's stored state, kept between reads while nothing they are
//! derived from changed: a daemon answering `GET …/stages` decides 300 Stages over 10,000
//! Freight, and re-reading every Freight head and re-indexing them per request cost most of
//! that request (BENCHMARKS.md, "REST API").
//!
//! A value is kept under the project's change counter ([`Store::project_version`]) read
//! before it was derived. Every write that changes a Stage's inputs raises the counter in its
//! own transaction, whichever process or replica makes it, so a read that finds the counter
//! where it was finds nothing newer to see; one that finds it moved derives the value again.
//! The check is one indexed row per read.

use crate::{Store, StoreError};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

type Key = (TypeId, String);
type Value = Arc<dyn Any + Send + Sync>;

/// The kept values of one store handle (shared by its clones), each with the counter it was
/// derived under.
#[derive(Default)]
pub(crate) struct Memo {
    entries: Mutex<HashMap<Key, (i64, Value)>>,
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self.entries.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("Memo").field("kept", &kept).finish()
    }
}

impl Memo {
    fn get(&self, key: &Key, version: i64) -> Option<Value> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(at, _)| *at == version)
            .map(|(_, v)| Arc::clone(v))
    }

    fn put(&self, key: Key, version: i64, value: Value) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        // Of two reads racing, the one derived under the newer counter stays.
        if entries.get(&key).is_none_or(|(at, _)| *at <= version) {
            entries.insert(key, (version, value));
        }
    }
}

impl Store {
    /// The value `derive` makes of `project`'s stored state, shared with earlier reads while
    /// the project's change counter has not moved since; derived again (and kept) when it has.
    /// One value per type and project. A store opened for one CLI call keeps nothing: it
    /// derives every time, without reading the counter.
    ///
    /// `derive` must read only state whose writes raise the counter (see
    /// [`Store::project_version`]), or its value goes stale.
    pub async fn derived<T, E, F, Fut>(&self, project: &str, derive: F) -> Result<Arc<T>, E>
    where
        T: Any + Send + Sync,
        E: From<StoreError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let Some(memo) = &self.memo else {
            return derive().await.map(Arc::new);
        };
        let version = self.project_version(project).await?;
        let key = (TypeId::of::<T>(), project.to_string());
        if let Some(kept) = memo.get(&key, version).and_then(|v| v.downcast::<T>().ok()) {
            return Ok(kept);
        }
        let value = Arc::new(derive().await?);
        memo.put(key, version, Arc::clone(&value) as Value);
        Ok(value)
    }
}
