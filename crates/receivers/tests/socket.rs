//! Socket sources against a real loopback `TcpListener`: exact delivery per batch, reconnects after
//! refused and closed connections, malformed records, converters, frames, and TCP back-pressure.
//!
//! Every test drives a manual clock and waits on observable state (receiver counters, completed
//! batches) with bounded polling; nothing sleeps for correctness.

use spate_receivers::{Converter, SocketConfig, Sources};
use spate_streaming::storage::{BlockId, Codec, serialize_block};
use spate_streaming::{
    Clock, DStream, Data, ManualClock, ReceiverConfig, ReceiverInfo, StorageLevel, StreamingContext,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BATCH: Duration = Duration::from_secs(1);
/// The bound of every wait.
const DEADLINE: Duration = Duration::from_secs(30);
/// The most polls of any wait (with the 1 ms pause between polls, more than `DEADLINE` allows).
const MAX_POLLS: u32 = 1_000_000;

/// Retries within milliseconds, so reconnect tests do not wait for the default backoff.
fn fast_retries() -> ReceiverConfig {
    ReceiverConfig {
        restart_backoff: Duration::from_millis(1),
        max_restart_backoff: Duration::from_millis(10),
        ..ReceiverConfig::default()
    }
}

/// A `local[2]` context with 1 s batches on a manual clock at 0.
fn context(config: ReceiverConfig) -> (StreamingContext, ManualClock) {
    let ssc = StreamingContext::new("local[2]", BATCH).unwrap();
    let clock = ManualClock::new(0);
    ssc.set_clock(Clock::Manual(clock.clone())).unwrap();
    ssc.set_receiver_config(config);
    (ssc, clock)
}

/// What each batch of `stream` held, by batch time in ms.
type Batches<T> = Arc<Mutex<BTreeMap<u64, Vec<T>>>>;

fn collect<T: Data>(stream: &DStream<T>) -> Batches<T> {
    let out: Batches<T> = Arc::default();
    let o = out.clone();
    stream.foreach_rdd(move |rdd, t| {
        let values = rdd.collect()?;
        o.lock().unwrap().insert(t.ms(), values);
        Ok(())
    });
    out
}

/// Asserts that `out` has one batch, the one at 1000 ms, holding exactly `lines` in order.
fn assert_only_batch_1000(out: &Batches<String>, lines: &[&str]) {
    let expected: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    assert_eq!(
        out.lock().unwrap().clone(),
        BTreeMap::from([(1000, expected)])
    );
}

/// Advances the clock one batch, waits for that batch to complete and returns its time in ms.
fn next_batch(ssc: &StreamingContext, clock: &ManualClock) -> u64 {
    clock.advance(BATCH);
    let t = clock.time();
    assert!(
        ssc.wait_for_batch(t, DEADLINE),
        "batch {t} did not complete"
    );
    t.ms()
}

/// Waits (bounded in time and polls) until `cond` holds.
fn eventually(ssc: &StreamingContext, what: &str, cond: impl Fn(&ReceiverInfo) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    for _ in 0..MAX_POLLS {
        let info = ssc.receiver_info();
        if cond(&info[0]) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            info[0]
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("gave up waiting for {what}");
}

/// A listener on an ephemeral loopback port.
fn listen() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// Accepts one connection, giving up after `DEADLINE`.
fn accept(listener: &TcpListener) -> std::io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + DEADLINE;
    for _ in 0..MAX_POLLS {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                stream.set_write_timeout(Some(Duration::from_secs(60)))?;
                return Ok(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no receiver connected",
    ))
}

/// Waits (bounded) for the test to say go; `false` if the test dropped its sender or never did.
fn go(rx: &mpsc::Receiver<()>) -> bool {
    rx.recv_timeout(DEADLINE).is_ok()
}

fn lines(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("line {i} ünïcödé")).collect()
}

fn text(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect()
}

fn server(f: impl FnOnce() -> std::io::Result<()> + Send + 'static) -> JoinHandle<()> {
    std::thread::spawn(move || f().expect("test server"))
}

