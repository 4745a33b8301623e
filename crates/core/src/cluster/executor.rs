//! The executor role: a process of the job's own binary (`--executor --driver HOST:PORT`) that
//! joins a driver, heartbeats, and serves the driver's block requests from a block manager of its
//! own. It exits when the driver says so or its connection to the driver ends.

use super::protocol::{self, Message, Request, Response, TaskSpec};
use crate::{Error, Result};
use parking_lot::Mutex;
use spate_storage::{
    BlockId, BlockManager, BlockManagerConfig, Codec, PeerId, StorageLevel, Transport,
};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// What an executor runs tasks with: the job's graph, rebuilt in this process (the streaming
/// layer implements it).
pub trait TaskRunner: Send + Sync {
    /// The block manager the graph's context uses (the executor serves blocks from it).
    fn block_manager(&self) -> Arc<BlockManager>;
    /// Rebuilds the named RDD and computes the partition, serialized.
    fn run(&self, task: &TaskSpec) -> Result<Vec<u8>>;
    /// Starts the receiver of input stream `stream` in this process.
    fn start_receiver(&self, stream: u64, first_seq: u64, position: Option<String>) -> Result<()>;
    /// Cuts and hands over the blocks of the receiver of `stream` up to `time_ms`, with those of
    /// earlier cuts from `taken_below` on (the driver did not get them); every batch up to
    /// `completed_ms` has completed on the driver.
    fn cut_receiver(
        &self,
        stream: u64,
        time_ms: u64,
        completed_ms: u64,
        taken_below: u64,
    ) -> Result<super::protocol::Cut>;
    /// Stops the receiver of `stream`.
    fn stop_receiver(&self, stream: u64) -> Result<()>;
    /// The input streams' counts in this process (sent with each heartbeat): none by default.
    fn input_counts(&self) -> Vec<super::protocol::InputCount> {
        Vec::new()
    }
}

/// How often an executor tells the driver it is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);

/// Builds an executor's task runner once the driver has told its default parallelism.
pub type RunnerFactory = dyn Fn(usize) -> Result<Arc<dyn TaskRunner>> + Send + Sync;

/// Settings of an executor process.
#[derive(Clone)]
pub struct ExecutorConfig {
    /// The driver to join, `HOST:PORT`.
    pub driver: String,
    /// Task threads offered.
    pub cores: usize,
    /// Memory budget of its block manager.
    pub memory_bytes: u64,
    /// How long to keep trying to reach the driver.
    pub connect_timeout: Duration,
    /// Builds the job graph tasks are computed with, given the driver's default parallelism
    /// (`None`: the executor only holds blocks).
    pub runner: Option<Arc<RunnerFactory>>,
    /// The fingerprint of that graph (sent to the driver, which only sends tasks of its own).
    pub graph: Option<u64>,
}

impl std::fmt::Debug for ExecutorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorConfig")
            .field("driver", &self.driver)
            .field("cores", &self.cores)
            .field("runs_tasks", &self.runner.is_some())
            .finish()
    }
}

impl ExecutorConfig {
    /// Defaults for joining `driver`.
    pub fn new(driver: &str, cores: usize) -> ExecutorConfig {
        ExecutorConfig {
            driver: driver.to_string(),
            cores: cores.max(1),
            memory_bytes: 512 << 20,
            connect_timeout: Duration::from_secs(5),
            runner: None,
            graph: None,
        }
    }
}

/// The input stream a request about a receiver is for.
fn receiver_stream(body: &Request) -> Option<u64> {
    match body {
        Request::StartReceiver { stream, .. }
        | Request::CutReceiver { stream, .. }
        | Request::StopReceiver { stream } => Some(*stream),
        _ => None,
    }
}

/// Requests for one receiver, handled in order on a thread of its own.
type ReceiverRequests = std::sync::mpsc::Sender<(u64, Request)>;

/// Starts the thread that handles the requests about the receiver of `stream`.
fn receiver_thread(
    stream: u64,
    blocks: &Arc<BlockManager>,
    runner: &Option<Arc<dyn TaskRunner>>,
    tx: &mpsc::UnboundedSender<Message>,
) -> std::result::Result<ReceiverRequests, String> {
    let (blocks, runner, tx) = (blocks.clone(), runner.clone(), tx.clone());
    let (control_tx, control_rx) = std::sync::mpsc::channel::<(u64, Request)>();
    std::thread::Builder::new()
        .name(format!("spate-receiver-{stream}"))
        .spawn(move || {
            for (req, body) in control_rx {
                let body = handle(&blocks, runner.as_deref(), body);
                let _ = tx.send(Message::Response { id: req, body });
            }
        })
        .map_err(|e| format!("cannot start a thread for the receiver of stream {stream}: {e}"))?;
    Ok(control_tx)
}

fn cluster_err(what: String) -> Error {
    Error::Cluster(what)
}

/// Runs the executor role until the driver shuts it down or goes away.
pub fn run_executor(config: &ExecutorConfig) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| cluster_err(format!("cannot start the executor's runtime: {e}")))?;
    runtime.block_on(serve(config))
}

