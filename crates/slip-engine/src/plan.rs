//! What a candidate instance looks like, decided before anything is created: its id and name, the container
//! ports it publishes, and the whole spec, as pure functions of the release, the candidate's identity and its
//! leased host ports. The driver only executes what these return.

use std::collections::BTreeMap;

use slip_core::names::Target;

use crate::labels::{self, Identity};
use crate::ports::{ContainerSpec, InstanceSpec, LogRotation, PodSpec, PortMapping};
use crate::release::Release;

/// The longest container name the engines accept without trouble (DNS label length).
const MAX_NAME: usize = 63;

/// A candidate's store id and runtime name, from a random `suffix` (8 hex digits): `slip-<app>-<suffix>` for
/// production, `slip-<app>-pv-<id>-<suffix>` for a preview. A long name is shortened before the suffix, so the
/// suffix (what makes names unique) always survives.
pub fn identity(target: &Target, suffix: &str) -> (String, String) {
    let mut stem = match &target.preview {
        None => format!("slip-{}", target.app),
        Some(id) => format!("slip-{}-pv-{id}", target.app),
    };
    stem.truncate(MAX_NAME.saturating_sub(suffix.len() + 1));
    let stem = stem.trim_end_matches('-');
    (format!("ins_{suffix}"), format!("{stem}-{suffix}"))
}

/// The container port probed over HTTP: the configured one, else the first route's.
pub fn health_container_port(release: &Release) -> Option<u16> {
    release.health_port.or_else(|| release.routes.first().map(|r| r.container_port))
}

/// Every container port that needs a host port: each route's, and the health port when probed over HTTP.
pub fn container_ports(release: &Release) -> Vec<u16> {
    if let Some(pod) = &release.pod {
        // A pod's containers share one network namespace, so a container port names one container.
        let mut ports: Vec<u16> = pod.published.iter().map(|(_, port)| *port).collect();
        ports.sort_unstable();
        ports.dedup();
        return ports;
    }
    let mut ports: Vec<u16> = release.routes.iter().map(|r| r.container_port).collect();
    if let (Some(_), Some(p)) = (&release.plan.health.path, health_container_port(release)) {
        ports.push(p);
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The candidate of one release, identified and with its host ports leased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// The store's instance id.
    pub instance_id: &'a str,
    /// The runtime name.
    pub name: &'a str,
    /// Container port → leased host port.
    pub ports: &'a BTreeMap<u16, u16>,
}

/// The spec that creates `candidate` for `release`: running `image` (the pulled digest), labelled for the
/// slipd `owner`. A pod's manifest is rendered here (SPEC §14.2); a manifest that cannot be rendered is an error.
pub fn instance_spec(
    release: &Release,
    candidate: &Candidate<'_>,
    owner: &str,
    image: &str,
    log: LogRotation,
) -> Result<InstanceSpec, String> {
    let identity = Identity {
        app: release.app.clone(),
        deploy: release.deploy_id.clone(),
        tag: release.tag.clone(),
        owner: owner.to_owned(),
        instance_id: candidate.instance_id.to_owned(),
        preview: release.preview.clone(),
    };
    let ports: Vec<PortMapping> =
        candidate.ports.iter().map(|(c, h)| PortMapping { host: *h, container: *c }).collect();
    if let Some(pod) = &release.pod {
        let rendering = crate::pod::rendering(release, pod, candidate.name, labels::write(&identity), candidate.ports);
        let manifest = slip_core::pod_manifest::render::render(&pod.text, &rendering)?;
        return Ok(InstanceSpec::Pod(PodSpec {
            name: candidate.name.to_owned(),
            labels: rendering.labels,
            manifest,
            ports,
        }));
    }
    Ok(InstanceSpec::Container(ContainerSpec {
        name: candidate.name.to_owned(),
        image: image.to_owned(),
        labels: labels::write(&identity),
        env: release.env.clone(),
        ports,
        network: release.network.clone(),
        resources: release.resources,
        mounts: release.mounts.clone(),
        init: release.init,
        log,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_their_suffix_and_previews_say_so() {
        let app: slip_core::names::AppName = "web".parse().unwrap();
        assert_eq!(identity(&Target::production(app.clone()), "0123abcd").1, "slip-web-0123abcd");
        let long: slip_core::names::PreviewId = "a".repeat(63).parse().unwrap();
        let (id, name) = identity(&Target::preview(app, long), "0123abcd");
        assert_eq!(id, "ins_0123abcd");
        assert!(name.len() <= MAX_NAME && name.starts_with("slip-web-pv-a") && name.ends_with("-0123abcd"), "{name}");
    }
}
