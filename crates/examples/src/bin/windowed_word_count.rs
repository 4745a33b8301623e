//! Windowed word count over a queue stream: every batch, the word counts of the last 3 batches.
//!
//! `cargo run --release -p spate-examples --bin windowed_word_count -- --run-for 4s`

fn main() {
    spate_examples::setup_allocator();
    spate_examples::jobs::windowed::WindowedWordCount::main();
}
