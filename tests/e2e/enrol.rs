//! The happy path, the command-line contract, and bad input.

use serde_json::json;
use tasjil::enrolment::{simulate, CapturePolicy};
use tasjil::schema::Schema;
use tasjil_sync::{EnrolmentKind, Payload};

use crate::common::*;

#[test]
fn two_hundred_simulated_enrolments_all_verify() {
    let s = Setup::new();
    s.enrol(200, 7);
    let (code, v) = s.json(&["verify"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["records"], 200);
    assert_eq!(v["valid"], 200);
    assert_eq!(v["problems"], json!([]));

    let (code, status) = s.json(&["status"]);
    assert_eq!(code, 0);
    assert_eq!(status["records"], 200);
    assert_eq!(status["unsent"], 200);
    assert_eq!(status["acknowledged"], 0);

    let (code, list) = s.json(&["list"]);
    assert_eq!(code, 0);
    let records = list["records"].as_array().unwrap();
    assert_eq!(records.len(), 200);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["seq"], i as u64 + 1);
        assert_eq!(r["station"], "VAN-TEST");
        assert_eq!(r["status"], "committed");
        assert!(r.get("demographics").is_none() && r.get("family_name_latin").is_none());
    }
}

#[test]
fn no_demographics_or_face_bytes_in_plaintext_at_rest() {
    let s = Setup::new();
    let family = "Oufkirzadeh";
    let family_ar = "أوفقيرزاده";
    let overrides = s.tmp.path().join("who.json");
    std::fs::write(
        &overrides,
        json!({"family_name_latin": family, "family_name_ar": family_ar}).to_string(),
    )
    .unwrap();
    let out = s.tasjil(&[
        "enrol",
        "--simulate",
        "--count",
        "3",
        "--seed",
        "42",
        "--demographics",
        overrides.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));

    // The face kept for the first enrolment (the token image the station cut from the simulated
    // camera's photo; deterministic from the seed).
    let face = simulate::run(
        simulate::enrolment_seed(42, 0),
        EnrolmentKind::New,
        &Schema::default_cnie(),
        None,
        &CapturePolicy::default(),
        || 0,
    )
    .unwrap()
    .face
    .image
    .jpeg;
    let probe = &face[face.len() / 2..face.len() / 2 + 64];

    let files = files(&s.station);
    assert!(files.iter().any(|f| f.ends_with("station.db")));
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !contains(&bytes, family.as_bytes()),
            "{} holds the family name",
            f.display()
        );
        assert!(
            !contains(&bytes, family_ar.as_bytes()),
            "{} holds the Arabic family name",
            f.display()
        );
        assert!(
            !contains(&bytes, probe),
            "{} holds face image bytes",
            f.display()
        );
    }
    assert!(!contains(&out.stdout, family.as_bytes()) && !contains(&out.stderr, family.as_bytes()));
}

/// Only the centre can open a stored payload, and it gets back exactly what was captured.
#[test]
fn the_centre_opens_exactly_what_was_captured() {
    let s = Setup::new();
    s.enrol(2, 99);
    let store = tasjil::store::Store::open(&s.station.join("station.db")).unwrap();
    let rows = store.envelopes().unwrap();
    let sealed = store.payload(&rows[1].payload).unwrap().unwrap();
    let payload = Payload::open(&sealed, &s.centre.identity).unwrap();
    assert!(Payload::open(&sealed, &tasjil_sync::CentreKeys::generate().identity).is_err());

    let again = simulate::run(
        simulate::enrolment_seed(99, 1),
        EnrolmentKind::New,
        &Schema::default_cnie(),
        None,
        &CapturePolicy::default(),
        || 0,
    )
    .unwrap();
    assert_eq!(payload.enrolment_id, rows[1].id);
    assert_eq!(payload.demographics, again.demographics);
    assert_eq!(payload.face.bytes, again.face.image.jpeg);
    assert_eq!(payload.fingers.len() + payload.exceptions.len(), 10);
    for (got, want) in payload.fingers.iter().zip(&again.fingers) {
        assert_eq!(got.position, want.position.name());
        // Fingers are WSQ by default: lossy, so the print must come back within the codec's
        // measured fidelity on these prints (37–38 dB PSNR; see wsq/tests/nbis.rs).
        assert_eq!(got.image.format, "wsq");
        let decoded = tasjil_wsq::decode(&got.image.bytes).unwrap();
        assert_eq!(
            (decoded.width, decoded.height, decoded.ppi),
            (want.image.width, want.image.height, Some(want.image.ppi))
        );
        let psnr = psnr(&decoded.pixels, &want.image.pixels);
        assert!(psnr > 32.0, "{}: PSNR {psnr:.1} dB", got.position);
    }
    assert_eq!(payload.signature.image.bytes, again.signature.png);
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let se: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    10.0 * (255.0f64.powi(2) / (se / a.len() as f64).max(1e-9)).log10()
}

