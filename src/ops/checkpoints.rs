//! Kept checkpoints and the append-only check of the log: `evstore log keep-checkpoints`, the
//! signed checkpoint a configured store keeps after every command that appends to its log,
//! `evstore log --verify-from CHECKPOINT_FILE`, and what `fsck` checks of both.
//!
//! A store keeps checkpoints once its `checkpoints/verifier-key` key names a verifier key
//! (written once, never changed). Each machine that writes the store then needs the matching
//! signer key: `$EVSTORE_SIGNING_KEY`, else the key file that `log keep-checkpoints --key`
//! recorded beside this machine's catalog (`checkpoint-signer`, holding the key file's absolute
//! path; the private key itself never enters the store). A writing command without it is
//! refused before it writes. After the command, the checkpoint of the log at its size then is
//! signed and created at `checkpoints/<size, 20 digits>` if absent. Two writers that sign the
//! same size sign the same text with the same key (Ed25519 is deterministic), so the same bytes.
//!
//! The checks read the store's `log/` keys, never the catalog's copy of them: the log is what
//! an outsider's checkpoint is about. The catalog's copy only helps to name which entry of a log
//! that fails a check was rewritten.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::catalog::{Catalog, EventRow};
use crate::error::{Error, IoContext, Result};
use crate::format::event::{
    log_key, parse_log_key_name, LogEntry, LOG_PREFIX, MAX_LOG_ENTRY_BYTES,
};
use crate::format::merkle::{self, Hash};
use crate::format::note::{NoteError, SignerKey, VerifierKey};
use crate::ops::transparency::{parse_checkpoint_text, Checkpoint};
use crate::store::backend::{KeyCreated, KeyRead, ListedName};
use crate::store::log::EventLog;
use crate::store::Store;
use crate::text::EscapePath;

/// The key holding the verifier key of a store that keeps checkpoints.
pub const VERIFIER_KEY_KEY: &str = "checkpoints/verifier-key";

/// The folder of kept checkpoints (and of the verifier key).
pub const CHECKPOINTS_PREFIX: &str = "checkpoints/";

/// The file beside a machine's catalog that names its signer key file.
const SIGNER_FILE_NAME: &str = "checkpoint-signer";

/// The environment variable naming a signer key file; it wins over `checkpoint-signer`.
pub const SIGNING_KEY_ENV: &str = "EVSTORE_SIGNING_KEY";

/// A signed checkpoint or a key is far below this; a larger key is not one.
const MAX_NOTE_BYTES: u64 = 64 * 1024;

/// The key of the checkpoint of the log at `size` entries.
pub fn checkpoint_key(size: u64) -> String {
    format!("{CHECKPOINTS_PREFIX}{size:020}")
}

/// The size a checkpoint key names: 20 decimal digits.
fn parse_checkpoint_key_name(name: &str) -> Option<u64> {
    if name.len() != 20 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// What signs this machine's checkpoints of a store that keeps them.
pub struct CheckpointSigner {
    key: SignerKey,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("name", &self.key.name())
            .finish_non_exhaustive()
    }
}

/// What `log keep-checkpoints` did.
#[derive(Clone, Debug, Serialize)]
pub struct KeepConfigured {
    /// The store's verifier key.
    pub verifier_key: String,
    /// True if this call made the store keep checkpoints (false: it did already, with this key).
    pub store_configured_now: bool,
    /// Where this machine's signer key file is recorded.
    pub signer_recorded_in: PathBuf,
    /// The checkpoint kept now, if the log had none of its size yet.
    pub kept: Option<KeptCheckpoint>,
}

/// A checkpoint this machine signed and kept in the store.
#[derive(Clone, Debug, Serialize)]
pub struct KeptCheckpoint {
    /// Its key, shown as a path or URL.
    pub key: String,
    /// The log's size it is of.
    pub tree_size: u64,
    /// The log's root at that size, lowercase hex.
    pub root: String,
}

