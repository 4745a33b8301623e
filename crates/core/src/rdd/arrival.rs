//! `ArrivalMap`: values by key that come out in the order their keys first arrived, the table
//! under every key-wise aggregation and cogroup (results are deterministic: ARCHITECTURE.md).
//!
//! Entries sit in one vector in arrival order, so draining the map in that order is reading the
//! vector. A separate open-addressing index (linear probing) maps a key's hash to its entry: a
//! slot is eight bytes, the top bits of the hash beside the entry's number, so most keys that are
//! not the one looked for are told apart without touching their entry, and the index of a word
//! count's 10,000 keys is 128 KiB.
//!
//! The layout is about the working set, which is what a word count waits on: with keys and
//! values inside a `HashMap`'s slots (40 bytes each, 16,384 slots for 10,000 keys: 640 KiB), a
//! third of the table's time sat on the load of a candidate slot. Here the same keys take 400
//! KiB of entries and 128 KiB of index. Records are looked up one after the other: asking for
//! a record's memory some records ahead (prefetching) paid while records came one call at a
//! time, interleaved with the work that made them (one thread, 400k lines of word count: 254 ms
//! without, 236 ms with it), and stopped paying once they came in chunks (`BoxIter`), which let
//! the processor overlap the lookups by itself (176 ms with or without).

use rustc_hash::FxBuildHasher;
use std::hash::{BuildHasher, Hash};

pub(crate) struct ArrivalMap<K, V> {
    /// Keys and values in order of first arrival. A value is `None` only while a merge has it
    /// (if the merge panics, the key starts again from its next value).
    entries: Vec<(K, Option<V>)>,
    /// `EMPTY`, or a key's hash with its low [`NUMBER_BITS`] bits replaced by its entry's number.
    index: Vec<u64>,
    hasher: FxBuildHasher,
}

/// An index slot without a key (no entry has the number `NUMBER_MASK`: see [`ArrivalMap::grow`]).
const EMPTY: u64 = u64::MAX;
/// Bits of a slot holding the entry's number; the rest hold the top of the key's hash.
const NUMBER_BITS: u32 = 40;
const NUMBER_MASK: u64 = (1 << NUMBER_BITS) - 1;

impl<K, V> Default for ArrivalMap<K, V> {
    fn default() -> Self {
        ArrivalMap {
            entries: Vec::new(),
            index: Vec::new(),
            hasher: FxBuildHasher,
        }
    }
}

impl<K: Hash + Eq, V> ArrivalMap<K, V> {
    #[inline]
    fn hash(&self, k: &K) -> u64 {
        self.hasher.hash_one(k)
    }

    /// Where the probe for `hash` starts (the index's length is a power of two).
    #[inline]
    fn home(&self, hash: u64) -> usize {
        (hash as usize) & (self.index.len().wrapping_sub(1))
    }

    /// The number of the entry of `k` (whose hash is `hash`), or the index slot where it would
    /// go.
    #[inline]
    fn find(&self, hash: u64, k: &K) -> Result<usize, usize> {
        let mask = self.index.len() - 1;
        let tag = hash & !NUMBER_MASK;
        let mut at = self.home(hash);
        loop {
            let slot = self.index[at];
            if slot == EMPTY {
                return Err(at);
            }
            if slot & !NUMBER_MASK == tag {
                let n = (slot & NUMBER_MASK) as usize;
                if self.entries[n].0 == *k {
                    return Ok(n);
                }
            }
            at = (at + 1) & mask;
        }
    }

    /// Whether one more key fits with the index at most three-quarters full.
    fn has_room(&self) -> bool {
        (self.entries.len() + 1) * 4 <= self.index.len() * 3
    }

    /// Rebuilds the index at the size that leaves room for one more key.
    fn grow(&mut self) {
        let wanted = self.entries.len() + 1;
        assert!(
            (wanted as u64) < NUMBER_MASK,
            "an aggregation table holds at most 2^40 - 1 keys"
        );
        let size = (wanted * 4 / 3 + 1).next_power_of_two().max(16);
        let mut index = vec![EMPTY; size];
        let mask = size - 1;
        for (n, (k, _)) in self.entries.iter().enumerate() {
            let hash = self.hash(k);
            let mut at = (hash as usize) & mask;
            while index[at] != EMPTY {
                at = (at + 1) & mask;
            }
            index[at] = (hash & !NUMBER_MASK) | n as u64;
        }
        self.index = index;
    }

    /// The number of the entry of `k` (whose hash is `hash`), made (with no value) if `k` is new.
    #[inline]
    fn entry_of(&mut self, hash: u64, k: K) -> usize {
        let found = if self.index.is_empty() {
            None
        } else {
            Some(self.find(hash, &k))
        };
        let at = match found {
            Some(Ok(n)) => return n,
            Some(Err(at)) if self.has_room() => at,
            // A new key and a full (or no) index: the key's slot is found again in the new one.
            _ => {
                self.grow();
                match self.find(hash, &k) {
                    Ok(n) => return n,
                    Err(at) => at,
                }
            }
        };
        let n = self.entries.len();
        self.index[at] = (hash & !NUMBER_MASK) | n as u64;
        self.entries.push((k, None));
        n
    }

    /// The value of `k`, made by `new` if `k` is new.
    pub(crate) fn slot(&mut self, k: K, new: impl FnOnce() -> V) -> &mut V {
        let n = self.entry_of(self.hash(&k), k);
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
            let n = self.entry_of(self.hash(&k), k);
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
