//! `ArrivalMap`: values by key that come out in the order their keys first arrived, the table
//! under every key-wise aggregation and cogroup (results are deterministic: ARCHITECTURE.md).
//!
//! Entries sit in one vector in arrival order, so draining the map in that order is reading the
//! vector. An index maps a key's hash to its entry's number: a `hashbrown::HashTable<u32>`, whose
//! probing compares sixteen one-byte tags at once, so most keys that are not the one looked for
//! are told apart without touching their entry (and the tags of a word count's 10,000 keys take
//! 16 KiB, the numbers 64 KiB).
//!
//! The layout is about the working set, which is what a word count waits on: with keys and
//! values inside a `HashMap`'s slots (40 bytes each, 16,384 slots for 10,000 keys: 640 KiB), a
//! third of the table's time sat on the load of a candidate slot. Here the same keys take 400
//! KiB of entries. Records are looked up one after the other: asking for a record's memory some
//! records ahead (prefetching) paid while records came one call at a time, interleaved with the
//! work that made them (one thread, 400k lines of word count: 254 ms without, 236 ms with it),
//! and stopped paying once they came in chunks (`BoxIter`), which let the processor overlap the
//! lookups by itself (176 ms with or without). The index was an open-addressing table of our own
//! (8-byte slots: hash tag and entry number; linear probing); `hashbrown`'s is faster (6.4M
//! words into tables of 10,000 keys, one thread: 65 ms against 59 ms; the word count 170–176 ms
//! against 163–169 ms) and is less code to keep.
//!
//! Values are `Option`s so that a merge can take one by value without `unsafe` (a key whose merge
//! panicked starts again). Plain values, with the merge reading and writing them in place, saved
//! nothing measurable in the word count (168 ms) and were not kept.

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use std::hash::{BuildHasher, Hash};

pub(crate) struct ArrivalMap<K, V> {
    /// Keys and values in order of first arrival. A value is `None` only while a merge has it
    /// (if the merge panics, the key starts again from its next value).
    entries: Vec<(K, Option<V>)>,
    /// The entries' numbers, found by their keys' hashes.
    index: HashTable<u32>,
    hasher: FxBuildHasher,
}

impl<K, V> Default for ArrivalMap<K, V> {
    fn default() -> Self {
        ArrivalMap {
            entries: Vec::new(),
            index: HashTable::new(),
            hasher: FxBuildHasher,
        }
    }
}

impl<K: Hash + Eq, V> ArrivalMap<K, V> {
    /// The number of the entry of `k`, made (with no value) if `k` is new.
    #[inline]
    fn entry_of(&mut self, k: K) -> usize {
        let ArrivalMap {
            entries,
            index,
            hasher,
        } = self;
        let hash = hasher.hash_one(&k);
        if let Some(&n) = index.find(hash, |&n| entries[n as usize].0 == k) {
            return n as usize;
        }
        let n = entries.len();
        let number = u32::try_from(n).expect("an aggregation table holds at most 2^32 keys");
        index.insert_unique(hash, number, |&m| hasher.hash_one(&entries[m as usize].0));
        entries.push((k, None));
        n
    }

    /// The value of `k`, made by `new` if `k` is new.
    pub(crate) fn slot(&mut self, k: K, new: impl FnOnce() -> V) -> &mut V {
        let n = self.entry_of(k);
        self.entries[n].1.get_or_insert_with(new)
    }

    /// Adds `x` to the value of entry `n`: a new value from `create`, or `merge`d into it.
    #[inline]
    fn merge_at<X>(
        &mut self,
        n: usize,
        x: X,
        create: impl FnOnce(X) -> V,
        merge: impl FnOnce(V, X) -> V,
    ) {
        let held = &mut self.entries[n].1;
        // `None` while `merge` runs: if it panics (which ends the task), the key starts again.
        *held = Some(match held.take() {
            Some(old) => merge(old, x),
            None => create(x),
        });
    }

