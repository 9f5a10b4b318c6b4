//! The `blvm-module` binary's commands that are more than a call into the
//! library, one file per family. Binary code: errors are `anyhow`, each
//! printed by `main` as one line.

pub mod install;
