//! Key material and the small files that carry it between the centre and stations.
//!
//! Secret files are written with mode 0600 and never printed: `Debug` is redacted. Public files are
//! JSON so that scripts and operators can read them.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};

/// Errors about key files. Messages name the file and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid {what} file: {reason}")]
    Format {
        path: String,
        what: &'static str,
        reason: String,
    },
    #[error("{0} already exists; refusing to overwrite a key (move it away first if you really mean it)")]
    Exists(String),
}

fn read(path: &Path) -> Result<String, KeyError> {
    fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Write `contents` to a new file (never overwriting), fsynced, with `mode`.
pub fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| KeyError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists(path.display().to_string())
            } else {
                err(e)
            }
        })?;
    file.write_all(contents).map_err(err)?;
    file.sync_all().map_err(err)
}

fn parse_hex32(text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(text.trim()).map_err(|e| format!("bad hex: {e}"))?;
    bytes
        .try_into()
        .map_err(|_| "expected 32 bytes of hex".to_string())
}

/// Parse a hex Ed25519 public key.
pub fn parse_verifying_key(text: &str) -> Result<VerifyingKey, String> {
    VerifyingKey::from_bytes(&parse_hex32(text)?).map_err(|e| format!("not an Ed25519 key: {e}"))
}

/// Parse a hex Ed25519 signature.
pub fn parse_signature(text: &str) -> Result<Signature, String> {
    let bytes = hex::decode(text).map_err(|e| format!("bad hex: {e}"))?;
    let bytes: [u8; 64] = bytes
        .try_into()
        .map_err(|_| "a signature is 64 bytes".to_string())?;
    Ok(Signature::from_bytes(&bytes))
}

const STATION_SECRET_HEADER: &str = "tasjil-station-secret-v1";

/// The station's Ed25519 signing key, made at `tasjil init`.
pub struct StationKey(SigningKey);

impl std::fmt::Debug for StationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StationKey(public {})", self.public_hex())
    }
}

impl StationKey {
    pub fn generate() -> Self {
        StationKey(SigningKey::generate(&mut OsRng))
    }
    /// A key derived from 32 fixed bytes: only for simulated badges and tests.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        StationKey(SigningKey::from_bytes(&seed))
    }
    pub fn verifying_key(&self) -> VerifyingKey {
        self.0.verifying_key()
    }
    pub fn public_hex(&self) -> String {
        hex::encode(self.0.verifying_key().as_bytes())
    }
    pub fn sign(&self, message: &[u8]) -> Signature {
        self.0.sign(message)
    }
    /// Save as a 0600 file; refuses to overwrite.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let text = format!(
            "{STATION_SECRET_HEADER}\n{}\n",
            hex::encode(self.0.to_bytes())
        );
        write_new_file(path, text.as_bytes(), 0o600)
    }
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = read(path)?;
        let fmt = |reason: String| KeyError::Format {
            path: path.display().to_string(),
            what: "station secret key",
            reason,
        };
        let mut lines = text.lines();
        if lines.next() != Some(STATION_SECRET_HEADER) {
            return Err(fmt(format!("first line must be {STATION_SECRET_HEADER}")));
        }
        let bytes = parse_hex32(lines.next().unwrap_or_default()).map_err(fmt)?;
        Ok(StationKey(SigningKey::from_bytes(&bytes)))
    }
}

/// Verify an Ed25519 signature made by [`StationKey::sign`] (or a badge).
pub fn verify(key: &VerifyingKey, message: &[u8], signature: &Signature) -> bool {
    key.verify(message, signature).is_ok()
}

/// `station.pub`: what `tasjil-central station add --key` takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationPublic {
    pub kind: String,
    pub station: String,
    pub ed25519: String,
    /// A training or demonstration station (`tasjil init --simulation`): the centre registers
    /// it only with `station add --simulation`, and takes only training records from it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub simulation: bool,
}

impl StationPublic {
    pub const KIND: &'static str = "tasjil-station-public-v1";
    pub fn new(station: &str, key: &StationKey) -> Self {
        StationPublic {
            kind: Self::KIND.into(),
            station: station.into(),
            ed25519: key.public_hex(),
            simulation: false,
        }
    }

    /// The same, for a training or demonstration station.
    pub fn training(mut self) -> Self {
        self.simulation = true;
        self
    }
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = read(path)?;
        let fmt = |reason: String| KeyError::Format {
            path: path.display().to_string(),
            what: "station public key",
            reason,
        };
        let p: StationPublic = serde_json::from_str(&text).map_err(|e| fmt(e.to_string()))?;
        if p.kind != Self::KIND {
            return Err(fmt(format!("kind must be {}", Self::KIND)));
        }
        p.verifying_key().map_err(fmt)?;
        Ok(p)
    }
    pub fn verifying_key(&self) -> Result<VerifyingKey, String> {
        parse_verifying_key(&self.ed25519)
    }
}

