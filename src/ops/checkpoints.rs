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

use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::catalog::{Catalog, EventRow};
use crate::error::{Error, IoContext, Result};
use crate::format::event::{
    log_key, parse_log_key_name, LogEntry, LOG_PREFIX, MAX_LOG_ENTRY_BYTES,
};
use crate::format::merkle::{self, Hash};
use crate::format::note::{NoteError, SignerKey, VerifierKey};
use crate::ops::transparency::{parse_checkpoint_text, read_small_text, Checkpoint};
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
    /// The key file (its record of what it signed is in the user's state folder).
    keyfile: PathBuf,
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
    let text = read_small_text(keyfile, "the signer key file")?;
    crate::fsio::refuse_key_readable_by_others(keyfile)?;
    SignerKey::parse(&text).map_err(|err| Error::Usage(format!("{}: {err}", keyfile.escaped())))
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
    let absolute = signer_key_path(store, keyfile)?;
    // The key's record of what it signs must be writable: check before the store is changed.
    drop(SignedMemory::open(&key.verifier())?);
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
    let signer = CheckpointSigner {
        key,
        keyfile: absolute.clone(),
    };
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
        // A machine that signs this store's checkpoints, or a shell that names a signer key,
        // expects a store that keeps them: one whose verifier key is gone is refused, not
        // written without a checkpoint.
        let record = signer_file(store);
        let expects = if std::fs::symlink_metadata(&record).is_ok() {
            Some(format!(
                "{} records this machine's signer key",
                record.escaped()
            ))
        } else {
            std::env::var_os(SIGNING_KEY_ENV)
                .filter(|value| !value.is_empty())
                .map(|_| format!("${SIGNING_KEY_ENV} names a signer key"))
        };
        return match expects {
            None => Ok(None),
            Some(why) => Err(Error::corrupt(
                EventLog::of(store).shown(VERIFIER_KEY_KEY),
                format!(
                    "is missing, but {why}: the store should keep signed checkpoints; nothing \
                     was written (run `evstore fsck`; unset ${SIGNING_KEY_ENV} for a store that \
                     keeps none)"
                ),
            )),
        };
    };
    let (keyfile, from) = match std::env::var_os(SIGNING_KEY_ENV) {
        Some(path) if !path.is_empty() => (PathBuf::from(path), format!("${SIGNING_KEY_ENV}")),
        _ => {
            let record = signer_file(store);
            match std::fs::symlink_metadata(&record) {
                Ok(_) => {
                    let named = PathBuf::from(
                        read_small_text(&record, "the record of this machine's signer key")?
                            .trim_end_matches('\n'),
                    );
                    if named.is_relative() {
                        return Err(Error::corrupt(
                            record.escaped().to_string(),
                            format!(
                                "names the signer key file {}, a relative path (it is written \
                                 absolute); nothing was written",
                                named.escaped()
                            ),
                        ));
                    }
                    (named, record.escaped().to_string())
                }
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
    Ok(Some(CheckpointSigner { key, keyfile }))
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
    let (checkpoint, signed) = {
        let _snapshot = catalog.read_snapshot()?;
        let mut tree = catalog.log_tree()?;
        match sign_verified(store, catalog, &mut tree, &signer.keyfile)? {
            Signed::Now(checkpoint, note) => (checkpoint, note),
            Signed::Before(signed) => {
                // Another command of this machine may have committed and signed a larger log
                // since this snapshot: then it kept that checkpoint. Otherwise the log is
                // shorter than what the key signed: rolled back.
                drop(tree);
                drop(_snapshot);
                let now = catalog.last_event_seq()? as u64;
                if now >= signed {
                    return Ok(None);
                }
                return Err(Error::corrupt(
                    format!("catalog {}", catalog.path().escaped()),
                    format!(
                        "holds {now} events, but this key signed the log of {signed} already: \
                         the log was rolled back (or this catalog is behind); nothing was signed: \
                         run `evstore fsck`"
                    ),
                ));
            }
        }
    };
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

/// A log's origin line, `evstore-log/<hash of event 1>`, taken from the store's `log/…1` decoded
/// strictly (its hash recomputed from its fields) and equal to the catalog's event 1: never from
/// the catalog's text alone, which could hold anything (a line break, a space).
pub struct VerifiedOrigin(String);

/// The log's [`VerifiedOrigin`].
///
/// # Errors
///
/// [`Error::Corrupt`] when `log/…1` is missing, does not decode, or is not the catalog's first
/// event; [`Error::Usage`] for an empty log.
pub fn verified_origin(store: &Store, catalog: &Catalog) -> Result<VerifiedOrigin> {
    let first = catalog
        .event_at(1)?
        .ok_or_else(|| Error::Usage("the store's event log is empty".into()))?;
    let key = log_key(1);
    let shown = EventLog::of(store).shown(&key);
    let bytes = match store.backend().read_key(&key, MAX_LOG_ENTRY_BYTES)? {
        KeyRead::Found(bytes) => bytes,
        _ => {
            return Err(Error::corrupt(
                shown,
                "cannot be read, so the log has no origin to sign; nothing was signed",
            ))
        }
    };
    let entry = LogEntry::decode(&bytes)
        .map_err(|why| Error::corrupt(shown.clone(), format!("{why}; nothing was signed")))?;
    if entry.seq != 1 || bytes != first.encode() {
        return Err(Error::corrupt(
            shown,
            "is not the catalog's event 1 byte for byte; nothing was signed: run `evstore fsck`",
        ));
    }
    Ok(VerifiedOrigin(format!("evstore-log/{}", entry.hash)))
}

/// True for an origin line evstore makes: `evstore-log/` and 64 lowercase hex digits.
fn is_evstore_origin(origin: &str) -> bool {
    origin
        .strip_prefix("evstore-log/")
        .is_some_and(|hash| hash.len() == 64 && crate::digest::is_lower_hex(hash))
}

/// What a signer key signed, remembered by its holder outside every store: in this user's state
/// folder (`$EVSTORE_STATE`, else `$XDG_STATE_HOME/evstore`, else `~/.local/state/evstore`), in
/// `signed/<SHA-256 of the verifier key text, hex>`, so every copy of one key file on this
/// machine shares it. One line per log, `ORIGIN SIZE ROOT` (root in lowercase hex), the largest
/// size signed. A signature is made only of a log that extends the one remembered (so deleting
/// checkpoints or `log/` keys in a store cannot make the key sign a second log of a size it
/// signed), and the record is rewritten by rename under an exclusive lock on `<record>.lock`.
struct SignedMemory {
    path: PathBuf,
    logs: std::collections::BTreeMap<String, (u64, Hash)>,
    /// Held while the record is read, checked against and rewritten.
    _turn: crate::fsio::Lock,
}

/// The most a key's record is read (about 110 000 logs); a larger one is refused.
const MAX_SIGNED_RECORD_BYTES: u64 = 16 << 20;

/// This user's evstore state folder: `$EVSTORE_STATE`, else `$XDG_STATE_HOME/evstore`, else
/// `$HOME/.local/state/evstore`. A relative `$EVSTORE_STATE` is refused; a relative
/// `$XDG_STATE_HOME` is ignored (the XDG Base Directory specification).
fn state_folder() -> Result<PathBuf> {
    let absolute = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| !p.as_os_str().is_empty())
    };
    if let Some(path) = absolute("EVSTORE_STATE") {
        if path.is_relative() {
            return Err(Error::Usage(format!(
                "$EVSTORE_STATE is {}: it must be an absolute path",
                path.escaped()
            )));
        }
        return Ok(path);
    }
    if let Some(path) = absolute("XDG_STATE_HOME").filter(|p| p.is_absolute()) {
        return Ok(path.join("evstore"));
    }
    match absolute("HOME").filter(|p| p.is_absolute()) {
        Some(home) => Ok(home.join(".local/state/evstore")),
        None => Err(Error::Usage(
            "no folder to keep the record of what a signer key signed: set $EVSTORE_STATE (or \
             $XDG_STATE_HOME or $HOME)"
                .into(),
        )),
    }
}

impl SignedMemory {
    /// The record of the key whose verifier key is `verifier`, locked: empty if it has signed
    /// nothing yet.
    fn open(verifier: &VerifierKey) -> Result<SignedMemory> {
        use sha2::Digest as _;
        let folder = state_folder()?.join("signed");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&folder)
            .at(&folder, "cannot create the folder of signer keys' records")?;
        let name = hex::encode(sha2::Sha256::digest(verifier.text().as_bytes()));
        let path = folder.join(&name);
        let lock_path = folder.join(format!("{name}.lock"));
        let lock_file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .at(&lock_path, "cannot open")?;
        let turn = crate::fsio::Lock::wait(lock_file, crate::fsio::LockMode::Exclusive)
            .at(&lock_path, "cannot lock")?;
        let mut logs = std::collections::BTreeMap::new();
        let text = match std::fs::symlink_metadata(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            _ => String::from_utf8(crate::ops::transparency::read_input_at_most(
                &path,
                "the record of what this key signed",
                MAX_SIGNED_RECORD_BYTES,
            )?)
            .map_err(|_| {
                Error::Usage(format!(
                    "{}: not UTF-8: this record of what the key signed is damaged; nothing was \
                     signed",
                    path.escaped()
                ))
            })?,
        };
        for line in text.split_terminator('\n') {
            let parsed = match line.split(' ').collect::<Vec<_>>()[..] {
                [origin, size, root] => size
                    .parse::<u64>()
                    .ok()
                    .zip(decode_root(root).ok())
                    .map(|entry| (origin.to_string(), entry)),
                _ => None,
            };
            let Some((origin, entry)) = parsed.filter(|(origin, _)| is_evstore_origin(origin))
            else {
                return Err(Error::Usage(format!(
                    "{}: {line:?} is not a line `ORIGIN SIZE ROOT`: this record of what the key \
                     signed is damaged; nothing was signed",
                    path.escaped()
                )));
            };
            logs.insert(origin, entry);
        }
        Ok(SignedMemory {
            path,
            logs,
            _turn: turn,
        })
    }

    /// Remember that the key signed `checkpoint` (when it is larger than what it remembers).
    fn record(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        if !is_evstore_origin(&checkpoint.origin) {
            return Err(Error::Internal(format!(
                "a checkpoint of the origin {:?} to remember",
                checkpoint.origin
            )));
        }
        let root = decode_root(&checkpoint.root)?;
        if self
            .logs
            .get(&checkpoint.origin)
            .is_some_and(|(size, _)| *size >= checkpoint.tree_size)
        {
            return Ok(());
        }
        self.logs
            .insert(checkpoint.origin.clone(), (checkpoint.tree_size, root));
        let text: String = self
            .logs
            .iter()
            .map(|(origin, (size, root))| format!("{origin} {size} {}\n", hex::encode(root)))
            .collect();
        let folder = self.path.parent().unwrap_or(Path::new("."));
        let mut temp = tempfile::Builder::new()
            .prefix(".evstore-signed-")
            .tempfile_in(folder)
            .at(
                folder,
                "cannot record what the key signed: cannot create a file in",
            )?;
        std::io::Write::write_all(&mut temp, text.as_bytes())
            .and_then(|()| temp.as_file().sync_all())
            .at(&self.path, "cannot write")?;
        temp.persist(&self.path)
            .map_err(|err| Error::io(&self.path, "cannot move into place", err.error))?;
        Ok(())
    }
}

