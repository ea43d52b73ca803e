//! Row-Level Security policy helpers. (Stub: the RLS issue replaces this file.)
