//! Behaviour of the `BlockManager`: round trips at every storage level, LRU eviction, spills,
//! the disk store's files and their corruption, replication through a `Transport`, and
//! concurrent use.
//!
//! Every expectation is computed by hand from the block format: a serialized block is a 13-byte
//! header (magic, codec, length, CRC) followed by the bincode payload, and `vec![x; 86]` of `u8`
//! encodes as one length byte plus 86 value bytes — so [`block`] is exactly 100 bytes serialized.

use spate_storage::{
    BlockId, BlockManager, BlockManagerConfig, Codec, Error, PeerId, PutOutcome, Result,
    StorageLevel, Transport, deserialize_block, serialize_block,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tempfile::TempDir;

/// The serialized size of [`block`], in bytes: 13 header + 1 length + 86 values.
const BLOCK: u64 = 100;

/// A block of 86 one-byte values: exactly [`BLOCK`] bytes serialized without compression.
fn block(fill: u8) -> Vec<u8> {
    vec![fill; 86]
}

fn named(name: &str) -> BlockId {
    BlockId::Named(name.to_string())
}

fn rdd(rdd: u64, partition: u32) -> BlockId {
    BlockId::Rdd { rdd, partition }
}

/// A block manager whose scratch directory lives under a temporary directory the test owns.
fn manager_with(memory_bytes: u64, codec: Codec) -> (TempDir, BlockManager) {
    let parent = TempDir::new().unwrap();
    let bm = BlockManager::new(BlockManagerConfig {
        memory_bytes,
        scratch_parent: parent.path().to_path_buf(),
        codec,
    })
    .unwrap();
    (parent, bm)
}

fn manager(memory_bytes: u64) -> (TempDir, BlockManager) {
    manager_with(memory_bytes, Codec::None)
}

fn block_file(bm: &BlockManager, id: &BlockId) -> PathBuf {
    bm.scratch_dir().join(id.file_name())
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

fn word_counts() -> Vec<(String, u64)> {
    ["spark", "streaming", "in", "rust", "spate"]
        .iter()
        .zip(1u64..)
        .map(|(w, n)| (w.to_string(), n * 7))
        .collect()
}

#[test]
fn the_test_block_is_exactly_100_bytes() {
    let bytes = serialize_block(&named("a"), &block(1), Codec::None).unwrap();
    assert_eq!(bytes.len() as u64, BLOCK);
    assert_eq!(&bytes[..4], b"SPB1");
}

#[test]
fn every_level_but_none_round_trips() {
    for (name, level) in StorageLevel::ALL.into_iter().filter(|(_, l)| l.is_valid()) {
        let (_dir, bm) = manager(1 << 20);
        let id = rdd(1, 0);
        let values = Arc::new(word_counts());
        let outcome = bm.put_values(id.clone(), values.clone(), level).unwrap();
        let expected = if level.use_memory {
            PutOutcome::Memory
        } else {
            PutOutcome::Disk
        };
        assert_eq!(outcome, expected, "{name}");

        let back = bm.get_values::<(String, u64)>(&id).unwrap().expect(name);
        assert_eq!(*back, *values, "{name}");
        // Deserialized memory levels hand back the Arc that was put; every other level decodes a copy.
        let same_arc = level.use_memory && level.deserialized;
        assert_eq!(Arc::ptr_eq(&back, &values), same_arc, "{name}");

        let bytes = bm.get_bytes(&id).unwrap().expect(name);
        assert_eq!(
            deserialize_block::<(String, u64)>(&id, &bytes).unwrap(),
            *values,
            "{name}"
        );

        let stats = bm.stats();
        assert_eq!((stats.hits, stats.misses), (2, 0), "{name}");
        assert_eq!(stats.memory_blocks, usize::from(level.use_memory), "{name}");
        assert_eq!(stats.disk_blocks, usize::from(!level.use_memory), "{name}");
        assert_eq!(
            stats.replicas_skipped,
            u64::from(level.replication - 1),
            "{name}"
        );
        assert_eq!(bm.block_ids(), vec![id], "{name}");
    }
}

#[test]
fn level_none_stores_nothing_and_counts_nothing() {
    let (_dir, bm) = manager(1 << 20);
    let id = named("nothing");
    assert_eq!(
        bm.put_values(id.clone(), vec![1u32, 2, 3], StorageLevel::NONE)
            .unwrap(),
        PutOutcome::NotStored
    );
    assert!(!bm.contains(&id));
    assert_eq!(bm.get_values::<u32>(&id).unwrap(), None);
    let stats = bm.stats();
    assert_eq!(
        (
            stats.puts_not_stored,
            stats.misses,
            stats.memory_blocks,
            stats.disk_blocks
        ),
        (0, 1, 0, 0)
    );
}

#[test]
fn blocks_nobody_has_read_are_evicted_after_every_block_that_was_read() {
    let (_dir, bm) = manager(3 * BLOCK);
    let [a, b, c, d, e] = ["A", "B", "C", "D", "E"].map(named);
    for (i, id) in [&a, &b, &c].into_iter().enumerate() {
        bm.put_values(id.clone(), block(i as u8), StorageLevel::MEMORY_ONLY_SER)
            .unwrap();
    }
    // B has been read (say, a processed batch's input); A and C not yet (input waiting for its
    // batch): D pushes B out although A is older.
    assert_eq!(*bm.get_values::<u8>(&b).unwrap().unwrap(), block(1));
    bm.put_values(d.clone(), block(3), StorageLevel::MEMORY_ONLY_SER)
        .unwrap();
    assert!(!bm.contains(&b));
    assert!(bm.contains(&a) && bm.contains(&c) && bm.contains(&d));
    // With only unread blocks left, the oldest goes.
    bm.put_values(e.clone(), block(4), StorageLevel::MEMORY_ONLY_SER)
        .unwrap();
    assert!(!bm.contains(&a));
    assert!(bm.contains(&c) && bm.contains(&d) && bm.contains(&e));
    assert_eq!(bm.stats().evictions_dropped, 2);
    // B had been read, A not.
    assert_eq!(bm.stats().evictions_dropped_unread, 1);
}

#[test]
fn the_least_recently_used_block_is_evicted_first() {
    let (_dir, bm) = manager(3 * BLOCK);
    let [a, b, c, d] = ["A", "B", "C", "D"].map(named);
    for (i, id) in [&a, &b, &c].into_iter().enumerate() {
        let outcome = bm
            .put_values(id.clone(), block(i as u8), StorageLevel::MEMORY_ONLY_SER)
            .unwrap();
        assert_eq!(outcome, PutOutcome::Memory);
    }
    assert_eq!(bm.stats().memory_bytes, 3 * BLOCK);

    // Read all three, then A again: B becomes the least recently used.
    for (id, fill) in [(&a, 0), (&b, 1), (&c, 2), (&a, 0)] {
        assert_eq!(*bm.get_values::<u8>(id).unwrap().unwrap(), block(fill));
    }
    assert_eq!(
        bm.put_values(d.clone(), block(3), StorageLevel::MEMORY_ONLY_SER)
            .unwrap(),
        PutOutcome::Memory
    );

    assert!(!bm.contains(&b));
    assert_eq!(bm.get_values::<u8>(&b).unwrap(), None);
    for (id, fill) in [(&a, 0), (&c, 2), (&d, 3)] {
        assert_eq!(
            *bm.get_values::<u8>(id).unwrap().unwrap(),
            block(fill),
            "{id}"
        );
    }
    let stats = bm.stats();
    assert_eq!(stats.memory_bytes, 3 * BLOCK);
    assert_eq!(stats.memory_capacity, 3 * BLOCK);
    assert_eq!(stats.memory_blocks, 3);
    assert_eq!(stats.evictions_dropped, 1);
    assert_eq!(stats.evictions_spilled, 0);
    assert_eq!((stats.hits, stats.misses), (7, 1));
    assert_eq!((stats.disk_blocks, stats.disk_bytes), (0, 0));
    assert_eq!(bm.block_ids(), vec![a, c, d]);
}

#[test]
fn an_evicted_memory_and_disk_ser_block_is_spilled_and_still_readable() {
    let (_dir, bm) = manager(2 * BLOCK);
    let [a, b, c] = ["A", "B", "C"].map(named);
    for (i, id) in [&a, &b, &c].into_iter().enumerate() {
        let outcome = bm
            .put_values(
                id.clone(),
                block(i as u8),
                StorageLevel::MEMORY_AND_DISK_SER,
            )
            .unwrap();
        assert_eq!(outcome, PutOutcome::Memory, "{id}");
    }
    let stats = bm.stats();
    assert_eq!(stats.evictions_spilled, 1);
    assert_eq!(stats.evictions_dropped, 0);
    assert_eq!((stats.memory_blocks, stats.memory_bytes), (2, 2 * BLOCK));
    assert_eq!((stats.disk_blocks, stats.disk_bytes), (1, BLOCK));
    assert_eq!(std::fs::metadata(block_file(&bm, &a)).unwrap().len(), BLOCK);

    // A was the least recently used; it is read back from disk.
    assert_eq!(*bm.get_values::<u8>(&a).unwrap().unwrap(), block(0));
    assert_eq!(
        bm.get_bytes(&a).unwrap().unwrap(),
        serialize_block(&a, &block(0), Codec::None).unwrap()
    );
    assert_eq!(bm.block_ids(), vec![a, b, c]);
    assert_eq!(bm.stats().misses, 0);
}

#[test]
fn an_evicted_memory_and_disk_block_is_serialized_when_spilled() {
    // Deserialized sizes are estimates: measure one on a probe manager, then size the budget so
    // that two such blocks fit and three do not.
    let one = {
        let (_dir, probe) = manager(1 << 20);
        probe
            .put_values(named("probe"), word_counts(), StorageLevel::MEMORY_AND_DISK)
            .unwrap();
        probe.stats().memory_bytes
    };
    assert!(one > 0);
    let (_dir, bm) = manager(2 * one + one / 2);
    let ids = ["A", "B", "C"].map(named);
    let values: Vec<Arc<Vec<(String, u64)>>> = (0..3u64)
        .map(|i| Arc::new(word_counts().into_iter().map(|(w, n)| (w, n + i)).collect()))
        .collect();
    for (id, v) in ids.iter().zip(&values) {
        assert_eq!(
            bm.put_values(id.clone(), v.clone(), StorageLevel::MEMORY_AND_DISK)
                .unwrap(),
            PutOutcome::Memory
        );
    }
    let serialized_a = serialize_block(&ids[0], &values[0], Codec::None).unwrap();
    let stats = bm.stats();
    assert_eq!(stats.evictions_spilled, 1);
    assert_eq!((stats.memory_blocks, stats.memory_bytes), (2, 2 * one));
    assert_eq!(
        (stats.disk_blocks, stats.disk_bytes),
        (1, serialized_a.len() as u64)
    );
    assert_eq!(
        std::fs::read(block_file(&bm, &ids[0])).unwrap(),
        serialized_a
    );

    let a = bm.get_values::<(String, u64)>(&ids[0]).unwrap().unwrap();
    assert_eq!(*a, *values[0]);
    assert!(
        !Arc::ptr_eq(&a, &values[0]),
        "a spilled block is decoded from disk"
    );
    // The ones still in memory are the very values put.
    assert!(Arc::ptr_eq(
        &bm.get_values::<(String, u64)>(&ids[2]).unwrap().unwrap(),
        &values[2]
    ));
}

#[test]
fn a_block_larger_than_the_budget_goes_to_disk_or_nowhere() {
    let (_dir, bm) = manager(BLOCK - 1);
    let big = named("big");

    assert_eq!(
        bm.put_values(big.clone(), block(9), StorageLevel::MEMORY_AND_DISK)
            .unwrap(),
        PutOutcome::Disk
    );
    assert_eq!(*bm.get_values::<u8>(&big).unwrap().unwrap(), block(9));
    assert_eq!(
        bm.put_values(
            named("big-ser"),
            block(8),
            StorageLevel::MEMORY_AND_DISK_SER
        )
        .unwrap(),
        PutOutcome::Disk
    );
    let stats = bm.stats();
    assert_eq!((stats.memory_blocks, stats.memory_bytes), (0, 0));
    assert_eq!((stats.disk_blocks, stats.disk_bytes), (2, 2 * BLOCK));
    assert_eq!(stats.puts_not_stored, 0);

    for (n, level) in [StorageLevel::MEMORY_ONLY, StorageLevel::MEMORY_ONLY_SER]
        .into_iter()
        .enumerate()
    {
        let id = named(&format!("lost-{n}"));
        assert_eq!(
            bm.put_values(id.clone(), block(7), level).unwrap(),
            PutOutcome::NotStored,
            "{level}"
        );
        assert!(!bm.contains(&id));
        assert_eq!(bm.get_values::<u8>(&id).unwrap(), None);
        assert_eq!(bm.stats().puts_not_stored, n as u64 + 1);
    }
    let bytes = serialize_block(&named("bytes"), &block(6), Codec::None).unwrap();
    assert_eq!(
        bm.put_bytes(named("bytes"), bytes, StorageLevel::MEMORY_ONLY_SER)
            .unwrap(),
        PutOutcome::NotStored
    );
    let stats = bm.stats();
    assert_eq!(stats.puts_not_stored, 3);
    assert_eq!(stats.memory_bytes, 0);
    assert_eq!(stats.evictions_dropped + stats.evictions_spilled, 0);
}

#[test]
fn disk_only_blocks_are_files_in_the_scratch_dir_removed_with_their_block() {
    let (parent, bm) = manager(1 << 20);
    let scratch = bm.scratch_dir().to_path_buf();
    assert_eq!(scratch.parent(), Some(parent.path()));
    assert!(scratch.is_dir());

    let id = rdd(3, 1);
    assert_eq!(
        bm.put_values(id.clone(), block(5), StorageLevel::DISK_ONLY)
            .unwrap(),
        PutOutcome::Disk
    );
    let file = block_file(&bm, &id);
    assert_eq!(file, scratch.join("rdd_3_1"));
    assert_eq!(
        std::fs::read(&file).unwrap(),
        serialize_block(&id, &block(5), Codec::None).unwrap()
    );
    assert_eq!(entries(&scratch), 1, "no temporary file is left behind");
    assert_eq!(bm.stats().memory_blocks, 0);

    assert!(bm.remove(&id));
    assert!(!file.exists());
    assert!(!bm.remove(&id));
    assert_eq!(bm.get_values::<u8>(&id).unwrap(), None);
    let stats = bm.stats();
    assert_eq!((stats.disk_blocks, stats.disk_bytes), (0, 0));
}

#[test]
fn shutdown_deletes_the_scratch_dir() {
    let (parent, bm) = manager(1 << 20);
    let scratch = bm.scratch_dir().to_path_buf();
    bm.put_values(rdd(1, 0), block(1), StorageLevel::DISK_ONLY)
        .unwrap();
    bm.put_values(rdd(1, 1), block(2), StorageLevel::MEMORY_ONLY_SER)
        .unwrap();

    bm.shutdown();
    assert!(!scratch.exists());
    assert_eq!(entries(parent.path()), 0);
    let stats = bm.stats();
    assert_eq!(
        (
            stats.memory_blocks,
            stats.memory_bytes,
            stats.disk_blocks,
            stats.disk_bytes
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(bm.get_values::<u8>(&rdd(1, 0)).unwrap(), None);
    assert_eq!(bm.block_ids(), vec![]);
    // Using a shut-down manager's disk is an error, not a panic.
    let err = bm
        .put_values(rdd(1, 2), block(3), StorageLevel::DISK_ONLY)
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    drop(bm);
    assert!(parent.path().is_dir());
}

#[test]
fn dropping_the_manager_deletes_the_scratch_dir() {
    let (parent, bm) = manager(BLOCK);
    let scratch = bm.scratch_dir().to_path_buf();
    bm.put_values(rdd(1, 0), block(1), StorageLevel::DISK_ONLY)
        .unwrap();
    bm.put_values(rdd(1, 1), block(2), StorageLevel::MEMORY_AND_DISK_SER)
        .unwrap();
    bm.put_values(rdd(1, 2), block(3), StorageLevel::MEMORY_AND_DISK_SER)
        .unwrap(); // spills rdd_1_1
    assert_eq!(entries(&scratch), 2);

    drop(bm);
    assert!(!scratch.exists());
    assert_eq!(entries(parent.path()), 0);
}

/// Asserts that reading `id` fails as corrupt, with a message naming the block.
fn assert_corrupt(bm: &BlockManager, id: &BlockId, what: &str) {
    match bm.get_values::<u64>(id) {
        Err(err) if matches!(&err, Error::Corrupt { block, .. } if block == id) => {
            assert!(err.to_string().contains(&id.to_string()), "{what}: {err}");
        }
        other => panic!("{what}: expected a corrupt-block error, got {other:?}"),
    }
}

#[test]
fn a_mangled_disk_block_is_a_corrupt_error_naming_the_block() {
    for codec in [Codec::None, Codec::Lz4] {
        let (_dir, bm) = manager_with(1 << 20, codec);
        let id = rdd(7, 3);
        let values: Vec<u64> = vec![1, 2, 3, 1000, 1 << 40, 5, 5, 5, 5, 5, 5, 5, 5];
        bm.put_values(id.clone(), values.clone(), StorageLevel::DISK_ONLY)
            .unwrap();
        let file = block_file(&bm, &id);
        let good = std::fs::read(&file).unwrap();
        assert_eq!(
            good[4],
            if codec == Codec::Lz4 { 1 } else { 0 },
            "codec byte"
        );

        // Every single flipped byte, with a few different masks.
        for i in 0..good.len() {
            for mask in [0x01, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] ^= mask;
                std::fs::write(&file, &bad).unwrap();
                assert_corrupt(&bm, &id, &format!("{codec:?}: byte {i} ^ {mask:#x}"));
            }
        }
        // Every truncation, down to an empty file.
        for len in 0..good.len() {
            std::fs::write(&file, &good[..len]).unwrap();
            assert_corrupt(&bm, &id, &format!("{codec:?}: truncated to {len}"));
        }
        // Trailing garbage.
        std::fs::write(&file, [&good[..], b"xx"].concat()).unwrap();
        assert_corrupt(&bm, &id, &format!("{codec:?}: two bytes appended"));

        // Restored, it reads back again.
        std::fs::write(&file, &good).unwrap();
        assert_eq!(*bm.get_values::<u64>(&id).unwrap().unwrap(), values);
        // Deleted behind the manager's back, it is simply gone.
        std::fs::remove_file(&file).unwrap();
        assert_eq!(bm.get_values::<u64>(&id).unwrap(), None);
        assert!(!bm.contains(&id));
    }
}

#[test]
fn a_spilled_block_mangled_on_disk_is_corrupt() {
    let (_dir, bm) = manager(BLOCK);
    let (a, b) = (rdd(4, 0), rdd(4, 1));
    bm.put_values(a.clone(), block(1), StorageLevel::MEMORY_AND_DISK_SER)
        .unwrap();
    bm.put_values(b, block(2), StorageLevel::MEMORY_AND_DISK_SER)
        .unwrap();
    assert_eq!(bm.stats().evictions_spilled, 1);

    let file = block_file(&bm, &a);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x10;
    std::fs::write(&file, &bytes).unwrap();
    let err = bm.get_values::<u8>(&a).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { block, .. } if *block == a),
        "{err}"
    );
    assert!(err.to_string().contains("rdd_4_0"), "{err}");
}

#[test]
fn reading_values_as_the_wrong_type_is_a_type_mismatch() {
    let (_dir, bm) = manager(1 << 20);
    for level in [StorageLevel::MEMORY_ONLY, StorageLevel::MEMORY_AND_DISK] {
        let id = named(&format!("words-{level}"));
        bm.put_values(id.clone(), word_counts(), level).unwrap();
        let err = bm.get_values::<u64>(&id).unwrap_err();
        match &err {
            Error::TypeMismatch {
                block,
                stored,
                requested,
            } => {
                assert_eq!(block, &id);
                assert_eq!(*stored, std::any::type_name::<(String, u64)>());
                assert_eq!(*requested, "u64");
            }
            other => panic!("expected a type mismatch, got {other:?}"),
        }
        assert!(err.to_string().contains(&id.to_string()), "{err}");
        // The block is unharmed.
        assert_eq!(
            *bm.get_values::<(String, u64)>(&id).unwrap().unwrap(),
            word_counts()
        );
    }
}

#[test]
fn put_bytes_and_get_bytes_round_trip_serialized_blocks() {
    for codec in [Codec::None, Codec::Lz4] {
        let (_dir, bm) = manager(1 << 20);
        for (name, level) in StorageLevel::ALL.into_iter().filter(|(_, l)| l.is_valid()) {
            let id = named(&format!("{name}-{codec:?}"));
            let bytes = serialize_block(&id, &word_counts(), codec).unwrap();
            let expected = if level.use_memory {
                PutOutcome::Memory
            } else {
                PutOutcome::Disk
            };
            assert_eq!(
                bm.put_bytes(id.clone(), bytes.clone(), level).unwrap(),
                expected,
                "{name}"
            );
            assert_eq!(bm.get_bytes(&id).unwrap().as_ref(), Some(&bytes), "{name}");
            // Bytes are kept as bytes even at deserialized levels; readers decode them.
            assert_eq!(
                *bm.get_values::<(String, u64)>(&id).unwrap().unwrap(),
                word_counts(),
                "{name}"
            );
        }
    }

    // get_bytes of a block of values serializes it with the manager's codec.
    let (_dir, bm) = manager_with(1 << 20, Codec::Lz4);
    let id = named("values");
    bm.put_values(id.clone(), word_counts(), StorageLevel::MEMORY_ONLY)
        .unwrap();
    let bytes = bm.get_bytes(&id).unwrap().unwrap();
    assert_eq!(
        bytes,
        serialize_block(&id, &word_counts(), Codec::Lz4).unwrap()
    );
    assert_eq!(
        deserialize_block::<(String, u64)>(&id, &bytes).unwrap(),
        word_counts()
    );
    assert_eq!(bm.get_bytes(&named("missing")).unwrap(), None);
    assert_eq!(bm.stats().misses, 1);
}

#[test]
fn remove_where_removes_exactly_the_matching_blocks() {
    let (_dir, bm) = manager(1 << 20);
    let levels = [
        StorageLevel::MEMORY_ONLY_SER,
        StorageLevel::DISK_ONLY,
        StorageLevel::MEMORY_AND_DISK,
    ];
    for p in 0..3 {
        bm.put_values(rdd(1, p), block(p as u8), levels[p as usize])
            .unwrap();
        bm.put_values(
            rdd(2, p),
            block(10 + p as u8),
            StorageLevel::MEMORY_ONLY_SER,
        )
        .unwrap();
    }
    let input = BlockId::Input {
        stream: 0,
        unique: 1,
    };
    bm.put_values(input.clone(), block(20), StorageLevel::DISK_ONLY)
        .unwrap();
    let shuffle = BlockId::Shuffle {
        shuffle: 1,
        map: 0,
        reduce: 0,
    };
    bm.put_values(shuffle.clone(), block(21), StorageLevel::DISK_ONLY)
        .unwrap();

    assert_eq!(bm.remove_where(|id| id.rdd_id() == Some(1)), 3);
    assert_eq!(
        bm.block_ids(),
        vec![
            rdd(2, 0),
            rdd(2, 1),
            rdd(2, 2),
            shuffle.clone(),
            input.clone()
        ]
    );
    for p in 0..3 {
        assert!(!bm.contains(&rdd(1, p)));
        assert_eq!(
            *bm.get_values::<u8>(&rdd(2, p)).unwrap().unwrap(),
            block(10 + p as u8)
        );
    }
    assert_eq!(bm.remove_where(|id| id.rdd_id() == Some(1)), 0);
    assert_eq!(bm.remove_where(|id| id.shuffle_id() == Some(1)), 1);
    let stats = bm.stats();
    assert_eq!((stats.memory_blocks, stats.disk_blocks), (3, 1));
    assert_eq!(stats.memory_bytes, 3 * BLOCK);
    assert_eq!(stats.disk_bytes, BLOCK);
}

#[test]
fn replacing_a_block_does_not_double_count() {
    let (_dir, bm) = manager(3 * BLOCK);
    let id = named("A");
    bm.put_values(id.clone(), block(1), StorageLevel::MEMORY_ONLY_SER)
        .unwrap();
    bm.put_values(id.clone(), block(2), StorageLevel::MEMORY_ONLY_SER)
        .unwrap();
    let stats = bm.stats();
    assert_eq!((stats.memory_blocks, stats.memory_bytes), (1, BLOCK));
    assert_eq!(*bm.get_values::<u8>(&id).unwrap().unwrap(), block(2));

    // A full budget of replacements evicts nothing: the old copy's room is reused.
    bm.put_values(named("B"), block(3), StorageLevel::MEMORY_ONLY_SER)
        .unwrap();
    bm.put_values(named("C"), block(4), StorageLevel::MEMORY_ONLY_SER)
        .unwrap();
    for fill in 5..10 {
        bm.put_values(id.clone(), block(fill), StorageLevel::MEMORY_ONLY_SER)
            .unwrap();
    }
    let stats = bm.stats();
    assert_eq!(
        (
            stats.memory_blocks,
            stats.memory_bytes,
            stats.evictions_dropped
        ),
        (3, 3 * BLOCK, 0)
    );

    // A different size replaces the old size: 6 values more is 6 bytes more.
    bm.remove(&named("B"));
    bm.put_values(id.clone(), vec![1u8; 92], StorageLevel::MEMORY_ONLY_SER)
        .unwrap();
    assert_eq!(bm.stats().memory_bytes, 2 * BLOCK + 6);
}

#[test]
fn replacing_a_block_at_another_level_leaves_one_copy() {
    let (_dir, bm) = manager(3 * BLOCK);
    let id = named("A");

    // Memory → disk: the memory copy goes.
    bm.put_values(id.clone(), block(1), StorageLevel::MEMORY_ONLY_SER)
        .unwrap();
    assert_eq!(
        bm.put_values(id.clone(), block(2), StorageLevel::DISK_ONLY)
            .unwrap(),
        PutOutcome::Disk
    );
    let stats = bm.stats();
    assert_eq!(
        (stats.memory_blocks, stats.memory_bytes, stats.disk_blocks),
        (0, 0, 1)
    );
    assert_eq!(*bm.get_values::<u8>(&id).unwrap().unwrap(), block(2));

    // Disk → memory: the file goes.
    bm.put_values(id.clone(), block(3), StorageLevel::MEMORY_ONLY)
        .unwrap();
    let stats = bm.stats();
    assert_eq!(
        (stats.memory_blocks, stats.disk_blocks, stats.disk_bytes),
        (1, 0, 0)
    );
    assert!(!block_file(&bm, &id).exists());
    assert_eq!(*bm.get_values::<u8>(&id).unwrap().unwrap(), block(3));

    // Deserialized memory → serialized bytes on disk, through put_bytes.
    let bytes = serialize_block(&id, &block(4), Codec::None).unwrap();
    assert_eq!(
        bm.put_bytes(id.clone(), bytes, StorageLevel::DISK_ONLY)
            .unwrap(),
        PutOutcome::Disk
    );
    let stats = bm.stats();
    assert_eq!(
        (stats.memory_blocks, stats.memory_bytes, stats.disk_blocks),
        (0, 0, 1)
    );
    assert_eq!(*bm.get_values::<u8>(&id).unwrap().unwrap(), block(4));
}

#[test]
fn named_blocks_with_similar_names_get_distinct_files() {
    let (_dir, bm) = manager(1 << 20);
    let names = ["a/b", "a_b", "a b", "a:b", "named_a_b", "ä"];
    for (i, name) in names.iter().enumerate() {
        bm.put_values(named(name), block(i as u8), StorageLevel::DISK_ONLY)
            .unwrap();
    }
    for (i, name) in names.iter().enumerate() {
        let file_name = named(name).file_name();
        assert!(
            file_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)),
            "{name:?} → {file_name:?}"
        );
        assert_eq!(
            *bm.get_values::<u8>(&named(name)).unwrap().unwrap(),
            block(i as u8),
            "{name:?}"
        );
    }
    assert_eq!(entries(bm.scratch_dir()), names.len());
    assert_eq!(bm.stats().disk_blocks, names.len());
}

