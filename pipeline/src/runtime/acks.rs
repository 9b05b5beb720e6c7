//! Per-partition ordered acknowledgement.
//!
//! Instances finish out of order (fetches and PACS requests run concurrently), but a Kafka
//! offset may only be committed once every earlier offset of its partition is finished. The
//! tracker keeps, per assigned partition, the offsets still in flight; the committable offset is
//! the lowest one still pending (or one past the highest seen when nothing is pending).
//!
//! A partition that is revoked loses its state; work still in flight for it carries the old
//! assignment epoch and its acknowledgements are ignored, so nothing of a revoked partition is
//! committed by this process.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

/// Identifies one consumed message for the lifetime of its processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageRef {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Assignment epoch of the partition when the message was read.
    pub epoch: u64,
}

/// What the tracker keeps of an in-flight message: what a dead letter needs.
#[derive(Debug, Clone)]
pub struct PendingMessage {
    /// Original value.
    pub value: Bytes,
    /// Original key.
    pub key: Option<String>,
    /// Outputs (instances) of this message still unfinished.
    remaining: u32,
}

#[derive(Debug, Default)]
struct PartitionState {
    epoch: u64,
    pending: BTreeMap<i64, PendingMessage>,
    highest_seen: Option<i64>,
    last_stored: Option<i64>,
}

impl PartitionState {
    fn committable(&self) -> Option<i64> {
        match self.pending.keys().next() {
            Some(&lowest) => Some(lowest),
            None => self.highest_seen.map(|h| h + 1),
        }
    }
}

/// The ack tracker of one consumer (one input topic).
#[derive(Debug, Default)]
pub struct AckTracker {
    partitions: HashMap<i32, PartitionState>,
    next_epoch: u64,
}

/// The result of finishing one output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckResult {
    /// The message still has unfinished outputs, or an earlier offset is still pending.
    Pending,
    /// A new offset became committable: store it (it is the next offset to consume).
    Commit {
        /// Partition.
        partition: i32,
        /// Next offset to consume.
        offset: i64,
    },
    /// The message's partition was revoked (or reassigned) since it was read: ignore.
    Stale,
}

impl AckTracker {
    /// A partition was assigned: start tracking it under a new epoch.
    pub fn assign(&mut self, partition: i32) {
        self.next_epoch += 1;
        self.partitions.insert(partition, PartitionState { epoch: self.next_epoch, ..Default::default() });
    }

    /// A partition was revoked or lost: forget its in-flight work.
    pub fn revoke(&mut self, partition: i32) -> usize {
        self.partitions.remove(&partition).map(|s| s.pending.len()).unwrap_or(0)
    }

    /// Partitions currently tracked.
    pub fn assigned(&self) -> usize {
        self.partitions.len()
    }

    /// Whether work read under `msg` still belongs to this process.
    pub fn is_live(&self, msg: &MessageRef) -> bool {
        self.partitions.get(&msg.partition).is_some_and(|s| s.epoch == msg.epoch)
    }

    /// A message was read. Returns its reference, or `None` when the partition is not assigned
    /// (a message delivered around a rebalance), in which case it must not be processed.
    pub fn track(&mut self, partition: i32, offset: i64, value: Bytes, key: Option<String>) -> Option<MessageRef> {
        let state = self.partitions.get_mut(&partition)?;
        // The first offset read is where the group's committed position already is.
        state.last_stored.get_or_insert(offset);
        state.pending.insert(offset, PendingMessage { value, key, remaining: 1 });
        state.highest_seen = Some(state.highest_seen.map_or(offset, |h| h.max(offset)));
        Some(MessageRef { partition, offset, epoch: state.epoch })
    }

    /// Sets how many outputs (instances) a message has; 0 finishes it at once.
    pub fn set_outputs(&mut self, msg: &MessageRef, outputs: u32) -> AckResult {
        if outputs == 0 {
            return self.finish(msg);
        }
        if let Some(p) = self.pending_mut(msg) {
            p.remaining = outputs;
        }
        AckResult::Pending
    }

    /// The original message, for dead letters.
    pub fn message(&self, msg: &MessageRef) -> Option<&PendingMessage> {
        self.partitions.get(&msg.partition).filter(|s| s.epoch == msg.epoch)?.pending.get(&msg.offset)
    }

    fn pending_mut(&mut self, msg: &MessageRef) -> Option<&mut PendingMessage> {
        self.partitions.get_mut(&msg.partition).filter(|s| s.epoch == msg.epoch)?.pending.get_mut(&msg.offset)
    }

    /// One output of a message finished (delivered, dropped or dead-lettered).
    pub fn finish(&mut self, msg: &MessageRef) -> AckResult {
        let Some(state) = self.partitions.get_mut(&msg.partition).filter(|s| s.epoch == msg.epoch) else {
            return AckResult::Stale;
        };
        let Some(pending) = state.pending.get_mut(&msg.offset) else {
            return AckResult::Stale;
        };
        pending.remaining = pending.remaining.saturating_sub(1);
        if pending.remaining > 0 {
            return AckResult::Pending;
        }
        state.pending.remove(&msg.offset);
        match state.committable() {
            Some(offset) if state.last_stored.is_none_or(|last| offset > last) => {
                state.last_stored = Some(offset);
                AckResult::Commit { partition: msg.partition, offset }
            }
            _ => AckResult::Pending,
        }
    }
}

#[cfg(test)]
mod tests;
