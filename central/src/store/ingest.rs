//! Ingest: the store's side of [`super::decide`] — gather the facts inside one transaction, apply
//! the verdict, record refusals for the station — and the answers a station asks for (its chain
//! head, the status of its records).

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tasjil_sync::ledger::Ledger;
use tasjil_sync::record::GENESIS;

use super::decide::{self, ChainFacts, ChainVerdict, Neighbour};
use super::ledgers::save_ledger;
use super::registry::station_key_in;
use super::{lock, CentreError, CentreStore, Ingested, RecordStatus};

impl CentreStore {
    /// Verify and store one envelope (canonical bytes as signed). A refusal is `Ok(Rejected)`,
    /// recorded for the station; `Err` means the centre itself failed (disk, database) and the
    /// envelope may be sent again.
    pub fn ingest(&self, envelope_bytes: &[u8], now_ms: i64) -> Result<Ingested, CentreError> {
        let mut outcomes = self.ingest_batch(&[envelope_bytes], now_ms)?;
        outcomes
            .pop()
            .ok_or_else(|| CentreError::Migration("empty ingest batch".into()))
    }

    /// [`Self::ingest`] for several envelopes in order, in one transaction (one fsync, one ledger
    /// load and save per station-day): what the sync endpoint uses for each batch. An `Err` rolls
    /// the whole batch back; sending it again is harmless.
    #[tracing::instrument(skip_all, err, fields(n = envelopes.len()))]
    pub fn ingest_batch(
        &self,
        envelopes: &[&[u8]],
        now_ms: i64,
    ) -> Result<Vec<Ingested>, CentreError> {
        let mut conn = lock(&self.conn);
        // IMMEDIATE: the chain head read below must still be the head when the envelope commits.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        let mut ledgers = BTreeMap::new();
        let outcomes = self.ingest_in(&tx, &mut ledgers, envelopes, now_ms)?;
        for (name, (station, mut ledger)) in ledgers {
            save_ledger(&tx, &name, &station, &mut ledger).map_err(|e| self.sql(e))?;
        }
        if let Some(station) = batch_station(&outcomes, envelopes) {
            super::console::record_batch(&tx, "sync", &station, None, &outcomes, now_ms)
                .map_err(|e| self.sql(e))?;
        }
        tx.commit().map_err(|e| self.sql(e))?;
        log_outcomes(&outcomes);
        Ok(outcomes)
    }

