//! Incremental windowed reduction (Spark's `ReducedWindowedDStream`): the value of the window at
//! `t` is the value at `t - slide`, inverse-reduced by the batches that left the window and
//! reduced with the batches that entered it. Without a filter a key stays (with its "zero"
//! value) after its values leave the window.

use super::{DStream, OpSpec};
use crate::Key;
use spate_core::{Data, HashPartitioner, Partitioner, StorageLevel};
use std::sync::Arc;
use std::time::Duration;

/// A predicate deciding which `(key, value)` pairs stay in an incrementally reduced window.
pub type WindowFilter<K, V> = Arc<dyn Fn(&(K, V)) -> bool + Send + Sync>;

impl<K: Key, V: Data> DStream<(K, V)> {
    /// Each key's values over each window, reduced incrementally with `f` and its inverse
    /// `inv_f`. Needs a checkpoint directory (the window's value is state).
    #[track_caller]
    pub fn reduce_by_key_and_window_inv(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        inv_f: impl Fn(V, V) -> V + Send + Sync + 'static,
        window: Duration,
        slide: Duration,
    ) -> DStream<(K, V)> {
        self.reduce_by_key_and_window_inv_n(
            f,
            inv_f,
            window,
            slide,
            self.default_partitions(),
            None,
        )
    }

    /// [`reduce_by_key_and_window_inv`](Self::reduce_by_key_and_window_inv) into
    /// `num_partitions` partitions, keeping only the pairs `filter` accepts (for example, dropping
    /// keys whose count fell to zero).
    #[track_caller]
    pub fn reduce_by_key_and_window_inv_n(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        inv_f: impl Fn(V, V) -> V + Send + Sync + 'static,
        window: Duration,
        slide: Duration,
        num_partitions: usize,
        filter: Option<WindowFilter<K, V>>,
    ) -> DStream<(K, V)> {
        let f = Arc::new(f);
        let inv_f = Arc::new(inv_f);
        let partitioner: Arc<dyn Partitioner<K>> = Arc::new(HashPartitioner::new(num_partitions));
        let g = f.clone();
        let reduced = self
            .reduce_by_key_with(move |a, b| g(a, b), partitioner.clone())
            .persist(StorageLevel::MEMORY_ONLY_SER);
        let parent_slide = self.slide();
        let r = reduced.clone();
        let mut spec = OpSpec::derived("reduce_by_key_and_window", &reduced, move |node, t| {
            let zero = node.env.zero_time().unwrap_or_default();
            // Current window: (t - window, t]; previous: (t - window - slide, t - slide].
            let current_begin = t.minus(window).plus(parent_slide);
            let previous_begin = current_begin.minus(slide);
            // Batches that left: in the previous window but not this one, (t - window - slide,
            // t - max(window, slide)]; batches that entered: in this window but not the previous
            // one, (t - min(window, slide), t]. (For slide <= window this is Spark's rule; for a
            // longer slide Spark would count the batches between two windows, this does not.)
            let old = r
                .node
                .slice(zero, previous_begin, t.minus(window.max(slide)))?;
            let new = r
                .node
                .slice(zero, t.minus(window.min(slide)).plus(parent_slide), t)?;
            let previous = match node.get_or_compute(t.minus(slide))? {
                Some(p) => p,
                None => node.env.ctx.empty_rdd(),
            };
            let (n_old, n_new) = (old.len(), new.len());
            let mut all = Vec::with_capacity(1 + n_old + n_new);
            all.push(previous);
            all.extend(old);
            all.extend(new);
            let (f, inv_f) = (f.clone(), inv_f.clone());
            let merged = node
                .env
                .ctx
                .cogroup_many(&all, partitioner.clone())
                .flat_map_values(move |seqs| {
                    let firsts = |range: std::ops::Range<usize>| -> Vec<V> {
                        seqs[range]
                            .iter()
                            .filter_map(|s| s.first().cloned())
                            .collect()
                    };
                    let old_values = firsts(1..1 + n_old);
                    let new_values = firsts(1 + n_old..1 + n_old + n_new);
                    let reduce = |vs: Vec<V>| vs.into_iter().reduce(|a, b| f(a, b));
                    match seqs[0].first() {
                        // No previous value: the key is new in this window (or was filtered out).
                        None => reduce(new_values),
                        Some(prev) => {
                            let mut value = prev.clone();
                            if let Some(o) = reduce(old_values) {
                                value = inv_f(value, o);
                            }
                            if let Some(n) = reduce(new_values) {
                                value = f(value, n);
                            }
                            Some(value)
                        }
                    }
                });
            Ok(Some(match &filter {
                Some(keep) => {
                    let keep = keep.clone();
                    merged.filter(move |kv| keep(kv))
                }
                None => merged,
            }))
        });
        spec.slide = slide;
        spec.parent_remember_extra = window;
        spec.must_checkpoint = true;
        spec.level = StorageLevel::MEMORY_ONLY_SER;
        let out = DStream::create(&self.node.env, &self.node.graph, spec);
        self.check_window(&out, window, slide);
        out
    }
}
