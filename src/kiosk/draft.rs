//! The enrolment in progress kept as an encrypted draft, so that no citizen's work is lost to an
//! idle logout, a Cancel by mistake, a kiosk restart (crash, power cut) or a device lost in the
//! middle of a capture.
//!
//! **What is kept.** A [`Journal`] of what the officer gave the workflow since the enrolment
//! started: the kind, the demographics (and the fields typed but not yet accepted), every face
//! photo and fingerprint offered (with its retries, so the attempt counts come back too), the
//! finger exceptions, the accepted signature's strokes and the previous card's MRZ when its chip
//! was read. Resuming replays the journal into a fresh `crate::enrolment::Enrolment`: the
//! workflow judges the same captures again and reaches the same state (its judgements are
//! deterministic), so the kiosk needs no way into the workflow's private state and adds no rule
//! of its own. Nothing is captured again.
//!
//! **Where.** One file, `DATA_DIR/draft.age`, mode 0600, written atomically (temporary file,
//! fsync, rename): at most one draft per kiosk. A plaintext first line says whose draft it is,
//! of which station, when it was saved and at which step — no citizen data — so the home screen
//! can offer it and a draft older than [`MAX_AGE_MS`] can be discarded without opening it.
//! The rest is the journal, deflated, then sealed with age; the sealed text repeats the header,
//! which is compared after opening (a header swapped from another draft is refused).
//!
//! **The key.** The centre's age recipients cannot be used (the station cannot open what it
//! seals to the centre). The draft key is derived from the officer's badge: at login the badge
//! signs a fixed message naming the station and the officer, and the key is SHA-256 of that
//! signature under a domain label ([`DraftKey::derive`]). Ed25519 signatures are deterministic
//! (RFC 8032), so the same badge gives the same key at the next login — after an idle logout,
//! a kiosk restart or a power cut — and the key is never written anywhere. (The badge signs the
//! label's SHA-256: a short input whatever the ids' length.) Someone who copies the disk
//! without the badge and its PIN cannot open the draft; another officer's badge gives another
//! key, so another officer never sees the citizen.
//!
//! **Limits, honestly.**
//! - Whoever holds the badge *and* its PIN can open every draft that badge made on this
//!   station, including one recovered from a deleted file (deleting does not wipe the disk).
//!   The draft lives at most [`MAX_AGE_MS`]; an erased flash block is not guaranteed.
//! - While the officer is logged in, the key is in the kiosk process's memory (zeroed when the
//!   session drops it at logout); a memory dump of a running kiosk reveals it.
//! - The simulated badge's private key comes from the officer id: its drafts protect nothing
//!   (training and tests only).
//! - A card that signed Ed25519 non-deterministically would give a new key at each login: the
//!   draft would not open (it is refused, never misread) and is discarded after 24 h.
//! - The age layer uses the passphrase (scrypt) recipient with a low work factor: the
//!   passphrase is a 256-bit key, so stretching it adds nothing and would slow each save.

use std::io::Write;
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tasjil_drivers::{
    BadgeError, FaceCapture, FaceImage, FingerCapture, FingerException, FingerPosition, GreyImage,
    SignatureCapture, Stroke,
};
use zeroize::Zeroize;

use crate::enrolment::{OfficerBadge, Step};

/// A draft older than this is discarded (audited) rather than offered.
pub const MAX_AGE_MS: i64 = 24 * 3600 * 1000;
/// The draft's file in the data directory.
pub const FILE: &str = "draft.age";
const MAGIC: &str = "tasjil-draft v1";
/// scrypt's work factor: the passphrase is already a 256-bit key.
const LOG_N: u8 = 10;

/// The key a badge gives to its drafts on this station. Zeroed when dropped; never printed.
pub struct DraftKey([u8; 32]);

impl std::fmt::Debug for DraftKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DraftKey(..)")
    }
}

impl Drop for DraftKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl DraftKey {
    /// Ask the unlocked badge to sign the draft label of `station` and its officer; the key is
    /// the hash of the signature (deterministic Ed25519: the same badge, the same key).
    pub fn derive(badge: &mut dyn OfficerBadge, station: &str) -> Result<DraftKey, BadgeError> {
        let label = format!("tasjil draft key v1\0{station}\0{}", badge.officer_id());
        // A 32-byte input whatever the ids' length (a card takes short inputs).
        let digest: [u8; 32] = Sha256::digest(label.as_bytes()).into();
        let mut signature = badge.sign(&digest)?;
        let mut h = Sha256::new();
        h.update(b"tasjil draft key v1 from signature\0");
        h.update(signature);
        signature.zeroize();
        Ok(DraftKey(h.finalize().into()))
    }

    fn passphrase(&self) -> SecretString {
        SecretString::from(hex::encode(self.0))
    }
}

