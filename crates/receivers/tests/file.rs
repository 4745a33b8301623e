//! File streams on real temporary directories: which batch takes which file (modification time,
//! hidden names, renames, files present at start, the remember window, files from the future,
//! old files moved in, names that are not UTF-8), what a missing directory does, and that lines
//! that are not UTF-8 and files left unread are counted instead of failing or vanishing, and
//! that those counts reach the monitoring server (`/metrics`, `/api/inputs`, the page).
//!
//! The manual clock starts near the wall-clock time (a second or two behind, on a batch) so that
//! real modification times compare with batch times and are after the zero time even with a
//! coarse file-system clock; tests that need a precise time set it on the file.
//! Every wait is bounded; nothing sleeps for correctness.

use spate_receivers::{FileStream, FileStreamConfig, FileStreamStats, MissingDirectory, Sources};
use spate_streaming::testing::{http_get, metric_sample};
use spate_streaming::{Clock, DStream, Error, ManualClock, StreamingContext, Time};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const BATCH: Duration = Duration::from_secs(1);
/// The bound of every wait.
const DEADLINE: Duration = Duration::from_secs(30);
/// The most batches a test runs to catch the clock up with a file's modification time.
const MAX_CATCH_UP: usize = 120;

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A started context on a manual clock and what each batch of its one file stream held.
struct Run {
    ssc: StreamingContext,
    clock: ManualClock,
    out: Arc<Mutex<BTreeMap<u64, Vec<String>>>>,
}

/// A `local[2]` context with 1 s batches on a manual clock one to two seconds behind the wall
/// clock, on a batch time (which is the zero time); returns the zero time too.
fn context() -> (StreamingContext, ManualClock, u64) {
    let ssc = StreamingContext::new("local[2]", BATCH).unwrap();
    let zero = (wall_ms() / 1000 - 1) * 1000;
    let clock = ManualClock::new(zero);
    ssc.set_clock(Clock::Manual(clock.clone())).unwrap();
    (ssc, clock, zero)
}

impl Run {
    /// Collects `stream` and starts the context.
    fn start(
        ssc: StreamingContext,
        clock: ManualClock,
        zero: u64,
        stream: &DStream<String>,
    ) -> Run {
        let out: Arc<Mutex<BTreeMap<u64, Vec<String>>>> = Arc::default();
        let o = out.clone();
        stream.foreach_rdd(move |rdd, t| {
            let lines = rdd.collect()?;
            o.lock().unwrap().insert(t.ms(), lines);
            Ok(())
        });
        ssc.start().unwrap();
        assert_eq!(ssc.zero_time(), Some(Time::from_ms(zero)));
        Run { ssc, clock, out }
    }

    /// The time of the next batch.
    fn next_time(&self) -> u64 {
        self.clock.time().ms() + 1000
    }

    /// Runs the next batch; returns its time and lines.
    fn batch(&self) -> (u64, Vec<String>) {
        self.clock.advance(BATCH);
        let t = self.clock.time();
        assert!(
            self.ssc.wait_for_batch(t, DEADLINE),
            "batch {t} did not complete"
        );
        let lines = self.out.lock().unwrap().get(&t.ms()).cloned();
        (t.ms(), lines.expect("every batch produces an RDD"))
    }

    /// Runs `n` batches and asserts that they are all empty.
    fn empty_batches(&self, n: usize) {
        for _ in 0..n {
            let (t, lines) = self.batch();
            assert_eq!(lines, Vec::<String>::new(), "batch {t}");
        }
    }

    /// Runs batches, each of which must be empty, until the next one is the first at or after
    /// `ms` (bounded); then runs that one and returns its time and lines.
    fn batch_at_or_after(&self, ms: u64) -> (u64, Vec<String>) {
        for _ in 0..MAX_CATCH_UP {
            if self.next_time() >= ms {
                return self.batch();
            }
            let (t, lines) = self.batch();
            assert_eq!(lines, Vec::<String>::new(), "batch {t} is before {ms}");
        }
        panic!("the clock did not catch up with {ms} in {MAX_CATCH_UP} batches");
    }

    /// Stops the context and asserts that no batch failed.
    fn stop(self) -> BTreeMap<u64, Vec<String>> {
        self.ssc.stop(false);
        let failures: Vec<String> = self
            .ssc
            .completed_batches()
            .into_iter()
            .filter_map(|b| b.failure)
            .collect();
        assert!(failures.is_empty(), "{failures:?}");
        self.out.lock().unwrap().clone()
    }
}

