//! The command line: argument parsing, output, and exit codes.
//!
//! **Architecture Invariant:** only this module prints or picks exit codes. Every command returns
//! an [`Outcome`] (pass or verification failure) or an [`Error`]; [`run`] turns those into `0`
//! (pass), `1` (a verification failed) or `2` (usage or operational error). With `--json`, every
//! command prints exactly one JSON document on stdout, errors included (see `docs/CLI.md`).

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};
use serde_json::{json, Value};

use crate::catalog::{Catalog, CatalogAccess, LostItem, NewEvent, PacketRow};
use crate::digest::Sha256Digest;
use crate::error::{Error, ErrorClass, IoContext, Result};
use crate::format::tree::manifest_of;
use crate::gate::{self, Expectation, GateReport, Relation, SealAction, Side, Verdict};
use crate::ops::export::export;
use crate::ops::fsck::fsck;
use crate::ops::ingest::{hash_packet, ingest_folder, IngestConfig, IngestOutcome, PacketFolder};
use crate::ops::reindex::reindex;
use crate::packet::{cat_file, verified_files};
use crate::packet_ref::{check_new_packet_name, parse_packet_ref};
use crate::progress::{Progress, ProgressSink};
use crate::store::Store;
use crate::text::{count, rfc3339_nanos, rfc3339_seconds, EscapePath};

/// Print one line on stdout. A closed stdout (`evstore ls | head`) stops the output but not the
/// command: the exit code still reports the command's result.
macro_rules! say {
    ($($arg:tt)*) => { emit(format_args!($($arg)*)) };
}

fn emit(args: std::fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
}

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
  evstore fsck                         # re-hash and cross-check the whole store";

/// evstore: a content-addressed, append-only evidence store.
#[derive(Debug, Parser)]
#[command(name = "evstore", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// The store folder [default: ./.evstore]
    #[arg(long, global = true, env = "EVSTORE_STORE", value_name = "DIR")]
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
    /// Print the catalog's event log
    Log,
    /// Re-hash every object and cross-check objects, catalog and event chain
    Fsck,
    /// Write DIR/HASH_MANIFEST.txt, the canonical manifest of the folder (needs no store)
    ///
    /// The seal lists every regular file below DIR with its SHA-256, so `sha256sum -c
    /// HASH_MANIFEST.txt` passes inside DIR and `sha256sum HASH_MANIFEST.txt` prints the
    /// packet_tree_sha256. The same seal again is a no-op; a different existing seal is refused.
    Seal {
        /// The packet folder
        dir: PathBuf,
        /// Replace a different existing seal
        #[arg(long)]
        force: bool,
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
        /// The generator command and its arguments, after --
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<std::ffi::OsString>,
    },
    /// List recorded reruns (attestations), optionally of one packet
    Runs {
        /// The packet
        packet: Option<String>,
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
    expect: Option<String>,
    /// Also require the folder's packet_tree_sha256 not to be SHA, e.g. the one before a change
    /// (exit 1 if it is)
    #[arg(long, value_name = "SHA")]
    expect_not: Option<String>,
}

impl ExpectArgs {
    /// The expectations, each SHA checked (64 lowercase hex digits, else a usage error).
    fn parse(&self) -> Result<Vec<(Relation, Sha256Digest)>> {
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

/// How a command ended, when it did not fail with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything checked out.
    Pass,
    /// A verification failed.
    Fail,
}

/// Parse the command line, run the command, print, and return the exit code.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    let json = cli.json;
    // Commands that write handle SIGINT, SIGTERM and SIGHUP: they stop, remove what they created
    // and exit with 128 + the signal number (see `interrupt`). The others keep the default action.
    let nothing_recorded = match &cli.command {
        Command::Ingest { .. } | Command::Mirror { .. } => Some("nothing was recorded"),
        Command::Rerun { .. } => Some("no attestation was recorded"),
        Command::Export { .. } | Command::Seal { .. } => None,
        _ => return exit_for(json, dispatch(cli)),
    };
    if let Err(err) = crate::interrupt::install() {
        return exit_for(
            json,
            Err(Error::io(
                "<signals>",
                "cannot install the SIGINT, SIGTERM and SIGHUP handlers",
                err,
            )),
        );
    }
    let result = dispatch(cli);
    match crate::interrupt::signal() {
        None => exit_for(json, result),
        Some(signal) => match result {
            // Too late to stop: the command had passed its point of no return.
            Ok(_) => {
                eprintln!(
                    "evstore: {} arrived after the command's point of no return; it completed",
                    crate::interrupt::signal_name(signal)
                );
                exit_for(json, result)
            }
            Err(err) => interrupted(json, signal, &err, nothing_recorded),
        },
    }
}

/// Report a command stopped by a signal: what it cleaned up (each claim checked now), exit
/// 128 + the signal number.
fn interrupted(json: bool, signal: i32, err: &Error, note: Option<&str>) -> ExitCode {
    let mut parts = vec![format!(
        "interrupted by {}",
        crate::interrupt::signal_name(signal)
    )];
    parts.extend(
        crate::interrupt::take_cleanups()
            .iter()
            .map(crate::interrupt::Cleanup::describe),
    );
    parts.extend(note.map(str::to_string));
    if !matches!(err, Error::Interrupted { .. }) {
        parts.push(format!("it was failing with: {err}"));
    }
    let message = parts.join("; ");
    if json {
        print_json(&json!({"error": {"class": "operational", "message": message}}));
    }
    eprintln!("evstore: {message}");
    ExitCode::from(u8::try_from(128 + signal).unwrap_or(2))
}

/// The exit code (and error message) for a command's result.
fn exit_for(json: bool, result: Result<Outcome>) -> ExitCode {
    match result {
        Ok(Outcome::Pass) => ExitCode::from(0),
        Ok(Outcome::Fail) => ExitCode::from(1),
        Err(err) => {
            let code = match err.class() {
                ErrorClass::Verification => 1,
                ErrorClass::Operational => 2,
            };
            if json {
                let class = if code == 1 {
                    "verification"
                } else {
                    "operational"
                };
                print_json(&json!({"error": {"class": class, "message": err.to_string()}}));
            }
            eprintln!("evstore: error: {err}");
            ExitCode::from(code)
        }
    }
}

/// Report a command line clap could not parse: help and version go to stdout with exit 0; a
/// usage error exits 2, as one JSON document on stdout when `--json` was given.
fn usage_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) || !std::env::args_os().any(|a| a == "--json")
    {
        let _ = err.print();
        return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
    }
    let message = err.render().to_string();
    print_json(&json!({"error": {"class": "operational", "message": message.trim_end()}}));
    let _ = err.print();
    ExitCode::from(2)
}

fn print_json(value: &Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
    say!("{text}");
}

struct Context {
    store_path: PathBuf,
    json: bool,
    progress: Progress,
}

/// A progress bar on stderr, drawn only while a phase runs and cleared when it ends.
struct TerminalProgress {
    bar: ProgressBar,
}

impl TerminalProgress {
    /// The progress to use: a bar when stderr is a terminal and bars are not turned off.
    fn for_stderr(turned_off: bool) -> Progress {
        if turned_off || !io::stderr().is_terminal() {
            return Progress::silent();
        }
        let style = ProgressStyle::with_template(
            "{msg:>6} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = ProgressBar::hidden()
            .with_style(style)
            .with_finish(ProgressFinish::AndClear);
        Progress::to(Arc::new(TerminalProgress { bar }))
    }
}

impl ProgressSink for TerminalProgress {
    fn begin(&self, phase: &str, total_bytes: u64) {
        // Set up while hidden, so the first frame drawn is already this phase's.
        self.bar.reset();
        self.bar.set_length(total_bytes);
        self.bar.set_message(phase.to_string());
        self.bar.set_draw_target(ProgressDrawTarget::stderr());
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
        self.bar.set_draw_target(ProgressDrawTarget::hidden());
    }
}

impl Context {
    /// Open the store for a command that writes to it: refused up front if this user cannot.
    fn open(&self) -> Result<(Store, Catalog)> {
        let store = Store::open(&self.store_path)?;
        store.check_writable()?;
        let catalog = Catalog::open_existing(&store.catalog_path())?;
        Ok((store, catalog))
    }

