//! Mechanical guards of the layering (issue 13): read the source under `src/` and `tests/` as
//! text and check the rules a reviewer would otherwise have to re-check by eye.
//!
//! - SQL (statements, `PRAGMA`, the `rusqlite` crate) is named only under `src/catalog/`.
//! - `serde_cbor` is named only in `src/format/cbor.rs`.
//! - Imports point only down the layers: cli → ops → {gate, packet, store, catalog} → format →
//!   {fsio, scan, digest, error, text, interrupt, progress, packet_ref}, and `gate` never names the
//!   catalog.
//! - Nothing below `cli` writes to stdout or stderr: clippy's `print_stdout`/`print_stderr`
//!   (denied in `src/lib.rs`) see the print macros; this test sees the raw streams.
//! - Every test starts evstore through the sandbox's builder, and there is one random-bytes helper.
//!
//! Lines that are comments are skipped; string literals are not (a SQL string is SQL). Where
//! today's code breaks a rule, the exception is listed below with its file; each list can only
//! shrink: an entry that no longer matches anything fails the test until it is removed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// One exception to a rule: a file, what in it breaks the rule, and why it is allowed for now.
struct Allowed {
    file: &'static str,
    what: &'static str,
    why: &'static str,
}

/// SQL named outside `src/catalog/` today.
const SQL_OUTSIDE_CATALOG: &[Allowed] = &[Allowed {
    file: "src/error.rs",
    what: "rusqlite::",
    why: "`Error::Catalog` wraps the `rusqlite::Error` the catalog returns, so that its class \
          (a damaged database file is corruption) is decided from SQLite's own code",
}];

/// `serde_cbor` named outside `src/format/cbor.rs` today.
const SERDE_CBOR_OUTSIDE_FORMAT_CBOR: &[Allowed] = &[];

/// Imports that point up the layers (or from `gate` to the catalog) today: `what` is the
/// imported module.
const IMPORTS_AGAINST_THE_LAYERS: &[Allowed] = &[
    Allowed {
        file: "src/gate/compare.rs",
        what: "catalog",
        why: "a stored packet is named by its catalog row (`PacketRow`, plain data: the record \
              and its id), read through `packet`; the gate runs no catalog query",
    },
    Allowed {
        file: "src/gate/side.rs",
        what: "catalog",
        why: "a stored packet is named by its catalog row (`PacketRow`, plain data: the record \
              and its id), read through `packet`; the gate runs no catalog query",
    },
];

/// Raw stdout/stderr writes below `cli`.
const RAW_OUTPUT_BELOW_CLI: &[Allowed] = &[Allowed {
    file: "src/interrupt.rs",
    what: "STDERR_FILENO",
    why: "the second signal's one line, written with write(2) from the signal handler just \
          before the process exits: nothing else can say it",
}];

/// Each top-level module under `src/` and its layer: a file may import its own module and
/// modules of a lower layer only. A new top-level module fails the test until it is placed here.
const LAYERS: &[(&str, u8)] = &[
    ("cli", 4),
    ("ops", 3),
    ("gate", 2),
    ("packet", 2),
    ("folder", 2),
    ("store", 2),
    ("catalog", 2),
    ("format", 1),
    ("fsio", 0),
    ("scan", 0),
    ("digest", 0),
    ("error", 0),
    ("text", 0),
    ("interrupt", 0),
    ("progress", 0),
    ("packet_ref", 0),
    ("notice", 0),
];

/// A Rust source file: its path from the repository root (`src/gate/mod.rs`) and its text with
/// every comment line blanked, so line numbers still count from 1.
struct SourceFile {
    path: String,
    code: String,
}

impl SourceFile {
    /// The top-level module the file belongs to: `src/gate/mod.rs` → `gate`, `src/scan.rs` →
    /// `scan`, `src/lib.rs` → `lib`.
    fn module(&self) -> &str {
        let rel = self.path.strip_prefix("src/").unwrap_or(&self.path);
        match rel.split_once('/') {
            Some((folder, _)) => folder,
            None => rel.strip_suffix(".rs").unwrap_or(rel),
        }
    }

    /// `(line number, line)` of each line holding `needle`.
    fn lines_with(&self, needle: &str) -> Vec<(usize, &str)> {
        self.code
            .lines()
            .enumerate()
            .filter(|(_, line)| line.contains(needle))
            .map(|(index, line)| (index + 1, line))
            .collect()
    }
}

