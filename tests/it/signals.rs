//! SIGINT, SIGTERM and SIGHUP during the commands that write (issue 12, item 11): each stops,
//! removes what it created, records nothing, and exits 128 + the signal number.
//!
//! To hit a command while it is busy, deterministically and without a test hook in evstore, the
//! packet holds one 64 MiB incompressible file: the test waits until that file's copy (a temp file
//! in `tmp/`, in the export destination or in the KB staging folder) is more than 1 MiB but not
//! yet complete, stops evstore with SIGSTOP, checks again that the copy is still incomplete (so
//! evstore is still copying it, before its point of no return), sends the signal and SIGCONT. If
//! the moment was missed (a very slow test thread), the round is retried, up to 5 times.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::sandbox::*;

/// The size of the large file: large enough that copying it takes a while on any machine.
const BIG: u64 = 64 * 1024 * 1024;

/// Start evstore in its own process group (so the test can signal "the foreground group"), with
/// SIGINT, SIGTERM and SIGHUP at their default actions whatever the test runner inherited.
fn spawn(sb: &Sandbox, args: &[&str], env: &[(&str, &Path)]) -> Child {
    let mut cmd = sb.command();
    cmd.args(args);
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: the closure runs in the child between fork and exec; it only calls signal(2),
    // which is async-signal-safe, and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::signal(signal, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    cmd.spawn().expect("start evstore")
}

/// Send `signal` to the process `pid`, or with `group` to its whole process group.
fn send(pid: u32, signal: i32, group: bool) {
    let pid = pid as i32;
    let target = if group { -pid } else { pid };
    // SAFETY: kill(2) has no memory effects.
    let rc = unsafe { libc::kill(target, signal) };
    assert_eq!(rc, 0, "kill({target}, {signal})");
}

/// True once `pid` has ended (gone, or a zombie nobody reaps in this container).
fn ended(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| matches!(rest.trim_start().chars().next(), Some('Z' | 'X'))),
    }
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Files below `root` (any depth) whose name starts with `prefix` and whose size shows a
/// large-file copy in progress: more than 1 MiB, less than [`BIG`].
fn copy_in_progress(root: &Path, prefix: &str) -> bool {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter_map(|e| e.metadata().ok())
        .any(|m| m.len() > 1024 * 1024 && m.len() < BIG)
}

/// True if process `pid` has `file` open and has read more than 1 MiB but not all of it.
fn reading(pid: u32, file: &Path) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|fd| fd.ok())
        .filter(|fd| fs::read_link(fd.path()).is_ok_and(|target| target == file))
        .filter_map(|fd| {
            let info = format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy());
            let info = fs::read_to_string(info).ok()?;
            info.lines()
                .find_map(|line| line.strip_prefix("pos:"))
                .and_then(|pos| pos.trim().parse::<u64>().ok())
        })
        .any(|pos| pos > 1024 * 1024 && pos < BIG)
}