#[test]
fn lines_arrive_exactly_once_in_order_in_the_batch_after_they_were_stored() {
    let (ssc, clock) = context(fast_retries());
    let (listener, port) = listen();
    let round1 = lines(0..1_000);
    let round2 = lines(1_000..11_000);
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let srv = server(move || {
        let mut s = accept(&listener)?;
        // Each round as one write; the connection stays open until the test is done.
        while let Ok(bytes) = rx.recv_timeout(DEADLINE) {
            s.write_all(&bytes)?;
        }
        Ok(())
    });
    let stream = ssc.socket_text_stream("127.0.0.1", port, StorageLevel::MEMORY_ONLY_SER_2);
    let out = collect(&stream);
    ssc.start().unwrap();

    assert_eq!(next_batch(&ssc, &clock), 1000);
    tx.send(text(&round1)).unwrap();
    eventually(&ssc, "round 1 stored", |i| i.records == 1_000);
    assert_eq!(next_batch(&ssc, &clock), 2000);
    assert_eq!(next_batch(&ssc, &clock), 3000);
    tx.send(text(&round2)).unwrap();
    eventually(&ssc, "round 2 stored", |i| i.records == 11_000);
    assert_eq!(next_batch(&ssc, &clock), 4000);
    ssc.stop(false);
    drop(tx);
    srv.join().unwrap();

    let out = out.lock().unwrap().clone();
    let expected = BTreeMap::from([
        (1000, vec![]),
        (2000, round1),
        (3000, vec![]),
        (4000, round2),
    ]);
    assert_eq!(out, expected);
    let records: Vec<u64> = ssc.completed_batches().iter().map(|b| b.records).collect();
    assert_eq!(records, vec![0, 1_000, 0, 10_000]);
    let info = &ssc.receiver_info()[0];
    assert_eq!(info.name, format!("socket 127.0.0.1:{port}"));
    assert_eq!((info.records, info.skipped, info.restarts), (11_000, 0, 0));
    assert_eq!(info.last_error, None);
}

