-- slip schema v1: the core a deploy needs (SPEC §10).
-- Released: never edit this file; add a new migration instead (docs/storage.md, "Migration policy").
-- Every table is STRICT; times are INTEGER Unix milliseconds; JSON is TEXT checked with json_valid.

CREATE TABLE meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

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

CREATE INDEX deploys_app_id ON deploys (app, id DESC);
CREATE INDEX deploys_status ON deploys (status);

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

CREATE TABLE apps (
    name TEXT PRIMARY KEY NOT NULL,
    kind TEXT,
    status TEXT NOT NULL,
    current_deploy_id TEXT REFERENCES deploys (id),
    previous_deploy_id TEXT REFERENCES deploys (id),
    config_hash TEXT,
    updated_at INTEGER NOT NULL
) STRICT;

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

CREATE TABLE port_leases (
    port INTEGER PRIMARY KEY NOT NULL CHECK (port BETWEEN 1 AND 65535),
    instance_id TEXT NOT NULL
) STRICT;

CREATE TABLE deliveries (
    sig_hash BLOB PRIMARY KEY NOT NULL CHECK (length(sig_hash) = 32),
    app TEXT NOT NULL,
    deploy_id TEXT,
    received_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
