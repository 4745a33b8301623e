//! `DStream<T>`: a handle to one operator of the graph, and the machinery every operator shares —
//! computing the RDD of a batch time once and remembering it, persistence, checkpoint intervals,
//! and forgetting old RDDs. The operations live in one file per family beside this one.

mod output;
pub use output::{batch_path, format_batch};
pub use reduced_window::WindowFilter;
pub(crate) use transformed::{transform_all, union_of};
mod pair;
mod reduced_window;
mod state;
mod transformed;
mod window;

use crate::graph::{DStreamBase, Env, Graph};
use crate::{Error, Result, Time};
use parking_lot::Mutex;
use spate_core::{Data, Rdd, StorageLevel};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How an input stream counts the records of a batch (`None`: not known).
pub(crate) type RecordsFn = Arc<dyn Fn(Time) -> Option<u64> + Send + Sync>;

type ComputeFn<T> = dyn Fn(&DStreamNode<T>, Time) -> Result<Option<Rdd<T>>> + Send + Sync;

/// How an operator computes: everything but the shared bookkeeping.
pub(crate) struct OpSpec<T: Data> {
    pub(crate) name: &'static str,
    pub(crate) parents: Vec<Arc<dyn DStreamBase>>,
    pub(crate) slide: Duration,
    /// How much longer than this operator its parents must remember (window width).
    pub(crate) parent_remember_extra: Duration,
    /// Whether the operator carries state across batches and must checkpoint.
    pub(crate) must_checkpoint: bool,
    pub(crate) level: StorageLevel,
    pub(crate) compute: Box<ComputeFn<T>>,
    pub(crate) records: Option<Box<dyn Fn(Time) -> Option<u64> + Send + Sync>>,
    /// Saves and restores an input's position for metadata checkpoints.
    pub(crate) state: Option<InputState>,
}

/// Operators an executor running the same job can rebuild for batch `t` and compute partitions
/// of: built only from their parents' RDDs, with no user closure that could see driver-only
/// state while building. Most read only batch `t`; the windows and the state also read RDDs of
/// earlier batches, which a task names as held by the driver (`DStreamBase::held_before`), so
/// the executor reads them instead of rebuilding them. Inputs with a saved position (files,
/// direct Kafka, receivers) are shippable too.
const BATCH_LOCAL: &[&str] = &[
    "window",
    "reduce_by_key_and_window",
    "update_state_by_key",
    "map",
    "flat_map",
    "filter",
    "map_partitions",
    "glom",
    "repartition",
    "count",
    "reduce",
    "count_by_value",
    "union",
    "map_values",
    "flat_map_values",
    "group_by_key",
    "reduce_by_key",
    "combine_by_key",
    "cogroup",
    "join",
    "left_outer_join",
    "right_outer_join",
    "full_outer_join",
];

/// How an input saves and restores its position (for driver recovery).
pub(crate) struct InputState {
    pub(crate) save: Box<dyn Fn(Time, Time) -> String + Send + Sync>,
    pub(crate) restore: Box<dyn Fn(&str) -> std::result::Result<(), String> + Send + Sync>,
    /// Called when a metadata checkpoint saved the position, with the oldest time it can need
    /// (not when a task carries the position to an executor): where an input frees what no
    /// recovery can need any more.
    pub(crate) checkpointed: Option<Box<dyn Fn(Time) + Send + Sync>>,
}

impl<T: Data> OpSpec<T> {
    /// An operator with one parent and its slide, computing with `compute`.
    pub(crate) fn derived<P: Data>(
        name: &'static str,
        parent: &DStream<P>,
        compute: impl Fn(&DStreamNode<T>, Time) -> Result<Option<Rdd<T>>> + Send + Sync + 'static,
    ) -> OpSpec<T> {
        OpSpec {
            name,
            parents: vec![parent.node.clone()],
            slide: parent.slide(),
            parent_remember_extra: Duration::ZERO,
            must_checkpoint: false,
            level: StorageLevel::NONE,
            compute: Box::new(compute),
            records: None,
            state: None,
        }
    }
}

