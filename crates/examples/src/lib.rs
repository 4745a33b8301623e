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
/// By default mimalloc *decommits* memory it has not reused for 10 ms: gives the pages back to
/// the OS, which maps fresh zeroed pages the next time they are touched. A streaming job frees
/// about a batch's worth of memory after every batch and allocates it again for the next, so each
/// batch faulted its memory back in and the kernel zeroed it (`clear_page_erms`, 8% of all CPU
/// time of a word count at 750k lines/s). Here mimalloc *resets* such memory instead (`MADV_FREE`): the pages stay mapped for reuse and
/// the OS takes them back only when it needs memory: 1M lines/s of word count went from not
/// stable (p50 1186–1328 ms) to stable (p50 814–879 ms).
///
/// Not purging at all (`MIMALLOC_PURGE_DELAY=-1`) was measured too: 50 times fewer page faults
/// (a running count at 1M lines/s: 1,400 instead of 66,000–70,000 in a quick run), but resident
/// memory grew under overload (word count offered 5M lines/s with a 512 MiB budget: 349 → 1,937
/// MiB, +6.7 MiB/s over the second half, against 274–283 → 694–700 MiB, +0.1 to +1.6 MiB/s,
/// with this setting), and a 5 s delay grew it too (+23 MiB/s): flat memory under overload is
/// the promise kept here.
///
/// mimalloc is also built without transparent huge pages (the `no_thp` feature, in the
/// workspace's `Cargo.toml`): by default it asks the kernel for them (`MADV_HUGEPAGE`) on the
/// memory it commits, and on the virtual machine of stop 23 a first touch of such memory cost
/// 6.2–12.6 s per GiB against 0.76–0.86 s in small pages (the benchmark's fresh-memory probe,
/// run by run; the kernel zeroes 2 MiB per fault, and the host seems to back each fault anew).
/// Every block a receiver builds in memory new to the process pays it: word count at 2.25M
/// lines/s was not stable with huge pages (p50 1,981 and 2,285 ms, block generator 39–42% of a
/// core) and stable without (p50 758 and 837 ms, block generator 7%); 2.5M became stable too.
pub fn setup_allocator() {
    #[cfg(feature = "mimalloc")]
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_set` only stores an option's value, and may be called at any time;
    // 5 is `mi_option_purge_decommits` in mimalloc.h (both v2 and v3 keep the numbering), 0 makes
    // a purge reset the memory instead of decommitting it.
    unsafe {
        libmimalloc_sys::mi_option_set(5, 0);
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
