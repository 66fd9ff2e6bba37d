//! Validated names. Every primitive that crosses a boundary is wrapped here, so functions take
//! `&AppName`, never `&str`. Construction is the only place validation happens.

use std::fmt;
use std::str::FromStr;

/// Why a name was refused. The message says what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is invalid: {rule}")]
pub struct NameError {
    /// What kind of name it was ("app name", "tag", ...).
    pub what: &'static str,
    /// The rejected input.
    pub value: String,
    /// What a valid value looks like.
    pub rule: &'static str,
}

fn name_error(what: &'static str, value: &str, rule: &'static str) -> NameError {
    NameError { what, value: value.to_owned(), rule }
}

/// True for a DNS label: 1-63 of `[a-z0-9-]`, starting and ending with a letter or digit.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// An app's name: a DNS label. It names the file `apps/<name>.toml`, containers and Caddy ids.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppName(String);

impl AppName {
    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AppName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        if is_dns_label(s) {
            Ok(AppName(s.to_owned()))
        } else {
            Err(name_error(
                "app name",
                s,
                "use 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit",
            ))
        }
    }
}

/// A preview id: a DNS label like `pr-42`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PreviewId(String);

impl PreviewId {
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PreviewId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        if is_dns_label(s) {
            Ok(PreviewId(s.to_owned()))
        } else {
            Err(name_error(
                "preview id",
                s,
                "use 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit",
            ))
        }
    }
}

/// Where a deploy puts a release: an app's production (`preview = None`) or one of its previews. The queue, the
/// route table, the store's instances, logs and events are keyed by it, so a preview is a target like any other.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    /// The app.
    pub app: AppName,
    /// The preview, or `None` for production.
    pub preview: Option<PreviewId>,
}

impl Target {
    /// The production target of `app`.
    pub fn production(app: AppName) -> Target {
        Target { app, preview: None }
    }

    /// The preview `id` of `app`.
    pub fn preview(app: AppName, id: PreviewId) -> Target {
        Target { app, preview: Some(id) }
    }
}

impl fmt::Display for Target {
    /// `app` for production, `app:preview` for a preview (a preview id cannot contain `:`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.preview {
            None => write!(f, "{}", self.app),
            Some(id) => write!(f, "{}:{}", self.app, id.as_str()),
        }
    }
}

/// What a webhook asks for: a Docker tag `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}` or a digest `sha256:<64 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Tag {
    /// A mutable tag such as `sha-abc123f`.
    Named(String),
    /// An immutable digest `sha256:<64 hex>`.
    Digest(String),
}

impl Tag {
    /// The tag or digest exactly as given.
    pub fn as_str(&self) -> &str {
        match self {
            Tag::Named(s) | Tag::Digest(s) => s,
        }
    }
}

impl FromStr for Tag {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        if let Some(hex) = s.strip_prefix("sha256:") {
            if hex.len() == 64 && hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
                return Ok(Tag::Digest(s.to_owned()));
            }
            return Err(name_error("tag", s, "a digest is sha256: followed by 64 lowercase hex digits"));
        }
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 128
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if ok {
            Ok(Tag::Named(s.to_owned()))
        } else {
            Err(name_error(
                "tag",
                s,
                "a tag is 1-128 of [A-Za-z0-9_.-] starting with a letter, digit or '_', or sha256:<64 hex>",
            ))
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An image repository without tag or digest, normalised: `nginx` → `docker.io/library/nginx`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageRepo {
    /// Registry host, with port when one was given (`ghcr.io`, `127.0.0.1:5000`, `docker.io`).
    host: String,
    /// Path below the host (`you/myapp`, `library/nginx`).
    path: String,
}

impl ImageRepo {
    /// The registry host credentials are matched against (`docker.io` when the reference named none).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The repository path below the host.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The full reference for one tag or digest: `host/path:tag` or `host/path@sha256:…`.
    pub fn with_tag(&self, tag: &Tag) -> String {
        match tag {
            Tag::Named(t) => format!("{self}:{t}"),
            Tag::Digest(d) => format!("{self}@{d}"),
        }
    }
}

impl FromStr for ImageRepo {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        const RULE: &str =
            "use a repository such as ghcr.io/you/myapp, without a tag or digest (the tag comes from the webhook)";
        if s.is_empty() || s.contains('@') || s.contains(char::is_whitespace) || s.ends_with('/') || s.starts_with('/')
        {
            return Err(name_error("image repository", s, RULE));
        }
        let (first, rest) = match s.split_once('/') {
            Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_owned(), rest.to_owned())
            }
            Some(_) => ("docker.io".to_owned(), s.to_owned()),
            None => ("docker.io".to_owned(), format!("library/{s}")),
        };
        // A ':' after the host part means a tag was given.
        if rest.contains(':') {
            return Err(name_error("image repository", s, RULE));
        }
        let path_ok = rest.split('/').all(|seg| {
            !seg.is_empty()
                && seg.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-'))
        });
        if !path_ok {
            return Err(name_error(
                "image repository",
                s,
                "path segments use lowercase letters, digits, '.', '_' and '-'",
            ));
        }
        Ok(ImageRepo { host: first, path: rest })
    }
}

