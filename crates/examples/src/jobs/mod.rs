//! The example jobs, written with `#[streaming_job]`: each has a binary in `src/bin` and is
//! compiled by the macro's pass tests.

pub mod bench;
pub mod file;
pub mod kafka;
pub mod network;
pub mod recoverable;
pub mod stateful;
pub mod windowed;
