//! A small synchronous producer: enough to feed examples, load tests and integration tests
//! without another Kafka client.

use super::client::{Conn, KafkaError, classify};
use super::{KafkaConnection, parse_brokers};
use crate::{Error, Result};
use rskafka::client::error::{Error as RsError, ProtocolError};
use rskafka::client::partition::Compression;
use rskafka::record::Record;
use std::collections::BTreeMap;

/// A Kafka producer that blocks until the broker has the records.
///
/// ```no_run
/// use spate_receivers::KafkaProducer;
///
/// let producer = KafkaProducer::new("127.0.0.1:9092").unwrap();
/// producer.create_topic("lines", 2).unwrap();
/// let offsets = producer.send("lines", 0, vec![(None, b"to be or not to be".to_vec())]).unwrap();
/// assert_eq!(offsets.len(), 1);
/// ```
pub struct KafkaProducer {
    conn: Conn,
}

fn to_error(e: KafkaError) -> Error {
    Error::Kafka(e.to_string())
}

impl KafkaProducer {
    /// A producer to `brokers` (`host:port,host:port`) with default settings. Connects lazily:
    /// an unreachable broker is reported by the first request.
    pub fn new(brokers: &str) -> Result<KafkaProducer> {
        KafkaProducer::with_connection(brokers, KafkaConnection::default())
    }

    /// A producer with explicit timeouts and retries.
    pub fn with_connection(brokers: &str, connection: KafkaConnection) -> Result<KafkaProducer> {
        let conn = Conn::new(parse_brokers(brokers), connection).map_err(to_error)?;
        Ok(KafkaProducer { conn })
    }

    /// Creates `topic` with `partitions` partitions (replication factor 1); a topic that
    /// already exists is left as it is.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        let conn = &self.conn;
        let what = format!("creating topic {topic}");
        conn.with_retry(&what, || {
            conn.block_on(conn.attempt_limit(), &what, async {
                let client = conn.client().await?;
                let controller = client
                    .controller_client()
                    .map_err(|e| classify(conn.brokers(), &what, &e))?;
                match controller.create_topic(topic, partitions, 1, 5_000).await {
                    Ok(())
                    | Err(RsError::ServerError {
                        protocol_error: ProtocolError::TopicAlreadyExists,
                        ..
                    }) => Ok(()),
                    Err(e) => Err(classify(conn.brokers(), &what, &e)),
                }
            })
        })
        .map_err(to_error)
    }

    /// The partitions of `topic`.
    pub fn partitions(&self, topic: &str) -> Result<Vec<i32>> {
        let conn = &self.conn;
        let topics = [topic.to_string()];
        conn.with_retry("listing partitions", || {
            conn.block_on(conn.attempt_limit(), "listing partitions", async {
                let parts = conn.partitions_of(&topics).await?;
                Ok(parts.into_iter().map(|tp| tp.partition).collect())
            })
        })
        .map_err(to_error)
    }

    /// Appends `records` (key, value) to `topic`'s `partition`, timestamped now, and returns
    /// their offsets. A failed send may have been written partly or wholly (Kafka's
    /// at-least-once production); retries are bounded by the connection settings.
    pub fn send(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<(Option<Vec<u8>>, Vec<u8>)>,
    ) -> Result<Vec<i64>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.send_at(topic, partition, records, now)
    }

    /// [`send`](Self::send) with the records timestamped `timestamp_ms` (ms since the epoch):
    /// tests date records in the past to have retention delete them.
    pub(crate) fn send_at(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<(Option<Vec<u8>>, Vec<u8>)>,
        timestamp_ms: i64,
    ) -> Result<Vec<i64>> {
        let timestamp = chrono::DateTime::from_timestamp_millis(timestamp_ms).unwrap_or_default();
        let records: Vec<Record> = records
            .into_iter()
            .map(|(key, value)| Record {
                key,
                value: Some(value),
                headers: BTreeMap::new(),
                timestamp,
            })
            .collect();
        let tp = super::TopicPartition::new(topic, partition);
        let conn = &self.conn;
        let what = format!("producing to {tp}");
        conn.with_retry(&what, || {
            conn.block_on(conn.attempt_limit(), &what, async {
                let p = conn.partition(&tp).await?;
                p.produce(records.clone(), Compression::NoCompression)
                    .await
                    .map_err(|e| classify(conn.brokers(), &what, &e))
            })
        })
        .map_err(to_error)
    }
}

impl KafkaProducer {
    /// The earliest offset the broker has of `topic`'s `partition`.
    pub(crate) fn earliest_offset(&self, topic: &str, partition: i32) -> Result<i64> {
        let tp = super::TopicPartition::new(topic, partition);
        let conn = &self.conn;
        let what = format!("asking the earliest offset of {tp}");
        conn.with_retry(&what, || {
            conn.block_on(
                conn.attempt_limit(),
                &what,
                conn.offset(&tp, rskafka::client::partition::OffsetAt::Earliest),
            )
        })
        .map_err(to_error)
    }
}

impl std::fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProducer")
            .field("brokers", &self.conn.brokers())
            .finish()
    }
}
