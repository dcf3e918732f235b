//! The event log as named keys: `log/<seq zero-padded to 20 digits>`, one event each, in the
//! canonical bytes of [`crate::format::event::LogEntry`] (FORMAT.md §7d).
//!
//! The log keys are the truth; the catalog's `events` table is an index of them. A writer
//! creates `log/<seq>` with create-if-absent ([`NamedKeys::create_key_if_absent`]) **before**
//! the catalog transaction that records the same event commits (the catalog calls
//! [`EventLog::append`] inside its write transaction). Of two writers racing for one sequence
//! number exactly one create succeeds; the other gets the winner's bytes back
//! ([`Appended::Taken`]), and the catalog takes that event in and retries at the next number.
//! Only the [`NamedKeys`] trait is used, never a file path, so the same code runs on any backend.
//!
//! A store made before the log (layout 1) has no `log/`: [`EventLog::ensure`] creates the key
//! space whole from the catalog's events (`ops::markers::attach_log`), so `log/` never exists
//! partial.
//!
//! **Architecture Invariant:** a log key is created once, never replaced, and holds one event
//! that decodes strictly and whose hash recomputes; the keys `log/1..N` form one unbroken chain.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::event::{
    log_key, parse_log_key_name, LogEntry, GENESIS_HASH, LOG_PREFIX, MAX_LOG_ENTRY_BYTES,
};
use crate::store::backend::{KeyCreated, KeyRead, ListedName, NamedKeys, ObjectBackend};
use crate::text::EscapePath;

/// The event log of one store, through its backend's named keys.
pub struct EventLog<'a> {
    keys: &'a dyn NamedKeys,
    /// The store folder, to name keys in messages (`<store>/log/…`).
    store_root: PathBuf,
}

/// An owned handle on a store's log, which the catalog keeps to append events.
#[derive(Clone)]
pub struct SharedLog {
    keys: Arc<dyn ObjectBackend>,
    store_root: PathBuf,
}

impl std::fmt::Debug for SharedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLog")
            .field("store_root", &self.store_root)
            .finish()
    }
}

impl SharedLog {
    /// The log of `store`.
    pub fn of(store: &crate::store::Store) -> SharedLog {
        SharedLog {
            keys: store.shared_backend(),
            store_root: store.root().to_path_buf(),
        }
    }

    /// The log, borrowed.
    pub fn log(&self) -> EventLog<'_> {
        EventLog {
            keys: &*self.keys,
            store_root: self.store_root.clone(),
        }
    }
}

/// What [`EventLog::append`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Appended {
    /// The key was created with this event (or held exactly its bytes already).
    Created,
    /// Another writer holds this sequence number: its event, decoded.
    Taken(LogEntry),
}

/// Everything the log holds, read and checked.
#[derive(Clone, Debug, Default)]
pub struct LogContents {
    /// The events that decode, in key order.
    pub entries: Vec<LogEntry>,
    /// Keys that cannot be read, do not decode, or break the chain: (shown key, reason). Each is
    /// a failure for `fsck`.
    pub problems: Vec<(String, String)>,
}

