//! The trybuild suite; see `tests/ui.rs`.

pub mod prototype;
