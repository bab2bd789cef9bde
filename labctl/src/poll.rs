//! Waiting for a condition: [`poll_until`] asks again every so often until it holds or a
//! deadline passes, and then says what it waited for.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use anyhow::Result;
use tokio::time::Instant;

/// A wait that ran out: `what` did not come about within `timeout`.
#[derive(Debug)]
pub struct TimedOut {
    /// What was awaited, e.g. `lab ring6 whole and converged`.
    pub what: String,
    /// How long it was awaited.
    pub timeout: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: not within {:?}", self.what, self.timeout)
    }
}

impl std::error::Error for TimedOut {}

/// Runs `check` every `interval` until it gives a value, and returns it. A failed check ends the
/// wait with its error; once `timeout` has passed since the first check (which always runs), the
/// error is a [`TimedOut`] naming `what` was awaited, for callers to tell apart with
/// `error.is::<TimedOut>()`.
///
/// Time is tokio's, so a test with a paused clock waits no real time.
pub async fn poll_until<T, F, Fut>(
    what: &str,
    interval: Duration,
    timeout: Duration,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    // A timeout too long to add up waits forever.
    let deadline = Instant::now().checked_add(timeout);
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(TimedOut {
                what: what.to_string(),
                timeout,
            }
            .into());
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_value_comes_back_once_the_condition_holds() {
        let checks = Cell::new(0);
        let started = Instant::now();
        let value = poll_until(
            "the third check",
            Duration::from_secs(1),
            Duration::MAX,
            || {
                checks.set(checks.get() + 1);
                std::future::ready(Ok((checks.get() == 3).then_some("done")))
            },
        )
        .await
        .unwrap();
        assert_eq!((value, checks.get()), ("done", 3));
        assert_eq!(started.elapsed(), Duration::from_secs(2), "two intervals");
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_that_runs_out_names_what_it_awaited() {
        let error = poll_until(
            "node 3 gone",
            Duration::from_millis(300),
            Duration::from_secs(1),
            || std::future::ready(Ok(None::<()>)),
        )
        .await
        .unwrap_err();
        assert!(error.is::<TimedOut>());
        assert_eq!(error.to_string(), "node 3 gone: not within 1s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_check_ends_the_wait_with_its_error() {
        let error = poll_until("never", Duration::from_secs(1), Duration::MAX, || {
            std::future::ready(Err::<Option<()>, _>(anyhow::anyhow!("the node refused")))
        })
        .await
        .unwrap_err();
        assert!(!error.is::<TimedOut>());
        assert_eq!(error.to_string(), "the node refused");
    }
}
