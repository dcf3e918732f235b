//! [`S3Backend`]: objects, packs and named keys in an S3-compatible bucket (feature `s3`).
//!
//! A store at `s3://BUCKET/PREFIX` keeps the same key layout as a store folder, below `PREFIX/`:
//! `VERSION`, `objects/ab/cd…`, `packs/<hex>.pack`, `refs/…`. Requests go through the
//! `object_store` crate (its `aws` client, path-style addressing) on a current-thread tokio
//! runtime owned by the backend; every method blocks until its requests are done, so the rest of
//! evstore stays synchronous. Endpoint, region and credentials come from the standard variables
//! (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_ALLOW_HTTP`). Server errors (5xx) and timeouts are retried with backoff by the client's
//! retry policy; nothing here ever retries a hash mismatch (reads are re-hashed by `Store`).
//!
//! Before its first write, a process runs the conditional-create probe ([`S3Backend::probe`]):
//! the correctness of named keys rests entirely on the server refusing a second
//! `PUT If-None-Match: *` of one key, and some S3-compatible servers silently overwrite instead.
//!
//! **Architecture Invariant:** every write is a create-if-absent (`If-None-Match: *`), except a
//! multipart upload (objects and packs larger than [`MULTIPART_THRESHOLD`]), which is started
//! only after a `HEAD` found the key absent: S3 offers no create-if-absent on multipart
//! completion everywhere, and a content-named key raced by two writers holds the same bytes
//! either way. Nothing is ever deleted but the probe's own scratch key.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as KeyPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};

use super::backend::{
    check_key, KeyCreated, KeyRead, ListedName, ListedObject, NamedKeys, ObjectBackend,
    ObjectLocation, Published, Put, PutName, PutSource,
};
use super::location::S3Url;
use crate::digest::Blake3Digest;
use crate::error::{Error, Result};
use crate::format::pack;
use crate::text::EscapePath;

/// Objects and packs larger than this are sent as multipart uploads, in parts of
/// [`MULTIPART_PART_SIZE`]; smaller ones in one conditional `PUT`.
pub const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;

/// The size of one part of a multipart upload (S3's minimum is 5 MiB).
pub const MULTIPART_PART_SIZE: usize = 8 * 1024 * 1024;

/// How long a passed conditional-create probe is remembered in the cache folder.
pub const PROBE_CACHE_SECONDS: u64 = 3600;

/// The message of a refused probe (the server replaced a key on a second create).
pub const OVERWRITES_MESSAGE: &str =
    "this server silently overwrites on If-None-Match: *; evstore cannot keep an append-only \
     store on it";

/// Where each object of a pack is, from the pack indexes read so far.
#[derive(Default)]
struct PackIndex {
    /// Pack keys whose index has been read.
    known: HashSet<String>,
    /// Object id → (pack key, offset, length).
    objects: HashMap<Blake3Digest, (Arc<Path>, u64, u64)>,
    /// True once `packs/` has been listed.
    scanned: bool,
    /// Pack key → where its objects end (the end of its last entry), from its index.
    data_end: HashMap<String, u64>,
}

/// How much of a pack one read fetches when it reads a packed object: the objects after it come
/// from memory. Reading a packet's small files one range `GET` each made an export of 20 000
/// files 20 000 requests (75 s against local SeaweedFS); with the window it is one per 4 MiB.
pub const PACK_READ_WINDOW: u64 = 4 * 1024 * 1024;

/// A store in an S3-compatible bucket.
pub struct S3Backend {
    url: S3Url,
    endpoint: String,
    client: Arc<AmazonS3>,
    runtime: Arc<tokio::runtime::Runtime>,
    probed: Mutex<bool>,
    packs: Mutex<PackIndex>,
    /// The last windows of packs read, newest last (at most [`PACK_WINDOWS_KEPT`]): (pack key,
    /// offset of its first byte, its bytes).
    window: Mutex<std::collections::VecDeque<(String, u64, Bytes)>>,
    /// Where the last reads of packed objects ended, newest last (at most
    /// [`PACK_READ_ENDS_KEPT`]): (pack key, offset after its last byte).
    last_packed_read: Mutex<std::collections::VecDeque<(String, u64)>>,
}

/// Windows kept at once: one per thread of a parallel reader (`export` reads with one per core).
const PACK_WINDOWS_KEPT: usize = 4;

/// Read ends remembered: a read that starts at one of them continues a run through the pack.
/// Parallel readers (and a pack written by parallel hashers) interleave their runs, so the one
/// last end would seldom match (an export of 300 small files made 99 to 203 `GET`s with it).
const PACK_READ_ENDS_KEPT: usize = 32;

impl std::fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Backend").field("url", &self.url).finish()
    }
}

/// True for the values `object_store` reads as true in `AWS_ALLOW_HTTP`.
fn truthy(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "1" | "true" | "on" | "yes" | "y"
    )
}

impl S3Backend {
    /// A client for the store at `url`, configured from the environment. Sends nothing yet.
    ///
    /// # Errors
    ///
    /// The client cannot be configured (a malformed endpoint, say) or the runtime not started.
    pub fn open(url: &S3Url) -> Result<S3Backend> {
        S3Backend::open_with_endpoint(url, None)
    }

