//! Dynamic batching: how a stage gathers the envelopes it hands to its operator.
//!
//! A stage pulls everything already queued for it (up to a look-ahead of a few batches) into a
//! [`Gatherer`], and hands the operator a batch as soon as it holds `max_items` envelopes, or
//! when the oldest of them has waited `max_delay` since it was queued, whichever comes first.
//! STAT-priority envelopes go first: a batch takes every pending STAT envelope before any other,
//! and the rest in arrival order.
//!
//! While a model runs, the next envelopes queue up; when the run ends they are all pending at
//! once and the next batch fills at once. So at light load an envelope waits at most
//! `max_delay`, and at heavy load batches grow to `max_items` by themselves: a short
//! `max_delay` costs little throughput.

use std::collections::VecDeque;
use std::time::Duration;

use radstream_schemas::Priority;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::envelope::Envelope;

/// A stage's batching policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Most envelopes per batch.
    pub max_items: usize,
    /// Longest an envelope waits for a batch to fill, from when it was queued.
    pub max_delay: Duration,
    /// Most envelopes pulled from the queue ahead of handing them over (at least `max_items`):
    /// more lets STAT work queued behind routine work go first, but a stage with several
    /// tasks should keep it at `max_items`, so that one task does not hold what its siblings
    /// could run.
    pub look_ahead: usize,
}

impl Batching {
    /// A policy of batches of `max_items` within `max_delay`, pulling one batch ahead.
    pub fn new(max_items: usize, max_delay: Duration) -> Self {
        Self { max_items, max_delay, look_ahead: max_items }
    }

    /// Pulls up to `batches` batches ahead.
    pub fn looking_ahead(mut self, batches: usize) -> Self {
        self.look_ahead = self.max_items.max(1).saturating_mul(batches.max(1));
        self
    }

    /// Envelopes pulled ahead of handing a batch over.
    pub fn look_ahead(&self) -> usize {
        self.look_ahead.max(self.max_items).max(1)
    }
}

/// What the gatherer needs of an item: when it was queued and whether it is urgent.
pub trait Queued {
    /// When it was queued for this stage.
    fn queued_at(&self) -> Instant;
    /// Whether it goes before the others (STAT priority).
    fn urgent(&self) -> bool;
}

impl Queued for Envelope {
    fn queued_at(&self) -> Instant {
        Instant::from_std(self.queued_at)
    }

    fn urgent(&self) -> bool {
        self.event.priority == Priority::Stat
    }
}

/// The envelopes a stage has pulled and not yet handed over: urgent ones first, each kind in
/// arrival order.
#[derive(Debug)]
pub struct Gatherer<T> {
    policy: Batching,
    urgent: VecDeque<T>,
    normal: VecDeque<T>,
}

impl<T: Queued> Gatherer<T> {
    /// An empty gatherer for `policy`.
    pub fn new(policy: Batching) -> Self {
        Self { policy, urgent: VecDeque::new(), normal: VecDeque::new() }
    }

    /// The policy.
    pub fn policy(&self) -> Batching {
        self.policy
    }

    /// Adds an item.
    pub fn push(&mut self, item: T) {
        if item.urgent() {
            self.urgent.push_back(item);
        } else {
            self.normal.push_back(item);
        }
    }

    /// Items pending.
    pub fn len(&self) -> usize {
        self.urgent.len() + self.normal.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it may pull more from its queue (below the look-ahead).
    pub fn wants_more(&self) -> bool {
        self.len() < self.policy.look_ahead()
    }

    /// When the next batch is due: now when a full batch is pending, else when the oldest
    /// pending item has waited `max_delay`; `None` when nothing is pending.
    pub fn due(&self) -> Option<Instant> {
        if self.len() >= self.policy.max_items {
            return Some(Instant::now());
        }
        let oldest = [self.urgent.front(), self.normal.front()].into_iter().flatten().map(Queued::queued_at).min()?;
        Some(oldest + self.policy.max_delay)
    }

    /// Takes the next batch: up to `max_items`, every urgent item before any other.
    pub fn take(&mut self) -> Vec<T> {
        let n = self.len().min(self.policy.max_items.max(1));
        let mut batch = Vec::with_capacity(n);
        while batch.len() < n {
            match self.urgent.pop_front().or_else(|| self.normal.pop_front()) {
                Some(item) => batch.push(item),
                None => break,
            }
        }
        batch
    }
}

/// What a stage does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Hand the operator a batch ([`Gatherer::take`]).
    Batch,
    /// The operator's wake time came.
    Wake,
    /// The queue closed and nothing is pending.
    Closed,
}

/// Pulls from a stage's queue into `gatherer` until a batch is due, `wake` comes, or the queue
/// closes (`closed` turns true; the pending items still come out as batches, then
/// [`Step::Closed`]). The runtime's stages and the batching benchmark both run this.
pub async fn gather<T: Queued>(
    gatherer: &mut Gatherer<T>,
    rx: &mut mpsc::Receiver<T>,
    wake: Option<std::time::Instant>,
    closed: &mut bool,
) -> Step {
    let wake = wake.map(Instant::from_std);
    loop {
        // Everything already queued, without waiting, up to the look-ahead.
        while !*closed && gatherer.wants_more() {
            match rx.try_recv() {
                Ok(item) => gatherer.push(item),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => *closed = true,
            }
        }
        let due = gatherer.due();
        let now = Instant::now();
        if let Some(wake) = wake {
            if wake <= now && due.is_none_or(|d| wake <= d) {
                return Step::Wake;
            }
        }
        match due {
            Some(due) if due <= now || *closed => return Step::Batch,
            None if *closed => return Step::Closed,
            _ => {}
        }
        let deadline = [due, wake].into_iter().flatten().min();
        let received = match (deadline, gatherer.wants_more()) {
            (Some(deadline), true) => tokio::time::timeout_at(deadline, rx.recv()).await.ok(),
            (Some(deadline), false) => {
                tokio::time::sleep_until(deadline).await;
                None
            }
            (None, _) => Some(rx.recv().await),
        };
        match received {
            Some(Some(item)) => gatherer.push(item),
            Some(None) => *closed = true,
            None => {}
        }
    }
}

#[cfg(test)]
mod tests;
