//! Kafka sources against a real broker (tansu, on loopback, one per test): the direct stream
//! reads every record exactly once in contiguous offset ranges, across a failed read, a failed
//! plan and a broker restart; the receiver stream gets every record across a broker restart and
//! resumes its group's saved positions; records deleted by retention before the direct stream
//! read them are counted and the rest of their range read; an absent broker or topic gives
//! clear errors, never a panic; and a rough throughput figure for both.
//!
//! Needs `tansu` on PATH (`cargo install tansu --locked --features dynostore,libsql`); with
//! `SPATE_SKIP_KAFKA=1` the tests are skipped instead.

use spate_receivers::testing::{Broker, tansu_available};
use spate_receivers::{
    DirectKafkaConfig, DirectKafkaStream, KafkaConnection, KafkaProducer, KafkaReceiverConfig,
    KafkaRecord, KafkaSources, OffsetRange, StartOffsets,
};
use spate_streaming::{Clock, DStream, ManualClock, StorageLevel, StreamingContext, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// The broker.

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits, polling, until `cond` holds; fails after `limit`.
fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming helpers.

fn manual_context() -> (StreamingContext, ManualClock) {
    let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).expect("a context");
    let clock = ManualClock::new(0);
    ssc.set_clock(Clock::Manual(clock.clone()))
        .expect("a clock");
    (ssc, clock)
}

/// Runs the next batch: advances the clock one batch and waits for the batch to complete.
fn step(ssc: &StreamingContext, clock: &ManualClock) -> Time {
    clock.advance(Duration::from_secs(1));
    let t = clock.time();
    assert!(
        ssc.wait_for_batch(t, Duration::from_secs(60)),
        "batch {t} did not complete within 60 s"
    );
    t
}

fn failure_of(ssc: &StreamingContext, t: Time) -> Option<String> {
    ssc.completed_batches()
        .into_iter()
        .find(|b| b.batch_time == t)
        .and_then(|b| b.failure)
}

/// What one batch of a direct stream delivered: its records and its offset ranges.
type Delivered = Arc<Mutex<Vec<(Time, Vec<KafkaRecord>, Vec<OffsetRange>)>>>;

fn record_batches(
    direct: &DirectKafkaStream,
    before: impl Fn(Time) + Send + Sync + 'static,
) -> Delivered {
    let out: Delivered = Arc::default();
    let (o, d) = (out.clone(), direct.clone());
    direct.foreach_rdd(move |rdd, t| {
        before(t);
        let records = rdd.collect()?;
        o.lock().unwrap().push((t, records, d.offset_ranges(t)));
        Ok(())
    });
    out
}

/// Every record of every batch of `stream`, in order.
fn collected(stream: &DStream<KafkaRecord>) -> Arc<Mutex<Vec<KafkaRecord>>> {
    let got: Arc<Mutex<Vec<KafkaRecord>>> = Arc::default();
    let g = got.clone();
    stream.foreach_rdd(move |rdd, _| {
        g.lock().unwrap().extend(rdd.collect()?);
        Ok(())
    });
    got
}

fn values(records: &[KafkaRecord]) -> Vec<String> {
    records.iter().map(|r| r.value_lossy()).collect()
}

fn quick_connection() -> KafkaConnection {
    KafkaConnection {
        request_timeout: Duration::from_millis(800),
        attempts: 2,
        retry_backoff: Duration::from_millis(50),
        ..KafkaConnection::default()
    }
}

