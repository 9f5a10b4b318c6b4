//! Per-module request rate limit: a token bucket on each connection's
//! reader thread, so a module that floods the node with requests is
//! answered `rate_limited` instead of being served, and every other
//! module's requests (on their own threads and buckets) are unaffected.

use std::time::Instant;

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
}
