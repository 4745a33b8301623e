//! The runtime side of `#[streaming_job]`: the static graph the macro emits, the tags that tie
//! each runtime operator to its static id, the run-time check that the code built exactly the
//! graph seen at compile time, and the generated entry point's command line.

use crate::{Error, Result, StreamingContext};
use std::cell::Cell;
use std::fmt::Write as _;
use std::time::Duration;

/// One operation of a job's static graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticOp {
    /// Stable id: position in the job function.
    pub id: usize,
    /// The method (`map`, `reduce_by_key_and_window`, …).
    pub name: &'static str,
    /// `source`, `transform`, `combine`, `window` or `output`.
    pub kind: &'static str,
    /// Ids of the operations it reads.
    pub parents: &'static [usize],
    /// The window width in ms, when written as a literal.
    pub window_ms: Option<u64>,
    /// The slide of the stream it makes, in ms, when known.
    pub slide_ms: Option<u64>,
    /// The `let` name it is bound to.
    pub binding: Option<&'static str>,
    /// The element type of its input, where written on a closure parameter.
    pub input_type: Option<&'static str>,
    /// Where it is in the source (`file:line:column`).
    pub location: &'static str,
}

/// A job's operator graph, known at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobGraph {
    /// The job's name.
    pub name: &'static str,
    /// The job function's name.
    pub function: &'static str,
    /// The batch interval declared in the attribute.
    pub batch_ms: u64,
    /// The checkpoint directory declared in the attribute.
    pub checkpoint: Option<&'static str>,
    /// The default master.
    pub master: &'static str,
    /// The operations, by id.
    pub ops: &'static [StaticOp],
    /// A hash of the graph's structure (operations, edges, durations; not source locations).
    pub fingerprint: u64,
}

impl JobGraph {
    /// The graph as text: one operation per line.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "job {} (batch {} ms, fingerprint {:016x})\n",
            self.name, self.batch_ms, self.fingerprint
        );
        for op in self.ops {
            let _ = write!(s, "  #{} {} {}", op.id, op.kind, op.name);
            if let Some(b) = op.binding {
                let _ = write!(s, " as {b}");
            }
            if !op.parents.is_empty() {
                let _ = write!(s, " <- {:?}", op.parents);
            }
            if let Some(w) = op.window_ms {
                let _ = write!(s, " window {w} ms");
            }
            if let Some(sl) = op.slide_ms {
                let _ = write!(s, " slide {sl} ms");
            }
            if let Some(t) = op.input_type {
                let _ = write!(s, " input {t}");
            }
            if !op.location.is_empty() {
                let _ = write!(s, " at {}", op.location);
            }
            s.push('\n');
        }
        s
    }

    /// The graph in Graphviz DOT.
    pub fn to_dot(&self) -> String {
        let mut s = format!("digraph \"{}\" {{\n  rankdir=LR;\n", self.name);
        for op in self.ops {
            let shape = match op.kind {
                "source" => "invhouse",
                "output" => "house",
                "window" => "box3d",
                _ => "box",
            };
            let label = match op.binding {
                Some(b) => format!("{}\\n{}", op.name, b),
                None => op.name.to_string(),
            };
            let _ = writeln!(s, "  op{} [label=\"{label}\", shape={shape}];", op.id);
            for p in op.parents {
                let _ = writeln!(s, "  op{p} -> op{};", op.id);
            }
        }
        s.push_str("}\n");
        s
    }
}

thread_local! {
    static CURRENT_OP: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The static id of the operation being built on this thread, if any.
pub(crate) fn current_op() -> Option<usize> {
    CURRENT_OP.with(Cell::get)
}

/// Runs `f` (one graph-building call of a job function) with operators tagged as static op `id`.
/// Emitted by the macro; not meant to be called by hand.
#[doc(hidden)]
pub fn op<R>(id: usize, f: impl FnOnce() -> R) -> R {
    let prev = CURRENT_OP.with(|c| c.replace(Some(id)));
    struct Restore(Option<usize>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT_OP.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(prev);
    f()
}

/// Implemented by streams of key-value pairs; key-value operations require it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a stream of (key, value) pairs",
    label = "this key-value operation needs a DStream<(K, V)>",
    note = "key-value operations (reduce_by_key, join, update_state_by_key, …) work on pairs: map the elements to pairs first, e.g. `.map(|w| (w, 1))`"
)]
pub trait PairStream {}

