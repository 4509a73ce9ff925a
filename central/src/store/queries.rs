//! What central staff ask of the store: the list of records, the full re-check, the counts.

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use tasjil_sync::keys::parse_verifying_key;
use tasjil_sync::record::{Envelope, Signed, GENESIS};
use tasjil_sync::sha256_hex;

use super::decide::check_officer;
use super::{lock, CentreError, CentreStore};

/// One stored envelope, as listed (never demographics: the centre cannot even read them here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CentreRecord {
    pub id: String,
    pub station: String,
    pub seq: u64,
    pub status: String,
    pub received_ms: i64,
    pub payload_sha256: String,
    pub payload_len: u64,
}

/// One record (or "database") that failed a check, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub id: String,
    pub reason: String,
}

/// Result of [`CentreStore::verify_all`]: the JSON of `tasjil-central verify --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub records: u64,
    pub valid: u64,
    pub problems: Vec<Problem>,
    /// Payload files that no stored envelope names (an upload whose envelope was refused, or
    /// never sent): kept, listed.
    #[serde(default)]
    pub orphans: Vec<String>,
    /// What `verify` put right: damaged payload files no envelope names, moved aside.
    #[serde(default)]
    pub repaired: Vec<String>,
}

/// Counts for `tasjil-central stats --json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub stations: u64,
    pub records: u64,
    pub verified: u64,
    /// Distinct (station, id) pairs refused and not stored since.
    pub rejected: u64,
}

impl CentreStore {
    /// Every stored envelope, by station and sequence.
    pub fn list(&self) -> Result<Vec<CentreRecord>, CentreError> {
        let conn = lock(&self.conn);
        let mut stmt = conn
            .prepare(
                "SELECT id, station, seq, status, received_ms, payload_sha256, payload_len
                 FROM envelopes ORDER BY station, seq",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(CentreRecord {
                    id: r.get(0)?,
                    station: r.get(1)?,
                    seq: r.get::<_, i64>(2)? as u64,
                    status: r.get(3)?,
                    received_ms: r.get(4)?,
                    payload_sha256: r.get(5)?,
                    payload_len: r.get::<_, i64>(6)? as u64,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }

    /// Re-check everything stored, and name each record that fails and why: SQLite's structure
    /// check; per record, the signed bytes parse and agree with the index columns, the station
    /// signature against the registered key, the officer co-signature, the chain from sequence 1
    /// per station, and the payload file's presence, length and SHA-256.
    pub fn verify_all(&self) -> Result<VerifyReport, CentreError> {
        let conn = lock(&self.conn);
        let mut problems = Vec::new();
        {
            let mut stmt = conn
                .prepare("PRAGMA quick_check")
                .map_err(|e| self.sql(e))?;
            let lines = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| self.sql(e))?;
            for line in lines.into_iter().filter(|l| l != "ok") {
                problems.push(Problem {
                    id: "database".into(),
                    reason: format!("SQLite structure check: {line}"),
                });
            }
        }

        let mut keys: std::collections::HashMap<String, Result<VerifyingKey, String>> =
            std::collections::HashMap::new();
        {
            let mut stmt = conn
                .prepare("SELECT id, public_key FROM stations")
                .map_err(|e| self.sql(e))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| self.sql(e))?;
            for (id, key) in rows {
                keys.insert(id, parse_verifying_key(&key));
            }
        }

        // Restore links: each signed by its station and starting from an element the centre
        // holds with the hash it names. Records after a link follow it (see below).
        let links = self.check_links(&conn, &keys, &mut problems)?;

