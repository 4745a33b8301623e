//! Kafka sources: a receiver that consumes topics ([`KafkaSources::kafka_stream`], Spark 0.8's
//! `KafkaUtils.createStream`) and a direct stream whose batches are offset ranges read by the
//! batch's own tasks ([`KafkaSources::direct_kafka_stream`], Spark 1.3's `createDirectStream`).
//!
//! Both speak the Kafka protocol through the pure-Rust [`rskafka`] client, which has no consumer
//! groups: Spate keeps positions itself (see [`KafkaReceiverConfig::group`] and
//! [`DirectKafkaStream::offset_ranges`]).
//!
//! | | receiver stream | direct stream |
//! |---|---|---|
//! | reads | continuously, in a receiver thread | at each batch, in the batch's tasks |
//! | partitions of a batch | one per received block | one per Kafka partition |
//! | broker away | receiver restarted with backoff; empty batches meanwhile | the batch retries (bounded), then fails; the next batch reads what it missed |
//! | guarantee | positions saved after records are handed over: a crash may lose or repeat a little | every record in exactly one batch; [`OffsetRange`]s for exactly-once outputs |
//!
//! ```no_run
//! use spate_receivers::{KafkaSources, StartOffsets};
//! use spate_streaming::StreamingContext;
//! use std::time::Duration;
//!
//! let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
//! let direct = ssc.direct_kafka_stream("127.0.0.1:9092", &["lines"], StartOffsets::Earliest, Some(10_000));
//! let d = direct.clone();
//! direct.map(|r| r.value_lossy()).foreach_rdd(move |rdd, time| {
//!     let lines = rdd.count()?;
//!     // Store the results and `d.offset_ranges(time)` together, in one transaction.
//!     println!("{lines} lines, offsets {:?}", d.offset_ranges(time));
//!     Ok(())
//! });
//! ssc.start().unwrap();
//! ssc.await_termination();
//! ```

mod client;
mod direct;
mod producer;
mod receiver;

pub use direct::{DirectKafkaConfig, DirectKafkaStats, DirectKafkaStream, OffsetRange};
pub use producer::KafkaProducer;
pub use receiver::{KafkaReceiver, KafkaReceiverConfig};

use serde::{Deserialize, Serialize};
use spate_streaming::{DStream, StorageLevel, StreamingContext, ToText};
use std::collections::BTreeMap;
use std::time::Duration;

/// One Kafka record.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KafkaRecord {
    /// The topic.
    pub topic: String,
    /// The partition of the topic.
    pub partition: i32,
    /// The record's offset in its partition.
    pub offset: i64,
    /// The record's timestamp (milliseconds since the Unix epoch), as the broker gives it.
    pub timestamp_ms: i64,
    /// The key, if the record has one.
    pub key: Option<Vec<u8>>,
    /// The value (empty for a record with a null value, such as a compaction tombstone).
    pub value: Vec<u8>,
}

impl KafkaRecord {
    /// The value as UTF-8, or `None` if it is not valid UTF-8.
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }

    /// The value as text, invalid UTF-8 replaced by `�`.
    pub fn value_lossy(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }

    /// The key as UTF-8, or `None` if there is no key or it is not valid UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The record's topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(&self.topic, self.partition)
    }
}

impl ToText for KafkaRecord {
    /// `(topic,partition,offset,key,value)`, key and value as lossy UTF-8 (`None` for no key).
    fn write_text(&self, out: &mut String) {
        use std::fmt::Write;
        let key = self.key.as_deref().map_or_else(
            || "None".to_string(),
            |k| String::from_utf8_lossy(k).into_owned(),
        );
        let _ = write!(
            out,
            "({},{},{},{key},{})",
            self.topic,
            self.partition,
            self.offset,
            String::from_utf8_lossy(&self.value)
        );
    }
}

