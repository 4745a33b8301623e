//! Receivers: user-written sources of records, run under a supervisor, with a block generator
//! that cuts what they store into blocks.
//!
//! A [`Receiver`] runs in a thread of its own ([`Receiver::receive`] blocks until the source ends,
//! fails, or the context stops) and hands records to [`ReceiverContext::store`]. Stored records
//! go through a bounded queue (a receiver that outruns processing blocks in `store`, which slows
//! its source: TCP back-pressure for sockets) to the *block generator*, which cuts a block every
//! block interval and at every batch boundary and stores it in the block manager at the stream's
//! storage level. The batch at time `t` holds the blocks cut in `(t - batch, t]`, one partition
//! per block. A receiver that fails with a retryable error is restarted with exponential backoff;
//! every restart is logged, counted and reported to listeners.
//!
//! With [`ReceiverConfig::write_ahead_log`] on, each block is first appended to the write-ahead
//! log in the checkpoint directory (see `wal.rs`); a recovered driver reads the blocks of the
//! batches it re-runs from there. Receivers whose source can replay (and wants an
//! acknowledgement) use [`ReceiverContext::store_reliably`], which returns once the records are
//! in the log.

use crate::clock::Clock;
use crate::listener::StreamingListener;
use crate::{Time, time::millis};
use parking_lot::Mutex;
use spate_core::{Context, Data, StorageLevel};
use spate_storage::{BlockId, EncodedBlock};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver as Rx, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Why a receiver stopped receiving, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverError {
    /// A transient failure (a refused or lost connection, a broker away): restart after a
    /// backoff.
    Retry(String),
    /// A failure a restart cannot fix (bad configuration): the receiver stays stopped.
    Fatal(String),
}

impl std::fmt::Display for ReceiverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReceiverError::Retry(m) => write!(f, "{m} (will retry)"),
            ReceiverError::Fatal(m) => write!(f, "{m} (not retrying)"),
        }
    }
}

/// A source of records. Implement [`receive`](Receiver::receive): loop reading the source,
/// calling [`ReceiverContext::store`] for each record, until the source ends (`Ok`), fails
/// (`Err`), or [`ReceiverContext::is_stopped`] turns true (return `Ok`). Blocking reads should
/// use a timeout so a stop is noticed promptly.
pub trait Receiver<T: Data>: Send + 'static {
    /// Receives records until done, failed or stopped.
    fn receive(&mut self, ctx: &ReceiverContext<T>) -> Result<(), ReceiverError>;

    /// A name for logs and listeners.
    fn name(&self) -> String {
        "receiver".into()
    }
}

/// The most records in one received block (see `limit` in `Runner::start`).
const MAX_BLOCK_RECORDS: usize = 1_000_000;

/// The most bytes of encoded records a received block is built in: a block is cut early rather
/// than grow past it. Blocks of one size keep a fast receiver's buffers reusable (a removed
/// block's buffer fits the next block; see `BlockManager::buffer`), and its tasks even. Before,
/// blocks were cut by time alone and grew by doubling: at 3M lines/s they ranged from 4 to
/// 100 MB, most buffers fitted no later block, and the block generator spent three quarters of
/// its time in the kernel, zeroing the fresh memory its blocks and their growth took.
const BLOCK_BYTES: usize = 8 << 20;

/// The room for encoded records the next block is built in, when recent blocks took `recent`
/// bytes: twice that, as a power of two from 64 KiB to `BLOCK_BYTES`. In a few sizes, so that a
/// removed block's buffer fits later blocks: with room of exactly twice `recent`, blocks made
/// while the rate was rising (6.5–7.9 MiB) filled the pool of kept buffers and none fitted the
/// 8 MiB blocks that followed (word count at 2M lines/s: 158 of 247 blocks in fresh memory).
fn block_room(recent: usize) -> usize {
    recent
        .saturating_mul(2)
        .checked_next_power_of_two()
        .unwrap_or(BLOCK_BYTES)
        .clamp(64 << 10, BLOCK_BYTES)
}

/// Settings of receivers (Spark's `spark.streaming.blockInterval`,
/// `spark.streaming.receiver.maxRate`, …).
#[derive(Clone, Debug)]
pub struct ReceiverConfig {
    /// How often received records are cut into a block (200 ms).
    pub block_interval: Duration,
    /// Records that may be received but not yet taken by a batch before `store` blocks (a
    /// back-pressure bound in records, beside the one in bytes, `memory_fraction`; 10,000,000).
    /// It caps one receiver at this many records per batch interval: at 2,000,000 (the default
    /// until the benchmark met it) a socket receiver with 1 s batches could not pass 2M lines/s.
    pub queue_capacity: usize,
    /// The most records per second one receiver may store (unlimited by default).
    pub max_rate: Option<u64>,
    /// `store` also waits while the receiver's unprocessed records (queued, or in batches that
    /// have not completed), at the bytes per record of its blocks so far, would take more than
    /// this fraction of the memory store's budget (0.8; 1.0 or more turns it off). Received
    /// blocks at a memory-only level are dropped when the store evicts them for room, so a
    /// receiver faster than processing must wait for batches to complete rather than push its
    /// own unprocessed blocks out; processed blocks kept for windows are evicted first (least
    /// recently used) and are not counted.
    pub memory_fraction: f64,
    /// The first restart backoff (doubles per consecutive failure; 100 ms).
    pub restart_backoff: Duration,
    /// The longest restart backoff (5 s).
    pub max_restart_backoff: Duration,
    /// Append every received block to a write-ahead log in the checkpoint directory before it
    /// is used, so that a driver restart loses no received record (off by default, like
    /// `spark.streaming.receiver.writeAheadLog.enable`; needs `ssc.checkpoint(dir)`). Costs a
    /// serialization and an fsync per block.
    pub write_ahead_log: bool,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            block_interval: Duration::from_millis(200),
            queue_capacity: 10_000_000,
            max_rate: None,
            memory_fraction: 0.8,
            restart_backoff: Duration::from_millis(100),
            max_restart_backoff: Duration::from_secs(5),
            write_ahead_log: false,
        }
    }
}

/// Counters of one receiver.
#[derive(Debug, Default)]
pub struct ReceiverStats {
    /// Records stored.
    pub records: AtomicU64,
    /// Blocks cut.
    pub blocks: AtomicU64,
    /// Records the receiver skipped as malformed (reported with [`ReceiverContext::skip`]).
    pub skipped: AtomicU64,
    /// Errors reported (including failures that led to restarts).
    pub errors: AtomicU64,
    /// Restarts after failures.
    pub restarts: AtomicU64,
    /// The most records ever waiting in the queue to the block generator.
    pub max_queued: AtomicU64,
    /// Times `store` waited because unprocessed records reached the memory fraction.
    pub memory_waits: AtomicU64,
}

/// A snapshot of a receiver's state for listeners and `StreamingContext::receiver_info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiverInfo {
    /// The input stream's id.
    pub stream: usize,
    /// The receiver's name.
    pub name: String,
    /// Whether it is running.
    pub active: bool,
    /// Records stored so far.
    pub records: u64,
    /// Malformed records skipped so far.
    pub skipped: u64,
    /// Restarts so far.
    pub restarts: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// The most records ever received but not yet taken by a batch (at most the queue
    /// capacity, or one `store_many` call when that alone is larger).
    pub max_queued: u64,
    /// Times `store` waited because the receiver's unprocessed records reached the memory
    /// fraction (see [`ReceiverConfig::memory_fraction`]).
    pub memory_waits: u64,
}

enum Msg<T> {
    /// Records, and the source position after them if the receiver noted one.
    Records(Incoming<T>, Option<String>),
    /// Cut what is buffered into a block now; answer whether it is stored (and logged).
    Flush(SyncSender<bool>),
    Cut(Time, SyncSender<()>),
    Stop,
}

/// Records as a receiver handed them over: values, or already encoded.
enum Incoming<T> {
    Values(Vec<T>),
    Encoded(EncodedRecords<T>),
}

/// Records encoded as they are received, for [`ReceiverContext::store_encoded`]: the block
/// generator copies their bytes into a block instead of holding a value per record and
/// serializing it (for a socket of text lines: no `String` per line, no second pass).
pub struct EncodedRecords<T> {
    bytes: Vec<u8>,
    count: u64,
    record: std::marker::PhantomData<fn(T)>,
}

impl<T: Data> Default for EncodedRecords<T> {
    fn default() -> Self {
        EncodedRecords::with_capacity(0)
    }
}

impl<T: Data> EncodedRecords<T> {
    /// An empty batch of records with room for `bytes` bytes of encodings.
    pub fn with_capacity(bytes: usize) -> Self {
        EncodedRecords::in_buffer(Vec::with_capacity(bytes))
    }

    /// An empty batch of records in `bytes`, an empty buffer.
    fn in_buffer(bytes: Vec<u8>) -> Self {
        EncodedRecords {
            bytes,
            count: 0,
            record: std::marker::PhantomData,
        }
    }

    /// Appends `record`. A record that cannot be encoded is an error and leaves nothing behind.
    pub fn push(&mut self, record: &T) -> Result<(), ReceiverError> {
        self.append(record)
    }

