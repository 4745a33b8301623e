//! Block serialization and block manager benchmarks: `cargo bench -p spate-storage --bench serialize`.
//!
//! Two blocks of 10,000 records each — `(String, u64)` word counts and ~97-byte text lines — are
//! serialized and deserialized with every codec; throughput is in bytes of the uncompressed
//! serialized block, so that codecs compare on the same amount of data. A put + get round trip
//! through the `BlockManager` compares the deserialized and serialized memory levels.

// Allocate as the example binaries do (crates/examples/src/lib.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use spate_storage::{
    BlockId, BlockManager, Codec, StorageLevel, deserialize_block, serialize_block,
};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

const RECORDS: usize = 10_000;

/// A deterministic pseudo-random word generator (an LCG), so runs compare like for like.
struct Words(u64);

impl Words {
    fn next_word(&mut self) -> String {
        const SYLLABLES: [&str; 16] = [
            "spa", "te", "rdd", "dis", "tri", "bu", "ted", "str", "eam", "ba", "tch", "win", "dow",
            "ka", "fka", "lo",
        ];
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let mut x = self.0 >> 33;
        let mut word = String::new();
        for _ in 0..1 + (x % 3) {
            x /= 3;
            word.push_str(SYLLABLES[(x % 16) as usize]);
            x /= 16;
        }
        word
    }
}

fn word_counts() -> Vec<(String, u64)> {
    let mut words = Words(1);
    (0..RECORDS as u64)
        .map(|i| (words.next_word(), i % 977 + 1))
        .collect()
}

/// Text lines of 97 bytes (words separated by spaces, cut or padded to length).
fn lines() -> Vec<String> {
    let mut words = Words(2);
    (0..RECORDS)
        .map(|_| {
            let mut line = String::with_capacity(110);
            while line.len() < 97 {
                line.push_str(&words.next_word());
                line.push(' ');
            }
            line.truncate(97);
            line
        })
        .collect()
}

fn codecs() -> [(&'static str, Codec); 2] {
    [("none", Codec::None), ("lz4", Codec::Lz4)]
}

fn bench_block<T>(c: &mut Criterion, name: &str, values: &[T])
where
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let id = BlockId::Rdd {
        rdd: 1,
        partition: 0,
    };
    let plain = serialize_block(&id, values, Codec::None).unwrap().len();
    let lz4 = serialize_block(&id, values, Codec::Lz4).unwrap().len();
    eprintln!("{name}: {RECORDS} records, {plain} bytes serialized, {lz4} bytes with lz4");

    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(plain as u64));
    for (codec_name, codec) in codecs() {
        group.bench_function(BenchmarkId::new("serialize", codec_name), |b| {
            b.iter(|| serialize_block(&id, black_box(values), codec).unwrap())
        });
        let bytes = serialize_block(&id, values, codec).unwrap();
        group.bench_function(BenchmarkId::new("deserialize", codec_name), |b| {
            b.iter(|| deserialize_block::<T>(&id, black_box(&bytes)).unwrap())
        });
    }
    group.finish();
}

fn serialize(c: &mut Criterion) {
    bench_block(c, "word_counts", &word_counts());
    bench_block(c, "lines", &lines());
}

fn put_get(c: &mut Criterion) {
    let values = Arc::new(word_counts());
    let mut group = c.benchmark_group("put_get_word_counts");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for level in [StorageLevel::MEMORY_ONLY, StorageLevel::MEMORY_ONLY_SER] {
        let bm = BlockManager::local(64 << 20).unwrap();
        let id = BlockId::Rdd {
            rdd: 1,
            partition: 0,
        };
        group.bench_function(level.to_string(), |b| {
            b.iter(|| {
                bm.put_values(id.clone(), values.clone(), level).unwrap();
                bm.get_values::<(String, u64)>(&id).unwrap().unwrap()
            })
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = serialize, put_get
}
criterion_main!(benches);
