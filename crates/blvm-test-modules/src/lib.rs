//! Module binaries for tests and benchmarks. Each binary reads its
//! connection details from the environment the node sets, like any module,
//! and reports what it sees as lines on stdout for the test to read.