/// `centre.pub`: the centre's public keys, the file `tasjil init --central-key` takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CentrePublic {
    pub kind: String,
    /// age X25519 recipients payloads are sealed to (several during a key rollover).
    pub age_recipients: Vec<String>,
    /// Ed25519 key that signs receipts and statuses.
    pub ed25519: String,
    /// SHA-256 of the centre's TLS certificate (DER); stations accept only that certificate,
    /// or one announced in `tls_next_sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert_sha256: Option<String>,
    /// SHA-256 of the certificates the centre will present next (`tasjil-central keys
    /// announce-tls`), announced a version ahead of the switch so that a van that took the
    /// announcement still reaches the centre once it presents the new certificate, and then
    /// takes the switch over that connection. Empty (and absent from the JSON) otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_next_sha256: Vec<String>,
    /// How many key rotations this set has been through (0: as `init` made it). A station takes
    /// the next set only from a [`crate::rotation::KeyRotation`] signed by this set's `ed25519`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub version: u64,
    /// Signing keys of earlier versions: what they signed before the rotation (verdicts, rosters,
    /// receipts, the access log) still verifies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_ed25519: Vec<String>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl CentrePublic {
    pub const KIND: &'static str = "tasjil-centre-public-v1";

    pub fn parse(text: &str) -> Result<Self, String> {
        let p: CentrePublic = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if p.kind != Self::KIND {
            return Err(format!("kind must be {}", Self::KIND));
        }
        if p.age_recipients.is_empty() {
            return Err("no age recipient".into());
        }
        p.recipients()?;
        parse_verifying_key(&p.ed25519)?;
        for k in &p.previous_ed25519 {
            parse_verifying_key(k)?;
        }
        for pin in p.tls_cert_sha256.iter().chain(&p.tls_next_sha256) {
            parse_hex32(pin).map_err(|e| format!("TLS pin {pin:?}: {e}"))?;
        }
        Ok(p)
    }

    /// The TLS certificates a station accepts from this centre (SHA-256 of the DER, lower-case
    /// hex): the current one first, then the announced next ones.
    pub fn tls_pins(&self) -> Vec<String> {
        self.tls_cert_sha256
            .iter()
            .chain(&self.tls_next_sha256)
            .map(|p| p.trim().to_ascii_lowercase())
            .collect()
    }

    /// The keys whose signatures this centre stands by: the current one first, then those of
    /// earlier versions.
    pub fn verifying_keys(&self) -> Vec<VerifyingKey> {
        std::iter::once(&self.ed25519)
            .chain(&self.previous_ed25519)
            .filter_map(|k| parse_verifying_key(k).ok())
            .collect()
    }
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        Self::parse(&read(path)?).map_err(|reason| KeyError::Format {
            path: path.display().to_string(),
            what: "centre public key",
            reason,
        })
    }
    pub fn recipients(&self) -> Result<Vec<age::x25519::Recipient>, String> {
        self.age_recipients
            .iter()
            .map(|r| {
                age::x25519::Recipient::from_str(r)
                    .map_err(|e| format!("bad age recipient {r}: {e}"))
            })
            .collect()
    }
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

const CENTRE_SECRET_HEADER: &str = "tasjil-centre-secret-v1";

/// The centre's secret keys: an age identity that opens payloads and an Ed25519 signing key,
/// and those of earlier versions (after a rotation), kept to open what was sealed to them.
pub struct CentreKeys {
    pub identity: age::x25519::Identity,
    pub signing: SigningKey,
    pub retired: Vec<(age::x25519::Identity, SigningKey)>,
}

impl std::fmt::Debug for CentreKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CentreKeys(recipient {})", self.identity.to_public())
    }
}

impl CentreKeys {
    pub fn generate() -> Self {
        CentreKeys {
            identity: age::x25519::Identity::generate(),
            signing: SigningKey::generate(&mut OsRng),
            retired: Vec::new(),
        }
    }

    /// Every age identity, the current one first: what opens a payload sealed at any version.
    pub fn identities(&self) -> Vec<&age::x25519::Identity> {
        std::iter::once(&self.identity)
            .chain(self.retired.iter().map(|(i, _)| i))
            .collect()
    }

    /// Every signing key's public half, the current one first.
    pub fn verifying_keys(&self) -> Vec<VerifyingKey> {
        std::iter::once(&self.signing)
            .chain(self.retired.iter().map(|(_, k)| k))
            .map(SigningKey::verifying_key)
            .collect()
    }

