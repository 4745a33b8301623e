//! The direct Kafka stream: no receiver; each batch is a set of offset ranges, one per Kafka
//! partition, read by the batch's own tasks (Spark 1.3's `DirectKafkaInputDStream`).
//!
//! At batch time `t` the *planner* (on the job generator thread) asks the brokers for the latest
//! offset of every partition and gives the batch the range `[next, min(latest, next + max))`,
//! where `next` is where the previous batch ended; the RDD has one partition per range, whose
//! task fetches exactly those offsets. Ranges are a pure function of the plan, so a partition
//! recomputed from lineage reads the same records.
//!
//! Failures, and why nothing is lost or read twice:
//! - brokers unreachable while planning: the planner retries (bounded by
//!   [`KafkaConnection::attempts`]), then the batch fails with that error and `next` does not
//!   move, so the next batch starts where the last planned one ended;
//! - brokers unreachable while a task reads its range (after the same bounded retries): the task
//!   and its batch fail; when the batch completes, every range whose read failed and that no
//!   other job of the batch read is handed back to the planner, and the next planned batch reads
//!   it again (when no later batch was planned meanwhile, by moving `next` back, so the order is
//!   kept);
//! - records the broker no longer has (retention deleted the start of a range, or all of it):
//!   the read takes what the broker still has of the range, from its earliest offset on, and
//!   the deleted offsets, lost, are logged and counted ([`DirectKafkaStats::records_lost`]);
//!   Kafka then answers "offset out of range", tansu answers with the records after them, and
//!   both are read the same way;
//! - a broker that does not know the topic or partition (often passing, while a topic is
//!   created or a partition moves): retried like an unreachable broker, a bounded number of
//!   times, then the batch fails with an error that says to create the topic, and the range is
//!   read again by a later batch;
//! - the driver dies: under a checkpointing context every metadata checkpoint holds the planner's
//!   position (where each partition goes on, the ranges to read again, and the ranges of the
//!   batches planned after the checkpointed one), so a recovered driver re-runs those batches on
//!   the same ranges and goes on from there: no write-ahead log is needed.

use super::client::{Conn, KafkaError, read_range, start_offset};
use super::{KafkaConnection, KafkaRecord, StartOffsets, TopicPartition, parse_brokers};
use parking_lot::Mutex;
use rskafka::client::partition::OffsetAt;
use serde::{Deserialize, Serialize};
use spate_streaming::{
    BatchInfo, DStream, InputCounter, InputCounters, StreamingContext, StreamingListener, Time,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};

/// How many batches' offset ranges a direct stream remembers for
/// [`DirectKafkaStream::offset_ranges`].
const KEEP_BATCHES: usize = 1000;

/// Settings of a direct Kafka stream.
#[derive(Clone, Debug)]
pub struct DirectKafkaConfig {
    /// Bootstrap brokers, `host:port` each.
    pub brokers: Vec<String>,
    /// Topics whose every partition is read.
    pub topics: Vec<String>,
    /// Where each partition starts ([`StartOffsets::Latest`] by default: the latest offsets
    /// when the stream is created, or at its first batch if the brokers cannot be reached then).
    pub start: StartOffsets,
    /// The most records one batch takes from one partition (`None` or `Some(0)`: unlimited,
    /// the default); the rest waits for the next batches. Bounds a batch after downtime.
    pub max_records_per_partition: Option<u64>,
    /// Timeouts, retries and fetch sizes.
    pub connection: KafkaConnection,
}

impl DirectKafkaConfig {
    /// Default settings for `topics` on `brokers` (`host:port,host:port`).
    pub fn new(brokers: &str, topics: &[&str]) -> DirectKafkaConfig {
        DirectKafkaConfig {
            brokers: parse_brokers(brokers),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            start: StartOffsets::Latest,
            max_records_per_partition: None,
            connection: KafkaConnection::default(),
        }
    }
}

/// The records of one partition that one batch reads: offsets `from` (inclusive) to `until`
/// (exclusive), as Spark's `OffsetRange`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OffsetRange {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The first offset read.
    pub from: i64,
    /// One past the last offset read: where the next range of this partition starts.
    pub until: i64,
}

impl OffsetRange {
    /// The number of offsets in the range (records, unless some offsets hold transaction
    /// markers or were compacted away).
    pub fn count(&self) -> u64 {
        u64::try_from(self.until - self.from).unwrap_or(0)
    }

