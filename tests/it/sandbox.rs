//! The sandbox every integration test runs in: a temp folder with a store path inside it, and
//! helpers to write packets, run the real `evstore` binary, and read its JSON.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The evstore binary under test. Tests start it only through [`Sandbox::command`] and its
/// siblings (or [`evstore_command`]); a test that needs its path (to put it on `PATH`) uses this.
pub const EVSTORE_BIN: &str = env!("CARGO_BIN_EXE_evstore");

/// The evstore binary under test with none of the caller's `$EVSTORE_STORE`,
/// `$SOURCE_DATE_EPOCH` or `$EVSTORE_LOCK_TIMEOUT_SECS`, in the test runner's working folder and
/// with no arguments: for a test that has no sandbox folder. [`Sandbox::command`] is this in the
/// sandbox, with its store.
pub fn evstore_command() -> Command {
    let mut cmd = Command::new(EVSTORE_BIN);
    clear_caller_environment(&mut cmd);
    cmd
}

/// Remove the variables through which the test runner's environment could change what evstore
/// does; a test that wants one sets it on the command afterwards.
fn clear_caller_environment(cmd: &mut Command) {
    cmd.env_remove("EVSTORE_STORE")
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("EVSTORE_LOCK_TIMEOUT_SECS")
        .env_remove("EVSTORE_SIGNING_KEY")
        .env_remove("SSH_AUTH_SOCK");
}

/// Incompressible, deterministic bytes: `len` bytes of an xorshift64 stream from `seed`. The one
/// random-bytes helper of the tests; the same `(len, seed)` gives the same bytes in every run.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Declare tests that run twice: on a local store folder (`NAME::local_store`) and on a store in
/// the test bucket of S3 (`NAME::s3_store`, SeaweedFS started by `tests/s3/with-seaweedfs.sh`),
/// through the same [`Sandbox`]: on S3 its `--store` is a fresh `s3://` prefix, made by the
/// first command that is not `init`, with a cache folder in the sandbox. Only tests that drive
/// the store through commands belong here (not ones that look into the store folder).
macro_rules! on_both_backends {
    ($( $(#[doc = $doc:expr])* fn $name:ident() $body:block )*) => {$(
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body() $body

            #[test]
            fn local_store() {
                body()
            }

            #[cfg(feature = "s3")]
            #[test]
            fn s3_store() {
                crate::sandbox::on_s3(body)
            }
        }
    )*};
}

