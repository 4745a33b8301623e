//! ShuffleHeavy: a batch program whose one job crosses five shuffles — per-word counts
//! (`reduce_by_key`), the first line each word appears in (`reduce_by_key` with `min`), the size
//! of each word's group (`group_by_key`: every record crosses) and two joins of the three — and
//! saves one line per word, `word count first-line group-size`.
//!
//! Arguments: `OUT [ROUNDS] [LINES]`: the job is built and saved `ROUNDS` times (default 1), to
//! `OUT/round-<i>`, over the lines `0..LINES` (default 100,000) of [`line()`].

use spate_core::batch::{BatchProgram, Session};
use spate_core::{Context, Rdd, Result};

/// Line `i` of the input: eight words from a vocabulary of 997, deterministic.
pub fn line(i: u64) -> String {
    (0..8u64)
        .map(|k| {
            let x = (i * 8 + k).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
            format!("w{}", x % 997)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The positional argument `at` as a number, `default` when absent.
fn number(args: &[String], at: usize, what: &str, default: u64) -> Result<u64> {
    args.get(at).map_or(Ok(default), |n| {
        n.parse().map_err(|_| {
            spate_core::Error::InvalidArgument(format!(
                "{what} {n:?} is not a whole number (arguments: OUT [ROUNDS] [LINES])"
            ))
        })
    })
}

/// LINES; `run` has refused the job before any executor builds it with a LINES that does not
/// parse.
fn lines(args: &[String]) -> u64 {
    number(args, 2, "LINES", 100_000).unwrap_or(100_000)
}

/// The job: one `word count first group` line per word.
pub fn report(ctx: &Context, args: &[String]) -> Rdd<String> {
    let numbers: Vec<u64> = (0..lines(args)).collect();
    let words = ctx.parallelize(numbers, 8).flat_map(|i: u64| {
        line(i)
            .split(' ')
            .map(|w| (w.to_string(), i))
            .collect::<Vec<_>>()
    });
    let counts = words
        .map(|(w, _): (String, u64)| (w, 1u64))
        .reduce_by_key_n(|a, b| a + b, 6);
    let first = words.reduce_by_key_n(|a: u64, b: u64| a.min(b), 4);
    let groups = words
        .group_by_key_n(5)
        .map(|(w, at): (String, Vec<u64>)| (w, at.len() as u64));
    counts
        .join_n(&first, 4)
        .join_n(&groups, 4)
        .map(|(w, ((c, f), g)): (String, ((u64, u64), u64))| format!("{w} {c} {f} {g}"))
}

/// The program: its jobs, the same in the driver and its executors.
pub fn program() -> BatchProgram {
    BatchProgram::new("shuffle-heavy").job("report", report)
}

/// The driver's part: builds and saves the job `ROUNDS` times.
pub fn run(session: &Session) -> Result<()> {
    let args = session.args();
    let out = args
        .first()
        .cloned()
        .unwrap_or_else(|| "target/shuffle-heavy".into());
    let rounds = number(args, 1, "ROUNDS", 1)?;
    number(args, 2, "LINES", 100_000)?;
    for round in 0..rounds {
        let report = session.rdd::<String>("report")?;
        report.save_as_text_file(format!("{out}/round-{round}"))?;
        tracing::info!(round, "saved");
    }
    Ok(())
}
