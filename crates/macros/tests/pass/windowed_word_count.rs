//! A windowed word count over a socket: the static graph, its text and DOT forms, and the run-time
//! verification of the graph the function builds.
use spate_receivers::Sources;
use spate_streaming::{streaming_job, StorageLevel, StreamingContext};
use std::time::Duration;

#[streaming_job(batch = "1s", checkpoint = "target/pass-windowed-checkpoints", name = "windowed-word-count")]
fn windowed_word_count(ssc: &StreamingContext) {
    let lines = ssc.socket_text_stream("127.0.0.1", 9, StorageLevel::MEMORY_ONLY_SER_2);
    let words = lines.flat_map(|l: String| l.split(' ').map(String::from).collect::<Vec<_>>());
    let pairs = words.map(|w: String| (w, 1i64));
    let counts = pairs.reduce_by_key_and_window_inv(|a, b| a + b, |a, b| a - b, Duration::from_secs(30), Duration::from_secs(10));
    counts.print();
    pairs.reduce_by_key(|a, b| a + b).count().print();
}

fn main() {
    let g = WindowedWordCount::graph();
    assert_eq!(g.name, "windowed-word-count");
    assert_eq!(g.batch_ms, 1000);
    let names: Vec<&str> = g.ops.iter().map(|o| o.name).collect();
    assert_eq!(
        names,
        ["socket_text_stream", "flat_map", "map", "reduce_by_key_and_window_inv", "print", "reduce_by_key", "count", "print"]
    );
    assert_eq!(g.ops[3].parents, &[2]);
    assert_eq!(g.ops[3].window_ms, Some(30_000));
    assert_eq!(g.ops[3].slide_ms, Some(10_000));
    assert_eq!(g.ops[4].slide_ms, Some(10_000), "outputs inherit the window's slide");
    assert_eq!(g.ops[1].input_type, Some("String"));
    assert_eq!(g.ops[1].binding, Some("words"));
    assert!(g.ops[3].location.ends_with(":12:24"), "{}", g.ops[3].location);
    assert!(g.to_text().contains("#3 window reduce_by_key_and_window_inv as counts <- [2] window 30000 ms slide 10000 ms"));
    assert!(g.to_dot().contains("op2 -> op3;"));

    let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
    WindowedWordCount::build(&ssc).unwrap();
    assert_eq!(ssc.graph_fingerprint(), Some(g.fingerprint));
}