/// Block managers of other "executors" in this process, reached through the `Transport` trait.
struct InProcessPeers {
    peers: BTreeMap<PeerId, BlockManager>,
    /// Peers listed first but gone (an executor lost a moment ago): replicating to one fails.
    gone: Vec<PeerId>,
    _dirs: Vec<TempDir>,
    /// Every replicate call: peer, block and the level asked for.
    calls: Mutex<Vec<(PeerId, BlockId, StorageLevel)>>,
}

impl InProcessPeers {
    fn new(names: &[&str]) -> Arc<InProcessPeers> {
        InProcessPeers::with_gone(names, &[])
    }

    fn with_gone(names: &[&str], gone: &[&str]) -> Arc<InProcessPeers> {
        let (mut peers, mut dirs) = (BTreeMap::new(), Vec::new());
        for name in names {
            let (dir, bm) = manager(1 << 20);
            peers.insert(name.to_string(), bm);
            dirs.push(dir);
        }
        Arc::new(InProcessPeers {
            peers,
            gone: gone.iter().map(|g| g.to_string()).collect(),
            _dirs: dirs,
            calls: Mutex::new(Vec::new()),
        })
    }
}

impl Transport for InProcessPeers {
    fn peers(&self) -> Vec<PeerId> {
        self.gone.iter().chain(self.peers.keys()).cloned().collect()
    }