/// `[capture] finger_format = "png"` keeps prints lossless, pixel for pixel.
#[test]
fn png_finger_format_keeps_prints_exact() {
    let s = Setup::new();
    std::fs::write(
        s.station.join("config.toml"),
        "[capture]\nfinger_format = \"png\"\n",
    )
    .unwrap();
    s.enrol(1, 99);
    let store = tasjil::store::Store::open(&s.station.join("station.db")).unwrap();
    let rows = store.envelopes().unwrap();
    let sealed = store.payload(&rows[0].payload).unwrap().unwrap();
    let payload = Payload::open(&sealed, &s.centre.identity).unwrap();
    let again = simulate::run(
        simulate::enrolment_seed(99, 0),
        EnrolmentKind::New,
        &Schema::default_cnie(),
        None,
        &CapturePolicy::default(),
        || 0,
    )
    .unwrap();
    for (got, want) in payload.fingers.iter().zip(&again.fingers) {
        assert_eq!(got.image.format, "png");
        let decoded = tasjil_drivers::GreyImage::from_png(&got.image.bytes).unwrap();
        assert_eq!(decoded.pixels, want.image.pixels);
    }
}

#[test]
fn invalid_demographics_are_refused_and_nothing_is_stored() {
    let s = Setup::new();
    let bad = s.tmp.path().join("bad.json");
    std::fs::write(
        &bad,
        json!({"birth_date": "2023-02-30", "family_name_ar": "Latin"}).to_string(),
    )
    .unwrap();
    let out = s.tasjil(&[
        "enrol",
        "--simulate",
        "--count",
        "2",
        "--demographics",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("birth_date") && err.contains("family_name_ar"),
        "{err}"
    );
    assert_eq!(s.json(&["status"]).1["records"], 0);
}

#[test]
fn usage_errors_exit_2_and_missing_station_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(
        run(tmp.path(), &["enrol", "--count", "many"]).status.code(),
        Some(2)
    );
    assert_eq!(run(tmp.path(), &["frobnicate"]).status.code(), Some(2));
    let (code, devices) = json_of(tmp.path(), &["devices"]);
    assert_eq!(code, 0);
    // Real readers (pcscd with a virtual reader, on a test machine) are listed after these.
    let kinds: Vec<&str> = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["simulated"] == true)
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["camera", "fingerprint", "signature", "card"]);
    let (code, v) = json_of(&tmp.path().join("nothing"), &["verify"]);
    assert_eq!(code, 1);
    assert!(v["error"].as_str().unwrap().contains("tasjil init"), "{v}");
}

