//! The `Context`: the entry point of the RDD core. It owns the worker pool, the block manager,
//! the shuffle map-output tracker and the id generator.

use crate::scheduler::MapOutputTracker;
use crate::sync::{Arc, AtomicU64, Mutex, Ordering};
use crate::{Error, Result};
use spate_storage::{BlockManager, BlockManagerConfig, Codec};
use std::cell::RefCell;
use std::path::{Path, PathBuf};

/// Where jobs run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Master {
    /// One process with this many worker threads (`local`, `local[N]`, `local[*]`).
    Local(usize),
    /// `local-cluster[E,C]`: E executor processes of C threads each (cluster mode).
    LocalCluster {
        /// Executor processes.
        executors: usize,
        /// Task threads per executor.
        cores: usize,
    },
    /// `spate://HOST:PORT`: a driver that executors join (cluster mode).
    Remote(String),
}

impl Master {
    /// Parses a master string: `local`, `local[N]`, `local[*]`, `local-cluster[E,C]`,
    /// `spate://HOST:PORT`.
    pub fn parse(master: &str) -> Result<Master> {
        let bad = |reason: &str| Error::InvalidMaster {
            master: master.to_string(),
            reason: reason.to_string(),
        };
        let m = master.trim();
        if m == "local" {
            return Ok(Master::Local(1));
        }
        if let Some(inner) = m.strip_prefix("local[").and_then(|r| r.strip_suffix(']')) {
            if inner == "*" {
                let n = std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1);
                return Ok(Master::Local(n));
            }
            return match inner.parse::<usize>() {
                Ok(0) => Err(bad("the thread count must be at least 1")),
                Ok(n) => Ok(Master::Local(n)),
                Err(_) => Err(bad("the thread count must be a positive integer or *")),
            };
        }
        if let Some(inner) = m
            .strip_prefix("local-cluster[")
            .and_then(|r| r.strip_suffix(']'))
        {
            let parts: Vec<_> = inner
                .split(',')
                .map(|p| p.trim().parse::<usize>())
                .collect();
            return match parts.as_slice() {
                [Ok(e), Ok(c)] if *e > 0 && *c > 0 => Ok(Master::LocalCluster {
                    executors: *e,
                    cores: *c,
                }),
                _ => Err(bad(
                    "local-cluster takes two positive integers: local-cluster[EXECUTORS,CORES]",
                )),
            };
        }
        if let Some(addr) = m.strip_prefix("spate://") {
            return match addr.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    Ok(Master::Remote(addr.into()))
                }
                _ => Err(bad("expected spate://HOST:PORT")),
            };
        }
        Err(bad("unknown master"))
    }
}

/// Settings of a [`Context`].
#[derive(Clone, Debug)]
pub struct ContextConfig {
    /// The master string (see [`Master::parse`]).
    pub master: String,
    /// The application's name (for logs).
    pub app_name: String,
    /// The block manager's memory budget in bytes.
    pub memory_bytes: u64,
    /// Where scratch directories are created.
    pub scratch_parent: PathBuf,
    /// Compression of serialized blocks.
    pub codec: Codec,
    /// Default partition count of shuffles; `None` means the number of worker threads.
    pub default_parallelism: Option<usize>,
    /// The program `local-cluster` starts as executors (`None`: this process's own binary).
    pub executor_program: Option<PathBuf>,
    /// Arguments `local-cluster` passes to its executors after the role's own (the job's
    /// settings and arguments, so that they build the same graph).
    pub executor_args: Vec<String>,
    /// Send a copy of every persisted partition this context computes to its block manager's
    /// transport peer. Executors set it: the driver then holds every persisted partition, as in
    /// local mode, and a later batch's task on any executor reads it from there (the previous
    /// state, a window's old batches).
    pub copy_persisted_to_peer: bool,
    /// On a cluster: how long the driver waits for an executor's answer to a request other than
    /// a task (a cut of a receiver's blocks, a block read or copy) before it gives up on it
    /// (Spark's `spark.akka.askTimeout`). 10 s.
    pub request_timeout: std::time::Duration,
    /// On a cluster: how long an executor may send no heartbeat (they send one every 500 ms)
    /// before the driver takes it for lost, runs its tasks elsewhere and moves its receivers.
    /// 3 s; at least 1 s. Longer rides out executors paused by the machine (swapping, a
    /// stopped VM) at the cost of noticing a dead one later.
    pub heartbeat_timeout: std::time::Duration,
}

