//! Socket sources: a receiver that connects to `host:port` and reads records — UTF-8 lines, a
//! user converter's records, or length-prefixed serialized blocks.
//!
//! A refused or lost connection is logged, counted and retried by the receiver supervisor with
//! exponential backoff (the stream goes on, with empty batches meanwhile); the records read
//! before a connection failed are stored first. Reads use a short timeout so a stop is noticed
//! promptly. While the block generator's queue is full, `store` blocks and the socket is not
//! read, so the sender is slowed by TCP flow control.
//!
//! What a source sends cannot make the receiver hold unbounded memory: a line longer than
//! [`SocketConfig::max_line_bytes`] is skipped to its newline, and a frame longer than
//! [`SocketConfig::max_frame_bytes`] is refused; both are counted as skipped records and logged.
//!
//! A line source that can replay (keeps its lines and can start from any line number) can make
//! the text stream lose nothing across receiver and driver restarts: with
//! [`SocketConfig::replay`] on, the receiver's first message on every connection is
//! `FROM <n>\n`, `n` being how many lines it already has from this source, and the source sends
//! from line `n` on. Each stored chunk notes the line count after it; with the write-ahead log on
//! ([`ReceiverConfig::write_ahead_log`](spate_streaming::ReceiverConfig)) that count is logged
//! with the block, and a recovered driver resumes from the count of the last logged block.

use crate::{Converter, Sources};
use spate_streaming::{
    DStream, Data, EncodedRecords, Receiver, ReceiverContext, ReceiverError, StopSignal,
    StorageLevel, StreamingContext,
};
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Where and how a socket receiver connects.
#[derive(Clone, Debug)]
pub struct SocketConfig {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// How long a connection attempt may take (5 s).
    pub connect_timeout: Duration,
    /// How often a blocked read wakes to check for a stop (200 ms).
    pub poll_interval: Duration,
    /// Speak the replay protocol: send `FROM <lines already received>\n` on connecting (text
    /// streams only; off by default).
    pub replay: bool,
    /// The longest line a text stream receives, in bytes without its line end (8 MiB). A
    /// longer line is skipped up to its newline, counted and logged as a malformed record
    /// ([`ReceiverInfo::skipped`](spate_streaming::ReceiverInfo)); the lines around it arrive.
    /// Without a bound, a source that never sends a newline (a binary stream sent to a text
    /// port) would grow the receiver's line buffer until the process ran out of memory.
    pub max_line_bytes: usize,
    /// The largest frame a stream of serialized blocks
    /// ([`raw_socket_stream`](crate::Sources::raw_socket_stream)) accepts, in bytes (64 MiB). A
    /// frame is held whole before its values are decoded, so this bounds what one connection
    /// can make the receiver hold. A larger frame is treated as a corrupt one: counted as
    /// skipped, logged, and the connection opened again, since its length prefix is most
    /// likely not a length at all.
    pub max_frame_bytes: usize,
}

/// The default of [`SocketConfig::max_line_bytes`]: far above any line a text source normally
/// sends (log lines and JSON events are kilobytes), and small enough that a source that never
/// ends a line is noticed after 8 MiB rather than when memory runs out.
pub const DEFAULT_MAX_LINE_BYTES: usize = 8 << 20;

/// The default of [`SocketConfig::max_frame_bytes`]: eight times the largest block the engine's
/// own receivers cut (8 MiB), while a garbage length prefix (text sent to a frame port reads as
/// a length of hundreds of MB or more) is refused at once.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 << 20;

impl SocketConfig {
    /// Default settings for `host:port`.
    pub fn new(host: &str, port: u16) -> SocketConfig {
        SocketConfig {
            host: host.to_string(),
            port,
            connect_timeout: Duration::from_secs(5),
            poll_interval: Duration::from_millis(200),
            replay: false,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        }
    }

