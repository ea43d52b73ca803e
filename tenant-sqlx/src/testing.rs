//! A throwaway PostgreSQL cluster. (Stub: the harness issue replaces this file.)
