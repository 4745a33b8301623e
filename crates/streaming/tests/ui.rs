//! The monitoring server against a running job on a manual clock: the JSON APIs match the
//! `BatchInfo`s a listener of the test received, `/metrics` counts the same batches and
//! records, counters a custom input reports reach `/metrics`, `/api/inputs` and the page, the
//! graph is the static one of a `#[streaming_job]`, and the page's charts have one
//! point per batch. Then the page in a real headless browser (Debian's chromium): the screenshot
//! has the charts' colors once batches ran, and none before (skipped, with a message, where no
//! browser is installed; `.ci/run` installs one).

use spate_streaming::testing::{Feeder, fed_receiver, http_get as get, metric_sample};
use spate_streaming::{
    BatchInfo, Clock, InputCounters, ManualClock, StreamingContext, StreamingListener,
};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = get(addr, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path} is not JSON ({e}): {body}"))
}

#[derive(Default)]
struct Collect(Mutex<Vec<BatchInfo>>);

impl StreamingListener for Collect {
    fn on_batch_completed(&self, info: &BatchInfo) {
        self.0.lock().unwrap().push(info.clone());
    }
}

struct Running {
    ssc: StreamingContext,
    clock: ManualClock,
    ui: spate_streaming::ui::UiHandle,
    feeder: Feeder<String>,
    seen: Arc<Collect>,
}

impl Running {
    /// A word count over a fed receiver, with the monitoring server on a free port.
    fn start() -> Running {
        let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
        let clock = ManualClock::new(0);
        ssc.set_clock(Clock::Manual(clock.clone())).unwrap();
        let (receiver, feeder) = fed_receiver("test feed");
        let lines = ssc.receiver_stream(receiver);
        lines
            .flat_map(|l: String| l.split(' ').map(String::from).collect::<Vec<_>>())
            .map(|w| (w, 1u32))
            .reduce_by_key(|a, b| a + b)
            .foreach_rdd(|rdd, _| {
                rdd.count()?;
                Ok(())
            });
        let seen = Arc::new(Collect::default());
        ssc.add_streaming_listener(seen.clone());
        let ui = ssc.start_ui("127.0.0.1:0").unwrap();
        ssc.start().unwrap();
        Running {
            ssc,
            clock,
            ui,
            feeder,
            seen,
        }
    }

    /// Feeds `n` lines, then runs the next batch.
    fn batch(&self, n: usize) {
        if n > 0 {
            assert!(
                self.feeder
                    .send((0..n).map(|i| format!("a b{}", i % 3)).collect())
            );
        }
        self.clock.advance(Duration::from_secs(1));
        assert!(
            self.ssc
                .wait_for_batch(self.clock.time(), Duration::from_secs(30))
        );
    }

    fn addr(&self) -> SocketAddr {
        self.ui.addr()
    }
}

