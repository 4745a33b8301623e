//! Batch programs on a cluster: the RDD counterpart of `#[streaming_job]`'s entry point.
//!
//! No closure crosses a process boundary (ARCHITECTURE.md), so a batch program names the RDDs
//! its executors may compute: each *job* is a plain function building an RDD from the context
//! and the program's arguments, registered by name in a [`BatchProgram`]. The driver builds a
//! job through [`Session::rdd`] inside a structural id scope and a ship scope named by the job's
//! index and how many times it was built; an executor (the same binary, started with
//! `--executor --driver HOST:PORT`) rebuilds the same RDD with the same ids when a task names it,
//! and computes the partition or runs the shuffle map task asked for. Everything in between —
//! map outputs kept where they were written, fetch failures re-running map tasks, tasks of a lost
//! executor re-run elsewhere — is the cluster machinery streaming jobs use.

use crate::cluster::{ExecutorConfig, TaskRunner, TaskSpec};
use crate::{Context, ContextConfig, Data, Error, Rdd, RddBase, Result, ShipName};
use parking_lot::Mutex;
use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A job: builds an RDD from the context and the program's arguments. The same code runs in
/// the driver and in every executor, so it must build the same lineage each time (no clocks, no
/// randomness that is not seeded, no state outside its arguments).
pub type Build<T> = fn(&Context, &[String]) -> Rdd<T>;

type Erased = Arc<dyn Fn(&Context, &[String]) -> Arc<dyn RddBase> + Send + Sync>;

struct Job {
    name: &'static str,
    erased: Erased,
    typed: Box<dyn Any + Send + Sync>,
}

/// A batch program: its name and its jobs, the same in the driver and its executors.
pub struct BatchProgram {
    name: &'static str,
    jobs: Vec<Job>,
}

