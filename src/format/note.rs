//! Signed notes (C2SP `signed-note`, the format of Go's `golang.org/x/mod/sumdb/note`) with
//! Ed25519 keys: the key texts, signing a note, and verifying one. A checkpoint of the event log
//! (FORMAT.md §7f) is signed as such a note.
//!
//! - A verifier key is `NAME+HASH+BASE64(0x01 || public key)`, a signer key
//!   `PRIVATE+KEY+NAME+HASH+BASE64(0x01 || 32-byte seed)`, where HASH is 8 hex digits: the first
//!   4 bytes of `SHA-256(NAME || "\n" || 0x01 || public key)`, and a NAME is non-empty UTF-8
//!   without white space or `+`.
//! - A signed note is the text (ending in a newline), an empty line, and one line per
//!   signature: `— NAME BASE64(key hash || Ed25519 signature of the text)` (an em dash and a
//!   space first).

use base64::Engine as _;
use ed25519_dalek::{Signer as _, Verifier as _};
use sha2::{Digest as _, Sha256};

/// The algorithm byte of Ed25519 keys in the note format.
const ED25519: u8 = 0x01;

/// Standard base64 with padding, as the note format uses.
fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Why a key or a note is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A key text that is not one.
    #[error("not a note key: {0}")]
    BadKey(String),
    /// A note text that is not one.
    #[error("not a signed note: {0}")]
    BadNote(String),
    /// No signature by the key, or one that does not verify.
    #[error("{0}")]
    NotSigned(String),
}

/// The 4-byte key hash of a name and an Ed25519 public key.
fn key_hash(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(b"\n")
        .chain_update([ED25519])
        .chain_update(public)
        .finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// True for a valid key name: non-empty, no white space, no `+`.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// A signer key: its name and Ed25519 signing key.
pub struct SignerKey {
    name: String,
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        write!(f, "SignerKey({})", self.name)
    }
}

impl SignerKey {
    /// A signer key named `name` from a 32-byte seed.
    ///
    /// # Errors
    ///
    /// [`NoteError::BadKey`] for an invalid name.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<SignerKey, NoteError> {
        if !is_valid_key_name(name) {
            return Err(NoteError::BadKey(format!(
                "the name {name:?} must be non-empty, without white space or +"
            )));
        }
        Ok(SignerKey {
            name: name.to_string(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// Parse `PRIVATE+KEY+NAME+HASH+BASE64` (surrounding white space ignored).
    ///
    /// # Errors
    ///
    /// [`NoteError::BadKey`] saying what is wrong.
    pub fn parse(text: &str) -> Result<SignerKey, NoteError> {
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| NoteError::BadKey("a signer key starts with PRIVATE+KEY+".into()))?;
        let (name, hash, bytes) = split_key(rest)?;
        let seed: [u8; 32] = bytes
            .strip_prefix(&[ED25519])
            .and_then(|seed| seed.try_into().ok())
            .ok_or_else(|| NoteError::BadKey("not a 32-byte Ed25519 seed".into()))?;
        let key = SignerKey::from_seed(name, seed)?;
        if key_hash(name, &key.public()) != hash {
            return Err(NoteError::BadKey(
                "its hash does not match its name and key".into(),
            ));
        }
        Ok(key)
    }

    fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signer key text.
    pub fn text(&self) -> String {
        let mut bytes = vec![ED25519];
        bytes.extend_from_slice(&self.key.to_bytes());
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex::encode(key_hash(&self.name, &self.public())),
            b64().encode(bytes)
        )
    }

    /// The verifier key of this signer key.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// Sign `text` (which must end in a newline): the signed note.
    ///
    /// # Errors
    ///
    /// [`NoteError::BadNote`] for a text that does not end in a newline or holds an empty line
    /// (which would end the text early).
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_note_text(text)?;
        let signature = self.key.sign(text.as_bytes());
        let mut bytes = key_hash(&self.name, &self.public()).to_vec();
        bytes.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{text}\n\u{2014} {} {}\n",
            self.name,
            b64().encode(bytes)
        ))
    }
}

/// A verifier key: a name and an Ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key: ed25519_dalek::VerifyingKey,
}

