//! The session map, owned by the engine worker.
//!
//! Sessions live in a slab of fixed-size nodes, and a hash table of slab indices
//! ([`SlotIndex`]) finds one by id without storing the id twice. Order of last activity is kept in an
//! activity queue: a ring of slab indices appended to whenever a session's last
//! activity moves forward. The entry a session leaves behind becomes a tombstone, and
//! the queue is compacted once tombstones outnumber sessions. Activity stamped earlier
//! than the newest queue entry goes to a small ordered set instead, so both stay in
//! order of last activity.
//!
//! A sweep reads the queue from the front, so it visits only stale sessions and the
//! tombstones between them. Its reads of the slab do not depend on each other, so the
//! processor overlaps their cache misses instead of following a chain of links. When a
//! large share of the map is stale, a sweep instead reads the whole slab in memory
//! order. It marks the slots it empties in a bitmap and leaves their queue and hash
//! table entries in place. The queue entries then leave as one prefix of the queue, and
//! the hash table entries go in one pass over the table. Either way a sweep runs in
//! steps of bounded work.
//!
//! Times are stored as nanoseconds since the clock's origin in a `u64`, which covers
//! about 584 years; later times are stored as that limit.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use hashbrown::HashMap;

use super::clock::MonoTime;
use super::huge_pages;
use super::session::{Session, SessionId, SessionMeta, Source};
use super::slot_index::{KeyHasher, MAX_SLOTS, SlotIndex};

/// End of the free list, and the queue entry of a session that moved on.
const NONE: u32 = u32::MAX;

/// A sweep scans the slab when at least this share of the map is stale: 1/16, about 6%.
/// Below it, popping stale sessions from the queue is cheaper than passes over the whole
/// slab and hash table.
const SCAN_SHARE_DIVISOR: usize = 16;

/// Slab slots a scanning sweep step may read per session it is allowed to remove.
const SCANS_PER_REMOVAL: usize = 64;

/// Tombstones a sweep step may skip per session it is allowed to remove.
const SKIPS_PER_REMOVAL: usize = 64;

/// Hash table buckets a sweep step may clean per session it is allowed to remove.
const BUCKETS_PER_REMOVAL: usize = 64;

/// The queue is compacted when it has this many tombstones more than sessions, so
/// compaction never runs for small maps.
const COMPACTION_SLACK: usize = 4096;

/// Touched sessions read ahead of the one being copied when the list is taken.
const CHANGED_PREFETCH_DISTANCE: usize = 8;

/// Touched-session list capacity kept after the list is taken.
const CHANGED_CAPACITY_KEPT: usize = 4096;

/// Queue entries read ahead of the one being swept, so their nodes are already on
/// their way from memory.
const PREFETCH_DISTANCE: usize = 16;

/// Slab slots read to estimate the share of stale sessions. With 128, a map with 1% stale
/// passes the 1/16 threshold with a probability below 0.1%.
const SHARE_SAMPLES: usize = 128;

/// Nanoseconds since the clock's origin.
type Nanos = u64;

fn to_nanos(at: MonoTime) -> Nanos {
    u64::try_from(at.since_origin().as_nanos()).unwrap_or(u64::MAX)
}

fn from_nanos(nanos: Nanos) -> MonoTime {
    MonoTime::from_duration(Duration::from_nanos(nanos))
}

/// State of a slab node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Free for a new session; `link` is the next free slot.
    Vacant,
    /// A session in the activity queue; `link` is its queue position.
    Queued,
    /// A session in the set of out-of-order activity.
    Late,
    /// Removed by a scanning sweep; its hash table entry, and its queue entry if it had
    /// one, may still be there. `link` is the next parked slot.
    Parked,
}

/// One slab slot: 48 bytes.
#[derive(Debug)]
struct Node {
    id: SessionId,
    created: Nanos,
    last_active: Nanos,
    activity_count: u64,
    link: u32,
    source: Source,
    place: Place,
    has_meta: bool,
    /// Listed in [`SessionStore::changed`] and not yet taken.
    changed: bool,
}

impl Node {
    fn vacant(next_free: u32) -> Node {
        Node {
            id: SessionId::placeholder(),
            created: 0,
            last_active: 0,
            activity_count: 0,
            link: next_free,
            source: Source::Simulator,
            place: Place::Vacant,
            has_meta: false,
            changed: false,
        }
    }

    fn is_live(&self) -> bool {
        matches!(self.place, Place::Queued | Place::Late)
    }
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

/// Method of a sweep: popping from the activity queue or scanning the slab.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SweepStrategy {
    /// [`SweepStrategy::Scan`] when a sample of the map at the start of a sweep finds
    /// at least 1/16 of it stale, and [`SweepStrategy::Pop`] below that.
    #[default]
    Auto,
    /// Stale sessions popped from the queue front, oldest first, each with its hash
    /// table entry. The cost grows with the number removed.
    Pop,
    /// One pass over the slab in memory order that removes stale sessions in slot
    /// order, then one pass over the hash table that clears their entries. The cost
    /// grows with the size of the map, at a small cost per session.
    Scan,
}

/// What one sweep step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepProgress {
    /// Sessions the step removed.
    pub removed: usize,
    /// Whether the sweep is complete: no session at or before the cutoff is left and
    /// the hash table contains no entries of removed sessions.
    pub finished: bool,
}

