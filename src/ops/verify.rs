//! `verify` and `diff`: which seal or packet a folder is checked against, and how each `diff`
//! operand is typed, decided here so a library caller gets the same verdict as the binary.
//!
//! [`verify_against_seal`] checks a folder against its own `HASH_MANIFEST.txt` (or a seal file
//! given instead, plus the folder's own seal when it holds a different one: the own-seal rule of
//! `docs/VERIFY.md`); [`verify_against_packet`] checks it against a stored packet (and against its
//! own seal, if it holds one). A KB packet folder whose files are partly referenced
//! (`KB_REFERENCES.txt`) is checked as `kb verify` checks it. [`parse_operand`] types a `diff`
//! operand and [`diff`] compares two of them.
//!
//! **Architecture Invariant:** these functions return a [`GateReport`] and never print; resolving
//! a PACKET argument to a catalog row is the caller's (it may say which version it picked).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::catalog::{Catalog, PacketRow};
use crate::digest::Sha256Digest;
use crate::error::{Error, IoContext, Result};
use crate::gate::signature::{check_signature, AllowedSigners, SignedSeal};
use crate::gate::{self, GateReport, Relation, Side, Verdict};
use crate::ops::kb::StoreView;
use crate::progress::Progress;
use crate::store::Store;
use crate::text::EscapePath;

/// How to check a folder against a seal.
#[derive(Clone, Debug, Default)]
pub struct VerifyConfig {
    /// A seal file to check against instead of the folder's own `HASH_MANIFEST.txt` (read as
    /// `sha256sum -c` reads it).
    pub seal: Option<PathBuf>,
    /// A copy of the sealed packet (such as a KB mirror), used to diagnose changed files.
    pub original: Option<PathBuf>,
    /// The KB that the folder's `KB_REFERENCES.txt` paths are relative to [default: the nearest
    /// folder at or above the folder holding `.evstore-staging`].
    pub kb: Option<PathBuf>,
    /// `--expect` / `--expect-not`: the folder's packet_tree_sha256 must (must not) be these.
    pub expectations: Vec<(Relation, Sha256Digest)>,
    /// `--signed-by`: the seal must carry a valid signature (`HASH_MANIFEST.txt.sig`, or the
    /// seal file's `FILE.sig`) by a key this allowed signers file accepts, or the verdict is FAIL.
    pub signed_by: Option<AllowedSigners>,
    /// Where hashing progress goes.
    pub progress: Progress,
}

/// Check `dir` byte for byte against a seal: its own `HASH_MANIFEST.txt`, or the seal file
/// `config.seal`. When a seal file is given and the folder holds its own, different seal, the
/// folder's own seal must also be the canonical manifest of the expected files (the own-seal
/// rule), or `HASH_MANIFEST.txt` fails.
///
/// # Errors
///
/// [`Error::Usage`] when `dir` has no `HASH_MANIFEST.txt` and no seal file is given;
/// [`Error::UntrustedSeal`] for a malformed seal; I/O errors (with the path) for a folder or seal
/// that cannot be read, and a symlink given as the folder is refused. A verification failure is
/// not an error: it is a report whose verdict is [`Verdict::Fail`].
pub fn verify_against_seal(dir: &Path, config: &VerifyConfig) -> Result<GateReport> {
    // The folder is opened once, as a real folder (a symlink is refused); its own seal and its
    // files are read through that handle. A seal file named with --seal is read as sha256sum -c
    // reads it; DIR's own seal strictly.
    let folder = Arc::new(crate::scan::RootDir::open(dir)?);
    let (seal_path, seal_bytes, mut expected) = match &config.seal {
        Some(path) => {
            let bytes = gate::read_seal_bytes(path)?;
            let side = Side::seal_file_bytes(path, &bytes)?;
            (path.clone(), bytes, side)
        }
        None => {
            let path = dir.join(crate::scan::SEAL_FILE_NAME);
            if std::fs::symlink_metadata(&path).is_err() {
                return Err(Error::Usage(format!(
                    "{} has no HASH_MANIFEST.txt; give --seal FILE or --against PACKET, or create \
                     one with `evstore seal {}`",
                    dir.escaped(),
                    dir.escaped()
                )));
            }
            let bytes = gate::read_seal_in(&folder, crate::scan::SEAL_FILE_NAME)?;
            let side = Side::seal_bytes(&path, &bytes)?;
            (path, bytes, side)
        }
    };
    if let Some(original) = &config.original {
        expected = expected.with_original(original)?;
    }
    // The signature is checked over the very bytes the folder is compared with.
    let signature_of_the_seal = |report: GateReport, signature: Option<Vec<u8>>| {
        with_signature_check(report, config, &seal_path, Some(&seal_bytes), signature)
    };
    if is_kb_packet_folder_with_references(dir, &expected)? {
        let report = verify_kb_packet_folder(dir, config.kb.as_deref(), expected, None)?;
        let signature = match config.signed_by {
            Some(_) => read_signature_beside(&seal_path)?,
            None => None,
        };
        return Ok(signature_of_the_seal(report, signature));
    }
    let observed = Side::folder_in(folder, &config.progress)?;
    let mut report = gate::compare(None, &expected, &observed)?;
    let own_seal = observed
        .folder_seal()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()));
    let given = std::fs::canonicalize(&seal_path).unwrap_or_else(|_| seal_path.clone());
    if own_seal.is_some() && own_seal.as_ref() != Some(&given) {
        let canonical = expected.manifest()?.text();
        if let Some(result) = gate::check_folder_seal(&observed, canonical.as_bytes())? {
            report = report.with_failures(vec![result]);
        }
    }
    let signature = match (&config.signed_by, &config.seal) {
        (None, _) => None,
        (Some(_), Some(_)) => read_signature_beside(&seal_path)?,
        (Some(_), None) => observed.read_folder_signature()?,
    };
    let report = report.with_expectations(&config.expectations);
    Ok(signature_of_the_seal(report, signature))
}

