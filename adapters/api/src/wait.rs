//! Polling until a deadline, written once.
//!
//! Every restarter's `wait` asks its platform the same question again and again
//! until the answer is final or the deadline passes (ECS deployments, Cloud Run
//! revisions, a Kubernetes list-then-watch, Fly machines, Vercel deployments).
//! The skeleton of those loops (when to probe, how long to pause, the last pause
//! cut short at the deadline, when to give up) is here, in the shape of
//! kube-runtime's `await_condition` with the deadline inside: an adapter keeps only
//! its probe, which answers "done" (with the outcome) or "not yet", and what it
//! reports on a timeout.
//!
//! The probe is handed what the earlier probes saw (the services already done, the
//! last status, the last error) and hands it back with "not yet"; a timeout returns
//! it, for the report. Threading it by value, not by a borrow in an async closure,
//! keeps the wait `Send` (today's compiler cannot prove an async closure's borrowing
//! futures `Send` inside an `async_trait` method).
//!
//! ```
//! # use std::time::{Duration, Instant};
//! # use vsync_orchestrate_api::wait::{wait_until, Step, Waited};
//! # async fn status() -> Option<u32> { Some(3) }
//! # async fn doc() {
//! let deadline = Instant::now() + Duration::from_secs(60);
//! let waited = wait_until(deadline, Duration::from_secs(2), 0, |polls| async move {
//!     match status().await {
//!         Some(n) => Step::Ready(n),
//!         None => Step::Pending(polls + 1),
//!     }
//! })
//! .await;
//! match waited {
//!     Waited::Done(n) => println!("done: {n}"),
//!     Waited::TimedOut(polls) => println!("still waiting after {polls} polls"),
//! }
//! # }
//! ```
//!
//! The clock is tokio's (the same instants as `std`'s unless a test paused it), so
//! the deadline and every pause follow a paused test clock too.

use std::future::Future;
use std::time::{Duration, Instant};

/// One probe's answer; `S` is what the probes saw so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<T, S> {
    /// Final: the wait returns [`Waited::Done`] with it.
    Ready(T),
    /// Not yet: probe again after the wait's interval.
    Pending(S),
    /// Not yet: probe again after this long instead of the interval (a wait the
    /// server asked for; zero probes again at once).
    PendingFor(S, Duration),
}

/// How a wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waited<T, S> {
    /// A probe answered [`Step::Ready`].
    Done(T),
    /// The deadline passed with every probe answering "not yet": what they saw.
    TimedOut(S),
}

/// Probes at once, then again after each pause (`interval`, or what the probe
/// asked for), the last pause cut short to end at the deadline, until a probe is
/// [`Step::Ready`] or the deadline has passed.
///
/// A probe that ends at or after the deadline still counts: one is always made,
/// and the last one is made at the deadline itself (a rollout that finished in the
/// final interval is `Done`, not `TimedOut`). Dropping the future stops the wait
/// at once (no probe is left running).
pub async fn wait_until<S, T, F, Fut>(
    deadline: Instant,
    interval: Duration,
    seen: S,
    probe: F,
) -> Waited<T, S>
where
    F: FnMut(S) -> Fut,
    Fut: Future<Output = Step<T, S>>,
{
    run(deadline, interval, true, seen, probe).await
}

/// [`wait_until`] for probes that cannot succeed once the deadline has passed
/// (every request in them is bounded by the deadline): no probe starts at or
/// after the deadline, so the wait ends there without a doomed last probe, and
/// without any probe when it starts late.
pub async fn wait_before<S, T, F, Fut>(
    deadline: Instant,
    interval: Duration,
    seen: S,
    probe: F,
) -> Waited<T, S>
where
    F: FnMut(S) -> Fut,
    Fut: Future<Output = Step<T, S>>,
{
    run(deadline, interval, false, seen, probe).await
}

