//! NetworkWordCount: counts the words of text lines read from a TCP socket, every second.
//!
//! Feed it with the bundled line generator (`cargo xtask loadgen --port 9999 --rate 1000`) or
//! with `nc -lk 9999` (type lines), then run:
//! `cargo run --release -p spate-examples --bin network_word_count -- localhost 9999`
//!
//! Options (the generated entry point): `--master local[2]`, `--batch 1s`, `--run-for 10s`,
//! `--print-graph`, `--dot`, `--log-level info`, `--help`. A refused or lost connection is
//! retried with backoff.

fn main() {
    spate_examples::setup_allocator();
    spate_examples::jobs::network::NetworkWordCount::main();
}
