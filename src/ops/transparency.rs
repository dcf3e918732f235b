//! The store's event log as an RFC 9162 Merkle log: its checkpoint and the proofs a holder of
//! the log produces (`evstore log checkpoint`, `log prove-inclusion`, `log prove-consistency`),
//! and the reading of a proof's JSON for `evstore proof check-*`.
//!
//! Leaf `i` (from 0) of the log is the event with sequence number `i + 1`; its entry bytes are
//! the event's canonical bytes, exactly what its `log/` key holds (`LogEntry::encode`), so
//! anyone with the keys can recompute every hash. The proofs are computed from the catalog's
//! `merkle_nodes` (`catalog::LogTree`): `O(log n)` indexed reads, no request to the store.

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, EventRow};
use crate::error::{Error, Result};
use crate::format::merkle;

/// The origin line of a store's checkpoints: `evstore-log/` and the hash of the store's first
/// event (its `init`), which no other store shares.
pub fn origin_of(first: &EventRow) -> String {
    format!("evstore-log/{}", first.hash)
}

/// A checkpoint of the log (C2SP `tlog-checkpoint`): origin, size and root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    /// The log's origin line.
    pub origin: String,
    /// Its number of entries.
    pub tree_size: u64,
    /// Its root hash, lowercase hex.
    pub root: String,
}

impl Checkpoint {
    /// The checkpoint's note text: `ORIGIN\nSIZE\nBASE64(ROOT)\n`.
    ///
    /// # Errors
    ///
    /// [`Error::Internal`] if the root is not 64 hex digits (it is made so by [`checkpoint`]).
    pub fn text(&self) -> Result<String> {
        use base64::Engine as _;
        if self.origin.is_empty() || self.origin.contains(['\n', '\r']) {
            return Err(Error::Internal(format!(
                "a checkpoint origin {:?} that is not one line",
                self.origin
            )));
        }
        let mut root = [0u8; 32];
        hex::decode_to_slice(&self.root, &mut root)
            .map_err(|_| Error::Internal(format!("checkpoint root {:?}", self.root)))?;
        Ok(format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.tree_size,
            base64::engine::general_purpose::STANDARD.encode(root)
        ))
    }
}

/// An inclusion proof as `log prove-inclusion --json` prints it and `proof check-inclusion
/// --json-proof` reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// The entry's index (its sequence number minus one).
    pub leaf_index: u64,
    /// The log's size the proof is for.
    pub tree_size: u64,
    /// The entry's leaf hash, lowercase hex.
    pub leaf_hash: String,
    /// The log's root at that size, lowercase hex.
    pub root: String,
    /// The proof's hashes, lowercase hex, from the leaf's sibling up.
    pub proof: Vec<String>,
}

/// A consistency proof as `log prove-consistency --json` prints it and `proof check-consistency
/// --json-proof` reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    /// The older size.
    pub old_size: u64,
    /// The log's root at the older size, lowercase hex.
    pub old_root: String,
    /// The newer size.
    pub tree_size: u64,
    /// The log's root at the newer size, lowercase hex.
    pub root: String,
    /// The proof's hashes, lowercase hex.
    pub proof: Vec<String>,
}

/// The log's checkpoint now.
///
/// # Errors
///
/// Catalog errors; a store whose log is empty (no checkpoint of nothing).
pub fn checkpoint(catalog: &Catalog) -> Result<Checkpoint> {
    let _snapshot = catalog.read_snapshot()?;
    let first = catalog
        .event_at(1)?
        .ok_or_else(|| Error::Usage("the store's event log is empty".into()))?;
    let mut tree = catalog.log_tree()?;
    let size = tree.size();
    Ok(Checkpoint {
        origin: origin_of(&first),
        tree_size: size,
        root: hex::encode(merkle::root_of(size, &mut tree)?),
    })
}

