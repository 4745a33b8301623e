//! Every example job compiles under the macro, and builds at run time exactly the graph the macro
//! saw at compile time.
use spate_examples::jobs::{bench::BenchWordCount, file::FileWordCount, kafka::KafkaWordCount, network::NetworkWordCount, stateful::StatefulWordCount, windowed::WindowedWordCount};
use spate_streaming::StreamingContext;
use std::time::Duration;

fn ssc() -> StreamingContext {
    let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
    ssc.set_args(vec!["127.0.0.1".into(), "9".into()]);
    ssc
}

fn main() {
    NetworkWordCount::build(&ssc()).unwrap();
    WindowedWordCount::build(&ssc()).unwrap();
    StatefulWordCount::build(&ssc()).unwrap();
    FileWordCount::build(&ssc()).unwrap();
    BenchWordCount::build(&ssc()).unwrap();
    // Building the Kafka job needs a broker (a `latest` direct stream looks its offsets up when
    // it is made): here only its static graph is checked; tests/kafka.rs runs it for real.
    let kafka = KafkaWordCount::graph();
    assert_eq!(kafka.ops.iter().map(|o| o.name).collect::<Vec<_>>(), ["direct_kafka_stream", "flat_map", "map", "reduce_by_key", "print", "foreach_rdd"]);
    assert_eq!(NetworkWordCount::graph().ops.len(), 5);
    assert_eq!(WindowedWordCount::graph().ops.iter().filter(|o| o.kind == "window").count(), 1);
    assert!(StatefulWordCount::graph().checkpoint.is_some());
    let fps = [
        NetworkWordCount::graph().fingerprint,
        WindowedWordCount::graph().fingerprint,
        StatefulWordCount::graph().fingerprint,
        FileWordCount::graph().fingerprint,
        KafkaWordCount::graph().fingerprint,
    ];
    assert!(fps.iter().enumerate().all(|(i, a)| fps[i + 1..].iter().all(|b| a != b)), "fingerprints differ per graph");
}
