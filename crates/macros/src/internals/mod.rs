//! The macro's front end (attribute and body parsing, graph checks) and code generation.

mod ast;
mod attr;
mod check;
mod ctxt;
mod expand;
mod symbol;

pub(crate) use expand::expand;
