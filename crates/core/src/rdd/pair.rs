//! Key-based aggregation on pair RDDs: `combine_by_key` and everything built on it
//! (`reduce_by_key`, `fold_by_key`, `group_by_key`, `distinct`).
//!
//! Aggregation combines map-side (within each map partition) before the shuffle, then merges the
//! combiners reduce-side. Keys come out of a reduce partition in order of first arrival (map
//! partition 0 first), so results are deterministic.

use super::arrival::{ArrivalMap, concat, group};
use super::shuffled::{Bucketer, plain_bucketer};
use super::{BoxIter, Rdd};
use crate::sync::Arc;
use crate::{HashPartitioner, Key, Partitioner, PartitionerInfo};
use spate_storage::Data;

/// The default partitioner of a shuffle over `parents`: the first hash partitioner among them,
/// else a hash partitioner with the context's default parallelism.
pub(crate) fn default_partitioner(
    parents: &[Option<PartitionerInfo>],
    default_parallelism: usize,
) -> HashPartitioner {
    parents
        .iter()
        .flatten()
        .find_map(|p| match p {
            PartitionerInfo::Hash(n) => Some(HashPartitioner::new(*n)),
            _ => None,
        })
        .unwrap_or_else(|| HashPartitioner::new(default_parallelism))
}

impl<K: Key, V: Data> Rdd<(K, V)> {
    fn default_hash(&self) -> Arc<dyn Partitioner<K>> {
        Arc::new(default_partitioner(
            &[self.partitioner()],
            self.context().default_parallelism(),
        ))
    }

    /// Aggregates the values of each key into a combiner: `create` makes one from a key's first
    /// value, `merge_value` adds a value, `merge_combiners` merges two (map-side partial results).
    #[track_caller]
    pub fn combine_by_key<C: Data>(
        &self,
        create: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(C, V) -> C + Send + Sync + 'static,
        merge_combiners: impl Fn(C, C) -> C + Send + Sync + 'static,
    ) -> Rdd<(K, C)> {
        self.combine_by_key_with(
            create,
            merge_value,
            merge_combiners,
            self.default_hash(),
            true,
        )
    }

    /// [`combine_by_key`](Self::combine_by_key) with an explicit partitioner and the choice of
    /// combining map-side. If the RDD is already partitioned by `partitioner`, no shuffle runs.
    #[track_caller]
    pub fn combine_by_key_with<C: Data>(
        &self,
        create: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(C, V) -> C + Send + Sync + 'static,
        merge_combiners: impl Fn(C, C) -> C + Send + Sync + 'static,
        partitioner: Arc<dyn Partitioner<K>>,
        map_side_combine: bool,
    ) -> Rdd<(K, C)> {
        self.combine_named(
            "combine_by_key",
            create,
            merge_value,
            merge_combiners,
            partitioner,
            map_side_combine,
        )
    }

    /// [`combine_by_key_with`](Self::combine_by_key_with), naming the resulting RDD after the
    /// operation the user called (`reduce_by_key`, `group_by_key`, …).
    #[track_caller]
    fn combine_named<C: Data>(
        &self,
        name: &'static str,
        create: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(C, V) -> C + Send + Sync + 'static,
        merge_combiners: impl Fn(C, C) -> C + Send + Sync + 'static,
        partitioner: Arc<dyn Partitioner<K>>,
        map_side_combine: bool,
    ) -> Rdd<(K, C)> {
        // The functions stay of their own types (not `dyn`), so each table's loop is compiled
        // with them inlined: a word count's `a + b` is an addition, not a call.
        let create = Arc::new(create);
        let merge_value = Arc::new(merge_value);
        if self.partitioner().as_ref() == Some(&partitioner.info()) {
            return self.map_partitions_internal(name, true, move |_, it| {
                let mut map: ArrivalMap<K, C> = ArrivalMap::default();
                map.upsert_all(it, &*create, &*merge_value);
                BoxIter::new(map.into_ordered())
            });
        }
        if map_side_combine {
            let merge_combiners = Arc::new(merge_combiners);
            let bucketer: Arc<Bucketer<K, V, C>> =
                Arc::new(move |records, partitioner: &dyn Partitioner<K>| {
                    // Combine the whole map partition in one table, then bucket each distinct
                    // key once: one hash per record instead of two.
                    let mut map: ArrivalMap<K, C> = ArrivalMap::default();
                    map.upsert_all(records, &*create, &*merge_value);
                    bucket(map.into_ordered(), partitioner)
                });
            self.shuffle(name, partitioner, bucketer, None, move |it| {
                let mut map: ArrivalMap<K, C> = ArrivalMap::default();
                map.upsert_all(it, |c| c, &*merge_combiners);
                BoxIter::new(map.into_ordered())
            })
        } else {
            self.shuffle(name, partitioner, plain_bucketer(), None, move |it| {
                let mut map: ArrivalMap<K, C> = ArrivalMap::default();
                map.upsert_all(it, &*create, &*merge_value);
                BoxIter::new(map.into_ordered())
            })
        }
    }

