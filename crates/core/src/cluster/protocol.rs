//! The wire protocol between a driver and its executors: length-prefixed, versioned frames of
//! bincode.
//!
//! A frame is `b"SPTE"`, the protocol version (`u16`, little-endian), the payload length (`u32`)
//! and the payload: one [`Message`] encoded with bincode 2 (serde, standard config). A frame with
//! another magic or version, a length over [`MAX_FRAME`], or a payload that does not decode
//! (including one that declares more bytes than it holds) is a [`ProtocolError`]: the receiving
//! side logs it and drops the connection; it never panics, and a frame's memory is reserved as
//! its bytes arrive, not as its header declares.

use serde::{Deserialize, Serialize};
use spate_storage::{BlockId, StorageLevel};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The first bytes of every frame.
pub const MAGIC: [u8; 4] = *b"SPTE";
/// The protocol version this build speaks.
pub const VERSION: u16 = 3;
/// The largest payload accepted (256 MiB: a block of a few hundred MB must be split).
pub const MAX_FRAME: u32 = 256 << 20;

/// Why a frame was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The connection failed or closed mid-frame.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// Not a Spate frame (another program, or a corrupt stream).
    #[error("not a Spate frame (magic {0:?}): is something else talking to this port?")]
    BadMagic([u8; 4]),
    /// A frame of another protocol version.
    #[error(
        "protocol version {got}, this build speaks {VERSION}: run the same Spate binary on the driver and every executor"
    )]
    WrongVersion {
        /// The version in the frame.
        got: u16,
    },
    /// A frame longer than [`MAX_FRAME`].
    #[error("a frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooLarge(u32),
    /// The payload did not decode as a message.
    #[error("a frame that does not decode: {0}")]
    Decode(String),
}

/// A request from the driver to an executor, answered by a [`Response`] with the same id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Store a serialized block (as `serialize_block` wrote it) at `level`.
    PutBlock {
        /// The block.
        block: BlockId,
        /// Its level on the executor (replication 1: the executor keeps one copy).
        level: StorageLevel,
        /// The serialized block.
        // `serde_bytes`: encoded as its length and one run of bytes, the same encoding bincode
        // gives a `Vec<u8>` element by element, which took 37-44 ms to encode and decode per
        // 8 MiB block against 1.6-2.5 ms (a third of a core at 750k lines/s of `_2` input).
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// Send a block's serialized bytes.
    GetBlock {
        /// The block.
        block: BlockId,
    },
    /// Forget a block.
    RemoveBlock {
        /// The block.
        block: BlockId,
    },
    /// Compute a partition of an RDD the executor rebuilds from the job's graph.
    RunTask(TaskSpec),
    /// Start the receiver of input stream `stream` here, numbering its blocks from `first_seq`
    /// and telling it the source position to resume from.
    StartReceiver {
        /// The input stream's operator id.
        stream: u64,
        /// The first block sequence number.
        first_seq: u64,
        /// Where its source should resume (the position noted with the last block taken).
        position: Option<String>,
    },
    /// Cut what the receiver of `stream` stored into blocks up to `time_ms` and hand them over.
    CutReceiver {
        /// The input stream's operator id.
        stream: u64,
        /// The batch time.
        time_ms: u64,
        /// Every batch up to this time has completed on the driver (0: none yet), so the
        /// receiver no longer counts their records as unprocessed.
        completed_ms: u64,
        /// The driver holds every block with a lower sequence number. Blocks a cut took that
        /// the driver has not confirmed this way (it stopped waiting for that cut's answer) are
        /// handed over again with this one.
        taken_below: u64,
    },
    /// Stop the receiver of `stream` (what it stored is cut into final blocks).
    StopReceiver {
        /// The input stream's operator id.
        stream: u64,
    },
}

/// A block a receiver on an executor cut: its sequence number, record count, and the source
/// position after it (if the receiver notes positions).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CutBlock {
    /// The block's sequence number (`BlockId::Input { stream, unique: seq }`).
    pub seq: u64,
    /// Its records.
    pub records: u64,
    /// The source position after it.
    pub position: Option<String>,
}