/// The signer key file's real path (symbolic links resolved, so one key has one memory of what
/// it signed however it is reached), refused when it lies inside a local store's folder: whoever
/// can write the store could then change the key's memory.
fn signer_key_path(store: &Store, keyfile: &Path) -> Result<PathBuf> {
    let real = std::fs::canonicalize(keyfile).map_err(|err| {
        Error::Usage(format!(
            "{}: cannot find the signer key file: {err}",
            keyfile.escaped()
        ))
    })?;
    if !store.is_remote() {
        if let Ok(root) = std::fs::canonicalize(store.root()) {
            if real.starts_with(&root) {
                return Err(Error::Usage(format!(
                    "the signer key file {} is inside the store {}: whoever can write the store \
                     could change it and its record of what it signed; keep it outside; nothing \
                     was signed",
                    real.escaped(),
                    root.escaped()
                )));
            }
        }
    }
    Ok(real)
}

/// What [`sign_verified`] did.
enum Signed {
    /// It signed the checkpoint: its note.
    Now(Checkpoint, String),
    /// The key signed a larger checkpoint of this log already (another command of this machine
    /// got there first): its size.
    Before(u64),
}

/// Sign the checkpoint of the log at `tree`'s size with the key in `keyfile`, verified as
/// [`verified_checkpoint`] says against what the key signed before, and remember it. Holds an
/// exclusive lock on the key file meanwhile, so two commands of one machine take turns. Call it
/// inside a read snapshot of `catalog`.
fn sign_verified(
    store: &Store,
    catalog: &Catalog,
    tree: &mut crate::catalog::LogTree<'_>,
    keyfile: &Path,
) -> Result<Signed> {
    let keyfile = &signer_key_path(store, keyfile)?;
    let key = read_signer_key(keyfile)?;
    let mut memory = SignedMemory::open(&key.verifier())?;
    let origin = verified_origin(store, catalog)?;
    let signed_before = memory.logs.get(&origin.0).copied();
    if let Some((size, _)) = signed_before {
        if size > tree.size() {
            return Ok(Signed::Before(size));
        }
    }
    let checkpoint = verified_checkpoint(store, catalog, tree, &origin, signed_before)?;
    let note = key
        .sign(&checkpoint.text()?)
        .map_err(|err| Error::Internal(format!("a checkpoint is not a note text: {err}")))?;
    memory.record(&checkpoint)?;
    Ok(Signed::Now(checkpoint, note))
}