impl<K: crate::Key, V: crate::Data> PairStream for crate::DStream<(K, V)> {}

/// Asserts at compile time that a receiver is a stream of pairs. Emitted by the macro.
#[doc(hidden)]
pub fn assert_pairs<S: PairStream + ?Sized>(_stream: &S) {}

/// Builds a job's graph on `ssc` with `build` and checks that every operator it made was seen by
/// the macro, in the same order, and that every static operation was built.
pub fn build(ssc: &StreamingContext, graph: &JobGraph, build: fn(&StreamingContext)) -> Result<()> {
    if let (Some(dir), false) = (graph.checkpoint, ssc.has_checkpoint_dir()) {
        ssc.checkpoint(dir)?;
    }
    let before = ssc.creation_log().len();
    build(ssc);
    let log: Vec<(Option<usize>, String)> = ssc.creation_log().into_iter().skip(before).collect();
    verify(graph, &log).map_err(Error::GraphMismatch)?;
    ssc.set_fingerprint(graph.fingerprint);
    ssc.set_job_graph(*graph);
    Ok(())
}

/// Compares what was built (static tags in creation order, with a description of each runtime
/// operator) with the static graph.
pub(crate) fn verify(
    graph: &JobGraph,
    log: &[(Option<usize>, String)],
) -> std::result::Result<(), String> {
    let mut last = 0usize;
    let mut seen = vec![false; graph.ops.len()];
    for (tag, what) in log {
        match tag {
            None => {
                return Err(format!(
                    "{what} was built outside what #[streaming_job] reads (a helper function, a loop or a condition?): build every stream with `let` statements in the job function"
                ));
            }
            Some(id) if *id >= graph.ops.len() => {
                return Err(format!("{what} has static id {id}, beyond the graph"));
            }
            Some(id) if *id < last => {
                let op = &graph.ops[*id];
                return Err(format!(
                    "operation #{id} `{}` at {} was built out of order ({what})",
                    op.name, op.location
                ));
            }
            Some(id) => {
                last = *id;
                seen[*id] = true;
            }
        }
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        let op = &graph.ops[missing];
        return Err(format!(
            "operation #{missing} `{}` at {} was not built at run time (is it behind a condition?)",
            op.name, op.location
        ));
    }
    Ok(())
}

/// The generated entry point's command line.
#[derive(Debug, clap::Parser)]
#[command(about = "A Spate streaming job")]
struct Cli {
    /// Where to run: local, local[N], local[*], local-cluster[E,C], spate://HOST:PORT.
    #[arg(long)]
    master: Option<String>,
    /// Batch interval override (e.g. 500ms, 2s).
    #[arg(long)]
    batch: Option<String>,
    /// Checkpoint directory (overrides the attribute's).
    #[arg(long)]
    checkpoint: Option<std::path::PathBuf>,
    /// Stop gracefully after this long (e.g. 30s, 5m); default: run until killed.
    #[arg(long)]
    run_for: Option<String>,
    /// Run as an executor of a driver (cluster mode).
    #[arg(long)]
    executor: bool,
    /// The driver an executor joins (HOST:PORT).
    #[arg(long)]
    driver: Option<String>,
    /// Task threads of an executor.
    #[arg(long, default_value_t = 1)]
    cores: usize,
    /// Port of the monitoring page (/, /api/*, /metrics); the next free one of the 16 after it
    /// is taken if it is busy.
    #[arg(long, default_value_t = 4040)]
    ui_port: u16,
    /// Address the monitoring page listens on.
    #[arg(long, default_value = "127.0.0.1")]
    ui_host: String,
    /// Do not serve the monitoring page.
    #[arg(long)]
    no_ui: bool,
    /// Log level (error, warn, info, debug, trace; or a tracing filter such as
    /// `info,spate_core=debug`). The Kafka client's own messages start at warn.
    #[arg(long, default_value = "info,rskafka=warn")]
    log_level: String,
    /// Print the job's graph as text and exit.
    #[arg(long)]
    print_graph: bool,
    /// Print the job's graph as Graphviz DOT and exit.
    #[arg(long)]
    dot: bool,
    /// An application setting the job reads with `ssc.conf(key)` (repeatable). Keys starting
    /// with `spate.` are the engine's own: `spate.default.parallelism=N` (partitions of
    /// shuffles), `spate.memory=SIZE` (the block store's memory, e.g. 512m or 2g),
    /// `spate.codec=none|lz4` (compression of serialized blocks), `spate.request.timeout=DUR`
    /// and `spate.heartbeat.timeout=DUR` (on a cluster); and the receivers' settings
    /// `spate.streaming.blockInterval=DUR`, `spate.streaming.receiver.maxRate=N` (records per
    /// second per receiver; 0: no limit), `spate.streaming.receiver.memoryFraction=F` and
    /// `spate.streaming.receiver.writeAheadLog.enable=true|false`.
    #[arg(long = "conf", value_name = "KEY=VALUE", value_parser = key_value)]
    conf: Vec<(String, String)>,
    /// Arguments for the job (`ssc.args()`).
    args: Vec<String>,
}

