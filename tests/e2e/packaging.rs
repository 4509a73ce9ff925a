//! The Debian packages as `scripts/package` built them into `target/debian/` (`scripts/test`
//! builds them before `cargo test`): their contents, lintian, the systemd units (verify, and the
//! centre unit's `systemd-analyze security` exposure), a real install on this machine with the
//! installed binaries run against the packaged paths and a purge, the kiosk unit's command in
//! cage with a headless backend and a screenshot, and the signed offline update.
//!
//! A missing package or tool prints a loud SKIPPED banner; with `CI=true` it fails the test. The
//! install test changes the machine (a user, /etc/tasjil, units): it runs only as root, and
//! only with `CI=true` or `TASJIL_TEST_INSTALL=1`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, text, Setup, BIN};

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skip loudly, or fail on CI.
fn skip(test: &str, why: &str) {
    if on_ci() {
        panic!("CI=true: {test}: {why}");
    }
    eprintln!("\n!!!!!!!! SKIPPED {test}: {why}\n");
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn tools(test: &str, names: &[&str]) -> bool {
    let missing: Vec<&str> = names.iter().copied().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    skip(
        test,
        &format!("{missing:?} not installed (scripts/install-deps installs them)"),
    );
    false
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where scripts/package writes: `TASJIL_DEB_DIR`, else `$CARGO_TARGET_DIR/debian`, else
/// `target/debian`.
fn deb_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TASJIL_DEB_DIR") {
        return PathBuf::from(d);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_absolute() {
                t
            } else {
                workspace().join(t)
            }
        })
        .unwrap_or_else(|| workspace().join("target"));
    target.join("debian")
}

#[derive(Debug)]
struct Debs {
    station: PathBuf,
    centre: PathBuf,
}

/// The two packages, or `None` after a skip banner.
fn debs(test: &str) -> Option<Debs> {
    let dir = deb_dir();
    let find = |prefix: &str| {
        std::fs::read_dir(&dir).ok()?.find_map(|e| {
            let p = e.ok()?.path();
            let name = p.file_name()?.to_str()?.to_string();
            (name.starts_with(prefix) && name.ends_with(".deb")).then_some(p)
        })
    };
    match (find("tasjil_"), find("tasjil-central_")) {
        (Some(station), Some(centre)) => Some(Debs { station, centre }),
        _ => {
            skip(
                test,
                &format!(
                    "no tasjil_*.deb and tasjil-central_*.deb in {} (run scripts/package)",
                    dir.display()
                ),
            );
            None
        }
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?} failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `dpkg-deb -x` of `deb` into a new temporary root.
fn unpack(deb: &Path) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(root.path()));
    root
}

const STATION_FILES: &[&str] = &[
    "./usr/bin/tasjil",
    "./usr/lib/tasjil/tasjil-notice",
    "./etc/tasjil/config.toml",
    "./etc/pam.d/tasjil-kiosk",
    "./usr/lib/udev/rules.d/70-tasjil-devices.rules",
    "./usr/lib/systemd/system/tasjil-kiosk.service",
    "./usr/lib/systemd/system/tasjil-kiosk-notice.service",
    "./usr/lib/systemd/system/tasjil-sync.service",
    "./usr/lib/sysusers.d/tasjil.conf",
    "./usr/lib/tmpfiles.d/tasjil.conf",
    "./usr/share/doc/tasjil/copyright",
    "./usr/share/doc/tasjil/station.toml",
];
const CENTRE_FILES: &[&str] = &[
    "./usr/bin/tasjil-central",
    "./etc/default/tasjil-central",
    "./usr/lib/systemd/system/tasjil-central.service",
    "./usr/lib/sysusers.d/tasjil-central.conf",
    "./usr/share/doc/tasjil-central/copyright",
];

