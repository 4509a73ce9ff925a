//! What the web console asks of the store: the overview's counts, the records list (paged by a
//! cursor, never by offset, so page 20 000 of a million rows costs what page 1 does), one record's
//! envelope facts, the batches stations delivered, issuance statuses set by central staff, and
//! their decisions on held records (release or reject, migration 0012). Nothing here opens a
//! sealed payload.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use tasjil_sync::ledger::{day_of_ms, Status, StatusEntry};
use tasjil_sync::record::{Envelope, Signed};

use super::{lock, CentreError, CentreStore, Ingested};

/// Longest reason for a decision on a held record.
pub const MAX_DECISION_REASON: usize = 1000;

/// Most rejection reasons kept per batch row (the counts stay exact).
const MAX_BATCH_REASONS: usize = 50;

/// An issuance status central staff set on a verified record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Issuance {
    /// Accepted for production.
    Accepted,
    /// Card produced.
    Issued,
    /// Re-enrol needed (a reason is required).
    Reenrol,
}

impl Issuance {
    pub const ALL: [Issuance; 3] = [Issuance::Accepted, Issuance::Issued, Issuance::Reenrol];

    pub fn as_str(self) -> &'static str {
        match self {
            Issuance::Accepted => "accepted",
            Issuance::Issued => "issued",
            Issuance::Reenrol => "reenrol",
        }
    }

    pub fn parse(s: &str) -> Option<Issuance> {
        Issuance::ALL.into_iter().find(|i| i.as_str() == s)
    }

    fn ledger_status(self) -> Status {
        match self {
            Issuance::Accepted => Status::Accepted,
            Issuance::Issued => Status::Issued,
            Issuance::Reenrol => Status::ReenrolNeeded,
        }
    }
}

/// Per station, for the overview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationSummary {
    pub id: String,
    pub state: String,
    pub state_reason: Option<String>,
    pub records: u64,
    /// Verified, and no card produced nor re-enrolment asked yet.
    pub waiting: u64,
    /// Distinct records refused and not stored since, plus held ones and those central staff
    /// rejected after holding them.
    pub rejects: u64,
    /// Last delivery (sync request or USB import), and how.
    pub last_contact_ms: Option<i64>,
    pub last_contact_kind: Option<String>,
}

/// The console's overview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overview {
    pub received_today: u64,
    pub received_week: u64,
    pub verified: u64,
    pub rejected: u64,
    pub awaiting_issuance: u64,
    pub reenrol: u64,
    pub stations: Vec<StationSummary>,
}

/// A row of the records list: envelope facts only, never personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordRow {
    pub station: String,
    pub id: String,
    pub seq: u64,
    pub received_ms: i64,
    pub status: String,
    pub issuance: Option<String>,
}

/// What the records list is filtered by. `day` is a UTC day `YYYY-MM-DD` of reception.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordFilter {
    pub id: Option<String>,
    pub station: Option<String>,
    pub day: Option<String>,
    /// `verified`, `held`, `rejected` (held, then rejected by central staff), or an issuance status (`accepted`, `issued`, `reenrol`), or
    /// `awaiting` (verified with no issuance status).
    pub status: Option<String>,
}

/// Where a page ends: the next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub received_ms: i64,
    pub station: String,
    pub seq: u64,
}

impl Cursor {
    /// `received_ms.seq.station` (station ids hold no dots' worth of ambiguity: the station
    /// comes last and takes the rest).
    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.received_ms, self.seq, self.station)
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        let mut parts = s.splitn(3, '.');
        Some(Cursor {
            received_ms: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
            station: parts.next()?.to_string(),
        })
    }
}

/// One issuance decision, for the record page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuanceEvent {
    pub status: String,
    pub reason: Option<String>,
    pub by: String,
    pub at_ms: i64,
}

/// What central staff decide about a held record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeldDecision {
    /// held -> verified: the record counts as any verified one (it can be issued).
    Release,
    /// held -> rejected: stored, never issued; the station is told why.
    Reject,
}

