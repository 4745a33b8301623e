//! Element-wise and partition-wise transformations: `map`, `flat_map`, `filter`,
//! `map_partitions`, `map_partitions_with_index`, `glom`, `sample`, and friends. All are one
//! primitive: a function from (partition index, parent iterator) to an iterator.

use super::{BoxIter, Compute, Dependency, Rdd, TaskContext};
use crate::sync::Arc;
use crate::{PartitionerInfo, Result};
use rand::{Rng, SeedableRng};
use spate_storage::Data;

type PartitionFn<T, U> = dyn Fn(usize, BoxIter<T>) -> BoxIter<U> + Send + Sync;

pub(crate) struct MapPartitions<T: Data, U> {
    parent: Rdd<T>,
    f: Arc<PartitionFn<T, U>>,
    preserves_partitioning: bool,
}

impl<T: Data, U: Data> Compute<U> for MapPartitions<T, U> {
    fn num_partitions(&self) -> usize {
        self.parent.num_partitions()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency::OneToOne(self.parent.as_base())]
    }
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<BoxIter<U>> {
        Ok((self.f)(split, self.parent.iterator(split, tc)?))
    }
    fn partitioner(&self) -> Option<PartitionerInfo> {
        if self.preserves_partitioning {
            self.parent.partitioner()
        } else {
            None
        }
    }
}

impl<T: Data> Rdd<T> {
    /// The general narrow transformation every element-wise operation is built on.
    #[track_caller]
    pub(crate) fn map_partitions_internal<U: Data>(
        &self,
        name: &'static str,
        preserves_partitioning: bool,
        f: impl Fn(usize, BoxIter<T>) -> BoxIter<U> + Send + Sync + 'static,
    ) -> Rdd<U> {
        let op = MapPartitions {
            parent: self.clone(),
            f: Arc::new(f),
            preserves_partitioning,
        };
        Rdd::from_op(self.context(), name, std::panic::Location::caller(), op)
    }

    /// Applies `f` to every element.
    #[track_caller]
    pub fn map<U: Data>(&self, f: impl Fn(T) -> U + Send + Sync + 'static) -> Rdd<U> {
        let f = Arc::new(f);
        self.map_partitions_internal("map", false, move |_, it| {
            let f = f.clone();
            it.map_each(move |x| f(x))
        })
    }

    /// Applies `f` to every element and flattens the results.
    #[track_caller]
    pub fn flat_map<U: Data, I>(&self, f: impl Fn(T) -> I + Send + Sync + 'static) -> Rdd<U>
    where
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: 'static,
    {
        let f = Arc::new(f);
        self.map_partitions_internal("flat_map", false, move |_, it| {
            let f = f.clone();
            it.flat_map_each(move |x| f(x))
        })
    }

    /// Keeps the elements for which `f` is true. Keeps the partitioner.
    #[track_caller]
    pub fn filter(&self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> Rdd<T> {
        let f = Arc::new(f);
        self.map_partitions_internal("filter", true, move |_, it| {
            let f = f.clone();
            it.filter_each(move |x| f(x))
        })
    }

    /// Applies `f` to each partition's iterator.
    #[track_caller]
    pub fn map_partitions<U: Data, I>(
        &self,
        f: impl Fn(BoxIter<T>) -> I + Send + Sync + 'static,
    ) -> Rdd<U>
    where
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: 'static,
    {
        self.map_partitions_internal("map_partitions", false, move |_, it| BoxIter::new(f(it)))
    }

    /// Applies `f` to each partition's index and iterator.
    #[track_caller]
    pub fn map_partitions_with_index<U: Data, I>(
        &self,
        f: impl Fn(usize, BoxIter<T>) -> I + Send + Sync + 'static,
    ) -> Rdd<U>
    where
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: 'static,
    {
        self.map_partitions_internal("map_partitions_with_index", false, move |i, it| {
            BoxIter::new(f(i, it))
        })
    }

    /// Turns each partition into a single element: the vector of its elements.
    #[track_caller]
    pub fn glom(&self) -> Rdd<Vec<T>> {
        self.map_partitions_internal("glom", false, |_, it| {
            BoxIter::new(std::iter::once(it.into_vec()))
        })
    }

    /// Pairs every element with the key `f` computes for it.
    #[track_caller]
    pub fn key_by<K: Data>(&self, f: impl Fn(&T) -> K + Send + Sync + 'static) -> Rdd<(K, T)> {
        let f = Arc::new(f);
        self.map_partitions_internal("key_by", false, move |_, it| {
            let f = f.clone();
            it.map_each(move |x| (f(&x), x))
        })
    }

    /// A random sample: each element is kept with probability `fraction` (without replacement),
    /// or appears a Poisson(`fraction`)-distributed number of times (with replacement). The
    /// generator of partition `i` is seeded from `seed` and `i`, so the sample is deterministic.
    #[track_caller]
    pub fn sample(&self, with_replacement: bool, fraction: f64, seed: u64) -> Rdd<T> {
        let fraction = if fraction.is_finite() {
            fraction.max(0.0)
        } else {
            0.0
        };
        self.map_partitions_internal("sample", true, move |split, it| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(
                seed ^ (split as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            if with_replacement {
                BoxIter::new(it.flat_map(move |x| {
                    let k = poisson(&mut rng, fraction);
                    std::iter::repeat_n(x, k)
                }))
            } else {
                BoxIter::new(it.filter(move |_| rng.random::<f64>() < fraction))
            }
        })
    }
}

/// A Poisson(`lambda`) draw (Knuth's method, split into chunks so large `lambda` stays exact).
fn poisson(rng: &mut impl Rng, lambda: f64) -> usize {
    let mut k = 0;
    let mut remaining = lambda;
    while remaining > 0.0 {
        let step = remaining.min(30.0);
        remaining -= step;
        let limit = (-step).exp();
        let mut p = 1.0;
        loop {
            p *= rng.random::<f64>();
            if p <= limit {
                break;
            }
            k += 1;
        }
    }
    k
}

impl<K: Data, V: Data> Rdd<(K, V)> {
    /// Applies `f` to every value, keeping keys and the partitioner.
    #[track_caller]
    pub fn map_values<W: Data>(&self, f: impl Fn(V) -> W + Send + Sync + 'static) -> Rdd<(K, W)> {
        let f = Arc::new(f);
        self.map_partitions_internal("map_values", true, move |_, it| {
            let f = f.clone();
            it.map_each(move |(k, v)| (k, f(v)))
        })
    }

    /// Applies `f` to every value and pairs each result with the key; keeps the partitioner.
    #[track_caller]
    pub fn flat_map_values<W: Data, I>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> Rdd<(K, W)>
    where
        I: IntoIterator<Item = W> + 'static,
        I::IntoIter: 'static,
    {
        let f = Arc::new(f);
        self.map_partitions_internal("flat_map_values", true, move |_, it| {
            let f = f.clone();
            it.flat_map_each(move |(k, v)| f(v).into_iter().map(move |w| (k.clone(), w)))
        })
    }

    /// The keys.
    #[track_caller]
    pub fn keys(&self) -> Rdd<K> {
        self.map_partitions_internal("keys", false, |_, it| it.map_each(|(k, _)| k))
    }

    /// The values.
    #[track_caller]
    pub fn values(&self) -> Rdd<V> {
        self.map_partitions_internal("values", false, |_, it| it.map_each(|(_, v)| v))
    }
}
