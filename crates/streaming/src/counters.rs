//! Input counters: named counts an input stream keeps about its input (records skipped as
//! malformed, records lost, files ignored), registered with the graph so that the monitoring
//! page, `/api/inputs` and `/metrics` show them.
//!
//! Receivers report what they skip through [`ReceiverInfo`](crate::ReceiverInfo); an input
//! without a receiver (a directory of files, a Kafka topic read directly, any
//! [`custom_input_stream`](crate::StreamingContext::custom_input_stream)) has no such channel,
//! and a count kept only in the stream's own struct is invisible from outside the process.
//! This is the channel for them: the stream makes its counters from an [`InputCounters`] set,
//! hands the set to [`StreamingContext::report_input_counters`] once the stream exists, and
//! bumps the counters wherever it notices something. A bump is one relaxed atomic addition;
//! the set's lock is taken only to make a counter and to read them all at a scrape.

use crate::dstream::DStream;
use crate::graph::DStreamBase;
use crate::{StreamingContext, Time};
use parking_lot::Mutex;
use spate_core::Data;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// One counter of an input stream: a shared atomic, cheap to clone and to bump from any thread
/// (the job generator planning a batch, or the batch's tasks).
#[derive(Clone, Debug, Default)]
pub struct InputCounter(Arc<AtomicU64>);

impl InputCounter {
    /// Adds `n`; returns the count with it (for a log line: read apart, it could hold other
    /// threads' additions made in between).
    pub fn add(&self, n: u64) -> u64 {
        self.0.fetch_add(n, Ordering::Relaxed).wrapping_add(n)
    }

    /// Adds one; returns the count with it.
    pub fn inc(&self) -> u64 {
        self.add(1)
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct Named {
    name: &'static str,
    help: &'static str,
    value: InputCounter,
}

/// The named counters of one input stream (cloning gives another handle to the same set).
///
/// A name becomes the Prometheus counter `spate_input_<name>_total`, labelled with the stream's
/// id, so the same name in two streams is one family: use the shared vocabulary where it fits
/// (`records_read`, `records_skipped` for malformed input, `records_lost` for input gone before
/// it was read, `files_read`, `files_ignored`). Names are lowercase letters, digits and
/// underscores, starting with a letter; `start()` refuses others, and `records`, which
/// `spate_input_records_total` (records in completed batches) already is.
///
/// Count each event once. The RDD of a batch is computed once, so a count made while planning
/// the batch (in the input's `compute`) is made once; but a batch read by two outputs, or
/// again by a window, runs its tasks again, so a count made in a task must be guarded by a flag
/// per partition that only the first read sets.
///
/// ```
/// use spate_streaming::{InputCounters, StreamingContext};
/// use std::time::Duration;
///
/// let ssc = StreamingContext::new("local[1]", Duration::from_secs(1)).unwrap();
/// let counters = InputCounters::new();
/// let skipped = counters.counter("records_skipped", "Records skipped as malformed (logged).");
/// let numbers = ssc.custom_input_stream("numbers", move |ctx, _time| {
///     let raw = ["1", "two", "3"];
///     let good: Vec<u32> = raw.iter().filter_map(|s| s.parse().ok()).collect();
///     skipped.add((raw.len() - good.len()) as u64); // planned once per batch
///     Ok(Some(ctx.parallelize(good, 1)))
/// });
/// ssc.report_input_counters(&numbers, &counters);
/// ```
#[derive(Clone, Default)]
pub struct InputCounters {
    named: Arc<Mutex<Vec<Named>>>,
}

impl InputCounters {
    /// An empty set.
    pub fn new() -> InputCounters {
        InputCounters::default()
    }

    /// The counter `name`, made (at zero, described by `help` on `/metrics`) on first use; later
    /// calls with the same name return the same counter.
    pub fn counter(&self, name: &'static str, help: &'static str) -> InputCounter {
        let mut named = self.named.lock();
        if let Some(n) = named.iter().find(|n| n.name == name) {
            return n.value.clone();
        }
        let value = InputCounter::default();
        named.push(Named {
            name,
            help,
            value: value.clone(),
        });
        value
    }

    /// Every counter: name, help and value, in the order they were made.
    pub fn values(&self) -> Vec<(&'static str, &'static str, u64)> {
        self.named
            .lock()
            .iter()
            .map(|n| (n.name, n.help, n.value.get()))
            .collect()
    }

    fn same(&self, other: &InputCounters) -> bool {
        Arc::ptr_eq(&self.named, &other.named)
    }
}

impl std::fmt::Debug for InputCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (name, _, value) in self.values() {
            m.entry(&name, &value);
        }
        m.finish()
    }
}

/// A set of counters as registered with the graph. It holds no operator (only what names it),
/// so the registry outlives `stop()`, which drops the operators: the page still shows the
/// final counts.
pub(crate) struct Reported {
    pub(crate) stream: usize,
    pub(crate) name: String,
    pub(crate) call_site: String,
    pub(crate) counters: InputCounters,
}

