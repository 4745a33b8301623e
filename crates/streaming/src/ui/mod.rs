//! Monitoring: a small HTTP server in the driver with a live page (operator graph, receivers,
//! input streams' counters, charts of the last batches), JSON APIs and Prometheus metrics.
//!
//! Everything about batches and receivers comes from one [`Monitor`], a [`StreamingListener`]
//! registered on the context: there is no second bookkeeping path for them. Counters that live
//! elsewhere are read at each request instead: the block manager's, and those input streams
//! report ([`InputCounters`](crate::InputCounters): a file stream's skipped lines, a direct
//! Kafka stream's lost records), which change inside tasks, between batches, and reach no
//! listener. The server is axum on a single-threaded tokio runtime in a thread of its own,
//! started by [`StreamingContext::start_ui`] and stopped when its [`UiHandle`] is dropped.
//!
//! Routes: `/` (the page; it reloads itself every two seconds), `/api/batches`,
//! `/api/receivers`, `/api/inputs`, `/api/graph`, `/api/executors` (JSON), `/metrics`
//! (Prometheus text format 0.0.4).

mod metrics;
mod page;

use crate::{BatchInfo, ReceiverInfo, StreamingContext, StreamingListener};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

/// How many completed batches the monitor keeps for the page and `/api/batches`.
const KEEP_BATCHES: usize = 1000;

/// Upper bounds (seconds) of the delay histograms' buckets.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A Prometheus-style histogram of durations in seconds.
#[derive(Clone, Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (c, b) in self.counts.iter_mut().zip(BUCKETS) {
            if secs <= b {
                *c += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }
}

/// One batch as the JSON API shows it (times in ms since the epoch of the clock; delays in ms).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BatchView {
    /// The batch time.
    pub batch_time_ms: u64,
    /// When its jobs were generated.
    pub submission_time_ms: u64,
    /// When processing started.
    pub processing_start_ms: Option<u64>,
    /// When processing ended.
    pub processing_end_ms: Option<u64>,
    /// Records of all inputs.
    pub records: u64,
    /// Records by input stream id.
    pub input_records: BTreeMap<usize, u64>,
    /// Batch time to processing start.
    pub scheduling_delay_ms: Option<u64>,
    /// Processing start to end.
    pub processing_delay_ms: Option<u64>,
    /// Batch time to processing end.
    pub total_delay_ms: Option<u64>,
    /// Output operations run.
    pub output_operations: usize,
    /// The first failure, if any.
    pub failure: Option<String>,
}

impl From<&BatchInfo> for BatchView {
    fn from(b: &BatchInfo) -> BatchView {
        let ms = |d: std::time::Duration| d.as_millis() as u64;
        BatchView {
            batch_time_ms: b.batch_time.ms(),
            submission_time_ms: b.submission_time.ms(),
            processing_start_ms: b.processing_start.map(|t| t.ms()),
            processing_end_ms: b.processing_end.map(|t| t.ms()),
            records: b.records,
            input_records: b.input_records.iter().copied().collect(),
            scheduling_delay_ms: b.scheduling_delay().map(ms),
            processing_delay_ms: b.processing_delay().map(ms),
            total_delay_ms: b.total_delay().map(ms),
            output_operations: b.output_operations,
            failure: b.failure.clone(),
        }
    }
}

/// One receiver as the JSON API shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ReceiverView {
    /// The input stream id.
    pub stream: usize,
    /// The receiver's name.
    pub name: String,
    /// `running`, `restarting` (after an error) or `stopped`.
    pub state: &'static str,
    /// Records of this stream in completed batches.
    pub records: u64,
    /// Records per second over the last ten completed batches.
    pub rate: f64,
    /// Malformed records skipped (the monitoring server reads it when asked; a [`Monitor`] on
    /// its own has it as of the receiver's last event). For a receiver on an executor, as of
    /// the last batch's cut.
    pub skipped: u64,
    /// Restarts, in place or moved to another executor (read as `skipped` is).
    pub restarts: u64,
    /// The most records it has had received and not yet taken by a batch (read as `skipped`
    /// is): how close it came to its queue bound.
    pub max_queued: u64,
    /// Times it waited for batches to complete because its unprocessed records filled its
    /// memory fraction (read as `skipped` is): back-pressure at work.
    pub memory_waits: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
}

