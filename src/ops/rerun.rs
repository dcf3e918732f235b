//! Rerun reproducibility: regenerate a packet and prove its tree hash is the same.
//!
//! [`rerun`] runs a generator command one or more times, each time into a fresh empty output
//! folder (given as `$EVSTORE_OUT` and as `{out}` in the arguments), in a controlled environment
//! by default, with an optional timeout that kills the whole process group. It then hashes each
//! output strictly (as ingest would) and compares it with the expected `packet_tree_sha256`.
//! PASS needs every run to exit 0, to write at least one file, and to hash to the expected value;
//! a run that did nothing never passes. A mismatch is explained with the gate's per-file report,
//! and runs that disagree with each other are reported as nondeterministic, with the files that
//! vary. [`attest`] stores the result as an attestation object and records it in the catalog.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::catalog::{Catalog, NewEvent, NewRun, PacketRow};
use crate::digest::{blake3_of, Blake3Digest, Sha256Digest};
use crate::error::{Error, IoContext, Result};
use crate::folder::{hash_folder, Digests, FolderHashConfig};
use crate::format::attestation::{
    Attestation, AttestedCounts, AttestedDiff, AttestedExpectation, AttestedFile,
    AttestedFileFacts, AttestedFirstDifference, AttestedRun, AttestedSeal, AttestedSide,
    AttestedSideKind, EnvironmentMode, FileStatus, FormatTag, RecordedVerdict, Relation,
};
use crate::format::object::ObjectKind;
use crate::gate::{self, GateReport, Side, Verdict};
use crate::interrupt::{on_interrupt, Cleanup, OnInterrupt};
use crate::progress::Progress;
use crate::scan::scan_dir;
use crate::scan::{refuse_symlink, RootDir};
use crate::store::Store;
use crate::text::EscapePath;

/// How much of a run's combined stdout and stderr the report keeps (the end of it).
const OUTPUT_TAIL_BYTES: u64 = 2048;

/// `PATH` in the controlled environment. Fixed, not the caller's: the attestation records the
/// environment, and a caller's `PATH` (home folders, tool versions) is neither reproducible nor
/// something to store forever. A generator that needs another one sets it in its command line
/// (`env PATH=… CMD`), where the attestation records it as part of the command.
pub const CONTROLLED_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// What to rerun and how.
#[derive(Clone, Debug)]
pub struct RerunConfig {
    /// The packet_tree_sha256 the output must have.
    pub expected: Sha256Digest,
    /// The stored packet being reproduced, if any.
    pub packet: Option<PacketRow>,
    /// `SOURCE_DATE_EPOCH` for the controlled environment (unset when `None`).
    pub source_date_epoch: Option<i64>,
    /// The command and its arguments; `{out}` is replaced by the output folder.
    pub command: Vec<OsString>,
    /// How many times to run (at least 1).
    pub runs: u32,
    /// Kill a run (its whole process group) after this long.
    pub timeout: Option<Duration>,
    /// Keep the first run's output here (must be absent or empty).
    pub keep: Option<PathBuf>,
    /// The working directory of the command.
    pub cwd: PathBuf,
    /// Pass the caller's environment through instead of the controlled one.
    pub keep_env: bool,
}

/// One run.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    /// 1-based run number.
    pub run: u32,
    /// The exit code, if the command exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// True if it was killed by the timeout.
    pub timed_out: bool,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// The output's packet_tree_sha256, when it could be hashed.
    pub observed_sha256: Option<Sha256Digest>,
    /// Files in the output.
    pub files: u64,
    /// Why this run fails, if it does.
    pub failure: Option<String>,
    /// The end of the command's combined stdout and stderr.
    pub output_tail: String,
    /// Where its output is (kept only with `--keep`, else removed after the report).
    #[serde(skip)]
    pub out_dir: PathBuf,
}

/// The result of a rerun.
#[derive(Clone, Debug, Serialize)]
pub struct RerunReport {
    /// PASS (PACKET_TREE MATCH) or FAIL.
    pub verdict: Verdict,
    /// The packet reproduced (`NAME@N`), if it is stored.
    pub packet: Option<String>,
    /// The expected packet_tree_sha256.
    pub expected_sha256: Sha256Digest,
    /// The command line as given (lossy UTF-8).
    pub command: Vec<String>,
    /// The working directory.
    pub cwd: PathBuf,
    /// `controlled` or `inherited`.
    pub environment_mode: &'static str,
    /// The controlled environment (without the per-run `HOME` and `EVSTORE_OUT`); for an
    /// inherited environment only the variable names, with empty values.
    pub environment: BTreeMap<String, String>,
    /// Every run.
    pub runs: Vec<RunResult>,
    /// True if runs produced different trees.
    pub nondeterministic: bool,
    /// Files that differ between runs.
    pub varying_files: Vec<String>,
    /// Why the verdict is FAIL (empty on PASS).
    pub reasons: Vec<String>,
    /// Per-file drift of the first mismatching run's output against the expected packet, when
    /// the expected files are known.
    pub diff: Option<GateReport>,
    /// Where the first run's output was kept.
    pub kept: Option<PathBuf>,
}

/// Temp folders of a rerun: alive until dropped.
pub struct RunFolders {
    _parent: tempfile::TempDir,
    outputs: Vec<Option<Arc<RootDir>>>,
}

impl RunFolders {
    /// Run `run`'s (1-based) output folder as it was opened (a real folder, never a symlink) and
    /// hashed, if it was: every later read of an output (`--ingest`) goes through this handle,
    /// never through the folder's path.
    pub fn output(&self, run: u32) -> Option<Arc<RootDir>> {
        let index = usize::try_from(run).ok()?.checked_sub(1)?;
        self.outputs.get(index).cloned().flatten()
    }
}

