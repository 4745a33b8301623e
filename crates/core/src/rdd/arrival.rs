//! `ArrivalMap`: values by key that come out in the order their keys first arrived, the table
//! under every key-wise aggregation and cogroup (results are deterministic: ARCHITECTURE.md).
//!
//! Each key lives in a slot of a `hashbrown::HashTable` with its value and its arrival number;
//! draining the map puts the slots back in arrival order by that number. `hashbrown` probes by
//! comparing sixteen one-byte tags at once, so most keys that are not the one looked for are
//! told apart without touching their slot.
//!
//! The layout is about what a lookup waits on, which is memory: a word count's table (10,000
//! keys) takes more than the first-level cache, and each record's lookup waits for its slot.
//! Here a lookup loads a tag group and then the slot. The keys and values were in a vector of
//! their own in arrival order, found through a table of their numbers: one load more per lookup
//! (the number, then the entry), which cost more than the smaller working set saved (one thread,
//! 400k lines of word count: 126 ms against 119 ms now). Entries of 32 bytes instead of 40 (the
//! values not `Option`s) saved nothing measurable in either layout. Records are looked up one
//! after the other: asking for a record's memory some records ahead (prefetching) paid while
//! records came one call at a time, interleaved with the work that made them (254 ms without,
//! 236 ms with it, in an older build), and stopped paying once they came in chunks (`BoxIter`),
//! which let the processor overlap the lookups by itself.
//!
//! Two smaller layouts were tried and not kept (stop 24). Slots of 32 bytes (a `Word` and a
//! `u64`: the order of first arrival kept as the keys' hashes in a vector, the value moved out
//! for a merge with `unsafe` and a guard against a panicking merge) took 151–187 ms against
//! 144–167 ms with these (one thread, 400k lines of word count through `reduce_by_key`, best of
//! 15, runs interleaved); a table of 4-byte numbers into a vector of 32-byte entries in arrival
//! order tied with these on the table alone. Either way the table outgrows a 512 KiB
//! second-level cache (10,000 keys take 16,384 slots), and most lookups are of the few hundred
//! frequent words, whose slots stay cached whatever their size.
//!
//! A table starts empty and grows. Tables made instead with room for as many keys as the last
//! one of their operator and side of the shuffle held (on the same thread) saved the growth
//! (9% of the workers' samples in batches of 5 to 1,000 ms at 50k lines/s) and 7–13% of the
//! time of tasks of 250 lines each, in isolation; in the running engine they saved nothing
//! (word count at 500k lines/s in batches of 5 ms: 1.82–2.01 µs of CPU per line against
//! 1.83–1.91, runs alternated), and were not kept.
//!
//! A table of its own instead of `hashbrown`'s (a separate array of one-byte tags, linear
//! probing, the same 48-byte slots) with each record's home slot prefetched eight records ahead
//! (`_mm_prefetch`, the records waiting in a ring) was tried and not kept (stop 26): the profile
//! has the workers waiting on a slot's first load, but the chunked loop already overlaps the
//! lookups, and the ring and prefetches only added work. One thread, 400k lines, runs
//! alternated: 190–208 ms with the prefetches, 174–209 ms without, against 161–192 ms; in the
//! engine at 2.5M lines/s, 0.77–0.94 µs of CPU per line against 0.61–0.83, and not stable in 3
//! of 3 runs against 1 of 3.
//!
//! Values are `Option`s so that a merge can take one by value without `unsafe` (a key whose merge
//! panicked starts again).

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use rustc_hash::FxBuildHasher;
use std::hash::{BuildHasher, Hash};

pub(crate) struct ArrivalMap<K, V> {
    /// Each key with its value and its arrival number (0 for the first key). A value is `None`
    /// only while a merge has it (if the merge panics, the key starts again from its next value).
    slots: HashTable<(K, Option<V>, u32)>,
    hasher: FxBuildHasher,
}

impl<K, V> Default for ArrivalMap<K, V> {
    fn default() -> Self {
        ArrivalMap {
            slots: HashTable::new(),
            hasher: FxBuildHasher,
        }
    }
}

