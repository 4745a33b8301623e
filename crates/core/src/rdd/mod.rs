//! RDDs: the typed handle [`Rdd<T>`], the type-erased [`RddBase`] the scheduler walks, and
//! dependencies. One file per family of operations lives beside this one.

mod actions;
mod arrival;
mod blocks;
mod box_iter;
mod checkpoint;
mod coalesce;
mod cogroup;
mod files;
mod generated;
mod held;
mod map_partitions;
mod pair;
mod parallel;
mod shuffled;
mod sort;
mod union;

pub use checkpoint::write_atomically;
pub use shuffled::ShuffleDependency;

use crate::sync::{Arc, Mutex, Weak};
use crate::{Context, PartitionerInfo, Result};
use spate_storage::{BlockId, Data, StorageLevel};
use std::path::PathBuf;

pub use box_iter::BoxIter;

/// The structural id of an RDD (see [`Context::new_id`]).
pub type RddId = u64;

/// The id of a shuffle (drawn from the same generator as RDD ids).
pub type ShuffleId = u64;

/// What a running task knows about itself.
pub struct TaskContext {
    /// The partition being computed.
    pub partition: usize,
    /// The attempt number of the job (0 for the first).
    pub attempt: usize,
    pub(crate) ctx: Context,
}

impl TaskContext {
    /// The context of a task another process asked this one to run.
    pub fn for_remote(ctx: &Context, partition: usize) -> TaskContext {
        TaskContext {
            partition,
            attempt: 0,
            ctx: ctx.clone(),
        }
    }

    /// The context the task runs in.
    pub fn context(&self) -> &Context {
        &self.ctx
    }
}

/// How an RDD depends on a parent.
///
/// Narrow dependencies (every variant but `Shuffle`) are pipelined into the child's tasks; a
/// `Shuffle` dependency ends a stage: the parent's partitions are computed and bucketed by key
/// first, and the child's tasks read the buckets.
#[derive(Clone)]
pub enum Dependency {
    /// Child partition `i` reads parent partition `i`.
    OneToOne(Arc<dyn RddBase>),
    /// Child partitions `out_start..out_start+len` read parent partitions `in_start..`.
    Range {
        /// The parent.
        rdd: Arc<dyn RddBase>,
        /// First parent partition.
        in_start: usize,
        /// First child partition.
        out_start: usize,
        /// Number of partitions.
        len: usize,
    },
    /// Each child partition reads several parent partitions (coalesce).
    ManyToOne(Arc<dyn RddBase>),
    /// A shuffle: every child partition reads a bucket from every parent partition.
    Shuffle(Arc<dyn ShuffleDependencyBase>),
}

impl Dependency {
    /// The parent RDD.
    pub fn rdd(&self) -> Arc<dyn RddBase> {
        match self {
            Dependency::OneToOne(r)
            | Dependency::ManyToOne(r)
            | Dependency::Range { rdd: r, .. } => r.clone(),
            Dependency::Shuffle(s) => s.parent(),
        }
    }
}

/// The type-erased view of an RDD that the scheduler walks.
pub trait RddBase: Send + Sync {
    /// The RDD's id.
    fn id(&self) -> RddId;
    /// The operation that made it (`map`, `reduce_by_key`, …).
    fn name(&self) -> &str;
    /// Where in the user's code it was made.
    fn call_site(&self) -> &str;
    /// Number of partitions.
    fn num_partitions(&self) -> usize;
    /// Its dependencies (none once checkpointed: the lineage is truncated).
    fn dependencies(&self) -> Vec<Dependency>;
    /// How its partitions are kept once computed.
    fn storage_level(&self) -> StorageLevel;
    /// Its partitioner, if its keys are known to be partitioned.
    fn partitioner(&self) -> Option<PartitionerInfo>;
    /// Whether every partition is currently stored in the block manager.
    fn is_fully_cached(&self) -> bool;
    /// Whether it is marked for checkpointing and not yet written.
    fn needs_checkpoint(&self) -> bool;
    /// Writes its partitions to the checkpoint directory and truncates its lineage.
    fn do_checkpoint(&self) -> Result<()>;
    /// Whether its partitions have been written to a checkpoint.
    fn is_checkpointed(&self) -> bool;
    /// Whether another process running the same job can rebuild and compute it (made under a
    /// ship scope, from parents and shuffles that can be).
    fn shippable(&self) -> bool {
        false
    }
    /// The stored block partition `split` reads, if it reads one (for locality).
    fn preferred_block(&self, _split: usize) -> Option<BlockId> {
        None
    }
    /// Computes partition `split` here and serializes it (for a task another process sent).
    fn compute_serialized(&self, split: usize, tc: &TaskContext) -> Result<Vec<u8>>;
}

