//! `tasjil-sync`: what travels between a station and the issuance centre.
//!
//! This crate owns the record format (signed envelope + sealed payload), the key files, and the
//! centre's binary. It knows nothing of capture devices or of the kiosk UI: the station converts its
//! captures into [`record::Payload`] before sealing.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod bundle;
pub mod canonical;
#[cfg(feature = "server")]
pub mod central;
#[cfg(feature = "client")]
pub mod client;
pub mod keys;
pub mod ledger;
pub mod output;
pub mod protocol;
pub mod record;
pub mod session;
pub mod tls;

pub use canonical::{sha256_hex, to_canonical};
pub use keys::{CentreKeys, CentrePublic, KeyError, StationKey, StationPublic};
pub use record::{
    CoSignature, EnrolmentKind, Envelope, EnvelopeBody, Payload, PayloadRef, RecordError, Signed,
    Unsigned, ENVELOPE_VERSION, GENESIS,
};
