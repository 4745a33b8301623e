//! The `overload` workload: word count offered twice the rate it can sustain, with Spate's
//! back-pressure (the default) and without it (as Spark 0.8 runs). Back-pressure is three bounds:
//! the job generator keeps at most two batches pending, a receiver queues at most
//! `queue_capacity` records no batch has taken, and a receiver waits while the memory store is
//! over `memory_fraction` of its budget. While it waits the socket is not read and TCP slows the
//! sender. Samples the process's resident memory and the memory store while it runs, and counts
//! received blocks the store dropped for room (lost data) and failed batches.

use crate::bench::{Collect, Workload, build, fmt_rate};
use crate::loadgen;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use spate_receivers::Sources;
use spate_streaming::{StorageLevel, StreamingContext};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One overload run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Overload {
    /// Whether back-pressure was on (the default).
    pub(crate) bounded: bool,
    pub(crate) offered_rate: u64,
    pub(crate) seconds: u64,
    /// What the load generator managed to send (TCP flow control slows it when the job does not
    /// read).
    pub(crate) sent_rate: f64,
    /// Lines in batches that completed during the run, per second.
    pub(crate) processed_rate: f64,
    pub(crate) lines_sent: u64,
    /// Lines in batches that completed without failing, after a graceful stop (with
    /// back-pressure only: the run without is stopped at once, its backlog dropped).
    pub(crate) lines_counted: Option<u64>,
    /// Resident memory samples: (seconds since the start, MiB).
    pub(crate) rss_mib: Vec<(f64, u64)>,
    /// Growth of resident memory over the second half of the run (least squares), MiB/s.
    pub(crate) growth_mib_per_s: f64,
    /// The largest total delay of a completed batch, ms.
    pub(crate) max_delay_ms: u64,
    /// The most bytes the block manager's memory store held (its budget: 512 MiB), MiB.
    pub(crate) max_stored_mib: u64,
    /// Blocks the memory store evicted and dropped for room, and puts it could not store.
    pub(crate) blocks_dropped: u64,
    /// Of those, blocks nobody had read yet (received input before its batch, a shuffle output
    /// before its reducers: lost data when a batch still needed them, see `failed_batches`), and
    /// puts not stored.
    pub(crate) blocks_dropped_unread: u64,
    /// Batches that failed.
    pub(crate) failed_batches: usize,
    /// Times the receiver waited for memory (see `ReceiverConfig::memory_fraction`).
    pub(crate) memory_waits: u64,
}

impl Overload {
    fn rss(&self, pick: impl Fn(&[(f64, u64)]) -> Option<u64>) -> u64 {
        pick(&self.rss_mib).unwrap_or(0)
    }
    pub(crate) fn first_rss(&self) -> u64 {
        self.rss(|s| s.first().map(|x| x.1))
    }
    pub(crate) fn last_rss(&self) -> u64 {
        self.rss(|s| s.last().map(|x| x.1))
    }
    pub(crate) fn max_rss(&self) -> u64 {
        self.rss(|s| s.iter().map(|x| x.1).max())
    }
}

/// The memory this process holds, in MiB (Linux), 0 when unknown: its resident memory less what
/// the allocator has handed back lazily (`LazyFree`: pages freed with `MADV_FREE`, which stay
/// resident until the kernel needs them or the allocator reuses them; the example binaries and
/// the benchmarks let mimalloc free memory that way, see `spate_examples::setup_allocator`).
fn rss_mib() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/smaps_rollup") else {
        return 0;
    };
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field("Rss:").saturating_sub(field("LazyFree:")) / 1024
}

/// The least-squares slope of `samples` (y per x).
pub(crate) fn slope(samples: &[(f64, f64)]) -> f64 {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return 0.0;
    }
    let mx = samples.iter().map(|s| s.0).sum::<f64>() / n;
    let my = samples.iter().map(|s| s.1).sum::<f64>() / n;
    let cov: f64 = samples.iter().map(|s| (s.0 - mx) * (s.1 - my)).sum();
    let var: f64 = samples.iter().map(|s| (s.0 - mx) * (s.0 - mx)).sum();
    if var == 0.0 { 0.0 } else { cov / var }
}