/// Checks that the delivered batches hold each of `expected` once, that every partition's ranges
/// follow each other from 0 to its end, and that each batch's records are exactly its ranges.
fn check_exactly_once(
    delivered: &Delivered,
    expected: &BTreeSet<String>,
    ends: &BTreeMap<i32, i64>,
) {
    let delivered = delivered.lock().unwrap();
    let mut seen = Vec::new();
    let mut read: BTreeMap<i32, BTreeSet<i64>> = BTreeMap::new();
    let mut chain: BTreeMap<i32, i64> = BTreeMap::new();
    for (t, records, ranges) in delivered.iter() {
        seen.extend(values(records));
        let mut want: BTreeSet<(i32, i64)> = BTreeSet::new();
        for r in ranges {
            let from = chain.entry(r.partition).or_insert(0);
            assert_eq!(
                r.from, *from,
                "batch {t}: range {r:?} does not start where the last ended"
            );
            *from = r.until;
            want.extend((r.from..r.until).map(|o| (r.partition, o)));
        }
        let got: BTreeSet<(i32, i64)> = records.iter().map(|r| (r.partition, r.offset)).collect();
        assert_eq!(got.len(), records.len(), "batch {t} holds an offset twice");
        assert_eq!(
            got, want,
            "batch {t}: records do not match its offset ranges {ranges:?}"
        );
        for (p, o) in got {
            assert!(
                read.entry(p).or_default().insert(o),
                "offset {o} of partition {p} read twice"
            );
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "some record was delivered twice");
    assert_eq!(
        sorted.into_iter().collect::<BTreeSet<_>>(),
        *expected,
        "records lost or invented"
    );
    for (p, end) in ends {
        let offsets = read.get(p).cloned().unwrap_or_default();
        assert_eq!(
            offsets,
            (0..*end).collect(),
            "partition {p}: offsets not contiguous from 0 to {end}"
        );
    }
}

fn batch_of(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn direct_stream_reads_every_record_once_across_failures_and_a_broker_restart() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("orders", 3);
    let broker = Arc::new(Mutex::new(broker));
    let mut expected = BTreeSet::new();
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    let produce = |b: &Broker,
                   expected: &mut BTreeSet<String>,
                   ends: &mut BTreeMap<i32, i64>,
                   from: usize,
                   n: usize| {
        for p in 0..3 {
            let vals = batch_of(&format!("p{p}-"), from..from + n);
            b.produce("orders", p, &vals);
            expected.extend(vals);
            *ends.entry(p).or_default() += n as i64;
        }
    };
    produce(&broker.lock().unwrap(), &mut expected, &mut ends, 0, 100);

    let (ssc, clock) = manual_context();
    let direct = ssc.direct_kafka_stream_with(DirectKafkaConfig {
        start: StartOffsets::Earliest,
        max_records_per_partition: Some(60),
        connection: quick_connection(),
        ..DirectKafkaConfig::new(&broker.lock().unwrap().addr(), &["orders"])
    });
    // The output kills the broker before reading the batch at 4 s, so that its tasks fail.
    let kill_at = Time::from_ms(4000);
    // Weak: a failing test must still drop (and so kill) the broker.
    let b = Arc::downgrade(&broker);
    let delivered = record_batches(&direct, move |t| {
        if t == kill_at
            && let Some(b) = b.upgrade()
        {
            b.lock().unwrap().kill();
        }
    });
    ssc.start().unwrap();

    // 1 s and 2 s read 60 + 40 per partition (capped); 3 s has nothing new.
    for _ in 0..3 {
        let t = step(&ssc, &clock);
        assert_eq!(failure_of(&ssc, t), None);
    }
    let counts: Vec<usize> = delivered
        .lock()
        .unwrap()
        .iter()
        .map(|b| b.1.len())
        .collect();
    assert_eq!(counts, vec![180, 120, 0]);

    // 4 s: planned while the broker is up; its reads fail once the output killed it.
    produce(&broker.lock().unwrap(), &mut expected, &mut ends, 100, 10);
    let t = step(&ssc, &clock);
    let why = failure_of(&ssc, t).expect("the batch whose reads failed fails");
    assert!(
        why.contains("cannot reach the Kafka brokers") && why.contains("read again"),
        "{why}"
    );
    // 5 s: the broker is still down, so planning fails after bounded retries.
    let t = step(&ssc, &clock);
    let why = failure_of(&ssc, t).expect("a batch planned with the broker down fails");
    assert!(
        why.contains("planning the Kafka batch") && why.contains("cannot reach"),
        "{why}"
    );

    // The broker comes back on the same storage and port; more records arrive.
    broker.lock().unwrap().restart();
    produce(&broker.lock().unwrap(), &mut expected, &mut ends, 110, 50);
    let total = expected.len();
    for _ in 0..6 {
        let t = step(&ssc, &clock);
        assert_eq!(failure_of(&ssc, t), None);
        let got: usize = delivered.lock().unwrap().iter().map(|b| b.1.len()).sum();
        if got >= total {
            break;
        }
    }
    ssc.stop(false);
    check_exactly_once(&delivered, &expected, &ends);
    assert_eq!(
        direct.next_offsets().values().copied().collect::<Vec<_>>(),
        vec![160, 160, 160]
    );
}

#[test]
fn receiver_stream_gets_every_record_across_a_broker_restart_and_resumes_its_group() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    broker.create_topic("events", 2);
    let checkpoint = tempfile::tempdir().unwrap();
    let mut expected = BTreeSet::new();
    for p in 0..2 {
        let vals = batch_of(&format!("e{p}-"), 0..150);
        broker.produce("events", p, &vals);
        expected.extend(vals);
    }

    let config = KafkaReceiverConfig {
        start: StartOffsets::Earliest,
        connection: quick_connection(),
        ..KafkaReceiverConfig::new(&broker.addr(), "billing", &[("events", 2)])
    };
    let run = |config: KafkaReceiverConfig,
               body: &mut dyn FnMut(&StreamingContext, &ManualClock)| {
        let (ssc, clock) = manual_context();
        ssc.checkpoint(checkpoint.path()).unwrap();
        ssc.set_receiver_config(spate_streaming::ReceiverConfig {
            restart_backoff: Duration::from_millis(50),
            max_restart_backoff: Duration::from_millis(200),
            ..Default::default()
        });
        let stream = ssc.kafka_stream_with(config, StorageLevel::MEMORY_ONLY_SER);
        let out: Arc<Mutex<Vec<KafkaRecord>>> = Arc::default();
        let o = out.clone();
        stream.foreach_rdd(move |rdd, _| {
            o.lock().unwrap().extend(rdd.collect()?);
            Ok(())
        });
        ssc.start().unwrap();
        body(&ssc, &clock);
        ssc.stop(true);
        out.lock().unwrap().clone()
    };

    let records = |ssc: &StreamingContext| ssc.receiver_info()[0].records;
    let got = run(config.clone(), &mut |ssc, clock| {
        eventually("the first 300 records", Duration::from_secs(20), || {
            records(ssc) == 300
        });
        step(ssc, clock);
        broker.kill();
        eventually(
            "the receiver noticing the broker is gone",
            Duration::from_secs(20),
            || ssc.receiver_info()[0].restarts >= 1,
        );
        let info = ssc.receiver_info()[0].clone();
        let why = info.last_error.unwrap_or_default();
        assert!(why.contains("cannot reach the Kafka brokers"), "{why}");
        broker.restart();
        for p in 0..2 {
            let vals = batch_of(&format!("late{p}-"), 0..40);
            broker.produce("events", p, &vals);
            expected.extend(vals);
        }
        eventually(
            "the records produced after the restart",
            Duration::from_secs(20),
            || records(ssc) == 380,
        );
        step(ssc, clock);
    });
    let mut vals = values(&got);
    vals.sort();
    assert_eq!(vals.len(), 380);
    assert_eq!(
        vals.iter().cloned().collect::<BTreeSet<_>>(),
        expected,
        "records lost or repeated"
    );

    // The group's positions were saved under the checkpoint directory.
    let positions =
        std::fs::read_to_string(checkpoint.path().join("kafka/billing.offsets")).unwrap();
    assert!(
        positions.contains("events\t0\t190\n") && positions.contains("events\t1\t190\n"),
        "{positions}"
    );

    // A new program in the same group resumes there: it gets only the new records.
    for p in 0..2 {
        broker.produce("events", p, &batch_of(&format!("next{p}-"), 0..5));
    }
    let got = run(config, &mut |ssc, clock| {
        eventually("the 10 new records", Duration::from_secs(20), || {
            records(ssc) >= 10
        });
        step(ssc, clock);
    });
    let mut vals = values(&got);
    vals.sort();
    assert_eq!(
        vals,
        [
            "next0-0", "next0-1", "next0-2", "next0-3", "next0-4", "next1-0", "next1-1", "next1-2",
            "next1-3", "next1-4"
        ]
    );
}