impl HeldDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            HeldDecision::Release => "release",
            HeldDecision::Reject => "reject",
        }
    }

    pub fn parse(s: &str) -> Option<HeldDecision> {
        [HeldDecision::Release, HeldDecision::Reject]
            .into_iter()
            .find(|d| d.as_str() == s)
    }

    /// The record's status after the decision.
    pub fn status(self) -> &'static str {
        match self {
            HeldDecision::Release => "verified",
            HeldDecision::Reject => "rejected",
        }
    }
}

/// A decision on a held record as kept in `held_decisions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldDecisionRow {
    pub decision: HeldDecision,
    pub reason: String,
    /// Why the record had been held.
    pub held_reason: Option<String>,
    pub by: String,
    pub at_ms: i64,
}

/// One record's facts from its envelope and the centre's tables (no payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordFacts {
    pub row: RecordRow,
    pub kind: String,
    pub officer: String,
    pub captured_started_ms: i64,
    pub captured_finished_ms: i64,
    pub face_quality: u8,
    pub finger_quality: Vec<(String, u8)>,
    pub finger_exceptions: Vec<String>,
    pub below_threshold: Vec<String>,
    pub payload_sha256: String,
    pub payload_len: u64,
    pub envelope_hash: String,
    pub issuance_reason: Option<String>,
    pub rejections: Vec<(String, i64)>,
    pub issuance_history: Vec<IssuanceEvent>,
    /// Central staff's decision, when the record was held and no longer is.
    pub held_decision: Option<HeldDecisionRow>,
}

/// One delivery (a network sync request or a USB import).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub seq: i64,
    pub kind: String,
    pub station: String,
    pub at_ms: i64,
    pub stored: u64,
    pub already: u64,
    pub rejected: u64,
    pub reasons: Vec<BatchReason>,
    pub bundle_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchReason {
    pub id: Option<String>,
    pub reason: String,
}

/// Milliseconds of the UTC midnight starting `day` (`YYYY-MM-DD`).
pub fn day_start_ms(day: &str) -> Option<i64> {
    let mut it = day.splitn(3, '-');
    let (y, m, d): (i64, i64, i64) = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    if day.len() != 10 || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400_000)
}

/// Record a delivery in `batches` (inside the caller's transaction).
pub(super) fn record_batch(
    tx: &Connection,
    kind: &str,
    station: &str,
    bundle_id: Option<&str>,
    outcomes: &[Ingested],
    now_ms: i64,
) -> rusqlite::Result<()> {
    let (mut stored, mut already, mut rejected) = (0i64, 0i64, 0i64);
    let mut reasons = Vec::new();
    for o in outcomes {
        match o {
            Ingested::Stored { .. } => stored += 1,
            Ingested::AlreadyHave { .. } => already += 1,
            Ingested::Held { id, reason, .. } => {
                rejected += 1;
                reasons.push(BatchReason {
                    id: Some(id.clone()),
                    reason: reason.clone(),
                });
            }
            Ingested::Rejected { id, reason, .. } => {
                rejected += 1;
                reasons.push(BatchReason {
                    id: id.clone(),
                    reason: reason.clone(),
                });
            }
        }
    }
    reasons.truncate(MAX_BATCH_REASONS);
    let reasons = serde_json::to_string(&reasons).unwrap_or_else(|_| "[]".into());
    tx.execute(
        "INSERT INTO batches (kind, station, at_ms, stored, already, rejected, reasons, bundle_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![kind, station, now_ms, stored, already, rejected, reasons, bundle_id],
    )
    .map(drop)
}

fn held_decision_in(
    conn: &Connection,
    station: &str,
    id: &str,
) -> rusqlite::Result<Option<HeldDecisionRow>> {
    conn.query_row(
        "SELECT decision, reason, held_reason, by, at_ms FROM held_decisions
         WHERE station = ?1 AND id = ?2",
        params![station, id],
        |r| {
            let decision: String = r.get(0)?;
            Ok(HeldDecisionRow {
                decision: HeldDecision::parse(&decision).unwrap_or(HeldDecision::Reject),
                reason: r.get(1)?,
                held_reason: r.get(2)?,
                by: r.get(3)?,
                at_ms: r.get(4)?,
            })
        },
    )
    .optional()
}

