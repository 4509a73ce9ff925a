//! What can go wrong in the centre's store, worded for central staff.

use std::io;
use std::path::{Path, PathBuf};

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
    #[error("station {station} was {state} by the centre{}: {}", reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(), if state == "revoked" { "it may never sync or import again; what it sent before stays" } else { "it may not sync or import until central staff resume it" })]
    StationBarred {
        station: String,
        /// "revoked" or "suspended".
        state: String,
        reason: Option<String>,
    },
    #[error("{0}")]
    BadStaff(String),
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
    #[error("{0}")]
    Roster(String),
}

impl CentreError {
    pub(crate) fn from_sqlite(path: &Path, e: rusqlite::Error) -> CentreError {
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

    pub(crate) fn io(path: &Path, source: io::Error) -> CentreError {
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
