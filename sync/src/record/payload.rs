//! The payload: demographics and biometrics, packed into one byte string and sealed with age to the
//! centre's recipients.
//!
//! Packed layout: the magic `TASJILP1`, a big-endian `u32` header length, the header as canonical
//! JSON (demographics, image metadata, part lengths, pen strokes), then the image parts raw, in the
//! order the header lists them. Images are not base64'd into JSON, which would cost a third more.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use super::RecordError;
use crate::canonical::to_canonical;

const MAGIC: &[u8; 8] = b"TASJILP1";
/// Refuse headers larger than this when unpacking (a real one is a few KB).
const MAX_HEADER: usize = 4 << 20;

/// An encoded image and its format: "jpeg" (face), "wsq" or "png" (fingers), "png" (signature).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadImage {
    pub format: String,
    pub width: u32,
    pub height: u32,
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for PayloadImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}x{} ({} bytes)",
            self.format,
            self.width,
            self.height,
            self.bytes.len()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadFinger {
    /// e.g. "right_thumb".
    pub position: String,
    /// ANSI/NIST finger position code (1..=10).
    pub code: u8,
    pub ppi: u16,
    pub quality: u8,
    pub image: PayloadImage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadException {
    pub position: String,
    pub reason: String,
}

/// The handwritten signature: the rendered image and the pen strokes as captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadSignature {
    pub image: PayloadImage,
    /// Strokes as arrays of `[x, y, t_ms, pressure]`.
    pub strokes: Vec<Vec<[u32; 4]>>,
}

/// The previous card as its chip gave it (a renewal or correction read at the kiosk): evidence
/// that the card number is the chip's, not only typed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadPreviousCard {
    /// How it was read: `"chip-bac"` (ICAO Doc 9303 Basic Access Control and secure messaging;
    /// not passively authenticated).
    pub source: String,
    /// The chip's machine-readable zone (EF.DG1), three lines of 30 characters, concatenated.
    pub mrz: String,
}

/// Everything captured for one enrolment. Lives in memory only until it is sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    pub enrolment_id: String,
    pub demographics_schema: String,
    pub demographics: serde_json::Map<String, serde_json::Value>,
    pub face: PayloadImage,
    pub fingers: Vec<PayloadFinger>,
    pub exceptions: Vec<PayloadException>,
    pub signature: PayloadSignature,
    /// The previous card read through its chip, when it was (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_card: Option<PayloadPreviousCard>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    payload: Payload,
    /// Byte length of each image part, in order: face, fingers..., signature.
    parts: Vec<u64>,
}

impl Payload {
    fn images(&self) -> impl Iterator<Item = &PayloadImage> {
        std::iter::once(&self.face)
            .chain(self.fingers.iter().map(|f| &f.image))
            .chain(std::iter::once(&self.signature.image))
    }