thread_local! {
    /// True while a test declared with `on_both_backends!` runs on S3 (tests run one per thread).
    static ON_S3: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `test` with every [`Sandbox`] it makes holding its store in the S3 test bucket.
#[cfg(feature = "s3")]
pub fn on_s3(test: fn()) {
    ON_S3.with(|on| on.set(true));
    test();
}

/// The S3 store of a sandbox made by a test running [`on_s3`].
struct S3Sandbox {
    url: String,
    /// True once the store exists (made by the sandbox, or by the test's own `init`).
    made: std::sync::atomic::AtomicBool,
}

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    s3: Option<S3Sandbox>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
            s3: ON_S3.with(|on| on.get()).then(new_s3_sandbox),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The sandbox's store: a folder in it, or an `s3://` URL for a test running [`on_s3`].
    pub fn store(&self) -> PathBuf {
        match &self.s3 {
            Some(s3) => PathBuf::from(&s3.url),
            None => self.path("store"),
        }
    }

    /// On S3, make the store before the first command that does not make it itself (a local
    /// store is made by the first `ingest`; an S3 store only by `init`).
    fn make_the_s3_store_unless(&self, args_make_it: bool) {
        let Some(s3) = &self.s3 else {
            return;
        };
        if s3.made.swap(true, std::sync::atomic::Ordering::SeqCst) || args_make_it {
            return;
        }
        let out = self
            .command()
            .arg("init")
            .output()
            .expect("run evstore init");
        assert_eq!(code(&out), 0, "init of {}: {}", s3.url, stderr(&out));
    }

    /// Write a file, creating parent folders.
    pub fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
        path
    }

    /// The one way a test starts evstore: the binary under test, working in the sandbox folder,
    /// with `--store` the sandbox's store and none of the caller's `$EVSTORE_STORE`,
    /// `$SOURCE_DATE_EPOCH` or `$EVSTORE_LOCK_TIMEOUT_SECS`. Add arguments, environment and
    /// standard streams to the returned command as the test needs.
    pub fn command(&self) -> Command {
        self.make_the_s3_store_unless(false);
        let mut cmd = self.command_storeless();
        cmd.arg("--store").arg(self.store());
        cmd
    }

    /// [`Sandbox::command`] without `--store`: for a test that names another store, or none.
    pub fn command_storeless(&self) -> Command {
        let mut cmd = evstore_command();
        cmd.current_dir(self.dir.path());
        // What signer keys signed is remembered per user: here, per sandbox.
        cmd.env("EVSTORE_STATE", self.path("state"));
        if self.s3.is_some() {
            cmd.env("EVSTORE_CACHE", self.path("s3-cache"));
        }
        cmd
    }

    /// `PROGRAM PROGRAM_ARGS... BINARY`, working in the sandbox folder with the environment of
    /// [`Sandbox::command`] and no `--store`: evstore run through a wrapper such as `setpriv`,
    /// `/usr/bin/time` or `bash -c 'ulimit ...; exec "$0" "$@"'`. `binary` is the binary under
    /// test ([`EVSTORE_BIN`]) or a copy of it.
    pub fn command_through(&self, program: &str, program_args: &[&str], binary: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(program_args).arg(binary);
        clear_caller_environment(&mut cmd);
        cmd.current_dir(self.dir.path());
        cmd
    }

    /// `binary` (the binary under test or a copy of it) run as uid and gid [`NOBODY`] with no
    /// supplementary groups, through `setpriv`; no `--store`.
    pub fn command_as_nobody(&self, binary: &Path) -> Command {
        let uid = format!("--reuid={NOBODY}");
        let gid = format!("--regid={NOBODY}");
        self.command_through("setpriv", &[&uid, &gid, "--clear-groups"], binary)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.make_the_s3_store_unless(args.contains(&"init"));
        self.command().args(args).output().expect("run evstore")
    }

    /// Run without `--store` and without `$EVSTORE_STORE`, as a CI job with only the binary would.
    pub fn run_storeless(&self, args: &[&str]) -> Output {
        self.command_storeless()
            .args(args)
            .output()
            .expect("run evstore")
    }

    /// Run and parse the JSON document printed on stdout.
    pub fn json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code(&out), value)
    }

    /// A snapshot of everything in the store folder: paths and contents.
    pub fn store_snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let root = self.store();
        if !root.exists() {
            return out;
        }
        for entry in walkdir::WalkDir::new(&root).sort_by_file_name() {
            let entry = entry.unwrap();
            if entry.file_type().is_file() {
                let rel = entry
                    .path()
                    .strip_prefix(&root)
                    .unwrap()
                    .display()
                    .to_string();
                let bytes = if rel.starts_with("catalog") {
                    Vec::new()
                } else {
                    fs::read(entry.path()).unwrap()
                };
                out.push((rel, bytes));
            }
        }
        out
    }

    pub fn object_files(&self) -> Vec<PathBuf> {
        walkdir::WalkDir::new(self.store().join("objects"))
            .sort_by_file_name()
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().is_file())
            .map(|e| e.into_path())
            .collect()
    }
}

#[cfg(feature = "s3")]
fn new_s3_sandbox() -> S3Sandbox {
    S3Sandbox {
        url: crate::s3_store::fresh_url("both"),
        made: std::sync::atomic::AtomicBool::new(false),
    }
}

#[cfg(not(feature = "s3"))]
fn new_s3_sandbox() -> S3Sandbox {
    unreachable!("on_s3 exists only with the feature s3")
}

