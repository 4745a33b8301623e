//! The job `cargo xtask bench` runs on a cluster (its `failover` workload): NetworkWordCount over
//! a replaying socket source, with the received blocks' storage level chosen on the command line
//! so the cost of replication can be measured.

use spate_receivers::{SocketConfig, Sources};
use spate_streaming::text::{Word, words_as};
use spate_streaming::{StorageLevel, StreamingContext, streaming_job};

/// Word counts per batch of the lines read from `HOST PORT` (a source speaking the replay
/// protocol, such as `cargo xtask loadgen --replay`), counted and dropped (no output but the
/// batch statistics). `--conf level=NAME` sets the received blocks' storage level
/// (`MEMORY_ONLY_SER_2` by default).
#[streaming_job(batch = "1s", name = "bench-word-count")]
pub fn bench_word_count(ssc: &StreamingContext) {
    let (host, port) = crate::host_port(&ssc.args());
    let level = ssc.conf_or("level", "MEMORY_ONLY_SER_2");
    let level = StorageLevel::from_name(&level).unwrap_or_else(|| {
        ssc.invalid_setting(
            "level",
            &level,
            "not a storage level: use a name such as MEMORY_ONLY_SER or MEMORY_ONLY_SER_2",
        );
        StorageLevel::MEMORY_ONLY_SER_2
    });
    let lines = ssc.socket_text_stream_with(
        SocketConfig {
            replay: true,
            ..SocketConfig::new(&host, port)
        },
        level,
    );
    // Words as `text::Word`s, as the single-process workloads of the benchmark key them (a
    // word of up to 23 bytes needs no allocation of its own).
    let words = lines.flat_map(words_as::<Word>);
    let counts = words.map(|w: Word| (w, 1u64)).reduce_by_key(|a, b| a + b);
    counts.foreach_rdd(|rdd, _| {
        rdd.count()?;
        Ok(())
    });
}
