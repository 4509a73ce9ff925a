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
    roster_add_key(central, id, role, station, &sim_key(id));
}

fn roster_add_key(central: &Central, id: &str, role: &str, station: &str, key: &str) {
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
        key,
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

/// The same trust, with real badges: pcscd, vsmartcard's virtual reader and two virtual
/// OpenPGP cards. Badge A is on the roster as an officer, badge B is not: A enrols and cannot
/// approve, B is refused, and once A is revoked at the centre one sync (and, on a second van, one
/// USB receipt) makes the van refuse A's card.
#[test]
fn the_roster_decides_which_card_badge_acts_and_a_revocation_reaches_the_van() {
    const TEST: &str = "the_roster_decides_which_card_badge_acts_and_a_revocation_reaches_the_van";
    let Some(_stack) = tasjil_vcard::require_stack(TEST) else {
        return;
    };
    let Some(bin) = tasjil_vcard::card_binary(TEST) else {
        return;
    };
    let pin = format!("{}\n", tasjil_vcard::USER_PIN);
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let van = station_for(&central, &tmp.path().join("van"), "VAN-P1");
    let van2 = station_for(&central, &tmp.path().join("van2"), "VAN-P2");

    // A virtual card forgets everything when pulled out; personalised again it gets the same
    // key (its generator is seeded from its serial), so each insertion below personalises it
    // first, as central staff did before handing it out, and checks the key is the same.
    let insert = |serial: u32, id: &str| {
        let card = tasjil_vcard::VirtualCard::insert(&bin, serial);
        let out = run_with_input(
            &van,
            &[
                "badge",
                "personalise",
                "--officer-id",
                id,
                "--name",
                id,
                "--json",
            ],
            &format!("{}\n", tasjil_vcard::ADMIN_PIN),
        );
        assert!(out.status.success(), "personalise {id}: {}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (card, v["public_key"].as_str().unwrap().to_string())
    };
    let (serial_a, serial_b) = (0x7A51_00A1, 0x7A51_00B2);
    let (card, key_a) = insert(serial_a, "OFF-PA");
    drop(card);
    let (card, key_b) = insert(serial_b, "OFF-PB");
    drop(card);
    assert_ne!(key_a, key_b, "two cards, two keys");

    roster_add_key(&central, "OFF-PA", "officer", "VAN-P1,VAN-P2", &key_a);
    roster_add(&central, "SUP-1", "supervisor", "*");
    let file = tmp.path().join("roster.json");
    assert!(central
        .run(&["roster", "export", "--out", file.to_str().unwrap()])
        .status
        .success());
    for dir in [&van, &van2] {
        let out = run(dir, &["roster", "import", file.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let enrol_with_card = |dir: &std::path::Path| {
        run_with_input(
            dir,
            &[
                "enrol",
                "--simulate",
                "--badge",
                "pcsc",
                "--pin-stdin",
                "--count",
                "1",
            ],
            &pin,
        )
    };

    // Card A: enrols at both vans, cannot approve.
    {
        let (_a, key) = insert(serial_a, "OFF-PA");
        assert_eq!(key, key_a);
        for dir in [&van, &van2] {
            let out = enrol_with_card(dir);
            assert!(out.status.success(), "A enrols: {}", text(&out));
        }
        let out = run_with_input(
            &van,
            &["approve", "--all", "--badge", "pcsc", "--pin-stdin"],
            &pin,
        );
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains("only a supervisor"), "{}", text(&out));
    }
    // Card B, not on the roster: refused, nothing written.
    {
        let (_b, key) = insert(serial_b, "OFF-PB");
        assert_eq!(key, key_b);
        let out = enrol_with_card(&van);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            text(&out).contains("OFF-PB is not on the centre's roster"),
            "{}",
            text(&out)
        );
    }
    assert_eq!(records(&van), 1);

    // Revoke A; one sync and the van refuses A's card.
    let out = central.run(&["roster", "revoke", "OFF-PA", "--reason", "card lost"]);
    assert!(out.status.success(), "{}", text(&out));
    let centre = TestCentre::start(&central.dir);
    let (code, summary) = json_of(&van, &["sync", "--central", &centre.url]);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["roster_updated"], true, "{summary}");
    drop(centre);
    let (_a, key) = insert(serial_a, "OFF-PA");
    assert_eq!(key, key_a);
    let out = enrol_with_card(&van);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("revoked") && text(&out).contains("card lost"),
        "{}",
        text(&out)
    );
    assert_eq!(records(&van), 1);

    // The second van: its bundle goes to the centre, the receipt brings the new roster back.
    let usb = tmp.path().join("usb");
    let bundle = crate::centre_load::approve_and_export_as(&van2, &usb, "SUP-1");
    let out = central.run(&["import", &bundle]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&van2, &["receipt", "import", &format!("{bundle}.receipt")]);
    assert!(text(&out).contains("roster: now version"), "{}", text(&out));
    let out = enrol_with_card(&van2);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("revoked"), "{}", text(&out));
    assert_eq!(records(&van2), 1);
}

