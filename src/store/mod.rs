//! The station's durable store: one SQLite file, one writer.
//!
//! Owns the schema (ordered SQL migrations compiled in), the pragmas that make a commit survive a
//! power cut (WAL + `synchronous=FULL`), and the audit chain. It stores only signed envelopes and
//! sealed payloads: nothing sensitive is ever written here in plaintext. It does not verify
//! signatures (see `crate::verify`), and it never talks to devices or the network.

pub mod review;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use rusqlite_migration::{Migrations, M};
use serde::{Deserialize, Serialize};
use tasjil_sync::keys::{parse_signature, verify};
use tasjil_sync::ledger::{
    day_of_ms, doc_name, split_name, Approval, Ledger, PeerState, RecordEntry, SavePoint,
};
use tasjil_sync::{sha256_hex, to_canonical, Envelope, Signed, StationKey, GENESIS};

const AUDIT_DOMAIN: &[u8] = b"tasjil/audit/v1\0";

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("migrations/0001_init.sql")),
        M::up(include_str!("migrations/0002_retention.sql")),
        M::up(include_str!("migrations/0003_ledgers.sql")),
        M::up(include_str!("migrations/0004_bundles.sql")),
        M::up(include_str!("migrations/0005_issuance.sql")),
        M::up(include_str!("migrations/0006_signed_verdicts.sql")),
        M::up(include_str!("migrations/0007_roster.sql")),
        M::up(include_str!("migrations/0008_restores.sql")),
        M::up(include_str!("migrations/0009_ledger_chunks.sql")),
    ])
}

/// One row of the `officers` table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OfficerRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub public_key: String,
    pub registered_ms: i64,
}

/// Store failures, worded for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the disk is full: nothing was saved by this step; free some space and try again")]
    Full,
    #[error("the station database {0} is read-only: check the disk and its permissions")]
    ReadOnly(PathBuf),
    #[error("the station database {path} is damaged or is not a Tasjil database ({detail}); restore it from the last backup (see docs/OPERATIONS.md)")]
    Damaged { path: PathBuf, detail: String },
    #[error("the station database is busy: another program holds it; try again")]
    Busy,
    #[error("database schema upgrade failed: {0}")]
    Migration(String),
    #[error("cannot encode record: {0}")]
    Encode(String),
    /// The station's rules refuse the operation; the message says why and what to do.
    #[error("{0}")]
    Refused(String),
    #[error("database error: {0}")]
    Sqlite(#[source] rusqlite::Error),
}

/// Why a supervisor may not approve `id`.
fn own_record(id: &str, supervisor: &str) -> String {
    format!(
        "record {id} was enrolled by {supervisor}: a supervisor does not approve their own \
         enrolments; another supervisor must (or allow it with [approval] self_approval = true)"
    )
}

impl StoreError {
    fn from_sqlite(path: &Path, e: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode as C;
        if let rusqlite::Error::SqliteFailure(f, ref msg) = e {
            match f.code {
                C::DiskFull => return StoreError::Full,
                C::ReadOnly => return StoreError::ReadOnly(path.to_path_buf()),
                C::DatabaseCorrupt | C::NotADatabase => {
                    return StoreError::Damaged {
                        path: path.to_path_buf(),
                        detail: msg.clone().unwrap_or_else(|| f.to_string()),
                    }
                }
                C::DatabaseBusy | C::DatabaseLocked => return StoreError::Busy,
                _ => {}
            }
        }
        StoreError::Sqlite(e)
    }
}

/// One entry of the audit chain, exactly as hashed and signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    pub seq: u64,
    pub at_ms: i64,
    pub action: String,
    pub actor: String,
    pub detail: serde_json::Value,
    pub prev: String,
}

impl AuditEntry {
    pub fn signing_message(bytes: &[u8]) -> Vec<u8> {
        let mut m = AUDIT_DOMAIN.to_vec();
        m.extend_from_slice(sha256_hex(bytes).as_bytes());
        m
    }
}

/// A raw audit row, for verification.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub seq: i64,
    pub entry: Vec<u8>,
    pub sig: String,
}

/// A raw envelope row, for listing and verification.
#[derive(Debug, Clone)]
pub struct EnvelopeRow {
    pub seq: i64,
    pub id: String,
    pub hash: String,
    pub officer: String,
    pub kind: String,
    pub created_ms: i64,
    pub payload: String,
    pub envelope: Vec<u8>,
    pub approved: bool,
    pub exported: bool,
    pub status: &'static str,
    pub rejected_reason: Option<String>,
    /// The centre's issuance status (`accepted`, `issued`, `reenrol`), once it set one.
    pub issuance: Option<String>,
    pub issuance_reason: Option<String>,
}

/// `(peer, last successful sync in Unix ms, last error)`.
pub type PeerRow = (String, Option<i64>, Option<String>);

/// A bundle written to a stick, as [`Store::record_export`] keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportRow {
    pub bundle_id: String,
    pub file: String,
    pub manifest_sha256: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub bytes: u64,
    pub supervisor: String,
}

/// What applying a receipt changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReceiptOutcome {
    /// Records the centre verified (acknowledged here now, or before).
    pub verified: u64,
    /// Records the centre rejected, with its reason.
    pub rejected: Vec<(String, String)>,
    /// Records named by the receipt that this station does not hold (with that envelope).
    pub unknown: Vec<String>,
    /// Rows whose state changed.
    pub changed: u64,
    /// The very same receipt was imported before.
    pub already_imported: bool,
    /// Records whose issuance status (accepted, card produced, re-enrol needed) changed.
    pub issuance_changed: u64,
}

/// Why the station holds a record acknowledged: a verdict the centre signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AckProof {
    /// The centre's signed status entry from the station-day ledger.
    Ledger {
        entry: tasjil_sync::ledger::StatusEntry,
    },
    /// A signed USB receipt, kept in `receipts.receipt`, naming the envelope as verified.
    Receipt { receipt: String },
}

impl AckProof {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
    pub fn parse(s: &str) -> Option<AckProof> {
        serde_json::from_str(s).ok()
    }
}

/// What a retention purge did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Purge {
    /// Payloads emptied.
    pub purged: usize,
    /// Records kept because their acknowledgement did not verify, and why.
    pub kept: Vec<(String, String)>,
}

/// Record counts for `tasjil status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub records: u64,
    pub approved: u64,
    pub unsent: u64,
    pub acknowledged: u64,
    pub rejected: u64,
    /// Exported to a USB bundle and not acknowledged yet.
    pub exported: u64,
    /// Accepted for production at the centre (no card yet).
    pub accepted: u64,
    /// Card produced.
    pub issued: u64,
    /// The centre needs the citizen enrolled again: the call-back list.
    pub reenrol: u64,
}

/// A restore link as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreRow {
    pub seq: u64,
    pub hash: String,
    /// Canonical bytes as signed.
    pub link: Vec<u8>,
    /// When the centre stored it (by sync); `None` until then.
    pub sent_ms: Option<i64>,
}

/// The open store. Exactly one per process; the station's lock file keeps it to one writer process.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// This process's Automerge actor for ledger writes: fresh at every open, never reused.
    actor: [u8; 16],
    /// The ledgers this writer changed, kept loaded between transactions.
    ledgers: LedgerCache,
}