#[test]
fn init_refuses_to_overwrite_a_station() {
    let s = Setup::new();
    let centre_pub = s.tmp.path().join("centre.pub");
    let out = s.tasjil(&[
        "init",
        "--station-id",
        "OTHER",
        "--central-key",
        centre_pub.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"));
    let key = std::fs::metadata(s.station.join("station.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_second_writer_is_refused_while_one_enrols() {
    use std::io::BufRead;
    let s = Setup::new();
    let mut first = std::process::Command::new(BIN)
        .env("TASJIL_BADGE", "sim") // the simulated badge, even while the card-badge test has a card in the reader
        .args([
            "--data-dir",
            s.station.to_str().unwrap(),
            "enrol",
            "--simulate",
            "--count",
            "100000",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(first.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("committed "), "{line}");
    let second = s.tasjil(&["enrol", "--simulate", "--count", "1"]);
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another tasjil process"),
        "{}",
        text(&second)
    );
    // Reading while a writer runs is fine, and the killed run left a sound store.
    assert_eq!(s.json(&["verify"]).0, 0);
}

fn with_pin(s: &Setup, args: &[&str], pin: &str) -> std::process::Output {
    run_with_input(&s.station, args, &format!("{pin}\n"))
}

#[test]
fn supervisor_approves_with_badge_and_pin() {
    let s = Setup::new();
    s.enrol(5, 4);
    let (_, list) = s.json(&["list"]);
    let ids: Vec<String> = list["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();

    let wrong = with_pin(&s, &["approve", "--all", "--pin-stdin"], "000000");
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("wrong PIN"),
        "{}",
        text(&wrong)
    );
    assert_eq!(s.json(&["status"]).1["approved"], 0);

    let unknown = with_pin(
        &s,
        &["approve", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--pin-stdin"],
        "123456",
    );
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));
    assert_eq!(s.json(&["status"]).1["approved"], 0);

    let two = with_pin(
        &s,
        &["approve", &ids[0], &ids[3], "--pin-stdin", "--json"],
        "123456",
    );
    assert!(two.status.success(), "{}", text(&two));
    let v: serde_json::Value = serde_json::from_slice(&two.stdout).unwrap();
    assert_eq!(v["approved"], 2);
    let rest = with_pin(&s, &["approve", "--all", "--pin-stdin", "--json"], "123456");
    let v: serde_json::Value = serde_json::from_slice(&rest.stdout).unwrap();
    assert_eq!(v["approved"], 3);
    let (_, status) = s.json(&["status"]);
    assert_eq!(status["approved"], 5);
    let (_, list) = s.json(&["list"]);
    assert!(list["records"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["status"] == "approved"));
    // Both approvals are in the signed audit chain, which still verifies.
    assert_eq!(s.json(&["verify"]).0, 0);
    assert_eq!(
        run(&s.station, &["approve"]).status.code(),
        Some(2),
        "approve needs --all or ids"
    );
}

/// `check-finger` judges an image with the station's own checks: a clean simulated print passes,
/// a smudged one fails with advice, garbage is a clear error.
#[test]
fn check_finger_passes_clean_prints_and_explains_bad_ones() {
    use tasjil_drivers::sim::{Defect, SimScanner};
    use tasjil_drivers::{FingerPosition, FingerprintScanner};
    let tmp = tempfile::tempdir().unwrap();
    let clean = SimScanner::new(3)
        .capture(FingerPosition::RightIndex)
        .unwrap()
        .image
        .to_png()
        .unwrap();
    let smudged = SimScanner::new(3)
        .with_defect(FingerPosition::RightIndex, Defect::Smudged)
        .capture(FingerPosition::RightIndex)
        .unwrap()
        .image
        .to_png()
        .unwrap();
    std::fs::write(tmp.path().join("clean.png"), clean).unwrap();
    std::fs::write(tmp.path().join("smudged.png"), smudged).unwrap();
    std::fs::write(tmp.path().join("junk.png"), b"not a png").unwrap();

    let (code, v) = json_of(
        tmp.path(),
        &[
            "check-finger",
            tmp.path().join("clean.png").to_str().unwrap(),
        ],
    );
    assert_eq!((code, v["passed"].as_bool()), (0, Some(true)), "{v}");
    assert!(v["score"].as_u64().unwrap() >= 70);
    let (code, v) = json_of(
        tmp.path(),
        &[
            "check-finger",
            tmp.path().join("smudged.png").to_str().unwrap(),
        ],
    );
    assert_eq!((code, v["passed"].as_bool()), (1, Some(false)), "{v}");
    let failed: Vec<_> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .collect();
    assert!(
        !failed.is_empty()
            && failed
                .iter()
                .all(|c| !c["advice"].as_str().unwrap().is_empty())
    );
    let (code, v) = json_of(
        tmp.path(),
        &[
            "check-finger",
            tmp.path().join("junk.png").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1);
    assert!(
        v["error"].as_str().unwrap().contains("not a readable PNG"),
        "{v}"
    );
}

#[test]
fn capture_thresholds_come_from_the_configuration_file() {
    let s = Setup::new();
    std::fs::write(
        s.station.join("config.toml"),
        "[capture]\nfinger_min_quality = 101\n",
    )
    .unwrap();
    let out = s.tasjil(&["enrol", "--simulate", "--count", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("quality thresholds 0-100"),
        "{}",
        text(&out)
    );
    assert_eq!(s.json(&["status"]).1["records"], 0);

    // Nothing can pass 100: every print is kept below threshold after one try, and the envelope says so.
    std::fs::write(
        s.station.join("config.toml"),
        "[capture]\nfinger_min_quality = 100\nfinger_max_attempts = 1\n",
    )
    .unwrap();
    s.enrol(1, 9);
    let store = tasjil::store::Store::open(&s.station.join("station.db")).unwrap();
    let env = tasjil_sync::Envelope::from_bytes(&store.envelopes().unwrap()[0].envelope).unwrap();
    let flagged = &env.body().quality.below_threshold;
    assert!(flagged.len() >= 9, "{flagged:?}");
}
