//! Seal signatures: who sealed a packet. `evstore seal --sign KEY` signs the bytes of
//! `HASH_MANIFEST.txt` with an OpenSSH Ed25519 key and writes the detached signature
//! `HASH_MANIFEST.txt.sig` beside it, in OpenSSH's `SSHSIG` format (`PROTOCOL.sshsig`) under the
//! namespace [`SEAL_NAMESPACE`], so that OpenSSH checks it as it is:
//!
//! ```text
//! ssh-keygen -Y verify -f allowed_signers -I IDENTITY -n evstore-seal \
//!     -s HASH_MANIFEST.txt.sig < HASH_MANIFEST.txt
//! ```
//!
//! `evstore verify --signed-by ALLOWED_SIGNERS` checks the same thing ([`check_signature`]):
//! the signature decodes, is in the namespace, verifies over the seal's exact bytes, and is by a
//! key an entry of the allowed signers file accepts for that namespace now. Every other outcome
//! is a [`SignatureCheck`] that is not valid, which fails the gate; nothing here ever passes a
//! seal it could not check. Key and signature formats are the `ssh-key` crate's.
//!
//! **Architecture Invariant:** the bytes a signature is checked over are the bytes the gate
//! compared against: the caller reads the seal once and hands the same bytes to both.

use std::path::{Path, PathBuf};

use serde::Serialize;
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

use crate::error::{Error, Result};
use crate::format::allowed_signers::{self, AllowedSigner, MAX_ALLOWED_SIGNERS_BYTES};
use crate::text::EscapePath;

/// The `SSHSIG` namespace of a seal signature: a signature made for another purpose (a git
/// commit, a file signed with `-n file`) is never accepted as a seal's.
pub const SEAL_NAMESPACE: &str = "evstore-seal";

/// The largest signature file read (an Ed25519 `SSHSIG` is under 300 bytes; RSA 4096 about 1 KiB).
pub const MAX_SIGNATURE_BYTES: u64 = 64 * 1024;

/// How long evstore waits for ssh-agent to answer one request: `$EVSTORE_AGENT_TIMEOUT_SECS`
/// (at least 1), else 30 seconds.
fn agent_time_limit() -> std::time::Duration {
    let seconds = std::env::var("EVSTORE_AGENT_TIMEOUT_SECS")
        .ok()
        .and_then(|value| value.parse::<u64>().ok())
        .filter(|&seconds| seconds >= 1)
        .unwrap_or(30);
    std::time::Duration::from_secs(seconds)
}

/// The largest private key file read.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// An OpenSSH Ed25519 signing key: a private key file, or a key that ssh-agent holds (named by
/// its public key file, as `ssh-keygen -Y sign -f KEY.pub` and git's `user.signingkey` name it).
pub struct SshSigningKey {
    source: KeySource,
}

/// Where a signing key's signatures come from.
enum KeySource {
    /// The private key, read from its file.
    File(Box<PrivateKey>),
    /// ssh-agent at `socket` (`$SSH_AUTH_SOCK`), which holds the private key of `public`.
    Agent { public: PublicKey, socket: PathBuf },
}

