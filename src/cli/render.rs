//! Output: every command's report as text lines or as one JSON document on stdout, and the
//! error document. One renderer for a [`GateReport`] serves `verify`, `diff` and `rerun`.
//!
//! **Architecture Invariant:** rendering decides nothing: it turns a report into text or JSON and
//! never opens the store, the catalog or a file. JSON documents are built from the reports'
//! `Serialize` implementations (keys sorted); a report that cannot be encoded is an error, never
//! a `null` document.

use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;
use serde_json::{json, Value};

use crate::catalog::{EventRow, PacketRow};
use crate::error::{Error, Result};
use crate::gate::{self, GateReport, SealAction, SealReport, Verdict};
use crate::ops::export::ExportReport;
use crate::ops::fsck::FsckReport;
use crate::ops::kb::{GcStagingReport, KbReport};
use crate::ops::mirror::{MirrorAction, MirrorReport};
use crate::ops::read::{PacketContents, PacketFile, PacketManifest, RunEntry};
use crate::ops::reindex::ReindexReport;
use crate::ops::rerun::RecordedRerun;
use crate::ops::setup::IngestFolderReport;
use crate::ops::verify::HashReport;
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

/// A report as a JSON value (object keys sorted). A report that cannot be encoded is a bug.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    serde_json::to_value(value)
        .map_err(|err| Error::Internal(format!("cannot encode the report: {err}")))
}

/// Print one JSON document on stdout.
pub(crate) fn print_json(value: &Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
    say!("{text}");
}

/// Print a report as one JSON document on stdout.
fn print_report<T: Serialize + ?Sized>(report: &T) -> Result<()> {
    print_json(&to_json(report)?);
    Ok(())
}

/// `log checkpoint`: the checkpoint's note text; with `--json`, `{"origin", "tree_size",
/// "root"}` (root in hex).
pub(crate) fn log_checkpoint(
    json: bool,
    checkpoint: &crate::ops::transparency::Checkpoint,
    signed: Option<&str>,
) -> Result<()> {
    if json {
        let mut value = to_json(checkpoint)?;
        value["signed_note"] = signed.map_or(Value::Null, |note| Value::String(note.into()));
        print_json(&value);
        Ok(())
    } else {
        let text = match signed {
            Some(note) => note.to_string(),
            None => checkpoint.text()?,
        };
        write_text(&text)
    }
}

/// A report as one JSON document with its `verdict` (`PASS` or `FAIL`) added.
fn print_report_with_verdict<T: serde::Serialize>(report: &T, verdict: &str) -> Result<()> {
    let mut value = to_json(report)?;
    value["verdict"] = json!(verdict);
    print_json(&value);
    Ok(())
}

/// Text exactly as given on stdout (a note, a proof: formats whose bytes matter).
fn write_text(text: &str) -> Result<()> {
    write_stdout(|out| {
        out.write_all(text.as_bytes())
            .map_err(|e| Error::io("<stdout>", "cannot write", e))
    })
}

/// `log --verify-from`: each check, then `PASS` or `FAIL` (`--json`: the report and a
/// `verdict`).
pub(crate) fn log_verify_from(
    json: bool,
    report: &crate::ops::checkpoints::VerifyFromReport,
) -> Result<()> {
    let verdict = if report.passed() { "PASS" } else { "FAIL" };
    if json {
        return print_report_with_verdict(report, verdict);
    }
    say!(
        "old checkpoint: {} at size {} with root {}",
        report.checkpoint.origin,
        report.checkpoint.tree_size,
        report.checkpoint.root
    );
    say!("signature: {}", report.signature);
    say!(
        "log now: {} with root {}",
        count(report.tree_size, "event"),
        report.root
    );
    for problem in &report.problems {
        say!("problem: {problem}");
    }
    if report.passed() {
        say!(
            "PASS: the log now only appended to the log of the checkpoint ({} added; the \
             consistency proof has {})",
            count(report.tree_size - report.checkpoint.tree_size, "event"),
            match report.proof.len() {
                1 => "1 hash".to_string(),
                n => format!("{n} hashes"),
            }
        );
    } else {
        say!("FAIL: the log is not an append-only extension of the checkpoint");
    }
    Ok(())
}

