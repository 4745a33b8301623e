//! The job scheduler: cuts a job into stages at shuffle dependencies, runs missing shuffle map
//! stages first (parents before children), then the result stage, each stage's tasks in parallel
//! on the context's worker pool. A panicking task fails its job with an error naming the RDD and
//! partition; a reduce task that finds a shuffle output missing makes the scheduler re-run the map
//! task that wrote it and retry.

use crate::rdd::{
    BoxIter, Dependency, Rdd, RddBase, ShuffleDependencyBase, ShuffleId, TaskContext,
};
use crate::sync::{Arc, Mutex, Ordering};
use crate::{Context, Error, Result};
use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use spate_storage::Data;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// How many times a job is retried after lost shuffle outputs.
const MAX_ATTEMPTS: usize = 4;

/// Which map outputs of each shuffle are available.
#[derive(Default)]
pub(crate) struct MapOutputTracker {
    outputs: Mutex<FxHashMap<ShuffleId, Vec<bool>>>,
}

impl MapOutputTracker {
    fn missing(&self, shuffle: ShuffleId, maps: usize) -> Vec<usize> {
        let mut outputs = self.outputs.lock();
        let done = outputs.entry(shuffle).or_insert_with(|| vec![false; maps]);
        (0..maps).filter(|m| !done[*m]).collect()
    }

    fn mark_done(&self, shuffle: ShuffleId, map: usize) {
        if let Some(v) = self.outputs.lock().get_mut(&shuffle) {
            v[map] = true;
        }
    }

    /// Forgets a map output (it was found missing), so the next attempt recomputes it.
    pub(crate) fn mark_lost(&self, shuffle: ShuffleId, map: usize) {
        if let Some(v) = self.outputs.lock().get_mut(&shuffle)
            && map < v.len()
        {
            v[map] = false;
        }
    }

    /// Forgets every map output that `held(shuffle, map)` says is gone (a lost executor takes
    /// several, of several shuffles, with it: one retry recomputes them all).
    fn mark_lost_where(&self, held: impl Fn(ShuffleId, usize) -> bool) {
        for (&shuffle, v) in self.outputs.lock().iter_mut() {
            for (map, done) in v.iter_mut().enumerate() {
                if *done && !held(shuffle, map) {
                    *done = false;
                }
            }
        }
    }

