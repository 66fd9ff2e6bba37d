//! Tests of `slip_engine::store` through its public API, against real SQLite: in memory, and in files under a
//! temporary directory (modes, WAL, migrations from the committed v1 fixture, backups, the schema snapshot).
//!
//! Query-plan checks and the "migration 1 is frozen" guard need the store's internals and live in
//! `src/store/tests.rs`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use expect_test::expect;
use rusqlite::Connection;
use slip_core::names::{AppName, DeployId, ImageRepo, PreviewId, Tag};
use slip_engine::store::{
    AppStatus, AuditEntry, AuditVerdict, DeployFilter, DeployStatus, Enqueued, EventKind, Forgotten, InstanceRole,
    InstanceRow, NewDeploy, NoteKind, PreviewRow, PreviewStatus, Replayed, Requeued, SCHEMA_VERSION, Store, StoreError,
    Switch, Trigger, Unswitch,
};

const T0: i64 = 1_800_000_000_000;

fn app(name: &str) -> AppName {
    name.parse().unwrap()
}

fn preview(id: &str) -> PreviewId {
    id.parse().unwrap()
}

/// The n-th deploy id: ULIDs one millisecond apart, so ids sort in creation order.
fn did(n: u64) -> DeployId {
    let ulid = ulid::Ulid::from_parts(T0 as u64 + n, 0xabcdef);
    format!("dep_{}", ulid.to_string().to_lowercase()).parse().unwrap()
}

