//! USB bundles the centre imported: one transaction per bundle, replays recognised.

use std::collections::BTreeMap;

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use tasjil_sync::ledger::{Ledger, LedgerError};

use super::ledgers::save_ledger;
use super::{lock, log_outcomes, CentreError, CentreStore, Ingested};

/// A USB bundle the centre imported (the `bundles` table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleImport {
    pub bundle_id: String,
    pub station: String,
    pub manifest_sha256: String,
    pub imported_ms: i64,
    pub records: u64,
    pub stored: u64,
    pub rejected: u64,
}

impl CentreStore {
    /// When bundle `bundle_id` was imported before, and what it brought then.
    pub fn bundle_imported(&self, bundle_id: &str) -> Result<Option<BundleImport>, CentreError> {
        let conn = lock(&self.conn);
        conn.query_row(
            "SELECT bundle_id, station, manifest_sha256, imported_ms, records, stored, rejected
             FROM bundles WHERE bundle_id = ?1",
            [bundle_id],
            |r| {
                Ok(BundleImport {
                    bundle_id: r.get(0)?,
                    station: r.get(1)?,
                    manifest_sha256: r.get(2)?,
                    imported_ms: r.get(3)?,
                    records: r.get::<_, i64>(4)? as u64,
                    stored: r.get::<_, i64>(5)? as u64,
                    rejected: r.get::<_, i64>(6)? as u64,
                })
            },
        )
        .optional()
        .map_err(|e| self.sql(e))
    }

    /// Ingest a verified USB bundle in one transaction: merge its ledgers into the centre's
    /// replicas, then verify and store its envelopes exactly as network sync does, and remember
    /// the bundle. Its payloads must already be in the blob store ([`Self::put_blob_chunk`]).
    /// A bundle already imported changes nothing and returns `Ok(None)`.
    pub fn import_bundle(
        &self,
        bundle: &BundleImport,
        ledger_docs: &[(String, Vec<u8>)],
        links: &[Vec<u8>],
        envelopes: &[&[u8]],
        now_ms: i64,
    ) -> Result<Option<Vec<Ingested>>, CentreError> {
        let mut conn = lock(&self.conn);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        let seen: Option<String> = tx
            .query_row(
                "SELECT bundle_id FROM bundles WHERE bundle_id = ?1 OR manifest_sha256 = ?2",
                params![bundle.bundle_id, bundle.manifest_sha256],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        if seen.is_some() {
            return Ok(None);
        }
        let mut ledgers = BTreeMap::new();
        for (name, doc) in ledger_docs {
            let Some((station, day)) = tasjil_sync::ledger::split_name(name) else {
                return Err(CentreError::Ledger {
                    name: name.clone(),
                    reason: "not a ledger name".into(),
                });
            };
            let ledger_error = |e: LedgerError| CentreError::Ledger {
                name: name.clone(),
                reason: e.to_string(),
            };
            let mut theirs = Ledger::load(station, day, &self.actor, doc).map_err(ledger_error)?;
            let mut ours = self.load_ledger(&tx, station, day)?;
            ours.merge(&mut theirs).map_err(ledger_error)?;
            ledgers.insert(name.clone(), (station.to_string(), ours));
        }
        // Restore links first: the records after a restore follow them.
        for link in links {
            if let super::LinkStored::Rejected { seq, reason } =
                self.store_link_in(&tx, &bundle.station, link, now_ms)?
            {
                tracing::warn!(station = %bundle.station, ?seq, %reason, "restore link refused");
            }
        }
        let outcomes = self.ingest_in(&tx, &mut ledgers, envelopes, now_ms)?;
        for (name, (station, mut ledger)) in ledgers {
            save_ledger(&tx, &name, &station, &mut ledger).map_err(|e| self.sql(e))?;
        }
        let stored = outcomes
            .iter()
            .filter(|o| matches!(o, Ingested::Stored { .. }))
            .count() as i64;
        let rejected = outcomes
            .iter()
            .filter(|o| matches!(o, Ingested::Rejected { .. } | Ingested::Held { .. }))
            .count() as i64;
        tx.execute(
            "INSERT INTO bundles (bundle_id, station, manifest_sha256, imported_ms, records, stored, rejected)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                bundle.bundle_id,
                bundle.station,
                bundle.manifest_sha256,
                now_ms,
                envelopes.len() as i64,
                stored,
                rejected
            ],
        )
        .map_err(|e| self.sql(e))?;
        super::console::record_batch(
            &tx,
            "usb",
            &bundle.station,
            Some(&bundle.bundle_id),
            &outcomes,
            now_ms,
        )
        .map_err(|e| self.sql(e))?;
        tx.commit().map_err(|e| self.sql(e))?;
        log_outcomes(&outcomes);
        Ok(Some(outcomes))
    }
}
