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

struct Slot<K, V> {
    key: K,
    value: V,
    /// Looked up since the sweep last passed it.
    used: bool,
}

/// The map (see the module doc). The entries live in one vector and the hash map holds
/// only their index: a table of 10,000 processes is 10,000 entries of the vector (a
/// vector's pages past its length are never touched) and an index of 8-byte buckets,
/// not a hash map of 16,384 buckets of whole entries (~1.7 MB against ~0.9 MB).
pub struct Bounded<K, V> {
    index: IdMap<K, u32>,
    /// The entries; the clock hand sweeps them. Slots freed by removals wait in `free`,
    /// so every other slot holds a live entry.
    slots: Vec<Option<Slot<K, V>>>,
    free: Vec<u32>,
    hand: usize,
    max: usize,
    evictions: u64,
}

impl<K: Copy + Eq + Hash, V> Bounded<K, V> {
    /// An empty map of at most `max` entries (at least one; at most 2^32).
    pub fn new(max: usize) -> Self {
        Bounded {
            index: IdMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            hand: 0,
            max: max.clamp(1, u32::MAX as usize),
            evictions: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Entries evicted to make room so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Room for `n` more entries (within the bound), made at once: a table filled at
    /// start grows by no copies.
    pub fn reserve(&mut self, n: usize) {
        let n = n.min(self.max.saturating_sub(self.len()));
        self.index.reserve(n);
        self.slots.reserve(n.saturating_sub(self.free.len()));
    }

    fn slot(&self, k: &K) -> Option<&Slot<K, V>> {
        let &i = self.index.get(k)?;
        self.slots.get(i as usize)?.as_ref()
    }

    fn slot_mut(&mut self, k: &K) -> Option<&mut Slot<K, V>> {
        let &i = self.index.get(k)?;
        self.slots.get_mut(i as usize)?.as_mut()
    }

    /// The value of `k`, marked used (so that it is evicted last).
    pub fn get(&mut self, k: &K) -> Option<&V> {
        let e = self.slot_mut(k)?;
        e.used = true;
        Some(&e.value)
    }

    /// The value of `k` to change, marked used.
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let e = self.slot_mut(k)?;
        e.used = true;
        Some(&mut e.value)
    }

    /// The value of `k`, not marked (a look that is no use of the entry).
    pub fn peek(&self, k: &K) -> Option<&V> {
        self.slot(k).map(|e| &e.value)
    }

    /// The value of `k` to change, not marked.
    pub fn peek_mut(&mut self, k: &K) -> Option<&mut V> {
        self.slot_mut(k).map(|e| &mut e.value)
    }

    /// Puts `k` in, replacing its value (and marking it used) when it is there; else in a
    /// free slot, a new one under the bound, or the slot of an evicted entry.
    pub fn insert(&mut self, k: K, value: V) {
        if let Some(e) = self.slot_mut(&k) {
            e.value = value;
            e.used = true;
            return;
        }
        let slot = if let Some(slot) = self.free.pop() {
            slot as usize
        } else if self.slots.len() < self.max {
            self.slots.push(None);
            self.slots.len() - 1
        } else {
            self.evict()
        };
        self.slots[slot] = Some(Slot {
            key: k,
            value,
            used: false,
        });
        // Below the bound, itself at most 2^32.
        self.index.insert(k, slot as u32);
    }

    /// Takes `k` out; its slot is reused without an eviction.
    pub fn remove(&mut self, k: &K) -> Option<V> {
        let i = self.index.remove(k)?;
        let e = self.slots.get_mut(i as usize)?.take()?;
        self.free.push(i);
        Some(e.value)
    }

    /// Every entry goes (the bound and the evictions counted stay).
    pub fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.free.clear();
        self.hand = 0;
    }

    /// Frees the slot of the first entry not used since the hand last passed it (every
    /// slot holds a live entry when this is called: none is free and the vector is full).
    fn evict(&mut self) -> usize {
        let n = self.slots.len();
        for _ in 0..2 * n + 1 {
            let slot = self.hand % n;
            self.hand = slot + 1;
            match &mut self.slots[slot] {
                Some(e) if e.used => e.used = false,
                Some(e) => {
                    let k = e.key;
                    self.index.remove(&k);
                    self.slots[slot] = None;
                    self.evictions += 1;
                    return slot;
                }
                None => {}
            }
        }
        // Not reached (two sweeps clear every bit); a slot is given anyway.
        let slot = self.hand % n;
        if let Some(e) = self.slots[slot].take() {
            self.index.remove(&e.key);
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
        *m.get_mut(&1099).expect("there") += 1;
        assert_eq!(m.peek(&1099), Some(&1100));
        m.clear();
        assert!(m.is_empty() && m.peek(&1099).is_none());
        m.insert(7, 7);
        assert_eq!((m.len(), m.evictions()), (1, 1001));
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
