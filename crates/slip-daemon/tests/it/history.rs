//! History at scale (SPEC §6.3, §6.5): 100k deploy rows, inserted straight into slipd's database in one
//! transaction, paged through `GET /v1/deploys` newest first with `limit` and `before`.

use std::time::{Duration, Instant};

use slip_api::DeployList;

use crate::support::{TOKEN, TestDaemon, app_name, web_app};

/// Rows inserted (half for the app under test, half for another app).
const ROWS: u32 = 100_000;

#[tokio::test(flavor = "multi_thread")]
async fn history_pages_through_100k_deploys_newest_first() {
    let app = app_name("hist");
    let other = format!("{app}-other");
    let a = app.clone();
    let d = TestDaemon::start(|reg| vec![(a.clone(), web_app(&a, reg, ""))], "").await;

    let started = Instant::now();
    let db = rusqlite::Connection::open(d.storage().join("slip.db")).expect("open slip.db");
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
         INSERT INTO deploys (id, app, \"trigger\", tag, images, kind, strategy, status, attempt, created_at,
                              started_at, finished_at)
         SELECT printf('dep_%026d', i), CASE i % 2 WHEN 0 THEN '{app}' ELSE '{other}' END, 'webhook', 'v' || i, '{{}}',
                'web', 'blue-green', CASE WHEN i % 7 = 0 THEN 'failed' ELSE 'completed' END, 1,
                1700000000000 + i * 1000, 1700000000000 + i * 1000, 1700000000000 + i * 1000 + 500
         FROM n;
         COMMIT;"
    ))
    .expect("bulk insert");
    drop(db);
    let inserted = started.elapsed();

    // Every page of the app's 50k deploys, newest first, each page continuing where the last ended.
    let started = Instant::now();
    let mut ids: Vec<String> = Vec::new();
    let mut before: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = d.url(&format!("/v1/deploys?app={app}&limit=200"));
        if let Some(b) = &before {
            url.push_str(&format!("&before={b}"));
        }
        let r = d.http.get(url).bearer_auth(TOKEN).send().await.unwrap();
        assert!(r.status().is_success(), "page {pages}: {}", r.status());
        let page: DeployList = r.json().await.unwrap();
        pages += 1;
        assert!(page.deploys.len() <= 200);
        assert!(page.deploys.iter().all(|dep| dep.app == app), "only {app}");
        if let (Some(last), Some(next)) = (page.deploys.last(), &page.next_before) {
            assert_eq!(&last.deploy_id, next, "next_before is the last id of the page");
        }
        ids.extend(page.deploys.into_iter().map(|dep| dep.deploy_id));
        match page.next_before {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    let paged = started.elapsed();
    assert_eq!(ids.len(), (ROWS / 2) as usize, "every deploy of {app} once");
    assert_eq!(pages, ROWS / 2 / 200, "full pages, and the last one says there is no next");
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "strictly newest first across pages");
    assert_eq!(ids.first().map(String::as_str), Some(format!("dep_{:026}", ROWS).as_str()));
    assert_eq!(ids.last().map(String::as_str), Some(format!("dep_{:026}", 2).as_str()));

    // Unfiltered and status-filtered pages use the same cursor.
    let r = d.http.get(d.url("/v1/deploys?limit=3&status=failed")).bearer_auth(TOKEN).send().await.unwrap();
    let page: DeployList = r.json().await.unwrap();
    let got: Vec<&str> = page.deploys.iter().map(|dep| dep.deploy_id.as_str()).collect();
    let newest_failed = ROWS - ROWS % 7;
    let want: Vec<String> = (0..3).map(|k| format!("dep_{:026}", newest_failed - 7 * k)).collect();
    assert_eq!(got, want);
    assert_eq!(page.next_before.as_deref(), Some(want[2].as_str()));

    eprintln!("history: inserted {ROWS} rows in {inserted:?}; paged {pages} pages of {app} in {paged:?}");
    assert!(paged < Duration::from_secs(60), "paging 50k deploys took {paged:?}");
}
