//! The Kafka receiver: consumes every partition of its topics in a receiver thread and stores
//! the records, keeping its positions per group (Spark 0.8's `KafkaInputDStream`).
//!
//! Each round fetches all partitions at once (a topic's partitions are dealt among its
//! fetchers; a fetcher reads its partitions one after another), then stores what came, in offset
//! order per partition, and moves the positions past it (an offset that keeps giving no record,
//! such as a transaction marker, is stepped over after three tries). Positions are saved to the
//! group's file every [`KafkaReceiverConfig::save_interval`] while they change, and when the
//! receiver stops or fails. With the write-ahead log on, every stored batch of records also
//! carries the positions after it into the log, and a receiver of a recovered driver resumes at
//! the positions of the last logged block (the file may be ahead of it). A failure to reach the
//! brokers ends `receive` with
//! [`ReceiverError::Retry`]: the supervisor restarts it with backoff, and it resumes at the
//! positions of what it stored.

use super::client::{Conn, Gap, KafkaError, explain_gap, record_of, start_offset};
use super::{KafkaConnection, KafkaRecord, StartOffsets, TopicPartition, parse_brokers};
use rskafka::client::partition::OffsetAt;
use rskafka::record::RecordAndOffset;
use spate_streaming::{
    Context, InputCounter, InputCounters, Receiver, ReceiverContext, ReceiverError,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Settings of a Kafka receiver.
#[derive(Clone, Debug)]
pub struct KafkaReceiverConfig {
    /// Bootstrap brokers, `host:port` each.
    pub brokers: Vec<String>,
    /// The consumer group: the name of the positions file (`<group>.offsets`), so letters,
    /// digits, `.`, `_` and `-` only. Kafka's own consumer groups are not used (the client has
    /// none), so two receivers of one group do not share partitions: each reads everything.
    pub group: String,
    /// Topics, each with its number of concurrent fetchers (at least 1, at most its partitions).
    pub topics: Vec<(String, usize)>,
    /// Where partitions with no saved position start ([`StartOffsets::Latest`] by default).
    pub start: StartOffsets,
    /// The directory of the positions file; by default `<checkpoint dir>/kafka` when the
    /// context has a checkpoint directory when the receiver starts, else positions live in
    /// memory only (kept across restarts of the receiver, not of the program).
    pub positions_dir: Option<PathBuf>,
    /// How often positions are saved while receiving (1 s).
    pub save_interval: Duration,
    /// Timeouts and fetch sizes (the receiver makes one attempt per request and lets its
    /// supervisor restart it on failure).
    pub connection: KafkaConnection,
}

impl KafkaReceiverConfig {
    /// Default settings for `topics` (topic, fetchers) of `brokers` (`host:port,host:port`) in
    /// `group`.
    pub fn new(brokers: &str, group: &str, topics: &[(&str, usize)]) -> KafkaReceiverConfig {
        KafkaReceiverConfig {
            brokers: parse_brokers(brokers),
            group: group.to_string(),
            topics: topics.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
            start: StartOffsets::Latest,
            positions_dir: None,
            save_interval: Duration::from_secs(1),
            connection: KafkaConnection::default(),
        }
    }
}

/// A receiver of Kafka records (see [`KafkaSources::kafka_stream`](super::KafkaSources)).
pub struct KafkaReceiver {
    config: KafkaReceiverConfig,
    ctx: Context,
    /// The offset of the next record to store, per partition.
    positions: BTreeMap<TopicPartition, i64>,
    /// Whether saved positions were loaded.
    loaded: bool,
    /// The receiver's input counters (see [`KafkaReceiver::counters`]).
    counters: InputCounters,
    /// Records skipped when a position was outside what the broker had.
    records_lost: InputCounter,
}

impl KafkaReceiver {
    /// A receiver with `config`; `ctx` tells where the checkpoint directory is.
    pub fn new(config: KafkaReceiverConfig, ctx: Context) -> KafkaReceiver {
        let counters = InputCounters::new();
        let records_lost = counters.counter(
            "records_lost",
            "Records an input never read because the broker no longer had them (retention) or the topic was made again (logged).",
        );
        KafkaReceiver {
            config,
            ctx,
            positions: BTreeMap::new(),
            loaded: false,
            counters,
            records_lost,
        }
    }

    /// Its input counters, for [`StreamingContext::report_input_counters`]
    /// (`kafka_stream` reports them): `records_lost`, the records it skipped when its position
    /// in a partition was outside what the broker had (each such reset is also logged and
    /// reported as the receiver's last error).
    ///
    /// [`StreamingContext::report_input_counters`]: spate_streaming::StreamingContext::report_input_counters
    pub fn counters(&self) -> InputCounters {
        self.counters.clone()
    }

    fn positions_file(&self) -> Option<PathBuf> {
        let dir = self.config.positions_dir.clone().or_else(|| {
            self.ctx
                .checkpoint_dir()
                .and_then(|d| d.parent().map(|p| p.join("kafka")))
        })?;
        Some(dir.join(format!("{}.offsets", self.config.group)))
    }

    fn check_config(&self) -> Result<(), ReceiverError> {
        let g = &self.config.group;
        if g.is_empty()
            || !g
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(ReceiverError::Fatal(format!(
                "invalid Kafka consumer group {g:?}: use letters, digits, '.', '_' and '-' only"
            )));
        }
        if self.config.topics.is_empty() {
            return Err(ReceiverError::Fatal(
                "no Kafka topic to consume: give at least one (topic, fetchers) pair".into(),
            ));
        }
        Ok(())
    }

    fn save(&self, file: Option<&Path>) {
        if let Some(f) = file
            && let Err(e) = save_positions(f, &self.config.group, &self.positions)
        {
            tracing::warn!(file = %f.display(), error = %e, "could not save the Kafka positions");
        }
    }

    /// Counts and reports the offsets `[at, first)` of `tp` as lost if the broker deleted them
    /// (its earliest offset is past `at`) before they were read; a gap the broker's log still
    /// spans (compacted records, transaction markers) is no loss.
    fn count_deleted(
        &self,
        conn: &Conn,
        rctx: &ReceiverContext<KafkaRecord>,
        tp: &TopicPartition,
        at: i64,
        first: i64,
    ) -> Result<(), KafkaError> {
        let limit = conn.attempt_limit();
        let earliest = conn.block_on(limit, "asking where a partition starts", async {
            conn.offset(tp, OffsetAt::Earliest).await
        })?;
        // The log goes on at `first` at least: the gap cannot be a truncation.
        let Gap::Deleted { count, .. } = explain_gap(at, first, earliest, first) else {
            return Ok(());
        };
        let until = at + count;
        rctx.report_error(&format!(
            "offsets [{at}, {until}) of {tp} were deleted by the broker (retention) before the \
             receiver read them: {}; keep records longer on the broker, or the program down for \
             less",
            count_lost(&self.records_lost, count)
        ));
        Ok(())
    }

    /// Moves the position of `tp`, which the broker no longer serves, to where the broker's
    /// records are (Kafka's `auto.offset.reset`).
    fn reset_position(
        &mut self,
        conn: &Conn,
        rctx: &ReceiverContext<KafkaRecord>,
        tp: &TopicPartition,
    ) -> Result<(), KafkaError> {
        let limit = conn.attempt_limit();
        let (earliest, latest) = conn.block_on(limit, "resetting a position", async {
            let e = conn.offset(tp, OffsetAt::Earliest).await?;
            let l = conn.offset(tp, OffsetAt::Latest).await?;
            Ok((e, l))
        })?;
        let Some(pos) = self.positions.get_mut(tp) else {
            return Ok(());
        };
        // Behind the log: what was deleted before it was read. Past its end (the topic was
        // made again, or the log cut short): what the new log holds is skipped.
        let (to, lost) = if *pos < earliest {
            (earliest, earliest - *pos)
        } else {
            (latest, latest - earliest)
        };
        let skipped = count_lost(&self.records_lost, lost);
        rctx.report_error(&format!(
            "the position {pos} of {tp} is outside what the broker has, [{earliest}, {latest}] \
             (records deleted by retention, or the topic was created again): continuing at {to}; \
             {skipped}"
        ));
        *pos = to;
        Ok(())
    }
}

