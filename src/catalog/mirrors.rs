//! KB mirrors: every publication of a packet into a knowledge-base folder, file by file.

use super::*;

/// A mirror to record.
#[derive(Clone, Debug)]
pub struct NewMirror {
    /// The KB folder, canonical.
    pub kb_root: String,
    /// The packet folder, relative to the KB.
    pub rel_path: String,
    /// The packet's catalog row id.
    pub packet_id: i64,
    /// Its packet_tree_sha256.
    pub packet_tree_sha256: Sha256Digest,
    /// `copy`, `reference` or `hardlink`.
    pub dedup: String,
    /// Every listed file and where its bytes live.
    pub files: Vec<MirrorFile>,
}

/// One file of a mirror.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MirrorFile {
    /// Path in the packet.
    pub path: String,
    /// Its SHA-256.
    pub sha256: Sha256Digest,
    /// `copy`, `reference` or `hardlink`.
    pub stored_as: String,
    /// KB-relative path of the bytes.
    pub kb_path: String,
}

/// A recorded mirror.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MirrorRow {
    /// Row id.
    pub id: i64,
    /// The KB folder, canonical.
    pub kb_root: String,
    /// The packet folder, relative to the KB.
    pub rel_path: String,
    /// The packet's catalog row id.
    pub packet_id: i64,
    /// Its packet_tree_sha256.
    pub packet_tree_sha256: Sha256Digest,
    /// `copy`, `reference` or `hardlink`.
    pub dedup: String,
    /// When it was recorded.
    pub time_unix_nanos: i64,
}

impl Catalog {
    /// Record a published mirror and its files, with a `mirror` event, in one transaction.
    pub fn add_mirror(&mut self, mirror: &NewMirror, event: &NewEvent) -> Result<i64> {
        let wrap = sql_error(&self.path);
        let log = self.log.clone();
        let tx = self.begin_write()?;
        tx.execute(
            "INSERT INTO mirrors (kb_root, rel_path, packet_id, packet_tree_sha256, dedup, time_unix_nanos) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                mirror.kb_root,
                mirror.rel_path,
                mirror.packet_id,
                mirror.packet_tree_sha256.to_hex(),
                mirror.dedup,
                crate::now_unix_nanos() as i64
            ],
        )
        .map_err(&wrap)?;
        let id = tx.last_insert_rowid();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO mirror_files (mirror_id, path, sha256, stored_as, kb_path) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(&wrap)?;
            for file in &mirror.files {
                insert
                    .execute(params![
                        id,
                        file.path,
                        file.sha256.to_hex(),
                        file.stored_as,
                        file.kb_path
                    ])
                    .map_err(&wrap)?;
            }
        }
        append_event(&tx, log.as_ref(), &wrap, event)?;
        tx.commit().map_err(&wrap)?;
        Ok(id)
    }

    /// Every mirror recorded for the KB at `kb_root` (a canonical path), by path.
    pub fn mirrors_in(&self, kb_root: &str) -> Result<Vec<MirrorRow>> {
        let mut stmt = self.sql(self.conn.prepare_cached(
            "SELECT id, kb_root, rel_path, packet_id, packet_tree_sha256, dedup, time_unix_nanos \
             FROM mirrors WHERE kb_root = ?1 ORDER BY rel_path",
        ))?;
        let rows = stmt.query_map(params![kb_root], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
            ))
        });
        let rows = self.sql(rows)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kb_root, rel_path, packet_id, sha, dedup, time) = self.sql(row)?;
            out.push(MirrorRow {
                id,
                packet_tree_sha256: Sha256Digest::parse_hex(&sha).ok_or_else(|| {
                    Error::corrupt(
                        format!("catalog mirror row {id}"),
                        "packet_tree_sha256 is not valid",
                    )
                })?,
                kb_root,
                rel_path,
                packet_id,
                dedup,
                time_unix_nanos: time,
            });
        }
        Ok(out)
    }

    /// Every KB folder (canonical path) the catalog records a mirror in.
    pub fn mirror_kb_roots(&self) -> Result<Vec<String>> {
        let mut stmt = self.sql(
            self.conn
                .prepare_cached("SELECT DISTINCT kb_root FROM mirrors ORDER BY kb_root"),
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0));
        let rows = self.sql(rows)?;
        rows.map(|r| self.sql(r)).collect()
    }

    /// How each file of the mirror `mirror_id` was published: (packet path, `copy`, `hardlink`
    /// or `reference`).
    pub fn mirror_file_kinds(&self, mirror_id: i64) -> Result<Vec<(String, String)>> {
        let mut stmt = self.sql(self.conn.prepare_cached(
            "SELECT path, stored_as FROM mirror_files WHERE mirror_id = ?1 ORDER BY path",
        ))?;
        let rows = stmt.query_map(params![mirror_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        });
        let rows = self.sql(rows)?;
        rows.map(|r| self.sql(r)).collect()
    }

    /// KB-relative paths of earlier mirrors in `kb_root` that hold `sha256`'s bytes as a real file
    /// (copied or hard-linked, not referenced), oldest first. Callers must check the bytes.
    pub fn kb_copies_of(&self, kb_root: &str, sha256: &Sha256Digest) -> Result<Vec<String>> {
        let mut stmt = self.sql(self.conn.prepare_cached(
            "SELECT f.kb_path FROM mirror_files f JOIN mirrors m ON f.mirror_id = m.id \
             WHERE m.kb_root = ?1 AND f.sha256 = ?2 AND f.stored_as != 'reference' ORDER BY m.id, f.path",
        ))?;
        let rows = stmt.query_map(params![kb_root, sha256.to_hex()], |r| r.get::<_, String>(0));
        let rows = self.sql(rows)?;
        rows.map(|r| self.sql(r)).collect()
    }
}
