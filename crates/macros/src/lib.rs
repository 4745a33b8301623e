//! `#[streaming_job]`: turns a job-building function into a job whose operator graph is known,
//! and checked, at compile time.
//!
//! ```no_run
//! use spate_receivers::Sources;
//! use spate_streaming::{streaming_job, StorageLevel, StreamingContext};
//! use std::time::Duration;
//!
//! #[streaming_job(batch = "1s", checkpoint = "/tmp/wc-checkpoints", name = "windowed-word-count")]
//! fn word_count(ssc: &StreamingContext) {
//!     let lines = ssc.socket_text_stream("localhost", 9999, StorageLevel::MEMORY_ONLY_SER_2);
//!     let words = lines.flat_map(|l: String| l.split(' ').map(String::from).collect::<Vec<_>>());
//!     let counts = words
//!         .map(|w: String| (w, 1i64))
//!         .reduce_by_key_and_window_inv(|a, b| a + b, |a, b| a - b, Duration::from_secs(30), Duration::from_secs(10));
//!     counts.print();
//! }
//!
//! fn main() {
//!     // The static graph, checked at compile time:
//!     assert_eq!(WordCount::graph().ops.len(), 5);
//!     print!("{}", WordCount::graph().to_text());
//!     // Parses --master, --batch, --checkpoint, --run-for, --conf K=V, … and runs the job.
//!     WordCount::main();
//! }
//! ```
//!
//! The macro reads the function body: every `let` binding and statement whose expression is a
//! chain of DStream operations starting at the context parameter or at another stream. From it
//! it builds a static graph — sources, operators and outputs with their parents, window and slide
//! durations, element types where written, source locations and stable ids — and checks it:
//!
//! - there is at least one output operation;
//! - window and slide durations are positive multiples of the batch interval (and of the
//!   parent's slide), with a suggested fix;
//! - a slide longer than its window warns (records between windows are never seen);
//! - stateful and inverse-window operations have a checkpoint directory;
//! - every stream ends in an output operation (no unused branch);
//! - key-value operations are applied to streams of pairs (a readable type error);
//! - streams joined or united have the same slide;
//! - attribute arguments are known, well-formed and given once.
//!
//! All problems are reported at once, and the function is still emitted so IDEs keep working.
//! It generates a job type (the function name in PascalCase) with `graph()`, `build(ssc)`
//! (which also verifies at run time that the code built exactly the graph seen at compile time)
//! and `main()`.

mod internals;

use proc_macro::TokenStream;

/// Turns a job-building function into a checked, typed streaming job. See the [crate docs](crate).
#[proc_macro_attribute]
pub fn streaming_job(attr: TokenStream, item: TokenStream) -> TokenStream {
    internals::expand(attr.into(), item.into()).into()
}
