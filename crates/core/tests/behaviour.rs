//! Behaviour tests of the RDD core: persistence and eviction, shuffle cleanup and recovery,
//! checkpoints, failures, files, debug strings, partitioner reuse, sorting and concurrency, each
//! against a hand-computed expectation.

use spate_core::storage::{BlockId, Codec, serialize_block};
use spate_core::{
    Context, ContextConfig, Dependency, Error, HashPartitioner, Partitioner, PartitionerInfo, Rdd,
    StorageLevel,
};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn ctx() -> Context {
    Context::new("local[2]").unwrap()
}

/// A context whose block manager holds `memory_bytes` and keeps its scratch files under `scratch`.
fn small_ctx(memory_bytes: u64, scratch: &Path) -> Context {
    Context::with_config(ContextConfig {
        memory_bytes,
        scratch_parent: scratch.to_path_buf(),
        ..ContextConfig::new("local[2]")
    })
    .unwrap()
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn get(c: &AtomicUsize) -> usize {
    c.load(Ordering::SeqCst)
}

/// `0..n` mapped through a closure that counts its invocations.
fn counted_map(ctx: &Context, n: u64, slices: usize, calls: &Arc<AtomicUsize>) -> Rdd<u64> {
    let calls = calls.clone();
    ctx.parallelize((0..n).collect(), slices).map(move |x| {
        calls.fetch_add(1, Ordering::SeqCst);
        x * 10
    })
}

fn rdd_blocks(ctx: &Context, rdd: u64) -> Vec<BlockId> {
    ctx.block_manager()
        .block_ids()
        .into_iter()
        .filter(|b| b.rdd_id() == Some(rdd))
        .collect()
}

fn shuffle_blocks(ctx: &Context) -> Vec<BlockId> {
    ctx.block_manager()
        .block_ids()
        .into_iter()
        .filter(|b| matches!(b, BlockId::Shuffle { .. }))
        .collect()
}

fn shuffle_ids(ctx: &Context) -> BTreeSet<u64> {
    shuffle_blocks(ctx)
        .iter()
        .filter_map(BlockId::shuffle_id)
        .collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// A 50-character string per element, so that blocks have a predictable, non-trivial size.
fn padded(x: u64) -> String {
    format!("{x:050}")
}

// ---------------------------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------------------------

#[test]
fn cache_and_persist_avoid_recomputation() {
    let ctx = ctx();
    for level in [
        None,
        Some(StorageLevel::MEMORY_ONLY),
        Some(StorageLevel::MEMORY_AND_DISK_SER),
    ] {
        let calls = counter();
        let base = counted_map(&ctx, 20, 4, &calls);
        let rdd = match level {
            None => base.cache(),
            Some(l) => base.persist(l),
        };
        let expected: Vec<u64> = (0..20).map(|x| x * 10).collect();
        assert_eq!(rdd.collect().unwrap(), expected);
        assert_eq!(
            get(&calls),
            20,
            "{level:?}: the first action computes every element once"
        );
        assert_eq!(
            rdd_blocks(&ctx, rdd.id()).len(),
            4,
            "{level:?}: one block per partition"
        );
        assert_eq!(rdd.count().unwrap(), 20);
        assert_eq!(
            rdd.map(|x| x + 1).collect().unwrap(),
            expected.iter().map(|x| x + 1).collect::<Vec<_>>()
        );
        assert_eq!(
            get(&calls),
            20,
            "{level:?}: later actions read the stored partitions"
        );
    }

    // Without persistence every action recomputes.
    let calls = counter();
    let rdd = counted_map(&ctx, 20, 4, &calls);
    rdd.count().unwrap();
    rdd.count().unwrap();
    assert_eq!(get(&calls), 40);
    assert!(rdd_blocks(&ctx, rdd.id()).is_empty());
}

/// The size the block manager charges for one partition of `per_partition` padded strings at
/// `level` (measured on a roomy context).
fn charged_block_size(per_partition: u64, level: StorageLevel) -> u64 {
    let ctx = ctx();
    let rdd = ctx
        .parallelize((0..per_partition).collect(), 1)
        .map(padded)
        .persist(level);
    rdd.count().unwrap();
    let stats = ctx.block_manager().stats();
    assert_eq!(stats.memory_blocks, 1);
    stats.memory_bytes
}

#[test]
fn evicted_memory_only_partitions_are_recomputed_from_lineage() {
    // 8 partitions of 4 strings; the memory budget holds two and a half of them.
    let block = charged_block_size(4, StorageLevel::MEMORY_ONLY);
    let scratch = tempfile::tempdir().unwrap();
    let ctx = small_ctx(block * 5 / 2, scratch.path());
    let calls = counter();
    let c = calls.clone();
    let rdd = ctx
        .parallelize((0..32).collect(), 8)
        .map(move |x| {
            c.fetch_add(1, Ordering::SeqCst);
            padded(x)
        })
        .persist(StorageLevel::MEMORY_ONLY);
    let expected: Vec<String> = (0..32).map(padded).collect();

    assert_eq!(rdd.collect().unwrap(), expected);
    assert_eq!(get(&calls), 32);
    let stats = ctx.block_manager().stats();
    assert!(
        stats.evictions_dropped >= 6,
        "8 blocks into room for 2: {stats:?}"
    );
    assert_eq!(
        stats.evictions_spilled, 0,
        "memory-only blocks are never spilled"
    );
    let cached = rdd_blocks(&ctx, rdd.id()).len();
    assert!(cached <= 2, "{cached} blocks cached");

    // Every partition that was evicted is recomputed from lineage; the result is the same.
    assert_eq!(rdd.collect().unwrap(), expected);
    assert!(
        get(&calls) >= 32 + (8 - cached) * 4,
        "{} calls, {cached} blocks were cached",
        get(&calls)
    );
    assert_eq!(rdd.count().unwrap(), 32);
}

#[test]
fn memory_and_disk_ser_spills_instead_of_dropping() {
    let per_partition = 4;
    let one_block = serialize_block(
        &BlockId::Rdd {
            rdd: 0,
            partition: 0,
        },
        &(0..per_partition).map(padded).collect::<Vec<_>>(),
        Codec::None,
    )
    .unwrap()
    .len() as u64;
    assert_eq!(
        charged_block_size(per_partition, StorageLevel::MEMORY_AND_DISK_SER),
        one_block
    );
    let scratch = tempfile::tempdir().unwrap();
    let ctx = small_ctx(one_block * 5 / 2, scratch.path());
    let calls = counter();
    let c = calls.clone();
    let rdd = ctx
        .parallelize((0..32).collect(), 8)
        .map(move |x| {
            c.fetch_add(1, Ordering::SeqCst);
            padded(x)
        })
        .persist(StorageLevel::MEMORY_AND_DISK_SER);
    let expected: Vec<String> = (0..32).map(padded).collect();

    assert_eq!(rdd.collect().unwrap(), expected);
    let stats = ctx.block_manager().stats();
    assert!(
        stats.evictions_spilled >= 6,
        "8 blocks into room for 2: {stats:?}"
    );
    assert_eq!(stats.evictions_dropped, 0, "{stats:?}");
    assert!(stats.memory_blocks <= 2, "{stats:?}");
    assert_eq!(
        stats.memory_blocks + stats.disk_blocks,
        8,
        "every partition is stored somewhere: {stats:?}"
    );
    assert_eq!(rdd_blocks(&ctx, rdd.id()).len(), 8);

    // Spilled partitions are read back from disk, not recomputed.
    assert_eq!(rdd.collect().unwrap(), expected);
    assert_eq!(get(&calls), 32);

    // unpersist removes them from memory and disk.
    rdd.unpersist();
    let stats = ctx.block_manager().stats();
    assert_eq!(
        (stats.memory_blocks, stats.disk_blocks),
        (0, 0),
        "{stats:?}"
    );
}

#[test]
fn unpersist_removes_blocks_and_later_actions_recompute() {
    let ctx = ctx();
    let calls = counter();
    let rdd = counted_map(&ctx, 12, 3, &calls).cache();
    assert_eq!(rdd.count().unwrap(), 12);
    assert_eq!(
        rdd_blocks(&ctx, rdd.id()),
        (0..3)
            .map(|p| BlockId::Rdd {
                rdd: rdd.id(),
                partition: p
            })
            .collect::<Vec<_>>()
    );

    rdd.unpersist();
    assert!(rdd_blocks(&ctx, rdd.id()).is_empty());
    assert_eq!(rdd.storage_level(), StorageLevel::NONE);
    assert_eq!(rdd.count().unwrap(), 12);
    assert_eq!(get(&calls), 24, "after unpersist the RDD is computed again");
    assert!(
        rdd_blocks(&ctx, rdd.id()).is_empty(),
        "and not stored again"
    );
}

#[test]
fn dropping_the_last_handle_removes_persisted_blocks() {
    let ctx = ctx();
    let calls = counter();
    let rdd = counted_map(&ctx, 12, 3, &calls).cache();
    let id = rdd.id();
    let other = ctx.parallelize(vec![1u8, 2], 2).cache();
    other.count().unwrap();
    let child = rdd.map(|x| x + 1);
    assert_eq!(child.count().unwrap(), 12);
    assert_eq!(rdd_blocks(&ctx, id).len(), 3);

    drop(rdd);
    assert_eq!(
        rdd_blocks(&ctx, id).len(),
        3,
        "the child still holds the RDD"
    );
    drop(child);
    assert!(rdd_blocks(&ctx, id).is_empty());
    assert_eq!(
        rdd_blocks(&ctx, other.id()).len(),
        2,
        "other RDDs' blocks stay"
    );
}

// ---------------------------------------------------------------------------------------------
// Shuffles
// ---------------------------------------------------------------------------------------------

/// `(x % 5, x)` for `x` in `0..40`, in 4 partitions of 10, each element counted in `hits[x]`.
fn keyed(ctx: &Context, hits: &Arc<Vec<AtomicUsize>>) -> Rdd<(u64, u64)> {
    let hits = hits.clone();
    ctx.parallelize((0..40u64).collect(), 4).map(move |x| {
        hits[x as usize].fetch_add(1, Ordering::SeqCst);
        (x % 5, x)
    })
}

fn hits(n: usize) -> Arc<Vec<AtomicUsize>> {
    Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect())
}

/// The sums of `keyed`: key k gets k + (k+5) + … + (k+35) = 8k + 140.
fn keyed_sums() -> Vec<(u64, u64)> {
    (0..5).map(|k| (k, 8 * k + 140)).collect()
}

#[test]
fn shuffle_blocks_are_removed_with_the_rdds() {
    let ctx = ctx();
    let h = hits(40);
    let pairs = keyed(&ctx, &h);
    let sums = pairs.reduce_by_key_n(|a, b| a + b, 3);
    assert_eq!(sorted(sums.collect().unwrap()), keyed_sums());
    let blocks = shuffle_blocks(&ctx);
    assert_eq!(
        blocks.len(),
        4 * 3,
        "one block per (map, reduce) pair: {blocks:?}"
    );
    assert_eq!(shuffle_ids(&ctx).len(), 1);

    // A second action reuses the map outputs.
    assert_eq!(sums.count().unwrap(), 5);
    assert!(h.iter().all(|c| get(c) == 1), "the map stage ran once");

    drop(sums);
    assert!(
        shuffle_blocks(&ctx).is_empty(),
        "{:?}",
        shuffle_blocks(&ctx)
    );
    drop(pairs);
    assert!(ctx.block_manager().block_ids().is_empty());
}

#[test]
fn lost_shuffle_output_is_recomputed() {
    let ctx = ctx();
    let h = hits(40);
    let sums = keyed(&ctx, &h).reduce_by_key_n(|a, b| a + b, 3);
    assert_eq!(sorted(sums.collect().unwrap()), keyed_sums());
    assert!(h.iter().all(|c| get(c) == 1));

    let lost = shuffle_blocks(&ctx)
        .into_iter()
        .find(|b| matches!(b, BlockId::Shuffle { map: 2, .. }))
        .expect("map 2 wrote blocks");
    assert!(ctx.block_manager().remove(&lost));
    assert!(!ctx.block_manager().contains(&lost));

    assert_eq!(sorted(sums.collect().unwrap()), keyed_sums());
    assert!(
        ctx.block_manager().contains(&lost),
        "the map task wrote its output again"
    );
    for (x, c) in h.iter().enumerate() {
        let expected = if (20..30).contains(&x) { 2 } else { 1 };
        assert_eq!(get(c), expected, "element {x} (map partition {})", x / 10);
    }
    assert_eq!(shuffle_blocks(&ctx).len(), 12);
}

// ---------------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------------

#[test]
fn checkpoint_writes_files_and_truncates_lineage() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    ctx.set_checkpoint_dir(dir.path()).unwrap();
    let calls = counter();
    let rdd = counted_map(&ctx, 20, 4, &calls).map(|x| x + 1);
    let before = rdd.to_debug_string();
    assert_eq!(before.lines().count(), 3, "{before}");
    assert!(before.contains("parallelize"), "{before}");

    rdd.checkpoint().unwrap();
    assert!(
        !rdd.is_checkpointed(),
        "checkpoints are written by the next job"
    );
    assert!(rdd.checkpoint_file().is_none());
    let expected: Vec<u64> = (0..20).map(|x| x * 10 + 1).collect();
    assert_eq!(rdd.collect().unwrap(), expected);
    assert!(rdd.is_checkpointed());

    let files = rdd.checkpoint_file().unwrap();
    assert!(files.starts_with(dir.path()), "{files:?}");
    let mut names: Vec<String> = std::fs::read_dir(&files)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["part-00000", "part-00001", "part-00002", "part-00003"]
    );

    let after = rdd.to_debug_string();
    assert_eq!(after.lines().count(), 1, "{after}");
    assert!(after.contains("[checkpointed]"), "{after}");
    assert!(!after.contains("parallelize"), "{after}");
    assert!(rdd.as_base().dependencies().is_empty());

    // Later actions, and children, read the files: the parent is not computed again.
    let computed = get(&calls);
    assert!(computed >= 20);
    assert_eq!(rdd.collect().unwrap(), expected);
    assert_eq!(
        rdd.reduce(|a, b| a + b).unwrap(),
        Some(expected.iter().sum())
    );
    let child = rdd.map(|x| x * 2);
    assert_eq!(
        child.collect().unwrap(),
        expected.iter().map(|x| x * 2).collect::<Vec<_>>()
    );
    assert_eq!(child.to_debug_string().lines().count(), 2);
    assert_eq!(get(&calls), computed);

    // A checkpointed RDD can be read back as an object file.
    let back: Vec<u64> = ctx.object_file(&files).unwrap().collect().unwrap();
    assert_eq!(back, expected);
}

