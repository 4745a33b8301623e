//! Reads the job function's body into a static operator graph, and rewrites every graph-building
//! call so that at run time each operator is tagged with its static id.

use super::ctxt::Ctxt;
use super::symbol::{self, Kind, OpInfo};
use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use std::collections::{HashMap, HashSet};
use syn::spanned::Spanned;
use syn::{Expr, Pat, Stmt};

/// A duration argument: its value in ms when written as a literal, and where it is.
#[derive(Clone, Copy)]
pub(crate) struct Dur {
    pub(crate) ms: Option<u64>,
    pub(crate) span: Span,
}

pub(crate) struct Node {
    pub(crate) id: usize,
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) info: Option<OpInfo>,
    pub(crate) parents: Vec<usize>,
    pub(crate) span: Span,
    pub(crate) window: Option<Dur>,
    pub(crate) slide: Option<Dur>,
    /// The slide of the stream this operator makes (filled in by the checks).
    pub(crate) slide_ms: Option<u64>,
    pub(crate) binding: Option<(String, Span)>,
    pub(crate) input_type: Option<String>,
    pub(crate) children: usize,
    /// Used somewhere the macro cannot follow (passed to a function, captured by a closure).
    pub(crate) escaped: bool,
}

pub(crate) struct Graph {
    pub(crate) nodes: Vec<Node>,
    pub(crate) calls_checkpoint: bool,
    bindings: HashMap<String, usize>,
    ssc: String,
}

/// A duration argument written as `Duration::from_secs(N)` / `Duration::from_millis(N)`: its
/// value, spanned at the number (anything else is checked at run time instead).
fn duration(expr: &Expr) -> Dur {
    let lit_span = match expr {
        Expr::Call(call) if call.args.len() == 1 => call.args[0].span(),
        _ => expr.span(),
    };
    match duration_ms(expr) {
        Some(ms) => Dur {
            ms: Some(ms),
            span: lit_span,
        },
        None => Dur {
            ms: None,
            span: expr.span(),
        },
    }
}

fn duration_ms(expr: &Expr) -> Option<u64> {
    let Expr::Call(call) = expr else { return None };
    let Expr::Path(p) = &*call.func else {
        return None;
    };
    let segs: Vec<String> = p
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    if segs.len() < 2 || segs[segs.len() - 2] != "Duration" || call.args.len() != 1 {
        return None;
    }
    let Expr::Lit(syn::ExprLit {
        lit: syn::Lit::Int(n),
        ..
    }) = &call.args[0]
    else {
        return None;
    };
    let n: u64 = n.base10_parse().ok()?;
    match segs.last()?.as_str() {
        "from_secs" => Some(n * 1000),
        "from_millis" => Some(n),
        _ => None,
    }
}

/// The type written on the first closure parameter among `args`, if any (`|l: String| …`).
fn closure_input_type<'a>(args: impl Iterator<Item = &'a Expr>) -> Option<String> {
    for a in args {
        if let Expr::Closure(c) = a
            && let Some(Pat::Type(t)) = c.inputs.first()
        {
            return Some(t.ty.to_token_stream().to_string().replace(' ', ""));
        }
    }
    None
}

fn idents(tokens: TokenStream, out: &mut HashSet<String>) {
    for t in tokens {
        match t {
            TokenTree::Ident(i) => {
                out.insert(i.to_string());
            }
            TokenTree::Group(g) => idents(g.stream(), out),
            _ => {}
        }
    }
}

impl Graph {
    pub(crate) fn new(ssc: String) -> Graph {
        Graph {
            nodes: Vec::new(),
            calls_checkpoint: false,
            bindings: HashMap::new(),
            ssc,
        }
    }

    /// Marks every stream binding mentioned in `tokens` as used in a way the macro cannot follow.
    fn escape(&mut self, tokens: TokenStream) {
        let mut seen = HashSet::new();
        idents(tokens, &mut seen);
        for name in seen {
            if let Some(&id) = self.bindings.get(&name) {
                self.nodes[id].escaped = true;
            }
        }
    }

    fn add(
        &mut self,
        name: String,
        kind: Kind,
        info: Option<OpInfo>,
        parents: Vec<usize>,
        span: Span,
    ) -> usize {
        let id = self.nodes.len();
        for &p in &parents {
            self.nodes[p].children += 1;
        }
        self.nodes.push(Node {
            id,
            name,
            kind,
            info,
            parents,
            span,
            window: None,
            slide: None,
            slide_ms: None,
            binding: None,
            input_type: None,
            children: 0,
            escaped: false,
        });
        id
    }