    /// The body of [`Self::ingest_batch`] inside the caller's transaction; ledgers touched are
    /// left in `ledgers` for the caller to save.
    pub(super) fn ingest_in(
        &self,
        tx: &Connection,
        ledgers: &mut BTreeMap<String, (String, Ledger)>,
        envelopes: &[&[u8]],
        now_ms: i64,
    ) -> Result<Vec<Ingested>, CentreError> {
        let mut outcomes = Vec::with_capacity(envelopes.len());
        for envelope_bytes in envelopes {
            let withdrawn = self.withdrawn_in(tx, ledgers, envelope_bytes)?;
            let outcome = self.decide(tx, envelope_bytes, withdrawn.as_deref(), now_ms)?;
            self.note_in_ledger(tx, ledgers, envelope_bytes, &outcome, now_ms)?;
            if let Some((id, station, reason)) = outcome.refusal() {
                tx.execute(
                    "INSERT INTO rejections (id, station, reason, at_ms) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (station, id, reason) DO UPDATE SET at_ms = excluded.at_ms",
                    params![id, station, reason, now_ms],
                )
                .map_err(|e| self.sql(e))?;
            }
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// The reason the station's supervisor gave for withdrawing (rejecting at the station) the
    /// record `envelope_bytes` names, if its day ledger — as merged from the bundle, or the
    /// centre's replica after a ledger sync — says so.
    fn withdrawn_in(
        &self,
        conn: &Connection,
        ledgers: &mut BTreeMap<String, (String, Ledger)>,
        envelope_bytes: &[u8],
    ) -> Result<Option<String>, CentreError> {
        let Ok(env) = tasjil_sync::record::Envelope::<tasjil_sync::record::Signed>::from_bytes(
            envelope_bytes,
        ) else {
            return Ok(None);
        };
        let body = env.body();
        let day = tasjil_sync::ledger::day_of_ms(body.captured.finished_ms);
        let name = tasjil_sync::ledger::doc_name(&body.station, &day);
        if !ledgers.contains_key(&name) {
            let ledger = self.load_ledger(conn, &body.station, &day)?;
            ledgers.insert(name.clone(), (body.station.clone(), ledger));
        }
        Ok(ledgers.get(&name).and_then(|(_, l)| {
            l.station_decision(&body.id)
                .filter(|d| d.status == tasjil_sync::ledger::Status::Withdrawn)
                .map(|d| format!("{} ({})", d.reason.unwrap_or_default(), d.by))
        }))
    }

    /// Every check of [`Self::ingest`] ([`super::decide`]), and the insert when all pass.
    /// `withdrawn`: the station's reason when its supervisor rejected the record there (it then
    /// comes without its payload and is stored, refused, to keep the chain whole).
    pub(super) fn decide(
        &self,
        conn: &Connection,
        bytes: &[u8],
        withdrawn: Option<&str>,
        now_ms: i64,
    ) -> Result<Ingested, CentreError> {
        let candidate = match decide::parse(bytes) {
            Ok(c) => c,
            Err(refused) => return Ok(refused),
        };
        let body = candidate.env.body();
        let seq = i64::try_from(body.seq).unwrap_or(i64::MAX);
        let facts = ChainFacts {
            key: station_key_in(conn, &self.db_path, &body.station)?,
            neighbours: neighbours_in(conn, &body.id, &body.station, seq)
                .map_err(|e| self.sql(e))?,
            id_elsewhere: id_elsewhere_in(conn, &body.id, &body.station)
                .map_err(|e| self.sql(e))?,
            head: head_in(conn, &body.station).map_err(|e| self.sql(e))?,
            pred: super::links::pred_in(conn, &body.station, seq).map_err(|e| self.sql(e))?,
            training: CentreStore::training_in(conn, &body.station).map_err(|e| self.sql(e))?,
            roster_refusal: None,
        };
        let facts = ChainFacts {
            roster_refusal: self.roster_refusal(conn, &candidate, facts.training)?,
            ..facts
        };
        if let ChainVerdict::Done(outcome) = candidate.check_chain(&facts) {
            return Ok(outcome);
        }
        if let Some(why) = withdrawn {
            conn.execute(
                "INSERT INTO envelopes
                   (station, seq, id, hash, envelope, payload_sha256, payload_len, received_ms, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'withdrawn')",
                params![
                    body.station,
                    seq,
                    body.id,
                    candidate.hash,
                    bytes,
                    body.payload.sha256,
                    i64::try_from(body.payload.len).unwrap_or(i64::MAX),
                    now_ms,
                ],
            )
            .map_err(|e| self.sql(e))?;
            return Ok(decide::withdrawn(&candidate, why));
        }
        let sealed = self.read_blob_checked(&body.payload.sha256)?;
        let outcome = candidate.check_payload(sealed.as_deref(), &facts);
        let status = match &outcome {
            Ingested::Stored { .. } => "verified",
            Ingested::Held { .. } => "held",
            _ => return Ok(outcome),
        };
        if let Some(sealed) = &sealed {
            conn.execute(
                "INSERT INTO envelopes
                   (station, seq, id, hash, envelope, payload_sha256, payload_len, received_ms, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    body.station,
                    seq,
                    body.id,
                    candidate.hash,
                    bytes,
                    body.payload.sha256,
                    sealed.len() as i64,
                    now_ms,
                    status
                ],
            )
            .map_err(|e| self.sql(e))?;
        }
        Ok(outcome)
    }

    /// Why the roster the station held did not allow the badge that co-signed `candidate`, if it
    /// did not. A training station that held no roster is let through (its badges register on
    /// first use); any other record must name a roster version.
    fn roster_refusal(
        &self,
        conn: &Connection,
        candidate: &decide::Candidate,
        training: bool,
    ) -> Result<Option<String>, CentreError> {
        let body = candidate.env.body();
        let Some(cosig) = candidate.env.officer_signature() else {
            return Ok(None); // refused by the chain checks already
        };
        if body.roster.is_none() {
            return Ok((!training).then(|| {
                format!(
                    "the record names no roster version: station {} held no roster from the centre when officer {} co-signed it",
                    body.station, body.officer
                )
            }));
        }
        Ok(self
            .roster_allows_in(
                conn,
                body.roster,
                &body.officer,
                &cosig.key,
                &body.station,
                tasjil_sync::roster::Role::Officer,
                body.captured.finished_ms,
            )?
            .err())
    }

    /// `(seq, hash)` of the last envelope stored for `station`, or `(0, GENESIS)` before the first.
    pub fn head(&self, station: &str) -> Result<(u64, String), CentreError> {
        let conn = lock(&self.conn);
        if station_key_in(&conn, &self.db_path, station)?.is_none() {
            return Err(CentreError::UnknownStation(station.to_string()));
        }
        head_in(&conn, station).map_err(|e| self.sql(e))
    }

    /// The centre's answer for each of `ids` sent by `station`: "verified" once stored,
    /// "rejected" (with the latest reason) when refused and not stored since, else "unknown".
    pub fn statuses(
        &self,
        station: &str,
        ids: &[String],
    ) -> Result<Vec<RecordStatus>, CentreError> {
        let conn = lock(&self.conn);
        if station_key_in(&conn, &self.db_path, station)?.is_none() {
            return Err(CentreError::UnknownStation(station.to_string()));
        }
        let mut stored = conn
            .prepare("SELECT status FROM envelopes WHERE id = ?1 AND station = ?2")
            .map_err(|e| self.sql(e))?;
        let mut refused = conn
            .prepare(
                "SELECT reason FROM rejections WHERE id = ?1 AND station = ?2
                 ORDER BY at_ms DESC, rowid DESC LIMIT 1",
            )
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let status: Option<String> = stored
                .query_row(params![id, station], |r| r.get(0))
                .optional()
                .map_err(|e| self.sql(e))?;
            let answer = match status {
                // Held records are in their chain but not accepted, and records central staff
                // rejected after holding them: the station hears "rejected" with the reason,
                // which is what its supervisor must act on.
                Some(status)
                    if status == "held" || status == "rejected" || status == "withdrawn" =>
                {
                    RecordStatus {
                        id: id.clone(),
                        status: "rejected".into(),
                        reason: refused
                            .query_row(params![id, station], |r| r.get(0))
                            .optional()
                            .map_err(|e| self.sql(e))?,
                    }
                }
                Some(status) => RecordStatus {
                    id: id.clone(),
                    status,
                    reason: None,
                },
                None => {
                    let reason: Option<String> = refused
                        .query_row(params![id, station], |r| r.get(0))
                        .optional()
                        .map_err(|e| self.sql(e))?;
                    RecordStatus {
                        id: id.clone(),
                        status: if reason.is_some() {
                            "rejected"
                        } else {
                            "unknown"
                        }
                        .into(),
                        reason,
                    }
                }
            };
            out.push(answer);
        }
        Ok(out)
    }
}

/// The station a batch came from: the one its outcomes name, else the one its first envelope
/// claims (a batch of refusals still counts as a contact).
fn batch_station(outcomes: &[Ingested], envelopes: &[&[u8]]) -> Option<String> {
    outcomes
        .iter()
        .find_map(|o| match o {
            Ingested::Stored { station, .. } | Ingested::Held { station, .. } => {
                Some(station.clone())
            }
            Ingested::Rejected {
                station: Some(s), ..
            } => Some(s.clone()),
            _ => None,
        })
        .or_else(|| {
            let first = envelopes.first()?;
            let v: serde_json::Value = serde_json::from_slice(first).ok()?;
            v["body"]["station"].as_str().map(str::to_string)
        })
}

pub(super) fn log_outcomes(outcomes: &[Ingested]) {
    for outcome in outcomes {
        match outcome {
            Ingested::Stored { id, station, seq } => {
                tracing::info!(%id, %station, seq, "envelope stored")
            }
            Ingested::AlreadyHave { id } => tracing::debug!(%id, "envelope already stored"),
            Ingested::Held {
                id,
                station,
                seq,
                reason,
            } => tracing::warn!(%id, %station, seq, %reason, "envelope stored but held"),
            Ingested::Rejected {
                id,
                station,
                reason,
            } => {
                tracing::warn!(?id, ?station, %reason, "envelope refused")
            }
        }
    }
}

pub(super) fn head_in(conn: &Connection, station: &str) -> rusqlite::Result<(u64, String)> {
    let head: Option<(i64, String)> = conn
        .query_row(
            "SELECT seq, hash FROM (SELECT seq, hash FROM envelopes WHERE station = ?1
                                    UNION ALL SELECT seq, hash FROM restore_links WHERE station = ?1)
             ORDER BY seq DESC LIMIT 1",
            [station],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(head.map_or((0, GENESIS.to_string()), |(s, h)| (s as u64, h)))
}

/// Another station's stored envelope with enrolment id `id`, if any.
fn id_elsewhere_in(
    conn: &Connection,
    id: &str,
    station: &str,
) -> rusqlite::Result<Option<Neighbour>> {
    conn.prepare_cached(
        "SELECT id, station, seq, hash FROM envelopes WHERE id = ?1 AND station <> ?2
         ORDER BY received_ms LIMIT 1",
    )?
    .query_row(params![id, station], |r| {
        Ok(Neighbour {
            id: r.get(0)?,
            station: r.get(1)?,
            seq: r.get::<_, i64>(2)? as u64,
            hash: r.get(3)?,
        })
    })
    .optional()
}

/// Envelopes of `station` with enrolment id `id` or at sequence `seq`.
fn neighbours_in(
    conn: &Connection,
    id: &str,
    station: &str,
    seq: i64,
) -> rusqlite::Result<Vec<Neighbour>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, station, seq, hash FROM envelopes WHERE station = ?2 AND (id = ?1 OR seq = ?3)
         UNION ALL SELECT 'restore link', station, seq, hash FROM restore_links
                   WHERE station = ?2 AND seq = ?3",
    )?;
    let rows = stmt.query_map(params![id, station, seq], |r| {
        Ok(Neighbour {
            id: r.get(0)?,
            station: r.get(1)?,
            seq: r.get::<_, i64>(2)? as u64,
            hash: r.get(3)?,
        })
    })?;
    rows.collect()
}