/// Run the generator and compare. `expected_side` gives per-file drift on a mismatch.
///
/// # Errors
///
/// [`Error::Usage`] for a bad request (an empty command, a `--keep` folder that is not empty),
/// an operational error when the generator cannot be started, an output folder was replaced by a
/// symlink or cannot be read, [`Error::Interrupted`] after a signal. A run that fails or hashes
/// to another tree is not an error: it is the report's verdict.
pub fn rerun(
    store: Option<&Store>,
    expected_side: Option<&Side>,
    config: &RerunConfig,
) -> Result<(RerunReport, RunFolders)> {
    if config.command.is_empty() {
        return Err(Error::Usage("no command given after --".into()));
    }
    if config.runs == 0 {
        return Err(Error::Usage("--runs must be at least 1".into()));
    }
    if config.timeout == Some(Duration::ZERO) {
        return Err(Error::Usage(
            "--timeout 0 would kill the generator before it starts; give at least 1 second".into(),
        ));
    }
    let cwd = fs::canonicalize(&config.cwd).at(&config.cwd, "cannot use as working directory")?;
    match fs::metadata(&cwd) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(Error::unsupported(
                &config.cwd,
                "--cwd is not a folder: the generator runs in the folder --cwd names; nothing was \
                 run or recorded",
            ))
        }
        Err(err) => {
            return Err(Error::io(
                &config.cwd,
                "cannot use as working directory",
                err,
            ))
        }
    }
    let mut created_keep = false;
    // The --keep folder by its resolved path: the generator sees (and may replace) that path.
    let mut keep_resolved = None;
    if let Some(keep) = &config.keep {
        refuse_symlink(keep)?;
        created_keep = crate::ops::export::prepare_empty_dest(keep)?;
        keep_resolved = Some(fs::canonicalize(keep).at(keep, "cannot resolve")?);
    }
    // Reported if a signal stops this rerun: the --keep folder stays as it is, the temp folder is
    // removed when `parent` is dropped.
    let _kept = config.keep.as_ref().map(|keep| {
        on_interrupt(Cleanup::Kept {
            what: "the first run's output so far (--keep)",
            path: keep.clone(),
        })
    });
    let result = rerun_into(store, expected_side, config, cwd);
    if let (Err(_), Some(keep), Some(resolved)) = (&result, &config.keep, &keep_resolved) {
        clean_up_refused_keep(keep, resolved, created_keep);
    }
    result
}

/// After a refused rerun: remove the empty --keep folder this rerun created (a folder the
/// generator filled is not empty, and stays), or the symlink the generator put in its place
/// (never what it points to). A --keep folder that existed before is left as it is, and said.
fn clean_up_refused_keep(keep: &Path, resolved: &Path, created_keep: bool) {
    let is_symlink = fs::symlink_metadata(resolved).is_ok_and(|m| m.file_type().is_symlink());
    match (created_keep, is_symlink) {
        (true, true) => match fs::remove_file(resolved) {
            Ok(()) => crate::notice::notice(&format!(
                "removed the symbolic link the generator put at the --keep folder {} \
                 (what it pointed to is untouched)",
                keep.escaped()
            )),
            Err(err) => crate::notice::notice(&format!(
                "could not remove the symbolic link the generator put at the --keep \
                 folder {}: {err}; remove it by hand",
                keep.escaped()
            )),
        },
        (true, false) => {
            let _ = fs::remove_dir(resolved);
        }
        (false, true) => crate::notice::notice(&format!(
            "the --keep folder {} existed before this rerun, so it is left as the \
             generator left it: now a symbolic link, which evstore did not follow",
            keep.escaped()
        )),
        (false, false) => {}
    }
}

fn rerun_into(
    store: Option<&Store>,
    expected_side: Option<&Side>,
    config: &RerunConfig,
    cwd: PathBuf,
) -> Result<(RerunReport, RunFolders)> {
    let parent = tempfile::Builder::new()
        .prefix("evstore-rerun-")
        .tempdir()
        .at(&std::env::temp_dir(), "cannot create a temporary folder in")?;
    let _removed = on_interrupt(Cleanup::Removed {
        what: "the temp folder",
        path: parent.path().to_path_buf(),
    });
    let environment = run_environment(config);
    let runs = run_every_time(config, &environment, &cwd, parent.path())?;
    let findings = what_the_runs_show(config, &runs)?;
    let diff = drift_of_the_first_mismatching_run(store, expected_side, config, &runs)?;
    // Every output was hashed: a signal now still stops the command before anything is
    // reported or recorded.
    crate::interrupt::check()?;
    let verdict = rerun_verdict(config, &findings.reasons, &runs.results);
    let report = RerunReport {
        verdict,
        packet: config
            .packet
            .as_ref()
            .map(|p| format!("{}@{}", p.record.name, p.record.version)),
        expected_sha256: config.expected,
        command: config
            .command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        cwd,
        environment_mode: if config.keep_env {
            "inherited"
        } else {
            "controlled"
        },
        environment,
        runs: runs.results,
        nondeterministic: findings.nondeterministic,
        varying_files: findings.varying_files,
        reasons: findings.reasons,
        diff,
        kept: config.keep.clone(),
    };
    let folders = RunFolders {
        _parent: parent,
        outputs: runs.outputs,
    };
    Ok((report, folders))
}

/// The environment a run gets, as the report records it: the controlled one (without the
/// per-run `HOME` and `EVSTORE_OUT`), or, with `--keep-env`, only the names of the caller's
/// variables, with empty values, so that no secret is stored.
fn run_environment(config: &RerunConfig) -> BTreeMap<String, String> {
    let mut environment = BTreeMap::new();
    if config.keep_env {
        for (key, _) in std::env::vars_os() {
            environment.insert(key.to_string_lossy().into_owned(), String::new());
        }
    } else {
        environment.insert("PATH".into(), CONTROLLED_PATH.into());
        environment.insert("TZ".into(), "UTC".into());
        environment.insert("LC_ALL".into(), "C.UTF-8".into());
        environment.insert("LANG".into(), "C.UTF-8".into());
        if let Some(epoch) = config.source_date_epoch {
            environment.insert("SOURCE_DATE_EPOCH".into(), epoch.to_string());
        }
    }
    environment
}

