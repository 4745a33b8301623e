//! The file stream (Spark's `FileInputDStream`): every batch reads the files that appeared in a
//! directory since the last batch.
//!
//! A file is taken by the first batch at or after its modification time, exactly once. Names
//! starting with `.` or `_` are ignored (files being written), so write a file elsewhere (or
//! under a hidden name) and rename it into the directory. Listing happens when the batch is
//! generated; reading happens in the batch's tasks.
//!
//! Which files are new, and what happens to bad lines, is explained on [`FileStream`], the
//! user's view of the stream.
//!
//! Under a checkpointing context the stream's position (the files taken, and the files of every
//! batch planned but not yet completed) is part of each metadata checkpoint, so a recovered driver
//! re-runs those batches on exactly the same files and takes no file twice.

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use spate_streaming::{DStream, InputCounter, InputCounters, StreamingContext, Time};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// How long the stream remembers the files it took, by modification time (60 s): a file
    /// modified within this window of the batch time and not yet taken is new. Files older than
    /// that are new only if they were not in the directory at the previous listing (see the
    /// module docs).
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

/// How many skipped lines of one file are logged one by one; the rest are summed up in one line.
const LOGGED_LINES_PER_FILE: u64 = 10;

/// How many file names a warning about ignored files lists.
const NAMED_FILES: usize = 5;

#[derive(Default)]
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
    /// The files (visible, accepted by the filter) at the previous listing of this process;
    /// `None` before its first. Not saved: it is as large as the directory.
    listed: Option<HashSet<PathBuf>>,
    /// Whether the position came from a checkpoint (the first listing then warns about old
    /// files it cannot place).
    restored: bool,
}

/// The counters behind [`FileStreamStats`], reported to the context under the names the
/// monitoring page and `/metrics` show (`spate_input_files_read_total`, …), so that what the
/// stream skipped is seen from outside the process, not only through [`FileStream::stats`].
struct Counters {
    files: InputCounter,
    old_files_ignored: InputCounter,
    lines_skipped: InputCounter,
}

impl Counters {
    fn new(set: &InputCounters) -> Counters {
        Counters {
            files: set.counter("files_read", "Files an input stream took for its batches."),
            old_files_ignored: set.counter(
                "files_ignored",
                "Files an input stream left unread because of their modification time (logged; touch a file to have it read).",
            ),
            lines_skipped: set.counter(
                "records_skipped",
                "Records an input stream skipped as malformed (logged; a file stream's lines that are not UTF-8).",
            ),
        }
    }
}

/// What a file stream did so far, in this process (see [`FileStream::stats`]).
///
/// The monitoring server shows the same counts (on its page, in `/api/inputs`, and in
/// `/metrics` as `spate_input_files_read_total`, `spate_input_files_ignored_total` and
/// `spate_input_records_skipped_total`, labelled with the stream's id): the stream reports them
/// through [`InputCounters`](spate_streaming::InputCounters). On a cluster the files are read
/// by tasks on the executors, which count there and send their counts to the driver with their
/// heartbeats: the monitoring server shows the sum (at most one heartbeat, 500 ms, behind),
/// while this struct holds only this process's share. Each process counts a batch's file at its
/// first read there; a batch read again on another executor (a second output, a window
/// recomputing it) counts its skipped lines again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileStreamStats {
    /// Files taken by batches.
    pub files: u64,
    /// Files not read because of their modification time (logged, see [`FileStream`]): with
    /// `new_files_only`, those already there at the first listing; after a driver restart,
    /// those older than the remember window the checkpoint does not name. Touch a file (give it
    /// a new modification time) to have it read.
    pub old_files_ignored: u64,
    /// Lines skipped because they are not valid UTF-8 (each logged with its file and line
    /// number, the first ten of a file one by one). Counted where the file is read: on an
    /// executor, in that executor's stream.
    pub lines_skipped: u64,
}

