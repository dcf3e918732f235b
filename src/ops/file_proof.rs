//! File proofs: `evstore prove PACKET PATH` writes one JSON document proving that a file (its
//! size, SHA-256 and BLAKE3) sits at a path of a packet whose `ingest` event is in the store's
//! event log, as a (signed) checkpoint of that log names it; `evstore proof check-file` checks
//! such a document with nothing but the binary, the verifier key and, if wanted, the file.
//!
//! The proof is a chain of hashes from the file up to the checkpoint (FORMAT.md §7h): the tree
//! nodes from the packet's root to the folder holding the file, whole (a node's id is the BLAKE3
//! of its whole encoding, so a verifier needs every byte of it), each naming the next by its id
//! and the last naming the file's size and digests; the `ingest` event's exact log entry, whose
//! detail names the root node's id as the packet's `tree`; the event's RFC 9162 inclusion proof;
//! and the checkpoint, whose size and root the inclusion proof is checked against.
//!
//! Proving reads the packet's record (checked against its catalog row), the tree nodes on the
//! path and the catalog's events, and checks the proof it made before handing it out. Checking
//! reads no store: every check is recomputed from the proof's bytes, fails closed, and is named
//! with its reason in the report. A proof that is not this JSON at all is a usage error (exit
//! 2); a proof that is this JSON but does not prove what it says fails a check (exit 1).

use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, EventRow, PacketRow};
use crate::digest::{blake3_of, Blake3Digest, DualDigest, DualHasher, Sha256Digest};
use crate::error::{Error, Result};
use crate::format::event::{named_object, EventKind, LogEntry, NamedObject};
use crate::format::merkle::{self, Hash};
use crate::format::note::VerifierKey;
use crate::format::object::ObjectKind;
use crate::format::tree::{FileMeta, TreeEntry, TreeNode};
use crate::ops::checkpoints::checkpoint_key;
use crate::ops::transparency::{self, Checkpoint, InclusionProof};
use crate::store::Store;
use crate::text::EscapePath;

/// The `format` tag of a file proof.
pub const FILE_PROOF_FORMAT: &str = "evstore-file-proof/1";

/// The largest proof `proof check-file` reads, and `prove` writes: 64 MiB. A folder node of
/// 100 000 files with 20-byte names is about 9.5 MB, 12.7 MB in base64; the cap leaves room for
/// a path through a few such folders or for longer names.
pub const MAX_FILE_PROOF_BYTES: u64 = 64 << 20;

/// Standard base64 with padding, as the proof's byte fields are written; decoding refuses
/// non-canonical padding and trailing bits, so each byte string has one spelling.
fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// A file proof, as `evstore prove` prints it and `evstore proof check-file` reads it
/// (FORMAT.md §7h). Every field is required and no other is accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileProof {
    /// [`FILE_PROOF_FORMAT`].
    pub format: String,
    /// The packet, `NAME@N`: the subject of its `ingest` event.
    pub packet: String,
    /// The file's path in the packet (`/`-separated components).
    pub path: String,
    /// What the proof says the file is.
    pub file: ProvenFile,
    /// The tree nodes from the packet's root to the folder holding the file, root first: each
    /// node's exact CBOR bytes in standard base64 with padding.
    pub nodes: Vec<String>,
    /// The packet's `ingest` event: its exact log entry bytes (its `log/` key's content), in
    /// standard base64 with padding.
    pub event: String,
    /// The event's inclusion proof in the log at the checkpoint's size.
    pub inclusion: InclusionProof,
    /// The checkpoint's note text: a signed note (`prove --sign`) or the bare checkpoint text.
    pub checkpoint: String,
}

/// The file a proof is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenFile {
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, 64 lowercase hex digits.
    pub sha256: String,
    /// Its BLAKE3, 64 lowercase hex digits.
    pub blake3: String,
}

