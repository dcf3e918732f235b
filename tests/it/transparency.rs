//! The transparency log's offline proof checks (`evstore proof check-inclusion`,
//! `check-consistency`): the binary alone, no store, against a log whose hashes the test
//! computes itself with SHA-256 (RFC 9162's leaf and node hashing, written out here).

use sha2::{Digest, Sha256};

use crate::sandbox::{code, stderr, Sandbox};

fn leaf(entry: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(entry)
        .finalize()
        .into()
}

fn node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

fn hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// A log of the five entries `a` … `e`, written out by hand: its leaves and the roots of its
/// first 3 and all 5 entries.
struct FiveEntries {
    leaves: Vec<[u8; 32]>,
    root3: [u8; 32],
    root5: [u8; 32],
}

fn five_entries() -> FiveEntries {
    let leaves: Vec<[u8; 32]> = [b"a", b"b", b"c", b"d", b"e"]
        .iter()
        .map(|e| leaf(*e))
        .collect();
    let ab = node(&leaves[0], &leaves[1]);
    let cd = node(&leaves[2], &leaves[3]);
    // 3 entries split 2 + 1; 5 entries split 4 + 1.
    let root3 = node(&ab, &leaves[2]);
    let root5 = node(&node(&ab, &cd), &leaves[4]);
    FiveEntries {
        leaves,
        root3,
        root5,
    }
}

/// `evstore proof CHECK --json-proof FILE`, storeless.
fn check_json_proof(sb: &Sandbox, check: &str, file: &std::path::Path) -> std::process::Output {
    sb.run_storeless(&["proof", check, "--json-proof", file.to_str().unwrap()])
}

fn check(sb: &Sandbox, args: &[&str]) -> (i32, String) {
    let out = sb.run_storeless(args);
    (
        code(&out),
        String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out),
    )
}