/// The detached signature `SEAL.sig` beside the seal file `seal`, if there is one.
fn read_signature_beside(seal: &Path) -> Result<Option<Vec<u8>>> {
    let mut name = seal.as_os_str().to_os_string();
    name.push(".sig");
    crate::gate::signature::read_signature_file(Path::new(&name))
}

/// `report` with the check of the signature `signature` over `seal_bytes` (the seal at
/// `seal_path`, as the gate compared it) when `config.signed_by` asks for one.
fn with_signature_check(
    report: GateReport,
    config: &VerifyConfig,
    seal_path: &Path,
    seal_bytes: Option<&[u8]>,
    signature: Option<Vec<u8>>,
) -> GateReport {
    let Some(allowed) = &config.signed_by else {
        return report;
    };
    let mut signature_path = seal_path.as_os_str().to_os_string();
    signature_path.push(".sig");
    let signed = SignedSeal {
        seal: seal_path,
        seal_bytes,
        signature: Path::new(&signature_path),
        signature_bytes: signature.as_deref(),
    };
    let now = (crate::now_unix_nanos() / 1_000_000_000) as i64;
    report.with_signature(check_signature(&signed, allowed, now))
}

/// Check `dir` byte for byte against the stored packet `row` (files, and executable bits); a
/// `HASH_MANIFEST.txt` the folder holds must be the packet's canonical manifest.
///
/// # Errors
///
/// Errors reading the folder (with the path), a damaged stored packet ([`Error::Corrupt`]), and
/// for a KB packet folder with references, a KB that cannot be found ([`Error::Usage`]). A
/// verification failure is a report whose verdict is [`Verdict::Fail`].
pub fn verify_against_packet(
    store: &Store,
    catalog: &Catalog,
    row: &PacketRow,
    dir: &Path,
    config: &VerifyConfig,
) -> Result<GateReport> {
    let expected = Side::packet(store, row)?;
    // Against a packet, the signature must be over the packet's canonical manifest (the folder's
    // own seal must be those bytes, or it fails on its own).
    let canonical = expected.manifest()?.text();
    let own_seal_path = dir.join(crate::scan::SEAL_FILE_NAME);
    if is_kb_packet_folder_with_references(dir, &expected)? {
        let view = StoreView { store, catalog };
        let report = verify_kb_packet_folder(dir, config.kb.as_deref(), expected, Some(&view))?;
        let signature = match config.signed_by {
            Some(_) => read_signature_beside(&own_seal_path)?,
            None => None,
        };
        return Ok(with_signature_check(
            report,
            config,
            &own_seal_path,
            Some(canonical.as_bytes()),
            signature,
        ));
    }
    let observed = Side::folder_against(dir, &expected, &config.progress)?;
    let mut report = gate::compare(Some(store), &expected, &observed)?;
    if let Some(result) = gate::check_folder_seal(&observed, canonical.as_bytes())? {
        report = report.with_failures(vec![result]);
    }
    let report = report.with_expectations(&config.expectations);
    let signature = match &config.signed_by {
        Some(_) => observed.read_folder_signature()?,
        None => None,
    };
    // Without a seal in DIR there is nothing that was signed; with one, it must be the packet's
    // canonical manifest (check 5), which is what the signature is checked over.
    let signed = observed.folder_seal().map(|_| canonical.as_bytes());
    Ok(with_signature_check(
        report,
        config,
        &own_seal_path,
        signed,
        signature,
    ))
}