impl FileProof {
    /// The proof as `prove` prints it: pretty JSON, fields in the order above, and a newline.
    ///
    /// # Errors
    ///
    /// [`Error::Internal`] if it cannot be encoded (it always can).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map(|text| text + "\n")
            .map_err(|err| Error::Internal(format!("cannot encode a file proof: {err}")))
    }

    /// Read a proof's JSON strictly: JSON, the format tag [`FILE_PROOF_FORMAT`], every field
    /// present, no other field, no field twice. The error is a reason sentence.
    ///
    /// # Errors
    ///
    /// The reason the bytes are not a file proof.
    pub fn from_json(bytes: &[u8]) -> std::result::Result<FileProof, String> {
        /// Only the tag, read first so that a proof of another format says so (rather than
        /// naming the first field this version does not know).
        #[derive(Deserialize)]
        struct Tag {
            format: Option<serde_json::Value>,
        }
        let tag: Tag = serde_json::from_slice(bytes)
            .map_err(|err| format!("not a file proof's JSON object: {err}"))?;
        match tag.format {
            Some(serde_json::Value::String(format)) if format == FILE_PROOF_FORMAT => {}
            Some(other) => {
                return Err(format!(
                    "its format is {other}, not {FILE_PROOF_FORMAT:?}: not a file proof this \
                     evstore reads"
                ))
            }
            None => {
                return Err(format!(
                    "it has no \"format\" field: not a file proof ({FILE_PROOF_FORMAT:?})"
                ))
            }
        }
        serde_json::from_slice(bytes).map_err(|err| format!("not a file proof: {err}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Proving.
// ---------------------------------------------------------------------------------------------

/// The proof that the file `path` of the stored packet `row` is in the packet its `ingest`
/// event committed, in the log as the catalog holds it now; its checkpoint signed with the
/// signer key in `sign_with` when given. The proof is checked before it is returned.
///
/// # Errors
///
/// [`Error::Usage`] for a path that is not a packet path or names a folder, or a proof larger
/// than [`MAX_FILE_PROOF_BYTES`]; [`Error::NotFound`] for a path the packet does not hold, or a
/// packet whose `ingest` event the log lacks; [`Error::Corrupt`] for a record, node or log that
/// is damaged or disagrees with the catalog; the errors of reading the store, the catalog and
/// the key file.
pub fn prove_file(
    store: &Store,
    catalog: &Catalog,
    row: &PacketRow,
    path: &str,
    sign_with: Option<&Path>,
) -> Result<FileProof> {
    crate::scan::check_rel_path(path)
        .map_err(|reason| Error::Usage(format!("{path:?} is not a path in a packet: {reason}")))?;
    let record = crate::packet::verified_record(store, row)?;
    let label = format!("{}@{}", record.name, record.version);
    let (nodes, meta) = nodes_on_path(store, &record.tree, &label, path)?;
    // One snapshot: the log's size, its hashes and the event are of one moment.
    let _snapshot = catalog.read_snapshot()?;
    let mut tree = catalog.log_tree()?;
    let event = ingest_event(catalog, row, &label, tree.size())?;
    let first = catalog
        .event_at(1)?
        .ok_or_else(|| Error::Internal("an ingest event in an empty log".into()))?;
    // The checkpoint: signed now with --sign; else the newest one the store keeps that covers
    // the event (signed by the store's key, so whoever proves needs no private key); else the
    // bare checkpoint of the log now.
    let kept = match sign_with {
        Some(_) => None,
        None => {
            crate::ops::checkpoints::newest_kept_covering(store, event.seq as u64, tree.size())?
        }
    };
    // A checkpoint signed now is of a root verified against what is signed already and the
    // store's `log/` (the proof below is made from the same kept hashes, and checked).
    let signed_now = match sign_with {
        Some(keyfile) => Some(crate::ops::checkpoints::sign_verified_now(
            store, catalog, &mut tree, keyfile,
        )?),
        None => None,
    };
    let size = kept.as_ref().map_or(tree.size(), |(size, _)| *size);
    let checkpoint_note = |checkpoint: &Checkpoint| match (&signed_now, &kept) {
        (Some((verified, note)), _) => {
            if verified != checkpoint {
                return Err(Error::Internal(format!(
                    "the checkpoint signed ({} events, root {}) is not the one proved against \
                     ({} events, root {})",
                    verified.tree_size, verified.root, checkpoint.tree_size, checkpoint.root
                )));
            }
            Ok(note.clone())
        }
        (None, Some((_, note))) => {
            let text = checkpoint.text()?;
            if note.split_once("\n\n").map(|(body, _)| format!("{body}\n")) != Some(text) {
                return Err(Error::corrupt(
                    format!("kept checkpoint {}", checkpoint_key(size)),
                    format!(
                        "is not the checkpoint of the catalog's log at {size} events (root {}): \
                         run `evstore fsck`",
                        checkpoint.root
                    ),
                ));
            }
            Ok(note.clone())
        }
        (None, None) => checkpoint.text(),
    };
    let proof = assemble_proof_from(
        &ProofParts {
            label: &label,
            path,
            meta: &meta,
            nodes: &nodes,
            first: &first,
            event: &event,
            size,
        },
        &mut tree,
        checkpoint_note,
    )?;
    let size = proof.to_json()?.len() as u64;
    if size > MAX_FILE_PROOF_BYTES {
        return Err(Error::Usage(format!(
            "the proof of {path:?} in {label} would be {size} bytes, more than the {} MiB \
             `proof check-file` reads: the folders on its path are too large",
            MAX_FILE_PROOF_BYTES >> 20
        )));
    }
    Ok(proof)
}

/// The exact bytes of the tree nodes from `root` to the folder holding the file `path` (a
/// valid packet path), and the file's entry. Each node is read from the store (which checks it
/// hashes to its id) and decoded strictly.
fn nodes_on_path(
    store: &Store,
    root: &Blake3Digest,
    label: &str,
    path: &str,
) -> Result<(Vec<Vec<u8>>, FileMeta)> {
    let components: Vec<&str> = path.split('/').collect();
    let mut nodes = Vec::with_capacity(components.len());
    let mut id = *root;
    for (depth, component) in components.iter().enumerate() {
        let (kind, bytes) = store.read_small_object(&id)?;
        if kind != ObjectKind::Tree {
            return Err(Error::corrupt(
                format!("tree node {id} of {label}"),
                format!("object kind is {}, not tree", kind.name()),
            ));
        }
        let node = TreeNode::decode(&bytes)
            .map_err(|reason| Error::corrupt(format!("tree node {id} of {label}"), reason))?;
        nodes.push(bytes);
        let folder = match depth {
            0 => "its root folder".to_string(),
            _ => format!("the folder {:?}", components[..depth].join("/")),
        };
        let is_last = depth + 1 == components.len();
        match (entry_named(&node, component), is_last) {
            (Some(TreeEntry::File { meta, .. }), true) => return Ok((nodes, *meta)),
            (Some(TreeEntry::Dir { tree, .. }), false) => id = *tree,
            (Some(TreeEntry::Dir { .. }), true) => {
                return Err(Error::Usage(format!(
                    "{path:?} is a folder in {label}, not a file: a proof is of one file"
                )))
            }
            (Some(TreeEntry::File { .. }), false) => {
                return Err(Error::NotFound(format!(
                    "{label} has no file {path:?}: {:?} is a file, not a folder",
                    components[..=depth].join("/")
                )))
            }
            (None, _) => {
                return Err(Error::NotFound(format!(
                    "{label} has no file {path:?}: {folder} holds nothing named {component:?}"
                )))
            }
        }
    }
    Err(Error::Internal(format!(
        "the path {path:?} has no component"
    )))
}

/// The entry of `node` named `name` (entries are sorted by name bytes).
fn entry_named<'n>(node: &'n TreeNode, name: &str) -> Option<&'n TreeEntry> {
    let entries = node.entries();
    entries
        .binary_search_by(|entry| entry.name().cmp(name))
        .ok()
        .map(|at| &entries[at])
}

/// The `ingest` event that committed the packet `row` (named `label`), in a log of `size`
/// events: its subject is `label` and its detail names the row's record and tree.
fn ingest_event(catalog: &Catalog, row: &PacketRow, label: &str, size: u64) -> Result<EventRow> {
    let event = catalog
        .events_of(EventKind::Ingest.name(), label)?
        .into_iter()
        .find(|event| {
            named_object(&event.kind, &event.detail) == Some(NamedObject::Record(row.record_id))
        })
        .filter(|event| event.seq >= 1 && event.seq as u64 <= size)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "the event log holds no ingest event committing {label} (record {}), so there \
                 is no log entry to prove its files by; `evstore fsck` checks the log",
                row.record_id
            ))
        })?;
    if ingest_tree(&event.detail) != Some(row.record.tree) {
        return Err(Error::corrupt(
            format!("event {}", event.seq),
            format!(
                "it commits {label}, but its detail's tree is not the record's tree {}",
                row.record.tree
            ),
        ));
    }
    Ok(event)
}