    /// Merges the values of each key with an associative function `f`.
    #[track_caller]
    pub fn reduce_by_key(&self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> Rdd<(K, V)> {
        self.reduce_by_key_with(f, self.default_hash())
    }

    /// [`reduce_by_key`](Self::reduce_by_key) into `num_partitions` hash partitions.
    #[track_caller]
    pub fn reduce_by_key_n(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        num_partitions: usize,
    ) -> Rdd<(K, V)> {
        self.reduce_by_key_with(f, Arc::new(HashPartitioner::new(num_partitions)))
    }

    /// [`reduce_by_key`](Self::reduce_by_key) with an explicit partitioner.
    #[track_caller]
    pub fn reduce_by_key_with(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        partitioner: Arc<dyn Partitioner<K>>,
    ) -> Rdd<(K, V)> {
        let f = Arc::new(f);
        let g = f.clone();
        self.combine_named(
            "reduce_by_key",
            |v| v,
            move |a, b| f(a, b),
            move |a, b| g(a, b),
            partitioner,
            true,
        )
    }

    /// Merges the values of each key with `f`, starting from `zero` (which may be applied once
    /// per key per partition, so it must be an identity of `f`).
    #[track_caller]
    pub fn fold_by_key(
        &self,
        zero: V,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> Rdd<(K, V)> {
        self.fold_by_key_n(zero, f, self.default_hash().num_partitions())
    }

    /// [`fold_by_key`](Self::fold_by_key) into `num_partitions` hash partitions.
    #[track_caller]
    pub fn fold_by_key_n(
        &self,
        zero: V,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        num_partitions: usize,
    ) -> Rdd<(K, V)> {
        let f = Arc::new(f);
        let (g, h) = (f.clone(), f.clone());
        self.combine_named(
            "fold_by_key",
            move |v| f(zero.clone(), v),
            move |a, b| g(a, b),
            move |a, b| h(a, b),
            Arc::new(HashPartitioner::new(num_partitions)),
            true,
        )
    }

    /// Groups the values of each key, in arrival order (map partition order, then element order).
    #[track_caller]
    pub fn group_by_key(&self) -> Rdd<(K, Vec<V>)> {
        self.group_by_key_with(self.default_hash())
    }

    /// [`group_by_key`](Self::group_by_key) into `num_partitions` hash partitions.
    #[track_caller]
    pub fn group_by_key_n(&self, num_partitions: usize) -> Rdd<(K, Vec<V>)> {
        self.group_by_key_with(Arc::new(HashPartitioner::new(num_partitions)))
    }

    /// [`group_by_key`](Self::group_by_key) with an explicit partitioner. Values are not grouped
    /// map-side (it would not shrink the data).
    #[track_caller]
    pub fn group_by_key_with(&self, partitioner: Arc<dyn Partitioner<K>>) -> Rdd<(K, Vec<V>)> {
        self.group_named("group_by_key", partitioner, false)
    }

    /// The values of each key as a list, in the order they came (map partitions in order), with
    /// an explicit partitioner. With `map_side`, each map partition's values are grouped before
    /// the shuffle: one key and one list per key and map partition cross it instead of one
    /// record per value (what `update_state_by_key` does with a batch).
    #[track_caller]
    pub fn group_values_with(
        &self,
        partitioner: Arc<dyn Partitioner<K>>,
        map_side: bool,
    ) -> Rdd<(K, Vec<V>)> {
        self.group_named("group_values", partitioner, map_side)
    }

    /// Grouping by key (see `arrival::group`), named after the operation the user called.
    #[track_caller]
    fn group_named(
        &self,
        name: &'static str,
        partitioner: Arc<dyn Partitioner<K>>,
        map_side: bool,
    ) -> Rdd<(K, Vec<V>)> {
        if self.partitioner().as_ref() == Some(&partitioner.info()) {
            return self.map_partitions_internal(name, true, |_, it| BoxIter::new(group(it)));
        }
        if map_side {
            let bucketer: Arc<Bucketer<K, V, Vec<V>>> =
                Arc::new(|records, partitioner: &dyn Partitioner<K>| {
                    bucket(group(records), partitioner)
                });
            self.shuffle(name, partitioner, bucketer, None, |it| {
                BoxIter::new(concat(it))
            })
        } else {
            self.shuffle(name, partitioner, plain_bucketer(), None, |it| {
                BoxIter::new(group(it))
            })
        }
    }
}

impl<T: Key> Rdd<T> {
    /// The distinct elements.
    #[track_caller]
    pub fn distinct(&self) -> Rdd<T> {
        self.distinct_n(self.context().default_parallelism())
    }

    /// The distinct elements, in `num_partitions` partitions.
    #[track_caller]
    pub fn distinct_n(&self, num_partitions: usize) -> Rdd<T> {
        self.map(|x| (x, ()))
            .reduce_by_key_n(|_, _| (), num_partitions)
            .keys()
    }
}

/// Each key and its combiner in the bucket of the partition `partitioner` gives the key (every
/// key in the one bucket when there is one partition), in the order they come.
fn bucket<K: Key, C>(
    pairs: impl Iterator<Item = (K, C)>,
    partitioner: &dyn Partitioner<K>,
) -> Vec<Vec<(K, C)>> {
    let n = partitioner.num_partitions();
    let mut buckets: Vec<Vec<(K, C)>> = (0..n).map(|_| Vec::new()).collect();
    for (k, c) in pairs {
        let p = if n == 1 { 0 } else { partitioner.partition(&k) };
        buckets[p].push((k, c));
    }
    buckets
}
