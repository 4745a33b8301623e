//! Batch-wise operations on streams of pairs: `map_values`, `reduce_by_key`, `group_by_key`,
//! `combine_by_key`, joins and `cogroup`. Each applies the RDD operation to every batch.

use super::DStream;
use crate::Key;
use spate_core::{Data, HashPartitioner, Partitioner};
use std::sync::Arc;

impl<K: Key, V: Data> DStream<(K, V)> {
    pub(crate) fn default_partitions(&self) -> usize {
        self.context().default_parallelism()
    }

    /// Applies `f` to every value.
    #[track_caller]
    pub fn map_values<W: Data>(
        &self,
        f: impl Fn(V) -> W + Send + Sync + 'static,
    ) -> DStream<(K, W)> {
        let f = Arc::new(f);
        self.transform_named("map_values", move |r, _| {
            let f = f.clone();
            r.map_values(move |v| f(v))
        })
    }

    /// Applies `f` to every value and pairs each result with the key.
    #[track_caller]
    pub fn flat_map_values<W: Data, I>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> DStream<(K, W)>
    where
        I: IntoIterator<Item = W> + 'static,
        I::IntoIter: 'static,
    {
        let f = Arc::new(f);
        self.transform_named("flat_map_values", move |r, _| {
            let f = f.clone();
            r.flat_map_values(move |v| f(v))
        })
    }

    /// Groups each batch's values by key.
    #[track_caller]
    pub fn group_by_key(&self) -> DStream<(K, Vec<V>)> {
        self.group_by_key_n(self.default_partitions())
    }

    /// [`group_by_key`](Self::group_by_key) into `num_partitions` partitions.
    #[track_caller]
    pub fn group_by_key_n(&self, num_partitions: usize) -> DStream<(K, Vec<V>)> {
        self.transform_named("group_by_key", move |r, _| r.group_by_key_n(num_partitions))
    }

    /// Merges each batch's values of every key with the associative `f`.
    #[track_caller]
    pub fn reduce_by_key(&self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> DStream<(K, V)> {
        self.reduce_by_key_n(f, self.default_partitions())
    }

    /// [`reduce_by_key`](Self::reduce_by_key) into `num_partitions` partitions.
    #[track_caller]
    pub fn reduce_by_key_n(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        num_partitions: usize,
    ) -> DStream<(K, V)> {
        self.reduce_by_key_with(f, Arc::new(HashPartitioner::new(num_partitions)))
    }

    /// [`reduce_by_key`](Self::reduce_by_key) with an explicit partitioner.
    #[track_caller]
    pub fn reduce_by_key_with(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        partitioner: Arc<dyn Partitioner<K>>,
    ) -> DStream<(K, V)> {
        let f = Arc::new(f);
        self.transform_named("reduce_by_key", move |r, _| {
            let f = f.clone();
            r.reduce_by_key_with(move |a, b| f(a, b), partitioner.clone())
        })
    }

    /// Aggregates each batch's values of every key into a combiner (see
    /// [`Rdd::combine_by_key`](spate_core::Rdd::combine_by_key)).
    #[track_caller]
    pub fn combine_by_key<C: Data>(
        &self,
        create: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(C, V) -> C + Send + Sync + 'static,
        merge_combiners: impl Fn(C, C) -> C + Send + Sync + 'static,
        num_partitions: usize,
    ) -> DStream<(K, C)> {
        let (create, mv, mc) = (
            Arc::new(create),
            Arc::new(merge_value),
            Arc::new(merge_combiners),
        );
        self.transform_named("combine_by_key", move |r, _| {
            let (create, mv, mc) = (create.clone(), mv.clone(), mc.clone());
            r.combine_by_key_with(
                move |v| create(v),
                move |c, v| mv(c, v),
                move |a, b| mc(a, b),
                Arc::new(HashPartitioner::new(num_partitions)),
                true,
            )
        })
    }

    /// For each key of either stream's batch, its values in each.
    #[track_caller]
    pub fn cogroup<W: Data>(&self, other: &DStream<(K, W)>) -> DStream<(K, (Vec<V>, Vec<W>))> {
        self.cogroup_n(other, self.default_partitions())
    }

    /// [`cogroup`](Self::cogroup) into `num_partitions` partitions.
    #[track_caller]
    pub fn cogroup_n<W: Data>(
        &self,
        other: &DStream<(K, W)>,
        num_partitions: usize,
    ) -> DStream<(K, (Vec<V>, Vec<W>))> {
        self.combine_with("cogroup", other, move |a, b, _| {
            a.cogroup_n(b, num_partitions)
        })
    }

    /// Inner join of each batch with the other stream's batch of the same time.
    #[track_caller]
    pub fn join<W: Data>(&self, other: &DStream<(K, W)>) -> DStream<(K, (V, W))> {
        self.join_n(other, self.default_partitions())
    }

    /// [`join`](Self::join) into `num_partitions` partitions.
    #[track_caller]
    pub fn join_n<W: Data>(
        &self,
        other: &DStream<(K, W)>,
        num_partitions: usize,
    ) -> DStream<(K, (V, W))> {
        self.combine_with("join", other, move |a, b, _| a.join_n(b, num_partitions))
    }

    /// Left outer join, batch by batch.
    #[track_caller]
    pub fn left_outer_join<W: Data>(
        &self,
        other: &DStream<(K, W)>,
    ) -> DStream<(K, (V, Option<W>))> {
        self.left_outer_join_n(other, self.default_partitions())
    }

    /// [`left_outer_join`](Self::left_outer_join) into `num_partitions` partitions.
    #[track_caller]
    pub fn left_outer_join_n<W: Data>(
        &self,
        other: &DStream<(K, W)>,
        num_partitions: usize,
    ) -> DStream<(K, (V, Option<W>))> {
        self.combine_with("left_outer_join", other, move |a, b, _| {
            a.left_outer_join_n(b, num_partitions)
        })
    }

    /// Right outer join, batch by batch.
    #[track_caller]
    pub fn right_outer_join<W: Data>(
        &self,
        other: &DStream<(K, W)>,
    ) -> DStream<(K, (Option<V>, W))> {
        self.right_outer_join_n(other, self.default_partitions())
    }

    /// [`right_outer_join`](Self::right_outer_join) into `num_partitions` partitions.
    #[track_caller]
    pub fn right_outer_join_n<W: Data>(
        &self,
        other: &DStream<(K, W)>,
        num_partitions: usize,
    ) -> DStream<(K, (Option<V>, W))> {
        self.combine_with("right_outer_join", other, move |a, b, _| {
            a.right_outer_join_n(b, num_partitions)
        })
    }

    /// Full outer join, batch by batch.
    #[track_caller]
    pub fn full_outer_join<W: Data>(
        &self,
        other: &DStream<(K, W)>,
    ) -> DStream<(K, (Option<V>, Option<W>))> {
        self.full_outer_join_n(other, self.default_partitions())
    }

    /// [`full_outer_join`](Self::full_outer_join) into `num_partitions` partitions.
    #[track_caller]
    pub fn full_outer_join_n<W: Data>(
        &self,
        other: &DStream<(K, W)>,
        num_partitions: usize,
    ) -> DStream<(K, (Option<V>, Option<W>))> {
        self.combine_with("full_outer_join", other, move |a, b, _| {
            a.full_outer_join_n(b, num_partitions)
        })
    }
}
