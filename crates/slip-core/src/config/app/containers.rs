//! `[containers.<name>]`: per-container overrides in pods, and container names as keys hold them.

use std::collections::BTreeMap;

use super::env::{EnvMap, env_map};
use super::images::PinnedImage;
use crate::config::reader::{Keys, Reader, Tbl};
use crate::names::{is_dns_label, is_secret_key};

/// `[containers.<name>]`: per-container overrides in pods (SPEC §14.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerOverride {
    /// A pinned image (`redis:7.2`) replacing the manifest's.
    pub image: Option<PinnedImage>,
    /// Extra environment for this container.
    pub env: EnvMap,
    /// Secret keys this container receives; `None` means the §11.3 default.
    pub secrets: Option<Vec<String>>,
}

pub(super) fn containers(r: &mut Reader<'_>, root: &Tbl<'_>) -> BTreeMap<String, ContainerOverride> {
    let mut out = BTreeMap::new();
    let Some(t) = r.any_table(root, "containers") else { return out };
    for (name, at, item) in r.entries(&t) {
        if !is_dns_label(&name) {
            r.problem(
                at,
                format!("containers: {name:?} is not a container name"),
                Some("container names are DNS labels: lowercase letters, digits and '-'".into()),
            );
            continue;
        }
        let Some(sub) = r.entry_table(&t, &name, item, Keys::of(&["image", "env", "secrets"])) else { continue };
        let image = r.string(&sub, "image").and_then(|v| match v.v.parse::<PinnedImage>() {
            Ok(image) => Some(image),
            Err(why) => {
                r.invalid(&v, why, None);
                None
            }
        });
        let env = env_map(r, &sub, "env");
        let secrets = r.strings(&sub, "secrets").map(|list| {
            list.into_iter()
                .filter_map(|v| {
                    if is_secret_key(&v.v) {
                        Some(v.v)
                    } else {
                        r.invalid(
                            &v,
                            "is not a secret key: use letters, digits and '_', not starting with a digit",
                            None,
                        );
                        None
                    }
                })
                .collect()
        });
        out.insert(name, ContainerOverride { image, env, secrets });
    }
    out
}

/// A container name (a DNS label), as `routing.container` and `health.container` hold.
pub(crate) fn container_name(r: &mut Reader<'_>, t: &Tbl<'_>, key: &str) -> Option<String> {
    let v = r.string(t, key)?;
    if is_dns_label(&v.v) {
        Some(v.v)
    } else {
        r.invalid(&v, "is not a container name: use lowercase letters, digits and '-' (a DNS label)", None);
        None
    }
}
