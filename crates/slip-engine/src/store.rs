//! SQLite: slip's source of truth (SPEC §10). Deploys and their events, the queue, app release pointers,
//! instances, port leases, the webhook replay cache, pulled images, previews and the audit log.
//!
//! [`Store`] is a cheap-to-clone handle. It owns one writer connection behind a `std::sync::Mutex` and a small
//! pool of reader connections (file-backed databases only; an in-memory database reads through the writer), so
//! reads never wait for a write. Methods are synchronous and short: each is one small transaction, and a write
//! costs one WAL append plus one `fsync`. Calling them from async code is fine: they never await, so no lock is
//! ever held across an `.await`. Writes are serialised by the writer mutex, run in `BEGIN IMMEDIATE`
//! transactions and are committed (with `synchronous=FULL`, fsynced) before the method returns: when a method that
//! records a transition returns `Ok`, the transition survives a crash.
//!
//! Times are `i64` Unix milliseconds ([`UnixMillis`]) passed in by the caller; the store never reads the clock,
//! except to name the backup file taken before a migration (`backups/slip-v<old>-<unix seconds>.db`).
//! The only randomness is the daemon's `instance_id`, generated once when the database is created.
//!
//! This module does not decide anything about deploys beyond what must be atomic in SQL (the queue rules of
//! SPEC §7.1, the release pointers of §7.4, port uniqueness, replay detection, the audit hash chain). It does
//! not log, does not talk to Docker or Caddy, never stores secret values and does not serialise anything for the
//! wire: JSON columns are passed in and out as `String`s the caller produced.
//!
//! # Layout
//! - `schema`: embedded forward-only migrations (`store/migrations/*.sql`) and the pre-migration backup.
//! - `vocab`: the stored vocabularies ([`DeployStatus`], [`EventKind`], [`InstanceRole`], ...).
//! - `deploys`: deploys, deploy events and the per-target queue.
//! - `apps`: release pointers and the switch transaction.
//! - `instances`: instances and host-port leases.
//! - `deliveries`, `images`, `previews`, `audit`: the remaining tables.
//! - `tests`: query plans at 100k deploys and the frozen-migration guard (API tests are in `tests/store.rs`).

mod apps;
mod audit;
mod deliveries;
mod deploys;
mod images;
mod instances;
mod previews;
mod retention;
mod schema;
mod vocab;

use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::types::Type;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior};

pub use apps::{AppState, Forgotten, Switch, Unswitch};
pub use audit::{AuditEntry, AuditPage, AuditRow, AuditVerdict};
pub use deliveries::Replayed;
pub use deploys::{
    DEFAULT_PAGE, DeployFilter, DeployRow, Enqueued, EventRow, MAX_ATTEMPTS, MAX_PAGE, NewDeploy, QueueCounts,
    Requeued, Resolution,
};
pub use images::ImageRow;
pub use instances::InstanceRow;
pub use previews::{PreviewEnqueued, PreviewRequest, PreviewRow};
pub use retention::Pruned;
pub use schema::SCHEMA_VERSION;
pub use vocab::{
    AppStatus, DeployStatus, EventKind, InstanceRole, NoteKind, PreviewStatus, RuntimeKind, Trigger, UnknownValue,
};

/// Unix time in milliseconds. Every time the store keeps has this unit and is supplied by the caller.
pub type UnixMillis = i64;

/// How long a connection waits for another connection's lock before failing with "database is locked".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle reader connections kept open; more are opened on demand and closed after use.
const MAX_IDLE_READERS: usize = 4;

