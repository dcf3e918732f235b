//! The commit markers a store made before markers existed gets: listed from its catalog.
//!
//! `store::refs` keeps the markers and does not know the catalog; this op lists, for
//! [`crate::store::refs::Refs::ensure`], one marker per packet the catalog holds, per committed
//! packet it no longer holds (lost or forgotten: each keeps its version), per rerun and per
//! `forget` event.

use crate::catalog::Catalog;
use crate::digest::Blake3Digest;
use crate::error::Result;
use crate::store::refs::{Marker, Refs};

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
