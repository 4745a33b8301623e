//! Oracle tests: every windowed and stateful operation against a from-scratch recomputation over
//! the same seeded random input (windows recomputed from the raw batches, state replayed).

use proptest::prelude::*;
use spate_streaming::testing::Harness;
use std::collections::BTreeMap;
use std::time::Duration;

type Batches = Vec<Vec<(u8, i64)>>;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    }
}

fn batches() -> impl Strategy<Value = Batches> {
    proptest::collection::vec(proptest::collection::vec((0u8..6, 1i64..50), 0..8), 1..9)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Output times of a stream with slide `s` over `n` one-second batches: s, 2s, … ≤ n.
fn output_times(n: usize, s: u64) -> Vec<u64> {
    (1..=n as u64).filter(|t| t % s == 0).collect()
}

/// The records of the batches at times in (t - w, t] (batch i has time i + 1), in time order.
fn window_of<T: Clone>(input: &[Vec<T>], t: u64, w: u64) -> Vec<T> {
    (t.saturating_sub(w) + 1..=t)
        .filter_map(|time| input.get(time as usize - 1))
        .flat_map(|b| b.iter().cloned())
        .collect()
}

/// The records of every window up to and including the one at `t`.
fn windows_so_far<T: Clone>(input: &[Vec<T>], t: u64, w: u64, s: u64) -> Vec<T> {
    output_times(t as usize, s)
        .into_iter()
        .flat_map(|u| window_of(input, u, w))
        .collect()
}

fn sums(records: &[(u8, i64)]) -> BTreeMap<u8, i64> {
    let mut m = BTreeMap::new();
    for (k, v) in records {
        *m.entry(*k).or_insert(0) += v;
    }
    m
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn harness(partitions: usize) -> Harness {
    Harness {
        partitions,
        ..Harness::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn window_is_the_union_of_the_covered_batches(input in batches(), w in 1u64..5, s in 1u64..4, extra in 0usize..3, p in 1usize..4) {
        let n = input.len() + extra;
        let got = harness(p).run(input.clone(), move |d| d.window(secs(w), secs(s)), n);
        let expected: Vec<_> = output_times(n, s).into_iter().map(|t| window_of(&input, t, w)).collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn reduce_by_key_and_window_without_inverse(input in batches(), w in 1u64..5, s in 1u64..4, p in 1usize..4) {
        let n = input.len() + 2;
        let got = harness(p).run(input.clone(), move |d| d.reduce_by_key_and_window(|a, b| a + b, secs(w), secs(s)), n);
        let got: Vec<_> = got.into_iter().map(sorted).collect();
        let expected: Vec<Vec<(u8, i64)>> = output_times(n, s).into_iter().map(|t| sums(&window_of(&input, t, w)).into_iter().collect()).collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn reduce_by_key_and_window_with_inverse(input in batches(), w in 1u64..6, s in 1u64..4, p in 1usize..4) {
        let n = input.len() + 3;
        let got = harness(p).run(input.clone(), move |d| d.reduce_by_key_and_window_inv(|a, b| a + b, |a, b| a - b, secs(w), secs(s)), n);
        let got: Vec<_> = got.into_iter().map(sorted).collect();
        // Without a filter, a key stays (at 0) once it has been in any window so far.
        let expected: Vec<Vec<(u8, i64)>> = output_times(n, s)
            .into_iter()
            .map(|t| {
                let seen: Vec<(u8, i64)> = windows_so_far(&input, t, w, s);
                let current = sums(&window_of(&input, t, w));
                let mut keys: Vec<u8> = seen.iter().map(|kv| kv.0).collect();
                keys.sort();
                keys.dedup();
                keys.into_iter().map(|k| (k, *current.get(&k).unwrap_or(&0))).collect()
            })
            .collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn count_by_value_and_window_drops_zero_counts(input in batches(), w in 1u64..6, s in 1u64..4, p in 1usize..4) {
        let n = input.len() + 3;
        let keys: Vec<Vec<u8>> = input.iter().map(|b| b.iter().map(|kv| kv.0).collect()).collect();
        let got = harness(p).run(keys.clone(), move |d| d.count_by_value_and_window(secs(w), secs(s)), n);
        let got: Vec<_> = got.into_iter().map(sorted).collect();
        let expected: Vec<Vec<(u8, u64)>> = output_times(n, s)
            .into_iter()
            .map(|t| {
                let mut m: BTreeMap<u8, u64> = BTreeMap::new();
                for k in window_of(&keys, t, w) {
                    *m.entry(k).or_insert(0) += 1;
                }
                m.into_iter().collect()
            })
            .collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn group_by_key_and_window_keeps_time_order(input in batches(), w in 1u64..5, s in 1u64..4, p in 1usize..4) {
        let n = input.len() + 2;
        let got = harness(p).run(input.clone(), move |d| d.group_by_key_and_window(secs(w), secs(s)), n);
        let got: Vec<_> = got.into_iter().map(sorted).collect();
        let expected: Vec<Vec<(u8, Vec<i64>)>> = output_times(n, s)
            .into_iter()
            .map(|t| {
                let mut m: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
                for (k, v) in window_of(&input, t, w) {
                    m.entry(k).or_default().push(v);
                }
                m.into_iter().collect()
            })
            .collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn count_and_reduce_by_window(input in batches(), w in 1u64..6, s in 1u64..4, p in 1usize..4) {
        let n = input.len() + 3;
        let values: Vec<Vec<i64>> = input.iter().map(|b| b.iter().map(|kv| kv.1).collect()).collect();
        let h = harness(p);
        let counts = h.run(values.clone(), move |d| d.count_by_window(secs(w), secs(s)), n);
        let plain = h.run(values.clone(), move |d| d.reduce_by_window(|a, b| a + b, secs(w), secs(s)), n);
        let inv = h.run(values.clone(), move |d| d.reduce_by_window_inv(|a, b| a + b, |a, b| a - b, secs(w), secs(s)), n);
        let times = output_times(n, s);
        let mut exp_counts = Vec::new();
        let mut exp_plain = Vec::new();
        let mut exp_inv = Vec::new();
        for &t in &times {
            let win = window_of(&values, t, w);
            let anything_yet = !windows_so_far(&values, t, w, s).is_empty();
            // Inverse-reduced: nothing until the first element, then the window's value (0 once empty).
            exp_counts.push(if anything_yet { vec![win.len() as u64] } else { vec![] });
            exp_inv.push(if anything_yet { vec![win.iter().sum::<i64>()] } else { vec![] });
            // Plain reduce: no element for an empty window.
            exp_plain.push(if win.is_empty() { vec![] } else { vec![win.iter().sum::<i64>()] });
        }
        prop_assert_eq!(counts, exp_counts);
        prop_assert_eq!(plain, exp_plain);
        prop_assert_eq!(inv, exp_inv);
    }

    #[test]
    fn update_state_by_key_replays_the_history(input in batches(), extra in 0usize..4, p in 1usize..4) {
        let n = input.len() + extra;
        // Running sums; a key with no new values whose sum is a multiple of 3 is removed.
        fn update(vs: &[i64], s: Option<i64>) -> Option<i64> {
            let sum = s.unwrap_or(0) + vs.iter().sum::<i64>();
            if vs.is_empty() && sum % 3 == 0 { None } else { Some(sum) }
        }
        let got = harness(p).run(input.clone(), |d| d.update_state_by_key(update), n);
        let got: Vec<_> = got.into_iter().map(sorted).collect();
        let mut state: BTreeMap<u8, i64> = BTreeMap::new();
        let mut expected = Vec::new();
        for i in 0..n {
            let batch = input.get(i).cloned().unwrap_or_default();
            let mut values: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
            for (k, v) in batch {
                values.entry(k).or_default().push(v);
            }
            let mut keys: Vec<u8> = state.keys().chain(values.keys()).copied().collect();
            keys.sort();
            keys.dedup();
            let mut next = BTreeMap::new();
            for k in keys {
                if let Some(s) = update(values.get(&k).map(Vec::as_slice).unwrap_or(&[]), state.get(&k).copied()) {
                    next.insert(k, s);
                }
            }
            state = next;
            // The first batch with no state and no input produces no RDD at all.
            if i == 0 && state.is_empty() && input.first().is_none_or(|b| b.is_empty()) {
                expected.push(vec![]);
                continue;
            }
            expected.push(state.clone().into_iter().collect::<Vec<_>>());
        }
        prop_assert_eq!(got, expected);
    }
}
