//! Stateful word count over a queue of demo text: every word's running total since the start.

use spate_streaming::{StreamingContext, streaming_job};

/// The running word count; `--conf batches=N` sets how many demo batches are queued (6).
#[streaming_job(
    batch = "500ms",
    checkpoint = "target/checkpoints/stateful-word-count",
    name = "stateful-word-count"
)]
pub fn stateful_word_count(ssc: &StreamingContext) {
    let batches = ssc.conf_parsed("batches", 6);
    let lines = ssc.queue_stream(crate::demo_queue(ssc.context(), batches), true);
    let words = lines.flat_map(|l: String| spate_streaming::text::split_owned(l, ' '));
    let totals =
        words
            .map(|w: String| (w, 1u64))
            .update_state_by_key(|new: &[u64], total: Option<u64>| {
                Some(total.unwrap_or(0) + new.iter().sum::<u64>())
            });
    totals
        .transform(|rdd, _| rdd.map(|(w, n)| (n, w)).sort_by_key(false))
        .print();
}