impl<K: Hash + Eq, V> ArrivalMap<K, V> {
    /// The slot of `k`: its key, value (none if `k` is new) and arrival number.
    // `inline(always)` here made `held` slower in a word count (123-126 ms against 105-109 ms,
    // one thread, 400k lines).
    #[inline]
    fn slot_of(&mut self, k: K) -> &mut (K, Option<V>, u32) {
        let hash = self.hasher.hash_one(&k);
        let next =
            u32::try_from(self.slots.len()).expect("an aggregation table holds at most 2^32 keys");
        let hasher = &self.hasher;
        match self
            .slots
            .entry(hash, |s| s.0 == k, |s| hasher.hash_one(&s.0))
        {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => v.insert((k, None, next)).into_mut(),
        }
    }

    /// The value of `k` (with no value if `k` is new).
    // Left to the compiler, which calls it out of line: inlined into the loop over records
    // (`inline(always)`), a word count took 130 ms instead of 114-116 ms (one thread, 400k lines).
    #[inline]
    fn held(&mut self, k: K) -> &mut Option<V> {
        &mut self.slot_of(k).1
    }

    /// The value of `k`, made by `new` if `k` is new.
    pub(crate) fn slot(&mut self, k: K, new: impl FnOnce() -> V) -> &mut V {
        self.held(k).get_or_insert_with(new)
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
            let held = self.held(k);
            // `None` while `merge` runs: if it panics (which ends the task), the key starts again.
            *held = Some(match held.take() {
                Some(old) => merge(old, x),
                None => create(x),
            });
        });
    }

    /// Every key and value, keys in order of first arrival.
    pub(crate) fn into_ordered(self) -> impl Iterator<Item = (K, V)> {
        // Each slot goes to its arrival number's place: no sort.
        let mut placed: Vec<Option<(K, V)>> = (0..self.slots.len()).map(|_| None).collect();
        for (k, v, n) in self.slots {
            if let (Some(v), Some(place)) = (v, placed.get_mut(n as usize)) {
                *place = Some((k, v));
            }
        }
        placed.into_iter().flatten()
    }
}

/// Keys numbered in order of first arrival, with a count for each: the first pass of
/// [`group`] and [`concat`], whose second pass makes each key's list with room for its count.
struct Tally<K> {
    keys: ArrivalMap<K, ()>,
    counts: Vec<usize>,
}

impl<K: Hash + Eq> Tally<K> {
    fn new() -> Self {
        Tally {
            keys: ArrivalMap::default(),
            counts: Vec::new(),
        }
    }

    /// Adds `by` to the count of `k`; the number of `k` (0 for the first key).
    #[inline]
    fn add(&mut self, k: K, by: usize) -> usize {
        let slot = self.keys.slot_of(k);
        slot.1 = Some(());
        let n = slot.2 as usize;
        if n == self.counts.len() {
            self.counts.push(0);
        }
        self.counts[n] += by;
        n
    }

    /// An empty list for each key, with room for its count, in the keys' order.
    fn lists<V>(&self) -> Vec<Vec<V>> {
        self.counts.iter().map(|&c| Vec::with_capacity(c)).collect()
    }

    /// The keys with their lists (from [`lists`](Self::lists), filled).
    fn with<V>(self, lists: Vec<Vec<V>>) -> impl Iterator<Item = (K, Vec<V>)> {
        self.keys.into_ordered().map(|(k, ())| k).zip(lists)
    }
}

