//! A bounded set of recently seen keys, oldest out first: how sinks remember which shared
//! outputs (a series' report, a series' FHIR bundle, carried by every instance of the series)
//! they already delivered, so each goes out once. Forgetting is safe: a key that fell out is
//! delivered again, and the destinations take a repeat as an update of the same thing.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// Keys delivered lately, at most `capacity` of them.
#[derive(Debug)]
pub struct RecentSet {
    capacity: usize,
    inner: Mutex<(HashSet<String>, VecDeque<String>)>,
}

impl RecentSet {
    /// An empty set that keeps the last `capacity` keys (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), inner: Mutex::new((HashSet::new(), VecDeque::new())) }
    }

    /// Whether `key` is among the kept keys.
    pub fn contains(&self, key: &str) -> bool {
        self.inner.lock().expect("recent set lock").0.contains(key)
    }

    /// Keeps `key`, forgetting the oldest key beyond the capacity.
    pub fn insert(&self, key: &str) {
        let mut guard = self.inner.lock().expect("recent set lock");
        let (set, order) = &mut *guard;
        if set.insert(key.to_string()) {
            order.push_back(key.to_string());
            if order.len() > self.capacity {
                if let Some(oldest) = order.pop_front() {
                    set.remove(&oldest);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
