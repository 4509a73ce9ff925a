//! Turning a [`Completed`] enrolment into what is stored: the sealed payload and the signed,
//! co-signed envelope that names it.

use std::time::Instant;

use tasjil_drivers::ExceptionReason;
use tasjil_sync::record::{CaptureTimes, FingerQuality, QualitySummary};
use tasjil_sync::record::{PayloadException, PayloadFinger, PayloadImage, PayloadSignature};
use tasjil_sync::{
    sha256_hex, CoSignature, Envelope, EnvelopeBody, Payload, PayloadRef, Signed, StationKey,
    ENVELOPE_VERSION,
};

use super::{Completed, OfficerBadge};

/// A sealed, signed record ready for the store, with how long each stage took.
#[derive(Debug)]
pub struct Sealed {
    pub envelope: Envelope<Signed>,
    pub sealed: Vec<u8>,
    pub plain_len: usize,
    pub seal_us: u64,
    pub sign_us: u64,
}

/// Where the record goes in the station's chain.
#[derive(Debug, Clone)]
pub struct ChainPosition {
    pub station: String,
    pub seq: u64,
    pub prev: String,
    /// A training station's record (`tasjil init --simulation`): marked in the envelope.
    pub simulation: bool,
    /// Version of the centre's roster the station holds, `None` on a training station without one.
    pub roster: Option<u64>,
}

fn reason_text(r: &ExceptionReason) -> String {
    match r {
        ExceptionReason::Missing => "missing".into(),
        ExceptionReason::Injured => "injured".into(),
        ExceptionReason::Bandaged => "bandaged".into(),
        ExceptionReason::Unusable => "unusable".into(),
        ExceptionReason::Other(t) => format!("other: {t}"),
    }
}

/// How finger images are encoded in the payload (`[capture] finger_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FingerFormat {
    /// FBI WSQ at 0.75 bit per pixel: what AFIS systems take, ≈ 15 times smaller than PNG.
    #[default]
    Wsq,
    /// Lossless PNG.
    Png,
}

impl FingerFormat {
    /// The payload's `format` string.
    pub fn name(self) -> &'static str {
        match self {
            FingerFormat::Wsq => "wsq",
            FingerFormat::Png => "png",
        }
    }

    pub fn encode(self, image: &tasjil_drivers::GreyImage) -> anyhow::Result<Vec<u8>> {
        Ok(match self {
            FingerFormat::Png => image.to_png()?,
            FingerFormat::Wsq => tasjil_wsq::encode(
                &image.pixels,
                image.width,
                image.height,
                &tasjil_wsq::EncodeOptions {
                    ppi: image.ppi,
                    ..Default::default()
                },
            )?,
        })
    }
}

/// A print encoded for the payload, in the format it was encoded in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPrint {
    pub format: FingerFormat,
    pub bytes: Vec<u8>,
}

impl EncodedPrint {
    pub fn encode(format: FingerFormat, image: &tasjil_drivers::GreyImage) -> anyhow::Result<Self> {
        Ok(EncodedPrint {
            format,
            bytes: format.encode(image)?,
        })
    }
}

