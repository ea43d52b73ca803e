//! The trybuild suite; see `tests/ui.rs`.