    /// Open the store for a command that only reads it; works on a store this user cannot
    /// write and on a full file system (see `Catalog::open_read_only`).
    fn open_read(&self) -> Result<(Store, Catalog)> {
        let store = Store::open(&self.store_path)?;
        let catalog = Catalog::open_read_only(&store.catalog_path())?;
        Ok((store, catalog))
    }

    /// Resolve a PACKET argument. Unless it named a version (`NAME@N`), say on stderr which
    /// version it resolved to (text output; every `--json` document names the version).
    fn resolve(&self, catalog: &Catalog, packet: &str) -> Result<PacketRow> {
        let reference = parse_packet_ref(packet).map_err(Error::Usage)?;
        let row = catalog.resolve(&reference)?;
        if !self.json {
            let label = format!("{}@{}", row.record.name, row.record.version);
            match &reference {
                crate::packet_ref::PacketRef::Version { .. } => {}
                crate::packet_ref::PacketRef::Name { name, .. } if *name == row.record.name => {
                    eprintln!("evstore: {packet} is {label}, its latest version")
                }
                _ => eprintln!("evstore: {packet} is {label} (matched by hash prefix)"),
            }
        }
        Ok(row)
    }
}

fn dispatch(cli: Cli) -> Result<Outcome> {
    let store_given = cli.store.is_some();
    let ctx = Context {
        store_path: cli
            .store
            .clone()
            .unwrap_or_else(|| PathBuf::from(".evstore")),
        json: cli.json,
        progress: TerminalProgress::for_stderr(cli.no_progress),
    };
    match cli.command {
        Command::Init => cmd_init(&ctx),
        Command::Ingest {
            dir,
            name,
            note,
            source_date_epoch,
        } => cmd_ingest(&ctx, &dir, name, note, source_date_epoch),
        Command::Hash { dir, expect, quiet } => cmd_hash(&ctx, &dir, &expect, quiet),
        Command::Ls => cmd_ls(&ctx),
        Command::Show { packet } => cmd_show(&ctx, &packet),
        Command::Manifest { packet } => cmd_manifest(&ctx, &packet),
        Command::Cat { packet, path } => cmd_cat(&ctx, &packet, &path),
        Command::Export { packet, dest } => cmd_export(&ctx, &packet, &dest),
        Command::Log => cmd_log(&ctx),
        Command::Fsck => cmd_fsck(&ctx),
        Command::Reindex { replace } => cmd_reindex(&ctx, replace),
        Command::Forget { item, reason } => cmd_forget(&ctx, &item, &reason),
        Command::Seal { dir, force } => cmd_seal(&ctx, &dir, force),
        Command::Verify {
            dir,
            against,
            seal,
            original,
            kb,
            expect,
        } => cmd_verify(&ctx, &dir, against, seal, original, kb, &expect),
        Command::Diff { a, b, original } => cmd_diff(&ctx, &a, &b, original),
        Command::Mirror {
            packet,
            kb_dir,
            as_path,
            dedup,
        } => cmd_mirror(&ctx, &packet, &kb_dir, as_path, dedup),
        Command::Kb {
            command: KbCommand::Verify { kb_dir, no_store },
        } => cmd_kb_verify(&ctx, &kb_dir, no_store, store_given),
        Command::Kb {
            command: KbCommand::GcStaging { kb_dir },
        } => cmd_kb_gc_staging(&ctx, &kb_dir),
        Command::Rerun {
            packet,
            expect,
            runs,
            timeout,
            keep,
            ingest,
            cwd,
            keep_env,
            source_date_epoch,
            command,
        } => cmd_rerun(
            &ctx,
            RerunArgs {
                packet,
                expect,
                runs,
                timeout,
                keep,
                ingest,
                cwd,
                keep_env,
                source_date_epoch,
                command,
            },
            store_given,
        ),
        Command::Runs { packet } => cmd_runs(&ctx, packet.as_deref()),
        Command::GcTemp => cmd_gc_temp(&ctx),
    }
}

/// Create a store whose catalog (with its `init` event) exists before the store is visible.
fn create_store(root: &Path) -> Result<Store> {
    Store::init_with(root, |staged| prepare_new_catalog(root, staged))
}

/// Create the catalog of a new store being built in `staged`, with its `init` event.
fn prepare_new_catalog(root: &Path, staged: &Path) -> Result<()> {
    let mut catalog = Catalog::open(&staged.join(crate::store::CATALOG_FILE_NAME))?;
    catalog.log_event(&NewEvent {
        kind: "init".into(),
        subject: root.display().to_string(),
        detail: json!({"tool_version": crate::TOOL_VERSION}),
    })?;
    Ok(())
}

fn cmd_init(ctx: &Context) -> Result<Outcome> {
    let store = create_store(&ctx.store_path)?;
    if ctx.json {
        print_json(&json!({"store": store.root().escaped().to_string()}));
    } else {
        say!(
            "initialised empty evstore store in {}",
            store.root().escaped()
        );
    }
    Ok(Outcome::Pass)
}

fn default_name(dir: &Path) -> Result<String> {
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let Some(file_name) = canonical.file_name() else {
        return Err(Error::Usage(format!(
            "{} has no folder name to use as the packet name; pass --name NAME",
            dir.escaped()
        )));
    };
    let Some(name) = file_name.to_str().map(str::to_string) else {
        return Err(Error::Usage(format!(
            "cannot use the folder name {} as packet name (it is not valid UTF-8); pass --name NAME",
            Path::new(file_name).escaped()
        )));
    };
    check_new_packet_name(&name).map_err(|reason| {
        Error::Usage(format!(
            "cannot use the folder name as packet name ({reason}); pass --name NAME"
        ))
    })?;
    Ok(name)
}

fn cmd_ingest(
    ctx: &Context,
    dir: &Path,
    name: Option<String>,
    note: Option<String>,
    source_date_epoch: Option<i64>,
) -> Result<Outcome> {
    // A symlink is refused, never followed (ingest opens the folder itself without following
    // it), before its target's name could become the packet's.
    crate::scan::refuse_symlink(dir)?;
    let name = match name {
        Some(name) => {
            check_new_packet_name(&name).map_err(Error::Usage)?;
            name
        }
        None => default_name(dir)?,
    };
    // Check everything that can refuse before anything is created: the store location, the
    // folder, and that the store does not lie inside it (a store created inside the packet
    // would change the packet).
    crate::store::check_store_location(&ctx.store_path)?;
    // Opened and checked against the store once; ingested through this handle.
    let folder = PacketFolder::open(dir, &ctx.store_path)?;
    let config = IngestConfig {
        name,
        note,
        source_date_epoch,
        progress: ctx.progress.clone(),
    };
    // A new store is built in a temp folder with the packet in it, and appears only if the
    // ingest succeeded: a refused first ingest (drift, a symlink, an empty folder...) leaves
    // no store behind.
    let mut first = None;
    // A folder that does not match its seal: the gate's report, rendered as `verify` renders it.
    let mut refused = None;
    if std::fs::symlink_metadata(&ctx.store_path).is_err() {
        let created = Store::create_filled(
            &ctx.store_path,
            |staged| prepare_new_catalog(&ctx.store_path, staged),
            |store| {
                let mut catalog = Catalog::open_existing(&store.catalog_path())?;
                match ingest_folder(store, &mut catalog, &folder, &config)? {
                    IngestOutcome::Archived(report) => Ok(report),
                    // An error, so that no store is created.
                    IngestOutcome::Refused(refusal) => {
                        let err = refusal.to_error();
                        refused = Some(refusal);
                        Err(err)
                    }
                }
            },
        );
        if let Some(refusal) = refused {
            return Ok(print_ingest_refusal(ctx, &refusal));
        }
        first = created?;
        if first.is_some() {
            eprintln!(
                "evstore: created a new store in {}",
                ctx.store_path.escaped()
            );
        }
        // `None`: another process created the store meanwhile; use theirs.
    }
    let (report, catalog) = match first {
        Some((store, report)) => {
            let catalog = Catalog::open_existing(&store.catalog_path())?;
            (report, catalog)
        }
        None => {
            let (store, mut catalog) = ctx.open()?;
            match ingest_folder(&store, &mut catalog, &folder, &config)? {
                IngestOutcome::Archived(report) => (report, catalog),
                IngestOutcome::Refused(refusal) => return Ok(print_ingest_refusal(ctx, &refusal)),
            }
        }
    };
    let record = &report.packet.record;
    let label = format!("{}@{}", record.name, record.version);
    // The latest version of this name, which differs from `record` when the same tree was
    // archived earlier and another tree since.
    let latest_version = catalog
        .resolve(&crate::packet_ref::PacketRef::Name {
            name: record.name.clone(),
            also_prefix: false,
        })?
        .record
        .version;
    if ctx.json {
        print_json(&json!({
            "packet": label,
            "name": record.name,
            "version": record.version,
            "created": report.created,
            "packet_tree_sha256": record.packet_tree_sha256,
            "tree": record.tree,
            "record": report.packet.record_id,
            "files": record.file_count,
            "bytes": record.total_bytes,
            "objects_written": report.objects_written,
            "bytes_newly_stored": report.bytes_newly_stored,
            "latest_version": latest_version,
        }));
    } else {
        if report.created {
            say!("archived {label}");
        } else if latest_version > record.version {
            say!(
                "already archived as {label} (same tree); no new version; note: the latest \
                 version is {}@{latest_version}, whose tree differs from this folder",
                record.name
            );
        } else {
            say!("already archived as {label} (same tree); no new version");
        }
        say!("packet_tree_sha256  {}", record.packet_tree_sha256);
        say!("tree                {}", record.tree);
        say!("files               {}", record.file_count);
        say!("bytes               {}", record.total_bytes);
        say!(
            "newly stored        {} in {}",
            count(report.bytes_newly_stored, "byte"),
            count(report.objects_written, "object")
        );
    }
    Ok(Outcome::Pass)
}

/// A sealed folder that does not match its seal: the gate's report as `verify DIR` prints it
/// (stdout), and on stderr that nothing was archived; exit 1.
fn print_ingest_refusal(ctx: &Context, refusal: &crate::ops::ingest::SealRefusal) -> Outcome {
    let outcome = print_gate_report(ctx, &refusal.report);
    eprintln!("evstore: {}", refusal.message());
    outcome
}

fn cmd_hash(ctx: &Context, dir: &Path, expect: &ExpectArgs, quiet: bool) -> Result<Outcome> {
    if quiet && ctx.json {
        return Err(Error::Usage(
            "hash: --quiet prints the bare packet_tree_sha256 and --json a document; give one"
                .into(),
        ));
    }
    let wanted = expect.parse()?;
    let packet = hash_packet(dir)?;
    let actual = packet.packet_tree_sha256();
    let checks: Vec<Expectation> = wanted
        .iter()
        .map(|&(relation, sha)| Expectation::check(relation, sha, Some(actual)))
        .collect();
    let holds = checks.iter().all(|e| e.holds);
    if ctx.json {
        let mut value = json!({
            "packet_tree_sha256": actual,
            "tree": packet.tree.root,
            "files": packet.files.len(),
            "bytes": packet.total_bytes(),
        });
        if !checks.is_empty() {
            value["expectations"] = json!(checks);
            value["verdict"] = json!(if holds { "PASS" } else { "FAIL" });
        }
        print_json(&value);
    } else if quiet {
        say!("{actual}");
        for check in checks.iter().filter(|e| !e.holds) {
            eprintln!("evstore: FAIL: {}: {}", dir.escaped(), check.describe());
        }
    } else {
        say!("packet_tree_sha256  {actual}");
        say!("tree                {}", packet.tree.root);
        say!("files               {}", packet.files.len());
        say!("bytes               {}", packet.total_bytes());
        for check in &checks {
            let verdict = if check.holds { "PASS" } else { "FAIL" };
            say!("{verdict}: {}", check.describe());
        }
    }
    Ok(if holds { Outcome::Pass } else { Outcome::Fail })
}

fn packet_json(row: &PacketRow) -> Value {
    let r = &row.record;
    json!({
        "packet": format!("{}@{}", r.name, r.version),
        "name": r.name,
        "version": r.version,
        "packet_tree_sha256": r.packet_tree_sha256,
        "tree": r.tree,
        "record": row.record_id,
        "files": r.file_count,
        "bytes": r.total_bytes,
        "created_unix_nanos": r.created_unix_nanos,
        "created": rfc3339_nanos(nanos_i64(r.created_unix_nanos)),
        "source_date_epoch": r.source_date_epoch,
        "tool_version": r.tool_version,
        "source_path": r.source_path,
        "note": r.note,
    })
}

fn cmd_ls(ctx: &Context) -> Result<Outcome> {
    let (_, catalog) = ctx.open_read()?;
    let packets = catalog.packets()?;
    if ctx.json {
        let list: Vec<Value> = packets.iter().map(packet_json).collect();
        print_json(&json!({ "packets": list }));
    } else if packets.is_empty() {
        say!("no packets archived yet; add one with `evstore ingest DIR`");
    } else {
        // Columns as wide as their widest cell, so no name (up to 128 characters) shifts them.
        let labels: Vec<String> = packets
            .iter()
            .map(|row| format!("{}@{}", row.record.name, row.record.version))
            .collect();
        let width = labels.iter().map(String::len).chain([6]).max().unwrap_or(6);
        let files_width = packets
            .iter()
            .map(|row| row.record.file_count.to_string().len())
            .chain([5])
            .max()
            .unwrap_or(5);
        let bytes_width = packets
            .iter()
            .map(|row| row.record.total_bytes.to_string().len())
            .chain([5])
            .max()
            .unwrap_or(5);
        say!(
            "{:<width$}  {:>files_width$}  {:>bytes_width$}  {:<20}  packet_tree_sha256",
            "PACKET",
            "FILES",
            "BYTES",
            "CREATED (UTC)"
        );
        for (row, label) in packets.iter().zip(&labels) {
            let r = &row.record;
            say!(
                "{label:<width$}  {:>files_width$}  {:>bytes_width$}  {:<20}  {}",
                r.file_count,
                r.total_bytes,
                rfc3339_seconds(nanos_i64(r.created_unix_nanos) / 1_000_000_000),
                r.packet_tree_sha256
            );
        }
    }
    Ok(Outcome::Pass)
}

fn cmd_show(ctx: &Context, packet: &str) -> Result<Outcome> {
    let (store, catalog) = ctx.open_read()?;
    let row = ctx.resolve(&catalog, packet)?;
    let (_, files) = verified_files(&store, &row)?;
    if ctx.json {
        let mut value = packet_json(&row);
        value["entries"] = files
            .iter()
            .map(|f| {
                json!({
                    "path": f.rel_path,
                    "size": f.meta.size,
                    "executable": f.meta.executable,
                    "sha256": f.meta.sha256,
                    "blake3": f.meta.blake3,
                })
            })
            .collect();
        print_json(&value);
    } else {
        let r = &row.record;
        say!("packet              {}@{}", r.name, r.version);
        say!("packet_tree_sha256  {}", r.packet_tree_sha256);
        say!("tree                {}", r.tree);
        say!("record              {}", row.record_id);
        say!("files               {}", r.file_count);
        say!("bytes               {}", r.total_bytes);
        say!(
            "created             {}",
            rfc3339_nanos(nanos_i64(r.created_unix_nanos))
        );
        say!(
            "source_date_epoch   {} ({})",
            r.source_date_epoch,
            rfc3339_seconds(r.source_date_epoch)
        );
        say!("source_path         {}", r.source_path);
        say!("tool_version        {}", r.tool_version);
        if let Some(note) = &r.note {
            say!("note                {note}");
        }
        say!("");
        for f in &files {
            let mode = if f.meta.executable { "755" } else { "644" };
            say!(
                "{mode} {:>12}  {}  {}",
                f.meta.size,
                f.meta.sha256,
                f.rel_path
            );
        }
    }
    Ok(Outcome::Pass)
}

fn cmd_manifest(ctx: &Context, packet: &str) -> Result<Outcome> {
    let (store, catalog) = ctx.open_read()?;
    let row = ctx.resolve(&catalog, packet)?;
    let (record, files) = verified_files(&store, &row)?;
    let manifest = manifest_of(&files)?;
    if ctx.json {
        print_json(&json!({
            "packet": format!("{}@{}", record.name, record.version),
            "packet_tree_sha256": record.packet_tree_sha256,
            "manifest": manifest.text(),
        }));
    } else {
        let mut out = io::stdout().lock();
        out.write_all(manifest.text().as_bytes())
            .map_err(|e| Error::io("<stdout>", "cannot write", e))?;
    }
    Ok(Outcome::Pass)
}

fn cmd_cat(ctx: &Context, packet: &str, path: &str) -> Result<Outcome> {
    let (store, catalog) = ctx.open_read()?;
    let row = ctx.resolve(&catalog, packet)?;
    // Close the catalog (and release its lock) before reading objects: stdout may be a pipe
    // nobody reads, and an `immutable` reader's exclusive lock would hold every other evstore
    // command on this store meanwhile. Objects are immutable; the row is all that is needed.
    drop(catalog);
    let (record, files) = verified_files(&store, &row)?;
    let file = files.iter().find(|f| f.rel_path == path).ok_or_else(|| {
        Error::NotFound(format!(
            "{}@{} has no file {path:?}",
            record.name, record.version
        ))
    })?;
    if ctx.json {
        store.read_object(&file.meta.blake3, io::sink())?;
        print_json(&json!({
            "packet": format!("{}@{}", record.name, record.version),
            "path": file.rel_path,
            "size": file.meta.size,
            "executable": file.meta.executable,
            "sha256": file.meta.sha256,
            "blake3": file.meta.blake3,
            "verified": true,
        }));
    } else {
        let stdout = io::stdout();
        let mut out = io::BufWriter::new(stdout.lock());
        cat_file(&store, file, &mut out)?;
        out.flush()
            .map_err(|e| Error::io("<stdout>", "cannot write", e))?;
    }
    Ok(Outcome::Pass)
}

fn cmd_export(ctx: &Context, packet: &str, dest: &Path) -> Result<Outcome> {
    crate::store::check_local_path(dest, "export destination")?;
    let (store, catalog) = ctx.open_read()?;
    crate::store::refuse_inside_store(store.root(), dest, "export destination")?;
    let row = ctx.resolve(&catalog, packet)?;
    // As in `cat`: the catalog lock is not held while the files are written.
    drop(catalog);
    let report = export(&store, &row, dest, &ctx.progress)?;
    let label = format!("{}@{}", row.record.name, row.record.version);
    if ctx.json {
        print_json(&json!({
            "packet": label,
            "dest": dest.escaped().to_string(),
            "files": report.files,
            "bytes": report.bytes,
            "packet_tree_sha256": report.packet_tree_sha256,
        }));
    } else {
        say!(
            "exported {label} to {} ({}, {})",
            dest.escaped(),
            count(report.files, "file"),
            count(report.bytes, "byte")
        );
        say!(
            "packet_tree_sha256  {} (verified on disk)",
            report.packet_tree_sha256
        );
    }
    Ok(Outcome::Pass)
}

fn cmd_log(ctx: &Context) -> Result<Outcome> {
    let (_, catalog) = ctx.open_read()?;
    let events = catalog.events()?;
    if ctx.json {
        let list: Vec<Value> = events
            .iter()
            .map(|e| {
                let mut value = serde_json::to_value(e).unwrap_or(Value::Null);
                value["time"] = json!(rfc3339_nanos(e.time_unix_nanos));
                value
            })
            .collect();
        print_json(&json!({ "events": list }));
    } else {
        // The kind column is as wide as the longest kind (`kb-verify`), so subjects line up.
        let kind_width = events.iter().map(|e| e.kind.len()).max().unwrap_or(0);
        for e in &events {
            say!(
                "{:>5}  {}  {:<kind_width$}  {}  {}",
                e.seq,
                rfc3339_nanos(e.time_unix_nanos),
                e.kind,
                e.subject,
                e.detail
            );
        }
    }
    Ok(Outcome::Pass)
}

fn cmd_fsck(ctx: &Context) -> Result<Outcome> {
    let (store, catalog) = ctx.open_read()?;
    let report = fsck(&store, &catalog, &ctx.progress)?;
    let verdict = if report.problems.is_empty() {
        "PASS"
    } else {
        "FAIL"
    };
    if ctx.json {
        let mut value = serde_json::to_value(&report).unwrap_or(Value::Null);
        value["verdict"] = json!(verdict);
        print_json(&value);
    } else {
        for p in &report.problems {
            say!("problem: {}: {}", p.subject, p.reason);
        }
        for n in &report.notes {
            say!("note: {n}");
        }
        say!(
            "{verdict}: {}; checked {} ({}), {}, {}",
            count(report.problems.len() as u64, "problem"),
            count(report.objects_checked, "object"),
            count(report.bytes_checked, "byte"),
            count(report.packets_checked, "packet"),
            count(report.events_checked, "event")
        );
    }
    Ok(if report.problems.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail
    })
}