    pub(crate) fn remove(&self, shuffle: ShuffleId) {
        self.outputs.lock().remove(&shuffle);
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}

/// Runs `task` for each of `partitions` of `stage` in parallel; results in partition order.
fn run_tasks<U: Send>(
    ctx: &Context,
    stage: &dyn RddBase,
    partitions: &[usize],
    attempt: usize,
    task: &(dyn Fn(&TaskContext) -> Result<U> + Sync),
) -> Result<Vec<U>> {
    let results: Vec<Result<U>> = ctx.inner.pool.install(|| {
        partitions
            .par_iter()
            .map(|&p| {
                let tc = TaskContext {
                    partition: p,
                    attempt,
                    ctx: ctx.clone(),
                };
                match catch_unwind(AssertUnwindSafe(|| task(&tc))) {
                    Ok(r) => r,
                    Err(payload) => Err(Error::TaskFailed {
                        rdd: stage.id(),
                        name: stage.name().to_string(),
                        call_site: stage.call_site().to_string(),
                        partition: p,
                        message: panic_message(&*payload),
                    }),
                }
            })
            .collect()
    });
    let mut out = Vec::with_capacity(results.len());
    let mut first_err = None;
    for r in results {
        match r {
            Ok(u) => out.push(u),
            // A lost shuffle output is preferred: it is the one failure a retry can fix.
            Err(e @ Error::FetchFailed { .. }) => first_err = Some(e),
            Err(e) => {
                if first_err.is_none() {
                    first_err = Some(e);
                }
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// The shuffle dependencies reachable from `rdd` through narrow dependencies, stopping at RDDs
/// whose partitions are all cached.
fn parent_shuffles(rdd: &Arc<dyn RddBase>) -> Vec<Arc<dyn ShuffleDependencyBase>> {
    let mut out = Vec::new();
    let mut seen = FxHashSet::default();
    let mut stack = vec![rdd.clone()];
    while let Some(r) = stack.pop() {
        if !seen.insert(r.id()) || r.is_fully_cached() {
            continue;
        }
        for dep in r.dependencies() {
            match dep {
                Dependency::Shuffle(s) => out.push(s),
                narrow => stack.push(narrow.rdd()),
            }
        }
    }
    out
}

/// Makes sure every shuffle `rdd` reads has all its map outputs, running map stages as needed.
fn ensure_parent_stages(ctx: &Context, rdd: &Arc<dyn RddBase>, attempt: usize) -> Result<()> {
    for dep in parent_shuffles(rdd) {
        let parent = dep.parent();
        ensure_parent_stages(ctx, &parent, attempt)?;
        let missing = ctx
            .inner
            .tracker
            .missing(dep.shuffle_id(), parent.num_partitions());
        if missing.is_empty() {
            continue;
        }
        dep.prepare()?;
        tracing::debug!(
            shuffle = dep.shuffle_id(),
            tasks = missing.len(),
            "running shuffle map stage"
        );
        let shuffle = dep.shuffle_id();
        let d = dep.clone();
        let done = run_tasks(
            ctx,
            &*parent,
            &missing,
            attempt,
            &move |tc: &TaskContext| {
                d.run_map_task(tc.partition, tc)?;
                Ok(tc.partition)
            },
        )?;
        for map in done {
            ctx.inner.tracker.mark_done(shuffle, map);
        }
    }
    Ok(())
}

/// Writes the checkpoints of every RDD in the lineage that is marked for one.
fn checkpoint_lineage(rdd: &Arc<dyn RddBase>) -> Result<()> {
    let mut seen = FxHashSet::default();
    let mut stack = vec![rdd.clone()];
    let mut marked = Vec::new();
    while let Some(r) = stack.pop() {
        if !seen.insert(r.id()) {
            continue;
        }
        if r.needs_checkpoint() {
            marked.push(r.clone());
        }
        stack.extend(r.dependencies().iter().map(Dependency::rdd));
    }
    for r in marked {
        r.do_checkpoint()?;
    }
    Ok(())
}

/// Runs a job: `f` over the iterator of each of `partitions` of `rdd`; results in order.
pub(crate) fn run_job<T: Data, U: Send>(
    rdd: &Rdd<T>,
    partitions: &[usize],
    f: impl Fn(&TaskContext, BoxIter<T>) -> Result<U> + Send + Sync,
) -> Result<Vec<U>> {
    let ctx = rdd.context();
    ctx.inner.jobs_run.fetch_add(1, Ordering::Relaxed);
    let base = rdd.as_base();
    let task = |tc: &TaskContext| f(tc, rdd.iterator(tc.partition, tc)?);
    let mut attempt = 0;
    let result = loop {
        let r = {
            // Stages of concurrent jobs are computed one job at a time (re-entrant: a stage may
            // itself run a job, as sort_by_key's sampling does).
            let _stages = ctx.inner.stage_lock.lock();
            ensure_parent_stages(ctx, &base, attempt)
        }
        .and_then(|()| run_tasks(ctx, &*base, partitions, attempt, &task));
        match r {
            Err(Error::FetchFailed { shuffle, map }) if attempt + 1 < MAX_ATTEMPTS => {
                tracing::warn!(
                    shuffle,
                    map,
                    attempt,
                    "shuffle output lost; recomputing it and retrying"
                );
                ctx.inner.tracker.mark_lost(shuffle, map);
                // The others an executor took with it: held neither here nor by an executor.
                if let Some(cluster) = ctx.cluster() {
                    let bm = ctx.block_manager();
                    ctx.inner.tracker.mark_lost_where(|shuffle, m| {
                        let bucket = spate_storage::BlockId::Shuffle {
                            shuffle,
                            map: m as u32,
                            reduce: 0,
                        };
                        bm.contains(&bucket) || cluster.replica_of(&bucket).is_some()
                    });
                }
                attempt += 1;
            }
            Err(e @ Error::FetchFailed { .. }) => {
                break Err(Error::TooManyAttempts {
                    attempts: MAX_ATTEMPTS,
                    last: Box::new(e),
                });
            }
            other => break other,
        }
    }?;
    checkpoint_lineage(&base)?;
    Ok(result)
}
