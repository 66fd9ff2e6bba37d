//! Sizes (`512m`, `1g`): SPEC §3.1.