/// Lines are handed over in chunks (one message to the block generator per chunk, not per read),
/// but never held back waiting for more: here the rest of a line does not come until the line
/// before it has been stored.
#[test]
fn a_line_before_a_pause_in_the_middle_of_the_next_is_handed_over() {
    let (ssc, clock) = context(fast_retries());
    let (listener, port) = listen();
    let (go_tx, go_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let srv = server(move || {
        let mut s = accept(&listener)?;
        s.write_all("first\nsecond ün".as_bytes())?;
        if go(&go_rx) {
            s.write_all("ïcödé line\nthird\n".as_bytes())?;
        }
        go(&done_rx);
        Ok(())
    });
    let stream = ssc.socket_text_stream("127.0.0.1", port, StorageLevel::MEMORY_ONLY);
    let out = collect(&stream);
    ssc.start().unwrap();

    eventually(&ssc, "the first line stored", |i| i.records == 1);
    go_tx.send(()).unwrap();
    eventually(&ssc, "all three lines stored", |i| i.records == 3);
    assert_eq!(next_batch(&ssc, &clock), 1000);
    ssc.stop(false);
    drop(done_tx);
    srv.join().unwrap();

    assert_only_batch_1000(&out, &["first", "second ünïcödé line", "third"]);
    let info = &ssc.receiver_info()[0];
    assert_eq!(
        (info.restarts, info.skipped, info.last_error.clone()),
        (0, 0, None)
    );
}

#[test]
fn a_refused_connection_is_retried_until_the_server_appears() {
    let (ssc, clock) = context(fast_retries());
    // A port nobody listens on (yet).
    let port = listen().1;
    let stream = ssc.socket_text_stream("127.0.0.1", port, StorageLevel::MEMORY_ONLY);
    let out = collect(&stream);
    ssc.start().unwrap();

    eventually(&ssc, "a retried refusal", |i| {
        i.restarts >= 1 && i.last_error.is_some()
    });
    let info = ssc.receiver_info()[0].clone();
    let error = info.last_error.unwrap();
    assert!(
        error.contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{error}"
    );
    assert!(error.contains("will retry"), "{error}");
    assert!(info.active);
    // The stream goes on meanwhile, with empty batches.
    assert_eq!(next_batch(&ssc, &clock), 1000);

    let listener = TcpListener::bind(("127.0.0.1", port)).expect("the port is still free");
    let sent = lines(0..500);
    let bytes = text(&sent);
    let (done_tx, done_rx) = mpsc::channel();
    let srv = server(move || {
        let mut s = accept(&listener)?;
        s.write_all(&bytes)?;
        go(&done_rx);
        Ok(())
    });
    eventually(&ssc, "every line stored", |i| i.records == 500);
    assert_eq!(next_batch(&ssc, &clock), 2000);
    ssc.stop(false);
    drop(done_tx);
    srv.join().unwrap();

    let out = out.lock().unwrap().clone();
    assert_eq!(out, BTreeMap::from([(1000, vec![]), (2000, sent)]));
    assert!(ssc.completed_batches().iter().all(|b| b.failure.is_none()));
}

#[test]
fn a_connection_closed_mid_stream_is_reopened_and_every_line_arrives_once() {
    let (ssc, clock) = context(fast_retries());
    let (listener, port) = listen();
    let (go_tx, go_rx) = mpsc::channel();
    let srv = server(move || {
        // Two connections the server closes after a few hundred lines each…
        let mut s = accept(&listener)?;
        s.write_all(&text(&lines(0..600)))?;
        drop(s);
        let mut s = accept(&listener)?;
        s.write_all(&text(&lines(600..1_000)))?;
        drop(s);
        // …and a third that stays open.
        let mut s = accept(&listener)?;
        if go(&go_rx) {
            s.write_all(&text(&lines(1_000..1_500)))?;
        }
        go(&go_rx);
        Ok(())
    });
    let stream = ssc.socket_text_stream("127.0.0.1", port, StorageLevel::MEMORY_ONLY);
    let out = collect(&stream);
    ssc.start().unwrap();

    eventually(&ssc, "two reconnects", |i| i.restarts >= 2);
    eventually(&ssc, "the lines of both closed connections", |i| {
        i.records == 1_000
    });
    let error = ssc.receiver_info()[0].last_error.clone().unwrap();
    assert!(
        error.contains(&format!("127.0.0.1:{port} closed the connection")),
        "{error}"
    );
    assert_eq!(next_batch(&ssc, &clock), 1000);
    go_tx.send(()).unwrap();
    eventually(&ssc, "the lines of the third connection", |i| {
        i.records == 1_500
    });
    assert_eq!(next_batch(&ssc, &clock), 2000);
    ssc.stop(false);
    drop(go_tx);
    srv.join().unwrap();

    let out = out.lock().unwrap().clone();
    assert_eq!(
        out,
        BTreeMap::from([(1000, lines(0..1_000)), (2000, lines(1_000..1_500))])
    );
    assert_eq!(ssc.receiver_info()[0].restarts, 2);
}

#[test]
fn invalid_utf8_lines_are_counted_and_skipped_and_line_ends_are_stripped() {
    let (ssc, clock) = context(fast_retries());
    let (listener, port) = listen();
    let (done_tx, done_rx) = mpsc::channel();
    let srv = server(move || {
        let mut s = accept(&listener)?;
        s.write_all(
            b"first\r\n\xff\xfe not utf-8\nsecond\n\xc3\x28\r\nthird\r\n\r\n\nmid\rdle\r\nlast\n",
        )?;
        go(&done_rx);
        Ok(())
    });
    let stream = ssc.socket_text_stream("127.0.0.1", port, StorageLevel::MEMORY_ONLY);
    let out = collect(&stream);
    ssc.start().unwrap();

    eventually(&ssc, "the valid lines and the skips", |i| {
        i.records == 7 && i.skipped == 2
    });
    assert_eq!(next_batch(&ssc, &clock), 1000);
    ssc.stop(false);
    drop(done_tx);
    srv.join().unwrap();

    assert_only_batch_1000(
        &out,
        &["first", "second", "third", "", "", "mid\rdle", "last"],
    );
    let info = &ssc.receiver_info()[0];
    assert_eq!((info.restarts, info.last_error.clone()), (0, None));
}

/// Lines cut anywhere by the reads (the sender writes pieces of 1 to 300 bytes), with CRLF and
/// LF endings, multi-byte characters, lines longer than 127 bytes and an invalid one among them:
/// each line arrives whole, once, in order, however the reader's buffer held it.
#[test]
fn lines_cut_anywhere_by_reads_arrive_whole() {
    let (ssc, clock) = context(fast_retries());
    let (listener, port) = listen();
    let lines: Vec<String> = (0..20_000u32)
        .map(|i| match i % 5 {
            0 => format!("line {i} ünïcödé"),
            1 => format!("{i} {}", "long ".repeat(30)),
            2 => String::new(),
            3 => format!("{i}\r{i}"),
            _ => format!("é{i}é"),
        })
        .collect();
    let mut bytes = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        bytes.extend_from_slice(l.as_bytes());
        bytes.extend_from_slice(if i % 3 == 0 { b"\r\n" } else { b"\n" });
        if i == 10_000 {
            bytes.extend_from_slice(b"\xff not utf-8\n");
        }
    }
    let (done_tx, done_rx) = mpsc::channel();
    let srv = server(move || {
        let mut s = accept(&listener)?;
        s.set_nodelay(true)?;
        let mut at = 0;
        for size in (1..=300).cycle() {
            if at == bytes.len() {
                break;
            }
            let end = (at + size).min(bytes.len());
            s.write_all(&bytes[at..end])?;
            at = end;
        }
        go(&done_rx);
        Ok(())
    });
    let stream = ssc.socket_text_stream("127.0.0.1", port, StorageLevel::MEMORY_ONLY_SER);
    let out = collect(&stream);
    ssc.start().unwrap();
    eventually(&ssc, "every line", |i| {
        i.records == 20_000 && i.skipped == 1
    });
    assert_eq!(next_batch(&ssc, &clock), 1000);
    ssc.stop(false);
    drop(done_tx);
    srv.join().unwrap();
    assert_eq!(out.lock().unwrap().clone(), BTreeMap::from([(1000, lines)]));
}