/// `log keep-checkpoints`: what was configured and the checkpoint kept now.
pub(crate) fn keep_checkpoints(
    json: bool,
    configured: &crate::ops::checkpoints::KeepConfigured,
) -> Result<()> {
    if json {
        return print_report(configured);
    }
    if configured.store_configured_now {
        say!(
            "the store now keeps a checkpoint signed by {} after every change",
            configured.verifier_key
        );
    } else {
        say!(
            "the store keeps checkpoints signed by {} already",
            configured.verifier_key
        );
    }
    say!(
        "this machine's signer key file is recorded in {}",
        configured.signer_recorded_in.escaped()
    );
    match &configured.kept {
        Some(kept) => say!(
            "kept the checkpoint of {} (root {}) at {}",
            count(kept.tree_size, "event"),
            kept.root,
            kept.key
        ),
        None => say!("the checkpoint of the log as it is now was kept already"),
    }
    Ok(())
}

/// `key generate`: the verifier key on stdout (`--json`: `{"name", "key_file",
/// "verifier_key"}`).
pub(crate) fn key_generated(json: bool, name: &str, key_file: &Path, verifier: &str) {
    if json {
        print_json(&json!({
            "name": name,
            "key_file": key_file.escaped().to_string(),
            "verifier_key": verifier,
        }));
    } else {
        say!("{verifier}");
    }
}

/// `log prove-*`: the proof's JSON with `--json`; as text, one `field: value` line per number
/// and root, then one line per proof hash.
pub(crate) fn log_proof<T: Serialize>(json: bool, proof: &T, hashes: &[String]) -> Result<()> {
    if json {
        return print_report(proof);
    }
    let value = to_json(proof)?;
    if let Some(fields) = value.as_object() {
        for (field, value) in fields {
            if field != "proof" {
                let shown = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_string);
                say!("{field}: {shown}");
            }
        }
    }
    say!("proof: {} hashes", hashes.len());
    for hash in hashes {
        say!("  {hash}");
    }
    Ok(())
}

/// The result of `proof check-*`: `PASS  WHAT` or `FAIL  CHECK: REASON` on
/// stdout; with `--json`, `{"check": CHECK, "verdict": "PASS"|"FAIL", "detail": TEXT}`.
pub(crate) fn proof_check(json: bool, check: &str, held: &std::result::Result<String, String>) {
    let (verdict, detail) = match held {
        Ok(what) => ("PASS", what.clone()),
        Err(failure) => (
            "FAIL",
            format!("the {check} proof does not hold: {failure}"),
        ),
    };
    if json {
        print_json(&json!({"check": check, "verdict": verdict, "detail": detail}));
    } else {
        say!("{verdict}  {detail}");
    }
}

// File proofs (FORMAT.md §7h; `ops::file_proof`).

/// `prove`: the proof's JSON (always JSON: it is a file format).
pub(crate) fn file_proof(proof: &crate::ops::file_proof::FileProof) -> Result<()> {
    let text = proof.to_json()?;
    write_text(&text)
}

/// `proof check-file`: one line per check, then `PASS: …` or `FAIL: …` (`--json`: the report
/// and a `verdict`).
pub(crate) fn file_proof_check(
    json: bool,
    report: &crate::ops::file_proof::FileProofReport,
) -> Result<()> {
    use crate::ops::file_proof::CheckResult;
    let verdict = if report.passed() { "PASS" } else { "FAIL" };
    if json {
        return print_report_with_verdict(report, verdict);
    }
    for check in &report.checks {
        let result = match check.result {
            CheckResult::Pass => "ok",
            CheckResult::Fail => "FAILED",
            CheckResult::NotChecked => "not checked",
            CheckResult::Skipped => "skipped",
        };
        say!("{:<10}  {:<11} {}", check.check, result, check.detail);
    }
    if report.passed() {
        let not_checked: Vec<&str> = report.not_checked().map(|check| check.check).collect();
        say!(
            "PASS: {:?} (SHA-256 {}) is a file of {}, whose ingest event is in the log the \
             checkpoint names{}",
            report.path,
            report.sha256,
            report.packet,
            if not_checked.is_empty() {
                String::new()
            } else {
                format!("; not checked: {}", not_checked.join(", "))
            }
        );
    } else {
        let failed: Vec<&str> = report.failed().map(|check| check.check).collect();
        say!(
            "FAIL: the proof does not hold: {} failed",
            failed.join(", ")
        );
    }
    Ok(())
}

/// The error document of `--json`: `{"error": {"class": CLASS, "message": MESSAGE}}`.
pub(crate) fn print_error_json(class: &str, message: &str) {
    print_json(&json!({"error": {"class": class, "message": message}}));
}

