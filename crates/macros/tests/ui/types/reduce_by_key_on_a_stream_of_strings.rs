use spate_streaming::{streaming_job, StreamingContext};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

#[streaming_job(batch = "1s")]
fn job(ssc: &StreamingContext) {
    let words = ssc.queue_stream::<String>(Arc::new(Mutex::new(VecDeque::new())), true);
    words.reduce_by_key(|a, b| a + b).print();
}

fn main() {}