/// One input stream's reported counters, as `/api/inputs` shows them (see
/// [`InputCounters`](crate::InputCounters)).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct InputView {
    /// The input stream id (the `stream` label of its metrics).
    pub stream: usize,
    /// The operation that made it (`file_stream`, `direct_kafka_stream`, a custom name).
    pub name: String,
    /// Where it is in the source.
    pub location: String,
    /// Each counter's value so far, by name.
    pub counters: BTreeMap<String, u64>,
}

impl From<&crate::counters::InputSnapshot> for InputView {
    fn from(s: &crate::counters::InputSnapshot) -> InputView {
        InputView {
            stream: s.stream,
            name: s.name.clone(),
            location: s.call_site.clone(),
            counters: s
                .counters
                .iter()
                .map(|(name, _, value)| (name.to_string(), *value))
                .collect(),
        }
    }
}

#[derive(Default)]
struct State {
    batches: VecDeque<BatchInfo>,
    completed: u64,
    failed: u64,
    total: Histogram,
    scheduling: Histogram,
    processing: Histogram,
    /// Records by input stream over all completed batches.
    records: BTreeMap<usize, u64>,
    /// The latest event of each receiver, by stream id.
    receivers: BTreeMap<usize, (ReceiverInfo, &'static str)>,
}

/// The listener that feeds the page, the APIs and the metrics.
pub struct Monitor {
    batch_ms: u64,
    state: Mutex<State>,
}

impl Monitor {
    fn new(batch_ms: u64) -> Monitor {
        Monitor {
            batch_ms,
            state: Mutex::new(State::default()),
        }
    }

    /// The completed batches kept, oldest first.
    pub fn batches(&self) -> Vec<BatchView> {
        self.state
            .lock()
            .batches
            .iter()
            .map(BatchView::from)
            .collect()
    }

    /// Every receiver that reported an event.
    pub fn receivers(&self) -> Vec<ReceiverView> {
        let st = self.state.lock();
        let recent: Vec<&BatchInfo> = st.batches.iter().rev().take(10).collect();
        let span_s = (recent.len() as f64 * self.batch_ms as f64 / 1000.0).max(1e-9);
        st.receivers
            .iter()
            .map(|(stream, (info, state))| {
                let recent_records: u64 = recent
                    .iter()
                    .flat_map(|b| b.input_records.iter())
                    .filter(|(s, _)| s == stream)
                    .map(|(_, r)| r)
                    .sum();
                ReceiverView {
                    stream: *stream,
                    name: info.name.clone(),
                    state,
                    records: st.records.get(stream).copied().unwrap_or(0),
                    rate: if recent.is_empty() {
                        0.0
                    } else {
                        recent_records as f64 / span_s
                    },
                    skipped: info.skipped,
                    restarts: info.restarts,
                    max_queued: info.max_queued,
                    memory_waits: info.memory_waits,
                    last_error: info.last_error.clone(),
                }
            })
            .collect()
    }

    /// Takes the receivers' counts from `live` (the context's [`receiver_info`]
    /// (crate::StreamingContext::receiver_info), read now): a receiver skips records and a
    /// remote one's counts arrive with its cuts, with no event in between.
    fn refresh_counts(&self, live: &[ReceiverInfo]) {
        let mut st = self.state.lock();
        for now in live {
            if let Some((info, _)) = st.receivers.get_mut(&now.stream) {
                info.skipped = now.skipped;
                info.restarts = now.restarts;
                info.max_queued = now.max_queued;
                info.memory_waits = now.memory_waits;
                info.last_error.clone_from(&now.last_error);
            }
        }
    }

