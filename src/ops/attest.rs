//! Signed rerun attestations (in-toto Statement v1 in a DSSE envelope, `format::dsse`): signing
//! a stored attestation (`rerun --sign`), writing its envelope (`runs --show RUN --export FILE`),
//! and checking an envelope offline (`attestation verify`).
//!
//! A signature is stored beside the attestation object, never inside it (the attestation's
//! bytes, and so its id, stay what they were): the key
//! `signatures/attestations/<attestation id>/<SHA-256 of the public key blob, hex>` holds one
//! line of JSON, `{"keyid":"SHA256:…","public_key":"ssh-ed25519 …","sig":"<base64>"}`, created
//! once (create-if-absent; Ed25519 is deterministic, so signing again writes the same bytes).
//! Every stored signature is verified before it is exported: one that does not verify is an
//! error, never left out silently.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::digest::{sha256_of, Blake3Digest, Sha256Digest};
use crate::error::{Error, Result};
use crate::format::dsse::{self, Envelope, EnvelopeSignature};
use crate::format::object::ObjectKind;
use crate::gate::signature::{fingerprint_of, verifies_raw, SshSigningKey};
use crate::store::{KeyCreated, KeyRead, ListedName, Store};
use crate::text::EscapePath;

/// Where the signatures of attestations are kept in a store.
pub const SIGNATURES_PREFIX: &str = "signatures/attestations/";

/// The largest stored signature record read.
const MAX_SIGNATURE_RECORD_BYTES: u64 = 16 * 1024;

/// One stored signature of an attestation's statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredSignature {
    /// The key's SHA-256 fingerprint (`SHA256:…`).
    pub keyid: String,
    /// The public key, one OpenSSH line without a comment.
    pub public_key: String,
    /// The Ed25519 signature over the envelope's PAE, standard base64.
    pub sig: String,
}

/// The in-toto statement of the attestation object `attestation`, read verified from `store`.
///
/// # Errors
///
/// The object cannot be read, is not an attestation, or its payload is not one.
pub fn statement_of(store: &Store, attestation: &Blake3Digest) -> Result<Vec<u8>> {
    let (kind, payload) = store.read_small_object(attestation)?;
    if kind != ObjectKind::Attestation {
        return Err(Error::corrupt(
            format!("object {attestation}"),
            format!("is a {} object, not an attestation", kind.name()),
        ));
    }
    dsse::statement_of(&payload)
        .map_err(|reason| Error::corrupt(format!("attestation {attestation}"), reason))
}

/// Sign the statement of the attestation `attestation` with `key` and store the signature.
///
/// # Errors
///
/// The attestation cannot be read; the signature cannot be stored; a different signature by
/// the same key is stored already (corrupt: Ed25519 gives one signature per key and message).
pub fn sign_attestation(
    store: &Store,
    attestation: &Blake3Digest,
    key: &SshSigningKey,
) -> Result<StoredSignature> {
    let statement = statement_of(store, attestation)?;
    let signed = dsse::pae(dsse::PAYLOAD_TYPE, &statement);
    let signature = StoredSignature {
        keyid: key.fingerprint(),
        public_key: public_key_line(key.public_key())?,
        sig: base64::engine::general_purpose::STANDARD.encode(key.sign_raw(&signed)?),
    };
    let mut line = serde_json::to_string(&signature)
        .map_err(|err| Error::Usage(format!("cannot encode a signature: {err}")))?;
    line.push('\n');
    let name = signature_key(attestation, key.public_key());
    match store
        .backend()
        .create_key_if_absent(&name, line.as_bytes())?
    {
        KeyCreated::Created => Ok(signature),
        KeyCreated::AlreadyExists(existing) if existing == line.as_bytes() => Ok(signature),
        KeyCreated::AlreadyExists(_) => Err(Error::corrupt(
            store.root().join(&name).escaped().to_string(),
            "holds another signature by this key of the same statement, which Ed25519 cannot \
             make",
        )),
    }
}

