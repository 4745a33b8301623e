//! The disk store: one file per block under a scratch directory that is deleted on shutdown.

use crate::sync::{AtomicU64, Mutex, Ordering};
use crate::{BlockId, Error, Result};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub(crate) struct DiskStore {
    dir: Mutex<Option<tempfile::TempDir>>,
    path: PathBuf,
    sizes: Mutex<HashMap<BlockId, u64>>,
    /// Numbers temporary files, so that concurrent writers of one block never share one.
    tmp_seq: AtomicU64,
}

impl DiskStore {
    pub(crate) fn new(parent: &Path) -> Result<DiskStore> {
        std::fs::create_dir_all(parent).map_err(|source| Error::ScratchDir {
            dir: parent.to_path_buf(),
            source,
        })?;
        let dir = tempfile::Builder::new()
            .prefix("spate-blocks-")
            .tempdir_in(parent)
            .map_err(|source| Error::ScratchDir {
                dir: parent.to_path_buf(),
                source,
            })?;
        let path = dir.path().to_path_buf();
        Ok(DiskStore {
            dir: Mutex::new(Some(dir)),
            path,
            sizes: Mutex::new(HashMap::new()),
            tmp_seq: AtomicU64::new(0),
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.path
    }

    fn file(&self, id: &BlockId) -> PathBuf {
        self.path.join(id.file_name())
    }

    /// Writes the block to a temporary name of its own, then renames it, so a reader never sees
    /// half a file, also when several threads write the same block.
    pub(crate) fn put(&self, id: &BlockId, bytes: &[u8]) -> Result<()> {
        let path = self.file(id);
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self.path.join(format!(".{}.{seq}.tmp", id.file_name()));
        let io = |source| Error::Io {
            block: id.clone(),
            path: path.clone(),
            source,
        };
        let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        // The rename and the size map change together, so the map always describes the file.
        let mut sizes = self.sizes.lock();
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })?;
        sizes.insert(id.clone(), bytes.len() as u64);
        Ok(())
    }

    pub(crate) fn get(&self, id: &BlockId) -> Result<Option<Vec<u8>>> {
        if !self.sizes.lock().contains_key(id) {
            return Ok(None);
        }
        let path = self.file(id);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Deleted behind our back; unless a concurrent put has just written it again.
                let mut sizes = self.sizes.lock();
                if !path.exists() {
                    sizes.remove(id);
                }
                Ok(None)
            }
            Err(source) => Err(Error::Io {
                block: id.clone(),
                path,
                source,
            }),
        }
    }

    pub(crate) fn contains(&self, id: &BlockId) -> bool {
        self.sizes.lock().contains_key(id)
    }

    pub(crate) fn remove(&self, id: &BlockId) -> bool {
        let mut sizes = self.sizes.lock();
        if sizes.remove(id).is_some() {
            let _ = std::fs::remove_file(self.file(id));
            true
        } else {
            false
        }
    }

    pub(crate) fn ids(&self) -> Vec<BlockId> {
        self.sizes.lock().keys().cloned().collect()
    }

    pub(crate) fn bytes_and_count(&self) -> (u64, usize) {
        let sizes = self.sizes.lock();
        (sizes.values().sum(), sizes.len())
    }

    /// Deletes every file and the directory itself.
    pub(crate) fn shutdown(&self) {
        self.sizes.lock().clear();
        if let Some(dir) = self.dir.lock().take()
            && let Err(e) = dir.close()
        {
            tracing::warn!(error = %e, "could not delete the block manager's scratch directory");
        }
    }
}
