//! Dispatch: parse the command line, open what a command needs, call its `ops` function, render
//! the report, and turn the result into an exit code. Also the terminal's progress bar and the
//! notice sink (library notices go to stderr as `evstore: TEXT`).
//!
//! **Architecture Invariant:** every `cmd_*` is glue: arguments in, one `ops` call, one render;
//! a decision a library caller would also need belongs in `ops`. Exit codes are picked only
//! here: `0` pass, `1` a verification failed, `2` usage or operational error, `128 + N` stopped
//! by signal N.

use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};

use super::args::{
    AttestationCommand, Cli, Command, DedupArg, ExpectArgs, KbCommand, KeyCommand, LogCommand,
    ProofCommand,
};
use super::render;
use super::Outcome;
use crate::catalog::{Catalog, PacketRow};
use crate::error::{Error, ErrorClass, Result};
use crate::gate::{self, Verdict};
use crate::ops;
use crate::packet_ref::parse_packet_ref;
use crate::progress::{Progress, ProgressSink};
use crate::store::Store;
use crate::text::EscapePath;

/// Parse the command line, run the command, print, and return the exit code.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    // Notices of library code (a lock wait, a cleanup) go to stderr.
    crate::notice::set_sink(Box::new(|text| eprintln!("evstore: {text}")));
    let json = cli.json;
    // Commands that write handle SIGINT, SIGTERM and SIGHUP: they stop, remove what they created
    // and exit with 128 + the signal number (see `interrupt`). The others keep the default action.
    let nothing_recorded = match &cli.command {
        Command::Ingest { .. } | Command::Mirror { .. } => Some("nothing was recorded"),
        Command::Rerun { .. } => Some("no attestation was recorded"),
        Command::Export { .. } | Command::Seal { .. } => None,
        _ => {
            let result = dispatch(cli).map_err(ops::setup::explain_a_damaged_cache);
            return exit_for(json, result);
        }
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
    let result = dispatch(cli).map_err(ops::setup::explain_a_damaged_cache);
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
        render::print_error_json("operational", &message);
    }
    eprintln!("evstore: {message}");
    ExitCode::from(u8::try_from(128 + signal).unwrap_or(2))
}

