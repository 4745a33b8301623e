//! [`Word`]: a string made to be a key, for word counts and other aggregations by short text.

use serde::de::{Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::num::NonZeroU64;
use zerocopy::{Immutable, IntoBytes};

/// A string made to be a key: up to 23 bytes live inside the value (24 bytes, as a `String`
/// needs for its pointer, length and capacity), longer ones in one allocation.
///
/// What makes it a better key than a `String` or a `CompactString` for short text is how it
/// is hashed and compared: a short word is three machine words, built from the text with at
/// most a few word-sized loads, hashed with one multiplication and compared as three integers,
/// where a `str` is hashed run by run of bytes and compared with `memcmp`. In a word count on
/// one thread (400k lines of 16 words, 10,000 distinct) keys as `Word` took 214–216 ms against
/// 222–226 ms as `CompactString`, best of 12 rounds each.
///
/// It dereferences to `str`, displays, orders and serializes as its text does (a block of
/// `Word`s reads back as `String`s and the other way round), and is made from a `&str` or a
/// `String`, so [`split_owned_as`](crate::text::split_owned_as) and
/// [`words_as`](crate::text::words_as) hand out words as `Word`s. It does not implement
/// `Borrow<str>`: its hash is not a `str`'s.
#[derive(Clone)]
pub struct Word(Repr);

#[derive(Clone)]
enum Repr {
    Inline(Short),
    /// Text of more than `INLINE` bytes.
    Heap(Box<str>),
}

/// Text of up to `INLINE` bytes: in memory its bytes, zeros, and the length plus one in the
/// last byte (so `last` is never zero, which leaves `Repr` room for its tag: 24 bytes in all).
#[derive(Clone, Copy, PartialEq, Eq, IntoBytes, Immutable)]
#[repr(C)]
struct Short {
    first: u64,
    second: u64,
    last: NonZeroU64,
}

/// The longest text kept inside the value.
const INLINE: usize = 23;

#[inline(always)]
fn load8(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

#[inline(always)]
fn load4(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u64::from(u32::from_le_bytes(w))
}

/// Up to eight bytes as a little-endian integer (zeros above them), read with at most two
/// loads that may overlap instead of one per byte.
#[inline(always)]
fn pack(b: &[u8]) -> u64 {
    let n = b.len();
    match n {
        8 => load8(b, 0),
        // The two loads overlap on the middle bytes, which are the same in both.
        4..=7 => load4(b, 0) | (load4(b, n - 4) << ((n - 4) * 8)),
        1..=3 => {
            u64::from(b[0])
                | (u64::from(b[n / 2]) << (n / 2 * 8))
                | (u64::from(b[n - 1]) << ((n - 1) * 8))
        }
        _ => 0,
    }
}

/// A 64×64 → 128-bit multiplication folded back to 64 bits: every input bit reaches the
/// middle of the product, so both ends of the result depend on all of them.
#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

impl Word {
    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline(short) => {
                // The bytes were copied from a `str`, up to a character boundary.
                std::str::from_utf8(&short.as_bytes()[..short.len()])
                    .expect("a word's inline bytes are the UTF-8 text it was made from")
            }
            Repr::Heap(s) => s,
        }
    }

    /// The length of the text in bytes.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Inline(short) => short.len(),
            Repr::Heap(s) => s.len(),
        }
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Short {
    /// The length of the text, from the last byte.
    #[inline]
    fn len(&self) -> usize {
        (u64::from_le(self.last.get()) >> 56) as usize - 1
    }
}

impl Word {
    /// The word whose text is the low `len` bytes of `first` and then of `second` (each
    /// little-endian, the bytes past `len` zero; `len` at most 16), which must be UTF-8 on their
    /// own: a piece of a UTF-8 text cut at ASCII bytes is.
    #[inline(always)]
    pub(crate) fn from_groups(first: u64, second: u64, len: usize) -> Word {
        debug_assert!(len <= 16);
        let last = u64::from_le((len as u64 + 1) << 56);
        let last = NonZeroU64::MIN.saturating_add(last - 1);
        Word(Repr::Inline(Short {
            first: u64::from_le(first),
            second: u64::from_le(second),
            last,
        }))
    }
}

impl From<&str> for Word {
    // Always inlined: it runs once per word inside the caller's splitting loop (left to the
    // compiler, the benchmark's build called it out of line; the difference in a full run was
    // within the noise, 0.72-0.83 against 0.74-0.83 µs/line).
    #[inline(always)]
    fn from(text: &str) -> Word {
        let b = text.as_bytes();
        let n = b.len();
        if n > INLINE {
            return Word(Repr::Heap(text.into()));
        }
        // Three integers from the text, stored whole (see the type's docs).
        let (w0, w1, w2) = if n <= 8 {
            (pack(b), 0, 0)
        } else if n <= 16 {
            (load8(b, 0), pack(&b[8..]), 0)
        } else {
            (load8(b, 0), load8(b, 8), pack(&b[16..]))
        };
        // Integers whose bytes in memory are the text's (`from_le` swaps them on a big-endian
        // machine); the length plus one in the last byte makes `last` non-zero.
        let last = u64::from_le(w2 | ((n as u64 + 1) << 56));
        let last = NonZeroU64::MIN.saturating_add(last - 1);
        Word(Repr::Inline(Short {
            first: u64::from_le(w0),
            second: u64::from_le(w1),
            last,
        }))
    }
}

