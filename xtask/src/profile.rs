//! `cargo xtask profile`: where one benchmark workload spends its CPU, as a flamegraph and a
//! table. The workload runs as in `cargo xtask bench` (its own load generator, `local[2]`, the
//! same job); `perf record` samples the process, with call stacks, over the measured period
//! only (not the warm-up, not the baseline). The stacks are folded with `inferno`, each rooted
//! at the role of the thread that ran it (the two `spate-worker-N` threads as `workers`, …),
//! and drawn as `flamegraph.svg`; `profile.md` lists the roles' CPU time and the functions that
//! spent the most of it themselves (leaves), with the run's own figures.

use crate::bench::{self, JobTuning, RunPlan, Workload};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The environment variable naming the `perf` program (`perf` on the `PATH` otherwise).
const PERF_VAR: &str = "SPATE_PERF";

/// Settings of a profile run.
pub(crate) struct ProfileArgs {
    /// The run to profile (its measured period is the one recorded).
    plan: RunPlan,
    /// Samples per second and thread.
    frequency: u32,
    out: PathBuf,
}

impl ProfileArgs {
    pub(crate) fn parse(args: &[String]) -> Result<ProfileArgs> {
        let mut a = ProfileArgs {
            plan: RunPlan {
                workload: Workload::Wordcount,
                rate: 3_000_000,
                batch_ms: 1000,
                warmup: 4,
                measure: 10,
                job: JobTuning::default(),
            },
            frequency: 499,
            out: crate::project_root().join("target/bench/profile"),
        };
        let mut it = args.iter();
        let number = |v: Option<&String>, flag: &str, what: &str| -> Result<u64> {
            let v = v.with_context(|| format!("{flag} needs {what}"))?;
            v.parse()
                .ok()
                .filter(|n: &u64| *n > 0)
                .with_context(|| format!("{flag} {v}: {what}, a whole number above 0"))
        };
        while let Some(flag) = it.next() {
            match flag.as_str() {
                "--workload" => {
                    let w = Workload::parse(it.next().context("--workload needs a name")?)?;
                    anyhow::ensure!(
                        !matches!(w, Workload::Failover | Workload::Overload),
                        "--workload {}: profile runs one process (grep, wordcount, window, state or topk)",
                        w.name()
                    );
                    a.plan.workload = w;
                }
                "--rate" => a.plan.rate = number(it.next(), "--rate", "lines per second")?,
                "--batch-ms" => a.plan.batch_ms = number(it.next(), "--batch-ms", "milliseconds")?,
                "--warmup" => a.plan.warmup = number(it.next(), "--warmup", "seconds")?,
                "--seconds" => a.plan.measure = number(it.next(), "--seconds", "seconds")?,
                "--frequency" => {
                    let f = number(it.next(), "--frequency", "samples per second")?;
                    a.frequency = u32::try_from(f)
                        .ok()
                        .filter(|f| *f <= 10_000)
                        .context("--frequency: at most 10000 samples per second")?;
                }
                "--out" => a.out = PathBuf::from(it.next().context("--out needs a directory")?),
                other => {
                    if !a.plan.job.parse_flag(other, &mut it)? {
                        anyhow::bail!(
                            "unknown profile option {other}; options: --workload W --rate R --batch-ms MS --warmup S --seconds S --frequency HZ --level LEVEL --memory SIZE --memory-fraction F --state-checkpoint SECS --out DIR (cargo xtask help)"
                        )
                    }
                }
            }
        }
        Ok(a)
    }
}

/// The `perf` program to run.
fn perf_program() -> PathBuf {
    std::env::var_os(PERF_VAR).map_or_else(|| PathBuf::from("perf"), PathBuf::from)
}

/// Fails, saying how to get one, unless `perf` runs.
fn check_perf(perf: &Path) -> Result<()> {
    let ran = Command::new(perf)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let why = match ran {
        Ok(s) if s.success() => return Ok(()),
        Ok(s) => format!("`{} --version` failed ({s})", perf.display()),
        Err(e) => format!("perf could not be run as `{}` ({e})", perf.display()),
    };
    anyhow::bail!(
        "{why}: install perf for the running kernel (Debian: `apt install linux-perf`; Ubuntu: `linux-tools-$(uname -r)`), or name a working one with {PERF_VAR}=PATH"
    )
}

