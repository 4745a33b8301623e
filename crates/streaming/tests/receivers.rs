//! Custom receivers end to end: exact record counts, restarts that lose nothing already stored,
//! back-pressure that bounds what a fast receiver can queue, and listener events.

use spate_streaming::{
    Clock, EncodedRecords, ManualClock, Receiver, ReceiverConfig, ReceiverContext, ReceiverError,
    ReceiverInfo, StreamingContext, StreamingListener, Time,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn manual() -> (StreamingContext, ManualClock, tempfile::TempDir) {
    let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
    let clock = ManualClock::new(0);
    ssc.set_clock(Clock::Manual(clock.clone())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    ssc.checkpoint(dir.path()).unwrap();
    (ssc, clock, dir)
}

/// Waits (bounded) until `cond` holds.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Stores `0..n` in chunks of `chunk`, failing once (retryably) after `fail_after` records on its
/// first run; a restart resumes after the last stored record.
struct Counting {
    n: u64,
    chunk: u64,
    fail_after: Option<u64>,
    next: u64,
    runs: Arc<AtomicUsize>,
}

impl Receiver<u64> for Counting {
    fn receive(&mut self, ctx: &ReceiverContext<u64>) -> Result<(), ReceiverError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        while self.next < self.n && !ctx.is_stopped() {
            if let Some(f) = self.fail_after
                && self.next >= f
            {
                self.fail_after = None;
                return Err(ReceiverError::Retry("source hiccup".into()));
            }
            let end = (self.next + self.chunk).min(self.n);
            ctx.store_many((self.next..end).collect());
            self.next = end;
        }
        Ok(())
    }

    fn name(&self) -> String {
        "counting".into()
    }
}

/// Every batch's time (ms) and records, as the batches complete.
fn collect<T: spate_streaming::Data>(
    stream: &spate_streaming::DStream<T>,
) -> Arc<Mutex<Vec<(u64, Vec<T>)>>> {
    let out: Arc<Mutex<Vec<(u64, Vec<T>)>>> = Arc::default();
    let o = out.clone();
    stream.foreach_rdd(move |rdd, t| {
        o.lock().unwrap().push((t.ms(), rdd.collect()?));
        Ok(())
    });
    out
}

/// The records of every collected batch, in order.
fn records<T: Clone>(out: &Mutex<Vec<(u64, Vec<T>)>>) -> Vec<T> {
    let batches = out.lock().unwrap();
    batches
        .iter()
        .flat_map(|(_, v)| v.iter().cloned())
        .collect()
}

#[derive(Default)]
struct Events(Mutex<Vec<(String, ReceiverInfo)>>);

impl StreamingListener for Events {
    fn on_receiver_started(&self, info: &ReceiverInfo) {
        self.0
            .lock()
            .unwrap()
            .push(("started".into(), info.clone()));
    }
    fn on_receiver_error(&self, info: &ReceiverInfo) {
        self.0.lock().unwrap().push(("error".into(), info.clone()));
    }
    fn on_receiver_stopped(&self, info: &ReceiverInfo) {
        self.0
            .lock()
            .unwrap()
            .push(("stopped".into(), info.clone()));
    }
}

#[test]
fn every_stored_record_arrives_once_in_order_across_a_restart() {
    let (ssc, clock, _dir) = manual();
    ssc.set_receiver_config(ReceiverConfig {
        restart_backoff: Duration::from_millis(1),
        ..ReceiverConfig::default()
    });
    let events = Arc::new(Events::default());
    ssc.add_streaming_listener(events.clone());
    let runs = Arc::new(AtomicUsize::new(0));
    let receiver = Counting {
        n: 10_000,
        chunk: 7,
        fail_after: Some(4_000),
        next: 0,
        runs: runs.clone(),
    };
    let stream = ssc.receiver_stream(receiver);
    let out = collect(&stream);
    ssc.start().unwrap();
    eventually("all records stored", || {
        ssc.receiver_info()[0].records == 10_000
    });
    clock.advance(Duration::from_secs(1));
    assert!(ssc.wait_for_batch(Time::from_ms(1000), Duration::from_secs(30)));
    ssc.stop(true);

    let out = out.lock().unwrap().clone();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1, (0..10_000).collect::<Vec<u64>>());
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let info = &events.0.lock().unwrap().clone();
    let kinds: Vec<&str> = info.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, vec!["started", "error", "stopped"]);
    assert!(
        info[1]
            .1
            .last_error
            .as_deref()
            .unwrap()
            .contains("source hiccup")
    );
    let last = ssc.receiver_info();
    assert_eq!(last[0].restarts, 1);
    assert!(!last[0].active);
    assert_eq!(ssc.completed_batches()[0].records, 10_000);
}

