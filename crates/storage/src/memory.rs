//! The memory store: blocks as shared values or serialized bytes, bounded in bytes, with
//! least-recently-used eviction among blocks that have been read, before any block that has not:
//! a block nobody has read yet (received input waiting for its batch, a shuffle output waiting
//! for its reducers) is about to be needed, while a block already read (input a batch has
//! processed, kept for a window) may well never be.

use crate::{BlockId, Codec, Result, StorageLevel};
use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Turns type-erased values back into bytes (captured, monomorphized, when the values are put).
pub(crate) type Encoder = fn(&BlockId, &(dyn Any + Send + Sync), Codec) -> Result<Vec<u8>>;

#[derive(Clone)]
pub(crate) enum Stored {
    /// The values themselves: an `Arc<Vec<T>>` behind `dyn Any`.
    Values {
        values: Arc<dyn Any + Send + Sync>,
        type_name: &'static str,
        encode: Encoder,
    },
    /// A serialized block.
    Bytes(Arc<Vec<u8>>),
}

pub(crate) struct Entry {
    pub(crate) stored: Stored,
    pub(crate) size: u64,
    pub(crate) level: StorageLevel,
    last_use: u64,
    /// Whether it has been read since it was put.
    pub(crate) read: bool,
}

pub(crate) struct MemoryStore {
    entries: HashMap<BlockId, Entry>,
    /// Blocks read at least once, by last use (evicted first, oldest first).
    lru: BTreeMap<u64, BlockId>,
    /// Blocks not read since they were put, by put time (evicted only when no read block is
    /// left).
    unread: BTreeMap<u64, BlockId>,
    used: u64,
    capacity: u64,
    tick: u64,
}

/// What a put did.
pub(crate) enum Insert {
    /// Stored; these blocks were evicted to make room.
    Stored(Vec<(BlockId, Entry)>),
    /// Larger than the whole memory budget: not stored.
    TooLarge,
}

impl MemoryStore {
    pub(crate) fn new(capacity: u64) -> MemoryStore {
        MemoryStore {
            entries: HashMap::new(),
            lru: BTreeMap::new(),
            unread: BTreeMap::new(),
            used: 0,
            capacity,
            tick: 0,
        }
    }

    pub(crate) fn used(&self) -> u64 {
        self.used
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    pub(crate) fn size_of(&self, id: &BlockId) -> Option<u64> {
        self.entries.get(id).map(|e| e.size)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn contains(&self, id: &BlockId) -> bool {
        self.entries.contains_key(id)
    }

    pub(crate) fn ids(&self) -> Vec<BlockId> {
        self.entries.keys().cloned().collect()
    }

    /// Looks a block up and marks it most recently used.
    pub(crate) fn get(&mut self, id: &BlockId) -> Option<Stored> {
        self.tick += 1;
        let tick = self.tick;
        let entry = self.entries.get_mut(id)?;
        if entry.read {
            self.lru.remove(&entry.last_use);
        } else {
            self.unread.remove(&entry.last_use);
        }
        entry.last_use = tick;
        entry.read = true;
        self.lru.insert(tick, id.clone());
        Some(entry.stored.clone())
    }

    pub(crate) fn remove(&mut self, id: &BlockId) -> Option<Entry> {
        let entry = self.entries.remove(id)?;
        if entry.read {
            self.lru.remove(&entry.last_use);
        } else {
            self.unread.remove(&entry.last_use);
        }
        self.used -= entry.size;
        Some(entry)
    }

    /// Inserts a block, evicting blocks until it fits: read ones least recently used first, then
    /// unread ones oldest first.
    pub(crate) fn insert(
        &mut self,
        id: BlockId,
        stored: Stored,
        size: u64,
        level: StorageLevel,
    ) -> Insert {
        self.remove(&id);
        if size > self.capacity {
            return Insert::TooLarge;
        }
        let mut evicted = Vec::new();
        while self.used + size > self.capacity {
            let (_, victim) = self
                .lru
                .pop_first()
                .or_else(|| self.unread.pop_first())
                .expect("used > 0 implies an entry");
            let entry = self.entries.remove(&victim).expect("lru and entries agree");
            self.used -= entry.size;
            evicted.push((victim, entry));
        }
        self.tick += 1;
        self.unread.insert(self.tick, id.clone());
        self.entries.insert(
            id,
            Entry {
                stored,
                size,
                level,
                last_use: self.tick,
                read: false,
            },
        );
        self.used += size;
        Insert::Stored(evicted)
    }
}