    /// The range's topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(&self.topic, self.partition)
    }

    fn new(tp: &TopicPartition, from: i64, until: i64) -> OffsetRange {
        OffsetRange {
            topic: tp.topic.clone(),
            partition: tp.partition,
            from,
            until,
        }
    }
}

/// What happened to the read of one range of a batch.
const NOT_READ: u8 = 0;
const READ: u8 = 1;
const FAILED: u8 = 2;

/// The offset bookkeeping of a direct stream; pure, so its rules are tested without a broker.
#[derive(Default)]
struct Planner {
    /// Where the next range of each partition starts; `None` until the partitions and their
    /// start offsets are known.
    next: Option<BTreeMap<TopicPartition, i64>>,
    /// Ranges whose read failed after a later range of the same partition was planned: read
    /// again, before new records, by the next batch.
    retry: BTreeMap<TopicPartition, Vec<(i64, i64)>>,
    /// The ranges of recent batches and what happened to their reads.
    batches: BTreeMap<Time, (Arc<Vec<OffsetRange>>, Arc<Vec<AtomicU8>>)>,
    /// The batch whose planning failed, with the error (its outputs get the same error at once).
    failed: Option<(Time, String)>,
}

/// A planner's position as a metadata checkpoint holds it (JSON maps need string keys, hence
/// the lists).
#[derive(Serialize, Deserialize)]
struct SavedPlan {
    next: Option<Vec<(TopicPartition, i64)>>,
    retry: Vec<(TopicPartition, Vec<(i64, i64)>)>,
    /// The ranges of the remembered batches and of those planned after the checkpointed one, by
    /// time in ms.
    pending: Vec<(u64, Vec<OffsetRange>)>,
}

impl Planner {
    /// The position after the batch of `completed` finished, with the ranges of every batch
    /// after `from`. Ranges of batches up to `completed` whose read failed are counted as to be
    /// read again (the checkpoint is written before the batch's completion hands them back).
    fn save(&self, completed: Time, from: Time) -> SavedPlan {
        let mut retry = self.retry.clone();
        for (ranges, status) in self.batches.range(..=completed).map(|(_, b)| b) {
            for (r, st) in ranges.iter().zip(status.iter()) {
                if st.load(Ordering::Acquire) == FAILED {
                    let list = retry.entry(r.topic_partition()).or_default();
                    list.push((r.from, r.until));
                    list.sort_unstable();
                    list.dedup();
                }
            }
        }
        SavedPlan {
            next: self.next.as_ref().map(|n| n.clone().into_iter().collect()),
            retry: retry.into_iter().collect(),
            pending: self
                .batches
                .range(Time::from_ms(from.ms() + 1)..)
                .map(|(t, (r, _))| (t.ms(), r.as_ref().clone()))
                .collect(),
        }
    }

    /// Takes the position back from a checkpoint: the pending batches will be re-run on their
    /// ranges.
    fn restore(&mut self, saved: SavedPlan) {
        self.next = saved.next.map(|n| n.into_iter().collect());
        self.retry = saved.retry.into_iter().collect();
        self.failed = None;
        self.batches = saved
            .pending
            .into_iter()
            .map(|(t, ranges)| {
                let status = (0..ranges.len()).map(|_| AtomicU8::new(NOT_READ)).collect();
                (Time::from_ms(t), (Arc::new(ranges), Arc::new(status)))
            })
            .collect();
    }

    /// The ranges of the batch at `time`, given every partition's latest offset, and moves
    /// `next` past them.
    fn plan(
        &mut self,
        time: Time,
        latest: &BTreeMap<TopicPartition, i64>,
        max: Option<u64>,
    ) -> Vec<OffsetRange> {
        let Some(next) = self.next.as_mut() else {
            return Vec::new();
        };
        let mut ranges = Vec::new();
        for (tp, from) in next.iter_mut() {
            for (a, b) in self.retry.remove(tp).unwrap_or_default() {
                ranges.push(OffsetRange::new(tp, a, b));
            }
            let end = latest.get(tp).copied().unwrap_or(*from);
            if end < *from {
                tracing::warn!(%tp, next = *from, latest = end, "the partition now ends before where the stream is: was the topic deleted and created again? Waiting for offset {from}");
            }
            let cap = max
                .filter(|m| *m > 0)
                .map_or(i64::MAX, |m| i64::try_from(m).unwrap_or(i64::MAX));
            let until = end.max(*from).min(from.saturating_add(cap));
            ranges.push(OffsetRange::new(tp, *from, until));
            *from = until;
        }
        let status = (0..ranges.len()).map(|_| AtomicU8::new(NOT_READ)).collect();
        self.batches
            .insert(time, (Arc::new(ranges.clone()), Arc::new(status)));
        while self.batches.len() > KEEP_BATCHES {
            self.batches.pop_first();
        }
        ranges
    }

