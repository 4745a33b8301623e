//! `StreamingContext`: owns the DStream graph, the clock, the batch timer (job generator) and the
//! job executor, and the listeners.
//!
//! Two threads run a started context. The *generator* waits on the clock for each batch time,
//! computes the batch's RDDs (lazily: no data moves yet) and queues the batch's jobs; the
//! *executor* runs queued batches one after another, in order, reports a [`BatchInfo`] and then
//! lets every operator forget RDDs it no longer needs.

use crate::clock::Clock;
use crate::dstream::DStream;
use crate::dstream::OpSpec;
use crate::graph::{Env, Graph, Job};
use crate::listener::{BatchInfo, StreamingListener};
use crate::receiver::{Receiver, ReceiverConfig, ReceiverInfo, Runner};
use crate::time::millis;
use crate::{Error, Result, Time};
use parking_lot::{Condvar, Mutex};
use spate_core::{Context, Data, Rdd};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The life-cycle state of a [`StreamingContext`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Made; operators may be added.
    Initialized,
    /// Running batches.
    Started,
    /// `stop()` is in progress.
    Stopping,
    /// Stopped; it cannot be restarted.
    Stopped,
}

struct Progress {
    status: Status,
    last_completed: Option<Time>,
    /// The latest batch whose metadata checkpoint the writer has written (or failed to).
    checkpointed: Option<Time>,
    completed: Vec<BatchInfo>,
}

/// A metadata checkpoint for the writer thread (see `write_checkpoints`).
struct CheckpointJob {
    dir: PathBuf,
    time: Time,
    meta: crate::checkpoint::Metadata,
    /// The operators, told once it is written (inputs then drop what only older checkpoints
    /// needed).
    nodes: Vec<Arc<dyn crate::graph::DStreamBase>>,
    /// RDD checkpoint directories it no longer lists: deleted once it is written.
    unneeded: Vec<PathBuf>,
}

/// Metadata checkpoints waiting for the writer, at most (then a completing batch waits; Spark's
/// writer queue holds 1,000 too). With 16, a 170 ms fsync still held 5 ms batches up.
const CHECKPOINT_QUEUE: usize = 1000;

/// Batch time between two metadata checkpoints written, at least (see `write_checkpoints`):
/// batches of 100 ms and more are each checkpointed, shorter ones one in a few.
const CHECKPOINT_SPACING_MS: u64 = 100;

/// How long a checkpoint waits for a newer one to supersede it before it is written anyway.
const CHECKPOINT_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

pub(crate) struct Inner {
    pub(crate) env: Arc<Env>,
    pub(crate) graph: Arc<Graph>,
    clock: Mutex<Clock>,
    remember: Mutex<Option<Duration>>,
    listeners: Mutex<Vec<Arc<dyn StreamingListener>>>,
    progress: Mutex<Progress>,
    changed: Condvar,
    stop_generating: AtomicBool,
    stop_executing: AtomicBool,
    /// With a graceful stop: generate (without waiting for the clock) up to this batch time.
    drain_until: std::sync::atomic::AtomicU64,
    last_generated: std::sync::atomic::AtomicU64,
    /// Generated batches that have not completed yet (queued or running).
    in_flight: std::sync::atomic::AtomicUsize,
    /// The most batches that may be generated and not completed (back-pressure; 2).
    max_pending: std::sync::atomic::AtomicUsize,
    receiver_config: Mutex<ReceiverConfig>,
    /// Set by a recovery: (zero time, last completed batch) of the checkpoint resumed from.
    recovered: Mutex<Option<(Time, Time)>>,
    /// Application settings (`--conf key=value` on a job's command line).
    conf: Mutex<std::collections::HashMap<String, String>>,
    /// Settings the job found invalid ([`StreamingContext::invalid_setting`]): `start()` refuses
    /// to run with any.
    invalid_settings: Mutex<Vec<String>>,
    /// Positional command-line arguments of a job.
    args: Mutex<Vec<String>>,
    /// Receiver states as they were at `stop()` (the graph is cleared then).
    final_receivers: Mutex<Vec<ReceiverInfo>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// The entry point of a streaming program: create input streams from it, transform them, register
/// output operations, then [`start`](Self::start) it.
///
/// Cloning gives another handle to the same context.
#[derive(Clone)]
pub struct StreamingContext {
    inner: Arc<Inner>,
}

/// How many batches may be generated and not yet completed, by default: one running, one waiting.
pub const DEFAULT_MAX_PENDING_BATCHES: usize = 2;

/// How many completed `BatchInfo`s the context keeps for [`StreamingContext::completed_batches`].
const KEEP_BATCHES: usize = 1000;

struct JobSet {
    info: BatchInfo,
    jobs: Vec<Job>,
}

impl StreamingContext {
    /// A context on `master` (see [`spate_core::Master::parse`]) cutting streams into batches of
    /// `batch_duration` (positive, whole milliseconds).
    pub fn new(master: &str, batch_duration: Duration) -> Result<StreamingContext> {
        StreamingContext::with_context(Context::new(master)?, batch_duration)
    }

    /// A context on an existing core context.
    pub fn with_context(ctx: Context, batch_duration: Duration) -> Result<StreamingContext> {
        millis(batch_duration, "batch duration")?;
        let ssc = StreamingContext {
            inner: Arc::new(Inner {
                env: Arc::new(Env::new(ctx, batch_duration)),
                graph: Arc::new(Graph::default()),
                clock: Mutex::new(Clock::System),
                remember: Mutex::new(None),
                listeners: Mutex::new(Vec::new()),
                progress: Mutex::new(Progress {
                    status: Status::Initialized,
                    last_completed: None,
                    checkpointed: None,
                    completed: Vec::new(),
                }),
                changed: Condvar::new(),
                stop_generating: AtomicBool::new(false),
                stop_executing: AtomicBool::new(false),
                drain_until: std::sync::atomic::AtomicU64::new(0),
                last_generated: std::sync::atomic::AtomicU64::new(0),
                in_flight: std::sync::atomic::AtomicUsize::new(0),
                max_pending: std::sync::atomic::AtomicUsize::new(DEFAULT_MAX_PENDING_BATCHES),
                receiver_config: Mutex::new(ReceiverConfig::default()),
                final_receivers: Mutex::new(Vec::new()),
                recovered: Mutex::new(None),
                conf: Mutex::new(std::collections::HashMap::new()),
                invalid_settings: Mutex::new(Vec::new()),
                args: Mutex::new(Vec::new()),
                threads: Mutex::new(Vec::new()),
            }),
        };
        // On a cluster, batch-local partitions are computed by the executors.
        if let Some(cluster) = ssc.inner.env.ctx.cluster() {
            let tasks = crate::cluster::DriverTasks {
                inner: Arc::downgrade(&ssc.inner),
                inputs: Mutex::new(None),
            };
            ssc.inner.env.ctx.set_remote(
                cluster.shipper(move |name, rdd, partition| tasks.task(name, rdd, partition)),
            );
        }
        Ok(ssc)
    }

