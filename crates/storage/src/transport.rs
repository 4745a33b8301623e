//! Replication to peers, as a trait: the cluster layer implements it over the network.

use crate::{BlockId, Result, StorageLevel};

/// The name of another process's block manager (an executor id).
pub type PeerId = String;

/// Moves serialized blocks to other block managers.
///
/// A [`BlockManager`](crate::BlockManager) with a transport stores the extra copies that `_2`
/// storage levels ask for on peers before acknowledging a put. Without one (local mode), `_2`
/// levels keep a single copy.
pub trait Transport: Send + Sync {
    /// The peers a replica can be placed on, excluding this process.
    fn peers(&self) -> Vec<PeerId>;

    /// Stores `bytes` (a block serialized by [`serialize_block`](crate::serialize_block)) as block
    /// `id` on `peer` at `level` (with replication 1), returning once the peer has it.
    fn replicate(
        &self,
        peer: &PeerId,
        id: &BlockId,
        bytes: &[u8],
        level: StorageLevel,
    ) -> Result<()>;

    /// The serialized bytes of block `id` from the peer holding its replica, if any (asked when
    /// this process lost its own copy). The default knows no replicas.
    fn fetch(&self, _id: &BlockId) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }

    /// Block `id` was removed on purpose: drop its replica too. The default does nothing.
    fn forget(&self, _id: &BlockId) {}

    /// Blocks matching `pred` were removed on purpose (a dropped RDD or shuffle): forget where
    /// their copies were. The default does nothing.
    fn forget_where(&self, _pred: &dyn Fn(&BlockId) -> bool) {}
}
