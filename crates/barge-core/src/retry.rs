//! The one retry policy of every edge that talks to a remote (registries, token servers, git
//! remotes): how many attempts, how long to wait between them, and which failures are worth
//! another attempt. Built on backon's exponential backoff; edges call [`retry`] instead of
//! writing loops of their own.
//!
//! Nothing here waits or reads a clock: the caller hands in the sleeper (`tokio::time::sleep`)
//! and the seed of the jitter, so a policy's delays are a function of its inputs.

use crate::ErrorClass;
use backon::{BackoffBuilder, ExponentialBuilder, Retryable, Sleeper};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How an operation is retried.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (0 counts as 1).
    pub max_attempts: u32,
    /// The wait before the first retry (before jitter).
    pub base_delay: Duration,
    /// No wait is longer: not a grown delay, not its jitter, not a server's `Retry-After`.
    pub max_delay: Duration,
    /// Each wait is this many times the one before.
    pub factor: f32,
    /// Adds up to a wait's own length at random, so clients that failed together do not all
    /// come back together.
    pub jitter: bool,
    /// The first retry follows at once (a push rejected because the branch moved since the
    /// checkout is no sign of contention yet); the waits start with the second.
    pub first_retry_at_once: bool,
}

impl Default for RetryPolicy {
    /// Five attempts, waits from 250 ms doubling up to 30 s, with jitter: what the registry
    /// client has always used for HTTP.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            factor: 2.0,
            jitter: true,
            first_retry_at_once: false,
        }
    }
}

/// A failure as the policy sees it: its class, and how long the remote asked to wait.
pub trait Failure {
    fn class(&self) -> ErrorClass;
    /// A server's `Retry-After`, when it sent one.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

impl RetryPolicy {
    /// Whether a failure of this class may succeed on another attempt: transient faults
    /// (network, timeouts, 5xx) and rate limits. Never bad input, credentials or a missing
    /// object, nor a conflict a person must resolve: those fail the same way again.
    pub fn retries(class: ErrorClass) -> bool {
        matches!(class, ErrorClass::Transient | ErrorClass::RateLimited)
    }

    /// The waits between attempts, in order (one fewer than the attempts), with the jitter
    /// drawn from `jitter_seed`. Pure: backon's builder and a seeded generator.
    pub fn delays(&self, jitter_seed: u64) -> impl Iterator<Item = Duration> + Send + Sync + Unpin + use<> {
        let retries = self.max_attempts.max(1) as usize - 1;
        let at_once = usize::from(self.first_retry_at_once).min(retries);
        let mut builder = ExponentialBuilder::new()
            .with_min_delay(self.base_delay.min(self.max_delay))
            .with_max_delay(self.max_delay)
            .with_factor(self.factor.max(1.0))
            .with_max_times(retries - at_once)
            .with_jitter_seed(jitter_seed);
        if self.jitter {
            builder = builder.with_jitter();
        }
        let cap = self.max_delay;
        // Whole milliseconds: backon grows waits in f32 seconds (200 ms × 1 → 200.000003 ms).
        let wait = move |d: Duration| Duration::from_millis(d.as_millis() as u64).min(cap);
        std::iter::repeat_n(Duration::ZERO, at_once).chain(builder.build().map(wait))
    }

