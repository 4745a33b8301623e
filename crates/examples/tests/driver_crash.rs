//! Driver crashes with real processes: a windowed, stateful job runs as a child process, is
//! killed with SIGKILL at a random batch, and is started again on the same checkpoint directory.
//!
//! - Direct Kafka (a real tansu broker): the saved outputs of every batch equal, file for file,
//!   those of a run that was never killed, and the final totals equal a count made here.
//! - A socket text stream with the write-ahead log on, fed by a replayable line server: every
//!   line is counted exactly once (per-batch line counts add up to the lines sent, and the final
//!   word totals equal a count made here), although which batch a line lands in depends on
//!   timing.
//!
//! Both runs end with SIGTERM, which must stop the job gracefully (exit status 0).
//!
//! The Kafka test needs `tansu` on PATH (see `spate_receivers::testing`).

use spate_receivers::KafkaProducer;
use spate_receivers::testing::Broker;
use support::{ReplayServer, counts, line, outputs, word_counts};

mod support;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BATCH_MS: u64 = 500;

/// A small deterministic generator for the kill point (the seed is printed, to rerun a failure).
fn random_below(n: u64) -> u64 {
    let seed = std::env::var("SPATE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |d| d.subsec_nanos() as u64)
        });
    eprintln!("kill point seed: {seed} (set SPATE_CRASH_SEED to repeat)");
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x % n
}

/// A job process writing its log to a file in `dir`.
struct Job {
    child: Child,
    log: PathBuf,
}