/// What a receiver on an executor counted there since it was first started in that process,
/// sent with every cut: the driver adds what is new since the last cut to the receiver's
/// counts, so its monitoring shows what happened on the executor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiverCounts {
    /// Records skipped as malformed.
    pub skipped: u64,
    /// Errors reported (failures that led to restarts among them).
    pub errors: u64,
    /// Restarts after failures, in place.
    pub restarts: u64,
    /// The most records ever waiting for the block generator.
    pub max_queued: u64,
    /// Times storing waited for memory.
    pub memory_waits: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
}

/// What a cut of a receiver on an executor hands over: its blocks, and what the receiver
/// counted there so far.
pub type Cut = (Vec<CutBlock>, ReceiverCounts);

/// A count an input stream keeps in the executor's process (files read, lines skipped):
/// executors send theirs with each heartbeat, and the driver shows its own plus theirs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputCount {
    /// The input stream's operator id.
    pub stream: u64,
    /// The counter's name.
    pub name: String,
    /// Its value in the executor's process so far.
    pub value: u64,
}

/// A task, by name: partition `partition` of RDD `rdd`, which operator `op` makes at batch
/// `time_ms`; with the zero time and the inputs' plans for that batch (as the metadata
/// checkpoint records them), so the executor rebuilds exactly the driver's RDD.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The operator.
    pub op: u64,
    /// The batch time.
    pub time_ms: u64,
    /// The zero time of the streaming context.
    pub zero_ms: u64,
    /// The RDD's structural id.
    pub rdd: u64,
    /// The partition.
    pub partition: u32,
    /// Each input operator's saved position, by operator id.
    pub inputs: Vec<(u64, String)>,
    /// When set, the task is map task `partition` of this shuffle (the executor keeps the
    /// buckets) instead of computing a partition of `rdd`.
    pub map_of: Option<u64>,
    /// RDDs of earlier batches the driver holds (persisted), which the task's lineage may read
    /// (a window's old batches, the previous state): the executor reads their partitions from
    /// the driver instead of rebuilding them.
    pub held: Vec<HeldRdd>,
}

/// An RDD of an earlier batch, held by the driver: named by operator and batch time, with the
/// id, partition count and partitioner it has there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeldRdd {
    /// The operator.
    pub op: u64,
    /// The batch time.
    pub time_ms: u64,
    /// Its structural id.
    pub rdd: u64,
    /// Its number of partitions.
    pub partitions: u32,
    /// Its partitioner, if any (a child's dependencies depend on it).
    pub partitioner: Option<crate::PartitionerInfo>,
}

/// An executor's answer to a [`Request`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// The block is stored.
    Stored,
    /// The block, if the executor has it.
    Block(#[serde(with = "serde_bytes")] Option<Vec<u8>>),
    /// Whether a block was removed.
    Removed(bool),
    /// A task's partition, serialized.
    Computed(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The blocks a receiver cut, and what it counted so far.
    Cut(Vec<CutBlock>, ReceiverCounts),
    /// The request failed; why.
    Failed(String),
    /// A task could not read a shuffle output (its executor is gone): the driver's scheduler
    /// re-runs that map task and then the task.
    FetchFailed {
        /// The shuffle.
        shuffle: u64,
        /// The map partition whose output is missing.
        map: u32,
    },
}

/// Everything that crosses a driver–executor connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// The executor's first message.
    Register {
        /// Its task threads.
        cores: u32,
        /// Its process id (for logs and tests).
        pid: u32,
        /// A hash of its executable (tasks go only to executors of the driver's build).
        build: u64,
        /// The fingerprint of the job graph it built, if any (tasks need the driver's).
        graph: Option<u64>,
    },
    /// The driver's answer to `Register`: the executor's id.
    Registered {
        /// The executor id.
        executor: u32,
        /// The driver's default parallelism (shuffle partition counts), which the executor's
        /// graph must use to name the same RDDs.
        parallelism: u32,
    },
    /// Sent by each executor every heartbeat interval.
    Heartbeat {
        /// Blocks it holds.
        blocks: u64,
        /// Bytes of blocks in its memory.
        memory_bytes: u64,
        /// The input streams' counts in its process (those not zero).
        counts: Vec<InputCount>,
    },
    /// A request (driver to executor).
    Request {
        /// Matches the response.
        id: u64,
        /// What to do.
        body: Request,
    },
    /// A response (executor to driver).
    Response {
        /// The request's id.
        id: u64,
        /// The answer.
        body: Response,
    },
    /// The driver is done: the executor exits.
    Shutdown,
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// A message as one frame.
pub fn encode(message: &Message) -> Result<Vec<u8>, ProtocolError> {
    // A counting pass first (bytes are counted, not copied) gives the payload's length: a frame
    // too large is refused before anything is written, and the payload is encoded in place
    // after the header (a payload encoded on its own was copied into the frame: 8 MiB per
    // replicated block).
    let cannot =
        |e: bincode::error::EncodeError| ProtocolError::Decode(format!("cannot encode: {e}"));
    let mut size = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(message, &mut size, config()).map_err(cannot)?;
    let len = u32::try_from(size.bytes_written)
        .ok()
        .filter(|l| *l <= MAX_FRAME)
        .ok_or(ProtocolError::TooLarge(u32::MAX))?;
    let mut frame = Vec::with_capacity(10 + size.bytes_written);
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&VERSION.to_le_bytes());
    frame.extend_from_slice(&len.to_le_bytes());
    let written =
        bincode::serde::encode_into_std_write(message, &mut frame, config()).map_err(cannot)?;
    if written != size.bytes_written {
        return Err(ProtocolError::Decode(format!(
            "cannot encode: the message took {written} bytes, counted {}",
            size.bytes_written
        )));
    }
    Ok(frame)
}