impl From<String> for Word {
    fn from(text: String) -> Word {
        if text.len() > INLINE {
            Word(Repr::Heap(text.into_boxed_str()))
        } else {
            Word::from(text.as_str())
        }
    }
}

impl From<Word> for String {
    fn from(w: Word) -> String {
        match w.0 {
            Repr::Heap(s) => s.into(),
            Repr::Inline(..) => w.as_str().to_owned(),
        }
    }
}

impl PartialEq for Word {
    #[inline]
    fn eq(&self, other: &Word) -> bool {
        match (&self.0, &other.0) {
            // Text of up to `INLINE` bytes is always inline, with zeros after it, so two are
            // equal exactly when their integers are.
            (Repr::Inline(a), Repr::Inline(b)) => a == b,
            (Repr::Heap(a), Repr::Heap(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Word {}

impl Hash for Word {
    #[inline(always)]
    fn hash<H: Hasher>(&self, state: &mut H) {
        match &self.0 {
            Repr::Inline(Short {
                first,
                second,
                last,
            }) => {
                // One multiplication: the second and last words (the length, and text only past
                // 16 bytes) share a factor.
                state.write_u64(fold_mul(
                    first ^ 0x243f_6a88_85a3_08d3,
                    second ^ last.get().rotate_left(32) ^ 0x1319_8a2e_0370_7344,
                ));
            }
            Repr::Heap(s) => hash_long(s, state),
        }
    }
}

/// The hash of a word of more than `INLINE` bytes, out of line: inlined, hashing a `str` made
/// every hash of a `Word` too big to inline into a table's lookup.
#[cold]
#[inline(never)]
fn hash_long<H: Hasher>(s: &str, state: &mut H) {
    s.hash(state)
}

impl PartialOrd for Word {
    fn partial_cmp(&self, other: &Word) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Word {
    fn cmp(&self, other: &Word) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::ops::Deref for Word {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Word {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for Word {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Word {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Default for Word {
    fn default() -> Word {
        Word::from("")
    }
}

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for Word {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Word {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Word, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = Word;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Word, E> {
                Ok(Word::from(v))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Word, E> {
                Ok(Word::from(v))
            }
        }
        d.deserialize_str(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::Word;
    use std::hash::BuildHasher;

    #[test]
    fn a_word_is_as_large_as_a_string() {
        assert_eq!(std::mem::size_of::<Word>(), 24);
    }

    fn hash(w: &Word) -> u64 {
        rustc_hash::FxBuildHasher.hash_one(w)
    }

    /// Texts of every length around the inline limit and the load sizes, ASCII and not.
    fn samples() -> Vec<String> {
        let mut out = Vec::new();
        for n in 0..=40 {
            out.push("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH"[..n].to_string());
            out.push("x".repeat(n));
        }
        for s in [
            "é",
            "日本",
            "naïve",
            "über-groß",
            "ünïcödé wörds ärë lönger",
        ] {
            out.push(s.to_string());
        }
        out
    }

    #[test]
    fn a_word_keeps_its_text_and_compares_as_it_does() {
        let texts = samples();
        for a in &texts {
            let wa = Word::from(a.as_str());
            assert_eq!(wa.as_str(), a);
            assert_eq!(wa.len(), a.len());
            assert_eq!(Word::from(a.clone()), wa);
            assert_eq!(String::from(wa.clone()), *a);
            assert_eq!(format!("{wa}"), *a);
            assert_eq!(format!("{wa:?}"), format!("{a:?}"));
            for b in &texts {
                let wb = Word::from(b.as_str());
                assert_eq!(wa == wb, a == b, "{a:?} against {b:?}");
                assert_eq!(wa.cmp(&wb), a.cmp(b), "{a:?} against {b:?}");
                if a == b {
                    assert_eq!(hash(&wa), hash(&wb));
                }
            }
        }
    }

    #[test]
    fn a_word_serializes_as_a_string() {
        let config = bincode::config::standard();
        for text in samples() {
            let word = Word::from(text.as_str());
            let as_word = bincode::serde::encode_to_vec(&word, config).unwrap();
            let as_string = bincode::serde::encode_to_vec(&text, config).unwrap();
            assert_eq!(as_word, as_string);
            let (back, _): (Word, usize) =
                bincode::serde::decode_from_slice(&as_string, config).unwrap();
            assert_eq!(back, word);
        }
    }

    proptest::proptest! {
        #[test]
        fn equal_words_are_equal_texts(a in "[a-c]{0,30}", b in "[a-c]{0,30}") {
            let (wa, wb) = (Word::from(a.as_str()), Word::from(b.as_str()));
            proptest::prop_assert_eq!(wa == wb, a == b);
            if a == b {
                proptest::prop_assert_eq!(hash(&wa), hash(&wb));
            }
        }
    }

    #[test]
    fn short_words_rarely_share_a_hash() {
        // The benchmark's vocabulary: `w0` … `w9999`; the table and the partitioner both use
        // the hash's ends.
        let mut low = std::collections::HashSet::new();
        let mut high = std::collections::HashSet::new();
        for i in 0..10_000 {
            let h = hash(&Word::from(format!("w{i}").as_str()));
            low.insert(h & 0xffff);
            high.insert(h >> 48);
        }
        // 10,000 keys in 65,536 values: about 9,300 distinct if the bits were uniform.
        assert!(low.len() > 9_000, "{} distinct low ends", low.len());
        assert!(high.len() > 9_000, "{} distinct high ends", high.len());
    }
}
