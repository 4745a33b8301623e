//! Stateful word count over a queue stream: the running total of every word since the start.
//!
//! `cargo run --release -p spate-examples --bin stateful_word_count -- --batches 6 --batch-ms 500`
//!
//! `update_state_by_key` carries each word's count from batch to batch; the state is checkpointed
//! under a temporary directory.

use spate_examples::{arg, demo_queue};
use spate_streaming::StreamingContext;
use std::time::Duration;

fn main() -> anyhow::Result<()> {
    let batches: usize = arg("--batches", 6)?;
    let batch = Duration::from_millis(arg("--batch-ms", 500)?);
    let master: String = arg("--master", "local[2]".to_string())?;
    let ssc = StreamingContext::new(&master, batch)?;
    let checkpoints = tempfile::tempdir()?;
    ssc.checkpoint(checkpoints.path())?;

    let lines = ssc.queue_stream(demo_queue(ssc.context(), batches), true);
    let totals = lines
        .flat_map(|l: String| l.split(' ').map(String::from).collect::<Vec<_>>())
        .map(|w| (w, 1u64))
        .update_state_by_key(|new: &[u64], total: Option<u64>| {
            Some(total.unwrap_or(0) + new.iter().sum::<u64>())
        });
    totals
        .transform(|rdd, _| rdd.map(|(w, n)| (n, w)).sort_by_key(false))
        .print();

    ssc.start()?;
    ssc.await_termination_timeout(batch * (batches as u32 + 1));
    ssc.stop(true);
    Ok(())
}
