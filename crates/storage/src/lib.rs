//! Block storage for Spate: block ids, storage levels, the serializer and the `BlockManager`.
//!
//! A block is a named list of values (`BlockId` → values). The [`BlockManager`] keeps blocks at a
//! [`StorageLevel`]: deserialized in memory (the values themselves, shared behind an `Arc`),
//! serialized in memory (bincode bytes, optionally lz4-compressed), or on disk. Memory is bounded:
//! when a put does not fit, the least-recently-used blocks are evicted. An evicted block whose level
//! allows disk is spilled there; any other evicted block is dropped, and whoever needs it again
//! recomputes it (for RDD partitions, from lineage).
//!
//! This crate knows nothing of RDDs or streams: a [`BlockId`] merely *names* an RDD partition, a
//! received input block or a shuffle output.
//!
//! ```
//! use spate_storage::{BlockId, BlockManager, StorageLevel};
//!
//! let bm = BlockManager::local(64 << 20).unwrap();
//! let id = BlockId::Rdd { rdd: 1, partition: 0 };
//! bm.put_values(id.clone(), vec!["a".to_string(), "b".to_string()], StorageLevel::MEMORY_ONLY_SER).unwrap();
//! let back = bm.get_values::<String>(&id).unwrap().unwrap();
//! assert_eq!(&*back, &["a".to_string(), "b".to_string()]);
//! ```

mod block_id;
mod disk;
mod error;
mod level;
mod manager;
mod memory;
mod serializer;
mod sync;
mod transport;

pub use block_id::BlockId;
pub use error::{Error, Result};
pub use level::StorageLevel;
pub use manager::{BlockManager, BlockManagerConfig, PutOutcome, StorageStats, make_room};
pub use serializer::{
    Codec, EncodedBlock, decode_bounded, deserialize_block, encode_record, serialize_block,
};
pub use transport::{PeerId, Transport};

/// What can be stored in a block: cloneable, thread-safe, serializable values.
///
/// Every element type of an RDD or DStream satisfies this; it is implemented for all such types.
pub trait Data:
    Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static
{
}

impl<T> Data for T where
    T: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static
{
}
