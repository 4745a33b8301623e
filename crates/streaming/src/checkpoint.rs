//! Metadata checkpoints: what a restarted driver needs to resume a stream where it stopped.
//!
//! After every batch, the context writes `<dir>/metadata/checkpoint-<batch time ms>` (JSON;
//! written to a temporary file, fsynced, renamed) holding the batch duration, the zero time, the
//! last completed batch, the batches generated but not completed, the operator graph (names in
//! construction order, and the `#[streaming_job]` fingerprint when there is one), each input's
//! position (files taken, offsets) and the files of each operator's RDD checkpoints. The last
//! few are kept. [`StreamingContext::get_or_create`](crate::StreamingContext::get_or_create)
//! reads the newest one that parses (a damaged or foreign file is reported with its name and the
//! next older one is tried).

use crate::{Error, Result, Time};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The checkpoint file format version.
const VERSION: u32 = 1;
/// How many metadata checkpoints are kept.
const KEEP: usize = 3;

/// One operator's saved state.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct OperatorState {
    /// The operator's name (checked against the rebuilt graph).
    pub(crate) name: String,
    /// Its RDD checkpoints still needed: (batch time in ms, directory).
    pub(crate) rdds: Vec<(u64, PathBuf)>,
    /// How many partitions each of those RDDs had, by batch time in ms, so that a restore can
    /// tell a missing partition file (a directory cannot show a missing last file). Absent from
    /// checkpoints written before it was recorded: those restore with the files there, checked
    /// only for gaps. A field with a default rather than a new format version, so that such
    /// checkpoints still resume.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) rdd_partitions: Vec<(u64, usize)>,
    /// An input's position (what it has read), in its own format.
    pub(crate) input: Option<String>,
}

/// The content of a metadata checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Metadata {
    /// Always "spate-checkpoint": tells a foreign file from a damaged one.
    pub(crate) format: String,
    pub(crate) version: u32,
    pub(crate) batch_ms: u64,
    pub(crate) zero_ms: u64,
    /// The last completed batch.
    pub(crate) time_ms: u64,
    /// Batches generated but not completed when this was written.
    pub(crate) pending_ms: Vec<u64>,
    /// The `#[streaming_job]` graph fingerprint, if the graph was built by one.
    pub(crate) fingerprint: Option<u64>,
    /// Every operator, in construction order.
    pub(crate) operators: Vec<OperatorState>,
}

impl Metadata {
    pub(crate) fn new(batch_ms: u64, zero: Time, time: Time) -> Metadata {
        Metadata {
            format: "spate-checkpoint".into(),
            version: VERSION,
            batch_ms,
            zero_ms: zero.ms(),
            time_ms: time.ms(),
            pending_ms: Vec::new(),
            fingerprint: None,
            operators: Vec::new(),
        }
    }
}

fn metadata_dir(dir: &Path) -> PathBuf {
    dir.join("metadata")
}

/// Writes `meta` atomically and deletes all but the newest few.
pub(crate) fn write(dir: &Path, meta: &Metadata) -> Result<()> {
    let mdir = metadata_dir(dir);
    std::fs::create_dir_all(&mdir).map_err(|source| Error::Io {
        action: "creating",
        path: mdir.clone(),
        source,
    })?;
    let path = mdir.join(format!("checkpoint-{}", meta.time_ms));
    let json = serde_json::to_vec_pretty(meta)
        .map_err(|e| Error::State(format!("cannot encode a checkpoint: {e}")))?;
    spate_core::write_atomically(&path, &json)?;
    let mut all = list(dir)?;
    while all.len() > KEEP {
        let (_, old) = all.remove(0);
        let _ = std::fs::remove_file(old);
    }
    Ok(())
}