    /// The core context that runs the batches' jobs.
    pub fn context(&self) -> &Context {
        &self.inner.env.ctx
    }

    /// The batch duration.
    pub fn batch_duration(&self) -> Duration {
        self.inner.env.batch
    }

    /// Uses `clock` for batch times (before `start()`): the system clock by default, a
    /// [`ManualClock`](crate::ManualClock) in tests.
    pub fn set_clock(&self, clock: Clock) -> Result<()> {
        self.require_initialized("set_clock")?;
        *self.inner.clock.lock() = clock;
        Ok(())
    }

    /// The clock batch times are read from.
    pub fn clock(&self) -> Clock {
        self.inner.clock.lock().clone()
    }

    /// Enables checkpointing under `dir`: stateful streams checkpoint their RDDs there (in
    /// `dir/rdds`). Required by `update_state_by_key` and inverse-reduced windows.
    pub fn checkpoint(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            action: "creating",
            path: dir.into(),
            source,
        })?;
        self.context().set_checkpoint_dir(dir.join("rdds"))?;
        *self.inner.env.checkpoint_dir.lock() = Some(dir.to_path_buf());
        Ok(())
    }

    /// Makes every stream keep its RDDs for at least `duration` after their batch (for queries
    /// of older data with `slice`).
    pub fn remember(&self, duration: Duration) {
        *self.inner.remember.lock() = Some(duration);
    }

    /// Adds a listener for batch events.
    pub fn add_streaming_listener(&self, listener: Arc<dyn StreamingListener>) {
        self.inner.listeners.lock().push(listener);
    }

    fn require_initialized(&self, what: &str) -> Result<()> {
        match self.inner.progress.lock().status {
            Status::Initialized => Ok(()),
            s => Err(Error::State(format!(
                "{what} must be called before start() (the context is {s:?})"
            ))),
        }
    }

    /// An input stream with the given computation, registered in the graph.
    #[track_caller]
    pub(crate) fn input_stream<T: Data>(
        &self,
        name: &'static str,
        compute: impl Fn(Time) -> Result<Option<Rdd<T>>> + Send + Sync + 'static,
        records: Option<Box<dyn Fn(Time) -> Option<u64> + Send + Sync>>,
    ) -> DStream<T> {
        self.input_stream_with_state(name, compute, records, None)
    }

    #[track_caller]
    pub(crate) fn input_stream_with_state<T: Data>(
        &self,
        name: &'static str,
        compute: impl Fn(Time) -> Result<Option<Rdd<T>>> + Send + Sync + 'static,
        records: Option<Box<dyn Fn(Time) -> Option<u64> + Send + Sync>>,
        state: Option<crate::dstream::InputState>,
    ) -> DStream<T> {
        let spec = OpSpec {
            name,
            parents: Vec::new(),
            slide: self.inner.env.batch,
            parent_remember_extra: Duration::ZERO,
            must_checkpoint: false,
            level: spate_core::StorageLevel::NONE,
            compute: Box::new(move |_, t| compute(t)),
            records,
            state,
        };
        DStream::create(&self.inner.env, &Arc::downgrade(&self.inner.graph), spec)
    }

    /// [`custom_input_stream`](Self::custom_input_stream) for a source with a position that must
    /// survive a driver restart (files taken, offsets).
    ///
    /// `save(completed, from)` renders the position for the metadata checkpoint written after the
    /// batch of `completed`; `restore` reads it back in [`get_or_create`](Self::get_or_create).
    /// After a restore `compute` is called again for every batch after `completed`, and, when a
    /// window needs them, for the remembered batches after `from` (`completed` minus the
    /// stream's remember duration). The job generator may already have planned batches after
    /// `completed` when `save` runs: for a recovered run to equal an uninterrupted one, save the
    /// plans (file names, offset ranges) of every batch after `from` and replay them.
    #[track_caller]
    pub fn custom_input_stream_with_state<T: Data>(
        &self,
        name: &'static str,
        compute: impl Fn(&Context, Time) -> Result<Option<Rdd<T>>> + Send + Sync + 'static,
        save: impl Fn(Time, Time) -> String + Send + Sync + 'static,
        restore: impl Fn(&str) -> std::result::Result<(), String> + Send + Sync + 'static,
    ) -> DStream<T> {
        let ctx = self.context().clone();
        let state = crate::dstream::InputState {
            save: Box::new(save),
            restore: Box::new(restore),
            checkpointed: None,
        };
        let stream =
            self.input_stream_with_state(name, move |t| compute(&ctx, t), None, Some(state));
        self.inner
            .graph
            .eager_inputs
            .lock()
            .push(stream.node.clone());
        stream
    }

    /// An input stream computed by `compute` at every batch time (for sources that need no
    /// receiver, such as a directory of files or a Kafka topic read directly). `compute` runs on
    /// the job generator thread and should only decide *what* the batch holds (file names,
    /// offsets); reading belongs in the RDD's tasks.
    #[track_caller]
    pub fn custom_input_stream<T: Data>(
        &self,
        name: &'static str,
        compute: impl Fn(&Context, Time) -> Result<Option<Rdd<T>>> + Send + Sync + 'static,
    ) -> DStream<T> {
        let ctx = self.context().clone();
        let stream = self.input_stream(name, move |t| compute(&ctx, t), None);
        self.inner
            .graph
            .eager_inputs
            .lock()
            .push(stream.node.clone());
        stream
    }

    /// Sets an application setting (what `--conf key=value` does on a job's command line).
    pub fn set_conf(&self, key: impl Into<String>, value: impl Into<String>) {
        self.inner.conf.lock().insert(key.into(), value.into());
    }

    /// An application setting.
    pub fn conf(&self, key: &str) -> Option<String> {
        self.inner.conf.lock().get(key).cloned()
    }

    /// An application setting, or `default`.
    pub fn conf_or(&self, key: &str, default: &str) -> String {
        self.conf(key).unwrap_or_else(|| default.to_string())
    }

    /// An application setting parsed as a `T`, or `default` when it is not set. A value that
    /// does not parse is not replaced by the default: it is reported by `start()`, which refuses
    /// to run (with the key, the value and the parser's message), and `default` is returned
    /// only so that the job can finish building its graph.
    ///
    /// ```
    /// # use spate_streaming::StreamingContext;
    /// # use std::time::Duration;
    /// let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
    /// ssc.set_conf("rounds", "three");
    /// let rounds: u32 = ssc.conf_parsed("rounds", 1);
    /// assert_eq!(rounds, 1);
    /// let e = ssc.start().unwrap_err().to_string();
    /// assert!(e.contains("rounds=three"), "{e}");
    /// ```
    pub fn conf_parsed<T>(&self, key: &str, default: T) -> T
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        self.conf_parsed_opt(key).unwrap_or(default)
    }

    /// An application setting parsed as a `T`, or `None` when it is not set (or does not parse,
    /// which `start()` reports as [`conf_parsed`](Self::conf_parsed) says).
    pub fn conf_parsed_opt<T>(&self, key: &str) -> Option<T>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        let v = self.conf(key)?;
        match v.trim().parse() {
            Ok(x) => Some(x),
            Err(e) => {
                self.invalid_setting(key, &v, &e.to_string());
                None
            }
        }
    }

    /// Records that the setting `key` has a value the job cannot use, and why (say what would
    /// be valid): `start()` then fails with every such setting listed, instead of the job running
    /// with something the user did not ask for.
    pub fn invalid_setting(&self, key: &str, value: &str, why: &str) {
        self.inner
            .invalid_settings
            .lock()
            .push(format!("--conf {key}={value}: {why}"));
    }

    /// Sets the positional arguments a job sees (what follows the options on its command line).
    pub fn set_args(&self, args: Vec<String>) {
        *self.inner.args.lock() = args;
    }

    /// The job's positional command-line arguments.
    pub fn args(&self) -> Vec<String> {
        self.inner.args.lock().clone()
    }

    /// Whether a checkpoint directory is set.
    pub fn has_checkpoint_dir(&self) -> bool {
        self.inner.env.checkpoint_dir.lock().is_some()
    }

    /// The checkpoint directory, if one is set.
    pub(crate) fn checkpoint_path(&self) -> Option<std::path::PathBuf> {
        self.inner.env.checkpoint_dir.lock().clone()
    }

    /// Every setting given with `set_conf` (a job's `--conf KEY=VALUE`), by key.
    pub(crate) fn conf_entries(&self) -> std::collections::BTreeMap<String, String> {
        self.inner
            .conf
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Every operator and output built so far, in order, with its `#[streaming_job]` static id.
    /// The graph of this context's operators.
    pub(crate) fn graph(&self) -> &Graph {
        &self.inner.graph
    }

    pub(crate) fn creation_log(&self) -> Vec<(Option<usize>, String)> {
        self.inner.graph.creation_log.lock().clone()
    }

    pub(crate) fn set_fingerprint(&self, fp: u64) {
        *self.inner.graph.fingerprint.lock() = Some(fp);
    }

    /// This context's graph as an executor's task runner (the executor role of the entry point).
    pub(crate) fn executor_graph(&self) -> Arc<dyn spate_core::cluster::TaskRunner> {
        for r in self.inner.graph.receivers.lock().iter() {
            r.mark_executor();
        }
        Arc::new(crate::cluster::ExecutorGraph {
            inner: self.inner.clone(),
            building: Mutex::new(None),
        })
    }

    /// Records the `#[streaming_job]` graph this context runs (for the monitoring page).
    pub(crate) fn set_job_graph(&self, graph: crate::job::JobGraph) {
        *self.inner.graph.job_graph.lock() = Some(graph);
    }

    /// The `#[streaming_job]` graph this context runs, once built.
    pub fn job_graph(&self) -> Option<crate::job::JobGraph> {
        *self.inner.graph.job_graph.lock()
    }

    /// The operators the code built (ids in construction order, then the outputs), for the
    /// monitoring page of a job without `#[streaming_job]`.
    pub(crate) fn operator_views(&self) -> Vec<crate::ui::OperatorView> {
        let nodes = self.inner.graph.nodes.lock().clone();
        let mut ops: Vec<crate::ui::OperatorView> = nodes
            .iter()
            .map(|n| crate::ui::OperatorView {
                id: n.id(),
                name: n.name().to_string(),
                kind: None,
                parents: n.parents().iter().map(|p| p.id()).collect(),
                window_ms: None,
                slide_ms: Some(n.slide().as_millis() as u64),
                location: n.call_site().to_string(),
            })
            .collect();
        let next = ops.iter().map(|o| o.id + 1).max().unwrap_or(0);
        for (i, o) in self.inner.graph.outputs.lock().iter().enumerate() {
            ops.push(crate::ui::OperatorView {
                id: next + i,
                name: o.name.to_string(),
                kind: Some("output".into()),
                parents: vec![o.parent],
                window_ms: None,
                slide_ms: None,
                location: o.call_site.to_string(),
            });
        }
        ops
    }

    /// The fingerprint of the `#[streaming_job]` graph this context runs, once built.
    pub fn graph_fingerprint(&self) -> Option<u64> {
        *self.inner.graph.fingerprint.lock()
    }

    /// Adds a check that `start()` runs for `stream` (a source's preconditions, such as a
    /// directory that must exist); an error is reported with the stream's other graph problems.
    pub fn add_start_check<T: Data>(
        &self,
        stream: &DStream<T>,
        check: impl Fn() -> std::result::Result<(), String> + Send + Sync + 'static,
    ) {
        self.inner
            .graph
            .start_checks
            .lock()
            .push((format!("{:?}", stream), Box::new(check)));
    }

    /// How many batches may be generated and not yet completed (default
    /// [`DEFAULT_MAX_PENDING_BATCHES`]). When processing is slower than the input, the job
    /// generator waits at this bound instead of queueing batch after batch (each holding its
    /// received blocks, as Spark does until it runs out of memory); received records then stay
    /// with their receivers, whose bounds ([`ReceiverConfig::queue_capacity`],
    /// [`ReceiverConfig::memory_fraction`]) make `store` wait, which stops reading the source (a socket's sender is slowed by TCP flow control; a
    /// Kafka receiver fetches later). Memory stays flat and nothing is dropped; batches are
    /// generated late (their scheduling delay grows up to what the receivers' queues hold) and
    /// every batch time still comes, in order. Fails when `n` is 0.
    pub fn set_max_pending_batches(&self, n: usize) -> Result<()> {
        if n == 0 {
            return Err(Error::State(
                "max pending batches must be at least 1 (the batch being processed)".into(),
            ));
        }
        self.inner.max_pending.store(n, Ordering::Release);
        Ok(())
    }

    /// Batches generated and not yet completed (queued or running); at
    /// [`set_max_pending_batches`](Self::set_max_pending_batches) the job generator waits.
    pub fn pending_batches(&self) -> usize {
        self.inner.in_flight.load(Ordering::Acquire)
    }

    /// Settings for receiver streams made from now on (block interval, queue bound, rate limit,
    /// memory fraction, write-ahead log, restart backoff). A job run by `#[streaming_job]` starts
    /// with those its command line gives (`--conf spate.streaming.blockInterval=…` and the
    /// others `--help` lists); to change one of them and keep the rest, start from
    /// [`receiver_config`](Self::receiver_config):
    /// `ReceiverConfig { write_ahead_log: true, ..ssc.receiver_config() }`.
    pub fn set_receiver_config(&self, config: ReceiverConfig) {
        *self.inner.receiver_config.lock() = config;
    }

    /// The settings receiver streams made from now on get (see
    /// [`set_receiver_config`](Self::set_receiver_config)).
    pub fn receiver_config(&self) -> ReceiverConfig {
        self.inner.receiver_config.lock().clone()
    }

    /// A stream of what `receiver` stores, kept at `MEMORY_ONLY_SER_2` (the guide's default for
    /// received data; one copy in local mode).
    #[track_caller]
    pub fn receiver_stream<T: Data>(&self, receiver: impl Receiver<T>) -> DStream<T> {
        self.receiver_stream_with_level(receiver, spate_core::StorageLevel::MEMORY_ONLY_SER_2)
    }

    /// [`receiver_stream`](Self::receiver_stream) at a chosen storage level.
    #[track_caller]
    pub fn receiver_stream_with_level<T: Data>(
        &self,
        receiver: impl Receiver<T>,
        level: spate_core::StorageLevel,
    ) -> DStream<T> {
        let id_hint = Arc::new(std::sync::OnceLock::<Arc<Runner<T>>>::new());
        let (runner_cell, counts_cell) = (
            id_hint.clone(),
            Arc::new(Mutex::new(std::collections::BTreeMap::<Time, u64>::new())),
        );
        let counts = counts_cell.clone();
        let ctx = self.context().clone();
        let batch = self.inner.env.batch;
        let (saver, cleaner, restorer) = (id_hint.clone(), id_hint.clone(), id_hint.clone());
        // With the write-ahead log on, the metadata checkpoint lists the blocks of the batches a
        // recovery may re-run (the log holds them; the list checks it), and each checkpoint lets
        // the log delete what no recovery can need (the remembered batches of the three
        // checkpoints kept).
        let state = crate::dstream::InputState {
            save: Box::new(move |_completed, from| {
                saver
                    .get()
                    .map_or_else(String::new, |r| r.save_allocations(from))
            }),
            restore: Box::new(move |text| {
                restorer
                    .get()
                    .map_or(Ok(()), |r| r.restore_allocations(text))
            }),
            checkpointed: Some(Box::new(move |from| {
                if let Some(r) = cleaner.get() {
                    r.clean_log(Time::from_ms(
                        from.ms().saturating_sub(3 * batch.as_millis() as u64),
                    ));
                }
            })),
        };
        let stream = self.input_stream_with_state(
            "receiver_stream",
            move |t| {
                let runner = runner_cell
                    .get()
                    .expect("the runner is set when the stream is made");
                let blocks = runner.batch_blocks(t, batch)?;
                let records: u64 = blocks.iter().map(|b| b.records).sum();
                let mut c = counts_cell.lock();
                c.insert(t, records);
                while c.len() > 64 {
                    c.pop_first();
                }
                drop(c);
                // The driver's RDD owns the blocks; an executor's only reads them.
                Ok(Some(ctx.block_rdd(
                    blocks.into_iter().map(|b| b.id).collect(),
                    runner.owns_blocks(),
                )))
            },
            Some(Box::new(move |t| counts.lock().get(&t).copied())),
            Some(state),
        );
        let config = self.inner.receiver_config.lock().clone();
        let runner = Arc::new(Runner::new(stream.id(), Box::new(receiver), level, config));
        let _ = id_hint.set(runner.clone());
        self.inner.graph.receivers.lock().push(runner);
        self.inner
            .graph
            .eager_inputs
            .lock()
            .push(stream.node.clone());
        stream
    }

    /// The state of every receiver.
    pub fn receiver_info(&self) -> Vec<ReceiverInfo> {
        let receivers = self.inner.graph.receivers.lock();
        if receivers.is_empty() {
            return self.inner.final_receivers.lock().clone();
        }
        receivers.iter().map(|r| r.info()).collect()
    }

    /// A stream fed from a queue of RDDs: each batch takes the next RDD (`one_at_a_time`) or all
    /// queued RDDs (as their union); an empty queue gives an empty batch.
    #[track_caller]
    pub fn queue_stream<T: Data>(
        &self,
        queue: Arc<std::sync::Mutex<VecDeque<Rdd<T>>>>,
        one_at_a_time: bool,
    ) -> DStream<T> {
        self.queue_stream_with_default(queue, one_at_a_time, None)
    }

    /// [`queue_stream`](Self::queue_stream) that yields `default` when the queue is empty.
    #[track_caller]
    pub fn queue_stream_with_default<T: Data>(
        &self,
        queue: Arc<std::sync::Mutex<VecDeque<Rdd<T>>>>,
        one_at_a_time: bool,
        default: Option<Rdd<T>>,
    ) -> DStream<T> {
        let ctx = self.context().clone();
        self.input_stream(
            "queue_stream",
            move |_| {
                let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                let taken: Vec<Rdd<T>> = if one_at_a_time {
                    q.pop_front().into_iter().collect()
                } else {
                    q.drain(..).collect()
                };
                drop(q);
                Ok(Some(match taken.len() {
                    0 => default.clone().unwrap_or_else(|| ctx.empty_rdd()),
                    1 => taken.into_iter().next().expect("one"),
                    _ => ctx.union(&taken),
                }))
            },
            None,
        )
    }

    /// The union of several streams of the same slide.
    #[track_caller]
    pub fn union<T: Data>(&self, streams: &[DStream<T>]) -> Result<DStream<T>> {
        if streams.is_empty() {
            return Err(Error::State("union needs at least one stream".into()));
        }
        Ok(crate::dstream::union_of(streams))
    }

    /// A stream computed from the RDDs of several streams (same slide) at each time.
    #[track_caller]
    pub fn transform<T: Data, U: Data>(
        &self,
        streams: &[DStream<T>],
        f: impl Fn(&[Rdd<T>], Time) -> Rdd<U> + Send + Sync + 'static,
    ) -> Result<DStream<U>> {
        if streams.is_empty() {
            return Err(Error::State("transform needs at least one stream".into()));
        }
        Ok(crate::dstream::transform_all("transform", streams, f))
    }

    /// Resumes from the newest usable metadata checkpoint in `dir`, or starts afresh: `create`
    /// makes the context and builds its graph (the same code either way: graphs are rebuilt, not
    /// deserialized). With a checkpoint, the rebuilt graph must be the one that wrote it (an error
    /// names the operator that was added, removed or changed), stateful operators get their
    /// checkpointed RDDs back, inputs their positions, and `start()` first re-runs every batch
    /// after the last completed one. A damaged or foreign checkpoint file is reported by name and
    /// an older one is tried.
    pub fn get_or_create(
        dir: impl AsRef<Path>,
        create: impl FnOnce() -> Result<StreamingContext>,
    ) -> Result<StreamingContext> {
        let dir = dir.as_ref();
        let saved = crate::checkpoint::read_latest(dir)?;
        let ssc = create()?;
        if !ssc.has_checkpoint_dir() {
            ssc.checkpoint(dir)?;
        }
        if let Some(meta) = saved {
            ssc.recover(dir, meta)?;
        }
        Ok(ssc)
    }

    fn recover(&self, dir: &Path, meta: crate::checkpoint::Metadata) -> Result<()> {
        self.require_initialized("recovery")?;
        let inner = &self.inner;
        let batch = inner.env.batch.as_millis() as u64;
        let refuse = |why: String| {
            Error::State(format!(
                "cannot resume from the checkpoint in {}: {why}; restore the code that wrote it, or start from an empty checkpoint directory",
                dir.display()
            ))
        };
        if meta.batch_ms != batch {
            return Err(refuse(format!(
                "it was written with {} ms batches, this context has {batch} ms",
                meta.batch_ms
            )));
        }
        let rebuilt: Vec<String> = operator_states(inner, None)
            .into_iter()
            .map(|o| o.name)
            .collect();
        crate::checkpoint::compare_graphs(&meta.operators, &rebuilt).map_err(refuse)?;
        if let (Some(a), Some(b)) = (meta.fingerprint, *inner.graph.fingerprint.lock())
            && a != b
        {
            return Err(refuse(format!(
                "the #[streaming_job] graph fingerprint was {a:016x} and is now {b:016x}"
            )));
        }
        let nodes = inner.graph.nodes.lock().clone();
        for (node, state) in nodes.iter().zip(&meta.operators) {
            node.restore(state)?;
        }
        let zero = Time::from_ms(meta.zero_ms);
        *inner.env.zero_time.lock() = Some(zero);
        *inner.recovered.lock() = Some((zero, Time::from_ms(meta.time_ms)));
        tracing::info!(checkpoint = meta.time_ms, dir = %dir.display(), "resuming from a metadata checkpoint");
        Ok(())
    }

    /// Checks the graph and starts the batch timer and the job executor. Every problem with the
    /// graph (invalid durations, missing checkpoint directory, no output operation, …) is reported
    /// at once in an [`Error::InvalidGraph`].
    pub fn start(&self) -> Result<()> {
        self.require_initialized("start")?;
        let inner = &self.inner;
        let settings = inner.invalid_settings.lock().clone();
        if !settings.is_empty() {
            return Err(Error::InvalidSetting(settings));
        }
        let errors = inner.graph.prepare(&inner.env, *inner.remember.lock());
        if !errors.is_empty() {
            return Err(Error::InvalidGraph(errors));
        }
        inner.graph.started.store(true, Ordering::Release);
        let clock = self.clock();
        let batch = inner.env.batch.as_millis() as u64;
        let (zero, first) = match *inner.recovered.lock() {
            // Resume: every batch after the last completed one is run (those that should have run
            // while the driver was down come at once), then new ones on time.
            Some((zero, last)) => {
                tracing::info!(last_completed = %last, "recovering from a checkpoint: re-running the batches after it");
                (zero, last.plus(inner.env.batch))
            }
            None => {
                let first = Time::from_ms((clock.now().ms() / batch + 1) * batch);
                (Time::from_ms(first.ms() - batch), first)
            }
        };
        *inner.env.zero_time.lock() = Some(zero);
        inner.progress.lock().status = Status::Started;
        tracing::info!(zero_time = %zero, first_batch = %first, "streaming context started");

        let receivers = inner.graph.receivers.lock().clone();
        let listeners = inner.listeners.lock().clone();
        let runner_start = crate::receiver::RunnerStart {
            checkpoint_dir: inner.env.checkpoint_dir.lock().clone(),
            batch: inner.env.batch,
            recovered: inner.recovered.lock().map(|(_, last)| last),
            resume: None,
        };
        // On a cluster, receivers run on executors that built the same job graph (their block
        // times come from the executors' clocks, so only with the system clock).
        let remote = match (
            self.context().cluster(),
            *inner.graph.fingerprint.lock(),
            &clock,
        ) {
            (Some(c), Some(fp), Clock::System) => Some((c.clone(), fp)),
            _ => None,
        };
        for r in &receivers {
            if let Some((cluster, fp)) = &remote
                && r.start_remote(self.context(), cluster, *fp, listeners.clone())
            {
                continue;
            }
            r.start(
                self.context(),
                clock.clone(),
                listeners.clone(),
                &runner_start,
            )?;
        }
        let (tx, rx) = std::sync::mpsc::channel::<JobSet>();
        let gen_inner = inner.clone();
        let generator = std::thread::Builder::new()
            .name("spate-job-generator".into())
            .spawn(move || generate_loop(&gen_inner, first, clock, tx))
            .map_err(|e| Error::State(format!("cannot start the job generator thread: {e}")))?;
        // Metadata checkpoints are written by a thread of their own, as Spark's
        // `CheckpointWriter` does: a write waits for the disk (fsync), which took 40 to 170 ms now
        // and then here, and batches of 5 or 10 ms waited that long to start behind it.
        let (ckpt_tx, ckpt_rx) = std::sync::mpsc::sync_channel::<CheckpointJob>(CHECKPOINT_QUEUE);
        let exec_inner = inner.clone();
        let executor = std::thread::Builder::new()
            .name("spate-job-executor".into())
            .spawn(move || execute_loop(&exec_inner, rx, ckpt_tx))
            .map_err(|e| Error::State(format!("cannot start the job executor thread: {e}")))?;
        let writer_inner = inner.clone();
        let writer = std::thread::Builder::new()
            .name("spate-checkpoint-writer".into())
            .spawn(move || write_checkpoints(&writer_inner, ckpt_rx))
            .map_err(|e| Error::State(format!("cannot start the checkpoint writer thread: {e}")))?;
        // Joined in this order by `stop`: the executor's end closes the writer's queue, and the
        // writer ends once it has written what was queued.
        inner.threads.lock().extend([generator, executor, writer]);
        Ok(())
    }

    /// Stops the context. With `graceful`, batches already generated are finished first;
    /// otherwise queued batches are dropped once the running one ends. Idempotent.
    pub fn stop(&self, graceful: bool) {
        let inner = &self.inner;
        {
            let mut p = inner.progress.lock();
            if matches!(p.status, Status::Stopped | Status::Stopping) {
                return;
            }
            if !graceful {
                // Queued batches are dropped from now on; the running one finishes.
                inner.stop_executing.store(true, Ordering::Release);
            }
            p.status = Status::Stopping;
        }
        // Receivers first: what they stored is cut into final blocks.
        let receivers = inner.graph.receivers.lock().clone();
        for r in &receivers {
            r.stop();
        }
        if graceful {
            // Generate, without waiting for the clock, up to the batch that takes the last
            // received block; then let the executor finish every queued batch.
            let batch = inner.env.batch.as_millis() as u64;
            let now = self.clock().now().ms();
            let last = inner.last_generated.load(Ordering::Acquire);
            let until = if receivers.iter().any(|r| r.has_pending_blocks()) {
                (last + batch).max(now.div_ceil(batch) * batch)
            } else {
                last
            };
            inner.drain_until.store(until.max(1), Ordering::Release);
        }
        inner.stop_generating.store(true, Ordering::Release);
        let current = std::thread::current().id();
        let threads: Vec<JoinHandle<()>> = inner.threads.lock().drain(..).collect();
        for t in threads {
            if t.thread().id() != current {
                let _ = t.join();
            }
        }
        *inner.final_receivers.lock() = self.receiver_info();
        inner.graph.clear();
        let mut p = inner.progress.lock();
        p.status = Status::Stopped;
        inner.changed.notify_all();
        tracing::info!(graceful, "streaming context stopped");
    }

    /// The context's life-cycle state.
    pub fn status(&self) -> Status {
        self.inner.progress.lock().status
    }

    /// Blocks until the context is stopped.
    pub fn await_termination(&self) {
        let mut p = self.inner.progress.lock();
        while p.status != Status::Stopped {
            self.inner.changed.wait(&mut p);
        }
    }

    /// Blocks until the context is stopped or `timeout` passes; returns whether it stopped.
    pub fn await_termination_timeout(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut p = self.inner.progress.lock();
        while p.status != Status::Stopped {
            if self.inner.changed.wait_until(&mut p, deadline).timed_out() {
                return p.status == Status::Stopped;
            }
        }
        true
    }

    /// Blocks until the batch of `time` (and every earlier one) has completed, or `timeout`
    /// passes; returns whether it completed. Meant for tests driving a manual clock.
    pub fn wait_for_batch(&self, time: Time, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        // With checkpointing on, also until the batch's metadata checkpoint is written.
        let checkpointing = self.has_checkpoint_dir();
        let mut p = self.inner.progress.lock();
        loop {
            if p.last_completed.is_some_and(|t| t >= time)
                && (!checkpointing || p.checkpointed.is_some_and(|t| t >= time))
            {
                return true;
            }
            if p.status == Status::Stopped
                || self.inner.changed.wait_until(&mut p, deadline).timed_out()
            {
                return p.last_completed.is_some_and(|t| t >= time);
            }
        }
    }

    /// The most recent completed batches (up to 1000), oldest first.
    pub fn completed_batches(&self) -> Vec<BatchInfo> {
        self.inner.progress.lock().completed.clone()
    }

    /// The zero time (the batch time before the first batch), once started.
    pub fn zero_time(&self) -> Option<Time> {
        self.inner.env.zero_time()
    }

    /// For tests: the times each operator currently remembers, by operator id.
    pub fn remembered_times(&self) -> Vec<(usize, Vec<Time>)> {
        self.inner
            .graph
            .nodes
            .lock()
            .iter()
            .map(|n| (n.id(), n.generated_times()))
            .collect()
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// The graph as a checkpoint records it: operators in construction order, then outputs.
fn operator_states(
    inner: &Inner,
    with_state: Option<Time>,
) -> Vec<crate::checkpoint::OperatorState> {
    let mut ops: Vec<crate::checkpoint::OperatorState> = inner
        .graph
        .nodes
        .lock()
        .iter()
        .map(|n| {
            let checkpoints = if with_state.is_some() {
                n.rdd_checkpoints()
            } else {
                Vec::new()
            };
            crate::checkpoint::OperatorState {
                name: n.name().to_string(),
                rdd_partitions: checkpoints.iter().map(|(t, _, n)| (*t, *n)).collect(),
                rdds: checkpoints.into_iter().map(|(t, d, _)| (t, d)).collect(),
                input: with_state.and_then(|t| n.input_state(t)),
            }
        })
        .collect();
    ops.extend(
        inner
            .graph
            .outputs
            .lock()
            .iter()
            .map(|o| crate::checkpoint::OperatorState {
                name: format!("output {}", o.name),
                ..Default::default()
            }),
    );
    ops
}

/// The metadata checkpoint after batch `time` completed.
fn metadata(inner: &Inner, time: Time) -> crate::checkpoint::Metadata {
    let batch = inner.env.batch.as_millis() as u64;
    let zero = inner.env.zero_time().unwrap_or_default();
    let mut meta = crate::checkpoint::Metadata::new(batch, zero, time);
    let last = inner.last_generated.load(Ordering::Acquire);
    meta.pending_ms = (1..)
        .map(|k| time.ms() + k * batch)
        .take_while(|t| *t <= last)
        .collect();
    meta.fingerprint = *inner.graph.fingerprint.lock();
    meta.operators = operator_states(inner, Some(time));
    meta
}

/// Runs a function the user gave the engine (an input's, a listener's), turning a panic into an
/// error that says whose function it was: engine threads outlive the user's mistakes.
pub(crate) fn guarded<T>(whose: &str, f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|p| format!("{whose} panicked: {}", panic_text(&*p)))
}

/// Tells every listener; a listener that panics is logged and skipped for this event (the
/// others are still told, and the batch goes on).
fn notify(inner: &Inner, event: &str, f: impl Fn(&dyn StreamingListener)) {
    let listeners = inner.listeners.lock().clone();
    for l in listeners {
        if let Err(e) = guarded("a streaming listener", || f(&*l)) {
            tracing::error!(event, "{e}; the listener missed this event");
        }
    }
}

fn generate_loop(
    inner: &Arc<Inner>,
    first: Time,
    clock: Clock,
    tx: std::sync::mpsc::Sender<JobSet>,
) {
    let batch = inner.env.batch;
    let mut time = first;
    let mut lagging = Lagging::default();
    loop {
        if !clock.wait_until(time, &inner.stop_generating) {
            let drain = inner.drain_until.load(Ordering::Acquire);
            if drain == 0 || time.ms() > drain {
                break;
            }
        }
        if !wait_for_room(inner, time, &mut lagging) {
            break;
        }
        let span = tracing::info_span!("generate", time = time.ms());
        let _entered = span.enter();
        let mut jobs = Vec::new();
        let mut failure = None;
        let eager = inner.graph.eager_inputs.lock().clone();
        for input in eager {
            // The input's function is the user's (a custom input, a file stream's filter).
            let generated = guarded("the input's function", || input.generate(time))
                .unwrap_or_else(|e| Err(Error::State(e)));
            if let Err(e) = generated {
                tracing::error!(batch = %time, input = input.name(), error = %e, "could not generate the input of the batch");
                failure.get_or_insert_with(|| {
                    format!("{} at {}: {e}", input.name(), input.call_site())
                });
            }
        }
        let outputs = inner.graph.outputs.lock().clone();
        for out in outputs {
            let generated =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (out.generate)(time)))
                    .unwrap_or_else(|p| {
                        Err(Error::State(format!(
                            "a function panicked while the batch was built: {}",
                            panic_text(&*p)
                        )))
                    });
            match generated {
                Ok(Some(job)) => jobs.push(job),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(batch = %time, output = out.name, call_site = %out.call_site, error = %e, "could not generate the job");
                    failure
                        .get_or_insert_with(|| format!("{} at {}: {e}", out.name, out.call_site));
                }
            }
        }
        let input_records: Vec<(usize, u64)> = inner
            .graph
            .nodes
            .lock()
            .iter()
            .filter_map(|n| {
                // A record count from the user's input function; without it the batch is
                // counted as if the input had none.
                let records = guarded("the input's record count", || n.input_records(time))
                    .unwrap_or_else(|e| {
                        tracing::error!(batch = %time, input = n.name(), "{e}");
                        None
                    });
                records.map(|r| (n.id(), r))
            })
            .collect();
        let records = input_records.iter().map(|(_, r)| r).sum();
        let info = BatchInfo {
            batch_time: time,
            submission_time: clock.now(),
            processing_start: None,
            processing_end: None,
            records,
            input_records,
            output_operations: jobs.len(),
            failure,
        };
        notify(inner, "on_batch_submitted", |l| l.on_batch_submitted(&info));
        inner.last_generated.store(time.ms(), Ordering::Release);
        inner.in_flight.fetch_add(1, Ordering::AcqRel);
        if tx.send(JobSet { info, jobs }).is_err() {
            break;
        }
        time = time.plus(batch);
    }
}