/// A bundle from a real (not training) station, built by hand as a stolen station key would:
/// countersigned by a badge the roster lists only as an officer, the centre refuses it whole
/// (`countersigner`); countersigned by the supervisor, the record co-signed by a badge not on the
/// roster is held with that reason, never verified.
#[test]
fn the_centre_refuses_a_bundle_countersigned_by_a_non_supervisor_and_holds_unlisted_badges() {
    use tasjil_sync::bundle::{
        write_bundle, BundleHeader, Countersigner, Manifest, Part, PartKind, BUNDLE_FORMAT,
    };
    use tasjil_sync::record::{
        CaptureTimes, CoSignature, EnrolmentKind, Envelope, EnvelopeBody, PayloadRef,
        QualitySummary, ENVELOPE_VERSION, GENESIS,
    };
    use tasjil_sync::{sha256_hex, StationKey, StationPublic};

    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let station = StationKey::generate();
    let public = tmp.path().join("station.pub");
    std::fs::write(
        &public,
        serde_json::to_string(&StationPublic::new("VAN-REAL", &station)).unwrap(),
    )
    .unwrap();
    let out = central.run(&[
        "station",
        "add",
        "--id",
        "VAN-REAL",
        "--key",
        public.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let (officer, supervisor, stranger) = (
        StationKey::generate(),
        StationKey::generate(),
        StationKey::generate(),
    );
    roster_add_key(
        &central,
        "OFF-1",
        "officer",
        "VAN-REAL",
        &officer.public_hex(),
    );
    roster_add_key(
        &central,
        "SUP-2",
        "supervisor",
        "*",
        &supervisor.public_hex(),
    );
    let (_, roster) = central.json(&["roster", "list"]);
    let version = roster["version"]
        .as_u64()
        .unwrap_or_else(|| panic!("{roster}"));

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let sealed: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
    let envelope = |cosigner: &StationKey, who: &str| {
        let body = EnvelopeBody {
            v: ENVELOPE_VERSION,
            id: ulid::Ulid::new().to_string(),
            kind: EnrolmentKind::New,
            station: "VAN-REAL".into(),
            officer: who.into(),
            seq: 1,
            prev: GENESIS.into(),
            demographics_schema: "cnie-v1".into(),
            captured: CaptureTimes {
                started_ms: now - 60_000,
                face_ms: now - 50_000,
                fingers_ms: now - 40_000,
                signature_ms: now - 30_000,
                finished_ms: now - 20_000,
            },
            quality: QualitySummary {
                face: 80,
                face_attempts: 1,
                fingers: vec![],
                finger_exceptions: vec![],
                below_threshold: vec![],
            },
            payload: PayloadRef {
                sha256: sha256_hex(&sealed),
                len: sealed.len() as u64,
            },
            simulation: false,
            roster: Some(version),
        };
        let env = Envelope::new(body).unwrap();
        let sig = cosigner.sign(&env.officer_message().unwrap());
        env.with_officer_signature(CoSignature {
            key: cosigner.public_hex(),
            sig: hex::encode(sig.to_bytes()),
        })
        .sign(&station)
        .unwrap()
        .to_bytes()
        .unwrap()
    };
    let bundle = |name: &str, env: Vec<u8>, countersigner: &StationKey, who: &str| {
        let id = serde_json::from_slice::<serde_json::Value>(&env).unwrap()["body"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let manifest = Manifest {
            format: BUNDLE_FORMAT.into(),
            bundle_id: ulid::Ulid::new().to_string(),
            station: "VAN-REAL".into(),
            created_ms: now,
            first_seq: 1,
            last_seq: 1,
            supervisor: Countersigner {
                id: who.into(),
                key: countersigner.public_hex(),
            },
            parts: vec![
                Part {
                    kind: PartKind::Envelope,
                    name: id,
                    len: env.len() as u64,
                    sha256: sha256_hex(&env),
                },
                Part {
                    kind: PartKind::Payload,
                    name: sha256_hex(&sealed),
                    len: sealed.len() as u64,
                    sha256: sha256_hex(&sealed),
                },
            ],
        };
        let message = manifest.signing_message().unwrap();
        let header = BundleHeader {
            manifest,
            station_signature: hex::encode(station.sign(&message).to_bytes()),
            supervisor_signature: hex::encode(countersigner.sign(&message).to_bytes()),
        };
        let path = tmp.path().join(name);
        let mut file = std::fs::File::create(&path).unwrap();
        write_bundle(
            &mut file,
            &header,
            &mut |part: &Part| {
                Ok(if part.kind == PartKind::Envelope {
                    env.clone()
                } else {
                    sealed.clone()
                })
            },
            &mut |_| {},
        )
        .unwrap();
        path.to_str().unwrap().to_string()
    };

    // Countersigned by an officer: refused whole, nothing stored.
    let by_officer = bundle("a.tasjil", envelope(&officer, "OFF-1"), &officer, "OFF-1");
    let (code, v) = central.json(&["import", &by_officer]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["check"], "countersigner", "{v}");
    assert_eq!(central.json(&["stats"]).1["records"], 0);

    // Countersigned by the supervisor, co-signed by a badge the roster does not list: held.
    let unlisted = bundle(
        "b.tasjil",
        envelope(&stranger, "OFF-9"),
        &supervisor,
        "SUP-2",
    );
    let (code, v) = central.json(&["import", &unlisted]);
    let shown = v.to_string();
    assert!(
        shown.contains("held") && shown.contains("OFF-9"),
        "{code} {v}"
    );
    let (_, list) = central.json(&["list"]);
    let rows = list
        .as_array()
        .or_else(|| list["records"].as_array())
        .unwrap();
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(rows[0]["status"], "held", "{list}");
}

/// A badge listed for a station group works on the group's stations only; putting a van in the
/// group issues a roster version that lets the badge in there too.
#[test]
fn a_badge_for_a_station_group_works_on_the_group_s_vans() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let north = station_for(&central, &tmp.path().join("n"), "VAN-N1");
    let south = station_for(&central, &tmp.path().join("s"), "VAN-S1");
    let out = central.run(&[
        "station",
        "group",
        "add",
        "--group",
        "NORTH",
        "--station",
        "VAN-N1",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = central.run(&[
        "station",
        "group",
        "add",
        "--group",
        "NORTH",
        "--station",
        "VAN-XX",
    ]);
    assert_eq!(out.status.code(), Some(1), "an unknown van: {}", text(&out));
    roster_add(&central, "OFF-G", "officer", "@NORTH");
    let take_roster = |dir: &std::path::Path| {
        let file = tmp.path().join("roster.json");
        assert!(central
            .run(&["roster", "export", "--out", file.to_str().unwrap()])
            .status
            .success());
        let out = run(dir, &["roster", "import", file.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
    };
    take_roster(&north);
    take_roster(&south);
    crate::common::enrol_as(&north, "OFF-G", 1, 1);
    let out = run(
        &south,
        &["enrol", "--simulate", "--officer", "OFF-G", "--count", "1"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("VAN-S1"), "{}", text(&out));
    assert_eq!(records(&south), 0);

    let (code, v) = central.json(&[
        "station",
        "group",
        "add",
        "--group",
        "NORTH",
        "--station",
        "VAN-S1",
    ]);
    assert_eq!(code, 0, "{v}");
    assert!(v["roster"].as_u64().is_some(), "a new roster version: {v}");
    take_roster(&south);
    crate::common::enrol_as(&south, "OFF-G", 1, 2);
    let (_, groups) = central.json(&["station", "group", "list"]);
    assert_eq!(
        groups["NORTH"],
        serde_json::json!(["VAN-N1", "VAN-S1"]),
        "{groups}"
    );
}

/// `tasjil export` alone (the records were approved before) with the simulated badge of
/// `supervisor`; the bundle's path.
fn export_as(station: &std::path::Path, usb: &std::path::Path, supervisor: &str) -> String {
    std::fs::create_dir_all(usb).unwrap();
    let out = run_with_input(
        station,
        &[
            "export",
            "--to",
            usb.to_str().unwrap(),
            "--supervisor",
            supervisor,
            "--pin-stdin",
            "--json",
        ],
        "123456\n",
    );
    assert!(out.status.success(), "export: {}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["file"].as_str().unwrap().to_string()
}

/// Training vans (`--simulation`, registered as such) keep their simulated badges where the
/// roster has no part — the demonstration flow — but once the roster lists staff for a van, or
/// the countersigning badge is one the roster knows (a revoked one above all), the centre judges
/// the bundle's countersignature by the roster as it does for a real station.
#[test]
fn a_training_van_s_bundle_follows_the_roster_where_the_roster_has_a_part() {
    use crate::centre_load::approve_and_export_as;
    use crate::common::enrol_in;
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let demo = station_for(&central, &tmp.path().join("demo"), "VAN-TR-DEMO");
    let school = station_for(&central, &tmp.path().join("school"), "VAN-TR-SCHOOL");
    // A supervisor for every station, an officer listed for the school van, and a supervisor's
    // badge revoked after it was lost.
    roster_add(&central, "SUP-ALL", "supervisor", "*");
    roster_add(&central, "OFF-T", "officer", "VAN-TR-SCHOOL");
    roster_add(&central, "SUP-GONE", "supervisor", "VAN-ELSEWHERE");
    let out = central.run(&["roster", "revoke", "SUP-GONE", "--reason", "badge lost"]);
    assert!(out.status.success(), "{}", text(&out));
    let import = |bundle: &str| central.json(&["import", bundle]);

    // The demonstration van: the roster has no part in it; an unlisted simulated badge still
    // countersigns (a supervisor for `*` alone does not change that).
    enrol_in(&demo, 1, 1);
    let bundle = approve_and_export_as(&demo, &tmp.path().join("usb1"), "SUP-SIM-1");
    let (code, v) = import(&bundle);
    assert_eq!((code, v["verified"].as_u64()), (0, Some(1)), "{v}");

    // ... but never with a badge the centre revoked, whatever van it turns up on.
    enrol_in(&demo, 1, 2);
    let bundle = approve_and_export_as(&demo, &tmp.path().join("usb2"), "SUP-GONE");
    let (code, v) = import(&bundle);
    assert_eq!(
        (code, v["check"].as_str()),
        (1, Some("countersigner")),
        "{v}"
    );
    let error = v["reason"].as_str().unwrap();
    assert!(
        error.contains("revoked") && error.contains("training station VAN-TR-DEMO"),
        "{v}"
    );

    // The school van: the roster lists staff for it, so an unlisted badge is refused, and so
    // is a listed officer, who is no supervisor; nothing is stored.
    enrol_in(&school, 1, 3);
    let bundle = approve_and_export_as(&school, &tmp.path().join("usb3"), "SUP-SIM-1");
    let (code, v) = import(&bundle);
    assert_eq!(
        (code, v["check"].as_str()),
        (1, Some("countersigner")),
        "{v}"
    );
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("the roster lists staff for station VAN-TR-SCHOOL"),
        "{v}"
    );
    let bundle = export_as(&school, &tmp.path().join("usb4"), "OFF-T");
    let (code, v) = import(&bundle);
    assert_eq!(
        (code, v["check"].as_str()),
        (1, Some("countersigner")),
        "{v}"
    );
    let (_, list) = central.json(&["list"]);
    let rows = list
        .as_array()
        .or_else(|| list["records"].as_array())
        .unwrap();
    assert!(
        rows.iter().all(|r| r["station"] != "VAN-TR-SCHOOL"),
        "{list}"
    );

    // Countersigned by the rostered supervisor: taken, and the receipt reaches the van.
    let bundle = export_as(&school, &tmp.path().join("usb5"), "SUP-ALL");
    let (code, v) = import(&bundle);
    assert_eq!((code, v["verified"].as_u64()), (0, Some(1)), "{v}");
    let out = run(
        &school,
        &["receipt", "import", &format!("{bundle}.receipt")],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(json_of(&school, &["status"]).1["acknowledged"], 1);
}
