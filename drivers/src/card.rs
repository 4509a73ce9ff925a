//! Officer badges over PC/SC: OpenPGP smart cards read through pcscd (feature `pcsc`).
//!
//! Owns reader discovery, waiting for a card to be inserted or pulled, reading the badge's
//! identity, PIN verification and on-card Ed25519 signing, plus the one-time personalisation a
//! supervisor does with the admin PIN. Knows nothing of envelopes or the store: the station
//! registers [`PcscBadge::public_key_hex`] and verifies signatures itself.
//!
//! Where a badge keeps what (OpenPGP card 3.4 data objects):
//! - officer name: *cardholder name* (DO 5B, ISO 8859-1, at most 39 bytes on most cards);
//! - officer id: *login data* (DO 5E), the DO meant for "the user's login name", ASCII;
//! - signing key: the *signature* key slot, Ed25519, generated on the card (never exported).
//!
//! A badge whose signature slot holds anything else, or without login data, is refused as
//! [`BadgeError::NotPersonalised`].
//!
//! Every operation opens its own PC/SC transaction; a card pulled out mid-operation surfaces as
//! [`BadgeError::Removed`] (the reader is asked whether the card is still present whenever a
//! transmission fails), never as a hang: pcscd fails a transmission to an absent card at once.

use std::ffi::CString;
use std::time::{Duration, Instant};

use card_backend_pcsc::PcscBackend;
use openpgp_card::ocard::algorithm::AlgoSimple;
use openpgp_card::ocard::crypto::{PublicKeyMaterial, SigningAlgo};
use openpgp_card::ocard::data::{Fingerprint, KeyGenerationTime};
use openpgp_card::ocard::{KeyType, StatusBytes};
use openpgp_card::state::Open;
use openpgp_card::Card;
use secrecy::SecretString;

pub use crate::badge::{BadgeError, OfficerBadge};

/// The PC/SC name pcscd uses for "tell me when readers come and go"; not a reader.
const PNP_NOTIFICATION: &str = r"\\?PnP?\Notification";

/// One reader pcscd knows, and whether a card is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    pub name: String,
    pub card_present: bool,
}

pub(crate) fn context() -> Result<pcsc::Context, BadgeError> {
    pcsc::Context::establish(pcsc::Scope::User).map_err(|e| BadgeError::NoService(e.to_string()))
}

pub(crate) fn reader_names(ctx: &pcsc::Context) -> Result<Vec<CString>, BadgeError> {
    match ctx.list_readers_owned() {
        Ok(r) => Ok(r),
        Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
        Err(e) => Err(BadgeError::NoService(e.to_string())),
    }
}

pub(crate) fn states(
    ctx: &pcsc::Context,
    names: &[CString],
) -> Result<Vec<pcsc::ReaderState>, BadgeError> {
    let mut states: Vec<_> = names
        .iter()
        .map(|n| pcsc::ReaderState::new(n.clone(), pcsc::State::UNAWARE))
        .collect();
    if !states.is_empty() {
        ctx.get_status_change(Duration::ZERO, &mut states)
            .map_err(|e| BadgeError::NoService(e.to_string()))?;
    }
    Ok(states)
}

pub(crate) fn present(s: &pcsc::ReaderState) -> bool {
    s.event_state().contains(pcsc::State::PRESENT) && !s.event_state().contains(pcsc::State::MUTE)
}

/// The readers pcscd knows now. An empty list when none is attached; an error only when pcscd
/// itself cannot be reached.
pub fn readers() -> Result<Vec<Reader>, BadgeError> {
    let ctx = context()?;
    let names = reader_names(&ctx)?;
    Ok(states(&ctx, &names)?
        .iter()
        .map(|s| Reader {
            name: s.name().to_string_lossy().into_owned(),
            card_present: present(s),
        })
        .collect())
}