    fn replicate(
        &self,
        peer: &PeerId,
        id: &BlockId,
        bytes: &[u8],
        level: StorageLevel,
    ) -> Result<()> {
        self.calls
            .lock()
            .unwrap()
            .push((peer.clone(), id.clone(), level));
        let bm = self.peers.get(peer).ok_or_else(|| Error::Replication {
            block: id.clone(),
            peer: peer.clone(),
            reason: "no such peer".into(),
        })?;
        bm.put_bytes(id.clone(), bytes.to_vec(), level).map(drop)
    }
}

/// A transport whose one peer always fails with the given error.
struct FailingPeer(fn(&PeerId, &BlockId) -> Error);

impl Transport for FailingPeer {
    fn peers(&self) -> Vec<PeerId> {
        vec!["exec-2".to_string()]
    }

    fn replicate(
        &self,
        peer: &PeerId,
        id: &BlockId,
        _bytes: &[u8],
        _level: StorageLevel,
    ) -> Result<()> {
        Err((self.0)(peer, id))
    }
}

/// A transport that knows no peers.
struct Alone;

impl Transport for Alone {
    fn peers(&self) -> Vec<PeerId> {
        Vec::new()
    }

    fn replicate(&self, _: &PeerId, _: &BlockId, _: &[u8], _: StorageLevel) -> Result<()> {
        panic!("replicate called without peers")
    }
}