/// A `perf record` of this process over the measured period of a run (see
/// `bench::run_spate`).
pub(crate) struct Recording {
    perf: PathBuf,
    data: PathBuf,
    frequency: u32,
}

impl Recording {
    /// Starts sampling this process for `period`; the recording ends by itself after it.
    pub(crate) fn start(&self, period: Duration) -> Result<Child> {
        Command::new(&self.perf)
            .arg("record")
            .arg("-q")
            // The CPU clock: every sample weighs the nanoseconds of CPU time it stands for, so
            // the folded counts are CPU time (with `cycles`, where the machine counts them,
            // they would be cycles).
            .args(["-e", "cpu-clock"])
            .args(["-F", &self.frequency.to_string()])
            // Unwound from copies of the stack (the build keeps no frame pointers).
            .args(["--call-graph", "dwarf,8192"])
            .args(["-p", &std::process::id().to_string()])
            .arg("-o")
            .arg(&self.data)
            .args(["--", "sleep", &format!("{:.3}", period.as_secs_f64())])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} record", self.perf.display()))
    }

    /// Waits for a recording started with [`start`](Self::start) to end; its error output if
    /// it failed.
    pub(crate) fn finish(child: Child) -> Result<()> {
        let out = child.wait_with_output()?;
        if out.status.success() {
            return Ok(());
        }
        let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        anyhow::bail!(
            "perf record failed ({}): {}\n(kernel.perf_event_paranoid is {paranoid}; sampling a process of your own needs 2 or less, its kernel stacks 1 or less: `sudo sysctl kernel.perf_event_paranoid=1`)",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }
}

/// Runs the profile and writes its report.
pub(crate) fn run(args: &ProfileArgs) -> Result<()> {
    let perf = perf_program();
    check_perf(&perf)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let recording = Recording {
        perf: perf.clone(),
        data: args.out.join("perf.data"),
        frequency: args.frequency,
    };
    let buf = std::sync::Arc::new(crate::loadgen::buffer(bench::TEXT_SEED));
    eprintln!(
        "profile: {} at {} lines/s, {} ms batches: {} s of warm-up, then {} s recorded…",
        args.plan.workload.name(),
        bench::fmt_rate(args.plan.rate as f64),
        args.plan.batch_ms,
        args.plan.warmup,
        args.plan.measure
    );
    let run = bench::run_spate(&args.plan, &buf, Some(&recording))?;
    eprintln!("profile: the run was {}", bench::describe(&run));
    let script = Command::new(&perf)
        .arg("script")
        .arg("-i")
        .arg(&recording.data)
        // Inlined frames resolved from debug information take minutes; the compiled functions
        // are what the samples are in.
        .arg("--no-inline")
        .output()
        .with_context(|| format!("running {} script", perf.display()))?;
    anyhow::ensure!(
        script.status.success(),
        "perf script failed ({}) on {}: {}",
        script.status,
        recording.data.display(),
        String::from_utf8_lossy(&script.stderr).trim()
    );
    let folded = by_role(&fold(&script.stdout)?);
    anyhow::ensure!(
        !folded.is_empty(),
        "perf recorded no samples of the process (is perf allowed to sample it? see kernel.perf_event_paranoid)"
    );
    let folded_text: String = folded.iter().map(|(s, n)| format!("{s} {n}\n")).collect();
    std::fs::write(args.out.join("folded.txt"), &folded_text)?;
    let svg = args.out.join("flamegraph.svg");
    let mut options = inferno::flamegraph::Options::default();
    options.title = format!(
        "{} at {} lines/s ({} ms batches): {} s, by thread role",
        args.plan.workload.name(),
        bench::fmt_rate(args.plan.rate as f64),
        args.plan.batch_ms,
        args.plan.measure
    );
    options.count_name = "ns of CPU".into();
    let file = std::fs::File::create(&svg)?;
    inferno::flamegraph::from_lines(
        &mut options,
        folded_text.lines(),
        std::io::BufWriter::new(file),
    )
    .context("drawing the flamegraph")?;
    let summary = Summary::of(&folded);
    let md = report(args, &run, &summary);
    std::fs::write(args.out.join("profile.md"), &md)?;
    print!("{md}");
    eprintln!(
        "profile: {} (folded stacks: folded.txt, samples: perf.data) in {}",
        svg.display(),
        args.out.display()
    );
    Ok(())
}

