//! The DStream graph: every operator (type-erased), every output operation, and the environment
//! operators share (core context, batch duration, zero time, checkpoint directory).

use crate::Time;
use crate::time::show;
use parking_lot::Mutex;
use spate_core::Context;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// What every operator shares. Operators hold it strongly; it holds no operator.
pub(crate) struct Env {
    pub(crate) ctx: Context,
    pub(crate) batch: Duration,
    pub(crate) zero_time: Mutex<Option<Time>>,
    pub(crate) checkpoint_dir: Mutex<Option<PathBuf>>,
    next_id: AtomicUsize,
}

impl Env {
    pub(crate) fn new(ctx: Context, batch: Duration) -> Env {
        Env {
            ctx,
            batch,
            zero_time: Mutex::new(None),
            checkpoint_dir: Mutex::new(None),
            next_id: AtomicUsize::new(0),
        }
    }

    pub(crate) fn next_id(&self) -> usize {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn zero_time(&self) -> Option<Time> {
        *self.zero_time.lock()
    }
}

/// The type-erased view of an operator that the graph manages.
pub(crate) trait DStreamBase: Send + Sync {
    fn id(&self) -> usize;
    fn name(&self) -> &str;
    fn call_site(&self) -> &str;
    fn slide(&self) -> Duration;
    fn parents(&self) -> Vec<Arc<dyn DStreamBase>>;
    /// How much longer than itself its parents must remember (a window's width).
    fn parent_remember_extra(&self) -> Duration;
    fn must_checkpoint(&self) -> bool;
    fn checkpoint_interval(&self) -> Option<Duration>;
    fn set_checkpoint_interval(&self, d: Duration);
    fn remember(&self) -> Duration;
    fn set_remember(&self, d: Duration);
    /// Records an input stream contributed to the batch at `time`, if it knows.
    fn input_records(&self, time: Time) -> Option<u64>;
    /// Computes the RDD of `time` if the stream has one (for input streams that must consume
    /// their input every batch).
    fn generate(&self, time: Time) -> crate::Result<()>;
    /// Forgets RDDs older than the remember duration before `time`; returns the RDD checkpoint
    /// directories no longer needed, for the caller to delete once the metadata checkpoint of
    /// `time` (which no longer lists them) is written.
    fn clear_metadata(&self, time: Time) -> Vec<std::path::PathBuf>;
    /// Times of the RDDs currently remembered.
    fn generated_times(&self) -> Vec<Time>;
    /// The RDD checkpoints a recovery would need: batch time, directory, partition count.
    fn rdd_checkpoints(&self) -> Vec<(u64, std::path::PathBuf, usize)>;
    /// An input's position, saved in metadata checkpoints.
    fn input_state(&self, completed: Time) -> Option<String>;
    /// The metadata checkpoint of `completed` is written: an input may drop what only older
    /// checkpoints needed (a receiver's write-ahead log).
    fn checkpoint_written(&self, completed: Time);
    /// An input's position with the plan of the batch at `time` (for a task an executor runs).
    fn task_input_state(&self, time: Time) -> Option<String>;
    /// Takes an input's position back (on an executor, before it rebuilds a batch).
    fn restore_input(&self, saved: &str) -> crate::Result<()>;
    /// The RDD of `time`, type-erased (on an executor, to find a task's RDD in its lineage).
    fn rdd_at(&self, time: Time) -> crate::Result<Option<Arc<dyn spate_core::RddBase>>>;
    /// Forgets the RDDs before `time` (on an executor, which has no batch clock).
    fn forget_before(&self, time: Time);
    /// The RDDs of batches before `time` this (driver) process has, named for an executor.
    fn held_before(&self, time: Time) -> Vec<spate_core::cluster::HeldRdd>;
    /// Takes the driver's RDD of an earlier batch as this operator's RDD of that batch (on an
    /// executor: its partitions are read from the driver, never rebuilt here).
    fn hold(&self, held: &spate_core::cluster::HeldRdd);
    /// Restores RDD checkpoints and input position from a metadata checkpoint.
    fn restore(&self, state: &crate::checkpoint::OperatorState) -> crate::Result<()>;
}

/// A job: an output operation applied to one batch's RDD.
pub(crate) type Job = Box<dyn FnOnce() -> crate::Result<()> + Send>;

/// An output operation: makes the job of a batch.
pub(crate) struct OutputOp {
    pub(crate) name: &'static str,
    /// The id of the stream it writes.
    pub(crate) parent: usize,
    pub(crate) call_site: String,
    pub(crate) generate: Box<dyn Fn(Time) -> crate::Result<Option<Job>> + Send + Sync>,
}

/// The operators and output operations of one streaming context.
#[derive(Default)]
pub(crate) struct Graph {
    pub(crate) nodes: Mutex<Vec<Arc<dyn DStreamBase>>>,
    pub(crate) outputs: Mutex<Vec<Arc<OutputOp>>>,
    pub(crate) errors: Mutex<Vec<String>>,
    pub(crate) receivers: Mutex<Vec<Arc<dyn crate::receiver::ReceiverRunner>>>,
    /// Input streams whose RDD must be generated every batch even if no output reads it (so
    /// their received blocks are consumed).
    pub(crate) eager_inputs: Mutex<Vec<Arc<dyn DStreamBase>>>,
    pub(crate) started: std::sync::atomic::AtomicBool,
    /// Checks run by `start()` (for example: a watched directory exists), with what they check.
    pub(crate) start_checks: Mutex<Vec<(String, StartCheck)>>,
    /// Every operator and output in creation order, with the static id `#[streaming_job]` gave
    /// it (if any) and a description.
    pub(crate) creation_log: Mutex<Vec<(Option<usize>, String)>>,
    /// The fingerprint of the job's static graph, once verified.
    pub(crate) fingerprint: Mutex<Option<u64>>,
    /// The `#[streaming_job]` graph, when the job was built by one.
    pub(crate) job_graph: Mutex<Option<crate::job::JobGraph>>,
    /// Counters input streams report (`StreamingContext::report_input_counters`). Not cleared
    /// with the operators: it holds no closure, and the final counts stay on the page.
    pub(crate) input_counters: Mutex<Vec<crate::counters::Reported>>,
}

/// A check `start()` runs; an `Err` is reported as a graph error.
pub(crate) type StartCheck = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

impl Graph {
    pub(crate) fn add_error(&self, call_site: &str, name: &str, message: impl std::fmt::Display) {
        self.errors
            .lock()
            .push(format!("{name} at {call_site}: {message}"));
    }