/// The shuffle dependency with id `id` in the lineage of `root`, if any.
pub fn find_shuffle(
    root: &Arc<dyn RddBase>,
    id: ShuffleId,
) -> Option<Arc<dyn ShuffleDependencyBase>> {
    let mut stack = vec![root.clone()];
    let mut seen = std::collections::HashSet::new();
    while let Some(r) = stack.pop() {
        if !seen.insert(r.id()) {
            continue;
        }
        for d in r.dependencies() {
            if let Dependency::Shuffle(s) = &d
                && s.shuffle_id() == id
            {
                return Some(s.clone());
            }
            stack.push(d.rdd());
        }
    }
    None
}

/// The RDD with id `id` in the lineage of `root` (itself included), if any.
pub fn find_in_lineage(root: &Arc<dyn RddBase>, id: RddId) -> Option<Arc<dyn RddBase>> {
    let mut stack = vec![root.clone()];
    let mut seen = std::collections::HashSet::new();
    while let Some(r) = stack.pop() {
        if r.id() == id {
            return Some(r);
        }
        if seen.insert(r.id()) {
            stack.extend(r.dependencies().iter().map(Dependency::rdd));
        }
    }
    None
}

/// The type-erased view of a shuffle dependency: runs map tasks that bucket a parent partition's
/// records by key.
pub trait ShuffleDependencyBase: Send + Sync {
    /// The shuffle's id.
    fn shuffle_id(&self) -> ShuffleId;
    /// The map-side RDD.
    fn parent(&self) -> Arc<dyn RddBase>;
    /// Number of reduce partitions.
    fn num_reduce_partitions(&self) -> usize;
    /// Work needed before the map tasks run (for example sampling keys for a range partitioner).
    fn prepare(&self) -> Result<()> {
        Ok(())
    }
    /// Computes map partition `map` and stores its buckets.
    fn run_map_task(&self, map: usize, tc: &TaskContext) -> Result<()>;
    /// Whether an executor running the same job can rebuild it (so the reduce side can run
    /// there too, fetching the buckets from wherever they are).
    fn shippable(&self) -> bool {
        false
    }
}

/// The computation behind an RDD: what each operation implements.
pub(crate) trait Compute<T>: Send + Sync + 'static {
    fn num_partitions(&self) -> usize;
    fn dependencies(&self) -> Vec<Dependency>;
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<BoxIter<T>>;
    fn partitioner(&self) -> Option<PartitionerInfo> {
        None
    }
    /// The stored block partition `split` reads, for a source of stored blocks.
    fn preferred_block(&self, _split: usize) -> Option<BlockId> {
        None
    }
}

pub(crate) enum CheckpointState {
    None,
    Marked,
    InProgress,
    Done { dir: PathBuf },
}

pub(crate) struct RddNode<T: Data> {
    pub(crate) id: RddId,
    /// How another process names it, when it can rebuild it.
    ship: Option<crate::context::ShipName>,
    pub(crate) ctx: Context,
    name: &'static str,
    call_site: String,
    op: Mutex<Arc<dyn Compute<T>>>,
    level: Mutex<StorageLevel>,
    pub(crate) checkpoint: Mutex<CheckpointState>,
    self_ref: Weak<RddNode<T>>,
}

/// A resilient distributed dataset: an immutable, partitioned collection of `T` with lineage.
///
/// A cheap handle (an `Arc`); cloning it does not copy data. Dropping the last handle to a
/// persisted RDD frees its blocks.
pub struct Rdd<T: Data> {
    pub(crate) node: Arc<RddNode<T>>,
}