    /// Pack into the plaintext byte layout described in the module docs.
    pub fn pack(&self) -> Result<Vec<u8>, RecordError> {
        let header = Header {
            payload: self.clone_without_bytes(),
            parts: self.images().map(|i| i.bytes.len() as u64).collect(),
        };
        let header = to_canonical(&header).map_err(|e| RecordError::Payload(e.to_string()))?;
        let total: usize = self.images().map(|i| i.bytes.len()).sum();
        let mut out = Vec::with_capacity(12 + header.len() + total);
        out.extend_from_slice(MAGIC);
        let len = u32::try_from(header.len())
            .map_err(|_| RecordError::Payload("header too large".into()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&header);
        for image in self.images() {
            out.extend_from_slice(&image.bytes);
        }
        Ok(out)
    }

    fn clone_without_bytes(&self) -> Payload {
        let strip = |i: &PayloadImage| PayloadImage {
            bytes: Vec::new(),
            ..i.clone()
        };
        Payload {
            face: strip(&self.face),
            fingers: self
                .fingers
                .iter()
                .map(|f| PayloadFinger {
                    image: strip(&f.image),
                    ..f.clone()
                })
                .collect(),
            signature: PayloadSignature {
                image: strip(&self.signature.image),
                strokes: self.signature.strokes.clone(),
            },
            ..self.clone()
        }
    }

    /// Inverse of [`Self::pack`]; every length is checked, trailing bytes are an error.
    pub fn unpack(bytes: &[u8]) -> Result<Payload, RecordError> {
        let bad = |m: &str| RecordError::Payload(m.to_string());
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| bad("not a Tasjil payload (bad magic)"))?;
        let (len, rest) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("truncated header length"))?;
        let len = u32::from_be_bytes(*len) as usize;
        if len > MAX_HEADER || len > rest.len() {
            return Err(bad("header length out of range"));
        }
        let (header, mut rest) = rest.split_at(len);
        let header: Header = serde_json::from_slice(header)
            .map_err(|e| RecordError::Payload(format!("bad header: {e}")))?;
        let mut payload = header.payload;
        let wanted = 2 + payload.fingers.len();
        if header.parts.len() != wanted {
            return Err(bad("part count does not match the header"));
        }
        let mut take = |n: u64| -> Result<Vec<u8>, RecordError> {
            let n = usize::try_from(n).map_err(|_| bad("part too large"))?;
            if n > rest.len() {
                return Err(bad("truncated part"));
            }
            let (part, tail) = rest.split_at(n);
            rest = tail;
            Ok(part.to_vec())
        };
        let mut parts = header.parts.iter();
        let mut next = || parts.next().copied().ok_or_else(|| bad("missing part"));
        payload.face.bytes = take(next()?)?;
        for finger in &mut payload.fingers {
            finger.image.bytes = take(next()?)?;
        }
        payload.signature.image.bytes = take(next()?)?;
        if !rest.is_empty() {
            return Err(bad("trailing bytes after the last part"));
        }
        Ok(payload)
    }

    /// Pack and encrypt to every recipient. The result's SHA-256 is the payload's address.
    pub fn seal(&self, recipients: &[age::x25519::Recipient]) -> Result<Vec<u8>, RecordError> {
        let plain = self.pack()?;
        seal_bytes(&plain, recipients)
    }

    /// Seal what [`Self::pack`] returned, for a caller that also needs the packed length: the
    /// payload is packed once.
    pub fn seal_packed(
        plain: &[u8],
        recipients: &[age::x25519::Recipient],
    ) -> Result<Vec<u8>, RecordError> {
        seal_bytes(plain, recipients)
    }

    /// Decrypt with the centre's identity and unpack.
    pub fn open(sealed: &[u8], identity: &age::x25519::Identity) -> Result<Payload, RecordError> {
        Self::open_with(sealed, &[identity])
    }

    /// [`Self::open`] with any of `identities` (the centre's current and retired ones).
    pub fn open_with(
        sealed: &[u8],
        identities: &[&age::x25519::Identity],
    ) -> Result<Payload, RecordError> {
        let decryptor =
            age::Decryptor::new(sealed).map_err(|e| RecordError::Open(e.to_string()))?;
        let mut reader = decryptor
            .decrypt(identities.iter().map(|i| *i as &dyn age::Identity))
            .map_err(|e| RecordError::Open(e.to_string()))?;
        let mut plain = Vec::new();
        reader
            .read_to_end(&mut plain)
            .map_err(|e| RecordError::Open(e.to_string()))?;
        Payload::unpack(&plain)
    }
}

