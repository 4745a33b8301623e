//! Cluster mode, driver side: executors (processes of the job's own binary) join the driver over
//! TCP, heartbeat, and hold the second copy of every `_2` block.
//!
//! Membership (`local-cluster[E,C]` spawns E executor processes and waits for them to register;
//! `spate://HOST:PORT` listens for executors started anywhere), failure detection (a closed
//! connection or no heartbeat for [`HEARTBEAT_TIMEOUT`] marks an executor lost), block
//! replication through the storage [`Transport`] (a `_2` put is stored on an executor before it
//! is acknowledged, a block the driver lost is read back from its replica, a lost executor's
//! replicas are made again from the driver's copy), tasks sent by structural name
//! ([`Cluster::run_task`], [`Cluster::run_map`]) to executors of the same build and job graph,
//! and receivers run on executors ([`Cluster::start_receiver`], [`Cluster::cut_receiver`]).

mod executor;
pub mod protocol;

pub use executor::{ExecutorConfig, HEARTBEAT_INTERVAL, RunnerFactory, TaskRunner, run_executor};
pub use protocol::{Cut, CutBlock, HeldRdd, InputCount, ReceiverCounts, TaskSpec};

use crate::{Error, Result};
use parking_lot::{Condvar, Mutex};
use protocol::{Message, Request, Response};
use spate_storage::{BlockId, BlockManager, PeerId, StorageLevel, Transport};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// An executor silent for this long is lost, unless set otherwise
/// ([`ContextConfig::heartbeat_timeout`](crate::ContextConfig::heartbeat_timeout)).
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a request to an executor may take, unless set otherwise
/// ([`ContextConfig::request_timeout`](crate::ContextConfig::request_timeout)).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a task may take on an executor before it is run elsewhere.
const TASK_TIMEOUT: Duration = Duration::from_secs(120);
/// How long spawned executors have to register.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);

type Pending = Arc<Mutex<HashMap<u64, std::sync::mpsc::SyncSender<Response>>>>;

struct ExecutorState {
    tx: mpsc::UnboundedSender<Message>,
    pending: Pending,
    last_heartbeat: Instant,
    cores: u32,
    pid: u32,
    build: u64,
    graph: Option<u64>,
}

/// A hash of this process's executable: the driver sends tasks only to executors of its own
/// build (the same closures behind the same operator names). Computed once.
pub fn build_id() -> u64 {
    static ID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *ID.get_or_init(|| {
        let bytes = std::env::current_exe()
            .and_then(std::fs::read)
            .unwrap_or_default();
        (u64::from(crc32fast::hash(&bytes)) << 32) | (bytes.len() as u64 & 0xffff_ffff)
    })
}

/// A registered executor, as [`Cluster::executors`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutorInfo {
    /// Its id (`executor-<id>` as a storage peer).
    pub id: u32,
    /// Its task threads.
    pub cores: u32,
    /// Its process id.
    pub pid: u32,
}

struct Inner {
    addr: SocketAddr,
    executors: Mutex<BTreeMap<u32, ExecutorState>>,
    changed: Condvar,
    next_executor: AtomicU32,
    next_request: AtomicU64,
    /// Where the replica of each replicated block is, and its level.
    replicas: Mutex<HashMap<BlockId, (u32, StorageLevel)>>,
    /// The driver's block manager (to copy blocks again when an executor is lost).
    blocks: Mutex<Weak<BlockManager>>,
    children: Mutex<Vec<Child>>,
    lost: AtomicU64,
    next_task: AtomicU64,
    tasks_run: AtomicU64,
    local_tasks: AtomicU64,
    /// The driver context's default parallelism, told to executors.
    parallelism: AtomicU64,
    /// How long a request other than a task may take, in milliseconds.
    request_timeout_ms: AtomicU64,
    /// How long an executor may be silent before it is lost, in milliseconds.
    heartbeat_timeout_ms: AtomicU64,
    /// The input streams' counts each executor sent last (kept when it is lost: what it
    /// counted happened).
    input_counts: Mutex<BTreeMap<u32, Vec<protocol::InputCount>>>,
}