async fn connect(config: &ExecutorConfig) -> Result<tokio::net::TcpStream> {
    let deadline = tokio::time::Instant::now() + config.connect_timeout;
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(&config.driver),
        )
        .await;
        let error = match attempt {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(cluster_err(format!(
                "cannot reach the driver at {}: {error} (tried for {:?}); check --driver HOST:PORT and that the driver is running",
                config.driver, config.connect_timeout
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn serve(config: &ExecutorConfig) -> Result<()> {
    let stream = connect(config).await?;
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let proto = |e: protocol::ProtocolError| {
        cluster_err(format!("talking to the driver at {}: {e}", config.driver))
    };
    protocol::write(
        &mut writer,
        &Message::Register {
            cores: config.cores as u32,
            pid: std::process::id(),
            build: super::build_id(),
            graph: config.graph,
        },
    )
    .await
    .map_err(proto)?;
    let (id, parallelism) = match protocol::read(&mut reader).await.map_err(proto)? {
        Some(Message::Registered {
            executor,
            parallelism,
        }) => (executor, parallelism as usize),
        other => {
            return Err(cluster_err(format!(
                "the driver at {} answered the registration with {other:?}",
                config.driver
            )));
        }
    };
    tracing::info!(executor = id, driver = %config.driver, cores = config.cores, "executor registered");
    // The job's graph, built now that the driver's parallelism is known (same partition counts,
    // same RDD names).
    let runner: Option<Arc<dyn TaskRunner>> = match &config.runner {
        Some(make) => Some(make(parallelism)?),
        None => None,
    };
    let blocks = match &runner {
        Some(r) => r.block_manager(),
        None => Arc::new(BlockManager::new(BlockManagerConfig {
            memory_bytes: config.memory_bytes,
            scratch_parent: std::env::temp_dir(),
            codec: Codec::None,
        })?),
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let writer_task = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if protocol::write(&mut writer, &m).await.is_err() {
                break;
            }
        }
    });
    let pending: Pending = Arc::default();
    // Blocks this process lacks (received input the driver holds) are fetched from the driver.
    blocks.set_transport(Arc::new(DriverLink {
        tx: tx.clone(),
        pending: pending.clone(),
        next: AtomicU64::new(1),
    }));
    let beats = tx.clone();
    let stats_of = blocks.clone();
    let counts_of = runner.clone();
    let heartbeat = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(HEARTBEAT_INTERVAL);
        loop {
            ticker.tick().await;
            let stats = stats_of.stats();
            let beat = Message::Heartbeat {
                blocks: (stats.memory_blocks + stats.disk_blocks) as u64,
                memory_bytes: stats.memory_bytes,
                counts: counts_of
                    .as_deref()
                    .map(TaskRunner::input_counts)
                    .unwrap_or_default(),
            };
            if beats.send(beat).is_err() {
                break;
            }
        }
    });
    // Requests about a receiver (start, cut, stop) run one after the other, in the order they
    // came, on a thread of that receiver's own: a cut the driver stopped waiting for (this
    // process was paused, say) is answered before the next one, which hands its blocks over
    // again; and a receiver slow to start or stop delays no other receiver's cuts.
    let mut receiver_threads: HashMap<u64, ReceiverRequests> = HashMap::new();
    let result = loop {
        match protocol::read(&mut reader).await.map_err(proto) {
            Err(e) => break Err(e),
            Ok(None | Some(Message::Shutdown)) => {
                tracing::info!(executor = id, "the driver is done; exiting");
                break Ok(());
            }
            Ok(Some(Message::Request { id: req, body })) => {
                if let Some(stream) = receiver_stream(&body) {
                    let sent = match receiver_threads.entry(stream) {
                        Entry::Occupied(o) => o.get().send((req, body)),
                        Entry::Vacant(v) => match receiver_thread(stream, &blocks, &runner, &tx) {
                            Ok(control) => v.insert(control).send((req, body)),
                            Err(why) => {
                                tracing::error!(executor = id, "{why}");
                                let _ = tx.send(Message::Response {
                                    id: req,
                                    body: Response::Failed(why),
                                });
                                Ok(())
                            }
                        },
                    };
                    if sent.is_err() {
                        tracing::error!(executor = id, stream, "the thread of a receiver is gone");
                        receiver_threads.remove(&stream);
                    }
                    continue;
                }
                // On a thread of its own, outside the runtime: a task may wait for blocks from
                // the driver meanwhile, and sources such as Kafka run their own runtime.
                let (blocks, runner, tx) = (blocks.clone(), runner.clone(), tx.clone());
                let spawned = std::thread::Builder::new()
                    .name(format!("spate-task-{req}"))
                    .spawn(move || {
                        let body = handle(&blocks, runner.as_deref(), body);
                        let _ = tx.send(Message::Response { id: req, body });
                    });
                if let Err(e) = spawned {
                    tracing::error!(executor = id, error = %e, "cannot start a task thread");
                }
            }
            Ok(Some(Message::Response { id: req, body })) => {
                if let Some(answer) = pending.lock().remove(&req) {
                    let _ = answer.try_send(body);
                }
            }
            Ok(Some(other)) => {
                tracing::warn!(executor = id, message = ?other, "unexpected message from the driver; ignored");
            }
        }
    };
    heartbeat.abort();
    writer_task.abort();
    result
}

