//! `cargo xtask loadgen`: a TCP server that sends newline-terminated text lines at a fixed rate.
//!
//! Lines are ~97 bytes: 16 words drawn from a 10,000-word vocabulary with Zipf-like frequencies,
//! generated deterministically from a seed into a buffer before any client connects, so sending
//! costs little CPU. Sending is paced against the wall clock; the achieved rate is reported every
//! second on stderr. Every run is bounded: by `--seconds` (default 60) and optionally `--lines`.
//!
//! With `--replay` it speaks the socket receiver's replay protocol (`SocketConfig::replay`): a
//! client's first line is `FROM <n>` and it is sent the stream from line `n` on, so a receiver
//! that moves to another process after a crash gets again what its predecessor had not handed
//! over. Pacing keeps its origin across connections (the backlog is sent as fast as it is read).

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Settings of the generator.
#[derive(Clone, Debug)]
pub(crate) struct LoadgenArgs {
    pub(crate) port: u16,
    pub(crate) rate: u64,
    pub(crate) seconds: u64,
    pub(crate) lines: Option<u64>,
    pub(crate) seed: u64,
    /// No progress reports (when run inside the benchmark).
    pub(crate) quiet: bool,
    /// Speak the replay protocol (`FROM <n>` from every client).
    pub(crate) replay: bool,
}

impl LoadgenArgs {
    pub(crate) fn parse(args: &[String]) -> Result<LoadgenArgs> {
        let mut a = LoadgenArgs {
            port: 9999,
            rate: 100_000,
            seconds: 60,
            lines: None,
            seed: 42,
            quiet: false,
            replay: false,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--port" => a.port = value()?.parse().context("--port")?,
                "--rate" => a.rate = value()?.parse().context("--rate")?,
                "--seconds" => a.seconds = value()?.parse().context("--seconds")?,
                "--lines" => a.lines = Some(value()?.parse().context("--lines")?),
                "--seed" => a.seed = value()?.parse().context("--seed")?,
                "--replay" => a.replay = true,
                other => bail!(
                    "unknown loadgen option {other}; options: --port --rate --seconds --lines --seed --replay (cargo xtask help)"
                ),
            }
        }
        if a.rate == 0 {
            bail!("--rate must be positive");
        }
        Ok(a)
    }
}

/// xorshift64*: small, fast and deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The vocabulary: 10,000 distinct lowercase words of 2–8 letters.
pub(crate) fn vocabulary(seed: u64) -> Vec<String> {
    let mut rng = Rng(seed | 1);
    let mut seen = std::collections::HashSet::new();
    let mut words = Vec::with_capacity(10_000);
    while words.len() < 10_000 {
        let len = 2 + (rng.next() % 7) as usize;
        let w: String = (0..len)
            .map(|_| (b'a' + (rng.next() % 26) as u8) as char)
            .collect();
        if seen.insert(w.clone()) {
            words.push(w);
        }
    }
    words
}