    /// [`S3Backend::open`] with `endpoint` in place of `$AWS_ENDPOINT_URL` (when given).
    ///
    /// # Errors
    ///
    /// As [`S3Backend::open`].
    pub fn open_with_endpoint(url: &S3Url, endpoint: Option<&str>) -> Result<S3Backend> {
        // TLS goes through rustls with the `ring` provider (see Cargo.toml); it is installed as
        // the process default once (a second install, or one made by another caller, is fine).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let allow_http = std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| truthy(&v));
        let options = ClientOptions::new()
            .with_allow_http(allow_http)
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(120));
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: 4,
            retry_timeout: Duration::from_secs(60),
        };
        let mut builder = AmazonS3Builder::from_env();
        if let Some(endpoint) = endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let client = builder
            .with_bucket_name(&url.bucket)
            .with_virtual_hosted_style_request(false)
            .with_client_options(options)
            .with_retry(retry)
            .build()
            .map_err(|err| {
                Error::Usage(format!(
                    "{url}: cannot configure the S3 client from AWS_ENDPOINT_URL, AWS_REGION, \
                     AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP: {err}"
                ))
            })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| Error::io(url.to_string(), "cannot start the S3 client", err))?;
        let endpoint = endpoint
            .map(str::to_string)
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT").ok())
            .unwrap_or_else(|| "https://s3.amazonaws.com".to_string());
        Ok(S3Backend {
            url: url.clone(),
            endpoint,
            client: Arc::new(client),
            runtime: Arc::new(runtime),
            probed: Mutex::new(false),
            packs: Mutex::new(PackIndex::default()),
            window: Mutex::new(std::collections::VecDeque::new()),
            last_packed_read: Mutex::new(std::collections::VecDeque::new()),
        })
    }

    /// The store's URL.
    pub fn url(&self) -> &S3Url {
        &self.url
    }

    /// The bucket key of the store key `key` (`PREFIX/key`).
    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.url.prefix)
    }

    fn key_path(&self, full_key: &str) -> Result<KeyPath> {
        KeyPath::parse(full_key).map_err(|err| {
            Error::Internal(format!(
                "{full_key:?} is not an S3 key object_store accepts: {err}"
            ))
        })
    }

    /// An operational error naming the key and the S3 error.
    fn s3_error(&self, full_key: &str, action: &'static str, err: object_store::Error) -> Error {
        Error::io(
            format!("s3://{}/{full_key}", self.url.bucket),
            action,
            io::Error::other(err.to_string()),
        )
    }

    /// The `len` bytes at `offset` of the pack `key`, from a window read before if one holds
    /// them, else, when this read starts where one of the last reads of this pack ended (readers
    /// going through the pack in order, as `export` does), from a new window of up to
    /// [`PACK_READ_WINDOW`] bytes starting there (one range `GET`, never past the pack's last
    /// object). `None` otherwise (a reader jumping around, as `fsck` in id order: no window is
    /// fetched for it, so nothing is downloaded twice), when the pack's index has not been read
    /// (its end is unknown), or for an object larger than a window: the caller reads the exact
    /// range. The bytes are verified by the caller like any read.
    fn read_windowed(&self, key: &str, offset: u64, len: u64) -> Result<Option<Bytes>> {
        let in_order = {
            let mut ends = self
                .last_packed_read
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let in_order = ends.iter().any(|(pack, end)| pack == key && *end == offset);
            if ends.len() == PACK_READ_ENDS_KEPT {
                ends.pop_front();
            }
            ends.push_back((key.to_string(), offset.saturating_add(len)));
            in_order
        };
        if len > PACK_READ_WINDOW {
            return Ok(None);
        }
        let in_windows = |windows: &std::collections::VecDeque<(String, u64, Bytes)>| {
            windows.iter().rev().find_map(|(pack, start, bytes)| {
                let from = offset.checked_sub(*start)?;
                let to = from.checked_add(len)?;
                (pack == key && to <= bytes.len() as u64)
                    .then(|| bytes.slice(from as usize..to as usize))
            })
        };
        if let Some(bytes) = in_windows(&self.lock_window()) {
            return Ok(Some(bytes));
        }
        if !in_order {
            return Ok(None);
        }
        let Some(end) = self.lock_packs().data_end.get(key).copied() else {
            return Ok(None);
        };
        let stop = end
            .min(offset.saturating_add(PACK_READ_WINDOW))
            .max(offset.saturating_add(len));
        let path = self.key_path(key)?;
        let options = GetOptions {
            range: Some(GetRange::Bounded(offset..stop)),
            ..GetOptions::default()
        };
        let bytes = self
            .runtime
            .block_on(async { self.client.get_opts(&path, options).await?.bytes().await })
            .map_err(|err| self.s3_error(key, "cannot read", err))?;
        let mut windows = self.lock_window();
        if windows.len() == PACK_WINDOWS_KEPT {
            windows.pop_front();
        }
        windows.push_back((key.to_string(), offset, bytes));
        Ok(in_windows(&windows))
    }

    fn lock_window(&self) -> MutexGuard<'_, std::collections::VecDeque<(String, u64, Bytes)>> {
        // Replaced whole under the lock: a poisoned lock still holds consistent windows.
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_packs(&self) -> MutexGuard<'_, PackIndex> {
        // Every update is a map insert; a poisoned lock still holds consistent maps.
        self.packs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn object_key(&self, id: &Blake3Digest) -> String {
        let hex = id.to_hex();
        self.full_key(&format!("objects/{}/{}", &hex[..2], &hex[2..]))
    }

    fn pack_key(&self, name: &Blake3Digest) -> String {
        self.full_key(&format!("packs/{}.{}", name.to_hex(), pack::PACK_EXTENSION))
    }

    /// `PutMode::Create` of `bytes` at `full_key`: `Ok(true)` if created, `Ok(false)` if the key
    /// existed.
    fn create(&self, full_key: &str, bytes: Bytes) -> Result<bool> {
        let path = self.key_path(full_key)?;
        let options = PutOptions::from(PutMode::Create);
        match self.runtime.block_on(self.client.put_opts(
            &path,
            PutPayload::from_bytes(bytes),
            options,
        )) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(err) => Err(self.s3_error(full_key, "cannot create", err)),
        }
    }

    /// The size of `full_key`, or `None` if it is absent.
    fn head(&self, full_key: &str) -> Result<Option<u64>> {
        let path = self.key_path(full_key)?;
        match self.runtime.block_on(self.client.head(&path)) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(self.s3_error(full_key, "cannot stat", err)),
        }
    }

    /// A stream of `full_key`'s bytes (or of `range` of them), or `None` if it is absent.
    fn get(
        &self,
        full_key: &str,
        range: Option<std::ops::Range<u64>>,
        max_len: Option<u64>,
    ) -> Result<Option<GetStream>> {
        let path = self.key_path(full_key)?;
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        match self.runtime.block_on(self.client.get_opts(&path, options)) {
            Ok(result) => {
                let len = result.range.end - result.range.start;
                if max_len.is_some_and(|max| len > max) {
                    return Ok(Some(GetStream::TooLarge));
                }
                Ok(Some(GetStream::Stream(S3Reader {
                    runtime: Arc::clone(&self.runtime),
                    stream: result.into_stream(),
                    chunk: Bytes::new(),
                    key: full_key.to_string(),
                    remaining: len,
                })))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(self.s3_error(full_key, "cannot read", err)),
        }
    }

    /// `full_key` read whole (at most `max_len` bytes), or `None` if it is absent.
    fn get_bytes(&self, full_key: &str, max_len: u64) -> Result<Option<KeyRead>> {
        match self.get(full_key, None, Some(max_len))? {
            None => Ok(None),
            Some(GetStream::TooLarge) => Ok(Some(KeyRead::TooLarge)),
            Some(GetStream::Stream(mut reader)) => {
                let mut bytes = Vec::new();
                match reader.read_to_end(&mut bytes) {
                    Ok(_) => Ok(Some(KeyRead::Found(bytes))),
                    Err(err) => Ok(Some(KeyRead::Unreadable(err.to_string()))),
                }
            }
        }
    }

    /// Every key below `full_prefix` (which ends in `/`), with its size, in key order.
    fn list_keys(&self, full_prefix: &str) -> Result<Vec<(String, u64)>> {
        let trimmed = full_prefix.trim_end_matches('/');
        let path = if trimmed.is_empty() {
            None
        } else {
            Some(self.key_path(trimmed)?)
        };
        let mut stream = self.client.list(path.as_ref());
        let mut out = Vec::new();
        self.runtime.block_on(async {
            while let Some(item) = stream.next().await {
                match item {
                    Ok(meta) => out.push((meta.location.to_string(), meta.size)),
                    Err(err) => return Err(self.s3_error(full_prefix, "cannot list", err)),
                }
            }
            Ok(())
        })?;
        out.sort();
        Ok(out)
    }

    /// Read and check a pack's magic, footer, index and name; the entries in id order. The
    /// message says what is wrong.
    fn read_pack_index(
        &self,
        key: &str,
        len: u64,
    ) -> Result<std::result::Result<Vec<pack::PackEntry>, String>> {
        let name = key
            .rsplit('/')
            .next()
            .and_then(|file| file.strip_suffix(pack::PACK_EXTENSION))
            .and_then(|hex| hex.strip_suffix('.'))
            .and_then(Blake3Digest::parse_hex);
        let Some(name) = name else {
            return Ok(Err("not a pack name".into()));
        };
        if len < (pack::PACK_MAGIC.len() as u64) + pack::FOOTER_LEN {
            return Ok(Err(format!("{len} bytes is too short for a pack")));
        }
        let magic = self.read_range(key, 0..pack::PACK_MAGIC.len() as u64)?;
        if magic != pack::PACK_MAGIC {
            return Ok(Err("bad magic (not an evstore pack)".into()));
        }
        let footer_bytes = self.read_range(key, len - pack::FOOTER_LEN..len)?;
        let Ok(footer) = <[u8; pack::FOOTER_LEN as usize]>::try_from(footer_bytes.as_slice())
        else {
            return Ok(Err("the pack changed size while its index was read".into()));
        };
        let start = match pack::index_start(&footer, len) {
            Ok(start) => start,
            Err(reason) => return Ok(Err(reason)),
        };
        let trailer = self.read_range(key, start..len)?;
        if trailer.len() as u64 != len - start {
            return Ok(Err("the pack changed size while its index was read".into()));
        }
        if pack::pack_name(&trailer) != name {
            return Ok(Err(format!(
                "its index hashes to {}, not to its name",
                pack::pack_name(&trailer)
            )));
        }
        let entries =
            pack::decode_index(&trailer[..trailer.len() - pack::FOOTER_LEN as usize], start);
        if entries.is_ok() {
            self.keep_pack_trailer(key, &trailer);
        }
        Ok(entries)
    }

    fn read_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        match self.get(key, Some(range), None)? {
            Some(GetStream::Stream(mut reader)) => {
                reader.read_to_end(&mut bytes).map_err(|err| {
                    Error::io(
                        format!("s3://{}/{key}", self.url.bucket),
                        "cannot read",
                        err,
                    )
                })?;
                Ok(bytes)
            }
            _ => Err(Error::corrupt(
                format!("pack s3://{}/{key}", self.url.bucket),
                "it vanished while its index was read",
            )),
        }
    }

    /// Read the indexes of packs not read yet.
    fn rescan_packs(&self, index: &mut PackIndex) -> Result<()> {
        let listed = self.list_keys(&self.full_key("packs/"))?;
        self.read_new_pack_indexes(index, &listed)
    }

    /// Read the indexes of the `listed` packs (key, size) not read yet: from this machine's copy
    /// of a pack's index when it has one ([`S3Backend::cached_pack_trailer`]), else from the
    /// bucket (three range `GET`s), keeping a copy.
    fn read_new_pack_indexes(&self, index: &mut PackIndex, listed: &[(String, u64)]) -> Result<()> {
        for (key, len) in listed {
            if index.known.contains(key) {
                continue;
            }
            let entries = match self.cached_pack_trailer(key, *len) {
                Some(entries) => Ok(entries),
                None => self.read_pack_index(key, *len)?,
            };
            // A bad pack is skipped here (its objects are not found); fsck reports it.
            if let Ok(entries) = entries {
                let end = entries.iter().map(|e| e.offset + e.len).max().unwrap_or(0);
                index.data_end.insert(key.clone(), end);
                let pack: Arc<Path> = Arc::from(Path::new(key));
                for entry in entries {
                    index.objects.entry(entry.id).or_insert((
                        Arc::clone(&pack),
                        entry.offset,
                        entry.len,
                    ));
                }
            }
            index.known.insert(key.clone());
        }
        index.scanned = true;
        Ok(())
    }

    /// Where this machine keeps a copy of each pack's trailer (its index and footer) it read:
    /// `<cache folder>/pack-indexes/<pack name>`. A copy is checked by its name (a pack is named
    /// by the BLAKE3 of its trailer), so a damaged or foreign one is never used.
    fn pack_trailer_copy(&self, key: &str) -> Option<PathBuf> {
        let file = key.rsplit('/').next()?;
        let hex = file.strip_suffix(pack::PACK_EXTENSION)?.strip_suffix('.')?;
        Blake3Digest::parse_hex(hex)?;
        Some(self.cache_folder().ok()?.join("pack-indexes").join(hex))
    }

    /// The entries of the pack `key` of `len` bytes from this machine's copy of its trailer, if
    /// it has a sound one. Used to find objects, never by `fsck` (`list`), which reads the
    /// bucket.
    fn cached_pack_trailer(&self, key: &str, len: u64) -> Option<Vec<pack::PackEntry>> {
        let copy = self.pack_trailer_copy(key)?;
        let trailer = std::fs::read(&copy).ok()?;
        let name = Blake3Digest::parse_hex(&copy.file_name()?.to_string_lossy())?;
        if pack::pack_name(&trailer) != name || (trailer.len() as u64) > len {
            return None;
        }
        let footer_at = trailer.len().checked_sub(pack::FOOTER_LEN as usize)?;
        let footer = <[u8; pack::FOOTER_LEN as usize]>::try_from(&trailer[footer_at..]).ok()?;
        let start = pack::index_start(&footer, len).ok()?;
        if start != len - trailer.len() as u64 {
            return None;
        }
        pack::decode_index(&trailer[..footer_at], start).ok()
    }

    /// Keep a copy of a pack's trailer read from the bucket (best effort: a copy that cannot
    /// be written is read from the bucket again next time).
    fn keep_pack_trailer(&self, key: &str, trailer: &[u8]) {
        let Some(copy) = self.pack_trailer_copy(key) else {
            return;
        };
        let Some(dir) = copy.parent() else {
            return;
        };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        if let Ok(mut temp) = tempfile::NamedTempFile::new_in(dir) {
            if std::io::Write::write_all(&mut temp, trailer).is_ok() {
                let _ = temp.persist(&copy);
            }
        }
    }

    fn find_packed(
        &self,
        id: &Blake3Digest,
        rescan_on_miss: bool,
    ) -> Result<Option<(Arc<Path>, u64, u64)>> {
        let mut index = self.lock_packs();
        if !index.scanned || (rescan_on_miss && !index.objects.contains_key(id)) {
            self.rescan_packs(&mut index)?;
        }
        Ok(index.objects.get(id).cloned())
    }

    /// The cache file remembering a passed probe for this endpoint and bucket, if a cache
    /// folder can be named (`$EVSTORE_CACHE`, else `$XDG_CACHE_HOME/evstore`, else
    /// `~/.cache/evstore`).
    fn probe_cache_file(&self) -> Option<PathBuf> {
        let dir = cache_dir()?;
        let id = blake3::hash(format!("{}\n{}\n", self.endpoint, self.url.bucket).as_bytes());
        Some(
            dir.join("probe")
                .join(format!("{}.passed", &id.to_hex()[..32])),
        )
    }

    /// This machine's cache folder of the store: `<cache>/stores/<bucket>-<32 hex>`, the hex
    /// naming the endpoint, bucket and prefix (two servers with one bucket name, or two stores in
    /// one bucket, get separate caches). It holds the catalog cache and `tmp/`, and a `STORE`
    /// file naming the store for a person who looks.
    ///
    /// # Errors
    ///
    /// No cache folder can be named (neither `$EVSTORE_CACHE`, `$XDG_CACHE_HOME` nor `$HOME`
    /// is set), or it cannot be created.
    pub fn cache_folder(&self) -> Result<PathBuf> {
        if let Some(value) = std::env::var_os("EVSTORE_CACHE").filter(|v| !v.is_empty()) {
            if Path::new(&value).is_relative() {
                return Err(Error::Usage(format!(
                    "$EVSTORE_CACHE is the relative path {}: it must be absolute (a relative one \
                     would name another cache from each working folder)",
                    Path::new(&value).escaped()
                )));
            }
        }
        let Some(dir) = cache_dir() else {
            return Err(Error::Usage(format!(
                "{}: an S3 store needs a cache folder on this machine for its catalog; set \
                 $EVSTORE_CACHE (or $XDG_CACHE_HOME or $HOME)",
                self.url
            )));
        };
        let id = blake3::hash(
            format!(
                "{}\n{}\n{}\n",
                self.endpoint, self.url.bucket, self.url.prefix
            )
            .as_bytes(),
        );
        let folder = dir
            .join("stores")
            .join(format!("{}-{}", self.url.bucket, &id.to_hex()[..32]));
        std::fs::create_dir_all(&folder)
            .map_err(|err| Error::io(&folder, "cannot create the cache folder", err))?;
        let about = folder.join("STORE");
        if !about.exists() {
            let text = format!(
                "evstore: this folder caches the catalog of the store {} at {}; delete it to \
                 rebuild it from the bucket\n",
                self.url, self.endpoint
            );
            let _ = std::fs::write(&about, text);
        }
        Ok(folder)
    }

    fn probe_cached(&self) -> bool {
        let Some(file) = self.probe_cache_file() else {
            return false;
        };
        let Ok(modified) = std::fs::metadata(&file).and_then(|meta| meta.modified()) else {
            return false;
        };
        SystemTime::now()
            .duration_since(modified)
            .is_ok_and(|age| age.as_secs() < PROBE_CACHE_SECONDS)
    }

    fn remember_probe(&self) {
        // The cache only saves requests: a cache that cannot be written means probing again.
        if let Some(file) = self.probe_cache_file() {
            if let Some(dir) = file.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let text = format!(
                "evstore: the conditional-create probe passed\nendpoint {}\nbucket {}\n",
                self.endpoint, self.url.bucket
            );
            let _ = std::fs::write(&file, text);
        }
    }

    /// The conditional-create probe: create a scratch key `PREFIX/probe/…` twice with
    /// `If-None-Match: *`; the second create must fail with "already exists". Refuses (exit 2)
    /// a server that overwrites, or that does not support the condition. The scratch key is
    /// deleted afterwards (if the server lets this user delete).
    ///
    /// # Errors
    ///
    /// The server overwrote or refused the condition, or a request failed.
    pub fn probe(&self) -> Result<()> {
        let nonce = blake3::hash(
            format!(
                "{}-{:?}-{:?}",
                std::process::id(),
                SystemTime::now(),
                std::thread::current().id()
            )
            .as_bytes(),
        );
        let key = self.full_key(&format!("probe/{}", &nonce.to_hex()[..32]));
        let path = self.key_path(&key)?;
        let create = |bytes: &'static [u8]| {
            self.runtime.block_on(self.client.put_opts(
                &path,
                PutPayload::from_static(bytes),
                PutOptions::from(PutMode::Create),
            ))
        };
        match create(b"evstore probe 1\n") {
            Ok(_) => {}
            Err(err) => return Err(self.s3_error(&key, "conditional-create probe failed", err)),
        }
        let second = create(b"evstore probe 2\n");
        let _ = self.runtime.block_on(self.client.delete(&path));
        match second {
            Err(object_store::Error::AlreadyExists { .. }) => {
                self.remember_probe();
                Ok(())
            }
            Ok(_) => Err(Error::unsupported(
                self.url.to_string(),
                format!(
                    "{OVERWRITES_MESSAGE} (the conditional-create probe created {key} twice \
                     at {}, and the second create succeeded)",
                    self.endpoint
                ),
            )),
            Err(
                err @ (object_store::Error::NotImplemented { .. }
                | object_store::Error::NotSupported { .. }
                | object_store::Error::Precondition { .. }),
            ) => Err(Error::unsupported(
                self.url.to_string(),
                format!(
                    "this server does not honour If-None-Match: * as evstore needs (the second \
                     create of the probe key {key} failed with: {err}); evstore cannot keep an \
                     append-only store on it"
                ),
            )),
            Err(err) => Err(self.s3_error(&key, "conditional-create probe failed", err)),
        }
    }

    /// Run the probe once per process (and per hour, with a cache folder) before a write.
    fn ensure_probed(&self) -> Result<()> {
        let mut probed = self.probed.lock().unwrap_or_else(|p| p.into_inner());
        if *probed {
            return Ok(());
        }
        if !self.probe_cached() {
            self.probe()?;
        }
        *probed = true;
        Ok(())
    }

    /// Upload `source` to `full_key` as a multipart upload, unless the key exists. True if this
    /// call stored it.
    fn put_large(&self, full_key: &str, source: PutSource) -> Result<bool> {
        if self.head(full_key)?.is_some() {
            return Ok(false);
        }
        let path = self.key_path(full_key)?;
        let mut reader: Box<dyn Read + Send> = match source {
            PutSource::Bytes(bytes) => Box::new(io::Cursor::new(bytes)),
            PutSource::Spooled(spooled) => spooled.reader()?,
        };
        let at = format!("s3://{}/{full_key}", self.url.bucket);
        self.runtime.block_on(async {
            let upload = self
                .client
                .put_multipart_opts(&path, PutMultipartOptions::default())
                .await
                .map_err(|err| self.s3_error(full_key, "cannot start a multipart upload", err))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_PART_SIZE);
            let mut buf = vec![0u8; 1024 * 1024];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(n) => n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) => {
                        let _ = writer.abort().await;
                        return Err(Error::io(&at, "cannot read the bytes to upload", err));
                    }
                };
                if n == 0 {
                    break;
                }
                if let Err(err) = writer.wait_for_capacity(4).await {
                    let _ = writer.abort().await;
                    return Err(self.s3_error(full_key, "cannot upload a part", err));
                }
                writer.write(&buf[..n]);
            }
            writer
                .finish()
                .await
                .map_err(|err| self.s3_error(full_key, "cannot complete a multipart upload", err))
        })?;
        Ok(true)
    }

    /// Store `source` at `full_key` unless something is there: true if this call stored it.
    fn put_one(&self, full_key: &str, source: PutSource) -> Result<bool> {
        if source.len() > MULTIPART_THRESHOLD {
            return self.put_large(full_key, source);
        }
        let bytes = source.into_bytes()?;
        self.create(full_key, Bytes::from(bytes))
    }
}

