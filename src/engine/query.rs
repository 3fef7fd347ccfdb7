//! Reads of the engine's state from other threads. A [`Query`] travels to the worker in
//! [`Command::Query`](super::event::Command::Query); the worker replies from its own
//! map between other commands and hands the [`Answer`] to a [`Reply`], so readers never
//! share the map. An answer contains at most the number of sessions the query asks for.

use std::fmt;

use chrono::{DateTime, Utc};
use crossbeam_channel::Receiver;
use serde::Serialize;

use super::clock::MonoTime;
use super::event::{RemovalCause, Status};
use super::session::{Session, SessionId};
use super::store::{SessionStore, stale_cutoff};

/// A read of the engine's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Sessions from the least recently active (closest to stale) on, at most `limit`.
    Sessions {
        /// Maximum number of sessions in the answer.
        limit: usize,
    },
    /// The session with this id, if the map has it.
    Session(SessionId),
    /// Settings and counters, with the number of stale sessions.
    Stats,
}

/// Sessions removed since the engine started, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RemovalCounts {
    /// Removed by a sweep.
    pub sweep: u64,
    /// Replaced by a new session when activity found them stale.
    pub expired_on_access: u64,
    /// Ended by their owner.
    pub ended: u64,
}

impl RemovalCounts {
    /// Counts one removal.
    pub fn add(&mut self, cause: RemovalCause) {
        let counter = match cause {
            RemovalCause::Sweep => &mut self.sweep,
            RemovalCause::ExpiredOnAccess => &mut self.expired_on_access,
            RemovalCause::Ended => &mut self.ended,
        };
        *counter += 1;
    }
}

/// The worker's answer to a [`Query`].
#[derive(Debug, Clone)]
pub struct Answer {
    /// Engine time when the worker answered; ages in the answer are relative to it.
    pub now: MonoTime,
    /// Wall-clock time of `now`.
    pub wall_now: DateTime<Utc>,
    /// Settings and counters; `status.sessions` is the size of the whole map.
    pub status: Status,
    /// Removals since start, by cause.
    pub removals: RemovalCounts,
    /// Sessions idle for at least the idle timeout and not yet removed; only counted
    /// for [`Query::Stats`], because counting visits each of them.
    pub stale: Option<u64>,
    /// The sessions asked for, least recently active first.
    pub sessions: Vec<Session>,
}

/// Receiver of an [`Answer`], called once on the worker thread. It must not block: a
/// reply that waits stalls every command behind it.
pub struct Reply(Box<dyn FnOnce(Answer) + Send>);

impl Reply {
    /// Wraps a function that takes the answer, such as the sending half of a one-shot
    /// channel.
    pub fn new(on_answer: impl FnOnce(Answer) + Send + 'static) -> Reply {
        Reply(Box::new(on_answer))
    }

    /// Returns a reply that puts the answer on a channel, and the channel's receiver, for
    /// callers that can block.
    pub fn channel() -> (Reply, Receiver<Answer>) {
        let (sender, receiver) = crossbeam_channel::bounded(1);
        let reply = Reply::new(move |answer| {
            // The channel has room for the one answer; a caller that gave up has
            // dropped the receiver, and then the answer is not needed.
            let _ = sender.try_send(answer);
        });
        (reply, receiver)
    }

    /// Hands `answer` to the receiver.
    pub(crate) fn send(self, answer: Answer) {
        (self.0)(answer)
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reply")
    }
}

/// The worker's state that a query reads, borrowed for one answer.
pub(crate) struct QueryContext<'a> {
    pub store: &'a SessionStore,
    pub status: Status,
    pub removals: RemovalCounts,
    pub now: MonoTime,
    pub wall_now: DateTime<Utc>,
}

/// Answers `query` from the worker's state.
pub(crate) fn answer(query: Query, context: QueryContext<'_>) -> Answer {
    let QueryContext {
        store,
        status,
        removals,
        now,
        wall_now,
    } = context;
    let mut stale = None;
    let sessions = match query {
        Query::Sessions { limit } => store.iter().take(limit).collect(),
        Query::Session(id) => store.get(id.as_str()).into_iter().collect(),
        Query::Stats => {
            let count = stale_cutoff(now, status.idle_timeout)
                .map_or(0, |cutoff| store.count_stale(cutoff));
            stale = Some(count as u64);
            Vec::new()
        }
    };
    Answer {
        now,
        wall_now,
        status,
        removals,
        stale,
        sessions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_counts_by_cause() {
        let mut counts = RemovalCounts::default();
        counts.add(RemovalCause::Sweep);
        counts.add(RemovalCause::Sweep);
        counts.add(RemovalCause::Ended);
        assert_eq!(counts.sweep, 2);
        assert_eq!(counts.expired_on_access, 0);
        assert_eq!(counts.ended, 1);
    }
}
