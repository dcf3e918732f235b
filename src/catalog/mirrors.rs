//! KB mirrors: every publication of a packet into a knowledge-base folder, file by file.

use super::*;

pub use crate::format::mirror_list::{MirrorFile, MirrorList};

/// A mirror to record: its mirror list (the object that records it in the store, durable before
/// the row commits) and the catalog row of the packet it names.
#[derive(Clone, Debug)]
pub struct NewMirror {
    /// The mirrored packet's catalog row id (the packet whose record `list.record` names).
    pub packet_id: i64,
    /// What was mirrored where, file by file, exactly as the mirror list object holds it.
    pub list: MirrorList,
}

/// Insert a `mirrors` row recorded at `time_unix_nanos`, its `mirror_files` rows and its mirror
/// list's `objects` row; returns the mirror's id. The one way a mirror's rows are written: by
/// `mirror` (with its event's time), by catch-up and by `reindex` (from the mirror list object
/// and the time of the event that names it), so a rebuilt row equals the written one.
pub(super) fn insert_mirror_rows(
    tx: &rusqlite::Transaction<'_>,
    mirror: &NewMirror,
    time_unix_nanos: i64,
) -> rusqlite::Result<i64> {
    let list = &mirror.list;
    tx.execute(
        "INSERT INTO mirrors (kb_root, rel_path, packet_id, packet_tree_sha256, dedup, time_unix_nanos) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            list.kb_root,
            list.rel_path,
            mirror.packet_id,
            list.packet_tree_sha256.to_hex(),
            list.dedup,
            time_unix_nanos
        ],
    )?;
    let id = tx.last_insert_rowid();
    let mut insert = tx.prepare_cached(
        "INSERT INTO mirror_files (mirror_id, path, sha256, stored_as, kb_path) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for file in &list.files {
        insert.execute(params![
            id,
            file.path,
            file.sha256.to_hex(),
            file.stored_as,
            file.kb_path
        ])?;
    }
    tx.execute(
        "INSERT OR IGNORE INTO objects (id, kind, size) VALUES (?1, 'mirror-list', ?2)",
        params![list.id().to_hex(), list.encode().len() as i64],
    )?;
    Ok(id)
}

/// Whether the catalog records a mirror at `rel_path` in the KB `kb_root`.
pub(super) fn mirror_recorded(
    tx: &rusqlite::Transaction<'_>,
    kb_root: &str,
    rel_path: &str,
) -> rusqlite::Result<bool> {
    let found: Option<i64> = tx
        .query_row(
            "SELECT id FROM mirrors WHERE kb_root = ?1 AND rel_path = ?2",
            params![kb_root, rel_path],
            |r| r.get(0),
        )
        .optional()?;
    Ok(found.is_some())
}

/// The id of the packet row holding the record `record`, if any.
pub(super) fn packet_id_of_record(
    tx: &rusqlite::Transaction<'_>,
    record: &Blake3Digest,
) -> rusqlite::Result<Option<i64>> {
    tx.query_row(
        "SELECT id FROM packets WHERE record = ?1",
        params![record.to_hex()],
        |r| r.get(0),
    )
    .optional()
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
    /// Record a published mirror and its files, with a `mirror` event, in one transaction; its
    /// mirror list object must already be durable. The row's time is the event's.
    pub fn add_mirror(&mut self, mirror: &NewMirror, event: &NewEvent) -> Result<i64> {
        let wrap = sql_error(&self.path);
        let log = self.log.clone();
        let tx = self.begin_write()?;
        let appended = append_event(&tx, log.as_ref(), &wrap, event)?;
        let id = insert_mirror_rows(&tx, mirror, appended.time_unix_nanos).map_err(&wrap)?;
        tx.commit().map_err(&wrap)?;
        Ok(id)
    }

    /// Record a mirror found by `reindex` in a mirror list object, at the time of the event that
    /// names it (no new event). The caller skips a list whose KB path is recorded already.
    ///
    /// # Errors
    ///
    /// Catalog errors; [`Error::Corrupt`] if no packet row holds the list's record.
    pub fn insert_rebuilt_mirror(&mut self, list: &MirrorList, time_unix_nanos: i64) -> Result<()> {
        let wrap = sql_error(&self.path);
        let tx = self.conn.transaction().map_err(&wrap)?;
        let Some(packet_id) = packet_id_of_record(&tx, &list.record).map_err(&wrap)? else {
            return Err(Error::corrupt(
                format!("mirror list {}", list.id()),
                format!(
                    "names the packet record {}, which the catalog does not hold",
                    list.record
                ),
            ));
        };
        let mirror = NewMirror {
            packet_id,
            list: list.clone(),
        };
        insert_mirror_rows(&tx, &mirror, time_unix_nanos).map_err(&wrap)?;
        tx.commit().map_err(&wrap)
    }

    /// Every recorded mirror, with its files, as (row, files by path), by KB and path.
    ///
    /// # Errors
    ///
    /// Catalog errors, or a row whose digest is not valid.
    pub fn all_mirrors(&self) -> Result<Vec<(MirrorRow, Vec<MirrorFile>)>> {
        let mut out = Vec::new();
        for kb in self.mirror_kb_roots()? {
            for row in self.mirrors_in(&kb)? {
                let files = self.mirror_files(row.id)?;
                out.push((row, files));
            }
        }
        Ok(out)
    }

    /// The files of the mirror `mirror_id`, by path.
    ///
    /// # Errors
    ///
    /// Catalog errors, or a file row whose SHA-256 is not valid.
    pub fn mirror_files(&self, mirror_id: i64) -> Result<Vec<MirrorFile>> {
        let mut stmt = self.sql(self.conn.prepare_cached(
            "SELECT path, sha256, stored_as, kb_path FROM mirror_files WHERE mirror_id = ?1 ORDER BY path",
        ))?;
        let rows = stmt.query_map(params![mirror_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        });
        let rows = self.sql(rows)?;
        let mut out = Vec::new();
        for row in rows {
            let (path, sha, stored_as, kb_path) = self.sql(row)?;
            out.push(MirrorFile {
                sha256: Sha256Digest::parse_hex(&sha).ok_or_else(|| {
                    Error::corrupt(
                        format!("catalog mirror file {path:?} of mirror row {mirror_id}"),
                        "sha256 is not valid",
                    )
                })?,
                path,
                stored_as,
                kb_path,
            });
        }
        Ok(out)
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