/// Returns the latest last-activity time that is stale at `now`, or `None` when nothing
/// can be stale yet. A session is stale when `now - last_active >= idle_timeout`.
pub fn stale_cutoff(now: MonoTime, idle_timeout: Duration) -> Option<MonoTime> {
    now.checked_sub(idle_timeout)
}

/// Slab indices in order of their sessions' last activity, oldest first.
#[derive(Debug, Default)]
struct ActivityQueue {
    /// Slab indices, or [`NONE`] where a session moved on.
    entries: VecDeque<u32>,
    /// Position of `entries[0]`. Positions wrap, which is safe because the queue never
    /// contains 2^32 entries.
    front: u32,
    /// Last activity of the newest entry ever appended; earlier activity is late.
    newest: Nanos,
    /// Entries that are not tombstones.
    live: usize,
}

impl ActivityQueue {
    fn index_of(&self, position: u32) -> usize {
        position.wrapping_sub(self.front) as usize
    }

    fn position_of(&self, index: usize) -> u32 {
        self.front.wrapping_add(index as u32)
    }

    fn push(&mut self, slot: u32, last_active: Nanos) -> u32 {
        let position = self.position_of(self.entries.len());
        self.entries.push_back(slot);
        self.newest = last_active;
        self.live += 1;
        position
    }

    fn bury(&mut self, position: u32) {
        let index = self.index_of(position);
        if index == 0 {
            self.entries.pop_front();
            self.front = self.front.wrapping_add(1);
        } else {
            self.entries[index] = NONE;
        }
        self.live -= 1;
    }

    fn tombstones(&self) -> usize {
        self.entries.len() - self.live
    }
}

/// Slots removed by a scanning sweep. Their queue entries count as tombstones and leave
/// from the queue front. Their hash table entries are cleared in one pass over the
/// table, in bounded steps, and then the chain of slots joins the free list at once.
#[derive(Debug)]
struct Parked {
    /// One bit per slab slot, set for parked slots.
    bits: Vec<u64>,
    /// Parked slots not yet freed.
    count: usize,
    /// Parked slots whose hash table entry is still there.
    indexed: usize,
    /// Parked slots whose queue entry is still in the queue.
    queued: usize,
    /// Next hash table bucket to check while `indexed > 0`.
    cursor: usize,
    /// First and last slot of the chain of parked slots, linked through `Node::link`,
    /// or [`NONE`].
    head: u32,
    tail: u32,
}

impl Default for Parked {
    fn default() -> Self {
        Parked {
            bits: Vec::new(),
            count: 0,
            indexed: 0,
            queued: 0,
            cursor: 0,
            head: NONE,
            tail: NONE,
        }
    }
}

impl Parked {
    fn contains(&self, slot: u32) -> bool {
        let slot = slot as usize;
        self.bits
            .get(slot / 64)
            .is_some_and(|word| word & (1 << (slot % 64)) != 0)
    }

    /// Makes the bitmap cover a slab of `slab_len` slots.
    fn cover(&mut self, slab_len: usize) {
        if self.bits.len() * 64 < slab_len {
            self.bits.resize(slab_len.div_ceil(64), 0);
        }
    }

    /// Adds a slot. Expects [`Parked::cover`] to have covered it.
    #[inline(always)]
    fn insert(&mut self, slot: u32) {
        let index = slot as usize;
        self.bits[index / 64] |= 1 << (index % 64);
        if self.indexed == 0 {
            // No cleaning pass is under way: the new entry needs one from the start.
            self.cursor = 0;
        }
        self.count += 1;
        self.indexed += 1;
    }
}

/// The sweep in progress, identified by its cutoff.
#[derive(Debug, Clone, Copy)]
struct SweepState {
    cutoff: Nanos,
    /// Next slab slot to read when the sweep scans, `None` when it pops.
    scan: Option<usize>,
}

/// Sessions by id, ordered by last activity.
#[derive(Debug, Default)]
pub struct SessionStore {
    index: SlotIndex,
    hasher: KeyHasher,
    nodes: Vec<Node>,
    free: Option<u32>,
    len: usize,
    queue: ActivityQueue,
    /// Sessions whose activity was earlier than the newest queue entry, by last
    /// activity then slot.
    late: BTreeSet<(Nanos, u32)>,
    /// Metadata by slot, for the sessions that have any.
    meta: HashMap<u32, SessionMeta>,
    /// Slots of sessions touched since [`SessionStore::take_changed`] last ran; may
    /// list slots freed or reused since.
    changed: Vec<u32>,
    parked: Parked,
    sweep: Option<SweepState>,
    strategy: SweepStrategy,
}

impl SessionStore {
    /// Creates an empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets how sweeps find stale sessions. Each strategy removes the same sessions;
    /// they differ in speed and in the order of removal.
    pub fn set_sweep_strategy(&mut self, strategy: SweepStrategy) {
        self.strategy = strategy;
    }

    /// Returns the number of sessions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns whether the store has no sessions.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the session with this id.
    pub fn get(&self, id: &str) -> Option<Session> {
        self.find(id).map(|slot| self.session(slot))
    }

    /// Returns the session with the oldest last activity.
    pub fn least_recently_active(&self) -> Option<Session> {
        self.oldest_slot().map(|slot| self.session(slot))
    }

