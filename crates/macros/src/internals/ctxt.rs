//! Collects every error found, so the user sees them all at once (serde_derive's `Ctxt`).

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};

#[derive(Default)]
pub(crate) struct Ctxt {
    errors: Vec<syn::Error>,
    warnings: Vec<(Span, String)>,
}

impl Ctxt {
    pub(crate) fn error(&mut self, span: Span, message: impl std::fmt::Display) {
        self.errors.push(syn::Error::new(span, message));
    }

    pub(crate) fn warning(&mut self, span: Span, message: impl Into<String>) {
        self.warnings.push((span, message.into()));
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    pub(crate) fn errors(&self) -> TokenStream {
        let errs = self.errors.iter().map(syn::Error::to_compile_error);
        quote!(#(#errs)*)
    }

    /// Warnings on stable Rust: a call of a deprecated function whose note is the message, spanned
    /// at the offending code.
    pub(crate) fn warnings(&self) -> TokenStream {
        let ws = self.warnings.iter().enumerate().map(|(i, (span, msg))| {
            let f = syn::Ident::new(&format!("__spate_warning_{i}"), *span);
            quote_spanned! {*span=>
                const _: () = {
                    #[deprecated(note = #msg)]
                    const fn #f() {}
                    #f()
                };
            }
        });
        quote!(#(#ws)*)
    }
}
