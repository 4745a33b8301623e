//! Cluster mode with real executor processes (an example job's binary in its executor role) on
//! loopback: `_2` blocks replicated to an executor and read back after the driver lost its copy,
//! an executor killed with SIGKILL detected and its replicas copied again, a streaming job that
//! goes on with exact counts while an executor dies, garbage on the driver's port rejected, and
//! clear errors for an executor program that never registers and a wrong driver address.

use spate_core::{Context, ContextConfig, StorageLevel};
use spate_streaming::storage::BlockId;
use spate_streaming::testing::fed_receiver;
use spate_streaming::{Clock, ManualClock, StreamingContext};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support;

/// Any Spate job binary can be an executor: its entry point runs the role.
const EXECUTOR: &str = env!("CARGO_BIN_EXE_network_word_count");

fn cluster_context(executors: usize, memory_bytes: u64) -> Context {
    let mut config = ContextConfig::new(&format!("local-cluster[{executors},1]"));
    config.executor_program = Some(EXECUTOR.into());
    config.memory_bytes = memory_bytes;
    Context::with_config(config).expect("the executors register")
}

/// Waits until `cond` holds (bounded).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn lines(tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{tag} line {i:06} {}", "x".repeat(60)))
        .collect()
}

/// Fills the driver's memory with unreplicated blocks until `block` is evicted from it.
fn evict(ctx: &Context, block: &BlockId) {
    for i in 0..64u64 {
        if !ctx.block_manager().contains(block) {
            return;
        }
        ctx.block_manager()
            .put_values(
                BlockId::Input {
                    stream: 99,
                    unique: i,
                },
                lines("filler", 2_000),
                StorageLevel::MEMORY_ONLY_SER,
            )
            .unwrap();
    }
    panic!("{block} was never evicted");
}

#[test]
fn a_replicated_block_the_driver_lost_is_read_from_its_executor() {
    let ctx = cluster_context(2, 1 << 20);
    let cluster = ctx.cluster().expect("a cluster");
    assert_eq!(cluster.executors().len(), 2);
    let block = BlockId::Input {
        stream: 1,
        unique: 1,
    };
    let values = lines("kept", 3_000);
    ctx.block_manager()
        .put_values(
            block.clone(),
            values.clone(),
            StorageLevel::MEMORY_ONLY_SER_2,
        )
        .unwrap();
    assert_eq!(ctx.block_manager().stats().replicas_stored, 1);
    assert!(cluster.replica_of(&block).is_some());
    evict(&ctx, &block);
    let back = ctx
        .block_manager()
        .get_values::<String>(&block)
        .unwrap()
        .expect("read back from the replica");
    assert_eq!(*back, values);
    assert_eq!(ctx.block_manager().stats().replica_reads, 1);
    // Removing a block on purpose removes its replica too.
    ctx.block_manager().remove(&block);
    assert!(cluster.replica_of(&block).is_none());
    assert!(
        ctx.block_manager()
            .get_values::<String>(&block)
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_killed_executor_is_detected_and_its_replicas_are_made_again_elsewhere() {
    let ctx = cluster_context(2, 1 << 20);
    let cluster = ctx.cluster().unwrap().clone();
    let blocks: Vec<BlockId> = (0..6)
        .map(|i| BlockId::Input {
            stream: 2,
            unique: i,
        })
        .collect();
    for b in &blocks {
        ctx.block_manager()
            .put_values(b.clone(), lines("b", 200), StorageLevel::MEMORY_ONLY_SER_2)
            .unwrap();
    }
    let victim = cluster.replica_of(&blocks[0]).unwrap();
    let pid = cluster
        .executors()
        .into_iter()
        .find(|e| e.id == victim)
        .unwrap()
        .pid;
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        cluster.wait_for_executors(1, Duration::from_secs(20)),
        "the driver noticed the loss"
    );
    assert_eq!(cluster.lost_executors(), 1);
    for b in &blocks {
        eventually("the replica to be made again", || {
            cluster.replica_of(b).is_some_and(|e| e != victim)
        });
    }
    // The new replica serves a block the driver then loses.
    evict(&ctx, &blocks[0]);
    assert!(
        ctx.block_manager()
            .get_values::<String>(&blocks[0])
            .unwrap()
            .is_some()
    );
}

#[test]
fn garbage_on_the_drivers_port_is_rejected_and_the_cluster_goes_on() {
    let ctx = cluster_context(1, 64 << 20);
    let cluster = ctx.cluster().unwrap();
    let mut s = std::net::TcpStream::connect(cluster.addr()).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "the driver hangs up");
    assert_eq!(cluster.executors().len(), 1);
    let block = BlockId::Input {
        stream: 3,
        unique: 0,
    };
    ctx.block_manager()
        .put_values(
            block.clone(),
            vec![1u32, 2, 3],
            StorageLevel::MEMORY_ONLY_SER_2,
        )
        .unwrap();
    assert!(cluster.replica_of(&block).is_some());
}

