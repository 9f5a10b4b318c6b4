//! Tests of the registry, one file per source file.

mod compatibility;
mod dependencies;
mod discovery;
mod manifest;
mod support;
