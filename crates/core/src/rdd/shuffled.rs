//! Shuffles: a [`ShuffleDependency`] buckets each parent partition's `(K, V)` records by key
//! (optionally combining them map-side into `(K, C)`), and a shuffled RDD's reduce task reads its
//! bucket from every map output and finishes the aggregation.
//!
//! Map outputs are stored in the block manager as `shuffle_<id>_<map>_<reduce>` blocks at
//! `MEMORY_AND_DISK` (values in memory, spilled under pressure). A reduce task that finds one
//! missing fails with `FetchFailed`, and the scheduler re-runs the map task that wrote it. Dropping
//! the dependency (with the RDD that owns it) removes its blocks.

use super::{
    BoxIter, Compute, Dependency, Rdd, RddBase, ShuffleDependencyBase, ShuffleId, TaskContext,
    arc_iter,
};
use crate::sync::Arc;
use crate::{Context, Error, Key, Partitioner, PartitionerInfo, Result};
use spate_storage::{BlockId, Data, StorageLevel};

/// Buckets one map partition's records: the partition's records in, one vector per reduce
/// partition out.
pub(crate) type Bucketer<K, V, C> =
    dyn Fn(BoxIter<(K, V)>, &dyn Partitioner<K>) -> Vec<Vec<(K, C)>> + Send + Sync;

/// A shuffle of an `Rdd<(K, V)>` into `(K, C)` buckets by a partitioner.
pub struct ShuffleDependency<K: Key, V: Data, C: Data> {
    id: ShuffleId,
    parent: Rdd<(K, V)>,
    pub(crate) partitioner: Arc<dyn Partitioner<K>>,
    bucketer: Arc<Bucketer<K, V, C>>,
    prepare: Option<Box<dyn Fn() -> Result<()> + Send + Sync>>,
    ctx: Context,
    /// How an executor rebuilds it (when its map side can run there).
    ship: Option<crate::context::ShipName>,
}

impl<K: Key, V: Data, C: Data> ShuffleDependency<K, V, C> {
    pub(crate) fn new(
        parent: &Rdd<(K, V)>,
        partitioner: Arc<dyn Partitioner<K>>,
        bucketer: Arc<Bucketer<K, V, C>>,
        prepare: Option<Box<dyn Fn() -> Result<()> + Send + Sync>>,
    ) -> Self {
        let ctx = parent.context().clone();
        let ship = crate::context::ship_scope().filter(|_| parent.as_base().shippable());
        ShuffleDependency {
            ship,
            id: ctx.new_id(),
            parent: parent.clone(),
            partitioner,
            bucketer,
            prepare,
            ctx,
        }
    }