#[test]
fn checkpoint_of_a_shuffled_rdd_keeps_results() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    ctx.set_checkpoint_dir(dir.path()).unwrap();
    let h = hits(40);
    let sums = keyed(&ctx, &h).reduce_by_key_n(|a, b| a + b, 3).cache();
    sums.checkpoint().unwrap();
    assert_eq!(sorted(sums.collect().unwrap()), keyed_sums());
    assert!(sums.is_checkpointed());
    assert!(
        h.iter().all(|c| get(c) == 1),
        "persisted, so the checkpoint job reads the cache"
    );
    assert_eq!(
        sums.to_debug_string().lines().count(),
        1,
        "{}",
        sums.to_debug_string()
    );
    sums.unpersist();
    assert_eq!(sorted(sums.collect().unwrap()), keyed_sums());
    assert!(h.iter().all(|c| get(c) == 1));
}

#[test]
fn checkpoint_without_a_directory_fails() {
    let ctx = ctx();
    let rdd = ctx.parallelize(vec![1, 2, 3], 1);
    match rdd.checkpoint() {
        Err(Error::NoCheckpointDir { rdd: id }) => assert_eq!(id, rdd.id()),
        other => panic!("expected NoCheckpointDir, got {other:?}"),
    }
    assert_eq!(rdd.collect().unwrap(), [1, 2, 3]);
    assert!(!rdd.is_checkpointed());
}