    /// Called once the batch at `time` is done: every range whose read failed and that no job
    /// of the batch read is planned again.
    fn batch_completed(&mut self, time: Time) {
        let Some((ranges, status)) = self.batches.get(&time).cloned() else {
            return;
        };
        let Some(next) = self.next.as_mut() else {
            return;
        };
        // Latest ranges first, so that a partition's failed ranges can move `next` back one
        // after the other.
        for (r, s) in ranges.iter().zip(status.iter()).rev() {
            if s.swap(READ, Ordering::AcqRel) != FAILED {
                continue;
            }
            let tp = r.topic_partition();
            tracing::warn!(%tp, from = r.from, until = r.until, batch = %time, "reading a range failed; the next batch reads it again");
            match next.get_mut(&tp) {
                Some(n) if *n == r.until => *n = r.from,
                _ => {
                    let list = self.retry.entry(tp).or_default();
                    list.push((r.from, r.until));
                    list.sort_unstable();
                }
            }
        }
    }

    /// The offsets the batch at `time` was planned to read, if it was planned (or restored).
    fn records(&self, time: Time) -> Option<u64> {
        let (ranges, _) = self.batches.get(&time)?;
        Some(ranges.iter().map(OffsetRange::count).sum())
    }

    fn ranges(&self, time: Time) -> Vec<OffsetRange> {
        self.batches
            .get(&time)
            .map(|(r, _)| r.as_ref().clone())
            .unwrap_or_default()
    }
}

struct Shared {
    conn: Result<Conn, KafkaError>,
    config: DirectKafkaConfig,
    planner: Mutex<Planner>,
    /// Planned offsets the broker had deleted before they were read; reported to the context
    /// (`spate_input_records_lost_total` on `/metrics`), and read by [`DirectKafkaStream::stats`].
    records_lost: InputCounter,
}

/// What a direct Kafka stream lost so far, in this process (see [`DirectKafkaStream::stats`]).
///
/// The monitoring server shows the same count (on its page, in `/api/inputs`, and in `/metrics`
/// as `spate_input_records_lost_total`, labelled with the stream's id): the stream reports it
/// through [`InputCounters`](spate_streaming::InputCounters). On a cluster, ranges read by
/// tasks on executors are counted there and sent to the driver with their heartbeats; the
/// server shows the sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectKafkaStats {
    /// Offsets of planned ranges that the broker had deleted (retention) before a task read
    /// them, each span logged with its partition. Counted once per range, by the process that
    /// reads it (on an executor, in that executor's stream). Keep records longer on the broker
    /// (`retention.ms`), or make batches read faster, if it grows.
    pub records_lost: u64,
}

impl Shared {
    fn conn(&self) -> Result<&Conn, KafkaError> {
        self.conn.as_ref().map_err(Clone::clone)
    }

    /// The partitions to read and where each starts; with `retry`, bounded retries.
    fn start_offsets(&self, retry: bool) -> Result<BTreeMap<TopicPartition, i64>, KafkaError> {
        let conn = self.conn()?;
        let limit = conn.attempt_limit().saturating_mul(4);
        let attempt = || {
            conn.block_on(limit, "finding the start offsets", async {
                let mut parts = conn.partitions_of(&self.config.topics).await?;
                if let StartOffsets::Explicit(m) = &self.config.start {
                    parts.extend(m.keys().cloned());
                    parts.sort();
                    parts.dedup();
                }
                let mut out = BTreeMap::new();
                for tp in parts {
                    let offset = start_offset(conn, &tp, &self.config.start).await?;
                    out.insert(tp, offset);
                }
                Ok(out)
            })
        };
        if retry {
            conn.with_retry("finding the start offsets", attempt)
        } else {
            attempt()
        }
    }

