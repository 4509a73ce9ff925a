//! `tasjil enrol` without `--simulate`, through the configured devices: fingerprints through
//! libfprint's `virtual_image` sensor (this test plays the finger: it answers every "place the …"
//! instruction by writing a print into the sensor's socket), the face from the camera chosen in
//! `[devices]`, the signature from pen strokes in a file. A missing or wrong device stores nothing.
//! Also `tasjil officer add/list` and `tasjil devices`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tasjil_drivers::sim::{SimScanner, SimSignaturePad};
use tasjil_drivers::{FingerPosition, FingerprintScanner, SignaturePad};

use crate::common::*;

/// A station configured for a libfprint sensor and the simulated camera, with the citizen's
/// demographics and signature files.
struct Live {
    s: Setup,
    socket: PathBuf,
    demographics: PathBuf,
    signature: PathBuf,
}

impl Live {
    fn new(config: &str) -> Live {
        let s = Setup::new();
        std::fs::write(s.station.join("config.toml"), config).unwrap();
        let demographics = s.tmp.path().join("citizen.json");
        let data = tasjil::schema::simulated_demographics(5, "new");
        std::fs::write(&demographics, Value::Object(data).to_string()).unwrap();
        let signature = s.tmp.path().join("signature.json");
        let pad = SimSignaturePad::new(5).capture().unwrap();
        std::fs::write(
            &signature,
            json!({"width": pad.width, "height": pad.height, "strokes": pad.strokes}).to_string(),
        )
        .unwrap();
        let socket = s.tmp.path().join("fp.sock");
        Live {
            s,
            socket,
            demographics,
            signature,
        }
    }

    fn command(&self, sensor: bool) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--data-dir")
            .arg(&self.s.station)
            .args(["enrol", "--pin-stdin", "--json", "--demographics"])
            .arg(&self.demographics)
            .arg("--signature")
            .arg(&self.signature)
            .env_remove("TASJIL_DATA_DIR")
            .env("TASJIL_BADGE", "sim")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if sensor {
            c.env("FP_VIRTUAL_IMAGE", &self.socket);
        } else {
            c.env_remove("FP_VIRTUAL_IMAGE");
        }
        c
    }

    /// Run the enrolment; while `sensor`, put a simulated print on the virtual sensor each time
    /// the station asks for a finger. Returns the output and how many prints were placed.
    fn enrol(&self, sensor: bool) -> (Output, usize) {
        let mut child = self.command(sensor).spawn().unwrap();
        writeln!(child.stdin.take().unwrap(), "123456").unwrap();
        let stderr = child.stderr.take().unwrap();
        let socket = self.socket.clone();
        let finger = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut scanner = SimScanner::new(77);
            let mut placed = 0;
            for line in BufReader::new(stderr).lines() {
                let line = line.unwrap();
                if let Some(rest) = line.strip_prefix("place the ") {
                    let name = rest.trim_end_matches(" on the fingerprint sensor");
                    let position = FingerPosition::ALL
                        .into_iter()
                        .find(|p| p.name().replace('_', " ") == name)
                        .unwrap_or_else(|| panic!("unknown finger in {line:?}"));
                    place(&socket, &scanner.capture(position).unwrap().image);
                    placed += 1;
                }
                lines.push(line);
            }
            (lines.join("\n"), placed)
        });
        let mut out = child.wait_with_output().unwrap();
        let (stderr, placed) = finger.join().unwrap();
        out.stderr = stderr.into_bytes();
        (out, placed)
    }
}

/// Put a finger (an image) on libfprint's virtual sensor.
pub(crate) fn place(socket: &Path, image: &tasjil_drivers::GreyImage) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match UnixStream::connect(socket) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => panic!("virtual sensor socket: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    // The instruction is printed just before the capture starts waiting for a finger.
    std::thread::sleep(Duration::from_millis(300));
    let mut msg = Vec::new();
    msg.extend_from_slice(&(image.width as i32).to_le_bytes());
    msg.extend_from_slice(&(image.height as i32).to_le_bytes());
    msg.extend_from_slice(&image.pixels);
    stream.write_all(&msg).unwrap();
}

/// Whether libfprint here offers the virtual sensor (as `tasjil devices` sees it); with CI=true
/// its absence fails the test instead of skipping it.
fn virtual_sensor(live: &Live, test: &str) -> bool {
    virtual_sensor_at(&live.s.station, &live.socket, test)
}

/// [`virtual_sensor`] for any station and socket.
pub(crate) fn virtual_sensor_at(station: &Path, socket: &Path, test: &str) -> bool {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(station)
        .args(["devices", "--json"])
        .env("FP_VIRTUAL_IMAGE", socket)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let found = v["devices"].as_array().is_some_and(|d| {
        d.iter().any(|d| {
            d["kind"] == "fingerprint"
                && d["simulated"] == false
                && d["name"]
                    .as_str()
                    .is_some_and(|n| n.contains("virtual_image"))
        })
    });
    if !found {
        let why = format!("libfprint shows no virtual_image sensor: {}", text(&out));
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true: {why}");
        }
        eprintln!("\n{0}\n!! SKIPPED {test}: {why}\n{0}\n", "!".repeat(78));
    }
    found
}

pub(crate) const LIBFPRINT: &str =
    "[devices]\ncamera = \"sim\"\nfingerprint = \"libfprint\"\nfingerprint_driver = \"virtual_image\"\n";

