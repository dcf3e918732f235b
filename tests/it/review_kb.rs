//! Review of issue 12 (KB and mirror): two mirrors at once never publish one inside the other;
//! a KB_DIR inside a packet folder, a symlinked KB_DIR and a KB_DIR in the staging area are
//! refused; a file the catalog recorded as a copy is never accepted as a reference; `diff`
//! resolves references as `verify` does; `kb verify` and `verify` text reads right.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::sandbox::*;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ok(sb: &Sandbox, args: &[&str]) -> Output {
    let out = sb.run(args);
    assert_eq!(code(&out), 0, "{args:?}: {}{}", stdout(&out), stderr(&out));
    out
}

fn canonical(sb: &Sandbox, rel: &str) -> PathBuf {
    fs::canonicalize(sb.path(rel)).unwrap()
}

/// A KB with `pk` (two files, one in a subfolder) mirrored at `kb/pk`, and `other` ingested.
fn kb_with_pk() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("pk/a", "a\n");
    sb.write("pk/docs/d", "d\n");
    sb.write("other/o", "o\n");
    fs::create_dir(sb.path("kb")).unwrap();
    ok(&sb, &["ingest", "pk"]);
    ok(&sb, &["ingest", "other"]);
    ok(&sb, &["mirror", "pk", "kb"]);
    sb
}

// ---- two mirrors at once ---------------------------------------------------------------------

