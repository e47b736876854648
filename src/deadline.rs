//! The run's time budget: every wait is clamped to what `--max-time` leaves.
//!
//! Every wait (lock, request, backoff) is clamped to what is left, which is what makes `--max-time` a real upper bound for the whole run.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    end: Instant,
}

impl Deadline {
    pub fn after(budget: Duration) -> Self {
        Deadline {
            end: Instant::now() + budget,
        }
    }

    pub fn remaining(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }

    /// Too little left to start anything useful.
    pub fn exhausted(&self) -> bool {
        self.remaining() < Duration::from_millis(50)
    }

    /// Sleeps `d`, or until the deadline if that comes first.
    pub fn sleep(&self, d: Duration) {
        std::thread::sleep(d.min(self.remaining()));
    }
}