impl<'a> EventLog<'a> {
    /// The log of `store`.
    pub fn of(store: &'a crate::store::Store) -> EventLog<'a> {
        EventLog {
            keys: store.backend(),
            store_root: store.root().to_path_buf(),
        }
    }

    /// Where `key` is shown in messages: below the store folder.
    pub fn shown(&self, key: &str) -> String {
        self.store_root.join(key).escaped().to_string()
    }

    /// True if the store has its log (the `log/` key space exists; it exists only complete).
    ///
    /// # Errors
    ///
    /// The backend cannot tell.
    pub fn present(&self) -> Result<bool> {
        self.keys.key_space_exists(LOG_PREFIX)
    }

    /// Create the `log/` key space holding `initial()`'s events if the store has none: created
    /// whole. True if this call created it. `initial` runs only then.
    ///
    /// # Errors
    ///
    /// `initial` fails, or the key space cannot be created.
    pub fn ensure(&self, initial: impl FnOnce() -> Result<Vec<LogEntry>>) -> Result<bool> {
        if self.present()? {
            return Ok(false);
        }
        let keys: Vec<(String, Vec<u8>)> = initial()?
            .iter()
            .map(|entry| (log_key(entry.seq), entry.encode()))
            .collect();
        self.keys.create_key_space(LOG_PREFIX, &keys)
    }

    /// Create `log/<seq>` holding `entry`, only if absent. A key that already holds exactly these
    /// bytes is success (a retry of the same append); one that holds another event is
    /// [`Appended::Taken`] with that event.
    ///
    /// # Errors
    ///
    /// The key cannot be created, or what holds it does not decode ([`Error::Corrupt`] naming
    /// the key).
    pub fn append(&self, entry: &LogEntry) -> Result<Appended> {
        let key = log_key(entry.seq);
        let bytes = entry.encode();
        match self.keys.create_key_if_absent(&key, &bytes)? {
            KeyCreated::Created => Ok(Appended::Created),
            KeyCreated::AlreadyExists(existing) if existing == bytes => Ok(Appended::Created),
            KeyCreated::AlreadyExists(existing) => match LogEntry::decode(&existing) {
                Ok(other) if other.seq == entry.seq => Ok(Appended::Taken(other)),
                Ok(other) => Err(Error::corrupt(
                    format!("event log key {}", self.shown(&key)),
                    format!("holds event {}, not event {}", other.seq, entry.seq),
                )),
                Err(reason) => Err(Error::corrupt(
                    format!("event log key {}", self.shown(&key)),
                    reason,
                )),
            },
        }
    }

    /// The names of `log/` past event `after`: only those, on a backend that can start a
    /// listing after a key (one request on S3 when nothing is new), not the whole log.
    fn names_after(&self, after: i64) -> Result<Vec<ListedName>> {
        if after <= 0 {
            return self.keys.list_names(LOG_PREFIX);
        }
        let key = log_key(after);
        let name = key.strip_prefix(LOG_PREFIX).unwrap_or(&key);
        self.keys.list_names_after(LOG_PREFIX, name)
    }

    /// True if a key numbered past `after` exists (a listing, no read).
    ///
    /// # Errors
    ///
    /// The log cannot be listed.
    pub fn has_after(&self, after: i64) -> Result<bool> {
        Ok(self
            .names_after(after)?
            .into_iter()
            .any(|listed| match listed {
                ListedName::Name(name) => parse_log_key_name(&name).is_some_and(|s| s > after),
                ListedName::NotUtf8(_) => false,
            }))
    }

    /// The events past `after`, in order, each decoded strictly, reading only those keys; stops
    /// at the first key that does not read or decode, or is not the next number (fsck reports
    /// it). What the catalog takes in when it catches up with the log.
    ///
    /// # Errors
    ///
    /// The log cannot be listed.
    pub fn read_after(&self, after: i64) -> Result<Vec<LogEntry>> {
        let mut out = Vec::new();
        // Past event 1 the listing says it all (nothing listed: nothing new), without another
        // request to ask whether the key space exists.
        if after <= 0 && !self.present()? {
            return Ok(out);
        }
        let mut seqs: Vec<i64> = self
            .names_after(after)?
            .into_iter()
            .filter_map(|listed| match listed {
                ListedName::Name(name) => parse_log_key_name(&name),
                ListedName::NotUtf8(_) => None,
            })
            .filter(|seq| *seq > after)
            .collect();
        seqs.sort_unstable();
        for (expected, seq) in (after + 1..).zip(seqs) {
            if seq != expected {
                break;
            }
            let key = log_key(seq);
            let Ok(KeyRead::Found(bytes)) = self.keys.read_key(&key, MAX_LOG_ENTRY_BYTES) else {
                break;
            };
            match LogEntry::decode(&bytes) {
                Ok(entry) if entry.seq == seq => out.push(entry),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Read every key of the log and check it: names of 20 digits, each entry decoding strictly
    /// to the event its name numbers, numbers 1, 2, … without a gap, and each `prev_hash` the
    /// hash of the event before. What fails is listed in `problems`; entries after a break are
    /// still returned.
    ///
    /// # Errors
    ///
    /// The log cannot be listed.
    pub fn read_all(&self) -> Result<LogContents> {
        let mut out = LogContents::default();
        if !self.present()? {
            return Ok(out);
        }
        let mut expected_seq = 1;
        let mut prev_hash = GENESIS_HASH.to_string();
        for listed in self.keys.list_names(LOG_PREFIX)? {
            let name = match listed {
                ListedName::Name(name) => name,
                ListedName::NotUtf8(shown) => {
                    out.problems
                        .push((shown, "is not a log key (not UTF-8)".into()));
                    continue;
                }
            };
            let key = format!("{LOG_PREFIX}{name}");
            let shown = self.shown(&key);
            let Some(seq) = parse_log_key_name(&name) else {
                out.problems.push((
                    shown,
                    "is not a log key (20 decimal digits numbering an event from 1)".into(),
                ));
                continue;
            };
            let bytes = match self.keys.read_key(&key, MAX_LOG_ENTRY_BYTES) {
                Ok(KeyRead::Found(bytes)) => bytes,
                Ok(KeyRead::Missing) => {
                    out.problems
                        .push((shown, "cannot read: it vanished while listed".into()));
                    continue;
                }
                Ok(KeyRead::TooLarge) => {
                    out.problems
                        .push((shown, "is larger than a log entry can be".into()));
                    continue;
                }
                Ok(KeyRead::Unreadable(reason)) => {
                    out.problems.push((shown, reason));
                    continue;
                }
                Err(err) => {
                    out.problems.push((shown, format!("cannot read: {err}")));
                    continue;
                }
            };
            let entry = match LogEntry::decode(&bytes) {
                Ok(entry) => entry,
                Err(reason) => {
                    out.problems.push((shown, reason));
                    continue;
                }
            };
            if entry.seq != seq {
                out.problems.push((
                    shown,
                    format!("holds event {}, not the event its name numbers", entry.seq),
                ));
                continue;
            }
            if seq != expected_seq {
                out.problems.push((
                    shown.clone(),
                    format!(
                        "the log has a gap: event {seq} follows event {}",
                        expected_seq - 1
                    ),
                ));
            } else if entry.prev_hash != prev_hash {
                out.problems.push((
                    shown.clone(),
                    format!(
                        "breaks the chain: its prev_hash is {}, the event before hashes to {}",
                        entry.prev_hash, prev_hash
                    ),
                ));
            }
            expected_seq = seq + 1;
            prev_hash = entry.hash.clone();
            out.entries.push(entry);
        }
        Ok(out)
    }
}
