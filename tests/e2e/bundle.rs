//! The USB round trip with no network anywhere: `tasjil export` → `tasjil-central import` →
//! `tasjil receipt import`, through both real binaries; the tamper suite; SIGKILL during export;
//! a full and a read-only stick.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use tasjil_sync::bundle::{BundleHeader, BundleReader, Receipt};

use crate::common::*;

const PIN: &str = "123456\n";

fn enrol(station: &Path, count: u32, seed: u64) {
    enrol_in(station, count, seed);
}

fn approve_all(station: &Path) {
    let out = run_with_input(station, &["approve", "--all", "--pin-stdin"], PIN);
    assert!(out.status.success(), "approve: {}", text(&out));
}

/// `tasjil export --to usb`; returns the bundle path.
fn export(station: &Path, usb: &Path) -> PathBuf {
    std::fs::create_dir_all(usb).unwrap();
    let out = run_with_input(
        station,
        &[
            "export",
            "--to",
            usb.to_str().unwrap(),
            "--pin-stdin",
            "--json",
        ],
        PIN,
    );
    assert!(out.status.success(), "export: {}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    PathBuf::from(v["file"].as_str().unwrap())
}

fn status(station: &Path) -> Value {
    json_of(station, &["status"]).1
}

fn import(central: &Central, bundle: &Path) -> (i32, Value) {
    central.json(&["import", bundle.to_str().unwrap()])
}

#[test]
fn round_trip_of_200_enrolments_needs_no_network() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let station = station_for(&central, &tmp.path().join("station"), "VAN-USB");
    enrol(&station, 200, 11);
    approve_all(&station);
    let usb = tmp.path().join("usb");
    let bundle = export(&station, &usb);
    assert_eq!(
        bundle.file_name().unwrap().to_str().unwrap(),
        "VAN-USB-1-200.tasjil"
    );
    assert_eq!(status(&station)["exported"], 200);
    // Only the bundle on the stick: no temporary file left behind.
    let names: Vec<_> = std::fs::read_dir(&usb)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");

    let (code, report) = import(&central, &bundle);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["stored"], 200);
    assert_eq!(report["verified"], 200);
    assert_eq!(report["replay"], false);
    let (_, stats) = central.json(&["stats"]);
    assert_eq!(stats["records"], 200);
    assert_eq!(stats["verified"], 200);
    let (code, v) = central.json(&["verify"]);
    assert_eq!(code, 0, "{v}");

    let receipt = PathBuf::from(report["receipt"].as_str().unwrap());
    assert_eq!(receipt, usb.join("VAN-USB-1-200.tasjil.receipt"));
    let (code, r) = json_of(&station, &["receipt", "import", receipt.to_str().unwrap()]);
    assert_eq!(code, 0, "{r}");
    let s = status(&station);
    assert_eq!(s["acknowledged"], 200, "{s}");
    assert_eq!(s["exported"], 0, "{s}");
    assert_eq!(s["rejected"], 0, "{s}");

    // The station's ledgers now carry the centre's statuses, as a network sync would bring.
    let (code, v) = json_of(&station, &["verify"]);
    assert_eq!(code, 0, "{v}");

    // The same bundle again: recognised, nothing new, exit 0.
    let before = central.snapshot();
    let (code, again) = import(&central, &bundle);
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["replay"], true);
    assert_eq!(again["stored"], 0);
    assert_eq!(again["already"], 200);
    assert_eq!(central.snapshot(), before);

    // Nothing left to export.
    let out = run_with_input(
        &station,
        &[
            "export",
            "--to",
            usb.to_str().unwrap(),
            "--pin-stdin",
            "--json",
        ],
        PIN,
    );
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["file"].is_null(), "{v}");
}

