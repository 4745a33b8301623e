//! Test support: a real Kafka-compatible broker ([tansu](https://crates.io/crates/tansu)) on a
//! loopback port, for the tests of Kafka sources and of jobs that read them. Its methods panic
//! with a message saying what went wrong, as tests want.
//!
//! Needs `tansu` on PATH (`cargo install tansu --locked --features dynostore,libsql`); with the
//! environment variable `SPATE_SKIP_KAFKA=1`, [`Broker::start`] returns `None` instead (the test
//! is skipped).

use crate::KafkaProducer;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether tansu can be run; `None` means skip (only with `SPATE_SKIP_KAFKA=1`).
pub fn tansu_available() -> Option<()> {
    let found = Command::new("tansu")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(());
    }
    if std::env::var("SPATE_SKIP_KAFKA").is_ok_and(|v| v == "1") {
        eprintln!("skipping: tansu is not installed and SPATE_SKIP_KAFKA=1");
        return None;
    }
    panic!(
        "the Kafka tests need the tansu broker on PATH: install it with \
         `cargo install tansu --locked --features dynostore,libsql` (or set SPATE_SKIP_KAFKA=1 \
         to skip these tests)"
    );
}

/// A tansu broker on a loopback port, storing in SQLite inside its own temporary directory;
/// killed on drop.
pub struct Broker {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    /// Starts a broker on a free loopback port (`None`: skipped, see the module docs).
    pub fn start() -> Option<Broker> {
        Broker::start_on(free_port())
    }

    /// Starts a broker on `port`.
    pub fn start_on(port: u16) -> Option<Broker> {
        tansu_available()?;
        let mut b = Broker {
            dir: tempfile::tempdir().expect("a temporary directory"),
            port,
            child: None,
        };
        b.restart();
        Some(b)
    }

    /// `tcp://127.0.0.1:PORT`, as tansu wants it.
    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`, as Spate's Kafka sources want it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What the broker logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default()
    }

    /// Starts the broker (again, on the same directory and port) and waits until it accepts
    /// connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the broker is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tansu.log"))
            .expect("the broker's log file");
        let child = Command::new("tansu")
            .current_dir(self.dir.path())
            .args(["broker", "--listener-url", &self.url()])
            .args(["--advertised-listener-url", &self.url()])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("tansu starts");
        self.child = Some(child);
        let addr: SocketAddr = self.addr().parse().expect("an address");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "tansu exited ({status}) before accepting connections:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not accept connections on {addr} within 20 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the broker (its data stays; [`restart`](Self::restart) brings it back).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        self.create_topic_with(topic, partitions, &[]);
    }

    /// Creates `topic` with `partitions` partitions and topic settings (`("cleanup.policy",
    /// "delete")`: tansu deletes records older than `retention.ms`, a week by default, only
    /// from topics that say so).
    pub fn create_topic_with(&self, topic: &str, partitions: u32, config: &[(&str, &str)]) {
        let mut command = Command::new("tansu");
        command
            .current_dir(self.dir.path())
            .args(["topic", "create", topic, "--partitions"])
            .arg(partitions.to_string());
        for (key, value) in config {
            command.arg("--config").arg(format!("{key}={value}"));
        }
        let mut child = command
            .args(["--broker", &self.url()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tansu topic create starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = child.try_wait().expect("waiting for tansu topic create") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("tansu topic create {topic} did not finish within 20 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(
            status.success(),
            "tansu topic create {topic} failed: {status}"
        );
    }

    /// Produces `values` to `topic`'s `partition` (keys `k<value>`), in requests of 1000.
    pub fn produce(&self, topic: &str, partition: i32, values: &[String]) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.produce_at(topic, partition, values, now);
    }

    /// [`produce`](Self::produce) with the records timestamped `timestamp_ms` (ms since the
    /// epoch). Records dated beyond the topic's retention are deleted when the broker next
    /// runs its maintenance, which tansu does as it starts: [`restart`](Self::restart) the
    /// broker to delete them.
    pub fn produce_at(&self, topic: &str, partition: i32, values: &[String], timestamp_ms: i64) {
        let producer = KafkaProducer::new(&self.addr()).expect("a producer");
        for chunk in values.chunks(1000) {
            let records = chunk
                .iter()
                .map(|v| (Some(format!("k{v}").into_bytes()), v.clone().into_bytes()))
                .collect();
            let offsets = producer
                .send_at(topic, partition, records, timestamp_ms)
                .expect("producing succeeded");
            assert_eq!(offsets.len(), chunk.len());
        }
    }

    /// The earliest offset the broker has of `topic`'s `partition`.
    pub fn earliest_offset(&self, topic: &str, partition: i32) -> i64 {
        KafkaProducer::new(&self.addr())
            .and_then(|p| p.earliest_offset(topic, partition))
            .expect("the broker answers")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
