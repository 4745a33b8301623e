//! `cargo xtask`: repository chores. `tidy` checks the crate layering and file headers; `loadgen`
//! serves text lines over TCP at a fixed rate (the examples' and benchmarks' input); `bench`
//! measures, and `profile` shows where one workload's CPU goes.

mod bench;
mod failover;
mod loadgen;
mod overload;
mod profile;
mod tidy;

use std::path::PathBuf;

/// What `cargo xtask help` prints.
const USAGE: &str = "usage: cargo xtask <command> [options]

commands:
  bench     batch-latency and throughput benchmarks; writes target/bench/ (JSON, summary.md, SVG)
              --quick                 word count and window, short runs (under 2 minutes)
              --workloads a,b         grep, wordcount, window, state, topk, failover, overload
              --rates R1,R2           the input rates (lines/s) of the throughput search
              --sweep R1,R2           search the smallest stable batch interval at these rates
              --level LEVEL           storage level of received blocks (MEMORY_ONLY_SER)
              --memory SIZE           memory store of the measured jobs (1g, as Spark's driver)
              --memory-fraction F     receivers' share of it before they wait (engine default 0.8)
              --state-checkpoint SECS checkpoint interval of the state workload
              --out DIR               where the report goes (target/bench)
  profile   where one workload's CPU goes: perf samples of the measured period, folded by
            thread role into target/bench/profile/ (flamegraph.svg, profile.md); needs `perf`
              --workload W            grep, wordcount, window, state or topk (wordcount)
              --rate LINES_PER_S      the input rate (3000000)
              --batch-ms MS           the batch interval (1000)
              --warmup S --seconds S  seconds before recording (4), recorded (10)
              --frequency HZ          samples per second per thread (499)
              --level, --memory, --memory-fraction, --state-checkpoint: as for bench; --out DIR
  loadgen   serve text lines over TCP at a fixed rate (the examples' and benchmarks' input)
              --port P (9999) --rate LINES_PER_S (100000) --seconds S (60) --lines N
              --seed SEED (42) --replay (a client's first line `FROM n` picks the first line)
  tidy      check dependency direction and `//!` headers
  help      this text
";

/// The usage on standard error, for a command line that names no command this knows.
fn usage() -> ! {
    eprint!("{USAGE}");
    std::process::exit(2)
}

/// The repository root (the parent of this crate's directory).
pub(crate) fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn main() -> anyhow::Result<()> {
    spate_examples::setup_allocator();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args
        .iter()
        .any(|a| matches!(a.as_str(), "help" | "--help" | "-h"))
    {
        print!("{USAGE}");
        return Ok(());
    }
    match args.first().map(String::as_str) {
        Some("tidy") => {
            let problems = tidy::check(&project_root())?;
            if problems.is_empty() {
                println!("tidy: ok");
                Ok(())
            } else {
                for p in &problems {
                    eprintln!("tidy: {p}");
                }
                anyhow::bail!("{} tidy problem(s)", problems.len())
            }
        }
        Some("bench") => bench::run(&bench::BenchArgs::parse(&args[1..])?),
        Some("profile") => profile::run(&profile::ProfileArgs::parse(&args[1..])?),
        Some("loadgen") => loadgen::run(&loadgen::LoadgenArgs::parse(&args[1..])?),
        // One leg of the `overload` benchmark, in a process of its own (see overload.rs).
        Some("overload-run") => overload::run_child(&args[1..]),
        _ => usage(),
    }
}
