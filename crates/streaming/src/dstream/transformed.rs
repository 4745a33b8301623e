//! Batch-wise transformations: each applies an RDD operation to the RDD of every batch
//! (`map`, `filter`, `count`, `transform`, …), plus `union` and `transform_with` over several
//! streams of the same slide.

use super::{DStream, OpSpec};
use crate::graph::DStreamBase;
use crate::time::show;
use crate::{Key, Time};
use spate_core::{BoxIter, Data, Rdd};
use std::sync::Arc;

impl<T: Data> DStream<T> {
    /// The general batch-wise transformation: `f` maps each batch's RDD (and its time) to a new
    /// RDD.
    #[track_caller]
    pub fn transform<U: Data>(
        &self,
        f: impl Fn(&Rdd<T>, Time) -> Rdd<U> + Send + Sync + 'static,
    ) -> DStream<U> {
        self.transform_named("transform", f)
    }

    #[track_caller]
    pub(crate) fn transform_named<U: Data>(
        &self,
        name: &'static str,
        f: impl Fn(&Rdd<T>, Time) -> Rdd<U> + Send + Sync + 'static,
    ) -> DStream<U> {
        let parent = self.clone();
        self.derive(name, move |_, t| {
            Ok(parent.node.get_or_compute(t)?.map(|r| f(&r, t)))
        })
    }

    /// Combines each batch's RDDs of this stream and `other` (which must have the same slide).
    #[track_caller]
    pub fn transform_with<U: Data, V: Data>(
        &self,
        other: &DStream<U>,
        f: impl Fn(&Rdd<T>, &Rdd<U>, Time) -> Rdd<V> + Send + Sync + 'static,
    ) -> DStream<V> {
        self.combine_with("transform_with", other, f)
    }

    /// A two-stream operator: `f` gets both streams' RDDs of each time; no RDD if either has none.
    #[track_caller]
    pub(crate) fn combine_with<U: Data, V: Data>(
        &self,
        name: &'static str,
        other: &DStream<U>,
        f: impl Fn(&Rdd<T>, &Rdd<U>, Time) -> Rdd<V> + Send + Sync + 'static,
    ) -> DStream<V> {
        let (a, b) = (self.clone(), other.clone());
        let mut spec = OpSpec::derived(name, self, move |_, t| {
            let (Some(x), Some(y)) = (a.node.get_or_compute(t)?, b.node.get_or_compute(t)?) else {
                return Ok(None);
            };
            Ok(Some(f(&x, &y, t)))
        });
        spec.parents.push(other.node.clone());
        let out = DStream::create(&self.node.env, &self.node.graph, spec);
        out.check_same_slide(self.slide(), other.slide());
        out
    }

    fn check_same_slide(&self, a: std::time::Duration, b: std::time::Duration) {
        if a != b {
            self.graph_error(format!(
                "streams with different slides cannot be combined ({} and {}): window them to a common slide first",
                show(a.as_millis() as u64),
                show(b.as_millis() as u64)
            ));
        }
    }

    /// Applies `f` to every element.
    #[track_caller]
    pub fn map<U: Data>(&self, f: impl Fn(T) -> U + Send + Sync + 'static) -> DStream<U> {
        let f = Arc::new(f);
        self.transform_named("map", move |r, _| {
            let f = f.clone();
            r.map(move |x| f(x))
        })
    }

