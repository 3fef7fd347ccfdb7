//! A hash table of slab slots: open addressing with linear probing over 4-byte buckets.
//! Owned by the engine worker's session store.
//!
//! Each bucket stores a slot number in its low 26 bits and 6 bits of the key's hash
//! above them, so most probes that would compare a key with a session of another id
//! are rejected without reading the slab. The table stores no keys, so finding a slot
//! takes a closure that compares the key with the slot's session, and growing takes one
//! that hashes a slot's session again.
//!
//! Unlike `hashbrown`'s table, it exposes where a key's probe starts, so a batch of
//! lookups can ask the processor to load their buckets before they are needed. The
//! position of each entry is stable until the table grows or is rebuilt.

use std::hash::BuildHasher;

use hashbrown::DefaultHashBuilder;

/// Bits of a bucket that hold the slot number.
const SLOT_BITS: u32 = 26;
const SLOT_MASK: u32 = (1 << SLOT_BITS) - 1;

/// A bucket that never held an entry since the table was built; a probe stops here.
const EMPTY: u32 = u32::MAX;

/// A bucket whose entry was removed; a probe continues past it.
const DELETED: u32 = u32::MAX - 1;

/// Slots the table can refer to: every slot number below this. The two largest values
/// of the low bits are taken by [`EMPTY`] and [`DELETED`] with the largest tag.
pub(crate) const MAX_SLOTS: u32 = SLOT_MASK - 1;

/// Smallest table, in buckets.
const MIN_BUCKETS: usize = 16;

/// Hashes keys the way the table expects.
#[derive(Debug, Default, Clone)]
pub(crate) struct KeyHasher(DefaultHashBuilder);

impl KeyHasher {
    pub fn hash(&self, key: &str) -> u64 {
        self.0.hash_one(key)
    }
}

/// Slab slots by the hash of their session's id.
#[derive(Debug, Default)]
pub(crate) struct SlotIndex {
    buckets: Vec<u32>,
    /// Entries, not counting deleted ones.
    len: usize,
    /// Buckets marked [`DELETED`].
    deleted: usize,
}

fn tag(hash: u64) -> u32 {
    ((hash >> 58) as u32) << SLOT_BITS
}

fn entry(hash: u64, slot: u32) -> u32 {
    debug_assert!(slot < MAX_SLOTS);
    tag(hash) | slot
}

/// Returns whether a bucket contains an entry, not [`EMPTY`] nor [`DELETED`].
fn is_entry(bucket: u32) -> bool {
    bucket < DELETED
}

impl SlotIndex {
    /// Returns the number of entries.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns the number of buckets, the range of the positions that
    /// [`SlotIndex::slot_at`] and [`SlotIndex::remove_at`] take.
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    fn mask(&self) -> usize {
        self.buckets.len().wrapping_sub(1)
    }

    /// Asks the processor to load the bucket where the probe for `hash` starts.
    pub fn prefetch(&self, hash: u64) {
        if let Some(bucket) = self.buckets.get(hash as usize & self.mask()) {
            super::store::prefetch(bucket);
        }
    }

    /// Returns the first slot whose tag matches `hash` in the probe for it, without
    /// comparing keys: the slot whose session a lookup is about to read, if any.
    pub fn first_candidate(&self, hash: u64) -> Option<u32> {
        let mask = self.mask();
        let wanted = tag(hash);
        let mut position = hash as usize & mask;
        for _ in 0..self.buckets.len() {
            let bucket = self.buckets[position];
            if bucket == EMPTY {
                return None;
            }
            if is_entry(bucket) && bucket & !SLOT_MASK == wanted {
                return Some(bucket & SLOT_MASK);
            }
            position = (position + 1) & mask;
        }
        None
    }

