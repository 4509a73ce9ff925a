//! The centre's durable store (embedded default): one SQLite file `DIR/centre.db` and a directory of
//! sealed payload files `DIR/blobs/`.
//!
//! Owns the registry of station keys, the envelopes the centre accepted, the refusals it must report
//! back, and the sealed payloads (content-addressed by the SHA-256 of their bytes, uploaded in
//! resumable chunks under `blobs/partial/` and renamed into place only once their hash checks out).
//! Every envelope is verified here before it is stored — station signature, officer co-signature,
//! duplicates and forks, the per-station chain, the payload — so no caller can store an unchecked
//! record. It never opens a sealed payload (that needs the centre's age identity) and knows nothing
//! of HTTP, bundles or the command line.
//!
//! Durability follows the station store: WAL with `synchronous=FULL`, migrations compiled in, and a
//! payload file is fsynced (file and directory) before any envelope naming it can be accepted.
//! One `CentreStore` per process owns the writer connection; it is `Send + Sync` so the HTTP
//! handlers share it through an `Arc` (call it from blocking threads: every method does disk I/O).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use rusqlite_migration::{Migrations, M};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::parse_verifying_key;
use crate::ledger::{day_of_ms, doc_name, Ledger, LedgerError, PeerState, Status, StatusEntry};
use crate::record::{Envelope, RecordError, Signed, GENESIS};
use crate::{sha256_hex, StationPublic};

/// Largest sealed payload the centre accepts (a real one is about 2 MB).
pub const MAX_BLOB: u64 = 64 << 20;
/// Largest envelope the centre parses (a real one is a few KB).
pub const MAX_ENVELOPE: usize = 1 << 20;

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("migrations/0001_init.sql")),
        M::up(include_str!("migrations/0002_ledgers.sql")),
        M::up(include_str!("migrations/0003_bundles.sql")),
    ])
}

/// Centre store failures, worded for central staff. A refused envelope is not an error: see
/// [`Ingested::Rejected`].
#[derive(Debug, thiserror::Error)]
pub enum CentreError {
    #[error("ledger {name}: {reason}")]
    Ledger { name: String, reason: String },
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the centre's disk is full: nothing was saved by this step; free some space and try again"
    )]
    Full,
    #[error("the centre database {0} is read-only: check the disk and its permissions")]
    ReadOnly(PathBuf),
    #[error("the centre database {path} is damaged or is not a Tasjil centre database ({detail}); restore it from the last backup (see docs/OPERATIONS.md)")]
    Damaged { path: PathBuf, detail: String },
    #[error("the centre database is busy: another program holds it; try again")]
    Busy,
    #[error("centre database schema upgrade failed: {0}")]
    Migration(String),
    #[error("centre database error: {0}")]
    Sqlite(#[source] rusqlite::Error),
    #[error("station {0} is not registered at the centre: register it with `tasjil-central station add --id {0} --key station.pub`")]
    UnknownStation(String),
    #[error("station {station} is already registered with a different key; if the station was really re-keyed, that needs a key change procedure, not a second registration")]
    StationKeyConflict { station: String },
    #[error("{0:?} is not a valid station id (1 to 64 letters, digits, '-' or '_')")]
    BadStationId(String),
    #[error("the key given for station {station} is not usable: {reason}")]
    BadStationKey { station: String, reason: String },
    #[error(
        "{0:?} is not a payload address (the SHA-256 of the payload as 64 lower-case hex digits)"
    )]
    BadAddress(String),
    #[error("upload out of order: the centre has the first {have} bytes of this payload; resume from byte {have}")]
    OffsetMismatch { have: u64 },
    #[error("payload of {len} bytes is larger than the {max} bytes the centre accepts")]
    BlobTooLarge { len: u64, max: u64 },
    #[error(
        "upload chunk ends at byte {end}, past the stated payload length of {total_len} bytes"
    )]
    ChunkPastEnd { end: u64, total_len: u64 },
    #[error("the uploaded payload does not match its address (expected SHA-256 {expected}, the bytes give {found}); the partial upload was discarded: send it again from the start")]
    BlobHashMismatch { expected: String, found: String },
    #[error("sealed payload {0} is not at the centre")]
    BlobMissing(String),
}

impl CentreError {
    fn from_sqlite(path: &Path, e: rusqlite::Error) -> CentreError {
        use rusqlite::ErrorCode as C;
        if let rusqlite::Error::SqliteFailure(f, ref msg) = e {
            match f.code {
                C::DiskFull => return CentreError::Full,
                C::ReadOnly => return CentreError::ReadOnly(path.to_path_buf()),
                C::DatabaseCorrupt | C::NotADatabase => {
                    return CentreError::Damaged {
                        path: path.to_path_buf(),
                        detail: msg.clone().unwrap_or_else(|| f.to_string()),
                    }
                }
                C::DatabaseBusy | C::DatabaseLocked => return CentreError::Busy,
                _ => {}
            }
        }
        CentreError::Sqlite(e)
    }

    fn io(path: &Path, source: io::Error) -> CentreError {
        if source.kind() == io::ErrorKind::StorageFull {
            CentreError::Full
        } else {
            CentreError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

/// How much of a sealed payload the centre holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BlobState {
    Absent,
    Partial { have: u64 },
    Complete { len: u64 },
}

/// What became of one envelope handed to [`CentreStore::ingest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Ingested {
    /// Verified and durably stored.
    Stored {
        id: String,
        station: String,
        seq: u64,
    },
    /// The very same envelope was stored before: nothing to do.
    AlreadyHave { id: String },
    /// Refused; `reason` names the check that failed. Recorded for the station when the id and
    /// station could be read.
    Rejected {
        id: Option<String>,
        station: Option<String>,
        reason: String,
    },
}

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

/// A registered station, for `tasjil-central station list` and the staff page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationInfo {
    pub id: String,
    pub key_hex: String,
    pub added_ms: i64,
    pub records: u64,
    pub last_seq: u64,
}

/// The centre's answer about one enrolment id of a station (the wire type itself).
pub use crate::protocol::RecordStatus;

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

/// The open centre store. See the module docs.
pub struct CentreStore {
    conn: Mutex<Connection>,
    db_path: PathBuf,
    blobs: PathBuf,
    partial: PathBuf,
    /// Serialises writers of partial payload files: two uploads of one payload must not interleave.
    blob_writer: Mutex<()>,
    /// This process's Automerge actor: fresh at every start, so no two writers ever share one.
    actor: [u8; 16],
}