/// One stream's counters at a moment: each name once (summed, should two sets of the stream
/// both have it), in the order they were made.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct InputSnapshot {
    pub(crate) stream: usize,
    pub(crate) name: String,
    pub(crate) call_site: String,
    /// Name, help, value.
    pub(crate) counters: Vec<(String, &'static str, u64)>,
}

/// Help of a counter an executor sent that this process never made (one made lazily, in a
/// task that only ran there).
const REMOTE_HELP: &str = "Counted in an executor's process.";

/// Adds the counts executors made (`remote`) to the snapshots of their streams; a stream with
/// no snapshot here gets none (only reported streams are shown).
pub(crate) fn add_remote(
    snapshots: &mut [InputSnapshot],
    remote: &[spate_core::cluster::InputCount],
) {
    for count in remote {
        let Some(s) = snapshots
            .iter_mut()
            .find(|s| s.stream as u64 == count.stream)
        else {
            continue;
        };
        match s.counters.iter_mut().find(|c| c.0 == count.name) {
            Some(c) => c.2 += count.value,
            None => s
                .counters
                .push((count.name.clone(), REMOTE_HELP, count.value)),
        }
    }
}

/// The registry's counters, one snapshot per stream, by stream id.
pub(crate) fn snapshot(reported: &[Reported]) -> Vec<InputSnapshot> {
    let mut out: Vec<InputSnapshot> = Vec::new();
    for r in reported {
        let i = match out.iter().position(|s| s.stream == r.stream) {
            Some(i) => i,
            None => {
                out.push(InputSnapshot {
                    stream: r.stream,
                    name: r.name.clone(),
                    call_site: r.call_site.clone(),
                    counters: Vec::new(),
                });
                out.len() - 1
            }
        };
        let counters = &mut out[i].counters;
        for (name, help, value) in r.counters.values() {
            match counters.iter_mut().find(|c| c.0 == name) {
                Some(c) => c.2 += value,
                None => counters.push((name.to_string(), help, value)),
            }
        }
    }
    out.sort_by_key(|s| s.stream);
    out
}

/// Whether `name` can be a counter's name; the error says how to fix it.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let shown = format!("spate_input_{name}_total");
    let well_formed = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !well_formed {
        return Err(format!(
            "the input counter {name:?} cannot be a metric name ({shown}): use lowercase letters, digits and underscores, starting with a letter, such as records_skipped"
        ));
    }
    if name.ends_with("_total") {
        return Err(format!(
            "the input counter {name:?} would be shown as {shown}: drop the _total suffix, which is added"
        ));
    }
    if name == "records" {
        return Err(
            "the input counter \"records\" would be spate_input_records_total, which counts the records of completed batches: name what is counted, such as records_read or records_skipped"
                .into(),
        );
    }
    Ok(())
}

impl StreamingContext {
    /// Shows the counters of `counters` as `stream`'s, on the monitoring page, in
    /// `/api/inputs` and in `/metrics` (`spate_input_<name>_total{stream="<id>",input="<op>"}`).
    /// Call it once the stream is made (its `compute` usually holds the counters already); the
    /// set's counters made later are shown too. Reporting the same set again changes nothing;
    /// another set of the same stream adds its counters (summed where the names meet). Names
    /// are checked by [`start`](Self::start), with the graph's other problems.
    #[track_caller]
    pub fn report_input_counters<T: Data>(&self, stream: &DStream<T>, counters: &InputCounters) {
        let node = stream.node.as_ref();
        let mut reported = self.graph().input_counters.lock();
        if reported
            .iter()
            .any(|r| r.stream == node.id() && r.counters.same(counters))
        {
            return;
        }
        reported.push(Reported {
            stream: node.id(),
            name: node.name().to_string(),
            call_site: node.call_site().to_string(),
            counters: counters.clone(),
        });
    }

