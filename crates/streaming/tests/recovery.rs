//! Driver recovery from metadata checkpoints, with a manual clock: the guide's table (a job that
//! counts with 10 s batches, stopped after the 30 s batch and restarted at 70 s, outputs 40, 50,
//! 60 and 70 at the recovered batches), state restored from RDD checkpoints, and refusals (a
//! different graph or batch, an RDD checkpoint missing a partition file).

use spate_streaming::testing::{Feeder, fed_receiver};
use spate_streaming::{Clock, Error, ManualClock, Result, StreamingContext, Time};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Out = Arc<Mutex<Vec<(u64, u64)>>>;

const BATCH: Duration = Duration::from_secs(10);

/// A replayable input: the batch at `t` seconds holds `t` records (10, 20, 30, …).
fn create(
    dir: &Path,
    clock: &ManualClock,
    counts: &Out,
    totals: Option<&Out>,
) -> Result<StreamingContext> {
    let ssc = StreamingContext::new("local[2]", BATCH)?;
    ssc.set_clock(Clock::Manual(clock.clone()))?;
    ssc.checkpoint(dir)?;
    let lines = ssc.custom_input_stream("lines", |ctx, t| {
        Ok(Some(
            ctx.parallelize(vec![1u64; (t.ms() / 1000) as usize], 2),
        ))
    });
    let c = counts.clone();
    lines.count().foreach_rdd(move |rdd, t| {
        c.lock().unwrap().push((t.ms() / 1000, rdd.collect()?[0]));
        Ok(())
    });
    if let Some(totals) = totals {
        let s = totals.clone();
        lines
            .map(|x| (0u8, x))
            .update_state_by_key(|vs: &[u64], total: Option<u64>| {
                Some(total.unwrap_or(0) + vs.iter().sum::<u64>())
            })
            .foreach_rdd(move |rdd, t| {
                s.lock().unwrap().push((t.ms() / 1000, rdd.collect()?[0].1));
                Ok(())
            });
    }
    Ok(ssc)
}

/// The first driver: the job (with the running totals) on a fresh checkpoint directory `dir`,
/// run to its 30 s batch and stopped there (as if it died); its counts and totals.
fn first_driver(dir: &Path) -> (Out, Out) {
    let (counts, totals): (Out, Out) = Default::default();
    let clock = ManualClock::new(0);
    let ssc = StreamingContext::get_or_create(dir, || create(dir, &clock, &counts, Some(&totals)))
        .unwrap();
    ssc.start().unwrap();
    run_until(&ssc, &clock, 30);
    ssc.stop(false);
    (counts, totals)
}

fn run_until(ssc: &StreamingContext, clock: &ManualClock, secs: u64) {
    clock.set_time(Time::from_ms(secs * 1000));
    assert!(
        ssc.wait_for_batch(Time::from_ms(secs * 1000), Duration::from_secs(60)),
        "batch {secs} s did not complete"
    );
}

#[test]
fn the_guide_table_outputs_40_50_60_70_after_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let (counts, totals) = first_driver(dir.path()); // it dies after the 30 s batch
    assert_eq!(*counts.lock().unwrap(), vec![(10, 10), (20, 20), (30, 30)]);
    assert_eq!(*totals.lock().unwrap(), vec![(10, 10), (20, 30), (30, 60)]);

    // Restarted at 70 s: the batches of 40..70 s run at once, from the checkpoint of 30 s.
    let (counts2, totals2): (Out, Out) = Default::default();
    let clock2 = ManualClock::new(70_000);
    let ssc2 = StreamingContext::get_or_create(dir.path(), || {
        create(dir.path(), &clock2, &counts2, Some(&totals2))
    })
    .unwrap();
    ssc2.start().unwrap();
    assert_eq!(
        ssc2.zero_time(),
        Some(Time::from_ms(0)),
        "the zero time is the original one"
    );
    assert!(ssc2.wait_for_batch(Time::from_ms(70_000), Duration::from_secs(60)));
    assert_eq!(
        *counts2.lock().unwrap(),
        vec![(40, 40), (50, 50), (60, 60), (70, 70)]
    );
    // The running total resumes from the state checkpointed at 30 s.
    assert_eq!(
        *totals2.lock().unwrap(),
        vec![(40, 100), (50, 150), (60, 210), (70, 280)]
    );
    // And then it goes on as usual.
    run_until(&ssc2, &clock2, 80);
    ssc2.stop(true);
    assert_eq!(counts2.lock().unwrap().last(), Some(&(80, 80)));
    assert_eq!(totals2.lock().unwrap().last(), Some(&(80, 360)));
}

