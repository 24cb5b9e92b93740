//! Retrying idempotent steps (stage, activate, discard, tidy) when an adapter says
//! its error is temporary, waiting what the platform asked for (`Retry-After`)
//! where it said so. The pointer swap is never here: it is not idempotent, and a
//! failed swap is read back instead (`pointer.rs`).

use std::future::Future;
use std::time::Duration;
use vsync_orchestrate_api::Error;

/// How many retries, how far apart, and the longest wait a `Retry-After` may ask.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub waits_ms: &'static [u64],
    pub cap: Duration,
}

/// Before T0 and after T1: a few seconds of patience.
pub(crate) const STEADY: Policy = Policy {
    waits_ms: &[200, 1000, 3000],
    cap: Duration::from_secs(30),
};

/// Inside the window every millisecond counts, but a store that answers "try again
/// in a moment" is still better retried than left serving the old value.
pub(crate) const WINDOW: Policy = Policy {
    waits_ms: &[50, 250, 1000],
    cap: Duration::from_secs(2),
};

/// Runs `op`, and again after each temporary error, until it succeeds, fails for
/// good, or the policy's retries are spent.
pub(crate) async fn idempotent<T, F, Fut>(policy: Policy, mut op: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut res = op().await;
    for base in policy.waits_ms {
        match &res {
            Err(e) if e.is_temporary() => {
                let wait = e
                    .wait_hint()
                    .map(|w| w.min(policy.cap))
                    .unwrap_or(Duration::from_millis(*base));
                tokio::time::sleep(wait).await;
                res = op().await;
            }
            _ => break,
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn temporary_errors_are_retried_honouring_retry_after() {
        let calls = AtomicUsize::new(0);
        let started = tokio::time::Instant::now();
        let res: Result<(), Error> = idempotent(STEADY, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(Error::conflict("lease held").retry_after(Duration::from_secs(7))),
                1 => Err(Error::temporary("503")),
                _ => Ok(()),
            }
        })
        .await;
        assert!(res.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // 7 s as asked, then the second base wait (1 s).
        assert_eq!(started.elapsed(), Duration::from_secs(8));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried_and_waits_are_capped() {
        let calls = AtomicUsize::new(0);
        let res: Result<(), Error> = idempotent(WINDOW, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::permission("denied"))
        })
        .await;
        assert!(res.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let started = tokio::time::Instant::now();
        let _: Result<(), Error> = idempotent(WINDOW, || async {
            Err(Error::temporary("429").retry_after(Duration::from_secs(600)))
        })
        .await;
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(6),
            "three waits capped at 2 s"
        );
    }
}