fn run_one(
    bounded: bool,
    rate: u64,
    seconds: u64,
    level: StorageLevel,
    buf: &Arc<loadgen::Buffer>,
) -> Result<Overload> {
    let (port, server) = loadgen::serve_one(rate, seconds, buf)?;
    let ssc = StreamingContext::new("local[2]", Duration::from_secs(1))?;
    let dir = std::env::temp_dir().join(format!("spate-overload-{}-{port}", std::process::id()));
    ssc.checkpoint(&dir)?;
    let mut config = spate_streaming::ReceiverConfig {
        block_interval: Duration::from_millis(250),
        ..Default::default()
    };
    if !bounded {
        ssc.set_max_pending_batches(usize::MAX)?;
        config.queue_capacity = usize::MAX;
        config.memory_fraction = 1.0;
    }
    ssc.set_receiver_config(config);
    let collect = Arc::new(Collect::default());
    ssc.add_streaming_listener(collect.clone());
    build(
        Workload::Wordcount,
        ssc.socket_text_stream("127.0.0.1", port, level),
        None,
    );
    let start = Instant::now();
    ssc.start()?;
    let mut rss = Vec::new();
    let mut max_stored = 0;
    let blocks = ssc.context().block_manager().clone();
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(500));
        rss.push((start.elapsed().as_secs_f64(), rss_mib()));
        max_stored = max_stored.max(blocks.stats().memory_bytes >> 20);
    }
    let memory_waits = ssc.receiver_info().first().map_or(0, |i| i.memory_waits);
    let processed: u64 = collect.records();
    let processed_rate = processed as f64 / start.elapsed().as_secs_f64();
    let (sent, send_secs) = server
        .join()
        .map_err(|_| anyhow::anyhow!("the load generator thread panicked"))??;
    let counted = if bounded {
        // Every line sent must reach a batch: wait (bounded) until the receiver has it all, then
        // stop gracefully, which processes every received block.
        let deadline = Instant::now() + Duration::from_secs(120);
        while ssc.receiver_info().first().map_or(0, |i| i.records) < sent
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        ssc.stop(true);
        Some(collect.records())
    } else {
        ssc.stop(false);
        None
    };
    let stats = blocks.stats();
    let _ = std::fs::remove_dir_all(&dir);
    let half: Vec<(f64, f64)> = rss[rss.len() / 2..]
        .iter()
        .map(|(t, m)| (*t, *m as f64))
        .collect();
    Ok(Overload {
        bounded,
        offered_rate: rate,
        seconds,
        sent_rate: sent as f64 / send_secs.max(1e-9),
        processed_rate,
        lines_sent: sent,
        lines_counted: counted,
        growth_mib_per_s: slope(&half),
        rss_mib: rss,
        max_delay_ms: collect.max_delay_ms(),
        max_stored_mib: max_stored,
        blocks_dropped: stats.evictions_dropped + stats.puts_not_stored,
        blocks_dropped_unread: stats.evictions_dropped_unread + stats.puts_not_stored,
        failed_batches: collect.failed(),
        memory_waits,
    })
}

/// Runs word count at `rate` (twice its sustainable rate) with and without back-pressure.
///
/// The full run lasts a minute, so that the growth figure (over the second half) is of the
/// steady state: resident memory rises for the first 5–10 s, until the memory store reaches its
/// budget, and then wanders by some 20–60 MiB either way, which a 15 s half of a 30 s run once
/// read as +5.5 MiB/s. A 120 s run (back-pressure on, offered 5M lines/s) reached 582 MiB by
/// 7 s (its maximum, 641 MiB, came during that rise) and held 561–627 MiB from then on: +0.1
/// MiB/s over its second half.
pub(crate) fn run(quick: bool, rate: u64, level: StorageLevel) -> Result<Vec<Overload>> {
    let seconds = if quick { 12 } else { 60 };
    let mut out = Vec::new();
    for bounded in [true, false] {
        eprint!(
            "bench: overload  {} lines/s for {seconds} s, back-pressure {} … ",
            fmt_rate(rate as f64),
            if bounded { "on" } else { "off" }
        );
        let r = run_in_child(bounded, rate, seconds, level)?;
        eprintln!("{}", describe(&r));
        out.push(r);
    }
    Ok(out)
}

/// One overload run in a new process of this binary (`xtask overload-run`): its memory figures
/// are then the run's own. In the benchmark's process they would start with what the workloads
/// before left behind (memory the allocator holds on to, caches): its first sample was 687 MiB
/// there, 274–283 MiB in a new process.
fn run_in_child(bounded: bool, rate: u64, seconds: u64, level: StorageLevel) -> Result<Overload> {
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let out = std::process::Command::new(exe)
        .args([
            "overload-run",
            &rate.to_string(),
            &seconds.to_string(),
            if bounded { "bounded" } else { "unbounded" },
            &level.to_string(),
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("starting an overload run")?;
    anyhow::ensure!(
        out.status.success(),
        "the overload run failed ({})",
        out.status
    );
    serde_json::from_slice(&out.stdout).context("reading the overload run's result")
}

/// `xtask overload-run RATE SECONDS bounded|unbounded LEVEL`: one overload run in this process,
/// its result as JSON on standard output.
pub(crate) fn run_child(args: &[String]) -> Result<()> {
    let [rate, seconds, bounded, level] = args else {
        anyhow::bail!("usage: xtask overload-run RATE SECONDS bounded|unbounded LEVEL");
    };
    let level =
        StorageLevel::from_name(level).with_context(|| format!("unknown storage level {level}"))?;
    let buf = Arc::new(loadgen::buffer(crate::bench::TEXT_SEED));
    let bounded = match bounded.as_str() {
        "bounded" => true,
        "unbounded" => false,
        other => anyhow::bail!("expected bounded or unbounded, not {other:?}"),
    };
    let r = run_one(
        bounded,
        rate.parse().context("RATE")?,
        seconds.parse().context("SECONDS")?,
        level,
        &buf,
    )?;
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}

pub(crate) fn describe(r: &Overload) -> String {
    format!(
        "sent {} lines/s, processed {} lines/s, RSS {} -> {} MiB (max {}, {:+.1} MiB/s), stored max {} MiB, {} memory waits, {} blocks dropped ({} unread), {} failed batches, {} sent{}",
        fmt_rate(r.sent_rate),
        fmt_rate(r.processed_rate),
        r.first_rss(),
        r.last_rss(),
        r.max_rss(),
        r.growth_mib_per_s,
        r.max_stored_mib,
        r.memory_waits,
        r.blocks_dropped,
        r.blocks_dropped_unread,
        r.failed_batches,
        r.lines_sent,
        r.lines_counted
            .map(|c| format!(", {c} counted"))
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_and_of_flat_samples() {
        let line: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 3.0 * i as f64 + 7.0)).collect();
        assert!((slope(&line) - 3.0).abs() < 1e-9);
        let flat: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 5.0)).collect();
        assert_eq!(slope(&flat), 0.0);
        assert_eq!(slope(&[(1.0, 2.0)]), 0.0);
    }
}
