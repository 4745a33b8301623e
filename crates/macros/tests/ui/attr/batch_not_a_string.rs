use spate_streaming::{streaming_job, StreamingContext};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

#[streaming_job(batch = 1000)]
fn job(ssc: &StreamingContext) {
    ssc.queue_stream::<u64>(Arc::new(Mutex::new(VecDeque::new())), true).print();
}

fn main() {}