/// Adds `n` to the records lost (`lost`); says so for a report.
fn count_lost(lost: &InputCounter, n: i64) -> String {
    let n = u64::try_from(n).unwrap_or(0);
    let total = lost.add(n);
    format!("{n} records skipped ({total} in all, counted as records_lost)")
}

/// Runs `fut` unless the receiver is told to stop first (`Ok(None)`).
fn run<R>(
    conn: &Conn,
    rctx: &ReceiverContext<KafkaRecord>,
    limit: Duration,
    what: &str,
    fut: impl std::future::Future<Output = Result<R, KafkaError>>,
) -> Result<Option<R>, KafkaError> {
    conn.block_on(limit, what, async {
        tokio::select! {
            r = fut => r.map(Some),
            () = async {
                while !rctx.is_stopped() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            } => Ok(None),
        }
    })
}

fn retry(e: KafkaError) -> ReceiverError {
    ReceiverError::Retry(e.to_string())
}

/// The partitions of each fetcher: a topic's partitions dealt among its fetchers.
fn deal(parts: &[TopicPartition], topics: &[(String, usize)]) -> Vec<Vec<TopicPartition>> {
    let mut groups = Vec::new();
    for (topic, fetchers) in topics {
        let mine: Vec<&TopicPartition> = parts.iter().filter(|tp| &tp.topic == topic).collect();
        let n = (*fetchers).clamp(1, mine.len().max(1));
        let mut g = vec![Vec::new(); n];
        for (i, tp) in mine.into_iter().enumerate() {
            g[i % n].push(tp.clone());
        }
        groups.extend(g.into_iter().filter(|g| !g.is_empty()));
    }
    groups
}

