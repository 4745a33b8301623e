//! Code generation: the rewritten job function, its static graph, and the job type.

use super::ast::Graph;
use super::attr;
use super::check;
use super::ctxt::Ctxt;
use super::symbol::Kind;
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Pat};

fn pascal(name: &str) -> String {
    name.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// "file:line:column" of a span, where the compiler can tell.
fn location(span: Span) -> String {
    if proc_macro::is_available() {
        let s = span.unwrap();
        format!("{}:{}:{}", s.file(), s.line(), s.column())
    } else {
        String::new()
    }
}

/// FNV-1a over the graph's structure (not its source locations): what checkpoints record.
fn fingerprint(graph: &Graph) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |s: &str| {
        for b in s.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for n in &graph.nodes {
        eat(&n.name);
        eat(&format!("{:?}", n.parents));
        eat(&format!(
            "{:?}/{:?}",
            n.window.and_then(|d| d.ms),
            n.slide.and_then(|d| d.ms)
        ));
    }
    h
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Source => "source",
        Kind::Transform | Kind::Same => "transform",
        Kind::Combine => "combine",
        Kind::Window => "window",
        Kind::Output => "output",
    }
}

pub(crate) fn expand(attr_tokens: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let err = syn::Error::new(
                e.span(),
                "#[streaming_job] goes on a function: `fn my_job(ssc: &StreamingContext) { ... }`",
            )
            .to_compile_error();
            return quote!(#item #err);
        }
    };
    let attrs = attr::parse(&mut cx, attr_tokens);
    let ssc = match func.sig.inputs.iter().collect::<Vec<_>>().as_slice() {
        [FnArg::Typed(pt)] => match &*pt.pat {
            Pat::Ident(pi) => Some(pi.ident.to_string()),
            _ => None,
        },
        _ => None,
    };
    let Some(ssc) = ssc else {
        cx.error(func.sig.span(), "a streaming job function takes exactly one parameter, the context: `fn my_job(ssc: &StreamingContext)`");
        let (errs, item) = (cx.errors(), func.to_token_stream_owned());
        return quote!(#item #errs);
    };
    if !matches!(func.sig.output, syn::ReturnType::Default) {
        cx.error(
            func.sig.output.span(),
            "a streaming job function returns nothing: it only builds the graph",
        );
    }
    let mut graph = Graph::new(ssc);
    let stmts: Vec<syn::Stmt> = func
        .block
        .stmts
        .iter()
        .map(|s| graph.stmt(&mut cx, s))
        .collect();
    check::check(&mut cx, &mut graph, &attrs, func.sig.ident.span());
    let warnings = cx.warnings();
    if cx.has_errors() {
        let errs = cx.errors();
        return quote!(#func #errs #warnings);
    }

    let mut rewritten = func.clone();
    rewritten.block.stmts = stmts;
    let fn_name = &func.sig.ident;
    let vis = &func.vis;
    let job = format_ident!("{}", pascal(&fn_name.to_string()));
    let graph_static = format_ident!("__SPATE_GRAPH_{}", fn_name.to_string().to_uppercase());
    let name = attrs
        .name
        .as_ref()
        .map(|a| a.value.clone())
        .unwrap_or_else(|| fn_name.to_string().replace('_', "-"));
    let master = attrs
        .master
        .as_ref()
        .map(|a| a.value.clone())
        .unwrap_or_else(|| "local[2]".into());
    let checkpoint = match &attrs.checkpoint {
        Some(c) => {
            let v = &c.value;
            quote!(::core::option::Option::Some(#v))
        }
        None => quote!(::core::option::Option::None),
    };
    let batch_ms = attrs.batch.as_ref().map(|b| b.value).unwrap_or(1000);
    let fp = fingerprint(&graph);
    let opt_u64 = |v: Option<u64>| match v {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    };
    let opt_str = |v: Option<&str>| match v {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    };
    let ops = graph.nodes.iter().map(|n| {
        let id = n.id;
        let op_name = &n.name;
        let kind = kind_name(n.kind);
        let parents = &n.parents;
        let window = opt_u64(n.window.and_then(|d| d.ms));
        let slide = opt_u64(n.slide_ms);
        let binding = opt_str(n.binding.as_ref().map(|b| b.0.as_str()));
        let ty = opt_str(n.input_type.as_deref());
        let loc = location(n.span);
        quote! {
            ::spate_streaming::job::StaticOp {
                id: #id, name: #op_name, kind: #kind, parents: &[#(#parents),*], window_ms: #window,
                slide_ms: #slide, binding: #binding, input_type: #ty, location: #loc,
            }
        }
    });
    let doc = format!("The `{fn_name}` streaming job (generated by `#[streaming_job]`).");
    quote! {
        #rewritten

        #[allow(non_upper_case_globals)]
        static #graph_static: ::spate_streaming::job::JobGraph = ::spate_streaming::job::JobGraph {
            name: #name,
            function: stringify!(#fn_name),
            batch_ms: #batch_ms,
            checkpoint: #checkpoint,
            master: #master,
            ops: &[#(#ops),*],
            fingerprint: #fp,
        };

        #[doc = #doc]
        #vis struct #job;

        impl #job {
            /// The job's operator graph, as checked at compile time.
            #vis fn graph() -> &'static ::spate_streaming::job::JobGraph {
                &#graph_static
            }

            /// Builds the job's graph on `ssc` and verifies it matches the compile-time graph.
            #vis fn build(ssc: &::spate_streaming::StreamingContext) -> ::spate_streaming::Result<()> {
                ::spate_streaming::job::build(ssc, &#graph_static, #fn_name)
            }

            /// Parses a command line (`--master`, `--batch`, `--checkpoint`, `--run-for`, …) and
            /// runs the job.
            #vis fn run<I: ::core::iter::IntoIterator<Item = ::std::string::String>>(args: I) -> ::spate_streaming::Result<()> {
                ::spate_streaming::job::run(&#graph_static, #fn_name, args)
            }

            /// `run` with the process's arguments; prints the error and exits with status 1 on
            /// failure.
            #vis fn main() {
                ::spate_streaming::job::main(&#graph_static, #fn_name)
            }
        }

        #warnings
    }
}

trait OwnedTokens {
    fn to_token_stream_owned(&self) -> TokenStream;
}

impl OwnedTokens for ItemFn {
    fn to_token_stream_owned(&self) -> TokenStream {
        quote!(#self)
    }
}