/// `count` lines of 16 words, word ranks drawn with Zipf-like (1/rank) frequencies.
pub(crate) fn lines(seed: u64, count: usize) -> Vec<String> {
    let vocab = vocabulary(seed);
    // Inverse-CDF sampling of 1/rank over 10,000 ranks: rank = n^u, roughly.
    let mut rng = Rng(seed.wrapping_mul(31) | 1);
    (0..count)
        .map(|_| {
            (0..16)
                .map(|_| {
                    let rank = (10_000f64.powf(rng.unit()) as usize).clamp(1, 10_000) - 1;
                    vocab[rank].as_str()
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The pre-built send buffer and the byte offset where each line starts.
pub(crate) struct Buffer {
    bytes: Vec<u8>,
    starts: Vec<usize>,
}

pub(crate) fn buffer(seed: u64) -> Buffer {
    let mut bytes = Vec::new();
    let mut starts = Vec::new();
    for l in lines(seed, 100_000) {
        starts.push(bytes.len());
        bytes.extend_from_slice(l.as_bytes());
        bytes.push(b'\n');
    }
    starts.push(bytes.len());
    Buffer { bytes, starts }
}

/// Sends lines `[from, from + n)` of the (cyclic) buffer.
fn send(stream: &mut TcpStream, buf: &Buffer, from: u64, n: u64) -> std::io::Result<()> {
    let total = (buf.starts.len() - 1) as u64;
    let mut done = 0;
    while done < n {
        let i = ((from + done) % total) as usize;
        let k = (n - done).min(total - i as u64) as usize;
        stream.write_all(&buf.bytes[buf.starts[i]..buf.starts[i + k]])?;
        done += k as u64;
    }
    Ok(())
}

/// Sends the stream to one client, paced from now; returns the lines sent.
/// The benchmarks' load server: listens on a free loopback port and sends `buf` at `rate` lines/s
/// for `seconds` to its first client, quietly. Returns the port and a thread that yields the
/// lines sent and how long sending took (seconds).
pub(crate) fn serve_one(
    rate: u64,
    seconds: u64,
    buf: &std::sync::Arc<Buffer>,
) -> Result<(u16, std::thread::JoinHandle<Result<(u64, f64)>>)> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let port = listener.local_addr()?.port();
    let buf = buf.clone();
    let server = std::thread::spawn(move || -> Result<(u64, f64)> {
        let (stream, _) = listener.accept()?;
        let start = Instant::now();
        let args = LoadgenArgs {
            port,
            rate,
            seconds,
            lines: None,
            seed: 42,
            quiet: true,
            replay: false,
        };
        let sent = serve(stream, &args, &buf)?;
        Ok((sent, start.elapsed().as_secs_f64()))
    });
    Ok((port, server))
}

pub(crate) fn serve(stream: TcpStream, args: &LoadgenArgs, buf: &Buffer) -> Result<u64> {
    serve_from(stream, args, buf, Instant::now(), 0)
}

/// Sends lines `from..` to one client, paced as if sending had begun at `start` (line `i` is due
/// at `start + i / rate`); returns the number of the line after the last one sent.
fn serve_from(
    mut stream: TcpStream,
    args: &LoadgenArgs,
    buf: &Buffer,
    start: Instant,
    from: u64,
) -> Result<u64> {
    stream.set_nodelay(true).ok();
    let deadline = start + Duration::from_secs(args.seconds);
    let mut sent = from;
    let mut last_report = start;
    let mut sent_at_report = 0u64;
    let quiet = args.quiet;
    // Lines go out in bursts of at least a millisecond's worth. Sending whatever was due as soon
    // as anything was made the writes tiny: a write of a few lines took longer than the next line
    // took to come due, so the loop never slept, and at 1M lines/s it made 138,000 writes a
    // second (700 bytes each) and the receiver 32,000 reads, half a core of system time between
    // them for 97 MB/s.
    let burst = (args.rate / 1000).max(1);
    while Instant::now() < deadline && args.lines.is_none_or(|l| sent < l) {
        let due = (start.elapsed().as_secs_f64() * args.rate as f64) as u64;
        let due = args.lines.map_or(due, |l| due.min(l));
        if due >= sent + burst || (due > sent && args.lines == Some(due)) {
            // At most 50 ms worth per write, so pacing stays smooth after a stall.
            let n = (due - sent).min((args.rate / 20).max(1));
            if let Err(e) = send(&mut stream, buf, sent, n) {
                if !quiet {
                    eprintln!("loadgen: client went away after {sent} lines: {e}");
                }
                return Ok(sent);
            }
            sent += n;
        } else {
            std::thread::sleep(Duration::from_micros(500));
        }
        if !quiet && last_report.elapsed() >= Duration::from_secs(1) {
            let rate = (sent - sent_at_report) as f64 / last_report.elapsed().as_secs_f64();
            eprintln!(
                "loadgen: {rate:.0} lines/s (target {}), {sent} lines sent",
                args.rate
            );
            last_report = Instant::now();
            sent_at_report = sent;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if !quiet {
        eprintln!(
            "loadgen: done: {sent} lines in {secs:.2} s = {:.0} lines/s",
            sent as f64 / secs
        );
    }
    if args.replay {
        // A replaying source keeps the connection open once everything is sent (the end of the
        // stream is not the end of the job) until the client leaves or time is up.
        stream.set_read_timeout(Some(Duration::from_millis(100)))?;
        let mut byte = [0u8; 1];
        while Instant::now() < deadline {
            match std::io::Read::read(&mut stream, &mut byte) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
    }
    Ok(sent)
}

/// Reads a replaying client's `FROM <n>` line.
fn read_from_line(stream: &TcpStream) -> Result<u64> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stream), &mut line)?;
    stream.set_read_timeout(None)?;
    line.trim()
        .strip_prefix("FROM ")
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("expected `FROM <n>` from a replaying client, got {line:?}"))
}

/// Serves clients one after another on `listener` until `args.seconds` have passed since `start`
/// or `stop` is set: with `args.replay` each from the line it asks for (`FROM <n>`), paced from
/// `start`; otherwise each from the beginning, paced from its connection. Returns the highest
/// line number sent.
pub(crate) fn serve_clients(
    listener: &TcpListener,
    args: &LoadgenArgs,
    buf: &Buffer,
    start: Instant,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<u64> {
    let end = start + Duration::from_secs(args.seconds);
    listener.set_nonblocking(true)?;
    let mut high = 0u64;
    while Instant::now() < end && !stop.load(std::sync::atomic::Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, peer)) => {
                stream.set_nonblocking(false)?;
                if !args.replay {
                    // A plain client gets the stream from its beginning, paced from now.
                    if !args.quiet {
                        eprintln!("loadgen: client {peer} connected");
                    }
                    let remaining = end.saturating_duration_since(Instant::now()).as_secs();
                    let args = LoadgenArgs {
                        seconds: remaining.max(1),
                        ..args.clone()
                    };
                    high = high.max(serve(stream, &args, buf)?);
                    continue;
                }
                let from = match read_from_line(&stream) {
                    Ok(n) => n,
                    Err(e) => {
                        eprintln!("loadgen: client {peer}: {e:#}");
                        continue;
                    }
                };
                if !args.quiet {
                    eprintln!("loadgen: client {peer} connected, sending from line {from}");
                }
                high = high.max(serve_from(stream, args, buf, start, from)?);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(high)
}

/// Runs the generator: serves clients one after another until the time budget is spent.
pub(crate) fn run(args: &LoadgenArgs) -> Result<()> {
    let buf = buffer(args.seed);
    let listener = TcpListener::bind(("127.0.0.1", args.port))
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    eprintln!(
        "loadgen: serving {} lines/s of ~{} bytes on 127.0.0.1:{} for up to {} s{}",
        args.rate,
        buf.bytes.len() / (buf.starts.len() - 1),
        args.port,
        args.seconds,
        if args.replay {
            " (replay protocol)"
        } else {
            ""
        }
    );
    let stop = std::sync::atomic::AtomicBool::new(false);
    serve_clients(&listener, args, &buf, Instant::now(), &stop)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn lines_are_deterministic_and_about_97_bytes() {
        let a = lines(7, 2000);
        assert_eq!(a, lines(7, 2000));
        let avg = a.iter().map(|l| l.len() + 1).sum::<usize>() as f64 / a.len() as f64;
        assert!((85.0..110.0).contains(&avg), "average line length {avg}");
        assert!(a.iter().all(|l| l.split(' ').count() == 16));
    }

    #[test]
    fn sends_exactly_the_requested_lines_over_loopback() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let reader = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut all = String::new();
            s.read_to_string(&mut all).unwrap();
            all
        });
        let args = LoadgenArgs {
            port,
            rate: 1_000_000,
            seconds: 30,
            lines: Some(250_000),
            seed: 3,
            quiet: true,
            replay: false,
        };
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let sent = serve(stream, &args, &buffer(3)).unwrap();
        let text = reader.join().unwrap();
        assert_eq!(sent, 250_000);
        assert_eq!(text.lines().count(), 250_000);
        let expected = lines(3, 100_000);
        assert_eq!(
            text.lines().nth(100_001).unwrap(),
            expected[1],
            "the buffer repeats"
        );
    }

    #[test]
    fn a_replaying_client_gets_the_stream_from_the_line_it_asks_for() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let args = LoadgenArgs {
            port,
            rate: 1_000_000,
            seconds: 30,
            lines: Some(20),
            seed: 3,
            quiet: true,
            replay: true,
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let server = std::thread::spawn(move || {
            serve_clients(&listener, &args, &buffer(3), Instant::now(), &s).unwrap()
        });
        let expected = lines(3, 20);
        // A first client reads a few lines and goes away; the next asks to resume at line 5.
        for from in [0usize, 5] {
            let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            c.write_all(format!("FROM {from}\n").as_bytes()).unwrap();
            let mut r = std::io::BufReader::new(c);
            let mut got = Vec::new();
            for _ in from..20 {
                let mut l = String::new();
                std::io::BufRead::read_line(&mut r, &mut l).unwrap();
                got.push(l.trim_end().to_string());
            }
            assert_eq!(got, expected[from..], "client starting at line {from}");
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        assert_eq!(server.join().unwrap(), 20);
    }
}
