//! The labels that carry slip's identity on every instance it creates, written and read only here.
//!
//! Reconciliation, healing, logs and deletion find slip's instances by these labels, never by name: a name can be
//! taken or truncated, a label is exact. `slip.instance` is the identity of the slipd that made the instance (the
//! store's id), so two slipds on one engine never touch each other's instances.

use std::collections::BTreeMap;

use slip_core::names::{AppName, DeployId, PreviewId, Tag};

/// `true` on everything slip creates.
pub const MANAGED: &str = "slip.managed";
/// The app's name.
pub const APP: &str = "slip.app";
/// The deploy that created the instance.
pub const DEPLOY: &str = "slip.deploy";
/// The tag that deploy asked for.
pub const TAG: &str = "slip.tag";
/// The creating slipd's identity.
pub const OWNER: &str = "slip.instance";
/// What the instance is for: `app` for a production release, `preview` for a preview's (other roles are transient
/// helpers, such as `extract` for reading the repo config out of an image).
pub const ROLE: &str = "slip.role";
/// The store's id of the instance row.
pub const INSTANCE_ID: &str = "slip.instance-id";
/// The preview id, on a preview's instances only.
pub const PREVIEW: &str = "slip.preview";

/// The role of a production release's instance.
pub const ROLE_APP: &str = "app";
/// The role of a preview release's instance.
pub const ROLE_PREVIEW: &str = "preview";
/// The role of a container made only to read files out of an image; never started, always removed.
pub const ROLE_EXTRACT: &str = "extract";

/// Who an instance belongs to and what it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The app.
    pub app: AppName,
    /// The deploy that created it.
    pub deploy: DeployId,
    /// The tag the deploy asked for.
    pub tag: Tag,
    /// The creating slipd.
    pub owner: String,
    /// The store's instance row.
    pub instance_id: String,
    /// The preview, for a preview's instance.
    pub preview: Option<PreviewId>,
}

/// The labels of a release's instance.
pub fn write(identity: &Identity) -> BTreeMap<String, String> {
    let role = if identity.preview.is_some() { ROLE_PREVIEW } else { ROLE_APP };
    let mut labels = BTreeMap::from([
        (APP.to_owned(), identity.app.to_string()),
        (DEPLOY.to_owned(), identity.deploy.to_string()),
        (TAG.to_owned(), identity.tag.to_string()),
        (MANAGED.to_owned(), "true".to_owned()),
        (OWNER.to_owned(), identity.owner.clone()),
        (ROLE.to_owned(), role.to_owned()),
        (INSTANCE_ID.to_owned(), identity.instance_id.clone()),
    ]);
    if let Some(preview) = &identity.preview {
        labels.insert(PREVIEW.to_owned(), preview.to_string());
    }
    labels
}

/// The labels of an extract container made by the slipd `owner` (SPEC §7.3).
pub fn extract(owner: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED.to_owned(), "true".to_owned()),
        (OWNER.to_owned(), owner.to_owned()),
        (ROLE.to_owned(), ROLE_EXTRACT.to_owned()),
    ])
}

/// Reads an identity back; `None` when a label is missing or malformed (not a release instance of slip's).
pub fn read(labels: &BTreeMap<String, String>) -> Option<Identity> {
    if labels.get(MANAGED).map(String::as_str) != Some("true") {
        return None;
    }
    let preview = match labels.get(ROLE).map(String::as_str) {
        Some(ROLE_APP) => None,
        Some(ROLE_PREVIEW) => Some(labels.get(PREVIEW)?.parse().ok()?),
        _ => return None,
    };
    Some(Identity {
        preview,
        app: labels.get(APP)?.parse().ok()?,
        deploy: labels.get(DEPLOY)?.parse().ok()?,
        tag: labels.get(TAG)?.parse().ok()?,
        owner: labels.get(OWNER)?.clone(),
        instance_id: labels.get(INSTANCE_ID)?.clone(),
    })
}

/// The label filter for every instance this slipd (`owner`) made.
pub fn owned_by(owner: &str) -> [(&'static str, &str); 2] {
    [(MANAGED, "true"), (OWNER, owner)]
}

/// The label filter for the production release instances of `app` that this slipd made.
pub fn releases_of<'a>(app: &'a AppName, owner: &'a str) -> [(&'static str, &'a str); 3] {
    [(APP, app.as_str()), (ROLE, ROLE_APP), (OWNER, owner)]
}

/// The label filter for the release instances of preview `id` of `app` that this slipd made.
pub fn preview_releases_of<'a>(app: &'a AppName, id: &'a PreviewId, owner: &'a str) -> [(&'static str, &'a str); 4] {
    [(APP, app.as_str()), (ROLE, ROLE_PREVIEW), (PREVIEW, id.as_str()), (OWNER, owner)]
}

/// The label filter for every preview instance this slipd made.
pub fn previews_of(owner: &str) -> [(&'static str, &str); 2] {
    [(ROLE, ROLE_PREVIEW), (OWNER, owner)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_reads_back_as_written_and_foreign_labels_are_no_identity() {
        let identity = Identity {
            app: "web".parse().unwrap(),
            deploy: "dep_01jz0000000000000000000001".parse().unwrap(),
            tag: "v1".parse().unwrap(),
            owner: "slipd-1".into(),
            instance_id: "ins_00000001".into(),
            preview: None,
        };
        let labels = write(&identity);
        assert_eq!(read(&labels), Some(identity.clone()));
        let preview = Identity { preview: Some("pr-1".parse().unwrap()), ..identity };
        let preview_labels = write(&preview);
        assert_eq!((preview_labels[ROLE].as_str(), preview_labels[PREVIEW].as_str()), (ROLE_PREVIEW, "pr-1"));
        assert_eq!(read(&preview_labels), Some(preview));
        let mut foreign = labels.clone();
        foreign.remove(MANAGED);
        assert_eq!(read(&foreign), None, "not slip's");
        let mut helper = labels;
        helper.insert(ROLE.into(), "extract".into());
        assert_eq!(read(&helper), None, "not a release instance");
    }
}
