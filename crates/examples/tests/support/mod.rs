//! Test support shared by the process tests: a replayable line server and its lines.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
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