#[test]
fn packages_hold_the_binaries_units_rules_and_config_and_nothing_under_home_or_tmp() {
    let test = "packages_hold_the_binaries_units_rules_and_config_and_nothing_under_home_or_tmp";
    let Some(debs) = debs(test) else { return };
    for (deb, wanted) in [(&debs.station, STATION_FILES), (&debs.centre, CENTRE_FILES)] {
        let listing = ok(Command::new("dpkg-deb").arg("-c").arg(deb));
        // Lines: "-rwxr-xr-x root/root  12345 2026-12-02 12:00 ./usr/bin/tasjil".
        let entries: Vec<(&str, &str)> = listing
            .lines()
            .filter_map(|l| {
                let mode = l.split_whitespace().next()?;
                let path = l.split_whitespace().nth(5)?;
                Some((mode, path))
            })
            .collect();
        for w in wanted {
            assert!(
                entries.iter().any(|(_, p)| p == w),
                "{} lacks {w}:\n{listing}",
                deb.display()
            );
        }
        for (mode, path) in &entries {
            assert!(
                !path.starts_with("./home")
                    && !path.starts_with("./tmp")
                    && !path.starts_with("./root"),
                "{} ships {path}",
                deb.display()
            );
            if path.starts_with("./usr/bin/") && !path.ends_with('/') {
                assert_eq!(*mode, "-rwxr-xr-x", "{path} mode in {}", deb.display());
            }
        }
        // Owned by root, whatever the build machine's user.
        assert!(
            listing
                .lines()
                .all(|l| l.contains(" root/root ") || l.contains(" 0/0 ")),
            "{}: not every file is root/root:\n{listing}",
            deb.display()
        );
    }
    // Stripped: no symbol table or debug section left in the shipped binaries (readelf, from
    // binutils: build-essential).
    let root = unpack(&debs.station);
    let centre_root = unpack(&debs.centre);
    for bin in [
        root.path().join("usr/bin/tasjil"),
        root.path().join("usr/lib/tasjil/tasjil-notice"),
        centre_root.path().join("usr/bin/tasjil-central"),
    ] {
        let sections = ok(Command::new("readelf").arg("-S").arg(&bin));
        assert!(
            !sections.contains(".symtab") && !sections.contains(".debug_"),
            "{} is not stripped:\n{sections}",
            bin.display()
        );
    }
    let control = ok(Command::new("dpkg-deb")
        .arg("--field")
        .arg(&debs.station)
        .arg("Depends"));
    for dep in ["cage", "xwayland", "pcscd", "systemd"] {
        assert!(
            control.contains(dep),
            "tasjil Depends lacks {dep}: {control}"
        );
    }
}

#[test]
fn lintian_finds_no_error_in_either_package() {
    let test = "lintian_finds_no_error_in_either_package";
    let Some(debs) = debs(test) else { return };
    if !tools(test, &["lintian"]) {
        return;
    }
    for deb in [&debs.station, &debs.centre] {
        let out = run(Command::new("lintian")
            .args([
                "--fail-on",
                "error",
                "--display-info",
                "--tag-display-limit",
                "0",
            ])
            .arg(deb));
        let report = text(&out);
        eprintln!("lintian {}:\n{report}", deb.display());
        assert!(
            out.status.success(),
            "lintian found errors in {}: {report}",
            deb.display()
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.starts_with("E:")),
            "{report}"
        );
    }
}

/// `systemd-analyze verify` of every unit file `dir/UNIT`.
fn verify_units(dir: &Path, units: &[&str]) {
    for unit in units {
        let path = dir.join(unit);
        let out = run(Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path)
            .env("SYSTEMD_LOG_LEVEL", "notice"));
        let report = text(&out);
        assert!(
            out.status.success(),
            "systemd-analyze verify {unit}: {report}"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Only messages about units this package does not own (e.g. the host's own) may remain.
        for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                !line.contains("tasjil"),
                "systemd-analyze verify {unit} complains: {line}\n{report}"
            );
        }
    }
}

const STATION_UNITS: &[&str] = &[
    "tasjil-kiosk.service",
    "tasjil-kiosk-notice.service",
    "tasjil-sync.service",
];

/// The exposure score `systemd-analyze security --offline=yes` gives `unit` inside `root`.
fn exposure(root: &Path, unit: &str) -> (f64, String) {
    let out = ok(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(format!("--root={}", root.display()))
        .arg(unit));
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in:\n{out}"));
    let score = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score in {line:?}"));
    (score, out)
}