/// The cache folder: `$EVSTORE_CACHE`, else `$XDG_CACHE_HOME/evstore`, else `~/.cache/evstore`.
pub fn cache_dir() -> Option<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty("EVSTORE_CACHE") {
        // A relative one is refused by `S3Backend::cache_folder`; nothing is cached there.
        return Some(PathBuf::from(dir)).filter(|dir| dir.is_absolute());
    }
    // The XDG Base Directory specification: a relative `$XDG_CACHE_HOME` is invalid and ignored.
    if let Some(dir) = non_empty("XDG_CACHE_HOME").filter(|dir| Path::new(dir).is_absolute()) {
        return Some(PathBuf::from(dir).join("evstore"));
    }
    non_empty("HOME").map(|home| PathBuf::from(home).join(".cache").join("evstore"))
}

enum GetStream {
    Stream(S3Reader),
    TooLarge,
}

/// A blocking `Read` over the body of one `GET`.
struct S3Reader {
    runtime: Arc<tokio::runtime::Runtime>,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    chunk: Bytes,
    key: String,
    remaining: u64,
}

impl Read for S3Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.runtime.block_on(self.stream.next()) {
                None if self.remaining == 0 => return Ok(0),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{}: the response ended {} bytes early",
                            self.key, self.remaining
                        ),
                    ))
                }
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(err)) => {
                    return Err(io::Error::other(format!("{}: {err}", self.key)));
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        self.remaining = self.remaining.saturating_sub(n as u64);
        Ok(n)
    }
}

