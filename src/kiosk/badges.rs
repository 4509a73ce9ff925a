//! The kiosk's badge reader: which badge is in the reader, unlocking it with a PIN, and the
//! on-card co-signature. Two sources:
//! - [`BadgeSource::Card`]: OpenPGP-card badges through pcscd (`tasjil_drivers::card`). The worker
//!   polls the readers; a badge inserted opens the PIN pad with the card's own retry counter, a
//!   badge pulled out logs the officer out.
//! - [`BadgeSource::Simulated`]: the simulated badges (`--simulate` or `badge = "sim"`), inserted
//!   with a button on the login view.
//!
//! No Slint types; the worker owns it. The rules about who may do what stay in the station.

use anyhow::Context;

use crate::enrolment::{OfficerBadge, SimBadge};
use tasjil_drivers::BadgeError;

/// Where the kiosk's badges come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadgeSource {
    Simulated,
    Card,
}

/// A badge seen in a reader (identity only: no PIN was checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    pub reader: String,
    pub officer: String,
    pub name: String,
    /// PIN attempts left, as the card counts them.
    pub pin_retries: u8,
}

/// What changed in the reader since the last poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadgeChange {
    Inserted(Inserted),
    /// A card that is not a usable badge (blank, foreign card): what to tell the officer.
    Unusable(String),
    /// The reader cannot be read (pcscd stopped, reader unplugged): what went wrong.
    ReaderProblem(String),
    Removed,
}

/// An unlocked badge: its PIN was verified, it can co-sign.
pub enum Unlocked {
    Sim(SimBadge),
    #[cfg(feature = "pcsc")]
    Card(tasjil_drivers::card::PcscBadge),
}

impl std::fmt::Debug for Unlocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Unlocked({})", self.officer_id())
    }
}

impl OfficerBadge for Unlocked {
    fn officer_id(&self) -> String {
        match self {
            Unlocked::Sim(b) => b.officer_id(),
            #[cfg(feature = "pcsc")]
            Unlocked::Card(b) => b.officer_id(),
        }
    }
    fn officer_name(&self) -> String {
        match self {
            Unlocked::Sim(b) => b.officer_name(),
            #[cfg(feature = "pcsc")]
            Unlocked::Card(b) => b.officer_name(),
        }
    }
    fn public_key_hex(&self) -> String {
        match self {
            Unlocked::Sim(b) => b.public_key_hex(),
            #[cfg(feature = "pcsc")]
            Unlocked::Card(b) => b.public_key_hex(),
        }
    }
    fn sign(&mut self, message: &[u8]) -> Result<[u8; 64], BadgeError> {
        match self {
            Unlocked::Sim(b) => b.sign(message),
            #[cfg(feature = "pcsc")]
            Unlocked::Card(b) => b.sign(message),
        }
    }
}

/// Why a PIN did not unlock the badge, in a form the login view can show.
#[derive(Debug, thiserror::Error)]
pub enum UnlockError {
    #[error("wrong PIN{}", retries_text(*.retries_left))]
    WrongPin { retries_left: Option<u8> },
    #[error("the badge PIN is blocked: a supervisor must reset it with the admin PIN")]
    Blocked,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn retries_text(retries_left: Option<u8>) -> String {
    retries_left.map_or(String::new(), |n| {
        format!(": {n} attempts left before the badge locks")
    })
}

impl UnlockError {
    /// Attempts left when the card told us.
    pub fn retries_left(&self) -> Option<u8> {
        match self {
            UnlockError::WrongPin { retries_left } => *retries_left,
            UnlockError::Blocked => Some(0),
            UnlockError::Other(_) => None,
        }
    }
}

impl From<BadgeError> for UnlockError {
    fn from(e: BadgeError) -> Self {
        match e {
            BadgeError::WrongPin { retries_left } => UnlockError::WrongPin {
                retries_left: Some(retries_left),
            },
            BadgeError::Blocked => UnlockError::Blocked,
            other => UnlockError::Other(other.into()),
        }
    }
}

/// The reader as the worker sees it.
#[derive(Debug)]
pub struct Badges {
    source: BadgeSource,
    /// The badge in the reader at the last poll (card source only).
    inserted: Option<Inserted>,
    /// A card in the reader that is not a badge (reported once).
    unusable: Option<String>,
}

impl Badges {
    pub fn new(source: BadgeSource) -> Badges {
        Badges {
            source,
            inserted: None,
            unusable: None,
        }
    }

    pub fn source(&self) -> BadgeSource {
        self.source
    }

    /// The badge in the reader at the last poll.
    pub fn inserted(&self) -> Option<&Inserted> {
        self.inserted.as_ref()
    }