// ---------------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------------

#[test]
fn a_panicking_task_fails_the_job_and_the_context_stays_usable() {
    let ctx = ctx();
    // Slices of 0..20 in 4: [0, 5), [5, 10), [10, 15), [15, 20): 13 is in partition 2.
    let bad = ctx.parallelize((0..20u32).collect(), 4).map(|x| {
        if x == 13 {
            panic!("boom at element {x}");
        }
        x
    });
    match bad.collect() {
        Err(Error::TaskFailed {
            partition,
            rdd,
            name,
            message,
            ..
        }) => {
            assert_eq!(partition, 2);
            assert_eq!(rdd, bad.id());
            assert_eq!(name, "map");
            assert!(message.contains("boom at element 13"), "{message}");
        }
        other => panic!("expected TaskFailed, got {other:?}"),
    }
    let text = bad.count().unwrap_err().to_string();
    assert!(
        text.contains("partition 2") && text.contains("boom at element 13"),
        "{text}"
    );

    // A panic in a shuffle map stage names the map-side RDD.
    let pairs = bad.map(|x| (x % 2, x));
    match pairs.reduce_by_key(|a, b| a + b).collect() {
        Err(Error::TaskFailed { partition, rdd, .. }) => {
            assert_eq!((partition, rdd), (2, pairs.id()))
        }
        other => panic!("expected TaskFailed, got {other:?}"),
    }

    // The same context still runs jobs, with and without shuffles.
    let good = ctx.parallelize((0..20u32).collect(), 4);
    assert_eq!(good.map(|x| x * 2).reduce(|a, b| a + b).unwrap(), Some(380));
    assert_eq!(
        sorted(
            good.map(|x| (x % 2, x))
                .reduce_by_key(|a, b| a + b)
                .collect()
                .unwrap()
        ),
        vec![(0, 90), (1, 100)]
    );
}

