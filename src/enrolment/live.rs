//! Drive the workflow with the station's configured devices, as `tasjil enrol` without
//! `--simulate` does: the face from a [`Camera`], the ten fingers from a [`FingerprintScanner`]
//! (the officer is told which finger to place), the signature as pen strokes handed in by the
//! caller, demographics from the operator. Nothing is stored here: a device that fails beyond its
//! retries ends the enrolment with an error, and the caller commits only a finished one.

use serde_json::{Map, Value};
use tasjil_drivers::{Camera, CaptureError, FingerprintScanner, SignatureCapture};
use tasjil_sync::EnrolmentKind;

use super::{CapturePolicy, Completed, Enrolment, Outcome, Step};
use crate::schema::Schema;

/// Device errors (a camera or sensor unplugged, a capture that timed out) tolerated in a row on
/// one capture before the enrolment gives up. Each retry reopens the device.
pub const DEVICE_RETRIES: u32 = 3;

/// The devices of one enrolment.
pub struct Devices<'a> {
    pub camera: &'a mut dyn Camera,
    pub scanner: &'a mut dyn FingerprintScanner,
}

impl std::fmt::Debug for Devices<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devices")
            .field("camera", &self.camera.name())
            .field("scanner", &self.scanner.name())
            .finish()
    }
}

/// Run one enrolment. `say` receives the officer's instructions ("place the right thumb …").
#[allow(clippy::too_many_arguments)]
pub fn run(
    devices: Devices<'_>,
    kind: EnrolmentKind,
    schema: &Schema,
    demographics: Map<String, Value>,
    signature: SignatureCapture,
    policy: &CapturePolicy,
    now: fn() -> i64,
    say: &mut dyn FnMut(&str),
) -> anyhow::Result<Completed> {
    let Devices { camera, scanner } = devices;
    let mut enrolment = Enrolment::new(policy.clone(), now());
    enrolment.identify(kind)?;
    enrolment.set_demographics(schema, demographics)?;

    say(&format!("face: look at the camera ({})", camera.name()));
    let mut failures = 0;
    while enrolment.step() == Step::Face {
        match camera.capture_still() {
            Ok(photo) => {
                failures = 0;
                if let Outcome::Retry { quality, .. } = enrolment.offer_face(photo)? {
                    say(&format!(
                        "face: quality {quality} is too low, taking another photo"
                    ));
                }
            }
            Err(e) => {
                failures += 1;
                if failures >= DEVICE_RETRIES {
                    anyhow::bail!("the camera failed {failures} times in a row: {e}");
                }
                say(&format!("camera: {e}; trying again"));
            }
        }
    }

    while let Some(position) = enrolment.next_finger() {
        let finger = position.name().replace('_', " ");
        say(&format!("place the {finger} on the fingerprint sensor"));
        let mut failures = 0;
        loop {
            match scanner.capture(position) {
                Ok(capture) => {
                    if let Outcome::Retry { quality, .. } = enrolment.offer_finger(capture)? {
                        say(&format!(
                            "{finger}: quality {quality} is too low, place it again"
                        ));
                    }
                    break;
                }
                Err(e @ (CaptureError::NoFinger(_) | CaptureError::Image(_))) => {
                    failures += 1;
                    if failures >= DEVICE_RETRIES {
                        anyhow::bail!("{finger}: no usable print after {failures} tries: {e}");
                    }
                    say(&format!("{finger}: {e}; place it again"));
                    say(&format!("place the {finger} on the fingerprint sensor"));
                }
                Err(e) => {
                    failures += 1;
                    if failures >= DEVICE_RETRIES {
                        anyhow::bail!(
                            "{finger}: the fingerprint sensor failed {failures} times in a row: {e}"
                        );
                    }
                    say(&format!("fingerprint sensor: {e}; trying again"));
                    say(&format!("place the {finger} on the fingerprint sensor"));
                }
            }
        }
    }

    enrolment.offer_signature(signature)?;
    Ok(enrolment.finish(now())?)
}