impl VerifierKey {
    /// Parse `NAME+HASH+BASE64` (surrounding white space ignored).
    ///
    /// # Errors
    ///
    /// [`NoteError::BadKey`] saying what is wrong.
    pub fn parse(text: &str) -> Result<VerifierKey, NoteError> {
        let text = text.trim();
        if text.starts_with("PRIVATE+") {
            return Err(NoteError::BadKey(
                "this is a signer (private) key; give its verifier key".into(),
            ));
        }
        let (name, hash, bytes) = split_key(text)?;
        let public: [u8; 32] = bytes
            .strip_prefix(&[ED25519])
            .and_then(|public| public.try_into().ok())
            .ok_or_else(|| NoteError::BadKey("not a 32-byte Ed25519 public key".into()))?;
        if !is_valid_key_name(name) {
            return Err(NoteError::BadKey(format!("the name {name:?} is not valid")));
        }
        if key_hash(name, &public) != hash {
            return Err(NoteError::BadKey(
                "its hash does not match its name and key".into(),
            ));
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(&public)
            .map_err(|_| NoteError::BadKey("not an Ed25519 public key".into()))?;
        Ok(VerifierKey {
            name: name.to_string(),
            key,
        })
    }

    /// The verifier key text.
    pub fn text(&self) -> String {
        let public = self.key.to_bytes();
        let mut bytes = vec![ED25519];
        bytes.extend_from_slice(&public);
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(key_hash(&self.name, &public)),
            b64().encode(bytes)
        )
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Verify a signed note: its text, if a signature line of this key (same name and key hash)
    /// verifies. Signature lines of other keys are passed over.
    ///
    /// # Errors
    ///
    /// [`NoteError::BadNote`] for a malformed note, [`NoteError::NotSigned`] when no line of
    /// this key verifies.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let split = note
            .find("\n\n")
            .ok_or_else(|| NoteError::BadNote("no empty line before the signatures".into()))?;
        let (text, signatures) = (&note[..=split], &note[split + 2..]);
        check_note_text(text)?;
        if signatures.is_empty() || !signatures.ends_with('\n') {
            return Err(NoteError::BadNote(
                "no signature lines, or the last one does not end in a newline".into(),
            ));
        }
        // Every signature line is parsed before any is verified: a note with a malformed line
        // is refused whole, wherever the line is (as Go's `note.Open` does).
        let mut lines = Vec::new();
        for line in signatures.split_terminator('\n') {
            let rest = line.strip_prefix("\u{2014} ").ok_or_else(|| {
                NoteError::BadNote(format!("{line:?} is not a signature line (— NAME SIG)"))
            })?;
            let (name, encoded) = rest.split_once(' ').ok_or_else(|| {
                NoteError::BadNote(format!("{line:?} is not a signature line (— NAME SIG)"))
            })?;
            if !is_valid_key_name(name) {
                return Err(NoteError::BadNote(format!(
                    "{line:?}: {name:?} is not a key name"
                )));
            }
            let bytes = b64().decode(encoded).map_err(|_| {
                NoteError::BadNote(format!("{line:?}: the signature is not base64"))
            })?;
            if bytes.len() < 5 {
                return Err(NoteError::BadNote(format!(
                    "{line:?}: the signature is too short"
                )));
            }
            lines.push((name, bytes));
        }
        let wanted = key_hash(&self.name, &self.key.to_bytes());
        let mut seen = Vec::new();
        for (name, bytes) in lines {
            seen.push(name.to_string());
            if name != self.name || bytes[..4] != wanted {
                continue;
            }
            let signature = ed25519_dalek::Signature::from_slice(&bytes[4..]).map_err(|_| {
                NoteError::NotSigned(format!("the signature of {name} is not 64 bytes"))
            })?;
            return match self.key.verify(text.as_bytes(), &signature) {
                Ok(()) => Ok(text),
                Err(_) => Err(NoteError::NotSigned(format!(
                    "the signature of {name} does not verify: the note was changed, or signed \
                     by another key of that name"
                ))),
            };
        }
        Err(NoteError::NotSigned(format!(
            "no signature of {} (key hash {}); signed by: {}",
            self.name,
            hex::encode(wanted),
            if seen.is_empty() {
                "nobody".to_string()
            } else {
                seen.join(", ")
            }
        )))
    }
}

/// `NAME+HASH+BASE64` → (name, hash, decoded bytes).
fn split_key(text: &str) -> Result<(&str, [u8; 4], Vec<u8>), NoteError> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(hash), Some(encoded)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::BadKey("a key is NAME+HASH+BASE64".into()));
    };
    let mut hash_bytes = [0u8; 4];
    if hash.len() != 8 || hex::decode_to_slice(hash, &mut hash_bytes).is_err() {
        return Err(NoteError::BadKey(format!("{hash:?} is not 8 hex digits")));
    }
    let bytes = b64()
        .decode(encoded)
        .map_err(|_| NoteError::BadKey("its key is not base64".into()))?;
    Ok((name, hash_bytes, bytes))
}

/// A note's text must end in a newline and hold no empty line.
fn check_note_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') || text.starts_with('\n') || text.contains("\n\n") {
        return Err(NoteError::BadNote(
            "a note's text ends in a newline and holds no empty line".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of Go's golang.org/x/mod/sumdb/note documentation.
    const SIGNER: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const VERIFIER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                        then you don't know what your problem is.\n";
    const SIGNED: &str = "If you think cryptography is the answer to your problem,\n\
                          then you don't know what your problem is.\n\
                          \n\
                          \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn the_go_note_example_signs_and_verifies_byte_for_byte() {
        let signer = SignerKey::parse(SIGNER).unwrap();
        assert_eq!(signer.text(), SIGNER);
        assert_eq!(signer.verifier().text(), VERIFIER);
        assert_eq!(signer.sign(TEXT).unwrap(), SIGNED);
        let verifier = VerifierKey::parse(VERIFIER).unwrap();
        assert_eq!(verifier.open(SIGNED).unwrap(), TEXT);
    }

    #[test]
    fn a_changed_note_another_key_and_bad_texts_are_refused() {
        let verifier = VerifierKey::parse(VERIFIER).unwrap();
        let changed = SIGNED.replace("cryptography", "cryptographY");
        assert!(matches!(
            verifier.open(&changed),
            Err(NoteError::NotSigned(_))
        ));
        let other = SignerKey::from_seed("PeterNeumann", [7; 32]).unwrap();
        let by_other = other.sign(TEXT).unwrap();
        assert!(matches!(
            verifier.open(&by_other),
            Err(NoteError::NotSigned(_))
        ));
        assert!(verifier.open(TEXT).is_err());
        assert!(VerifierKey::parse(SIGNER).is_err());
        assert!(VerifierKey::parse(
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        )
        .is_err());
        assert!(SignerKey::from_seed("two words", [1; 32]).is_err());
        assert!(other.sign("no newline").is_err());
        assert!(other.sign("a\n\nb\n").is_err());
    }
}
