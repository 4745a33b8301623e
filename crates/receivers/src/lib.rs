//! Input sources for Spate streams: TCP sockets, a directory of files, and Kafka.
//!
//! Bring the [`Sources`] trait into scope to call them on a
//! [`StreamingContext`](spate_streaming::StreamingContext), as in Spark:
//!
//! ```no_run
//! use spate_receivers::Sources;
//! use spate_streaming::{StorageLevel, StreamingContext};
//! use std::time::Duration;
//!
//! let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
//! let lines = ssc.socket_text_stream("localhost", 9999, StorageLevel::MEMORY_ONLY_SER_2);
//! lines.print();
//! ```

mod error;
mod file;
mod kafka;
mod socket;
pub mod testing;

pub use error::{Error, Result};
pub use file::{FileStream, FileStreamConfig, FileStreamStats, MissingDirectory};
pub use kafka::{
    DirectKafkaConfig, DirectKafkaStats, DirectKafkaStream, KafkaConnection, KafkaProducer,
    KafkaReceiver, KafkaReceiverConfig, KafkaRecord, KafkaSources, OffsetRange, StartOffsets,
    TopicPartition,
};
pub use socket::{DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_LINE_BYTES, SocketConfig, SocketReceiver};

use spate_streaming::{DStream, Data, StorageLevel};
use std::io::Read;
use std::path::PathBuf;

/// A converter from a socket's byte stream to records: called once per connection; yields
/// records until the stream ends (`None`) or a read fails.
pub type Converter<T> = std::sync::Arc<
    dyn Fn(Box<dyn Read + Send>) -> Box<dyn Iterator<Item = std::io::Result<T>> + Send>
        + Send
        + Sync,
>;

/// Input sources on a [`StreamingContext`](spate_streaming::StreamingContext).
pub trait Sources {
    /// The UTF-8 lines (without terminators) read from a TCP connection to `host:port`, stored
    /// at `level`. A refused or lost connection is logged, counted and retried with backoff
    /// (the lines read before it are stored); an invalid UTF-8 line, or one longer than
    /// [`SocketConfig::max_line_bytes`] (8 MiB), is counted and skipped with a warning.
    fn socket_text_stream(&self, host: &str, port: u16, level: StorageLevel) -> DStream<String>;

    /// [`socket_text_stream`](Self::socket_text_stream) with explicit connection settings.
    fn socket_text_stream_with(&self, config: SocketConfig, level: StorageLevel)
    -> DStream<String>;

    /// Records read from `host:port` by `converter`.
    fn socket_stream<T: Data>(
        &self,
        host: &str,
        port: u16,
        converter: Converter<T>,
        level: StorageLevel,
    ) -> DStream<T>;

    /// Records sent as length-prefixed serialized blocks: each frame is a `u32` big-endian length
    /// followed by a block written by `spate_storage::serialize_block` holding `Vec<T>`. A frame
    /// that is corrupt or longer than [`SocketConfig::max_frame_bytes`] (64 MiB) is counted as
    /// skipped, and the connection is opened again.
    fn raw_socket_stream<T: Data>(&self, host: &str, port: u16, level: StorageLevel) -> DStream<T>;

    /// [`raw_socket_stream`](Self::raw_socket_stream) with explicit connection settings (the
    /// largest frame among them).
    fn raw_socket_stream_with<T: Data>(
        &self,
        config: SocketConfig,
        level: StorageLevel,
    ) -> DStream<T>;

    /// The lines of new text files appearing in `dir` (Spark's `textFileStream`). Lines that
    /// are not valid UTF-8 are skipped and counted; see [`FileStream`] for its counters and the
    /// `file` module docs for which files are new.
    fn text_file_stream(&self, dir: impl Into<PathBuf>) -> FileStream;

    /// The lines of new files in `dir` accepted by `filter` (by file name); with
    /// `new_files_only = false` files already present at start are read by the first batch.
    fn file_stream(
        &self,
        dir: impl Into<PathBuf>,
        filter: impl Fn(&std::path::Path) -> bool + Send + Sync + 'static,
        new_files_only: bool,
        config: FileStreamConfig,
    ) -> FileStream;
}
