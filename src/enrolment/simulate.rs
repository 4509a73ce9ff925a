//! Drive the workflow end to end with simulated devices, as `tasjil enrol --simulate` does.
//! Each enrolment gets its own seed so that a run is reproducible, and some seeds carry device
//! defects so that retries and exceptions are exercised on every run of a few dozen.

use serde_json::{Map, Value};
use tasjil_drivers::sim::{Defect, SimCamera, SimScanner, SimSignaturePad};
use tasjil_drivers::{
    Camera, CaptureError, ExceptionReason, FingerException, FingerPosition, FingerprintScanner,
    SignaturePad,
};
use tasjil_sync::EnrolmentKind;

use super::{CapturePolicy, Completed, Enrolment, Outcome, Step};
use crate::schema::{simulated_demographics, Schema};

/// Seed of the `index`-th enrolment of a run started with `seed`.
pub fn enrolment_seed(seed: u64, index: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(index.wrapping_mul(0xD1B5_4A32_D192_ED03))
        ^ index
}

/// The simulated devices of one enrolment, with defects chosen from the seed.
pub fn devices(seed: u64) -> (SimCamera, SimScanner, SimSignaturePad) {
    let mut scanner = SimScanner::new(seed);
    match seed % 23 {
        0 => scanner = scanner.with_defect(FingerPosition::LeftLittle, Defect::Missing),
        1 => scanner = scanner.with_defect(FingerPosition::RightIndex, Defect::Dry),
        2 => scanner = scanner.with_defect(FingerPosition::LeftThumb, Defect::Smudged),
        _ => {}
    }
    (SimCamera::new(seed), scanner, SimSignaturePad::new(seed))
}

/// Run one enrolment through every step with simulated devices and answers.
/// `overrides` replace generated demographics field by field.
pub fn run(
    seed: u64,
    kind: EnrolmentKind,
    schema: &Schema,
    overrides: Option<&Map<String, Value>>,
    policy: &CapturePolicy,
    now: fn() -> i64,
) -> anyhow::Result<Completed> {
    let (mut camera, mut scanner, mut pad) = devices(seed);
    let mut enrolment = Enrolment::new(policy.clone(), now());
    enrolment.identify(kind)?;
    let mut data = simulated_demographics(seed, kind.as_str());
    if let Some(o) = overrides {
        for (k, v) in o {
            data.insert(k.clone(), v.clone());
        }
    }
    enrolment.set_demographics(schema, data)?;
    while enrolment.step() == Step::Face {
        enrolment.offer_face(camera.capture_still()?)?;
    }
    while let Some(position) = enrolment.next_finger() {
        match scanner.capture(position) {
            Ok(capture) => {
                if let Outcome::Retry { .. } = enrolment.offer_finger(capture)? {
                    continue;
                }
            }
            Err(CaptureError::NoFinger(_)) => enrolment.finger_exception(FingerException {
                position,
                reason: ExceptionReason::Missing,
            })?,
            Err(e) => return Err(e.into()),
        }
    }
    enrolment.offer_signature(pad.capture()?)?;
    Ok(enrolment.finish(now())?)
}