fn new_deploy(n: u64, app_name: &str, preview_id: Option<&str>) -> NewDeploy {
    NewDeploy {
        id: did(n),
        app: app(app_name),
        preview_id: preview_id.map(preview),
        trigger: Trigger::Webhook,
        tag: format!("v{n}").parse().unwrap(),
        images: format!(r#"{{"{app_name}":"127.0.0.1:5000/acme/{app_name}:v{n}"}}"#),
        kind: Some("web".into()),
        strategy: Some("blue-green".into()),
        rollback_of: None,
        meta: Some(r#"{"ref":"refs/heads/main"}"#.into()),
        actor: Some(format!("app:{app_name}")),
        source_ip: Some("10.0.0.5".into()),
        created_at: T0 + n as i64,
    }
}

fn instance(id: &str, app_name: &str, preview_id: Option<&str>, deploy: &DeployId) -> InstanceRow {
    InstanceRow {
        id: id.into(),
        app: app(app_name),
        preview_id: preview_id.map(preview),
        deploy_id: deploy.clone(),
        runtime_kind: slip_engine::store::RuntimeKind::Container,
        runtime_id: String::new(),
        name: format!("slip-{app_name}-{id}"),
        role: InstanceRole::Candidate,
        ports: std::collections::BTreeMap::new(),
        created_at: T0,
        retired_at: None,
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn schema_of(conn: &Connection) -> String {
    let mut stmt = conn
        .prepare("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type DESC, name")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok(format!("-- {} {}\n{};\n", r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })
        .unwrap();
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    format!("-- user_version {version}\n{}", rows.map(Result::unwrap).collect::<String>())
}

fn statuses(store: &Store, ids: &[u64]) -> Vec<DeployStatus> {
    ids.iter().map(|n| store.deploy(&did(*n)).unwrap().unwrap().status).collect()
}

/// A short end-to-end pass over the API, run against both an in-memory and a file-backed store.
fn lifecycle(store: &Store) {
    let first = new_deploy(1, "web", None);
    assert_eq!(store.enqueue(&first, T0 + 1).unwrap(), Enqueued { status: DeployStatus::Accepted, supersedes: None });
    store.record_status(&did(1), DeployStatus::Pulling, None, None, T0 + 2).unwrap();
    store.record_event(&did(1), NoteKind::Log, "pulled 3 layers", Some(r#"{"layers":3}"#), T0 + 3).unwrap();
    store.insert_instance(&instance("i1", "web", None, &did(1))).unwrap();
    let ports = store.lease_ports("i1", 1, 20000..=20010, |_| true).unwrap();
    store.set_instance_ports("i1", &std::collections::BTreeMap::from([(8080, ports[0])])).unwrap();
    store.set_instance_runtime_id("i1", "c0ffee").unwrap();
    store.record_status(&did(1), DeployStatus::Switching, None, None, T0 + 4).unwrap();
    store
        .switch(&Switch {
            app: app("web"),
            preview: None,
            expires_at: None,
            deploy_id: did(1),
            new_instance: "i1".into(),
            old_instance: None,
            at: T0 + 5,
        })
        .unwrap();
    let seq = store.finish(&did(1), DeployStatus::Completed, None, None, T0 + 6).unwrap();
    assert_eq!(seq, 5);

    let row = store.deploy(&did(1)).unwrap().unwrap();
    assert_eq!((row.status, row.started_at, row.finished_at), (DeployStatus::Completed, Some(T0 + 1), Some(T0 + 6)));
    assert_eq!(row.meta.as_deref(), Some(r#"{"ref":"refs/heads/main"}"#));
    let events = store.events(&did(1), 0).unwrap();
    let summary: Vec<String> =
        events.iter().map(|e| format!("{} {} {} {}", e.seq, e.kind, e.status, e.message)).collect();
    assert_eq!(
        summary,
        [
            "1 status accepted accepted",
            "2 status pulling pulling",
            "3 log pulling pulled 3 layers",
            "4 status switching switching",
            "5 status completed completed"
        ]
    );
    let state = store.app_state(&app("web")).unwrap().unwrap();
    assert_eq!(
        (state.status, state.current_deploy_id, state.kind.as_deref()),
        (AppStatus::Running, Some(did(1)), Some("web"))
    );
    let live = store.instances(&app("web"), None).unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!((live[0].role, live[0].runtime_id.as_str()), (InstanceRole::Current, "c0ffee"));
    assert_eq!(store.history_count().unwrap(), 1);
    store.ping().unwrap();
}

#[test]
fn in_memory_store_runs_a_deploy_lifecycle() {
    lifecycle(&Store::open_in_memory().unwrap());
}

#[test]
fn file_store_runs_a_deploy_lifecycle_and_keeps_it_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slip.db");
    let store = Store::open(&path).unwrap();
    lifecycle(&store);
    let instance_id = store.instance_id().to_owned();
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.instance_id(), instance_id);
    assert_eq!(store.deploy(&did(1)).unwrap().unwrap().status, DeployStatus::Completed);
    assert_eq!(store.events(&did(1), 3).unwrap().len(), 2);
    assert_eq!(store.leased_ports("i1").unwrap(), [20000]);
}

#[test]
fn open_creates_a_private_directory_and_file_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("var").join("slip");
    let path = storage.join("slip.db");
    let store = Store::open(&path).unwrap();
    store.set_meta("last_caddy_etag", "\"abc\"").unwrap();

    assert_eq!(mode(&storage), 0o700);
    assert_eq!(mode(&dir.path().join("var")), 0o700);
    assert_eq!(mode(&path), 0o600);
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    assert!(wal.exists(), "a WAL database has a -wal file while open");
    assert_eq!(mode(&wal), 0o600, "SQLite gives the -wal file the database's mode");

    let conn = Connection::open(&path).unwrap();
    let journal: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!((journal.as_str(), version), ("wal", SCHEMA_VERSION));
    assert!(!storage.join("backups").exists(), "a new database has nothing to back up");

    let id = store.instance_id();
    assert!(id.len() == 16 && id.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{id}");
    assert_eq!(store.meta("instance_id").unwrap().as_deref(), Some(id));
    assert_eq!(store.meta("created_version").unwrap().as_deref(), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(store.meta("last_caddy_etag").unwrap().as_deref(), Some("\"abc\""));
    assert!(matches!(store.set_meta("instance_id", "x"), Err(StoreError::ReservedMeta { .. })));
}

#[test]
fn open_tightens_an_over_open_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slip.db");
    drop(Store::open(&path).unwrap());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(Store::open(&path).unwrap());
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn a_database_from_a_newer_slipd_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slip.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE future (x INTEGER) STRICT; PRAGMA user_version = 99;").unwrap();
    drop(conn);

    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NewerSchema { found: 99, supported: SCHEMA_VERSION }), "{err:?}");
    assert!(err.to_string().contains("created by a newer slipd"), "{err}");
    let conn = Connection::open(&path).unwrap();
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, 99);
    assert!(!dir.path().join("backups").exists());
}

#[test]
fn a_file_that_is_not_a_database_is_an_open_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slip.db");
    std::fs::write(&path, b"this is not an sqlite database, just some text long enough to have a header").unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[test]
fn v1_fixture_migrates_with_a_backup_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slip.db");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/history_v1.sqlite");
    std::fs::copy(&fixture, &path).unwrap();

    let store = Store::open(&path).unwrap();

    // The backup is the untouched v1 database.
    let backups: Vec<PathBuf> =
        std::fs::read_dir(dir.path().join("backups")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let name = backups[0].file_name().unwrap().to_str().unwrap();
    let seconds = name.strip_prefix("slip-v1-").and_then(|s| s.strip_suffix(".db")).unwrap_or_else(|| panic!("{name}"));
    assert!(seconds.parse::<u64>().is_ok(), "{name}");
    assert_eq!(mode(&backups[0]), 0o600);
    assert_eq!(mode(&dir.path().join("backups")), 0o700);
    let backup = Connection::open(&backups[0]).unwrap();
    let version: u32 = backup.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    let deploys: i64 = backup.query_row("SELECT count(*) FROM deploys", [], |r| r.get(0)).unwrap();
    assert_eq!((version, deploys), (1, 5));

    // Everything v1 held reads back through the API.
    assert_eq!(store.instance_id(), "5a1bd00d5a1bd00d");
    assert_eq!(store.history_count().unwrap(), 5);
    let web = app("web");
    let state = store.app_state(&web).unwrap().unwrap();
    assert_eq!(state.current_deploy_id.unwrap().as_str(), "dep_01hf7yx3y028t5cy4gnf6yy4hn");
    assert_eq!(state.previous_deploy_id.unwrap().as_str(), "dep_01hf7yat0028t5cy4gnf6yy4hm");
    assert_eq!((state.status, state.config_hash.as_deref()), (AppStatus::Running, Some("cfg-2")));

    let (page, next) = store.list_deploys(&DeployFilter { app: Some(web.clone()), ..Default::default() }).unwrap();
    let listed: Vec<String> = page.iter().map(|d| format!("{} {} {}", d.tag, d.status, d.trigger)).collect();
    assert_eq!(
        listed,
        [
            "pr-7-abc completed webhook",
            "v4 queued webhook",
            "v3 failed webhook",
            "v2 completed cli",
            "v1 completed webhook"
        ]
    );
    assert_eq!(next, None);
    let failed = &page[2];
    assert_eq!(failed.error_code.as_deref(), Some("unhealthy"));
    assert_eq!(failed.finished_at, Some(1_700_001_245_000));

    let queued = store.next_queued(&web, None).unwrap().unwrap();
    assert_eq!(queued.id.as_str(), "dep_01hf801qt028t5cy4gnf6yy4hq");
    assert_eq!(store.unfinished().unwrap().len(), 1, "the queued deploy survives the upgrade");

    let events = store.events(&"dep_01hf7yat0028t5cy4gnf6yy4hm".parse().unwrap(), 0).unwrap();
    assert_eq!(events.len(), 4);
    assert_eq!((events[2].kind, events[2].data.as_deref()), (EventKind::Log, Some(r#"{"layers":3}"#)));

    let live = store.all_live_instances().unwrap();
    let ids: Vec<&str> = live.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["in-web-2", "in-pr7-1"]);
    assert_eq!(store.instances(&web, Some(&preview("pr-7"))).unwrap()[0].runtime_id, "c0ffee03");
    assert_eq!(store.leased_ports("in-web-2").unwrap(), [20002]);

    let replay = store
        .record_delivery(
            [
                0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00,
                0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
            ],
            &web,
            None,
            T0,
            T0 + 1,
        )
        .unwrap();
    assert_eq!(replay, Err(Replayed { deploy_id: Some("dep_01hf801qt028t5cy4gnf6yy4hq".parse().unwrap()) }));

    // The v2 tables work on the migrated database.
    store.record_image(&web, &"127.0.0.1:5000/acme/web".parse().unwrap(), "sha256:22", None, T0).unwrap();
    assert_eq!(store.images_for(&web).unwrap().len(), 1);

    // Migrating v1 yields exactly the schema a new database gets.
    drop(store);
    let fresh_path = dir.path().join("fresh").join("slip.db");
    drop(Store::open(&fresh_path).unwrap());
    assert_eq!(schema_of(&Connection::open(&path).unwrap()), schema_of(&Connection::open(&fresh_path).unwrap()));

    // Opening again migrates nothing and takes no further backup.
    drop(Store::open(&path).unwrap());
    assert_eq!(std::fs::read_dir(dir.path().join("backups")).unwrap().count(), 1);
}

#[test]
fn schema_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slip.db");
    drop(Store::open(&path).unwrap());
    let schema = schema_of(&Connection::open(&path).unwrap());
    expect![[r#"
        -- user_version 2
        -- table apps
        CREATE TABLE apps (
            name TEXT PRIMARY KEY NOT NULL,
            kind TEXT,
            status TEXT NOT NULL,
            current_deploy_id TEXT REFERENCES deploys (id),
            previous_deploy_id TEXT REFERENCES deploys (id),
            config_hash TEXT,
            updated_at INTEGER NOT NULL
        ) STRICT;
        -- table audit_log
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at INTEGER NOT NULL,
            actor TEXT NOT NULL,
            source_ip TEXT,
            request_id TEXT,
            action TEXT NOT NULL,
            target TEXT,
            detail TEXT,
            prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
            hash BLOB NOT NULL CHECK (length(hash) = 32)
        ) STRICT;
        -- table deliveries
        CREATE TABLE deliveries (
            sig_hash BLOB PRIMARY KEY NOT NULL CHECK (length(sig_hash) = 32),
            app TEXT NOT NULL,
            deploy_id TEXT,
            received_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        ) STRICT;
        -- table deploy_events
        CREATE TABLE deploy_events (
            deploy_id TEXT NOT NULL REFERENCES deploys (id),
            seq INTEGER NOT NULL CHECK (seq >= 1),
            at INTEGER NOT NULL,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            message TEXT NOT NULL,
            data TEXT CHECK (data IS NULL OR json_valid(data)),
            PRIMARY KEY (deploy_id, seq)
        ) STRICT;
        -- table deploys
        CREATE TABLE deploys (
            id TEXT PRIMARY KEY NOT NULL,
            app TEXT NOT NULL,
            preview_id TEXT,
            "trigger" TEXT NOT NULL,
            tag TEXT NOT NULL,
            images TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(images)),
            digests TEXT CHECK (digests IS NULL OR json_valid(digests)),
            kind TEXT,
            strategy TEXT,
            status TEXT NOT NULL,
            error TEXT,
            error_code TEXT,
            attempt INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1),
            actor TEXT,
            source_ip TEXT,
            meta TEXT CHECK (meta IS NULL OR json_valid(meta)),
            plan TEXT CHECK (plan IS NULL OR json_valid(plan)),
            rollback_of TEXT,
            superseded_by TEXT,
            created_at INTEGER NOT NULL,
            started_at INTEGER,
            finished_at INTEGER
        ) STRICT;
        -- table images
        CREATE TABLE images (
            app TEXT NOT NULL,
            repository TEXT NOT NULL,
            digest TEXT NOT NULL,
            tag TEXT,
            pulled_at INTEGER NOT NULL,
            last_used_at INTEGER NOT NULL,
            PRIMARY KEY (app, repository, digest)
        ) STRICT;
        -- table instances
        CREATE TABLE instances (
            id TEXT PRIMARY KEY NOT NULL,
            app TEXT NOT NULL,
            preview_id TEXT,
            deploy_id TEXT NOT NULL REFERENCES deploys (id),
            runtime_kind TEXT NOT NULL,
            runtime_id TEXT NOT NULL DEFAULT '',
            name TEXT NOT NULL,
            role TEXT NOT NULL,
            ports TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(ports)),
            created_at INTEGER NOT NULL,
            retired_at INTEGER
        ) STRICT;
        -- table meta
        CREATE TABLE meta (
            key TEXT PRIMARY KEY NOT NULL,
            value TEXT NOT NULL
        ) STRICT;
        -- table port_leases
        CREATE TABLE port_leases (
            port INTEGER PRIMARY KEY NOT NULL CHECK (port BETWEEN 1 AND 65535),
            instance_id TEXT NOT NULL
        ) STRICT;
        -- table previews
        CREATE TABLE previews (
            app TEXT NOT NULL,
            id TEXT NOT NULL,
            status TEXT NOT NULL,
            deploy_id TEXT REFERENCES deploys (id),
            domain TEXT NOT NULL,
            sha TEXT,
            tag TEXT,
            created_at INTEGER NOT NULL,
            deployed_at INTEGER,
            expires_at INTEGER,
            torn_down_at INTEGER,
            error TEXT,
            PRIMARY KEY (app, id)
        ) STRICT;
        -- index deploys_app_id
        CREATE INDEX deploys_app_id ON deploys (app, id DESC);
        -- index deploys_status
        CREATE INDEX deploys_status ON deploys (status);
        -- index previews_expires_at
        CREATE INDEX previews_expires_at ON previews (expires_at);
    "#]]
    .assert_eq(&schema);
}

#[test]
fn enqueue_queues_behind_the_running_deploy_and_supersedes_the_queued_one() {
    let store = Store::open_in_memory().unwrap();
    let web = app("web");
    let accepted = Enqueued { status: DeployStatus::Accepted, supersedes: None };
    assert_eq!(store.enqueue(&new_deploy(1, "web", None), T0 + 1).unwrap(), accepted);
    store.record_status(&did(1), DeployStatus::Pulling, None, None, T0 + 2).unwrap();

    let queued = store.enqueue(&new_deploy(2, "web", None), T0 + 3).unwrap();
    assert_eq!(queued, Enqueued { status: DeployStatus::Queued, supersedes: None });
    let row = store.deploy(&did(2)).unwrap().unwrap();
    assert_eq!(row.started_at, None, "started_at is the time the deploy got its slot");
    let first = &store.events(&did(2), 0).unwrap()[0];
    assert_eq!(first.message, format!("queued behind {}", did(1)));

    let third = store.enqueue(&new_deploy(3, "web", None), T0 + 4).unwrap();
    assert_eq!(third, Enqueued { status: DeployStatus::Queued, supersedes: Some(did(2)) });
    assert_eq!(statuses(&store, &[1, 2, 3]), [DeployStatus::Pulling, DeployStatus::Superseded, DeployStatus::Queued]);
    let superseded = store.deploy(&did(2)).unwrap().unwrap();
    assert_eq!((superseded.superseded_by, superseded.finished_at), (Some(did(3)), Some(T0 + 4)));
    let last = store.events(&did(2), 0).unwrap().pop().unwrap();
    assert_eq!(
        (last.kind, last.status, last.message, last.data),
        (
            EventKind::Status,
            DeployStatus::Superseded,
            format!("superseded by {}", did(3)),
            Some(format!(r#"{{"superseded_by":"{}"}}"#, did(3)))
        )
    );

    // Other targets are independent: another app, and a preview of the same app.
    assert_eq!(store.enqueue(&new_deploy(4, "api", None), T0 + 5).unwrap(), accepted);
    assert_eq!(store.enqueue(&new_deploy(5, "web", Some("pr-1")), T0 + 6).unwrap(), accepted);

    // The running deploy was never superseded; the queue holds exactly one deploy for web.
    assert_eq!(store.next_queued(&web, None).unwrap().unwrap().id, did(3));
    assert_eq!(store.next_queued(&web, Some(&preview("pr-1"))).unwrap(), None);
    assert_eq!(store.waiting_targets().unwrap(), [(web.clone(), None)]);
    let counts = store.running_or_queued_count().unwrap();
    assert_eq!((counts.running, counts.queued), (3, 1));
    assert!(matches!(store.enqueue(&new_deploy(3, "web", None), T0 + 7), Err(StoreError::DeployExists { .. })));
}

#[test]
fn draining_releases_the_slot_and_promote_takes_the_queued_deploy() {
    let store = Store::open_in_memory().unwrap();
    let web = app("web");
    store.enqueue(&new_deploy(1, "web", None), T0).unwrap();
    store.enqueue(&new_deploy(2, "web", None), T0 + 1).unwrap();
    assert_eq!(store.promote_queued(&web, None, T0 + 2).unwrap(), None, "deploy 1 still holds the slot");

    store.record_status(&did(1), DeployStatus::Watching, None, None, T0 + 3).unwrap();
    assert_eq!(store.promote_queued(&web, None, T0 + 4).unwrap(), None, "watching holds the slot");

    store.record_status(&did(1), DeployStatus::Draining, None, None, T0 + 5).unwrap();
    let promoted = store.promote_queued(&web, None, T0 + 6).unwrap().unwrap();
    assert_eq!((promoted.id, promoted.status, promoted.started_at), (did(2), DeployStatus::Accepted, Some(T0 + 6)));
    assert_eq!(store.promote_queued(&web, None, T0 + 7).unwrap(), None, "nothing else is queued");

    // While deploy 1 drains and deploy 2 holds the slot, a new request queues behind deploy 2.
    let third = store.enqueue(&new_deploy(3, "web", None), T0 + 8).unwrap();
    assert_eq!(third.status, DeployStatus::Queued);
    assert_eq!(store.events(&did(3), 0).unwrap()[0].message, format!("queued behind {}", did(2)));
    let unfinished: Vec<DeployId> = store.unfinished().unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(unfinished, [did(1), did(2), did(3)]);
}

#[test]
fn concurrent_enqueues_leave_exactly_one_queued_deploy() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("slip.db")).unwrap();
    store.enqueue(&new_deploy(0, "web", None), T0).unwrap();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..10u64 {
                    let n = 1 + t * 10 + i;
                    store.enqueue(&new_deploy(n, "web", None), T0 + n as i64).unwrap();
                    store.next_queued(&app("web"), None).unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let all: Vec<DeployStatus> = (1..=40).flat_map(|n| statuses(&store, &[n])).collect();
    assert_eq!(all.iter().filter(|s| **s == DeployStatus::Queued).count(), 1, "{all:?}");
    assert_eq!(all.iter().filter(|s| **s == DeployStatus::Superseded).count(), 39);
    assert_eq!(statuses(&store, &[0]), [DeployStatus::Accepted]);
    for n in 1..=40 {
        let row = store.deploy(&did(n)).unwrap().unwrap();
        if row.status == DeployStatus::Superseded {
            let by = row.superseded_by.unwrap();
            assert!(by != row.id && store.deploy(&by).unwrap().is_some());
        }
    }
}

#[test]
fn record_status_appends_ordered_events_and_sets_started_at_once() {
    let store = Store::open_in_memory().unwrap();
    store.insert_deploy(&new_deploy(1, "web", None), DeployStatus::Queued).unwrap();
    assert_eq!(store.deploy(&did(1)).unwrap().unwrap().started_at, None);
    let steps = [
        (DeployStatus::Accepted, 10),
        (DeployStatus::Pulling, 20),
        (DeployStatus::Configuring, 30),
        (DeployStatus::Starting, 40),
        (DeployStatus::HealthChecking, 50),
    ];
    let seqs: Vec<u64> = steps
        .iter()
        .map(|(status, at)| {
            store.record_status(&did(1), *status, Some("step"), Some(r#"{"ok":true}"#), T0 + at).unwrap()
        })
        .collect();
    assert_eq!(seqs, [2, 3, 4, 5, 6]);
    assert_eq!(store.record_event(&did(1), NoteKind::Warning, "slow probe", None, T0 + 55).unwrap(), 7);
    let row = store.deploy(&did(1)).unwrap().unwrap();
    assert_eq!((row.status, row.started_at), (DeployStatus::HealthChecking, Some(T0 + 10)));

    let tail = store.events(&did(1), 5).unwrap();
    let tail: Vec<(u64, EventKind, DeployStatus, i64)> = tail.iter().map(|e| (e.seq, e.kind, e.status, e.at)).collect();
    assert_eq!(
        tail,
        [
            (6, EventKind::Status, DeployStatus::HealthChecking, T0 + 50),
            (7, EventKind::Warning, DeployStatus::HealthChecking, T0 + 55)
        ]
    );
    assert!(store.events(&did(1), 7).unwrap().is_empty());
    assert!(store.events(&did(9), 0).unwrap().is_empty());

    assert!(matches!(
        store.record_status(&did(9), DeployStatus::Pulling, None, None, T0),
        Err(StoreError::DeployNotFound { .. })
    ));
    let err = store.record_status(&did(1), DeployStatus::Completed, None, None, T0).unwrap_err();
    assert!(matches!(err, StoreError::InvalidStatus { op: "record_status", .. }), "{err:?}");
    assert!(matches!(
        store.insert_deploy(&new_deploy(2, "web", None), DeployStatus::Pulling),
        Err(StoreError::InvalidStatus { op: "insert_deploy", .. })
    ));
    assert!(matches!(
        store.record_event(&did(1), NoteKind::Log, "bad json", Some("{not json"), T0),
        Err(StoreError::Sqlite(_))
    ));
    assert_eq!(store.events(&did(1), 0).unwrap().len(), 7, "a rejected event leaves no row");
}

#[test]
fn finish_is_terminal() {
    let store = Store::open_in_memory().unwrap();
    store.enqueue(&new_deploy(1, "web", None), T0).unwrap();
    let seq = store
        .finish(&did(1), DeployStatus::Failed, Some("web-1 not healthy after 30s"), Some("unhealthy"), T0 + 9)
        .unwrap();
    assert_eq!(seq, 2);
    let row = store.deploy(&did(1)).unwrap().unwrap();
    assert_eq!(
        (row.status, row.error.as_deref(), row.error_code.as_deref(), row.finished_at),
        (DeployStatus::Failed, Some("web-1 not healthy after 30s"), Some("unhealthy"), Some(T0 + 9))
    );
    let last = store.events(&did(1), 1).unwrap().pop().unwrap();
    assert_eq!(
        (last.message.as_str(), last.data.as_deref()),
        ("web-1 not healthy after 30s", Some(r#"{"error_code":"unhealthy"}"#))
    );

    let finished =
        |r: Result<u64, StoreError>| matches!(r, Err(StoreError::Finished { status: DeployStatus::Failed, .. }));
    assert!(finished(store.finish(&did(1), DeployStatus::Completed, None, None, T0 + 10)));
    assert!(finished(store.record_status(&did(1), DeployStatus::Pulling, None, None, T0 + 10)));
    assert!(finished(store.record_event(&did(1), NoteKind::Log, "late", None, T0 + 10)));
    assert!(matches!(
        store.requeue_interrupted(&did(1), T0 + 10),
        Err(StoreError::Finished { status: DeployStatus::Failed, .. })
    ));
    assert_eq!(store.events(&did(1), 0).unwrap().len(), 2, "the terminal event stays the last one");
    assert!(matches!(
        store.finish(&did(1), DeployStatus::Draining, None, None, T0),
        Err(StoreError::InvalidStatus { op: "finish", .. })
    ));
    assert!(store.unfinished().unwrap().is_empty());
    let err = store.finish(&did(1), DeployStatus::Completed, None, None, T0 + 10).unwrap_err();
    assert_eq!(err.to_string(), format!("deploy {} already finished as failed; a terminal status is final", did(1)));
}

#[test]
fn requeue_after_interruption_retries_once_then_fails() {
    let store = Store::open_in_memory().unwrap();
    store.enqueue(&new_deploy(1, "web", None), T0).unwrap();
    store.record_status(&did(1), DeployStatus::Starting, None, None, T0 + 1).unwrap();

    assert_eq!(store.requeue_interrupted(&did(1), T0 + 2).unwrap(), Requeued::Queued { attempt: 2 });
    let row = store.deploy(&did(1)).unwrap().unwrap();
    assert_eq!((row.status, row.attempt), (DeployStatus::Queued, 2));
    assert_eq!(store.events(&did(1), 0).unwrap().pop().unwrap().message, "interrupted; queued again (attempt 2)");

    store.record_status(&did(1), DeployStatus::Pulling, None, None, T0 + 3).unwrap();
    assert_eq!(store.requeue_interrupted(&did(1), T0 + 4).unwrap(), Requeued::Failed);
    let row = store.deploy(&did(1)).unwrap().unwrap();
    assert_eq!((row.status, row.error_code.as_deref()), (DeployStatus::Failed, Some("interrupted")));

    // A newer queued deploy of the target wins over the interrupted one.
    store.enqueue(&new_deploy(2, "web", None), T0 + 5).unwrap();
    store.record_status(&did(2), DeployStatus::Configuring, None, None, T0 + 6).unwrap();
    store.enqueue(&new_deploy(3, "web", None), T0 + 7).unwrap();
    assert_eq!(store.requeue_interrupted(&did(2), T0 + 8).unwrap(), Requeued::Superseded { by: did(3) });
    assert_eq!(statuses(&store, &[2, 3]), [DeployStatus::Superseded, DeployStatus::Queued]);
}

#[test]
fn list_deploys_pages_newest_first_and_filters() {
    let store = Store::open_in_memory().unwrap();
    for n in 1..=45 {
        let (name, pr) = match n % 3 {
            0 => ("api", None),
            1 => ("web", None),
            _ => ("web", Some("pr-1")),
        };
        store.insert_deploy(&new_deploy(n, name, pr), DeployStatus::Accepted).unwrap();
    }
    store.finish(&did(44), DeployStatus::Completed, None, None, T0 + 100).unwrap();

    let mut seen = Vec::new();
    let mut filter = DeployFilter::default();
    loop {
        let (page, next) = store.list_deploys(&filter).unwrap();
        assert!(page.len() <= 20);
        seen.extend(page.into_iter().map(|d| d.id));
        match next {
            Some(before) => filter.before = Some(before),
            None => break,
        }
    }
    let expected: Vec<DeployId> = (1..=45).rev().map(did).collect();
    assert_eq!(seen, expected, "three pages of 20, 20 and 5, newest first, nothing twice");

    let web = DeployFilter { app: Some(app("web")), limit: Some(5), ..Default::default() };
    let (page, next) = store.list_deploys(&web).unwrap();
    let ids: Vec<DeployId> = page.iter().map(|d| d.id.clone()).collect();
    assert_eq!(ids, [did(44), did(43), did(41), did(40), did(38)]);
    assert_eq!(next, Some(did(38)));

    let (page, _) = store
        .list_deploys(&DeployFilter { preview: Some(preview("pr-1")), limit: Some(2), ..Default::default() })
        .unwrap();
    assert_eq!(page.iter().map(|d| d.id.clone()).collect::<Vec<_>>(), [did(44), did(41)]);

    let (page, next) =
        store.list_deploys(&DeployFilter { status: Some(DeployStatus::Completed), ..Default::default() }).unwrap();
    assert_eq!((page.len(), page[0].id.clone(), next), (1, did(44), None));

    let (page, _) = store.list_deploys(&DeployFilter { limit: Some(1000), ..Default::default() }).unwrap();
    assert_eq!(page.len(), 45, "limits above 200 are clamped, not errors");
    let (page, next) = store.list_deploys(&DeployFilter { limit: Some(0), ..Default::default() }).unwrap();
    assert_eq!((page.len(), next), (1, Some(did(45))), "a zero limit is clamped to 1");

    let tag: Tag = "v43".parse().unwrap();
    assert_eq!(store.completed_with_tag(&app("web"), &tag).unwrap(), None, "43 is accepted, not completed");
}

#[test]
fn switch_moves_pointers_and_roles_in_one_step_and_unswitch_restores_them() {
    let store = Store::open_in_memory().unwrap();
    let web = app("web");
    let at = |n: i64| T0 + n;
    for n in 1..=3 {
        store.insert_deploy(&new_deploy(n, "web", None), DeployStatus::Accepted).unwrap();
        store.insert_instance(&instance(&format!("i{n}"), "web", None, &did(n))).unwrap();
    }

    // First deploy: no old instance.
    store
        .switch(&Switch {
            app: web.clone(),
            preview: None,
            expires_at: None,
            deploy_id: did(1),
            new_instance: "i1".into(),
            old_instance: None,
            at: at(10),
        })
        .unwrap();
    store.finish(&did(1), DeployStatus::Completed, None, None, at(11)).unwrap();
    let state = store.app_state(&web).unwrap().unwrap();
    assert_eq!((state.current_deploy_id.clone(), state.previous_deploy_id.clone()), (Some(did(1)), None));
    assert_eq!((state.status, state.updated_at), (AppStatus::Running, at(10)));

    // Second deploy: old current becomes draining and previous.
    store
        .switch(&Switch {
            app: web.clone(),
            preview: None,
            expires_at: None,
            deploy_id: did(2),
            new_instance: "i2".into(),
            old_instance: Some("i1".into()),
            at: at(20),
        })
        .unwrap();
    let state = store.app_state(&web).unwrap().unwrap();
    assert_eq!((state.current_deploy_id, state.previous_deploy_id), (Some(did(2)), Some(did(1))));
    let roles = |store: &Store| -> Vec<(String, InstanceRole)> {
        store.instances(&web, None).unwrap().into_iter().map(|i| (i.id, i.role)).collect()
    };
    assert_eq!(
        roles(&store),
        [
            ("i1".into(), InstanceRole::Draining),
            ("i2".into(), InstanceRole::Current),
            ("i3".into(), InstanceRole::Candidate)
        ]
    );
    store.set_instance_role("i1", InstanceRole::Retired, at(21)).unwrap();
    store.finish(&did(2), DeployStatus::Completed, None, None, at(22)).unwrap();

    // Third deploy switches, its watch fails, and unswitch puts deploy 2 back with deploy 1 as previous.
    let switch3 = Switch {
        app: web.clone(),
        preview: None,
        expires_at: None,
        deploy_id: did(3),
        new_instance: "i3".into(),
        old_instance: Some("i2".into()),
        at: at(30),
    };
    store.switch(&switch3).unwrap();
    let state = store.app_state(&web).unwrap().unwrap();
    assert_eq!((state.current_deploy_id, state.previous_deploy_id), (Some(did(3)), Some(did(2))));
    let unswitch = Unswitch {
        app: web.clone(),
        preview: None,
        new_instance: "i3".into(),
        old_instance: Some("i2".into()),
        at: at(31),
    };
    store.unswitch(&unswitch).unwrap();
    store.unswitch(&unswitch).unwrap();
    let state = store.app_state(&web).unwrap().unwrap();
    assert_eq!((state.current_deploy_id, state.previous_deploy_id), (Some(did(2)), Some(did(1))));
    assert_eq!(roles(&store), [("i2".into(), InstanceRole::Current), ("i3".into(), InstanceRole::Draining)]);

    // A retired instance cannot take part, and a failed switch changes nothing.
    let err = store
        .switch(&Switch {
            app: web.clone(),
            preview: None,
            expires_at: None,
            deploy_id: did(1),
            new_instance: "i1".into(),
            old_instance: Some("i2".into()),
            at: at(40),
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::InstanceNotFound { ref id } if id == "i1"), "{err:?}");
    assert_eq!(store.app_state(&web).unwrap().unwrap().current_deploy_id, Some(did(2)));
    assert_eq!(roles(&store)[0], ("i2".into(), InstanceRole::Current));
}

#[test]
fn preview_switch_updates_the_preview_row() {
    let store = Store::open_in_memory().unwrap();
    let (web, pr) = (app("web"), preview("pr-7"));
    store.insert_deploy(&new_deploy(1, "web", Some("pr-7")), DeployStatus::Accepted).unwrap();
    store.insert_instance(&instance("p1", "web", Some("pr-7"), &did(1))).unwrap();
    let switch = Switch {
        app: web.clone(),
        preview: Some(pr.clone()),
        expires_at: None,
        deploy_id: did(1),
        new_instance: "p1".into(),
        old_instance: None,
        at: T0 + 5,
    };
    assert!(matches!(store.switch(&switch), Err(StoreError::PreviewNotFound { .. })));

    let row = PreviewRow {
        app: web.clone(),
        id: pr.clone(),
        status: PreviewStatus::Deploying,
        deploy_id: None,
        domain: "preview.example.com".into(),
        sha: Some("abc123f".into()),
        tag: Some("v1".parse().unwrap()),
        created_at: T0,
        deployed_at: None,
        expires_at: Some(T0 + 1000),
        torn_down_at: None,
        error: None,
    };
    store.put_preview(&row).unwrap();
    store.switch(&switch).unwrap();
    let stored = store.preview(&web, &pr).unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.deploy_id.clone(), stored.deployed_at),
        (PreviewStatus::Running, Some(did(1)), Some(T0 + 5))
    );
    assert_eq!(store.app_state(&web).unwrap(), None, "a preview does not move production pointers");
    assert_eq!(store.instances(&web, Some(&pr)).unwrap()[0].role, InstanceRole::Current);

    assert!(store.previews_expiring(T0 + 999).unwrap().is_empty());
    assert_eq!(store.previews_expiring(T0 + 1000).unwrap().len(), 1);
    store
        .put_preview(&PreviewRow { status: PreviewStatus::TornDown, torn_down_at: Some(T0 + 1001), ..stored })
        .unwrap();
    assert!(store.previews_expiring(T0 + 2000).unwrap().is_empty(), "torn down previews are not reaped again");
    assert_eq!(store.previews(Some(&web)).unwrap().len(), 1);
    assert!(store.previews(Some(&app("api"))).unwrap().is_empty());
    assert_eq!(store.previews(None).unwrap().len(), 1);
}

#[test]
fn app_rows_track_status_pointers_and_deletion() {
    let store = Store::open_in_memory().unwrap();
    let web = app("web");
    store.set_app_status(&web, AppStatus::NotDeployed, T0).unwrap();
    store.set_config_hash(&web, "cfg-1", T0 + 1).unwrap();
    for n in 1..=2 {
        store.insert_deploy(&new_deploy(n, "web", None), DeployStatus::Accepted).unwrap();
    }
    store.set_current(&web, "worker", &did(1), T0 + 2).unwrap();
    store.set_current(&web, "worker", &did(2), T0 + 3).unwrap();
    store.set_current(&web, "worker", &did(2), T0 + 4).unwrap();
    let state = store.app_state(&web).unwrap().unwrap();
    assert_eq!(
        (
            state.kind.as_deref(),
            state.status,
            state.current_deploy_id,
            state.previous_deploy_id,
            state.config_hash.as_deref()
        ),
        (Some("worker"), AppStatus::Running, Some(did(2)), Some(did(1)), Some("cfg-1"))
    );
    store.set_app_status(&web, AppStatus::Down, T0 + 5).unwrap();
    store.set_app_status(&app("api"), AppStatus::Detached, T0 + 6).unwrap();
    let all: Vec<(String, AppStatus)> =
        store.list_app_states().unwrap().into_iter().map(|s| (s.name.to_string(), s.status)).collect();
    assert_eq!(all, [("api".into(), AppStatus::Detached), ("web".into(), AppStatus::Down)]);
    assert!(
        matches!(store.set_current(&web, "web", &did(9), T0), Err(StoreError::Sqlite(_))),
        "pointers name real deploys"
    );
    assert!(store.delete_app(&web).unwrap());
    assert!(!store.delete_app(&web).unwrap());
    assert_eq!(store.app_state(&web).unwrap(), None);
    assert_eq!(store.history_count().unwrap(), 2, "deleting an app keeps its history");
}

#[test]
fn forgetting_an_app_fails_its_waiting_deploys_retires_its_instances_and_keeps_history() {
    let store = Store::open_in_memory().unwrap();
    let (web, api) = (app("web"), app("api"));
    store.insert_deploy(&new_deploy(1, "web", None), DeployStatus::Accepted).unwrap();
    store.record_status(&did(1), DeployStatus::Pulling, None, None, T0 + 1).unwrap();
    store.finish(&did(1), DeployStatus::Completed, None, None, T0 + 2).unwrap();
    store.set_current(&web, "web", &did(1), T0 + 2).unwrap();
    store.insert_instance(&instance("w1", "web", None, &did(1))).unwrap();
    store.set_instance_role("w1", InstanceRole::Current, T0 + 2).unwrap();
    store.lease_ports("w1", 1, 20000..=20009, |_| true).unwrap();
    store.insert_deploy(&new_deploy(2, "web", None), DeployStatus::Accepted).unwrap();
    store.insert_deploy(&new_deploy(3, "web", None), DeployStatus::Queued).unwrap();
    // Another app is untouched.
    store.insert_deploy(&new_deploy(4, "api", None), DeployStatus::Queued).unwrap();
    store.insert_instance(&instance("a1", "api", None, &did(4))).unwrap();
    store.lease_ports("a1", 1, 20000..=20009, |_| true).unwrap();

    let forgotten = store.forget_app(&web, T0 + 10).unwrap();
    assert_eq!(forgotten, Forgotten { existed: true, failed: vec![did(2), did(3)], retired: vec!["w1".into()] });
    for n in [2, 3] {
        let row = store.deploy(&did(n)).unwrap().unwrap();
        assert_eq!((row.status, row.error_code.as_deref()), (DeployStatus::Failed, Some("app_deleted")));
    }
    assert_eq!(store.deploy(&did(1)).unwrap().unwrap().status, DeployStatus::Completed, "history is kept");
    assert!(store.instances(&web, None).unwrap().is_empty());
    assert!(store.leased_ports("w1").unwrap().is_empty());
    assert_eq!(store.app_state(&web).unwrap(), None);
    assert_eq!(store.deploy(&did(4)).unwrap().unwrap().status, DeployStatus::Queued);
    assert_eq!(store.leased_ports("a1").unwrap().len(), 1);
    assert_eq!(store.instances(&api, None).unwrap().len(), 1);

    let again = store.forget_app(&web, T0 + 11).unwrap();
    assert_eq!(again, Forgotten::default(), "forgetting twice changes nothing");
}

#[test]
fn port_leasing_never_hands_out_a_port_twice_and_respects_the_bind_test() {
    let store = Store::open_in_memory().unwrap();
    let busy = [20001u16, 20004];
    let a = store.lease_ports("a", 2, 20000..=20009, move |p| !busy.contains(&p)).unwrap();
    assert_eq!(a, [20000, 20002]);
    let b = store.lease_ports("b", 3, 20000..=20009, move |p| !busy.contains(&p)).unwrap();
    assert_eq!(b, [20003, 20005, 20006]);

    let tested = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&tested);
    let c = store
        .lease_ports("c", 1, 20000..=20009, move |p| {
            log.lock().unwrap().push(p);
            true
        })
        .unwrap();
    assert_eq!(c, [20001]);
    assert_eq!(*tested.lock().unwrap(), [20001], "leased ports are skipped before the bind test runs");

    let err = store.lease_ports("d", 5, 20000..=20009, |_| true).unwrap_err();
    assert!(matches!(err, StoreError::PortsExhausted { wanted: 5, found: 4, start: 20000, end: 20009 }), "{err:?}");
    assert!(store.leased_ports("d").unwrap().is_empty(), "a failed lease takes nothing");
    assert!(err.to_string().contains("runtime.port_range"), "{err}");

    assert_eq!(store.release_ports("a").unwrap(), 2);
    assert_eq!(store.lease_ports("d", 2, 20000..=20009, |_| true).unwrap(), [20000, 20002]);
    assert!(store.lease_ports("e", 0, 20000..=20009, |_| true).unwrap().is_empty());

    // Retiring an instance releases its ports; orphan leases are released on demand.
    store.insert_deploy(&new_deploy(1, "web", None), DeployStatus::Accepted).unwrap();
    store.insert_instance(&instance("b", "web", None, &did(1))).unwrap();
    store.set_instance_role("b", InstanceRole::Retired, T0 + 5).unwrap();
    assert!(store.leased_ports("b").unwrap().is_empty());
    assert_eq!(store.instance("b").unwrap().unwrap().retired_at, Some(T0 + 5));
    assert!(store.all_live_instances().unwrap().is_empty());
    assert_eq!(store.release_orphan_ports().unwrap(), 3, "c and d have no live instance row");
    assert!(matches!(
        store.set_instance_role("zz", InstanceRole::Current, T0),
        Err(StoreError::InstanceNotFound { .. })
    ));
    assert!(matches!(store.set_instance_runtime_id("zz", "x"), Err(StoreError::InstanceNotFound { .. })));
    assert!(matches!(
        store.insert_instance(&instance("b", "web", None, &did(1))),
        Err(StoreError::InstanceExists { .. })
    ));
}

#[test]
fn deliveries_detect_replays_until_purged() {
    let store = Store::open_in_memory().unwrap();
    let web = app("web");
    let hash = [7u8; 32];
    assert_eq!(store.record_delivery(hash, &web, Some(&did(1)), T0, T0 + 600_000).unwrap(), Ok(()));
    assert_eq!(
        store.record_delivery(hash, &web, Some(&did(2)), T0 + 1, T0 + 600_001).unwrap(),
        Err(Replayed { deploy_id: Some(did(1)) })
    );
    assert_eq!(store.record_delivery([8; 32], &web, None, T0, T0 + 10).unwrap(), Ok(()));
    assert_eq!(store.record_delivery([8; 32], &web, None, T0, T0 + 10).unwrap(), Err(Replayed { deploy_id: None }));

    assert_eq!(store.purge_deliveries(T0 + 9).unwrap(), 0);
    assert_eq!(store.purge_deliveries(T0 + 10).unwrap(), 1);
    assert_eq!(store.record_delivery([8; 32], &web, None, T0 + 11, T0 + 20).unwrap(), Ok(()));
    assert!(store.record_delivery(hash, &web, None, T0 + 2, T0 + 3).unwrap().is_err(), "still within its window");
}

#[test]
fn images_are_recorded_refreshed_and_forgotten() {
    let store = Store::open_in_memory().unwrap();
    let web = app("web");
    let repo: ImageRepo = "127.0.0.1:5000/acme/web".parse().unwrap();
    let v1: Tag = "v1".parse().unwrap();
    store.record_image(&web, &repo, "sha256:aa", Some(&v1), T0).unwrap();
    store.record_image(&web, &repo, "sha256:bb", Some(&"v2".parse().unwrap()), T0 + 1).unwrap();
    store.record_image(&web, &repo, "sha256:aa", None, T0 + 2).unwrap();
    store.record_image(&app("api"), &"nginx".parse().unwrap(), "sha256:cc", None, T0).unwrap();

    let images = store.images_for(&web).unwrap();
    let summary: Vec<(String, Option<String>, i64, i64)> = images
        .iter()
        .map(|i| (i.digest.clone(), i.tag.as_ref().map(Tag::to_string), i.pulled_at, i.last_used_at))
        .collect();
    assert_eq!(
        summary,
        [("sha256:aa".into(), Some("v1".into()), T0, T0 + 2), ("sha256:bb".into(), Some("v2".into()), T0 + 1, T0 + 1)]
    );
    assert_eq!(images[0].repository, repo);
    let all = store.all_images().unwrap();
    assert_eq!(all[0].repository.to_string(), "docker.io/library/nginx");
    assert!(store.forget_image(&web, &repo, "sha256:aa").unwrap());
    assert!(!store.forget_image(&web, &repo, "sha256:aa").unwrap());
    assert_eq!(store.all_images().unwrap().len(), 2);
}

#[test]
fn audit_log_is_hash_chained_and_tampering_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slip.db");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.verify_audit().unwrap(), AuditVerdict::Intact { entries: 0 });
    let mut last = None;
    for n in 0..25 {
        let row = store
            .append_audit(AuditEntry {
                at: T0 + n,
                actor: "admin".into(),
                source_ip: Some("127.0.0.1".into()),
                request_id: Some(format!("req-{n}")),
                action: "secret.set".into(),
                target: Some("web/DATABASE_URL".into()),
                detail: None,
            })
            .unwrap();
        assert_eq!(row.id, n + 1);
        assert_eq!(row.prev_hash, last.map_or([0; 32], |r: [u8; 32]| r));
        last = Some(row.hash);
    }
    assert_eq!(store.verify_audit().unwrap(), AuditVerdict::Intact { entries: 25 });

    let page = store.audit_page(None, None).unwrap();
    assert_eq!((page.entries.len(), page.entries[0].id, page.next_before), (20, 25, Some(6)));
    let page = store.audit_page(None, page.next_before).unwrap();
    assert_eq!((page.entries.len(), page.entries[4].id, page.next_before), (5, 1, None));

    let conn = Connection::open(&path).unwrap();
    conn.execute("UPDATE audit_log SET target = 'web/OTHER' WHERE id = 7", []).unwrap();
    assert_eq!(store.verify_audit().unwrap(), AuditVerdict::Broken { id: 7 });
    conn.execute("UPDATE audit_log SET target = 'web/DATABASE_URL' WHERE id = 7", []).unwrap();
    assert_eq!(store.verify_audit().unwrap(), AuditVerdict::Intact { entries: 25 });
    conn.execute("DELETE FROM audit_log WHERE id = 12", []).unwrap();
    assert_eq!(store.verify_audit().unwrap(), AuditVerdict::Broken { id: 13 });
}

#[test]
fn store_errors_read_as_one_lowercase_sentence() {
    let errors = [
        StoreError::NewerSchema { found: 3, supported: 2 }.to_string(),
        StoreError::DeployNotFound { id: "dep_x".into() }.to_string(),
        StoreError::PortsExhausted { wanted: 2, found: 0, start: 1, end: 2 }.to_string(),
        StoreError::Migration { version: 2, source: rusqlite::Error::InvalidQuery }.to_string(),
    ];
    for e in &errors {
        assert!(e.chars().next().unwrap().is_lowercase() && !e.ends_with('.'), "{e}");
    }
    assert_eq!(errors[3], "schema migration to v2 failed and was rolled back");
}

#[test]
fn history_retention_deletes_old_finished_deploys_but_never_current_previous_retained_or_the_audit_log() {
    let store = Store::open_in_memory().unwrap();
    // Six completed deploys of web, one failed and one queued; the last two completed are current and previous.
    for n in 1..=8 {
        store.insert_deploy(&new_deploy(n, "web", None), DeployStatus::Queued).unwrap();
    }
    for n in 1..=6 {
        store.finish(&did(n), DeployStatus::Completed, None, None, T0 + n as i64).unwrap();
    }
    store.finish(&did(7), DeployStatus::Failed, Some("boom"), Some("unhealthy"), T0 + 7).unwrap();
    store.set_current(&app("web"), "web", &did(5), T0 + 5).unwrap();
    store.set_current(&app("web"), "web", &did(6), T0 + 6).unwrap();
    // An old completed deploy an instance row still names (a live one) is kept too.
    store.insert_instance(&instance("ins_1", "web", None, &did(1))).unwrap();
    store
        .append_audit(AuditEntry {
            at: T0,
            actor: "admin".into(),
            source_ip: None,
            request_id: None,
            action: "app.created".into(),
            target: Some("web".into()),
            detail: None,
        })
        .unwrap();

    let pruned = store.prune_history(T0 + 1_000, 3).unwrap();
    let left: Vec<u64> = (1..=8).filter(|n| store.deploy(&did(*n)).unwrap().is_some()).collect();
    // 1: an instance names it; 4, 5, 6: the newest three completed (5 previous, 6 current); 8: not finished.
    assert_eq!(left, [1, 4, 5, 6, 8], "{pruned:?}");
    assert_eq!(pruned.deploys, 3);
    assert!(pruned.events >= 6, "each deleted deploy had its queued and terminal events: {pruned:?}");
    assert!(store.events(&did(2), 0).unwrap().is_empty());
    assert_eq!(store.verify_audit().unwrap(), AuditVerdict::Intact { entries: 1 });

    // Nothing is younger than a cutoff in the past.
    assert_eq!(store.prune_history(T0, 3).unwrap().deploys, 0);
}