/// The exit code (and error message) for a command's result.
fn exit_for(json: bool, result: Result<Outcome>) -> ExitCode {
    match result {
        Ok(Outcome::Pass) => ExitCode::from(0),
        Ok(Outcome::Fail) => ExitCode::from(1),
        Ok(Outcome::CompletedThenFailed) => ExitCode::from(2),
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
                render::print_error_json(class, &err.to_string());
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
    render::print_error_json("operational", message.trim_end());
    let _ = err.print();
    ExitCode::from(2)
}

/// What every command gets: where the store is, the output form, and the progress bar.
struct Context {
    store_path: PathBuf,
    /// True if `--store` or `$EVSTORE_STORE` named the store.
    store_named: bool,
    json: bool,
    progress: Progress,
    /// Set by [`Context::open`] when the store keeps signed checkpoints.
    checkpoint_signer: std::cell::RefCell<Option<ops::checkpoints::CheckpointSigner>>,
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
    /// What every command gets from the command line: the store (`--store` or
    /// `$EVSTORE_STORE`, else `.evstore`), the output form, and the progress bar.
    fn for_command_line(cli: &Cli) -> Context {
        Context {
            store_named: cli.store.is_some(),
            store_path: cli
                .store
                .clone()
                .unwrap_or_else(|| PathBuf::from(".evstore")),
            json: cli.json,
            progress: TerminalProgress::for_stderr(cli.no_progress),
            checkpoint_signer: std::cell::RefCell::new(None),
        }
    }

    /// Open the store for a command that writes to it: refused up front if this user cannot.
    fn open(&self) -> Result<(Store, Catalog)> {
        ops::setup::open_for_writing(&self.store_path)
    }

    /// Before a command that appends to the store's log: if the store keeps signed
    /// checkpoints, find this machine's signer key now, so a machine without it is refused
    /// before anything is written. A store that does not open is left to the command to report.
    fn find_checkpoint_signer(&self) -> Result<()> {
        let Ok(store) = Store::open(&self.store_path) else {
            return Ok(());
        };
        *self.checkpoint_signer.borrow_mut() = ops::checkpoints::signer_for_writer(&store)?;
        Ok(())
    }

    /// After a command that appends to the log: if the store keeps checkpoints, sign
    /// and keep the checkpoint of its log now (whatever the command's outcome: a failed
    /// verification may have logged an event too). A command that succeeded but whose
    /// checkpoint could not be kept fails (exit 2), saying what was recorded.
    fn keep_checkpoint_after(&self, result: Result<Outcome>) -> Result<Outcome> {
        let Some(signer) = self.checkpoint_signer.borrow_mut().take() else {
            return result;
        };
        let kept = ops::setup::open_for_reading(&self.store_path)
            .and_then(|(store, catalog)| ops::checkpoints::keep(&store, &catalog, &signer));
        match kept {
            Ok(Some(kept)) => {
                crate::notice::notice(&format!(
                    "kept the signed checkpoint of the log at {} events: {}",
                    kept.tree_size, kept.key
                ));
                result
            }
            Ok(None) => result,
            Err(err) if matches!(result, Ok(Outcome::Pass)) => {
                // The report is printed already (one JSON document with --json): the failure
                // goes to stderr only.
                eprintln!(
                    "evstore: error: the command completed, but the signed checkpoint of the log \
                     after it could not be kept: {err}; the next writing command (or `evstore \
                     log keep-checkpoints`) keeps one of the log then"
                );
                Ok(Outcome::CompletedThenFailed)
            }
            Err(err) => {
                crate::notice::notice(&format!(
                    "the signed checkpoint of the log after this command could not be kept: {err}"
                ));
                result
            }
        }
    }

    /// Open the store for a command that only reads it.
    fn open_read(&self) -> Result<(Store, Catalog)> {
        ops::setup::open_for_reading(&self.store_path)
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

/// The outcome of a report's verdict.
fn outcome(verdict: Verdict) -> Outcome {
    match verdict {
        Verdict::Pass => Outcome::Pass,
        Verdict::Fail => Outcome::Fail,
    }
}

/// Run the parsed command, then keep a signed checkpoint if it wrote to a store that keeps
/// them.
fn dispatch(cli: Cli) -> Result<Outcome> {
    let ctx = Context::for_command_line(&cli);
    if appends_to_the_log(&cli.command) {
        ctx.find_checkpoint_signer()?;
    }
    let result = dispatch_command(&ctx, cli.command);
    ctx.keep_checkpoint_after(result)
}

/// True for the commands that append events to the store's log (after which a store that
/// keeps checkpoints keeps one). `log keep-checkpoints` keeps its own.
fn appends_to_the_log(command: &Command) -> bool {
    matches!(
        command,
        Command::Ingest { .. }
            | Command::Mirror { .. }
            | Command::Rerun { .. }
            | Command::Forget { .. }
            | Command::Reindex { .. }
            | Command::Kb {
                command: KbCommand::Verify {
                    no_store: false,
                    ..
                },
            }
    )
}

/// Run the parsed command: each arm hands its arguments to its `cmd_*`.
fn dispatch_command(ctx: &Context, command: Command) -> Result<Outcome> {
    match command {
        Command::Init => cmd_init(ctx),
        Command::Ingest {
            dir,
            name,
            note,
            source_date_epoch,
        } => cmd_ingest(ctx, &dir, name, note, source_date_epoch),
        Command::Hash { dir, expect, quiet } => cmd_hash(ctx, &dir, &expect, quiet),
        Command::Ls => cmd_ls(ctx),
        Command::Show { packet } => cmd_show(ctx, &packet),
        Command::Manifest { packet } => cmd_manifest(ctx, &packet),
        Command::Cat { packet, path } => cmd_cat(ctx, &packet, &path),
        Command::Export { packet, dest } => cmd_export(ctx, &packet, &dest),
        Command::Log {
            command: None,
            verify_from: None,
            ..
        } => cmd_log(ctx),
        Command::Log {
            command: None,
            verify_from: Some(checkpoint),
            key,
        } => cmd_log_verify_from(ctx, &checkpoint, key.as_deref()),
        Command::Log {
            command: Some(_),
            verify_from: Some(_),
            ..
        } => Err(Error::Usage(
            "--verify-from is an option of `evstore log` itself, not of its subcommands".into(),
        )),
        Command::Log {
            command: Some(command),
            ..
        } => cmd_log_merkle(ctx, command),
        Command::Fsck => cmd_fsck(ctx),
        Command::Reindex { replace } => cmd_reindex(ctx, replace),
        Command::Forget { item, reason } => cmd_forget(ctx, &item, &reason),
        Command::Seal { dir, force, sign } => cmd_seal(ctx, &dir, force, sign.as_deref()),
        Command::Verify {
            dir,
            against,
            seal,
            original,
            kb,
            signed_by,
            expect,
        } => {
            let mut config = verify_config(ctx, seal, original, kb, &expect)?;
            // Read (and refuse if malformed) before any folder is hashed.
            config.signed_by = signed_by
                .as_deref()
                .map(gate::signature::AllowedSigners::read)
                .transpose()?;
            cmd_verify(ctx, &dir, against.as_deref(), &config)
        }
        Command::Diff { a, b, original } => cmd_diff(ctx, &a, &b, original),
        Command::Mirror {
            packet,
            kb_dir,
            as_path,
            dedup,
        } => cmd_mirror(ctx, &packet, &kb_dir, as_path, dedup),
        Command::Kb { command } => cmd_kb(ctx, command),
        Command::Proof { command } => cmd_proof(ctx, command),
        Command::Prove { packet, path, sign } => cmd_prove(ctx, &packet, &path, sign.as_deref()),
        Command::Key {
            command: KeyCommand::Generate { name, out },
        } => cmd_key_generate(ctx, &name, &out),
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
            sign,
            command,
        } => cmd_rerun(
            ctx,
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
                sign,
                command,
            },
        ),
        Command::Runs {
            packet, show: None, ..
        } => cmd_runs(ctx, packet.as_deref()),
        Command::Runs {
            show: Some(run),
            export,
            sign,
            ..
        } => cmd_runs_show(ctx, &run, export.as_deref(), sign.as_deref()),
        Command::Attestation {
            command: AttestationCommand::Verify { file, key, packet },
        } => cmd_attestation_verify(ctx, &file, &key, packet.as_deref()),
        Command::GcTemp => cmd_gc_temp(ctx),
    }
}

/// `verify`'s options as the library takes them.
fn verify_config(
    ctx: &Context,
    seal: Option<PathBuf>,
    original: Option<PathBuf>,
    kb: Option<PathBuf>,
    expect: &ExpectArgs,
) -> Result<ops::verify::VerifyConfig> {
    Ok(ops::verify::VerifyConfig {
        seal,
        original,
        kb,
        expectations: expect.parse()?,
        signed_by: None,
        progress: ctx.progress.clone(),
    })
}

/// Run a `kb` subcommand.
fn cmd_log_verify_from(ctx: &Context, checkpoint: &Path, key: Option<&str>) -> Result<Outcome> {
    let (store, catalog) = ctx.open_read()?;
    let report = ops::checkpoints::verify_from(&store, &catalog, checkpoint, key)?;
    render::log_verify_from(ctx.json, &report)?;
    Ok(if report.passed() {
        Outcome::Pass
    } else {
        Outcome::Fail
    })
}

fn cmd_log_merkle(ctx: &Context, command: LogCommand) -> Result<Outcome> {
    if let LogCommand::KeepCheckpoints { key } = &command {
        let (store, catalog) = ctx.open()?;
        let configured = ops::checkpoints::configure(&store, &catalog, key)?;
        render::keep_checkpoints(ctx.json, &configured)?;
        return Ok(Outcome::Pass);
    }
    let (store, catalog) = ctx.open_read()?;
    match command {
        LogCommand::KeepCheckpoints { .. } => {}
        LogCommand::Checkpoint { sign: None } => {
            let checkpoint = ops::transparency::checkpoint(&catalog)?;
            render::log_checkpoint(ctx.json, &checkpoint, None)?;
        }
        LogCommand::Checkpoint {
            sign: Some(keyfile),
        } => {
            let (checkpoint, note) =
                ops::checkpoints::sign_verified_checkpoint(&store, &catalog, &keyfile)?;
            render::log_checkpoint(ctx.json, &checkpoint, Some(&note))?;
        }
        LogCommand::ProveInclusion { event } => {
            let proof = ops::transparency::prove_inclusion(&catalog, &event)?;
            render::log_proof(ctx.json, &proof, &proof.proof)?;
        }
        LogCommand::ProveConsistency { old_size, new_size } => {
            let proof = ops::transparency::prove_consistency(&catalog, old_size, new_size)?;
            render::log_proof(ctx.json, &proof, &proof.proof)?;
        }
    }
    Ok(Outcome::Pass)
}

/// A required flag of `proof check-*` (clap requires each unless `--json-proof` is given).
fn given<T>(flag: &str, value: Option<T>) -> Result<T> {
    value.ok_or_else(|| Error::Usage(format!("{flag} is required without --json-proof")))
}

fn cmd_key_generate(ctx: &Context, name: &str, out: &Path) -> Result<Outcome> {
    let verifier = ops::transparency::generate_key(name, out)?;
    render::key_generated(ctx.json, name, out, &verifier);
    Ok(Outcome::Pass)
}

fn cmd_proof(ctx: &Context, command: ProofCommand) -> Result<Outcome> {
    use crate::format::merkle;
    let (check, held) = match command {
        ProofCommand::CheckFile { proof, file, key } => {
            return cmd_proof_check_file(ctx, &proof, file.as_deref(), key.as_deref());
        }
        ProofCommand::CheckCheckpoint { checkpoint, key } => (
            "checkpoint",
            ops::transparency::check_signed_checkpoint(&checkpoint, &key)?,
        ),
        ProofCommand::CheckInclusion {
            json_proof: Some(file),
            ..
        } => {
            let read: ops::transparency::InclusionProof =
                ops::transparency::read_proof_json(&file)?;
            return cmd_proof(
                ctx,
                ProofCommand::CheckInclusion {
                    leaf_hash: Some(read.leaf_hash),
                    index: Some(read.leaf_index),
                    size: Some(read.tree_size),
                    root: Some(read.root),
                    proof: read.proof.join(","),
                    json_proof: None,
                },
            );
        }
        ProofCommand::CheckConsistency {
            json_proof: Some(file),
            ..
        } => {
            let read: ops::transparency::ConsistencyProof =
                ops::transparency::read_proof_json(&file)?;
            return cmd_proof(
                ctx,
                ProofCommand::CheckConsistency {
                    old_size: Some(read.old_size),
                    old_root: Some(read.old_root),
                    size: Some(read.tree_size),
                    root: Some(read.root),
                    proof: read.proof.join(","),
                    json_proof: None,
                },
            );
        }
        ProofCommand::CheckInclusion {
            leaf_hash,
            index,
            size,
            root,
            proof,
            json_proof: None,
        } => {
            let leaf = parse_hash("--leaf-hash", &given("--leaf-hash", leaf_hash)?)?;
            let root = parse_hash("--root", &given("--root", root)?)?;
            let (index, size) = (given("--index", index)?, given("--size", size)?);
            let proof = parse_proof(&proof)?;
            (
                "inclusion",
                merkle::check_inclusion(&leaf, index, size, &proof, &root)
                    .map_err(|f| f.to_string())
                    .map(|()| {
                        format!(
                            "leaf {} is entry {index} of the log of size {size} with root {}",
                            hex::encode(leaf),
                            hex::encode(root)
                        )
                    }),
            )
        }
        ProofCommand::CheckConsistency {
            old_size,
            old_root,
            size,
            root,
            proof,
            json_proof: None,
        } => {
            let old_root = parse_hash("--old-root", &given("--old-root", old_root)?)?;
            let root = parse_hash("--root", &given("--root", root)?)?;
            let (old_size, size) = (given("--old-size", old_size)?, given("--size", size)?);
            let proof = parse_proof(&proof)?;
            (
                "consistency",
                merkle::check_consistency(old_size, size, &old_root, &root, &proof)
                    .map_err(|f| f.to_string())
                    .map(|()| {
                        format!(
                            "the log of size {size} with root {} only appended to the log of size \
                         {old_size} with root {}",
                            hex::encode(root),
                            hex::encode(old_root)
                        )
                    }),
            )
        }
    };
    render::proof_check(ctx.json, check, &held);
    Ok(if held.is_ok() {
        Outcome::Pass
    } else {
        Outcome::Fail
    })
}

/// A hash argument: exactly 64 lowercase hex digits.
fn parse_hash(flag: &str, text: &str) -> Result<crate::format::merkle::Hash> {
    let ok = text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let mut hash = [0u8; 32];
    if !ok || hex::decode_to_slice(text, &mut hash).is_err() {
        return Err(Error::Usage(format!(
            "{flag}: {text:?} is not a SHA-256 hash (64 lowercase hex digits)"
        )));
    }
    Ok(hash)
}

/// A `--proof` argument: hashes separated by commas, or nothing.
fn parse_proof(text: &str) -> Result<Vec<crate::format::merkle::Hash>> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .enumerate()
        .map(|(i, part)| parse_hash(&format!("--proof (hash {})", i + 1), part))
        .collect()
}