/// A partition of a topic. Displayed as `topic-partition`, as Kafka's tools do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`'s partition `partition`.
    pub fn new(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.to_string(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Where reading starts in partitions that have no stored position.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum StartOffsets {
    /// The oldest record the broker still has (Kafka's `auto.offset.reset=earliest`).
    Earliest,
    /// Only records produced from now on (Kafka's `latest`, Spark 0.8's default).
    #[default]
    Latest,
    /// These offsets (the offset of the first record to read); partitions not listed start at
    /// the earliest offset. An offset outside what the broker has is an error that names the
    /// valid range.
    Explicit(BTreeMap<TopicPartition, i64>),
}

/// How to talk to the brokers: timeouts, retries and fetch sizes.
#[derive(Clone, Debug)]
pub struct KafkaConnection {
    /// How long one attempt at a request (connecting included) may take (3 s). A direct
    /// stream's batch waits at most about `attempts × (request_timeout + 1 s)` for the brokers
    /// before it fails.
    pub request_timeout: Duration,
    /// Attempts at a request before it fails (3); a receiver makes one and lets its supervisor
    /// restart it with backoff instead.
    pub attempts: u32,
    /// The pause after the first failed attempt, doubled after each (200 ms, at most 5 s).
    pub retry_backoff: Duration,
    /// The most bytes one fetch asks for (4 MiB, at least 1 KiB; one record batch larger than
    /// this is still returned whole).
    pub fetch_max_bytes: i32,
    /// How long a receiver's fetch waits on the broker for new records (100 ms).
    pub fetch_max_wait: Duration,
}

impl Default for KafkaConnection {
    fn default() -> Self {
        KafkaConnection {
            request_timeout: Duration::from_secs(3),
            attempts: 3,
            retry_backoff: Duration::from_millis(200),
            fetch_max_bytes: 4 << 20,
            fetch_max_wait: Duration::from_millis(100),
        }
    }
}

/// Splits a Kafka `bootstrap.servers` list (`host:port,host:port`) into addresses.
pub(crate) fn parse_brokers(brokers: &str) -> Vec<String> {
    brokers
        .split(',')
        .map(|b| b.trim().trim_start_matches("tcp://").to_string())
        .filter(|b| !b.is_empty())
        .collect()
}

/// Kafka sources on a [`StreamingContext`]: bring this trait into scope to call them.
pub trait KafkaSources {
    /// A receiver stream of `topics` (topic → number of concurrent fetchers, Spark 0.8's
    /// `topics: Map[String, Int]`; the topic's partitions are dealt among them) from `brokers`
    /// (`host:port,host:port`), stored at `level`.
    ///
    /// `group` names the consumer's saved positions: with a checkpoint directory set
    /// ([`StreamingContext::checkpoint`]) they are kept in `<dir>/kafka/<group>.offsets` and a
    /// restarted program goes on where the group stopped; a group with no saved position starts
    /// at the latest offsets. The brokers' own consumer groups are not used. A broker that is
    /// unreachable or goes away makes the receiver fail with a retryable error; the supervisor
    /// restarts it with backoff and it resumes after the last record it stored. A position the
    /// broker no longer has (retention deleted the records, the topic was made again) moves to
    /// the nearest end of the log: logged, and the records skipped counted as the stream's input
    /// counter `records_lost` (`spate_input_records_lost_total` on `/metrics`).
    fn kafka_stream(
        &self,
        brokers: &str,
        group: &str,
        topics: &[(&str, usize)],
        level: StorageLevel,
    ) -> DStream<KafkaRecord>;

    /// [`kafka_stream`](Self::kafka_stream) with every setting explicit.
    fn kafka_stream_with(
        &self,
        config: KafkaReceiverConfig,
        level: StorageLevel,
    ) -> DStream<KafkaRecord>;

    /// A direct stream of `topics` from `brokers`: each batch reads, per partition, the records
    /// produced since the previous batch (at most `max_records_per_partition`), starting at
    /// `start`. No receiver: the batch's tasks read the broker, one RDD partition per Kafka
    /// partition. See [`DirectKafkaStream`].
    fn direct_kafka_stream(
        &self,
        brokers: &str,
        topics: &[&str],
        start: StartOffsets,
        max_records_per_partition: Option<u64>,
    ) -> DirectKafkaStream;

    /// [`direct_kafka_stream`](Self::direct_kafka_stream) with every setting explicit.
    fn direct_kafka_stream_with(&self, config: DirectKafkaConfig) -> DirectKafkaStream;
}

impl KafkaSources for StreamingContext {
    #[track_caller]
    fn kafka_stream(
        &self,
        brokers: &str,
        group: &str,
        topics: &[(&str, usize)],
        level: StorageLevel,
    ) -> DStream<KafkaRecord> {
        let config = KafkaReceiverConfig::new(brokers, group, topics);
        self.kafka_stream_with(config, level)
    }

    #[track_caller]
    fn kafka_stream_with(
        &self,
        config: KafkaReceiverConfig,
        level: StorageLevel,
    ) -> DStream<KafkaRecord> {
        let receiver = KafkaReceiver::new(config, self.context().clone());
        let counters = receiver.counters();
        let stream = self.receiver_stream_with_level(receiver, level);
        self.report_input_counters(&stream, &counters);
        stream
    }

    #[track_caller]
    fn direct_kafka_stream(
        &self,
        brokers: &str,
        topics: &[&str],
        start: StartOffsets,
        max_records_per_partition: Option<u64>,
    ) -> DirectKafkaStream {
        let config = DirectKafkaConfig {
            start,
            max_records_per_partition,
            ..DirectKafkaConfig::new(brokers, topics)
        };
        self.direct_kafka_stream_with(config)
    }

    #[track_caller]
    fn direct_kafka_stream_with(&self, config: DirectKafkaConfig) -> DirectKafkaStream {
        DirectKafkaStream::new(self, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brokers_parse_like_bootstrap_servers() {
        assert_eq!(
            parse_brokers(" a:1, tcp://b:2 ,,"),
            vec!["a:1".to_string(), "b:2".to_string()]
        );
        assert!(parse_brokers("").is_empty());
    }

    #[test]
    fn records_render_and_decode() {
        let r = KafkaRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp_ms: 0,
            key: Some(b"k".to_vec()),
            value: b"v\xff".to_vec(),
        };
        assert_eq!(r.value_str(), None);
        assert_eq!(r.value_lossy(), "v\u{fffd}");
        assert_eq!(r.key_str(), Some("k"));
        assert_eq!(r.to_text(), "(t,2,7,k,v\u{fffd})");
        assert_eq!(r.topic_partition().to_string(), "t-2");
    }
}