/// Read a key file: its signer key.
fn read_signer_key(keyfile: &Path) -> Result<SignerKey> {
    let text = read_capped_text(keyfile, "the signer key file")?;
    SignerKey::parse(&text).map_err(|err| Error::Usage(format!("{}: {err}", keyfile.escaped())))
}

/// Read a small text file a user named (a key file or a checkpoint), refusing one above
/// [`MAX_NOTE_BYTES`] instead of reading it cut short.
fn read_capped_text(path: &Path, what: &str) -> Result<String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| {
            std::io::Read::read_to_end(
                &mut std::io::Read::take(file, MAX_NOTE_BYTES + 1),
                &mut bytes,
            )
        })
        .map_err(|err| Error::Usage(format!("{}: cannot read {what}: {err}", path.escaped())))?;
    if bytes.len() as u64 > MAX_NOTE_BYTES {
        return Err(Error::Usage(format!(
            "{}: larger than {} KiB, so not {what}",
            path.escaped(),
            MAX_NOTE_BYTES / 1024
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| Error::Usage(format!("{}: {what} is not UTF-8", path.escaped())))
}

/// The store's verifier key, if it keeps checkpoints.
///
/// # Errors
///
/// [`Error::Corrupt`] for a `checkpoints/verifier-key` that is not a verifier key; backend
/// errors.
pub fn store_verifier_key(store: &Store) -> Result<Option<VerifierKey>> {
    let shown = EventLog::of(store).shown(VERIFIER_KEY_KEY);
    let bytes = match store.backend().read_key(VERIFIER_KEY_KEY, MAX_NOTE_BYTES)? {
        KeyRead::Missing => return Ok(None),
        KeyRead::Found(bytes) => bytes,
        KeyRead::TooLarge => return Err(Error::corrupt(shown, "is larger than a verifier key")),
        KeyRead::Unreadable(reason) => return Err(Error::corrupt(shown, reason)),
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::corrupt(shown.clone(), "is not UTF-8, so not a verifier key"))?;
    let key = VerifierKey::parse(text.trim_end_matches('\n'))
        .map_err(|err| Error::corrupt(shown, err.to_string()))?;
    Ok(Some(key))
}

/// The file beside the store's catalog (on this machine) that names its signer key file.
fn signer_file(store: &Store) -> PathBuf {
    store
        .catalog_path()
        .parent()
        .unwrap_or(Path::new("."))
        .join(SIGNER_FILE_NAME)
}

/// Make the store keep a signed checkpoint after every command that appends to its log, signed
/// with the signer key in `keyfile`, and record `keyfile` as this machine's signer key; then
/// keep the checkpoint of the log as it is now.
///
/// # Errors
///
/// [`Error::Usage`] for a key file that holds no signer key, or a store that keeps checkpoints
/// signed by another key; I/O and backend errors.
pub fn configure(store: &Store, catalog: &Catalog, keyfile: &Path) -> Result<KeepConfigured> {
    let key = read_signer_key(keyfile)?;
    let verifier = key.verifier().text();
    let absolute = std::path::absolute(keyfile)
        .map_err(|err| Error::io(keyfile, "cannot make the path absolute", err))?;
    let store_configured_now = match store
        .backend()
        .create_key_if_absent(VERIFIER_KEY_KEY, format!("{verifier}\n").as_bytes())?
    {
        KeyCreated::Created => true,
        KeyCreated::AlreadyExists(existing) => {
            let existing = String::from_utf8_lossy(&existing);
            let existing = existing.trim_end_matches('\n');
            if existing != verifier {
                return Err(Error::Usage(format!(
                    "this store keeps checkpoints signed by {existing}; {} holds the key of \
                     {verifier}: give the key file of the store's key (the verifier key is \
                     never changed)",
                    keyfile.escaped()
                )));
            }
            false
        }
    };
    let record = signer_file(store);
    let folder = record.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".checkpoint-signer-")
        .tempfile_in(folder)
        .at(folder, "cannot create a temporary file in")?;
    std::io::Write::write_all(
        &mut temp,
        format!("{}\n", absolute.to_string_lossy()).as_bytes(),
    )
    .and_then(|()| temp.as_file().sync_all())
    .at(&record, "cannot write")?;
    temp.persist(&record)
        .map_err(|err| Error::io(&record, "cannot move into place", err.error))?;
    let signer = CheckpointSigner { key };
    let kept = keep(store, catalog, &signer)?;
    Ok(KeepConfigured {
        verifier_key: verifier,
        store_configured_now,
        signer_recorded_in: record,
        kept,
    })
}

/// The signer a writing command needs, checked before it writes: `None` for a store that keeps
/// no checkpoints.
///
/// # Errors
///
/// [`Error::Usage`] when the store keeps checkpoints and this machine has no signer key for it,
/// or one of another key.
pub fn signer_for_writer(store: &Store) -> Result<Option<CheckpointSigner>> {
    let Some(verifier) = store_verifier_key(store)? else {
        return Ok(None);
    };
    let (keyfile, from) = match std::env::var_os(SIGNING_KEY_ENV) {
        Some(path) if !path.is_empty() => (PathBuf::from(path), format!("${SIGNING_KEY_ENV}")),
        _ => {
            let record = signer_file(store);
            match std::fs::read_to_string(&record) {
                Ok(text) => (
                    PathBuf::from(text.trim_end_matches('\n')),
                    record.escaped().to_string(),
                ),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::Usage(format!(
                        "this store keeps a signed checkpoint after every change, signed by {}, \
                         and this machine has no signer key for it: run `evstore log \
                         keep-checkpoints --key KEYFILE` once here, or set ${SIGNING_KEY_ENV} \
                         to the key file; nothing was written",
                        verifier.text()
                    )))
                }
                Err(err) => return Err(Error::io(&record, "cannot read", err)),
            }
        }
    };
    let key = read_signer_key(&keyfile).map_err(|err| {
        Error::Usage(format!(
            "the signer key file named by {from}: {err}; nothing was written"
        ))
    })?;
    if key.verifier() != verifier {
        return Err(Error::Usage(format!(
            "{} (named by {from}) holds the key of {}, but this store's checkpoints are signed \
             by {}; nothing was written",
            keyfile.escaped(),
            key.verifier().text(),
            verifier.text()
        )));
    }
    Ok(Some(CheckpointSigner { key }))
}

