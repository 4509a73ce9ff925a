//! What central staff ask of the store: the list of records, the full re-check, the counts.

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use tasjil_sync::keys::parse_verifying_key;
use tasjil_sync::record::{Envelope, Signed, GENESIS};
use tasjil_sync::sha256_hex;

use std::collections::{HashMap, HashSet};

use rusqlite::OptionalExtension;

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

/// Where a page of `list` ends: the next page starts after it. Written `seq.station`, the shape
/// of the console's cursor (the station comes last and takes the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    pub station: String,
    pub seq: u64,
}

impl ListCursor {
    pub fn encode(&self) -> String {
        format!("{}.{}", self.seq, self.station)
    }

    pub fn decode(s: &str) -> Option<ListCursor> {
        let (seq, station) = s.split_once('.')?;
        Some(ListCursor {
            seq: seq.parse().ok()?,
            station: station.to_string(),
        })
    }
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
    /// What this run checked record by record.
    #[serde(default)]
    pub checked: Checked,
}

/// What one `verify` checked record by record (the structure check, restore links, counters and
/// unnamed payload files are checked whole every time).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    /// `full` or `incremental`.
    pub mode: String,
    /// Records stored since the last run (incremental).
    pub new: u64,
    /// Records already checked, checked again as this run's share of the rotating sample.
    pub sampled: u64,
    /// Every record (full).
    pub full: u64,
}

/// How much [`CentreStore::verify`] checks record by record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyScope {
    /// Every record, every payload.
    Full,
    /// What is new since the last run, plus `sample` records already checked.
    Incremental { sample: u64 },
}

/// The default sample of an incremental verify: 1 % of the records, at least 100.
pub fn default_sample(records: u64) -> u64 {
    (records / 100).max(100)
}

/// Records checked together (read, then hashed and verified across the cores).
const BATCH: usize = 512;

/// One envelope row as read for checking.
struct Row {
    station: String,
    seq: i64,
    id: String,
    hash: String,
    bytes: Vec<u8>,
    payload_sha256: String,
    payload_len: i64,
    /// Rejected at the station by its supervisor: stored without a payload.
    withdrawn: bool,
}

impl Row {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
        Ok(Row {
            station: r.get(0)?,
            seq: r.get(1)?,
            id: r.get(2)?,
            hash: r.get(3)?,
            bytes: r.get(4)?,
            payload_sha256: r.get(5)?,
            payload_len: r.get(6)?,
            withdrawn: r.get("withdrawn")?,
        })
    }
}

/// A row after the checks that need no neighbour.
struct Done {
    row: Row,
    computed: String,
    reasons: Vec<String>,
    env: Option<Envelope<Signed>>,
}

/// What a chain walk found.
#[derive(Default)]
struct Walked {
    records: u64,
    problems: Vec<Problem>,
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
    /// Every stored envelope, by station and sequence (collected: see [`Self::list_each`] for
    /// an archive of any size).
    pub fn list(&self) -> Result<Vec<CentreRecord>, CentreError> {
        let mut out = Vec::new();
        self.list_each(None, None, |r| {
            out.push(r);
            Ok::<_, CentreError>(())
        })?;
        Ok(out)
    }

