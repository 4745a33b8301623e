//! Actions: operations that run a job and return a result to the caller.

use super::{BoxIter, Rdd};
use crate::{Key, Result, scheduler};
use spate_storage::Data;
use std::collections::HashMap;

impl<T: Data> Rdd<T> {
    fn all_partitions(&self) -> Vec<usize> {
        (0..self.num_partitions()).collect()
    }

    /// All elements, partition by partition.
    pub fn collect(&self) -> Result<Vec<T>> {
        let parts = scheduler::run_job(self, &self.all_partitions(), |_, it| Ok(it.into_vec()))?;
        Ok(parts.into_iter().flatten().collect())
    }

    /// The number of elements.
    pub fn count(&self) -> Result<u64> {
        let counts =
            scheduler::run_job(self, &self.all_partitions(), |_, it| Ok(it.count() as u64))?;
        Ok(counts.into_iter().sum())
    }

    /// Combines all elements with the associative, commutative `f`; `None` for an empty RDD.
    pub fn reduce(&self, f: impl Fn(T, T) -> T + Send + Sync) -> Result<Option<T>> {
        let partials = scheduler::run_job(self, &self.all_partitions(), |_, it| Ok(it.reduce(&f)))?;
        Ok(partials.into_iter().flatten().reduce(&f))
    }

    /// Folds every partition from `zero` with `f`, then folds the partial results from `zero`
    /// (so `zero` must be an identity of `f`, as in Spark).
    pub fn fold(&self, zero: T, f: impl Fn(T, T) -> T + Send + Sync) -> Result<T> {
        let z = zero.clone();
        let partials = scheduler::run_job(self, &self.all_partitions(), |_, it| {
            Ok(it.fold(z.clone(), &f))
        })?;
        Ok(partials.into_iter().fold(zero, &f))
    }

    /// Aggregates with `seq` within partitions and `comb` across them, both starting at `zero`.
    pub fn aggregate<U: Data>(
        &self,
        zero: U,
        seq: impl Fn(U, T) -> U + Send + Sync,
        comb: impl Fn(U, U) -> U + Send + Sync,
    ) -> Result<U> {
        let z = zero.clone();
        let partials = scheduler::run_job(self, &self.all_partitions(), |_, it| {
            Ok(it.fold(z.clone(), &seq))
        })?;
        Ok(partials.into_iter().fold(zero, comb))
    }

    /// The first `n` elements, in partition order. Scans one partition first, then more (four
    /// times as many each round) until it has `n`, like Spark.
    pub fn take(&self, n: usize) -> Result<Vec<T>> {
        let mut out = Vec::with_capacity(n.min(1024));
        let total = self.num_partitions();
        let mut next = 0;
        let mut batch = 1;
        while out.len() < n && next < total {
            let parts: Vec<usize> = (next..(next + batch).min(total)).collect();
            next += parts.len();
            let want = n - out.len();
            let got = scheduler::run_job(self, &parts, move |_, it| {
                Ok(it.take(want).collect::<Vec<T>>())
            })?;
            for part in got {
                let room = n - out.len();
                out.extend(part.into_iter().take(room));
            }
            batch *= 4;
        }
        Ok(out)
    }

    /// The first element, if any.
    pub fn first(&self) -> Result<Option<T>> {
        Ok(self.take(1)?.into_iter().next())
    }

    /// Runs `f` on every element (on the worker threads).
    pub fn foreach(&self, f: impl Fn(T) + Send + Sync) -> Result<()> {
        scheduler::run_job(self, &self.all_partitions(), |_, it| {
            it.for_each(&f);
            Ok(())
        })?;
        Ok(())
    }

    /// Runs `f` on every partition's iterator (on the worker threads).
    pub fn foreach_partition(&self, f: impl Fn(BoxIter<T>) + Send + Sync) -> Result<()> {
        scheduler::run_job(self, &self.all_partitions(), |_, it| {
            f(it);
            Ok(())
        })?;
        Ok(())
    }

    /// The elements of each partition, as one vector per partition.
    pub fn collect_partitions(&self) -> Result<Vec<Vec<T>>> {
        scheduler::run_job(self, &self.all_partitions(), |_, it| Ok(it.into_vec()))
    }
}

impl<T: Key> Rdd<T> {
    /// How many times each distinct element occurs.
    pub fn count_by_value(&self) -> Result<HashMap<T, u64>> {
        Ok(self
            .map(|x| (x, 1u64))
            .reduce_by_key(|a, b| a + b)
            .collect()?
            .into_iter()
            .collect())
    }
}

impl<K: Key, V: Data> Rdd<(K, V)> {
    /// How many values each key has.
    pub fn count_by_key(&self) -> Result<HashMap<K, u64>> {
        self.map_values(|_| 1u64)
            .reduce_by_key(|a, b| a + b)
            .collect()
            .map(|v| v.into_iter().collect())
    }

    /// The pairs as a map (a later value of a key replaces an earlier one).
    pub fn collect_as_map(&self) -> Result<HashMap<K, V>> {
        Ok(self.collect()?.into_iter().collect())
    }

    /// The values of `key`.
    pub fn lookup(&self, key: &K) -> Result<Vec<V>> {
        let key = key.clone();
        self.filter(move |(k, _)| *k == key).values().collect()
    }
}
