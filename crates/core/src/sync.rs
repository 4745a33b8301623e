//! The synchronization primitives of this crate, in one place so they can be swapped for `loom`'s.

pub(crate) use parking_lot::Mutex;
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
pub(crate) use std::sync::{Arc, Weak};