fn key_value(s: &str) -> std::result::Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

/// The engine settings among `conf` (keys starting with `spate.`), applied to `config` and to
/// `receiver` (the settings of the receivers the job starts, named as Spark names them); every
/// one that is unknown or does not parse is listed in the error.
fn engine_settings(
    conf: &[(String, String)],
    config: &mut spate_core::ContextConfig,
    receiver: &mut crate::ReceiverConfig,
) -> Result<()> {
    let mut problems = Vec::new();
    for (key, value) in conf.iter().filter(|(k, _)| k.starts_with("spate.")) {
        let v = value.trim();
        let applied = match key.as_str() {
            "spate.default.parallelism" => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .map(|n| config.default_parallelism = Some(n))
                .ok_or("expected a positive whole number of partitions"),
            "spate.memory" => byte_size(v)
                .filter(|b| *b >= 1 << 20)
                .map(|b| config.memory_bytes = b)
                .ok_or("expected a size of at least 1m, such as 512m or 2g"),
            "spate.codec" => spate_storage::Codec::from_name(v)
                .map(|c| config.codec = c)
            .ok_or("expected none or lz4"),
            "spate.request.timeout" => duration(v, key)
                .ok()
                .filter(|d| !d.is_zero())
                .map(|d| config.request_timeout = d)
                .ok_or("expected a duration of more than zero, such as 10s or 500ms"),
            "spate.heartbeat.timeout" => duration(v, key)
                .ok()
                .filter(|d| *d >= 2 * spate_core::cluster::HEARTBEAT_INTERVAL)
                .map(|d| config.heartbeat_timeout = d)
                .ok_or("expected a duration of at least 1s (executors send a heartbeat every 500ms), such as 3s or 30s"),
            "spate.streaming.blockInterval" => duration(v, key)
                .ok()
                .filter(|d| *d >= Duration::from_millis(1))
                .map(|d| receiver.block_interval = d)
                .ok_or("expected a duration of at least 1ms, such as 200ms"),
            "spate.streaming.receiver.maxRate" => v
                .parse::<u64>()
                .ok()
                .map(|n| receiver.max_rate = (n > 0).then_some(n))
                .ok_or("expected a whole number of records per second (0: no limit)"),
            "spate.streaming.receiver.memoryFraction" => v
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && *f > 0.0)
                .map(|f| receiver.memory_fraction = f)
                .ok_or("expected a fraction of the memory store above 0, such as 0.8 (1 or more: no limit)"),
            "spate.streaming.receiver.writeAheadLog.enable" => match v {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            }
            .map(|on| receiver.write_ahead_log = on)
            .ok_or("expected true or false"),
            _ => Err(
                "not an engine setting (the engine's are spate.default.parallelism, spate.memory, spate.codec, spate.request.timeout, spate.heartbeat.timeout, spate.streaming.blockInterval, spate.streaming.receiver.maxRate, spate.streaming.receiver.memoryFraction and spate.streaming.receiver.writeAheadLog.enable)",
            ),
        };
        if let Err(why) = applied {
            problems.push(format!("--conf {key}={value}: {why}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidSetting(problems))
    }
}

/// A size in bytes written as a whole number with an optional binary unit: `1048576`, `64k`,
/// `512m`, `2g` (as `--conf spate.memory=` takes it); `None` if it is not one or overflows.
pub fn byte_size(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let (num, shift) = match lower.strip_suffix(['k', 'm', 'g']) {
        Some(num) => (
            num,
            match lower.as_bytes()[lower.len() - 1] {
                b'k' => 10,
                b'm' => 20,
                _ => 30,
            },
        ),
        None => (lower.as_str(), 0),
    };
    let n: u64 = num.parse().ok()?;
    n.checked_mul(1u64 << shift)
}

fn duration(s: &str, what: &str) -> Result<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        Error::InvalidDuration(format!("{what} {s:?}: write it like 500ms, 2s or 5m"))
    })?;
    let per_unit: u64 = match unit {
        "ms" => 1,
        "s" | "" => 1000,
        "m" => 60_000,
        other => {
            return Err(Error::InvalidDuration(format!(
                "{what} {s:?}: unknown unit {other:?}; use ms, s or m"
            )));
        }
    };
    let d = n
        .checked_mul(per_unit)
        .map(Duration::from_millis)
        .filter(|d| *d <= crate::time::MAX_DURATION)
        .ok_or_else(|| {
            Error::InvalidDuration(format!(
                "{what} {s:?} is longer than ten years: check its unit"
            ))
        })?;
    Ok(d)
}

