//! The session map, owned by the engine worker.
//!
//! Sessions live in a slab and are threaded on a doubly linked list ordered by last
//! activity, oldest first, so a sweep pops stale sessions from the front and its cost
//! grows with the number removed, not with the size of the map. A hash table of slab
//! indices finds a session by id without storing the id twice.

use std::hash::BuildHasher;
use std::time::Duration;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::clock::MonoTime;
use super::session::{Session, SessionId, SessionMeta, Source};

const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct Node {
    session: Session,
    /// Neighbour with older (or equal) last activity, or `NIL`.
    prev: u32,
    /// Neighbour with newer (or equal) last activity, or `NIL`.
    next: u32,
}

/// What applying one activity report did to the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TouchOutcome {
    /// No session had this id, so one was created.
    Created,
    /// An active session recorded the activity.
    Touched,
    /// The session had been idle for at least the idle timeout, so it ended and a new
    /// session started under the same id. Carries the ended session.
    Renewed {
        /// The session that expired on this access.
        expired: Session,
    },
}

/// Sessions by id, ordered by last activity.
#[derive(Debug, Default)]
pub struct SessionStore {
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    nodes: Vec<Option<Node>>,
    free: Vec<u32>,
    head: Option<u32>,
    tail: Option<u32>,
}

/// Returns the latest last-activity time that is stale at `now`, or `None` when nothing
/// can be stale yet. A session is stale when `now - last_active >= idle_timeout`.
pub fn stale_cutoff(now: MonoTime, idle_timeout: Duration) -> Option<MonoTime> {
    now.checked_sub(idle_timeout)
}

impl SessionStore {
    /// Creates an empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the number of sessions.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Returns whether the store has no sessions.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Returns the session with this id.
    pub fn get(&self, id: &str) -> Option<&Session> {
        self.find(id).map(|slot| &self.node(slot).session)
    }

    /// Returns the session with the oldest last activity.
    pub fn least_recently_active(&self) -> Option<&Session> {
        self.head.map(|slot| &self.node(slot).session)
    }

