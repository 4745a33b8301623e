//! The `failover` workload of `cargo xtask bench`: the example job `bench_word_count` (word count
//! over a replaying socket source) as a real cluster, `local-cluster[2,1]`: a driver process and
//! two executor processes of the job's own binary, the receiver on an executor.
//!
//! It measures the cost of replication (the highest sustainable rate with received blocks at
//! `MEMORY_ONLY_SER`, one copy, against `MEMORY_ONLY_SER_2`, a second copy in another process
//! before the receiver goes on) and the recovery after `kill -9` of the executor running the
//! receiver: how long until batches are on time again, how late they got, and whether every
//! line sent was counted exactly once. Batch statistics are read from the job's own monitoring
//! API (`/api/batches`).

use crate::bench::{RunResult, Sample, Workload, summarize};
use crate::loadgen::{self, LoadgenArgs};
use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};
use spate_streaming::StorageLevel;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// What `/api/batches` says of a batch (the fields used here).
#[derive(Deserialize)]
struct BatchRow {
    batch_time_ms: u64,
    processing_end_ms: Option<u64>,
    records: u64,
    scheduling_delay_ms: Option<u64>,
    processing_delay_ms: Option<u64>,
    total_delay_ms: Option<u64>,
    failure: Option<String>,
}

/// The outcome of killing the receiver's executor in a running job.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Recovery {
    pub(crate) level: String,
    pub(crate) rate: u64,
    /// From the kill to the end of the first batch after which every batch was on time (total
    /// delay below the batch interval).
    pub(crate) recovery_ms: u64,
    /// The largest total delay of a batch after the kill.
    pub(crate) worst_delay_ms: u64,
    /// Median total delay before the kill.
    pub(crate) before_p50_ms: u64,
    pub(crate) failed_batches: usize,
    /// Lines the source sent (counting each line once, however often it was replayed).
    pub(crate) lines_sent: u64,
    /// Lines the job counted over all its batches.
    pub(crate) lines_counted: u64,
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Builds the job's binary (release) and returns its path.
fn build_job() -> Result<PathBuf> {
    let root = crate::project_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "spate-examples",
            "--bin",
            "bench_word_count",
        ])
        .status()
        .context("running cargo build for bench_word_count")?;
    if !status.success() {
        bail!("building bench_word_count failed ({status})");
    }
    let target =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from);
    Ok(target.join("release/bench_word_count"))
}

/// The body of `GET path` from the job's monitoring server on loopback, if it answers 200.
fn http_get(port: u16, path: &str) -> Result<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let (status, body) = spate_streaming::testing::try_http_get(addr, path)?;
    if status != 200 {
        bail!("GET {path}: status {status}");
    }
    Ok(body)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// The job running as a child process, its source, and where it logs.
struct ClusterJob {
    child: Child,
    ui: u16,
    dir: tempfile::TempDir,
    stop_source: Arc<AtomicBool>,
    source: Option<std::thread::JoinHandle<Result<u64>>>,
}