/// Closes `s` with a reset instead of an orderly end, as the kernel of a crashed peer does:
/// SO_LINGER with a zero timeout makes `close` send RST, and the receiver's next read after the
/// data already delivered fails with `ConnectionReset`.
fn reset(s: TcpStream) -> std::io::Result<()> {
    socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO))?;
    drop(s);
    Ok(())
}

#[test]
fn lines_read_before_a_connection_reset_are_stored_and_a_line_it_cut_short_is_counted() {
    let (ssc, clock) = context(fast_retries());
    let (listener, port) = listen();
    // 1,000 lines (one chunk, 24 KB: one read of the receiver's buffer) and the start of one
    // more, then the reset right behind them: the receiver holds the lines when its next read
    // fails.
    let sent = lines(0..1_000);
    let mut bytes = text(&sent);
    bytes.extend_from_slice("a line the reset cuts sh".as_bytes());
    let (done_tx, done_rx) = mpsc::channel();
    let srv = server(move || {
        let mut s = accept(&listener)?;
        s.write_all(&bytes)?;
        reset(s)?;
        // The receiver connects again; this connection stays open.
        let _s = accept(&listener)?;
        go(&done_rx);
        Ok(())
    });
    let stream = ssc.socket_text_stream("127.0.0.1", port, StorageLevel::MEMORY_ONLY);
    let out = collect(&stream);
    ssc.start().unwrap();

    // The receiver stores what it read before it gives the connection up (and restarts).
    eventually(&ssc, "a restart after the reset", |i| i.restarts >= 1);
    let info = ssc.receiver_info()[0].clone();
    assert_eq!((info.records, info.skipped), (1_000, 1), "{info:?}");
    let error = info.last_error.unwrap();
    assert!(
        error.contains(&format!("connection to 127.0.0.1:{port} lost")),
        "{error}"
    );
    assert_eq!(next_batch(&ssc, &clock), 1000);
    ssc.stop(false);
    drop(done_tx);
    srv.join().unwrap();
    assert_eq!(out.lock().unwrap().clone(), BTreeMap::from([(1000, sent)]));
}

