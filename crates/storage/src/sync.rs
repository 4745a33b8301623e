//! The synchronization primitives of this crate, in one place so they can be swapped for `loom`'s.
//!
//! Shared-state code (the block manager, its stores) takes its locks and atomics from here.

pub(crate) use parking_lot::Mutex;
pub(crate) use std::sync::Arc;
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