/// Every run of a rerun, in order, as three parallel lists.
struct CompletedRuns {
    /// What each run did.
    results: Vec<RunResult>,
    /// Each run's output folder as it was opened after the run (never a symlink).
    outputs: Vec<Option<Arc<RootDir>>>,
    /// Each output as the one folder hasher hashed it, for comparisons: never hashed again.
    sides: Vec<Option<Side>>,
}

/// Run the generator `config.runs` times, each run with a fresh output folder (the `--keep`
/// folder for run 1), a fresh `HOME` and its own log, all under `parent` (the rerun's temp
/// folder). A signal stops before the next run starts.
fn run_every_time(
    config: &RerunConfig,
    environment: &BTreeMap<String, String>,
    cwd: &Path,
    parent: &Path,
) -> Result<CompletedRuns> {
    let mut runs = CompletedRuns {
        results: Vec::new(),
        outputs: Vec::new(),
        sides: Vec::new(),
    };
    for run in 1..=config.runs {
        crate::interrupt::check()?;
        let out_dir = match (&config.keep, run) {
            (Some(keep), 1) => fs::canonicalize(keep).at(keep, "cannot resolve")?,
            _ => {
                let dir = parent.join(format!("out-{run}"));
                fs::create_dir(&dir).at(&dir, "cannot create")?;
                dir
            }
        };
        let home = parent.join(format!("home-{run}"));
        fs::create_dir(&home).at(&home, "cannot create")?;
        let log = parent.join(format!("output-{run}.log"));
        let (result, output, side) = run_once(config, environment, cwd, run, out_dir, &home, &log)?;
        runs.results.push(result);
        runs.outputs.push(output);
        runs.sides.push(side);
    }
    Ok(runs)
}

/// What a rerun's runs show, before the drift report: why the verdict is FAIL, and whether and
/// where the runs disagree with each other.
struct RunFindings {
    /// Why the verdict is FAIL, in order: each run's failure, the runs' disagreement, a tree
    /// that is not the expected one.
    reasons: Vec<String>,
    /// True if runs produced different trees.
    nondeterministic: bool,
    /// Files that differ between runs, sorted.
    varying_files: Vec<String>,
}

/// Judge the runs: each run's failure is a reason; runs that hashed to different trees are
/// nondeterministic (the files that vary are named); a run that hashed to another tree than the
/// expected one is a `PACKET_TREE MISMATCH`.
fn what_the_runs_show(config: &RerunConfig, runs: &CompletedRuns) -> Result<RunFindings> {
    let mut reasons: Vec<String> = runs
        .results
        .iter()
        .filter_map(|r| r.failure.as_ref().map(|f| format!("run {}: {f}", r.run)))
        .collect();
    let observed: BTreeSet<Sha256Digest> = runs
        .results
        .iter()
        .filter_map(|r| r.observed_sha256)
        .collect();
    let nondeterministic = observed.len() > 1;
    let mut varying = BTreeSet::new();
    if nondeterministic {
        varying = files_that_vary_from_the_first_run(runs)?;
        let list: Vec<&str> = varying.iter().map(String::as_str).collect();
        reasons.push(format!(
            "nondeterministic between runs: {} distinct trees; files that vary: {}",
            observed.len(),
            list.join(", ")
        ));
    }
    let mismatched = runs
        .results
        .iter()
        .any(|r| r.observed_sha256.is_some_and(|sha| sha != config.expected));
    if mismatched {
        reasons.push(
            "PACKET_TREE MISMATCH: the output does not hash to the expected packet_tree_sha256"
                .into(),
        );
    }
    Ok(RunFindings {
        reasons,
        nondeterministic,
        varying_files: varying.into_iter().collect(),
    })
}

/// The files that differ between the first run's output and each later run's output that was
/// hashed (the gate compares them), for a rerun whose runs disagree.
fn files_that_vary_from_the_first_run(runs: &CompletedRuns) -> Result<BTreeSet<String>> {
    let mut varying = BTreeSet::new();
    let first = output_side(&runs.results[0], &runs.outputs[0], &runs.sides[0])?;
    let later = runs.results.iter().zip(&runs.outputs).zip(&runs.sides);
    for ((other, output), side) in later.skip(1) {
        if other.observed_sha256.is_none() {
            continue;
        }
        let report = gate::compare(None, &first, &output_side(other, output, side)?)?;
        varying.extend(
            report
                .files
                .iter()
                .filter(|f| !f.is_ok())
                .map(|f| f.path.clone()),
        );
    }
    Ok(varying)
}

/// The gate's per-file report of the first run whose output hashes to another tree than the
/// expected one, against the expected side, when both are known.
fn drift_of_the_first_mismatching_run(
    store: Option<&Store>,
    expected_side: Option<&Side>,
    config: &RerunConfig,
    runs: &CompletedRuns,
) -> Result<Option<GateReport>> {
    let first_mismatch = runs
        .results
        .iter()
        .zip(&runs.outputs)
        .zip(&runs.sides)
        .find(|((r, _), _)| r.observed_sha256.is_some_and(|sha| sha != config.expected));
    match (first_mismatch, expected_side) {
        (Some(((run, output), side)), Some(expected)) => Ok(Some(gate::compare(
            store,
            expected,
            &output_side(run, output, side)?,
        )?)),
        _ => Ok(None),
    }
}