/// Every `.rs` file below `dir` (a folder of the repository: `src`, `tests`), sorted by path.
fn rust_files(dir: &str) -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<SourceFile> = walkdir::WalkDir::new(root.join(dir))
        .sort_by_file_name()
        .into_iter()
        .map(|entry| entry.expect("walk the source tree"))
        .filter(|entry| entry.file_type().is_file())
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "rs"))
        .map(|entry| {
            let text = fs::read_to_string(entry.path())
                .unwrap_or_else(|e| panic!("read {}: {e}", entry.path().display()));
            let code = text
                .lines()
                .map(|line| {
                    if line.trim_start().starts_with("//") {
                        ""
                    } else {
                        line
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            let path = entry
                .path()
                .strip_prefix(root)
                .expect("below the repository")
                .display()
                .to_string();
            SourceFile { path, code }
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    assert!(!files.is_empty(), "no .rs file below {dir}");
    files
}

/// Findings of one rule: `(file, what)` → the lines that show it.
type Findings = BTreeMap<(String, String), Vec<String>>;

fn record(found: &mut Findings, file: &SourceFile, what: &str, line: usize, text: &str) {
    found
        .entry((file.path.clone(), what.to_string()))
        .or_default()
        .push(format!("{}:{line}: {}", file.path, text.trim()));
}

/// Fail on a finding the allow-list does not name, and on an allow-list entry nothing matches
/// any more (the list only shrinks).
fn assert_only_allowed(rule: &str, found: &Findings, allowed: &[Allowed]) {
    let allowed_keys: BTreeSet<(String, String)> = allowed
        .iter()
        .map(|a| (a.file.to_string(), a.what.to_string()))
        .collect();
    let mut problems = Vec::new();
    for (key, lines) in found {
        if !allowed_keys.contains(key) {
            problems.push(format!(
                "{} names {:?}, against the rule:\n    {}",
                key.0,
                key.1,
                lines.join("\n    ")
            ));
        }
    }
    for entry in allowed {
        if !found.contains_key(&(entry.file.to_string(), entry.what.to_string())) {
            problems.push(format!(
                "the allow-list entry ({}, {:?}: {}) matches nothing any more: remove it, so the \
                 rule holds there from now on",
                entry.file, entry.what, entry.why
            ));
        }
    }
    assert!(problems.is_empty(), "{rule}:\n{}", problems.join("\n"));
}

#[test]
fn sql_is_named_only_under_src_catalog() {
    const SQL: &[&str] = &[
        "SELECT ",
        "INSERT INTO",
        "INSERT OR",
        "UPDATE ",
        "DELETE FROM",
        "CREATE TABLE",
        "CREATE INDEX",
        "PRAGMA",
        "rusqlite::",
    ];
    let mut found = Findings::new();
    for file in rust_files("src") {
        if file.module() == "catalog" {
            continue;
        }
        for needle in SQL {
            for (line, text) in file.lines_with(needle) {
                record(&mut found, &file, needle, line, text);
            }
        }
    }
    assert_only_allowed("SQL outside src/catalog/", &found, SQL_OUTSIDE_CATALOG);
}

#[test]
fn serde_cbor_is_named_only_in_src_format_cbor_rs() {
    let mut found = Findings::new();
    for file in rust_files("src") {
        if file.path == "src/format/cbor.rs" {
            continue;
        }
        for (line, text) in file.lines_with("serde_cbor") {
            record(&mut found, &file, "serde_cbor", line, text);
        }
    }
    assert_only_allowed(
        "serde_cbor outside src/format/cbor.rs",
        &found,
        SERDE_CBOR_OUTSIDE_FORMAT_CBOR,
    );
}

/// The top-level names a file reaches through `crate::`, with the line of each: `crate::a::b` and
/// `use crate::{a::b, c, d::{e, f}}` give `a`, `c` and `d`.
fn crate_paths(code: &str) -> Vec<(String, usize)> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let ident_at = |text: &str| -> String { text.chars().take_while(|&c| is_ident(c)).collect() };
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find("crate::") {
        let at = from + found;
        from = at + "crate::".len();
        if code[..at].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        let line = code[..at].matches('\n').count() + 1;
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            // A use tree: split at the commas of its top level.
            let mut depth = 0usize;
            let mut item_start = 0;
            for (offset, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.push((ident_at(group[item_start..].trim_start()), line));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push((ident_at(group[item_start..].trim_start()), line));
                        item_start = offset + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.push((ident_at(rest), line));
        }
    }
    out.retain(|(name, _)| !name.is_empty() && name != "self");
    out
}

#[test]
fn crate_paths_reads_paths_and_use_trees() {
    let code = "use crate::a::b;\nuse crate::{c::d, e, f::{g, h}, self};\nlet x = crate::i::j(evstore_crate::k);";
    let names: Vec<(String, usize)> = crate_paths(code);
    let expected: Vec<(String, usize)> = [("a", 1), ("c", 2), ("e", 2), ("f", 2), ("i", 3)]
        .iter()
        .map(|(n, l)| (n.to_string(), *l))
        .collect();
    assert_eq!(names, expected);
}

#[test]
fn imports_point_only_down_the_layers() {
    let layer_of = |module: &str| LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let is_module = |name: &str| src.join(format!("{name}.rs")).exists() || src.join(name).is_dir();
    let mut found = Findings::new();
    let mut unplaced = BTreeSet::new();
    for file in rust_files("src") {
        let module = file.module();
        // The crate root and the binary sit above every layer.
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own_layer) = layer_of(module) else {
            unplaced.insert(module.to_string());
            continue;
        };
        for (name, line) in crate_paths(&file.code) {
            if name == module {
                continue;
            }
            let layer = match layer_of(&name) {
                Some(layer) => layer,
                None if is_module(&name) => {
                    unplaced.insert(name);
                    continue;
                }
                // An item of the crate root (`Error`, `Result`, `TOOL_VERSION`, ...): the bottom.
                None => 0,
            };
            let gate_names_catalog = module == "gate" && name == "catalog";
            if layer > own_layer || gate_names_catalog {
                let text = file.code.lines().nth(line - 1).unwrap_or_default();
                record(&mut found, &file, &name, line, text);
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "modules with no layer in LAYERS (tests/it/architecture.rs): {unplaced:?}"
    );
    assert_only_allowed(
        "imports against the layers (cli → ops → {gate, packet, store, catalog} → format → \
         {fsio, scan, digest, error, text, interrupt, progress, packet_ref}; gate never names \
         catalog)",
        &found,
        IMPORTS_AGAINST_THE_LAYERS,
    );
}

#[test]
fn nothing_below_cli_writes_to_stdout_or_stderr() {
    let lib = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("read src/lib.rs");
    assert!(
        lib.contains("#![deny(clippy::print_stdout, clippy::print_stderr)]"),
        "src/lib.rs no longer denies clippy's print_stdout and print_stderr"
    );
    // What clippy's print lints do not see: the streams themselves.
    const RAW: &[&str] = &["stdout()", "stderr()", "STDOUT_FILENO", "STDERR_FILENO"];
    let mut found = Findings::new();
    for file in rust_files("src") {
        if matches!(file.module(), "cli" | "main") {
            continue;
        }
        for needle in RAW {
            for (line, text) in file.lines_with(needle) {
                record(&mut found, &file, needle, line, text);
            }
        }
    }
    assert_only_allowed(
        "stdout or stderr written below src/cli/",
        &found,
        RAW_OUTPUT_BELOW_CLI,
    );
}

#[test]
fn every_test_starts_evstore_through_the_sandbox_builder() {
    let mut found = Findings::new();
    for file in rust_files("tests") {
        if file.path == "tests/it/sandbox.rs" || file.path == "tests/it/architecture.rs" {
            continue;
        }
        for needle in ["CARGO_BIN_EXE_evstore", "Command::new(EVSTORE_BIN"] {
            for (line, text) in file.lines_with(needle) {
                record(&mut found, &file, needle, line, text);
            }
        }
        // The xorshift step of a hand-written random-bytes generator.
        for (line, text) in file.lines_with("<< 13") {
            record(
                &mut found,
                &file,
                "a second random-bytes helper",
                line,
                text,
            );
        }
    }
    assert_only_allowed(
        "tests start evstore only through tests/it/sandbox.rs (Sandbox::command and its \
         siblings, evstore_command) and make random bytes only with sandbox::random_bytes",
        &found,
        &[],
    );
}
