//! Delivery of updates from the engine worker to its receiver over a bounded channel.
//!
//! Policy when the channel is full: nothing blocks the worker. Log records queue in the
//! worker up to a cap; past it the oldest are dropped and counted. A dropped removal
//! record leaves the id of the removed session behind, which the next updates carry, so
//! a sweep of millions never needs a copy of the map. After any other dropped record
//! the next update carries a snapshot of the map so the receiver's copy is correct
//! again. Session changes are coalesced: the session store lists which sessions
//! changed, and the outbox sends their current state once, so a hidden window costs
//! memory bounded by the map size plus the record cap.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};

use super::Waker;
use super::event::{Event, Record, Status, Update};
use super::session::SessionId;
use super::store::SessionStore;

/// Removed ids the outbox keeps room for between updates.
const REMOVED_CAPACITY_KEPT: usize = 4096;

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
    /// Whether sessions were touched since the last update that carried them.
    touched: bool,
    /// Sessions whose removal records were dropped, oldest first.
    removed: VecDeque<SessionId>,
    /// Records dropped since the last update that was sent.
    dropped_unsent: u64,
    /// Whether a dropped record other than a removal calls for a snapshot.
    snapshot_due: bool,
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
            touched: false,
            removed: VecDeque::new(),
            dropped_unsent: 0,
            snapshot_due: false,
            dropped_total: 0,
            last_flush: None,
            disconnected: false,
        }
    }

    pub fn push(&mut self, record: Record) {
        if self.records.len() >= self.limits.max_pending_records {
            match self.records.pop_front().map(|record| record.event) {
                Some(Event::SessionRemoved { id, .. }) => self.removed.push_back(id),
                _ => self.snapshot_due = true,
            }
            self.dropped_unsent += 1;
            self.dropped_total += 1;
        }
        self.records.push_back(record);
    }

    /// Notes that the store lists touched sessions to send.
    pub fn mark_touched(&mut self) {
        self.touched = true;
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    pub fn has_pending(&self) -> bool {
        !self.records.is_empty()
            || self.touched
            || !self.removed.is_empty()
            || self.dropped_unsent > 0
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
    pub fn flush(&mut self, store: &mut SessionStore, status: &Status, force: bool) {
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
                    self.put_back(update, store);
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
    pub fn drain(&mut self, store: &mut SessionStore, status: &Status) -> Vec<Update> {
        let mut updates = Vec::new();
        while self.has_pending() {
            updates.push(self.take_update(store, status));
        }
        updates
    }

    /// Builds the next update. After a dropped record other than a removal it carries
    /// every pending record and a snapshot. Otherwise it carries up to the per-update
    /// limit of removed ids, then of records once no removed id is left, with the
    /// touched sessions added to the update that empties both queues.
    fn take_update(&mut self, store: &mut SessionStore, status: &Status) -> Update {
        let snapshot = std::mem::take(&mut self.snapshot_due).then(|| store.iter().collect());
        let limit = self.limits.max_records_per_update;
        let removed: Vec<SessionId> = if snapshot.is_some() {
            self.removed.clear();
            Vec::new()
        } else {
            let count = self.removed.len().min(limit);
            self.removed.drain(..count).collect()
        };
        // Records wait until every removed id older than them is sent.
        let count = if snapshot.is_some() {
            self.records.len()
        } else if self.removed.is_empty() {
            self.records.len().min(limit)
        } else {
            0
        };
        let records: Vec<Record> = self.records.drain(..count).collect();
        let queues_empty = self.records.is_empty() && self.removed.is_empty();
        let touched = if queues_empty && snapshot.is_none() && self.touched {
            self.touched = false;
            store.take_changed()
        } else {
            Vec::new()
        };
        if snapshot.is_some() {
            self.touched = false;
            store.clear_changed();
        }
        self.release_burst_capacity();
        Update {
            records,
            removed,
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
        if self.removed.is_empty() && self.removed.capacity() > REMOVED_CAPACITY_KEPT {
            self.removed.shrink_to(REMOVED_CAPACITY_KEPT);
        }
    }

    /// Restores an update that could not be sent. Its touched sessions are marked again
    /// in the store and read anew at the next flush.
    fn put_back(&mut self, update: Update, store: &mut SessionStore) {
        for record in update.records.into_iter().rev() {
            self.records.push_front(record);
        }
        // Restoring the flag rebuilds a snapshot from the map as it is then.
        self.dropped_unsent += update.records_dropped;
        self.snapshot_due |= update.snapshot.is_some();
        for id in update.removed.into_iter().rev() {
            self.removed.push_front(id);
        }
        for session in &update.touched {
            store.mark_changed_id(session.id.as_str());
            self.touched = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::clock::MonoTime;
    use crate::engine::event::{Level, RemovalCause};
    use crate::engine::session::Source;

    fn record(event: Event) -> Record {
        Record {
            seq: 0,
            at: MonoTime::ZERO,
            wall: chrono::DateTime::UNIX_EPOCH,
            event,
        }
    }

    fn removal(name: &str) -> Record {
        record(Event::SessionRemoved {
            id: SessionId::new(name).unwrap(),
            source: Source::Api,
            idle: Duration::ZERO,
            activity_count: 1,
            cause: RemovalCause::Sweep,
        })
    }

    fn status() -> Status {
        Status {
            idle_timeout: Duration::from_secs(300),
            sweep_interval: Duration::from_secs(300),
            next_sweep_due: MonoTime::ZERO,
            sessions: 0,
            removed_total: 0,
            sweeps_finished: 0,
            sweeps_failed: 0,
            sweep_running: false,
            last_sweep: None,
            records_dropped_total: 0,
        }
    }

    fn outbox(max_pending_records: usize) -> Outbox {
        let (sender, _) = crossbeam_channel::bounded(1);
        let limits = OutboxLimits {
            max_pending_records,
            max_records_per_update: 2,
            flush_interval: Duration::ZERO,
        };
        Outbox::new(sender, super::super::no_waker(), limits)
    }

    #[test]
    fn dropped_removals_become_ids() {
        let mut outbox = outbox(2);
        for name in ["a", "b", "c", "d", "e"] {
            outbox.push(removal(name));
        }
        let mut store = SessionStore::new();

        let first = outbox.take_update(&mut store, &status());
        assert!(first.snapshot.is_none());
        assert_eq!(first.records_dropped, 3);
        let ids: Vec<&str> = first.removed.iter().map(SessionId::as_str).collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(
            first.records.is_empty(),
            "records wait for older removed ids"
        );

        let second = outbox.take_update(&mut store, &status());
        let ids: Vec<&str> = second.removed.iter().map(SessionId::as_str).collect();
        assert_eq!(ids, ["c"]);
        assert_eq!(second.records.len(), 2);
        assert!(!outbox.has_pending());
    }

    #[test]
    fn other_dropped_records_bring_a_snapshot() {
        let mut outbox = outbox(1);
        outbox.push(record(Event::Notice {
            source: Source::Api,
            level: Level::Info,
            message: "first".into(),
        }));
        outbox.push(removal("a"));
        let update = outbox.take_update(&mut SessionStore::new(), &status());
        assert_eq!(update.snapshot, Some(Vec::new()));
        assert_eq!(update.records_dropped, 1);
    }
}