/// The `tree` an `ingest` event's detail names, if it is JSON with that field as 64 lowercase
/// hex digits.
fn ingest_tree(detail: &str) -> Option<Blake3Digest> {
    let detail: serde_json::Value = serde_json::from_str(detail).ok()?;
    Blake3Digest::parse_hex(detail.get("tree")?.as_str()?)
}

/// What a proof is made of, besides the log's hashes.
struct ProofParts<'a> {
    /// The packet, `NAME@N`.
    label: &'a str,
    /// The file's path in it.
    path: &'a str,
    /// The file's entry.
    meta: &'a FileMeta,
    /// The node bytes on its path, root first.
    nodes: &'a [Vec<u8>],
    /// The log's first event (its hash names the log's origin).
    first: &'a EventRow,
    /// The packet's `ingest` event.
    event: &'a EventRow,
    /// The log's size the proof is for (at least the event's number).
    size: u64,
}

/// [`assemble_proof_from`] over a whole log in memory: `events`, the index of the packet's
/// `ingest` event in it, and the checkpoint of all of it.
#[cfg(test)]
fn assemble_proof(
    label: &str,
    path: &str,
    meta: &FileMeta,
    nodes: &[Vec<u8>],
    events: &[EventRow],
    index: usize,
    checkpoint_note: impl FnOnce(&Checkpoint) -> Result<String>,
) -> Result<FileProof> {
    let leaves: Vec<Hash> = events
        .iter()
        .map(|event| merkle::leaf_hash(&event.encode()))
        .collect();
    let parts = ProofParts {
        label,
        path,
        meta,
        nodes,
        first: &events[0],
        event: &events[index],
        size: leaves.len() as u64,
    };
    assemble_proof_from(&parts, &mut &leaves[..], checkpoint_note)
}

/// Build the proof of `parts` with the log's hashes from `log` (the catalog's kept subtrees:
/// `O(log n)` reads); `checkpoint_note` turns the log's checkpoint at `parts.size` into the note
/// text the proof carries (signed or not). The proof is checked before it is returned.
fn assemble_proof_from<S>(
    parts: &ProofParts<'_>,
    log: &mut S,
    checkpoint_note: impl FnOnce(&Checkpoint) -> Result<String>,
) -> Result<FileProof>
where
    S: merkle::PerfectSubtrees + ?Sized,
    Error: From<S::Error>,
{
    let ProofParts {
        label,
        path,
        meta,
        nodes,
        first,
        event,
        size,
    } = *parts;
    let index = event.seq as u64 - 1;
    let hashes = merkle::inclusion_proof_of(index, size, log)?
        .ok_or_else(|| Error::Internal(format!("event {} outside the log", event.seq)))?;
    let root = hex::encode(merkle::root_of(size, log)?);
    let checkpoint = Checkpoint {
        origin: transparency::origin_of(first),
        tree_size: size,
        root: root.clone(),
    };
    let proof = FileProof {
        format: FILE_PROOF_FORMAT.to_string(),
        packet: label.to_string(),
        path: path.to_string(),
        file: ProvenFile {
            size: meta.size,
            sha256: meta.sha256.to_hex(),
            blake3: meta.blake3.to_hex(),
        },
        nodes: nodes.iter().map(|node| b64().encode(node)).collect(),
        event: b64().encode(event.encode()),
        inclusion: InclusionProof {
            leaf_index: index,
            tree_size: size,
            leaf_hash: hex::encode(merkle::leaf_hash(&event.encode())),
            root,
            proof: hashes.iter().map(hex::encode).collect(),
        },
        checkpoint: checkpoint_note(&checkpoint)?,
    };
    // Fail closed: a proof that its own checker would refuse is never handed out.
    let decoded = DecodedProof::decode(&proof)
        .map_err(|why| Error::Internal(format!("the proof made is malformed: {why}")))?;
    let report = check_decoded(&decoded, None, None);
    if let Some(failed) = report
        .checks
        .iter()
        .find(|check| !check.result.allows_pass())
    {
        return Err(Error::corrupt(
            "the catalog's log",
            format!(
                "the proof made from it does not check ({}: {}): the catalog's events or kept \
                 subtree hashes (merkle_nodes) were changed; run `evstore fsck`",
                failed.check, failed.detail
            ),
        ));
    }
    Ok(proof)
}

// ---------------------------------------------------------------------------------------------
// Checking.
// ---------------------------------------------------------------------------------------------

/// What `proof check-file` is given.
#[derive(Clone, Copy, Debug)]
pub struct CheckFileConfig<'a> {
    /// The proof's JSON file.
    pub proof: &'a Path,
    /// The file to check against the proof, if any (streamed, never read whole).
    pub file: Option<&'a Path>,
    /// The verifier key to check the checkpoint's signature by, if any.
    pub key: Option<&'a str>,
}

/// How one check of a proof came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckResult {
    /// It holds.
    Pass,
    /// It does not hold: the proof fails.
    Fail,
    /// It was not asked for (no `--file`, no `--key`); the proof can still pass, and the report
    /// says what was not checked.
    NotChecked,
    /// It could not be made because a check it needs failed; the proof fails.
    Skipped,
}

impl CheckResult {
    /// True for a result the proof can pass with.
    pub fn allows_pass(self) -> bool {
        matches!(self, CheckResult::Pass | CheckResult::NotChecked)
    }
}

/// One check of a proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProofCheck {
    /// Its name: `file`, `path`, `nodes`, `tree`, `root`, `event`, `leaf`, `checkpoint`,
    /// `inclusion`, `signature`.
    pub check: &'static str,
    /// How it came out.
    pub result: CheckResult,
    /// What was found: what holds, or why not.
    pub detail: String,
}

/// What `proof check-file` found: every check, in the order of the chain from the file up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileProofReport {
    /// The packet the proof names (as the proof says it; proven only if the report passes).
    pub packet: String,
    /// The file's path the proof names.
    pub path: String,
    /// The file's SHA-256 the proof names.
    pub sha256: String,
    /// The checks.
    pub checks: Vec<ProofCheck>,
}

impl FileProofReport {
    /// True if every check passed or was not asked for.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|check| check.result.allows_pass())
    }

    /// The checks that were not asked for.
    pub fn not_checked(&self) -> impl Iterator<Item = &ProofCheck> {
        self.checks
            .iter()
            .filter(|check| check.result == CheckResult::NotChecked)
    }

    /// The checks that failed (not those skipped because of them).
    pub fn failed(&self) -> impl Iterator<Item = &ProofCheck> {
        self.checks
            .iter()
            .filter(|check| check.result == CheckResult::Fail)
    }
}

