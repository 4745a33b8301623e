use spate_streaming::{streaming_job, StreamingContext};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[streaming_job(batch = "10s", mystery = "x")]
fn job(ssc: &StreamingContext) {
    let pairs = ssc.queue_stream::<(String, u64)>(Arc::new(Mutex::new(VecDeque::new())), true);
    let windowed = pairs.window(Duration::from_secs(45), Duration::from_secs(15));
    let state = pairs.update_state_by_key(|vs: &[u64], s: Option<u64>| Some(s.unwrap_or(0) + vs.len() as u64));
    windowed.print();
}

fn main() {}