#[test]
fn text_file_on_a_missing_path_names_it() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-input.txt");
    let err = ctx.text_file(&missing, 2).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if *path == missing),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&*missing.to_string_lossy()),
        "{err}"
    );
}

#[test]
fn invalid_utf8_is_bad_input_naming_the_file() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("latin1.txt");
    std::fs::write(&file, b"fine\ncaf\xe9\nend\n").unwrap();
    match ctx.text_file(&file, 1).unwrap().collect() {
        Err(Error::BadInput { path, reason }) => {
            assert_eq!(path, file);
            assert!(reason.contains("byte 5"), "{reason}");
        }
        other => panic!("expected BadInput, got {other:?}"),
    }
}

#[test]
fn saving_into_an_existing_directory_fails() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let rdd = ctx.parallelize(vec![1, 2, 3], 2);
    match rdd.save_as_text_file(dir.path()) {
        Err(Error::OutputExists(p)) => assert_eq!(p, dir.path()),
        other => panic!("expected OutputExists, got {other:?}"),
    }
    match rdd.save_as_object_file(dir.path()) {
        Err(Error::OutputExists(p)) => assert_eq!(p, dir.path()),
        other => panic!("expected OutputExists, got {other:?}"),
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing was written"
    );
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn save_as_text_file_writes_spark_layout_and_reads_back() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let pairs: Vec<(String, u32)> = ["a", "b", "c", "d", "e"]
        .iter()
        .zip(1..)
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    // 5 elements in 3 slices: [0, 1), [1, 3), [3, 5).
    ctx.parallelize(pairs, 3).save_as_text_file(&out).unwrap();

    assert_eq!(
        file_names(&out),
        ["_SUCCESS", "part-00000", "part-00001", "part-00002"]
    );
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    assert_eq!(read("part-00000"), "(a,1)\n");
    assert_eq!(read("part-00001"), "(b,2)\n(c,3)\n");
    assert_eq!(read("part-00002"), "(d,4)\n(e,5)\n");
    assert_eq!(read("_SUCCESS"), "");

    let expected = ["(a,1)", "(b,2)", "(c,3)", "(d,4)", "(e,5)"];
    for min_partitions in [1, 2, 3, 7] {
        let back = ctx.text_file(&out, min_partitions).unwrap();
        assert!(
            back.num_partitions() >= min_partitions.max(3),
            "{} partitions",
            back.num_partitions()
        );
        assert_eq!(
            back.collect().unwrap(),
            expected,
            "min_partitions {min_partitions}"
        );
    }

    // Empty partitions are written as empty files and read back as nothing.
    let sparse = dir.path().join("sparse");
    ctx.parallelize(vec![7u8, 8], 4)
        .save_as_text_file(&sparse)
        .unwrap();
    assert_eq!(
        file_names(&sparse),
        [
            "_SUCCESS",
            "part-00000",
            "part-00001",
            "part-00002",
            "part-00003"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(sparse.join("part-00000")).unwrap(),
        ""
    );
    assert_eq!(
        ctx.text_file(&sparse, 1).unwrap().collect().unwrap(),
        ["7", "8"]
    );
}

