//! Images slip pulled, per app (SPEC §12, retention and pruning). Only these are ever pruned; images slip did not
//! pull never get a row. This module records and forgets; choosing what to prune is the caller's job.

use rusqlite::{Connection, Row, params};
use slip_core::names::{AppName, ImageRepo, Tag};

use super::{Store, StoreError, UnixMillis, parsed, parsed_opt};

/// An `images` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRow {
    /// The app that pulled it.
    pub app: AppName,
    /// The normalised repository.
    pub repository: ImageRepo,
    /// `sha256:…`.
    pub digest: String,
    /// The tag it was last pulled or used as.
    pub tag: Option<Tag>,
    /// First pull.
    pub pulled_at: UnixMillis,
    /// Last pull or use by a deploy.
    pub last_used_at: UnixMillis,
}

impl Store {
    /// Records that `app` pulled or used `repository@digest`: inserts it (`pulled_at = at`) or refreshes its tag
    /// and `last_used_at`.
    pub fn record_image(
        &self,
        app: &AppName,
        repository: &ImageRepo,
        digest: &str,
        tag: Option<&Tag>,
        at: UnixMillis,
    ) -> Result<(), StoreError> {
        let repository = repository.to_string();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO images (app, repository, digest, tag, pulled_at, last_used_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT (app, repository, digest) DO UPDATE SET \
                 tag = coalesce(excluded.tag, tag), last_used_at = excluded.last_used_at",
                params![app.as_str(), repository, digest, tag.map(Tag::as_str), at],
            )?;
            Ok(())
        })
    }

    /// The images an app pulled, most recently used first.
    pub fn images_for(&self, app: &AppName) -> Result<Vec<ImageRow>, StoreError> {
        self.read(|conn| {
            rows(conn, "SELECT * FROM images WHERE app = ?1 ORDER BY last_used_at DESC, digest", [app.as_str()])
        })
    }

    /// Every image slip pulled, by app, most recently used first.
    pub fn all_images(&self) -> Result<Vec<ImageRow>, StoreError> {
        self.read(|conn| rows(conn, "SELECT * FROM images ORDER BY app, last_used_at DESC, digest", []))
    }

    /// Forgets a pruned image; returns whether it was recorded.
    pub fn forget_image(&self, app: &AppName, repository: &ImageRepo, digest: &str) -> Result<bool, StoreError> {
        let repository = repository.to_string();
        self.write(|tx| {
            Ok(tx.execute(
                "DELETE FROM images WHERE app = ?1 AND repository = ?2 AND digest = ?3",
                params![app.as_str(), repository, digest],
            )? > 0)
        })
    }
}

fn rows(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<ImageRow>, StoreError> {
    Ok(conn.prepare(sql)?.query_map(params, image_row)?.collect::<Result<_, _>>()?)
}

fn image_row(r: &Row<'_>) -> rusqlite::Result<ImageRow> {
    Ok(ImageRow {
        app: parsed(r, "app")?,
        repository: parsed(r, "repository")?,
        digest: r.get("digest")?,
        tag: parsed_opt(r, "tag")?,
        pulled_at: r.get("pulled_at")?,
        last_used_at: r.get("last_used_at")?,
    })
}
