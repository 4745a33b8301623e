//! Windowed word count over a queue stream: every batch, the word counts of the last 3 batches.
//!
//! `cargo run --release -p spate-examples --bin windowed_word_count -- --batches 6 --batch-ms 500`
//!
//! Uses the incremental window (`reduce_by_key_and_window_inv`: add the batch that enters,
//! subtract the one that leaves), which keeps state and so checkpoints under a temporary directory.

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
    let counts = lines
        .flat_map(|l: String| l.split(' ').map(String::from).collect::<Vec<_>>())
        .map(|w| (w, 1i64))
        .reduce_by_key_and_window_inv_n(
            |a, b| a + b,
            |a, b| a - b,
            batch * 3,
            batch,
            2,
            Some(std::sync::Arc::new(|kv: &(String, i64)| kv.1 > 0)),
        );
    counts.transform(|rdd, _| rdd.sort_by_key(true)).print();

    ssc.start()?;
    ssc.await_termination_timeout(batch * (batches as u32 + 1));
    ssc.stop(true);
    Ok(())
}