/// Whether the generator is held back, and when that was last logged.
#[derive(Default)]
struct Lagging {
    now: bool,
    warned: Option<std::time::Instant>,
}

/// Back-pressure: waits while [`StreamingContext::set_max_pending_batches`] batches are generated
/// and not completed. Returns false when the generator should stop instead.
fn wait_for_room(inner: &Inner, time: Time, lagging: &mut Lagging) -> bool {
    let max = inner.max_pending.load(Ordering::Acquire);
    let mut p = inner.progress.lock();
    if inner.in_flight.load(Ordering::Acquire) < max {
        if lagging.now {
            lagging.now = false;
            tracing::debug!(batch = %time, "processing caught up with the input");
        }
        return true;
    }
    lagging.now = true;
    // At most one warning a minute: a job at its limit may fall behind and catch up often.
    if lagging
        .warned
        .is_none_or(|w| w.elapsed() >= std::time::Duration::from_secs(60))
    {
        lagging.warned = Some(std::time::Instant::now());
        tracing::warn!(
            batch = %time,
            pending = max,
            "processing is slower than the input: batches are generated late and receivers are \
             held back (increase the batch interval or parallelism, or lower the input rate)"
        );
    }
    while inner.in_flight.load(Ordering::Acquire) >= max {
        // A stop that drops queued batches ends the executor: nothing will complete.
        if inner.stop_executing.load(Ordering::Acquire)
            || (inner.stop_generating.load(Ordering::Acquire)
                && inner.drain_until.load(Ordering::Acquire) == 0)
        {
            return false;
        }
        inner
            .changed
            .wait_for(&mut p, std::time::Duration::from_millis(20));
    }
    true
}