impl ObjectBackend for S3Backend {
    fn describe(&self) -> String {
        self.url.to_string()
    }

    /// A `HEAD` per object would make an ingest of 200 files 200 requests.
    fn exists_is_cheap(&self) -> bool {
        false
    }

    /// One listing of `packs/` (the indexes of packs this machine has not seen are read once
    /// and kept in its cache folder), then a `HEAD` of the loose key of each id no listed pack
    /// holds: a request per packet's worth of small objects, not per object.
    fn find_missing(&self, ids: &[Blake3Digest]) -> Result<Vec<Blake3Digest>> {
        let listed = self.list_keys(&self.full_key("packs/"))?;
        let listed_now: HashSet<&str> = listed.iter().map(|(key, _)| key.as_str()).collect();
        let not_packed: Vec<Blake3Digest> = {
            let mut index = self.lock_packs();
            self.read_new_pack_indexes(&mut index, &listed)?;
            ids.iter()
                .filter(|id| match index.objects.get(id) {
                    Some((pack, ..)) => !listed_now.contains(pack.to_string_lossy().as_ref()),
                    None => true,
                })
                .copied()
                .collect()
        };
        let mut missing = Vec::new();
        for id in not_packed {
            if self.head(&self.object_key(&id))?.is_none() {
                missing.push(id);
            }
        }
        Ok(missing)
    }