/// Wait until a card is present in any reader (or in `reader`, if given) and return that
/// reader's name. Readers plugged in while waiting are noticed. [`BadgeError::NoCard`] after
/// `timeout`.
pub fn wait_for_card(reader: Option<&str>, timeout: Duration) -> Result<String, BadgeError> {
    let ctx = context()?;
    let deadline = Instant::now() + timeout;
    loop {
        let names: Vec<CString> = reader_names(&ctx)?
            .into_iter()
            .filter(|n| reader.is_none_or(|r| n.to_bytes() == r.as_bytes()))
            .collect();
        let mut watched = states(&ctx, &names)?;
        if let Some(s) = watched.iter().find(|s| present(s)) {
            return Ok(s.name().to_string_lossy().into_owned());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(BadgeError::NoCard);
        }
        // Sleep in pcscd until something changes: a card in a known reader, or a new reader.
        for s in &mut watched {
            s.sync_current_state();
        }
        watched.push(pcsc::ReaderState::new(
            CString::new(PNP_NOTIFICATION).map_err(|e| BadgeError::Card(e.to_string()))?,
            pcsc::State::UNAWARE,
        ));
        match ctx.get_status_change(left.min(Duration::from_secs(1)), &mut watched) {
            Ok(()) | Err(pcsc::Error::Timeout) => {}
            Err(pcsc::Error::UnknownReader) | Err(pcsc::Error::NoReadersAvailable) => {}
            Err(e) => return Err(BadgeError::NoService(e.to_string())),
        }
    }
}

/// Wait until no card is present in `reader`; [`BadgeError::Card`] after `timeout`.
pub fn wait_for_removal(reader: &str, timeout: Duration) -> Result<(), BadgeError> {
    let ctx = context()?;
    let deadline = Instant::now() + timeout;
    loop {
        if !card_in(&ctx, reader)? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BadgeError::Card(format!(
                "the badge is still in {reader}: take it out"
            )));
        }
        let name = CString::new(reader).map_err(|e| BadgeError::Card(e.to_string()))?;
        let mut s = [pcsc::ReaderState::new(name, pcsc::State::PRESENT)];
        match ctx.get_status_change(Duration::from_millis(500), &mut s) {
            Ok(()) | Err(pcsc::Error::Timeout) | Err(pcsc::Error::UnknownReader) => {}
            Err(e) => return Err(BadgeError::NoService(e.to_string())),
        }
    }
}

fn card_in(ctx: &pcsc::Context, reader: &str) -> Result<bool, BadgeError> {
    let names: Vec<CString> = reader_names(ctx)?
        .into_iter()
        .filter(|n| n.to_bytes() == reader.as_bytes())
        .collect();
    Ok(states(ctx, &names)?.iter().any(present))
}

/// What a badge says about itself, read without any PIN.
#[derive(Clone, PartialEq, Eq)]
pub struct BadgeInfo {
    pub reader: String,
    /// OpenPGP application identifier `MANUFACTURER:SERIAL`, unique per card.
    pub ident: String,
    pub officer_name: String,
    pub officer_id: String,
    /// Ed25519 public key of the signature slot.
    pub public_key: [u8; 32],
    /// User PIN attempts left before the card locks it.
    pub pin_retries: u8,
    /// Signatures the card has made (its own counter).
    pub signatures: u32,
}

impl std::fmt::Debug for BadgeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BadgeInfo")
            .field("reader", &self.reader)
            .field("ident", &self.ident)
            .field("officer_id", &self.officer_id)
            .field("public_key", &hex_encode(&self.public_key))
            .field("pin_retries", &self.pin_retries)
            .finish_non_exhaustive()
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An officer badge in a PC/SC reader. Holds the PIN (zeroised on drop) once verified, because
/// the card demands it again before every signature.
pub struct PcscBadge {
    card: Card<Open>,
    info: BadgeInfo,
    pin: Option<SecretString>,
}

impl std::fmt::Debug for PcscBadge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcscBadge")
            .field("info", &self.info)
            .field("unlocked", &self.pin.is_some())
            .finish_non_exhaustive()
    }
}

