//! Where a store, and the folders evstore writes or archives, may be: refusals made before
//! anything is created (a path that looks like a URL or has whitespace around it, a packet folder
//! that holds the store, an output folder inside the store), and the one URL a store may be:
//! `s3://BUCKET/PREFIX` ([`S3Url`]).
//!
//! **Architecture Invariant:** nothing here creates or changes anything; each check only reads
//! the file system (to resolve symlinks) and refuses with a message that says what to do.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::text::EscapePath;

/// A store in an S3-compatible bucket: `s3://BUCKET/PREFIX`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Url {
    /// The bucket name (3 to 63 lower-case letters, digits, `.` and `-`).
    pub bucket: String,
    /// The key prefix of the store's keys: empty, or `/`-separated components ending in `/`.
    pub prefix: String,
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "s3://{}/{}",
            self.bucket,
            self.prefix.trim_end_matches('/')
        )
    }
}

impl S3Url {
    /// The S3 URL `location` names, `Ok(None)` if it does not start with `s3://`, or an error
    /// for a malformed one (a bad bucket name; an empty, `.` or `..` component in the prefix).
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] naming the URL and what is wrong with it.
    pub fn parse(location: &Path) -> Result<Option<S3Url>> {
        let Some(text) = location.to_str() else {
            return Ok(None);
        };
        let Some(rest) = text.strip_prefix("s3://") else {
            return Ok(None);
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !bucket_ok {
            return Err(Error::Usage(format!(
                "store {text:?}: {bucket:?} is not an S3 bucket name (3 to 63 lower-case letters, \
                 digits, . and -); a store in S3 is written s3://BUCKET/PREFIX"
            )));
        }
        let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
        let prefix_ok = prefix.is_empty()
            || prefix.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-+=@,".contains(&b))
            });
        if !prefix_ok {
            // Only the characters every S3-compatible server keeps as they are: a server may
            // rewrite others (SeaweedFS stores `w\x` under `w/x/`), and another writer's
            // prefix would then meet this one's keys.
            return Err(Error::Usage(format!(
                "store {text:?}: the prefix {prefix:?} must be /-separated non-empty components \
                 other than . and .., of letters, digits and . _ - + = @ ,"
            )));
        }
        Ok(Some(S3Url {
            bucket: bucket.to_string(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        }))
    }
}

/// Refuse a store location that looks like a URL or has whitespace around it (see
/// [`check_local_path`]): `s3:/bkt/ev` would otherwise become a local folder named `s3:` without
/// a word. An `s3://BUCKET/PREFIX` URL is accepted (checked strictly by [`S3Url::parse`]) in a
/// build with the feature `s3`, and refused with what to do in one without.
pub fn check_store_location(root: &Path) -> Result<()> {
    if let Some(url) = S3Url::parse(root)? {
        if cfg!(feature = "s3") {
            return Ok(());
        }
        return Err(Error::Usage(s3_not_available(&url)));
    }
    check_local_store_location(root)
}

/// [`check_store_location`] for a store folder, which is about to be created or opened as one:
/// an S3 URL is refused here (only `evstore init` creates an S3 store, and opening one goes
/// through `Store::open`, which recognises the URL first).
pub fn check_local_store_location(root: &Path) -> Result<()> {
    if let Some(url) = S3Url::parse(root)? {
        return Err(Error::Usage(format!(
            "{url} is an S3 store; create it with `evstore init --store {url}` first"
        )));
    }
    check_local_path(root, "store").map_err(|err| match err {
        Error::Usage(message) => Error::Usage(format!(
            "{message} (the store is set by --store or $EVSTORE_STORE)"
        )),
        other => other,
    })
}

/// Why a command cannot use the S3 store `url` in this build (one without the feature `s3`).
pub fn s3_not_available(url: &S3Url) -> String {
    format!(
        "{url} is an S3 store, and this evstore was built without S3 support (the cargo feature \
         `s3`); build it with `cargo build --release --features s3` or use a local store folder"
    )
}