/// Check the file proof in `config.proof`, with the file and the key if given.
///
/// # Errors
///
/// [`Error::Usage`] for a malformed key, a proof file that cannot be read, is over
/// [`MAX_FILE_PROOF_BYTES`] or is not a file proof's JSON (exit 2); the I/O errors of reading
/// the file to check. A proof that is well formed but does not hold is a report that fails.
pub fn check_file_proof(config: &CheckFileConfig<'_>) -> Result<FileProofReport> {
    let key = config
        .key
        .map(|text| VerifierKey::parse(text).map_err(|err| Error::Usage(format!("--key: {err}"))))
        .transpose()?;
    let bytes =
        transparency::read_input_at_most(config.proof, "a file proof", MAX_FILE_PROOF_BYTES)?;
    let malformed = |why: String| Error::Usage(format!("{}: {why}", config.proof.escaped()));
    let proof = FileProof::from_json(&bytes).map_err(malformed)?;
    let decoded = DecodedProof::decode(&proof).map_err(malformed)?;
    let local = config
        .file
        .map(|path| {
            hash_local_file(path).map(|digest| LocalFile {
                shown: path.escaped().to_string(),
                digest,
            })
        })
        .transpose()?;
    Ok(check_decoded(&decoded, key.as_ref(), local.as_ref()))
}

/// The file a user gave to check against a proof, hashed.
struct LocalFile {
    /// Its path as messages show it.
    shown: String,
    /// Its size and digests.
    digest: DualDigest,
}

/// Size, SHA-256 and BLAKE3 of the file at `path`, read once in chunks (never whole).
fn hash_local_file(path: &Path) -> Result<DualDigest> {
    // Opened without blocking (a FIFO would wait for a writer), then checked to be a regular
    // file through the handle, so nothing can swap the path between the check and the read.
    use std::os::unix::fs::OpenOptionsExt as _;
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|err| Error::io(path, "cannot open the file to check", err))?;
    let metadata = handle
        .metadata()
        .map_err(|err| Error::io(path, "cannot stat the file to check", err))?;
    if !metadata.is_file() {
        return Err(Error::Usage(format!(
            "{}: not a regular file, so not a file a proof can be of",
            path.escaped()
        )));
    }
    let mut hasher = DualHasher::new();
    // The one streaming read: it refuses a file that stops being regular or changes meanwhile.
    crate::fsio::stream_handle(handle, path, metadata.len(), |bytes| {
        hasher.update(bytes);
        Ok(())
    })?;
    Ok(hasher.finish())
}

/// A proof whose fields were decoded from their text forms (base64, hex): the bytes and hashes
/// the checks work on.
struct DecodedProof<'p> {
    proof: &'p FileProof,
    sha256: Sha256Digest,
    blake3: Blake3Digest,
    nodes: Vec<Vec<u8>>,
    event: Vec<u8>,
    leaf_hash: Hash,
    root: Hash,
    hashes: Vec<Hash>,
}

impl<'p> DecodedProof<'p> {
    /// Decode the text forms; the error names the field that is malformed.
    fn decode(proof: &'p FileProof) -> std::result::Result<DecodedProof<'p>, String> {
        let digest = |field: &str, text: &str| {
            if text.len() == 64 && crate::digest::is_lower_hex(text) {
                let mut out = [0u8; 32];
                hex::decode_to_slice(text, &mut out)
                    .map(|()| out)
                    .map_err(|_| format!("{field}: {text:?} is not 64 lowercase hex digits"))
            } else {
                Err(format!("{field}: {text:?} is not 64 lowercase hex digits"))
            }
        };
        let base64 = |field: String, text: &str| {
            b64()
                .decode(text)
                .map_err(|err| format!("{field} is not standard base64 with padding: {err}"))
        };
        let nodes = proof
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| base64(format!("nodes[{i}]"), node))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let hashes = proof
            .inclusion
            .proof
            .iter()
            .enumerate()
            .map(|(i, hash)| digest(&format!("inclusion.proof[{i}]"), hash))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(DecodedProof {
            proof,
            sha256: Sha256Digest(digest("file.sha256", &proof.file.sha256)?),
            blake3: Blake3Digest(digest("file.blake3", &proof.file.blake3)?),
            nodes,
            event: base64("event".into(), &proof.event)?,
            leaf_hash: digest("inclusion.leaf_hash", &proof.inclusion.leaf_hash)?,
            root: digest("inclusion.root", &proof.inclusion.root)?,
            hashes,
        })
    }
}

/// The checks' outcomes as they are made, in order.
struct Checks(Vec<ProofCheck>);

impl Checks {
    /// Record a check that was made: `Ok(what holds)` or `Err(why not)`; true if it held.
    fn made(&mut self, check: &'static str, outcome: std::result::Result<String, String>) -> bool {
        let (result, detail) = match outcome {
            Ok(detail) => (CheckResult::Pass, detail),
            Err(detail) => (CheckResult::Fail, detail),
        };
        self.0.push(ProofCheck {
            check,
            result,
            detail,
        });
        result == CheckResult::Pass
    }

    /// Record a check that was not asked for.
    fn not_checked(&mut self, check: &'static str, detail: String) {
        self.0.push(ProofCheck {
            check,
            result: CheckResult::NotChecked,
            detail,
        });
    }

    /// Record a check that could not be made because `needs` failed.
    fn skipped(&mut self, check: &'static str, needs: &str) {
        self.0.push(ProofCheck {
            check,
            result: CheckResult::Skipped,
            detail: format!("not checked: it needs the {needs} check, which failed"),
        });
    }
}