    fn receiver_event(&self, info: &ReceiverInfo, state: &'static str) {
        self.state
            .lock()
            .receivers
            .insert(info.stream, (info.clone(), state));
    }
}

impl StreamingListener for Monitor {
    fn on_batch_completed(&self, info: &BatchInfo) {
        let mut st = self.state.lock();
        if info.failure.is_some() {
            st.failed += 1;
        } else {
            st.completed += 1;
        }
        if let Some(d) = info.total_delay() {
            st.total.observe(d.as_secs_f64());
        }
        if let Some(d) = info.scheduling_delay() {
            st.scheduling.observe(d.as_secs_f64());
        }
        if let Some(d) = info.processing_delay() {
            st.processing.observe(d.as_secs_f64());
        }
        for (stream, n) in &info.input_records {
            *st.records.entry(*stream).or_default() += n;
        }
        st.batches.push_back(info.clone());
        while st.batches.len() > KEEP_BATCHES {
            st.batches.pop_front();
        }
    }

    fn on_receiver_started(&self, info: &ReceiverInfo) {
        self.receiver_event(info, "running");
    }

    fn on_receiver_error(&self, info: &ReceiverInfo) {
        self.receiver_event(info, "restarting");
    }

    fn on_receiver_stopped(&self, info: &ReceiverInfo) {
        self.receiver_event(info, "stopped");
    }
}

/// One operator of `/api/graph`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct OperatorView {
    /// The operator's id (static id for a `#[streaming_job]`, runtime id otherwise).
    pub id: usize,
    /// The method that made it.
    pub name: String,
    /// `source`, `transform`, `combine`, `window` or `output` (static graphs only).
    pub kind: Option<String>,
    /// Ids of the operators it reads.
    pub parents: Vec<usize>,
    /// Window width in ms, where known.
    pub window_ms: Option<u64>,
    /// Slide in ms, where known.
    pub slide_ms: Option<u64>,
    /// Where it is in the source.
    pub location: String,
}

/// `/api/graph`: the job's operator graph.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct GraphView {
    /// The job's name (`None` without `#[streaming_job]`).
    pub job: Option<String>,
    /// The fingerprint checkpoints record, as 16 hex digits.
    pub fingerprint: Option<String>,
    /// The batch interval in ms.
    pub batch_ms: u64,
    /// `static` (from `#[streaming_job]`) or `runtime` (the operators the code built).
    pub source: &'static str,
    /// The operators.
    pub operators: Vec<OperatorView>,
}

/// `/api/executors`: the cluster's executors (empty in local mode).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ClusterView {
    /// The address executors join.
    pub driver: Option<String>,
    /// The executors alive.
    pub executors: Vec<ExecutorView>,
    /// Executors lost so far.
    pub lost: u64,
    /// Tasks executors computed.
    pub tasks: u64,
    /// Of those, tasks sent first to the executor holding their input block.
    pub local_tasks: u64,
}

/// One executor.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ExecutorView {
    /// Its id.
    pub id: u32,
    /// Its task threads.
    pub cores: u32,
    /// Its process id.
    pub pid: u32,
}

/// What the server's handlers share.
struct Shared {
    monitor: Arc<Monitor>,
    ssc: StreamingContext,
}

impl Shared {
    fn cluster(&self) -> ClusterView {
        match self.ssc.context().cluster() {
            None => ClusterView {
                driver: None,
                executors: Vec::new(),
                lost: 0,
                tasks: 0,
                local_tasks: 0,
            },
            Some(c) => ClusterView {
                driver: Some(c.addr().to_string()),
                executors: c
                    .executors()
                    .into_iter()
                    .map(|e| ExecutorView {
                        id: e.id,
                        cores: e.cores,
                        pid: e.pid,
                    })
                    .collect(),
                lost: c.lost_executors(),
                tasks: c.tasks_run(),
                local_tasks: c.local_tasks(),
            },
        }
    }

    /// The monitor, with the receivers' counts as they are now.
    fn monitor(&self) -> &Monitor {
        self.monitor.refresh_counts(&self.ssc.receiver_info());
        &self.monitor
    }