/// PASS only if no reason to fail was found and every run hashed to the expected tree with at
/// least one file.
fn rerun_verdict(config: &RerunConfig, reasons: &[String], results: &[RunResult]) -> Verdict {
    let every_run_reproduced = results
        .iter()
        .all(|r| r.observed_sha256 == Some(config.expected) && r.files > 0);
    if reasons.is_empty() && every_run_reproduced {
        Verdict::Pass
    } else {
        Verdict::Fail
    }
}

/// The gate's view of a run's output: as it was hashed after the run, or (where that failed)
/// hashed now through the same handle, so the comparison reports why.
fn output_side(
    run: &RunResult,
    output: &Option<Arc<RootDir>>,
    hashed: &Option<Side>,
) -> Result<Side> {
    if let Some(side) = hashed {
        return Ok(side.clone());
    }
    match output {
        Some(dir) => Side::folder_in(dir.clone(), &Progress::silent()),
        None => Err(Error::unsupported(
            &run.out_dir,
            "the output of this run was not opened (internal error)",
        )),
    }
}

/// Run the generator once into `out_dir`, then open and hash what it wrote. Returns the run's
/// result, its output folder's handle and, when the output could be hashed, the gate's view of
/// it.
fn run_once(
    config: &RerunConfig,
    environment: &BTreeMap<String, String>,
    cwd: &Path,
    run: u32,
    out_dir: PathBuf,
    home: &Path,
    log: &Path,
) -> Result<(RunResult, Option<Arc<RootDir>>, Option<Side>)> {
    let command = generator_command(config, environment, cwd, &out_dir, home, log)?;
    let started = Instant::now();
    let mut result = RunResult {
        run,
        exit_code: None,
        signal: None,
        timed_out: false,
        duration_ms: 0,
        observed_sha256: None,
        files: 0,
        failure: None,
        output_tail: String::new(),
        out_dir: out_dir.clone(),
    };
    let ended = run_generator_in_its_own_group(config, command, run, log, started)?;
    result.timed_out = ended.timed_out;
    result.duration_ms = started.elapsed().as_millis() as u64;
    result.exit_code = ended.status.code();
    result.signal = ended.status.signal();
    result.output_tail = tail(log)?;
    result.failure = failure_of_the_exit(config, &result);
    // The output folder must still be the real folder evstore made: a generator that replaced it
    // with a symlink (to the original packet, say) wrote nothing there, and its target must never
    // be hashed as its output. From here on the output is read only through this handle.
    let output = Arc::new(open_output(&out_dir)?);
    if output.is_empty()? {
        result.failure.get_or_insert_with(|| "wrote no file".into());
        return Ok((result, Some(output), None));
    }
    let side = hash_run_output(&output, &mut result)?;
    Ok((result, Some(output), side))
}

/// The generator's command for one run: `{out}` substituted in its arguments, run in `cwd` in a
/// process group of its own, in the controlled environment (with the run's `HOME`) unless
/// `--keep-env`, with `$EVSTORE_OUT`, stdin `/dev/null`, and stdout and stderr both written to
/// `log` (created here).
fn generator_command(
    config: &RerunConfig,
    environment: &BTreeMap<String, String>,
    cwd: &Path,
    out_dir: &Path,
    home: &Path,
    log: &Path,
) -> Result<Command> {
    let args: Vec<OsString> = config.command[1..]
        .iter()
        .map(|arg| substitute_out(arg, out_dir))
        .collect();
    let mut command = Command::new(&config.command[0]);
    command.args(&args).current_dir(cwd).process_group(0);
    if !config.keep_env {
        command.env_clear().envs(environment).env("HOME", home);
    }
    command.env("EVSTORE_OUT", out_dir);
    let output = File::create(log).at(log, "cannot create")?;
    let output_err = output.try_clone().at(log, "cannot create")?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(output))
        .stderr(Stdio::from(output_err));
    Ok(command)
}

/// How the generator's process ended.
struct GeneratorEnd {
    /// Its exit status.
    status: ExitStatus,
    /// True if the timeout killed it.
    timed_out: bool,
}

/// Start the generator and poll it every 10 ms until it ends: at the timeout its whole process
/// group and the child get `SIGKILL`; after a signal to evstore they are killed and the child is
/// waited for before [`Error::Interrupted`] is returned. Once it has ended, for any reason, its
/// group gets `SIGKILL` again, so nothing it left running can keep writing into its output.
fn run_generator_in_its_own_group(
    config: &RerunConfig,
    mut command: Command,
    run: u32,
    log: &Path,
    started: Instant,
) -> Result<GeneratorEnd> {
    // A command that cannot be started (a typo, a missing or non-executable file) says nothing
    // about the packet: an operational error, and nothing is recorded.
    let mut child = command.spawn().map_err(|err| {
        Error::io(
            &config.command[0],
            "cannot start the generator; nothing is recorded",
            err,
        )
    })?;
    let group = rustix::process::Pid::from_raw(child.id() as i32);
    // While the generator runs, a second signal (which exits at once) kills its group first.
    let watched = group.map(|g| crate::interrupt::GeneratorGroup::watch(g.as_raw_nonzero().get()));
    let ended = loop {
        if let Some(status) = child.try_wait().at(log, "cannot wait for the command")? {
            break GeneratorEnd {
                status,
                timed_out: false,
            };
        }
        if let Err(interrupted) = crate::interrupt::check() {
            stop_the_generator_after_a_signal(group, &mut child, run);
            drop(watched);
            return Err(interrupted);
        }
        if config
            .timeout
            .is_some_and(|limit| started.elapsed() >= limit)
        {
            kill_the_generator_group(group);
            let _ = child.kill();
            let status = child.wait().at(log, "cannot wait for the command")?;
            break GeneratorEnd {
                status,
                timed_out: true,
            };
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Stop anything the command left running in its group, so it cannot keep writing.
    kill_the_generator_group(group);
    drop(watched);
    Ok(ended)
}

/// Send `SIGKILL` to the generator's process group, if it has one; a group already gone is no
/// error.
fn kill_the_generator_group(group: Option<rustix::process::Pid>) {
    if let Some(group) = group {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::Kill);
    }
}

/// Stop the generator and everything in its group before the temp folders go: kill the group
/// and the child, wait for the child, kill the group again (anything it started meanwhile), and
/// note the kill for the interrupted command's report.
fn stop_the_generator_after_a_signal(
    group: Option<rustix::process::Pid>,
    child: &mut Child,
    run: u32,
) {
    kill_the_generator_group(group);
    let _ = child.kill();
    let _ = child.wait();
    if let Some(group) = group {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::Kill);
        crate::interrupt::record(Cleanup::Note(format!(
            "killed the generator's process group {} (run {run})",
            group.as_raw_nonzero()
        )));
    }
}