/// Make every check of a decoded proof (FORMAT.md §7h), in the order of the chain from the file
/// up to the checkpoint's signature. A check that needs another's result is skipped when that one
/// failed; every other check is made, so the report names every failure.
fn check_decoded(
    decoded: &DecodedProof<'_>,
    key: Option<&VerifierKey>,
    local: Option<&LocalFile>,
) -> FileProofReport {
    let proof = decoded.proof;
    let mut checks = Checks(Vec::new());

    // The file's bytes, against what the proof says the file is.
    match local {
        Some(local) => {
            checks.made("file", check_local_file(decoded, local));
        }
        None => checks.not_checked(
            "file",
            format!(
                "no --file given: the proof is of the file of {} bytes with SHA-256 {}; no \
                 file's bytes were checked against it",
                proof.file.size, proof.file.sha256
            ),
        ),
    }

    // The path: valid components, one node per component.
    let components = checks
        .made("path", check_path(&proof.path, decoded.nodes.len()))
        .then(|| proof.path.split('/').collect::<Vec<_>>());

    // The nodes: each decodes strictly.
    let mut nodes = Vec::with_capacity(decoded.nodes.len());
    let mut undecodable = None;
    for (i, bytes) in decoded.nodes.iter().enumerate() {
        match TreeNode::decode(bytes) {
            Ok(node) => nodes.push(node),
            Err(reason) => {
                undecodable = Some(format!(
                    "node {i} (of {}) is not a tree node: {reason}",
                    decoded.nodes.len()
                ));
                break;
            }
        }
    }
    let nodes_hold = checks.made(
        "nodes",
        match undecodable {
            Some(why) => Err(why),
            None => Ok(format!(
                "{} decode strictly (canonical CBOR tree nodes)",
                match nodes.len() {
                    1 => "the 1 node".to_string(),
                    n => format!("all {n} nodes"),
                }
            )),
        },
    );

    // The tree: each folder's entry names the next node by its BLAKE3; the last names the file.
    match (&components, nodes_hold) {
        (Some(components), true) => {
            checks.made("tree", walk_proof_nodes(decoded, components, &nodes));
        }
        (None, _) => checks.skipped("tree", "path"),
        (_, false) => checks.skipped("tree", "nodes"),
    }

    // The event: an ingest of the packet, whose tree is the root node's id.
    let event = LogEntry::decode(&decoded.event);
    let event_tree = match &event {
        Ok(entry) => {
            let outcome = check_event(entry, &proof.packet);
            let tree = outcome.as_ref().ok().map(|(_, tree)| *tree);
            checks.made("event", outcome.map(|(detail, _)| detail));
            tree
        }
        Err(reason) => {
            checks.made(
                "event",
                Err(format!(
                    "the event's bytes are not a log entry: it {reason}"
                )),
            );
            None
        }
    };
    match (event_tree, decoded.nodes.first()) {
        (Some(tree), Some(root_node)) => {
            let root_id = blake3_of(root_node);
            checks.made(
                "root",
                if root_id == tree {
                    Ok(format!(
                        "the root node's BLAKE3 {root_id} is the tree the ingest event commits"
                    ))
                } else {
                    Err(format!(
                        "the root node's BLAKE3 is {root_id}, but the ingest event commits the \
                         tree {tree}: the nodes are of another packet or version"
                    ))
                },
            );
        }
        (None, _) => checks.skipped("root", "event"),
        (Some(_), None) => {
            checks.made("root", Err("the proof has no node".into()));
        }
    }

    // The leaf: SHA-256(0x00 || event bytes), at the index of the event's sequence number.
    let leaf = merkle::leaf_hash(&decoded.event);
    match &event {
        Ok(entry) => {
            checks.made("leaf", check_leaf(decoded, entry, &leaf));
        }
        Err(_) => checks.skipped("leaf", "event"),
    }

    // The checkpoint: its text parses, and it is the log the inclusion proof is for.
    let checkpoint_text = note_text(&proof.checkpoint);
    let checkpoint = transparency::parse_checkpoint_text(checkpoint_text);
    let checkpoint_root = checkpoint.as_ref().ok().and_then(|cp| {
        let mut root = [0u8; 32];
        hex::decode_to_slice(&cp.root, &mut root)
            .ok()
            .map(|()| root)
    });
    checks.made(
        "checkpoint",
        match &checkpoint {
            Ok(cp) => check_checkpoint(decoded, cp),
            Err(why) => Err(format!("the checkpoint is not a checkpoint: {why}")),
        },
    );

    // The inclusion proof, against the checkpoint's own size and root and the leaf computed here.
    match (&checkpoint, checkpoint_root) {
        (Ok(cp), Some(cp_root)) => {
            let index = proof.inclusion.leaf_index;
            let held =
                merkle::check_inclusion(&leaf, index, cp.tree_size, &decoded.hashes, &cp_root);
            checks.made(
                "inclusion",
                held.map(|()| {
                    format!(
                        "the event's leaf is entry {index} of the checkpoint's log of {} entries \
                         (RFC 9162 inclusion proof of {})",
                        cp.tree_size,
                        match decoded.hashes.len() {
                            1 => "1 hash".to_string(),
                            n => format!("{n} hashes"),
                        }
                    )
                })
                .map_err(|failure| format!("the inclusion proof does not hold: {failure}")),
            );
        }
        _ => checks.skipped("inclusion", "checkpoint"),
    }

    // The signature on the checkpoint's text.
    match key {
        Some(key) => {
            checks.made("signature", check_signature(&proof.checkpoint, key));
        }
        None => checks.not_checked(
            "signature",
            "no --key given: the checkpoint's signature was not checked, so nothing ties this \
             log to a signer; the proof shows only that its parts agree"
                .into(),
        ),
    }

    FileProofReport {
        packet: proof.packet.clone(),
        path: proof.path.clone(),
        sha256: proof.file.sha256.clone(),
        checks: checks.0,
    }
}

/// The `file` check: the local file's size and digests are the proof's.
fn check_local_file(
    decoded: &DecodedProof<'_>,
    local: &LocalFile,
) -> std::result::Result<String, String> {
    let mut differences = Vec::new();
    if local.digest.len != decoded.proof.file.size {
        differences.push(format!(
            "{} bytes, not {}",
            local.digest.len, decoded.proof.file.size
        ));
    }
    if local.digest.sha256 != decoded.sha256 {
        differences.push(format!(
            "SHA-256 {}, not {}",
            local.digest.sha256, decoded.sha256
        ));
    }
    if local.digest.blake3 != decoded.blake3 {
        differences.push(format!(
            "BLAKE3 {}, not {}",
            local.digest.blake3, decoded.blake3
        ));
    }
    if differences.is_empty() {
        Ok(format!(
            "{} has the proof's size ({} bytes), SHA-256 and BLAKE3",
            local.shown, local.digest.len
        ))
    } else {
        Err(format!(
            "{} is not the file the proof is of: it has {}",
            local.shown,
            differences.join("; ")
        ))
    }
}

/// The `path` check: a valid packet path with one node per component.
fn check_path(path: &str, node_count: usize) -> std::result::Result<String, String> {
    crate::scan::check_rel_path(path)
        .map_err(|reason| format!("{path:?} is not a path in a packet: {reason}"))?;
    let depth = path.split('/').count();
    if depth != node_count {
        return Err(format!(
            "{path:?} has {depth} components, so it needs {depth} nodes (the root and each folder \
             on the way), but the proof has {node_count}"
        ));
    }
    Ok(format!(
        "{path:?}: {} on the way to the file, one node each, root first",
        match depth {
            1 => "the root folder".to_string(),
            n => format!("{n} folders (the root and {} below it)", n - 1),
        }
    ))
}