    /// The settings the job runs with, by key: the engine's (under the names `--conf` takes
    /// them by, as in force: defaults included) and then the job's own `--conf` entries (an
    /// engine key given on the command line shows the value applied; a key that names a
    /// secret, a password, a token or an access key shows `(redacted)`).
    fn environment(&self) -> std::collections::BTreeMap<String, String> {
        let ctx = self.ssc.context();
        let config = ctx.config();
        let receiver = self.ssc.receiver_config();
        let ms = |d: std::time::Duration| format!("{}ms", d.as_millis());
        // A job's own settings may carry credentials: their values are not shown (Spark's
        // redaction rule: keys naming a secret, a password, a token or an access key).
        let mut env: std::collections::BTreeMap<String, String> = self
            .ssc
            .conf_entries()
            .into_iter()
            .map(|(k, v)| {
                let lower = k.to_ascii_lowercase();
                let secret = ["secret", "password", "token", "accesskey", "access.key"]
                    .iter()
                    .any(|s| lower.contains(s));
                (k, if secret { "(redacted)".to_string() } else { v })
            })
            .collect();
        let engine = [
            ("spate.master", config.master.clone()),
            ("spate.app.name", config.app_name.clone()),
            ("spate.batch.interval", ms(self.ssc.batch_duration())),
            (
                "spate.default.parallelism",
                ctx.default_parallelism().to_string(),
            ),
            ("spate.memory", size(config.memory_bytes)),
            ("spate.codec", config.codec.name().to_string()),
            ("spate.request.timeout", ms(config.request_timeout)),
            ("spate.heartbeat.timeout", ms(config.heartbeat_timeout)),
            (
                "spate.checkpoint.dir",
                self.ssc
                    .checkpoint_path()
                    .map_or("none".to_string(), |d| d.display().to_string()),
            ),
            ("spate.streaming.blockInterval", ms(receiver.block_interval)),
            (
                "spate.streaming.receiver.maxRate",
                receiver.max_rate.unwrap_or(0).to_string(),
            ),
            (
                "spate.streaming.receiver.memoryFraction",
                receiver.memory_fraction.to_string(),
            ),
            (
                "spate.streaming.receiver.writeAheadLog.enable",
                receiver.write_ahead_log.to_string(),
            ),
        ];
        for (k, v) in engine {
            env.insert(k.to_string(), v);
        }
        env
    }

    fn inputs(&self) -> Vec<InputView> {
        self.ssc
            .input_snapshots()
            .iter()
            .map(InputView::from)
            .collect()
    }

    fn graph(&self) -> GraphView {
        let batch_ms = self.ssc.batch_duration().as_millis() as u64;
        if let Some(g) = self.ssc.job_graph() {
            return GraphView {
                job: Some(g.name.to_string()),
                fingerprint: Some(format!("{:016x}", g.fingerprint)),
                batch_ms,
                source: "static",
                operators: g
                    .ops
                    .iter()
                    .map(|op| OperatorView {
                        id: op.id,
                        name: op.name.to_string(),
                        kind: Some(op.kind.to_string()),
                        parents: op.parents.to_vec(),
                        window_ms: op.window_ms,
                        slide_ms: op.slide_ms,
                        location: op.location.to_string(),
                    })
                    .collect(),
            };
        }
        GraphView {
            job: None,
            fingerprint: None,
            batch_ms,
            source: "runtime",
            operators: self.ssc.operator_views(),
        }
    }
}

/// A running monitoring server; dropping it stops the server.
pub struct UiHandle {
    addr: SocketAddr,
    monitor: Arc<Monitor>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl UiHandle {
    /// The address the server listens on (useful after binding port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listener feeding the server.
    pub fn monitor(&self) -> &Arc<Monitor> {
        &self.monitor
    }
}

impl Drop for UiHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for UiHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiHandle")
            .field("addr", &self.addr)
            .finish()
    }
}

fn json<T: Serialize>(value: &T) -> axum::response::Response {
    use axum::response::IntoResponse;
    match serde_json::to_string_pretty(value) {
        Ok(body) => ([("content-type", "application/json")], body).into_response(),
        Err(e) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render JSON: {e}"),
        )
            .into_response(),
    }
}