const REPLICATED: [StorageLevel; 5] = [
    StorageLevel::MEMORY_ONLY_2,
    StorageLevel::MEMORY_ONLY_SER_2,
    StorageLevel::MEMORY_AND_DISK_2,
    StorageLevel::MEMORY_AND_DISK_SER_2,
    StorageLevel::DISK_ONLY_2,
];

#[test]
fn without_a_transport_two_copy_levels_keep_one_and_count_the_skipped_replica() {
    let (_dir, bm) = manager(1 << 20);
    for (i, level) in REPLICATED.into_iter().enumerate() {
        bm.put_values(rdd(1, i as u32), block(i as u8), level)
            .unwrap();
        assert_eq!(bm.stats().replicas_skipped, i as u64 + 1, "{level}");
    }
    let bytes = serialize_block(&named("b"), &block(9), Codec::None).unwrap();
    bm.put_bytes(named("b"), bytes, StorageLevel::MEMORY_ONLY_SER_2)
        .unwrap();
    let stats = bm.stats();
    assert_eq!((stats.replicas_skipped, stats.replicas_stored), (6, 0));
    assert_eq!(bm.block_ids().len(), 6);
    // One-copy levels ask for no replica.
    bm.put_values(named("one"), block(0), StorageLevel::MEMORY_ONLY_SER)
        .unwrap();
    assert_eq!(bm.stats().replicas_skipped, 6);

    // A transport without peers is the same as none.
    bm.set_transport(Arc::new(Alone));
    bm.put_values(named("alone"), block(0), StorageLevel::MEMORY_ONLY_SER_2)
        .unwrap();
    assert_eq!(
        (bm.stats().replicas_skipped, bm.stats().replicas_stored),
        (7, 0)
    );
}