    /// Iterates over the sessions from the least to the most recently active.
    pub fn iter(&self) -> impl Iterator<Item = Session> + '_ {
        let mut queued = self
            .queue
            .entries
            .iter()
            .filter(|&&slot| !self.is_tombstone(slot));
        let mut late = self.late.iter();
        let mut next_queued = queued.next().copied();
        let mut next_late = late.next().copied();
        std::iter::from_fn(move || {
            let take_late = match (next_queued, next_late) {
                (None, None) => return None,
                (Some(slot), Some((at, _))) => at < self.nodes[slot as usize].last_active,
                (None, Some(_)) => true,
                (Some(_), None) => false,
            };
            let slot = if take_late {
                let (_, slot) = next_late?;
                next_late = late.next().copied();
                slot
            } else {
                let slot = next_queued?;
                next_queued = queued.next().copied();
                slot
            };
            Some(self.session(slot))
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
        let at = to_nanos(at);
        let Some(slot) = self.find(id.as_str()) else {
            let slot = self.insert(id.clone(), source, at);
            self.mark_changed(slot);
            return TouchOutcome::Created;
        };
        self.mark_changed(slot);

        let node = &self.nodes[slot as usize];
        let idle = at.saturating_sub(node.last_active);
        if u128::from(idle) >= idle_timeout.as_nanos() {
            let expired = self.session(slot);
            if node.has_meta {
                self.meta.remove(&slot);
            }
            self.detach(slot);
            let node = &mut self.nodes[slot as usize];
            node.source = source;
            node.created = at;
            node.last_active = at;
            node.activity_count = 1;
            node.has_meta = false;
            self.attach(slot);
            return TouchOutcome::Renewed { expired };
        }

        let node = &mut self.nodes[slot as usize];
        node.activity_count += 1;
        if at > node.last_active {
            self.detach(slot);
            self.nodes[slot as usize].last_active = at;
            self.attach(slot);
        }
        TouchOutcome::Touched
    }

    /// Asks the processor to load the hash table bucket that a lookup of `id` reads
    /// first. A caller with a batch of ids calls it several lookups ahead, so that the
    /// cache misses of the batch overlap. It changes no result.
    pub fn prefetch_bucket(&self, id: &str) {
        self.index.prefetch(self.hash(id));
    }

    /// Asks the processor to load the session that a lookup of `id` reads, found through
    /// its bucket. Call it some lookups after [`Self::prefetch_bucket`] for the same id,
    /// once the bucket has had time to arrive. It changes no result.
    pub fn prefetch_session(&self, id: &str) {
        if let Some(slot) = self.index.first_candidate(self.hash(id))
            && let Some(node) = self.nodes.get(slot as usize)
        {
            prefetch(node);
        }
    }

    /// Replaces the metadata of the session with this id. Returns whether it exists.
    pub fn set_meta(&mut self, id: &str, meta: SessionMeta) -> bool {
        let Some(slot) = self.find(id) else {
            return false;
        };
        self.nodes[slot as usize].has_meta = true;
        self.meta.insert(slot, meta);
        true
    }

    /// Takes the sessions touched since the last call, in their current state. Sessions
    /// removed since are left out.
    pub fn take_changed(&mut self) -> Vec<Session> {
        let slots = std::mem::take(&mut self.changed);
        let mut sessions = Vec::with_capacity(slots.len());
        for (index, &slot) in slots.iter().enumerate() {
            // The nodes are spread over the slab, so each is requested a few slots ahead.
            if let Some(node) = slots
                .get(index + CHANGED_PREFETCH_DISTANCE)
                .and_then(|&ahead| self.nodes.get(ahead as usize))
            {
                prefetch(node);
            }
            let node = &mut self.nodes[slot as usize];
            // A slot listed twice was freed and reused; its flag is cleared at the first.
            if !std::mem::take(&mut node.changed) || !node.is_live() {
                continue;
            }
            sessions.push(self.session(slot));
        }
        self.changed = slots;
        self.changed.clear();
        // A burst of changes must not keep its buffer for the rest of the run.
        self.changed.shrink_to(CHANGED_CAPACITY_KEPT);
        sessions
    }

    /// Forgets the sessions touched since [`SessionStore::take_changed`] last ran.
    pub fn clear_changed(&mut self) {
        for slot in std::mem::take(&mut self.changed) {
            self.nodes[slot as usize].changed = false;
        }
    }

    /// Lists the session with this id as touched again, for
    /// [`SessionStore::take_changed`].
    pub fn mark_changed_id(&mut self, id: &str) {
        if let Some(slot) = self.find(id) {
            self.mark_changed(slot);
        }
    }

    /// Returns whether sessions were touched since [`SessionStore::take_changed`] last ran.
    pub fn has_changed(&self) -> bool {
        !self.changed.is_empty()
    }

    fn mark_changed(&mut self, slot: u32) {
        let node = &mut self.nodes[slot as usize];
        if !node.changed {
            node.changed = true;
            self.changed.push(slot);
        }
    }

    /// Removes the session with this id.
    pub fn remove(&mut self, id: &str) -> Option<Session> {
        let slot = self.find(id)?;
        self.detach(slot);
        Some(self.release(slot))
    }

    /// Runs one step of a sweep that removes every session whose last activity is at
    /// or before `cutoff`, and appends each removed session to `removed`.
    ///
    /// A step removes at most `limit` sessions and skips or cleans a bounded multiple
    /// of `limit` tombstones and hash table buckets, so the caller can serve other
    /// requests between steps. Activity applied between steps may keep a session
    /// whose new last activity is after `cutoff`. Call again with the same cutoff
    /// until the step reports the sweep finished. A step with another cutoff starts a
    /// new sweep, which also finishes any cleanup an earlier sweep left.
    ///
    /// `limit` must be above zero.
    pub fn sweep_step(
        &mut self,
        cutoff: MonoTime,
        limit: usize,
        removed: &mut Vec<Session>,
    ) -> SweepProgress {
        let cutoff = to_nanos(cutoff);
        let state = match self.sweep {
            Some(state) if state.cutoff == cutoff => state,
            _ => self.start_sweep(cutoff),
        };

        let (count, stale_left) = match state.scan {
            Some(next_slot) => self.scan_stale(cutoff, limit, next_slot, removed),
            None => self.pop_stale(cutoff, limit, removed),
        };
        if !stale_left && self.parked.queued > 0 {
            // A scan was cut short by a sweep with an earlier cutoff, so some of its
            // queue entries are not at the front.
            self.bury_parked_entries();
        }
        if !stale_left && self.parked.count > 0 {
            self.clean_parked(limit.saturating_mul(BUCKETS_PER_REMOVAL));
        }
        let finished = !stale_left && self.parked.count == 0;
        if finished {
            self.sweep = None;
        }
        SweepProgress {
            removed: count,
            finished,
        }
    }

    /// Removes up to `limit` stale sessions from the front of the queue and the late
    /// set, oldest first. Returns how many it removed and whether stale ones are left.
    fn pop_stale(
        &mut self,
        cutoff: Nanos,
        limit: usize,
        sessions: &mut Vec<Session>,
    ) -> (usize, bool) {
        let mut skips_left = limit.saturating_mul(SKIPS_PER_REMOVAL);
        let mut removed = 0;
        let mut stale_left = true;
        while removed < limit {
            let skipped = self.drop_front_tombstones(skips_left);
            skips_left -= skipped;
            if self.front_is_tombstone() {
                break;
            }
            let Some(slot) = self.oldest_slot() else {
                stale_left = false;
                break;
            };
            if self.nodes[slot as usize].last_active > cutoff {
                stale_left = false;
                break;
            }
            self.prefetch_queued(PREFETCH_DISTANCE);
            self.detach(slot);
            sessions.push(self.release(slot));
            removed += 1;
        }
        (removed, stale_left)
    }

    /// Reads the slab from `next_slot` on, parking up to `limit` stale sessions and
    /// reading at most [`SCANS_PER_REMOVAL`] slots per session allowed. Once the whole
    /// slab is read, pops from the queue front: the entries of parked sessions, and any
    /// stale session that activity between steps put into slots already read. Returns
    /// how many it removed and whether the sweep has more to do.
    fn scan_stale(
        &mut self,
        cutoff: Nanos,
        limit: usize,
        next_slot: usize,
        sessions: &mut Vec<Session>,
    ) -> (usize, bool) {
        let end = next_slot
            .saturating_add(limit.saturating_mul(SCANS_PER_REMOVAL))
            .min(self.nodes.len());
        self.parked.cover(end);
        let mut removed = 0;
        let mut slot = next_slot;
        while slot < end && removed < limit {
            // The stale sessions among the next 64 slots, as bits. Deciding without
            // branches matters when about half are stale, because a branch per slot
            // would then be mispredicted half the time.
            let block_end = (slot + 64).min(end);
            let mut stale = 0u64;
            for (bit, node) in self.nodes[slot..block_end].iter().enumerate() {
                let is_stale = node.is_live() & (node.last_active <= cutoff);
                stale |= u64::from(is_stale) << bit;
            }
            let mut resume = block_end;
            while stale != 0 {
                if removed == limit {
                    resume = slot + stale.trailing_zeros() as usize;
                    break;
                }
                let stale_slot = slot + stale.trailing_zeros() as usize;
                stale &= stale - 1;
                if self.nodes[stale_slot].place == Place::Queued {
                    // The entry stays, marked by the parked bit, and leaves with the
                    // queue front: no write to the queue here.
                    self.queue.live -= 1;
                    self.parked.queued += 1;
                } else {
                    self.detach(stale_slot as u32);
                }
                self.park(stale_slot as u32, sessions);
                removed += 1;
            }
            slot = resume;
        }
        if let Some(state) = self.sweep.as_mut() {
            state.scan = Some(slot);
        }
        if slot < self.nodes.len() {
            return (removed, true);
        }
        if removed == limit {
            return (removed, true);
        }
        let (popped, stale_left) = self.pop_stale(cutoff, limit - removed, sessions);
        (removed + popped, stale_left)
    }

    /// Drops tombstones and entries of parked slots from the queue front, at most
    /// `budget`. Returns how many it dropped.
    fn drop_front_tombstones(&mut self, budget: usize) -> usize {
        let (first, second) = self.queue.entries.as_slices();
        let mut count = 0;
        for part in [first, second] {
            let part = &part[..part.len().min(budget - count)];
            let skipped = skip_tombstones(part, &mut self.parked);
            count += skipped;
            if skipped < part.len() || count == budget {
                break;
            }
        }
        self.queue.entries.drain(..count);
        self.queue.front = self.queue.front.wrapping_add(count as u32);
        count
    }

    fn front_is_tombstone(&self) -> bool {
        self.queue
            .entries
            .front()
            .is_some_and(|&slot| self.is_tombstone(slot))
    }

    /// Returns whether a queue entry is for no session: a tombstone, or the entry
    /// of a session a scanning sweep removed.
    fn is_tombstone(&self, slot: u32) -> bool {
        slot == NONE || (self.parked.queued > 0 && self.parked.contains(slot))
    }

    /// Turns every queue entry of a parked slot into a tombstone, in one pass over the
    /// queue. Runs only when a sweep with an earlier cutoff cuts a scanning sweep short,
    /// after the idle timeout was raised.
    ///
    /// TODO: the pass over the whole queue is one step, not bounded like sweep steps.
    fn bury_parked_entries(&mut self) {
        let parked = &self.parked;
        for entry in self.queue.entries.iter_mut() {
            if *entry != NONE && parked.contains(*entry) {
                *entry = NONE;
            }
        }
        self.parked.queued = 0;
    }

    /// Counts sessions whose last activity is at or before `cutoff`, visiting only
    /// those and the tombstones between them.
    pub fn count_stale(&self, cutoff: MonoTime) -> usize {
        let cutoff = to_nanos(cutoff);
        let queued = self
            .queue
            .entries
            .iter()
            .filter(|&&slot| !self.is_tombstone(slot))
            .take_while(|&&slot| self.nodes[slot as usize].last_active <= cutoff)
            .count();
        let late = self.late.range(..=(cutoff, u32::MAX)).count();
        queued + late
    }

    fn start_sweep(&mut self, cutoff: Nanos) -> SweepState {
        let scan = match self.strategy {
            SweepStrategy::Pop => false,
            SweepStrategy::Scan => true,
            SweepStrategy::Auto => self.large_share_stale(cutoff),
        };
        let state = SweepState {
            cutoff,
            scan: scan.then_some(0),
        };
        self.sweep = Some(state);
        state
    }

    /// Returns whether at least 1/16 of the sessions are stale at `cutoff`, estimated
    /// from [`SHARE_SAMPLES`] slab slots picked at random. Queue positions would give
    /// the count directly only without tombstones, and after a burst of touches most of
    /// the queue front is tombstones.
    fn large_share_stale(&self, cutoff: Nanos) -> bool {
        if self.nodes.is_empty() {
            return false;
        }
        let mut rng = fastrand::Rng::with_seed(cutoff);
        let (mut live, mut stale) = (0, 0);
        for _ in 0..SHARE_SAMPLES {
            let node = &self.nodes[rng.usize(0..self.nodes.len())];
            if node.is_live() {
                live += 1;
                stale += usize::from(node.last_active <= cutoff);
            }
        }
        live > 0 && stale * SCAN_SHARE_DIVISOR >= live
    }

    /// Returns the session with the oldest last activity: the queue front or the
    /// earliest late session, whichever is older. Expects no tombstone at the front.
    fn oldest_slot(&self) -> Option<u32> {
        let queued = self
            .queue
            .entries
            .iter()
            .find(|&&slot| !self.is_tombstone(slot))
            .copied();
        let late = self.late.first().copied();
        match (queued, late) {
            (Some(slot), Some((at, late_slot))) => {
                if at < self.nodes[slot as usize].last_active {
                    Some(late_slot)
                } else {
                    Some(slot)
                }
            }
            (Some(slot), None) => Some(slot),
            (None, Some((_, slot))) => Some(slot),
            (None, None) => None,
        }
    }

    /// Asks the processor to load the node of the queue entry `distance` behind the
    /// front, which a sweep is about to read, and the hash table bucket of the entry
    /// half as far, whose node was asked for earlier.
    fn prefetch_queued(&self, distance: usize) {
        if let Some(&slot) = self.queue.entries.get(distance)
            && let Some(node) = self.nodes.get(slot as usize)
        {
            prefetch(node);
        }
        if let Some(&slot) = self.queue.entries.get(distance / 2)
            && let Some(node) = self.nodes.get(slot as usize)
        {
            self.index.prefetch(self.hash(node.id.as_str()));
        }
    }

    fn session(&self, slot: u32) -> Session {
        let node = &self.nodes[slot as usize];
        Session {
            id: node.id.clone(),
            source: node.source,
            created: from_nanos(node.created),
            last_active: from_nanos(node.last_active),
            activity_count: node.activity_count,
            meta: node
                .has_meta
                .then(|| self.meta.get(&slot).cloned())
                .flatten(),
        }
    }

    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash(id)
    }