    /// Stored envelopes by station and sequence, after `after` and at most `limit` of them,
    /// each handed to `each` as it is read (nothing is collected, so memory stays flat however
    /// large the archive). Keyset paging like the console's: a page costs the same wherever it
    /// starts. Returns the cursor of the next page when `limit` rows were handed over.
    pub fn list_each<E: From<CentreError>>(
        &self,
        after: Option<&ListCursor>,
        limit: Option<u64>,
        mut each: impl FnMut(CentreRecord) -> Result<(), E>,
    ) -> Result<Option<ListCursor>, E> {
        let conn = lock(&self.conn);
        let mut stmt = conn
            .prepare(
                "SELECT id, station, seq, status, received_ms, payload_sha256, payload_len
                 FROM envelopes WHERE (station, seq) > (?1, ?2)
                 ORDER BY station, seq LIMIT ?3",
            )
            .map_err(|e| self.sql(e))?;
        let (station, seq) = after.map_or(("", 0), |c| (c.station.as_str(), c.seq));
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        let limit_sql = limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let mut rows = stmt
            .query(rusqlite::params![station, seq, limit_sql])
            .map_err(|e| self.sql(e))?;
        let (mut handed, mut last) = (0u64, None);
        while let Some(r) = rows.next().map_err(|e| self.sql(e))? {
            let record = (|| {
                Ok(CentreRecord {
                    id: r.get(0)?,
                    station: r.get(1)?,
                    seq: r.get::<_, i64>(2)? as u64,
                    status: r.get(3)?,
                    received_ms: r.get(4)?,
                    payload_sha256: r.get(5)?,
                    payload_len: r.get::<_, i64>(6)? as u64,
                })
            })()
            .map_err(|e| self.sql(e))?;
            last = Some(ListCursor {
                station: record.station.clone(),
                seq: record.seq,
            });
            handed += 1;
            each(record)?;
        }
        Ok(last.filter(|_| limit == Some(handed)))
    }

    /// Re-check everything stored, and name each record that fails and why: SQLite's structure
    /// check; per record, the signed bytes parse and agree with the index columns, the station
    /// signature against the registered key, the officer co-signature, the chain from sequence 1
    /// per station, and the payload file's presence, length and SHA-256. `verify --full`.
    pub fn verify_all(&self) -> Result<VerifyReport, CentreError> {
        self.verify(VerifyScope::Full)
    }