/// The checkpoint writer thread: writes each queued metadata checkpoint, then lets inputs drop
/// what only older checkpoints needed and deletes RDD checkpoints no newer one lists. A write
/// that fails deletes nothing (an older checkpoint may be the one a restart reads); what it would
/// have deleted goes with the next one written. Checkpoints queued while one was written are
/// skipped but the newest (it supersedes them; what they would have deleted goes with it), so a
/// slow disk delays checkpoints by one write, not by the queue.
///
/// Checkpoints are also at least [`CHECKPOINT_SPACING_MS`] of batch time apart: with shorter
/// batches, a checkpoint waits for a newer one to supersede it, and is written anyway once
/// [`CHECKPOINT_GRACE`] passes without one (the stream stopped or fell behind) or the queue
/// closes (`stop`). Each write is an `fsync` and a listing of the directory: with 5 ms batches
/// the writer took about a tenth of a core writing one checkpoint per batch. A restart then
/// re-runs at most that much more batch time.
fn write_checkpoints(inner: &Arc<Inner>, jobs: std::sync::mpsc::Receiver<CheckpointJob>) {
    use std::sync::mpsc::RecvTimeoutError;
    let mut unneeded: Vec<PathBuf> = Vec::new();
    let mut pending: Option<CheckpointJob> = None;
    let mut written: Option<Time> = None;
    loop {
        let (received, waited_out) = if pending.is_none() {
            match jobs.recv() {
                Ok(job) => (Some(job), false),
                Err(_) => break,
            }
        } else {
            match jobs.recv_timeout(CHECKPOINT_GRACE) {
                Ok(job) => (Some(job), false),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => (None, true),
            }
        };
        for newer in received
            .into_iter()
            .chain(std::iter::from_fn(|| jobs.try_recv().ok()))
        {
            if let Some(mut older) = pending.replace(newer) {
                unneeded.append(&mut older.unneeded);
            }
        }
        let due = |job: &CheckpointJob| {
            waited_out || written.is_none_or(|w| job.time.ms() >= w.ms() + CHECKPOINT_SPACING_MS)
        };
        let Some(mut job) = pending.take_if(|job| due(job)) else {
            continue;
        };
        unneeded.append(&mut job.unneeded);
        match crate::checkpoint::write(&job.dir, &job.meta) {
            Ok(()) => {
                written = Some(job.time);
                for n in &job.nodes {
                    if let Err(e) = guarded("an input's checkpoint-written function", || {
                        n.checkpoint_written(job.time)
                    }) {
                        tracing::error!(batch = %job.time, input = n.name(), "{e}");
                    }
                }
                for dir in unneeded.drain(..) {
                    if let Err(e) = std::fs::remove_dir_all(&dir) {
                        tracing::warn!(dir = %dir.display(), error = %e, "could not delete an old RDD checkpoint");
                    }
                }
            }
            Err(e) => {
                tracing::error!(batch = %job.time, error = %e, "could not write the metadata checkpoint; a driver restart would resume from an older one");
            }
        }
        let mut p = inner.progress.lock();
        p.checkpointed = p.checkpointed.max(Some(job.time));
        inner.changed.notify_all();
    }
}

