//! `cogroup` and the joins built on it. Each side is read narrowly when it is already partitioned
//! like the result, and through a shuffle otherwise.

use super::arrival::ArrivalMap;
use super::pair::default_partitioner;
use super::shuffled::{ShuffleDependency, plain_bucketer};
use super::{BoxIter, Compute, Dependency, Rdd, TaskContext};
use crate::sync::Arc;
use crate::{HashPartitioner, Key, Partitioner, PartitionerInfo, Result};
use spate_storage::Data;

enum Side<K: Key, V: Data> {
    Narrow(Rdd<(K, V)>),
    Shuffled(Arc<ShuffleDependency<K, V, V>>),
}

impl<K: Key, V: Data> Side<K, V> {
    fn new(rdd: &Rdd<(K, V)>, partitioner: &Arc<dyn Partitioner<K>>) -> Side<K, V> {
        if rdd.partitioner().as_ref() == Some(&partitioner.info()) {
            Side::Narrow(rdd.clone())
        } else {
            Side::Shuffled(Arc::new(ShuffleDependency::new(
                rdd,
                partitioner.clone(),
                plain_bucketer(),
                None,
            )))
        }
    }

    fn dependency(&self) -> Dependency {
        match self {
            Side::Narrow(r) => Dependency::OneToOne(r.as_base()),
            Side::Shuffled(d) => Dependency::Shuffle(d.clone()),
        }
    }

    fn read(&self, split: usize, tc: &TaskContext) -> Result<BoxIter<(K, V)>> {
        match self {
            Side::Narrow(r) => r.iterator(split, tc),
            Side::Shuffled(d) => Ok(BoxIter::new(d.fetch(split)?)),
        }
    }
}

/// Every pair of one value from each side, left-major (Spark's join order).
fn product<A: Clone, B: Clone>(xs: &[A], ys: &[B]) -> Vec<(A, B)> {
    let mut out = Vec::with_capacity(xs.len() * ys.len());
    for x in xs {
        for y in ys {
            out.push((x.clone(), y.clone()));
        }
    }
    out
}

/// The values as options, or a single `None` when there are none (the outer side of a join).
fn optional<T>(values: Vec<T>) -> Vec<Option<T>> {
    if values.is_empty() {
        vec![None]
    } else {
        values.into_iter().map(Some).collect()
    }
}

struct CoGrouped<K: Key, V: Data, W: Data> {
    left: Side<K, V>,
    right: Side<K, W>,
    partitioner: Arc<dyn Partitioner<K>>,
}

impl<K: Key, V: Data, W: Data> Compute<(K, (Vec<V>, Vec<W>))> for CoGrouped<K, V, W> {
    fn num_partitions(&self) -> usize {
        self.partitioner.num_partitions()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![self.left.dependency(), self.right.dependency()]
    }
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<BoxIter<(K, (Vec<V>, Vec<W>))>> {
        let mut groups: ArrivalMap<K, (Vec<V>, Vec<W>)> = ArrivalMap::default();
        for (k, v) in self.left.read(split, tc)? {
            groups.slot(k, Default::default).0.push(v);
        }
        for (k, w) in self.right.read(split, tc)? {
            groups.slot(k, Default::default).1.push(w);
        }
        Ok(BoxIter::new(groups.into_ordered()))
    }
    fn partitioner(&self) -> Option<PartitionerInfo> {
        Some(self.partitioner.info())
    }
}

impl<K: Key, V: Data> Rdd<(K, V)> {
    fn join_partitioner<W: Data>(&self, other: &Rdd<(K, W)>) -> Arc<dyn Partitioner<K>> {
        Arc::new(default_partitioner(
            &[self.partitioner(), other.partitioner()],
            self.context().default_parallelism(),
        ))
    }

