//! The one retry loop, with bounded exponential backoff and jitter.

use super::*;

/// Bounded exponential backoff for [`StoreError::Transient`] failures.
///
/// The SDK's own retry layer is switched off so that there is exactly one retry loop, which also
/// covers reading a GET body (the SDK does not retry a body that breaks mid-stream).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first included; `1` disables retries. `0` is treated as `1`.
    pub attempts: u32,
    /// Delay before the second attempt; doubled for each further attempt.
    pub initial_backoff: Duration,
    /// Upper bound of any single delay.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::DEFAULT
    }
}

impl RetryPolicy {
    /// Four attempts, 200 ms doubling up to 5 s (`MEDIAGATE_S3_ATTEMPTS` defaults to these four).
    pub const DEFAULT: RetryPolicy =
        RetryPolicy { attempts: 4, initial_backoff: Duration::from_millis(200), max_backoff: Duration::from_secs(5) };

    /// No retries at all: for callers that run their own loop (or tests).
    pub fn none() -> Self {
        RetryPolicy { attempts: 1, ..RetryPolicy::default() }
    }

    /// The delay before attempt `attempt + 1` (`attempt` counts from 1), with ±25 % jitter so that
    /// many workers hitting the same failing store do not retry in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let base = self.initial_backoff.saturating_mul(1u32 << exp).min(self.max_backoff);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        // factor in [0.75, 1.25)
        let factor = 0.75 + f64::from(nanos % 1000) / 2000.0;
        base.mul_f64(factor).min(self.max_backoff)
    }
}

/// Runs `op` until it succeeds, fails with an error that is not transient
/// ([`StoreError::is_transient`]), or `policy.attempts` are used up.
///
/// Public so that callers composing several store calls (or other S3-like work) can reuse the
/// same policy; every [`Store`] method already retries through it.
pub async fn retry<T, F, Fut>(policy: &RetryPolicy, what: &str, mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let attempts = policy.attempts.max(1);
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && attempt < attempts => {
                let delay = policy.backoff(attempt);
                warn!(what, attempt, attempts, delay_ms = delay.as_millis() as u64, error = %e, "transient S3 failure, retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_bounded() {
        let p = RetryPolicy {
            attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        let b1 = p.backoff(1);
        assert!(b1 >= Duration::from_millis(75) && b1 <= Duration::from_millis(125), "{b1:?}");
        let b3 = p.backoff(3);
        assert!(b3 >= Duration::from_millis(300) && b3 <= Duration::from_millis(500), "{b3:?}");
        assert!(p.backoff(30) <= Duration::from_secs(1));
    }

    #[tokio::test]
    async fn retry_stops_on_non_transient_and_bounds_attempts() {
        let p = RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        };
        let mut n = 0;
        let r: Result<(), _> = retry(&p, "t", || {
            n += 1;
            async { Err(StoreError::transient("Op", "b", "k", "boom")) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(n, 3);
        let mut n = 0;
        let r: Result<(), _> = retry(&p, "t", || {
            n += 1;
            async { Err(StoreError::NotFound { bucket: "b".into(), key: "k".into() }) }
        })
        .await;
        assert!(matches!(r, Err(StoreError::NotFound { .. })));
        assert_eq!(n, 1);
    }
}