        let mut stmt = conn
            .prepare(
                "SELECT station, seq, id, hash, envelope, payload_sha256, payload_len
                 FROM envelopes ORDER BY station, seq",
            )
            .map_err(|e| self.sql(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.sql(e))?;
        let (mut records, mut valid) = (0u64, 0u64);
        let mut named = std::collections::HashSet::new();
        let mut chain_station = String::new();
        let (mut expected_seq, mut expected_prev) = (1u64, GENESIS.to_string());
        while let Some(r) = rows.next().map_err(|e| self.sql(e))? {
            let station: String = r.get(0).map_err(|e| self.sql(e))?;
            let seq: i64 = r.get(1).map_err(|e| self.sql(e))?;
            let id: String = r.get(2).map_err(|e| self.sql(e))?;
            let hash: String = r.get(3).map_err(|e| self.sql(e))?;
            let bytes: Vec<u8> = r.get(4).map_err(|e| self.sql(e))?;
            let payload_sha256: String = r.get(5).map_err(|e| self.sql(e))?;
            let payload_len: i64 = r.get(6).map_err(|e| self.sql(e))?;
            records += 1;
            named.insert(payload_sha256.clone());
            if station != chain_station {
                chain_station.clone_from(&station);
                expected_seq = 1;
                expected_prev = GENESIS.to_string();
            }
            // A record after a restore link follows the link, not the record before it.
            if let Some(link_hash) = links.get(&(station.clone(), seq - 1)) {
                expected_seq = u64::try_from(seq).unwrap_or(0);
                expected_prev.clone_from(link_hash);
            }

            let mut reasons: Vec<String> = Vec::new();
            let computed = sha256_hex(&bytes);
            match Envelope::<Signed>::from_bytes(&bytes) {
                Err(e) => reasons.push(e.to_string()),
                Ok(env) => {
                    let b = env.body();
                    let index_ok = b.id == id
                        && b.station == station
                        && i64::try_from(b.seq).ok() == Some(seq)
                        && b.payload.sha256 == payload_sha256
                        && i64::try_from(b.payload.len).ok() == Some(payload_len)
                        && computed == hash;
                    if !index_ok {
                        reasons
                            .push("stored index columns do not match the signed envelope".into());
                    }
                    match keys.get(&station) {
                        Some(Ok(key)) => {
                            if let Err(e) = env.verify_signature(key) {
                                reasons.push(e.to_string());
                            }
                        }
                        Some(Err(e)) => reasons.push(format!(
                            "registered key of station {station} is unreadable: {e}"
                        )),
                        None => reasons.push(format!("station {station} is not registered")),
                    }
                    if let Err(e) = check_officer(&env) {
                        reasons.push(e.to_string());
                    }
                    if let Err(e) = env.verify_chain_link(expected_seq, &expected_prev) {
                        reasons.push(e.to_string());
                    }
                    match self.read_blob(&b.payload.sha256) {
                        Ok(sealed) => {
                            if let Err(e) = env.verify_payload(&sealed) {
                                reasons.push(e.to_string());
                            }
                        }
                        Err(CentreError::BlobMissing(sha)) => {
                            reasons.push(format!("sealed payload {sha} is missing"))
                        }
                        Err(CentreError::BadAddress(a)) => {
                            reasons.push(format!("payload address {a:?} is malformed"))
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            // A damaged record should not also make its successor look broken: carry the chain on
            // from the hash the successor was built on (the stored index) when this one failed.
            expected_prev = if reasons.is_empty() { computed } else { hash };
            expected_seq = u64::try_from(seq).unwrap_or(0) + 1;
            if reasons.is_empty() {
                valid += 1;
            } else {
                problems.push(Problem {
                    id,
                    reason: reasons.join("; "),
                });
            }
        }
        drop(rows);
        drop(stmt);
        // The counters the overview reads must agree with a real count; rebuilt if not.
        let counters_fixed = check_counters(&conn).map_err(|e| self.sql(e))?;
        drop(conn);
        let (orphans, mut repaired) = self.check_unnamed_blobs(&named, &mut problems)?;
        if counters_fixed {
            repaired.push("record counters disagreed with the records: rebuilt".into());
        }
        Ok(VerifyReport {
            ok: problems.is_empty(),
            records,
            valid,
            problems,
            orphans,
            repaired,
        })
    }

    /// Check every restore link; returns `(station, seq) -> hash` of each, for the chain walk.
    fn check_links(
        &self,
        conn: &rusqlite::Connection,
        keys: &std::collections::HashMap<String, Result<VerifyingKey, String>>,
        problems: &mut Vec<Problem>,
    ) -> Result<std::collections::HashMap<(String, i64), String>, CentreError> {
        let rows = super::links::links_in(conn, None).map_err(|e| self.sql(e))?;
        let mut by_place = std::collections::HashMap::new();
        for row in rows {
            let seq = i64::try_from(row.seq).unwrap_or(i64::MAX);
            let bytes = super::links::link_bytes_in(conn, &row.station, seq)
                .map_err(|e| self.sql(e))?
                .unwrap_or_default();
            let mut reasons = Vec::new();
            match tasjil_sync::RestoreLink::from_bytes(&bytes) {
                Err(e) => reasons.push(e.to_string()),
                Ok(link) => {
                    if sha256_hex(&bytes) != row.hash || link.body().station != row.station {
                        reasons.push("stored index columns do not match the signed link".into());
                    }
                    match keys.get(&row.station) {
                        Some(Ok(key)) => {
                            if let Err(e) = link.verify_signature(key) {
                                reasons.push(e.to_string());
                            }
                        }
                        _ => reasons.push(format!("station {} has no usable key", row.station)),
                    }
                    let from = i64::try_from(row.from_seq).unwrap_or(i64::MAX);
                    match super::links::pred_in(conn, &row.station, from + 1)
                        .map_err(|e| self.sql(e))?
                    {
                        Some(h) if h == link.body().from_hash => {}
                        Some(_) => reasons.push(format!(
                            "starts from sequence {} but the centre holds another element there",
                            row.from_seq
                        )),
                        None => reasons.push(format!(
                            "starts from sequence {}, which the centre does not hold",
                            row.from_seq
                        )),
                    }
                }
            }
            if !reasons.is_empty() {
                problems.push(Problem {
                    id: format!("{} restore link at sequence {}", row.station, row.seq),
                    reason: reasons.join("; "),
                });
            }
            by_place.insert((row.station, seq), row.hash);
        }
        Ok(by_place)
    }

    /// Every payload file no envelope names: hashed against its name; a damaged one is moved
    /// aside (nothing refers to it, a new upload would replace it), an intact one is an orphan.
    fn check_unnamed_blobs(
        &self,
        named: &std::collections::HashSet<String>,
        problems: &mut Vec<Problem>,
    ) -> Result<(Vec<String>, Vec<String>), CentreError> {
        let (mut orphans, mut repaired) = (Vec::new(), Vec::new());
        let entries =
            std::fs::read_dir(&self.blobs).map_err(|e| CentreError::io(&self.blobs, e))?;
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.len() == 64 && n.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .filter(|n| !named.contains(n))
            .collect();
        names.sort();
        for name in names {
            let writer = self.blob_writer()?;
            match self.intact_len(&writer, &name) {
                Ok(Some(_)) => orphans.push(name),
                Ok(None) => repaired.push(format!(
                    "payload file {name} did not hash to its name: moved to blobs/damaged/"
                )),
                Err(e) => problems.push(Problem {
                    id: format!("payload {name}"),
                    reason: format!("cannot check or move aside: {e}"),
                }),
            }
        }
        Ok((orphans, repaired))
    }

    /// Counts of stations and records.
    pub fn stats(&self) -> Result<Stats, CentreError> {
        let conn = lock(&self.conn);
        self.stats_in(&conn)
    }

    pub(super) fn stats_in(&self, conn: &rusqlite::Connection) -> Result<Stats, CentreError> {
        conn.query_row(
            "SELECT (SELECT count(*) FROM stations),
                    (SELECT coalesce(sum(n), 0) FROM record_counts),
                    (SELECT coalesce(sum(n), 0) FROM record_counts WHERE status = 'verified'),
                    (SELECT count(*) FROM (
                        SELECT DISTINCT r.station, r.id FROM rejections r
                        WHERE NOT EXISTS (SELECT 1 FROM envelopes e
                                          WHERE e.id = r.id AND e.station = r.station)))
                    + (SELECT coalesce(sum(n), 0) FROM record_counts WHERE status = 'rejected')",
            [],
            |r| {
                Ok(Stats {
                    stations: r.get::<_, i64>(0)? as u64,
                    records: r.get::<_, i64>(1)? as u64,
                    verified: r.get::<_, i64>(2)? as u64,
                    rejected: r.get::<_, i64>(3)? as u64,
                })
            },
        )
        .map_err(|e| self.sql(e))
    }
}

/// Compare `record_counts` with a real count of `envelopes`; rebuild it when they differ.
/// Returns whether it had to.
fn check_counters(conn: &rusqlite::Connection) -> rusqlite::Result<bool> {
    let differs: i64 = conn.query_row(
        "WITH real AS (SELECT station, status, coalesce(issuance, '') AS issuance, count(*) AS n
                       FROM envelopes GROUP BY 1, 2, 3),
              kept AS (SELECT station, status, issuance, n FROM record_counts WHERE n <> 0)
         SELECT (SELECT count(*) FROM (SELECT * FROM real EXCEPT SELECT * FROM kept))
              + (SELECT count(*) FROM (SELECT * FROM kept EXCEPT SELECT * FROM real))",
        [],
        |r| r.get(0),
    )?;
    if differs == 0 {
        return Ok(false);
    }
    tracing::warn!("record counters disagreed with the records: rebuilding them");
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         DELETE FROM record_counts;
         INSERT INTO record_counts (station, status, issuance, n)
             SELECT station, status, coalesce(issuance, ''), count(*) FROM envelopes
             GROUP BY 1, 2, 3;
         COMMIT;",
    )?;
    Ok(true)
}
