//! The centre's signed roster of field staff: which badge may enrol, approve or export, on which
//! stations, from when until when, and which badges were revoked. The centre signs it with its
//! Ed25519 key; a station takes its trust from nothing else (no trust on first use), and the
//! centre checks every officer co-signature and every export countersignature against the
//! version the station held.
//!
//! The rules live here, in one place both sides call: [`Roster::allows`].
//!
//! A roster reaches a van at `tasjil init --roster`, on every sync when newer, in every USB
//! receipt, and by `tasjil roster import`. A station never takes an older version or one whose
//! signature fails. Versions are issued in order by the centre; it issues a fresh one (same
//! entries, new time) at least once a day for a station that asks, so a roster's age tells how
//! long a van has gone without hearing from the centre.

use std::collections::BTreeMap;

use ed25519_dalek::{SigningKey, VerifyingKey};

use serde::{Deserialize, Serialize};

use crate::canonical::{sha256, to_canonical};
use crate::keys::{parse_signature, parse_verifying_key};

pub const ROSTER_FORMAT: &str = "tasjil-roster-v1";
const ROSTER_DOMAIN: &[u8] = b"tasjil/roster/v1\0";
/// In [`RosterEntry::stations`]: every station.
pub const ALL_STATIONS: &str = "*";

/// What a badge may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Logs in and enrols.
    Officer,
    /// Also approves records and countersigns exports.
    Supervisor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Officer => "officer",
            Role::Supervisor => "supervisor",
        }
    }
    /// Whether this role covers `needed` (a supervisor may also enrol).
    pub fn covers(self, needed: Role) -> bool {
        self >= needed
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "officer" => Ok(Role::Officer),
            "supervisor" => Ok(Role::Supervisor),
            _ => Err(format!("unknown role {s:?} (officer, supervisor)")),
        }
    }
}

/// A revocation: from `at_ms` on, the badge is refused everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    pub at_ms: i64,
    pub reason: String,
}

/// One member of the field staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterEntry {
    /// The officer id the badge carries.
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The badge's Ed25519 signing key (hex), as `tasjil badge status --json` prints it.
    pub badge: String,
    /// Station ids this badge may work on, `@GROUP` for every station of a group the roster
    /// lists, or [`ALL_STATIONS`] for every one.
    pub stations: Vec<String>,
    pub valid_from_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revocation>,
}

/// The prefix that names a station group in an entry's `stations`.
pub const GROUP_PREFIX: char = '@';

impl RosterEntry {
    /// Whether this badge may work on `station`, given the roster's station groups.
    pub fn works_on(&self, station: &str, groups: &BTreeMap<String, Vec<String>>) -> bool {
        self.stations.iter().any(|s| {
            s == ALL_STATIONS
                || s == station
                || s.strip_prefix(GROUP_PREFIX)
                    .and_then(|g| groups.get(g))
                    .is_some_and(|members| members.iter().any(|m| m == station))
        })
    }
}

/// What the centre signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterBody {
    pub format: String,
    /// Increases by one with every roster the centre issues.
    pub version: u64,
    pub issued_ms: i64,
    /// Hex Ed25519 key of the centre that signed.
    pub centre_key: String,
    pub entries: Vec<RosterEntry>,
    /// Station groups (`@NAME` in an entry's stations): name -> station ids. Absent when there
    /// are none, so rosters without groups keep their bytes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, Vec<String>>,
}

/// The roster file: body and the centre's signature (hex), as canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roster {
    pub roster: RosterBody,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    #[error("not a roster file: {0}")]
    Format(String),
    #[error("the roster's signature does not verify with this station's centre key: it was not issued by the centre")]
    Signature,
    #[error(
        "roster version {offered} is older than the version {held} this station holds: refused"
    )]
    Older { offered: u64, held: u64 },
    #[error("roster version {version} differs from the roster of that version this station holds: refused")]
    Conflict { version: u64 },
}

