//! Request handlers, one module per group of endpoints.

pub mod admin;
pub mod apps;
pub mod audit;
pub mod caller;
pub mod cancel;
pub mod deploy;
pub mod events;
pub mod logs;
pub mod previews;
pub(crate) mod problems;
pub mod read;
pub mod redeploy;
pub mod reload;
pub mod rollback;
pub mod secrets;

#[cfg(test)]
mod tests;