    /// Returns the position of the entry for `hash` whose slot `matches`.
    pub fn find(&self, hash: u64, mut matches: impl FnMut(u32) -> bool) -> Option<usize> {
        let mask = self.mask();
        let wanted = tag(hash);
        let mut position = hash as usize & mask;
        for _ in 0..self.buckets.len() {
            let bucket = self.buckets[position];
            if bucket == EMPTY {
                return None;
            }
            if is_entry(bucket) && bucket & !SLOT_MASK == wanted && matches(bucket & SLOT_MASK) {
                return Some(position);
            }
            position = (position + 1) & mask;
        }
        None
    }

    /// Returns the slot at `position`, if the bucket contains an entry.
    pub fn slot_at(&self, position: usize) -> Option<u32> {
        let bucket = *self.buckets.get(position)?;
        is_entry(bucket).then_some(bucket & SLOT_MASK)
    }

    /// Removes the entry at `position`.
    pub fn remove_at(&mut self, position: usize) {
        debug_assert!(is_entry(self.buckets[position]));
        let next = self.buckets[(position + 1) & self.mask()];
        // A bucket before an empty one ends every probe that reaches it, so it can be
        // empty too. Otherwise it stays a marker, so later entries stay reachable.
        if next == EMPTY {
            self.buckets[position] = EMPTY;
        } else {
            self.buckets[position] = DELETED;
            self.deleted += 1;
        }
        self.len -= 1;
    }

    /// Removes the entries in buckets `positions` whose slot has its bit set in
    /// `marked`, a bitmap of slots with slot `n` at bit `n % 64` of word `n / 64`.
    /// Returns how many it removed. Reads the buckets in memory order and no key.
    pub fn remove_marked(&mut self, positions: std::ops::Range<usize>, marked: &[u64]) -> usize {
        let Some(last_word) = marked.len().checked_sub(1) else {
            return 0;
        };
        let mut removed = 0;
        let mut deleted = 0;
        // Backwards, so a bucket whose successor was just emptied can be emptied too.
        // Whether the successor is empty stays in a register, because reading it back
        // from memory would make each bucket wait for the store to the one after it.
        let mut next_empty = self.buckets[positions.end & self.mask()] == EMPTY;
        for position in positions.rev() {
            let bucket = self.buckets[position];
            let slot = (bucket & SLOT_MASK) as usize;
            let word = marked[(slot / 64).min(last_word)];
            let hit =
                is_entry(bucket) & (slot / 64 <= last_word) & ((word >> (slot % 64)) & 1 == 1);
            let emptied = if next_empty { EMPTY } else { DELETED };
            let new = if hit { emptied } else { bucket };
            self.buckets[position] = new;
            removed += usize::from(hit);
            deleted += usize::from(hit & !next_empty);
            next_empty = new == EMPTY;
        }
        self.len -= removed;
        self.deleted += deleted;
        removed
    }

    /// Adds an entry for a key that has none. `rehash` returns the hash of a slot's key,
    /// for the entries moved when the table grows or drops its deleted buckets.
    pub fn insert(&mut self, hash: u64, slot: u32, rehash: impl Fn(u32) -> u64) {
        // Probes stay short while at most 3/4 of the buckets are used.
        if (self.len + self.deleted + 1) * 4 > self.buckets.len() * 3 {
            self.rebuild(rehash);
        }
        let mask = self.mask();
        let mut position = hash as usize & mask;
        loop {
            let bucket = self.buckets[position];
            if !is_entry(bucket) {
                if bucket == DELETED {
                    self.deleted -= 1;
                }
                self.buckets[position] = entry(hash, slot);
                self.len += 1;
                return;
            }
            position = (position + 1) & mask;
        }
    }