#[test]
fn bundle_after_network_sync_and_sync_after_bundle_never_duplicate() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let station = station_for(&central, &tmp.path().join("station"), "VAN-MIX");
    enrol(&station, 6, 3);
    approve_all(&station);
    let bundle = export(&station, &tmp.path().join("usb"));

    // The same records reach the centre by network first (an in-process server on 127.0.0.1).
    let server = crate::centre::TestCentre::start(&central.dir);
    let out = run(&station, &["sync", "--central", &server.url]);
    assert!(out.status.success(), "sync: {}", text(&out));
    drop(server);

    let (code, report) = import(&central, &bundle);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["stored"], 0);
    assert_eq!(report["already"], 6);
    assert_eq!(report["verified"], 6);
    assert_eq!(central.json(&["stats"]).1["records"], 6);

    // More records; this time the bundle first, then a network sync sends nothing again.
    enrol(&station, 4, 4);
    approve_all(&station);
    let second = export(&station, &tmp.path().join("usb2"));
    assert!(
        second.ends_with("VAN-MIX-7-10.tasjil"),
        "{}",
        second.display()
    );
    let (code, report) = import(&central, &second);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["stored"], 4);
    let server = crate::centre::TestCentre::start(&central.dir);
    let (code, s) = json_of(&station, &["sync", "--central", &server.url]);
    assert_eq!(code, 0, "{s}");
    assert_eq!(s["sent"], 0, "{s}");
    assert_eq!(s["acknowledged"], 10, "{s}");
    drop(server);
    assert_eq!(central.json(&["stats"]).1["records"], 10);
}

#[test]
fn unapproved_records_are_held_back_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let station = station_for(&central, &tmp.path().join("station"), "VAN-HOLD");
    enrol(&station, 3, 1);
    let usb = tmp.path().join("usb");
    std::fs::create_dir_all(&usb).unwrap();
    let out = run_with_input(
        &station,
        &["export", "--to", usb.to_str().unwrap(), "--pin-stdin"],
        PIN,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not approved"), "{}", text(&out));
    assert_eq!(std::fs::read_dir(&usb).unwrap().count(), 0);

    approve_all(&station);
    enrol(&station, 2, 2);
    let bundle = export(&station, &usb);
    assert!(bundle.ends_with("VAN-HOLD-1-3.tasjil"));

    let wrong = run_with_input(
        &station,
        &["export", "--to", usb.to_str().unwrap(), "--pin-stdin"],
        "000000\n",
    );
    assert_eq!(wrong.status.code(), Some(1));
    assert!(text(&wrong).contains("wrong PIN"), "{}", text(&wrong));

    let missing = run_with_input(
        &station,
        &[
            "export",
            "--to",
            tmp.path().join("no-stick").to_str().unwrap(),
            "--pin-stdin",
        ],
        PIN,
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing).contains("mounted"), "{}", text(&missing));
}

/// Positions of each part in a bundle file: `(offset, len)`, plus the header's end.
fn layout(path: &Path) -> (BundleHeader, usize, Vec<(usize, usize)>) {
    let reader = BundleReader::open(path).unwrap();
    let header = reader.header().clone();
    let head_len = u32::from_be_bytes(std::fs::read(path).unwrap()[8..12].try_into().unwrap());
    let mut at = 12 + head_len as usize;
    let mut parts = Vec::new();
    for p in &header.manifest.parts {
        parts.push((at, p.len as usize));
        at += p.len as usize;
    }
    (header, 12 + head_len as usize, parts)
}

/// The check that catches a part of `new` bytes put where `old` bytes were, manifest unchanged.
fn length_check(new: usize, old: usize) -> &'static str {
    match new.cmp(&old) {
        std::cmp::Ordering::Equal => "part_hash",
        std::cmp::Ordering::Less => "truncated",
        std::cmp::Ordering::Greater => "trailing_bytes",
    }
}

/// Replace the header of bundle bytes `good` with `header` (re-encoded canonically).
fn with_header(good: &[u8], old_end: usize, header: &BundleHeader) -> Vec<u8> {
    let head = header.to_bytes().unwrap();
    let mut out = b"TASJILB1".to_vec();
    out.extend_from_slice(&(head.len() as u32).to_be_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&good[old_end..]);
    out
}

