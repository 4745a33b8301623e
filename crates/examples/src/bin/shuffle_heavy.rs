//! ShuffleHeavy: a batch program (five shuffles) that runs on a cluster; see
//! `spate_examples::batch::shuffle_heavy`.
//!
//! `cargo run --release -p spate-examples --bin shuffle_heavy -- --master local-cluster[3,1] /tmp/out 3`

fn main() {
    spate_examples::setup_allocator();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let program = spate_examples::batch::shuffle_heavy::program();
    program.main(spate_examples::batch::shuffle_heavy::run);
}
