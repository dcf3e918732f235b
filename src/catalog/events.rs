//! The hash-chained event log, and what it proves was committed (packets, runs, forgets).

use super::*;

pub use crate::format::event::{event_hash, NewEvent, GENESIS_HASH};
use crate::format::event::{named_object, LogEntry, NamedObject};
use crate::store::log::{Appended, SharedLog};

/// An event row: the catalog holds each event exactly as its `log/` key does.
pub type EventRow = LogEntry;

/// What the catalog says was committed: every packet record and rerun attestation that a
/// committed event names or a catalog row holds, and what `forget` acknowledged as lost.
///
/// A packet exists once its `ingest` event committed (in the same transaction as its rows), so
/// the event log, not the presence of a record object, is what makes a record committed. A record
/// object no event names was left by an interrupted or failed ingest and is never revived.
#[derive(Clone, Debug, Default)]
pub struct Commitments {
    /// Committed packet records: id → `NAME@N` and the seq of the event that committed it
    /// (`None` for a row carried by a catalog rebuilt before events were carried over).
    pub records: BTreeMap<Blake3Digest, (String, Option<i64>)>,
    /// Committed rerun attestations: id → label (packet or expected hash) and event seq.
    pub attestations: BTreeMap<Blake3Digest, (String, Option<i64>)>,
    /// Ids acknowledged as lost: by the last `forget` or `restore` event about them in the log
    /// (a `restore` ends a forget: the item was indexed again, so a new loss fails again), or,
    /// for ids the log says nothing about, by a `refs/forgotten` marker without a
    /// `refs/restored` one.
    pub forgotten: HashSet<Blake3Digest>,
    /// Ids some `forget` or `restore` event of the log is about.
    pub forget_logged: HashSet<Blake3Digest>,
}

/// A committed packet or attestation that the catalog no longer holds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LostItem {
    /// `packet` or `attestation`.
    pub kind: &'static str,
    /// `NAME@N` for a packet; the packet or expected hash a rerun was of, for an attestation.
    pub label: String,
    /// The record or attestation object id.
    pub id: String,
    /// The event that committed it, if the log has it.
    pub committed_by_event: Option<i64>,
}

impl LostItem {
    /// Whether `text` names this item: its `NAME@N` (packets), or 8 or more lowercase hex
    /// digits at the start of its id.
    pub fn matches(&self, text: &str) -> bool {
        (self.kind == "packet" && text == self.label)
            || (text.len() >= 8
                && text
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                && self.id.starts_with(text))
    }

    /// What to give `evstore forget` to name this item.
    pub fn label_for_forget(&self) -> &str {
        if self.kind == "packet" {
            &self.label
        } else {
            &self.id
        }
    }
}

impl Commitments {
    /// What an event log alone says was committed (no catalog rows): the records and
    /// attestations `ingest` and `rerun` events name, and what `forget` and `restore` events
    /// leave acknowledged as lost.
    pub fn from_events(events: &[EventRow]) -> Commitments {
        let mut out = Commitments::default();
        for event in events {
            match named_object(&event.kind, &event.detail) {
                Some(NamedObject::Record(id)) => {
                    out.records
                        .insert(id, (event.subject.clone(), Some(event.seq)));
                }
                Some(NamedObject::Attestation(id)) => {
                    out.attestations
                        .insert(id, (event.subject.clone(), Some(event.seq)));
                }
                Some(NamedObject::Forgotten(id)) => {
                    out.forgotten.insert(id);
                    out.forget_logged.insert(id);
                }
                Some(NamedObject::Restored(id)) => {
                    out.forgotten.remove(&id);
                    out.forget_logged.insert(id);
                }
                Some(NamedObject::MirrorList(_)) | None => {}
            }
        }
        out
    }

    /// Add what the store's commit markers say (see [`crate::store::refs`]).
    pub fn add_markers(&mut self, markers: &crate::store::refs::Markers) {
        for (id, label) in &markers.records {
            self.records
                .entry(*id)
                .or_insert_with(|| (label.clone(), None));
        }
        for (id, label) in &markers.attestations {
            self.attestations
                .entry(*id)
                .or_insert_with(|| (label.clone(), None));
        }
        for id in &markers.forgotten {
            if !self.forget_logged.contains(id) && !markers.restored.contains(id) {
                self.forgotten.insert(*id);
            }
        }
    }

