//! The testing harness: run an operation over batches of in-memory input with a manual clock and
//! collect what the final stream produced at each batch time.
//!
//! Input batch `i` becomes the RDD of time `(i + 1) × batch` (split into the chosen number of
//! partitions); batches past the end of the input are empty. The result holds one entry per time
//! at which the final stream produced an RDD, its partitions concatenated in order.
//!
//! ```
//! use spate_streaming::testing::run_operation;
//!
//! let out = run_operation(vec![vec![1, 2], vec![3]], |s| s.map(|x: i32| x * 10), 3);
//! assert_eq!(out, vec![vec![10, 20], vec![30], vec![]]);
//! ```

use crate::{Clock, DStream, ManualClock, StreamingContext, Time};
use spate_core::Data;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Settings of a harness run.
#[derive(Clone, Debug)]
pub struct Harness {
    /// The master (default `local[2]`).
    pub master: String,
    /// The batch duration (default 1 s).
    pub batch: Duration,
    /// Partitions per input batch (default 2).
    pub partitions: usize,
    /// A checkpoint directory (default: a fresh temporary directory, deleted afterwards).
    pub checkpoint_dir: Option<std::path::PathBuf>,
}

impl Default for Harness {
    fn default() -> Self {
        Harness {
            master: "local[2]".into(),
            batch: Duration::from_secs(1),
            partitions: 2,
            checkpoint_dir: None,
        }
    }
}

/// A stream over in-memory batches: batch `i` is the RDD of time `(i + 1) × batch`.
pub fn test_input_stream<T: Data>(
    ssc: &StreamingContext,
    input: Vec<Vec<T>>,
    partitions: usize,
) -> DStream<T> {
    let batch = ssc.batch_duration().as_millis() as u64;
    let ctx = ssc.context().clone();
    let input = Arc::new(input);
    let counts = input.clone();
    ssc.input_stream(
        "test_input",
        move |t| {
            let i = (t.ms() / batch) as usize;
            let data = i
                .checked_sub(1)
                .and_then(|i| input.get(i))
                .cloned()
                .unwrap_or_default();
            Ok(Some(ctx.parallelize(data, partitions)))
        },
        Some(Box::new(move |t| {
            let i = (t.ms() / batch) as usize;
            Some(
                i.checked_sub(1)
                    .and_then(|i| counts.get(i))
                    .map_or(0, |b| b.len() as u64),
            )
        })),
    )
}

impl Harness {
    /// Runs `operation` on one input stream for `num_batches` batches.
    pub fn run<T: Data, U: Data>(
        &self,
        input: Vec<Vec<T>>,
        operation: impl FnOnce(DStream<T>) -> DStream<U>,
        num_batches: usize,
    ) -> Vec<Vec<U>> {
        self.run_with(num_batches, |ssc| {
            operation(test_input_stream(ssc, input, self.partitions))
        })
    }

    /// Runs `operation` on two input streams for `num_batches` batches.
    pub fn run2<T: Data, U: Data, V: Data>(
        &self,
        input1: Vec<Vec<T>>,
        input2: Vec<Vec<U>>,
        operation: impl FnOnce(DStream<T>, DStream<U>) -> DStream<V>,
        num_batches: usize,
    ) -> Vec<Vec<V>> {
        self.run_with(num_batches, |ssc| {
            let a = test_input_stream(ssc, input1, self.partitions);
            let b = test_input_stream(ssc, input2, self.partitions);
            operation(a, b)
        })
    }

