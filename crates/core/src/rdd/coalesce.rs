//! `coalesce` (fewer partitions, no shuffle) and `repartition` (any number, with a shuffle).

use super::{BoxIter, Compute, Dependency, Rdd, TaskContext};
use crate::partitioner::stable_hash;
use crate::{Partitioner, PartitionerInfo, Result};
use spate_storage::Data;

struct Coalesced<T: Data> {
    parent: Rdd<T>,
    partitions: usize,
}

impl<T: Data> Coalesced<T> {
    /// Child partition `i` reads the contiguous parent partitions `[i*p/n, (i+1)*p/n)`.
    fn parents_of(&self, split: usize) -> std::ops::Range<usize> {
        let (p, n) = (self.parent.num_partitions(), self.partitions);
        (split * p / n)..((split + 1) * p / n)
    }
}

impl<T: Data> Compute<T> for Coalesced<T> {
    fn num_partitions(&self) -> usize {
        self.partitions
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency::ManyToOne(self.parent.as_base())]
    }
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<BoxIter<T>> {
        let mut iters = Vec::new();
        for p in self.parents_of(split) {
            iters.push(self.parent.iterator(p, tc)?);
        }
        Ok(BoxIter::new(iters.into_iter().flatten()))
    }
}

/// Partitions `usize` keys by value modulo the partition count (used by `repartition`).
struct ModPartitioner(usize);

impl Partitioner<usize> for ModPartitioner {
    fn num_partitions(&self) -> usize {
        self.0
    }
    fn partition(&self, key: &usize) -> usize {
        key % self.0
    }
    fn info(&self) -> PartitionerInfo {
        PartitionerInfo::Custom {
            name: "modulo".into(),
            partitions: self.0,
        }
    }
}

impl<T: Data> Rdd<T> {
    /// Reduces the number of partitions to `num_partitions` without a shuffle by merging
    /// neighbouring partitions; with `shuffle`, redistributes evenly (like `repartition`). Asking
    /// for more partitions than there are without `shuffle` keeps the current count.
    #[track_caller]
    pub fn coalesce(&self, num_partitions: usize, shuffle: bool) -> Rdd<T> {
        let n = num_partitions.max(1);
        if shuffle {
            return self.repartition(n);
        }
        let n = n.min(self.num_partitions().max(1));
        Rdd::from_op(
            self.context(),
            "coalesce",
            std::panic::Location::caller(),
            Coalesced {
                parent: self.clone(),
                partitions: n,
            },
        )
    }

    /// Redistributes the elements over `num_partitions` partitions with a shuffle: the elements of
    /// each partition are dealt round-robin, starting at a position derived from the partition
    /// index (deterministic, like Spark's seeded start).
    #[track_caller]
    pub fn repartition(&self, num_partitions: usize) -> Rdd<T> {
        let n = num_partitions.max(1);
        let keyed: Rdd<(usize, T)> =
            self.map_partitions_internal("repartition", false, move |split, it| {
                let start = (stable_hash(&split) % n as u64) as usize;
                BoxIter::new(it.enumerate().map(move |(i, x)| (start + i, x)))
            });
        keyed
            .partition_by(std::sync::Arc::new(ModPartitioner(n)))
            .values()
    }
}
