use spate_streaming::{streaming_job, StreamingContext};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

#[streaming_job(batch = "1s")]
fn job(ssc: &StreamingContext) {
    let a = ssc.queue_stream::<u64>(Arc::new(Mutex::new(VecDeque::new())), true);
    let b = ssc.queue_stream::<u64>(Arc::new(Mutex::new(VecDeque::new())), true);
    a.join(&b).print();
}

fn main() {}