    /// Commitments from the markers alone (no catalog to read).
    pub fn from_markers(markers: &crate::store::refs::Markers) -> Commitments {
        let mut out = Commitments::default();
        out.add_markers(markers);
        out
    }

    /// Everything committed and not forgotten that is not in `records_held` / `attestations_held`.
    pub fn lost(
        &self,
        records_held: &HashSet<Blake3Digest>,
        attestations_held: &HashSet<Blake3Digest>,
    ) -> Vec<LostItem> {
        let mut lost = Vec::new();
        for (kind, committed, held) in [
            ("packet", &self.records, records_held),
            ("attestation", &self.attestations, attestations_held),
        ] {
            for (id, (label, seq)) in committed {
                if !held.contains(id) && !self.forgotten.contains(id) {
                    lost.push(LostItem {
                        kind,
                        label: label.clone(),
                        id: id.to_hex(),
                        committed_by_event: *seq,
                    });
                }
            }
        }
        lost
    }
}

/// The `NAME@N` of an ingest or forget event's subject, split.
pub(super) fn split_versioned(subject: &str) -> Option<(&str, u64)> {
    let (name, version) = subject.rsplit_once('@')?;
    Some((name, version.parse().ok()?))
}

/// The first event of a log (sequence 1, after the genesis hash), stamped now: what `init` of
/// an S3 store creates as `log/00000000000000000001` before any catalog exists.
pub fn first_event_row(event: &NewEvent) -> EventRow {
    let time = crate::now_unix_nanos() as i64;
    EventRow {
        seq: 1,
        time_unix_nanos: time,
        kind: event.kind().name().to_string(),
        subject: event.subject().to_string(),
        detail: event.detail().to_string(),
        prev_hash: GENESIS_HASH.to_string(),
        hash: event.hash(1, time, GENESIS_HASH).to_hex(),
    }
}

/// Append `event` inside the write transaction `tx`: number and chain it after the catalog's
/// last event, create its `log/` key first when the catalog is attached to the store's log
/// (the log is the truth; the row commits after the key exists), then insert its row.
///
/// When another writer holds that sequence number in the log (another machine's writer of an S3
/// store, one that bypassed the catalog lock, or an event whose catalog commit failed after its
/// key was created), its event is taken into this catalog if it continues the catalog's chain,
/// and the append retries at the next number; an event that does not continue the chain is an
/// error naming the key. A taken event that *is* this event (same kind, subject and detail, and
/// it names the object it commits: an `ingest` event's record, a `rerun` event's attestation)
/// ends the append: another machine's catch-up logged this commit from its version claim
/// while this writer was between its claim and its event, and a commit is logged once.
pub(super) fn append_event(
    tx: &Connection,
    log: Option<&SharedLog>,
    wrap: &dyn Fn(rusqlite::Error) -> Error,
    event: &NewEvent,
) -> Result<EventRow> {
    loop {
        let last: Option<(i64, String)> = tx
            .query_row(
                "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(wrap)?;
        let (seq, prev_hash) = match last {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, GENESIS_HASH.to_string()),
        };
        let time = crate::now_unix_nanos() as i64;
        let hash = event.hash(seq, time, &prev_hash).to_hex();
        let row = EventRow {
            seq,
            time_unix_nanos: time,
            kind: event.kind().name().to_string(),
            subject: event.subject().to_string(),
            detail: event.detail().to_string(),
            prev_hash,
            hash,
        };
        if let Some(log) = log {
            let log = log.log();
            if let Appended::Taken(other) = log.append(&row)? {
                if other.prev_hash != row.prev_hash {
                    let key = crate::format::event::log_key(seq);
                    return Err(Error::corrupt(
                        format!("event log key {}", log.shown(&key)),
                        format!(
                            "holds an event that does not follow the catalog's event {} (its \
                             prev_hash is {}, not {}): the catalog and the store's log disagree; \
                             nothing was recorded; run `evstore fsck`",
                            seq - 1,
                            other.prev_hash,
                            row.prev_hash
                        ),
                    ));
                }
                insert_event_row(tx, &other).map_err(wrap)?;
                if other.kind == row.kind
                    && other.subject == row.subject
                    && other.detail == row.detail
                    && matches!(
                        crate::format::event::named_object(&row.kind, &row.detail),
                        Some(
                            crate::format::event::NamedObject::Record(_)
                                | crate::format::event::NamedObject::Attestation(_)
                        )
                    )
                {
                    return Ok(other);
                }
                continue;
            }
        }
        insert_event_row(tx, &row).map_err(wrap)?;
        return Ok(row);
    }
}