// File proofs (FORMAT.md §7h; `ops::file_proof`).

/// `prove PACKET PATH [--sign KEYFILE]`: the proof's JSON on stdout, whatever `--json` says.
fn cmd_prove(ctx: &Context, packet: &str, path: &str, sign: Option<&Path>) -> Result<Outcome> {
    let (store, catalog) = ctx.open_read()?;
    let row = ctx.resolve(&catalog, packet)?;
    let proof = ops::file_proof::prove_file(&store, &catalog, &row, path, sign)?;
    // As in `cat`: the catalog lock is not held while stdout is written.
    drop(catalog);
    render::file_proof(&proof)?;
    Ok(Outcome::Pass)
}

/// `proof check-file PROOF [--file PATH] [--key VERIFIER_KEY]`: needs no store.
fn cmd_proof_check_file(
    ctx: &Context,
    proof: &Path,
    file: Option<&Path>,
    key: Option<&str>,
) -> Result<Outcome> {
    let report =
        ops::file_proof::check_file_proof(&ops::file_proof::CheckFileConfig { proof, file, key })?;
    render::file_proof_check(ctx.json, &report)?;
    Ok(if report.passed() {
        Outcome::Pass
    } else {
        Outcome::Fail
    })
}

fn cmd_kb(ctx: &Context, command: KbCommand) -> Result<Outcome> {
    match command {
        KbCommand::Verify {
            kb_dir,
            no_store,
            signed_by,
        } => cmd_kb_verify(ctx, &kb_dir, no_store, signed_by.as_deref()),
        KbCommand::GcStaging { kb_dir } => cmd_kb_gc_staging(ctx, &kb_dir),
    }
}

