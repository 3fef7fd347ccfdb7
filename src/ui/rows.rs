//! The window's copy of the session map, rebuilt from engine updates, and its sort
//! order. Owned by the UI thread.
//!
//! Rows are kept compact, as the engine keeps its nodes: a slab of 48-byte rows found by
//! a hash table of slab indices, with times as nanoseconds since the clock's origin.
//! The display order is a `Vec` of slab indices, updated only when sessions change or
//! the sort column does, never per frame. Removed rows are filtered out, and changed
//! rows are sorted among themselves and merged in. An update then costs one pass over
//! the order plus a sort of what changed, not a sort of every row. A second order by last
//! activity gives the number of stale rows by binary search. Idle time and time left
//! both follow last activity, so ageing alone never changes either order.

use std::cmp::Ordering;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};

use crate::engine::clock::MonoTime;
use crate::engine::event::{Event, Update};
use crate::engine::session::{Session, SessionId, SessionMeta, Source};

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

/// One session as the window keeps it: 48 bytes.
#[derive(Debug, Clone)]
struct Row {
    id: SessionId,
    created: u64,
    last_active: u64,
    activity_count: u64,
    source: Source,
    live: bool,
    /// Changed since the orders were last brought up to date.
    dirty: bool,
    has_meta: bool,
}

impl Row {
    fn vacant() -> Row {
        Row {
            id: SessionId::placeholder(),
            created: 0,
            last_active: 0,
            activity_count: 0,
            source: Source::Simulator,
            live: false,
            dirty: false,
            has_meta: false,
        }
    }
}

fn to_nanos(at: MonoTime) -> u64 {
    u64::try_from(at.since_origin().as_nanos()).unwrap_or(u64::MAX)
}

fn from_nanos(nanos: u64) -> MonoTime {
    MonoTime::from_duration(Duration::from_nanos(nanos))
}

/// Sessions by id with a sorted order for display.
#[derive(Debug)]
pub struct SessionRows {
    rows: Vec<Row>,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    meta: HashMap<u32, SessionMeta>,
    len: usize,
    /// Live rows in display order, once brought up to date.
    order: Vec<u32>,
    /// Live rows by last activity, oldest first, once brought up to date.
    by_activity: Vec<u32>,
    /// Rows changed since the orders were brought up to date; may hold duplicates
    /// and rows removed since.
    dirty: Vec<u32>,
    /// One bit per slot, set for rows removed or changed since the orders were brought
    /// up to date: their entries leave both orders. A bitmap, so that filtering the
    /// orders reads no rows.
    outdated: Vec<u64>,
    /// Slots whose bit is set in `outdated`.
    outdated_slots: Vec<u32>,
    /// Whether the display order must be sorted in full.
    resort: bool,
    sort_column: Column,
    ascending: bool,
    /// Time the latest update of the orders took, when it had anything to do.
    refresh_cost: Duration,
}

impl Default for SessionRows {
    fn default() -> Self {
        SessionRows {
            rows: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            meta: HashMap::new(),
            len: 0,
            order: Vec::new(),
            by_activity: Vec::new(),
            dirty: Vec::new(),
            outdated: Vec::new(),
            outdated_slots: Vec::new(),
            resort: false,
            refresh_cost: Duration::ZERO,
            sort_column: Column::TimeLeft,
            ascending: true,
        }
    }
}

impl SessionRows {
    /// Applies an engine update: its removed ids, removals from its records, then the
    /// touched sessions; or, when it carries a snapshot, replaces everything.
    pub fn apply(&mut self, update: &Update) {
        if let Some(snapshot) = &update.snapshot {
            let (column, ascending) = (self.sort_column, self.ascending);
            *self = SessionRows {
                sort_column: column,
                ascending,
                ..SessionRows::default()
            };
            for session in snapshot {
                self.upsert(session);
            }
            return;
        }
        for id in &update.removed {
            self.remove(id.as_str());
        }
        for record in &update.records {
            if let Event::SessionRemoved { id, .. } = &record.event {
                self.remove(id.as_str());
            }
        }
        for session in &update.touched {
            self.upsert(session);
        }
    }

