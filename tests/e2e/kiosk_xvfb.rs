//! The real `tasjil kiosk --simulate` binary on a real X server (Xvfb): the window appears, the
//! login view is drawn (the framebuffer is not blank, an INFO line names the view), the badge is
//! inserted with a real pointer click through X (xdotool), and — driven further through the
//! kiosk's test-only control on stdin (`TASJIL_KIOSK_CONTROL=stdin`) — the camera's
//! cable pulled during the face capture shows the retry message, and once plugged back the
//! capture goes on to the fingers.
//!
//! Needs `Xvfb` and `xdotool` (scripts/install-deps). Without them the test says so loudly and
//! passes, unless `CI=true`, where it fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::common::*;

/// An Xvfb server on a display it picked itself (`-displayfd`), killed on drop.
struct Xvfb {
    child: Child,
    display: String,
    fbdir: tempfile::TempDir,
}

impl Xvfb {
    fn start() -> Result<Xvfb, String> {
        let fbdir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1024x600x24",
                "-nolisten",
                "tcp",
            ])
            .arg("-fbdir")
            .arg(fbdir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run Xvfb: {e}"))?;
        // Xvfb writes its display number once it accepts connections.
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("no Xvfb stdout")?;
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let n = line.trim();
        if n.is_empty() {
            let _ = child.kill();
            return Err("Xvfb exited without a display".into());
        }
        Ok(Xvfb {
            child,
            display: format!(":{n}"),
            fbdir,
        })
    }

    /// The screen as Xvfb's framebuffer file holds it (XWD): width, height and a pixel reader
    /// giving `[r, g, b]`.
    fn screen(&self) -> (usize, usize, impl Fn(usize, usize) -> [u8; 3]) {
        let bytes = std::fs::read(self.fbdir.path().join("Xvfb_screen0")).unwrap();
        let u32_at = |i: usize| u32::from_be_bytes(bytes[i * 4..i * 4 + 4].try_into().unwrap());
        let (header, bpp, line, w, h, ncolors) = (
            u32_at(0) as usize,
            u32_at(11) as usize,
            u32_at(12) as usize,
            u32_at(4) as usize,
            u32_at(5) as usize,
            u32_at(19) as usize,
        );
        assert_eq!(bpp, 32, "24-bit screens are stored 32 bits a pixel");
        // Xvfb keeps 32-bit pixels in the machine's order: blue, green, red, unused.
        let data = bytes[header + ncolors * 12..].to_vec();
        let pixel = move |x: usize, y: usize| {
            let p = &data[y * line + x * 4..y * line + x * 4 + 3];
            [p[2], p[1], p[0]]
        };
        (w, h, pixel)
    }

    /// Pixels that are not the most common colour, out of all.
    fn screen_ink(&self) -> (usize, usize) {
        let (w, h, pixel) = self.screen();
        let mut counts = std::collections::HashMap::new();
        for y in 0..h {
            for x in 0..w {
                *counts.entry(pixel(x, y)).or_insert(0usize) += 1;
            }
        }
        let top = counts.values().copied().max().unwrap_or(0);
        (w * h - top, w * h)
    }

    /// The centre of the area drawn in `colour` below `min_y` (screen pixels), if any.
    fn find_colour(&self, colour: [u8; 3], min_y: usize) -> Option<(usize, usize)> {
        let (w, h, pixel) = self.screen();
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        for y in min_y..h {
            for x in 0..w {
                if pixel(x, y) == colour {
                    (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
                }
            }
        }
        (x0 <= x1).then(|| ((x0 + x1) / 2, (y0 + y1) / 2))
    }

    /// A real pointer click at screen position `(x, y)` through the X server (XTEST).
    fn click(&self, (x, y): (usize, usize)) {
        let status = Command::new("xdotool")
            .args([
                "mousemove",
                "--sync",
                &x.to_string(),
                &y.to_string(),
                "click",
                "1",
            ])
            .env("DISPLAY", &self.display)
            .status()
            .unwrap();
        assert!(status.success(), "xdotool click at ({x}, {y}) failed");
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kiosk process, its stdin (the control) and its stderr lines; killed on drop.
struct Kiosk {
    child: Child,
    control: ChildStdin,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Kiosk {
    /// `tasjil kiosk --simulate` on `display`.
    fn start(station: &Path, display: &str) -> Kiosk {
        Kiosk::start_with(station, display, true, None)
    }

    /// The kiosk, simulated or with the devices of the station's configuration; `sensor`: the
    /// socket of libfprint's virtual sensor.
    fn start_with(station: &Path, display: &str, simulate: bool, sensor: Option<&Path>) -> Kiosk {
        let mut command = Command::new(BIN);
        command
            .args(["--data-dir", station.to_str().unwrap()])
            .arg("kiosk")
            .args(simulate.then_some("--simulate"))
            .args(["--exit-after", "300"]);
        match sensor {
            Some(socket) => command.env("FP_VIRTUAL_IMAGE", socket),
            None => command.env_remove("FP_VIRTUAL_IMAGE"),
        };
        let mut child = command
            .env("DISPLAY", display)
            .env("TASJIL_LOG", "info")
            .env("TASJIL_KIOSK_CONTROL", "stdin")
            .env("TASJIL_BADGE", "sim")
            .env_remove("TASJIL_DATA_DIR")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let control = child.stdin.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Kiosk {
            child,
            control,
            lines,
            seen: Vec::new(),
        }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.control, "{line}").unwrap();
        self.control.flush().unwrap();
    }

    /// Wait for a log line containing `what` (the kiosk reports every view and status).
    fn expect(&mut self, what: &str) -> String {
        self.expect_nudging(what, None)
    }

    /// The same, sending `nudge` again each second without the line (a tap that only works
    /// once the kiosk is ready for it, like Next after the automatic photo).
    fn expect_nudging(&mut self, what: &str, nudge: Option<&str>) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = if nudge.is_some() {
                left.min(Duration::from_secs(1))
            } else {
                left
            };
            match self.lines.recv_timeout(wait) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(what) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) if !left.is_zero() && nudge.is_some() => {
                    self.send(nudge.unwrap_or_default());
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait();
                    panic!(
                        "no log line with {what:?} (kiosk {status:?}); its log:\n{}",
                        self.seen.concat()
                    );
                }
            }
        }
    }
}

