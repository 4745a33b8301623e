//! Storage levels: where a block lives (memory, disk), in which form (values or bytes), and how
//! many copies of it are kept.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How a block is stored, with Spark's named constants.
///
/// - *memory* levels keep the block in the process's memory store, bounded by the block manager's
///   memory budget; *disk* levels write it to the scratch directory. A level with both keeps it in
///   memory while it fits and spills it to disk when evicted.
/// - *deserialized* (`MEMORY_ONLY`, `MEMORY_AND_DISK`) keeps the values themselves: fastest to
///   read, largest in memory. `_SER` levels keep bincode bytes: compact, paid for with a
///   deserialization on every read. Disk always holds bytes.
/// - `_2` levels ask for a second copy on another executor before the put is acknowledged. In local
///   mode there is no other executor: a `_2` level stores one copy, and the block manager counts
///   the skipped replica in [`StorageStats::replicas_skipped`](crate::StorageStats).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StorageLevel {
    /// Whether the block may be written to disk.
    pub use_disk: bool,
    /// Whether the block may be kept in memory.
    pub use_memory: bool,
    /// Whether in-memory copies are kept as values (`true`) or serialized bytes (`false`).
    pub deserialized: bool,
    /// How many copies to keep, on distinct executors (1 or 2).
    pub replication: u8,
}

impl StorageLevel {
    const fn new(use_disk: bool, use_memory: bool, deserialized: bool, replication: u8) -> Self {
        StorageLevel {
            use_disk,
            use_memory,
            deserialized,
            replication,
        }
    }

    /// Not stored at all.
    pub const NONE: StorageLevel = StorageLevel::new(false, false, false, 1);
    /// Serialized, on disk only.
    pub const DISK_ONLY: StorageLevel = StorageLevel::new(true, false, false, 1);
    /// Serialized, on disk only, two copies.
    pub const DISK_ONLY_2: StorageLevel = StorageLevel::new(true, false, false, 2);
    /// Values in memory; dropped (and recomputed when needed) when evicted.
    pub const MEMORY_ONLY: StorageLevel = StorageLevel::new(false, true, true, 1);
    /// Values in memory, two copies.
    pub const MEMORY_ONLY_2: StorageLevel = StorageLevel::new(false, true, true, 2);
    /// Serialized bytes in memory; dropped when evicted. The default for DStream RDDs.
    pub const MEMORY_ONLY_SER: StorageLevel = StorageLevel::new(false, true, false, 1);
    /// Serialized bytes in memory, two copies. The default for received input.
    pub const MEMORY_ONLY_SER_2: StorageLevel = StorageLevel::new(false, true, false, 2);
    /// Values in memory, spilled to disk when evicted.
    pub const MEMORY_AND_DISK: StorageLevel = StorageLevel::new(true, true, true, 1);
    /// Values in memory, spilled to disk when evicted, two copies.
    pub const MEMORY_AND_DISK_2: StorageLevel = StorageLevel::new(true, true, true, 2);
    /// Serialized bytes in memory, spilled to disk when evicted.
    pub const MEMORY_AND_DISK_SER: StorageLevel = StorageLevel::new(true, true, false, 1);
    /// Serialized bytes in memory, spilled to disk when evicted, two copies.
    pub const MEMORY_AND_DISK_SER_2: StorageLevel = StorageLevel::new(true, true, false, 2);

    /// Every named level, with its name.
    pub const ALL: [(&'static str, StorageLevel); 11] = [
        ("NONE", Self::NONE),
        ("DISK_ONLY", Self::DISK_ONLY),
        ("DISK_ONLY_2", Self::DISK_ONLY_2),
        ("MEMORY_ONLY", Self::MEMORY_ONLY),
        ("MEMORY_ONLY_2", Self::MEMORY_ONLY_2),
        ("MEMORY_ONLY_SER", Self::MEMORY_ONLY_SER),
        ("MEMORY_ONLY_SER_2", Self::MEMORY_ONLY_SER_2),
        ("MEMORY_AND_DISK", Self::MEMORY_AND_DISK),
        ("MEMORY_AND_DISK_2", Self::MEMORY_AND_DISK_2),
        ("MEMORY_AND_DISK_SER", Self::MEMORY_AND_DISK_SER),
        ("MEMORY_AND_DISK_SER_2", Self::MEMORY_AND_DISK_SER_2),
    ];

    /// Whether this level stores anything.
    pub fn is_valid(&self) -> bool {
        self.use_memory || self.use_disk
    }

    /// The level's Spark name, if it is one of the named constants.
    pub fn name(&self) -> Option<&'static str> {
        Self::ALL.iter().find(|(_, l)| l == self).map(|(n, _)| *n)
    }

    /// Parses a Spark level name such as `MEMORY_ONLY_SER_2`.
    pub fn from_name(name: &str) -> Option<StorageLevel> {
        Self::ALL
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, l)| *l)
    }
}

impl fmt::Display for StorageLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(
                f,
                "StorageLevel(disk={}, memory={}, deserialized={}, replication={})",
                self.use_disk, self.use_memory, self.deserialized, self.replication
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_levels_round_trip_and_mean_what_spark_means() {
        for (name, level) in StorageLevel::ALL {
            assert_eq!(StorageLevel::from_name(name), Some(level));
            assert_eq!(level.to_string(), name);
            assert_eq!(level.replication == 2, name.ends_with("_2"), "{name}");
            assert_eq!(level.use_disk, name.contains("DISK"), "{name}");
            assert_eq!(level.use_memory, name.contains("MEMORY"), "{name}");
            if level.use_memory {
                assert_eq!(level.deserialized, !name.contains("SER"), "{name}");
            }
        }
        assert!(!StorageLevel::NONE.is_valid());
        assert_eq!(StorageLevel::from_name("MEMORY_TWICE"), None);
    }
}