/// Checks a frame header; returns the payload length.
fn check_header(h: &[u8; 10]) -> Result<u32, ProtocolError> {
    let magic: [u8; 4] = [h[0], h[1], h[2], h[3]];
    if magic != MAGIC {
        return Err(ProtocolError::BadMagic(magic));
    }
    let version = u16::from_le_bytes([h[4], h[5]]);
    if version != VERSION {
        return Err(ProtocolError::WrongVersion { got: version });
    }
    let len = u32::from_le_bytes([h[6], h[7], h[8], h[9]]);
    if len > MAX_FRAME {
        return Err(ProtocolError::TooLarge(len));
    }
    Ok(len)
}

/// Decodes a payload. The decoder's limit follows the payload's length (see
/// [`spate_storage::decode_bounded`]), so a frame that declares a byte run or string far longer
/// than itself is refused before that is reserved: a peer that has not even registered cannot
/// make the driver reserve more than 1 MiB or 64 times what it sent, whichever is more.
fn decode(payload: &[u8]) -> Result<Message, ProtocolError> {
    let (message, used) = spate_storage::decode_bounded(payload).map_err(ProtocolError::Decode)?;
    if used != payload.len() {
        return Err(ProtocolError::Decode(format!(
            "{} bytes left after the message",
            payload.len() - used
        )));
    }
    Ok(message)
}

/// Reads one frame; `Ok(None)` at a clean end of the connection.
pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Message>, ProtocolError> {
    let mut h = [0u8; 10];
    match r.read_exact(&mut h).await {
        Ok(_) => {}
        // Closed between frames; a reset there is a peer that exited with our heartbeats
        // unread, which is how a finished driver goes away.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    }
    let len = check_header(&h)? as usize;
    // The buffer grows as the payload arrives, doubling up to the declared length: a header
    // alone (ten bytes, from anyone who can connect) must not reserve `MAX_FRAME`. The
    // doubling copies the payload at most once over, on top of reading it.
    let mut payload = Vec::with_capacity(len.min(FIRST_READ));
    while payload.len() < len {
        if payload.len() == payload.capacity() {
            payload.reserve_exact(payload.len().min(len - payload.len()));
        }
        let room = payload.capacity().min(len) - payload.len();
        if (&mut *r).take(room as u64).read_buf(&mut payload).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "the connection closed {} bytes into a {len}-byte frame",
                    payload.len()
                ),
            )
            .into());
        }
    }
    decode(&payload).map(Some)
}

/// What [`read`] reserves for a payload before any of it has arrived.
const FIRST_READ: usize = 64 << 10;