fn cmd_reindex(ctx: &Context, replace: bool) -> Result<Outcome> {
    let store = Store::open(&ctx.store_path)?;
    store.check_writable()?;
    let report = reindex(&store, replace)?;
    if ctx.json {
        print_json(&serde_json::to_value(&report).unwrap_or(Value::Null));
    } else {
        if let Some(previous) = &report.previous_catalog {
            say!("moved the previous catalog to {previous}");
        }
        match &report.log_not_carried {
            Some(why) if why.contains("commit markers") => {
                say!("warning: no event log carried over ({why}): a new log starts here")
            }
            Some(why) => say!(
                "warning: no event log carried over ({why}): a new log starts here, and every \
                 record object was indexed, since nothing says which ingests committed"
            ),
            None => say!("carried over {}", count(report.carried_events, "event")),
        }
        for skipped in &report.skipped_corrupt {
            say!("skipped: {skipped}");
        }
        for lost in &report.lost {
            say!(
                "LOST: {} {} ({} {}): committed, but it could not be rebuilt (why is listed \
                 above); restore what is missing and run `evstore reindex --replace` again, or \
                 acknowledge the loss with `evstore forget {} --reason TEXT`",
                lost.kind,
                lost.label,
                if lost.kind == "packet" {
                    "record"
                } else {
                    "id"
                },
                lost.id,
                lost.label_for_forget()
            );
        }
        for forgotten in &report.forgotten {
            say!("left out: {forgotten}");
        }
        for restored in &report.restored {
            say!("restored: {restored}");
        }
        for unknown in &report.unknown {
            say!("UNKNOWN: {unknown}");
        }
        for uncommitted in &report.uncommitted {
            say!("not revived: {uncommitted}");
        }
        for superseded in &report.superseded_records {
            say!("superseded record: {superseded}");
        }
        say!(
            "reindexed {} and {} from {}",
            count(report.packets, "packet"),
            count(report.runs, "rerun"),
            count(report.objects, "object")
        );
    }
    Ok(
        if report.skipped_corrupt.is_empty() && report.lost.is_empty() && report.unknown.is_empty()
        {
            Outcome::Pass
        } else {
            Outcome::Fail
        },
    )
}

