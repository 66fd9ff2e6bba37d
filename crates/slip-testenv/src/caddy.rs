//! A private Caddy per test (written separately; placeholder until then).
