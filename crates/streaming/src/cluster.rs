//! Streaming on a cluster: the driver names the tasks of batch-local operators and sends them,
//! with the inputs' plans of their batch, to executors ([`DriverTasks`]); an executor rebuilds
//! the same graph and computes them ([`ExecutorGraph`]). Nothing but names, plans and data
//! crosses the network (see ARCHITECTURE.md).

use crate::Time;
use crate::context::Inner;
use parking_lot::Mutex;
use spate_core::cluster::{TaskRunner, TaskSpec};
use spate_core::{ShipName, TaskContext};
use std::sync::{Arc, Weak};

/// The driver's side: turns a shippable partition into a task for the cluster (installed with
/// `Cluster::shipper`).
pub(crate) struct DriverTasks {
    pub(crate) inner: Weak<Inner>,
    /// The inputs' plans and the held RDDs of earlier batches of the latest batch tasks were
    /// sent for (every task of a batch carries the same ones).
    pub(crate) inputs: Mutex<Option<(u64, BatchPlans)>>,
}

/// What every task of a batch carries: the inputs' plans and the earlier batches' RDDs the driver
/// holds.
#[derive(Clone)]
pub(crate) struct BatchPlans {
    inputs: Vec<(u64, String)>,
    held: Vec<spate_core::cluster::HeldRdd>,
}

impl DriverTasks {
    /// The task of `partition` of RDD `rdd` made under `name`, with the inputs' plans of its
    /// batch, and the job graph's fingerprint; `None` without a `#[streaming_job]` graph (only
    /// one checked to be the same in every process is shipped).
    pub(crate) fn task(
        &self,
        name: ShipName,
        rdd: u64,
        partition: usize,
    ) -> Option<(TaskSpec, u64)> {
        let inner = self.inner.upgrade()?;
        let graph = (*inner.graph.fingerprint.lock())?;
        let zero = inner.env.zero_time()?;
        let cached = self
            .inputs
            .lock()
            .as_ref()
            .filter(|(t, _)| *t == name.time_ms)
            .map(|(_, i)| i.clone());
        let BatchPlans { inputs, held } = cached.unwrap_or_else(|| {
            let time = Time::from_ms(name.time_ms);
            let nodes = inner.graph.nodes.lock().clone();
            let plans = BatchPlans {
                inputs: nodes
                    .iter()
                    .filter_map(|n| n.task_input_state(time).map(|s| (n.id() as u64, s)))
                    .collect(),
                held: nodes.iter().flat_map(|n| n.held_before(time)).collect(),
            };
            *self.inputs.lock() = Some((name.time_ms, plans.clone()));
            plans
        });
        let task = TaskSpec {
            op: name.op,
            time_ms: name.time_ms,
            zero_ms: zero.ms(),
            rdd,
            partition: partition as u32,
            inputs,
            map_of: None,
            held,
        };
        Some((task, graph))
    }
}

/// The executor's side: the job's graph, built by the same code as on the driver but never
/// started; tasks rebuild a batch's RDDs from the plans they carry.
pub(crate) struct ExecutorGraph {
    pub(crate) inner: Arc<Inner>,
    /// Restoring plans and building a batch's RDDs happen one task at a time; the batch whose
    /// plans were restored last (the next task of that batch needs no restore).
    pub(crate) building: Mutex<Option<u64>>,
}

/// What a task computes.
enum Target {
    /// A partition of an RDD, sent back.
    Rdd(Arc<dyn spate_core::RddBase>),
    /// A map task of a shuffle, whose buckets stay here.
    Map(Arc<dyn spate_core::ShuffleDependencyBase>),
}

fn state_err(e: impl std::fmt::Display) -> spate_core::Error {
    spate_core::Error::Cluster(e.to_string())
}

impl ExecutorGraph {
    fn receiver(
        &self,
        stream: u64,
    ) -> spate_core::Result<Arc<dyn crate::receiver::ReceiverRunner>> {
        self.inner
            .graph
            .receivers
            .lock()
            .iter()
            .find(|r| r.stream() as u64 == stream)
            .cloned()
            .ok_or_else(|| {
                state_err(format!(
                    "stream {stream} has no receiver in this executor's graph"
                ))
            })
    }
}

