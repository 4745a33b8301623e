//! What the guide promises of persistence and checkpointing, observed: a persisted stream's RDDs
//! are stored at its level and computed once however many streams read them; window operations
//! persist their parent; `checkpoint(interval)` checkpoints the RDDs at its multiples (and
//! must be a multiple of the slide); the `_n` forms of join and cogroup make that many
//! partitions; `save_as_object_files` writes batches that read back.

use spate_streaming::core::StorageLevel;
use spate_streaming::testing::{Harness, test_input_stream};
use spate_streaming::{Clock, DStream, ManualClock, StreamingContext};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// `input.map` counting how many elements it has computed.
fn counted_map(input: &DStream<u64>) -> (DStream<u64>, Arc<AtomicUsize>) {
    let computed = Arc::new(AtomicUsize::new(0));
    let c = computed.clone();
    let mapped = input.map(move |x: u64| {
        c.fetch_add(1, Ordering::SeqCst);
        x * 10
    });
    (mapped, computed)
}

/// Every batch's storage level and elements, as an output sees them.
type Seen = Arc<Mutex<Vec<(u64, StorageLevel, Vec<u64>)>>>;

fn observe(stream: &DStream<u64>) -> Seen {
    let seen: Seen = Arc::default();
    let o = seen.clone();
    stream.foreach_rdd(move |rdd, t| {
        o.lock()
            .unwrap()
            .push((t.ms(), rdd.storage_level(), rdd.collect()?));
        Ok(())
    });
    seen
}

/// Three batches of 2, 1 and 3 elements: 6 in all.
fn input(ssc: &StreamingContext) -> DStream<u64> {
    test_input_stream(ssc, vec![vec![1, 2], vec![3], vec![4, 5, 6]], 2)
}

#[test]
fn a_persisted_stream_is_stored_at_its_level_and_computed_once_for_two_outputs() {
    // Without persistence each of the two outputs computes the map again: 12 calls for 6
    // elements; persisted (at either level), 6.
    for (persist, level, calls) in [
        (None, StorageLevel::NONE, 12),
        (
            Some(StorageLevel::MEMORY_ONLY),
            StorageLevel::MEMORY_ONLY,
            6,
        ),
        (None::<StorageLevel>, StorageLevel::MEMORY_ONLY_SER, 6),
    ] {
        let mut seen = None;
        // The harness collects the second output (the stream returned).
        let second = Harness::default().run_with(3, |ssc| {
            let (mapped, computed) = counted_map(&input(ssc));
            let mapped = match persist {
                Some(l) => mapped.persist(l),
                // `cache()` for the third case: the DStream default, serialized.
                None if level.is_valid() => mapped.cache(),
                None => mapped,
            };
            assert_eq!(mapped.storage_level(), level);
            seen = Some((observe(&mapped), computed));
            mapped.map(|x: u64| x + 1)
        });
        let (first, computed) = seen.expect("the graph was built");
        let first = first.lock().unwrap().clone();
        assert_eq!(
            first,
            vec![
                (1000, level, vec![10, 20]),
                (2000, level, vec![30]),
                (3000, level, vec![40, 50, 60])
            ]
        );
        assert_eq!(second, [vec![11, 21], vec![31], vec![41, 51, 61]]);
        assert_eq!(computed.load(Ordering::SeqCst), calls, "{level:?}");
    }
}

#[test]
fn a_window_persists_its_parent_so_each_batch_is_computed_once() {
    let mut computed = None;
    let windows = Harness::default().run_timed(4, |ssc| {
        let (mapped, c) = counted_map(&input(ssc));
        computed = Some(c);
        assert!(!mapped.storage_level().is_valid());
        // A 3 s window sliding by 1 s reads each batch of `mapped` three times.
        let windowed = mapped.window(s(3), s(1));
        assert_eq!(mapped.storage_level(), StorageLevel::MEMORY_ONLY_SER);
        windowed
    });
    let sums: Vec<(u64, u64)> = windows
        .iter()
        .map(|(t, v)| (t.ms(), v.iter().sum()))
        .collect();
    assert_eq!(sums, [(1000, 30), (2000, 60), (3000, 210), (4000, 180)]);
    let computed = computed.expect("the graph was built");
    assert_eq!(computed.load(Ordering::SeqCst), 6);

    // A parent persisted by hand keeps its level.
    let ssc = StreamingContext::new("local[2]", s(1)).unwrap();
    let (mapped, _) = counted_map(&input(&ssc));
    mapped.persist(StorageLevel::MEMORY_AND_DISK);
    mapped.window(s(2), s(1));
    assert_eq!(mapped.storage_level(), StorageLevel::MEMORY_AND_DISK);
}