/// What can be read of a draft without its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub officer: String,
    pub station: String,
    pub saved_ms: i64,
    /// The step the enrolment was at (`step_code`).
    pub step: u8,
}

impl Header {
    pub fn step(&self) -> Step {
        step_from_code(self.step)
    }
}

pub fn step_code(step: Step) -> u8 {
    match step {
        Step::Identify => 0,
        Step::Demographics => 1,
        Step::Face => 2,
        Step::Fingers => 3,
        Step::Signature => 4,
        Step::Review => 5,
    }
}

fn step_from_code(code: u8) -> Step {
    match code {
        1 => Step::Demographics,
        2 => Step::Face,
        3 => Step::Fingers,
        4 => Step::Signature,
        5 => Step::Review,
        _ => Step::Identify,
    }
}

/// Why a draft could not be kept or opened.
#[derive(Debug, thiserror::Error)]
pub enum DraftError {
    #[error("cannot write the draft {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the draft {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the draft file is damaged or not a draft: {0}")]
    Damaged(String),
    #[error("the draft does not open with this badge's key (another badge, or a damaged file)")]
    WrongKey,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(text: &str) -> Result<Vec<u8>, DraftError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| DraftError::Damaged(format!("base64: {e}")))
}

/// A face photo as offered to the workflow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaceOffer {
    pub width: u32,
    pub height: u32,
    /// Base64.
    pub jpeg: String,
    pub quality: u8,
    pub captured_at_ms: i64,
}

impl FaceOffer {
    pub fn of(c: &FaceCapture) -> FaceOffer {
        FaceOffer {
            width: c.image.width,
            height: c.image.height,
            jpeg: b64(&c.image.jpeg),
            quality: c.quality,
            captured_at_ms: c.captured_at_ms,
        }
    }

    pub fn capture(&self) -> Result<FaceCapture, DraftError> {
        Ok(FaceCapture {
            image: FaceImage {
                width: self.width,
                height: self.height,
                jpeg: unb64(&self.jpeg)?,
            },
            quality: self.quality,
            captured_at_ms: self.captured_at_ms,
        })
    }
}

/// A fingerprint offered, or a finger excepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FingerEvent {
    Offer {
        position: FingerPosition,
        width: u32,
        height: u32,
        ppi: u16,
        pixels: String,
        quality: u8,
        captured_at_ms: i64,
    },
    Exception(FingerException),
}

impl FingerEvent {
    pub fn offer(c: &FingerCapture) -> FingerEvent {
        FingerEvent::Offer {
            position: c.position,
            width: c.image.width,
            height: c.image.height,
            ppi: c.image.ppi,
            pixels: b64(&c.image.pixels),
            quality: c.quality,
            captured_at_ms: c.captured_at_ms,
        }
    }
}

/// The accepted signature.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignatureDraft {
    width: u16,
    height: u16,
    strokes: Vec<Stroke>,
    png: String,
    captured_at_ms: i64,
}

impl SignatureDraft {
    pub fn of(c: &SignatureCapture) -> SignatureDraft {
        SignatureDraft {
            width: c.width,
            height: c.height,
            strokes: c.strokes.clone(),
            png: b64(&c.png),
            captured_at_ms: c.captured_at_ms,
        }
    }
}

/// What the officer gave the workflow, in an order that replays (see the module docs).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Journal {
    pub started_ms: i64,
    /// The kind chosen; kept after "back to the kind" (`kind_cleared`) so that the captures
    /// that follow it can be replayed.
    pub kind: Option<String>,
    pub kind_cleared: bool,
    /// The demographics the schema accepted (kept after "back to the form", as the kind).
    pub demographics: Option<Map<String, Value>>,
    pub demographics_cleared: bool,
    /// The form as typed, not yet accepted (saved at idle logout and Cancel).
    pub typed: Option<Map<String, Value>>,
    pub face: Vec<FaceOffer>,
    pub fingers: Vec<FingerEvent>,
    pub signature: Option<SignatureDraft>,
    /// The previous card's MRZ, when its chip was read.
    pub previous_card_mrz: Option<String>,
}

/// How a finger stands after a replay, for the fingers view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FingerMark {
    Accepted(u8),
    Low(u8),
    Excepted,
}

/// An enrolment rebuilt from its journal.
#[derive(Debug)]
pub struct Replayed {
    pub enrolment: crate::enrolment::Enrolment,
    pub fingers: Vec<(FingerPosition, FingerMark)>,
    /// The kept face photo's score, when the face step is done.
    pub face_quality: Option<u8>,
}

impl Journal {
    pub fn new(started_ms: i64) -> Journal {
        Journal {
            started_ms,
            ..Journal::default()
        }
    }

