//! Setting a store up: creating one (`init`, with its `init` event), opening one for a command
//! that writes or only reads, and `ingest` of a folder into a store that may not exist yet
//! (created with the packet in it, or not at all), with the default packet name and the name and
//! location checks that come first.
//!
//! **Architecture Invariant:** a store is visible only once its catalog holds the `init` event;
//! a first ingest that is refused leaves no store behind. Nothing here prints: what happened
//! (a store was created) is a field of the report.

use std::path::{Path, PathBuf};

use crate::catalog::{Catalog, NewEvent};
use crate::error::{Error, Result};
use crate::ops::ingest::{
    ingest_folder, IngestConfig, IngestOutcome, IngestReport, PacketFolder, SealRefusal,
};
use crate::packet_ref::{check_new_packet_name, PacketRef};
use crate::progress::Progress;
use crate::store::Store;
use crate::text::EscapePath;

/// Create a new, empty store at `root` whose catalog (with its `init` event) exists before the
/// store is visible.
///
/// # Errors
///
/// [`Error::AlreadyExists`] for an existing store, [`Error::Usage`] for a store location that
/// cannot be used, and I/O or catalog errors (with the path) creating it.
pub fn create_store(root: &Path) -> Result<Store> {
    Store::init_with(root, |staged| prepare_new_catalog(root, staged))
}

/// If `location` is an S3 store URL (`s3://BUCKET/PREFIX`), create the store there: run the
/// conditional-create probe, then write its `VERSION` key with create-if-absent. `Ok(false)` if
/// `location` is not an S3 URL (the caller creates a local store).
///
/// # Errors
///
/// [`Error::AlreadyExists`] if the prefix holds a `VERSION` key already, [`Error::Usage`] for a
/// malformed URL, a prefix that holds other keys, or a build without the `s3` feature; the
/// probe's refusal of a server that overwrites; request errors naming the key.
pub fn create_s3_store_if_url(location: &Path) -> Result<bool> {
    let Some(url) = crate::store::S3Url::parse(location)? else {
        return Ok(false);
    };
    create_s3_store(&url)?;
    Ok(true)
}

#[cfg(not(feature = "s3"))]
fn create_s3_store(url: &crate::store::S3Url) -> Result<()> {
    Err(Error::Usage(crate::store::location::s3_not_available(url)))
}

#[cfg(feature = "s3")]
fn create_s3_store(url: &crate::store::S3Url) -> Result<()> {
    use crate::store::{KeyCreated, ListedName, NamedKeys};
    let backend = crate::store::s3::S3Backend::open(url)?;
    // Fail before writing anything if the server cannot be reached or refuses the credentials.
    let present = backend.list_names("")?;
    refuse_inside_another_s3_store(url)?;
    let others: Vec<String> = present
        .iter()
        .filter_map(|name| match name {
            ListedName::Name(name) if name == "VERSION" || name == "probe" => None,
            ListedName::Name(name) | ListedName::NotUtf8(name) => Some(name.clone()),
        })
        .collect();
    let has_version = present
        .iter()
        .any(|name| matches!(name, ListedName::Name(n) if n == "VERSION"));
    if !has_version && !others.is_empty() {
        return Err(Error::Usage(format!(
            "{url} is not empty (it holds {}) and is not an evstore store: an S3 store needs a \
             prefix of its own",
            others.join(", ")
        )));
    }
    match backend.create_key_if_absent("VERSION", crate::store::STORE_VERSION_TEXT.as_bytes())? {
        KeyCreated::Created => {
            // The first event, then this machine's cache of the new store.
            let location = std::path::PathBuf::from(url.to_string());
            open_for_writing(&location)?;
            Ok(())
        }
        KeyCreated::AlreadyExists(bytes)
            if bytes == crate::store::STORE_VERSION_TEXT.as_bytes() =>
        {
            Err(Error::AlreadyExists(format!(
                "{url} is already an evstore store"
            )))
        }
        KeyCreated::AlreadyExists(bytes) => Err(Error::AlreadyExists(format!(
            "{url} already holds a VERSION key that is not an evstore store's ({:?})",
            String::from_utf8_lossy(&bytes[..bytes.len().min(64)])
        ))),
    }
}