/// Why a run fails by how it ended (killed by the timeout or a signal, or a non-zero exit code),
/// if it does.
fn failure_of_the_exit(config: &RerunConfig, result: &RunResult) -> Option<String> {
    if result.timed_out {
        Some(format!(
            "killed after the timeout of {} s",
            config.timeout.map_or(0, |t| t.as_secs())
        ))
    } else if let Some(signal) = result.signal {
        Some(format!("killed by signal {signal}"))
    } else if result.exit_code != Some(0) {
        Some(format!(
            "exited with code {}",
            result.exit_code.unwrap_or(-1)
        ))
    } else {
        None
    }
}

/// Hash a run's non-empty output once, through its handle, with the one folder hasher: the
/// run's `packet_tree_sha256` and file count go into `result`, and the gate's view of the output
/// is returned. An output that cannot be a packet (a name the format cannot hold, an entry that
/// is not a regular file) is the run's failure, not an error; the gate's view is still returned
/// when the folder could be hashed, so a comparison can say what it holds.
fn hash_run_output(output: &Arc<RootDir>, result: &mut RunResult) -> Result<Option<Side>> {
    let scanned = match scan_dir(output.clone()) {
        Ok(scanned) => scanned,
        Err(err @ Error::Interrupted { .. }) => return Err(err),
        Err(err) => {
            result
                .failure
                .get_or_insert_with(|| format!("its output cannot be a packet: {err}"));
            return Ok(None);
        }
    };
    // A packet holds regular files only, and at least one: otherwise the output has no tree
    // hash, though the gate can still say what it holds.
    let not_a_packet = scanned.require_regular_files().err();
    let progress = Progress::silent();
    let hashed = hash_folder(
        scanned,
        &FolderHashConfig::new("hash", Digests::Sha256, &progress),
    )
    .and_then(|folder| Side::from_folder(&folder));
    match (hashed, not_a_packet) {
        (Err(err @ Error::Interrupted { .. }), _) => Err(err),
        (Ok(side), None) => {
            result.observed_sha256 = Some(side.packet_tree_sha256);
            result.files = side.file_count;
            Ok(Some(side))
        }
        (Ok(side), Some(err)) => {
            result
                .failure
                .get_or_insert_with(|| format!("its output cannot be a packet: {err}"));
            Ok(Some(side))
        }
        (Err(err), not_a_packet) => {
            let err = not_a_packet.unwrap_or(err);
            result
                .failure
                .get_or_insert_with(|| format!("its output cannot be a packet: {err}"));
            Ok(None)
        }
    }
}

/// Open a run's output folder after the run, refusing a symlink put in its place.
fn open_output(out_dir: &Path) -> Result<RootDir> {
    if let Ok(meta) = fs::symlink_metadata(out_dir) {
        if meta.file_type().is_symlink() {
            let target = fs::read_link(out_dir)
                .map(|t| t.escaped().to_string())
                .unwrap_or_else(|err| format!("an unreadable target: {err}"));
            return Err(Error::unsupported(
                out_dir,
                format!(
                    "the generator replaced its output folder with a symbolic link (to {target}); \
                     a generator must write its files into the folder, and evstore never hashes \
                     what a symlink points to, so this rerun is refused and nothing is recorded"
                ),
            ));
        }
    }
    RootDir::open(out_dir)
}

/// Replace every `{out}` in an argument by the output folder.
fn substitute_out(arg: &OsString, out_dir: &Path) -> OsString {
    match arg.to_str() {
        Some(text) if text.contains("{out}") => {
            OsString::from(text.replace("{out}", &out_dir.to_string_lossy()))
        }
        _ => arg.clone(),
    }
}

fn tail(log: &Path) -> Result<String> {
    let mut file = File::open(log).at(log, "cannot read")?;
    let len = file.metadata().at(log, "cannot stat")?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(OUTPUT_TAIL_BYTES)))
        .at(log, "cannot read")?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).at(log, "cannot read")?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Store the report as an attestation object (`format::attestation`, `evstore/attestation/1`)