impl ClusterJob {
    fn start(
        bin: &Path,
        level: StorageLevel,
        rate: u64,
        lines: u64,
        seconds: u64,
        buf: &Arc<loadgen::Buffer>,
    ) -> Result<ClusterJob> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        let stop_source = Arc::new(AtomicBool::new(false));
        let (stop, b) = (stop_source.clone(), buf.clone());
        let source = std::thread::spawn(move || {
            let args = LoadgenArgs {
                port,
                rate,
                seconds,
                lines: Some(lines),
                seed: 42,
                quiet: true,
                replay: true,
            };
            loadgen::serve_clients(&listener, &args, &b, Instant::now(), &stop)
        });
        let dir = tempfile::tempdir()?;
        let log = std::fs::File::create(dir.path().join("job.log"))?;
        let ui = free_port()?;
        let child = Command::new(bin)
            .args(["--master", "local-cluster[2,1]", "--log-level", "info"])
            .args(["--ui-host", "127.0.0.1", "--ui-port", &ui.to_string()])
            .arg("--checkpoint")
            .arg(dir.path().join("checkpoint"))
            .args(["--conf", &format!("level={level}")])
            .args(["127.0.0.1", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut job = ClusterJob {
            child,
            ui,
            dir,
            stop_source,
            source: Some(source),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(ui, "/api/batches").is_err() {
            if let Some(s) = job.child.try_wait()? {
                bail!(
                    "the job exited ({s}) before serving its monitoring page:\n{}",
                    job.log()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the job's monitoring page did not come up in 30 s:\n{}",
                    job.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(job)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("job.log")).unwrap_or_default()
    }

    fn batches(&self) -> Result<Vec<BatchRow>> {
        Ok(serde_json::from_str(&http_get(self.ui, "/api/batches")?)?)
    }

    /// Records counted over all batches (the monitor keeps the last 120: more than a run has).
    fn records(&self) -> Result<u64> {
        Ok(self.batches()?.iter().map(|b| b.records).sum())
    }

    /// The pid of the executor the receiver runs on now (from the driver's log).
    fn receiver_pid(&self) -> Option<u32> {
        self.log()
            .lines()
            .filter(|l| l.contains("receiver runs on executor"))
            .filter_map(|l| l.split("pid=Some(").nth(1)?.split(')').next()?.parse().ok())
            .next_back()
    }

    /// Stops the job with SIGTERM (graceful) and its source; the lines the source sent.
    fn finish(mut self) -> Result<u64> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop_source.store(true, Ordering::Release);
        match self.source.take().map(|s| s.join()) {
            Some(Ok(r)) => r,
            _ => bail!("the load generator thread panicked"),
        }
    }
}

impl Drop for ClusterJob {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stop_source.store(true, Ordering::Release);
    }
}

fn sample(b: &BatchRow) -> Sample {
    Sample {
        total_ms: b.total_delay_ms.unwrap_or(0),
        scheduling_ms: b.scheduling_delay_ms.unwrap_or(0),
        processing_ms: b.processing_delay_ms.unwrap_or(0),
        records: b.records,
        failed: b.failure.is_some(),
    }
}

/// One throughput run on the cluster: `warmup` then `measure` seconds at `rate`.
fn throughput(
    bin: &Path,
    level: StorageLevel,
    rate: u64,
    warmup: u64,
    measure: u64,
    buf: &Arc<loadgen::Buffer>,
) -> Result<RunResult> {
    let seconds = warmup + measure + 3;
    let job = ClusterJob::start(bin, level, rate, rate * seconds, seconds + 10, buf)?;
    let from = epoch_ms() + warmup * 1000;
    std::thread::sleep(Duration::from_secs(warmup + measure + 2));
    let rows = job.batches()?;
    let measured: Vec<Sample> = rows
        .iter()
        .filter(|b| b.batch_time_ms > from && b.batch_time_ms <= from + measure * 1000)
        .map(sample)
        .collect();
    job.finish()?;
    summarize(Workload::Failover, level, rate, 1000, measure, &measured)
}

/// Kills the receiver's executor `before` seconds into a run at `rate` and follows the job for
/// `after` seconds more, then until every line sent is counted (at most 30 s).
fn kill_run(
    bin: &Path,
    level: StorageLevel,
    rate: u64,
    before: u64,
    after: u64,
    buf: &Arc<loadgen::Buffer>,
) -> Result<Recovery> {
    let send_secs = before + after / 2;
    let lines = rate * send_secs;
    let job = ClusterJob::start(bin, level, rate, lines, before + after + 40, buf)?;
    std::thread::sleep(Duration::from_secs(before));
    let victim = job
        .receiver_pid()
        .with_context(|| format!("no executor runs the receiver:\n{}", job.log()))?;
    let killed_at = epoch_ms();
    let status = Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()?;
    if !status.success() {
        bail!("kill -9 {victim} failed");
    }
    std::thread::sleep(Duration::from_secs(after));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut counted = job.records()?;
    while counted < lines && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        counted = job.records()?;
    }
    let rows = job.batches()?;
    let sent = job.finish()?;
    let mut before_delays: Vec<u64> = rows
        .iter()
        .filter(|b| {
            b.batch_time_ms + 1000 < killed_at
                && b.batch_time_ms > killed_at.saturating_sub(before * 1000) + 2000
        })
        .filter_map(|b| b.total_delay_ms)
        .collect();
    before_delays.sort_unstable();
    let after_rows: Vec<&BatchRow> = rows
        .iter()
        .filter(|b| b.batch_time_ms > killed_at)
        .collect();
    // The last batch after the kill that was late; recovery ends with the batch after it.
    let last_late = after_rows
        .iter()
        .rposition(|b| b.total_delay_ms.is_none_or(|d| d >= 1000));
    let recovered = match last_late {
        None => after_rows.first(),
        Some(i) => after_rows.get(i + 1),
    };
    let recovery_ms = recovered
        .and_then(|b| b.processing_end_ms)
        .map_or(u64::MAX, |end| end.saturating_sub(killed_at));
    Ok(Recovery {
        level: level.to_string(),
        rate,
        recovery_ms,
        worst_delay_ms: after_rows
            .iter()
            .filter_map(|b| b.total_delay_ms)
            .max()
            .unwrap_or(0),
        before_p50_ms: before_delays
            .get(before_delays.len() / 2)
            .copied()
            .unwrap_or(0),
        failed_batches: rows.iter().filter(|b| b.failure.is_some()).count(),
        lines_sent: sent.min(lines),
        lines_counted: counted,
    })
}

/// The failover workload: a rate search at each level, then a kill at about two thirds of the
/// highest rate both sustained (at `MEMORY_ONLY_SER_2`).
pub(crate) fn run(
    quick: bool,
    buf: &Arc<loadgen::Buffer>,
    runs: &mut Vec<RunResult>,
) -> Result<(Vec<(String, u64)>, Option<Recovery>)> {
    eprintln!("bench: failover: building bench_word_count…");
    let bin = build_job()?;
    let (warmup, measure) = if quick { (3, 4) } else { (4, 10) };
    let rates: &[u64] = if quick {
        &[250_000, 500_000, 750_000, 1_000_000]
    } else {
        &[
            100_000, 250_000, 500_000, 750_000, 1_000_000, 1_500_000, 2_000_000, 2_500_000,
            3_000_000,
        ]
    };
    let mut best = Vec::new();
    for level in [
        StorageLevel::MEMORY_ONLY_SER,
        StorageLevel::MEMORY_ONLY_SER_2,
    ] {
        let mut max_ok = 0;
        for &rate in rates {
            eprint!(
                "bench: failover  {level:<18} {:>6} lines/s on local-cluster[2,1] … ",
                crate::bench::fmt_rate(rate as f64)
            );
            let _ = std::io::stderr().flush();
            let r = throughput(&bin, level, rate, warmup, measure, buf)?;
            eprintln!("{}", crate::bench::describe(&r));
            let stable = r.stable;
            runs.push(r);
            if !stable {
                break;
            }
            max_ok = rate;
        }
        best.push((level.to_string(), max_ok));
    }
    // The kill at a rate both levels sustain with room to spare (about two thirds of the lower
    // maximum): recovery is about catching up, which a job at its limit never does.
    let limit = best.iter().map(|b| b.1).min().unwrap_or(0);
    let rate = rates
        .iter()
        .copied()
        .filter(|&r| r * 3 <= limit * 2)
        .max()
        .unwrap_or(rates[0]);
    eprint!(
        "bench: failover  kill -9 of the receiver's executor at {} lines/s … ",
        crate::bench::fmt_rate(rate as f64)
    );
    let _ = std::io::stderr().flush();
    let recovery = kill_run(
        &bin,
        StorageLevel::MEMORY_ONLY_SER_2,
        rate,
        warmup + 3,
        if quick { 10 } else { 15 },
        buf,
    )?;
    eprintln!(
        "on time again {} ms after the kill (worst delay {} ms), {} of {} lines counted",
        recovery.recovery_ms, recovery.worst_delay_ms, recovery.lines_counted, recovery.lines_sent
    );
    Ok((best, Some(recovery)))
}
