//! Integration tests of the registry, built as one binary.

mod support;
mod tuf_attacks;