    /// Builds a graph with `build` on a fresh manual-clock context, runs `num_batches` batches and
    /// returns what the stream `build` returned produced, per time. Panics (this is a test
    /// helper) if the graph is invalid or a batch fails or does not complete within a minute.
    pub fn run_with<U: Data>(
        &self,
        num_batches: usize,
        build: impl FnOnce(&StreamingContext) -> DStream<U>,
    ) -> Vec<Vec<U>> {
        self.run_timed(num_batches, build)
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    /// Like [`run_with`](Self::run_with), with each output's batch time.
    pub fn run_timed<U: Data>(
        &self,
        num_batches: usize,
        build: impl FnOnce(&StreamingContext) -> DStream<U>,
    ) -> Vec<(Time, Vec<U>)> {
        let ssc = StreamingContext::new(&self.master, self.batch).expect("valid master and batch");
        let clock = ManualClock::new(0);
        ssc.set_clock(Clock::Manual(clock.clone()))
            .expect("before start");
        let tmp = tempfile::tempdir().expect("temporary directory");
        let dir = self
            .checkpoint_dir
            .clone()
            .unwrap_or_else(|| tmp.path().to_path_buf());
        ssc.checkpoint(dir).expect("checkpoint directory");
        let out = build(&ssc);
        let results: Arc<Mutex<Vec<(Time, Vec<U>)>>> = Arc::default();
        let r = results.clone();
        out.foreach_rdd(move |rdd, t| {
            let v = rdd.collect()?;
            r.lock().unwrap_or_else(|e| e.into_inner()).push((t, v));
            Ok(())
        });
        if let Err(e) = ssc.start() {
            panic!("{e}");
        }
        for _ in 0..num_batches {
            clock.advance(self.batch);
        }
        let last = Time::from_ms(self.batch.as_millis() as u64 * num_batches as u64);
        let done = num_batches == 0 || ssc.wait_for_batch(last, Duration::from_secs(60));
        let failures: Vec<String> = ssc
            .completed_batches()
            .into_iter()
            .filter_map(|b| b.failure)
            .collect();
        ssc.stop(false);
        assert!(done, "batch {last} did not complete within a minute");
        assert!(failures.is_empty(), "batches failed: {failures:?}");
        let mut results = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
        results.sort_by_key(|(t, _)| *t);
        results
    }
}

/// Runs `operation` over `input` for `num_batches` one-second batches on `local[2]` with a manual
/// clock (input batches split into 2 partitions); see the [module docs](self).
pub fn run_operation<T: Data, U: Data>(
    input: Vec<Vec<T>>,
    operation: impl FnOnce(DStream<T>) -> DStream<U>,
    num_batches: usize,
) -> Vec<Vec<U>> {
    Harness::default().run(input, operation, num_batches)
}

/// Runs a two-input `operation`; see [`run_operation`].
pub fn run_operation2<T: Data, U: Data, V: Data>(
    input1: Vec<Vec<T>>,
    input2: Vec<Vec<U>>,
    operation: impl FnOnce(DStream<T>, DStream<U>) -> DStream<V>,
    num_batches: usize,
) -> Vec<Vec<V>> {
    Harness::default().run2(input1, input2, operation, num_batches)
}

/// A receiver fed by hand, for tests of receiver streams: each vector a [`Feeder`] sends is
/// stored with [`store_reliably`](crate::ReceiverContext::store_reliably) (in the block manager,
/// and in the write-ahead log when it is on) before [`Feeder::send`] returns.
pub struct FedReceiver<T> {
    feed: std::sync::mpsc::Receiver<Vec<T>>,
    acks: std::sync::mpsc::Sender<()>,
    name: String,
}

/// The test's end of a [`FedReceiver`].
pub struct Feeder<T> {
    feed: std::sync::mpsc::Sender<Vec<T>>,
    acks: std::sync::mpsc::Receiver<()>,
}

/// A [`FedReceiver`] named `name` (as [`ReceiverInfo`](crate::ReceiverInfo) shows it) and its
/// [`Feeder`].
pub fn fed_receiver<T: Data>(name: &str) -> (FedReceiver<T>, Feeder<T>) {
    let (feed_tx, feed) = std::sync::mpsc::channel();
    let (acks, acks_rx) = std::sync::mpsc::channel();
    (
        FedReceiver {
            feed,
            acks,
            name: name.to_string(),
        },
        Feeder {
            feed: feed_tx,
            acks: acks_rx,
        },
    )
}

impl<T: Data> Feeder<T> {
    /// Hands `records` to the receiver and waits (up to 30 s) until they are stored; returns
    /// whether they were.
    pub fn send(&self, records: Vec<T>) -> bool {
        self.feed.send(records).is_ok() && self.acks.recv_timeout(Duration::from_secs(30)).is_ok()
    }
}

impl<T: Data> crate::Receiver<T> for FedReceiver<T> {
    fn receive(
        &mut self,
        ctx: &crate::ReceiverContext<T>,
    ) -> std::result::Result<(), crate::ReceiverError> {
        while !ctx.is_stopped() {
            if let Ok(records) = self.feed.recv_timeout(Duration::from_millis(5)) {
                ctx.store_reliably(records)?;
                let _ = self.acks.send(());
            }
        }
        Ok(())
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

/// `GET path` over plain HTTP/1.1 (`Connection: close`), for tests of the monitoring server;
/// returns the status code and the body (chunked encoding undone). Panics on a broken
/// response, as tests want.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    try_http_get(addr, path).expect("an HTTP response")
}

/// The value of the sample `name` (the metric with its labels, as written) in a `/metrics`
/// text; `None` if there is no such sample. Panics (a test helper) on a value that is not a
/// number.
pub fn metric_sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .map(|v| v.parse().expect("a sample's value is a number"))
}

/// [`http_get`] for callers that wait for a server to come up: a refused connection or a
/// broken response is an error.
pub fn try_http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Error, Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| Error::other(format!("GET {path}: no headers and body")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Error::other(format!("GET {path}: no status code")))?;
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok((status, body.to_string()));
    }
    let (mut out, mut rest) = (String::new(), body);
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    Ok((status, out))
}
