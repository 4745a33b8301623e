//! `parallelize`: an RDD over an in-memory collection, sliced like Spark.

use super::{BoxIter, Compute, Dependency, Rdd, TaskContext, arc_iter};
use crate::sync::Arc;
use crate::{Context, Result};
use spate_storage::Data;

struct ParallelCollection<T> {
    slices: Vec<Arc<Vec<T>>>,
}

impl<T: Data> Compute<T> for ParallelCollection<T> {
    fn num_partitions(&self) -> usize {
        self.slices.len()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        Vec::new()
    }
    fn compute(&self, split: usize, _tc: &TaskContext) -> Result<BoxIter<T>> {
        Ok(arc_iter(self.slices[split].clone()))
    }
}

/// Spark's slicing: with `n` elements and `p` slices, slice `i` holds `[i*n/p, (i+1)*n/p)`.
pub(crate) fn slice<T>(data: Vec<T>, slices: usize) -> Vec<Vec<T>> {
    let p = slices.max(1);
    let n = data.len();
    let mut out = Vec::with_capacity(p);
    let mut it = data.into_iter();
    for i in 0..p {
        let (start, end) = (i * n / p, (i + 1) * n / p);
        out.push(it.by_ref().take(end - start).collect());
    }
    out
}

impl Context {
    /// An RDD over `data`, cut into `num_slices` partitions (at least 1) the way Spark cuts it:
    /// partition `i` holds elements `[i*n/p, (i+1)*n/p)`.
    #[track_caller]
    pub fn parallelize<T: Data>(&self, data: Vec<T>, num_slices: usize) -> Rdd<T> {
        let slices = slice(data, num_slices).into_iter().map(Arc::new).collect();
        Rdd::from_op(
            self,
            "parallelize",
            std::panic::Location::caller(),
            ParallelCollection { slices },
        )
    }

    /// An RDD whose partitions are exactly the given vectors (one partition per vector).
    #[track_caller]
    pub fn parallelize_partitions<T: Data>(&self, partitions: Vec<Vec<T>>) -> Rdd<T> {
        let slices = partitions.into_iter().map(Arc::new).collect();
        Rdd::from_op(
            self,
            "parallelize",
            std::panic::Location::caller(),
            ParallelCollection { slices },
        )
    }

    /// An RDD with no partitions.
    #[track_caller]
    pub fn empty_rdd<T: Data>(&self) -> Rdd<T> {
        Rdd::from_op(
            self,
            "empty",
            std::panic::Location::caller(),
            ParallelCollection { slices: Vec::new() },
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn slices_like_spark() {
        let s = super::slice((0..10).collect::<Vec<_>>(), 3);
        assert_eq!(s, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8, 9]]);
        assert_eq!(super::slice(vec![1], 3), vec![vec![], vec![], vec![1]]);
    }
}