fn connect(reader: &str) -> Result<Card<Open>, BadgeError> {
    let ctx = context()?;
    let name = CString::new(reader).map_err(|e| BadgeError::Card(e.to_string()))?;
    let backend = PcscBackend::from_pcsc_reader(&ctx, &name, Some(pcsc::ShareMode::Shared))
        .map_err(|e| match e {
            card_backend::SmartcardError::CardNotFound(_) => BadgeError::NoCard,
            e => classify(reader, openpgp_card::Error::Smartcard(e)),
        })?;
    Card::new(backend).map_err(|e| classify(reader, e))
}

/// Turn a card-library error into what happened to the officer. A failure that is not the
/// card's own answer (no response, a broken one, a transport error) is checked against the
/// reader: if the card is gone — or goes within a moment, as vpcd and pcscd notice a removal a
/// little after the transmission failed — it was pulled out.
fn classify(reader: &str, e: openpgp_card::Error) -> BadgeError {
    use openpgp_card::Error as E;
    match e {
        E::CardStatus(StatusBytes::PasswordNotChecked(0)) => BadgeError::Blocked,
        E::CardStatus(StatusBytes::PasswordNotChecked(n)) => {
            BadgeError::WrongPin { retries_left: n }
        }
        E::CardStatus(StatusBytes::AuthenticationMethodBlocked) => BadgeError::Blocked,
        E::CardStatus(StatusBytes::SecurityStatusNotSatisfied) => BadgeError::PinNotVerified,
        E::CardStatus(s) => BadgeError::Card(s.to_string()),
        other => match removed_within(reader, REMOVAL_SETTLE) {
            Ok(true) => BadgeError::Removed,
            Ok(false) => BadgeError::Card(other.to_string()),
            Err(service) => service,
        },
    }
}

/// How long a failed transmission waits for the reader to report a removal.
pub(crate) const REMOVAL_SETTLE: Duration = Duration::from_millis(1500);