impl std::fmt::Debug for CentreStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CentreStore({})", self.db_path.display())
    }
}

/// Lock a mutex even if a thread panicked while holding it: a panic inside a transaction drops
/// (rolls back) the transaction, and payload files are only renamed into place once complete, so
/// what the mutex guards is still consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn check_address(sha256: &str) -> Result<(), CentreError> {
    if sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        Ok(())
    } else {
        Err(CentreError::BadAddress(sha256.chars().take(80).collect()))
    }
}

fn check_station_id(id: &str) -> Result<(), CentreError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(CentreError::BadStationId(id.chars().take(80).collect()))
    }
}

/// Length of the file at `path`, or `None` when there is none.
fn file_len(path: &Path) -> Result<Option<u64>, CentreError> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CentreError::io(path, e)),
    }
}

fn hash_file(path: &Path) -> Result<String, CentreError> {
    let mut file = File::open(path).map_err(|e| CentreError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(|e| CentreError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Make a rename or a new name in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), CentreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CentreError::io(dir, e))
}

/// Best effort: the id and station an unparseable envelope claims, so the station can still be
/// told that this record was refused. Only short strings are taken.
fn claimed_names(bytes: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return (None, None);
    };
    let field = |name: &str| {
        v.get("body")
            .and_then(|b| b.get(name))
            .and_then(|s| s.as_str())
            .filter(|s| !s.is_empty() && s.len() <= 64)
            .map(str::to_string)
    };
    (field("id"), field("station"))
}

/// The officer co-signature must be present and verify against the badge key it carries.
// The centre has no badge registry yet: once it has one, check `cosig.key` is the key registered
// for `body.officer` instead of trusting the key the envelope carries.
fn check_officer(env: &Envelope<Signed>) -> Result<(), RecordError> {
    let cosig = env
        .officer_signature()
        .ok_or(RecordError::OfficerSignatureMissing)?;
    let badge = parse_verifying_key(&cosig.key).map_err(|_| RecordError::OfficerSignature)?;
    env.verify_officer(&badge)
}

impl CentreStore {
    /// Open (creating if needed) the store in `dir`: `dir/centre.db` and `dir/blobs/{,partial/}`.
    pub fn open(dir: &Path) -> Result<CentreStore, CentreError> {
        let blobs = dir.join("blobs");
        let partial = blobs.join("partial");
        fs::create_dir_all(&partial).map_err(|e| CentreError::io(&partial, e))?;
        let db_path = dir.join("centre.db");
        let mut conn =
            Connection::open(&db_path).map_err(|e| CentreError::from_sqlite(&db_path, e))?;
        setup(&mut conn, &db_path)?;
        Ok(CentreStore {
            conn: Mutex::new(conn),
            db_path,
            blobs,
            partial,
            blob_writer: Mutex::new(()),
            actor: {
                use rand_core::RngCore;
                let mut a = [0u8; 16];
                rand_core::OsRng.fill_bytes(&mut a);
                a
            },
        })
    }

    fn sql(&self, e: rusqlite::Error) -> CentreError {
        CentreError::from_sqlite(&self.db_path, e)
    }

    /// Path of the SQLite file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    // ----- station registry -----

