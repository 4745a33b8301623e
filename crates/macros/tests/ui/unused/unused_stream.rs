use spate_streaming::{streaming_job, StreamingContext};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

#[streaming_job(batch = "1s")]
fn job(ssc: &StreamingContext) {
    let numbers = ssc.queue_stream::<u64>(Arc::new(Mutex::new(VecDeque::new())), true);
    let evens = numbers.filter(|x| x % 2 == 0);
    numbers.print();
}

fn main() {}
