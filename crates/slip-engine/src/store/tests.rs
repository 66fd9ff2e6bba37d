//! Store tests that need its internals: query plans at 100k deploys, and the guard that keeps released
//! migrations frozen (the committed v1 fixture must equal what migration 1 creates today).
//! Behaviour through the public API is tested in `tests/store.rs`.

use std::path::Path;

use rusqlite::Connection;
use slip_core::names::DeployId;

use super::deploys::list_query;
use super::{DeployFilter, DeployStatus, Store, lock, schema};

fn did(ms: u64) -> DeployId {
    format!("dep_{}", ulid::Ulid::from_parts(ms, 7).to_string().to_lowercase()).parse().unwrap()
}

/// `EXPLAIN QUERY PLAN` details for `sql`, one line per plan node.
fn plan(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> String {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let rows = stmt.query_map(params, |r| r.get::<_, String>(3)).unwrap();
    rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
}

#[test]
fn listing_an_apps_deploys_uses_the_app_index_at_100k_rows() {
    let store = Store::open_in_memory().unwrap();
    const APPS: [&str; 10] = ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9"];
    {
        let mut conn = lock(&store.inner.writer);
        let tx = conn.transaction().unwrap();
        let mut insert = tx
            .prepare(
                "INSERT INTO deploys (id, app, \"trigger\", tag, status, created_at) \
                 VALUES (?1, ?2, 'webhook', 'v1', ?3, ?4)",
            )
            .unwrap();
        for n in 0..100_000u64 {
            let status = if n % 1000 == 0 { "queued" } else { "completed" };
            insert.execute(rusqlite::params![did(n).as_str(), APPS[(n % 10) as usize], status, n as i64]).unwrap();
        }
        drop(insert);
        tx.commit().unwrap();
    }
    assert_eq!(store.history_count().unwrap(), 100_000);

    let filter = DeployFilter {
        app: Some("a3".parse().unwrap()),
        before: Some(did(50_003)),
        limit: Some(20),
        ..DeployFilter::default()
    };
    let (sql, values, _) = list_query(&filter);
    let detail = plan(&lock(&store.inner.writer), &sql, rusqlite::params_from_iter(values));
    assert!(detail.contains("USING INDEX deploys_app_id (app=? AND id<?)"), "{detail}");
    assert!(!detail.contains("TEMP B-TREE"), "no sort step: the index yields id DESC order\n{detail}");

    let (page, next) = store.list_deploys(&filter).unwrap();
    let expected: Vec<DeployId> = (0..20).map(|i| did(49_993 - 10 * i)).collect();
    assert_eq!(page.iter().map(|d| d.id.clone()).collect::<Vec<_>>(), expected);
    assert_eq!(next, Some(did(49_803)));

    // Reconcile's and the metrics' status filters use the status index.
    let unfinished =
        format!("SELECT id FROM deploys WHERE status IN {}", super::vocab::sql_list(DeployStatus::unfinished()));
    let detail = plan(&lock(&store.inner.writer), &unfinished, []);
    assert!(detail.contains("USING INDEX deploys_status (status=?)"), "{detail}");
    assert_eq!(store.unfinished().unwrap().len(), 100);

    let reaper = "SELECT * FROM previews WHERE expires_at <= ?1 AND status != 'torn_down' ORDER BY expires_at, app, id";
    let detail = plan(&lock(&store.inner.writer), reaper, [0]);
    assert!(detail.contains("USING INDEX previews_expires_at (expires_at<?)"), "{detail}");
}

#[test]
fn released_migration_one_still_creates_the_committed_v1_fixture_schema() {
    let schema_of = |conn: &Connection| -> Vec<(String, String)> {
        let mut stmt = conn.prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
    };
    let mut fresh = Connection::open_in_memory().unwrap();
    schema::migrate_to(&mut fresh, None, 1).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/history_v1.sqlite");
    let fixture = Connection::open_with_flags(&fixture, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let version: u32 = fixture.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, 1);
    assert_eq!(
        schema_of(&fresh),
        schema_of(&fixture),
        "migrations/0001_core.sql changed after release; add a new migration instead"
    );
}

#[test]
fn a_failed_migration_rolls_back_and_keeps_the_old_version() {
    let mut conn = Connection::open_in_memory().unwrap();
    schema::migrate_to(&mut conn, None, 1).unwrap();
    // A table v2 wants to create already exists, so migration 2 fails half-way.
    conn.execute_batch("CREATE TABLE audit_log (x INTEGER)").unwrap();
    let err = schema::migrate(&mut conn, None).unwrap_err();
    assert!(matches!(err, super::StoreError::Migration { version: 2, .. }), "{err:?}");
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    let previews: i64 =
        conn.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'previews'", [], |r| r.get(0)).unwrap();
    assert_eq!((version, previews), (1, 0), "nothing of migration 2 remains");
}

#[test]
fn a_store_can_be_shared_across_tasks_and_threads() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Store>();
}