    /// `verify`: the full check for `VerifyScope::Full`; for `Incremental`, every check above on
    /// the records stored since the last run (each station's chain picks up from the last record
    /// that passed, at the hash it had then: `verify_marks`), plus `sample` records already
    /// checked, rotating through the archive (`verify_sample`), each against the hash its
    /// predecessor holds. Both: the structure check, every restore link, the counters, and every
    /// payload file no record names. Record checks hash and verify signatures on every core.
    pub fn verify(&self, scope: VerifyScope) -> Result<VerifyReport, CentreError> {
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

        let mut keys: HashMap<String, Result<VerifyingKey, String>> = HashMap::new();
        {
            let mut stmt = conn
                .prepare("SELECT id, public_key FROM stations ORDER BY id")
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
        // holds with the hash it names. Records after a link follow it (see `walk`).
        let links = self.check_links(&conn, &keys, &mut problems)?;

        let old_marks: HashMap<String, (u64, String)> = {
            let mut stmt = conn
                .prepare("SELECT station, seq, hash FROM verify_marks")
                .map_err(|e| self.sql(e))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        (r.get::<_, i64>(1)? as u64, r.get(2)?),
                    ))
                })
                .and_then(|rows| rows.collect::<Result<HashMap<_, _>, _>>())
                .map_err(|e| self.sql(e))?;
            rows
        };
        let full = matches!(scope, VerifyScope::Full);
        let mut stations: Vec<String> = {
            let mut stmt = conn
                .prepare("SELECT DISTINCT station FROM envelopes")
                .map_err(|e| self.sql(e))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| self.sql(e))?;
            rows
        };
        stations.sort();
        let mut walked = Walked::default();
        let mut marks: HashMap<String, (u64, String)> = HashMap::new();
        for station in &stations {
            let start = match (full, old_marks.get(station)) {
                (false, Some(m)) => m.clone(),
                _ => (0, GENESIS.to_string()),
            };
            let mark = self.walk(&conn, station, start, &keys, &links, &mut walked)?;
            if let Some(m) = mark {
                marks.insert(station.clone(), m);
            }
        }
        let mut checked = Checked {
            mode: if full { "full" } else { "incremental" }.into(),
            new: if full { 0 } else { walked.records },
            sampled: 0,
            full: if full { walked.records } else { 0 },
        };
        let (mut records, mut bad) = (walked.records, walked.problems.len() as u64);
        problems.append(&mut walked.problems);
        if let VerifyScope::Incremental { sample } = scope {
            records = conn
                .query_row("SELECT count(*) FROM envelopes", [], |r| r.get::<_, i64>(0))
                .map_err(|e| self.sql(e))? as u64;
            let (sampled, mut found) =
                self.sample(&conn, sample, &old_marks, &keys, &links, &mut marks)?;
            checked.sampled = sampled;
            bad += found.len() as u64;
            problems.append(&mut found);
        }
        self.save_marks(&conn, &marks)?;
        let named: HashSet<String> = {
            let mut stmt = conn
                .prepare("SELECT DISTINCT payload_sha256 FROM envelopes")
                .map_err(|e| self.sql(e))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect::<Result<HashSet<_>, _>>())
                .map_err(|e| self.sql(e))?;
            rows
        };
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
            valid: records.saturating_sub(bad),
            problems,
            orphans,
            repaired,
            checked,
        })
    }

    /// Check `station`'s records after `start` (sequence, hash) in order, `BATCH` at a time (the
    /// hashing and signatures of a batch on every core, then its chain links in order). Returns
    /// the new mark: the last record of the unbroken run of passing records from `start`.
    fn walk(
        &self,
        conn: &rusqlite::Connection,
        station: &str,
        start: (u64, String),
        keys: &HashMap<String, Result<VerifyingKey, String>>,
        links: &HashMap<(String, i64), String>,
        out: &mut Walked,
    ) -> Result<Option<(u64, String)>, CentreError> {
        let mut stmt = conn
            .prepare(
                "SELECT station, seq, id, hash, envelope, payload_sha256, payload_len,
                        status = 'withdrawn' AS withdrawn
                 FROM envelopes WHERE station = ?1 AND seq > ?2 ORDER BY seq",
            )
            .map_err(|e| self.sql(e))?;
        let from = i64::try_from(start.0).unwrap_or(i64::MAX);
        let mut rows = stmt
            .query(rusqlite::params![station, from])
            .map_err(|e| self.sql(e))?;
        let mut mark = (start.0 > 0).then(|| start.clone());
        let mut unbroken = true;
        let (mut expected_seq, mut expected_prev) = (start.0 + 1, start.1);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let next = rows.next().map_err(|e| self.sql(e))?;
            if let Some(r) = next {
                batch.push(Row::read(r).map_err(|e| self.sql(e))?);
                if batch.len() < BATCH {
                    continue;
                }
            }
            if batch.is_empty() {
                break;
            }
            for mut done in self.check_rows(std::mem::take(&mut batch), keys)? {
                let seq = done.row.seq;
                out.records += 1;
                // A record after a restore link follows the link, not the record before it.
                if let Some(link_hash) = links.get(&(done.row.station.clone(), seq - 1)) {
                    expected_seq = u64::try_from(seq).unwrap_or(0);
                    expected_prev.clone_from(link_hash);
                }
                if let Some(env) = &done.env {
                    if let Err(e) = env.verify_chain_link(expected_seq, &expected_prev) {
                        done.reasons.push(e.to_string());
                    }
                }
                // A damaged record should not also make its successor look broken: carry the
                // chain on from the hash the successor was built on (the stored index) when this
                // one failed.
                let passed = done.reasons.is_empty();
                expected_prev = if passed {
                    done.computed.clone()
                } else {
                    done.row.hash.clone()
                };
                expected_seq = u64::try_from(seq).unwrap_or(0) + 1;
                if passed {
                    if unbroken {
                        mark = Some((u64::try_from(seq).unwrap_or(0), done.computed));
                    }
                } else {
                    unbroken = false;
                    out.problems.push(Problem {
                        id: done.row.id,
                        reason: done.reasons.join("; "),
                    });
                }
            }
        }
        Ok(mark)
    }

    /// Check up to `n` records already checked (at or below their station's old mark), from
    /// where the last sample stopped, wrapping round. A record that fails lowers its station's
    /// mark to before it, so the next run walks from there again.
    fn sample(
        &self,
        conn: &rusqlite::Connection,
        n: u64,
        old_marks: &HashMap<String, (u64, String)>,
        keys: &HashMap<String, Result<VerifyingKey, String>>,
        links: &HashMap<(String, i64), String>,
        marks: &mut HashMap<String, (u64, String)>,
    ) -> Result<(u64, Vec<Problem>), CentreError> {
        let after: i64 = conn
            .query_row(
                "SELECT coalesce((SELECT after_rowid FROM verify_sample), 0)",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))?;
        let mut stmt = conn
            .prepare(
                "SELECT station, seq, id, hash, envelope, payload_sha256, payload_len, rowid,
                        status = 'withdrawn' AS withdrawn
                 FROM envelopes WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
            )
            .map_err(|e| self.sql(e))?;
        let (mut picked, mut last) = (Vec::new(), after);
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        for (from, wrapped) in [(after, false), (0, true)] {
            let want = limit - picked.len() as i64;
            if want <= 0 {
                break;
            }
            let mut rows = stmt
                .query(rusqlite::params![from, want])
                .map_err(|e| self.sql(e))?;
            while let Some(r) = rows.next().map_err(|e| self.sql(e))? {
                let rowid: i64 = r.get(7).map_err(|e| self.sql(e))?;
                if wrapped && rowid > after {
                    break;
                }
                last = rowid;
                let row = Row::read(r).map_err(|e| self.sql(e))?;
                let already = old_marks
                    .get(&row.station)
                    .is_some_and(|(m, _)| u64::try_from(row.seq).unwrap_or(0) <= *m);
                if already {
                    picked.push(row);
                }
            }
        }
        drop(stmt);
        let sampled = picked.len() as u64;
        let mut problems = Vec::new();
        for mut done in self.check_rows(picked, keys)? {
            let (station, seq) = (done.row.station.clone(), done.row.seq);
            let prev = match links.get(&(station.clone(), seq - 1)) {
                Some(h) => Some(h.clone()),
                None if seq == 1 => Some(GENESIS.to_string()),
                None => conn
                    .query_row(
                        "SELECT hash FROM envelopes WHERE station = ?1 AND seq = ?2",
                        rusqlite::params![station, seq - 1],
                        |r| r.get::<_, String>(0),
                    )
                    .optional()
                    .map_err(|e| self.sql(e))?,
            };
            if let Some(env) = &done.env {
                let expected_seq = u64::try_from(seq).unwrap_or(0);
                match prev {
                    Some(prev) => {
                        if let Err(e) = env.verify_chain_link(expected_seq, &prev) {
                            done.reasons.push(e.to_string());
                        }
                    }
                    None => done.reasons.push(format!(
                        "the centre holds no sequence {} before it",
                        seq - 1
                    )),
                }
            }
            if !done.reasons.is_empty() {
                let below = u64::try_from(seq - 1).unwrap_or(0);
                let lowered = match marks.get(&station) {
                    Some((m, _)) if *m <= below => None,
                    _ if below == 0 => Some(None),
                    _ => Some(
                        conn.query_row(
                            "SELECT hash FROM envelopes WHERE station = ?1 AND seq = ?2",
                            rusqlite::params![station, seq - 1],
                            |r| r.get::<_, String>(0),
                        )
                        .optional()
                        .map_err(|e| self.sql(e))?
                        .map(|h| (below, h)),
                    ),
                };
                match lowered {
                    Some(Some(m)) => {
                        marks.insert(station.clone(), m);
                    }
                    Some(None) => {
                        marks.remove(&station);
                    }
                    None => {}
                }
                problems.push(Problem {
                    id: done.row.id,
                    reason: done.reasons.join("; "),
                });
            }
        }
        conn.execute(
            "INSERT INTO verify_sample (one, after_rowid) VALUES (1, ?1)
             ON CONFLICT (one) DO UPDATE SET after_rowid = excluded.after_rowid",
            [last],
        )
        .map_err(|e| self.sql(e))?;
        Ok((sampled, problems))
    }

    /// Replace the marks with `marks` (a station without one starts from sequence 1 next time).
    fn save_marks(
        &self,
        conn: &rusqlite::Connection,
        marks: &HashMap<String, (u64, String)>,
    ) -> Result<(), CentreError> {
        let tx = conn.unchecked_transaction().map_err(|e| self.sql(e))?;
        tx.execute("DELETE FROM verify_marks", [])
            .map_err(|e| self.sql(e))?;
        {
            let mut stmt = tx
                .prepare("INSERT INTO verify_marks (station, seq, hash) VALUES (?1, ?2, ?3)")
                .map_err(|e| self.sql(e))?;
            for (station, (seq, hash)) in marks {
                let seq = i64::try_from(*seq).unwrap_or(i64::MAX);
                stmt.execute(rusqlite::params![station, seq, hash])
                    .map_err(|e| self.sql(e))?;
            }
        }
        tx.commit().map_err(|e| self.sql(e))
    }

    /// Every check of one record that does not depend on its neighbours (hash, signed bytes
    /// against the index, station signature, officer co-signature, payload file), on every core.
    fn check_rows(
        &self,
        rows: Vec<Row>,
        keys: &HashMap<String, Result<VerifyingKey, String>>,
    ) -> Result<Vec<Done>, CentreError> {
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(rows.len().max(1));
        if threads <= 1 {
            return rows.into_iter().map(|r| self.check_row(r, keys)).collect();
        }
        let per = rows.len().div_ceil(threads);
        let mut parts: Vec<Vec<Row>> = Vec::with_capacity(threads);
        let mut rows = rows.into_iter();
        loop {
            let part: Vec<Row> = rows.by_ref().take(per).collect();
            if part.is_empty() {
                break;
            }
            parts.push(part);
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = parts
                .into_iter()
                .map(|part| {
                    scope.spawn(move || {
                        part.into_iter()
                            .map(|r| self.check_row(r, keys))
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            let mut out = Vec::new();
            for h in handles {
                match h.join() {
                    Ok(done) => out.extend(done?),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            Ok(out)
        })
    }

    fn check_row(
        &self,
        row: Row,
        keys: &HashMap<String, Result<VerifyingKey, String>>,
    ) -> Result<Done, CentreError> {
        let mut reasons: Vec<String> = Vec::new();
        let computed = sha256_hex(&row.bytes);
        let env = match Envelope::<Signed>::from_bytes(&row.bytes) {
            Err(e) => {
                reasons.push(e.to_string());
                None
            }
            Ok(env) => {
                let b = env.body();
                let index_ok = b.id == row.id
                    && b.station == row.station
                    && i64::try_from(b.seq).ok() == Some(row.seq)
                    && b.payload.sha256 == row.payload_sha256
                    && i64::try_from(b.payload.len).ok() == Some(row.payload_len)
                    && computed == row.hash;
                if !index_ok {
                    reasons.push("stored index columns do not match the signed envelope".into());
                }
                match keys.get(&row.station) {
                    Some(Ok(key)) => {
                        if let Err(e) = env.verify_signature(key) {
                            reasons.push(e.to_string());
                        }
                    }
                    Some(Err(e)) => reasons.push(format!(
                        "registered key of station {} is unreadable: {e}",
                        row.station
                    )),
                    None => reasons.push(format!("station {} is not registered", row.station)),
                }
                if let Err(e) = check_officer(&env) {
                    reasons.push(e.to_string());
                }
                match self.read_blob(&b.payload.sha256) {
                    // Rejected at the station: its payload never came.
                    Err(CentreError::BlobMissing(_)) if row.withdrawn => {}
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
                Some(env)
            }
        };
        Ok(Done {
            row,
            computed,
            reasons,
            env,
        })
    }

    /// Check every restore link; returns `(station, seq) -> hash` of each, for the chain walk.
    fn check_links(
        &self,
        conn: &rusqlite::Connection,
        keys: &HashMap<String, Result<VerifyingKey, String>>,
        problems: &mut Vec<Problem>,
    ) -> Result<HashMap<(String, i64), String>, CentreError> {
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
        named: &HashSet<String>,
        problems: &mut Vec<Problem>,
    ) -> Result<(Vec<String>, Vec<String>), CentreError> {
        let (mut orphans, mut repaired) = (Vec::new(), Vec::new());
        let mut names: Vec<String> = self
            .blob_names()?
            .into_iter()
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
                    + (SELECT coalesce(sum(n), 0) FROM record_counts
                       WHERE status IN ('rejected', 'withdrawn'))",
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