/// Sign the checkpoint of the log at `tree`'s size with the key in `keyfile` for a user who
/// asked for it (`log checkpoint --sign`, `prove --sign`): as [`sign_verified`], and a log
/// shorter than one the key signed is refused. Call it inside a read snapshot of `catalog`.
///
/// # Errors
///
/// As [`verified_checkpoint`]; [`Error::Corrupt`] for a log shorter than one the key signed;
/// [`Error::Usage`] for a key file that holds no signer key, or whose record cannot be written.
pub fn sign_verified_now(
    store: &Store,
    catalog: &Catalog,
    tree: &mut crate::catalog::LogTree<'_>,
    keyfile: &Path,
) -> Result<(Checkpoint, String)> {
    match sign_verified(store, catalog, tree, keyfile)? {
        Signed::Now(checkpoint, note) => Ok((checkpoint, note)),
        Signed::Before(size) => Err(Error::corrupt(
            format!("catalog {}", catalog.path().escaped()),
            format!(
                "holds {} events, but this key signed the log of {size} already: the catalog is \
                 behind, or the log was rolled back; nothing was signed",
                tree.size()
            ),
        )),
    }
}

/// The newest checkpoint the store keeps whose size is at least `seq` and at most `size_now`
/// (so it covers event `seq` and the catalog can prove it), its signature checked by the
/// store's verifier key: its size and its signed note. `None` for a store that keeps no
/// checkpoints, or none such.
///
/// # Errors
///
/// Backend errors; [`Error::Corrupt`] for a kept checkpoint that cannot be read or does not
/// verify.
pub fn newest_kept_covering(
    store: &Store,
    seq: u64,
    size_now: u64,
) -> Result<Option<(u64, String)>> {
    let Some(verifier) = store_verifier_key(store)? else {
        return Ok(None);
    };
    let Some((size, note)) = newest_kept_at_most(store, size_now)? else {
        return Ok(None);
    };
    if size < seq {
        return Ok(None);
    }
    if let Err(err) = verifier.open(&note) {
        return Err(Error::corrupt(
            EventLog::of(store).shown(&checkpoint_key(size)),
            format!(
                "no valid signature by {}: {err}; run `evstore fsck`",
                verifier.text()
            ),
        ));
    }
    Ok(Some((size, note)))
}

