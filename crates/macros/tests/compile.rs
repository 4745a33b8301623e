//! Compile tests of `#[streaming_job]`: every invalid graph in `ui/<category>/<mistake>.rs` is
//! rejected with the error in its `.stderr` (re-bless with `TRYBUILD=overwrite`), and every job
//! in `pass/` compiles and runs its checks.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/**/*.rs");
    t.pass("tests/pass/*.rs");
}
