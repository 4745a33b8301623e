//! The `BlockManager`: puts, gets and removes blocks at a storage level, with a bounded memory
//! store, a disk store for spills and disk levels, statistics, and optional replication.

use crate::disk::DiskStore;
use crate::memory::{Encoder, Insert, MemoryStore, Stored};
use crate::serializer::serialize_block_in;
use crate::sync::{Arc, AtomicU64, Mutex, Ordering};
use crate::{BlockId, Codec, Data, Error, PeerId, Result, StorageLevel, Transport};
use crate::{deserialize_block, serialize_block};
use std::any::Any;
use std::path::{Path, PathBuf};

/// Settings of a [`BlockManager`].
#[derive(Clone, Debug)]
pub struct BlockManagerConfig {
    /// The memory budget in bytes, shared by all in-memory blocks.
    pub memory_bytes: u64,
    /// Where the scratch directory for disk blocks is created (the system temp dir by default).
    pub scratch_parent: PathBuf,
    /// Compression of serialized blocks.
    pub codec: Codec,
}

impl Default for BlockManagerConfig {
    fn default() -> Self {
        BlockManagerConfig {
            memory_bytes: 512 << 20,
            scratch_parent: std::env::temp_dir(),
            codec: Codec::None,
        }
    }
}

/// Where a put ended up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// In the memory store.
    Memory,
    /// On disk (a disk level, or a memory-and-disk level whose block did not fit in memory).
    Disk,
    /// Nowhere: a memory-only block larger than the whole memory budget. The caller still holds the
    /// values and must recompute them when they are needed again.
    NotStored,
}

/// A snapshot of the block manager's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// Bytes held by the memory store (values are estimated, bytes exact).
    pub memory_bytes: u64,
    /// The memory budget.
    pub memory_capacity: u64,
    /// Blocks in the memory store.
    pub memory_blocks: usize,
    /// Bytes on disk.
    pub disk_bytes: u64,
    /// Blocks on disk.
    pub disk_blocks: usize,
    /// Gets that found their block.
    pub hits: u64,
    /// Gets that found nothing.
    pub misses: u64,
    /// Blocks evicted from memory and dropped (memory-only levels).
    pub evictions_dropped: u64,
    /// Of `evictions_dropped`, blocks nobody had read since they were put: received input no
    /// batch had processed yet, a shuffle output no reducer had fetched. The others had been
    /// read (input a batch had processed, kept for a window) and may not be needed again.
    /// Unread blocks are evicted only when no read block is left to evict.
    pub evictions_dropped_unread: u64,
    /// Blocks evicted from memory and written to disk (memory-and-disk levels).
    pub evictions_spilled: u64,
    /// Puts that could not be stored anywhere (see [`PutOutcome::NotStored`]).
    pub puts_not_stored: u64,
    /// Replicas asked for by `_2` levels that were not made because there is no peer.
    pub replicas_skipped: u64,
    /// Replicas stored on peers.
    pub replicas_stored: u64,
    /// Blocks missing here that were read from their replica on a peer.
    pub replica_reads: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions_dropped: AtomicU64,
    evictions_dropped_unread: AtomicU64,
    evictions_spilled: AtomicU64,
    puts_not_stored: AtomicU64,
    replicas_skipped: AtomicU64,
    replicas_stored: AtomicU64,
    replica_reads: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Stores blocks for one process.
///
/// All methods take `&self`; the block manager is shared behind an `Arc` by every task thread.
/// See the [crate docs](crate) for the storage model.
pub struct BlockManager {
    memory: Mutex<MemoryStore>,
    disk: DiskStore,
    codec: Codec,
    counters: Counters,
    transport: Mutex<Option<Arc<dyn Transport>>>,
    /// The buffers of removed serialized blocks, for the blocks serialized or built next (see
    /// [`BlockManager::buffer`]); at most `RECYCLED` of them, and with the memory store's blocks
    /// within the memory budget.
    recycled: Mutex<Vec<Vec<u8>>>,
    memory_bytes: u64,
}

/// Whether a pool of kept buffers, holding at most `max`, has room for one of `capacity` bytes:
/// it has while it is not full, and a full pool makes room by giving up its smallest buffer if
/// that one is smaller (so the small buffers of a slow phase do not keep larger ones out for
/// good). Shared by the block manager's pool and a receiver's pool of chunk buffers.
pub fn make_room(pool: &mut Vec<Vec<u8>>, max: usize, capacity: usize) -> bool {
    if pool.len() < max {
        return true;
    }
    match (0..pool.len()).min_by_key(|&i| pool[i].capacity()) {
        Some(smallest) if pool[smallest].capacity() < capacity => {
            pool.swap_remove(smallest);
            true
        }
        _ => false,
    }
}