impl Drop for Kiosk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `xdotool search --sync --name`: the id of the kiosk's window once it is mapped.
fn find_window(display: &str, name: &str) -> String {
    let mut child = Command::new("xdotool")
        .args(["search", "--sync", "--onlyvisible", "--name", name])
        .env("DISPLAY", display)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    out.lines().next().unwrap_or_default().trim().to_string()
}

/// An X server for test `name`, or `None` after a loud banner when Xvfb or xdotool is missing
/// (with `CI=true` that fails the test instead).
fn x_server(name: &str) -> Option<Xvfb> {
    let missing: Vec<&str> = ["Xvfb", "xdotool"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    let started = if missing.is_empty() {
        Xvfb::start()
    } else {
        Err(format!(
            "{missing:?} not installed (scripts/install-deps installs them)"
        ))
    };
    match started {
        Ok(x) => Some(x),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("CI=true: {e}"),
        Err(e) => {
            eprintln!("\n!!!!!!!! SKIPPED {name}: {e}\n");
            None
        }
    }
}

#[test]
fn kiosk_under_xvfb_shows_the_login_view_and_survives_an_unplugged_camera() {
    let name = "kiosk_under_xvfb_shows_the_login_view_and_survives_an_unplugged_camera";
    let Some(xvfb) = x_server(name) else {
        return;
    };
    let setup = Setup::new();
    let mut kiosk = Kiosk::start(&setup.station, &xvfb.display);

    // The window exists and the login view is on screen.
    kiosk.expect("login view shown");
    let window = find_window(&xvfb.display, "Tasjil");
    assert!(
        window.chars().all(|c| c.is_ascii_digit()) && !window.is_empty(),
        "xdotool found no kiosk window: {window:?}"
    );
    // The frame reaches the server a moment after the event loop shows the window: wait until
    // the screen holds more than one colour (bounded by the test's own deadline, no assertion
    // on the time it takes).
    let deadline = Instant::now() + Duration::from_secs(60);
    let (ink, total) = loop {
        let (ink, total) = xvfb.screen_ink();
        if ink > total / 100 || Instant::now() > deadline {
            break (ink, total);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        ink > total / 100,
        "the screen is blank: {ink} of {total} pixels differ from the background"
    );

    // A real click through X on the login view's one primary button (below the top bar, whose
    // selected language is drawn in the same colour): "Insert simulated badge". Until it is
    // pressed the PIN pad is not there, so reaching home proves the click landed.
    const ACCENT: [u8; 3] = [0x0b, 0x6e, 0x4f];
    let button = xvfb
        .find_colour(ACCENT, 60)
        .expect("no primary button on the login view");
    xvfb.click(button);
    kiosk.send("pin 123456");
    kiosk.expect("home view shown");
    // Log in through the views, start an enrolment, fill the form, reach the face step.
    kiosk.send("camera unplug");
    kiosk.send("start");
    kiosk.expect("kind view shown");
    kiosk.send("kind new");
    kiosk.expect("form view shown");
    kiosk.send("form-sample 4");
    kiosk.expect("face view shown");
    // The camera is unplugged: the retry message (French by default), and the wizard stays.
    let lost = kiosk.expect("Caméra perdue");
    assert!(lost.contains("WARN"), "{lost}");
    kiosk.send("camera plug");
    kiosk.expect("Caméra retrouvée");
    // The photo is taken by itself once the preview is good; Next then leads to the fingers.
    kiosk.expect_nudging("fingers view shown", Some("face-next"));
}

/// The real kiosk without `--simulate`: the fingers come from libfprint's `virtual_image` sensor
/// named in `[devices]` (this test plays the finger, as in `devices.rs`), the camera and the
/// badges are the simulated ones chosen in the configuration.
#[test]
fn kiosk_with_configured_devices_takes_the_ten_fingers_from_the_libfprint_sensor() {
    use tasjil_drivers::{sim::SimScanner, FingerPosition, FingerprintScanner};
    let name = "kiosk_with_configured_devices_takes_the_ten_fingers_from_the_libfprint_sensor";
    let setup = Setup::new();
    std::fs::write(
        setup.station.join("config.toml"),
        format!("{}badge = \"sim\"\n", crate::devices::LIBFPRINT),
    )
    .unwrap();
    let socket = setup.tmp.path().join("fp.sock");
    if !crate::devices::virtual_sensor_at(&setup.station, &socket, name) {
        return;
    }
    let Some(xvfb) = x_server(name) else {
        return;
    };
    let mut kiosk = Kiosk::start_with(&setup.station, &xvfb.display, false, Some(&socket));
    kiosk.expect("login view shown");
    kiosk.send("badge");
    kiosk.send("pin 123456");
    kiosk.expect("home view shown");
    kiosk.send("start");
    kiosk.expect("kind view shown");
    kiosk.send("kind new");
    kiosk.expect("form view shown");
    kiosk.send("form-sample 6");
    kiosk.expect("face view shown");
    kiosk.expect_nudging("fingers view shown", Some("face-next"));

    // Each Capture waits on the sensor for the finger the kiosk names; the test places it.
    let mut scanner = SimScanner::new(78);
    let mut done = std::collections::BTreeSet::new();
    for _ in 0..40 {
        if done.len() == 10 {
            break;
        }
        kiosk.send("finger");
        let line = kiosk.expect("capturing ");
        let finger = line
            .split("capturing ")
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .unwrap_or_default()
            .to_string();
        let position = FingerPosition::ALL
            .into_iter()
            .find(|p| p.name() == finger)
            .unwrap_or_else(|| panic!("unknown finger in {line:?}"));
        crate::devices::place(&socket, &scanner.capture(position).unwrap().image);
        let result = kiosk.expect(&format!("finger {finger} "));
        if !result.contains("retry") {
            done.insert(finger);
        }
    }
    assert_eq!(done.len(), 10, "fingers taken: {done:?}");
    kiosk.send("fingers-next");
    kiosk.expect("signature view shown");
    assert!(
        kiosk
            .seen
            .concat()
            .contains("fingerprint sensor (virtual_image) opened"),
        "the sensor opened was libfprint's virtual one"
    );
}