    /// Applies `f` to every element and flattens the results.
    #[track_caller]
    pub fn flat_map<U: Data, I>(&self, f: impl Fn(T) -> I + Send + Sync + 'static) -> DStream<U>
    where
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: 'static,
    {
        let f = Arc::new(f);
        self.transform_named("flat_map", move |r, _| {
            let f = f.clone();
            r.flat_map(move |x| f(x))
        })
    }

    /// Keeps the elements for which `f` is true.
    #[track_caller]
    pub fn filter(&self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> DStream<T> {
        let f = Arc::new(f);
        self.transform_named("filter", move |r, _| {
            let f = f.clone();
            r.filter(move |x| f(x))
        })
    }

    /// Applies `f` to each partition (block) of every batch.
    #[track_caller]
    pub fn map_partitions<U: Data, I>(
        &self,
        f: impl Fn(BoxIter<T>) -> I + Send + Sync + 'static,
    ) -> DStream<U>
    where
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: 'static,
    {
        let f = Arc::new(f);
        self.transform_named("map_partitions", move |r, _| {
            let f = f.clone();
            r.map_partitions(move |it| f(it))
        })
    }

    /// Turns each partition of every batch into one element: the vector of its elements.
    #[track_caller]
    pub fn glom(&self) -> DStream<Vec<T>> {
        self.transform_named("glom", |r, _| r.glom())
    }

    /// Redistributes every batch over `num_partitions` partitions.
    #[track_caller]
    pub fn repartition(&self, num_partitions: usize) -> DStream<T> {
        self.transform_named("repartition", move |r, _| r.repartition(num_partitions))
    }

    /// The elements of this stream and `other` (same slide), batch by batch.
    #[track_caller]
    pub fn union(&self, other: &DStream<T>) -> DStream<T> {
        union_of(&[self.clone(), other.clone()])
    }

    /// Each batch's element count, as a one-element RDD (`0` for an empty batch).
    #[track_caller]
    pub fn count(&self) -> DStream<u64> {
        self.transform_named("count", |r, _| {
            r.map_partitions(|it| std::iter::once(it.count() as u64))
                .coalesce(1, false)
                .map_partitions(|it| std::iter::once(it.sum::<u64>()))
        })
    }

    /// Each batch reduced with the associative `f`: one element, or none for an empty batch.
    #[track_caller]
    pub fn reduce(&self, f: impl Fn(T, T) -> T + Send + Sync + 'static) -> DStream<T> {
        let f = Arc::new(f);
        self.transform_named("reduce", move |r, _| {
            let (f1, f2) = (f.clone(), f.clone());
            r.map_partitions(move |it| it.reduce(|a, b| f1(a, b)))
                .coalesce(1, false)
                .map_partitions(move |it| it.reduce(|a, b| f2(a, b)))
        })
    }
}

impl<T: Key> DStream<T> {
    /// How often each distinct element occurs in each batch.
    #[track_caller]
    pub fn count_by_value(&self) -> DStream<(T, u64)> {
        let n = self.context().default_parallelism();
        self.count_by_value_n(n)
    }

    /// [`count_by_value`](Self::count_by_value) into `num_partitions` partitions.
    #[track_caller]
    pub fn count_by_value_n(&self, num_partitions: usize) -> DStream<(T, u64)> {
        self.transform_named("count_by_value", move |r, _| {
            r.map(|x| (x, 1u64))
                .reduce_by_key_n(|a, b| a + b, num_partitions)
        })
    }
}

/// The union of streams with one slide (an error is recorded, and reported by `start()`, if the
/// slides differ or the list is empty).
#[track_caller]
pub(crate) fn union_of<T: Data>(streams: &[DStream<T>]) -> DStream<T> {
    transform_all("union", streams, |rdds, _| {
        let ctx = rdds[0].context().clone();
        ctx.union(rdds)
    })
}

/// An operator over several streams of one slide: `f` gets their RDDs of each time.
#[track_caller]
pub(crate) fn transform_all<T: Data, U: Data>(
    name: &'static str,
    streams: &[DStream<T>],
    f: impl Fn(&[Rdd<T>], Time) -> Rdd<U> + Send + Sync + 'static,
) -> DStream<U> {
    let first = streams
        .first()
        .expect("at least one stream (checked by the caller)");
    let parents: Vec<DStream<T>> = streams.to_vec();
    let ps = parents.clone();
    let mut spec = OpSpec::derived(name, first, move |_, t| {
        let mut rdds = Vec::with_capacity(ps.len());
        for p in &ps {
            match p.node.get_or_compute(t)? {
                Some(r) => rdds.push(r),
                None => return Ok(None),
            }
        }
        Ok(Some(f(&rdds, t)))
    });
    spec.parents = parents
        .iter()
        .map(|p| p.node.clone() as Arc<dyn DStreamBase>)
        .collect();
    let out = DStream::create(&first.node.env, &first.node.graph, spec);
    for p in &parents[1..] {
        out.check_same_slide(first.slide(), p.slide());
    }
    out
}
