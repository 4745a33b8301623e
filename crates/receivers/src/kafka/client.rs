//! The connection to the Kafka brokers shared by the direct stream's planner and tasks and by a
//! receiver: a small tokio runtime, the rskafka client and partition clients (cached, dropped
//! after a failure so the next attempt reconnects), bounded retries, and the classification of
//! failures into "retry" and "give up".

use super::{KafkaConnection, KafkaRecord, StartOffsets, TopicPartition};
use parking_lot::Mutex;
use rskafka::client::error::{Error as RsError, ProtocolError};
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Why a Kafka operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KafkaError {
    /// The brokers could not be reached or answered with a transient error: trying again later
    /// can help.
    Unreachable(String),
    /// Asked-for offsets are not on the broker (deleted by retention, or beyond its end).
    OutOfRange(String),
    /// The broker does not know the topic or partition. Often passing (a topic just created,
    /// a partition whose leader moves: rskafka's docs warn of such answers), so it is retried
    /// like [`Unreachable`](Self::Unreachable), a bounded number of times; then it fails with
    /// an error that says to create the topic or fix its name.
    UnknownTopic(String),
    /// Bad configuration or data (a missing topic, a malformed response): retrying the same
    /// request cannot help.
    Invalid(String),
}

impl KafkaError {
    pub(crate) fn message(&self) -> &str {
        match self {
            KafkaError::Unreachable(m)
            | KafkaError::OutOfRange(m)
            | KafkaError::UnknownTopic(m)
            | KafkaError::Invalid(m) => m,
        }
    }

    pub(crate) fn is_retryable(&self) -> bool {
        matches!(
            self,
            KafkaError::Unreachable(_) | KafkaError::UnknownTopic(_)
        )
    }
}

impl std::fmt::Display for KafkaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// Classifies an rskafka error; `what` says what was being done ("fetching orders-0 at 42").
pub(crate) fn classify(brokers: &[String], what: &str, e: &RsError) -> KafkaError {
    let list = brokers.join(",");
    match e {
        RsError::ServerError {
            protocol_error: ProtocolError::OffsetOutOfRange,
            ..
        } => KafkaError::OutOfRange(format!(
            "{what}: the offsets are not on the broker (deleted by retention, or past the end \
             of the partition)"
        )),
        RsError::ServerError {
            protocol_error: ProtocolError::UnknownTopicOrPartition,
            ..
        } => KafkaError::UnknownTopic(format!(
            "{what}: the broker does not know this topic or partition: create the topic or fix \
             its name (if it was just created or is moving, this passes)"
        )),
        RsError::InvalidResponse(m) => KafkaError::Invalid(format!(
            "{what}: the broker sent a response that cannot be read ({m})"
        )),
        RsError::ServerError { .. } => {
            KafkaError::Unreachable(format!("{what}: the broker at {list} answered: {e}"))
        }
        _ => KafkaError::Unreachable(format!(
            "{what}: cannot reach the Kafka brokers {list} ({e}): check that a broker is \
             running there"
        )),
    }
}

/// A Spate record from an rskafka record of `tp` (a null value becomes an empty one).
pub(crate) fn record_of(tp: &TopicPartition, r: rskafka::record::RecordAndOffset) -> KafkaRecord {
    KafkaRecord {
        topic: tp.topic.clone(),
        partition: tp.partition,
        offset: r.offset,
        timestamp_ms: r.record.timestamp.timestamp_millis(),
        key: r.record.key,
        value: r.record.value.unwrap_or_default(),
    }
}

/// A connection to a Kafka cluster, usable from any thread that is not itself running inside a
/// tokio runtime (stream generator, task and receiver threads).
pub(crate) struct Conn {
    rt: Option<tokio::runtime::Runtime>,
    brokers: Vec<String>,
    settings: KafkaConnection,
    client: Mutex<Option<Arc<Client>>>,
    partitions: Mutex<HashMap<TopicPartition, Arc<PartitionClient>>>,
}