impl SshSigningKey {
    /// Read the key file at `path`: an OpenSSH private key file (as `ssh-keygen -t ed25519`
    /// writes it), or a public key file (`KEY.pub`) whose private key ssh-agent holds
    /// (`$SSH_AUTH_SOCK`).
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] (exit 2) naming the path for a private key file that group or others
    /// can read or write (as `ssh` refuses it: `chmod 600` it), that is not a regular file or
    /// over 64 KiB, that is not an OpenSSH key, that is encrypted with a passphrase (evstore never
    /// prompts: use ssh-agent), that holds a key other than Ed25519; for a public key file, no
    /// `$SSH_AUTH_SOCK`, or an agent that does not hold the key.
    pub fn read(path: &Path) -> Result<SshSigningKey> {
        let what = "an OpenSSH private key";
        let bytes = crate::fsio::read_input_at_most(path, what, MAX_KEY_FILE_BYTES)?;
        let key = match PrivateKey::from_openssh(&bytes) {
            Ok(key) => key,
            Err(err) => {
                let text = std::str::from_utf8(&bytes).ok().map(str::trim);
                let public = text
                    .filter(|line| !line.is_empty() && !line.contains('\n'))
                    .and_then(|line| PublicKey::from_openssh(line).ok());
                if let Some(public) = public {
                    return SshSigningKey::in_agent(path, public);
                }
                let note_key = text.is_some_and(|text| {
                    text.starts_with("PRIVATE+KEY+")
                        || (!text.contains(char::is_whitespace) && text.matches('+').count() == 2)
                });
                return Err(Error::Usage(if note_key {
                    format!(
                        "{}: an evstore checkpoint key (`evstore key generate`, a C2SP note key); \
                         seals and attestations are signed with OpenSSH Ed25519 keys \
                         (`ssh-keygen -t ed25519`)",
                        path.escaped()
                    )
                } else {
                    format!(
                        "{}: not {what} ({err}); give the private key file that `ssh-keygen -t \
                         ed25519` wrote (such as ~/.ssh/id_ed25519), or its .pub file (one line) \
                         for a key ssh-agent holds",
                        path.escaped()
                    )
                }));
            }
        };
        crate::fsio::refuse_key_readable_by_others(path)?;
        if key.is_encrypted() {
            return Err(Error::Usage(format!(
                "{}: the key is encrypted with a passphrase, and evstore does not prompt for \
                 one; load it into ssh-agent (`ssh-add {}`) and give its .pub file instead",
                path.escaped(),
                path.escaped()
            )));
        }
        require_ed25519(path, key.public_key())?;
        Ok(SshSigningKey {
            source: KeySource::File(Box::new(key)),
        })
    }

    /// The key `public` (read from `path`) in ssh-agent, checked to sign.
    fn in_agent(path: &Path, public: PublicKey) -> Result<SshSigningKey> {
        require_ed25519(path, &public)?;
        let socket = std::env::var_os("SSH_AUTH_SOCK")
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{}: a public key, and no ssh-agent ($SSH_AUTH_SOCK is not set) to sign with \
                     its private key; give the private key file (such as ~/.ssh/id_ed25519, not \
                     ~/.ssh/id_ed25519.pub), or start ssh-agent and `ssh-add` the key",
                    path.escaped()
                ))
            })?;
        let key = SshSigningKey {
            source: KeySource::Agent { public, socket },
        };
        // A test signature: an agent that does not hold the key is refused before anything is
        // written or run.
        key.sign_raw(b"evstore: does the agent hold this key?")
            .map_err(|err| Error::Usage(format!("{}: {err}", path.escaped())))?;
        Ok(key)
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        match &self.source {
            KeySource::File(key) => key.public_key(),
            KeySource::Agent { public, .. } => public,
        }
    }

    /// The public key's SHA-256 fingerprint as `ssh-keygen -l` prints it (`SHA256:` and
    /// unpadded base64).
    pub fn fingerprint(&self) -> String {
        fingerprint_of(self.public_key())
    }

    /// The public key in OpenSSH's one-line form (`ssh-ed25519 BASE64 COMMENT`).
    pub fn public_key_line(&self) -> Result<String> {
        self.public_key().to_openssh().map_err(|err| {
            Error::Usage(format!(
                "cannot write the public key in OpenSSH's form: {err}"
            ))
        })
    }

    /// What ssh-agent signs `data` to, for a key it holds.
    fn agent_sign(public: &PublicKey, socket: &Path, data: &[u8]) -> Result<ssh_key::Signature> {
        let agent = |reason: String| {
            Error::Usage(format!(
                "ssh-agent at {} cannot sign with {} ({reason}); is the key loaded (`ssh-add -l`)?",
                socket.escaped(),
                fingerprint_of(public)
            ))
        };
        // A time limit on every read and write: an agent that accepts and never answers (or a
        // confirmation prompt nobody answers) must not hang a signing command.
        let stream = std::os::unix::net::UnixStream::connect(socket)
            .map_err(|err| agent(format!("cannot connect: {err}")))?;
        for limit in [
            stream.set_read_timeout(Some(agent_time_limit())),
            stream.set_write_timeout(Some(agent_time_limit())),
        ] {
            limit.map_err(|err| agent(format!("cannot set a time limit: {err}")))?;
        }
        let mut client = ssh_agent_client_rs::Client::with_read_write(Box::new(stream));
        client.sign(public, data).map_err(|err| {
            agent(format!(
                "{err}{}",
                std::error::Error::source(&err).map_or(String::new(), |s| format!(": {s}"))
            ))
        })
    }

    /// The raw Ed25519 signature (64 bytes) of `message`: what a DSSE envelope's `sig` holds.
    /// An agent's signature is checked before it is used.
    pub fn sign_raw(&self, message: &[u8]) -> Result<[u8; 64]> {
        match &self.source {
            KeySource::File(key) => {
                use ed25519_dalek::Signer as _;
                let keypair = key.key_data().ed25519().ok_or_else(|| {
                    Error::Usage(
                        "internal error: an Ed25519 signing key without its key pair".into(),
                    )
                })?;
                let signing = ed25519_dalek::SigningKey::from_bytes(&keypair.private.to_bytes());
                Ok(signing.sign(message).to_bytes())
            }
            KeySource::Agent { public, socket } => {
                let signature = SshSigningKey::agent_sign(public, socket, message)?;
                let raw: [u8; 64] = signature.as_bytes().try_into().map_err(|_| {
                    Error::Usage("ssh-agent returned a signature that is not Ed25519".into())
                })?;
                if !verifies_raw(public, message, &raw) {
                    return Err(Error::Usage(
                        "ssh-agent returned a signature that does not verify with the key".into(),
                    ));
                }
                Ok(raw)
            }
        }
    }

    /// The armored `SSHSIG` (`-----BEGIN SSH SIGNATURE-----`, LF line ends) of `message` in
    /// `namespace`, with SHA-512 as `ssh-keygen -Y sign` uses. Ed25519 is deterministic: the
    /// same key, namespace and message give the same bytes.
    ///
    /// # Errors
    ///
    /// The signature cannot be made (an agent that cannot sign) or encoded.
    pub fn sign(&self, namespace: &str, message: &[u8]) -> Result<String> {
        let cannot = |err: ssh_key::Error| Error::Usage(format!("cannot sign: {err}"));
        let signature = match &self.source {
            KeySource::File(key) => key
                .sign(namespace, HashAlg::Sha512, message)
                .map_err(cannot)?,
            KeySource::Agent { public, socket } => {
                let signed =
                    SshSig::signed_data(namespace, HashAlg::Sha512, message).map_err(cannot)?;
                let raw = SshSigningKey::agent_sign(public, socket, &signed)?;
                let signature =
                    SshSig::new(public.key_data().clone(), namespace, HashAlg::Sha512, raw)
                        .map_err(cannot)?;
                public
                    .verify(namespace, message, &signature)
                    .map_err(|err| {
                        Error::Usage(format!(
                            "ssh-agent returned a signature that does not verify ({err})"
                        ))
                    })?;
                signature
            }
        };
        signature
            .to_pem(LineEnding::LF)
            .map_err(|err| Error::Usage(format!("cannot encode the signature: {err}")))
    }
}

