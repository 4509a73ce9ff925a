//! The enrolment record: a signed [`Envelope`] that anyone may read and verify, and a sealed
//! [`Payload`] that only the centre can open.
//!
//! The envelope binds the payload by the SHA-256 and length of its *ciphertext*, so the payload is
//! content-addressed and age needs no associated data. Envelopes of one station form a hash chain
//! through `prev`.

mod envelope;
mod payload;
mod restore;

pub use envelope::{
    CaptureTimes, CoSignature, EnrolmentKind, Envelope, EnvelopeBody, FingerQuality, PayloadRef,
    QualitySummary, Signed, Unsigned, ENVELOPE_VERSION, GENESIS,
};
pub use payload::{
    Payload, PayloadException, PayloadFinger, PayloadImage, PayloadPreviousCard, PayloadSignature,
};
pub use restore::{RestoreBody, RestoreLink, MIN_RESTORE_JUMP, RESTORE_VERSION};

/// What is wrong with a record. Each variant names the check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("station signature does not verify")]
    Signature,
    #[error("officer co-signature does not verify")]
    OfficerSignature,
    #[error("officer co-signature is missing")]
    OfficerSignatureMissing,
    #[error("chain gap: expected sequence {expected}, found {found}")]
    ChainGap { expected: u64, found: u64 },
    #[error(
        "chain fork at sequence {seq}: previous-envelope hash is {found}, the chain has {expected}"
    )]
    ChainFork {
        seq: u64,
        expected: String,
        found: String,
    },
    #[error("payload hash mismatch: envelope says {expected}, payload is {found}")]
    PayloadHash { expected: String, found: String },
    #[error("payload length mismatch: envelope says {expected} bytes, payload has {found}")]
    PayloadLength { expected: u64, found: u64 },
    #[error("envelope does not follow the schema: {0}")]
    Schema(String),
    #[error("payload is malformed: {0}")]
    Payload(String),
    #[error("cannot seal the payload: {0}")]
    Seal(String),
    #[error("cannot open the sealed payload: {0}")]
    Open(String),
}