#[test]
fn check_inclusion_holds_for_the_right_proof_and_fails_for_any_change() {
    let sb = Sandbox::new();
    let log = five_entries();
    // Entry 2 ("c") of 5: its sibling "d", then "ab", then "e".
    let proof = [
        hex(&log.leaves[3]),
        hex(&node(&log.leaves[0], &log.leaves[1])),
        hex(&log.leaves[4]),
    ]
    .join(",");
    let (leaf_c, root5) = (hex(&log.leaves[2]), hex(&log.root5));
    let args = |index: &str, size: &str, root: &str, proof: &str| -> Vec<String> {
        [
            "proof",
            "check-inclusion",
            "--leaf-hash",
            &leaf_c,
            "--index",
            index,
            "--size",
            size,
            "--root",
            root,
            "--proof",
            proof,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |a: Vec<String>| check(&sb, &a.iter().map(String::as_str).collect::<Vec<_>>());
    let (rc, text) = run(args("2", "5", &root5, &proof));
    assert_eq!(rc, 0, "{text}");
    assert!(text.starts_with("PASS"), "{text}");

    let mut flipped = proof.clone().into_bytes();
    flipped[5] = if flipped[5] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    for (index, size, root, proof) in [
        ("3", "5", root5.as_str(), proof.as_str()),
        ("2", "4", root5.as_str(), proof.as_str()),
        ("2", "5", &hex(&log.root3), proof.as_str()),
        ("2", "5", root5.as_str(), flipped.as_str()),
        ("5", "5", root5.as_str(), proof.as_str()),
        ("2", "5", root5.as_str(), ""),
    ] {
        let (rc, text) = run(args(index, size, root, proof));
        assert_eq!(rc, 1, "{index} {size} {root} {proof}: {text}");
        assert!(text.starts_with("FAIL"), "{text}");
    }
    // Malformed arguments are usage errors.
    let upper = root5.to_uppercase();
    for (root, proof) in [
        (upper.as_str(), proof.as_str()),
        ("abc", proof.as_str()),
        (root5.as_str(), "00,11"),
    ] {
        let (rc, text) = run(args("2", "5", root, proof));
        assert_eq!(rc, 2, "{root} {proof}: {text}");
    }
    let out = sb.run_storeless(
        &args("2", "5", &root5, &proof)
            .iter()
            .map(String::as_str)
            .chain(["--json"])
            .collect::<Vec<_>>(),
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["check"], "inclusion");
    assert_eq!(report["verdict"], "PASS");
}

#[test]
fn check_consistency_holds_for_an_appended_log_and_fails_for_a_rewritten_one() {
    let sb = Sandbox::new();
    let log = five_entries();
    // 3 → 5 entries: PROOF(3, D[5]) = SUBPROOF(3, D[0:4], true) : e = c, d, ab, e.
    let proof = [
        hex(&log.leaves[2]),
        hex(&log.leaves[3]),
        hex(&node(&log.leaves[0], &log.leaves[1])),
        hex(&log.leaves[4]),
    ]
    .join(",");
    let (root3, root5) = (hex(&log.root3), hex(&log.root5));
    let run = |old_size: &str, old_root: &str, size: &str, root: &str, proof: &str| {
        check(
            &sb,
            &[
                "proof",
                "check-consistency",
                "--old-size",
                old_size,
                "--old-root",
                old_root,
                "--size",
                size,
                "--root",
                root,
                "--proof",
                proof,
            ],
        )
    };
    let (rc, text) = run("3", &root3, "5", &root5, &proof);
    assert_eq!(rc, 0, "{text}");
    // A log whose third entry was rewritten has another root at 3 entries.
    let rewritten3 = hex(&node(&node(&log.leaves[0], &log.leaves[1]), &leaf(b"X")));
    for (old_size, old_root, size, root, proof) in [
        (
            "3",
            rewritten3.as_str(),
            "5",
            root5.as_str(),
            proof.as_str(),
        ),
        ("3", root3.as_str(), "5", root3.as_str(), proof.as_str()),
        ("4", root3.as_str(), "5", root5.as_str(), proof.as_str()),
        ("6", root3.as_str(), "5", root5.as_str(), proof.as_str()),
        ("3", root3.as_str(), "5", root5.as_str(), ""),
    ] {
        let (rc, text) = run(old_size, old_root, size, root, proof);
        assert_eq!(rc, 1, "{old_size} {size}: {text}");
        assert!(text.starts_with("FAIL"), "{text}");
    }
    // Equal sizes: the empty proof and equal roots.
    assert_eq!(run("5", &root5, "5", &root5, "").0, 0);
    assert_eq!(run("5", &root3, "5", &root5, "").0, 1);
}

#[test]
fn the_stores_log_proves_an_event_and_its_own_growth_and_the_proofs_check_without_a_store() {
    let sb = Sandbox::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/example-packet");
    assert_eq!(code(&sb.run(&["ingest", example])), 0);
    let (rc, before) = sb.json(&["log", "checkpoint"]);
    assert_eq!(rc, 0, "{before}");
    assert_eq!(before["tree_size"], 2);
    sb.write("second/a.txt", "another packet\n");
    assert_eq!(code(&sb.run(&["ingest", "second"])), 0);

    // Leaf 1 is event 2 (the ingest): SHA-256(0x00 || the bytes of its log/ file).
    let (rc, inclusion) = sb.json(&["log", "prove-inclusion", "2"]);
    assert_eq!(rc, 0, "{inclusion}");
    let entry = std::fs::read(sb.store().join("log/00000000000000000002")).unwrap();
    assert_eq!(inclusion["leaf_hash"], hex(&leaf(&entry)));
    assert_eq!(inclusion["leaf_index"], 1);
    assert_eq!(inclusion["tree_size"], 3);
    let file = sb.write("inclusion.json", inclusion.to_string());
    let checked = check_json_proof(&sb, "check-inclusion", &file);
    assert_eq!(code(&checked), 0, "{}", stderr(&checked));

    // The log now extends the log of the first checkpoint.
    let (rc, consistency) = sb.json(&["log", "prove-consistency", "2"]);
    assert_eq!(rc, 0, "{consistency}");
    assert_eq!(consistency["old_root"], before["root"]);
    let file = sb.write("consistency.json", consistency.to_string());
    let checked = check_json_proof(&sb, "check-consistency", &file);
    assert_eq!(code(&checked), 0, "{}", stderr(&checked));

    // A changed hash fails (exit 1); JSON that is not a proof is malformed (exit 2).
    let mut bad = inclusion.clone();
    bad["root"] = serde_json::Value::String(hex(&leaf(b"another root")));
    let file = sb.write("bad.json", bad.to_string());
    let checked = check_json_proof(&sb, "check-inclusion", &file);
    assert_eq!(code(&checked), 1, "{}", stderr(&checked));
    let mut odd = inclusion.clone();
    odd["extra"] = serde_json::Value::Bool(true);
    let file = sb.write("odd.json", odd.to_string());
    let checked = check_json_proof(&sb, "check-inclusion", &file);
    assert_eq!(code(&checked), 2, "{}", stderr(&checked));
    // Events that do not exist, and sizes out of order, are refused.
    assert_eq!(code(&sb.run(&["log", "prove-inclusion", "4"])), 2);
    assert_eq!(code(&sb.run(&["log", "prove-consistency", "3", "2"])), 2);
}

#[test]
fn a_checkpoint_signed_with_a_generated_key_checks_only_with_that_key_and_unchanged() {
    let sb = Sandbox::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/example-packet");
    assert_eq!(code(&sb.run(&["ingest", example])), 0);
    let key_file = sb.path("ci.key");
    let out = sb.run_storeless(&[
        "key",
        "generate",
        "ci-gate",
        "--out",
        key_file.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let verifier = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(verifier.starts_with("ci-gate+"), "{verifier}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = sb.run_storeless(&[
        "key",
        "generate",
        "ci-gate",
        "--out",
        key_file.to_str().unwrap(),
    ]);
    assert_eq!(code(&again), 2, "a key file is never overwritten");
    let other_file = sb.path("other.key");
    let other = sb.run_storeless(&[
        "key",
        "generate",
        "ci-gate",
        "--out",
        other_file.to_str().unwrap(),
    ]);
    let other_verifier = String::from_utf8(other.stdout).unwrap().trim().to_string();

    let out = sb.run(&["log", "checkpoint", "--sign", key_file.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let signed = String::from_utf8(out.stdout).unwrap();
    assert!(signed.contains("\n\n\u{2014} ci-gate "), "{signed}");
    let file = sb.write("checkpoint", &signed);
    let check = |file: &std::path::Path, key: &str| {
        let out = sb.run_storeless(&[
            "proof",
            "check-checkpoint",
            file.to_str().unwrap(),
            "--key",
            key,
        ]);
        (
            code(&out),
            String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out),
        )
    };
    let (rc, text) = check(&file, &verifier);
    assert_eq!(rc, 0, "{text}");
    assert!(text.contains("at size 2"), "{text}");
    // Signed by another key of the same name: exit 1.
    let (rc, text) = check(&file, &other_verifier);
    assert_eq!(rc, 1, "{text}");
    // A changed size: exit 1.
    let changed = sb.write("changed", signed.replacen("\n2\n", "\n3\n", 1));
    let (rc, text) = check(&changed, &verifier);
    assert_eq!(rc, 1, "{text}");
    // Not a signed note, or a bad key: exit 2.
    let plain = sb.write("plain", "evstore-log/x\n2\nAAAA\n");
    assert_eq!(check(&plain, &verifier).0, 2);
    assert_eq!(check(&file, "not-a-key").0, 2);
}