/// The checkpoint of the log now, verified as [`verified_checkpoint`] says and signed with the
/// signer key in `keyfile`: the checkpoint and its signed note.
///
/// # Errors
///
/// As [`verified_checkpoint`]; [`Error::Usage`] for a key file that holds no signer key.
pub fn sign_verified_checkpoint(
    store: &Store,
    catalog: &Catalog,
    keyfile: &Path,
) -> Result<(Checkpoint, String)> {
    let _snapshot = catalog.read_snapshot()?;
    let mut tree = catalog.log_tree()?;
    sign_verified_now(store, catalog, &mut tree, keyfile)
}

/// The checkpoint of the log at `tree`'s size, for signing: its root is not taken on the
/// catalog's word (nor on anything else in the store) but verified against what the signing
/// key signed before (`signed_before`: the size and root its holder remembers signing of this
/// log, [`SignedMemory`]) and the store's `log/` bytes. That earlier checkpoint vouches for its
/// first `m` entries: the catalog's kept subtrees on its right edge must fold to its root, and
/// a log now shorter than `m` is refused (rolled back). The entries after it are read from
/// `log/` (one read each; all of them the first time a key signs a log) and must be the
/// catalog's events byte for byte. The root of the whole is computed from those two, and the
/// catalog's kept subtrees must give the same root (so the proofs made from them hold against
/// it). Call it inside a read snapshot of `catalog`.
///
/// # Errors
///
/// [`Error::Corrupt`] when the catalog disagrees with what was signed or with `log/`, the log
/// is shorter than what was signed, or `log/` lacks an entry: nothing is signed; catalog and
/// backend errors.
pub fn verified_checkpoint(
    store: &Store,
    catalog: &Catalog,
    tree: &mut crate::catalog::LogTree<'_>,
    origin: &VerifiedOrigin,
    signed_before: Option<(u64, Hash)>,
) -> Result<Checkpoint> {
    let size = tree.size();
    let origin = origin.0.clone();
    let log = EventLog::of(store);
    let refuse = |what: String, reason: String| {
        Error::corrupt(
            what,
            format!("{reason}; nothing was signed: run `evstore fsck`"),
        )
    };
    // What this key signed already of this log, as its holder remembers it.
    let (old_size, old_root) = match signed_before {
        None => (0, None),
        Some((old_size, _)) if old_size > size => {
            return Err(refuse(
                format!("catalog {}", catalog.path().escaped()),
                format!(
                    "holds {size} events, but this key signed the log of {old_size} already: the \
                     catalog is behind, or the log was rolled back"
                ),
            ))
        }
        Some((old_size, root)) => (
            old_size,
            Some((
                format!("the checkpoint of {old_size} events this key signed"),
                root,
            )),
        ),
    };
    // The catalog's subtrees on the right edge of the first `old_size` entries.
    let mut frontier = std::collections::HashMap::new();
    let mut start = 0u64;
    for level in (0..64u32).rev() {
        if old_size & (1u64 << level) != 0 {
            let index = start >> level;
            frontier.insert(
                (level, index),
                merkle::PerfectSubtrees::perfect_subtree(tree, level, index)?,
            );
            start += 1u64 << level;
        }
    }
    let mut extension = LogExtension {
        frontier,
        old_size,
        new_leaves: Vec::new(),
    };
    if let Some((shown, old_root)) = old_root {
        if merkle::root_of(old_size, &mut extension)? != old_root {
            return Err(refuse(
                format!("catalog {}", catalog.path().escaped()),
                format!(
                    "its kept subtree hashes (merkle_nodes) do not give the root of {shown}, \
                     which is signed: the catalog was changed"
                ),
            ));
        }
    }
    // The entries after it, from the store's log, each the catalog's event byte for byte.
    for seq in old_size + 1..=size {
        let key = log_key(seq as i64);
        let bytes = match store.backend().read_key(&key, MAX_LOG_ENTRY_BYTES)? {
            KeyRead::Found(bytes) => bytes,
            KeyRead::Missing => {
                return Err(refuse(
                    log.shown(&key),
                    format!("is missing, but the catalog holds event {seq}"),
                ))
            }
            KeyRead::TooLarge => {
                return Err(refuse(
                    log.shown(&key),
                    "is larger than a log entry can be".into(),
                ))
            }
            KeyRead::Unreadable(reason) => return Err(refuse(log.shown(&key), reason)),
        };
        let held = catalog.event_at(seq as i64)?.map(|event| event.encode());
        if held.as_deref() != Some(bytes.as_slice()) {
            return Err(refuse(
                log.shown(&key),
                format!("is not the catalog's event {seq} byte for byte"),
            ));
        }
        extension.new_leaves.push(merkle::leaf_hash(&bytes));
    }
    let root = merkle::root_of(size, &mut extension)?;
    if merkle::root_of(size, tree)? != root {
        let what = if tree.kept_in_the_catalog() {
            "its kept subtree hashes (merkle_nodes) do not"
        } else {
            "its events do not"
        };
        return Err(refuse(
            format!("catalog {}", catalog.path().escaped()),
            format!(
                "{what} give the root of the log's {size} entries ({}): the catalog was changed",
                hex::encode(root)
            ),
        ));
    }
    Ok(Checkpoint {
        origin,
        tree_size: size,
        root: hex::encode(root),
    })
}

