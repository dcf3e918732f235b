//! The SQL schema: the tables, their append-only triggers, and the upgrade to schema 2.

pub(super) const SCHEMA: &str = r#"
CREATE TABLE packets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    packet_tree_sha256 TEXT NOT NULL,
    tree TEXT NOT NULL,
    record TEXT NOT NULL UNIQUE,
    file_count INTEGER NOT NULL,
    total_bytes INTEGER NOT NULL,
    created_unix_nanos INTEGER NOT NULL,
    source_date_epoch INTEGER NOT NULL,
    tool_version TEXT NOT NULL,
    source_path TEXT NOT NULL,
    note TEXT,
    UNIQUE (name, version)
);
CREATE INDEX packets_by_sha256 ON packets (packet_tree_sha256);
CREATE INDEX packets_by_tree ON packets (tree);
CREATE TABLE entries (
    packet_id INTEGER NOT NULL REFERENCES packets (id),
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    executable INTEGER NOT NULL,
    blake3 TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (packet_id, path)
) WITHOUT ROWID;
CREATE INDEX entries_by_sha256 ON entries (sha256);
CREATE INDEX entries_by_blake3 ON entries (blake3);
CREATE TABLE objects (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    time_unix_nanos INTEGER NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
"#;

/// Added in schema version 2: KB mirrors and rerun attestations.
pub(super) const SCHEMA_V2: &str = r#"
CREATE TABLE mirrors (
    id INTEGER PRIMARY KEY,
    kb_root TEXT NOT NULL,
    rel_path TEXT NOT NULL,
    packet_id INTEGER NOT NULL REFERENCES packets (id),
    packet_tree_sha256 TEXT NOT NULL,
    dedup TEXT NOT NULL,
    time_unix_nanos INTEGER NOT NULL,
    UNIQUE (kb_root, rel_path)
);
CREATE TABLE mirror_files (
    mirror_id INTEGER NOT NULL REFERENCES mirrors (id),
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    stored_as TEXT NOT NULL,
    kb_path TEXT NOT NULL,
    PRIMARY KEY (mirror_id, path)
) WITHOUT ROWID;
CREATE INDEX mirror_files_by_sha256 ON mirror_files (sha256);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    packet_id INTEGER REFERENCES packets (id),
    expected_sha256 TEXT NOT NULL,
    attestation TEXT NOT NULL UNIQUE,
    verdict TEXT NOT NULL,
    time_unix_nanos INTEGER NOT NULL,
    summary TEXT NOT NULL
);
"#;

pub(super) const APPEND_ONLY_TABLES: [&str; 4] = ["packets", "entries", "objects", "events"];
pub(super) const APPEND_ONLY_TABLES_V2: [&str; 3] = ["mirrors", "mirror_files", "runs"];

pub(super) fn append_only_triggers(tables: &[&str]) -> String {
    let mut sql = String::new();
    for table in tables {
        for op in ["UPDATE", "DELETE"] {
            sql.push_str(&format!(
                "CREATE TRIGGER {table}_no_{lower} BEFORE {op} ON {table} BEGIN \
                 SELECT RAISE(ABORT, 'evstore catalog is append-only: {op} on {table} is refused'); END;\n",
                lower = op.to_lowercase(),
            ));
        }
    }
    sql
}

/// Version 3 (issue 16): the key fingerprint of a packet's seal signature, from its record.
pub(super) const SCHEMA_V3: &str = r#"
ALTER TABLE packets ADD COLUMN seal_signer TEXT;
"#;
