//! Per-module request rate limit: a token bucket on each connection's
//! reader thread, so a module that floods the node with requests is
//! answered `rate_limited` instead of being served, and every other
//! module's requests (on their own threads and buckets) are unaffected.
//!
//! The bucket is the module's one budget for everything it sends on its
//! own initiative: requests, `log` frames, frames of an unknown type and
//! responses to no invocation each take a token. Only the answers to the
//! node's own invocations are free (the node decides how many it asks
//! for). What is over the budget is refused (a request, with
//! `rate_limited`) or dropped and counted (the rest, which have no answer);
//! either way the operator is told by a [`WarnThrottle`]ed warning.

use std::time::{Duration, Instant};

/// A sustained rate and a burst, per module connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRate {
    /// Requests per second, sustained.
    pub per_second: u32,
    /// Requests that may arrive at once above the sustained rate.
    pub burst: u32,
}

impl Default for RequestRate {
    /// 20 000 requests/s with bursts of 5 000: several times what a module
    /// syncing blocks needs, far below what would take a core from the node.
    fn default() -> RequestRate {
        RequestRate {
            per_second: 20_000,
            burst: 5_000,
        }
    }
}

impl std::fmt::Display for RequestRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} requests/s (bursts of {})", self.per_second, self.burst)
    }
}

/// The bucket, refilled continuously (one clock read per request, a vDSO
/// call of some 20 ns against a round trip of microseconds). Over any
/// span `T` it grants at most `burst + per_second × T` requests.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: RequestRate,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate: RequestRate) -> TokenBucket {
        TokenBucket {
            rate,
            tokens: f64::from(rate.burst.max(1)),
            refilled: Instant::now(),
        }
    }

    /// Takes a token for one request; false when none is left.
    pub(crate) fn allow(&mut self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&mut self, now: Instant) -> bool {
        let earned = now.saturating_duration_since(self.refilled).as_secs_f64() * f64::from(self.rate.per_second);
        self.tokens = (self.tokens + earned).min(f64::from(self.rate.burst.max(1)));
        self.refilled = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    /// The limit, for error messages.
    pub(crate) fn rate(&self) -> RequestRate {
        self.rate
    }
}

/// How often, at most, a connection warns about one kind of excess.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(10);

/// Lets through the first warning, then at most one per [`WARN_EVERY`]: a
/// module over its rate must be reported, but the report must not become
/// the flood (a count-based "every 1 000th" would still write hundreds of
/// lines a second for a module sending a million frames a second).
#[derive(Debug, Default)]
pub(crate) struct WarnThrottle {
    last: Option<Instant>,
}

impl WarnThrottle {
    /// Whether to warn now.
    pub(crate) fn ready(&mut self) -> bool {
        self.ready_at(Instant::now())
    }

    fn ready_at(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < WARN_EVERY => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    #[test]
    fn a_full_bucket_grants_its_burst_then_the_rate_and_never_saves_up_past_the_burst() {
        let mut bucket = TokenBucket::new(RequestRate {
            per_second: 10,
            burst: 5,
        });
        let t0 = bucket.refilled;
        assert_eq!((0..100).filter(|_| bucket.allow_at(t0)).count(), 5);
        // 300 ms later: 3 more.
        let t1 = t0 + Duration::from_millis(300);
        assert_eq!((0..100).filter(|_| bucket.allow_at(t1)).count(), 3);
        // An idle hour earns the burst, not 36 000.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!((0..100).filter(|_| bucket.allow_at(t2)).count(), 5);
    }

    #[test]
    fn a_throttle_lets_the_first_warning_through_then_one_per_period() {
        let mut throttle = WarnThrottle::default();
        let t0 = Instant::now();
        assert!(throttle.ready_at(t0));
        assert!(!(1..1000).any(|ms| throttle.ready_at(t0 + Duration::from_millis(ms))));
        assert!(throttle.ready_at(t0 + WARN_EVERY));
        assert!(!throttle.ready_at(t0 + WARN_EVERY + Duration::from_secs(1)));
    }
}
