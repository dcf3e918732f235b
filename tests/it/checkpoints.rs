//! Kept checkpoints and the append-only check of the log: `evstore log keep-checkpoints`, the
//! signed checkpoint kept after every command that appends, `log --verify-from`, and `fsck`'s
//! recomputed Merkle root, all through the real binary.

use std::fs;
use std::path::{Path, PathBuf};

use crate::sandbox::{code, stderr, write_packet, Sandbox};

/// `key generate NAME --out NAME.key` in the sandbox: the key file and the verifier key.
fn generate_key(sb: &Sandbox, name: &str) -> (PathBuf, String) {
    let keyfile = sb.path(&format!("{name}.key"));
    let out = sb.run_storeless(&["key", "generate", name, "--out", keyfile.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let verifier = String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string();
    (keyfile, verifier)
}

/// A store holding one packet, keeping checkpoints signed by `alice`: the key file and the
/// verifier key.
fn store_keeping_checkpoints(sb: &Sandbox) -> (PathBuf, String) {
    let packet = write_packet(sb, "p1");
    let out = sb.run(&["ingest", packet.to_str().unwrap(), "--name", "p"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (keyfile, verifier) = generate_key(sb, "alice");
    let (rc, kept) = sb.json(&[
        "log",
        "keep-checkpoints",
        "--key",
        keyfile.to_str().unwrap(),
    ]);
    assert_eq!(rc, 0, "{kept}");
    assert_eq!(kept["store_configured_now"], true, "{kept}");
    assert_eq!(kept["verifier_key"], verifier.as_str(), "{kept}");
    assert!(kept["kept"]["tree_size"].as_u64().is_some(), "{kept}");
    (keyfile, verifier)
}

/// The record of what the key of `verifier` signed, in the sandbox's state folder.
fn signed_record(sb: &Sandbox, verifier: &str) -> String {
    use sha2::Digest as _;
    let name: String = sha2::Sha256::digest(verifier.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    fs::read_to_string(sb.path(&format!("state/signed/{name}"))).unwrap_or_default()
}

/// Write one file at `rel` and ingest its folder as the packet `name`.
fn ingest_file(sb: &Sandbox, rel: &str, content: &str, name: &str) -> std::process::Output {
    let file = sb.write(rel, content);
    sb.run(&[
        "ingest",
        file.parent().unwrap().to_str().unwrap(),
        "--name",
        name,
    ])
}

/// Add to the catalog alone (no `log/` key holds it) an `ingest` event numbered `seq`, chained
/// to the catalog's last event, as someone who can write the catalog file could.
fn forge_catalog_event(sb: &Sandbox, seq: u64) {
    let db = rusqlite::Connection::open(sb.store().join("catalog.sqlite")).unwrap();
    let prev: String = db
        .query_row(
            "SELECT hash FROM events ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    db.execute(
        "INSERT INTO events (seq, time_unix_nanos, kind, subject, detail, prev_hash, hash) \
         VALUES (?1, 1, 'ingest', 'forged@1', '{}', ?2, ?3)",
        rusqlite::params![seq as i64, prev, "ab".repeat(32)],
    )
    .unwrap();
}

/// The log's size and root now, as `log checkpoint --json` prints them.
fn log_size_and_root(sb: &Sandbox) -> (u64, String) {
    let (rc, checkpoint) = sb.json(&["log", "checkpoint"]);
    assert_eq!(rc, 0, "{checkpoint}");
    (
        checkpoint["tree_size"].as_u64().unwrap(),
        checkpoint["root"].as_str().unwrap().to_string(),
    )
}

on_both_backends! {
    /// Once configured, every command that appends keeps the signed checkpoint of the log after
    /// it; fsck recomputes the log's root from its log/ keys and checks each kept checkpoint
    /// (signature, size, root) against it.
    fn every_append_keeps_a_signed_checkpoint_and_fsck_checks_them() {
        let sb = Sandbox::new();
        store_keeping_checkpoints(&sb);
        let first = log_size_and_root(&sb);
        let out = ingest_file(&sb, "p2/a.txt", "second\n", "q");
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let after = log_size_and_root(&sb);
        assert_eq!(after.0, first.0 + 1);
        assert!(
            stderr(&out).contains(&format!(
                "kept the signed checkpoint of the log at {} events",
                after.0
            )),
            "{}",
            stderr(&out)
        );
        let (rc, fsck) = sb.json(&["fsck"]);
        assert_eq!(rc, 0, "{fsck}");
        assert_eq!(fsck["checkpoints_checked"], 2, "{fsck}");
        assert_eq!(fsck["log_tree_size"], after.0, "{fsck}");
        assert_eq!(fsck["log_root"], after.1.as_str(), "{fsck}");
        // Configuring again with the same key changes nothing and keeps nothing new.
        let (rc, again) = sb.json(&["log", "keep-checkpoints", "--key", sb.path("alice.key").to_str().unwrap()]);
        assert_eq!(rc, 0, "{again}");
        assert_eq!(again["store_configured_now"], false, "{again}");
        assert!(again["kept"].is_null(), "{again}");
    }

    /// A machine without the store's signer key (none recorded, or $EVSTORE_SIGNING_KEY naming
    /// another key) is refused before it writes: exit 2, nothing archived.
    fn a_writer_without_the_signer_key_is_refused_before_it_writes() {
        let sb = Sandbox::new();
        let (_, verifier) = store_keeping_checkpoints(&sb);
        let (bob, _) = generate_key(&sb, "bob");
        let packet = sb.write("p2/a.txt", "second\n");
        let packet = packet.parent().unwrap().to_str().unwrap().to_string();
        let other_machine = sb.path("machine-b");
        let without_key = |env: Option<&Path>| {
            let mut cmd = sb.command();
            // Another machine: its own cache of an S3 store; for a local store, the recorded
            // signer file moved away.
            cmd.env("EVSTORE_CACHE", &other_machine);
            if let Some(keyfile) = env {
                cmd.env("EVSTORE_SIGNING_KEY", keyfile);
            }
            cmd.args(["ingest", &packet, "--name", "q"]).output().unwrap()
        };
        let signer_file = sb.store().join("checkpoint-signer");
        let local = signer_file.exists();
        if local {
            fs::rename(&signer_file, sb.path("signer-aside")).unwrap();
        }
        let out = without_key(None);
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        assert!(
            stderr(&out).contains("has no signer key") && stderr(&out).contains(&verifier),
            "{}",
            stderr(&out)
        );
        let out = without_key(Some(&bob));
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        assert!(stderr(&out).contains("holds the key of bob+"), "{}", stderr(&out));
        if local {
            fs::rename(sb.path("signer-aside"), &signer_file).unwrap();
        }
        let (rc, listing) = sb.json(&["ls"]);
        assert_eq!(rc, 0, "{listing}");
        assert_eq!(listing["packets"].as_array().map(Vec::len), Some(1), "{listing}");
        // With the key named by the environment, the other machine writes and keeps a checkpoint.
        let out = without_key(Some(&sb.path("alice.key")));
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert!(stderr(&out).contains("kept the signed checkpoint"), "{}", stderr(&out));
    }
}

/// `log --verify-from` passes for a log that was only appended to, with the signature checked
/// by the store's verifier key or by `--key`; it fails (exit 1) for a checkpoint signed by
/// another key, of another store's log, or of a larger log, and refuses a malformed one (exit 2).
#[test]
fn verify_from_passes_an_appended_log_and_fails_what_is_not_one() {
    let sb = Sandbox::new();
    let (keyfile, verifier) = store_keeping_checkpoints(&sb);
    let old = sb.run(&["log", "checkpoint", "--sign", keyfile.to_str().unwrap()]);
    assert_eq!(code(&old), 0, "{}", stderr(&old));
    let old_file = sb.write("old.checkpoint", &old.stdout);
    let out = ingest_file(&sb, "p2/a.txt", "second\n", "q");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let old_arg = old_file.to_str().unwrap();
    let (rc, report) = sb.json(&["log", "--verify-from", old_arg]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["verdict"], "PASS");
    assert!(
        report["signature"]
            .as_str()
            .unwrap()
            .starts_with("verified"),
        "{report}"
    );
    let (rc, report) = sb.json(&["log", "--verify-from", old_arg, "--key", &verifier]);
    assert_eq!(rc, 0, "{report}");

    let (_, bob) = generate_key(&sb, "bob");
    let (rc, report) = sb.json(&["log", "--verify-from", old_arg, "--key", &bob]);
    assert_eq!(rc, 1, "{report}");
    assert!(
        report["problems"][0]
            .as_str()
            .unwrap()
            .contains("no valid signature"),
        "{report}"
    );

    let other = Sandbox::new();
    let packet = write_packet(&other, "x");
    assert_eq!(code(&other.run(&["ingest", packet.to_str().unwrap()])), 0);
    let foreign = other.run(&["log", "checkpoint"]);
    let foreign_file = sb.write("foreign.checkpoint", &foreign.stdout);
    let (rc, report) = sb.json(&["log", "--verify-from", foreign_file.to_str().unwrap()]);
    assert_eq!(rc, 1, "{report}");
    assert!(
        report["problems"][0]
            .as_str()
            .unwrap()
            .contains("is of the log"),
        "{report}"
    );

    // A checkpoint of more entries than the log has: the text made by hand, unsigned.
    let (size, _) = log_size_and_root(&sb);
    let text = String::from_utf8(foreign.stdout).unwrap();
    let origin = sb.run(&["log", "checkpoint"]);
    let origin = String::from_utf8(origin.stdout).unwrap();
    let mut lines = origin.lines();
    let larger = format!(
        "{}\n{}\n{}\n",
        lines.next().unwrap(),
        size + 5,
        text.lines().nth(2).unwrap()
    );
    let larger_file = sb.write("larger.checkpoint", larger);
    let (rc, report) = sb.json(&["log", "--verify-from", larger_file.to_str().unwrap()]);
    assert_eq!(rc, 1, "{report}");
    assert!(
        report["problems"][0]
            .as_str()
            .unwrap()
            .contains("were removed"),
        "{report}"
    );

    for (name, bytes) in [
        ("empty", ""),
        ("two-lines", "origin\n5\n"),
        ("bad-size", "origin\n05\nAAAA\n"),
    ] {
        let file = sb.write(name, bytes);
        let out = sb.run(&["log", "--verify-from", file.to_str().unwrap()]);
        assert_eq!(code(&out), 2, "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("not a checkpoint"),
            "{name}: {}",
            stderr(&out)
        );
    }
    let out = sb.run(&["log", "checkpoint", "--verify-from", old_arg]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

/// A log entry rewritten by hand (its log/ file edited) is caught by `log --verify-from` an old
/// checkpoint and by `fsck` (through the kept checkpoints), each naming the event; so is a
/// removed last entry.
#[test]
fn a_rewritten_or_removed_log_entry_is_caught_and_named() {
    let sb = Sandbox::new();
    let (keyfile, _) = store_keeping_checkpoints(&sb);
    let old = sb.run(&["log", "checkpoint", "--sign", keyfile.to_str().unwrap()]);
    let old_file = sb.write("old.checkpoint", &old.stdout);
    let packet = sb.write("p2/a.txt", "second\n");
    assert_eq!(
        code(&sb.run(&[
            "ingest",
            packet.parent().unwrap().to_str().unwrap(),
            "--name",
            "q"
        ])),
        0
    );
    let (size, _) = log_size_and_root(&sb);
    assert!(size >= 3, "{size}");

    let entry = sb.store().join("log/00000000000000000002");
    let original = fs::read(&entry).unwrap();
    let mut edited = original.clone();
    let at = edited.len() / 2;
    edited[at] ^= 0x01;
    fs::set_permissions(&entry, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::write(&entry, &edited).unwrap();

    let out = sb.run(&["log", "--verify-from", old_file.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("event 2 was rewritten"), "{text}");
    assert!(text.contains("FAIL"), "{text}");

    let out = sb.run(&["fsck"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("checkpoint ") && text.contains("event 2 was rewritten"),
        "{text}"
    );

    // Put it back: both pass again. Then remove the last entry.
    fs::write(&entry, &original).unwrap();
    assert_eq!(
        code(&sb.run(&["log", "--verify-from", old_file.to_str().unwrap()])),
        0
    );
    assert_eq!(code(&sb.run(&["fsck"])), 0);
    let last = sb.store().join(format!("log/{size:020}"));
    fs::remove_file(&last).unwrap();
    let out = sb.run(&["fsck"]);
    assert_eq!(code(&out), 1);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!(
            "is of {size} entries, but the log has {}",
            size - 1
        )),
        "{text}"
    );
}

/// The catalog keeps the log's perfect subtrees (`merkle_nodes`), one leaf per event; a catalog
/// without the table (an older evstore's) gives the same root, and the next writer fills it in;
/// a damaged kept hash is named by fsck.
#[test]
fn the_catalog_keeps_the_log_tree_rebuilds_it_and_fsck_checks_it() {
    let sb = Sandbox::new();
    for name in ["a", "b", "c"] {
        let out = ingest_file(&sb, &format!("{name}/f.txt"), name, name);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let (size, root) = log_size_and_root(&sb);
    let catalog = sb.store().join("catalog.sqlite");
    let leaves = |db: &rusqlite::Connection| -> i64 {
        db.query_row(
            "SELECT COUNT(*) FROM merkle_nodes WHERE level = 0",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    {
        let db = rusqlite::Connection::open(&catalog).unwrap();
        assert_eq!(leaves(&db) as u64, size);
        // 4 leaves: 2 nodes above them and 1 above those.
        let all: i64 = db
            .query_row("SELECT COUNT(*) FROM merkle_nodes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(all as u64, 2 * size - 1, "size {size}");
        db.execute_batch("DROP TABLE merkle_nodes").unwrap();
    }
    assert_eq!(log_size_and_root(&sb), (size, root.clone()));
    let packet = sb.write("d/f.txt", "d");
    assert_eq!(
        code(&sb.run(&[
            "ingest",
            packet.parent().unwrap().to_str().unwrap(),
            "--name",
            "d"
        ])),
        0
    );
    {
        let db = rusqlite::Connection::open(&catalog).unwrap();
        assert_eq!(leaves(&db) as u64, size + 1);
    }
    let (rc, fsck) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{fsck}");

    {
        let db = rusqlite::Connection::open(&catalog).unwrap();
        db.execute_batch(
            "DROP TRIGGER merkle_nodes_no_update; \
             UPDATE merkle_nodes SET hash = zeroblob(32) WHERE level = 2 AND idx = 0;",
        )
        .unwrap();
    }
    let out = sb.run(&["fsck"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("its merkle_nodes (the log's kept subtree hashes) disagree"),
        "{text}"
    );
}

on_both_backends! {
    /// A store that keeps checkpoints lets anyone prove a file without the private key: `prove`
    /// without `--sign` carries the newest kept checkpoint that covers the packet's event, and
    /// `proof check-file` checks its signature by the store's verifier key.
    fn prove_without_a_key_carries_the_newest_kept_checkpoint() {
        let sb = Sandbox::new();
        let (_, verifier) = store_keeping_checkpoints(&sb);
        let out = ingest_file(&sb, "p2/a.txt", "second\n", "q");
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let (size, root) = log_size_and_root(&sb);
        let out = sb.run(&["prove", "p", "logs/run.log"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let proof: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let note = proof["checkpoint"].as_str().unwrap();
        assert!(note.contains(&format!("\n{size}\n")), "{note}");
        assert!(note.contains("\n\n\u{2014} alice "), "{note}");
        assert_eq!(proof["inclusion"]["tree_size"], size);
        assert_eq!(proof["inclusion"]["root"], root.as_str());
        let file = sb.write("run.proof.json", &out.stdout);
        let out = sb.run_storeless(&[
            "proof",
            "check-file",
            file.to_str().unwrap(),
            "--file",
            sb.path("p1/logs/run.log").to_str().unwrap(),
            "--key",
            &verifier,
        ]);
        assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stdout));
        assert!(String::from_utf8_lossy(&out.stdout).contains("PASS"));
    }
}

/// `evstore ARGS` under `timeout 20`: a command that would wait forever (on a FIFO) exits 124.
fn run_bounded(sb: &Sandbox, args: &[&str]) -> std::process::Output {
    sb.command_through("timeout", &["20"], Path::new(crate::sandbox::EVSTORE_BIN))
        .arg("--store")
        .arg(sb.store())
        .args(args)
        .output()
        .unwrap()
}

/// Found by review: subtree hashes added to the catalog by hand (every trigger in place) for an
/// event the log does not have made the next writer sign a root holding a forged packet. Now a
/// checkpoint is signed only of a root verified against the last signed one and the store's
/// `log/` bytes: the writer refuses to keep it, `log checkpoint --sign` refuses, fsck names the
/// table; and an event row added by hand is refused the same way.
#[test]
fn regression_a_poisoned_catalog_is_never_signed() {
    let sb = Sandbox::new();
    let (keyfile, _) = store_keeping_checkpoints(&sb);
    let (size, _) = log_size_and_root(&sb);
    let catalog = sb.store().join("catalog.sqlite");
    {
        // A leaf for event size + 1 and the subtrees it would complete, hashes made up.
        let db = rusqlite::Connection::open(&catalog).unwrap();
        let mut level = 0;
        let mut index = size;
        loop {
            db.execute(
                "INSERT INTO merkle_nodes (level, idx, hash) VALUES (?1, ?2, ?3)",
                rusqlite::params![level, index as i64, vec![7u8; 32]],
            )
            .unwrap();
            if index % 2 == 0 {
                break;
            }
            index /= 2;
            level += 1;
        }
    }
    let packet = sb.write("p2/a.txt", "second\n");
    let out = sb.run(&[
        "--json",
        "ingest",
        packet.parent().unwrap().to_str().unwrap(),
        "--name",
        "q",
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("checkpoint of the log after it could not be kept")
            && stderr(&out).contains("merkle_nodes"),
        "{}",
        stderr(&out)
    );
    // The ingest's report, and only it: one JSON document (found by the third review).
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(report["packet"], "q@1", "{report}");
    assert!(!sb
        .store()
        .join(format!("checkpoints/{:020}", size + 1))
        .exists());
    let out = sb.run(&["log", "checkpoint", "--sign", keyfile.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let out = sb.run(&["fsck"]);
    assert_eq!(code(&out), 1);
    assert!(String::from_utf8_lossy(&out.stdout).contains("merkle_nodes"));

    // An event row added by hand, chained to the last one: no log/ key holds it.
    let sb = Sandbox::new();
    let (keyfile, _) = store_keeping_checkpoints(&sb);
    let (size, _) = log_size_and_root(&sb);
    forge_catalog_event(&sb, size + 1);
    let out = sb.run(&["log", "checkpoint", "--sign", keyfile.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{:020}", size + 1)) && stderr(&out).contains("is missing"),
        "{}",
        stderr(&out)
    );
}

/// Found by review: `log --verify-from --key K` passed an unsigned checkpoint and a CRLF one
/// carrying a bogus signature line; a signed note with garbage after its signature passed; key
/// and checkpoint files were read without a bound or from a FIFO (waiting forever).
#[test]
fn regression_checkpoint_inputs_are_read_strictly() {
    let sb = Sandbox::new();
    let (keyfile, verifier) = store_keeping_checkpoints(&sb);
    let unsigned = sb.run(&["log", "checkpoint"]);
    let unsigned_file = sb.write("unsigned.checkpoint", &unsigned.stdout);
    let (rc, report) = sb.json(&[
        "log",
        "--verify-from",
        unsigned_file.to_str().unwrap(),
        "--key",
        &verifier,
    ]);
    assert_eq!(rc, 1, "{report}");
    assert!(report["problems"][0]
        .as_str()
        .unwrap()
        .contains("carries no signature"));
    let signed = sb.run(&["log", "checkpoint", "--sign", keyfile.to_str().unwrap()]);
    let signed = String::from_utf8(signed.stdout).unwrap();
    let crlf = sb.write("crlf.checkpoint", signed.replace('\n', "\r\n"));
    let out = sb.run(&[
        "log",
        "--verify-from",
        crlf.to_str().unwrap(),
        "--key",
        &verifier,
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("carriage return"), "{}", stderr(&out));
    let garbage = sb.write("garbage.checkpoint", format!("{signed}GARBAGE\n"));
    let out = sb.run_storeless(&[
        "proof",
        "check-checkpoint",
        garbage.to_str().unwrap(),
        "--key",
        &verifier,
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a signature line"),
        "{}",
        stderr(&out)
    );

    let out = run_bounded(&sb, &["log", "checkpoint", "--sign", "/dev/zero"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let fifo = sb.path("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let fifo = fifo.to_str().unwrap();
    for args in [
        &["log", "--verify-from", fifo][..],
        &["log", "checkpoint", "--sign", fifo],
        &["log", "keep-checkpoints", "--key", fifo],
        &["proof", "check-checkpoint", fifo, "--key", &verifier],
        &["proof", "check-file", fifo],
    ] {
        let out = run_bounded(&sb, args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("not a regular file"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

/// Found by review: with the store's verifier key deleted, writers kept no checkpoint and said
/// nothing; a catalog whose append-only triggers were dropped passed fsck.
#[test]
fn regression_a_lost_verifier_key_stops_writers_and_dropped_triggers_fail_fsck() {
    let sb = Sandbox::new();
    store_keeping_checkpoints(&sb);
    fs::remove_file(sb.store().join("checkpoints/verifier-key")).unwrap();
    let out = ingest_file(&sb, "p2/a.txt", "second\n", "q");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("verifier-key") && stderr(&out).contains("is missing"),
        "{}",
        stderr(&out)
    );
    let (rc, listing) = sb.json(&["ls"]);
    assert_eq!(rc, 0);
    assert_eq!(
        listing["packets"].as_array().map(Vec::len),
        Some(1),
        "{listing}"
    );

    let sb = Sandbox::new();
    let packet = write_packet(&sb, "p");
    assert_eq!(code(&sb.run(&["ingest", packet.to_str().unwrap()])), 0);
    {
        let db = rusqlite::Connection::open(sb.store().join("catalog.sqlite")).unwrap();
        db.execute_batch("DROP TRIGGER events_no_update").unwrap();
    }
    let out = sb.run(&["fsck"]);
    assert_eq!(code(&out), 1);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("events_no_update are gone"), "{text}");
}

/// Found by the second review: signing trusted the store's newest kept checkpoint, checked by
/// the store's own `checkpoints/verifier-key`. Whoever could write the store swapped in their
/// verifier key and a checkpoint they signed of a forged catalog at its size, and the key's
/// holder then signed the forged root without reading `log/`. Now a key trusts only what it
/// signed itself (remembered beside its key file), and reads every later entry from `log/`.
#[test]
fn regression_signing_trusts_only_what_the_key_signed_itself() {
    let sb = Sandbox::new();
    let (keyfile, verifier) = store_keeping_checkpoints(&sb);
    assert_eq!(
        signed_record(&sb, &verifier).lines().count(),
        1,
        "the key remembers"
    );
    let (size, _) = log_size_and_root(&sb);
    let (evil_key, evil_verifier) = generate_key(&sb, "evil");
    forge_catalog_event(&sb, size + 1);
    // The forger's checkpoint of the forged log, signed with their key, and their verifier key.
    let forged = sb.run(&["log", "checkpoint"]);
    assert_eq!(code(&forged), 0, "{}", stderr(&forged));
    let text = String::from_utf8(forged.stdout).unwrap();
    let evil =
        evstore::format::note::SignerKey::parse(&fs::read_to_string(&evil_key).unwrap()).unwrap();
    let note = evil.sign(&text).unwrap();
    let checkpoints = sb.store().join("checkpoints");
    fs::set_permissions(
        checkpoints.join("verifier-key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    fs::write(
        checkpoints.join("verifier-key"),
        format!("{evil_verifier}\n"),
    )
    .unwrap();
    fs::write(checkpoints.join(format!("{:020}", size + 1)), note).unwrap();

    let out = sb.run(&["log", "checkpoint", "--sign", keyfile.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains(&format!("{:020}", size + 1)) && stderr(&out).contains("is missing"),
        "{}",
        stderr(&out)
    );
    let out = sb.run(&[
        "prove",
        "p",
        "report.json",
        "--sign",
        keyfile.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

/// Found by the second review: with the newest kept checkpoint and the log keys after an older
/// one deleted, an honest writer signed a second log of a size the key had signed (a fork). Now
/// the key's own record of what it signed refuses it.
#[test]
fn regression_a_key_never_signs_a_fork_of_what_it_signed() {
    let sb = Sandbox::new();
    let (keyfile, _) = store_keeping_checkpoints(&sb);
    for name in ["q", "r"] {
        let out = ingest_file(&sb, &format!("{name}/a.txt"), name, name);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let (size, root) = log_size_and_root(&sb);
    let last = sb.store().join(format!("log/{size:020}"));
    let kept = sb.store().join(format!("checkpoints/{size:020}"));
    fs::remove_file(&last).unwrap();
    fs::remove_file(&kept).unwrap();
    for sidecar in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(sb.store().join(format!("catalog.sqlite{sidecar}")));
    }
    // reindex rebuilds the catalog from the log (one entry short) and logs its own event: a log
    // of the signed size with another root.
    let out = sb.run(&["reindex"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("could not be kept") && stderr(&out).contains("this key signed"),
        "{}",
        stderr(&out)
    );
    assert!(!kept.exists(), "no second checkpoint of {size} events");
    let out = sb.run(&["log", "checkpoint", "--sign", keyfile.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let (now, forked) = log_size_and_root(&sb);
    assert_eq!(now, size);
    assert_ne!(forked, root);
}

/// Found by the second review: a `merkle_nodes` row that is no node (a negative level, a hash
/// of text) stopped fsck with exit 2 instead of being named.
#[test]
fn regression_fsck_names_malformed_merkle_rows() {
    let sb = Sandbox::new();
    let packet = write_packet(&sb, "p");
    assert_eq!(code(&sb.run(&["ingest", packet.to_str().unwrap()])), 0);
    {
        let db = rusqlite::Connection::open(sb.store().join("catalog.sqlite")).unwrap();
        db.execute_batch("INSERT INTO merkle_nodes VALUES (-1, 0, zeroblob(32));")
            .unwrap();
    }
    let out = sb.run(&["fsck"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("1 rows that are no node"), "{text}");
}

/// Found by the third review: the origin a key signed under came from the catalog's text for
/// event 1, so a hash planted there with line breaks wrote a chosen checkpoint into the signed
/// note (and damaged the key's record). Now the origin comes from `log/…1`, decoded strictly.
#[test]
fn regression_the_origin_signed_is_the_decoded_first_log_entry() {
    let sb = Sandbox::new();
    let (keyfile, verifier) = store_keeping_checkpoints(&sb);
    let entry = sb.store().join("log/00000000000000000001");
    let bytes = fs::read_to_string(&entry).unwrap();
    let db = rusqlite::Connection::open(sb.store().join("catalog.sqlite")).unwrap();
    let hash: String = db
        .query_row("SELECT hash FROM events WHERE seq = 1", [], |r| r.get(0))
        .unwrap();
    let planted = format!("{hash}\n2\nAAAA");
    db.execute_batch("DROP TRIGGER events_no_update").unwrap();
    db.execute("UPDATE events SET hash = ?1 WHERE seq = 1", [&planted])
        .unwrap();
    drop(db);
    fs::set_permissions(&entry, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::write(&entry, bytes.replace(&hash, &planted)).unwrap();
    let out = sb.run(&["log", "checkpoint", "--sign", keyfile.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("00000000000000000001"),
        "{}",
        stderr(&out)
    );
    let memory = signed_record(&sb, &verifier);
    assert_eq!(memory.lines().count(), 1, "{memory}");
}

/// Found by the third and fourth reviews: the key's record of what it signed sat beside the
/// key path, so a symbolic link in the store, or a copy of the key file, gave the key a second,
/// empty record, and it signed a fork. Now the record belongs to the key (in the user's state
/// folder, named by the verifier key), and a key file inside a local store is refused.
#[test]
fn regression_a_key_has_one_record_however_it_is_reached() {
    let sb = Sandbox::new();
    let (keyfile, verifier) = store_keeping_checkpoints(&sb);
    let link = sb.path("elsewhere.key");
    fs::copy(&keyfile, &link).unwrap();
    let packet = sb.write("p2/a.txt", "second\n");
    let mut cmd = sb.command();
    cmd.env("EVSTORE_SIGNING_KEY", &link);
    let out = cmd
        .args([
            "ingest",
            packet.parent().unwrap().to_str().unwrap(),
            "--name",
            "q",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (size, _) = log_size_and_root(&sb);
    let memory = signed_record(&sb, &verifier);
    assert_eq!(memory.lines().count(), 1, "{memory}");
    assert!(memory.contains(&format!(" {size} ")), "{memory}");

    let inside = sb.store().join("inside.key");
    fs::copy(&keyfile, &inside).unwrap();
    let out = sb.run(&["log", "checkpoint", "--sign", inside.to_str().unwrap()]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is inside the store"),
        "{}",
        stderr(&out)
    );
}

/// Found by the fourth review: a writing command on a log shorter than what the key signed
/// (rolled back) exited 0 and kept nothing, saying nothing.
#[test]
fn regression_a_rolled_back_log_is_named_by_the_writer() {
    let sb = Sandbox::new();
    store_keeping_checkpoints(&sb);
    let backup = sb.path("backup");
    let copy = std::process::Command::new("cp")
        .args(["-a", sb.store().to_str().unwrap(), backup.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(copy.success());
    for name in ["q", "r"] {
        let out = ingest_file(&sb, &format!("{name}/a.txt"), name, name);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    fs::remove_dir_all(sb.store()).unwrap();
    fs::rename(&backup, sb.store()).unwrap();
    let out = ingest_file(&sb, "s/a.txt", "s", "s");
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("rolled back"), "{}", stderr(&out));
}
