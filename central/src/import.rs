//! `tasjil-central import`: a USB bundle in, a signed receipt out.
//!
//! Everything is verified before anything is ingested ([`tasjil_sync::bundle::verify_bundle`]); then
//! the payloads go into the blob store and the envelopes and ledgers through the same checks and
//! the same transaction shape as network sync ([`CentreStore::import_bundle`]). Importing a bundle
//! again, or a bundle whose records already came by network, changes nothing: the receipt is
//! written again from what the centre holds.

use std::collections::BTreeSet;
use std::path::Path;

use base64::Engine;
use ed25519_dalek::SigningKey;
use serde::Serialize;

use crate::store::{BlobState, BundleImport, Ingested, Problem};
use crate::{CentreError, CentreStore};
use tasjil_sync::bundle::{
    verify_bundle, BundleError, BundleReader, Receipt, ReceiptBody, ReceiptLedger, ReceiptRecord,
    RECEIPT_FORMAT,
};
use tasjil_sync::ledger::{day_of_ms, doc_name};
use tasjil_sync::record::{Envelope, Signed};

/// Why an import did not happen. Nothing was stored in either case.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("bundle refused: {0}")]
    Refused(#[from] BundleError),
    #[error("bundle refused: it comes from station {0}, which is not registered at the centre (tasjil-central station add --id {0} --key station.pub)")]
    UnknownStation(String),
    #[error("bundle refused: its countersignature is not allowed by the centre's roster: {0}")]
    Countersigner(String),
    #[error(transparent)]
    Centre(#[from] CentreError),
}

impl ImportError {
    /// The name of the check that refused the bundle (`None`: the centre itself failed).
    pub fn code(&self) -> Option<&'static str> {
        match self {
            ImportError::Refused(e) => Some(e.code()),
            ImportError::UnknownStation(_) => Some("unknown_station"),
            ImportError::Countersigner(_) => Some("countersigner"),
            ImportError::Centre(_) => None,
        }
    }
}

/// What an import did, for the command's output.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub bundle_id: String,
    pub station: String,
    pub supervisor: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub records: u64,
    /// Newly stored by this import.
    pub stored: u64,
    /// Already at the centre (earlier import or network sync).
    pub already: u64,
    pub verified: u64,
    pub rejected: Vec<Problem>,
    /// When this very bundle was imported before (a replay), in Unix ms.
    pub replay_of_ms: Option<i64>,
    pub payload_bytes: u64,
    #[serde(skip)]
    pub receipt: Option<Receipt>,
}

/// Which step an import is at, for a progress bar: `(step, done, total)` in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Verify,
    Copy,
}

/// Verify `path`, ingest it, and make the receipt (signed with `signing`).
pub fn import(
    store: &CentreStore,
    signing: &SigningKey,
    path: &Path,
    now_ms: i64,
    progress: &mut dyn FnMut(Step, u64, u64),
) -> Result<ImportReport, ImportError> {
    let mut reader = BundleReader::open(path)?;
    let manifest = reader.manifest().clone();
    let total = manifest.parts_len();
    let Some(key) = store.station_key(&manifest.station)? else {
        return Err(ImportError::UnknownStation(manifest.station.clone()));
    };
    let verified = verify_bundle(&mut reader, &key, &mut |done| {
        progress(Step::Verify, done, total)
    })?;
    // The supervisor who countersigned must be one the centre's roster allows on this station
    // when the bundle was made. A training station's simulated badges may be unlisted, but only
    // where the roster has no part: once its records name a roster, the roster lists staff for
    // it, or the badge is one the roster knows, the roster decides there too.
    let governed = if store.is_training(&manifest.station)? {
        let named_roster = verified
            .envelopes
            .iter()
            .filter_map(|b| Envelope::<Signed>::from_bytes(b).ok()?.body().roster)
            .max();
        store.roster_governs_training(
            &manifest.station,
            named_roster,
            &manifest.supervisor.id,
            &manifest.supervisor.key,
        )?
    } else {
        Some(String::new())
    };
    if let Some(because) = governed {
        if let Err(mut why) = store.roster_allows(
            None,
            &manifest.supervisor.id,
            &manifest.supervisor.key,
            &manifest.station,
            tasjil_sync::roster::Role::Supervisor,
            manifest.created_ms,
        )? {
            if !because.is_empty() {
                why = format!("{why} (training station {}: {because})", manifest.station);
            }
            return Err(ImportError::Countersigner(why));
        }
    }
    let earlier = store.bundle_imported(&manifest.bundle_id)?;

    let mut payload_bytes = 0u64;
    if earlier.is_none() {
        let payload_total: u64 = verified.payloads.iter().map(|(_, _, len)| len).sum();
        let mut written = Vec::new();
        for (index, sha, len) in &verified.payloads {
            payload_bytes += len;
            if matches!(store.blob_state(sha)?, BlobState::Complete { .. }) {
                continue;
            }
            let bytes = reader.read_part(*index)?;
            store.put_blob_whole(sha, &bytes)?;
            written.push(sha.as_str());
            progress(Step::Copy, payload_bytes, payload_total);
        }
        store.sync_blobs(written)?;
    }

    let envelopes: Vec<&[u8]> = verified.envelopes.iter().map(Vec::as_slice).collect();
    let record = BundleImport {
        bundle_id: manifest.bundle_id.clone(),
        station: manifest.station.clone(),
        manifest_sha256: verified.manifest_sha256.clone(),
        imported_ms: now_ms,
        records: envelopes.len() as u64,
        stored: 0,
        rejected: 0,
    };
    let outcomes = store.import_bundle(
        &record,
        &verified.ledgers,
        &verified.links,
        &envelopes,
        now_ms,
    )?;
    let replay_of_ms = match (&outcomes, &earlier) {
        (None, Some(e)) => Some(e.imported_ms),
        // Same manifest under another id cannot happen (the id is inside the manifest); a
        // concurrent import of the same bundle can: it is a replay as well.
        (None, None) => store
            .bundle_imported(&manifest.bundle_id)?
            .map(|e| e.imported_ms),
        _ => None,
    };
    let (stored, already) = outcomes.as_ref().map_or((0, envelopes.len() as u64), |o| {
        (
            o.iter()
                .filter(|x| matches!(x, Ingested::Stored { .. }))
                .count() as u64,
            o.iter()
                .filter(|x| matches!(x, Ingested::AlreadyHave { .. }))
                .count() as u64,
        )
    });

    let receipt = receipt_for(store, signing, &verified, now_ms)?;
    let rejected: Vec<Problem> = receipt
        .receipt
        .records
        .iter()
        .filter(|r| r.status != "verified")
        .map(|r| Problem {
            id: r.id.clone(),
            reason: r.reason.clone().unwrap_or_default(),
        })
        .collect();
    Ok(ImportReport {
        bundle_id: manifest.bundle_id.clone(),
        station: manifest.station.clone(),
        supervisor: manifest.supervisor.id.clone(),
        first_seq: manifest.first_seq,
        last_seq: manifest.last_seq,
        records: envelopes.len() as u64,
        stored,
        already,
        verified: receipt.receipt.records.len() as u64 - rejected.len() as u64,
        rejected,
        replay_of_ms,
        payload_bytes,
        receipt: Some(receipt),
    })
}