#[test]
fn tampered_bundles_are_refused_by_name_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let a = station_for(&central, &tmp.path().join("a"), "VAN-A");
    let b = station_for(&central, &tmp.path().join("b"), "VAN-B");
    enrol(&a, 3, 21);
    enrol(&b, 3, 22);
    approve_all(&a);
    approve_all(&b);
    let bundle_a = export(&a, &tmp.path().join("usb-a"));
    let bundle_b = export(&b, &tmp.path().join("usb-b"));
    let good = std::fs::read(&bundle_a).unwrap();
    let other = std::fs::read(&bundle_b).unwrap();
    let (header, head_end, parts) = layout(&bundle_a);
    let (_, _, parts_b) = layout(&bundle_b);
    assert_eq!(parts.len(), 3 + 3 + 1, "3 envelopes, 3 payloads, 1 ledger");

    let mut cases: Vec<(String, Vec<u8>, &str)> = Vec::new();
    for (i, (off, len)) in parts.iter().enumerate() {
        let mut t = good.clone();
        t[off + len / 2] ^= 0x01;
        cases.push((format!("flip a byte in part {i}"), t, "part_hash"));
    }
    let mut t = good.clone();
    let pos = 12
        + t[12..head_end]
            .windows(9)
            .position(|w| w == b"\"created_")
            .unwrap()
        + 15;
    t[pos] = if t[pos] == b'1' { b'2' } else { b'1' };
    cases.push((
        "change a digit of the signed manifest".into(),
        t,
        "station_signature",
    ));
    cases.push((
        "truncate".into(),
        good[..good.len() - 1000].to_vec(),
        "truncated",
    ));
    cases.push((
        "cut inside the header".into(),
        good[..head_end - 5].to_vec(),
        "truncated",
    ));
    let mut t = good.clone();
    t.extend_from_slice(b"extra");
    cases.push(("bytes appended".into(), t, "trailing_bytes"));
    // Drop part 1 (an envelope) from the bytes only, then from the manifest too.
    let (off, len) = parts[1];
    let mut t = good[..off].to_vec();
    t.extend_from_slice(&good[off + len..]);
    cases.push(("drop a part".into(), t.clone(), "truncated"));
    let mut h = header.clone();
    h.manifest.parts.remove(1);
    cases.push((
        "drop a part and its manifest entry".into(),
        with_header(&t, head_end, &h),
        "station_signature",
    ));
    // Swap two envelopes' bytes (their lengths may differ: keep the file consistent otherwise).
    let (o0, l0) = parts[0];
    let (o1, l1) = parts[1];
    let mut t = good[..o0].to_vec();
    t.extend_from_slice(&good[o1..o1 + l1]);
    t.extend_from_slice(&good[o0..o0 + l0]);
    t.extend_from_slice(&good[o1 + l1..]);
    cases.push(("reorder two parts".into(), t, "part_hash"));
    let mut h = header.clone();
    h.manifest.parts.swap(0, 1);
    cases.push((
        "reorder parts and their manifest entries".into(),
        with_header(&good, head_end, &h),
        "station_signature",
    ));
    // Station B's first envelope in place of A's first.
    let (bo, bl) = parts_b[0];
    let mut t = good[..o0].to_vec();
    t.extend_from_slice(&other[bo..bo + bl]);
    t.extend_from_slice(&good[o0 + l0..]);
    let mut h = header.clone();
    h.manifest.parts[0].len = bl as u64;
    h.manifest.parts[0].sha256 = tasjil_sync::sha256_hex(&other[bo..bo + bl]);
    cases.push((
        "swap in another station's envelope".into(),
        t.clone(),
        length_check(bl, l0),
    ));
    cases.push((
        "swap in another station's envelope and re-hash the manifest".into(),
        with_header(&t, head_end, &h),
        "station_signature",
    ));
    // Payload 0 replaced by payload 1 of the same bundle (the sizes differ by a few bytes at most).
    let (p0, pl0) = parts[3];
    let (p1, pl1) = parts[4];
    let mut t = good[..p0].to_vec();
    t.extend_from_slice(&good[p1..p1 + pl1]);
    t.extend_from_slice(&good[p0 + pl0..]);
    cases.push(("replace a payload".into(), t, length_check(pl1, pl0)));
    // Forged countersignature: signed by a key that is not the supervisor's badge.
    let mut h = header.clone();
    let forger = tasjil_sync::StationKey::generate();
    h.supervisor_signature = hex::encode(
        forger
            .sign(&h.manifest.signing_message().unwrap())
            .to_bytes(),
    );
    cases.push((
        "forge the supervisor's countersignature".into(),
        with_header(&good, head_end, &h),
        "supervisor_signature",
    ));
    // ... or name another supervisor key in the manifest (the station's signature breaks).
    let mut h = header.clone();
    h.manifest.supervisor.key = forger.public_hex();
    h.supervisor_signature = hex::encode(
        forger
            .sign(&h.manifest.signing_message().unwrap())
            .to_bytes(),
    );
    cases.push((
        "name a forged supervisor key".into(),
        with_header(&good, head_end, &h),
        "station_signature",
    ));
    cases.push((
        "not a bundle".into(),
        b"PK\x03\x04zip".to_vec(),
        "not_a_bundle",
    ));

    let before = central.snapshot();
    let dir = tmp.path().join("tampered");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (what, bytes, check)) in cases.iter().enumerate() {
        let path = dir.join(format!("case-{i}.tasjil"));
        std::fs::write(&path, bytes).unwrap();
        let (code, v) = import(&central, &path);
        assert_eq!(code, 1, "{what}: {v}");
        assert_eq!(v["imported"], false, "{what}: {v}");
        assert_eq!(v["check"], *check, "{what}: {v}");
        assert!(!v["reason"].as_str().unwrap().is_empty());
        assert!(
            !dir.join(format!("case-{i}.tasjil.receipt")).exists(),
            "{what}"
        );
        assert_eq!(central.snapshot(), before, "{what} changed the centre");
    }

    // An unregistered station's bundle.
    let tmp2 = tempfile::tempdir().unwrap();
    let stranger_centre = Central::init(&tmp2.path().join("c2"));
    let (code, v) = import(&stranger_centre, &bundle_a);
    assert_eq!(code, 1);
    assert_eq!(v["check"], "unknown_station", "{v}");

    // The genuine bundles still import after all that.
    let (code, v) = import(&central, &bundle_a);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["stored"], 3);

    // Replay of an old bundle after a newer one: recognised, nothing changes.
    enrol(&a, 2, 23);
    approve_all(&a);
    let (code, r) = json_of(
        &a,
        &[
            "receipt",
            "import",
            &format!("{}.receipt", bundle_a.display()),
        ],
    );
    assert_eq!(code, 0, "{r}");
    let newer = export(&a, &tmp.path().join("usb-a2"));
    let (code, v) = import(&central, &newer);
    assert_eq!(code, 0, "{v}");
    let before = central.snapshot();
    let (code, v) = import(&central, &bundle_a);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["replay"], true, "{v}");
    assert_eq!(v["stored"], 0);
    assert_eq!(central.snapshot(), before);
}

