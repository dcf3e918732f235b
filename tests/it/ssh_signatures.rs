//! Signed seals (issue 16): `seal --sign KEY` writes `HASH_MANIFEST.txt.sig` (OpenSSH `SSHSIG`,
//! namespace `evstore-seal`) and `verify --signed-by ALLOWED_SIGNERS` checks it. Interop is
//! checked with the real OpenSSH: `ssh-keygen -Y verify` accepts what evstore signs, and evstore
//! accepts what `ssh-keygen -Y sign` signs. Every way a signature can fail is a FAIL (exit 1)
//! naming the reason, and a valid signature never hides drift.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::sandbox::*;

/// Run OpenSSH's `ssh-keygen` (required: `.ci/run` installs it if missing).
fn ssh_keygen(args: &[&str], stdin: Option<&Path>) -> std::process::Output {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(args);
    if let Some(path) = stdin {
        cmd.stdin(Stdio::from(
            fs::File::open(path).expect("open ssh-keygen's input"),
        ));
    }
    cmd.output()
        .expect("run ssh-keygen (OpenSSH's; `apt-get install openssh-client`)")
}

/// A new Ed25519 key pair at `path` and `path.pub`, without a passphrase; the public line.
fn new_key(path: &Path, comment: &str) -> String {
    new_key_of(path, "ed25519", "", comment)
}

/// A new key pair of type `kind` (`ed25519`, `ecdsa`, `rsa`) at `path` and `path.pub`, with
/// `passphrase` (empty: none); the public line.
fn new_key_of(path: &Path, kind: &str, passphrase: &str, comment: &str) -> String {
    let out = ssh_keygen(
        &[
            "-q",
            "-t",
            kind,
            "-N",
            passphrase,
            "-C",
            comment,
            "-f",
            path.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "ssh-keygen: {}", stderr(&out));
    fs::read_to_string(format!("{}.pub", path.display()))
        .expect("the public key")
        .trim()
        .to_string()
}

/// A sandbox with the packet folder `p` (seed-shaped files), the key `ci.key` of
/// `ci@example.com`, and `allowed_signers` listing it.
struct Signed {
    sb: Sandbox,
    key: PathBuf,
}

impl Signed {
    fn new() -> Signed {
        let sb = Sandbox::new();
        sb.write(
            "p/report.json",
            "{\"status\": \"PASS \u{2014} rehearsal only\", \"url\": \"a/b\"}\n",
        );
        sb.write("p/logs/gate.log", "line one\nline two\n");
        sb.write("p/commands.sh", "#!/bin/sh\necho ok\n");
        for (path, text) in [
            (
                "original/report.json",
                "{\"status\": \"PASS \u{2014} rehearsal only\", \"url\": \"a/b\"}\n",
            ),
            ("original/logs/gate.log", "line one\nline two\n"),
            ("original/commands.sh", "#!/bin/sh\necho ok\n"),
        ] {
            sb.write(path, text);
        }
        let key = sb.path("ci.key");
        let public = new_key(&key, "ci@example.com");
        sb.write("allowed_signers", format!("ci@example.com {public}\n"));
        Signed { sb, key }
    }

    /// `seal p --sign ci.key`, checked to succeed.
    fn seal(&self) -> Value {
        let (rc, report) = self
            .sb
            .json(&["seal", "p", "--sign", self.key.to_str().unwrap()]);
        assert_eq!(rc, 0, "{report}");
        report
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.sb.path(rel)
    }

    /// `verify p --signed-by allowed_signers ARGS…` as JSON.
    fn verify(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["verify", "p", "--signed-by", "allowed_signers"];
        all.extend_from_slice(args);
        self.sb.json(&all)
    }

    /// `ssh-keygen -Y verify` of `p`'s seal against `allowed_signers` as `identity`.
    fn openssh_verifies(&self, identity: &str) -> std::process::Output {
        ssh_keygen(
            &[
                "-Y",
                "verify",
                "-f",
                self.path("allowed_signers").to_str().unwrap(),
                "-I",
                identity,
                "-n",
                "evstore-seal",
                "-s",
                self.path("p/HASH_MANIFEST.txt.sig").to_str().unwrap(),
            ],
            Some(&self.path("p/HASH_MANIFEST.txt")),
        )
    }

    /// `ssh-keygen -Y sign` of `p`'s seal with `key` in `namespace`, as `p/HASH_MANIFEST.txt.sig`.
    fn openssh_signs(&self, key: &Path, namespace: &str) {
        let out = ssh_keygen(
            &["-Y", "sign", "-f", key.to_str().unwrap(), "-n", namespace],
            Some(&self.path("p/HASH_MANIFEST.txt")),
        );
        assert!(out.status.success(), "ssh-keygen -Y sign: {}", stderr(&out));
        fs::write(self.path("p/HASH_MANIFEST.txt.sig"), &out.stdout).expect("write the signature");
    }

    /// Assert `verify --signed-by` fails with exit 1, every file matching, the signature status
    /// `status`, and its detail containing `says`.
    fn assert_signature_fails(&self, status: &str, says: &str) {
        let (rc, report) = self.verify(&[]);
        assert_eq!(rc, 1, "{report}");
        assert_eq!(report["verdict"], "FAIL");
        assert_eq!(report["counts"]["failed"], 0, "{report}");
        assert_eq!(report["signature"]["status"], status, "{report}");
        let detail = report["signature"]["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{detail}");
        let out = self
            .sb
            .run(&["verify", "p", "--signed-by", "allowed_signers"]);
        assert_eq!(code(&out), 1);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("signature: FAIL ({status})")),
            "{text}"
        );
        let last = text.lines().last().unwrap();
        assert!(
            last.starts_with("FAIL: 3 of 3 files match, but the seal's signature"),
            "{last}"
        );
    }
}