    /// Makes `records(t)` the number of records the input `stream` holds in the batch at `t`,
    /// for a stream made by [`custom_input_stream`](Self::custom_input_stream) or
    /// [`custom_input_stream_with_state`](Self::custom_input_stream_with_state), which count
    /// nothing otherwise (a receiver's stream counts its blocks already). The count becomes the
    /// stream's share of [`BatchInfo::records`](crate::BatchInfo::records) and
    /// [`BatchInfo::input_records`](crate::BatchInfo::input_records), so it shows on the
    /// monitoring page's input chart and in `spate_input_records_total`.
    ///
    /// The job generator calls `records(t)` once per batch, right after the stream's `compute`
    /// for `t` ran and before the batch is submitted: the count has to be known from what
    /// `compute` decided (offset ranges, file sizes), not from reading the records, which
    /// happens later in the batch's tasks. Return `None` when there is no count for `t` (the
    /// batch is then counted as holding none of this stream's records); a panic is logged and
    /// treated as `None`, and the batch runs. Call it before [`start`](Self::start), and again
    /// when [`get_or_create`](Self::get_or_create) rebuilds the graph after a driver restart,
    /// so the replayed batches are counted too. A later call replaces the earlier function.
    /// A stream that is not an input of this context is a graph error reported by `start`.
    #[track_caller]
    pub fn report_input_records<T: Data>(
        &self,
        stream: &DStream<T>,
        records: impl Fn(Time) -> Option<u64> + Send + Sync + 'static,
    ) {
        let node = stream.node.as_ref();
        if !std::ptr::eq(node.graph.as_ptr(), self.graph()) {
            stream.graph_error(
                "report_input_records was given a stream of another StreamingContext; report it to the context that made it",
            );
            return;
        }
        if !node.is_input() {
            stream.graph_error(
                "report_input_records needs an input stream (made by custom_input_stream): a derived stream's records are already counted by its inputs",
            );
            return;
        }
        node.set_records(Arc::new(records));
    }

    /// Every reported stream's counters now.
    pub(crate) fn input_snapshots(&self) -> Vec<InputSnapshot> {
        let mut snapshots = snapshot(&self.graph().input_counters.lock());
        // On a cluster, tasks that read input (a file, a Kafka offset range) run on executors,
        // which count there and send their counts with their heartbeats.
        if let Some(cluster) = self.context().cluster() {
            add_remote(&mut snapshots, &cluster.input_counts());
        }
        snapshots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_is_made_once_per_name_and_shared_by_its_clones() {
        let set = InputCounters::new();
        let a = set.counter("records_skipped", "first help");
        let b = set.counter("records_skipped", "other help");
        assert_eq!(a.add(2), 2);
        assert_eq!(b.inc(), 3);
        assert_eq!(a.get(), 3);
        set.counter("records_lost", "lost").add(5);
        assert_eq!(
            set.values(),
            vec![
                ("records_skipped", "first help", 3),
                ("records_lost", "lost", 5)
            ]
        );
    }

    #[test]
    fn snapshots_merge_the_sets_of_one_stream_and_sort_by_stream() {
        let (x, y, z) = (
            InputCounters::new(),
            InputCounters::new(),
            InputCounters::new(),
        );
        x.counter("records_skipped", "h").add(1);
        y.counter("records_skipped", "h2").add(2);
        y.counter("files_ignored", "f").add(4);
        z.counter("records_lost", "l").add(7);
        let reported = |stream, name: &str, counters: &InputCounters| Reported {
            stream,
            name: name.into(),
            call_site: "here".into(),
            counters: counters.clone(),
        };
        let snaps = snapshot(&[
            reported(3, "b", &z),
            reported(1, "a", &x),
            reported(1, "a", &y),
        ]);
        assert_eq!(snaps.len(), 2);
        assert_eq!((snaps[0].stream, snaps[0].name.as_str()), (1, "a"));
        assert_eq!(
            snaps[0].counters,
            vec![
                ("records_skipped".to_string(), "h", 3),
                ("files_ignored".to_string(), "f", 4)
            ]
        );
        assert_eq!(
            snaps[1].counters,
            vec![("records_lost".to_string(), "l", 7)]
        );

        // Executors' counts add to their streams' (a name only they made is shown with a help
        // of its own); a stream this process does not report is left out.
        let mut snaps = snaps;
        let count = |stream, name: &str, value| spate_core::cluster::InputCount {
            stream,
            name: name.into(),
            value,
        };
        add_remote(
            &mut snaps,
            &[
                count(1, "records_skipped", 10),
                count(1, "lines_dropped", 2),
                count(3, "records_lost", 1),
                count(9, "records_lost", 5),
            ],
        );
        assert_eq!(
            snaps[0].counters,
            vec![
                ("records_skipped".to_string(), "h", 13),
                ("files_ignored".to_string(), "f", 4),
                ("lines_dropped".to_string(), REMOTE_HELP, 2)
            ]
        );
        assert_eq!(
            snaps[1].counters,
            vec![("records_lost".to_string(), "l", 8)]
        );
        assert_eq!(snaps.len(), 2);
    }

    #[test]
    fn names_must_make_metric_names_of_their_own() {
        for good in ["records_skipped", "files_ignored", "r2"] {
            assert_eq!(check_name(good), Ok(()));
        }
        for bad in [
            "",
            "Records",
            "records-skipped",
            "2records",
            "_x",
            "caf\u{e9}",
        ] {
            assert!(
                check_name(bad).is_err_and(|e| e.contains("lowercase letters")),
                "{bad:?}"
            );
        }
        assert!(check_name("records_skipped_total").is_err_and(|e| e.contains("drop the _total")));
        assert!(check_name("records").is_err_and(|e| e.contains("records_read")));
    }
}