fn count(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<u64> {
    conn.query_row(sql, p, |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

impl CentreStore {
    /// The overview's counts at `now_ms` (days are UTC).
    pub fn overview(&self, now_ms: i64) -> Result<Overview, CentreError> {
        let conn = lock(&self.conn);
        let sql = |e| self.sql(e);
        let today = now_ms - now_ms.rem_euclid(86_400_000);
        let week = today - 6 * 86_400_000;
        let received_today = count(
            &conn,
            "SELECT count(*) FROM envelopes WHERE received_ms >= ?1",
            [today],
        )
        .map_err(sql)?;
        let received_week = count(
            &conn,
            "SELECT count(*) FROM envelopes WHERE received_ms >= ?1",
            [week],
        )
        .map_err(sql)?;
        // Per (station, status, issuance), from the counters the triggers keep.
        let counted: Vec<(String, String, String, i64)> = conn
            .prepare("SELECT station, status, issuance, n FROM record_counts WHERE n > 0")
            .and_then(|mut stmt| {
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(sql)?;
        let waiting = |status: &str, issuance: &str| {
            status == "verified" && (issuance.is_empty() || issuance == "accepted")
        };
        let sum = |pick: &dyn Fn(&str, &str, &str) -> bool| -> u64 {
            counted
                .iter()
                .filter(|(st, s, i, _)| pick(st, s, i))
                .map(|(_, _, _, n)| *n as u64)
                .sum()
        };
        let verified = sum(&|_, s, _| s == "verified");
        let awaiting_issuance = sum(&|_, s, i| waiting(s, i));
        let reenrol = sum(&|_, s, i| s == "verified" && i == "reenrol");
        // Refused and never stored, plus stored records central staff rejected after holding
        // them: both are in `stats`.
        let rejected = self.stats_in(&conn)?.rejected;

        let mut stations = Vec::new();
        {
            let mut stmt = conn
                .prepare("SELECT id, state, state_reason FROM stations ORDER BY id")
                .map_err(sql)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(sql)?;
            for (id, state, state_reason) in rows {
                let records = sum(&|st, _, _| st == id);
                let held = sum(&|st, s, _| st == id && (s == "held" || s == "rejected"));
                let refused = count(
                    &conn,
                    "SELECT count(DISTINCT r.id) FROM rejections r WHERE r.station = ?1
                     AND NOT EXISTS (SELECT 1 FROM envelopes e
                                     WHERE e.station = r.station AND e.id = r.id)",
                    [&id],
                )
                .map_err(sql)?;
                let last: Option<(i64, String)> = conn
                    .query_row(
                        "SELECT at_ms, kind FROM batches WHERE station = ?1
                         ORDER BY at_ms DESC LIMIT 1",
                        [&id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(sql)?;
                stations.push(StationSummary {
                    waiting: sum(&|st, s, i| st == id && waiting(s, i)),
                    id,
                    state,
                    state_reason,
                    records,
                    rejects: held + refused,
                    last_contact_ms: last.as_ref().map(|l| l.0),
                    last_contact_kind: last.map(|l| l.1),
                });
            }
        }
        Ok(Overview {
            received_today,
            received_week,
            verified,
            rejected,
            awaiting_issuance,
            reenrol,
            stations,
        })
    }

    /// One page of the records list, newest received first, after `after` (a cursor from the
    /// previous page). Returns up to `limit` rows and the cursor of the next page, if any.
    pub fn records_page(
        &self,
        filter: &RecordFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<RecordRow>, Option<Cursor>), CentreError> {
        let mut sql = String::from(
            "SELECT station, id, seq, received_ms, status, issuance FROM envelopes WHERE 1",
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut arg = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
            args.push(v);
            sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
        };
        if let Some(id) = filter.id.as_deref().filter(|s| !s.is_empty()) {
            arg(&mut sql, " AND id = ?", id.to_string().into());
        }
        if let Some(st) = filter.station.as_deref().filter(|s| !s.is_empty()) {
            arg(&mut sql, " AND station = ?", st.to_string().into());
        }
        if let Some(day) = filter.day.as_deref().filter(|s| !s.is_empty()) {
            let start = day_start_ms(day).ok_or_else(|| {
                CentreError::BadStaff(format!("{day:?} is not a date (YYYY-MM-DD)"))
            })?;
            arg(&mut sql, " AND received_ms >= ?", start.into());
            arg(
                &mut sql,
                " AND received_ms < ?",
                (start + 86_400_000).into(),
            );
        }
        match filter.status.as_deref().filter(|s| !s.is_empty()) {
            None => {}
            Some("awaiting") => sql.push_str(
                " AND status = 'verified' AND (issuance IS NULL OR issuance = 'accepted')",
            ),
            Some(s @ ("verified" | "held" | "rejected")) => {
                arg(&mut sql, " AND status = ?", s.to_string().into());
            }
            Some(s) if Issuance::parse(s).is_some() => {
                arg(&mut sql, " AND issuance = ?", s.to_string().into());
            }
            Some(other) => {
                return Err(CentreError::BadStaff(format!(
                    "{other:?} is not a record status this list knows"
                )))
            }
        }
        if let Some(c) = after {
            args.push(c.received_ms.into());
            args.push(c.station.clone().into());
            args.push((c.seq as i64).into());
            let n = args.len();
            sql.push_str(&format!(
                " AND (received_ms, station, seq) < (?{}, ?{}, ?{})",
                n - 2,
                n - 1,
                n
            ));
        }
        sql.push_str(&format!(
            " ORDER BY received_ms DESC, station DESC, seq DESC LIMIT {}",
            limit + 1
        ));
        let conn = lock(&self.conn);
        let mut stmt = conn.prepare(&sql).map_err(|e| self.sql(e))?;
        let mut rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok(RecordRow {
                    station: r.get(0)?,
                    id: r.get(1)?,
                    seq: r.get::<_, i64>(2)? as u64,
                    received_ms: r.get(3)?,
                    status: r.get(4)?,
                    issuance: r.get(5)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.sql(e))?;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| Cursor {
                received_ms: r.received_ms,
                station: r.station.clone(),
                seq: r.seq,
            })
        } else {
            None
        };
        Ok((rows, next))
    }

    /// One record's facts, or `None` when the centre holds no record `id` of `station`.
    pub fn record_facts(
        &self,
        station: &str,
        id: &str,
    ) -> Result<Option<RecordFacts>, CentreError> {
        let conn = lock(&self.conn);
        let sql = |e| self.sql(e);
        type Row = (i64, i64, String, Option<String>, Option<String>, Vec<u8>);
        let row: Option<Row> = conn
            .query_row(
                "SELECT seq, received_ms, status, issuance, issuance_reason, envelope
                 FROM envelopes WHERE station = ?1 AND id = ?2",
                params![station, id],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .optional()
            .map_err(sql)?;
        let Some((seq, received_ms, status, issuance, issuance_reason, bytes)) = row else {
            return Ok(None);
        };
        let env = Envelope::<Signed>::from_bytes(&bytes).map_err(|e| CentreError::Damaged {
            path: self.db_path.clone(),
            detail: format!("stored envelope {station}/{id} does not parse: {e}"),
        })?;
        let b = env.body();
        let rejections = {
            let mut stmt = conn
                .prepare(
                    "SELECT reason, at_ms FROM rejections WHERE station = ?1 AND id = ?2
                     ORDER BY at_ms",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map(params![station, id], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(sql)?;
            rows
        };
        let issuance_history = {
            let mut stmt = conn
                .prepare(
                    "SELECT status, reason, by, at_ms FROM issuance_events
                     WHERE station = ?1 AND id = ?2 ORDER BY at_ms, rowid",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map(params![station, id], |r| {
                    Ok(IssuanceEvent {
                        status: r.get(0)?,
                        reason: r.get(1)?,
                        by: r.get(2)?,
                        at_ms: r.get(3)?,
                    })
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(sql)?;
            rows
        };
        let held_decision = held_decision_in(&conn, station, id).map_err(sql)?;
        Ok(Some(RecordFacts {
            row: RecordRow {
                station: station.into(),
                id: id.into(),
                seq: seq as u64,
                received_ms,
                status,
                issuance,
            },
            kind: b.kind.as_str().into(),
            officer: b.officer.clone(),
            captured_started_ms: b.captured.started_ms,
            captured_finished_ms: b.captured.finished_ms,
            face_quality: b.quality.face,
            finger_quality: b
                .quality
                .fingers
                .iter()
                .map(|f| (f.position.clone(), f.score))
                .collect(),
            finger_exceptions: b.quality.finger_exceptions.clone(),
            below_threshold: b.quality.below_threshold.clone(),
            payload_sha256: b.payload.sha256.clone(),
            payload_len: b.payload.len,
            envelope_hash: tasjil_sync::sha256_hex(&bytes),
            issuance_reason,
            rejections,
            issuance_history,
            held_decision,
        }))
    }

    /// Set the issuance status of verified records (one or many) in one transaction: the
    /// current status, its history, and the centre's status in each station-day ledger (so it
    /// reaches the van at its next sync and in its next USB receipt). `reenrol` needs a reason.
    /// Returns how many records changed.
    pub fn set_issuance(
        &self,
        records: &[(String, String)],
        status: Issuance,
        reason: Option<&str>,
        by: &str,
        now_ms: i64,
    ) -> Result<usize, CentreError> {
        let reason = reason.map(str::trim).filter(|r| !r.is_empty());
        if status == Issuance::Reenrol && reason.is_none() {
            return Err(CentreError::BadStaff(
                "re-enrol needed: say why (photo not compliant, fingers unusable, ...)".into(),
            ));
        }
        let reason: Option<String> =
            reason.map(|r| r.chars().take(tasjil_sync::ledger::MAX_REASON).collect());
        let mut conn = lock(&self.conn);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        let mut changed = 0;
        for (station, id) in records {
            let row: Option<(String, Vec<u8>)> = tx
                .query_row(
                    "SELECT status, envelope FROM envelopes WHERE station = ?1 AND id = ?2",
                    params![station, id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(|e| self.sql(e))?;
            let Some((current, bytes)) = row else {
                return Err(CentreError::BadStaff(format!(
                    "no record {id} of station {station} at this centre"
                )));
            };
            if current != "verified" {
                return Err(CentreError::BadStaff(format!(
                    "record {id} of station {station} is {current}, not verified: it cannot be issued"
                )));
            }
            tx.execute(
                "UPDATE envelopes SET issuance = ?3, issuance_reason = ?4, issuance_ms = ?5
                 WHERE station = ?1 AND id = ?2",
                params![station, id, status.as_str(), reason, now_ms],
            )
            .map_err(|e| self.sql(e))?;
            tx.execute(
                "INSERT INTO issuance_events (station, id, status, reason, by, at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![station, id, status.as_str(), reason, by, now_ms],
            )
            .map_err(|e| self.sql(e))?;
            let env = Envelope::<Signed>::from_bytes(&bytes).map_err(|e| CentreError::Damaged {
                path: self.db_path.clone(),
                detail: format!("stored envelope {station}/{id} does not parse: {e}"),
            })?;
            let day = day_of_ms(env.body().captured.finished_ms);
            let entry = self.verdict(
                StatusEntry {
                    status: status.ledger_status(),
                    reason: reason.clone(),
                    by: "centre".into(),
                    time_ms: now_ms,
                    sig: None,
                },
                station,
                id,
                &tasjil_sync::sha256_hex(&bytes),
            );
            self.with_ledger(&tx, station, &day, |l| l.add_status(id, &entry))?;
            changed += 1;
        }
        tx.commit().map_err(|e| self.sql(e))?;
        tracing::info!(
            n = changed,
            status = status.as_str(),
            by,
            "issuance status set"
        );
        Ok(changed)
    }

    /// Central staff's decision on a held record of `station`: release it (held -> verified) or
    /// reject it (held -> rejected), with a reason, in one transaction: the record's status,
    /// the decision in `held_decisions` (who, when, why; append-only), for a rejection the reason
    /// in `rejections`, and the centre's verdict, signed like every other, in the record's
    /// station-day ledger, so it reaches the van at its next ledger sync or USB receipt. Only a
    /// record that is held now; a decision is final.
    pub fn decide_held(
        &self,
        station: &str,
        id: &str,
        decision: HeldDecision,
        reason: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<HeldDecisionRow, CentreError> {
        let reason = reason.trim();
        if reason.chars().count() > MAX_DECISION_REASON {
            return Err(CentreError::BadStaff(format!(
                "the reason is longer than {MAX_DECISION_REASON} characters"
            )));
        }
        if reason.is_empty() {
            return Err(CentreError::BadStaff(format!(
                "say why the held record is {}",
                match decision {
                    HeldDecision::Release => "released",
                    HeldDecision::Reject => "rejected",
                }
            )));
        }
        let mut conn = lock(&self.conn);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        let row: Option<(String, Vec<u8>)> = tx
            .query_row(
                "SELECT status, envelope FROM envelopes WHERE station = ?1 AND id = ?2",
                params![station, id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        let Some((current, bytes)) = row else {
            return Err(CentreError::BadStaff(format!(
                "no record {id} of station {station} at this centre"
            )));
        };
        if current != "held" {
            return Err(CentreError::BadStaff(format!(
                "record {id} of station {station} is {current}, not held: only a held record can be released or rejected"
            )));
        }
        let held_reason: Option<String> = tx
            .query_row(
                "SELECT reason FROM rejections WHERE station = ?1 AND id = ?2
                 ORDER BY at_ms DESC, rowid DESC LIMIT 1",
                params![station, id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        tx.execute(
            "UPDATE envelopes SET status = ?3 WHERE station = ?1 AND id = ?2",
            params![station, id, decision.status()],
        )
        .map_err(|e| self.sql(e))?;
        tx.execute(
            "INSERT INTO held_decisions (station, id, decision, reason, held_reason, by, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                station,
                id,
                decision.as_str(),
                reason,
                held_reason,
                by,
                now_ms
            ],
        )
        .map_err(|e| self.sql(e))?;
        // What the station is told: a release is a plain verification; a rejection says why.
        let told = match decision {
            HeldDecision::Release => None,
            HeldDecision::Reject => {
                let words = format!("rejected by central staff after holding it: {reason}");
                tx.execute(
                    "INSERT OR IGNORE INTO rejections (id, station, reason, at_ms)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![id, station, words, now_ms],
                )
                .map_err(|e| self.sql(e))?;
                Some(
                    words
                        .chars()
                        .take(tasjil_sync::ledger::MAX_REASON)
                        .collect(),
                )
            }
        };
        let env = Envelope::<Signed>::from_bytes(&bytes).map_err(|e| CentreError::Damaged {
            path: self.db_path.clone(),
            detail: format!("stored envelope {station}/{id} does not parse: {e}"),
        })?;
        let day = day_of_ms(env.body().captured.finished_ms);
        let entry = self.verdict(
            StatusEntry {
                status: match decision {
                    HeldDecision::Release => Status::Verified,
                    HeldDecision::Reject => Status::Rejected,
                },
                reason: told,
                by: "centre".into(),
                time_ms: now_ms,
                sig: None,
            },
            station,
            id,
            &tasjil_sync::sha256_hex(&bytes),
        );
        self.with_ledger(&tx, station, &day, |l| l.add_status(id, &entry))?;
        tx.commit().map_err(|e| self.sql(e))?;
        tracing::warn!(
            %station,
            %id,
            decision = decision.as_str(),
            by,
            %reason,
            "held record decided"
        );
        Ok(HeldDecisionRow {
            decision,
            reason: reason.to_string(),
            held_reason,
            by: by.to_string(),
            at_ms: now_ms,
        })
    }

    /// The latest deliveries, newest first, before batch `before` (a `seq`), up to `limit`.
    pub fn batches(&self, before: Option<i64>, limit: usize) -> Result<Vec<Batch>, CentreError> {
        let conn = lock(&self.conn);
        let mut stmt = conn
            .prepare(
                "SELECT seq, kind, station, at_ms, stored, already, rejected, reasons, bundle_id
                 FROM batches WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params![before.unwrap_or(i64::MAX), limit as i64], |r| {
                let reasons: String = r.get(7)?;
                Ok(Batch {
                    seq: r.get(0)?,
                    kind: r.get(1)?,
                    station: r.get(2)?,
                    at_ms: r.get(3)?,
                    stored: r.get::<_, i64>(4)? as u64,
                    already: r.get::<_, i64>(5)? as u64,
                    rejected: r.get::<_, i64>(6)? as u64,
                    reasons: serde_json::from_str(&reasons).unwrap_or_default(),
                    bundle_id: r.get(8)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.sql(e))?;
        Ok(rows)
    }

    /// Names of `station`'s ledgers holding an issuance status set, or a held record decided, at
    /// or after `since_ms`: a USB receipt carries them, so the van learns of statuses on records
    /// of other days too.
    pub fn issuance_ledgers(
        &self,
        station: &str,
        since_ms: i64,
    ) -> Result<std::collections::BTreeSet<String>, CentreError> {
        let conn = lock(&self.conn);
        let mut stmt = conn
            .prepare(
                "SELECT envelope FROM envelopes
                 WHERE station = ?1 AND issuance IS NOT NULL AND issuance_ms >= ?2
                 UNION ALL
                 SELECT e.envelope FROM held_decisions d
                 JOIN envelopes e ON e.station = d.station AND e.id = d.id
                 WHERE d.station = ?1 AND d.at_ms >= ?2",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params![station, since_ms], |r| r.get::<_, Vec<u8>>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.sql(e))?;
        Ok(rows
            .iter()
            .filter_map(|b| Envelope::<Signed>::from_bytes(b).ok())
            .map(|e| {
                let b = e.body();
                tasjil_sync::ledger::doc_name(&b.station, &day_of_ms(b.captured.finished_ms))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_start_matches_known_days() {
        assert_eq!(day_start_ms("1970-01-01"), Some(0));
        assert_eq!(day_start_ms("2026-12-02"), Some(1_796_169_600_000));
        assert_eq!(day_start_ms("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(day_start_ms("2026-13-01"), None);
        assert_eq!(day_start_ms("yesterday"), None);
    }

    /// A store with the centre's key and a real (not training) station whose records name no
    /// roster version: every record it sends is held. Returns the store, the centre key, the
    /// station's name and the envelopes (stored, held).
    fn held_records(
        dir: &std::path::Path,
        n: u64,
    ) -> (CentreStore, ed25519_dalek::SigningKey, String, Vec<Vec<u8>>) {
        use tasjil_sync::record::{PayloadRef, GENESIS};
        use tasjil_sync::{sha256_hex, StationKey, StationPublic};
        let store = CentreStore::open(dir).unwrap();
        let centre = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        store.sign_verdicts_with(centre.clone());
        let (station, officer) = (StationKey::generate(), StationKey::generate());
        let name = "VAN-HELD".to_string();
        assert!(store
            .add_station(&StationPublic::new(&name, &station), NOW)
            .unwrap());
        let mut prev = GENESIS.to_string();
        let mut out = Vec::new();
        for seq in 1..=n {
            let sealed: Vec<u8> = (0..600u32).map(|i| (i as u8) ^ seq as u8).collect();
            store
                .put_blob_chunk(&sha256_hex(&sealed), 0, sealed.len() as u64, &sealed)
                .unwrap();
            let bytes = crate::bench::signed_envelope(
                crate::bench::BenchEnvelope {
                    id: ulid::Ulid::from_parts(1_700_000_000_000 + seq, u128::from(seq))
                        .to_string(),
                    station: &name,
                    officer: "OFF-X",
                    seq,
                    prev: &prev,
                    payload: PayloadRef {
                        sha256: sha256_hex(&sealed),
                        len: sealed.len() as u64,
                    },
                    roster: None,
                },
                &officer,
                &station,
            )
            .unwrap();
            let got = store.ingest(&bytes, NOW + seq as i64).unwrap();
            assert!(matches!(got, Ingested::Held { .. }), "{got:?}");
            prev = sha256_hex(&bytes);
            out.push(bytes);
        }
        (store, centre, name, out)
    }

    const NOW: i64 = 1_750_000_000_000;

    fn id_of(bytes: &[u8]) -> String {
        Envelope::<Signed>::from_bytes(bytes)
            .unwrap()
            .body()
            .id
            .clone()
    }

    #[test]
    fn a_held_record_released_or_rejected_is_recorded_and_the_van_gets_a_signed_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let (store, centre, van, envs) = held_records(dir.path(), 2);
        let (one, two) = (id_of(&envs[0]), id_of(&envs[1]));
        let ledger_name = tasjil_sync::ledger::doc_name(&van, &day_of_ms(5));
        let current = |id: &str| {
            store
                .ledger(&ledger_name)
                .unwrap()
                .unwrap()
                .status_history(id)
                .pop()
                .unwrap()
        };
        assert_eq!(current(&one).status, Status::Rejected, "held: told refused");

        // A reason is required, and only a held record of this centre can be decided.
        assert!(matches!(
            store.decide_held(&van, &one, HeldDecision::Release, "  ", "root", NOW + 10),
            Err(CentreError::BadStaff(m)) if m.contains("say why")
        ));
        let long = "x".repeat(MAX_DECISION_REASON + 1);
        assert!(store
            .decide_held(&van, &one, HeldDecision::Release, &long, "root", NOW + 10)
            .is_err());
        assert!(store
            .decide_held(
                &van,
                "01JNOTHERE",
                HeldDecision::Release,
                "x",
                "root",
                NOW + 10
            )
            .is_err());

        // Released: verified, the decision kept, a signed verification in the ledger.
        let d = store
            .decide_held(
                &van,
                &one,
                HeldDecision::Release,
                "badge checked with the officer's supervisor",
                "root",
                NOW + 10,
            )
            .unwrap();
        assert!(d
            .held_reason
            .as_deref()
            .unwrap()
            .contains("no roster version"));
        let facts = store.record_facts(&van, &one).unwrap().unwrap();
        assert_eq!(facts.row.status, "verified");
        let kept = facts.held_decision.unwrap();
        assert_eq!(
            (kept.decision, kept.by.as_str(), kept.at_ms),
            (HeldDecision::Release, "root", NOW + 10)
        );
        assert!(kept.reason.contains("supervisor"));
        let v = current(&one);
        assert_eq!(v.status, Status::Verified);
        let hash = tasjil_sync::sha256_hex(&envs[0]);
        assert!(v.verify(&centre.verifying_key(), &van, &one, &hash));
        assert_eq!(
            store.statuses(&van, std::slice::from_ref(&one)).unwrap()[0].status,
            "verified"
        );
        // A decision is final.
        assert!(matches!(
            store.decide_held(&van, &one, HeldDecision::Reject, "changed my mind", "root", NOW + 11),
            Err(CentreError::BadStaff(m)) if m.contains("not held")
        ));
        // A released record is a verified one: it can be issued.
        store
            .set_issuance(
                &[(van.clone(), one.clone())],
                Issuance::Accepted,
                None,
                "issa",
                NOW + 12,
            )
            .unwrap();

        // Rejected: stored, never verified; the reason goes to the van, signed.
        store
            .decide_held(
                &van,
                &two,
                HeldDecision::Reject,
                "badge never issued",
                "root",
                NOW + 20,
            )
            .unwrap();
        let r = current(&two);
        assert_eq!(r.status, Status::Rejected);
        assert!(r.reason.as_deref().unwrap().contains("badge never issued"));
        assert!(r.verify(
            &centre.verifying_key(),
            &van,
            &two,
            &tasjil_sync::sha256_hex(&envs[1])
        ));
        let facts = store.record_facts(&van, &two).unwrap().unwrap();
        assert_eq!(facts.row.status, "rejected");
        assert!(facts
            .rejections
            .iter()
            .any(|(why, at)| why.contains("badge never issued") && *at == NOW + 20));
        let rejected = RecordFilter {
            status: Some("rejected".into()),
            ..RecordFilter::default()
        };
        let (rows, _) = store.records_page(&rejected, None, 50).unwrap();
        assert_eq!(rows.len(), 1);
        let o = store.overview(NOW + 30).unwrap();
        assert_eq!((o.verified, o.rejected), (1, 1));
        assert_eq!(o.stations[0].rejects, 1);
        // A USB receipt carries the day's ledger with the verdicts.
        assert!(store
            .issuance_ledgers(&van, NOW + 15)
            .unwrap()
            .contains(&ledger_name));

        // The decisions are append-only, and the store still verifies.
        let conn = Connection::open(store.db_path()).unwrap();
        assert!(conn
            .execute("UPDATE held_decisions SET by = 'someone else'", [])
            .is_err());
        assert!(conn.execute("DELETE FROM held_decisions", []).is_err());
        let report = store.verify_all().unwrap();
        assert!(report.ok, "{:?}", report.problems);
    }

    #[test]
    fn cursor_round_trips() {
        let c = Cursor {
            received_ms: 17,
            station: "van.07".into(),
            seq: 3,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("x.1.a"), None);
    }
}