pub(super) fn insert_event_row(tx: &Connection, e: &EventRow) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO events (seq, time_unix_nanos, kind, subject, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![e.seq, e.time_unix_nanos, e.kind, e.subject, e.detail, e.prev_hash, e.hash],
    )?;
    super::merkle::add_leaf(tx, e)
}

pub(super) fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        seq: r.get(0)?,
        time_unix_nanos: r.get(1)?,
        kind: r.get(2)?,
        subject: r.get(3)?,
        detail: r.get(4)?,
        prev_hash: r.get(5)?,
        hash: r.get(6)?,
    })
}

impl Catalog {
    /// What this catalog says was committed (see [`Commitments`]): records and attestations
    /// named by `ingest` and `rerun` events or held by `packets` and `runs` rows, and ids that
    /// `forget` events acknowledged as lost.
    pub fn commitments(&self) -> Result<Commitments> {
        self.commitments_of(&self.events()?)
    }

    /// [`Catalog::commitments`] from an event log already read by the caller (`fsck` reads the
    /// log once, under its read snapshot, for this and for the chain check).
    pub fn commitments_of(&self, events: &[EventRow]) -> Result<Commitments> {
        let mut out = Commitments::from_events(events);
        for row in self.packets()? {
            out.records
                .entry(row.record_id)
                .or_insert_with(|| (format!("{}@{}", row.record.name, row.record.version), None));
        }
        for run in self.runs(None)? {
            if let Some(id) = Blake3Digest::parse_hex(&run.attestation) {
                out.attestations
                    .entry(id)
                    .or_insert_with(|| (run.expected_sha256.clone(), None));
            }
        }
        Ok(out)
    }

    /// Acknowledge lost items in one write transaction: `choose` picks, from what is lost now
    /// (given the store's commit `markers`), the items to forget and each one's
    /// `forget` event (or refuses); the events are appended before the transaction commits, so
    /// two concurrent `forget`s of one item cannot both succeed.
    pub fn forget(
        &mut self,
        markers: &crate::store::refs::Markers,
        choose: impl FnOnce(&[LostItem]) -> Result<Vec<(LostItem, NewEvent)>>,
    ) -> Result<Vec<(LostItem, EventRow)>> {
        let wrap = sql_error(&self.path);
        if file_identity(&self.path).ok() != Some(self.identity) {
            return Err(Error::Usage(format!(
                "{}: the catalog was replaced while this command ran (reindex --replace); nothing \
                 was recorded in it; run the command again",
                self.path.escaped()
            )));
        }
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(&wrap)?;
        let result = (|| {
            let mut commitments = self.commitments()?;
            commitments.add_markers(markers);
            let records: HashSet<Blake3Digest> = self
                .packets()?
                .into_iter()
                .map(|row| row.record_id)
                .collect();
            let attestations: HashSet<Blake3Digest> = self
                .runs(None)?
                .into_iter()
                .filter_map(|run| Blake3Digest::parse_hex(&run.attestation))
                .collect();
            let lost = commitments.lost(&records, &attestations);
            let mut out = Vec::new();
            for (item, event) in choose(&lost)? {
                let event = append_event(&self.conn, self.log.as_ref(), &wrap, &event)?;
                out.push((item, event));
            }
            self.conn.execute_batch("COMMIT").map_err(&wrap)?;
            Ok(out)
        })();
        if result.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        result
    }