#[test]
fn the_json_apis_and_metrics_match_what_listeners_saw() {
    let run = Running::start();
    for n in [5, 0, 7] {
        run.batch(n);
    }
    let seen = run.seen.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);

    let batches = json(run.addr(), "/api/batches");
    let batches = batches.as_array().expect("a list");
    assert_eq!(batches.len(), seen.len());
    let stream = run.ssc.receiver_info()[0].stream;
    for (b, info) in batches.iter().zip(&seen) {
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
        assert_eq!(b["batch_time_ms"], info.batch_time.ms());
        assert_eq!(b["records"], info.records);
        assert_eq!(b["input_records"][stream.to_string()], info.records);
        assert_eq!(b["total_delay_ms"], ms(info.total_delay()).unwrap());
        assert_eq!(
            b["scheduling_delay_ms"],
            ms(info.scheduling_delay()).unwrap()
        );
        assert_eq!(
            b["processing_delay_ms"],
            ms(info.processing_delay()).unwrap()
        );
        assert_eq!(b["output_operations"], 1);
        assert!(b["failure"].is_null());
    }
    let records: Vec<u64> = seen.iter().map(|b| b.records).collect();
    assert_eq!(records, vec![5, 0, 7]);

    let receivers = json(run.addr(), "/api/receivers");
    assert_eq!(receivers[0]["name"], "test feed");
    assert_eq!(receivers[0]["state"], "running");
    assert_eq!(receivers[0]["records"], 12);
    assert_eq!(receivers[0]["rate"], 4.0); // 12 records over the last three 1 s batches

    let (status, metrics) = get(run.addr(), "/metrics");
    assert_eq!(status, 200);
    let value = |name: &str| -> f64 {
        metric_sample(&metrics, name).unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    assert_eq!(value("spate_batches_completed_total"), 3.0);
    assert_eq!(value("spate_batches_failed_total"), 0.0);
    assert_eq!(value("spate_batch_total_delay_seconds_count"), 3.0);
    assert_eq!(value("spate_batch_interval_seconds"), 1.0);
    // Every generated batch completed; the receiver never waited for memory.
    assert_eq!(value("spate_pending_batches"), 0.0);
    assert_eq!(
        value(&format!(
            "spate_receiver_memory_waits_total{{stream=\"{stream}\",receiver=\"test feed\"}}"
        )),
        0.0
    );
    assert_eq!(
        value(&format!("spate_input_records_total{{stream=\"{stream}\"}}")),
        12.0
    );
    assert_eq!(
        value(&format!(
            "spate_receiver_records_total{{stream=\"{stream}\",receiver=\"test feed\"}}"
        )),
        12.0
    );
    assert_eq!(
        value(&format!(
            "spate_receiver_records_skipped_total{{stream=\"{stream}\",receiver=\"test feed\"}}"
        )),
        0.0
    );
    let total_sum: f64 = seen
        .iter()
        .map(|b| b.total_delay().unwrap().as_secs_f64())
        .sum();
    assert!((value("spate_batch_total_delay_seconds_sum") - total_sum).abs() < 1e-9);
    // Buckets are cumulative and end at the count.
    let buckets: Vec<f64> = metrics
        .lines()
        .filter(|l| l.starts_with("spate_batch_total_delay_seconds_bucket"))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert_eq!(buckets.last(), Some(&3.0));
    assert!(metrics.contains("# TYPE spate_batch_total_delay_seconds histogram"));

    let graph = json(run.addr(), "/api/graph");
    assert_eq!(graph["source"], "runtime");
    let names: Vec<&str> = graph["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "receiver_stream",
            "flat_map",
            "map",
            "reduce_by_key",
            "foreach_rdd"
        ]
    );
    assert_eq!(get(run.addr(), "/nothing-here").0, 404);
    // Local mode: no cluster.
    let cluster = json(run.addr(), "/api/executors");
    assert!(cluster["driver"].is_null() && cluster["executors"].as_array().unwrap().is_empty());
    run.ssc.stop(true);
    assert_eq!(
        json(run.addr(), "/api/receivers")[0]["state"],
        "stopped",
        "the receiver's stop reached the page"
    );
}

#[test]
fn counters_a_custom_input_reports_are_on_the_metrics_the_json_and_the_page() {
    let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
    let clock = ManualClock::new(0);
    ssc.set_clock(Clock::Manual(clock.clone())).unwrap();
    // An input that plans three good records and two malformed ones per batch, and counts
    // the malformed ones when it plans (once per batch however many outputs read it).
    let counters = InputCounters::new();
    let skipped = counters.counter(
        "records_skipped",
        "Records skipped as malformed\\ (logged)\non their own line.",
    );
    let numbers = ssc.custom_input_stream("parsed_numbers", move |ctx, _t| {
        let raw = ["1", "x", "2", "", "3"];
        let good: Vec<u32> = raw.iter().filter_map(|r| r.parse().ok()).collect();
        skipped.add((raw.len() - good.len()) as u64);
        Ok(Some(ctx.parallelize(good, 2)))
    });
    ssc.report_input_counters(&numbers, &counters);
    ssc.report_input_counters(&numbers, &counters); // again: still counted once
    let sums = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..2 {
        let s = sums.clone();
        numbers.foreach_rdd(move |rdd, _| {
            s.lock().unwrap().push(rdd.collect()?.iter().sum::<u32>());
            Ok(())
        });
    }
    let ui = ssc.start_ui("127.0.0.1:0").unwrap();
    ssc.start().unwrap();
    for _ in 0..3 {
        clock.advance(Duration::from_secs(1));
        assert!(ssc.wait_for_batch(clock.time(), Duration::from_secs(30)));
    }
    assert_eq!(*sums.lock().unwrap(), vec![6; 6]);
    let id = numbers.id();

    let (status, metrics) = get(ui.addr(), "/metrics");
    assert_eq!(status, 200);
    let name =
        format!("spate_input_records_skipped_total{{stream=\"{id}\",input=\"parsed_numbers\"}}");
    assert_eq!(metric_sample(&metrics, &name), Some(6.0), "{metrics}");
    assert!(metrics.contains("# TYPE spate_input_records_skipped_total counter\n"));
    // The help text is the input's, kept on one line.
    assert!(metrics.contains(
        "# HELP spate_input_records_skipped_total Records skipped as malformed\\\\ (logged)\\non their own line.\n"
    ));

    let inputs = json(ui.addr(), "/api/inputs");
    assert_eq!(inputs.as_array().unwrap().len(), 1, "{inputs}");
    assert_eq!(inputs[0]["stream"], id);
    assert_eq!(inputs[0]["name"], "parsed_numbers");
    assert_eq!(inputs[0]["counters"]["records_skipped"], 6);

    let (_, page) = get(ui.addr(), "/");
    assert!(page.contains("<h2>Input streams</h2>"));
    assert!(page.contains("<th>records skipped</th>"));
    assert!(page.contains(">parsed_numbers</td><td>6</td>"), "{page}");

    // Stopped, the context keeps the final counts for the page.
    ssc.stop(true);
    assert_eq!(
        json(ui.addr(), "/api/inputs")[0]["counters"]["records_skipped"],
        6
    );
}

