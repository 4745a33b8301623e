//! Oracle tests: every RDD transformation and action against the same computation on plain
//! `Vec`s and `HashMap`s, on random inputs and several partition counts.

use proptest::prelude::*;
use spate_core::{Context, HashPartitioner, Partitioner, Rdd};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock};

static ONE: LazyLock<Context> = LazyLock::new(|| Context::new("local").unwrap());
static TWO: LazyLock<Context> = LazyLock::new(|| Context::new("local[2]").unwrap());

fn ctx(threads: bool) -> &'static Context {
    if threads { &TWO } else { &ONE }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// Pairs with a small key space, so keys repeat.
fn pairs() -> impl Strategy<Value = Vec<(u8, i32)>> {
    proptest::collection::vec((0u8..12, -1000i32..1000), 0..80)
}

fn grouped(v: &[(u8, i32)]) -> BTreeMap<u8, Vec<i32>> {
    let mut m: BTreeMap<u8, Vec<i32>> = BTreeMap::new();
    for (k, x) in v {
        m.entry(*k).or_default().push(*x);
    }
    m
}

/// Spark's slicing of `n` elements into `p` partitions.
fn slices<T: Clone>(v: &[T], p: usize) -> Vec<Vec<T>> {
    (0..p)
        .map(|i| v[i * v.len() / p..(i + 1) * v.len() / p].to_vec())
        .collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parallelize_glom_and_collect(v in proptest::collection::vec(any::<i32>(), 0..60), p in 1usize..6, t in any::<bool>()) {
        let rdd = ctx(t).parallelize(v.clone(), p);
        prop_assert_eq!(rdd.num_partitions(), p);
        prop_assert_eq!(rdd.glom().collect().unwrap(), slices(&v, p));
        prop_assert_eq!(rdd.collect().unwrap(), v.clone());
        prop_assert_eq!(rdd.count().unwrap(), v.len() as u64);
    }

    #[test]
    fn element_wise_ops_keep_order(v in proptest::collection::vec(-50i64..50, 0..60), p in 1usize..6, t in any::<bool>()) {
        let rdd = ctx(t).parallelize(v.clone(), p);
        prop_assert_eq!(rdd.map(|x| x * 3 + 1).collect().unwrap(), v.iter().map(|x| x * 3 + 1).collect::<Vec<_>>());
        prop_assert_eq!(rdd.filter(|x| x % 3 == 0).collect().unwrap(), v.iter().copied().filter(|x| x % 3 == 0).collect::<Vec<_>>());
        prop_assert_eq!(
            rdd.flat_map(|x| vec![x; (x.rem_euclid(3)) as usize]).collect().unwrap(),
            v.iter().flat_map(|&x| vec![x; (x.rem_euclid(3)) as usize]).collect::<Vec<_>>()
        );
        prop_assert_eq!(
            rdd.map_partitions(|it| vec![it.sum::<i64>()]).collect().unwrap(),
            slices(&v, p).iter().map(|s| s.iter().sum::<i64>()).collect::<Vec<_>>()
        );
        prop_assert_eq!(
            rdd.map_partitions_with_index(|i, it| it.map(move |x| (i, x))).collect().unwrap(),
            slices(&v, p).iter().enumerate().flat_map(|(i, s)| s.iter().map(move |x| (i, *x))).collect::<Vec<_>>()
        );
        prop_assert_eq!(rdd.key_by(|x| x % 2).collect().unwrap(), v.iter().map(|x| (x % 2, *x)).collect::<Vec<_>>());
    }

    #[test]
    fn actions(v in proptest::collection::vec(-50i64..50, 0..60), p in 1usize..6, n in 0usize..70, t in any::<bool>()) {
        let rdd = ctx(t).parallelize(v.clone(), p);
        prop_assert_eq!(rdd.reduce(|a, b| a + b).unwrap(), v.iter().copied().reduce(|a, b| a + b));
        prop_assert_eq!(rdd.fold(0, |a, b| a + b).unwrap(), v.iter().sum::<i64>());
        prop_assert_eq!(rdd.aggregate(0usize, |n, _| n + 1, |a, b| a + b).unwrap(), v.len());
        prop_assert_eq!(rdd.take(n).unwrap(), v.iter().copied().take(n).collect::<Vec<_>>());
        prop_assert_eq!(rdd.first().unwrap(), v.first().copied());
        let sum = Arc::new(AtomicI64::new(0));
        let s = sum.clone();
        rdd.foreach(move |x| { s.fetch_add(x, Ordering::Relaxed); }).unwrap();
        prop_assert_eq!(sum.load(Ordering::Relaxed), v.iter().sum::<i64>());
        let parts = Arc::new(AtomicI64::new(0));
        let q = parts.clone();
        rdd.foreach_partition(move |_| { q.fetch_add(1, Ordering::Relaxed); }).unwrap();
        prop_assert_eq!(parts.load(Ordering::Relaxed), p as i64);
        let mut expected: HashMap<i64, u64> = HashMap::new();
        for x in &v { *expected.entry(*x).or_default() += 1; }
        prop_assert_eq!(rdd.count_by_value().unwrap(), expected);
    }

    #[test]
    fn union_coalesce_repartition_distinct(
        a in proptest::collection::vec(0u16..40, 0..50),
        b in proptest::collection::vec(0u16..40, 0..50),
        p in 1usize..5, q in 1usize..7, t in any::<bool>(),
    ) {
        let c = ctx(t);
        let (ra, rb) = (c.parallelize(a.clone(), p), c.parallelize(b.clone(), q));
        let u = ra.union(&rb);
        prop_assert_eq!(u.num_partitions(), p + q);
        prop_assert_eq!(u.collect().unwrap(), a.iter().chain(&b).copied().collect::<Vec<_>>());
        let all: Vec<u16> = a.iter().chain(&b).copied().collect();
        let co = u.coalesce(q, false);
        prop_assert_eq!(co.num_partitions(), q.min(p + q));
        prop_assert_eq!(co.collect().unwrap(), all.clone());
        let re = u.repartition(q);
        prop_assert_eq!(re.num_partitions(), q);
        prop_assert_eq!(sorted(re.collect().unwrap()), sorted(all.clone()));
        // Round-robin dealing keeps partitions within one element per source partition of even.
        let sizes: Vec<usize> = re.glom().collect().unwrap().iter().map(Vec::len).collect();
        let (min, max) = (*sizes.iter().min().unwrap(), *sizes.iter().max().unwrap());
        prop_assert!(max - min <= p + q, "sizes {:?}", sizes);
        let mut d = all.clone();
        d.sort();
        d.dedup();
        prop_assert_eq!(sorted(u.distinct().collect().unwrap()), d.clone());
        prop_assert_eq!(u.distinct_n(3).num_partitions(), 3);
        prop_assert_eq!(sorted(u.distinct_n(3).collect().unwrap()), d);
    }

    #[test]
    fn sample_is_a_deterministic_subset(v in proptest::collection::vec(0u32..1000, 0..80), p in 1usize..5, seed in any::<u64>(), t in any::<bool>()) {
        let rdd = ctx(t).parallelize(v.clone(), p);
        let s = rdd.sample(false, 0.5, seed).collect().unwrap();
        prop_assert_eq!(&s, &rdd.sample(false, 0.5, seed).collect().unwrap());
        // Without replacement: an order-preserving subsequence.
        let mut it = v.iter();
        for x in &s {
            prop_assert!(it.any(|y| y == x), "{} not in order in the input", x);
        }
        prop_assert!(rdd.sample(false, 0.0, seed).collect().unwrap().is_empty());
        prop_assert_eq!(rdd.sample(false, 1.0, seed).collect().unwrap(), v.clone());
        // With replacement: each element a number of times, order kept.
        let w = rdd.sample(true, 2.0, seed).collect().unwrap();
        let mut dedup = w.clone();
        dedup.dedup();
        let mut it = v.iter();
        for x in &dedup {
            prop_assert!(it.any(|y| y == x));
        }
    }

    #[test]
    fn key_aggregations(v in pairs(), p in 1usize..5, n in 1usize..5, t in any::<bool>()) {
        let rdd = ctx(t).parallelize(v.clone(), p);
        let g = grouped(&v);
        let sums: Vec<(u8, i32)> = g.iter().map(|(k, xs)| (*k, xs.iter().sum())).collect();
        prop_assert_eq!(sorted(rdd.reduce_by_key(|a, b| a + b).collect().unwrap()), sums.clone());
        let r = rdd.reduce_by_key_n(|a, b| a + b, n);
        prop_assert_eq!(r.num_partitions(), n);
        prop_assert_eq!(sorted(r.collect().unwrap()), sums.clone());
        prop_assert_eq!(sorted(rdd.fold_by_key(0, |a, b| a + b).collect().unwrap()), sums.clone());
        prop_assert_eq!(sorted(rdd.fold_by_key_n(0, |a, b| a + b, n).collect().unwrap()), sums);
        // Values of a key arrive in input order.
        let groups: Vec<(u8, Vec<i32>)> = g.clone().into_iter().collect();
        prop_assert_eq!(sorted(rdd.group_by_key().collect().unwrap()), groups.clone());
        prop_assert_eq!(sorted(rdd.group_by_key_n(n).collect().unwrap()), groups);
        let stats: Vec<(u8, (i32, usize))> = g.iter().map(|(k, xs)| (*k, (*xs.iter().max().unwrap(), xs.len()))).collect();
        let combined = rdd.combine_by_key(|x| (x, 1usize), |(m, c), x| (m.max(x), c + 1), |(m1, c1), (m2, c2)| (m1.max(m2), c1 + c2));
        prop_assert_eq!(sorted(combined.collect().unwrap()), stats);
        let counts: HashMap<u8, u64> = g.iter().map(|(k, xs)| (*k, xs.len() as u64)).collect();
        prop_assert_eq!(rdd.count_by_key().unwrap(), counts);
        prop_assert_eq!(sorted(rdd.keys().collect().unwrap()), sorted(v.iter().map(|x| x.0).collect()));
        prop_assert_eq!(rdd.values().collect().unwrap(), v.iter().map(|x| x.1).collect::<Vec<_>>());
    }

    #[test]
    fn value_ops_and_partitioning(v in pairs(), p in 1usize..5, n in 1usize..5, t in any::<bool>()) {
        let rdd = ctx(t).parallelize(v.clone(), p);
        prop_assert_eq!(rdd.map_values(|x| x * 2).collect().unwrap(), v.iter().map(|(k, x)| (*k, x * 2)).collect::<Vec<_>>());
        prop_assert_eq!(
            rdd.flat_map_values(|x| vec![x, -x]).collect().unwrap(),
            v.iter().flat_map(|(k, x)| [(*k, *x), (*k, -x)]).collect::<Vec<_>>()
        );
        let hp = HashPartitioner::new(n);
        let parted = rdd.partition_by(Arc::new(hp));
        prop_assert_eq!(parted.num_partitions(), n);
        for (i, part) in parted.glom().collect().unwrap().into_iter().enumerate() {
            for (k, _) in part {
                prop_assert_eq!(Partitioner::<u8>::partition(&hp, &k), i);
            }
        }
        prop_assert_eq!(sorted(parted.collect().unwrap()), sorted(v.clone()));
        // map_values keeps the partitioner, so a second partition_by is the same RDD.
        let again = parted.map_values(|x| x).partition_by(Arc::new(HashPartitioner::new(n)));
        prop_assert_eq!(again.partitioner(), parted.partitioner());
    }

    #[test]
    fn joins_and_cogroup(a in pairs(), b in pairs(), p in 1usize..4, q in 1usize..4, n in 1usize..4, t in any::<bool>()) {
        let c = ctx(t);
        let (ra, rb) = (c.parallelize(a.clone(), p), c.parallelize(b.clone(), q));
        let (ga, gb) = (grouped(&a), grouped(&b));
        let mut keys: Vec<u8> = ga.keys().chain(gb.keys()).copied().collect();
        keys.sort();
        keys.dedup();
        let empty = Vec::new();
        let cog: Vec<(u8, (Vec<i32>, Vec<i32>))> = keys.iter().map(|k| (*k, (ga.get(k).unwrap_or(&empty).clone(), gb.get(k).unwrap_or(&empty).clone()))).collect();
        prop_assert_eq!(sorted(ra.cogroup(&rb).collect().unwrap()), cog.clone());
        prop_assert_eq!(sorted(ra.cogroup_n(&rb, n).collect().unwrap()), cog.clone());
        let mut inner = Vec::new();
        let mut left = Vec::new();
        let mut right = Vec::new();
        let mut full = Vec::new();
        for (k, (vs, ws)) in &cog {
            for v in vs { for w in ws { inner.push((*k, (*v, *w))); } }
            for v in vs {
                if ws.is_empty() { left.push((*k, (*v, None))); }
                for w in ws { left.push((*k, (*v, Some(*w)))); }
            }
            for w in ws {
                if vs.is_empty() { right.push((*k, (None, *w))); }
                for v in vs { right.push((*k, (Some(*v), *w))); }
            }
            let vo: Vec<Option<i32>> = if vs.is_empty() { vec![None] } else { vs.iter().copied().map(Some).collect() };
            let wo: Vec<Option<i32>> = if ws.is_empty() { vec![None] } else { ws.iter().copied().map(Some).collect() };
            for v in &vo { for w in &wo { full.push((*k, (*v, *w))); } }
        }
        prop_assert_eq!(sorted(ra.join(&rb).collect().unwrap()), sorted(inner.clone()));
        prop_assert_eq!(sorted(ra.join_n(&rb, n).collect().unwrap()), sorted(inner));
        prop_assert_eq!(sorted(ra.left_outer_join(&rb).collect().unwrap()), sorted(left.clone()));
        prop_assert_eq!(sorted(ra.left_outer_join_n(&rb, n).collect().unwrap()), sorted(left));
        prop_assert_eq!(sorted(ra.right_outer_join(&rb).collect().unwrap()), sorted(right.clone()));
        prop_assert_eq!(sorted(ra.right_outer_join_n(&rb, n).collect().unwrap()), sorted(right));
        prop_assert_eq!(sorted(ra.full_outer_join(&rb).collect().unwrap()), sorted(full.clone()));
        prop_assert_eq!(sorted(ra.full_outer_join_n(&rb, n).collect().unwrap()), sorted(full));
    }

    #[test]
    fn sort_by_key_orders_globally(v in pairs(), p in 1usize..5, n in 1usize..6, t in any::<bool>()) {
        let rdd = ctx(t).parallelize(v.clone(), p);
        // Stable: equal keys keep input order.
        let mut asc = v.clone();
        asc.sort_by_key(|x| x.0);
        let s = rdd.sort_by_key_n(true, n);
        prop_assert_eq!(s.num_partitions(), n);
        prop_assert_eq!(s.collect().unwrap(), asc);
        let mut desc = v.clone();
        desc.sort_by_key(|x| std::cmp::Reverse(x.0));
        prop_assert_eq!(rdd.sort_by_key_n(false, n).collect().unwrap(), desc);
        prop_assert_eq!(rdd.sort_by_key(true).num_partitions(), p);
    }

    #[test]
    fn chains_through_several_shuffles(words in proptest::collection::vec("[a-e]{1,3}", 0..60), p in 1usize..5, t in any::<bool>()) {
        // Word count, then count how many words have each count: two shuffles in one job.
        let rdd: Rdd<String> = ctx(t).parallelize(words.clone(), p);
        let counts = rdd.map(|w| (w, 1u32)).reduce_by_key(|a, b| a + b);
        let histogram = counts.map(|(_, c)| (c, 1u32)).reduce_by_key_n(|a, b| a + b, 3);
        let mut wc: HashMap<String, u32> = HashMap::new();
        for w in &words { *wc.entry(w.clone()).or_default() += 1; }
        let mut h: HashMap<u32, u32> = HashMap::new();
        for c in wc.values() { *h.entry(*c).or_default() += 1; }
        prop_assert_eq!(histogram.collect_as_map().unwrap(), h);
        prop_assert_eq!(counts.collect_as_map().unwrap(), wc);
    }
}

