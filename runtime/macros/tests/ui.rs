//! Compile-fail tests: each `ui/*.rs` must fail to build with the error
//! recorded next to it in `ui/*.stderr` (regenerate with
//! `TRYBUILD=overwrite cargo test -p unplug-macros --test ui`, then read the
//! diff). Each `ui-pass/*.rs` must build and run to a successful exit.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui-pass/*.rs");
}