/// Refuse a key other than Ed25519, naming the file.
fn require_ed25519(path: &Path, key: &PublicKey) -> Result<()> {
    if key.algorithm() != ssh_key::Algorithm::Ed25519 {
        return Err(Error::Usage(format!(
            "{}: a {} key; evstore signs with Ed25519 keys (`ssh-keygen -t ed25519`)",
            path.escaped(),
            key.algorithm().as_str()
        )));
    }
    Ok(())
}

/// Read the seal signature `rel` (`HASH_MANIFEST.txt.sig`) through the opened folder `dir`: a
/// regular file (no symlink followed) of at most [`MAX_SIGNATURE_BYTES`].
///
/// # Errors
///
/// [`Error::Unsupported`] naming the path for anything else; I/O errors reading it.
pub fn read_signature_in(dir: &crate::scan::RootDir, rel: &str) -> Result<Vec<u8>> {
    let path = dir.display_path(rel);
    let handle = dir.open_file(rel).map_err(|err| {
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            Error::unsupported(
                &path,
                "the seal's signature is a symbolic link; it is not followed",
            )
        } else {
            err
        }
    })?;
    read_signature_from(handle, &path)
}

/// Read the signature file `path` (`FILE.sig` beside a seal file) if there is one: a regular
/// file, not a symlink, of at most [`MAX_SIGNATURE_BYTES`]; `None` if nothing is there.
///
/// # Errors
///
/// [`Error::Unsupported`] naming the path for a symlink or anything but a regular file; I/O
/// errors reading it.
pub fn read_signature_file(path: &Path) -> Result<Option<Vec<u8>>> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(None);
    };
    if meta.file_type().is_symlink() {
        return Err(Error::unsupported(
            path,
            "the seal's signature is a symbolic link; it is not followed (copy the file)",
        ));
    }
    read_signature_from(crate::fsio::open_no_follow(path)?, path).map(Some)
}