#[test]
fn checkpoint_interval_checkpoints_the_rdds_at_its_multiples() {
    let checkpointed: Arc<Mutex<Vec<(u64, bool, Vec<u64>)>>> = Arc::default();
    let c = checkpointed.clone();
    Harness::default().run_with(4, |ssc| {
        let mapped = input(ssc).map(|x: u64| x + 1);
        mapped.checkpoint(s(2));
        assert_eq!(mapped.checkpoint_interval(), Some(s(2)));
        // Persisted by `checkpoint`, as in Spark (the checkpoint reads the stored partitions).
        assert_eq!(mapped.storage_level(), StorageLevel::MEMORY_ONLY_SER);
        mapped.foreach_rdd(move |rdd, t| {
            let elements = rdd.collect()?;
            c.lock()
                .unwrap()
                .push((t.ms(), rdd.is_checkpointed(), elements));
            Ok(())
        });
        mapped
    });
    assert_eq!(
        *checkpointed.lock().unwrap(),
        vec![
            (1000, false, vec![2, 3]),
            (2000, true, vec![4]),
            (3000, false, vec![5, 6, 7]),
            (4000, true, vec![])
        ]
    );
}

#[test]
fn a_checkpoint_interval_must_be_a_multiple_of_the_slide_and_needs_a_directory() {
    let ssc = StreamingContext::new("local[2]", s(1)).unwrap();
    ssc.set_clock(Clock::Manual(ManualClock::new(0))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    ssc.checkpoint(dir.path()).unwrap();
    let windowed = input(&ssc).window(s(4), s(2));
    windowed.checkpoint(Duration::from_millis(3000));
    windowed.foreach_rdd(|_, _| Ok(()));
    let e = ssc.start().unwrap_err().to_string();
    assert!(
        e.contains("checkpoint interval 3s is not a multiple of the slide 2s: use 2s or 4s"),
        "{e}"
    );
    ssc.stop(false);

    let ssc = StreamingContext::new("local[2]", s(1)).unwrap();
    let mapped = input(&ssc).map(|x: u64| x);
    mapped.checkpoint(s(2));
    mapped.foreach_rdd(|_, _| Ok(()));
    let e = ssc.start().unwrap_err().to_string();
    assert!(
        e.contains("sets a checkpoint interval of 2s but no checkpoint directory is set"),
        "{e}"
    );
    ssc.stop(false);
}

#[test]
fn join_n_and_cogroup_n_make_that_many_partitions() {
    let left = || vec![vec![('a', 1), ('b', 2), ('c', 3), ('a', 4)]];
    let right = || vec![vec![('a', 'x'), ('c', 'y'), ('d', 'z')]];
    for n in [1, 3, 5] {
        let joined = Harness::default().run2(
            left(),
            right(),
            |a, b| a.join_n(&b, n).glom().map(|p: Vec<_>| p.len()),
            1,
        );
        assert_eq!(joined[0].len(), n, "join_n({n})");
        assert_eq!(joined[0].iter().sum::<usize>(), 3, "join_n({n})");
        let mut pairs = Harness::default().run2(left(), right(), |a, b| a.join_n(&b, n), 1);
        pairs[0].sort();
        assert_eq!(
            pairs[0],
            [('a', (1, 'x')), ('a', (4, 'x')), ('c', (3, 'y'))]
        );

        let grouped = Harness::default().run2(
            left(),
            right(),
            |a, b| a.cogroup_n(&b, n).glom().map(|p: Vec<_>| p.len()),
            1,
        );
        assert_eq!(grouped[0].len(), n, "cogroup_n({n})");
        assert_eq!(grouped[0].iter().sum::<usize>(), 4, "cogroup_n({n})");
        let mut groups = Harness::default().run2(left(), right(), |a, b| a.cogroup_n(&b, n), 1);
        groups[0].sort();
        assert_eq!(
            groups[0],
            [
                ('a', (vec![1, 4], vec!['x'])),
                ('b', (vec![2], vec![])),
                ('c', (vec![3], vec!['y'])),
                ('d', (vec![], vec!['z']))
            ]
        );
    }
}

#[test]
fn save_as_object_files_writes_a_directory_per_batch_that_reads_back() {
    let out = tempfile::tempdir().unwrap();
    let prefix = out.path().join("objects").to_string_lossy().into_owned();
    Harness::default().run_with(3, |ssc| {
        let pairs = input(ssc).map(|x: u64| (x.is_multiple_of(2), x));
        pairs.save_as_object_files(prefix.clone(), "bin");
        pairs
    });
    let ctx = spate_streaming::Context::new("local[2]").unwrap();
    for (t, want) in [
        (1000, vec![(false, 1), (true, 2)]),
        (2000, vec![(false, 3)]),
        (3000, vec![(true, 4), (false, 5), (true, 6)]),
    ] {
        let dir = format!("{prefix}-{t}.bin");
        let back: Vec<(bool, u64)> = ctx.object_file(&dir).unwrap().collect().unwrap();
        assert_eq!(back, want, "{dir}");
    }
    let mut names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["objects-1000.bin", "objects-2000.bin", "objects-3000.bin"]
    );
}
