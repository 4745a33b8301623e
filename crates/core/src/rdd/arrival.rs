//! `ArrivalMap`: values by key that come out in the order their keys first arrived, the table
//! under every key-wise aggregation and cogroup (results are deterministic: ARCHITECTURE.md).
//!
//! Keys sit in the hash table itself, next to their value and arrival position: a lookup touches
//! one slot (an insertion-ordered map would follow an index into a second array, which cost a
//! fifth of a word count's time), and the order is restored once, when the map is drained,
//! by placing each entry at its position (no sort).

use rustc_hash::FxBuildHasher;
use std::collections::HashMap;
use std::hash::Hash;

pub(crate) struct ArrivalMap<K, V> {
    table: HashMap<K, (usize, V), FxBuildHasher>,
}

impl<K, V> Default for ArrivalMap<K, V> {
    fn default() -> Self {
        ArrivalMap {
            table: HashMap::default(),
        }
    }
}

impl<K: Hash + Eq, V> ArrivalMap<K, V> {
    /// The value of `k`, made by `new` if `k` is new.
    pub(crate) fn slot(&mut self, k: K, new: impl FnOnce() -> V) -> &mut V {
        let arrived = self.table.len();
        &mut self.table.entry(k).or_insert_with(|| (arrived, new())).1
    }

    /// Every key and value, keys in order of first arrival.
    pub(crate) fn into_ordered(self) -> impl Iterator<Item = (K, V)> {
        let mut ordered: Vec<Option<(K, V)>> = (0..self.table.len()).map(|_| None).collect();
        for (k, (arrived, v)) in self.table {
            ordered[arrived] = Some((k, v));
        }
        ordered.into_iter().flatten()
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
}