/// Why a badge may not do something, in words for the officer (and the centre's reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("badge {id} is not on the centre's roster (version {version})")]
    Unknown { id: String, version: u64 },
    #[error("badge {id} presented a key the centre's roster (version {version}) does not list for that officer")]
    WrongKey { id: String, version: u64 },
    #[error("badge {id} was revoked by the centre ({reason}): it may no longer be used")]
    Revoked { id: String, reason: String },
    #[error("badge {id} is on the roster as {has}; only a {needs} may do this")]
    Role { id: String, has: Role, needs: Role },
    #[error("badge {id} is not allowed on station {station}")]
    Station { id: String, station: String },
    #[error("badge {id} is not valid at this time (valid from {from} until {until})")]
    Expired {
        id: String,
        from: String,
        until: String,
    },
}

impl Refusal {
    /// A short machine-readable code for the audit chain.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Unknown { .. } => "unknown",
            Refusal::WrongKey { .. } => "wrong_key",
            Refusal::Revoked { .. } => "revoked",
            Refusal::Role { .. } => "role",
            Refusal::Station { .. } => "station",
            Refusal::Expired { .. } => "expired",
        }
    }
}

impl RosterBody {
    fn signing_message(&self) -> Vec<u8> {
        let canonical = to_canonical(self).unwrap_or_default();
        let mut m = ROSTER_DOMAIN.to_vec();
        m.extend_from_slice(&sha256(&canonical));
        m
    }
}

/// Unix ms of the start (00:00 UTC) of day `YYYY-MM-DD`.
pub fn parse_day(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not a date: write it as YYYY-MM-DD");
    let mut parts = text.trim().split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let (y, m, d): (i64, i64, i64) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let ms = crate::ledger::days_from_civil(y, m, d) * 86_400_000;
    if day(ms) != text.trim() {
        return Err(bad());
    }
    Ok(ms)
}

/// `YYYY-MM-DD` (UTC) of a Unix-ms time, for messages: the ledger's day.
pub use crate::ledger::day_of_ms as day;