fn cmd_forget(ctx: &Context, item: &str, reason: &str) -> Result<Outcome> {
    if reason.trim().is_empty() {
        return Err(Error::Usage(
            "--reason must say why the item is lost; it is recorded in the event log".into(),
        ));
    }
    let (store, mut catalog) = ctx.open()?;
    let refs = crate::store::refs::Refs::for_writer(&store)?;
    refs.ensure(&catalog)?;
    let markers = refs.read_all()?;
    let forgotten = catalog.forget(&markers, |lost| {
        let matches: Vec<&LostItem> = lost.iter().filter(|l| l.matches(item)).collect();
        let found = match matches.as_slice() {
            [one] => (*one).clone(),
            [] => {
                let known = if lost.is_empty() {
                    "nothing is lost: the catalog holds every committed packet and attestation"
                        .into()
                } else {
                    format!(
                        "lost now: {}",
                        lost.iter()
                            .map(|l| format!("{} {} ({})", l.kind, l.label, l.id))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                return Err(Error::Usage(format!(
                    "{item:?} names no lost packet or attestation ({known}); only a committed \
                     item the catalog no longer holds can be forgotten"
                )));
            }
            many => {
                return Err(Error::Usage(format!(
                    "{item:?} matches {} lost items ({}); give more of the id",
                    many.len(),
                    many.iter()
                        .map(|l| l.id.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        };
        // A lost packet takes its lost reruns with it: they cannot be indexed without it.
        let mut chosen = vec![found.clone()];
        if found.kind == "packet" {
            chosen.extend(
                lost.iter()
                    .filter(|l| l.kind == "attestation" && l.label == found.label)
                    .cloned(),
            );
        }
        Ok(chosen
            .into_iter()
            .map(|l| {
                let detail = json!({
                    "kind": l.kind,
                    "id": l.id,
                    "committed_by_event": l.committed_by_event,
                    "reason": reason,
                });
                (l, detail)
            })
            .collect())
    })?;
    for (lost, event) in &forgotten {
        if let Some(id) = crate::digest::Blake3Digest::parse_hex(&lost.id) {
            refs.mark_forgotten(&id, &event.detail)?;
        }
    }
    if ctx.json {
        let items: Vec<Value> = forgotten
            .iter()
            .map(|(lost, event)| json!({ "forgotten": lost, "event": event.seq }))
            .collect();
        print_json(&json!({
            "forgotten": forgotten.first().map(|(lost, _)| lost),
            "event": forgotten.first().map(|(_, event)| event.seq),
            "all": items,
        }));
    } else {
        for (lost, event) in &forgotten {
            say!(
                "forgot {} {} ({}): recorded as event {} with the reason given",
                lost.kind,
                lost.label,
                lost.id,
                event.seq
            );
        }
    }
    Ok(Outcome::Pass)
}

fn cmd_seal(ctx: &Context, dir: &Path, force: bool) -> Result<Outcome> {
    let report = gate::seal_folder(dir, force)?;
    if ctx.json {
        print_json(&serde_json::to_value(&report).unwrap_or(Value::Null));
    } else {
        let what = match report.action {
            SealAction::Written => "sealed",
            SealAction::Unchanged => "already sealed (same seal; nothing written)",
            SealAction::Replaced => "replaced the seal of",
        };
        say!("{what} {} ({})", dir.escaped(), count(report.files, "file"));
        say!("seal                {}", report.seal.escaped());
        say!("packet_tree_sha256  {}", report.packet_tree_sha256);
    }
    Ok(Outcome::Pass)
}

fn cmd_verify(
    ctx: &Context,
    dir: &Path,
    against: Option<String>,
    seal: Option<PathBuf>,
    original: Option<PathBuf>,
    kb: Option<PathBuf>,
    expect: &ExpectArgs,
) -> Result<Outcome> {
    let wanted = expect.parse()?;
    if let Some(packet) = against {
        let (store, catalog) = ctx.open_read()?;
        let row = ctx.resolve(&catalog, &packet)?;
        let expected = Side::packet(&store, &row)?;
        if is_kb_packet_folder_with_references(dir, &expected)? {
            let view = crate::ops::kb::StoreView {
                store: &store,
                catalog: &catalog,
            };
            let report = verify_kb_packet_folder(dir, kb.as_deref(), expected, Some(&view))?;
            return Ok(print_gate_report(ctx, &report));
        }
        let observed = Side::folder_against(dir, &expected, &ctx.progress)?;
        let mut report = gate::compare(Some(&store), &expected, &observed)?;
        let canonical = expected.manifest()?.text();
        if let Some(result) = gate::check_folder_seal(&observed, canonical.as_bytes())? {
            report = report.with_failures(vec![result]);
        }
        return Ok(print_gate_report(ctx, &report.with_expectations(&wanted)));
    }
    // The folder is opened once, as a real folder (a symlink is refused); its own seal and its
    // files are read through that handle. A seal file named with --seal is read as sha256sum -c
    // reads it; DIR's own seal strictly.
    let folder = std::sync::Arc::new(crate::scan::RootDir::open(dir)?);
    let (seal_path, mut expected) = match seal {
        Some(path) => {
            let side = Side::seal_file(&path)?;
            (path, side)
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
            (path, side)
        }
    };
    if let Some(original) = &original {
        expected = expected.with_original(original)?;
    }
    if is_kb_packet_folder_with_references(dir, &expected)? {
        let report = verify_kb_packet_folder(dir, kb.as_deref(), expected, None)?;
        return Ok(print_gate_report(ctx, &report));
    }
    let observed = Side::folder_in(folder, &ctx.progress)?;
    let mut report = gate::compare(None, &expected, &observed)?;
    let own_seal = observed
        .folder_seal()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()));
    let given = std::fs::canonicalize(&seal_path).unwrap_or(seal_path);
    if own_seal.is_some() && own_seal.as_ref() != Some(&given) {
        let canonical = expected.manifest()?.text();
        if let Some(result) = gate::check_folder_seal(&observed, canonical.as_bytes())? {
            report = report.with_failures(vec![result]);
        }
    }
    Ok(print_gate_report(ctx, &report.with_expectations(&wanted)))
}

/// True if `dir` is a KB packet folder whose files are partly referenced: it holds its own
/// well-formed `HASH_MANIFEST.txt` and a `KB_REFERENCES.txt` that `expected` does not list as a
/// packet file (that one is mirror metadata, written by `mirror --dedup reference`).
fn is_kb_packet_folder_with_references(dir: &Path, expected: &Side) -> Result<bool> {
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
fn verify_kb_packet_folder(
    dir: &Path,
    kb: Option<&Path>,
    expected: Side,
    view: Option<&crate::ops::kb::StoreView<'_>>,
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
enum Operand {
    Folder(PathBuf),
    Seal(PathBuf),
    Packet(String),
}

fn parse_operand(text: &str) -> Operand {
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

fn cmd_diff(ctx: &Context, a: &str, b: &str, original: Option<PathBuf>) -> Result<Outcome> {
    let (a, b) = (parse_operand(a), parse_operand(b));
    let needs_store = matches!(a, Operand::Packet(_)) || matches!(b, Operand::Packet(_));
    let opened = if needs_store {
        Some(ctx.open_read()?)
    } else {
        None
    };
    if let (Operand::Packet(x), Operand::Packet(y), Some((store, catalog))) = (&a, &b, &opened) {
        let row_a = ctx.resolve(catalog, x)?;
        let row_b = ctx.resolve(catalog, y)?;
        let report = gate::diff_packets(store, &row_a, &row_b)?;
        return Ok(print_gate_report(ctx, &report));
    }
    let load = |operand: &Operand| -> Result<Side> {
        match operand {
            Operand::Folder(path) => Side::folder(path, &ctx.progress),
            Operand::Seal(path) => Side::seal_file(path),
            Operand::Packet(reference) => match &opened {
                Some((store, catalog)) => Side::packet(store, &ctx.resolve(catalog, reference)?),
                None => Err(Error::Usage("a PACKET operand needs a store".into())),
            },
        }
    };
    let mut expected = load(&a)?;
    if let Some(original) = &original {
        expected = expected.with_original(original)?;
    }
    // A KB packet folder with references is compared as `verify` checks it: each referenced file
    // is read where KB_REFERENCES.txt says its bytes live in the KB that holds the folder.
    let mut outside_kb_note = None;
    if let Operand::Folder(path) = &b {
        if is_kb_packet_folder_with_references(path, &expected)? {
            let in_kb = std::fs::canonicalize(path)
                .ok()
                .and_then(|canonical| crate::ops::kb::find_kb_root(&canonical));
            if in_kb.is_some() {
                let view = opened
                    .as_ref()
                    .map(|(store, catalog)| crate::ops::kb::StoreView { store, catalog });
                let report = verify_kb_packet_folder(path, None, expected, view.as_ref())?;
                return Ok(print_gate_report(ctx, &report));
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
    let observed = match (&b, expected.kind) {
        (Operand::Folder(path), gate::SideKind::Packet) => {
            Side::folder_against(path, &expected, &ctx.progress)?
        }
        _ => load(&b)?,
    };
    let store = opened.as_ref().map(|(store, _)| store);
    let mut report = gate::compare(store, &expected, &observed)?;
    report.notes.extend(outside_kb_note);
    Ok(print_gate_report(ctx, &report))
}

fn print_gate_report(ctx: &Context, report: &GateReport) -> Outcome {
    if ctx.json {
        print_json(&serde_json::to_value(report).unwrap_or(Value::Null));
    } else {
        for file in report.files.iter().filter(|f| !f.is_ok()) {
            let classes: Vec<&str> = file.classes.iter().map(|c| c.name()).collect();
            say!("FAIL  {}  [{}]", file.path, classes.join(", "));
            if let Some(note) = &file.note {
                say!("      {note}");
            }
            if let Some(diff) = &file.first_difference {
                say!(
                    "      first difference at byte {}; from byte {}:",
                    diff.offset,
                    diff.excerpt_offset
                );
                say!("        expected \"{}\"", diff.expected_text);
                say!("        observed \"{}\"", diff.observed_text);
            }
        }
        for note in &report.notes {
            say!("note: {note}");
        }
        for check in &report.expectations {
            let verdict = if check.holds { "PASS" } else { "FAIL" };
            say!("{verdict}: {}", check.describe());
        }
        for (role, side) in [
            ("expected", &report.expected),
            ("observed", &report.observed),
        ] {
            say!(
                "{role}  {}  {} ({})",
                side_tree_hash(side),
                side.label,
                kind_name(side.kind)
            );
        }
        say!("{}", report.verdict_line());
    }
    match report.verdict {
        Verdict::Pass => Outcome::Pass,
        Verdict::Fail => Outcome::Fail,
    }
}

/// A side's packet_tree_sha256, or what is true instead for a folder that holds entries that are
/// not regular files: it has none, and what those entries are.
fn side_tree_hash(side: &gate::SideSummary) -> String {
    match side.packet_tree_sha256 {
        Some(sha) => sha.to_hex(),
        None => {
            let kinds: Vec<String> = side
                .not_regular
                .iter()
                .map(|(kind, n)| match *kind {
                    "file of unknown type" if *n != 1 => format!("{n} files of unknown type"),
                    kind => count(*n, kind),
                })
                .collect();
            format!(
                "no packet_tree_sha256 (holds {}, which a packet cannot hold)",
                kinds.join(", ")
            )
        }
    }
}

fn kind_name(kind: gate::SideKind) -> &'static str {
    match kind {
        gate::SideKind::Folder => "folder",
        gate::SideKind::Seal => "seal",
        gate::SideKind::Packet => "packet",
    }
}

fn cmd_mirror(
    ctx: &Context,
    packet: &str,
    kb_dir: &Path,
    as_path: Option<String>,
    dedup: DedupArg,
) -> Result<Outcome> {
    let (store, mut catalog) = ctx.open()?;
    let row = ctx.resolve(&catalog, packet)?;
    let config = crate::ops::mirror::MirrorConfig {
        rel_path: as_path,
        dedup: match dedup {
            DedupArg::Copy => crate::ops::mirror::Dedup::Copy,
            DedupArg::Reference => crate::ops::mirror::Dedup::Reference,
            DedupArg::Hardlink => crate::ops::mirror::Dedup::Hardlink,
        },
        progress: ctx.progress.clone(),
    };
    let report = crate::ops::mirror::mirror(&store, &mut catalog, &row, kb_dir, &config)?;
    if ctx.json {
        print_json(&serde_json::to_value(&report).unwrap_or(Value::Null));
    } else {
        let dest = report.kb.join(&report.rel_path);
        match report.action {
            crate::ops::mirror::MirrorAction::Published => say!(
                "mirrored {} to {} ({} listed: {} copied, {} hard-linked, {} referenced)",
                report.packet,
                dest.escaped(),
                count(report.files_listed, "file"),
                report.files_copied,
                report.files_hardlinked,
                report.files_referenced
            ),
            crate::ops::mirror::MirrorAction::Unchanged => say!(
                "{} is already mirrored at {} (verified; nothing written)",
                report.packet,
                dest.escaped()
            ),
        }
        for file in &report.deduplicated {
            say!("  {} {} -> {}", file.stored_as, file.path, file.kb_path);
        }
        say!("packet_tree_sha256  {}", report.packet_tree_sha256);
    }
    Ok(Outcome::Pass)
}

fn cmd_kb_verify(
    ctx: &Context,
    kb_dir: &Path,
    no_store: bool,
    store_given: bool,
) -> Result<Outcome> {
    // A store is used when one was named, or when the default one exists.
    let opened = if no_store || (!store_given && !ctx.store_path.exists()) {
        None
    } else {
        Some(ctx.open_read()?)
    };
    let view = opened
        .as_ref()
        .map(|(store, catalog)| crate::ops::kb::StoreView { store, catalog });
    let report = crate::ops::kb::verify_kb(kb_dir, view.as_ref())?;
    let verdict = match report.verdict {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
    };
    // The event is a record of the check, not part of it: a store this user cannot write (or
    // one on a full file system) is still verified, and the verdict stands without the event.
    if let Some((_, mut catalog)) = opened {
        let logged = match catalog.access().clone() {
            CatalogAccess::ReadWrite => catalog
                .log_event(&NewEvent {
                    kind: "kb-verify".into(),
                    subject: report.kb.display().to_string(),
                    detail: json!({
                        "verdict": verdict,
                        "packets_checked": report.packets_checked,
                        "packets_failed": report.packets_failed,
                        "failed": report.packets.iter().filter(|p| p.verdict == Verdict::Fail)
                            .map(|p| p.folder.clone()).collect::<Vec<_>>(),
                    }),
                })
                .map(|_| ())
                .map_err(|err| err.to_string()),
            CatalogAccess::ReadOnly(reason) | CatalogAccess::Immutable(reason) => Err(format!(
                "the catalog {} was opened read-only ({reason})",
                catalog.path().escaped()
            )),
        };
        if let Err(reason) = logged {
            eprintln!("evstore: note: the kb-verify event was not logged: {reason}");
        }
    }
    if ctx.json {
        print_json(&serde_json::to_value(&report).unwrap_or(Value::Null));
    } else {
        for packet in &report.packets {
            let label = packet.packet.as_deref().unwrap_or("unknown packet");
            // KB_DIR itself may be the packet folder.
            let folder = if packet.folder.is_empty() {
                "."
            } else {
                packet.folder.as_str()
            };
            // A path inside the packet folder, as the reader finds it from KB_DIR.
            let inside = |path: &str| {
                if packet.folder.is_empty() {
                    path.to_string()
                } else {
                    format!("{}/{path}", packet.folder)
                }
            };
            match packet.verdict {
                Verdict::Pass => say!(
                    "PASS  {folder}  ({label}{})",
                    if packet.references > 0 {
                        format!(", {} referenced", packet.references)
                    } else {
                        String::new()
                    }
                ),
                Verdict::Fail => {
                    // Never an empty list: a FAIL names the classes of its failing files and
                    // every other reason.
                    let mut why: Vec<&str> = packet.classes.iter().map(|c| c.name()).collect();
                    why.extend(packet.reasons.iter().map(String::as_str));
                    if why.is_empty() {
                        why.push("failed");
                    }
                    say!("FAIL  {folder}  ({label}) [{}]", why.join(", "));
                    for problem in &packet.problems {
                        say!("      {problem}");
                    }
                    if let Some(gate) = &packet.report {
                        for file in gate.files.iter().filter(|f| !f.is_ok()) {
                            let classes: Vec<&str> =
                                file.classes.iter().map(|c| c.name()).collect();
                            say!("      {}  [{}]", inside(&file.path), classes.join(", "));
                        }
                    }
                }
            }
            for reference in &packet.referenced {
                say!(
                    "      {} is not in the folder: referenced, its bytes were read at {}",
                    inside(&reference.path),
                    reference.kb_path
                );
            }
        }
        for note in &report.notes {
            say!("note: {note}");
        }
        say!(
            "{verdict}: {} of {} failed in {}",
            report.packets_failed,
            count(report.packets.len() as u64, "packet folder"),
            report.kb.escaped()
        );
    }
    Ok(match report.verdict {
        Verdict::Pass => Outcome::Pass,
        Verdict::Fail => Outcome::Fail,
    })
}

struct RerunArgs {
    packet: Option<String>,
    expect: Option<String>,
    runs: u32,
    timeout: Option<u64>,
    keep: Option<PathBuf>,
    ingest: bool,
    cwd: Option<PathBuf>,
    keep_env: bool,
    source_date_epoch: Option<i64>,
    command: Vec<std::ffi::OsString>,
}

fn cmd_rerun(ctx: &Context, args: RerunArgs, store_given: bool) -> Result<Outcome> {
    use crate::ops::rerun::{attest, rerun, RerunConfig};
    // Checks that can refuse, before anything is opened, run or created.
    if args.timeout == Some(0) {
        return Err(Error::Usage(
            "--timeout 0 would kill the generator before it starts; give at least 1 second, or \
             leave --timeout out for no limit"
                .into(),
        ));
    }
    if let Some(keep) = &args.keep {
        crate::store::check_local_path(keep, "--keep folder")?;
        crate::store::refuse_inside_store(&ctx.store_path, keep, "--keep folder")?;
    }
    // Whether a default store exists that this user cannot write (said after the report).
    let mut default_store_read_only = false;
    let opened = if args.packet.is_some() || args.ingest || store_given {
        Some(ctx.open()?)
    } else if ctx.store_path.exists() {
        // `--expect` needs no store; the default store (not named by --store or
        // $EVSTORE_STORE) is used only if this user can write it.
        let store = Store::open(&ctx.store_path)?;
        match store.check_writable() {
            Ok(()) => {
                let catalog = Catalog::open_existing(&store.catalog_path())?;
                Some((store, catalog))
            }
            // `check_writable`'s only refusal: the store is read-only for this user.
            Err(Error::Usage(_)) => {
                default_store_read_only = true;
                None
            }
            Err(other) => return Err(other),
        }
    } else {
        None
    };
    let (row, expected, source_date_epoch) = match (&args.packet, &args.expect) {
        (Some(packet), _) => {
            let (_, catalog) = opened
                .as_ref()
                .ok_or_else(|| Error::Usage("a PACKET needs a store".into()))?;
            let row = ctx.resolve(catalog, packet)?;
            let sha = row.record.packet_tree_sha256;
            let epoch = row.record.source_date_epoch;
            (Some(row), sha, Some(epoch))
        }
        (None, Some(hex)) => {
            let sha = crate::digest::Sha256Digest::parse_hex(hex).ok_or_else(|| {
                Error::Usage(format!("--expect {hex:?} is not 64 lowercase hex digits"))
            })?;
            let epoch = match args.source_date_epoch {
                Some(epoch) => Some(epoch),
                None => match std::env::var("SOURCE_DATE_EPOCH") {
                    Ok(text) => Some(text.trim().parse::<i64>().map_err(|_| {
                        Error::Usage(format!("$SOURCE_DATE_EPOCH {text:?} is not an integer"))
                    })?),
                    Err(_) => None,
                },
            };
            let row = match &opened {
                Some((_, catalog)) => catalog.packets_with_sha256(&sha)?.into_iter().next(),
                None => None,
            };
            (row, sha, epoch)
        }
        (None, None) => return Err(Error::Usage("give a PACKET or --expect SHA256".into())),
    };
    let store = opened.as_ref().map(|(store, _)| store);
    let expected_side = match (store, &row) {
        (Some(store), Some(row)) => Some(Side::packet(store, row)?),
        _ => None,
    };
    let config = RerunConfig {
        expected,
        packet: if args.packet.is_some() {
            row.clone()
        } else {
            None
        },
        source_date_epoch,
        command: args.command,
        runs: args.runs,
        timeout: args.timeout.map(std::time::Duration::from_secs),
        keep: args.keep,
        cwd: args.cwd.unwrap_or_else(|| PathBuf::from(".")),
        keep_env: args.keep_env,
    };
    let (report, folders) = rerun(store, expected_side.as_ref(), &config)?;
    let mut ingested = None;
    let mut attestation = None;
    let mut ingest_error = None;
    let mut _ingested_note = None;
    if let Some((store, mut catalog)) = opened {
        if args.ingest {
            let first = &report.runs[0];
            if let (Some(_), Some(output)) = (first.observed_sha256, folders.output(1)) {
                let name = match &config.packet {
                    Some(row) => format!("{}.rerun", row.record.name),
                    None => format!("rerun-{}", &expected.to_hex()[..12]),
                };
                // Archive what was hashed: the output folder through the handle it was hashed
                // through, never whatever its path names now.
                let archived = crate::ops::ingest::ingest_dir(
                    &store,
                    &mut catalog,
                    output,
                    &IngestConfig {
                        name,
                        note: Some(format!("output of a rerun expecting {expected}")),
                        source_date_epoch,
                        progress: ctx.progress.clone(),
                    },
                )
                .and_then(IngestOutcome::archived);
                match archived {
                    Ok(archived) => {
                        let r = &archived.packet.record;
                        let label = format!("{}@{}", r.name, r.version);
                        // Committed: said if a signal stops the attestation after it.
                        _ingested_note = Some(crate::interrupt::on_interrupt(
                            crate::interrupt::Cleanup::Note(format!(
                                "the first run's output was archived as {label} before the signal"
                            )),
                        ));
                        ingested = Some(label);
                    }
                    // Interrupted: stop, record nothing.
                    Err(err @ Error::Interrupted { .. }) => return Err(err),
                    // The run happened: attest it first, then report the failed ingest.
                    Err(err) => ingest_error = Some(err),
                }
            }
        }
        let packet_id = config.packet.as_ref().map(|p| p.id);
        attestation = Some(attest(
            &store,
            &mut catalog,
            &report,
            packet_id,
            ingested.as_deref(),
        )?);
    }
    if let Some(err) = ingest_error {
        return Err(err);
    }
    if default_store_read_only {
        eprintln!(
            "evstore: note: the attestation was not recorded because the default store {} is \
             read-only for this user; name a store you can write with --store to record it",
            ctx.store_path.escaped()
        );
    }
    if ctx.json {
        let mut value = serde_json::to_value(&report).unwrap_or(Value::Null);
        value["attestation"] = json!(attestation);
        value["ingested"] = json!(ingested);
        print_json(&value);
    } else {
        for run in &report.runs {
            let status = match (run.exit_code, run.signal) {
                (Some(code), _) => format!("exit {code}"),
                (None, Some(signal)) => format!("signal {signal}"),
                _ => "no status".into(),
            };
            let hash = run
                .observed_sha256
                .map_or_else(|| "no tree".to_string(), |s| s.to_hex());
            say!(
                "run {}: {status} in {:.2} s, {}, packet_tree_sha256 {hash}",
                run.run,
                run.duration_ms as f64 / 1000.0,
                count(run.files, "file")
            );
            if run.failure.is_some() && !run.output_tail.is_empty() {
                for line in run
                    .output_tail
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                {
                    say!("      | {line}");
                }
            }
        }
        if let Some(diff) = &report.diff {
            for file in diff.files.iter().filter(|f| !f.is_ok()) {
                let classes: Vec<&str> = file.classes.iter().map(|c| c.name()).collect();
                say!("FAIL  {}  [{}]", file.path, classes.join(", "));
                if let Some(d) = &file.first_difference {
                    say!("      first difference at byte {}", d.offset);
                    say!("        expected \"{}\"", d.expected_text);
                    say!("        observed \"{}\"", d.observed_text);
                }
            }
            say!("{}", diff.verdict_line());
        }
        for reason in &report.reasons {
            say!("reason: {reason}");
        }
        if let Some(kept) = &report.kept {
            say!("kept the first run's output in {}", kept.escaped());
        }
        if let Some(label) = &ingested {
            say!("archived the first run's output as {label}");
        }
        if let Some(id) = &attestation {
            say!("attestation {id}");
        }
        say!("expected  {}", report.expected_sha256);
        match report.verdict {
            Verdict::Pass => say!("PASS (PACKET_TREE MATCH) {}", report.expected_sha256),
            Verdict::Fail => {
                let mismatch = report.runs.iter().any(|r| {
                    r.observed_sha256
                        .is_some_and(|s| s != report.expected_sha256)
                });
                if mismatch {
                    say!("FAIL (PACKET_TREE MISMATCH)");
                } else {
                    say!(
                        "FAIL ({})",
                        report.reasons.first().map_or("no tree", |r| r.as_str())
                    );
                }
            }
        }
    }
    Ok(match report.verdict {
        Verdict::Pass => Outcome::Pass,
        Verdict::Fail => Outcome::Fail,
    })
}

fn cmd_runs(ctx: &Context, packet: Option<&str>) -> Result<Outcome> {
    let (_, catalog) = ctx.open_read()?;
    let resolved = match packet {
        Some(packet) => Some(ctx.resolve(&catalog, packet)?),
        None => None,
    };
    let packet_id = resolved.as_ref().map(|row| row.id);
    let packet_label = resolved
        .as_ref()
        .map(|row| format!("{}@{}", row.record.name, row.record.version));
    let runs = catalog.runs(packet_id)?;
    if ctx.json {
        let list: Vec<Value> = runs
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "verdict": r.verdict,
                    "expected_sha256": r.expected_sha256,
                    "attestation": r.attestation,
                    "time_unix_nanos": r.time_unix_nanos,
                    "time": rfc3339_nanos(r.time_unix_nanos),
                    "summary": serde_json::from_str::<Value>(&r.summary).unwrap_or(Value::Null),
                })
            })
            .collect();
        print_json(&json!({ "packet": packet_label, "runs": list }));
    } else if runs.is_empty() {
        say!("no reruns recorded yet; run one with `evstore rerun PACKET -- CMD`");
    } else {
        for r in &runs {
            let summary: Value = serde_json::from_str(&r.summary).unwrap_or(Value::Null);
            say!(
                "{:>4}  {}  {}  {}  attestation {}  {}",
                r.id,
                rfc3339_nanos(r.time_unix_nanos),
                r.verdict,
                summary["packet"].as_str().unwrap_or(&r.expected_sha256),
                r.attestation,
                summary["command"]
            );
        }
    }
    Ok(Outcome::Pass)
}

fn cmd_kb_gc_staging(ctx: &Context, kb_dir: &Path) -> Result<Outcome> {
    let report = crate::ops::kb::gc_staging(kb_dir)?;
    if ctx.json {
        print_json(&serde_json::to_value(&report).unwrap_or(Value::Null));
    } else {
        for name in &report.left_alone {
            say!("left alone (not a mirror's staging folder): {name}");
        }
        say!(
            "removed {} from {}",
            count(report.removed.len() as u64, "staging folder"),
            report.staging.escaped()
        );
    }
    Ok(Outcome::Pass)
}

fn cmd_gc_temp(ctx: &Context) -> Result<Outcome> {
    let store = Store::open(&ctx.store_path)?;
    store.check_writable()?;
    let report = store.gc_temp()?;
    if ctx.json {
        print_json(&serde_json::to_value(report).unwrap_or(Value::Null));
    } else {
        say!(
            "removed {}, {}, from {}",
            count(report.removed, "temp file"),
            count(report.bytes, "byte"),
            store.tmp_path().escaped()
        );
    }
    Ok(Outcome::Pass)
}

/// A stored `u64` time in nanoseconds as the `i64` the time formatting takes (every time evstore
/// writes fits; a larger one is shown as the largest).
fn nanos_i64(nanos: u64) -> i64 {
    i64::try_from(nanos).unwrap_or(i64::MAX)
}