#[test]
fn a_counter_name_that_cannot_be_a_metric_name_fails_start() {
    let ssc = StreamingContext::new("local[1]", Duration::from_secs(1)).unwrap();
    let counters = InputCounters::new();
    counters.counter("Skipped-Lines", "bad name");
    let s = ssc.custom_input_stream("odd", |ctx, _| Ok(Some(ctx.parallelize(vec![1u8], 1))));
    ssc.report_input_counters(&s, &counters);
    s.print();
    let err = ssc.start().unwrap_err().to_string();
    assert!(
        err.contains("odd at ") && err.contains("\"Skipped-Lines\"") && err.contains("lowercase"),
        "{err}"
    );
}

#[test]
fn without_reporting_inputs_the_page_has_no_inputs_table_and_metrics_no_input_counters() {
    let run = Running::start();
    run.batch(2);
    assert!(!get(run.addr(), "/").1.contains("Input streams"));
    assert!(
        !get(run.addr(), "/metrics")
            .1
            .contains("spate_input_records_skipped_total")
    );
    assert_eq!(json(run.addr(), "/api/inputs"), serde_json::json!([]));
    run.ssc.stop(true);
}

#[spate_streaming::streaming_job(batch = "1s", name = "monitored")]
fn monitored(ssc: &StreamingContext) {
    let queue = Arc::new(Mutex::new(std::collections::VecDeque::new()));
    let numbers = ssc.queue_stream::<u32>(queue, true);
    let doubled = numbers.map(|x: u32| x * 2);
    doubled.print();
}

#[test]
fn the_graph_of_a_streaming_job_is_its_static_graph() {
    let ssc = StreamingContext::new("local[2]", Duration::from_secs(1)).unwrap();
    Monitored::build(&ssc).unwrap();
    let ui = ssc.start_ui("127.0.0.1:0").unwrap();
    let graph = json(ui.addr(), "/api/graph");
    let expected = Monitored::graph();
    assert_eq!(graph["source"], "static");
    assert_eq!(graph["job"], "monitored");
    assert_eq!(
        graph["fingerprint"],
        format!("{:016x}", expected.fingerprint)
    );
    let ops = graph["operators"].as_array().unwrap();
    assert_eq!(ops.len(), expected.ops.len());
    for (o, e) in ops.iter().zip(expected.ops) {
        assert_eq!(o["id"], e.id);
        assert_eq!(o["name"], e.name);
        assert_eq!(o["kind"], e.kind);
        assert_eq!(o["location"], e.location);
        let parents: Vec<usize> = o["parents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(parents, e.parents);
    }
    let (_, page) = get(ui.addr(), "/");
    assert!(page.contains("Spate: monitored"));
    assert!(page.contains("queue_stream"));
}

#[test]
fn the_page_charts_one_point_per_batch_and_series() {
    let run = Running::start();
    let (status, page) = get(run.addr(), "/");
    assert_eq!(status, 200);
    assert_eq!(page.matches("no batches yet").count(), 4);
    assert_eq!(page.matches("<circle").count(), 0);
    for n in [3, 1, 4, 1] {
        run.batch(n);
    }
    let (_, page) = get(run.addr(), "/");
    assert!(page.starts_with("<!doctype html>"));
    assert_eq!(page.matches("<svg").count(), 4);
    // Four batches, four series (records, scheduling, processing, total delay).
    assert_eq!(page.matches("<circle").count(), 16);
    assert_eq!(page.matches("batch interval").count(), 4); // the summary and three delay charts
    assert!(page.contains("test feed"));
    assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("<script"));
    run.ssc.stop(true);
}

// ---------------------------------------------------------------------------------------------
// A real browser.

