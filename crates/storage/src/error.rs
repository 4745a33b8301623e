//! Errors of the storage layer.

use crate::BlockId;

/// A storage error. Every variant names the block involved and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A serialized block failed its integrity checks or could not be decoded.
    #[error("block {block} is corrupt: {reason}; it must be recomputed or re-received")]
    Corrupt {
        /// The block.
        block: BlockId,
        /// What was wrong with it.
        reason: String,
    },
    /// Values could not be serialized.
    #[error("could not serialize block {block}: {reason}")]
    Serialize {
        /// The block.
        block: BlockId,
        /// The serializer's message.
        reason: String,
    },
    /// A block was stored with one element type and read as another.
    #[error("block {block} holds values of type {stored}, not {requested}")]
    TypeMismatch {
        /// The block.
        block: BlockId,
        /// The type it was stored with.
        stored: &'static str,
        /// The type it was read as.
        requested: &'static str,
    },
    /// The disk store failed.
    #[error(
        "disk store I/O failed for block {block} at {path}: {source}; check the scratch directory's permissions and free space"
    )]
    Io {
        /// The block.
        block: BlockId,
        /// The file involved.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The scratch directory could not be created.
    #[error("cannot create the block manager's scratch directory under {dir}: {source}")]
    ScratchDir {
        /// The parent directory.
        dir: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Storing a replica on a peer failed.
    #[error("replicating block {block} to {peer} failed: {reason}")]
    Replication {
        /// The block.
        block: BlockId,
        /// The peer.
        peer: crate::PeerId,
        /// Why.
        reason: String,
    },
}

/// The storage layer's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