impl std::fmt::Debug for BatchProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchProgram")
            .field("name", &self.name)
            .field(
                "jobs",
                &self.jobs.iter().map(|j| j.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The id scope and ship name of the `instance`-th build of job `op`.
fn ship_name(op: u64, instance: u64) -> ShipName {
    ShipName {
        op,
        time_ms: instance,
    }
}

fn id_scope(name: ShipName) -> u64 {
    // Distinct from the streaming layer's scopes (operator id, batch time): a high tag bit.
    (1 << 63) ^ name.op.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ name.time_ms
}

fn build_named(job: &Job, ctx: &Context, args: &[String], name: ShipName) -> Arc<dyn RddBase> {
    ctx.with_id_scope(id_scope(name), || {
        ctx.with_ship_scope(Some(name), || (job.erased)(ctx, args))
    })
}

impl BatchProgram {
    /// A program without jobs.
    pub fn new(name: &'static str) -> BatchProgram {
        BatchProgram {
            name,
            jobs: Vec::new(),
        }
    }

    /// Registers job `name`, built by `build`.
    pub fn job<T: Data>(mut self, name: &'static str, build: Build<T>) -> BatchProgram {
        self.jobs.push(Job {
            name,
            erased: Arc::new(move |ctx: &Context, args: &[String]| build(ctx, args).as_base()),
            typed: Box::new(build),
        });
        self
    }

    /// What executors and the driver compare: the program's name and its jobs' names, in order.
    pub fn fingerprint(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in std::iter::once(self.name)
            .chain(self.jobs.iter().map(|j| j.name))
            .flat_map(|s| s.bytes().chain([0]))
        {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    /// The entry point: with `--executor --driver HOST:PORT [--cores N]` it is an executor of
    /// that driver; otherwise the driver, on `--master MASTER` (default `local[2]`), running
    /// `run` with the remaining arguments. Exits the process with status 1 on an error.
    pub fn main(self, run: fn(&Session) -> Result<()>) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if let Err(e) = self.run_with(&args, run) {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }

    /// [`BatchProgram::main`] with explicit arguments (the program name excluded).
    pub fn run_with(self, args: &[String], run: fn(&Session) -> Result<()>) -> Result<()> {
        let cli = Cli::parse(args)?;
        let program = Arc::new(self);
        if cli.executor {
            let driver = cli.driver.ok_or_else(|| {
                Error::InvalidArgument("the executor role needs --driver HOST:PORT".into())
            })?;
            let (cores, rest, p) = (cli.cores, cli.args, program.clone());
            let make = move |parallelism: usize| -> Result<Arc<dyn TaskRunner>> {
                let mut config = ContextConfig::new(&format!("local[{cores}]"));
                config.default_parallelism = Some(parallelism);
                config.copy_persisted_to_peer = true;
                Ok(Arc::new(BatchRunner {
                    ctx: Context::with_config(config)?,
                    program: p.clone(),
                    args: rest.clone(),
                    built: Mutex::new(VecDeque::new()),
                }))
            };
            let mut config = ExecutorConfig::new(&driver, cores);
            config.runner = Some(Arc::new(make));
            config.graph = Some(program.fingerprint());
            return crate::cluster::run_executor(&config);
        }
        let mut config = ContextConfig::new(&cli.master);
        config.app_name = program.name.to_string();
        config.executor_args = std::iter::once("--".to_string())
            .chain(cli.args.iter().cloned())
            .collect();
        let ctx = Context::with_config(config)?;
        if let Some(cluster) = ctx.cluster() {
            let graph = program.fingerprint();
            ctx.set_remote(
                cluster
                    .shipper(move |name, rdd, partition| Some((task(name, rdd, partition), graph))),
            );
        }
        let session = Session {
            ctx,
            program,
            args: cli.args,
            builds: AtomicU64::new(0),
        };
        let result = run(&session);
        if let Some(cluster) = session.ctx.cluster() {
            cluster.log_summary();
        }
        result
    }
}

/// The command line of a batch program.
struct Cli {
    master: String,
    executor: bool,
    driver: Option<String>,
    cores: usize,
    args: Vec<String>,
}

impl Cli {
    fn parse(args: &[String]) -> Result<Cli> {
        let mut cli = Cli {
            master: "local[2]".into(),
            executor: false,
            driver: None,
            cores: 1,
            args: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |flag: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| Error::InvalidArgument(format!("{flag} needs a value")))
            };
            match a.as_str() {
                "--master" => cli.master = value("--master")?,
                "--executor" => cli.executor = true,
                "--driver" => cli.driver = Some(value("--driver")?),
                "--cores" => {
                    let v = value("--cores")?;
                    cli.cores = v.parse().map_err(|_| {
                        Error::InvalidArgument(format!("--cores {v:?}: expected a number"))
                    })?;
                }
                // Passed to every executor by `local-cluster`; batch programs have no page.
                "--no-ui" => {}
                "--" => {
                    cli.args.extend(it.by_ref().cloned());
                    break;
                }
                _ => cli.args.push(a.clone()),
            }
        }
        Ok(cli)
    }
}

/// The driver's view of a running batch program.
pub struct Session {
    ctx: Context,
    program: Arc<BatchProgram>,
    args: Vec<String>,
    builds: AtomicU64,
}

impl Session {
    /// The driver's context.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The program's arguments (what the command line holds besides the options).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Builds job `name` afresh: on a cluster its partitions and shuffle map tasks run on the
    /// executors. An unknown name or a type other than the job's is an error.
    pub fn rdd<T: Data>(&self, name: &str) -> Result<Rdd<T>> {
        let (op, job) = self
            .program
            .jobs
            .iter()
            .enumerate()
            .find(|(_, j)| j.name == name)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "no job named {name:?} in program {}: register it with BatchProgram::job",
                    self.program.name
                ))
            })?;
        let build = job.typed.downcast_ref::<Build<T>>().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "job {name:?} builds an RDD of another element type than {}",
                std::any::type_name::<T>()
            ))
        })?;
        let instance = self.builds.fetch_add(1, Ordering::Relaxed) + 1;
        let ship = ship_name(op as u64, instance);
        Ok(self.ctx.with_id_scope(id_scope(ship), || {
            self.ctx
                .with_ship_scope(Some(ship), || build(&self.ctx, &self.args))
        }))
    }
}

/// The task of partition `partition` of RDD `rdd` of a job's build `name`.
fn task(name: ShipName, rdd: u64, partition: usize) -> TaskSpec {
    TaskSpec {
        op: name.op,
        time_ms: name.time_ms,
        zero_ms: 0,
        rdd,
        partition: partition as u32,
        inputs: Vec::new(),
        map_of: None,
        held: Vec::new(),
    }
}

/// How many built jobs an executor keeps (their shuffle outputs live as long as they do).
const KEEP_BUILT: usize = 16;

/// The executor's side: rebuilds the named job and computes what the task asks.
struct BatchRunner {
    ctx: Context,
    program: Arc<BatchProgram>,
    args: Vec<String>,
    built: Mutex<VecDeque<(ShipName, Arc<dyn RddBase>)>>,
}

