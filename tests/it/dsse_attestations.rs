//! Rerun attestations as in-toto Statement v1 in DSSE envelopes (issue 16): `rerun --sign KEY`,
//! `runs --show RUN --export FILE`, `attestation verify FILE --key PUBKEY [--packet DIR]`.
//! evstore's envelopes are checked here with an independent implementation (the PAE written
//! out by hand, Ed25519 by `ring`), and envelopes made by that implementation are checked by
//! evstore.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::sandbox::*;

fn example_packet() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/example-packet"))
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// DSSE's PAE, written out from the specification (not evstore's function).
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// The 32 raw bytes of an `ssh-ed25519` public key line.
fn raw_ed25519(line: &str) -> Vec<u8> {
    let blob = b64()
        .decode(line.split_whitespace().nth(1).expect("base64 field"))
        .expect("base64");
    // string "ssh-ed25519" (4 + 11 bytes), then string key (4 + 32 bytes).
    assert_eq!(&blob[4..15], b"ssh-ed25519");
    blob[19..51].to_vec()
}

/// The OpenSSH public key line of 32 raw Ed25519 bytes.
fn ssh_line(raw: &[u8]) -> String {
    let mut blob = Vec::new();
    blob.extend_from_slice(&11u32.to_be_bytes());
    blob.extend_from_slice(b"ssh-ed25519");
    blob.extend_from_slice(&32u32.to_be_bytes());
    blob.extend_from_slice(raw);
    format!("ssh-ed25519 {}", b64().encode(blob))
}

/// A sandbox holding the example packet archived, and the key `ci.key` (ssh-keygen).
struct Attested {
    sb: Sandbox,
}

impl Attested {
    fn new() -> Attested {
        let sb = Sandbox::new();
        let (rc, out) = sb.json(&["ingest", example_packet().to_str().unwrap()]);
        assert_eq!(rc, 0, "{out}");
        let key = sb.path("ci.key");
        let out = Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "ci@example.com",
                "-f",
            ])
            .arg(&key)
            .output()
            .expect("run ssh-keygen (OpenSSH's; `apt-get install openssh-client`)");
        assert!(out.status.success(), "{}", stderr(&out));
        Attested { sb }
    }

    /// `rerun example-packet ARGS… -- bash rerun.sh {out}`.
    fn rerun(&self, args: &[&str]) -> std::process::Output {
        let script = example_packet().join("rerun.sh");
        let mut all = vec!["rerun", "example-packet"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--", "bash", script.to_str().unwrap(), "{out}"]);
        self.sb.run(&all)
    }

    /// `runs --show 1 --export FILE`, the envelope parsed.
    fn export(&self, file: &str) -> Value {
        let (rc, shown) = self.sb.json(&["runs", "--show", "1", "--export", file]);
        assert_eq!(rc, 0, "{shown}");
        serde_json::from_slice(&fs::read(self.sb.path(file)).unwrap()).expect("JSON")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.sb.path(rel)
    }

    /// `attestation verify FILE --key KEY ARGS…` as JSON.
    fn verify(&self, file: &str, key: &str, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["attestation", "verify", file, "--key", key];
        all.extend_from_slice(args);
        self.sb.json(&all)
    }
}

on_both_backends! {
fn an_envelope_evstore_signs_verifies_with_an_independent_ed25519_and_pae() {
    let a = Attested::new();
    let out = a.rerun(&["--sign", "ci.key"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let envelope = a.export("rerun.intoto.json");
    assert_eq!(envelope["payloadType"], "application/vnd.in-toto+json");
    let payload = b64()
        .decode(envelope["payload"].as_str().unwrap())
        .expect("base64 payload");
    let statement: Value = serde_json::from_slice(&payload).expect("a JSON statement");
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(
        statement["predicateType"],
        "https://evstore.dev/attestation/rerun/v1"
    );
    // The subject is the packet: its digest is the SHA-256 of its HASH_MANIFEST.txt.
    let manifest = fs::read(example_packet().join("HASH_MANIFEST.txt")).unwrap();
    let sha = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&manifest))
    };
    assert_eq!(statement["subject"][0]["digest"]["sha256"], sha.as_str());
    assert_eq!(statement["subject"][0]["name"], "example-packet@1");
    assert_eq!(statement["predicate"]["verdict"], "PASS");
    assert_eq!(statement["predicate"]["command"][0], "bash");
    // One signature: keyid is the fingerprint ssh-keygen -l prints, sig verifies with ring.
    let signatures = envelope["signatures"].as_array().unwrap();
    assert_eq!(signatures.len(), 1);
    let listed = Command::new("ssh-keygen")
        .args(["-l", "-f"])
        .arg(a.path("ci.key.pub"))
        .output()
        .unwrap();
    let keyid = signatures[0]["keyid"].as_str().unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(keyid),
        "{keyid}"
    );
    let public = raw_ed25519(&fs::read_to_string(a.path("ci.key.pub")).unwrap());
    let sig = b64()
        .decode(signatures[0]["sig"].as_str().unwrap())
        .unwrap();
    let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public);
    key.verify(&pae("application/vnd.in-toto+json", &payload), &sig)
        .expect("ring verifies evstore's DSSE signature over the PAE");
    // Not over the bare payload: the PAE is what is signed.
    assert!(key.verify(&payload, &sig).is_err());

    // And evstore checks it too, with the folder as the attested packet.
    let (rc, check) = a.verify(
        "rerun.intoto.json",
        "ci.key.pub",
        &["--packet", example_packet().to_str().unwrap()],
    );
    assert_eq!(rc, 0, "{check}");
    assert_eq!(check["verdict"], "PASS");
    assert_eq!(check["signature_valid"], true);
    assert_eq!(check["packet_tree_sha256"], sha.as_str());
}
}

