//! Windowed word count over a queue of demo text: the word counts of the last three batches,
//! every batch, kept incrementally (add the batch that enters, subtract the one that leaves).

use spate_streaming::{StreamingContext, streaming_job};
use std::sync::Arc;
use std::time::Duration;

/// The windowed word count; `--conf batches=N` sets how many demo batches are queued (6).
#[streaming_job(
    batch = "500ms",
    checkpoint = "target/checkpoints/windowed-word-count",
    name = "windowed-word-count"
)]
pub fn windowed_word_count(ssc: &StreamingContext) {
    let batches = ssc.conf_parsed("batches", 6);
    let lines = ssc.queue_stream(crate::demo_queue(ssc.context(), batches), true);
    let words = lines.flat_map(|l: String| spate_streaming::text::split_owned(l, ' '));
    let pairs = words.map(|w: String| (w, 1i64));
    let counts = pairs.reduce_by_key_and_window_inv_n(
        |a, b| a + b,
        |a, b| a - b,
        Duration::from_millis(1500),
        Duration::from_millis(500),
        2,
        Some(Arc::new(|kv: &(String, i64)| kv.1 > 0)),
    );
    counts.transform(|rdd, _| rdd.sort_by_key(true)).print();
}
