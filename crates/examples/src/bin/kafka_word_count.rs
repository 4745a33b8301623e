//! KafkaWordCount: run `tansu broker --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 --storage-engine sqlite://tansu.db` (in an empty directory; `cargo install tansu --locked --features dynostore,libsql` first), then `cargo run --release -p spate-examples --bin kafka_word_count -- 127.0.0.1:9092 lines --produce 1000`.
//!
//! Counts the words of the records of Kafka topics every second, with the direct stream: each
//! batch reads the records produced since the previous one (one task per partition) and prints
//! its word counts and the offset ranges it read.
//!
//! Arguments: `BROKERS TOPICS` (comma-separated each). Options: `--produce N` (create the topics
//! if needed and produce N demo lines per second to them from this program), `--from earliest`
//! (default `latest`), `--max-per-partition N` (cap a batch), `--master local[2]`,
//! `--batch-ms 1000`, `--batches N` (stop after N batches; default: run until interrupted).
//! Produce from elsewhere with any Kafka client, for example Python's confluent-kafka.

use anyhow::{Context as _, bail};
use spate_examples::DEMO_TEXT;
use spate_receivers::{KafkaProducer, KafkaSources, StartOffsets};
use spate_streaming::StreamingContext;
use std::time::{Duration, Instant};

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let positional: Vec<String> = std::env::args()
        .skip(1)
        .scan(false, |skip, a| {
            let keep = !*skip && !a.starts_with("--");
            *skip = a.starts_with("--");
            Some(keep.then_some(a))
        })
        .flatten()
        .collect();
    let [brokers, topics] = positional.as_slice() else {
        bail!(
            "usage: kafka_word_count BROKERS TOPICS [--produce N] [--from earliest|latest] \
             [--max-per-partition N] [--master M] [--batch-ms MS] [--batches N]"
        );
    };
    let topics: Vec<&str> = topics.split(',').filter(|t| !t.is_empty()).collect();
    let master: String = arg("--master", "local[2]".to_string())?;
    let batch = Duration::from_millis(arg("--batch-ms", 1000)?);
    let batches: Option<u32> = arg("--batches", 0).map(|n| (n > 0).then_some(n))?;
    let rate: u64 = arg("--produce", 0)?;
    let max: Option<u64> = arg("--max-per-partition", 0).map(|n| (n > 0).then_some(n))?;
    let start = match arg("--from", "latest".to_string())?.as_str() {
        "earliest" => StartOffsets::Earliest,
        "latest" => StartOffsets::Latest,
        other => bail!("invalid --from {other:?}: use earliest or latest"),
    };

    if rate > 0 {
        let producer = KafkaProducer::new(brokers)?;
        for t in &topics {
            producer
                .create_topic(t, 2)
                .with_context(|| format!("creating topic {t}"))?;
        }
        let targets: Vec<(String, Vec<i32>)> = topics
            .iter()
            .map(|t| Ok((t.to_string(), producer.partitions(t)?)))
            .collect::<anyhow::Result<_>>()?;
        std::thread::spawn(move || produce(&producer, &targets, rate));
    }

    let ssc = StreamingContext::new(&master, batch)?;
    let direct = ssc.direct_kafka_stream(brokers, &topics, start, max);
    let counts = direct
        .flat_map(|r| {
            r.value_lossy()
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .map(|w| (w, 1u64))
        .reduce_by_key(|a, b| a + b);
    counts.print();
    let d = direct.clone();
    direct.foreach_rdd(move |_, time| {
        let ranges: Vec<String> = d
            .offset_ranges(time)
            .iter()
            .map(|r| format!("{}-{} [{}, {})", r.topic, r.partition, r.from, r.until))
            .collect();
        println!("offsets read at {time}: {}", ranges.join(", "));
        Ok(())
    });

    ssc.start()?;
    match batches {
        Some(n) => {
            ssc.await_termination_timeout(batch * n + batch / 2);
            ssc.stop(true);
        }
        None => ssc.await_termination(),
    }
    Ok(())
}

/// Parses `--name value` from the command line, with a default.
fn arg<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => {
            let v = args
                .get(i + 1)
                .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?;
            v.parse()
                .map_err(|_| anyhow::anyhow!("invalid value {v:?} for {name}"))
        }
        None => Ok(default),
    }
}

/// Produces `rate` demo lines per second, spread over the partitions of `targets`, in ten
/// sends a second; a failed send is reported and the next one tried.
fn produce(producer: &KafkaProducer, targets: &[(String, Vec<i32>)], rate: u64) {
    let per_tick = rate.div_ceil(10).max(1);
    let mut line = 0usize;
    let mut next = Instant::now();
    loop {
        for (topic, partitions) in targets {
            for (i, p) in partitions.iter().enumerate() {
                let share = per_tick / partitions.len() as u64
                    + u64::from((i as u64) < per_tick % partitions.len() as u64);
                let records = (0..share)
                    .map(|_| {
                        line += 1;
                        (None, DEMO_TEXT[line % DEMO_TEXT.len()].as_bytes().to_vec())
                    })
                    .collect();
                if let Err(e) = producer.send(topic, *p, records) {
                    eprintln!("producing to {topic}-{p} failed: {e}");
                }
            }
        }
        next += Duration::from_millis(100);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        } else {
            next = Instant::now();
        }
    }
}
