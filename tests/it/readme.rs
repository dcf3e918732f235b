//! The README's commands, run as a new user would: every fenced `sh` block, top to bottom, in one
//! `bash`, with the binary under test first on `PATH`.
//!
//! Conventions (documented in the README's Development section):
//! - every fenced block whose info string is `sh` or `bash` is run, in order, in one shell, from a
//!   temp folder that holds a copy of the repository's `README.md` and `docs/`;
//! - every `/tmp/` in a command is moved into the temp folder, and `$TMPDIR` points there too;
//! - `cargo run [...] -- ARGS` runs `evstore ARGS` (the binary under test), `cargo build` and
//!   `cargo test` do nothing, any other cargo command fails; `bash tests/s3/with-seaweedfs.sh
//!   COMMAND` runs just `COMMAND` (no server is started);
//! - each command must exit 0, or N where a comment on it says `exit N`;
//! - a block preceded by the line `<!-- readme-test: skip -->` is not run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::sandbox::{Sandbox, EVSTORE_BIN};

const SKIP_MARKER: &str = "<!-- readme-test: skip -->";

/// One command of the README: a complete shell command (continuation lines and multi-line
/// constructs joined), where it starts, and the exit code the README expects of it.
#[derive(Debug)]
struct ReadmeCommand {
    line: usize,
    text: String,
    expect: i32,
}

/// A command that did not exit as the README says, with its output.
#[derive(Debug)]
struct Failure {
    line: usize,
    text: String,
    expected: i32,
    actual: Option<i32>,
    output: String,
}

/// True if bash can parse `text` as complete commands (no open quote, block or continuation).
fn is_complete(text: &str) -> bool {
    if text.trim_end().ends_with('\\') {
        return false;
    }
    Command::new("bash")
        .args(["-n", "-c", text])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run bash -n")
        .success()
}

/// The exit code a command's comments announce (`# FAIL, exit 1: ...`), else 0.
fn expected_exit(text: &str) -> i32 {
    for line in text.lines() {
        let Some(comment) = line.find(" #").map(|i| &line[i..]) else {
            continue;
        };
        if let Some(rest) = comment.split("exit ").nth(1) {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(code) = digits.parse() {
                return code;
            }
        }
    }
    0
}

/// Every command of every runnable shell block of `markdown`, in order.
fn readme_commands(markdown: &str) -> Vec<ReadmeCommand> {
    let mut commands = Vec::new();
    let mut skip_next_block = false;
    let mut in_block: Option<bool> = None; // Some(run?) inside a fence
    let mut chunk = String::new();
    let mut chunk_line = 0;
    for (index, line) in markdown.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        match in_block {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let shell = matches!(info.trim(), "sh" | "bash");
                    in_block = Some(shell && !skip_next_block);
                    skip_next_block = false;
                } else if trimmed == SKIP_MARKER {
                    skip_next_block = true;
                } else if !trimmed.is_empty() {
                    skip_next_block = false;
                }
            }
            Some(run) => {
                if trimmed == "```" {
                    assert!(
                        chunk.trim().is_empty(),
                        "README line {chunk_line}: the command does not end before the block does:\n{chunk}"
                    );
                    chunk.clear();
                    in_block = None;
                    continue;
                }
                if !run || (chunk.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#'))) {
                    continue;
                }
                if chunk.is_empty() {
                    chunk_line = number;
                }
                chunk.push_str(line);
                chunk.push('\n');
                if is_complete(&chunk) {
                    commands.push(ReadmeCommand {
                        line: chunk_line,
                        expect: expected_exit(&chunk),
                        text: std::mem::take(&mut chunk),
                    });
                }
            }
        }
    }
    assert!(in_block.is_none(), "the README ends inside a fenced block");
    commands
}