/// Metadata checkpoint files, oldest first.
fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mdir = metadata_dir(dir);
    let entries = match std::fs::read_dir(&mdir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                action: "listing",
                path: mdir,
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(t) = name
            .strip_prefix("checkpoint-")
            .and_then(|t| t.parse::<u64>().ok())
        {
            out.push((t, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn read_one(path: &Path) -> std::result::Result<Metadata, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let meta: Metadata = serde_json::from_slice(&bytes)
        .map_err(|e| format!("it is damaged or not a Spate checkpoint ({e})"))?;
    if meta.format != "spate-checkpoint" {
        return Err("it is not a Spate checkpoint".into());
    }
    if meta.version != VERSION {
        return Err(format!(
            "it has format version {}, this build reads version {VERSION}",
            meta.version
        ));
    }
    Ok(meta)
}

/// The newest metadata checkpoint under `dir` that reads correctly; damaged ones are reported
/// (with their file names) and skipped. `Ok(None)` when there is none at all.
pub(crate) fn read_latest(dir: &Path) -> Result<Option<Metadata>> {
    let mut problems = Vec::new();
    for (_, path) in list(dir)?.into_iter().rev() {
        match read_one(&path) {
            Ok(meta) => {
                for p in &problems {
                    tracing::warn!("{p}");
                }
                return Ok(Some(meta));
            }
            Err(why) => problems.push(format!(
                "skipping checkpoint {}: {why}; trying an older one",
                path.display()
            )),
        }
    }
    if problems.is_empty() {
        Ok(None)
    } else {
        Err(Error::State(format!(
            "no usable checkpoint in {}:\n  - {}",
            metadata_dir(dir).display(),
            problems.join("\n  - ")
        )))
    }
}

/// Compares the graph recorded in a checkpoint with the one just rebuilt; names the first
/// operator that was added, removed or changed.
pub(crate) fn compare_graphs(
    saved: &[OperatorState],
    rebuilt: &[String],
) -> std::result::Result<(), String> {
    for (i, (s, r)) in saved.iter().zip(rebuilt).enumerate() {
        if s.name != *r {
            return Err(format!(
                "operator #{i} was `{}` when the checkpoint was written and is now `{r}`",
                s.name
            ));
        }
    }
    match saved.len().cmp(&rebuilt.len()) {
        std::cmp::Ordering::Less => Err(format!(
            "operator #{} `{}` was added after the checkpoint was written",
            saved.len(),
            rebuilt[saved.len()]
        )),
        std::cmp::Ordering::Greater => Err(format!(
            "operator #{} `{}` was removed after the checkpoint was written",
            rebuilt.len(),
            saved[rebuilt.len()].name
        )),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(name: &str) -> OperatorState {
        OperatorState {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn newest_readable_checkpoint_wins_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_latest(dir.path()).unwrap().is_none());
        for t in [1000, 2000, 3000, 4000] {
            write(
                dir.path(),
                &Metadata::new(1000, Time::from_ms(0), Time::from_ms(t)),
            )
            .unwrap();
        }
        let files = list(dir.path()).unwrap();
        assert_eq!(
            files.iter().map(|f| f.0).collect::<Vec<_>>(),
            vec![2000, 3000, 4000],
            "the last 3 are kept"
        );
        // Truncate the newest: the next older one is used.
        std::fs::write(&files[2].1, b"{\"format\": \"spate-chec").unwrap();
        assert_eq!(read_latest(dir.path()).unwrap().unwrap().time_ms, 3000);
        // A foreign file and a damaged one: an error naming both files.
        std::fs::write(&files[1].1, br#"{"hello": "world"}"#).unwrap();
        std::fs::write(&files[0].1, b"\x00\x01").unwrap();
        std::fs::write(&files[2].1, b"garbage").unwrap();
        let e = read_latest(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("checkpoint-2000")
                && e.contains("checkpoint-3000")
                && e.contains("checkpoint-4000"),
            "{e}"
        );
    }

    #[test]
    fn a_checkpoint_without_partition_counts_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let mut meta = Metadata::new(1000, Time::from_ms(0), Time::from_ms(2000));
        meta.operators = vec![OperatorState {
            name: "update_state_by_key".into(),
            rdds: vec![(2000, PathBuf::from("/c/rdds/rdd-5"))],
            rdd_partitions: vec![(2000, 4)],
            input: None,
        }];
        write(dir.path(), &meta).unwrap();
        assert_eq!(read_latest(dir.path()).unwrap(), Some(meta.clone()));

        // As written before the counts were recorded: the same, without them.
        let mut json = serde_json::to_value(&meta).unwrap();
        json["operators"][0]
            .as_object_mut()
            .unwrap()
            .remove("rdd_partitions");
        let path = dir.path().join("metadata/checkpoint-3000");
        std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        let old = read_latest(dir.path()).unwrap().unwrap();
        assert_eq!(old.operators[0].rdds, meta.operators[0].rdds);
        assert!(old.operators[0].rdd_partitions.is_empty());
    }

    #[test]
    fn graph_changes_are_named() {
        let saved = vec![op("queue_stream"), op("map"), op("foreach_rdd")];
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(compare_graphs(&saved, &s(&["queue_stream", "map", "foreach_rdd"])).is_ok());
        let e = compare_graphs(&saved, &s(&["queue_stream", "filter", "foreach_rdd"])).unwrap_err();
        assert!(
            e.contains("#1 was `map`") && e.contains("now `filter`"),
            "{e}"
        );
        let e = compare_graphs(&saved, &s(&["queue_stream", "map", "foreach_rdd", "print"]))
            .unwrap_err();
        assert!(e.contains("#3 `print` was added"), "{e}");
        let e = compare_graphs(&saved, &s(&["queue_stream", "map"])).unwrap_err();
        assert!(e.contains("#2 `foreach_rdd` was removed"), "{e}");
    }
}