fn cmd_init(ctx: &Context) -> Result<Outcome> {
    if ops::setup::create_s3_store_if_url(&ctx.store_path)? {
        render::init(ctx.json, &ctx.store_path);
        return Ok(Outcome::Pass);
    }
    let store = ops::setup::create_store(&ctx.store_path)?;
    render::init(ctx.json, store.root());
    Ok(Outcome::Pass)
}

fn cmd_ingest(
    ctx: &Context,
    dir: &Path,
    name: Option<String>,
    note: Option<String>,
    source_date_epoch: Option<i64>,
) -> Result<Outcome> {
    let config = ops::setup::IngestFolderConfig {
        store_path: ctx.store_path.clone(),
        name,
        note,
        source_date_epoch,
        progress: ctx.progress.clone(),
    };
    let report = match ops::setup::ingest_creating_store(dir, &config)? {
        ops::setup::IngestFolderOutcome::Archived(report) => report,
        // A folder that does not match its seal: the gate's report as `verify DIR` prints it
        // (stdout), and on stderr that nothing was archived; exit 1.
        ops::setup::IngestFolderOutcome::Refused(refusal) => {
            render::gate_report(ctx.json, &refusal.report)?;
            eprintln!("evstore: {}", refusal.message());
            return Ok(outcome(refusal.report.verdict));
        }
    };
    if report.created_store {
        eprintln!(
            "evstore: created a new store in {}",
            ctx.store_path.escaped()
        );
    }
    render::ingest(ctx.json, &report);
    Ok(Outcome::Pass)
}

