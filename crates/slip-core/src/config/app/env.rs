//! `[env]` and `[containers.<name>].env`: container environment.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;

use crate::config::reader::{Reader, Tbl};

/// Container environment (`[env]`, `[containers.<name>].env`). Derefs to the map; `Debug` shows keys only,
/// because values are often interpolated secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EnvMap(pub BTreeMap<String, String>);

impl Deref for EnvMap {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

impl fmt::Debug for EnvMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.keys().map(|k| (k, "…"))).finish()
    }
}

pub(super) fn env_map(r: &mut Reader<'_>, t: &Tbl<'_>, key: &str) -> EnvMap {
    let mut map = BTreeMap::new();
    for (k, v) in r.string_map(t, key).unwrap_or_default() {
        if k.v.starts_with("SLIP_") {
            r.problem(
                k.at,
                format!("{}: keys starting with SLIP_ are reserved for slip", k.key),
                Some("slip sets SLIP_APP, SLIP_TAG, SLIP_DEPLOY_ID and SLIP_KIND itself; rename the variable".into()),
            );
            continue;
        }
        if k.v.is_empty() || k.v.contains('=') || k.v.chars().any(|c| c.is_control() || c.is_whitespace()) {
            r.problem(k.at, format!("{}: not a valid environment variable name", k.key), None);
            continue;
        }
        if let Err(e) = crate::env_value::check(&v.v) {
            r.problem(v.at, format!("{}: the value {e}", k.key), Some("write the character out, or remove it".into()));
            continue;
        }
        map.insert(k.v, v.v);
    }
    EnvMap(map)
}
