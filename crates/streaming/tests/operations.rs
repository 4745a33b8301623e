//! Golden tests of every DStream operation: small inputs, expected outputs worked out by hand from
//! Spark Streaming's semantics, run through the manual-clock harness; plus output operations,
//! graph errors reported by `start()`, failing batches and `slice`.
//!
//! Harness conventions: batch 1 s, input batch `i` is the RDD of time `(i + 1)` s cut into 2
//! partitions the Spark way (partition `i` of `n` elements holds `[i*n/2, (i+1)*n/2)`), batches
//! past the input are empty. A stream with slide `s` produces an RDD only at multiples of `s`.
//! Each case names itself; a table reports every failing case at once.

use spate_streaming::core::HashPartitioner;
use spate_streaming::testing::{Harness, run_operation, run_operation2, test_input_stream};
use spate_streaming::{Clock, DStream, Error, ManualClock, StreamingContext, Time};
use std::fmt::Debug;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn ms(t: u64) -> Time {
    Time::from_ms(t)
}

/// Owned strings from string literals, batch by batch.
fn strs(batches: &[&[&str]]) -> Vec<Vec<String>> {
    batches
        .iter()
        .map(|b| b.iter().map(|x| x.to_string()).collect())
        .collect()
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else {
        "a panic without a message".into()
    }
}

/// A table of named cases: each runs, is compared with its hand-computed expectation, and any
/// mismatch (or panic) is recorded under its name; `finish` fails listing every failed case.
struct Table {
    group: &'static str,
    cases: usize,
    failures: Vec<String>,
}

impl Table {
    fn new(group: &'static str) -> Table {
        Table {
            group,
            cases: 0,
            failures: Vec::new(),
        }
    }

    fn run<U: PartialEq + Debug>(
        &mut self,
        name: &str,
        run: impl FnOnce() -> U,
        normalize: impl FnOnce(U) -> U,
        expected: U,
    ) {
        self.cases += 1;
        match catch_unwind(AssertUnwindSafe(run)) {
            Ok(got) => {
                let got = normalize(got);
                if got != expected {
                    self.failures.push(format!(
                        "{name}:\n      got      {got:?}\n      expected {expected:?}"
                    ));
                }
            }
            Err(p) => self
                .failures
                .push(format!("{name}: panicked: {}", panic_text(&*p))),
        }
    }

    /// A case whose output order is defined: compared as is.
    fn case<U: PartialEq + Debug>(
        &mut self,
        name: &str,
        run: impl FnOnce() -> Vec<Vec<U>>,
        expected: Vec<Vec<U>>,
    ) {
        self.run(name, run, |v| v, expected);
    }

    /// A case whose order within a batch is not defined (after a shuffle): each batch is sorted
    /// before comparing; `expected` is written sorted.
    fn sorted<U: Ord + Debug>(
        &mut self,
        name: &str,
        run: impl FnOnce() -> Vec<Vec<U>>,
        expected: Vec<Vec<U>>,
    ) {
        self.run(
            name,
            run,
            |mut v| {
                v.iter_mut().for_each(|b| b.sort());
                v
            },
            expected,
        );
    }

    /// A case comparing batch times as well as contents.
    fn timed<U: Ord + Debug>(
        &mut self,
        name: &str,
        run: impl FnOnce() -> Vec<(Time, Vec<U>)>,
        expected: Vec<(u64, Vec<U>)>,
    ) {
        let expected = expected.into_iter().map(|(t, v)| (ms(t), v)).collect();
        self.run(
            name,
            run,
            |mut v| {
                v.iter_mut().for_each(|(_, b)| b.sort());
                v
            },
            expected,
        );
    }

    fn finish(self) -> usize {
        assert!(
            self.failures.is_empty(),
            "{} of {} {} cases failed:\n  - {}",
            self.failures.len(),
            self.cases,
            self.group,
            self.failures.join("\n  - ")
        );
        self.cases
    }
}

fn sorted_values<K, V: Ord>(kv: (K, Vec<V>)) -> (K, Vec<V>) {
    let (k, mut v) = kv;
    v.sort();
    (k, v)
}

