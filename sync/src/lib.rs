//! `tasjil-sync`: what travels between a station and the issuance centre.
//!
//! This crate is the language the station and the centre share: the record format (signed
//! envelope + sealed payload), the key files, the per-day CRDT ledger, the wire protocol, the USB
//! bundle and receipt formats, and the station's HTTP sync client. It knows nothing of capture
//! devices, of the kiosk UI, or of how the centre stores what it receives (that is the
//! `tasjil-central` crate): the station converts its captures into [`record::Payload`] before
//! sealing.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod bundle;
pub mod canonical;
pub mod client;
pub mod keys;
pub mod ledger;
pub mod output;
pub mod protocol;
pub mod record;
pub mod roster;
pub mod rotation;
pub mod session;
pub mod tls;

pub use canonical::{sha256_hex, to_canonical};
pub use keys::{CentreKeys, CentrePublic, KeyError, StationKey, StationPublic};
pub use record::{
    CoSignature, EnrolmentKind, Envelope, EnvelopeBody, Payload, PayloadRef, RecordError,
    RestoreBody, RestoreLink, Signed, Unsigned, ENVELOPE_VERSION, GENESIS,
};
