use spate_streaming::{streaming_job, StreamingContext};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

#[streaming_job(batch = "1s")]
fn job(ssc: &StreamingContext) {
    let pairs = ssc.queue_stream::<(String, u64)>(Arc::new(Mutex::new(VecDeque::new())), true);
    let totals = pairs.update_state_by_key(|vs: &[u64], s: Option<u64>| Some(s.unwrap_or(0) + vs.iter().sum::<u64>()));
    totals.print();
}

fn main() {}
