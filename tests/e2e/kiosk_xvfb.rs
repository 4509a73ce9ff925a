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

/// A rectangle of the screen, in screen pixels: x, y, width, height.
type Area = (usize, usize, usize, usize);

impl Xvfb {
    /// The pixels of `area` as the X server holds them now.
    fn crop(&self, (x0, y0, w, h): Area) -> Vec<[u8; 3]> {
        let (sw, sh, pixel) = self.screen();
        let mut out = Vec::with_capacity(w * h);
        for y in y0..(y0 + h).min(sh) {
            for x in x0..(x0 + w).min(sw) {
                out.push(pixel(x, y));
            }
        }
        out
    }

    /// `area` once it has held still for 150 ms (a frame being presented is not read half
    /// way), within `limit`; `None` if it kept changing.
    fn settled(&self, area: Area, limit: Duration) -> Option<Vec<[u8; 3]>> {
        let deadline = Instant::now() + limit;
        let mut last = self.crop(area);
        let mut since = Instant::now();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(30));
            let now = self.crop(area);
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= Duration::from_millis(150) {
                return Some(last);
            }
        }
        None
    }

    /// Wait until `area` differs from `before` and holds still; the new pixels, or `None`
    /// when the screen never changed within `limit` (a missed redraw).
    fn changed(&self, area: Area, before: &[[u8; 3]], limit: Duration) -> Option<Vec<[u8; 3]>> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.settled(area, left) {
                Some(now) if now != before => return Some(now),
                _ => std::thread::sleep(Duration::from_millis(30)),
            }
        }
        None
    }

    /// How long until `area` first differs from `before` (polled every 5 ms), for the figures
    /// the test prints; `None` within `limit`.
    fn first_change(&self, area: Area, before: &[[u8; 3]], limit: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if self.crop(area) != before {
                return Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    /// `xdotool` on this display; panics when it fails.
    fn xdotool(&self, args: &[&str]) -> String {
        let out = Command::new("xdotool")
            .args(args)
            .env("DISPLAY", &self.display)
            .output()
            .unwrap();
        assert!(out.status.success(), "xdotool {args:?} failed: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The window's place and size on the screen.
    fn geometry(&self, window: &str) -> Area {
        let shell = self.xdotool(&["getwindowgeometry", "--shell", window]);
        let field = |name: &str| -> usize {
            shell
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {shell:?}"))
        };
        (field("X"), field("Y"), field("WIDTH"), field("HEIGHT"))
    }

    /// Make the kiosk draw its whole window again from its state (a resize drops the
    /// renderer's buffer: nothing of the last frame is reused), and return `area` once drawn.
    /// What the screen showed before must be what this shows: otherwise the screen lied.
    fn full_repaint(&self, window: &str, area: Area) -> Vec<[u8; 3]> {
        const LIMIT: Duration = Duration::from_secs(30);
        let (x, y, w, h) = self.geometry(window);
        // 8 px taller, the status line moves down: its last 38 px on screen witness each frame.
        let witness: Area = (x, y + h - 38, w, 38);
        let w = w.to_string();
        let shown = self
            .settled(witness, LIMIT)
            .expect("the window never settled");
        self.xdotool(&["windowsize", "--sync", window, &w, &(h + 8).to_string()]);
        let taller = self
            .changed(witness, &shown, LIMIT)
            .expect("no frame drawn at the taller size");
        self.xdotool(&["windowsize", "--sync", window, &w, &h.to_string()]);
        self.changed(witness, &taller, LIMIT)
            .expect("no frame drawn back at the kiosk's size");
        self.settled(area, LIMIT)
            .expect("the window did not settle after a full repaint")
    }

    /// With `TASJIL_XVFB_SCREENS=DIR`, keep the screen as `DIR/<name>.png` (to look at what
    /// the test saw).
    fn shot(&self, name: &str) {
        if let Some(dir) = std::env::var_os("TASJIL_XVFB_SCREENS") {
            let path = self.save(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::rename(&path, Path::new(&dir).join(format!("{name}.png"))).unwrap();
        }
    }

    /// Keep the screen as a PNG in the temporary directory (to look at a failure); its path.
    fn save(&self, name: &str) -> std::path::PathBuf {
        let (w, h, pixel) = self.screen();
        let mut img = image::RgbImage::new(w as u32, h as u32);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb(pixel(x as usize, y as usize));
        }
        let path = std::env::temp_dir().join(format!("{name}.png"));
        img.save(&path).unwrap();
        path
    }

    /// `find_run`, waiting up to 30 s for what a view just shown draws.
    fn wait_run(&self, colour: [u8; 3], min_y: usize, min_len: usize) -> Option<(usize, usize)> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(at) = self.find_run(colour, min_y, min_len) {
                return Some(at);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The centres of the buttons of plain `colour` between 60 and 90 px wide below `min_y`
    /// (the PIN pad's keys), in reading order. Columns come from horizontal runs of that width;
    /// keys from vertical runs just inside a column's left edge, where no label is drawn.
    fn keys(&self, colour: [u8; 3], min_y: usize) -> Vec<(usize, usize)> {
        let (w, h, pixel) = self.screen();
        // Runs of a key's width on many lines (a label splits its own lines in shorter runs).
        let mut columns = std::collections::BTreeMap::new();
        for y in min_y..h {
            let mut x = 0;
            while x < w {
                let x0 = x;
                while x < w && pixel(x, y) == colour {
                    x += 1;
                }
                if (60..=90).contains(&(x - x0)) {
                    *columns.entry((x0, x)).or_insert(0usize) += 1;
                }
                x += 1;
            }
        }
        let mut keys: Vec<(usize, usize)> = Vec::new();
        for (&(x0, x1), _) in columns.iter().filter(|(_, &lines)| lines >= 20) {
            let mut y = min_y;
            while y < h {
                let y0 = y;
                while y < h && pixel(x0 + 4, y) == colour {
                    y += 1;
                }
                let at = ((x0 + x1) / 2, (y0 + y) / 2);
                let known = keys
                    .iter()
                    .any(|k| k.0.abs_diff(at.0) < 30 && k.1.abs_diff(at.1) < 30);
                if y - y0 >= 30 && !known {
                    keys.push(at);
                }
                y += 1;
            }
        }
        keys.sort_by_key(|&(x, y)| (y, x));
        keys
    }

    /// The centre of the widest run of `colour` (at least `min_len` pixels in a row) below
    /// `min_y`: a large plain area such as the signature pad, not the letters of a label.
    fn find_run(&self, colour: [u8; 3], min_y: usize, min_len: usize) -> Option<(usize, usize)> {
        let (w, h, pixel) = self.screen();
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        for y in min_y..h {
            let mut run = 0;
            for x in 0..w {
                run = if pixel(x, y) == colour { run + 1 } else { 0 };
                if run >= min_len {
                    (x0, y0, x1, y1) = (x0.min(x + 1 - min_len), y0.min(y), x1.max(x), y1.max(y));
                }
            }
        }
        (x0 <= x1).then(|| ((x0 + x1) / 2, (y0 + y1) / 2))
    }

    /// A pen stroke through the X server: press at the first point, move through the others
    /// `step_ms` apart, release at the last.
    fn drag(&self, points: &[(usize, usize)], step_ms: u64) {
        let (x, y) = points[0];
        self.xdotool(&[
            "mousemove",
            "--sync",
            &x.to_string(),
            &y.to_string(),
            "mousedown",
            "1",
        ]);
        for &(x, y) in &points[1..] {
            std::thread::sleep(Duration::from_millis(step_ms));
            self.xdotool(&["mousemove", &x.to_string(), &y.to_string()]);
        }
        self.xdotool(&["mouseup", "1"]);
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

impl Kiosk {
    /// The fingers view's Capture until ten prints are taken (a retry asked for by the quality
    /// check does not count), at most 40 presses; how many were taken.
    fn take_ten_fingers(&mut self) -> usize {
        let mut taken = 0;
        for _ in 0..40 {
            if taken == 10 {
                break;
            }
            self.send("finger");
            if !self.expect(", quality ").contains(" retry,") {
                taken += 1;
            }
        }
        taken
    }
}

/// A real signature across the pad centred at `pad`: 40 points of a wave, for `Xvfb::drag`.
fn signature_stroke(pad: (usize, usize)) -> Vec<(usize, usize)> {
    (0..40)
        .map(|i| {
            let t = f64::from(i) / 39.0;
            let x = pad.0 as f64 - 220.0 + 440.0 * t;
            let y = pad.1 as f64 + 40.0 * (t * 12.0).sin();
            (x as usize, y as usize)
        })
        .collect()
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

/// After each change of state the window shows the new state at once, read from the X
/// server's pixels: the camera unplugged at the face step, a too-short signature drawn with
/// real pointer events (then the same refusal again), a wrong PIN at the confirmation, the
/// receipt, and logging out (the top bar no longer names the officer). Each time the pixels changed from before and are exactly what a full
/// repaint of the window draws: nothing stale was left on the screen.
/// A `sync --watch` running beside the kiosk (`tasjil-sync.service` in a van): its stdout
/// lines (one JSON summary per round) and stderr lines, killed on drop.
struct Watch {
    child: Child,
    out: Receiver<String>,
    err: Receiver<String>,
}

impl Watch {
    fn start(station: &Path, url: &str) -> Watch {
        let mut child = Command::new(BIN)
            .args(["--data-dir", station.to_str().unwrap()])
            .args([
                "--json",
                "sync",
                "--watch",
                "--central",
                url,
                "--interval",
                "1",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = |r: Box<dyn Read + Send>| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let out = lines(Box::new(child.stdout.take().unwrap()));
        let err = lines(Box::new(child.stderr.take().unwrap()));
        Watch { child, out, err }
    }

    /// The next round's summary in which `sent` records went to the centre (rounds with
    /// nothing to send are skipped), within 60 s.
    fn sent(&self, sent: u64) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(line) => {
                    let v: serde_json::Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("not a JSON summary: {e}: {line}"));
                    if v["sent"].as_u64() == Some(sent) {
                        return v;
                    }
                    assert_eq!(v["sent"], 0, "a round sent something else: {v}");
                }
                Err(e) => panic!(
                    "no round of sync --watch sent {sent} records ({e:?}); its stderr: {:?}",
                    self.err.try_iter().collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Wait for a stderr line containing `what`.
    fn says(&self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(line) => seen.push(line),
                Err(e) => panic!("sync --watch never said {what:?} ({e:?}); it said {seen:?}"),
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sync_watch_delivers_between_citizens_while_the_kiosk_runs() {
    let name = "sync_watch_delivers_between_citizens_while_the_kiosk_runs";
    let Some(xvfb) = x_server(name) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let serve = crate::centre_load::Serve::start(&central);
    let url = format!("http://{}", serve.addr);
    let station = station_for(&central, &tmp.path().join("van"), "VAN-KS");
    enrol_in(&station, 2, 41);

    // The kiosk is up at its login view: nobody logged in, so the station is free and the
    // background sync delivers what the van holds.
    let mut kiosk = Kiosk::start(&station, &xvfb.display);
    kiosk.expect("login view shown");
    let watch = Watch::start(&station, &url);
    let first = watch.sent(2);
    assert_eq!(first["rejected"], serde_json::json!([]), "{first}");

    // An officer logs in: the kiosk holds the station, the sync waits and says why.
    kiosk.send("badge");
    kiosk.send("pin 123456");
    kiosk.expect("home view shown");
    watch.says("the station is in use");
    kiosk.send("start");
    kiosk.expect("kind view shown");
    kiosk.send("kind new");
    kiosk.expect("form view shown");
    kiosk.send("form-sample 5");
    kiosk.expect_nudging("fingers view shown", Some("face-next"));
    kiosk.take_ten_fingers();
    kiosk.send("fingers-next");
    kiosk.expect("signature view shown");
    let window = find_window(&xvfb.display, "Tasjil");
    let (_, wy, _, _) = xvfb.geometry(&window);
    let pad = xvfb
        .wait_run([0xff, 0xff, 0xff], wy + 60, 200)
        .expect("no signature pad on the screen");
    let stroke = signature_stroke(pad);
    xvfb.drag(&stroke, 25);
    kiosk.send("sign-accept");
    kiosk.expect("review view shown");
    kiosk.send("review-confirm");
    kiosk.expect("confirm view shown");
    kiosk.send("confirm-pin 123456");
    kiosk.expect("receipt view shown");
    // Still logged in: nothing of the new citizen has gone yet.
    let (_, list) = central.json(&["list"]);
    let at_centre = |list: &serde_json::Value| {
        list.as_array()
            .or_else(|| list["records"].as_array())
            .map_or(0, |r| r.iter().filter(|r| r["station"] == "VAN-KS").count())
    };
    assert_eq!(at_centre(&list), 2, "{list}");

    // The officer takes the badge out: the next round delivers the citizen.
    kiosk.send("remove-badge");
    kiosk.expect("login view shown");
    let second = watch.sent(1);
    assert_eq!(second["rejected"], serde_json::json!([]), "{second}");
    let (_, list) = central.json(&["list"]);
    assert_eq!(at_centre(&list), 3, "{list}");
    let (code, v) = central.json(&["verify"]);
    assert_eq!(code, 0, "centre verify: {v}");

    // The next officer logs in while the sync may be in a round: the kiosk waits for it and
    // lets the officer in (at most 20 s), and the station verifies clean afterwards.
    kiosk.send("badge");
    kiosk.send("pin 123456");
    kiosk.expect("home view shown");
    drop(watch);
    drop(kiosk);
    let (code, v) = json_of(&station, &["verify"]);
    assert_eq!(code, 0, "station verify: {v}");
    drop(serve);
}

#[test]
fn kiosk_under_xvfb_repaints_each_refusal_and_the_logout_at_once() {
    let name = "kiosk_under_xvfb_repaints_each_refusal_and_the_logout_at_once";
    let Some(xvfb) = x_server(name) else {
        return;
    };
    let setup = Setup::new();
    let mut kiosk = Kiosk::start(&setup.station, &xvfb.display);
    kiosk.expect("login view shown");
    let window = find_window(&xvfb.display, "Tasjil");
    let (wx, wy, ww, wh) = xvfb.geometry(&window);
    // The status line is the window's last 30 px; the officer's name is on the top bar's
    // reading-side start (French: left), before the language buttons.
    let status: Area = (wx, wy + wh - 30, ww, 30);
    let top_bar: Area = (wx, wy, 300, 52);
    // The view between the top bar and the status line.
    let view: Area = (wx, wy + 52, ww, wh - 52 - 30);
    const SETTLE: Duration = Duration::from_secs(30);

    kiosk.send("badge");
    kiosk.send("pin 123456");
    kiosk.expect("home view shown");
    kiosk.send("start");
    kiosk.expect("kind view shown");
    kiosk.send("kind new");
    kiosk.expect("form view shown");
    // The form sent empty, then in Arabic with two fields missing: the fields in red, their
    // count and the status line are what a full repaint draws (the count once stayed at the
    // first refusal's).
    kiosk.send("form-next");
    kiosk.expect("form refused");
    assert_eq!(
        xvfb.settled(view, SETTLE).unwrap(),
        xvfb.full_repaint(&window, view),
        "the form's errors"
    );
    kiosk.send("lang ar");
    kiosk.send("form-fill 9 birth_date commune");
    kiosk.send("form-next");
    let refused = kiosk.expect("form refused");
    assert_eq!(refused.matches("is required").count(), 2, "{refused}");
    let arabic_form = xvfb.settled(view, SETTLE).unwrap();
    assert_eq!(
        arabic_form,
        xvfb.full_repaint(&window, view),
        "the Arabic form with two errors"
    );
    xvfb.shot("xvfb-form-ar-two-errors");
    kiosk.send("lang fr");

    // The camera's cable pulled before the face step: the status line says so at once.
    let before = xvfb.settled(status, SETTLE).unwrap();
    kiosk.send("camera unplug");
    kiosk.send("form-sample 9");
    kiosk.expect("face view shown");
    kiosk.expect("Caméra perdue");
    let seen = xvfb.first_change(status, &before, SETTLE);
    let lost = xvfb
        .changed(status, &before, SETTLE)
        .expect("missed redraw: the status line did not change with the camera lost");
    eprintln!("camera lost on screen: first pixels changed {seen:?} after its log line");
    assert_eq!(lost, xvfb.full_repaint(&window, status));
    xvfb.shot("xvfb-face-camera-lost");
    let face_view = xvfb.settled(view, SETTLE).unwrap();
    assert_eq!(face_view, xvfb.full_repaint(&window, view));
    kiosk.send("camera plug");
    kiosk.expect_nudging("fingers view shown", Some("face-next"));
    assert_eq!(kiosk.take_ten_fingers(), 10);
    kiosk.send("fingers-next");
    kiosk.expect("signature view shown");

    // The pad: the large white area below the top bar (whose own white is above y = 52).
    const WHITE: [u8; 3] = [0xff, 0xff, 0xff];
    let Some(pad) = xvfb.wait_run(WHITE, wy + 60, 200) else {
        panic!(
            "no signature pad on the screen after 30 s: {}",
            xvfb.save("kiosk-no-pad").display()
        );
    };
    let before = xvfb
        .settled(status, SETTLE)
        .expect("the status line never settled");

    // A flick with the real pointer, then Next (the view's one primary button).
    xvfb.drag(&[(pad.0, pad.1), (pad.0 + 6, pad.1 + 2)], 20);
    const ACCENT: [u8; 3] = [0x0b, 0x6e, 0x4f];
    let next = xvfb
        .find_colour(ACCENT, wy + 60)
        .expect("no Next button on the signature view");
    xvfb.click(next);
    kiosk.expect("La signature est trop courte");
    let seen = xvfb.first_change(status, &before, SETTLE);
    let refused = xvfb
        .changed(status, &before, SETTLE)
        .expect("missed redraw: the status line did not change after the short signature");
    eprintln!("short signature on screen: first pixels changed {seen:?} after its log line");
    assert_eq!(
        refused,
        xvfb.full_repaint(&window, status),
        "the status line after the short signature is not what the window holds"
    );
    xvfb.shot("xvfb-signature-short");

    // The same refusal a second time: the status line reads the same; the message under the
    // pad, cleared by the new stroke, is back; the screen is what a full repaint draws.
    xvfb.drag(&[(pad.0, pad.1 + 20), (pad.0 + 6, pad.1 + 22)], 20);
    xvfb.click(next);
    kiosk.expect("La signature est trop courte");
    let again = xvfb.settled(view, SETTLE).unwrap();
    assert_eq!(again, xvfb.full_repaint(&window, view));
    assert_eq!(
        xvfb.settled(status, SETTLE).unwrap(),
        refused,
        "the same refusal reads the same"
    );

    // A real signature: many points over about a second, with the real pointer.
    let stroke = signature_stroke(pad);
    xvfb.drag(&stroke, 25);
    xvfb.click(next);
    kiosk.expect("review view shown");

    // The confirmation: a wrong PIN.
    kiosk.send("review-confirm");
    kiosk.expect("confirm view shown");
    let before = xvfb.settled(status, SETTLE).unwrap();
    // The PIN typed with real clicks on the pad's keys: 1 2 3 / 4 5 6 / 7 8 9 / « 0.
    const KEY: [u8; 3] = [0xee, 0xf1, 0xf4];
    let keys = xvfb.keys(KEY, wy + 60);
    // The pad's eleven first, in reading order (Cancel is below them).
    let grid_ok = keys.len() >= 11
        && (0..4).all(|row| {
            let n = if row == 3 { 2 } else { 3 };
            keys[row * 3..row * 3 + n]
                .iter()
                .all(|k| k.1 == keys[row * 3].1)
        });
    assert!(
        grid_ok,
        "no PIN pad found: {keys:?} ({})",
        xvfb.save("kiosk-pin-pad").display()
    );
    // Six different keys: `mousemove --sync` waits for a move, which a repeat would not make.
    for digit in "987654".chars() {
        let n = digit.to_digit(10).unwrap() as usize;
        xvfb.click(keys[if n == 0 { 10 } else { n - 1 }]);
    }
    kiosk.expect("Code PIN erroné");
    let seen = xvfb.first_change(status, &before, SETTLE);
    let wrong = xvfb
        .changed(status, &before, SETTLE)
        .expect("missed redraw: the status line did not change after the wrong PIN");
    eprintln!("wrong PIN on screen: first pixels changed {seen:?} after its log line");
    assert_eq!(
        wrong,
        xvfb.full_repaint(&window, status),
        "the status line after the wrong PIN is not what the window holds"
    );
    let confirm_view = xvfb.settled(view, SETTLE).unwrap();
    assert_eq!(confirm_view, xvfb.full_repaint(&window, view));
    xvfb.shot("xvfb-confirm-wrong-pin");

    // The right PIN: the receipt, and the status line says the record is saved.
    kiosk.send("confirm-pin 123456");
    kiosk.expect("receipt view shown");
    let saved = xvfb
        .changed(status, &wrong, SETTLE)
        .expect("missed redraw: the status line still reads the wrong PIN on the receipt");
    assert_eq!(saved, xvfb.full_repaint(&window, status));
    let receipt_view = xvfb.settled(view, SETTLE).unwrap();
    assert_eq!(receipt_view, xvfb.full_repaint(&window, view));

    // Logging out: the top bar stops naming the officer.
    let named = xvfb.settled(top_bar, SETTLE).unwrap();
    kiosk.send("remove-badge");
    kiosk.expect("login view shown");
    let seen = xvfb.first_change(top_bar, &named, SETTLE);
    let nameless = xvfb
        .changed(top_bar, &named, SETTLE)
        .expect("missed redraw: the top bar still names the officer after logout");
    eprintln!("logout on the top bar: first pixels changed {seen:?} after its log line");
    assert_eq!(
        nameless,
        xvfb.full_repaint(&window, top_bar),
        "the top bar after logout is not what the window holds"
    );
    xvfb.shot("xvfb-logged-out");
    let status_now = xvfb.settled(status, SETTLE).unwrap();
    assert_eq!(status_now, xvfb.full_repaint(&window, status));
}

/// Issue 20, no work lost: the last 30 s before the idle logout are counted down on the real
/// window (read from Xvfb's pixels, one second after another), a real click keeps the session,
/// and after the logout the same officer takes the same citizen up again at the fingers.
#[test]
fn kiosk_under_xvfb_counts_down_before_the_idle_logout_and_resumes_the_citizen() {
    let name = "kiosk_under_xvfb_counts_down_before_the_idle_logout_and_resumes_the_citizen";
    let Some(xvfb) = x_server(name) else {
        return;
    };
    let setup = Setup::new();
    let mut kiosk = Kiosk::start(&setup.station, &xvfb.display);
    kiosk.expect("login view shown");
    let window = find_window(&xvfb.display, "Tasjil");
    let (wx, wy, ww, wh) = xvfb.geometry(&window);
    // The warning's panel, 620×220 in the middle of the window.
    let panel: Area = (wx + (ww - 620) / 2, wy + (wh - 220) / 2, 620, 220);
    const SETTLE: Duration = Duration::from_secs(30);

    kiosk.send("badge");
    kiosk.send("pin 123456");
    kiosk.expect("home view shown");
    kiosk.send("start");
    kiosk.expect("kind view shown");
    kiosk.send("kind new");
    kiosk.expect("form view shown");
    kiosk.send("form-sample 9");
    kiosk.expect("face view shown");
    kiosk.expect_nudging("fingers view shown", Some("face-next"));
    kiosk.send("finger");
    kiosk.expect(", quality ");
    let quiet = xvfb.settled(panel, SETTLE).unwrap();

    // The last touch 280 s ago: 20 s left, counted down.
    kiosk.send("idle-since 280000");
    kiosk.expect("idle: logout in");
    let first = xvfb
        .changed(panel, &quiet, SETTLE)
        .expect("missed redraw: no idle warning on screen");
    xvfb.shot("xvfb-idle-countdown");
    let next = xvfb
        .changed(panel, &first, Duration::from_secs(5))
        .expect("the idle warning does not count down");
    assert_ne!(first, next);
    // A real click anywhere keeps the session: the warning goes, the fingers view is back.
    xvfb.click((wx + 40, wy + wh / 2));
    let back = xvfb
        .changed(panel, &next, SETTLE)
        .expect("the idle warning stays after a touch");
    assert_eq!(back, quiet, "the fingers view as it was before the warning");

    // Untouched to the end: logged out; the same officer's PIN; the citizen is offered and
    // taken up again at the fingers.
    kiosk.send("idle-since 299500");
    kiosk.expect("login view shown");
    kiosk.send("pin 123456");
    kiosk.expect("home view shown");
    kiosk.expect("a kept enrolment is offered (resume or discard");
    kiosk.send("resume");
    kiosk.expect("enrolment resumed from its draft at Fingers");
    kiosk.expect("fingers view shown");
}

/// The supervisor's review in the real window: the records listed, one opened (its row marked,
/// its facts beside the list), rejected with a reason from the list and the badge PIN; each
/// step is on the screen at once (what the screen shows is what a full repaint draws), the
/// rejected row turns red, and the same screen in Arabic.
#[test]
fn kiosk_under_xvfb_shows_the_supervisor_s_review_of_one_record() {
    let name = "kiosk_under_xvfb_shows_the_supervisor_s_review_of_one_record";
    let Some(xvfb) = x_server(name) else {
        return;
    };
    let setup = Setup::new();
    enrol_in(&setup.station, 2, 5);
    let mut kiosk = Kiosk::start(&setup.station, &xvfb.display);
    kiosk.expect("login view shown");
    let window = find_window(&xvfb.display, "Tasjil");
    let (wx, wy, ww, wh) = xvfb.geometry(&window);
    let view: Area = (wx, wy + 52, ww, wh - 52 - 30);
    const SETTLE: Duration = Duration::from_secs(30);
    // Row backgrounds of ui/views/supervisor.slint: awaiting, opened, rejected.
    const AWAITING: [u8; 3] = [0xff, 0xf6, 0xe8];
    const OPENED: [u8; 3] = [0xe3, 0xee, 0xfa];
    const REJECTED: [u8; 3] = [0xfd, 0xf0, 0xf1];

    kiosk.send("badge");
    kiosk.send("pin 123456");
    kiosk.expect("home view shown");
    kiosk.send("supervisor");
    kiosk.expect("supervisor view shown");
    assert!(
        xvfb.wait_run(AWAITING, wy + 52, 200).is_some(),
        "no record awaiting on the screen: {}",
        xvfb.save("xvfb-supervisor-no-rows").display()
    );
    let list = xvfb.settled(view, SETTLE).unwrap();
    assert!(xvfb.find_run(OPENED, wy + 52, 200).is_none());

    kiosk.send("sup-open 2");
    let opened = xvfb
        .changed(view, &list, SETTLE)
        .expect("missed redraw: the record did not open");
    assert_eq!(
        opened,
        xvfb.full_repaint(&window, view),
        "the opened record"
    );
    assert!(xvfb.find_run(OPENED, wy + 52, 200).is_some());
    xvfb.shot("xvfb-supervisor-review-fr");

    // A reason chosen from the list, Reject, the PIN: logged, and the row turns red once the
    // supervisor opens the other record.
    kiosk.send("sup-reason photo");
    kiosk.send("sup-verdict reject");
    kiosk.send("sup-pin 123456");
    let done = kiosk.expect("reject by SUP-SIM-1 at the kiosk");
    assert!(done.contains("record "), "{done}");
    kiosk.send("sup-open 1");
    assert!(
        xvfb.wait_run(REJECTED, wy + 52, 200).is_some(),
        "the rejected record is not red: {}",
        xvfb.save("xvfb-supervisor-not-red").display()
    );
    let rejected = xvfb.settled(view, SETTLE).unwrap();
    assert_eq!(
        rejected,
        xvfb.full_repaint(&window, view),
        "after the rejection"
    );

    kiosk.send("lang ar");
    let arabic = xvfb
        .changed(view, &rejected, SETTLE)
        .expect("missed redraw: the review did not switch to Arabic");
    assert_eq!(
        arabic,
        xvfb.full_repaint(&window, view),
        "the review in Arabic"
    );
    xvfb.shot("xvfb-supervisor-review-ar");
    drop(kiosk);

    // The decision is the station's: in its list with the reason and the supervisor.
    let (_, list) = json_of(&setup.station, &["list"]);
    assert_eq!(list["records"][1]["review"], "withdrawn", "{list}");
    assert_eq!(
        list["records"][1]["review_reason"], "face photo not compliant",
        "{list}"
    );
    assert_eq!(
        list["records"][0]["review"],
        serde_json::Value::Null,
        "{list}"
    );
}
