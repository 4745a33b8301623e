//! Text in and out of jobs: [`ToText`], how elements are written by `save_as_text_file` and
//! printed by streaming output operations, following Spark's `toString` (tuples as `(a,1)`); and
//! [`split_owned`] and [`words`], the pieces of a line as owned strings for a `flat_map`
//! (`String`s, or any type made from a `&str` with [`split_owned_as`] and [`words_as`]:
//! [`Word`] keeps a short word inline, without an allocation per word, and is the fastest key
//! for aggregating by word; [`CompactString`] keeps one inline too).

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
/// [`CompactString`]).
#[inline]
pub fn split_owned_as<W: for<'a> From<&'a str>>(text: String, sep: char) -> SplitOwned<W> {
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

impl<W: for<'a> From<&'a str>> Iterator for SplitOwned<W> {
    type Item = W;

    #[inline]
    fn next(&mut self) -> Option<W> {
        let start = self.pos?;
        // An ASCII separator is looked for byte by byte: `str::find` with a `char` known only at
        // run time went through the general char searcher and a `memchr` call per piece, which
        // made splitting cost as much as everything else a word count does per word (400k lines
        // of 16 words: 350 ms against 180 ms like this).
        let found = if self.sep.is_ascii() {
            let sep = self.sep as u8;
            self.text.as_bytes()[start..].iter().position(|&b| b == sep)
        } else {
            self.text[start..].find(self.sep)
        };
        let end = match found {
            Some(i) => {
                self.pos = Some(start + i + self.sep.len_utf8());
                start + i
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

/// [`words`] with the words as `W` (as [`split_owned_as`]).
#[inline]
pub fn words_as<W: for<'a> From<&'a str>>(text: String) -> Words<W> {
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

/// Whitespace in ASCII, as `char::is_whitespace` has it (which, unlike
/// `u8::is_ascii_whitespace`, counts the vertical tab).
#[inline]
fn ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

impl<W: for<'a> From<&'a str>> Iterator for Words<W> {
    type Item = W;

    #[inline]
    fn next(&mut self) -> Option<W> {
        // ASCII is scanned byte by byte (see `SplitOwned`); a word that starts or ends next to a
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
        let mut end = start;
        while end < bytes.len() && bytes[end].is_ascii() && !ascii_space(bytes[end]) {
            end += 1;
        }
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
        fn split_owned_gives_what_split_gives(text in "[ab ,\u{e9}\u{3000}]{0,24}", sep in prop::sample::select(vec![' ', ',', '\u{e9}', '\u{3000}'])) {
            let want: Vec<String> = text.split(sep).map(String::from).collect();
            prop_assert_eq!(&split_owned(text.clone(), sep).collect::<Vec<_>>(), &want);
            let compact: Vec<CompactString> = split_owned_as(text.clone(), sep).collect();
            prop_assert_eq!(compact, want);
        }

        #[test]
        fn words_gives_what_split_whitespace_gives(text in "[ab \t\n\r\u{b}\u{c}\u{85}\u{a0}\u{3000}\u{e9}]{0,24}") {
            let want: Vec<String> = text.split_whitespace().map(String::from).collect();
            prop_assert_eq!(&words(text.clone()).collect::<Vec<_>>(), &want);
            let boxed: Vec<Box<str>> = words_as(text.clone()).collect();
            prop_assert_eq!(boxed.iter().map(|w| &**w).collect::<Vec<_>>(), want);
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