/// True if `dir` is a KB packet folder whose files are partly referenced: it holds its own
/// well-formed `HASH_MANIFEST.txt` and a `KB_REFERENCES.txt` that `expected` does not list as a
/// packet file (that one is mirror metadata, written by `mirror --dedup reference`).
///
/// # Errors
///
/// A damaged stored packet on the expected side ([`Error::Corrupt`]).
pub fn is_kb_packet_folder_with_references(dir: &Path, expected: &Side) -> Result<bool> {
    let references = dir.join(crate::ops::kb::REFERENCES_FILE_NAME);
    if std::fs::symlink_metadata(&references).is_err()
        || expected
            .manifest()?
            .get(crate::ops::kb::REFERENCES_FILE_NAME)
            .is_some()
    {
        return Ok(false);
    }
    let seal = dir.join(crate::scan::SEAL_FILE_NAME);
    Ok(gate::read_seal_bytes(&seal)
        .and_then(|bytes| crate::format::manifest::Manifest::parse_seal(&bytes, &seal))
        .is_ok())
}

/// Verify a KB packet folder with references as `kb verify` checks it: each referenced file is
/// read where `KB_REFERENCES.txt` says its bytes live, in the KB (`kb`, else the nearest folder
/// at or above DIR holding `.evstore-staging`), resolved without symlinks and never outside it.
/// A reference that does not resolve, or resolves to other bytes, fails.
///
/// # Errors
///
/// [`Error::Usage`] when no KB is found or `dir` is not inside it, or the folder cannot be
/// compared at all; I/O errors (with the path) reading the folder or its seal.
pub fn verify_kb_packet_folder(
    dir: &Path,
    kb: Option<&Path>,
    expected: Side,
    view: Option<&StoreView<'_>>,
) -> Result<GateReport> {
    use crate::ops::kb::REFERENCES_FILE_NAME;
    let canonical = std::fs::canonicalize(dir).at(dir, "cannot resolve")?;
    let kb_root = match kb {
        Some(kb) => crate::ops::kb::canonical_kb(kb)?,
        None => crate::ops::kb::find_kb_root(&canonical).ok_or_else(|| {
            Error::Usage(format!(
                "{} holds {REFERENCES_FILE_NAME} (some of its files live elsewhere in a KB), but \
                 no KB was found at or above it (a folder holding .evstore-staging); give the KB \
                 with --kb KB",
                dir.escaped()
            ))
        })?,
    };
    let rel = crate::ops::kb::folder_in_kb(&kb_root, &canonical).map_err(|err| {
        Error::Usage(format!(
            "{} is not a folder inside the KB {} ({err})",
            dir.escaped(),
            kb_root.escaped()
        ))
    })?;
    let canonical_text = expected.manifest()?.text();
    let own_seal_path = dir.join(crate::scan::SEAL_FILE_NAME);
    let own_seal = gate::read_seal_bytes(&own_seal_path)?;
    let own_seal_failure = match expected.kind {
        gate::SideKind::Seal if own_seal_path == Path::new(&expected.label) => None,
        _ => gate::own_seal_result(canonical_text.as_bytes(), &own_seal),
    };
    // With a store, the catalog's record of this mirror (if any) says how each file was
    // published: a file it recorded as a copy is never accepted as a reference.
    let mirror_row = match view {
        Some(view) => view
            .catalog
            .mirrors_in(&kb_root.to_string_lossy())?
            .into_iter()
            .find(|row| row.rel_path == rel),
        None => None,
    };
    let folder = crate::ops::kb::check_packet_folder(
        &kb_root,
        if rel.is_empty() { "." } else { &rel },
        dir,
        view,
        mirror_row.as_ref(),
        Some(expected),
    )?;
    let report = folder.report.ok_or_else(|| {
        Error::Usage(format!(
            "{}: cannot be compared: {}",
            dir.escaped(),
            folder.problems.join("; ")
        ))
    })?;
    let mut failures: Vec<gate::FileResult> = own_seal_failure.into_iter().collect();
    if !folder.reference_problems.is_empty() {
        failures.push(gate::FileResult::failure(
            REFERENCES_FILE_NAME,
            vec![crate::gate::drift::DriftClass::Content],
            folder.reference_problems.join("; "),
        ));
    }
    let mut report = report.with_failures(failures);
    if folder.verdict == Verdict::Fail && report.verdict == Verdict::Pass {
        // Fail closed: a problem the results above do not carry still fails the folder.
        report = report.with_failures(vec![gate::FileResult::failure(
            crate::scan::SEAL_FILE_NAME,
            vec![crate::gate::drift::DriftClass::Content],
            folder.problems.join("; "),
        )]);
    }
    // Say which files are not in the folder: a reader (or `sha256sum -c`) would not find them.
    for reference in &folder.referenced {
        report.notes.push(format!(
            "{} is not in {}: {REFERENCES_FILE_NAME} references its bytes at {} in the KB {}, \
             where they were read",
            reference.path,
            dir.escaped(),
            reference.kb_path,
            kb_root.escaped()
        ));
    }
    Ok(report)
}

