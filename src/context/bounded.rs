//! A map bounded by a number of entries, for the context tables: past `max` entries the
//! least recently used one is evicted (a clock sweep, so that a lookup only sets a bit,
//! with no list to reorder on the hot path) and counted. One type for every table, so
//! that the sweep is written and tested once.
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// A map keyed by kernel ids (pids, uids, cgroup ids), hashed by one multiply: the
/// kernel picks these keys, not a user, and every event looks several of them up
/// (SipHash made a lookup ~15 ns of an event's ~60 ns of context).
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// The hasher of [`IdMap`] (the multiply-rotate of rustc's FxHasher).
#[derive(Clone, Copy, Default)]
pub struct IdHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(SEED);
    }
}

struct Slot<V> {
    value: V,
    /// Its place in `Bounded::ring`.
    slot: usize,
    /// Looked up since the sweep last passed it.
    used: bool,
}

/// The map (see the module doc).
pub struct Bounded<K, V> {
    entries: IdMap<K, Slot<V>>,
    /// The key in each slot; the clock hand sweeps it. Slots freed by removals wait in
    /// `free`, so every other slot holds a live entry.
    ring: Vec<K>,
    free: Vec<usize>,
    hand: usize,
    max: usize,
    evictions: u64,
}

impl<K: Copy + Eq + Hash, V> Bounded<K, V> {
    /// An empty map of at most `max` entries (at least one).
    pub fn new(max: usize) -> Self {
        Bounded {
            entries: IdMap::default(),
            ring: Vec::new(),
            free: Vec::new(),
            hand: 0,
            max: max.max(1),
            evictions: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Entries evicted to make room so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// The value of `k`, marked used (so that it is evicted last).
    pub fn get(&mut self, k: &K) -> Option<&V> {
        let e = self.entries.get_mut(k)?;
        e.used = true;
        Some(&e.value)
    }

    /// The value of `k`, not marked (a look that is no use of the entry).
    pub fn peek(&self, k: &K) -> Option<&V> {
        self.entries.get(k).map(|e| &e.value)
    }

    /// The value of `k` to change, not marked.
    pub fn peek_mut(&mut self, k: &K) -> Option<&mut V> {
        self.entries.get_mut(k).map(|e| &mut e.value)
    }

    /// Puts `k` in, replacing its value (and marking it used) when it is there; else in a
    /// free slot, a new one under the bound, or the slot of an evicted entry.
    pub fn insert(&mut self, k: K, value: V) {
        if let Some(e) = self.entries.get_mut(&k) {
            e.value = value;
            e.used = true;
            return;
        }
        let slot = if let Some(slot) = self.free.pop() {
            slot
        } else if self.ring.len() < self.max {
            self.ring.push(k);
            self.ring.len() - 1
        } else {
            self.evict()
        };
        self.ring[slot] = k;
        self.entries.insert(
            k,
            Slot {
                value,
                slot,
                used: false,
            },
        );
    }

    /// Takes `k` out; its slot is reused without an eviction.
    pub fn remove(&mut self, k: &K) -> Option<V> {
        let e = self.entries.remove(k)?;
        self.free.push(e.slot);
        Some(e.value)
    }

    /// Frees the slot of the first entry not used since the hand last passed it (every
    /// slot holds a live entry when this is called: none is free and the ring is full).
    fn evict(&mut self) -> usize {
        for _ in 0..2 * self.ring.len() + 1 {
            let slot = self.hand % self.ring.len();
            self.hand = slot + 1;
            let k = self.ring[slot];
            match self.entries.get_mut(&k) {
                Some(e) if e.slot == slot && e.used => e.used = false,
                Some(e) if e.slot == slot => {
                    self.entries.remove(&k);
                    self.evictions += 1;
                    return slot;
                }
                _ => {}
            }
        }
        // Not reached (two sweeps clear every bit); a slot is given anyway.
        let slot = self.hand % self.ring.len();
        if let Some(e) = self.entries.remove(&self.ring[slot]) {
            debug_assert_eq!(e.slot, slot);
            self.evictions += 1;
        }
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_evicts_the_least_recently_used_and_counts() {
        let mut m: Bounded<u32, u32> = Bounded::new(3);
        for k in 1..=3 {
            m.insert(k, k * 10);
        }
        // 1 is looked up: 2 goes first; a peek is no use.
        assert_eq!(m.get(&1), Some(&10));
        assert_eq!(m.peek(&2), Some(&20));
        m.insert(4, 40);
        assert_eq!((m.len(), m.evictions()), (3, 1));
        assert!(m.peek(&2).is_none());
        // A removal frees a slot, reused without an eviction.
        assert_eq!(m.remove(&3), Some(30));
        assert_eq!(m.remove(&3), None);
        m.insert(5, 50);
        assert_eq!((m.len(), m.evictions()), (3, 1));
        // Replacing a value takes no slot.
        m.insert(5, 51);
        assert_eq!((m.len(), m.peek(&5)), (3, Some(&51)));
        for k in 100..1100 {
            m.insert(k, k);
        }
        assert_eq!((m.len(), m.evictions()), (3, 1001));
    }

    /// Every entry used: the sweep clears the bits and still evicts exactly one.
    #[test]
    fn all_used_still_evicts_one() {
        let mut m: Bounded<u64, ()> = Bounded::new(4);
        for k in 0..4 {
            m.insert(k, ());
        }
        for k in 0..4 {
            assert!(m.get(&k).is_some());
        }
        m.insert(9, ());
        assert_eq!((m.len(), m.evictions()), (4, 1));
        assert!(m.peek(&9).is_some());
        assert!(Bounded::<u8, u8>::new(0).max() == 1);
    }
}