    /// Finds the slot of a live session. Hash table entries of parked slots are still
    /// there during a scanning sweep, so the place is checked too.
    fn find(&self, id: &str) -> Option<u32> {
        let hash = self.hash(id);
        let nodes = &self.nodes;
        let position = self.index.find(hash, |slot| {
            let node = &nodes[slot as usize];
            node.id.as_str() == id && node.is_live()
        })?;
        self.index.slot_at(position)
    }

    fn insert(&mut self, id: SessionId, source: Source, at: Nanos) -> u32 {
        let hash = self.hash(id.as_str());
        let node = Node {
            id,
            created: at,
            last_active: at,
            activity_count: 1,
            link: NONE,
            source,
            place: Place::Vacant,
            has_meta: false,
            changed: false,
        };
        let slot = match self.free {
            Some(slot) => {
                let next = self.nodes[slot as usize].link;
                self.free = (next != NONE).then_some(next);
                self.nodes[slot as usize] = node;
                slot
            }
            None => {
                let slot = u32::try_from(self.nodes.len())
                    .ok()
                    .filter(|&slot| slot < MAX_SLOTS)
                    .expect("the session store has room for 2^26 - 2 sessions");
                huge_pages::reserve_one(&mut self.nodes);
                self.nodes.push(node);
                slot
            }
        };

        let nodes = &self.nodes;
        let hasher = &self.hasher;
        self.index.insert(hash, slot, |other| {
            hasher.hash(nodes[other as usize].id.as_str())
        });
        self.len += 1;
        self.attach(slot);
        slot
    }

