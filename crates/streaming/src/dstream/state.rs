//! `update_state_by_key`: per-key state carried from batch to batch (Spark's `StateDStream`).
//!
//! At every batch the update function runs for each key in (previous state ∪ this batch's keys)
//! with the key's new values (possibly none) and its previous state (possibly none); returning
//! `None` removes the key. The stream outputs the whole state every batch, is persisted at
//! `MEMORY_ONLY_SER`, and checkpoints (so it needs a checkpoint directory).

use super::{DStream, OpSpec};
use crate::Key;
use spate_core::{Data, HashPartitioner, Partitioner, Rdd, StorageLevel};
use std::sync::Arc;

impl<K: Key, V: Data> DStream<(K, V)> {
    /// Updates each key's state with `f(new_values, previous_state)`.
    #[track_caller]
    pub fn update_state_by_key<S: Data>(
        &self,
        f: impl Fn(&[V], Option<S>) -> Option<S> + Send + Sync + 'static,
    ) -> DStream<(K, S)> {
        self.update_state_by_key_with(
            f,
            Arc::new(HashPartitioner::new(self.default_partitions())),
            None,
        )
    }

    /// [`update_state_by_key`](Self::update_state_by_key) into `num_partitions` partitions.
    #[track_caller]
    pub fn update_state_by_key_n<S: Data>(
        &self,
        f: impl Fn(&[V], Option<S>) -> Option<S> + Send + Sync + 'static,
        num_partitions: usize,
    ) -> DStream<(K, S)> {
        self.update_state_by_key_with(f, Arc::new(HashPartitioner::new(num_partitions)), None)
    }

    /// [`update_state_by_key`](Self::update_state_by_key) with an explicit partitioner and an
    /// optional initial state (used as the previous state of the first batch).
    #[track_caller]
    pub fn update_state_by_key_with<S: Data>(
        &self,
        f: impl Fn(&[V], Option<S>) -> Option<S> + Send + Sync + 'static,
        partitioner: Arc<dyn Partitioner<K>>,
        initial: Option<Rdd<(K, S)>>,
    ) -> DStream<(K, S)> {
        let f = Arc::new(f);
        let parent = self.clone();
        let mut spec = OpSpec::derived("update_state_by_key", self, move |node, t| {
            let previous = match node.get_or_compute(t.minus(node.slide))? {
                Some(p) => Some(p),
                None => initial.clone(),
            };
            // The batch's values of each key, gathered map-side: one key and one list per key
            // and map partition cross the shuffle instead of one record per value. The values
            // keep their order (map partitions in order, each in its own order).
            let batch = parent
                .node
                .get_or_compute(t)?
                .map(|b| b.group_values_with(partitioner.clone(), true));
            let f = f.clone();
            Ok(match (previous, batch) {
                // Both sides are partitioned alike: a narrow cogroup.
                (Some(prev), Some(batch)) => Some(
                    batch
                        .cogroup_with(&prev, partitioner.clone())
                        .flat_map_values(move |(vs, ss): (Vec<Vec<V>>, Vec<S>)| {
                            let vs = vs.into_iter().next().unwrap_or_default();
                            f(&vs, ss.into_iter().next())
                        }),
                ),
                (Some(prev), None) => Some(
                    prev.partition_by(partitioner.clone())
                        .flat_map_values(move |s| f(&[], Some(s))),
                ),
                (None, Some(batch)) => Some(batch.flat_map_values(move |vs| f(&vs, None))),
                (None, None) => None,
            })
        });
        spec.must_checkpoint = true;
        spec.level = StorageLevel::MEMORY_ONLY_SER;
        DStream::create(&self.node.env, &self.node.graph, spec)
    }
}