/// `perf script` output folded into one line per distinct stack: `comm;outer;…;leaf weight`,
/// the weight the samples' periods summed (nanoseconds of CPU time for `cpu-clock`).
fn fold(script: &[u8]) -> Result<Vec<(String, u64)>> {
    use inferno::collapse::Collapse;
    let mut out = Vec::new();
    inferno::collapse::perf::Folder::default()
        .collapse(script, &mut out)
        .context("folding the stacks perf recorded")?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| {
            let (stack, n) = l.rsplit_once(' ')?;
            Some((stack.to_string(), n.parse().ok()?))
        })
        .collect())
}

/// Folded stacks with the thread's name (their first frame) replaced by its role, stacks that
/// became the same summed: in stack order.
fn by_role(folded: &[(String, u64)]) -> Vec<(String, u64)> {
    let mut merged: BTreeMap<String, u64> = BTreeMap::new();
    for (stack, n) in folded {
        let (comm, rest) = stack.split_once(';').unwrap_or((stack, ""));
        let role = bench::role_of(comm);
        let key = if rest.is_empty() {
            role.to_string()
        } else {
            format!("{role};{rest}")
        };
        *merged.entry(key).or_default() += n;
    }
    merged.into_iter().collect()
}

/// What the report tells of folded stacks (weights in nanoseconds of CPU time).
#[derive(Debug, PartialEq)]
struct Summary {
    total: u64,
    /// CPU time by role, most first.
    roles: Vec<(String, u64)>,
    /// CPU time by the function the samples were in (the leaf), most first, with the role
    /// that spent the most of it there.
    leaves: Vec<(String, u64, String)>,
}

impl Summary {
    fn of(folded: &[(String, u64)]) -> Summary {
        let mut roles: BTreeMap<&str, u64> = BTreeMap::new();
        let mut leaves: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
        let mut total = 0;
        for (stack, n) in folded {
            let role = stack.split(';').next().unwrap_or_default();
            let leaf = stack.rsplit(';').next().unwrap_or_default();
            total += n;
            *roles.entry(role).or_default() += n;
            *leaves.entry(leaf).or_default().entry(role).or_default() += n;
        }
        let mut roles: Vec<(String, u64)> =
            roles.into_iter().map(|(r, n)| (r.to_string(), n)).collect();
        roles.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut leaves: Vec<(String, u64, String)> = leaves
            .into_iter()
            .map(|(leaf, by_role)| {
                let n = by_role.values().sum();
                let (top, _) = by_role
                    .iter()
                    .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                    .map_or(("", &0), |(r, n)| (*r, n));
                (leaf.to_string(), n, top.to_string())
            })
            .collect();
        leaves.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Summary {
            total,
            roles,
            leaves,
        }
    }
}

/// How many functions the report lists.
const TOP: usize = 25;

