use spate_streaming::{streaming_job, StreamingContext};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[streaming_job(batch = "1s")]
fn job(ssc: &StreamingContext) {
    let a = ssc.queue_stream::<(String, u64)>(Arc::new(Mutex::new(VecDeque::new())), true);
    let b = ssc.queue_stream::<(String, u64)>(Arc::new(Mutex::new(VecDeque::new())), true);
    let slow = b.window(Duration::from_secs(10), Duration::from_secs(5));
    a.join(&slow).print();
}

fn main() {}