    /// Appends the encoding of `record` as one record of type `T`.
    fn append<R: serde::Serialize + ?Sized>(&mut self, record: &R) -> Result<(), ReceiverError> {
        spate_storage::encode_record(record, &mut self.bytes)
            .map_err(|e| ReceiverError::Fatal(format!("a record cannot be encoded: {e}")))?;
        self.count += 1;
        Ok(())
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The size of their encodings in bytes.
    pub fn encoded_len(&self) -> usize {
        self.bytes.len()
    }
}

impl EncodedRecords<String> {
    /// Appends a text record: `s` is encoded as the `String` it would be, without making one.
    pub fn push_str(&mut self, s: &str) {
        self.append(s)
            .expect("encoding a string into a vector cannot fail");
    }
}

/// A flag that turns true when a receiver should stop.
#[derive(Clone, Debug)]
pub struct StopSignal(Arc<AtomicBool>);

impl StopSignal {
    /// Whether the receiver should stop.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What a receiver uses to hand over records and learn whether to stop.
pub struct ReceiverContext<T: Data> {
    tx: SyncSender<Msg<T>>,
    stopped: Arc<AtomicBool>,
    shared: Arc<RunnerShared>,
    max_rate: Option<u64>,
    capacity: u64,
    /// Records buffered before the block generator cuts a block.
    block_records: u64,
    /// The bytes unprocessed records may take (`memory_fraction` of the memory store's fixed
    /// budget); `None` when the bound is off.
    memory_limit: Option<f64>,
    started: Instant,
    stored: AtomicU64,
}

impl<T: Data> ReceiverContext<T> {
    /// Stores one record. Blocks while the queue to the block generator is full (back-pressure)
    /// or the rate limit is reached.
    pub fn store(&self, record: T) {
        self.store_many(vec![record]);
    }

    /// Stores records in order.
    pub fn store_many(&self, records: Vec<T>) {
        self.store_many_with(records, None);
    }

    /// Stores records and notes where the source is after them (an offset, a line count: any
    /// text the receiver understands). With the write-ahead log on, the position goes into the
    /// log with the block that holds the records, and a receiver of a recovered driver reads it
    /// back with [`logged_position`](Self::logged_position) and asks its source to resume from
    /// there: nothing is lost, nothing is received twice.
    pub fn store_many_at(&self, records: Vec<T>, position: impl Into<String>) {
        self.store_many_with(records, Some(position.into()));
    }

    /// The source position noted with the newest block a previous run of the driver wrote to the
    /// write-ahead log; `None` without the log, on a fresh start, or when no position was noted.
    pub fn logged_position(&self) -> Option<String> {
        self.shared.logged_position.lock().clone()
    }

    /// An empty batch of records to encode into, with room for at least `bytes` bytes: in the
    /// buffer of records stored before when one that large is free (the block generator hands
    /// each buffer back once it has copied the records into a block), else in a new one of the
    /// next power of two (so that it serves later requests of about the same size: a receiver
    /// that asks for a little more than its last chunk took found every other kept buffer a
    /// little too small).
    ///
    /// Memory that is new to the process costs the kernel a zeroing per page on first touch
    /// (and on a virtual machine whose host takes back freed memory, the host a fault of its
    /// own): on such a machine a socket receiver that made each 400 KB chunk in a new buffer
    /// spent most of its time in those faults once word count fell behind, and at 1M lines/s,
    /// keeping up, took 21–23% of a core against 15–16% with kept buffers.
    pub fn encoded_records(&self, bytes: usize) -> EncodedRecords<T> {
        let reused = {
            let mut spare = self.shared.spare_buffers.lock();
            let fits = spare.iter().position(|b| b.capacity() >= bytes);
            fits.map(|i| spare.swap_remove(i))
        };
        match reused {
            Some(buffer) => EncodedRecords::in_buffer(buffer),
            None => {
                EncodedRecords::with_capacity(bytes.checked_next_power_of_two().unwrap_or(bytes))
            }
        }
    }

    /// Stores records encoded as they were received (see [`EncodedRecords`]), in order with
    /// records stored by the other methods. Back-pressure and rate limits apply as to
    /// [`store_many`](Self::store_many).
    pub fn store_encoded(&self, records: EncodedRecords<T>) {
        self.store_encoded_with(records, None);
    }

    /// [`store_encoded`](Self::store_encoded), noting the source position after the records
    /// (see [`store_many_at`](Self::store_many_at)).
    pub fn store_encoded_at(&self, records: EncodedRecords<T>, position: impl Into<String>) {
        self.store_encoded_with(records, Some(position.into()));
    }

    fn store_encoded_with(&self, records: EncodedRecords<T>, position: Option<String>) {
        let n = records.count;
        let bytes = records.encoded_len() as u64;
        let msg = Msg::Records(Incoming::Encoded(records), position);
        self.hand_over(n, bytes, msg);
    }

    fn store_many_with(&self, records: Vec<T>, position: Option<String>) {
        let n = records.len() as u64;
        let msg = Msg::Records(Incoming::Values(records), position);
        self.hand_over(n, 0, msg);
    }

