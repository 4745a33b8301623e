//! Partitioners: which reduce partition a key goes to.

use std::hash::{Hash, Hasher};

/// A description of a partitioner, used to decide whether two RDDs are partitioned alike (and a
/// shuffle between them can be skipped).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum PartitionerInfo {
    /// [`HashPartitioner`] with this many partitions.
    Hash(usize),
    /// A range partitioner; `id` names the RDD whose keys it was sampled from.
    Range {
        /// The sampled RDD.
        id: u64,
        /// Number of partitions.
        partitions: usize,
        /// Ascending order.
        ascending: bool,
    },
    /// A partitioner of the user's, identified by name.
    Custom {
        /// The name (equal names mean equal partitioning).
        name: String,
        /// Number of partitions.
        partitions: usize,
    },
}

impl PartitionerInfo {
    /// Number of partitions of the described partitioner.
    pub fn num_partitions(&self) -> usize {
        match self {
            PartitionerInfo::Hash(n) => *n,
            PartitionerInfo::Range { partitions, .. }
            | PartitionerInfo::Custom { partitions, .. } => *partitions,
        }
    }
}

/// Maps keys to partitions. Must be deterministic: every process maps a key alike.
pub trait Partitioner<K>: Send + Sync + 'static {
    /// Number of partitions.
    fn num_partitions(&self) -> usize;
    /// The partition of `key`, in `0..num_partitions()`.
    fn partition(&self, key: &K) -> usize;
    /// What this partitioner is, for equality.
    fn info(&self) -> PartitionerInfo;
}

/// Partitions by a fixed, process-independent hash of the key (FxHash) modulo the partition count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashPartitioner {
    partitions: usize,
}

impl HashPartitioner {
    /// A hash partitioner with `partitions` partitions (at least 1).
    pub fn new(partitions: usize) -> HashPartitioner {
        HashPartitioner {
            partitions: partitions.max(1),
        }
    }
}

/// The deterministic hash used for partitioning.
pub(crate) fn stable_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    key.hash(&mut h);
    h.finish()
}

impl<K: Hash> Partitioner<K> for HashPartitioner {
    fn num_partitions(&self) -> usize {
        self.partitions
    }
    fn partition(&self, key: &K) -> usize {
        (stable_hash(key) % self.partitions as u64) as usize
    }
    fn info(&self) -> PartitionerInfo {
        PartitionerInfo::Hash(self.partitions)
    }
}
