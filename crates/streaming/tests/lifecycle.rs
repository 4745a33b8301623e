//! The streaming context's life cycle: zero time, listeners and `BatchInfo`, panics in user code,
//! graceful and immediate stops, metadata checkpoints of short batches, and argument errors.

use spate_streaming::testing::test_input_stream;
use spate_streaming::{
    BatchInfo, Clock, DStream, ManualClock, StreamingContext, StreamingListener, Time,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn manual(batch_ms: u64, start_ms: u64) -> (StreamingContext, ManualClock, tempfile::TempDir) {
    let ssc = StreamingContext::new("local[2]", Duration::from_millis(batch_ms)).unwrap();
    let clock = ManualClock::new(start_ms);
    ssc.set_clock(Clock::Manual(clock.clone())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    ssc.checkpoint(dir.path()).unwrap();
    (ssc, clock, dir)
}

fn collect_times<T: spate_core::Data>(stream: &DStream<T>) -> Arc<Mutex<Vec<(u64, Vec<T>)>>> {
    let out: Arc<Mutex<Vec<(u64, Vec<T>)>>> = Arc::default();
    let o = out.clone();
    stream.foreach_rdd(move |rdd, t| {
        o.lock().unwrap().push((t.ms(), rdd.collect()?));
        Ok(())
    });
    out
}

/// Starts `ssc` (1 s batches, the clock at 0) and runs its first `n` batches to completion.
fn start_and_run(ssc: &StreamingContext, clock: &ManualClock, n: u64) {
    ssc.start().unwrap();
    for _ in 0..n {
        clock.advance(Duration::from_millis(1000));
    }
    assert!(ssc.wait_for_batch(Time::from_ms(n * 1000), Duration::from_secs(30)));
}

/// The completed batches that failed: their times (ms) and failures, in order.
fn failures(ssc: &StreamingContext) -> Vec<(u64, String)> {
    ssc.completed_batches()
        .into_iter()
        .filter_map(|b| b.failure.map(|f| (b.batch_time.ms(), f)))
        .collect()
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<StreamingContext>();
    check::<DStream<String>>();
    check::<DStream<(String, u64)>>();
    check::<ManualClock>();
    check::<BatchInfo>();
}

#[test]
fn first_batch_is_the_first_multiple_after_start() {
    // Clock at 2500 ms, batch 1000 ms: zero time 2000, batches at 3000, 4000, …
    let (ssc, clock, _dir) = manual(1000, 2500);
    let queue = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    queue
        .lock()
        .unwrap()
        .push_back(ssc.context().parallelize(vec![1], 1));
    let out = collect_times(&ssc.queue_stream(queue, true));
    ssc.start().unwrap();
    assert_eq!(ssc.zero_time(), Some(Time::from_ms(2000)));
    clock.set_time(Time::from_ms(4000));
    assert!(ssc.wait_for_batch(Time::from_ms(4000), Duration::from_secs(30)));
    ssc.stop(false);
    assert_eq!(*out.lock().unwrap(), vec![(3000, vec![1]), (4000, vec![])]);
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(&'static str, BatchInfo)>>,
}

impl StreamingListener for Recorder {
    fn on_batch_submitted(&self, info: &BatchInfo) {
        self.events
            .lock()
            .unwrap()
            .push(("submitted", info.clone()));
    }
    fn on_batch_started(&self, info: &BatchInfo) {
        self.events.lock().unwrap().push(("started", info.clone()));
    }
    fn on_batch_completed(&self, info: &BatchInfo) {
        self.events
            .lock()
            .unwrap()
            .push(("completed", info.clone()));
    }
}

#[test]
fn listeners_see_every_batch_in_order_with_records_and_delays() {
    let (ssc, clock, _dir) = manual(1000, 0);
    let recorder = Arc::new(Recorder::default());
    ssc.add_streaming_listener(recorder.clone());
    let input = test_input_stream(&ssc, vec![vec![1, 2, 3], vec![], vec![4]], 2);
    let _ = collect_times(&input.count());
    start_and_run(&ssc, &clock, 3);
    ssc.stop(true);
    let events = recorder.events.lock().unwrap().clone();
    let completed: Vec<&BatchInfo> = events
        .iter()
        .filter(|(k, _)| *k == "completed")
        .map(|(_, i)| i)
        .collect();
    assert_eq!(
        completed
            .iter()
            .map(|i| i.batch_time.ms())
            .collect::<Vec<_>>(),
        vec![1000, 2000, 3000]
    );
    assert_eq!(
        completed.iter().map(|i| i.records).collect::<Vec<_>>(),
        vec![3, 0, 1]
    );
    for info in &completed {
        assert_eq!(info.output_operations, 1);
        assert!(info.failure.is_none());
        // The manual clock did not move while batches ran: delays are what the clock says.
        let total = info.total_delay().unwrap();
        assert_eq!(
            total,
            info.scheduling_delay().unwrap() + info.processing_delay().unwrap()
        );
    }
    // Per batch: submitted before started before completed.
    for t in [1000, 2000, 3000] {
        let kinds: Vec<&str> = events
            .iter()
            .filter(|(_, i)| i.batch_time.ms() == t)
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(
            kinds,
            vec!["submitted", "started", "completed"],
            "batch {t}"
        );
    }
    assert_eq!(ssc.completed_batches().len(), 3);
}

#[test]
fn panics_in_user_code_fail_their_batch_and_the_stream_goes_on() {
    let (ssc, clock, _dir) = manual(1000, 0);
    let input = test_input_stream(&ssc, vec![vec![1], vec![2], vec![3], vec![4]], 1);
    // A task panic (inside an RDD function), a panic while building the batch (transform closure
    // on the driver), and a panic in the output function itself.
    let task = input.map(|x: i32| if x == 2 { panic!("task boom") } else { x });
    let build = input.transform(|rdd, t| {
        if t.ms() == 3000 {
            panic!("build boom")
        } else {
            rdd.clone()
        }
    });
    let out_task = collect_times(&task);
    let out_build = collect_times(&build);
    input.foreach_rdd(|_, t| {
        if t.ms() == 4000 {
            panic!("output boom")
        } else {
            Ok(())
        }
    });
    start_and_run(&ssc, &clock, 4);
    ssc.stop(false);
    let failures = failures(&ssc);
    assert_eq!(failures.len(), 3, "{failures:?}");
    assert!(
        failures[0].0 == 2000 && failures[0].1.contains("task boom"),
        "{failures:?}"
    );
    assert!(
        failures[1].0 == 3000 && failures[1].1.contains("build boom"),
        "{failures:?}"
    );
    assert!(
        failures[2].0 == 4000 && failures[2].1.contains("output boom"),
        "{failures:?}"
    );
    assert_eq!(
        *out_task.lock().unwrap(),
        vec![(1000, vec![1]), (3000, vec![3]), (4000, vec![4])]
    );
    assert_eq!(
        *out_build.lock().unwrap(),
        vec![(1000, vec![1]), (2000, vec![2]), (4000, vec![4])]
    );
}

/// Holds batch 1000 until five batches are queued, stops, and returns the batches that ran.
fn stop_with_queued_batches(graceful: bool) -> Vec<u64> {
    let (ssc, clock, _dir) = manual(1000, 0);
    // Room for all five batches to be pending (the default keeps two).
    ssc.set_max_pending_batches(5).unwrap();
    let recorder = Arc::new(Recorder::default());
    ssc.add_streaming_listener(recorder.clone());
    let input = test_input_stream(&ssc, (0..5).map(|i| vec![i]).collect(), 1);
    let gate = Arc::new(std::sync::Barrier::new(2));
    let g = gate.clone();
    let out = collect_times(&input);
    // Hold the first batch until all five are generated, so four are queued at stop time.
    input.foreach_rdd(move |_, t| {
        if t.ms() == 1000 {
            g.wait();
        }
        Ok(())
    });
    ssc.start().unwrap();
    for _ in 0..5 {
        clock.advance(Duration::from_millis(1000));
    }
    let waiter = {
        let ssc = ssc.clone();
        std::thread::spawn(move || {
            ssc.await_termination();
        })
    };
    assert!(!ssc.await_termination_timeout(Duration::from_millis(1)));
    // Wait (bounded) until the generator has queued all five batches.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while recorder
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k == "submitted")
        .count()
        < 5
    {
        assert!(
            std::time::Instant::now() < deadline,
            "batches were not generated"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let stopper = {
        let ssc = ssc.clone();
        std::thread::spawn(move || ssc.stop(graceful))
    };
    // Release the held batch only once the stop has begun.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while ssc.status() != spate_streaming::Status::Stopping {
        assert!(std::time::Instant::now() < deadline, "stop() did not begin");
        std::thread::sleep(Duration::from_millis(1));
    }
    gate.wait();
    stopper.join().unwrap();
    waiter.join().unwrap();
    assert!(ssc.await_termination_timeout(Duration::from_millis(1)));
    out.lock().unwrap().iter().map(|(t, _)| *t).collect()
}

/// The batch times of the metadata checkpoints kept in `dir` (the newest few), oldest first.
fn checkpoint_times(dir: &std::path::Path) -> Vec<u64> {
    let mut times: Vec<u64> = std::fs::read_dir(dir.join("metadata"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix("checkpoint-")?.parse().ok()
        })
        .collect();
    times.sort();
    times
}

#[test]
fn short_batches_are_checkpointed_at_most_every_100_ms_of_batch_time_and_the_last_always() {
    // 10 ms batches, 30 of them generated at once and run back to back.
    let (ssc, clock, dir) = manual(10, 0);
    let queue = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    for i in 0..30 {
        queue
            .lock()
            .unwrap()
            .push_back(ssc.context().parallelize(vec![i], 1));
    }
    let out = collect_times(&ssc.queue_stream(queue, true));
    ssc.start().unwrap();
    clock.set_time(Time::from_ms(300));
    // Returns once the last batch's checkpoint is written: not due 100 ms after the one before
    // it, it is written when no newer batch comes.
    assert!(ssc.wait_for_batch(Time::from_ms(300), Duration::from_secs(30)));
    let times = checkpoint_times(dir.path());
    ssc.stop(false);
    assert_eq!(out.lock().unwrap().len(), 30);
    // The newest few are kept: the last batch's, and before it checkpoints at least 100 ms of
    // batch time apart (how many depends on how the batches' ends fell between writes; one per
    // batch would have kept 280, 290 and 300).
    assert_eq!(times.last(), Some(&300), "{times:?}");
    let before_last = &times[..times.len() - 1];
    assert!(
        before_last.windows(2).all(|w| w[1] - w[0] >= 100),
        "{times:?}"
    );
    assert!(before_last.last().is_none_or(|&t| t < 300), "{times:?}");
}

#[test]
fn graceful_stop_finishes_generated_batches() {
    assert_eq!(
        stop_with_queued_batches(true),
        vec![1000, 2000, 3000, 4000, 5000]
    );
}

#[test]
fn immediate_stop_drops_queued_batches_after_the_running_one() {
    assert_eq!(stop_with_queued_batches(false), vec![1000]);
}

#[test]
fn invalid_settings_are_clear_errors() {
    let e = StreamingContext::new("local[2]", Duration::ZERO)
        .unwrap_err()
        .to_string();
    assert!(e.contains("batch duration must be positive"), "{e}");
    let e = StreamingContext::new("local[2]", Duration::from_micros(1500))
        .unwrap_err()
        .to_string();
    assert!(e.contains("whole number of milliseconds"), "{e}");
    let e = StreamingContext::new("warp[9]", Duration::from_secs(1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid master"), "{e}");
    let (ssc, _clock, _dir) = manual(1000, 0);
    let input = test_input_stream(&ssc, vec![vec![1]], 1);
    input.print();
    ssc.start().unwrap();
    assert!(
        ssc.start()
            .unwrap_err()
            .to_string()
            .contains("before start()")
    );
    assert!(ssc.set_clock(Clock::System).is_err());
    ssc.stop(false);
    ssc.stop(false);
}

#[test]
fn settings_a_job_cannot_use_stop_start_with_each_one_named() {
    let (ssc, _clock, _dir) = manual(1000, 0);
    ssc.set_conf("rounds", "three");
    ssc.set_conf("batches", " 7 ");
    ssc.set_conf("ratio", "0.5");
    let input = test_input_stream(&ssc, vec![vec![1]], 1);
    input.print();
    // Read as the job would: one unparsable value, one parsed (spaces trimmed), one absent,
    // and a choice rejected by the job itself.
    assert_eq!(ssc.conf_parsed::<u32>("rounds", 1), 1);
    assert_eq!(ssc.conf_parsed::<u32>("batches", 6), 7);
    assert_eq!(ssc.conf_parsed::<u32>("absent", 6), 6);
    assert_eq!(ssc.conf_parsed_opt::<u64>("absent"), None);
    assert_eq!(ssc.conf_parsed_opt::<f64>("ratio"), Some(0.5));
    ssc.invalid_setting("from", "earlist", "use earliest or latest");
    let e = ssc.start().unwrap_err();
    assert!(
        matches!(&e, spate_streaming::Error::InvalidSetting(v) if v.len() == 2),
        "{e:?}"
    );
    let e = e.to_string();
    assert!(e.contains("--conf rounds=three: invalid digit"), "{e}");
    assert!(
        e.contains("--conf from=earlist: use earliest or latest"),
        "{e}"
    );
    assert_eq!(ssc.status(), spate_streaming::Status::Initialized);
}

/// A listener that panics at every event.
struct Panicky;

impl StreamingListener for Panicky {
    fn on_batch_submitted(&self, _: &BatchInfo) {
        panic!("listener boom (submitted)")
    }
    fn on_batch_started(&self, _: &BatchInfo) {
        panic!("listener boom (started)")
    }
    fn on_batch_completed(&self, _: &BatchInfo) {
        panic!("listener boom (completed)")
    }
}

#[test]
fn a_listener_that_panics_misses_its_events_and_nothing_else_does() {
    let (ssc, clock, _dir) = manual(1000, 0);
    // Registered before and after the one that panics: both still hear every event.
    let before = Arc::new(Recorder::default());
    let after = Arc::new(Recorder::default());
    ssc.add_streaming_listener(before.clone());
    ssc.add_streaming_listener(Arc::new(Panicky));
    ssc.add_streaming_listener(after.clone());
    let input = test_input_stream(&ssc, vec![vec![1], vec![2], vec![3]], 1);
    let out = collect_times(&input);
    start_and_run(&ssc, &clock, 3);
    ssc.stop(false);
    assert_eq!(
        *out.lock().unwrap(),
        vec![(1000, vec![1]), (2000, vec![2]), (3000, vec![3])]
    );
    for heard in [&before, &after] {
        let events = heard.events.lock().unwrap();
        let completed: Vec<u64> = events
            .iter()
            .filter(|(e, _)| *e == "completed")
            .map(|(_, i)| i.batch_time.ms())
            .collect();
        assert_eq!(completed, [1000, 2000, 3000]);
        assert_eq!(events.len(), 9);
    }
    assert!(
        ssc.completed_batches().iter().all(|b| b.failure.is_none()),
        "{:?}",
        ssc.completed_batches()
    );
}

#[test]
fn a_custom_input_that_panics_fails_its_batch_and_the_stream_goes_on() {
    let (ssc, clock, _dir) = manual(1000, 0);
    let input = ssc.custom_input_stream("panicky_input", |ctx, t| {
        if t.ms() == 2000 {
            panic!("input boom")
        }
        Ok(Some(ctx.parallelize(vec![t.ms()], 1)))
    });
    let out = collect_times(&input);
    start_and_run(&ssc, &clock, 3);
    ssc.stop(false);
    let failures = failures(&ssc);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].0, 2000);
    assert!(
        failures[0].1.contains("panicked") && failures[0].1.contains("input boom"),
        "{failures:?}"
    );
    assert_eq!(
        *out.lock().unwrap(),
        vec![(1000, vec![1000]), (3000, vec![3000])]
    );
}

#[test]
fn an_input_whose_checkpoint_function_panics_skips_that_checkpoint_only() {
    let (ssc, clock, dir) = manual(1000, 0);
    let input = ssc.custom_input_stream_with_state(
        "panicky_state",
        |ctx, t| Ok(Some(ctx.parallelize(vec![t.ms()], 1))),
        |completed, _| {
            if completed.ms() == 2000 {
                panic!("save boom")
            }
            format!("at {}", completed.ms())
        },
        |_| Ok(()),
    );
    let out = collect_times(&input);
    ssc.start().unwrap();
    // One batch at a time, so that each batch's checkpoint is due when it is taken.
    let mut kept = Vec::new();
    for t in [1000, 2000, 3000] {
        clock.set_time(Time::from_ms(t));
        assert!(ssc.wait_for_batch(Time::from_ms(t), Duration::from_secs(30)));
        kept.push(checkpoint_times(dir.path()));
    }
    ssc.stop(false);
    assert_eq!(out.lock().unwrap().len(), 3);
    assert!(ssc.completed_batches().iter().all(|b| b.failure.is_none()));
    // After batch 2000 the newest checkpoint is still batch 1000's; batch 3000's is written.
    assert_eq!(kept[0].last(), Some(&1000), "{kept:?}");
    assert_eq!(kept[1].last(), Some(&1000), "{kept:?}");
    assert_eq!(kept[2].last(), Some(&3000), "{kept:?}");
    assert!(!kept[2].contains(&2000), "{kept:?}");
}

#[test]
fn a_custom_input_reports_its_record_counts_and_a_panicking_count_only_loses_the_count() {
    let (ssc, clock, _dir) = manual(1000, 0);
    // Batch t holds t/1000 records.
    let input = ssc.custom_input_stream("counted_input", |ctx, t| {
        Ok(Some(ctx.parallelize((0..t.ms() / 1000).collect(), 1)))
    });
    ssc.report_input_records(&input, |t| match t.ms() {
        2000 => panic!("count boom"),
        4000 => None,
        ms => Some(ms / 1000),
    });
    // A derived stream counts nothing: its records are its input's.
    let mapped = input.map(|x| x + 1);
    let out = collect_times(&mapped);
    start_and_run(&ssc, &clock, 4);
    ssc.stop(false);
    let batches = ssc.completed_batches();
    assert!(batches.iter().all(|b| b.failure.is_none()), "{batches:?}");
    let counted: Vec<(u64, u64, Vec<(usize, u64)>)> = batches
        .iter()
        .map(|b| (b.batch_time.ms(), b.records, b.input_records.clone()))
        .collect();
    let id = input.id();
    assert_eq!(
        counted,
        vec![
            (1000, 1, vec![(id, 1)]),
            // The count panicked: the batch ran, without a count.
            (2000, 0, vec![]),
            (3000, 3, vec![(id, 3)]),
            (4000, 0, vec![]),
        ]
    );
    let sizes: Vec<(u64, usize)> = out
        .lock()
        .unwrap()
        .iter()
        .map(|(t, v)| (*t, v.len()))
        .collect();
    assert_eq!(sizes, vec![(1000, 1), (2000, 2), (3000, 3), (4000, 4)]);
}

#[test]
fn reporting_records_of_a_derived_stream_is_a_graph_error() {
    let (ssc, _clock, _dir) = manual(1000, 0);
    let input = ssc.custom_input_stream("plain_input", |ctx, t| {
        Ok(Some(ctx.parallelize(vec![t.ms()], 1)))
    });
    let mapped = input.map(|x| x + 1);
    ssc.report_input_records(&mapped, |_| Some(1));
    mapped.foreach_rdd(|_, _| Ok(()));
    let err = ssc.start().unwrap_err().to_string();
    assert!(
        err.contains("report_input_records needs an input stream"),
        "{err}"
    );
}
