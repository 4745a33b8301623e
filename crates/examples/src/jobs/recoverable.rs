//! Jobs that survive a driver crash: run them with `--checkpoint DIR`, kill them (even with
//! `kill -9`) and start them again with the same directory, and their saved outputs are those of
//! a run that never stopped. The driver-recovery tests run them as child processes.
//!
//! Both save, under `--conf out=DIR`, one directory per batch and output
//! (`DIR/<output>-<batch time in ms>.txt/part-*`), which a rerun of a batch replaces whole.

use spate_receivers::{KafkaSources, SocketConfig, Sources, StartOffsets};
use spate_streaming::{ReceiverConfig, StorageLevel, StreamingContext, streaming_job};
use std::sync::Arc;
use std::time::Duration;

fn out_dir(ssc: &StreamingContext) -> String {
    ssc.conf("out")
        .unwrap_or_else(|| "target/recoverable-out".into())
}

/// Word counts of a direct Kafka stream: per batch (`reduce_by_key`), over a sliding window of
/// three batches (kept with an inverse function) and running totals (`update_state_by_key`),
/// and a per-batch `group_by_key` of the records by line (a shuffle where every record crosses). Arguments: `BROKERS TOPIC`;
/// it reads the topic from its earliest offsets, at most `--conf max-per-partition=N` records
/// (20) per partition per batch, so the batches of a topic written beforehand do not depend on
/// timing.
#[streaming_job(
    batch = "500ms",
    checkpoint = "target/checkpoints/recoverable-kafka",
    name = "recoverable-kafka"
)]
pub fn recoverable_kafka(ssc: &StreamingContext) {
    let args = ssc.args();
    let brokers = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.get(1).cloned().unwrap_or_else(|| "lines".into());
    let max = ssc.conf_parsed("max-per-partition", 20);
    let out = out_dir(ssc);
    let records = ssc.direct_kafka_stream(
        &brokers,
        &[topic.as_str()],
        StartOffsets::Earliest,
        Some(max),
    );
    let words = records.flat_map(|r: spate_receivers::KafkaRecord| {
        r.value_lossy()
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    });
    let pairs = words.map(|w: String| (w, 1i64));
    let windowed = pairs.reduce_by_key_and_window_inv_n(
        |a, b| a + b,
        |a, b| a - b,
        Duration::from_millis(1500),
        Duration::from_millis(500),
        2,
        Some(Arc::new(|kv: &(String, i64)| kv.1 > 0)),
    );
    windowed.save_as_text_files(format!("{out}/window"), "txt");
    // Each batch's own counts: a shuffle run by the executors of a cluster (both sides).
    let counts = pairs.reduce_by_key(|a, b| a + b);
    counts.save_as_text_files(format!("{out}/counts"), "txt");
    // And a shuffle with no map-side combining (every record crosses): each word's partitions
    // of origin, as "word:count".
    let records = records.map(|r: spate_receivers::KafkaRecord| (r.value_lossy(), r.partition));
    let groups = records.group_by_key();
    let sizes = groups.map(|(line, parts): (String, Vec<i32>)| format!("{line}:{}", parts.len()));
    sizes.save_as_text_files(format!("{out}/groups"), "txt");
    let totals = pairs.update_state_by_key(|new: &[i64], total: Option<i64>| {
        Some(total.unwrap_or(0) + new.iter().sum::<i64>())
    });
    totals.save_as_text_files(format!("{out}/totals"), "txt");
}

/// A socket text stream whose source can replay (`SocketConfig::replay`), with the write-ahead
/// log on: across a driver crash no line is lost or counted twice. It saves each batch's input
/// lines, their count, its word counts, word counts over a sliding window of three batches
/// (kept with an inverse function) and running totals (`update_state_by_key`), so a test can
/// recompute every output from the saved input. Arguments: `HOST PORT`.
#[streaming_job(
    batch = "500ms",
    checkpoint = "target/checkpoints/recoverable-socket",
    name = "recoverable-socket"
)]
pub fn recoverable_socket(ssc: &StreamingContext) {
    let (host, port) = crate::host_port(&ssc.args());
    let out = out_dir(ssc);
    // `--conf wal=off` turns the write-ahead log off (on a cluster the receiver then runs on an
    // executor, resuming its source after the last block taken when it moves). The other
    // receiver settings are the command line's (`--conf spate.streaming.…`).
    ssc.set_receiver_config(ReceiverConfig {
        write_ahead_log: match ssc.conf_or("wal", "on").as_str() {
            "on" => true,
            "off" => false,
            other => {
                ssc.invalid_setting("wal", other, "use on or off");
                true
            }
        },
        ..ssc.receiver_config()
    });
    let lines = ssc.socket_text_stream_with(
        SocketConfig {
            replay: true,
            ..SocketConfig::new(&host, port)
        },
        // Replicated on a cluster (one copy on an executor, where the batch's tasks then run).
        StorageLevel::MEMORY_ONLY_SER_2,
    );
    // Each batch's input itself, so tests can recompute every other output from it.
    lines.save_as_text_files(format!("{out}/input"), "txt");
    lines
        .count()
        .save_as_text_files(format!("{out}/lines"), "txt");
    let words = lines.flat_map(spate_streaming::text::words);
    let pairs = words.map(|w: String| (w, 1u64));
    pairs
        .reduce_by_key(|a, b| a + b)
        .save_as_text_files(format!("{out}/counts"), "txt");
    // The last three batches, kept with an inverse function; words whose count fell to zero
    // are dropped.
    pairs
        .reduce_by_key_and_window_inv_n(
            |a, b| a + b,
            |a, b| a - b,
            Duration::from_millis(1500),
            Duration::from_millis(500),
            2,
            Some(Arc::new(|kv: &(String, u64)| kv.1 > 0)),
        )
        .save_as_text_files(format!("{out}/window"), "txt");
    let totals = pairs.update_state_by_key(|new: &[u64], total: Option<u64>| {
        Some(total.unwrap_or(0) + new.iter().sum::<u64>())
    });
    totals.save_as_text_files(format!("{out}/totals"), "txt");
}