/// One operator: its computation plus the RDDs it generated, by time.
pub(crate) struct DStreamNode<T: Data> {
    pub(crate) id: usize,
    name: &'static str,
    call_site: String,
    pub(crate) env: Arc<Env>,
    pub(crate) graph: Weak<Graph>,
    slide: Duration,
    parents: Vec<Arc<dyn DStreamBase>>,
    parent_remember_extra: Duration,
    must_checkpoint: bool,
    compute: Box<ComputeFn<T>>,
    /// An input's record count per batch: set when a receiver stream is made, or later by
    /// `StreamingContext::report_input_records` (hence the lock). Shared, so the job generator
    /// can call it without holding the lock.
    records: Mutex<Option<RecordsFn>>,
    state: Option<InputState>,
    /// Whether its RDD of a batch depends only on that batch (so an executor can rebuild it).
    batch_local: bool,
    generated: Mutex<BTreeMap<Time, Rdd<T>>>,
    /// Checkpoint directories of RDDs this operator checkpointed, with their partition counts,
    /// by time.
    checkpoints: Mutex<BTreeMap<Time, (PathBuf, usize)>>,
    level: Mutex<StorageLevel>,
    checkpoint_interval: Mutex<Option<Duration>>,
    remember: Mutex<Duration>,
}

/// A discretized stream: a sequence of RDDs of `T`, one per slide interval.
///
/// A cheap handle (an `Arc`) to one operator of its context's graph; operations take `&self` and
/// return new streams. Nothing runs until the context starts.
pub struct DStream<T: Data> {
    pub(crate) node: Arc<DStreamNode<T>>,
}

impl<T: Data> Clone for DStream<T> {
    fn clone(&self) -> Self {
        DStream {
            node: self.node.clone(),
        }
    }
}

/// A deterministic scope for the ids of the RDDs an operator makes for a batch time.
fn scope(id: usize, time: Time) -> u64 {
    ((id as u64) << 44) ^ time.ms()
}

impl<T: Data> DStream<T> {
    /// Adds an operator to the graph and returns its handle.
    #[track_caller]
    pub(crate) fn create(env: &Arc<Env>, graph: &Weak<Graph>, spec: OpSpec<T>) -> DStream<T> {
        let location = std::panic::Location::caller();
        let node = Arc::new(DStreamNode {
            id: env.next_id(),
            name: spec.name,
            call_site: format!("{}:{}", location.file(), location.line()),
            env: env.clone(),
            graph: graph.clone(),
            slide: spec.slide,
            parents: spec.parents,
            parent_remember_extra: spec.parent_remember_extra,
            must_checkpoint: spec.must_checkpoint,
            compute: spec.compute,
            records: Mutex::new(spec.records.map(Arc::from)),
            batch_local: BATCH_LOCAL.contains(&spec.name) || spec.state.is_some(),
            state: spec.state,
            generated: Mutex::new(BTreeMap::new()),
            checkpoints: Mutex::new(BTreeMap::new()),
            level: Mutex::new(spec.level),
            checkpoint_interval: Mutex::new(None),
            remember: Mutex::new(Duration::ZERO),
        });
        if let Some(g) = graph.upgrade() {
            if g.started.load(std::sync::atomic::Ordering::Acquire) {
                g.add_error(
                    &node.call_site,
                    node.name,
                    "operators cannot be added after the context has started",
                );
            }
            g.nodes.lock().push(node.clone());
            g.creation_log.lock().push((
                crate::job::current_op(),
                format!("{} at {}", node.name, node.call_site),
            ));
        }
        DStream { node }
    }

    /// A derived operator with one parent (`self`) and the same slide.
    #[track_caller]
    pub(crate) fn derive<U: Data>(
        &self,
        name: &'static str,
        compute: impl Fn(&DStreamNode<U>, Time) -> Result<Option<Rdd<U>>> + Send + Sync + 'static,
    ) -> DStream<U> {
        DStream::create(
            &self.node.env,
            &self.node.graph,
            OpSpec::derived(name, self, compute),
        )
    }

    /// Records a graph-building error against this operator (reported by `start()`).
    pub(crate) fn graph_error(&self, message: impl std::fmt::Display) {
        if let Some(g) = self.node.graph.upgrade() {
            g.add_error(&self.node.call_site, self.node.name, message);
        }
    }

