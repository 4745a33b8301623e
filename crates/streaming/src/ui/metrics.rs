//! `/metrics`: the monitor's counters and the block manager's, in Prometheus text format 0.0.4.

use super::{BUCKETS, Histogram, Monitor};
use std::fmt::Write as _;

/// What `/metrics` reads from the running context at each scrape.
pub(super) struct Live {
    pub(super) storage: spate_storage::StorageStats,
    pub(super) receivers: Vec<crate::ReceiverInfo>,
    pub(super) pending_batches: usize,
    /// The counters input streams report.
    pub(super) inputs: Vec<crate::counters::InputSnapshot>,
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    // A HELP line escapes only backslashes and line breaks (a stream's help text is the
    // author's, and a line break would end the line).
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn scalar(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    header(out, name, "histogram", help);
    for (b, c) in BUCKETS.iter().zip(h.counts) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {c}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum {}", h.sum);
    let _ = writeln!(out, "{name}_count {}", h.count);
}

/// A counter with one sample per receiver, labelled by stream and receiver name.
fn per_receiver<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (usize, &'a str, u64)>,
) {
    header(out, name, "counter", help);
    for (stream, receiver, value) in samples {
        let _ = writeln!(
            out,
            "{name}{{stream=\"{stream}\",receiver=\"{}\"}} {value}",
            escape(receiver)
        );
    }
}

/// The counters input streams report, one family per counter name (`spate_input_<name>_total`),
/// each with one sample per stream that has it. A family's samples must be together, and its
/// HELP line once: the first stream to name a counter describes it.
fn input_counters(out: &mut String, inputs: &[crate::counters::InputSnapshot]) {
    let mut families: Vec<(&str, &str, Vec<(usize, &str, u64)>)> = Vec::new();
    for input in inputs {
        for (name, help, value) in &input.counters {
            // `start()` refused such names; one made after it is not rendered, since it would
            // make the whole scrape unreadable.
            if crate::counters::check_name(name).is_err() {
                continue;
            }
            let sample = (input.stream, input.name.as_str(), *value);
            match families.iter_mut().find(|f| f.0 == *name) {
                Some(f) => f.2.push(sample),
                None => families.push((name, help, vec![sample])),
            }
        }
    }
    families.sort_by_key(|f| f.0);
    for (name, help, samples) in families {
        let metric = format!("spate_input_{name}_total");
        header(out, &metric, "counter", help);
        for (stream, input, value) in samples {
            let _ = writeln!(
                out,
                "{metric}{{stream=\"{stream}\",input=\"{}\"}} {value}",
                escape(input)
            );
        }
    }
}

/// Renders every metric (with the cluster's, when the job runs on one).
pub(super) fn render(
    monitor: &Monitor,
    live: &Live,
    cluster: Option<&spate_core::cluster::Cluster>,
) -> String {
    let mut out = String::new();
    let receivers = monitor.receivers();
    let st = monitor.state.lock();
    scalar(
        &mut out,
        "spate_batch_interval_seconds",
        "gauge",
        "The batch interval.",
        monitor.batch_ms as f64 / 1000.0,
    );
    scalar(
        &mut out,
        "spate_batches_completed_total",
        "counter",
        "Batches whose every output operation succeeded.",
        st.completed,
    );
    scalar(
        &mut out,
        "spate_batches_failed_total",
        "counter",
        "Batches with a failed output operation.",
        st.failed,
    );
    header(
        &mut out,
        "spate_input_records_total",
        "counter",
        "Records each input stream contributed to completed batches.",
    );
    for (stream, n) in &st.records {
        let _ = writeln!(out, "spate_input_records_total{{stream=\"{stream}\"}} {n}");
    }
    input_counters(&mut out, &live.inputs);
    per_receiver(
        &mut out,
        "spate_receiver_records_total",
        "Records of each receiver in completed batches.",
        receivers
            .iter()
            .map(|r| (r.stream, r.name.as_str(), r.records)),
    );
    per_receiver(
        &mut out,
        "spate_receiver_records_skipped_total",
        "Malformed records each receiver skipped (each also logged): lines that are not UTF-8 or too long, corrupt frames.",
        receivers
            .iter()
            .map(|r| (r.stream, r.name.as_str(), r.skipped)),
    );
    per_receiver(
        &mut out,
        "spate_receiver_restarts_total",
        "Restarts of each receiver.",
        receivers
            .iter()
            .map(|r| (r.stream, r.name.as_str(), r.restarts)),
    );
    scalar(
        &mut out,
        "spate_pending_batches",
        "gauge",
        "Batches generated and not yet completed (the job generator waits at its bound: back-pressure).",
        live.pending_batches,
    );
    per_receiver(
        &mut out,
        "spate_receiver_memory_waits_total",
        "Times a receiver waited because its unprocessed records reached the memory fraction.",
        live.receivers
            .iter()
            .map(|r| (r.stream, r.name.as_str(), r.memory_waits)),
    );
    histogram(
        &mut out,
        "spate_batch_total_delay_seconds",
        "From the batch time to the end of its processing.",
        &st.total,
    );
    histogram(
        &mut out,
        "spate_batch_scheduling_delay_seconds",
        "From the batch time to the start of its processing.",
        &st.scheduling,
    );
    histogram(
        &mut out,
        "spate_batch_processing_delay_seconds",
        "Time the batch's output operations took.",
        &st.processing,
    );
    drop(st);
    scalar(
        &mut out,
        "spate_blocks_memory_bytes",
        "gauge",
        "Bytes of blocks in memory.",
        live.storage.memory_bytes,
    );
    scalar(
        &mut out,
        "spate_blocks_memory_capacity_bytes",
        "gauge",
        "The memory budget of the block store.",
        live.storage.memory_capacity,
    );
    scalar(
        &mut out,
        "spate_blocks_memory",
        "gauge",
        "Blocks in memory.",
        live.storage.memory_blocks,
    );
    scalar(
        &mut out,
        "spate_blocks_disk_bytes",
        "gauge",
        "Bytes of blocks on disk.",
        live.storage.disk_bytes,
    );
    scalar(
        &mut out,
        "spate_blocks_disk",
        "gauge",
        "Blocks on disk.",
        live.storage.disk_blocks,
    );
    header(
        &mut out,
        "spate_block_evictions_total",
        "counter",
        "Blocks evicted from memory: dropped (memory-only levels; dropped_unread: never read since they were put, such as input no batch had processed) or spilled to disk.",
    );
    let _ = writeln!(
        out,
        "spate_block_evictions_total{{outcome=\"dropped\"}} {}",
        // Read one after the other while puts go on: the later count may be ahead.
        live.storage
            .evictions_dropped
            .saturating_sub(live.storage.evictions_dropped_unread)
    );
    let _ = writeln!(
        out,
        "spate_block_evictions_total{{outcome=\"dropped_unread\"}} {}",
        live.storage.evictions_dropped_unread
    );
    let _ = writeln!(
        out,
        "spate_block_evictions_total{{outcome=\"spilled\"}} {}",
        live.storage.evictions_spilled
    );
    scalar(
        &mut out,
        "spate_block_puts_not_stored_total",
        "counter",
        "Blocks that could not be stored anywhere.",
        live.storage.puts_not_stored,
    );
    if let Some(c) = cluster {
        scalar(
            &mut out,
            "spate_executors",
            "gauge",
            "Executors alive.",
            c.executors().len(),
        );
        scalar(
            &mut out,
            "spate_executors_lost_total",
            "counter",
            "Executors lost (connection closed or no heartbeat).",
            c.lost_executors(),
        );
        scalar(
            &mut out,
            "spate_executor_tasks_total",
            "counter",
            "Tasks computed by executors.",
            c.tasks_run(),
        );
        scalar(
            &mut out,
            "spate_executor_tasks_local_total",
            "counter",
            "Tasks sent first to the executor holding their input block.",
            c.local_tasks(),
        );
    }
    out
}
