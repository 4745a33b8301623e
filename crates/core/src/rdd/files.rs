//! File sources and sinks: `text_file` / `object_file` and `save_as_text_file` /
//! `save_as_object_file`, in Spark's `part-NNNNN` directory layout.
//!
//! A save writes each partition to a temporary file and renames it into place, then writes an
//! empty `_SUCCESS` marker, so a reader never sees half a file.

use super::checkpoint::{PartitionFiles, part_file, write_atomically, write_partition};
use super::{BoxIter, Compute, Dependency, Rdd, TaskContext};
use crate::sync::Arc;
use crate::{Context, Error, Result, ToText, scheduler};
use spate_storage::{BlockId, Data};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A byte range of a text file; lines belong to the split in which they start.
#[derive(Clone, Debug)]
struct TextSplit {
    path: PathBuf,
    start: u64,
    end: u64,
}

struct TextFile {
    splits: Vec<TextSplit>,
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

/// The data files of `path`: the file itself, or the visible files of a directory, by name.
pub(crate) fn input_files(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).map_err(Error::io("reading input", path))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(Error::io("listing", path))? {
        let entry = entry.map_err(Error::io("listing", path))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_hidden(&name) && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

fn read_lines(split: &TextSplit) -> Result<Vec<String>> {
    let path = &split.path;
    let mut f = std::fs::File::open(path).map_err(Error::io("opening", path))?;
    let mut pos = split.start;
    if split.start > 0 {
        // A line that began in the previous split belongs to it: skip to the next line start.
        f.seek(SeekFrom::Start(split.start - 1))
            .map_err(Error::io("seeking in", path))?;
    }
    let mut reader = BufReader::new(f);
    if split.start > 0 {
        let mut skipped = Vec::new();
        let n = reader
            .read_until(b'\n', &mut skipped)
            .map_err(Error::io("reading", path))?;
        pos = split.start - 1 + n as u64;
    }
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    while pos < split.end {
        buf.clear();
        let n = reader
            .by_ref()
            .read_until(b'\n', &mut buf)
            .map_err(Error::io("reading", path))?;
        if n == 0 {
            break;
        }
        let line_start = pos;
        pos += n as u64;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        match String::from_utf8(std::mem::take(&mut buf)) {
            Ok(s) => lines.push(s),
            Err(_) => {
                return Err(Error::BadInput {
                    path: path.clone(),
                    reason: format!("the line at byte {line_start} is not valid UTF-8"),
                });
            }
        }
    }
    Ok(lines)
}

impl Compute<String> for TextFile {
    fn num_partitions(&self) -> usize {
        self.splits.len()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        Vec::new()
    }
    fn compute(&self, split: usize, _tc: &TaskContext) -> Result<BoxIter<String>> {
        Ok(BoxIter::new(read_lines(&self.splits[split])?))
    }
}

impl Context {
    /// The lines of a text file, or of every visible file in a directory (names starting with `.`
    /// or `_` are skipped), without line terminators. Files are split into byte ranges so there
    /// are at least `min_partitions` partitions; a line belongs to the range it starts in.
    /// Invalid UTF-8 is an error naming the file and the byte offset of the line.
    #[track_caller]
    pub fn text_file(&self, path: impl AsRef<Path>, min_partitions: usize) -> Result<Rdd<String>> {
        let files = input_files(path.as_ref())?;
        let mut sizes = Vec::new();
        for f in &files {
            sizes.push(std::fs::metadata(f).map_err(Error::io("reading", f))?.len());
        }
        let total: u64 = sizes.iter().sum();
        // The goal size is rounded down (as Hadoop does), so a file of `size` bytes gets
        // ceil(size / goal) >= min_partitions splits; rounding up could give fewer (9 bytes in 4
        // partitions: goal 3, three splits).
        let goal = (total / min_partitions.max(1) as u64).max(1);
        let mut splits = Vec::new();
        for (path, size) in files.into_iter().zip(sizes) {
            let mut start = 0;
            loop {
                let end = (start + goal).min(size);
                splits.push(TextSplit {
                    path: path.clone(),
                    start,
                    end,
                });
                start = end;
                if start >= size {
                    break;
                }
            }
        }
        Ok(Rdd::from_op(
            self,
            "text_file",
            std::panic::Location::caller(),
            TextFile { splits },
        ))
    }

    /// An RDD read back from a directory written by [`Rdd::save_as_object_file`] (or from an RDD
    /// checkpoint): one partition per `part-NNNNN` file. The files must follow each other from
    /// `part-00000`: a gap is an [`Error::MissingPartition`] naming the missing file (the
    /// directory cannot tell a missing last file; [`read_checkpoint`](Self::read_checkpoint) can,
    /// given the count).
    #[track_caller]
    pub fn object_file<T: Data>(&self, path: impl AsRef<Path>) -> Result<Rdd<T>> {
        let files = part_files(path.as_ref(), None)?;
        Ok(self.partition_files(files))
    }

    /// An RDD read back from an RDD checkpoint in `dir` that was written with `partitions`
    /// partitions: `part-00000` to the last must all be there, or it is an
    /// [`Error::MissingPartition`] naming the first missing file (an RDD with a partition fewer
    /// would hold, without a word, all but that partition's data).
    #[track_caller]
    pub fn read_checkpoint<T: Data>(
        &self,
        dir: impl AsRef<Path>,
        partitions: usize,
    ) -> Result<Rdd<T>> {
        let files = part_files(dir.as_ref(), Some(partitions))?;
        Ok(self.partition_files(files))
    }

    #[track_caller]
    fn partition_files<T: Data>(&self, files: Vec<PathBuf>) -> Rdd<T> {
        let id = self.new_id();
        Rdd::from_op(
            self,
            "object_file",
            std::panic::Location::caller(),
            PartitionFiles {
                files,
                partitioner: None,
                id,
            },
        )
    }
}

/// The partition number of a `part-NNNNN` file name.
fn part_number(name: &std::ffi::OsStr) -> Option<usize> {
    let digits = name.to_str()?.strip_prefix("part-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The partition files of `dir` in partition order, checked to be `part-00000` on with none
/// missing: `expected` of them when the count is known, else up to the highest one found.
/// Other files (`_SUCCESS`, a stray `part-3.tmp`) are not partitions. A path that is a file is
/// read as one partition.
fn part_files(dir: &Path, expected: Option<usize>) -> Result<Vec<PathBuf>> {
    if expected.is_none() && dir.is_file() {
        // One partition file named on its own.
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut found = std::collections::BTreeMap::new();
    for f in input_files(dir)? {
        if let Some(n) = f.file_name().and_then(part_number) {
            found.insert(n, f);
        }
    }
    let partitions = expected.unwrap_or_else(|| found.keys().next_back().map_or(0, |n| n + 1));
    let mut files = Vec::with_capacity(partitions);
    for n in 0..partitions {
        match found.remove(&n) {
            Some(f) => files.push(f),
            None => {
                return Err(Error::MissingPartition {
                    dir: dir.to_path_buf(),
                    missing: part_file(dir, n),
                    partitions,
                });
            }
        }
    }
    Ok(files)
}

fn prepare_output(dir: &Path) -> Result<PathBuf> {
    if dir.exists() {
        return Err(Error::OutputExists(dir.to_path_buf()));
    }
    std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
    Ok(dir.to_path_buf())
}

fn finish_output(dir: &Path) -> Result<()> {
    write_atomically(&dir.join("_SUCCESS"), b"")
}

impl<T: Data + ToText> Rdd<T> {
    /// Writes the elements as text, one per line ([`ToText`]), to `path/part-NNNNN` (one file per
    /// partition), then `path/_SUCCESS`. Fails if `path` exists.
    pub fn save_as_text_file(&self, path: impl AsRef<Path>) -> Result<()> {
        self.save_lines(path.as_ref(), |x, text| x.write_text(text))
    }
}

impl<K: Data + ToText, V: Data + ToText> Rdd<(K, V)> {
    /// Writes the pairs as Hadoop's `TextOutputFormat` does, what Spark's `saveAsHadoopFile`
    /// writes with it: one `key<TAB>value` line per pair ([`ToText`] of each), to
    /// `path/part-NNNNN` (one file per partition), then `path/_SUCCESS`. Hadoop reads it back
    /// with `KeyValueTextInputFormat`; `cut -f1` and `cut -f2` split it. Fails if `path` exists.
    pub fn save_as_hadoop_file(&self, path: impl AsRef<Path>) -> Result<()> {
        self.save_lines(path.as_ref(), |(k, v), text| {
            k.write_text(text);
            text.push('\t');
            v.write_text(text);
        })
    }
}

impl<T: Data> Rdd<T> {
    /// Writes each element as the line `line` makes of it, to `path/part-NNNNN` (one file per
    /// partition), then `path/_SUCCESS`. Fails if `path` exists.
    fn save_lines(
        &self,
        path: &Path,
        line: impl Fn(&T, &mut String) + Send + Sync + 'static,
    ) -> Result<()> {
        let dir = Arc::new(prepare_output(path)?);
        let partitions: Vec<usize> = (0..self.num_partitions()).collect();
        let d = dir.clone();
        scheduler::run_job(self, &partitions, move |tc, it| {
            let mut text = String::new();
            for x in it {
                line(&x, &mut text);
                text.push('\n');
            }
            write_atomically(&part_file(&d, tc.partition), text.as_bytes())
        })?;
        finish_output(&dir)
    }
}

impl<T: Data> Rdd<T> {
    /// Writes the elements in Spate's serialized block format to `path/part-NNNNN`, then
    /// `path/_SUCCESS`; read them back with [`Context::object_file`]. Fails if `path` exists.
    pub fn save_as_object_file(&self, path: impl AsRef<Path>) -> Result<()> {
        let dir = Arc::new(prepare_output(path.as_ref())?);
        let partitions: Vec<usize> = (0..self.num_partitions()).collect();
        let (d, id) = (dir.clone(), self.id());
        scheduler::run_job(self, &partitions, move |tc, it| {
            let values: Vec<T> = it.into_vec();
            let block = BlockId::Rdd {
                rdd: id,
                partition: tc.partition as u32,
            };
            write_partition(&part_file(&d, tc.partition), &block, &values)
        })?;
        finish_output(&dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_belong_to_the_split_they_start_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        let text = "alpha\nbeta\r\ngamma\n\ndelta";
        std::fs::write(&path, text).unwrap();
        let size = text.len() as u64;
        for cuts in 1..=size {
            let mut all = Vec::new();
            let mut start = 0;
            while start < size {
                let end = (start + cuts).min(size);
                all.extend(
                    read_lines(&TextSplit {
                        path: path.clone(),
                        start,
                        end,
                    })
                    .unwrap(),
                );
                start = end;
            }
            assert_eq!(
                all,
                vec!["alpha", "beta", "gamma", "", "delta"],
                "split size {cuts}"
            );
        }
    }
}