    /// The stream an expression denotes, if it is a stream binding (possibly borrowed).
    fn stream_of(&mut self, cx: &mut Ctxt, expr: &Expr) -> (Option<usize>, Expr) {
        self.expr(cx, expr)
    }

    /// Visits an expression: returns the id of the stream it evaluates to (if it is one the
    /// graph knows) and the expression rewritten with operator tags.
    pub(crate) fn expr(&mut self, cx: &mut Ctxt, expr: &Expr) -> (Option<usize>, Expr) {
        match expr {
            Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                let name = p.path.get_ident().expect("checked").to_string();
                (self.bindings.get(&name).copied(), expr.clone())
            }
            Expr::Reference(r) => {
                let (id, inner) = self.expr(cx, &r.expr);
                let mut r = r.clone();
                r.expr = Box::new(inner);
                (id, Expr::Reference(r))
            }
            Expr::Paren(p) => {
                let (id, inner) = self.expr(cx, &p.expr);
                let mut p = p.clone();
                p.expr = Box::new(inner);
                (id, Expr::Paren(p))
            }
            Expr::Try(t) => {
                let (id, inner) = self.expr(cx, &t.expr);
                let mut t = t.clone();
                t.expr = Box::new(inner);
                (id, Expr::Try(t))
            }
            Expr::MethodCall(mc) => self.method_call(cx, mc),
            other => {
                self.escape(other.to_token_stream());
                (None, other.clone())
            }
        }
    }

    fn is_context(&self, expr: &Expr) -> bool {
        matches!(expr, Expr::Path(p) if p.path.get_ident().is_some_and(|i| *i == self.ssc))
    }

    fn method_call(&mut self, cx: &mut Ctxt, mc: &syn::ExprMethodCall) -> (Option<usize>, Expr) {
        let method = mc.method.to_string();
        let span = mc.method.span();
        if self.is_context(&mc.receiver) {
            if symbol::SOURCES.contains(&method.as_str()) {
                self.escape(mc.args.to_token_stream());
                let id = self.add(method, Kind::Source, None, Vec::new(), span);
                return (Some(id), tag(id, Expr::MethodCall(mc.clone()), None));
            }
            if symbol::CONTEXT_COMBINES.contains(&method.as_str()) {
                let mut parents = Vec::new();
                let mut mc2 = mc.clone();
                if let Some(first) = mc2.args.first_mut() {
                    let mut elems = match first {
                        Expr::Reference(r) => match &*r.expr {
                            Expr::Array(a) => a.elems.iter().cloned().collect::<Vec<_>>(),
                            _ => Vec::new(),
                        },
                        Expr::Array(a) => a.elems.iter().cloned().collect(),
                        _ => Vec::new(),
                    };
                    for e in elems.iter_mut() {
                        let (id, rewritten) = self.stream_of(cx, e);
                        *e = rewritten;
                        match id {
                            Some(i) => parents.push(i),
                            None => cx.error(e.span(), format!("`{method}` takes streams the job graph knows: bind each to a `let` in this function")),
                        }
                    }
                    let rebuilt: Expr = syn::parse_quote!(&[#(#elems),*]);
                    *first = rebuilt;
                }
                for a in mc2.args.iter().skip(1) {
                    self.escape(a.to_token_stream());
                }
                if parents.is_empty() {
                    return (None, Expr::MethodCall(mc2));
                }
                let id = self.add(method, Kind::Combine, None, parents, span);
                self.nodes[id].input_type = closure_input_type(mc.args.iter());
                return (Some(id), tag(id, Expr::MethodCall(mc2), None));
            }
            if method == "checkpoint" {
                self.calls_checkpoint = true;
            }
            self.escape(mc.args.to_token_stream());
            return (None, Expr::MethodCall(mc.clone()));
        }

        let (recv, receiver) = self.expr(cx, &mc.receiver);
        let mut mc2 = mc.clone();
        mc2.receiver = Box::new(receiver);
        let Some(parent) = recv else {
            self.escape(mc.args.to_token_stream());
            return (None, Expr::MethodCall(mc2));
        };
        let Some(info) = symbol::stream_op(&method) else {
            // Not a graph operation (`slide()`, `id()`, …): the stream is used in a way the macro
            // does not follow.
            self.nodes[parent].escaped = true;
            self.escape(mc.args.to_token_stream());
            return (None, Expr::MethodCall(mc2));
        };
        match info.kind {
            Kind::Same => {
                self.escape(mc.args.to_token_stream());
                (Some(parent), Expr::MethodCall(mc2))
            }
            Kind::Combine => {
                let mut parents = vec![parent];
                if let Some(first) = mc2.args.first_mut() {
                    let (other, rewritten) = self.stream_of(cx, first);
                    *first = rewritten;
                    match other {
                        Some(o) => parents.push(o),
                        None => cx.error(first.span(), format!("`{method}` takes a stream the job graph knows: bind it to a `let` in this function")),
                    }
                }
                for a in mc2.args.iter().skip(1) {
                    self.escape(a.to_token_stream());
                }
                let id = self.add(method, Kind::Combine, Some(info), parents, span);
                self.nodes[id].input_type = closure_input_type(mc.args.iter());
                (
                    Some(id),
                    tag(id, Expr::MethodCall(mc2), info.pairs.then_some(span)),
                )
            }
            kind => {
                self.escape(mc.args.to_token_stream());
                let id = self.add(method, kind, Some(info), vec![parent], span);
                if let Some((w, s)) = info.window_args {
                    let arg = |i: usize| mc.args.iter().nth(i).map(duration);
                    self.nodes[id].window = arg(w);
                    self.nodes[id].slide = arg(s);
                }
                self.nodes[id].input_type = closure_input_type(mc.args.iter());
                let tagged = tag(id, Expr::MethodCall(mc2), info.pairs.then_some(span));
                if kind == Kind::Output {
                    (None, tagged)
                } else {
                    (Some(id), tagged)
                }
            }
        }
    }

    /// Visits a statement of the body and returns it rewritten.
    pub(crate) fn stmt(&mut self, cx: &mut Ctxt, stmt: &Stmt) -> Stmt {
        match stmt {
            Stmt::Local(local) => {
                let mut local = local.clone();
                if let Some(init) = &mut local.init {
                    let (id, rewritten) = self.expr(cx, &init.expr);
                    *init.expr = rewritten;
                    if let Some(diverge) = &init.diverge {
                        self.escape(diverge.1.to_token_stream());
                    }
                    let name = match &local.pat {
                        Pat::Ident(pi) => Some((pi.ident.to_string(), pi.ident.span())),
                        Pat::Type(pt) => match &*pt.pat {
                            Pat::Ident(pi) => Some((pi.ident.to_string(), pi.ident.span())),
                            _ => None,
                        },
                        _ => None,
                    };
                    if let (Some(id), Some((name, span))) = (id, name) {
                        if self.nodes[id].binding.is_none() {
                            self.nodes[id].binding = Some((name.clone(), span));
                        }
                        self.bindings.insert(name, id);
                    } else if let Some(id) = id {
                        self.nodes[id].escaped = true;
                    }
                }
                Stmt::Local(local)
            }
            Stmt::Expr(expr, semi) => {
                let (id, rewritten) = self.expr(cx, expr);
                if semi.is_none()
                    && let Some(id) = id
                {
                    // The body's value is a stream: it escapes to the caller.
                    self.nodes[id].escaped = true;
                }
                Stmt::Expr(rewritten, *semi)
            }
            other => {
                self.escape(other.to_token_stream());
                other.clone()
            }
        }
    }
}

/// Wraps a graph-building call so the operators it creates carry static id `id`; for key-value
/// operations, first asserts (with a readable message) that the receiver is a stream of pairs.
fn tag(id: usize, call: Expr, pairs_at: Option<Span>) -> Expr {
    let tagged = match (pairs_at, &call) {
        (Some(span), Expr::MethodCall(mc)) => {
            let recv = &mc.receiver;
            let method = &mc.method;
            let turbofish = &mc.turbofish;
            let args = &mc.args;
            let assert =
                quote_spanned!(span=> ::spate_streaming::job::assert_pairs(__spate_receiver));
            quote!({
                let __spate_receiver = &#recv;
                #assert;
                __spate_receiver.#method #turbofish (#args)
            })
        }
        _ => call.to_token_stream(),
    };
    syn::parse_quote!(::spate_streaming::job::op(#id, || #tagged))
}