    /// Iterates over the sessions from the least to the most recently active.
    pub fn iter(&self) -> impl Iterator<Item = &Session> + '_ {
        let mut cursor = self.head;
        std::iter::from_fn(move || {
            let node = self.node(cursor?);
            cursor = link(node.next);
            Some(&node.session)
        })
    }

    /// Applies activity for `id` at time `at`.
    ///
    /// Activity older than the stored last activity counts but never moves it backwards.
    /// When the session has been idle for at least `idle_timeout` at `at`, it has expired
    /// whether or not a sweep removed it: it ends and a new session starts.
    pub fn touch(
        &mut self,
        id: &SessionId,
        source: Source,
        at: MonoTime,
        idle_timeout: Duration,
    ) -> TouchOutcome {
        let Some(slot) = self.find(id.as_str()) else {
            self.insert(Session {
                id: id.clone(),
                source,
                created: at,
                last_active: at,
                activity_count: 1,
                meta: None,
            });
            return TouchOutcome::Created;
        };

        let session = &mut self.node_mut(slot).session;
        if session.is_stale_at(at, idle_timeout) {
            let renewed = Session {
                id: id.clone(),
                source,
                created: at,
                last_active: at,
                activity_count: 1,
                meta: None,
            };
            let expired = std::mem::replace(session, renewed);
            self.reposition(slot);
            return TouchOutcome::Renewed { expired };
        }

        session.activity_count += 1;
        if at > session.last_active {
            session.last_active = at;
            self.reposition(slot);
        }
        TouchOutcome::Touched
    }

    /// Replaces the metadata of the session with this id. Returns whether it exists.
    pub fn set_meta(&mut self, id: &str, meta: SessionMeta) -> bool {
        let Some(slot) = self.find(id) else {
            return false;
        };
        self.node_mut(slot).session.meta = Some(meta);
        true
    }

    /// Removes the session with this id.
    pub fn remove(&mut self, id: &str) -> Option<Session> {
        let slot = self.find(id)?;
        Some(self.remove_slot(slot))
    }

    /// Removes up to `limit` sessions whose last activity is at or before `cutoff`,
    /// oldest first, passing each to `on_removed`. Returns how many it removed; fewer
    /// than `limit` means no stale session is left.
    pub fn pop_stale(
        &mut self,
        cutoff: MonoTime,
        limit: usize,
        mut on_removed: impl FnMut(Session),
    ) -> usize {
        let mut removed = 0;
        while removed < limit {
            let Some(head) = self.head else { break };
            if self.node(head).session.last_active > cutoff {
                break;
            }
            on_removed(self.remove_slot(head));
            removed += 1;
        }
        removed
    }

    /// Counts sessions whose last activity is at or before `cutoff`, visiting only those.
    pub fn count_stale(&self, cutoff: MonoTime) -> usize {
        self.iter()
            .take_while(|session| session.last_active <= cutoff)
            .count()
    }

    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    fn find(&self, id: &str) -> Option<u32> {
        let hash = self.hash(id);
        self.index
            .find(hash, |&slot| self.node(slot).session.id.as_str() == id)
            .copied()
    }

    fn node(&self, slot: u32) -> &Node {
        self.nodes[slot as usize]
            .as_ref()
            .expect("linked slot holds a node")
    }

    fn node_mut(&mut self, slot: u32) -> &mut Node {
        self.nodes[slot as usize]
            .as_mut()
            .expect("linked slot holds a node")
    }

    fn insert(&mut self, session: Session) {
        let hash = self.hash(session.id.as_str());
        let node = Node {
            session,
            prev: NIL,
            next: NIL,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.nodes[slot as usize] = Some(node);
                slot
            }
            None => {
                let slot = u32::try_from(self.nodes.len())
                    .ok()
                    .filter(|&slot| slot != NIL)
                    .expect("session store holds fewer than 2^32 - 1 sessions");
                self.nodes.push(Some(node));
                slot
            }
        };

        let nodes = &self.nodes;
        let hasher = &self.hasher;
        self.index.insert_unique(hash, slot, |&other| {
            let node = nodes[other as usize]
                .as_ref()
                .expect("indexed slot holds a node");
            hasher.hash_one(node.session.id.as_str())
        });
        self.link_in_order(slot);
    }

    fn remove_slot(&mut self, slot: u32) -> Session {
        self.unlink(slot);
        let hash = self.hash(self.node(slot).session.id.as_str());
        match self.index.find_entry(hash, |&other| other == slot) {
            Ok(entry) => {
                entry.remove();
            }
            Err(_) => unreachable!("every linked slot is indexed"),
        }
        self.free.push(slot);
        self.nodes[slot as usize]
            .take()
            .expect("linked slot holds a node")
            .session
    }

    /// Moves `slot` to its place after its last activity changed.
    fn reposition(&mut self, slot: u32) {
        self.unlink(slot);
        self.link_in_order(slot);
    }

    /// Links `slot` after the newest node whose last activity is not later than its own.
    /// Activity is mostly newer than everything stored, so the walk from the tail is
    /// short; an out-of-order time stamp walks back only over the newer nodes.
    fn link_in_order(&mut self, slot: u32) {
        let at = self.node(slot).session.last_active;
        let mut before = self.tail;
        while let Some(candidate) = before {
            let node = self.node(candidate);
            if node.session.last_active <= at {
                break;
            }
            before = link(node.prev);
        }

        let after = match before {
            Some(before) => link(self.node(before).next),
            None => self.head,
        };
        {
            let node = self.node_mut(slot);
            node.prev = before.unwrap_or(NIL);
            node.next = after.unwrap_or(NIL);
        }
        match before {
            Some(before) => self.node_mut(before).next = slot,
            None => self.head = Some(slot),
        }
        match after {
            Some(after) => self.node_mut(after).prev = slot,
            None => self.tail = Some(slot),
        }
    }

    fn unlink(&mut self, slot: u32) {
        let (prev, next) = {
            let node = self.node(slot);
            (link(node.prev), link(node.next))
        };
        match prev {
            Some(prev) => self.node_mut(prev).next = next.unwrap_or(NIL),
            None => self.head = next,
        }
        match next {
            Some(next) => self.node_mut(next).prev = prev.unwrap_or(NIL),
            None => self.tail = prev,
        }
        let node = self.node_mut(slot);
        node.prev = NIL;
        node.next = NIL;
    }
}