    /// Register a station's public key. Returns `true` when newly added, `false` when this exact
    /// station and key were already registered; a different key for a known station is refused.
    pub fn add_station(&self, public: &StationPublic, now_ms: i64) -> Result<bool, CentreError> {
        check_station_id(&public.station)?;
        let key = public
            .verifying_key()
            .map_err(|reason| CentreError::BadStationKey {
                station: public.station.clone(),
                reason,
            })?;
        let key_hex = hex::encode(key.as_bytes());
        let mut conn = lock(&self.conn);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        let known: Option<String> = tx
            .query_row(
                "SELECT public_key FROM stations WHERE id = ?1",
                [&public.station],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        match known {
            Some(k) if k == key_hex => Ok(false),
            Some(_) => Err(CentreError::StationKeyConflict {
                station: public.station.clone(),
            }),
            None => {
                tx.execute(
                    "INSERT INTO stations (id, public_key, added_ms) VALUES (?1, ?2, ?3)",
                    params![public.station, key_hex, now_ms],
                )
                .map_err(|e| self.sql(e))?;
                tx.commit().map_err(|e| self.sql(e))?;
                tracing::info!(station = %public.station, "station registered");
                Ok(true)
            }
        }
    }

    /// The registered key of `station`, if any.
    pub fn station_key(&self, station: &str) -> Result<Option<VerifyingKey>, CentreError> {
        let conn = lock(&self.conn);
        station_key_in(&conn, &self.db_path, station)
    }

    /// Every registered station with its record count and last sequence number.
    pub fn stations(&self) -> Result<Vec<StationInfo>, CentreError> {
        let conn = lock(&self.conn);
        let mut stmt = conn
            .prepare(
                "SELECT s.id, s.public_key, s.added_ms, count(e.seq), coalesce(max(e.seq), 0)
                 FROM stations s LEFT JOIN envelopes e ON e.station = s.id
                 GROUP BY s.id ORDER BY s.id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(StationInfo {
                    id: r.get(0)?,
                    key_hex: r.get(1)?,
                    added_ms: r.get(2)?,
                    records: r.get::<_, i64>(3)? as u64,
                    last_seq: r.get::<_, i64>(4)? as u64,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }

    // ----- sealed payloads -----

    fn complete_path(&self, sha256: &str) -> PathBuf {
        self.blobs.join(sha256)
    }

    fn partial_path(&self, sha256: &str) -> PathBuf {
        self.partial.join(sha256)
    }

    /// How much of the payload with this address the centre holds.
    pub fn blob_state(&self, sha256: &str) -> Result<BlobState, CentreError> {
        check_address(sha256)?;
        if let Some(len) = file_len(&self.complete_path(sha256))? {
            return Ok(BlobState::Complete { len });
        }
        if let Some(have) = file_len(&self.partial_path(sha256))? {
            return Ok(BlobState::Partial { have });
        }
        Ok(BlobState::Absent)
    }

    /// Add `bytes` at `offset` to the payload with address `sha256` and length `total_len`.
    ///
    /// Idempotent and resumable: a complete payload is left alone; `offset` may be at or before
    /// what the centre has (overlapping bytes are skipped, the final hash catches any difference),
    /// never after it ([`CentreError::OffsetMismatch`] says where to resume). When the last byte
    /// arrives the file is fsynced and hashed: a mismatch discards it, a match moves it into place.
    pub fn put_blob_chunk(
        &self,
        sha256: &str,
        offset: u64,
        total_len: u64,
        bytes: &[u8],
    ) -> Result<BlobState, CentreError> {
        check_address(sha256)?;
        if total_len > MAX_BLOB {
            return Err(CentreError::BlobTooLarge {
                len: total_len,
                max: MAX_BLOB,
            });
        }
        let end = offset.saturating_add(bytes.len() as u64);
        if end > total_len {
            return Err(CentreError::ChunkPastEnd { end, total_len });
        }
        let _writer = lock(&self.blob_writer);
        let complete = self.complete_path(sha256);
        if let Some(len) = file_len(&complete)? {
            return Ok(BlobState::Complete { len });
        }
        let partial = self.partial_path(sha256);
        let have = file_len(&partial)?.unwrap_or(0);
        if have > total_len {
            // Begun by an upload that claimed a longer payload under this address: one of the two
            // is wrong, and this partial can never become the payload just described. Start over.
            fs::remove_file(&partial).map_err(|e| CentreError::io(&partial, e))?;
            return Err(CentreError::OffsetMismatch { have: 0 });
        }
        if offset > have {
            return Err(CentreError::OffsetMismatch { have });
        }
        // have - offset <= total_len <= MAX_BLOB, so it fits in usize.
        let skip = usize::try_from(have - offset).unwrap_or(usize::MAX);
        let fresh = bytes.get(skip..).unwrap_or_default();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&partial)
            .map_err(|e| CentreError::io(&partial, e))?;
        if !fresh.is_empty() {
            file.write_all(fresh)
                .and_then(|()| file.sync_data())
                .map_err(|e| CentreError::io(&partial, e))?;
        }
        let have = have + fresh.len() as u64;
        if have < total_len {
            return Ok(BlobState::Partial { have });
        }
        file.sync_all().map_err(|e| CentreError::io(&partial, e))?;
        drop(file);
        let found = hash_file(&partial)?;
        if found != sha256 {
            fs::remove_file(&partial).map_err(|e| CentreError::io(&partial, e))?;
            tracing::warn!(expected = sha256, %found, "uploaded payload does not match its address; discarded");
            return Err(CentreError::BlobHashMismatch {
                expected: sha256.to_string(),
                found,
            });
        }
        fs::rename(&partial, &complete).map_err(|e| CentreError::io(&complete, e))?;
        sync_dir(&self.blobs)?;
        tracing::debug!(sha256, len = have, "payload received");
        Ok(BlobState::Complete { len: have })
    }

    /// Store a whole payload at once (a USB import): written to `partial/`, checked against its
    /// address, fsynced and renamed into place. The directory is *not* fsynced here: call
    /// [`Self::sync_blobs`] once after a batch, before ingesting any envelope that names these
    /// payloads. A payload already complete is left alone.
    pub fn put_blob_whole(&self, sha256: &str, bytes: &[u8]) -> Result<BlobState, CentreError> {
        check_address(sha256)?;
        let len = bytes.len() as u64;
        if len > MAX_BLOB {
            return Err(CentreError::BlobTooLarge { len, max: MAX_BLOB });
        }
        let _writer = lock(&self.blob_writer);
        let complete = self.complete_path(sha256);
        if let Some(len) = file_len(&complete)? {
            return Ok(BlobState::Complete { len });
        }
        let found = crate::sha256_hex(bytes);
        if found != sha256 {
            return Err(CentreError::BlobHashMismatch {
                expected: sha256.to_string(),
                found,
            });
        }
        let partial = self.partial_path(sha256);
        let mut file = File::create(&partial).map_err(|e| CentreError::io(&partial, e))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_data())
            .map_err(|e| CentreError::io(&partial, e))?;
        drop(file);
        fs::rename(&partial, &complete).map_err(|e| CentreError::io(&complete, e))?;
        Ok(BlobState::Complete { len })
    }

    /// Make payloads stored by [`Self::put_blob_whole`] durable under their names.
    pub fn sync_blobs(&self) -> Result<(), CentreError> {
        sync_dir(&self.blobs)
    }

    /// The complete payload with this address. Its hash is checked by whoever uses it against the
    /// envelope that names it ([`Envelope::verify_payload`]), and by [`Self::verify_all`].
    pub fn read_blob(&self, sha256: &str) -> Result<Vec<u8>, CentreError> {
        check_address(sha256)?;
        let path = self.complete_path(sha256);
        fs::read(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                CentreError::BlobMissing(sha256.to_string())
            } else {
                CentreError::io(&path, e)
            }
        })
    }