#[test]
fn lookup_and_empty_rdds() {
    let c = Context::new("local[2]").unwrap();
    let r = c.parallelize(vec![(1, 'a'), (2, 'b'), (1, 'c')], 2);
    assert_eq!(r.lookup(&1).unwrap(), vec!['a', 'c']);
    let e: Rdd<(u8, u8)> = c.empty_rdd();
    assert_eq!(e.count().unwrap(), 0);
    assert_eq!(e.reduce_by_key(|a, b| a + b).collect().unwrap(), vec![]);
    assert_eq!(e.map(|x| x.0).reduce(|a, b| a + b).unwrap(), None);
    assert_eq!(e.take(3).unwrap(), vec![]);
    assert_eq!(e.sort_by_key(true).collect().unwrap(), vec![]);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn cogroup_many_groups_each_input(inputs in proptest::collection::vec(pairs(), 0..4), n in 1usize..4) {
        let c = ctx(true);
        let rdds: Vec<Rdd<(u8, i32)>> = inputs.iter().enumerate().map(|(i, v)| c.parallelize(v.clone(), i + 1)).collect();
        let got = sorted(c.cogroup_many(&rdds, Arc::new(HashPartitioner::new(n))).collect().unwrap());
        let mut expected: BTreeMap<u8, Vec<Vec<i32>>> = BTreeMap::new();
        for (i, v) in inputs.iter().enumerate() {
            for (k, x) in v {
                expected.entry(*k).or_insert_with(|| vec![Vec::new(); inputs.len()])[i].push(*x);
            }
        }
        prop_assert_eq!(got, expected.into_iter().collect::<Vec<_>>());
    }
}