    fn connect(&self, signal: &StopSignal) -> Result<StoppableStream, ReceiverError> {
        let target = format!("{}:{}", self.host, self.port);
        let addrs: Vec<_> = target
            .to_socket_addrs()
            .map_err(|e| ReceiverError::Retry(format!("cannot resolve {target}: {e}")))?
            .collect();
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(stream) => {
                    stream
                        .set_read_timeout(Some(self.poll_interval))
                        .map_err(|e| {
                            ReceiverError::Retry(format!(
                                "cannot configure the connection to {target}: {e}"
                            ))
                        })?;
                    tracing::info!(%target, "connected");
                    return Ok(StoppableStream {
                        stream,
                        signal: signal.clone(),
                        waiting: Arc::default(),
                        poll_interval: self.poll_interval,
                        held_since: None,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(ReceiverError::Retry(format!(
            "cannot connect to {target}: {}",
            last.map_or_else(|| "no address".to_string(), |e| e.to_string())
        )))
    }
}

/// `BufRead::read_until(b'\n')` with the newline found by the `memchr` crate's vectorized search
/// (the standard library's word-at-a-time search was 2.9% of a word count's CPU at 2M lines/s).
/// Like `read_until`, what was read before an error stays in `line`; returns the bytes read, 0
/// at the end of the stream. It also returns, without a newline, once `line` holds more than
/// `limit` bytes, so that a line without end cannot grow `line` without bound (it may pass
/// `limit` by what one read of the buffer added).
fn read_line_bytes(
    r: &mut impl BufRead,
    line: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<usize> {
    let mut read = 0;
    loop {
        let available = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let (used, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (i + 1, true),
            None => (available.len(), available.is_empty()),
        };
        line.extend_from_slice(&available[..used]);
        r.consume(used);
        read += used;
        if done || line.len() > limit {
            return Ok(read);
        }
    }
}

/// Consumes the rest of a line without keeping it, adding the bytes before its newline to
/// `dropped`: `true` once the newline is consumed, `false` at the end of the stream. What was
/// consumed before an error is counted in `dropped`.
fn skip_line_bytes(r: &mut impl BufRead, dropped: &mut u64) -> std::io::Result<bool> {
    loop {
        let available = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(false);
        }
        match memchr::memchr(b'\n', available) {
            Some(i) => {
                *dropped += i as u64;
                r.consume(i + 1);
                return Ok(true);
            }
            None => {
                let n = available.len();
                *dropped += n as u64;
                r.consume(n);
            }
        }
    }
}

/// A socket whose reads return end-of-stream once the receiver is told to stop.
struct StoppableStream {
    stream: TcpStream,
    signal: StopSignal,
    /// True while a read is under way (it may be waiting for the sender).
    waiting: Arc<AtomicBool>,
    /// The read timeout between checks for a stop.
    poll_interval: Duration,
    /// When the oldest record the reader holds (has not handed over) arrived, if it may hold
    /// any: then a read returns `WouldBlock` once that record has waited [`MAX_HOLD`] (at once,
    /// or after waiting for data that long), so that the reader hands the records over.
    held_since: Option<Instant>,
}

impl Read for StoppableStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.waiting.store(true, Ordering::Release);
        let result = self.read_until_data(buf);
        self.waiting.store(false, Ordering::Release);
        result
    }
}

impl StoppableStream {
    /// Says since when the reader holds records (`None`: it holds none); changes the socket's
    /// read timeout (a system call) only when whether it holds any changes.
    fn hold(&mut self, since: Option<Instant>) -> std::io::Result<()> {
        if since.is_some() != self.held_since.is_some() {
            self.stream.set_read_timeout(Some(if since.is_some() {
                MAX_HOLD
            } else {
                self.poll_interval
            }))?;
        }
        self.held_since = since;
        Ok(())
    }