    /// Reads reduce partition `reduce`'s bucket from every map output, in map order.
    pub(crate) fn fetch(
        &self,
        reduce: usize,
    ) -> Result<impl Iterator<Item = (K, C)> + use<K, V, C>> {
        let bm = self.ctx.block_manager();
        let mut parts = Vec::with_capacity(self.parent.num_partitions());
        for map in 0..self.parent.num_partitions() {
            let block = BlockId::Shuffle {
                shuffle: self.id,
                map: map as u32,
                reduce: reduce as u32,
            };
            match bm.get_values::<(K, C)>(&block) {
                Ok(Some(values)) => parts.push(arc_iter(values)),
                Ok(None) => {
                    return Err(Error::FetchFailed {
                        shuffle: self.id,
                        map,
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "damaged shuffle output; its map task will be re-run");
                    bm.remove(&block);
                    return Err(Error::FetchFailed {
                        shuffle: self.id,
                        map,
                    });
                }
            }
        }
        Ok(parts.into_iter().flatten())
    }
}

impl<K: Key, V: Data, C: Data> ShuffleDependencyBase for ShuffleDependency<K, V, C> {
    fn shuffle_id(&self) -> ShuffleId {
        self.id
    }
    fn parent(&self) -> Arc<dyn RddBase> {
        self.parent.as_base()
    }
    fn num_reduce_partitions(&self) -> usize {
        self.partitioner.num_partitions()
    }
    fn prepare(&self) -> Result<()> {
        match &self.prepare {
            Some(p) => p(),
            None => Ok(()),
        }
    }
    fn shippable(&self) -> bool {
        self.ship.is_some()
    }
    fn run_map_task(&self, map: usize, tc: &TaskContext) -> Result<()> {
        // On a cluster, an executor runs it and keeps the buckets (the reduce tasks fetch them).
        if let (Some(name), Some(remote)) = (self.ship, self.ctx.remote()) {
            let preferred = self.parent.as_base().preferred_block(map);
            match remote.run_map(
                name,
                self.id,
                map,
                self.partitioner.num_partitions(),
                preferred.as_ref(),
            ) {
                Some(Ok(())) => return Ok(()),
                Some(Err(e @ Error::FetchFailed { .. })) => return Err(e),
                Some(Err(e)) => {
                    tracing::warn!(shuffle = self.id, map, error = %e, "an executor could not run the map task; running it here");
                }
                None => {}
            }
        }
        let records = self.parent.iterator(map, tc)?;
        let buckets = (self.bucketer)(records, &*self.partitioner);
        let bm = self.ctx.block_manager();
        for (reduce, bucket) in buckets.into_iter().enumerate() {
            let block = BlockId::Shuffle {
                shuffle: self.id,
                map: map as u32,
                reduce: reduce as u32,
            };
            bm.put_values(block, bucket, StorageLevel::MEMORY_AND_DISK)?;
        }
        Ok(())
    }
}

impl<K: Key, V: Data, C: Data> Drop for ShuffleDependency<K, V, C> {
    fn drop(&mut self) {
        let id = self.id;
        self.ctx
            .block_manager()
            .remove_where(|b| b.shuffle_id() == Some(id));
        self.ctx.inner.tracker.remove(id);
    }
}

/// Buckets records without combining them.
pub(crate) fn plain_bucketer<K: Key, V: Data>() -> Arc<Bucketer<K, V, V>> {
    Arc::new(|records, partitioner| {
        let mut buckets: Vec<Vec<(K, V)>> = (0..partitioner.num_partitions())
            .map(|_| Vec::new())
            .collect();
        records.for_each(|(k, v)| buckets[partitioner.partition(&k)].push((k, v)));
        buckets
    })
}

type ReduceFn<K, C, U> = dyn Fn(BoxIter<(K, C)>) -> BoxIter<U> + Send + Sync;

/// The reduce side of a shuffle: reads its bucket from every map output and applies `reduce`.
struct Shuffled<K: Key, V: Data, C: Data, U> {
    dep: Arc<ShuffleDependency<K, V, C>>,
    reduce: Arc<ReduceFn<K, C, U>>,
}

impl<K: Key, V: Data, C: Data, U: Data> Compute<U> for Shuffled<K, V, C, U> {
    fn num_partitions(&self) -> usize {
        self.dep.partitioner.num_partitions()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency::Shuffle(self.dep.clone())]
    }
    fn compute(&self, split: usize, _tc: &TaskContext) -> Result<BoxIter<U>> {
        Ok((self.reduce)(BoxIter::new(self.dep.fetch(split)?)))
    }
    fn partitioner(&self) -> Option<PartitionerInfo> {
        Some(self.dep.partitioner.info())
    }
}

impl<K: Key, V: Data> Rdd<(K, V)> {
    /// The general shuffle every key-based operation is built on.
    #[track_caller]
    pub(crate) fn shuffle<C: Data, U: Data>(
        &self,
        name: &'static str,
        partitioner: Arc<dyn Partitioner<K>>,
        bucketer: Arc<Bucketer<K, V, C>>,
        prepare: Option<Box<dyn Fn() -> Result<()> + Send + Sync>>,
        reduce: impl Fn(BoxIter<(K, C)>) -> BoxIter<U> + Send + Sync + 'static,
    ) -> Rdd<U> {
        let dep = Arc::new(ShuffleDependency::new(self, partitioner, bucketer, prepare));
        let op = Shuffled {
            dep,
            reduce: Arc::new(reduce),
        };
        Rdd::from_op(self.context(), name, std::panic::Location::caller(), op)
    }

    /// Moves every record to the partition `partitioner` assigns its key; a no-op when the RDD is
    /// already partitioned that way.
    #[track_caller]
    pub fn partition_by(&self, partitioner: Arc<dyn Partitioner<K>>) -> Rdd<(K, V)> {
        if self.partitioner().as_ref() == Some(&partitioner.info()) {
            return self.clone();
        }
        self.shuffle("partition_by", partitioner, plain_bucketer(), None, |it| it)
    }
}