fn seal_bytes(plain: &[u8], recipients: &[age::x25519::Recipient]) -> Result<Vec<u8>, RecordError> {
    let err = |e: &dyn std::fmt::Display| RecordError::Seal(e.to_string());
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| err(&e))?;
    let mut sealed = Vec::with_capacity(plain.len() + 512);
    let mut writer = encryptor.wrap_output(&mut sealed).map_err(|e| err(&e))?;
    writer.write_all(plain).map_err(|e| err(&e))?;
    writer.finish().map_err(|e| err(&e))?;
    Ok(sealed)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn image(format: &str, bytes: Vec<u8>) -> PayloadImage {
        PayloadImage {
            format: format.into(),
            width: 3,
            height: 2,
            bytes,
        }
    }

    pub(crate) fn sample(face: Vec<u8>, fingers: Vec<Vec<u8>>) -> Payload {
        let mut demographics = serde_json::Map::new();
        demographics.insert("family_name_latin".into(), "Ait Oufkir".into());
        demographics.insert("family_name_ar".into(), "آيت أوفقير".into());
        Payload {
            enrolment_id: ulid::Ulid::nil().to_string(),
            demographics_schema: "cnie-v1".into(),
            demographics,
            face: image("jpeg", face),
            fingers: fingers
                .into_iter()
                .enumerate()
                .map(|(i, b)| PayloadFinger {
                    position: format!("finger_{i}"),
                    code: i as u8 + 1,
                    ppi: 500,
                    quality: 60,
                    image: image("png", b),
                })
                .collect(),
            exceptions: vec![PayloadException {
                position: "left_little".into(),
                reason: "missing".into(),
            }],
            signature: PayloadSignature {
                image: image("png", vec![1, 2, 3]),
                strokes: vec![vec![[1, 2, 3, 4], [5, 6, 7, 8]]],
            },
            previous_card: Some(PayloadPreviousCard {
                source: "chip-bac".into(),
                mrz: format!("{:<<90}", "IDMARAB123456"),
            }),
        }
    }

    #[test]
    fn only_the_centre_opens_what_was_sealed() {
        let centre = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let payload = sample(vec![0xFF, 0xD8, 9, 9], vec![vec![1; 100], vec![2; 50]]);
        let sealed = payload.seal(&[centre.to_public()]).unwrap();
        assert_eq!(Payload::open(&sealed, &centre).unwrap(), payload);
        assert!(matches!(
            Payload::open(&sealed, &other),
            Err(RecordError::Open(_))
        ));
        let plain = payload.pack().unwrap();
        assert!(!sealed.windows(10).any(|w| w == "Ait Oufkir".as_bytes()));
        assert!(plain.windows(10).any(|w| w == "Ait Oufkir".as_bytes()));
        let mut tampered = sealed.clone();
        let n = tampered.len();
        tampered[n - 20] ^= 1;
        assert!(Payload::open(&tampered, &centre).is_err());
    }

    #[test]
    fn two_recipients_can_each_open() {
        let a = age::x25519::Identity::generate();
        let b = age::x25519::Identity::generate();
        let payload = sample(vec![1], vec![]);
        let sealed = payload.seal(&[a.to_public(), b.to_public()]).unwrap();
        assert_eq!(Payload::open(&sealed, &a).unwrap(), payload);
        assert_eq!(Payload::open(&sealed, &b).unwrap(), payload);
    }

    proptest! {
        #[test]
        fn pack_round_trips(face in proptest::collection::vec(any::<u8>(), 0..300),
                            fingers in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 0..10)) {
            let payload = sample(face, fingers);
            prop_assert_eq!(Payload::unpack(&payload.pack().unwrap()).unwrap(), payload);
        }

        /// Garbage and truncations give an error, never a panic.
        #[test]
        fn unpack_never_panics(cut in any::<prop::sample::Index>(), junk in proptest::collection::vec(any::<u8>(), 0..64)) {
            let packed = sample(vec![1, 2, 3], vec![vec![4; 40]]).pack().unwrap();
            let i = cut.index(packed.len());
            prop_assert!(Payload::unpack(&packed[..i]).is_err());
            let _ = Payload::unpack(&junk);
            let mut extended = packed.clone();
            extended.extend_from_slice(&junk);
            prop_assert_eq!(Payload::unpack(&extended).is_ok(), junk.is_empty());
        }
    }
}