#[test]
fn text_file_splits_one_file_into_at_least_min_partitions() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    // Files of many sizes, including ones whose size is not a multiple of the partition count,
    // short lines, an empty line, CRLF endings and no final newline.
    for n in 1..=40usize {
        let lines: Vec<String> = (0..n)
            .map(|i| {
                if i % 7 == 3 {
                    String::new()
                } else {
                    "x".repeat(i % 5 + 1)
                }
            })
            .collect();
        let mut text = String::new();
        for (i, l) in lines.iter().enumerate() {
            text.push_str(l);
            if i + 1 < n || n % 2 == 0 || l.is_empty() {
                text.push_str(if i % 3 == 0 { "\r\n" } else { "\n" });
            }
        }
        let file = dir.path().join(format!("f{n}.txt"));
        std::fs::write(&file, &text).unwrap();
        for min_partitions in [1, 2, 4, 5] {
            let rdd = ctx.text_file(&file, min_partitions).unwrap();
            if text.len() >= min_partitions {
                assert!(
                    rdd.num_partitions() >= min_partitions,
                    "{} bytes, min_partitions {min_partitions}: {} partitions",
                    text.len(),
                    rdd.num_partitions()
                );
            }
            assert_eq!(
                rdd.collect().unwrap(),
                lines,
                "{text:?} in {min_partitions}"
            );
        }
    }

    // A realistic file: min_partitions 4 gives at least 4 partitions, all lines, in order.
    let file = dir.path().join("words.txt");
    let words: Vec<String> = (0..1000)
        .map(|i| format!("line {i} {}", "w".repeat(i % 13)))
        .collect();
    std::fs::write(&file, words.join("\n") + "\n").unwrap();
    let rdd = ctx.text_file(&file, 4).unwrap();
    assert!(rdd.num_partitions() >= 4, "{}", rdd.num_partitions());
    let parts = rdd.collect_partitions().unwrap();
    assert!(
        parts.iter().filter(|p| !p.is_empty()).count() >= 4,
        "work is spread over the partitions"
    );
    assert_eq!(parts.concat(), words);
}