#[test]
fn regression_two_mirrors_at_once_never_publish_one_inside_the_other() {
    let sb = Sandbox::new();
    // A packet slow enough to mirror that the small one is published while it stages.
    for i in 0..200 {
        let bytes: Vec<u8> = (0..100_000u32)
            .map(|n| (n.wrapping_mul(2_654_435_761).wrapping_add(i) >> 13) as u8)
            .collect();
        sb.write(&format!("many/f{i}"), bytes);
    }
    sb.write("small/s", "s\n");
    ok(&sb, &["ingest", "many"]);
    ok(&sb, &["ingest", "small"]);
    // The stagger only varies who wins; what is asserted holds whoever wins.
    for (round, stagger_ms) in [0u64, 30, 100].into_iter().enumerate() {
        let kb = format!("kb{round}");
        fs::create_dir(sb.path(&kb)).unwrap();
        let slow = sb
            .command()
            .args(["mirror", "many", &kb, "--as", "q/inner"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(stagger_ms));
        let fast = sb.run(&["mirror", "small", &kb, "--as", "q"]);
        let slow = slow.wait_with_output().unwrap();
        let codes = (code(&slow), code(&fast));
        // Exactly one publishes; the other is refused (exit 2) and says why.
        let (winner, loser, packet, rel) = match codes {
            (0, 2) => (&slow, &fast, "many", "q/inner"),
            (2, 0) => (&fast, &slow, "small", "q"),
            _ => panic!(
                "round {round}: exit codes {codes:?}\nslow: {}\nfast: {}",
                stderr(&slow),
                stderr(&fast)
            ),
        };
        assert!(stdout(winner).contains("mirrored"), "{}", stdout(winner));
        assert!(
            stderr(loser).contains("packet folder"),
            "round {round}: {}",
            stderr(loser)
        );
        let verified = sb.run(&["kb", "verify", &kb]);
        assert_eq!(code(&verified), 0, "round {round}: {}", stdout(&verified));
        // Byte for byte what the winner alone publishes: nothing of the loser anywhere.
        let alone = format!("alone{round}");
        fs::create_dir(sb.path(&alone)).unwrap();
        ok(&sb, &["mirror", packet, &alone, "--as", rel]);
        assert_eq!(
            tree_snapshot(&sb.path(&kb)),
            tree_snapshot(&sb.path(&alone)),
            "round {round}"
        );
    }
}

// ---- KB_DIR inside a packet folder -----------------------------------------------------------

#[test]
fn regression_mirror_with_kb_dir_inside_a_published_packet_folder_is_refused() {
    let sb = kb_with_pk();
    let before = tree_snapshot(&sb.path("kb"));
    let out = sb.run(&["mirror", "other", "kb/pk/docs"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let packet_folder = canonical(&sb, "kb/pk");
    assert!(
        stderr(&out).contains(&format!(
            "lies inside the packet folder {}",
            packet_folder.display()
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(tree_snapshot(&sb.path("kb")), before, "the KB changed");
    let verified = sb.run(&["kb", "verify", "kb"]);
    assert_eq!(code(&verified), 0, "{}", stdout(&verified));

    // The same when the packet folder is gone for now but the catalog records it there.
    fs::rename(sb.path("kb/pk"), sb.path("moved-pk")).unwrap();
    fs::create_dir_all(sb.path("kb/pk/docs")).unwrap();
    let before = tree_snapshot(&sb.path("kb"));
    let out = sb.run(&["mirror", "other", "kb/pk/docs"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "lies inside {}, where the catalog records a mirror",
            packet_folder.display()
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(tree_snapshot(&sb.path("kb")), before, "the KB changed");
}

// ---- a symlinked KB_DIR ----------------------------------------------------------------------

#[test]
fn regression_mirror_refuses_a_symlinked_kb_dir_as_kb_verify_does() {
    let sb = Sandbox::new();
    sb.write("p1/x", "1\n");
    ok(&sb, &["ingest", "p1"]);
    fs::create_dir(sb.path("real")).unwrap();
    symlink("real", sb.path("kbl")).unwrap();
    let before = tree_snapshot(&sb.path("real"));
    let out = sb.run(&["mirror", "p1", "kbl"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("kbl: is a symbolic link (to real)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        tree_snapshot(&sb.path("real")),
        before,
        "published through the link"
    );
    let verified = sb.run(&["kb", "verify", "kbl"]);
    assert_eq!(code(&verified), 2, "{}", stderr(&verified));
    // The folder itself is a KB like any other.
    ok(&sb, &["mirror", "p1", "real"]);
}

// ---- KB_DIR in the staging area --------------------------------------------------------------

#[test]
fn regression_mirror_into_the_staging_area_is_refused() {
    let sb = Sandbox::new();
    sb.write("good/g", "g\n");
    ok(&sb, &["ingest", "good"]);
    fs::create_dir(sb.path("kb")).unwrap();
    ok(&sb, &["mirror", "good", "kb"]);
    let before = tree_snapshot(&sb.path("kb"));
    for kb_dir in ["kb/.evstore-staging", "kb/.evstore-staging/"] {
        let out = sb.run(&["mirror", "good", kb_dir, "--as", "hid"]);
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        assert!(
            stderr(&out).contains("is or lies inside a .evstore-staging folder"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(tree_snapshot(&sb.path("kb")), before, "the KB changed");
    let verified = sb.run(&["kb", "verify", "kb"]);
    assert_eq!(code(&verified), 0, "{}", stdout(&verified));
    assert!(
        !stdout(&verified).contains("staging folder"),
        "{}",
        stdout(&verified)
    );
}

// ---- a forged references file in a copy-mode mirror ------------------------------------------

/// `p` (files s, t) mirrored at kb/p; `q` (file s, the bytes of p/s) mirrored with `dedup` at
/// kb/q2, whose s is then removed and replaced by a forged references file pointing at p/s.
fn forged(dedup: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.write("p/s", "s\n");
    sb.write("p/t", "t\n");
    sb.write("q/s", "s\n");
    fs::create_dir(sb.path("kb")).unwrap();
    ok(&sb, &["ingest", "p"]);
    ok(&sb, &["ingest", "q"]);
    ok(&sb, &["mirror", "p", "kb"]);
    ok(&sb, &["mirror", "q", "kb", "--as", "q2", "--dedup", dedup]);
    assert!(!sb.path("kb/q2/KB_REFERENCES.txt").exists());
    let sha = digest_hex(&fs::read(sb.path("kb/p/s")).unwrap());
    fs::remove_file(sb.path("kb/q2/s")).unwrap();
    fs::write(
        sb.path("kb/q2/KB_REFERENCES.txt"),
        format!("{sha}\ts\tp/s\n"),
    )
    .unwrap();
    sb
}

fn digest_hex(bytes: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(bytes)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn regression_copy_mode_mirror_with_a_forged_references_file_never_passes() {
    for (dedup, recorded) in [("copy", "a copy"), ("hardlink", "a hard link")] {
        let sb = forged(dedup);
        let before = tree_snapshot(&sb.path("kb"));

        let out = sb.run(&["kb", "verify", "kb"]);
        assert_eq!(code(&out), 1, "{dedup}: {}", stdout(&out));
        let text = stdout(&out);
        assert!(
            text.contains("FAIL  q2  (q@1) [missing, recorded copy replaced by a reference]"),
            "{dedup}: {text}"
        );
        assert!(text.contains("q2/s  [missing]"), "{dedup}: {text}");
        assert!(
            text.contains(&format!(
                "the catalog recorded s as {recorded} in this folder"
            )),
            "{dedup}: {text}"
        );

        for args in [
            &["verify", "kb/q2", "--against", "q"][..],
            &["diff", "packet:q", "kb/q2"][..],
        ] {
            let out = sb.run(args);
            assert_eq!(code(&out), 1, "{dedup} {args:?}: {}", stdout(&out));
            let text = stdout(&out);
            assert!(text.contains("FAIL  s  [missing]"), "{args:?}: {text}");
            assert!(
                text.contains(&format!("the catalog recorded s as {recorded}")),
                "{args:?}: {text}"
            );
            assert!(
                text.contains("FAIL: 1 of 1 file differs (missing: 1)"),
                "{args:?}: {text}"
            );
        }
        let (rc, report) = sb.json(&["kb", "verify", "kb"]);
        assert_eq!(rc, 1);
        let q2 = report["packets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["folder"] == "q2")
            .unwrap();
        assert_eq!(q2["verdict"], "FAIL");
        assert_eq!(q2["classes"][0], "missing");

        // Without a store the references resolve to the pinned bytes, and the output says the
        // file is not in the folder.
        let out = sb.run(&["kb", "verify", "kb", "--no-store"]);
        assert_eq!(code(&out), 0, "{}", stdout(&out));
        assert!(
            stdout(&out)
                .contains("q2/s is not in the folder: referenced, its bytes were read at p/s"),
            "{}",
            stdout(&out)
        );
        let out = sb.run_storeless(&["verify", "kb/q2"]);
        assert_eq!(code(&out), 0, "{}", stdout(&out));
        assert!(
            stdout(&out)
                .contains("note: s is not in kb/q2: KB_REFERENCES.txt references its bytes at p/s"),
            "{}",
            stdout(&out)
        );
        assert_eq!(tree_snapshot(&sb.path("kb")), before, "the KB changed");
    }
}

// ---- diff resolves references ----------------------------------------------------------------

#[test]
fn regression_diff_resolves_kb_references_as_verify_does() {
    let sb = Sandbox::new();
    sb.write("p/s", "s\n");
    sb.write("q/s", "s\n");
    sb.write("q/u", "u\n");
    fs::create_dir(sb.path("kb")).unwrap();
    ok(&sb, &["ingest", "p"]);
    ok(&sb, &["ingest", "q"]);
    ok(&sb, &["mirror", "p", "kb"]);
    ok(&sb, &["mirror", "q", "kb", "--dedup", "reference"]);
    assert!(sb.path("kb/q/KB_REFERENCES.txt").exists());
    let before = tree_snapshot(&sb.path("kb"));
    for args in [
        &["diff", "packet:q", "kb/q"][..],
        &["diff", "seal:kb/q/HASH_MANIFEST.txt", "kb/q"][..],
        &["verify", "kb/q", "--against", "q"][..],
    ] {
        let out = sb.run(args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stdout(&out));
        assert!(
            stdout(&out).contains("note: s is not in kb/q: KB_REFERENCES.txt references"),
            "{args:?}: {}",
            stdout(&out)
        );
        assert!(!stdout(&out).contains("[extra]"), "{}", stdout(&out));
    }
    assert_eq!(tree_snapshot(&sb.path("kb")), before, "the KB changed");
    // Copied out of its KB, the folder is compared as it is, and the output says why.
    fs::create_dir(sb.path("copied")).unwrap();
    for name in ["HASH_MANIFEST.txt", "KB_REFERENCES.txt", "u"] {
        fs::copy(
            sb.path(&format!("kb/q/{name}")),
            sb.path(&format!("copied/{name}")),
        )
        .unwrap();
    }
    let out = sb.run(&["diff", "packet:q", "copied"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("note: copied holds KB_REFERENCES.txt but no KB was found"),
        "{}",
        stdout(&out)
    );
    // The referenced bytes change: diff fails like verify.
    fs::write(sb.path("kb/p/s"), "S\n").unwrap();
    let out = sb.run(&["diff", "packet:q", "kb/q"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(stdout(&out).contains("FAIL  s  ["), "{}", stdout(&out));
}

// ---- kb verify text --------------------------------------------------------------------------

#[test]
fn regression_kb_verify_text_reads_right_for_one_and_many_and_never_an_empty_class_list() {
    let sb = Sandbox::new();
    sb.write("p/s", "s\n");
    sb.write("p/t", "t\n");
    sb.write("q/s", "s\n");
    sb.write("q/t", "t\n");
    sb.write("q/u", "u\n");
    fs::create_dir(sb.path("kb")).unwrap();
    ok(&sb, &["ingest", "p"]);
    ok(&sb, &["ingest", "q"]);
    ok(&sb, &["mirror", "p", "kb"]);

    let out = ok(&sb, &["kb", "verify", "kb"]);
    let kb = canonical(&sb, "kb");
    assert!(
        stdout(&out).ends_with(&format!(
            "PASS: 0 of 1 packet folder failed in {}\n",
            kb.display()
        )),
        "{}",
        stdout(&out)
    );
    // KB_DIR itself a packet folder: its label is `.`.
    let out = ok(&sb, &["kb", "verify", "kb/p"]);
    assert!(
        stdout(&out).starts_with("PASS  .  (p@1)\n"),
        "{}",
        stdout(&out)
    );

    // A references file that cannot be trusted, in a folder that holds every file: the FAIL
    // names the reason.
    ok(&sb, &["mirror", "p", "kb", "--as", "p5"]);
    fs::write(sb.path("kb/p5/KB_REFERENCES.txt"), "junk\n").unwrap();
    let out = sb.run(&["kb", "verify", "kb"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("FAIL  p5  (p@1) [untrusted references file]"),
        "{text}"
    );
    assert!(!text.contains("[]"), "{text}");
    assert!(
        text.ends_with(&format!(
            "FAIL: 1 of 2 packet folders failed in {}\n",
            kb.display()
        )),
        "{text}"
    );

    // verify counts the packet's files, not the references file.
    ok(&sb, &["mirror", "q", "kb", "--dedup", "reference"]);
    assert_eq!(
        fs::read_to_string(sb.path("kb/q/KB_REFERENCES.txt"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    fs::write(sb.path("kb/q/KB_REFERENCES.txt"), "junk\n").unwrap();
    for args in [
        &["verify", "kb/q", "--against", "q"][..],
        &["verify", "kb/q"][..],
    ] {
        let out = sb.run(args);
        assert_eq!(code(&out), 1, "{args:?}: {}", stdout(&out));
        assert!(
            stdout(&out).ends_with(
                "FAIL: 2 of 3 files differ (missing: 2); also KB_REFERENCES.txt fails (content)\n"
            ),
            "{args:?}: {}",
            stdout(&out)
        );
    }
    let out = sb.run(&["kb", "verify", "kb"]);
    assert!(
        stdout(&out).contains("FAIL  q  (q@1) [missing, untrusted references file]"),
        "{}",
        stdout(&out)
    );
}

/// Regression (final review of issue 12): a `HASH_MANIFEST.txt` that is a folder or a FIFO
/// stopped the `kb verify` walk below its folder without making that folder a packet folder, so
/// a tampered packet folder under it was never checked: "PASS: 0 of 0 packet folders".
#[test]
fn regression_a_seal_that_is_not_a_file_never_hides_the_packet_folders_below_it() {
    for kind in ["folder", "fifo"] {
        let sb = Sandbox::new();
        sb.write("kb/x/inner/f.txt", "sealed\n");
        ok(&sb, &["seal", "kb/x/inner"]);
        fs::write(sb.path("kb/x/inner/f.txt"), "tampered\n").unwrap();
        let fake = sb.path("kb/x/HASH_MANIFEST.txt");
        if kind == "folder" {
            fs::create_dir(&fake).unwrap();
        } else {
            let status = Command::new("mkfifo").arg(&fake).status().unwrap();
            assert!(status.success());
        }
        let out = sb.run_storeless(&["kb", "verify", "kb"]);
        assert_eq!(code(&out), 1, "{kind}: {}{}", stdout(&out), stderr(&out));
        assert!(stdout(&out).contains("FAIL"), "{kind}: {}", stdout(&out));
    }
}

/// Regression (final review of issue 12): `diff A B` passed when the expected folder A held a
/// symlink that B lacks: only the observed side's non-regular entries were reported, and two
/// missing tree hashes compared equal.
#[test]
fn regression_diff_never_passes_when_either_folder_holds_a_symlink() {
    let sb = Sandbox::new();
    sb.write("a/a.txt", "same\n");
    sb.write("b/a.txt", "same\n");
    symlink("a.txt", sb.path("a/link")).unwrap();
    for (first, second) in [("a", "b"), ("b", "a")] {
        let out = sb.run_storeless(&["diff", first, second]);
        assert_eq!(code(&out), 1, "diff {first} {second}: {}", stdout(&out));
        assert!(stdout(&out).contains("link"), "{}", stdout(&out));
    }
    // Both holding the symlink: still no PASS (a packet cannot hold one).
    symlink("a.txt", sb.path("b/link")).unwrap();
    let out = sb.run_storeless(&["diff", "a", "b"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
}