/// Parses `args` (the program name first) and runs the job until `--run-for` elapses or it is
/// stopped.
pub fn run<I: IntoIterator<Item = String>>(
    graph: &JobGraph,
    job: fn(&StreamingContext),
    args: I,
) -> Result<()> {
    use clap::Parser;
    let cli = Cli::try_parse_from(args).map_err(|e| match e.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
            print!("{e}");
            std::process::exit(0)
        }
        _ => Error::State(e.to_string()),
    })?;
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log_level).map_err(|e| {
        Error::State(format!(
            "--log-level {:?}: {e}; use error, warn, info, debug or trace, or a filter such as info,spate_core=debug",
            cli.log_level
        ))
    })?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    if cli.print_graph {
        print!("{}", graph.to_text());
        return Ok(());
    }
    if cli.dot {
        print!("{}", graph.to_dot());
        return Ok(());
    }
    let batch = match &cli.batch {
        Some(b) => duration(b, "--batch")?,
        None => Duration::from_millis(graph.batch_ms),
    };
    if cli.executor || cli.driver.is_some() {
        let Some(driver) = cli.driver.as_deref().filter(|_| cli.executor) else {
            return Err(Error::State(
                "the executor role needs both --executor and --driver HOST:PORT".into(),
            ));
        };
        // The same binary, another role: build the same graph (never started), join the driver
        // and compute the tasks it names until it is done.
        // Executors write no checkpoints; a scratch directory keeps the attribute's unused.
        let scratch = tempfile::tempdir().map_err(|e| Error::Io {
            action: "creating a scratch directory",
            path: std::env::temp_dir(),
            source: e,
        })?;
        let (cores, conf, args) = (cli.cores.max(1), cli.conf, cli.args);
        let dir = scratch.path().to_path_buf();
        let job_graph: JobGraph = *graph;
        // Built once the driver has told its parallelism, so partition counts (and with them the
        // RDDs' names) are the driver's.
        let make = move |parallelism: usize| -> spate_core::Result<
            std::sync::Arc<dyn spate_core::cluster::TaskRunner>,
        > {
            let built = (|| -> Result<StreamingContext> {
                let mut config = spate_core::ContextConfig::new(&format!("local[{cores}]"));
                // The memory, codec and receiver settings; partition counts are the driver's.
                let mut receiver = crate::ReceiverConfig::default();
                engine_settings(&conf, &mut config, &mut receiver)?;
                config.default_parallelism = Some(parallelism);
                config.copy_persisted_to_peer = true;
                let ssc = StreamingContext::with_context(
                    spate_core::Context::with_config(config)?,
                    batch,
                )?;
                // Receivers the driver places here run with these.
                ssc.set_receiver_config(receiver);
                for (k, v) in &conf {
                    ssc.set_conf(k.clone(), v.clone());
                }
                ssc.set_args(args.clone());
                ssc.checkpoint(&dir)?;
                build(&ssc, &job_graph, job)?;
                Ok(ssc)
            })();
            built
                .map(|ssc| ssc.executor_graph())
                .map_err(|e| spate_core::Error::Cluster(format!("building the job's graph: {e}")))
        };
        let mut config = spate_core::cluster::ExecutorConfig::new(driver, cores);
        config.runner = Some(std::sync::Arc::new(make));
        config.graph = Some(graph.fingerprint);
        return spate_core::cluster::run_executor(&config).map_err(Error::Core);
    }
    let master = cli
        .master
        .clone()
        .unwrap_or_else(|| graph.master.to_string());
    let conf = cli.conf;
    let args = cli.args;
    // Executors of a local cluster get the job's settings and arguments, to build the same graph.
    let mut executor_args = vec!["--log-level".to_string(), cli.log_level.clone()];
    if let Some(b) = &cli.batch {
        executor_args.extend(["--batch".to_string(), b.clone()]);
    }
    for (k, v) in &conf {
        executor_args.extend(["--conf".to_string(), format!("{k}={v}")]);
    }
    if !args.is_empty() {
        executor_args.push("--".into());
        executor_args.extend(args.iter().cloned());
    }
    let make = || -> Result<StreamingContext> {
        let mut config = spate_core::ContextConfig::new(&master);
        config.app_name = graph.name.to_string();
        let mut receiver = crate::ReceiverConfig::default();
        engine_settings(&conf, &mut config, &mut receiver)?;
        config.executor_args = executor_args;
        let ssc = StreamingContext::with_context(spate_core::Context::with_config(config)?, batch)?;
        // Before the job builds its streams: a receiver stream takes the settings it is made with.
        ssc.set_receiver_config(receiver);
        for (k, v) in conf {
            ssc.set_conf(k, v);
        }
        ssc.set_args(args);
        Ok(ssc)
    };
    // A checkpoint directory (the command line's, else the attribute's) means: resume from it
    // when it holds a checkpoint, with the graph rebuilt by the same job code and checked.
    let dir = cli
        .checkpoint
        .clone()
        .or_else(|| graph.checkpoint.map(std::path::PathBuf::from));
    let ssc = match &dir {
        Some(dir) => StreamingContext::get_or_create(dir, || {
            let ssc = make()?;
            ssc.checkpoint(dir)?;
            build(&ssc, graph, job)?;
            Ok(ssc)
        })?,
        None => {
            let ssc = make()?;
            build(&ssc, graph, job)?;
            ssc
        }
    };
    let _ui = if cli.no_ui {
        None
    } else {
        start_ui(&ssc, &cli.ui_host, cli.ui_port)
    };
    ssc.start()?;
    // SIGINT / SIGTERM: stop gracefully, so received data is processed and the last
    // checkpoint is written; a second signal while stopping exits at once.
    let on_signal = ssc.clone();
    if let Err(e) = ctrlc::set_handler(move || {
        if matches!(
            on_signal.status(),
            crate::Status::Stopping | crate::Status::Stopped
        ) {
            std::process::exit(130);
        }
        tracing::info!("termination signal: stopping gracefully (signal again to exit now)");
        let ssc = on_signal.clone();
        std::thread::spawn(move || ssc.stop(true));
    }) {
        tracing::warn!(error = %e, "could not install the termination signal handler");
    }
    tracing::info!(job = graph.name, %master, ?batch, "job started");
    match &cli.run_for {
        Some(d) => {
            let d = duration(d, "--run-for")?;
            ssc.await_termination_timeout(d);
            ssc.stop(true);
        }
        None => ssc.await_termination(),
    }
    if let Some(cluster) = ssc.context().cluster() {
        cluster.log_summary();
    }
    Ok(())
}

