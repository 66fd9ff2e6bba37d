//! Request handlers, one module per group of endpoints.

pub mod deploy;
pub mod read;