impl BatchRunner {
    fn root(&self, name: ShipName) -> Result<Arc<dyn RddBase>> {
        let mut built = self.built.lock();
        if let Some((_, r)) = built.iter().find(|(n, _)| *n == name) {
            return Ok(r.clone());
        }
        let job = self.program.jobs.get(name.op as usize).ok_or_else(|| {
            Error::Cluster(format!(
                "job {} is not in this executor's program {}: is it the same build as the driver?",
                name.op, self.program.name
            ))
        })?;
        let root = build_named(job, &self.ctx, &self.args, name);
        built.push_back((name, root.clone()));
        if built.len() > KEEP_BUILT {
            built.pop_front();
        }
        Ok(root)
    }
}

fn no_receivers() -> Error {
    Error::Cluster("a batch program has no receivers".into())
}

impl TaskRunner for BatchRunner {
    fn block_manager(&self) -> Arc<spate_storage::BlockManager> {
        self.ctx.block_manager().clone()
    }

    fn run(&self, task: &TaskSpec) -> Result<Vec<u8>> {
        let name = ship_name(task.op, task.time_ms);
        let root = self.root(name)?;
        let tc = crate::TaskContext::for_remote(&self.ctx, task.partition as usize);
        let differs = |what: String| {
            Error::Cluster(format!(
                "{what} is not in the lineage of job {} (build {}): the executor's program differs from the driver's",
                task.op, task.time_ms
            ))
        };
        match task.map_of {
            Some(shuffle) => crate::find_shuffle(&root, shuffle)
                .ok_or_else(|| differs(format!("shuffle {shuffle}")))?
                .run_map_task(task.partition as usize, &tc)
                .map(|()| Vec::new()),
            None => crate::find_in_lineage(&root, task.rdd)
                .ok_or_else(|| differs(format!("RDD {}", task.rdd)))?
                .compute_serialized(task.partition as usize, &tc),
        }
    }

    fn start_receiver(&self, _: u64, _: u64, _: Option<String>) -> Result<()> {
        Err(no_receivers())
    }

    fn cut_receiver(&self, _: u64, _: u64, _: u64, _: u64) -> Result<crate::cluster::Cut> {
        Err(no_receivers())
    }

    fn stop_receiver(&self, _: u64) -> Result<()> {
        Err(no_receivers())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ctx: &Context, _: &[String]) -> Rdd<(String, u64)> {
        ctx.parallelize(vec!["a b".to_string(), "b c".to_string()], 2)
            .flat_map(|l: String| l.split(' ').map(String::from).collect::<Vec<_>>())
            .map(|w| (w, 1))
            .reduce_by_key(|a, b| a + b)
    }

    #[test]
    fn jobs_are_found_by_name_and_type_and_rebuilt_with_the_same_ids() {
        let program = BatchProgram::new("t").job("words", words);
        let fp = program.fingerprint();
        assert_ne!(fp, BatchProgram::new("t").fingerprint());
        let program = Arc::new(program);
        let ctx = Context::new("local[2]").unwrap();
        let session = Session {
            ctx: ctx.clone(),
            program: program.clone(),
            args: Vec::new(),
            builds: AtomicU64::new(0),
        };
        let rdd = session.rdd::<(String, u64)>("words").unwrap();
        let mut got = rdd.collect().unwrap();
        got.sort();
        assert_eq!(got, [("a".into(), 1), ("b".into(), 2), ("c".into(), 1)]);
        assert!(session.rdd::<String>("words").is_err(), "wrong type");
        assert!(session.rdd::<(String, u64)>("nope").is_err(), "unknown job");
        // An executor rebuilding build 1 of job 0 finds the same RDD and shuffle ids.
        let runner = BatchRunner {
            ctx: Context::new("local[1]").unwrap(),
            program,
            args: Vec::new(),
            built: Mutex::new(VecDeque::new()),
        };
        let root = runner.root(ship_name(0, 1)).unwrap();
        assert_eq!(root.id(), rdd.id());
        assert!(crate::find_in_lineage(&root, rdd.id()).is_some());
        assert!(
            Arc::ptr_eq(&root, &runner.root(ship_name(0, 1)).unwrap()),
            "kept"
        );
    }

    #[test]
    fn the_command_line_selects_the_role() {
        let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        let c = Cli::parse(&s(&[
            "--executor",
            "--driver",
            "h:1",
            "--cores",
            "3",
            "--no-ui",
            "--",
            "x",
            "--y",
        ]))
        .unwrap();
        assert!(c.executor);
        assert_eq!((c.driver.as_deref(), c.cores), (Some("h:1"), 3));
        assert_eq!(c.args, s(&["x", "--y"]));
        let c = Cli::parse(&s(&["--master", "local[4]", "in", "out"])).unwrap();
        assert_eq!((c.master.as_str(), c.executor), ("local[4]", false));
        assert_eq!(c.args, s(&["in", "out"]));
        assert!(Cli::parse(&s(&["--cores", "many"])).is_err());
    }
}