    fn latest_offsets(
        &self,
        parts: Vec<TopicPartition>,
    ) -> Result<BTreeMap<TopicPartition, i64>, KafkaError> {
        let conn = self.conn()?;
        conn.with_retry("asking the latest offsets", || {
            conn.block_on(conn.attempt_limit(), "asking the latest offsets", async {
                let asks = parts.iter().map(|tp| conn.offset(tp, OffsetAt::Latest));
                let answers = futures::future::join_all(asks).await;
                parts
                    .iter()
                    .cloned()
                    .zip(answers)
                    .map(|(tp, a)| a.map(|o| (tp, o)))
                    .collect()
            })
        })
    }

    /// Plans the batch at `time`.
    fn plan(&self, time: Time) -> Result<Arc<Vec<OffsetRange>>, KafkaError> {
        {
            let p = self.planner.lock();
            if let Some((t, e)) = &p.failed
                && *t == time
            {
                return Err(KafkaError::Unreachable(e.clone()));
            }
            if let Some((r, _)) = p.batches.get(&time) {
                return Ok(r.clone());
            }
        }
        let result = self.plan_now(time);
        if let Err(e) = &result {
            self.planner.lock().failed = Some((time, e.to_string()));
        }
        result
    }

    fn plan_now(&self, time: Time) -> Result<Arc<Vec<OffsetRange>>, KafkaError> {
        if self.planner.lock().next.is_none() {
            let start = self.start_offsets(true)?;
            let mut p = self.planner.lock();
            if p.next.is_none() {
                tracing::info!(offsets = ?start, "direct Kafka stream starts");
                p.next = Some(start);
            }
        }
        let parts: Vec<TopicPartition> = self
            .planner
            .lock()
            .next
            .as_ref()
            .map(|n| n.keys().cloned().collect())
            .unwrap_or_default();
        let latest = self.latest_offsets(parts)?;
        let mut p = self.planner.lock();
        p.plan(time, &latest, self.config.max_records_per_partition);
        Ok(p.batches
            .get(&time)
            .map(|(r, _)| r.clone())
            .unwrap_or_default())
    }

    fn status(&self, time: Time) -> Option<Arc<Vec<AtomicU8>>> {
        self.planner
            .lock()
            .batches
            .get(&time)
            .map(|(_, s)| s.clone())
    }

    /// The task of one RDD partition: reads its range.
    fn read(&self, range: &OffsetRange, status: &AtomicU8) -> spate_core::Result<Vec<KafkaRecord>> {
        if range.from >= range.until {
            status.store(READ, Ordering::Release);
            return Ok(Vec::new());
        }
        let tp = range.topic_partition();
        let result = self
            .conn()
            .and_then(|conn| read_range(conn, &tp, range.from, range.until));
        match result {
            Ok(read) => {
                // Counted by the first read of the range only (another output, or a window,
                // may read it again).
                if status.swap(READ, Ordering::AcqRel) != READ {
                    for (from, until) in &read.deleted {
                        let n = u64::try_from(until - from).unwrap_or(0);
                        let total = self.records_lost.add(n);
                        tracing::warn!(
                            %tp,
                            from,
                            until,
                            lost = n,
                            total,
                            "offsets [{from}, {until}) of {tp} were deleted by the broker (retention) before the stream read them: {n} records lost, the rest of the range is read. Keep records longer (retention.ms) or read faster"
                        );
                    }
                }
                Ok(read.records)
            }
            Err(e) if e.is_retryable() => {
                let _ =
                    status.compare_exchange(NOT_READ, FAILED, Ordering::AcqRel, Ordering::Acquire);
                Err(spate_core::Error::Source(format!(
                    "{e}; offsets [{}, {}) of {tp} will be read again by the next batch",
                    range.from, range.until
                )))
            }
            Err(e) => Err(spate_core::Error::Source(format!(
                "{e}; offsets [{}, {}) of {tp} are skipped",
                range.from, range.until
            ))),
        }
    }
}

/// Hands failed reads back to the planner once their batch is done.
struct Completion(Weak<Shared>);

impl StreamingListener for Completion {
    fn on_batch_completed(&self, info: &BatchInfo) {
        if let Some(shared) = self.0.upgrade() {
            shared.planner.lock().batch_completed(info.batch_time);
        }
    }
}

