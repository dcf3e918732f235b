//! `forget`: acknowledge a committed packet or rerun attestation as lost, in the event log and
//! in the store's commit markers (`refs/forgotten/`).
//!
//! **Architecture Invariant:** only an item that is lost now (committed, and no longer in the
//! catalog) can be forgotten, and it is chosen inside the catalog's write transaction, so two
//! concurrent `forget`s of one item cannot both succeed. A lost packet takes its lost reruns with
//! it.

use crate::catalog::{Catalog, EventRow, LostItem, NewEvent};
use crate::error::{Error, Result};
use crate::format::event::ForgetDetail;
use crate::store::refs::Refs;
use crate::store::Store;

/// Check a `forget` reason before anything is opened: it must say something.
///
/// # Errors
///
/// [`Error::Usage`] for a reason that is empty or only white space.
pub fn check_reason(reason: &str) -> Result<()> {
    if reason.trim().is_empty() {
        return Err(Error::Usage(
            "--reason must say why the item is lost; it is recorded in the event log".into(),
        ));
    }
    Ok(())
}

/// Forget the lost item `item` (`NAME@N`, or 8+ hex digits of its record or attestation id),
/// recording `reason` in each `forget` event. Returns every item forgotten with its event.
///
/// # Errors
///
/// [`Error::Usage`] for an empty reason, an item that names nothing lost (the message lists what
/// is lost now) or more than one lost item; catalog and store errors.
pub fn forget(
    store: &Store,
    catalog: &mut Catalog,
    item: &str,
    reason: &str,
) -> Result<Vec<(LostItem, EventRow)>> {
    check_reason(reason)?;
    let refs = Refs::for_writer(store)?;
    crate::ops::markers::ensure_markers(&refs, catalog)?;
    crate::ops::markers::ensure_log_attached(store, catalog)?;
    let markers = refs.read_all()?;
    let forgotten = catalog.forget(&markers, |lost| {
        let matches: Vec<&LostItem> = lost.iter().filter(|l| l.matches(item)).collect();
        let found = match matches.as_slice() {
            [one] => (*one).clone(),
            [] => {
                let known = if lost.is_empty() {
                    "nothing is lost: the catalog holds every committed packet and attestation"
                        .into()
                } else {
                    format!(
                        "lost now: {}",
                        lost.iter()
                            .map(|l| format!("{} {} ({})", l.kind, l.label, l.id))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                return Err(Error::Usage(format!(
                    "{item:?} names no lost packet or attestation ({known}); only a committed \
                     item the catalog no longer holds can be forgotten"
                )));
            }
            many => {
                return Err(Error::Usage(format!(
                    "{item:?} matches {} lost items ({}); give more of the id",
                    many.len(),
                    many.iter()
                        .map(|l| l.id.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        };
        // A lost packet takes its lost reruns with it: they cannot be indexed without it.
        let mut chosen = vec![found.clone()];
        if found.kind == "packet" {
            chosen.extend(
                lost.iter()
                    .filter(|l| l.kind == "attestation" && l.label == found.label)
                    .cloned(),
            );
        }
        Ok(chosen
            .into_iter()
            .map(|l| {
                let event = NewEvent::forget(
                    &l.label,
                    &ForgetDetail {
                        item_kind: l.kind,
                        id: &l.id,
                        committed_by_event: l.committed_by_event,
                        reason,
                    },
                );
                (l, event)
            })
            .collect())
    })?;
    for (lost, event) in &forgotten {
        if let Some(id) = crate::digest::Blake3Digest::parse_hex(&lost.id) {
            refs.mark_forgotten(&id, &event.detail)?;
        }
    }
    Ok(forgotten)
}
