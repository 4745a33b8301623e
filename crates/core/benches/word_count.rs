//! Criterion benchmark: word count (`flat_map` → `map` → `reduce_by_key`) over an in-memory corpus,
//! with the words as `String`s, as `CompactString`s and as `Word`s.

// Allocate as the example binaries do (crates/examples/src/lib.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spate_core::text::{CompactString, Word, split_owned_as};
use spate_core::{Context, Key};

/// A deterministic corpus: `lines` lines of 16 words from a 10,000-word vocabulary, skewed so a
/// few words are frequent (roughly Zipf-like).
fn corpus(lines: usize) -> Vec<String> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..lines)
        .map(|_| {
            (0..16)
                .map(|_| {
                    let u = (next() % 1_000_000) as f64 / 1_000_000.0;
                    let rank = (10_000f64.powf(u) as u64).min(9_999);
                    format!("w{rank}")
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The number of distinct words of `lines`, with the words as `W`s.
fn count_words<W: Key + for<'a> From<&'a str>>(ctx: &Context, lines: &[String]) -> u64 {
    ctx.parallelize(lines.to_vec(), 4)
        .flat_map(|l: String| split_owned_as::<W>(l, ' '))
        .map(|w| (w, 1u64))
        .reduce_by_key(|a, b| a + b)
        .count()
        .unwrap()
}

fn word_count(c: &mut Criterion) {
    let ctx = Context::new("local[2]").unwrap();
    let lines = corpus(100_000);
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let mut group = c.benchmark_group("word_count");
    group.sample_size(10);
    group.throughput(Throughput::Elements(lines.len() as u64));
    // Words as `String`s (`split_owned` is `split_owned_as::<String>`); as `CompactString`s
    // (inline up to 24 bytes: no allocation per word, and the table compares keys without
    // following a pointer); as `Word`s (inline up to 23 bytes, hashed and compared as three
    // integers).
    group.bench_function(format!("100k_lines_{}MB_local2", bytes >> 20), |b| {
        b.iter(|| count_words::<String>(&ctx, &lines))
    });
    group.bench_function(
        format!("100k_lines_{}MB_local2_compact", bytes >> 20),
        |b| b.iter(|| count_words::<CompactString>(&ctx, &lines)),
    );
    group.bench_function(format!("100k_lines_{}MB_local2_word", bytes >> 20), |b| {
        b.iter(|| count_words::<Word>(&ctx, &lines))
    });
    group.finish();
}

criterion_group!(benches, word_count);
criterion_main!(benches);
