//! The window's copy of the session map, rebuilt from engine updates, and its sort
//! order. Owned by the UI thread.
//!
//! The order is kept in a `Vec` and sorted again only when sessions change or the sort
//! column does, never per frame. Idle time and time left both follow last activity, so
//! ageing alone never changes the order.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::Duration;

use crate::engine::clock::MonoTime;
use crate::engine::event::{Event, Update};
use crate::engine::session::{Session, SessionId};

/// A sortable column of the sessions table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// Session id.
    Id,
    /// Source of its activity.
    Source,
    /// Time of its first activity.
    Created,
    /// Time of its latest activity.
    LastActive,
    /// Time since its latest activity.
    IdleFor,
    /// Time until it becomes stale.
    TimeLeft,
    /// Number of activity reports.
    Requests,
}

impl Column {
    /// Every column, in display order.
    pub const ALL: [Column; 7] = [
        Column::Id,
        Column::Source,
        Column::Created,
        Column::LastActive,
        Column::IdleFor,
        Column::TimeLeft,
        Column::Requests,
    ];

    /// Returns the column heading.
    pub fn title(self) -> &'static str {
        match self {
            Column::Id => "Session",
            Column::Source => "Source",
            Column::Created => "Created",
            Column::LastActive => "Last active",
            Column::IdleFor => "Idle for",
            Column::TimeLeft => "Time until stale",
            Column::Requests => "Requests",
        }
    }
}

/// Sessions by id with a sorted order for display.
#[derive(Debug)]
pub struct SessionRows {
    sessions: HashMap<SessionId, Session>,
    order: Vec<SessionId>,
    sort_column: Column,
    ascending: bool,
    order_is_stale: bool,
}

impl Default for SessionRows {
    fn default() -> Self {
        SessionRows {
            sessions: HashMap::new(),
            order: Vec::new(),
            sort_column: Column::TimeLeft,
            ascending: true,
            order_is_stale: false,
        }
    }
}

impl SessionRows {
    /// Applies an engine update: removals from its records, then the touched sessions;
    /// or, when it carries a snapshot, replaces everything.
    pub fn apply(&mut self, update: &Update) {
        if let Some(snapshot) = &update.snapshot {
            self.sessions = snapshot
                .iter()
                .map(|session| (session.id.clone(), session.clone()))
                .collect();
            self.order_is_stale = true;
            return;
        }
        for record in &update.records {
            if let Event::SessionRemoved { id, .. } = &record.event {
                self.sessions.remove(id.as_str());
                self.order_is_stale = true;
            }
        }
        for session in &update.touched {
            self.sessions.insert(session.id.clone(), session.clone());
            self.order_is_stale = true;
        }
    }

    /// Returns the number of sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Returns whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Returns the session with this id.
    pub fn get(&self, id: &str) -> Option<&Session> {
        self.sessions.get(id)
    }

    /// Returns the column the rows are sorted by and whether the order is ascending.
    pub fn sort(&self) -> (Column, bool) {
        (self.sort_column, self.ascending)
    }

    /// Sorts by `column`; choosing the current column again reverses the order.
    pub fn sort_by(&mut self, column: Column) {
        if self.sort_column == column {
            self.ascending = !self.ascending;
        } else {
            self.sort_column = column;
            self.ascending = true;
        }
        self.order_is_stale = true;
    }

    /// Returns the ids in display order, sorting first if sessions or the sort changed.
    pub fn ordered_ids(&mut self) -> &[SessionId] {
        if self.order_is_stale {
            self.resort();
        }
        &self.order
    }