fn lines_of(name: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{name} line {i}")).collect()
}

/// Writes `lines` to `path`; returns the file's modification time in ms.
fn write(path: &Path, lines: &[String]) -> u64 {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
    mtime_ms(path)
}

fn mtime_ms(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn set_mtime(path: &Path, ms: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_millis(ms))
        .unwrap();
    assert_eq!(mtime_ms(path), ms);
}

/// Writes `lines` to `path` with modification time `ms`.
fn write_at(path: &Path, lines: &[String], ms: u64) {
    write(path, lines);
    set_mtime(path, ms);
}

fn concat(parts: &[&[String]]) -> Vec<String> {
    parts.concat()
}

#[test]
fn a_new_file_is_read_exactly_once_by_the_first_batch_at_or_after_its_modification_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let (ssc, clock, zero) = context();
    let stream = ssc.text_file_stream(&dir);
    let run = Run::start(ssc, clock, zero, &stream);
    run.empty_batches(1);

    // A file written now (the manual clock lags the wall clock) is taken once the batch time
    // reaches its modification time, and only then.
    let a = lines_of("a", 100);
    let next = run.next_time();
    let m = write(&dir.join("a.txt"), &a);
    let (t, lines) = run.batch_at_or_after(m);
    assert_eq!(t, next.max(m.div_ceil(1000) * 1000));
    assert_eq!(lines, a);

    // Modification time equal to the batch time: that batch; one ms later: the next batch.
    let t = run.next_time();
    let (b, c) = (lines_of("b", 3), lines_of("c", 3));
    write_at(&dir.join("b.txt"), &b, t);
    write_at(&dir.join("c.txt"), &c, t + 1);
    assert_eq!(run.batch(), (t, b.clone()));
    assert_eq!(run.batch(), (t + 1000, c.clone()));

    // Files of one batch are read in modification-time order, not name order.
    let t = run.next_time();
    let (y, z) = (lines_of("y", 2), lines_of("z", 2));
    write_at(&dir.join("y.txt"), &y, t - 100);
    write_at(&dir.join("z.txt"), &z, t - 300);
    assert_eq!(run.batch(), (t, concat(&[&z, &y])));

    // Nothing is read twice.
    run.empty_batches(3);
    let out = run.stop();
    let all: Vec<String> = out.into_values().flatten().collect();
    assert_eq!(all, concat(&[&a, &b, &c, &z, &y]));
}

#[test]
fn a_file_from_the_future_waits_for_a_later_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let (ssc, clock, zero) = context();
    let stream = ssc.text_file_stream(&dir);
    let run = Run::start(ssc, clock, zero, &stream);
    run.empty_batches(1);

    let t = run.next_time();
    let f = lines_of("future", 5);
    write_at(&dir.join("future.txt"), &f, t + 2500);
    run.empty_batches(3);
    assert_eq!(run.batch(), (t + 3000, f));
    run.empty_batches(2);
    run.stop();
}

#[test]
fn hidden_files_are_ignored_and_a_file_renamed_in_from_a_hidden_name_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let (ssc, clock, zero) = context();
    let stream = ssc.text_file_stream(&dir);
    let run = Run::start(ssc, clock, zero, &stream);
    run.empty_batches(1);

    // Written under hidden names (and a directory, which is not a file): never read as such.
    let a = lines_of("a", 50);
    let m = write(&dir.join(".a.txt.tmp"), &a);
    write(&dir.join("_b.txt"), &lines_of("b", 5));
    std::fs::create_dir(dir.join("sub")).unwrap();
    write(&dir.join("sub").join("inner.txt"), &lines_of("inner", 5));
    let (t, lines) = run.batch_at_or_after(m);
    assert!(t >= m);
    assert_eq!(lines, Vec::<String>::new());
    run.empty_batches(2);

    // Renamed in atomically: read by the next batch although its modification time (kept by the
    // rename) is several batches old.
    std::fs::rename(dir.join(".a.txt.tmp"), dir.join("a.txt")).unwrap();
    assert_eq!(mtime_ms(&dir.join("a.txt")), m);
    let (_, lines) = run.batch();
    assert_eq!(lines, a);
    run.empty_batches(2);
    run.stop();
}

