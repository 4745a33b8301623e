//! Criterion benchmark: the shuffle on its own — map outputs bucketed by a hash partitioner,
//! written, fetched and merged — for a combining shuffle (`reduce_by_key`, few records leave a
//! map task), a non-combining one (`group_by_key`, every record crosses), and a sort.

// Allocate as the example binaries do (crates/examples/src/lib.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spate_core::Context;

/// `n` pairs over `keys` distinct keys, spread deterministically.
fn pairs(n: u64, keys: u64) -> Vec<(u64, u64)> {
    (0..n)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % keys, i))
        .collect()
}

fn shuffle(c: &mut Criterion) {
    let ctx = Context::new("local[2]").unwrap();
    const N: u64 = 1_000_000;
    let mut group = c.benchmark_group("shuffle");
    group.sample_size(10);
    group.throughput(Throughput::Elements(N));
    for keys in [1_000u64, 100_000] {
        let data = pairs(N, keys);
        group.bench_function(format!("reduce_by_key_1M_pairs_{keys}_keys_8x8"), |b| {
            b.iter(|| {
                ctx.parallelize(data.clone(), 8)
                    .reduce_by_key_n(|a, b| a.wrapping_add(b), 8)
                    .count()
                    .unwrap()
            })
        });
    }
    let data = pairs(N, 100_000);
    group.bench_function("group_by_key_1M_pairs_100k_keys_8x8", |b| {
        b.iter(|| {
            ctx.parallelize(data.clone(), 8)
                .group_by_key_n(8)
                .count()
                .unwrap()
        })
    });
    group.bench_function("sort_by_key_1M_pairs_8x8", |b| {
        b.iter(|| {
            ctx.parallelize(data.clone(), 8)
                .sort_by_key(true)
                .count()
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, shuffle);
criterion_main!(benches);