/// How many buffers of removed blocks are kept for reuse, at most (the memory budget bounds
/// their bytes). A batch's blocks come back together when it is removed (two dozen of 8 MiB at
/// 2M lines/s, and the smaller blocks cut at batch boundaries among them): with 32 places, a word
/// count at 2M lines/s turned 23 buffers away while it made 137 blocks in fresh memory.
const RECYCLED: usize = 64;

/// Buffers smaller than this are left to the allocator (which reuses small memory well).
const RECYCLED_MIN: usize = 1 << 20;

fn encode_values<T: Data>(
    id: &BlockId,
    values: &(dyn Any + Send + Sync),
    codec: Codec,
) -> Result<Vec<u8>> {
    let values = values
        .downcast_ref::<Vec<T>>()
        .expect("encoder matches the stored type");
    serialize_block(id, values, codec)
}

/// Estimates the in-memory size of a list of values from a sample of their serialized sizes.
fn estimate_size<T: Data>(values: &[T]) -> u64 {
    let n = values.len();
    let base = std::mem::size_of_val(values) as u64 + 64;
    if n == 0 {
        return base;
    }
    let step = n.div_ceil(16);
    let (mut bytes, mut sampled) = (0u64, 0u64);
    for v in values.iter().step_by(step) {
        // Counted, not written: a sampled value may be large (a key's list of values).
        let mut size = bincode::enc::write::SizeWriter::default();
        if bincode::serde::encode_into_writer(v, &mut size, bincode::config::standard()).is_ok() {
            bytes += size.bytes_written as u64;
        }
        sampled += 1;
    }
    base + bytes * n as u64 / sampled
}

impl BlockManager {
    /// A block manager with the given settings; creates its scratch directory.
    pub fn new(config: BlockManagerConfig) -> Result<BlockManager> {
        Ok(BlockManager {
            memory: Mutex::new(MemoryStore::new(config.memory_bytes)),
            disk: DiskStore::new(&config.scratch_parent)?,
            codec: config.codec,
            counters: Counters::default(),
            transport: Mutex::new(None),
            recycled: Mutex::new(Vec::new()),
            memory_bytes: config.memory_bytes,
        })
    }