type Fetched = Vec<(
    TopicPartition,
    Result<(Vec<RecordAndOffset>, i64), KafkaError>,
)>;

impl Receiver<KafkaRecord> for KafkaReceiver {
    fn receive(&mut self, rctx: &ReceiverContext<KafkaRecord>) -> Result<(), ReceiverError> {
        self.check_config()?;
        let settings = KafkaConnection {
            attempts: 1,
            ..self.config.connection.clone()
        };
        let conn = Conn::new(self.config.brokers.clone(), settings).map_err(|e| match e {
            KafkaError::Invalid(m) => ReceiverError::Fatal(m),
            e => retry(e),
        })?;
        let file = self.positions_file();
        if !self.loaded {
            if let Some(logged) = rctx.logged_position() {
                // The write-ahead log holds the positions after the last block it has: resume
                // exactly there (the positions file may be ahead of what reached the log).
                self.positions = parse_positions(&logged, "in the write-ahead log")
                    .map_err(ReceiverError::Fatal)?;
                tracing::info!(group = %self.config.group, "resuming at the Kafka positions of the write-ahead log");
            } else if let Some(f) = &file {
                self.positions = load_positions(f).map_err(ReceiverError::Fatal)?;
                if !self.positions.is_empty() {
                    tracing::info!(group = %self.config.group, file = %f.display(), "resuming at saved Kafka positions");
                }
            }
            self.loaded = true;
        }
        let topics: Vec<String> = self.config.topics.iter().map(|(t, _)| t.clone()).collect();
        let limit = conn.attempt_limit().saturating_mul(2);
        let Some(parts) = run(&conn, rctx, limit, "listing partitions", async {
            let parts = conn.partitions_of(&topics).await?;
            let mut starts = Vec::new();
            for tp in &parts {
                if !self.positions.contains_key(tp) {
                    starts.push((
                        tp.clone(),
                        start_offset(&conn, tp, &self.config.start).await?,
                    ));
                }
            }
            Ok((parts, starts))
        })
        .map_err(retry)?
        .map(|(parts, starts)| {
            self.positions.extend(starts);
            parts
        }) else {
            return Ok(());
        };
        tracing::info!(group = %self.config.group, partitions = parts.len(), "Kafka receiver consuming");
        let groups = deal(&parts, &self.config.topics);
        let wait = self.config.connection.fetch_max_wait;
        let longest =
            u32::try_from(groups.iter().map(Vec::len).max().unwrap_or(1)).unwrap_or(u32::MAX);
        let round_limit = conn
            .attempt_limit()
            .saturating_add(wait.saturating_mul(longest));
        let mut last_save = Instant::now();
        // Consecutive fetches that returned nothing although the partition goes further.
        let mut empty: BTreeMap<TopicPartition, u32> = BTreeMap::new();
        let mut dirty = false;
        let result = loop {
            if rctx.is_stopped() {
                break Ok(());
            }
            let positions = &self.positions;
            let conn_ref = &conn;
            let round = futures::future::join_all(groups.iter().map(|g| async move {
                let mut out: Fetched = Vec::new();
                for tp in g {
                    let at = positions.get(tp).copied().unwrap_or(0);
                    let r = conn_ref.fetch(tp, at, wait).await;
                    let failed = r.is_err();
                    out.push((tp.clone(), r));
                    if failed {
                        break;
                    }
                }
                out
            }));
            let fetched = match run(&conn, rctx, round_limit, "fetching", async {
                Ok(round.await)
            }) {
                Ok(Some(f)) => f,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            let mut failure = None;
            for (tp, r) in fetched.into_iter().flatten() {
                match r {
                    Ok((records, high)) => {
                        let at = self.positions.get(&tp).copied().unwrap_or(0);
                        // Some brokers (tansu) answer an offset retention deleted with the
                        // records after it: the deletion shows as a gap before the first one.
                        if let Some(first) = records.first().map(|r| r.offset)
                            && first > at
                            && let Err(e) = self.count_deleted(&conn, rctx, &tp, at, first)
                        {
                            failure.get_or_insert(e);
                            continue;
                        }
                        // In offset order, each offset once: an answer may hold overlapping
                        // record batches.
                        let mut next = at;
                        let records: Vec<KafkaRecord> = records
                            .into_iter()
                            .filter(|r| {
                                let new = r.offset >= next;
                                if new {
                                    next = r.offset.saturating_add(1);
                                }
                                new
                            })
                            .map(|r| record_of(&tp, r))
                            .collect();
                        if let Some(last) = records.last() {
                            let next = last.offset.saturating_add(1);
                            self.positions.insert(tp.clone(), next);
                            // Noted with the records: with the write-ahead log on, a recovered
                            // driver resumes exactly after the last logged record.
                            rctx.store_many_at(records, render_positions(&self.positions));
                            empty.remove(&tp);
                            dirty = true;
                        } else if high > at {
                            // Nothing readable at `at` although the partition goes further: an
                            // offset holding a transaction marker (the client hides those).
                            // Step over it after a few tries rather than spin on it.
                            let n = empty.entry(tp.clone()).or_default();
                            *n += 1;
                            if *n >= 3 {
                                tracing::debug!(%tp, offset = at, "skipping an offset that holds no record");
                                self.positions.insert(tp.clone(), at.saturating_add(1));
                                empty.remove(&tp);
                                dirty = true;
                            }
                        }
                    }
                    Err(KafkaError::OutOfRange(_)) => {
                        if let Err(e) = self.reset_position(&conn, rctx, &tp) {
                            failure.get_or_insert(e);
                        }
                    }
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = failure {
                break Err(e);
            }
            if dirty && last_save.elapsed() >= self.config.save_interval {
                self.save(file.as_deref());
                last_save = Instant::now();
                dirty = false;
            }
        };
        self.save(file.as_deref());
        result.map_err(retry)
    }

    fn name(&self) -> String {
        format!("kafka({})", self.config.group)
    }
}

/// Reads a positions file: `topic<TAB>partition<TAB>offset` lines; `#` starts a comment. A
/// missing file is no positions.
fn load_positions(path: &Path) -> Result<BTreeMap<TopicPartition, i64>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => {
            return Err(format!(
                "cannot read the Kafka positions file {}: {e}",
                path.display()
            ));
        }
    };
    parse_positions(&text, &path.display().to_string())
}

/// Renders positions as lines of `topic<TAB>partition<TAB>next offset`.
fn render_positions(positions: &BTreeMap<TopicPartition, i64>) -> String {
    let mut text = String::new();
    for (tp, o) in positions {
        text.push_str(&format!("{}\t{}\t{o}\n", tp.topic, tp.partition));
    }
    text
}

/// Parses what [`render_positions`] wrote (`#` lines are comments); `source` names it in errors.
fn parse_positions(text: &str, source: &str) -> Result<BTreeMap<TopicPartition, i64>, String> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let parsed = match fields.as_slice() {
            [t, p, o] if !t.is_empty() => p
                .parse::<i32>()
                .ok()
                .zip(o.parse::<i64>().ok())
                .filter(|(p, o)| *p >= 0 && *o >= 0)
                .map(|(p, o)| (TopicPartition::new(t, p), o)),
            _ => None,
        };
        let Some((tp, o)) = parsed else {
            return Err(format!(
                "the Kafka positions file {} is damaged at line {}: {line:?} is not \
                 `topic<TAB>partition<TAB>offset`; fix the line, or delete the file to start \
                 the group afresh",
                source,
                n + 1
            ));
        };
        out.insert(tp, o);
    }
    Ok(out)
}

