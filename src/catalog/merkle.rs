//! The event log's Merkle tree, kept in the catalog: `merkle_nodes` holds the hash of every
//! perfect subtree of the log (level 0: each event's leaf hash, `SHA-256(0x00 || its log
//! bytes)`; level `l`: the root of the `2^l` leaves from `index · 2^l`), so a root or a proof
//! of the log at any size is `O(log n)` indexed reads (`format::merkle::PerfectSubtrees`)
//! instead of hashing every event.
//!
//! The table is derived data, rebuildable from the events: a writer's open creates it when
//! missing and fills in what is missing (a catalog written by an evstore without it), and each
//! event row inserted adds its leaf and the subtrees it completes, in the same transaction.
//! A reader of a catalog whose table is missing or behind its events hashes the events instead.
//! `fsck` compares the kept root with the one recomputed from the store's `log/`.

use rusqlite::{params, Connection, OptionalExtension};

use super::{Catalog, EventRow};
use crate::error::{Error, Result};
use crate::format::merkle::{self, Hash, PerfectSubtrees};

/// The table, outside the numbered schema: derived data a writer creates when missing, so an
/// older catalog needs no upgrade to be read and an older evstore can still write it (a writer
/// fills in what it left out).
pub(super) const MERKLE_NODES_TABLE: &str = "CREATE TABLE IF NOT EXISTS merkle_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS merkle_nodes_no_update BEFORE UPDATE ON merkle_nodes BEGIN
    SELECT RAISE(ABORT, 'merkle_nodes is append-only');
END;
CREATE TRIGGER IF NOT EXISTS merkle_nodes_no_delete BEFORE DELETE ON merkle_nodes BEGIN
    SELECT RAISE(ABORT, 'merkle_nodes is append-only');
END;";

/// True if the catalog has the table.
fn has_table(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'merkle_nodes'",
        [],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
}

/// The number of leaves the table holds (they are 0 .. n - 1: each is added after the one
/// before).
fn leaves_held(conn: &Connection) -> rusqlite::Result<u64> {
    let last: Option<i64> = conn.query_row(
        "SELECT MAX(idx) FROM merkle_nodes WHERE level = 0",
        [],
        |r| r.get(0),
    )?;
    Ok(last.map_or(0, |idx| idx as u64 + 1))
}

/// The number of events (they are 1 .. n).
fn events_held(conn: &Connection) -> rusqlite::Result<u64> {
    let last: Option<i64> = conn.query_row("SELECT MAX(seq) FROM events", [], |r| r.get(0))?;
    Ok(last.map_or(0, |seq| seq as u64))
}

/// Read one kept hash.
fn node(conn: &Connection, level: u32, index: u64) -> rusqlite::Result<Option<Hash>> {
    let bytes: Option<Vec<u8>> = conn
        .query_row(
            "SELECT hash FROM merkle_nodes WHERE level = ?1 AND idx = ?2",
            params![level, index as i64],
            |r| r.get(0),
        )
        .optional()?;
    Ok(bytes.and_then(|bytes| Hash::try_from(bytes.as_slice()).ok()))
}

/// Add the leaf of `event` (whose row is inserted in this transaction) and every perfect
/// subtree it completes: while the new node is a right child, hash it with its left sibling.
/// A table that does not hold the leaves before it (a writer without this table wrote them) is
/// left for the next writer's open to fill in.
pub(super) fn add_leaf(tx: &Connection, event: &EventRow) -> rusqlite::Result<()> {
    if !has_table(tx)? {
        return Ok(());
    }
    let index = event.seq as u64 - 1;
    if leaves_held(tx)? != index {
        return Ok(());
    }
    add_leaf_at(tx, index, merkle::leaf_hash(&event.encode()))
}

fn add_leaf_at(tx: &Connection, index: u64, leaf: Hash) -> rusqlite::Result<()> {
    let mut insert =
        tx.prepare_cached("INSERT INTO merkle_nodes (level, idx, hash) VALUES (?1, ?2, ?3)")?;
    insert.execute(params![0u32, index as i64, leaf.as_slice()])?;
    let (mut level, mut idx, mut hash) = (0u32, index, leaf);
    while idx % 2 == 1 {
        let Some(left) = node(tx, level, idx - 1)? else {
            return Err(rusqlite::Error::QueryReturnedNoRows);
        };
        hash = merkle::node_hash(&left, &hash);
        level += 1;
        idx /= 2;
        insert.execute(params![level, idx as i64, hash.as_slice()])?;
    }
    Ok(())
}

/// Create the table if missing and add the leaves of the events it lacks (in one transaction
/// of the caller's: a writer's open).
pub(super) fn fill_in(tx: &Connection) -> rusqlite::Result<()> {
    tx.execute_batch(MERKLE_NODES_TABLE)?;
    let held = leaves_held(tx)?;
    if held >= events_held(tx)? {
        return Ok(());
    }
    let mut stmt = tx.prepare(
        "SELECT seq, time_unix_nanos, kind, subject, detail, prev_hash, hash FROM events \
         WHERE seq > ?1 ORDER BY seq",
    )?;
    let events = stmt.query_map(params![held as i64], super::events::event_from_row)?;
    for event in events {
        let event = event?;
        add_leaf_at(tx, event.seq as u64 - 1, merkle::leaf_hash(&event.encode()))?;
    }
    Ok(())
}

/// True if a writer's open has work to do: the table is missing or behind the events.
pub(super) fn needs_filling_in(conn: &Connection) -> rusqlite::Result<bool> {
    Ok(!has_table(conn)? || leaves_held(conn)? < events_held(conn)?)
}