/// Run evstore and deliver `signal` while `busy()` says it copies the large file (see the module
/// comment). `reset` runs before every attempt; a missed attempt is waited for and retried.
fn interrupt_while_busy(
    sb: &Sandbox,
    args: &[&str],
    signal: i32,
    to_group: bool,
    mut reset: impl FnMut(),
    busy: impl Fn(u32) -> bool,
) -> Output {
    for _attempt in 0..5 {
        reset();
        let mut child = spawn(sb, args, &[]);
        let pid = child.id();
        let hit = loop {
            if child.try_wait().expect("poll evstore").is_some() {
                break false;
            }
            if busy(pid) {
                send(pid, libc::SIGSTOP, false);
                // Stopped: if the copy is still incomplete, evstore is still copying it.
                let hit = busy(pid);
                if hit {
                    send(pid, signal, to_group);
                }
                send(pid, libc::SIGCONT, false);
                break hit;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let out = child.wait_with_output().expect("wait for evstore");
        if hit {
            return out;
        }
    }
    panic!("evstore {args:?} never seen copying the large file in 5 attempts");
}

/// A packet of 20 small files and one 64 MiB file of pseudo-random (incompressible) bytes.
fn big_packet(sb: &Sandbox, rel: &str) {
    for i in 0..20 {
        sb.write(
            &format!("{rel}/small/{i:02}.txt"),
            format!("small file {i}\n"),
        );
    }
    let mut bytes = vec![0u8; BIG as usize];
    let mut hasher = blake3::Hasher::new();
    hasher.update(rel.as_bytes());
    hasher.finalize_xof().fill(&mut bytes);
    sb.write(&format!("{rel}/big.bin"), bytes);
}

fn assert_interrupted(out: &Output, signal: i32, name: &str) {
    assert_eq!(
        out.status.code(),
        Some(128 + signal),
        "{name}: {}",
        stderr(out)
    );
    assert!(
        stderr(out).contains(&format!("evstore: interrupted by {name}")),
        "{}",
        stderr(out)
    );
}

fn log(sb: &Sandbox) -> Value {
    let (rc, log) = sb.json(&["log"]);
    assert_eq!(rc, 0, "{log}");
    log
}

fn assert_fsck_passes(sb: &Sandbox) {
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    match fs::read_dir(dir) {
        Ok(items) => {
            let mut paths: Vec<PathBuf> = items.map(|e| e.unwrap().path()).collect();
            paths.sort();
            paths
        }
        Err(_) => Vec::new(),
    }
}

#[test]
fn regression_sigint_and_sigterm_during_ingest_leave_no_temp_file_and_record_nothing() {
    let sb = Sandbox::new();
    assert_eq!(code(&sb.run(&["init"])), 0);
    big_packet(&sb, "p");
    for (signal, name, to_group) in [
        (libc::SIGINT, "SIGINT", true),
        (libc::SIGTERM, "SIGTERM", false),
    ] {
        let snapshot = sb.store_snapshot();
        let events = log(&sb);
        let out = interrupt_while_busy(
            &sb,
            &["ingest", "p"],
            signal,
            to_group,
            || {},
            |_| copy_in_progress(&sb.store().join("tmp"), "obj-"),
        );
        assert_interrupted(&out, signal, name);
        assert!(
            stderr(&out).contains("removed this ingest's temp files")
                && stderr(&out).contains("nothing was recorded"),
            "{}",
            stderr(&out)
        );
        assert_eq!(entries(&sb.store().join("tmp")), Vec::<PathBuf>::new());
        assert!(sb.store_snapshot() == snapshot, "{name}: the store changed");
        assert_eq!(log(&sb), events, "{name}: an event was logged");
        let (_, listed) = sb.json(&["ls"]);
        assert_eq!(listed["packets"], serde_json::json!([]), "{name}");
        assert_fsck_passes(&sb);
    }
    // The same ingest, not interrupted, succeeds.
    let (rc, ingested) = sb.json(&["ingest", "p"]);
    assert_eq!(rc, 0, "{ingested}");
    assert_eq!(ingested["packet"], "p@1");
    assert_eq!(entries(&sb.store().join("tmp")), Vec::<PathBuf>::new());
    assert_fsck_passes(&sb);
}

#[test]
fn regression_sigint_and_sigterm_during_export_remove_the_partial_destination() {
    let sb = Sandbox::new();
    big_packet(&sb, "p");
    assert_eq!(code(&sb.run(&["ingest", "p"])), 0);
    let snapshot = sb.store_snapshot();
    let events = log(&sb);

    // A destination evstore creates is removed.
    let dest = sb.path("out");
    let out = interrupt_while_busy(
        &sb,
        &["export", "p", "out"],
        libc::SIGTERM,
        false,
        || {},
        |_| copy_in_progress(&dest, ".evstore-export-"),
    );
    assert_interrupted(&out, libc::SIGTERM, "SIGTERM");
    assert!(
        stderr(&out).contains(&format!("removed the destination {}", "out")),
        "{}",
        stderr(&out)
    );
    assert!(!dest.exists(), "the partial export is still there");

    // A destination that existed, empty, is left empty.
    let empty = sb.path("empty");
    let out = interrupt_while_busy(
        &sb,
        &["export", "p", "empty"],
        libc::SIGINT,
        true,
        || fs::create_dir_all(&empty).unwrap(),
        |_| copy_in_progress(&empty, ".evstore-export-"),
    );
    assert_interrupted(&out, libc::SIGINT, "SIGINT");
    assert!(
        stderr(&out).contains("left empty empty, as it was"),
        "{}",
        stderr(&out)
    );
    assert_eq!(entries(&empty), Vec::<PathBuf>::new());

    assert!(sb.store_snapshot() == snapshot, "the store changed");
    assert_eq!(log(&sb), events);
    assert_fsck_passes(&sb);
    // A retry into either destination succeeds and is the packet.
    for dest in ["out", "empty"] {
        let out = sb.run(&["export", "p", dest]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_trees_equal(&sb.path("p"), &sb.path(dest));
    }
}

#[test]
fn regression_sigint_sigterm_and_sighup_during_mirror_remove_the_staging_folder() {
    let sb = Sandbox::new();
    big_packet(&sb, "p");
    assert_eq!(code(&sb.run(&["ingest", "p"])), 0);
    fs::create_dir(sb.path("kb")).unwrap();
    let staging = sb.path("kb/.evstore-staging");
    let snapshot = sb.store_snapshot();
    let events = log(&sb);
    for (signal, name, to_group) in [
        (libc::SIGINT, "SIGINT", true),
        (libc::SIGTERM, "SIGTERM", false),
        (libc::SIGHUP, "SIGHUP", false),
    ] {
        let out = interrupt_while_busy(
            &sb,
            &["mirror", "p", "kb"],
            signal,
            to_group,
            || {},
            |_| copy_in_progress(&staging, "big.bin"),
        );
        assert_interrupted(&out, signal, name);
        assert!(
            stderr(&out).contains("removed the staging folder")
                && stderr(&out).contains("nothing was recorded"),
            "{}",
            stderr(&out)
        );
        assert_eq!(entries(&staging), Vec::<PathBuf>::new(), "{name}");
        assert!(!sb.path("kb/p").exists(), "{name}: published");
        assert_eq!(log(&sb), events, "{name}: an event was logged");
    }
    assert!(sb.store_snapshot() == snapshot, "the store changed");
    assert_fsck_passes(&sb);
    let out = sb.run(&["mirror", "p", "kb"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = sb.run(&["kb", "verify", "kb"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// The generator writes a file every 20 ms forever and starts a background `sleep` in its group;
/// it records both pids in `pids`.
const GENERATOR: &str = r#"echo $$ > "$2.tmp"; sleep 1000 & echo $! >> "$2.tmp"; mv "$2.tmp" "$2"
i=0; while :; do i=$((i+1)); echo "$i" > "$1/f$i"; sleep 0.02; done"#;

fn rerun_temp_folders(tmp: &Path) -> Vec<PathBuf> {
    entries(tmp)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("evstore-rerun-")
        })
        .collect()
}

#[test]
fn regression_sigint_and_sigterm_during_rerun_kill_the_generator_group_and_record_nothing() {
    let sb = Sandbox::new();
    sb.write("p/a", "a\n");
    assert_eq!(code(&sb.run(&["ingest", "p"])), 0);
    let tmp = sb.path("tmp");
    fs::create_dir(&tmp).unwrap();
    let events = log(&sb);
    // SIGINT to evstore's process group (as a terminal's Ctrl-C); SIGTERM to the process and
    // then to its group, as `timeout` does (one request delivered twice); SIGHUP with --keep.
    let cases: [(i32, &str, &[bool], Option<&str>); 3] = [
        (libc::SIGINT, "SIGINT", &[true], None),
        (libc::SIGTERM, "SIGTERM", &[false, true], None),
        (libc::SIGHUP, "SIGHUP", &[false], Some("kept")),
    ];
    for (round, (signal, name, targets, keep)) in cases.into_iter().enumerate() {
        let pids = sb.path(&format!("pids-{round}"));
        let pids_arg = pids.to_str().unwrap();
        let mut args = vec!["rerun", "p"];
        if let Some(keep) = keep {
            args.extend(["--keep", keep]);
        }
        args.extend(["--", "sh", "-c", GENERATOR, "sh", "{out}", pids_arg]);
        let child = spawn(&sb, &args, &[("TMPDIR", &tmp)]);
        // Wait until the generator runs and has written a few files.
        let out_dir = match keep {
            Some(keep) => sb.path(keep),
            None => {
                wait_until("the rerun temp folder", || {
                    rerun_temp_folders(&tmp).len() == 1
                });
                rerun_temp_folders(&tmp)[0].join("out-1")
            }
        };
        wait_until("the generator's pids", || pids.exists());
        wait_until("three output files", || entries(&out_dir).len() >= 3);
        for group in targets {
            send(child.id(), signal, *group);
        }
        let out = child.wait_with_output().unwrap();
        assert_interrupted(&out, signal, name);
        let err = stderr(&out);
        assert!(
            err.contains("killed the generator's process group"),
            "{err}"
        );
        assert!(err.contains("removed the temp folder"), "{err}");
        assert!(err.contains("no attestation was recorded"), "{err}");
        // The generator and its background process are gone, and wrote nothing more.
        let generator: Vec<i32> = fs::read_to_string(&pids)
            .unwrap()
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect();
        assert_eq!(generator.len(), 2);
        for pid in &generator {
            wait_until(&format!("generator process {pid} ended"), || ended(*pid));
        }
        assert_eq!(rerun_temp_folders(&tmp), Vec::<PathBuf>::new(), "{name}");
        if let Some(keep) = keep {
            assert!(err.contains("left the first run's output so far"), "{err}");
            let written = entries(&sb.path(keep)).len();
            assert!(
                written >= 3,
                "{name}: the --keep folder holds {written} files"
            );
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(entries(&sb.path(keep)).len(), written, "still written to");
        }
        let (rc, runs) = sb.json(&["runs"]);
        assert_eq!(rc, 0);
        assert_eq!(
            runs["runs"],
            serde_json::json!([]),
            "{name}: a run was recorded"
        );
        assert_eq!(log(&sb), events, "{name}: an event was logged");
    }
    assert_fsck_passes(&sb);
    // A rerun that is not interrupted is recorded.
    let out = sb.run(&[
        "rerun",
        "p",
        "--",
        "sh",
        "-c",
        "echo a > \"$1/a\"",
        "sh",
        "{out}",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (_, runs) = sb.json(&["runs"]);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
}

/// `nohup` and background jobs of non-interactive shells start a command with SIGHUP or SIGINT
/// ignored; evstore keeps them ignored (as Go and Python programs do) instead of stopping.
#[test]
fn an_ignored_sighup_stays_ignored() {
    let sb = Sandbox::new();
    sb.write("p/a", "a\n");
    assert_eq!(code(&sb.run(&["ingest", "p"])), 0);
    let go = sb.path("go");
    let started = sb.path("started");
    let mut cmd = sb.command();
    cmd.args(["rerun", "p", "--", "sh", "-c"]);
    // Says it started, waits for the test's go-ahead, then writes the packet's file.
    cmd.args([
        "touch \"$3\"; while [ ! -e \"$2\" ]; do sleep 0.01; done; echo a > \"$1/a\"",
        "sh",
        "{out}",
        go.to_str().unwrap(),
        started.to_str().unwrap(),
    ]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: signal(2) is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    // evstore is in its poll loop, where a handled signal would stop it within 10 ms.
    wait_until("the generator started", || started.exists());
    send(child.id(), libc::SIGHUP, false);
    std::thread::sleep(Duration::from_millis(200));
    fs::write(&go, "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (_, runs) = sb.json(&["runs"]);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
}

/// A command stuck where it does not check the flag (here: waiting up to 120 s for a catalog
/// lock another process holds) stops at once on a second signal, one second or more after the
/// first; a second delivery sooner is the same request (see the rerun test's `timeout` case).
#[test]
fn a_second_signal_stops_a_stuck_command_at_once() {
    let sb = Sandbox::new();
    sb.write("p/a", "a\n");
    assert_eq!(code(&sb.run(&["ingest", "p"])), 0);
    let writer = rusqlite::Connection::open(sb.store().join("catalog.sqlite")).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE;").unwrap();
    for attempt in 0..5 {
        let name = format!("q{attempt}");
        sb.write(&format!("{name}/b"), format!("{name}\n"));
        let objects_before = sb.object_files().len();
        let mut child = spawn(&sb, &["ingest", &name], &[]);
        // Its objects are published just before it waits for the catalog's write lock.
        wait_until("the ingest's objects", || {
            sb.object_files().len() > objects_before
        });
        std::thread::sleep(Duration::from_millis(300));
        send(child.id(), libc::SIGTERM, false);
        std::thread::sleep(Duration::from_millis(1200));
        if let Some(status) = child.try_wait().unwrap() {
            // It stopped on the first signal before it reached the lock: try again.
            assert_eq!(status.code(), Some(143));
            continue;
        }
        let started = Instant::now();
        send(child.id(), libc::SIGTERM, false);
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(&out), 143, "{}", stderr(&out));
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the second signal did not stop it at once"
        );
        assert!(
            stderr(&out).contains("evstore: second signal: stopped at once"),
            "{}",
            stderr(&out)
        );
        writer.execute_batch("ROLLBACK;").unwrap();
        let (_, listed) = sb.json(&["ls"]);
        assert_eq!(listed["packets"].as_array().unwrap().len(), 1, "{listed}");
        return;
    }
    panic!("the ingest never reached the catalog lock in 5 attempts");
}

#[test]
fn regression_sigterm_during_seal_writes_no_seal_and_no_temp_file() {
    let sb = Sandbox::new();
    big_packet(&sb, "p");
    let big = fs::canonicalize(sb.path("p/big.bin")).unwrap();
    let before = entries(&sb.path("p"));
    let out = interrupt_while_busy(
        &sb,
        &["seal", "p"],
        libc::SIGTERM,
        false,
        || {},
        |pid| reading(pid, &big),
    );
    assert_interrupted(&out, libc::SIGTERM, "SIGTERM");
    assert_eq!(
        entries(&sb.path("p")),
        before,
        "seal left a file in the folder"
    );
    let out = sb.run(&["seal", "p"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(sb.path("p/HASH_MANIFEST.txt").exists());
}