    /// Returns the sessions in display order, sorting first if sessions or the sort
    /// changed.
    pub fn sorted(&mut self) -> SortedRows<'_> {
        if self.order_is_stale {
            self.resort();
        }
        SortedRows {
            order: &self.order,
            sessions: &self.sessions,
        }
    }

    /// Counts sessions idle for at least `idle_timeout` at `now`: stale, but not yet
    /// removed by a sweep.
    pub fn count_stale(&self, now: MonoTime, idle_timeout: Duration) -> usize {
        self.sessions
            .values()
            .filter(|session| session.is_stale_at(now, idle_timeout))
            .count()
    }

    fn resort(&mut self) {
        self.order.clear();
        self.order.extend(self.sessions.keys().cloned());
        let sessions = &self.sessions;
        let column = self.sort_column;
        self.order
            .sort_unstable_by(|a, b| compare(&sessions[a], &sessions[b], column));
        if !self.ascending {
            self.order.reverse();
        }
        self.order_is_stale = false;
    }
}

/// Sessions in display order, borrowed from [`SessionRows`].
#[derive(Debug, Clone, Copy)]
pub struct SortedRows<'a> {
    order: &'a [SessionId],
    sessions: &'a HashMap<SessionId, Session>,
}

impl<'a> SortedRows<'a> {
    /// Returns the number of rows.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Returns whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Returns the session shown in row `index`.
    pub fn get(&self, index: usize) -> Option<&'a Session> {
        self.sessions.get(self.order.get(index)?)
    }
}

fn compare(a: &Session, b: &Session, column: Column) -> Ordering {
    let primary = match column {
        Column::Id => a.id.cmp(&b.id),
        Column::Source => a.source.cmp(&b.source),
        Column::Created => a.created.cmp(&b.created),
        Column::LastActive | Column::TimeLeft => a.last_active.cmp(&b.last_active),
        Column::IdleFor => b.last_active.cmp(&a.last_active),
        Column::Requests => a.activity_count.cmp(&b.activity_count),
    };
    primary.then_with(|| a.id.cmp(&b.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::Status;
    use crate::engine::session::Source;

    fn session(id: &str, last_secs: u64, count: u64) -> Session {
        let at = MonoTime::from_duration(Duration::from_secs(last_secs));
        Session {
            id: SessionId::new(id).unwrap(),
            source: Source::Simulator,
            created: MonoTime::ZERO,
            last_active: at,
            activity_count: count,
            meta: None,
        }
    }

    fn update(touched: Vec<Session>) -> Update {
        Update {
            records: Vec::new(),
            touched,
            snapshot: None,
            records_dropped: 0,
            status: Status {
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
            },
        }
    }

    fn names(rows: &mut SessionRows) -> Vec<String> {
        rows.ordered_ids().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn default_order_is_soonest_stale_first() {
        let mut rows = SessionRows::default();
        rows.apply(&update(vec![
            session("b", 20, 1),
            session("a", 10, 5),
            session("c", 30, 2),
        ]));
        assert_eq!(names(&mut rows), ["a", "b", "c"]);
    }

    #[test]
    fn sort_by_again_reverses() {
        let mut rows = SessionRows::default();
        rows.apply(&update(vec![
            session("b", 20, 1),
            session("a", 10, 5),
            session("c", 30, 2),
        ]));
        rows.sort_by(Column::Requests);
        assert_eq!(names(&mut rows), ["b", "c", "a"]);
        rows.sort_by(Column::Requests);
        assert_eq!(names(&mut rows), ["a", "c", "b"]);
        rows.sort_by(Column::IdleFor);
        assert_eq!(names(&mut rows), ["c", "b", "a"]);
    }

    #[test]
    fn snapshot_replaces_rows() {
        let mut rows = SessionRows::default();
        rows.apply(&update(vec![session("a", 10, 1)]));
        let mut replacing = update(Vec::new());
        replacing.snapshot = Some(vec![session("z", 5, 1)]);
        rows.apply(&replacing);
        assert_eq!(names(&mut rows), ["z"]);
    }

    #[test]
    fn stale_count_uses_idle_timeout() {
        let mut rows = SessionRows::default();
        rows.apply(&update(vec![session("a", 0, 1), session("b", 100, 1)]));
        let now = MonoTime::from_duration(Duration::from_secs(300));
        assert_eq!(rows.count_stale(now, Duration::from_secs(300)), 1);
    }
}
