//! Spate's RDD core: resilient distributed datasets with lineage, partitioning, shuffle and
//! scheduling, in local mode.
//!
//! An [`Rdd<T>`] is an immutable, partitioned collection that remembers how it was derived
//! (its *lineage*): a lost or evicted partition is recomputed from its parents. Transformations
//! (`map`, `filter`, `reduce_by_key`, …) are lazy and return new RDDs; actions (`collect`, `count`,
//! `save_as_text_file`, …) run a job on the [`Context`]'s worker threads and return a result.
//!
//! ```
//! use spate_core::Context;
//! use spate_core::text::split_owned;
//!
//! let ctx = Context::new("local[2]").unwrap();
//! let lines = ctx.parallelize(vec!["a b", "b c", "c"].into_iter().map(String::from).collect(), 2);
//! let mut counts = lines
//!     .flat_map(|l: String| split_owned(l, ' '))
//!     .map(|w| (w, 1u64))
//!     .reduce_by_key(|a, b| a + b)
//!     .collect()
//!     .unwrap();
//! counts.sort();
//! assert_eq!(counts, vec![("a".into(), 1), ("b".into(), 2), ("c".into(), 2)]);
//! ```
//!
//! Architecture: every RDD has a structural [`RddId`]; tasks are "compute partition p of RDD X"
//! and never carry closures, so the same names work across processes (see ARCHITECTURE.md).

pub mod batch;
pub mod cluster;
mod context;
mod error;
mod partitioner;
pub mod rdd;
mod scheduler;
mod sync;
pub mod text;
mod word;

pub use context::{Context, ContextConfig, Master, RemoteCompute, ShipName};
pub use error::{Error, Result};
pub use partitioner::{HashPartitioner, Partitioner, PartitionerInfo};
pub use rdd::write_atomically;
pub use rdd::{
    BoxIter, Dependency, Rdd, RddBase, RddId, ShuffleDependencyBase, ShuffleId, TaskContext,
    find_in_lineage, find_shuffle,
};
pub use spate_storage::{self as storage, Data, StorageLevel};
pub use text::ToText;

/// Keys of pair RDDs: data that can be hashed and compared.
pub trait Key: Data + Eq + std::hash::Hash {}
impl<T: Data + Eq + std::hash::Hash> Key for T {}
