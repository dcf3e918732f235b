//! The command line's shape: the clap derive structs for every subcommand and flag, with their
//! help texts (`evstore --help` is built from these doc comments, so they are user-facing text).
//!
//! **Architecture Invariant:** this module only describes arguments; it opens nothing and decides
//! nothing beyond checking the syntax of a value (`--expect SHA`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::gate::Relation;

const AFTER_HELP: &str = "\
PACKET is NAME (latest version), NAME@N, or a hex prefix (8+ digits) of a packet's
packet_tree_sha256 or tree.

Exit codes: 0 pass, 1 a verification failed (drift, mismatch, corruption),
2 usage or operational error.

Quick start:
  evstore init                         # create ./.evstore
  evstore ingest docs/example-packet   # archive a packet folder
  evstore ls                           # list archived packets
  evstore export example-packet out/   # write it back out, with HASH_MANIFEST.txt
  evstore fsck                         # re-hash and cross-check the whole store

Several machines, one store (any S3-compatible server):
  export EVSTORE_STORE=s3://BUCKET/PREFIX AWS_ENDPOINT_URL=... AWS_ACCESS_KEY_ID=... \
         AWS_SECRET_ACCESS_KEY=...
  evstore init                         # once, from any machine
  evstore ingest DIR                   # from every machine; `evstore ls` on any lists all";