    /// Places every entry again in a table with room for twice as many, or as large as
    /// now when deleted buckets took the room. Reads each entry's key through `rehash`.
    fn rebuild(&mut self, rehash: impl Fn(u32) -> u64) {
        let needed = (self.len + 1) * 2;
        let buckets = needed.next_power_of_two().max(MIN_BUCKETS);
        let mut table = super::huge_pages::vec_with_capacity(buckets);
        table.resize(buckets, EMPTY);
        let old = std::mem::replace(&mut self.buckets, table);
        self.deleted = 0;
        let mask = self.mask();
        for bucket in old.into_iter().filter(|&bucket| is_entry(bucket)) {
            let slot = bucket & SLOT_MASK;
            let mut position = rehash(slot) as usize & mask;
            while self.buckets[position] != EMPTY {
                position = (position + 1) & mask;
            }
            self.buckets[position] = bucket;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_of(keys: &[&str], hasher: &KeyHasher) -> SlotIndex {
        let mut index = SlotIndex::default();
        for (slot, key) in keys.iter().enumerate() {
            let hash = hasher.hash(key);
            index.insert(hash, slot as u32, |other| hasher.hash(keys[other as usize]));
        }
        index
    }

    #[test]
    fn finds_every_key_after_growth() {
        let hasher = KeyHasher::default();
        let names: Vec<String> = (0..1000).map(|n| format!("k{n}")).collect();
        let keys: Vec<&str> = names.iter().map(String::as_str).collect();
        let index = index_of(&keys, &hasher);
        assert_eq!(index.len(), 1000);
        for (slot, key) in keys.iter().enumerate() {
            let position = index.find(hasher.hash(key), |other| keys[other as usize] == *key);
            let position = position.unwrap_or_else(|| panic!("{key} not found"));
            assert_eq!(index.slot_at(position), Some(slot as u32));
        }
        let missing = index.find(hasher.hash("missing"), |other| {
            keys[other as usize] == "missing"
        });
        assert!(missing.is_none());
    }

    #[test]
    fn removal_keeps_later_entries_reachable() {
        let hasher = KeyHasher::default();
        let names: Vec<String> = (0..200).map(|n| format!("k{n}")).collect();
        let keys: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut index = index_of(&keys, &hasher);
        for key in keys.iter().step_by(2) {
            let position = index
                .find(hasher.hash(key), |other| keys[other as usize] == *key)
                .unwrap();
            index.remove_at(position);
        }
        assert_eq!(index.len(), 100);
        for (slot, key) in keys.iter().enumerate() {
            let found = index.find(hasher.hash(key), |other| keys[other as usize] == *key);
            assert_eq!(found.is_some(), slot % 2 == 1, "{key}");
        }
    }

    #[test]
    fn remove_marked_clears_marked_slots() {
        let hasher = KeyHasher::default();
        let names: Vec<String> = (0..300).map(|n| format!("k{n}")).collect();
        let keys: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut index = index_of(&keys, &hasher);
        let mut marked = vec![0u64; 300usize.div_ceil(64)];
        for slot in (0..300).step_by(3) {
            marked[slot / 64] |= 1 << (slot % 64);
        }
        let middle = index.buckets() / 2;
        let mut removed = index.remove_marked(0..middle, &marked);
        removed += index.remove_marked(middle..index.buckets(), &marked);
        assert_eq!(removed, 100);
        assert_eq!(index.len(), 200);
        for (slot, key) in keys.iter().enumerate() {
            let found = index.find(hasher.hash(key), |other| keys[other as usize] == *key);
            assert_eq!(found.is_some(), slot % 3 != 0, "{key}");
        }
    }

    #[test]
    fn deleted_buckets_are_reclaimed() {
        let hasher = KeyHasher::default();
        let names: Vec<String> = (0..64).map(|n| format!("k{n}")).collect();
        let keys: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut index = SlotIndex::default();
        for round in 0..100 {
            for (slot, key) in keys.iter().enumerate() {
                index.insert(hasher.hash(key), slot as u32, |other| {
                    hasher.hash(keys[other as usize])
                });
            }
            for key in &keys {
                let position = index
                    .find(hasher.hash(key), |other| keys[other as usize] == *key)
                    .unwrap_or_else(|| panic!("{key} not found in round {round}"));
                index.remove_at(position);
            }
        }
        assert_eq!(index.len(), 0);
        assert!(index.buckets() <= 256, "{} buckets", index.buckets());
    }
}