#[test]
fn two_copy_levels_store_a_replica_on_a_peer() {
    let (_dir, bm) = manager(1 << 20);
    let cluster = InProcessPeers::new(&["exec-2"]);
    bm.set_transport(cluster.clone());
    let peer = &cluster.peers["exec-2"];

    for (i, level) in REPLICATED.into_iter().enumerate() {
        let id = rdd(5, i as u32);
        let values: Vec<(String, u64)> = word_counts()
            .into_iter()
            .map(|(w, n)| (w, n + i as u64))
            .collect();
        let expected = if level.use_memory {
            PutOutcome::Memory
        } else {
            PutOutcome::Disk
        };
        assert_eq!(
            bm.put_values(id.clone(), values.clone(), level).unwrap(),
            expected,
            "{level}"
        );
        assert_eq!(
            *bm.get_values::<(String, u64)>(&id).unwrap().unwrap(),
            values,
            "{level}"
        );
        assert_eq!(
            *peer.get_values::<(String, u64)>(&id).unwrap().unwrap(),
            values,
            "{level} on the peer"
        );
        assert_eq!(bm.stats().replicas_stored, i as u64 + 1, "{level}");

        // The peer is asked for a single copy at the same level.
        let single = StorageLevel {
            replication: 1,
            ..level
        };
        assert_eq!(
            cluster.calls.lock().unwrap().last(),
            Some(&("exec-2".to_string(), id, single))
        );
    }
    let peer_stats = peer.stats();
    assert_eq!(
        peer_stats.replicas_skipped, 0,
        "the peer does not replicate further"
    );
    assert_eq!((peer_stats.memory_blocks, peer_stats.disk_blocks), (4, 1));
    assert_eq!(bm.stats().replicas_skipped, 0);

    // One-copy levels do not replicate.
    bm.put_values(named("local"), block(1), StorageLevel::MEMORY_ONLY_SER)
        .unwrap();
    assert!(!peer.contains(&named("local")));

    // put_bytes replicates the very bytes it was given.
    let id = named("bytes");
    let bytes = serialize_block(&id, &block(3), Codec::Lz4).unwrap();
    bm.put_bytes(id.clone(), bytes.clone(), StorageLevel::MEMORY_ONLY_SER_2)
        .unwrap();
    assert_eq!(peer.get_bytes(&id).unwrap(), Some(bytes));
    assert_eq!(bm.stats().replicas_stored, 6);
    assert_eq!(cluster.calls.lock().unwrap().len(), 6);
}