/// The `tree` check: node `i` holds a folder entry named component `i` whose id is the BLAKE3 of
/// node `i + 1`'s bytes; the last node holds a file entry named the last component with the
/// proof's size and digests.
fn walk_proof_nodes(
    decoded: &DecodedProof<'_>,
    components: &[&str],
    nodes: &[TreeNode],
) -> std::result::Result<String, String> {
    let last = components.len() - 1;
    for (depth, (node, component)) in nodes.iter().zip(components).enumerate() {
        let folder = match depth {
            0 => "the root node".to_string(),
            _ => format!("node {depth} ({:?})", components[..depth].join("/")),
        };
        let entry = entry_named(node, component)
            .ok_or_else(|| format!("{folder} has no entry named {component:?}"))?;
        match (entry, depth == last) {
            (TreeEntry::Dir { tree, .. }, false) => {
                let next = blake3_of(&decoded.nodes[depth + 1]);
                if *tree != next {
                    return Err(format!(
                        "{folder} names the folder {component:?} as node {tree}, but node {} of \
                         the proof has the BLAKE3 {next}: a node was changed or swapped",
                        depth + 1
                    ));
                }
            }
            (TreeEntry::File { meta, .. }, true) => {
                let proven = &decoded.proof.file;
                if meta.size != proven.size
                    || meta.sha256 != decoded.sha256
                    || meta.blake3 != decoded.blake3
                {
                    return Err(format!(
                        "{folder} lists {component:?} with {} bytes, SHA-256 {} and BLAKE3 {}, \
                         not the proof's file ({} bytes, SHA-256 {}, BLAKE3 {})",
                        meta.size,
                        meta.sha256,
                        meta.blake3,
                        proven.size,
                        proven.sha256,
                        proven.blake3
                    ));
                }
                return Ok(format!(
                    "each folder's entry names the next node by its BLAKE3, and {folder} lists \
                     {component:?} as a file of {} bytes (executable: {}) with the proof's \
                     SHA-256 and BLAKE3",
                    meta.size,
                    if meta.executable { "yes" } else { "no" }
                ));
            }
            (TreeEntry::Dir { .. }, true) => {
                return Err(format!(
                    "{folder} lists {component:?} as a folder, not a file"
                ))
            }
            (TreeEntry::File { .. }, false) => {
                return Err(format!(
                    "{folder} lists {component:?} as a file, not a folder on the path"
                ))
            }
        }
    }
    Err("the proof has no node".into())
}

/// The `event` check: an `ingest` event of the proof's packet whose detail names a tree; the
/// detail text and that tree.
fn check_event(
    entry: &LogEntry,
    packet: &str,
) -> std::result::Result<(String, Blake3Digest), String> {
    if entry.kind != EventKind::Ingest.name() {
        return Err(format!(
            "event {} is a {:?} event, not an ingest: it commits no packet",
            entry.seq, entry.kind
        ));
    }
    if entry.subject != packet {
        return Err(format!(
            "event {} is the ingest of {:?}, not of {packet:?}",
            entry.seq, entry.subject
        ));
    }
    let tree = ingest_tree(&entry.detail).ok_or_else(|| {
        format!(
            "event {}'s detail names no tree (64 lowercase hex digits)",
            entry.seq
        )
    })?;
    Ok((
        format!(
            "event {} is the ingest of {packet}, committing the tree {tree} (a strictly decoded \
             log entry whose hash recomputes)",
            entry.seq
        ),
        tree,
    ))
}

/// The `leaf` check: the proof's leaf hash is the event's, at the event's index.
fn check_leaf(
    decoded: &DecodedProof<'_>,
    entry: &LogEntry,
    leaf: &Hash,
) -> std::result::Result<String, String> {
    if *leaf != decoded.leaf_hash {
        return Err(format!(
            "SHA-256(0x00 || event) is {}, but inclusion.leaf_hash is {}",
            hex::encode(leaf),
            decoded.proof.inclusion.leaf_hash
        ));
    }
    let index = decoded.proof.inclusion.leaf_index;
    if u64::try_from(entry.seq - 1).ok() != Some(index) {
        return Err(format!(
            "inclusion.leaf_index is {index}, but the event is number {}, so it is leaf {}",
            entry.seq,
            entry.seq - 1
        ));
    }
    Ok(format!(
        "SHA-256(0x00 || event) is {}, leaf {index} (event {})",
        hex::encode(leaf),
        entry.seq
    ))
}

/// The `checkpoint` check: the checkpoint's log reaches the event, and is the log (size and root)
/// the inclusion proof is for.
fn check_checkpoint(
    decoded: &DecodedProof<'_>,
    checkpoint: &Checkpoint,
) -> std::result::Result<String, String> {
    let inclusion = &decoded.proof.inclusion;
    if checkpoint.tree_size <= inclusion.leaf_index {
        return Err(format!(
            "the checkpoint is of a log of {} entries, which does not reach leaf {} (event {}): \
             it is older than the event",
            checkpoint.tree_size,
            inclusion.leaf_index,
            u128::from(inclusion.leaf_index) + 1
        ));
    }
    if checkpoint.tree_size != inclusion.tree_size || checkpoint.root != hex::encode(decoded.root) {
        return Err(format!(
            "the checkpoint is of the log of {} entries with root {}, but the inclusion proof is \
             for {} entries with root {}",
            checkpoint.tree_size, checkpoint.root, inclusion.tree_size, inclusion.root
        ));
    }
    Ok(format!(
        "{} at {} entries with root {}",
        checkpoint.origin, checkpoint.tree_size, checkpoint.root
    ))
}

/// The `signature` check: a signature line of `key` verifies the checkpoint's text.
fn check_signature(note: &str, key: &VerifierKey) -> std::result::Result<String, String> {
    match key.open(note) {
        Ok(_) => Ok(format!("the checkpoint is signed by {}", key.text())),
        Err(err) => Err(format!(
            "the checkpoint is not signed by {}: {err}",
            key.text()
        )),
    }
}

