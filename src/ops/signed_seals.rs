//! Seal signatures kept in the store: what `ingest` archives of a folder's
//! `HASH_MANIFEST.txt.sig`, and what `show`, `export` and `mirror` give back.
//!
//! A seal signature signs the seal's bytes, and an archived packet's seal is its canonical
//! manifest, whose SHA-256 is the packet_tree_sha256. So a signature belongs to the tree, not to
//! one record: it is kept under `signatures/seals/<packet_tree_sha256>/<SHA-256 of the signing
//! key's wire blob, hex>`, holding the armored `SSHSIG` exactly as the folder had it, created once
//! (create-if-absent; Ed25519 signing is deterministic, so the same key gives the same bytes).
//! Every version whose tree has that hash shares its signatures, several keys can sign one seal,
//! and the packet record (and so its id) does not change. Each is verified over the packet's
//! canonical manifest when it is read back; one that does not verify is an error, never skipped.

use crate::digest::{sha256_of, Sha256Digest};
use crate::error::{Error, Result};
use crate::gate::signature::{verify_seal_signature, SealSigner, SignedSeal, MAX_SIGNATURE_BYTES};
use crate::scan::{SEAL_FILE_NAME, SIGNATURE_FILE_NAME};
use crate::store::{KeyCreated, KeyRead, ListedName, Store};
use crate::text::EscapePath;

/// Where seal signatures are kept in a store.
pub const SEAL_SIGNATURES_PREFIX: &str = "signatures/seals/";

/// A seal signature read back from the store, verified.
#[derive(Clone, Debug)]
pub struct KeptSealSignature {
    /// The signing key's SHA-256 fingerprint (`SHA256:…`).
    pub key_fingerprint: String,
    /// The armored `SSHSIG`, as `HASH_MANIFEST.txt.sig` holds it.
    pub signature: Vec<u8>,
}

/// `signatures/seals/<sha>/<SHA-256 hex of the key's wire blob>`.
fn key_name(packet_tree_sha256: &Sha256Digest, key: &ssh_key::PublicKey) -> String {
    let blob = key.to_bytes().unwrap_or_default();
    format!(
        "{SEAL_SIGNATURES_PREFIX}{packet_tree_sha256}/{}",
        sha256_of(&blob)
    )
}

/// Check the folder's signature `signature` over the packet's canonical manifest
/// `manifest_text` (which the folder's seal is, once the gate passed), before anything is
/// stored.
///
/// # Errors
///
/// [`Error::Mismatch`] (exit 1) naming the signature file when it is not a valid `evstore-seal`
/// signature of those bytes: nothing is archived.
pub fn check_folder_signature(
    folder: &std::path::Path,
    manifest_text: &[u8],
    signature: &[u8],
) -> Result<SealSigner> {
    let seal = folder.join(SEAL_FILE_NAME);
    let file = folder.join(SIGNATURE_FILE_NAME);
    let signed = SignedSeal {
        seal: &seal,
        seal_bytes: Some(manifest_text),
        signature: &file,
        signature_bytes: Some(signature),
    };
    verify_seal_signature(&signed, manifest_text, signature).map_err(|refused| Error::Mismatch {
        what: file.escaped().to_string(),
        reason: format!(
            "{} ({}); the folder is not archived",
            refused.detail,
            refused.status.name()
        ),
    })
}

/// Keep the checked signature `signature` by `signer` of the seal `manifest_text`, whose
/// SHA-256 is `packet_tree_sha256`.
///
/// # Errors
///
/// The key cannot be created; other bytes that are not a valid signature by the same key are
/// kept there already (corrupt).
pub fn keep_seal_signature(
    store: &Store,
    packet_tree_sha256: &Sha256Digest,
    manifest_text: &[u8],
    signer: &SealSigner,
    signature: &[u8],
) -> Result<()> {
    let name = key_name(packet_tree_sha256, &signer.key);
    match store.backend().create_key_if_absent(&name, signature)? {
        KeyCreated::Created => Ok(()),
        KeyCreated::AlreadyExists(existing) if existing == signature => Ok(()),
        KeyCreated::AlreadyExists(existing) => {
            // Another signature by the same key of the same seal (made with another hash
            // algorithm, say) is as good, and is kept; anything else there is corrupt.
            let shown = store.root().join(&name);
            let seal = std::path::PathBuf::from(format!("the seal of {packet_tree_sha256}"));
            let signed = SignedSeal {
                seal: &seal,
                seal_bytes: Some(manifest_text),
                signature: &shown,
                signature_bytes: Some(&existing),
            };
            match verify_seal_signature(&signed, manifest_text, &existing) {
                Ok(kept) if kept.key == signer.key => Ok(()),
                _ => Err(Error::corrupt(
                    shown.escaped().to_string(),
                    "holds bytes that are not a signature of this seal by the key it is named \
                     after",
                )),
            }
        }
    }
}