    /// Checks the graph and fills in defaults before the first batch: every problem is collected.
    pub(crate) fn prepare(&self, env: &Env, remember: Option<Duration>) -> Vec<String> {
        let mut errors = self.errors.lock().clone();
        for (what, check) in self.start_checks.lock().iter() {
            if let Err(e) = check() {
                errors.push(format!("{what}: {e}"));
            }
        }
        for r in self.input_counters.lock().iter() {
            for (name, _, _) in r.counters.values() {
                if let Err(e) = crate::counters::check_name(name) {
                    errors.push(format!("{} at {}: {e}", r.name, r.call_site));
                }
            }
        }
        let nodes = self.nodes.lock().clone();
        if self.outputs.lock().is_empty() {
            errors.push("no output operation is registered, so nothing would run: add print(), foreach_rdd(...) or a save".into());
        }
        let has_dir = env.checkpoint_dir.lock().is_some();
        for n in &nodes {
            let slide = n.slide();
            if n.must_checkpoint() {
                if !has_dir {
                    errors.push(format!(
                        "{} at {} keeps state across batches and needs a checkpoint directory: call StreamingContext::checkpoint(dir) before start()",
                        n.name(),
                        n.call_site()
                    ));
                }
                if n.checkpoint_interval().is_none() {
                    // Spark's default: a multiple of the slide of at least 10 seconds.
                    let s = slide.as_millis().max(1) as u64;
                    let k = 10_000u64.div_ceil(s).max(1);
                    n.set_checkpoint_interval(Duration::from_millis(k * s));
                }
            }
            if let Some(iv) = n.checkpoint_interval() {
                if let Err(e) =
                    crate::time::check_multiple(iv, slide, "checkpoint interval", "slide")
                {
                    errors.push(format!("{} at {}: {e}", n.name(), n.call_site()));
                }
                if !has_dir && !n.must_checkpoint() {
                    errors.push(format!(
                        "{} at {} sets a checkpoint interval of {} but no checkpoint directory is set: call StreamingContext::checkpoint(dir)",
                        n.name(),
                        n.call_site(),
                        show(iv.as_millis() as u64)
                    ));
                }
            }
        }
        // Remember durations: each operator at least its slide (twice its checkpoint interval when
        // it checkpoints, and the user's minimum); parents as long as their children need them
        // plus any window width. Children have larger ids than parents, so one pass in reverse
        // creation order settles every operator before its parents.
        for n in &nodes {
            let mut r = n.slide().max(remember.unwrap_or(Duration::ZERO));
            if let Some(iv) = n.checkpoint_interval()
                && r <= iv
            {
                r = iv * 2;
            }
            n.set_remember(n.remember().max(r));
        }
        let mut ordered = nodes.clone();
        ordered.sort_by_key(|n| std::cmp::Reverse(n.id()));
        for n in ordered {
            let need = n.remember() + n.parent_remember_extra();
            for p in n.parents() {
                p.set_remember(p.remember().max(need));
            }
        }
        errors
    }

    /// Drops every operator and output (breaking reference cycles through user closures).
    pub(crate) fn clear(&self) {
        self.outputs.lock().clear();
        self.nodes.lock().clear();
        self.eager_inputs.lock().clear();
        self.receivers.lock().clear();
    }
}