/// Refuse a new S3 store whose prefix lies inside another store's (a prefix above it holds a
/// `VERSION` key, or, for a store whose `VERSION` key was deleted, a store's `log/`, `refs/`,
/// `packs/` or `objects/`): its keys would be the other store's strays, or worse, its `log/` or
/// `refs/`. One listing per prefix above it, the bucket's root included. Two `init`s of nested
/// prefixes at the same moment can both pass this check (ARCHITECTURE.md, known gaps).
#[cfg(feature = "s3")]
fn refuse_inside_another_s3_store(url: &crate::store::S3Url) -> Result<()> {
    use crate::store::{ListedName, NamedKeys};
    let parts: Vec<&str> = url.prefix.split('/').filter(|p| !p.is_empty()).collect();
    for depth in 0..parts.len() {
        let above = crate::store::S3Url {
            bucket: url.bucket.clone(),
            prefix: parts[..depth].iter().map(|p| format!("{p}/")).collect(),
        };
        let backend = crate::store::s3::S3Backend::open(&above)?;
        let names: Vec<String> = backend
            .list_names("")?
            .into_iter()
            .filter_map(|name| match name {
                ListedName::Name(name) => Some(name),
                ListedName::NotUtf8(_) => None,
            })
            .collect();
        if names.iter().any(|name| name == "VERSION") {
            return Err(Error::Usage(format!(
                "{url} lies inside the evstore store {above}: a store needs a prefix of its own, \
                 outside every other store"
            )));
        }
        let spaces: Vec<&str> = ["log", "refs", "packs", "objects"]
            .into_iter()
            .filter(|space| names.iter().any(|name| name == space))
            .collect();
        if !spaces.is_empty() {
            return Err(Error::Usage(format!(
                "{url} lies inside {above}, which holds an evstore store's keys ({}) without a \
                 VERSION key (a damaged store): a store needs a prefix of its own, outside every \
                 other store",
                spaces.join("/, ") + "/"
            )));
        }
    }
    Ok(())
}

/// Create the catalog of a new store being built in `staged` (to appear at `root`), with its
/// `init` event.
///
/// # Errors
///
/// Catalog errors (with the path) creating the catalog or writing the event.
pub fn prepare_new_catalog(root: &Path, staged: &Path) -> Result<()> {
    let mut catalog = Catalog::open(&staged.join(crate::store::CATALOG_FILE_NAME))?;
    catalog.log_event(&NewEvent::init(root, crate::TOOL_VERSION))?;
    crate::ops::markers::create_log_in_staged(staged, &catalog)?;
    Ok(())
}

/// Open the store at `root` for a command that writes to it: refused up front if this user
/// cannot write it.
///
/// # Errors
///
/// [`Error::Usage`] for a store this user cannot write or a missing catalog; I/O errors (with
/// the path) opening it.
pub fn open_for_writing(root: &Path) -> Result<(Store, Catalog)> {
    let mut store = Store::open(root)?;
    store.check_writable()?;
    if store.is_remote() {
        let catalog = open_remote_cache(&mut store, true)?;
        return Ok((store, catalog));
    }
    let mut catalog = Catalog::open_existing(&store.catalog_path())?;
    crate::ops::markers::attach_log(&mut store, &mut catalog)?;
    Ok((store, catalog))
}

/// The catalog of an S3 store: this machine's cache of the bucket, created if missing (deleting
/// the cache folder is always safe) and brought up to date with the bucket's `log/` and version
/// claims before the command reads it (one listing of each when nothing is new).
///
/// A writer finishes an `init` that stopped between `VERSION` and the first event (only a new
/// cache can meet such a store: a cache with events was made from its log).
///
/// A cache that holds an item the log has since forgotten (`forget` on another machine, after
/// this cache indexed the item) is moved aside and rebuilt from the bucket: the catalog's rows
/// are append-only, and the bucket is the truth.
///
/// A cache whose SQLite file is damaged is moved aside and rebuilt the same way: it is only this
/// machine's copy of what the bucket holds.
fn open_remote_cache(store: &mut Store, writing: bool) -> Result<Catalog> {
    let catalog = match open_and_catch_up_remote_cache(store, writing) {
        Ok(catalog) => catalog,
        Err(Error::Catalog { path, source }) if crate::error::is_damaged_database(&source) => {
            let damaged = format!(
                "this machine's cache of {} is damaged ({}: {source})",
                store.root().escaped(),
                path.escaped()
            );
            set_aside_a_stale_cache(store, &damaged)?;
            open_and_catch_up_remote_cache(store, writing)?
        }
        Err(err) => return Err(err),
    };
    let stale = catalog.forgotten_items_held()?;
    if stale.is_empty() {
        return Ok(catalog);
    }
    drop(catalog);
    let holds = format!(
        "this machine's cache of {} holds {}, which the store's log forgets (a `forget` made on \
         another machine after this cache indexed it)",
        store.root().escaped(),
        stale.join(", ")
    );
    set_aside_a_stale_cache(store, &holds)?;
    let catalog = open_and_catch_up_remote_cache(store, writing)?;
    let still = catalog.forgotten_items_held()?;
    if !still.is_empty() {
        return Err(Error::Internal(format!(
            "the cache {} was rebuilt from the bucket and still holds {}, which the log forgets",
            store.catalog_path().escaped(),
            still.join(", ")
        )));
    }
    Ok(catalog)
}