pub(crate) fn removed_within(reader: &str, settle: Duration) -> Result<bool, BadgeError> {
    let ctx = context()?;
    let deadline = Instant::now() + settle;
    let name = CString::new(reader).map_err(|e| BadgeError::Card(e.to_string()))?;
    loop {
        if !card_in(&ctx, reader)? {
            return Ok(true);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let mut s = [pcsc::ReaderState::new(name.clone(), pcsc::State::PRESENT)];
        match ctx.get_status_change(left, &mut s) {
            Ok(()) | Err(pcsc::Error::Timeout) => {}
            Err(pcsc::Error::UnknownReader) => return Ok(true),
            Err(e) => return Err(BadgeError::NoService(e.to_string())),
        }
    }
}

fn ed25519_key(material: &PublicKeyMaterial) -> Result<[u8; 32], BadgeError> {
    let PublicKeyMaterial::E(ecc) = material else {
        return Err(BadgeError::NotPersonalised(
            "the signature key is RSA, not Ed25519".into(),
        ));
    };
    // Cards report EdDSA points either bare or with OpenPGP's 0x40 "native point" prefix.
    let data = match ecc.data() {
        [0x40, rest @ ..] if rest.len() == 32 => rest,
        bare => bare,
    };
    data.try_into().map_err(|_| {
        BadgeError::NotPersonalised(format!(
            "the signature key is not an Ed25519 key ({} bytes)",
            data.len()
        ))
    })
}

impl PcscBadge {
    /// Open the badge in `reader` and read its identity (no PIN needed).
    pub fn open(reader: &str) -> Result<PcscBadge, BadgeError> {
        let mut card = connect(reader)?;
        let info = read_info(&mut card, reader)?;
        Ok(PcscBadge {
            card,
            info,
            pin: None,
        })
    }

    pub fn info(&self) -> &BadgeInfo {
        &self.info
    }

    /// PIN attempts left, read from the card now.
    pub fn pin_retries(&mut self) -> Result<u8, BadgeError> {
        let reader = self.info.reader.clone();
        let mut tx = self.card.transaction().map_err(|e| classify(&reader, e))?;
        let status = tx.pw_status_bytes().map_err(|e| classify(&reader, e))?;
        self.info.pin_retries = status.err_count_pw1();
        Ok(self.info.pin_retries)
    }

    /// Check `pin` on the card. A wrong PIN costs one attempt: [`BadgeError::WrongPin`] says how
    /// many are left. On success the badge is unlocked for [`OfficerBadge::sign`].
    pub fn verify_pin(&mut self, pin: &str) -> Result<(), BadgeError> {
        let reader = self.info.reader.clone();
        let result = {
            let mut tx = self.card.transaction().map_err(|e| classify(&reader, e))?;
            tx.verify_user_pin(SecretString::from(pin.to_owned()))
        };
        match result.map_err(|e| classify(&reader, e)) {
            Ok(()) => {
                self.pin = Some(SecretString::from(pin.to_owned()));
                self.info.pin_retries = self.pin_retries()?;
                Ok(())
            }
            Err(BadgeError::WrongPin { .. }) | Err(BadgeError::PinNotVerified) => {
                // Cards differ in whether the status word carries the counter: ask the card.
                let retries_left = self.pin_retries()?;
                self.pin = None;
                Err(if retries_left == 0 {
                    BadgeError::Blocked
                } else {
                    BadgeError::WrongPin { retries_left }
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Have the card sign a SHA-256 digest (as a domain-separated message, see
    /// [`OfficerBadge::sign`]).
    pub fn sign_digest(&mut self, digest: &[u8; 32]) -> Result<[u8; 64], BadgeError> {
        self.sign(digest)
    }
}

fn read_info(card: &mut Card<Open>, reader: &str) -> Result<BadgeInfo, BadgeError> {
    let err = |e| classify(reader, e);
    let mut tx = card.transaction().map_err(err)?;
    let ident = tx.application_identifier().map_err(err)?.ident();
    let officer_name = tx.cardholder_name().map_err(err)?;
    let login = tx.login_data().map_err(err)?;
    let officer_id = String::from_utf8(login).map_err(|_| {
        BadgeError::NotPersonalised("its officer id (login data) is not text".into())
    })?;
    if officer_id.is_empty() {
        return Err(BadgeError::NotPersonalised(format!(
            "card {ident} has no officer id in its login data"
        )));
    }
    let material = tx
        .public_key_material(KeyType::Signing)
        .map_err(|e| match e {
            openpgp_card::Error::CardStatus(_) | openpgp_card::Error::NotFound(_) => {
                BadgeError::NotPersonalised(format!("card {ident} has no signing key"))
            }
            other => classify(reader, other),
        })?;
    let public_key = ed25519_key(&material)?;
    let pin_retries = tx.pw_status_bytes().map_err(err)?.err_count_pw1();
    let signatures = tx.digital_signature_count().map_err(err)?;
    Ok(BadgeInfo {
        reader: reader.to_owned(),
        ident,
        officer_name,
        officer_id,
        public_key,
        pin_retries,
        signatures,
    })
}

impl OfficerBadge for PcscBadge {
    fn officer_id(&self) -> String {
        self.info.officer_id.clone()
    }
    fn officer_name(&self) -> String {
        self.info.officer_name.clone()
    }
    fn public_key_hex(&self) -> String {
        hex_encode(&self.info.public_key)
    }
    /// One PIN verification and one on-card signature, in one transaction.
    fn sign(&mut self, message: &[u8]) -> Result<[u8; 64], BadgeError> {
        let pin = self.pin.clone().ok_or(BadgeError::PinNotVerified)?;
        let reader = self.info.reader.clone();
        let err = |e| classify(&reader, e);
        let mut tx = self.card.transaction().map_err(err)?;
        if let Err(e) = tx.verify_user_signing_pin(pin) {
            let e = err(e);
            if matches!(e, BadgeError::WrongPin { .. } | BadgeError::Blocked) {
                // The PIN was right a moment ago: someone changed the card. Forget the PIN.
                self.pin = None;
            }
            return Err(e);
        }
        let sig = tx
            .card()
            .signature_for_hash(SigningAlgo::ECC, message)
            .map_err(err)?;
        sig.as_slice().try_into().map_err(|_| {
            BadgeError::Card(format!("the card returned a {}-byte signature", sig.len()))
        })
    }
}

/// What a supervisor writes on a blank OpenPGP card to make it an officer badge.
#[derive(Debug, Clone)]
pub struct Personalisation<'a> {
    pub officer_id: &'a str,
    pub officer_name: &'a str,
}

/// Personalise the card in `reader` with the admin PIN: cardholder name, officer id (login
/// data), and a fresh Ed25519 signing key generated on the card. Returns the new public key,
/// which the station registers for this officer. Replaces any earlier signing key.
pub fn personalise(
    reader: &str,
    admin_pin: &str,
    p: &Personalisation<'_>,
) -> Result<[u8; 32], BadgeError> {
    if p.officer_id.is_empty() || !p.officer_id.is_ascii() {
        return Err(BadgeError::Card(
            "the officer id must be non-empty ASCII".into(),
        ));
    }
    if !p.officer_name.chars().all(|c| (c as u32) < 0x100) || p.officer_name.len() > 39 {
        return Err(BadgeError::Card(
            "the cardholder name must be Latin-1 and at most 39 characters".into(),
        ));
    }
    let mut card = connect(reader)?;
    let err = |e| classify(reader, e);
    let mut tx = card.transaction().map_err(err)?;
    let mut admin = tx
        .as_admin_card(SecretString::from(admin_pin.to_owned()))
        .map_err(err)?;
    admin.set_cardholder_name(p.officer_name).map_err(err)?;
    admin.set_login_data(p.officer_id.as_bytes()).map_err(err)?;
    admin
        .set_algorithm(KeyType::Signing, AlgoSimple::Curve25519)
        .map_err(err)?;
    let (material, _) = admin
        .generate_key(openpgp_v4_fingerprint, KeyType::Signing)
        .map_err(err)?;
    ed25519_key(&material)
}

/// The OpenPGP v4 fingerprint of an EdDSA (legacy, Ed25519) public key created at `created`:
/// SHA-1 over the public-key packet, as RFC 4880 §12.2 defines it. Cards store it next to the key.
fn openpgp_v4_fingerprint(
    material: &PublicKeyMaterial,
    created: KeyGenerationTime,
    _slot: KeyType,
) -> Result<Fingerprint, openpgp_card::Error> {
    use sha1::Digest;
    let key =
        ed25519_key(material).map_err(|e| openpgp_card::Error::UnsupportedAlgo(e.to_string()))?;
    // OID 1.3.6.1.4.1.11591.15.1 (Ed25519), then the point as an MPI: 0x40 prefix + 32 bytes
    // = 263 significant bits.
    const OID: [u8; 9] = [0x2B, 0x06, 0x01, 0x04, 0x01, 0xDA, 0x47, 0x0F, 0x01];
    let mut body = vec![4u8];
    body.extend_from_slice(&created.get().to_be_bytes());
    body.push(22); // public-key algorithm: EdDSA
    body.push(OID.len() as u8);
    body.extend_from_slice(&OID);
    body.extend_from_slice(&263u16.to_be_bytes());
    body.push(0x40);
    body.extend_from_slice(&key);
    let mut h = sha1::Sha1::new();
    h.update([0x99]);
    h.update((body.len() as u16).to_be_bytes());
    h.update(&body);
    let fp: [u8; 20] = h.finalize().into();
    Ok(Fingerprint::from(fp))
}