/// evstore: a content-addressed, append-only evidence store.
#[derive(Debug, Parser)]
#[command(name = "evstore", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// The store: a folder, or s3://BUCKET/PREFIX for a store in an S3-compatible bucket shared
    /// by many machines (endpoint and credentials from AWS_ENDPOINT_URL, AWS_REGION,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP; each machine keeps a catalog
    /// cache in $EVSTORE_CACHE, default ~/.cache/evstore) [default: ./.evstore]
    #[arg(
        long,
        global = true,
        env = "EVSTORE_STORE",
        value_name = "DIR|s3://BUCKET/PREFIX"
    )]
    pub store: Option<PathBuf>,

    /// Print one JSON document on stdout instead of text (shapes in docs/CLI.md)
    #[arg(long, global = true)]
    pub json: bool,

    /// Never draw progress bars (they are drawn on stderr only when it is a terminal, for
    /// ingest, verify, diff, fsck, export and mirror)
    /// [env: EVSTORE_NO_PROGRESS: any value but empty, 0, n, no, f, false, off]
    #[arg(
        long,
        global = true,
        env = "EVSTORE_NO_PROGRESS",
        hide_env = true,
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub no_progress: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new, empty store
    Init,
    /// Archive a packet folder (creates the store if its folder does not exist yet)
    ///
    /// Every regular file below DIR is stored, except a top-level HASH_MANIFEST.txt, which is the
    /// packet's seal: if present, every file must match it or nothing is archived (exit 1).
    /// Archiving the same tree again under the same name creates no new version.
    Ingest {
        /// The packet folder
        dir: PathBuf,
        /// The packet name [default: the folder's name]
        #[arg(long)]
        name: Option<String>,
        /// A free-text note stored with this version
        #[arg(long)]
        note: Option<String>,
        /// The packet's source date in Unix seconds, used as SOURCE_DATE_EPOCH by reruns
        /// [default: $SOURCE_DATE_EPOCH, else the ingest time]
        #[arg(long, env = "SOURCE_DATE_EPOCH", value_name = "SECONDS")]
        source_date_epoch: Option<i64>,
    },
    /// Print a folder's packet_tree_sha256 and tree without storing anything (needs no store)
    ///
    /// With --expect SHA (or --expect-not SHA) it is also a check: exit 0 when the folder's
    /// packet_tree_sha256 is (is not) SHA, 1 when not, 2 for a malformed SHA.
    Hash {
        /// The packet folder
        dir: PathBuf,
        #[command(flatten)]
        expect: ExpectArgs,
        /// Print only the packet_tree_sha256 (for scripts; not with --json)
        #[arg(long, short)]
        quiet: bool,
    },
    /// List archived packets
    Ls,
    /// Show a packet's record and files
    Show {
        /// The packet
        packet: String,
    },
    /// Print a packet's canonical manifest (the HASH_MANIFEST.txt text)
    Manifest {
        /// The packet
        packet: String,
    },
    /// Write one file's bytes to stdout, after verifying them
    Cat {
        /// The packet
        packet: String,
        /// The file's path inside the packet
        path: String,
    },
    /// Write a packet into an empty folder, with HASH_MANIFEST.txt, and verify what was written
    Export {
        /// The packet
        packet: String,
        /// The destination folder (must be absent or empty)
        dest: PathBuf,
    },
    /// Print the catalog's event log, or its Merkle checkpoint and proofs
    ///
    /// Without a subcommand: every event. The log is also an RFC 9162 Merkle log (leaf i is the
    /// event with sequence number i + 1, hashed as SHA-256(0x00 || its log/ bytes); FORMAT.md):
    /// `checkpoint`, `prove-inclusion` and `prove-consistency` print what `evstore proof
    /// check-*` checks without a store.
    ///
    /// With `--verify-from CHECKPOINT_FILE`: check that the store's log today only appended to
    /// the log that old checkpoint was of (same origin, no entry removed, the RFC 9162
    /// consistency proof holds), reading the store's log/ keys. Exit 0 if it did, 1 if the log
    /// was rewritten (naming the event, when the catalog's copy of the log shows which), 2 for a
    /// malformed checkpoint or key.
    Log {
        #[command(subcommand)]
        command: Option<LogCommand>,
        /// Check the log against this old checkpoint (as `log checkpoint [--sign]` printed it)
        #[arg(long, value_name = "CHECKPOINT_FILE")]
        verify_from: Option<PathBuf>,
        /// Require the old checkpoint to carry a valid signature by this verifier key (exit 1
        /// if it does not, unsigned included). Without it, a signature of the store's key is
        /// checked when the store keeps checkpoints, and an unsigned checkpoint is checked for
        /// content only
        #[arg(long, value_name = "VERIFIER_KEY", requires = "verify_from")]
        key: Option<String>,
    },
    /// Re-hash every object and cross-check objects, catalog and event chain
    Fsck,
    /// Write DIR/HASH_MANIFEST.txt, the canonical manifest of the folder (needs no store)
    ///
    /// The seal lists every regular file below DIR with its SHA-256, so `sha256sum -c
    /// HASH_MANIFEST.txt` passes inside DIR and `sha256sum HASH_MANIFEST.txt` prints the
    /// packet_tree_sha256. The same seal again is a no-op; a different existing seal is refused.
    ///
    /// With --sign KEY it also writes DIR/HASH_MANIFEST.txt.sig, a detached OpenSSH signature
    /// (SSHSIG, namespace evstore-seal) of the seal's bytes, which `evstore verify DIR
    /// --signed-by ALLOWED_SIGNERS` and OpenSSH itself check:
    ///
    ///   ssh-keygen -Y verify -f allowed_signers -I IDENTITY -n evstore-seal -s HASH_MANIFEST.txt.sig < HASH_MANIFEST.txt
    ///
    /// Example: evstore seal release-rehearsal --sign ~/.ssh/id_ed25519
    Seal {
        /// The packet folder
        dir: PathBuf,
        /// Replace a different existing seal (and its signature)
        #[arg(long)]
        force: bool,
        /// Sign the seal with this OpenSSH Ed25519 private key file (not encrypted, mode 0600,
        /// as `ssh-keygen -t ed25519` writes it); writes DIR/HASH_MANIFEST.txt.sig
        #[arg(long, value_name = "KEYFILE")]
        sign: Option<PathBuf>,
    },
    /// Check a folder byte for byte against its seal, a seal file, or a stored packet
    ///
    /// PASS (exit 0) only when every sealed file is present with identical bytes, no unsealed file
    /// is present, and (against a packet) every executable bit matches; anything else is FAIL
    /// (exit 1) with each failing file explained (crlf, bom, typography, json_escape, ...). A
    /// malformed seal is an error (exit 2) naming the line. Without --against, needs no store.
    /// See docs/VERIFY.md for exactly what is and is not checked.
    Verify {
        /// The folder to check
        dir: PathBuf,
        /// Check against this stored packet instead of a seal
        #[arg(long, value_name = "PACKET", conflicts_with = "seal")]
        against: Option<String>,
        /// Check against this seal file [default: DIR/HASH_MANIFEST.txt]
        #[arg(long, value_name = "FILE")]
        seal: Option<PathBuf>,
        /// A copy of the sealed packet (such as a KB mirror), used to diagnose changed files
        #[arg(long, value_name = "DIR", conflicts_with = "against")]
        original: Option<PathBuf>,
        /// The KB that DIR's KB_REFERENCES.txt paths are relative to, for a packet folder
        /// mirrored with --dedup reference [default: the nearest folder at or above DIR that
        /// holds .evstore-staging]
        #[arg(long, value_name = "KB")]
        kb: Option<PathBuf>,
        /// Also require a valid signature of the seal (DIR/HASH_MANIFEST.txt.sig, or FILE.sig
        /// with --seal FILE; against a packet, a signature of its manifest) by a key this
        /// OpenSSH allowed signers file lists for the namespace evstore-seal. A missing,
        /// malformed, invalid or unlisted signature is a FAIL (exit 1), and a valid one never
        /// hides drift. See docs/VERIFY.md
        #[arg(long, value_name = "ALLOWED_SIGNERS")]
        signed_by: Option<PathBuf>,
        #[command(flatten)]
        expect: ExpectArgs,
    },
    /// Compare any two of: a folder, a seal file, a stored packet (A is expected, B observed)
    ///
    /// Each operand is `folder:PATH`, `seal:PATH` or `packet:PACKET`; without a prefix, an
    /// existing folder is a folder, an existing file is a seal, anything else is a PACKET. Between
    /// two stored packets the Merkle trees are walked together and equal subtrees skipped.
    /// Exit 0 when they are identical, 1 when they differ.
    Diff {
        /// The expected side
        a: String,
        /// The observed side
        b: String,
        /// A copy of A's bytes, used to diagnose changed files when A is a seal
        #[arg(long, value_name = "DIR")]
        original: Option<PathBuf>,
    },
    /// Publish a packet into a knowledge-base folder, atomically, and record it
    ///
    /// Files are staged in KB_DIR/.evstore-staging, fsynced, verified, then the folder is renamed
    /// into place, so readers never see half a packet. HASH_MANIFEST.txt is written in the packet
    /// folder. The same packet again is a no-op; other content at an existing path, and a path
    /// inside or above a packet folder, are refused (the KB is append-only: publish a new version
    /// with --as NAME@2).
    Mirror {
        /// The packet
        packet: String,
        /// The knowledge-base folder (must exist, outside the store)
        kb_dir: PathBuf,
        /// The packet folder inside KB_DIR [default: the packet's name]
        #[arg(long = "as", value_name = "REL_PATH")]
        as_path: Option<String>,
        /// How to publish a file whose identical bytes an earlier mirror in this KB holds
        #[arg(long, value_enum, default_value_t = DedupArg::Copy)]
        dedup: DedupArg,
    },
    /// Rerun a packet's generator in a fresh folder and compare the tree hash
    ///
    /// Runs CMD with an empty output folder given as $EVSTORE_OUT and as {out} in its arguments,
    /// in a controlled environment (PATH kept; TZ=UTC, LC_ALL=C.UTF-8, SOURCE_DATE_EPOCH from the
    /// packet, HOME a fresh empty folder), then hashes the output. PASS (PACKET_TREE MATCH) only
    /// when every run exits 0, writes files, and hashes to the expected packet_tree_sha256. Each
    /// rerun is stored as an attestation object and listed by `evstore runs`.
    ///
    /// Example: evstore rerun example-packet -- bash docs/example-packet/rerun.sh {out}
    Rerun {
        /// The stored packet to reproduce
        #[arg(required_unless_present = "expect")]
        packet: Option<String>,
        /// The expected packet_tree_sha256, for a packet that is not stored
        #[arg(long, value_name = "SHA256", conflicts_with = "packet")]
        expect: Option<String>,
        /// Run this many times, each in a fresh folder; all must match
        #[arg(long, default_value_t = 1, value_name = "N")]
        runs: u32,
        /// Kill a run (and its process group) after this many seconds
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
        /// Keep the first run's output in DIR (absent or empty)
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
        /// Archive the first run's output as packet NAME.rerun (evidence of the run)
        #[arg(long)]
        ingest: bool,
        /// The command's working directory [default: the current one]
        #[arg(long, value_name = "DIR")]
        cwd: Option<PathBuf>,
        /// Pass the caller's environment through instead of the controlled one
        #[arg(long)]
        keep_env: bool,
        /// SOURCE_DATE_EPOCH with --expect [default: the caller's $SOURCE_DATE_EPOCH, else unset]
        #[arg(long, value_name = "SECONDS", requires = "expect")]
        source_date_epoch: Option<i64>,
        /// Sign the attestation (its in-toto statement, DSSE) with this OpenSSH Ed25519 private
        /// key file, the one `seal --sign` takes; the signature is stored beside it and
        /// exported by `runs --show RUN --export FILE`. Needs a store
        #[arg(long, value_name = "KEYFILE")]
        sign: Option<PathBuf>,
        /// The generator command and its arguments, after --
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<std::ffi::OsString>,
    },
    /// List recorded reruns (attestations), optionally of one packet
    ///
    /// With --show RUN, show one (RUN as the list shows it: its number, or a prefix of its
    /// attestation id); with --export FILE, write it as an in-toto Statement v1 in a DSSE
    /// envelope (payloadType application/vnd.in-toto+json), carrying every signature `rerun
    /// --sign` stored, which `evstore attestation verify FILE --key KEY.pub` (or any DSSE
    /// verifier) checks offline. See docs/FORMAT.md §7b-1.
    ///
    /// Example: evstore runs --show 3 --export rerun-3.intoto.json
    Runs {
        /// The packet
        packet: Option<String>,
        /// Show one run: its number as listed, or a prefix of its attestation id
        #[arg(long, value_name = "RUN", conflicts_with = "packet")]
        show: Option<String>,
        /// Write the run's DSSE envelope to FILE (never over an existing file)
        #[arg(long, value_name = "FILE", requires = "show")]
        export: Option<PathBuf>,
        /// Sign the run's statement with this OpenSSH Ed25519 key (as `rerun --sign` does) and
        /// keep the signature, before showing or exporting it; needs a store you can write
        #[arg(long, value_name = "KEYFILE", requires = "show")]
        sign: Option<PathBuf>,
    },
    /// Check attestations
    Attestation {
        #[command(subcommand)]
        command: AttestationCommand,
    },
    /// Knowledge-base commands
    Kb {
        #[command(subcommand)]
        command: KbCommand,
    },
    /// Remove temp files that interrupted writes left in the store's tmp/ folder
    ///
    /// Refuses (exit 2, nothing removed) while any evstore process is writing to the store.
    /// Objects, catalog and KB folders are never touched.
    GcTemp,
    /// Rebuild the catalog from the objects alone
    ///
    /// The new catalog is built in a temp file and renamed into place only when complete, so a
    /// kill leaves the old catalog or the new one. The event log of the catalog it replaces is
    /// carried over: only records and attestations that an event or a commit marker (refs/)
    /// committed become packets and runs; objects of interrupted or failed ingests are never
    /// revived. A committed packet that
    /// cannot be rebuilt (its objects are gone) fails (exit 1) and keeps failing `fsck` until it
    /// is restored or acknowledged with `evstore forget`.
    Reindex {
        /// Move an existing catalog aside (it is kept, never deleted) and rebuild
        #[arg(long)]
        replace: bool,
    },
    /// Make signing keys for checkpoints (C2SP signed-note, Ed25519)
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Check a Merkle proof of a transparency log offline: needs no store
    ///
    /// The proofs of RFC 9162 (Certificate Transparency): hashes are 64 lowercase hex digits,
    /// `--proof` lists the proof's hashes in order, comma-separated (empty for a proof of none).
    /// Exit 0 if the proof holds, 1 if it does not, 2 if an argument is malformed.
    Proof {
        #[command(subcommand)]
        command: ProofCommand,
    },
    // File proofs (FORMAT.md §7h; `ops::file_proof`).
    /// Prove a packet's file to someone without the store: JSON for `evstore proof check-file`
    ///
    /// The proof carries the tree nodes from the packet's root to the folder holding PATH (whole:
    /// a node's id is the BLAKE3 of its bytes), the packet's `ingest` event as its log/ bytes, the
    /// event's RFC 9162 inclusion proof, and the log's checkpoint now, signed with --sign. Give
    /// it, the verifier key and the file to anyone: `evstore proof check-file PROOF --file FILE
    /// --key VERIFIER_KEY` checks the chain from the file's bytes to the signature with nothing
    /// else. The output is always JSON (docs/FORMAT.md §7h). PATH must name a file (a folder, a
    /// missing path or a path with `..` is exit 2).
    ///
    /// Example: evstore prove example-packet logs/gate/selftest.json --sign ci.key > proof.json
    Prove {
        /// The packet
        packet: String,
        /// The file's path inside the packet
        path: String,
        /// Sign the checkpoint with the signer key in KEYFILE (`evstore key generate`); without
        /// it the checkpoint is unsigned, and `proof check-file` can only say the proof's parts
        /// agree, not who vouches for the log
        #[arg(long, value_name = "KEYFILE")]
        sign: Option<PathBuf>,
    },
    /// Acknowledge a committed packet or rerun attestation as lost, in the event log
    ///
    /// `fsck` fails while the log or the store's commit markers say a packet or attestation was
    /// committed and the catalog no longer holds it (its objects were deleted or damaged, and
    /// `reindex --replace` could not rebuild it). After `forget` records the loss (a `forget`
    /// event with the reason, and a marker in refs/forgotten/), `fsck` passes again and lists it
    /// in a note. Forgetting a packet also forgets its lost reruns. Its version number is never
    /// reused; if its objects come back, `reindex --replace` indexes it again. Only a lost item
    /// can be forgotten: a packet the catalog still holds is refused.
    Forget {
        /// The lost item: NAME@N, or 8+ hex digits of its record or attestation id (`fsck`
        /// names them)
        item: String,
        /// Why it is lost (recorded in the event log)
        #[arg(long, required = true)]
        reason: String,
    },
}