/// [`open_remote_cache`] before the check for forgotten items.
fn open_and_catch_up_remote_cache(store: &mut Store, writing: bool) -> Result<Catalog> {
    let mut catalog = Catalog::open(&store.catalog_path())?;
    crate::ops::markers::check_cache_against_the_log(store, &catalog)?;
    if writing && catalog.last_event_seq()? == 0 {
        crate::ops::markers::start_remote_log(store)?;
    }
    crate::ops::markers::attach_log(store, &mut catalog)?;
    Ok(catalog)
}

/// Move the cache of an S3 store aside for the reason `what` (`catalog.sqlite.stale-<nanos>`,
/// with its `-wal` and `-shm`), under the catalog's exclusive lock (no other evstore process has
/// it open, so none writes to the old file), saying so.
fn set_aside_a_stale_cache(store: &Store, what: &str) -> Result<()> {
    let aside = set_aside_cache_file(&store.catalog_path(), what)?;
    crate::notice::notice(&format!(
        "{what}; it was moved aside to {} and is rebuilt from the bucket now",
        aside.escaped()
    ));
    Ok(())
}

/// Move the cache catalog at `path` aside; where it went. `what` says why, for the message of
/// a cache another process has open.
fn set_aside_cache_file(path: &Path, what: &str) -> Result<std::path::PathBuf> {
    let _lock = Catalog::lock_exclusive(path, "the command").map_err(|err| match err {
        Error::Busy(_) => Error::Busy(format!(
            "{what}: the cache must be rebuilt from the bucket, and another evstore process \
             has it open; run the command again when none does"
        )),
        other => other,
    })?;
    let stamp = crate::now_unix_nanos();
    let sibling = |suffix: &str| crate::ops::reindex::catalog_sibling(path, suffix);
    let aside = sibling(&format!(".stale-{stamp}"));
    for suffix in ["-wal", "-shm", ""] {
        let from = sibling(suffix);
        let to = sibling(&format!(".stale-{stamp}{suffix}"));
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && !suffix.is_empty() => {}
            Err(err) => return Err(Error::io(&from, "cannot move the stale cache aside", err)),
        }
    }
    crate::fsio::sync_parent(path)?;
    Ok(aside)
}

/// The error of a command that failed because this machine's cache of an S3 store is damaged
/// (SQLite found a damaged page after the cache was opened: `fsck` reading every row, an
/// `ingest` writing one): the cache is moved aside so that the next command rebuilds it, and the
/// error says so (exit 2: the store in the bucket is not what is damaged). Any other error, and
/// a damaged catalog of a local store, is returned as it is.
pub fn explain_a_damaged_cache(err: Error) -> Error {
    let Error::Catalog { path, source } = &err else {
        return err;
    };
    let folder = path.parent().unwrap_or(Path::new("."));
    let is_a_cache = folder.join("STORE").is_file() && !folder.join("VERSION").exists();
    if !crate::error::is_damaged_database(source) || !is_a_cache {
        return err;
    }
    let what = format!(
        "this machine's cache {} is damaged ({source})",
        path.escaped()
    );
    let then = match set_aside_cache_file(path, &what) {
        Ok(aside) => format!(
            "it was moved aside to {}, and the next command rebuilds it from the bucket",
            aside.escaped()
        ),
        Err(set_aside) => format!(
            "it could not be moved aside ({set_aside}): delete the folder {} to rebuild it from \
             the bucket",
            folder.escaped()
        ),
    };
    Error::Usage(format!(
        "{what}; {then}. The store in the bucket is not affected: what this command wrote there \
         before it failed stays, and the rebuilt cache lists it"
    ))
}