#[test]
fn a_seal_evstore_signs_verifies_with_ssh_keygen_and_with_evstore() {
    let s = Signed::new();
    let report = s.seal();
    assert_eq!(report["signature"]["action"], "written");
    assert_eq!(report["signature"]["namespace"], "evstore-seal");
    let fingerprint = report["signature"]["key_fingerprint"].as_str().unwrap();
    // The fingerprint is the one ssh-keygen -l prints.
    let listed = ssh_keygen(&["-l", "-f", s.path("ci.key.pub").to_str().unwrap()], None);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(fingerprint),
        "{fingerprint} vs {}",
        String::from_utf8_lossy(&listed.stdout)
    );

    let out = s.openssh_verifies("ci@example.com");
    assert!(
        out.status.success(),
        "ssh-keygen -Y verify: {}",
        stderr(&out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Good \"evstore-seal\" signature"));

    let (rc, report) = s.verify(&[]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["signature"]["status"], "valid");
    assert_eq!(report["signature"]["principals"][0], "ci@example.com");
    assert_eq!(report["signature"]["key_fingerprint"], fingerprint);
    // The signature is not a file of the packet: the tree hash is the seal's SHA-256 still.
    assert_eq!(
        report["observed"]["packet_tree_sha256"].as_str().unwrap(),
        coreutils_tree_sha256(&s.path("p"))
    );
    let out = s.sb.run(&["verify", "p", "--signed-by", "allowed_signers"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .last()
            .unwrap()
            .ends_with(&format!("; seal signed by ci@example.com ({fingerprint})")),
        "{text}"
    );
    // Signing again with the same key writes nothing new (Ed25519 is deterministic).
    let before = fs::read(s.path("p/HASH_MANIFEST.txt.sig")).unwrap();
    assert_eq!(s.seal()["signature"]["action"], "unchanged");
    assert_eq!(fs::read(s.path("p/HASH_MANIFEST.txt.sig")).unwrap(), before);
}