    /// Two small objects are already one request fewer as a pack: an ingest of a packet of
    /// small files is one `PUT` for all of them.
    fn pack_min_objects(&self) -> usize {
        2
    }

    /// A packed copy the pack index knows already is read first (one range `GET`); else the
    /// loose key; else the packs, re-listed once.
    fn open(&self, id: &Blake3Digest) -> Result<Option<Box<dyn Read + Send>>> {
        let known = self.lock_packs().objects.get(id).cloned();
        if let Some((pack, offset, len)) = known {
            return Ok(Some(self.open_at(&ObjectLocation::Packed {
                pack,
                offset,
                len,
            })?));
        }
        match self.get(&self.object_key(id), None, None)? {
            Some(GetStream::Stream(reader)) => return Ok(Some(Box::new(reader))),
            Some(GetStream::TooLarge) | None => {}
        }
        match self.find_packed(id, true)? {
            Some((pack, offset, len)) => Ok(Some(self.open_at(&ObjectLocation::Packed {
                pack,
                offset,
                len,
            })?)),
            None => Ok(None),
        }
    }

    fn open_at(&self, location: &ObjectLocation) -> Result<Box<dyn Read + Send>> {
        let (key, range) = match location {
            ObjectLocation::Loose(path) => (path.to_string_lossy().into_owned(), None),
            ObjectLocation::Packed { pack, offset, len } => {
                let key = pack.to_string_lossy().into_owned();
                if let Some(bytes) = self.read_windowed(&key, *offset, *len)? {
                    return Ok(Box::new(io::Cursor::new(bytes)));
                }
                (key, Some(*offset..offset.saturating_add(*len)))
            }
        };
        match self.get(&key, range, None)? {
            Some(GetStream::Stream(reader)) => Ok(Box::new(reader)),
            _ => Err(Error::io(
                format!("s3://{}/{key}", self.url.bucket),
                "cannot open object",
                io::Error::from(io::ErrorKind::NotFound),
            )),
        }
    }

