//! `block_rdd`: an RDD whose partitions are blocks already in the block manager (received input).
//! Its partitions cannot be recomputed: a missing block is an error naming it. The RDD may own its
//! blocks, removing them when it is dropped.

use super::{BoxIter, Compute, Dependency, Rdd, TaskContext, arc_iter};
use crate::{Context, Error, Result};
use spate_storage::{BlockId, Data};

struct Blocks {
    ids: Vec<BlockId>,
    ctx: Context,
    owned: bool,
}

impl<T: Data> Compute<T> for Blocks {
    fn num_partitions(&self) -> usize {
        self.ids.len()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        Vec::new()
    }
    fn preferred_block(&self, split: usize) -> Option<BlockId> {
        self.ids.get(split).cloned()
    }
    fn compute(&self, split: usize, _tc: &TaskContext) -> Result<BoxIter<T>> {
        let id = &self.ids[split];
        match self.ctx.block_manager().get_values::<T>(id)? {
            Some(values) => Ok(arc_iter(values)),
            None => Err(Error::BlockLost {
                block: id.to_string(),
            }),
        }
    }
}

impl Drop for Blocks {
    fn drop(&mut self) {
        if self.owned {
            for id in &self.ids {
                self.ctx.block_manager().remove(id);
            }
        }
    }
}

impl Context {
    /// An RDD with one partition per block (in order). With `owned`, the blocks are removed from
    /// the block manager when the RDD is dropped.
    #[track_caller]
    pub fn block_rdd<T: Data>(&self, ids: Vec<BlockId>, owned: bool) -> Rdd<T> {
        let op = Blocks {
            ids,
            ctx: self.clone(),
            owned,
        };
        Rdd::from_op(self, "block_rdd", std::panic::Location::caller(), op)
    }
}