/// A direct Kafka stream: a [`DStream`] of [`KafkaRecord`]s (it dereferences to one) that also
/// tells which offsets each batch holds.
///
/// Every record of the topics lands in exactly one batch, in offset order per partition (a
/// range that had to be read again comes in a later batch). For exactly-once output, store each
/// batch's results together with its [`offset_ranges`](Self::offset_ranges) in one transaction,
/// and restart from the stored offsets with [`StartOffsets::Explicit`].
#[derive(Clone)]
pub struct DirectKafkaStream {
    stream: DStream<KafkaRecord>,
    shared: Arc<Shared>,
}

impl DirectKafkaStream {
    #[track_caller]
    pub(crate) fn new(ssc: &StreamingContext, config: DirectKafkaConfig) -> DirectKafkaStream {
        let conn = Conn::new(config.brokers.clone(), config.connection.clone());
        let eager = matches!(config.start, StartOffsets::Latest) && conn.is_ok();
        let counters = InputCounters::new();
        let shared = Arc::new(Shared {
            conn,
            config,
            planner: Mutex::new(Planner::default()),
            records_lost: counters.counter(
                "records_lost",
                "Records an input stream lost before it read them (logged; a direct Kafka stream's offsets that retention deleted first).",
            ),
        });
        if eager {
            // "Latest" means the records produced from now on: resolve it now if the brokers
            // answer at the first attempt; otherwise the first batch does.
            match shared.start_offsets(false) {
                Ok(start) => shared.planner.lock().next = Some(start),
                Err(e) => {
                    tracing::warn!(error = %e, "could not find the latest Kafka offsets now; the first batch will")
                }
            }
        }
        ssc.add_streaming_listener(Arc::new(Completion(Arc::downgrade(&shared))));
        let s = shared.clone();
        let (saver, restorer) = (shared.clone(), shared.clone());
        let compute = move |ctx: &spate_streaming::Context, time: Time| {
            let ranges = s.plan(time).map_err(|e| {
                spate_streaming::Error::Core(spate_core::Error::Source(format!(
                    "planning the Kafka batch of {time}: {e}; the next batch starts where the \
                     last one ended"
                )))
            })?;
            let status = s.status(time).unwrap_or_default();
            let reader = s.clone();
            let n = ranges.len();
            Ok(Some(ctx.from_partitions(n, move |i| {
                match (ranges.get(i), status.get(i)) {
                    (Some(r), Some(st)) => reader.read(r, st),
                    _ => Ok(Vec::new()),
                }
            })))
        };
        let stream = ssc.custom_input_stream_with_state(
            "direct_kafka_stream",
            compute,
            move |completed, from| {
                let saved = saver.planner.lock().save(completed, from);
                serde_json::to_string(&saved).unwrap_or_default()
            },
            move |text| {
                let saved: SavedPlan = serde_json::from_str(text).map_err(|e| {
                    format!("the saved Kafka offsets are not readable: {e}")
                })?;
                restorer.planner.lock().restore(saved);
                tracing::debug!(offsets = ?restorer.planner.lock().next, "direct Kafka stream position restored");
                Ok(())
            },
        );
        ssc.report_input_counters(&stream, &counters);
        // A batch's records are its ranges' offsets, known once the batch is planned (as in
        // Spark, which reports until - from). Offsets retention deletes before the tasks read
        // them are not subtracted: that loss shows only when a task reads the range, after the
        // batch was submitted with its count, and it is counted apart (`records_lost`). The
        // count is that of the ranges planned, so the chart agrees with `offset_ranges`. A batch
        // replayed after a driver restart has its ranges back from the checkpoint, so it is
        // counted again; a batch whose planning failed has no count.
        let counted = Arc::downgrade(&shared);
        ssc.report_input_records(&stream, move |time| {
            counted.upgrade()?.planner.lock().records(time)
        });
        DirectKafkaStream { stream, shared }
    }

    /// The stream of records.
    pub fn stream(&self) -> &DStream<KafkaRecord> {
        &self.stream
    }

    /// The offset ranges of the batch at `time` (one per partition, plus any range read again),
    /// empty if the stream has no batch at that time or forgot it (it keeps the last 1000).
    /// Call it from `foreach_rdd` with the batch's time.
    pub fn offset_ranges(&self, time: Time) -> Vec<OffsetRange> {
        self.shared.planner.lock().ranges(time)
    }

