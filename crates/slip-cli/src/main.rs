//! `slip`: the command-line client for slipd.
fn main() {}