/// Sign the checkpoint of the log as the catalog holds it now and create it in the store if no
/// checkpoint of that size is kept: the one kept now, or `None` if one was already.
///
/// # Errors
///
/// [`Error::Corrupt`] if the store keeps another checkpoint of the same size (another root:
/// two logs); backend errors.
pub fn keep(
    store: &Store,
    catalog: &Catalog,
    signer: &CheckpointSigner,
) -> Result<Option<KeptCheckpoint>> {
    if catalog.last_event_seq()? == 0 {
        return Ok(None);
    }
    let checkpoint = crate::ops::transparency::checkpoint(catalog)?;
    let signed = signer
        .key
        .sign(&checkpoint.text()?)
        .map_err(|err| Error::Internal(format!("a checkpoint is not a note text: {err}")))?;
    let key = checkpoint_key(checkpoint.tree_size);
    let shown = EventLog::of(store).shown(&key);
    match store
        .backend()
        .create_key_if_absent(&key, signed.as_bytes())?
    {
        KeyCreated::Created => Ok(Some(KeptCheckpoint {
            key: shown,
            tree_size: checkpoint.tree_size,
            root: checkpoint.root,
        })),
        KeyCreated::AlreadyExists(existing) if existing == signed.as_bytes() => Ok(None),
        KeyCreated::AlreadyExists(_) => Err(Error::corrupt(
            shown,
            format!(
                "holds another checkpoint of {} entries than this log's (root {}): the log \
                 was rewritten, or the checkpoint was; run `evstore fsck`",
                checkpoint.tree_size, checkpoint.root
            ),
        )),
    }
}

