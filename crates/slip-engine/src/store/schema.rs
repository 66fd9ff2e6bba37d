//! Embedded, forward-only schema migrations versioned by `PRAGMA user_version`, and the backup taken before each.
//!
//! Each migration is one SQL file in `store/migrations/`, applied in its own `BEGIN IMMEDIATE` transaction together
//! with the `user_version` bump, so a failure leaves the previous version intact. Before each migration of a
//! non-empty database, `VACUUM INTO` writes a consistent copy to `backups/slip-v<old>-<unix seconds>.db`.
//! Released migration files are never edited (a test compares the committed v1 fixture with migration 1);
//! there are no down-migrations: restoring a backup is the way back.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// The schema version this binary writes: the number of embedded migrations.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// One embedded migration: running `sql` on a database at `version - 1` yields `version`.
struct Migration {
    version: u32,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, sql: include_str!("migrations/0001_core.sql") },
    Migration { version: 2, sql: include_str!("migrations/0002_previews_images_audit.sql") },
];

/// Migrates `conn` to [`SCHEMA_VERSION`], backing up into `backup_dir` first when given (file databases).
pub(super) fn migrate(conn: &mut Connection, backup_dir: Option<&Path>) -> Result<(), StoreError> {
    migrate_to(conn, backup_dir, SCHEMA_VERSION)
}

/// Migrates `conn` up to `target` (at most [`SCHEMA_VERSION`]). Tests use a lower target to build old schemas.
pub(super) fn migrate_to(conn: &mut Connection, backup_dir: Option<&Path>, target: u32) -> Result<(), StoreError> {
    let found = user_version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema { found, supported: SCHEMA_VERSION });
    }
    // A database that was empty when opened has nothing worth keeping, even after its first migration ran.
    let existing: bool = conn.query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master)", [], |r| r.get(0))?;
    for migration in MIGRATIONS.iter().filter(|m| m.version > found && m.version <= target) {
        if let (Some(dir), true) = (backup_dir, existing) {
            backup(conn, dir, migration.version - 1)?;
        }
        apply(conn, migration).map_err(|source| StoreError::Migration { version: migration.version, source })?;
    }
    Ok(())
}

fn user_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

fn apply(conn: &mut Connection, migration: &Migration) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Another process may have migrated between our first read and taking the write lock.
    if user_version(&tx)? >= migration.version {
        return Ok(());
    }
    tx.execute_batch(migration.sql)?;
    tx.pragma_update(None, "user_version", migration.version)?;
    tx.commit()
}

/// Writes a consistent, fsynced copy of the database to `dir/slip-v<version>-<unix seconds>.db` with mode 0600.
fn backup(conn: &Connection, dir: &Path, version: u32) -> Result<PathBuf, StoreError> {
    if !dir.exists() {
        DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|source| StoreError::Io {
            op: "create the backups directory",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    // The one place the store reads the clock: the backup's name records when it was taken.
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let path = reserve_backup_file(dir, version, seconds)?;
    let result = vacuum_into(conn, &path).and_then(|()| {
        let sync = |p: &Path| File::open(p).and_then(|f| f.sync_all());
        sync(&path).and_then(|()| sync(dir)).map_err(|source| StoreError::Io {
            op: "fsync the backup",
            path: path.clone(),
            source,
        })
    });
    if let Err(e) = result {
        // A partial copy must not look like a usable backup; removing it is best effort.
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}

/// Creates an empty, private file for the backup (VACUUM INTO accepts an empty file), picking a free name.
fn reserve_backup_file(dir: &Path, version: u32, seconds: u64) -> Result<PathBuf, StoreError> {
    let mut n = 0u32;
    loop {
        let name = match n {
            0 => format!("slip-v{version}-{seconds}.db"),
            n => format!("slip-v{version}-{seconds}-{n}.db"),
        };
        let path = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
            Ok(_) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 100 => n += 1,
            Err(source) => return Err(StoreError::Io { op: "create the backup file", path, source }),
        }
    }
}

fn vacuum_into(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let backup_err = |source| StoreError::Backup { path: path.to_path_buf(), source };
    let target = path.to_str().ok_or_else(|| backup_err(rusqlite::Error::InvalidPath(path.to_path_buf())))?;
    conn.execute("VACUUM INTO ?1", [target]).map_err(backup_err)?;
    Ok(())
}