impl Job {
    fn start(bin: &str, dir: &Path, run: &str, args: &[&str]) -> Job {
        let log = dir.join(format!("{run}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("a log file");
        let child = Command::new(bin)
            .arg("--checkpoint")
            .arg(dir.join("checkpoint"))
            .arg("--conf")
            .arg(format!("out={}", dir.join("out").display()))
            .arg("--no-ui")
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("a log handle"))
            .stderr(file)
            .spawn()
            .expect("the job starts");
        Job { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails the test (with the job's log) if the job has exited.
    fn check_alive(&mut self) {
        if let Some(status) = self.child.try_wait().expect("waiting for the job") {
            panic!("the job exited ({status}) early:\n{}", self.log());
        }
    }

    /// Kills the process with SIGKILL.
    fn crash(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and expects a graceful exit with status 0 within 30 s.
    fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().expect("waiting for the job") {
                assert!(
                    s.success(),
                    "SIGTERM should stop the job gracefully, but it exited with {s}:\n{}",
                    self.log()
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "the job did not stop within 30 s of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Waits until `ready` holds for the outputs, checking that the job is alive; fails after 60 s.
fn wait_for(job: &mut Job, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        job.check_alive();
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{}",
            job.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------

const PARTITIONS: i32 = 2;
const PER_PARTITION: u64 = 200;
const MAX_PER_BATCH: u64 = 20;

/// Runs the Kafka job on `dir` until it has saved `batches` batches of totals; with `kill_after`,
/// it is first killed once it has saved that many, then started again.
/// What a run of the Kafka job goes through.
#[derive(Clone, Copy)]
enum Kill {
    /// Nothing: the reference run.
    Nothing,
    /// The driver, with SIGKILL, after this many saved batches; then it is started again.
    Driver(usize),
    /// One executor of a `local-cluster` master, with SIGKILL, after this many saved batches.
    Executor(usize),
}

fn run_kafka_job(
    broker: &Broker,
    dir: &Path,
    batches: usize,
    master: &str,
    kill: Kill,
) -> BTreeMap<u64, Vec<String>> {
    let bin = env!("CARGO_BIN_EXE_recoverable_kafka");
    let addr = broker.addr();
    let max = format!("max-per-partition={MAX_PER_BATCH}");
    // Cluster runs log at info level: the driver's summary counts the executors' tasks. So do
    // the runs with a driver crash: their logs are kept when the outputs differ.
    let level = if master.starts_with("local-cluster") || matches!(kill, Kill::Driver(_)) {
        "info"
    } else {
        "warn"
    };
    let args = [
        "--log-level",
        level,
        "--master",
        master,
        "--conf",
        max.as_str(),
        addr.as_str(),
        "lines",
    ];
    let out = dir.join("out");
    let saved = |n: usize| outputs(&out, "totals").len() >= n;
    let mut job = Job::start(bin, dir, "first", &args);
    if let Kill::Executor(k) = kill {
        wait_for(&mut job, &format!("{k} batches before the kill"), || {
            saved(k)
        });
        support::kill_a_child_of(job.child.id());
        wait_for(&mut job, "the run's batches", || saved(batches));
        let log = job.log.clone();
        job.terminate();
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let summary = text
            .lines()
            .find(|l| l.contains("cluster: tasks run on executors"))
            .unwrap_or_else(|| panic!("no cluster summary:\n{text}"));
        assert!(
            summary.contains("lost=1") && !summary.contains("tasks=0 "),
            "{summary}"
        );
        eprintln!("{summary}");
        eprintln!(
            "fallbacks: {}",
            text.lines()
                .filter(|l| l.contains("computing it here") || l.contains("running it here"))
                .count()
        );
        // Executors may be lost mid-task (the task then runs elsewhere), and a reduce task may
        // find the buckets of the lost executor gone (its map task then runs again), but no task
        // fails otherwise.
        let failed = text
            .lines()
            .filter(|l| l.contains("failed the task") && !l.contains("is missing"))
            .count();
        assert_eq!(failed, 0, "an executor failed a task:\n{text}");
        return collect_outputs(dir, &out);
    } else if let Kill::Driver(k) = kill {
        // A batch's outputs are saved before its metadata checkpoint is written. A crash in
        // between after the first batch leaves no checkpoint at all, and the restarted job starts
        // afresh at new batch times (as Spark's does); that once made this test compare the
        // fresh run's first batch with the reference's second. Wait for a checkpoint too.
        let checkpointed = || {
            std::fs::read_dir(dir.join("checkpoint/metadata")).is_ok_and(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("checkpoint-"))
            })
        };
        wait_for(&mut job, &format!("{k} batches before the crash"), || {
            saved(k) && checkpointed()
        });
        job.crash();
        job = Job::start(bin, dir, "recovered", &args);
        let log = job.log.clone();
        wait_for(&mut job, "the recovered run's batches", || saved(batches));
        let text = std::fs::read_to_string(log).unwrap_or_default();
        assert!(
            !text.contains("ERROR"),
            "the recovered run logged errors:\n{text}"
        );
    } else {
        wait_for(&mut job, "the reference run's batches", || saved(batches));
    }
    job.terminate();
    collect_outputs(dir, &out)
}

/// The outputs of a finished run (totals under the batch time, windows under it + 1, counts
/// + 2, groups + 3), after checking that the graceful stop checkpointed the last batch.
fn collect_outputs(dir: &Path, out: &Path) -> BTreeMap<u64, Vec<String>> {
    // The graceful stop finished the last batch and checkpointed it.
    let last_checkpoint = std::fs::read_dir(dir.join("checkpoint/metadata"))
        .expect("metadata checkpoints")
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("checkpoint-")
                .and_then(|t| t.parse::<u64>().ok())
        })
        .max();
    let mut all = outputs(out, "totals");
    assert_eq!(
        last_checkpoint,
        all.keys().next_back().copied(),
        "the last checkpoint is the last batch's"
    );
    // Batch times are multiples of the batch: the other outputs go under t + 1 and t + 2.
    for (t, w) in outputs(out, "window") {
        all.insert(t + 1, w);
    }
    for (t, c) in outputs(out, "counts") {
        all.insert(t + 2, c);
    }
    for (t, g) in outputs(out, "groups") {
        all.insert(t + 3, g);
    }
    all
}

/// Batch outputs keyed by batch number from the first batch (the two runs' clocks differ).
fn by_batch(outputs: &BTreeMap<u64, Vec<String>>, batches: usize) -> Vec<(u64, u64, Vec<String>)> {
    let first = outputs.keys().next().copied().unwrap_or(0) / BATCH_MS * BATCH_MS;
    outputs
        .iter()
        .map(|(t, lines)| ((t - first) / BATCH_MS, t % BATCH_MS, lines.clone()))
        .filter(|(i, _, _)| (*i as usize) < batches)
        .collect()
}

/// A broker with the topic `lines` written beforehand; returns it and the lines produced.
fn filled_broker() -> Option<(Broker, Vec<String>)> {
    let broker = Broker::start()?;
    broker.create_topic("lines", PARTITIONS as u32);
    let producer = KafkaProducer::new(&broker.addr()).expect("a producer");
    let mut sent = Vec::new();
    for p in 0..PARTITIONS {
        let lines: Vec<String> = (0..PER_PARTITION)
            .map(|i| line(i * PARTITIONS as u64 + p as u64))
            .collect();
        for chunk in lines.chunks(100) {
            let records = chunk
                .iter()
                .map(|l| (None, l.clone().into_bytes()))
                .collect();
            producer.send("lines", p, records).expect("producing");
        }
        sent.extend(lines);
    }
    Some((broker, sent))
}

/// Runs the Kafka job once without failures on `reference_master`, once on `master` through
/// `kill`, and checks every batch's outputs are the same, and the last totals count every line.
fn same_outputs_through(reference_master: &str, master: &str, kill: Kill) {
    let Some((broker, sent)) = filled_broker() else {
        return;
    };
    // The topic lasts 10 batches; two more show the windows emptying and the totals holding.
    let batches = (PER_PARTITION / MAX_PER_BATCH) as usize + 2;
    let reference = tempfile::tempdir().unwrap();
    let expected = by_batch(
        &run_kafka_job(
            &broker,
            reference.path(),
            batches,
            reference_master,
            Kill::Nothing,
        ),
        batches,
    );
    let failed = tempfile::tempdir().unwrap();
    let got = by_batch(
        &run_kafka_job(&broker, failed.path(), batches, master, kill),
        batches,
    );
    assert_eq!(
        expected.len(),
        4 * batches,
        "every batch saved its four outputs"
    );
    if let Some((e, g)) = expected.iter().zip(&got).find(|(e, g)| e != g) {
        // Keep the failed run's directory (checkpoints, outputs, both runs' logs) to look into.
        let kept = failed.keep();
        let log = |name: &str| {
            let text = std::fs::read_to_string(kept.join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(60)..].join("\n")
        };
        panic!(
            "batch {} ({}) differs after the failure:\n  expected {:?}\n  got      {:?}\n\
             the run is kept in {}\n--- first.log (end) ---\n{}\n--- recovered.log (end) ---\n{}",
            e.0,
            ["totals", "window", "counts", "groups"][e.1 as usize],
            e.2,
            g.2,
            kept.display(),
            log("first.log"),
            log("recovered.log"),
        );
    }
    assert_eq!(got.len(), expected.len());
    let last_totals = &expected
        .iter()
        .rev()
        .find(|(_, kind, _)| *kind == 0)
        .expect("totals")
        .2;
    assert_eq!(counts(last_totals), word_counts(&sent));
}

#[test]
fn a_killed_direct_kafka_job_resumes_with_the_outputs_of_an_uninterrupted_run() {
    let kill_after = 1 + random_below(8) as usize;
    eprintln!("killing the driver after {kill_after} saved batches");
    same_outputs_through("local[2]", "local[2]", Kill::Driver(kill_after));
}

/// Driver recovery on a cluster: the driver (and with it its executors) is killed, and the
/// restarted driver's new executors pick up the windows and the state from its checkpoint.
#[test]
fn a_killed_driver_of_a_local_cluster_resumes_with_the_outputs_of_an_uninterrupted_run() {
    let kill_after = 2 + random_below(6) as usize;
    eprintln!("killing the driver after {kill_after} saved batches");
    same_outputs_through("local[2]", "local-cluster[2,1]", Kill::Driver(kill_after));
}

/// Cluster mode: the executors compute the batch-local tasks (reading their Kafka ranges
/// themselves); one is killed and its tasks run elsewhere.
#[test]
fn a_killed_executor_changes_no_output_of_a_kafka_job_on_a_local_cluster() {
    let kill_after = 2 + random_below(6) as usize;
    eprintln!("killing an executor after {kill_after} saved batches");
    same_outputs_through("local[2]", "local-cluster[3,1]", Kill::Executor(kill_after));
}

// ---------------------------------------------------------------------------------------------

#[test]
fn a_killed_socket_job_with_the_write_ahead_log_counts_every_line_once() {
    const TOTAL: u64 = 4000;
    let server = ReplayServer::start(TOTAL, 1000);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let bin = env!("CARGO_BIN_EXE_recoverable_socket");
    let port = server.port.to_string();
    let args = ["--log-level", "warn", "127.0.0.1", port.as_str()];
    let kill_after = 2 + random_below(5) as usize;
    eprintln!("killing after {kill_after} saved batches");

    let mut job = Job::start(bin, dir.path(), "first", &args);
    wait_for(&mut job, "batches before the crash", || {
        outputs(&out, "lines").len() >= kill_after
    });
    job.crash();
    let mut job = Job::start(bin, dir.path(), "recovered", &args);
    let all: Vec<String> = (0..TOTAL).map(line).collect();
    let expected = word_counts(&all);
    // Done when the latest totals count every word of every line.
    wait_for(&mut job, "every line to be counted", || {
        outputs(&out, "totals")
            .values()
            .next_back()
            .is_some_and(|t| counts(t) == expected)
    });
    job.terminate();

    let per_batch: u64 = outputs(&out, "lines")
        .values()
        .map(|l| l.first().map_or(0, |n| n.parse::<u64>().expect("a count")))
        .sum();
    assert_eq!(
        per_batch, TOTAL,
        "the per-batch line counts add up to the lines sent"
    );
    let totals = outputs(&out, "totals");
    assert_eq!(
        counts(totals.values().next_back().expect("totals")),
        expected,
        "the last totals count every line once"
    );
    // The batches are contiguous (none was skipped across the crash), and every batch's
    // outputs — its count, word counts, window of three batches and running totals — are those
    // of the input it saved, whichever run computed it.
    let checked = support::check_socket_outputs(&out, TOTAL, BATCH_MS, 3);
    eprintln!("{checked} batches checked against their input");
}