type Pending = Arc<Mutex<HashMap<u64, std::sync::mpsc::SyncSender<Response>>>>;

/// The executor's way to the driver's blocks.
struct DriverLink {
    tx: mpsc::UnboundedSender<Message>,
    pending: Pending,
    next: AtomicU64,
}

impl Transport for DriverLink {
    fn peers(&self) -> Vec<PeerId> {
        vec!["driver".to_string()]
    }

    /// The second copy of an executor's `_2` block (received data) goes to the driver.
    fn replicate(
        &self,
        peer: &PeerId,
        id: &BlockId,
        bytes: &[u8],
        level: StorageLevel,
    ) -> spate_storage::Result<()> {
        let failure = |reason: String| spate_storage::Error::Replication {
            block: id.clone(),
            peer: peer.clone(),
            reason,
        };
        match self.ask(Request::PutBlock {
            block: id.clone(),
            level,
            bytes: bytes.to_vec(),
        }) {
            Some(Response::Stored) => Ok(()),
            Some(Response::Failed(why)) => Err(failure(why)),
            other => Err(failure(format!("no answer from the driver ({other:?})"))),
        }
    }

    fn fetch(&self, id: &BlockId) -> spate_storage::Result<Option<Vec<u8>>> {
        Ok(match self.ask(Request::GetBlock { block: id.clone() }) {
            Some(Response::Block(b)) => b,
            _ => None,
        })
    }
}

impl DriverLink {
    /// Sends a request to the driver and waits (30 s at most) for the answer.
    fn ask(&self, body: Request) -> Option<Response> {
        let req = self.next.fetch_add(1, Ordering::Relaxed);
        let (answer_tx, answer) = std::sync::mpsc::sync_channel(1);
        self.pending.lock().insert(req, answer_tx);
        let got = if self.tx.send(Message::Request { id: req, body }).is_ok() {
            answer.recv_timeout(Duration::from_secs(30)).ok()
        } else {
            None
        };
        self.pending.lock().remove(&req);
        got
    }
}

fn handle(blocks: &BlockManager, runner: Option<&dyn TaskRunner>, request: Request) -> Response {
    match request {
        Request::RunTask(task) => match runner {
            // A panicking user function fails the task (the driver then runs it itself, where
            // the panic fails the job with an error naming the RDD), not the executor.
            Some(r) => {
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.run(&task))) {
                    Ok(Ok(bytes)) => Response::Computed(bytes),
                    Ok(Err(crate::Error::FetchFailed { shuffle, map })) => Response::FetchFailed {
                        shuffle,
                        map: map as u32,
                    },
                    Ok(Err(e)) => Response::Failed(e.to_string()),
                    Err(payload) => Response::Failed(format!(
                        "the task panicked: {}",
                        payload
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| payload.downcast_ref::<String>().cloned())
                            .unwrap_or_default()
                    )),
                }
            }
            None => Response::Failed("this executor runs no job graph".into()),
        },
        Request::StartReceiver {
            stream,
            first_seq,
            position,
        } => match runner.map(|r| r.start_receiver(stream, first_seq, position)) {
            Some(Ok(())) => Response::Stored,
            Some(Err(e)) => Response::Failed(e.to_string()),
            None => Response::Failed("this executor runs no job graph".into()),
        },
        Request::CutReceiver {
            stream,
            time_ms,
            completed_ms,
            taken_below,
        } => match runner.map(|r| r.cut_receiver(stream, time_ms, completed_ms, taken_below)) {
            Some(Ok((blocks, counts))) => Response::Cut(blocks, counts),
            Some(Err(e)) => Response::Failed(e.to_string()),
            None => Response::Failed("this executor runs no job graph".into()),
        },
        Request::StopReceiver { stream } => match runner.map(|r| r.stop_receiver(stream)) {
            Some(Ok(())) => Response::Stored,
            Some(Err(e)) => Response::Failed(e.to_string()),
            None => Response::Failed("this executor runs no job graph".into()),
        },
        Request::PutBlock {
            block,
            level,
            bytes,
        } => match blocks.put_bytes(block, bytes, level) {
            Ok(spate_storage::PutOutcome::NotStored) => {
                Response::Failed("the executor has no room for the block".into())
            }
            Ok(_) => Response::Stored,
            Err(e) => Response::Failed(e.to_string()),
        },
        Request::GetBlock { block } => match blocks.get_bytes(&block) {
            Ok(b) => Response::Block(b),
            Err(e) => Response::Failed(e.to_string()),
        },
        Request::RemoveBlock { block } => Response::Removed(blocks.remove(&block)),
    }
}