/// The values of each key as a list, in the order they came, keys in order of first arrival.
///
/// Two passes instead of a list per key grown value by value: the first looks each record's
/// key up once and appends its key's number and its value to two vectors read in order; the
/// second, knowing each key's count, moves each value into a list made with room for exactly
/// its key's values. Growing a list per key as values came (each push a write to one of
/// thousands of vectors, each full vector copied whole into a larger one) took a quarter of
/// the workers' time of `update_state_by_key` over a word count's words.
pub(crate) fn group<K: Hash + Eq, V>(
    records: impl Iterator<Item = (K, V)>,
) -> impl Iterator<Item = (K, Vec<V>)> {
    let mut tally = Tally::new();
    // Key numbers and values in runs of `RUN`: vectors that grew by doubling were copied whole
    // at each growth (7% of `update_state_by_key`'s workers' time).
    let mut runs: Vec<(Vec<u32>, Vec<V>)> = Vec::new();
    records.for_each(|(k, v)| {
        let n = tally.add(k, 1);
        let run = match runs.last_mut() {
            Some(run) if run.0.len() < RUN => run,
            _ => {
                runs.push((Vec::with_capacity(RUN), Vec::with_capacity(RUN)));
                runs.last_mut().expect("a run was just pushed")
            }
        };
        // `n` fits a `u32`: the table refuses more keys.
        run.0.push(n as u32);
        run.1.push(v);
    });
    let mut lists = tally.lists();
    for (numbers, values) in runs {
        for (n, v) in numbers.into_iter().zip(values) {
            lists[n as usize].push(v);
        }
    }
    tally.with(lists)
}

/// Each key's lists joined into one, in the order they came, keys in order of first arrival:
/// the reduce side of a grouping whose map side grouped. Each key's list is made once with room
/// for all its values (appending list after list to the first grew it, copying it whole, at
/// every doubling).
pub(crate) fn concat<K: Hash + Eq, V>(
    parts: impl Iterator<Item = (K, Vec<V>)>,
) -> impl Iterator<Item = (K, Vec<V>)> {
    let mut tally = Tally::new();
    let mut numbered: Vec<(usize, Vec<V>)> = Vec::new();
    parts.for_each(|(k, vs)| {
        let n = tally.add(k, vs.len());
        numbered.push((n, vs));
    });
    let mut lists = tally.lists();
    for (n, mut vs) in numbered {
        lists[n].append(&mut vs);
    }
    tally.with(lists)
}

/// How many records [`group`] keeps in one run of its first pass.
const RUN: usize = 1 << 14;

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

    /// Each key's values in the order they came, keys in first-arrival order, by linear search.
    fn group_oracle<K: PartialEq + Copy>(records: &[(K, u64)]) -> Vec<(K, Vec<u64>)> {
        let mut out: Vec<(K, Vec<u64>)> = Vec::new();
        for &(k, v) in records {
            match out.iter_mut().find(|(seen, _)| *seen == k) {
                Some((_, vs)) => vs.push(v),
                None => out.push((k, vec![v])),
            }
        }
        out
    }

    #[test]
    fn joined_lists_are_each_keys_values_in_order() {
        let parts = vec![
            ("a", vec![1, 2]),
            ("b", vec![3]),
            ("a", vec![]),
            ("c", vec![4]),
            ("a", vec![5]),
        ];
        let got: Vec<(&str, Vec<u32>)> = super::concat(parts.into_iter()).collect();
        assert_eq!(got, [("a", vec![1, 2, 5]), ("b", vec![3]), ("c", vec![4])]);
    }

    #[test]
    fn groups_of_many_runs_match_a_linear_search() {
        // More records than one run of the first pass holds (`RUN`), keys in a scrambled order.
        let records: Vec<(u32, u64)> = (0..(2 * super::RUN as u64 + 777))
            .map(|i| ((i * 7919 % 211) as u32, i))
            .collect();
        let got: Vec<(u32, Vec<u64>)> = super::group(records.iter().copied()).collect();
        assert_eq!(got, group_oracle(&records));
    }

    proptest::proptest! {
        #[test]
        fn groups_match_a_linear_search(
            keys in proptest::collection::vec(0u32..500, 0..3000),
        ) {
            let records: Vec<(u32, u64)> =
                keys.iter().enumerate().map(|(i, &k)| (k, i as u64)).collect();
            let got: Vec<(u32, Vec<u64>)> = super::group(records.iter().copied()).collect();
            proptest::prop_assert_eq!(got, group_oracle(&records));
            let crowded: Vec<(Crowded, u64)> =
                records.iter().take(300).map(|&(k, v)| (Crowded(k), v)).collect();
            let got: Vec<(Crowded, Vec<u64>)> = super::group(crowded.iter().copied()).collect();
            proptest::prop_assert_eq!(got, group_oracle(&crowded));
        }

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