/// The seal signatures kept for `packet_tree_sha256`, each verified over `manifest_text` (the
/// packet's canonical manifest), in key-name order.
///
/// # Errors
///
/// The listing or a read fails; a kept signature does not verify (corrupt, naming the key).
pub fn kept_seal_signatures(
    store: &Store,
    packet_tree_sha256: &Sha256Digest,
    manifest_text: &[u8],
) -> Result<Vec<KeptSealSignature>> {
    let folder = format!("{SEAL_SIGNATURES_PREFIX}{packet_tree_sha256}/");
    let mut kept = Vec::new();
    for listed in store.backend().list_names(&folder)? {
        let ListedName::Name(name) = listed else {
            return Err(Error::corrupt(
                store.root().join(&folder).escaped().to_string(),
                "holds an entry whose name is not UTF-8",
            ));
        };
        let key = format!("{folder}{name}");
        let shown = store.root().join(&key);
        let bytes = match store.backend().read_key(&key, MAX_SIGNATURE_BYTES)? {
            KeyRead::Found(bytes) => bytes,
            other => {
                return Err(Error::corrupt(
                    shown.escaped().to_string(),
                    format!("cannot be read as a seal signature ({other:?})"),
                ))
            }
        };
        let seal_name = std::path::PathBuf::from(format!("the seal of {packet_tree_sha256}"));
        let signed = SignedSeal {
            seal: &seal_name,
            seal_bytes: Some(manifest_text),
            signature: &shown,
            signature_bytes: Some(&bytes),
        };
        let signer = verify_seal_signature(&signed, manifest_text, &bytes)
            .map_err(|refused| Error::corrupt(shown.escaped().to_string(), refused.detail))?;
        if key_name(packet_tree_sha256, &signer.key) != key {
            return Err(Error::corrupt(
                shown.escaped().to_string(),
                format!(
                    "is a signature by {}, which is kept under another name",
                    signer.fingerprint
                ),
            ));
        }
        kept.push(KeptSealSignature {
            key_fingerprint: signer.fingerprint,
            signature: bytes,
        });
    }
    Ok(kept)
}

/// The kept signature `export` and `mirror` write beside the seal: the one by the signer the
/// packet's record names (it must be kept: corrupt otherwise); for a record that names none, the
/// one kept, if exactly one is. With several and no signer in the record, none is written and a
/// notice names them: evstore cannot tell which signer the reader trusts.
///
/// # Errors
///
/// As [`kept_seal_signatures`].
pub fn signature_to_publish(
    store: &Store,
    record: &crate::format::record::PacketRecord,
    manifest_text: &[u8],
) -> Result<Option<KeptSealSignature>> {
    let packet_tree_sha256 = &record.packet_tree_sha256;
    let mut kept = kept_seal_signatures(store, packet_tree_sha256, manifest_text)?;
    if let Some(signer) = &record.seal_signer {
        // The record names the signer ingest checked: that signature, and it must be there.
        return match kept.into_iter().find(|k| &k.key_fingerprint == signer) {
            Some(found) => Ok(Some(found)),
            None => Err(Error::corrupt(
                store
                    .root()
                    .join(format!("{SEAL_SIGNATURES_PREFIX}{packet_tree_sha256}/"))
                    .escaped()
                    .to_string(),
                format!(
                    "the packet {}@{} records that its seal was signed by {signer}, but the \
                     store keeps no signature by that key (deleted?)",
                    record.name, record.version
                ),
            )),
        };
    }
    if kept.len() > 1 {
        let keys: Vec<&str> = kept.iter().map(|k| k.key_fingerprint.as_str()).collect();
        crate::notice::notice(&format!(
            "the store keeps {} signatures of this seal (by {}); none is written beside it, \
             since evstore cannot tell which signer the reader trusts",
            kept.len(),
            keys.join(", ")
        ));
        return Ok(None);
    }
    Ok(kept.pop())
}