#[test]
fn every_unit_verifies_and_the_centre_unit_is_hardened() {
    let test = "every_unit_verifies_and_the_centre_unit_is_hardened";
    let Some(debs) = debs(test) else { return };
    if !tools(test, &["systemd-analyze", "cage"]) {
        return;
    }
    let centre = unpack(&debs.centre);
    let (score, report) = exposure(centre.path(), "tasjil-central.service");
    // Recorded next to the packages, and in docs/PERFORMANCE.md.
    std::fs::write(deb_dir().join("tasjil-central.security.txt"), &report).unwrap();
    eprintln!("tasjil-central.service exposure: {score}");
    assert!(score <= 2.5, "exposure {score} > 2.5:\n{report}");
    let station = unpack(&debs.station);
    let (sync_score, sync_report) = exposure(station.path(), "tasjil-sync.service");
    eprintln!("tasjil-sync.service exposure: {sync_score}");
    assert!(
        sync_score <= 4.0,
        "sync exposure {sync_score}:\n{sync_report}"
    );
    let (kiosk_score, _) = exposure(station.path(), "tasjil-kiosk.service");
    eprintln!(
        "tasjil-kiosk.service exposure: {kiosk_score} (devices, seat and sticks: light hardening)"
    );
    // `verify` checks that each command exists on this machine: the packaged binaries are not
    // installed here, so the units are verified with their paths pointed into the unpacked
    // packages (the install test verifies them again where dpkg put them).
    let units = tempfile::tempdir().unwrap();
    for (root, names) in [
        (centre.path(), &["tasjil-central.service"][..]),
        (station.path(), STATION_UNITS),
    ] {
        for name in names {
            let text =
                std::fs::read_to_string(root.join("usr/lib/systemd/system").join(name)).unwrap();
            let text = text
                .replace(
                    "/usr/bin/tasjil-central ",
                    &format!("{}/usr/bin/tasjil-central ", root.display()),
                )
                .replace(
                    "/usr/bin/tasjil ",
                    &format!("{}/usr/bin/tasjil ", root.display()),
                )
                .replace(
                    "/usr/lib/tasjil/tasjil-notice ",
                    &format!("{}/usr/lib/tasjil/tasjil-notice ", root.display()),
                );
            std::fs::write(units.path().join(name), text).unwrap();
        }
    }
    let names: Vec<&str> = STATION_UNITS
        .iter()
        .copied()
        .chain(["tasjil-central.service"])
        .collect();
    verify_units(units.path(), &names);
}

/// Whether the tests run as root (`id -u`: the workspace forbids unsafe code, so no geteuid).
fn root_user() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn as_user(user: &str, args: &[&str]) -> Output {
    run(Command::new("runuser")
        .args(["-u", user, "--"])
        .args(args)
        .env_remove("TASJIL_DATA_DIR")
        .env_remove("TASJIL_CENTRAL_DATA_DIR")
        .current_dir("/"))
}

