//! RecoverableKafka: a job that resumes from its checkpoint directory after a crash (see
//! `spate_examples::jobs::recoverable`).
//!
//! `cargo run --release -p spate-examples --bin recoverable_kafka -- --checkpoint /tmp/ckpt --conf out=/tmp/out ARGS`

fn main() {
    spate_examples::setup_allocator();
    spate_examples::jobs::recoverable::RecoverableKafka::main();
}
