//! Text in and out of jobs: [`ToText`], how elements are written by `save_as_text_file` and
//! printed by streaming output operations, following Spark's `toString` (tuples as `(a,1)`); and
//! [`split_owned`] and [`words`], the pieces of a line as owned strings for a `flat_map`
//! (`String`s, or any type made from a `&str` with [`split_owned_as`] and [`words_as`]:
//! [`Word`] keeps a short word inline, without an allocation per word, and is the fastest key
//! for aggregating by word; [`CompactString`] keeps one inline too).

use std::any::{Any, TypeId};
use std::marker::PhantomData;

/// A string that keeps up to 24 bytes inline (re-exported from `compact_str`): words as keys
/// without an allocation each, and compared without following a pointer. It serializes as a
/// string does.
pub use compact_str::CompactString;

pub use crate::word::Word;

/// Renders a value as one line of text the way Spark's `toString` would.
///
/// Implemented for primitives, strings, tuples of up to four elements (`(a,1)`), `Option`
/// (`Some(x)` / `None`) and `Vec` (`[a, b]`). Implement it for your own element types to save or
/// print them.
pub trait ToText {
    /// Appends the text of `self` to `out`.
    fn write_text(&self, out: &mut String);

    /// The text of `self`.
    fn to_text(&self) -> String {
        let mut s = String::new();
        self.write_text(&mut s);
        s
    }
}

macro_rules! display_text {
    ($($t:ty),*) => {$(
        impl ToText for $t {
            fn write_text(&self, out: &mut String) {
                use std::fmt::Write;
                let _ = write!(out, "{}", self);
            }
        }
    )*};
}

display_text!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    bool,
    char,
    String,
    str,
    CompactString,
    Word
);

impl<T: ToText + ?Sized> ToText for &T {
    fn write_text(&self, out: &mut String) {
        (**self).write_text(out)
    }
}

impl ToText for () {
    fn write_text(&self, out: &mut String) {
        out.push_str("()");
    }
}

macro_rules! tuple_text {
    ($($name:ident)+) => {
        impl<$($name: ToText),+> ToText for ($($name,)+) {
            #[allow(non_snake_case)]
            fn write_text(&self, out: &mut String) {
                let ($($name,)+) = self;
                out.push('(');
                let mut first = true;
                $(
                    if !first { out.push(','); }
                    first = false;
                    $name.write_text(out);
                )+
                let _ = first;
                out.push(')');
            }
        }
    };
}

tuple_text!(A);
tuple_text!(A B);
tuple_text!(A B C);
tuple_text!(A B C D);

impl<T: ToText> ToText for Option<T> {
    fn write_text(&self, out: &mut String) {
        match self {
            Some(x) => {
                out.push_str("Some(");
                x.write_text(out);
                out.push(')');
            }
            None => out.push_str("None"),
        }
    }
}

impl<T: ToText> ToText for Vec<T> {
    fn write_text(&self, out: &mut String) {
        out.push('[');
        for (i, x) in self.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            x.write_text(out);
        }
        out.push(']');
    }
}

/// The pieces of `text` between occurrences of `sep`, as `str::split` gives them (empty pieces
/// included), each as its own `String`.
///
/// It owns `text`, so a `flat_map` over lines can return it directly:
/// `lines.flat_map(|l: String| split_owned(l, ' '))`. The usual
/// `l.split(' ').map(String::from).collect::<Vec<_>>()` has to collect each line's words into a
/// `Vec` first (the iterator of `split` borrows the line), which allocates and grows a vector per
/// line: a fifth of a word count's time.
#[inline]
pub fn split_owned(text: String, sep: char) -> SplitOwned {
    split_owned_as(text, sep)
}

/// [`split_owned`] with the pieces as `W`: `split_owned_as::<CompactString>(l, ' ')` keeps a
/// piece of up to 24 bytes inside the value itself, with no allocation of its own (see
/// [`CompactString`]). Pieces as [`Word`]s with an ASCII separator are made straight from the
/// bytes the search for the separator reads (the fastest way to split a word count's lines).
#[inline]
pub fn split_owned_as<W: for<'a> From<&'a str> + 'static>(
    text: String,
    sep: char,
) -> SplitOwned<W> {
    SplitOwned {
        text,
        sep,
        pos: Some(0),
        word: PhantomData,
    }
}