    /// Returns the number of sessions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the session with this id.
    pub fn get(&self, id: &str) -> Option<Session> {
        self.find(id).map(|slot| self.session(slot))
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
        self.resort = true;
    }

    /// Returns the ids in display order, updating the order first if sessions or the
    /// sort changed.
    pub fn ordered_ids(&mut self) -> impl ExactSizeIterator<Item = &SessionId> + '_ {
        self.refresh();
        self.order.iter().map(|&slot| &self.rows[slot as usize].id)
    }

    /// Returns the sessions in display order, updating the order first if sessions or
    /// the sort changed.
    pub fn sorted(&mut self) -> SortedRows<'_> {
        self.refresh();
        SortedRows { rows: self }
    }

    /// Counts sessions idle for at least `idle_timeout` at `now`: stale, but not yet
    /// removed by a sweep. Updates the orders first if sessions changed.
    pub fn count_stale(&mut self, now: MonoTime, idle_timeout: Duration) -> usize {
        self.refresh();
        let Some(cutoff) = now.checked_sub(idle_timeout) else {
            return 0;
        };
        let cutoff = to_nanos(cutoff);
        self.by_activity
            .partition_point(|&slot| self.rows[slot as usize].last_active <= cutoff)
    }

    fn session(&self, slot: u32) -> Session {
        let row = &self.rows[slot as usize];
        Session {
            id: row.id.clone(),
            source: row.source,
            created: from_nanos(row.created),
            last_active: from_nanos(row.last_active),
            activity_count: row.activity_count,
            meta: row
                .has_meta
                .then(|| self.meta.get(&slot).cloned())
                .flatten(),
        }
    }

    fn find(&self, id: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(id);
        self.index
            .find(hash, |&slot| self.rows[slot as usize].id.as_str() == id)
            .copied()
    }

    fn upsert(&mut self, session: &Session) {
        let slot = match self.find(session.id.as_str()) {
            Some(slot) => slot,
            None => self.insert(session.id.clone()),
        };
        let row = &mut self.rows[slot as usize];
        row.source = session.source;
        row.created = to_nanos(session.created);
        row.last_active = to_nanos(session.last_active);
        row.activity_count = session.activity_count;
        row.has_meta = session.meta.is_some();
        match &session.meta {
            Some(meta) => {
                self.meta.insert(slot, meta.clone());
            }
            None => {
                self.meta.remove(&slot);
            }
        }
        self.mark_dirty(slot);
    }

    fn insert(&mut self, id: SessionId) -> u32 {
        let hash = self.hasher.hash_one(id.as_str());
        let row = Row {
            id,
            live: true,
            ..Row::vacant()
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.rows[slot as usize] = row;
                slot
            }
            None => {
                self.rows.push(row);
                u32::try_from(self.rows.len() - 1).expect("fewer than 2^32 rows")
            }
        };
        let rows = &self.rows;
        let hasher = &self.hasher;
        self.index.insert_unique(hash, slot, |&other| {
            hasher.hash_one(rows[other as usize].id.as_str())
        });
        self.len += 1;
        slot
    }

    fn remove(&mut self, id: &str) {
        let hash = self.hasher.hash_one(id);
        let rows = &self.rows;
        let Ok(entry) = self
            .index
            .find_entry(hash, |&slot| rows[slot as usize].id.as_str() == id)
        else {
            return;
        };
        let (slot, _) = entry.remove();
        self.rows[slot as usize] = Row::vacant();
        self.meta.remove(&slot);
        self.free.push(slot);
        self.len -= 1;
        self.mark_outdated(slot);
    }

    fn mark_dirty(&mut self, slot: u32) {
        let row = &mut self.rows[slot as usize];
        if !row.dirty {
            row.dirty = true;
            self.dirty.push(slot);
        }
        self.mark_outdated(slot);
    }

    fn mark_outdated(&mut self, slot: u32) {
        let (word, bit) = (slot as usize / 64, 1u64 << (slot % 64));
        if self.outdated.len() <= word {
            self.outdated
                .resize(self.rows.len().div_ceil(64).max(word + 1), 0);
        }
        if self.outdated[word] & bit == 0 {
            self.outdated[word] |= bit;
            self.outdated_slots.push(slot);
        }
    }

    /// Returns the time the latest update of the orders took when it had anything to
    /// do: about what the next one costs after as many changes.
    pub fn refresh_cost(&self) -> Duration {
        self.refresh_cost
    }

    /// Brings both orders up to date, if anything changed, and times it.
    fn refresh(&mut self) {
        if self.outdated_slots.is_empty() && !self.resort {
            return;
        }
        let started = Instant::now();
        self.update_orders();
        self.refresh_cost = started.elapsed();
    }

    /// Drops removed and changed rows from both orders, sorts the changed rows and
    /// merges them in. Sorts the display order in full after the sort column changed.
    fn update_orders(&mut self) {
        let mut changed = std::mem::take(&mut self.dirty);
        changed.sort_unstable();
        changed.dedup();
        changed.retain(|&slot| self.rows[slot as usize].live);

        let rows = &self.rows;
        let outdated = &self.outdated;
        let keep = |slot: &u32| {
            outdated
                .get(*slot as usize / 64)
                .is_none_or(|word| word & (1 << (*slot % 64)) == 0)
        };
        if self.resort {
            self.order.clear();
            self.order
                .extend((0..rows.len() as u32).filter(|&slot| rows[slot as usize].live));
            let (column, ascending) = (self.sort_column, self.ascending);
            self.order.sort_unstable_by(|&a, &b| {
                compare_rows(&rows[a as usize], &rows[b as usize], column, ascending)
            });
        } else {
            self.order.retain(keep);
            merge(&mut self.order, &changed, |a, b| {
                compare_rows(
                    &rows[a as usize],
                    &rows[b as usize],
                    self.sort_column,
                    self.ascending,
                )
            });
        }
        self.by_activity.retain(keep);
        merge(&mut self.by_activity, &changed, |a, b| {
            compare_rows(
                &rows[a as usize],
                &rows[b as usize],
                Column::LastActive,
                true,
            )
        });

        for &slot in &changed {
            self.rows[slot as usize].dirty = false;
        }
        // A burst of changes must not keep its buffer for the rest of the run.
        changed.clear();
        changed.shrink_to(1024);
        self.dirty = changed;
        for slot in self.outdated_slots.drain(..) {
            self.outdated[slot as usize / 64] = 0;
        }
        self.outdated_slots.shrink_to(1024);
        self.resort = false;
    }
}