/// The newest checkpoint the store keeps whose size is at least `seq` and at most `size_now`
/// (so it covers event `seq` and the catalog can prove it): its size and its signed note.
/// `None` for a store that keeps no checkpoints, or none such.
///
/// # Errors
///
/// Backend errors; [`Error::Corrupt`] for a kept checkpoint that cannot be read.
pub fn newest_kept_covering(
    store: &Store,
    seq: u64,
    size_now: u64,
) -> Result<Option<(u64, String)>> {
    if store_verifier_key(store)?.is_none() {
        return Ok(None);
    }
    let newest = store
        .backend()
        .list_names(CHECKPOINTS_PREFIX)?
        .into_iter()
        .filter_map(|listed| match listed {
            ListedName::Name(name) => parse_checkpoint_key_name(&name),
            ListedName::NotUtf8(_) => None,
        })
        .filter(|size| *size >= seq && *size <= size_now)
        .max();
    let Some(size) = newest else {
        return Ok(None);
    };
    let key = checkpoint_key(size);
    let shown = EventLog::of(store).shown(&key);
    match store.backend().read_key(&key, MAX_NOTE_BYTES)? {
        KeyRead::Found(bytes) => String::from_utf8(bytes)
            .map(|note| Some((size, note)))
            .map_err(|_| Error::corrupt(shown, "is not UTF-8, so not a signed note")),
        _ => Err(Error::corrupt(shown, "cannot be read")),
    }
}

/// The store's log as its `log/` keys hold it: the Merkle log's leaves.
struct LogLeaves {
    /// The exact bytes of the keys `log/…1`, `log/…2`, … up to the first that is missing or
    /// unreadable (a later key is past a gap, not a leaf).
    entries: Vec<Vec<u8>>,
    /// Their leaf hashes.
    leaves: Vec<Hash>,
    /// The log's origin line, from its first entry's hash (`None` if it has none that decodes).
    origin: Option<String>,
    /// What is wrong with the log's keys (key shown, reason).
    problems: Vec<(String, String)>,
}

/// Read the store's log keys as the Merkle log's leaves: each key's bytes exactly as stored
/// (a leaf is `SHA-256(0x00 || bytes)`, whether or not they decode), for the sequence numbers
/// 1, 2, … without a gap. Whether each entry decodes and chains is `fsck`'s other check.
fn read_log_leaves(store: &Store) -> Result<LogLeaves> {
    let log = EventLog::of(store);
    let mut out = LogLeaves {
        entries: Vec::new(),
        leaves: Vec::new(),
        origin: None,
        problems: Vec::new(),
    };
    if !log.present()? {
        return Ok(out);
    }
    let mut seqs: Vec<i64> = store
        .backend()
        .list_names(LOG_PREFIX)?
        .into_iter()
        .filter_map(|listed| match listed {
            ListedName::Name(name) => parse_log_key_name(&name),
            ListedName::NotUtf8(_) => None,
        })
        .collect();
    seqs.sort_unstable();
    for (expected, seq) in (1..).zip(seqs) {
        let key = log_key(expected);
        let shown = log.shown(&key);
        if seq != expected {
            out.problems.push((
                shown,
                format!("is missing: the Merkle log ends at event {}", expected - 1),
            ));
            break;
        }
        let bytes = match store.backend().read_key(&key, MAX_LOG_ENTRY_BYTES)? {
            KeyRead::Found(bytes) => bytes,
            KeyRead::Missing => {
                out.problems
                    .push((shown, "vanished while the log was read".into()));
                break;
            }
            KeyRead::TooLarge => {
                out.problems
                    .push((shown, "is larger than a log entry can be".into()));
                break;
            }
            KeyRead::Unreadable(reason) => {
                out.problems.push((shown, reason));
                break;
            }
        };
        if expected == 1 {
            out.origin = LogEntry::decode(&bytes)
                .ok()
                .map(|first| format!("evstore-log/{}", first.hash));
        }
        out.leaves.push(merkle::leaf_hash(&bytes));
        out.entries.push(bytes);
    }
    Ok(out)
}