fn read_signature_from(file: std::fs::File, path: &Path) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let meta = file
        .metadata()
        .map_err(|err| Error::io(path, "cannot stat", err))?;
    if !meta.is_file() {
        return Err(Error::unsupported(
            path,
            "the seal's signature is not a regular file",
        ));
    }
    if meta.len() > MAX_SIGNATURE_BYTES {
        return Err(Error::unsupported(
            path,
            format!(
                "the seal's signature is larger than {MAX_SIGNATURE_BYTES} bytes, so it is not one"
            ),
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_SIGNATURE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| Error::io(path, "cannot read", err))?;
    if bytes.len() as u64 > MAX_SIGNATURE_BYTES {
        return Err(Error::unsupported(
            path,
            format!(
                "the seal's signature is larger than {MAX_SIGNATURE_BYTES} bytes, so it is not one"
            ),
        ));
    }
    Ok(bytes)
}

/// Read an OpenSSH public key file (`ssh-ed25519 BASE64 [COMMENT]`, as `ssh-keygen` writes
/// `KEY.pub`).
///
/// # Errors
///
/// [`Error::Usage`] naming the path for a file that cannot be read, is over 64 KiB, or is not
/// one OpenSSH public key line.
pub fn read_public_key(path: &Path) -> Result<PublicKey> {
    let what = "an OpenSSH public key";
    let bytes = crate::fsio::read_input_at_most(path, what, MAX_KEY_FILE_BYTES)?;
    std::str::from_utf8(&bytes)
        .ok()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.contains('\n'))
        .and_then(|line| PublicKey::from_openssh(line).ok())
        .ok_or_else(|| {
            Error::Usage(format!(
                "{}: not {what} (exactly one line `ssh-ed25519 BASE64 COMMENT`, as in KEY.pub)",
                path.escaped()
            ))
        })
}

/// The SHA-256 fingerprint of `key` as `ssh-keygen -l` prints it (`SHA256:…`).
pub fn fingerprint_of(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// True if `signature` (raw Ed25519, 64 bytes) is `key`'s signature of `message`; false for any
/// other key type or length.
pub fn verifies_raw(key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    let Some(public) = key.key_data().ed25519() else {
        return false;
    };
    let (Ok(verifying), Ok(signature)) = (
        ed25519_dalek::VerifyingKey::from_bytes(&public.0),
        ed25519_dalek::Signature::from_slice(signature),
    ) else {
        return false;
    };
    verifying.verify_strict(message, &signature).is_ok()
}

/// An OpenSSH allowed signers file, read strictly ([`allowed_signers::parse`]).
#[derive(Clone, Debug)]
pub struct AllowedSigners {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its entries, in file order.
    pub entries: Vec<AllowedSigner>,
}

impl AllowedSigners {
    /// Read and parse the allowed signers file at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] (exit 2) naming the path (and the line) for a file that cannot be read,
    /// is not a regular file, is over 4 MiB, is not UTF-8, has a line evstore cannot read
    /// exactly, or lists no key at all.
    pub fn read(path: &Path) -> Result<AllowedSigners> {
        let what = "an allowed signers file";
        let bytes = crate::fsio::read_input_at_most(path, what, MAX_ALLOWED_SIGNERS_BYTES)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Usage(format!("{}: not UTF-8, so not {what}", path.escaped())))?;
        let entries = allowed_signers::parse(&text)
            .map_err(|reason| Error::Usage(format!("{}: {reason}", path.escaped())))?;
        if entries.is_empty() {
            return Err(Error::Usage(format!(
                "{}: lists no key, so no signature could pass (one line per signer: \
                 `PRINCIPAL ssh-ed25519 BASE64`, as in ssh-keygen(1), ALLOWED SIGNERS)",
                path.escaped()
            )));
        }
        Ok(AllowedSigners {
            path: path.to_path_buf(),
            entries,
        })
    }
}

/// What checking a seal's signature found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureStatus {
    /// A signature by a listed key, in the namespace, over the seal's bytes.
    Valid,
    /// There is no signature file (or no seal to sign).
    Missing,
    /// The signature file is not an armored `SSHSIG`.
    Malformed,
    /// The signature is for another namespace.
    WrongNamespace,
    /// The signature does not verify over the seal's bytes (they changed after signing, or it
    /// signs something else), or its algorithm is one evstore does not verify.
    Invalid,
    /// The signature verifies, but no entry of the allowed signers file accepts its key for the
    /// namespace now.
    Unlisted,
}