/// `--expect` / `--expect-not`, shared by `hash` and `verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExpectArgs {
    /// Also require the folder's packet_tree_sha256 to be SHA (exit 1 if not)
    #[arg(long, value_name = "SHA")]
    pub expect: Option<String>,
    /// Also require the folder's packet_tree_sha256 not to be SHA, e.g. the one before a change
    /// (exit 1 if it is)
    #[arg(long, value_name = "SHA")]
    pub expect_not: Option<String>,
}

impl ExpectArgs {
    /// The expectations, each SHA checked (64 lowercase hex digits, else a usage error).
    pub(crate) fn parse(&self) -> Result<Vec<(Relation, Sha256Digest)>> {
        let mut out = Vec::new();
        for (flag, relation, value) in [
            ("--expect", Relation::Equal, &self.expect),
            ("--expect-not", Relation::Differ, &self.expect_not),
        ] {
            if let Some(text) = value {
                let sha = Sha256Digest::parse_hex(text).ok_or_else(|| {
                    Error::Usage(format!(
                        "{flag} {text:?} is not a packet_tree_sha256 (64 lowercase hex digits)"
                    ))
                })?;
                out.push((relation, sha));
            }
        }
        Ok(out)
    }
}

/// `attestation` subcommands.
#[derive(Subcommand, Debug)]
pub enum AttestationCommand {
    /// Check a DSSE envelope (`runs --show RUN --export FILE`) offline
    ///
    /// PASS (exit 0) only if a signature by KEY verifies over the envelope (DSSE PAE), the
    /// payload is an in-toto Statement v1 of an evstore rerun, the attested rerun's verdict is
    /// PASS, and, with --packet DIR, DIR's packet_tree_sha256 is the statement's subject digest.
    /// Anything else is FAIL (exit 1) saying why; a file that is not such an envelope, or a key
    /// file that is not an OpenSSH public key, is exit 2. Needs no store.
    ///
    /// Example: evstore attestation verify rerun-3.intoto.json --key ci.pub --packet release
    Verify {
        /// The envelope file
        file: PathBuf,
        /// The signer's OpenSSH public key file (KEY.pub)
        #[arg(long, value_name = "PUBKEY")]
        key: PathBuf,
        /// A packet folder that must be the attested packet
        #[arg(long, value_name = "DIR")]
        packet: Option<PathBuf>,
    },
}