    /// The operator's id: its position in graph-construction order, the same in every process.
    pub fn id(&self) -> usize {
        self.node.id
    }

    /// The interval at which this stream produces RDDs.
    pub fn slide(&self) -> Duration {
        self.node.slide
    }

    /// The core context.
    pub fn context(&self) -> &spate_core::Context {
        &self.node.env.ctx
    }

    /// Persists every RDD of this stream at `level`.
    pub fn persist(&self, level: StorageLevel) -> DStream<T> {
        *self.node.level.lock() = level;
        self.clone()
    }

    /// Persists every RDD at `MEMORY_ONLY_SER`, the DStream default (as in Spark).
    pub fn cache(&self) -> DStream<T> {
        self.persist(StorageLevel::MEMORY_ONLY_SER)
    }

    /// The storage level of this stream's RDDs.
    pub fn storage_level(&self) -> StorageLevel {
        *self.node.level.lock()
    }

    /// Checkpoints this stream's RDDs every `interval` (a multiple of the slide; checked at
    /// `start()`), which truncates their lineage. Persists the stream if it is not already.
    pub fn checkpoint(&self, interval: Duration) -> DStream<T> {
        *self.node.checkpoint_interval.lock() = Some(interval);
        if !self.storage_level().is_valid() {
            self.cache();
        }
        self.clone()
    }

    /// The checkpoint interval, once set (by the user, or by default at `start()`).
    pub fn checkpoint_interval(&self) -> Option<Duration> {
        *self.node.checkpoint_interval.lock()
    }

    /// How long this stream keeps its RDDs after their batch (set at `start()`).
    pub fn remember_duration(&self) -> Duration {
        *self.node.remember.lock()
    }

    /// The RDDs of every slide time in `[from, to]` that this stream has, computing any that are
    /// missing, in time order. Times are aligned down to the stream's slide; times at or before
    /// the zero time have no RDD. Fails before the context starts.
    pub fn slice(&self, from: Time, to: Time) -> Result<Vec<Rdd<T>>> {
        let zero = self
            .node
            .env
            .zero_time()
            .ok_or_else(|| Error::State("slice() needs a started context".into()))?;
        self.node.slice(zero, from, to)
    }

    /// The RDD of `time`, computing it if needed; `None` if the stream has none for that time.
    pub fn compute_at(&self, time: Time) -> Result<Option<Rdd<T>>> {
        self.node.get_or_compute(time)
    }
}

impl<T: Data> DStreamNode<T> {
    /// Whether the operator is an input (it has no parent stream).
    pub(crate) fn is_input(&self) -> bool {
        self.parents.is_empty()
    }

    /// Replaces the input's record count (see `StreamingContext::report_input_records`).
    pub(crate) fn set_records(&self, f: RecordsFn) {
        *self.records.lock() = Some(f);
    }

    fn is_time_valid(&self, time: Time) -> bool {
        match self.env.zero_time() {
            Some(zero) => {
                time > zero && (time.ms() - zero.ms()).is_multiple_of(self.slide.as_millis() as u64)
            }
            None => false,
        }
    }

    pub(crate) fn slice(&self, zero: Time, from: Time, to: Time) -> Result<Vec<Rdd<T>>> {
        let slide = self.slide.as_millis() as u64;
        let align = |t: Time| t.ms().saturating_sub(zero.ms()) / slide * slide + zero.ms();
        let mut out = Vec::new();
        // Like Spark, both ends are aligned down to the slide (relative to the zero time).
        let (mut t, end) = (align(from), align(to));
        while t <= end {
            if t > zero.ms()
                && let Some(r) = self.get_or_compute(Time::from_ms(t))?
            {
                out.push(r);
            }
            t += slide;
        }
        Ok(out)
    }

