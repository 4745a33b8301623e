//! NetworkWordCount: counts the words of text lines read from a TCP socket, every second.
//!
//! Feed it with the bundled line generator (`cargo xtask loadgen --port 9999 --rate 1000`) or
//! with `nc -lk 9999` (type lines), then run:
//! `cargo run --release -p spate-examples --bin network_word_count -- localhost 9999`
//!
//! Options: `--master local[2]` (default), `--batch-ms 1000`, `--batches N` (stop after N batches;
//! default: run until interrupted). A refused or lost connection is retried with backoff.

use anyhow::{Context as _, bail};
use spate_examples::arg;
use spate_receivers::Sources;
use spate_streaming::{StorageLevel, StreamingContext};
use std::time::Duration;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let positional: Vec<String> = std::env::args()
        .skip(1)
        .scan(false, |skip, a| {
            let keep = !*skip && !a.starts_with("--");
            *skip = a.starts_with("--");
            Some(keep.then_some(a))
        })
        .flatten()
        .collect();
    let [host, port] = positional.as_slice() else {
        bail!("usage: network_word_count HOST PORT [--master M] [--batch-ms MS] [--batches N]");
    };
    let port: u16 = port
        .parse()
        .with_context(|| format!("invalid port {port:?}"))?;
    let master: String = arg("--master", "local[2]".to_string())?;
    let batch = Duration::from_millis(arg("--batch-ms", 1000)?);
    let batches: Option<u32> = arg("--batches", 0).map(|n| (n > 0).then_some(n))?;

    let ssc = StreamingContext::new(&master, batch)?;
    let lines = ssc.socket_text_stream(host, port, StorageLevel::MEMORY_ONLY_SER_2);
    let words = lines.flat_map(|line: String| {
        line.split(' ')
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect::<Vec<_>>()
    });
    let counts = words.map(|w| (w, 1u64)).reduce_by_key(|a, b| a + b);
    counts.print();

    ssc.start()?;
    match batches {
        Some(n) => {
            ssc.await_termination_timeout(batch * n + batch / 2);
            ssc.stop(true);
        }
        None => ssc.await_termination(),
    }
    Ok(())
}