impl SignatureStatus {
    /// What the verdict line says the signature is: `valid`, `missing`, `malformed`, `in
    /// another namespace`, `invalid`, `by an unlisted key`.
    pub fn words(self) -> &'static str {
        match self {
            SignatureStatus::Valid => "valid",
            SignatureStatus::Missing => "missing",
            SignatureStatus::Malformed => "malformed",
            SignatureStatus::WrongNamespace => "in another namespace",
            SignatureStatus::Invalid => "invalid",
            SignatureStatus::Unlisted => "by an unlisted key",
        }
    }

    /// The snake_case name the JSON report uses.
    pub fn name(self) -> &'static str {
        match self {
            SignatureStatus::Valid => "valid",
            SignatureStatus::Missing => "missing",
            SignatureStatus::Malformed => "malformed",
            SignatureStatus::WrongNamespace => "wrong_namespace",
            SignatureStatus::Invalid => "invalid",
            SignatureStatus::Unlisted => "unlisted",
        }
    }
}

/// The result of checking a seal's signature, for the gate's report.
#[derive(Clone, Debug, Serialize)]
pub struct SignatureCheck {
    /// What was found; only `valid` passes.
    pub status: SignatureStatus,
    /// The signature file.
    #[serde(serialize_with = "crate::text::serialize_escaped")]
    pub file: PathBuf,
    /// The seal it signs.
    #[serde(serialize_with = "crate::text::serialize_escaped")]
    pub seal: PathBuf,
    /// The allowed signers file checked against.
    #[serde(serialize_with = "crate::text::serialize_escaped")]
    pub allowed_signers: PathBuf,
    /// The namespace the signature names, if it decodes.
    pub namespace: Option<String>,
    /// The SHA-256 fingerprint of the signing key (`SHA256:…`), if the signature decodes.
    pub key_fingerprint: Option<String>,
    /// The principals of the allowed signers entries that accept the key (valid only).
    pub principals: Vec<String>,
    /// One sentence: what was checked and what was found.
    pub detail: String,
}

impl SignatureCheck {
    /// True only for a valid signature by a listed key.
    pub fn is_valid(&self) -> bool {
        self.status == SignatureStatus::Valid
    }

    /// One line for the text report: `signature: valid: …` or `signature: FAIL (status): …`.
    pub fn describe(&self) -> String {
        if self.is_valid() {
            format!("signature: valid: {}", self.detail)
        } else {
            format!("signature: FAIL ({}): {}", self.status.name(), self.detail)
        }
    }
}

/// What the signature check is given: the seal's bytes (as the gate compared them), the
/// signature's bytes if there is a signature file, and where each came from.
pub struct SignedSeal<'a> {
    /// The seal's path.
    pub seal: &'a Path,
    /// The seal's bytes; `None` when there is no seal to have been signed.
    pub seal_bytes: Option<&'a [u8]>,
    /// The signature file's path.
    pub signature: &'a Path,
    /// Its bytes; `None` when there is no signature file.
    pub signature_bytes: Option<&'a [u8]>,
}

/// Check a seal's signature against an allowed signers file at `now` (Unix seconds).
pub fn check_signature(
    signed: &SignedSeal<'_>,
    allowed: &AllowedSigners,
    now: i64,
) -> SignatureCheck {
    let mut check = SignatureCheck {
        status: SignatureStatus::Missing,
        file: signed.signature.to_path_buf(),
        seal: signed.seal.to_path_buf(),
        allowed_signers: allowed.path.clone(),
        namespace: None,
        key_fingerprint: None,
        principals: Vec::new(),
        detail: String::new(),
    };
    let fail = |mut check: SignatureCheck, status, detail: String| {
        check.status = status;
        check.detail = detail;
        check
    };
    let Some(seal_bytes) = signed.seal_bytes else {
        let detail = format!(
            "{} is missing, so there is no seal whose signature could be checked",
            signed.seal.escaped()
        );
        return fail(check, SignatureStatus::Missing, detail);
    };
    let Some(signature_bytes) = signed.signature_bytes else {
        let detail = format!(
            "{} is missing: the seal is not signed (`evstore seal DIR --sign KEY` signs it)",
            signed.signature.escaped()
        );
        return fail(check, SignatureStatus::Missing, detail);
    };
    let signer = match verify_seal_signature(signed, seal_bytes, signature_bytes) {
        Ok(signer) => signer,
        Err(refused) => {
            check.namespace = refused.namespace;
            check.key_fingerprint = refused.key_fingerprint;
            return fail(check, refused.status, refused.detail);
        }
    };
    let fingerprint = signer.fingerprint.clone();
    check.namespace = Some(SEAL_NAMESPACE.to_string());
    check.key_fingerprint = Some(fingerprint.clone());
    let listed: Vec<&AllowedSigner> = allowed
        .entries
        .iter()
        .filter(|entry| entry.key.as_ref().map(PublicKey::key_data) == Some(signer.key.key_data()))
        .collect();
    let accepting: Vec<&AllowedSigner> = listed
        .iter()
        .copied()
        .filter(|entry| entry.accepts(SEAL_NAMESPACE, now))
        .collect();
    if accepting.is_empty() {
        let why = match listed.first() {
            None => "which it does not list".to_string(),
            Some(entry) => format!(
                "which it lists on line {} but does not accept for {SEAL_NAMESPACE} now \
                 ({})",
                entry.line,
                refusal_of(entry, now)
            ),
        };
        let detail = format!(
            "the signature verifies, but is by {fingerprint}, {why} in {}",
            allowed.path.escaped()
        );
        return fail(check, SignatureStatus::Unlisted, detail);
    }
    check.principals = accepting.iter().map(|e| e.principals.clone()).collect();
    check.status = SignatureStatus::Valid;
    check.detail = format!(
        "{} is signed by {} ({fingerprint}, line {} of {})",
        signed.seal.escaped(),
        check.principals.join("; "),
        accepting[0].line,
        allowed.path.escaped()
    );
    check
}

