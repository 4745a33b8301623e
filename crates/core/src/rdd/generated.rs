//! `from_partitions`: an RDD whose partitions are computed by a function of their index, the
//! building block of sources that read an external system from the tasks themselves (a Kafka
//! offset range per partition, a key range of a database, …).

use super::{BoxIter, Compute, Dependency, Rdd, TaskContext};
use crate::sync::Arc;
use crate::{Context, Result};
use spate_storage::Data;

type ReadFn<T> = dyn Fn(usize) -> Result<Vec<T>> + Send + Sync;

struct Generated<T> {
    partitions: usize,
    read: Arc<ReadFn<T>>,
}

impl<T: Data> Compute<T> for Generated<T> {
    fn num_partitions(&self) -> usize {
        self.partitions
    }
    fn dependencies(&self) -> Vec<Dependency> {
        Vec::new()
    }
    fn compute(&self, split: usize, _tc: &TaskContext) -> Result<BoxIter<T>> {
        Ok(BoxIter::new((self.read)(split)?))
    }
}

impl Context {
    /// An RDD of `partitions` partitions whose partition `i` is `read(i)`, called by the task
    /// that computes it (again each time the partition is recomputed, unless the RDD is
    /// persisted).
    ///
    /// `read` is the RDD's whole lineage, so it must be deterministic: reading partition `i`
    /// twice must give the same values (read a fixed range, never "whatever is new"). An `Err`
    /// fails the task and so the job; use [`Error::Source`](crate::Error::Source) for failures
    /// of the external system, with a message that says what to do.
    ///
    /// ```
    /// use spate_core::Context;
    ///
    /// let ctx = Context::new("local[2]").unwrap();
    /// let rdd = ctx.from_partitions(3, |i| Ok(vec![i * 10, i * 10 + 1]));
    /// assert_eq!(rdd.collect().unwrap(), vec![0, 1, 10, 11, 20, 21]);
    /// ```
    #[track_caller]
    pub fn from_partitions<T: Data>(
        &self,
        partitions: usize,
        read: impl Fn(usize) -> Result<Vec<T>> + Send + Sync + 'static,
    ) -> Rdd<T> {
        let op = Generated {
            partitions,
            read: Arc::new(read),
        };
        Rdd::from_op(self, "from_partitions", std::panic::Location::caller(), op)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Context, Error};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn partitions_are_read_by_index_and_reread_unless_persisted() {
        let ctx = Context::new("local[2]").unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let rdd = ctx.from_partitions(4, move |i| {
            c.fetch_add(1, Ordering::SeqCst);
            Ok((0..i as u64).collect::<Vec<u64>>())
        });
        assert_eq!(rdd.num_partitions(), 4);
        assert_eq!(
            rdd.collect_partitions().unwrap(),
            vec![vec![], vec![0], vec![0, 1], vec![0, 1, 2]]
        );
        assert_eq!(rdd.count().unwrap(), 6);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            8,
            "read again by the second job"
        );
        rdd.cache();
        rdd.count().unwrap();
        rdd.count().unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            12,
            "read once more, then cached"
        );
        let empty = ctx.from_partitions::<u8>(0, |_| Ok(vec![1]));
        assert_eq!(empty.collect().unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn a_failed_read_fails_the_job_with_its_message() {
        let ctx = Context::new("local[2]").unwrap();
        let rdd = ctx.from_partitions(3, |i| {
            if i == 1 {
                Err(Error::Source("broker away: start it and retry".into()))
            } else {
                Ok(vec![i])
            }
        });
        let err = rdd.collect().unwrap_err();
        assert!(matches!(err, Error::Source(_)), "{err:?}");
        assert!(err.to_string().contains("broker away"), "{err}");
    }
}
