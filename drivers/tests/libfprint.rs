//! libfprint backend through libfprint's own `virtual_image` device: the test plays the sensor by
//! writing images into its socket (width and height as little-endian i32, then grey bytes).
//! One test function: `FP_VIRTUAL_IMAGE` must be set before libfprint starts, once per process.
#![cfg(feature = "libfprint")]
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use tasjil_drivers::fprint::{self, FprintScanner};
use tasjil_drivers::sim::SimScanner;
use tasjil_drivers::{CaptureError, FingerPosition, FingerprintScanner, GreyImage};

/// Play the sensor: connect to the driver's socket and put a finger (an image) on it.
fn send_image(socket: &Path, image: &GreyImage) -> std::thread::JoinHandle<()> {
    let (socket, image) = (socket.to_path_buf(), image.clone());
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match UnixStream::connect(&socket) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => panic!("virtual sensor socket: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        // Give the capture call time to start waiting for a finger.
        std::thread::sleep(Duration::from_millis(300));
        let mut msg = Vec::new();
        msg.extend_from_slice(&(image.width as i32).to_le_bytes());
        msg.extend_from_slice(&(image.height as i32).to_le_bytes());
        msg.extend_from_slice(&image.pixels);
        stream.write_all(&msg).unwrap();
        // Keep the connection until the driver has read it all.
        std::thread::sleep(Duration::from_millis(500));
    })
}

#[test]
fn captures_through_libfprints_virtual_image_sensor() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("fp-virtual-image.sock");
    // SAFETY of set_var: this is the only test in this binary, before libfprint starts.
    std::env::set_var("FP_VIRTUAL_IMAGE", &socket);

    let sensors = fprint::sensors().unwrap();
    if !sensors.iter().any(|s| s.driver == "virtual_image") {
        let why = format!("libfprint shows no virtual_image device (sensors: {sensors:?})");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true: {why}");
        }
        eprintln!(
            "\n{0}\n!! SKIPPED libfprint test: {why}\n{0}\n",
            "!".repeat(78)
        );
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
    let sender = send_image(&socket, &print);
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
    let sender = send_image(&socket, &other);
    let got = scanner.capture(FingerPosition::RightMiddle).unwrap();
    sender.join().unwrap();
    assert_eq!(got.image.pixels, other.pixels);
}