impl ContextConfig {
    /// Default settings for `master`.
    pub fn new(master: &str) -> ContextConfig {
        ContextConfig {
            master: master.to_string(),
            app_name: "spate".into(),
            memory_bytes: 512 << 20,
            scratch_parent: std::env::temp_dir(),
            codec: Codec::None,
            default_parallelism: None,
            executor_program: None,
            executor_args: Vec::new(),
            copy_persisted_to_peer: false,
            request_timeout: crate::cluster::REQUEST_TIMEOUT,
            heartbeat_timeout: crate::cluster::HEARTBEAT_TIMEOUT,
        }
    }
}

pub(crate) struct ContextInner {
    pub(crate) master: Master,
    pub(crate) config: ContextConfig,
    pub(crate) threads: usize,
    pub(crate) default_parallelism: usize,
    pub(crate) pool: rayon::ThreadPool,
    pub(crate) block_manager: Arc<BlockManager>,
    pub(crate) tracker: MapOutputTracker,
    pub(crate) next_id: AtomicU64,
    pub(crate) checkpoint_dir: Mutex<Option<PathBuf>>,
    pub(crate) stage_lock: parking_lot::ReentrantMutex<()>,
    pub(crate) jobs_run: AtomicU64,
    pub(crate) cluster: Option<crate::cluster::Cluster>,
    pub(crate) remote: Mutex<Option<Arc<dyn RemoteCompute>>>,
}

/// A handle to the RDD runtime; cheap to clone.
///
/// Jobs run on a dedicated pool of worker threads (N for `local[N]`). A failing job leaves the
/// context usable for the next one.
#[derive(Clone)]
pub struct Context {
    pub(crate) inner: Arc<ContextInner>,
}

thread_local! {
    /// The active id scope: (scope base, next index).
    static ID_SCOPE: RefCell<Option<(u64, u64)>> = const { RefCell::new(None) };
    /// The name under which RDDs made now can be rebuilt in another process, if any.
    static SHIP_SCOPE: std::cell::Cell<Option<ShipName>> = const { std::cell::Cell::new(None) };
}

/// The name by which another process running the same job rebuilds an RDD: the streaming
/// operator that made it and the batch time (see ARCHITECTURE.md: tasks are names, not closures).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShipName {
    /// The operator's id (the same in every process).
    pub op: u64,
    /// The batch time in ms.
    pub time_ms: u64,
}

/// Computes partitions of RDDs in other processes (the cluster's executors).
pub trait RemoteCompute: Send + Sync {
    /// Computes partition `partition` of RDD `rdd`, made under `name`, elsewhere and returns it
    /// serialized (as `serialize_block` writes it); `None` when no other process can (no
    /// executors): the caller computes it itself, as it also does after an error.
    fn compute(
        &self,
        name: ShipName,
        rdd: u64,
        partition: usize,
        preferred: Option<&spate_storage::BlockId>,
    ) -> Option<Result<Vec<u8>>>;

    /// Runs map task `map` of shuffle `shuffle` (made under `name`) elsewhere, leaving its
    /// buckets with whoever ran it (they are fetched from there by the reduce tasks); `None`
    /// when no other process can, and the caller runs it itself, as it also does after an error.
    fn run_map(
        &self,
        _name: ShipName,
        _shuffle: u64,
        _map: usize,
        _reduces: usize,
        _preferred: Option<&spate_storage::BlockId>,
    ) -> Option<Result<()>> {
        None
    }
}

/// The ship scope of RDDs being made on this thread.
pub(crate) fn ship_scope() -> Option<ShipName> {
    SHIP_SCOPE.with(std::cell::Cell::get)
}

/// High bit set on scoped ids so they never collide with counter-assigned ones.
const SCOPED: u64 = 1 << 63;

