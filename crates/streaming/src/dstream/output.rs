//! Output operations: `foreach_rdd`, `print`, `save_as_text_files`, `save_as_object_files`.
//! Each registers with the graph and, at every batch where the stream has an RDD, becomes a job.

use super::DStream;
use crate::graph::{Job, OutputOp};
use crate::{BoxError, Error, Result, Time, ToText};
use spate_core::{Data, Rdd};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The text Spark Streaming's `print()` shows for a batch: a dashed line, `Time: <t> ms`, a dashed
/// line, up to `n` elements, `...` if there were more, and an empty line.
pub fn format_batch<T: ToText>(time: Time, first: &[T], n: usize) -> String {
    let mut s = String::new();
    s.push_str("-------------------------------------------\n");
    s.push_str(&format!("Time: {time}\n"));
    s.push_str("-------------------------------------------\n");
    for x in first.iter().take(n) {
        x.write_text(&mut s);
        s.push('\n');
    }
    if first.len() > n {
        s.push_str("...\n");
    }
    s.push('\n');
    s
}

/// The directory a save writes for batch `time`: `prefix-<ms>` or `prefix-<ms>.suffix`.
pub fn batch_path(prefix: &str, suffix: &str, time: Time) -> PathBuf {
    if suffix.is_empty() {
        PathBuf::from(format!("{prefix}-{}", time.ms()))
    } else {
        PathBuf::from(format!("{prefix}-{}.{suffix}", time.ms()))
    }
}

/// Saves into `target` through a temporary sibling, replacing an earlier output of the same batch
/// (a batch re-run after a failure writes the same data again).
fn save_replacing(target: &Path, save: impl FnOnce(&Path) -> spate_core::Result<()>) -> Result<()> {
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    };
    let tmp = PathBuf::from(format!("{}._spate_tmp", target.display()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io("removing", &tmp))?;
    }
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
    }
    save(&tmp)?;
    if target.exists() {
        std::fs::remove_dir_all(target).map_err(io("replacing", target))?;
    }
    std::fs::rename(&tmp, target).map_err(io("renaming into", target))?;
    Ok(())
}

impl<T: Data> DStream<T> {
    /// Registers an output operation made of `job(rdd, time)` for each batch's RDD.
    #[track_caller]
    pub(crate) fn register_output(
        &self,
        name: &'static str,
        job: impl Fn(&Rdd<T>, Time) -> Result<()> + Send + Sync + 'static,
    ) {
        let location = std::panic::Location::caller();
        let stream = self.clone();
        let job = Arc::new(job);
        let op = OutputOp {
            name,
            parent: self.id(),
            call_site: format!("{}:{}", location.file(), location.line()),
            generate: Box::new(move |t| {
                Ok(stream.node.get_or_compute(t)?.map(|rdd| {
                    let job = job.clone();
                    Box::new(move || job(&rdd, t)) as Job
                }))
            }),
        };
        if let Some(g) = self.node.graph.upgrade() {
            if g.started.load(std::sync::atomic::Ordering::Acquire) {
                g.add_error(
                    &op.call_site,
                    name,
                    "output operations cannot be added after the context has started",
                );
            }
            g.creation_log.lock().push((
                crate::job::current_op(),
                format!("{} at {}", op.name, op.call_site),
            ));
            g.outputs.lock().push(Arc::new(op));
        }
    }

    /// The fundamental output operation: runs `f` on every batch's RDD and time, in the driver's
    /// job thread. An error fails that batch (reported to listeners and logged); later batches go
    /// on.
    #[track_caller]
    pub fn foreach_rdd(
        &self,
        f: impl Fn(&Rdd<T>, Time) -> Result<(), BoxError> + Send + Sync + 'static,
    ) {
        self.register_output("foreach_rdd", move |rdd, t| {
            f(rdd, t).map_err(Error::Output)
        });
    }

    /// Writes each batch's RDD as text files into `prefix-<time ms>[.suffix]`
    /// ([`Rdd::save_as_text_file`] layout), replacing the output of an earlier run of that batch.
    #[track_caller]
    pub fn save_as_text_files(&self, prefix: impl Into<String>, suffix: impl Into<String>)
    where
        T: ToText,
    {
        let (prefix, suffix) = (prefix.into(), suffix.into());
        self.register_output("save_as_text_files", move |rdd, t| {
            save_replacing(&batch_path(&prefix, &suffix, t), |p| {
                rdd.save_as_text_file(p)
            })
        });
    }

    /// Writes each batch's RDD as serialized object files into `prefix-<time ms>[.suffix]`
    /// (read back with [`Context::object_file`](spate_core::Context::object_file)).
    #[track_caller]
    pub fn save_as_object_files(&self, prefix: impl Into<String>, suffix: impl Into<String>) {
        let (prefix, suffix) = (prefix.into(), suffix.into());
        self.register_output("save_as_object_files", move |rdd, t| {
            save_replacing(&batch_path(&prefix, &suffix, t), |p| {
                rdd.save_as_object_file(p)
            })
        });
    }
}

impl<K: Data + ToText, V: Data + ToText> DStream<(K, V)> {
    /// Writes each batch's pairs into `prefix-<time ms>[.suffix]` as Hadoop's `TextOutputFormat`
    /// does (one `key<TAB>value` line per pair, [`Rdd::save_as_hadoop_file`]), what Spark's
    /// `saveAsHadoopFiles` writes with that format; replaces the output of an earlier run of
    /// that batch. (Hadoop's binary formats, such as SequenceFiles, are not written: keep
    /// `save_as_object_files` for Spate's own binary form.)
    #[track_caller]
    pub fn save_as_hadoop_files(&self, prefix: impl Into<String>, suffix: impl Into<String>) {
        let (prefix, suffix) = (prefix.into(), suffix.into());
        self.register_output("save_as_hadoop_files", move |rdd, t| {
            save_replacing(&batch_path(&prefix, &suffix, t), |p| {
                rdd.save_as_hadoop_file(p)
            })
        });
    }
}

impl<T: Data + ToText> DStream<T> {
    /// Prints the first ten elements of every batch to standard output, in Spark's format (see
    /// [`format_batch`]).
    #[track_caller]
    pub fn print(&self) {
        self.print_n(10);
    }

    /// Prints the first `n` elements of every batch.
    #[track_caller]
    pub fn print_n(&self, n: usize) {
        self.print_to(n, Arc::new(Mutex::new(std::io::stdout())));
    }

    /// Prints the first `n` elements of every batch to `out`.
    #[track_caller]
    pub fn print_to(&self, n: usize, out: Arc<Mutex<dyn Write + Send>>) {
        self.register_output("print", move |rdd, t| {
            let first = rdd.take(n + 1)?;
            let text = format_batch(t, &first, n);
            let mut w = out.lock().unwrap_or_else(|e| e.into_inner());
            w.write_all(text.as_bytes())
                .and_then(|()| w.flush())
                .map_err(|e| Error::Output(Box::new(e)))
        });
    }
}
