//! Progress reporting: long commands report every byte they process, once, to the sink the
//! caller gave, and finish every phase they begin (on success and on failure).

use std::sync::{Arc, Mutex};

use evstore::catalog::Catalog;
use evstore::gate::Side;
use evstore::ops::export::export;
use evstore::ops::fsck::fsck;
use evstore::ops::ingest::{ingest, IngestConfig, IngestOutcome};
use evstore::progress::{Progress, ProgressSink};
use evstore::store::Store;

use crate::sandbox::{code, stderr, Sandbox};

/// Records each phase as (name, announced total, bytes counted, finished).
#[derive(Default)]
struct Recorder {
    phases: Mutex<Vec<(String, u64, u64, bool)>>,
}

impl ProgressSink for Recorder {
    fn begin(&self, phase: &str, total_bytes: u64) {
        let mut phases = self.phases.lock().unwrap();
        phases.push((phase.to_string(), total_bytes, 0, false));
    }
    fn advance(&self, bytes: u64) {
        let mut phases = self.phases.lock().unwrap();
        let current = phases.last_mut().expect("advance before begin");
        assert!(!current.3, "advance after finish");
        current.2 += bytes;
    }
    fn finish(&self) {
        let mut phases = self.phases.lock().unwrap();
        let current = phases.last_mut().expect("finish before begin");
        assert!(!current.3, "finished twice");
        current.3 = true;
    }
}

impl Recorder {
    fn take(&self) -> Vec<(String, u64, u64, bool)> {
        std::mem::take(&mut *self.phases.lock().unwrap())
    }
}

/// Open the sandbox's store through the library, with an ingest config for packet `p`.
fn open_store(sb: &Sandbox, progress: &Progress) -> (Store, Catalog, IngestConfig) {
    assert_eq!(sb.run(&["init"]).status.code(), Some(0));
    let store = Store::open(&sb.store()).unwrap();
    let catalog = Catalog::open_existing(&store.catalog_path()).unwrap();
    let config = IngestConfig {
        name: "p".into(),
        note: None,
        source_date_epoch: Some(0),
        progress: progress.clone(),
    };
    (store, catalog, config)
}

#[test]
fn ingest_verify_export_and_fsck_report_every_byte_once() {
    let sb = Sandbox::new();
    // Small files (read whole) and one file above the small-file limit (read in chunks).
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    sb.write("p/big.bin", &big);
    for i in 0..5 {
        sb.write(
            &format!("p/logs/{i}.txt"),
            format!("line {i}\n").repeat(i + 1),
        );
    }
    let packet_bytes: u64 = big.len() as u64 + (0..5).map(|i| 7 * (i + 1)).sum::<u64>();
    let recorder = Arc::new(Recorder::default());
    let progress = Progress::to(recorder.clone());
    let (store, mut catalog, config) = open_store(&sb, &progress);
    let report = ingest(&store, &mut catalog, &sb.path("p"), &config)
        .and_then(IngestOutcome::archived)
        .unwrap();
    assert_eq!(
        recorder.take(),
        vec![("ingest".to_string(), packet_bytes, packet_bytes, true)]
    );

    Side::folder(&sb.path("p"), &progress).unwrap();
    assert_eq!(
        recorder.take(),
        vec![("verify".to_string(), packet_bytes, packet_bytes, true)]
    );

    export(&store, &report.packet, &sb.path("out"), &progress).unwrap();
    assert_eq!(
        recorder.take(),
        vec![("export".to_string(), packet_bytes, packet_bytes, true)]
    );

    std::fs::create_dir(sb.path("kb")).unwrap();
    let mirror_config = evstore::ops::mirror::MirrorConfig {
        rel_path: None,
        dedup: evstore::ops::mirror::Dedup::Copy,
        progress: progress.clone(),
    };
    evstore::ops::mirror::mirror(
        &store,
        &mut catalog,
        &report.packet,
        &sb.path("kb"),
        &mirror_config,
    )
    .unwrap();
    assert_eq!(
        recorder.take(),
        vec![("mirror".to_string(), packet_bytes, packet_bytes, true)]
    );

    let checked = fsck(&store, &catalog, &progress).unwrap();
    assert!(checked.problems.is_empty(), "{:?}", checked.problems);
    let phases = recorder.take();
    assert_eq!(phases.len(), 1);
    // fsck counts stored bytes: here every object is a loose file (fewer than a pack's worth).
    let stored_on_disk: u64 = walkdir::WalkDir::new(sb.store().join("objects"))
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(stored_on_disk > 0);
    assert_eq!(
        phases,
        vec![("fsck".to_string(), stored_on_disk, stored_on_disk, true)]
    );
}

/// A failing ingest still finishes its phase, so a terminal bar is cleared before the error.
#[test]
fn ingest_that_fails_finishes_its_progress_phase() {
    let sb = Sandbox::new();
    sb.write("p/a.txt", "a\n");
    sb.write(
        "p/HASH_MANIFEST.txt",
        format!("{}  a.txt\n", "0".repeat(64)),
    );
    let recorder = Arc::new(Recorder::default());
    let (store, mut catalog, config) = open_store(&sb, &Progress::to(recorder.clone()));
    let outcome = ingest(&store, &mut catalog, &sb.path("p"), &config).unwrap();
    let IngestOutcome::Refused(refusal) = outcome else {
        panic!("a folder that does not match its seal was archived: {outcome:?}");
    };
    assert!(
        refusal.message().contains("does not match its seal"),
        "{}",
        refusal.message()
    );
    assert_eq!(recorder.take(), vec![("ingest".to_string(), 2, 2, true)]);
}

/// Regression: `EVSTORE_NO_PROGRESS=1` (the usual CI spelling) made every command a usage error,
/// because the variable was parsed as a strict `true`/`false`.
#[test]
fn evstore_no_progress_accepts_the_usual_spellings() {
    let sb = Sandbox::new();
    sb.write("p/a.txt", "a\n");
    for value in ["1", "yes", "true", "on", "0", "false", "off", ""] {
        let out = sb
            .command_storeless()
            .args(["hash", "p"])
            .env("EVSTORE_NO_PROGRESS", value)
            .output()
            .unwrap();
        assert_eq!(
            code(&out),
            0,
            "EVSTORE_NO_PROGRESS={value:?}: {}",
            stderr(&out)
        );
    }
}
