//! Benchmark binary (filled in below).
fn main() {}
