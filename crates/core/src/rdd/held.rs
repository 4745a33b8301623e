//! `held_rdd`: an RDD whose partitions another process holds, stored under its id (an executor's
//! view of a driver's persisted RDD of an earlier batch: the previous state, a window's old
//! batches). Reading a partition reads that block, through the block manager's transport when
//! it is not here; it is never recomputed here.

use super::{BoxIter, Compute, Dependency, Rdd, TaskContext, arc_iter};
use crate::{Context, Error, PartitionerInfo, Result};
use spate_storage::{BlockId, Data};

struct Held {
    id: u64,
    partitions: usize,
    partitioner: Option<PartitionerInfo>,
    ctx: Context,
}

impl<T: Data> Compute<T> for Held {
    fn num_partitions(&self) -> usize {
        self.partitions
    }
    fn dependencies(&self) -> Vec<Dependency> {
        Vec::new()
    }
    fn partitioner(&self) -> Option<PartitionerInfo> {
        self.partitioner.clone()
    }
    fn compute(&self, split: usize, _tc: &TaskContext) -> Result<BoxIter<T>> {
        let block = BlockId::Rdd {
            rdd: self.id,
            partition: split as u32,
        };
        match self.ctx.block_manager().get_values::<T>(&block)? {
            Some(values) => Ok(arc_iter(values)),
            None => Err(Error::Cluster(format!(
                "block {block} is held neither here nor by the driver any more: the driver computes this task itself"
            ))),
        }
    }
}

impl Context {
    /// An RDD with id `id` whose partitions are the stored blocks of that id, here or (through
    /// the block manager's transport) in the process that holds them. For executors rebuilding
    /// a driver's lineage: `partitioner` must be the one the RDD has there, so that children
    /// get the same dependencies (and the same ids).
    pub fn held_rdd<T: Data>(
        &self,
        id: u64,
        partitions: usize,
        partitioner: Option<PartitionerInfo>,
    ) -> Rdd<T> {
        let op = Held {
            id,
            partitions,
            partitioner,
            ctx: self.clone(),
        };
        Rdd::from_op_with_id(self, id, "held", std::panic::Location::caller(), op)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Context, HashPartitioner, PartitionerInfo, StorageLevel};
    use std::sync::Arc;

    #[test]
    fn a_held_rdd_reads_the_stored_partitions_of_its_id_and_keeps_the_partitioner() {
        let ctx = Context::new("local[2]").unwrap();
        let pairs = ctx
            .parallelize((0..20u64).map(|i| (i % 5, i)).collect::<Vec<_>>(), 3)
            .partition_by(Arc::new(HashPartitioner::new(4)));
        pairs.persist(StorageLevel::MEMORY_ONLY_SER);
        let expected = pairs.collect_partitions().unwrap();
        let held = ctx.held_rdd::<(u64, u64)>(pairs.id(), 4, pairs.partitioner());
        assert_eq!(held.id(), pairs.id());
        assert_eq!(held.partitioner(), Some(PartitionerInfo::Hash(4)));
        assert_eq!(held.collect_partitions().unwrap(), expected);
        // A child sees it partitioned like the original: no shuffle to reduce by key.
        let reduced = held.reduce_by_key_with(|a, b| a + b, Arc::new(HashPartitioner::new(4)));
        assert!(
            reduced.to_debug_string().lines().count() <= 2,
            "{}",
            reduced.to_debug_string()
        );
        // Nothing stored under an id: an error that says so, not an empty partition.
        let missing = ctx.held_rdd::<(u64, u64)>(u64::MAX - 7, 2, None);
        let e = missing.collect().unwrap_err().to_string();
        assert!(e.contains("held neither here nor by the driver"), "{e}");
    }
}
