use spate_streaming::{streaming_job, StreamingContext};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[streaming_job(batch = "500ms")]
fn job(ssc: &StreamingContext) {
    let pairs = ssc.queue_stream::<(String, u64)>(Arc::new(Mutex::new(VecDeque::new())), true);
    pairs.reduce_by_key_and_window(|a, b| a + b, Duration::from_millis(1200), Duration::from_millis(500)).print();
}

fn main() {}