/// Writes a positions file atomically (a temporary file renamed over it).
fn save_positions(
    path: &Path,
    group: &str,
    positions: &BTreeMap<TopicPartition, i64>,
) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut text = format!(
        "# Kafka positions of the Spate consumer group {group}: topic, partition, next offset\n"
    );
    text.push_str(&render_positions(positions));
    let tmp = path.with_extension("offsets.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sub/g.offsets");
        assert!(load_positions(&f).unwrap().is_empty());
        let mut p = BTreeMap::new();
        p.insert(TopicPartition::new("a", 0), 5);
        p.insert(TopicPartition::new("a.b-c", 12), 0);
        save_positions(&f, "g", &p).unwrap();
        assert_eq!(load_positions(&f).unwrap(), p);
        std::fs::write(&f, "a\t0\t5\na\tx\t1\n").unwrap();
        let e = load_positions(&f).unwrap_err();
        assert!(e.contains("line 2") && e.contains("delete the file"), "{e}");
        std::fs::write(&f, "a\t0\t-5\n").unwrap();
        assert!(load_positions(&f).is_err());
    }

    #[test]
    fn partitions_are_dealt_among_fetchers() {
        let parts: Vec<TopicPartition> = (0..5)
            .map(|p| TopicPartition::new("a", p))
            .chain([TopicPartition::new("b", 0)])
            .collect();
        let g = deal(&parts, &[("a".into(), 2), ("b".into(), 9)]);
        let names: Vec<Vec<String>> = g
            .iter()
            .map(|g| g.iter().map(|tp| tp.to_string()).collect())
            .collect();
        assert_eq!(
            names,
            vec![vec!["a-0", "a-2", "a-4"], vec!["a-1", "a-3"], vec!["b-0"]]
        );
        assert_eq!(deal(&parts, &[("a".into(), 0)]).len(), 1);
    }

    #[test]
    fn bad_groups_and_empty_topics_are_fatal() {
        let ctx = Context::new("local").unwrap();
        for (group, topics) in [("a/b", vec![("t", 1)]), ("", vec![("t", 1)]), ("g", vec![])] {
            let r = KafkaReceiver::new(
                KafkaReceiverConfig::new("127.0.0.1:1", group, &topics),
                ctx.clone(),
            );
            assert!(
                matches!(r.check_config(), Err(ReceiverError::Fatal(_))),
                "{group:?}"
            );
        }
    }
}