    /// Puts a live node into the queue, or into the late set when its last activity is
    /// earlier than the newest queue entry.
    fn attach(&mut self, slot: u32) {
        let at = self.nodes[slot as usize].last_active;
        if at >= self.queue.newest {
            let position = self.queue.push(slot, at);
            let node = &mut self.nodes[slot as usize];
            node.link = position;
            node.place = Place::Queued;
            self.compact_if_sparse();
        } else {
            self.late.insert((at, slot));
            self.nodes[slot as usize].place = Place::Late;
        }
    }

    /// Takes a live node out of the queue or the late set.
    fn detach(&mut self, slot: u32) {
        let node = &self.nodes[slot as usize];
        match node.place {
            Place::Queued => self.queue.bury(node.link),
            Place::Late => {
                self.late.remove(&(node.last_active, slot));
            }
            Place::Vacant | Place::Parked => unreachable!("only live nodes are detached"),
        }
    }

    /// Frees a detached node and its hash table entry, and returns its session.
    fn release(&mut self, slot: u32) -> Session {
        let session = self.take_session(slot);
        let hash = self.hash(session.id.as_str());
        let position = self.index.find(hash, |other| other == slot);
        self.index
            .remove_at(position.expect("every live slot is indexed"));
        self.free_slot(slot);
        session
    }

