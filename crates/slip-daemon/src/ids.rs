//! Identifiers slipd mints.

/// A fresh deploy id: `dep_` + a lower-case ULID (48-bit time, 80 random bits from the OS CSPRNG).
pub fn new_deploy_id() -> String {
    format!("dep_{}", ulid::Ulid::new().to_string().to_lowercase())
}