    /// What the stream lost so far: offsets the broker deleted before they were read.
    pub fn stats(&self) -> DirectKafkaStats {
        DirectKafkaStats {
            records_lost: self.shared.records_lost.get(),
        }
    }

    /// Where the next batch starts in each partition (empty until the start offsets are
    /// known).
    pub fn next_offsets(&self) -> BTreeMap<TopicPartition, i64> {
        self.shared.planner.lock().next.clone().unwrap_or_default()
    }
}

impl std::ops::Deref for DirectKafkaStream {
    type Target = DStream<KafkaRecord>;
    fn deref(&self) -> &DStream<KafkaRecord> {
        &self.stream
    }
}

impl std::fmt::Debug for DirectKafkaStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectKafkaStream")
            .field("stream", &self.stream)
            .field("topics", &self.shared.config.topics)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    fn planner(next: &[(i32, i64)]) -> Planner {
        Planner {
            next: Some(next.iter().map(|(p, o)| (tp(*p), *o)).collect()),
            ..Planner::default()
        }
    }

    fn latest(l: &[(i32, i64)]) -> BTreeMap<TopicPartition, i64> {
        l.iter().map(|(p, o)| (tp(*p), *o)).collect()
    }

    fn spans(r: &[OffsetRange]) -> Vec<(i32, i64, i64)> {
        r.iter().map(|r| (r.partition, r.from, r.until)).collect()
    }

    fn fail(p: &Planner, time: u64, index: usize) {
        p.batches[&Time::from_ms(time)].1[index].store(FAILED, Ordering::Release);
    }

    #[test]
    fn a_restored_planner_replays_pending_batches_and_goes_on_where_the_old_one_was() {
        let mut p = planner(&[(0, 0), (1, 0)]);
        p.plan(Time::from_ms(1000), &latest(&[(0, 10), (1, 4)]), Some(5));
        p.plan(Time::from_ms(2000), &latest(&[(0, 10), (1, 4)]), Some(5));
        p.plan(Time::from_ms(3000), &latest(&[(0, 12), (1, 4)]), Some(5));
        // Batch 1000 completed with a failed read of partition 1; 2000 and 3000 are pending.
        fail(&p, 1000, 1);
        let text =
            serde_json::to_string(&p.save(Time::from_ms(1000), Time::from_ms(1000))).unwrap();
        let mut q = Planner::default();
        q.restore(serde_json::from_str(&text).unwrap());
        for t in [2000, 3000] {
            assert_eq!(
                spans(&q.ranges(Time::from_ms(t))),
                spans(&p.ranges(Time::from_ms(t))),
                "batch {t} is re-run on its ranges"
            );
        }
        assert!(
            q.ranges(Time::from_ms(1000)).is_empty(),
            "completed batches are not kept"
        );
        // The replayed batches report their records again, from the restored ranges.
        assert_eq!(q.records(Time::from_ms(2000)), Some(5));
        assert_eq!(q.records(Time::from_ms(3000)), Some(2));
        assert_eq!(q.records(Time::from_ms(1000)), None);
        // The next new batch reads the failed range again, then goes on after batch 3000.
        let r = q.plan(Time::from_ms(4000), &latest(&[(0, 20), (1, 6)]), Some(5));
        assert_eq!(spans(&r), vec![(0, 12, 17), (1, 0, 4), (1, 4, 6)]);
    }

    #[test]
    fn ranges_are_contiguous_and_capped() {
        let mut p = planner(&[(0, 0), (1, 5)]);
        let r = p.plan(Time::from_ms(1000), &latest(&[(0, 10), (1, 5)]), Some(4));
        assert_eq!(spans(&r), vec![(0, 0, 4), (1, 5, 5)]);
        let r = p.plan(Time::from_ms(2000), &latest(&[(0, 10), (1, 9)]), Some(4));
        assert_eq!(spans(&r), vec![(0, 4, 8), (1, 5, 9)]);
        let r = p.plan(Time::from_ms(3000), &latest(&[(0, 10), (1, 9)]), None);
        assert_eq!(spans(&r), vec![(0, 8, 10), (1, 9, 9)]);
        assert_eq!(
            spans(&p.ranges(Time::from_ms(2000))),
            vec![(0, 4, 8), (1, 5, 9)]
        );
        // A partition whose end moved back (topic recreated) gets empty ranges, not negative.
        let r = p.plan(Time::from_ms(4000), &latest(&[(0, 3), (1, 9)]), None);
        assert_eq!(spans(&r), vec![(0, 10, 10), (1, 9, 9)]);
    }

    #[test]
    fn a_failed_read_is_planned_again_in_order_when_nothing_came_after_it() {
        let mut p = planner(&[(0, 0), (1, 0)]);
        p.plan(Time::from_ms(1000), &latest(&[(0, 10), (1, 10)]), None);
        fail(&p, 1000, 1);
        p.batch_completed(Time::from_ms(1000));
        let r = p.plan(Time::from_ms(2000), &latest(&[(0, 12), (1, 12)]), None);
        assert_eq!(spans(&r), vec![(0, 10, 12), (1, 0, 12)]);
        // Completing again changes nothing: each failure is handed back once.
        p.batch_completed(Time::from_ms(1000));
        assert_eq!(p.next.as_ref().unwrap()[&tp(1)], 12);
    }

    #[test]
    fn a_failed_read_after_a_later_plan_is_read_again_first() {
        let mut p = planner(&[(0, 0)]);
        p.plan(Time::from_ms(1000), &latest(&[(0, 10)]), None);
        p.plan(Time::from_ms(2000), &latest(&[(0, 15)]), None);
        fail(&p, 1000, 0);
        p.batch_completed(Time::from_ms(1000));
        p.batch_completed(Time::from_ms(2000));
        let r = p.plan(Time::from_ms(3000), &latest(&[(0, 20)]), None);
        assert_eq!(spans(&r), vec![(0, 0, 10), (0, 15, 20)]);
        assert!(p.retry.is_empty());
    }

    #[test]
    fn a_range_read_by_another_job_is_not_read_again() {
        let mut p = planner(&[(0, 0)]);
        p.plan(Time::from_ms(1000), &latest(&[(0, 10)]), None);
        let st = &p.batches[&Time::from_ms(1000)].1[0];
        st.store(READ, Ordering::Release);
        let _ = st.compare_exchange(NOT_READ, FAILED, Ordering::AcqRel, Ordering::Acquire);
        p.batch_completed(Time::from_ms(1000));
        let r = p.plan(Time::from_ms(2000), &latest(&[(0, 10)]), None);
        assert_eq!(spans(&r), vec![(0, 10, 10)]);
    }

    #[test]
    fn records_lost_are_reported_to_the_monitoring_server_as_the_streams_counter() {
        // No broker: nothing here needs one (the stream is made, never started).
        let ssc = StreamingContext::new("local[1]", std::time::Duration::from_secs(1)).unwrap();
        let direct = DirectKafkaStream::new(
            &ssc,
            DirectKafkaConfig {
                brokers: Vec::new(),
                ..DirectKafkaConfig::new("", &["t"])
            },
        );
        let ui = ssc.start_ui("127.0.0.1:0").unwrap();
        // What a read counts when retention deleted offsets before it.
        direct.shared.records_lost.add(3);
        assert_eq!(direct.stats().records_lost, 3);
        let id = direct.id();
        let (_, metrics) = spate_streaming::testing::http_get(ui.addr(), "/metrics");
        let line = format!(
            "spate_input_records_lost_total{{stream=\"{id}\",input=\"direct_kafka_stream\"}} 3"
        );
        assert!(metrics.lines().any(|l| l == line), "{metrics}");
        let (_, inputs) = spate_streaming::testing::http_get(ui.addr(), "/api/inputs");
        let inputs: serde_json::Value = serde_json::from_str(&inputs).unwrap();
        assert_eq!(inputs[0]["stream"], id);
        assert_eq!(inputs[0]["counters"]["records_lost"], 3);
    }

    #[test]
    fn offset_ranges_are_bounded() {
        let mut p = planner(&[(0, 0)]);
        for i in 0..(KEEP_BATCHES as u64 + 10) {
            p.plan(Time::from_ms(i * 1000), &latest(&[(0, i as i64)]), None);
        }
        assert_eq!(p.batches.len(), KEEP_BATCHES);
        assert!(p.ranges(Time::from_ms(0)).is_empty());
    }
}
