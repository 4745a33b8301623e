//! A windowed and stateful job runs for 10,000 manual-clock batches in bounded memory: the number
//! of stored blocks, remembered RDDs and checkpoint directories stays flat, and the results are
//! still right at the end.

use spate_streaming::testing::test_input_stream;
use spate_streaming::{Clock, ManualClock, StreamingContext, Time};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BATCHES: usize = 10_000;

#[test]
fn ten_thousand_batches_keep_storage_bounded() {
    let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
    let clock = ManualClock::new(0);
    ssc.set_clock(Clock::Manual(clock.clone())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    ssc.checkpoint(dir.path()).unwrap();

    // Batch i holds the words "k0".."k4" and one of "r0".."r9"; every word counts once.
    let input: Vec<Vec<String>> = (0..BATCHES)
        .map(|i| {
            (0..5)
                .map(|k| format!("k{k}"))
                .chain([format!("r{}", i % 10)])
                .collect()
        })
        .collect();
    let words = test_input_stream(&ssc, input, 2);
    let pairs = words.map(|w| (w, 1u64));
    let windowed = pairs.reduce_by_key_and_window_inv(
        |a, b| a + b,
        |a, b| a - b,
        Duration::from_secs(3),
        Duration::from_secs(1),
    );
    let state = pairs.update_state_by_key(|vs: &[u64], s: Option<u64>| {
        Some(s.unwrap_or(0) + vs.iter().sum::<u64>())
    });
    let plain_window = words
        .window(Duration::from_secs(5), Duration::from_secs(1))
        .count();

    let last_window: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let last_state: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let last_count: Arc<Mutex<Vec<u64>>> = Arc::default();
    let (lw, ls, lc) = (last_window.clone(), last_state.clone(), last_count.clone());
    windowed.foreach_rdd(move |rdd, _| {
        *lw.lock().unwrap() = rdd.collect()?;
        Ok(())
    });
    state.foreach_rdd(move |rdd, _| {
        *ls.lock().unwrap() = rdd.collect()?;
        Ok(())
    });
    plain_window.foreach_rdd(move |rdd, _| {
        *lc.lock().unwrap() = rdd.collect()?;
        Ok(())
    });
    ssc.start().unwrap();

    let rdd_dir = dir.path().join("rdds");
    let mut samples = Vec::new();
    for i in 1..=BATCHES {
        clock.advance(Duration::from_secs(1));
        assert!(
            ssc.wait_for_batch(Time::from_ms(i as u64 * 1000), Duration::from_secs(60)),
            "batch {i} did not complete"
        );
        if i % 500 == 0 {
            let blocks = ssc.context().block_manager().block_ids().len();
            let remembered: usize = ssc.remembered_times().iter().map(|(_, t)| t.len()).sum();
            let checkpoints = std::fs::read_dir(&rdd_dir).map(|d| d.count()).unwrap_or(0);
            let bytes = ssc.context().block_manager().stats().memory_bytes;
            samples.push((i, blocks, remembered, checkpoints, bytes));
        }
    }
    let failures: Vec<_> = ssc
        .completed_batches()
        .into_iter()
        .filter_map(|b| b.failure)
        .collect();
    ssc.stop(false);
    assert!(failures.is_empty(), "{failures:?}");

    // Flat, not growing: the second half never exceeds the first half's maximum.
    let half = samples.len() / 2;
    for (what, pick) in [
        (
            "blocks",
            (|s: &(usize, usize, usize, usize, u64)| s.1 as u64)
                as fn(&(usize, usize, usize, usize, u64)) -> u64,
        ),
        ("remembered RDDs", |s| s.2 as u64),
        ("checkpoint directories", |s| s.3 as u64),
        ("memory bytes", |s| s.4),
    ] {
        let first = samples[..half].iter().map(pick).max().unwrap();
        let second = samples[half..].iter().map(pick).max().unwrap();
        assert!(
            second <= first,
            "{what} grew from {first} to {second}: {samples:?}"
        );
    }
    let (_, blocks, remembered, checkpoints, _) = *samples.last().unwrap();
    // Remember durations (Spark's rules): checkpointing streams keep 2 × their 10 s checkpoint
    // interval, their parents that plus the 3 s window — about 20 RDDs per operator here.
    assert!(
        remembered <= 120,
        "{remembered} RDDs remembered: {samples:?}"
    );
    assert!(blocks <= 400, "{blocks} blocks stored: {samples:?}");
    assert!(
        checkpoints <= 8,
        "{checkpoints} checkpoint directories: {samples:?}"
    );

    // And the answers are right after 10,000 batches.
    let mut w = last_window.lock().unwrap().clone();
    w.sort();
    let mut expected_w: Vec<(String, u64)> = (0..5).map(|k| (format!("k{k}"), 3)).collect();
    // The last three batches are i = 9997, 9998, 9999 → r7, r8, r9 once each; the other r's are 0.
    expected_w.extend((0..10).map(|r| (format!("r{r}"), u64::from((7..=9).contains(&r)))));
    expected_w.sort();
    assert_eq!(w, expected_w);
    let mut s = last_state.lock().unwrap().clone();
    s.sort();
    let mut expected_s: Vec<(String, u64)> =
        (0..5).map(|k| (format!("k{k}"), BATCHES as u64)).collect();
    expected_s.extend((0..10).map(|r| (format!("r{r}"), (BATCHES / 10) as u64)));
    expected_s.sort();
    assert_eq!(s, expected_s);
    assert_eq!(*last_count.lock().unwrap(), vec![30]);
}