    /// The wait before the next attempt: the server's `Retry-After` when it gave one, else the
    /// scheduled wait, never longer than `max_delay`. `None` (no attempts left) stays `None`.
    pub fn wait(&self, scheduled: Option<Duration>, retry_after: Option<Duration>) -> Option<Duration> {
        scheduled.map(|d| retry_after.unwrap_or(d).min(self.max_delay))
    }
}

/// Runs `attempt` (given its number, from 1) until it succeeds, fails in a way the policy does
/// not retry, or the attempts run out; between attempts it waits with `sleeper`. `also` can
/// only narrow what is retried (git retries only pushes refused because the branch moved);
/// `on_retry` hears each retried failure with the attempt's number and the wait (to log it).
pub async fn retry<T, E, Fut, S>(
    policy: &RetryPolicy,
    sleeper: S,
    jitter_seed: u64,
    mut attempt: impl FnMut(u32) -> Fut,
    mut also: impl FnMut(&E) -> bool,
    mut on_retry: impl FnMut(&E, u32, Duration),
) -> Result<T, E>
where
    E: Failure,
    Fut: Future<Output = Result<T, E>>,
    S: Sleeper,
{
    // Atomic only to keep the future `Send` (it is never shared between threads).
    let started = std::sync::atomic::AtomicU32::new(0);
    let next = || attempt(started.fetch_add(1, Ordering::Relaxed) + 1);
    next.retry(policy.delays(jitter_seed))
        .sleep(sleeper)
        .when(|e: &E| RetryPolicy::retries(e.class()) && also(e))
        .adjust(|e: &E, scheduled| policy.wait(scheduled, e.retry_after()))
        .notify(|e: &E, wait| on_retry(e, started.load(Ordering::Relaxed), wait))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::future::{Ready, ready};
    use std::rc::Rc;

    #[derive(Debug)]
    struct Fail(ErrorClass, Option<Duration>);

    impl Failure for Fail {
        fn class(&self) -> ErrorClass {
            self.0
        }
        fn retry_after(&self) -> Option<Duration> {
            self.1
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
            factor: 2.0,
            jitter: false,
            first_retry_at_once: false,
        }
    }

    /// A sleeper that completes at once and records the waits.
    fn recorder() -> (Rc<RefCell<Vec<Duration>>>, impl Fn(Duration) -> Ready<()>) {
        let waits = Rc::new(RefCell::new(Vec::new()));
        let log = waits.clone();
        (waits, move |d| {
            log.borrow_mut().push(d);
            ready(())
        })
    }

    /// Polls a future whose every await is ready.
    fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("a test sleeper never waits"),
        }
    }

    /// Fails with `failures` in turn, then succeeds; returns the result and the attempts made.
    fn run(policy: &RetryPolicy, failures: Vec<Fail>) -> (Result<u32, Fail>, u32, Vec<Duration>) {
        let (waits, sleeper) = recorder();
        let failures = RefCell::new(failures.into_iter());
        let made = std::cell::Cell::new(0);
        let result = block_on(retry(
            policy,
            sleeper,
            7,
            |n| {
                made.set(n);
                ready(failures.borrow_mut().next().map_or(Ok(n), Err))
            },
            |_| true,
            |_, _, _| {},
        ));
        let waits = waits.borrow().clone();
        (result, made.get(), waits)
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn transient_and_rate_limited_failures_are_retried_with_growing_capped_waits() {
        let (result, made, waits) = run(
            &policy(),
            vec![
                Fail(ErrorClass::Transient, None),
                Fail(ErrorClass::RateLimited, None),
                Fail(ErrorClass::Transient, None),
            ],
        );
        assert_eq!(result.unwrap(), 4, "the fourth attempt succeeded");
        assert_eq!(made, 4);
        assert_eq!(waits, [MS(100), MS(200), MS(300)], "doubling from the base, capped");
    }

    #[test]
    fn failures_that_would_fail_again_are_not_retried() {
        for class in [
            ErrorClass::Auth,
            ErrorClass::Forbidden,
            ErrorClass::NotFound,
            ErrorClass::Invalid,
            ErrorClass::Conflict,
            ErrorClass::MergeConflict,
        ] {
            let (result, made, waits) = run(&policy(), vec![Fail(class, None)]);
            assert_eq!(result.unwrap_err().0, class);
            assert_eq!((made, waits.len()), (1, 0), "{class}: one attempt, no wait");
        }
    }

    #[test]
    fn attempts_run_out_with_the_last_failure() {
        let failures = (0..10).map(|_| Fail(ErrorClass::Transient, None)).collect();
        let (result, made, waits) = run(&policy(), failures);
        assert_eq!(result.unwrap_err().0, ErrorClass::Transient);
        assert_eq!((made, waits.len()), (4, 3));
        let once = RetryPolicy {
            max_attempts: 0,
            ..policy()
        };
        let (_, made, _) = run(&once, vec![Fail(ErrorClass::Transient, None)]);
        assert_eq!(made, 1, "0 attempts means one");
    }

    #[test]
    fn retry_after_replaces_the_wait_and_is_capped() {
        let (result, _, waits) = run(
            &policy(),
            vec![
                Fail(ErrorClass::RateLimited, Some(MS(250))),
                Fail(ErrorClass::RateLimited, Some(Duration::from_secs(3600))),
            ],
        );
        assert!(result.is_ok());
        assert_eq!(waits, [MS(250), MS(300)], "the server's delay, at most max_delay");
    }

    #[test]
    fn a_narrowing_predicate_and_an_immediate_first_retry() {
        let push = RetryPolicy {
            first_retry_at_once: true,
            factor: 1.5,
            max_delay: Duration::from_secs(30),
            ..policy()
        };
        assert_eq!(push.delays(0).collect::<Vec<_>>(), [MS(0), MS(100), MS(150)]);
        let (waits, sleeper) = recorder();
        let result: Result<(), Fail> = block_on(retry(
            &push,
            sleeper,
            1,
            |_| ready(Err(Fail(ErrorClass::Transient, None))),
            |_| false,
            |_, _, _| {},
        ));
        assert!(result.is_err());
        assert!(waits.borrow().is_empty(), "`also` refused the retry");
    }

    #[test]
    fn jitter_adds_at_most_the_wait_itself_and_follows_the_seed() {
        let jittered = RetryPolicy {
            jitter: true,
            max_delay: Duration::from_secs(10),
            ..policy()
        };
        let a: Vec<_> = jittered.delays(42).collect();
        assert_eq!(a, jittered.delays(42).collect::<Vec<_>>(), "same seed, same waits");
        for (wait, plain) in a.iter().zip([MS(100), MS(200), MS(400)]) {
            assert!(*wait >= plain && *wait < plain * 2, "{wait:?} for {plain:?}");
        }
        let capped = RetryPolicy {
            jitter: true,
            ..policy()
        };
        assert!(capped.delays(42).all(|d| d <= MS(300)), "jitter never passes the cap");
    }
}