async fn run<S, T, F, Fut>(
    deadline: Instant,
    interval: Duration,
    probe_at_deadline: bool,
    mut seen: S,
    mut probe: F,
) -> Waited<T, S>
where
    F: FnMut(S) -> Fut,
    Fut: Future<Output = Step<T, S>>,
{
    let deadline = tokio::time::Instant::from_std(deadline);
    loop {
        if !probe_at_deadline && tokio::time::Instant::now() >= deadline {
            return Waited::TimedOut(seen);
        }
        let pause;
        (seen, pause) = match probe(seen).await {
            Step::Ready(t) => return Waited::Done(t),
            Step::Pending(s) => (s, interval),
            Step::PendingFor(s, d) => (s, d),
        };
        let now = tokio::time::Instant::now();
        if probe_at_deadline && now >= deadline {
            return Waited::TimedOut(seen);
        }
        let pause = pause.min(deadline.saturating_duration_since(now));
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn secs(since: Instant) -> u64 {
        (clock() - since).as_secs()
    }

    #[tokio::test(start_paused = true)]
    async fn ready_on_the_first_probe_does_not_sleep() {
        let start = clock();
        let w = wait_until(
            start + Duration::from_secs(10),
            Duration::from_secs(1),
            0,
            |n| async move {
                assert_eq!(n, 0);
                Step::Ready("done")
            },
        )
        .await;
        assert_eq!(w, Waited::Done("done"));
        assert_eq!(clock(), start);
    }

    #[tokio::test(start_paused = true)]
    async fn pending_then_ready_after_intervals() {
        let start = clock();
        let w: Waited<u32, u32> = wait_until(
            start + Duration::from_secs(10),
            Duration::from_secs(2),
            0,
            |n| async move {
                if n < 2 {
                    Step::Pending(n + 1)
                } else {
                    Step::Ready(n + 1)
                }
            },
        )
        .await;
        assert_eq!(w, Waited::Done(3));
        assert_eq!(secs(start), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_is_honoured_with_a_last_probe_at_it() {
        let start = clock();
        let w: Waited<(), Vec<u64>> = wait_until(
            start + Duration::from_secs(5),
            Duration::from_secs(2),
            Vec::new(),
            |mut at| async move {
                at.push(secs(start));
                Step::Pending(at)
            },
        )
        .await;
        // 0, 2, 4, then the last pause is cut short to end at the deadline.
        assert_eq!(w, Waited::TimedOut(vec![0, 2, 4, 5]));
        assert_eq!(secs(start), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_start_still_probes_once() {
        let w: Waited<(), u32> = wait_until(clock(), Duration::from_secs(1), 0, |n| async move {
            Step::Pending(n + 1)
        })
        .await;
        assert_eq!(w, Waited::TimedOut(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_ends_past_the_deadline_is_still_heard() {
        let start = clock();
        let w: Waited<&str, ()> = wait_until(
            start + Duration::from_secs(1),
            Duration::from_secs(1),
            (),
            |()| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Step::Ready("late but done")
            },
        )
        .await;
        assert_eq!(w, Waited::Done("late but done"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_probe_chooses_its_pause() {
        let start = clock();
        let w: Waited<(), Vec<u64>> = wait_until(
            start + Duration::from_secs(20),
            Duration::from_secs(1),
            Vec::new(),
            |mut at| async move {
                at.push(secs(start));
                match at.len() {
                    1 => Step::PendingFor(at, Duration::from_secs(7)),
                    2 => Step::PendingFor(at, Duration::ZERO),
                    3 => Step::Pending(at),
                    _ => Step::PendingFor(at, Duration::from_secs(60)),
                }
            },
        )
        .await;
        // A long pause is cut short at the deadline.
        assert_eq!(w, Waited::TimedOut(vec![0, 7, 7, 8, 20]));
    }

    #[tokio::test(start_paused = true)]
    async fn wait_before_never_probes_at_the_deadline() {
        let start = clock();
        let w: Waited<(), Vec<u64>> = wait_before(
            start + Duration::from_secs(5),
            Duration::from_secs(2),
            Vec::new(),
            |mut at| async move {
                at.push(secs(start));
                Step::Pending(at)
            },
        )
        .await;
        assert_eq!(w, Waited::TimedOut(vec![0, 2, 4]));
        assert_eq!(secs(start), 5);

        let w = wait_before(clock(), Duration::from_secs(1), "never probed", |_| async {
            Step::Ready(())
        })
        .await;
        assert_eq!(w, Waited::TimedOut("never probed"));
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_wait_stops_it() {
        let start = clock();
        let probes = std::sync::atomic::AtomicU32::new(0);
        let w = tokio::time::timeout(
            Duration::from_millis(2500),
            wait_until(
                start + Duration::from_secs(60),
                Duration::from_secs(1),
                (),
                |()| async {
                    probes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Step::<(), ()>::Pending(())
                },
            ),
        )
        .await;
        assert!(w.is_err());
        // At 0, 1 and 2 s; none after the timeout dropped the wait.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(probes.into_inner(), 3);
    }
}
