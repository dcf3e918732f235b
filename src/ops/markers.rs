//! The commit markers a store made before markers existed gets: listed from its catalog.
//!
//! `store::refs` keeps the markers and does not know the catalog; this op lists, for
//! [`crate::store::refs::Refs::ensure`], one marker per packet the catalog holds, per committed
//! packet it no longer holds (lost or forgotten: each keeps its version), per rerun and per
//! `forget` event. And the event log a store made before `log/` gets: written from its catalog
//! ([`attach_log`]).

use crate::catalog::{Catalog, EventRow};
use crate::digest::Blake3Digest;
use crate::error::Result;
use crate::format::event::{log_key, LOG_PREFIX};
use crate::store::log::{EventLog, SharedLog};
use crate::store::refs::{Marker, Refs};
use crate::store::Store;
use crate::text::EscapePath;

/// Give the store its `refs/` key space, listed from `catalog`, if it has none yet.
///
/// # Errors
///
/// The catalog cannot be read, or a marker cannot be written (two records claim one name and
/// version: an error naming the marker).
pub fn ensure_markers(refs: &Refs<'_>, catalog: &Catalog) -> Result<()> {
    refs.ensure(|| markers_from_catalog(catalog))
}

/// One marker per packet, committed packet, run and `forget` event of `catalog`.
///
/// # Errors
///
/// The catalog cannot be read.
pub fn markers_from_catalog(catalog: &Catalog) -> Result<Vec<Marker>> {
    let mut markers = Vec::new();
    for row in catalog.packets()? {
        markers.push(Marker::Packet {
            name: row.record.name.clone(),
            version: row.record.version,
            record: row.record_id,
        });
    }
    // Committed packets the catalog no longer holds (lost, or forgotten) keep their version.
    for (id, (label, _)) in catalog.commitments()?.records {
        if let Some((name, version)) = label
            .rsplit_once('@')
            .and_then(|(n, v)| Some((n.to_string(), v.parse::<u64>().ok()?)))
        {
            if crate::packet_ref::check_packet_name(&name).is_ok() && version > 0 {
                markers.push(Marker::Packet {
                    name,
                    version,
                    record: id,
                });
            }
        }
    }
    for run in catalog.runs(None)? {
        if let Some(id) = Blake3Digest::parse_hex(&run.attestation) {
            markers.push(Marker::Run {
                id,
                expected_sha256: run.expected_sha256.clone(),
            });
        }
    }
    for event in catalog.events()?.iter().filter(|e| e.kind == "forget") {
        let detail: serde_json::Value =
            serde_json::from_str(&event.detail).unwrap_or(serde_json::Value::Null);
        if let Some(id) = detail
            .get("id")
            .and_then(|v| v.as_str())
            .and_then(Blake3Digest::parse_hex)
        {
            markers.push(Marker::Forgotten {
                id,
                detail: event.detail.clone(),
            });
        }
    }
    Ok(markers)
}

/// Attach the store's event log (`log/`) to `catalog`, so that every event it appends is
/// created in `log/` first; a store without `log/` gets it first, written whole from the
/// catalog's events, and a layout-1 store's `VERSION` then moves to layout 2 (once, with a
/// notice: older evstore binaries refuse the store after).
///
/// # Errors
///
/// The catalog cannot be read, or `log/` or `VERSION` cannot be written.
pub fn attach_log(store: &mut Store, catalog: &mut Catalog) -> Result<()> {
    let created = EventLog::of(store).ensure(|| {
        Ok(catalog
            .events()?
            .iter()
            .map(EventRow::to_log_entry)
            .collect())
    })?;
    let upgraded = store.layout() == 1;
    if upgraded {
        store.mark_layout_2()?;
    }
    if created || upgraded {
        crate::notice::notice(&format!(
            "upgraded the store at {} to layout 2 (VERSION \"evstore store 2\"): its event log \
             is now also kept as {}/log/ (one key per event), so the store can be rebuilt from \
             its folder alone; evstore {} and later read it, older evstore binaries refuse it",
            store.root().escaped(),
            store.root().escaped(),
            crate::TOOL_VERSION
        ));
    }
    catalog.attach_log(SharedLog::of(store));
    Ok(())
}

/// The `log/` key space of a store being created in `staged` (whose catalog holds its first
/// events), created whole before the store becomes visible.
///
/// # Errors
///
/// The catalog cannot be read, or `log/` cannot be created.
pub fn create_log_in_staged(staged: &std::path::Path, catalog: &Catalog) -> Result<()> {
    let backend = crate::store::LocalBackend::new(staged);
    let keys: Vec<(String, Vec<u8>)> = catalog
        .events()?
        .iter()
        .map(|row| (log_key(row.seq), row.to_log_entry().encode()))
        .collect();
    crate::store::NamedKeys::create_key_space(&backend, LOG_PREFIX, &keys)?;
    Ok(())
}