    fn read_until_data(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.signal.is_stopped() {
                return Ok(0);
            }
            if self.held_since.is_some_and(|t| t.elapsed() >= MAX_HOLD) {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            match self.stream.read(buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.held_since.is_some() {
                        return Err(std::io::ErrorKind::WouldBlock.into());
                    }
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

/// Why a line is skipped (counted and logged) instead of stored.
enum Skipped {
    /// Its bytes are not UTF-8.
    NotUtf8,
    /// It is longer than [`SocketConfig::max_line_bytes`]: its length in bytes (a `\r` before
    /// its newline may be counted).
    TooLong(u64),
}

enum Format<T> {
    Lines,
    Converter(Converter<T>),
    Frames,
}

/// A receiver reading records from a TCP connection.
pub struct SocketReceiver<T: Data> {
    config: SocketConfig,
    format: Format<T>,
    /// Lines received from this source so far (replay mode), once known.
    received: Option<u64>,
}

impl SocketReceiver<String> {
    /// A receiver of UTF-8 lines.
    pub fn lines(config: SocketConfig) -> SocketReceiver<String> {
        SocketReceiver {
            config,
            format: Format::Lines,
            received: None,
        }
    }
}

impl<T: Data> SocketReceiver<T> {
    /// A receiver whose records `converter` reads from the connection.
    pub fn with_converter(config: SocketConfig, converter: Converter<T>) -> SocketReceiver<T> {
        SocketReceiver {
            config,
            format: Format::Converter(converter),
            received: None,
        }
    }

    /// A receiver of length-prefixed serialized blocks.
    pub fn frames(config: SocketConfig) -> SocketReceiver<T> {
        SocketReceiver {
            config,
            format: Format::Frames,
            received: None,
        }
    }
}

/// Records are handed over in chunks of at most this many, and whenever the oldest record of the
/// chunk has waited [`MAX_HOLD`] (checked before each read of the socket, which gives up after
/// waiting that long for data).
const CHUNK: usize = 4096;

/// How long a line receiver holds records before handing them over. Handing over costs a
/// message to the block generator and wakes it up: done whenever the socket had nothing more
/// buffered, a receiver at 750k lines/s handed over chunks of 11 lines on average, 17,000 a
/// second, and the receiver and block generator threads took a quarter of the machine's CPU.
const MAX_HOLD: Duration = Duration::from_millis(1);

/// How often converted records are handed over while the connection waits for data (a
/// converter's iterator blocks inside its reads, so its last records would otherwise wait for a
/// full chunk or the end of the connection).
const CONVERTED_FLUSH: Duration = Duration::from_millis(5);

/// Sets a flag when dropped, also on unwinding.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

fn lost(target: &str, e: std::io::Error) -> ReceiverError {
    ReceiverError::Retry(format!("connection to {target} lost: {e}"))
}

impl<T: Data> SocketReceiver<T> {
    fn target(&self) -> String {
        format!("{}:{}", self.config.host, self.config.port)
    }

    fn receive_lines(
        &mut self,
        reader: StoppableStream,
        ctx: &ReceiverContext<String>,
    ) -> Result<(), ReceiverError> {
        let target = self.target();
        // In replay mode every chunk notes the line count after it.
        let replay = self.config.replay;
        let max = self.config.max_line_bytes;
        let mut received = self.received.unwrap_or(0);
        // Lines are encoded as they are read, into the bytes the block will hold: no `String`
        // per line, and the block generator copies bytes instead of serializing values (at 2M
        // lines/s the receiver and block generator took over a third of the CPU, most of it
        // allocating, moving and freeing the lines).
        let store = |chunk: EncodedRecords<String>, received: u64, this: &mut Self| {
            if replay {
                this.received = Some(received);
                ctx.store_encoded_at(chunk, received.to_string());
            } else {
                ctx.store_encoded(chunk);
            }
        };
        // The next chunk gets room for a quarter more bytes than the last one took: with room
        // for exactly as many, every chunk whose lines ran a little longer grew its vector,
        // copying it whole (at 3.5M lines/s, 0.75% of the process's CPU time in that copy).
        let next_chunk = |last: &EncodedRecords<String>| {
            ctx.encoded_records(last.encoded_len() + last.encoded_len() / 4)
        };
        // One line read (its text, or why it is skipped): counted, added to `chunk` or
        // skipped, and the chunk handed over once full.
        let take_line = |line: Result<&str, Skipped>,
                         chunk: &mut EncodedRecords<String>,
                         since: &mut Instant,
                         received: &mut u64,
                         this: &mut Self| {
            *received += 1;
            if chunk.is_empty() {
                *since = Instant::now();
            }
            match line {
                Ok(s) => chunk.push_str(s),
                Err(Skipped::NotUtf8) => {
                    ctx.skip(&format!("a line from {target} is not valid UTF-8"))
                }
                Err(Skipped::TooLong(bytes)) => ctx.skip(&format!(
                    "a line of {bytes} bytes from {target} is over the {max}-byte limit: raise SocketConfig::max_line_bytes to receive such lines"
                )),
            }
            if chunk.len() >= CHUNK {
                let next = next_chunk(chunk);
                store(std::mem::replace(chunk, next), *received, this);
            }
        };
        // The connection failed: the lines read so far are stored before it is given up (a
        // reset can follow thousands of complete lines). The start of a line it cut short is
        // counted as skipped, unless the source sends it again (replay).
        let give_up = |e: std::io::Error,
                       chunk: &mut EncodedRecords<String>,
                       cut_short: bool,
                       received: u64,
                       this: &mut Self| {
            if cut_short && !replay {
                ctx.skip(&format!(
                    "the connection to {target} failed inside a line: the start of it is skipped"
                ));
            }
            store(std::mem::take(chunk), received, this);
            lost(&target, e)
        };
        // The end of the stream, after every line read was taken (`inside_line`: the stream
        // ended inside a line, which a replaying source sends again, whole, on the next
        // connection).
        let ended = |chunk: &mut EncodedRecords<String>,
                     received: u64,
                     inside_line: bool,
                     this: &mut Self| {
            store(std::mem::take(chunk), received, this);
            if ctx.is_stopped() {
                Ok(())
            } else if inside_line {
                Err(ReceiverError::Retry(format!(
                    "{target} closed the connection inside a line; it is asked for again"
                )))
            } else {
                Err(ReceiverError::Retry(format!(
                    "{target} closed the connection"
                )))
            }
        };
        let mut reader = BufReader::with_capacity(1 << 16, reader);
        let mut chunk = EncodedRecords::with_capacity(1 << 12);
        // When the oldest record of `chunk` arrived.
        let mut since = Instant::now();
        // The line being read; after a read that waited too long, the start of it.
        let mut line = Vec::with_capacity(256);
        // While the rest of a line over `max` is being skipped: its bytes so far.
        let mut overlong: Option<u64> = None;
        loop {
            // The complete lines the reader holds are encoded where they lie in its buffer,
            // validated as UTF-8 all at once (at 3M lines/s copying each line out and checking
            // it alone took a third of the receiver's time); only a line that continues past
            // the buffer goes through `line`.
            if line.is_empty()
                && overlong.is_none()
                && let Some(end) = memchr::memrchr(b'\n', reader.buffer())
            {
                let complete = &reader.buffer()[..end];
                let text = std::str::from_utf8(complete);
                let mut start = 0;
                for stop in memchr::memchr_iter(b'\n', complete).chain([end]) {
                    let mut raw = start..stop;
                    start = stop + 1;
                    if raw.end > raw.start && complete[raw.end - 1] == b'\r' {
                        raw.end -= 1;
                    }
                    // A newline is never inside a character, so the valid text's lines are
                    // slices of it; in invalid text, each line is checked alone.
                    let one = if raw.len() > max {
                        Err(Skipped::TooLong(raw.len() as u64))
                    } else {
                        match &text {
                            Ok(t) => Ok(&t[raw]),
                            Err(_) => {
                                std::str::from_utf8(&complete[raw]).map_err(|_| Skipped::NotUtf8)
                            }
                        }
                    };
                    take_line(one, &mut chunk, &mut since, &mut received, self);
                }
                reader.consume(end + 1);
                if !chunk.is_empty()
                    && let Err(e) = reader.get_mut().hold(Some(since))
                {
                    return Err(give_up(e, &mut chunk, false, received, self));
                }
                continue;
            }
            let read = match &mut overlong {
                // Up to the newline or the end of the stream; the line is `max` bytes long
                // at most once a `\r` before its newline is dropped, so only more than
                // `max + 1` bytes without a newline make it over-long.
                None => read_line_bytes(&mut reader, &mut line, max.saturating_add(1)),
                Some(dropped) => skip_line_bytes(&mut reader, dropped).map(usize::from),
            };
            let n = match read {
                Ok(n) => n,
                // The held records have waited long enough: hand them over, then wait for data as
                // long as it takes.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let next = next_chunk(&chunk);
                    store(std::mem::replace(&mut chunk, next), received, self);
                    if let Err(e) = reader.get_mut().hold(None) {
                        let cut_short = !line.is_empty() || overlong.is_some();
                        return Err(give_up(e, &mut chunk, cut_short, received, self));
                    }
                    continue;
                }
                Err(e) => {
                    let cut_short = !line.is_empty() || overlong.is_some();
                    return Err(give_up(e, &mut chunk, cut_short, received, self));
                }
            };
            if let Some(dropped) = overlong {
                // `n` is 1 once the newline is consumed, 0 at the end of the stream.
                if n == 0 && replay {
                    // As for any line the connection ended inside: asked for again.
                    return ended(&mut chunk, received, true, self);
                }
                overlong = None;
                take_line(
                    Err(Skipped::TooLong(dropped)),
                    &mut chunk,
                    &mut since,
                    &mut received,
                    self,
                );
                if n == 0 {
                    return ended(&mut chunk, received, false, self);
                }
            } else if line.last() != Some(&b'\n') && line.len() > max.saturating_add(1) {
                // Over the limit before its end: the rest is skipped, not kept. The buffer goes
                // back to a usual line's size.
                overlong = Some(line.len() as u64);
                line = Vec::with_capacity(256);
                continue;
            } else {
                if n == 0 && line.is_empty() {
                    return ended(&mut chunk, received, false, self);
                }
                if replay && line.last() != Some(&b'\n') {
                    return ended(&mut chunk, received, true, self);
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                let text = if line.len() > max {
                    Err(Skipped::TooLong(line.len() as u64))
                } else {
                    std::str::from_utf8(&line).map_err(|_| Skipped::NotUtf8)
                };
                take_line(text, &mut chunk, &mut since, &mut received, self);
                line.clear();
            }
            if !chunk.is_empty() {
                // The next read of the socket (also in the middle of a line) hands the chunk
                // over once its oldest record has waited `MAX_HOLD`.
                if let Err(e) = reader.get_mut().hold(Some(since)) {
                    return Err(give_up(e, &mut chunk, false, received, self));
                }
            }
        }
    }

    fn receive_converted(
        &self,
        reader: StoppableStream,
        converter: &Converter<T>,
        ctx: &ReceiverContext<T>,
    ) -> Result<(), ReceiverError> {
        let target = self.target();
        let waiting = reader.waiting.clone();
        // Converted records not yet stored: stored by this thread once a chunk is full, and by a
        // helper whenever the connection is waiting for data; both under the lock, so in order.
        let pending = parking_lot::Mutex::new(Vec::with_capacity(CHUNK));
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(Ordering::Acquire) {
                    std::thread::sleep(CONVERTED_FLUSH);
                    if waiting.load(Ordering::Acquire) {
                        let mut p = pending.lock();
                        if !p.is_empty() {
                            ctx.store_many(std::mem::take(&mut *p));
                        }
                    }
                }
            });
            let _done = SetOnDrop(&done);
            let flush = || {
                let mut p = pending.lock();
                ctx.store_many(std::mem::take(&mut *p));
            };
            for item in converter(Box::new(reader)) {
                match item {
                    Ok(x) => {
                        let mut p = pending.lock();
                        p.push(x);
                        if p.len() >= CHUNK {
                            ctx.store_many(std::mem::replace(&mut *p, Vec::with_capacity(CHUNK)));
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        ctx.skip(&format!(
                            "a record from {target} could not be converted: {e}"
                        ));
                    }
                    Err(e) => {
                        flush();
                        return Err(lost(&target, e));
                    }
                }
            }
            flush();
            if ctx.is_stopped() {
                Ok(())
            } else {
                Err(ReceiverError::Retry(format!(
                    "{target} closed the connection"
                )))
            }
        })
    }

    fn receive_frames(
        &self,
        mut reader: StoppableStream,
        ctx: &ReceiverContext<T>,
    ) -> Result<(), ReceiverError> {
        let target = self.target();
        let block = spate_streaming::storage::BlockId::Named(format!("socket {target}"));
        loop {
            let mut len = [0u8; 4];
            if let Err(e) = reader.read_exact(&mut len) {
                return if ctx.is_stopped()
                    || e.kind() == std::io::ErrorKind::UnexpectedEof && ctx.is_stopped()
                {
                    Ok(())
                } else if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    Err(ReceiverError::Retry(format!(
                        "{target} closed the connection"
                    )))
                } else {
                    Err(lost(&target, e))
                };
            }
            let len = u32::from_be_bytes(len) as usize;
            let max = self.config.max_frame_bytes;
            if len > max {
                // Most likely not a length at all (the framing is lost): counted like a
                // corrupt frame, and the connection opened again.
                ctx.skip(&format!(
                    "a frame from {target} declares {len} bytes, over the {max}-byte limit"
                ));
                return Err(ReceiverError::Retry(format!(
                    "a frame of {len} bytes from {target} is over the {max}-byte limit; reconnecting (if the source does send frames this large, raise SocketConfig::max_frame_bytes)"
                )));
            }
            // Grow the buffer only as bytes arrive: a garbage length prefix must not allocate GiBs.
            let mut frame = Vec::with_capacity(len.min(1 << 20));
            (&mut reader)
                .take(len as u64)
                .read_to_end(&mut frame)
                .map_err(|e| lost(&target, e))?;
            if frame.len() < len {
                return Err(ReceiverError::Retry(format!(
                    "{target} closed the connection in the middle of a frame"
                )));
            }
            match spate_streaming::storage::deserialize_block::<T>(&block, &frame) {
                Ok(values) => ctx.store_many(values),
                // A bad frame leaves the framing in doubt: count it and reconnect.
                Err(e) => {
                    ctx.skip(&format!("a frame from {target} is corrupt: {e}"));
                    return Err(ReceiverError::Retry(format!(
                        "corrupt frame from {target}; reconnecting"
                    )));
                }
            }
        }
    }
}

impl Receiver<String> for SocketReceiver<String> {
    fn receive(&mut self, ctx: &ReceiverContext<String>) -> Result<(), ReceiverError> {
        let mut reader = self.config.connect(&ctx.stop_signal())?;
        if self.config.replay {
            let from = match self.received {
                Some(n) => n,
                None => match ctx.logged_position() {
                    None => 0,
                    Some(p) => p.parse().map_err(|_| {
                        ReceiverError::Fatal(format!(
                            "the write-ahead log holds {p:?} as the position of {}, which is not a line count: was the checkpoint directory written by another job?",
                            self.target()
                        ))
                    })?,
                },
            };
            self.received = Some(from);
            use std::io::Write as _;
            reader
                .stream
                .write_all(format!("FROM {from}\n").as_bytes())
                .map_err(|e| lost(&self.target(), e))?;
            tracing::info!(target = %self.target(), from, "asked the source to replay from line {from}");
        }
        match &self.format {
            Format::Lines => self.receive_lines(reader, ctx),
            Format::Converter(c) => {
                let c = c.clone();
                self.receive_converted(reader, &c, ctx)
            }
            Format::Frames => self.receive_frames(reader, ctx),
        }
    }

