//! Block names. A block id is structural: the same block has the same id in every process.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The name of a block.
///
/// Ids are built from structural names (an RDD id, a partition index, a stream id, …) so that every
/// process of a job agrees on them; they never embed a process-local counter.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BlockId {
    /// A persisted partition of an RDD.
    Rdd {
        /// The RDD's id.
        rdd: u64,
        /// The partition index.
        partition: u32,
    },
    /// The output of one map task of a shuffle for one reduce partition.
    Shuffle {
        /// The shuffle's id.
        shuffle: u64,
        /// The map partition that wrote it.
        map: u32,
        /// The reduce partition that reads it.
        reduce: u32,
    },
    /// A block of received input: the records a receiver of stream `stream` handed over in one
    /// block interval.
    Input {
        /// The input stream's id.
        stream: u32,
        /// A number unique within the stream (the block's time in ms, refined by a sequence).
        unique: u64,
    },
    /// A block with a free-form name, for tests and tools.
    Named(String),
}

impl BlockId {
    /// The RDD this block belongs to, if it is an RDD partition.
    pub fn rdd_id(&self) -> Option<u64> {
        match self {
            BlockId::Rdd { rdd, .. } => Some(*rdd),
            _ => None,
        }
    }

    /// The shuffle this block belongs to, if it is a shuffle output.
    pub fn shuffle_id(&self) -> Option<u64> {
        match self {
            BlockId::Shuffle { shuffle, .. } => Some(*shuffle),
            _ => None,
        }
    }

    /// A file-name-safe rendering of the id (used by the disk store); distinct ids get distinct
    /// names.
    pub fn file_name(&self) -> String {
        match self {
            BlockId::Named(name) => {
                // Every other byte is escaped as `_xx`, so that no two names share a file.
                let mut safe = String::with_capacity(name.len());
                for b in name.bytes() {
                    if b.is_ascii_alphanumeric() || b == b'-' || b == b'.' {
                        safe.push(char::from(b));
                    } else {
                        safe.push_str(&format!("_{b:02x}"));
                    }
                }
                format!("named_{safe}")
            }
            other => other.to_string(),
        }
    }
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockId::Rdd { rdd, partition } => write!(f, "rdd_{rdd}_{partition}"),
            BlockId::Shuffle {
                shuffle,
                map,
                reduce,
            } => write!(f, "shuffle_{shuffle}_{map}_{reduce}"),
            BlockId::Input { stream, unique } => write!(f, "input-{stream}-{unique}"),
            BlockId::Named(name) => write!(f, "{name}"),
        }
    }
}
