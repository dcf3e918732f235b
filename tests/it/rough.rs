//! Issue 12, "Rough edges": what the text and JSON output says, through the real binary.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

use serde_json::Value;

use crate::sandbox::{code, stderr, write_packet, Sandbox};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// RFC 3339 UTC of Unix nanoseconds, computed by coreutils `date`, independently of evstore.
fn date_rfc3339_nanos(nanos: u64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{}", nanos / 1_000_000_000)])
        .arg("+%Y-%m-%dT%H:%M:%S")
        .output()
        .expect("run date");
    assert!(out.status.success());
    format!(
        "{}.{:09}Z",
        String::from_utf8_lossy(&out.stdout).trim(),
        nanos % 1_000_000_000
    )
}

fn ok(sb: &Sandbox, args: &[&str]) -> String {
    let out = sb.run(args);
    assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn regression_times_print_rfc3339_utc_in_text_and_json() {
    let sb = Sandbox::new();
    write_packet(&sb, "p");
    ok(&sb, &["ingest", "p", "--source-date-epoch", "1700000000"]);

    // show: RFC 3339 in text, the number and the string in JSON.
    let (_, shown) = sb.json(&["show", "p"]);
    let nanos = shown["created_unix_nanos"].as_u64().expect("nanos");
    let created = date_rfc3339_nanos(nanos);
    assert_eq!(shown["created"], created.as_str(), "{shown}");
    let text = ok(&sb, &["show", "p"]);
    assert!(
        text.contains(&format!("\ncreated             {created}\n")),
        "{text}"
    );
    assert!(
        text.contains("\nsource_date_epoch   1700000000 (2023-11-14T22:13:20Z)\n"),
        "{text}"
    );
    assert!(
        !text.contains(&nanos.to_string()),
        "raw nanoseconds: {text}"
    );

    // ls: a date column (UTC, to the second).
    let (_, listed) = sb.json(&["ls"]);
    assert_eq!(listed["packets"][0]["created"], created.as_str());
    let text = ok(&sb, &["ls"]);
    let header = text.lines().next().expect("header");
    assert!(header.contains("CREATED (UTC)"), "{text}");
    let seconds = format!("{}Z", &created[..19]);
    assert!(
        text.lines().nth(1).expect("row").contains(&seconds),
        "{text}"
    );

    // log: every event's time as RFC 3339, in text and beside the number in JSON.
    let (_, log) = sb.json(&["log"]);
    let text = ok(&sb, &["log"]);
    let events = log["events"].as_array().expect("events");
    assert_eq!(events.len(), 2, "{log}");
    for (event, line) in events.iter().zip(text.lines()) {
        let nanos = event["time_unix_nanos"].as_u64().expect("nanos");
        let time = date_rfc3339_nanos(nanos);
        assert_eq!(event["time"], time.as_str(), "{event}");
        assert!(line.contains(&time), "{line}");
        assert!(
            !line.contains(&nanos.to_string()),
            "raw nanoseconds: {line}"
        );
    }

    // runs: the same.
    let out = sb.run(&["rerun", "p", "--", "sh", "-c", "exit 3"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let (_, runs) = sb.json(&["runs"]);
    let nanos = runs["runs"][0]["time_unix_nanos"].as_u64().expect("nanos");
    let time = date_rfc3339_nanos(nanos);
    assert_eq!(runs["runs"][0]["time"], time.as_str(), "{runs}");
    let text = ok(&sb, &["runs"]);
    assert!(text.contains(&format!("  {time}  FAIL  p@1  ")), "{text}");
    assert!(
        !text.contains(&nanos.to_string()),
        "raw nanoseconds: {text}"
    );
}

#[test]
fn regression_ls_columns_hold_names_longer_than_40_characters() {
    let sb = Sandbox::new();
    let long = "a-packet-name-that-is-much-longer-than-forty-characters-x";
    assert!(long.len() > 40);
    write_packet(&sb, "p");
    sb.write("q/one.txt", "one\n");
    ok(&sb, &["ingest", "p", "--name", long]);
    ok(&sb, &["ingest", "q"]);
    let (_, listed) = sb.json(&["ls"]);
    let text = ok(&sb, &["ls"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let hash_column = lines[0].find("packet_tree_sha256").expect("header");
    let files_end = lines[0].find("FILES").expect("FILES") + "FILES".len();
    for (line, packet) in lines[1..].iter().zip(listed["packets"].as_array().unwrap()) {
        let label = packet["packet"].as_str().unwrap();
        let sha = packet["packet_tree_sha256"].as_str().unwrap();
        let files = packet["files"].to_string();
        assert!(line.starts_with(&format!("{label} ")), "{text}");
        assert_eq!(line.find(sha), Some(hash_column), "{text}");
        assert_eq!(&line[files_end - files.len()..files_end], files, "{text}");
    }
}

#[test]
fn regression_log_kind_column_does_not_shift_on_kb_verify() {
    let sb = Sandbox::new();
    write_packet(&sb, "p");
    std::fs::create_dir(sb.path("kb")).unwrap();
    ok(&sb, &["ingest", "p"]);
    ok(&sb, &["mirror", "p", "kb"]);
    ok(&sb, &["kb", "verify", "kb"]);
    let (_, log) = sb.json(&["log"]);
    let text = ok(&sb, &["log"]);
    let events = log["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["init", "ingest", "mirror", "kb-verify"]);
    let mut columns = Vec::new();
    for (event, line) in events.iter().zip(text.lines()) {
        let subject = event["subject"].as_str().unwrap();
        let kind = event["kind"].as_str().unwrap();
        let at = line.find(&format!(" {subject}  ")).expect("subject") + 1;
        assert!(line[..at].trim_end().ends_with(kind), "{line}");
        columns.push(at);
    }
    assert!(columns.windows(2).all(|w| w[0] == w[1]), "{text}");
}

/// A count of 1 followed by a plural noun, such as "1 packets" (not "21 packets").
fn one_with_plural(text: &str) -> Option<String> {
    let nouns = [
        "packets", "files", "events", "objects", "bytes", "reruns", "problems", "folders",
    ];
    for noun in nouns {
        let needle = format!("1 {noun}");
        for (at, _) in text.match_indices(&needle) {
            let before = text[..at].chars().next_back();
            if !before.is_some_and(|c| c.is_ascii_digit()) {
                return Some(text[at..].lines().next().unwrap_or("").to_string());
            }
        }
    }
    None
}

#[test]
fn regression_one_packet_is_not_1_packets() {
    let sb = Sandbox::new();
    sb.write("p/only.txt", "x");
    std::fs::create_dir(sb.path("kb")).unwrap();
    let mut outputs = Vec::new();
    for args in [
        &["init"][..],
        &["fsck"],
        &["seal", "p"],
        &["ingest", "p"],
        &["verify", "p"],
        &["fsck"],
        &["export", "p", "out"],
        &["mirror", "p", "kb"],
        &["kb", "verify", "kb"],
    ] {
        outputs.push(ok(&sb, args));
    }
    std::fs::write(sb.store().join("tmp/leftover"), b"x").unwrap();
    outputs.push(ok(&sb, &["fsck"]));
    outputs.push(ok(&sb, &["gc-temp"]));
    outputs.push(ok(&sb, &["reindex", "--replace"]));
    for text in &outputs {
        assert_eq!(one_with_plural(text), None, "{text}");
    }
    let all = outputs.concat();
    for singular in [
        "(1 file)",
        "PASS: 1 of 1 file matches",
        "0 packets, 1 event; log root ",
        "1 packet, 2 events; log root ",
        "1 temp file in",
        "removed 1 temp file, 1 byte,",
        "reindexed 1 packet and 0 reruns from ",
        "(1 file, 1 byte)",
        "PASS: 0 of 1 packet folder failed in",
    ] {
        assert!(all.contains(singular), "{singular:?} not in:\n{all}");
    }
}

#[test]
fn regression_non_utf8_name_is_printed_escaped_not_as_u_fffd() {
    let sb = Sandbox::new();
    sb.write("p/good.txt", "good\n");
    let bad = sb.path("p").join(OsStr::from_bytes(b"bad\xffname.txt"));
    std::fs::write(&bad, "bad\n").unwrap();
    let shown = "p/bad\\xffname.txt";
    for args in [
        &["hash", "p"][..],
        &["seal", "p"],
        &["ingest", "p"],
        &["--json", "hash", "p"],
    ] {
        let out = sb.run(args);
        assert_eq!(code(&out), 2, "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(shown), "{args:?}: {err}");
        assert!(!err.contains('\u{fffd}'), "{args:?}: {err}");
        assert!(!stdout(&out).contains('\u{fffd}'), "{args:?}");
    }
    let (_, error) = sb.json(&["hash", "p"]);
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains(shown), "{message}");

    // A folder given by the user is escaped the same way.
    let dir = sb.path("q").join(OsStr::from_bytes(b"d\xfe"));
    std::fs::create_dir_all(&dir).unwrap();
    let out = sb
        .command_storeless()
        .arg("verify")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("d\\xfe"), "{}", stderr(&out));
    assert!(!stderr(&out).contains('\u{fffd}'), "{}", stderr(&out));

    // --json documents that name such a path: escaped text, never `null` or a crash (exit 101).
    let evstore = |args: &[&OsStr]| {
        let out = sb
            .command_storeless()
            .arg("--json")
            .args(args)
            .output()
            .unwrap();
        let value: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", stderr(&out)));
        (code(&out), value)
    };
    let store = OsStr::from_bytes(b"st\xfd");
    let (rc, value) = evstore(&[OsStr::new("--store"), store, OsStr::new("init")]);
    assert_eq!(
        (rc, &value["store"]),
        (0, &Value::from("st\\xfd")),
        "{value}"
    );
    std::fs::remove_file(&bad).unwrap();
    let (rc, value) = evstore(&[
        OsStr::new("--store"),
        store,
        OsStr::new("ingest"),
        OsStr::new("p"),
    ]);
    assert_eq!(rc, 0, "{value}");
    let (rc, value) = evstore(&[
        OsStr::new("--store"),
        store,
        OsStr::new("export"),
        OsStr::new("p"),
        OsStr::from_bytes(b"out\xff"),
    ]);
    assert_eq!(
        (rc, &value["dest"]),
        (0, &Value::from("out\\xff")),
        "{value}"
    );
    let sealed = sb.path("s").join(OsStr::from_bytes(b"e\xfe"));
    std::fs::create_dir_all(&sealed).unwrap();
    std::fs::write(sealed.join("a.txt"), "a\n").unwrap();
    let (rc, value) = evstore(&[OsStr::new("seal"), sealed.as_os_str()]);
    assert_eq!(rc, 0, "{value}");
    assert!(
        value["seal"]
            .as_str()
            .is_some_and(|s| s.ends_with("/s/e\\xfe/HASH_MANIFEST.txt")),
        "{value}"
    );
}

#[test]
fn regression_init_on_a_file_says_it_is_a_file_not_a_folder() {
    let sb = Sandbox::new();
    let file = sb.write("f", "not a folder\n");
    write_packet(&sb, "p");
    let run = |args: &[&str], store: &str| {
        let out = sb
            .command_storeless()
            .arg("--store")
            .arg(store)
            .args(args)
            .output()
            .unwrap();
        (code(&out), stderr(&out))
    };
    let (rc, err) = run(&["init"], "f");
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("f is a file, not a folder"), "{err}");
    assert!(!err.contains("os error"), "{err}");
    for args in [&["init"][..], &["ingest", "p"]] {
        let (rc, err) = run(args, "f/x");
        assert_eq!(rc, 2, "{args:?}: {err}");
        assert!(
            err.contains("f/x: f is a file, not a folder, so no store can be created below it"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("os error"), "{err}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"not a folder\n");
}

#[test]
fn regression_short_or_uppercase_prefix_says_why_it_matches_nothing() {
    let sb = Sandbox::new();
    write_packet(&sb, "p");
    let (_, ingested) = sb.json(&["ingest", "p"]);
    let sha = ingested["packet_tree_sha256"].as_str().unwrap().to_string();
    // Make sure the short prefix is not read as a name by accident: it is all hex.
    let seven = &sha[..7];
    let out = sb.run(&["show", seven]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains(&format!(
            "no packet matches \"{seven}\" (a hex prefix needs 8 to 64 lowercase hex digits: \"{seven}\" has 7)"
        )),
        "{}",
        stderr(&out)
    );
    let upper = sha[..8].to_ascii_uppercase();
    let out = sb.run(&["show", &upper]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains(&format!(
            "uppercase is not read as hex (try \"{}\")",
            &sha[..8]
        )),
        "{}",
        stderr(&out)
    );
    // The hint is a hint: the lowercase 8-digit prefix resolves.
    ok(&sb, &["show", &sha[..8]]);
    // A name that is not hex gets no hint.
    let out = sb.run(&["show", "nosuch"]);
    assert_eq!(code(&out), 2);
    assert!(!stderr(&out).contains("hex prefix"), "{}", stderr(&out));
}

#[test]
fn regression_ingest_refuses_a_name_that_looks_like_a_hex_prefix() {
    let sb = Sandbox::new();
    write_packet(&sb, "p");
    let (_, first) = sb.json(&["ingest", "p"]);
    let prefix = first["packet_tree_sha256"].as_str().unwrap()[..8].to_string();
    sb.write("other/x.txt", "x\n");
    sb.write("deadbeef00/x.txt", "x\n");
    for args in [
        &["ingest", "other", "--name", &prefix][..],
        &["ingest", "deadbeef00"],
    ] {
        let out = sb.run(args);
        assert_eq!(code(&out), 2, "{args:?}");
        assert!(
            stderr(&out).contains("lowercase hex digits, so it would also be read as a hex prefix"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let (_, listed) = sb.json(&["ls"]);
    assert_eq!(listed["packets"].as_array().unwrap().len(), 1, "{listed}");
    // The prefix still names the first packet, unambiguously.
    let (rc, shown) = sb.json(&["show", &prefix]);
    assert_eq!(rc, 0);
    assert_eq!(shown["packet"], "p@1");
    // Names that are not 8+ lowercase hex digits are fine.
    ok(&sb, &["ingest", "other", "--name", &format!("{prefix}-x")]);
    ok(&sb, &["ingest", "deadbeef00", "--name", "DEADBEEF00"]);
}

#[test]
fn regression_symlink_or_fifo_reported_extra_prints_no_matching_hashes() {
    let sb = Sandbox::new();
    write_packet(&sb, "p");
    ok(&sb, &["ingest", "p"]);
    ok(&sb, &["seal", "p"]);
    let sha = {
        let (_, shown) = sb.json(&["show", "p"]);
        shown["packet_tree_sha256"].as_str().unwrap().to_string()
    };
    std::os::unix::fs::symlink("report.json", sb.path("p/link")).unwrap();
    let fifo = sb.path("p/fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    for args in [
        &["verify", "p"][..],
        &["verify", "p", "--against", "p"],
        &["diff", "p@1", "p"],
    ] {
        let out = sb.run(args);
        assert_eq!(code(&out), 1, "{args:?}: {}", stderr(&out));
        let text = stdout(&out);
        let observed = text
            .lines()
            .find(|l| l.starts_with("observed  "))
            .expect("observed line");
        assert!(!observed.contains(&sha), "{args:?}: {text}");
        assert!(
            observed.contains("no packet_tree_sha256 (holds 1 FIFO, 1 symbolic link"),
            "{args:?}: {text}"
        );
        assert_eq!(text.matches(&sha).count(), 1, "{args:?}: {text}");

        let (rc, report) = sb.json(args);
        assert_eq!(rc, 1);
        assert_eq!(report["observed"]["packet_tree_sha256"], Value::Null);
        assert_eq!(
            report["observed"]["not_regular"],
            serde_json::json!({"FIFO": 1, "symbolic link": 1})
        );
        assert_eq!(report["expected"]["packet_tree_sha256"], sha.as_str());
        for (path, kind) in [("fifo", "FIFO"), ("link", "symbolic link")] {
            let file = report["files"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["path"] == path)
                .expect("listed");
            assert_eq!(file["classes"], serde_json::json!(["extra"]), "{file}");
            assert_eq!(file["expected"], Value::Null, "{file}");
            assert_eq!(file["observed"], Value::Null, "{file}");
            assert_eq!(file["observed_kind"], kind, "{file}");
        }
    }
    // Without them the folder has its tree hash again, and passes.
    std::fs::remove_file(sb.path("p/link")).unwrap();
    std::fs::remove_file(&fifo).unwrap();
    let (rc, report) = sb.json(&["verify", "p"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["observed"]["packet_tree_sha256"], sha.as_str());
}