#[test]
fn an_absent_broker_or_topic_gives_clear_errors_then_the_streams_recover() {
    if tansu_available().is_none() {
        return;
    }
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let (ssc, clock) = manual_context();
    ssc.set_receiver_config(spate_streaming::ReceiverConfig {
        restart_backoff: Duration::from_millis(50),
        max_restart_backoff: Duration::from_millis(200),
        ..Default::default()
    });
    let direct = ssc.direct_kafka_stream_with(DirectKafkaConfig {
        start: StartOffsets::Earliest,
        connection: quick_connection(),
        ..DirectKafkaConfig::new(&addr, &["late"])
    });
    let delivered = record_batches(&direct, |_| {});
    let received = ssc.kafka_stream_with(
        KafkaReceiverConfig {
            start: StartOffsets::Earliest,
            connection: quick_connection(),
            ..KafkaReceiverConfig::new(&addr, "g", &[("late", 1)])
        },
        StorageLevel::MEMORY_ONLY_SER,
    );
    let got = collected(&received);
    ssc.start().unwrap();

    // No broker: the batch fails after bounded retries; the receiver keeps being restarted.
    let started = Instant::now();
    let t = step(&ssc, &clock);
    let why = failure_of(&ssc, t).expect("a batch with no broker fails");
    assert!(
        why.contains(&format!("cannot reach the Kafka brokers {addr}")),
        "{why}"
    );
    assert!(why.contains("gave up after 2 attempts"), "{why}");
    eprintln!(
        "a batch with no broker failed after {:?}: {why}",
        started.elapsed()
    );
    eventually("receiver restarts", Duration::from_secs(20), || {
        ssc.receiver_info()[0].restarts >= 2
    });
    let info = ssc.receiver_info()[0].clone();
    assert!(
        info.active,
        "a receiver that cannot reach the broker keeps retrying"
    );
    assert!(
        info.last_error
            .as_deref()
            .unwrap_or("")
            .contains("cannot reach"),
        "{info:?}"
    );

    // A broker without the topic: the error says to create it.
    let broker = Broker::start_on(port).expect("tansu");
    let t = step(&ssc, &clock);
    let why = failure_of(&ssc, t).expect("a batch of a missing topic fails");
    assert!(
        why.contains("topic \"late\" does not exist") && why.contains("create it"),
        "{why}"
    );

    // Once the topic exists and has records, both streams deliver them.
    broker.create_topic("late", 1);
    let vals = batch_of("x", 0..25);
    broker.produce("late", 0, &vals);
    eventually(
        "the receiver to get the records",
        Duration::from_secs(20),
        || ssc.receiver_info()[0].records == 25,
    );
    let t = step(&ssc, &clock);
    assert_eq!(failure_of(&ssc, t), None);
    ssc.stop(false);
    let direct_vals: Vec<String> = delivered
        .lock()
        .unwrap()
        .iter()
        .flat_map(|b| values(&b.1))
        .collect();
    assert_eq!(direct_vals, vals);
    assert_eq!(values(&got.lock().unwrap()), vals);
}