#[test]
fn a_line_over_the_limit_is_skipped_and_counted_and_the_lines_around_it_arrive() {
    const MAX: usize = 1_000;
    let (ssc, clock) = context(fast_retries());
    let (listener, port) = listen();
    let (tx, rx) = mpsc::channel::<String>();
    let srv = server(move || {
        let mut s = accept(&listener)?;
        while let Ok(bytes) = rx.recv_timeout(DEADLINE) {
            s.write_all(bytes.as_bytes())?;
        }
        Ok(())
    });
    let stream = ssc.socket_text_stream_with(
        SocketConfig {
            max_line_bytes: MAX,
            ..SocketConfig::new("127.0.0.1", port)
        },
        StorageLevel::MEMORY_ONLY,
    );
    let out = collect(&stream);
    ssc.start().unwrap();
    let x = |c: &str, n: usize| c.repeat(n);

    // Whole lines in one read: one byte over the limit is skipped; exactly the limit, also
    // before a `\r\n`, is kept. The last line is still coming.
    tx.send(format!(
        "a\n{}\nc\n{}\n{}\r\n{}",
        x("b", MAX + 1),
        x("d", MAX),
        x("e", MAX),
        x("f", 500)
    ))
    .unwrap();
    eventually(&ssc, "the first lines", |i| {
        i.records == 4 && i.skipped == 1
    });
    // The line in progress ends in a later read, exactly at the limit: kept.
    tx.send(format!("{}\nx\n{}", x("f", 500), x("h", 600)))
        .unwrap();
    eventually(&ssc, "a line of the limit across reads", |i| i.records == 6);
    // The next one passes the limit in a later read: skipped up to its newline.
    tx.send(format!("{}\ni\n", x("h", 600))).unwrap();
    eventually(&ssc, "a line over the limit across reads", |i| {
        i.records == 7 && i.skipped == 2
    });
    // A line far over the limit, skipped across many reads, while the line before it is
    // handed over (the receiver waits for the rest of the long line).
    tx.send(format!("j\n{}", x("k", 200_000))).unwrap();
    eventually(&ssc, "the line before a long one", |i| i.records == 8);
    tx.send(format!("{}\nlast\n", x("k", 5))).unwrap();
    eventually(&ssc, "the line after a long one", |i| {
        i.records == 9 && i.skipped == 3
    });
    assert_eq!(next_batch(&ssc, &clock), 1000);
    ssc.stop(false);
    drop(tx);
    srv.join().unwrap();

    let (d, e, f) = (x("d", MAX), x("e", MAX), x("f", MAX));
    assert_only_batch_1000(&out, &["a", "c", &d, &e, &f, "x", "i", "j", "last"]);
    let info = &ssc.receiver_info()[0];
    assert_eq!(
        (info.skipped, info.restarts, info.last_error.clone()),
        (3, 0, None)
    );
}

/// Parses one `u64` per line; a line that is not a number (or not UTF-8) is `InvalidData`.
fn numbers() -> Converter<u64> {
    Arc::new(|read| {
        Box::new(BufReader::new(read).lines().map(|line| {
            line?
                .trim()
                .parse::<u64>()
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
        }))
    })
}

#[test]
fn a_converter_reads_records_and_its_bad_records_are_skipped() {
    let (ssc, clock) = context(fast_retries());
    let (listener, port) = listen();
    let (go_tx, go_rx) = mpsc::channel();
    let srv = server(move || {
        let mut s = accept(&listener)?;
        // The connection stays open: records must not wait for more input or for its end.
        s.write_all(b"1\n2\nnot a number\n3\n\xff\xfe\n40\n")?;
        if go(&go_rx) {
            s.write_all(b"5\n")?;
        }
        go(&go_rx);
        Ok(())
    });
    let stream = ssc.socket_stream("127.0.0.1", port, numbers(), StorageLevel::MEMORY_ONLY);
    let out = collect(&stream);
    ssc.start().unwrap();

    eventually(&ssc, "the numbers and the skips", |i| {
        i.records == 4 && i.skipped == 2
    });
    assert_eq!(next_batch(&ssc, &clock), 1000);
    go_tx.send(()).unwrap();
    eventually(&ssc, "a single trickled record", |i| i.records == 5);
    assert_eq!(next_batch(&ssc, &clock), 2000);
    ssc.stop(false);
    drop(go_tx);
    srv.join().unwrap();

    assert_eq!(
        out.lock().unwrap().clone(),
        BTreeMap::from([(1000, vec![1, 2, 3, 40]), (2000, vec![5])])
    );
    assert_eq!(ssc.receiver_info()[0].restarts, 0);
}

