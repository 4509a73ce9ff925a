//! A fingerprint sensor unplugged in the middle of a capture, through libfprint's own
//! `virtual_image` device: its socket protocol has a removal command (a header of `-5, 0` makes
//! libfprint remove the device, as a USB unplug does). The capture must end with a retryable
//! `Disconnected` — no hang, no panic — a capture while the sensor is absent must say so at once,
//! and a capture after it is back must succeed.
//! Its own test binary: `FP_VIRTUAL_IMAGE` is read by libfprint when it enumerates.
#![cfg(feature = "libfprint")]
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use tasjil_drivers::fprint::{self, FprintScanner};
use tasjil_drivers::sim::SimScanner;
use tasjil_drivers::{CaptureError, FingerPosition, FingerprintScanner};

/// Connect to the virtual sensor and, once the capture waits, write `message`.
fn send(socket: &Path, message: Vec<u8>) -> std::thread::JoinHandle<()> {
    let socket = socket.to_path_buf();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match UnixStream::connect(&socket) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => panic!("virtual sensor socket: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        // The capture call must be waiting for a finger before the message arrives.
        std::thread::sleep(Duration::from_millis(300));
        stream.write_all(&message).unwrap();
        std::thread::sleep(Duration::from_millis(500));
    })
}

fn header(a: i32, b: i32) -> Vec<u8> {
    [a.to_le_bytes(), b.to_le_bytes()].concat()
}

#[test]
fn sensor_unplugged_mid_capture_is_retryable_and_works_again_when_back() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("fp-hotplug.sock");
    // Set before libfprint's first enumeration, in this test binary's only test.
    std::env::set_var("FP_VIRTUAL_IMAGE", &socket);
    let sensors = fprint::sensors().unwrap();
    if !sensors.iter().any(|s| s.driver == "virtual_image") {
        let why = format!("libfprint shows no virtual_image device (sensors: {sensors:?})");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true: {why}");
        }
        eprintln!(
            "\n{0}\n!! SKIPPED libfprint hot-plug test: {why}\n{0}\n",
            "!".repeat(78)
        );
        return;
    }
    let mut scanner = FprintScanner::open(Some("virtual_image")).unwrap();
    // Far longer than the test should take: a removal must end the capture, not this deadline.
    scanner.timeout = Duration::from_secs(60);

    // Unplugged while the capture waits for a finger.
    let unplug = send(&socket, header(-5, 0));
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
    let mut message = header(print.width as i32, print.height as i32);
    message.extend_from_slice(&print.pixels);
    let sender = send(&socket, message);
    let got = scanner.capture(FingerPosition::RightThumb).unwrap();
    sender.join().unwrap();
    assert_eq!(got.image.pixels, print.pixels);
    assert_eq!(got.position, FingerPosition::RightThumb);
}