impl<T: Data> Clone for Rdd<T> {
    fn clone(&self) -> Self {
        Rdd {
            node: self.node.clone(),
        }
    }
}

/// Iterates a shared vector, moving out of it when this is the last reference.
pub(crate) fn arc_iter<T: Clone + 'static>(values: Arc<Vec<T>>) -> BoxIter<T> {
    match Arc::try_unwrap(values) {
        Ok(v) => BoxIter::new(v),
        Err(shared) => BoxIter::new((0..shared.len()).map(move |i| shared[i].clone())),
    }
}

impl<T: Data> Rdd<T> {
    pub(crate) fn from_op(
        ctx: &Context,
        name: &'static str,
        location: &std::panic::Location<'_>,
        op: impl Compute<T>,
    ) -> Rdd<T> {
        let id = ctx.new_id();
        Rdd::from_op_with_id(ctx, id, name, location, op)
    }

    /// [`from_op`](Self::from_op) with a given id (an RDD another process made and named).
    pub(crate) fn from_op_with_id(
        ctx: &Context,
        id: RddId,
        name: &'static str,
        location: &std::panic::Location<'_>,
        op: impl Compute<T>,
    ) -> Rdd<T> {
        let ship = crate::context::ship_scope().filter(|_| {
            op.dependencies().iter().all(|d| match d {
                Dependency::Shuffle(s) => s.shippable(),
                d => d.rdd().shippable(),
            })
        });
        let node = Arc::new_cyclic(|weak| RddNode {
            id,
            ship,
            ctx: ctx.clone(),
            name,
            call_site: format!("{}:{}", location.file(), location.line()),
            op: Mutex::new(Arc::new(op)),
            level: Mutex::new(StorageLevel::NONE),
            checkpoint: Mutex::new(CheckpointState::None),
            self_ref: weak.clone(),
        });
        Rdd { node }
    }

    /// The RDD's structural id.
    pub fn id(&self) -> RddId {
        self.node.id
    }

    /// The context this RDD belongs to.
    pub fn context(&self) -> &Context {
        &self.node.ctx
    }

    /// Number of partitions.
    pub fn num_partitions(&self) -> usize {
        self.node.op().num_partitions()
    }

    /// The type-erased view, for the scheduler and for dependencies of children.
    pub fn as_base(&self) -> Arc<dyn RddBase> {
        self.node.clone()
    }

    /// The partitioner, if the RDD's keys are known to be partitioned.
    pub fn partitioner(&self) -> Option<PartitionerInfo> {
        self.node.partitioner()
    }

    /// Keeps computed partitions in the block manager at `level`, so later jobs reuse them
    /// instead of recomputing. A partition evicted under memory pressure is recomputed from
    /// lineage when next needed. Returns the same RDD for chaining.
    pub fn persist(&self, level: StorageLevel) -> Rdd<T> {
        *self.node.level.lock() = level;
        self.clone()
    }

    /// `persist(MEMORY_ONLY)`.
    pub fn cache(&self) -> Rdd<T> {
        self.persist(StorageLevel::MEMORY_ONLY)
    }

    /// Stops persisting and removes the stored partitions.
    pub fn unpersist(&self) -> Rdd<T> {
        *self.node.level.lock() = StorageLevel::NONE;
        self.node.remove_blocks();
        self.clone()
    }

    /// The current storage level.
    pub fn storage_level(&self) -> StorageLevel {
        *self.node.level.lock()
    }

    /// Computes (or reads from storage or a checkpoint) the values of partition `split`.
    ///
    /// This is what child RDDs call on their parents; it honours persistence and checkpoints.
    pub fn iterator(&self, split: usize, tc: &TaskContext) -> Result<BoxIter<T>> {
        self.node.iterator(split, tc)
    }

    /// A description of the lineage, one RDD per line, laid out like Spark's `toDebugString`: the
    /// RDDs of a stage share a column; each shuffle starts a new stage, indented, as `+-(N) …`.
    pub fn to_debug_string(&self) -> String {
        debug_lines(&*self.as_base()).join("\n")
    }
}

