//! The issuance centre: registry of station keys, verification and storage of what stations send,
//! and the HTTP server. Built only with the `server` feature; the station never links it.

pub mod server;
pub mod store;

pub use store::{CentreError, CentreStore};

/// The centre's clock in Unix milliseconds (the only clock the protocol trusts for freshness).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