/// A file stream: a [`DStream`] of lines (it dereferences to one) that also reports what it
/// read and what it skipped.
///
/// # Files with old modification times
///
/// Spark ignores a file whose modification time is older than the remember window (one minute
/// by default) when it is listed: it only remembers the files it took within that window, so it
/// cannot tell an old file it already read from an old file that just arrived. A rename keeps
/// the modification time, and so do `cp -p`, `rsync -a` and `tar x`; a file staged for longer
/// than the window and then renamed in (the way to add a file whole: names starting with `.` or
/// `_` are not read, so write it under one and rename it) would be lost without a word.
///
/// This stream instead remembers the names it saw at its previous listing (one entry per file
/// in the directory, as the listing itself), so a file whose name was not there is new whatever
/// its modification time, and is read; the contract of the guide is "process new files". What
/// it still does not read, it logs and counts ([`FileStreamStats::old_files_ignored`]):
/// - with `new_files_only`, the files modified at or before the zero time that were already in
///   the directory when the stream first listed it (Spark's `newFilesOnly`: asked for);
/// - after a driver restart, the files older than the remember window that are in the
///   directory at the first listing and that the checkpoint does not name. Most were read
///   before the restart (the checkpoint keeps only the remember window's files, as Spark's
///   does, so that it stays small); a file with an old modification time moved in while the
///   driver was down is among them. The warning says so; touch such a file to have it read.
///
/// A line that is not valid UTF-8 is skipped, logged with its file and line number and counted
/// ([`FileStreamStats::lines_skipped`]); the rest of the file is read, as the socket stream does:
/// failing the batch would lose its files, which are taken once.
#[derive(Clone)]
pub struct FileStream {
    stream: DStream<String>,
    counters: Arc<Counters>,
}

impl FileStream {
    /// The stream of lines.
    pub fn stream(&self) -> &DStream<String> {
        &self.stream
    }

    /// The stream's counters so far.
    pub fn stats(&self) -> FileStreamStats {
        FileStreamStats {
            files: self.counters.files.get(),
            old_files_ignored: self.counters.old_files_ignored.get(),
            lines_skipped: self.counters.lines_skipped.get(),
        }
    }
}

impl std::ops::Deref for FileStream {
    type Target = DStream<String>;
    fn deref(&self) -> &DStream<String> {
        &self.stream
    }
}

impl std::fmt::Debug for FileStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStream")
            .field("stream", &self.stream)
            .field("stats", &self.stats())
            .finish()
    }
}

/// The position as a metadata checkpoint holds it. Paths are text ([`path_text`]): JSON has no
/// bytes, and a name that is not UTF-8 must survive the round trip (serde would refuse it, and
/// the checkpoint would lose the position). UTF-8 paths are written as they are, so positions
/// saved before this encoding read the same.
#[derive(Default, Serialize, Deserialize)]
struct Saved {
    seen: HashMap<String, u64>,
    first: bool,
    zero: Option<Time>,
    batches: BTreeMap<u64, Vec<String>>,
}

/// Marks a path written as the hex of its bytes. No path holds a NUL, so no UTF-8 path written
/// as it is starts with one.
const NOT_UTF8: char = '\0';

fn path_text(path: &Path) -> String {
    if let Some(s) = path.to_str() {
        return s.to_owned();
    }
    let mut text = String::from(NOT_UTF8);
    for b in path.as_os_str().as_encoded_bytes() {
        text.push_str(&format!("{b:02x}"));
    }
    text
}

