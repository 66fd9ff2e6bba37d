//! config_source