    /// Takes the session out of a node, appends it to `sessions`, and parks the slot: its
    /// hash table entry stays for [`Self::clean_parked`], and the slot joins the free
    /// list after that.
    #[inline(always)]
    fn park(&mut self, slot: u32, sessions: &mut Vec<Session>) {
        let meta = match self.nodes[slot as usize].has_meta {
            true => self.meta.remove(&slot),
            false => None,
        };
        sessions.reserve(1);
        let node = &mut self.nodes[slot as usize];
        // Written in place after the reservation. A plain push builds the session on the
        // stack first, and copying it from there stalls on the narrow stores of its
        // fields: measured at about 10% of a sweep with half of 1M sessions stale.
        sessions.spare_capacity_mut()[0].write(Session {
            id: std::mem::replace(&mut node.id, SessionId::placeholder()),
            source: node.source,
            created: from_nanos(node.created),
            last_active: from_nanos(node.last_active),
            activity_count: node.activity_count,
            meta,
        });
        // SAFETY: the reservation made room for the element at `len`, and it was just
        // written.
        unsafe { sessions.set_len(sessions.len() + 1) };
        node.has_meta = false;
        node.place = Place::Parked;
        node.link = self.parked.head;
        self.len -= 1;
        self.parked.head = slot;
        if self.parked.tail == NONE {
            self.parked.tail = slot;
        }
        self.parked.insert(slot);
    }

    #[inline(always)]
    fn take_session(&mut self, slot: u32) -> Session {
        let meta = match self.nodes[slot as usize].has_meta {
            true => self.meta.remove(&slot),
            false => None,
        };
        let node = &mut self.nodes[slot as usize];
        node.has_meta = false;
        self.len -= 1;
        Session {
            id: std::mem::replace(&mut node.id, SessionId::placeholder()),
            source: node.source,
            created: from_nanos(node.created),
            last_active: from_nanos(node.last_active),
            activity_count: node.activity_count,
            meta,
        }
    }

    fn free_slot(&mut self, slot: u32) {
        self.nodes[slot as usize] = Node::vacant(self.free.unwrap_or(NONE));
        self.free = Some(slot);
    }

    /// Clears the hash table entries of parked slots, checking at most `budget` buckets,
    /// then puts the chain of parked slots on the free list. Expects no queue entry of a
    /// parked slot to be left.
    fn clean_parked(&mut self, budget: usize) {
        debug_assert_eq!(self.parked.queued, 0);
        let mut budget = budget.max(1);
        while budget > 0 && self.parked.indexed > 0 {
            let buckets = self.index.buckets();
            let end = self.parked.cursor.saturating_add(budget).min(buckets);
            let cleared = self
                .index
                .remove_marked(self.parked.cursor..end, &self.parked.bits);
            self.parked.indexed -= cleared;
            budget -= end - self.parked.cursor;
            // Past the last bucket with entries left, the table was rebuilt during the
            // pass and moved them into buckets already checked: check again.
            self.parked.cursor = if end == buckets || self.parked.indexed == 0 {
                0
            } else {
                end
            };
        }
        if self.parked.indexed == 0 && self.parked.count > 0 {
            let parked = std::mem::take(&mut self.parked);
            self.nodes[parked.tail as usize].link = self.free.unwrap_or(NONE);
            self.free = Some(parked.head);
        }
    }