/// Write bytes to stdout as they are (a manifest, a file's bytes), buffered.
pub(crate) fn write_stdout(write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    write(&mut out)?;
    out.flush()
        .map_err(|e| Error::io("<stdout>", "cannot write", e))
}

pub(crate) fn init(json: bool, store_root: &Path) {
    if json {
        print_json(&json!({"store": store_root.escaped().to_string()}));
    } else {
        say!(
            "initialised empty evstore store in {}",
            store_root.escaped()
        );
    }
}

pub(crate) fn ingest(json: bool, folder_report: &IngestFolderReport) {
    let report = &folder_report.ingest;
    let latest_version = folder_report.latest_version;
    let record = &report.packet.record;
    let label = format!("{}@{}", record.name, record.version);
    if json {
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
            "seal_signed_by": report.seal_signed_by,
        }));
        return;
    }
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
    if let Some(fingerprint) = &report.seal_signed_by {
        say!("seal signed by      {fingerprint} (HASH_MANIFEST.txt.sig kept in the store)");
    }
}

/// `hash`: `quiet` prints only the packet_tree_sha256 (and failed checks on stderr).
pub(crate) fn hash(json: bool, quiet: bool, dir: &Path, report: &HashReport) -> Result<()> {
    let packet = &report.packet;
    let actual = packet.packet_tree_sha256();
    let checks = &report.expectations;
    let holds = report.holds();
    if json {
        let mut value = json!({
            "packet_tree_sha256": actual,
            "tree": packet.tree.root,
            "files": packet.files.len(),
            "bytes": packet.total_bytes(),
        });
        if !checks.is_empty() {
            value["expectations"] = to_json(checks)?;
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
        for check in checks {
            let verdict = if check.holds { "PASS" } else { "FAIL" };
            say!("{verdict}: {}", check.describe());
        }
    }
    Ok(())
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

pub(crate) fn ls(json: bool, packets: &[PacketRow]) {
    if json {
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
}

pub(crate) fn show(json: bool, contents: &PacketContents) {
    let row = &contents.row;
    let files = &contents.files;
    if json {
        let mut value = packet_json(row);
        value["seal_signer"] = json!(row.record.seal_signer);
        value["seal_signed_by"] = json!(contents.seal_signed_by);
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
        return;
    }
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
    if let Some(signer) = &r.seal_signer {
        say!("seal signer         {signer} (in the record: checked at ingest)");
    }
    for fingerprint in &contents.seal_signed_by {
        say!("seal signed by      {fingerprint}");
    }
    say!("");
    for f in files {
        let mode = if f.meta.executable { "755" } else { "644" };
        say!(
            "{mode} {:>12}  {}  {}",
            f.meta.size,
            f.meta.sha256,
            f.rel_path
        );
    }
}

pub(crate) fn manifest(json: bool, manifest: &PacketManifest) -> Result<()> {
    let record = &manifest.record;
    if json {
        print_json(&json!({
            "packet": format!("{}@{}", record.name, record.version),
            "packet_tree_sha256": record.packet_tree_sha256,
            "manifest": manifest.text,
        }));
        Ok(())
    } else {
        let mut out = io::stdout().lock();
        out.write_all(manifest.text.as_bytes())
            .map_err(|e| Error::io("<stdout>", "cannot write", e))
    }
}

/// `cat --json`: the file's metadata, after its bytes were verified.
pub(crate) fn cat_json(found: &PacketFile) {
    let (record, file) = (&found.record, &found.file);
    print_json(&json!({
        "packet": format!("{}@{}", record.name, record.version),
        "path": file.rel_path,
        "size": file.meta.size,
        "executable": file.meta.executable,
        "sha256": file.meta.sha256,
        "blake3": file.meta.blake3,
        "verified": true,
    }));
}

pub(crate) fn export(json: bool, label: &str, dest: &Path, report: &ExportReport) {
    if json {
        print_json(&json!({
            "packet": label,
            "dest": dest.escaped().to_string(),
            "files": report.files,
            "bytes": report.bytes,
            "packet_tree_sha256": report.packet_tree_sha256,
            "seal_signed_by": report.seal_signed_by,
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
        if let Some(fingerprint) = &report.seal_signed_by {
            say!("seal signed by      {fingerprint} (HASH_MANIFEST.txt.sig written)");
        }
    }
}

pub(crate) fn log(json: bool, events: &[EventRow]) -> Result<()> {
    if json {
        let mut list = Vec::with_capacity(events.len());
        for e in events {
            let mut value = to_json(e)?;
            value["time"] = json!(rfc3339_nanos(e.time_unix_nanos));
            list.push(value);
        }
        print_json(&json!({ "events": list }));
    } else {
        // The kind column is as wide as the longest kind (`kb-verify`), so subjects line up.
        let kind_width = events.iter().map(|e| e.kind.len()).max().unwrap_or(0);
        for e in events {
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
    Ok(())
}

pub(crate) fn fsck(json: bool, report: &FsckReport) -> Result<()> {
    let verdict = if report.problems.is_empty() {
        "PASS"
    } else {
        "FAIL"
    };
    if json {
        return print_report_with_verdict(report, verdict);
    }
    for p in &report.problems {
        say!("problem: {}: {}", p.subject, p.reason);
    }
    for n in &report.notes {
        say!("note: {n}");
    }
    say!(
        "{verdict}: {}; checked {} ({}), {}, {}; log root {}{}",
        count(report.problems.len() as u64, "problem"),
        count(report.objects_checked, "object"),
        count(report.bytes_checked, "byte"),
        count(report.packets_checked, "packet"),
        count(report.events_checked, "event"),
        report.log_root,
        match report.checkpoints_checked {
            0 => String::new(),
            n => format!(" ({} checked against it)", count(n, "kept checkpoint")),
        }
    );
    Ok(())
}

pub(crate) fn reindex(json: bool, report: &ReindexReport) -> Result<()> {
    if json {
        return print_report(report);
    }
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
    if report.mirrors_without_list > 0 {
        say!(
            "note: {} recorded before mirror lists were stored cannot be rebuilt from the store \
             (their events name no mirror list); the KB's seals still verify them",
            count(report.mirrors_without_list, "mirror")
        );
    }
    if report.mirrors > 0 {
        say!(
            "rebuilt {} from their mirror lists",
            count(report.mirrors, "mirror")
        );
    }
    say!(
        "reindexed {} and {} from {}",
        count(report.packets, "packet"),
        count(report.runs, "rerun"),
        count(report.objects, "object")
    );
    Ok(())
}

/// `forget`: each forgotten item with the sequence number of its `forget` event.
pub(crate) fn forget(json: bool, forgotten: &[(crate::catalog::LostItem, EventRow)]) -> Result<()> {
    if json {
        let mut items = Vec::with_capacity(forgotten.len());
        for (lost, event) in forgotten {
            items.push(json!({ "forgotten": to_json(lost)?, "event": event.seq }));
        }
        let first = match forgotten.first() {
            Some((lost, _)) => to_json(lost)?,
            None => Value::Null,
        };
        print_json(&json!({
            "forgotten": first,
            "event": forgotten.first().map(|(_, event)| event.seq),
            "all": items,
        }));
    } else {
        for (lost, event) in forgotten {
            say!(
                "forgot {} {} ({}): recorded as event {} with the reason given",
                lost.kind,
                lost.label,
                lost.id,
                event.seq
            );
        }
    }
    Ok(())
}

pub(crate) fn seal(json: bool, dir: &Path, report: &SealReport) -> Result<()> {
    if json {
        return print_report(report);
    }
    let what = match report.action {
        SealAction::Written => "sealed",
        SealAction::Unchanged => "already sealed (same seal; nothing written)",
        SealAction::Replaced => "replaced the seal of",
    };
    say!("{what} {} ({})", dir.escaped(), count(report.files, "file"));
    say!("seal                {}", report.seal.escaped());
    say!("packet_tree_sha256  {}", report.packet_tree_sha256);
    if let Some(signature) = &report.signature {
        let what = match signature.action {
            SealAction::Written => "written",
            SealAction::Unchanged => "unchanged (the same signature was there)",
            SealAction::Replaced => "replaced",
        };
        say!("signature           {} ({what})", signature.file.escaped());
        say!(
            "signed by           {} (namespace {})",
            signature.key_fingerprint,
            signature.namespace
        );
    }
    Ok(())
}

/// How much of a [`GateReport`] the text form shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GateReportStyle {
    /// `verify` and `diff`: each failing file with its note and where its first difference is
    /// shown from, then notes, expectations, both sides and the verdict line.
    Full,
    /// Inside `rerun`'s report: each failing file with its first difference, and the verdict
    /// line.
    Brief,
}

/// The one text renderer of a [`GateReport`], as lines.
fn gate_report_lines(report: &GateReport, style: GateReportStyle) -> Vec<String> {
    let full = style == GateReportStyle::Full;
    let mut lines = Vec::new();
    for file in report.files.iter().filter(|f| !f.is_ok()) {
        let classes: Vec<&str> = file.classes.iter().map(|c| c.name()).collect();
        lines.push(format!("FAIL  {}  [{}]", file.path, classes.join(", ")));
        if let (true, Some(note)) = (full, &file.note) {
            lines.push(format!("      {note}"));
        }
        if let Some(diff) = &file.first_difference {
            lines.push(if full {
                format!(
                    "      first difference at byte {}; from byte {}:",
                    diff.offset, diff.excerpt_offset
                )
            } else {
                format!("      first difference at byte {}", diff.offset)
            });
            lines.push(format!("        expected \"{}\"", diff.expected_text));
            lines.push(format!("        observed \"{}\"", diff.observed_text));
        }
    }
    if full {
        for note in &report.notes {
            lines.push(format!("note: {note}"));
        }
        for check in &report.expectations {
            let verdict = if check.holds { "PASS" } else { "FAIL" };
            lines.push(format!("{verdict}: {}", check.describe()));
        }
        if let Some(check) = &report.signature {
            lines.push(check.describe());
        }
        for (role, side) in [
            ("expected", &report.expected),
            ("observed", &report.observed),
        ] {
            lines.push(format!(
                "{role}  {}  {} ({})",
                side_tree_hash(side),
                side.label,
                kind_name(side.kind)
            ));
        }
    }
    lines.push(report.verdict_line());
    lines
}

/// `verify` and `diff`: the gate report, in full.
pub(crate) fn gate_report(json: bool, report: &GateReport) -> Result<()> {
    if json {
        return print_report(report);
    }
    for line in gate_report_lines(report, GateReportStyle::Full) {
        say!("{line}");
    }
    Ok(())
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

pub(crate) fn mirror(json: bool, report: &MirrorReport) -> Result<()> {
    if json {
        return print_report(report);
    }
    let dest = report.kb.join(&report.rel_path);
    match report.action {
        MirrorAction::Published => say!(
            "mirrored {} to {} ({} listed: {} copied, {} hard-linked, {} referenced)",
            report.packet,
            dest.escaped(),
            count(report.files_listed, "file"),
            report.files_copied,
            report.files_hardlinked,
            report.files_referenced
        ),
        MirrorAction::Unchanged => say!(
            "{} is already mirrored at {} (verified; nothing written)",
            report.packet,
            dest.escaped()
        ),
    }
    for file in &report.deduplicated {
        say!("  {} {} -> {}", file.stored_as, file.path, file.kb_path);
    }
    say!("packet_tree_sha256  {}", report.packet_tree_sha256);
    if let Some(fingerprint) = &report.seal_signed_by {
        say!("seal signed by      {fingerprint} (HASH_MANIFEST.txt.sig written)");
    }
    Ok(())
}

pub(crate) fn kb_verify(json: bool, report: &KbReport) -> Result<()> {
    if json {
        return print_report(report);
    }
    let verdict = match report.verdict {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
    };
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
                        let classes: Vec<&str> = file.classes.iter().map(|c| c.name()).collect();
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
    Ok(())
}

pub(crate) fn rerun(json: bool, recorded: &RecordedRerun) -> Result<()> {
    let report = &recorded.report;
    if json {
        let mut value = to_json(report)?;
        value["attestation"] = json!(recorded.attestation);
        value["ingested"] = json!(recorded.ingested);
        print_json(&value);
        return Ok(());
    }
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
        for line in gate_report_lines(diff, GateReportStyle::Brief) {
            say!("{line}");
        }
    }
    for reason in &report.reasons {
        say!("reason: {reason}");
    }
    if let Some(kept) = &report.kept {
        say!("kept the first run's output in {}", kept.escaped());
    }
    if let Some(label) = &recorded.ingested {
        say!("archived the first run's output as {label}");
    }
    if let Some(id) = &recorded.attestation {
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
    Ok(())
}

pub(crate) fn runs(json: bool, packet_label: Option<&str>, runs: &[RunEntry]) {
    if json {
        let list: Vec<Value> = runs
            .iter()
            .map(|entry| {
                let r = &entry.row;
                json!({
                    "id": r.id,
                    "verdict": r.verdict,
                    "expected_sha256": r.expected_sha256,
                    "attestation": r.attestation,
                    "time_unix_nanos": r.time_unix_nanos,
                    "time": rfc3339_nanos(r.time_unix_nanos),
                    "summary": entry.summary,
                })
            })
            .collect();
        print_json(&json!({ "packet": packet_label, "runs": list }));
    } else if runs.is_empty() {
        say!("no reruns recorded yet; run one with `evstore rerun PACKET -- CMD`");
    } else {
        for entry in runs {
            let (r, summary) = (&entry.row, &entry.summary);
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
}

pub(crate) fn kb_gc_staging(json: bool, report: &GcStagingReport) -> Result<()> {
    if json {
        return print_report(report);
    }
    for name in &report.left_alone {
        say!("left alone (not a mirror's staging folder): {name}");
    }
    say!(
        "removed {} from {}",
        count(report.removed.len() as u64, "staging folder"),
        report.staging.escaped()
    );
    Ok(())
}

pub(crate) fn gc_temp(json: bool, report: &crate::store::GcTempReport, tmp: &Path) -> Result<()> {
    if json {
        return print_report(report);
    }
    say!(
        "removed {}, {}, from {}",
        count(report.removed, "temp file"),
        count(report.bytes, "byte"),
        tmp.escaped()
    );
    Ok(())
}

/// A stored `u64` time in nanoseconds as the `i64` the time formatting takes (every time evstore
/// writes fits; a larger one is shown as the largest).
fn nanos_i64(nanos: u64) -> i64 {
    i64::try_from(nanos).unwrap_or(i64::MAX)
}

/// `runs --show RUN [--export FILE]`: the run, its statement's subject and its signatures.
pub(crate) fn run_show(
    json: bool,
    entry: &RunEntry,
    attestation: &crate::digest::Blake3Digest,
    envelope: &crate::format::dsse::Envelope,
    exported: Option<&Path>,
) -> Result<()> {
    let statement = envelope
        .statement()
        .map_err(|reason| Error::corrupt(format!("attestation {attestation}"), reason))?;
    let keyids: Vec<&str> = envelope
        .signatures
        .iter()
        .map(|s| s.keyid.as_str())
        .collect();
    if json {
        print_json(&json!({
            "id": entry.row.id,
            "attestation": attestation,
            "verdict": entry.row.verdict,
            "subject": { "name": statement.subject_name, "sha256": statement.subject_sha256 },
            "predicate_type": crate::format::dsse::RERUN_PREDICATE_TYPE,
            "signed_by": keyids,
            "exported": exported.map(|p| p.escaped().to_string()),
            "predicate": statement.predicate,
        }));
        return Ok(());
    }
    say!("run                 {}", entry.row.id);
    say!("attestation         {attestation}");
    say!("verdict             {}", entry.row.verdict);
    say!(
        "subject             {} (sha256 {})",
        statement.subject_name,
        statement.subject_sha256
    );
    say!("command             {}", entry.summary["command"]);
    say!(
        "time                {}",
        rfc3339_nanos(entry.row.time_unix_nanos)
    );
    if keyids.is_empty() {
        say!("signed by           nobody (sign with `rerun --sign KEY`)");
    }
    for keyid in keyids {
        say!("signed by           {keyid}");
    }
    if let Some(file) = exported {
        say!(
            "exported            {} (DSSE, in-toto Statement v1)",
            file.escaped()
        );
    }
    Ok(())
}

/// `attestation verify`.
pub(crate) fn attestation_verify(
    json: bool,
    check: &crate::ops::attest::EnvelopeCheck,
) -> Result<()> {
    if json {
        return print_report(check);
    }
    say!(
        "signature           {} ({})",
        if check.signature_valid {
            "valid"
        } else {
            "FAIL"
        },
        check.key_fingerprint
    );
    say!(
        "subject             {} (sha256 {})",
        check.subject,
        check.subject_sha256
    );
    if let Some(sha) = &check.packet_tree_sha256 {
        say!("packet folder       packet_tree_sha256 {sha}");
    }
    say!("attested rerun      {}", check.attested_verdict);
    for reason in &check.reasons {
        say!("FAIL: {reason}");
    }
    if check.verdict == "PASS" {
        say!(
            "PASS: {} is signed by {} and attests a rerun that reproduced {}",
            check.file.escaped(),
            check.key_fingerprint,
            check.subject
        );
    } else {
        say!("FAIL: {}", check.file.escaped());
    }
    Ok(())
}
