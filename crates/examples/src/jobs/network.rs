//! NetworkWordCount: socket → flat_map → map → reduce_by_key → print.

use spate_receivers::Sources;
use spate_streaming::text::words;
use spate_streaming::{StorageLevel, StreamingContext, streaming_job};

/// Counts the words of the lines read from `HOST PORT` (the job's arguments; default
/// `localhost 9999`) in every one-second batch.
#[streaming_job(batch = "1s", name = "network-word-count")]
pub fn network_word_count(ssc: &StreamingContext) {
    let (host, port) = crate::host_port(&ssc.args());
    let lines = ssc.socket_text_stream(&host, port, StorageLevel::MEMORY_ONLY_SER_2);
    let words = lines.flat_map(words);
    let counts = words.map(|w: String| (w, 1u64)).reduce_by_key(|a, b| a + b);
    counts.print();
}