    /// Adds every record's value under its key, in order: a new value from `create`, or
    /// `merge`d into the one there (by value).
    pub(crate) fn upsert_all<X>(
        &mut self,
        records: impl Iterator<Item = (K, X)>,
        create: impl Fn(X) -> V,
        merge: impl Fn(V, X) -> V,
    ) {
        records.for_each(|(k, x)| {
            let n = self.entry_of(k);
            self.merge_at(n, x, &create, &merge);
        });
    }

    /// Every key and value, keys in order of first arrival.
    pub(crate) fn into_ordered(self) -> impl Iterator<Item = (K, V)> {
        self.entries.into_iter().filter_map(|(k, v)| Some((k, v?)))
    }
}

#[cfg(test)]
mod tests {
    use super::ArrivalMap;

    #[test]
    fn keys_come_out_in_first_arrival_order_with_their_values() {
        let mut m: ArrivalMap<String, Vec<u32>> = ArrivalMap::default();
        for (i, k) in ["q", "b", "x", "b", "a", "q", "m"].iter().enumerate() {
            m.slot(k.to_string(), Vec::new).push(i as u32);
        }
        let got: Vec<(String, Vec<u32>)> = m.into_ordered().collect();
        let want = [
            ("q", vec![0, 5]),
            ("b", vec![1, 3]),
            ("x", vec![2]),
            ("a", vec![4]),
            ("m", vec![6]),
        ];
        assert_eq!(got, want.map(|(k, v)| (k.to_string(), v)));
    }

    #[test]
    fn upserts_merge_by_value_and_survive_a_panicking_merge() {
        let mut m: ArrivalMap<&str, String> = ArrivalMap::default();
        for (k, x) in [("a", "1"), ("b", "2"), ("a", "3")] {
            m.upsert_all(std::iter::once((k, x)), String::from, |old, x| old + x);
        }
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            m.upsert_all(std::iter::once(("b", "4")), String::from, |_, _| {
                panic!("user merge")
            });
        }));
        assert!(panicked.is_err());
        // The value the panicking merge had is gone with it; the key starts again.
        m.upsert_all(
            [("b", "5"), ("c", "6")].into_iter(),
            String::from,
            |old, x| old + x,
        );
        let got: Vec<(&str, String)> = m.into_ordered().collect();
        assert_eq!(
            got,
            [
                ("a", "13".to_string()),
                ("b", "5".into()),
                ("c", "6".into())
            ]
        );
    }

    /// A key whose hash keeps only a few bits: most keys share a home slot, and the probe has to
    /// walk past them and tell them apart by comparing keys.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Crowded(u32);

    impl std::hash::Hash for Crowded {
        fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
            h.write_u32(self.0 % 3);
        }
    }

    /// What the map must give: keys in first-arrival order with their values summed, computed
    /// by a linear search.
    fn oracle<K: PartialEq + Copy>(records: &[(K, u64)]) -> Vec<(K, u64)> {
        let mut out: Vec<(K, u64)> = Vec::new();
        for &(k, v) in records {
            match out.iter_mut().find(|(seen, _)| *seen == k) {
                Some((_, sum)) => *sum += v,
                None => out.push((k, v)),
            }
        }
        out
    }

    fn through_map<K: std::hash::Hash + Eq + Copy>(records: &[(K, u64)]) -> Vec<(K, u64)> {
        let mut m: ArrivalMap<K, u64> = ArrivalMap::default();
        m.upsert_all(records.iter().copied(), |v| v, |a, b| a + b);
        m.into_ordered().collect()
    }

    proptest::proptest! {
        #[test]
        fn sums_match_a_linear_search_through_growth_and_collisions(
            keys in proptest::collection::vec(0u32..3000, 0..6000),
            spread in 1u32..50,
        ) {
            let records: Vec<(u32, u64)> =
                keys.iter().map(|&k| (k * spread, u64::from(k % 7) + 1)).collect();
            proptest::prop_assert_eq!(through_map(&records), oracle(&records));
            let crowded: Vec<(Crowded, u64)> =
                records.iter().take(400).map(|&(k, v)| (Crowded(k), v)).collect();
            proptest::prop_assert_eq!(through_map(&crowded), oracle(&crowded));
        }
    }
}