/// Assert that each command exits 1 and says the store holds something corrupt.
pub fn assert_each_refuses_corrupt_bytes(sb: &Sandbox, commands: &[&[&str]]) {
    for args in commands {
        let out = sb.run(args);
        assert_eq!(code(&out), 1, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("corrupt"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The coreutils one-liner from docs/FORMAT.md.
pub fn coreutils_tree_sha256(dir: &Path) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg("find . -type f ! -path ./HASH_MANIFEST.txt ! -path ./HASH_MANIFEST.txt.sig -printf '%P\\0' | LC_ALL=C sort -z | xargs -0r sha256sum | sha256sum")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// A packet with nested folders, non-ASCII names, an empty file and an executable script.
pub fn write_packet(sb: &Sandbox, rel: &str) -> PathBuf {
    sb.write(
        &format!("{rel}/report.json"),
        "{\"status\": \"PASS \u{2014} rehearsal only\"}\n",
    );
    sb.write(&format!("{rel}/logs/run.log"), "step 1 ok\nstep 2 ok\n");
    sb.write(&format!("{rel}/logs/empty.log"), "");
    sb.write(
        &format!("{rel}/na\u{ef}ve \u{2014} r\u{e9}sum\u{e9}.md"),
        "caf\u{e9}\n",
    );
    sb.write(&format!("{rel}/a-b"), "sorts before a/ in byte order\n");
    sb.write(&format!("{rel}/a/b"), "inside a\n");
    let script = sb.write(&format!("{rel}/rerun.sh"), "#!/bin/sh\necho PASS\n");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    sb.path(rel)
}

pub fn assert_trees_equal(a: &Path, b: &Path) {
    let list = |root: &Path| -> Vec<(String, u32, Vec<u8>)> {
        walkdir::WalkDir::new(root)
            .sort_by_file_name()
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().is_file())
            .filter(|e| e.path() != root.join("HASH_MANIFEST.txt"))
            .map(|e| {
                let meta = e.metadata().unwrap();
                (
                    e.path().strip_prefix(root).unwrap().display().to_string(),
                    meta.permissions().mode() & 0o100,
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(list(a), list(b));
}

/// One entry of a tree snapshot: path, kind, mode bits, bytes (a symlink's target).
pub type TreeEntry = (String, &'static str, u32, Vec<u8>);

/// Everything below `root`, byte for byte: every folder, file (bytes and mode bits) and symlink
/// (its target), hidden names included.
pub fn tree_snapshot(root: &Path) -> Vec<TreeEntry> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.unwrap();
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap()
            .display()
            .to_string();
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let (kind, bytes) = if meta.file_type().is_symlink() {
            let target = fs::read_link(entry.path()).unwrap();
            ("symlink", target.as_os_str().as_bytes().to_vec())
        } else if meta.is_dir() {
            ("folder", Vec::new())
        } else {
            ("file", fs::read(entry.path()).unwrap())
        };
        out.push((rel, kind, mode, bytes));
    }
    out
}

/// A tmpfs mounted for one test, unmounted when dropped (also when the test panics).
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    pub fn mount(dir: PathBuf) -> Tmpfs {
        fs::create_dir_all(&dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "mount -t tmpfs {}", dir.display());
        Tmpfs { dir }
    }

    /// Fill the file system to the last byte; returns the filler file.
    pub fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut file = fs::File::create(&path).unwrap();
        for chunk in [64 * 1024, 4096, 1] {
            let buf = vec![0xa5u8; chunk];
            loop {
                match file.write(&buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(err) if err.raw_os_error() == Some(28) => break,
                    Err(err) => panic!("filling {}: {err}", path.display()),
                }
            }
        }
        let stat = rustix::fs::statvfs(&self.dir).unwrap();
        assert_eq!(stat.f_bfree, 0, "{} is not full", self.dir.display());
        path
    }

    /// Fill the file system, then give back `leave` bytes.
    pub fn fill_leaving(&self, leave: u64) {
        let filler = self.fill();
        let file = fs::OpenOptions::new().write(true).open(&filler).unwrap();
        let len = file.metadata().unwrap().len();
        file.set_len(len - leave).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// The uid the read-only-user tests run evstore as (`nobody`), through `setpriv`.
pub const NOBODY: u32 = 65534;

/// Fail (never skip) a test that needs root: it runs evstore as another user or mounts a tmpfs.
pub fn require_root(what: &str) {
    assert!(
        rustix::process::geteuid().is_root(),
        "{what} needs root (it runs evstore as uid {NOBODY} through setpriv, or mounts a tmpfs); \
         run the test suite as root, as CI does"
    );
}

/// Make the sandbox readable by every user (`chmod -R a+rX`: nothing gains write permission),
/// check that `nobody` can reach it, and copy the binary into it, so `nobody` can run it
/// wherever the build folder is. Returns the copied binary.
pub fn open_to_other_users(sb: &Sandbox) -> PathBuf {
    let status = Command::new("chmod")
        .arg("-R")
        .arg("a+rX")
        .arg(sb.dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    for ancestor in sb.dir.path().ancestors().skip(1) {
        let mode = fs::metadata(ancestor).unwrap().permissions().mode();
        assert!(
            mode & 0o001 != 0,
            "{} is not searchable by other users (mode {mode:o}), so uid {NOBODY} cannot reach the \
             sandbox; set TMPDIR to a folder every user can reach",
            ancestor.display()
        );
    }
    let bin = sb.path("evstore-bin");
    fs::copy(EVSTORE_BIN, &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// The first signature kept in `store` under `signatures/SPACE/` (`seals` or `attestations`):
/// `signatures/SPACE/<first group>/<first key>`.
pub fn first_kept_signature(store: &Path, space: &str) -> PathBuf {
    let first = |dir: &Path| {
        fs::read_dir(dir)
            .unwrap_or_else(|err| panic!("read {}: {err}", dir.display()))
            .next()
            .unwrap_or_else(|| panic!("{} is empty", dir.display()))
            .expect("a folder entry")
            .path()
    };
    first(&first(&store.join("signatures").join(space)))
}
