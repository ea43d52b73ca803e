//! README code, compiled as doctests: every Rust block of the workspace
//! README, of the guides in `docs/` and of `tenant-macros`' README is a
//! doctest of one of these items (`cargo test -p tenant-tests --doc`), so
//! the code a newcomer copies builds against the crates as they are.

#[doc = include_str!("../../README.md")]
#[derive(Debug)]
pub struct ReadmeDoctests;

#[doc = include_str!("../../docs/workers.md")]
#[derive(Debug)]
pub struct WorkersDoctests;

#[doc = include_str!("../../docs/registry.md")]
#[derive(Debug)]
pub struct RegistryDoctests;

#[doc = include_str!("../../tenant-macros/README.md")]
#[derive(Debug)]
pub struct MacrosReadmeDoctests;
