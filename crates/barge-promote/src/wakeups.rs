//! Early wake-ups for steps that poll the world (issue #18): a step waiting on something an
//! inbound webhook announces (git-wait-for-pr on a pull request, keyed by its web URL) sleeps
//! until its next poll or until the announcement, whichever comes first, and then re-checks
//! at once. The poll stays the floor: an announcement lost (another replica runs the
//! promotion, or it came between the step's check and its sleep) only costs the poll interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;

/// The key a wait-for-approval step waits on: an approval of `freight` for `stage` wakes it.
pub fn approval_key(project: &str, stage: &str, freight: &str) -> String {
    format!("approval:{project}/{stage}/{freight}")
}

/// The keys steps of this process wait on now, each with the steps' shared wake-up.
#[derive(Default)]
pub struct Wakeups {
    waiting: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Wakeups {
    /// Wakes every step waiting on `key`; how many keys' waiters were woken (0 or 1).
    pub fn wake(&self, key: &str) -> usize {
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        match waiting.get(key) {
            Some(notify) => {
                notify.notify_waiters();
                1
            }
            None => 0,
        }
    }

    /// Waits `poll`, or less when `key` is woken meanwhile.
    pub async fn wait(&self, key: &str, poll: Duration) {
        let notify = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.to_string())
            .or_default()
            .clone();
        // Registered from its creation: a wake between here and the first poll counts.
        let woken = notify.notified();
        tokio::select! {
            () = woken => {}
            () = tokio::time::sleep(poll) => {}
        }
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        // The last waiter on the key removes it (the map holds one reference, this one another).
        if Arc::strong_count(&notify) == 2 {
            waiting.remove(key);
        }
    }

    /// Whether a step waits on `key` now.
    pub fn is_waited_on(&self, key: &str) -> bool {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_ends_the_wait_before_the_poll_and_only_for_its_key() {
        let w = Arc::new(Wakeups::default());
        let waiter = {
            let w = w.clone();
            tokio::spawn(async move { w.wait("https://forge/pull/1", Duration::from_secs(3600)).await })
        };
        let other = {
            let w = w.clone();
            tokio::spawn(async move { w.wait("https://forge/pull/2", Duration::from_secs(3600)).await })
        };
        while !(w.is_waited_on("https://forge/pull/1") && w.is_waited_on("https://forge/pull/2")) {
            tokio::task::yield_now().await;
        }
        assert_eq!(w.wake("https://forge/pull/3"), 0, "nobody waits on it");
        assert_eq!(w.wake("https://forge/pull/1"), 1);
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("woken long before its poll")
            .unwrap();
        assert!(
            !w.is_waited_on("https://forge/pull/1"),
            "the key is gone with its waiter"
        );
        assert!(!other.is_finished(), "another key's waiter sleeps on");
        other.abort();
    }
}
