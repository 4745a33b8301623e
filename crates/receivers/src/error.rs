//! Errors of the input sources.

use std::path::PathBuf;

/// An input source error. Messages say what went wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory a file stream watches does not exist.
    #[error(
        "the directory {0} does not exist: create it before starting the stream, or set MissingDirectory::Retry to wait for it"
    )]
    MissingDirectory(PathBuf),
    /// A file could not be read.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Kafka failed.
    #[error("kafka: {0}")]
    Kafka(String),
    /// The streaming layer failed.
    #[error(transparent)]
    Streaming(#[from] spate_streaming::Error),
}

/// The input sources' result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