#[test]
fn with_new_files_only_files_present_at_start_are_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let (ssc, clock, zero) = context();
    // Present before start: older than the zero time, or exactly at it.
    write_at(&dir.join("old.txt"), &lines_of("old", 5), zero - 5000);
    write_at(&dir.join("at-zero.txt"), &lines_of("at-zero", 5), zero);
    // Modified after the zero time: new, so the first batch reads it.
    let after = lines_of("after-zero", 5);
    write_at(&dir.join("after-zero.txt"), &after, zero + 1);
    let stream = ssc.file_stream(&dir, |_| true, true, FileStreamConfig::default());
    let run = Run::start(ssc, clock, zero, &stream);
    assert_eq!(run.batch(), (zero + 1000, after.clone()));

    let new = lines_of("new", 20);
    let m = write(&dir.join("new.txt"), &new);
    assert_eq!(run.batch_at_or_after(m).1, new);
    run.empty_batches(2);
    let all: Vec<String> = run.stop().into_values().flatten().collect();
    assert_eq!(all, concat(&[&after, &new]));
    // The two files there at start are counted (and logged) as not read.
    assert_eq!(stream.stats().old_files_ignored, 2);
}

#[test]
fn without_new_files_only_files_present_at_start_are_read_by_the_first_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let (ssc, clock, zero) = context();
    let (old, ancient) = (lines_of("old", 5), lines_of("ancient", 5));
    write_at(&dir.join("old.txt"), &old, zero - 5000);
    write_at(&dir.join("ancient.txt"), &ancient, zero - 3_600_000);
    let stream = ssc.file_stream(&dir, |_| true, false, FileStreamConfig::default());
    let run = Run::start(ssc, clock, zero, &stream);
    assert_eq!(run.batch(), (zero + 1000, concat(&[&ancient, &old])));
    run.empty_batches(2);

    let new = lines_of("new", 20);
    let m = write(&dir.join("new.txt"), &new);
    assert_eq!(run.batch_at_or_after(m).1, new);
    run.empty_batches(2);
    let all: Vec<String> = run.stop().into_values().flatten().collect();
    assert_eq!(all, concat(&[&ancient, &old, &new]));
}

#[test]
fn a_file_older_than_the_remember_window_is_read_when_it_appears_and_the_filter_applies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let (ssc, clock, zero) = context();
    let config = FileStreamConfig {
        remember: Duration::from_secs(10),
        ..FileStreamConfig::default()
    };
    let stream = ssc.file_stream(
        &dir,
        |p| p.extension().is_some_and(|e| e == "log"),
        true,
        config,
    );
    let run = Run::start(ssc, clock, zero, &stream);
    run.empty_batches(15);

    // At the next batch t, the window is (t - 10 s, t]. A file modified before it is new all
    // the same: it was not there at the last listing. Both are read, in modification-time order.
    let t = run.next_time();
    let (stale, fresh) = (lines_of("stale", 5), lines_of("fresh", 5));
    write_at(&dir.join("stale.log"), &stale, t - 10_000);
    write_at(&dir.join("fresh.log"), &fresh, t - 9_999);
    write_at(&dir.join("filtered.txt"), &lines_of("filtered", 5), t - 1);
    assert_eq!(run.batch(), (t, concat(&[&stale, &fresh])));
    // Past the window neither is read again, although the stream forgot `fresh` by then.
    run.empty_batches(12);
    let all: Vec<String> = run.stop().into_values().flatten().collect();
    assert_eq!(all, concat(&[&stale, &fresh]));
    assert_eq!(
        stream.stats(),
        FileStreamStats {
            files: 2,
            ..FileStreamStats::default()
        }
    );
}

#[test]
fn a_file_staged_long_ago_and_renamed_in_is_read_and_files_there_at_start_are_not() {
    let tmp = tempfile::tempdir().unwrap();
    let staging = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let (ssc, clock, zero) = context();
    // There before start, an hour old: not new (new files only).
    let before = lines_of("before", 4);
    write_at(&dir.join("before.txt"), &before, zero - 3_600_000);
    let stream = ssc.text_file_stream(&dir);
    let run = Run::start(ssc, clock, zero, &stream);
    run.empty_batches(2);

    // Written elsewhere an hour ago and renamed in now (the rename keeps the time), and one
    // copied in keeping its time (`cp -p`): both new to the directory, both read, once.
    let (staged, copied) = (lines_of("staged", 30), lines_of("copied", 3));
    write_at(
        &staging.path().join("staged.txt"),
        &staged,
        zero - 3_600_000,
    );
    std::fs::rename(staging.path().join("staged.txt"), dir.join("staged.txt")).unwrap();
    write_at(&dir.join("copied.txt"), &copied, zero - 7_200_000);
    assert_eq!(run.batch().1, concat(&[&copied, &staged]));
    run.empty_batches(3);
    assert_eq!(
        stream.stats(),
        FileStreamStats {
            files: 2,
            old_files_ignored: 1,
            lines_skipped: 0
        }
    );

    // Touching the file that was there at start makes it new.
    let t = run.next_time();
    set_mtime(&dir.join("before.txt"), t - 10);
    assert_eq!(run.batch(), (t, before.clone()));
    run.empty_batches(2);
    let all: Vec<String> = run.stop().into_values().flatten().collect();
    assert_eq!(all, concat(&[&copied, &staged, &before]));
    assert_eq!(stream.stats().files, 3);
    assert_eq!(stream.stats().old_files_ignored, 1, "counted once");
}

