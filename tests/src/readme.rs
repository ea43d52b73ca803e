//! README code, compiled as doctests: every Rust block of the workspace
//! README and of the docs is a doctest of one of these items (`cargo test
//! -p tenant-tests --doc`), so the code a newcomer copies builds against
//! today's crates.

#[doc = include_str!("../../README.md")]
#[derive(Debug)]
pub struct ReadmeDoctests;

#[doc = include_str!("../../docs/workers.md")]
#[derive(Debug)]
pub struct WorkersDoctests;
