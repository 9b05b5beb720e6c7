//! How many decoded bytes the decodes that share a budget may hold at once.
//!
//! A decode reserves the bytes its attributes declare (all frames, [`super::decode_reserved`])
//! once the attributes and the codec streams are checked and before the codec allocates; the
//! caller gives them back by dropping the [`Reservation`] once it is done with the samples. A
//! decode that finds too little left waits for the others to give theirs back; one larger than
//! the whole budget waits until it has the budget to itself, so it never waits forever and
//! never runs beside another.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// Decoded bytes shared by concurrent decodes (see the module documentation).
#[derive(Debug)]
pub struct DecodeBudget {
    capacity: u64,
    state: Mutex<State>,
    returned: Condvar,
}

#[derive(Debug)]
struct State {
    free: u64,
    /// The most ever reserved at once.
    peak: u64,
    /// Reservations blocked until bytes are given back.
    waiting: usize,
}

impl DecodeBudget {
    /// A budget of `capacity` decoded bytes (at least 1).
    pub fn new(capacity: u64) -> Self {
        let capacity = capacity.max(1);
        Self { capacity, state: Mutex::new(State { free: capacity, peak: 0, waiting: 0 }), returned: Condvar::new() }
    }

    /// The bytes the budget holds in all.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The bytes not reserved now.
    pub fn available(&self) -> u64 {
        self.state().free
    }

    /// The most bytes ever reserved at once.
    pub fn peak(&self) -> u64 {
        self.state().peak
    }

    /// How many reservations are waiting for bytes to be given back now.
    pub fn waiting(&self) -> usize {
        self.state().waiting
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few counters updated in one step each: a panic elsewhere cannot leave
        // them half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves `bytes` (at most the whole budget), blocking until they are free. Call it off
    /// the async executor: it blocks the thread.
    pub fn reserve(self: &Arc<Self>, bytes: u64) -> Reservation {
        let bytes = bytes.min(self.capacity);
        let mut state = self.state();
        if state.free < bytes {
            state.waiting += 1;
            state = self.returned.wait_while(state, |state| state.free < bytes).unwrap_or_else(PoisonError::into_inner);
            state.waiting -= 1;
        }
        state.free -= bytes;
        state.peak = state.peak.max(self.capacity - state.free);
        Reservation { budget: Arc::clone(self), bytes }
    }
}

/// Bytes reserved from a [`DecodeBudget`], given back on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<DecodeBudget>,
    bytes: u64,
}

impl Reservation {
    /// The bytes reserved.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.state().free += self.bytes;
        self.budget.returned.notify_all();
    }
}