#[test]
fn a_seal_ssh_keygen_signs_verifies_with_evstore() {
    let s = Signed::new();
    let sealed = s.sb.run_storeless(&["seal", "p"]);
    assert_eq!(code(&sealed), 0, "{}", stderr(&sealed));
    s.openssh_signs(&s.key, "evstore-seal");
    let (rc, report) = s.verify(&[]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["signature"]["status"], "valid");
    // Also against the seal named with --seal (its signature is FILE.sig) and with --original.
    fs::copy(s.path("p/HASH_MANIFEST.txt"), s.path("seal.txt")).unwrap();
    fs::copy(s.path("p/HASH_MANIFEST.txt.sig"), s.path("seal.txt.sig")).unwrap();
    let (rc, report) = s.verify(&["--seal", "seal.txt"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["signature"]["status"], "valid");
    let (rc, report) = s.verify(&["--original", "original"]);
    assert_eq!(rc, 0, "{report}");
}

#[test]
fn a_changed_seal_an_unlisted_key_another_namespace_and_no_signature_each_fail() {
    let s = Signed::new();
    s.seal();
    // A byte changed in the seal: the folder is edited to match the new seal, so only the
    // signature can tell.
    let mut seal = fs::read_to_string(s.path("p/HASH_MANIFEST.txt")).unwrap();
    fs::write(s.path("p/logs/gate.log"), "line one\nline 2\n").unwrap();
    let new_hash = sha256_hex(b"line one\nline 2\n");
    let old_hash = sha256_hex(b"line one\nline two\n");
    seal = seal.replace(&old_hash, &new_hash);
    fs::write(s.path("p/HASH_MANIFEST.txt"), &seal).unwrap();
    s.assert_signature_fails("invalid", "does not verify over the bytes");
    assert!(!s.openssh_verifies("ci@example.com").status.success());

    // Back to the signed bytes, then a signature by a key the file does not list.
    let s = Signed::new();
    s.seal();
    let stranger = s.path("stranger.key");
    new_key(&stranger, "stranger@example.com");
    s.openssh_signs(&stranger, "evstore-seal");
    s.assert_signature_fails("unlisted", "which it does not list");

    // A signature made for another purpose (`-n file`) by the listed key.
    s.openssh_signs(&s.key, "file");
    s.assert_signature_fails("wrong_namespace", "\"file\"");

    // No signature at all.
    fs::remove_file(s.path("p/HASH_MANIFEST.txt.sig")).unwrap();
    s.assert_signature_fails("missing", "the seal is not signed");

    // Not a signature.
    fs::write(
        s.path("p/HASH_MANIFEST.txt.sig"),
        "-----BEGIN SSH SIGNATURE-----\nAAAA\n",
    )
    .unwrap();
    s.assert_signature_fails("malformed", "not an armored SSH signature");

    // The listed key, but only for other namespaces.
    let s = Signed::new();
    s.seal();
    let public = fs::read_to_string(s.path("ci.key.pub")).unwrap();
    s.sb.write(
        "allowed_signers",
        format!("ci@example.com namespaces=\"git\" {}", public.trim()),
    );
    s.assert_signature_fails("unlisted", "its namespaces are \"git\"");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The six fail-closed cases of the seed report's gate self-test, on a signed seal: each is
/// still a FAIL naming its drift class, and the report says the signature itself was valid.
#[test]
fn the_six_seed_drift_cases_still_fail_with_a_valid_signature() {
    type Edit = fn(&Path);
    let cases: [(&str, Edit, &str, &str); 6] = [
        (
            "edited content",
            |p| {
                fs::write(
                    p.join("report.json"),
                    "{\"status\": \"FAIL \u{2014} rehearsal only\", \"url\": \"a/b\"}\n",
                )
                .unwrap()
            },
            "content",
            "content",
        ),
        (
            "em-dash drift",
            |p| {
                fs::write(
                    p.join("report.json"),
                    "{\"status\": \"PASS - rehearsal only\", \"url\": \"a/b\"}\n",
                )
                .unwrap()
            },
            "typography",
            "content",
        ),
        (
            "JSON ensure_ascii",
            |p| {
                fs::write(
                    p.join("report.json"),
                    "{\"status\": \"PASS \\u2014 rehearsal only\", \"url\": \"a/b\"}\n",
                )
                .unwrap()
            },
            "json_escape",
            "content",
        ),
        (
            "BOM",
            |p| {
                fs::write(
                    p.join("report.json"),
                    "\u{feff}{\"status\": \"PASS \u{2014} rehearsal only\", \"url\": \"a/b\"}\n",
                )
                .unwrap()
            },
            "bom",
            "content",
        ),
        (
            "CRLF",
            |p| {
                fs::write(
                    p.join("report.json"),
                    "{\"status\": \"PASS \u{2014} rehearsal only\", \"url\": \"a/b\"}\r\n",
                )
                .unwrap()
            },
            "crlf",
            "content",
        ),
        (
            "missing file",
            |p| fs::remove_file(p.join("report.json")).unwrap(),
            "missing",
            "missing",
        ),
    ];
    for (case, edit, with_bytes, seal_only) in cases {
        let s = Signed::new();
        s.seal();
        edit(&s.path("p"));
        for (mode, class) in [
            (vec!["--original", "original"], with_bytes),
            (vec![], seal_only),
        ] {
            let (rc, report) = s.verify(&mode);
            assert_eq!(rc, 1, "{case} {mode:?}: {report}");
            assert_eq!(report["verdict"], "FAIL", "{case}");
            assert_eq!(report["signature"]["status"], "valid", "{case}: {report}");
            let file = report["files"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["path"] == "report.json")
                .expect("report.json's result");
            assert_eq!(file["classes"][0], class, "{case} {mode:?}: {report}");
        }
        let out = s.sb.run(&[
            "verify",
            "p",
            "--signed-by",
            "allowed_signers",
            "--original",
            "original",
        ]);
        assert_eq!(code(&out), 1, "{case}");
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text.lines().last().unwrap();
        assert!(
            last.contains(&format!("({with_bytes}: 1)"))
                && last.ends_with("; the seal's signature is valid"),
            "{case}: {last}"
        );
    }
}

#[test]
fn a_signed_packet_verified_against_the_store_checks_the_signature_of_its_manifest() {
    let s = Signed::new();
    s.seal();
    let (rc, ingested) = s.sb.json(&["ingest", "p", "--name", "signed"]);
    assert_eq!(rc, 0, "{ingested}");
    // The signature file is not one of the packet's files.
    assert_eq!(ingested["files"], 3, "{ingested}");
    let (rc, report) = s.verify(&["--against", "signed"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["signature"]["status"], "valid");
    fs::remove_file(s.path("p/HASH_MANIFEST.txt.sig")).unwrap();
    let (rc, report) = s.verify(&["--against", "signed"]);
    assert_eq!(rc, 1, "{report}");
    assert_eq!(report["signature"]["status"], "missing");
}

#[test]
fn seal_refuses_keys_it_cannot_use_safely_and_never_leaves_a_stale_signature() {
    let s = Signed::new();
    let key = s.key.to_str().unwrap().to_string();
    // Readable by others: refused as ssh refuses it.
    fs::set_permissions(&s.key, fs::Permissions::from_mode(0o644)).unwrap();
    let out = s.sb.run_storeless(&["seal", "p", "--sign", &key]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    assert!(
        !s.path("p/HASH_MANIFEST.txt").exists(),
        "nothing is written"
    );
    fs::set_permissions(&s.key, fs::Permissions::from_mode(0o600)).unwrap();
    // The public key instead of the private one.
    let out = s.sb.run_storeless(&["seal", "p", "--sign", "ci.key.pub"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("public key"), "{}", stderr(&out));
    // A key with a passphrase: evstore never prompts.
    let locked = s.path("locked.key");
    new_key_of(&locked, "ed25519", "secret", "");
    let out = s.sb.run_storeless(&["seal", "p", "--sign", "locked.key"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("passphrase"), "{}", stderr(&out));
    // An RSA key.
    let rsa = s.path("rsa.key");
    new_key_of(&rsa, "rsa", "", "");
    let out = s.sb.run_storeless(&["seal", "p", "--sign", "rsa.key"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("Ed25519"), "{}", stderr(&out));
    assert!(
        !s.path("p/HASH_MANIFEST.txt").exists(),
        "nothing is written"
    );

    s.seal();
    // A new seal beside the old seal's signature is refused without --sign, even with --force.
    fs::write(s.path("p/logs/gate.log"), "changed\n").unwrap();
    let out = s.sb.run_storeless(&["seal", "p", "--force"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("signs the seal this would replace"),
        "{}",
        stderr(&out)
    );
    // Another key's signature is not replaced without --force.
    let other = s.path("other.key");
    new_key(&other, "other@example.com");
    let out =
        s.sb.run_storeless(&["seal", "p", "--sign", "other.key", "--force"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = s.sb.run_storeless(&["seal", "p", "--sign", &key]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("different signature"),
        "{}",
        stderr(&out)
    );
    let (rc, report) = s.sb.json(&["seal", "p", "--sign", &key, "--force"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["signature"]["action"], "replaced");
    let (rc, report) = s.verify(&[]);
    assert_eq!(rc, 0, "{report}");
    // No temporary file is left in the packet folder.
    let names: Vec<String> = fs::read_dir(s.path("p"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

#[test]
fn an_allowed_signers_file_evstore_cannot_read_exactly_is_an_error_naming_the_line() {
    let s = Signed::new();
    s.seal();
    for (text, says) in [
        ("# nobody\n".to_string(), "lists no key"),
        ("ci@example.com\n".to_string(), "line 1: no key"),
        (
            format!(
                "ci@example.com {}\nx@y verify-required ssh-ed25519 AAAA\n",
                fs::read_to_string(s.path("ci.key.pub")).unwrap().trim()
            ),
            "line 2: option \"verify-required\"",
        ),
        (
            "ci@example.com valid-before=\"20990101\" ssh-ed25519 AAAA\n".to_string(),
            "local time",
        ),
    ] {
        s.sb.write("allowed_signers", &text);
        let out =
            s.sb.run_storeless(&["verify", "p", "--signed-by", "allowed_signers"]);
        assert_eq!(code(&out), 2, "{text:?}");
        let err = stderr(&out);
        assert!(
            err.contains("allowed_signers") && err.contains(says),
            "{text:?}: {err}"
        );
        assert!(
            out.stdout.is_empty(),
            "no report before the file is read: {text:?}"
        );
    }
}

on_both_backends! {
fn ingest_keeps_the_seal_signature_and_show_export_mirror_and_kb_verify_carry_it() {
    let s = Signed::new();
    let report = s.seal();
    let fingerprint = report["signature"]["key_fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let (rc, ingested) = s.sb.json(&["ingest", "p", "--name", "signed"]);
    assert_eq!(rc, 0, "{ingested}");
    assert_eq!(ingested["seal_signed_by"], fingerprint.as_str());
    let (rc, shown) = s.sb.json(&["show", "signed"]);
    assert_eq!(rc, 0, "{shown}");
    assert_eq!(shown["seal_signed_by"][0], fingerprint.as_str());
    let out = s.sb.run(&["show", "signed"]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("seal signed by      {fingerprint}")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let signature = fs::read(s.path("p/HASH_MANIFEST.txt.sig")).unwrap();

    // export writes the signature beside the seal, byte for byte; OpenSSH accepts it there.
    let (rc, exported) = s.sb.json(&["export", "signed", "out"]);
    assert_eq!(rc, 0, "{exported}");
    assert_eq!(
        fs::read(s.path("out/HASH_MANIFEST.txt.sig")).unwrap(),
        signature
    );
    let (rc, report) =
        s.sb.json(&["verify", "out", "--signed-by", "allowed_signers"]);
    assert_eq!(rc, 0, "{report}");

    // mirror too, and kb verify --signed-by checks every packet folder.
    fs::create_dir(s.path("kb")).unwrap();
    let (rc, mirrored) = s.sb.json(&["mirror", "signed", "kb"]);
    assert_eq!(rc, 0, "{mirrored}");
    let folder = s.path("kb/signed");
    assert_eq!(
        fs::read(folder.join("HASH_MANIFEST.txt.sig")).unwrap(),
        signature
    );
    let (rc, kb) =
        s.sb.json(&["kb", "verify", "kb", "--signed-by", "allowed_signers"]);
    assert_eq!(rc, 0, "{kb}");
    assert_eq!(
        kb["packets"][0]["report"]["signature"]["status"], "valid",
        "{kb}"
    );
    // A packet folder whose signature is gone fails kb verify --signed-by, and says why; without
    // --signed-by the bytes still pass.
    fs::remove_file(folder.join("HASH_MANIFEST.txt.sig")).unwrap();
    let (rc, kb) =
        s.sb.json(&["kb", "verify", "kb", "--signed-by", "allowed_signers"]);
    assert_eq!(rc, 1, "{kb}");
    assert_eq!(
        kb["packets"][0]["report"]["signature"]["status"], "missing",
        "{kb}"
    );
    assert!(
        kb["packets"][0]["reasons"]
            .to_string()
            .contains("seal signature"),
        "{kb}"
    );
    let (rc, kb) = s.sb.json(&["kb", "verify", "kb"]);
    assert_eq!(rc, 0, "{kb}");
}
}

#[test]
fn ingest_refuses_a_signature_that_does_not_sign_the_seal_or_has_no_seal() {
    let s = Signed::new();
    s.seal();
    // Signed for another namespace: not archived, exit 1.
    s.openssh_signs(&s.key, "file");
    let out = s.sb.run(&["ingest", "p", "--name", "bad"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("HASH_MANIFEST.txt.sig"),
        "{}",
        stderr(&out)
    );
    assert!(!s.sb.store().exists(), "nothing archived, no store created");
    // A signature without a seal: exit 2.
    fs::remove_file(s.path("p/HASH_MANIFEST.txt")).unwrap();
    let out = s.sb.run(&["ingest", "p", "--name", "bad"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("without a seal"), "{}", stderr(&out));
}

#[test]
fn a_kept_seal_signature_changed_in_the_store_fails_fsck_show_and_export() {
    let s = Signed::new();
    s.seal();
    let (rc, ingested) = s.sb.json(&["ingest", "p", "--name", "signed"]);
    assert_eq!(rc, 0, "{ingested}");
    let (rc, fsck) = s.sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{fsck}");
    // Replace the kept signature with a valid signature of another seal by another key.
    let kept = first_kept_signature(&s.sb.store(), "seals");
    let other = s.path("other.key");
    new_key(&other, "other@example.com");
    s.sb.write("other-seal.txt", "something else\n");
    let out = ssh_keygen(
        &[
            "-Y",
            "sign",
            "-f",
            other.to_str().unwrap(),
            "-n",
            "evstore-seal",
        ],
        Some(&s.path("other-seal.txt")),
    );
    assert!(out.status.success());
    fs::write(&kept, &out.stdout).unwrap();
    let (rc, fsck) = s.sb.json(&["fsck"]);
    assert_eq!(rc, 1, "{fsck}");
    assert!(
        fsck["problems"].to_string().contains("does not verify"),
        "{fsck}"
    );
    for args in [vec!["show", "signed"], vec!["export", "signed", "out"]] {
        let out = s.sb.run(&args);
        assert_eq!(code(&out), 1, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("signatures/seals"),
            "{}",
            stderr(&out)
        );
    }
    assert!(!s.path("out").exists(), "export left nothing behind");
}

/// An ssh-agent of the test's own, on a socket in the sandbox, holding `keys`; killed on drop.
struct Agent {
    socket: PathBuf,
    pid: String,
}

impl Agent {
    fn start(sb: &Sandbox, keys: &[&Path]) -> Agent {
        let agent = Agent::start_empty(sb, "agent.sock");
        for key in keys {
            let out = Command::new("ssh-add")
                .arg(key)
                .env("SSH_AUTH_SOCK", &agent.socket)
                .output()
                .expect("run ssh-add");
            assert!(out.status.success(), "ssh-add: {}", stderr(&out));
        }
        agent
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(&self.pid).status();
    }
}

#[test]
fn a_key_in_ssh_agent_signs_seals_and_attestations_named_by_its_public_key() {
    let s = Signed::new();
    // A key with a passphrase is refused as a file, and used through the agent.
    let locked = s.path("locked.key");
    let public = new_key_of(&locked, "ed25519", "secret", "ci@example.com");
    s.sb.write(
        "allowed_signers",
        format!("ci@example.com {}", public.trim()),
    );
    let _ = fs::remove_file(s.path("ci.key"));
    // ssh-add needs the passphrase: load the key through a copy without one.
    let plain = s.path("plain.key");
    fs::copy(&locked, &plain).unwrap();
    fs::set_permissions(&plain, fs::Permissions::from_mode(0o600)).unwrap();
    let out = ssh_keygen(
        &[
            "-p",
            "-P",
            "secret",
            "-N",
            "",
            "-f",
            plain.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let agent = Agent::start(&s.sb, &[&plain]);
    fs::remove_file(&plain).unwrap();

    let out =
        s.sb.command_storeless()
            .args(["seal", "p", "--sign", "locked.key.pub"])
            .env("SSH_AUTH_SOCK", &agent.socket)
            .output()
            .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let checked = s.openssh_verifies("ci@example.com");
    assert!(
        checked.status.success(),
        "ssh-keygen -Y verify: {}",
        stderr(&checked)
    );
    let (rc, report) = s.verify(&[]);
    assert_eq!(rc, 0, "{report}");

    // Without an agent, or with one that does not hold the key: exit 2, nothing signed.
    let out =
        s.sb.run_storeless(&["seal", "p", "--sign", "locked.key.pub", "--force"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("SSH_AUTH_SOCK"), "{}", stderr(&out));
    let empty = Agent::start_empty(&s.sb, "empty-agent.sock");
    let out =
        s.sb.command_storeless()
            .args(["seal", "p", "--sign", "locked.key.pub", "--force"])
            .env("SSH_AUTH_SOCK", &empty.socket)
            .output()
            .unwrap();
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("cannot sign"), "{}", stderr(&out));
}

impl Agent {
    /// An agent holding no key, on the socket `name` in the sandbox.
    fn start_empty(sb: &Sandbox, name: &str) -> Agent {
        let socket = sb.path(name);
        let out = Command::new("ssh-agent")
            .args(["-s", "-a"])
            .arg(&socket)
            .output()
            .expect("run ssh-agent (OpenSSH's)");
        assert!(out.status.success(), "ssh-agent: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let pid = text
            .split("SSH_AGENT_PID=")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .expect("ssh-agent prints its pid")
            .to_string();
        Agent { socket, pid }
    }
}

/// Regressions of the first hostile review of signed seals (2026-12-02).
#[test]
fn regression_review_signatures_are_read_as_strictly_as_openssh_reads_them() {
    let s = Signed::new();
    s.seal();
    let good = fs::read(s.path("p/HASH_MANIFEST.txt.sig")).unwrap();
    // CRLF line ends, or text before the armor: OpenSSH refuses them, so evstore does.
    let crlf = String::from_utf8(good.clone())
        .unwrap()
        .replace('\n', "\r\n");
    fs::write(s.path("p/HASH_MANIFEST.txt.sig"), &crlf).unwrap();
    assert!(!s.openssh_verifies("ci@example.com").status.success());
    s.assert_signature_fails("malformed", "exact form OpenSSH writes");
    let mut preamble = b"junk\n".to_vec();
    preamble.extend_from_slice(&good);
    fs::write(s.path("p/HASH_MANIFEST.txt.sig"), &preamble).unwrap();
    s.assert_signature_fails("malformed", "exact form OpenSSH writes");
    fs::write(s.path("p/HASH_MANIFEST.txt.sig"), &good).unwrap();

    // An ECDSA line among the signers is read (it can never accept an evstore seal signature),
    // not an error that makes the whole file unusable.
    let ecdsa = s.path("ec.key");
    new_key_of(&ecdsa, "ecdsa", "", "");
    let ec_public = fs::read_to_string(s.path("ec.key.pub")).unwrap();
    let ci_public = fs::read_to_string(s.path("ci.key.pub")).unwrap();
    s.sb.write(
        "allowed_signers",
        format!("ec@example.com {}ci@example.com {}", ec_public, ci_public),
    );
    let (rc, report) = s.verify(&[]);
    assert_eq!(rc, 0, "{report}");
    // A seal signed with the ECDSA key is refused as a key type evstore does not verify.
    s.openssh_signs(&ecdsa, "evstore-seal");
    s.assert_signature_fails("invalid", "Ed25519 signatures only");
    fs::write(s.path("p/HASH_MANIFEST.txt.sig"), &good).unwrap();

    // A negated principal list: OpenSSH never matches it without the right identity, and
    // evstore, which takes none, accepts nothing from it.
    s.sb.write(
        "allowed_signers",
        format!("*,!ci@example.com {}", ci_public),
    );
    s.assert_signature_fails("unlisted", "negated pattern");

    // FILE.sig beside --seal FILE is never followed as a symlink.
    s.sb.write("allowed_signers", format!("ci@example.com {}", ci_public));
    fs::copy(s.path("p/HASH_MANIFEST.txt"), s.path("seal.txt")).unwrap();
    std::os::unix::fs::symlink(s.path("p/HASH_MANIFEST.txt.sig"), s.path("seal.txt.sig")).unwrap();
    let out = s.sb.run_storeless(&[
        "verify",
        "p",
        "--seal",
        "seal.txt",
        "--signed-by",
        "allowed_signers",
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));

    // A public key file of two lines is not one key.
    s.sb.write("two.pub", format!("{ci_public}{ec_public}"));
    let out = s.sb.run_storeless(&[
        "attestation",
        "verify",
        "allowed_signers",
        "--key",
        "two.pub",
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("exactly one line"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn regression_review_a_second_signer_of_a_kept_seal_means_export_writes_none() {
    let s = Signed::new();
    // The same tree archived unsigned first: its record names no signer.
    let (rc, out) = s.sb.json(&["ingest", "p", "--name", "plain"]);
    assert_eq!(rc, 0, "{out}");
    s.seal();
    let (rc, out) = s.sb.json(&["ingest", "p", "--name", "alice"]);
    assert_eq!(rc, 0, "{out}");
    // Mallory signs the same seal with his key and ingests it under his own name.
    let mallory = s.path("mallory.key");
    new_key(&mallory, "mallory@example.com");
    fs::remove_file(s.path("p/HASH_MANIFEST.txt.sig")).unwrap();
    let (rc, out) = s.sb.json(&["seal", "p", "--sign", "mallory.key"]);
    assert_eq!(rc, 0, "{out}");
    let (rc, out) = s.sb.json(&["ingest", "p", "--name", "mallory"]);
    assert_eq!(rc, 0, "{out}");
    let (rc, shown) = s.sb.json(&["show", "plain"]);
    assert_eq!(rc, 0, "{shown}");
    assert_eq!(
        shown["seal_signed_by"].as_array().unwrap().len(),
        2,
        "{shown}"
    );
    // For the record that names no signer, export cannot tell which signer the reader trusts:
    // it writes none, and says so.
    let out = s.sb.run(&["--json", "export", "plain", "out"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["seal_signed_by"], Value::Null, "{report}");
    assert!(
        stderr(&out).contains("2 signatures of this seal"),
        "{}",
        stderr(&out)
    );
    assert!(!s.path("out/HASH_MANIFEST.txt.sig").exists());
    let (rc, report) =
        s.sb.json(&["verify", "out", "--signed-by", "allowed_signers"]);
    assert_eq!(rc, 1, "{report}");
    assert_eq!(report["signature"]["status"], "missing");
    // Alice's record names her: her packet still exports with her signature.
    let (rc, report) = s.sb.json(&["export", "alice", "out-alice"]);
    assert_eq!(rc, 0, "{report}");
    let (rc, report) =
        s.sb.json(&["verify", "out-alice", "--signed-by", "allowed_signers"]);
    assert_eq!(rc, 0, "{report}");
}

#[test]
fn the_record_names_the_seal_signer_and_its_kept_signature_must_stay() {
    let s = Signed::new();
    let fingerprint = s.seal()["signature"]["key_fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let (rc, ingested) = s.sb.json(&["ingest", "p", "--name", "signed"]);
    assert_eq!(rc, 0, "{ingested}");
    let (rc, shown) = s.sb.json(&["show", "signed"]);
    assert_eq!(rc, 0, "{shown}");
    assert_eq!(shown["seal_signer"], fingerprint.as_str(), "{shown}");
    // The record object itself names the signer (a version-2 record).
    let record =
        evstore::digest::Blake3Digest::parse_hex(shown["record"].as_str().unwrap()).unwrap();
    let store = evstore::store::Store::open(&s.sb.store()).unwrap();
    let (_, bytes) = store.read_small_object(&record).unwrap();
    let decoded = evstore::format::record::PacketRecord::decode(&bytes).unwrap();
    assert_eq!(decoded.seal_signer.as_deref(), Some(fingerprint.as_str()));
    // An unsigned packet's record has none.
    s.sb.write("plain/a.txt", "a\n");
    let (rc, plain) = s.sb.json(&["ingest", "plain"]);
    assert_eq!(rc, 0, "{plain}");
    let (_, shown) = s.sb.json(&["show", "plain"]);
    assert_eq!(shown["seal_signer"], Value::Null);
    // A second signer of the same seal does not change what export writes for this record.
    let mallory = s.path("mallory.key");
    new_key(&mallory, "mallory@example.com");
    s.sb.write("q/report.json", fs::read(s.path("p/report.json")).unwrap());
    s.sb.write(
        "q/logs/gate.log",
        fs::read(s.path("p/logs/gate.log")).unwrap(),
    );
    s.sb.write("q/commands.sh", fs::read(s.path("p/commands.sh")).unwrap());
    let (rc, out) = s.sb.json(&["seal", "q", "--sign", "mallory.key"]);
    assert_eq!(rc, 0, "{out}");
    let (rc, out) = s.sb.json(&["ingest", "q", "--name", "mallory"]);
    assert_eq!(rc, 0, "{out}");
    let (rc, exported) = s.sb.json(&["export", "signed", "out"]);
    assert_eq!(rc, 0, "{exported}");
    assert_eq!(exported["seal_signed_by"], fingerprint.as_str());
    let (rc, report) =
        s.sb.json(&["verify", "out", "--signed-by", "allowed_signers"]);
    assert_eq!(rc, 0, "{report}");
    // The kept signature deleted behind evstore's back: fsck names it, export refuses.
    let folder = s.sb.store().join("signatures/seals");
    let tree = fs::read_dir(&folder)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for entry in fs::read_dir(&tree).unwrap() {
        let path = entry.unwrap().path();
        let text = fs::read(&path).unwrap();
        if text == fs::read(s.path("p/HASH_MANIFEST.txt.sig")).unwrap() {
            fs::remove_file(&path).unwrap();
        }
    }
    let (rc, fsck) = s.sb.json(&["fsck"]);
    assert_eq!(rc, 1, "{fsck}");
    assert!(fsck["problems"].to_string().contains("deleted?"), "{fsck}");
    let out = s.sb.run(&["export", "signed", "out2"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("records that its seal was signed by"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn every_private_key_others_can_read_is_refused_checkpoint_keys_too() {
    let s = Signed::new();
    assert_eq!(code(&s.sb.run(&["init"])), 0);
    let out = s.sb.run(&["key", "generate", "ci", "--out", "note.key"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mode = fs::metadata(s.path("note.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "key generate writes mode 0600");
    let out = s.sb.run(&["log", "checkpoint", "--sign", "note.key"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    fs::set_permissions(s.path("note.key"), fs::Permissions::from_mode(0o640)).unwrap();
    let out = s.sb.run(&["log", "checkpoint", "--sign", "note.key"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    // A checkpoint key is not an SSH key: seal --sign says what it wants.
    fs::set_permissions(s.path("note.key"), fs::Permissions::from_mode(0o600)).unwrap();
    let out = s.sb.run_storeless(&["seal", "p", "--sign", "note.key"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("an evstore checkpoint key"),
        "{}",
        stderr(&out)
    );
}

/// Regressions of the second hostile review of signing (2026-12-02).
#[test]
fn regression_review_an_agent_that_never_answers_does_not_hang_signing() {
    let s = Signed::new();
    let socket = s.path("silent.sock");
    // An "agent" that accepts connections and never answers.
    let mut silent = Command::new("python3")
        .arg("-c")
        .arg(
            "import socket,sys,time\n\
             s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(4)\n\
             conns=[]\n\
             while True:\n    c,_=s.accept(); conns.append(c)\n",
        )
        .arg(&socket)
        .spawn()
        .expect("run python3");
    let started = std::time::Instant::now();
    while !socket.exists() && started.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let started = std::time::Instant::now();
    let out =
        s.sb.command_storeless()
            .args(["seal", "p", "--sign", "ci.key.pub"])
            .env("SSH_AUTH_SOCK", &socket)
            .env("EVSTORE_AGENT_TIMEOUT_SECS", "2")
            .output()
            .unwrap();
    let _ = silent.kill();
    let _ = silent.wait();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("ssh-agent"), "{}", stderr(&out));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "gave up after {:?}",
        started.elapsed()
    );
    assert!(!s.path("p/HASH_MANIFEST.txt").exists(), "nothing written");
    // A public key file of two lines is not one key for signing either.
    let public = fs::read_to_string(s.path("ci.key.pub")).unwrap();
    s.sb.write("two.pub", format!("{public}not a key\n"));
    let out = s.sb.run_storeless(&["seal", "p", "--sign", "two.pub"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

#[test]
fn regression_review_fsck_looks_at_folders_where_signatures_should_be() {
    let s = Signed::new();
    s.seal();
    let (rc, out) = s.sb.json(&["ingest", "p", "--name", "signed"]);
    assert_eq!(rc, 0, "{out}");
    let kept = first_kept_signature(&s.sb.store(), "seals");
    fs::remove_file(&kept).unwrap();
    fs::create_dir(&kept).unwrap();
    let (rc, fsck) = s.sb.json(&["fsck"]);
    assert_eq!(rc, 1, "{fsck}");
    let out = s.sb.run(&["show", "signed"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    // A stray entry beside seals/ and attestations/ is a problem too.
    fs::remove_dir(&kept).unwrap();
    fs::create_dir_all(s.sb.store().join("signatures/other/x")).unwrap();
    let (rc, fsck) = s.sb.json(&["fsck"]);
    assert_eq!(rc, 1, "{fsck}");
    assert!(
        fsck["problems"].to_string().contains("signatures/other"),
        "{fsck}"
    );
}