/// One RDD's description: `name[id] at call_site`, then its storage level and checkpoint state.
fn describe(rdd: &dyn RddBase) -> String {
    let level = rdd.storage_level();
    let cached = if level.is_valid() {
        format!(" [{level}]")
    } else {
        String::new()
    };
    let cp = if rdd.is_checkpointed() {
        " [checkpointed]"
    } else {
        ""
    };
    format!(
        "{}[{}] at {}{cached}{cp}",
        rdd.name(),
        rdd.id(),
        rdd.call_site()
    )
}

/// The prefix of the lines below a stage's first line, whose partition count is `count`: a `|`
/// under the count's middle (Spark's layout).
fn stage_prefix(count: &str) -> String {
    let left = (count.len() - 1) / 2;
    format!("{}|{}", " ".repeat(left), " ".repeat(count.len() - left))
}

/// Spark's `toDebugString` layout: the RDDs of one stage (narrow dependencies) share a column
/// behind ` |  `; the parent of a shuffle starts a new stage one level in, as `+-(N) …`.
fn debug_lines(rdd: &dyn RddBase) -> Vec<String> {
    let count = format!("({})", rdd.num_partitions());
    let mut lines = vec![format!("{count} {}", describe(rdd))];
    debug_children(rdd, &stage_prefix(&count), &mut lines);
    lines
}

fn debug_children(rdd: &dyn RddBase, prefix: &str, lines: &mut Vec<String>) {
    let deps = rdd.dependencies();
    let last = deps.len().saturating_sub(1);
    for (i, dep) in deps.iter().enumerate() {
        let parent = dep.rdd();
        if let Dependency::Shuffle(_) = dep {
            // Drop the trailing `|  ` of the prefix: the `+-` takes its place.
            let trimmed = prefix.trim_end();
            let this = if trimmed.len() < prefix.len() {
                trimmed.strip_suffix('|').unwrap_or(prefix)
            } else {
                prefix
            };
            let count = format!("({})", parent.num_partitions());
            lines.push(format!("{this}+-{count} {}", describe(&*parent)));
            let next = format!(
                "{this}{}{}",
                if i == last { "  " } else { "| " },
                stage_prefix(&count)
            );
            debug_children(&*parent, &next, lines);
        } else {
            lines.push(format!("{prefix}{}", describe(&*parent)));
            debug_children(&*parent, prefix, lines);
        }
    }
}

impl<T: Data> RddNode<T> {
    fn block_id(&self, split: usize) -> BlockId {
        BlockId::Rdd {
            rdd: self.id,
            partition: split as u32,
        }
    }

    fn remove_blocks(&self) {
        let id = self.id;
        self.ctx
            .block_manager()
            .remove_where(|b| b.rdd_id() == Some(id));
    }

    /// The current computation: the operation, or after a checkpoint, the checkpoint files.
    pub(crate) fn op(&self) -> Arc<dyn Compute<T>> {
        self.op.lock().clone()
    }

    /// Replaces the computation (used once a checkpoint is written: the old one, and with it every
    /// reference to the parents, is dropped so old lineage can be freed).
    pub(crate) fn replace_op(&self, op: Arc<dyn Compute<T>>) {
        *self.op.lock() = op;
    }

    pub(crate) fn handle(&self) -> Rdd<T> {
        Rdd {
            node: self
                .self_ref
                .upgrade()
                .expect("a live node has a live self reference"),
        }
    }

    /// The input block partition `split` reads: its own (a block RDD), or through a one-to-one
    /// parent's (so a narrow chain over received blocks runs where its block is).
    fn preferred_block(&self, split: usize) -> Option<BlockId> {
        let op = self.op();
        op.preferred_block(split)
            .or_else(|| match op.dependencies().as_slice() {
                [Dependency::OneToOne(parent)] => parent.preferred_block(split),
                _ => None,
            })
    }