/// The key a seal signature verifies with (it says nothing of whether that key is trusted).
#[derive(Clone, Debug)]
pub struct SealSigner {
    /// The signing key, from the signature.
    pub key: PublicKey,
    /// Its SHA-256 fingerprint (`SHA256:…`).
    pub fingerprint: String,
}

/// Why a seal signature does not verify.
#[derive(Clone, Debug)]
pub struct RefusedSignature {
    /// `malformed`, `wrong_namespace` or `invalid`.
    pub status: SignatureStatus,
    /// The namespace the signature names, if it decodes.
    pub namespace: Option<String>,
    /// The signing key's fingerprint, if it decodes.
    pub key_fingerprint: Option<String>,
    /// One sentence.
    pub detail: String,
}

/// Check that `signature_bytes` is an armored `SSHSIG` in the namespace [`SEAL_NAMESPACE`] that
/// verifies over `seal_bytes`, with the key it carries; the paths in `signed` name them in the
/// reason. Who the key belongs to is not checked here ([`check_signature`] does).
///
/// # Errors
///
/// A [`RefusedSignature`] saying what is off.
pub fn verify_seal_signature(
    signed: &SignedSeal<'_>,
    seal_bytes: &[u8],
    signature_bytes: &[u8],
) -> std::result::Result<SealSigner, RefusedSignature> {
    let signature =
        decode_armored(signature_bytes).map_err(|(status, reason)| RefusedSignature {
            status,
            namespace: None,
            key_fingerprint: None,
            detail: format!("{} {reason}", signed.signature.escaped()),
        })?;
    let key = PublicKey::from(signature.public_key().clone());
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    if !matches!(
        key.algorithm(),
        ssh_key::Algorithm::Ed25519 | ssh_key::Algorithm::SkEd25519
    ) {
        return Err(RefusedSignature {
            status: SignatureStatus::Invalid,
            namespace: Some(signature.namespace().to_string()),
            key_fingerprint: Some(fingerprint),
            detail: format!(
                "{} is a signature by a {} key; evstore verifies Ed25519 signatures only",
                signed.signature.escaped(),
                key.algorithm().as_str()
            ),
        });
    }
    let refused = |status, detail| RefusedSignature {
        status,
        namespace: Some(signature.namespace().to_string()),
        key_fingerprint: Some(fingerprint.clone()),
        detail,
    };
    if signature.namespace() != SEAL_NAMESPACE {
        return Err(refused(
            SignatureStatus::WrongNamespace,
            format!(
                "{} is a signature in the namespace {:?}, not {SEAL_NAMESPACE:?}: it was made for \
                 another purpose and never counts as a seal's",
                signed.signature.escaped(),
                signature.namespace()
            ),
        ));
    }
    if let Err(err) = key.verify(SEAL_NAMESPACE, seal_bytes, &signature) {
        return Err(refused(
            SignatureStatus::Invalid,
            format!(
                "the signature by {fingerprint} does not verify over the bytes of {} ({err}): the \
                 seal changed after it was signed, or the signature is of something else",
                signed.seal.escaped()
            ),
        ));
    }
    Ok(SealSigner { key, fingerprint })
}