impl Conn {
    pub(crate) fn new(brokers: Vec<String>, settings: KafkaConnection) -> Result<Conn, KafkaError> {
        if brokers.is_empty() {
            return Err(KafkaError::Invalid(
                "no Kafka broker given: pass at least one host:port".into(),
            ));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("spate-kafka-io")
            .enable_all()
            .build()
            .map_err(|e| {
                KafkaError::Unreachable(format!("cannot start the Kafka I/O thread: {e}"))
            })?;
        Ok(Conn {
            rt: Some(rt),
            brokers,
            settings,
            client: Mutex::new(None),
            partitions: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn brokers(&self) -> &[String] {
        &self.brokers
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.rt
            .as_ref()
            .expect("the runtime lives until the connection is dropped")
    }

    /// Runs `fut` to completion on this thread, giving up after `limit`.
    pub(crate) fn block_on<R>(
        &self,
        limit: Duration,
        what: &str,
        fut: impl Future<Output = Result<R, KafkaError>>,
    ) -> Result<R, KafkaError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(KafkaError::Invalid(format!(
                "{what}: Kafka streams cannot be read from inside a tokio runtime: run the \
                 streaming context from ordinary threads (spawn_blocking)"
            )));
        }
        self.runtime()
            .block_on(async move { tokio::time::timeout(limit, fut).await })
            .unwrap_or_else(|_| {
                Err(KafkaError::Unreachable(format!(
                    "{what}: cannot reach the Kafka brokers {} (no answer within {limit:?}): \
                     check that a broker is running there",
                    self.brokers.join(",")
                )))
            })
    }

    /// Runs `attempt` up to `settings.attempts` times while it fails with a retryable error,
    /// sleeping with exponential backoff in between and reconnecting before each new try.
    pub(crate) fn with_retry<R>(
        &self,
        what: &str,
        mut attempt: impl FnMut() -> Result<R, KafkaError>,
    ) -> Result<R, KafkaError> {
        let mut backoff = self.settings.retry_backoff;
        let attempts = self.settings.attempts.max(1);
        let mut tried = 0;
        loop {
            tried += 1;
            match attempt() {
                Ok(r) => return Ok(r),
                Err(e) if e.is_retryable() && tried < attempts => {
                    tracing::warn!(error = %e, attempt = tried, ?backoff, "{what} failed; retrying");
                    self.reset();
                    std::thread::sleep(backoff);
                    backoff = backoff.saturating_mul(2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    if e.is_retryable() && tried > 1 {
                        self.reset();
                        let given_up = format!("{e} (gave up after {tried} attempts)");
                        return Err(match e {
                            KafkaError::UnknownTopic(_) => KafkaError::UnknownTopic(given_up),
                            _ => KafkaError::Unreachable(given_up),
                        });
                    }
                    if e.is_retryable() {
                        self.reset();
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Forgets cached clients so that the next request reconnects.
    pub(crate) fn reset(&self) {
        self.partitions.lock().clear();
        *self.client.lock() = None;
    }

    /// The time one attempt may take: rskafka's own retries plus a margin.
    pub(crate) fn attempt_limit(&self) -> Duration {
        self.settings
            .request_timeout
            .saturating_add(Duration::from_secs(1))
    }

    pub(crate) async fn client(&self) -> Result<Arc<Client>, KafkaError> {
        if let Some(c) = self.client.lock().clone() {
            return Ok(c);
        }
        let backoff = rskafka::BackoffConfig {
            init_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(500),
            base: 2.0,
            deadline: Some(self.settings.request_timeout),
        };
        let client = ClientBuilder::new(self.brokers.clone())
            .client_id("spate")
            .backoff_config(backoff)
            .build()
            .await
            .map_err(|e| classify(&self.brokers, "connecting", &e))?;
        let client = Arc::new(client);
        *self.client.lock() = Some(client.clone());
        Ok(client)
    }

    pub(crate) async fn partition(
        &self,
        tp: &TopicPartition,
    ) -> Result<Arc<PartitionClient>, KafkaError> {
        if let Some(p) = self.partitions.lock().get(tp).cloned() {
            return Ok(p);
        }
        let client = self.client().await?;
        let p = client
            .partition_client(tp.topic.clone(), tp.partition, UnknownTopicHandling::Error)
            .await
            .map_err(|e| classify(&self.brokers, &format!("opening {tp}"), &e))?;
        let p = Arc::new(p);
        self.partitions.lock().insert(tp.clone(), p.clone());
        Ok(p)
    }

    /// The partitions of each of `topics`; a topic the brokers do not have is an error that
    /// says so.
    pub(crate) async fn partitions_of(
        &self,
        topics: &[String],
    ) -> Result<Vec<TopicPartition>, KafkaError> {
        let client = self.client().await?;
        let listed = client
            .list_topics()
            .await
            .map_err(|e| classify(&self.brokers, "listing topics", &e))?;
        let by_name: BTreeMap<&str, _> = listed.iter().map(|t| (t.name.as_str(), t)).collect();
        let mut out = Vec::new();
        for topic in topics {
            match by_name.get(topic.as_str()) {
                Some(t) if !t.partitions.is_empty() => {
                    out.extend(t.partitions.iter().map(|p| TopicPartition::new(topic, *p)));
                }
                _ => {
                    return Err(KafkaError::Invalid(format!(
                        "topic {topic:?} does not exist on the Kafka brokers {}: create it (for \
                         example `tansu topic create {topic} --partitions 3`) or fix the name",
                        self.brokers.join(",")
                    )));
                }
            }
        }
        Ok(out)
    }

    /// The earliest or latest offset of `tp` (latest = the offset the next record will get).
    pub(crate) async fn offset(
        &self,
        tp: &TopicPartition,
        at: OffsetAt,
    ) -> Result<i64, KafkaError> {
        let p = self.partition(tp).await?;
        p.get_offset(at).await.map_err(|e| {
            classify(
                &self.brokers,
                &format!("asking the {} offset of {tp}", offset_name(at)),
                &e,
            )
        })
    }

    /// Records of `tp` from `offset` on (as many as one fetch returns), and the high watermark.
    pub(crate) async fn fetch(
        &self,
        tp: &TopicPartition,
        offset: i64,
        max_wait: Duration,
    ) -> Result<(Vec<rskafka::record::RecordAndOffset>, i64), KafkaError> {
        let p = self.partition(tp).await?;
        let max_bytes = self.settings.fetch_max_bytes.max(1024);
        let wait = i32::try_from(max_wait.as_millis()).unwrap_or(i32::MAX);
        p.fetch_records(offset, 1..max_bytes, wait)
            .await
            .map_err(|e| {
                classify(
                    &self.brokers,
                    &format!("fetching {tp} at offset {offset}"),
                    &e,
                )
            })
    }
}

fn offset_name(at: OffsetAt) -> &'static str {
    match at {
        OffsetAt::Earliest => "earliest",
        OffsetAt::Latest => "latest",
        OffsetAt::Timestamp(_) => "timestamp",
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reset();
        // Never blocks, so a connection may be dropped anywhere (even inside another runtime).
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Where reading `tp` starts under `start`.
pub(crate) async fn start_offset(
    conn: &Conn,
    tp: &TopicPartition,
    start: &StartOffsets,
) -> Result<i64, KafkaError> {
    match start {
        StartOffsets::Earliest => conn.offset(tp, OffsetAt::Earliest).await,
        StartOffsets::Latest => conn.offset(tp, OffsetAt::Latest).await,
        StartOffsets::Explicit(m) => {
            let earliest = conn.offset(tp, OffsetAt::Earliest).await?;
            let Some(&o) = m.get(tp) else {
                return Ok(earliest);
            };
            let latest = conn.offset(tp, OffsetAt::Latest).await?;
            if o < earliest || o > latest {
                return Err(KafkaError::Invalid(format!(
                    "the start offset {o} of {tp} is outside what the broker has, \
                     [{earliest}, {latest}]: choose an offset in that range"
                )));
            }
            Ok(o)
        }
    }
}

/// What a read of `[from, until)` of a partition got: its records, and the offsets the broker
/// had deleted (retention) before they could be read, as `[from, until)` spans.
#[derive(Debug, Default)]
pub(crate) struct RangeRead {
    pub(crate) records: Vec<KafkaRecord>,
    pub(crate) deleted: Vec<(i64, i64)>,
}

/// What became of the offsets from `next` on that a read of a range ending at `until` did not
/// find where it asked, judged by the partition's earliest and latest offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gap {
    /// The partition now ends at `end`, before the range does: its records were removed (the
    /// topic was deleted and created again); the offsets planned past `end` never come.
    Truncated { end: i64 },
    /// Retention deleted the offsets `[next, next + count)`; the broker still has the rest of
    /// the range from `resume` on (`None`: nothing of it is left).
    Deleted { count: i64, resume: Option<i64> },
    /// The broker's own offsets say the records are there.
    Unexplained,
}

/// Explains a gap at `next` in a read of a range ending at `until`, from the partition's
/// `earliest` and `latest` offsets. Pure, so the decision is tested without a broker that can
/// be made to delete records.
pub(crate) fn explain_gap(next: i64, until: i64, earliest: i64, latest: i64) -> Gap {
    if latest < until {
        Gap::Truncated { end: latest }
    } else if earliest > next {
        let to = earliest.min(until);
        Gap::Deleted {
            count: to - next,
            resume: (earliest < until).then_some(earliest),
        }
    } else {
        Gap::Unexplained
    }
}

/// The earliest and latest offsets of `tp`, with bounded retries.
fn bounds(conn: &Conn, tp: &TopicPartition) -> Result<(i64, i64), KafkaError> {
    let what = format!("asking the offsets of {tp}");
    conn.with_retry(&what, || {
        conn.block_on(conn.attempt_limit(), &what, async {
            let earliest = conn.offset(tp, OffsetAt::Earliest).await?;
            let latest = conn.offset(tp, OffsetAt::Latest).await?;
            Ok((earliest, latest))
        })
    })
}

fn truncated(what: &str, tp: &TopicPartition, end: i64) -> KafkaError {
    KafkaError::OutOfRange(format!(
        "{what}: the broker now ends {tp} at offset {end}: the records were removed (was the \
         topic deleted and created again?)"
    ))
}

/// Reads the records of `tp` in `[from, until)` with bounded retries. Offsets the broker has
/// deleted (retention) are reported in [`RangeRead::deleted`] and the read goes on with what it
/// still has; gaps inside the log (compacted or transaction-marker offsets) are skipped.
pub(crate) fn read_range(
    conn: &Conn,
    tp: &TopicPartition,
    from: i64,
    until: i64,
) -> Result<RangeRead, KafkaError> {
    let mut out: Vec<KafkaRecord> =
        Vec::with_capacity(usize::try_from(until - from).unwrap_or(0).min(1 << 20));
    let mut deleted = Vec::new();
    let mut next = from;
    let mut empty = 0;
    let what = format!("reading {tp} [{from}, {until})");
    while next < until {
        let fetched = conn.with_retry(&what, || {
            conn.block_on(
                conn.attempt_limit(),
                &what,
                conn.fetch(tp, next, Duration::from_millis(100)),
            )
        });
        let (records, high) = match fetched {
            Ok(answer) => answer,
            // Kafka's answer to an offset before the partition's start (deleted by retention)
            // or past its end.
            Err(KafkaError::OutOfRange(m)) => {
                let (earliest, latest) = bounds(conn, tp)?;
                match explain_gap(next, until, earliest, latest) {
                    Gap::Deleted { count, resume } => {
                        deleted.push((next, next + count));
                        match resume {
                            Some(at) => {
                                next = at;
                                empty = 0;
                                continue;
                            }
                            None => break,
                        }
                    }
                    Gap::Truncated { end } => return Err(truncated(&what, tp, end)),
                    Gap::Unexplained => return Err(KafkaError::OutOfRange(m)),
                }
            }
            Err(e) => return Err(e),
        };
        // Some brokers (tansu) answer a deleted offset with the records after it instead: the
        // deletion shows as a gap before the first record. Compaction and transaction markers
        // make such gaps too; the partition's earliest offset tells them apart.
        if records.first().is_some_and(|r| r.offset > next) {
            let (earliest, _) = bounds(conn, tp)?;
            if let Gap::Deleted { count, .. } = explain_gap(next, until, earliest, high.max(until))
            {
                deleted.push((next, next + count));
                next += count;
            }
        }
        let before = out.len();
        for r in records {
            if r.offset >= until {
                break;
            }
            if r.offset >= next {
                next = r.offset.saturating_add(1);
                out.push(record_of(tp, r));
            }
        }
        if out.len() > before {
            empty = 0;
            continue;
        }
        if high < until {
            return Err(truncated(&what, tp, high));
        }
        // Nothing readable at `next` although the partition goes further: offsets taken by
        // transaction markers or removed by compaction. A few empty answers in a row end the
        // range.
        empty += 1;
        if empty >= 3 {
            tracing::debug!(%tp, next, until, "no records left in the range (compacted or markers)");
            break;
        }
    }
    Ok(RangeRead {
        records: out,
        deleted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rskafka::client::error::RequestContext;

    #[test]
    fn a_gap_is_explained_by_the_partitions_offsets() {
        // Retention deleted the start of the range: the rest is read from the earliest offset.
        assert_eq!(
            explain_gap(8, 16, 10, 20),
            Gap::Deleted {
                count: 2,
                resume: Some(10)
            }
        );
        // ... or all of it, the partition going on after it.
        assert_eq!(
            explain_gap(8, 16, 16, 20),
            Gap::Deleted {
                count: 8,
                resume: None
            }
        );
        assert_eq!(
            explain_gap(8, 16, 30, 30),
            Gap::Deleted {
                count: 8,
                resume: None
            }
        );
        // The partition ends before the range: removed, not aged out.
        assert_eq!(explain_gap(8, 16, 0, 12), Gap::Truncated { end: 12 });
        assert_eq!(explain_gap(8, 16, 10, 12), Gap::Truncated { end: 12 });
        // The broker says it has them.
        assert_eq!(explain_gap(8, 16, 8, 16), Gap::Unexplained);
        assert_eq!(explain_gap(8, 16, 0, 100), Gap::Unexplained);
    }

    fn server_error(protocol_error: ProtocolError) -> RsError {
        RsError::ServerError {
            protocol_error,
            error_message: None,
            request: RequestContext::Partition("orders".into(), 3),
            response: None,
            is_virtual: false,
        }
    }

    #[test]
    fn an_unknown_topic_is_retried_a_bounded_number_of_times_then_says_what_to_do() {
        let brokers = vec!["127.0.0.1:9".to_string()];
        let e = classify(
            &brokers,
            "asking the latest offset of orders-3",
            &server_error(ProtocolError::UnknownTopicOrPartition),
        );
        assert!(e.is_retryable(), "{e:?}");
        assert!(
            !classify(
                &brokers,
                "x",
                &server_error(ProtocolError::OffsetOutOfRange)
            )
            .is_retryable()
        );

        let conn = Conn::new(
            brokers,
            KafkaConnection {
                attempts: 3,
                retry_backoff: Duration::from_millis(1),
                ..KafkaConnection::default()
            },
        )
        .unwrap();
        let mut tries = 0;
        let r: Result<(), KafkaError> = conn.with_retry("asking", || {
            tries += 1;
            Err(e.clone())
        });
        assert_eq!(tries, 3);
        match r {
            Err(KafkaError::UnknownTopic(m)) => assert!(
                m.contains("create the topic or fix its name")
                    && m.contains("gave up after 3 attempts"),
                "{m}"
            ),
            other => panic!("expected UnknownTopic, got {other:?}"),
        }
        // Passing: the next attempt succeeds.
        let mut tries = 0;
        let r = conn.with_retry("asking", || {
            tries += 1;
            if tries == 1 { Err(e.clone()) } else { Ok(7) }
        });
        assert_eq!(r, Ok(7));
    }
}
