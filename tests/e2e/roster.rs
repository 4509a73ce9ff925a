//! Trust comes from the centre's signed roster: a station holding one lets in only the badges it
//! lists, with the role each action needs; a revocation at the centre reaches the van by sync
//! and by USB receipt; a roster with a bad signature or an older version is refused.

use crate::centre::TestCentre;
use crate::common::{json_of, run, run_with_input, station_for, text, Central};

/// The simulated badge's key for `id` (what `tasjil badge status --json` would print for a card).
fn sim_key(id: &str) -> String {
    use tasjil::enrolment::OfficerBadge;
    tasjil::enrolment::badge::SimBadge::unlock(id, tasjil::enrolment::badge::SIM_PIN)
        .unwrap()
        .public_key_hex()
}

fn roster_add(central: &Central, id: &str, role: &str, station: &str) {
    let key = sim_key(id);
    let out = central.run(&[
        "roster",
        "add",
        "--id",
        id,
        "--name",
        id,
        "--role",
        role,
        "--badge",
        &key,
        "--stations",
        station,
    ]);
    assert!(out.status.success(), "roster add: {}", text(&out));
}

fn records(station: &std::path::Path) -> u64 {
    json_of(station, &["status"]).1["records"].as_u64().unwrap()
}

#[test]
fn only_the_badges_on_the_centres_roster_act_and_a_revocation_reaches_the_van() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let van = station_for(&central, &tmp.path().join("van"), "VAN-R1");
    let van2 = station_for(&central, &tmp.path().join("van2"), "VAN-R2");
    roster_add(&central, "OFF-A", "officer", "VAN-R1,VAN-R2");
    roster_add(&central, "SUP-1", "supervisor", "*");
    let file = tmp.path().join("roster.json");
    let out = central.run(&["roster", "export", "--out", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let v2 = std::fs::read(&file).unwrap();

    for dir in [&van, &van2] {
        let out = run(dir, &["roster", "import", file.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains("roster version 2 taken"),
            "{}",
            text(&out)
        );
    }
    // A tampered roster and an older one are refused; the station keeps version 2.
    let tampered = String::from_utf8(v2.clone())
        .unwrap()
        .replace("OFF-A", "OFF-X");
    std::fs::write(tmp.path().join("tampered.json"), tampered).unwrap();
    let out = run(
        &van,
        &[
            "roster",
            "import",
            tmp.path().join("tampered.json").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("signature does not verify"),
        "{}",
        text(&out)
    );
    roster_add(&central, "OFF-C", "officer", "VAN-R1");
    let out = central.run(&["roster", "export", "--out", file.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(run(&van, &["roster", "import", file.to_str().unwrap()])
        .status
        .success());
    std::fs::write(tmp.path().join("old.json"), &v2).unwrap();
    let out = run(
        &van,
        &[
            "roster",
            "import",
            tmp.path().join("old.json").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("older than the version 3"),
        "{}",
        text(&out)
    );

    // A on the roster enrols; B, not on it, is refused and nothing is written.
    crate::common::enrol_as(&van, "OFF-A", 2, 1);
    let out = run(
        &van,
        &["enrol", "--simulate", "--officer", "OFF-B", "--count", "1"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("OFF-B is not on the centre's roster"),
        "{}",
        text(&out)
    );
    assert_eq!(records(&van), 2);
    // A is an officer, not a supervisor: cannot approve. The supervisor can.
    let out = run_with_input(
        &van,
        &["approve", "--all", "--supervisor", "OFF-A", "--pin-stdin"],
        "123456\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("only a supervisor"), "{}", text(&out));
    let out = run_with_input(
        &van,
        &["approve", "--all", "--supervisor", "SUP-1", "--pin-stdin"],
        "123456\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    // The refusals are in the audit chain.
    let conn = rusqlite::Connection::open(van.join("station.db")).unwrap();
    let refused: i64 = conn
        .query_row(
            "SELECT count(*) FROM audit WHERE CAST(entry AS TEXT) LIKE '%\"badge-refused\"%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(refused, 2);
    drop(conn);

    // Revoke A at the centre; one sync and the van refuses A.
    let out = central.run(&[
        "roster",
        "revoke",
        "OFF-A",
        "--reason",
        "badge lost at the market",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let centre = TestCentre::start(&central.dir);
    let (code, summary) = json_of(&van, &["sync", "--central", &centre.url]);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["roster_updated"], true, "{summary}");
    assert_eq!(
        summary["acknowledged"], 2,
        "records A made before the revocation are verified: {summary}"
    );
    let out = run(
        &van,
        &["enrol", "--simulate", "--officer", "OFF-A", "--count", "1"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("revoked") && text(&out).contains("market"),
        "{}",
        text(&out)
    );
    assert_eq!(records(&van), 2);
    drop(centre);

    // The second van learns it from a USB receipt.
    crate::common::enrol_as(&van2, "OFF-A", 1, 7);
    let usb = tmp.path().join("usb");
    std::fs::create_dir_all(&usb).unwrap();
    let out = run_with_input(
        &van2,
        &["approve", "--all", "--supervisor", "SUP-1", "--pin-stdin"],
        "123456\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = run_with_input(
        &van2,
        &[
            "export",
            "--to",
            usb.to_str().unwrap(),
            "--supervisor",
            "SUP-1",
            "--pin-stdin",
        ],
        "123456\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    let bundle = crate::common::files(&usb)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "tasjil"))
        .unwrap();
    let out = central.run(&["import", bundle.to_str().unwrap()]);
    // The record A co-signed after its revocation is held, with the reason, not stored as verified.
    assert!(text(&out).contains("revoked"), "{}", text(&out));
    let receipt = bundle.with_extension("tasjil.receipt");
    let receipt = if receipt.exists() {
        receipt
    } else {
        crate::common::files(&usb)
            .into_iter()
            .find(|p| p.to_string_lossy().ends_with(".receipt"))
            .unwrap()
    };
    let out = run(&van2, &["receipt", "import", receipt.to_str().unwrap()]);
    assert!(text(&out).contains("roster: now version"), "{}", text(&out));
    let out = run(
        &van2,
        &["enrol", "--simulate", "--officer", "OFF-A", "--count", "1"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("revoked"), "{}", text(&out));
}

/// A real station starts with no roster and says so: it trusts no badge until the centre's comes.
#[test]
fn a_real_station_without_a_roster_trusts_no_badge() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let station = tmp.path().join("real");
    let out = run(
        &station,
        &[
            "init",
            "--station-id",
            "VAN-REAL",
            "--central-key",
            central.dir.join("centre.pub").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("no roster yet"), "{}", text(&out));
    let out = run(&station, &["roster", "show"]);
    assert!(text(&out).contains("trusts no badge"), "{}", text(&out));
}

/// A van whose roster is older than `[roster] warn_days` warns; past `block_days` it starts no
/// enrolment and says why, until a newer roster arrives. The van's clock is moved with libfaketime
/// (Debian `faketime`, installed by scripts/install-deps).
#[test]
fn a_van_whose_roster_is_too_old_warns_then_refuses_to_enrol() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let van = station_for(&central, &tmp.path().join("van"), "VAN-AGE");
    roster_add(&central, "OFF-A", "officer", "VAN-AGE");
    let file = tmp.path().join("roster.json");
    assert!(central
        .run(&["roster", "export", "--out", file.to_str().unwrap()])
        .status
        .success());
    assert!(run(&van, &["roster", "import", file.to_str().unwrap()])
        .status
        .success());
    let later = |offset: &str, args: &[&str]| {
        std::process::Command::new("faketime")
            .env("TASJIL_BADGE", "sim")
            .args([
                "-f",
                offset,
                crate::common::BIN,
                "--data-dir",
                van.to_str().unwrap(),
            ])
            .args(args)
            .output()
            .expect("faketime is required for this test: run scripts/install-deps")
    };
    let enrol = ["enrol", "--simulate", "--officer", "OFF-A", "--count", "1"];
    let out = later("+20d", &enrol);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("20 days old"), "{}", text(&out));
    let out = later("+46d", &enrol);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no new enrolment") && text(&out).contains("46 days old"),
        "{}",
        text(&out)
    );
    assert_eq!(records(&van), 1);
    let out = later("+46d", &["status"]);
    assert!(text(&out).contains("WARNING"), "{}", text(&out));
}
