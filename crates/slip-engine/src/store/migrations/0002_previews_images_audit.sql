-- slip schema v2: previews, pulled images and the hash-chained audit log (SPEC §10, §12, §13, §16).
-- Released: never edit this file; add a new migration instead (docs/storage.md, "Migration policy").

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

CREATE INDEX previews_expires_at ON previews (expires_at);

CREATE TABLE images (
    app TEXT NOT NULL,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    tag TEXT,
    pulled_at INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    PRIMARY KEY (app, repository, digest)
) STRICT;

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