#[test]
fn elementwise_and_batch_operations() {
    let mut t = Table::new("element-wise");
    t.case(
        "map multiplies, keeps order and empty batches",
        || {
            run_operation(
                vec![vec![1, 2, 3], vec![4], vec![]],
                |s| s.map(|x: i32| x * 10),
                4,
            )
        },
        vec![vec![10, 20, 30], vec![40], vec![], vec![]],
    );
    t.case(
        "map changes the element type",
        || {
            run_operation(
                vec![vec![1, 22], vec![333]],
                |s| s.map(|x: i32| x.to_string().len()),
                2,
            )
        },
        vec![vec![1, 2], vec![3]],
    );
    t.case(
        "flat_map splits lines into words",
        || {
            run_operation(
                strs(&[&["a b", "c"], &["d e f"], &[""]]),
                |s| {
                    s.flat_map(|l: String| {
                        l.split(' ')
                            .filter(|w| !w.is_empty())
                            .map(String::from)
                            .collect::<Vec<_>>()
                    })
                },
                3,
            )
        },
        strs(&[&["a", "b", "c"], &["d", "e", "f"], &[]]),
    );
    t.case(
        "flat_map repeats each element x times",
        || {
            run_operation(
                vec![vec![1, 2, 3], vec![0]],
                |s| s.flat_map(|x: usize| vec![x; x]),
                2,
            )
        },
        vec![vec![1, 2, 2, 3, 3, 3], vec![]],
    );
    t.case(
        "filter keeps even numbers",
        || {
            run_operation(
                vec![vec![1, 2, 3, 4], vec![5], vec![6, 8]],
                |s| s.filter(|x: &i32| x % 2 == 0),
                3,
            )
        },
        vec![vec![2, 4], vec![], vec![6, 8]],
    );
    t.case(
        "filter can drop everything",
        || run_operation(vec![vec![1, 3]], |s| s.filter(|x: &i32| x % 2 == 0), 2),
        vec![vec![], vec![]],
    );
    t.case(
        "map_partitions sums each of the 2 partitions",
        || {
            run_operation(
                vec![vec![1, 2, 3, 4], vec![5], vec![1, 2, 3], vec![]],
                |s| s.map_partitions(|it| std::iter::once(it.sum::<i32>())),
                4,
            )
        },
        vec![vec![3, 7], vec![0, 5], vec![1, 5], vec![0, 0]],
    );
    t.case(
        "map_partitions sees Spark's slicing (2 + 3 of 5)",
        || {
            run_operation(
                vec![vec![10, 20, 30, 40, 50]],
                |s| s.map_partitions(|it| std::iter::once(it.count())),
                1,
            )
        },
        vec![vec![2, 3]],
    );
    t.case(
        "glom with 2 partitions",
        || run_operation(vec![vec![1, 2, 3, 4, 5], vec![1], vec![]], |s| s.glom(), 3),
        vec![
            vec![vec![1, 2], vec![3, 4, 5]],
            vec![vec![], vec![1]],
            vec![vec![], vec![]],
        ],
    );
    t.case(
        "glom with 3 partitions",
        || {
            Harness {
                partitions: 3,
                ..Harness::default()
            }
            .run(vec![vec![1, 2, 3, 4, 5, 6, 7]], |s| s.glom(), 1)
        },
        vec![vec![vec![1, 2], vec![3, 4], vec![5, 6, 7]]],
    );
    t.sorted(
        "repartition keeps every element",
        || run_operation(vec![vec![5, 3, 1, 4, 2], vec![9]], |s| s.repartition(3), 2),
        vec![vec![1, 2, 3, 4, 5], vec![9]],
    );
    t.case(
        "repartition(3) makes 3 partitions, even of an empty batch",
        || {
            run_operation(
                vec![vec![1, 2, 3, 4, 5, 6]],
                |s| s.repartition(3).glom().count(),
                2,
            )
        },
        vec![vec![3], vec![3]],
    );
    t.case(
        "repartition(1) puts the batch in one partition",
        || {
            run_operation(
                vec![vec![4, 1, 3, 2]],
                |s| {
                    s.repartition(1).glom().map(|mut p: Vec<i32>| {
                        p.sort();
                        p
                    })
                },
                1,
            )
        },
        vec![vec![vec![1, 2, 3, 4]]],
    );
    t.case(
        "union: this stream's elements, then the other's",
        || {
            run_operation2(
                vec![vec![1, 2], vec![3], vec![]],
                vec![vec![10], vec![20, 30], vec![40]],
                |a, b| a.union(&b),
                3,
            )
        },
        vec![vec![1, 2, 10], vec![3, 20, 30], vec![40]],
    );
    t.case(
        "union of windows with the same slide",
        || {
            run_operation2(
                vec![vec![1], vec![2], vec![3], vec![4]],
                vec![vec![10], vec![20], vec![30], vec![40]],
                |a, b| a.window(s(2), s(2)).union(&b.window(s(2), s(2))),
                4,
            )
        },
        vec![vec![1, 2, 10, 20], vec![3, 4, 30, 40]],
    );
    t.case(
        "union of a stream with itself",
        || run_operation(vec![vec![1, 2], vec![3]], |st| st.union(&st), 2),
        vec![vec![1, 2, 1, 2], vec![3, 3]],
    );
    t.case(
        "count: one element per batch, 0 for an empty batch",
        || run_operation(vec![vec![1, 2, 3], vec![], vec![4]], |s| s.count(), 4),
        vec![vec![3], vec![0], vec![1], vec![0]],
    );
    t.case(
        "count after filter",
        || {
            run_operation(
                vec![vec![1, 2, 3, 4]],
                |s| s.filter(|x: &i32| x % 2 == 0).count(),
                1,
            )
        },
        vec![vec![2]],
    );
    t.case(
        "reduce sums; an empty batch gives no element",
        || {
            run_operation(
                vec![vec![1, 2, 3], vec![], vec![4, 5]],
                |s| s.reduce(|a: i32, b| a + b),
                4,
            )
        },
        vec![vec![6], vec![], vec![9], vec![]],
    );
    t.case(
        "reduce max",
        || {
            run_operation(
                vec![vec![3, 9, 2], vec![7]],
                |s| s.reduce(|a: i32, b| a.max(b)),
                2,
            )
        },
        vec![vec![9], vec![7]],
    );
    t.case(
        "reduce of one element in the second partition",
        || run_operation(vec![vec![42]], |s| s.reduce(|a: i32, b| a + b), 1),
        vec![vec![42]],
    );
    t.sorted(
        "count_by_value",
        || {
            run_operation(
                vec![vec!['a', 'b', 'a'], vec!['c'], vec![]],
                |s| s.count_by_value(),
                3,
            )
        },
        vec![vec![('a', 2), ('b', 1)], vec![('c', 1)], vec![]],
    );
    t.case(
        "transform sees the batch time",
        || {
            run_operation(
                vec![vec![1, 2], vec![3]],
                |s| s.transform(|r, t| r.map(move |x: u64| x + t.ms())),
                2,
            )
        },
        vec![vec![1001, 1002], vec![2003]],
    );
    t.sorted(
        "transform with an RDD operation (distinct)",
        || {
            run_operation(
                vec![vec![1, 1, 2], vec![3, 3]],
                |s| s.transform(|r, _| r.distinct()),
                2,
            )
        },
        vec![vec![1, 2], vec![3]],
    );
    t.case(
        "transform_with: the other stream's RDD first",
        || {
            run_operation2(
                vec![vec![1, 2], vec![3]],
                vec![vec![10], vec![20, 30]],
                |a, b| a.transform_with(&b, |x, y, _| y.union(x)),
                2,
            )
        },
        vec![vec![10, 1, 2], vec![20, 30, 3]],
    );
    t.case(
        "transform_with over streams of different types",
        || {
            run_operation2(
                vec![vec![1, 2]],
                vec![vec!['x']],
                |a, b| {
                    a.transform_with(&b, |x, y, _| {
                        x.map(|v: i32| v.to_string())
                            .union(&y.map(|c: char| c.to_string()))
                    })
                },
                1,
            )
        },
        strs(&[&["1", "2", "x"]]),
    );
    t.case(
        "StreamingContext::union of three streams",
        || {
            Harness::default().run_with(2, |ssc| {
                let a = test_input_stream(ssc, vec![vec![1], vec![2]], 2);
                let b = test_input_stream(ssc, vec![vec![10], vec![]], 2);
                let c = test_input_stream(ssc, vec![vec![100], vec![200, 300]], 2);
                ssc.union(&[a, b, c]).expect("union")
            })
        },
        vec![vec![1, 10, 100], vec![2, 200, 300]],
    );
    t.case(
        "StreamingContext::transform over two streams with the time",
        || {
            Harness::default().run_with(2, |ssc| {
                let a = test_input_stream(ssc, vec![vec![1], vec![2]], 2);
                let b = test_input_stream(ssc, vec![vec![10], vec![]], 2);
                ssc.transform(&[a, b], |rdds, t| {
                    rdds[0].context().union(rdds).map(move |x: i32| (t.ms(), x))
                })
                .expect("transform")
            })
        },
        vec![vec![(1000, 1), (1000, 10)], vec![(2000, 2)]],
    );
    t.finish();
}