impl Store {
    /// Open (creating if needed) and migrate the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path).map_err(|e| StoreError::from_sqlite(path, e))?;
        let mut actor = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut actor);
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            actor,
            ledgers: LedgerCache::default(),
        };
        store.setup().map_err(|e| match e {
            StoreError::Sqlite(e) => StoreError::from_sqlite(path, e),
            other => other,
        })?;
        Ok(store)
    }

    fn setup(&mut self) -> Result<(), StoreError> {
        let sql = |e| StoreError::from_sqlite(&self.path, e);
        self.conn
            .busy_timeout(Duration::from_secs(10))
            .map_err(sql)?;
        // Reading the schema first turns "not a database" into a clear error before anything writes.
        self.conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(sql)?;
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(sql)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Migration(format!(
                "journal mode is {mode}, expected wal"
            )));
        }
        self.conn
            .pragma_update(None, "synchronous", "FULL")
            .map_err(sql)?;
        self.conn
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(sql)?;
        migrations().to_latest(&mut self.conn).map_err(|e| match e {
            rusqlite_migration::Error::RusqliteError { err, .. } => {
                StoreError::from_sqlite(&self.path, err)
            }
            other => StoreError::Migration(other.to_string()),
        })
    }

    fn sql(&self, e: rusqlite::Error) -> StoreError {
        StoreError::from_sqlite(&self.path, e)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn config(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM config WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.sql(e))
    }

    pub fn set_config(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO config (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
            .map_err(|e| self.sql(e))
    }

    /// Register (or confirm) a badge key. A different key for a known id is refused.
    pub fn register_officer(
        &mut self,
        id: &str,
        name: &str,
        role: &str,
        public_key: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let known: Option<String> = self
            .conn
            .query_row("SELECT public_key FROM officers WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.sql(e))?;
        match known {
            Some(k) if k == public_key => Ok(false),
            Some(_) => Err(StoreError::Encode(format!(
                "officer {id} is already registered with a different badge key"
            ))),
            None => {
                self.conn
                    .execute(
                        "INSERT INTO officers (id, name, role, public_key, registered_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![id, name, role, public_key, now_ms],
                    )
                    .map_err(|e| self.sql(e))?;
                Ok(true)
            }
        }
    }

    /// Record what the centre's roster says of a badge that just passed its check: its name,
    /// role and key replace whatever the station knew (a reissued badge has a new key).
    pub fn upsert_officer(
        &mut self,
        id: &str,
        name: &str,
        role: &str,
        public_key: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO officers (id, name, role, public_key, registered_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role,
                   public_key = excluded.public_key, override_reason = NULL",
                params![id, name, role, public_key, now_ms],
            )
            .map(drop)
            .map_err(|e| self.sql(e))
    }

    /// Register a local emergency override for a badge the roster does not list (audited by
    /// the caller). Replaces an earlier override of the same id.
    pub fn register_override(
        &mut self,
        id: &str,
        name: &str,
        role: &str,
        public_key: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO officers (id, name, role, public_key, registered_ms, override_reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role,
                   public_key = excluded.public_key, override_reason = excluded.override_reason",
                params![id, name, role, public_key, now_ms, reason],
            )
            .map(drop)
            .map_err(|e| self.sql(e))
    }

    /// `(role, reason)` of the emergency override for badge `public_key` of officer `id`.
    pub fn officer_override(
        &self,
        id: &str,
        public_key: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        self.conn
            .query_row(
                "SELECT role, override_reason FROM officers
                 WHERE id = ?1 AND public_key = ?2 AND override_reason IS NOT NULL",
                params![id, public_key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// Make a registered officer a supervisor (same badge key); `false` when `id` is not
    /// registered with `public_key` or is a supervisor already.
    pub fn promote_to_supervisor(
        &mut self,
        id: &str,
        public_key: &str,
    ) -> Result<bool, StoreError> {
        self.conn
            .execute(
                "UPDATE officers SET role = 'supervisor' WHERE id = ?1 AND public_key = ?2 AND role <> 'supervisor'",
                params![id, public_key],
            )
            .map(|n| n == 1)
            .map_err(|e| self.sql(e))
    }

    /// Every registered officer and supervisor, by id.
    pub fn officers(&self) -> Result<Vec<OfficerRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, name, role, public_key, registered_ms FROM officers ORDER BY id")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(OfficerRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    role: r.get(2)?,
                    public_key: r.get(3)?,
                    registered_ms: r.get(4)?,
                })
            })
            .map_err(|e| self.sql(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.sql(e))?;
        Ok(rows)
    }

    pub fn officer_key(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT public_key FROM officers WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// `(seq, hash)` of the last element of the chain — an envelope, or the restore link that
    /// follows the restored head — or `(0, GENESIS)` for an empty chain.
    pub fn chain_head(&self) -> Result<(u64, String), StoreError> {
        let head: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT seq, hash FROM (SELECT seq, hash FROM envelopes
                                        UNION ALL SELECT seq, hash FROM restores)
                 ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        Ok(head.map_or((0, GENESIS.to_string()), |(s, h)| (s as u64, h)))
    }

    /// Append an action to the audit chain in its own durable transaction.
    pub fn audit(
        &mut self,
        key: &StationKey,
        action: &str,
        actor: &str,
        detail: serde_json::Value,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(|e| StoreError::from_sqlite(&path, e))?;
        let seq =
            append_audit(&tx, key, action, actor, detail, now_ms).map_err(|e| lift(&path, e))?;
        tx.commit().map_err(|e| StoreError::from_sqlite(&path, e))?;
        Ok(seq)
    }

    /// Store a signed envelope, its sealed payload and the audit entry that records it, in one
    /// transaction. When this returns `Ok`, the enrolment is on disk (WAL fsynced, `synchronous=FULL`).
    pub fn commit_enrolment(
        &mut self,
        key: &StationKey,
        envelope: &Envelope<Signed>,
        sealed: &[u8],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let body = envelope.body();
        let bytes = envelope
            .to_bytes()
            .map_err(|e| StoreError::Encode(e.to_string()))?;
        let hash = sha256_hex(&bytes);
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(|e| StoreError::from_sqlite(&path, e))?;
        let step = |tx: &Transaction| -> rusqlite::Result<()> {
            tx.execute(
                "INSERT OR IGNORE INTO payloads (sha256, len, sealed) VALUES (?1, ?2, ?3)",
                params![body.payload.sha256, body.payload.len as i64, sealed],
            )?;
            tx.execute(
                "INSERT INTO envelopes (seq, id, hash, officer, kind, created_ms, payload, envelope)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    body.seq as i64,
                    body.id,
                    hash,
                    body.officer,
                    body.kind.as_str(),
                    body.captured.finished_ms,
                    body.payload.sha256,
                    bytes
                ],
            )?;
            Ok(())
        };
        step(&tx).map_err(|e| StoreError::from_sqlite(&path, e))?;
        let entry = RecordEntry {
            id: body.id.clone(),
            envelope_hash: hash.clone(),
            seq: body.seq,
            officer: body.officer.clone(),
            time_ms: body.captured.finished_ms,
        };
        let mut touched = LedgerWrites::new(&mut self.ledgers, &self.actor);
        touched.change(
            &tx,
            &path,
            &body.station,
            &day_of_ms(body.captured.finished_ms),
            |l| l.add_record(&entry),
        )?;
        touched.save(&tx, &path)?;
        append_audit(
            &tx,
            key,
            "enrol",
            &body.officer,
            serde_json::json!({"id": body.id, "seq": body.seq, "kind": body.kind.as_str(), "envelope": hash}),
            now_ms,
        )
        .map_err(|e| lift(&path, e))?;
        tx.commit().map_err(|e| StoreError::from_sqlite(&path, e))?;
        touched.committed();
        Ok(())
    }

    /// Record a restore link (see [`tasjil_sync::RestoreLink`]) and its audit entry in one
    /// transaction. The per-peer ledger sync states of the backup are dropped: they describe
    /// what the centre had seen of a copy that has since moved on, and a fresh state only costs
    /// a little more traffic at the next sync.
    pub fn record_restore(
        &mut self,
        key: &StationKey,
        link: &tasjil_sync::RestoreLink,
        detail: serde_json::Value,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let bytes = link
            .to_bytes()
            .map_err(|e| StoreError::Encode(e.to_string()))?;
        let hash = sha256_hex(&bytes);
        let body = link.body();
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(|e| StoreError::from_sqlite(&path, e))?;
        tx.execute(
            "INSERT INTO restores (seq, hash, from_seq, link, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                body.seq as i64,
                hash,
                body.from_seq as i64,
                bytes,
                now_ms
            ],
        )
        .and_then(|_| tx.execute("DELETE FROM ledger_peers", []))
        .map_err(|e| StoreError::from_sqlite(&path, e))?;
        append_audit(&tx, key, "restored", &body.station, detail, now_ms)
            .map_err(|e| lift(&path, e))?;
        tx.commit().map_err(|e| StoreError::from_sqlite(&path, e))
    }

    /// A consistent copy of the whole store in a new file at `to` (one read transaction: safe
    /// while another process writes).
    pub fn vacuum_into(&self, to: &Path) -> Result<(), StoreError> {
        let target = to
            .to_str()
            .ok_or_else(|| StoreError::Encode(format!("{} is not UTF-8", to.display())))?;
        self.conn
            .execute("VACUUM INTO ?1", [target])
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Every restore link of this station's chain, in chain order.
    pub fn restore_links(&self) -> Result<Vec<RestoreRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, hash, link, sent_ms FROM restores ORDER BY seq")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(RestoreRow {
                    seq: r.get::<_, i64>(0)? as u64,
                    hash: r.get(1)?,
                    link: r.get(2)?,
                    sent_ms: r.get(3)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.sql(e))?;
        Ok(rows)
    }

    /// The centre stored the restore link at `seq`.
    pub fn mark_restore_sent(&mut self, seq: u64, now_ms: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE restores SET sent_ms = ?2 WHERE seq = ?1 AND sent_ms IS NULL",
                params![seq as i64, now_ms],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    pub fn envelopes(&self) -> Result<Vec<EnvelopeRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, id, hash, officer, kind, created_ms, payload, envelope,
                        approved_ms, sent_ms, acknowledged_ms, rejected_reason, exported_ms,
                        issuance, issuance_reason
                 FROM envelopes ORDER BY seq",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                let approved: Option<i64> = r.get(8)?;
                let sent: Option<i64> = r.get(9)?;
                let acknowledged: Option<i64> = r.get(10)?;
                let rejected_reason: Option<String> = r.get(11)?;
                let exported: Option<i64> = r.get(12)?;
                let status = if rejected_reason.is_some() {
                    "rejected"
                } else if acknowledged.is_some() {
                    "acknowledged"
                } else if sent.is_some() {
                    "sent"
                } else if exported.is_some() {
                    "exported"
                } else if approved.is_some() {
                    "approved"
                } else {
                    "committed"
                };
                Ok(EnvelopeRow {
                    seq: r.get(0)?,
                    id: r.get(1)?,
                    hash: r.get(2)?,
                    officer: r.get(3)?,
                    kind: r.get(4)?,
                    created_ms: r.get(5)?,
                    payload: r.get(6)?,
                    envelope: r.get(7)?,
                    approved: approved.is_some(),
                    exported: exported.is_some(),
                    status,
                    rejected_reason,
                    issuance: r.get(13)?,
                    issuance_reason: r.get(14)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }

    /// Empty the sealed payloads of records the centre acknowledged before `acknowledged_before_ms`.
    /// Freed pages are overwritten (`secure_delete`). Returns how many payloads were purged.
    pub fn purge_acknowledged(
        &mut self,
        acknowledged_before_ms: i64,
        now_ms: i64,
        centre: &[ed25519_dalek::VerifyingKey],
    ) -> Result<Purge, StoreError> {
        self.conn
            .pragma_update(None, "secure_delete", "ON")
            .map_err(|e| self.sql(e))?;
        let candidates: Vec<(String, String, String, Option<String>)> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT e.id, e.hash, e.payload, e.ack_proof FROM envelopes e
                     JOIN payloads p ON p.sha256 = e.payload
                     WHERE e.acknowledged_ms IS NOT NULL AND e.acknowledged_ms <= ?1
                       AND p.purged_ms IS NULL",
                )
                .map_err(|e| self.sql(e))?;
            let rows = stmt
                .query_map([acknowledged_before_ms], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .map_err(|e| self.sql(e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.sql(e))?;
            rows
        };
        let mut purge = Purge::default();
        for (id, hash, payload, proof) in candidates {
            // Checked again here, whatever the row says: a row edited on disk to look
            // acknowledged must not cost a citizen's record.
            match self.check_ack_proof(&id, &hash, proof.as_deref(), centre)? {
                Ok(()) => {
                    purge.purged += self
                        .conn
                        .execute(
                            "UPDATE payloads SET sealed = X'', purged_ms = ?2
                             WHERE sha256 = ?1 AND purged_ms IS NULL",
                            params![payload, now_ms],
                        )
                        .map_err(|e| self.sql(e))?;
                }
                Err(why) => {
                    tracing::warn!(%id, %why, "payload kept: its acknowledgement does not verify");
                    purge.kept.push((id, why));
                }
            }
        }
        Ok(purge)
    }

    /// Whether `proof` is a verdict the centre signed that record `id` (envelope `hash`) is
    /// held at the centre. `Ok(Err(why))` says why not.
    pub fn check_ack_proof(
        &self,
        id: &str,
        hash: &str,
        proof: Option<&str>,
        centre: &[ed25519_dalek::VerifyingKey],
    ) -> Result<Result<(), String>, StoreError> {
        let station = self.config("station_id")?.unwrap_or_default();
        let Some(proof) = proof else {
            return Ok(Err(
                "marked acknowledged without a verdict signed by the centre (edited on disk?)"
                    .into(),
            ));
        };
        if proof == "legacy" {
            return Ok(Err(
                "acknowledged before verdicts were signed: kept until the centre signs one".into(),
            ));
        }
        match AckProof::parse(proof) {
            Some(AckProof::Ledger { entry }) => {
                if !entry.status.centre_holds() {
                    return Ok(Err(format!(
                        "the centre's verdict is {}",
                        entry.status.as_str()
                    )));
                }
                if centre.iter().any(|k| entry.verify(k, &station, id, hash)) {
                    Ok(Ok(()))
                } else {
                    Ok(Err(
                        "the centre's signature on its verdict does not verify".into()
                    ))
                }
            }
            Some(AckProof::Receipt { receipt }) => {
                let bytes: Option<Vec<u8>> = self
                    .conn
                    .query_row(
                        "SELECT receipt FROM receipts WHERE receipt_sha256 = ?1",
                        [&receipt],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(|e| self.sql(e))?
                    .flatten();
                let Some(bytes) = bytes else {
                    return Ok(Err(format!(
                        "receipt {receipt} is not kept at this station"
                    )));
                };
                let body = match tasjil_sync::bundle::Receipt::verify(&bytes, centre) {
                    Ok(r) => r.receipt,
                    Err(e) => return Ok(Err(format!("receipt {receipt}: {e}"))),
                };
                let named = body.station == station
                    && body
                        .records
                        .iter()
                        .any(|r| r.id == id && r.envelope_sha256 == hash && r.status == "verified");
                Ok(if named {
                    Ok(())
                } else {
                    Err(format!(
                        "receipt {receipt} does not acknowledge this envelope"
                    ))
                })
            }
            None => Ok(Err("the stored acknowledgement is unreadable".into())),
        }
    }

    /// `(id, hash, ack_proof)` of every record marked acknowledged.
    pub fn acknowledgements(&self) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, hash, ack_proof FROM envelopes WHERE acknowledged_ms IS NOT NULL
                 ORDER BY seq",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| self.sql(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.sql(e))?;
        Ok(rows)
    }

    /// Whether a payload was purged after acknowledgement (so its absence is not damage).
    pub fn payload_purged(&self, sha256: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT purged_ms IS NOT NULL FROM payloads WHERE sha256 = ?1",
                [sha256],
                |r| r.get(0),
            )
            .optional()
            .map(|v| v.unwrap_or(false))
            .map_err(|e| self.sql(e))
    }

    /// The sealed payload with this address, if stored.
    pub fn payload(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row(
                "SELECT sealed FROM payloads WHERE sha256 = ?1",
                [sha256],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))
    }

    pub fn audit_rows(&self) -> Result<Vec<AuditRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, entry, sig FROM audit ORDER BY seq")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(AuditRow {
                    seq: r.get(0)?,
                    entry: r.get(1)?,
                    sig: r.get(2)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }

    pub fn counts(&self) -> Result<Counts, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*),
                        count(approved_ms),
                        count(*) FILTER (WHERE sent_ms IS NULL AND acknowledged_ms IS NULL),
                        count(acknowledged_ms),
                        count(rejected_reason),
                        count(*) FILTER (WHERE exported_ms IS NOT NULL AND acknowledged_ms IS NULL),
                        count(*) FILTER (WHERE issuance = 'accepted'),
                        count(*) FILTER (WHERE issuance = 'issued'),
                        count(*) FILTER (WHERE issuance = 'reenrol')
                 FROM envelopes",
                [],
                |r| {
                    Ok(Counts {
                        records: r.get::<_, i64>(0)? as u64,
                        approved: r.get::<_, i64>(1)? as u64,
                        unsent: r.get::<_, i64>(2)? as u64,
                        acknowledged: r.get::<_, i64>(3)? as u64,
                        rejected: r.get::<_, i64>(4)? as u64,
                        exported: r.get::<_, i64>(5)? as u64,
                        accepted: r.get::<_, i64>(6)? as u64,
                        issued: r.get::<_, i64>(7)? as u64,
                        reenrol: r.get::<_, i64>(8)? as u64,
                    })
                },
            )
            .map_err(|e| self.sql(e))
    }

    /// Mark records approved by a supervisor and audit it, in one transaction. `ids` empty means
    /// every record not yet approved. Returns the ids approved; unknown ids are an error.
    pub fn approve(
        &mut self,
        key: &StationKey,
        ids: &[String],
        supervisor: &str,
        self_approval: bool,
        badge_signature: &dyn Fn(&[String]) -> Result<String, String>,
        now_ms: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(|e| StoreError::from_sqlite(&path, e))?;
        type Row = (String, String, bool, i64, String);
        let pick = |tx: &Transaction| -> rusqlite::Result<Vec<Row>> {
            let mut stmt = tx.prepare(
                "SELECT id, hash, approved_ms IS NOT NULL, created_ms, officer FROM envelopes ORDER BY seq",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            rows.collect()
        };
        let all = pick(&tx).map_err(|e| StoreError::from_sqlite(&path, e))?;
        let own = |officer: &str| !self_approval && officer == supervisor;
        for id in ids {
            match all.iter().find(|r| &r.0 == id) {
                None => {
                    return Err(StoreError::Refused(format!(
                        "no record {id} on this station"
                    )))
                }
                Some(r) if own(&r.4) && !r.2 => {
                    return Err(StoreError::Refused(own_record(id, supervisor)))
                }
                Some(_) => {}
            }
        }
        let chosen: Vec<(String, String, i64)> = all
            .into_iter()
            .filter(|(id, _, done, _, officer)| {
                !done && (ids.is_empty() || ids.contains(id)) && !own(officer)
            })
            .map(|(id, hash, _, created, _)| (id, hash, created))
            .collect();
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let hashes: Vec<String> = chosen.iter().map(|(_, h, _)| h.clone()).collect();
        let sig = badge_signature(&hashes).map_err(StoreError::Encode)?;
        let station: String = tx
            .query_row(
                "SELECT value FROM config WHERE key = 'station_id'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| StoreError::from_sqlite(&path, e))?;
        let mut touched = LedgerWrites::new(&mut self.ledgers, &self.actor);
        {
            let mut mark = tx
                .prepare("UPDATE envelopes SET approved_ms = ?2, approved_by = ?3 WHERE id = ?1")
                .map_err(|e| StoreError::from_sqlite(&path, e))?;
            let approval = Approval {
                supervisor: supervisor.to_string(),
                time_ms: now_ms,
            };
            let mut by_day: BTreeMap<String, Vec<&str>> = BTreeMap::new();
            for (id, _, created) in &chosen {
                mark.execute(params![id, now_ms, supervisor])
                    .map_err(|e| StoreError::from_sqlite(&path, e))?;
                by_day.entry(day_of_ms(*created)).or_default().push(id);
            }
            for (day, ids) in &by_day {
                touched.change(&tx, &path, &station, day, |l| {
                    l.approve_many(ids, &approval)
                })?;
            }
        }
        // One save of each ledger for the whole batch.
        touched.save(&tx, &path)?;
        append_audit(
            &tx,
            key,
            "approve",
            supervisor,
            serde_json::json!({"envelopes": hashes, "badge_signature": sig}),
            now_ms,
        )
        .map_err(|e| lift(&path, e))?;
        tx.commit().map_err(|e| StoreError::from_sqlite(&path, e))?;
        touched.committed();
        Ok(chosen.into_iter().map(|(id, hash, _)| (id, hash)).collect())
    }

    /// Ledgers worth syncing: those holding a record the centre has not acknowledged, and those
    /// of the last `recent_days` days (approvals and statuses may still change there).
    pub fn ledgers_to_sync(
        &self,
        now_ms: i64,
        recent_days: i64,
    ) -> Result<Vec<String>, StoreError> {
        let station = self.config("station_id")?.unwrap_or_default();
        let mut names: Vec<String> = self
            .envelopes()?
            .iter()
            .filter(|r| r.status != "acknowledged")
            .map(|r| doc_name(&station, &day_of_ms(r.created_ms)))
            .collect();
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM ledgers")
            .map_err(|e| self.sql(e))?;
        let all = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.sql(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.sql(e))?;
        let since = day_of_ms(now_ms - recent_days * 86_400_000);
        names.extend(
            all.into_iter()
                .filter(|n| split_name(n).is_some_and(|(_, day)| day >= since.as_str())),
        );
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Load a ledger replica and its sync state with `peer` (fresh state when none was saved).
    pub fn ledger_for_sync(
        &self,
        peer: &str,
        name: &str,
    ) -> Result<(Ledger, PeerState), StoreError> {
        let (station, day) = split_name(name)
            .ok_or_else(|| StoreError::Encode(format!("bad ledger name {name}")))?;
        let doc = stored_ledger(&self.conn, name).map_err(|e| self.sql(e))?;
        let ledger = match doc {
            Some((b, _, _)) => Ledger::load(station, day, &self.actor, &b)
                .map_err(|e| StoreError::Encode(e.to_string()))?,
            None => Ledger::new(station, day, &self.actor),
        };
        let state: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT state FROM ledger_peers WHERE peer = ?1 AND name = ?2",
                [peer, name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        let state = state
            .and_then(|b| PeerState::decode(&b).ok())
            .unwrap_or_default();
        Ok((ledger, state))
    }

    /// Save a ledger replica and its sync state with `peer` after a sync round trip.
    pub fn save_ledger_sync(
        &mut self,
        peer: &str,
        ledger: &mut Ledger,
        state: &PeerState,
    ) -> Result<(), StoreError> {
        let name = ledger.name();
        let doc = ledger.save();
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(|e| StoreError::from_sqlite(&path, e))?;
        // The synced replica replaces the stored one whole (compacted: its chunks go), and a copy
        // this writer kept loaded is dropped.
        self.ledgers.loaded.remove(&name);
        let apply = |tx: &Transaction| -> rusqlite::Result<()> {
            write_whole_ledger(tx, &name, &doc)?;
            tx.execute(
                "INSERT INTO ledger_peers (peer, name, state) VALUES (?1, ?2, ?3)
                 ON CONFLICT (peer, name) DO UPDATE SET state = excluded.state",
                params![peer, name, state.encode()],
            )?;
            Ok(())
        };
        apply(&tx).map_err(|e| StoreError::from_sqlite(&path, e))?;
        note_issuance(&tx, ledger).map_err(|e| StoreError::from_sqlite(&path, e))?;
        tx.commit().map_err(|e| StoreError::from_sqlite(&path, e))
    }

    /// Records the centre has not acknowledged yet, in chain order, for a sync or an export.
    pub fn pending_sync(&self) -> Result<Vec<EnvelopeRow>, StoreError> {
        Ok(self
            .envelopes()?
            .into_iter()
            .filter(|r| r.status != "acknowledged")
            .collect())
    }

    /// `len` bytes of a sealed payload from `offset` (for resumable uploads).
    pub fn payload_chunk(
        &self,
        sha256: &str,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row(
                "SELECT substr(sealed, ?2 + 1, ?3) FROM payloads WHERE sha256 = ?1",
                params![sha256, offset as i64, len as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// Record what a sync (or a receipt) established, in one transaction.
    pub fn record_sync_outcome(
        &mut self,
        sent: &[String],
        acknowledged: &[(String, AckProof)],
        rejected: &[(String, String)],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(|e| StoreError::from_sqlite(&path, e))?;
        let apply = |tx: &Transaction| -> rusqlite::Result<()> {
            for id in sent {
                tx.execute(
                    "UPDATE envelopes SET sent_ms = ?2 WHERE id = ?1 AND sent_ms IS NULL",
                    params![id, now_ms],
                )?;
            }
            for (id, proof) in acknowledged {
                tx.execute(
                    "UPDATE envelopes SET acknowledged_ms = coalesce(acknowledged_ms, ?2),
                            ack_proof = coalesce(ack_proof, ?3),
                            sent_ms = coalesce(sent_ms, ?2), rejected_reason = NULL WHERE id = ?1",
                    params![id, now_ms, proof.to_json()],
                )?;
            }
            for (id, reason) in rejected {
                tx.execute(
                    "UPDATE envelopes SET rejected_reason = ?2, sent_ms = coalesce(sent_ms, ?3)
                     WHERE id = ?1 AND acknowledged_ms IS NULL",
                    params![id, reason, now_ms],
                )?;
            }
            Ok(())
        };
        apply(&tx).map_err(|e| StoreError::from_sqlite(&path, e))?;
        tx.commit().map_err(|e| StoreError::from_sqlite(&path, e))
    }

    /// Remember how the last sync with `peer` went.
    pub fn record_peer(
        &mut self,
        peer: &str,
        ok: bool,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO sync_peers (peer, last_sync_ms, last_error) VALUES (?1, CASE WHEN ?2 THEN ?3 END, ?4)
                 ON CONFLICT (peer) DO UPDATE SET
                    last_sync_ms = CASE WHEN ?2 THEN ?3 ELSE last_sync_ms END,
                    last_error = ?4",
                params![peer, ok, now_ms, error],
            )
            .map(drop)
            .map_err(|e| self.sql(e))
    }

    /// `(peer, last successful sync, last error)` for every peer.
    pub fn peers(&self) -> Result<Vec<PeerRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT peer, last_sync_ms, last_error FROM sync_peers ORDER BY peer")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }

    /// The station's saved replica of ledger `name`, if any: the saved document followed by the
    /// change chunks written since (Automerge loads the two as one document).
    pub fn ledger_doc(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(stored_ledger(&self.conn, name)
            .map_err(|e| self.sql(e))?
            .map(|(doc, _, _)| doc))
    }

    /// Remember a bundle written to a stick: mark its records exported and audit it, in one
    /// transaction.
    pub fn record_export(
        &mut self,
        key: &StationKey,
        export: &ExportRow,
        ids: &[String],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(|e| StoreError::from_sqlite(&path, e))?;
        let apply = |tx: &Transaction| -> rusqlite::Result<()> {
            tx.execute(
                "INSERT INTO exports (bundle_id, file, manifest_sha256, first_seq, last_seq, records,
                                      bytes, supervisor, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    export.bundle_id,
                    export.file,
                    export.manifest_sha256,
                    export.first_seq as i64,
                    export.last_seq as i64,
                    ids.len() as i64,
                    export.bytes as i64,
                    export.supervisor,
                    now_ms
                ],
            )?;
            for id in ids {
                tx.execute(
                    "UPDATE envelopes SET exported_ms = ?2 WHERE id = ?1",
                    params![id, now_ms],
                )?;
            }
            Ok(())
        };
        apply(&tx).map_err(|e| StoreError::from_sqlite(&path, e))?;
        append_audit(
            &tx,
            key,
            "export",
            &export.supervisor,
            serde_json::json!({
                "bundle_id": export.bundle_id, "file": export.file,
                "manifest_sha256": export.manifest_sha256, "first_seq": export.first_seq,
                "last_seq": export.last_seq, "records": ids.len(), "bytes": export.bytes,
            }),
            now_ms,
        )
        .map_err(|e| lift(&path, e))?;
        tx.commit().map_err(|e| StoreError::from_sqlite(&path, e))
    }

    /// Apply a receipt whose signature was checked: merge the centre's ledgers into ours, mark
    /// the records it verified acknowledged and those it rejected rejected (never un-acknowledging
    /// one), remember the receipt, audit it — one transaction. Records the receipt names that
    /// this station does not hold with the same envelope hash are returned, untouched.
    pub fn apply_receipt(
        &mut self,
        key: &StationKey,
        receipt: &tasjil_sync::bundle::Receipt,
        receipt_sha256: &str,
        now_ms: i64,
    ) -> Result<ReceiptOutcome, StoreError> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = &receipt.receipt;
        let path = self.path.clone();
        let actor = self.actor;
        let tx = self
            .conn
            .transaction()
            .map_err(|e| StoreError::from_sqlite(&path, e))?;
        let already_imported = tx
            .query_row(
                "SELECT 1 FROM receipts WHERE receipt_sha256 = ?1",
                [receipt_sha256],
                |_| Ok(()),
            )
            .optional()
            .map_err(|e| StoreError::from_sqlite(&path, e))?
            .is_some();
        let mut outcome = ReceiptOutcome {
            already_imported,
            ..ReceiptOutcome::default()
        };
        for ledger in &body.ledgers {
            let Some((station, day)) = split_name(&ledger.name) else {
                return Err(StoreError::Encode(format!(
                    "receipt ledger {:?} is not a ledger name",
                    ledger.name
                )));
            };
            if station != body.station {
                return Err(StoreError::Encode(format!(
                    "receipt ledger {} is not a ledger of station {}",
                    ledger.name, body.station
                )));
            }
            let bytes = b64
                .decode(&ledger.doc)
                .map_err(|e| StoreError::Encode(format!("receipt ledger {}: {e}", ledger.name)))?;
            let fail = |e: tasjil_sync::ledger::LedgerError| {
                StoreError::Encode(format!("receipt ledger {}: {e}", ledger.name))
            };
            let mut theirs = Ledger::load(station, day, &actor, &bytes).map_err(fail)?;
            let mut merged = None;
            let mut touched = LedgerWrites::new(&mut self.ledgers, &actor);
            touched.change(&tx, &path, station, day, |ours| {
                ours.merge(&mut theirs)?;
                merged = Some(issuance_in(ours));
                Ok(())
            })?;
            touched.save(&tx, &path)?;
            // Only the stored replica counts after a merge from outside: dropped from memory.
            drop(touched);
            for (id, status, reason, at) in merged.unwrap_or_default() {
                outcome.issuance_changed += set_issuance(&tx, &id, &status, reason.as_deref(), at)
                    .map_err(|e| StoreError::from_sqlite(&path, e))?;
            }
        }
        for r in &body.records {
            let hash: Option<String> = tx
                .query_row("SELECT hash FROM envelopes WHERE id = ?1", [&r.id], |row| {
                    row.get(0)
                })
                .optional()
                .map_err(|e| StoreError::from_sqlite(&path, e))?;
            if hash.as_deref() != Some(r.envelope_sha256.as_str()) {
                outcome.unknown.push(r.id.clone());
                continue;
            }
            let changed = if r.status == "verified" {
                outcome.verified += 1;
                tx.execute(
                    "UPDATE envelopes SET acknowledged_ms = ?2, sent_ms = coalesce(sent_ms, ?2),
                            rejected_reason = NULL, ack_proof = ?3
                     WHERE id = ?1 AND acknowledged_ms IS NULL",
                    params![
                        r.id,
                        now_ms,
                        AckProof::Receipt {
                            receipt: receipt_sha256.to_string()
                        }
                        .to_json()
                    ],
                )
            } else {
                outcome
                    .rejected
                    .push((r.id.clone(), r.reason.clone().unwrap_or_default()));
                tx.execute(
                    "UPDATE envelopes SET rejected_reason = ?2, sent_ms = coalesce(sent_ms, ?3)
                     WHERE id = ?1 AND acknowledged_ms IS NULL
                       AND rejected_reason IS NOT ?2",
                    params![r.id, r.reason.clone().unwrap_or_default(), now_ms],
                )
            }
            .map_err(|e| StoreError::from_sqlite(&path, e))?;
            outcome.changed += changed as u64;
        }
        tx.execute(
            "INSERT INTO receipts (receipt_sha256, bundle_id, issued_ms, imported_ms, verified, rejected, receipt)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (receipt_sha256) DO NOTHING",
            params![
                receipt_sha256,
                body.bundle_id,
                body.issued_ms,
                now_ms,
                outcome.verified as i64,
                outcome.rejected.len() as i64,
                receipt
                    .to_bytes()
                    .map_err(|e| StoreError::Encode(format!("receipt: {e}")))?
            ],
        )
        .map_err(|e| StoreError::from_sqlite(&path, e))?;
        append_audit(
            &tx,
            key,
            "receipt",
            "centre",
            serde_json::json!({
                "bundle_id": body.bundle_id, "receipt_sha256": receipt_sha256,
                "issued_ms": body.issued_ms, "verified": outcome.verified,
                "rejected": outcome.rejected.len(), "unknown": outcome.unknown.len(),
                "changed": outcome.changed,
            }),
            now_ms,
        )
        .map_err(|e| lift(&path, e))?;
        tx.commit().map_err(|e| StoreError::from_sqlite(&path, e))?;
        Ok(outcome)
    }

    /// SQLite's own structural check; an empty list means the file is sound.
    pub fn quick_check(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA quick_check")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.sql(e))?;
        let lines = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.sql(e))?;
        Ok(lines.into_iter().filter(|l| l != "ok").collect())
    }
}

enum AuditFail {
    Sql(rusqlite::Error),
    Encode(String),
}

fn lift(path: &Path, e: AuditFail) -> StoreError {
    match e {
        AuditFail::Sql(e) => StoreError::from_sqlite(path, e),
        AuditFail::Encode(m) => StoreError::Encode(m),
    }
}

/// Load (or start) the station's replica of a ledger inside `tx`, change it, save it.
/// The centre's issuance statuses in a ledger: `(id, status, reason, time)` of each record whose
/// current status is one.
fn issuance_in(ledger: &Ledger) -> Vec<(String, String, Option<String>, i64)> {
    ledger
        .records()
        .into_iter()
        .filter_map(|v| {
            let c = v.current?;
            c.status.is_issuance().then(|| {
                (
                    v.entry.id,
                    c.status.as_str().to_string(),
                    c.reason,
                    c.time_ms,
                )
            })
        })
        .collect()
}

/// Keep a record's issuance columns to what the centre's ledger says. Returns 1 if it changed.
fn set_issuance(
    tx: &Transaction,
    id: &str,
    status: &str,
    reason: Option<&str>,
    at_ms: i64,
) -> rusqlite::Result<u64> {
    tx.execute(
        "UPDATE envelopes SET issuance = ?2, issuance_reason = ?3, issuance_ms = ?4
         WHERE id = ?1 AND (issuance IS NOT ?2 OR issuance_reason IS NOT ?3)",
        params![id, status, reason, at_ms],
    )
    .map(|n| n as u64)
}

/// [`set_issuance`] for every issuance status in `ledger`.
fn note_issuance(tx: &Transaction, ledger: &Ledger) -> rusqlite::Result<u64> {
    let mut n = 0;
    for (id, status, reason, at) in issuance_in(ledger) {
        n += set_issuance(tx, &id, &status, reason.as_deref(), at)?;
    }
    Ok(n)
}

/// Merged-in receipt ledgers are few; a ledger keeps at most this many change chunks after its
/// saved document before a transaction saves it whole again (and drops the chunks).
const LEDGER_CHUNKS_BEFORE_COMPACTING: i64 = if cfg!(test) { 8 } else { 512 };

/// How many ledgers (station-days) a writer keeps loaded at most.
const LEDGERS_KEPT_LOADED: usize = 4;

/// A ledger this writer holds loaded: its replica and where the stored bytes stand.
struct LoadedLedger {
    ledger: Ledger,
    /// The replica as far as the stored bytes hold it.
    saved: SavePoint,
    /// `ledgers.gen` when this copy was loaded or last saved.
    generation: i64,
    /// Change chunks stored after the saved document.
    chunks: i64,
    /// No row yet: the first save writes the whole document.
    new_row: bool,
}

/// The ledgers kept loaded by the station's one writer, so that a commit or an approval changes
/// the replica in memory and appends one change chunk instead of loading and saving the whole
/// day's document. A copy is used only while `ledgers.gen` still says what it was saved as.
#[derive(Default)]
struct LedgerCache {
    loaded: HashMap<String, LoadedLedger>,
}

impl std::fmt::Debug for LedgerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerCache")
            .field("loaded", &self.loaded.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The ledgers one transaction changes. They leave the cache while the transaction runs and go
/// back only when it committed ([`Self::committed`]); dropped otherwise, so a rolled-back
/// change never stays in memory.
struct LedgerWrites<'a> {
    cache: &'a mut LedgerCache,
    actor: &'a [u8],
    touched: BTreeMap<String, LoadedLedger>,
}

impl<'a> LedgerWrites<'a> {
    fn new(cache: &'a mut LedgerCache, actor: &'a [u8]) -> Self {
        LedgerWrites {
            cache,
            actor,
            touched: BTreeMap::new(),
        }
    }

    /// Change the (station, day) ledger in memory, loading it first if this writer does not
    /// hold the stored version.
    fn change(
        &mut self,
        tx: &Transaction,
        path: &Path,
        station: &str,
        day: &str,
        change: impl FnOnce(&mut Ledger) -> Result<(), tasjil_sync::ledger::LedgerError>,
    ) -> Result<(), StoreError> {
        let name = doc_name(station, day);
        let fail =
            |e: tasjil_sync::ledger::LedgerError| StoreError::Encode(format!("ledger {name}: {e}"));
        if !self.touched.contains_key(&name) {
            let generation: Option<i64> = tx
                .query_row("SELECT gen FROM ledgers WHERE name = ?1", [&name], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(|e| StoreError::from_sqlite(path, e))?;
            let held = self
                .cache
                .loaded
                .remove(&name)
                .filter(|l| !l.new_row && Some(l.generation) == generation);
            let loaded = match held {
                Some(l) => l,
                None => {
                    match stored_ledger(tx, &name).map_err(|e| StoreError::from_sqlite(path, e))? {
                        Some((bytes, generation, chunks)) => {
                            let ledger =
                                Ledger::load(station, day, self.actor, &bytes).map_err(fail)?;
                            LoadedLedger {
                                saved: ledger.save_point(),
                                ledger,
                                generation,
                                chunks,
                                new_row: false,
                            }
                        }
                        None => LoadedLedger {
                            ledger: Ledger::new(station, day, self.actor),
                            saved: SavePoint::default(),
                            generation: 0,
                            chunks: 0,
                            new_row: true,
                        },
                    }
                }
            };
            self.touched.insert(name.clone(), loaded);
        }
        let loaded = self.touched.get_mut(&name).expect("inserted above");
        change(&mut loaded.ledger).map_err(fail)
    }

    /// Store what the transaction changed: one change chunk per ledger (or the whole document
    /// for a new ledger, or when its chunks have piled up).
    fn save(&mut self, tx: &Transaction, path: &Path) -> Result<(), StoreError> {
        let sql = |e| StoreError::from_sqlite(path, e);
        for (name, l) in &mut self.touched {
            if l.new_row || l.chunks >= LEDGER_CHUNKS_BEFORE_COMPACTING {
                write_whole_ledger(tx, name, &l.ledger.save()).map_err(sql)?;
                l.chunks = 0;
                l.new_row = false;
            } else {
                let chunk = l.ledger.save_since(&l.saved);
                if chunk.is_empty() {
                    continue;
                }
                tx.execute(
                    "INSERT INTO ledger_chunks (name, n, chunk)
                     VALUES (?1, (SELECT coalesce(max(n), 0) + 1 FROM ledger_chunks WHERE name = ?1), ?2)",
                    params![name, chunk],
                )
                .and_then(|_| {
                    tx.execute("UPDATE ledgers SET gen = gen + 1 WHERE name = ?1", [name])
                })
                .map_err(sql)?;
                l.chunks += 1;
            }
            l.generation = tx
                .query_row(
                    "SELECT gen FROM ledgers WHERE name = ?1",
                    [name.as_str()],
                    |r| r.get(0),
                )
                .map_err(sql)?;
            l.saved = l.ledger.save_point();
        }
        Ok(())
    }

    /// The transaction committed: keep the changed ledgers loaded for the next one (the last
    /// few days' only: older ones are rarely written again).
    fn committed(self) {
        if self.cache.loaded.len() + self.touched.len() > LEDGERS_KEPT_LOADED {
            self.cache.loaded.clear();
        }
        self.cache.loaded.extend(self.touched);
    }
}

/// Write `doc` as the whole stored ledger `name`, dropping its change chunks.
fn write_whole_ledger(tx: &Transaction, name: &str, doc: &[u8]) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO ledgers (name, doc, gen) VALUES (?1, ?2, 1)
         ON CONFLICT (name) DO UPDATE SET doc = excluded.doc, gen = gen + 1",
        params![name, doc],
    )?;
    tx.execute("DELETE FROM ledger_chunks WHERE name = ?1", [name])?;
    Ok(())
}

/// The stored bytes of ledger `name` (its document followed by its change chunks), its `gen`
/// and its number of chunks.
fn stored_ledger(conn: &Connection, name: &str) -> rusqlite::Result<Option<(Vec<u8>, i64, i64)>> {
    let Some((mut doc, generation)) = conn
        .query_row(
            "SELECT doc, gen FROM ledgers WHERE name = ?1",
            [name],
            |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)),
        )
        .optional()?
    else {
        return Ok(None);
    };
    let mut stmt =
        conn.prepare_cached("SELECT chunk FROM ledger_chunks WHERE name = ?1 ORDER BY n")?;
    let mut rows = stmt.query([name])?;
    let mut chunks = 0;
    while let Some(row) = rows.next()? {
        let chunk: Vec<u8> = row.get(0)?;
        doc.extend_from_slice(&chunk);
        chunks += 1;
    }
    Ok(Some((doc, generation, chunks)))
}