/// The iterator of [`split_owned`] and [`split_owned_as`].
#[derive(Clone, Debug)]
pub struct SplitOwned<W = String> {
    text: String,
    sep: char,
    /// Where the next piece starts; `None` once the last piece is out.
    pos: Option<usize>,
    word: PhantomData<fn() -> W>,
}

impl<W: for<'a> From<&'a str> + 'static> Iterator for SplitOwned<W> {
    type Item = W;

    // Always inlined: left to itself the compiler called it out of line from a `flat_map`'s
    // loop (a word count took 238 ms instead of 217 ms per 400k lines, one thread).
    #[inline(always)]
    fn next(&mut self) -> Option<W> {
        let start = self.pos?;
        // A piece of at most 16 bytes as a `Word`, the commonest case of a word count: see
        // `short_word`.
        if self.sep.is_ascii() && is_word::<W>() {
            let sep = self.sep as u8;
            if let Some((word, end)) =
                short_word(self.text.as_bytes(), start, |g| bytes_equal(g, sep))
            {
                self.pos = end.map(|e| e + 1);
                return as_piece(word);
            }
        }
        // Tried and not kept (stop 25): a `fold` that marks every separator of a line in a bit
        // mask in one pass, then makes each piece from two loads with no branch on its length.
        // Splitting alone it was faster (400k lines into `Word`s: 37-47 ms against 53-59), but
        // with the pieces pushed into chunks of 128 as the engine's `flat_map` does, slower
        // (72-97 ms against 63-79), and a word count's split stage gained nothing.
        // An ASCII separator is looked for eight bytes at a time (`find_group`): `str::find` with
        // a `char` known only at run time went through the general char searcher and a `memchr`
        // call per piece, which made splitting cost as much as everything else a word count does
        // per word (400k lines of 16 words: 350 ms against 180 ms byte by byte). Splitting alone,
        // 400k lines into `Word`s: 61 ms byte by byte, 36 ms eight bytes at a time.
        let found = if self.sep.is_ascii() {
            let sep = self.sep as u8;
            find_group(self.text.as_bytes(), start, |g| bytes_equal(g, sep))
        } else {
            self.text[start..].find(self.sep).map(|i| start + i)
        };
        let end = match found {
            Some(i) => {
                self.pos = Some(i + self.sep.len_utf8());
                i
            }
            None => {
                self.pos = None;
                self.text.len()
            }
        };
        Some(W::from(&self.text[start..end]))
    }
}

/// The words of `text`, as `str::split_whitespace` gives them (runs of whitespace separate them;
/// no empty words), each as its own `String`, without a `Vec` per line (see [`split_owned`]):
/// `lines.flat_map(|l: String| words(l))`.
#[inline]
pub fn words(text: String) -> Words {
    words_as(text)
}

/// [`words`] with the words as `W` (as [`split_owned_as`]; as [`Word`]s, made straight from the
/// bytes the search for their end reads).
#[inline]
pub fn words_as<W: for<'a> From<&'a str> + 'static>(text: String) -> Words<W> {
    Words {
        text,
        pos: 0,
        word: PhantomData,
    }
}

/// The iterator of [`words`] and [`words_as`].
#[derive(Clone, Debug)]
pub struct Words<W = String> {
    text: String,
    /// Where the rest of the text starts.
    pos: usize,
    word: PhantomData<fn() -> W>,
}

/// Eight copies of the byte 0x01.
const ONES: u64 = u64::from_le_bytes([0x01; 8]);
/// The top bit of each of eight bytes.
const TOPS: u64 = u64::from_le_bytes([0x80; 8]);

/// The top bit of each byte of `g` that is zero, and no other bit (exact: no byte's result
/// depends on another's, as it can with the usual `(g - ONES) & !g` test).
#[inline(always)]
fn zero_bytes(g: u64) -> u64 {
    !(((g & !TOPS).wrapping_add(!TOPS)) | g) & TOPS
}