#[test]
fn a_checkpoint_of_a_different_graph_is_refused_naming_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let counts: Out = Default::default();
    let clock = ManualClock::new(0);
    let ssc =
        StreamingContext::get_or_create(dir.path(), || create(dir.path(), &clock, &counts, None))
            .unwrap();
    ssc.start().unwrap();
    run_until(&ssc, &clock, 20);
    ssc.stop(false);
    // The restarted code adds a stateful branch: refused, naming what changed.
    let totals: Out = Default::default();
    let err = StreamingContext::get_or_create(dir.path(), || {
        create(
            dir.path(),
            &ManualClock::new(30_000),
            &counts,
            Some(&totals),
        )
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("cannot resume from the checkpoint"), "{err}");
    assert!(
        err.contains("was `foreach_rdd`")
            || err.contains("was added")
            || err.contains("is now `map`"),
        "{err}"
    );
    // A different batch duration is refused too.
    let err = StreamingContext::get_or_create(dir.path(), || {
        let ssc = StreamingContext::new("local[2]", Duration::from_secs(5))?;
        ssc.checkpoint(dir.path())?;
        Ok(ssc)
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("10000 ms batches, this context has 5000 ms"),
        "{err}"
    );
}

#[test]
fn an_empty_directory_creates_a_fresh_context() {
    let dir = tempfile::tempdir().unwrap();
    let counts: Out = Default::default();
    let clock = ManualClock::new(5_000);
    let ssc =
        StreamingContext::get_or_create(dir.path(), || create(dir.path(), &clock, &counts, None))
            .unwrap();
    ssc.start().unwrap();
    assert_eq!(ssc.zero_time(), Some(Time::from_ms(0)));
    run_until(&ssc, &clock, 10);
    ssc.stop(true);
    assert_eq!(*counts.lock().unwrap(), vec![(10, 10)]);
    assert!(dir.path().join("metadata/checkpoint-10000").exists());
}

/// The last partition file of each RDD checkpoint under `dir`, moved aside (same directory, a
/// name that is not a partition's); returns (where it was, where it is).
fn move_last_partition_files_aside(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut moved = Vec::new();
    for rdd in std::fs::read_dir(dir.join("rdds")).unwrap() {
        let rdd = rdd.unwrap().path();
        let mut parts: Vec<PathBuf> = std::fs::read_dir(&rdd)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("part-")
            })
            .collect();
        parts.sort();
        let last = parts
            .pop()
            .expect("an RDD checkpoint holds partition files");
        let aside = rdd.join("moved-aside");
        std::fs::rename(&last, &aside).unwrap();
        moved.push((last, aside));
    }
    moved
}

#[test]
fn a_state_checkpoint_missing_a_partition_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_, totals) = first_driver(dir.path());
    assert_eq!(totals.lock().unwrap().last(), Some(&(30, 60)));

    // Without its last partition file the state would come back a partition short (with the
    // keys of that partition gone): refused, naming the file and what to do.
    let moved = move_last_partition_files_aside(dir.path());
    assert!(!moved.is_empty(), "the state was checkpointed");
    let (counts2, totals2): (Out, Out) = Default::default();
    let clock2 = ManualClock::new(40_000);
    let rebuild = || {
        StreamingContext::get_or_create(dir.path(), || {
            create(dir.path(), &clock2, &counts2, Some(&totals2))
        })
    };
    match rebuild() {
        Err(Error::CheckpointRdd {
            operator,
            source: spate_core::Error::MissingPartition { missing, .. },
            ..
        }) => {
            assert!(operator.contains("update_state_by_key"), "{operator}");
            assert!(moved.iter().any(|(was, _)| *was == missing), "{missing:?}");
        }
        Err(other) => panic!("expected a missing partition, got {other}"),
        Ok(_) => panic!("resumed from a checkpoint missing a partition file"),
    }

    // Put back, the same checkpoint resumes, with the state whole.
    for (was, aside) in &moved {
        std::fs::rename(aside, was).unwrap();
    }
    let ssc2 = rebuild().unwrap();
    ssc2.start().unwrap();
    run_until(&ssc2, &clock2, 40);
    ssc2.stop(true);
    assert_eq!(*totals2.lock().unwrap(), vec![(40, 100)]);
}

struct FedJob {
    ssc: StreamingContext,
    feeder: Feeder<u64>,
}

impl FedJob {
    fn send(&self, n: usize) {
        assert!(
            self.feeder.send(vec![1; n]),
            "the receiver stored the records"
        );
    }
}