#[test]
fn pair_operations() {
    let mut t = Table::new("pair");
    let left = || vec![vec![('a', 1), ('b', 2)], vec![('c', 3)], vec![]];
    let right = || {
        vec![
            vec![('a', 'x'), ('a', 'y'), ('c', 'z')],
            vec![('d', 'w')],
            vec![],
        ]
    };
    t.case(
        "map_values",
        || {
            run_operation(
                vec![vec![('a', 1), ('b', 2)], vec![('a', 3)]],
                |s| s.map_values(|v: i32| v * 10),
                2,
            )
        },
        vec![vec![('a', 10), ('b', 20)], vec![('a', 30)]],
    );
    t.case(
        "map_values changes the value type",
        || {
            run_operation(
                vec![vec![('a', 1)]],
                |s| s.map_values(|v: i32| format!("v{v}")),
                1,
            )
        },
        vec![vec![('a', "v1".to_string())]],
    );
    t.case(
        "flat_map_values",
        || {
            run_operation(
                vec![vec![('a', 2), ('b', 0), ('c', 1)]],
                |s| s.flat_map_values(|v: i32| 0..v),
                1,
            )
        },
        vec![vec![('a', 0), ('a', 1), ('c', 0)]],
    );
    t.sorted(
        "group_by_key",
        || {
            run_operation(
                vec![vec![('a', 1), ('b', 2), ('a', 3)], vec![('b', 4)], vec![]],
                |s| s.group_by_key().map(sorted_values),
                3,
            )
        },
        vec![
            vec![('a', vec![1, 3]), ('b', vec![2])],
            vec![('b', vec![4])],
            vec![],
        ],
    );
    t.case(
        "group_by_key_n(1) makes one partition",
        || {
            run_operation(
                vec![vec![('a', 1), ('b', 2), ('a', 3)]],
                |s| s.group_by_key_n(1).glom().map(|p| p.len()),
                1,
            )
        },
        vec![vec![2]],
    );
    t.sorted(
        "reduce_by_key",
        || {
            run_operation(
                vec![vec![('a', 1), ('b', 2), ('a', 3)], vec![('a', 5)], vec![]],
                |s| s.reduce_by_key(|a: i32, b| a + b),
                3,
            )
        },
        vec![vec![('a', 4), ('b', 2)], vec![('a', 5)], vec![]],
    );
    t.sorted(
        "reduce_by_key_n(3) with max",
        || {
            run_operation(
                vec![vec![('x', 3), ('y', 1), ('x', 7), ('y', 9)]],
                |s| s.reduce_by_key_n(|a: i32, b| a.max(b), 3),
                1,
            )
        },
        vec![vec![('x', 7), ('y', 9)]],
    );
    t.sorted(
        "combine_by_key: (sum, count)",
        || {
            run_operation(
                vec![vec![('a', 1), ('b', 2), ('a', 3)], vec![('b', 5), ('b', 6)]],
                |s| {
                    s.combine_by_key(
                        |v: i32| (v, 1),
                        |(sum, n), v| (sum + v, n + 1),
                        |(s1, n1), (s2, n2)| (s1 + s2, n1 + n2),
                        2,
                    )
                },
                2,
            )
        },
        vec![vec![('a', (4, 2)), ('b', (2, 1))], vec![('b', (11, 2))]],
    );
    t.sorted(
        "combine_by_key into lists",
        || {
            run_operation(
                vec![vec![('k', 3), ('k', 1), ('k', 2)]],
                |s| {
                    s.combine_by_key(
                        |v: i32| vec![v],
                        |mut l, v| {
                            l.push(v);
                            l
                        },
                        |mut l1, l2| {
                            l1.extend(l2);
                            l1
                        },
                        1,
                    )
                    .map(sorted_values)
                },
                1,
            )
        },
        vec![vec![('k', vec![1, 2, 3])]],
    );
    t.sorted(
        "join",
        || run_operation2(left(), right(), |a, b| a.join(&b), 3),
        vec![vec![('a', (1, 'x')), ('a', (1, 'y'))], vec![], vec![]],
    );
    t.sorted(
        "join with repeated keys on both sides",
        || {
            run_operation2(
                vec![vec![('k', 1), ('k', 2)]],
                vec![vec![('k', 10), ('k', 20)]],
                |a, b| a.join(&b),
                1,
            )
        },
        vec![vec![
            ('k', (1, 10)),
            ('k', (1, 20)),
            ('k', (2, 10)),
            ('k', (2, 20)),
        ]],
    );
    t.sorted(
        "join batch by batch (an empty batch of the other stream)",
        || {
            run_operation2(
                vec![vec![('a', 1)], vec![('a', 2)]],
                vec![vec![('a', 9)]],
                |a, b| a.join(&b),
                2,
            )
        },
        vec![vec![('a', (1, 9))], vec![]],
    );
    t.sorted(
        "join of a stream with itself",
        || {
            run_operation(
                vec![vec![('a', 1), ('b', 2), ('a', 3)]],
                |st| st.join(&st),
                1,
            )
        },
        vec![vec![
            ('a', (1, 1)),
            ('a', (1, 3)),
            ('a', (3, 1)),
            ('a', (3, 3)),
            ('b', (2, 2)),
        ]],
    );
    t.sorted(
        "cogroup of two empty batches",
        || {
            run_operation2(
                vec![vec![('a', 1)]],
                vec![vec![('b', 'x')]],
                |a, b| a.cogroup(&b),
                2,
            )
        },
        vec![
            vec![('a', (vec![1], vec![])), ('b', (vec![], vec!['x']))],
            vec![],
        ],
    );
    t.sorted(
        "left_outer_join",
        || run_operation2(left(), right(), |a, b| a.left_outer_join(&b), 3),
        vec![
            vec![
                ('a', (1, Some('x'))),
                ('a', (1, Some('y'))),
                ('b', (2, None)),
            ],
            vec![('c', (3, None))],
            vec![],
        ],
    );
    t.sorted(
        "right_outer_join",
        || run_operation2(left(), right(), |a, b| a.right_outer_join(&b), 3),
        vec![
            vec![
                ('a', (Some(1), 'x')),
                ('a', (Some(1), 'y')),
                ('c', (None, 'z')),
            ],
            vec![('d', (None, 'w'))],
            vec![],
        ],
    );
    t.sorted(
        "full_outer_join",
        || run_operation2(left(), right(), |a, b| a.full_outer_join(&b), 3),
        vec![
            vec![
                ('a', (Some(1), Some('x'))),
                ('a', (Some(1), Some('y'))),
                ('b', (Some(2), None)),
                ('c', (None, Some('z'))),
            ],
            vec![('c', (Some(3), None)), ('d', (None, Some('w')))],
            vec![],
        ],
    );
    t.sorted(
        "cogroup",
        || {
            run_operation2(
                left(),
                right(),
                |a, b| {
                    a.cogroup(&b).map_values(|(mut l, mut r)| {
                        l.sort();
                        r.sort();
                        (l, r)
                    })
                },
                3,
            )
        },
        vec![
            vec![
                ('a', (vec![1], vec!['x', 'y'])),
                ('b', (vec![2], vec![])),
                ('c', (vec![], vec!['z'])),
            ],
            vec![('c', (vec![3], vec![])), ('d', (vec![], vec!['w']))],
            vec![],
        ],
    );
    t.finish();
}

fn running_sum(values: &[i32], state: Option<i32>) -> Option<i32> {
    Some(state.unwrap_or(0) + values.iter().sum::<i32>())
}

#[test]
fn state_operations() {
    let mut t = Table::new("update_state_by_key");
    t.sorted(
        "running sum, full state every batch",
        || {
            run_operation(
                vec![
                    vec![('a', 1), ('b', 1)],
                    vec![('a', 2)],
                    vec![],
                    vec![('b', 3)],
                ],
                |s| s.update_state_by_key(running_sum),
                5,
            )
        },
        vec![
            vec![('a', 1), ('b', 1)],
            vec![('a', 3), ('b', 1)],
            vec![('a', 3), ('b', 1)],
            vec![('a', 3), ('b', 4)],
            vec![('a', 3), ('b', 4)],
        ],
    );
    t.sorted(
        "None removes a key idle for a batch",
        || {
            run_operation(
                vec![
                    vec![('a', 1), ('b', 1)],
                    vec![('a', 1)],
                    vec![],
                    vec![('b', 1)],
                ],
                |s| {
                    s.update_state_by_key(|vs: &[i32], st: Option<usize>| {
                        if vs.is_empty() {
                            None
                        } else {
                            Some(st.unwrap_or(0) + vs.len())
                        }
                    })
                },
                5,
            )
        },
        vec![
            vec![('a', 1), ('b', 1)],
            vec![('a', 2)],
            vec![],
            vec![('b', 1)],
            vec![],
        ],
    );
    t.sorted(
        "the function runs for every key every batch",
        || {
            run_operation(
                vec![vec![('a', 1)], vec![], vec![('a', 2), ('b', 5)]],
                |s| {
                    s.update_state_by_key(|vs: &[i32], st: Option<(i32, u32)>| {
                        let (sum, calls) = st.unwrap_or((0, 0));
                        Some((sum + vs.iter().sum::<i32>(), calls + 1))
                    })
                },
                4,
            )
        },
        vec![
            vec![('a', (1, 1))],
            vec![('a', (1, 2))],
            vec![('a', (3, 3)), ('b', (5, 1))],
            vec![('a', (3, 4)), ('b', (5, 2))],
        ],
    );
    t.sorted(
        "a removed key comes back as new",
        || {
            run_operation(
                vec![vec![('a', 1)], vec![('a', 2)], vec![('a', 1)], vec![]],
                |s| {
                    s.update_state_by_key(|vs: &[i32], st: Option<i32>| {
                        let total = st.unwrap_or(0) + vs.iter().sum::<i32>();
                        (total < 3).then_some(total)
                    })
                },
                4,
            )
        },
        vec![vec![('a', 1)], vec![], vec![('a', 1)], vec![('a', 1)]],
    );
    t.sorted(
        "empty first batch",
        || {
            run_operation(
                vec![vec![], vec![('a', 1)]],
                |s| s.update_state_by_key(running_sum),
                3,
            )
        },
        vec![vec![], vec![('a', 1)], vec![('a', 1)]],
    );
    t.sorted(
        "update_state_by_key_with an initial state",
        || {
            run_operation(
                vec![vec![('a', 1), ('b', 2)], vec![('z', 1)]],
                |s| {
                    let initial = s.context().parallelize(vec![('a', 10), ('z', 5)], 2);
                    s.update_state_by_key_with(
                        running_sum,
                        Arc::new(HashPartitioner::new(2)),
                        Some(initial),
                    )
                },
                3,
            )
        },
        vec![
            vec![('a', 11), ('b', 2), ('z', 5)],
            vec![('a', 11), ('b', 2), ('z', 6)],
            vec![('a', 11), ('b', 2), ('z', 6)],
        ],
    );
    t.sorted(
        "update_state_by_key_with: an initial key can be removed",
        || {
            run_operation(
                vec![vec![('a', 5)]],
                |s| {
                    let initial = s.context().parallelize(vec![('a', 1), ('b', 1)], 1);
                    s.update_state_by_key_with(
                        |vs: &[i32], st: Option<i32>| {
                            (!vs.is_empty()).then(|| st.unwrap_or(0) + vs.iter().sum::<i32>())
                        },
                        Arc::new(HashPartitioner::new(2)),
                        Some(initial),
                    )
                },
                2,
            )
        },
        vec![vec![('a', 6)], vec![]],
    );
    t.sorted(
        "25 batches: state survives checkpoints (default interval 10s) and forgetting",
        || {
            let mut input = vec![Vec::new(); 25];
            input[0] = vec![('a', 1)];
            input[11] = vec![('b', 2)];
            run_operation(input, |st| st.update_state_by_key(running_sum), 25)
        },
        [vec![vec![('a', 1)]; 11], vec![vec![('a', 1), ('b', 2)]; 14]].concat(),
    );
    t.sorted(
        "update_state_by_key after a window takes its slide",
        || {
            run_operation(
                vec![vec![('a', 1)], vec![('a', 2)], vec![('b', 1)], vec![]],
                |st| st.window(s(2), s(2)).update_state_by_key(running_sum),
                4,
            )
        },
        vec![vec![('a', 3)], vec![('a', 3), ('b', 1)]],
    );
    t.finish();
}