#[test]
fn enrol_without_simulate_captures_fingers_through_libfprint_and_verifies() {
    let live = Live::new(LIBFPRINT);
    if !virtual_sensor(
        &live,
        "enrol_without_simulate_captures_fingers_through_libfprint",
    ) {
        return;
    }
    let (out, placed) = live.enrol(true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["committed"], 1, "{v}");
    assert!(placed >= 10, "{placed} prints placed: {}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("libfprint virtual_image"), "{stderr}");

    let (code, report) = live.s.json(&["verify"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["valid"], 1);
    let (_, list) = live.s.json(&["list"]);
    assert_eq!(list["records"][0]["officer"], "OFF-SIM-1", "{list}");
}

#[test]
fn enrol_without_simulate_and_without_the_device_stores_nothing() {
    let live = Live::new(LIBFPRINT);
    // No sensor at all: libfprint lists nothing.
    let (out, placed) = live.enrol(false);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(placed, 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no fingerprint scanner") && stderr.contains("virtual_image"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--simulate"),
        "says how to choose: {stderr}"
    );

    // The wrong sensor named in the configuration.
    std::fs::write(
        live.s.station.join("config.toml"),
        LIBFPRINT.replace("virtual_image", "no_such_sensor"),
    )
    .unwrap();
    let (out, _) = live.enrol(true);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no_such_sensor"),
        "{}",
        text(&out)
    );

    // A camera path that is not there.
    std::fs::write(
        live.s.station.join("config.toml"),
        "[devices]\ncamera = \"v4l2\"\ncamera_device = \"/dev/video-tasjil-none\"\nfingerprint = \"sim\"\n",
    )
    .unwrap();
    let (out, _) = live.enrol(true);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/dev/video-tasjil-none"),
        "{}",
        text(&out)
    );

    // Nothing was stored by any of them.
    let (_, status) = live.s.json(&["status"]);
    assert_eq!(status["records"], 0, "{status}");
    let (code, report) = live.s.json(&["verify"]);
    assert_eq!(code, 0, "{report}");
}

#[test]
fn enrol_without_simulate_needs_the_citizen_and_the_signature() {
    let s = Setup::new();
    let out = s.tasjil(&["enrol", "--pin-stdin"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--demographics"),
        "{}",
        text(&out)
    );
    let out = s.tasjil(&["enrol", "--count", "3", "--pin-stdin"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("one citizen at a time"),
        "{}",
        text(&out)
    );
    assert_eq!(s.json(&["status"]).1["records"], 0);
}

#[test]
fn officer_add_registers_the_badge_key_and_lists_it() {
    let s = Setup::new();
    let (code, added) = s.json(&[
        "officer",
        "add",
        "--role",
        "supervisor",
        "--id",
        "SUP-0007",
        "--badge",
        "sim",
    ]);
    assert_eq!(code, 0, "{added}");
    assert_eq!(added["new"], true);
    assert_eq!(added["role"], "supervisor");
    let key = added["public_key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 64);

    // Again: nothing changes, and it says so.
    let (code, again) = s.json(&["officer", "add", "--id", "SUP-0007", "--badge", "sim"]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["new"], false);
    assert_eq!(again["role"], "supervisor");

    let (code, list) = s.json(&["officer", "list"]);
    assert_eq!(code, 0);
    let officers = list["officers"].as_array().unwrap();
    assert_eq!(officers.len(), 1, "{list}");
    assert_eq!(officers[0]["id"], "SUP-0007");
    assert_eq!(officers[0]["public_key"], key.as_str());

    // The simulated badge needs an id; the registration is in the signed audit chain.
    let out = s.tasjil(&["officer", "add", "--badge", "sim"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let (code, report) = s.json(&["verify"]);
    assert_eq!(code, 0, "{report}");
}

#[test]
fn devices_reports_each_role_under_the_configuration() {
    let s = Setup::new();
    std::fs::write(
        s.station.join("config.toml"),
        "[devices]\ncamera = \"sim\"\nfingerprint = \"libfprint\"\nfingerprint_driver = \"no_such_sensor\"\n",
    )
    .unwrap();
    let (code, v) = s.json(&["devices"]);
    assert_eq!(code, 0, "{v}");
    let role = |name: &str| {
        v["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["role"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no role {name}: {v}"))
    };
    assert_eq!(role("camera")["simulated"], true);
    assert_eq!(role("camera")["ready"], true);
    let fingerprint = role("fingerprint");
    assert_eq!(fingerprint["ready"], false, "{fingerprint}");
    assert!(
        fingerprint["problem"]
            .as_str()
            .unwrap()
            .contains("no fingerprint sensor"),
        "{fingerprint}"
    );
    assert_eq!(role("card")["simulated"], true, "TASJIL_BADGE=sim wins");
    // The citizen's previous card: a reader named in the configuration that is not attached.
    std::fs::write(
        s.station.join("config.toml"),
        "[devices]\nid_card = \"pcsc\"\nid_card_reader = \"No Such Reader 00 00\"\n",
    )
    .unwrap();
    let (code, v) = s.json(&["devices"]);
    assert_eq!(code, 0, "{v}");
    let id_card = v["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "id_card")
        .cloned()
        .unwrap_or_else(|| panic!("no role id_card: {v}"));
    assert_eq!(id_card["ready"], false, "{id_card}");
    assert!(
        id_card["problem"]
            .as_str()
            .unwrap()
            .contains("\"No Such Reader 00 00\" (id_card_reader) is not attached"),
        "{id_card}"
    );
}