#[test]
fn an_envelope_signed_by_an_independent_ed25519_verifies_with_evstore() {
    let a = Attested::new();
    let out = a.rerun(&[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let unsigned = a.export("unsigned.json");
    assert_eq!(unsigned["signatures"], json!([]));
    let payload = b64().decode(unsigned["payload"].as_str().unwrap()).unwrap();

    // A key made by ring, its OpenSSH public key line written by hand.
    let seed = [42u8; 32];
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
    use ring::signature::KeyPair as _;
    a.sb.write(
        "ring.pub",
        format!("{}\n", ssh_line(pair.public_key().as_ref())),
    );
    let sig = pair.sign(&pae("application/vnd.in-toto+json", &payload));
    let envelope = json!({
        "payloadType": "application/vnd.in-toto+json",
        "payload": unsigned["payload"],
        "signatures": [{"keyid": "", "sig": b64().encode(sig.as_ref())}],
    });
    a.sb.write("ring.json", envelope.to_string());
    let (rc, check) = a.verify("ring.json", "ring.pub", &[]);
    assert_eq!(rc, 0, "{check}");
    assert_eq!(check["signature_valid"], true);

    // The same signature on a payload changed by one byte fails (exit 1), saying why.
    let text = String::from_utf8(payload.clone()).unwrap();
    assert!(text.contains("rerun.sh"));
    let changed = text.replacen("rerun.sh", "rerun.sx", 1).into_bytes();
    let mut tampered = envelope.clone();
    tampered["payload"] = json!(b64().encode(&changed));
    a.sb.write("tampered.json", tampered.to_string());
    let (rc, check) = a.verify("tampered.json", "ring.pub", &[]);
    assert_eq!(rc, 1, "{check}");
    assert_eq!(check["signature_valid"], false, "{check}");
    // Another key: exit 1.
    let (rc, check) = a.verify("ring.json", "ci.key.pub", &[]);
    assert_eq!(rc, 1, "{check}");
    assert!(
        check["reasons"][0]
            .as_str()
            .unwrap()
            .contains("no signature"),
        "{check}"
    );
    // No signature at all: exit 1.
    let (rc, check) = a.verify("unsigned.json", "ring.pub", &[]);
    assert_eq!(rc, 1, "{check}");
    assert!(
        check["reasons"][0].as_str().unwrap().contains("not signed"),
        "{check}"
    );
    // Another packet folder: exit 1.
    a.sb.write("other/a.txt", "a\n");
    let (rc, check) = a.verify("ring.json", "ring.pub", &["--packet", "other"]);
    assert_eq!(rc, 1, "{check}");
    assert!(check["reasons"][0]
        .as_str()
        .unwrap()
        .contains("not the attested subject"));
    // Not an envelope, or not an OpenSSH key: exit 2.
    a.sb.write(
        "junk.json",
        "{\"payloadType\": \"text/plain\", \"payload\": \"\", \"signatures\": []}",
    );
    let out =
        a.sb.run(&["attestation", "verify", "junk.json", "--key", "ring.pub"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("payloadType"), "{}", stderr(&out));
    let out =
        a.sb.run(&["attestation", "verify", "ring.json", "--key", "ring.json"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("not an OpenSSH public key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn signing_refuses_a_bad_key_before_running_and_export_never_overwrites() {
    let a = Attested::new();
    a.sb.write("not-a-key", "hello\n");
    let marker = a.path("ran");
    let out = a.sb.run(&[
        "rerun",
        "example-packet",
        "--sign",
        "not-a-key",
        "--",
        "touch",
        marker.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 2);
    assert!(
        !marker.exists(),
        "the generator ran before the key was read"
    );
    let (rc, runs) = a.sb.json(&["runs"]);
    assert_eq!(rc, 0);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 0);

    let out = a.rerun(&["--sign", "ci.key"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    a.sb.write("exists.json", "keep me\n");
    let out =
        a.sb.run(&["runs", "--show", "1", "--export", "exists.json"]);
    assert_eq!(code(&out), 2);
    assert_eq!(
        fs::read_to_string(a.path("exists.json")).unwrap(),
        "keep me\n"
    );
    let out = a.sb.run(&["runs", "--show", "9"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));

    // A stored signature changed behind evstore's back is never exported.
    let stored = first_kept_signature(&a.sb.store(), "attestations");
    let text = fs::read_to_string(&stored).unwrap();
    let mut record: Value = serde_json::from_str(&text).unwrap();
    let mut sig = b64().decode(record["sig"].as_str().unwrap()).unwrap();
    sig[0] ^= 1;
    record["sig"] = json!(b64().encode(sig));
    fs::write(&stored, format!("{record}\n")).unwrap();
    let out = a.sb.run(&["runs", "--show", "1", "--export", "new.json"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a valid signature"),
        "{}",
        stderr(&out)
    );
    assert!(!a.path("new.json").exists());
}

/// Regression of the second hostile review: a signed payload evstore could never have written
/// (a duplicate key, another subject name, other spacing) is not accepted, however it parses.
#[test]
fn regression_review_only_the_canonical_statement_of_its_predicate_passes() {
    let a = Attested::new();
    let out = a.rerun(&[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let unsigned = a.export("unsigned.json");
    let payload = b64().decode(unsigned["payload"].as_str().unwrap()).unwrap();
    let text = String::from_utf8(payload).unwrap();
    let seed = [7u8; 32];
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
    use ring::signature::KeyPair as _;
    a.sb.write(
        "ring.pub",
        format!("{}\n", ssh_line(pair.public_key().as_ref())),
    );
    let sign = |name: &str, statement: &str| {
        let sig = pair.sign(&pae("application/vnd.in-toto+json", statement.as_bytes()));
        let envelope = json!({
            "payloadType": "application/vnd.in-toto+json",
            "payload": b64().encode(statement.as_bytes()),
            "signatures": [{"keyid": "", "sig": b64().encode(sig.as_ref())}],
        });
        a.sb.write(name, envelope.to_string());
    };
    sign("good.json", &text);
    let (rc, check) = a.verify("good.json", "ring.pub", &[]);
    assert_eq!(rc, 0, "{check}");
    let duplicate = text.replacen(
        "\"verdict\":\"PASS\"",
        "\"verdict\":\"FAIL\",\"verdict\":\"PASS\"",
        1,
    );
    let renamed = text.replacen("\"name\":\"example-packet@1\"", "\"name\":\"release@9\"", 1);
    let spaced = text.replacen("{\"_type\"", "{ \"_type\"", 1);
    for (name, statement) in [
        ("dup.json", duplicate),
        ("renamed.json", renamed),
        ("spaced.json", spaced),
    ] {
        assert_ne!(statement, text, "{name}: the edit applies");
        sign(name, &statement);
        let out =
            a.sb.run(&["attestation", "verify", name, "--key", "ring.pub"]);
        assert_eq!(code(&out), 2, "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("canonical statement"),
            "{name}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn regression_review_a_run_whose_signing_failed_can_be_signed_later() {
    let a = Attested::new();
    // Stored signature records are kept in one exact form: a CR is corrupt.
    let out = a.rerun(&["--sign", "ci.key"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let stored = first_kept_signature(&a.sb.store(), "attestations");
    let text = fs::read_to_string(&stored).unwrap();
    fs::write(&stored, text.replace('\n', "\r\n")).unwrap();
    let out = a.sb.run(&["runs", "--show", "1"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("exact form"), "{}", stderr(&out));
    fs::write(&stored, &text).unwrap();
    // An unsigned run is signed afterwards with runs --show RUN --sign.
    let out = a.rerun(&[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (rc, shown) = a.sb.json(&["runs", "--show", "2"]);
    assert_eq!(rc, 0, "{shown}");
    assert_eq!(shown["signed_by"], json!([]));
    let (rc, shown) = a.sb.json(&[
        "runs", "--show", "2", "--sign", "ci.key", "--export", "two.json",
    ]);
    assert_eq!(rc, 0, "{shown}");
    assert_eq!(shown["signed_by"].as_array().unwrap().len(), 1, "{shown}");
    let (rc, check) = a.verify("two.json", "ci.key.pub", &[]);
    assert_eq!(rc, 0, "{check}");
}