#[test]
fn window_operations() {
    let mut t = Table::new("window");
    let singles = |n: i32| (1..=n).map(|x| vec![x]).collect::<Vec<_>>();
    t.case(
        "window 2s slide 1s",
        || run_operation(singles(4), |st| st.window(s(2), s(1)), 5),
        vec![vec![1], vec![1, 2], vec![2, 3], vec![3, 4], vec![4]],
    );
    t.case(
        "window 3s slide 1s: partial first windows",
        || run_operation(singles(5), |st| st.window(s(3), s(1)), 6),
        vec![
            vec![1],
            vec![1, 2],
            vec![1, 2, 3],
            vec![2, 3, 4],
            vec![3, 4, 5],
            vec![4, 5],
        ],
    );
    t.case(
        "window 2s slide 2s (tumbling)",
        || run_operation(singles(5), |st| st.window(s(2), s(2)), 6),
        vec![vec![1, 2], vec![3, 4], vec![5]],
    );
    t.case(
        "window 3s slide 2s",
        || run_operation(singles(6), |st| st.window(s(3), s(2)), 6),
        vec![vec![1, 2], vec![2, 3, 4], vec![4, 5, 6]],
    );
    t.case(
        "window 3s slide 3s",
        || run_operation(singles(7), |st| st.window(s(3), s(3)), 7),
        vec![vec![1, 2, 3], vec![4, 5, 6]],
    );
    t.case(
        "window 1s slide 2s skips batches",
        || run_operation(singles(4), |st| st.window(s(1), s(2)), 4),
        vec![vec![2], vec![4]],
    );
    t.case(
        "window 1s slide 1s is the stream",
        || run_operation(vec![vec![1, 2], vec![3]], |st| st.window(s(1), s(1)), 2),
        vec![vec![1, 2], vec![3]],
    );
    t.case(
        "window 4s slide 2s over uneven batches",
        || {
            run_operation(
                vec![vec![1, 2], vec![3], vec![], vec![4, 5], vec![6]],
                |st| st.window(s(4), s(2)),
                6,
            )
        },
        vec![vec![1, 2, 3], vec![1, 2, 3, 4, 5], vec![4, 5, 6]],
    );
    t.case(
        "count after a window inherits its slide",
        || {
            run_operation(
                vec![vec![1], vec![2, 3], vec![], vec![4]],
                |st| st.window(s(2), s(2)).count(),
                4,
            )
        },
        vec![vec![3], vec![1]],
    );
    t.case(
        "window of a window",
        || run_operation(singles(6), |st| st.window(s(2), s(2)).window(s(4), s(2)), 6),
        vec![vec![1, 2], vec![1, 2, 3, 4], vec![3, 4, 5, 6]],
    );
    t.case(
        "count_by_window 2s/1s: 0 once everything left",
        || {
            run_operation(
                vec![vec![1, 2], vec![3], vec![], vec![], vec![4]],
                |st| st.count_by_window(s(2), s(1)),
                6,
            )
        },
        vec![vec![2], vec![3], vec![1], vec![0], vec![1], vec![1]],
    );
    t.case(
        "count_by_window emits nothing before the first element",
        || {
            run_operation(
                vec![vec![], vec![1]],
                |st| st.count_by_window(s(2), s(1)),
                4,
            )
        },
        vec![vec![], vec![1], vec![1], vec![0]],
    );
    t.case(
        "count_by_window over 25 batches (past checkpoints)",
        || {
            let mut input = vec![Vec::new(); 25];
            input[0] = vec!['x'];
            input[14] = vec!['x', 'x'];
            run_operation(input, |st| st.count_by_window(s(3), s(1)), 25)
        },
        [
            vec![vec![1]; 3],
            vec![vec![0]; 11],
            vec![vec![2]; 3],
            vec![vec![0]; 8],
        ]
        .concat(),
    );
    t.case(
        "count_by_window 4s/2s",
        || {
            run_operation(
                vec![vec![1], vec![2, 3], vec![4], vec![], vec![], vec![5]],
                |st| st.count_by_window(s(4), s(2)),
                6,
            )
        },
        vec![vec![3], vec![4], vec![2]],
    );
    t.case(
        "reduce_by_window sum 2s/1s",
        || {
            run_operation(
                vec![vec![1, 2], vec![3], vec![], vec![4]],
                |st| st.reduce_by_window(|a: i32, b| a + b, s(2), s(1)),
                6,
            )
        },
        vec![vec![3], vec![6], vec![3], vec![4], vec![4], vec![]],
    );
    t.case(
        "reduce_by_window max 3s/3s",
        || {
            run_operation(
                vec![vec![5, 1], vec![2], vec![7], vec![3]],
                |st| st.reduce_by_window(|a: i32, b| a.max(b), s(3), s(3)),
                6,
            )
        },
        vec![vec![7], vec![3]],
    );
    t.case(
        "reduce_by_window_inv sum 3s/1s",
        || {
            run_operation(
                singles(4),
                |st| st.reduce_by_window_inv(|a: i32, b| a + b, |a, b| a - b, s(3), s(1)),
                7,
            )
        },
        vec![
            vec![1],
            vec![3],
            vec![6],
            vec![9],
            vec![7],
            vec![4],
            vec![0],
        ],
    );
    t.case(
        "reduce_by_window_inv sum 2s/2s",
        || {
            run_operation(
                singles(5),
                |st| st.reduce_by_window_inv(|a: i32, b| a + b, |a, b| a - b, s(2), s(2)),
                6,
            )
        },
        vec![vec![3], vec![7], vec![5]],
    );
    let ab = || {
        vec![
            vec![('a', 1), ('b', 1)],
            vec![('a', 2)],
            vec![('b', 3)],
            vec![],
        ]
    };
    let ab_slide2 = || {
        vec![
            vec![('a', 1)],
            vec![('a', 2), ('b', 5)],
            vec![('b', 1)],
            vec![('a', 4)],
            vec![],
        ]
    };
    t.sorted(
        "reduce_by_key_and_window 2s/1s",
        || {
            run_operation(
                ab(),
                |st| st.reduce_by_key_and_window(|a: i32, b| a + b, s(2), s(1)),
                5,
            )
        },
        vec![
            vec![('a', 1), ('b', 1)],
            vec![('a', 3), ('b', 1)],
            vec![('a', 2), ('b', 3)],
            vec![('b', 3)],
            vec![],
        ],
    );
    t.sorted(
        "reduce_by_key_and_window 3s/2s",
        || {
            run_operation(
                ab_slide2(),
                |st| st.reduce_by_key_and_window(|a: i32, b| a + b, s(3), s(2)),
                6,
            )
        },
        vec![
            vec![('a', 3), ('b', 5)],
            vec![('a', 6), ('b', 6)],
            vec![('a', 4)],
        ],
    );
    t.sorted(
        "reduce_by_key_and_window_inv 2s/1s keeps keys at 0",
        || {
            run_operation(
                ab(),
                |st| st.reduce_by_key_and_window_inv(|a: i32, b| a + b, |a, b| a - b, s(2), s(1)),
                5,
            )
        },
        vec![
            vec![('a', 1), ('b', 1)],
            vec![('a', 3), ('b', 1)],
            vec![('a', 2), ('b', 3)],
            vec![('a', 0), ('b', 3)],
            vec![('a', 0), ('b', 0)],
        ],
    );
    t.sorted(
        "reduce_by_key_and_window_inv 3s/2s",
        || {
            run_operation(
                ab_slide2(),
                |st| st.reduce_by_key_and_window_inv(|a: i32, b| a + b, |a, b| a - b, s(3), s(2)),
                6,
            )
        },
        vec![
            vec![('a', 3), ('b', 5)],
            vec![('a', 6), ('b', 6)],
            vec![('a', 4), ('b', 0)],
        ],
    );
    t.sorted(
        "reduce_by_key_and_window_inv_n with a filter drops zeros",
        || {
            run_operation(
                ab(),
                |st| {
                    st.reduce_by_key_and_window_inv_n(
                        |a: i32, b| a + b,
                        |a, b| a - b,
                        s(2),
                        s(1),
                        2,
                        Some(Arc::new(|kv: &(char, i32)| kv.1 != 0)),
                    )
                },
                5,
            )
        },
        vec![
            vec![('a', 1), ('b', 1)],
            vec![('a', 3), ('b', 1)],
            vec![('a', 2), ('b', 3)],
            vec![('b', 3)],
            vec![],
        ],
    );
    let returning = || vec![vec![('a', 1)], vec![], vec![], vec![('a', 2)]];
    t.sorted(
        "reduce_by_key_and_window_inv_n: a filtered key comes back",
        || {
            run_operation(
                returning(),
                |st| {
                    st.reduce_by_key_and_window_inv_n(
                        |a: i32, b| a + b,
                        |a, b| a - b,
                        s(2),
                        s(1),
                        3,
                        Some(Arc::new(|kv: &(char, i32)| kv.1 != 0)),
                    )
                },
                5,
            )
        },
        vec![
            vec![('a', 1)],
            vec![('a', 1)],
            vec![],
            vec![('a', 2)],
            vec![('a', 2)],
        ],
    );
    t.sorted(
        "reduce_by_key_and_window_inv: a key at 0 grows again",
        || {
            run_operation(
                returning(),
                |st| st.reduce_by_key_and_window_inv(|a: i32, b| a + b, |a, b| a - b, s(2), s(1)),
                5,
            )
        },
        vec![
            vec![('a', 1)],
            vec![('a', 1)],
            vec![('a', 0)],
            vec![('a', 2)],
            vec![('a', 2)],
        ],
    );
    t.sorted(
        "count_by_value_and_window 2s/1s drops zero counts",
        || {
            run_operation(
                vec![vec!['a', 'b'], vec!['a'], vec![], vec!['b']],
                |st| st.count_by_value_and_window(s(2), s(1)),
                5,
            )
        },
        vec![
            vec![('a', 1), ('b', 1)],
            vec![('a', 2), ('b', 1)],
            vec![('a', 1)],
            vec![('b', 1)],
            vec![('b', 1)],
        ],
    );
    t.sorted(
        "count_by_value_and_window 4s/2s until empty",
        || {
            run_operation(
                vec![vec!['x'], vec!['x', 'y'], vec!['y'], vec![], vec!['x']],
                |st| st.count_by_value_and_window(s(4), s(2)),
                10,
            )
        },
        vec![
            vec![('x', 2), ('y', 1)],
            vec![('x', 2), ('y', 2)],
            vec![('x', 1), ('y', 1)],
            vec![('x', 1)],
            vec![],
        ],
    );
    t.sorted(
        "group_by_key_and_window 2s/1s",
        || {
            run_operation(
                vec![
                    vec![('a', 1), ('b', 2)],
                    vec![('a', 3)],
                    vec![],
                    vec![('b', 4)],
                ],
                |st| st.group_by_key_and_window(s(2), s(1)).map(sorted_values),
                5,
            )
        },
        vec![
            vec![('a', vec![1]), ('b', vec![2])],
            vec![('a', vec![1, 3]), ('b', vec![2])],
            vec![('a', vec![3])],
            vec![('b', vec![4])],
            vec![('b', vec![4])],
        ],
    );
    t.sorted(
        "reduce_by_key_and_window_inv over a windowed parent (parent slide 2s)",
        || {
            run_operation(
                (1..=6).map(|x| vec![('a', x)]).collect(),
                |st| {
                    st.window(s(2), s(2)).reduce_by_key_and_window_inv(
                        |a: i32, b| a + b,
                        |a, b| a - b,
                        s(4),
                        s(2),
                    )
                },
                8,
            )
        },
        vec![
            vec![('a', 3)],
            vec![('a', 10)],
            vec![('a', 18)],
            vec![('a', 11)],
        ],
    );
    t.sorted(
        "group_by_key_and_window 4s/2s",
        || {
            run_operation(
                vec![
                    vec![('a', 1)],
                    vec![('b', 2)],
                    vec![('a', 3)],
                    vec![],
                    vec![('b', 5)],
                ],
                |st| st.group_by_key_and_window(s(4), s(2)),
                6,
            )
        },
        vec![
            vec![('a', vec![1]), ('b', vec![2])],
            vec![('a', vec![1, 3]), ('b', vec![2])],
            vec![('a', vec![3]), ('b', vec![5])],
        ],
    );
    t.sorted(
        "group_by_key_and_window 3s/3s: values in time order",
        || {
            run_operation(
                vec![
                    vec![('a', 5)],
                    vec![('a', 3), ('b', 1)],
                    vec![('a', 4)],
                    vec![('b', 2)],
                ],
                |st| st.group_by_key_and_window(s(3), s(3)),
                6,
            )
        },
        vec![
            vec![('a', vec![5, 3, 4]), ('b', vec![1])],
            vec![('b', vec![2])],
        ],
    );
    t.finish();
}