    /// Copy events verbatim (seq, time, hashes) into an empty log: `reindex` carries the old
    /// catalog's log into the new one, so the chain and what it says was committed survive.
    pub fn insert_carried_events(&mut self, events: &[EventRow]) -> Result<()> {
        let wrap = sql_error(&self.path);
        let tx = self.conn.transaction().map_err(&wrap)?;
        for e in events {
            insert_event_row(&tx, e).map_err(&wrap)?;
        }
        tx.commit().map_err(&wrap)
    }

    /// Attach the store's event log: from now on every event this catalog appends is created in
    /// `log/` first (FORMAT.md §7d: the log key is created before the row commits).
    pub fn attach_log(&mut self, log: SharedLog) {
        self.log = Some(log);
    }

    /// True if events appended here also go to the store's `log/`.
    pub fn has_log(&self) -> bool {
        self.log.is_some()
    }

    /// Append one event in its own transaction.
    pub fn log_event(&mut self, event: &NewEvent) -> Result<EventRow> {
        let wrap = sql_error(&self.path);
        let log = self.log.clone();
        let tx = self.begin_write()?;
        let row = append_event(&tx, log.as_ref(), &wrap, event)?;
        tx.commit().map_err(&wrap)?;
        Ok(row)
    }

    /// The number of the catalog's last event (0 for none).
    pub fn last_event_seq(&self) -> Result<i64> {
        let last: Option<i64> = self.sql(self.conn.query_row(
            "SELECT MAX(seq) FROM events",
            [],
            |r| r.get(0),
        ))?;
        Ok(last.unwrap_or(0))
    }

    /// The catalog's last event, if it has any.
    pub fn last_event(&self) -> Result<Option<EventRow>> {
        let row = self.conn.query_row(
            "SELECT seq, time_unix_nanos, kind, subject, detail, prev_hash, hash FROM events \
             ORDER BY seq DESC LIMIT 1",
            [],
            event_from_row,
        );
        self.sql(row.optional())
    }

    /// The event numbered `seq`, if the log has it.
    pub fn event_at(&self, seq: i64) -> Result<Option<EventRow>> {
        let row = self.conn.query_row(
            "SELECT seq, time_unix_nanos, kind, subject, detail, prev_hash, hash FROM events \
             WHERE seq = ?1",
            params![seq],
            event_from_row,
        );
        self.sql(row.optional())
    }

    /// The events of `kind` about `subject`, oldest first.
    pub fn events_of(&self, kind: &str, subject: &str) -> Result<Vec<EventRow>> {
        let mut stmt = self.sql(self.conn.prepare(
            "SELECT seq, time_unix_nanos, kind, subject, detail, prev_hash, hash FROM events \
             WHERE kind = ?1 AND subject = ?2 ORDER BY seq",
        ))?;
        let rows = stmt.query_map(params![kind, subject], event_from_row);
        let rows = self.sql(rows)?;
        rows.map(|r| self.sql(r)).collect()
    }

    /// The events whose hash starts with `prefix` (lowercase hex digits), at most `limit`.
    pub fn events_with_hash_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<EventRow>> {
        let mut stmt = self.sql(self.conn.prepare(
            "SELECT seq, time_unix_nanos, kind, subject, detail, prev_hash, hash FROM events \
             WHERE substr(hash, 1, length(?1)) = ?1 ORDER BY seq LIMIT ?2",
        ))?;
        let rows = stmt.query_map(params![prefix, limit as i64], event_from_row);
        let rows = self.sql(rows)?;
        rows.map(|r| self.sql(r)).collect()
    }

    /// The whole event log, oldest first.
    pub fn events(&self) -> Result<Vec<EventRow>> {
        let mut stmt = self.sql(self.conn.prepare(
            "SELECT seq, time_unix_nanos, kind, subject, detail, prev_hash, hash FROM events ORDER BY seq",
        ))?;
        let rows = stmt.query_map([], event_from_row);
        let rows = self.sql(rows)?;
        rows.map(|r| self.sql(r)).collect()
    }
}