#[test]
fn a_line_that_is_not_utf8_is_skipped_and_the_rest_of_the_file_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let (ssc, clock, zero) = context();
    let stream = ssc.text_file_stream(&dir);
    // A second output reads the batch's files again (the stream is not persisted).
    let counted = Arc::new(Mutex::new(Vec::new()));
    let c = counted.clone();
    stream.foreach_rdd(move |rdd, _| {
        c.lock().unwrap().push(rdd.count()?);
        Ok(())
    });
    let run = Run::start(ssc, clock, zero, &stream);
    run.empty_batches(1);

    let t = run.next_time();
    let path = dir.join("mixed.txt");
    std::fs::write(&path, b"good 1\nbad \xff line\r\ngood 2\n\xc3\nlast").unwrap();
    set_mtime(&path, t - 100);
    let good = lines_of("good", 2);
    write_at(&dir.join("good.txt"), &good, t - 50);
    assert_eq!(
        run.batch(),
        (
            t,
            vec!["good 1".to_string(), "good 2".into(), "last".into()]
                .into_iter()
                .chain(good.clone())
                .collect()
        )
    );
    run.empty_batches(1);
    run.stop();
    assert_eq!(counted.lock().unwrap().iter().sum::<u64>(), 5);
    // Counted once, although both outputs read the file.
    assert_eq!(
        stream.stats(),
        FileStreamStats {
            files: 2,
            old_files_ignored: 0,
            lines_skipped: 2
        }
    );
}

#[test]
fn the_monitoring_server_shows_each_file_streams_skipped_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, clean_dir) = (tmp.path().join("mixed"), tmp.path().join("clean"));
    std::fs::create_dir(&dir).unwrap();
    std::fs::create_dir(&clean_dir).unwrap();
    let (ssc, clock, zero) = context();
    let stream = ssc.text_file_stream(&dir);
    // A second output reads the batch's files again: the line is still counted once.
    stream.foreach_rdd(|rdd, _| {
        rdd.count()?;
        Ok(())
    });
    // Another file stream, whose file is clean: its counts are its own.
    let clean = ssc.text_file_stream(&clean_dir);
    clean.foreach_rdd(|rdd, _| {
        rdd.count()?;
        Ok(())
    });
    let ui = ssc.start_ui("127.0.0.1:0").unwrap();
    let run = Run::start(ssc, clock, zero, &stream);
    run.empty_batches(1);

    let t = run.next_time();
    let path = dir.join("mixed.txt");
    std::fs::write(&path, b"good 1\nbad \xff line\ngood 2\n").unwrap();
    set_mtime(&path, t - 100);
    write_at(&clean_dir.join("clean.txt"), &lines_of("clean", 2), t - 100);
    assert_eq!(
        run.batch(),
        (t, vec!["good 1".to_string(), "good 2".into()])
    );

    let (id, clean_id) = (stream.id(), clean.id());
    let (status, metrics) = http_get(ui.addr(), "/metrics");
    assert_eq!(status, 200);
    let value = |counter: &str, stream: usize| {
        metric_sample(
            &metrics,
            &format!("spate_input_{counter}_total{{stream=\"{stream}\",input=\"file_stream\"}}"),
        )
    };
    assert_eq!(value("records_skipped", id), Some(1.0), "{metrics}");
    assert_eq!(value("records_skipped", clean_id), Some(0.0), "{metrics}");
    assert_eq!(value("files_read", id), Some(1.0));
    assert_eq!(value("files_read", clean_id), Some(1.0));
    assert_eq!(value("files_ignored", id), Some(0.0));
    assert!(metrics.contains("# TYPE spate_input_records_skipped_total counter\n"));
    assert!(metrics.contains("# HELP spate_input_records_skipped_total "));

    let (status, body) = http_get(ui.addr(), "/api/inputs");
    assert_eq!(status, 200);
    let inputs: serde_json::Value = serde_json::from_str(&body).unwrap();
    let of = |stream: usize| {
        inputs
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["stream"] == stream)
            .unwrap_or_else(|| panic!("no stream {stream} in {inputs}"))
            .clone()
    };
    assert_eq!(of(id)["name"], "file_stream");
    assert_eq!(of(id)["counters"]["records_skipped"], 1);
    assert_eq!(of(id)["counters"]["files_read"], 1);
    assert_eq!(of(clean_id)["counters"]["records_skipped"], 0);

    let (_, page) = http_get(ui.addr(), "/");
    assert!(page.contains("<h2>Input streams</h2>") && page.contains("<th>records skipped</th>"));
    run.stop();
    assert_eq!(stream.stats().lines_skipped, 1);
}