impl Inner {
    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.load(Ordering::Relaxed))
    }

    fn heartbeat_timeout(&self) -> Duration {
        Duration::from_millis(self.heartbeat_timeout_ms.load(Ordering::Relaxed))
    }
}

/// The driver's side of a cluster. Dropping the last handle shuts the executors down.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
    _runtime: Arc<RuntimeGuard>,
}

/// Owns the cluster's tokio runtime; shut down when the cluster is dropped.
struct RuntimeGuard(Option<tokio::runtime::Runtime>);

impl Drop for RuntimeGuard {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_timeout(Duration::from_millis(500));
        }
    }
}

fn peer_name(id: u32) -> PeerId {
    format!("executor-{id}")
}

fn parse_peer(peer: &str) -> Option<u32> {
    peer.strip_prefix("executor-")?.parse().ok()
}

impl Cluster {
    /// Listens for executors on `addr` (`127.0.0.1:0` for any free loopback port).
    pub fn listen(addr: &str) -> Result<Cluster> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("spate-cluster")
            .enable_all()
            .build()
            .map_err(|e| Error::Cluster(format!("cannot start the cluster runtime: {e}")))?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .map_err(|e| {
                Error::Cluster(format!(
                    "cannot listen for executors on {addr}: {e}; choose another address"
                ))
            })?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::Cluster(format!("listener address: {e}")))?;
        let inner = Arc::new(Inner {
            addr: bound,
            executors: Mutex::new(BTreeMap::new()),
            changed: Condvar::new(),
            next_executor: AtomicU32::new(1),
            next_request: AtomicU64::new(1),
            replicas: Mutex::new(HashMap::new()),
            blocks: Mutex::new(Weak::new()),
            children: Mutex::new(Vec::new()),
            lost: AtomicU64::new(0),
            next_task: AtomicU64::new(0),
            tasks_run: AtomicU64::new(0),
            local_tasks: AtomicU64::new(0),
            parallelism: AtomicU64::new(1),
            request_timeout_ms: AtomicU64::new(REQUEST_TIMEOUT.as_millis() as u64),
            heartbeat_timeout_ms: AtomicU64::new(HEARTBEAT_TIMEOUT.as_millis() as u64),
            input_counts: Mutex::new(BTreeMap::new()),
        });
        runtime.spawn(accept_loop(listener, Arc::downgrade(&inner)));
        runtime.spawn(watch_heartbeats(Arc::downgrade(&inner)));
        tracing::info!(%bound, "the driver listens for executors");
        Ok(Cluster {
            inner,
            _runtime: Arc::new(RuntimeGuard(Some(runtime))),
        })
    }

    /// Sets how long a request to an executor other than a task may take before it fails (a
    /// cut of a receiver's blocks, a block read or copy); [`REQUEST_TIMEOUT`] until set.
    pub fn set_request_timeout(&self, timeout: Duration) {
        let ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.inner.request_timeout_ms.store(ms, Ordering::Relaxed);
    }

    /// Sets how long an executor may send no heartbeat before it is lost (its tasks run
    /// elsewhere, its receivers move); [`HEARTBEAT_TIMEOUT`] until set. Executors send one every
    /// [`HEARTBEAT_INTERVAL`]: a timeout shorter than two of those is raised to that.
    pub fn set_heartbeat_timeout(&self, timeout: Duration) {
        let ms = u64::try_from(timeout.max(2 * HEARTBEAT_INTERVAL).as_millis()).unwrap_or(u64::MAX);
        self.inner.heartbeat_timeout_ms.store(ms, Ordering::Relaxed);
    }

    /// Sets the default parallelism executors are told at registration (the driver's).
    pub fn set_parallelism(&self, n: usize) {
        self.inner.parallelism.store(n as u64, Ordering::Relaxed);
    }

    /// The address executors join (`--executor --driver <addr>`).
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Starts `count` executor processes of `program` (each with `cores` task threads) on
    /// loopback and waits until they have all registered.
    pub fn spawn_local(
        &self,
        count: usize,
        cores: usize,
        program: &std::path::Path,
        args: &[String],
    ) -> Result<()> {
        let before = self.inner.executors.lock().len();
        for _ in 0..count {
            let child = Command::new(program)
                .args(["--executor", "--driver"])
                .arg(self.addr().to_string())
                .args(["--cores", &cores.to_string(), "--no-ui"])
                .args(args)
                .stdin(Stdio::null())
                .spawn()
                .map_err(|e| {
                    Error::Cluster(format!(
                        "cannot start the executor program {}: {e}",
                        program.display()
                    ))
                })?;
            self.inner.children.lock().push(child);
        }
        let deadline = Instant::now() + REGISTER_TIMEOUT;
        let mut executors = self.inner.executors.lock();
        while executors.len() < before + count {
            // An executor process that already exited will never register.
            for c in self.inner.children.lock().iter_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    return Err(Error::Cluster(format!(
                        "executor process {} ({}) exited with {status} before registering: the program must be a Spate job binary, whose entry point runs the executor role for --executor --driver HOST:PORT",
                        c.id(),
                        program.display()
                    )));
                }
            }
            if Instant::now() > deadline {
                return Err(Error::Cluster(format!(
                    "{} of {count} executors registered within {REGISTER_TIMEOUT:?} ({}): see their output above",
                    executors.len() - before,
                    program.display()
                )));
            }
            self.inner
                .changed
                .wait_for(&mut executors, Duration::from_millis(50));
        }
        Ok(())
    }

    /// The executors alive now.
    pub fn executors(&self) -> Vec<ExecutorInfo> {
        self.inner
            .executors
            .lock()
            .iter()
            .map(|(id, e)| ExecutorInfo {
                id: *id,
                cores: e.cores,
                pid: e.pid,
            })
            .collect()
    }

    /// How many executors were lost so far.
    pub fn lost_executors(&self) -> u64 {
        self.inner.lost.load(Ordering::Relaxed)
    }

    /// Waits until exactly `n` executors are alive, or `timeout` passes; returns whether they are.
    pub fn wait_for_executors(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut executors = self.inner.executors.lock();
        while executors.len() != n {
            if self
                .inner
                .changed
                .wait_until(&mut executors, deadline)
                .timed_out()
            {
                return executors.len() == n;
            }
        }
        true
    }

    /// The executor holding the replica of `block`, if any.
    pub fn replica_of(&self, block: &BlockId) -> Option<u32> {
        self.inner.replicas.lock().get(block).map(|(e, _)| *e)
    }

    /// Makes this cluster the transport of `blocks` (for `_2` levels).
    pub fn attach(&self, blocks: &Arc<BlockManager>) {
        *self.inner.blocks.lock() = Arc::downgrade(blocks);
        blocks.set_transport(Arc::new(self.clone()));
    }

    /// Sends `request` to executor `id` and waits for the answer.
    fn request(&self, id: u32, body: Request) -> Result<Response> {
        request(&self.inner, id, body, self.inner.request_timeout())
    }

    /// Runs a task on an executor of the driver's build that built job graph `graph` (the one
    /// holding block `preferred`, if any and alive; else round robin; another one if that one is
    /// lost meanwhile) and returns the partition, serialized. `None` when no such executor is
    /// alive.
    pub fn run_task(
        &self,
        task: TaskSpec,
        graph: u64,
        preferred: Option<&BlockId>,
    ) -> Option<Result<Vec<u8>>> {
        self.dispatch(task, graph, preferred)
            .map(|r| r.map(|(_, bytes)| bytes))
    }

    /// Runs map task `task.partition` of shuffle `shuffle` (with `reduces` reduce partitions) on
    /// an executor as [`run_task`](Self::run_task) would, and records that executor as where its
    /// buckets are, for the reduce tasks' fetches.
    pub fn run_map(
        &self,
        mut task: TaskSpec,
        shuffle: u64,
        reduces: usize,
        graph: u64,
        preferred: Option<&BlockId>,
    ) -> Option<Result<()>> {
        task.map_of = Some(shuffle);
        let map = task.partition;
        Some(self.dispatch(task, graph, preferred)?.map(|(executor, _)| {
            let mut replicas = self.inner.replicas.lock();
            for reduce in 0..reduces {
                replicas.insert(
                    BlockId::Shuffle {
                        shuffle,
                        map,
                        reduce: reduce as u32,
                    },
                    (executor, StorageLevel::MEMORY_AND_DISK),
                );
            }
        }))
    }

    /// The executors alive of the driver's build that built job graph `graph`.
    fn eligible(&self, graph: u64) -> Vec<u32> {
        let build = build_id();
        self.inner
            .executors
            .lock()
            .iter()
            .filter(|(_, e)| e.build == build && e.graph == Some(graph))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Sends a request whose answer nobody waits for (a lost executor's blocks are gone anyway).
    fn tell(&self, executor: u32, body: Request) {
        let req = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = self.inner.executors.lock().get(&executor) {
            let _ = e.tx.send(Message::Request { id: req, body });
        }
    }

    fn dispatch(
        &self,
        task: TaskSpec,
        graph: u64,
        preferred: Option<&BlockId>,
    ) -> Option<Result<(u32, Vec<u8>)>> {
        let mut alive = self.eligible(graph);
        if alive.is_empty() {
            return None;
        }
        let start = self.inner.next_task.fetch_add(1, Ordering::Relaxed) as usize;
        let n = alive.len();
        alive.rotate_left(start % n);
        // Locality: the executor holding the task's input block goes first.
        let holder = preferred.and_then(|b| self.replica_of(b));
        if let Some(pos) = holder.and_then(|h| alive.iter().position(|e| *e == h)) {
            alive[..=pos].rotate_right(1);
            self.inner.local_tasks.fetch_add(1, Ordering::Relaxed);
        }
        let mut last = None;
        for &executor in alive.iter().take(2) {
            match request(
                &self.inner,
                executor,
                Request::RunTask(task.clone()),
                TASK_TIMEOUT,
            ) {
                Ok(Response::Computed(bytes)) => {
                    self.inner.tasks_run.fetch_add(1, Ordering::Relaxed);
                    return Some(Ok((executor, bytes)));
                }
                // A lost shuffle output: the scheduler re-runs its map task, then this one.
                Ok(Response::FetchFailed { shuffle, map }) => {
                    return Some(Err(Error::FetchFailed {
                        shuffle,
                        map: map as usize,
                    }));
                }
                // The executor computed and failed: another would fail the same way.
                Ok(Response::Failed(why)) => {
                    return Some(Err(Error::Cluster(format!(
                        "executor {executor} failed the task: {why}"
                    ))));
                }
                Ok(other) => last = Some(format!("unexpected answer {other:?}")),
                // Lost meanwhile: try another executor.
                Err(e) => last = Some(e.to_string()),
            }
        }
        Some(Err(Error::Cluster(last.unwrap_or_default())))
    }

    /// An executor of the driver's build that built job graph `graph`, other than `except`
    /// (round robin); `None` when there is none.
    pub fn pick_executor(&self, graph: u64, except: Option<u32>) -> Option<u32> {
        let mut eligible = self.eligible(graph);
        eligible.retain(|id| Some(*id) != except);
        if eligible.is_empty() {
            return None;
        }
        let k = self.inner.next_task.fetch_add(1, Ordering::Relaxed) as usize;
        Some(eligible[k % eligible.len()])
    }

    /// The process id of executor `id`, if alive.
    pub fn executor_pid(&self, id: u32) -> Option<u32> {
        self.inner.executors.lock().get(&id).map(|e| e.pid)
    }

    /// Starts the receiver of input stream `stream` on executor `executor`.
    pub fn start_receiver(
        &self,
        executor: u32,
        stream: u64,
        first_seq: u64,
        position: Option<String>,
    ) -> Result<()> {
        match self.request(
            executor,
            Request::StartReceiver {
                stream,
                first_seq,
                position,
            },
        )? {
            Response::Stored => Ok(()),
            Response::Failed(why) => Err(Error::Cluster(format!(
                "executor {executor} could not start the receiver of stream {stream}: {why}"
            ))),
            other => Err(Error::Cluster(format!("unexpected answer {other:?}"))),
        }
    }

    /// Cuts the blocks of the receiver of `stream` on `executor` up to `time_ms`, records the
    /// executor as where they are, and returns them, with the blocks earlier cuts took from
    /// sequence number `taken_below` on (the caller holds every block below it: an earlier cut
    /// whose answer it stopped waiting for took blocks it does not have); tells the receiver
    /// that every batch up to `completed_ms` has completed.
    pub fn cut_receiver(
        &self,
        executor: u32,
        stream: u64,
        time_ms: u64,
        completed_ms: u64,
        taken_below: u64,
    ) -> Result<protocol::Cut> {
        let cut = Request::CutReceiver {
            stream,
            time_ms,
            completed_ms,
            taken_below,
        };
        match self.request(executor, cut)? {
            Response::Cut(blocks, counts) => {
                let mut replicas = self.inner.replicas.lock();
                for b in &blocks {
                    replicas.insert(
                        BlockId::Input {
                            stream: stream as u32,
                            unique: b.seq,
                        },
                        (executor, StorageLevel::MEMORY_ONLY_SER),
                    );
                }
                Ok((blocks, counts))
            }
            Response::Failed(why) => Err(Error::Cluster(format!(
                "executor {executor} could not cut the blocks of stream {stream}: {why}"
            ))),
            other => Err(Error::Cluster(format!("unexpected answer {other:?}"))),
        }
    }

    /// The input streams' counts made in executors' processes: for each stream and counter
    /// name, the sum of what every executor (lost ones included) sent with its latest
    /// heartbeat, so at most one heartbeat interval behind.
    pub fn input_counts(&self) -> Vec<protocol::InputCount> {
        let mut sums: BTreeMap<(u64, String), u64> = BTreeMap::new();
        for counts in self.inner.input_counts.lock().values() {
            for c in counts {
                *sums.entry((c.stream, c.name.clone())).or_default() += c.value;
            }
        }
        sums.into_iter()
            .map(|((stream, name), value)| protocol::InputCount {
                stream,
                name,
                value,
            })
            .collect()
    }

    /// Stops the receiver of `stream` on `executor`.
    pub fn stop_receiver(&self, executor: u32, stream: u64) -> Result<()> {
        match self.request(executor, Request::StopReceiver { stream })? {
            Response::Stored => Ok(()),
            Response::Failed(why) => Err(Error::Cluster(why)),
            other => Err(Error::Cluster(format!("unexpected answer {other:?}"))),
        }
    }

    /// What computes shippable partitions on this cluster's executors: `name_task` names the
    /// task of partition `partition` of RDD `rdd` made under a ship name, with the fingerprint
    /// of the job graph executors must have built (`None`: not shippable, the caller computes
    /// it); map tasks are named as partition `map` of RDD 0.
    pub fn shipper(
        &self,
        name_task: impl Fn(crate::ShipName, u64, usize) -> Option<(TaskSpec, u64)>
        + Send
        + Sync
        + 'static,
    ) -> Arc<dyn crate::RemoteCompute> {
        Arc::new(Shipper {
            cluster: self.clone(),
            name_task: Box::new(name_task),
        })
    }

    /// Logs what the executors did (tasks, tasks sent to the holder of their block, executors
    /// alive and lost): the line a job's driver ends with, which the process tests read.
    pub fn log_summary(&self) {
        tracing::info!(
            tasks = self.tasks_run(),
            local = self.local_tasks(),
            executors = self.executors().len(),
            lost = self.lost_executors(),
            "cluster: tasks run on executors"
        );
    }

    /// Tasks executors have computed so far.
    pub fn tasks_run(&self) -> u64 {
        self.inner.tasks_run.load(Ordering::Relaxed)
    }

    /// Tasks sent first to the executor holding their input block.
    pub fn local_tasks(&self) -> u64 {
        self.inner.local_tasks.load(Ordering::Relaxed)
    }
}

fn request(inner: &Inner, id: u32, body: Request, timeout: Duration) -> Result<Response> {
    let (tx, pending) = {
        let executors = inner.executors.lock();
        let e = executors
            .get(&id)
            .ok_or_else(|| Error::Cluster(format!("executor {id} is not alive")))?;
        (e.tx.clone(), e.pending.clone())
    };
    let req = inner.next_request.fetch_add(1, Ordering::Relaxed);
    let (answer_tx, answer) = std::sync::mpsc::sync_channel(1);
    pending.lock().insert(req, answer_tx);
    // `lose` forgets the executor, then fails its pending requests: one registered after that
    // would wait out the whole timeout, so check again that the executor is still known.
    if !inner.executors.lock().contains_key(&id) {
        pending.lock().remove(&req);
        return Err(Error::Cluster(format!("executor {id} is not alive")));
    }
    if tx.send(Message::Request { id: req, body }).is_err() {
        pending.lock().remove(&req);
        return Err(Error::Cluster(format!("executor {id} is gone")));
    }
    let result = answer.recv_timeout(timeout);
    pending.lock().remove(&req);
    result.map_err(|e| match e {
        std::sync::mpsc::RecvTimeoutError::Timeout => {
            Error::Cluster(format!("executor {id} did not answer within {timeout:?}"))
        }
        std::sync::mpsc::RecvTimeoutError::Disconnected => {
            Error::Cluster(format!("executor {id} was lost before it answered"))
        }
    })
}

impl Transport for Cluster {
    fn peers(&self) -> Vec<PeerId> {
        self.inner
            .executors
            .lock()
            .keys()
            .map(|id| peer_name(*id))
            .collect()
    }

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
        let executor = parse_peer(peer).ok_or_else(|| failure("not an executor".into()))?;
        let answer = self
            .request(
                executor,
                Request::PutBlock {
                    block: id.clone(),
                    level,
                    bytes: bytes.to_vec(),
                },
            )
            .map_err(|e| failure(e.to_string()))?;
        match answer {
            Response::Stored => {
                self.inner
                    .replicas
                    .lock()
                    .insert(id.clone(), (executor, level));
                Ok(())
            }
            Response::Failed(why) => Err(failure(why)),
            other => Err(failure(format!("unexpected answer {other:?}"))),
        }
    }

    fn fetch(&self, id: &BlockId) -> spate_storage::Result<Option<Vec<u8>>> {
        let Some((executor, _)) = self.inner.replicas.lock().get(id).copied() else {
            return Ok(None);
        };
        match self.request(executor, Request::GetBlock { block: id.clone() }) {
            Ok(Response::Block(b)) => Ok(b),
            Ok(other) => {
                tracing::warn!(block = %id, executor, answer = ?other, "reading a replica failed");
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(block = %id, executor, error = %e, "reading a replica failed");
                Ok(None)
            }
        }
    }

    fn forget_where(&self, pred: &dyn Fn(&BlockId) -> bool) {
        let gone: Vec<(BlockId, u32)> = {
            let mut replicas = self.inner.replicas.lock();
            let gone = replicas
                .iter()
                .filter(|(b, _)| pred(b))
                .map(|(b, (e, _))| (b.clone(), *e))
                .collect::<Vec<_>>();
            for (b, _) in &gone {
                replicas.remove(b);
            }
            gone
        };
        for (block, executor) in gone {
            self.tell(executor, Request::RemoveBlock { block });
        }
    }

    fn forget(&self, id: &BlockId) {
        let removed = self.inner.replicas.lock().remove(id);
        if let Some((executor, _)) = removed {
            self.tell(executor, Request::RemoveBlock { block: id.clone() });
        }
    }
}

