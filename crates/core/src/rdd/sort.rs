//! `sort_by_key`: a range partitioner sampled from the data, then a sort within each partition.

use super::shuffled::plain_bucketer;
use super::{BoxIter, Rdd};
use crate::sync::Arc;
use crate::{Key, Partitioner, PartitionerInfo};
use spate_storage::Data;
use std::sync::OnceLock;

/// Splits keys into ranges with bounds sampled from the data before the shuffle runs.
struct RangePartitioner<K> {
    partitions: usize,
    ascending: bool,
    id: u64,
    bounds: OnceLock<Vec<K>>,
}

impl<K: Key + Ord> Partitioner<K> for RangePartitioner<K> {
    fn num_partitions(&self) -> usize {
        self.partitions
    }
    fn partition(&self, key: &K) -> usize {
        let bounds = self.bounds.get().map(Vec::as_slice).unwrap_or(&[]);
        let p = bounds.partition_point(|b| b < key);
        if self.ascending {
            p
        } else {
            self.partitions - 1 - p
        }
    }
    fn info(&self) -> PartitionerInfo {
        PartitionerInfo::Range {
            id: self.id,
            partitions: self.partitions,
            ascending: self.ascending,
        }
    }
}

/// Picks `partitions - 1` bounds from sorted samples: keys at evenly spaced ranks.
fn bounds_from_samples<K: Ord + Clone>(mut samples: Vec<K>, partitions: usize) -> Vec<K> {
    samples.sort();
    let mut bounds: Vec<K> = Vec::new();
    if samples.is_empty() {
        return bounds;
    }
    for i in 1..partitions {
        let b = samples[(i * samples.len() / partitions).min(samples.len() - 1)].clone();
        if bounds.last() != Some(&b) {
            bounds.push(b);
        }
    }
    bounds
}

impl<K: Key + Ord, V: Data> Rdd<(K, V)> {
    /// Sorts by key: partition `i` holds keys below those of partition `i + 1` (ascending) or
    /// above (descending), each sorted. Equal keys keep their relative order.
    #[track_caller]
    pub fn sort_by_key(&self, ascending: bool) -> Rdd<(K, V)> {
        self.sort_by_key_n(ascending, self.num_partitions())
    }

    /// [`sort_by_key`](Self::sort_by_key) into `num_partitions` partitions.
    #[track_caller]
    pub fn sort_by_key_n(&self, ascending: bool, num_partitions: usize) -> Rdd<(K, V)> {
        let partitions = num_partitions.max(1);
        let rp = Arc::new(RangePartitioner {
            partitions,
            ascending,
            id: self.id(),
            bounds: OnceLock::new(),
        });
        let (parent, rp2) = (self.clone(), rp.clone());
        let per_partition = 20 * partitions;
        let prepare = Box::new(move || {
            if rp2.bounds.get().is_some() {
                return Ok(());
            }
            let samples = parent
                .map_partitions(move |it| {
                    let keys: Vec<K> = it.map(|(k, _)| k).collect();
                    let step = keys.len().div_ceil(per_partition).max(1);
                    keys.into_iter().step_by(step).collect::<Vec<_>>()
                })
                .collect()?;
            let _ = rp2.bounds.set(bounds_from_samples(samples, partitions));
            Ok(())
        });
        self.shuffle(
            "sort_by_key",
            rp,
            plain_bucketer(),
            Some(prepare),
            move |it| {
                let mut v: Vec<(K, V)> = it.into_vec();
                if ascending {
                    v.sort_by(|a, b| a.0.cmp(&b.0));
                } else {
                    v.sort_by(|a, b| b.0.cmp(&a.0));
                }
                BoxIter::new(v)
            },
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bounds_are_evenly_ranked_and_distinct() {
        assert_eq!(
            super::bounds_from_samples((0..100).collect(), 4),
            vec![25, 50, 75]
        );
        assert_eq!(super::bounds_from_samples(vec![1, 1, 1, 1], 3), vec![1]);
        assert!(super::bounds_from_samples(Vec::<u8>::new(), 3).is_empty());
    }
}