#[test]
fn object_file_round_trip_preserves_partitions_and_order() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("objects");
    let parts: Vec<Vec<(String, Option<i64>)>> = vec![
        vec![("z".into(), Some(-1)), ("a".into(), None)],
        vec![],
        vec![
            ("m".into(), Some(i64::MAX)),
            ("m".into(), Some(0)),
            ("b".into(), None),
        ],
    ];
    ctx.parallelize_partitions(parts.clone())
        .save_as_object_file(&out)
        .unwrap();
    assert_eq!(
        file_names(&out),
        ["_SUCCESS", "part-00000", "part-00001", "part-00002"]
    );

    let back: Rdd<(String, Option<i64>)> = ctx.object_file(&out).unwrap();
    assert_eq!(back.num_partitions(), 3);
    assert_eq!(back.collect_partitions().unwrap(), parts);
}

#[test]
fn a_directory_of_partition_files_with_one_missing_is_an_error_naming_it() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("objects");
    let parts: Vec<Vec<u64>> = vec![vec![1, 2], vec![3], vec![4, 5, 6]];
    ctx.parallelize_partitions(parts.clone())
        .save_as_object_file(&out)
        .unwrap();
    let back: Rdd<u64> = ctx.read_checkpoint(&out, 3).unwrap();
    assert_eq!(back.collect_partitions().unwrap(), parts);

    // A gap: the directory alone shows it.
    let middle = out.join("part-00001");
    std::fs::rename(&middle, out.join("aside")).unwrap();
    for err in [
        ctx.object_file::<u64>(&out).map(|_| ()).unwrap_err(),
        ctx.read_checkpoint::<u64>(&out, 3).map(|_| ()).unwrap_err(),
    ] {
        match &err {
            Error::MissingPartition {
                missing,
                partitions: 3,
                ..
            } => assert_eq!(missing, &middle),
            other => panic!("expected MissingPartition, got {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("part-00001 is missing") && text.contains("put the file back"),
            "{text}"
        );
    }
    std::fs::rename(out.join("aside"), &middle).unwrap();

    // The last one: only the recorded count shows it.
    let last = out.join("part-00002");
    std::fs::remove_file(&last).unwrap();
    assert_eq!(ctx.object_file::<u64>(&out).unwrap().num_partitions(), 2);
    match ctx.read_checkpoint::<u64>(&out, 3).map(|_| ()) {
        Err(Error::MissingPartition { missing, .. }) => assert_eq!(missing, last),
        other => panic!("expected MissingPartition, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Debug strings
// ---------------------------------------------------------------------------------------------

#[test]
fn debug_string_shows_stages_like_spark() {
    let ctx = ctx();
    let words = ctx.parallelize(
        vec!["a", "b", "a"].into_iter().map(String::from).collect(),
        2,
    );
    let pairs = words.map(|w| (w, 1u32));
    let counts = pairs.reduce_by_key_n(|a, b| a + b, 3);
    let out = counts.map(|(w, n)| format!("{w}={n}"));
    let text = out.to_debug_string();
    let lines: Vec<&str> = text.lines().collect();
    let at = |rdd: u64, name: &str| format!("{name}[{rdd}] at {}:", file!());
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with(&format!("(3) {}", at(out.id(), "map"))),
        "{text}"
    );
    assert!(
        lines[1].starts_with(&format!(" |  {}", at(counts.id(), "reduce_by_key"))),
        "{text}"
    );
    assert!(
        lines[2].starts_with(&format!(" +-(2) {}", at(pairs.id(), "map"))),
        "{text}"
    );
    assert!(
        lines[3].starts_with(&format!("    |  {}", at(words.id(), "parallelize"))),
        "{text}"
    );

    // Persisted RDDs show their level; a two-parent join shows both shuffles.
    counts.cache();
    assert!(
        out.to_debug_string()
            .lines()
            .nth(1)
            .unwrap()
            .ends_with(&format!(" [{}]", StorageLevel::MEMORY_ONLY))
    );
    let joined = pairs.join_n(&counts, 2);
    let text = joined.to_debug_string();
    let shuffles: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("+-"))
        .collect();
    assert_eq!(
        shuffles.len(),
        3,
        "two join inputs and the reduce_by_key: {text}"
    );
    assert!(text.lines().next().unwrap().starts_with("(2) "), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Partitioners
// ---------------------------------------------------------------------------------------------

#[test]
fn reduce_by_key_on_a_hash_partitioned_rdd_runs_no_shuffle() {
    let ctx = ctx();
    let h = hits(40);
    let parted = keyed(&ctx, &h).partition_by(Arc::new(HashPartitioner::new(2)));
    assert_eq!(parted.partitioner(), Some(PartitionerInfo::Hash(2)));
    assert_eq!(
        parted.partition_by(Arc::new(HashPartitioner::new(2))).id(),
        parted.id(),
        "no-op repartition"
    );

    let sums = parted.reduce_by_key_n(|a, b| a + b, 2);
    assert_eq!(sums.partitioner(), Some(PartitionerInfo::Hash(2)));
    assert!(
        sums.as_base()
            .dependencies()
            .iter()
            .all(|d| !matches!(d, Dependency::Shuffle(_)))
    );
    assert_eq!(sorted(sums.collect().unwrap()), keyed_sums());
    assert_eq!(shuffle_ids(&ctx).len(), 1, "only partition_by shuffled");
    // reduce_by_key without a count reuses the parent's hash partitioner too.
    assert_eq!(
        sorted(parted.reduce_by_key(|a, b| a + b).collect().unwrap()),
        keyed_sums()
    );
    assert_eq!(shuffle_ids(&ctx).len(), 1);
    // Every key lives in the one partition the partitioner assigns it.
    for (p, part) in sums.collect_partitions().unwrap().iter().enumerate() {
        for (k, _) in part {
            assert_eq!(HashPartitioner::new(2).partition(k), p);
        }
    }

    // A different partition count does shuffle.
    let reshuffled = parted.reduce_by_key_n(|a, b| a + b, 3);
    assert_eq!(sorted(reshuffled.collect().unwrap()), keyed_sums());
    assert_eq!(shuffle_ids(&ctx).len(), 2);
}

#[test]
fn join_of_co_partitioned_rdds_is_narrow_and_correct() {
    let ctx = ctx();
    let p = Arc::new(HashPartitioner::new(3));
    let left = ctx
        .parallelize((0..12u32).map(|i| (i % 6, format!("l{i}"))).collect(), 4)
        .partition_by(p.clone());
    let right = ctx
        .parallelize((3..9u32).map(|k| (k, k * 100)).collect(), 2)
        .partition_by(p.clone());
    let joined = left.join(&right);
    assert_eq!(joined.partitioner(), Some(PartitionerInfo::Hash(3)));
    assert_eq!(joined.num_partitions(), 3);

    let mut expected = Vec::new();
    for i in 0..12u32 {
        let k = i % 6;
        if (3..9).contains(&k) {
            expected.push((k, (format!("l{i}"), k * 100)));
        }
    }
    expected.sort();
    assert_eq!(sorted(joined.collect().unwrap()), expected);
    assert_eq!(
        shuffle_ids(&ctx).len(),
        2,
        "only the two partition_by shuffles ran"
    );

    let lo = sorted(left.left_outer_join(&right).collect().unwrap());
    assert_eq!(lo.len(), 12);
    assert!(
        lo.iter()
            .all(|(k, (_, w))| *w == (*k >= 3).then_some(k * 100))
    );
    assert_eq!(shuffle_ids(&ctx).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Sorting
// ---------------------------------------------------------------------------------------------

#[test]
fn sort_by_key_is_globally_sorted() {
    let ctx = ctx();
    // A scrambled permutation with duplicates: keys (i * 37) % 101 % 50.
    let data: Vec<(u32, u32)> = (0..300u32).map(|i| ((i * 37) % 101 % 50, i)).collect();
    let equal: Vec<(u32, u32)> = (0..50u32).map(|i| (7, i)).collect();
    for input in [data, equal, Vec::new(), vec![(1, 1)]] {
        for slices in [1, 2, 3, 7] {
            let rdd = ctx.parallelize(input.clone(), slices);
            for out_partitions in [1, 2, 4, 9] {
                for ascending in [true, false] {
                    let sorted_rdd = rdd.sort_by_key_n(ascending, out_partitions);
                    assert_eq!(sorted_rdd.num_partitions(), out_partitions);
                    let got = sorted_rdd.collect().unwrap();
                    // Equal keys keep their input order (a stable sort of the input).
                    let mut expected = input.clone();
                    if ascending {
                        expected.sort_by_key(|p| p.0);
                    } else {
                        expected.sort_by_key(|p| std::cmp::Reverse(p.0));
                    }
                    assert_eq!(
                        got,
                        expected,
                        "{} elements, {slices} slices into {out_partitions}, ascending {ascending}",
                        input.len()
                    );
                }
            }
            assert_eq!(rdd.sort_by_key(true).num_partitions(), slices);
        }
    }
    let empty: Rdd<(u8, u8)> = ctx.empty_rdd();
    assert_eq!(empty.sort_by_key(false).collect().unwrap(), []);
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

const fn assert_send_sync<T: Send + Sync>() {}
const _: () = {
    assert_send_sync::<Context>();
    assert_send_sync::<Rdd<String>>();
    assert_send_sync::<Rdd<(String, u64)>>();
    assert_send_sync::<Error>();
};

#[test]
fn concurrent_jobs_on_one_context_both_succeed() {
    let ctx = Context::new("local[3]").unwrap();
    let shared = ctx
        .parallelize((0..200u64).collect(), 5)
        .map(|x| (x % 7, x))
        .cache();
    let expected_sums: Vec<(u64, u64)> = (0..7)
        .map(|k| (k, (0..200u64).filter(|x| x % 7 == k).sum()))
        .collect();
    std::thread::scope(|s| {
        let jobs: Vec<_> = (0..4u64)
            .map(|t| {
                let ctx = &ctx;
                let shared = shared.clone();
                let expected_sums = &expected_sums;
                s.spawn(move || {
                    for round in 0..5u64 {
                        // Each thread: its own shuffle job, a sort, and a job on a shared RDD.
                        let words = ctx.parallelize(
                            (0..100u64).map(|i| format!("w{}", (i + t) % 10)).collect(),
                            4,
                        );
                        let counts = sorted(
                            words
                                .map(|w| (w, 1u64))
                                .reduce_by_key(|a, b| a + b)
                                .collect()
                                .unwrap(),
                        );
                        assert_eq!(
                            counts,
                            (0..10).map(|i| (format!("w{i}"), 10)).collect::<Vec<_>>()
                        );
                        let keys: Vec<u64> = ctx
                            .parallelize(
                                (0..50u64)
                                    .rev()
                                    .map(|i| (i * (t + 1) + round, ()))
                                    .collect(),
                                3,
                            )
                            .sort_by_key(true)
                            .keys()
                            .collect()
                            .unwrap();
                        assert_eq!(
                            keys,
                            (0..50u64).map(|i| i * (t + 1) + round).collect::<Vec<_>>()
                        );
                        assert_eq!(
                            sorted(shared.reduce_by_key_n(|a, b| a + b, 3).collect().unwrap()),
                            *expected_sums
                        );
                    }
                })
            })
            .collect();
        for j in jobs {
            j.join().unwrap();
        }
    });
    assert!(
        shuffle_blocks(&ctx).is_empty(),
        "every job's shuffle was cleaned up"
    );
}

#[test]
fn keyed_aggregations_emit_keys_in_order_of_first_arrival() {
    let ctx = ctx();
    // One reduce partition, two map partitions: map partition 0's keys first, each map
    // partition's in its own arrival order, whatever the hash table's layout.
    let words: Vec<String> = [
        "pear", "fig", "apple", "fig", "kiwi", "date", "apple", "lime",
    ]
    .iter()
    .map(|w| w.to_string())
    .collect();
    let pairs = ctx.parallelize(words, 2).map(|w| (w, 1u32));
    let counts = pairs.reduce_by_key_n(|a, b| a + b, 1).collect().unwrap();
    let keys: Vec<&str> = counts.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["pear", "fig", "apple", "kiwi", "date", "lime"]);
    assert_eq!(counts[1].1, 2);
    let groups = pairs.group_by_key_n(1).collect().unwrap();
    let keys: Vec<&str> = groups.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["pear", "fig", "apple", "kiwi", "date", "lime"]);
    // Combining within a partition keeps the same order (the partitioner already matches).
    let again = ctx
        .parallelize(counts.clone(), 1)
        .partition_by(Arc::new(spate_core::HashPartitioner::new(1)));
    let kept: Vec<String> = again
        .reduce_by_key_n(|a, b| a + b, 1)
        .collect()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kept, ["pear", "fig", "apple", "kiwi", "date", "lime"]);
}