/// A name that is not UTF-8: `stem` followed by the byte 0xE9 (Latin-1 "é") and `.txt`.
#[cfg(unix)]
fn latin1_name(dir: &Path, stem: &str) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let mut name = stem.as_bytes().to_vec();
    name.extend_from_slice(b"\xe9.txt");
    dir.join(std::ffi::OsStr::from_bytes(&name))
}

#[cfg(unix)]
#[test]
fn a_file_name_that_is_not_utf8_is_read_once_across_a_driver_restart() {
    let data = tempfile::tempdir().unwrap();
    let checkpoint = tempfile::tempdir().unwrap();
    let zero = (wall_ms() / 1000 - 1) * 1000;
    let run = recoverable(checkpoint.path(), data.path(), ManualClock::new(zero), zero);
    let (a, hidden, b) = (lines_of("a", 3), lines_of("hidden", 2), lines_of("b", 2));
    write_at(&latin1_name(data.path(), "caf"), &a, zero + 500);
    // Hidden, although the rest of its name is not UTF-8.
    write_at(&latin1_name(data.path(), ".tmp"), &hidden, zero + 600);
    assert_eq!(run.batch(), (zero + 1000, a.clone()));
    write_at(&latin1_name(data.path(), "b"), &b, zero + 1500);
    assert_eq!(run.batch(), (zero + 2000, b.clone()));
    run.stop(); // the driver dies after the batch of zero + 2 s

    // The checkpoint names both files: neither is read again; the hidden one renamed in is new.
    std::fs::rename(
        latin1_name(data.path(), ".tmp"),
        latin1_name(data.path(), "renamed"),
    )
    .unwrap();
    let run = recoverable(
        checkpoint.path(),
        data.path(),
        ManualClock::new(zero + 2000),
        zero,
    );
    assert_eq!(run.batch(), (zero + 3000, hidden));
    run.empty_batches(1);
    run.stop();
}

#[test]
fn a_missing_directory_fails_start_with_a_message_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("incoming");
    let (ssc, _clock, _zero) = context();
    ssc.text_file_stream(&dir).foreach_rdd(|_, _| Ok(()));
    match ssc.start() {
        Err(Error::InvalidGraph(problems)) => {
            let shown = dir.display().to_string();
            assert!(
                problems
                    .iter()
                    .any(|p| p.contains(&shown) && p.contains("create it")),
                "{problems:?}"
            );
        }
        other => panic!("expected InvalidGraph, got {other:?}"),
    }
}

#[test]
fn with_missing_directory_retry_batches_are_empty_until_the_directory_appears() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().join("incoming");
    let (ssc, clock, zero) = context();
    let config = FileStreamConfig {
        missing_directory: MissingDirectory::Retry,
        ..FileStreamConfig::default()
    };
    let stream = ssc.file_stream(&dir, |_| true, true, config);
    let run = Run::start(ssc, clock, zero, &stream);
    run.empty_batches(3);

    // A file written elsewhere after the zero time (before the last, failed, listing) and moved
    // in with the directory: new, like any file renamed into an existing directory.
    let early = lines_of("early", 5);
    let staged = tmp.path().join("early.txt");
    write_at(&staged, &early, zero + 2500);
    std::fs::create_dir(&dir).unwrap();
    std::fs::rename(&staged, dir.join("early.txt")).unwrap();
    assert_eq!(run.batch().1, early);

    let late = lines_of("late", 10);
    let m = write(&dir.join("late.txt"), &late);
    assert_eq!(run.batch_at_or_after(m).1, late);
    run.empty_batches(2);
    let all: Vec<String> = run.stop().into_values().flatten().collect();
    assert_eq!(all, concat(&[&early, &late]));
}

