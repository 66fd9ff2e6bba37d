//! `slip logs <app> [--follow] [--since DUR|TIME] [--tail N] [--container NAME] [--preview ID]`: container logs through
//! `GET /v1/apps/{app}/logs`, redacted by slipd (SPEC §15).
//!
//! Lines are printed as they arrive, exactly as slipd sends them: plain lines (prefixed with the container's name
//! when the app has several), or with `--json` the API's NDJSON, one `{"at","stream","container","line"}` object
//! per line. `--follow` runs until the containers stop or Ctrl-C, which ends it cleanly with exit code 0, as does
//! a reader that goes away (`slip logs web -f | head`). slipd validates `--since` and `--tail`; its answer is the
//! error shown.

use std::io::Write;

use futures::StreamExt;

use crate::client::{Client, Failure, encode, exit};

/// The arguments of `slip logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// App name.
    app: String,
    /// Keep printing new lines as they are written, until the containers stop or Ctrl-C.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Only lines written since a duration ago (10m, 1h30m) or since an RFC 3339 time.
    #[arg(long, value_name = "DUR|TIME")]
    since: Option<String>,
    /// Lines per container, 0 to 10000 [default: 200, or every line with --since].
    #[arg(long, value_name = "N")]
    tail: Option<usize>,
    /// Only this container (its name, or at least 12 characters of its id).
    #[arg(long, value_name = "NAME")]
    container: Option<String>,
    /// The containers of this preview instead of production's.
    #[arg(long, value_name = "ID")]
    preview: Option<String>,
}

/// Runs `slip logs`; returns the exit code.
pub async fn run(client: &Client, args: LogsArgs, json: bool) -> Result<u8, Failure> {
    let accept = if json { "application/x-ndjson" } else { "text/plain" };
    let mut body = client.get_admin_stream(&path(&args), accept).await?;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut stdout = std::io::stdout().lock();
    let mut any = false;
    loop {
        let chunk = tokio::select! {
            chunk = body.next() => chunk,
            _ = &mut interrupted => return Ok(exit::OK),
        };
        match chunk {
            Some(Ok(bytes)) => {
                any |= !bytes.is_empty();
                // A closed stdout means the reader has what it wanted.
                if stdout.write_all(&bytes).and_then(|()| stdout.flush()).is_err() {
                    return Ok(exit::OK);
                }
            }
            Some(Err(error)) => {
                return Err(Failure::new(
                    format!("the log stream from slipd broke off: {error}"),
                    Some("slipd's log says why; run the command again to resume (--since helps)".into()),
                    exit::API,
                ));
            }
            None => {
                if !any && !json {
                    // On stderr, so a script reading stdout still sees an empty log.
                    eprintln!("(no log lines yet for {})", args.app);
                }
                return Ok(exit::OK);
            }
        }
    }
}

/// The request path with its query.
fn path(args: &LogsArgs) -> String {
    let mut query = Vec::new();
    if args.follow {
        query.push("follow=true".to_owned());
    }
    if let Some(since) = &args.since {
        query.push(format!("since={}", encode(since)));
    }
    if let Some(tail) = args.tail {
        query.push(format!("tail={tail}"));
    }
    if let Some(container) = &args.container {
        query.push(format!("container={}", encode(container)));
    }
    if let Some(preview) = &args.preview {
        query.push(format!("preview={}", encode(preview)));
    }
    let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
    format!("/v1/apps/{}/logs{query}", encode(&args.app))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_the_query() {
        let args = |follow, since: Option<&str>, tail, container: Option<&str>| LogsArgs {
            app: "web".into(),
            follow,
            since: since.map(str::to_owned),
            tail,
            container: container.map(str::to_owned),
            preview: None,
        };
        assert_eq!(path(&args(false, None, None, None)), "/v1/apps/web/logs");
        assert_eq!(
            path(&args(true, Some("2025-01-31T12:00:00+01:00"), Some(0), Some("slip-web-1"))),
            "/v1/apps/web/logs?follow=true&since=2025-01-31T12%3A00%3A00%2B01%3A00&tail=0&container=slip-web-1"
        );
    }
}