/// `key` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write a new Ed25519 note signing key to KEYFILE (mode 0600, never over an existing file)
    /// and print its verifier key on stdout
    ///
    /// The key texts are those of Go's golang.org/x/mod/sumdb/note: the file holds
    /// PRIVATE+KEY+NAME+HASH+BASE64, the verifier key is NAME+HASH+BASE64. Give the verifier key
    /// to whoever checks your checkpoints (`evstore proof check-checkpoint --key`).
    Generate {
        /// The key's name (no white space or +), as it appears on signature lines
        name: String,
        /// Where to write the signer key
        #[arg(long, value_name = "KEYFILE")]
        out: PathBuf,
    },
}

/// `log` subcommands.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Print the log's checkpoint (C2SP tlog-checkpoint: origin, size, base64 root)
    Checkpoint {
        /// Sign it as a C2SP signed note with the signer key in KEYFILE (`evstore key
        /// generate`)
        #[arg(long, value_name = "KEYFILE")]
        sign: Option<PathBuf>,
    },
    /// Keep a signed checkpoint in the store after every command that appends to its log
    ///
    /// The first run writes the key's verifier key to the store (checkpoints/verifier-key; it is
    /// never changed) and keeps the checkpoint of the log now. Every machine that writes the
    /// store runs it once with the same key file (it records the key file's path beside its
    /// catalog; the private key never enters the store), or sets $EVSTORE_SIGNING_KEY: a
    /// writing command without the key is refused before it writes. `fsck` checks every kept
    /// checkpoint against the log.
    KeepCheckpoints {
        /// The signer key file (`evstore key generate`)
        #[arg(long, value_name = "KEYFILE")]
        key: PathBuf,
    },
    /// Print the inclusion proof of one event in the log as it is now
    ProveInclusion {
        /// The event: its sequence number, or 8+ hex digits of its hash
        event: String,
    },
    /// Print the consistency proof between the log at OLD_SIZE events and at NEW_SIZE (default:
    /// now)
    ProveConsistency {
        /// The older size
        old_size: u64,
        /// The newer size (default: the log's size now)
        new_size: Option<u64>,
    },
}

