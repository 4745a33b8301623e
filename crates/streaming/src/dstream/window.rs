//! Windowed operations: `window` and everything built on it (`count_by_window`,
//! `reduce_by_window`, `reduce_by_key_and_window` without an inverse, `group_by_key_and_window`,
//! `count_by_value_and_window`). A window of width `w` at time `t` covers the parent's RDDs at
//! times in `(t - w, t]`; the windowed stream produces an RDD every `slide`.

use super::{DStream, OpSpec};
use crate::Key;
use crate::time::check_multiple;
use spate_core::{Data, HashPartitioner, StorageLevel};
use std::sync::Arc;
use std::time::Duration;

impl<T: Data> DStream<T> {
    /// Checks a window's width and slide against this (parent) stream; errors go to the graph.
    pub(crate) fn check_window(&self, out: &DStream<impl Data>, window: Duration, slide: Duration) {
        let batch = self.node.env.batch;
        for (d, what) in [(window, "window"), (slide, "slide")] {
            if let Err(e) = check_multiple(d, batch, what, "batch interval") {
                out.graph_error(e);
            } else if let Err(e) = check_multiple(d, self.slide(), what, "parent's slide") {
                out.graph_error(e);
            }
        }
        if slide > window && !window.is_zero() {
            tracing::warn!(
                operator = out.id(),
                "slide {:?} is longer than window {:?}: records between windows are never seen",
                slide,
                window
            );
        }
    }

    /// The union of the last `window` of this stream's RDDs, every `slide`. Both must be
    /// multiples of this stream's slide (checked at `start()`). Persists this stream at
    /// `MEMORY_ONLY_SER` if it is not persisted, since each RDD is read by several windows.
    #[track_caller]
    pub fn window(&self, window: Duration, slide: Duration) -> DStream<T> {
        let parent = self.clone();
        let mut spec = OpSpec::derived("window", self, move |node, t| {
            let zero = node.env.zero_time().unwrap_or_default();
            let from = t.minus(window).plus(parent.slide());
            let rdds = parent.node.slice(zero, from, t)?;
            Ok(Some(parent.context().union(&rdds)))
        });
        spec.slide = slide;
        spec.parent_remember_extra = window;
        let out = DStream::create(&self.node.env, &self.node.graph, spec);
        self.check_window(&out, window, slide);
        if !self.storage_level().is_valid() {
            self.persist(StorageLevel::MEMORY_ONLY_SER);
        }
        out
    }

    /// The number of elements in each window (incremental, with an inverse reduce: needs a
    /// checkpoint directory). Like Spark, emits nothing until the first element arrives, and `0`
    /// once everything has left the window.
    #[track_caller]
    pub fn count_by_window(&self, window: Duration, slide: Duration) -> DStream<u64> {
        self.map(|_| 1u64)
            .reduce_by_window_inv(|a, b| a + b, |a, b| a - b, window, slide)
    }

    /// Each window reduced with `f` (recomputed from the batches' partial reductions).
    #[track_caller]
    pub fn reduce_by_window(
        &self,
        f: impl Fn(T, T) -> T + Send + Sync + 'static,
        window: Duration,
        slide: Duration,
    ) -> DStream<T> {
        let f = Arc::new(f);
        let g = f.clone();
        self.reduce(move |a, b| f(a, b))
            .window(window, slide)
            .reduce(move |a, b| g(a, b))
    }

    /// Each window reduced incrementally: the previous window's value, minus (`inv_f`) the
    /// batches that left, plus (`f`) those that entered. Needs a checkpoint directory.
    #[track_caller]
    pub fn reduce_by_window_inv(
        &self,
        f: impl Fn(T, T) -> T + Send + Sync + 'static,
        inv_f: impl Fn(T, T) -> T + Send + Sync + 'static,
        window: Duration,
        slide: Duration,
    ) -> DStream<T> {
        self.map(|x| (0u8, x))
            .reduce_by_key_and_window_inv_n(f, inv_f, window, slide, 1, None)
            .map(|(_, v)| v)
    }
}

impl<T: Key> DStream<T> {
    /// How often each distinct element occurs in each window (incremental; keys whose count drops
    /// to zero are removed). Needs a checkpoint directory.
    #[track_caller]
    pub fn count_by_value_and_window(
        &self,
        window: Duration,
        slide: Duration,
    ) -> DStream<(T, u64)> {
        let n = self.context().default_parallelism();
        self.count_by_value_and_window_n(window, slide, n)
    }

    /// [`count_by_value_and_window`](Self::count_by_value_and_window) into `num_partitions`
    /// partitions.
    #[track_caller]
    pub fn count_by_value_and_window_n(
        &self,
        window: Duration,
        slide: Duration,
        num_partitions: usize,
    ) -> DStream<(T, u64)> {
        self.map(|x| (x, 1u64)).reduce_by_key_and_window_inv_n(
            |a, b| a + b,
            |a, b| a - b,
            window,
            slide,
            num_partitions,
            Some(Arc::new(|kv: &(T, u64)| kv.1 != 0)),
        )
    }
}

impl<K: Key, V: Data> DStream<(K, V)> {
    /// Each key's values over each window, in time order.
    #[track_caller]
    pub fn group_by_key_and_window(
        &self,
        window: Duration,
        slide: Duration,
    ) -> DStream<(K, Vec<V>)> {
        self.group_by_key_and_window_n(window, slide, self.default_partitions())
    }

    /// [`group_by_key_and_window`](Self::group_by_key_and_window) into `num_partitions`
    /// partitions.
    #[track_caller]
    pub fn group_by_key_and_window_n(
        &self,
        window: Duration,
        slide: Duration,
        num_partitions: usize,
    ) -> DStream<(K, Vec<V>)> {
        self.group_by_key_n(num_partitions)
            .window(window, slide)
            .transform_named("group_by_key_and_window", move |r, _| {
                r.combine_by_key_with(
                    |vs: Vec<V>| vs,
                    |mut a: Vec<V>, b: Vec<V>| {
                        a.extend(b);
                        a
                    },
                    |mut a: Vec<V>, b: Vec<V>| {
                        a.extend(b);
                        a
                    },
                    Arc::new(HashPartitioner::new(num_partitions)),
                    true,
                )
            })
    }

    /// Each key's values over each window reduced with `f` (recomputed from the batches'
    /// per-key reductions; no checkpoint needed).
    #[track_caller]
    pub fn reduce_by_key_and_window(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        window: Duration,
        slide: Duration,
    ) -> DStream<(K, V)> {
        self.reduce_by_key_and_window_n(f, window, slide, self.default_partitions())
    }

    /// [`reduce_by_key_and_window`](Self::reduce_by_key_and_window) into `num_partitions`
    /// partitions.
    #[track_caller]
    pub fn reduce_by_key_and_window_n(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        window: Duration,
        slide: Duration,
        num_partitions: usize,
    ) -> DStream<(K, V)> {
        let f = Arc::new(f);
        let g = f.clone();
        self.reduce_by_key_n(move |a, b| f(a, b), num_partitions)
            .window(window, slide)
            .reduce_by_key_n(move |a, b| g(a, b), num_partitions)
    }
}