/// `key` as one OpenSSH line without a comment.
fn public_key_line(key: &ssh_key::PublicKey) -> Result<String> {
    let mut public = key.clone();
    public.set_comment("");
    public
        .to_openssh()
        .map_err(|err| Error::Usage(format!("cannot write the public key: {err}")))
}

/// `signatures/attestations/<attestation>/<SHA-256 hex of the key's wire blob>`.
fn signature_key(attestation: &Blake3Digest, key: &ssh_key::PublicKey) -> String {
    let blob = key.to_bytes().unwrap_or_default();
    format!("{SIGNATURES_PREFIX}{attestation}/{}", sha256_of(&blob))
}

/// The DSSE envelope of the attestation `attestation`, with every stored signature, each
/// verified first.
///
/// # Errors
///
/// The attestation cannot be read; a stored signature cannot be read, does not parse, or does
/// not verify over the envelope's PAE (corrupt, naming the key).
pub fn envelope_of(store: &Store, attestation: &Blake3Digest) -> Result<Envelope> {
    let statement = statement_of(store, attestation)?;
    let signed = dsse::pae(dsse::PAYLOAD_TYPE, &statement);
    let folder = format!("{SIGNATURES_PREFIX}{attestation}/");
    let mut signatures = Vec::new();
    for listed in store.backend().list_names(&folder)? {
        let name = match listed {
            ListedName::Name(name) => name,
            other => {
                return Err(Error::corrupt(
                    store.root().join(&folder).escaped().to_string(),
                    format!("holds an entry that is not a signature: {other:?}"),
                ))
            }
        };
        let key = format!("{folder}{name}");
        let shown = store.root().join(&key).escaped().to_string();
        let bytes = match store.backend().read_key(&key, MAX_SIGNATURE_RECORD_BYTES)? {
            KeyRead::Found(bytes) => bytes,
            other => {
                return Err(Error::corrupt(
                    shown.as_str(),
                    format!("cannot be read as a signature ({other:?})"),
                ))
            }
        };
        let stored =
            parse_stored(&bytes).map_err(|reason| Error::corrupt(shown.as_str(), reason))?;
        let public = ssh_key::PublicKey::from_openssh(&stored.public_key)
            .map_err(|err| Error::corrupt(shown.as_str(), format!("its public key: {err}")))?;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(&stored.sig)
            .map_err(|err| {
                Error::corrupt(shown.as_str(), format!("its sig is not base64: {err}"))
            })?;
        let mut canonical = serde_json::to_string(&stored).unwrap_or_default();
        canonical.push('\n');
        if canonical.as_bytes() != bytes.as_slice()
            || public_key_line(&public).ok().as_deref() != Some(stored.public_key.as_str())
        {
            return Err(Error::corrupt(
                shown.as_str(),
                "is not a signature record in the exact form evstore writes (compact JSON, the \
                 public key without a comment, one newline)",
            ));
        }
        if fingerprint_of(&public) != stored.keyid
            || signature_key(attestation, &public) != key
            || !verifies_raw(&public, &signed, &sig)
        {
            return Err(Error::corrupt(
                shown.as_str(),
                format!(
                    "is not a valid signature of attestation {attestation}'s statement by the key \
                     it names ({})",
                    stored.keyid
                ),
            ));
        }
        signatures.push(EnvelopeSignature {
            keyid: stored.keyid,
            sig: stored.sig,
        });
    }
    Ok(Envelope::of(&statement, signatures))
}

fn parse_stored(bytes: &[u8]) -> std::result::Result<StoredSignature, String> {
    let text = std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.strip_suffix('\n'))
        .filter(|line| !line.contains('\n'))
        .ok_or("is not one line of UTF-8 JSON")?;
    serde_json::from_str(text).map_err(|err| format!("is not a stored signature: {err}"))
}

