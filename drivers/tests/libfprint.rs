//! libfprint backend through libfprint's own `virtual_image` device: the test plays the sensor by
//! writing images into its socket (width and height as little-endian i32, then grey bytes).
//! One test function: `FP_VIRTUAL_IMAGE` must be set before libfprint starts, once per process.
#![cfg(feature = "libfprint")]
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

mod common;

use tasjil_drivers::fprint::FprintScanner;
use tasjil_drivers::sim::SimScanner;
use tasjil_drivers::{CaptureError, FingerPosition, FingerprintScanner};

#[test]
fn captures_through_libfprints_virtual_image_sensor() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("fp-virtual-image.sock");
    if !common::virtual_sensor(&socket, "libfprint test") {
        return;
    }
    let t = Instant::now();
    let mut scanner = FprintScanner::open(Some("virtual_image")).unwrap();
    let open_ms = t.elapsed().as_millis();
    assert!(
        scanner.name().contains("virtual_image"),
        "{}",
        scanner.name()
    );

    // A simulated print goes in; the same pixels come out of libfprint.
    let print = SimScanner::new(11)
        .capture(FingerPosition::RightIndex)
        .unwrap()
        .image;
    let sender = common::send(&socket, common::image_message(&print));
    let t = Instant::now();
    let got = scanner.capture(FingerPosition::RightIndex).unwrap();
    let capture_ms = t.elapsed().as_millis();
    sender.join().unwrap();
    assert_eq!(
        (got.image.width, got.image.height),
        (print.width, print.height)
    );
    assert_eq!(
        got.image.pixels, print.pixels,
        "libfprint handed back other pixels"
    );
    assert_eq!(got.position, FingerPosition::RightIndex);
    eprintln!("libfprint virtual_image: open {open_ms} ms, capture {capture_ms} ms (incl. 300 ms test delay)");

    // Nobody puts a finger on the sensor: the capture gives up cleanly, and can be retried.
    scanner.timeout = Duration::from_millis(800);
    let t = Instant::now();
    match scanner.capture(FingerPosition::RightMiddle) {
        Err(CaptureError::Timeout(name)) => assert!(!name.is_empty()),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(5));

    scanner.timeout = Duration::from_secs(20);
    let other = SimScanner::new(12)
        .capture(FingerPosition::RightMiddle)
        .unwrap()
        .image;
    let sender = common::send(&socket, common::image_message(&other));
    let got = scanner.capture(FingerPosition::RightMiddle).unwrap();
    sender.join().unwrap();
    assert_eq!(got.image.pixels, other.pixels);
}
