//! `GET /v1/apps/{name}/logs` against a real slipd, Docker, Caddy and registry: a secret the container prints is
//! redacted in the tail and in a followed stream, also across the cut of a line longer than slipd's cap; a followed
//! stream gets lines written after it started and ends when slipd shuts down; `since` excludes older lines; a bad
//! `since` is a 400 naming the parameter.
//!
//! The app's container writes lines on demand through its `/cgi-bin/say` and `/cgi-bin/env` pages (see
//! `slip_testenv::image`), reached through Caddy. Every wait polls against a deadline.

use std::time::{Duration, Instant, SystemTime};

use slip_engine::ports::MAX_LOG_LINE;
use slip_testenv::Image;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::{TOKEN, TestDaemon, app_name, web_app};

/// How long anything here may take on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(30);

/// The secret the app gets, and prints when asked.
const VALUE: &str = "logged-secret-value-0123456789";

/// A daemon with one deployed app whose `API_TOKEN` secret is [`VALUE`].
async fn deployed(prefix: &str) -> (TestDaemon, String) {
    deployed_with(prefix, &[("API_TOKEN", VALUE)]).await
}

/// A daemon with one deployed app that has `secrets`.
async fn deployed_with(prefix: &str, secrets: &[(&str, &str)]) -> (TestDaemon, String) {
    let app = app_name(prefix);
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    d.push(&Image::V1, &app, "v1");
    for (key, value) in secrets {
        d.put_secret(&app, key, value).await;
    }
    let deployed = d.deploy_and_wait(&app, "v1").await;
    assert_eq!(deployed.status, "completed", "{deployed:?}");
    (d, app)
}