    fn name(&self) -> String {
        format!("socket {}", self.target())
    }
}

/// A socket receiver of any record type other than lines (`String` uses the impl above).
struct Generic<T: Data>(SocketReceiver<T>);

impl<T: Data> Receiver<T> for Generic<T> {
    fn receive(&mut self, ctx: &ReceiverContext<T>) -> Result<(), ReceiverError> {
        let reader = self.0.config.connect(&ctx.stop_signal())?;
        match &self.0.format {
            Format::Converter(c) => {
                let c = c.clone();
                self.0.receive_converted(reader, &c, ctx)
            }
            Format::Frames => self.0.receive_frames(reader, ctx),
            Format::Lines => Err(ReceiverError::Fatal(
                "line format needs String records".into(),
            )),
        }
    }

    fn name(&self) -> String {
        format!("socket {}", self.0.target())
    }
}

impl Sources for StreamingContext {
    fn socket_text_stream(&self, host: &str, port: u16, level: StorageLevel) -> DStream<String> {
        self.socket_text_stream_with(SocketConfig::new(host, port), level)
    }

    fn socket_text_stream_with(
        &self,
        config: SocketConfig,
        level: StorageLevel,
    ) -> DStream<String> {
        self.receiver_stream_with_level(SocketReceiver::lines(config), level)
    }