/// Makes the topic `aging` (one partition, deleting what is past retention): offsets 0..10
/// dated 2001, far past the week of retention, and 10..20 dated now. Returns both values.
fn aging_topic(broker: &Broker) -> (Vec<String>, Vec<String>) {
    broker.create_topic_with("aging", 1, &[("cleanup.policy", "delete")]);
    let (old, new) = (batch_of("old", 0..10), batch_of("new", 0..10));
    broker.produce_at("aging", 0, &old, 978_307_200_000);
    broker.produce("aging", 0, &new);
    (old, new)
}

/// Restarts the broker, which deletes what retention expired as it starts, and waits until
/// `aging`'s old records are gone.
fn expire_aging(broker: &mut Broker) {
    broker.kill();
    broker.restart();
    eventually(
        "retention to delete the old records",
        Duration::from_secs(30),
        || broker.earliest_offset("aging", 0) == 10,
    );
}

#[test]
fn direct_stream_reads_what_retention_left_of_a_range_and_counts_what_it_deleted() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    let (old, new) = aging_topic(&broker);

    let (ssc, clock) = manual_context();
    let direct = ssc.direct_kafka_stream_with(DirectKafkaConfig {
        start: StartOffsets::Earliest,
        max_records_per_partition: Some(8),
        connection: quick_connection(),
        ..DirectKafkaConfig::new(&broker.addr(), &["aging"])
    });
    let delivered = record_batches(&direct, |_| {});
    let ui = ssc.start_ui("127.0.0.1:0").unwrap();
    ssc.start().unwrap();
    let t1 = step(&ssc, &clock);
    assert_eq!(failure_of(&ssc, t1), None);

    // The broker deletes the old records as it restarts (its maintenance runs then), before
    // the stream reads offsets 8 and 9.
    expire_aging(&mut broker);
    let t2 = step(&ssc, &clock);
    let t3 = step(&ssc, &clock);
    for t in [t2, t3] {
        assert_eq!(failure_of(&ssc, t), None, "batch {t}");
    }
    ssc.stop(false);

    let delivered = delivered.lock().unwrap();
    let spans: Vec<(i64, i64)> = delivered
        .iter()
        .flat_map(|b| b.2.iter().map(|r| (r.from, r.until)))
        .collect();
    assert_eq!(spans, vec![(0, 8), (8, 16), (16, 20)]);
    let offsets: Vec<Vec<i64>> = delivered
        .iter()
        .map(|b| b.1.iter().map(|r| r.offset).collect())
        .collect();
    // The batch of [8, 16) holds what the broker still had of it, 10 to 15.
    assert_eq!(
        offsets,
        vec![
            (0..8).collect::<Vec<i64>>(),
            (10..16).collect(),
            (16..20).collect()
        ]
    );
    let got: Vec<String> = delivered.iter().flat_map(|b| values(&b.1)).collect();
    assert_eq!(got, [&old[..8], &new[..]].concat());
    // The two deleted before they were read are counted (and logged), once, and shown by the
    // monitoring server.
    assert_eq!(direct.stats().records_lost, 2);
    let (_, metrics) = spate_streaming::testing::http_get(ui.addr(), "/metrics");
    let line = format!(
        "spate_input_records_lost_total{{stream=\"{}\",input=\"direct_kafka_stream\"}} 2",
        direct.id()
    );
    assert!(metrics.lines().any(|l| l == line), "{metrics}");
}

