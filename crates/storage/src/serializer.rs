//! The block serializer: bincode 2 (serde) with an integrity-checked header and optional lz4.
//!
//! Layout of a serialized block: the magic bytes `SPB1`, one codec byte, the payload length
//! (u32, little endian), the CRC-32 of the payload, then the payload (bincode, lz4-compressed if
//! the codec says so). Every check failure is a [`Error::Corrupt`] naming the block.

use crate::{BlockId, Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::{Any, TypeId};

const MAGIC: &[u8; 4] = b"SPB1";
const HEADER: usize = 4 + 1 + 4 + 4;

/// The compression applied to serialized blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Codec {
    /// Plain bincode.
    #[default]
    None,
    /// bincode compressed with lz4 (block format, size-prepended).
    Lz4,
}

impl Codec {
    /// The codec's name as settings write it: `none` or `lz4`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Lz4 => "lz4",
        }
    }

    /// The codec named `name` (see [`name`](Self::name)), if there is one.
    pub fn from_name(name: &str) -> Option<Codec> {
        [Codec::None, Codec::Lz4]
            .into_iter()
            .find(|c| c.name() == name)
    }

    fn tag(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Lz4 => 1,
        }
    }
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// The most bytes bincode's decoder may claim per byte of input when the input is a valid
/// encoding. bincode's limit counts what each value claims, not what it reads: an integer
/// claims its in-memory size (8 bytes for a `u64` or a length, 16 for a `u128`) however few
/// bytes its variable-length encoding took, a byte run or string claims its declared length
/// before it is read. Every claim of a valid encoding is thus at most 16 times the bytes it
/// was read from, and a limit of 16 times the input never refuses one.
const CLAIMS_PER_BYTE: usize = 16;

/// `1 << bits`, or `usize::MAX` where that does not fit.
const fn tier(bits: u32) -> usize {
    if bits >= usize::BITS {
        usize::MAX
    } else {
        1 << bits
    }
}

/// Decodes one value from the start of `bytes` with bincode's standard configuration (what
/// the serializer and the cluster protocol write), and returns it with the bytes it took.
///
/// bincode reserves a byte run or a string at the length the input declares before reading
/// it, so without a limit a few bytes declaring 2^40 of them abort the process (the
/// allocation fails) or panic (past `isize::MAX`). Here the decoder's limit is derived from
/// the input's length: at least 16 times it (`CLAIMS_PER_BYTE`), so a valid encoding of any
/// size decodes, while a damaged or hostile one fails with a limit error after reserving at
/// most 64 times its own size (1 MiB for inputs up to 64 KiB). bincode takes the limit as a
/// type parameter, so it comes in tiers, powers of four from 1 MiB to 1 TiB (an input past
/// 64 GiB is decoded without a limit): each tier is one more copy of the decoder for `T`,
/// which is why they are not finer.
pub fn decode_bounded<T: DeserializeOwned>(
    bytes: &[u8],
) -> std::result::Result<(T, usize), String> {
    let need = bytes.len().saturating_mul(CLAIMS_PER_BYTE);
    let explain = |e: bincode::error::DecodeError| match e {
        bincode::error::DecodeError::LimitExceeded => format!(
            "the {} bytes declare more data than they hold (a damaged or foreign encoding)",
            bytes.len()
        ),
        other => other.to_string(),
    };
    macro_rules! tiers {
        ($($bits:literal)*) => {$(
            if need <= tier($bits) {
                return bincode::serde::decode_from_slice(
                    bytes,
                    config().with_limit::<{ tier($bits) }>(),
                )
                .map_err(explain);
            }
        )*};
    }
    tiers!(20 22 24 26 28 30 32 34 36 38 40);
    bincode::serde::decode_from_slice(bytes, config().with_limit::<{ usize::MAX }>())
        .map_err(explain)
}

/// Appends to a `Vec` (bincode's own vector writer is private).
struct Append<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for Append<'_> {
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Serializes a list of values into a block.
///
/// The encoded size is counted first (a pass that copies nothing) so the block is written once
/// into a buffer of its final size: growing the buffer by doubling, then copying the payload
/// behind the header, moved a received block three times and faulted in fresh pages each time,
/// which took most of the block generator's time at 1M lines/s.
pub fn serialize_block<T: Serialize>(
    block: &BlockId,
    values: &[T],
    codec: Codec,
) -> Result<Vec<u8>> {
    serialize_block_in(block, values, codec, Vec::with_capacity)
}