    /// The RDD of `time`: remembered, or computed now (in the id scope of this operator and time,
    /// so its RDDs get structural ids), then persisted and marked for checkpointing as configured.
    pub(crate) fn get_or_compute(&self, time: Time) -> Result<Option<Rdd<T>>> {
        if let Some(r) = self.generated.lock().get(&time) {
            return Ok(Some(r.clone()));
        }
        if !self.is_time_valid(time) {
            return Ok(None);
        }
        let ship = self.batch_local.then_some(spate_core::ShipName {
            op: self.id as u64,
            time_ms: time.ms(),
        });
        let ctx = &self.env.ctx;
        let rdd = ctx.with_ship_scope(ship, || {
            ctx.with_id_scope(scope(self.id, time), || (self.compute)(self, time))
        })?;
        if let Some(rdd) = &rdd {
            let level = *self.level.lock();
            if level.is_valid() {
                rdd.persist(level);
            }
            let zero = self.env.zero_time().unwrap_or_default();
            if let Some(iv) = *self.checkpoint_interval.lock()
                && (time.ms() - zero.ms()).is_multiple_of((iv.as_millis() as u64).max(1))
            {
                rdd.checkpoint()?;
            }
            self.generated
                .lock()
                .entry(time)
                .or_insert_with(|| rdd.clone());
        }
        Ok(rdd)
    }
}