#[test]
fn an_executor_program_that_never_registers_is_a_clear_error() {
    let mut config = ContextConfig::new("local-cluster[2,1]");
    config.executor_program = Some("/bin/false".into());
    let err = Context::with_config(config)
        .expect_err("an error")
        .to_string();
    assert!(
        err.contains("exited") && err.contains("before registering"),
        "{err}"
    );
    assert!(err.contains("/bin/false"), "{err}");
}

#[test]
fn an_executor_with_a_wrong_driver_address_exits_with_a_clear_error() {
    // Port 1 on loopback: nothing listens there.
    let out = std::process::Command::new(EXECUTOR)
        .args([
            "--executor",
            "--driver",
            "127.0.0.1:1",
            "--log-level",
            "error",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach the driver at 127.0.0.1:1") && stderr.contains("--driver"),
        "{stderr}"
    );
    let out = std::process::Command::new(EXECUTOR)
        .args(["--executor"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--driver HOST:PORT"));
}

#[test]
fn a_streaming_job_keeps_exact_counts_while_an_executor_dies() {
    let ctx = cluster_context(3, 64 << 20);
    let cluster = ctx.cluster().unwrap().clone();
    let ssc = StreamingContext::with_context(ctx.clone(), Duration::from_secs(1)).unwrap();
    let clock = ManualClock::new(0);
    ssc.set_clock(Clock::Manual(clock.clone())).unwrap();
    let (receiver, feeder) = fed_receiver("test feed");
    let words = ssc
        .receiver_stream(receiver)
        .flat_map(|l: String| l.split(' ').map(String::from).collect::<Vec<_>>());
    let out: Arc<Mutex<Vec<(u64, Vec<(String, u64)>)>>> = Arc::default();
    let o = out.clone();
    words
        .map(|w| (w, 1u64))
        .reduce_by_key(|a, b| a + b)
        .foreach_rdd(move |rdd, t| {
            let mut v = rdd.collect()?;
            v.sort();
            o.lock().unwrap().push((t.ms(), v));
            Ok(())
        });
    let ui = ssc.start_ui("127.0.0.1:0").unwrap();
    ssc.start().unwrap();
    // The monitoring page lists the executors.
    let (status, executors) = spate_streaming::testing::http_get(ui.addr(), "/api/executors");
    assert_eq!(status, 200);
    let executors: serde_json::Value = serde_json::from_str(&executors).unwrap();
    assert_eq!(
        executors["executors"].as_array().unwrap().len(),
        3,
        "{executors}"
    );
    let input = ["a b a", "b c", "a a a d"];
    let mut expected = Vec::new();
    for (i, line) in input.iter().enumerate() {
        assert!(feeder.send(vec![line.to_string(); 100]));
        if i == 1 {
            // Kill an executor holding received blocks' replicas, mid-run.
            let pid = cluster.executors()[0].pid;
            std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
        }
        clock.advance(Duration::from_secs(1));
        assert!(ssc.wait_for_batch(clock.time(), Duration::from_secs(60)));
        let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
        for w in line.split(' ') {
            *counts.entry(w.to_string()).or_default() += 100;
        }
        expected.push((
            (i as u64 + 1) * 1000,
            counts.into_iter().collect::<Vec<_>>(),
        ));
    }
    ssc.stop(true);
    assert_eq!(*out.lock().unwrap(), expected);
    assert!(ctx.block_manager().stats().replicas_stored >= 3);
    assert!(cluster.wait_for_executors(2, Duration::from_secs(20)));
    let (_, metrics) = spate_streaming::testing::http_get(ui.addr(), "/metrics");
    assert!(metrics.contains("spate_executors 2"), "{metrics}");
    assert!(
        metrics.contains("spate_executors_lost_total 1"),
        "{metrics}"
    );
    let (_, page) = spate_streaming::testing::http_get(ui.addr(), "/");
    assert!(
        page.contains("<h2>Executors</h2>") && page.contains("1 lost"),
        "{page}"
    );
}

#[test]
fn executors_started_on_their_own_join_a_spate_master() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ctx = Context::new(&format!("spate://127.0.0.1:{port}")).unwrap();
    let cluster = ctx.cluster().unwrap();
    assert!(cluster.executors().is_empty());
    // As a process manager would start it (see deploy/).
    let mut executor = std::process::Command::new(EXECUTOR)
        .args(["--executor", "--driver", &format!("127.0.0.1:{port}")])
        .args(["--cores", "2", "--log-level", "warn"])
        .spawn()
        .unwrap();
    assert!(cluster.wait_for_executors(1, Duration::from_secs(20)));
    assert_eq!(cluster.executors()[0].cores, 2);
    let block = BlockId::Input {
        stream: 4,
        unique: 0,
    };
    ctx.block_manager()
        .put_values(
            block.clone(),
            vec![7u64; 10],
            StorageLevel::MEMORY_ONLY_SER_2,
        )
        .unwrap();
    assert!(cluster.replica_of(&block).is_some());
    // The driver going away ends the executor.
    drop(ctx);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = executor.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the executor outlived its driver"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}

const SOCKET_LINES: u64 = 3000;

/// An example job's process, its log in a file of a directory of its own; killed when dropped,
/// so a test that fails leaves no job behind (its executors exit when their driver does).
struct JobProcess {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Drop for JobProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl JobProcess {
    /// Starts `program` with the arguments `args` makes from the job's directory.
    fn start(program: &str, args: impl FnOnce(&std::path::Path) -> Vec<String>) -> JobProcess {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("job.log")).unwrap();
        let child = std::process::Command::new(program)
            .args(args(dir.path()))
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        JobProcess { dir, child }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("job.log")).unwrap_or_default()
    }

    /// The text files a job saved under `out/<name>` in its directory, by batch.
    fn outputs(&self, name: &str) -> std::collections::BTreeMap<u64, Vec<String>> {
        support::outputs(&self.dir.path().join("out"), name)
    }

    /// Waits (`limit` at most) until `cond` holds, failing if the job exits first.
    fn wait_at_most(
        &mut self,
        limit: Duration,
        what: &str,
        mut cond: impl FnMut(&JobProcess) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        while !cond(self) {
            if let Ok(Some(s)) = self.child.try_wait() {
                panic!("the job exited ({s}) early:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (90 s at most) until `cond` holds, failing if the job exits first.
    fn wait(&mut self, what: &str, cond: impl FnMut(&JobProcess) -> bool) {
        self.wait_at_most(Duration::from_secs(90), what, cond);
    }

    /// The job's monitoring server's address, once it printed it.
    fn ui(&self) -> Option<std::net::SocketAddr> {
        let log = self.log();
        let at = log.split("monitoring page: http://").nth(1)?;
        at.split('/').next()?.parse().ok()
    }

    /// `path` of the monitoring server as JSON (`Null` until it answers).
    fn api(&self, path: &str) -> serde_json::Value {
        self.ui()
            .and_then(|addr| spate_streaming::testing::try_http_get(addr, path).ok())
            .and_then(|(_, body)| serde_json::from_str(&body).ok())
            .unwrap_or(serde_json::Value::Null)
    }
}

/// The recoverable socket job on `local-cluster[3,1]`, fed `SOCKET_LINES` lines by a replayable
/// server.
struct SocketJob {
    _server: support::ReplayServer,
    job: JobProcess,
}

impl std::ops::Deref for SocketJob {
    type Target = JobProcess;
    fn deref(&self) -> &JobProcess {
        &self.job
    }
}

impl std::ops::DerefMut for SocketJob {
    fn deref_mut(&mut self) -> &mut JobProcess {
        &mut self.job
    }
}

impl SocketJob {
    fn start(extra: &[&str]) -> SocketJob {
        let server = support::ReplayServer::start(SOCKET_LINES, 1000);
        let port = server.port.to_string();
        // The driver starts its two executors from its own binary.
        let job = JobProcess::start(env!("CARGO_BIN_EXE_recoverable_socket"), |dir| {
            let mut args: Vec<String> = [
                "--master",
                "local-cluster[3,1]",
                "--no-ui",
                "--log-level",
                "info",
            ]
            .into_iter()
            .chain(extra.iter().copied())
            .map(String::from)
            .collect();
            args.extend([
                "--checkpoint".to_string(),
                dir.join("checkpoint").display().to_string(),
                "--conf".to_string(),
                format!("out={}", dir.join("out").display()),
                "127.0.0.1".to_string(),
                port,
            ]);
            args
        });
        SocketJob {
            _server: server,
            job,
        }
    }

    /// Waits for two batches and returns the pid of the executor running the receiver.
    fn receiver_executor(&mut self) -> String {
        self.wait("two batches", |j| j.outputs("lines").len() >= 2);
        let pids = receiver_pids(&self.log());
        assert_eq!(
            pids.len(),
            1,
            "the receiver runs on an executor:\n{}",
            self.log()
        );
        pids[0].clone()
    }

    /// Waits until the latest totals count every word of every line, stops the job with
    /// SIGTERM (a clean exit expected) and checks the per-batch line counts add up to the lines
    /// sent (every line counted once). Returns the job's log.
    fn finish(mut self) -> String {
        let all: Vec<String> = (0..SOCKET_LINES).map(support::line).collect();
        let expected = support::word_counts(&all);
        self.wait("every line to be counted", |j| {
            j.outputs("totals")
                .values()
                .next_back()
                .is_some_and(|t| support::counts(t) == expected)
        });
        std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}:\n{}", self.log());
        // Every batch's outputs (its count, word counts, window and running totals) are those
        // of its input, and the inputs hold every line once.
        let batches =
            support::check_socket_outputs(&self.dir.path().join("out"), SOCKET_LINES, 500, 3);
        eprintln!("{batches} batches checked against their input");
        self.log()
    }
}

#[test]
fn a_job_on_a_local_cluster_runs_tasks_on_its_executors_and_survives_losing_one() {
    let mut job = SocketJob::start(&[]);
    job.wait("two batches", |j| j.outputs("lines").len() >= 2);
    support::kill_a_child_of(job.child.id());
    let log_text = job.finish();
    // The executors did the work: the driver's summary counts their tasks.
    let summary = log_text
        .lines()
        .find(|l| l.contains("cluster: tasks run on executors"))
        .unwrap_or_else(|| panic!("no cluster summary in the log:\n{log_text}"));
    let tasks: u64 = summary
        .split("tasks=")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .expect("a task count");
    assert!(tasks > 0, "{summary}");
    // Received blocks are replicated to an executor, and their tasks sent there first.
    assert!(!summary.contains("local=0 "), "{summary}");
    assert!(
        !log_text.contains("failed the task"),
        "an executor failed a task:\n{log_text}"
    );
    eprintln!("{summary}");
    assert!(summary.contains("lost=1"), "{summary}");
}

/// The pids of the executors the driver has put the receiver on, in order.
fn receiver_pids(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("receiver runs on executor"))
        .filter_map(|l| {
            l.split("pid=Some(")
                .nth(1)?
                .split(')')
                .next()
                .map(String::from)
        })
        .collect()
}

/// Sends `sig` to process `pid`.
fn signal(pid: &str, sig: &str) {
    let sent = std::process::Command::new("kill")
        .args([sig, pid])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {sig} {pid}");
}

#[test]
fn a_receiver_runs_on_an_executor_and_moves_when_its_executor_dies() {
    let mut job = SocketJob::start(&["--conf", "wal=off"]);
    let first = job.receiver_executor();
    signal(&first, "-KILL");
    let log = job.finish();
    let moved = receiver_pids(&log);
    assert_eq!(moved.len(), 2, "the receiver moved to the other executor");
    assert_ne!(moved[0], moved[1]);
}

/// An executor that does not answer a cut in time but is not lost (here: stopped with SIGSTOP
/// for longer than the request timeout, shorter than the heartbeat timeout) keeps its receiver,
/// and the next cut hands over what the unanswered one took. Moving the receiver instead left a
/// second receiver reading the source on the paused executor once it resumed, and the blocks the
/// late cut took were never read.
#[test]
fn a_receiver_whose_executor_answers_a_cut_late_stays_there_and_loses_nothing() {
    let mut job = SocketJob::start(&["--conf", "wal=off", "--conf", "spate.request.timeout=1s"]);
    let first = job.receiver_executor();
    // A quarter of a batch after a cut, so that the receiver has read lines the next cut (the
    // one left unanswered) takes. Two seconds: at least one cut (batches are 500 ms) waits out
    // the 1 s request timeout, and the executor's heartbeats (every 500 ms) stop for less than
    // the 3 s that lose it.
    std::thread::sleep(Duration::from_millis(250));
    signal(&first, "-STOP");
    std::thread::sleep(Duration::from_secs(2));
    signal(&first, "-CONT");
    job.wait("a cut the executor did not answer", |j| {
        j.log().contains("did not hand over this batch's blocks")
    });
    let log = job.finish();
    // Whether the unanswered cut took blocks depends on when the pause fell; when it did, the
    // next cut handed them over again (and the counts above include them).
    let again = log.contains("handed over again");
    eprintln!("blocks handed over again: {again}");
    assert_eq!(
        receiver_pids(&log),
        [first],
        "the receiver stayed on its executor:\n{log}"
    );
    assert!(
        !log.contains("executor lost"),
        "no executor was lost:\n{log}"
    );
}

/// With `spate.heartbeat.timeout` raised, an executor paused for longer than the default 3 s
/// (stopped with SIGSTOP for 4 s: a swapping or overcommitted machine) is kept, with its
/// receiver, and nothing is lost or counted twice.
#[test]
fn a_longer_heartbeat_timeout_keeps_an_executor_paused_past_the_default() {
    let mut job = SocketJob::start(&["--conf", "wal=off", "--conf", "spate.heartbeat.timeout=20s"]);
    let first = job.receiver_executor();
    signal(&first, "-STOP");
    std::thread::sleep(Duration::from_secs(4));
    signal(&first, "-CONT");
    let log = job.finish();
    assert!(
        !log.contains("executor lost"),
        "no executor was lost:\n{log}"
    );
    assert_eq!(
        receiver_pids(&log),
        [first],
        "the receiver stayed on its executor:\n{log}"
    );
}

// ---------------------------------------------------------------------------------------------
// What executors count reaches the driver's monitoring server.

/// An example job run as its own driver with its monitoring server on a free port.
fn monitored_job(program: &str, args: &[&str]) -> JobProcess {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    JobProcess::start(program, |_| {
        ["--log-level", "info", "--ui-port", &port.to_string()]
            .into_iter()
            .chain(args.iter().copied())
            .map(String::from)
            .collect()
    })
}

/// NetworkWordCount run with `args`, monitored, reading a socket of the test's: the job and
/// the connection its receiver made.
fn fed_word_count(args: &[&str]) -> (JobProcess, std::net::TcpStream) {
    let source = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = source.local_addr().unwrap().port().to_string();
    let args: Vec<&str> = args
        .iter()
        .copied()
        .chain(["127.0.0.1", port.as_str()])
        .collect();
    let mut job = monitored_job(env!("CARGO_BIN_EXE_network_word_count"), &args);
    source.set_nonblocking(true).unwrap();
    let mut conn = None;
    job.wait("the receiver to connect", |_| {
        conn = source.accept().ok().map(|(c, _)| c);
        conn.is_some()
    });
    let conn = conn.unwrap();
    conn.set_nonblocking(false).unwrap();
    (job, conn)
}

/// A socket receiver running on an executor skips lines that are not UTF-8 there; the driver's
/// monitoring server shows them (each cut brings the receiver's counts), where before it showed
/// none.
#[test]
fn what_a_receiver_on_an_executor_skips_is_shown_by_the_drivers_monitoring_server() {
    let (mut job, mut conn) = fed_word_count(&["--master", "local-cluster[2,1]"]);
    // Ten good lines and four that are not UTF-8, mixed.
    let mut sent = Vec::new();
    for i in 0..10 {
        sent.extend_from_slice(format!("good line {i}\n").as_bytes());
        if i % 3 == 0 {
            sent.extend_from_slice(b"bad \xff\xfe line\n");
        }
    }
    conn.write_all(&sent).unwrap();
    job.wait("the driver to show the skipped lines", |j| {
        let r = j.api("/api/receivers");
        r[0]["skipped"] == 4 && r[0]["records"] == 10
    });
    let log = job.log();
    assert_eq!(
        receiver_pids(&log).len(),
        1,
        "the receiver ran on an executor:\n{log}"
    );
    let metrics = spate_streaming::testing::http_get(job.ui().unwrap(), "/metrics").1;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("spate_receiver_records_skipped_total{") && l.ends_with(" 4")),
        "{metrics}"
    );
}

/// Receiver settings on a job's command line reach its receiver, on the driver (`local[2]`) or
/// on the executor the driver places it on (`local-cluster[2,1]`): with `spate.streaming.receiver.memoryFraction` a ten-thousandth of a 1 MiB store
/// (about 100 bytes), a receiver handed more than that waits for the batch holding what it has
/// to complete before it stores more, and says so in its count of waits for memory (the
/// default fraction of the default store, 0.8 of 1 GiB, never waits for these 60 KB). Every
/// line still arrives.
fn receiver_settings_on_the_command_line_reach_its_receiver(master: &str) {
    let (mut job, mut conn) = fed_word_count(&[
        "--master",
        master,
        "--conf",
        "spate.memory=1m",
        "--conf",
        "spate.streaming.receiver.memoryFraction=0.0001",
    ]);
    // In 30 pieces, 100 ms apart: a receiver waits only once its first block has told it what
    // a record takes, and only for what comes while earlier records are still unprocessed.
    let lines = 3000;
    for piece in 0..30 {
        let text: String = (0..100)
            .map(|i| format!("word{} line {piece}\n", i % 7))
            .collect();
        conn.write_all(text.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    job.wait("every line to arrive", |j| {
        j.api("/api/receivers")[0]["records"] == lines
    });
    let log = job.log();
    assert_eq!(
        receiver_pids(&log).len(),
        usize::from(master.starts_with("local-cluster")),
        "the receiver ran on an executor on a cluster only:\n{log}"
    );
    let receivers = job.api("/api/receivers");
    let waits = receivers[0]["memory_waits"].as_u64().unwrap_or(0);
    assert!(
        waits >= 1,
        "the receiver never waited for memory: {receivers}\n{log}"
    );
}

#[test]
fn receiver_settings_on_the_command_line_reach_a_receiver_on_the_driver() {
    receiver_settings_on_the_command_line_reach_its_receiver("local[2]");
}

#[test]
fn receiver_settings_on_the_command_line_reach_a_receiver_on_an_executor() {
    receiver_settings_on_the_command_line_reach_its_receiver("local-cluster[2,1]");
}

/// `--conf spate.streaming.receiver.writeAheadLog.enable=true` turns the log on for the job's
/// receiver, which needs a checkpoint directory: without one the job stops at start, saying how
/// to give it one, instead of running without the log it was asked for.
#[test]
fn a_write_ahead_log_asked_for_on_the_command_line_without_a_checkpoint_stops_the_job() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_network_word_count"))
        .args([
            "--no-ui",
            "--conf",
            "spate.streaming.receiver.writeAheadLog.enable=true",
            "127.0.0.1",
            "9",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the job did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success(), "{err}");
    assert!(
        err.contains("has the write-ahead log on, which needs a checkpoint directory")
            && err.contains("--checkpoint DIR"),
        "{err}"
    );
}

/// A file stream's tasks read its files on the executors, which count the lines they skip
/// there and send their counts with their heartbeats: the driver's `/api/inputs` shows them.
#[test]
fn what_a_file_streams_tasks_skip_on_executors_is_shown_by_the_drivers_monitoring_server() {
    let watched = tempfile::tempdir().unwrap();
    let dir = watched.path().to_str().unwrap().to_string();
    let mut job = monitored_job(
        env!("CARGO_BIN_EXE_file_word_count"),
        &["--master", "local-cluster[2,1]", &dir],
    );
    job.wait("the first batch", |j| {
        j.api("/api/batches")
            .as_array()
            .is_some_and(|b| !b.is_empty())
    });
    // Three files, five lines that are not UTF-8 between them, written aside and moved in.
    for (i, bad) in [1usize, 0, 4].into_iter().enumerate() {
        let mut text = Vec::new();
        for n in 0..20 {
            text.extend_from_slice(format!("file {i} line {n}\n").as_bytes());
            if n < bad {
                text.extend_from_slice(b"\xc3\x28 broken\n");
            }
        }
        let aside = watched.path().join(format!(".f{i}.tmp"));
        std::fs::write(&aside, text).unwrap();
        std::fs::rename(&aside, watched.path().join(format!("f{i}.txt"))).unwrap();
    }
    job.wait("the driver to show the executors' counts", |j| {
        let inputs = j.api("/api/inputs");
        inputs[0]["counters"]["records_skipped"] == 5 && inputs[0]["counters"]["files_read"] == 3
    });
    // The executors ran the batches' tasks (those reading the files among them).
    let tasks = job.api("/api/executors")["tasks"].as_u64().unwrap_or(0);
    assert!(tasks > 0, "{}", job.log());
}

// ---------------------------------------------------------------------------------------------
// A batch program (no streams) on a cluster: `shuffle_heavy`, five shuffles per job.

/// Runs `shuffle_heavy` on `master`, saving `rounds` rounds over `lines` lines under `out`, its
/// output in `log`.
fn shuffle_heavy(
    master: &str,
    out: &std::path::Path,
    rounds: u32,
    lines: u64,
    log: &std::path::Path,
) -> std::process::Child {
    let file = std::fs::File::create(log).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_shuffle_heavy"))
        .args(["--master", master])
        .arg(out)
        .args([rounds.to_string(), lines.to_string()])
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap()
}

/// Waits (bounded) for `child` to exit and returns whether it succeeded.
fn exits_ok(child: &mut std::process::Child, log: &std::path::Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "the program did not finish in 120 s:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The saved parts of `dir`, by file name.
fn parts(dir: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_shuffle_heavy_batch_program_saves_the_same_output_when_an_executor_is_killed() {
    use spate_examples::batch::shuffle_heavy::line;
    const LINES: u64 = 40_000;
    const ROUNDS: u32 = 4;
    let dir = tempfile::tempdir().unwrap();
    // The reference: one process, no failure.
    let (reference, reference_log) = (
        dir.path().join("reference"),
        dir.path().join("reference.log"),
    );
    let mut job = shuffle_heavy("local[2]", &reference, 1, LINES, &reference_log);
    assert!(
        exits_ok(&mut job, &reference_log),
        "{}",
        std::fs::read_to_string(&reference_log).unwrap()
    );
    let expected_parts = parts(&reference.join("round-0"));
    // Which is right: each word's count, first line and group size, recomputed from the input.
    let mut expected: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for i in 0..LINES {
        for w in line(i).split(' ') {
            let e = expected.entry(w.to_string()).or_insert((0, i));
            e.0 += 1;
        }
    }
    let mut got: Vec<String> = expected_parts
        .values()
        .flat_map(|p| p.lines().map(String::from))
        .collect();
    got.sort();
    let mut want: Vec<String> = expected
        .iter()
        .map(|(w, (c, f))| format!("{w} {c} {f} {c}"))
        .collect();
    want.sort();
    assert_eq!(got, want, "the reference run is right");

    // The cluster: an executor is killed once the first round is saved.
    let (out, log) = (dir.path().join("cluster"), dir.path().join("cluster.log"));
    let mut job = shuffle_heavy("local-cluster[3,1]", &out, ROUNDS, LINES, &log);
    let deadline = Instant::now() + Duration::from_secs(90);
    while !out.join("round-0/_SUCCESS").exists() {
        assert!(
            job.try_wait().unwrap().is_none(),
            "exited early:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        assert!(
            Instant::now() < deadline,
            "no round saved:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Into the second round (a debug build's round takes about 0.6 s here), so shuffle outputs
    // of a running job go down with the executor.
    std::thread::sleep(Duration::from_millis(150));
    support::kill_a_child_of(job.id());
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        exits_ok(&mut job, &log),
        "the driver failed:\n{}",
        log_text()
    );
    for round in 0..ROUNDS {
        assert_eq!(
            parts(&out.join(format!("round-{round}"))),
            expected_parts,
            "round {round}"
        );
    }
    let text = log_text();
    let summary = text
        .lines()
        .find(|l| l.contains("cluster: tasks run on executors"))
        .unwrap_or_else(|| panic!("no cluster summary:\n{text}"));
    eprintln!("{summary}");
    let recomputed = text
        .lines()
        .filter(|l| l.contains("shuffle output lost"))
        .count();
    eprintln!("lost shuffle outputs noticed {recomputed} time(s)");
    assert!(summary.contains("lost=1"), "{summary}");
    assert!(!summary.contains("tasks=0 "), "{summary}");
    // Nothing fell back to the driver: every failed task ran again on a live executor.
    assert!(
        !text.contains("computing it here") && !text.contains("running it here"),
        "{text}"
    );
}
