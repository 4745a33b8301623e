//! The attribute's arguments: `batch = "1s"`, `checkpoint = "dir"`, `master = "local[2]"`,
//! `name = "job"`. Each value keeps its span; unknown and duplicate arguments are errors.

use super::ctxt::Ctxt;
use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Lit, MetaNameValue, Token};

pub(crate) struct Attr<T> {
    pub(crate) value: T,
}

#[derive(Default)]
pub(crate) struct Attrs {
    pub(crate) batch: Option<Attr<u64>>,
    pub(crate) checkpoint: Option<Attr<String>>,
    pub(crate) master: Option<Attr<String>>,
    pub(crate) name: Option<Attr<String>>,
}

/// Parses `500ms`, `1s`, `2m` into milliseconds.
pub(crate) fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("invalid duration {s:?}: write it like \"500ms\", \"1s\" or \"2m\"")
    })?;
    let ms = match unit.trim() {
        "ms" => n,
        "s" => n * 1000,
        "m" | "min" => n * 60_000,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {s:?}: use ms, s or m"
            ));
        }
    };
    if ms == 0 {
        return Err("the batch duration must be positive".into());
    }
    Ok(ms)
}

fn string_value(cx: &mut Ctxt, nv: &MetaNameValue, key: &str) -> Option<String> {
    match &nv.value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s.value()),
        other => {
            cx.error(
                syn::spanned::Spanned::span(other),
                format!("`{key}` takes a string literal, like {key} = \"...\""),
            );
            None
        }
    }
}

fn set<T>(cx: &mut Ctxt, slot: &mut Option<Attr<T>>, value: Option<T>, span: Span, key: &str) {
    if slot.is_some() {
        cx.error(span, format!("duplicate argument `{key}`: give it once"));
    } else if let Some(value) = value {
        *slot = Some(Attr { value });
    }
}

pub(crate) fn parse(cx: &mut Ctxt, tokens: TokenStream) -> Attrs {
    let mut attrs = Attrs::default();
    let args = match Punctuated::<MetaNameValue, Token![,]>::parse_terminated.parse2(tokens) {
        Ok(a) => a,
        Err(e) => {
            cx.error(e.span(), format!("malformed #[streaming_job] arguments: {e}; expected `batch = \"1s\", checkpoint = \"dir\", master = \"local[2]\", name = \"job\"`"));
            return attrs;
        }
    };
    for nv in &args {
        let key = nv
            .path
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        let span = syn::spanned::Spanned::span(&nv.path);
        match key.as_str() {
            "batch" => {
                let v = string_value(cx, nv, "batch").and_then(|s| match parse_duration(&s) {
                    Ok(ms) => Some(ms),
                    Err(e) => {
                        cx.error(syn::spanned::Spanned::span(&nv.value), e);
                        None
                    }
                });
                set(cx, &mut attrs.batch, v, span, "batch");
            }
            "checkpoint" => {
                let v = string_value(cx, nv, "checkpoint");
                set(cx, &mut attrs.checkpoint, v, span, "checkpoint");
            }
            "master" => {
                let v = string_value(cx, nv, "master");
                set(cx, &mut attrs.master, v, span, "master");
            }
            "name" => {
                let v = string_value(cx, nv, "name");
                set(cx, &mut attrs.name, v, span, "name");
            }
            _ => cx.error(span, format!("unknown argument `{key}`: #[streaming_job] takes batch, checkpoint, master and name")),
        }
    }
    attrs
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::parse_duration("500ms"), Ok(500));
        assert_eq!(super::parse_duration("2s"), Ok(2000));
        assert_eq!(super::parse_duration("1m"), Ok(60_000));
        assert!(super::parse_duration("0s").is_err());
        assert!(super::parse_duration("1h").is_err());
        assert!(super::parse_duration("fast").is_err());
    }
}
