//! Integration tests of the registry, built as one binary.

mod install;
mod maintainer;
mod python_tuf;
mod support;
mod tuf_attacks;
mod tuf_writer;