#[test]
fn batch_times() {
    let mut t = Table::new("batch time");
    let two_second_batches = Harness {
        batch: s(2),
        ..Harness::default()
    };
    t.timed(
        "every batch of a plain stream",
        || {
            Harness::default().run_timed(3, |ssc| {
                test_input_stream(ssc, vec![vec![1], vec![2]], 2).map(|x: i32| x + 1)
            })
        },
        vec![(1000, vec![2]), (2000, vec![3]), (3000, vec![])],
    );
    t.timed(
        "map after a 2s slide runs every 2s",
        || {
            Harness::default().run_timed(6, |ssc| {
                test_input_stream(ssc, vec![vec![1], vec![2], vec![3], vec![4], vec![5]], 2)
                    .window(s(2), s(2))
                    .map(|x: i32| x * 10)
            })
        },
        vec![(2000, vec![10, 20]), (4000, vec![30, 40]), (6000, vec![50])],
    );
    t.timed(
        "window 3s slide 3s: times 3000 and 6000",
        || {
            Harness::default().run_timed(7, |ssc| {
                test_input_stream(ssc, vec![vec![1]], 2)
                    .window(s(3), s(3))
                    .count()
            })
        },
        vec![(3000, vec![1]), (6000, vec![0])],
    );
    t.timed(
        "reduce_by_key_and_window_inv 2s/2s times",
        || {
            Harness::default().run_timed(4, |ssc| {
                test_input_stream(ssc, vec![vec![('a', 1)]], 2).reduce_by_key_and_window_inv(
                    |a: i32, b| a + b,
                    |a, b| a - b,
                    s(2),
                    s(2),
                )
            })
        },
        vec![(2000, vec![('a', 1)]), (4000, vec![('a', 0)])],
    );
    t.timed(
        "2s batches: window 4s slide 2s",
        || {
            two_second_batches.run_timed(3, |ssc| {
                test_input_stream(ssc, vec![vec![1], vec![2], vec![3]], 2).window(s(4), s(2))
            })
        },
        vec![(2000, vec![1]), (4000, vec![1, 2]), (6000, vec![2, 3])],
    );
    t.timed(
        "2s batches: window 4s slide 4s",
        || {
            two_second_batches.run_timed(4, |ssc| {
                test_input_stream(ssc, vec![vec![1], vec![2], vec![3], vec![4]], 2)
                    .window(s(4), s(4))
            })
        },
        vec![(4000, vec![1, 2]), (8000, vec![3, 4])],
    );
    t.timed(
        "update_state_by_key after a 3s window",
        || {
            Harness::default().run_timed(6, |ssc| {
                test_input_stream(ssc, vec![vec![('a', 1)], vec![], vec![], vec![('a', 1)]], 2)
                    .window(s(3), s(3))
                    .update_state_by_key(running_sum)
            })
        },
        vec![(3000, vec![('a', 1)]), (6000, vec![('a', 2)])],
    );
    t.finish();
}