fn mix(a: u64, b: u64) -> u64 {
    // splitmix64 finalizer over the pair; deterministic across processes.
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Context {
    /// A context for `master` with default settings (see [`Master::parse`]).
    pub fn new(master: &str) -> Result<Context> {
        Context::with_config(ContextConfig::new(master))
    }

    /// A context with the given settings.
    pub fn with_config(config: ContextConfig) -> Result<Context> {
        let master = Master::parse(&config.master)?;
        // Cluster masters: executors join and hold replicas; tasks run on this process's
        // worker threads (as many as the cluster's cores) until task shipping exists.
        let listen = |addr: &str| -> Result<crate::cluster::Cluster> {
            let cluster = crate::cluster::Cluster::listen(addr)?;
            cluster.set_request_timeout(config.request_timeout);
            cluster.set_heartbeat_timeout(config.heartbeat_timeout);
            Ok(cluster)
        };
        let (threads, cluster) = match &master {
            Master::Local(n) => (*n, None),
            Master::LocalCluster { executors, cores } => {
                let cluster = listen("127.0.0.1:0")?;
                let program = match &config.executor_program {
                    Some(p) => p.clone(),
                    None => std::env::current_exe().map_err(|e| {
                        Error::Cluster(format!("cannot find this program to start executors: {e}"))
                    })?,
                };
                cluster.set_parallelism(
                    config
                        .default_parallelism
                        .unwrap_or(executors * cores)
                        .max(1),
                );
                cluster.spawn_local(*executors, *cores, &program, &config.executor_args)?;
                (executors * cores, Some(cluster))
            }
            Master::Remote(addr) => {
                let cluster = listen(addr)?;
                let n = std::thread::available_parallelism().map_or(2, |n| n.get());
                cluster.set_parallelism(config.default_parallelism.unwrap_or(n).max(1));
                (n, Some(cluster))
            }
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("spate-worker-{i}"))
            .build()
            .map_err(|e| {
                Error::InvalidArgument(format!("cannot start {threads} worker threads: {e}"))
            })?;
        let block_manager = Arc::new(BlockManager::new(BlockManagerConfig {
            memory_bytes: config.memory_bytes,
            scratch_parent: config.scratch_parent.clone(),
            codec: config.codec,
        })?);
        if let Some(c) = &cluster {
            c.attach(&block_manager);
        }
        let default_parallelism = config.default_parallelism.unwrap_or(threads).max(1);
        Ok(Context {
            inner: Arc::new(ContextInner {
                master,
                threads,
                default_parallelism,
                pool,
                block_manager,
                tracker: MapOutputTracker::default(),
                next_id: AtomicU64::new(0),
                checkpoint_dir: Mutex::new(None),
                stage_lock: parking_lot::ReentrantMutex::new(()),
                jobs_run: AtomicU64::new(0),
                cluster,
                remote: Mutex::new(None),
                config,
            }),
        })
    }

    /// The cluster (executors holding replicas) of a `local-cluster` or `spate://` master.
    pub fn cluster(&self) -> Option<&crate::cluster::Cluster> {
        self.inner.cluster.as_ref()
    }

    /// The parsed master.
    pub fn master(&self) -> &Master {
        &self.inner.master
    }

    /// The settings this context was made with.
    pub fn config(&self) -> &ContextConfig {
        &self.inner.config
    }

    /// The number of worker threads.
    pub fn worker_threads(&self) -> usize {
        self.inner.threads
    }

    /// The partition count used by shuffles when none is given.
    pub fn default_parallelism(&self) -> usize {
        self.inner.default_parallelism
    }

    /// This process's block manager.
    pub fn block_manager(&self) -> &Arc<BlockManager> {
        &self.inner.block_manager
    }

    /// The number of jobs run so far.
    pub fn jobs_run(&self) -> u64 {
        self.inner.jobs_run.load(Ordering::Relaxed)
    }

    /// Sets the directory under which `Rdd::checkpoint` writes partitions.
    pub fn set_checkpoint_dir(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(Error::io("creating checkpoint directory", dir))?;
        *self.inner.checkpoint_dir.lock() = Some(dir.to_path_buf());
        Ok(())
    }

    /// The checkpoint directory, if set.
    pub fn checkpoint_dir(&self) -> Option<PathBuf> {
        self.inner.checkpoint_dir.lock().clone()
    }

    /// A new id for an RDD or shuffle.
    ///
    /// Outside a scope ids come from a counter, so a deterministic program gets the same ids in
    /// every process. Inside [`Context::with_id_scope`] they are derived from the scope's name and
    /// the position within it, so code that builds RDDs on demand (one set per batch, say) names
    /// them structurally, independent of what was built before.
    pub fn new_id(&self) -> u64 {
        let scoped = ID_SCOPE.with(|s| {
            let mut s = s.borrow_mut();
            s.as_mut().map(|(base, next)| {
                let id = mix(*base, *next);
                *next += 1;
                id | SCOPED
            })
        });
        scoped.unwrap_or_else(|| self.inner.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Runs `f` with ids derived from `scope` (for example a hash of an operator id and a batch
    /// time). Scopes nest; the previous scope is restored afterwards.
    pub fn with_id_scope<R>(&self, scope: u64, f: impl FnOnce() -> R) -> R {
        let prev = ID_SCOPE.with(|s| s.borrow_mut().replace((mix(scope, 0x0053_5041_5445), 0)));
        struct Restore(Option<(u64, u64)>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let prev = self.0.take();
                ID_SCOPE.with(|s| *s.borrow_mut() = prev);
            }
        }
        let _restore = Restore(prev);
        f()
    }

    /// Runs `f` with RDDs made in it rebuildable elsewhere under `name` (`None`: not
    /// rebuildable, for operators that read other batches or driver-only state). Scopes nest.
    pub fn with_ship_scope<R>(&self, name: Option<ShipName>, f: impl FnOnce() -> R) -> R {
        let prev = SHIP_SCOPE.with(|s| s.replace(name));
        struct Restore(Option<ShipName>);
        impl Drop for Restore {
            fn drop(&mut self) {
                SHIP_SCOPE.with(|s| s.set(self.0));
            }
        }
        let _restore = Restore(prev);
        f()
    }

    /// Installs what computes shippable partitions in other processes.
    pub fn set_remote(&self, remote: Arc<dyn RemoteCompute>) {
        *self.inner.remote.lock() = Some(remote);
    }

    pub(crate) fn remote(&self) -> Option<Arc<dyn RemoteCompute>> {
        self.inner.remote.lock().clone()
    }

    /// Removes every block and tracker entry; the scratch directory is deleted. The context
    /// should not be used afterwards.
    pub fn stop(&self) {
        self.inner.block_manager.shutdown();
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("master", &self.inner.master)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_parse_or_fail_clearly() {
        assert_eq!(Master::parse("local").unwrap(), Master::Local(1));
        assert_eq!(Master::parse("local[4]").unwrap(), Master::Local(4));
        assert!(matches!(Master::parse("local[*]").unwrap(), Master::Local(n) if n >= 1));
        assert_eq!(
            Master::parse("local-cluster[3,1]").unwrap(),
            Master::LocalCluster {
                executors: 3,
                cores: 1
            }
        );
        assert_eq!(
            Master::parse("spate://127.0.0.1:7077").unwrap(),
            Master::Remote("127.0.0.1:7077".into())
        );
        for bad in [
            "",
            "local[0]",
            "local[x]",
            "yarn",
            "local-cluster[1]",
            "spate://nohost",
            "local[2",
        ] {
            let err = Master::parse(bad).unwrap_err().to_string();
            assert!(err.contains("invalid master"), "{bad}: {err}");
        }
        let err = Context::new("mesos://x").unwrap_err().to_string();
        assert!(err.contains("local[N]"), "{err}");
    }

    #[test]
    fn scoped_ids_are_structural() {
        let a = Context::new("local").unwrap();
        let b = Context::new("local").unwrap();
        b.new_id();
        b.new_id();
        let ids_a: Vec<u64> = a.with_id_scope(42, || (0..3).map(|_| a.new_id()).collect());
        let ids_b: Vec<u64> = b.with_id_scope(42, || (0..3).map(|_| b.new_id()).collect());
        assert_eq!(ids_a, ids_b);
        let other: Vec<u64> = a.with_id_scope(43, || (0..3).map(|_| a.new_id()).collect());
        assert_ne!(ids_a, other);
        assert_eq!(a.new_id(), 0, "the counter is untouched by scopes");
    }
}
