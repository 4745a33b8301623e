//! `ToText`: how elements are written by `save_as_text_file` and printed by streaming output
//! operations, following Spark's `toString` (tuples as `(a,1)`).

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
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64, bool, char, String,
    str
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

#[cfg(test)]
mod tests {
    use super::ToText;

    #[test]
    fn renders_like_spark() {
        assert_eq!(("a".to_string(), 1u64).to_text(), "(a,1)");
        assert_eq!((1, (2.5, Some("x"))).to_text(), "(1,(2.5,Some(x)))");
        assert_eq!(vec![1, 2].to_text(), "[1, 2]");
        assert_eq!(None::<u8>.to_text(), "None");
    }
}
