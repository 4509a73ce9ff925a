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

//! Split along its seams: [`registry`] (stations and their keys), [`blobs`] (sealed payload
//! files), [`decide`] (the ingest decision, a pure check over the chain head), [`ingest`] (that
//! decision applied in a transaction), [`ledgers`] (the station-day CRDT replicas), [`bundles`]
//! (USB imports) and [`queries`] (list, verify, stats).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite_migration::{Migrations, M};

pub mod access;
mod blobs;
mod bundles;
pub mod console;
pub mod decide;
mod error;
mod ingest;
mod ledgers;
mod links;
mod queries;
mod registry;
pub mod roster;
mod rotations;
pub mod staff;
#[cfg(test)]
mod tests;

pub use blobs::BlobState;
pub(crate) use blobs::{check_address, check_chunk};
pub use bundles::BundleImport;
pub use decide::{Ingested, MAX_ENVELOPE};
pub use error::CentreError;
pub(crate) use ledgers::LedgerNote;
pub(crate) use links::{judge_link, parse_link};
pub use links::{LinkStored, RestoreLinkRow};
pub use queries::{
    default_sample, CentreRecord, Checked, ListCursor, Problem, Stats, VerifyReport, VerifyScope,
};
pub use registry::{StationInfo, StationState};
/// The centre's answer about one enrolment id of a station (the wire type itself).
pub use tasjil_sync::protocol::RecordStatus;

use ingest::log_outcomes;

/// Largest sealed payload the centre accepts (a real one is about 2 MB).
pub const MAX_BLOB: u64 = 64 << 20;

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../../migrations/0001_init.sql")),
        M::up(include_str!("../../migrations/0002_ledgers.sql")),
        M::up(include_str!("../../migrations/0003_bundles.sql")),
        M::up(include_str!("../../migrations/0004_station_scoped_ids.sql")),
        M::up(include_str!("../../migrations/0005_station_states.sql")),
        M::up(include_str!("../../migrations/0006_staff.sql")),
        M::up(include_str!("../../migrations/0007_access_log.sql")),
        M::up(include_str!("../../migrations/0008_console.sql")),
        M::up(include_str!("../../migrations/0009_training_stations.sql")),
        M::up(include_str!("../../migrations/0010_roster.sql")),
        M::up(include_str!("../../migrations/0011_restore_links.sql")),
        M::up(include_str!("../../migrations/0012_held_decisions.sql")),
        M::up(include_str!("../../migrations/0013_key_rotations.sql")),
        M::up(include_str!("../../migrations/0014_verify_state.sql")),
        M::up(include_str!("../../migrations/0015_station_groups.sql")),
    ])
}

/// The open centre store. See the module docs.
pub struct CentreStore {
    conn: Mutex<Connection>,
    db_path: PathBuf,
    blobs: PathBuf,
    partial: PathBuf,
    /// Serialises payload writers in this process; `blob_lock` does the same across processes.
    blob_writer: Mutex<()>,
    /// `blobs/.writer.lock`, locked exclusively by whoever writes payload files (see `blobs`).
    blob_lock: fs::File,
    /// This process's Automerge actor: fresh at every start, so no two writers ever share one.
    actor: [u8; 16],
    /// The centre's Ed25519 key, to sign the verdicts written into ledgers (vans act only on
    /// signed ones). Set by [`Self::sign_verdicts_with`]; without it verdicts go unsigned.
    signer: std::sync::OnceLock<ed25519_dalek::SigningKey>,
    /// Roster versions already read, by version (a version never changes once issued).
    rosters: Mutex<std::collections::HashMap<u64, std::sync::Arc<tasjil_sync::roster::Roster>>>,
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

impl CentreStore {
    /// Open (creating if needed) the store in `dir`: `dir/centre.db` and `dir/blobs/{,partial/}`.
    pub fn open(dir: &Path) -> Result<CentreStore, CentreError> {
        let blobs = dir.join("blobs");
        let partial = blobs.join("partial");
        private_dir(dir)?;
        private_dir(&blobs)?;
        private_dir(&partial)?;
        let lock_path = blobs.join(".writer.lock");
        let blob_lock = private_file(&lock_path).map_err(|e| CentreError::io(&lock_path, e))?;
        let db_path = dir.join("centre.db");
        let mut conn =
            Connection::open(&db_path).map_err(|e| CentreError::from_sqlite(&db_path, e))?;
        setup(&mut conn, &db_path)?;
        let store = CentreStore {
            conn: Mutex::new(conn),
            db_path,
            blobs,
            partial,
            blob_writer: Mutex::new(()),
            blob_lock,
            actor: {
                use rand_core::RngCore;
                let mut a = [0u8; 16];
                rand_core::OsRng.fill_bytes(&mut a);
                a
            },
            signer: std::sync::OnceLock::new(),
            rosters: Mutex::new(std::collections::HashMap::new()),
        };
        store.fan_out_blobs()?;
        Ok(store)
    }

    fn sql(&self, e: rusqlite::Error) -> CentreError {
        CentreError::from_sqlite(&self.db_path, e)
    }

    /// Path of the SQLite file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// Sign every verdict written from now on (verified, rejected, issuance statuses) with the
    /// centre's key: a van marks a record acknowledged, and purges its payload, only on a signed
    /// verdict. The first key set stays.
    pub fn sign_verdicts_with(&self, key: ed25519_dalek::SigningKey) {
        let _ = self.signer.set(key);
    }

    /// `entry` signed as the verdict on envelope `envelope_hash` of `station`'s `id`, when the
    /// store has the centre's key.
    pub(crate) fn verdict(
        &self,
        entry: tasjil_sync::ledger::StatusEntry,
        station: &str,
        id: &str,
        envelope_hash: &str,
    ) -> tasjil_sync::ledger::StatusEntry {
        match self.signer.get() {
            Some(key) => entry.signed(key, station, id, envelope_hash),
            None => entry,
        }
    }
}

/// Create `dir` if needed and make it 0700: it holds sealed personal data and the centre's keys.
pub fn private_dir(dir: &Path) -> Result<(), CentreError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .and_then(|()| fs::set_permissions(dir, fs::Permissions::from_mode(0o700)))
        .map_err(|e| CentreError::io(dir, e))
}

/// Open (creating, mode 0600) a file for writing without truncating it.
fn private_file(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
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
