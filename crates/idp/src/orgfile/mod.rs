//! Declarative org files.