/// Starts the monitoring page on the first free port of `port..port + 16`; a failure is logged,
/// not fatal (the job runs without the page).
fn start_ui(ssc: &StreamingContext, host: &str, port: u16) -> Option<crate::ui::UiHandle> {
    let mut last = None;
    for p in port..port.saturating_add(16) {
        match ssc.start_ui((host, p)) {
            Ok(ui) => {
                eprintln!("monitoring page: http://{}/", ui.addr());
                return Some(ui);
            }
            Err(e) => last = Some(e),
        }
    }
    if let Some(e) = last {
        tracing::warn!(error = %e, "the job runs without its monitoring page");
    }
    None
}

/// [`run`] with the process's arguments; on error prints it and exits with status 1.
pub fn main(graph: &JobGraph, job: fn(&StreamingContext)) {
    if let Err(e) = run(graph, job, std::env::args()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static OPS: [StaticOp; 2] = [
        StaticOp {
            id: 0,
            name: "queue_stream",
            kind: "source",
            parents: &[],
            window_ms: None,
            slide_ms: Some(1000),
            binding: Some("q"),
            input_type: None,
            location: "x.rs:1:1",
        },
        StaticOp {
            id: 1,
            name: "print",
            kind: "output",
            parents: &[0],
            window_ms: None,
            slide_ms: Some(1000),
            binding: None,
            input_type: None,
            location: "x.rs:2:1",
        },
    ];
    static GRAPH: JobGraph = JobGraph {
        name: "t",
        function: "t",
        batch_ms: 1000,
        checkpoint: None,
        master: "local",
        ops: &OPS,
        fingerprint: 1,
    };

    #[test]
    fn engine_settings_apply_and_bad_ones_are_all_listed() {
        let kv = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mut config = spate_core::ContextConfig::new("local[2]");
        let mut receiver = crate::ReceiverConfig::default();
        engine_settings(
            &kv(&[
                ("spate.default.parallelism", "6"),
                ("spate.memory", "2g"),
                ("spate.codec", "lz4"),
                ("spate.request.timeout", "1500ms"),
                ("spate.heartbeat.timeout", "20s"),
                ("spate.streaming.blockInterval", "50ms"),
                ("spate.streaming.receiver.maxRate", "20000"),
                ("spate.streaming.receiver.memoryFraction", "0.5"),
                ("spate.streaming.receiver.writeAheadLog.enable", "true"),
                ("other", "anything"),
            ]),
            &mut config,
            &mut receiver,
        )
        .unwrap();
        assert_eq!(receiver.block_interval, Duration::from_millis(50));
        assert_eq!(receiver.max_rate, Some(20_000));
        assert_eq!(receiver.memory_fraction, 0.5);
        assert!(receiver.write_ahead_log);
        engine_settings(
            &kv(&[("spate.streaming.receiver.maxRate", "0")]),
            &mut config,
            &mut receiver,
        )
        .unwrap();
        assert_eq!(receiver.max_rate, None, "0 is no limit");
        assert_eq!(config.request_timeout, Duration::from_millis(1500));
        assert_eq!(config.heartbeat_timeout, Duration::from_secs(20));
        assert_eq!(config.default_parallelism, Some(6));
        assert_eq!(config.memory_bytes, 2 << 30);
        assert_eq!(config.codec, spate_storage::Codec::Lz4);
        engine_settings(&kv(&[("spate.memory", "64M")]), &mut config, &mut receiver).unwrap();
        assert_eq!(config.memory_bytes, 64 << 20);
        engine_settings(
            &kv(&[("spate.memory", "3145728")]),
            &mut config,
            &mut receiver,
        )
        .unwrap();
        assert_eq!(config.memory_bytes, 3 << 20);

        let e = engine_settings(
            &kv(&[
                ("spate.default.parallelism", "0"),
                ("spate.memory", "lots"),
                ("spate.memory", "99999999999g"),
                ("spate.memory", "10k"),
                ("spate.codec", "zstd"),
                ("spate.request.timeout", "0s"),
                ("spate.request.timeout", "soon"),
                ("spate.heartbeat.timeout", "600ms"),
                ("spate.streaming.blockInterval", "0ms"),
                ("spate.streaming.receiver.maxRate", "-5"),
                ("spate.streaming.receiver.memoryFraction", "0"),
                ("spate.streaming.receiver.memoryFraction", "NaN"),
                ("spate.streaming.receiver.writeAheadLog.enable", "yes"),
                ("spate.paralelism", "4"),
            ]),
            &mut spate_core::ContextConfig::new("local[2]"),
            &mut crate::ReceiverConfig::default(),
        )
        .unwrap_err()
        .to_string();
        for says in [
            "spate.default.parallelism=0: expected a positive whole number",
            "spate.memory=lots: expected a size",
            "spate.memory=99999999999g",
            "spate.memory=10k",
            "spate.codec=zstd: expected none or lz4",
            "spate.request.timeout=0s: expected a duration of more than zero",
            "spate.request.timeout=soon: expected a duration",
            "spate.heartbeat.timeout=600ms: expected a duration of at least 1s",
            "spate.streaming.blockInterval=0ms: expected a duration of at least 1ms",
            "spate.streaming.receiver.maxRate=-5: expected a whole number",
            "spate.streaming.receiver.memoryFraction=0: expected a fraction",
            "spate.streaming.receiver.memoryFraction=NaN: expected a fraction",
            "spate.streaming.receiver.writeAheadLog.enable=yes: expected true or false",
            "spate.paralelism=4: not an engine setting",
        ] {
            assert!(e.contains(says), "{says:?} not in {e}");
        }
    }

    #[test]
    fn durations_on_the_command_line() {
        assert_eq!(
            duration("500ms", "--batch").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(duration("2s", "--batch").unwrap(), Duration::from_secs(2));
        assert_eq!(duration("3", "--batch").unwrap(), Duration::from_secs(3));
        assert_eq!(
            duration("5m", "--run-for").unwrap(),
            Duration::from_secs(300)
        );
        for (bad, says) in [
            ("2h", "unknown unit"),
            ("fast", "write it like"),
            ("-1s", "write it like"),
            // Would overflow a u64 of milliseconds (and wrapped around before).
            ("20000000000000000s", "longer than ten years"),
            ("99999999999999999m", "longer than ten years"),
            ("400000000s", "longer than ten years"),
        ] {
            let e = duration(bad, "--batch").unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("--batch"), "{bad}: {e}");
        }
    }

    #[test]
    fn verification_names_what_changed() {
        assert!(verify(&GRAPH, &[(Some(0), "a".into()), (Some(1), "b".into())]).is_ok());
        assert!(
            verify(
                &GRAPH,
                &[
                    (Some(0), "a".into()),
                    (Some(0), "a2".into()),
                    (Some(1), "b".into())
                ]
            )
            .is_ok()
        );
        let e = verify(&GRAPH, &[(Some(0), "a".into())]).unwrap_err();
        assert!(e.contains("#1 `print`") && e.contains("not built"), "{e}");
        let e = verify(
            &GRAPH,
            &[
                (Some(0), "a".into()),
                (None, "map at y.rs:3".into()),
                (Some(1), "b".into()),
            ],
        )
        .unwrap_err();
        assert!(e.contains("map at y.rs:3") && e.contains("outside"), "{e}");
        let e = verify(&GRAPH, &[(Some(1), "b".into()), (Some(0), "a".into())]).unwrap_err();
        assert!(e.contains("out of order"), "{e}");
        assert!(GRAPH.to_dot().contains("op0 -> op1"));
        assert!(GRAPH.to_text().contains("#1 output print <- [0]"));
    }
}
