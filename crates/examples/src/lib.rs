//! Runnable Spate programs; each binary under `src/bin` opens with how to run it. This library
//! holds what they share.

pub mod batch;

/// Every example binary allocates with mimalloc: a streaming job allocates and frees many small
/// values (a `String` per word of a word count), which mimalloc's per-thread free lists serve
/// about 15% faster than glibc's allocator (criterion word count). A program of your own chooses
/// its allocator the same way, in its binary.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod jobs;

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

/// `HOST PORT` from a job's arguments (default `localhost 9999`); an invalid port is reported
/// and the default used.
pub fn host_port(args: &[String]) -> (String, u16) {
    let host = args.first().cloned().unwrap_or_else(|| "localhost".into());
    let port = match args.get(1) {
        None => 9999,
        Some(p) => p.parse().unwrap_or_else(|_| {
            eprintln!("invalid port {p:?}: using 9999");
            9999
        }),
    };
    (host, port)
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