/// `proof` subcommands.
#[derive(Debug, Subcommand)]
pub enum ProofCommand {
    /// Check a signed checkpoint: its signature by the verifier key, and its format
    ///
    /// Exit 0 if a signature line of the key verifies and the text is a checkpoint (origin,
    /// decimal size, base64 root of 32 bytes), 1 if no signature of the key verifies, 2 if the
    /// file or the key is malformed.
    CheckCheckpoint {
        /// The signed checkpoint (as `evstore log checkpoint --sign` prints it)
        checkpoint: PathBuf,
        /// The verifier key, NAME+HASH+BASE64 (as `evstore key generate` prints it)
        #[arg(long, value_name = "VERIFIER_KEY")]
        key: String,
    },
    /// Check that a leaf hash is entry INDEX of a log of SIZE entries whose root is ROOT
    ///
    /// The leaf hash of a log entry is SHA-256(0x00 || entry bytes) (docs/FORMAT.md). The proof
    /// is checked by the algorithm of RFC 9162 section 2.1.3.2.
    CheckInclusion {
        /// The entry's leaf hash (64 lowercase hex digits)
        #[arg(long, value_name = "HEX", required_unless_present = "json_proof")]
        leaf_hash: Option<String>,
        /// The entry's index in the log, from 0
        #[arg(long, required_unless_present = "json_proof")]
        index: Option<u64>,
        /// The log's size (its number of entries)
        #[arg(long, required_unless_present = "json_proof")]
        size: Option<u64>,
        /// The log's root hash at that size
        #[arg(long, value_name = "HEX", required_unless_present = "json_proof")]
        root: Option<String>,
        /// The inclusion proof: hashes from the leaf's sibling up, comma-separated
        #[arg(long, value_name = "HEX,HEX,…", default_value = "")]
        proof: String,
        /// Read all of the above from the JSON that `evstore log prove-inclusion --json` prints
        #[arg(long, value_name = "FILE", conflicts_with_all = ["leaf_hash", "index", "size", "root", "proof"])]
        json_proof: Option<PathBuf>,
    },
    /// Check that a log of SIZE entries with root ROOT only appended to the log of OLD_SIZE
    /// entries with root OLD_ROOT
    ///
    /// The proof is checked by the algorithm of RFC 9162 section 2.1.4.2. Equal sizes need an
    /// empty proof and equal roots; every log extends the empty one (size 0).
    CheckConsistency {
        /// The older log's size
        #[arg(long, required_unless_present = "json_proof")]
        old_size: Option<u64>,
        /// The older log's root hash
        #[arg(long, value_name = "HEX", required_unless_present = "json_proof")]
        old_root: Option<String>,
        /// The newer log's size
        #[arg(long, required_unless_present = "json_proof")]
        size: Option<u64>,
        /// The newer log's root hash
        #[arg(long, value_name = "HEX", required_unless_present = "json_proof")]
        root: Option<String>,
        /// The consistency proof, comma-separated
        #[arg(long, value_name = "HEX,HEX,…", default_value = "")]
        proof: String,
        /// Read all of the above from the JSON that `evstore log prove-consistency --json`
        /// prints
        #[arg(long, value_name = "FILE", conflicts_with_all = ["old_size", "old_root", "size", "root", "proof"])]
        json_proof: Option<PathBuf>,
    },
    // File proofs (FORMAT.md §7h; `ops::file_proof`).
    /// Check a file proof of `evstore prove`: file, tree nodes, log entry, checkpoint, signature
    ///
    /// It holds when the file is in the packet, the packet's ingest event is in the log, and the
    /// log is the one the checkpoint (signed by --key) names.
    ///
    /// Needs no store. Checks, each reported on its own line: `file` (with --file: the file's
    /// size, SHA-256 and BLAKE3 are the proof's; it is streamed, never read whole), `path`,
    /// `nodes` (each decodes strictly), `tree` (each folder's entry names the next node by its
    /// BLAKE3; the last lists the file with the proof's size and digests), `event` (an ingest of
    /// the packet), `root` (the root node's BLAKE3 is the event's tree), `leaf` (SHA-256(0x00 ||
    /// event) at index seq - 1), `checkpoint` (its log reaches the event and is the inclusion
    /// proof's size and root), `inclusion` (RFC 9162) and `signature` (with --key). Without
    /// --file or --key those checks say "not checked" and the proof can still pass. Exit 0 if
    /// every check holds, 1 if any fails (named, with why), 2 for a proof that is not this JSON
    /// (unknown field, wrong format tag, bad base64 or hex, over 64 MiB), a malformed key or an
    /// unreadable file.
    ///
    /// Example: evstore proof check-file proof.json --file selftest.json --key "$(cat ci.pub)"
    CheckFile {
        /// The proof (the JSON `evstore prove` printed)
        proof: PathBuf,
        /// The file to check against the proof
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// The verifier key the checkpoint must be signed by, NAME+HASH+BASE64 (as `evstore key
        /// generate` prints it)
        #[arg(long, value_name = "VERIFIER_KEY")]
        key: Option<String>,
    },
}