/// A log of `old_size` entries known by the hashes on its right edge (`frontier`), extended by
/// `new_leaves`: the perfect subtrees of the longer log.
struct LogExtension {
    frontier: std::collections::HashMap<(u32, u64), Hash>,
    old_size: u64,
    new_leaves: Vec<Hash>,
}

impl merkle::PerfectSubtrees for LogExtension {
    type Error = Error;

    fn perfect_subtree(&mut self, level: u32, index: u64) -> Result<Hash> {
        let start = index << level;
        let end = start + (1u64 << level);
        if end <= self.old_size {
            // A subtree inside the old log that a root or proof of a longer log asks for is one
            // of its right edge: its parent reaches past the old log's end.
            return self.frontier.get(&(level, index)).copied().ok_or_else(|| {
                Error::Internal(format!(
                    "subtree {level}/{index} is not on the old log's edge"
                ))
            });
        }
        if start >= self.old_size {
            let from = (start - self.old_size) as usize;
            let leaves = self
                .new_leaves
                .get(from..from + (1usize << level))
                .ok_or_else(|| Error::Internal(format!("subtree {level}/{index} past the log")))?;
            let mut leaves: &[Hash] = leaves;
            return leaves
                .perfect_subtree(level, 0)
                .map_err(|never| match never {});
        }
        let left = self.perfect_subtree(level - 1, index * 2)?;
        let right = self.perfect_subtree(level - 1, index * 2 + 1)?;
        Ok(merkle::node_hash(&left, &right))
    }
}