type Pair = (u32, String);

/// A frame: the `u32` big-endian length of a serialized block of `values`, then the block.
fn frame(values: &[Pair]) -> Vec<u8> {
    let block = serialize_block(&BlockId::Named("test".into()), values, Codec::None).unwrap();
    let mut f = (block.len() as u32).to_be_bytes().to_vec();
    f.extend(block);
    f
}

fn pairs(items: &[(u32, &str)]) -> Vec<Pair> {
    items.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

#[test]
fn raw_frames_are_stored_whole_and_a_corrupt_frame_is_counted_and_reconnects() {
    let (ssc, clock) = context(fast_retries());
    let (listener, port) = listen();
    let first = pairs(&[(1, "a"), (2, "b")]);
    let second = pairs(&[(3, "ç")]);
    let third = pairs(&[(4, "d"), (5, "e"), (6, "f")]);
    let (f1, f2, f3) = (frame(&first), frame(&second), frame(&third));
    let (done_tx, done_rx) = mpsc::channel();
    let srv = server(move || {
        let mut s = accept(&listener)?;
        s.write_all(&f1)?;
        s.write_all(&frame(&[]))?;
        // A frame split across writes.
        s.write_all(&f2[..3])?;
        s.flush()?;
        s.write_all(&f2[3..])?;
        // A frame of the right length whose bytes are not a block.
        s.write_all(&8u32.to_be_bytes())?;
        s.write_all(b"garbage!")?;
        // The receiver drops this connection and opens another.
        let mut s2 = accept(&listener)?;
        drop(s);
        s2.write_all(&f3)?;
        go(&done_rx);
        Ok(())
    });
    let stream: DStream<Pair> = ssc.raw_socket_stream("127.0.0.1", port, StorageLevel::MEMORY_ONLY);
    let out = collect(&stream);
    ssc.start().unwrap();

    eventually(&ssc, "every valid frame", |i| i.records == 6);
    assert_eq!(next_batch(&ssc, &clock), 1000);
    ssc.stop(false);
    drop(done_tx);
    srv.join().unwrap();

    let expected: Vec<Pair> = [first, second, third].concat();
    assert_eq!(
        out.lock().unwrap().clone(),
        BTreeMap::from([(1000, expected)])
    );
    let info = ssc.receiver_info()[0].clone();
    assert_eq!(info.skipped, 1);
    assert!(info.restarts >= 1);
    let error = info.last_error.unwrap();
    assert!(
        error.contains(&format!("corrupt frame from 127.0.0.1:{port}")),
        "{error}"
    );
}

#[test]
fn a_frame_over_the_limit_is_counted_and_reconnects() {
    let (ssc, clock) = context(fast_retries());
    let (listener, port) = listen();
    let first = pairs(&[(1, "a"), (2, "b")]);
    let second = pairs(&[(3, "c")]);
    let (f1, f2) = (frame(&first), frame(&second));
    // The first frame is exactly at the limit.
    let max = f1.len() - 4;
    let (done_tx, done_rx) = mpsc::channel();
    let srv = server(move || {
        let mut s = accept(&listener)?;
        s.write_all(&f1)?;
        // One byte over the limit, and more bytes than that behind it.
        s.write_all(&(max as u32 + 1).to_be_bytes())?;
        s.write_all(&vec![0; max + 1])?;
        // The receiver drops the connection and opens another, where the header is 4 GiB.
        let mut s2 = accept(&listener)?;
        drop(s);
        s2.write_all(&u32::MAX.to_be_bytes())?;
        let mut s3 = accept(&listener)?;
        drop(s2);
        s3.write_all(&f2)?;
        go(&done_rx);
        Ok(())
    });
    let stream: DStream<Pair> = ssc.raw_socket_stream_with(
        SocketConfig {
            max_frame_bytes: max,
            ..SocketConfig::new("127.0.0.1", port)
        },
        StorageLevel::MEMORY_ONLY,
    );
    let out = collect(&stream);
    ssc.start().unwrap();

    eventually(&ssc, "both valid frames", |i| i.records == 3);
    assert_eq!(next_batch(&ssc, &clock), 1000);
    ssc.stop(false);
    drop(done_tx);
    srv.join().unwrap();

    assert_eq!(
        out.lock().unwrap().clone(),
        BTreeMap::from([(1000, [first, second].concat())])
    );
    let info = ssc.receiver_info()[0].clone();
    assert_eq!(info.skipped, 2);
    assert!(info.restarts >= 2);
    let error = info.last_error.unwrap();
    assert!(
        error.contains("4294967295 bytes") && error.contains("SocketConfig::max_frame_bytes"),
        "{error}"
    );
}

#[test]
fn back_pressure_stops_reading_a_real_socket_until_batches_take_the_records() {
    const CAPACITY: usize = 50_000;
    // ~31 bytes a line: 124 MB, far more than loopback socket buffers hold.
    const TOTAL: u64 = 4_000_000;
    let (ssc, clock) = context(ReceiverConfig {
        queue_capacity: CAPACITY,
        ..fast_retries()
    });
    let (listener, port) = listen();
    let written = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let (w, f) = (written.clone(), finished.clone());
    let srv = server(move || {
        let mut s = accept(&listener)?;
        let mut buf = Vec::with_capacity(1 << 16);
        for i in 0..TOTAL {
            writeln!(buf, "{i:010} back-pressure line")?;
            if buf.len() >= (1 << 16) - 64 || i + 1 == TOTAL {
                s.write_all(&buf)?;
                buf.clear();
                w.store(i + 1, Ordering::Release);
            }
        }
        f.store(true, Ordering::Release);
        Ok(())
    });
    let stream = ssc.socket_text_stream("127.0.0.1", port, StorageLevel::MEMORY_ONLY);
    // Each batch checks that its lines continue the sequence, without keeping them.
    let checked = Arc::new(Mutex::new((0u64, Vec::<String>::new())));
    let c = checked.clone();
    stream.foreach_rdd(move |rdd, t| {
        let lines = rdd.collect()?;
        let mut guard = c.lock().unwrap();
        let (next, problems) = &mut *guard;
        for line in &lines {
            let n: Option<u64> = line.get(..10).and_then(|s| s.parse().ok());
            if n != Some(*next) && problems.len() < 10 {
                problems.push(format!("batch {t}: expected line {next}, got {line:?}"));
            }
            *next += 1;
        }
        Ok(())
    });
    ssc.start().unwrap();

    // No batch is taken: the receiver fills its queue and stops reading.
    eventually(&ssc, "a full queue", |i| {
        i.records as usize > CAPACITY / 2 && i.max_queued as usize > CAPACITY / 2
    });
    let info = ssc.receiver_info()[0].clone();
    assert!(info.max_queued as usize <= CAPACITY, "{info:?}");
    assert!(info.records as usize <= CAPACITY, "{info:?}");
    assert!(
        !finished.load(Ordering::Acquire),
        "the server finished writing although nothing was taken"
    );
    let in_flight = written.load(Ordering::Acquire) - info.records;
    assert!(
        written.load(Ordering::Acquire) < TOTAL,
        "{in_flight} lines in flight"
    );

    // Batches take what was queued; reading resumes until everything has arrived.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut batches = 0u64;
    loop {
        let received = ssc.receiver_info()[0].records;
        let taken = checked.lock().unwrap().0;
        // A batch never holds records the receiver has not counted as stored.
        assert!(taken <= received, "{taken} lines taken, {received} stored");
        if received == TOTAL && taken == TOTAL {
            break;
        }
        assert!(
            batches < 10_000 && Instant::now() < deadline,
            "{taken} of {TOTAL} lines taken after {batches} batches"
        );
        // Let the receiver refill at least half its queue (or finish) before the next batch.
        eventually(&ssc, "a refilled queue", |i| {
            i.records == TOTAL || i.records - taken >= CAPACITY as u64 / 2
        });
        next_batch(&ssc, &clock);
        batches += 1;
    }
    ssc.stop(false);
    srv.join().unwrap();

    let (taken, problems) = checked.lock().unwrap().clone();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(taken, TOTAL);
    let info = ssc.receiver_info()[0].clone();
    assert_eq!(info.records, TOTAL);
    assert!(info.max_queued as usize <= CAPACITY, "{info:?}");
    let completed = ssc.completed_batches();
    assert_eq!(completed.iter().map(|b| b.records).sum::<u64>(), TOTAL);
    let largest = completed.iter().map(|b| b.records).max().unwrap();
    assert!(largest as usize <= CAPACITY, "a batch of {largest} records");
    assert!(finished.load(Ordering::Acquire));
    eprintln!(
        "back-pressure: {TOTAL} lines in {batches} batches (largest {largest}); {in_flight} lines were in flight while blocked"
    );
}

/// Measures (does not assert) the receive rate of a text socket stream on this machine. Run with
/// `cargo test --release -p spate-receivers --test socket -- --ignored --nocapture`; set
/// `SPATE_LOADGEN_PORT` to read from `cargo xtask loadgen --port P` instead of the built-in
/// server (which sends ~97-byte lines as fast as the receiver takes them).
#[test]
#[ignore = "a measurement, not a test"]
fn measure_receive_rate() {
    const SECONDS: u64 = 5;
    let ssc = StreamingContext::new("local[2]", BATCH).unwrap();
    let external: Option<u16> = std::env::var("SPATE_LOADGEN_PORT")
        .ok()
        .and_then(|p| p.parse().ok());
    let (port, stop_server, srv) = match external {
        Some(port) => (port, Arc::new(AtomicBool::new(false)), None),
        None => {
            let (listener, port) = listen();
            let stop = Arc::new(AtomicBool::new(false));
            let s = stop.clone();
            let srv = std::thread::spawn(move || {
                let Ok(mut conn) = accept(&listener) else {
                    return;
                };
                let mut buf = Vec::new();
                for i in 0..20_000u64 {
                    writeln!(
                        buf,
                        "{i:08} the quick brown fox jumps over the lazy dog while the cat sleeps in the sun ok"
                    )
                    .unwrap();
                }
                let deadline = Instant::now() + Duration::from_secs(SECONDS + 30);
                while !s.load(Ordering::Acquire) && Instant::now() < deadline {
                    if conn.write_all(&buf).is_err() {
                        return;
                    }
                }
            });
            (port, stop, Some(srv))
        }
    };
    let stream = ssc.socket_text_stream("127.0.0.1", port, StorageLevel::MEMORY_ONLY_SER_2);
    let counted = Arc::new(AtomicU64::new(0));
    let c = counted.clone();
    stream.foreach_rdd(move |rdd, _| {
        c.fetch_add(rdd.count()?, Ordering::Relaxed);
        Ok(())
    });
    ssc.start().unwrap();
    // Measure from the first stored record, over whole seconds.
    let wait = Instant::now() + DEADLINE;
    while ssc.receiver_info()[0].records == 0 && Instant::now() < wait {
        std::thread::sleep(Duration::from_millis(1));
    }
    let (r0, c0, t0) = (
        ssc.receiver_info()[0].records,
        counted.load(Ordering::Relaxed),
        Instant::now(),
    );
    for _ in 0..SECONDS {
        std::thread::sleep(Duration::from_secs(1));
        let r = ssc.receiver_info()[0].records;
        eprintln!("  {} records stored so far", r - r0);
    }
    let (r1, c1, elapsed) = (
        ssc.receiver_info()[0].records,
        counted.load(Ordering::Relaxed),
        t0.elapsed().as_secs_f64(),
    );
    stop_server.store(true, Ordering::Release);
    ssc.stop(false);
    if let Some(srv) = srv {
        srv.join().unwrap();
    }
    eprintln!(
        "socket receive rate: {:.0} records/s stored, {:.0} records/s counted by batches ({} source)",
        (r1 - r0) as f64 / elapsed,
        (c1 - c0) as f64 / elapsed,
        if external.is_some() {
            "loadgen"
        } else {
            "built-in"
        }
    );
}
