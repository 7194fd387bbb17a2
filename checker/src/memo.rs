//! The search's memo of configurations already reached.
//!
//! A configuration is a key (the state and the set of linearised required operations, encoded
//! as a `u32` slice by the search) plus the set of optional operations used, a bitset. Keys live
//! in one arena so that recording a configuration costs no allocation of its own. Per key the
//! memo keeps an antichain of bitsets: a configuration is redundant if a recorded one with the
//! same key used a subset of its optional operations.

use std::hash::{BuildHasher, BuildHasherDefault};

use hashbrown::HashTable;
use rustc_hash::FxHasher;

const NO_SETS: u32 = u32::MAX;

struct Slot {
    start: usize,
    len: usize,
    /// Index into `Memo::sets`, or `NO_SETS` when there are no optional operations.
    sets: u32,
}

pub(crate) struct Memo {
    /// Words per optional-operation bitset; 0 when the key has no optional operations.
    words: usize,
    table: HashTable<Slot>,
    keys: Vec<u32>,
    sets: Vec<Vec<u64>>,
    set_words: usize,
}

fn hash(key: &[u32]) -> u64 {
    BuildHasherDefault::<FxHasher>::default().hash_one(key)
}

impl Memo {
    pub(crate) fn new(words: usize) -> Memo {
        Memo {
            words,
            table: HashTable::new(),
            keys: Vec::new(),
            sets: Vec::new(),
            set_words: 0,
        }
    }

    /// Approximate bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.table.capacity() * (std::mem::size_of::<Slot>() + 1)
            + self.keys.capacity() * 4
            + self.sets.capacity() * std::mem::size_of::<Vec<u64>>()
            + self.set_words * 8
    }

    /// Records `(key, used)`. False if it, or a configuration that dominates it, was recorded.
    pub(crate) fn insert(&mut self, key: &[u32], used: &[u64]) -> bool {
        debug_assert_eq!(used.len(), self.words);
        let h = hash(key);
        let keys = &self.keys;
        if let Some(slot) = self
            .table
            .find(h, |s| &keys[s.start..s.start + s.len] == key)
        {
            if self.words == 0 {
                return false;
            }
            return Self::add_set(
                &mut self.sets[slot.sets as usize],
                used,
                &mut self.set_words,
            );
        }
        let start = self.keys.len();
        self.keys.extend_from_slice(key);
        let sets = if self.words == 0 {
            NO_SETS
        } else {
            self.sets.push(used.to_vec());
            self.set_words += used.len();
            u32::try_from(self.sets.len() - 1).expect("fewer than 2^32 memo keys")
        };
        let keys = &self.keys;
        self.table.insert_unique(
            h,
            Slot {
                start,
                len: key.len(),
                sets,
            },
            |s| hash(&keys[s.start..s.start + s.len]),
        );
        true
    }

    fn add_set(sets: &mut Vec<u64>, used: &[u64], total: &mut usize) -> bool {
        let words = used.len();
        let subset = |set: &[u64]| set.iter().zip(used).all(|(s, u)| s & !u == 0);
        if sets.chunks_exact(words).any(subset) {
            return false;
        }
        // Keep an antichain: drop the recorded sets that the new one dominates.
        let superset = |set: &[u64]| set.iter().zip(used).all(|(s, u)| u & !s == 0);
        let before = sets.len();
        let mut kept = 0;
        for i in 0..before / words {
            if !superset(&sets[i * words..(i + 1) * words]) {
                sets.copy_within(i * words..(i + 1) * words, kept * words);
                kept += 1;
            }
        }
        sets.truncate(kept * words);
        sets.extend_from_slice(used);
        *total = *total + sets.len() - before;
        true
    }
}
