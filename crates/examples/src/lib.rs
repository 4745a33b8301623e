//! Runnable Spate programs; each binary under `src/bin` opens with how to run it. This library
//! holds what they share.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// A few lines of text to stream when no real source is attached.
pub const DEMO_TEXT: &[&str] = &[
    "to be or not to be that is the question",
    "whether tis nobler in the mind to suffer",
    "the slings and arrows of outrageous fortune",
    "or to take arms against a sea of troubles",
    "and by opposing end them to die to sleep",
];

/// Parses `--name value` from the command line, with a default.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => {
            let v = args
                .get(i + 1)
                .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?;
            v.parse()
                .map_err(|_| anyhow::anyhow!("invalid value {v:?} for {name}"))
        }
        None => Ok(default),
    }
}

/// A queue of `batches` RDDs of demo lines (batch `i` holds lines `i % 5` and `(i + 2) % 5`),
/// for `StreamingContext::queue_stream`.
pub fn demo_queue(
    ctx: &spate_core::Context,
    batches: usize,
) -> Arc<Mutex<VecDeque<spate_core::Rdd<String>>>> {
    let queue = (0..batches)
        .map(|i| {
            let lines = vec![
                DEMO_TEXT[i % DEMO_TEXT.len()].to_string(),
                DEMO_TEXT[(i + 2) % DEMO_TEXT.len()].to_string(),
            ];
            ctx.parallelize(lines, 2)
        })
        .collect();
    Arc::new(Mutex::new(queue))
}