#[test]
fn with_several_peers_a_replica_is_made_exactly_once() {
    let (_dir, bm) = manager(1 << 20);
    let cluster = InProcessPeers::new(&["exec-2", "exec-3", "exec-4"]);
    bm.set_transport(cluster.clone());
    for p in 0..12 {
        let id = rdd(6, p);
        bm.put_values(id.clone(), block(p as u8), StorageLevel::MEMORY_ONLY_SER_2)
            .unwrap();
        let holders: Vec<&PeerId> = cluster
            .peers
            .iter()
            .filter(|(_, peer)| peer.contains(&id))
            .map(|(n, _)| n)
            .collect();
        assert_eq!(holders.len(), 1, "{id}: {holders:?}");
        assert_eq!(
            *cluster.peers[holders[0]]
                .get_values::<u8>(&id)
                .unwrap()
                .unwrap(),
            block(p as u8)
        );
    }
    assert_eq!(bm.stats().replicas_stored, 12);
    let per_peer: usize = cluster
        .peers
        .values()
        .map(|p| p.stats().memory_blocks)
        .sum();
    assert_eq!(per_peer, 12);
}

#[test]
fn a_peer_that_fails_is_skipped_for_another() {
    // "exec-0" is listed but gone.
    let peers = InProcessPeers::with_gone(&["exec-1", "exec-2"], &["exec-0"]);
    let (_dir, bm) = manager(1 << 20);
    bm.set_transport(peers.clone());
    for i in 0..20 {
        bm.put_values(rdd(3, i), block(i as u8), StorageLevel::MEMORY_ONLY_SER_2)
            .unwrap();
        let copies = peers
            .peers
            .values()
            .filter(|p| p.contains(&rdd(3, i)))
            .count();
        assert_eq!(copies, 1, "block {i}");
    }
    let calls = peers.calls.lock().unwrap();
    // Some placements started at the ghost, and went on to a live peer.
    assert!(calls.iter().any(|(p, _, _)| p == "exec-0"));
    assert_eq!(bm.stats().replicas_stored, 20);
}

