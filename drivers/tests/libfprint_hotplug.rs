//! A fingerprint sensor unplugged in the middle of a capture, through libfprint's own
//! `virtual_image` device: its socket protocol has a removal command (a header of `-5, 0` makes
//! libfprint remove the device, as a USB unplug does). The capture must end with a retryable
//! `Disconnected` — no hang, no panic — a capture while the sensor is absent must say so at once,
//! and a capture after it is back must succeed.
//! Its own test binary: `FP_VIRTUAL_IMAGE` is read by libfprint when it enumerates.
#![cfg(feature = "libfprint")]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

mod common;

use tasjil_drivers::fprint::FprintScanner;
use tasjil_drivers::sim::SimScanner;
use tasjil_drivers::{CaptureError, FingerPosition, FingerprintScanner};

#[test]
fn sensor_unplugged_mid_capture_is_retryable_and_works_again_when_back() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("fp-hotplug.sock");
    if !common::virtual_sensor(&socket, "libfprint hot-plug test") {
        return;
    }
    let mut scanner = FprintScanner::open(Some("virtual_image")).unwrap();
    // Far longer than the test should take: a removal must end the capture, not this deadline.
    scanner.timeout = Duration::from_secs(60);

    // Unplugged while the capture waits for a finger.
    let unplug = common::send(&socket, common::header(-5, 0));
    let error = scanner
        .capture(FingerPosition::RightThumb)
        .expect_err("a removed sensor cannot deliver");
    unplug.join().unwrap();
    // Disconnected, not Timeout: the removal ended the capture, not the watchdog.
    assert!(
        matches!(error, CaptureError::Disconnected(_)),
        "expected Disconnected (retryable), got {error:?}"
    );

    // While it is away (libfprint no longer enumerates it), a capture says so straight away.
    std::env::remove_var("FP_VIRTUAL_IMAGE");
    match scanner.capture(FingerPosition::RightThumb) {
        Err(CaptureError::Disconnected(why)) => {
            assert!(why.contains("virtual_image"), "{why}")
        }
        other => panic!("expected Disconnected while unplugged, got {other:?}"),
    }

    // Plugged back: the same scanner finds it again and captures.
    std::env::set_var("FP_VIRTUAL_IMAGE", &socket);
    let print = SimScanner::new(21)
        .capture(FingerPosition::RightThumb)
        .unwrap()
        .image;
    let sender = common::send(&socket, common::image_message(&print));
    let got = scanner.capture(FingerPosition::RightThumb).unwrap();
    sender.join().unwrap();
    assert_eq!(got.image.pixels, print.pixels);
    assert_eq!(got.position, FingerPosition::RightThumb);
}