/// [`serialize_block`] into a buffer from `buffer(capacity)` (which may hold old bytes: they
/// are dropped).
pub(crate) fn serialize_block_in<T: Serialize>(
    block: &BlockId,
    values: &[T],
    codec: Codec,
    buffer: impl FnOnce(usize) -> Vec<u8>,
) -> Result<Vec<u8>> {
    let failed = |e: bincode::error::EncodeError| Error::Serialize {
        block: block.clone(),
        reason: e.to_string(),
    };
    let mut size = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(values, &mut size, config()).map_err(failed)?;
    let size = size.bytes_written;
    let out = match codec {
        Codec::None => {
            let mut out = buffer(HEADER + size);
            out.clear();
            out.extend_from_slice(&[0; HEADER]);
            bincode::serde::encode_into_writer(values, Append(&mut out), config())
                .map_err(failed)?;
            out
        }
        Codec::Lz4 => {
            let mut plain = Vec::with_capacity(size);
            bincode::serde::encode_into_writer(values, Append(&mut plain), config())
                .map_err(failed)?;
            lz4_payload(&plain)
        }
    };
    finish(block, out, codec)
}

/// A zeroed header followed by `plain` compressed with lz4 (size-prepended), for [`finish`].
fn lz4_payload(plain: &[u8]) -> Vec<u8> {
    let mut out = vec![0; HEADER];
    out.extend_from_slice(&lz4_flex::compress_prepend_size(plain));
    out
}

