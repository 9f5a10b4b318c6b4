//! Integration tests of the registry, built as one binary.

mod http_client;
mod install;
mod install_attacks;
mod maintainer;
mod python_tuf;
mod python_tuf_server;
mod server;
mod support;
mod tuf_attacks;
mod tuf_writer;