impl<T: Data> DStreamBase for DStreamNode<T> {
    fn id(&self) -> usize {
        self.id
    }
    fn name(&self) -> &str {
        self.name
    }
    fn call_site(&self) -> &str {
        &self.call_site
    }
    fn slide(&self) -> Duration {
        self.slide
    }
    fn parents(&self) -> Vec<Arc<dyn DStreamBase>> {
        self.parents.clone()
    }
    fn parent_remember_extra(&self) -> Duration {
        self.parent_remember_extra
    }
    fn must_checkpoint(&self) -> bool {
        self.must_checkpoint
    }
    fn checkpoint_interval(&self) -> Option<Duration> {
        *self.checkpoint_interval.lock()
    }
    fn set_checkpoint_interval(&self, d: Duration) {
        *self.checkpoint_interval.lock() = Some(d);
    }
    fn remember(&self) -> Duration {
        *self.remember.lock()
    }
    fn set_remember(&self, d: Duration) {
        *self.remember.lock() = d;
    }
    fn generate(&self, time: Time) -> Result<()> {
        self.get_or_compute(time).map(|_| ())
    }
    fn input_records(&self, time: Time) -> Option<u64> {
        let f = self.records.lock().clone();
        f.and_then(|f| f(time))
    }
    fn clear_metadata(&self, time: Time) -> Vec<PathBuf> {
        let cutoff = time.minus(self.remember());
        let old: Vec<(Time, Rdd<T>)> = {
            let mut generated = self.generated.lock();
            let keep = generated.split_off(&Time::from_ms(cutoff.ms() + 1));
            std::mem::replace(&mut *generated, keep)
                .into_iter()
                .collect()
        };
        let mut checkpoints = self.checkpoints.lock();
        for (t, rdd) in &old {
            if let Some(dir) = rdd.checkpoint_file() {
                checkpoints.insert(*t, (dir, rdd.num_partitions()));
            }
            rdd.unpersist();
        }
        for (t, rdd) in self.generated.lock().iter() {
            if let Some(dir) = rdd.checkpoint_file() {
                checkpoints.insert(*t, (dir, rdd.num_partitions()));
            }
        }
        // An RDD's lineage reaches back at most to this stream's latest checkpoint at or before
        // it. Keep, for the oldest remembered RDD, that checkpoint and everything newer; delete
        // older checkpoint files.
        let oldest = self.generated.lock().keys().next().copied().unwrap_or(time);
        let mut unneeded = Vec::new();
        if let Some(keep_from) = checkpoints.range(..=oldest).next_back().map(|(t, _)| *t) {
            let older: Vec<Time> = checkpoints.range(..keep_from).map(|(t, _)| *t).collect();
            unneeded.extend(
                older
                    .into_iter()
                    .filter_map(|t| checkpoints.remove(&t).map(|(dir, _)| dir)),
            );
        }
        drop(old);
        unneeded
    }
    fn generated_times(&self) -> Vec<Time> {
        self.generated.lock().keys().copied().collect()
    }
    fn rdd_checkpoints(&self) -> Vec<(u64, PathBuf, usize)> {
        let mut checkpoints = self.checkpoints.lock();
        for (t, rdd) in self.generated.lock().iter() {
            if let Some(dir) = rdd.checkpoint_file() {
                checkpoints.insert(*t, (dir, rdd.num_partitions()));
            }
        }
        checkpoints
            .iter()
            .map(|(t, (d, n))| (t.ms(), d.clone(), *n))
            .collect()
    }
    fn task_input_state(&self, time: Time) -> Option<String> {
        let before = time.minus(self.slide);
        self.state.as_ref().map(|s| (s.save)(before, before))
    }
    fn restore_input(&self, saved: &str) -> Result<()> {
        match &self.state {
            Some(s) => (s.restore)(saved).map_err(|e| {
                Error::State(format!(
                    "{} at {}: cannot restore its input position: {e}",
                    self.name, self.call_site
                ))
            }),
            None => Ok(()),
        }
    }
    fn rdd_at(&self, time: Time) -> Result<Option<Arc<dyn spate_core::RddBase>>> {
        Ok(self.get_or_compute(time)?.map(|r| r.as_base()))
    }
    fn forget_before(&self, time: Time) {
        self.generated.lock().retain(|t, _| *t >= time);
    }
    fn held_before(&self, time: Time) -> Vec<spate_core::cluster::HeldRdd> {
        self.generated
            .lock()
            .range(..time)
            .map(|(t, rdd)| spate_core::cluster::HeldRdd {
                op: self.id as u64,
                time_ms: t.ms(),
                rdd: rdd.id(),
                partitions: rdd.num_partitions() as u32,
                partitioner: rdd.partitioner(),
            })
            .collect()
    }
    fn hold(&self, held: &spate_core::cluster::HeldRdd) {
        // An RDD this executor built itself for that batch is replaced too: rebuilding its
        // partitions here would need shuffle outputs of that batch, long gone.
        let rdd = self.env.ctx.held_rdd::<T>(
            held.rdd,
            held.partitions as usize,
            held.partitioner.clone(),
        );
        self.generated
            .lock()
            .insert(Time::from_ms(held.time_ms), rdd);
    }
    fn input_state(&self, completed: Time) -> Option<String> {
        let from = completed.minus(self.remember());
        let s = self.state.as_ref()?;
        Some((s.save)(completed, from))
    }
    fn checkpoint_written(&self, completed: Time) {
        let from = completed.minus(self.remember());
        if let Some(done) = self.state.as_ref().and_then(|s| s.checkpointed.as_ref()) {
            done(from);
        }
    }
    fn restore(&self, state: &crate::checkpoint::OperatorState) -> Result<()> {
        for (t, dir) in &state.rdds {
            // Rebuildable elsewhere like the RDD it stands for, and kept like it: the first
            // batch after recovery reads it here, and executors read its partitions from here
            // after that (as `HeldRdd`s).
            let ctx = &self.env.ctx;
            let ship = self.batch_local.then_some(spate_core::ShipName {
                op: self.id as u64,
                time_ms: *t,
            });
            // The partition count the checkpoint recorded, so that a missing last file is
            // found too; a checkpoint from before it was recorded is checked for gaps only.
            let partitions = state
                .rdd_partitions
                .iter()
                .find(|(pt, _)| pt == t)
                .map(|(_, n)| *n);
            let rdd = ctx
                .with_ship_scope(ship, || match partitions {
                    Some(n) => ctx.read_checkpoint::<T>(dir, n),
                    None => ctx.object_file::<T>(dir),
                })
                .map_err(|source| Error::CheckpointRdd {
                    operator: format!("{} at {}", self.name, self.call_site),
                    time_ms: *t,
                    source,
                })?;
            let level = *self.level.lock();
            if level.is_valid() {
                rdd.persist(level);
            }
            let n = rdd.num_partitions();
            self.generated.lock().insert(Time::from_ms(*t), rdd);
            self.checkpoints
                .lock()
                .insert(Time::from_ms(*t), (dir.clone(), n));
        }
        if let (Some(saved), Some(s)) = (&state.input, &self.state) {
            (s.restore)(saved).map_err(|e| {
                Error::State(format!(
                    "{} at {}: cannot restore its input position: {e}",
                    self.name, self.call_site
                ))
            })?;
        }
        Ok(())
    }
}

impl<T: Data> std::fmt::Debug for DStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}#{} at {}",
            self.node.name, self.node.id, self.node.call_site
        )
    }
}
