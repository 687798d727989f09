//! Retries, off by default. When on: only what the classification says is
//! transient, one attempt after the other (never two copies of a request in
//! flight: the API answers 409 `00015` to that), with exponential backoff and
//! jitter, never before the API's `Retry-After`, and every attempt charged to
//! the quotas like any request.

use std::time::Duration;

use crate::{CallError, types};

/// How to retry transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: no retry).
    pub max_attempts: u32,
    /// The first backoff; doubled after each attempt.
    pub base_delay: Duration,
    /// The longest wait before an attempt; a `Retry-After` beyond it ends
    /// the retries.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// No retry: the default.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };

    /// How long to wait before attempt `attempt` (2 for the first retry)
    /// after `error`, or `None` to stop.
    pub(crate) fn delay(&self, attempt: u32, error: &CallError) -> Option<Duration> {
        if attempt > self.max_attempts {
            return None;
        }
        let asked = transient(error)?;
        // Full jitter over an exponential ceiling (AWS's "full jitter").
        let ceiling = self
            .base_delay
            .saturating_mul(1 << attempt.saturating_sub(2).min(16))
            .min(self.max_delay);
        let backoff = ceiling.mul_f64(rand::random::<f64>());
        let delay = backoff.max(asked);
        (delay <= self.max_delay).then_some(delay)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::NONE
    }
}

/// Whether `error` may pass by itself, and the least wait the API asked.
fn transient(error: &CallError) -> Option<Duration> {
    use types::Error as E;
    match error {
        CallError::Client(c) => match &c.0 {
            // The component says which answers pass (a 409 in flight, 429,
            // 5xx but the permanent 502s); the quota bounds what a retry sends.
            E::Api(a) if a.retryable => Some(Duration::from_secs(u64::from(a.retry_after_seconds.unwrap_or(0)))),
            E::Timeout(_) | E::Transport(_) => Some(Duration::ZERO),
            _ => None,
        },
        CallError::Deadline(_) => Some(Duration::ZERO),
        // The quota or a circuit refused: a retry would only be refused
        // again (or, for a silent API, make a ban worse).
        // A quota store that is away is waited out by the caller (batch
        // does), not by retries that would each fail at once.
        CallError::RateLimited { .. }
        | CallError::CircuitOpen { .. }
        | CallError::Closed { .. }
        | CallError::TokenRefused { .. }
        | CallError::QuotaStoreUnavailable(_)
        | CallError::Trap(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientError;

    fn api(kind: types::ApiErrorKind, status: u16, retryable: bool, retry_after: Option<u32>) -> types::Error {
        types::Error::Api(types::ApiError {
            status,
            kind,
            errors: vec![],
            text: None,
            provider: None,
            retryable,
            retry_after_seconds: retry_after,
            rate_limit: types::RateLimitState {
                limit: None,
                remaining: None,
                reset_at: None,
                retry_after_seconds: None,
            },
            request_id: None,
        })
    }

    fn client(e: types::Error) -> CallError {
        CallError::Client(ClientError(e))
    }

    #[test]
    fn only_transient_errors_are_retried_within_the_attempts() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
        };
        let bad_gateway = client(api(types::ApiErrorKind::BadGateway, 502, true, None));
        let d = policy.delay(2, &bad_gateway).unwrap();
        assert!(d <= Duration::from_millis(100), "{d:?}");
        assert!(policy.delay(3, &bad_gateway).unwrap() <= Duration::from_millis(200));
        assert_eq!(policy.delay(4, &bad_gateway), None, "three attempts in all");
        let permanent = client(api(types::ApiErrorKind::BadGateway, 502, false, None));
        assert_eq!(policy.delay(2, &permanent), None);
        let not_found = client(api(types::ApiErrorKind::NotFound, 404, false, None));
        assert_eq!(policy.delay(2, &not_found), None);
        assert_eq!(RetryPolicy::NONE.delay(2, &bad_gateway), None, "off by default");
        let quota = CallError::RateLimited {
            quota: "ip".into(),
            retry_after: Duration::from_secs(1),
        };
        assert_eq!(policy.delay(2, &quota), None);
    }

    #[test]
    fn a_429_is_never_retried_before_retry_after() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(10),
        };
        let limited = client(api(types::ApiErrorKind::RateLimited, 429, true, Some(7)));
        assert_eq!(policy.delay(2, &limited), Some(Duration::from_secs(7)));
        let long = client(api(types::ApiErrorKind::RateLimited, 429, true, Some(60)));
        assert_eq!(policy.delay(2, &long), None, "past max_delay: stop rather than wait");
    }
}