/// A consumer group whose saved position the broker no longer has (the program was down longer
/// than the topic's retention) goes on from the oldest record left, and counts and reports
/// what it never read.
#[test]
fn receiver_stream_counts_what_retention_deleted_before_it_resumed() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    let (_, new) = aging_topic(&broker);
    expire_aging(&mut broker);
    // The group had read up to offset 3 before it stopped.
    let positions = tempfile::tempdir().unwrap();
    std::fs::write(
        positions.path().join("late.offsets"),
        "# positions\naging\t0\t3\n",
    )
    .unwrap();

    let (ssc, clock) = manual_context();
    let stream = ssc.kafka_stream_with(
        KafkaReceiverConfig {
            positions_dir: Some(positions.path().to_path_buf()),
            connection: quick_connection(),
            ..KafkaReceiverConfig::new(&broker.addr(), "late", &[("aging", 1)])
        },
        StorageLevel::MEMORY_ONLY_SER,
    );
    let got = collected(&stream);
    let ui = ssc.start_ui("127.0.0.1:0").unwrap();
    ssc.start().unwrap();
    eventually("the records left", Duration::from_secs(20), || {
        ssc.receiver_info()[0].records >= 10
    });
    // Nothing more comes (each record once).
    std::thread::sleep(Duration::from_millis(500));
    let t = step(&ssc, &clock);
    assert_eq!(failure_of(&ssc, t), None);

    assert_eq!(values(&got.lock().unwrap()), new);
    let info = &ssc.receiver_info()[0];
    let error = info.last_error.clone().unwrap_or_default();
    // Kafka answers a deleted offset with an error (the position moves to the earliest one);
    // tansu with the records after it. Either way the same seven are reported.
    assert!(
        error.contains("the position 3 of aging-0 is outside what the broker has, [10, 20]")
            || error.contains("offsets [3, 10) of aging-0 were deleted by the broker"),
        "{error}"
    );
    assert!(error.contains("7 records skipped (7 in all"), "{error}");
    // Offsets 3 to 9 were deleted unread: counted once, shown by the monitoring server.
    let (_, metrics) = spate_streaming::testing::http_get(ui.addr(), "/metrics");
    let lost = spate_streaming::testing::metric_sample(
        &metrics,
        &format!(
            "spate_input_records_lost_total{{stream=\"{}\",input=\"receiver_stream\"}}",
            stream.id()
        ),
    );
    assert_eq!(lost, Some(7.0), "{metrics}");
    ssc.stop(false);
}