/// Refuse a local folder argument (`what`: "store", "export destination", "--keep folder")
/// that is probably not meant as one, before anything is created there:
///
/// - its first component looks like a URL scheme followed by a colon (`s3:bkt`, `s3:/b`,
///   `s3://b`, `https:`, `file:///srv`): such a path would become a local folder named `s3:`
///   (a store given as `s3://BUCKET/PREFIX` is an [`S3Url`], recognised before this check);
/// - it starts or ends with whitespace (`' s3://b'`, a pasted `'out '`).
///
/// A folder of such a name is still reachable on purpose: `./s3:bkt`, `./ name`, `name /`.
pub fn check_local_path(path: &Path, what: &str) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let first = bytes.split(|b| *b == b'/').next().unwrap_or_default();
    if let Some(colon) = first.iter().position(|b| *b == b':') {
        let scheme = &first[..colon];
        let is_scheme = scheme.first().is_some_and(u8::is_ascii_alphabetic)
            && scheme
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if is_scheme {
            let scheme = String::from_utf8_lossy(scheme);
            let hint = if scheme.eq_ignore_ascii_case("file") {
                "for a local folder, give its path without file://".to_string()
            } else if scheme == "s3" && what == "store" {
                "a store in S3 is written s3://BUCKET/PREFIX".to_string()
            } else {
                format!("there is no {scheme}: backend for this; evstore writes local folders only")
            };
            let is_or_looks = if bytes[colon + 1..].starts_with(b"//") {
                "is a URL"
            } else {
                "looks like a URL"
            };
            return Err(Error::Usage(format!(
                "{what} {} {is_or_looks} ({scheme}:...): {hint}; to name a local folder of that \
                 name on purpose, start the path with ./ (./{})",
                path.escaped(),
                path.escaped()
            )));
        }
    }
    let starts_blank = bytes.first().is_some_and(u8::is_ascii_whitespace);
    let ends_blank = bytes.last().is_some_and(u8::is_ascii_whitespace);
    if starts_blank || ends_blank {
        return Err(Error::Usage(format!(
            "{what} {:?} {} with whitespace, which is most likely a quoting mistake; to name a \
             local folder of that name on purpose, {}",
            path.escaped().to_string(),
            if starts_blank { "starts" } else { "ends" },
            match (starts_blank, ends_blank) {
                (true, true) => "start the path with ./ and end it with /",
                (true, false) => "start the path with ./",
                _ => "end the path with /",
            }
        )));
    }
    Ok(())
}

/// `path` made absolute, with every existing component resolved (symlinks included) and the
/// missing tail appended as it will be created; it need not exist.
pub fn resolved_path(path: &Path) -> Result<PathBuf> {
    use std::path::Component;
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|err| Error::io(".", "cannot read the working directory", err))?
            .join(path)
    };
    let mut current = PathBuf::from("/");
    let mut missing = false;
    for component in absolute.components() {
        match component {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            // `current` is canonical (or a tail that will be created as real folders), so
            // its parent is lexical; back in existing folders, resolve again from there.
            Component::ParentDir => {
                current.pop();
                if missing && std::fs::symlink_metadata(&current).is_ok() {
                    missing = false;
                }
            }
            Component::Normal(name) => {
                let next = current.join(name);
                if !missing && std::fs::symlink_metadata(&next).is_ok() {
                    current = std::fs::canonicalize(&next).at(&next, "cannot resolve")?;
                } else {
                    missing = true;
                    current = next;
                }
            }
        }
    }
    Ok(current)
}

/// Refuse to archive a folder that holds the store, or would hold it once created: the store's
/// files would become part of the packet (and change it).
pub fn refuse_store_inside_folder(store: &Path, dir: &Path) -> Result<()> {
    if S3Url::parse(store)?.is_some() {
        // A bucket cannot lie inside a folder.
        return Ok(());
    }
    let dir_resolved = std::fs::canonicalize(dir).at(dir, "cannot resolve")?;
    let store_resolved = resolved_path(store)?;
    if store_resolved.starts_with(&dir_resolved) {
        return Err(Error::unsupported(
            dir,
            format!(
                "the store {} lies inside this folder, so its files would become part of the \
                 packet; use a store outside the packet folder (--store DIR or $EVSTORE_STORE; \
                 the default is ./.evstore in the working directory)",
                store.escaped()
            ),
        ));
    }
    Ok(())
}

/// Refuse a folder evstore would write into (or archive) that is the store folder or lies
/// inside it: its files would become stray entries of the store (or the store's own files a
/// packet). `path` need not exist; symlinks in it are resolved.
pub fn refuse_inside_store(store: &Path, path: &Path, what: &str) -> Result<()> {
    if S3Url::parse(store)?.is_some() {
        // No folder lies inside a bucket.
        return Ok(());
    }
    if std::fs::symlink_metadata(store).is_err() {
        return Ok(());
    }
    let store_resolved = resolved_path(store)?;
    if resolved_path(path)?.starts_with(&store_resolved) {
        return Err(Error::Usage(format!(
            "{what} {} is inside the store {}: evstore never writes into its store folder, nor \
             archives the store itself; use a folder outside it",
            path.escaped(),
            store.escaped()
        )));
    }
    Ok(())
}