/// Everything that can go wrong in the store. Messages name the path, deploy or instance involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or configured.
    #[error("cannot open the database at {}", .path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A filesystem operation around the database failed (directory creation, permissions, backups).
    #[error("cannot {op} {}", .path.display())]
    Io {
        /// What was being done, e.g. "create the storage directory".
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The pre-migration backup could not be written; no migration was attempted.
    #[error("cannot back up the database to {} before migrating it; nothing was changed", .path.display())]
    Backup {
        /// The backup file that was being written.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A migration failed and was rolled back; the database is still at the previous version.
    #[error("schema migration to v{version} failed and was rolled back")]
    Migration {
        /// The version the failed migration would have produced.
        version: u32,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was migrated by a newer slipd; this binary refuses to touch it.
    #[error(
        "the database (schema v{found}) was created by a newer slipd; this slipd supports schema v{supported} or \
         older: upgrade slipd, or restore a backup from the backups directory"
    )]
    NewerSchema {
        /// `PRAGMA user_version` of the file.
        found: u32,
        /// [`SCHEMA_VERSION`] of this binary.
        supported: u32,
    },
    /// No deploy has this id.
    #[error("deploy {id} not found")]
    DeployNotFound {
        /// The id asked for.
        id: String,
    },
    /// A deploy with this id already exists.
    #[error("deploy {id} already exists; deploy ids are unique")]
    DeployExists {
        /// The duplicate id.
        id: String,
    },
    /// The deploy already has a terminal status, which is final.
    #[error("deploy {id} already finished as {status}; a terminal status is final")]
    Finished {
        /// The deploy.
        id: String,
        /// Its terminal status.
        status: DeployStatus,
    },
    /// A status was passed to an operation that does not accept it.
    #[error("{op} cannot take status {status}: expected {expected}")]
    InvalidStatus {
        /// The operation, e.g. "finish".
        op: &'static str,
        /// The status given.
        status: DeployStatus,
        /// What would be valid.
        expected: &'static str,
    },
    /// No live (non-retired) instance has this id.
    #[error("instance {id} not found (or already retired)")]
    InstanceNotFound {
        /// The id asked for.
        id: String,
    },
    /// An instance with this id already exists.
    #[error("instance {id} already exists; instance ids are unique")]
    InstanceExists {
        /// The duplicate id.
        id: String,
    },
    /// No preview row exists for this app and preview id.
    #[error("preview {preview} of app {app} not found")]
    PreviewNotFound {
        /// The app.
        app: String,
        /// The preview id.
        preview: String,
    },
    /// Not enough host ports are free in the configured range.
    #[error(
        "only {found} of the {wanted} host ports needed are free in {start}-{end}; widen runtime.port_range or \
         stop what holds them"
    )]
    PortsExhausted {
        /// Ports asked for.
        wanted: usize,
        /// Ports that were free.
        found: usize,
        /// First port of the range.
        start: u16,
        /// Last port of the range.
        end: u16,
    },
    /// `set_meta` was asked to overwrite a key the store owns.
    #[error("meta key {key} is written only by the store and kept forever; choose another key")]
    ReservedMeta {
        /// The key.
        key: String,
    },
    /// Any other SQLite failure (I/O error, full disk, corrupt file, a stored value that does not parse).
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
}

impl StoreError {
    /// True when the database cannot take writes right now (full disk, read-only or failing storage, a lock held
    /// too long): the request may succeed later, so the API answers 503 `storage_unavailable`, not 500.
    pub fn is_storage_unavailable(&self) -> bool {
        use rusqlite::ErrorCode as C;
        let sqlite = match self {
            StoreError::Sqlite(e) | StoreError::Open { source: e, .. } => e,
            StoreError::Io { .. } => return true,
            _ => return false,
        };
        matches!(
            sqlite.sqlite_error_code(),
            Some(C::DiskFull | C::ReadOnly | C::SystemIoFailure | C::CannotOpen | C::DatabaseBusy | C::DatabaseLocked)
        )
    }
}

/// A handle to the database. Clones share the same connections.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.inner.path).field("instance_id", &self.inner.instance_id).finish()
    }
}

