//! Stateful word count over a queue stream: the running total of every word since the start.
//!
//! `cargo run --release -p spate-examples --bin stateful_word_count -- --run-for 4s`

fn main() {
    spate_examples::setup_allocator();
    spate_examples::jobs::stateful::StatefulWordCount::main();
}
