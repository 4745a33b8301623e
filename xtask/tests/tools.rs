//! The measuring tools end to end, as a user runs them: `cargo xtask bench --quick` on one
//! workload and rate, and `cargo xtask profile` where `perf` can sample. They check what the
//! tools write (reports, JSON, SVG), never a speed: timing belongs to the benchmark itself.

use std::path::Path;
use std::process::Command;

fn xtask(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("the xtask binary runs")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_quick_bench_of_one_workload_writes_its_report() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let run = xtask(&[
        "bench",
        "--quick",
        "--workloads",
        "wordcount",
        "--rates",
        "100000",
        "--out",
        dir,
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "bench failed: {stderr}");
    // Progress on standard error: the baseline, then the run with its verdict.
    assert!(stderr.contains("COST baseline"), "{stderr}");
    assert!(stderr.contains("wordcount"), "{stderr}");

    let json: serde_json::Value = serde_json::from_str(&read(&out.path().join("results.json")))
        .expect("results.json is JSON");
    assert_eq!(json["quick"], true);
    assert!(json["baseline_lines_per_s"].as_f64().unwrap() > 0.0);
    let runs = json["runs"].as_array().unwrap();
    // One run, or two when the first was not stable (a run is repeated before the search
    // gives up on its rate).
    match runs.len() {
        1 => {}
        2 => assert_eq!(runs[0]["stable"], false, "{runs:?}"),
        n => panic!("{n} runs of one workload at one rate: {runs:?}"),
    }
    let r = &runs[0];
    assert_eq!(r["workload"], "wordcount");
    assert_eq!(r["target_rate"], 100_000);
    assert_eq!(r["batch_ms"], 1000);
    // Batches ran and lines arrived (how fast is the benchmark's business, not this test's).
    assert!(r["batches_expected"].as_u64().unwrap() > 0);
    assert!(r["batches_completed"].as_u64().unwrap() > 0, "{r}");
    assert!(r["received_rate"].as_f64().unwrap() > 0.0, "{r}");
    assert_eq!(r["failed_batches"], 0, "{r}");
    assert!(r["baseline_before"].as_f64().unwrap() > 0.0);
    // About 10 MB/s against a 1 GiB store: the receiver never waits for memory (measured: a
    // number, not missing).
    assert_eq!(r["memory_waits"], 0, "{r}");

    let md = read(&out.path().join("summary.md"));
    assert!(md.starts_with("# Spate benchmark"), "{md}");
    assert!(
        md.contains("| wordcount | MEMORY_ONLY_SER | 100k |"),
        "{md}"
    );
    for svg in ["throughput.svg", "latency.svg"] {
        let text = read(&out.path().join(svg));
        assert!(
            text.contains("<svg") && text.trim_end().ends_with("</svg>"),
            "{svg}"
        );
    }
}

#[test]
fn bench_and_profile_refuse_options_they_do_not_know() {
    for command in ["bench", "profile"] {
        let run = xtask(&[command, "--fastest"]);
        assert!(!run.status.success());
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains(&format!("unknown {command} option --fastest")),
            "{stderr}"
        );
    }
}

/// Whether `perf` is there and may sample a process of this user (a probe of its own).
fn perf_can_sample() -> bool {
    Command::new("perf")
        .args([
            "record",
            "-q",
            "-e",
            "cpu-clock",
            "-o",
            "/dev/null",
            "--",
            "true",
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_profile_draws_the_workloads_stacks_by_thread_role() {
    if !perf_can_sample() {
        // Nothing to run it with: the parts that need no perf are unit tests of profile.rs.
        eprintln!("perf cannot sample here: the profile's end-to-end test is skipped");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let run = xtask(&[
        "profile",
        "--rate",
        "100000",
        "--warmup",
        "1",
        "--seconds",
        "2",
        "--out",
        dir,
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "profile failed: {stderr}");
    // The report: the run, the roles (the workers at least), the functions.
    assert!(
        stdout.starts_with("# Profile: wordcount at 100k lines/s"),
        "{stdout}"
    );
    assert!(stdout.contains("| workers |"), "{stdout}");
    assert_eq!(stdout, read(&out.path().join("profile.md")));
    // Every folded stack starts at a role, not at a thread's own name.
    let folded = read(&out.path().join("folded.txt"));
    let roles = [
        "workers",
        "receiver",
        "block generator",
        "other engine threads",
        "load generator and driver",
    ];
    assert!(!folded.is_empty());
    for line in folded.lines() {
        // `role;outer;…;leaf weight`, or `role weight` for samples with no frames.
        let stack = line.rsplit_once(' ').map_or(line, |(stack, _)| stack);
        let root = stack.split(';').next().unwrap();
        assert!(roles.contains(&root), "{line}");
    }
    let svg = read(&out.path().join("flamegraph.svg"));
    assert!(
        svg.contains("<svg") && svg.contains("workers"),
        "not a flamegraph"
    );
}
