//! How long and how slowly a download may run: the options of an
//! [`super::http::HttpRepository`] and the rate check of each transfer.
//!
//! TUF's slow-retrieval attack is a server (or someone between it and
//! us) that sends a few bytes a second so that a client never finishes
//! and never learns of a newer version. A timeout on the whole transfer
//! would either cut off big honest downloads or let a trickle run for
//! hours, so the check is a minimum rate over a window: every
//! `rate_window`, the bytes of that window must reach `min_rate`. A
//! connection that sends nothing at all is cut off sooner, by the read
//! timeout.

use std::time::{Duration, Instant};

use super::progress::Progress;
use crate::tuf::FetchError;

/// The timeouts, minimum rate, retries and progress of downloads.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// The longest wait for a TCP connection.
    pub connect_timeout: Duration,
    /// The longest wait for the next byte of a body, and for the headers
    /// from the request on: a stall.
    pub read_timeout: Duration,
    /// The slowest rate accepted, in bytes per second, measured over each
    /// `rate_window`; 0 accepts any rate.
    pub min_rate_bytes_per_sec: u64,
    /// The window the rate is measured over; a transfer's first window
    /// starts with its request, so it is also the grace period.
    pub rate_window: Duration,
    /// How many times an interrupted transfer is resumed (or a failed
    /// request repeated) before the download fails.
    pub retries: u32,
    /// How progress is shown.
    pub progress: Progress,
}

impl Default for DownloadOptions {
    /// 10 s to connect, 30 s without a byte, at least 1 KiB/s over each
    /// 10 s, 3 retries, progress on stderr.
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            min_rate_bytes_per_sec: 1024,
            rate_window: Duration::from_secs(10),
            retries: 3,
            progress: Progress::Auto,
        }
    }
}

/// The minimum-rate check of one transfer.
#[derive(Debug)]
pub(crate) struct RateGuard {
    min: u64,
    window: Duration,
    window_start: Instant,
    window_bytes: u64,
}

impl RateGuard {
    /// A check starting now, as the request is sent.
    pub(crate) fn start(options: &DownloadOptions) -> Self {
        Self::start_at(options, Instant::now())
    }

    fn start_at(options: &DownloadOptions, now: Instant) -> Self {
        Self {
            min: options.min_rate_bytes_per_sec,
            // A zero window would divide by zero; a millisecond is as strict.
            window: options.rate_window.max(Duration::from_millis(1)),
            window_start: now,
            window_bytes: 0,
        }
    }

    /// `bytes` more arrived.
    ///
    /// # Errors
    ///
    /// [`FetchError::TooSlow`] once a window ends below the minimum rate.
    pub(crate) fn record(&mut self, bytes: usize) -> Result<(), FetchError> {
        self.record_at(bytes, Instant::now())
    }

    fn record_at(&mut self, bytes: usize, now: Instant) -> Result<(), FetchError> {
        self.window_bytes = self.window_bytes.saturating_add(bytes as u64);
        let elapsed = now.saturating_duration_since(self.window_start);
        if self.min == 0 || elapsed < self.window {
            return Ok(());
        }
        let rate = (self.window_bytes as f64 / elapsed.as_secs_f64()) as u64;
        if rate < self.min {
            return Err(FetchError::TooSlow { rate, min: self.min });
        }
        self.window_start = now;
        self.window_bytes = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(min: u64, window_secs: u64) -> (RateGuard, Instant) {
        let start = Instant::now();
        let options = DownloadOptions {
            min_rate_bytes_per_sec: min,
            rate_window: Duration::from_secs(window_secs),
            ..DownloadOptions::default()
        };
        (RateGuard::start_at(&options, start), start)
    }

    fn at(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    #[test]
    fn a_window_below_the_minimum_rate_is_too_slow() {
        let (mut guard, start) = guard(1024, 10);
        guard.record_at(5000, at(start, 5)).expect("inside the grace window");
        let err = guard
            .record_at(5000, at(start, 10))
            .expect_err("1000 B/s is below 1 KiB/s");
        assert!(matches!(err, FetchError::TooSlow { rate: 1000, min: 1024 }), "{err}");
        assert_eq!(
            err.to_string(),
            "slow retrieval: 1000 bytes/s is below the minimum of 1024 bytes/s"
        );
    }

    #[test]
    fn each_window_is_measured_on_its_own() {
        let (mut guard, start) = guard(1024, 10);
        guard.record_at(1 << 20, at(start, 10)).expect("a fast first window");
        // A burst in the first window does not pay for a trickle after it.
        let err = guard
            .record_at(10, at(start, 20))
            .expect_err("1 B/s in the second window");
        assert!(matches!(err, FetchError::TooSlow { rate: 1, .. }), "{err}");
    }

    #[test]
    fn a_zero_minimum_accepts_any_rate() {
        let (mut guard, start) = guard(0, 10);
        guard.record_at(0, at(start, 100)).expect("no minimum");
    }
}