/// Open the store at `root` for a command that only reads it; works on a store this user
/// cannot write and on a full file system (see `Catalog::open_read_only`).
///
/// # Errors
///
/// I/O or catalog errors (with the path) opening it.
pub fn open_for_reading(root: &Path) -> Result<(Store, Catalog)> {
    let mut store = Store::open(root)?;
    if store.is_remote() {
        // The cache is this machine's, so a reader brings it up to date too; it writes nothing
        // to the bucket.
        store.check_writable()?;
        let catalog = open_remote_cache(&mut store, false)?;
        return Ok((store, catalog));
    }
    let mut catalog = Catalog::open_read_only(&store.catalog_path())?;
    if crate::ops::markers::behind_the_store(&store, &catalog)? && store.check_writable().is_ok() {
        // A user who can write the store upgrades it (once) on any command, as the catalog
        // schema is upgraded, and brings its catalog up to date with the store's log and version
        // claims. Best effort: a reader that cannot (a full disk) reads the catalog as it is,
        // and `fsck` names what it lacks.
        drop(catalog);
        let caught_up = Catalog::open_existing(&store.catalog_path())
            .and_then(|mut rw| crate::ops::markers::attach_log(&mut store, &mut rw));
        if let Err(err) = caught_up {
            crate::notice::notice(&format!(
                "the catalog could not be brought up to date with the store ({err}); reading it \
                 as it is"
            ));
        }
        catalog = Catalog::open_read_only(&store.catalog_path())?;
    }
    if store.layout() == 2 {
        // A reader that logs (`kb verify`) appends through the log like any writer.
        catalog.attach_log(crate::store::log::SharedLog::of(&store));
    }
    Ok((store, catalog))
}

/// The packet name `ingest` uses when none is given: the folder's own name (of its resolved
/// path, so `.` names the current folder).
///
/// # Errors
///
/// [`Error::Usage`] when the folder has no name, its name is not UTF-8, or it is not a valid
/// new packet name; the message says to pass `--name NAME`.
pub fn default_packet_name(dir: &Path) -> Result<String> {
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let Some(file_name) = canonical.file_name() else {
        return Err(Error::Usage(format!(
            "{} has no folder name to use as the packet name; pass --name NAME",
            dir.escaped()
        )));
    };
    let Some(name) = file_name.to_str().map(str::to_string) else {
        return Err(Error::Usage(format!(
            "cannot use the folder name {} as packet name (it is not valid UTF-8); pass --name NAME",
            Path::new(file_name).escaped()
        )));
    };
    check_new_packet_name(&name).map_err(|reason| {
        Error::Usage(format!(
            "cannot use the folder name as packet name ({reason}); pass --name NAME"
        ))
    })?;
    Ok(name)
}

/// What `ingest` of a folder archives, and into which store.
#[derive(Clone, Debug)]
pub struct IngestFolderConfig {
    /// The store folder; created (with the packet in it) if nothing is there yet.
    pub store_path: PathBuf,
    /// The packet name [default: the folder's name, see [`default_packet_name`]].
    pub name: Option<String>,
    /// A free-text note stored with this version.
    pub note: Option<String>,
    /// The packet's source date in Unix seconds; `None` means the ingest time.
    pub source_date_epoch: Option<i64>,
    /// Where to report the bytes read while hashing and storing.
    pub progress: Progress,
}

/// What `ingest` of a folder did.
#[derive(Clone, Debug)]
pub struct IngestFolderReport {
    /// The ingest itself: the packet version, new or already archived.
    pub ingest: IngestReport,
    /// True if this ingest created the store (it did not exist before).
    pub created_store: bool,
    /// The latest version of this name, which differs from the ingested one when the same tree
    /// was archived earlier and another tree since.
    pub latest_version: u64,
}

/// What [`ingest_creating_store`] did: archived the folder, or refused it because it does not
/// match its own seal (nothing stored, and no store created).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // One value per command; boxing would only add noise.
pub enum IngestFolderOutcome {
    /// The packet version, new or already archived.
    Archived(IngestFolderReport),
    /// The folder does not match its seal: the gate's report, as `verify DIR` gives it.
    Refused(SealRefusal),
}