/// Decode an armored `SSHSIG` strictly: exactly the canonical armor OpenSSH writes (LF line
/// ends, base64 lines of 70 characters, nothing before or after), which is what `ssh-keygen -Y
/// verify` reads; the error is a status and the rest of a sentence.
fn decode_armored(bytes: &[u8]) -> std::result::Result<SshSig, (SignatureStatus, String)> {
    let malformed = |reason: String| (SignatureStatus::Malformed, reason);
    let text = std::str::from_utf8(bytes)
        .map_err(|_| malformed("is not an armored SSH signature (not UTF-8 text)".into()))?;
    let signature = SshSig::from_pem(text).map_err(|err| match err {
        ssh_key::Error::AlgorithmUnknown | ssh_key::Error::AlgorithmUnsupported { .. } => (
            SignatureStatus::Invalid,
            format!("is a signature by a key type evstore does not verify ({err}); evstore verifies Ed25519 signatures only"),
        ),
        err => malformed(format!("is not an armored SSH signature ({err})")),
    })?;
    match signature.to_pem(LineEnding::LF) {
        Ok(canonical) if canonical.as_bytes() == bytes => Ok(signature),
        _ => Err(malformed(
            "is not in the exact form OpenSSH writes and reads (LF line ends, 70-column \
             base64, nothing before or after the armor), so `ssh-keygen -Y verify` would refuse \
             it"
            .into(),
        )),
    }
}