    /// New current keys; these become retired ones.
    pub fn rotated(self) -> CentreKeys {
        let mut retired = vec![(self.identity, self.signing)];
        retired.extend(self.retired);
        CentreKeys {
            identity: age::x25519::Identity::generate(),
            signing: SigningKey::generate(&mut OsRng),
            retired,
        }
    }
    pub fn public(&self) -> CentrePublic {
        CentrePublic {
            kind: CentrePublic::KIND.into(),
            age_recipients: vec![self.identity.to_public().to_string()],
            ed25519: hex::encode(self.signing.verifying_key().as_bytes()),
            tls_cert_sha256: None,
            tls_next_sha256: Vec::new(),
            version: 0,
            previous_ed25519: self
                .retired
                .iter()
                .map(|(_, k)| hex::encode(k.verifying_key().as_bytes()))
                .collect(),
        }
    }
    /// Write the secret file (refuses to overwrite one): the header, the current identity and
    /// signing key, then a `retired IDENTITY KEY` line for each earlier version.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let mut text = format!(
            "{CENTRE_SECRET_HEADER}\n{}\n{}\n",
            self.identity.to_string().expose_secret(),
            hex::encode(self.signing.to_bytes())
        );
        for (identity, signing) in &self.retired {
            text.push_str(&format!(
                "retired {} {}\n",
                identity.to_string().expose_secret(),
                hex::encode(signing.to_bytes())
            ));
        }
        write_new_file(path, text.as_bytes(), 0o600)
    }
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = read(path)?;
        let fmt = |reason: String| KeyError::Format {
            path: path.display().to_string(),
            what: "centre secret key",
            reason,
        };
        let mut lines = text.lines();
        if lines.next() != Some(CENTRE_SECRET_HEADER) {
            return Err(fmt(format!("first line must be {CENTRE_SECRET_HEADER}")));
        }
        let identity = age::x25519::Identity::from_str(lines.next().unwrap_or_default())
            .map_err(|e| fmt(e.to_string()))?;
        let signing =
            SigningKey::from_bytes(&parse_hex32(lines.next().unwrap_or_default()).map_err(fmt)?);
        let mut retired = Vec::new();
        for line in lines.filter(|l| !l.trim().is_empty()) {
            let mut words = line.split_whitespace();
            let (Some("retired"), Some(i), Some(k), None) =
                (words.next(), words.next(), words.next(), words.next())
            else {
                return Err(fmt(
                    "a line after the keys must be `retired IDENTITY KEY`".into()
                ));
            };
            retired.push((
                age::x25519::Identity::from_str(i).map_err(|e| fmt(e.to_string()))?,
                SigningKey::from_bytes(&parse_hex32(k).map_err(fmt)?),
            ));
        }
        Ok(CentreKeys {
            identity,
            signing,
            retired,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn station_key_round_trips_with_private_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("station.key");
        let key = StationKey::generate();
        key.save(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            StationKey::load(&path).unwrap().public_hex(),
            key.public_hex()
        );
        assert!(matches!(key.save(&path), Err(KeyError::Exists(_))));
        assert!(!format!("{key:?}").contains(&hex::encode(key.0.to_bytes())));
    }

    #[test]
    fn centre_keys_round_trip_and_public_file_parses() {
        let dir = tempfile::tempdir().unwrap();
        let keys = CentreKeys::generate();
        keys.save(&dir.path().join("centre.key")).unwrap();
        let loaded = CentreKeys::load(&dir.path().join("centre.key")).unwrap();
        assert_eq!(loaded.public(), keys.public());
        let parsed = CentrePublic::parse(&keys.public().to_json()).unwrap();
        assert_eq!(parsed.recipients().unwrap().len(), 1);
        assert!(CentrePublic::parse("{}").is_err());
        assert!(CentrePublic::parse(&keys.public().to_json().replace("age1", "age2")).is_err());
    }

    #[test]
    fn announced_tls_pins_are_checked_and_absent_when_empty() {
        let mut p = CentreKeys::generate().public();
        p.tls_cert_sha256 = Some("AB".repeat(32));
        // Without an announcement the document is as older versions wrote it.
        assert!(!p.to_json().contains("tls_next_sha256"));
        assert_eq!(p.tls_pins(), vec!["ab".repeat(32)]);
        p.tls_next_sha256 = vec!["cd".repeat(32)];
        let parsed = CentrePublic::parse(&p.to_json()).unwrap();
        assert_eq!(parsed.tls_pins(), vec!["ab".repeat(32), "cd".repeat(32)]);
        p.tls_next_sha256 = vec!["not a pin".into()];
        let err = CentrePublic::parse(&p.to_json()).unwrap_err();
        assert!(err.contains("TLS pin"), "{err}");
    }
}
