//! KafkaWordCount: the words of the records of Kafka topics, every second, with the direct stream:
//! each batch reads the records produced since the previous one (one task per partition) and
//! prints its word counts and the offset ranges it read.

use crate::DEMO_TEXT;
use spate_receivers::{KafkaProducer, KafkaSources, StartOffsets};
use spate_streaming::{StreamingContext, streaming_job};
use std::time::{Duration, Instant};

/// The job's arguments are `BROKERS TOPICS` (comma-separated each; default `127.0.0.1:9092
/// lines`). Settings: `--conf produce=N` (create the topics and produce N demo lines per second
/// from this program), `--conf from=earliest` (default latest), `--conf max-per-partition=N`.
#[streaming_job(batch = "1s", name = "kafka-word-count")]
pub fn kafka_word_count(ssc: &StreamingContext) {
    let args = ssc.args();
    let brokers = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let topics: Vec<String> = args.get(1).map_or_else(
        || vec!["lines".to_string()],
        |t| {
            t.split(',')
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect()
        },
    );
    let topic_names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let start = match ssc.conf_or("from", "latest").as_str() {
        "earliest" => StartOffsets::Earliest,
        "latest" => StartOffsets::Latest,
        other => {
            ssc.invalid_setting("from", other, "use earliest or latest");
            StartOffsets::Latest
        }
    };
    let max = ssc.conf_parsed_opt("max-per-partition");
    if let Some(rate) = ssc.conf_parsed_opt::<u64>("produce") {
        start_producer(&brokers, &topics, rate);
    }
    let direct = ssc.direct_kafka_stream(&brokers, &topic_names, start, max);
    let words = direct.flat_map(|r: spate_receivers::KafkaRecord| {
        r.value_lossy()
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    });
    let counts = words.map(|w: String| (w, 1u64)).reduce_by_key(|a, b| a + b);
    counts.print();
    let ranges = direct.clone();
    direct.foreach_rdd(move |_, time| {
        let read: Vec<String> = ranges
            .offset_ranges(time)
            .iter()
            .map(|r| format!("{}-{} [{}, {})", r.topic, r.partition, r.from, r.until))
            .collect();
        println!("offsets read at {time}: {}", read.join(", "));
        Ok(())
    });
}

/// Creates the topics (2 partitions) if needed and produces `rate` demo lines per second to them
/// from a background thread; failures are reported, not fatal.
fn start_producer(brokers: &str, topics: &[String], rate: u64) {
    let setup = || -> Result<(KafkaProducer, Vec<(String, Vec<i32>)>), spate_receivers::Error> {
        let producer = KafkaProducer::new(brokers)?;
        let mut targets = Vec::new();
        for t in topics {
            producer.create_topic(t, 2)?;
            targets.push((t.clone(), producer.partitions(t)?));
        }
        Ok((producer, targets))
    };
    match setup() {
        Ok((producer, targets)) => {
            std::thread::spawn(move || produce(&producer, &targets, rate));
        }
        Err(e) => eprintln!("cannot produce demo lines: {e}"),
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