    fn socket_stream<T: Data>(
        &self,
        host: &str,
        port: u16,
        converter: Converter<T>,
        level: StorageLevel,
    ) -> DStream<T> {
        self.receiver_stream_with_level(
            Generic(SocketReceiver::with_converter(
                SocketConfig::new(host, port),
                converter,
            )),
            level,
        )
    }

    fn raw_socket_stream<T: Data>(&self, host: &str, port: u16, level: StorageLevel) -> DStream<T> {
        self.raw_socket_stream_with(SocketConfig::new(host, port), level)
    }

    fn raw_socket_stream_with<T: Data>(
        &self,
        config: SocketConfig,
        level: StorageLevel,
    ) -> DStream<T> {
        self.receiver_stream_with_level(Generic(SocketReceiver::frames(config)), level)
    }

    fn text_file_stream(&self, dir: impl Into<PathBuf>) -> crate::FileStream {
        crate::file::file_stream(
            self,
            dir.into(),
            Box::new(|_| true),
            true,
            crate::FileStreamConfig::default(),
        )
    }

    fn file_stream(
        &self,
        dir: impl Into<PathBuf>,
        filter: impl Fn(&std::path::Path) -> bool + Send + Sync + 'static,
        new_files_only: bool,
        config: crate::FileStreamConfig,
    ) -> crate::FileStream {
        crate::file::file_stream(self, dir.into(), Box::new(filter), new_files_only, config)
    }
}

#[cfg(test)]
mod tests {
    use super::{read_line_bytes, skip_line_bytes};
    use std::io::{BufRead, BufReader};

