//! The library's `ops::verify`, driven directly (no binary): the own-seal rule of `verify` is a
//! library decision, and the binary only renders what the library returns. Each case also runs
//! the binary on the same folder and checks it reports exactly what the library returned.

use std::fs;
use std::path::Path;

use evstore::gate::drift::DriftClass;
use evstore::gate::{GateReport, Verdict};
use evstore::ops::verify::{verify_against_seal, VerifyConfig};

use crate::sandbox::{code, stderr, write_packet, Sandbox};

/// The binary's `--json verify` document and exit code for `args` (storeless).
fn binary_verify(sb: &Sandbox, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["--json", "verify"];
    all.extend_from_slice(args);
    let out = sb.run_storeless(&all);
    let doc = serde_json::from_slice(&out.stdout).expect("one JSON document on stdout");
    (code(&out), doc)
}

/// The failing files of a report, with their drift classes.
fn failures(report: &GateReport) -> Vec<(String, Vec<DriftClass>)> {
    report
        .files
        .iter()
        .filter(|f| !f.is_ok())
        .map(|f| (f.path.clone(), f.classes.clone()))
        .collect()
}

fn sealed_packet(sb: &Sandbox) -> std::path::PathBuf {
    let dir = write_packet(sb, "pkt");
    evstore::gate::seal_folder(&dir, &evstore::gate::SealConfig::default())
        .expect("seal the packet");
    dir
}

fn same_as_binary(sb: &Sandbox, dir: &Path, extra: &[&str], report: &GateReport) {
    let dir_text = dir.to_str().expect("UTF-8 temp path");
    let mut args = vec![dir_text];
    args.extend_from_slice(extra);
    let (exit, doc) = binary_verify(sb, &args);
    let expected_exit = if report.verdict == Verdict::Pass {
        0
    } else {
        1
    };
    assert_eq!(exit, expected_exit);
    assert_eq!(
        doc,
        serde_json::to_value(report).expect("encode the report")
    );
}

#[test]
fn ops_verify_passes_a_folder_against_its_own_seal() {
    let sb = Sandbox::new();
    let dir = sealed_packet(&sb);
    let report = verify_against_seal(&dir, &VerifyConfig::default()).expect("verify");
    assert_eq!(report.verdict, Verdict::Pass);
    assert_eq!(failures(&report), vec![]);
    same_as_binary(&sb, &dir, &[], &report);
}

#[test]
fn ops_verify_fails_one_drifted_byte_with_its_drift_class() {
    let sb = Sandbox::new();
    let dir = sealed_packet(&sb);
    let original = write_packet(&sb, "original");
    // One byte more: a carriage return before the (only) line end.
    let drifted = "na\u{ef}ve \u{2014} r\u{e9}sum\u{e9}.md";
    fs::write(dir.join(drifted), "caf\u{e9}\r\n").expect("drift");
    // Against the seal alone only the SHA-256 is known: the file's content changed.
    let report = verify_against_seal(&dir, &VerifyConfig::default()).expect("verify");
    assert_eq!(report.verdict, Verdict::Fail);
    assert_eq!(
        failures(&report),
        vec![(drifted.to_string(), vec![DriftClass::Content])]
    );
    same_as_binary(&sb, &dir, &[], &report);
    // With a copy of the sealed bytes, the change is diagnosed.
    let config = VerifyConfig {
        original: Some(original.clone()),
        ..VerifyConfig::default()
    };
    let report = verify_against_seal(&dir, &config).expect("verify");
    assert_eq!(report.verdict, Verdict::Fail);
    assert_eq!(
        failures(&report),
        vec![(drifted.to_string(), vec![DriftClass::Crlf])]
    );
    same_as_binary(
        &sb,
        &dir,
        &["--original", original.to_str().expect("UTF-8 temp path")],
        &report,
    );
}

#[test]
fn ops_verify_without_a_seal_is_the_error_the_binary_gives() {
    let sb = Sandbox::new();
    let dir = write_packet(&sb, "pkt");
    let err = verify_against_seal(&dir, &VerifyConfig::default()).expect_err("no seal");
    assert!(matches!(err, evstore::Error::Usage(_)), "{err:?}");
    assert!(
        err.to_string().contains("has no HASH_MANIFEST.txt"),
        "{err}"
    );
    let out = sb.run_storeless(&["verify", dir.to_str().expect("UTF-8 temp path")]);
    assert_eq!(code(&out), 2);
    assert_eq!(stderr(&out), format!("evstore: error: {err}\n"));
}

#[test]
fn ops_verify_with_a_seal_file_also_holds_the_folder_to_its_own_different_seal() {
    let sb = Sandbox::new();
    let dir = sealed_packet(&sb);
    let seal_file = sb.path("elsewhere.txt");
    fs::copy(dir.join("HASH_MANIFEST.txt"), &seal_file).expect("copy the seal");
    // The folder's own seal goes stale: it no longer lists one of the files.
    let own = fs::read_to_string(dir.join("HASH_MANIFEST.txt")).expect("read the seal");
    let stale: String = own
        .lines()
        .filter(|line| !line.ends_with("logs/run.log"))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_ne!(stale, own);
    fs::write(dir.join("HASH_MANIFEST.txt"), stale).expect("write the stale seal");
    let config = VerifyConfig {
        seal: Some(seal_file.clone()),
        ..VerifyConfig::default()
    };
    let report = verify_against_seal(&dir, &config).expect("verify");
    assert_eq!(report.verdict, Verdict::Fail);
    let failed: Vec<String> = failures(&report)
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    assert_eq!(failed, vec!["HASH_MANIFEST.txt".to_string()]);
    same_as_binary(
        &sb,
        &dir,
        &["--seal", seal_file.to_str().expect("UTF-8 temp path")],
        &report,
    );
    // The same seal file as the folder's own seal: no second check, a pass.
    fs::copy(&seal_file, dir.join("HASH_MANIFEST.txt")).expect("restore the seal");
    let report = verify_against_seal(&dir, &config).expect("verify");
    assert_eq!(report.verdict, Verdict::Pass);
}