/// A job counting what a fed receiver gets per batch and in total, with the write-ahead log on or off.
fn fed_job(dir: &Path, clock: &ManualClock, wal: bool, counts: &Out, totals: &Out) -> FedJob {
    let (receiver, feeder) = fed_receiver("fed");
    let ssc = StreamingContext::get_or_create(dir, || {
        let ssc = StreamingContext::new("local[2]", BATCH)?;
        ssc.set_clock(Clock::Manual(clock.clone()))?;
        ssc.checkpoint(dir)?;
        ssc.set_receiver_config(spate_streaming::ReceiverConfig {
            write_ahead_log: wal,
            ..Default::default()
        });
        let records = ssc.receiver_stream(receiver);
        let c = counts.clone();
        records.count().foreach_rdd(move |rdd, t| {
            c.lock().unwrap().push((t.ms() / 1000, rdd.collect()?[0]));
            Ok(())
        });
        let s = totals.clone();
        records
            .map(|x| (0u8, x))
            .update_state_by_key(|vs: &[u64], total: Option<u64>| {
                Some(total.unwrap_or(0) + vs.iter().sum::<u64>())
            })
            .foreach_rdd(move |rdd, t| {
                let v = rdd.collect()?;
                s.lock()
                    .unwrap()
                    .push((t.ms() / 1000, v.first().map_or(0, |p| p.1)));
                Ok(())
            });
        Ok(ssc)
    })
    .unwrap();
    FedJob { ssc, feeder }
}

/// Received records acknowledged to the source but not yet in a completed batch when the driver
/// dies: with the write-ahead log the recovered driver processes them; without it they are lost
/// (which is why the log exists).
fn received_records_across_a_driver_restart(wal: bool) -> (Vec<(u64, u64)>, Vec<(u64, u64)>) {
    let dir = tempfile::tempdir().unwrap();
    let (counts, totals): (Out, Out) = Default::default();
    let clock = ManualClock::new(0);
    let job = fed_job(dir.path(), &clock, wal, &counts, &totals);
    job.ssc.start().unwrap();
    job.send(10);
    run_until(&job.ssc, &clock, 10);
    job.send(20);
    run_until(&job.ssc, &clock, 20);
    job.send(7); // acknowledged, in no batch yet
    job.ssc.stop(false); // the driver dies
    assert_eq!(*counts.lock().unwrap(), vec![(10, 10), (20, 20)]);
    // The checkpoint lists the block ids of the batch of 20 s (`[20000,[seq]]`).
    let meta = std::fs::read_to_string(dir.path().join("metadata/checkpoint-20000")).unwrap();
    assert!(meta.contains("[20000,["), "{meta}");

    // Restarted at 40 s: batches 30 and 40 are re-run at once, then 50 as usual.
    let clock = ManualClock::new(40_000);
    let job = fed_job(dir.path(), &clock, wal, &counts, &totals);
    job.ssc.start().unwrap();
    assert!(
        job.ssc
            .wait_for_batch(Time::from_ms(40_000), Duration::from_secs(60))
    );
    job.send(5);
    run_until(&job.ssc, &clock, 50);
    job.ssc.stop(true);
    let c = counts.lock().unwrap().clone();
    let t = totals.lock().unwrap().clone();
    (c, t)
}

#[test]
fn the_write_ahead_log_keeps_received_records_across_a_driver_restart() {
    let (counts, totals) = received_records_across_a_driver_restart(true);
    assert_eq!(counts, vec![(10, 10), (20, 20), (30, 7), (40, 0), (50, 5)]);
    assert_eq!(
        totals,
        vec![(10, 10), (20, 30), (30, 37), (40, 37), (50, 42)]
    );
}

#[test]
fn without_the_write_ahead_log_a_driver_restart_loses_the_unprocessed_records() {
    let (counts, totals) = received_records_across_a_driver_restart(false);
    assert_eq!(counts, vec![(10, 10), (20, 20), (30, 0), (40, 0), (50, 5)]);
    assert_eq!(
        totals,
        vec![(10, 10), (20, 30), (30, 30), (40, 30), (50, 35)]
    );
}

#[test]
fn the_write_ahead_log_needs_a_checkpoint_directory() {
    let ssc = StreamingContext::new("local[2]", BATCH).unwrap();
    ssc.set_receiver_config(spate_streaming::ReceiverConfig {
        write_ahead_log: true,
        ..Default::default()
    });
    let (receiver, _feeder) = fed_receiver::<u64>("fed");
    ssc.receiver_stream(receiver).count().print();
    let err = ssc.start().unwrap_err().to_string();
    assert!(err.contains("needs a checkpoint directory"), "{err}");
    ssc.stop(false);
}

#[test]
fn a_batch_waited_for_has_its_metadata_checkpoint_written() {
    // Checkpoints are written by a thread of their own; waiting for a batch waits for its
    // checkpoint too, so a driver killed after that resumes from it.
    let dir = tempfile::tempdir().unwrap();
    let (counts, totals): (Out, Out) = Default::default();
    let clock = ManualClock::new(0);
    let ssc = create(dir.path(), &clock, &counts, Some(&totals)).unwrap();
    ssc.start().unwrap();
    for secs in (10..=60).step_by(10) {
        run_until(&ssc, &clock, secs);
        let meta = dir
            .path()
            .join(format!("metadata/checkpoint-{}", secs * 1000));
        assert!(
            meta.exists(),
            "no checkpoint of {secs} s once its batch was waited for"
        );
    }
    ssc.stop(false);
    assert_eq!(counts.lock().unwrap().len(), 6);
}