struct Inner {
    /// The only connection that writes. Held for one transaction at a time, never across an `.await`.
    writer: Mutex<Connection>,
    /// Idle read-only connections; `None` for an in-memory database (reads use the writer).
    readers: Option<Mutex<Vec<Connection>>>,
    /// The database file, `None` when in memory.
    path: Option<PathBuf>,
    /// `meta.instance_id`, read once at open.
    instance_id: String,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it to [`SCHEMA_VERSION`].
    ///
    /// A missing parent directory is created with mode 0700 and a missing file with mode 0600; an existing file
    /// readable by group or others is tightened to 0600 (SQLite gives its `-wal` and `-shm` files the same mode).
    /// Connections use WAL, `synchronous=FULL`, `foreign_keys=ON` and a 5 s busy timeout. Before each migration of
    /// a non-empty database, a copy is written to `<dir>/backups/slip-v<old>-<unix seconds>.db` (0600).
    /// A database whose schema is newer than this binary is refused with [`StoreError::NewerSchema`].
    ///
    /// This may take a while (a backup and a migration after an upgrade); call it at start-up, before serving.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.exists() {
            DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(|source| StoreError::Io {
                op: "create the storage directory",
                path: dir.clone(),
                source,
            })?;
        }
        ensure_private_file(path)?;
        let open_err = |source| StoreError::Open { path: path.to_path_buf(), source };
        let mut writer = Connection::open(path).map_err(open_err)?;
        configure(&writer, Access::ReadWrite).map_err(open_err)?;
        schema::migrate(&mut writer, Some(&dir.join("backups")))?;
        let instance_id = init_meta(&mut writer)?;
        let reader = open_reader(path).map_err(open_err)?;
        Ok(Store {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                readers: Some(Mutex::new(vec![reader])),
                path: Some(path.to_path_buf()),
                instance_id,
            }),
        })
    }

    /// Opens a fresh in-memory database at [`SCHEMA_VERSION`]; for tests. Reads and writes share one connection.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open { path: PathBuf::from(":memory:"), source };
        let mut writer = Connection::open_in_memory().map_err(open_err)?;
        configure(&writer, Access::ReadWrite).map_err(open_err)?;
        schema::migrate(&mut writer, None)?;
        let instance_id = init_meta(&mut writer)?;
        Ok(Store { inner: Arc::new(Inner { writer: Mutex::new(writer), readers: None, path: None, instance_id }) })
    }

    /// This daemon's identity (`meta.instance_id`): 16 lowercase hex characters created with the database and
    /// kept forever. Containers carry it as the `slip.instance` label, so GC only ever touches its own.
    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    /// The database file, or `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Checks that the database answers a read and that the writer is usable (for `/healthz`).
    pub fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| Ok(conn.query_row("SELECT count(*) FROM meta", [], |_| Ok(()))?))?;
        self.write(|tx| Ok(tx.query_row("SELECT count(*) FROM meta", [], |_| Ok(()))?))
    }

    /// A value from the `meta` table (`instance_id`, `created_version`, `last_caddy_etag`, ...).
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.read(|conn| Ok(conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?))
    }

    /// Sets a value in the `meta` table. `instance_id` and `created_version` are refused: they are kept forever.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        if matches!(key, "instance_id" | "created_version") {
            return Err(StoreError::ReservedMeta { key: key.to_owned() });
        }
        self.write(|tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )?;
            Ok(())
        })
    }

    /// Runs `f` inside one `BEGIN IMMEDIATE` transaction on the writer and commits it; an `Err` from `f` (or a
    /// panic) rolls it back.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut conn = lock(&self.inner.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Runs `f` on an idle reader connection (the writer for an in-memory store). A single statement always sees
    /// one consistent snapshot; `f` opens a transaction if it needs more than one.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let (Some(pool), Some(path)) = (&self.inner.readers, &self.inner.path) else {
            return f(&lock(&self.inner.writer));
        };
        let idle = lock(pool).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open_reader(path).map_err(|source| StoreError::Open { path: path.clone(), source })?,
        };
        let result = f(&conn);
        let mut idle = lock(pool);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        result
    }
}

/// Whether a connection may write.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
}

/// Locks a mutex, recovering from poisoning: a panic inside a transaction has already rolled it back.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Applies the connection settings of SPEC §10.
fn configure(conn: &Connection, access: Access) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if access == Access::ReadWrite {
        // An in-memory database answers "memory"; a file answers "wal" once the switch succeeded.
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if mode != "wal" && mode != "memory" {
            return Err(rusqlite::Error::InvalidParameterName(format!(
                "journal_mode is {mode}; slip needs wal (is the file on a filesystem without shared memory?)"
            )));
        }
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    if access == Access::ReadOnly {
        conn.pragma_update(None, "query_only", "ON")?;
    }
    Ok(())
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    configure(&conn, Access::ReadOnly)?;
    Ok(conn)
}

/// Creates the database file with mode 0600 if it is missing, or tightens an over-open mode to 0600.
fn ensure_private_file(path: &Path) -> Result<(), StoreError> {
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let io_err = |source| StoreError::Io { op: "set mode 0600 on", path: path.to_path_buf(), source };
            let mode = fs::metadata(path).map_err(io_err)?.permissions().mode();
            if mode & 0o077 != 0 {
                fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_err)?;
            }
            Ok(())
        }
        Err(source) => Err(StoreError::Io { op: "create the database file", path: path.to_path_buf(), source }),
    }
}

/// Writes `instance_id` and `created_version` the first time, and returns the instance id.
fn init_meta(conn: &mut Connection) -> Result<String, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let fresh = format!("{:016x}", rand::random::<u64>());
    tx.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('instance_id', ?1)", [&fresh])?;
    tx.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('created_version', ?1)", [env!("CARGO_PKG_VERSION")])?;
    let id: String = tx.query_row("SELECT value FROM meta WHERE key = 'instance_id'", [], |r| r.get(0))?;
    tx.commit()?;
    Ok(id)
}

/// Reads a column holding a validated name (`AppName`, `DeployId`, `Tag`, ...) and parses it.
fn parsed<T>(row: &Row<'_>, column: &str) -> rusqlite::Result<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: String = row.get(column)?;
    let index = row.as_ref().column_index(column)?;
    text.parse().map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e)))
}

/// Like [`parsed`] for a nullable column.
fn parsed_opt<T>(row: &Row<'_>, column: &str) -> rusqlite::Result<Option<T>>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: Option<String> = row.get(column)?;
    let index = row.as_ref().column_index(column)?;
    text.map(|t| t.parse().map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e))))
        .transpose()
}

#[cfg(test)]
mod tests;