    /// An empty buffer with room for at least `capacity` bytes, for a block about to be
    /// built: the buffer of a removed block when one is kept. A received block of 20 MB in fresh
    /// memory cost the kernel 5,000 zeroed pages, every block: at 2.5M lines/s that was a sixth
    /// of all CPU time, in the block generator's thread.
    pub fn buffer(&self, capacity: usize) -> Vec<u8> {
        let mut pool = self.recycled.lock();
        // The smallest that fits and is at most twice the size asked for: growing a smaller one
        // would copy all its old bytes (the allocator does not know they are not needed), and a
        // much larger one would sit under a small block, which the memory store counts at its
        // length, for as long as that block lives.
        let fits = (0..pool.len())
            .filter(|&i| (capacity..=capacity.saturating_mul(2)).contains(&pool[i].capacity()))
            .min_by_key(|&i| pool[i].capacity());
        match fits {
            Some(i) => {
                let mut b = pool.swap_remove(i);
                b.clear();
                b
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// Keeps the buffer of a removed block for [`buffer`](Self::buffer), if nothing else holds
    /// it and the pool has room: the kept buffers and the blocks the memory store holds
    /// (`store_used` bytes) stay within the memory budget, so keeping never takes memory the
    /// store could not have used itself.
    fn recycle(&self, stored: Stored, store_used: u64) {
        let Stored::Bytes(bytes) = stored else {
            return;
        };
        let Ok(b) = Arc::try_unwrap(bytes) else {
            return;
        };
        if b.capacity() < RECYCLED_MIN {
            return;
        }
        let mut pool = self.recycled.lock();
        // A full pool gives up its smallest buffer for a larger one. Otherwise the buffers kept
        // while blocks were growing (a receiver's first blocks, sized from the ones before) fill
        // it for good, none fits the larger blocks that follow, and every one of those is made
        // in fresh memory: with word count at 1M lines/s, 179 of 246 blocks were, with the pool
        // full of 5 MB buffers and every request for 8 MiB.
        if !make_room(&mut pool, RECYCLED, b.capacity()) {
            return;
        }
        let held: usize = pool.iter().map(Vec::capacity).sum();
        if store_used + (held + b.capacity()) as u64 <= self.memory_bytes {
            pool.push(b);
        }
    }

    /// Frees kept buffers, largest first, until they and the store's `store_used` bytes fit in
    /// the memory budget again (the store grew since they were kept).
    fn trim_kept(&self, store_used: u64) {
        let mut pool = self.recycled.lock();
        let mut held: usize = pool.iter().map(Vec::capacity).sum();
        while store_used + held as u64 > self.memory_bytes {
            let Some(largest) = (0..pool.len()).max_by_key(|&i| pool[i].capacity()) else {
                break;
            };
            held -= pool.swap_remove(largest).capacity();
        }
    }

    /// A block manager with `memory_bytes` of memory and default settings otherwise.
    pub fn local(memory_bytes: u64) -> Result<BlockManager> {
        BlockManager::new(BlockManagerConfig {
            memory_bytes,
            ..Default::default()
        })
    }

    /// Installs the transport used for `_2` storage levels.
    pub fn set_transport(&self, transport: Arc<dyn Transport>) {
        *self.transport.lock() = Some(transport);
    }

    /// The scratch directory holding disk blocks.
    pub fn scratch_dir(&self) -> &Path {
        self.disk.dir()
    }

    /// Stores values as block `id` at `level`, replacing any block of that id.
    ///
    /// Deserialized memory levels keep the `Arc` itself (no copy); serialized levels and disk
    /// serialize the values. Blocks evicted to make room are dropped or spilled according to their
    /// own level.
    pub fn put_values<T: Data>(
        &self,
        id: BlockId,
        values: impl Into<Arc<Vec<T>>>,
        level: StorageLevel,
    ) -> Result<PutOutcome> {
        let values: Arc<Vec<T>> = values.into();
        // Serialized once at most, and shared between the memory store, disk and replication.
        let mut bytes: Option<Arc<Vec<u8>>> = None;
        let outcome = if level.use_memory {
            let (stored, size) = if level.deserialized {
                let size = estimate_size(&values);
                let encode: Encoder = encode_values::<T>;
                let erased: Arc<dyn Any + Send + Sync> =
                    values.clone() as Arc<Vec<T>> as Arc<dyn Any + Send + Sync>;
                (
                    Stored::Values {
                        values: erased,
                        type_name: std::any::type_name::<T>(),
                        encode,
                    },
                    size,
                )
            } else {
                let b = Arc::new(serialize_block_in(&id, &values, self.codec, |n| {
                    self.buffer(n)
                })?);
                let size = b.len() as u64;
                bytes = Some(b.clone());
                (Stored::Bytes(b), size)
            };
            self.insert_memory(id.clone(), stored, size, level)?
        } else {
            PutOutcome::NotStored
        };
        let outcome = match outcome {
            PutOutcome::NotStored if level.use_disk => {
                let b = match bytes.take() {
                    Some(b) => b,
                    None => Arc::new(serialize_block(&id, &values, self.codec)?),
                };
                self.memory.lock().remove(&id);
                self.disk.put(&id, &b)?;
                bytes = Some(b);
                PutOutcome::Disk
            }
            other => other,
        };
        if outcome == PutOutcome::NotStored && level.is_valid() {
            bump(&self.counters.puts_not_stored);
        }
        if level.replication > 1 {
            let b = match bytes {
                Some(b) => b,
                None => Arc::new(serialize_block(&id, &values, self.codec)?),
            };
            self.replicate(&id, &b, level)?;
        }
        Ok(outcome)
    }

    /// The codec of the blocks this manager serializes.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Stores an already serialized block (from [`serialize_block`]) as block `id` at `level`.
    ///
    /// The bytes are kept as they are, also for deserialized levels; readers deserialize them.
    pub fn put_bytes(
        &self,
        id: BlockId,
        bytes: Vec<u8>,
        level: StorageLevel,
    ) -> Result<PutOutcome> {
        let bytes = Arc::new(bytes);
        let mut outcome = PutOutcome::NotStored;
        if level.use_memory {
            let size = bytes.len() as u64;
            outcome = self.insert_memory(id.clone(), Stored::Bytes(bytes.clone()), size, level)?;
        }
        if outcome == PutOutcome::NotStored && level.use_disk {
            self.memory.lock().remove(&id);
            self.disk.put(&id, &bytes)?;
            outcome = PutOutcome::Disk;
        }
        if outcome == PutOutcome::NotStored && level.is_valid() {
            bump(&self.counters.puts_not_stored);
        }
        if level.replication > 1 {
            self.replicate(&id, &bytes, level)?;
        }
        Ok(outcome)
    }

    fn insert_memory(
        &self,
        id: BlockId,
        stored: Stored,
        size: u64,
        level: StorageLevel,
    ) -> Result<PutOutcome> {
        let mut memory = self.memory.lock();
        // Under the memory lock: an older copy of this block cannot be spilled after this.
        self.disk.remove(&id);
        match memory.insert(id, stored, size, level) {
            Insert::TooLarge => Ok(PutOutcome::NotStored),
            Insert::Stored(evicted) => {
                self.trim_kept(memory.used());
                // Spills happen under the memory lock so that a concurrent reader never finds an
                // evicted memory-and-disk block in neither store.
                for (victim, entry) in evicted {
                    if entry.level.use_disk {
                        let bytes = match &entry.stored {
                            Stored::Bytes(b) => (**b).clone(),
                            Stored::Values { values, encode, .. } => {
                                encode(&victim, &**values, self.codec)?
                            }
                        };
                        self.disk.put(&victim, &bytes)?;
                        bump(&self.counters.evictions_spilled);
                        tracing::debug!(block = %victim, "spilled to disk");
                    } else {
                        bump(&self.counters.evictions_dropped);
                        if !entry.read {
                            bump(&self.counters.evictions_dropped_unread);
                        }
                        tracing::debug!(block = %victim, read = entry.read, "evicted from memory and dropped");
                    }
                }
                Ok(PutOutcome::Memory)
            }
        }
    }

    fn replicate(&self, id: &BlockId, bytes: &[u8], level: StorageLevel) -> Result<()> {
        let transport = self.transport.lock().clone();
        let peers: Vec<PeerId> = transport.as_ref().map(|t| t.peers()).unwrap_or_default();
        let wanted = usize::from(level.replication - 1);
        if peers.is_empty() {
            self.counters
                .replicas_skipped
                .fetch_add(wanted as u64, Ordering::Relaxed);
            return Ok(());
        }
        let transport = transport.expect("peers imply a transport");
        let single = StorageLevel {
            replication: 1,
            ..level
        };
        // Deterministic placement: start at a peer picked by the block's name; a peer that
        // fails (lost a moment ago, out of room) is skipped for the next one, as long as peers
        // are left.
        let start = crc32fast::hash(id.to_string().as_bytes()) as usize % peers.len();
        let mut stored = 0;
        let mut last_error = None;
        for k in 0..peers.len() {
            if stored == wanted {
                break;
            }
            let peer = &peers[(start + k) % peers.len()];
            match transport.replicate(peer, id, bytes, single) {
                Ok(()) => {
                    stored += 1;
                    bump(&self.counters.replicas_stored);
                }
                Err(e) => {
                    tracing::warn!(block = %id, %peer, error = %e, "replicating a block failed; trying another peer");
                    last_error = Some(match e {
                        Error::Replication { .. } => e,
                        // The peer's own failure: still a replication failure (the local copy
                        // is stored).
                        other => Error::Replication {
                            block: id.clone(),
                            peer: peer.clone(),
                            reason: other.to_string(),
                        },
                    });
                }
            }
        }
        match last_error {
            Some(e) if stored < wanted => Err(e),
            _ => Ok(()),
        }
    }

    /// Reads block `id` as values of type `T`, or `None` if no store has it.
    ///
    /// A deserialized block is returned without copying; a serialized one is decoded, and a
    /// corrupt one is an [`Error::Corrupt`] naming the block.
    pub fn get_values<T: Data>(&self, id: &BlockId) -> Result<Option<Arc<Vec<T>>>> {
        let found = self.memory.lock().get(id);
        let bytes = match found {
            Some(Stored::Values {
                values, type_name, ..
            }) => {
                bump(&self.counters.hits);
                return match values.downcast::<Vec<T>>() {
                    Ok(v) => Ok(Some(v)),
                    Err(_) => Err(Error::TypeMismatch {
                        block: id.clone(),
                        stored: type_name,
                        requested: std::any::type_name::<T>(),
                    }),
                };
            }
            Some(Stored::Bytes(b)) => b,
            None => match self.disk.get(id)? {
                Some(b) => Arc::new(b),
                None => match self.fetch_replica(id)? {
                    Some(b) => Arc::new(b),
                    None => {
                        bump(&self.counters.misses);
                        return Ok(None);
                    }
                },
            },
        };
        bump(&self.counters.hits);
        Ok(Some(Arc::new(deserialize_block(id, &bytes)?)))
    }

    /// Reads block `id` as serialized bytes (serializing an in-memory block of values).
    pub fn get_bytes(&self, id: &BlockId) -> Result<Option<Vec<u8>>> {
        let found = self.memory.lock().get(id);
        match found {
            Some(Stored::Bytes(b)) => {
                bump(&self.counters.hits);
                Ok(Some((*b).clone()))
            }
            Some(Stored::Values { values, encode, .. }) => {
                bump(&self.counters.hits);
                encode(id, &*values, self.codec).map(Some)
            }
            None => {
                let r = match self.disk.get(id)? {
                    Some(b) => Some(b),
                    None => self.fetch_replica(id)?,
                };
                bump(if r.is_some() {
                    &self.counters.hits
                } else {
                    &self.counters.misses
                });
                Ok(r)
            }
        }
    }

    /// Whether any store holds block `id`.
    pub fn contains(&self, id: &BlockId) -> bool {
        self.memory.lock().contains(id) || self.disk.contains(id)
    }

    /// A block this process lost, read from the replica a peer holds (through the transport).
    fn fetch_replica(&self, id: &BlockId) -> Result<Option<Vec<u8>>> {
        let transport = self.transport.lock().clone();
        let Some(t) = transport else {
            return Ok(None);
        };
        let found = t.fetch(id)?;
        if found.is_some() {
            bump(&self.counters.replica_reads);
            tracing::debug!(block = %id, "read a lost block from its replica");
        }
        Ok(found)
    }

    /// Removes block `id` from every store (and its replica); returns whether it existed here.
    pub fn remove(&self, id: &BlockId) -> bool {
        let transport = self.transport.lock().clone();
        if let Some(t) = transport {
            t.forget(id);
        }
        let (removed, store_used) = {
            let mut memory = self.memory.lock();
            let removed = memory.remove(id);
            (removed, memory.used())
        };
        let in_memory = removed.is_some();
        if let Some(entry) = removed {
            self.recycle(entry.stored, store_used);
        }
        let on_disk = self.disk.remove(id);
        in_memory || on_disk
    }

    /// Removes every block whose id satisfies `pred`; returns how many were removed.
    pub fn remove_where(&self, pred: impl Fn(&BlockId) -> bool) -> usize {
        let transport = self.transport.lock().clone();
        if let Some(t) = transport {
            t.forget_where(&pred);
        }
        let mut ids = self.memory.lock().ids();
        ids.extend(self.disk.ids());
        ids.sort();
        ids.dedup();
        ids.into_iter()
            .filter(|id| pred(id))
            .filter(|id| self.remove(id))
            .count()
    }

    /// The ids of every stored block, sorted.
    pub fn block_ids(&self) -> Vec<BlockId> {
        let mut ids = self.memory.lock().ids();
        ids.extend(self.disk.ids());
        ids.sort();
        ids.dedup();
        ids
    }

    /// The bytes block `id` takes in the memory store, if it is there.
    pub fn memory_size(&self, id: &BlockId) -> Option<u64> {
        self.memory.lock().size_of(id)
    }

    /// A snapshot of sizes and counters.
    pub fn stats(&self) -> StorageStats {
        let (memory_bytes, memory_capacity, memory_blocks) = {
            let m = self.memory.lock();
            (m.used(), m.capacity(), m.len())
        };
        let (disk_bytes, disk_blocks) = self.disk.bytes_and_count();
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StorageStats {
            memory_bytes,
            memory_capacity,
            memory_blocks,
            disk_bytes,
            disk_blocks,
            hits: get(&c.hits),
            misses: get(&c.misses),
            evictions_dropped: get(&c.evictions_dropped),
            evictions_dropped_unread: get(&c.evictions_dropped_unread),
            evictions_spilled: get(&c.evictions_spilled),
            puts_not_stored: get(&c.puts_not_stored),
            replicas_skipped: get(&c.replicas_skipped),
            replicas_stored: get(&c.replicas_stored),
            replica_reads: get(&c.replica_reads),
        }
    }

    /// Drops every block and deletes the scratch directory. Also done on drop.
    pub fn shutdown(&self) {
        let ids = self.memory.lock().ids();
        for id in ids {
            self.memory.lock().remove(&id);
        }
        self.disk.shutdown();
    }
}

impl Drop for BlockManager {
    fn drop(&mut self) {
        self.disk.shutdown();
    }
}

impl std::fmt::Debug for BlockManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockManager")
            .field("stats", &self.stats())
            .finish()
    }
}