/// A started file stream on a checkpointing context made by `get_or_create` on `checkpoint`.
fn recoverable(checkpoint: &Path, data: &Path, clock: ManualClock, zero: u64) -> Run {
    recoverable_stream(checkpoint, data, clock, zero).0
}

/// [`recoverable`], and the stream.
fn recoverable_stream(
    checkpoint: &Path,
    data: &Path,
    clock: ManualClock,
    zero: u64,
) -> (Run, FileStream) {
    let out: Arc<Mutex<BTreeMap<u64, Vec<String>>>> = Arc::default();
    let stream: Arc<Mutex<Option<FileStream>>> = Arc::default();
    let ssc = StreamingContext::get_or_create(checkpoint, || {
        let ssc = StreamingContext::new("local[2]", BATCH)?;
        ssc.set_clock(Clock::Manual(clock.clone()))?;
        ssc.checkpoint(checkpoint)?;
        let o = out.clone();
        // Not only new files: a fresh stream's first batch takes every file there.
        let files = ssc.file_stream(data, |_| true, false, FileStreamConfig::default());
        files.foreach_rdd(move |rdd, t| {
            let lines = rdd.collect()?;
            o.lock().unwrap().insert(t.ms(), lines);
            Ok(())
        });
        *stream.lock().unwrap() = Some(files);
        Ok(ssc)
    })
    .unwrap();
    ssc.start().unwrap();
    assert_eq!(ssc.zero_time(), Some(Time::from_ms(zero)));
    let stream = stream.lock().unwrap().take().expect("the stream was built");
    (Run { ssc, clock, out }, stream)
}

#[test]
fn after_a_driver_restart_the_file_stream_reads_only_the_files_it_had_not_taken() {
    let data = tempfile::tempdir().unwrap();
    let checkpoint = tempfile::tempdir().unwrap();
    let (a, b, c) = (lines_of("a", 3), lines_of("b", 2), lines_of("c", 4));
    let zero = (wall_ms() / 1000 - 1) * 1000;
    let run = recoverable(checkpoint.path(), data.path(), ManualClock::new(zero), zero);
    write_at(&data.path().join("a.txt"), &a, zero + 500);
    assert_eq!(run.batch(), (zero + 1000, a.clone()));
    write_at(&data.path().join("b.txt"), &b, zero + 1500);
    assert_eq!(run.batch(), (zero + 2000, b.clone()));
    run.stop(); // the driver dies after the batch of zero + 2 s

    // The restarted driver resumes at zero + 3 s knowing the files taken before: `a` and `b` are
    // not read again (a fresh stream would take them all in its first batch).
    write_at(&data.path().join("c.txt"), &c, zero + 2500);
    let clock = ManualClock::new(zero + 2000);
    let run = recoverable(checkpoint.path(), data.path(), clock, zero);
    assert_eq!(run.batch(), (zero + 3000, c));
    run.empty_batches(1);
    run.stop();
}

#[test]
fn after_a_driver_restart_an_old_file_moved_in_meanwhile_is_counted_until_touched() {
    let data = tempfile::tempdir().unwrap();
    let checkpoint = tempfile::tempdir().unwrap();
    let zero = (wall_ms() / 1000 - 1) * 1000;
    let run = recoverable(checkpoint.path(), data.path(), ManualClock::new(zero), zero);
    let a = lines_of("a", 3);
    write_at(&data.path().join("a.txt"), &a, zero + 500);
    assert_eq!(run.batch(), (zero + 1000, a));
    run.stop();

    // Moved in while the driver was down, an hour old: the restarted stream cannot tell it
    // from a file read before the restart and forgotten, so it does not read it; it says so
    // and counts it. Touched, it is read.
    let late = lines_of("late", 4);
    write_at(&data.path().join("late.txt"), &late, zero - 3_600_000);
    let (run, stream) = recoverable_stream(
        checkpoint.path(),
        data.path(),
        ManualClock::new(zero + 1000),
        zero,
    );
    run.empty_batches(2);
    assert_eq!(
        stream.stats(),
        FileStreamStats {
            files: 0,
            old_files_ignored: 1,
            lines_skipped: 0
        }
    );
    let t = run.next_time();
    set_mtime(&data.path().join("late.txt"), t - 1);
    assert_eq!(run.batch(), (t, late));
    run.empty_batches(1);
    run.stop();
    assert_eq!(stream.stats().files, 1);
}
