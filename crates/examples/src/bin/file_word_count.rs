//! FileWordCount: counts the words of every new text file that appears in a directory.
//!
//! `cargo run --release -p spate-examples --bin file_word_count -- /tmp/words`
//! then move files into it: `echo "a b a" > /tmp/.f && mv /tmp/.f /tmp/words/f1.txt`.
//! (Write elsewhere or under a hidden name, then rename: names starting with `.` or `_` are
//! ignored.) Options: `--batch-ms 1000`, `--batches N`.

use anyhow::bail;
use spate_examples::arg;
use spate_receivers::Sources;
use spate_streaming::StreamingContext;
use std::time::Duration;

fn main() -> anyhow::Result<()> {
    let Some(dir) = std::env::args().nth(1).filter(|a| !a.starts_with("--")) else {
        bail!("usage: file_word_count DIRECTORY [--batch-ms MS] [--batches N]");
    };
    let batch = Duration::from_millis(arg("--batch-ms", 1000)?);
    let batches: u32 = arg("--batches", 0)?;
    let ssc = StreamingContext::new("local[2]", batch)?;
    let counts = ssc
        .text_file_stream(dir)
        .flat_map(|l: String| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .map(|w| (w, 1u64))
        .reduce_by_key(|a, b| a + b);
    counts.print();
    ssc.start()?;
    if batches > 0 {
        ssc.await_termination_timeout(batch * batches + batch / 2);
        ssc.stop(true);
    } else {
        ssc.await_termination();
    }
    Ok(())
}
