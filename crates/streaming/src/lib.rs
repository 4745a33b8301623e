//! Spate's DStream layer: discretized streams on the RDD core.
//!
//! A [`StreamingContext`] cuts time into batches of a fixed duration. Every [`DStream<T>`] is a
//! sequence of RDDs, one per batch (or per slide, for windowed streams), computed lazily from its
//! parents' RDDs of the same time. Output operations (`print`, `foreach_rdd`,
//! `save_as_text_files`, …) turn each batch's RDD into a job; jobs run batch after batch.
//!
//! ```
//! use spate_streaming::text::split_owned;
//! use spate_streaming::{StreamingContext, Clock, ManualClock};
//! use std::collections::VecDeque;
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//!
//! let clock = ManualClock::new(0);
//! let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
//! ssc.set_clock(Clock::Manual(clock.clone())).unwrap();
//! let queue = Arc::new(Mutex::new(VecDeque::new()));
//! queue.lock().unwrap().push_back(ssc.context().parallelize(vec!["a b a".to_string()], 1));
//! let counts = ssc
//!     .queue_stream(queue.clone(), true)
//!     .flat_map(|l: String| split_owned(l, ' '))
//!     .map(|w| (w, 1u32))
//!     .reduce_by_key(|a, b| a + b);
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let s = seen.clone();
//! counts.foreach_rdd(move |rdd, _time| {
//!     let mut v = rdd.collect()?;
//!     v.sort();
//!     s.lock().unwrap().push(v);
//!     Ok(())
//! });
//! ssc.start().unwrap();
//! clock.advance(Duration::from_secs(1));
//! assert!(ssc.wait_for_batch(spate_streaming::Time::from_ms(1000), Duration::from_secs(30)));
//! ssc.stop(false);
//! assert_eq!(seen.lock().unwrap()[0], vec![("a".to_string(), 2), ("b".to_string(), 1)]);
//! ```

mod checkpoint;
mod clock;
mod cluster;
mod context;
mod counters;
pub mod dstream;
mod error;
mod graph;
pub mod job;
mod listener;
mod receiver;
pub mod testing;
mod time;
pub mod ui;
mod wal;

pub use clock::{Clock, ManualClock};
pub use context::{DEFAULT_MAX_PENDING_BATCHES, Status, StreamingContext};
pub use counters::{InputCounter, InputCounters};
pub use dstream::DStream;
pub use error::{BoxError, Error, Result};
pub use listener::{BatchInfo, StreamingListener};
pub use receiver::{
    EncodedRecords, Receiver, ReceiverConfig, ReceiverContext, ReceiverError, ReceiverInfo,
    ReceiverStats, StopSignal,
};
pub use spate_core::text;
pub use spate_core::{self as core, Context, Data, Key, Rdd, StorageLevel, ToText};
/// Turns a job-building function into a typed job checked at compile time; see [`spate_macros`].
pub use spate_macros::streaming_job;
pub use spate_storage as storage;
pub use time::Time;

#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
