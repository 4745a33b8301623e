//! The write-ahead log of received blocks (later Spark's receiver WAL): with
//! [`ReceiverConfig::write_ahead_log`](crate::ReceiverConfig::write_ahead_log) on, every block a
//! receiver's block generator cuts is appended to a log under the checkpoint directory, and
//! synced, before it is stored and handed to a batch, so a driver that dies loses no received
//! record: the recovered driver reads the blocks of the batches it re-runs from the log.
//!
//! Layout: `<checkpoint>/receivedData/<stream id>/log-<first block time, ms>`, each file a
//! sequence of entries `[crc32 of the next 24 bytes and the position][block time ms u64]
//! [block seq u64][len u32][position len u32][position][len bytes: a serialized block, with its
//! own checksum]`, all little-endian. The position is the receiver's own note of where its
//! source is after the block's records (see `ReceiverContext::store_many_at`), so that a
//! replayable source can resume exactly after what the log holds. A batch at time
//! `t` holds exactly the blocks whose time is in `(t - batch, t]` (the block generator keeps block
//! times after a batch's cut strictly later than it), so the log needs no separate allocation
//! record. A torn entry at the end of a file (the process died while appending) is logged and
//! ignored; files whose blocks are all older than what a recovery could need are deleted.

use crate::{Error, Result, Time};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const ENTRY_HEADER: usize = 28;
/// A new log file is started when the current one holds blocks this much older than the new one.
const ROTATE_MS: u64 = 10_000;

/// Where one block is in the log.
#[derive(Clone, Debug)]
struct Entry {
    file: PathBuf,
    offset: u64,
    len: u32,
    position: Option<String>,
}