/// The first entry (its sequence number) among the first `size` where the store's log and the
/// catalog's copy of it differ.
fn first_differing_entry(log: &[Vec<u8>], catalog: &[EventRow], size: u64) -> Option<u64> {
    (0..size as usize)
        .find(|&i| match (log.get(i), catalog.get(i)) {
            (Some(bytes), Some(row)) => *bytes != row.encode(),
            _ => true,
        })
        .map(|i| i as u64 + 1)
}

/// The result of `log --verify-from`.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyFromReport {
    /// The old checkpoint's origin, size and root.
    pub checkpoint: Checkpoint,
    /// How its signature was checked: by whose key, or why not.
    pub signature: String,
    /// The log's size now (entries read from the store's `log/`).
    pub tree_size: u64,
    /// The log's root now, lowercase hex.
    pub root: String,
    /// The consistency proof from the old checkpoint to the log now, lowercase hex.
    pub proof: Vec<String>,
    /// Why the log is not an append-only extension of the checkpoint (empty: it is).
    pub problems: Vec<String>,
}

impl VerifyFromReport {
    /// True if today's log extends the checkpoint.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Check that the store's log today is an append-only extension of the log an old checkpoint
/// (`file`, signed or not) was of: same origin, at least as many entries, and the RFC 9162
/// consistency proof from the old root to today's holds. A signed checkpoint is checked with
/// `key`, else with the store's verifier key; a checkpoint without a signature of either is
/// checked for content only, and the report says so.
///
/// # Errors
///
/// [`Error::Usage`] for a file that is no checkpoint, or a malformed key; backend errors.
pub fn verify_from(
    store: &Store,
    catalog: &Catalog,
    file: &Path,
    key: Option<&str>,
) -> Result<VerifyFromReport> {
    let note = read_capped_text(file, "a checkpoint")?;
    let key = match key {
        Some(text) => {
            Some(VerifierKey::parse(text).map_err(|err| Error::Usage(format!("--key: {err}")))?)
        }
        None => store_verifier_key(store)?,
    };
    let mut problems = Vec::new();
    let (text, signature) = match (note.find("\n\n"), &key) {
        (None, _) => (
            note.as_str(),
            "none: the checkpoint is not signed".to_string(),
        ),
        (Some(_), Some(key)) => match key.open(&note) {
            Ok(text) => (text, format!("verified: signed by {}", key.text())),
            Err(NoteError::NotSigned(why)) => {
                problems.push(format!(
                    "the checkpoint carries no valid signature by {}: {why}",
                    key.text()
                ));
                (
                    note.split_once("\n\n").map_or(note.as_str(), |(t, _)| t),
                    format!("FAILED: {why}"),
                )
            }
            Err(err) => return Err(Error::Usage(format!("{}: {err}", file.escaped()))),
        },
        (Some(split), None) => (
            &note[..=split],
            "not checked: no --key, and the store keeps no verifier key".to_string(),
        ),
    };
    let checkpoint = parse_checkpoint_text(text)
        .map_err(|why| Error::Usage(format!("{}: not a checkpoint: {why}", file.escaped())))?;
    let log = read_log_leaves(store)?;
    for (key, reason) in &log.problems {
        problems.push(format!("event log key {key} {reason}"));
    }
    let size = log.leaves.len() as u64;
    let root = merkle::root(&log.leaves);
    let mut report = VerifyFromReport {
        checkpoint: checkpoint.clone(),
        signature,
        tree_size: size,
        root: hex::encode(root),
        proof: Vec::new(),
        problems,
    };
    if let Some(origin) = &log.origin {
        if *origin != checkpoint.origin {
            report.problems.push(format!(
                "the checkpoint is of the log {}, this store's log is {origin}",
                checkpoint.origin
            ));
            return Ok(report);
        }
    }
    if checkpoint.tree_size > size {
        report.problems.push(format!(
            "the checkpoint is of {} entries, the log has {size} now: entries {} to {} were \
             removed (or never reached this store)",
            checkpoint.tree_size,
            size + 1,
            checkpoint.tree_size
        ));
        return Ok(report);
    }
    let old_root = decode_root(&checkpoint.root)?;
    let proof =
        merkle::consistency_proof(checkpoint.tree_size as usize, &log.leaves).unwrap_or_default();
    report.proof = proof.iter().map(hex::encode).collect();
    if let Err(failure) =
        merkle::check_consistency(checkpoint.tree_size, size, &old_root, &root, &proof)
    {
        let events = catalog.events()?;
        let named = match first_differing_entry(&log.entries, &events, checkpoint.tree_size) {
            Some(seq) => format!(
                "event {seq} was rewritten: its key {} differs from the catalog's copy of it",
                EventLog::of(store).shown(&log_key(seq as i64))
            ),
            None => "the catalog's copy of the log holds the same entries, so it does not \
                     name which one changed"
                .to_string(),
        };
        report.problems.push(format!(
            "the log's first {} entries no longer hash to the checkpoint's root ({failure}): \
             the log was rewritten, not only appended to; {named}",
            checkpoint.tree_size
        ));
    }
    Ok(report)
}

/// A root of 64 lowercase hex digits, as a parsed checkpoint holds it.
fn decode_root(text: &str) -> Result<Hash> {
    let mut root = [0u8; 32];
    hex::decode_to_slice(text, &mut root)
        .map_err(|_| Error::Internal(format!("checkpoint root {text:?}")))?;
    Ok(root)
}

/// What `fsck` found about the Merkle log and the kept checkpoints.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LogAudit {
    /// The log's size, from its `log/` keys.
    pub tree_size: u64,
    /// The log's root, lowercase hex (of the entries that read).
    pub root: String,
    /// The number of kept checkpoints that were checked.
    pub checkpoints_checked: u64,
    /// Problems: (subject, reason).
    pub problems: Vec<(String, String)>,
    /// Notes for the report.
    pub notes: Vec<String>,
}