/// Archive the packet folder `dir` into the store at `config.store_path`, creating the store if
/// nothing is there yet. Everything that can refuse is checked before anything is created: the
/// name, the store location, the folder (a symlink is refused, never followed), and that the
/// store does not lie inside the folder nor the folder inside the store.
///
/// # Errors
///
/// [`Error::Usage`] for a bad name or location, [`Error::UnsupportedInput`] for a folder that is
/// not a directory, I/O errors (with the path), and whatever [`ingest_folder`] returns. A folder
/// that does not match its own seal is not an error but [`IngestFolderOutcome::Refused`]:
/// nothing is stored, and a store this call would have created is not created.
pub fn ingest_creating_store(
    dir: &Path,
    config: &IngestFolderConfig,
) -> Result<IngestFolderOutcome> {
    // A symlink is refused, never followed (ingest opens the folder itself without following
    // it), before its target's name could become the packet's.
    crate::scan::refuse_symlink(dir)?;
    let name = chosen_packet_name(dir, config.name.as_deref())?;
    // Check everything that can refuse before anything is created: the store location, the
    // folder, and that the store does not lie inside it (a store created inside the packet
    // would change the packet) nor the folder inside the store. The folder is opened once, here,
    // and ingested through that handle.
    let store_path = &config.store_path;
    crate::store::check_store_location(store_path)?;
    let folder = PacketFolder::open(dir, store_path)?;
    let remote = crate::store::S3Url::parse(store_path)?.is_some();
    let ingest_config = IngestConfig {
        name,
        note: config.note.clone(),
        source_date_epoch: config.source_date_epoch,
        progress: config.progress.clone(),
    };
    let mut first = None;
    // An S3 store is created by `init` only (there is no folder to create it in, whole or not).
    if !remote && std::fs::symlink_metadata(store_path).is_err() {
        match ingest_into_a_new_store(store_path, &folder, &ingest_config)? {
            NewStoreIngest::Created(created) => first = Some(created),
            NewStoreIngest::Refused(refusal) => return Ok(IngestFolderOutcome::Refused(refusal)),
            // Another process created the store meanwhile; use theirs.
            NewStoreIngest::CreatedByAnother => {}
        }
    }
    let created_store = first.is_some();
    let (report, catalog) = match first {
        Some((store, report)) => {
            let catalog = Catalog::open_existing(&store.catalog_path())?;
            (report, catalog)
        }
        None => {
            let (store, mut catalog) = open_for_writing(store_path)?;
            match ingest_folder(&store, &mut catalog, &folder, &ingest_config)? {
                IngestOutcome::Archived(report) => (report, catalog),
                IngestOutcome::Refused(refusal) => {
                    return Ok(IngestFolderOutcome::Refused(refusal))
                }
            }
        }
    };
    let latest_version = catalog
        .resolve(&PacketRef::Name {
            name: report.packet.record.name.clone(),
            also_prefix: false,
        })?
        .record
        .version;
    Ok(IngestFolderOutcome::Archived(IngestFolderReport {
        ingest: report,
        created_store,
        latest_version,
    }))
}

/// The packet name of an ingest of `dir`: the one given, checked as a new packet name, else the
/// folder's own name ([`default_packet_name`]).
fn chosen_packet_name(dir: &Path, given: Option<&str>) -> Result<String> {
    match given {
        Some(name) => {
            check_new_packet_name(name).map_err(Error::Usage)?;
            Ok(name.to_string())
        }
        None => default_packet_name(dir),
    }
}

/// What a first ingest, into a store created for it, came to.
#[allow(clippy::large_enum_variant)] // One value per command; boxing would only add noise.
enum NewStoreIngest {
    /// The store was created with the packet in it.
    Created((Store, IngestReport)),
    /// The folder does not match its seal: no store was created.
    Refused(SealRefusal),
    /// Another process created the store meanwhile: nothing was created or ingested here.
    CreatedByAnother,
}

/// Ingest `folder` into a new store at `store_path`, built in a temp folder with the packet in
/// it: the store appears only if the ingest succeeded, so a refused first ingest (drift, a
/// symlink, an empty folder...) leaves no store behind.
fn ingest_into_a_new_store(
    store_path: &Path,
    folder: &PacketFolder,
    ingest_config: &IngestConfig,
) -> Result<NewStoreIngest> {
    let mut refused = None;
    let created = Store::create_filled(
        store_path,
        |staged| prepare_new_catalog(store_path, staged),
        |store| {
            let mut catalog = Catalog::open_existing(&store.catalog_path())?;
            catalog.attach_log(crate::store::log::SharedLog::of(store));
            match ingest_folder(store, &mut catalog, folder, ingest_config)? {
                IngestOutcome::Archived(report) => Ok(report),
                // An error, so that no store is created.
                IngestOutcome::Refused(refusal) => {
                    let err = refusal.to_error();
                    refused = Some(refusal);
                    Err(err)
                }
            }
        },
    );
    if let Some(refusal) = refused {
        return Ok(NewStoreIngest::Refused(refusal));
    }
    Ok(match created? {
        Some(created) => NewStoreIngest::Created(created),
        None => NewStoreIngest::CreatedByAnother,
    })
}