fn cmd_hash(ctx: &Context, dir: &Path, expect: &ExpectArgs, quiet: bool) -> Result<Outcome> {
    if quiet && ctx.json {
        return Err(Error::Usage(
            "hash: --quiet prints the bare packet_tree_sha256 and --json a document; give one"
                .into(),
        ));
    }
    let wanted = expect.parse()?;
    let report = ops::verify::hash_folder(dir, &wanted)?;
    render::hash(ctx.json, quiet, dir, &report)?;
    Ok(if report.holds() {
        Outcome::Pass
    } else {
        Outcome::Fail
    })
}

fn cmd_ls(ctx: &Context) -> Result<Outcome> {
    let (_, catalog) = ctx.open_read()?;
    render::ls(ctx.json, &ops::read::list_packets(&catalog)?);
    Ok(Outcome::Pass)
}

fn cmd_show(ctx: &Context, packet: &str) -> Result<Outcome> {
    let (store, catalog) = ctx.open_read()?;
    let row = ctx.resolve(&catalog, packet)?;
    render::show(ctx.json, &ops::read::packet_contents(&store, &row)?);
    Ok(Outcome::Pass)
}

fn cmd_manifest(ctx: &Context, packet: &str) -> Result<Outcome> {
    let (store, catalog) = ctx.open_read()?;
    let row = ctx.resolve(&catalog, packet)?;
    render::manifest(ctx.json, &ops::read::packet_manifest(&store, &row)?)?;
    Ok(Outcome::Pass)
}

