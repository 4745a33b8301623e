//! The file stream (Spark's `FileInputDStream`): every batch reads the files that appeared in a
//! directory since the last batch.
//!
//! A file is taken by the first batch at or after its modification time, exactly once. Names
//! starting with `.` or `_` are ignored (files being written), so write a file elsewhere (or
//! under a hidden name) and rename it into the directory. A file whose modification time is older
//! than the remember window (one minute by default) when it appears is ignored, as in Spark; so,
//! with `new_files_only`, is one modified at or before the stream started (the zero time).
//! Listing happens when the batch is generated; reading happens in the batch's tasks.
//!
//! Under a checkpointing context the stream's position (the files taken, and the files of every
//! batch planned but not yet completed) is part of each metadata checkpoint, so a recovered driver
//! re-runs those batches on exactly the same files and takes no file twice.

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use spate_streaming::{Context, DStream, Rdd, StreamingContext, Time};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// What a file stream does when its directory does not exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MissingDirectory {
    /// `start()` fails with an error naming the directory.
    #[default]
    Error,
    /// Each batch logs a warning and is empty until the directory appears.
    Retry,
}

/// Settings of a file stream.
#[derive(Clone, Debug)]
pub struct FileStreamConfig {
    /// What to do about a missing directory.
    pub missing_directory: MissingDirectory,
    /// How old (by modification time) a newly seen file may be and still be read (60 s).
    pub remember: Duration,
}

impl Default for FileStreamConfig {
    fn default() -> Self {
        FileStreamConfig {
            missing_directory: MissingDirectory::Error,
            remember: Duration::from_secs(60),
        }
    }
}

pub(crate) type FileFilter = Box<dyn Fn(&Path) -> bool + Send + Sync>;

/// How many planned batches a stream remembers (for replay after a driver restart).
const KEEP_BATCHES: usize = 1000;

#[derive(Default, Serialize, Deserialize)]
struct State {
    /// Files already taken, with their modification times (pruned past the remember window).
    seen: HashMap<PathBuf, u64>,
    /// Whether no listing has succeeded yet.
    first: bool,
    /// The zero time (the batch before the first), fixed by the first batch even if its listing
    /// fails (a missing directory under `MissingDirectory::Retry`).
    zero: Option<Time>,
    /// The files each recent batch took, by batch time in ms.
    batches: BTreeMap<u64, Vec<PathBuf>>,
}

impl State {
    /// The position: what was taken, and the files of the batches after `from` (those after the
    /// completed batch are re-run on recovery; the others may be recomputed for a window).
    fn save(&self, from: Time) -> String {
        let view = State {
            seen: self.seen.clone(),
            first: self.first,
            zero: self.zero,
            batches: self
                .batches
                .range(from.ms() + 1..)
                .map(|(t, f)| (*t, f.clone()))
                .collect(),
        };
        serde_json::to_string(&view).unwrap_or_default()
    }
}

fn mod_time_ms(path: &Path) -> Option<u64> {
    let m = std::fs::metadata(path).ok()?;
    if !m.is_file() {
        return None;
    }
    Some(
        m.modified()
            .ok()?
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_millis() as u64,
    )
}

fn hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.') || n.starts_with('_'))
}

/// The files of `dir` to read in the batch of time `t`, in (modification time, name) order.
fn select(
    dir: &Path,
    t: Time,
    zero: Time,
    new_files_only: bool,
    remember: Duration,
    filter: &FileFilter,
    state: &mut State,
) -> std::io::Result<Vec<PathBuf>> {
    let window_start = t.ms().saturating_sub(remember.as_millis() as u64);
    // Files modified at or before `lower` are not new. With `new_files_only`, files of the zero
    // time or earlier (present at start) never are, in every batch, as in Spark; otherwise the
    // first listing takes everything, and later ones what is within the remember window.
    let lower = if new_files_only {
        Some(zero.ms().max(window_start))
    } else if state.first {
        None
    } else {
        Some(window_start)
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if hidden(&path) || !filter(&path) || state.seen.contains_key(&path) {
            continue;
        }
        let Some(m) = mod_time_ms(&path) else {
            continue;
        };
        // Files from the future are still being written (or the clock is off): later.
        if m > t.ms() || lower.is_some_and(|l| m <= l) {
            continue;
        }
        found.push((m, path));
    }
    found.sort();
    state.first = false;
    for (m, p) in &found {
        state.seen.insert(p.clone(), *m);
    }
    state.seen.retain(|_, m| *m > window_start);
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

pub(crate) fn file_stream(
    ssc: &StreamingContext,
    dir: PathBuf,
    filter: FileFilter,
    new_files_only: bool,
    config: FileStreamConfig,
) -> DStream<String> {
    let state = Arc::new(Mutex::new(State {
        first: true,
        ..State::default()
    }));
    let (saved, restored) = (state.clone(), state.clone());
    let batch = ssc.batch_duration();
    let d = dir.clone();
    let cfg = config.clone();
    let compute = move |ctx: &Context, t: Time| {
        let mut st = state.lock();
        let zero = *st.zero.get_or_insert(t.minus(batch));
        // A batch planned before a driver restart is re-run on the files it had.
        let planned = st.batches.get(&t.ms()).cloned();
        let files = match planned.map_or_else(
            || select(&d, t, zero, new_files_only, cfg.remember, &filter, &mut st),
            Ok,
        ) {
            Ok(files) => files,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && cfg.missing_directory == MissingDirectory::Retry =>
            {
                tracing::warn!(dir = %d.display(), "the watched directory does not exist (yet); this batch is empty");
                Vec::new()
            }
            Err(e) => {
                return Err(spate_streaming::Error::Io {
                    action: "listing the watched directory",
                    path: d.clone(),
                    source: e,
                });
            }
        };
        st.batches.insert(t.ms(), files.clone());
        while st.batches.len() > KEEP_BATCHES {
            st.batches.pop_first();
        }
        drop(st);
        let mut rdds: Vec<Rdd<String>> = Vec::with_capacity(files.len());
        for f in files {
            match ctx.text_file(&f, 1) {
                Ok(r) => rdds.push(r),
                // Gone between listing and opening: nothing to read, nothing lost.
                Err(e) => {
                    tracing::warn!(file = %f.display(), error = %e, "a new file vanished before it could be read")
                }
            }
        }
        tracing::debug!(dir = %d.display(), batch = %t, files = rdds.len(), "new files");
        Ok(Some(if rdds.is_empty() {
            ctx.empty_rdd()
        } else {
            ctx.union(&rdds)
        }))
    };
    let stream = ssc.custom_input_stream_with_state(
        "file_stream",
        compute,
        move |_completed, from| saved.lock().save(from),
        move |text| {
            let state: State = serde_json::from_str(text)
                .map_err(|e| format!("the saved file stream position is not readable: {e}"))?;
            *restored.lock() = state;
            Ok(())
        },
    );
    if config.missing_directory == MissingDirectory::Error {
        let d = dir.clone();
        ssc.add_start_check(&stream, move || {
            if d.is_dir() {
                Ok(())
            } else {
                Err(crate::Error::MissingDirectory(d.clone()).to_string())
            }
        });
    }
    stream
}