/// Recompute the Merkle root of the store's whole log from its `log/` keys and check every
/// kept checkpoint against it: its signature by the store's verifier key, its origin, its size
/// (at most the log's) and its root (that of the log's first entries of its size). A checkpoint
/// that fails names the entry the catalog's copy says was rewritten.
///
/// # Errors
///
/// Backend errors listing or reading the keys.
pub fn audit_log(
    store: &Store,
    catalog: &Catalog,
    catalog_events: &[EventRow],
) -> Result<LogAudit> {
    let log = read_log_leaves(store)?;
    let mut audit = LogAudit {
        tree_size: log.leaves.len() as u64,
        root: hex::encode(merkle::root(&log.leaves)),
        ..LogAudit::default()
    };
    // The catalog's kept subtree hashes (derived data) against its own events.
    let mut tree = catalog.log_tree()?;
    if tree.kept_in_the_catalog() && tree.size() == catalog_events.len() as u64 {
        let kept = merkle::root_of(tree.size(), &mut tree)?;
        let leaves: Vec<Hash> = catalog_events
            .iter()
            .map(|event| merkle::leaf_hash(&event.encode()))
            .collect();
        let recomputed = merkle::root(&leaves);
        if kept != recomputed {
            audit.problems.push((
                format!("catalog {}", catalog.path().escaped()),
                format!(
                    "its merkle_nodes give the root {} for its {} events, which hash to {}: \
                     the table was damaged; `evstore reindex --replace` rebuilds the catalog",
                    hex::encode(kept),
                    tree.size(),
                    hex::encode(recomputed)
                ),
            ));
        }
    }
    let shown = |key: &str| EventLog::of(store).shown(key);
    let names = store.backend().list_names(CHECKPOINTS_PREFIX)?;
    if names.is_empty() {
        return Ok(audit);
    }
    let verifier = match store_verifier_key(store) {
        Ok(key) => key,
        Err(err) => {
            audit
                .problems
                .push((shown(VERIFIER_KEY_KEY), err.to_string()));
            None
        }
    };
    let origin = log.origin.clone();
    for listed in names {
        let name = match listed {
            ListedName::Name(name) => name,
            ListedName::NotUtf8(name) => {
                audit
                    .problems
                    .push((name, "is not a checkpoint key (not UTF-8)".into()));
                continue;
            }
        };
        if name == "verifier-key" {
            continue;
        }
        let key = format!("{CHECKPOINTS_PREFIX}{name}");
        let subject = format!("checkpoint {}", shown(&key));
        let Some(size) = parse_checkpoint_key_name(&name) else {
            audit.problems.push((
                subject,
                "is not a checkpoint key (20 decimal digits: the log's size)".into(),
            ));
            continue;
        };
        audit.checkpoints_checked += 1;
        let Some(verifier) = &verifier else {
            audit.problems.push((
                subject,
                format!("the store has no verifier key ({VERIFIER_KEY_KEY}) to check it by"),
            ));
            continue;
        };
        let note = match store.backend().read_key(&key, MAX_NOTE_BYTES)? {
            KeyRead::Found(bytes) => String::from_utf8(bytes).ok(),
            _ => None,
        };
        let Some(note) = note else {
            audit
                .problems
                .push((subject, "cannot be read as a signed note".into()));
            continue;
        };
        let text = match verifier.open(&note) {
            Ok(text) => text,
            Err(err) => {
                audit.problems.push((
                    subject,
                    format!("no valid signature by {}: {err}", verifier.text()),
                ));
                continue;
            }
        };
        let checkpoint = match parse_checkpoint_text(text) {
            Ok(checkpoint) => checkpoint,
            Err(why) => {
                audit
                    .problems
                    .push((subject, format!("is not a checkpoint: {why}")));
                continue;
            }
        };
        if checkpoint.tree_size != size {
            audit.problems.push((
                subject,
                format!(
                    "is of {} entries, not of the size its name says",
                    checkpoint.tree_size
                ),
            ));
            continue;
        }
        if origin.as_deref() != Some(checkpoint.origin.as_str()) {
            audit.problems.push((
                subject,
                format!("is of another log ({})", checkpoint.origin),
            ));
            continue;
        }
        if size > audit.tree_size {
            audit.problems.push((
                subject,
                format!(
                    "is of {size} entries, but the log has {}: entries were removed",
                    audit.tree_size
                ),
            ));
            continue;
        }
        let root = hex::encode(merkle::root(&log.leaves[..size as usize]));
        if root != checkpoint.root {
            let named = match first_differing_entry(&log.entries, catalog_events, size) {
                Some(seq) => format!(
                    "event {seq} was rewritten (its log key differs from the catalog's copy)"
                ),
                None => "the catalog's copy holds the same entries".to_string(),
            };
            audit.problems.push((
                subject,
                format!(
                    "the log's first {size} entries hash to {root}, not to the checkpoint's \
                     root {}: the log was rewritten; {named}",
                    checkpoint.root
                ),
            ));
        }
    }
    if verifier.is_some() && audit.checkpoints_checked == 0 && audit.tree_size > 0 {
        audit.notes.push(format!(
            "the store keeps checkpoints but has none yet ({} entries in the log)",
            audit.tree_size
        ));
    }
    Ok(audit)
}
