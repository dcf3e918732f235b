//! The golden transcript: the text and `--json` outputs (and exit codes) of `hash`, `ingest`,
//! `verify`, `diff`, `mirror`, `kb verify` and `rerun` on `docs/example-packet` and on a drifted
//! copy of it, as `tests/golden/outputs.sh` prints them for the binary under test, compared byte
//! for byte with the recorded transcript.
//!
//! `tests/golden/before-layout.txt` is the transcript of the binary from before the layout change
//! of issue 13; `tests/golden/after-layout.txt`, when it exists, is that record with the changes
//! the issue asks for, and then it is the one compared. The script masks what differs from run to
//! run (times, durations, record ids, the repository's and the work folder's paths), so the
//! transcript is the same in any checkout and any temp folder.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::sandbox::{Sandbox, EVSTORE_BIN};

/// The recorded transcript the binary must reproduce: the after-layout record when there is one,
/// else the before-layout record.
fn recorded_transcript(golden: &Path) -> PathBuf {
    let after = golden.join("after-layout.txt");
    if after.exists() {
        after
    } else {
        golden.join("before-layout.txt")
    }
}

#[test]
fn command_outputs_match_the_recorded_golden_transcript() {
    let sb = Sandbox::new();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let work = sb.path("work");
    let out = Command::new("bash")
        .arg(golden.join("outputs.sh"))
        .arg(EVSTORE_BIN)
        .arg(&work)
        .current_dir(sb.dir.path())
        .output()
        .expect("run bash tests/golden/outputs.sh");
    assert!(
        out.status.success(),
        "outputs.sh failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let expected_path = recorded_transcript(&golden);
    let expected = fs::read(&expected_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", expected_path.display()));
    if out.stdout == expected {
        return;
    }
    // Show the difference as a unified diff, from the record to this binary's transcript.
    let actual_path = sb.path("actual-transcript.txt");
    fs::write(&actual_path, &out.stdout).expect("write the actual transcript");
    let diff = Command::new("diff")
        .args(["-u", "--label", "recorded", "--label", "this binary"])
        .arg(&expected_path)
        .arg(&actual_path)
        .output()
        .expect("run diff -u");
    panic!(
        "the transcript differs from {} (regenerate it only for a change the issue asks for, \
         with `bash tests/golden/outputs.sh BINARY > FILE`):\n{}",
        expected_path.display(),
        String::from_utf8_lossy(&diff.stdout)
    );
}