    /// Rewrites the queue without tombstones once they outnumber sessions by
    /// [`COMPACTION_SLACK`]. Each rewrite costs one pass over the queue and one write
    /// to each queued node, and happens at most once per that many touches.
    ///
    /// TODO: the rewrite runs inside one touch, about 10 to 20 ms at 1M sessions on a
    /// 2-core machine; doing it in steps would bound that pause as sweeps are bounded.
    fn compact_if_sparse(&mut self) {
        if self.queue.tombstones() < self.queue.live + COMPACTION_SLACK {
            return;
        }
        let front = self.queue.front;
        let parked = &self.parked;
        let entries = self.queue.entries.make_contiguous();
        let mut kept = 0;
        for index in 0..entries.len() {
            let slot = entries[index];
            if slot == NONE || (parked.queued > 0 && parked.contains(slot)) {
                continue;
            }
            entries[kept] = slot;
            self.nodes[slot as usize].link = front.wrapping_add(kept as u32);
            kept += 1;
        }
        self.queue.entries.truncate(kept);
        self.queue.entries.shrink_to(kept * 2);
        self.parked.queued = 0;
    }
}

/// Returns how many entries at the start of `entries` are tombstones or entries of
/// parked slots, and takes the parked ones off `parked.queued`.
fn skip_tombstones(entries: &[u32], parked: &mut Parked) -> usize {
    /// Entries checked at once for a run of tombstones, which a large touch burst or
    /// sweep leaves at the queue front.
    const RUN: usize = 16;
    let mut index = 0;
    while let Some(&slot) = entries.get(index) {
        if slot == NONE {
            let run = entries.get(index..index + RUN);
            let whole_run =
                run.is_some_and(|run| run.iter().fold(0, |any, &slot| any | !slot) == 0);
            index += if whole_run { RUN } else { 1 };
            continue;
        }
        if parked.queued == 0 || !parked.contains(slot) {
            break;
        }
        parked.queued -= 1;
        index += 1;
    }
    index
}

