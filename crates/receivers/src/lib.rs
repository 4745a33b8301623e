//! Spate's receivers (socket, file directory, Kafka). Filled in by the receivers issue.

pub use spate_streaming as streaming;