/// Why `entry` does not accept a seal signature at `now`.
fn refusal_of(entry: &AllowedSigner, now: i64) -> String {
    if entry.cert_authority {
        return "a cert-authority entry accepts certificates only".into();
    }
    if entry.principals.contains('!') {
        return "its principals hold a negated pattern, which evstore cannot evaluate without an \
                identity, so the entry accepts nothing"
            .into();
    }
    if let Some(list) = &entry.namespaces {
        if !allowed_signers::pattern_list_matches(list, SEAL_NAMESPACE) {
            return format!("its namespaces are {list:?}");
        }
    }
    if entry.valid_after.is_some_and(|after| now < after) {
        return "it is not valid yet (valid-after)".into();
    }
    "it is no longer valid (valid-before)".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SshSigningKey {
        let keypair = ssh_key::private::Ed25519Keypair::from_seed(&[7; 32]);
        SshSigningKey {
            source: KeySource::File(Box::new(PrivateKey::from(keypair))),
        }
    }

    fn allowed(line: &str) -> AllowedSigners {
        AllowedSigners {
            path: PathBuf::from("allowed_signers"),
            entries: allowed_signers::parse(line).unwrap(),
        }
    }

    fn check(seal: &[u8], signature: Option<&[u8]>, allowed: &AllowedSigners) -> SignatureCheck {
        let signed = SignedSeal {
            seal: Path::new("HASH_MANIFEST.txt"),
            seal_bytes: Some(seal),
            signature: Path::new("HASH_MANIFEST.txt.sig"),
            signature_bytes: signature,
        };
        check_signature(&signed, allowed, 1_800_000_000)
    }

    #[test]
    fn a_signature_verifies_only_over_its_bytes_by_a_listed_key_in_its_namespace() {
        let key = key();
        let listed = allowed(&format!(
            "ci@example.com {}",
            key.public_key_line().unwrap()
        ));
        let seal = b"0000  a.txt\n";
        let signature = key.sign(SEAL_NAMESPACE, seal).unwrap();
        assert_eq!(signature, key.sign(SEAL_NAMESPACE, seal).unwrap());
        let valid = check(seal, Some(signature.as_bytes()), &listed);
        assert_eq!(valid.status, SignatureStatus::Valid, "{}", valid.detail);
        assert_eq!(valid.principals, ["ci@example.com"]);
        assert_eq!(
            valid.key_fingerprint.as_deref(),
            Some(key.fingerprint().as_str())
        );

        let changed = check(b"0001  a.txt\n", Some(signature.as_bytes()), &listed);
        assert_eq!(
            changed.status,
            SignatureStatus::Invalid,
            "{}",
            changed.detail
        );
        let other_namespace = key.sign("git", seal).unwrap();
        let wrong = check(seal, Some(other_namespace.as_bytes()), &listed);
        assert_eq!(wrong.status, SignatureStatus::WrongNamespace);
        let stranger = SshSigningKey {
            source: KeySource::File(Box::new(PrivateKey::from(
                ssh_key::private::Ed25519Keypair::from_seed(&[8; 32]),
            ))),
        };
        let by_stranger = stranger.sign(SEAL_NAMESPACE, seal).unwrap();
        let unlisted = check(seal, Some(by_stranger.as_bytes()), &listed);
        assert_eq!(unlisted.status, SignatureStatus::Unlisted);
        assert!(
            unlisted.detail.contains("does not list"),
            "{}",
            unlisted.detail
        );
        assert_eq!(check(seal, None, &listed).status, SignatureStatus::Missing);
        let garbage = check(
            seal,
            Some(b"-----BEGIN SSH SIGNATURE-----\nAAAA\n"),
            &listed,
        );
        assert_eq!(garbage.status, SignatureStatus::Malformed);
    }

    /// The vector of docs/FORMAT.md §3b: the key whose Ed25519 seed is 32 bytes of 0x07 signs
    /// the seal `SEAL_VECTOR` in the namespace `evstore-seal`.
    const SEAL_VECTOR: &str =
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  empty.txt\n";

    #[test]
    fn the_format_vector_signs_to_these_exact_bytes() {
        let key = key();
        assert_eq!(
            key.public_key_line().unwrap(),
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOpKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs"
        );
        assert_eq!(
            key.fingerprint(),
            "SHA256:z/fSv0Z0RZS+Lccbc6ZoOWwt/fbj1VFJGSBKQbo4icE"
        );
        assert_eq!(
            key.sign(SEAL_NAMESPACE, SEAL_VECTOR.as_bytes()).unwrap(),
            "-----BEGIN SSH SIGNATURE-----\n\
             U1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAg6kpsY+KcUgq+9VB7Ey7F+ZVHdq\n\
             6+vnuSQh7qaRRG0iwAAAAMZXZzdG9yZS1zZWFsAAAAAAAAAAZzaGE1MTIAAABTAAAAC3Nz\n\
             aC1lZDI1NTE5AAAAQDFp9iV2zCFwnc8R4oQTm53X8CIJg6DcSCZwddSGQN29sAncntl5jL\n\
             IToygdxPdjW55G8l3JuVf+ZECwyCpTFA0=\n\
             -----END SSH SIGNATURE-----\n"
        );
    }

    /// The DSSE vector of docs/FORMAT.md §7b-1: the statement of `ATTESTATION_VECTOR`, signed
    /// over its PAE by the seed-0x07 key.
    const ATTESTATION_VECTOR: &str = "{\"command\":[\"sh\",\"gen.sh\",\"{out}\"],\
        \"expected_sha256\":\"1111111111111111111111111111111111111111111111111111111111111111\",\
        \"format\":\"evstore/attestation/1\",\"packet\":\"p@1\",\"runs\":[],\
        \"time_unix_nanos\":1,\"verdict\":\"PASS\"}";

    #[test]
    fn the_dsse_vector_signs_to_these_exact_bytes() {
        use base64::Engine as _;
        let statement = crate::format::dsse::statement_of(ATTESTATION_VECTOR.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(statement.clone()).unwrap(), "{\"_type\":\"https://in-toto.io/Statement/v1\",\"predicate\":{\"command\":[\"sh\",\"gen.sh\",\"{out}\"],\"expected_sha256\":\"1111111111111111111111111111111111111111111111111111111111111111\",\"format\":\"evstore/attestation/1\",\"packet\":\"p@1\",\"runs\":[],\"time_unix_nanos\":1,\"verdict\":\"PASS\"},\"predicateType\":\"https://evstore.dev/attestation/rerun/v1\",\"subject\":[{\"digest\":{\"sha256\":\"1111111111111111111111111111111111111111111111111111111111111111\"},\"name\":\"p@1\"}]}");
        let signed = crate::format::dsse::pae(crate::format::dsse::PAYLOAD_TYPE, &statement);
        let sig = key().sign_raw(&signed).unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(sig),
            "tCTb4rNYIGf4d4ckI2M0dVV6nP1MC/0naQ15jUWWj3oJ8Mzzf9fn+Yd7xoQp1JxOoP1CrwIilJ6mc2c/n25pDA=="
        );
        assert!(verifies_raw(key().public_key(), &signed, &sig));
        assert!(!verifies_raw(key().public_key(), &statement, &sig));
    }

    #[test]
    fn an_entry_limited_to_other_namespaces_or_times_does_not_accept_the_key() {
        let key = key();
        let seal = b"seal\n";
        let signature = key.sign(SEAL_NAMESPACE, seal).unwrap();
        let line = key.public_key_line().unwrap();
        for (options, says) in [
            ("namespaces=\"git\"", "its namespaces"),
            ("valid-before=\"20200101Z\"", "no longer valid"),
            ("valid-after=\"20990101Z\"", "not valid yet"),
            ("cert-authority", "cert-authority"),
        ] {
            let listed = allowed(&format!("ci@example.com {options} {line}"));
            let found = check(seal, Some(signature.as_bytes()), &listed);
            assert_eq!(found.status, SignatureStatus::Unlisted, "{options}");
            assert!(found.detail.contains(says), "{options}: {}", found.detail);
        }
    }
}
