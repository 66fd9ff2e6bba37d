//! `slipd`: parse flags, install tracing, load config, run.
fn main() {}
