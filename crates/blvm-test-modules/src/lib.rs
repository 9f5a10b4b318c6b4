//! Module binaries for tests and benchmarks. Each binary reads its
//! connection details from the environment the node sets, like any module,
//! and reports what it sees as lines on stdout for the test to read.

use blvm_sdk::SdkError;

/// A failed call as one answer line the tests match on:
/// `ERROR <code> <capability or -> <message>` for the node's error,
/// `ERROR local - <error>` for one of the SDK's own.
pub fn error_line(e: SdkError) -> String {
    match e {
        SdkError::Remote(r) => format!(
            "ERROR {} {} {}",
            r.code,
            r.capability.as_deref().unwrap_or("-"),
            r.message
        ),
        other => format!("ERROR local - {other}"),
    }
}