    fn stat(&self, id: &Blake3Digest) -> Result<Option<u64>> {
        match self.head(&self.object_key(id))? {
            Some(len) => Ok(Some(len)),
            None => Ok(self.find_packed(id, false)?.map(|(_, _, len)| len)),
        }
    }

    fn list(&self) -> Result<Vec<ListedObject>> {
        let mut out = Vec::new();
        let objects = self.full_key("objects/");
        for (key, len) in self.list_keys(&objects)? {
            let rest = &key[objects.len()..];
            let id = match rest.split_once('/') {
                Some((fan, tail)) if fan.len() == 2 && !tail.contains('/') => {
                    Blake3Digest::parse_hex(&format!("{fan}{tail}"))
                }
                _ => None,
            };
            match id {
                Some(id) => out.push(ListedObject::Object {
                    id,
                    stored_size: len,
                    location: ObjectLocation::Loose(PathBuf::from(&key)),
                }),
                None => out.push(ListedObject::Stray(PathBuf::from(&key))),
            }
        }
        let packs = self.full_key("packs/");
        for (key, len) in self.list_keys(&packs)? {
            match self.read_pack_index(&key, len)? {
                Ok(entries) => out.extend(ListedObject::packed(Path::new(&key), &entries)),
                Err(reason) if reason == "not a pack name" => {
                    out.push(ListedObject::Stray(PathBuf::from(&key)));
                }
                Err(reason) => out.push(ListedObject::BadPack {
                    path: PathBuf::from(&key),
                    reason,
                }),
            }
        }
        Ok(out)
    }

