//! File proofs (`evstore prove PACKET PATH`, `evstore proof check-file`): the real binary makes a
//! proof from a store, and checks it with no store at all; every tampering a proof's checks
//! exist for fails with the check named (exit 1), and JSON that is not a proof is refused (exit
//! 2).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::sandbox::{code, stderr, Sandbox};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/example-packet");

/// The file of the example packet the tests prove: three folders deep (the root, `logs`,
/// `logs/gate`).
const PROVEN_PATH: &str = "logs/gate/selftest.json";

/// Make a signer key named `name` in the sandbox: its key file and its verifier key.
fn generate_key(sb: &Sandbox, name: &str, file: &str) -> (PathBuf, String) {
    let key_file = sb.path(file);
    let out = sb.run_storeless(&["key", "generate", name, "--out", key_file.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let verifier = String::from_utf8(out.stdout).unwrap().trim().to_string();
    (key_file, verifier)
}

/// `evstore prove ARGS…`: its stdout, the proof's JSON, after checking it exited 0.
fn prove(sb: &Sandbox, args: &[&str]) -> Vec<u8> {
    let mut all = vec!["prove"];
    all.extend_from_slice(args);
    let out = sb.run(&all);
    assert_eq!(code(&out), 0, "prove {args:?}: {}", stderr(&out));
    out.stdout
}

/// `evstore proof check-file PROOF ARGS…` without a store: exit code, stdout and stderr.
fn check_file(sb: &Sandbox, proof: &Path, args: &[&str]) -> (i32, String) {
    let mut all = vec!["proof", "check-file", proof.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = sb.run_storeless(&all);
    (
        code(&out),
        String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out),
    )
}

/// The result word of the check named `check` in check-file's text output.
fn check_result<'t>(text: &'t str, check: &str) -> &'t str {
    let line = text
        .lines()
        .find(|line| line.split_whitespace().next() == Some(check))
        .unwrap_or_else(|| panic!("no line for the {check} check in:\n{text}"));
    let rest = line[check.len()..].trim_start();
    ["ok", "FAILED", "not checked", "skipped"]
        .into_iter()
        .find(|word| rest.starts_with(word))
        .unwrap_or_else(|| panic!("no result on {line:?}"))
}

