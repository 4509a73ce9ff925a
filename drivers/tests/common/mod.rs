//! Playing libfprint's `virtual_image` sensor in the drivers' integration tests: each test binary
//! points `FP_VIRTUAL_IMAGE` at a socket of its own, then writes fingers (images) or commands to it.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use tasjil_drivers::fprint;
use tasjil_drivers::GreyImage;

/// Point libfprint at `socket` and tell whether it offers the virtual sensor. Without it the
/// test says so loudly and should return; with `CI=true` that is a failure instead.
/// Call it first, in the binary's only test: the variable must be set before libfprint starts.
pub fn virtual_sensor(socket: &Path, test: &str) -> bool {
    std::env::set_var("FP_VIRTUAL_IMAGE", socket);
    let sensors = fprint::sensors().unwrap();
    if sensors.iter().any(|s| s.driver == "virtual_image") {
        return true;
    }
    let why = format!("libfprint shows no virtual_image device (sensors: {sensors:?})");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true: {why}");
    }
    eprintln!("\n{0}\n!! SKIPPED {test}: {why}\n{0}\n", "!".repeat(78));
    false
}

/// The driver's message header: two little-endian `i32` (an image's width and height, or a
/// command such as `-5, 0`: unplug).
pub fn header(a: i32, b: i32) -> Vec<u8> {
    [a.to_le_bytes(), b.to_le_bytes()].concat()
}

/// A finger for the sensor: the header and the pixels.
pub fn image_message(image: &GreyImage) -> Vec<u8> {
    let mut message = header(image.width as i32, image.height as i32);
    message.extend_from_slice(&image.pixels);
    message
}

/// Connect to the virtual sensor and, once the capture waits, write `message`.
pub fn send(socket: &Path, message: Vec<u8>) -> std::thread::JoinHandle<()> {
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
        // Keep the connection until the driver has read it all.
        std::thread::sleep(Duration::from_millis(500));
    })
}