    fn put_if_absent(&self, puts: Vec<Put>) -> Result<Vec<Published>> {
        if puts.is_empty() {
            return Ok(Vec::new());
        }
        self.ensure_probed()?;
        let mut published = Vec::new();
        for put in puts {
            let stored_size = put.source.len();
            match put.name {
                PutName::Object(id) => {
                    let newly_stored = self.put_one(&self.object_key(&id), put.source)?;
                    published.push(Published {
                        id,
                        newly_stored,
                        stored_size,
                    });
                }
                PutName::Pack { name, entries } => {
                    let key = self.pack_key(&name);
                    let newly_stored = self.put_one(&key, put.source)?;
                    // This machine's copy of the pack's index, for the next process that looks
                    // for its objects (checked by its name when read).
                    self.keep_pack_trailer(&key, &pack::encode_trailer(&mut entries.clone()));
                    let pack: Arc<Path> = Arc::from(Path::new(&key));
                    let mut index = self.lock_packs();
                    let end = entries.iter().map(|e| e.offset + e.len).max().unwrap_or(0);
                    index.data_end.insert(key.clone(), end);
                    for entry in &entries {
                        index.objects.entry(entry.id).or_insert((
                            Arc::clone(&pack),
                            entry.offset,
                            entry.len,
                        ));
                        published.push(Published {
                            id: entry.id,
                            newly_stored,
                            stored_size: entry.len,
                        });
                    }
                    index.known.insert(key);
                }
            }
        }
        Ok(published)
    }
}