    /// Computes partition `split`: on an executor when the RDD can be rebuilt there and the
    /// context has executors, else (or when that fails) here.
    fn compute_split(&self, split: usize, tc: &TaskContext) -> Result<BoxIter<T>> {
        // Only shippable RDDs look further (local mode pays one branch per partition).
        if let Some(name) = self.ship
            && matches!(*self.checkpoint.lock(), CheckpointState::None)
            && let Some(remote) = self.ctx.remote()
            && let Some(result) =
                remote.compute(name, self.id, split, self.preferred_block(split).as_ref())
        {
            match result.and_then(|bytes| {
                spate_storage::deserialize_block::<T>(&self.block_id(split), &bytes)
                    .map_err(Into::into)
            }) {
                Ok(values) => return Ok(BoxIter::new(values)),
                // Computing it here would read the same missing output: the scheduler re-runs
                // the map task that wrote it, then this task.
                Err(e @ crate::Error::FetchFailed { .. }) => return Err(e),
                Err(e) => {
                    tracing::warn!(rdd = self.id, partition = split, error = %e, "an executor could not compute the partition; computing it here");
                }
            }
        }
        self.op().compute(split, tc)
    }

    fn iterator(&self, split: usize, tc: &TaskContext) -> Result<BoxIter<T>> {
        let level = *self.level.lock();
        if !level.is_valid() {
            return self.compute_split(split, tc);
        }
        let bm = self.ctx.block_manager();
        let block = self.block_id(split);
        match bm.get_values::<T>(&block) {
            Ok(Some(values)) => return Ok(arc_iter(values)),
            Ok(None) => {}
            Err(e) => {
                // A damaged stored copy is not fatal: drop it and recompute from lineage.
                tracing::warn!(error = %e, "recomputing partition from lineage");
                bm.remove(&block);
            }
        }
        let values: Arc<Vec<T>> = Arc::new(self.compute_split(split, tc)?.into_vec());
        let level = if self.ctx.config().copy_persisted_to_peer && level.replication < 2 {
            StorageLevel {
                replication: 2,
                ..level
            }
        } else {
            level
        };
        bm.put_values(block, values.clone(), level)?;
        Ok(arc_iter(values))
    }
}

impl<T: Data> RddBase for RddNode<T> {
    fn id(&self) -> RddId {
        self.id
    }
    fn name(&self) -> &str {
        self.name
    }
    fn call_site(&self) -> &str {
        &self.call_site
    }
    fn num_partitions(&self) -> usize {
        self.op().num_partitions()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        self.op().dependencies()
    }
    fn storage_level(&self) -> StorageLevel {
        *self.level.lock()
    }
    fn partitioner(&self) -> Option<PartitionerInfo> {
        self.op().partitioner()
    }
    fn is_fully_cached(&self) -> bool {
        let level = *self.level.lock();
        level.is_valid()
            && (0..self.num_partitions())
                .all(|p| self.ctx.block_manager().contains(&self.block_id(p)))
    }
    fn needs_checkpoint(&self) -> bool {
        matches!(*self.checkpoint.lock(), CheckpointState::Marked)
    }
    fn do_checkpoint(&self) -> Result<()> {
        checkpoint::write(self)
    }
    fn is_checkpointed(&self) -> bool {
        matches!(*self.checkpoint.lock(), CheckpointState::Done { .. })
    }
    fn shippable(&self) -> bool {
        self.ship.is_some()
    }
    fn preferred_block(&self, split: usize) -> Option<BlockId> {
        RddNode::preferred_block(self, split)
    }
    fn compute_serialized(&self, split: usize, tc: &TaskContext) -> Result<Vec<u8>> {
        let values: Vec<T> = self.op().compute(split, tc)?.collect();
        Ok(spate_storage::serialize_block(
            &self.block_id(split),
            &values,
            spate_storage::Codec::None,
        )?)
    }
}

impl<T: Data> Drop for RddNode<T> {
    fn drop(&mut self) {
        if self.level.get_mut().is_valid() {
            self.remove_blocks();
        }
    }
}

impl<T: Data> std::fmt::Debug for Rdd<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}[{}] at {}",
            self.node.name, self.node.id, self.node.call_site
        )
    }
}
