//! The enrolment state machine. The current step is derived from what has been captured, so a
//! retake from the review simply clears one piece and the machine resumes there.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tasjil_drivers::face::{decode_frame, FaceAnalyzer, FaceError};
use tasjil_drivers::{
    ExceptionReason, FaceCapture, FingerCapture, FingerException, FingerPosition, SignatureCapture,
};
use tasjil_sync::EnrolmentKind;

use super::record::{EncodedPrint, FingerFormat};
use crate::schema::{FieldError, Schema};

/// Thresholds and retries. Defaults follow field practice: three tries, then the best capture is
/// kept and flagged "below threshold" so the citizen is not turned away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturePolicy {
    pub face_min_quality: u8,
    pub face_max_attempts: u32,
    pub finger_min_quality: u8,
    pub finger_max_attempts: u32,
    /// How each print is encoded for the payload (`[capture] finger_format`): done when the
    /// finger is accepted, so the commit only packs what is already encoded.
    pub finger_format: FingerFormat,
}

impl Default for CapturePolicy {
    fn default() -> Self {
        CapturePolicy {
            face_min_quality: 50,
            face_max_attempts: 3,
            finger_min_quality: 40,
            finger_max_attempts: 3,
            finger_format: FingerFormat::default(),
        }
    }
}

/// The station's judgement of a face photo: its score replaces the device's, and the photo is
/// replaced by the token image when one face was found. An undecodable photo scores 0.
pub fn assess_face(capture: FaceCapture) -> FaceCapture {
    let analyzer = FaceAnalyzer::shared();
    let assessed = decode_frame(&capture.image.jpeg, capture.captured_at_ms)
        .map_err(FaceError::from)
        .and_then(|frame| {
            let report = analyzer.analyze(&frame)?;
            let token = FaceAnalyzer::token_image(&frame, &report).ok();
            Ok((report.score, token))
        });
    match assessed {
        Ok((quality, Some(token))) => FaceCapture {
            image: token,
            quality,
            captured_at_ms: capture.captured_at_ms,
        },
        Ok((quality, None)) => FaceCapture { quality, ..capture },
        Err(e) => {
            tracing::warn!("face photo could not be judged: {e}");
            FaceCapture {
                quality: 0,
                ..capture
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Identify,
    Demographics,
    Face,
    Fingers,
    Signature,
    Review,
}

/// What happened to an offered capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// Below the threshold: capture again.
    Retry {
        quality: u8,
        attempts_left: u32,
    },
    /// Retries exhausted: the best capture so far is kept and flagged.
    KeptBelowThreshold {
        quality: u8,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WorkflowError {
    #[error("this action belongs to the {expected:?} step, but the enrolment is at {actual:?}")]
    WrongStep { expected: Step, actual: Step },
    #[error("demographics are not valid: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("{0} was already captured or excepted")]
    FingerDone(&'static str),
    #[error("{0}")]
    Signature(tasjil_drivers::SignatureProblem),
}

/// A finished enrolment, ready to be sealed and signed.
#[derive(Debug, Clone)]
pub struct Completed {
    pub kind: EnrolmentKind,
    pub demographics: Map<String, Value>,
    pub face: FaceCapture,
    pub face_attempts: u32,
    pub fingers: Vec<FingerCapture>,
    /// Each kept print as the payload will carry it, encoded when the finger was accepted (a
    /// print missing here, or in another format, is encoded at the commit).
    pub encoded_fingers: BTreeMap<FingerPosition, EncodedPrint>,
    pub exceptions: Vec<FingerException>,
    pub below_threshold: Vec<String>,
    pub signature: SignatureCapture,
    pub started_ms: i64,
    pub finished_ms: i64,
    /// The previous card's MRZ as its chip gave it, when the kiosk read it (renewal,
    /// correction) and the card number in the demographics is the chip's.
    pub previous_card_mrz: Option<String>,
}

/// One citizen's enrolment in progress.
#[derive(Debug, Clone)]
pub struct Enrolment {
    policy: CapturePolicy,
    started_ms: i64,
    kind: Option<EnrolmentKind>,
    demographics: Option<Map<String, Value>>,
    face: Option<FaceCapture>,
    face_done: bool,
    face_attempts: u32,
    fingers: BTreeMap<FingerPosition, FingerCapture>,
    /// The kept print of each finger that is done, encoded in `policy.finger_format`.
    encoded: BTreeMap<FingerPosition, EncodedPrint>,
    finger_done: BTreeMap<FingerPosition, bool>,
    finger_attempts: BTreeMap<FingerPosition, u32>,
    exceptions: BTreeMap<FingerPosition, ExceptionReason>,
    signature: Option<SignatureCapture>,
}

impl Enrolment {
    pub fn new(policy: CapturePolicy, now_ms: i64) -> Self {
        Enrolment {
            policy,
            started_ms: now_ms,
            kind: None,
            demographics: None,
            face: None,
            face_done: false,
            face_attempts: 0,
            fingers: BTreeMap::new(),
            encoded: BTreeMap::new(),
            finger_done: BTreeMap::new(),
            finger_attempts: BTreeMap::new(),
            exceptions: BTreeMap::new(),
            signature: None,
        }
    }

    /// The first step with something missing; `Review` when everything is there.
    pub fn step(&self) -> Step {
        if self.kind.is_none() {
            Step::Identify
        } else if self.demographics.is_none() {
            Step::Demographics
        } else if !self.face_done {
            Step::Face
        } else if self.next_finger().is_some() {
            Step::Fingers
        } else if self.signature.is_none() {
            Step::Signature
        } else {
            Step::Review
        }
    }

    fn expect(&self, expected: Step) -> Result<(), WorkflowError> {
        let actual = self.step();
        if actual == expected {
            Ok(())
        } else {
            Err(WorkflowError::WrongStep { expected, actual })
        }
    }

    pub fn kind(&self) -> Option<EnrolmentKind> {
        self.kind
    }

    pub fn identify(&mut self, kind: EnrolmentKind) -> Result<(), WorkflowError> {
        self.expect(Step::Identify)?;
        self.kind = Some(kind);
        Ok(())
    }

    /// Validate against the schema for this enrolment's kind; nothing is kept when invalid.
    pub fn set_demographics(
        &mut self,
        schema: &Schema,
        data: Map<String, Value>,
    ) -> Result<(), WorkflowError> {
        self.expect(Step::Demographics)?;
        let kind = self.kind.map_or("new", |k| k.as_str());
        schema
            .validate(kind, &data)
            .map_err(WorkflowError::Invalid)?;
        self.demographics = Some(data);
        Ok(())
    }

    fn judge(quality: u8, min: u8, attempts: u32, max: u32, best: u8) -> (Outcome, bool) {
        if quality >= min {
            (Outcome::Accepted, true)
        } else if attempts >= max {
            (Outcome::KeptBelowThreshold { quality: best }, true)
        } else {
            (
                Outcome::Retry {
                    quality,
                    attempts_left: max - attempts,
                },
                false,
            )
        }
    }

    /// Judge a face photo with the station's own analyzer — never the device's score, which is
    /// replaced by the analyzer's (below 50 whenever a check fails, 0 with no single face) — and
    /// keep it as the ISO/IEC 19794-5 token image cut from the photo (levelled, scaled, cropped),
    /// or ask for a retry, or keep the best after the last try. A photo with no single face has
    /// no token image: it is kept as taken, and only if nothing better comes.
    pub fn offer_face(&mut self, capture: FaceCapture) -> Result<Outcome, WorkflowError> {
        self.expect(Step::Face)?;
        let capture = assess_face(capture);
        self.face_attempts += 1;
        if self
            .face
            .as_ref()
            .is_none_or(|best| capture.quality > best.quality)
        {
            self.face = Some(capture.clone());
        }
        let best = self.face.as_ref().map_or(0, |f| f.quality);
        let (outcome, done) = Self::judge(
            capture.quality,
            self.policy.face_min_quality,
            self.face_attempts,
            self.policy.face_max_attempts,
            best,
        );
        if done && matches!(outcome, Outcome::Accepted) {
            self.face = Some(capture);
        }
        self.face_done = done;
        Ok(outcome)
    }

    /// The next finger to capture, in ANSI/NIST position order.
    pub fn next_finger(&self) -> Option<FingerPosition> {
        FingerPosition::ALL.into_iter().find(|p| {
            !self.finger_done.get(p).copied().unwrap_or(false) && !self.exceptions.contains_key(p)
        })
    }

    /// Judge a fingerprint with the station's own quality engine — never the device's score,
    /// which is replaced — and keep it, ask for a retry, or keep the best after the last try.
    pub fn offer_finger(&mut self, mut capture: FingerCapture) -> Result<Outcome, WorkflowError> {
        self.expect(Step::Fingers)?;
        capture.quality = tasjil_drivers::quality::finger_quality(&capture.image).score;
        let pos = capture.position;
        if self.finger_done.get(&pos).copied().unwrap_or(false)
            || self.exceptions.contains_key(&pos)
        {
            return Err(WorkflowError::FingerDone(pos.name()));
        }
        let attempts = self.finger_attempts.entry(pos).or_insert(0);
        *attempts += 1;
        let attempts = *attempts;
        if self
            .fingers
            .get(&pos)
            .is_none_or(|best| capture.quality > best.quality)
        {
            self.fingers.insert(pos, capture.clone());
        }
        let best = self.fingers.get(&pos).map_or(0, |f| f.quality);
        let (outcome, done) = Self::judge(
            capture.quality,
            self.policy.finger_min_quality,
            attempts,
            self.policy.finger_max_attempts,
            best,
        );
        if done && matches!(outcome, Outcome::Accepted) {
            self.fingers.insert(pos, capture);
        }
        self.finger_done.insert(pos, done);
        self.encoded.remove(&pos);
        if done {
            // The print is final: encode it now, while the citizen moves to the next finger,
            // rather than inside the commit. A failure here is not the citizen's: the commit
            // encodes it again and reports the error there.
            if let Some(kept) = self.fingers.get(&pos) {
                match EncodedPrint::encode(self.policy.finger_format, &kept.image) {
                    Ok(e) => {
                        self.encoded.insert(pos, e);
                    }
                    Err(e) => tracing::warn!("{}: print not encoded at capture: {e:#}", pos.name()),
                }
            }
        }
        Ok(outcome)
    }

    /// Record that a finger cannot be captured (missing, injured, ...), with the reason.
    pub fn finger_exception(&mut self, exception: FingerException) -> Result<(), WorkflowError> {
        self.expect(Step::Fingers)?;
        let pos = exception.position;
        if self.finger_done.get(&pos).copied().unwrap_or(false)
            || self.exceptions.contains_key(&pos)
        {
            return Err(WorkflowError::FingerDone(pos.name()));
        }
        self.fingers.remove(&pos);
        self.encoded.remove(&pos);
        self.exceptions.insert(pos, exception.reason);
        Ok(())
    }

    pub fn offer_signature(&mut self, capture: SignatureCapture) -> Result<(), WorkflowError> {
        self.expect(Step::Signature)?;
        capture.check().map_err(WorkflowError::Signature)?;
        self.signature = Some(capture);
        Ok(())
    }

    /// From the review, go back and redo one step (the other captures are kept).
    pub fn retake(&mut self, step: Step) {
        match step {
            Step::Identify => {
                self.kind = None;
                self.demographics = None;
            }
            Step::Demographics => self.demographics = None,
            Step::Face => {
                self.face = None;
                self.face_done = false;
                self.face_attempts = 0;
            }
            Step::Fingers => {
                self.fingers.clear();
                self.encoded.clear();
                self.finger_done.clear();
                self.finger_attempts.clear();
                self.exceptions.clear();
            }
            Step::Signature => self.signature = None,
            Step::Review => {}
        }
    }

    /// Close the review: everything must be there.
    pub fn finish(self, now_ms: i64) -> Result<Completed, WorkflowError> {
        self.expect(Step::Review)?;
        let below_threshold = self
            .face
            .iter()
            .filter(|f| f.quality < self.policy.face_min_quality)
            .map(|_| "face".to_string())
            .chain(
                self.fingers
                    .values()
                    .filter(|f| f.quality < self.policy.finger_min_quality)
                    .map(|f| f.position.name().to_string()),
            )
            .collect();
        let (Some(kind), Some(demographics), Some(face), Some(signature)) =
            (self.kind, self.demographics, self.face, self.signature)
        else {
            return Err(WorkflowError::WrongStep {
                expected: Step::Review,
                actual: Step::Identify,
            });
        };
        Ok(Completed {
            kind,
            demographics,
            face,
            face_attempts: self.face_attempts,
            fingers: self.fingers.into_values().collect(),
            encoded_fingers: self.encoded,
            exceptions: self
                .exceptions
                .into_iter()
                .map(|(position, reason)| FingerException { position, reason })
                .collect(),
            below_threshold,
            signature,
            started_ms: self.started_ms,
            finished_ms: now_ms,
            previous_card_mrz: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tasjil_drivers::sim::{Defect, SimCamera, SimScanner, SimSignaturePad};
    use tasjil_drivers::{Camera, FingerprintScanner, GreyImage, SignaturePad};

    fn schema() -> Schema {
        Schema::default_cnie()
    }

    fn at_fingers() -> Enrolment {
        let mut e = Enrolment::new(CapturePolicy::default(), 0);
        e.identify(EnrolmentKind::New).unwrap();
        e.set_demographics(&schema(), crate::schema::simulated_demographics(1, "new"))
            .unwrap();
        let mut camera = SimCamera::new(1);
        while e.step() == Step::Face {
            e.offer_face(camera.capture_still().unwrap()).unwrap();
        }
        e
    }

    #[test]
    fn steps_come_in_order_and_out_of_order_actions_are_refused() {
        let mut e = Enrolment::new(CapturePolicy::default(), 0);
        assert_eq!(e.step(), Step::Identify);
        let face = SimCamera::new(1).capture_still().unwrap();
        assert_eq!(
            e.offer_face(face),
            Err(WorkflowError::WrongStep {
                expected: Step::Face,
                actual: Step::Identify
            })
        );
        e.identify(EnrolmentKind::Renewal).unwrap();
        // A renewal without the previous card number is refused, field named, nothing kept.
        let mut data = crate::schema::simulated_demographics(1, "new");
        data.remove("previous_card_number");
        match e.set_demographics(&schema(), data) {
            Err(WorkflowError::Invalid(errors)) => {
                assert!(errors.iter().any(|f| f.field == "previous_card_number"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.step(), Step::Demographics);
    }

    #[test]
    fn the_station_judges_prints_itself_and_keeps_the_best_after_the_last_try() {
        let mut e = at_fingers();
        assert_eq!(e.step(), Step::Fingers);
        // A blank image that the "device" claims is perfect is still refused.
        let blank = FingerCapture {
            position: FingerPosition::RightThumb,
            image: GreyImage {
                width: 320,
                height: 400,
                ppi: 500,
                pixels: vec![250; 320 * 400],
            },
            quality: 99,
            captured_at_ms: 0,
        };
        assert!(matches!(
            e.offer_finger(blank),
            Ok(Outcome::Retry {
                attempts_left: 2,
                ..
            })
        ));
        let mut dry = SimScanner::new(5).with_defect(FingerPosition::RightThumb, Defect::Dry);
        assert!(matches!(
            e.offer_finger(dry.capture(FingerPosition::RightThumb).unwrap()),
            Ok(Outcome::Retry {
                attempts_left: 1,
                ..
            })
        ));
        assert!(matches!(
            e.offer_finger(dry.capture(FingerPosition::RightThumb).unwrap()),
            Ok(Outcome::KeptBelowThreshold { .. })
        ));
        assert_eq!(e.next_finger(), Some(FingerPosition::RightIndex));
    }

    #[test]
    fn prints_are_encoded_when_accepted_and_the_payload_packs_them_as_they_are() {
        let mut e = at_fingers();
        let mut scanner = SimScanner::new(2);
        e.finger_exception(FingerException {
            position: FingerPosition::LeftLittle,
            reason: ExceptionReason::Missing,
        })
        .unwrap();
        let first = e.next_finger().unwrap();
        assert!(e.encoded.is_empty());
        while e.next_finger() == Some(first) {
            e.offer_finger(scanner.capture(first).unwrap()).unwrap();
        }
        let wsq = e.encoded[&first].clone();
        assert_eq!(wsq.format, FingerFormat::Wsq);
        let decoded = tasjil_wsq::decode(&wsq.bytes).unwrap();
        assert_eq!((decoded.width, decoded.height), (320, 400));
        // A retake of the fingers forgets what was encoded with them.
        e.retake(Step::Fingers);
        assert!(e.encoded.is_empty());
        while let Some(p) = e.next_finger() {
            e.offer_finger(scanner.capture(p).unwrap()).unwrap();
        }
        e.offer_signature(SimSignaturePad::new(2).capture().unwrap())
            .unwrap();
        let done = e.finish(9).unwrap();
        assert_eq!(done.encoded_fingers.len(), 10);
        assert_eq!(done.fingers.len(), 10);
        let payload =
            super::super::record::payload(&done, "01J0", "cnie-v1", FingerFormat::Wsq).unwrap();
        for f in &payload.fingers {
            let position = FingerPosition::ALL
                .into_iter()
                .find(|p| p.name() == f.position)
                .unwrap();
            assert_eq!(f.image.bytes, done.encoded_fingers[&position].bytes);
        }
        // A station set to another format than the capture's encodes again at the commit.
        let png =
            super::super::record::payload(&done, "01J0", "cnie-v1", FingerFormat::Png).unwrap();
        assert!(png
            .fingers
            .iter()
            .all(|f| f.image.bytes.starts_with(b"\x89PNG")));
        let mut png_policy = Enrolment::new(
            CapturePolicy {
                finger_format: FingerFormat::Png,
                ..CapturePolicy::default()
            },
            0,
        );
        png_policy.identify(EnrolmentKind::New).unwrap();
        png_policy
            .set_demographics(&schema(), crate::schema::simulated_demographics(1, "new"))
            .unwrap();
        let mut camera = SimCamera::new(1);
        while png_policy.step() == Step::Face {
            png_policy
                .offer_face(camera.capture_still().unwrap())
                .unwrap();
        }
        let p = png_policy.next_finger().unwrap();
        while png_policy.next_finger() == Some(p) {
            png_policy
                .offer_finger(scanner.capture(p).unwrap())
                .unwrap();
        }
        assert!(png_policy.encoded[&p].bytes.starts_with(b"\x89PNG"));
    }

    #[test]
    fn exceptions_retakes_and_finish() {
        let mut e = at_fingers();
        let mut scanner = SimScanner::new(2);
        e.finger_exception(FingerException {
            position: FingerPosition::LeftLittle,
            reason: ExceptionReason::Missing,
        })
        .unwrap();
        while let Some(p) = e.next_finger() {
            e.offer_finger(scanner.capture(p).unwrap()).unwrap();
        }
        assert_eq!(e.step(), Step::Signature);
        assert!(
            e.clone().finish(1).is_err(),
            "cannot finish before the review"
        );
        e.offer_signature(SimSignaturePad::new(2).capture().unwrap())
            .unwrap();
        assert_eq!(e.step(), Step::Review);
        e.retake(Step::Face);
        assert_eq!(e.step(), Step::Face);
        let mut camera = SimCamera::new(3);
        while e.step() == Step::Face {
            e.offer_face(camera.capture_still().unwrap()).unwrap();
        }
        assert_eq!(e.step(), Step::Review, "the other captures are kept");
        let done = e.finish(9).unwrap();
        assert_eq!(done.fingers.len(), 9);
        assert_eq!(done.exceptions.len(), 1);
        assert_eq!(done.finished_ms, 9);
    }

    #[test]
    fn the_station_judges_faces_itself_and_keeps_the_token_image() {
        let policy = CapturePolicy {
            face_max_attempts: 4,
            ..CapturePolicy::default()
        };
        let mut e = Enrolment::new(policy, 0);
        e.identify(EnrolmentKind::New).unwrap();
        e.set_demographics(&schema(), crate::schema::simulated_demographics(1, "new"))
            .unwrap();
        // A grey picture the "device" calls perfect: no face, score 0, retry.
        let grey = tasjil_drivers::RgbFrame {
            width: 480,
            height: 640,
            rgb: vec![128; 480 * 640 * 3],
            captured_at_ms: 5,
        };
        let blank = FaceCapture {
            image: grey.to_jpeg().unwrap(),
            quality: 99,
            captured_at_ms: 5,
        };
        assert_eq!(
            e.offer_face(blank),
            Ok(Outcome::Retry {
                quality: 0,
                attempts_left: 3
            })
        );
        // The simulated camera: a fault first, then a good moment within two more stills.
        let mut camera = SimCamera::new(4);
        let mut outcomes = Vec::new();
        while e.step() == Step::Face {
            outcomes.push(e.offer_face(camera.capture_still().unwrap()).unwrap());
        }
        assert_eq!(outcomes.last(), Some(&Outcome::Accepted), "{outcomes:?}");
        let face = e.face.clone().unwrap();
        assert!(face.quality >= 60, "{}", face.quality);
        // What is kept is the ISO token image, not the camera's 480x640 photo.
        assert_eq!(face.image.width * 4, face.image.height * 3);
        assert!(face.image.width >= 240 && face.image.width < 480);
        let frame = tasjil_drivers::face::decode_frame(&face.image.jpeg, 0).unwrap();
        assert_eq!(
            (frame.width, frame.height),
            (face.image.width, face.image.height)
        );
    }
}