#[test]
fn a_failed_replication_fails_the_put_naming_block_and_peer() {
    let refused: fn(&PeerId, &BlockId) -> Error = |peer, id| Error::Replication {
        block: id.clone(),
        peer: peer.clone(),
        reason: "connection refused".into(),
    };
    let peer_disk_full: fn(&PeerId, &BlockId) -> Error = |_, id| Error::Io {
        block: id.clone(),
        path: PathBuf::from("/peer/scratch/block"),
        source: std::io::Error::other("no space left on device"),
    };
    for (what, fail) in [("refused", refused), ("peer disk full", peer_disk_full)] {
        let (_dir, bm) = manager(1 << 20);
        bm.set_transport(Arc::new(FailingPeer(fail)));
        let id = rdd(8, 0);

        let err = bm
            .put_values(id.clone(), block(1), StorageLevel::MEMORY_ONLY_SER_2)
            .unwrap_err();
        match &err {
            Error::Replication { block, peer, .. } => {
                assert_eq!(block, &id, "{what}");
                assert_eq!(peer, "exec-2", "{what}");
            }
            other => panic!("{what}: expected a replication error, got {other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains("rdd_8_0") && message.contains("exec-2"),
            "{what}: {message}"
        );

        let bytes = serialize_block(&id, &block(2), Codec::None).unwrap();
        let err = bm
            .put_bytes(id.clone(), bytes, StorageLevel::DISK_ONLY_2)
            .unwrap_err();
        assert!(matches!(err, Error::Replication { .. }), "{what}: {err:?}");

        // The local copy was stored before replication was attempted, and is kept.
        assert_eq!(*bm.get_values::<u8>(&id).unwrap().unwrap(), block(2));
        assert_eq!(
            (bm.stats().replicas_stored, bm.stats().replicas_skipped),
            (0, 0)
        );
        // One-copy levels never touch the transport.
        bm.put_values(named("one"), block(3), StorageLevel::MEMORY_ONLY_SER)
            .unwrap();
    }
}

#[test]
fn public_handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<BlockManager>();
    assert_send_sync::<Arc<BlockManager>>();
    assert_send_sync::<Arc<dyn Transport>>();
    assert_send_sync::<Error>();
    assert_send_sync::<BlockId>();
    assert_send_sync::<StorageLevel>();
}

/// The values of a block written in the concurrency test: `[key, writer, n, n derived values]`,
/// so that a reader can tell a whole block from a torn or mixed-up one.
fn stamped(key: u64, writer: u64, n: u64) -> Vec<u64> {
    let mut v = vec![key, writer, n];
    v.extend((0..n).map(|k| key.wrapping_mul(1_000_003) ^ (writer << 32) ^ k));
    v
}

fn check_stamped(key: u64, v: &[u64]) {
    assert!(v.len() >= 3, "block {key} too short: {v:?}");
    assert_eq!(v[0], key, "block {key} holds another block's values");
    assert_eq!(*v, stamped(key, v[1], v[2])[..], "block {key} is torn");
}