/// Sorts `changed` and merges it into `order`, which is already sorted, in place from
/// the back so the merge needs no second buffer.
fn merge(order: &mut Vec<u32>, changed: &[u32], compare: impl Fn(u32, u32) -> Ordering) {
    if changed.is_empty() {
        return;
    }
    let mut changed = changed.to_vec();
    changed.sort_unstable_by(|&a, &b| compare(a, b));
    let old_len = order.len();
    order.resize(old_len + changed.len(), 0);
    let (mut read, mut write, mut next) = (old_len, order.len(), changed.len());
    while next > 0 {
        write -= 1;
        if read > 0 && compare(order[read - 1], changed[next - 1]) == Ordering::Greater {
            read -= 1;
            order[write] = order[read];
        } else {
            next -= 1;
            order[write] = changed[next];
        }
    }
}

/// Sessions in display order, borrowed from [`SessionRows`].
#[derive(Debug, Clone, Copy)]
pub struct SortedRows<'a> {
    rows: &'a SessionRows,
}

impl SortedRows<'_> {
    /// Returns the number of rows.
    pub fn len(&self) -> usize {
        self.rows.order.len()
    }

    /// Returns whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.order.is_empty()
    }

    /// Returns the session shown in row `index`.
    pub fn get(&self, index: usize) -> Option<Session> {
        let slot = *self.rows.order.get(index)?;
        Some(self.rows.session(slot))
    }
}