impl NamedKeys for S3Backend {
    fn create_key_if_absent(&self, key: &str, bytes: &[u8]) -> Result<KeyCreated> {
        check_key(key)?;
        self.ensure_probed()?;
        let full_key = self.full_key(key);
        if self.create(&full_key, Bytes::copy_from_slice(bytes))? {
            return Ok(KeyCreated::Created);
        }
        match self.get_bytes(&full_key, u64::MAX)? {
            Some(KeyRead::Found(existing)) => Ok(KeyCreated::AlreadyExists(existing)),
            Some(KeyRead::Unreadable(reason)) => Err(Error::io(
                format!("s3://{}/{full_key}", self.url.bucket),
                "cannot read the key another writer created",
                io::Error::other(reason),
            )),
            _ => Err(Error::io(
                format!("s3://{}/{full_key}", self.url.bucket),
                "the server said the key exists, but it cannot be read",
                io::Error::from(io::ErrorKind::NotFound),
            )),
        }
    }

    fn read_key(&self, key: &str, max_len: u64) -> Result<KeyRead> {
        check_key(key)?;
        Ok(self
            .get_bytes(&self.full_key(key), max_len)?
            .unwrap_or(KeyRead::Missing))
    }

    /// One delimited listing (`delimiter=/`, all pages): the keys and deeper prefixes directly
    /// below `prefix`. With the prefix `""`, the names at the top of the store.
    fn list_names(&self, prefix: &str) -> Result<Vec<ListedName>> {
        if !prefix.is_empty() {
            check_key(prefix.trim_end_matches('/'))?;
        }
        let full_prefix = self.full_key(prefix);
        let trimmed = full_prefix.trim_end_matches('/');
        let path = if trimmed.is_empty() {
            None
        } else {
            Some(self.key_path(trimmed)?)
        };
        let listing = self
            .runtime
            .block_on(self.client.list_with_delimiter(path.as_ref()))
            .map_err(|err| self.s3_error(&full_prefix, "cannot list", err))?;
        let names: std::collections::BTreeSet<String> = listing
            .common_prefixes
            .iter()
            .chain(listing.objects.iter().map(|meta| &meta.location))
            .filter_map(|key| key.as_ref().strip_prefix(full_prefix.as_str()))
            .filter_map(|rest| rest.split('/').next())
            .filter(|name| !name.is_empty())
            .map(str::to_string)
            .collect();
        Ok(names.into_iter().map(ListedName::Name).collect())
    }

    /// One listing that starts after `PREFIX/after` (S3 `start-after`): the names directly below
    /// `prefix` past `after`, without listing the ones before it again.
    fn list_names_after(&self, prefix: &str, after: &str) -> Result<Vec<ListedName>> {
        check_key(prefix.trim_end_matches('/'))?;
        let full_prefix = self.full_key(prefix);
        let path = self.key_path(full_prefix.trim_end_matches('/'))?;
        let offset = self.key_path(&format!("{full_prefix}{after}"))?;
        let mut stream = self.client.list_with_offset(Some(&path), &offset);
        let mut names = std::collections::BTreeSet::new();
        self.runtime.block_on(async {
            while let Some(item) = stream.next().await {
                let meta = item.map_err(|err| self.s3_error(&full_prefix, "cannot list", err))?;
                if let Some(rest) = meta.location.as_ref().strip_prefix(full_prefix.as_str()) {
                    if let Some(name) = rest.split('/').next().filter(|n| !n.is_empty()) {
                        if name > after {
                            names.insert(name.to_string());
                        }
                    }
                }
            }
            Ok::<(), Error>(())
        })?;
        Ok(names.into_iter().map(ListedName::Name).collect())
    }

    /// One flat listing (no delimiter): every key below `prefix`, one request per 1000 keys.
    fn list_keys_below(&self, prefix: &str) -> Result<Vec<String>> {
        check_key(prefix.trim_end_matches('/'))?;
        let full_prefix = self.full_key(prefix);
        Ok(self
            .list_keys(&full_prefix)?
            .into_iter()
            .filter_map(|(key, _)| {
                key.strip_prefix(self.url.prefix.as_str())
                    .map(str::to_string)
            })
            .collect())
    }

    /// True if any key lies below `prefix` (the first page of a listing is enough).
    fn key_space_exists(&self, prefix: &str) -> Result<bool> {
        check_key(prefix.trim_end_matches('/'))?;
        let full_prefix = self.full_key(prefix);
        let path = self.key_path(full_prefix.trim_end_matches('/'))?;
        let mut stream = self.client.list(Some(&path));
        match self.runtime.block_on(stream.next()) {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(err)) => Err(self.s3_error(&full_prefix, "cannot list", err)),
        }
    }

    fn create_key_space(&self, prefix: &str, _keys: &[(String, Vec<u8>)]) -> Result<bool> {
        Err(Error::unsupported(
            format!("{}{prefix}", self.url),
            "S3 cannot create several keys at once; a key space is created only when a local \
             store is upgraded, never in a bucket",
        ))
    }
}
