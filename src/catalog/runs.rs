//! Rerun attestations: one row per `evstore rerun` whose attestation object is stored.

use super::*;

/// A rerun to record.
#[derive(Clone, Debug)]
pub struct NewRun {
    /// The packet rerun, if it is in the store.
    pub packet_id: Option<i64>,
    /// The packet_tree_sha256 expected.
    pub expected_sha256: Sha256Digest,
    /// The attestation object's id.
    pub attestation: Blake3Digest,
    /// The attestation object's size.
    pub attestation_size: u64,
    /// `PASS` or `FAIL`.
    pub verdict: String,
    /// When it was attested (the attestation's own `time_unix_nanos`).
    pub time_unix_nanos: u64,
    /// A JSON summary for listing.
    pub summary: serde_json::Value,
}

impl NewRun {
    /// The row of the attestation `attestation` (`attestation_size` payload bytes) whose indexed
    /// fields are `summary` ([`crate::format::attestation::decode_summary`] of its payload), for
    /// the packet row `packet_id` (the packet `summary.packet` names). The one way a `runs` row
    /// is built: by `rerun` from the payload it stores, by catch-up and by `reindex` from the
    /// object, so a rebuilt row equals the written one.
    pub fn of_attestation(
        attestation: Blake3Digest,
        attestation_size: u64,
        summary: &crate::format::attestation::AttestationSummary,
        packet_id: Option<i64>,
    ) -> NewRun {
        NewRun {
            packet_id,
            expected_sha256: summary.expected_sha256,
            attestation,
            attestation_size,
            verdict: summary.verdict.clone(),
            time_unix_nanos: summary.time_unix_nanos,
            summary: summary.summary.clone(),
        }
    }
}

/// A recorded rerun.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RunRow {
    /// Row id.
    pub id: i64,
    /// The packet rerun, if it is in the store.
    pub packet_id: Option<i64>,
    /// The packet_tree_sha256 expected.
    pub expected_sha256: String,
    /// The attestation object's id.
    pub attestation: String,
    /// `PASS` or `FAIL`.
    pub verdict: String,
    /// When it was recorded.
    pub time_unix_nanos: i64,
    /// A JSON summary.
    pub summary: String,
}

/// Whether the catalog records a run of the attestation `attestation`.
pub(super) fn run_recorded(
    tx: &rusqlite::Transaction<'_>,
    attestation: &Blake3Digest,
) -> rusqlite::Result<bool> {
    let found: Option<i64> = tx
        .query_row(
            "SELECT id FROM runs WHERE attestation = ?1",
            params![attestation.to_hex()],
            |r| r.get(0),
        )
        .optional()?;
    Ok(found.is_some())
}

/// The id of the packet row `NAME@N` (`label`), if any.
pub(super) fn packet_id_of_label(
    tx: &rusqlite::Transaction<'_>,
    label: &str,
) -> rusqlite::Result<Option<i64>> {
    let Some((name, version)) = split_versioned(label) else {
        return Ok(None);
    };
    tx.query_row(
        "SELECT id FROM packets WHERE name = ?1 AND version = ?2",
        params![name, version as i64],
        |r| r.get(0),
    )
    .optional()
}

/// Insert a `runs` row and its attestation's `objects` row; returns the run's id.
pub(super) fn insert_run_rows(
    tx: &rusqlite::Transaction<'_>,
    run: &NewRun,
) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO runs (packet_id, expected_sha256, attestation, verdict, time_unix_nanos, summary) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            run.packet_id,
            run.expected_sha256.to_hex(),
            run.attestation.to_hex(),
            run.verdict,
            i64::try_from(run.time_unix_nanos).unwrap_or(i64::MAX),
            run.summary.to_string()
        ],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute(
        "INSERT OR IGNORE INTO objects (id, kind, size) VALUES (?1, 'attestation', ?2)",
        params![run.attestation.to_hex(), run.attestation_size as i64],
    )?;
    Ok(id)
}

impl Catalog {
    /// Record a rerun attestation (its object must already be durable), with a `rerun` event.
    pub fn add_run(&mut self, run: &NewRun, event: &NewEvent) -> Result<i64> {
        let wrap = sql_error(&self.path);
        let log = self.log.clone();
        let tx = self.begin_write()?;
        let id = insert_run_rows(&tx, run).map_err(&wrap)?;
        append_event(&tx, log.as_ref(), &wrap, event)?;
        tx.commit().map_err(&wrap)?;
        Ok(id)
    }

    /// Record a rerun found by `reindex` in an attestation object (no event: the rebuilt
    /// catalog's log starts with its one `reindex` event).
    pub fn insert_reindexed_run(&mut self, run: &NewRun) -> Result<i64> {
        let wrap = sql_error(&self.path);
        let tx = self.conn.transaction().map_err(&wrap)?;
        let id = insert_run_rows(&tx, run).map_err(&wrap)?;
        tx.commit().map_err(&wrap)?;
        Ok(id)
    }

    /// Recorded reruns, oldest first; only those of `packet_id` when given.
    pub fn runs(&self, packet_id: Option<i64>) -> Result<Vec<RunRow>> {
        let mut stmt = self.sql(self.conn.prepare_cached(
            "SELECT id, packet_id, expected_sha256, attestation, verdict, time_unix_nanos, summary \
             FROM runs WHERE ?1 IS NULL OR packet_id = ?1 ORDER BY id",
        ))?;
        let rows = stmt.query_map(params![packet_id], |r| {
            Ok(RunRow {
                id: r.get(0)?,
                packet_id: r.get(1)?,
                expected_sha256: r.get(2)?,
                attestation: r.get(3)?,
                verdict: r.get(4)?,
                time_unix_nanos: r.get(5)?,
                summary: r.get(6)?,
            })
        });
        let rows = self.sql(rows)?;
        rows.map(|r| self.sql(r)).collect()
    }
}
