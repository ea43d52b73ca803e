//! Integration tests against a real PostgreSQL live in `tests/`; this library is empty.
