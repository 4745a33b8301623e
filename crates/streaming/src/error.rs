//! Errors of the streaming layer.

/// An error from a user's output function.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streaming error. Messages say what went wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A duration is zero, not whole milliseconds, or not a multiple of what it must be.
    #[error("invalid duration: {0}")]
    InvalidDuration(String),
    /// The operator graph is invalid; every problem found is listed.
    #[error("the streaming graph is invalid:\n  - {}", .0.join("\n  - "))]
    InvalidGraph(Vec<String>),
    /// Settings a job was given cannot be used; every one is listed, with why.
    #[error("invalid settings:\n  - {}", .0.join("\n  - "))]
    InvalidSetting(Vec<String>),
    /// `start()` was called twice, or an operation needs a context that has not started.
    #[error("{0}")]
    State(String),
    /// A metadata checkpoint names an RDD checkpoint that cannot be read back (a partition
    /// file missing or damaged): resuming would quietly lose that RDD's data, a stream's state.
    #[error(
        "cannot resume: {operator} cannot read back its checkpointed RDD of {time_ms} ms: {source}"
    )]
    CheckpointRdd {
        /// The operator and where the job built it.
        operator: String,
        /// The batch time of the RDD.
        time_ms: u64,
        /// Why it cannot be read (for a missing file, [`spate_core::Error::MissingPartition`]).
        source: spate_core::Error,
    },
    /// The RDD core failed.
    #[error(transparent)]
    Core(#[from] spate_core::Error),
    /// A file operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The graph built at run time is not the one `#[streaming_job]` saw at compile time.
    #[error("the job's graph differs from the one checked at compile time: {0}")]
    GraphMismatch(String),
    /// A user's output function failed.
    #[error("output operation failed: {0}")]
    Output(BoxError),
}

/// The streaming layer's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
