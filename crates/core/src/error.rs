//! Errors of the RDD core.

use std::path::PathBuf;

/// An error from building or running RDD jobs. Messages say what went wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The master string is not one this build understands.
    #[error(
        "invalid master {master:?}: {reason}. Use local, local[N], local[*], local-cluster[E,C] or spate://HOST:PORT"
    )]
    InvalidMaster {
        /// The master string given.
        master: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A task failed (a user function panicked or returned an error); the job was abandoned.
    #[error(
        "job failed: task for partition {partition} of RDD {rdd} ({name} at {call_site}) failed: {message}"
    )]
    TaskFailed {
        /// The RDD whose partition the task computed.
        rdd: u64,
        /// The operation that made the RDD.
        name: String,
        /// Where the RDD was defined.
        call_site: String,
        /// The partition.
        partition: usize,
        /// The panic message or error.
        message: String,
    },
    /// A shuffle output was missing when a reduce task read it; the scheduler recomputes it.
    #[error("shuffle {shuffle} output of map partition {map} is missing")]
    FetchFailed {
        /// The shuffle.
        shuffle: u64,
        /// The map partition whose output was missing.
        map: usize,
    },
    /// A job kept failing to fetch shuffle outputs after recomputing them.
    #[error("job abandoned after {attempts} attempts: {last}")]
    TooManyAttempts {
        /// How many attempts were made.
        attempts: usize,
        /// The last failure.
        last: Box<Error>,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] spate_storage::Error),
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("reading", "writing", …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An input file is not what it should be.
    #[error("{path}: {reason}")]
    BadInput {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A directory of partition files (a saved object file, an RDD checkpoint) lacks one, so
    /// reading it would quietly give fewer partitions, without that partition's data.
    #[error(
        "{dir} is incomplete: {missing} is missing (the RDD had {partitions} partitions, part-00000 to part-{last:05}); put the file back, or, for a checkpoint, start from an empty checkpoint directory (the state it held is then lost)",
        last = .partitions.saturating_sub(1)
    )]
    MissingPartition {
        /// The directory.
        dir: PathBuf,
        /// The first missing partition file.
        missing: PathBuf,
        /// How many partitions the directory should hold (when not recorded: one past the
        /// highest partition file found).
        partitions: usize,
    },
    /// The output directory of a save already exists.
    #[error("output directory {0} already exists: remove it or choose another path")]
    OutputExists(PathBuf),
    /// `checkpoint()` was called without a checkpoint directory.
    #[error(
        "RDD {rdd} cannot be checkpointed: no checkpoint directory is set; call Context::set_checkpoint_dir first"
    )]
    NoCheckpointDir {
        /// The RDD.
        rdd: u64,
    },
    /// A block of received input is gone (and input cannot be recomputed).
    #[error(
        "input block {block} is missing: the data it held is lost (use a replicated storage level or a write-ahead log to survive failures)"
    )]
    BlockLost {
        /// The block.
        block: String,
    },
    /// An external system (a broker, a database) failed while a task read a partition from it;
    /// the message names the system and says what to do.
    #[error("reading an external source failed: {0}")]
    Source(String),
    /// Cluster mode: an executor that does not come up, a driver that cannot be reached, a
    /// lost connection.
    #[error("cluster: {0}")]
    Cluster(String),
    /// An argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// The RDD core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}