/// Writes one frame.
pub async fn write<W: AsyncWrite + Unpin>(
    w: &mut W,
    message: &Message,
) -> Result<(), ProtocolError> {
    let frame = encode(message)?;
    w.write_all(&frame).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(m: &Message) -> Result<Option<Message>, ProtocolError> {
        let frame = encode(m).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(read(&mut frame.as_slice()))
    }

    #[test]
    fn messages_round_trip() {
        let msgs = [
            Message::Register {
                cores: 2,
                pid: 7,
                build: 1,
                graph: Some(2),
            },
            Message::Request {
                id: 9,
                body: Request::PutBlock {
                    block: BlockId::Input {
                        stream: 1,
                        unique: 2,
                    },
                    level: StorageLevel::MEMORY_ONLY_SER,
                    bytes: vec![1, 2, 3],
                },
            },
            Message::Response {
                id: 9,
                body: Response::Block(Some(vec![4; 1000])),
            },
            Message::Response {
                id: 10,
                body: Response::FetchFailed { shuffle: 3, map: 1 },
            },
            Message::Shutdown,
        ];
        for m in msgs {
            assert_eq!(roundtrip(&m).unwrap(), Some(m));
        }
    }

    /// The messages that carry bytes, as bincode encodes them element by element (what the
    /// protocol sent before the bytes were encoded as one run).
    #[derive(Serialize)]
    enum ElementWise {
        #[allow(dead_code)]
        Register,
        #[allow(dead_code)]
        Registered,
        #[allow(dead_code)]
        Heartbeat,
        Request {
            id: u64,
            body: ElementWiseRequest,
        },
        Response {
            id: u64,
            body: ElementWiseResponse,
        },
    }
    #[derive(Serialize)]
    enum ElementWiseRequest {
        PutBlock {
            block: BlockId,
            level: StorageLevel,
            bytes: Vec<u8>,
        },
    }
    #[derive(Serialize)]
    enum ElementWiseResponse {
        #[allow(dead_code)]
        Stored,
        Block(Option<Vec<u8>>),
        #[allow(dead_code)]
        Removed(bool),
        Computed(Vec<u8>),
    }

    #[test]
    fn bytes_go_as_one_run_in_the_encoding_they_always_had() {
        let bytes: Vec<u8> = (0..100_000u32).map(|i| ((i * 7919) >> 5) as u8).collect();
        let block = BlockId::Input {
            stream: 1,
            unique: 2,
        };
        let level = StorageLevel::MEMORY_ONLY_SER;
        let pairs = [
            (
                Message::Request {
                    id: 3,
                    body: Request::PutBlock {
                        block: block.clone(),
                        level,
                        bytes: bytes.clone(),
                    },
                },
                ElementWise::Request {
                    id: 3,
                    body: ElementWiseRequest::PutBlock {
                        block,
                        level,
                        bytes: bytes.clone(),
                    },
                },
            ),
            (
                Message::Response {
                    id: 4,
                    body: Response::Block(Some(bytes.clone())),
                },
                ElementWise::Response {
                    id: 4,
                    body: ElementWiseResponse::Block(Some(bytes.clone())),
                },
            ),
            (
                Message::Response {
                    id: 5,
                    body: Response::Block(None),
                },
                ElementWise::Response {
                    id: 5,
                    body: ElementWiseResponse::Block(None),
                },
            ),
            (
                Message::Response {
                    id: 6,
                    body: Response::Computed(bytes.clone()),
                },
                ElementWise::Response {
                    id: 6,
                    body: ElementWiseResponse::Computed(bytes.clone()),
                },
            ),
        ];
        for (m, old) in pairs {
            let frame = encode(&m).unwrap();
            let old = bincode::serde::encode_to_vec(&old, config()).unwrap();
            assert_eq!(&frame[10..], &old[..], "{m:?}");
            assert_eq!(roundtrip(&m).unwrap(), Some(m));
        }
    }

    #[test]
    fn bad_frames_are_errors_that_say_what_is_wrong() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut frame = encode(&Message::Shutdown).unwrap();
        frame[4] = 9; // another version
        let e = rt.block_on(read(&mut frame.as_slice())).unwrap_err();
        assert!(e.to_string().contains("protocol version 9"), "{e}");
        let e = rt
            .block_on(read(&mut &b"GET / HTTP/1.1\r\n\r\n"[..]))
            .unwrap_err();
        assert!(matches!(e, ProtocolError::BadMagic(_)), "{e}");
        let mut frame = encode(&Message::Shutdown).unwrap();
        frame[6..10].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            rt.block_on(read(&mut frame.as_slice())).unwrap_err(),
            ProtocolError::TooLarge(_)
        ));
        let mut frame = encode(&Message::Registered {
            executor: 1,
            parallelism: 2,
        })
        .unwrap();
        let n = frame.len();
        frame[n - 1] = 0xff; // garbage payload
        frame[10] = 0xee;
        assert!(rt.block_on(read(&mut frame.as_slice())).is_err());
        // A clean end of stream is not an error.
        assert!(rt.block_on(read(&mut &[][..])).unwrap().is_none());
    }

    /// `message`'s payload with its last field, an empty byte run or string (encoded as the one
    /// byte 0), made to declare `declared` bytes that do not follow.
    fn declaring(message: &Message, declared: u64) -> Vec<u8> {
        let mut payload = encode(message).unwrap()[10..].to_vec();
        assert_eq!(payload.pop(), Some(0), "{message:?} ends in an empty run");
        payload.push(0xfd); // bincode: a u64 follows
        payload.extend_from_slice(&declared.to_le_bytes());
        payload
    }

    /// A frame around `payload`, its header right.
    fn frame_of(payload: &[u8]) -> Vec<u8> {
        let mut frame = MAGIC.to_vec();
        frame.extend_from_slice(&VERSION.to_le_bytes());
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    /// Messages whose last field is a byte run or a string: every kind of field the decoder
    /// reserves at a length the input declares.
    fn ending_in_a_run() -> Vec<Message> {
        vec![
            Message::Response {
                id: 1,
                body: Response::Computed(Vec::new()),
            },
            Message::Response {
                id: 2,
                body: Response::Block(Some(Vec::new())),
            },
            Message::Response {
                id: 3,
                body: Response::Failed(String::new()),
            },
            Message::Request {
                id: 4,
                body: Request::PutBlock {
                    block: BlockId::Named("b".into()),
                    level: StorageLevel::MEMORY_ONLY_SER,
                    bytes: Vec::new(),
                },
            },
            Message::Request {
                id: 5,
                body: Request::StartReceiver {
                    stream: 1,
                    first_seq: 0,
                    position: Some(String::new()),
                },
            },
        ]
    }

    #[test]
    fn a_frame_declaring_more_bytes_than_it_holds_is_a_decode_error() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // Past `isize::MAX` (the decoder panicked), past any machine's memory (the process
        // aborted), past the frame limit, and just past the payload.
        for declared in [u64::MAX, 1 << 62, 1 << 36, u64::from(MAX_FRAME) + 1, 1] {
            for m in ending_in_a_run() {
                let frame = frame_of(&declaring(&m, declared));
                let e = rt.block_on(read(&mut frame.as_slice())).unwrap_err();
                assert!(matches!(e, ProtocolError::Decode(_)), "{m:?}: {e}");
                if declared > 1 << 20 {
                    assert!(
                        e.to_string().contains("declare more data than they hold"),
                        "{e}"
                    );
                }
            }
        }
    }

    /// Hands out at most `piece` bytes per read, and notes the most room a read was offered.
    struct Trickle<'a> {
        bytes: &'a [u8],
        piece: usize,
        most_offered: usize,
    }

    impl tokio::io::AsyncRead for Trickle<'_> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            self.most_offered = self.most_offered.max(buf.remaining());
            let n = self.piece.min(buf.remaining()).min(self.bytes.len());
            buf.put_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn a_payload_is_buffered_as_it_arrives_not_as_its_header_declares() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // A header declaring the largest frame, then 100 bytes and the end of the connection.
        let mut frame = frame_of(&[]);
        frame[6..10].copy_from_slice(&MAX_FRAME.to_le_bytes());
        frame.extend_from_slice(&[7; 100]);
        let mut r = Trickle {
            bytes: &frame,
            piece: usize::MAX,
            most_offered: 0,
        };
        let e = rt.block_on(read(&mut r)).unwrap_err();
        assert!(e.to_string().contains("closed 100 bytes into"), "{e}");
        assert!(r.most_offered <= FIRST_READ, "offered {}", r.most_offered);
        // Payloads around the sizes where the buffer grows, arriving in pieces of every size,
        // each followed by another frame: read whole and no further.
        for len in [
            0,
            1,
            FIRST_READ - 1,
            FIRST_READ,
            FIRST_READ + 1,
            3 * FIRST_READ + 5,
        ] {
            let m = Message::Response {
                id: len as u64,
                body: Response::Computed((0..len).map(|i| (i * 31 % 251) as u8).collect()),
            };
            let mut frames = encode(&m).unwrap();
            frames.extend(encode(&Message::Shutdown).unwrap());
            for piece in [1, 7, 4096, 1 << 20] {
                let mut r = Trickle {
                    bytes: &frames,
                    piece,
                    most_offered: 0,
                };
                assert_eq!(rt.block_on(read(&mut r)).unwrap().as_ref(), Some(&m));
                assert_eq!(rt.block_on(read(&mut r)).unwrap(), Some(Message::Shutdown));
                assert_eq!(rt.block_on(read(&mut r)).unwrap(), None);
            }
        }
    }

    /// Short byte strings heavy in the bytes that make bincode read long lengths (0xfb to
    /// 0xfe: a `u16` to `u128` follows), in 0xff, and in small variant indices.
    fn hostile_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        proptest::collection::vec(
            prop_oneof![
                any::<u8>(),
                Just(0xfd),
                Just(0xfc),
                Just(0xfb),
                Just(0xfe),
                Just(0xff),
                0u8..6,
            ],
            0..48,
        )
    }

    proptest::proptest! {
        /// Whatever a frame's payload holds, reading it is a message or an error, never a
        /// panic or an abort: random bytes, alone or after the start of a real message (so
        /// that they land where the decoder reads a length).
        #[test]
        fn hostile_payloads_are_errors_never_a_panic(
            which in proptest::sample::select((0..5).collect::<Vec<usize>>()),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
            tail in hostile_bytes(),
        ) {
            let _ = decode(&tail);
            let real = encode(&ending_in_a_run()[which]).unwrap();
            let mut payload = real[10..10 + cut.index(real.len() - 10)].to_vec();
            payload.extend_from_slice(&tail);
            let _ = decode(&payload);
            let frame = frame_of(&payload);
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let _ = rt.block_on(read(&mut frame.as_slice()));
        }
    }

    /// The driver's listener, sent a frame that declares 64 GiB in a few bytes before any
    /// registration, drops that connection and goes on serving: an executor that connects next
    /// registers.
    #[test]
    fn the_driver_drops_a_hostile_frame_and_registers_the_next_executor() {
        use std::time::Duration;
        let cluster = crate::cluster::Cluster::listen("127.0.0.1:0").unwrap();
        let addr = cluster.addr();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let bounded = Duration::from_secs(30);
        rt.block_on(async {
            for m in ending_in_a_run() {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                s.write_all(&frame_of(&declaring(&m, 1 << 36)))
                    .await
                    .unwrap();
                // The driver closes the connection without an answer.
                let answer = tokio::time::timeout(bounded, read(&mut s)).await;
                assert!(
                    matches!(answer, Ok(Ok(None)) | Ok(Err(ProtocolError::Io(_)))),
                    "{answer:?}"
                );
            }
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let register = Message::Register {
                cores: 1,
                pid: 4242,
                build: 0,
                graph: None,
            };
            write(&mut s, &register).await.unwrap();
            let answer = tokio::time::timeout(bounded, read(&mut s)).await;
            assert!(
                matches!(answer, Ok(Ok(Some(Message::Registered { .. })))),
                "{answer:?}"
            );
            // Listed once the driver has noted it (just after answering), while its
            // connection is open.
            assert!(cluster.wait_for_executors(1, bounded));
            let pids: Vec<u32> = cluster.executors().iter().map(|e| e.pid).collect();
            assert_eq!(pids, vec![4242]);
        });
    }
}
