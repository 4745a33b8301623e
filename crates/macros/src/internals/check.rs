//! The graph rules, each reported with a span on the offending code and a suggested fix.

use super::ast::{Dur, Graph};
use super::attr::Attrs;
use super::ctxt::Ctxt;
use super::symbol::Kind;
use proc_macro2::Span;

fn show(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Checks that a window or slide duration is a positive multiple of `unit`.
fn check_multiple(cx: &mut Ctxt, d: Dur, what: &str, unit: u64, unit_name: &str) {
    let Some(ms) = d.ms else { return };
    if ms == 0 {
        cx.error(d.span, format!("the {what} must be positive"));
    } else if !ms.is_multiple_of(unit) {
        let lower = ms / unit * unit;
        let upper = lower + unit;
        let fix = if lower == 0 {
            format!("use {}", show(upper))
        } else {
            format!("use {} or {}", show(lower), show(upper))
        };
        cx.error(
            d.span,
            format!(
                "{what} {} is not a multiple of the {unit_name} {}: {fix}",
                show(ms),
                show(unit)
            ),
        );
    }
}

pub(crate) fn check(cx: &mut Ctxt, graph: &mut Graph, attrs: &Attrs, fn_span: Span) {
    let Some(batch) = attrs.batch.as_ref().map(|b| b.value) else {
        cx.error(
            Span::call_site(),
            "missing the batch interval: write #[streaming_job(batch = \"1s\")]",
        );
        return;
    };
    // Every job needs somewhere for its results to go.
    if !graph.nodes.iter().any(|n| n.kind == Kind::Output) {
        cx.error(fn_span, "this job has no output operation, so nothing would run: add print(), foreach_rdd(...) or save_as_text_files(...) to a stream");
    }
    let has_checkpoint = attrs.checkpoint.is_some() || graph.calls_checkpoint;
    for i in 0..graph.nodes.len() {
        let parent_slides: Vec<Option<u64>> = graph.nodes[i]
            .parents
            .iter()
            .map(|&p| graph.nodes[p].slide_ms)
            .collect();
        let node = &graph.nodes[i];
        let parent_slide = parent_slides.first().copied().flatten();
        let slide = match node.kind {
            Kind::Source => Some(batch),
            Kind::Window => {
                let (w, s) = (node.window, node.slide);
                if let Some(w) = w {
                    check_multiple(cx, w, "window", batch, "batch interval");
                    if let Some(ps) = parent_slide
                        .filter(|ps| *ps != batch && w.ms.is_some_and(|m| m.is_multiple_of(batch)))
                    {
                        check_multiple(cx, w, "window", ps, "parent stream's slide");
                    }
                }
                if let Some(s) = s {
                    check_multiple(cx, s, "slide", batch, "batch interval");
                    if let Some(ps) = parent_slide
                        .filter(|ps| *ps != batch && s.ms.is_some_and(|m| m.is_multiple_of(batch)))
                    {
                        check_multiple(cx, s, "slide", ps, "parent stream's slide");
                    }
                }
                if let (Some(Dur { ms: Some(wm), .. }), Some(Dur { ms: Some(sm), span })) = (w, s)
                    && sm > wm
                    && wm > 0
                {
                    cx.warning(span, format!("slide {} is longer than window {}: records between windows are never seen", show(sm), show(wm)));
                }
                s.and_then(|d| d.ms)
            }
            Kind::Combine => {
                if let [Some(a), rest @ ..] = parent_slides.as_slice() {
                    for b in rest.iter().flatten() {
                        if b != a {
                            cx.error(node.span, format!("`{}` combines streams with different slides ({} and {}): window them to a common slide first", node.name, show(*a), show(*b)));
                        }
                    }
                }
                parent_slide
            }
            _ => parent_slide,
        };
        if node.info.is_some_and(|i| i.stateful) && !has_checkpoint {
            cx.error(
                node.span,
                format!(
                    "`{}` keeps state across batches and needs a checkpoint directory: add `checkpoint = \"/path/to/dir\"` to #[streaming_job(...)] or call `ssc.checkpoint(dir)`",
                    node.name
                ),
            );
        }
        graph.nodes[i].slide_ms = slide;
    }
    // Every stream must end in an output operation.
    for node in &graph.nodes {
        if node.kind != Kind::Output && node.children == 0 && !node.escaped {
            let (what, span) = match &node.binding {
                Some((name, span)) => (format!("the stream `{name}`"), *span),
                None => (format!("the result of `{}`", node.name), node.span),
            };
            cx.error(span, format!("{what} is never used: it ends in no output operation; add one (print(), foreach_rdd, save_as_text_files) or remove it"));
        }
    }
}