type NameTask = dyn Fn(crate::ShipName, u64, usize) -> Option<(TaskSpec, u64)> + Send + Sync;

/// A driver's way to its executors (see [`Cluster::shipper`]).
struct Shipper {
    cluster: Cluster,
    name_task: Box<NameTask>,
}

impl crate::RemoteCompute for Shipper {
    fn compute(
        &self,
        name: crate::ShipName,
        rdd: u64,
        partition: usize,
        preferred: Option<&BlockId>,
    ) -> Option<Result<Vec<u8>>> {
        let (task, graph) = (self.name_task)(name, rdd, partition)?;
        self.cluster.run_task(task, graph, preferred)
    }

    fn run_map(
        &self,
        name: crate::ShipName,
        shuffle: u64,
        map: usize,
        reduces: usize,
        preferred: Option<&BlockId>,
    ) -> Option<Result<()>> {
        let (task, graph) = (self.name_task)(name, 0, map)?;
        self.cluster
            .run_map(task, shuffle, reduces, graph, preferred)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for e in self.executors.get_mut().values() {
            let _ = e.tx.send(Message::Shutdown);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        for c in self.children.get_mut().iter_mut() {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("addr", &self.inner.addr)
            .field("executors", &self.executors())
            .finish()
    }
}

/// Marks executor `id` lost: forgets it, fails its pending requests, and copies the replicas it
/// held to another executor (from the driver's copy), in a thread of its own.
fn lose(inner: &Arc<Inner>, id: u32, why: &str) {
    let state = {
        let mut executors = inner.executors.lock();
        let Some(state) = executors.remove(&id) else {
            return;
        };
        // Counted under the lock, so whoever sees the executor gone sees the count too.
        inner.lost.fetch_add(1, Ordering::Relaxed);
        state
    };
    inner.changed.notify_all();
    state.pending.lock().clear();
    // Shuffle outputs it held are gone (the reduce tasks' fetches fail and their map tasks run
    // again); replicas of the driver's blocks are made again from the driver's copy.
    let moved: Vec<(BlockId, StorageLevel)> = {
        let mut replicas = inner.replicas.lock();
        replicas.retain(|b, (e, _)| *e != id || b.shuffle_id().is_none());
        replicas
            .iter()
            .filter(|(_, (e, _))| *e == id)
            .map(|(b, (_, l))| (b.clone(), *l))
            .collect()
    };
    tracing::warn!(
        executor = id,
        pid = state.pid,
        replicas = moved.len(),
        "executor lost: {why}; its replicas are copied again from the driver"
    );
    if moved.is_empty() {
        return;
    }
    let inner = inner.clone();
    std::thread::spawn(move || rereplicate(&inner, id, moved));
}

fn rereplicate(inner: &Arc<Inner>, lost: u32, moved: Vec<(BlockId, StorageLevel)>) {
    let blocks = inner.blocks.lock().upgrade();
    for (block, level) in moved {
        inner.replicas.lock().remove(&block);
        let bytes = blocks
            .as_ref()
            .and_then(|b| b.get_bytes(&block).ok().flatten());
        let Some(bytes) = bytes else {
            tracing::error!(%block, executor = lost, "the driver no longer has a block whose replica was lost: it is recomputed from lineage when needed");
            continue;
        };
        let peers: Vec<u32> = inner.executors.lock().keys().copied().collect();
        if peers.is_empty() {
            tracing::warn!(%block, "no executor left for a replica");
            continue;
        }
        let target = peers[crc32fast::hash(block.to_string().as_bytes()) as usize % peers.len()];
        match request(
            inner,
            target,
            Request::PutBlock {
                block: block.clone(),
                level,
                bytes,
            },
            inner.request_timeout(),
        ) {
            Ok(Response::Stored) => {
                inner.replicas.lock().insert(block, (target, level));
            }
            other => {
                tracing::error!(%block, executor = target, answer = ?other, "could not copy a replica again")
            }
        }
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, inner: Weak<Inner>) {
    loop {
        let Ok((stream, from)) = listener.accept().await else {
            continue;
        };
        let Some(i) = inner.upgrade() else {
            return;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &i).await {
                tracing::error!(%from, error = %e, "rejected a connection to the driver");
            }
        });
    }
}

async fn watch_heartbeats(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(i) = inner.upgrade() else {
            return;
        };
        let timeout = i.heartbeat_timeout();
        let silent: Vec<u32> = i
            .executors
            .lock()
            .iter()
            .filter(|(_, e)| e.last_heartbeat.elapsed() > timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in silent {
            lose(&i, id, &format!("no heartbeat for {timeout:?}"));
        }
    }
}

/// Serves one executor's connection: registration, then heartbeats and responses.
async fn connection(
    stream: tokio::net::TcpStream,
    inner: &Arc<Inner>,
) -> std::result::Result<(), protocol::ProtocolError> {
    let (mut reader, mut writer) = stream.into_split();
    let first = tokio::time::timeout(Duration::from_secs(10), protocol::read(&mut reader))
        .await
        .map_err(|_| {
            protocol::ProtocolError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no registration within 10 s",
            ))
        })??;
    let Some(Message::Register {
        cores,
        pid,
        build,
        graph,
    }) = first
    else {
        return Err(protocol::ProtocolError::Decode(format!(
            "expected a registration, got {first:?}"
        )));
    };
    let id = inner.next_executor.fetch_add(1, Ordering::Relaxed);
    let parallelism = inner.parallelism.load(Ordering::Relaxed) as u32;
    protocol::write(
        &mut writer,
        &Message::Registered {
            executor: id,
            parallelism,
        },
    )
    .await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let pending: Pending = Arc::default();
    inner.executors.lock().insert(
        id,
        ExecutorState {
            tx,
            pending: pending.clone(),
            last_heartbeat: Instant::now(),
            cores,
            pid,
            build,
            graph,
        },
    );
    inner.changed.notify_all();
    tracing::info!(executor = id, pid, cores, "executor registered");
    if build != build_id() {
        tracing::warn!(
            executor = id,
            pid,
            "the executor runs another build than the driver: it holds replicas but gets no tasks (deploy the same binary everywhere)"
        );
    }
    let writer_task = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let stop = matches!(m, Message::Shutdown);
            if protocol::write(&mut writer, &m).await.is_err() || stop {
                break;
            }
        }
    });
    let result = loop {
        match protocol::read(&mut reader).await {
            Ok(Some(Message::Heartbeat { counts, .. })) => {
                if let Some(e) = inner.executors.lock().get_mut(&id) {
                    e.last_heartbeat = Instant::now();
                }
                if !counts.is_empty() {
                    inner.input_counts.lock().insert(id, counts);
                }
            }
            Ok(Some(Message::Response { id: req, body })) => {
                if let Some(answer) = pending.lock().remove(&req) {
                    let _ = answer.try_send(body);
                }
            }
            // An executor asking for a block only the driver has (received input, a bucket
            // another executor wrote), or storing the driver's copy of one of its blocks.
            Ok(Some(Message::Request { id: req, body })) => {
                let blocks = inner.blocks.lock().upgrade();
                let tx = inner.executors.lock().get(&id).map(|e| e.tx.clone());
                tokio::task::spawn_blocking(move || {
                    let body = match (body, blocks) {
                        (_, None) => Response::Failed("the driver is shutting down".into()),
                        (Request::GetBlock { block }, Some(b)) => match b.get_bytes(&block) {
                            Ok(found) => Response::Block(found),
                            Err(e) => Response::Failed(e.to_string()),
                        },
                        (
                            Request::PutBlock {
                                block,
                                level,
                                bytes,
                            },
                            Some(b),
                        ) => {
                            let single = StorageLevel {
                                replication: 1,
                                ..level
                            };
                            match b.put_bytes(block, bytes, single) {
                                Ok(spate_storage::PutOutcome::NotStored) => {
                                    Response::Failed("the driver has no room for the block".into())
                                }
                                Ok(_) => Response::Stored,
                                Err(e) => Response::Failed(e.to_string()),
                            }
                        }
                        (other, _) => {
                            Response::Failed(format!("the driver does not serve {other:?}"))
                        }
                    };
                    if let Some(tx) = tx {
                        let _ = tx.send(Message::Response { id: req, body });
                    }
                });
            }
            Ok(Some(other)) => {
                tracing::warn!(executor = id, message = ?other, "unexpected message from an executor; ignored");
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    writer_task.abort();
    let why = match &result {
        Ok(()) => "its connection closed".to_string(),
        Err(e) => format!("its connection failed: {e}"),
    };
    lose(inner, id, &why);
    result
}