    // ----- envelopes -----

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
        tx.commit().map_err(|e| self.sql(e))?;
        log_outcomes(&outcomes);
        Ok(outcomes)
    }

    /// The body of [`Self::ingest_batch`] inside the caller's transaction; ledgers touched are
    /// left in `ledgers` for the caller to save.
    fn ingest_in(
        &self,
        tx: &Connection,
        ledgers: &mut BTreeMap<String, (String, Ledger)>,
        envelopes: &[&[u8]],
        now_ms: i64,
    ) -> Result<Vec<Ingested>, CentreError> {
        let mut outcomes = Vec::with_capacity(envelopes.len());
        for envelope_bytes in envelopes {
            let outcome = self.decide(tx, envelope_bytes, now_ms)?;
            self.note_in_ledger(tx, ledgers, envelope_bytes, &outcome, now_ms)?;
            if let Ingested::Rejected {
                id: Some(id),
                station: Some(station),
                reason,
            } = &outcome
            {
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
            let Some((station, day)) = crate::ledger::split_name(name) else {
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
            .filter(|o| matches!(o, Ingested::Rejected { .. }))
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
        tx.commit().map_err(|e| self.sql(e))?;
        log_outcomes(&outcomes);
        Ok(Some(outcomes))
    }

    /// Write the outcome of an ingest into the station-day ledger as the centre's status, so it
    /// reaches the van with the next ledger sync (or USB receipt). Envelopes that do not even parse
    /// have no day: they are reported through `statuses` only.
    fn note_in_ledger(
        &self,
        conn: &Connection,
        ledgers: &mut BTreeMap<String, (String, Ledger)>,
        envelope_bytes: &[u8],
        outcome: &Ingested,
        now_ms: i64,
    ) -> Result<(), CentreError> {
        let (id, status, reason) = match outcome {
            Ingested::Stored { id, .. } => (id, Status::Verified, None),
            Ingested::Rejected {
                id: Some(id),
                reason,
                ..
            } => (id, Status::Rejected, Some(reason.clone())),
            _ => return Ok(()),
        };
        let Ok(env) = Envelope::<Signed>::from_bytes(envelope_bytes) else {
            return Ok(());
        };
        let body = env.body();
        if body.id != *id {
            return Ok(());
        }
        let day = day_of_ms(body.captured.finished_ms);
        let reason = reason.map(|r| r.chars().take(crate::ledger::MAX_REASON).collect());
        let name = doc_name(&body.station, &day);
        if !ledgers.contains_key(&name) {
            let ledger = self.load_ledger(conn, &body.station, &day)?;
            ledgers.insert(name.clone(), (body.station.clone(), ledger));
        }
        if let Some((_, ledger)) = ledgers.get_mut(&name) {
            let entry = StatusEntry {
                status,
                reason,
                by: "centre".into(),
                time_ms: now_ms,
            };
            ledger
                .add_status(id, &entry)
                .map_err(|e| CentreError::Ledger {
                    name,
                    reason: e.to_string(),
                })?;
        }
        Ok(())
    }

    /// The centre's replica of a station-day ledger, or a new one.
    fn load_ledger(
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
    fn with_ledger(
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
        let Some((owner, day)) = crate::ledger::split_name(name) else {
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
        let conn = lock(&self.conn);
        let mut answer = None;
        self.with_ledger(&conn, station, day, |ledger| {
            if let Some(m) = message {
                ledger.receive_sync_message(peer, m)?;
            }
            answer = ledger.generate_sync_message(peer);
            Ok(())
        })?;
        Ok(answer)
    }

    /// The centre's replica of ledger `name`, if it has one.
    pub fn ledger(&self, name: &str) -> Result<Option<Ledger>, CentreError> {
        let Some((station, day)) = crate::ledger::split_name(name) else {
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

    /// Every check of [`Self::ingest`], in order, and the insert when all pass.
    fn decide(
        &self,
        conn: &Connection,
        bytes: &[u8],
        now_ms: i64,
    ) -> Result<Ingested, CentreError> {
        if bytes.len() > MAX_ENVELOPE {
            return Ok(Ingested::Rejected {
                id: None,
                station: None,
                reason: RecordError::Schema(format!(
                    "envelope is {} bytes, more than the {MAX_ENVELOPE} allowed",
                    bytes.len()
                ))
                .to_string(),
            });
        }
        let env = match Envelope::<Signed>::from_bytes(bytes) {
            Ok(env) => env,
            Err(e) => {
                let (id, station) = claimed_names(bytes);
                return Ok(Ingested::Rejected {
                    id,
                    station,
                    reason: e.to_string(),
                });
            }
        };
        let body = env.body();
        let rejected = |reason: String| Ingested::Rejected {
            id: Some(body.id.clone()),
            station: Some(body.station.clone()),
            reason,
        };

        let Some(key) = station_key_in(conn, &self.db_path, &body.station)? else {
            return Ok(rejected(format!(
                "unknown station {}: it is not registered at the centre",
                body.station
            )));
        };
        if let Err(e) = env.verify_signature(&key) {
            return Ok(rejected(e.to_string()));
        }
        if let Err(e) = check_officer(&env) {
            return Ok(rejected(e.to_string()));
        }

        // `from_bytes` accepted only canonical bytes, so this is the envelope's chain hash.
        let hash = sha256_hex(bytes);
        let seq = i64::try_from(body.seq).unwrap_or(i64::MAX);
        let mut stmt = conn
            .prepare(
                "SELECT id, station, seq, hash FROM envelopes
                 WHERE id = ?1 OR (station = ?2 AND seq = ?3)",
            )
            .map_err(|e| self.sql(e))?;
        let existing = stmt
            .query_map(params![body.id, body.station, seq], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.sql(e))?;
        if existing.iter().any(|(_, _, _, h)| *h == hash) {
            return Ok(Ingested::AlreadyHave {
                id: body.id.clone(),
            });
        }
        if let Some((other_id, other_station, other_seq, _)) = existing.first() {
            let reason = if *other_station == body.station && *other_seq == seq {
                format!(
                    "chain fork: the centre already has a different envelope at sequence {} of station {} (id {other_id})",
                    body.seq, body.station
                )
            } else {
                format!(
                    "chain fork: id {} is already used by another envelope (station {other_station}, sequence {other_seq})",
                    body.id
                )
            };
            return Ok(rejected(reason));
        }

        let (last_seq, last_hash) = head_in(conn, &body.station).map_err(|e| self.sql(e))?;
        if let Err(e) = env.verify_chain_link(last_seq + 1, &last_hash) {
            return Ok(rejected(e.to_string()));
        }

        let sealed = match self.read_blob(&body.payload.sha256) {
            Ok(sealed) => sealed,
            Err(CentreError::BlobMissing(sha)) => {
                return Ok(rejected(format!(
                    "payload not received: the centre has no complete payload {sha}; send it before its envelope"
                )))
            }
            Err(e) => return Err(e),
        };
        if let Err(e) = env.verify_payload(&sealed) {
            return Ok(rejected(e.to_string()));
        }

        conn.execute(
            "INSERT INTO envelopes
               (station, seq, id, hash, envelope, payload_sha256, payload_len, received_ms, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'verified')",
            params![
                body.station,
                seq,
                body.id,
                hash,
                bytes,
                body.payload.sha256,
                sealed.len() as i64,
                now_ms
            ],
        )
        .map_err(|e| self.sql(e))?;
        Ok(Ingested::Stored {
            id: body.id.clone(),
            station: body.station.clone(),
            seq: body.seq,
        })
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

        let mut stmt = conn
            .prepare(
                "SELECT station, seq, id, hash, envelope, payload_sha256, payload_len
                 FROM envelopes ORDER BY station, seq",
            )
            .map_err(|e| self.sql(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.sql(e))?;
        let (mut records, mut valid) = (0u64, 0u64);
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
            if station != chain_station {
                chain_station.clone_from(&station);
                expected_seq = 1;
                expected_prev = GENESIS.to_string();
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
        Ok(VerifyReport {
            ok: problems.is_empty(),
            records,
            valid,
            problems,
        })
    }

    /// Counts of stations and records.
    pub fn stats(&self) -> Result<Stats, CentreError> {
        let conn = lock(&self.conn);
        conn.query_row(
            "SELECT (SELECT count(*) FROM stations),
                    (SELECT count(*) FROM envelopes),
                    (SELECT count(*) FROM envelopes WHERE status = 'verified'),
                    (SELECT count(*) FROM (
                        SELECT DISTINCT r.station, r.id FROM rejections r
                        WHERE NOT EXISTS (SELECT 1 FROM envelopes e
                                          WHERE e.id = r.id AND e.station = r.station)))",
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

fn log_outcomes(outcomes: &[Ingested]) {
    for outcome in outcomes {
        match outcome {
            Ingested::Stored { id, station, seq } => {
                tracing::info!(%id, %station, seq, "envelope stored")
            }
            Ingested::AlreadyHave { id } => tracing::debug!(%id, "envelope already stored"),
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

fn save_ledger(
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

fn setup(conn: &mut Connection, path: &Path) -> Result<(), CentreError> {
    let sql = |e| CentreError::from_sqlite(path, e);
    conn.busy_timeout(Duration::from_secs(10)).map_err(sql)?;
    // Reading the schema first turns "not a database" into a clear error before anything writes.
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(sql)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(sql)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(CentreError::Migration(format!(
            "journal mode is {mode}, expected wal"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(sql)?;
    migrations().to_latest(conn).map_err(|e| match e {
        rusqlite_migration::Error::RusqliteError { err, .. } => CentreError::from_sqlite(path, err),
        other => CentreError::Migration(other.to_string()),
    })
}

/// The registered key of `station`. A key that no longer parses (it was checked when registered)
/// means the row is damaged: say so rather than treat the station as unknown.
fn station_key_in(
    conn: &Connection,
    path: &Path,
    station: &str,
) -> Result<Option<VerifyingKey>, CentreError> {
    let hex: Option<String> = conn
        .query_row(
            "SELECT public_key FROM stations WHERE id = ?1",
            [station],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| CentreError::from_sqlite(path, e))?;
    hex.map(|h| {
        parse_verifying_key(&h).map_err(|e| CentreError::Damaged {
            path: path.to_path_buf(),
            detail: format!("registered key of station {station} is unreadable: {e}"),
        })
    })
    .transpose()
}

fn head_in(conn: &Connection, station: &str) -> rusqlite::Result<(u64, String)> {
    let head: Option<(i64, String)> = conn
        .query_row(
            "SELECT seq, hash FROM envelopes WHERE station = ?1 ORDER BY seq DESC LIMIT 1",
            [station],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(head.map_or((0, GENESIS.to_string()), |(s, h)| (s as u64, h)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{
        CaptureTimes, CoSignature, EnrolmentKind, EnvelopeBody, PayloadRef, QualitySummary,
        ENVELOPE_VERSION,
    };
    use crate::StationKey;

    const NOW: i64 = 1_750_000_000_000;

    /// A registered station with its badge, making envelopes the way the station does.
    struct Van {
        name: String,
        key: StationKey,
        officer: StationKey,
    }

    impl Van {
        fn new(name: &str) -> Van {
            Van {
                name: name.into(),
                key: StationKey::generate(),
                officer: StationKey::generate(),
            }
        }

        fn public(&self) -> StationPublic {
            StationPublic::new(&self.name, &self.key)
        }

        fn body(&self, seq: u64, prev: &str, sealed: &[u8], salt: u128) -> EnvelopeBody {
            EnvelopeBody {
                v: ENVELOPE_VERSION,
                // Distinct per station, sequence and salt, and the same on every run.
                id: {
                    let van = u128::from(crate::canonical::sha256(self.name.as_bytes())[0]);
                    ulid::Ulid::from_parts(
                        1_700_000_000_000 + seq,
                        van << 72 | salt << 16 | seq as u128,
                    )
                    .to_string()
                },
                kind: EnrolmentKind::New,
                station: self.name.clone(),
                officer: "OFF-1".into(),
                seq,
                prev: prev.into(),
                demographics_schema: "cnie-v1".into(),
                captured: CaptureTimes {
                    started_ms: 1,
                    face_ms: 2,
                    fingers_ms: 3,
                    signature_ms: 4,
                    finished_ms: 5,
                },
                quality: QualitySummary {
                    face: 80,
                    face_attempts: 1,
                    fingers: vec![],
                    finger_exceptions: vec![],
                    below_threshold: vec![],
                },
                payload: PayloadRef {
                    sha256: sha256_hex(sealed),
                    len: sealed.len() as u64,
                },
            }
        }

        /// Co-signed by the badge, signed by `signer` (normally the station's own key).
        fn seal(&self, body: EnvelopeBody, signer: &StationKey) -> Envelope<Signed> {
            let env = Envelope::new(body).unwrap();
            let sig = self.officer.sign(&env.officer_message().unwrap());
            env.with_officer_signature(CoSignature {
                key: self.officer.public_hex(),
                sig: hex::encode(sig.to_bytes()),
            })
            .sign(signer)
            .unwrap()
        }

        fn envelope(&self, seq: u64, prev: &str, sealed: &[u8]) -> Envelope<Signed> {
            self.seal(self.body(seq, prev, sealed, 0), &self.key)
        }
    }

    fn payload(n: u8) -> Vec<u8> {
        (0..1000u32).map(|i| (i as u8).wrapping_mul(n)).collect()
    }

    fn upload(store: &CentreStore, sealed: &[u8]) {
        let state = store
            .put_blob_chunk(&sha256_hex(sealed), 0, sealed.len() as u64, sealed)
            .unwrap();
        assert_eq!(
            state,
            BlobState::Complete {
                len: sealed.len() as u64
            }
        );
    }

    fn setup() -> (tempfile::TempDir, CentreStore, Van) {
        let dir = tempfile::tempdir().unwrap();
        let store = CentreStore::open(dir.path()).unwrap();
        let van = Van::new("VAN-07-A");
        assert!(store.add_station(&van.public(), NOW).unwrap());
        (dir, store, van)
    }

    /// Store a chain of `n` envelopes with uploaded payloads; returns them.
    fn chain(store: &CentreStore, van: &Van, n: u64) -> Vec<Envelope<Signed>> {
        let mut out: Vec<Envelope<Signed>> = Vec::new();
        for seq in 1..=n {
            let prev = out
                .last()
                .map_or(GENESIS.to_string(), |e| e.hash().unwrap());
            let sealed = payload(seq as u8);
            upload(store, &sealed);
            let env = van.envelope(seq, &prev, &sealed);
            let got = store
                .ingest(&env.to_bytes().unwrap(), NOW + seq as i64)
                .unwrap();
            assert_eq!(
                got,
                Ingested::Stored {
                    id: env.body().id.clone(),
                    station: van.name.clone(),
                    seq
                }
            );
            out.push(env);
        }
        out
    }

    fn reason(outcome: Ingested) -> String {
        match outcome {
            Ingested::Rejected { reason, .. } => reason,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn store_is_shareable_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<CentreStore>();
    }

    #[test]
    fn three_record_chain_is_stored_and_re_ingest_is_harmless() {
        let (_dir, store, van) = setup();
        assert_eq!(store.head(&van.name).unwrap(), (0, GENESIS.to_string()));
        let envs = chain(&store, &van, 3);
        assert_eq!(store.head(&van.name).unwrap(), (3, envs[2].hash().unwrap()));
        let again = store
            .ingest(&envs[1].to_bytes().unwrap(), NOW + 10)
            .unwrap();
        assert_eq!(
            again,
            Ingested::AlreadyHave {
                id: envs[1].body().id.clone()
            }
        );
        let stats = store.stats().unwrap();
        assert_eq!(
            stats,
            Stats {
                stations: 1,
                records: 3,
                verified: 3,
                rejected: 0
            }
        );
        let infos = store.stations().unwrap();
        assert_eq!((infos[0].records, infos[0].last_seq), (3, 3));
        assert_eq!(infos[0].key_hex, van.key.public_hex());
        assert!(store.verify_all().unwrap().ok);
    }

    #[test]
    fn envelope_from_an_unknown_station_is_refused_and_recorded() {
        let (_dir, store, _van) = setup();
        let stranger = Van::new("VAN-99-Z");
        let sealed = payload(1);
        upload(&store, &sealed);
        let env = stranger.envelope(1, GENESIS, &sealed);
        let got = store.ingest(&env.to_bytes().unwrap(), NOW).unwrap();
        assert_eq!(
            got,
            Ingested::Rejected {
                id: Some(env.body().id.clone()),
                station: Some("VAN-99-Z".into()),
                reason: "unknown station VAN-99-Z: it is not registered at the centre".into(),
            }
        );
        assert_eq!(store.stats().unwrap().rejected, 1);
        assert!(matches!(
            store.head("VAN-99-Z"),
            Err(CentreError::UnknownStation(s)) if s == "VAN-99-Z"
        ));
    }

    #[test]
    fn forged_station_signature_is_refused() {
        let (_dir, store, van) = setup();
        let sealed = payload(1);
        upload(&store, &sealed);
        let forger = StationKey::generate();
        let env = van.seal(van.body(1, GENESIS, &sealed, 0), &forger);
        let got = store.ingest(&env.to_bytes().unwrap(), NOW).unwrap();
        assert_eq!(reason(got), RecordError::Signature.to_string());
        let st = store.statuses(&van.name, &[env.body().id.clone()]).unwrap();
        assert_eq!(st[0].status, "rejected");
        assert_eq!(
            st[0].reason.as_deref(),
            Some("station signature does not verify")
        );
        assert_eq!(store.stats().unwrap().records, 0);
    }

    #[test]
    fn missing_or_wrong_officer_co_signature_is_refused() {
        let (_dir, store, van) = setup();
        let sealed = payload(1);
        upload(&store, &sealed);
        let bare = Envelope::new(van.body(1, GENESIS, &sealed, 0))
            .unwrap()
            .sign(&van.key)
            .unwrap();
        let got = store.ingest(&bare.to_bytes().unwrap(), NOW).unwrap();
        assert_eq!(
            reason(got),
            RecordError::OfficerSignatureMissing.to_string()
        );

        // Badge key of one officer, signature of another.
        let env = Envelope::new(van.body(1, GENESIS, &sealed, 1)).unwrap();
        let other = StationKey::generate();
        let sig = other.sign(&env.officer_message().unwrap());
        let env = env
            .with_officer_signature(CoSignature {
                key: van.officer.public_hex(),
                sig: hex::encode(sig.to_bytes()),
            })
            .sign(&van.key)
            .unwrap();
        let got = store.ingest(&env.to_bytes().unwrap(), NOW).unwrap();
        assert_eq!(reason(got), RecordError::OfficerSignature.to_string());
    }

    #[test]
    fn chain_gap_is_refused_then_accepted_in_order() {
        let (_dir, store, van) = setup();
        let (p1, p2) = (payload(1), payload(2));
        upload(&store, &p1);
        upload(&store, &p2);
        let first = van.envelope(1, GENESIS, &p1);
        let second = van.envelope(2, &first.hash().unwrap(), &p2);
        let got = store.ingest(&second.to_bytes().unwrap(), NOW).unwrap();
        assert_eq!(reason(got), "chain gap: expected sequence 1, found 2");
        assert_eq!(store.stats().unwrap().rejected, 1);
        // Out of order is not fatal: once the gap is filled, the same envelope goes in.
        for env in [&first, &second] {
            assert!(matches!(
                store.ingest(&env.to_bytes().unwrap(), NOW).unwrap(),
                Ingested::Stored { .. }
            ));
        }
        let st = store
            .statuses(&van.name, &[second.body().id.clone(), "01JUNKNOWN".into()])
            .unwrap();
        assert_eq!(
            st,
            vec![
                RecordStatus {
                    id: second.body().id.clone(),
                    status: "verified".into(),
                    reason: None
                },
                RecordStatus {
                    id: "01JUNKNOWN".into(),
                    status: "unknown".into(),
                    reason: None
                },
            ]
        );
        assert_eq!(store.stats().unwrap().rejected, 0);
    }

    #[test]
    fn chain_fork_is_refused() {
        let (_dir, store, van) = setup();
        let envs = chain(&store, &van, 1);
        let other = payload(9);
        upload(&store, &other);
        // Same sequence number, other content.
        let twin = van.seal(van.body(1, GENESIS, &other, 7), &van.key);
        let got = reason(store.ingest(&twin.to_bytes().unwrap(), NOW).unwrap());
        assert!(got.starts_with("chain fork: "), "{got}");
        assert!(got.contains(&envs[0].body().id), "{got}");
        // Same id, other content.
        let mut body = van.body(2, &envs[0].hash().unwrap(), &other, 0);
        body.id = envs[0].body().id.clone();
        let reuse = van.seal(body, &van.key);
        let got = reason(store.ingest(&reuse.to_bytes().unwrap(), NOW).unwrap());
        assert!(got.starts_with("chain fork: "), "{got}");
        // Next sequence number, but built on another history.
        let stray = van.envelope(2, GENESIS, &other);
        let got = reason(store.ingest(&stray.to_bytes().unwrap(), NOW).unwrap());
        assert!(got.starts_with("chain fork at sequence 2"), "{got}");
        assert_eq!(store.stats().unwrap().records, 1);
    }

    #[test]
    fn envelope_before_its_payload_is_refused() {
        let (_dir, store, van) = setup();
        let sealed = payload(1);
        let env = van.envelope(1, GENESIS, &sealed);
        let got = reason(store.ingest(&env.to_bytes().unwrap(), NOW).unwrap());
        assert!(got.starts_with("payload not received"), "{got}");
        // Half an upload is still not received.
        store
            .put_blob_chunk(&sha256_hex(&sealed), 0, sealed.len() as u64, &sealed[..10])
            .unwrap();
        let got = reason(store.ingest(&env.to_bytes().unwrap(), NOW).unwrap());
        assert!(got.starts_with("payload not received"), "{got}");
        upload(&store, &sealed);
        assert!(matches!(
            store.ingest(&env.to_bytes().unwrap(), NOW).unwrap(),
            Ingested::Stored { .. }
        ));
    }

    #[test]
    fn payload_that_does_not_match_the_envelope_is_refused() {
        let (dir, store, van) = setup();
        let sealed = payload(1);
        upload(&store, &sealed);
        let mut body = van.body(1, GENESIS, &sealed, 0);
        body.payload.len += 1;
        let env = van.seal(body, &van.key);
        let got = reason(store.ingest(&env.to_bytes().unwrap(), NOW).unwrap());
        assert!(got.starts_with("payload length mismatch"), "{got}");

        // A payload file damaged on disk after upload.
        let path = dir.path().join("blobs").join(sha256_hex(&sealed));
        let mut bytes = fs::read(&path).unwrap();
        bytes[3] ^= 0x40;
        fs::write(&path, bytes).unwrap();
        let env = van.envelope(1, GENESIS, &sealed);
        let got = reason(store.ingest(&env.to_bytes().unwrap(), NOW).unwrap());
        assert!(got.starts_with("payload hash mismatch"), "{got}");
    }

    #[test]
    fn garbage_envelope_is_refused_with_what_could_be_read() {
        let (_dir, store, _van) = setup();
        let got = store.ingest(b"not json", NOW).unwrap();
        assert!(
            matches!(got, Ingested::Rejected { id: None, station: None, ref reason }
            if reason.starts_with("envelope does not follow the schema"))
        );
        let claimed = br#"{"body":{"id":"01ABC","station":"VAN-07-A"},"extra":1}"#;
        let got = store.ingest(claimed, NOW).unwrap();
        assert!(
            matches!(got, Ingested::Rejected { id: Some(ref i), station: Some(ref s), .. }
            if i == "01ABC" && s == "VAN-07-A")
        );
        let st = store.statuses("VAN-07-A", &["01ABC".into()]).unwrap();
        assert_eq!(st[0].status, "rejected");
        let huge = vec![b' '; MAX_ENVELOPE + 1];
        assert!(matches!(
            store.ingest(&huge, NOW).unwrap(),
            Ingested::Rejected { .. }
        ));
    }

    #[test]
    fn blob_upload_resumes_in_chunks_and_checks_the_hash() {
        let (dir, store, _van) = setup();
        let sealed = payload(3);
        let sha = sha256_hex(&sealed);
        let total = sealed.len() as u64;
        assert_eq!(store.blob_state(&sha).unwrap(), BlobState::Absent);
        assert_eq!(
            store
                .put_blob_chunk(&sha, 0, total, &sealed[..400])
                .unwrap(),
            BlobState::Partial { have: 400 }
        );
        // Skipping ahead is refused and says where to resume.
        assert!(matches!(
            store.put_blob_chunk(&sha, 800, total, &sealed[800..]),
            Err(CentreError::OffsetMismatch { have: 400 })
        ));
        assert_eq!(
            store.blob_state(&sha).unwrap(),
            BlobState::Partial { have: 400 }
        );
        // An overlapping resend is fine: only the new bytes are written.
        assert_eq!(
            store
                .put_blob_chunk(&sha, 300, total, &sealed[300..800])
                .unwrap(),
            BlobState::Partial { have: 800 }
        );
        assert_eq!(
            store
                .put_blob_chunk(&sha, 800, total, &sealed[800..])
                .unwrap(),
            BlobState::Complete { len: total }
        );
        assert_eq!(store.read_blob(&sha).unwrap(), sealed);
        assert!(!dir.path().join("blobs/partial").join(&sha).exists());
        // Idempotent once complete.
        assert_eq!(
            store.put_blob_chunk(&sha, 0, total, &sealed[..10]).unwrap(),
            BlobState::Complete { len: total }
        );

        // Bytes that do not hash to their address are discarded at the last chunk.
        let other = payload(5);
        let claimed = sha256_hex(&payload(6));
        store
            .put_blob_chunk(&claimed, 0, total, &other[..500])
            .unwrap();
        let err = store
            .put_blob_chunk(&claimed, 500, total, &other[500..])
            .unwrap_err();
        assert!(
            matches!(err, CentreError::BlobHashMismatch { ref expected, ref found }
            if *expected == claimed && *found == sha256_hex(&other))
        );
        assert_eq!(store.blob_state(&claimed).unwrap(), BlobState::Absent);
        assert!(matches!(
            store.read_blob(&claimed),
            Err(CentreError::BlobMissing(_))
        ));
    }

    #[test]
    fn blob_limits_are_enforced() {
        let (_dir, store, _van) = setup();
        let sha = sha256_hex(b"x");
        assert!(matches!(
            store.put_blob_chunk(&sha, 0, MAX_BLOB + 1, b"x"),
            Err(CentreError::BlobTooLarge { .. })
        ));
        assert!(matches!(
            store.put_blob_chunk(&sha, 0, 1, b"xy"),
            Err(CentreError::ChunkPastEnd {
                end: 2,
                total_len: 1
            })
        ));
        // A partial longer than the length now claimed cannot become this payload: start over.
        store.put_blob_chunk(&sha, 0, 10, b"abcdef").unwrap();
        assert!(matches!(
            store.put_blob_chunk(&sha, 0, 1, b"x"),
            Err(CentreError::OffsetMismatch { have: 0 })
        ));
        assert_eq!(
            store.put_blob_chunk(&sha, 0, 1, b"x").unwrap(),
            BlobState::Complete { len: 1 }
        );
        let empty = sha256_hex(b"");
        assert_eq!(
            store.put_blob_chunk(&empty, 0, 0, b"").unwrap(),
            BlobState::Complete { len: 0 }
        );
    }

    #[test]
    fn blob_addresses_cannot_escape_the_blob_directory() {
        let (dir, store, _van) = setup();
        let upper = sha256_hex(b"x").to_uppercase();
        for bad in [
            "../x",
            "",
            "partial",
            &"a".repeat(63),
            &upper,
            &format!("../{}", &"a".repeat(61)),
        ] {
            assert!(
                matches!(store.blob_state(bad), Err(CentreError::BadAddress(_))),
                "{bad}"
            );
            assert!(matches!(
                store.put_blob_chunk(bad, 0, 1, b"x"),
                Err(CentreError::BadAddress(_))
            ));
            assert!(matches!(
                store.read_blob(bad),
                Err(CentreError::BadAddress(_))
            ));
        }
        assert!(!dir.path().join("x").exists());
    }

    #[test]
    fn verify_all_names_a_damaged_payload_file_and_a_damaged_envelope_row() {
        let (dir, store, van) = setup();
        let envs = chain(&store, &van, 3);
        let report = store.verify_all().unwrap();
        assert_eq!((report.ok, report.records, report.valid), (true, 3, 3));

        let blob = dir.path().join("blobs").join(sha256_hex(&payload(2)));
        let good = fs::read(&blob).unwrap();
        let mut bad = good.clone();
        bad[100] ^= 1;
        fs::write(&blob, &bad).unwrap();
        let report = store.verify_all().unwrap();
        assert_eq!((report.ok, report.valid), (false, 2));
        assert_eq!(report.problems.len(), 1);
        assert_eq!(report.problems[0].id, envs[1].body().id);
        assert!(report.problems[0]
            .reason
            .starts_with("payload hash mismatch"));
        fs::write(&blob, &good).unwrap();

        let raw = Connection::open(dir.path().join("centre.db")).unwrap();
        let mut row: Vec<u8> = raw
            .query_row("SELECT envelope FROM envelopes WHERE seq = 2", [], |r| {
                r.get(0)
            })
            .unwrap();
        let at = row.len() - 10; // inside the station signature
        row[at] = if row[at] == b'0' { b'1' } else { b'0' };
        raw.execute("UPDATE envelopes SET envelope = ?1 WHERE seq = 2", [&row])
            .unwrap();
        let report = store.verify_all().unwrap();
        assert_eq!((report.ok, report.records, report.valid), (false, 3, 2));
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert_eq!(report.problems[0].id, envs[1].body().id);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["ok", "problems", "records", "valid"]
        );
        assert!(json["problems"][0]["reason"].is_string());
    }

    #[test]
    fn list_and_stats_count_what_is_stored_and_refused() {
        let (_dir, store, van) = setup();
        let other = Van::new("VAN-08-B");
        store.add_station(&other.public(), NOW).unwrap();
        chain(&store, &van, 2);
        chain(&store, &other, 1);
        let sealed = payload(1);
        let forged = van.seal(van.body(3, GENESIS, &sealed, 3), &other.key);
        store.ingest(&forged.to_bytes().unwrap(), NOW).unwrap();
        store.ingest(&forged.to_bytes().unwrap(), NOW + 1).unwrap();
        assert_eq!(
            store.stats().unwrap(),
            Stats {
                stations: 2,
                records: 3,
                verified: 3,
                rejected: 1
            }
        );
        let list = store.list().unwrap();
        let keys: Vec<(&str, u64)> = list.iter().map(|r| (r.station.as_str(), r.seq)).collect();
        assert_eq!(keys, [("VAN-07-A", 1), ("VAN-07-A", 2), ("VAN-08-B", 1)]);
        assert!(list
            .iter()
            .all(|r| r.status == "verified" && r.payload_len == 1000));
        let json = serde_json::to_value(store.stats().unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"stations": 2, "records": 3, "verified": 3, "rejected": 1})
        );
    }

    #[test]
    fn station_registration_refuses_a_second_key() {
        let (_dir, store, van) = setup();
        assert!(!store.add_station(&van.public(), NOW + 1).unwrap());
        let impostor = StationPublic::new(&van.name, &StationKey::generate());
        assert!(matches!(
            store.add_station(&impostor, NOW),
            Err(CentreError::StationKeyConflict { ref station }) if *station == van.name
        ));
        assert_eq!(
            store.station_key(&van.name).unwrap(),
            Some(van.key.verifying_key())
        );
        assert_eq!(store.station_key("VAN-00").unwrap(), None);
        let bad_id = StationPublic::new("../etc", &StationKey::generate());
        assert!(matches!(
            store.add_station(&bad_id, NOW),
            Err(CentreError::BadStationId(_))
        ));
        let mut bad_key = van.public();
        bad_key.station = "VAN-09".into();
        bad_key.ed25519 = "zz".into();
        assert!(matches!(
            store.add_station(&bad_key, NOW),
            Err(CentreError::BadStationKey { .. })
        ));
    }

    #[test]
    fn store_survives_reopening_and_refuses_garbage() {
        let (dir, store, van) = setup();
        chain(&store, &van, 2);
        drop(store);
        let store = CentreStore::open(dir.path()).unwrap();
        assert_eq!(store.head(&van.name).unwrap().0, 2);
        let conn = lock(&store.conn);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!((mode.as_str(), sync, fk), ("wal", 2, 1));
        assert!(migrations().validate().is_ok());

        let other = tempfile::tempdir().unwrap();
        fs::write(other.path().join("centre.db"), vec![0x42; 8192]).unwrap();
        assert!(matches!(
            CentreStore::open(other.path()),
            Err(CentreError::Damaged { .. })
        ));
    }

    #[test]
    fn concurrent_ingests_keep_one_chain() {
        let (_dir, store, van) = setup();
        let store = std::sync::Arc::new(store);
        let mut envs: Vec<Envelope<Signed>> = Vec::new();
        for seq in 1..=8u64 {
            let prev = envs
                .last()
                .map_or(GENESIS.to_string(), |e| e.hash().unwrap());
            let sealed = payload(seq as u8);
            upload(&store, &sealed);
            envs.push(van.envelope(seq, &prev, &sealed));
        }
        // Every thread offers the whole chain until it is in; each envelope is stored once.
        let bytes: Vec<Vec<u8>> = envs.iter().map(|e| e.to_bytes().unwrap()).collect();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                let bytes = bytes.clone();
                std::thread::spawn(move || {
                    let mut stored = 0;
                    for b in &bytes {
                        if let Ingested::Stored { .. } = store.ingest(b, NOW).unwrap() {
                            stored += 1;
                        }
                    }
                    stored
                })
            })
            .collect();
        let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 8);
        assert!(store.verify_all().unwrap().ok);
    }
}