fn report(args: &ProfileArgs, run: &bench::RunResult, s: &Summary) -> String {
    let pct = |ns: u64| 100.0 * ns as f64 / s.total.max(1) as f64;
    let ms = |ns: u64| ns as f64 / 1e6;
    let mut md = format!(
        "# Profile: {} at {} lines/s, {} ms batches\n\n{} s recorded after {} s of warm-up, sampled {} times a second per thread: {:.0} ms of CPU time in all. The run: {}.\n\n`flamegraph.svg` (open it in a browser: hover for the time, click to zoom) has every stack, rooted at the role of the thread that ran it.\n\n| role | CPU ms | share | cores |\n|---|---|---|---|\n",
        args.plan.workload.name(),
        bench::fmt_rate(args.plan.rate as f64),
        args.plan.batch_ms,
        args.plan.measure,
        args.plan.warmup,
        args.frequency,
        ms(s.total),
        bench::describe(run)
    );
    for (role, ns) in &s.roles {
        md.push_str(&format!(
            "| {role} | {:.0} | {:.1}% | {:.2} |\n",
            ms(*ns),
            pct(*ns),
            *ns as f64 / 1e9 / args.plan.measure as f64
        ));
    }
    md.push_str(&format!(
        "\nThe {TOP} functions that spent the most CPU time themselves (code inlined into a function counts as its own):\n\n| function | CPU ms | share | mostly in |\n|---|---|---|---|\n"
    ));
    for (leaf, ns, role) in s.leaves.iter().take(TOP) {
        md.push_str(&format!(
            "| `{}` | {:.0} | {:.1}% | {role} |\n",
            leaf.replace('|', "\\|").replace('`', "'"),
            ms(*ns),
            pct(*ns)
        ));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::{ProfileArgs, Summary, by_role, check_perf, fold};

    fn parse(args: &str) -> anyhow::Result<ProfileArgs> {
        let args: Vec<String> = args.split_whitespace().map(String::from).collect();
        ProfileArgs::parse(&args)
    }

    #[test]
    fn options_take_the_benchmarks_job_settings_and_refuse_what_a_profile_cannot_run() {
        let a = parse(
            "--workload window --rate 2500000 --seconds 5 --memory 2g --level MEMORY_ONLY_SER_2",
        )
        .unwrap();
        assert_eq!(a.plan.workload, crate::bench::Workload::Window);
        assert_eq!(
            (a.plan.rate, a.plan.measure, a.plan.batch_ms),
            (2_500_000, 5, 1000)
        );
        assert_eq!(a.plan.job.memory_bytes, 2 << 30);
        assert_eq!(
            a.plan.job.level,
            spate_streaming::StorageLevel::MEMORY_ONLY_SER_2
        );
        let err = |args| parse(args).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err("--workload failover").contains("one process"));
        assert!(err("--rate 0").contains("above 0"));
        assert!(err("--frequency 50000").contains("at most 10000"));
        assert!(err("--fast").contains("unknown profile option --fast"));
    }

    #[test]
    fn stacks_are_rooted_at_their_threads_role() {
        let folded = vec![
            ("spate-worker-0;main;split".to_string(), 3),
            ("spate-worker-1;main;split".to_string(), 2),
            ("spate-receiver-;recv".to_string(), 4),
            ("xtask;send".to_string(), 1),
            ("spate-block-gen".to_string(), 1),
        ];
        assert_eq!(
            by_role(&folded),
            vec![
                ("block generator".to_string(), 1),
                ("load generator and driver;send".to_string(), 1),
                ("receiver;recv".to_string(), 4),
                ("workers;main;split".to_string(), 5),
            ]
        );
    }

    #[test]
    fn the_summary_counts_roles_and_the_functions_samples_ended_in() {
        let folded = vec![
            ("workers;run;lookup".to_string(), 6),
            ("workers;run;split".to_string(), 5),
            ("workers;run".to_string(), 1),
            ("receiver;read;memcpy".to_string(), 3),
            ("workers;decode;memcpy".to_string(), 2),
        ];
        let s = Summary::of(&folded);
        assert_eq!(s.total, 17);
        assert_eq!(
            s.roles,
            vec![("workers".to_string(), 14), ("receiver".to_string(), 3)]
        );
        assert_eq!(
            s.leaves,
            vec![
                ("lookup".to_string(), 6, "workers".to_string()),
                ("memcpy".to_string(), 5, "receiver".to_string()),
                ("split".to_string(), 5, "workers".to_string()),
                ("run".to_string(), 1, "workers".to_string()),
            ]
        );
    }

    #[test]
    fn perf_script_output_folds_into_stacks_outermost_first() {
        // Two samples of one stack and one of another, as `perf script` prints them (thread
        // name, tid, time, period, event; then frames innermost first): each stack weighs its
        // samples' periods (nanoseconds of CPU time for `cpu-clock`).
        let script = "\
spate-worker-0 101 17332.506038:    2004008 cpu-clock:ppp: 
\t          4a0872 lookup+0x82 (/bin/job)
\t          2dc446 run+0x1176 (/bin/job)

spate-worker-0 101 17332.508038:    2004008 cpu-clock:ppp: 
\t          4a0872 lookup+0x82 (/bin/job)
\t          2dc446 run+0x1176 (/bin/job)

spate-receiver- 102 17332.509733:    2004008 cpu-clock:ppp: 
\t          10aba4 recv+0x64 (/lib/libc.so.6)
\t          2dc446 run+0x10 (/bin/job)

";
        let mut folded = fold(script.as_bytes()).unwrap();
        folded.sort();
        assert_eq!(
            folded,
            vec![
                ("spate-receiver-;run;recv".to_string(), 2_004_008),
                ("spate-worker-0;run;lookup".to_string(), 2 * 2_004_008),
            ]
        );
    }

    #[test]
    fn a_missing_perf_is_an_error_that_says_how_to_get_one() {
        let err = check_perf(std::path::Path::new("/nonexistent/perf"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("apt install linux-perf"), "{err}");
        assert!(err.contains("SPATE_PERF"), "{err}");
    }
}