fn cmd_cat(ctx: &Context, packet: &str, path: &str) -> Result<Outcome> {
    let (store, catalog) = ctx.open_read()?;
    let row = ctx.resolve(&catalog, packet)?;
    // Close the catalog (and release its lock) before reading objects: stdout may be a pipe
    // nobody reads, and an `immutable` reader's exclusive lock would hold every other evstore
    // command on this store meanwhile. Objects are immutable; the row is all that is needed.
    drop(catalog);
    let found = ops::read::find_file(&store, &row, path)?;
    if ctx.json {
        ops::read::verify_file_bytes(&store, &found.file)?;
        render::cat_json(&found);
    } else {
        render::write_stdout(|out| ops::read::write_file_bytes(&store, &found.file, out))?;
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
    let report = ops::export::export(&store, &row, dest, &ctx.progress)?;
    let label = format!("{}@{}", row.record.name, row.record.version);
    render::export(ctx.json, &label, dest, &report);
    Ok(Outcome::Pass)
}

fn cmd_log(ctx: &Context) -> Result<Outcome> {
    let (_, catalog) = ctx.open_read()?;
    render::log(ctx.json, &ops::read::list_events(&catalog)?)?;
    Ok(Outcome::Pass)
}

fn cmd_fsck(ctx: &Context) -> Result<Outcome> {
    let (store, catalog) = ctx.open_read()?;
    let report = ops::fsck::fsck(&store, &catalog, &ctx.progress)?;
    render::fsck(ctx.json, &report)?;
    Ok(if report.problems.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail
    })
}

fn cmd_reindex(ctx: &Context, replace: bool) -> Result<Outcome> {
    let store = Store::open(&ctx.store_path)?;
    store.check_writable()?;
    let report = ops::reindex::reindex(&store, replace)?;
    render::reindex(ctx.json, &report)?;
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
    ops::forget::check_reason(reason)?;
    let (store, mut catalog) = ctx.open()?;
    let forgotten = ops::forget::forget(&store, &mut catalog, item, reason)?;
    render::forget(ctx.json, &forgotten)?;
    Ok(Outcome::Pass)
}

fn cmd_seal(ctx: &Context, dir: &Path, force: bool, sign: Option<&Path>) -> Result<Outcome> {
    let key = sign.map(gate::signature::SshSigningKey::read).transpose()?;
    let config = gate::SealConfig {
        force,
        sign: key.as_ref(),
    };
    let report = gate::seal_folder(dir, &config)?;
    render::seal(ctx.json, dir, &report)?;
    Ok(Outcome::Pass)
}

fn cmd_verify(
    ctx: &Context,
    dir: &Path,
    against: Option<&str>,
    config: &ops::verify::VerifyConfig,
) -> Result<Outcome> {
    let report = match against {
        Some(packet) => {
            let (store, catalog) = ctx.open_read()?;
            let row = ctx.resolve(&catalog, packet)?;
            ops::verify::verify_against_packet(&store, &catalog, &row, dir, config)?
        }
        None => ops::verify::verify_against_seal(dir, config)?,
    };
    render::gate_report(ctx.json, &report)?;
    Ok(outcome(report.verdict))
}

fn cmd_diff(ctx: &Context, a: &str, b: &str, original: Option<PathBuf>) -> Result<Outcome> {
    let (a, b) = (ops::verify::parse_operand(a), ops::verify::parse_operand(b));
    let opened = if a.is_packet() || b.is_packet() {
        Some(ctx.open_read()?)
    } else {
        None
    };
    let config = ops::verify::DiffConfig {
        original,
        progress: ctx.progress.clone(),
    };
    let resolve = |catalog: &Catalog, packet: &str| ctx.resolve(catalog, packet);
    let report = ops::verify::diff(
        &a,
        &b,
        opened.as_ref().map(|(store, catalog)| (store, catalog)),
        &resolve,
        &config,
    )?;
    render::gate_report(ctx.json, &report)?;
    Ok(outcome(report.verdict))
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
    let config = ops::mirror::MirrorConfig {
        rel_path: as_path,
        dedup: match dedup {
            DedupArg::Copy => ops::mirror::Dedup::Copy,
            DedupArg::Reference => ops::mirror::Dedup::Reference,
            DedupArg::Hardlink => ops::mirror::Dedup::Hardlink,
        },
        progress: ctx.progress.clone(),
    };
    let report = ops::mirror::mirror(&store, &mut catalog, &row, kb_dir, &config)?;
    render::mirror(ctx.json, &report)?;
    Ok(Outcome::Pass)
}

