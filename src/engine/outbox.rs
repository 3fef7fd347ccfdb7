//! Delivery of updates from the engine worker to its receiver over a bounded channel.
//!
//! Policy when the channel is full: nothing blocks the worker. Log records queue in the
//! worker up to a cap; past it the oldest are dropped and counted, and the next update
//! carries the count and a snapshot of the map so the receiver's copy is correct again.
//! Session changes are coalesced: the worker remembers which sessions changed and sends
//! their current state once, so a hidden window costs memory bounded by the map size
//! plus the record cap.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use hashbrown::HashSet;

use super::Waker;
use super::event::{Record, Status, Update};
use super::session::SessionId;
use super::store::SessionStore;

/// Touched sessions the outbox keeps room for between updates.
const TOUCHED_CAPACITY_KEPT: usize = 4096;

/// Limits of the outbox.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutboxLimits {
    /// Records kept while the receiver does not keep up; older ones are dropped.
    pub max_pending_records: usize,
    /// Records in one update, so the receiver can apply one within a frame.
    pub max_records_per_update: usize,
    /// Minimum time between updates, so bursts arrive as one update.
    pub flush_interval: Duration,
}

pub(crate) struct Outbox {
    sender: Sender<Update>,
    waker: Waker,
    limits: OutboxLimits,
    records: VecDeque<Record>,
    touched: HashSet<SessionId>,
    /// Records dropped since the last update that was sent.
    dropped_unsent: u64,
    dropped_total: u64,
    last_flush: Option<Instant>,
    disconnected: bool,
}

impl Outbox {
    pub fn new(sender: Sender<Update>, waker: Waker, limits: OutboxLimits) -> Self {
        Outbox {
            sender,
            waker,
            limits,
            records: VecDeque::new(),
            touched: HashSet::new(),
            dropped_unsent: 0,
            dropped_total: 0,
            last_flush: None,
            disconnected: false,
        }
    }

    pub fn push(&mut self, record: Record) {
        if self.records.len() >= self.limits.max_pending_records {
            self.records.pop_front();
            self.dropped_unsent += 1;
            self.dropped_total += 1;
        }
        self.records.push_back(record);
    }

    pub fn mark_touched(&mut self, id: &SessionId) {
        if self.dropped_unsent == 0 && !self.touched.contains(id.as_str()) {
            self.touched.insert(id.clone());
        }
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    pub fn has_pending(&self) -> bool {
        !self.records.is_empty() || !self.touched.is_empty() || self.dropped_unsent > 0
    }

    /// Returns when the next update may be sent, or `None` when nothing is pending.
    pub fn next_flush(&self) -> Option<Instant> {
        if !self.has_pending() || self.disconnected {
            return None;
        }
        Some(match self.last_flush {
            Some(last) => last + self.limits.flush_interval,
            None => Instant::now(),
        })
    }

    /// Sends pending updates if the flush interval has passed, or at once with `force`.
    /// Stops at the first full slot in the channel and keeps the rest pending.
    pub fn flush(&mut self, store: &SessionStore, status: &Status, force: bool) {
        if self.disconnected || !self.has_pending() {
            return;
        }
        if !force && self.next_flush().is_some_and(|due| Instant::now() < due) {
            return;
        }

        let mut sent_any = false;
        while self.has_pending() && !self.sender.is_full() {
            let update = self.take_update(store, status);
            match self.sender.try_send(update) {
                Ok(()) => sent_any = true,
                Err(TrySendError::Full(update)) => {
                    self.put_back(update);
                    break;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.disconnected = true;
                    break;
                }
            }
        }
        if sent_any {
            self.last_flush = Some(Instant::now());
            (self.waker)();
        }
    }

    /// Returns everything still pending as updates, for the caller to hand over when the
    /// worker stops.
    pub fn drain(&mut self, store: &SessionStore, status: &Status) -> Vec<Update> {
        let mut updates = Vec::new();
        while self.has_pending() {
            updates.push(self.take_update(store, status));
        }
        updates
    }

    /// Builds the next update. After dropped records it carries every pending record and
    /// a snapshot; otherwise up to the per-update limit, with the touched sessions added
    /// to the update that empties the record queue.
    fn take_update(&mut self, store: &SessionStore, status: &Status) -> Update {
        let snapshot = (self.dropped_unsent > 0).then(|| store.iter().collect());
        let count = if snapshot.is_some() {
            self.records.len()
        } else {
            self.records.len().min(self.limits.max_records_per_update)
        };
        let records: Vec<Record> = self.records.drain(..count).collect();
        let touched = if self.records.is_empty() && snapshot.is_none() {
            self.touched
                .drain()
                .filter_map(|id| store.get(id.as_str()))
                .collect()
        } else {
            Vec::new()
        };
        if snapshot.is_some() {
            self.touched.clear();
        }
        self.release_burst_capacity();
        Update {
            records,
            touched,
            snapshot,
            records_dropped: std::mem::take(&mut self.dropped_unsent),
            status: status.clone(),
        }
    }

    /// Frees the capacity that a burst of records or touched sessions left behind once
    /// it has been sent, so that the memory held between bursts stays small.
    fn release_burst_capacity(&mut self) {
        let records = 2 * self.limits.max_records_per_update;
        if self.records.is_empty() && self.records.capacity() > records {
            self.records.shrink_to(records);
        }
        if self.touched.is_empty() && self.touched.capacity() > TOUCHED_CAPACITY_KEPT {
            self.touched.shrink_to(TOUCHED_CAPACITY_KEPT);
        }
    }

    /// Restores an update that could not be sent. Its touched sessions are marked again
    /// and looked up anew at the next flush.
    fn put_back(&mut self, update: Update) {
        for record in update.records.into_iter().rev() {
            self.records.push_front(record);
        }
        // A snapshot goes with dropped records, so restoring the count rebuilds it.
        self.dropped_unsent += update.records_dropped;
        for session in update.touched {
            self.touched.insert(session.id);
        }
    }
}
