//! The one retry timing of the tree: exponential backoff with full jitter, a cap, an attempt
//! limit and a deadline. Every retry loop asks [`Backoff::next_delay`] (or, where it keeps its
//! own give-up rule, [`Backoff::delay`]) how long to wait first, so that they all give up and
//! spread out the same way.

use std::time::Duration;

/// When to try again and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Most attempts in all; 0: no limit other than the deadline.
    pub max_attempts: u32,
    /// No attempt starts this long after the first began.
    pub deadline: Duration,
    /// The ceiling of the first wait; it doubles per retry.
    pub initial_backoff: Duration,
    /// The largest ceiling, and the most a server's `Retry-After` can make us wait.
    pub max_backoff: Duration,
    /// Wait a random time up to the ceiling (true, the default) or the ceiling itself. Loops
    /// whose callers do not fail together (one producer retrying its own send) may wait the
    /// ceiling so that their waits are predictable; the rest want the spread.
    pub jitter: bool,
}

impl Backoff {
    /// Waits from `initial_backoff` doubling up to `max_backoff`, with no attempt limit and no
    /// deadline (set them with [`with_max_attempts`](Self::with_max_attempts) and
    /// [`with_deadline`](Self::with_deadline)).
    ///
    /// `const` so that a retry loop's policy can be a named constant beside it.
    pub const fn new(initial_backoff: Duration, max_backoff: Duration) -> Self {
        Self { max_attempts: 0, deadline: Duration::MAX, initial_backoff, max_backoff, jitter: true }
    }

    /// Gives up after `max_attempts` attempts (0: no limit).
    pub const fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Gives up once `deadline` has passed since the first attempt began.
    pub const fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Waits the ceiling itself rather than a random time up to it (see [`jitter`](Self::jitter)).
    pub const fn without_jitter(mut self) -> Self {
        self.jitter = false;
        self
    }

    /// After attempt number `attempt` (1 for the first) failed, `elapsed` after the first
    /// began: how long to wait before the next ([`delay`](Self::delay), cut to the deadline), or
    /// `None` to give up (out of attempts, or past the deadline). `retry_after` is the
    /// destination's own request to wait, if it made one.
    pub fn next_delay(&self, attempt: u32, elapsed: Duration, retry_after: Option<Duration>) -> Option<Duration> {
        let out_of_attempts = self.max_attempts != 0 && attempt >= self.max_attempts;
        (!out_of_attempts && elapsed < self.deadline)
            .then(|| self.delay(attempt, retry_after).min(self.deadline - elapsed))
    }

    /// The backoff ceiling before retry number `retry` (1 for the first): the initial backoff
    /// doubled per retry, capped.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }

    /// The delay before retry number `retry`: full jitter (uniform in 0..=ceiling) so that
    /// callers failing together do not retry together, or the ceiling without jitter; never
    /// sooner than `retry_after` (itself capped by the maximum backoff).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let jittered = if self.jitter {
            let ceiling = u64::try_from(self.ceiling(retry).as_millis()).unwrap_or(u64::MAX);
            Duration::from_millis(fastrand::u64(0..=ceiling))
        } else {
            self.ceiling(retry)
        };
        match retry_after {
            Some(after) => jittered.max(after.min(self.max_backoff)),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests;