    /// Every line and what each read returned, read with `read` through a buffer of `cap` bytes.
    fn lines_of(
        text: &[u8],
        cap: usize,
        read: fn(&mut BufReader<&[u8]>, &mut Vec<u8>) -> std::io::Result<usize>,
    ) -> Vec<(usize, Vec<u8>)> {
        let mut r = BufReader::with_capacity(cap, text);
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = read(&mut r, &mut line).unwrap();
            out.push((n, line));
            if n == 0 {
                return out;
            }
        }
    }

    proptest::proptest! {
        /// The same lines and counts as the standard library's `read_until`, whatever the
        /// buffer's size: lines split across refills, empty lines, `\r\n`, no final newline.
        #[test]
        fn lines_are_those_read_until_finds(
            text in proptest::collection::vec(
                proptest::sample::select(vec![b'a', b'b', b'\n', b'\r', 0xc3, 0xa9]),
                0..300,
            ),
            cap in 1usize..40,
        ) {
            let ours = lines_of(&text, cap, |r, line| read_line_bytes(r, line, usize::MAX));
            let std = lines_of(&text, cap, |r, line| r.read_until(b'\n', line));
            proptest::prop_assert_eq!(ours, std);
        }

        /// With a limit, a read stops at the newline, at the end, or once the line holds more
        /// than `limit` bytes (by at most what one read of the buffer added); skipping then
        /// consumes exactly the rest of that line, and the next read starts the next line.
        #[test]
        fn a_long_line_stops_at_the_limit_and_skipping_takes_the_rest(
            text in proptest::collection::vec(
                proptest::sample::select(vec![b'a', b'b', b'\n', b'\r']),
                0..300,
            ),
            cap in 1usize..40,
            limit in 0usize..30,
        ) {
            let mut r = BufReader::with_capacity(cap, &text[..]);
            for want in text.split_inclusive(|&b| b == b'\n') {
                let mut line = Vec::new();
                let n = read_line_bytes(&mut r, &mut line, limit).unwrap();
                proptest::prop_assert_eq!(n, line.len());
                if line.last() == Some(&b'\n') || line.len() <= limit {
                    proptest::prop_assert_eq!(&line[..], want);
                    continue;
                }
                proptest::prop_assert!(line.len() <= limit + cap && want.starts_with(&line));
                let mut dropped = line.len() as u64;
                let newline = skip_line_bytes(&mut r, &mut dropped).unwrap();
                let ends = want.last() == Some(&b'\n');
                proptest::prop_assert_eq!(newline, ends);
                proptest::prop_assert_eq!(dropped as usize, want.len() - usize::from(ends));
            }
            let mut rest = Vec::new();
            proptest::prop_assert_eq!(read_line_bytes(&mut r, &mut rest, limit).unwrap(), 0);
        }
    }
}