#[test]
fn a_signed_proof_checks_against_the_file_and_the_key() {
    let sb = Sandbox::new();
    assert_eq!(code(&sb.run(&["ingest", EXAMPLE])), 0);
    let (key_file, verifier) = generate_key(&sb, "ci-gate", "ci.key");
    let proof = prove(
        &sb,
        &[
            "example-packet",
            PROVEN_PATH,
            "--sign",
            key_file.to_str().unwrap(),
        ],
    );
    let json: Value = serde_json::from_slice(&proof).unwrap();
    assert_eq!(json["format"], "evstore-file-proof/1");
    assert_eq!(json["packet"], "example-packet@1");
    assert_eq!(json["path"], PROVEN_PATH);
    assert_eq!(json["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(json["inclusion"]["leaf_index"], 1);
    // The event is exactly what the store's log/ key holds.
    use base64::Engine as _;
    let event = base64::engine::general_purpose::STANDARD
        .decode(json["event"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        event,
        std::fs::read(sb.store().join("log/00000000000000000002")).unwrap()
    );
    assert!(json["checkpoint"]
        .as_str()
        .unwrap()
        .contains("\n\n\u{2014} ci-gate "));
    // `--json` changes nothing: the proof is always JSON.
    let again = prove(
        &sb,
        &[
            "--json",
            "example-packet@1",
            PROVEN_PATH,
            "--sign",
            key_file.to_str().unwrap(),
        ],
    );
    assert_eq!(again, proof, "Ed25519 signatures are deterministic");

    let proof_file = sb.write("proof.json", &proof);
    let file = format!("{EXAMPLE}/{PROVEN_PATH}");
    let (rc, text) = check_file(&sb, &proof_file, &["--file", &file, "--key", &verifier]);
    assert_eq!(rc, 0, "{text}");
    for check in [
        "file",
        "path",
        "nodes",
        "tree",
        "event",
        "root",
        "leaf",
        "checkpoint",
        "inclusion",
        "signature",
    ] {
        assert_eq!(check_result(&text, check), "ok", "{check}: {text}");
    }
    assert!(text.contains("\nPASS: "), "{text}");

    // Without --key and --file, the proof passes but says what it did not check.
    let (rc, text) = check_file(&sb, &proof_file, &[]);
    assert_eq!(rc, 0, "{text}");
    assert_eq!(check_result(&text, "signature"), "not checked", "{text}");
    assert_eq!(check_result(&text, "file"), "not checked", "{text}");
    assert!(text.contains("not checked: file, signature"), "{text}");

    // `--json` for CI: every check with its result, and the verdict.
    let out = sb.run_storeless(&[
        "--json",
        "proof",
        "check-file",
        proof_file.to_str().unwrap(),
        "--key",
        &verifier,
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "PASS");
    assert_eq!(report["packet"], "example-packet@1");
    let results: Vec<(&str, &str)> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["check"].as_str().unwrap(), c["result"].as_str().unwrap()))
        .collect();
    assert_eq!(results[0], ("file", "not-checked"));
    assert_eq!(results[9], ("signature", "pass"));
    assert!(results[1..].iter().all(|(_, result)| *result == "pass"));
}

#[test]
fn an_unsigned_proof_of_a_top_level_file_passes_without_a_key_and_fails_with_one() {
    let sb = Sandbox::new();
    assert_eq!(code(&sb.run(&["ingest", EXAMPLE])), 0);
    let proof = prove(&sb, &["example-packet", "report.json"]);
    let json: Value = serde_json::from_slice(&proof).unwrap();
    assert_eq!(json["nodes"].as_array().unwrap().len(), 1);
    assert!(!json["checkpoint"].as_str().unwrap().contains('\u{2014}'));
    let proof_file = sb.write("proof.json", &proof);
    let file = format!("{EXAMPLE}/report.json");
    let (rc, text) = check_file(&sb, &proof_file, &["--file", &file]);
    assert_eq!(rc, 0, "{text}");
    let (_, verifier) = generate_key(&sb, "ci-gate", "ci.key");
    let (rc, text) = check_file(&sb, &proof_file, &["--key", &verifier]);
    assert_eq!(rc, 1, "{text}");
    assert_eq!(check_result(&text, "signature"), "FAILED", "{text}");
}

#[test]
fn each_tampering_fails_with_the_check_it_breaks_named() {
    let sb = Sandbox::new();
    assert_eq!(code(&sb.run(&["ingest", EXAMPLE])), 0);
    let (key_file, verifier) = generate_key(&sb, "ci-gate", "ci.key");
    let key_arg = key_file.to_str().unwrap();
    // A checkpoint of the log before the second packet: events 1 (init) and 2 (the example).
    let out = sb.run(&["log", "checkpoint", "--sign", key_arg]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let older_checkpoint = String::from_utf8(out.stdout).unwrap();
    // A second packet with a file at the same path (event 3).
    sb.write("second/logs/gate/selftest.json", "{\"other\": true}\n");
    sb.write("second/logs/run.log", "other\n");
    assert_eq!(code(&sb.run(&["ingest", "second"])), 0);
    let proof = prove(&sb, &["example-packet", PROVEN_PATH, "--sign", key_arg]);
    let second = prove(&sb, &["second", PROVEN_PATH, "--sign", key_arg]);
    let proof_json: Value = serde_json::from_slice(&proof).unwrap();
    let second_json: Value = serde_json::from_slice(&second).unwrap();
    assert_eq!(proof_json["inclusion"]["tree_size"], 3);
    let proof_file = sb.write("proof.json", &proof);
    let file = format!("{EXAMPLE}/{PROVEN_PATH}");
    let (rc, text) = check_file(&sb, &proof_file, &["--file", &file, "--key", &verifier]);
    assert_eq!(rc, 0, "{text}");

    // One byte of the file changed.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[10] ^= 0x01;
    let edited = sb.write("edited-selftest.json", &bytes);
    let (rc, text) = check_file(
        &sb,
        &proof_file,
        &["--file", edited.to_str().unwrap(), "--key", &verifier],
    );
    assert_eq!(rc, 1, "{text}");
    assert_eq!(check_result(&text, "file"), "FAILED", "{text}");
    assert!(text.contains("is not the file the proof is of"), "{text}");
    assert!(
        text.contains("FAIL: the proof does not hold: file failed"),
        "{text}"
    );

    // The folder node `logs/gate` of the other packet in place of this one's.
    let mut swapped = proof_json.clone();
    swapped["nodes"][2] = second_json["nodes"][2].clone();
    let swapped_file = sb.write("swapped.json", swapped.to_string());
    let (rc, text) = check_file(&sb, &swapped_file, &["--key", &verifier]);
    assert_eq!(rc, 1, "{text}");
    assert_eq!(check_result(&text, "tree"), "FAILED", "{text}");
    assert!(text.contains("a node was changed or swapped"), "{text}");
    // Both packets' `logs/gate` nodes would do with the other's whole path: then the root is
    // not the tree the event commits.
    let mut rerooted = proof_json.clone();
    rerooted["nodes"] = second_json["nodes"].clone();
    rerooted["file"] = second_json["file"].clone();
    let rerooted_file = sb.write("rerooted.json", rerooted.to_string());
    let (rc, text) = check_file(&sb, &rerooted_file, &["--key", &verifier]);
    assert_eq!(rc, 1, "{text}");
    assert_eq!(check_result(&text, "tree"), "ok", "{text}");
    assert_eq!(check_result(&text, "root"), "FAILED", "{text}");

    // Signed by another key of the same name.
    let (_, other_verifier) = generate_key(&sb, "ci-gate", "other.key");
    let (rc, text) = check_file(&sb, &proof_file, &["--key", &other_verifier]);
    assert_eq!(rc, 1, "{text}");
    assert_eq!(check_result(&text, "signature"), "FAILED", "{text}");

    // A checkpoint, correctly signed, of the log before the second packet's event 3.
    let mut stale = second_json.clone();
    stale["checkpoint"] = Value::String(older_checkpoint);
    let stale_file = sb.write("stale.json", stale.to_string());
    let (rc, text) = check_file(&sb, &stale_file, &["--key", &verifier]);
    assert_eq!(rc, 1, "{text}");
    assert_eq!(check_result(&text, "signature"), "ok", "{text}");
    assert_eq!(check_result(&text, "checkpoint"), "FAILED", "{text}");
    assert!(
        text.contains("does not reach leaf 2 (event 3): it is older than the event"),
        "{text}"
    );
    assert_eq!(check_result(&text, "inclusion"), "FAILED", "{text}");

    // The event of the other packet: its subject is not the proof's packet.
    let mut other_event = proof_json.clone();
    other_event["event"] = second_json["event"].clone();
    let other_event_file = sb.write("other-event.json", other_event.to_string());
    let (rc, text) = check_file(&sb, &other_event_file, &["--key", &verifier]);
    assert_eq!(rc, 1, "{text}");
    assert_eq!(check_result(&text, "event"), "FAILED", "{text}");
    assert!(text.contains("not of \"example-packet@1\""), "{text}");

    // `--json` names the failed check too.
    let out = sb.run_storeless(&[
        "--json",
        "proof",
        "check-file",
        swapped_file.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 1);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "FAIL");
    let tree = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "tree")
        .unwrap();
    assert_eq!(tree["result"], "fail");
}

#[test]
fn json_that_is_not_a_file_proof_and_bad_arguments_are_usage_errors() {
    let sb = Sandbox::new();
    assert_eq!(code(&sb.run(&["ingest", EXAMPLE])), 0);
    let proof: Value = serde_json::from_slice(&prove(&sb, &["example-packet", "report.json"]))
        .expect("a proof is JSON");
    let mut unknown = proof.clone();
    unknown["extra"] = Value::Bool(true);
    let mut unknown_inside = proof.clone();
    unknown_inside["inclusion"]["note"] = Value::Bool(true);
    let mut other_format = proof.clone();
    other_format["format"] = Value::String("evstore-file-proof/2".into());
    let mut missing = proof.clone();
    missing.as_object_mut().unwrap().remove("checkpoint");
    let mut bad_base64 = proof.clone();
    bad_base64["nodes"][0] = Value::String("not base64!".into());
    let mut upper_hex = proof.clone();
    upper_hex["file"]["sha256"] =
        Value::String(proof["file"]["sha256"].as_str().unwrap().to_uppercase());
    for (name, text) in [
        ("unknown field", unknown.to_string()),
        ("unknown nested field", unknown_inside.to_string()),
        ("other format", other_format.to_string()),
        ("missing field", missing.to_string()),
        ("bad base64", bad_base64.to_string()),
        ("upper-case hex", upper_hex.to_string()),
        ("not JSON", "{\"format\": ".to_string()),
        ("a JSON array", "[]".to_string()),
    ] {
        let file = sb.write("malformed.json", text);
        let (rc, output) = check_file(&sb, &file, &[]);
        assert_eq!(rc, 2, "{name}: {output}");
        assert!(output.contains("malformed.json"), "{name}: {output}");
    }
    let good = sb.write("good.json", proof.to_string());
    let (rc, output) = check_file(&sb, &good, &["--key", "not-a-key"]);
    assert_eq!(rc, 2, "{output}");
    let (rc, output) = check_file(&sb, &good, &["--file", "no-such-file"]);
    assert_eq!(rc, 2, "{output}");
    let (rc, output) = check_file(&sb, &good, &["--file", "."]);
    assert_eq!(rc, 2, "{output}");
    assert!(output.contains("not a regular file"), "{output}");
    let (rc, output) = check_file(&sb, &sb.path("absent.json"), &[]);
    assert_eq!(rc, 2, "{output}");
    // A file over the cap is refused without being read whole.
    let big = std::fs::File::create(sb.path("big.json")).unwrap();
    big.set_len((64 << 20) + 1).unwrap();
    let (rc, output) = check_file(&sb, &sb.path("big.json"), &[]);
    assert_eq!(rc, 2, "{output}");
    assert!(output.contains("larger than 64 MiB"), "{output}");

    // prove: the path must be a file of the packet.
    for (path, says) in [
        ("logs", "is a folder in example-packet@1, not a file"),
        ("logs/gate", "is a folder"),
        ("logs/absent.txt", "has no file \"logs/absent.txt\""),
        ("report.json/x", "is a file, not a folder"),
        ("logs/../report.json", "is not a path in a packet"),
        ("/report.json", "is not a path in a packet"),
        ("logs/", "is not a path in a packet"),
        ("", "is not a path in a packet"),
    ] {
        let out = sb.run(&["prove", "example-packet", path]);
        assert_eq!(code(&out), 2, "{path:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{path:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{path:?}");
    }
    let out = sb.run(&["prove", "no-such-packet", "report.json"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let out = sb.run(&[
        "prove",
        "example-packet",
        "report.json",
        "--sign",
        "absent.key",
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

/// The scenario a file proof is for: the proof, the verifier key and one file travel to a
/// machine that has none of the store, and the check passes there.
#[test]
fn the_proof_key_and_file_alone_check_in_an_empty_folder_with_the_store_deleted() {
    let sb = Sandbox::new();
    assert_eq!(code(&sb.run(&["ingest", EXAMPLE])), 0);
    let (key_file, verifier) = generate_key(&sb, "ci-gate", "ci.key");
    let proof = prove(
        &sb,
        &[
            "example-packet",
            PROVEN_PATH,
            "--sign",
            key_file.to_str().unwrap(),
        ],
    );

    let elsewhere = Sandbox::new();
    elsewhere.write("proof.json", &proof);
    elsewhere.write("verifier-key.txt", format!("{verifier}\n"));
    elsewhere.write(
        "selftest.json",
        std::fs::read(format!("{EXAMPLE}/{PROVEN_PATH}")).unwrap(),
    );
    std::fs::remove_dir_all(sb.store()).unwrap();
    drop(sb);

    let key_text = std::fs::read_to_string(elsewhere.path("verifier-key.txt")).unwrap();
    let out = elsewhere.run_storeless(&[
        "proof",
        "check-file",
        "proof.json",
        "--file",
        "selftest.json",
        "--key",
        key_text.trim(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(code(&out), 0, "{text}{}", stderr(&out));
    assert!(text.contains("\nPASS: "), "{text}");
    assert!(!text.contains("not checked"), "{text}");
    // Nothing was created: no store, no cache.
    let mut names: Vec<String> = std::fs::read_dir(elsewhere.dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["proof.json", "selftest.json", "verifier-key.txt"]);
}

/// The vector of FORMAT.md §7h: the parts of a proof of `logs/gate/selftest.json` in
/// `docs/example-packet` that do not depend on the store (the file, the nodes and their ids).
#[test]
fn the_format_vector_is_the_example_packets_proof() {
    use base64::Engine as _;
    let sb = Sandbox::new();
    assert_eq!(code(&sb.run(&["ingest", EXAMPLE])), 0);
    let proof: Value =
        serde_json::from_slice(&prove(&sb, &["example-packet", PROVEN_PATH])).unwrap();
    let doc = include_str!("../../docs/FORMAT.md");
    let section = &doc[doc.find("## 7h.").expect("FORMAT.md has §7h")..];
    let mut expected = vec![
        proof["file"]["sha256"].as_str().unwrap().to_string(),
        proof["file"]["blake3"].as_str().unwrap().to_string(),
    ];
    for node in proof["nodes"].as_array().unwrap() {
        let text = node.as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap();
        expected.push(format!("{} bytes", bytes.len()));
        expected.push(blake3::hash(&bytes).to_hex().to_string());
    }
    // The last node is short enough to show whole.
    expected.push(proof["nodes"][2].as_str().unwrap().to_string());
    for value in &expected {
        assert!(
            section.contains(value.as_str()),
            "FORMAT.md §7h lacks {value}; the vector is {expected:#?}"
        );
    }
}