/// A started context on a manual clock at `start_ms`, with a checkpoint directory.
struct Manual {
    ssc: StreamingContext,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

impl Manual {
    fn new(batch: Duration, start_ms: u64) -> Manual {
        let ssc = StreamingContext::new("local[2]", batch).expect("context");
        let clock = ManualClock::new(start_ms);
        ssc.set_clock(Clock::Manual(clock.clone()))
            .expect("clock before start");
        let dir = tempfile::tempdir().expect("temporary directory");
        ssc.checkpoint(dir.path()).expect("checkpoint directory");
        Manual {
            ssc,
            clock,
            _dir: dir,
        }
    }

    /// Advances the clock to `until_ms` and waits for that batch.
    fn run_until(&self, until_ms: u64) {
        self.clock.set_time(ms(until_ms));
        assert!(
            self.ssc
                .wait_for_batch(ms(until_ms), Duration::from_secs(60)),
            "batch {until_ms} ms did not complete"
        );
    }
}

/// A shared buffer print_to can write into.
fn buffer() -> (Arc<Mutex<Vec<u8>>>, Arc<Mutex<dyn Write + Send>>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let out: Arc<Mutex<dyn Write + Send>> = buf.clone();
    (buf, out)
}

fn text_of(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8(buf.lock().unwrap().clone()).expect("utf-8")
}

#[test]
fn print_to_writes_sparks_format() {
    let (buf, out) = buffer();
    Harness::default().run_with(3, |ssc| {
        let st = test_input_stream(ssc, vec![vec![1, 2, 3, 4], vec![5]], 2);
        st.print_to(3, out);
        st
    });
    assert_eq!(
        text_of(&buf),
        "-------------------------------------------\n\
         Time: 1000 ms\n\
         -------------------------------------------\n\
         1\n\
         2\n\
         3\n\
         ...\n\
         \n\
         -------------------------------------------\n\
         Time: 2000 ms\n\
         -------------------------------------------\n\
         5\n\
         \n\
         -------------------------------------------\n\
         Time: 3000 ms\n\
         -------------------------------------------\n\
         \n"
    );

    // print() shows ten elements: exactly ten gives no "...", eleven does; pairs as (k,v).
    let (buf, out) = buffer();
    Harness::default().run_with(2, |ssc| {
        let st = test_input_stream(
            ssc,
            vec![(1..=10).collect::<Vec<u32>>(), (1..=11).collect()],
            2,
        )
        .map(|x| (char::from(b'a' + x as u8 - 1), x));
        st.print_to(10, out);
        st
    });
    let expected_first: String = (1..=10u8)
        .map(|x| format!("({},{x})\n", char::from(b'a' + x - 1)))
        .collect();
    assert_eq!(
        text_of(&buf),
        format!(
            "-------------------------------------------\nTime: 1000 ms\n-------------------------------------------\n{expected_first}\n\
             -------------------------------------------\nTime: 2000 ms\n-------------------------------------------\n{expected_first}...\n\n"
        )
    );
    assert!(text_of(&buf).contains("(j,10)\n\n"));

    // A windowed stream prints only at its slide times.
    let (buf, out) = buffer();
    Harness::default().run_with(3, |ssc| {
        let st = test_input_stream(ssc, vec![vec![1], vec![2], vec![3]], 2).window(s(2), s(2));
        st.print_to(10, out);
        st
    });
    assert_eq!(
        text_of(&buf),
        "-------------------------------------------\n\
         Time: 2000 ms\n\
         -------------------------------------------\n\
         1\n\
         2\n\
         \n"
    );
}

fn read_dir_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("readable directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn save_as_text_files_writes_a_directory_per_batch() {
    let out = tempfile::tempdir().expect("temporary directory");
    let prefix = out.path().join("out").to_string_lossy().into_owned();
    let plain = out.path().join("plain").to_string_lossy().into_owned();
    let win = out.path().join("win").to_string_lossy().into_owned();
    Harness::default().run_with(3, |ssc| {
        let st = test_input_stream(
            ssc,
            vec![vec![('a', 1), ('b', 2), ('c', 3)], vec![], vec![('d', 4)]],
            2,
        );
        st.save_as_text_files(prefix.clone(), "txt");
        st.save_as_text_files(plain.clone(), "");
        st.window(s(2), s(2)).save_as_text_files(win.clone(), "w");
        st
    });
    assert_eq!(
        read_dir_names(out.path()),
        [
            "out-1000.txt",
            "out-2000.txt",
            "out-3000.txt",
            "plain-1000",
            "plain-2000",
            "plain-3000",
            "win-2000.w"
        ]
    );
    let part = |batch: &str, n: &str| {
        std::fs::read_to_string(out.path().join(batch).join(n)).expect("part file")
    };
    for batch in ["out-1000.txt", "out-2000.txt", "out-3000.txt", "plain-1000"] {
        assert_eq!(
            read_dir_names(&out.path().join(batch)),
            ["_SUCCESS", "part-00000", "part-00001"],
            "{batch}"
        );
    }
    assert_eq!(part("out-1000.txt", "part-00000"), "(a,1)\n");
    assert_eq!(part("out-1000.txt", "part-00001"), "(b,2)\n(c,3)\n");
    assert_eq!(part("out-2000.txt", "part-00000"), "");
    assert_eq!(part("out-2000.txt", "part-00001"), "");
    assert_eq!(part("out-3000.txt", "part-00000"), "");
    assert_eq!(part("out-3000.txt", "part-00001"), "(d,4)\n");
    assert_eq!(part("plain-1000", "part-00001"), "(b,2)\n(c,3)\n");
    // The window at 2 s is the union of the batches of 1 s and 2 s: their 2 + 2 partitions.
    assert_eq!(
        read_dir_names(&out.path().join("win-2000.w")),
        [
            "_SUCCESS",
            "part-00000",
            "part-00001",
            "part-00002",
            "part-00003"
        ]
    );
    assert_eq!(part("win-2000.w", "part-00000"), "(a,1)\n");
    assert_eq!(part("win-2000.w", "part-00001"), "(b,2)\n(c,3)\n");
    assert_eq!(part("win-2000.w", "part-00002"), "");
    assert_eq!(part("win-2000.w", "part-00003"), "");
}

#[test]
fn save_as_hadoop_files_writes_keys_and_values_separated_by_a_tab() {
    let out = tempfile::tempdir().expect("temporary directory");
    let prefix = out.path().join("kv").to_string_lossy().into_owned();
    Harness::default().run_with(2, |ssc| {
        let st = test_input_stream(
            ssc,
            vec![vec![("a b".to_string(), 1), ("c".to_string(), 2)], vec![]],
            2,
        );
        st.map(|(k, v): (String, i32)| (k, (v, v * 10)))
            .save_as_hadoop_files(prefix.clone(), "tsv");
        st
    });
    assert_eq!(read_dir_names(out.path()), ["kv-1000.tsv", "kv-2000.tsv"]);
    for batch in ["kv-1000.tsv", "kv-2000.tsv"] {
        assert_eq!(
            read_dir_names(&out.path().join(batch)),
            ["_SUCCESS", "part-00000", "part-00001"],
            "{batch}"
        );
    }
    let part = |batch: &str, n: &str| {
        std::fs::read_to_string(out.path().join(batch).join(n)).expect("part file")
    };
    // Hadoop's TextOutputFormat: the key's text, a tab, the value's text (a tuple as Spark's
    // toString writes it).
    assert_eq!(part("kv-1000.tsv", "part-00000"), "a b\t(1,10)\n");
    assert_eq!(part("kv-1000.tsv", "part-00001"), "c\t(2,20)\n");
    assert_eq!(part("kv-2000.tsv", "part-00000"), "");
}

#[test]
fn foreach_rdd_sees_batch_times_relative_to_the_zero_time() {
    // The clock reads 2.5 s at start: zero time 2 s, first batch 3 s; a 2 s slide produces at
    // 4 s and 6 s (multiples of the slide after the zero time), not at 3 s and 5 s.
    let m = Manual::new(s(1), 2500);
    let input = test_input_stream(
        &m.ssc,
        vec![vec![1], vec![2], vec![3], vec![4], vec![5], vec![6]],
        2,
    );
    let plain: Arc<Mutex<Vec<(Time, Vec<i32>)>>> = Arc::default();
    let windowed: Arc<Mutex<Vec<(Time, Vec<i32>)>>> = Arc::default();
    for (stream, seen) in [
        (input.clone(), plain.clone()),
        (input.window(s(2), s(2)), windowed.clone()),
    ] {
        stream.foreach_rdd(move |rdd, t| {
            seen.lock().unwrap().push((t, rdd.collect()?));
            Ok(())
        });
    }
    m.ssc.start().expect("valid graph");
    assert_eq!(m.ssc.zero_time(), Some(ms(2000)));
    m.run_until(6000);
    m.ssc.stop(false);
    // Input batch i is the RDD of time (i + 1) s, whatever the zero time.
    assert_eq!(
        *plain.lock().unwrap(),
        vec![
            (ms(3000), vec![3]),
            (ms(4000), vec![4]),
            (ms(5000), vec![5]),
            (ms(6000), vec![6])
        ]
    );
    assert_eq!(
        *windowed.lock().unwrap(),
        vec![(ms(4000), vec![3, 4]), (ms(6000), vec![5, 6])]
    );
}

#[test]
fn a_failing_output_fails_its_batch_and_later_batches_run() {
    let m = Manual::new(s(1), 0);
    let input = test_input_stream(&m.ssc, vec![vec![1], vec![2], vec![3]], 2);
    let first: Arc<Mutex<Vec<Time>>> = Arc::default();
    let second: Arc<Mutex<Vec<Time>>> = Arc::default();
    let f = first.clone();
    input.foreach_rdd(move |_, t| {
        f.lock().unwrap().push(t);
        if t == Time::from_ms(2000) {
            return Err("boom at 2000".into());
        }
        Ok(())
    });
    let g = second.clone();
    input.count().foreach_rdd(move |rdd, t| {
        assert_eq!(rdd.collect()?, vec![1]);
        g.lock().unwrap().push(t);
        Ok(())
    });
    m.ssc.start().expect("valid graph");
    for _ in 0..3 {
        m.clock.advance(s(1));
    }
    assert!(m.ssc.wait_for_batch(ms(3000), Duration::from_secs(60)));
    let batches = m.ssc.completed_batches();
    m.ssc.stop(false);
    let summary: Vec<(Time, Option<String>, usize)> = batches
        .iter()
        .map(|b| (b.batch_time, b.failure.clone(), b.output_operations))
        .collect();
    assert_eq!(
        summary,
        vec![
            (ms(1000), None, 2),
            (
                ms(2000),
                Some("output operation failed: boom at 2000".into()),
                2
            ),
            (ms(3000), None, 2),
        ]
    );
    let times = vec![ms(1000), ms(2000), ms(3000)];
    assert_eq!(*first.lock().unwrap(), times);
    // The other output operation of the failed batch still ran.
    assert_eq!(*second.lock().unwrap(), times);
}

#[test]
fn slice_on_a_started_context() {
    let m = Manual::new(s(1), 0);
    m.ssc.remember(s(10));
    let input = test_input_stream(&m.ssc, vec![vec![1], vec![2], vec![3], vec![4]], 2);
    let windowed = input.window(s(2), s(2));
    input.foreach_rdd(|_, _| Ok(()));
    windowed.foreach_rdd(|_, _| Ok(()));
    let err = input.slice(ms(1000), ms(2000)).unwrap_err();
    assert!(
        matches!(&err, Error::State(m) if m.contains("slice() needs a started context")),
        "{err}"
    );
    m.ssc.start().expect("valid graph");
    m.run_until(4000);
    let collect = |rdds: Vec<spate_streaming::Rdd<i32>>| -> Vec<Vec<i32>> {
        rdds.iter().map(|r| r.collect().expect("collect")).collect()
    };
    let cases: Vec<(&str, &DStream<i32>, u64, u64, Vec<Vec<i32>>)> = vec![
        (
            "input [1s, 3s]",
            &input,
            1000,
            3000,
            vec![vec![1], vec![2], vec![3]],
        ),
        (
            "input [1s, 3.5s]: to aligns down",
            &input,
            1000,
            3500,
            vec![vec![1], vec![2], vec![3]],
        ),
        (
            "input [0, 1s]: the zero time has no RDD",
            &input,
            0,
            1000,
            vec![vec![1]],
        ),
        (
            "input past the last input batch",
            &input,
            4000,
            4000,
            vec![vec![4]],
        ),
        (
            "window slide 2s [1s, 4s]",
            &windowed,
            1000,
            4000,
            vec![vec![1, 2], vec![3, 4]],
        ),
        (
            "window slide 2s [3s, 3s]: both ends align down to 2s, like Spark",
            &windowed,
            3000,
            3000,
            vec![vec![1, 2]],
        ),
        (
            "input [1.5s, 3.5s]: from aligns down too",
            &input,
            1500,
            3500,
            vec![vec![1], vec![2], vec![3]],
        ),
    ];
    let mut failures = Vec::new();
    for (name, stream, from, to, expected) in cases {
        let got = collect(stream.slice(ms(from), ms(to)).expect("slice"));
        if got != expected {
            failures.push(format!("{name}: got {got:?}, expected {expected:?}"));
        }
    }
    m.ssc.stop(false);
    assert!(
        failures.is_empty(),
        "slice cases failed:\n{}",
        failures.join("\n")
    );
}

/// Builds a graph on a fresh 10 s-batch context (manual clock, checkpoint directory only when
/// `checkpoint`) and returns the message of the error `start()` reports.
fn start_error(checkpoint: bool, build: impl FnOnce(&StreamingContext)) -> String {
    let ssc = StreamingContext::new("local[2]", s(10)).expect("context");
    ssc.set_clock(Clock::Manual(ManualClock::new(0)))
        .expect("clock");
    let dir = tempfile::tempdir().expect("temporary directory");
    if checkpoint {
        ssc.checkpoint(dir.path()).expect("checkpoint directory");
    }
    build(&ssc);
    let err = ssc.start().expect_err("start() should fail");
    ssc.stop(false);
    match err {
        Error::InvalidGraph(problems) => {
            assert!(!problems.is_empty());
            let text = format!("{}", Error::InvalidGraph(problems));
            assert!(
                text.starts_with("the streaming graph is invalid:"),
                "{text}"
            );
            text
        }
        other => panic!("expected Error::InvalidGraph, got {other:?}"),
    }
}

fn input10(ssc: &StreamingContext) -> DStream<(char, u64)> {
    test_input_stream(ssc, vec![vec![('a', 1)]], 2)
}

fn sink<T: spate_streaming::core::Data>(st: &DStream<T>) {
    st.foreach_rdd(|_, _| Ok(()));
}

#[test]
fn start_reports_graph_errors() {
    let cases: Vec<(&str, bool, Box<dyn FnOnce(&StreamingContext)>, Vec<&str>)> = vec![
        (
            "window not a multiple of the batch",
            true,
            Box::new(|ssc| sink(&input10(ssc).window(s(45), s(10)))),
            vec!["window 45s is not a multiple of the batch interval 10s: use 40s or 50s"],
        ),
        (
            "slide not a multiple of the batch",
            true,
            Box::new(|ssc| sink(&input10(ssc).window(s(30), s(15)))),
            vec!["slide 15s is not a multiple of the batch interval 10s: use 10s or 20s"],
        ),
        (
            "slide shorter than the batch",
            true,
            Box::new(|ssc| sink(&input10(ssc).window(s(30), s(5)))),
            vec!["slide 5s is not a multiple of the batch interval 10s: use 10s"],
        ),
        (
            "window not a multiple of the parent's slide",
            true,
            Box::new(|ssc| sink(&input10(ssc).window(s(20), s(20)).window(s(30), s(20)))),
            vec!["window 30s is not a multiple of the parent's slide 20s: use 20s or 40s"],
        ),
        (
            "reduce_by_key_and_window_inv window",
            true,
            Box::new(|ssc| {
                sink(&input10(ssc).reduce_by_key_and_window_inv(
                    |a, b| a + b,
                    |a, b| a - b,
                    s(45),
                    s(10),
                ))
            }),
            vec!["window 45s is not a multiple of the batch interval 10s: use 40s or 50s"],
        ),
        (
            "count_by_window window",
            true,
            Box::new(|ssc| sink(&input10(ssc).count_by_window(s(25), s(10)))),
            vec!["window 25s is not a multiple of the batch interval 10s: use 20s or 30s"],
        ),
        (
            "reduce_by_key_and_window slide",
            true,
            Box::new(|ssc| {
                sink(&input10(ssc).reduce_by_key_and_window(|a, b| a + b, s(40), s(25)))
            }),
            vec!["slide 25s is not a multiple of the batch interval 10s: use 20s or 30s"],
        ),
        (
            "update_state_by_key without a checkpoint directory",
            false,
            Box::new(|ssc| {
                sink(
                    &input10(ssc).update_state_by_key(|vs: &[u64], st: Option<u64>| {
                        Some(st.unwrap_or(0) + vs.iter().sum::<u64>())
                    }),
                )
            }),
            vec![
                "update_state_by_key at ",
                "keeps state across batches and needs a checkpoint directory: call StreamingContext::checkpoint(dir) before start()",
            ],
        ),
        (
            "reduce_by_key_and_window_inv without a checkpoint directory",
            false,
            Box::new(|ssc| {
                sink(&input10(ssc).reduce_by_key_and_window_inv(
                    |a, b| a + b,
                    |a, b| a - b,
                    s(20),
                    s(10),
                ))
            }),
            vec![
                "reduce_by_key_and_window at ",
                "keeps state across batches and needs a checkpoint directory",
            ],
        ),
        (
            "count_by_value_and_window without a checkpoint directory",
            false,
            Box::new(|ssc| sink(&input10(ssc).count_by_value_and_window(s(20), s(10)))),
            vec!["needs a checkpoint directory"],
        ),
        (
            "no output operation",
            true,
            Box::new(|ssc| {
                input10(ssc).map(|x| x.1);
            }),
            vec!["no output operation is registered, so nothing would run"],
        ),
        (
            "union of streams with different slides",
            true,
            Box::new(|ssc| {
                let a = input10(ssc);
                sink(&a.window(s(20), s(20)).union(&a));
            }),
            vec!["streams with different slides cannot be combined (20s and 10s)"],
        ),
        (
            "join of streams with different slides",
            true,
            Box::new(|ssc| {
                let a = input10(ssc);
                sink(&a.join(&a.window(s(30), s(30))));
            }),
            vec!["streams with different slides cannot be combined (10s and 30s)"],
        ),
        (
            "every problem at once, naming the call site",
            false,
            Box::new(|ssc| {
                input10(ssc).window(s(45), s(10));
                input10(ssc).count_by_window(s(20), s(10));
            }),
            vec![
                "window 45s is not a multiple of the batch interval 10s: use 40s or 50s",
                "no output operation is registered",
                "needs a checkpoint directory",
                "window at ",
                "operations.rs:",
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (name, checkpoint, build, fragments) in cases {
        match catch_unwind(AssertUnwindSafe(|| start_error(checkpoint, build))) {
            Ok(text) => {
                for f in fragments {
                    if !text.contains(f) {
                        failures.push(format!("{name}: {f:?} not in {text:?}"));
                    }
                }
            }
            Err(p) => failures.push(format!("{name}: panicked: {}", panic_text(&*p))),
        }
    }
    assert!(
        failures.is_empty(),
        "error cases failed:\n  - {}",
        failures.join("\n  - ")
    );
}

#[test]
fn the_harness_panics_with_the_graph_error() {
    let p = catch_unwind(|| {
        run_operation(
            vec![vec![1]],
            |st| st.window(Duration::from_millis(1500), s(1)).map(|x: i32| x),
            1,
        )
    })
    .expect_err("an invalid window should panic the harness");
    let text = panic_text(&*p);
    assert!(
        text.contains("window 1500ms is not a multiple of the batch interval 1s: use 1s or 2s"),
        "{text}"
    );
}

#[test]
fn context_state_errors() {
    let m = Manual::new(s(1), 0);
    sink(&test_input_stream(&m.ssc, vec![vec![1]], 2));
    m.ssc.start().expect("valid graph");
    let again = m.ssc.start().unwrap_err();
    assert!(matches!(again, Error::State(_)), "{again:?}");
    assert!(
        again
            .to_string()
            .contains("start must be called before start()"),
        "{again}"
    );
    let clock = m.ssc.set_clock(Clock::System).unwrap_err();
    assert!(
        clock
            .to_string()
            .contains("set_clock must be called before start()"),
        "{clock}"
    );
    m.ssc.stop(false);
    let empty: Vec<DStream<i32>> = Vec::new();
    assert!(matches!(m.ssc.union(&empty), Err(Error::State(_))));
}
