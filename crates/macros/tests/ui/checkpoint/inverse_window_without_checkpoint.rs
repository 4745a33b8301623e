use spate_streaming::{streaming_job, StreamingContext};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[streaming_job(batch = "1s")]
fn job(ssc: &StreamingContext) {
    let pairs = ssc.queue_stream::<(String, i64)>(Arc::new(Mutex::new(VecDeque::new())), true);
    pairs.reduce_by_key_and_window_inv(|a, b| a + b, |a, b| a - b, Duration::from_secs(30), Duration::from_secs(10)).print();
}

fn main() {}