fn link(slot: u32) -> Option<u32> {
    (slot != NIL).then_some(slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(300);

    fn at(secs: u64) -> MonoTime {
        MonoTime::from_duration(Duration::from_secs(secs))
    }

    fn id(text: &str) -> SessionId {
        SessionId::new(text).unwrap()
    }

    fn order(store: &SessionStore) -> Vec<&str> {
        store.iter().map(|session| session.id.as_str()).collect()
    }

    #[test]
    fn touch_creates_then_counts() {
        let mut store = SessionStore::new();
        assert_eq!(
            store.touch(&id("a"), Source::Simulator, at(0), TIMEOUT),
            TouchOutcome::Created
        );
        assert_eq!(
            store.touch(&id("a"), Source::Simulator, at(10), TIMEOUT),
            TouchOutcome::Touched
        );
        let session = store.get("a").unwrap();
        assert_eq!(session.activity_count, 2);
        assert_eq!(session.created, at(0));
        assert_eq!(session.last_active, at(10));
    }

    #[test]
    fn older_touch_keeps_last_activity() {
        let mut store = SessionStore::new();
        store.touch(&id("a"), Source::Replay, at(100), TIMEOUT);
        store.touch(&id("a"), Source::Replay, at(40), TIMEOUT);
        let session = store.get("a").unwrap();
        assert_eq!(session.last_active, at(100));
        assert_eq!(session.activity_count, 2);
    }

    #[test]
    fn list_stays_ordered_by_activity() {
        let mut store = SessionStore::new();
        store.touch(&id("a"), Source::Replay, at(10), TIMEOUT);
        store.touch(&id("b"), Source::Replay, at(30), TIMEOUT);
        store.touch(&id("c"), Source::Replay, at(20), TIMEOUT);
        assert_eq!(order(&store), ["a", "c", "b"]);
        store.touch(&id("a"), Source::Replay, at(25), TIMEOUT);
        assert_eq!(order(&store), ["c", "a", "b"]);
        store.touch(&id("c"), Source::Replay, at(40), TIMEOUT);
        assert_eq!(order(&store), ["a", "b", "c"]);
    }

    #[test]
    fn touch_after_timeout_renews() {
        let mut store = SessionStore::new();
        store.touch(&id("a"), Source::Simulator, at(0), TIMEOUT);
        store.touch(&id("a"), Source::Simulator, at(60), TIMEOUT);
        let outcome = store.touch(&id("a"), Source::Simulator, at(360), TIMEOUT);
        let TouchOutcome::Renewed { expired } = outcome else {
            panic!("expected a renewal, got {outcome:?}");
        };
        assert_eq!(expired.last_active, at(60));
        assert_eq!(expired.activity_count, 2);
        let renewed = store.get("a").unwrap();
        assert_eq!(renewed.created, at(360));
        assert_eq!(renewed.activity_count, 1);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn touch_just_before_timeout_continues() {
        let mut store = SessionStore::new();
        store.touch(&id("a"), Source::Simulator, at(0), TIMEOUT);
        let almost = MonoTime::from_duration(TIMEOUT - Duration::from_nanos(1));
        assert_eq!(
            store.touch(&id("a"), Source::Simulator, almost, TIMEOUT),
            TouchOutcome::Touched
        );
    }

    #[test]
    fn pop_stale_removes_only_stale_oldest_first() {
        let mut store = SessionStore::new();
        for (name, secs) in [("a", 0), ("b", 50), ("c", 100), ("d", 200)] {
            store.touch(&id(name), Source::Simulator, at(secs), TIMEOUT);
        }
        let cutoff = stale_cutoff(at(400), TIMEOUT).unwrap();
        let mut removed = Vec::new();
        let count = store.pop_stale(cutoff, usize::MAX, |s| removed.push(s.id.to_string()));
        assert_eq!(count, 3);
        assert_eq!(removed, ["a", "b", "c"]);
        assert_eq!(order(&store), ["d"]);
        assert!(store.get("a").is_none());
    }

    #[test]
    fn pop_stale_respects_limit() {
        let mut store = SessionStore::new();
        for n in 0..10 {
            store.touch(&id(&format!("s{n}")), Source::Simulator, at(n), TIMEOUT);
        }
        let cutoff = stale_cutoff(at(1000), TIMEOUT).unwrap();
        assert_eq!(store.pop_stale(cutoff, 4, |_| {}), 4);
        assert_eq!(store.len(), 6);
        assert_eq!(store.count_stale(cutoff), 6);
    }

    #[test]
    fn nothing_stale_before_timeout_elapsed() {
        assert_eq!(stale_cutoff(at(299), TIMEOUT), None);
        assert_eq!(stale_cutoff(at(300), TIMEOUT), Some(at(0)));
    }

    #[test]
    fn remove_and_reuse_slots() {
        let mut store = SessionStore::new();
        for n in 0..100 {
            store.touch(&id(&format!("s{n}")), Source::Api, at(n), TIMEOUT);
        }
        for n in (0..100).step_by(2) {
            assert!(store.remove(&format!("s{n}")).is_some());
        }
        assert!(store.remove("s0").is_none());
        for n in 100..150 {
            store.touch(&id(&format!("s{n}")), Source::Api, at(n), TIMEOUT);
        }
        assert_eq!(store.len(), 100);
        let times: Vec<MonoTime> = store.iter().map(|s| s.last_active).collect();
        assert!(times.windows(2).all(|pair| pair[0] <= pair[1]));
        assert_eq!(store.nodes.len(), 100);
    }
}
