//! The failover benchmark's job (see `spate_examples::jobs::bench`); `cargo xtask bench
//! --workloads failover` starts it.
//!
//! `cargo run --release -p spate-examples --bin bench_word_count -- --master local-cluster[2,1] --conf level=MEMORY_ONLY_SER 127.0.0.1 9999`

fn main() {
    spate_examples::setup_allocator();
    spate_examples::jobs::bench::BenchWordCount::main();
}