#[test]
fn direct_stream_batches_report_the_records_of_their_offset_ranges() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("counted", 2);
    let (ssc, clock) = manual_context();
    let direct = ssc.direct_kafka_stream_with(DirectKafkaConfig {
        start: StartOffsets::Earliest,
        max_records_per_partition: Some(5),
        connection: quick_connection(),
        ..DirectKafkaConfig::new(&broker.addr(), &["counted"])
    });
    let delivered = record_batches(&direct, |_| {});
    ssc.start().unwrap();
    // Records produced before each batch, by partition: 5 + 3, then 4, then none, then 7 of
    // which the cap of 5 leaves 2 for the batch after.
    let produced: [&[(i32, usize)]; 5] = [&[(0, 5), (1, 3)], &[(0, 4)], &[], &[(1, 7)], &[]];
    let mut total = 0;
    for (b, batch) in produced.iter().enumerate() {
        for &(p, n) in *batch {
            broker.produce("counted", p, &batch_of(&format!("b{b}p{p}-"), 0..n));
            total += n as u64;
        }
        let t = step(&ssc, &clock);
        assert_eq!(failure_of(&ssc, t), None, "batch {t}");
    }
    ssc.stop(false);

    let seen: Vec<(Time, u64)> = delivered
        .lock()
        .unwrap()
        .iter()
        .map(|(t, records, _)| (*t, records.len() as u64))
        .collect();
    let reported: Vec<(Time, u64)> = ssc
        .completed_batches()
        .iter()
        .map(|b| (b.batch_time, b.records))
        .collect();
    assert_eq!(reported, seen);
    assert_eq!(
        seen.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        vec![8, 4, 0, 5, 2]
    );
    assert_eq!(reported.iter().map(|(_, n)| n).sum::<u64>(), total);
    // All of it is the direct stream's.
    for b in ssc.completed_batches() {
        assert_eq!(b.input_records, vec![(direct.id(), b.records)], "{b:?}");
    }
}

