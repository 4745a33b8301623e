//! Spate's DStream layer: `StreamingContext`, the DStream graph, windows, state and output
//! operations. Filled in by the DStream issue; for now it re-exports the core it builds on.

pub use spate_core as core;
pub use spate_storage as storage;