fn text_path(text: &str) -> Result<PathBuf, String> {
    let Some(hex) = text.strip_prefix(NOT_UTF8) else {
        return Ok(PathBuf::from(text));
    };
    let bad = || format!("the saved file name {text:?} is damaged");
    if hex.len() % 2 != 0 {
        return Err(bad());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    bytes_path(bytes).ok_or_else(|| format!("{}: this platform's file names are UTF-16", bad()))
}

#[cfg(unix)]
fn bytes_path(bytes: Vec<u8>) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    Some(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

#[cfg(not(unix))]
fn bytes_path(bytes: Vec<u8>) -> Option<PathBuf> {
    String::from_utf8(bytes).ok().map(PathBuf::from)
}

impl State {
    /// The position: what was taken, and the files of the batches after `from` (those after the
    /// completed batch are re-run on recovery; the others may be recomputed for a window).
    fn save(&self, from: Time) -> String {
        let view = Saved {
            seen: self.seen.iter().map(|(p, m)| (path_text(p), *m)).collect(),
            first: self.first,
            zero: self.zero,
            batches: self
                .batches
                .range(from.ms() + 1..)
                .map(|(t, f)| (*t, f.iter().map(|p| path_text(p)).collect()))
                .collect(),
        };
        serde_json::to_string(&view).unwrap_or_default()
    }

    fn restore(text: &str) -> Result<State, String> {
        let saved: Saved = serde_json::from_str(text)
            .map_err(|e| format!("the saved file stream position is not readable: {e}"))?;
        let paths = |list: Vec<String>| -> Result<Vec<PathBuf>, String> {
            list.iter().map(|p| text_path(p)).collect()
        };
        Ok(State {
            seen: saved
                .seen
                .into_iter()
                .map(|(p, m)| text_path(&p).map(|p| (p, m)))
                .collect::<Result<_, _>>()?,
            first: saved.first,
            zero: saved.zero,
            batches: saved
                .batches
                .into_iter()
                .map(|(t, f)| paths(f).map(|f| (t, f)))
                .collect::<Result<_, _>>()?,
            listed: None,
            restored: true,
        })
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

/// Whether a file name is hidden. Checked on the name's bytes, so a name that is not UTF-8 is
/// judged like any other (the markers are ASCII, the same byte on every platform).
fn hidden(name: &OsStr) -> bool {
    matches!(name.as_encoded_bytes().first(), Some(b'.' | b'_'))
}

/// Names of `files` for a log line: the first few, and how many more.
fn some_names(files: &[PathBuf]) -> String {
    let mut names: Vec<String> = files
        .iter()
        .take(NAMED_FILES)
        .map(|p| p.display().to_string())
        .collect();
    if files.len() > NAMED_FILES {
        names.push(format!("and {} more", files.len() - NAMED_FILES));
    }
    names.join(", ")
}

/// The files of `dir` to read in the batch of time `t`, in (modification time, name) order.
#[allow(clippy::too_many_arguments)]
fn select(
    dir: &Path,
    t: Time,
    zero: Time,
    new_files_only: bool,
    remember: Duration,
    filter: &FileFilter,
    state: &mut State,
    counters: &Counters,
) -> std::io::Result<Vec<PathBuf>> {
    let window_start = t.ms().saturating_sub(remember.as_millis() as u64);
    // Files modified at or before `lower` are old: new only if they were not there at the
    // previous listing. With `new_files_only`, files of the zero time or earlier (present at
    // start) are old in every batch, as in Spark; otherwise the first listing takes everything,
    // and later ones judge by the remember window.
    let lower = if new_files_only {
        Some(zero.ms().max(window_start))
    } else if state.first {
        None
    } else {
        Some(window_start)
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            // A directory missing since the stream started held no files: everything that
            // appears in it is new. (One that disappears later keeps its last listing, so files
            // already taken are not taken again if it comes back.)
            if e.kind() == std::io::ErrorKind::NotFound && state.listed.is_none() && !state.restored
            {
                state.listed = Some(HashSet::new());
            }
            return Err(e);
        }
    };
    let mut listed = HashSet::new();
    let mut found = Vec::new();
    let mut moved_in_old = Vec::new();
    // Old files at this process's first listing: there since before the zero time (new files
    // only), or, after a restart, older than the window the checkpoint covers.
    let (mut at_start, mut unplaced) = (Vec::new(), Vec::new());
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if hidden(&entry.file_name()) || !filter(&path) {
            continue;
        }
        let Some(m) = mod_time_ms(&path) else {
            continue;
        };
        // Files from the future are still being written (or the clock is off): later. They
        // are not listed yet, so that a later listing judges them as arrivals whatever the
        // remember window is by then.
        if m > t.ms() {
            continue;
        }
        listed.insert(path.clone());
        if state.seen.contains_key(&path) {
            continue;
        }
        if lower.is_none_or(|l| m > l) {
            found.push((m, path));
            continue;
        }
        match &state.listed {
            // Not there at the previous listing: it arrived since, with an old modification
            // time (renamed in, copied with its times kept).
            Some(before) if !before.contains(&path) => {
                moved_in_old.push(path.clone());
                found.push((m, path));
            }
            // There at the previous listing: taken or ignored then.
            Some(_) => {}
            None if new_files_only && m <= zero.ms() => at_start.push(path),
            // Modified after the zero time, first listing of a fresh stream: it cannot have
            // been taken before (a remember window shorter than the batch puts it here).
            None if !state.restored => found.push((m, path)),
            None => unplaced.push(path),
        }
    }
    found.sort();
    state.first = false;
    state.listed = Some(listed);
    for (m, p) in &found {
        state.seen.insert(p.clone(), *m);
    }
    state.seen.retain(|_, m| *m > window_start);
    counters.files.add(found.len() as u64);
    for p in &moved_in_old {
        tracing::info!(file = %p.display(), batch = %t, "reading a file that appeared since the last listing although its modification time is older than the remember window");
    }
    for list in [&mut at_start, &mut unplaced] {
        list.sort();
        counters.old_files_ignored.add(list.len() as u64);
        for p in list.iter() {
            tracing::debug!(file = %p.display(), "not read: older than the stream");
        }
    }
    if !at_start.is_empty() {
        tracing::info!(
            dir = %dir.display(),
            files = at_start.len(),
            "{} files were already in the watched directory when the stream started and are not read (new files only): {}; touch a file to have it read, or read them all with new_files_only = false",
            at_start.len(),
            some_names(&at_start)
        );
    }
    if !unplaced.is_empty() {
        tracing::warn!(
            dir = %dir.display(),
            files = unplaced.len(),
            "{} files in the watched directory are older than the remember window and not named by the checkpoint the stream resumed from, so they are not read: {}. Most were read before the restart; a file moved in while the driver was down with an old modification time is among them: touch it to have it read",
            unplaced.len(),
            some_names(&unplaced)
        );
    }
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// The lines of `path`, without terminators. A line that is not valid UTF-8 is skipped; with
/// `report`, it is counted and logged (the first time a batch reads the file).
fn read_lines(path: &Path, report: bool, counters: &Counters) -> spate_core::Result<Vec<String>> {
    let io = |action: &'static str| {
        move |source| spate_core::Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let file = std::fs::File::open(path).map_err(io("opening"))?;
    let mut reader = std::io::BufReader::new(file);
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    let (mut number, mut offset, mut skipped) = (0u64, 0u64, 0u64);
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(io("reading"))?;
        if n == 0 {
            break;
        }
        number += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        match String::from_utf8(std::mem::take(&mut buf)) {
            Ok(line) => lines.push(line),
            Err(e) => {
                buf = e.into_bytes();
                skipped += 1;
                if report && skipped <= LOGGED_LINES_PER_FILE {
                    tracing::warn!(file = %path.display(), line = number, byte = offset, "skipped a line that is not valid UTF-8; the rest of the file is read");
                }
            }
        }
        offset += n as u64;
    }
    if report && skipped > 0 {
        counters.lines_skipped.add(skipped);
        if skipped > LOGGED_LINES_PER_FILE {
            tracing::warn!(file = %path.display(), skipped, "skipped {skipped} lines that are not valid UTF-8 in all (the first {LOGGED_LINES_PER_FILE} are logged above)");
        }
    }
    Ok(lines)
}

pub(crate) fn file_stream(
    ssc: &StreamingContext,
    dir: PathBuf,
    filter: FileFilter,
    new_files_only: bool,
    config: FileStreamConfig,
) -> FileStream {
    let state = Arc::new(Mutex::new(State {
        first: true,
        ..State::default()
    }));
    let reported = InputCounters::new();
    let counters = Arc::new(Counters::new(&reported));
    let (saved, restored) = (state.clone(), state.clone());
    let batch = ssc.batch_duration();
    let d = dir.clone();
    let cfg = config.clone();
    let c = counters.clone();
    let compute = move |ctx: &spate_streaming::Context, t: Time| {
        let mut st = state.lock();
        let zero = *st.zero.get_or_insert(t.minus(batch));
        // A batch planned before a driver restart is re-run on the files it had.
        let planned = st.batches.get(&t.ms()).cloned();
        let files = match planned.map_or_else(
            || {
                select(
                    &d,
                    t,
                    zero,
                    new_files_only,
                    cfg.remember,
                    &filter,
                    &mut st,
                    &c,
                )
            },
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
        let files: Vec<PathBuf> = files
            .into_iter()
            .filter(|f| {
                // Gone between listing and now: nothing to read, nothing lost.
                let there = f.is_file();
                if !there {
                    tracing::warn!(file = %f.display(), "a new file vanished before it could be read");
                }
                there
            })
            .collect();
        tracing::debug!(dir = %d.display(), batch = %t, files = files.len(), "new files");
        // One partition per file, read by the batch's tasks. Each file's skipped lines are
        // reported by its first read only: a batch read by two outputs reads its files twice.
        let reported: Arc<Vec<AtomicBool>> =
            Arc::new(files.iter().map(|_| AtomicBool::new(false)).collect());
        let counters = c.clone();
        Ok(Some(ctx.from_partitions(files.len(), move |i| {
            let report = !reported[i].swap(true, Ordering::AcqRel);
            read_lines(&files[i], report, &counters)
        })))
    };
    let stream = ssc.custom_input_stream_with_state(
        "file_stream",
        compute,
        move |_completed, from| saved.lock().save(from),
        move |text| {
            *restored.lock() = State::restore(text)?;
            Ok(())
        },
    );
    ssc.report_input_counters(&stream, &reported);
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
    FileStream { stream, counters }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_names_are_judged_by_their_first_byte() {
        assert!(hidden(OsStr::new(".a.tmp")));
        assert!(hidden(OsStr::new("_SUCCESS")));
        assert!(!hidden(OsStr::new("a.txt")));
        assert!(!hidden(OsStr::new("")));
    }

    #[test]
    fn saved_positions_keep_every_name_and_read_the_old_format() {
        let mut state = State::default();
        let plain = PathBuf::from("/data/in/a.txt");
        state.seen.insert(plain.clone(), 5);
        state.batches.insert(2000, vec![plain.clone()]);
        #[cfg(unix)]
        let odd = {
            use std::os::unix::ffi::OsStrExt;
            let odd = PathBuf::from(OsStr::from_bytes(b"/data/in/caf\xe9.txt"));
            state.seen.insert(odd.clone(), 7);
            state.batches.insert(3000, vec![odd.clone(), plain.clone()]);
            odd
        };
        let text = state.save(Time::from_ms(1000));
        let back = State::restore(&text).unwrap();
        assert_eq!(back.seen, state.seen);
        assert_eq!(back.batches, state.batches);
        assert!(back.restored);
        #[cfg(unix)]
        assert_eq!(back.batches[&3000][0], odd);

        // A position saved by the earlier format (paths as JSON strings) reads the same.
        let old = r#"{"seen":{"/data/in/a.txt":5},"first":false,"zero":1000,"batches":{"2000":["/data/in/a.txt"]}}"#;
        let back = State::restore(old).unwrap();
        assert_eq!(back.seen[&plain], 5);
        assert_eq!(back.batches[&2000], vec![plain]);

        // A damaged escaped name is an error naming it, not a wrong path.
        let bad = "{\"seen\":{\"\\u0000zz\":5},\"first\":false,\"zero\":null,\"batches\":{}}";
        assert!(State::restore(bad).is_err_and(|e| e.contains("damaged")));
    }
}