#[test]
fn forged_or_foreign_receipts_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let a = station_for(&central, &tmp.path().join("a"), "VAN-RA");
    let b = station_for(&central, &tmp.path().join("b"), "VAN-RB");
    for s in [&a, &b] {
        enrol(s, 2, 5);
        approve_all(s);
    }
    let bundle_a = export(&a, &tmp.path().join("usb-a"));
    let bundle_b = export(&b, &tmp.path().join("usb-b"));
    for bundle in [&bundle_a, &bundle_b] {
        let (code, v) = import(&central, bundle);
        assert_eq!(code, 0, "{v}");
    }
    let receipt_a = PathBuf::from(format!("{}.receipt", bundle_a.display()));
    let receipt_b = PathBuf::from(format!("{}.receipt", bundle_b.display()));
    let before = status(&a);

    // Station B's receipt at station A.
    let out = run(&a, &["receipt", "import", receipt_b.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("is for station VAN-RB"),
        "{}",
        text(&out)
    );

    // A receipt altered to claim a rejection, and one signed by another centre.
    let forged = tmp.path().join("forged.receipt");
    let original = std::fs::read_to_string(&receipt_a).unwrap();
    std::fs::write(
        &forged,
        original.replacen("\"verified\"", "\"rejected\"", 1),
    )
    .unwrap();
    let out = run(&a, &["receipt", "import", forged.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("signature does not verify"),
        "{}",
        text(&out)
    );
    let mut r: Receipt = serde_json::from_str(&original).unwrap();
    let impostor = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    r = Receipt::sign(r.receipt, &impostor).unwrap();
    std::fs::write(&forged, r.to_bytes().unwrap()).unwrap();
    let out = run(&a, &["receipt", "import", forged.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("signature does not verify"),
        "{}",
        text(&out)
    );
    std::fs::write(&forged, b"{not json").unwrap();
    let out = run(&a, &["receipt", "import", forged.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(status(&a), before);

    // The genuine one works, twice.
    for _ in 0..2 {
        let (code, v) = json_of(&a, &["receipt", "import", receipt_a.to_str().unwrap()]);
        assert_eq!(code, 0, "{v}");
        assert_eq!(v["status"]["acknowledged"], 2, "{v}");
    }
}

#[test]
fn sigkill_during_export_leaves_no_valid_looking_partial() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let station = station_for(&central, &tmp.path().join("station"), "VAN-KILL");
    enrol(&station, 30, 8);
    approve_all(&station);
    let key = tasjil_sync::StationPublic::load(&station.join("station.pub"))
        .unwrap()
        .verifying_key()
        .unwrap();

    // How long a whole export takes here, to spread the kills over it.
    let probe = tmp.path().join("probe");
    let started = Instant::now();
    export(&station, &probe);
    let full = started.elapsed();

    let rounds = 16;
    let (mut complete, mut none) = (0, 0);
    for round in 0..rounds {
        let usb = tmp.path().join(format!("usb-{round}"));
        std::fs::create_dir_all(&usb).unwrap();
        let mut child = std::process::Command::new(BIN)
            .env("TASJIL_BADGE", "sim")
            .args(["--data-dir", station.to_str().unwrap()])
            .args(["export", "--to", usb.to_str().unwrap(), "--pin-stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(PIN.as_bytes()).unwrap();
        }
        let at = full.mul_f64((round as f64 + 0.5) / rounds as f64 * 1.1);
        std::thread::sleep(at.min(Duration::from_secs(30)));
        let _ = child.kill();
        child.wait().unwrap();

        let bundles: Vec<PathBuf> = std::fs::read_dir(&usb)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "tasjil"))
            .collect();
        match bundles.as_slice() {
            [] => none += 1,
            [one] => {
                let mut r = BundleReader::open(one)
                    .unwrap_or_else(|e| panic!("round {round}: a partial bundle: {e}"));
                tasjil_sync::bundle::verify_bundle(&mut r, &key, &mut |_| {})
                    .unwrap_or_else(|e| panic!("round {round}: an invalid bundle: {e}"));
                complete += 1;
            }
            more => panic!("round {round}: {more:?}"),
        }
        // Whatever temporary file was left is named so that nothing mistakes it for a bundle.
        for e in std::fs::read_dir(&usb).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            assert!(
                name.ends_with(".tasjil") || (name.starts_with('.') && name.ends_with(".partial")),
                "round {round}: {name}"
            );
        }
    }
    eprintln!(
        "export kill test: {rounds} kills over a {:.0} ms export: {none} left no bundle, {complete} a complete valid one",
        full.as_secs_f64() * 1000.0
    );
    let (code, v) = json_of(&station, &["verify"]);
    assert_eq!(code, 0, "{v}");
}

/// Mount a small tmpfs at `dir` (needs root, as CI runs); `None` when this machine refuses.
fn small_mount(dir: &Path, options: &str) -> Option<Mounted> {
    std::fs::create_dir_all(dir).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs", dir.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| Mounted(dir.to_path_buf()))
}

struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_or_read_only_stick_gets_a_clear_message_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let station = station_for(&central, &tmp.path().join("station"), "VAN-FULL");
    enrol(&station, 6, 9);
    approve_all(&station);

    let full_dir = tmp.path().join("full");
    let Some(_full) = small_mount(&full_dir, "size=256k") else {
        eprintln!(
            "\n\n*** SKIPPED full/read-only stick test: this machine does not let the test mount a tmpfs (needs root) ***\n"
        );
        return;
    };
    let out = run_with_input(
        &station,
        &["export", "--to", full_dir.to_str().unwrap(), "--pin-stdin"],
        PIN,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("is full"), "{}", text(&out));
    assert_eq!(
        std::fs::read_dir(&full_dir).unwrap().count(),
        0,
        "the partial file was not removed"
    );

    let ro_dir = tmp.path().join("ro");
    let _ro = small_mount(&ro_dir, "size=64m,ro").expect("read-only tmpfs");
    let out = run_with_input(
        &station,
        &["export", "--to", ro_dir.to_str().unwrap(), "--pin-stdin"],
        PIN,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("read-only"), "{}", text(&out));

    // Nothing was lost or marked: a good stick still gets all six.
    let s = status(&station);
    assert_eq!(s["exported"], 0, "{s}");
    let bundle = export(&station, &tmp.path().join("good"));
    let (code, v) = import(&central, &bundle);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["stored"], 6);
}
