//! The centre's replicas of the station-day ledgers (Automerge documents): the Automerge sync
//! protocol with a station, and the centre's own statuses written into them.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tasjil_sync::ledger::{
    day_of_ms, doc_name, Ledger, LedgerError, PeerState, Status, StatusEntry,
};
use tasjil_sync::record::{Envelope, Signed};

use super::{lock, CentreError, CentreStore, Ingested};

impl CentreStore {
    /// Write the outcome of an ingest into the station-day ledger as the centre's status, so it
    /// reaches the van with the next ledger sync (or USB receipt). Envelopes that do not even parse
    /// have no day: they are reported through `statuses` only.
    pub(super) fn note_in_ledger(
        &self,
        conn: &Connection,
        ledgers: &mut BTreeMap<String, (String, Ledger)>,
        envelope_bytes: &[u8],
        outcome: &Ingested,
        now_ms: i64,
    ) -> Result<(), CentreError> {
        let Some(note) = LedgerNote::of(envelope_bytes, outcome, now_ms) else {
            return Ok(());
        };
        if !ledgers.contains_key(&note.name) {
            let ledger = self.load_ledger(conn, &note.station, &note.day)?;
            ledgers.insert(note.name.clone(), (note.station.clone(), ledger));
        }
        let entry = self.verdict(
            note.entry.clone(),
            &note.station,
            &note.id,
            &note.envelope_hash,
        );
        note.apply(ledgers, &entry)
    }

    /// The centre's replica of a station-day ledger, or a new one.
    pub(super) fn load_ledger(
        &self,
        conn: &Connection,
        station: &str,
        day: &str,
    ) -> Result<Ledger, CentreError> {
        let name = doc_name(station, day);
        let stored: Option<Vec<u8>> = conn
            .query_row("SELECT doc FROM ledgers WHERE name = ?1", [&name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.sql(e))?;
        match stored {
            Some(bytes) => {
                Ledger::load(station, day, &self.actor, &bytes).map_err(|e| CentreError::Ledger {
                    name,
                    reason: e.to_string(),
                })
            }
            None => Ok(Ledger::new(station, day, &self.actor)),
        }
    }

    /// Load (or start) the centre's replica of a station-day ledger, change it, save it.
    pub(super) fn with_ledger(
        &self,
        conn: &Connection,
        station: &str,
        day: &str,
        change: impl FnOnce(&mut Ledger) -> Result<(), LedgerError>,
    ) -> Result<(), CentreError> {
        let name = doc_name(station, day);
        let mut ledger = self.load_ledger(conn, station, day)?;
        change(&mut ledger).map_err(|e| CentreError::Ledger {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        save_ledger(conn, &name, station, &mut ledger).map_err(|e| self.sql(e))
    }

    /// One round of the Automerge sync protocol on `station`'s ledger `name`: apply the station's
    /// message (if any) and answer with the centre's (if any). A station may sync only its own
    /// ledgers.
    pub fn ledger_sync(
        &self,
        station: &str,
        name: &str,
        message: Option<&[u8]>,
        peer: &mut PeerState,
    ) -> Result<Option<Vec<u8>>, CentreError> {
        let Some((owner, day)) = tasjil_sync::ledger::split_name(name) else {
            return Err(CentreError::Ledger {
                name: name.into(),
                reason: "not a ledger name".into(),
            });
        };
        if owner != station {
            return Err(CentreError::Ledger {
                name: name.into(),
                reason: format!("belongs to station {owner}, not {station}"),
            });
        }
        let mut conn = lock(&self.conn);
        // One write transaction from load to save: an import in another process merging into the
        // same ledger meanwhile must not be overwritten by this save.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        let mut answer = None;
        self.with_ledger(&tx, station, day, |ledger| {
            if let Some(m) = message {
                ledger.receive_sync_message(peer, m)?;
            }
            answer = ledger.generate_sync_message(peer);
            Ok(())
        })?;
        tx.commit().map_err(|e| self.sql(e))?;
        Ok(answer)
    }

    /// The centre's replica of ledger `name`, if it has one.
    pub fn ledger(&self, name: &str) -> Result<Option<Ledger>, CentreError> {
        let Some((station, day)) = tasjil_sync::ledger::split_name(name) else {
            return Ok(None);
        };
        let conn = lock(&self.conn);
        let stored: Option<Vec<u8>> = conn
            .query_row("SELECT doc FROM ledgers WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.sql(e))?;
        stored
            .map(|b| Ledger::load(station, day, &self.actor, &b))
            .transpose()
            .map_err(|e| CentreError::Ledger {
                name: name.into(),
                reason: e.to_string(),
            })
    }
}

pub(super) fn save_ledger(
    conn: &Connection,
    name: &str,
    station: &str,
    ledger: &mut Ledger,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO ledgers (name, station, doc) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET doc = excluded.doc",
        params![name, station, ledger.save()],
    )
    .map(drop)
}

/// The centre's status for one ingest outcome, as it goes into the station-day ledger (both
/// backends: the embedded store and the cluster).
#[derive(Debug)]
pub(crate) struct LedgerNote {
    pub name: String,
    pub station: String,
    pub day: String,
    pub id: String,
    pub envelope_hash: String,
    /// Unsigned: the caller signs it with the centre's key when it has one.
    pub entry: StatusEntry,
}

impl LedgerNote {
    /// `None` for an outcome that writes nothing (already stored, or an envelope without an id
    /// or that does not parse: those are reported through `statuses` only).
    pub(crate) fn of(envelope_bytes: &[u8], outcome: &Ingested, now_ms: i64) -> Option<LedgerNote> {
        let (id, status, reason) = match outcome {
            Ingested::Stored { id, .. } => (id, Status::Verified, None),
            Ingested::Held { id, reason, .. } => (id, Status::Rejected, Some(reason.clone())),
            Ingested::Rejected {
                id: Some(id),
                reason,
                ..
            } => (id, Status::Rejected, Some(reason.clone())),
            _ => return None,
        };
        let env = Envelope::<Signed>::from_bytes(envelope_bytes).ok()?;
        let body = env.body();
        if body.id != *id {
            return None;
        }
        let day = day_of_ms(body.captured.finished_ms);
        let reason = reason.map(|r| r.chars().take(tasjil_sync::ledger::MAX_REASON).collect());
        Some(LedgerNote {
            name: doc_name(&body.station, &day),
            station: body.station.clone(),
            day,
            id: id.clone(),
            envelope_hash: tasjil_sync::sha256_hex(envelope_bytes),
            entry: StatusEntry {
                status,
                reason,
                by: "centre".into(),
                time_ms: now_ms,
                sig: None,
            },
        })
    }

    /// Add `entry` (this note's, signed or not) to its ledger among `ledgers`, once loaded.
    pub(crate) fn apply(
        self,
        ledgers: &mut BTreeMap<String, (String, Ledger)>,
        entry: &StatusEntry,
    ) -> Result<(), CentreError> {
        if let Some((_, ledger)) = ledgers.get_mut(&self.name) {
            ledger
                .add_status(&self.id, entry)
                .map_err(|e| CentreError::Ledger {
                    name: self.name,
                    reason: e.to_string(),
                })?;
        }
        Ok(())
    }
}