/// The log's Merkle tree as the catalog holds it: its size, and its perfect subtrees read from
/// `merkle_nodes` (or, when that table is missing or behind, hashed from the events).
pub struct LogTree<'a> {
    catalog: &'a Catalog,
    size: u64,
    /// The events' leaf hashes, when the table cannot answer.
    leaves: Option<Vec<Hash>>,
}

impl std::fmt::Debug for LogTree<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogTree")
            .field("size", &self.size)
            .field("from_table", &self.leaves.is_none())
            .finish()
    }
}

impl LogTree<'_> {
    /// The number of events (leaves).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// True if the hashes come from `merkle_nodes` (`O(log n)` reads per root or proof).
    pub fn kept_in_the_catalog(&self) -> bool {
        self.leaves.is_none()
    }
}

impl PerfectSubtrees for LogTree<'_> {
    type Error = Error;

    fn perfect_subtree(&mut self, level: u32, index: u64) -> Result<Hash> {
        if let Some(leaves) = &self.leaves {
            let mut leaves: &[Hash] = leaves;
            return leaves
                .perfect_subtree(level, index)
                .map_err(|never| match never {});
        }
        let found = self.catalog.sql(node(&self.catalog.conn, level, index))?;
        found.ok_or_else(|| {
            Error::corrupt(
                format!("catalog {}", self.catalog.path.display()),
                format!(
                    "its merkle_nodes table lacks the hash of level {level}, index {index}; \
                     `evstore reindex --replace` rebuilds the catalog"
                ),
            )
        })
    }
}

impl Catalog {
    /// The log's Merkle tree now (read it inside a [`Catalog::read_snapshot`] for a size and
    /// hashes of one moment).
    ///
    /// # Errors
    ///
    /// Catalog errors.
    pub fn log_tree(&self) -> Result<LogTree<'_>> {
        let size = self.sql(events_held(&self.conn))?;
        // Exactly as many leaves as events: a table behind them (an older evstore wrote) or
        // ahead of them (changed by hand) is not used; `fsck` names the second.
        let table_answers =
            self.sql(has_table(&self.conn))? && self.sql(leaves_held(&self.conn))? == size;
        let leaves = if table_answers {
            None
        } else {
            Some(
                self.events()?
                    .iter()
                    .map(|event| merkle::leaf_hash(&event.encode()))
                    .collect(),
            )
        };
        Ok(LogTree {
            catalog: self,
            size,
            leaves,
        })
    }

    /// Every row of `merkle_nodes` as (level, index, hash); empty when the table is missing. A
    /// row changed by hand into something that is no node (a negative or too large level or
    /// index, a hash that is not 32 bytes) is `None`, for `fsck` to name.
    pub fn merkle_node_rows(&self) -> Result<Vec<Option<(u32, u64, Hash)>>> {
        if !self.sql(has_table(&self.conn))? {
            return Ok(Vec::new());
        }
        let mut stmt = self.sql(
            self.conn
                .prepare("SELECT level, idx, hash FROM merkle_nodes ORDER BY level, idx"),
        )?;
        let rows = stmt.query_map([], |r| {
            use rusqlite::types::Value;
            Ok(
                match (
                    r.get::<_, Value>(0)?,
                    r.get::<_, Value>(1)?,
                    r.get::<_, Value>(2)?,
                ) {
                    (Value::Integer(level), Value::Integer(index), Value::Blob(hash)) => {
                        u32::try_from(level)
                            .ok()
                            .filter(|level| *level < 64)
                            .zip(u64::try_from(index).ok())
                            .zip(Hash::try_from(hash.as_slice()).ok())
                            .map(|((level, index), hash)| (level, index, hash))
                    }
                    _ => None,
                },
            )
        });
        let rows = self.sql(rows)?;
        rows.map(|r| self.sql(r)).collect()
    }

    /// The append-only triggers the catalog should have and does not (a catalog changed by
    /// hand: its rows can no longer be trusted to be only appended to).
    pub fn missing_append_only_triggers(&self) -> Result<Vec<String>> {
        let mut expected: Vec<String> = super::schema::APPEND_ONLY_TABLES
            .iter()
            .chain(super::schema::APPEND_ONLY_TABLES_V2.iter())
            .flat_map(|table| ["update", "delete"].map(|op| format!("{table}_no_{op}")))
            .collect();
        if self.sql(has_table(&self.conn))? {
            expected.extend([
                "merkle_nodes_no_update".into(),
                "merkle_nodes_no_delete".into(),
            ]);
        }
        let mut stmt = self.sql(
            self.conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'"),
        )?;
        let names = stmt.query_map([], |r| r.get::<_, String>(0));
        let names: std::collections::HashSet<String> = self
            .sql(names)?
            .collect::<rusqlite::Result<_>>()
            .map_err(|source| Error::Catalog {
                path: self.path.clone(),
                source,
            })?;
        Ok(expected
            .into_iter()
            .filter(|name| !names.contains(name))
            .collect())
    }

    /// Create `merkle_nodes` if missing and fill in the events it lacks, in one write
    /// transaction; nothing to do (and no lock taken) when it is whole.
    pub(super) fn fill_in_merkle_nodes(&mut self) -> Result<()> {
        if !self.sql(needs_filling_in(&self.conn))? {
            return Ok(());
        }
        let wrap = super::sql_error(&self.path);
        let tx = self.begin_write()?;
        fill_in(&tx).map_err(&wrap)?;
        tx.commit().map_err(&wrap)
    }
}