/// Build the payload (everything captured) for enrolment `id`. Prints already encoded in
/// `finger_format` when they were accepted are taken as they are; any other is encoded here.
pub fn payload(
    done: &Completed,
    id: &str,
    schema_id: &str,
    finger_format: FingerFormat,
) -> anyhow::Result<Payload> {
    let mut fingers = Vec::with_capacity(done.fingers.len());
    for f in &done.fingers {
        fingers.push(PayloadFinger {
            position: f.position.name().into(),
            code: f.position.code(),
            ppi: f.image.ppi,
            quality: f.quality,
            image: PayloadImage {
                format: finger_format.name().into(),
                width: f.image.width,
                height: f.image.height,
                bytes: match done.encoded_fingers.get(&f.position) {
                    Some(e) if e.format == finger_format => e.bytes.clone(),
                    _ => finger_format.encode(&f.image)?,
                },
            },
        });
    }
    Ok(Payload {
        enrolment_id: id.into(),
        demographics_schema: schema_id.into(),
        demographics: done.demographics.clone(),
        face: PayloadImage {
            format: "jpeg".into(),
            width: done.face.image.width,
            height: done.face.image.height,
            bytes: done.face.image.jpeg.clone(),
        },
        fingers,
        exceptions: done
            .exceptions
            .iter()
            .map(|e| PayloadException {
                position: e.position.name().into(),
                reason: reason_text(&e.reason),
            })
            .collect(),
        signature: PayloadSignature {
            image: PayloadImage {
                format: "png".into(),
                width: u32::from(done.signature.width),
                height: u32::from(done.signature.height),
                bytes: done.signature.png.clone(),
            },
            strokes: done
                .signature
                .strokes
                .iter()
                .map(|s| {
                    s.points
                        .iter()
                        .map(|p| {
                            [
                                u32::from(p.x),
                                u32::from(p.y),
                                p.t_ms,
                                u32::from(p.pressure),
                            ]
                        })
                        .collect()
                })
                .collect(),
        },
        previous_card: done.previous_card_mrz.as_ref().map(|mrz| {
            tasjil_sync::record::PayloadPreviousCard {
                source: "chip-bac".into(),
                mrz: mrz.clone(),
            }
        }),
    })
}

/// A fresh ULID for an enrolment.
pub fn new_id(now_ms: i64) -> String {
    use rand_core::RngCore;
    let mut random = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut random);
    ulid::Ulid::from_parts(now_ms.max(0) as u64, u128::from_le_bytes(random)).to_string()
}

/// Seal the payload to the centre, build the envelope, have the badge co-sign it and the station
/// sign it.
#[allow(clippy::too_many_arguments)]
pub fn seal_and_sign(
    done: &Completed,
    id: &str,
    schema_id: &str,
    at: &ChainPosition,
    recipients: &[age::x25519::Recipient],
    badge: &mut dyn OfficerBadge,
    station: &StationKey,
    finger_format: FingerFormat,
) -> anyhow::Result<Sealed> {
    let t0 = Instant::now();
    let payload = payload(done, id, schema_id, finger_format)?;
    let plain = payload.pack()?;
    let plain_len = plain.len();
    let sealed = Payload::seal_packed(&plain, recipients)?;
    drop(plain);
    let seal_us = t0.elapsed().as_micros() as u64;

    let t1 = Instant::now();
    let last = |times: &mut dyn Iterator<Item = i64>| times.max().unwrap_or(done.finished_ms);
    let body = EnvelopeBody {
        v: ENVELOPE_VERSION,
        id: id.into(),
        kind: done.kind,
        station: at.station.clone(),
        officer: badge.officer_id(),
        seq: at.seq,
        prev: at.prev.clone(),
        demographics_schema: schema_id.into(),
        captured: CaptureTimes {
            started_ms: done.started_ms,
            face_ms: done.face.captured_at_ms,
            fingers_ms: last(&mut done.fingers.iter().map(|f| f.captured_at_ms)),
            signature_ms: done.signature.captured_at_ms,
            finished_ms: done.finished_ms,
        },
        quality: QualitySummary {
            face: done.face.quality,
            face_attempts: done.face_attempts,
            fingers: done
                .fingers
                .iter()
                .map(|f| FingerQuality {
                    position: f.position.name().into(),
                    score: f.quality,
                })
                .collect(),
            finger_exceptions: done
                .exceptions
                .iter()
                .map(|e| e.position.name().into())
                .collect(),
            below_threshold: done.below_threshold.clone(),
        },
        payload: PayloadRef {
            sha256: sha256_hex(&sealed),
            len: sealed.len() as u64,
        },
        simulation: at.simulation,
        roster: at.roster,
    };
    let unsigned = Envelope::new(body)?;
    let cosig = badge.sign(&unsigned.officer_message()?)?;
    let envelope = unsigned
        .with_officer_signature(CoSignature {
            key: badge.public_key_hex(),
            sig: hex::encode(cosig),
        })
        .sign(station)?;
    let sign_us = t1.elapsed().as_micros() as u64;
    Ok(Sealed {
        envelope,
        sealed,
        plain_len,
        seal_us,
        sign_us,
    })
}