/// The centre's signed answer for a bundle: each record's status as the centre holds it now, and
/// the centre's replicas of the ledgers involved.
pub fn receipt_for(
    store: &CentreStore,
    signing: &SigningKey,
    verified: &tasjil_sync::bundle::VerifiedBundle,
    now_ms: i64,
) -> Result<Receipt, ImportError> {
    let manifest = &verified.header.manifest;
    let mut ids = Vec::new();
    let mut rows = Vec::new();
    let mut names: BTreeSet<String> = verified.ledgers.iter().map(|(n, _)| n.clone()).collect();
    for bytes in &verified.envelopes {
        let env = Envelope::<Signed>::from_bytes(bytes)
            .map_err(|e| ImportError::Refused(BundleError::Contents(e.to_string())))?;
        let body = env.body();
        names.insert(doc_name(
            &body.station,
            &day_of_ms(body.captured.finished_ms),
        ));
        ids.push(body.id.clone());
        rows.push((body.id.clone(), body.seq, tasjil_sync::sha256_hex(bytes)));
    }
    // Issuance statuses of the last 180 days travel too, whichever day their record is of.
    names.extend(store.issuance_ledgers(&manifest.station, now_ms - 180 * 86_400_000)?);
    let statuses = store.statuses(&manifest.station, &ids)?;
    let records = rows
        .into_iter()
        .zip(statuses)
        .map(|((id, seq, envelope_sha256), s)| {
            let verified = s.status == "verified";
            ReceiptRecord {
                id,
                seq,
                envelope_sha256,
                status: if verified { "verified" } else { "rejected" }.into(),
                reason: if verified {
                    None
                } else {
                    Some(
                        s.reason
                            .unwrap_or_else(|| "the centre did not store this record".into()),
                    )
                },
            }
        })
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut ledgers = Vec::new();
    for name in names {
        if let Some(mut ledger) = store.ledger(&name)? {
            ledgers.push(ReceiptLedger {
                name,
                doc: b64.encode(ledger.save()),
            });
        }
    }
    let body = ReceiptBody {
        format: RECEIPT_FORMAT.into(),
        bundle_id: manifest.bundle_id.clone(),
        bundle_sha256: verified.manifest_sha256.clone(),
        station: manifest.station.clone(),
        issued_ms: now_ms,
        centre_key: hex::encode(signing.verifying_key().as_bytes()),
        records,
        ledgers,
        roster: store
            .roster_for_station(None, now_ms)?
            .map(|r| String::from_utf8(r.to_bytes()).unwrap_or_default()),
        key_rotations: store
            .rotations_after(0)?
            .into_iter()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect(),
    };
    Ok(Receipt::sign(body, signing)?)
}