/// One operand of `diff`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operand {
    /// A folder on disk (`folder:PATH`).
    Folder(PathBuf),
    /// A seal file (`seal:PATH`).
    Seal(PathBuf),
    /// A stored packet (`packet:PACKET`), as the user wrote it.
    Packet(String),
}

impl Operand {
    /// True if this operand names a stored packet, so comparing it needs a store.
    pub fn is_packet(&self) -> bool {
        matches!(self, Operand::Packet(_))
    }
}

/// Type a `diff` operand: `folder:PATH`, `seal:PATH` or `packet:PACKET`; without a prefix, an
/// existing folder is a folder, an existing file (anything else that exists) is a seal, and
/// anything else is a PACKET.
pub fn parse_operand(text: &str) -> Operand {
    if let Some(path) = text.strip_prefix("folder:") {
        Operand::Folder(PathBuf::from(path))
    } else if let Some(path) = text.strip_prefix("seal:") {
        Operand::Seal(PathBuf::from(path))
    } else if let Some(packet) = text.strip_prefix("packet:") {
        Operand::Packet(packet.to_string())
    } else {
        let path = Path::new(text);
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => Operand::Folder(path.to_path_buf()),
            Ok(_) => Operand::Seal(path.to_path_buf()),
            Err(_) => Operand::Packet(text.to_string()),
        }
    }
}

/// How to compare two `diff` operands.
#[derive(Clone, Debug, Default)]
pub struct DiffConfig {
    /// A copy of A's bytes, used to diagnose changed files when A is a seal.
    pub original: Option<PathBuf>,
    /// Where hashing progress goes.
    pub progress: Progress,
}

/// Turns a PACKET operand into its catalog row. The caller's: it may say which version a name
/// resolved to. Called for each PACKET operand in order, A first, only when it is needed.
pub type ResolvePacket<'a> = dyn Fn(&Catalog, &str) -> Result<PacketRow> + 'a;