impl fmt::Display for ImageRepo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.path)
    }
}

/// A deploy's id: `dep_` followed by a lower-case ULID. Generated by the engine (which owns randomness
/// and the clock); parsed and validated here.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeployId(String);

impl DeployId {
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DeployId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let ok = s
            .strip_prefix("dep_")
            .is_some_and(|u| u.len() == 26 && u.bytes().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        if ok {
            Ok(DeployId(s.to_owned()))
        } else {
            Err(name_error("deploy id", s, "a deploy id is dep_ followed by 26 lowercase ULID characters"))
        }
    }
}

impl fmt::Display for DeployId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for PreviewId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// True for a secret key: `[A-Za-z_][A-Za-z0-9_]{0,255}`.
pub fn is_secret_key(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// True for a hostname: a DNS name of at most 253 characters, optionally with a leading `*.` when
/// `allow_wildcard` is set. Labels may contain uppercase letters in input; callers lowercase first.
pub fn is_hostname(s: &str, allow_wildcard: bool) -> bool {
    let body = match s.strip_prefix("*.") {
        Some(rest) if allow_wildcard => rest,
        Some(_) => return false,
        None => s,
    };
    // A name whose last label is all digits is an IP address (no top-level domain is numeric): Caddy would match
    // it as a name nobody can have a certificate for, so it is not a hostname here.
    let numeric_tld = body.rsplit('.').next().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    !body.is_empty() && s.len() <= 253 && body.split('.').all(is_dns_label) && !numeric_tld
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_target_shows_its_app_and_its_preview() {
        let app: AppName = "web".parse().unwrap();
        assert_eq!(Target::production(app.clone()).to_string(), "web");
        assert_eq!(Target::preview(app, "pr-42".parse().unwrap()).to_string(), "web:pr-42");
    }

    use super::*;

    #[test]
    fn app_names_are_dns_labels() {
        assert!("myapp".parse::<AppName>().is_ok());
        assert!("my-app-2".parse::<AppName>().is_ok());
        for bad in ["", "-a", "a-", "MyApp", "a_b", "a.b", &"a".repeat(64)] {
            assert!(bad.parse::<AppName>().is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn tags_and_digests() {
        assert_eq!("sha-abc123f".parse::<Tag>().unwrap(), Tag::Named("sha-abc123f".into()));
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(d.parse::<Tag>().unwrap(), Tag::Digest(d.clone()));
        for bad in ["", ".x", "-x", "a/b", "a:b", "sha256:abc", &"a".repeat(129)] {
            assert!(bad.parse::<Tag>().is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn image_repos_normalise() {
        let r: ImageRepo = "nginx".parse().unwrap();
        assert_eq!(r.to_string(), "docker.io/library/nginx");
        let r: ImageRepo = "you/app".parse().unwrap();
        assert_eq!(r.to_string(), "docker.io/you/app");
        let r: ImageRepo = "ghcr.io/you/myapp".parse().unwrap();
        assert_eq!((r.host(), r.path()), ("ghcr.io", "you/myapp"));
        let r: ImageRepo = "127.0.0.1:5000/demo".parse().unwrap();
        assert_eq!(r.host(), "127.0.0.1:5000");
        assert_eq!(r.with_tag(&"v1".parse().unwrap()), "127.0.0.1:5000/demo:v1");
        for bad in ["ghcr.io/you/myapp:v1", "app@sha256:00", "", "Upper/Case", "a//b"] {
            assert!(bad.parse::<ImageRepo>().is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn deploy_ids() {
        assert!("dep_01jabcdefghjkmnpqrstvwxyz0".parse::<DeployId>().is_ok());
        assert!("dep_short".parse::<DeployId>().is_err());
        assert!("01jabcdefghjkmnpqrstvwxyz0".parse::<DeployId>().is_err());
    }

    #[test]
    fn hostnames() {
        assert!(is_hostname("myapp.example.com", false));
        assert!(is_hostname("*.example.com", true));
        assert!(!is_hostname("*.example.com", false));
        assert!(!is_hostname("exa mple.com", false));
        assert!(is_secret_key("SLIP_SECRET"));
        assert!(!is_secret_key("../x"));
        assert!(!is_secret_key("1A"));
    }
}
