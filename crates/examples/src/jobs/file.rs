//! FileWordCount: the words of every new file in a directory (the job's argument).

use spate_receivers::Sources;
use spate_streaming::{StreamingContext, streaming_job};

/// Counts the words of the files that appear in the directory given as the job's argument
/// (default `/tmp/words`).
#[streaming_job(batch = "1s", name = "file-word-count")]
pub fn file_word_count(ssc: &StreamingContext) {
    let dir = ssc
        .args()
        .first()
        .cloned()
        .unwrap_or_else(|| "/tmp/words".into());
    let lines = ssc.text_file_stream(dir);
    let words = lines.flat_map(spate_streaming::text::words);
    let counts = words.map(|w: String| (w, 1u64)).reduce_by_key(|a, b| a + b);
    counts.print();
}
