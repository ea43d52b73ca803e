//! The trybuild suite. Cases live in `ui-tests/fail/<topic>/` (must not
//! compile; the `.stderr` beside each is the exact message a user sees) and
//! `ui-tests/pass/<topic>/` (must compile).
//!
//! Regenerate with `TRYBUILD=overwrite cargo test --workspace --test ui`, then read
//! every changed `.stderr` as a user would before committing.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("pass/**/*.rs");
    t.compile_fail("fail/**/*.rs");
}