/// The text of a note: before its first empty line if it is signed, else all of it. With a key,
/// [`VerifierKey::open`] verifies exactly this text.
fn note_text(note: &str) -> &str {
    match note.find("\n\n") {
        Some(split) => &note[..=split],
        None => note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::event::{NewEvent, GENESIS_HASH};
    use crate::format::note::SignerKey;
    use crate::format::record::PacketRecord;
    use crate::format::tree::{build_tree, test_file, HashedFile};
    use proptest::prelude::*;

    /// A stored event, as the catalog would hold it: `new` numbered `seq` after `prev`.
    fn logged(new: &NewEvent, seq: i64, prev: &str) -> LogEntry {
        let time = 1_700_000_000_000_000_000 + seq;
        LogEntry {
            seq,
            time_unix_nanos: time,
            kind: new.kind().name().into(),
            subject: new.subject().into(),
            detail: new.detail().into(),
            prev_hash: prev.into(),
            hash: new.hash(seq, time, prev).to_hex(),
        }
    }

    /// A log of `init`, `extra` ingests of other packets, the ingest of `files` as `p@1`, and
    /// `after` more ingests: the events, the index of `p@1`'s ingest, and the built tree.
    fn log_with_packet(
        files: &[HashedFile],
        extra: usize,
        after: usize,
    ) -> (Vec<LogEntry>, usize, crate::format::tree::BuiltTree) {
        let built = build_tree(files).unwrap();
        let record = |name: &str, tree: Blake3Digest| PacketRecord {
            name: name.into(),
            version: 1,
            packet_tree_sha256: Sha256Digest([7; 32]),
            tree,
            file_count: 1,
            total_bytes: 1,
            created_unix_nanos: 0,
            source_date_epoch: 0,
            tool_version: "0".into(),
            source_path: "/src".into(),
            note: None,
            seal_signer: None,
        };
        let mut news = vec![NewEvent::init(Path::new("/store"), "0.1.0")];
        for i in 0..extra {
            let other = record(&format!("other{i}"), Blake3Digest([i as u8; 32]));
            news.push(NewEvent::ingest(&Blake3Digest([0xee; 32]), &other));
        }
        let index = news.len();
        news.push(NewEvent::ingest(
            &Blake3Digest([0xab; 32]),
            &record("p", built.root),
        ));
        for i in 0..after {
            let other = record(&format!("later{i}"), Blake3Digest([i as u8; 32]));
            news.push(NewEvent::ingest(&Blake3Digest([0xef; 32]), &other));
        }
        let mut prev = GENESIS_HASH.to_string();
        let mut events = Vec::new();
        for (i, new) in news.iter().enumerate() {
            let entry = logged(new, i as i64 + 1, &prev);
            prev = entry.hash.clone();
            events.push(entry);
        }
        (events, index, built)
    }

    /// The node bytes on `path` in `built`, root first, and the file's entry.
    fn path_nodes(built: &crate::format::tree::BuiltTree, path: &str) -> (Vec<Vec<u8>>, FileMeta) {
        let by_id: std::collections::HashMap<_, _> = built.nodes.iter().cloned().collect();
        let mut id = built.root;
        let mut nodes = Vec::new();
        let parts: Vec<&str> = path.split('/').collect();
        for (depth, part) in parts.iter().enumerate() {
            let bytes = by_id[&id].clone();
            let node = TreeNode::decode(&bytes).unwrap();
            nodes.push(bytes);
            match entry_named(&node, part).unwrap() {
                TreeEntry::Dir { tree, .. } => id = *tree,
                TreeEntry::File { meta, .. } => {
                    assert_eq!(depth + 1, parts.len());
                    return (nodes, *meta);
                }
            }
        }
        panic!("no file {path}");
    }

    fn signer() -> SignerKey {
        SignerKey::from_seed("test-log", [5; 32]).unwrap()
    }

    fn sample_files() -> Vec<HashedFile> {
        vec![
            test_file("report.json", b"{}\n", false),
            test_file("logs/gate/selftest.json", b"{\"ok\": true}\n", false),
            test_file("logs/run.log", b"step 1\n", false),
            test_file("run.sh", b"#!/bin/sh\n", true),
        ]
    }

    /// A signed proof of `path` in the sample packet, with `after` events after its ingest.
    fn sample_proof(path: &str, after: usize) -> FileProof {
        let (events, index, built) = log_with_packet(&sample_files(), 2, after);
        let (nodes, meta) = path_nodes(&built, path);
        assemble_proof("p@1", path, &meta, &nodes, &events, index, |cp| {
            Ok(signer().sign(&cp.text()?).unwrap())
        })
        .unwrap()
    }

    fn check(proof: &FileProof, key: Option<&VerifierKey>) -> FileProofReport {
        check_decoded(&DecodedProof::decode(proof).unwrap(), key, None)
    }

    fn failed_names(report: &FileProofReport) -> Vec<&'static str> {
        report.failed().map(|check| check.check).collect()
    }

    #[test]
    fn a_proof_round_trips_through_its_json_and_checks_with_its_key() {
        let proof = sample_proof("logs/gate/selftest.json", 3);
        assert_eq!(proof.nodes.len(), 3);
        let text = proof.to_json().unwrap();
        assert!(text.starts_with("{\n  \"format\": \"evstore-file-proof/1\",\n"));
        let back = FileProof::from_json(text.as_bytes()).unwrap();
        assert_eq!(back, proof);
        let report = check(&back, Some(&signer().verifier()));
        assert!(report.passed(), "{report:#?}");
        assert_eq!(
            report.not_checked().count(),
            1,
            "only the file was not checked"
        );
        let unsigned_check = check(&back, None);
        assert!(unsigned_check.passed());
        let skipped: Vec<_> = unsigned_check.not_checked().map(|c| c.check).collect();
        assert_eq!(skipped, ["file", "signature"]);
    }

    #[test]
    fn a_top_level_file_has_one_node() {
        let proof = sample_proof("run.sh", 0);
        assert_eq!(proof.nodes.len(), 1);
        assert!(check(&proof, Some(&signer().verifier())).passed());
    }

    #[test]
    fn json_that_is_not_a_file_proof_is_refused_with_its_reason() {
        let proof = sample_proof("report.json", 1);
        let mut value = serde_json::to_value(&proof).unwrap();
        value["extra"] = serde_json::json!(1);
        let why = FileProof::from_json(value.to_string().as_bytes()).unwrap_err();
        assert!(why.contains("unknown field"), "{why}");
        let mut value = serde_json::to_value(&proof).unwrap();
        value["format"] = serde_json::json!("evstore-file-proof/2");
        let why = FileProof::from_json(value.to_string().as_bytes()).unwrap_err();
        assert!(why.contains("evstore-file-proof/2"), "{why}");
        let mut value = serde_json::to_value(&proof).unwrap();
        value["file"]["executable"] = serde_json::json!(false);
        assert!(FileProof::from_json(value.to_string().as_bytes()).is_err());
        let twice = proof
            .to_json()
            .unwrap()
            .replacen("\"path\":", "\"path\": \"x\", \"path\":", 1);
        let why = FileProof::from_json(twice.as_bytes()).unwrap_err();
        assert!(why.contains("duplicate"), "{why}");
        assert!(FileProof::from_json(b"[]").is_err());
        assert!(FileProof::from_json(b"{\"format\": \"evstore-file-proof/1\"}").is_err());
        let mut bad = proof.clone();
        bad.nodes[0].push('=');
        assert!(DecodedProof::decode(&bad).is_err());
        let mut bad = proof.clone();
        bad.file.sha256 = bad.file.sha256.to_uppercase();
        assert!(DecodedProof::decode(&bad).is_err());
    }

    #[test]
    fn each_tampering_fails_the_check_it_breaks() {
        let proof = sample_proof("logs/gate/selftest.json", 2);
        let key = signer().verifier();
        let failing = |proof: &FileProof| failed_names(&check(proof, Some(&key)));

        // Another file's digests: the folder's entry does not match.
        let mut other = proof.clone();
        other.file.size += 1;
        assert_eq!(failing(&other), ["tree"]);

        // A node of another tree in the middle of the path.
        let mut swapped = proof.clone();
        let foreign = build_tree(&[test_file("gate/selftest.json", b"x", false)]).unwrap();
        let (foreign_nodes, _) = path_nodes(&foreign, "gate/selftest.json");
        swapped.nodes[1] = b64().encode(&foreign_nodes[0]);
        assert_eq!(failing(&swapped), ["tree"]);

        // Another root: the event commits another tree.
        let mut rooted = proof.clone();
        rooted.nodes[0] = b64().encode(&foreign_nodes[0]);
        assert!(failing(&rooted).contains(&"root"), "{:?}", failing(&rooted));

        // A path one level short.
        let mut short = proof.clone();
        short.path = "logs/selftest.json".into();
        assert_eq!(failing(&short), ["path"]);

        // The event of another packet version.
        let mut event = proof.clone();
        event.packet = "p@2".into();
        assert_eq!(failing(&event), ["event"]);

        // A changed leaf index: the leaf is another entry.
        let mut index = proof.clone();
        index.inclusion.leaf_index += 1;
        let failed = failing(&index);
        assert!(
            failed.contains(&"leaf") && failed.contains(&"inclusion"),
            "{failed:?}"
        );

        // A changed byte in the checkpoint's text: the signature fails.
        let mut changed = proof.clone();
        let size = proof.inclusion.tree_size;
        changed.checkpoint =
            changed
                .checkpoint
                .replacen(&format!("\n{size}\n"), &format!("\n{}\n", size + 1), 1);
        let failed = failing(&changed);
        assert!(failed.contains(&"signature"), "{failed:?}");

        // Another key.
        let other_key = SignerKey::from_seed("test-log", [6; 32])
            .unwrap()
            .verifier();
        let report = check(&proof, Some(&other_key));
        assert_eq!(failed_names(&report), ["signature"]);
    }

    #[test]
    fn a_checkpoint_of_a_log_older_than_the_event_fails() {
        // The packet's ingest is event 4 (leaf 3); a checkpoint of the first 3 entries, signed.
        let (events, index, built) = log_with_packet(&sample_files(), 2, 0);
        assert_eq!(index, 3);
        let (nodes, meta) = path_nodes(&built, "report.json");
        let proof = assemble_proof("p@1", "report.json", &meta, &nodes, &events, index, |cp| {
            Ok(signer().sign(&cp.text()?).unwrap())
        })
        .unwrap();
        let leaves: Vec<Hash> = events[..3]
            .iter()
            .map(|e| merkle::leaf_hash(&e.encode()))
            .collect();
        let older = Checkpoint {
            origin: transparency::origin_of(&events[0]),
            tree_size: 3,
            root: hex::encode(merkle::root(&leaves)),
        };
        let mut stale = proof.clone();
        stale.checkpoint = signer().sign(&older.text().unwrap()).unwrap();
        let report = check(&stale, Some(&signer().verifier()));
        let failed = failed_names(&report);
        assert!(failed.contains(&"checkpoint"), "{failed:?}");
        assert!(failed.contains(&"inclusion"), "{failed:?}");
        let detail = &report
            .checks
            .iter()
            .find(|c| c.check == "checkpoint")
            .unwrap()
            .detail;
        assert!(detail.contains("does not reach leaf 3"), "{detail}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Any file of any packet proves, its proof survives its JSON, and a flipped bit in any
        /// node fails the proof.
        #[test]
        fn every_file_proves_and_any_flipped_node_bit_fails(
            paths in proptest::collection::btree_set("[a-c]{1,2}(/[a-c]{1,2}){0,3}", 1..12),
            pick in any::<usize>(),
            extra in 0usize..5,
            after in 0usize..5,
            flip in any::<(usize, usize, u8)>(),
        ) {
            // Keep paths where no file is also a folder.
            let paths: Vec<&String> = paths.iter().filter(|p| {
                !paths.iter().any(|q| q.starts_with(&format!("{p}/")))
            }).collect();
            let files: Vec<HashedFile> = paths.iter().enumerate()
                .map(|(i, p)| test_file(p, format!("content {i}").as_bytes(), i % 2 == 0))
                .collect();
            let path = paths[pick % paths.len()].as_str();
            let (events, index, built) = log_with_packet(&files, extra, after);
            let (nodes, meta) = path_nodes(&built, path);
            let proof = assemble_proof("p@1", path, &meta, &nodes, &events, index, |cp| {
                Ok(signer().sign(&cp.text()?).unwrap())
            }).unwrap();
            let back = FileProof::from_json(proof.to_json().unwrap().as_bytes()).unwrap();
            prop_assert_eq!(&back, &proof);
            prop_assert!(check(&back, Some(&signer().verifier())).passed());

            let (node, at, bit) = flip;
            let node = node % nodes.len();
            let mut bytes = nodes[node].clone();
            let at = at % bytes.len();
            bytes[at] ^= 1 << (bit % 8);
            let mut flipped = proof.clone();
            flipped.nodes[node] = b64().encode(&bytes);
            prop_assert!(!check(&flipped, Some(&signer().verifier())).passed());
        }
    }
}