    /// The workflow went back to `step`: forget what `Enrolment::retake` forgets.
    pub fn retake(&mut self, step: Step) {
        match step {
            Step::Identify => {
                self.kind_cleared = true;
                self.demographics_cleared = true;
            }
            Step::Demographics => self.demographics_cleared = true,
            Step::Face => self.face.clear(),
            Step::Fingers => self.fingers.clear(),
            Step::Signature => self.signature = None,
            Step::Review => {}
        }
    }

    /// The form's values to show on resume: as typed, else as accepted.
    pub fn form_values(&self) -> Map<String, Value> {
        self.typed
            .clone()
            .or_else(|| self.demographics.clone())
            .unwrap_or_default()
    }

    /// Rebuild the enrolment: the same actions, in the workflow's step order, then the
    /// "back" moves. An action the workflow refuses ends the replay there (what follows it
    /// could not have been reached); what was replayed is kept.
    pub fn replay(
        &self,
        policy: crate::enrolment::CapturePolicy,
        schema: &crate::schema::Schema,
    ) -> Result<Replayed, DraftError> {
        use crate::enrolment::{Enrolment, Outcome};
        let mut e = Enrolment::new(policy, self.started_ms);
        let mut fingers: Vec<(FingerPosition, FingerMark)> = Vec::new();
        let mut face_quality = None;
        let refused = |what: &str, err: &dyn std::fmt::Display| {
            tracing::warn!("draft replay stopped at {what}: {err}");
        };
        'replay: {
            let Some(kind) = self.kind.as_deref() else {
                break 'replay;
            };
            let kind: tasjil_sync::EnrolmentKind = kind
                .parse()
                .map_err(|_| DraftError::Damaged(format!("unknown kind {kind:?}")))?;
            if let Err(err) = e.identify(kind) {
                refused("the kind", &err);
                break 'replay;
            }
            let Some(data) = self.demographics.clone() else {
                break 'replay;
            };
            if let Err(err) = e.set_demographics(schema, data) {
                refused("the demographics", &err);
                break 'replay;
            }
            for offer in &self.face {
                let capture = offer.capture()?;
                let shown = crate::enrolment::workflow::assess_face(capture.clone()).quality;
                match e.offer_face(capture) {
                    Ok(Outcome::Accepted) => face_quality = Some(shown),
                    Ok(Outcome::KeptBelowThreshold { quality }) => face_quality = Some(quality),
                    Ok(Outcome::Retry { .. }) => {}
                    Err(err) => {
                        refused("a face photo", &err);
                        break 'replay;
                    }
                }
            }
            for event in &self.fingers {
                match event {
                    FingerEvent::Offer {
                        position,
                        width,
                        height,
                        ppi,
                        pixels,
                        quality,
                        captured_at_ms,
                    } => {
                        let capture = FingerCapture {
                            position: *position,
                            image: GreyImage {
                                width: *width,
                                height: *height,
                                ppi: *ppi,
                                pixels: unb64(pixels)?,
                            },
                            quality: *quality,
                            captured_at_ms: *captured_at_ms,
                        };
                        let q = tasjil_drivers::quality::finger_quality(&capture.image).score;
                        match e.offer_finger(capture) {
                            Ok(Outcome::Accepted) => {
                                fingers.push((*position, FingerMark::Accepted(q)));
                            }
                            Ok(Outcome::KeptBelowThreshold { quality }) => {
                                fingers.push((*position, FingerMark::Low(quality)));
                            }
                            Ok(Outcome::Retry { .. }) => {}
                            Err(err) => {
                                refused("a fingerprint", &err);
                                break 'replay;
                            }
                        }
                    }
                    FingerEvent::Exception(x) => {
                        if let Err(err) = e.finger_exception(x.clone()) {
                            refused("a finger exception", &err);
                            break 'replay;
                        }
                        fingers.push((x.position, FingerMark::Excepted));
                    }
                }
            }
            if let Some(sig) = &self.signature {
                let capture = SignatureCapture {
                    width: sig.width,
                    height: sig.height,
                    strokes: sig.strokes.clone(),
                    png: unb64(&sig.png)?,
                    captured_at_ms: sig.captured_at_ms,
                };
                if let Err(err) = e.offer_signature(capture) {
                    refused("the signature", &err);
                }
            }
        }
        if self.demographics_cleared {
            e.retake(Step::Demographics);
        }
        if self.kind_cleared {
            e.retake(Step::Identify);
        }
        Ok(Replayed {
            enrolment: e,
            fingers,
            face_quality,
        })
    }
}