fn cmd_kb_verify(
    ctx: &Context,
    kb_dir: &Path,
    no_store: bool,
    signed_by: Option<&Path>,
) -> Result<Outcome> {
    // Read (and refuse if malformed) before anything is opened.
    let signed_by = signed_by
        .map(gate::signature::AllowedSigners::read)
        .transpose()?;
    // A store is used when one was named, or when the default one exists.
    let mut opened = if no_store || (!ctx.store_named && !ctx.store_path.exists()) {
        None
    } else {
        Some(ctx.open_read()?)
    };
    let recorded = ops::kb::verify_kb_and_record(
        kb_dir,
        opened.as_mut().map(|(store, catalog)| (&*store, catalog)),
        signed_by.as_ref(),
    )?;
    drop(opened);
    if let Some(reason) = &recorded.event_not_logged {
        eprintln!("evstore: note: the kb-verify event was not logged: {reason}");
    }
    render::kb_verify(ctx.json, &recorded.report)?;
    Ok(outcome(recorded.report.verdict))
}

/// `rerun`'s arguments.
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
    sign: Option<PathBuf>,
    command: Vec<std::ffi::OsString>,
}

fn cmd_rerun(ctx: &Context, args: RerunArgs) -> Result<Outcome> {
    use ops::rerun::{RerunConfig, RerunStore};
    // Checks that can refuse, before anything is opened, run or created.
    ops::rerun::check_rerun_request(&ctx.store_path, args.timeout, args.keep.as_deref())?;
    let signing_key = args
        .sign
        .as_deref()
        .map(gate::signature::SshSigningKey::read)
        .transpose()?;
    let store_needed =
        args.packet.is_some() || args.ingest || ctx.store_named || signing_key.is_some();
    let chosen = ops::rerun::open_store_for_rerun(&ctx.store_path, store_needed)?;
    let default_store_read_only = matches!(chosen, RerunStore::DefaultReadOnly);
    let mut opened = match chosen {
        RerunStore::Opened(opened) => Some(*opened),
        RerunStore::None | RerunStore::DefaultReadOnly => None,
    };
    let catalog = opened.as_ref().map(|(_, catalog)| catalog);
    let (row, expected, source_date_epoch) = match (&args.packet, &args.expect) {
        (Some(packet), _) => {
            let catalog = catalog.ok_or_else(|| Error::Usage("a PACKET needs a store".into()))?;
            let row = ctx.resolve(catalog, packet)?;
            let (sha, epoch) = (row.record.packet_tree_sha256, row.record.source_date_epoch);
            (Some(row), sha, Some(epoch))
        }
        (None, Some(hex)) => {
            let tree = ops::rerun::expected_tree(catalog, hex, args.source_date_epoch)?;
            (tree.row, tree.expected, tree.source_date_epoch)
        }
        (None, None) => return Err(Error::Usage("give a PACKET or --expect SHA256".into())),
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
    let record = ops::rerun::RecordConfig {
        ingest: args.ingest,
        progress: ctx.progress.clone(),
    };
    let recorded = ops::rerun::rerun_and_record(
        opened.as_mut().map(|(store, catalog)| (&*store, catalog)),
        row.as_ref(),
        &config,
        &record,
    )?;
    let mut signing_failed = None;
    if let (Some(key), Some(attestation)) = (&signing_key, &recorded.attestation) {
        if let Some((store, _)) = &opened {
            if let Err(err) = ops::attest::sign_attestation(store, attestation, key) {
                signing_failed = Some((*attestation, err));
            }
        }
    } else if signing_key.is_some() {
        return Err(Error::Usage(
            "--sign: the attestation was not recorded (no store this user can write), so \
             there is nothing to sign; name a store you can write with --store"
                .into(),
        ));
    }
    if default_store_read_only {
        eprintln!(
            "evstore: note: the attestation was not recorded because the default store {} is \
             read-only for this user; name a store you can write with --store to record it",
            ctx.store_path.escaped()
        );
    }
    render::rerun(ctx.json, &recorded)?;
    if let Some((attestation, err)) = signing_failed {
        // The run is recorded and its report printed: the signature is what is missing, and
        // `runs --show RUN --sign KEY` adds it later.
        eprintln!(
            "evstore: error: the rerun is recorded (attestation {attestation}), but it could not \
             be signed: {err}; sign it later with `evstore runs --show {} --sign KEY`",
            &attestation.to_hex()[..12]
        );
        return Ok(Outcome::CompletedThenFailed);
    }
    Ok(outcome(recorded.report.verdict))
}

fn cmd_runs(ctx: &Context, packet: Option<&str>) -> Result<Outcome> {
    let (_, catalog) = ctx.open_read()?;
    let resolved = match packet {
        Some(packet) => Some(ctx.resolve(&catalog, packet)?),
        None => None,
    };
    let packet_label = resolved
        .as_ref()
        .map(|row| format!("{}@{}", row.record.name, row.record.version));
    let runs = ops::read::list_runs(&catalog, resolved.as_ref().map(|row| row.id))?;
    render::runs(ctx.json, packet_label.as_deref(), &runs);
    Ok(Outcome::Pass)
}

/// `runs --show RUN [--export FILE]`.
fn cmd_runs_show(
    ctx: &Context,
    run: &str,
    export: Option<&Path>,
    sign: Option<&Path>,
) -> Result<Outcome> {
    let key = sign.map(gate::signature::SshSigningKey::read).transpose()?;
    let (store, catalog) = match key {
        Some(_) => ctx.open()?,
        None => ctx.open_read()?,
    };
    let runs = ops::read::list_runs(&catalog, None)?;
    let matching: Vec<_> = runs
        .iter()
        .filter(|entry| {
            entry.row.id.to_string() == run
                || (run.len() >= 4
                    && run.bytes().all(|b| b.is_ascii_hexdigit())
                    && entry.row.attestation.starts_with(&run.to_ascii_lowercase()))
        })
        .collect();
    let entry = match matching.as_slice() {
        [entry] => *entry,
        [] => {
            return Err(Error::NotFound(format!(
                "no run {run:?}: give its number as `evstore runs` lists it, or at least 4 hex \
                 digits of its attestation id"
            )))
        }
        _ => {
            return Err(Error::Usage(format!(
                "{run:?} names {} runs; give more of the attestation id",
                matching.len()
            )))
        }
    };
    let attestation =
        crate::digest::Blake3Digest::parse_hex(&entry.row.attestation).ok_or_else(|| {
            Error::corrupt(
                "catalog",
                format!("run {} names no attestation id", entry.row.id),
            )
        })?;
    if let Some(key) = &key {
        ops::attest::sign_attestation(&store, &attestation, key)?;
    }
    let envelope = ops::attest::envelope_of(&store, &attestation)?;
    if let Some(file) = export {
        let mut text = serde_json::to_string_pretty(&envelope)
            .map_err(|err| Error::Usage(format!("cannot encode the envelope: {err}")))?;
        text.push('\n');
        crate::fsio::write_new_file(file, text.as_bytes(), 0o644, "an envelope file")?;
    }
    render::run_show(ctx.json, entry, &attestation, &envelope, export)?;
    Ok(Outcome::Pass)
}

/// `attestation verify FILE --key PUBKEY [--packet DIR]`.
fn cmd_attestation_verify(
    ctx: &Context,
    file: &Path,
    key: &Path,
    packet: Option<&Path>,
) -> Result<Outcome> {
    let key = gate::signature::read_public_key(key)?;
    let check = ops::attest::verify_envelope(file, &key, packet, &ctx.progress)?;
    render::attestation_verify(ctx.json, &check)?;
    Ok(if check.verdict == "PASS" {
        Outcome::Pass
    } else {
        Outcome::Fail
    })
}

fn cmd_kb_gc_staging(ctx: &Context, kb_dir: &Path) -> Result<Outcome> {
    let report = ops::kb::gc_staging(kb_dir)?;
    render::kb_gc_staging(ctx.json, &report)?;
    Ok(Outcome::Pass)
}

fn cmd_gc_temp(ctx: &Context) -> Result<Outcome> {
    let store = Store::open(&ctx.store_path)?;
    store.check_writable()?;
    let report = store.gc_temp()?;
    render::gc_temp(ctx.json, &report, &store.tmp_path())?;
    Ok(Outcome::Pass)
}