impl Roster {
    /// Sign `body` with the centre's key.
    pub fn sign(body: RosterBody, key: &SigningKey) -> Roster {
        use ed25519_dalek::Signer;
        let sig = key.sign(&body.signing_message());
        Roster {
            roster: body,
            signature: hex::encode(sig.to_bytes()),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        to_canonical(self).unwrap_or_default()
    }

    /// Parse a roster file and check its signature with the centre's key.
    /// Parse a roster file and check its signature with one of the centre's keys (the current
    /// one first; an earlier version's for a roster issued before a key rotation).
    pub fn verify(bytes: &[u8], centre: &[VerifyingKey]) -> Result<Roster, RosterError> {
        let r: Roster =
            serde_json::from_slice(bytes).map_err(|e| RosterError::Format(e.to_string()))?;
        if r.roster.format != ROSTER_FORMAT {
            return Err(RosterError::Format(format!(
                "format {:?} is not supported (this build reads {ROSTER_FORMAT})",
                r.roster.format
            )));
        }
        let sig = parse_signature(&r.signature).map_err(|_| RosterError::Signature)?;
        let message = r.roster.signing_message();
        if !centre
            .iter()
            .any(|k| k.verify_strict(&message, &sig).is_ok())
        {
            return Err(RosterError::Signature);
        }
        for e in &r.roster.entries {
            parse_verifying_key(&e.badge)
                .map_err(|m| RosterError::Format(format!("entry {}: badge key: {m}", e.id)))?;
        }
        Ok(r)
    }

    pub fn version(&self) -> u64 {
        self.roster.version
    }

    /// Whether a station holding `held` should take `self` instead: only a newer version; the
    /// same version must be the same document.
    pub fn replaces(&self, held: Option<&Roster>) -> Result<bool, RosterError> {
        let Some(held) = held else { return Ok(true) };
        match self.version().cmp(&held.version()) {
            std::cmp::Ordering::Greater => Ok(true),
            std::cmp::Ordering::Less => Err(RosterError::Older {
                offered: self.version(),
                held: held.version(),
            }),
            std::cmp::Ordering::Equal if self.roster == held.roster => Ok(false),
            std::cmp::Ordering::Equal => Err(RosterError::Conflict {
                version: self.version(),
            }),
        }
    }

    /// The entry of officer `id`, if any.
    pub fn entry(&self, id: &str) -> Option<&RosterEntry> {
        self.roster.entries.iter().find(|e| e.id == id)
    }

    /// Whether the badge of officer `id` with key `badge` (hex) may act as `needs` on `station`
    /// at `at_ms`. Returns its entry when it may.
    pub fn allows(
        &self,
        id: &str,
        badge: &str,
        station: &str,
        needs: Role,
        at_ms: i64,
    ) -> Result<&RosterEntry, Refusal> {
        let version = self.version();
        let e = self.entry(id).ok_or_else(|| Refusal::Unknown {
            id: id.to_string(),
            version,
        })?;
        if !e.badge.eq_ignore_ascii_case(badge) {
            return Err(Refusal::WrongKey {
                id: id.to_string(),
                version,
            });
        }
        if let Some(r) = &e.revoked {
            if r.at_ms <= at_ms {
                return Err(Refusal::Revoked {
                    id: id.to_string(),
                    reason: r.reason.clone(),
                });
            }
        }
        if !e.works_on(station, &self.roster.groups) {
            return Err(Refusal::Station {
                id: id.to_string(),
                station: station.to_string(),
            });
        }
        if at_ms < e.valid_from_ms || e.valid_until_ms.is_some_and(|u| at_ms >= u) {
            return Err(Refusal::Expired {
                id: id.to_string(),
                from: day(e.valid_from_ms),
                until: e.valid_until_ms.map_or("no end".into(), day),
            });
        }
        if !e.role.covers(needs) {
            return Err(Refusal::Role {
                id: id.to_string(),
                has: e.role,
                needs,
            });
        }
        Ok(e)
    }

    /// Age in whole days at `now_ms` (0 when issued in the future by a skewed clock).
    pub fn age_days(&self, now_ms: i64) -> i64 {
        ((now_ms - self.roster.issued_ms) / 86_400_000).max(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, role: Role, badge: &SigningKey) -> RosterEntry {
        RosterEntry {
            id: id.into(),
            name: format!("Officer {id}"),
            role,
            badge: hex::encode(badge.verifying_key().as_bytes()),
            stations: vec!["VAN-1".into()],
            valid_from_ms: 1_000,
            valid_until_ms: Some(10_000),
            revoked: None,
        }
    }

    fn roster(key: &SigningKey, version: u64, entries: Vec<RosterEntry>) -> Roster {
        Roster::sign(
            RosterBody {
                format: ROSTER_FORMAT.into(),
                version,
                issued_ms: 5_000,
                centre_key: hex::encode(key.verifying_key().as_bytes()),
                entries,
                groups: BTreeMap::new(),
            },
            key,
        )
    }

    #[test]
    fn signature_version_and_rules() {
        let centre = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let a = SigningKey::from_bytes(&[1; 32]);
        let b = SigningKey::from_bytes(&[2; 32]);
        let mut sup = entry("SUP-1", Role::Supervisor, &b);
        sup.stations = vec![ALL_STATIONS.into()];
        let r = roster(&centre, 3, vec![entry("OFF-A", Role::Officer, &a), sup]);
        let bytes = r.to_bytes();
        let back = Roster::verify(&bytes, &[centre.verifying_key()]).unwrap();
        assert_eq!(back, r);
        assert_eq!(
            Roster::verify(&bytes, &[other.verifying_key()]),
            Err(RosterError::Signature)
        );
        let tampered = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("\"officer\"", "\"supervisor\"");
        assert_eq!(
            Roster::verify(tampered.as_bytes(), &[centre.verifying_key()]),
            Err(RosterError::Signature)
        );

        let ka = hex::encode(a.verifying_key().as_bytes());
        let kb = hex::encode(b.verifying_key().as_bytes());
        assert!(r
            .allows("OFF-A", &ka, "VAN-1", Role::Officer, 2_000)
            .is_ok());
        assert_eq!(
            r.allows("OFF-A", &ka, "VAN-1", Role::Supervisor, 2_000)
                .unwrap_err()
                .code(),
            "role"
        );
        assert_eq!(
            r.allows("OFF-A", &kb, "VAN-1", Role::Officer, 2_000)
                .unwrap_err()
                .code(),
            "wrong_key"
        );
        assert_eq!(
            r.allows("OFF-A", &ka, "VAN-2", Role::Officer, 2_000)
                .unwrap_err()
                .code(),
            "station"
        );
        assert_eq!(
            r.allows("OFF-A", &ka, "VAN-1", Role::Officer, 10_000)
                .unwrap_err()
                .code(),
            "expired"
        );
        assert_eq!(
            r.allows("OFF-Z", &ka, "VAN-1", Role::Officer, 2_000)
                .unwrap_err()
                .code(),
            "unknown"
        );
        assert!(r
            .allows("SUP-1", &kb, "VAN-9", Role::Officer, 2_000)
            .is_ok());

        let mut revoked = r.roster.entries.clone();
        revoked[0].revoked = Some(Revocation {
            at_ms: 3_000,
            reason: "lost in the market".into(),
        });
        let r4 = roster(&centre, 4, revoked);
        assert!(r4
            .allows("OFF-A", &ka, "VAN-1", Role::Officer, 2_999)
            .is_ok());
        let refusal = r4
            .allows("OFF-A", &ka, "VAN-1", Role::Officer, 3_000)
            .unwrap_err();
        assert!(refusal.to_string().contains("lost in the market"));

        assert_eq!(r4.replaces(Some(&r)), Ok(true));
        assert_eq!(
            r.replaces(Some(&r4)),
            Err(RosterError::Older {
                offered: 3,
                held: 4
            })
        );
        assert_eq!(r.replaces(Some(&r)), Ok(false));
        assert_eq!(
            roster(&centre, 3, vec![]).replaces(Some(&r)),
            Err(RosterError::Conflict { version: 3 })
        );
        assert_eq!(day(0), "1970-01-01");
        assert_eq!(day(1_764_633_600_000), "2025-12-02");
        assert_eq!(parse_day("2025-12-02"), Ok(1_764_633_600_000));
        assert_eq!(
            parse_day("2024-02-29").map(day).as_deref(),
            Ok("2024-02-29")
        );
        assert!(parse_day("2025-02-30").is_err());
        assert!(parse_day("02/12/2025").is_err());
    }
}

#[cfg(test)]
mod group_tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    #[test]
    fn a_badge_works_on_the_stations_of_its_groups_and_nowhere_else() {
        let centre = SigningKey::from_bytes(&[8; 32]);
        let badge = SigningKey::from_bytes(&[9; 32]);
        let entry = RosterEntry {
            id: "OFF-G".into(),
            name: "G".into(),
            role: Role::Officer,
            badge: hex::encode(badge.verifying_key().as_bytes()),
            stations: vec!["@NORTH".into(), "VAN-9".into()],
            valid_from_ms: 0,
            valid_until_ms: None,
            revoked: None,
        };
        let groups = BTreeMap::from([(
            "NORTH".to_string(),
            vec!["VAN-1".to_string(), "VAN-2".to_string()],
        )]);
        let r = Roster::sign(
            RosterBody {
                format: ROSTER_FORMAT.into(),
                version: 1,
                issued_ms: 1,
                centre_key: hex::encode(centre.verifying_key().as_bytes()),
                entries: vec![entry.clone()],
                groups,
            },
            &centre,
        );
        let back = Roster::verify(&r.to_bytes(), &[centre.verifying_key()]).unwrap();
        let key = entry.badge.clone();
        for (station, ok) in [
            ("VAN-1", true),
            ("VAN-2", true),
            ("VAN-9", true),
            ("VAN-3", false),
        ] {
            assert_eq!(
                back.allows("OFF-G", &key, station, Role::Officer, 5)
                    .is_ok(),
                ok,
                "{station}"
            );
        }
        // An unknown group names no station.
        assert!(!entry.works_on("VAN-1", &BTreeMap::new()));
    }
}