    /// Hands `n` records (in `msg`; `bytes` of encodings, 0 for values) to the block generator
    /// once rate limit and back-pressure let them through. No records and no position: nothing
    /// to do.
    fn hand_over(&self, n: u64, bytes: u64, msg: Msg<T>) {
        if n == 0 {
            if matches!(msg, Msg::Records(_, Some(_))) {
                let _ = self.tx.send(msg);
            }
            return;
        }
        if let Some(rate) = self.max_rate.filter(|r| *r > 0) {
            let stored = self.stored.load(Ordering::Relaxed) + n;
            let due = Duration::from_secs_f64(stored as f64 / rate as f64);
            let elapsed = self.started.elapsed();
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
        // Back-pressure: wait while the records no batch has taken yet would exceed the queue
        // bound, or while this receiver's unprocessed records (queued, or in batches not yet
        // completed) would take more than the memory fraction, or while the block generator
        // has more than `HANDED_BYTES` of encodings still to copy. A receiver with nothing
        // queued and nothing in flight always goes on (a single call larger than the bounds
        // included).
        {
            let mut waiting = self.shared.waiters.lock();
            let mut warned = false;
            loop {
                let q = self.shared.queued.load(Ordering::Acquire);
                let in_flight = self.shared.in_flight_records.load(Ordering::Acquire);
                if (q == 0 && in_flight == 0) || self.is_stopped() {
                    break;
                }
                let memory_full = self.memory_full(q + in_flight + n);
                // Until a first block is stored, what a record takes is unknown: queue at most a
                // block's worth (a block is cut when that much is buffered).
                let sizing = q >= self.block_records
                    && self.shared.stats.blocks.load(Ordering::Acquire) == 0;
                let handed = self.shared.handed_bytes.load(Ordering::Acquire);
                let behind = handed > 0 && handed + bytes > HANDED_BYTES;
                if (q == 0 || q + n <= self.capacity) && !memory_full && !sizing && !behind {
                    break;
                }
                if memory_full && !warned {
                    warned = true;
                    tracing::debug!(
                        stream = self.shared.stream,
                        "unprocessed records fill the memory fraction: the receiver waits for batches to complete"
                    );
                    self.shared
                        .stats
                        .memory_waits
                        .fetch_add(1, Ordering::Relaxed);
                }
                self.shared
                    .drained
                    .wait_for(&mut waiting, Duration::from_millis(10));
            }
        }
        let queued = self.shared.queued.fetch_add(n, Ordering::AcqRel) + n;
        self.shared
            .stats
            .max_queued
            .fetch_max(queued, Ordering::Relaxed);
        self.stored.fetch_add(n, Ordering::Relaxed);
        self.shared.handed_bytes.fetch_add(bytes, Ordering::AcqRel);
        // Counted before they are handed over, so no batch ever holds records the count lacks;
        // and under `handing`, so no cut comes between the two. The block generator drains
        // until the receiver thread has exited, so this cannot block forever.
        let _handing = self.shared.handing.lock();
        self.shared.stats.records.fetch_add(n, Ordering::Relaxed);
        if self.tx.send(msg).is_err() {
            self.shared.stats.records.fetch_sub(n, Ordering::Relaxed);
            self.shared.handed_bytes.fetch_sub(bytes, Ordering::AcqRel);
            self.shared.queued.fetch_sub(n, Ordering::AcqRel);
            tracing::error!(
                stream = self.shared.stream,
                records = n,
                "the receiver's block generator has stopped: records it was handed are lost"
            );
            self.shared.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Stores records and returns once they are in a stored block: appended and synced to the
    /// write-ahead log when it is on. Only then acknowledge them to a source that can replay,
    /// so that neither a receiver restart nor a driver restart loses them. Fails when the block
    /// could not be stored or logged (the records may still reach a batch; do not acknowledge).
    pub fn store_reliably(&self, records: Vec<T>) -> Result<(), ReceiverError> {
        self.store_many(records);
        let (ack_tx, ack_rx) = sync_channel(1);
        if self.tx.send(Msg::Flush(ack_tx)).is_err() {
            return Err(ReceiverError::Fatal("the receiver is stopped".into()));
        }
        match ack_rx.recv() {
            Ok(true) => Ok(()),
            Ok(false) => Err(ReceiverError::Retry(
                "the received block could not be stored or logged; see the error above".into(),
            )),
            Err(_) => Err(ReceiverError::Fatal("the receiver is stopped".into())),
        }
    }

    /// A cloneable flag that turns true when the receiver should stop (for readers that poll it
    /// between timed-out reads).
    pub fn stop_signal(&self) -> StopSignal {
        StopSignal(self.stopped.clone())
    }

    /// Whether the context is stopping: return from `receive` soon.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Counts and logs a malformed record that was skipped.
    pub fn skip(&self, why: &str) {
        let n = self.shared.stats.skipped.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(
            stream = self.shared.stream,
            skipped = n,
            "skipped a malformed record: {why}"
        );
    }

    /// Reports an error that did not stop the receiver (counted, logged, kept as the last error).
    pub fn report_error(&self, message: &str) {
        self.shared.record_error(message.to_string());
        tracing::warn!(stream = self.shared.stream, "receiver error: {message}");
    }

    /// Whether `records` unprocessed records (at the bytes per record of the blocks stored so
    /// far) would take more than the memory fraction of the memory store's budget.
    fn memory_full(&self, records: u64) -> bool {
        let Some(limit) = self.memory_limit else {
            return false;
        };
        let bytes = self.shared.bytes_cut.load(Ordering::Relaxed) as f64;
        let cut = self.shared.records_cut.load(Ordering::Relaxed).max(1) as f64;
        records as f64 * bytes / cut > limit
    }

    /// Records received but not yet taken by a batch (at most the queue capacity).
    pub fn queued(&self) -> u64 {
        self.shared.queued.load(Ordering::Acquire)
    }
}

struct RunnerShared {
    stream: usize,
    /// What the write-ahead log held as the source position at start.
    logged_position: Mutex<Option<String>>,
    stats: ReceiverStats,
    queued: AtomicU64,
    /// Bytes and records of the blocks stored in memory so far (their ratio estimates what a
    /// queued record will take).
    bytes_cut: AtomicU64,
    records_cut: AtomicU64,
    /// Records of batches that took them and have not completed, by batch time (only where the
    /// batches run: on the driver).
    in_flight: Mutex<BTreeMap<Time, u64>>,
    in_flight_records: AtomicU64,
    /// The last batch completed (ms; 0: none), which a driver passes on to a receiver running on
    /// an executor with the next cut.
    completed_ms: AtomicU64,
    last_error: Mutex<Option<String>>,
    active: AtomicBool,
    waiters: Mutex<()>,
    /// Held while records are counted and handed to the block generator, and while a batch's
    /// cut is sent to it: records counted before a cut is asked for are in that cut (without
    /// it, a cut sent between the count and the hand-over left them for the next batch).
    handing: Mutex<()>,
    drained: parking_lot::Condvar,
    /// Buffers of encoded records the block generator has copied into a block, for the
    /// receiver's next records (see [`ReceiverContext::encoded_records`]).
    spare_buffers: Mutex<Vec<Vec<u8>>>,
    /// Bytes of encoded records handed to the block generator that it has not yet copied into
    /// a block (at most about `HANDED_BYTES`: see `hand_over`).
    handed_bytes: AtomicU64,
}

/// The most bytes of encoded records a receiver hands to its block generator ahead of it (one
/// message may take it past; a receiver with nothing ahead always goes on). Without this bound
/// only the records bound held them: a block generator slowed down (by fresh memory that took
/// seconds per gigabyte to fault in) fell hundreds of megabytes behind, each batch's cut waited
/// behind all of them, batches were scheduled seconds late, their blocks lived on, no buffer came
/// back for reuse, every new block was fresh memory, and the run never recovered (word count at
/// 2M lines/s: 2 of 12 batches completed, scheduling delay 7–11 s, workers nearly idle). With
/// it, the receiver waits, the socket pushes back on its sender, and a cut waits for at most
/// this much.
const HANDED_BYTES: u64 = (BLOCK_BYTES / 2) as u64;

/// The most buffers of encoded records kept for reuse: enough for what may be handed to the
/// block generator ahead of it (`HANDED_BYTES`) in a socket receiver's buffers of about 512 KB.
const SPARE_BUFFERS: usize = 12;

impl RunnerShared {
    /// Counts an error and keeps `message` as the receiver's last one.
    fn record_error(&self, message: String) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock() = Some(message);
    }

    fn new(stream: usize) -> RunnerShared {
        RunnerShared {
            stream,
            logged_position: Mutex::new(None),
            stats: ReceiverStats::default(),
            queued: AtomicU64::new(0),
            bytes_cut: AtomicU64::new(0),
            records_cut: AtomicU64::new(0),
            in_flight: Mutex::new(BTreeMap::new()),
            in_flight_records: AtomicU64::new(0),
            completed_ms: AtomicU64::new(0),
            last_error: Mutex::new(None),
            active: AtomicBool::new(false),
            waiters: Mutex::new(()),
            handing: Mutex::new(()),
            drained: parking_lot::Condvar::new(),
            spare_buffers: Mutex::new(Vec::new()),
            handed_bytes: AtomicU64::new(0),
        }
    }

    /// The block generator has copied the encoded records in `bytes` into a block: they no
    /// longer count against `HANDED_BYTES` (a receiver waiting on that bound is woken), and
    /// the buffer is kept for the receiver's next records.
    fn copied(&self, bytes: Vec<u8>) {
        self.handed_bytes
            .fetch_sub(bytes.len() as u64, Ordering::AcqRel);
        {
            let _g = self.waiters.lock();
            self.drained.notify_all();
        }
        self.keep_spare(bytes);
    }

    /// Keeps `bytes`, the buffer of encoded records just copied into a block, for the receiver's
    /// next records: if there is room, or in place of the smallest kept buffer if it is larger
    /// (the small buffers of a slow stream would otherwise keep a fast one's out).
    fn keep_spare(&self, mut bytes: Vec<u8>) {
        bytes.clear();
        let mut spare = self.spare_buffers.lock();
        if spate_storage::make_room(&mut spare, SPARE_BUFFERS, bytes.capacity()) {
            spare.push(bytes);
        }
    }
}

/// A received block, as the tracker records it.
#[derive(Clone, Debug)]
pub(crate) struct ReceivedBlock {
    pub(crate) id: BlockId,
    pub(crate) records: u64,
    /// The source position after its records, if the receiver noted one.
    pub(crate) position: Option<String>,
}

/// The type-erased runner the context starts and stops.
pub(crate) trait ReceiverRunner: Send + Sync {
    fn start(
        &self,
        ctx: &Context,
        clock: Clock,
        listeners: Vec<Arc<dyn StreamingListener>>,
        recovery: &RunnerStart,
    ) -> crate::Result<()>;
    fn stop(&self);
    fn info(&self) -> ReceiverInfo;
    /// Whether blocks were cut that no batch has taken yet.
    fn has_pending_blocks(&self) -> bool;
    /// The input stream's operator id.
    fn stream(&self) -> usize;
    /// Runs the receiver on an executor of `cluster` instead of here, if one can (same build
    /// and job graph `graph`); returns whether it does.
    fn start_remote(
        &self,
        ctx: &Context,
        cluster: &spate_core::cluster::Cluster,
        graph: u64,
        listeners: Vec<Arc<dyn StreamingListener>>,
    ) -> bool;
    /// This process is an executor: batches are rebuilt from the driver's block lists, and a
    /// receiver started here hands its blocks over through [`cut_here`](Self::cut_here).
    fn mark_executor(&self);
    /// Cuts and takes the blocks up to `t` (on the executor running the receiver), and returns
    /// them with those earlier cuts took from sequence number `taken_below` on (the driver has
    /// every block below it and did not get those).
    fn cut_here(&self, t: Time, taken_below: u64) -> spate_core::cluster::Cut;
    /// The batch of `t` (and every earlier one) completed: its records no longer count against
    /// the memory fraction.
    fn batch_completed(&self, t: Time);
}

/// What a runner needs to know about the context it starts in.
pub(crate) struct RunnerStart {
    /// The context's checkpoint directory.
    pub(crate) checkpoint_dir: Option<std::path::PathBuf>,
    /// The batch interval.
    pub(crate) batch: Duration,
    /// The last batch completed before a driver restart, when recovering.
    pub(crate) recovered: Option<Time>,
    /// On an executor: the first block sequence number, and where the source resumes.
    pub(crate) resume: Option<(u64, Option<String>)>,
}

/// A receiver running on an executor, as its driver-side runner knows it.
struct Remote {
    cluster: spate_core::cluster::Cluster,
    graph: u64,
    executor: u32,
    /// The next block sequence number a restarted receiver should use.
    next_seq: u64,
    /// The source position after the last block taken.
    position: Option<String>,
    /// Cuts in a row the executor, still alive, did not answer (or answered with a failure).
    failed_cuts: u32,
    /// What each executor that ran the receiver counted there, as its last cut said (a
    /// receiver that comes back to an executor goes on from its counts there).
    counted: BTreeMap<u32, spate_core::cluster::ReceiverCounts>,
    /// Told of the receiver's events on the driver's behalf: it started (on an executor, or
    /// on another one after moving), failed there (as a cut tells, or its executor was lost),
    /// stopped.
    listeners: Vec<Arc<dyn StreamingListener>>,
}

/// How many cuts in a row a live executor may fail before the receiver is stopped there and
/// started on another one. A cut that fails once (an executor that paused, a block generator
/// slowed down) costs nothing: the next cut hands over what it took.
const FAILED_CUTS_BEFORE_MOVING: u32 = 3;

/// The log of a runner and what an earlier run of the driver left in it.
struct RunnerWal {
    wal: Mutex<crate::wal::Wal>,
    /// Blocks with sequence numbers up to this one were written by the previous run.
    old_max_seq: Option<u64>,
    /// Batches before this time are the previous run's: only its logged blocks make them.
    live_from: Time,
}

/// Runs one receiver: its supervisor thread, its block generator thread, and the blocks it cut.
pub(crate) struct Runner<T: Data> {
    name: String,
    receiver: Mutex<Option<Box<dyn Receiver<T>>>>,
    level: StorageLevel,
    config: ReceiverConfig,
    shared: Arc<RunnerShared>,
    stopped: Arc<AtomicBool>,
    tx: Mutex<Option<SyncSender<Msg<T>>>>,
    /// Blocks by the time they were cut.
    blocks: Arc<Mutex<BTreeMap<Time, Vec<ReceivedBlock>>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    ctx: Mutex<Option<Context>>,
    wal: Mutex<Option<Arc<RunnerWal>>>,
    /// Set when the receiver runs on an executor (driver side).
    remote: Mutex<Option<Remote>>,
    /// On the executor running the receiver: the blocks cuts handed over that the driver has
    /// not yet confirmed having (by a later cut's `taken_below`), in order.
    unconfirmed: Mutex<Vec<spate_core::cluster::CutBlock>>,
    /// Set in an executor process.
    on_executor: AtomicBool,
    /// The sequence numbers of the blocks of recent batches (for metadata checkpoints), and
    /// those a metadata checkpoint recorded (to check the log on recovery).
    allocated: Mutex<BTreeMap<Time, Vec<u64>>>,
    recorded: Mutex<BTreeMap<Time, Vec<u64>>>,
}

impl<T: Data> Drop for Runner<T> {
    fn drop(&mut self) {
        // Blocks no batch took (the context stopped without draining) are freed.
        if let Some(ctx) = self.ctx.get_mut().take() {
            for b in self.blocks.lock().values().flatten() {
                ctx.block_manager().remove(&b.id);
            }
        }
    }
}

impl<T: Data> Runner<T> {
    pub(crate) fn new(
        stream: usize,
        receiver: Box<dyn Receiver<T>>,
        level: StorageLevel,
        config: ReceiverConfig,
    ) -> Runner<T> {
        Runner {
            name: receiver.name(),
            receiver: Mutex::new(Some(receiver)),
            level,
            config,
            shared: Arc::new(RunnerShared::new(stream)),
            stopped: Arc::new(AtomicBool::new(false)),
            tx: Mutex::new(None),
            blocks: Arc::default(),
            threads: Mutex::new(Vec::new()),
            ctx: Mutex::new(None),
            wal: Mutex::new(None),
            remote: Mutex::new(None),
            unconfirmed: Mutex::new(Vec::new()),
            on_executor: AtomicBool::new(false),
            allocated: Mutex::new(BTreeMap::new()),
            recorded: Mutex::new(BTreeMap::new()),
        }
    }

    /// The block sequence numbers of every batch after `from`, as JSON: for the metadata
    /// checkpoint (checked against the write-ahead log on recovery) and for executors, which
    /// rebuild a batch from them.
    pub(crate) fn save_allocations(&self, from: Time) -> String {
        let a = self.allocated.lock();
        let list: Vec<(u64, &Vec<u64>)> = a
            .range(from.plus(Duration::from_millis(1))..)
            .map(|(t, s)| (t.ms(), s))
            .collect();
        serde_json::to_string(&list).unwrap_or_default()
    }

    /// Takes back what a metadata checkpoint recorded of the blocks of each batch.
    pub(crate) fn restore_allocations(&self, text: &str) -> Result<(), String> {
        if text.is_empty() {
            return Ok(());
        }
        let list: Vec<(u64, Vec<u64>)> = serde_json::from_str(text).map_err(|e| {
            format!("the saved block ids of a receiver stream are not readable: {e}")
        })?;
        *self.recorded.lock() = list
            .into_iter()
            .map(|(t, s)| (Time::from_ms(t), s))
            .collect();
        Ok(())
    }

    /// The blocks of the batch at `t` (batch interval `batch`): those the previous run of the
    /// driver logged for it, read back from the write-ahead log and stored again, then (for
    /// batches of this run) those received since the last batch.
    pub(crate) fn batch_blocks(
        &self,
        t: Time,
        batch: Duration,
    ) -> crate::Result<Vec<ReceivedBlock>> {
        let wal = self.wal.lock().clone();
        let mut blocks = Vec::new();
        if let Some(w) = &wal
            && let Some(old_max) = w.old_max_seq
        {
            let ctx = self.ctx.lock().clone();
            let logged = w.wal.lock().read(t.minus(batch), t)?;
            for (seq, bytes) in logged.into_iter().filter(|(s, _)| *s <= old_max) {
                let id = BlockId::Input {
                    stream: self.shared.stream as u32,
                    unique: seq,
                };
                let values: Vec<T> =
                    spate_storage::deserialize_block(&id, &bytes).map_err(|e| {
                        crate::Error::State(format!(
                            "a block of the write-ahead log cannot be read: {e}"
                        ))
                    })?;
                let records = values.len() as u64;
                if let Some(ctx) = &ctx {
                    ctx.block_manager()
                        .put_values(id.clone(), values, self.level)
                        .map_err(|e| {
                            crate::Error::State(format!(
                                "cannot store a block read back from the write-ahead log: {e}"
                            ))
                        })?;
                }
                blocks.push(ReceivedBlock {
                    id,
                    records,
                    position: None,
                });
            }
        }
        // The receiver runs on an executor: cut there, and take what it cut.
        if self.remote.lock().is_some() {
            let blocks = self.take_remote(t);
            self.record_allocation(t, &blocks);
            return Ok(blocks);
        }
        // An executor rebuilding a batch: the batch is the blocks the driver recorded for it,
        // read from the driver (or from this executor's own copy).
        if self.on_executor.load(Ordering::Acquire) {
            // No list for the batch would silently make it empty: fail the task instead (the
            // driver then computes it itself).
            let recorded = self.recorded.lock().get(&t).cloned().ok_or_else(|| {
                crate::Error::State(format!(
                    "the driver sent no block list for the batch of {t} of stream {}",
                    self.shared.stream
                ))
            })?;
            return Ok(recorded
                .into_iter()
                .map(|seq| ReceivedBlock {
                    id: BlockId::Input {
                        stream: self.shared.stream as u32,
                        unique: seq,
                    },
                    records: 0,
                    position: None,
                })
                .collect());
        }
        if let Some(expected) = self.recorded.lock().get(&t).filter(|_| wal.is_some()) {
            let missing: Vec<u64> = expected
                .iter()
                .filter(|s| !blocks.iter().any(|b| id_seq(&b.id) == **s))
                .copied()
                .collect();
            if !missing.is_empty() {
                tracing::error!(stream = self.shared.stream, batch = %t, ?missing, "the write-ahead log lacks blocks the checkpoint lists for this batch (deleted or damaged): their records are lost");
                self.shared.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        if wal.as_ref().is_none_or(|w| t >= w.live_from) {
            self.cut(t);
            let taken = self.take_blocks(t);
            self.hold_in_flight(t, &taken);
            blocks.extend(taken);
        }
        self.record_allocation(t, &blocks);
        Ok(blocks)
    }

    /// Counts the records of blocks the batch of `t` took as unprocessed until it completes
    /// (`batch_completed`).
    fn hold_in_flight(&self, t: Time, taken: &[ReceivedBlock]) {
        let n: u64 = taken.iter().map(|b| b.records).sum();
        if n > 0 {
            *self.shared.in_flight.lock().entry(t).or_default() += n;
            self.shared.in_flight_records.fetch_add(n, Ordering::AcqRel);
        }
    }

    /// Remembers the blocks of the batch at `t` (for checkpoints and executors).
    fn record_allocation(&self, t: Time, blocks: &[ReceivedBlock]) {
        let mut a = self.allocated.lock();
        a.insert(t, blocks.iter().map(|b| id_seq(&b.id)).collect());
        while a.len() > 1000 {
            a.pop_first();
        }
    }

    /// Whether this is the driver's runner (whose batches own their blocks), not an executor's.
    pub(crate) fn owns_blocks(&self) -> bool {
        !self.on_executor.load(Ordering::Acquire)
    }

    /// The blocks the executor running the receiver cut up to `t`. If that executor is gone, the
    /// receiver starts on another one, resuming its source after the last block taken (what the
    /// lost executor held beyond that is received again from a source that can replay). If it is
    /// alive but did not answer (or failed the cut), the receiver stays: the batch of `t` gets
    /// none of its blocks and the next cut hands them over, unless that was the
    /// [`FAILED_CUTS_BEFORE_MOVING`]th failure in a row, when it is stopped there and moved.
    fn take_remote(&self, t: Time) -> Vec<ReceivedBlock> {
        let mut events = Vec::new();
        let (blocks, listeners) = {
            let mut guard = self.remote.lock();
            let Some(r) = guard.as_mut() else {
                return Vec::new();
            };
            (self.cut_remote(r, t, &mut events), r.listeners.clone())
        };
        // Told once the lock is released: a listener may ask the context about its receivers.
        for (event, info) in &events {
            tell_all(&listeners, *event, info);
        }
        blocks
    }

    /// [`take_remote`](Self::take_remote) on the receiver's remote state; the listeners'
    /// events go to `events`.
    fn cut_remote(
        &self,
        r: &mut Remote,
        t: Time,
        events: &mut Vec<(ReceiverEvent, ReceiverInfo)>,
    ) -> Vec<ReceivedBlock> {
        let stream = self.shared.stream as u64;
        let completed = self.shared.completed_ms.load(Ordering::Acquire);
        match r
            .cluster
            .cut_receiver(r.executor, stream, t.ms(), completed, r.next_seq)
        {
            Ok((cut, counts)) => {
                r.failed_cuts = 0;
                let before = r.counted.entry(r.executor).or_default();
                add_remote_counts(&self.shared, before, &counts);
                let failed = counts.errors > before.errors;
                *before = counts;
                if failed {
                    events.push((ReceiverEvent::Error, self.info()));
                }
                let blocks: Vec<ReceivedBlock> = cut
                    .into_iter()
                    .map(|b| ReceivedBlock {
                        id: BlockId::Input {
                            stream: self.shared.stream as u32,
                            unique: b.seq,
                        },
                        records: b.records,
                        position: b.position,
                    })
                    .collect();
                for b in &blocks {
                    r.next_seq = r.next_seq.max(id_seq(&b.id) + 1);
                    if b.position.is_some() {
                        r.position = b.position.clone();
                    }
                }
                let n: u64 = blocks.iter().map(|b| b.records).sum();
                self.shared.stats.records.fetch_add(n, Ordering::Relaxed);
                blocks
            }
            Err(e) => {
                let alive = r.cluster.executor_pid(r.executor).is_some();
                if alive {
                    r.failed_cuts += 1;
                    if r.failed_cuts < FAILED_CUTS_BEFORE_MOVING {
                        tracing::warn!(stream, executor = r.executor, batch = %t, error = %e, "the executor running the receiver did not hand over this batch's blocks; the next cut takes them");
                        return Vec::new();
                    }
                    tracing::warn!(stream, executor = r.executor, error = %e, failed = r.failed_cuts, "the executor running the receiver failed its cuts; stopping the receiver there and starting it on another one");
                    // Stopped first, so that two receivers do not read one source.
                    if let Err(stop) = r.cluster.stop_receiver(r.executor, stream) {
                        tracing::error!(stream, executor = r.executor, error = %stop, "could not stop the receiver there: it may still read its source");
                    }
                } else {
                    tracing::warn!(stream, executor = r.executor, error = %e, "the executor running the receiver is gone; starting it on another one");
                }
                r.failed_cuts = 0;
                self.shared.record_error(format!(
                    "executor {} {}: {e}",
                    r.executor,
                    if alive {
                        "failed its cuts"
                    } else {
                        "running the receiver is gone"
                    }
                ));
                events.push((ReceiverEvent::Error, self.info()));
                // Blocks its replicas left here beyond the last one taken are dropped: the
                // source sends their records again.
                if let Some(ctx) = self.ctx.lock().clone() {
                    let next = r.next_seq;
                    let s = self.shared.stream as u32;
                    ctx.block_manager().remove_where(|b| {
                        matches!(b, BlockId::Input { stream, unique } if *stream == s && *unique >= next)
                    });
                }
                r.next_seq += 1 << 32;
                let mut except = Some(r.executor);
                while let Some(e) = r.cluster.pick_executor(r.graph, except) {
                    match r
                        .cluster
                        .start_receiver(e, stream, r.next_seq, r.position.clone())
                    {
                        Ok(()) => {
                            tracing::info!(stream, executor = e, pid = ?r.cluster.executor_pid(e), "receiver runs on executor");
                            self.shared.stats.restarts.fetch_add(1, Ordering::Relaxed);
                            r.executor = e;
                            events.push((ReceiverEvent::Started, self.info()));
                            return Vec::new();
                        }
                        Err(err) => {
                            tracing::warn!(stream, executor = e, error = %err, "could not start the receiver there");
                            except = Some(e);
                        }
                    }
                }
                tracing::error!(
                    stream,
                    "no executor can run the receiver any more: its batches are empty"
                );
                self.shared.active.store(false, Ordering::Release);
                events.push((ReceiverEvent::Stopped, self.info()));
                Vec::new()
            }
        }
    }

    /// Deletes log files no recovery can need any more: all their blocks are at or before
    /// `before`.
    pub(crate) fn clean_log(&self, before: Time) {
        if let Some(w) = self.wal.lock().clone() {
            let n = w.wal.lock().clean(before);
            if n > 0 {
                tracing::debug!(
                    stream = self.shared.stream,
                    files = n,
                    "deleted old write-ahead log files"
                );
            }
        }
    }

    /// Cuts everything stored so far into a block of time `t` (or later, to keep block times
    /// increasing) and waits until it is stored.
    pub(crate) fn cut(&self, t: Time) {
        let tx = self.tx.lock().clone();
        if let Some(tx) = tx {
            let (ack_tx, ack_rx) = sync_channel(1);
            // Not while records are between their count and the block generator.
            let sent = {
                let _handing = self.shared.handing.lock();
                tx.send(Msg::Cut(t, ack_tx)).is_ok()
            };
            if sent {
                let _ = ack_rx.recv();
            }
        }
    }

    /// Removes and returns every block cut at or before `to`, in order.
    pub(crate) fn take_blocks(&self, to: Time) -> Vec<ReceivedBlock> {
        let taken: Vec<ReceivedBlock> = {
            let mut blocks = self.blocks.lock();
            let keys: Vec<Time> = blocks.range(..=to).map(|(t, _)| *t).collect();
            keys.into_iter()
                .flat_map(|k| blocks.remove(&k).unwrap_or_default())
                .collect()
        };
        // Records leave the back-pressure bound only when a batch takes them.
        let n: u64 = taken.iter().map(|b| b.records).sum();
        self.shared.queued.fetch_sub(n, Ordering::AcqRel);
        let _g = self.shared.waiters.lock();
        self.shared.drained.notify_all();
        taken
    }
}

/// A receiver event listeners are told of (by its supervisor, or by the driver on behalf of a
/// receiver on an executor).
#[derive(Clone, Copy, Debug)]
enum ReceiverEvent {
    Started,
    Error,
    Stopped,
}

/// Tells every listener of `event`, with `info`.
fn tell_all(listeners: &[Arc<dyn StreamingListener>], event: ReceiverEvent, info: &ReceiverInfo) {
    for l in listeners {
        match event {
            ReceiverEvent::Started => {
                tell(l, "on_receiver_started", |l| l.on_receiver_started(info))
            }
            ReceiverEvent::Error => tell(l, "on_receiver_error", |l| l.on_receiver_error(info)),
            ReceiverEvent::Stopped => {
                tell(l, "on_receiver_stopped", |l| l.on_receiver_stopped(info))
            }
        }
    }
}

/// Tells a listener of a receiver event; one that panics is logged and skipped (the receiver
/// goes on).
fn tell(l: &Arc<dyn StreamingListener>, event: &str, f: impl FnOnce(&dyn StreamingListener)) {
    if let Err(e) = crate::context::guarded("a streaming listener", || f(&**l)) {
        tracing::error!(event, "{e}; the listener missed this event");
    }
}

fn supervise<T: Data>(
    mut receiver: Box<dyn Receiver<T>>,
    rctx: ReceiverContext<T>,
    config: ReceiverConfig,
    name: String,
    listeners: Vec<Arc<dyn StreamingListener>>,
    info: impl Fn() -> ReceiverInfo,
) {
    let shared = rctx.shared.clone();
    let mut backoff = config.restart_backoff;
    shared.active.store(true, Ordering::Release);
    tell_all(&listeners, ReceiverEvent::Started, &info());
    loop {
        let started = Instant::now();
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| receiver.receive(&rctx)))
                .unwrap_or_else(|p| {
                    let msg = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned());
                    Err(ReceiverError::Retry(format!(
                        "the receiver panicked: {}",
                        msg.unwrap_or_default()
                    )))
                });
        if rctx.is_stopped() {
            break;
        }
        match result {
            Ok(()) => {
                tracing::info!(stream = shared.stream, receiver = %name, "receiver finished: its source ended");
                break;
            }
            Err(e) => {
                shared.record_error(e.to_string());
                tell_all(&listeners, ReceiverEvent::Error, &info());
                if let ReceiverError::Fatal(_) = e {
                    tracing::error!(stream = shared.stream, receiver = %name, "receiver failed: {e}");
                    break;
                }
                if started.elapsed() > config.max_restart_backoff.saturating_mul(2) {
                    backoff = config.restart_backoff;
                }
                tracing::warn!(stream = shared.stream, receiver = %name, ?backoff, "receiver failed: {e}; restarting");
                // A backoff too long for the clock to add waits until stopped.
                let until = Instant::now().checked_add(backoff);
                let left = || {
                    until.map_or(Duration::MAX, |u| {
                        u.saturating_duration_since(Instant::now())
                    })
                };
                while !left().is_zero() && !rctx.is_stopped() {
                    std::thread::sleep(left().min(Duration::from_millis(20)));
                }
                if rctx.is_stopped() {
                    break;
                }
                backoff = backoff.saturating_mul(2).min(config.max_restart_backoff);
                shared.stats.restarts.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    shared.active.store(false, Ordering::Release);
    tell_all(&listeners, ReceiverEvent::Stopped, &info());
}

#[allow(clippy::too_many_arguments)]
fn generate_blocks<T: Data>(
    rx: Rx<Msg<T>>,
    block_limit: usize,
    ctx: Context,
    clock: Clock,
    level: StorageLevel,
    interval: Duration,
    shared: Arc<RunnerShared>,
    blocks: Arc<Mutex<BTreeMap<Time, Vec<ReceivedBlock>>>>,
    wal: Option<Arc<RunnerWal>>,
    first_seq: u64,
) {
    let mut buf: Pending<T> = Pending::default();
    // The source position after the last record in `buf`, if noted.
    let mut position: Option<String> = None;
    let mut seq = first_seq;
    let mut last = Time::from_ms(0);
    // The latest batch cut: later blocks get later times, so that the batch at `t` holds
    // exactly the blocks with times in `(t - batch, t]` (what the write-ahead log relies on).
    let mut cut_at = Time::from_ms(0);
    let interval_ms = interval.as_millis().max(1) as u64;
    let mut next = clock.now().plus(interval);
    // Returns whether the block (if any) was stored, and logged when the log is on.
    let mut flush = |buf: &mut Pending<T>,
                     position: &mut Option<String>,
                     t: Time,
                     cut: bool|
     -> bool {
        last = if cut {
            last.max(t)
        } else {
            last.max(t).max(cut_at.plus(Duration::from_millis(1)))
        };
        if cut {
            cut_at = cut_at.max(t);
        }
        if buf.is_empty() {
            return true;
        }
        let n = buf.len() as u64;
        let block = buf.take(ctx.block_manager());
        let position = position.take();
        let id = BlockId::Input {
            stream: shared.stream as u32,
            unique: seq,
        };
        seq += 1;
        let mut ok = true;
        let bm = ctx.block_manager();
        // The bytes of the block as the write-ahead log keeps them (no compression).
        let logged = |bytes: &[u8]| match &wal {
            Some(w) => w
                .wal
                .lock()
                .append(last, id_seq(&id), position.as_deref(), bytes),
            None => Ok(()),
        };
        // The user's type serializes itself here: a panic in it loses this block (said so
        // below), not the block generator, which every later block of the receiver needs.
        let made = crate::context::guarded("serializing a received block", || match block {
            Block::Values(values) => {
                let logged = match &wal {
                    Some(_) => {
                        spate_storage::serialize_block(&id, &values, spate_storage::Codec::None)
                            .map_err(|e| crate::Error::State(e.to_string()))
                            .and_then(|bytes| logged(&bytes))
                    }
                    None => Ok(()),
                };
                (logged, bm.put_values(id.clone(), values, level))
            }
            Block::Encoded(records) => {
                match records.finish(&id, spate_storage::Codec::None) {
                    Ok(plain) => {
                        let logged = logged(&plain);
                        let stored =
                            if level.deserialized || bm.codec() != spate_storage::Codec::None {
                                // Kept as values at this level, or compressed: as `put_values`
                                // keeps them.
                                spate_storage::deserialize_block::<T>(&id, &plain)
                                    .and_then(|values| bm.put_values(id.clone(), values, level))
                            } else {
                                bm.put_bytes(id.clone(), plain, level)
                            };
                        (logged, stored)
                    }
                    // Not made: not stored, nor logged when the log is on (without it, no
                    // log error to report).
                    Err(e) => {
                        let logged = match &wal {
                            Some(_) => Err(crate::Error::State(e.to_string())),
                            None => Ok(()),
                        };
                        (logged, Err(e))
                    }
                }
            }
        });
        let (logged, stored) = made.unwrap_or_else(|reason| {
            let logged = match &wal {
                Some(_) => Err(crate::Error::State(reason.clone())),
                None => Ok(()),
            };
            let block = id.clone();
            (
                logged,
                Err(spate_storage::Error::Serialize { block, reason }),
            )
        });
        if let Err(e) = logged {
            tracing::error!(block = %id, records = n, error = %e, "could not append a received block to the write-ahead log: it is used, but a driver restart would lose it");
            shared.stats.errors.fetch_add(1, Ordering::Relaxed);
            ok = false;
        }
        match stored {
            Ok(spate_storage::PutOutcome::NotStored) => {
                tracing::error!(block = %id, records = n, "received block did not fit in memory and its level has no disk: raise the memory budget or use a _AND_DISK level");
                shared.stats.errors.fetch_add(1, Ordering::Relaxed);
                ok = false;
            }
            Ok(_) => {
                // What a record takes in memory, for the receiver's memory back-pressure.
                if let Some(size) = ctx.block_manager().memory_size(&id) {
                    shared.bytes_cut.fetch_add(size, Ordering::Relaxed);
                    shared.records_cut.fetch_add(n, Ordering::Relaxed);
                }
            }
            Err(e) => {
                // The block exists nowhere (its values could not be serialized for its level,
                // say): it is not handed to a batch, whose tasks would fail on it and take the
                // batch's other blocks down with them. Its records are lost, and said so.
                tracing::error!(block = %id, records = n, error = %e, "could not store a received block: its records are lost");
                shared.record_error(format!(
                    "{n} received records could not be stored and are lost: {e}"
                ));
                return false;
            }
        }
        shared.stats.blocks.fetch_add(1, Ordering::Relaxed);
        blocks.lock().entry(last).or_default().push(ReceivedBlock {
            id,
            records: n,
            position,
        });
        ok
    };
    loop {
        match rx.recv_timeout(Duration::from_millis(10)) {
            Ok(Msg::Records(records, p)) => {
                if buf.full_for(&records) {
                    flush(&mut buf, &mut position, clock.now(), false);
                }
                let added = match records {
                    Incoming::Values(values) => buf.add_values(values),
                    Incoming::Encoded(encoded) => {
                        let added = buf.add_encoded(&encoded);
                        shared.copied(encoded.bytes);
                        added
                    }
                };
                if let Err((lost, e)) = added {
                    tracing::error!(stream = shared.stream, records = lost, error = %e, "received records could not be encoded into a block and are lost");
                    shared.record_error(format!(
                        "{lost} received records could not be encoded into a block and are lost: {e:?}"
                    ));
                }
                if p.is_some() {
                    position = p;
                }
                // A full block is cut at once, so a fast receiver never waits a whole interval.
                if buf.len() >= block_limit {
                    flush(&mut buf, &mut position, clock.now(), false);
                }
            }
            Ok(Msg::Flush(ack)) => {
                let ok = flush(&mut buf, &mut position, clock.now(), false);
                let _ = ack.send(ok);
            }
            Ok(Msg::Cut(t, ack)) => {
                flush(&mut buf, &mut position, t, true);
                let _ = ack.send(());
            }
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                flush(&mut buf, &mut position, clock.now(), false);
                break;
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = clock.now();
        if now >= next {
            flush(&mut buf, &mut position, now, false);
            next = Time::from_ms(now.ms() / interval_ms * interval_ms + interval_ms);
        }
    }
}

/// What the block generator holds for the next block: values, or encodings once a receiver
/// stored encoded records (values that come with or after them are encoded too, so records stay
/// in order).
struct Pending<T> {
    values: Vec<T>,
    encoded: EncodedBlock,
    /// The bytes of records recent encoded blocks took: the largest, decaying by a quarter per
    /// block (what the next block's buffer is sized for).
    recent: usize,
}

/// A block's records as they were held.
enum Block<T> {
    Values(Vec<T>),
    Encoded(EncodedBlock),
}

impl<T: Data> Default for Pending<T> {
    fn default() -> Self {
        Pending {
            values: Vec::new(),
            encoded: EncodedBlock::with_capacity(0),
            recent: 0,
        }
    }
}

impl<T: Data> Pending<T> {
    fn len(&self) -> usize {
        self.values.len() + self.encoded.count() as usize
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds values; on failure, how many records were lost and why.
    fn add_values(&mut self, mut values: Vec<T>) -> Result<(), (usize, ReceiverError)> {
        if self.encoded.count() == 0 {
            self.values.append(&mut values);
            return Ok(());
        }
        self.encode(values)
    }

    /// Encodes `values` after the encoded records (all or none).
    fn encode(&mut self, values: Vec<T>) -> Result<(), (usize, ReceiverError)> {
        let mut records = EncodedRecords::<T>::default();
        for v in &values {
            records.push(v).map_err(|e| (values.len(), e))?;
        }
        self.encoded.append(records.count, &records.bytes);
        Ok(())
    }

    /// Adds encoded records, encoding the values held before them first (if those cannot be
    /// encoded, the encoded records are still added).
    fn add_encoded(&mut self, records: &EncodedRecords<T>) -> Result<(), (usize, ReceiverError)> {
        let earlier = if self.values.is_empty() {
            Ok(())
        } else {
            let values = std::mem::take(&mut self.values);
            self.encode(values)
        };
        self.encoded.append(records.count, &records.bytes);
        earlier
    }

    /// Whether `records` should go into a new block: they do not fit in the current one's
    /// buffer, which is not empty (the block is cut rather than grown).
    fn full_for(&self, records: &Incoming<T>) -> bool {
        match records {
            Incoming::Encoded(e) => {
                self.encoded.count() > 0
                    && self.encoded.records_len() + e.encoded_len()
                        > self.encoded.records_capacity()
            }
            Incoming::Values(_) => false,
        }
    }

    /// The held records as a block. An encoded block that fills its buffer hands the buffer
    /// on, and the next block starts in a buffer from the block manager (a removed block's when
    /// one fits) with room for twice what recent blocks took, up to `BLOCK_BYTES`; a small one
    /// (under a quarter of its buffer: cut at a batch boundary, or the rate fell) is copied
    /// out, and the buffer kept for the next.
    fn take(&mut self, bm: &spate_storage::BlockManager) -> Block<T> {
        if self.encoded.count() == 0 {
            let next = Vec::with_capacity(self.values.len());
            return Block::Values(std::mem::replace(&mut self.values, next));
        }
        let len = self.encoded.records_len();
        self.recent = len.max(self.recent - self.recent / 4);
        if len < self.encoded.records_capacity() / 4 {
            return Block::Encoded(self.encoded.take_compact());
        }
        let room = block_room(self.recent);
        let next = EncodedBlock::in_buffer(bm.buffer(EncodedBlock::capacity_for(room)));
        Block::Encoded(std::mem::replace(&mut self.encoded, next))
    }
}

impl<T: Data> ReceiverRunner for Runner<T> {
    fn start(
        &self,
        ctx: &Context,
        clock: Clock,
        listeners: Vec<Arc<dyn StreamingListener>>,
        recovery: &RunnerStart,
    ) -> crate::Result<()> {
        millis(self.config.block_interval, "block interval")?;
        if self.config.block_interval > recovery.batch {
            // Not an error (every record still arrives), but rarely meant: a batch's map tasks
            // are its blocks, and some batches would get none.
            tracing::warn!(
                receiver = %self.name,
                block_interval_ms = self.config.block_interval.as_millis() as u64,
                batch_ms = recovery.batch.as_millis() as u64,
                "the block interval is longer than the batch interval: some batches get no block, and a batch's map tasks are its blocks (its parallelism); make the block interval a fraction of the batch interval (ReceiverConfig::block_interval, --conf spate.streaming.blockInterval)"
            );
        }
        let mut first_seq = 0;
        if let Some((seq, position)) = &recovery.resume {
            first_seq = *seq;
            *self.shared.logged_position.lock() = position.clone();
        }
        if self.config.write_ahead_log {
            let Some(dir) = &recovery.checkpoint_dir else {
                return Err(crate::Error::State(format!(
                    "receiver {:?} has the write-ahead log on, which needs a checkpoint directory: call ssc.checkpoint(dir), or run the #[streaming_job] with --checkpoint DIR (or `checkpoint = \"/path/to/dir\"` in its attribute)",
                    self.name
                )));
            };
            let dir = dir
                .join("receivedData")
                .join(self.shared.stream.to_string());
            let wal = crate::wal::Wal::open(&dir, recovery.recovered.is_some())?;
            let old_max_seq = wal.max_seq();
            first_seq = old_max_seq.map_or(0, |s| s + 1);
            let live_from = recovery
                .recovered
                .map_or(Time::from_ms(0), |t| t.plus(recovery.batch));
            *self.shared.logged_position.lock() = wal.last_position();
            if let Some(max) = old_max_seq {
                tracing::info!(stream = self.shared.stream, blocks = max + 1, dir = %dir.display(), "recovering received blocks from the write-ahead log");
            }
            *self.wal.lock() = Some(Arc::new(RunnerWal {
                wal: Mutex::new(wal),
                old_max_seq,
                live_from,
            }));
        }
        let Some(receiver) = self.receiver.lock().take() else {
            return Err(crate::Error::State(
                "a receiver can only be started once".into(),
            ));
        };
        *self.ctx.lock() = Some(ctx.clone());
        // The bound is in records (`queued`, checked by `store_many`); the channel itself only
        // needs room for a few messages.
        let (tx, rx) = sync_channel::<Msg<T>>(1024);
        // A block is cut early once it holds this many records, and until the first block is
        // stored (what a record takes is unknown) at most this many are queued: half the record
        // bound, and at most a million, so that neither a block nor that first unsized queue can
        // grow to gigabytes under the default bound.
        let limit = (self.config.queue_capacity / 2).clamp(1, MAX_BLOCK_RECORDS);
        *self.tx.lock() = Some(tx.clone());
        let shared = self.shared.clone();
        let (c, bl, lvl, iv) = (
            ctx.clone(),
            self.blocks.clone(),
            self.level,
            self.config.block_interval,
        );
        let gen_clock = clock.clone();
        let wal = self.wal.lock().clone();
        let generator = std::thread::Builder::new()
            .name(format!("spate-block-generator-{}", shared.stream))
            .spawn(move || {
                generate_blocks(rx, limit, c, gen_clock, lvl, iv, shared, bl, wal, first_seq)
            })
            .map_err(|e| {
                crate::Error::State(format!("cannot start a block generator thread: {e}"))
            })?;
        let rctx = ReceiverContext {
            tx,
            stopped: self.stopped.clone(),
            shared: self.shared.clone(),
            max_rate: self.config.max_rate,
            capacity: self.config.queue_capacity.max(1) as u64,
            block_records: limit as u64,
            memory_limit: (self.config.memory_fraction < 1.0).then(|| {
                ctx.block_manager().stats().memory_capacity as f64 * self.config.memory_fraction
            }),
            started: Instant::now(),
            stored: AtomicU64::new(0),
        };
        let (config, name) = (self.config.clone(), self.name.clone());
        let info_shared = self.shared.clone();
        let info_name = self.name.clone();
        let info = move || info_of(&info_shared, &info_name);
        let supervisor = std::thread::Builder::new()
            .name(format!("spate-receiver-{}", self.shared.stream))
            .spawn(move || supervise(receiver, rctx, config, name, listeners, info))
            .map_err(|e| crate::Error::State(format!("cannot start a receiver thread: {e}")))?;
        // The supervisor first, so that it has exited (and stored everything) before the block
        // generator is told to stop.
        self.threads.lock().extend([supervisor, generator]);
        Ok(())
    }

    fn stop(&self) {
        let listeners = self.remote.lock().as_ref().and_then(|r| {
            if let Err(e) = r
                .cluster
                .stop_receiver(r.executor, self.shared.stream as u64)
            {
                tracing::warn!(stream = self.shared.stream, error = %e, "could not stop the receiver on its executor");
            }
            self.shared
                .active
                .swap(false, Ordering::AcqRel)
                .then(|| r.listeners.clone())
        });
        if let Some(listeners) = listeners {
            tell_all(&listeners, ReceiverEvent::Stopped, &self.info());
        }
        self.stopped.store(true, Ordering::Release);
        let threads: Vec<JoinHandle<()>> = self.threads.lock().drain(..).collect();
        let mut threads = threads.into_iter();
        if let Some(supervisor) = threads.next() {
            let _ = supervisor.join();
        }
        if let Some(tx) = self.tx.lock().take() {
            let _ = tx.send(Msg::Stop);
        }
        for t in threads {
            let _ = t.join();
        }
    }

    fn info(&self) -> ReceiverInfo {
        info_of(&self.shared, &self.name)
    }

    fn has_pending_blocks(&self) -> bool {
        // A remote receiver's pending blocks are on its executor: one more cut takes them.
        self.remote.lock().is_some() || !self.blocks.lock().is_empty()
    }

    fn stream(&self) -> usize {
        self.shared.stream
    }

    fn start_remote(
        &self,
        ctx: &Context,
        cluster: &spate_core::cluster::Cluster,
        graph: u64,
        listeners: Vec<Arc<dyn StreamingListener>>,
    ) -> bool {
        if self.config.write_ahead_log {
            return false; // the log is the driver's
        }
        let stream = self.shared.stream as u64;
        let mut except = None;
        while let Some(e) = cluster.pick_executor(graph, except) {
            match cluster.start_receiver(e, stream, 0, None) {
                Ok(()) => {
                    tracing::info!(stream, executor = e, pid = ?cluster.executor_pid(e), "receiver runs on executor");
                    *self.remote.lock() = Some(Remote {
                        cluster: cluster.clone(),
                        graph,
                        executor: e,
                        next_seq: 0,
                        position: None,
                        failed_cuts: 0,
                        counted: BTreeMap::new(),
                        listeners: listeners.clone(),
                    });
                    self.shared.active.store(true, Ordering::Release);
                    *self.ctx.lock() = Some(ctx.clone());
                    tell_all(&listeners, ReceiverEvent::Started, &self.info());
                    return true;
                }
                Err(err) => {
                    tracing::warn!(stream, executor = e, error = %err, "could not start the receiver on an executor");
                    except = Some(e);
                }
            }
        }
        false
    }

    fn mark_executor(&self) {
        self.on_executor.store(true, Ordering::Release);
    }

    fn batch_completed(&self, t: Time) {
        self.shared.completed_ms.fetch_max(t.ms(), Ordering::AcqRel);
        let done: u64 = {
            let mut in_flight = self.shared.in_flight.lock();
            let later = in_flight.split_off(&Time::from_ms(t.ms() + 1));
            std::mem::replace(&mut *in_flight, later).values().sum()
        };
        if done > 0 {
            self.shared
                .in_flight_records
                .fetch_sub(done, Ordering::AcqRel);
            let _g = self.shared.waiters.lock();
            self.shared.drained.notify_all();
        }
    }

    fn cut_here(&self, t: Time, taken_below: u64) -> spate_core::cluster::Cut {
        // Held from the cut to the answer: two cuts running at once (one the driver stopped
        // waiting for, answered late) hand their blocks over in order, and none is left out of
        // the answer of the one the driver reads.
        let mut unconfirmed = self.unconfirmed.lock();
        self.cut(t);
        let taken = self.take_blocks(t);
        // The driver's batch of `t` holds them until it completes (it says so with a later cut).
        self.hold_in_flight(t, &taken);
        unconfirmed.retain(|b| b.seq >= taken_below);
        let again = unconfirmed.len();
        if again > 0 {
            tracing::info!(
                stream = self.shared.stream,
                blocks = again,
                batch = %t,
                "blocks an earlier cut took are handed over again: the driver did not get them"
            );
        }
        unconfirmed.extend(taken.into_iter().map(|b| spate_core::cluster::CutBlock {
            seq: id_seq(&b.id),
            records: b.records,
            position: b.position,
        }));
        (unconfirmed.clone(), counts_of(&self.shared))
    }
}

/// What the receiver counted in this process, for the driver (sent with each cut).
fn counts_of(shared: &RunnerShared) -> spate_core::cluster::ReceiverCounts {
    let stats = &shared.stats;
    spate_core::cluster::ReceiverCounts {
        skipped: stats.skipped.load(Ordering::Relaxed),
        errors: stats.errors.load(Ordering::Relaxed),
        restarts: stats.restarts.load(Ordering::Relaxed),
        max_queued: stats.max_queued.load(Ordering::Relaxed),
        memory_waits: stats.memory_waits.load(Ordering::Relaxed),
        last_error: shared.last_error.lock().clone(),
    }
}

/// Adds to the driver's counts of a receiver what `now` (sent by the executor running it) has
/// that `before` (the same executor's last report) did not.
fn add_remote_counts(
    shared: &RunnerShared,
    before: &spate_core::cluster::ReceiverCounts,
    now: &spate_core::cluster::ReceiverCounts,
) {
    let stats = &shared.stats;
    let new = |a: u64, b: u64| b.saturating_sub(a);
    stats
        .skipped
        .fetch_add(new(before.skipped, now.skipped), Ordering::Relaxed);
    stats
        .errors
        .fetch_add(new(before.errors, now.errors), Ordering::Relaxed);
    stats
        .restarts
        .fetch_add(new(before.restarts, now.restarts), Ordering::Relaxed);
    stats.memory_waits.fetch_add(
        new(before.memory_waits, now.memory_waits),
        Ordering::Relaxed,
    );
    stats
        .max_queued
        .fetch_max(now.max_queued, Ordering::Relaxed);
    if now.errors > before.errors
        && let Some(e) = &now.last_error
    {
        *shared.last_error.lock() = Some(e.clone());
    }
}

fn id_seq(id: &BlockId) -> u64 {
    match id {
        BlockId::Input { unique, .. } => *unique,
        _ => 0,
    }
}

fn info_of(shared: &RunnerShared, name: &str) -> ReceiverInfo {
    ReceiverInfo {
        stream: shared.stream,
        name: name.to_string(),
        active: shared.active.load(Ordering::Acquire),
        records: shared.stats.records.load(Ordering::Relaxed),
        skipped: shared.stats.skipped.load(Ordering::Relaxed),
        restarts: shared.stats.restarts.load(Ordering::Relaxed),
        last_error: shared.last_error.lock().clone(),
        max_queued: shared.stats.max_queued.load(Ordering::Relaxed),
        memory_waits: shared.stats.memory_waits.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receiver's context whose block generator is the test: it holds the other end of the
    /// channel, and no bound but the block generator's backlog applies.
    fn context() -> (ReceiverContext<String>, Rx<Msg<String>>) {
        let (tx, rx) = sync_channel(1024);
        let ctx = ReceiverContext {
            tx,
            stopped: Arc::new(AtomicBool::new(false)),
            shared: Arc::new(RunnerShared::new(0)),
            max_rate: None,
            capacity: u64::MAX,
            block_records: u64::MAX,
            memory_limit: None,
            started: Instant::now(),
            stored: AtomicU64::new(0),
        };
        (ctx, rx)
    }

    /// The encoded records a message holds.
    fn encoded(msg: Msg<String>) -> EncodedRecords<String> {
        match msg {
            Msg::Records(Incoming::Encoded(e), _) => e,
            _ => panic!("expected encoded records"),
        }
    }

    #[test]
    fn a_remote_receivers_counts_add_what_each_cut_brings_per_executor() {
        use spate_core::cluster::ReceiverCounts;
        let shared = RunnerShared::new(0);
        let counts = |skipped, errors, max_queued, last: Option<&str>| ReceiverCounts {
            skipped,
            errors,
            restarts: errors,
            max_queued,
            memory_waits: 0,
            last_error: last.map(String::from),
        };
        // Executor 1: two cuts; then executor 2 from zero; then back to executor 1, whose
        // counts go on from its last report.
        let (zero, first) = (ReceiverCounts::default(), counts(3, 0, 50, None));
        add_remote_counts(&shared, &zero, &first);
        let second = counts(5, 1, 20, Some("connection reset"));
        add_remote_counts(&shared, &first, &second);
        add_remote_counts(&shared, &zero, &counts(1, 0, 70, Some("old news")));
        add_remote_counts(
            &shared,
            &second,
            &counts(6, 1, 20, Some("connection reset")),
        );
        let info = info_of(&shared, "r");
        assert_eq!(
            (info.skipped, info.restarts, info.max_queued),
            (5 + 1 + 1, 1, 70)
        );
        assert_eq!(shared.stats.errors.load(Ordering::Relaxed), 1);
        // The last error is taken only from a report with a new error.
        assert_eq!(info.last_error.as_deref(), Some("connection reset"));
    }

    #[test]
    fn a_receiver_waits_while_its_block_generator_is_a_few_mib_behind() {
        let (ctx, rx) = context();
        let shared = ctx.shared.clone();
        // A line whose encoding takes just under 1 MiB: four fit in `HANDED_BYTES`, five do not.
        let line = "x".repeat((1 << 20) - 16);
        let storer = std::thread::spawn(move || {
            for _ in 0..8 {
                let mut records = ctx.encoded_records(1 << 20);
                records.push_str(&line);
                ctx.store_encoded(records);
            }
        });
        let wait = Duration::from_secs(30);
        let mut handed: Vec<EncodedRecords<String>> = (0..4)
            .map(|_| encoded(rx.recv_timeout(wait).expect("the first four go through")))
            .collect();
        // Nothing copied: the fifth waits (were it not held, it would follow at once).
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        assert!(!storer.is_finished());
        assert!(shared.handed_bytes.load(Ordering::SeqCst) <= HANDED_BYTES);
        // Each one copied lets one more through, until all eight have come.
        for _ in 4..8 {
            shared.copied(handed.remove(0).bytes);
            handed.push(encoded(
                rx.recv_timeout(wait).expect("one more goes through"),
            ));
            assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
        }
        storer.join().unwrap();
        for e in handed {
            assert_eq!(e.len(), 1);
            shared.copied(e.bytes);
        }
        assert_eq!(shared.handed_bytes.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn records_larger_than_the_backlog_bound_go_through_when_nothing_is_ahead() {
        let (ctx, rx) = context();
        let big = 3 * HANDED_BYTES as usize / 2;
        let mut records = ctx.encoded_records(big);
        records.push_str(&"y".repeat(big));
        ctx.store_encoded(records);
        let first = encoded(rx.try_recv().expect("nothing was ahead of it"));
        assert!(first.encoded_len() > HANDED_BYTES as usize);
        ctx.shared.copied(first.bytes);
        let mut records = ctx.encoded_records(big);
        records.push_str("z");
        ctx.store_encoded(records);
        assert_eq!(encoded(rx.try_recv().unwrap()).len(), 1);
    }

    #[test]
    fn blocks_are_built_in_a_few_sizes() {
        assert_eq!(block_room(0), 64 << 10);
        assert_eq!(block_room(20 << 10), 64 << 10);
        assert_eq!(block_room(40 << 10), 128 << 10);
        // 6.5 and 7.9 MiB blocks, twice their size: the largest size, which fits an 8 MiB block.
        assert_eq!(block_room(3_400_000), BLOCK_BYTES);
        assert_eq!(block_room(4 << 20), BLOCK_BYTES);
        assert_eq!(block_room((3 << 20) / 2), 4 << 20);
        assert_eq!(block_room(100 << 20), BLOCK_BYTES);
        assert_eq!(block_room(usize::MAX), BLOCK_BYTES);
    }
}
