//! Throughput and time-to-finish of a sweep from samples of its counter.

use std::collections::VecDeque;

/// Samples of (time in ms, inferences done), kept over a sliding window.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    samples: VecDeque<(i64, i64)>,
}

/// Samples older than this (ms) are dropped; the rate is measured over it.
pub const WINDOW_MS: i64 = 60_000;

impl Progress {
    /// Records the counter at `now_ms` (samples must not go back in time).
    pub fn observe(&mut self, now_ms: i64, done: i64) {
        if self.samples.back().is_some_and(|&(t, _)| now_ms < t) {
            return;
        }
        self.samples.push_back((now_ms, done));
        // Keep one sample at or beyond the window's start, so the window stays full.
        while self.samples.len() > 2 && self.samples[1].0 <= now_ms - WINDOW_MS {
            self.samples.pop_front();
        }
    }

    /// Inferences per second over the window; `None` until two samples at least a
    /// second apart exist.
    pub fn rate(&self) -> Option<f64> {
        let (&(t0, d0), &(t1, d1)) = (self.samples.front()?, self.samples.back()?);
        (t1 - t0 >= 1_000).then(|| (d1 - d0).max(0) as f64 * 1000.0 / (t1 - t0) as f64)
    }

    /// Seconds until `remaining` more inferences at the current rate; `None`
    /// without a rate, or when nothing moves.
    pub fn eta_secs(&self, remaining: i64) -> Option<f64> {
        if remaining <= 0 {
            return Some(0.0);
        }
        self.rate().filter(|r| *r > 0.0).map(|r| remaining as f64 / r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_eta_by_hand() {
        let mut p = Progress::default();
        assert_eq!(p.rate(), None);
        p.observe(0, 0);
        p.observe(500, 40);
        assert_eq!(p.rate(), None, "less than a second of samples");
        p.observe(2_000, 200);
        assert_eq!(p.rate(), Some(100.0));
        assert_eq!(p.eta_secs(1_000), Some(10.0));
        assert_eq!(p.eta_secs(0), Some(0.0));
        // Old samples leave the window: the rate follows the recent pace.
        p.observe(70_000, 200 + 68 * 100);
        p.observe(130_000, 7_000 + 60 * 10);
        assert_eq!(p.rate(), Some(10.0));
        // A stalled sweep has no time to finish.
        let mut s = Progress::default();
        s.observe(0, 5);
        s.observe(5_000, 5);
        assert_eq!((s.rate(), s.eta_secs(10)), (Some(0.0), None));
        // Time going back is ignored.
        s.observe(1_000, 9);
        assert_eq!(s.rate(), Some(0.0));
    }
}