/// The top bit of each byte of `g` equal to `b`.
#[inline(always)]
fn bytes_equal(g: u64, b: u8) -> u64 {
    zero_bytes(g ^ (ONES * b as u64))
}

/// The top bit of each byte of `g` that is ASCII whitespace (as [`ascii_space`] has it) or not
/// ASCII at all.
#[inline(always)]
fn space_or_not_ascii(g: u64) -> u64 {
    let high = g & TOPS;
    // With the top bit set in every byte, subtracting at most 0x80 from a byte never borrows
    // from the next one: the top bit stays set where the low seven bits are at least the number.
    let low = g | TOPS;
    let tab_or_more = low.wrapping_sub(ONES * 0x09) & TOPS;
    let past_cr = low.wrapping_sub(ONES * 0x0e) & TOPS;
    high | bytes_equal(g, b' ') | (tab_or_more & !past_cr & !high)
}

/// Where the first byte of `bytes[from..]` that `select` picks is: `select` takes eight bytes as
/// a little-endian integer and gives the top bit of each byte it picks. Past the end, the bytes
/// are zeros that are never picked.
#[inline(always)]
fn find_group(bytes: &[u8], from: usize, select: impl Fn(u64) -> u64) -> Option<usize> {
    let mut at = from;
    while at < bytes.len() {
        let (group, real) = group_at(bytes, at);
        let picked = select(group) & low_bytes_or_all(real);
        if picked != 0 {
            return Some(at + (picked.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    None
}

/// Eight bytes of `bytes` from `at` as a little-endian integer, zeros past the end, and how many
/// of them are real.
#[inline(always)]
fn group_at(bytes: &[u8], at: usize) -> (u64, usize) {
    match bytes.get(at..at + 8) {
        Some(g) => (u64::from_le_bytes(g.try_into().unwrap_or_default()), 8),
        None => {
            let rest = bytes.get(at..).unwrap_or_default();
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            (u64::from_le_bytes(buf), rest.len())
        }
    }
}

/// The low `n` bytes (`n` below 8) of a group.
#[inline(always)]
fn low_bytes(n: usize) -> u64 {
    (1u64 << (8 * n)) - 1
}

/// Whether pieces are wanted as `Word`s.
#[inline(always)]
fn is_word<W: 'static>() -> bool {
    TypeId::of::<W>() == TypeId::of::<Word>()
}

/// `word` as a `W`, which [`is_word`] (no conversion: it is handed over as it is).
#[inline(always)]
fn as_piece<W: 'static>(word: Word) -> Option<W> {
    let mut out: Option<W> = None;
    if let Some(slot) = (&mut out as &mut dyn Any).downcast_mut::<Option<Word>>() {
        *slot = Some(word);
    }
    out
}

/// The piece of `bytes` (UTF-8 text) from `start` to the first byte `select` picks (see
/// [`find_group`]; an ASCII byte, or a byte the caller looks at) or to the end, as a `Word`, and
/// where that byte is (`None`: the piece runs to the end), if the piece is at most 16 bytes
/// long; `None` if it is longer.
///
/// The groups of eight bytes the search loads are the word's own integers (with what follows
/// the word masked off), so a word is made without loading it again and without a branch on its
/// length, which the processor mispredicts as word lengths vary: a word count on one thread
/// (400k lines) took 136 ms instead of 167 ms, and in the full benchmark at 3M lines/s 0.42–0.47
/// µs of user time per line instead of 0.54–0.56.
#[inline(always)]
fn short_word(
    bytes: &[u8],
    start: usize,
    select: impl Fn(u64) -> u64,
) -> Option<(Word, Option<usize>)> {
    let (first, real) = group_at(bytes, start);
    let found = select(first) & low_bytes_or_all(real);
    if found != 0 {
        let len = (found.trailing_zeros() / 8) as usize;
        let word = Word::from_groups(first & low_bytes(len), 0, len);
        return Some((word, Some(start + len)));
    }
    if real < 8 {
        return Some((Word::from_groups(first, 0, real), None));
    }
    let (second, real) = group_at(bytes, start + 8);
    let found = select(second) & low_bytes_or_all(real);
    if found != 0 {
        let len = (found.trailing_zeros() / 8) as usize;
        let word = Word::from_groups(first, second & low_bytes(len), 8 + len);
        return Some((word, Some(start + 8 + len)));
    }
    if real < 8 {
        return Some((Word::from_groups(first, second, 8 + real), None));
    }
    None
}

/// The low `n` bytes of a group (`n` at most 8).
#[inline(always)]
fn low_bytes_or_all(n: usize) -> u64 {
    if n >= 8 { u64::MAX } else { low_bytes(n) }
}

/// Whitespace in ASCII, as `char::is_whitespace` has it (which, unlike
/// `u8::is_ascii_whitespace`, counts the vertical tab).
#[inline]
fn ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

impl<W: for<'a> From<&'a str> + 'static> Iterator for Words<W> {
    type Item = W;

    // Always inlined, as `SplitOwned::next` (with this and the search eight bytes at a time, a
    // word count over `words_as::<Word>` went from 238 to 225 ms per 400k lines, one thread;
    // the splitting alone from 76 to 48 ms).
    #[inline(always)]
    fn next(&mut self) -> Option<W> {
        // Whitespace between words is skipped byte by byte (usually one byte), a word's end found
        // eight bytes at a time (see `SplitOwned`); a word that starts or ends next to a
        // non-ASCII character is found by `split_whitespace`, which knows Unicode's whitespace.
        let bytes = self.text.as_bytes();
        let mut start = self.pos;
        while start < bytes.len() && ascii_space(bytes[start]) {
            start += 1;
        }
        if start == bytes.len() {
            self.pos = start;
            return None;
        }
        if is_word::<W>()
            && let Some((word, end)) = short_word(bytes, start, space_or_not_ascii)
            && end.is_none_or(|e| bytes[e].is_ascii())
        {
            self.pos = end.unwrap_or(bytes.len());
            return as_piece(word);
        }
        let end = find_group(bytes, start, space_or_not_ascii).unwrap_or(bytes.len());
        if end < bytes.len() && !bytes[end].is_ascii() {
            let rest = &self.text[start..];
            let word = rest.split_whitespace().next()?;
            // `word` is a slice of `rest`: its offset is the pointer difference.
            let offset = word.as_ptr() as usize - rest.as_ptr() as usize;
            self.pos = start + offset + word.len();
            return Some(W::from(word));
        }
        self.pos = end;
        Some(W::from(&self.text[start..end]))
    }
}

#[cfg(test)]
mod tests {
    use super::{CompactString, ToText, split_owned, split_owned_as, words, words_as};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn split_owned_gives_what_split_gives(text in "[ab ,\u{0}\u{e9}\u{3000}]{0,40}", sep in prop::sample::select(vec![' ', ',', '\u{0}', '\u{e9}', '\u{3000}'])) {
            let want: Vec<String> = text.split(sep).map(String::from).collect();
            prop_assert_eq!(&split_owned(text.clone(), sep).collect::<Vec<_>>(), &want);
            let compact: Vec<CompactString> = split_owned_as(text.clone(), sep).collect();
            prop_assert_eq!(compact, want);
        }

        #[test]
        fn words_gives_what_split_whitespace_gives(text in "[ab \t\n\r\u{0}\u{8}\u{b}\u{c}\u{e}\u{1f}\u{85}\u{a0}\u{3000}\u{e9}]{0,40}") {
            let want: Vec<String> = text.split_whitespace().map(String::from).collect();
            prop_assert_eq!(&words(text.clone()).collect::<Vec<_>>(), &want);
            let boxed: Vec<Box<str>> = words_as(text.clone()).collect();
            prop_assert_eq!(boxed.iter().map(|w| &**w).collect::<Vec<_>>(), want);
        }
    }

    /// A `Word` from the splitters' fast path must be the `Word` the text makes: same text,
    /// equal (as integers) and with the same hash.
    fn assert_words_made_like_from_str(got: &[super::Word], want: &[&str]) {
        use std::hash::BuildHasher;
        let h = rustc_hash::FxBuildHasher;
        assert_eq!(got.iter().map(|w| w.as_str()).collect::<Vec<_>>(), want);
        for (w, text) in got.iter().zip(want) {
            let made = super::Word::from(*text);
            assert!(*w == made, "{text:?}");
            assert_eq!(h.hash_one(w), h.hash_one(&made), "{text:?}");
        }
    }

    proptest! {
        // Pieces of every length around the 8- and 16-byte groups and past 23 bytes, text with
        // multi-byte characters, and separators that are zero (the padding past the end is
        // zeros), ASCII, and not ASCII (not the fast path).
        #[test]
        fn words_split_as_word_are_the_pieces_split_gives(
            text in "([a-h]{0,20}|\u{e9}|\u{3000}|\u{0}|,| ){0,12}",
            sep in prop::sample::select(vec![' ', ',', '\u{0}', 'a', '\u{e9}', '\u{3000}']),
        ) {
            let want: Vec<&str> = text.split(sep).collect();
            let got: Vec<super::Word> = split_owned_as(text.clone(), sep).collect();
            assert_words_made_like_from_str(&got, &want);
        }

        #[test]
        fn whitespace_words_as_word_are_the_words_split_whitespace_gives(
            text in "([a-h]{0,20}|\u{e9}|\u{3000}|\u{85}|\u{0}|\t|\n|\r| ){0,12}",
        ) {
            let want: Vec<&str> = text.split_whitespace().collect();
            let got: Vec<super::Word> = words_as(text.clone()).collect();
            assert_words_made_like_from_str(&got, &want);
        }
    }

    /// Every byte value in every position of a group, beside neighbours that are and are not
    /// picked (a borrow or carry from a neighbour would show), against the byte-wise definition.
    #[test]
    fn group_tests_pick_exactly_the_bytes_they_name() {
        use super::{ascii_space, bytes_equal, space_or_not_ascii};
        for at in 0..8 {
            for b in 0..=255u8 {
                for fill in [0x00u8, 0x09, 0x20, 0x21, 0x7f, 0x80, 0xff, b] {
                    let mut g = [fill; 8];
                    g[at] = b;
                    let word = u64::from_le_bytes(g);
                    let tops = |pick: &dyn Fn(u8) -> bool| {
                        g.iter()
                            .enumerate()
                            .filter(|(_, x)| pick(**x))
                            .map(|(i, _)| 0x80u64 << (8 * i))
                            .sum::<u64>()
                    };
                    for sep in [0u8, b' ', b',', 0x7f, b] {
                        assert_eq!(bytes_equal(word, sep), tops(&|x| x == sep), "{g:?} {sep}");
                    }
                    let want = tops(&|x| ascii_space(x) || !x.is_ascii());
                    assert_eq!(space_or_not_ascii(word), want, "{g:?}");
                }
            }
        }
    }

    #[test]
    fn splits_a_line_of_words() {
        let line = "to be  or".to_string();
        assert_eq!(
            split_owned(line.clone(), ' ').collect::<Vec<_>>(),
            ["to", "be", "", "or"]
        );
        assert_eq!(words(line).collect::<Vec<_>>(), ["to", "be", "or"]);
        assert_eq!(split_owned(String::new(), ' ').collect::<Vec<_>>(), [""]);
        assert_eq!(words(" \t".into()).count(), 0);
    }

    #[test]
    fn renders_like_spark() {
        assert_eq!(("a".to_string(), 1u64).to_text(), "(a,1)");
        assert_eq!((1, (2.5, Some("x"))).to_text(), "(1,(2.5,Some(x)))");
        assert_eq!(vec![1, 2].to_text(), "[1, 2]");
        assert_eq!((CompactString::from("to"), 2u64).to_text(), "(to,2)");
        assert_eq!(None::<u8>.to_text(), "None");
    }
}
