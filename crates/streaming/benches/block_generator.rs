//! Criterion benchmark: the receiving path on its own — a receiver's `store_many` calls through
//! the bounded queue and the block generator into blocks in the block manager — at the guide's
//! default level for received data (`MEMORY_ONLY_SER_2`, serialized) and deserialized
//! (`MEMORY_ONLY`), with and without the write-ahead log (appended and fsynced per block).
//!
//! Each iteration stores 100,000 lines of ~97 bytes in chunks of 4,096 (as the socket receiver
//! hands them over) and waits, with `store_reliably`, until the last block is stored.

// Allocate as the example binaries do (crates/examples/src/lib.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spate_streaming::{
    Clock, ManualClock, Receiver, ReceiverConfig, ReceiverContext, ReceiverError, StorageLevel,
    StreamingContext,
};
use std::sync::mpsc;
use std::time::Duration;

const LINES: usize = 100_000;

struct Bench {
    work: mpsc::Receiver<Vec<Vec<String>>>,
    done: mpsc::Sender<()>,
}

impl Receiver<String> for Bench {
    fn receive(&mut self, ctx: &ReceiverContext<String>) -> Result<(), ReceiverError> {
        while !ctx.is_stopped() {
            if let Ok(chunks) = self.work.recv_timeout(Duration::from_millis(5)) {
                for c in chunks {
                    ctx.store_many(c);
                }
                ctx.store_reliably(Vec::new())?;
                let _ = self.done.send(());
            }
        }
        Ok(())
    }
}

fn lines() -> Vec<String> {
    (0..LINES)
        .map(|i| {
            (0..16)
                .map(|j| format!("w{}", (i * 31 + j * 7) % 10_000))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn block_generator(c: &mut Criterion) {
    let data = lines();
    let mut group = c.benchmark_group("block_generator");
    group.sample_size(10);
    group.throughput(Throughput::Elements(LINES as u64));
    for (name, level, wal) in [
        ("MEMORY_ONLY_SER_2", StorageLevel::MEMORY_ONLY_SER_2, false),
        ("MEMORY_ONLY", StorageLevel::MEMORY_ONLY, false),
        (
            "MEMORY_ONLY_SER_2_with_wal",
            StorageLevel::MEMORY_ONLY_SER_2,
            true,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
        let clock = ManualClock::new(0);
        ssc.set_clock(Clock::Manual(clock.clone())).unwrap();
        ssc.checkpoint(dir.path()).unwrap();
        ssc.set_receiver_config(ReceiverConfig {
            write_ahead_log: wal,
            queue_capacity: 4 * LINES,
            ..ReceiverConfig::default()
        });
        let (work_tx, work) = mpsc::channel();
        let (done, done_rx) = mpsc::channel();
        ssc.receiver_stream_with_level(Bench { work, done }, level)
            .count()
            .foreach_rdd(|_, _| Ok(()));
        ssc.start().unwrap();
        group.bench_function(format!("100k_lines_{name}"), |b| {
            b.iter(|| {
                let chunks: Vec<Vec<String>> = data.chunks(4096).map(<[String]>::to_vec).collect();
                work_tx.send(chunks).unwrap();
                done_rx.recv().unwrap();
                // A batch takes (and frees) the blocks, so memory stays flat across iterations.
                clock.advance(Duration::from_secs(1));
                assert!(ssc.wait_for_batch(clock.time(), Duration::from_secs(60)));
            })
        });
        ssc.stop(false);
    }
    group.finish();
}

criterion_group!(benches, block_generator);
criterion_main!(benches);