/// Copy a folder, keeping file modes (`fs::copy` copies permission bits).
fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from).sort_by_file_name() {
        let entry = entry.expect("walk");
        let target = to.join(entry.path().strip_prefix(from).expect("below"));
        if entry.file_type().is_dir() {
            fs::create_dir_all(&target).expect("mkdir");
        } else {
            fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Run `commands` in one bash in `sb`, from `sb/repo`, and return those that did not exit as
/// expected. Panics if the shell did not get through all of them.
fn run_commands(sb: &Sandbox, commands: &[ReadmeCommand]) -> Vec<Failure> {
    let root = sb.dir.path();
    let tmp = root.join("tmp");
    let bin = root.join("bin");
    let repo = root.join("repo");
    for dir in [&tmp, &bin, &repo] {
        fs::create_dir_all(dir).expect("mkdir");
    }
    std::os::unix::fs::symlink(EVSTORE_BIN, bin.join("evstore")).expect("symlink evstore");
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    copy_tree(&manifest_dir.join("docs"), &repo.join("docs"));
    fs::copy(manifest_dir.join("README.md"), repo.join("README.md")).expect("copy README");

    let tmp_prefix = format!("{}/", tmp.display());
    let mut script = String::from(
        r#"set -o pipefail
exec 2>&1
cargo() {
  case "$1" in
    run) while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do shift; done
         [ "$#" -gt 0 ] && shift
         evstore "$@" ;;
    build|test) echo "readme test: cargo $1 does nothing here" ;;
    *) echo "readme test: cannot run cargo $*; mark the block <!-- readme-test: skip -->"; return 97 ;;
  esac
}
bash() {
  case "$1" in
    tests/s3/with-seaweedfs.sh) shift; "$@" ;;
    *) command bash "$@" ;;
  esac
}
"#,
    );
    for (i, command) in commands.iter().enumerate() {
        let text = command.text.replace("/tmp/", &tmp_prefix);
        script.push_str(&format!(
            "printf '\\n@@@ start {i}\\n'\n{{\n{text}\n}}\nprintf '\\n@@@ exit {i} %d\\n' \"$?\"\n"
        ));
    }
    script.push_str("printf '\\n@@@ end\\n'\n");

    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&repo)
        .env("PATH", path)
        .env("TMPDIR", &tmp)
        .env_remove("EVSTORE_STORE")
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("EVSTORE_SIGNING_KEY")
        // What the README's signer key signs is remembered in the temp folder, not in $HOME.
        .env("EVSTORE_STATE", tmp.join("evstore-state"))
        .env("EVSTORE_NO_PROGRESS", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run bash");
    let output = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        output.contains("\n@@@ end\n"),
        "the README's shell stopped before its last command (an `exit`?):\n{output}"
    );

    let mut failures = Vec::new();
    for (i, command) in commands.iter().enumerate() {
        let start = format!("\n@@@ start {i}\n");
        let exit = format!("\n@@@ exit {i} ");
        let section = output
            .split_once(&start)
            .map(|(_, rest)| rest)
            .and_then(|rest| rest.split_once(&exit))
            .map(|(printed, rest)| {
                let code = rest.lines().next().and_then(|c| c.trim().parse().ok());
                (printed.to_string(), code)
            });
        let (printed, actual) = section.unwrap_or_else(|| (String::new(), None));
        if actual != Some(command.expect) {
            failures.push(Failure {
                line: command.line,
                text: command.text.clone(),
                expected: command.expect,
                actual,
                output: printed,
            });
        }
    }
    failures
}

fn describe(failures: &[Failure]) -> String {
    failures
        .iter()
        .map(|f| {
            format!(
                "README line {}: expected exit {}, got {:?}\n$ {}{}",
                f.line, f.expected, f.actual, f.text, f.output
            )
        })
        .collect::<Vec<_>>()
        .join("\n----\n")
}

#[test]
fn regression_readme_commands_run_top_to_bottom() {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let commands = readme_commands(&readme);
    // The README's first two commands stay as they are: the test runs the first one's
    // equivalent with the binary under test.
    assert_eq!(
        commands[0].text.split('#').next().map(str::trim),
        Some(
            "cargo run --release --no-default-features -- --store /tmp/evstore-demo ingest \
             docs/example-packet"
        )
    );
    assert_eq!(
        commands[1].text.split('#').next().map(str::trim),
        Some("bash tests/s3/with-seaweedfs.sh cargo test")
    );
    assert!(
        commands
            .iter()
            .any(|c| c.text.contains("diff example-packet@1 example-packet@2")),
        "the README's diff of two versions is run"
    );
    let sb = Sandbox::new();
    let failures = run_commands(&sb, &commands);
    assert!(
        failures.is_empty(),
        "{} of {} README commands did not exit as the README says:\n{}",
        failures.len(),
        commands.len(),
        describe(&failures)
    );
    // The session really happened: the README's store holds both versions.
    let out = sb
        .command_storeless()
        .arg("--json")
        .arg("--store")
        .arg(sb.path("tmp/evstore-demo"))
        .arg("ls")
        .output()
        .expect("run evstore ls");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ls --json");
    let labels: Vec<&str> = listed["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .filter_map(|p| p["packet"].as_str())
        .collect();
    assert_eq!(labels, ["example-packet@1", "example-packet@2"], "{listed}");
}

/// The README test must be able to fail: a command that does not work, or exits other than its
/// comment says, is reported; a skipped block and an expected exit 1 are not.
#[test]
fn regression_readme_test_reports_a_readme_command_that_does_not_work() {
    let markdown = "\
# Title

```sh
true                 # works
false                # does not work
evstore verify /tmp/nowhere   # FAIL, exit 1: but it is exit 2, no such folder
if true; then
  echo multi-line
fi
ls /tmp/ \\
  | wc -l
```

```text
false
```

<!-- readme-test: skip -->
```sh
false                # needs something the test cannot have
```

```sh
# a comment line alone is not a command
false  # exit 1: expected
```
";
    let commands = readme_commands(markdown);
    let lines: Vec<usize> = commands.iter().map(|c| c.line).collect();
    assert_eq!(lines, [4, 5, 6, 7, 10, 25], "{commands:#?}");
    let sb = Sandbox::new();
    let failures = run_commands(&sb, &commands);
    let failed: Vec<(usize, Option<i32>)> = failures.iter().map(|f| (f.line, f.actual)).collect();
    assert_eq!(
        failed,
        [(5, Some(1)), (6, Some(2))],
        "{}",
        describe(&failures)
    );
}
