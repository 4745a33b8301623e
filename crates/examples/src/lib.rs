//! Runnable Spate programs; each binary under `src/bin` opens with how to run it. This library
//! holds what they share.

pub mod batch;
pub mod jobs;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Every example binary (and `cargo xtask bench`) allocates with mimalloc: a streaming job
/// allocates and frees many small values (a `String` per word of a word count), which mimalloc's
/// per-thread free lists serve about 15% faster than glibc's allocator (criterion word count). A
/// program of your own chooses its allocator the same way, in its binary; see
/// [`setup_allocator`] for the one setting to change.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tunes the allocator of an example binary; called first in every `main`.
///
/// By default mimalloc *purges* memory it has not reused for 10 ms: gives the pages back to the
/// OS, which maps fresh zeroed pages the next time they are touched. A streaming job frees about
/// a batch's worth of memory after every batch and allocates it again for the next, so each batch
/// faulted its memory back in and the kernel zeroed it (`clear_page_erms`: 8% of all CPU time of a
/// word count at 750k lines/s, 22% of a running count by `update_state_by_key` at 1M lines/s).
/// Here freed memory is kept for reuse instead: the process holds on to its peak (bounded by the
/// memory budget and the back-pressure that enforces it) rather than returning memory between
/// batches. A running count at 1M lines/s went from 66,000–70,000 page faults in a quick run
/// to 1,400, and its median batch delay from 2.0–2.3 s to 1.2–1.3 s. Set `MIMALLOC_PURGE_DELAY`
/// (milliseconds) to have memory returned again; purges then *reset* memory (`MADV_FREE`: the
/// pages stay mapped for reuse until the OS needs them) rather than unmapping it.
pub fn setup_allocator() {
    #[cfg(feature = "mimalloc")]
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_set` only stores an option's value, and may be called at any time. The
    // numbers are `mi_option_e` values of mimalloc.h (v2 and v3 number them alike): 5 is
    // `mi_option_purge_decommits` (0: a purge resets memory instead of decommitting it), 15 is
    // `mi_option_purge_delay` (-1: never purge).
    unsafe {
        libmimalloc_sys::mi_option_set(5, 0);
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            libmimalloc_sys::mi_option_set(15, -1);
        }
    }
}

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
