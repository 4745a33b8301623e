use spate_streaming::{streaming_job, StreamingContext};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[streaming_job(batch = "10s")]
fn job(ssc: &StreamingContext) {
    let numbers = ssc.queue_stream::<u64>(Arc::new(Mutex::new(VecDeque::new())), true);
    numbers.window(Duration::from_secs(45), Duration::from_secs(10)).print();
}

fn main() {}