/// Fills in the header of `out` (a zeroed header, then the payload).
fn finish(block: &BlockId, mut out: Vec<u8>, codec: Codec) -> Result<Vec<u8>> {
    let payload_len = out.len() - HEADER;
    let len = u32::try_from(payload_len).map_err(|_| Error::Serialize {
        block: block.clone(),
        reason: format!(
            "a block of {payload_len} bytes exceeds the 4 GiB limit: use more partitions"
        ),
    })?;
    let crc = crc32fast::hash(&out[HEADER..]);
    out[..4].copy_from_slice(MAGIC);
    out[4] = codec.tag();
    out[5..9].copy_from_slice(&len.to_le_bytes());
    out[9..13].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Appends the encoding of one record to `out`: what [`serialize_block`] writes for it as an
/// element of a block. A block of such records is made by [`EncodedBlock`]. (A `&str` encodes
/// as a `String` does.) A record that cannot be encoded is an error and leaves `out` as it was.
pub fn encode_record<T: Serialize + ?Sized>(record: &T, out: &mut Vec<u8>) -> Result<()> {
    let before = out.len();
    bincode::serde::encode_into_writer(record, Append(out), config()).map_err(|e| {
        out.truncate(before);
        Error::Serialize {
            block: BlockId::Named("a record being encoded".into()),
            reason: e.to_string(),
        }
    })
}

/// Room kept in front of an [`EncodedBlock`]'s records: the header and the longest encoding of
/// a record count below 2^32 (five bytes).
const ROOM: usize = HEADER + 5;

/// A block built record by record: the records' encodings ([`encode_record`]) go after room for
/// the header, and [`finish`](Self::finish) writes the header into that room, so the block is
/// the same bytes [`serialize_block`] makes of the records, without the records ever being
/// values or being copied again (a receiver that encodes what it reads, as it reads it).
#[derive(Debug)]
pub struct EncodedBlock {
    bytes: Vec<u8>,
    count: u64,
}

impl EncodedBlock {
    /// An empty block with room for `bytes` bytes of records.
    pub fn with_capacity(bytes: usize) -> EncodedBlock {
        EncodedBlock::in_buffer(Vec::with_capacity(ROOM + bytes))
    }

    /// An empty block built in `buffer` (its contents are dropped, its capacity kept; see
    /// [`BlockManager::buffer`](crate::BlockManager::buffer)).
    pub fn in_buffer(mut buffer: Vec<u8>) -> EncodedBlock {
        buffer.clear();
        buffer.resize(ROOM, 0);
        EncodedBlock {
            bytes: buffer,
            count: 0,
        }
    }

    /// The bytes a block of `records` bytes of records takes before [`finish`](Self::finish).
    pub fn capacity_for(records: usize) -> usize {
        ROOM + records
    }

    /// Appends `count` records, given as their encodings one after the other.
    pub fn append(&mut self, count: u64, encoded: &[u8]) {
        self.bytes.extend_from_slice(encoded);
        self.count += count;
    }

    /// The number of records.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The bytes of the records' encodings.
    pub fn records_len(&self) -> usize {
        self.bytes.len() - ROOM
    }

    /// The bytes of records the block holds without growing its buffer.
    pub fn records_capacity(&self) -> usize {
        self.bytes.capacity() - ROOM
    }

    /// Moves the records out into a block of their own, in a buffer just large enough, and
    /// leaves this block empty with its buffer: for a small block in a large buffer, which is
    /// better kept for the next block than handed on under a few records (a store counts a
    /// block at its length, not at its buffer's).
    pub fn take_compact(&mut self) -> EncodedBlock {
        let mut bytes = Vec::with_capacity(self.bytes.len());
        bytes.extend_from_slice(&self.bytes);
        self.bytes.truncate(ROOM);
        EncodedBlock {
            bytes,
            count: std::mem::take(&mut self.count),
        }
    }

    /// The block (as [`serialize_block`] writes it).
    pub fn finish(self, block: &BlockId, codec: Codec) -> Result<Vec<u8>> {
        let failed = |reason: String| Error::Serialize {
            block: block.clone(),
            reason,
        };
        let count = u32::try_from(self.count).map_err(|_| {
            failed(format!(
                "{} records in one block (at most 2^32)",
                self.count
            ))
        })?;
        // A sequence is its length, then its elements.
        let mut len = Vec::with_capacity(5);
        bincode::serde::encode_into_writer(u64::from(count), Append(&mut len), config())
            .map_err(|e| failed(e.to_string()))?;
        let mut bytes = self.bytes;
        match codec {
            Codec::None => {
                // Header and length end where the records start: the block begins `skip` bytes
                // in (none for five-byte lengths, 65,536 records and more), and only the few
                // bytes before it move.
                let skip = ROOM - HEADER - len.len();
                bytes[skip + HEADER..ROOM].copy_from_slice(&len);
                if skip > 0 {
                    bytes.drain(..skip);
                }
                finish(block, bytes, codec)
            }
            Codec::Lz4 => {
                let start = ROOM - len.len();
                bytes[start..ROOM].copy_from_slice(&len);
                finish(block, lz4_payload(&bytes[start..]), codec)
            }
        }
    }
}

/// Reads a length at `pos` with bincode's own integer decoding (what it writes for a length).
/// A length below 251 is its one byte (bincode's varint), read here without the decoder: a line
/// of text has one, and going through bincode's decoder for each made decoding 400k lines of
/// 97 bytes take 17.4 ms instead of 15.8–16.4 ms.
#[inline]
fn read_len(bytes: &[u8], pos: &mut usize) -> std::result::Result<u64, String> {
    if let Some(&b) = bytes.get(*pos)
        && b < 251
    {
        *pos += 1;
        return Ok(u64::from(b));
    }
    read_long_len(bytes, pos)
}

#[cold]
fn read_long_len(bytes: &[u8], pos: &mut usize) -> std::result::Result<u64, String> {
    let (len, used): (u64, usize) = bincode::decode_from_slice(&bytes[*pos..], config())
        .map_err(|e| format!("a length at byte {pos}: {e}"))?;
    *pos += used;
    Ok(len)
}

/// The most strings [`decode_strings`] checks as UTF-8 in one call (about 100 KB of lines: the
/// run is still in the second-level cache when its strings are copied out).
const RUN: usize = 1024;

/// Decodes a `Vec<String>` as bincode writes it (its length, then each string's length and
/// bytes); the values and the bytes read. The same values as bincode's decoder, about twice as
/// fast: bincode checks every string as UTF-8 alone and goes through serde per string.
///
/// Here the text is checked in runs of consecutive strings, each run in one call: a run is
/// strings whose length bytes (but the first's) are ASCII, so the bytes from its first string's
/// start to its last string's end are UTF-8 exactly when every string is, and each string is a
/// slice of that text. A length byte of 128 or more (a line of 128 bytes or more) starts a new
/// run. The whole block was checked in one call before, and string by string once it held one
/// long line, as most blocks of the benchmark's text do (27 lines in 400k): 15.8–16.4 ms for
/// 400k lines of 97 bytes, where in runs it takes 11.7–12.2 ms.
fn decode_strings(plain: &[u8]) -> std::result::Result<(Vec<String>, usize), String> {
    let mut pos = 0;
    let n = read_len(plain, &mut pos)?;
    // Every string takes at least a byte: a damaged length cannot reserve more than the block.
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(n.min(plain.len()));
    let mut run: Vec<std::ops::Range<usize>> = Vec::with_capacity(RUN.min(n));
    let mut left = n;
    while left > 0 {
        run.clear();
        while left > 0 && run.len() < RUN {
            if !run.is_empty() && plain.get(pos).is_none_or(|&b| !b.is_ascii()) {
                break;
            }
            let len = read_len(plain, &mut pos)?;
            let end = usize::try_from(len)
                .ok()
                .and_then(|len| pos.checked_add(len))
                .filter(|&end| end <= plain.len())
                .ok_or_else(|| {
                    format!("a string of {len} bytes at byte {pos} runs past the end")
                })?;
            run.push(pos..end);
            pos = end;
            left -= 1;
        }
        let first = run[0].start;
        let text = std::str::from_utf8(&plain[first..pos]).ok();
        for r in &run {
            // `get` is `None` unless both ends are character boundaries of the valid text
            // (they are: the bytes next to them are ASCII, or the run's ends).
            let s = match text.and_then(|t| t.get(r.start - first..r.end - first)) {
                Some(s) => s,
                None => std::str::from_utf8(&plain[r.clone()])
                    .map_err(|e| format!("the string at byte {} is not UTF-8: {e}", r.start))?,
            };
            out.push(String::from(s));
        }
    }
    Ok((out, pos))
}

/// Deserializes a block written by [`serialize_block`], checking every header field.
pub fn deserialize_block<T: DeserializeOwned + 'static>(
    block: &BlockId,
    bytes: &[u8],
) -> Result<Vec<T>> {
    let corrupt = |reason: String| Error::Corrupt {
        block: block.clone(),
        reason,
    };
    if bytes.len() < HEADER {
        return Err(corrupt(format!(
            "{} bytes is shorter than the {HEADER}-byte header",
            bytes.len()
        )));
    }
    if &bytes[..4] != MAGIC {
        return Err(corrupt("bad magic bytes (not a Spate block)".into()));
    }
    let codec = bytes[4];
    let len = u32::from_le_bytes(bytes[5..9].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[9..13].try_into().expect("4 bytes"));
    let payload = &bytes[HEADER..];
    if payload.len() != len {
        return Err(corrupt(format!(
            "truncated: header says {len} payload bytes, found {}",
            payload.len()
        )));
    }
    if crc32fast::hash(payload) != crc {
        return Err(corrupt("checksum mismatch".into()));
    }
    let decompressed;
    let plain = match codec {
        0 => payload,
        1 => {
            // The codec byte is outside the checksum: bound the declared size by lz4's maximum
            // ratio (255:1) before allocating it, so a flipped codec byte cannot ask for 4 GiB.
            let declared = payload
                .get(..4)
                .map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
            if declared as usize > payload.len().saturating_mul(255) {
                return Err(corrupt(format!(
                    "lz4 header declares {declared} bytes, impossible from {} compressed bytes",
                    payload.len()
                )));
            }
            decompressed = lz4_flex::decompress_size_prepended(payload)
                .map_err(|e| corrupt(format!("lz4: {e}")))?;
            &decompressed[..]
        }
        other => return Err(corrupt(format!("unknown codec tag {other}"))),
    };
    // Text, the commonest record (every line a receiver reads), has a decoder of its own.
    if TypeId::of::<T>() == TypeId::of::<String>() {
        let (strings, used) = decode_strings(plain).map_err(|e| corrupt(format!("decode: {e}")))?;
        if used != plain.len() {
            return Err(corrupt(format!(
                "{} trailing bytes after the values",
                plain.len() - used
            )));
        }
        let strings: Box<dyn Any> = Box::new(strings);
        return Ok(*strings.downcast::<Vec<T>>().expect("T is String"));
    }
    let (values, used): (Vec<T>, usize) =
        decode_bounded(plain).map_err(|e| corrupt(format!("decode: {e}")))?;
    if used != plain.len() {
        return Err(corrupt(format!(
            "{} trailing bytes after the values",
            plain.len() - used
        )));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn codecs_are_found_by_their_names() {
        assert_eq!(Codec::from_name("none"), Some(Codec::None));
        assert_eq!(Codec::from_name("lz4"), Some(Codec::Lz4));
        assert_eq!(Codec::Lz4.name(), "lz4");
        assert_eq!(Codec::from_name("zstd"), None);
        assert_eq!(Codec::from_name("LZ4"), None);
    }

    fn id() -> BlockId {
        BlockId::Named("t".into())
    }

    #[test]
    fn strings_of_every_integer_width_decode() {
        // Lengths at each of the integer tags' edges, and text that is not UTF-8.
        let lines: Vec<String> = [0, 1, 127, 128, 250, 251, 65_535, 65_536, 70_000]
            .iter()
            .map(|&n| "é".repeat(n / 2) + &"x".repeat(n % 2))
            .collect();
        let plain = bincode::serde::encode_to_vec(&lines, config()).unwrap();
        assert_eq!(decode_strings(&plain).unwrap(), (lines, plain.len()));
        let bad = bincode::serde::encode_to_vec(vec![b"ok".to_vec(), vec![0xff, 0x41]], config())
            .unwrap();
        assert!(bincode_strings(&bad).is_none());
        let err = decode_strings(&bad).unwrap_err();
        assert!(err.contains("is not UTF-8"), "{err}");
    }

    #[test]
    fn strings_past_one_run_decode_as_bincode_decodes_them() {
        // More strings than a run holds, with long ones (a length byte of 128 or more starts a
        // new run) and multi-byte characters at the runs' edges.
        let lines: Vec<String> = (0..3 * RUN + 7)
            .map(|i| match i % 700 {
                0 => "é".repeat(70 + i % 13),
                1 => format!("é{i}é"),
                _ => format!("line {i}"),
            })
            .collect();
        let plain = bincode::serde::encode_to_vec(&lines, config()).unwrap();
        assert_eq!(bincode_strings(&plain), Some((lines.clone(), plain.len())));
        assert_eq!(
            decode_strings(&plain).unwrap(),
            (lines.clone(), plain.len())
        );
        // One string that is not UTF-8, in the third run: an error, as bincode has it.
        let mut raw: Vec<Vec<u8>> = lines.into_iter().map(String::into_bytes).collect();
        raw[2 * RUN + 5] = vec![b'a', 0xc3, b'b'];
        let bad = bincode::serde::encode_to_vec(&raw, config()).unwrap();
        assert!(bincode_strings(&bad).is_none());
        let err = decode_strings(&bad).unwrap_err();
        assert!(err.contains("is not UTF-8"), "{err}");
    }

    /// bincode's own decoding of a `Vec<String>`: the oracle for `decode_strings`. With a limit
    /// of 1 MiB, far past the bytes these tests decode, so that it refuses a damaged length
    /// instead of reserving it (without one, a string claiming 2^61 bytes aborts the process).
    fn bincode_strings(plain: &[u8]) -> Option<(Vec<String>, usize)> {
        bincode::serde::decode_from_slice(plain, config().with_limit::<{ 1 << 20 }>()).ok()
    }

    /// Text of every kind: ASCII, multi-byte characters, lengths past the one-byte integers
    /// (128 and more makes the block as a whole not UTF-8; 251 and more takes a tag).
    fn texts() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(
            prop_oneof![
                "[a-z ]{0,20}",
                ".{0,12}",
                "[a-z]{120,140}",
                "[a-zé]{240,300}",
            ],
            0..40,
        )
    }

    proptest! {
        #[test]
        fn strings_decode_as_bincode_decodes_them(lines in texts()) {
            let plain = bincode::serde::encode_to_vec(&lines, config()).unwrap();
            prop_assert_eq!(decode_strings(&plain).ok(), Some((lines.clone(), plain.len())));
            let block = serialize_block(&id(), &lines, Codec::None).unwrap();
            prop_assert_eq!(deserialize_block::<String>(&id(), &block).unwrap(), lines);
        }

        /// Damaged bytes (a byte changed, the end cut off) or any bytes at all: decoded to the
        /// same strings as bincode decodes, or refused when bincode refuses them.
        #[test]
        fn damaged_strings_decode_as_bincode_decodes_them(
            lines in texts(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<prop::sample::Index>(),
            noise in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let plain = bincode::serde::encode_to_vec(&lines, config()).unwrap();
            let mut changed = plain.clone();
            if !changed.is_empty() {
                changed[at.index(plain.len())] = byte;
            }
            let cut = &plain[..cut.index(plain.len() + 1)];
            for bytes in [&changed[..], cut, &noise[..]] {
                prop_assert_eq!(decode_strings(bytes).ok(), bincode_strings(bytes));
            }
        }

        /// A block of text whose payload or checksum has any one byte changed is refused as a
        /// checksum mismatch (whether or not the damage also broke the records); whole blocks of
        /// many records decode to their lines.
        #[test]
        fn text_blocks_with_a_changed_byte_fail_their_checksum(
            lines in texts(),
            copies in 1usize..400,
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let lines: Vec<String> = lines.iter().cycle().take(lines.len() * copies).cloned().collect();
            let block = serialize_block(&id(), &lines, Codec::None).unwrap();
            prop_assert_eq!(&deserialize_block::<String>(&id(), &block).unwrap(), &lines);
            let mut damaged = block.clone();
            // A byte of the checksum (bytes 9..13) or of the payload (13..).
            let i = 9 + at.index(damaged.len() - 9);
            damaged[i] ^= flip;
            let r = deserialize_block::<String>(&id(), &damaged);
            let checksum = matches!(&r, Err(Error::Corrupt { reason, .. }) if reason == "checksum mismatch");
            prop_assert!(checksum, "changing byte {} of {} gave {:?}", i, damaged.len(), r.map(|v| v.len()));
        }

        #[test]
        fn round_trips(values in proptest::collection::vec((any::<u32>(), ".{0,8}"), 0..50), lz4 in any::<bool>()) {
            let codec = if lz4 { Codec::Lz4 } else { Codec::None };
            let bytes = serialize_block(&id(), &values, codec).unwrap();
            let back: Vec<(u32, String)> = deserialize_block(&id(), &bytes).unwrap();
            prop_assert_eq!(back, values);
        }

        #[test]
        fn encoded_records_make_the_block_serialize_block_makes(
            lines in prop_oneof![
                proptest::collection::vec(".{0,40}", 0..300),
                // Past 65,535 records the length takes five bytes (the whole room).
                (0..3usize).prop_map(|extra| vec!["ab".to_string(); 65_535 + extra]),
            ],
            lz4 in any::<bool>(),
        ) {
            let codec = if lz4 { Codec::Lz4 } else { Codec::None };
            // In two appends, as a receiver's chunks come.
            let mut block = EncodedBlock::with_capacity(0);
            let half = lines.len() / 2;
            for part in [&lines[..half], &lines[half..]] {
                let mut encoded = Vec::new();
                for l in part {
                    encode_record(l.as_str(), &mut encoded).unwrap();
                }
                block.append(part.len() as u64, &encoded);
            }
            prop_assert_eq!(block.count(), lines.len() as u64);
            let block = block.finish(&id(), codec).unwrap();
            prop_assert_eq!(&block, &serialize_block(&id(), &lines, codec).unwrap());
            prop_assert_eq!(deserialize_block::<String>(&id(), &block).unwrap(), lines);
        }

        #[test]
        fn a_compacted_block_is_the_block_and_leaves_an_empty_one(
            first in proptest::collection::vec(".{0,20}", 0..50),
            second in proptest::collection::vec(".{0,20}", 0..50),
            room in 0..4096usize,
        ) {
            let encode = |lines: &[String]| {
                let mut encoded = Vec::new();
                for l in lines {
                    encode_record(l.as_str(), &mut encoded).unwrap();
                }
                encoded
            };
            let mut block = EncodedBlock::with_capacity(room);
            block.append(first.len() as u64, &encode(&first));
            let capacity = block.records_capacity();
            let small = block.take_compact();
            prop_assert_eq!(small.count(), first.len() as u64);
            prop_assert_eq!(small.records_capacity(), small.records_len());
            prop_assert_eq!(
                small.finish(&id(), Codec::None).unwrap(),
                serialize_block(&id(), &first, Codec::None).unwrap()
            );
            // The buffer stays, empty, and makes the next block as a fresh one would.
            prop_assert_eq!((block.count(), block.records_len()), (0, 0));
            prop_assert_eq!(block.records_capacity(), capacity);
            block.append(second.len() as u64, &encode(&second));
            prop_assert_eq!(
                block.finish(&id(), Codec::None).unwrap(),
                serialize_block(&id(), &second, Codec::None).unwrap()
            );
        }

        /// The layout, recomputed from its description in the module doc (blocks written by
        /// earlier builds, in write-ahead logs and on disk, must stay readable).
        #[test]
        fn layout_is_magic_codec_length_checksum_payload(
            values in proptest::collection::vec((any::<u32>(), ".{0,8}"), 0..50),
            lz4 in any::<bool>(),
        ) {
            let codec = if lz4 { Codec::Lz4 } else { Codec::None };
            let plain = bincode::serde::encode_to_vec(&values, bincode::config::standard()).unwrap();
            let payload = if lz4 { lz4_flex::compress_prepend_size(&plain) } else { plain };
            let mut want = b"SPB1".to_vec();
            want.push(u8::from(lz4));
            want.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            want.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            want.extend_from_slice(&payload);
            prop_assert_eq!(serialize_block(&id(), &values, codec).unwrap(), want);
        }

        #[test]
        fn mangled_bytes_are_an_error_never_a_panic(
            values in proptest::collection::vec(any::<u64>(), 1..30),
            lz4 in any::<bool>(),
            pos in any::<prop::sample::Index>(),
            flip in 1u8..=255,
            cut in any::<prop::sample::Index>(),
        ) {
            let codec = if lz4 { Codec::Lz4 } else { Codec::None };
            let bytes = serialize_block(&id(), &values, codec).unwrap();
            let mut flipped = bytes.clone();
            let i = pos.index(flipped.len());
            flipped[i] ^= flip;
            let r = deserialize_block::<u64>(&id(), &flipped);
            let is_corrupt = matches!(r, Err(Error::Corrupt { .. }));
            prop_assert!(is_corrupt, "flipping byte {} gave {:?}", i, r);
            let truncated = &bytes[..cut.index(bytes.len())];
            let r = deserialize_block::<u64>(&id(), truncated);
            let is_corrupt = matches!(r, Err(Error::Corrupt { .. }));
            prop_assert!(is_corrupt);
        }
    }

    #[test]
    fn an_impossible_lz4_size_is_corrupt_before_allocating() {
        // A plain block whose codec byte flipped to lz4: its first payload bytes become the size.
        let mut bytes = serialize_block(&id(), &[u32::MAX; 8], Codec::None).unwrap();
        bytes[4] = Codec::Lz4.tag();
        bytes[HEADER..HEADER + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let crc = crc32fast::hash(&bytes[HEADER..]);
        bytes[9..13].copy_from_slice(&crc.to_le_bytes());
        let err = deserialize_block::<u32>(&id(), &bytes).unwrap_err();
        assert!(
            err.to_string().contains("declares 4294967295 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_record_that_cannot_be_encoded_leaves_the_buffer_as_it_was() {
        // bincode needs a sequence's length up front: a filtered iterator has none.
        struct Unsized;
        impl Serialize for Unsized {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.collect_seq([1u8, 2].iter().filter(|_| true))
            }
        }
        let mut out = Vec::new();
        encode_record("ab", &mut out).unwrap();
        let before = out.clone();
        assert!(encode_record(&(7u8, Unsized), &mut out).is_err());
        assert_eq!(out, before);
    }

    /// A block of `payload` as [`serialize_block`] frames one, its checksum right: what a
    /// hostile or buggy sender can make as easily as the serializer.
    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.push(Codec::None.tag());
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    /// bincode's encoding of a `u64` length: the tag 0xfd, then eight bytes.
    fn long_len(n: u64) -> Vec<u8> {
        let mut b = vec![0xfd];
        b.extend_from_slice(&n.to_le_bytes());
        b
    }

    #[test]
    fn a_declared_length_past_the_input_is_corrupt_not_an_allocation() {
        // Past `isize::MAX` (the old decoder panicked), past any machine's memory (it aborted),
        // and merely more than the input holds.
        for declared in [u64::MAX, 1 << 62, 1 << 40, 1 << 30, 100] {
            // One `(u32, String)` whose string declares `declared` bytes and has none.
            let mut payload = vec![1, 7];
            payload.extend(long_len(declared));
            let r = deserialize_block::<(u32, String)>(&id(), &framed(&payload));
            let err = r.expect_err("a string past the end");
            assert!(matches!(err, Error::Corrupt { .. }), "{err}");
            // One optional string, and a string as the only value.
            let mut payload = vec![1, 1];
            payload.extend(long_len(declared));
            let r = deserialize_block::<Option<String>>(&id(), &framed(&payload));
            assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
            let r = decode_bounded::<String>(&long_len(declared));
            assert!(r.is_err(), "{r:?}");
            if declared > 1 << 20 {
                let err = r.unwrap_err();
                assert!(err.contains("declare more data than they hold"), "{err}");
            }
        }
    }

    #[test]
    fn values_that_claim_more_than_their_encoding_still_decode() {
        // A `u128` of 0 is one byte and claims 16, the most per byte of any value: blocks of
        // them around each limit tier's edge (16 bytes a byte of input: 65,536 bytes of input
        // is the first tier, 1 MiB) are not refused.
        for n in [0usize, 1, 65_526, 65_527, 65_528, 65_536, 300_000] {
            let values = vec![0u128; n];
            let bytes = serialize_block(&id(), &values, Codec::None).unwrap();
            assert_eq!(deserialize_block::<u128>(&id(), &bytes).unwrap(), values);
        }
        let values: Vec<(u64, String, Option<u128>)> =
            (0..5_000).map(|i| (i, String::new(), Some(1))).collect();
        let bytes = serialize_block(&id(), &values, Codec::Lz4).unwrap();
        assert_eq!(
            deserialize_block::<(u64, String, Option<u128>)>(&id(), &bytes).unwrap(),
            values
        );
    }

    /// Short byte strings heavy in the bytes that make bincode read long lengths (0xfb to
    /// 0xfe: a `u16` to `u128` follows) and in 0xff.
    fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                any::<u8>(),
                Just(0xfb),
                Just(0xfc),
                Just(0xfd),
                Just(0xfe),
                Just(0xff),
                Just(1),
            ],
            0..48,
        )
    }

    proptest! {
        /// Whatever a block's payload holds (its header and checksum right), decoding it is a
        /// value or `Error::Corrupt`, never a panic or an abort.
        #[test]
        fn hostile_payloads_are_corrupt_never_a_panic(payload in hostile_bytes()) {
            let bytes = framed(&payload);
            let corrupt_or_ok = |r: std::result::Result<(), Error>| match r {
                Ok(()) | Err(Error::Corrupt { .. }) => Ok(()),
                Err(e) => Err(TestCaseError::fail(format!("{e}"))),
            };
            corrupt_or_ok(deserialize_block::<(u32, String)>(&id(), &bytes).map(drop))?;
            corrupt_or_ok(deserialize_block::<Option<String>>(&id(), &bytes).map(drop))?;
            corrupt_or_ok(deserialize_block::<Vec<String>>(&id(), &bytes).map(drop))?;
            corrupt_or_ok(deserialize_block::<(String, u128)>(&id(), &bytes).map(drop))?;
            corrupt_or_ok(deserialize_block::<String>(&id(), &bytes).map(drop))?;
            let _ = decode_bounded::<(String, Vec<String>)>(&payload);
        }
    }

    #[test]
    fn corrupt_error_names_the_block() {
        let block = BlockId::Rdd {
            rdd: 7,
            partition: 3,
        };
        let err = deserialize_block::<u8>(&block, b"SPB1\0garbage").unwrap_err();
        assert!(err.to_string().contains("rdd_7_3"), "{err}");
    }
}