/// Compare operand `a` (expected) with operand `b` (observed). Two stored packets are compared
/// by walking their Merkle trees together; a KB packet folder with references on the observed
/// side is checked as `verify` checks it when a KB holds it. `opened` is the store, needed (and
/// only used) when an operand is a PACKET.
///
/// # Errors
///
/// [`Error::Usage`] for a PACKET operand without a store; whatever reading a side returns (a
/// missing folder, a malformed seal, an unknown packet). Differences are a report whose verdict
/// is [`Verdict::Fail`].
pub fn diff(
    a: &Operand,
    b: &Operand,
    opened: Option<(&Store, &Catalog)>,
    resolve: &ResolvePacket<'_>,
    config: &DiffConfig,
) -> Result<GateReport> {
    if let (Operand::Packet(x), Operand::Packet(y), Some((store, catalog))) = (a, b, opened) {
        let row_a = resolve(catalog, x)?;
        let row_b = resolve(catalog, y)?;
        return gate::diff_packets(store, &row_a, &row_b);
    }
    let load = |operand: &Operand| -> Result<Side> {
        match operand {
            Operand::Folder(path) => Side::folder(path, &config.progress),
            Operand::Seal(path) => Side::seal_file(path),
            Operand::Packet(reference) => match opened {
                Some((store, catalog)) => Side::packet(store, &resolve(catalog, reference)?),
                None => Err(Error::Usage("a PACKET operand needs a store".into())),
            },
        }
    };
    let mut expected = load(a)?;
    if let Some(original) = &config.original {
        expected = expected.with_original(original)?;
    }
    // A KB packet folder with references is compared as `verify` checks it: each referenced file
    // is read where KB_REFERENCES.txt says its bytes live in the KB that holds the folder.
    let mut outside_kb_note = None;
    if let Operand::Folder(path) = b {
        if is_kb_packet_folder_with_references(path, &expected)? {
            let in_kb = std::fs::canonicalize(path)
                .ok()
                .and_then(|canonical| crate::ops::kb::find_kb_root(&canonical));
            if in_kb.is_some() {
                let view = opened.map(|(store, catalog)| StoreView { store, catalog });
                return verify_kb_packet_folder(path, None, expected, view.as_ref());
            }
            outside_kb_note = Some(format!(
                "{} holds {} but no KB was found at or above it (a folder holding \
                 .evstore-staging), so it was compared as it is; to resolve its references use \
                 `evstore verify {} --kb KB`",
                path.escaped(),
                crate::ops::kb::REFERENCES_FILE_NAME,
                path.escaped()
            ));
        }
    }
    let observed = match (b, expected.kind) {
        (Operand::Folder(path), gate::SideKind::Packet) => {
            Side::folder_against(path, &expected, &config.progress)?
        }
        _ => load(b)?,
    };
    let store = opened.map(|(store, _)| store);
    let mut report = gate::compare(store, &expected, &observed)?;
    report.notes.extend(outside_kb_note);
    Ok(report)
}

/// What `hash` found: a folder's names, and the `--expect` / `--expect-not` checks on them.
#[derive(Clone, Debug)]
pub struct HashReport {
    /// The folder, hashed strictly (as ingest would).
    pub packet: crate::ops::ingest::HashedPacket,
    /// One result per expectation given, in order.
    pub expectations: Vec<gate::Expectation>,
}

impl HashReport {
    /// True if every expectation holds (and when none was given).
    pub fn holds(&self) -> bool {
        self.expectations.iter().all(|e| e.holds)
    }
}

/// Hash the folder `dir` as ingest would, storing nothing, and check its packet_tree_sha256
/// against `expectations`.
///
/// # Errors
///
/// Errors reading the folder (with the path), and [`Error::UnsupportedInput`] for a folder a
/// packet cannot hold. An expectation that does not hold is not an error: see
/// [`HashReport::holds`].
pub fn hash_folder(dir: &Path, expectations: &[(Relation, Sha256Digest)]) -> Result<HashReport> {
    let packet = crate::ops::ingest::hash_packet(dir)?;
    let actual = packet.packet_tree_sha256();
    let expectations = expectations
        .iter()
        .map(|&(relation, sha)| gate::Expectation::check(relation, sha, Some(actual)))
        .collect();
    Ok(HashReport {
        packet,
        expectations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_operand_is_typed_by_its_prefix_else_by_what_exists() {
        let dir = tempfile::tempdir().expect("temp dir");
        let folder = dir.path().join("folder");
        std::fs::create_dir(&folder).expect("mkdir");
        let file = dir.path().join("seal.txt");
        std::fs::write(&file, "").expect("write");
        let text = |p: &Path| p.to_str().expect("UTF-8 temp path").to_string();
        // A prefix wins over what is on disk.
        assert_eq!(
            parse_operand(&format!("seal:{}", text(&folder))),
            Operand::Seal(folder.clone())
        );
        assert_eq!(
            parse_operand(&format!("folder:{}", text(&file))),
            Operand::Folder(file.clone())
        );
        assert_eq!(
            parse_operand("packet:name@2"),
            Operand::Packet("name@2".into())
        );
        // Without a prefix: a folder, a file (a seal), or else a packet reference.
        assert_eq!(
            parse_operand(&text(&folder)),
            Operand::Folder(folder.clone())
        );
        assert_eq!(parse_operand(&text(&file)), Operand::Seal(file.clone()));
        let absent = text(&dir.path().join("absent"));
        assert_eq!(parse_operand(&absent), Operand::Packet(absent.clone()));
        assert!(parse_operand(&absent).is_packet());
        assert!(!parse_operand(&text(&folder)).is_packet());
    }
}
