//! Compile-fail tests: each `ui/*.rs` must fail to build with the error
//! recorded next to it in `ui/*.stderr` (regenerate with
//! `TRYBUILD=overwrite cargo test -p unplug-macros --test ui`, then read the
//! diff).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
