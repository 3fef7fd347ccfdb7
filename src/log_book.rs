//! The complete log as a receiver of engine updates keeps it: every record in order, up
//! to a cap, with gaps recorded as records of their own. Owned by the thread that drains
//! the engine's updates (the UI thread, or the main thread when headless).

use std::collections::VecDeque;

use chrono::Utc;

use crate::engine::clock::MonoTime;
use crate::engine::event::{Event, Level, Record};

/// Records kept by default; at roughly 150 bytes each this is about 300 MB at most.
pub const DEFAULT_MAX_RECORDS: usize = 2_000_000;

/// The log, oldest record first.
#[derive(Debug)]
pub struct LogBook {
    records: VecDeque<Record>,
    /// Position of `records[0]` among all records ever added.
    first_index: u64,
    max_records: usize,
    /// Records removed from the front to stay under `max_records`.
    evicted: u64,
    /// Records the engine dropped before they reached this log.
    dropped_upstream: u64,
}

impl LogBook {
    /// Creates an empty log that keeps at most `max_records`.
    pub fn new(max_records: usize) -> Self {
        LogBook {
            records: VecDeque::new(),
            first_index: 0,
            max_records: max_records.max(1),
            evicted: 0,
            dropped_upstream: 0,
        }
    }

    /// Appends an engine record.
    pub fn push(&mut self, record: Record) {
        if self.records.len() == self.max_records {
            self.records.pop_front();
            self.first_index += 1;
            self.evicted += 1;
        }
        self.records.push_back(record);
    }

    /// Records that the engine dropped `count` records before the next one, as an error
    /// record, so exports state the gap.
    pub fn note_dropped(&mut self, count: u64, at: MonoTime) {
        if count == 0 {
            return;
        }
        self.dropped_upstream += count;
        self.push_message(
            Level::Error,
            format!("{count} log records were dropped because the window did not keep up"),
            at,
        );
    }

    /// Appends a line from the program around the engine, stamped with the current
    /// wall-clock time.
    pub fn push_message(&mut self, level: Level, message: String, at: MonoTime) {
        let record = Record {
            seq: 0,
            at,
            wall: Utc::now(),
            event: Event::Message { level, message },
        };
        self.push(record);
    }

    /// Returns the number of records kept.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Returns whether no record is kept.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Returns the position of the oldest kept record among all records ever added.
    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    /// Returns the position the next record will get.
    pub fn end_index(&self) -> u64 {
        self.first_index + self.records.len() as u64
    }

    /// Returns the record at `index` (a position among all records ever added), unless
    /// it was evicted.
    pub fn get(&self, index: u64) -> Option<&Record> {
        let offset = index.checked_sub(self.first_index)?;
        self.records.get(usize::try_from(offset).ok()?)
    }

    /// Iterates over the kept records, oldest first.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Record> + '_ {
        self.records.iter()
    }

    /// Returns how many records are missing from this log: evicted to stay under the cap
    /// or dropped by the engine.
    pub fn missing(&self) -> u64 {
        self.evicted + self.dropped_upstream
    }

    /// Returns how many of the oldest records were evicted to stay under the cap.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Returns a copy of the kept records, for writing on another thread.
    pub fn snapshot(&self) -> LogSnapshot {
        LogSnapshot {
            records: self.records.iter().cloned().collect(),
            evicted: self.evicted,
        }
    }
}

/// A copy of the log for export.
#[derive(Debug, Clone)]
pub struct LogSnapshot {
    /// The records, oldest first.
    pub records: Vec<Record>,
    /// How many older records were evicted before the first one.
    pub evicted: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book_with(count: usize, max: usize) -> LogBook {
        let mut book = LogBook::new(max);
        for n in 0..count {
            book.push_message(Level::Info, format!("line {n}"), MonoTime::ZERO);
        }
        book
    }

    #[test]
    fn keeps_all_under_cap() {
        let book = book_with(10, 100);
        assert_eq!(book.len(), 10);
        assert_eq!(book.missing(), 0);
        assert_eq!(book.get(3).unwrap().event.to_string(), "line 3");
    }

    #[test]
    fn evicts_oldest_over_cap() {
        let book = book_with(10, 4);
        assert_eq!(book.len(), 4);
        assert_eq!(book.evicted(), 6);
        assert_eq!(book.first_index(), 6);
        assert!(book.get(5).is_none());
        assert_eq!(book.get(6).unwrap().event.to_string(), "line 6");
        assert_eq!(book.end_index(), 10);
    }

    #[test]
    fn dropped_records_become_error_line() {
        let mut book = LogBook::new(10);
        book.note_dropped(42, MonoTime::ZERO);
        assert_eq!(book.missing(), 42);
        let record = book.get(0).unwrap();
        assert_eq!(record.level(), Level::Error);
        assert!(
            record
                .event
                .to_string()
                .starts_with("42 log records were dropped")
        );
    }
}
