//! `cargo xtask`: repository chores. `tidy` checks the crate layering and file headers; `loadgen`
//! serves text lines over TCP at a fixed rate (the examples' and benchmarks' input).

mod bench;
mod failover;
mod loadgen;
mod overload;
mod tidy;

use std::path::PathBuf;

fn usage() -> ! {
    eprintln!(
        "usage: cargo xtask <command>\n\ncommands:\n  tidy    check dependency direction and `//!` headers"
    );
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
        Some("loadgen") => loadgen::run(&loadgen::LoadgenArgs::parse(&args[1..])?),
        // One leg of the `overload` benchmark, in a process of its own (see overload.rs).
        Some("overload-run") => overload::run_child(&args[1..]),
        _ => usage(),
    }
}
