//! `tasjil-central`: the issuance centre. Registry of station keys, verification and storage of
//! what stations send (over the network or on a USB stick), the HTTP server, and the ANSI/NIST-ITL
//! export. It speaks the formats of `tasjil-sync` and links nothing of the station: no Slint, no
//! devices.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod bench;
pub mod bench_payloads;
pub mod cluster;
pub mod conn;
pub mod console;
pub mod import;
pub mod nist;
pub mod notify;
pub mod server;
pub mod staff;
pub mod store;
pub mod tls;

pub use store::{CentreError, CentreStore};

use ed25519_dalek::VerifyingKey;
use store::{BlobState, Ingested, RecordStatus};

use tasjil_sync::ledger::PeerState;

/// What the HTTP server needs from the centre's storage. [`CentreStore`] (SQLite + a blob
/// directory) is the embedded default; a backend for PostgreSQL + an S3-compatible object store
/// implements the same trait. Every method is blocking: the server calls them on blocking threads.
pub trait CentreBackend: Send + Sync + std::fmt::Debug + 'static {
    fn station_key(&self, station: &str) -> Result<Option<VerifyingKey>, CentreError>;
    fn blob_state(&self, sha256: &str) -> Result<BlobState, CentreError>;
    fn put_blob_chunk(
        &self,
        sha256: &str,
        offset: u64,
        total_len: u64,
        bytes: &[u8],
    ) -> Result<BlobState, CentreError>;
    /// Verify, then store, envelopes in order; refusals are outcomes, not errors.
    fn ingest_batch(&self, envelopes: &[&[u8]], now_ms: i64) -> Result<Vec<Ingested>, CentreError>;
    fn head(&self, station: &str) -> Result<(u64, String), CentreError>;
    fn statuses(&self, station: &str, ids: &[String]) -> Result<Vec<RecordStatus>, CentreError>;
    fn ledger_sync(
        &self,
        station: &str,
        name: &str,
        message: Option<&[u8]>,
        peer: &mut PeerState,
    ) -> Result<Option<Vec<u8>>, CentreError>;
    /// Counts for `/metrics` and `/healthz` (a cheap read: it also proves the store answers).
    fn stats(&self) -> Result<store::Stats, CentreError>;
    /// The signed roster for a station holding version `held`, when newer.
    fn roster_for_station(
        &self,
        held: Option<u64>,
        now_ms: i64,
    ) -> Result<Option<std::sync::Arc<tasjil_sync::roster::Roster>>, CentreError>;
    /// Every centre key rotation after version `have` (canonical bytes).
    fn rotations_after(&self, have: u64) -> Result<Vec<Vec<u8>>, CentreError>;
    /// Verify, then store, a restore link `station` signed.
    fn store_restore_link(
        &self,
        station: &str,
        link: &[u8],
        now_ms: i64,
    ) -> Result<store::LinkStored, CentreError>;
}

impl CentreBackend for CentreStore {
    fn station_key(&self, station: &str) -> Result<Option<VerifyingKey>, CentreError> {
        CentreStore::station_key(self, station)
    }
    fn blob_state(&self, sha256: &str) -> Result<BlobState, CentreError> {
        CentreStore::blob_state(self, sha256)
    }
    fn put_blob_chunk(
        &self,
        sha256: &str,
        offset: u64,
        total_len: u64,
        bytes: &[u8],
    ) -> Result<BlobState, CentreError> {
        CentreStore::put_blob_chunk(self, sha256, offset, total_len, bytes)
    }
    fn ingest_batch(&self, envelopes: &[&[u8]], now_ms: i64) -> Result<Vec<Ingested>, CentreError> {
        CentreStore::ingest_batch(self, envelopes, now_ms)
    }
    fn head(&self, station: &str) -> Result<(u64, String), CentreError> {
        CentreStore::head(self, station)
    }
    fn statuses(&self, station: &str, ids: &[String]) -> Result<Vec<RecordStatus>, CentreError> {
        CentreStore::statuses(self, station, ids)
    }
    fn ledger_sync(
        &self,
        station: &str,
        name: &str,
        message: Option<&[u8]>,
        peer: &mut PeerState,
    ) -> Result<Option<Vec<u8>>, CentreError> {
        CentreStore::ledger_sync(self, station, name, message, peer)
    }
    fn stats(&self) -> Result<store::Stats, CentreError> {
        CentreStore::stats(self)
    }
    fn roster_for_station(
        &self,
        held: Option<u64>,
        now_ms: i64,
    ) -> Result<Option<std::sync::Arc<tasjil_sync::roster::Roster>>, CentreError> {
        CentreStore::roster_for_station(self, held, now_ms)
    }
    fn store_restore_link(
        &self,
        station: &str,
        link: &[u8],
        now_ms: i64,
    ) -> Result<store::LinkStored, CentreError> {
        CentreStore::store_restore_link(self, station, link, now_ms)
    }
    fn rotations_after(&self, have: u64) -> Result<Vec<Vec<u8>>, CentreError> {
        CentreStore::rotations_after(self, have)
    }
}

/// The centre's clock in Unix milliseconds (the only clock the protocol trusts for freshness).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