fn execute_loop(
    inner: &Arc<Inner>,
    rx: std::sync::mpsc::Receiver<JobSet>,
    checkpoints: std::sync::mpsc::SyncSender<CheckpointJob>,
) {
    let clock = inner.clock.lock().clone();
    // RDD checkpoints that a checkpoint not taken would have deleted, for the next one.
    let mut unneeded_later: Vec<PathBuf> = Vec::new();
    for JobSet { mut info, jobs } in rx {
        if inner.stop_executing.load(Ordering::Acquire) {
            break;
        }
        let time = info.batch_time;
        // Everything logged while the batch runs (here and in its tasks' threads that enter the
        // span) carries the batch time.
        let span = tracing::info_span!("batch", time = time.ms());
        let _entered = span.enter();
        info.processing_start = Some(clock.now());
        notify(inner, "on_batch_started", |l| l.on_batch_started(&info));
        for job in jobs {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))
                .unwrap_or_else(|p| {
                    Err(Error::State(format!(
                        "the output function panicked: {}",
                        panic_text(&*p)
                    )))
                });
            if let Err(e) = result {
                tracing::error!(batch = %time, error = %e, "output operation failed");
                info.failure.get_or_insert_with(|| e.to_string());
            }
        }
        info.processing_end = Some(clock.now());
        let total = info.total_delay().unwrap_or_default();
        let exec = info.processing_delay().unwrap_or_default();
        tracing::info!(
            batch = %time,
            "Total delay: {:.3} s for time {} (execution: {:.3} s)",
            total.as_secs_f64(),
            time,
            exec.as_secs_f64()
        );
        let nodes = inner.graph.nodes.lock().clone();
        let unneeded: Vec<PathBuf> = nodes.iter().flat_map(|n| n.clear_metadata(time)).collect();
        let receivers = inner.graph.receivers.lock().clone();
        for r in &receivers {
            r.batch_completed(time);
        }
        let dir = inner.env.checkpoint_dir.lock().clone();
        if let Some(dir) = dir {
            unneeded_later.extend(unneeded);
            // Taken now (the batch's state), written by the writer thread. An input's state
            // comes from the user's function: if it panics there is no checkpoint of this batch
            // (one without the input's position would lose or repeat its records on restart),
            // and what it would have deleted waits for the next one.
            match guarded("the input's checkpoint function", || metadata(inner, time)) {
                Ok(meta) => {
                    let job = CheckpointJob {
                        dir,
                        time,
                        meta,
                        nodes,
                        unneeded: std::mem::take(&mut unneeded_later),
                    };
                    if checkpoints.send(job).is_err() {
                        tracing::error!(batch = %time, "the checkpoint writer has stopped; a driver restart would resume from an older checkpoint");
                    }
                }
                Err(e) => {
                    tracing::error!(batch = %time, "{e}: the batch is not checkpointed; a driver restart would resume from an older checkpoint");
                    // As after a failed write: the batch's checkpoint is done with.
                    let mut p = inner.progress.lock();
                    p.checkpointed = p.checkpointed.max(Some(time));
                    inner.changed.notify_all();
                }
            }
        }
        notify(inner, "on_batch_completed", |l| l.on_batch_completed(&info));
        let mut p = inner.progress.lock();
        inner.in_flight.fetch_sub(1, Ordering::AcqRel);
        p.last_completed = Some(time);
        p.completed.push(info);
        if p.completed.len() > KEEP_BATCHES {
            let excess = p.completed.len() - KEEP_BATCHES;
            p.completed.drain(..excess);
        }
        inner.changed.notify_all();
    }
}

impl std::fmt::Debug for StreamingContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingContext")
            .field("batch", &self.inner.env.batch)
            .finish_non_exhaustive()
    }
}
