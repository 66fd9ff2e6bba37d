//! `[github]` in an app file: report the app's deploys as GitHub Deployments (a deployment per deploy, statuses
//! `in_progress` then `success` or `failure`).

use super::reader::{Keys, Reader, Tbl};
use super::secret::Secret;

/// Keys of `[github]`.
pub(crate) const KEYS: &[&str] = &["repository", "token", "api_url", "environment"];

/// GitHub's public API, the default `api_url`.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// Where and how an app's deploys are reported to GitHub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubDeployments {
    /// `owner/name`.
    pub repository: String,
    /// A token allowed to write deployments (`repo_deployment` scope, or `deployments: write`).
    pub token: Secret,
    /// The REST API's base URL, without a trailing slash (GitHub Enterprise: `https://HOST/api/v3`).
    pub api_url: String,
    /// The deployment environment's name.
    pub environment: String,
}

fn is_repository(s: &str) -> bool {
    let part =
        |p: &str| !p.is_empty() && p.len() <= 100 && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    matches!(s.split_once('/'), Some((owner, name)) if part(owner) && part(name))
}

/// Reads `[github]` from an app file's root table; `None` when it is absent or has problems (reported).
pub(crate) fn read(r: &mut Reader<'_>, root: &Tbl<'_>) -> Option<GithubDeployments> {
    let t = r.table(root, "github", Keys::of(KEYS))?;
    let mut ok = true;
    for key in ["repository", "token"] {
        if !r.has(&t, key) {
            r.missing(
                &t,
                key,
                Some("[github] needs repository = \"owner/name\" and token = \"${GITHUB_TOKEN}\"".into()),
            );
            ok = false;
        }
    }
    let repository = r.string(&t, "repository").and_then(|v| {
        if is_repository(&v.v) {
            Some(v.v)
        } else {
            r.invalid(&v, "is not a GitHub repository: use owner/name, e.g. acme/web", None);
            None
        }
    });
    let token = r.string(&t, "token").and_then(|v| {
        if v.v.is_empty() {
            r.invalid(
                &v,
                "is empty",
                Some("set it from a secret variable, e.g. \"${GITHUB_TOKEN}\" in slip.env".into()),
            );
            None
        } else {
            Some(Secret::new(v.v))
        }
    });
    let api_url = match r.string(&t, "api_url") {
        None => Some(DEFAULT_API_URL.to_owned()),
        Some(v) => {
            let trimmed = v.v.trim_end_matches('/').to_owned();
            let valid = (trimmed.starts_with("https://") || trimmed.starts_with("http://"))
                && trimmed.split_once("://").is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'));
            if valid {
                Some(trimmed)
            } else {
                r.invalid(&v, "is not an http:// or https:// URL", Some(format!("the default is {DEFAULT_API_URL}")));
                None
            }
        }
    };
    let environment = match r.string(&t, "environment") {
        None => Some("production".to_owned()),
        Some(v) if v.v.trim().is_empty() || v.v.len() > 255 => {
            r.invalid(&v, "must be 1-255 characters", None);
            None
        }
        Some(v) => Some(v.v),
    };
    match (repository, token, api_url, environment, ok) {
        (Some(repository), Some(token), Some(api_url), Some(environment), true) => {
            Some(GithubDeployments { repository, token, api_url, environment })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::{Problem, SourceFile, Sources, parse};

    fn parse_app(extra: &str) -> Result<Option<GithubDeployments>, String> {
        let sources = Sources {
            slip_toml: None,
            apps: vec![SourceFile {
                path: "apps/web.toml".into(),
                text: format!("[app]\nname = \"web\"\nimage = \"ghcr.io/acme/web\"\n\n{extra}"),
            }],
            env: BTreeMap::from([("GITHUB_TOKEN".to_owned(), "ghp-resolved-token".to_owned())]),
        };
        match parse(&sources) {
            Ok(l) => Ok(l.config.apps.into_values().next().unwrap().github),
            Err(p) => Err(p.iter().map(Problem::to_string).collect::<Vec<_>>().join("\n")),
        }
    }

    #[test]
    fn github_settings_are_read_with_defaults_and_checked() {
        let gh = parse_app("[github]\nrepository = \"acme/web\"\ntoken = \"${GITHUB_TOKEN}\"\n").unwrap().unwrap();
        assert_eq!((gh.repository.as_str(), gh.token.expose()), ("acme/web", "ghp-resolved-token"));
        assert_eq!((gh.api_url.as_str(), gh.environment.as_str()), (DEFAULT_API_URL, "production"));
        let ghe = parse_app(
            "[github]\nrepository = \"acme/web\"\ntoken = \"t\"\napi_url = \"https://ghe.example.com/api/v3/\"\nenvironment = \"prod-eu\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!((ghe.api_url.as_str(), ghe.environment.as_str()), ("https://ghe.example.com/api/v3", "prod-eu"));
        assert_eq!(parse_app("").unwrap(), None);
        assert!(!format!("{gh:?}").contains("ghp-resolved-token"));

        let text = parse_app("[github]\nrepository = \"acme\"\napi_url = \"ghe\"\nenviroment = \"x\"\n").unwrap_err();
        for expected in [
            "apps/web.toml:5:1: missing github.token in [github]",
            "github.repository: \"acme\" is not a GitHub repository: use owner/name",
            "github.api_url: \"ghe\" is not an http:// or https:// URL",
            "unknown key \"enviroment\" in [github] (did you mean \"environment\"?)",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }
}
