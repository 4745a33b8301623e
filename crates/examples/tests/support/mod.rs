//! Test support shared by the process tests: a replayable line server and its lines.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Line `i` of the test input: a few words from small vocabularies, so counts repeat.
pub fn line(i: u64) -> String {
    format!("w{} v{} u{}", i % 17, (i * 7) % 23, (i * 13) % 5)
}

/// A line server that can replay: a client's first line is `FROM <n>`, and it is sent lines
/// `n..total` at about `rate` lines per second, then the connection stays open and idle.
pub struct ReplayServer {
    /// The port it listens on (loopback).
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReplayServer {
    /// Serves lines `0..total` at about `rate` lines per second.
    pub fn start(total: u64, rate: u64) -> ReplayServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.set_nonblocking(true).expect("non-blocking accept");
        let port = listener.local_addr().expect("an address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(300);
            while !s.load(Ordering::Acquire) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let s = s.clone();
                        std::thread::spawn(move || serve(conn, total, rate, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        ReplayServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, total: u64, rate: u64, stop: &AtomicBool) {
    conn.set_nonblocking(false).ok();
    let mut first = String::new();
    if BufReader::new(conn.try_clone().expect("a handle"))
        .read_line(&mut first)
        .is_err()
    {
        return;
    }
    let Some(from) = first
        .trim()
        .strip_prefix("FROM ")
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return;
    };
    let mut conn = conn;
    let per_tick = (rate / 100).max(1);
    let mut i = from;
    while i < total && !stop.load(Ordering::Acquire) {
        let end = (i + per_tick).min(total);
        let chunk: String = (i..end).map(|j| line(j) + "\n").collect();
        if conn.write_all(chunk.as_bytes()).is_err() {
            return; // the job died: it will ask again
        }
        i = end;
        std::thread::sleep(Duration::from_millis(10));
    }
    // Keep the connection open (a closed one would make the receiver reconnect in a loop).
    let mut buf = [0u8; 64];
    conn.set_read_timeout(Some(Duration::from_millis(50))).ok();
    while !stop.load(Ordering::Acquire) {
        match std::io::Read::read(&mut conn, &mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// The saved outputs named `name` under `out`: batch time → the sorted lines of all parts.
pub fn outputs(out: &Path, name: &str) -> BTreeMap<u64, Vec<String>> {
    let mut found = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(out) else {
        return found;
    };
    for e in entries.flatten() {
        let file_name = e.file_name().to_string_lossy().into_owned();
        let Some(time) = file_name
            .strip_prefix(&format!("{name}-"))
            .and_then(|r| r.strip_suffix(".txt"))
            .and_then(|t| t.parse::<u64>().ok())
        else {
            continue;
        };
        let mut lines = Vec::new();
        let mut parts: Vec<PathBuf> = std::fs::read_dir(e.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|p| p.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
            })
            .collect();
        parts.sort();
        for p in parts {
            let text = std::fs::read_to_string(&p).expect("a part file");
            lines.extend(text.lines().map(String::from));
        }
        lines.sort();
        found.insert(time, lines);
    }
    found
}

/// Parses `(word,count)` lines into a map.
pub fn counts(lines: &[String]) -> BTreeMap<String, u64> {
    lines
        .iter()
        .map(|l| {
            let inner = l.trim_start_matches('(').trim_end_matches(')');
            let (w, n) = inner.rsplit_once(',').expect("a (word,count) line");
            (w.to_string(), n.trim().parse().expect("a count"))
        })
        .collect()
}

pub fn word_counts<'a>(lines: impl IntoIterator<Item = &'a String>) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in lines {
        for w in l.split_whitespace() {
            *m.entry(w.to_string()).or_default() += 1;
        }
    }
    m
}

/// Kills one child process of `parent` (an executor of a `local-cluster` driver) with SIGKILL.
pub fn kill_a_child_of(parent: u32) {
    let children = std::process::Command::new("pgrep")
        .args(["-P", &parent.to_string()])
        .output()
        .expect("pgrep runs");
    let pids = String::from_utf8_lossy(&children.stdout).into_owned();
    let victim = pids
        .lines()
        .next()
        .expect("executor processes")
        .trim()
        .to_string();
    let killed = std::process::Command::new("kill")
        .args(["-9", &victim])
        .status()
        .expect("kill runs");
    assert!(killed.success(), "kill -9 {victim} failed");
}

/// Checks the recoverable socket job's outputs under `out` against a recomputation from its
/// saved per-batch input: the inputs hold lines `0..total` exactly once between them, and for
/// every batch its line count, word counts, window of `window_batches` batches (`batch_ms`
/// apart, zero counts dropped) and running totals are what that input makes them. Returns the
/// number of batches checked.
pub fn check_socket_outputs(out: &Path, total: u64, batch_ms: u64, window_batches: u64) -> usize {
    let inputs = outputs(out, "input");
    let mut seen: Vec<String> = inputs.values().flatten().cloned().collect();
    seen.sort();
    let mut sent: Vec<String> = (0..total).map(line).collect();
    sent.sort();
    assert!(
        seen == sent,
        "the batches' inputs are not the lines sent, each once: {} lines in the inputs, {total} sent",
        seen.len()
    );
    let times: Vec<u64> = inputs.keys().copied().collect();
    assert!(
        times.windows(2).all(|w| w[1] - w[0] == batch_ms),
        "batch times have gaps: {times:?}"
    );
    let per_batch: BTreeMap<u64, BTreeMap<String, u64>> = inputs
        .iter()
        .map(|(t, lines)| (*t, word_counts(lines)))
        .collect();
    let (lines_out, counts_out, window_out, totals_out) = (
        outputs(out, "lines"),
        outputs(out, "counts"),
        outputs(out, "window"),
        outputs(out, "totals"),
    );
    let mut running: BTreeMap<String, u64> = BTreeMap::new();
    for (&t, input) in &inputs {
        let got = |m: &BTreeMap<u64, Vec<String>>, what: &str| -> Vec<String> {
            m.get(&t)
                .unwrap_or_else(|| panic!("batch {t} has input but no {what} output"))
                .clone()
        };
        assert_eq!(
            got(&lines_out, "lines"),
            vec![input.len().to_string()],
            "line count of batch {t}"
        );
        let counts = &per_batch[&t];
        assert_eq!(
            &self::counts(&got(&counts_out, "counts")),
            counts,
            "word counts of batch {t}"
        );
        let mut window: BTreeMap<String, u64> = BTreeMap::new();
        for (_, c) in per_batch.range(t.saturating_sub((window_batches - 1) * batch_ms)..=t) {
            for (w, n) in c {
                *window.entry(w.clone()).or_default() += n;
            }
        }
        assert_eq!(
            self::counts(&got(&window_out, "window")),
            window,
            "window of batch {t}"
        );
        for (w, n) in counts {
            *running.entry(w.clone()).or_default() += n;
        }
        assert_eq!(
            self::counts(&got(&totals_out, "totals")),
            running,
            "running totals at batch {t}"
        );
    }
    inputs.len()
}