/// Asks the app to print something (`say?TEXT` or `env?NAME`), retrying until Caddy gets it through.
async fn ask(d: &TestDaemon, app: &str, page: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, body) = d.through_caddy(&format!("{app}.test"), &format!("/cgi-bin/{page}")).await;
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "GET /cgi-bin/{page} through Caddy: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /v1/apps/{app}/logs?<query>` with the admin token: status and body.
pub async fn logs(d: &TestDaemon, app: &str, query: &str) -> (u16, String) {
    let response = d.http.get(d.url(&format!("/v1/apps/{app}/logs?{query}"))).bearer_auth(TOKEN).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Polls the logs until `done(body)`; returns that body.
async fn logs_until(d: &TestDaemon, app: &str, query: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, body) = logs(d, app, query).await;
        assert_eq!(status, 200, "{body}");
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}; logs?{query}:\n{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A followed logs response, read chunk by chunk.
struct Followed {
    response: reqwest::Response,
    seen: String,
}

impl Followed {
    /// Opens `?follow=true&<query>` on a client without an overall timeout (the stream outlives any).
    async fn open(d: &TestDaemon, app: &str, query: &str) -> Followed {
        let url = d.url(&format!("/v1/apps/{app}/logs?follow=true&{query}"));
        let response = reqwest::Client::new().get(url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        Followed { response, seen: String::new() }
    }

    /// Reads until everything read so far satisfies `done`; panics at the deadline or at the end of the stream.
    async fn until(&mut self, what: &str, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk()).await;
            match chunk {
                Ok(Ok(Some(bytes))) => self.seen.push_str(&String::from_utf8_lossy(&bytes)),
                other => panic!("no {what} in the followed stream ({other:?}); so far:\n{}", self.seen),
            }
        }
    }

    /// Reads to the end of the stream; panics if it does not end before the deadline.
    async fn end(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.seen.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) => return,
                other => panic!("the followed stream did not end cleanly: {other:?}; so far:\n{}", self.seen),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_printed_secret_is_redacted_in_tail_and_follow_and_follow_gets_new_lines_until_shutdown() {
    let (mut d, app) = deployed("logs-follow").await;
    let redacted = "API_TOKEN=[redacted:API_TOKEN]";

    ask(&d, &app, "env?API_TOKEN").await;
    let tail = logs_until(&d, &app, "tail=50", "the printed secret is in the tail", |b| b.contains(redacted)).await;
    assert!(!tail.contains(VALUE), "{tail}");
    assert!(tail.contains("v1: listening on 8080"), "one container: lines without a prefix:\n{tail}");

    let mut followed = Followed::open(&d, &app, "tail=50").await;
    followed.until("the lines so far", |seen| seen.contains(redacted)).await;
    let marker = format!("written-while-following-{}", &app[app.len() - 8..]);
    ask(&d, &app, &format!("say?{marker}")).await;
    ask(&d, &app, "env?API_TOKEN").await;
    followed.until("the new lines", |seen| seen.contains(&marker) && seen.matches(redacted).count() >= 2).await;
    assert!(!followed.seen.contains(VALUE), "{}", followed.seen);

    // NDJSON of the one container, chosen by its short id, names it and the output stream.
    let id = d.running_containers(&app).pop().expect("the app runs");
    let response = d
        .http
        .get(d.url(&format!("/v1/apps/{app}/logs?container={id}&tail=200")))
        .bearer_auth(TOKEN)
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let ndjson = response.text().await.unwrap();
    let lines: Vec<serde_json::Value> = ndjson.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let line = lines.iter().find(|l| l["line"] == marker.as_str()).unwrap_or_else(|| panic!("{ndjson}"));
    assert!(line["container"].as_str().is_some_and(|c| c.starts_with(&format!("slip-{app}-"))), "{line}");
    assert_eq!(line["stream"], "stdout");
    assert!(line["at"].as_str().is_some_and(|at| OffsetDateTime::parse(at, &Rfc3339).is_ok()), "{line}");
    assert!(!ndjson.contains(VALUE));

    // An open stream does not hold up a graceful shutdown, and ends with it.
    let started = Instant::now();
    d.stop().await;
    assert!(started.elapsed() < Duration::from_secs(15), "shutdown took {:?}", started.elapsed());
    followed.end().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn since_excludes_older_lines_and_a_bad_since_names_the_parameter() {
    let (d, app) = deployed("logs-since").await;
    ask(&d, &app, "say?before-the-cut").await;
    logs_until(&d, &app, "tail=50", "the first line is logged", |b| b.contains("before-the-cut")).await;
    // The line was logged before this moment, by the same clock the engine stamps lines with.
    let cut = OffsetDateTime::from(SystemTime::now()).format(&Rfc3339).unwrap();
    ask(&d, &app, "say?after-the-cut").await;

    let query = format!("since={cut}");
    let body = logs_until(&d, &app, &query, "the second line is logged", |b| b.contains("after-the-cut")).await;
    assert!(!body.contains("before-the-cut") && !body.contains("v1: starting"), "since {cut}:\n{body}");
    let hour =
        logs_until(&d, &app, "since=1h", "both lines are within the hour", |b| b.contains("after-the-cut")).await;
    assert!(hour.contains("before-the-cut") && hour.contains("v1: starting"), "{hour}");

    let response = d.http.get(d.url(&format!("/v1/apps/{app}/logs?since=yesterday"))).bearer_auth(TOKEN);
    let response = response.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!((body["code"].as_str(), body["field"].as_str()), (Some("invalid_request"), Some("since")), "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("10m") && message.contains("RFC 3339"), "the message says what is valid: {message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_across_the_cut_of_a_line_longer_than_the_cap_is_redacted() {
    // `<key>=<value>` is longer than slipd's line cap (64 KiB), with the value across the cut; the value still
    // fits a 64 KiB request body.
    let key = format!("LONG_{}", "K".repeat(95));
    let value = format!("long-{}", "0123456789abcdef".repeat(4092));
    assert!(key.len() + 1 + value.len() > MAX_LOG_LINE);
    let (d, app) = deployed_with("logs-long", &[(&key, &value)]).await;

    ask(&d, &app, &format!("env?{key}")).await;
    let redacted = format!("=[redacted:{key}]");
    let tail = logs_until(&d, &app, "tail=50", "the line is logged", |b| b.contains(&redacted)).await;
    assert!(!tail.contains("0123456789abcdef"), "{tail}");
    // The line comes as two: the cap's worth less what might begin the value (its length less one byte), then
    // the rest, with the value redacted whole.
    let shown = MAX_LOG_LINE - (value.len() - 1);
    assert!(tail.contains(&format!("\n{}\n{}{redacted}\n", &key[..shown], &key[shown..])), "{tail}");
}