/// `kb` subcommands.
#[derive(Debug, Subcommand)]
pub enum KbCommand {
    /// Check every packet folder of a KB byte for byte (and, with a store, against the catalog)
    ///
    /// A packet folder is any folder holding HASH_MANIFEST.txt that is not inside another packet
    /// folder (a sealed subfolder is part of the packet holding it). Each must have a canonical seal,
    /// every listed file present with identical bytes (or referenced, in KB_REFERENCES.txt, to a
    /// file in the same KB with the pinned SHA-256), and no unlisted file. With a store (the
    /// default ./.evstore if it exists, or --store), the seal must name a packet the store knows,
    /// differences are diagnosed from the stored bytes, and every mirror the catalog records for
    /// this KB must still be there.
    Verify {
        /// The knowledge-base folder
        kb_dir: PathBuf,
        /// Check from the KB alone, even if a store is available
        #[arg(long)]
        no_store: bool,
        /// Also require every packet folder's seal to carry a valid signature
        /// (HASH_MANIFEST.txt.sig) by a key this OpenSSH allowed signers file lists for the
        /// namespace evstore-seal (see `evstore verify --signed-by`)
        #[arg(long, value_name = "ALLOWED_SIGNERS")]
        signed_by: Option<PathBuf>,
    },
    /// Remove the staging folders interrupted mirrors left in KB_DIR/.evstore-staging (needs no
    /// store)
    ///
    /// Refuses (exit 2, nothing removed) while a mirror into this KB runs. Only `mirror-*`
    /// folders are removed; anything else in the staging folder is listed and left alone.
    /// Published packet folders are never touched.
    GcStaging {
        /// The knowledge-base folder
        kb_dir: PathBuf,
    },
}

/// `--dedup` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DedupArg {
    /// Always write a copy
    Copy,
    /// Write no copy; list the file in KB_REFERENCES.txt with where its bytes live
    Reference,
    /// Hard-link to the existing copy (when executable bits agree), else copy
    Hardlink,
}