    /// Look at the readers (card source; the simulated source never changes by itself).
    /// Returns what changed since the last call.
    pub fn poll(&mut self) -> Option<BadgeChange> {
        if self.source != BadgeSource::Card {
            return None;
        }
        match read_reader(self.inserted.as_ref()) {
            Ok(Seen::Badge(badge)) => {
                self.unusable = None;
                if self.inserted.as_ref() == Some(&badge) {
                    return None;
                }
                let same_officer = self
                    .inserted
                    .as_ref()
                    .is_some_and(|b| b.officer == badge.officer && b.reader == badge.reader);
                self.inserted = Some(badge.clone());
                // The retry counter moving is not a new insertion.
                (!same_officer).then_some(BadgeChange::Inserted(badge))
            }
            Ok(Seen::Same) => None,
            Ok(Seen::NotABadge(why)) => {
                let was = self.inserted.take().is_some();
                if self.unusable.as_ref() == Some(&why) {
                    return was.then_some(BadgeChange::Removed);
                }
                self.unusable = Some(why.clone());
                Some(BadgeChange::Unusable(why))
            }
            Ok(Seen::Nothing) => {
                self.unusable = None;
                self.inserted.take().map(|_| BadgeChange::Removed)
            }
            Err(e) => {
                // pcscd gone: nobody can be proven to be at the kiosk any more.
                let was = self.inserted.take().is_some();
                let why = format!("{e}");
                if self.unusable.as_ref() != Some(&why) {
                    tracing::warn!("badge reader: {why}");
                    self.unusable = Some(why.clone());
                    return Some(if was {
                        BadgeChange::Removed
                    } else {
                        BadgeChange::ReaderProblem(why)
                    });
                }
                was.then_some(BadgeChange::Removed)
            }
        }
    }

    /// Unlock `officer`'s badge with `pin`. A card badge must be the one in the reader and
    /// carry that officer id (it was read at insertion); the card counts wrong PINs itself.
    pub fn unlock(&mut self, officer: &str, pin: &str) -> Result<Unlocked, UnlockError> {
        match self.source {
            BadgeSource::Simulated => SimBadge::unlock(officer, pin)
                .map(Unlocked::Sim)
                .map_err(|_| UnlockError::WrongPin { retries_left: None }),
            BadgeSource::Card => self.unlock_card(officer, pin),
        }
    }

    #[cfg(feature = "pcsc")]
    fn unlock_card(&mut self, officer: &str, pin: &str) -> Result<Unlocked, UnlockError> {
        use tasjil_drivers::card::PcscBadge;
        let inserted = self
            .inserted
            .clone()
            .context("no badge in the reader: insert the badge")?;
        let mut badge = PcscBadge::open(&inserted.reader).map_err(UnlockError::from)?;
        if badge.officer_id() != officer {
            return Err(anyhow::anyhow!(
                "the badge in the reader is {}'s, not {officer}'s",
                badge.officer_id()
            )
            .into());
        }
        let result = badge.verify_pin(pin);
        if let Some(b) = self.inserted.as_mut() {
            b.pin_retries = badge.info().pin_retries;
        }
        result?;
        Ok(Unlocked::Card(badge))
    }

    #[cfg(not(feature = "pcsc"))]
    fn unlock_card(&mut self, _: &str, _: &str) -> Result<Unlocked, UnlockError> {
        Err(anyhow::anyhow!(
            "this build has no PC/SC support (feature `pcsc`): set badge = \"sim\" in [devices]"
        )
        .into())
    }

    /// Unlock whichever badge is in the reader (the supervisor's desk: the supervisor logs in
    /// with their own badge). The simulated source unlocks `sim_officer`.
    pub fn unlock_present(
        &mut self,
        sim_officer: &str,
        pin: &str,
    ) -> Result<Unlocked, UnlockError> {
        let officer = match self.source {
            BadgeSource::Simulated => sim_officer.to_string(),
            BadgeSource::Card => self
                .inserted
                .as_ref()
                .map(|b| b.officer.clone())
                .context("no badge in the reader: insert the supervisor's badge")?,
        };
        self.unlock(&officer, pin)
    }
}

enum Seen {
    Badge(Inserted),
    /// The same card is still in the same reader (not re-read).
    Same,
    NotABadge(String),
    Nothing,
}

#[cfg(feature = "pcsc")]
fn read_reader(known: Option<&Inserted>) -> Result<Seen, BadgeError> {
    use tasjil_drivers::card::{self, PcscBadge};
    let readers = card::readers()?;
    if let Some(k) = known {
        if readers.iter().any(|r| r.name == k.reader && r.card_present) {
            return Ok(Seen::Same);
        }
    }
    // The badge may share the kiosk with the citizen's card in another reader: any badge wins,
    // the first other card is reported.
    let mut other = None;
    for reader in readers.into_iter().filter(|r| r.card_present) {
        match PcscBadge::open(&reader.name) {
            Ok(b) => {
                let info = b.info();
                return Ok(Seen::Badge(Inserted {
                    reader: reader.name,
                    officer: info.officer_id.clone(),
                    name: info.officer_name.clone(),
                    pin_retries: info.pin_retries,
                }));
            }
            Err(BadgeError::Removed) => {}
            Err(e @ (BadgeError::NoService(_) | BadgeError::NoReader)) => return Err(e),
            Err(e) => {
                other.get_or_insert(e.to_string());
            }
        }
    }
    Ok(other.map_or(Seen::Nothing, Seen::NotABadge))
}

#[cfg(not(feature = "pcsc"))]
fn read_reader(_: Option<&Inserted>) -> Result<Seen, BadgeError> {
    Err(BadgeError::NoService(
        "this build has no PC/SC support (feature `pcsc`)".into(),
    ))
}