/// What `attestation verify` found.
#[derive(Clone, Debug, Serialize)]
pub struct EnvelopeCheck {
    /// The envelope file.
    #[serde(serialize_with = "crate::text::serialize_escaped")]
    pub file: PathBuf,
    /// PASS only if a signature by the key verifies, the statement is an evstore rerun
    /// statement, the packet (if given) has the subject's digest, and the rerun passed.
    pub verdict: &'static str,
    /// The key checked against (`SHA256:…`).
    pub key_fingerprint: String,
    /// True if a signature by the key verifies over the envelope's PAE.
    pub signature_valid: bool,
    /// The subject's name (`NAME@N`).
    pub subject: String,
    /// The subject's digest: the packet_tree_sha256 that was rerun.
    pub subject_sha256: Sha256Digest,
    /// The packet folder's packet_tree_sha256, with `--packet`.
    pub packet_tree_sha256: Option<Sha256Digest>,
    /// The rerun's own verdict, as the attestation records it.
    pub attested_verdict: String,
    /// Why the verdict is FAIL (empty on PASS).
    pub reasons: Vec<String>,
}

/// Check the DSSE envelope in `file` offline: a signature by `key` over its PAE, an evstore
/// rerun statement, with `packet` that folder's packet_tree_sha256 equal to the subject's, and
/// the attested rerun's verdict PASS.
///
/// # Errors
///
/// [`Error::Usage`] (exit 2) for a file that cannot be read or is not a DSSE envelope of an
/// evstore rerun statement; errors hashing `packet`. A check that fails is a report with the
/// verdict `FAIL`.
pub fn verify_envelope(
    file: &Path,
    key: &ssh_key::PublicKey,
    packet: Option<&Path>,
    progress: &crate::progress::Progress,
) -> Result<EnvelopeCheck> {
    let bytes = crate::fsio::read_input_at_most(file, "a DSSE envelope", dsse::MAX_ENVELOPE_BYTES)?;
    let malformed = |reason: String| Error::Usage(format!("{}: {reason}", file.escaped()));
    let envelope = Envelope::parse(&bytes).map_err(malformed)?;
    let statement = envelope.statement().map_err(malformed)?;
    let signed = envelope.signed_bytes().map_err(malformed)?;
    let keyid = fingerprint_of(key);
    let signature_valid = envelope.signatures.iter().any(|signature| {
        base64::engine::general_purpose::STANDARD
            .decode(&signature.sig)
            .is_ok_and(|sig| verifies_raw(key, &signed, &sig))
    });
    let mut reasons = Vec::new();
    if !signature_valid {
        reasons.push(if envelope.signatures.is_empty() {
            "the envelope is not signed".to_string()
        } else {
            format!("no signature of the envelope verifies with the key {keyid}")
        });
    }
    let packet_tree_sha256 = match packet {
        Some(dir) => {
            let scanned = crate::scan::scan(dir)?;
            scanned.require_regular_files()?;
            let config = crate::folder::FolderHashConfig::new(
                "hash",
                crate::folder::Digests::Sha256,
                progress,
            );
            let folder = crate::folder::hash_folder(scanned, &config)?;
            let manifest = crate::format::manifest::Manifest::from_entries(
                folder
                    .files
                    .iter()
                    .map(|f| crate::format::manifest::ManifestEntry {
                        path: f.rel_path.clone(),
                        sha256: f.sha256,
                    })
                    .collect(),
            )?;
            let sha = manifest.packet_tree_sha256();
            if sha != statement.subject_sha256 {
                reasons.push(format!(
                    "{} has packet_tree_sha256 {sha}, not the attested subject's {}",
                    dir.escaped(),
                    statement.subject_sha256
                ));
            }
            Some(sha)
        }
        None => None,
    };
    let attested_verdict = statement.predicate["verdict"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if attested_verdict != "PASS" {
        reasons.push(format!(
            "the attested rerun's verdict is {attested_verdict}: it did not reproduce the packet"
        ));
    }
    Ok(EnvelopeCheck {
        file: file.to_path_buf(),
        verdict: if reasons.is_empty() { "PASS" } else { "FAIL" },
        key_fingerprint: keyid,
        signature_valid,
        subject: statement.subject_name,
        subject_sha256: statement.subject_sha256,
        packet_tree_sha256,
        attested_verdict,
        reasons,
    })
}