/// Hints the processor to load `value` into the cache: the cache lines of its first
/// and last byte, because half of the 48-byte slab nodes straddle two lines. A hint
/// only: it never faults and changes no result.
#[inline(always)]
pub(super) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let first = (value as *const T).cast::<i8>();
        let last = first.wrapping_add(size_of::<T>().saturating_sub(1));
        // SAFETY: SSE is part of every x86_64 target, and a prefetch reads nothing the
        // program sees and never faults, whatever the address.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(first);
            _mm_prefetch::<_MM_HINT_T0>(last);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
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

    fn order(store: &SessionStore) -> Vec<String> {
        store.iter().map(|session| session.id.to_string()).collect()
    }

    /// Runs a whole sweep in steps of `limit` and returns the removed ids in order.
    fn sweep(store: &mut SessionStore, cutoff: MonoTime, limit: usize) -> Vec<String> {
        let mut removed = Vec::new();
        loop {
            let mut sessions = Vec::new();
            let progress = store.sweep_step(cutoff, limit, &mut sessions);
            removed.extend(sessions.iter().map(|session| session.id.to_string()));
            if progress.finished {
                return removed;
            }
        }
    }

    #[test]
    fn node_is_48_bytes() {
        assert_eq!(std::mem::size_of::<Node>(), 48);
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
    fn sweep_removes_only_stale_oldest_first() {
        for strategy in [SweepStrategy::Pop, SweepStrategy::Scan] {
            let mut store = SessionStore::new();
            store.set_sweep_strategy(strategy);
            for (name, secs) in [("a", 0), ("b", 50), ("c", 100), ("d", 200)] {
                store.touch(&id(name), Source::Simulator, at(secs), TIMEOUT);
            }
            let cutoff = stale_cutoff(at(400), TIMEOUT).unwrap();
            assert_eq!(sweep(&mut store, cutoff, usize::MAX), ["a", "b", "c"]);
            assert_eq!(order(&store), ["d"]);
            assert!(store.get("a").is_none());
        }
    }

    #[test]
    fn sweep_step_respects_limit() {
        let mut store = SessionStore::new();
        for n in 0..10 {
            store.touch(&id(&format!("s{n}")), Source::Simulator, at(n), TIMEOUT);
        }
        let cutoff = stale_cutoff(at(1000), TIMEOUT).unwrap();
        let progress = store.sweep_step(cutoff, 4, &mut Vec::new());
        assert_eq!(progress.removed, 4);
        assert!(!progress.finished);
        assert_eq!(store.len(), 6);
        assert_eq!(store.count_stale(cutoff), 6);
    }

    #[test]
    fn late_activity_is_swept_in_order() {
        let mut store = SessionStore::new();
        store.touch(&id("new"), Source::Replay, at(100), TIMEOUT);
        store.touch(&id("old"), Source::Replay, at(10), TIMEOUT);
        store.touch(&id("mid"), Source::Replay, at(50), TIMEOUT);
        assert_eq!(order(&store), ["old", "mid", "new"]);
        let cutoff = stale_cutoff(at(360), TIMEOUT).unwrap();
        assert_eq!(store.count_stale(cutoff), 2);
        assert_eq!(sweep(&mut store, cutoff, 1), ["old", "mid"]);
        assert_eq!(order(&store), ["new"]);
    }

    #[test]
    fn scanning_sweep_hides_removed_sessions() {
        let mut store = SessionStore::new();
        store.set_sweep_strategy(SweepStrategy::Scan);
        for n in 0..100 {
            store.touch(&id(&format!("s{n}")), Source::Api, at(n), TIMEOUT);
        }
        let cutoff = stale_cutoff(at(349), TIMEOUT).unwrap();
        let progress = store.sweep_step(cutoff, 100, &mut Vec::new());
        assert_eq!(progress.removed, 50);
        assert!(store.get("s0").is_none());
        assert_eq!(
            store.touch(&id("s0"), Source::Api, at(400), TIMEOUT),
            TouchOutcome::Created
        );
        while !store.sweep_step(cutoff, 1, &mut Vec::new()).finished {}
        assert_eq!(store.len(), 51);
        assert_eq!(store.index.len(), 51);
    }

    #[test]
    fn auto_sweep_scans_when_many_are_stale() {
        let mut store = SessionStore::new();
        for n in 0..1000 {
            store.touch(&id(&format!("s{n}")), Source::Api, at(n), TIMEOUT);
        }
        store.sweep_step(stale_cutoff(at(310), TIMEOUT).unwrap(), 1, &mut Vec::new());
        assert!(store.sweep.unwrap().scan.is_none());
        store.sweep = None;
        store.sweep_step(stale_cutoff(at(800), TIMEOUT).unwrap(), 1, &mut Vec::new());
        assert!(store.sweep.unwrap().scan.is_some());
    }

    #[test]
    fn queue_is_compacted() {
        let mut store = SessionStore::new();
        store.touch(&id("a"), Source::Api, at(0), TIMEOUT);
        store.touch(&id("b"), Source::Api, at(0), TIMEOUT);
        for n in 1..=3 * COMPACTION_SLACK as u64 {
            let at = MonoTime::from_duration(Duration::from_millis(n));
            store.touch(&id("b"), Source::Api, at, TIMEOUT);
        }
        assert!(store.queue.entries.len() <= 2 + COMPACTION_SLACK);
        assert_eq!(order(&store), ["a", "b"]);
    }

    #[test]
    fn meta_follows_the_session() {
        let mut store = SessionStore::new();
        store.touch(&id("a"), Source::Api, at(0), TIMEOUT);
        let meta: SessionMeta = std::sync::Arc::new([("user".into(), "ana".into())].into());
        assert!(store.set_meta("a", meta.clone()));
        assert!(!store.set_meta("b", meta.clone()));
        assert_eq!(store.get("a").unwrap().meta, Some(meta.clone()));
        let TouchOutcome::Renewed { expired } =
            store.touch(&id("a"), Source::Api, at(400), TIMEOUT)
        else {
            panic!("expected a renewal");
        };
        assert_eq!(expired.meta, Some(meta));
        assert_eq!(store.get("a").unwrap().meta, None);
        assert!(store.meta.is_empty());
    }

    #[test]
    fn changed_sessions_are_taken_once() {
        let mut store = SessionStore::new();
        store.touch(&id("a"), Source::Api, at(0), TIMEOUT);
        store.touch(&id("b"), Source::Api, at(1), TIMEOUT);
        store.touch(&id("a"), Source::Api, at(2), TIMEOUT);
        store.remove("b");
        store.touch(&id("c"), Source::Api, at(3), TIMEOUT);
        let changed: Vec<String> = store
            .take_changed()
            .iter()
            .map(|s| s.id.to_string())
            .collect();
        assert_eq!(changed, ["a", "c"]);
        assert!(!store.has_changed());
        assert!(store.take_changed().is_empty());

        store.mark_changed_id("a");
        assert_eq!(store.take_changed()[0].activity_count, 2);
        store.touch(&id("c"), Source::Api, at(4), TIMEOUT);
        store.clear_changed();
        assert!(store.take_changed().is_empty());
    }

    #[test]
    fn nothing_stale_before_timeout_elapsed() {
        assert_eq!(stale_cutoff(at(299), TIMEOUT), None);
        assert_eq!(stale_cutoff(at(300), TIMEOUT), Some(at(0)));
    }

    #[test]
    fn tombstone_runs_and_parked_entries_skipped() {
        let mut parked = Parked::default();
        parked.cover(64);
        for slot in [3, 5] {
            parked.insert(slot);
            parked.queued += 1;
        }
        let mut entries = vec![NONE; 20];
        entries.extend([3, NONE, NONE, NONE, 5, 7, NONE, 3]);

        assert_eq!(skip_tombstones(&entries, &mut parked), 25);
        assert_eq!(parked.queued, 0);
        assert_eq!(skip_tombstones(&entries[..19], &mut parked), 19);
        assert_eq!(skip_tombstones(&entries[20..], &mut parked), 0);
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