/// The newest checkpoint the store keeps of at most `size` entries: its size and note.
fn newest_kept_at_most(store: &Store, size: u64) -> Result<Option<(u64, String)>> {
    let newest = store
        .backend()
        .list_names(CHECKPOINTS_PREFIX)?
        .into_iter()
        .filter_map(|listed| match listed {
            ListedName::Name(name) => parse_checkpoint_key_name(&name),
            ListedName::NotUtf8(_) => None,
        })
        .filter(|kept| *kept >= 1 && *kept <= size)
        .max();
    let Some(kept) = newest else {
        return Ok(None);
    };
    let key = checkpoint_key(kept);
    let shown = EventLog::of(store).shown(&key);
    match store.backend().read_key(&key, MAX_NOTE_BYTES)? {
        KeyRead::Found(bytes) => String::from_utf8(bytes)
            .map(|note| Some((kept, note)))
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
    let note = read_small_text(file, "a checkpoint")?;
    if note.contains('\r') {
        return Err(Error::Usage(format!(
            "{}: holds a carriage return: a checkpoint's lines end in a line feed alone (C2SP \
             tlog-checkpoint), so this is not one as it was signed",
            file.escaped()
        )));
    }
    let asked_for = key.is_some();
    let key = match key {
        Some(text) => {
            Some(VerifierKey::parse(text).map_err(|err| Error::Usage(format!("--key: {err}")))?)
        }
        None => store_verifier_key(store)?,
    };
    let mut problems = Vec::new();
    let (text, signature) = match (note.find("\n\n"), &key) {
        (None, Some(key)) if asked_for => {
            problems.push(format!(
                "the checkpoint carries no signature, and --key asks for one by {}",
                key.text()
            ));
            (note.as_str(), "FAILED: not signed".to_string())
        }
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

/// The catalog's kept subtree hashes (`merkle_nodes`, derived data) against its own events:
/// every row must be the hash of its subtree of the events' leaves, and every subtree the
/// events complete must have its row (when the table exists: an older catalog's is filled in
/// by the next writer).
fn check_kept_subtrees(catalog: &Catalog, events: &[EventRow], audit: &mut LogAudit) -> Result<()> {
    let rows = catalog.merkle_node_rows()?;
    if rows.is_empty() {
        return Ok(());
    }
    let subject = format!("catalog {}", catalog.path().escaped());
    // Level by level, the hashes the events give.
    let mut levels: Vec<Vec<Hash>> = vec![events
        .iter()
        .map(|event| merkle::leaf_hash(&event.encode()))
        .collect()];
    while let Some(below) = levels.last().filter(|level| level.len() >= 2) {
        let above: Vec<Hash> = below
            .chunks_exact(2)
            .map(|pair| merkle::node_hash(&pair[0], &pair[1]))
            .collect();
        levels.push(above);
    }
    let expected = |level: u32, index: u64| {
        levels
            .get(level as usize)
            .and_then(|hashes| hashes.get(index as usize))
    };
    let mut wrong = Vec::new();
    let malformed = rows.iter().filter(|row| row.is_none()).count();
    if malformed > 0 {
        wrong.push(format!(
            "{malformed} rows that are no node (a level, index or hash of the wrong type)"
        ));
    }
    let rows: Vec<(u32, u64, Hash)> = rows.into_iter().flatten().collect();
    for (level, index, hash) in &rows {
        match expected(*level, *index) {
            Some(want) if want == hash => {}
            Some(_) => wrong.push(format!("level {level}, index {index}: another hash")),
            None => wrong.push(format!(
                "level {level}, index {index}: a subtree of events the catalog does not hold"
            )),
        }
    }
    let held: std::collections::HashSet<(u32, u64)> = rows
        .iter()
        .map(|(level, index, _)| (*level, *index))
        .collect();
    // The leaves the table holds (a table behind the events is filled in by the next writer).
    let leaves_held = rows
        .iter()
        .filter(|(level, ..)| *level == 0)
        .map(|(_, index, _)| index + 1)
        .max()
        .unwrap_or(0);
    if leaves_held < events.len() as u64 {
        audit.notes.push(format!(
            "{subject}: its merkle_nodes hold {leaves_held} of its {} events' leaves (written \
             by an older evstore); the next command that writes fills them in",
            events.len()
        ));
    }
    let missing = levels
        .iter()
        .enumerate()
        .flat_map(|(level, hashes)| {
            (0..hashes.len()).map(move |index| (level as u32, index as u64))
        })
        .filter(|(level, index)| (index + 1) << level <= leaves_held)
        .filter(|node| !held.contains(node))
        .count();
    if missing > 0 {
        wrong.push(format!(
            "{missing} subtree hashes of its events are missing"
        ));
    }
    if !wrong.is_empty() {
        let shown: Vec<String> = wrong.iter().take(5).cloned().collect();
        audit.problems.push((
            subject,
            format!(
                "its merkle_nodes (the log's kept subtree hashes) disagree with its {} events in \
                 {} places ({}{}): proofs made from them are wrong; `evstore reindex --replace` \
                 rebuilds the catalog",
                events.len(),
                wrong.len(),
                shown.join("; "),
                if wrong.len() > 5 { "; …" } else { "" }
            ),
        ));
    }
    Ok(())
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
    check_kept_subtrees(catalog, catalog_events, &mut audit)?;
    let shown = |key: &str| EventLog::of(store).shown(key);
    let names = store.backend().list_names(CHECKPOINTS_PREFIX)?;
    let record = signer_file(store);
    if std::fs::symlink_metadata(&record).is_ok()
        && !names
            .iter()
            .any(|name| matches!(name, ListedName::Name(name) if name == "verifier-key"))
    {
        audit.problems.push((
            shown(VERIFIER_KEY_KEY),
            format!(
                "is missing, but {} records this machine's signer key for the store: its \
                 checkpoints were removed",
                record.escaped()
            ),
        ));
    }
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
    let mut newest_kept = 0u64;
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
        newest_kept = newest_kept.max(size);
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
    if verifier.is_some() && newest_kept < audit.tree_size {
        let uncovered = if newest_kept + 1 == audit.tree_size {
            format!("event {}", audit.tree_size)
        } else {
            format!("events {} to {}", newest_kept + 1, audit.tree_size)
        };
        audit.notes.push(format!(
            "{uncovered}: covered by no kept checkpoint (the newest is of {newest_kept} events): \
             a writer is between its append and its checkpoint, a checkpoint failed, or an \
             entry was added by something that holds no signer key"
        ));
    }
    Ok(audit)
}