/// One stream's log.
pub(crate) struct Wal {
    dir: PathBuf,
    /// The file being appended to, with the time of its first block.
    current: Option<(File, u64, PathBuf)>,
    /// Every block in the log, by (time, seq).
    index: BTreeMap<(u64, u64), Entry>,
    /// The last block time of each file.
    files: BTreeMap<PathBuf, u64>,
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

impl Wal {
    /// Opens the log in `dir`: with `keep`, indexes what an earlier run wrote (for recovery);
    /// without, deletes it (a fresh start).
    pub(crate) fn open(dir: &Path, keep: bool) -> Result<Wal> {
        std::fs::create_dir_all(dir)
            .map_err(|e| io("creating the write-ahead log directory", dir, e))?;
        let mut wal = Wal {
            dir: dir.to_path_buf(),
            current: None,
            index: BTreeMap::new(),
            files: BTreeMap::new(),
        };
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| io("listing the write-ahead log", dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("log-"))
            })
            .collect();
        names.sort();
        for path in names {
            if keep {
                wal.index_file(&path)?;
            } else {
                std::fs::remove_file(&path)
                    .map_err(|e| io("deleting an old write-ahead log file", &path, e))?;
            }
        }
        Ok(wal)
    }

    fn index_file(&mut self, path: &Path) -> Result<()> {
        let file = File::open(path).map_err(|e| io("opening a write-ahead log file", path, e))?;
        let size = file
            .metadata()
            .map_err(|e| io("reading a write-ahead log file", path, e))?
            .len();
        let mut r = BufReader::new(file);
        let mut offset = 0u64;
        let mut last = 0u64;
        loop {
            let mut h = [0u8; ENTRY_HEADER];
            match r.read_exact(&mut h) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    if offset < size {
                        tracing::warn!(file = %path.display(), offset, "the write-ahead log ends in a torn entry header (the process died while appending); the blocks before it are kept");
                    }
                    break;
                }
                Err(e) => return Err(io("reading a write-ahead log file", path, e)),
            }
            let crc = u32::from_le_bytes(h[0..4].try_into().unwrap_or_default());
            let time = u64::from_le_bytes(h[4..12].try_into().unwrap_or_default());
            let seq = u64::from_le_bytes(h[12..20].try_into().unwrap_or_default());
            let len = u32::from_le_bytes(h[20..24].try_into().unwrap_or_default());
            let pos_len = u32::from_le_bytes(h[24..28].try_into().unwrap_or_default());
            let start = offset + ENTRY_HEADER as u64 + u64::from(pos_len);
            if start + u64::from(len) > size {
                tracing::warn!(file = %path.display(), offset, "the write-ahead log ends in a torn block (the process died while appending); the blocks before it are kept");
                break;
            }
            let mut pos = vec![0u8; pos_len as usize];
            r.read_exact(&mut pos)
                .map_err(|e| io("reading a write-ahead log file", path, e))?;
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&h[4..]);
            hasher.update(&pos);
            if hasher.finalize() != crc {
                tracing::warn!(file = %path.display(), offset, "a damaged entry in the write-ahead log; the blocks after it in this file are not read");
                break;
            }
            let position = (pos_len > 0).then(|| String::from_utf8_lossy(&pos).into_owned());
            r.seek_relative(i64::from(len))
                .map_err(|e| io("reading a write-ahead log file", path, e))?;
            self.index.insert(
                (time, seq),
                Entry {
                    file: path.to_path_buf(),
                    offset: start,
                    len,
                    position,
                },
            );
            last = last.max(time);
            offset = start + u64::from(len);
        }
        self.files.insert(path.to_path_buf(), last);
        Ok(())
    }

    /// The highest block sequence number in the log.
    pub(crate) fn max_seq(&self) -> Option<u64> {
        self.index.keys().map(|(_, s)| *s).max()
    }

    /// The position noted with the newest block that has one.
    pub(crate) fn last_position(&self) -> Option<String> {
        self.index.values().rev().find_map(|e| e.position.clone())
    }

    /// Appends a block (with the source position after it, if the receiver noted one) and syncs
    /// it to disk.
    pub(crate) fn append(
        &mut self,
        time: Time,
        seq: u64,
        position: Option<&str>,
        bytes: &[u8],
    ) -> Result<()> {
        let t = time.ms();
        let rotate = match &self.current {
            None => true,
            Some((_, first, _)) => t.saturating_sub(*first) >= ROTATE_MS,
        };
        if rotate {
            let path = self.dir.join(format!("log-{t:020}"));
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| io("creating a write-ahead log file", &path, e))?;
            self.current = Some((file, t, path));
        }
        let Some((file, _, path)) = self.current.as_mut() else {
            return Ok(());
        };
        let len = u32::try_from(bytes.len()).map_err(|_| {
            Error::State(format!(
                "a received block of {} bytes is too large for the write-ahead log: lower the block interval",
                bytes.len()
            ))
        })?;
        let offset = file
            .seek(SeekFrom::End(0))
            .map_err(|e| io("appending to the write-ahead log", path, e))?;
        let pos = position.unwrap_or_default().as_bytes();
        let mut h = [0u8; ENTRY_HEADER];
        h[4..12].copy_from_slice(&t.to_le_bytes());
        h[12..20].copy_from_slice(&seq.to_le_bytes());
        h[20..24].copy_from_slice(&len.to_le_bytes());
        h[24..28].copy_from_slice(&(pos.len() as u32).to_le_bytes());
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&h[4..]);
        hasher.update(pos);
        h[0..4].copy_from_slice(&hasher.finalize().to_le_bytes());
        let mut entry = Vec::with_capacity(ENTRY_HEADER + pos.len() + bytes.len());
        entry.extend_from_slice(&h);
        entry.extend_from_slice(pos);
        entry.extend_from_slice(bytes);
        file.write_all(&entry)
            .and_then(|()| file.sync_data())
            .map_err(|e| io("appending to the write-ahead log", path, e))?;
        self.index.insert(
            (t, seq),
            Entry {
                file: path.clone(),
                offset: offset + (ENTRY_HEADER + pos.len()) as u64,
                len,
                position: position.map(str::to_string),
            },
        );
        let last = self.files.entry(path.clone()).or_default();
        *last = (*last).max(t);
        Ok(())
    }

    /// The blocks with times in `(from, to]`, as (seq, serialized bytes), in order.
    pub(crate) fn read(&self, from: Time, to: Time) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        for ((_, seq), e) in self.index.range((from.ms() + 1, 0)..=(to.ms(), u64::MAX)) {
            let mut f = File::open(&e.file)
                .map_err(|err| io("reading the write-ahead log", &e.file, err))?;
            let mut buf = vec![0u8; e.len as usize];
            f.seek(SeekFrom::Start(e.offset))
                .and_then(|_| f.read_exact(&mut buf))
                .map_err(|err| io("reading the write-ahead log", &e.file, err))?;
            out.push((*seq, buf));
        }
        Ok(out)
    }

    /// Deletes the files (other than the one being appended to, and the one holding the newest
    /// source position) whose blocks are all at or before `before`; returns how many.
    pub(crate) fn clean(&mut self, before: Time) -> usize {
        let current = self.current.as_ref().map(|(_, _, p)| p.clone());
        let newest_position = self
            .index
            .values()
            .rev()
            .find(|e| e.position.is_some())
            .map(|e| e.file.clone());
        let old: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|(p, last)| {
                **last <= before.ms()
                    && Some(*p) != current.as_ref()
                    && Some(*p) != newest_position.as_ref()
            })
            .map(|(p, _)| p.clone())
            .collect();
        for p in &old {
            if let Err(e) = std::fs::remove_file(p) {
                tracing::warn!(file = %p.display(), error = %e, "could not delete an old write-ahead log file");
                continue;
            }
            self.files.remove(p);
            self.index.retain(|_, e| &e.file != p);
        }
        old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Time {
        Time::from_ms(ms)
    }

    #[test]
    fn blocks_survive_a_reopen_and_are_read_by_time_range() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Wal::open(dir.path(), false).unwrap();
        w.append(t(200), 0, None, b"a").unwrap();
        w.append(t(1000), 1, Some("7"), b"bb").unwrap();
        w.append(t(1200), 2, Some("9"), b"ccc").unwrap();
        w.append(t(15_000), 3, None, b"dddd").unwrap(); // a second file
        drop(w);
        let w = Wal::open(dir.path(), true).unwrap();
        assert_eq!(w.max_seq(), Some(3));
        assert_eq!(w.last_position().as_deref(), Some("9"));
        let got = w.read(t(0), t(1000)).unwrap();
        assert_eq!(got, vec![(0, b"a".to_vec()), (1, b"bb".to_vec())]);
        assert_eq!(
            w.read(t(1000), t(2000)).unwrap(),
            vec![(2, b"ccc".to_vec())]
        );
        assert_eq!(w.read(t(2000), t(20_000)).unwrap().len(), 1);
        // A fresh start forgets it all.
        let w = Wal::open(dir.path(), false).unwrap();
        assert_eq!(w.max_seq(), None);
    }

    #[test]
    fn a_torn_tail_keeps_the_blocks_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Wal::open(dir.path(), false).unwrap();
        w.append(t(100), 0, Some("1"), b"kept").unwrap();
        w.append(t(200), 1, Some("2"), b"torn block").unwrap();
        drop(w);
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let len = std::fs::metadata(&file).unwrap().len();
        let f = OpenOptions::new().write(true).open(&file).unwrap();
        f.set_len(len - 3).unwrap();
        let w = Wal::open(dir.path(), true).unwrap();
        assert_eq!(w.read(t(0), t(1000)).unwrap(), vec![(0, b"kept".to_vec())]);
        assert_eq!(w.last_position().as_deref(), Some("1"));
    }

    #[test]
    fn cleaning_deletes_only_files_wholly_before_the_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Wal::open(dir.path(), false).unwrap();
        w.append(t(1000), 0, None, b"old").unwrap();
        w.append(t(12_000), 1, Some("p"), b"mid").unwrap();
        w.append(t(24_000), 2, None, b"new").unwrap();
        assert_eq!(w.clean(t(11_000)), 1);
        assert_eq!(w.clean(t(11_000)), 0);
        assert_eq!(w.read(t(0), t(30_000)).unwrap().len(), 2);
        // Neither the file being appended to nor the one with the newest position is deleted.
        assert_eq!(w.clean(t(100_000)), 0);
        assert_eq!(w.read(t(0), t(30_000)).unwrap().len(), 2);
        w.append(t(36_000), 3, Some("q"), b"newer").unwrap();
        assert_eq!(w.clean(t(100_000)), 2);
        assert_eq!(
            w.read(t(0), t(40_000)).unwrap(),
            vec![(3, b"newer".to_vec())]
        );
    }
}