fn dpkg_status(package: &str) -> String {
    let out = run(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn packages_install_run_from_their_paths_and_purge() {
    let test = "packages_install_run_from_their_paths_and_purge";
    let Some(debs) = debs(test) else { return };
    if !(on_ci() || std::env::var("TASJIL_TEST_INSTALL").is_ok_and(|v| v == "1")) {
        eprintln!(
            "\n!!!!!!!! SKIPPED {test}: it installs the packages on this machine; set \
             TASJIL_TEST_INSTALL=1 (as root) to run it\n"
        );
        return;
    }
    if !root_user() {
        skip(test, "dpkg -i needs root");
        return;
    }
    if !tools(
        test,
        &["dpkg", "runuser", "systemd-analyze", "systemd-sysusers"],
    ) {
        return;
    }
    for dir in ["/var/lib/tasjil", "/var/lib/tasjil-central"] {
        assert!(
            !Path::new(dir).join("station.db").exists()
                && !Path::new(dir).join("centre.key").exists(),
            "{dir} already holds a station or a centre: not a machine to test on"
        );
    }
    ok(Command::new("dpkg")
        .arg("-i")
        .arg(&debs.centre)
        .arg(&debs.station));
    let result = std::panic::catch_unwind(installed_binaries_work);
    let purge = run(Command::new("dpkg").args(["--purge", "tasjil", "tasjil-central"]));
    let purge_text = text(&purge);
    // The data the tests made is removed by hand, as the purge says it must be.
    let _ = std::fs::remove_dir_all("/var/lib/tasjil");
    let _ = std::fs::remove_dir_all("/var/lib/tasjil-central");
    let _ = std::fs::remove_dir_all("/var/lib/private/tasjil-central");
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(purge.status.success(), "purge: {purge_text}");
    assert!(
        purge_text.contains("kept /var/lib/tasjil")
            && purge_text.contains("kept /var/lib/tasjil-central"),
        "purge must say it keeps the stores: {purge_text}"
    );
    for gone in [
        "/usr/bin/tasjil",
        "/usr/bin/tasjil-central",
        "/usr/lib/tasjil",
        "/etc/tasjil",
        "/etc/default/tasjil-central",
        "/etc/pam.d/tasjil-kiosk",
        "/usr/lib/systemd/system/tasjil-kiosk.service",
        "/usr/lib/systemd/system/tasjil-central.service",
        "/etc/systemd/system/multi-user.target.wants/tasjil-central.service",
        "/etc/systemd/system/graphical.target.wants/tasjil-kiosk.service",
        "/usr/lib/udev/rules.d/70-tasjil-devices.rules",
    ] {
        assert!(
            !Path::new(gone).exists(),
            "{gone} is still there after purge"
        );
    }
    for p in ["tasjil", "tasjil-central"] {
        let s = dpkg_status(p);
        assert!(
            !s.contains("installed") || s.contains("not-installed"),
            "{p}: {s}"
        );
    }
}

fn installed_binaries_work() {
    // Users, directories, enabled units.
    for user in ["tasjil", "tasjil-central"] {
        ok(Command::new("getent").args(["passwd", user]));
    }
    use std::os::unix::fs::PermissionsExt;
    for dir in ["/var/lib/tasjil", "/var/lib/tasjil-central"] {
        let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{dir}");
    }
    assert!(Path::new("/etc/systemd/system/graphical.target.wants/tasjil-kiosk.service").exists());
    assert!(
        Path::new("/var/lib/tasjil/config.toml").is_symlink(),
        "/var/lib/tasjil/config.toml should link to /etc/tasjil/config.toml"
    );
    let installed = Path::new("/usr/lib/systemd/system");
    verify_units(installed, &["tasjil-central.service"]);
    verify_units(installed, STATION_UNITS);

    // The centre, as its service user, in its packaged directory.
    let centre = |args: &[&str]| {
        let mut a = vec![
            "/usr/bin/tasjil-central",
            "--data-dir",
            "/var/lib/tasjil-central",
        ];
        a.extend_from_slice(args);
        as_user("tasjil-central", &a)
    };
    let out = centre(&["init"]);
    assert!(out.status.success(), "centre init: {}", text(&out));
    // centre.pub goes to the van by hand; here through a file the tasjil user can read.
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let centre_pub = shared.path().join("centre.pub");
    std::fs::copy("/var/lib/tasjil-central/centre.pub", &centre_pub).unwrap();
    std::fs::set_permissions(&centre_pub, std::fs::Permissions::from_mode(0o644)).unwrap();

    let station = |args: &[&str]| {
        let mut a = vec!["/usr/bin/tasjil", "--data-dir", "/var/lib/tasjil"];
        a.extend_from_slice(args);
        as_user("tasjil", &a)
    };
    let out = station(&[
        "init",
        "--station-id",
        "VAN-PKG-A",
        "--central-key",
        centre_pub.to_str().unwrap(),
        "--simulation",
    ]);
    assert!(out.status.success(), "station init: {}", text(&out));
    let out = station(&["enrol", "--simulate", "--count", "3", "--badge", "sim"]);
    assert!(out.status.success(), "enrol: {}", text(&out));
    let out = station(&["verify", "--json"]);
    assert!(out.status.success(), "station verify: {}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["ok"].as_bool(), v["records"].as_u64()),
        (Some(true), Some(3)),
        "{v}"
    );
    // The station's public key reaches the centre the same way.
    let station_pub = shared.path().join("station.pub");
    std::fs::copy("/var/lib/tasjil/station.pub", &station_pub).unwrap();
    std::fs::set_permissions(&station_pub, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = centre(&[
        "station",
        "add",
        "--id",
        "VAN-PKG-A",
        "--key",
        station_pub.to_str().unwrap(),
        "--simulation",
    ]);
    assert!(out.status.success(), "station add: {}", text(&out));
    let out = centre(&["verify", "--json"]);
    assert!(out.status.success(), "centre verify: {}", text(&out));
    // The store stays the station user's, behind its 0700 directory; the key is 0600.
    use std::os::unix::fs::MetadataExt;
    for f in common::files(Path::new("/var/lib/tasjil")) {
        let m = std::fs::symlink_metadata(&f).unwrap();
        if !m.is_symlink() {
            assert_eq!(
                m.uid(),
                std::fs::metadata("/var/lib/tasjil").unwrap().uid(),
                "{}",
                f.display()
            );
        }
    }
    let key = std::fs::metadata("/var/lib/tasjil/station.key").unwrap();
    assert_eq!(key.mode() & 0o777, 0o600);
}

/// A compositor started for one test, killed (with its children) when dropped.
struct Cage {
    child: std::process::Child,
    runtime: tempfile::TempDir,
}

impl Drop for Cage {
    fn drop(&mut self) {
        // SIGTERM, which runuser passes on to cage (a SIGKILL would orphan cage); the kiosk
        // also closes by itself (--exit-after).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// `cmd` as an unprivileged user: cage refuses to run as root ("Unable to drop root"), so as
/// root (CI) it runs as `nobody`, as the packaged kiosk runs as `tasjil`.
fn unprivileged(program: &str, env: &[(&str, &Path)]) -> Command {
    let mut cmd = if root_user() {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--", "env"]);
        for (k, v) in env {
            c.arg(format!("{k}={}", v.display()));
        }
        c.arg(program);
        c
    } else {
        let mut c = Command::new(program);
        for (k, v) in env {
            c.env(k, v);
        }
        c
    };
    cmd.env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
    cmd
}

fn give_to_nobody(path: &Path) {
    if root_user() {
        ok(Command::new("chown").args(["-R", "nobody"]).arg(path));
    }
}

/// Run `program args` in a headless cage as an unprivileged user, wait for `ready` on its
/// standard error (or one second when `None`), and capture the screen with grim until two
/// captures agree. Returns the time from launching cage to `ready`, the line, and the PNG.
fn in_headless_cage(
    program: &Path,
    args: &[&str],
    ready: Option<&str>,
) -> (Duration, String, image::RgbImage) {
    use std::os::unix::fs::PermissionsExt;
    let runtime = tempfile::Builder::new()
        .prefix("tasjil-cage-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(runtime.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    give_to_nobody(runtime.path());
    let rt = runtime.path().to_path_buf();
    let env: Vec<(&str, &Path)> = vec![
        ("WLR_BACKENDS", Path::new("headless")),
        ("WLR_LIBINPUT_NO_DEVICES", Path::new("1")),
        ("XDG_RUNTIME_DIR", &rt),
        ("HOME", &rt),
        ("TASJIL_BADGE", Path::new("sim")),
    ];
    let started = Instant::now();
    let child = unprivileged("cage", &env)
        .args(["-d", "--"])
        .arg(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut cage = Cage { child, runtime };
    let stderr = cage.child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let (shown, line) = match ready {
        Some(wanted) => loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if line.contains(wanted) => break (started.elapsed(), line),
                Ok(line) => log.push(line),
                Err(_) => panic!("no {wanted:?} within 60 s; cage said:\n{}", log.join("\n")),
            }
        },
        None => {
            std::thread::sleep(Duration::from_secs(1));
            (started.elapsed(), String::new())
        }
    };
    let socket = std::fs::read_dir(cage.runtime.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("wayland-") && !n.ends_with(".lock"))
        .expect("cage made no Wayland socket");
    let shot = cage.runtime.path().join("screen.png");
    let wayland = PathBuf::from(&socket);
    let grim_env: Vec<(&str, &Path)> =
        vec![("XDG_RUNTIME_DIR", &rt), ("WAYLAND_DISPLAY", &wayland)];
    let mut previous: Option<image::RgbImage> = None;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(250));
        ok(unprivileged("grim", &grim_env).arg(&shot));
        let img = image::open(&shot).unwrap().to_rgb8();
        if previous.as_ref() == Some(&img) {
            break;
        }
        previous = Some(img);
    }
    (shown, line, previous.unwrap())
}

/// Most pixels of one colour means nothing was drawn.
fn assert_drawn(img: &image::RgbImage, what: &str) {
    let first = *img.get_pixel(0, 0);
    let differing = img.pixels().filter(|p| **p != first).count();
    assert!(
        differing * 20 > img.pixels().len(),
        "{what}: the screenshot is almost one colour ({differing} of {} pixels differ)",
        img.pixels().len()
    );
}

fn keep_screenshot(img: &image::RgbImage, name: &str) -> PathBuf {
    let shot = deb_dir().join(name);
    img.save(&shot).unwrap();
    if std::env::var("TASJIL_UPDATE_SCREENS").is_ok_and(|v| v == "1") {
        std::fs::copy(&shot, workspace().join("docs/screens").join(name)).unwrap();
    }
    shot
}

#[test]
fn kiosk_unit_command_in_headless_cage_shows_the_login_screen_and_the_notice_its_own() {
    let test = "kiosk_unit_command_in_headless_cage_shows_the_login_screen_and_the_notice_its_own";
    let Some(debs) = debs(test) else { return };
    if !tools(test, &["cage", "grim", "Xwayland", "runuser"]) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let open =
        |p: &Path| std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = unpack(&debs.station);
    open(root.path());
    // A training station: the kiosk runs with simulated devices (no camera, sensor or reader
    // here); otherwise it is the unit's command line, through cage's Xwayland.
    let setup = Setup::new();
    open(setup.tmp.path());
    give_to_nobody(&setup.station);
    let station = setup.station.to_str().unwrap();
    let (shown, line, img) = in_headless_cage(
        &root.path().join("usr/bin/tasjil"),
        &[
            "--data-dir",
            station,
            "kiosk",
            "--fullscreen",
            "--simulate",
            "--exit-after",
            "30",
        ],
        Some("login view shown"),
    );
    assert_drawn(&img, "kiosk");
    let shot = keep_screenshot(&img, "kiosk-cage-login.png");
    eprintln!(
        "kiosk in cage: login view {} ms after cage started ({line}), screenshot {} ({}x{})",
        shown.as_millis(),
        shot.display(),
        img.width(),
        img.height()
    );
    // The crash-loop screen of tasjil-kiosk-notice.service, on the same station.
    let (_, _, img) = in_headless_cage(
        &root.path().join("usr/lib/tasjil/tasjil-notice"),
        &["--data-dir", station],
        None,
    );
    assert_drawn(&img, "tasjil-notice");
    eprintln!(
        "crash-loop notice: {}",
        keep_screenshot(&img, "kiosk-cage-notice.png").display()
    );
}

// ---- The signed offline update -------------------------------------------------------------

/// A minimal `tasjil` package of `version` holding one marker file.
fn fake_package(dir: &Path, version: &str) -> PathBuf {
    let tree = dir.join(format!("tree-{version}"));
    std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(tree.join("usr/share/tasjil-update-test")).unwrap();
    std::fs::write(
        tree.join("DEBIAN/control"),
        format!(
            "Package: tasjil\nVersion: {version}\nArchitecture: all\nMaintainer: Tasjil tests \
             <tasjil@localhost>\nDescription: update test package\n"
        ),
    )
    .unwrap();
    std::fs::write(tree.join("usr/share/tasjil-update-test/VERSION"), version).unwrap();
    let deb = dir.join(format!("tasjil_{version}_all.deb"));
    ok(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(&tree)
        .arg(&deb));
    deb
}

fn update(
    setup: &Setup,
    args: &[&str],
    release_pub: &Path,
    installer: &str,
) -> (i32, serde_json::Value) {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(&setup.station)
        .arg("update")
        .args(args)
        .arg("--json")
        .env("TASJIL_RELEASE_KEY", release_pub)
        .env("TASJIL_UPDATE_INSTALLER", installer)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {}", text(&out)));
    (out.status.code().unwrap_or(-1), v)
}

#[test]
fn a_signed_update_installs_and_tampered_older_or_foreign_ones_are_refused_by_name() {
    let test = "a_signed_update_installs_and_tampered_older_or_foreign_ones_are_refused_by_name";
    if !tools(test, &["dpkg", "dpkg-deb", "dpkg-query"]) {
        return;
    }
    let setup = Setup::new();
    let work = setup.tmp.path().join("update");
    let stick = work.join("stick");
    std::fs::create_dir_all(&stick).unwrap();
    // A throw-away dpkg root is the "machine" the installer changes.
    let root = work.join("root");
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let installer = format!(
        "dpkg --root={r} --force-not-root --force-bad-path --log={r}/var/log/dpkg.log -i",
        r = root.display()
    );
    let installed = || {
        let out = run(Command::new("dpkg-query")
            .arg(format!("--admindir={}/var/lib/dpkg", root.display()))
            .args(["-W", "-f=${Version}", "tasjil"]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    // The release key, made at run time (never committed).
    let key = work.join("release.key");
    let out = Command::new(BIN)
        .args(["update", "keygen"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "keygen: {}", text(&out));
    let release_pub = work.join("release.key.pub");
    let sign = |deb: &Path| {
        let out = Command::new(BIN)
            .args(["update", "sign", "--key"])
            .arg(&key)
            .arg(deb)
            .output()
            .unwrap();
        assert!(out.status.success(), "sign: {}", text(&out));
    };

    // A newer release, signed: installed into the throw-away root, the store kept.
    let newer = fake_package(&stick, "99.0.0-1");
    sign(&newer);
    let (code, v) = update(
        &setup,
        &[newer.to_str().unwrap(), "--check"],
        &release_pub,
        &installer,
    );
    assert_eq!((code, v["installed"].as_bool()), (0, Some(false)), "{v}");
    assert_eq!(installed(), "", "--check installed something");
    let (code, v) = update(&setup, &[newer.to_str().unwrap()], &release_pub, &installer);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (v["installed"].as_bool(), v["store"].as_str()),
        (Some(true), Some("kept")),
        "{v}"
    );
    assert_eq!(installed(), "99.0.0-1");
    assert_eq!(
        std::fs::read_to_string(root.join("usr/share/tasjil-update-test/VERSION")).unwrap(),
        "99.0.0-1"
    );
    assert!(setup.station.join("station.db").exists());

    // Tampered: one byte changed after signing.
    let tampered_dir = work.join("tampered");
    std::fs::create_dir_all(&tampered_dir).unwrap();
    let newest = fake_package(&tampered_dir, "99.1.0-1");
    sign(&newest);
    let mut bytes = std::fs::read(&newest).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0x40;
    std::fs::write(&newest, bytes).unwrap();
    let (code, v) = update(
        &setup,
        &[newest.to_str().unwrap()],
        &release_pub,
        &installer,
    );
    assert_eq!((code, v["refused"].as_str()), (1, Some("tampered")), "{v}");

    // Older than what this binary is: refused even when properly signed.
    let older = fake_package(&stick, "0.0.1-1");
    sign(&older);
    let (code, v) = update(&setup, &[older.to_str().unwrap()], &release_pub, &installer);
    assert_eq!((code, v["refused"].as_str()), (1, Some("not-newer")), "{v}");
    assert!(v["reason"].as_str().unwrap().contains("not newer"), "{v}");

    // Signed by a key the station does not trust.
    let other_dir = work.join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other_key = other_dir.join("other.key");
    assert!(Command::new(BIN)
        .args(["update", "keygen"])
        .arg(&other_key)
        .output()
        .unwrap()
        .status
        .success());
    let foreign = fake_package(&other_dir, "99.2.0-1");
    let out = Command::new(BIN)
        .args(["update", "sign", "--key"])
        .arg(&other_key)
        .arg(&foreign)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let (code, v) = update(
        &setup,
        &[foreign.to_str().unwrap()],
        &release_pub,
        &installer,
    );
    assert_eq!(
        (code, v["refused"].as_str()),
        (1, Some("untrusted-key")),
        "{v}"
    );

    // No signature at all, and a station with no release key.
    let unsigned = fake_package(&work, "99.3.0-1");
    let (code, v) = update(
        &setup,
        &[unsigned.to_str().unwrap()],
        &release_pub,
        &installer,
    );
    assert_eq!((code, v["refused"].as_str()), (1, Some("unsigned")), "{v}");
    let (code, v) = update(
        &setup,
        &[newer.to_str().unwrap()],
        &work.join("none.pub"),
        &installer,
    );
    assert_eq!(
        (code, v["refused"].as_str()),
        (1, Some("no-release-key")),
        "{v}"
    );

    // Nothing refused reached the installer.
    assert_eq!(installed(), "99.0.0-1");
}
