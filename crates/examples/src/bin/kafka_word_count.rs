//! KafkaWordCount: run `tansu broker --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 --storage-engine sqlite://tansu.db` (in an empty directory; `cargo install tansu --locked --features dynostore,libsql` first), then `cargo run --release -p spate-examples --bin kafka_word_count -- 127.0.0.1:9092 lines --conf produce=1000`.
//!
//! Arguments: `BROKERS TOPICS`; settings `--conf produce=N`, `--conf from=earliest`,
//! `--conf max-per-partition=N`; and the generated options (`--run-for 10s`, `--help`, …).
//! Produce from elsewhere with any Kafka client, for example Python's confluent-kafka.

fn main() {
    spate_examples::setup_allocator();
    spate_examples::jobs::kafka::KafkaWordCount::main();
}
