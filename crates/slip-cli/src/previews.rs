//! `slip previews list [APP]` and `slip previews teardown APP (ID | --all)` (SPEC §15): preview environments over
//! `/v1/previews*`. With an app, requests are signed with `--secret` when given (CI tears down its own previews),
//! else they use `--token`; the list of every app's previews needs the admin token.

use clap::Subcommand;
use slip_api::time::parse_rfc3339;
use slip_api::{Preview, PreviewList, PreviewTornDown, PreviewsTornDown};

use crate::client::{Client, Failure, encode, exit};
use crate::table::{Table, truncate};

/// `slip previews …`.
#[derive(Debug, Subcommand)]
pub enum PreviewsCommand {
    /// List previews (of one app, or of every app with the admin token), torn-down ones included.
    List {
        /// Only this app's.
        app: Option<String>,
    },
    /// Tear a preview down: its route, containers, volumes and ports.
    Teardown {
        /// The app.
        app: String,
        /// The preview id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every live preview of the app.
        #[arg(long)]
        all: bool,
    },
}

/// Runs a `slip previews` command.
pub async fn run(client: &Client, command: PreviewsCommand, json: bool) -> Result<u8, Failure> {
    match command {
        PreviewsCommand::List { app } => {
            let previews: Vec<Preview> = match &app {
                Some(app) => client.get_signed(&format!("/v1/previews/{}", encode(app))).await?,
                None => client.get_admin::<PreviewList>("/v1/previews").await?.previews,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&previews).unwrap_or_default());
            } else {
                table(&previews, now_ms()).print();
            }
            Ok(exit::OK)
        }
        PreviewsCommand::Teardown { app, id: Some(id), all: false } => {
            let path = format!("/v1/previews/{}/{}", encode(&app), encode(&id));
            let answer: PreviewTornDown = client.delete_signed(&path).await?;
            if json {
                println!("{}", serde_json::to_string(&answer).unwrap_or_default());
            } else if answer.torn_down {
                println!("preview {id} of {app} torn down");
            } else {
                println!("preview {id} of {app} was not live; nothing to tear down");
            }
            Ok(exit::OK)
        }
        PreviewsCommand::Teardown { app, .. } => {
            let answer: PreviewsTornDown = client.delete_signed(&format!("/v1/previews/{}", encode(&app))).await?;
            if json {
                println!("{}", serde_json::to_string(&answer).unwrap_or_default());
            } else if answer.torn_down.is_empty() {
                println!("{app} had no live preview");
            } else {
                println!("torn down: {}", answer.torn_down.join(", "));
            }
            Ok(exit::OK)
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// APP, PREVIEW, STATUS, TAG, AGE, EXPIRES, URL.
fn table(previews: &[Preview], now: i64) -> Table {
    let mut table = Table::new(&["APP", "PREVIEW", "STATUS", "TAG", "AGE", "EXPIRES", "URL"]);
    for p in previews {
        let age = p.deployed_at.as_deref().and_then(parse_rfc3339).map_or("-".into(), |at| span(now - at));
        let expires = match (p.status.as_str(), p.expires_at.as_deref().and_then(parse_rfc3339)) {
            ("torn_down", _) | (_, None) => "-".to_owned(),
            (_, Some(at)) if at <= now => "now".to_owned(),
            (_, Some(at)) => format!("in {}", span(at - now)),
        };
        table.row(vec![
            truncate(&p.app, 24),
            truncate(&p.preview_id, 24),
            p.status.clone(),
            truncate(p.tag.as_deref().unwrap_or("-"), 24),
            age,
            expires,
            p.url.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    table
}

/// A rough span: `45s`, `12m`, `5h`, `3d`.
fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_short() {
        assert_eq!(
            (span(5_000), span(125_000), span(7_200_000), span(3 * 86_400_000)),
            ("5s".into(), "2m".into(), "2h".into(), "3d".into())
        );
    }
}
