//! Driver recovery from metadata checkpoints, with a manual clock: the guide's table (a job that
//! counts with 10 s batches, stopped after the 30 s batch and restarted at 70 s, outputs 40, 50,
//! 60 and 70 at the recovered batches), state restored from RDD checkpoints, and refusals.

use spate_streaming::{Clock, ManualClock, Result, StreamingContext, Time};
use std::path::Path;
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
    let (counts, totals): (Out, Out) = Default::default();
    let clock = ManualClock::new(0);
    let ssc = StreamingContext::get_or_create(dir.path(), || {
        create(dir.path(), &clock, &counts, Some(&totals))
    })
    .unwrap();
    ssc.start().unwrap();
    run_until(&ssc, &clock, 30);
    ssc.stop(false); // the driver dies after the 30 s batch
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
