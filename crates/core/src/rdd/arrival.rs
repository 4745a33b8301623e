//! `ArrivalMap`: values by key that come out in the order their keys first arrived, the table
//! under every key-wise aggregation and cogroup (results are deterministic: ARCHITECTURE.md).
//!
//! Keys sit in the hash table itself, next to their value and arrival position: a lookup touches
//! one slot (an insertion-ordered map would follow an index into a second array, which cost a
//! fifth of a word count's time), and the order is restored once, when the map is drained,
//! by placing each entry at its position (no sort).

use rustc_hash::FxBuildHasher;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;

pub(crate) struct ArrivalMap<K, V> {
    table: HashMap<K, Held<V>, FxBuildHasher>,
}

/// A key's value and the position at which the key arrived. `Moving` while a merge has the
/// value (it keeps the position: another key may not take it). For a `u64` value this takes 16
/// bytes (a `usize` position and an `Option` took 24, and the table's slots 48 bytes instead of
/// 40: a word count's table is its working set).
enum Held<V> {
    At(u32, V),
    Moving(u32),
}

/// Positions past `u32::MAX` (four billion keys in one table) all get this one and come out
/// last, in table order: never lost.
const LATE: u32 = u32::MAX;

impl<K, V> Default for ArrivalMap<K, V> {
    fn default() -> Self {
        ArrivalMap {
            table: HashMap::default(),
        }
    }
}

impl<K: Hash + Eq, V> ArrivalMap<K, V> {
    fn next_position(&self) -> u32 {
        u32::try_from(self.table.len()).unwrap_or(LATE)
    }

    /// The value of `k`, made by `new` if `k` is new.
    pub(crate) fn slot(&mut self, k: K, new: impl FnOnce() -> V) -> &mut V {
        let arrived = self.next_position();
        let held = self.table.entry(k).or_insert(Held::Moving(arrived));
        if let Held::Moving(i) = *held {
            *held = Held::At(i, new());
        }
        match held {
            Held::At(_, v) => v,
            Held::Moving(_) => unreachable!("a value was just put in"),
        }
    }

    /// Adds `x` under `k`: a new value from `create`, or `merge`d into the one there (by value).
    pub(crate) fn upsert<X>(
        &mut self,
        k: K,
        x: X,
        create: impl FnOnce(X) -> V,
        merge: impl FnOnce(V, X) -> V,
    ) {
        let arrived = self.next_position();
        match self.table.entry(k) {
            Entry::Occupied(mut e) => {
                let held = e.get_mut();
                let (Held::At(i, _) | Held::Moving(i)) = *held;
                *held = match std::mem::replace(held, Held::Moving(i)) {
                    Held::At(i, old) => Held::At(i, merge(old, x)),
                    // Only if a merge panicked, which ends the task: start again.
                    Held::Moving(i) => Held::At(i, create(x)),
                };
            }
            Entry::Vacant(e) => {
                e.insert(Held::At(arrived, create(x)));
            }
        }
    }

    /// Every key and value, keys in order of first arrival.
    pub(crate) fn into_ordered(self) -> impl Iterator<Item = (K, V)> {
        let mut ordered: Vec<Option<(K, V)>> = (0..self.table.len()).map(|_| None).collect();
        let mut late = Vec::new();
        for (k, held) in self.table {
            match held {
                Held::At(LATE, v) => late.push((k, v)),
                Held::At(i, v) => ordered[i as usize] = Some((k, v)),
                Held::Moving(_) => {}
            }
        }
        ordered.into_iter().flatten().chain(late)
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
    fn upsert_merges_by_value_and_survives_a_panicking_merge() {
        let mut m: ArrivalMap<&str, String> = ArrivalMap::default();
        for (k, x) in [("a", "1"), ("b", "2"), ("a", "3")] {
            m.upsert(k, x, String::from, |old, x| old + x);
        }
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            m.upsert("b", "4", String::from, |_, _| panic!("user merge"));
        }));
        assert!(panicked.is_err());
        // The value the panicking merge had is gone with it; the key starts again.
        m.upsert("b", "5", String::from, |old, x| old + x);
        m.upsert("c", "6", String::from, |old, x| old + x);
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
}