impl TaskRunner for ExecutorGraph {
    fn start_receiver(
        &self,
        stream: u64,
        first_seq: u64,
        position: Option<String>,
    ) -> spate_core::Result<()> {
        let r = self.receiver(stream)?;
        let start = crate::receiver::RunnerStart {
            checkpoint_dir: None,
            batch: self.inner.env.batch,
            recovered: None,
            resume: Some((first_seq, position)),
        };
        r.start(
            &self.inner.env.ctx,
            crate::Clock::System,
            Vec::new(),
            &start,
        )
        .map_err(state_err)?;
        tracing::info!(stream, "receiver started on this executor");
        Ok(())
    }

    fn cut_receiver(
        &self,
        stream: u64,
        time_ms: u64,
        completed_ms: u64,
        taken_below: u64,
    ) -> spate_core::Result<spate_core::cluster::Cut> {
        let receiver = self.receiver(stream)?;
        if completed_ms > 0 {
            receiver.batch_completed(Time::from_ms(completed_ms));
        }
        Ok(receiver.cut_here(Time::from_ms(time_ms), taken_below))
    }

    fn stop_receiver(&self, stream: u64) -> spate_core::Result<()> {
        self.receiver(stream)?.stop();
        Ok(())
    }

    fn input_counts(&self) -> Vec<spate_core::cluster::InputCount> {
        crate::counters::snapshot(&self.inner.graph.input_counters.lock())
            .into_iter()
            .flat_map(|s| {
                s.counters
                    .into_iter()
                    .filter(|c| c.2 > 0)
                    .map(move |(name, _, value)| spate_core::cluster::InputCount {
                        stream: s.stream as u64,
                        name: name.to_string(),
                        value,
                    })
            })
            .collect()
    }

    fn block_manager(&self) -> Arc<spate_core::storage::BlockManager> {
        self.inner.env.ctx.block_manager().clone()
    }

    fn run(&self, task: &TaskSpec) -> spate_core::Result<Vec<u8>> {
        let time = Time::from_ms(task.time_ms);
        let nodes = self.inner.graph.nodes.lock().clone();
        let target = {
            let mut restored = self.building.lock();
            *self.inner.env.zero_time.lock() = Some(Time::from_ms(task.zero_ms));
            if *restored != Some(task.time_ms) {
                for (op, saved) in &task.inputs {
                    if let Some(n) = nodes.iter().find(|n| n.id() as u64 == *op) {
                        n.restore_input(saved).map_err(state_err)?;
                    }
                }
                // Earlier batches' RDDs (a window's, the previous state) are the driver's.
                for held in &task.held {
                    if let Some(n) = nodes.iter().find(|n| n.id() as u64 == held.op) {
                        n.hold(held);
                    }
                }
                *restored = Some(task.time_ms);
            }
            let node = nodes
                .iter()
                .find(|n| n.id() as u64 == task.op)
                .ok_or_else(|| {
                    state_err(format!(
                        "operator {} is not in this executor's graph: is it the same build as the driver?",
                        task.op
                    ))
                })?;
            let root = node
                .rdd_at(time)
                .map_err(state_err)?
                .ok_or_else(|| state_err(format!("operator {} has no RDD at {time}", task.op)))?;
            // Forget batches well behind this one (an executor has no batch clock).
            let horizon = Time::from_ms(
                task.time_ms
                    .saturating_sub(20 * self.inner.env.batch.as_millis() as u64),
            );
            for n in &nodes {
                n.forget_before(horizon);
            }
            if let Some(shuffle) = task.map_of {
                let dep = spate_core::find_shuffle(&root, shuffle).ok_or_else(|| {
                    state_err(format!(
                        "shuffle {shuffle} is not in the lineage of operator {} at {time}: the executor's graph differs from the driver's",
                        task.op
                    ))
                })?;
                Target::Map(dep)
            } else {
                Target::Rdd(spate_core::find_in_lineage(&root, task.rdd).ok_or_else(|| {
                    state_err(format!(
                        "RDD {} is not in the lineage of operator {} at {time}: the executor's graph differs from the driver's",
                        task.rdd, task.op
                    ))
                })?)
            }
        };
        let tc = TaskContext::for_remote(&self.inner.env.ctx, task.partition as usize);
        match target {
            Target::Rdd(rdd) => rdd.compute_serialized(task.partition as usize, &tc),
            // The buckets stay in this executor's block manager; the driver fetches them.
            Target::Map(dep) => dep
                .run_map_task(task.partition as usize, &tc)
                .map(|()| Vec::new()),
        }
    }
}