/// The inclusion proof of the event `event` (its sequence number, or 8+ hex digits of its
/// hash) in the log as it is now.
///
/// # Errors
///
/// [`Error::NotFound`] for an event the log does not have, [`Error::Usage`] for one that
/// names several; catalog errors.
pub fn prove_inclusion(catalog: &Catalog, event: &str) -> Result<InclusionProof> {
    let _snapshot = catalog.read_snapshot()?;
    let mut tree = catalog.log_tree()?;
    let size = tree.size();
    let found = find_event(catalog, size, event)?;
    let index = found.seq as u64 - 1;
    let proof = merkle::inclusion_proof_of(index, size, &mut tree)?
        .ok_or_else(|| Error::Internal(format!("event {} outside the log", found.seq)))?;
    let leaf = merkle::leaf_hash(&found.encode());
    let root = merkle::root_of(size, &mut tree)?;
    // A proof that does not check is never handed out.
    merkle::check_inclusion(&leaf, index, size, &proof, &root).map_err(|failure| {
        damaged_log_hashes(
            catalog,
            &format!("the inclusion proof of event {}", found.seq),
            failure,
        )
    })?;
    Ok(InclusionProof {
        leaf_index: index,
        tree_size: size,
        leaf_hash: hex::encode(leaf),
        root: hex::encode(root),
        proof: proof.iter().map(hex::encode).collect(),
    })
}

/// The consistency proof between the log at `old_size` entries and at `new_size` (default:
/// now).
///
/// # Errors
///
/// [`Error::Usage`] for sizes out of order or beyond the log; catalog errors.
pub fn prove_consistency(
    catalog: &Catalog,
    old_size: u64,
    new_size: Option<u64>,
) -> Result<ConsistencyProof> {
    let _snapshot = catalog.read_snapshot()?;
    let mut tree = catalog.log_tree()?;
    let size = tree.size();
    let new_size = new_size.unwrap_or(size);
    if new_size > size || old_size == 0 || old_size > new_size {
        return Err(Error::Usage(format!(
            "prove-consistency needs 0 < OLD_SIZE <= NEW_SIZE <= {size} (the log's size); got \
             {old_size} and {new_size}"
        )));
    }
    let proof = merkle::consistency_proof_of(old_size, new_size, &mut tree)?
        .ok_or_else(|| Error::Internal("consistency proof out of range".into()))?;
    let old_root = merkle::root_of(old_size, &mut tree)?;
    let root = merkle::root_of(new_size, &mut tree)?;
    merkle::check_consistency(old_size, new_size, &old_root, &root, &proof).map_err(|failure| {
        damaged_log_hashes(
            catalog,
            &format!("the consistency proof from {old_size} to {new_size} events"),
            failure,
        )
    })?;
    Ok(ConsistencyProof {
        old_size,
        old_root: hex::encode(old_root),
        tree_size: new_size,
        root: hex::encode(root),
        proof: proof.iter().map(hex::encode).collect(),
    })
}

/// A proof made from the catalog that does not check: its kept hashes were changed.
fn damaged_log_hashes(catalog: &Catalog, what: &str, failure: merkle::ProofFailure) -> Error {
    use crate::text::EscapePath;
    Error::corrupt(
        format!("catalog {}", catalog.path().escaped()),
        format!(
            "{what}, made from its kept subtree hashes (merkle_nodes), does not check \
             ({failure}): they were changed; `evstore fsck` names them, `evstore reindex \
             --replace` rebuilds the catalog"
        ),
    )
}

/// The event a user named: its sequence number, or 8+ hex digits of its hash (in a log of
/// `size` events).
fn find_event(catalog: &Catalog, size: u64, named: &str) -> Result<EventRow> {
    if let Ok(seq) = named.parse::<u64>() {
        let found = match i64::try_from(seq) {
            Ok(seq) if seq >= 1 && seq as u64 <= size => catalog.event_at(seq)?,
            _ => None,
        };
        return found.ok_or_else(|| {
            Error::NotFound(format!("event {seq}: the log has events 1 to {size}"))
        });
    }
    let is_prefix = named.len() >= 8
        && named.len() <= 64
        && named
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !is_prefix {
        return Err(Error::Usage(format!(
            "{named:?} names no event: give its sequence number or 8 to 64 lowercase hex digits \
             of its hash"
        )));
    }
    let mut found = catalog.events_with_hash_prefix(named, 2)?;
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::NotFound(format!(
            "no event's hash starts with {named}"
        ))),
        _ => Err(Error::Usage(format!(
            "several events' hashes start with {named}; give more digits"
        ))),
    }
}

/// Read a proof's JSON (as the prove commands print it) from `path`.
///
/// # Errors
///
/// [`Error::Usage`] for a file that cannot be read or is not that JSON.
pub fn read_proof_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    use crate::text::EscapePath;
    let bytes = read_small_input(path, "the proof")?;
    serde_json::from_slice(&bytes).map_err(|err| {
        Error::Usage(format!(
            "{}: not a proof as `evstore log prove-*` prints it: {err}",
            path.escaped()
        ))
    })
}