fn browser() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// A headless screenshot of `url`, as RGBA pixels.
fn screenshot(browser: &str, url: &str) -> Vec<[u8; 4]> {
    let dir = tempfile::tempdir().unwrap();
    let png_path = dir.path().join("page.png");
    let mut child = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,1200",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", png_path.display()))
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the browser starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{browser} did not take the screenshot within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let file = std::fs::File::open(&png_path).expect("the screenshot was written");
    let decoder = png::Decoder::new(std::io::BufReader::new(file));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![
        0;
        reader
            .output_buffer_size()
            .expect("a screenshot of sane size")
    ];
    let info = reader.next_frame(&mut buf).unwrap();
    let bytes = &buf[..info.buffer_size()];
    match info.color_type {
        png::ColorType::Rgba => bytes.chunks(4).map(|c| [c[0], c[1], c[2], c[3]]).collect(),
        png::ColorType::Rgb => bytes.chunks(3).map(|c| [c[0], c[1], c[2], 255]).collect(),
        other => panic!("unexpected screenshot color type {other:?}"),
    }
}

/// Pixels within a small distance of the color `#rrggbb`.
fn pixels_of(pixels: &[[u8; 4]], hex: &str) -> usize {
    let c = |i: usize| u8::from_str_radix(&hex[1 + 2 * i..3 + 2 * i], 16).unwrap() as i32;
    let (r, g, b) = (c(0), c(1), c(2));
    pixels
        .iter()
        .filter(|p| {
            (p[0] as i32 - r).abs() <= 6
                && (p[1] as i32 - g).abs() <= 6
                && (p[2] as i32 - b).abs() <= 6
        })
        .count()
}

#[test]
fn the_page_in_a_headless_browser_shows_chart_points_once_batches_ran() {
    let Some(browser) = browser() else {
        eprintln!(
            "skipping: no chromium found (install Debian's `chromium` package, as .ci/run does, to run this test)"
        );
        return;
    };
    let run = Running::start();
    let url = format!("http://{}/", run.addr());
    let before = screenshot(browser, &url);
    for n in [3, 8, 2, 9, 5, 6] {
        run.batch(n);
    }
    let after = screenshot(browser, &url);
    for (series, color) in [("records", "#1f77b4"), ("total delay", "#d62728")] {
        assert_eq!(
            pixels_of(&before, color),
            0,
            "{series}: no points before any batch"
        );
        let n = pixels_of(&after, color);
        assert!(
            n > 60,
            "{series}: only {n} pixels of {color} after six batches"
        );
    }
    run.ssc.stop(true);
}

/// `/api/environment` and the page's environment table show the settings in force: the
/// engine's, defaults included, under the keys `--conf` takes, and the job's own.
#[test]
fn the_environment_shows_the_settings_in_force() {
    let mut config = spate_streaming::core::ContextConfig::new("local[2]");
    config.app_name = "env-test".into();
    config.memory_bytes = 64 << 20;
    config.codec = spate_streaming::storage::Codec::Lz4;
    config.default_parallelism = Some(3);
    let ctx = spate_streaming::Context::with_config(config).unwrap();
    let ssc = StreamingContext::with_context(ctx, Duration::from_millis(500)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    ssc.checkpoint(dir.path()).unwrap();
    ssc.set_receiver_config(spate_streaming::ReceiverConfig {
        block_interval: Duration::from_millis(50),
        max_rate: Some(1000),
        ..Default::default()
    });
    ssc.set_conf("words".to_string(), "7".to_string());
    ssc.set_conf("kafka.sasl.Password".to_string(), "hunter2".to_string());
    ssc.set_conf("s3.accessKey".to_string(), "AKIA".to_string());
    let ui = ssc.start_ui("127.0.0.1:0").unwrap();
    let env = json(ui.addr(), "/api/environment");
    let dir_text = dir.path().display().to_string();
    for (key, want) in [
        ("spate.master", "local[2]"),
        ("spate.app.name", "env-test"),
        ("spate.batch.interval", "500ms"),
        ("spate.default.parallelism", "3"),
        ("spate.memory", "64m"),
        ("spate.codec", "lz4"),
        ("spate.request.timeout", "10000ms"),
        ("spate.heartbeat.timeout", "3000ms"),
        ("spate.checkpoint.dir", dir_text.as_str()),
        ("spate.streaming.blockInterval", "50ms"),
        ("spate.streaming.receiver.maxRate", "1000"),
        ("spate.streaming.receiver.memoryFraction", "0.8"),
        ("spate.streaming.receiver.writeAheadLog.enable", "false"),
        ("words", "7"),
        ("kafka.sasl.Password", "(redacted)"),
        ("s3.accessKey", "(redacted)"),
    ] {
        assert_eq!(env[key], want, "{key} in {env}");
    }
    let page = get(ui.addr(), "/").1;
    assert!(
        page.contains("<h2>Environment</h2>")
            && page.contains("<tr><td>spate.streaming.blockInterval</td><td>50ms</td></tr>")
            && page.contains("<tr><td>words</td><td>7</td></tr>"),
        "{page}"
    );
    assert!(
        !page.contains("hunter2") && !page.contains("AKIA"),
        "{page}"
    );
}
