//! Officer badges as the station sees them: an identity, a PIN, and an Ed25519 key that never
//! leaves the card and co-signs envelopes and export manifests.
//!
//! This module owns the [`OfficerBadge`] trait and its error type. The PC/SC OpenPGP-card backend
//! is [`crate::card`] (feature `pcsc`); the simulated badge lives with the station's simulation.
//! Nothing here knows what is signed: callers pass a short domain-separated digest.

/// A badge that co-signs after its PIN was verified. One `sign` is one on-card signature; a card
/// badge verifies its PIN again for every signature (OpenPGP "PW1 valid for one signature").
pub trait OfficerBadge {
    fn officer_id(&self) -> String;
    fn officer_name(&self) -> String;
    /// Hex Ed25519 public key of the badge's signing key.
    fn public_key_hex(&self) -> String;
    /// Sign `message` with the badge's key: a short domain tag followed by a SHA-256 digest (a
    /// card takes at most 1 KiB). Returns the 64-byte Ed25519 signature.
    fn sign(&mut self, message: &[u8]) -> Result<[u8; 64], BadgeError>;
}

/// What can go wrong with a badge, in words an officer can act on.
#[derive(Debug, thiserror::Error)]
pub enum BadgeError {
    #[error("the smart-card service (pcscd) is not running or not reachable: {0}")]
    NoService(String),
    #[error("no smart-card reader is attached")]
    NoReader,
    #[error("no badge was inserted in time: insert the badge in the reader")]
    NoCard,
    #[error("the badge was removed during the operation: insert it again and retry")]
    Removed,
    #[error("wrong PIN: {retries_left} attempts left before the badge locks")]
    WrongPin { retries_left: u8 },
    #[error("the badge PIN is blocked: a supervisor must reset it with the admin PIN")]
    Blocked,
    #[error("the PIN must be verified before the badge can sign")]
    PinNotVerified,
    #[error("this card is not a personalised officer badge: {0}")]
    NotPersonalised(String),
    #[error("badge error: {0}")]
    Card(String),
}
