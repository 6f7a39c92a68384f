//! Early wake-ups for steps that poll the world (issue #18): a step waiting on something an
//! inbound webhook announces (git-wait-for-pr on a pull request, keyed by its web URL as
//! `barge_core::webhook::pull_request_key` spells it) or an
//! approval records (wait-for-approval) sleeps until its next poll or until the announcement,
//! whichever comes first, and then re-checks at once.
//!
//! A wake is remembered for [`REMEMBERED`] (at most [`REMEMBERED_KEYS`] keys): a step whose
//! check began before the wake but which was not waiting yet when it came (the check was
//! still asking the forge) goes on at once instead of sleeping through it. The poll stays the
//! floor: an announcement this process never hears (another replica runs the promotion) only
//! costs the poll interval.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long a wake is remembered for a step that was still checking when it came.
pub const REMEMBERED: Duration = Duration::from_secs(600);
/// The most wakes remembered at once (the oldest are forgotten first).
pub const REMEMBERED_KEYS: usize = 4096;

/// The key a wait-for-approval step waits on: an approval of `freight` for `stage` wakes it.
pub fn approval_key(project: &str, stage: &str, freight: &str) -> String {
    format!("approval:{project}/{stage}/{freight}")
}

/// The keys steps of this process wait on now, each with the steps' shared wake-up, and the
/// keys woken lately.
#[derive(Default)]
pub struct Wakeups {
    waiting: Mutex<HashMap<String, Arc<Notify>>>,
    /// Oldest first: when each key was last woken.
    woken: Mutex<VecDeque<(Instant, String)>>,
}

impl Wakeups {
    /// Wakes every step waiting on `key`, and any step about to wait on it whose check began
    /// before now; how many keys' waiters were woken (0 or 1: 0 when no step waits yet).
    pub fn wake(&self, key: &str) -> usize {
        let now = Instant::now();
        {
            let mut woken = self.woken.lock().unwrap_or_else(PoisonError::into_inner);
            woken.retain(|(at, k)| k != key && now.duration_since(*at) < REMEMBERED);
            if woken.len() >= REMEMBERED_KEYS {
                woken.pop_front();
            }
            woken.push_back((now, key.to_string()));
        }
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        match waiting.get(key) {
            Some(notify) => {
                notify.notify_waiters();
                1
            }
            None => 0,
        }
    }

    /// Whether `key` was woken at or after `since` (and is still remembered).
    fn woken_since(&self, key: &str, since: Instant) -> bool {
        self.woken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|(at, k)| k == key && *at >= since)
    }

    /// Waits `poll`, or less when `key` is woken meanwhile; not at all when it was woken at
    /// or after `checked` (when the step began the check that decided to wait).
    pub async fn wait(&self, key: &str, checked: Instant, poll: Duration) {
        let notify = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.to_string())
            .or_default()
            .clone();
        // Registered from its creation: a wake from here on ends the wait, and one before it
        // is in `woken` (recorded before it notifies).
        let woken = notify.notified();
        if !self.woken_since(key, checked) {
            tokio::select! {
                () = woken => {}
                () = tokio::time::sleep(poll) => {}
            }
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
            tokio::spawn(async move {
                w.wait("https://forge/pull/1", Instant::now(), Duration::from_secs(3600))
                    .await
            })
        };
        let other = {
            let w = w.clone();
            tokio::spawn(async move {
                w.wait("https://forge/pull/2", Instant::now(), Duration::from_secs(3600))
                    .await
            })
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

    #[tokio::test]
    async fn a_wake_during_the_check_ends_the_wait_that_follows_it() {
        let w = Wakeups::default();
        let checked = Instant::now();
        // The PR was merged and announced while the step was still asking the forge.
        assert_eq!(w.wake("https://forge/pull/1"), 0, "nobody waits yet");
        tokio::time::timeout(
            Duration::from_secs(10),
            w.wait("https://forge/pull/1", checked, Duration::from_secs(3600)),
        )
        .await
        .expect("the wake during the check counts");
        assert!(!w.is_waited_on("https://forge/pull/1"));
        // A wake before the check began is not one the check missed: the wait sleeps.
        let later = Instant::now();
        let sleeping = tokio::time::timeout(
            Duration::from_millis(200),
            w.wait("https://forge/pull/1", later, Duration::from_secs(3600)),
        )
        .await;
        assert!(sleeping.is_err(), "an older wake does not end a newer wait");
        // Another key's wake does not count either.
        let checked = Instant::now();
        w.wake("https://forge/pull/2");
        let sleeping = tokio::time::timeout(
            Duration::from_millis(200),
            w.wait("https://forge/pull/1", checked, Duration::from_secs(3600)),
        )
        .await;
        assert!(sleeping.is_err());
    }

    #[test]
    fn remembered_wakes_are_bounded() {
        let w = Wakeups::default();
        for i in 0..REMEMBERED_KEYS + 10 {
            w.wake(&format!("k{i}"));
        }
        w.wake("k20");
        let woken = w.woken.lock().unwrap();
        assert_eq!(woken.len(), REMEMBERED_KEYS);
        assert_eq!(woken.back().unwrap().1, "k20", "a key woken again is kept once, newest");
        assert_eq!(woken.iter().filter(|(_, k)| k == "k20").count(), 1);
        assert_eq!(woken.front().unwrap().1, "k10", "the oldest were forgotten");
    }
}