    /// For each key in either RDD, the values it has in this one and in `other`.
    #[track_caller]
    pub fn cogroup<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (Vec<V>, Vec<W>))> {
        self.cogroup_with(other, self.join_partitioner(other))
    }

    /// [`cogroup`](Self::cogroup) into `num_partitions` hash partitions.
    #[track_caller]
    pub fn cogroup_n<W: Data>(
        &self,
        other: &Rdd<(K, W)>,
        num_partitions: usize,
    ) -> Rdd<(K, (Vec<V>, Vec<W>))> {
        self.cogroup_with(other, Arc::new(HashPartitioner::new(num_partitions)))
    }

    /// [`cogroup`](Self::cogroup) with an explicit partitioner.
    #[track_caller]
    pub fn cogroup_with<W: Data>(
        &self,
        other: &Rdd<(K, W)>,
        partitioner: Arc<dyn Partitioner<K>>,
    ) -> Rdd<(K, (Vec<V>, Vec<W>))> {
        let op = CoGrouped {
            left: Side::new(self, &partitioner),
            right: Side::new(other, &partitioner),
            partitioner,
        };
        Rdd::from_op(
            self.context(),
            "cogroup",
            std::panic::Location::caller(),
            op,
        )
    }

    /// Inner join: every pair of values of a key present in both RDDs.
    #[track_caller]
    pub fn join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (V, W))> {
        self.join_with(other, self.join_partitioner(other))
    }

    /// [`join`](Self::join) into `num_partitions` hash partitions.
    #[track_caller]
    pub fn join_n<W: Data>(&self, other: &Rdd<(K, W)>, num_partitions: usize) -> Rdd<(K, (V, W))> {
        self.join_with(other, Arc::new(HashPartitioner::new(num_partitions)))
    }

    /// [`join`](Self::join) with an explicit partitioner.
    #[track_caller]
    pub fn join_with<W: Data>(
        &self,
        other: &Rdd<(K, W)>,
        partitioner: Arc<dyn Partitioner<K>>,
    ) -> Rdd<(K, (V, W))> {
        self.cogroup_with(other, partitioner)
            .flat_map_values(|(vs, ws)| product(&vs, &ws))
    }

    /// Left outer join: every value of this RDD, with each matching value of `other` or `None`.
    #[track_caller]
    pub fn left_outer_join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (V, Option<W>))> {
        self.left_outer_join_with(other, self.join_partitioner(other))
    }

    /// [`left_outer_join`](Self::left_outer_join) into `num_partitions` hash partitions.
    #[track_caller]
    pub fn left_outer_join_n<W: Data>(
        &self,
        other: &Rdd<(K, W)>,
        num_partitions: usize,
    ) -> Rdd<(K, (V, Option<W>))> {
        self.left_outer_join_with(other, Arc::new(HashPartitioner::new(num_partitions)))
    }

    /// [`left_outer_join`](Self::left_outer_join) with an explicit partitioner.
    #[track_caller]
    pub fn left_outer_join_with<W: Data>(
        &self,
        other: &Rdd<(K, W)>,
        partitioner: Arc<dyn Partitioner<K>>,
    ) -> Rdd<(K, (V, Option<W>))> {
        self.cogroup_with(other, partitioner)
            .flat_map_values(|(vs, ws)| product(&vs, &optional(ws)))
    }

    /// Right outer join: every value of `other`, with each matching value of this RDD or `None`.
    #[track_caller]
    pub fn right_outer_join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (Option<V>, W))> {
        self.right_outer_join_with(other, self.join_partitioner(other))
    }

    /// [`right_outer_join`](Self::right_outer_join) into `num_partitions` hash partitions.
    #[track_caller]
    pub fn right_outer_join_n<W: Data>(
        &self,
        other: &Rdd<(K, W)>,
        num_partitions: usize,
    ) -> Rdd<(K, (Option<V>, W))> {
        self.right_outer_join_with(other, Arc::new(HashPartitioner::new(num_partitions)))
    }

    /// [`right_outer_join`](Self::right_outer_join) with an explicit partitioner.
    #[track_caller]
    pub fn right_outer_join_with<W: Data>(
        &self,
        other: &Rdd<(K, W)>,
        partitioner: Arc<dyn Partitioner<K>>,
    ) -> Rdd<(K, (Option<V>, W))> {
        self.cogroup_with(other, partitioner)
            .flat_map_values(|(vs, ws)| product(&optional(vs), &ws))
    }

    /// Full outer join: every value of either RDD, paired with the other side's matches or `None`.
    #[track_caller]
    pub fn full_outer_join<W: Data>(
        &self,
        other: &Rdd<(K, W)>,
    ) -> Rdd<(K, (Option<V>, Option<W>))> {
        self.full_outer_join_with(other, self.join_partitioner(other))
    }

    /// [`full_outer_join`](Self::full_outer_join) into `num_partitions` hash partitions.
    #[track_caller]
    pub fn full_outer_join_n<W: Data>(
        &self,
        other: &Rdd<(K, W)>,
        num_partitions: usize,
    ) -> Rdd<(K, (Option<V>, Option<W>))> {
        self.full_outer_join_with(other, Arc::new(HashPartitioner::new(num_partitions)))
    }

    /// [`full_outer_join`](Self::full_outer_join) with an explicit partitioner.
    #[track_caller]
    pub fn full_outer_join_with<W: Data>(
        &self,
        other: &Rdd<(K, W)>,
        partitioner: Arc<dyn Partitioner<K>>,
    ) -> Rdd<(K, (Option<V>, Option<W>))> {
        self.cogroup_with(other, partitioner)
            .flat_map_values(|(vs, ws)| product(&optional(vs), &optional(ws)))
    }
}

struct CoGroupedMany<K: Key, V: Data> {
    sides: Vec<Side<K, V>>,
    partitioner: Arc<dyn Partitioner<K>>,
}

impl<K: Key, V: Data> Compute<(K, Vec<Vec<V>>)> for CoGroupedMany<K, V> {
    fn num_partitions(&self) -> usize {
        self.partitioner.num_partitions()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        self.sides.iter().map(Side::dependency).collect()
    }
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<BoxIter<(K, Vec<Vec<V>>)>> {
        let n = self.sides.len();
        let mut groups: ArrivalMap<K, Vec<Vec<V>>> = ArrivalMap::default();
        for (i, side) in self.sides.iter().enumerate() {
            for (k, v) in side.read(split, tc)? {
                groups.slot(k, || vec![Vec::new(); n])[i].push(v);
            }
        }
        Ok(BoxIter::new(groups.into_ordered()))
    }
    fn partitioner(&self) -> Option<PartitionerInfo> {
        Some(self.partitioner.info())
    }
}

impl crate::Context {
    /// Cogroups any number of RDDs of the same pair type: for each key, the list of its values in
    /// each RDD (`result[i]` for `rdds[i]`). RDDs already partitioned by `partitioner` are read
    /// without a shuffle. Windowed reductions are built on this.
    #[track_caller]
    pub fn cogroup_many<K: Key, V: Data>(
        &self,
        rdds: &[Rdd<(K, V)>],
        partitioner: Arc<dyn Partitioner<K>>,
    ) -> Rdd<(K, Vec<Vec<V>>)> {
        let sides = rdds.iter().map(|r| Side::new(r, &partitioner)).collect();
        Rdd::from_op(
            self,
            "cogroup",
            std::panic::Location::caller(),
            CoGroupedMany { sides, partitioner },
        )
    }
}
