//! Test-only harness for real components.