fn append_audit(
    tx: &Transaction,
    key: &StationKey,
    action: &str,
    actor: &str,
    detail: serde_json::Value,
    now_ms: i64,
) -> Result<u64, AuditFail> {
    let last: Option<(i64, Vec<u8>)> = tx
        .query_row(
            "SELECT seq, entry FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(AuditFail::Sql)?;
    let (seq, prev) = match last {
        Some((s, entry)) => (s as u64 + 1, sha256_hex(&entry)),
        None => (1, GENESIS.to_string()),
    };
    let entry = AuditEntry {
        seq,
        at_ms: now_ms,
        action: action.into(),
        actor: actor.into(),
        detail,
        prev,
    };
    let bytes = to_canonical(&entry).map_err(|e| AuditFail::Encode(e.to_string()))?;
    let sig = key.sign(&AuditEntry::signing_message(&bytes));
    tx.execute(
        "INSERT INTO audit (seq, entry, sig) VALUES (?1, ?2, ?3)",
        params![seq as i64, bytes, hex::encode(sig.to_bytes())],
    )
    .map_err(AuditFail::Sql)?;
    Ok(seq)
}

/// Check one audit row against its predecessor's hash; returns this row's hash.
pub fn check_audit_row(
    row: &AuditRow,
    expected_seq: u64,
    expected_prev: &str,
    station: &ed25519_dalek::VerifyingKey,
) -> Result<String, String> {
    let entry: AuditEntry =
        serde_json::from_slice(&row.entry).map_err(|e| format!("audit entry is malformed: {e}"))?;
    if to_canonical(&entry).ok().as_deref() != Some(&row.entry[..]) {
        return Err("audit entry is not canonical JSON".into());
    }
    if entry.seq != expected_seq || row.seq as u64 != expected_seq {
        return Err(format!(
            "audit chain gap: expected entry {expected_seq}, found {} (row {})",
            entry.seq, row.seq
        ));
    }
    if entry.prev != expected_prev {
        return Err(format!(
            "audit chain broken at entry {expected_seq}: previous hash does not match"
        ));
    }
    let sig = parse_signature(&row.sig).map_err(|e| format!("audit signature unreadable: {e}"))?;
    if !verify(station, &AuditEntry::signing_message(&row.entry), &sig) {
        return Err(format!(
            "audit entry {expected_seq}: station signature does not verify"
        ));
    }
    Ok(sha256_hex(&row.entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signed, co-signed envelope of station `ST-T` at `seq`, and a sealed stand-in.
    fn enrolment(key: &StationKey, seq: u64, finished_ms: i64) -> (Envelope<Signed>, Vec<u8>) {
        use tasjil_sync::record::{CaptureTimes, FingerQuality, PayloadRef, QualitySummary};
        use tasjil_sync::{CoSignature, EnvelopeBody, ENVELOPE_VERSION};
        let sealed = format!("sealed {seq}").into_bytes();
        let body = EnvelopeBody {
            v: ENVELOPE_VERSION,
            id: format!("01J{seq:023}"),
            kind: tasjil_sync::EnrolmentKind::New,
            station: "ST-T".into(),
            officer: "OFF-1".into(),
            seq,
            prev: GENESIS.into(),
            demographics_schema: "cnie-v1".into(),
            captured: CaptureTimes {
                started_ms: finished_ms - 4,
                face_ms: finished_ms - 3,
                fingers_ms: finished_ms - 2,
                signature_ms: finished_ms - 1,
                finished_ms,
            },
            quality: QualitySummary {
                face: 90,
                face_attempts: 1,
                fingers: vec![FingerQuality {
                    position: "right_thumb".into(),
                    score: 80,
                }],
                finger_exceptions: vec![],
                below_threshold: vec![],
            },
            payload: PayloadRef {
                sha256: sha256_hex(&sealed),
                len: sealed.len() as u64,
            },
            simulation: true,
            roster: None,
        };
        let officer = StationKey::generate();
        let env = Envelope::new(body).unwrap();
        let sig = officer.sign(&env.officer_message().unwrap());
        let env = env
            .with_officer_signature(CoSignature {
                key: officer.public_hex(),
                sig: hex::encode(sig.to_bytes()),
            })
            .sign(key)
            .unwrap();
        (env, sealed)
    }

    fn chunks(store: &Store) -> i64 {
        store
            .conn
            .query_row("SELECT count(*) FROM ledger_chunks", [], |r| r.get(0))
            .unwrap()
    }

    fn stored(store: &Store, day_ms: i64) -> Ledger {
        let name = doc_name("ST-T", &day_of_ms(day_ms));
        let doc = store.ledger_doc(&name).unwrap().unwrap();
        Ledger::load("ST-T", &day_of_ms(day_ms), b"reader-actor-xx", &doc).unwrap()
    }

    #[test]
    fn ledgers_are_kept_loaded_saved_in_chunks_and_follow_another_writer() {
        const DAY: i64 = 1_780_000_000_000;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let key = StationKey::generate();
        let mut a = Store::open(&path).unwrap();
        a.set_config("station_id", "ST-T").unwrap();
        let commit = |s: &mut Store, seq: u64| {
            let (env, sealed) = enrolment(&key, seq, DAY + seq as i64);
            s.commit_enrolment(&key, &env, &sealed, DAY).unwrap();
        };
        // The first commit of the day writes the whole (new) document, each later one a chunk.
        commit(&mut a, 1);
        assert_eq!(chunks(&a), 0);
        commit(&mut a, 2);
        commit(&mut a, 3);
        assert_eq!(chunks(&a), 2);
        assert_eq!(stored(&a, DAY).record_count(), 3);
        // A second writer (another process would be the same) loads what is stored; the first
        // sees that its loaded copy is stale and reloads before writing.
        let mut b = Store::open(&path).unwrap();
        commit(&mut b, 4);
        commit(&mut a, 5);
        let ledger = stored(&a, DAY);
        assert_eq!(ledger.record_count(), 5, "no writer's record is lost");
        assert!(ledger.orphan_ids().is_empty() && ledger.conflicting_ids().is_empty());
        // A batch approval is one chunk for the day, whatever the number of records.
        let before = chunks(&a);
        let approved = a
            .approve(&key, &[], "SUP-1", false, &|_| Ok("sig".into()), DAY + 100)
            .unwrap();
        assert_eq!(approved.len(), 5);
        assert_eq!(chunks(&a), before + 1);
        let ledger = stored(&a, DAY);
        assert!(ledger.records().iter().all(|r| !r.approvals.is_empty()));
        // Chunks pile up to the limit, then a save writes the whole document again.
        for seq in 6..=14 {
            commit(&mut a, seq);
            assert!(chunks(&a) <= LEDGER_CHUNKS_BEFORE_COMPACTING);
        }
        assert!(
            chunks(&a) < LEDGER_CHUNKS_BEFORE_COMPACTING,
            "compacted once"
        );
        drop((a, b));
        let reopened = Store::open(&path).unwrap();
        let ledger = stored(&reopened, DAY);
        assert_eq!(ledger.record_count(), 14);
        assert_eq!(
            ledger
                .records()
                .iter()
                .filter(|r| !r.approvals.is_empty())
                .count(),
            5
        );
    }

    #[test]
    fn a_failed_transaction_leaves_no_ledger_change_in_memory() {
        const DAY: i64 = 1_780_000_000_000;
        let dir = tempfile::tempdir().unwrap();
        let key = StationKey::generate();
        let mut s = Store::open(&dir.path().join("s.db")).unwrap();
        s.set_config("station_id", "ST-T").unwrap();
        let (env, sealed) = enrolment(&key, 1, DAY);
        s.commit_enrolment(&key, &env, &sealed, DAY).unwrap();
        // The same seq again: the envelope insert fails, the transaction rolls back.
        let (dup, sealed2) = enrolment(&key, 1, DAY + 7);
        assert!(s.commit_enrolment(&key, &dup, &sealed2, DAY).is_err());
        // The copy held in memory is the stored one: nothing of the failed commit in either.
        let (env2, sealed2) = enrolment(&key, 2, DAY + 8);
        s.commit_enrolment(&key, &env2, &sealed2, DAY).unwrap();
        let ledger = stored(&s, DAY);
        assert_eq!(ledger.record_count(), 2);
        let held = &s.ledgers.loaded[&doc_name("ST-T", &day_of_ms(DAY))];
        assert_eq!(held.ledger.record_count(), 2);
    }

    #[test]
    fn audit_chain_links_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let key = StationKey::generate();
        for i in 0..3 {
            store
                .audit(
                    &key,
                    "login",
                    "OFF-1",
                    serde_json::json!({"i": i}),
                    1000 + i,
                )
                .unwrap();
        }
        let rows = store.audit_rows().unwrap();
        let mut prev = GENESIS.to_string();
        for (i, row) in rows.iter().enumerate() {
            prev = check_audit_row(row, i as u64 + 1, &prev, &key.verifying_key()).unwrap();
        }
        let mut bad = rows[1].clone();
        bad.entry[5] ^= 1;
        assert!(
            check_audit_row(&bad, 2, &sha256_hex(&rows[0].entry), &key.verifying_key()).is_err()
        );
    }

    #[test]
    fn garbage_file_is_reported_as_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        std::fs::write(&path, vec![0x42; 8192]).unwrap();
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::Damaged { .. })
        ));
    }

    #[test]
    fn pragmas_are_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = store
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        let fk: i64 = store
            .conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!((mode.as_str(), sync, fk), ("wal", 2, 1));
        assert!(migrations().validate().is_ok());
    }
}
