//! RDD checkpointing: writing an RDD's partitions to files under the checkpoint directory and
//! truncating its lineage, so a long chain (a stateful stream's state) stops growing.

use super::{BoxIter, CheckpointState, Compute, Dependency, Rdd, RddNode, TaskContext};
use crate::scheduler;
use crate::sync::Arc;
use crate::{Error, PartitionerInfo, Result};
use spate_storage::{BlockId, Codec, Data, deserialize_block, serialize_block};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` through a temporary file that is fsynced and renamed, so a reader
/// sees the whole file or none of it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(Error::io("creating a temporary file in", dir))?;
    tmp.write_all(bytes)
        .map_err(Error::io("writing", tmp.path().to_path_buf()))?;
    tmp.as_file()
        .sync_all()
        .map_err(Error::io("syncing", tmp.path().to_path_buf()))?;
    tmp.persist(path).map_err(|e| Error::Io {
        action: "renaming into",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

pub(crate) fn part_file(dir: &Path, split: usize) -> PathBuf {
    dir.join(format!("part-{split:05}"))
}

/// Reads one partition file written by [`write_partition`].
pub(crate) fn read_partition<T: Data>(path: &Path, block: &BlockId) -> Result<Vec<T>> {
    let bytes = std::fs::read(path).map_err(Error::io("reading", path))?;
    deserialize_block(block, &bytes).map_err(|e| Error::BadInput {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

pub(crate) fn write_partition<T: Data>(path: &Path, block: &BlockId, values: &[T]) -> Result<()> {
    write_atomically(path, &serialize_block(block, values, Codec::None)?)
}

/// An RDD read from partition files (an object file, or a checkpoint, which also keeps the
/// partitioner of the RDD it replaces).
pub(crate) struct PartitionFiles {
    pub(crate) files: Vec<PathBuf>,
    pub(crate) partitioner: Option<PartitionerInfo>,
    /// Names the blocks in error messages.
    pub(crate) id: u64,
}

impl<T: Data> Compute<T> for PartitionFiles {
    fn num_partitions(&self) -> usize {
        self.files.len()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        Vec::new()
    }
    fn compute(&self, split: usize, _tc: &TaskContext) -> Result<BoxIter<T>> {
        let block = BlockId::Rdd {
            rdd: self.id,
            partition: split as u32,
        };
        Ok(BoxIter::new(read_partition::<T>(
            &self.files[split],
            &block,
        )?))
    }
    fn partitioner(&self) -> Option<PartitionerInfo> {
        self.partitioner.clone()
    }
}

pub(super) fn write<T: Data>(node: &RddNode<T>) -> Result<()> {
    {
        let mut state = node.checkpoint.lock();
        if !matches!(*state, CheckpointState::Marked) {
            return Ok(());
        }
        *state = CheckpointState::InProgress;
    }
    let result = (|| {
        let root = node
            .ctx
            .checkpoint_dir()
            .ok_or(Error::NoCheckpointDir { rdd: node.id })?;
        let dir = root.join(format!("rdd-{}", node.id));
        std::fs::create_dir_all(&dir).map_err(Error::io("creating", &dir))?;
        let rdd = node.handle();
        let partitions: Vec<usize> = (0..rdd.num_partitions()).collect();
        let d = dir.clone();
        let id = node.id;
        scheduler::run_job(&rdd, &partitions, move |tc, it| {
            let values: Vec<T> = it.into_vec();
            let block = BlockId::Rdd {
                rdd: id,
                partition: tc.partition as u32,
            };
            write_partition(&part_file(&d, tc.partition), &block, &values)
        })?;
        node.replace_op(Arc::new(PartitionFiles {
            files: partitions.iter().map(|p| part_file(&dir, *p)).collect(),
            partitioner: node.op().partitioner(),
            id: node.id,
        }));
        Ok(CheckpointState::Done { dir })
    })();
    let mut state = node.checkpoint.lock();
    match result {
        Ok(done) => {
            tracing::debug!(rdd = node.id, "checkpointed");
            *state = done;
            Ok(())
        }
        Err(e) => {
            *state = CheckpointState::Marked;
            Err(e)
        }
    }
}

impl<T: Data> Rdd<T> {
    /// Marks this RDD for checkpointing: after the next job that computes it, its partitions are
    /// written under the context's checkpoint directory and its lineage is cut, so later reads come
    /// from those files. Persist it too, or it is computed twice. Fails if no checkpoint directory
    /// is set.
    pub fn checkpoint(&self) -> Result<()> {
        if self.context().checkpoint_dir().is_none() {
            return Err(Error::NoCheckpointDir { rdd: self.id() });
        }
        let mut state = self.node.checkpoint.lock();
        if matches!(*state, CheckpointState::None) {
            *state = CheckpointState::Marked;
        }
        Ok(())
    }

    /// Whether the RDD's partitions have been written to a checkpoint.
    pub fn is_checkpointed(&self) -> bool {
        matches!(*self.node.checkpoint.lock(), CheckpointState::Done { .. })
    }

    /// The directory holding the checkpointed partitions, once written.
    pub fn checkpoint_file(&self) -> Option<PathBuf> {
        match &*self.node.checkpoint.lock() {
            CheckpointState::Done { dir, .. } => Some(dir.clone()),
            _ => None,
        }
    }
}