/// Write a new signer key named `name` to `out` (mode 0600, created only if absent); its
/// verifier key text.
///
/// # Errors
///
/// [`Error::Usage`] for an invalid name or a file that exists; I/O errors creating or writing it
/// (a partly written file is removed).
pub fn generate_key(name: &str, out: &std::path::Path) -> Result<String> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)
        .map_err(|err| Error::Internal(format!("no randomness from the OS: {err}")))?;
    let key = crate::format::note::SignerKey::from_seed(name, seed)
        .map_err(|err| Error::Usage(err.to_string()))?;
    crate::fsio::write_new_file(
        out,
        format!("{}\n", key.text()).as_bytes(),
        0o600,
        "a key file",
    )?;
    Ok(key.verifier().text())
}

/// Check the signed checkpoint in `file` against the verifier key `key`: `Ok(Ok(what it
/// says))` if a signature of the key verifies and the text is a checkpoint, `Ok(Err(why))` if no
/// signature of the key verifies.
///
/// # Errors
///
/// [`Error::Usage`] for a key, a file or a note that is malformed.
pub fn check_signed_checkpoint(
    file: &std::path::Path,
    key: &str,
) -> Result<std::result::Result<String, String>> {
    use crate::format::note::{NoteError, VerifierKey};
    use crate::text::EscapePath;
    let key = VerifierKey::parse(key).map_err(|err| Error::Usage(format!("--key: {err}")))?;
    let bytes = read_small_input(file, "the checkpoint")?;
    let note = String::from_utf8(bytes).map_err(|_| {
        Error::Usage(format!(
            "{}: not UTF-8, so not a signed note",
            file.escaped()
        ))
    })?;
    let text = match key.open(&note) {
        Ok(text) => text,
        Err(NoteError::NotSigned(why)) => return Ok(Err(why)),
        Err(err) => return Err(Error::Usage(format!("{}: {err}", file.escaped()))),
    };
    let parsed = parse_checkpoint_text(text)
        .map_err(|why| Error::Usage(format!("{}: not a checkpoint: {why}", file.escaped())))?;
    Ok(Ok(format!(
        "checkpoint of {} at size {} with root {}, signed by {}",
        parsed.origin,
        parsed.tree_size,
        parsed.root,
        key.name()
    )))
}

/// Parse a checkpoint's text: origin, decimal size (no leading zero), base64 root of 32 bytes,
/// then any extension lines.
pub(crate) fn parse_checkpoint_text(text: &str) -> std::result::Result<Checkpoint, String> {
    use base64::Engine as _;
    if text.contains('\r') {
        return Err("a carriage return in it: its lines end in a line feed alone".into());
    }
    let mut lines = text.split_terminator('\n');
    let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
        return Err("fewer than three lines".into());
    };
    if origin.is_empty() {
        return Err("an empty origin line".into());
    }
    let canonical = size.parse::<u64>().ok().filter(|n| n.to_string() == size);
    let tree_size = canonical.ok_or(format!("{size:?} is not a size in decimal"))?;
    let root_bytes = base64::engine::general_purpose::STANDARD
        .decode(root)
        .ok()
        .filter(|bytes| bytes.len() == 32)
        .ok_or(format!("{root:?} is not the base64 of a 32-byte root"))?;
    Ok(Checkpoint {
        origin: origin.to_string(),
        tree_size,
        root: hex::encode(root_bytes),
    })
}

/// Read a proof or checkpoint file a user gave: at most 1 MiB (a larger one is refused, not cut
/// short).
fn read_small_input(path: &std::path::Path, what: &str) -> Result<Vec<u8>> {
    read_input_at_most(path, what, 1 << 20)
}

pub(crate) use crate::fsio::read_input_at_most;

/// Read a small text file a user named (a key file, a checkpoint): at most 64 KiB of UTF-8, a
/// regular file (see [`read_input_at_most`]).
///
/// # Errors
///
/// [`Error::Usage`] for a file that cannot be read, is larger, or is not UTF-8.
pub(crate) fn read_small_text(path: &std::path::Path, what: &str) -> Result<String> {
    use crate::text::EscapePath;
    let bytes = read_input_at_most(path, what, 64 * 1024)?;
    String::from_utf8(bytes)
        .map_err(|_| Error::Usage(format!("{}: not UTF-8, so not {what}", path.escaped())))
}
