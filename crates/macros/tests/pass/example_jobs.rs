//! Every example job compiles under the macro, and builds at run time exactly the graph the macro
//! saw at compile time.
use spate_examples::jobs::{file::FileWordCount, network::NetworkWordCount, stateful::StatefulWordCount, windowed::WindowedWordCount};
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
    assert_eq!(NetworkWordCount::graph().ops.len(), 5);
    assert_eq!(WindowedWordCount::graph().ops.iter().filter(|o| o.kind == "window").count(), 1);
    assert!(StatefulWordCount::graph().checkpoint.is_some());
    let fps = [
        NetworkWordCount::graph().fingerprint,
        WindowedWordCount::graph().fingerprint,
        StatefulWordCount::graph().fingerprint,
        FileWordCount::graph().fingerprint,
    ];
    assert!(fps.iter().enumerate().all(|(i, a)| fps[i + 1..].iter().all(|b| a != b)), "fingerprints differ per graph");
}
