//! The Tasjil station: enrolment workflow, local store, keys and the command line.
//!
//! Layering: `cli` parses and prints; `station` owns the data directory, the keys and the one
//! writer of the store; `enrolment` is the workflow (no I/O); `store` is SQLite; `verify` checks
//! everything stored. Devices come from `tasjil-drivers`, records from `tasjil-sync`.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod badge_cli;
pub mod bench;
pub mod bundle;
pub mod centre_keys;
pub mod cli;
pub mod config;
pub mod devices;
pub mod enrolment;
mod id_card_cli;
pub mod kiosk;
pub mod receipt_pdf;
pub mod restore;
pub mod roster;
pub mod schema;
pub mod station;
pub mod store;
pub mod sync;
pub mod update;
pub mod verify;

/// Wall-clock time in Unix milliseconds (the van's clock: it may be off; nothing trusts it for
/// security).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