/// Stores `0..n` in chunks of 7, as values and as encoded records in turn.
struct Mixed {
    n: u64,
}

impl Receiver<u64> for Mixed {
    fn receive(&mut self, ctx: &ReceiverContext<u64>) -> Result<(), ReceiverError> {
        for (i, start) in (0..self.n).step_by(7).enumerate() {
            let chunk = start..(start + 7).min(self.n);
            match i % 3 {
                0 => ctx.store_many(chunk.collect()),
                k => {
                    // Half in buffers the block generator hands back (`encoded_records`): a
                    // buffer reused with its old records in it, or its count, adds records.
                    let mut records = if k == 1 {
                        ctx.encoded_records(64)
                    } else {
                        EncodedRecords::default()
                    };
                    for x in chunk.clone() {
                        records.push(&x)?;
                    }
                    assert_eq!(records.len(), chunk.count());
                    if k == 1 {
                        ctx.store_encoded(records);
                    } else {
                        ctx.store_encoded_at(records, format!("after {i}"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Runs `Mixed` at `level` with blocks of at most 500 records, advancing the clock until every
/// record is in a completed batch; the batches' records in order.
fn mixed_run(level: spate_core::StorageLevel) -> Vec<u64> {
    let (ssc, clock, _dir) = manual();
    // Blocks hold at most half the queue bound: here many blocks, some begun as values and
    // continued as encoded records.
    ssc.set_receiver_config(ReceiverConfig {
        queue_capacity: 1_000,
        ..ReceiverConfig::default()
    });
    let stream = ssc.receiver_stream_with_level(Mixed { n: 10_000 }, level);
    let out = collect(&stream);
    ssc.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut t = 0;
    while ssc
        .completed_batches()
        .iter()
        .map(|b| b.records)
        .sum::<u64>()
        < 10_000
    {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the records"
        );
        t += 1000;
        clock.advance(Duration::from_secs(1));
        assert!(ssc.wait_for_batch(Time::from_ms(t), Duration::from_secs(30)));
    }
    ssc.stop(true);
    assert_eq!(ssc.receiver_info()[0].records, 10_000);
    records(&out)
}

#[test]
fn values_and_encoded_records_arrive_once_in_order() {
    for level in [
        spate_core::StorageLevel::MEMORY_ONLY_SER,
        spate_core::StorageLevel::MEMORY_ONLY,
    ] {
        assert_eq!(
            mixed_run(level),
            (0..10_000).collect::<Vec<u64>>(),
            "{level:?}"
        );
    }
}

/// A record bincode cannot encode when it is `u64::MAX` (a sequence of unknown length).
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
struct Stubborn(u64);

impl serde::Serialize for Stubborn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == u64::MAX {
            s.collect_seq(std::iter::once(1u8).filter(|_| true))
        } else {
            s.serialize_u64(self.0)
        }
    }
}

/// A block whose values cannot be serialized for its level (here a block of values alone, cut
/// by `store_reliably`) is not stored: it must not reach a batch, whose tasks would fail on it
/// and lose the batch's other records with it. (This was the one-in-ten failure of the test
/// below: a block tick between its stores cut such a block.)
#[test]
fn a_block_that_cannot_be_stored_is_reported_and_not_given_to_a_batch() {
    let (ssc, clock, _dir) = manual();
    struct Once;
    impl Receiver<Stubborn> for Once {
        fn receive(&mut self, ctx: &ReceiverContext<Stubborn>) -> Result<(), ReceiverError> {
            assert!(ctx.store_reliably(vec![Stubborn(u64::MAX)]).is_err());
            ctx.store_reliably(vec![Stubborn(7)])
        }
    }
    let stream = ssc.receiver_stream_with_level(Once, spate_core::StorageLevel::MEMORY_ONLY_SER);
    let out = collect(&stream);
    ssc.start().unwrap();
    eventually("the records stored", || {
        let info = &ssc.receiver_info()[0];
        info.records == 2 && !info.active
    });
    clock.advance(Duration::from_secs(1));
    assert!(ssc.wait_for_batch(Time::from_ms(1000), Duration::from_secs(30)));
    ssc.stop(true);
    assert_eq!(records(&out), vec![Stubborn(7)]);
}

/// A record whose serialization panics when it is 13 (a user's `Serialize` with a bug).
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
struct Unlucky(u64);

impl serde::Serialize for Unlucky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        assert_ne!(self.0, 13, "unlucky record");
        s.serialize_u64(self.0)
    }
}

/// A listener that panics whenever a receiver starts.
struct PanicsAtStart;

impl StreamingListener for PanicsAtStart {
    fn on_receiver_started(&self, _: &ReceiverInfo) {
        panic!("listener boom")
    }
}

/// A panic in the user's code on a receiver's threads (a listener's, or the records' own
/// serialization in the block generator) loses what it must and nothing more: the receiver and
/// its block generator go on.
#[test]
fn panics_in_user_code_around_a_receiver_lose_only_the_block_they_hit() {
    let (ssc, clock, _dir) = manual();
    let events = Arc::new(Events::default());
    ssc.add_streaming_listener(Arc::new(PanicsAtStart));
    ssc.add_streaming_listener(events.clone());
    struct Thrice;
    impl Receiver<Unlucky> for Thrice {
        fn receive(&mut self, ctx: &ReceiverContext<Unlucky>) -> Result<(), ReceiverError> {
            ctx.store_reliably(vec![Unlucky(1), Unlucky(2)])?;
            let lost = ctx.store_reliably(vec![Unlucky(12), Unlucky(13), Unlucky(14)]);
            assert!(lost.is_err(), "{lost:?}");
            ctx.store_reliably(vec![Unlucky(3)])
        }
    }
    let stream = ssc.receiver_stream_with_level(Thrice, spate_core::StorageLevel::MEMORY_ONLY_SER);
    let out = collect(&stream);
    ssc.start().unwrap();
    eventually("the receiver to finish", || {
        let info = &ssc.receiver_info()[0];
        info.records == 6 && !info.active
    });
    clock.advance(Duration::from_secs(1));
    assert!(ssc.wait_for_batch(Time::from_ms(1000), Duration::from_secs(30)));
    ssc.stop(true);
    assert_eq!(records(&out), vec![Unlucky(1), Unlucky(2), Unlucky(3)]);
    let error = ssc.receiver_info()[0].last_error.clone().unwrap();
    assert!(
        error.contains("3 received records could not be stored and are lost")
            && error.contains("panicked")
            && error.contains("unlucky record"),
        "{error}"
    );
    let heard: Vec<String> = events
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(e, _)| e.clone())
        .collect();
    assert_eq!(heard, ["started", "stopped"]);
}

#[test]
fn values_that_cannot_be_encoded_are_reported_and_the_encoded_records_after_them_kept() {
    let (ssc, clock, _dir) = manual();
    struct Once;
    impl Receiver<Stubborn> for Once {
        fn receive(&mut self, ctx: &ReceiverContext<Stubborn>) -> Result<(), ReceiverError> {
            let encoded = |x: u64| -> Result<EncodedRecords<Stubborn>, ReceiverError> {
                let mut records = EncodedRecords::default();
                records.push(&Stubborn(x))?;
                assert!(records.push(&Stubborn(u64::MAX)).is_err());
                assert_eq!(records.len(), 1);
                Ok(records)
            };
            // Held as values, then encoded when encoded records follow: these cannot be.
            ctx.store_many(vec![Stubborn(1), Stubborn(u64::MAX)]);
            ctx.store_encoded(encoded(2)?);
            // After encoded records, values are encoded at once.
            ctx.store_many(vec![Stubborn(3), Stubborn(u64::MAX)]);
            ctx.store_encoded(encoded(4)?);
            Ok(())
        }
    }
    let stream = ssc.receiver_stream_with_level(Once, spate_core::StorageLevel::MEMORY_ONLY_SER);
    let out = collect(&stream);
    ssc.start().unwrap();
    eventually("the records stored", || ssc.receiver_info()[0].records == 6);
    clock.advance(Duration::from_secs(1));
    assert!(ssc.wait_for_batch(Time::from_ms(1000), Duration::from_secs(30)));
    ssc.stop(true);
    assert_eq!(records(&out), vec![Stubborn(2), Stubborn(4)]);
    let error = ssc.receiver_info()[0].last_error.clone().unwrap();
    assert!(
        error.starts_with("2 received records could not be encoded"),
        "{error}"
    );
}

#[test]
fn records_stored_between_batches_land_in_the_next_batch() {
    let (ssc, clock, _dir) = manual();
    // A receiver fed from the test through a channel, so the test decides what each batch holds.
    struct Fed(std::sync::mpsc::Receiver<Vec<u64>>);
    impl Receiver<u64> for Fed {
        fn receive(&mut self, ctx: &ReceiverContext<u64>) -> Result<(), ReceiverError> {
            while !ctx.is_stopped() {
                match self.0.recv_timeout(Duration::from_millis(5)) {
                    Ok(v) => ctx.store_many(v),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(_) => return Ok(()),
                }
            }
            Ok(())
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let stream = ssc.receiver_stream(Fed(rx));
    let out = collect(&stream.count());
    ssc.start().unwrap();
    let mut stored = 0;
    for (i, n) in [3u64, 0, 5, 1].into_iter().enumerate() {
        tx.send((0..n).collect()).unwrap();
        stored += n;
        eventually("records stored", || {
            ssc.receiver_info()[0].records == stored
        });
        clock.advance(Duration::from_secs(1));
        assert!(ssc.wait_for_batch(
            Time::from_ms((i as u64 + 1) * 1000),
            Duration::from_secs(30)
        ));
    }
    ssc.stop(true);
    let counts: Vec<u64> = out.lock().unwrap().iter().map(|(_, v)| v[0]).collect();
    assert_eq!(counts, vec![3, 0, 5, 1]);
}

#[test]
fn a_receiver_faster_than_processing_is_held_at_the_queue_bound() {
    let (ssc, clock, _dir) = manual();
    ssc.set_receiver_config(ReceiverConfig {
        queue_capacity: 1_000,
        ..ReceiverConfig::default()
    });
    let runs = Arc::new(AtomicUsize::new(0));
    let stream = ssc.receiver_stream(Counting {
        n: 10_000,
        chunk: 1,
        fail_after: None,
        next: 0,
        runs,
    });
    let out = collect(&stream);
    ssc.start().unwrap();
    let mut batch = 0u64;
    // Each batch can take at most 1,000 records; the receiver waits in between.
    while ssc.receiver_info()[0].records < 10_000 || batch < 11 {
        assert!(
            batch < 100,
            "the receiver never finished: {:?}",
            ssc.receiver_info()
        );
        eventually("the receiver to fill the queue or finish", || {
            let i = &ssc.receiver_info()[0];
            i.records == 10_000 || i.records - batch_sum(&out) == 1_000
        });
        assert!(ssc.receiver_info()[0].max_queued <= 1_000);
        batch += 1;
        clock.advance(Duration::from_secs(1));
        assert!(ssc.wait_for_batch(Time::from_ms(batch * 1000), Duration::from_secs(30)));
    }
    ssc.stop(true);
    assert_eq!(records(&out), (0..10_000).collect::<Vec<u64>>());
    assert!(out.lock().unwrap().iter().all(|(_, v)| v.len() <= 1_000));
    assert_eq!(ssc.receiver_info()[0].max_queued, 1_000);
}

/// Counts submitted batches and the records they took.
#[derive(Default)]
struct Submitted(AtomicUsize, std::sync::atomic::AtomicU64);

impl StreamingListener for Submitted {
    fn on_batch_submitted(&self, info: &spate_streaming::BatchInfo) {
        self.1.fetch_add(info.records, Ordering::SeqCst);
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn processing_slower_than_the_input_holds_the_generator_and_the_receiver() {
    let (ssc, clock, _dir) = manual();
    assert!(ssc.set_max_pending_batches(0).is_err());
    ssc.set_max_pending_batches(2).unwrap();
    ssc.set_receiver_config(ReceiverConfig {
        queue_capacity: 1_000,
        ..ReceiverConfig::default()
    });
    let submitted = Arc::new(Submitted::default());
    ssc.add_streaming_listener(submitted.clone());
    let stream = ssc.receiver_stream(Counting {
        n: 10_000,
        chunk: 1,
        fail_after: None,
        next: 0,
        runs: Arc::default(),
    });
    // The output operation is stuck until the gate opens (bounded, so a bug cannot hang the test).
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let g = gate.clone();
    stream.foreach_rdd(move |_, _| {
        let (open, cv) = &*g;
        let guard = open.lock().unwrap();
        let _ = cv
            .wait_timeout_while(guard, Duration::from_secs(60), |o| !*o)
            .unwrap();
        Ok(())
    });
    let out = collect(&stream);
    ssc.start().unwrap();
    eventually("the receiver to fill the queue", || {
        ssc.receiver_info()[0].records == 1_000
    });
    // Ten batch intervals pass while the first batch cannot finish: only two batches are
    // generated (one stuck, one waiting), each taking what was queued then, and the receiver
    // waits once its queue holds 1,000 records again: at most 3,000 records in memory, not
    // 10,000. (The clock moves a batch at a time until two batches are out: a jump of ten
    // seconds at once could let the block generator's timer cut the queued records into a
    // block of the later time before the first batch cuts its own.)
    for n in 1..=2 {
        clock.advance(Duration::from_secs(1));
        eventually("the next batch", || submitted.0.load(Ordering::SeqCst) == n);
    }
    clock.advance(Duration::from_secs(8));
    let taken = || submitted.1.load(Ordering::SeqCst);
    eventually("two batches and a full queue", || {
        submitted.0.load(Ordering::SeqCst) == 2 && ssc.receiver_info()[0].records == taken() + 1_000
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(submitted.0.load(Ordering::SeqCst), 2);
    assert_eq!(ssc.pending_batches(), 2);
    assert_eq!(ssc.receiver_info()[0].records, taken() + 1_000);
    assert!((1_000..=2_000).contains(&taken()), "taken: {}", taken());
    assert!(ssc.receiver_info()[0].max_queued <= 1_000);
    // Open the gate: the late batches run one after another, every record exactly once, in
    // order, and every batch time comes.
    {
        let (open, cv) = &*gate;
        *open.lock().unwrap() = true;
        cv.notify_all();
    }
    let mut t = 10u64;
    while ssc.receiver_info()[0].records < 10_000 || batch_sum(&out) < 10_000 {
        assert!(
            t < 100,
            "the receiver never finished: {:?}",
            ssc.receiver_info()
        );
        assert!(ssc.wait_for_batch(Time::from_ms(t * 1000), Duration::from_secs(30)));
        t += 1;
        clock.advance(Duration::from_secs(1));
    }
    ssc.stop(true);
    let out = out.lock().unwrap();
    let times: Vec<u64> = out.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        times,
        (1..=times.len() as u64)
            .map(|i| i * 1000)
            .collect::<Vec<_>>()
    );
    let all: Vec<u64> = out.iter().flat_map(|(_, v)| v.clone()).collect();
    assert_eq!(all, (0..10_000).collect::<Vec<u64>>());
    assert!(out.iter().all(|(_, v)| v.len() <= 1_000));
}

/// Stores `n` numbered 100-byte lines, one at a time.
struct Lines {
    n: usize,
    next: usize,
}

impl Receiver<String> for Lines {
    fn receive(&mut self, ctx: &ReceiverContext<String>) -> Result<(), ReceiverError> {
        while self.next < self.n && !ctx.is_stopped() {
            ctx.store(format!("{:0100}", self.next));
            self.next += 1;
        }
        Ok(())
    }
}

/// Lines that arrived, eviction counters, memory waits and failed batches.
type LinesRun = (
    Vec<String>,
    spate_streaming::storage::StorageStats,
    u64,
    usize,
);

fn lines_run(memory_fraction: f64) -> LinesRun {
    let mut config = spate_streaming::core::ContextConfig::new("local[2]");
    config.memory_bytes = 2 << 20;
    let ctx = spate_streaming::Context::with_config(config).unwrap();
    let ssc = StreamingContext::with_context(ctx, Duration::from_secs(1)).unwrap();
    let clock = ManualClock::new(0);
    ssc.set_clock(Clock::Manual(clock.clone())).unwrap();
    // Blocks of at most 15,000 records (half the queue bound): about 1.5 MB each, so two queued
    // blocks do not fit in the store together.
    ssc.set_receiver_config(ReceiverConfig {
        queue_capacity: 30_000,
        memory_fraction,
        ..ReceiverConfig::default()
    });
    let stream = ssc.receiver_stream_with_level(
        Lines {
            n: 100_000,
            next: 0,
        },
        spate_streaming::StorageLevel::MEMORY_ONLY_SER,
    );
    let out: Arc<Mutex<Vec<String>>> = Arc::default();
    let o = out.clone();
    stream.foreach_rdd(move |rdd, _| {
        o.lock().unwrap().extend(rdd.collect()?);
        Ok(())
    });
    ssc.start().unwrap();
    let mut t = 0;
    while ssc.receiver_info()[0].records < 100_000
        || (out.lock().unwrap().len() as u64) < ssc.receiver_info()[0].records
    {
        assert!(
            t < 200,
            "the receiver never finished: {:?}",
            ssc.receiver_info()
        );
        // Let the receiver run into whichever bound it meets first (until its count stops
        // moving).
        let settle = Instant::now() + Duration::from_secs(5);
        loop {
            let before = ssc.receiver_info()[0].records;
            std::thread::sleep(Duration::from_millis(10));
            if ssc.receiver_info()[0].records == before || Instant::now() > settle {
                break;
            }
        }
        t += 1;
        clock.advance(Duration::from_secs(1));
        assert!(ssc.wait_for_batch(Time::from_ms(t * 1000), Duration::from_secs(30)));
        if ssc.completed_batches().iter().any(|b| b.failure.is_some()) {
            break;
        }
    }
    let waits = ssc.receiver_info()[0].memory_waits;
    let stats = ssc.context().block_manager().stats();
    let failed = ssc
        .completed_batches()
        .iter()
        .filter(|b| b.failure.is_some())
        .count();
    ssc.stop(false);
    let out = out.lock().unwrap().clone();
    (out, stats, waits, failed)
}

#[test]
fn a_receiver_waits_for_memory_instead_of_pushing_its_own_blocks_out() {
    // 100,000 lines of 100 bytes (about 10 MB) through a 2 MiB memory store: the receiver waits
    // while its unprocessed lines would take over 80% of it, so only processed blocks are
    // evicted for room, no batch fails and every line arrives once, in order.
    let (out, stats, waits, failed) = lines_run(0.8);
    assert!(waits > 0, "the receiver never waited for memory");
    assert_eq!(failed, 0, "{stats:?}");
    assert_eq!(out.len(), 100_000);
    assert!(
        out.iter()
            .enumerate()
            .all(|(i, l)| *l == format!("{i:0100}"))
    );
}

fn batch_sum(out: &Arc<Mutex<Vec<(u64, Vec<u64>)>>>) -> u64 {
    out.lock()
        .unwrap()
        .iter()
        .map(|(_, v)| v.len() as u64)
        .sum()
}

#[test]
fn a_fatal_error_stops_the_receiver_and_the_stream_goes_on() {
    struct Broken;
    impl Receiver<u64> for Broken {
        fn receive(&mut self, ctx: &ReceiverContext<u64>) -> Result<(), ReceiverError> {
            ctx.store(1);
            ctx.skip("a bad record");
            Err(ReceiverError::Fatal("misconfigured".into()))
        }
    }
    let (ssc, clock, _dir) = manual();
    let out = collect(&ssc.receiver_stream(Broken));
    ssc.start().unwrap();
    eventually("the receiver to stop", || {
        let i = &ssc.receiver_info()[0];
        !i.active && i.last_error.is_some()
    });
    for t in 1..=2 {
        clock.advance(Duration::from_secs(1));
        assert!(ssc.wait_for_batch(Time::from_ms(t * 1000), Duration::from_secs(30)));
    }
    ssc.stop(false);
    assert_eq!(*out.lock().unwrap(), vec![(1000, vec![1]), (2000, vec![])]);
    let info = &ssc.receiver_info();
    assert!(info.is_empty() || info[0].skipped == 1);
}

#[test]
fn a_fast_receivers_blocks_are_cut_at_8_mib_and_keep_every_record_in_order() {
    let (ssc, clock, _dir) = manual();
    // 20,000 records of 1,000 bytes (1,002 encoded) in chunks of 250, all before the first batch
    // is cut: the manual clock never reaches a block interval, so only their size cuts blocks.
    struct Big;
    impl Receiver<String> for Big {
        fn receive(&mut self, ctx: &ReceiverContext<String>) -> Result<(), ReceiverError> {
            for chunk in 0..80 {
                let mut records = EncodedRecords::default();
                for i in chunk * 250..(chunk + 1) * 250 {
                    records.push(&format!("{i:>1000}"))?;
                }
                ctx.store_encoded(records);
            }
            Ok(())
        }
    }
    let stream = ssc.receiver_stream_with_level(Big, spate_core::StorageLevel::MEMORY_ONLY_SER);
    let sizes: Arc<Mutex<Vec<usize>>> = Arc::default();
    let s = sizes.clone();
    stream.foreach_rdd(move |rdd, _| {
        s.lock()
            .unwrap()
            .extend(rdd.glom().map(|p| p.len()).collect()?);
        Ok(())
    });
    let out = collect(&stream);
    ssc.start().unwrap();
    eventually("the records stored", || {
        ssc.receiver_info()[0].records == 20_000
    });
    clock.advance(Duration::from_secs(1));
    assert!(ssc.wait_for_batch(Time::from_ms(1000), Duration::from_secs(30)));
    ssc.stop(true);
    let expected: Vec<String> = (0..20_000).map(|i| format!("{i:>1000}")).collect();
    assert_eq!(records(&out), expected);
    // One block per partition; none past 8 MiB of records (8,371 of these), so 20 MB took at
    // least three.
    let sizes = sizes.lock().unwrap().clone();
    assert_eq!(sizes.iter().sum::<usize>(), 20_000);
    assert!(sizes.len() >= 3, "{sizes:?}");
    assert!(
        sizes.iter().all(|&n| n * 1_002 <= 8 << 20),
        "a block past 8 MiB: {sizes:?}"
    );
}