#[test]
fn concurrent_puts_and_gets_respect_the_budget_and_keep_blocks_whole() {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 300;
    const SHARED: u64 = 3;
    let levels = [
        StorageLevel::MEMORY_ONLY_SER,
        StorageLevel::MEMORY_AND_DISK_SER,
        StorageLevel::MEMORY_ONLY,
        StorageLevel::MEMORY_AND_DISK,
        StorageLevel::DISK_ONLY,
    ];
    let (_dir, bm) = manager(1500);
    let key_of = |id: &BlockId| match id {
        BlockId::Rdd { rdd, partition } => rdd * 100 + u64::from(*partition),
        other => panic!("unexpected block {other}"),
    };
    let own = |t: u64, slot: u64| rdd(t + 1, slot as u32);
    let shared = |slot: u64| rdd(99, slot as u32);

    std::thread::scope(|s| {
        for t in 0..THREADS {
            let bm = &bm;
            s.spawn(move || {
                for i in 0..ROUNDS {
                    let n = 4 + (i * 7 + t) % 40;
                    let mine = own(t, i % 6);
                    let level = levels[(i % 5) as usize];
                    bm.put_values(mine.clone(), stamped(key_of(&mine), t, n), level)
                        .unwrap();
                    let common = shared(i % SHARED);
                    let level = levels[((i + t) % 5) as usize];
                    bm.put_values(common.clone(), stamped(key_of(&common), t, n / 2), level)
                        .unwrap();

                    for id in [own(t, (i + 3) % 6), shared((i + 1) % SHARED), mine] {
                        if let Some(v) = bm.get_values::<u64>(&id).unwrap() {
                            check_stamped(key_of(&id), &v);
                        }
                    }
                    if i % 17 == t {
                        bm.remove(&shared(i % SHARED));
                    }
                    let stats = bm.stats();
                    assert!(stats.memory_bytes <= stats.memory_capacity, "{stats:?}");
                }
            });
        }
    });

    let stats = bm.stats();
    assert!(stats.memory_bytes <= stats.memory_capacity, "{stats:?}");
    assert!(
        stats.evictions_dropped > 0 && stats.evictions_spilled > 0,
        "the budget was not exercised: {stats:?}"
    );
    let ids = bm.block_ids();
    assert!(!ids.is_empty());
    for id in &ids {
        let v = bm
            .get_values::<u64>(id)
            .unwrap()
            .unwrap_or_else(|| panic!("{id} is listed but unreadable"));
        check_stamped(key_of(id), &v);
        // An own slot has one writer, so a surviving copy must be its last write: round
        // `ROUNDS - 6 + slot`, with that round's length.
        if let BlockId::Rdd { rdd, partition } = *id
            && rdd <= THREADS
        {
            let (t, last) = (rdd - 1, ROUNDS - 6 + u64::from(partition));
            assert_eq!(v[1], t, "{id} was written by another thread");
            assert_eq!(v[2], 4 + (last * 7 + t) % 40, "{id} is a stale copy");
        }
    }
    // Nothing leaked: removing every block brings the accounting back to zero.
    assert_eq!(bm.remove_where(|_| true), ids.len());
    let stats = bm.stats();
    assert_eq!(
        (
            stats.memory_bytes,
            stats.memory_blocks,
            stats.disk_bytes,
            stats.disk_blocks
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(
        entries(bm.scratch_dir()),
        0,
        "stray files in the scratch dir"
    );
}

#[test]
fn a_removed_blocks_buffer_is_reused_for_the_next_block() {
    let (_dir, bm) = manager(64 << 20);
    let bytes = vec![7u8; 2 << 20];
    let address = bytes.as_ptr();
    bm.put_bytes(named("big"), bytes, StorageLevel::MEMORY_ONLY_SER)
        .unwrap();
    // Still stored: a new buffer.
    let fresh = bm.buffer(1 << 20);
    assert_ne!(fresh.as_ptr(), address);
    assert!(bm.remove(&named("big")));
    let reused = bm.buffer(1 << 20);
    assert_eq!(reused.as_ptr(), address);
    assert!(reused.is_empty() && reused.capacity() >= 2 << 20);
    // Taken once: the next is new.
    let next = bm.buffer(1 << 20);
    assert_ne!(next.as_ptr(), address);
}

#[test]
fn the_kept_buffers_and_the_stored_blocks_stay_within_the_memory_budget() {
    // 10 MiB of budget.
    let (_dir, bm) = manager(10 << 20);
    let put = |name: &str, len: usize, capacity: usize| {
        let mut bytes = Vec::with_capacity(capacity);
        bytes.resize(len, 1u8);
        let address = bytes.as_ptr();
        bm.put_bytes(named(name), bytes, StorageLevel::MEMORY_ONLY_SER)
            .unwrap();
        address
    };
    let mib = 1 << 20;
    let a = put("a", 3 * mib, 3 * mib);
    let b = put("b", 3 * mib, 3 * mib);
    put("c", 3 * mib, 3 * mib);
    // 6 MiB stored + 3 kept, then 3 stored + 6 kept: both kept.
    assert!(bm.remove(&named("a")));
    assert!(bm.remove(&named("b")));
    // Storing 3 MiB more would make 12 MiB: one kept buffer is freed.
    put("d", 3 * mib, 3 * mib);
    // A block of 1 MiB in a buffer of 4 MiB: 7 MiB stored, 3 kept. Removed, its buffer would
    // make 6 + 3 + 4 = 13 MiB: not kept.
    put("w", mib, 4 * mib);
    assert!(bm.remove(&named("w")));
    // Not for a block of less than half its size: that would hold 3 MiB under a small block.
    assert_eq!(bm.buffer(mib).capacity(), mib);
    let kept = bm.buffer(2 * mib);
    assert!(kept.as_ptr() == a || kept.as_ptr() == b);
    assert!(kept.is_empty() && kept.capacity() >= 3 * mib);
    // Nothing else was kept: the next are new, of the size asked for (their addresses may be
    // the freed buffers', reused by the allocator).
    assert_eq!(bm.buffer(2 * mib).capacity(), 2 * mib);
    assert_eq!(bm.buffer(3 * mib).capacity(), 3 * mib);
}

#[test]
fn a_full_pool_of_small_buffers_makes_way_for_a_larger_one() {
    let (_dir, bm) = manager(512 << 20);
    let mib = 1 << 20;
    let put = |name: &str, len: usize, capacity: usize| {
        let mut bytes = Vec::with_capacity(capacity);
        bytes.resize(len, 1u8);
        bm.put_bytes(named(name), bytes, StorageLevel::MEMORY_ONLY_SER)
            .unwrap();
    };
    // More blocks of 1 MiB than the pool keeps buffers (64), all removed: the pool is full.
    for i in 0..80 {
        put(&format!("small-{i}"), mib, mib + 512);
    }
    for i in 0..80 {
        assert!(bm.remove(&named(&format!("small-{i}"))));
    }
    // A larger block's buffer (of a capacity no new buffer gets) takes a small one's place.
    put("large", 3 * mib, 3 * mib + 4096);
    assert!(bm.remove(&named("large")));
    let kept = bm.buffer(3 * mib);
    assert_eq!(kept.capacity(), 3 * mib + 4096);
    // Taken: the next is new, of the size asked for.
    assert_eq!(bm.buffer(3 * mib).capacity(), 3 * mib);
    // The other small ones are still kept for small blocks.
    assert_eq!(bm.buffer(mib).capacity(), mib + 512);
}

#[test]
fn a_block_serialized_into_a_kept_buffer_holds_only_its_own_bytes() {
    let (_dir, bm) = manager(64 << 20);
    bm.put_bytes(
        named("old"),
        vec![0xAB; 3 << 20],
        StorageLevel::MEMORY_ONLY_SER,
    )
    .unwrap();
    assert!(bm.remove(&named("old")));
    // Serialized into the old block's buffer (2 MiB fits in its 3).
    let values: Vec<u64> = (0..(2 << 20) / 9).collect();
    bm.put_values(named("new"), values.clone(), StorageLevel::MEMORY_ONLY_SER)
        .unwrap();
    let bytes = bm.get_bytes(&named("new")).unwrap().unwrap();
    assert_eq!(
        bytes,
        serialize_block(&named("new"), &values, Codec::None).unwrap()
    );
    assert_eq!(
        *bm.get_values::<u64>(&named("new")).unwrap().unwrap(),
        values
    );
}