/// and record it in the catalog with a `rerun` event. Returns its id.
///
/// # Errors
///
/// [`Error::Usage`] if the report cannot be stored as an attestation (a working directory or
/// `--keep` path that is not UTF-8); the store's and the catalog's errors if writing fails;
/// [`Error::Interrupted`] if a signal arrived before the attestation was published.
pub fn attest(
    store: &Store,
    catalog: &mut Catalog,
    report: &RerunReport,
    packet_id: Option<i64>,
    ingested: Option<&str>,
) -> Result<Blake3Digest> {
    let time_unix_nanos = crate::now_unix_nanos();
    let attestation = attestation_of(report, ingested, time_unix_nanos)?;
    let payload = attestation
        .encode()
        .map_err(|err| Error::Internal(format!("cannot encode the attestation: {err}")))?;
    let id = blake3_of(&payload);
    let refs = crate::store::refs::Refs::for_writer(store)?;
    crate::ops::markers::ensure_markers(&refs, catalog)?;
    crate::ops::markers::ensure_log_attached(store, catalog)?;
    let batch = store.batch()?;
    batch.add_bytes(id, ObjectKind::Attestation, &payload)?;
    // The point of no return: after a signal, no attestation is published or recorded; once it
    // is published, its `runs` row is committed too.
    crate::interrupt::check()?;
    batch.commit()?;
    let run_summary = attestation.run_summary();
    // The row is built from the stored payload, read back as catch-up and `reindex` read it, so
    // a rebuilt catalog holds the same row.
    let indexed = crate::format::attestation::decode_summary(&payload).map_err(|reason| {
        Error::Internal(format!(
            "the attestation just encoded does not read back: {reason}"
        ))
    })?;
    catalog.add_run(
        &NewRun::of_attestation(id, payload.len() as u64, &indexed, packet_id),
        &NewEvent::rerun(
            &report
                .packet
                .clone()
                .unwrap_or_else(|| report.expected_sha256.to_hex()),
            attestation.verdict,
            &id,
            &report.expected_sha256,
            &run_summary,
        ),
    )?;
    refs.mark_run(&id, &report.expected_sha256.to_hex())
        .map_err(|err| {
            Error::Usage(format!(
            "the rerun was attested (attestation {id}, committed to the catalog), but its commit \
             marker could not be written: {err}; `evstore reindex --replace` writes it"
        ))
        })?;
    Ok(id)
}

/// The attestation of a rerun report, field by field: the stored format is
/// `format::attestation`'s, so a change to the report (or the gate's report it embeds) cannot
/// change it unnoticed.
fn attestation_of(
    report: &RerunReport,
    ingested: Option<&str>,
    time_unix_nanos: u64,
) -> Result<Attestation> {
    Ok(Attestation {
        format: FormatTag,
        verdict: recorded_verdict(report.verdict),
        packet: report.packet.clone(),
        expected_sha256: report.expected_sha256,
        command: report.command.clone(),
        cwd: utf8_path(&report.cwd)?,
        environment_mode: match report.environment_mode {
            "controlled" => EnvironmentMode::Controlled,
            "inherited" => EnvironmentMode::Inherited,
            other => {
                return Err(Error::Usage(format!(
                    "cannot encode the attestation: unknown environment mode {other:?}"
                )))
            }
        },
        environment: report.environment.clone(),
        runs: report
            .runs
            .iter()
            .map(|run| AttestedRun {
                run: run.run,
                exit_code: run.exit_code,
                signal: run.signal,
                timed_out: run.timed_out,
                duration_ms: run.duration_ms,
                observed_sha256: run.observed_sha256,
                files: run.files,
                failure: run.failure.clone(),
                output_tail: run.output_tail.clone(),
            })
            .collect(),
        nondeterministic: report.nondeterministic,
        varying_files: report.varying_files.clone(),
        reasons: report.reasons.clone(),
        diff: report.diff.as_ref().map(attested_diff).transpose()?,
        kept: report.kept.as_deref().map(utf8_path).transpose()?,
        ingested: ingested.map(String::from),
        tool_version: crate::TOOL_VERSION.to_string(),
        time_unix_nanos,
    })
}

/// A path as the attestation stores it: UTF-8 text, or the error the attestation always gave.
fn utf8_path(path: &Path) -> Result<String> {
    path.to_str().map(String::from).ok_or_else(|| {
        Error::Usage("cannot encode the attestation: path contains invalid UTF-8 characters".into())
    })
}

fn recorded_verdict(verdict: Verdict) -> RecordedVerdict {
    match verdict {
        Verdict::Pass => RecordedVerdict::Pass,
        Verdict::Fail => RecordedVerdict::Fail,
    }
}

/// The gate's report as the attestation stores it.
fn attested_diff(report: &GateReport) -> Result<AttestedDiff> {
    let files = report
        .files
        .iter()
        .map(attested_file)
        .collect::<Result<_>>()?;
    Ok(AttestedDiff {
        verdict: recorded_verdict(report.verdict),
        expected: attested_side(&report.expected),
        observed: attested_side(&report.observed),
        counts: attested_counts(&report.counts),
        files,
        subtrees_skipped: report.subtrees_skipped.clone(),
        notes: report.notes.clone(),
        expectations: report
            .expectations
            .iter()
            .map(attested_expectation)
            .collect(),
    })
}

/// One side of the gate's report as the attestation stores it.
fn attested_side(side: &gate::SideSummary) -> AttestedSide {
    AttestedSide {
        kind: match side.kind {
            gate::SideKind::Folder => AttestedSideKind::Folder,
            gate::SideKind::Seal => AttestedSideKind::Seal,
            gate::SideKind::Packet => AttestedSideKind::Packet,
        },
        label: side.label.clone(),
        packet_tree_sha256: side.packet_tree_sha256,
        files: side.files,
        not_regular: side
            .not_regular
            .iter()
            .map(|(kind, count)| (kind.to_string(), *count))
            .collect(),
        seal: side.seal.as_ref().map(|seal| AttestedSeal {
            sha256: seal.sha256,
            canonical: seal.canonical,
            deviations: seal
                .deviations
                .iter()
                .map(|d| d.name().to_string())
                .collect(),
        }),
    }
}