/// Orders rows by `column`, then by id so the order is total, reversed for descending.
fn compare_rows(a: &Row, b: &Row, column: Column, ascending: bool) -> Ordering {
    let primary = match column {
        Column::Id => a.id.cmp(&b.id),
        Column::Source => a.source.cmp(&b.source),
        Column::Created => a.created.cmp(&b.created),
        Column::LastActive | Column::TimeLeft => a.last_active.cmp(&b.last_active),
        Column::IdleFor => b.last_active.cmp(&a.last_active),
        Column::Requests => a.activity_count.cmp(&b.activity_count),
    };
    let total = primary.then_with(|| a.id.cmp(&b.id));
    if ascending { total } else { total.reverse() }
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
            removed: Vec::new(),
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
        rows.ordered_ids().map(ToString::to_string).collect()
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

    fn removal(id: &str) -> crate::engine::event::Record {
        crate::engine::event::Record {
            seq: 0,
            at: MonoTime::ZERO,
            wall: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
            event: Event::SessionRemoved {
                id: SessionId::new(id).unwrap(),
                source: Source::Simulator,
                idle: Duration::ZERO,
                activity_count: 1,
                cause: crate::engine::event::RemovalCause::Sweep,
            },
        }
    }

    #[test]
    fn incremental_order_matches_full_sort() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut rows = SessionRows::default();
        for round in 0..200 {
            if round % 50 == 0 {
                rows.sort_by(Column::ALL[rng.usize(0..Column::ALL.len())]);
            }
            let mut changes = update(Vec::new());
            for _ in 0..rng.usize(0..6) {
                let name = format!("s{}", rng.u8(0..30));
                if rng.bool() {
                    changes.records.push(removal(&name));
                } else {
                    let last = rng.u64(0..100);
                    changes.touched.push(session(&name, last, rng.u64(1..9)));
                }
            }
            rows.apply(&changes);

            let current: Vec<Session> =
                (0..30).filter_map(|n| rows.get(&format!("s{n}"))).collect();
            let (sort_column, ascending) = rows.sort();
            let mut rebuilt = SessionRows {
                sort_column,
                ascending,
                ..SessionRows::default()
            };
            let mut snapshot = update(Vec::new());
            snapshot.snapshot = Some(current);
            rebuilt.apply(&snapshot);
            assert_eq!(names(&mut rows), names(&mut rebuilt), "round {round}");

            let now = MonoTime::from_duration(Duration::from_secs(100));
            let timeout = Duration::from_secs(50);
            assert_eq!(
                rows.count_stale(now, timeout),
                rebuilt.count_stale(now, timeout),
                "stale count in round {round}"
            );
        }
    }

    #[test]
    fn removed_rows_leave_the_order() {
        let mut rows = SessionRows::default();
        rows.apply(&update(vec![session("a", 10, 1), session("b", 20, 1)]));
        assert_eq!(names(&mut rows), ["a", "b"]);
        let mut removing = update(vec![session("c", 5, 1)]);
        removing.records.push(removal("a"));
        rows.apply(&removing);
        assert_eq!(names(&mut rows), ["c", "b"]);
        assert!(rows.get("a").is_none());
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn removed_ids_leave_the_order() {
        let mut rows = SessionRows::default();
        rows.apply(&update(vec![session("a", 10, 1), session("b", 20, 1)]));
        let mut removing = update(Vec::new());
        removing.removed.push(SessionId::new("b").unwrap());
        rows.apply(&removing);
        assert_eq!(names(&mut rows), ["a"]);
    }

    #[test]
    fn stale_count_uses_idle_timeout() {
        let mut rows = SessionRows::default();
        rows.apply(&update(vec![session("a", 0, 1), session("b", 100, 1)]));
        let now = MonoTime::from_duration(Duration::from_secs(300));
        assert_eq!(rows.count_stale(now, Duration::from_secs(300)), 1);
    }
}