/// What is sealed: the header again (bound to the file's header) and the journal.
#[derive(Serialize, Deserialize)]
struct Sealed {
    header: Header,
    journal: Journal,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// Seal `journal` with `key` and write it as the kiosk's one draft.
pub fn save(
    data_dir: &Path,
    key: &DraftKey,
    header: &Header,
    journal: &Journal,
) -> Result<(), DraftError> {
    let path = path(data_dir);
    let damaged = |e: &dyn std::fmt::Display| DraftError::Damaged(e.to_string());
    let mut plain = serde_json::to_vec(&Sealed {
        header: header.clone(),
        journal: journal.clone(),
    })
    .map_err(|e| damaged(&e))?;
    let packed = miniz_oxide::deflate::compress_to_vec(&plain, 1);
    plain.zeroize();
    let mut recipient = age::scrypt::Recipient::new(key.passphrase());
    recipient.set_work_factor(LOG_N);
    let sealed = age::encrypt(&recipient, &packed).map_err(|e| damaged(&e))?;
    let mut bytes = format!(
        "{MAGIC}\n{}\n",
        serde_json::to_string(header).map_err(|e| damaged(&e))?
    )
    .into_bytes();
    bytes.extend_from_slice(&sealed);
    write_private(&path, &bytes).map_err(|source| DraftError::Write { path, source })
}

/// Write `bytes` to `path` through a 0600 temporary file, fsync, rename, fsync the directory.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{FILE}.partial-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn split(bytes: &[u8]) -> Result<(Header, &[u8]), DraftError> {
    let bad = |why: &str| DraftError::Damaged(why.to_string());
    let rest = bytes
        .strip_prefix(MAGIC.as_bytes())
        .and_then(|r| r.strip_prefix(b"\n"))
        .ok_or_else(|| bad("no draft header"))?;
    let end = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| bad("no end of header"))?;
    let header: Header =
        serde_json::from_slice(&rest[..end]).map_err(|e| DraftError::Damaged(e.to_string()))?;
    Ok((header, &rest[end + 1..]))
}

/// The draft's header, without opening it; `None` when there is no draft.
pub fn header(data_dir: &Path) -> Result<Option<Header>, DraftError> {
    let path = path(data_dir);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(split(&bytes)?.0)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DraftError::Read { path, source }),
    }
}

/// Open the draft with `key`.
pub fn open(data_dir: &Path, key: &DraftKey) -> Result<(Header, Journal), DraftError> {
    let path = path(data_dir);
    let bytes = std::fs::read(&path).map_err(|source| DraftError::Read {
        path: path.clone(),
        source,
    })?;
    let (header, sealed) = split(&bytes)?;
    let mut identity = age::scrypt::Identity::new(key.passphrase());
    identity.set_max_work_factor(LOG_N);
    let packed = age::decrypt(&identity, sealed).map_err(|_| DraftError::WrongKey)?;
    let mut plain = miniz_oxide::inflate::decompress_to_vec_with_limit(&packed, 256 << 20)
        .map_err(|e| DraftError::Damaged(format!("inflate: {e:?}")))?;
    let inner: Result<Sealed, _> = serde_json::from_slice(&plain);
    plain.zeroize();
    let inner = inner.map_err(|e| DraftError::Damaged(e.to_string()))?;
    if inner.header.officer != header.officer || inner.header.station != header.station {
        return Err(DraftError::Damaged(
            "the header does not match the sealed draft".into(),
        ));
    }
    Ok((inner.header, inner.journal))
}

/// Remove the draft (no draft is not an error).
pub fn remove(data_dir: &Path) -> Result<(), DraftError> {
    let path = path(data_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DraftError::Write { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrolment::SimBadge;

    #[test]
    fn the_same_badge_gives_the_same_key_and_another_badge_cannot_open() {
        let tmp = tempfile::tempdir().unwrap();
        let pin = crate::enrolment::badge::SIM_PIN;
        let mut a = SimBadge::unlock("OFF-1", pin).unwrap();
        let key = DraftKey::derive(&mut a, "VAN-1").unwrap();
        let header = Header {
            officer: "OFF-1".into(),
            station: "VAN-1".into(),
            saved_ms: 5,
            step: step_code(Step::Face),
        };
        let mut journal = Journal::new(1);
        journal.kind = Some("new".into());
        save(tmp.path(), &key, &header, &journal).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path(tmp.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(super::header(tmp.path()).unwrap(), Some(header.clone()));
        let mut again = SimBadge::unlock("OFF-1", pin).unwrap();
        let key2 = DraftKey::derive(&mut again, "VAN-1").unwrap();
        let (h, j) = open(tmp.path(), &key2).unwrap();
        assert_eq!((h, j.kind.as_deref()), (header, Some("new")));
        let mut b = SimBadge::unlock("OFF-2", pin).unwrap();
        let other = DraftKey::derive(&mut b, "VAN-1").unwrap();
        assert!(matches!(
            open(tmp.path(), &other),
            Err(DraftError::WrongKey)
        ));
        remove(tmp.path()).unwrap();
        assert_eq!(super::header(tmp.path()).unwrap(), None);
        remove(tmp.path()).unwrap();
    }
}