/// One file of the gate's report as the attestation stores it.
fn attested_file(file: &gate::FileResult) -> Result<AttestedFile> {
    let facts = |file: &gate::SideFile| AttestedFileFacts {
        sha256: file.sha256,
        size: file.size,
        executable: file.executable,
    };
    Ok(AttestedFile {
        path: file.path.clone(),
        status: match file.status {
            "ok" => FileStatus::Ok,
            "fail" => FileStatus::Fail,
            other => {
                return Err(Error::Usage(format!(
                    "cannot encode the attestation: unknown file status {other:?}"
                )))
            }
        },
        classes: file.classes.iter().map(|c| c.name().to_string()).collect(),
        expected: file.expected.as_ref().map(facts),
        observed: file.observed.as_ref().map(facts),
        observed_kind: file.observed_kind.map(String::from),
        first_difference: file
            .first_difference
            .as_ref()
            .map(|first| AttestedFirstDifference {
                offset: first.offset,
                excerpt_offset: first.excerpt_offset,
                expected_hex: first.expected_hex.clone(),
                observed_hex: first.observed_hex.clone(),
                expected_text: first.expected_text.clone(),
                observed_text: first.observed_text.clone(),
            }),
        note: file.note.clone(),
    })
}

/// The gate report's counts as the attestation stores them.
fn attested_counts(counts: &gate::Counts) -> AttestedCounts {
    AttestedCounts {
        files: counts.files,
        ok: counts.ok,
        failed: counts.failed,
        classes: counts
            .classes
            .iter()
            .map(|(class, count)| (class.name().to_string(), *count))
            .collect(),
    }
}

/// One `--expect` check of the gate's report as the attestation stores it.
fn attested_expectation(expectation: &gate::Expectation) -> AttestedExpectation {
    AttestedExpectation {
        relation: match expectation.relation {
            gate::Relation::Equal => Relation::Equal,
            gate::Relation::Differ => Relation::Differ,
        },
        sha256: expectation.sha256,
        actual: expectation.actual,
        holds: expectation.holds,
    }
}

// ---------------------------------------------------------------------------------------------
// The command's ordering around the runner: which store a rerun records into, what it expects,
// and `--ingest` (archive the first run's output, then attest). Kept apart from the runner and
// the attestation format above.

/// The checks of a rerun request that can refuse before anything is opened, run or created: a
/// `--timeout` of 0, and a `--keep` folder that is not a local path or lies inside the store at
/// `store_path`.
///
/// # Errors
///
/// [`Error::Usage`] naming the refused option.
pub fn check_rerun_request(
    store_path: &Path,
    timeout_seconds: Option<u64>,
    keep: Option<&Path>,
) -> Result<()> {
    if timeout_seconds == Some(0) {
        return Err(Error::Usage(
            "--timeout 0 would kill the generator before it starts; give at least 1 second, or \
             leave --timeout out for no limit"
                .into(),
        ));
    }
    if let Some(keep) = keep {
        crate::store::check_local_path(keep, "--keep folder")?;
        crate::store::refuse_inside_store(store_path, keep, "--keep folder")?;
    }
    Ok(())
}

/// The store a rerun records its attestation in, as chosen by [`open_store_for_rerun`].
pub enum RerunStore {
    /// A store this user can write: the attestation is recorded in it.
    Opened(Box<(Store, Catalog)>),
    /// No store: nothing is recorded.
    None,
    /// The default store exists but this user cannot write it: nothing is recorded, and the
    /// caller should say so.
    DefaultReadOnly,
}

/// Choose the store a rerun records in. A PACKET, `--ingest` or a named store (`store_named`:
/// `--store` or `$EVSTORE_STORE`) needs a store this user can write (`store_needed`); otherwise
/// (`--expect` needs no store) the default store at `store_path` is used only if it exists and
/// this user can write it.
///
/// # Errors
///
/// Errors opening a store that is needed ([`Error::Usage`] for one this user cannot write).
pub fn open_store_for_rerun(store_path: &Path, store_needed: bool) -> Result<RerunStore> {
    if store_needed {
        let (store, catalog) = crate::ops::setup::open_for_writing(store_path)?;
        return Ok(RerunStore::Opened(Box::new((store, catalog))));
    }
    if !store_path.exists() {
        return Ok(RerunStore::None);
    }
    let mut store = Store::open(store_path)?;
    match store.check_writable() {
        Ok(()) => {
            let mut catalog = Catalog::open_existing(&store.catalog_path())?;
            crate::ops::markers::attach_log(&mut store, &mut catalog)?;
            Ok(RerunStore::Opened(Box::new((store, catalog))))
        }
        // `check_writable`'s only refusal: the store is read-only for this user.
        Err(Error::Usage(_)) => Ok(RerunStore::DefaultReadOnly),
        Err(other) => Err(other),
    }
}

/// What a rerun of `--expect SHA256` (a packet given by its hash, maybe not stored) expects.
#[derive(Clone, Debug)]
pub struct ExpectedTree {
    /// The stored packet with that packet_tree_sha256, if the store holds one (its files explain
    /// a mismatch).
    pub row: Option<PacketRow>,
    /// The packet_tree_sha256 the output must have.
    pub expected: Sha256Digest,
    /// `SOURCE_DATE_EPOCH` for the run: the given one, else the caller's `$SOURCE_DATE_EPOCH`,
    /// else unset.
    pub source_date_epoch: Option<i64>,
}

/// Parse `--expect SHA256` and settle `SOURCE_DATE_EPOCH` for it (`given`, else the caller's
/// `$SOURCE_DATE_EPOCH`, else unset), and find a stored packet with that hash in `catalog`.
///
/// # Errors
///
/// [`Error::Usage`] for a SHA that is not 64 lowercase hex digits or a `$SOURCE_DATE_EPOCH` that
/// is not an integer; catalog errors.
pub fn expected_tree(
    catalog: Option<&Catalog>,
    hex: &str,
    given: Option<i64>,
) -> Result<ExpectedTree> {
    let expected = Sha256Digest::parse_hex(hex)
        .ok_or_else(|| Error::Usage(format!("--expect {hex:?} is not 64 lowercase hex digits")))?;
    let source_date_epoch = match given {
        Some(epoch) => Some(epoch),
        None => match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(text) => Some(text.trim().parse::<i64>().map_err(|_| {
                Error::Usage(format!("$SOURCE_DATE_EPOCH {text:?} is not an integer"))
            })?),
            Err(_) => None,
        },
    };
    let row = match catalog {
        Some(catalog) => catalog.packets_with_sha256(&expected)?.into_iter().next(),
        None => None,
    };
    Ok(ExpectedTree {
        row,
        expected,
        source_date_epoch,
    })
}

