//! `union`: the partitions of several RDDs side by side (range dependencies, no shuffle).

use super::{BoxIter, Compute, Dependency, Rdd, TaskContext};
use crate::{Context, Result};
use spate_storage::Data;

struct Union<T: Data> {
    parents: Vec<Rdd<T>>,
}

impl<T: Data> Union<T> {
    fn locate(&self, mut split: usize) -> (usize, usize) {
        for (i, p) in self.parents.iter().enumerate() {
            let n = p.num_partitions();
            if split < n {
                return (i, split);
            }
            split -= n;
        }
        panic!("partition index out of range for union")
    }
}

impl<T: Data> Compute<T> for Union<T> {
    fn num_partitions(&self) -> usize {
        self.parents.iter().map(|p| p.num_partitions()).sum()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        let mut out_start = 0;
        self.parents
            .iter()
            .map(|p| {
                let len = p.num_partitions();
                let d = Dependency::Range {
                    rdd: p.as_base(),
                    in_start: 0,
                    out_start,
                    len,
                };
                out_start += len;
                d
            })
            .collect()
    }
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<BoxIter<T>> {
        let (parent, p) = self.locate(split);
        self.parents[parent].iterator(p, tc)
    }
}

impl<T: Data> Rdd<T> {
    /// The elements of this RDD followed by those of `other` (partitions of both, in order).
    #[track_caller]
    pub fn union(&self, other: &Rdd<T>) -> Rdd<T> {
        self.context().union(&[self.clone(), other.clone()])
    }
}

impl Context {
    /// The union of several RDDs: their partitions in order, without a shuffle.
    #[track_caller]
    pub fn union<T: Data>(&self, rdds: &[Rdd<T>]) -> Rdd<T> {
        Rdd::from_op(
            self,
            "union",
            std::panic::Location::caller(),
            Union {
                parents: rdds.to_vec(),
            },
        )
    }
}
