//! `#[streaming_job]`, the job-graph macro. Filled in by the macro issue; until then the attribute
//! is not provided and this crate only builds.