/// A size as `--conf spate.memory` takes it: `512m` when a whole number of MiB, else bytes.
fn size(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{}m", bytes >> 20)
    } else {
        bytes.to_string()
    }
}

impl StreamingContext {
    /// Starts the monitoring server on `addr` (`127.0.0.1:4040`, or port 0 for any free port)
    /// and registers the [`Monitor`] that feeds it. Call it before [`start`](Self::start), so
    /// that the monitor sees receivers start. The server stops when the handle is dropped.
    pub fn start_ui(&self, addr: impl std::net::ToSocketAddrs) -> crate::Result<UiHandle> {
        let addr = addr
            .to_socket_addrs()
            .map_err(|e| crate::Error::State(format!("invalid monitoring address: {e}")))?
            .next()
            .ok_or_else(|| {
                crate::Error::State("the monitoring address resolves to nothing".into())
            })?;
        let listener = std::net::TcpListener::bind(addr).map_err(|e| {
            crate::Error::State(format!(
                "cannot listen for the monitoring page on {addr}: {e}; choose another port with --ui-port, or turn it off with --no-ui"
            ))
        })?;
        let bound = listener
            .local_addr()
            .map_err(|e| crate::Error::State(format!("monitoring server address: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| crate::Error::State(format!("monitoring server socket: {e}")))?;
        let monitor = Arc::new(Monitor::new(self.batch_duration().as_millis() as u64));
        self.add_streaming_listener(monitor.clone());
        let shared = Arc::new(Shared {
            monitor: monitor.clone(),
            ssc: self.clone(),
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("spate-ui".into())
            .spawn(move || serve(listener, shared, rx))
            .map_err(|e| crate::Error::State(format!("cannot start the monitoring thread: {e}")))?;
        tracing::info!(%bound, "monitoring page at http://{bound}/");
        Ok(UiHandle {
            addr: bound,
            monitor,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }
}

fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    use axum::routing::get;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the monitoring server's runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot serve the monitoring page");
                return;
            }
        };
        let (s1, s2, s3, s4, s5, s6, s7, s8) = (
            shared.clone(),
            shared.clone(),
            shared.clone(),
            shared.clone(),
            shared.clone(),
            shared.clone(),
            shared.clone(),
            shared,
        );
        let app = axum::Router::new()
            .route(
                "/",
                get(move || async move {
                    let body = page::render(
                        s1.monitor(),
                        &s1.inputs(),
                        &s1.graph(),
                        &s1.cluster(),
                        &s1.environment(),
                    );
                    axum::response::Html(body)
                }),
            )
            .route(
                "/api/batches",
                get(move || async move { json(&s2.monitor.batches()) }),
            )
            .route(
                "/api/receivers",
                get(move || async move { json(&s3.monitor().receivers()) }),
            )
            .route(
                "/api/inputs",
                get(move || async move { json(&s7.inputs()) }),
            )
            .route("/api/graph", get(move || async move { json(&s4.graph()) }))
            .route(
                "/api/environment",
                get(move || async move { json(&s8.environment()) }),
            )
            .route(
                "/api/executors",
                get(move || async move { json(&s6.cluster()) }),
            )
            .route(
                "/metrics",
                get(move || async move {
                    let live = metrics::Live {
                        storage: s5.ssc.context().block_manager().stats(),
                        receivers: s5.ssc.receiver_info(),
                        pending_batches: s5.ssc.pending_batches(),
                        inputs: s5.ssc.input_snapshots(),
                    };
                    s5.monitor.refresh_counts(&live.receivers);
                    (
                        [("content-type", "text/plain; version=0.0.4")],
                        metrics::render(&s5.monitor, &live, s5.ssc.context().cluster()),
                    )
                }),
            );
        let server = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = shutdown.await;
        });
        if let Err(e) = server.await {
            tracing::error!(error = %e, "the monitoring server failed");
        }
    });
}