/// What [`rerun_and_record`] does besides running.
#[derive(Clone, Debug, Default)]
pub struct RecordConfig {
    /// Archive the first run's output as packet `NAME.rerun` (or `rerun-<sha prefix>`).
    pub ingest: bool,
    /// Where to report the bytes read while archiving.
    pub progress: Progress,
}

/// A rerun and what was recorded of it.
#[derive(Debug)]
pub struct RecordedRerun {
    /// The runs and the verdict.
    pub report: RerunReport,
    /// The attestation object's id, when a store recorded it.
    pub attestation: Option<Blake3Digest>,
    /// The packet (`NAME@N`) the first run's output was archived as, with `--ingest`.
    pub ingested: Option<String>,
}

/// Run the generator ([`rerun`]) and, with a store, record it: first archive the first run's
/// output (with `--ingest`, when it was hashed), through the handle it was hashed through, then
/// store the attestation, which names the archived packet. `expected_row` is a stored packet
/// with the expected tree (its files explain a mismatch).
///
/// # Errors
///
/// Whatever [`rerun`] and [`attest`] return. An `--ingest` that fails after the runs is returned
/// only after the attestation is stored (the run happened); an interrupted one records nothing.
pub fn rerun_and_record(
    opened: Option<(&Store, &mut Catalog)>,
    expected_row: Option<&PacketRow>,
    config: &RerunConfig,
    record: &RecordConfig,
) -> Result<RecordedRerun> {
    let (store, catalog) = match opened {
        Some((store, catalog)) => (Some(store), Some(catalog)),
        None => (None, None),
    };
    let expected_side = match (store, expected_row) {
        (Some(store), Some(row)) => Some(Side::packet(store, row)?),
        _ => None,
    };
    let (report, folders) = rerun(store, expected_side.as_ref(), config)?;
    let mut ingested = None;
    let mut attestation = None;
    let mut ingest_error = None;
    let mut _ingested_note = None;
    if let (Some(store), Some(catalog)) = (store, catalog) {
        if record.ingest {
            match archive_the_first_output(store, catalog, &report, &folders, config, record)? {
                FirstOutputArchive::NotHashed => {}
                FirstOutputArchive::Archived { label, note } => {
                    _ingested_note = Some(note);
                    ingested = Some(label);
                }
                // The run happened: attest it first, then report the failed ingest.
                FirstOutputArchive::Failed(err) => ingest_error = Some(err),
            }
        }
        let packet_id = config.packet.as_ref().map(|p| p.id);
        match attest(store, catalog, &report, packet_id, ingested.as_deref()) {
            Ok(id) => attestation = Some(id),
            Err(err) => {
                // The archived output stays (the store is append-only): say so, or the user
                // never learns that a packet the error does not name was archived.
                if let Some(label) = &ingested {
                    crate::notice::notice(&format!(
                        "the first run's output was archived as {label} before the attestation \
                         failed; see `evstore runs` for whether the rerun was recorded"
                    ));
                }
                return Err(err);
            }
        }
    }
    if let Some(err) = ingest_error {
        return Err(err);
    }
    Ok(RecordedRerun {
        report,
        attestation,
        ingested,
    })
}

/// What `--ingest` of the first run's output came to.
enum FirstOutputArchive {
    /// The first run's output was not hashed, so there is nothing to archive.
    NotHashed,
    /// Archived and committed as `label` (`NAME@N`); `note` says so if a signal stops the
    /// attestation after it.
    Archived { label: String, note: OnInterrupt },
    /// The ingest failed (not by a signal): the run is attested first, then this is returned.
    Failed(Error),
}

/// Archive the first run's output as packet `NAME.rerun` (or `rerun-<sha prefix>`), when it was
/// hashed: through the handle it was hashed through, never whatever its path names now.
///
/// # Errors
///
/// Only [`Error::Interrupted`]: an interrupted ingest records nothing, so the rerun stops; any
/// other failure is [`FirstOutputArchive::Failed`].
fn archive_the_first_output(
    store: &Store,
    catalog: &mut Catalog,
    report: &RerunReport,
    folders: &RunFolders,
    config: &RerunConfig,
    record: &RecordConfig,
) -> Result<FirstOutputArchive> {
    let first_hashed = report.runs.first().and_then(|r| r.observed_sha256);
    let (Some(_), Some(output)) = (first_hashed, folders.output(1)) else {
        return Ok(FirstOutputArchive::NotHashed);
    };
    let name = match &config.packet {
        Some(row) => format!("{}.rerun", row.record.name),
        None => format!("rerun-{}", &config.expected.to_hex()[..12]),
    };
    let archived = crate::ops::ingest::ingest_dir(
        store,
        catalog,
        output,
        &crate::ops::ingest::IngestConfig {
            name,
            note: Some(format!("output of a rerun expecting {}", config.expected)),
            source_date_epoch: config.source_date_epoch,
            progress: record.progress.clone(),
        },
    )
    .and_then(crate::ops::ingest::IngestOutcome::archived);
    match archived {
        Ok(archived) => {
            let r = &archived.packet.record;
            let label = format!("{}@{}", r.name, r.version);
            // Committed: said if a signal stops the attestation after it.
            let note = on_interrupt(Cleanup::Note(format!(
                "the first run's output was archived as {label} before the signal"
            )));
            Ok(FirstOutputArchive::Archived { label, note })
        }
        // Interrupted: stop, record nothing.
        Err(err @ Error::Interrupted { .. }) => Err(err),
        Err(err) => Ok(FirstOutputArchive::Failed(err)),
    }
}
