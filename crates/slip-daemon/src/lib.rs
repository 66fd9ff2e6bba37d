//! slipd: the HTTP API, the per-app deploy queue and the wiring between them.