#[test]
fn explicit_start_offsets_are_checked_and_used() {
    let Some(broker) = Broker::start() else {
        return;
    };
    // Topics can also be created through the Kafka protocol (again: a no-op).
    let producer = KafkaProducer::new(&broker.addr()).unwrap();
    producer.create_topic("log", 1).unwrap();
    producer.create_topic("log", 1).unwrap();
    assert_eq!(producer.partitions("log").unwrap(), vec![0]);
    broker.produce("log", 0, &batch_of("l", 0..10));
    let (ssc, clock) = manual_context();
    let tp = spate_receivers::TopicPartition::new("log", 0);
    let good = ssc.direct_kafka_stream(
        &broker.addr(),
        &["log"],
        StartOffsets::Explicit([(tp.clone(), 7)].into()),
        None,
    );
    let delivered = record_batches(&good, |_| {});
    ssc.start().unwrap();
    let t = step(&ssc, &clock);
    assert_eq!(failure_of(&ssc, t), None);
    ssc.stop(false);
    let got: Vec<String> = delivered
        .lock()
        .unwrap()
        .iter()
        .flat_map(|b| values(&b.1))
        .collect();
    assert_eq!(got, ["l7", "l8", "l9"]);
    assert_eq!(
        good.offset_ranges(t),
        vec![OffsetRange {
            topic: "log".into(),
            partition: 0,
            from: 7,
            until: 10
        }]
    );

    let (ssc, clock) = manual_context();
    let bad = ssc.direct_kafka_stream(
        &broker.addr(),
        &["log"],
        StartOffsets::Explicit([(tp, 11)].into()),
        None,
    );
    bad.foreach_rdd(|rdd, _| rdd.count().map(|_| ()).map_err(Into::into));
    ssc.start().unwrap();
    let t = step(&ssc, &clock);
    let why = failure_of(&ssc, t).expect("an offset past the end fails the batch");
    assert!(
        why.contains("start offset 11 of log-0 is outside") && why.contains("[0, 10]"),
        "{why}"
    );
    ssc.stop(false);
}

/// Not a benchmark: a rough figure printed for the record (`--nocapture` shows it).
#[test]
fn throughput_of_both_streams_is_reported() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let n_per_partition = 25_000;
    broker.create_topic("bulk", 2);
    let produced = Instant::now();
    for p in 0..2 {
        broker.produce(
            "bulk",
            p,
            &batch_of(&format!("{p}:some words of a line "), 0..n_per_partition),
        );
    }
    let total = 2 * n_per_partition as u64;
    eprintln!("produced {total} records in {:?}", produced.elapsed());

    // The direct stream alone: one batch reads everything, one task per partition.
    let (ssc, clock) = manual_context();
    let direct = ssc.direct_kafka_stream(&broker.addr(), &["bulk"], StartOffsets::Earliest, None);
    let counted = Arc::new(Mutex::new(0u64));
    let c = counted.clone();
    direct.foreach_rdd(move |rdd, _| {
        *c.lock().unwrap() += rdd.count()?;
        Ok(())
    });
    ssc.start().unwrap();
    let batch = Instant::now();
    step(&ssc, &clock);
    let direct_secs = batch.elapsed().as_secs_f64();
    ssc.stop(false);
    assert_eq!(*counted.lock().unwrap(), total);

    // The receiver alone: from start until every record is stored.
    let (ssc, _clock) = manual_context();
    let received = ssc.kafka_stream_with(
        KafkaReceiverConfig {
            start: StartOffsets::Earliest,
            ..KafkaReceiverConfig::new(&broker.addr(), "bench", &[("bulk", 2)])
        },
        StorageLevel::MEMORY_ONLY_SER,
    );
    received.foreach_rdd(|rdd, _| rdd.count().map(|_| ()).map_err(Into::into));
    let started = Instant::now();
    ssc.start().unwrap();
    eventually(
        "the receiver to get everything",
        Duration::from_secs(30),
        || ssc.receiver_info()[0].records == total,
    );
    let receiver_secs = started.elapsed().as_secs_f64();
    ssc.stop(false);
    eprintln!(
        "direct stream: {total} records in one batch of 2 tasks in {direct_secs:.2} s \
         ({:.0} records/s); receiver: {total} records in {receiver_secs:.2} s ({:.0} records/s)",
        total as f64 / direct_secs,
        total as f64 / receiver_secs
    )
}
