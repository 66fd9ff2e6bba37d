//! The signed webhook: SPEC §6.2's checks against a real slipd.

use slip_core::signature::{self, Signed};

use crate::support::{SECRET, TestDaemon, app_name, web_app};

async fn daemon() -> (TestDaemon, String) {
    let app = app_name("hook");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;
    (d, app)
}

async fn post(d: &TestDaemon, body: &str, headers: &[(&str, String)]) -> (u16, serde_json::Value) {
    let mut req = d.http.post(d.url("/v1/deploy")).header("content-type", "application/json").body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_app_and_bad_signature_get_the_same_401() {
    let (d, app) = daemon().await;
    let (s1, b1) = d.webhook("no-such-app", "v1", SECRET).await;
    let (s2, b2) = d.webhook(&app, "v1", "wrong-key").await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(b1, b2, "the answer never says whether the app exists");
    assert_eq!(b1["code"], "invalid_signature");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_and_malformed_signatures_are_refused() {
    let (d, app) = daemon().await;
    let body = format!(r#"{{"app":"{app}","tag":"v1"}}"#);
    let (s, b) = post(&d, &body, &[]).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("missing_signature")));
    let (s, b) = post(&d, &body, &[("x-slip-signature", "sha256=nothex".into())]).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("invalid_signature")));
    let sig = signature::header_value(SECRET.as_bytes(), &Signed::LegacyDeploy { body: body.as_bytes() });
    let (s, b) = post(&d, &body, &[("x-slip-signature", sig.clone()), ("x-slip-timestamp", "soon".into())]).await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_timestamp")));
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_body_gets_413_before_reading() {
    let (d, app) = daemon().await;
    let body = format!(r#"{{"app":"{app}","tag":"v1","meta":{{"x":"{}"}}}}"#, "a".repeat(70 * 1024));
    let (s, b) = post(&d, &body, &[("x-slip-signature", format!("sha256={}", "0".repeat(64)))]).await;
    assert_eq!((s, b["code"].as_str()), (413, Some("body_too_large")));
}

#[tokio::test(flavor = "multi_thread")]
async fn replayed_timestamped_signature_is_refused() {
    let (d, app) = daemon().await;
    d.push(&slip_testenv::Image::V1, &app, "v1");
    let body = format!(r#"{{"app":"{app}","tag":"v1"}}"#);
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
    let sig = signature::header_value(SECRET.as_bytes(), &Signed::Deploy { timestamp: &ts, body: body.as_bytes() });
    let headers = [("x-slip-signature", sig), ("x-slip-timestamp", ts)];
    let (s1, first) = post(&d, &body, &headers).await;
    assert_eq!(s1, 202, "{first}");
    let (s2, again) = post(&d, &body, &headers).await;
    assert_eq!((s2, again["code"].as_str()), (409, Some("replayed")));
    assert_eq!(again["deploy_id"], first["deploy_id"]);

    // A timestamp outside the skew window is refused even with a valid MAC.
    let old = "1000000000".to_owned();
    let sig = signature::header_value(SECRET.as_bytes(), &Signed::Deploy { timestamp: &old, body: body.as_bytes() });
    let (s3, stale) = post(&d, &body, &[("x-slip-signature", sig), ("x-slip-timestamp", old)]).await;
    assert_eq!((s3, stale["code"].as_str()), (401, Some("stale_timestamp")));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tag_is_400_with_the_field() {
    let (d, app) = daemon().await;
    let (s, b) = d.webhook(&app, "bad tag!", SECRET).await;
    assert_eq!((s, b["code"].as_str(), b["field"].as_str()), (400, Some("invalid_tag"), Some("tag")));
}

/// The original README's CI step, run verbatim through a shell: openssl signs, curl posts.
#[tokio::test(flavor = "multi_thread")]
async fn original_readme_openssl_and_curl_example_deploys() {
    let (d, app) = daemon().await;
    d.push(&slip_testenv::Image::V1, &app, "sha-abc123f");
    let script = format!(
        r#"PAYLOAD='{{"app":"{app}","tag":"sha-abc123f"}}'
SIG=$(echo -n "$PAYLOAD" | openssl dgst -sha256 -hmac "$SLIP_SECRET" | cut -d' ' -f2)

curl -s -X POST {url}/v1/deploy \
  -H "Content-Type: application/json" \
  -H "X-Slip-Signature: sha256=$SIG" \
  -d "$PAYLOAD""#,
        url = d.url("")
    );
    let out = std::process::Command::new("bash").arg("-c").arg(&script).env("SLIP_SECRET", SECRET).output().unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(answer["status"], "accepted", "{answer}");
    assert_eq!(answer["tag"], "sha-abc123f");
    let id = answer["deploy_id"].as_str().unwrap();
    assert!(id.starts_with("dep_") && id.len() == 30, "{id}");
    let done = d.wait_deploy(id, std::time::Duration::from_secs(60)).await;
    assert_eq!(done.status, "completed", "{done:?}");
    assert_eq!(d.through_caddy(&format!("{app}.test"), "/version").await.1, "v1");
}
