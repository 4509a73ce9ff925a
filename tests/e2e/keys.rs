//! Centre key rotation: `tasjil-central keys rotate`, then vans that take it at sync, from a USB
//! receipt or from a file; records sealed to the old key and to the new one both open at the
//! centre, and what the old key signed still verifies.

use serde_json::Value;

use crate::centre_load::{approve_and_export, Serve};
use crate::common::{enrol_in, json_of, run, station_for, text, Central};

fn ids_of(central: &Central, station: &str) -> Vec<String> {
    let (_, list) = central.json(&["list"]);
    list.as_array()
        .or_else(|| list["records"].as_array())
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .filter(|r| r["station"] == station)
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn opens(central: &Central, id: &str, out: &std::path::Path) -> bool {
    let out = central.run(&[
        "export-nist",
        id,
        "--out",
        out.to_str().unwrap(),
        "--reason",
        "key rotation check",
    ]);
    out.status.success() || panic!("export-nist {id}: {}", text(&out))
}

fn sync(station: &std::path::Path, url: &str) -> Value {
    let (code, v) = json_of(station, &["sync", "--central", url]);
    assert_eq!(code, 0, "sync: {v}");
    v
}

#[test]
fn a_rotated_centre_opens_old_and_new_records_and_vans_take_the_rotation_late() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let a = station_for(&central, &tmp.path().join("a"), "VAN-KA");
    let b = station_for(&central, &tmp.path().join("b"), "VAN-KB");
    let c = station_for(&central, &tmp.path().join("c"), "VAN-KC");
    let old_pub: Value =
        serde_json::from_slice(&std::fs::read(central.dir.join("centre.pub")).unwrap()).unwrap();

    // Before the rotation: A delivers two records and one is opened (logged, signed by the old
    // key); B and C enrol and stay away.
    let serve = Serve::start(&central);
    let url = format!("http://{}", serve.addr);
    enrol_in(&a, 2, 1);
    sync(&a, &url);
    drop(serve);
    let before = ids_of(&central, "VAN-KA");
    assert!(opens(&central, &before[0], &tmp.path().join("before.an2")));
    enrol_in(&b, 1, 2);
    enrol_in(&c, 1, 3);

    let (code, r) = central.json(&["keys", "rotate"]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["version"], 1, "{r}");
    let new_pub: Value =
        serde_json::from_slice(&std::fs::read(central.dir.join("centre.pub")).unwrap()).unwrap();
    assert_ne!(new_pub["ed25519"], old_pub["ed25519"]);
    assert_eq!(new_pub["previous_ed25519"][0], old_pub["ed25519"]);

    // A takes the rotation at its next sync; its next records are sealed to the new key and
    // their verdicts, signed by it, acknowledge them.
    let serve = Serve::start(&central);
    let url = format!("http://{}", serve.addr);
    let s = sync(&a, &url);
    assert_eq!(
        (
            s["centre_keys"].as_u64(),
            s["centre_keys_updated"].as_bool()
        ),
        (Some(1), Some(true)),
        "{s}"
    );
    enrol_in(&a, 2, 4);
    let s = sync(&a, &url);
    assert_eq!(s["sent"], 2, "{s}");
    assert_eq!(json_of(&a, &["status"]).1["acknowledged"], 4);
    let (_, keys) = json_of(&a, &["keys", "show"]);
    assert_eq!(keys["ed25519"], new_pub["ed25519"], "{keys}");

    // B missed it: it enrols once more with the old keys, then syncs: it takes the rotation
    // first, its records (sealed to the old key) are verified and acknowledged.
    enrol_in(&b, 1, 5);
    let s = sync(&b, &url);
    assert_eq!(s["centre_keys_updated"], true, "{s}");
    assert_eq!(s["sent"], 2, "{s}");
    assert_eq!(json_of(&b, &["status"]).1["acknowledged"], 2);
    drop(serve);

    // Every record opens: sealed before the rotation (A's first, B's), and after it (A's last).
    for (n, id) in ids_of(&central, "VAN-KA")
        .iter()
        .chain(&ids_of(&central, "VAN-KB"))
        .enumerate()
    {
        assert!(opens(&central, id, &tmp.path().join(format!("{n}.an2"))));
    }
    // The access log, signed by the old key and then by the new one, verifies.
    let (code, v) = central.json(&["access-log", "--verify"]);
    assert_eq!(code, 0, "{v}");

    // C, without network, takes the rotation from its stick's receipt.
    let bundle = approve_and_export(&c, &tmp.path().join("usb"));
    let (code, v) = central.json(&["import", &bundle]);
    assert_eq!(code, 0, "{v}");
    let out = run(&c, &["receipt", "import", &format!("{bundle}.receipt")]);
    assert!(out.status.success(), "receipt: {}", text(&out));
    assert_eq!(json_of(&c, &["keys", "show"]).1["version"], 1);
    assert_eq!(json_of(&c, &["status"]).1["acknowledged"], 1);
    assert_eq!(json_of(&c, &["verify"]).0, 0);
}

#[test]
fn a_van_takes_a_rotation_file_only_when_the_key_it_holds_signed_it() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let van = station_for(&central, &tmp.path().join("van"), "VAN-KF");
    for _ in 0..2 {
        let (code, r) = central.json(&["keys", "rotate"]);
        assert_eq!(code, 0, "{r}");
    }
    let file = tmp.path().join("rotations.json");
    let (code, v) = central.json(&["keys", "export", "--out", file.to_str().unwrap()]);
    assert_eq!((code, v["rotations"].as_u64()), (0, Some(2)), "{v}");

    // One changed recipient: the signature no longer holds; nothing is taken.
    let list: Vec<Value> = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let mut tampered = list.clone();
    tampered[0]["body"]["centre"]["age_recipients"] =
        serde_json::json!([list[1]["body"]["centre"]["age_recipients"][0]]);
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, serde_json::to_vec(&tampered).unwrap()).unwrap();
    let out = run(&van, &["keys", "import", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("not signed by the centre key"),
        "{}",
        text(&out)
    );
    assert_eq!(json_of(&van, &["keys", "show"]).1["version"], Value::Null);

    // The second alone cannot be taken before the first.
    let second = tmp.path().join("second.json");
    std::fs::write(&second, serde_json::to_vec(&list[1]).unwrap()).unwrap();
    let out = run(&van, &["keys", "import", second.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("needs 1 first"), "{}", text(&out));

    // Both, in order: taken; again: nothing to take.
    let (code, v) = json_of(&van, &["keys", "import", file.to_str().unwrap()]);
    assert_eq!(
        (code, v["taken"].as_u64(), v["version"].as_u64()),
        (0, Some(2), Some(2)),
        "{v}"
    );
    let (code, v) = json_of(&van, &["keys", "import", file.to_str().unwrap()]);
    assert_eq!((code, v["taken"].as_u64()), (0, Some(0)), "{v}");
    // Records made now are sealed to the newest key; the audit chain records the rotation.
    enrol_in(&van, 1, 1);
    assert_eq!(json_of(&van, &["verify"]).0, 0);
}

fn centre_pub(central: &Central) -> Value {
    serde_json::from_slice(&std::fs::read(central.dir.join("centre.pub")).unwrap()).unwrap()
}

/// The centre changes its TLS certificate: `keys announce-tls` while the old one stays in
/// service, a van takes the announcement at sync, `keys switch-tls` puts the new one in service
/// (the running server presents it at once, and after a restart), and that van still syncs. A van that missed the announcement is refused with the
/// pin named and told how to recover; after `tasjil keys import` it syncs again. A forged
/// announcement is never taken.
#[test]
fn the_centre_changes_its_tls_certificate_and_vans_that_heard_of_it_follow() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let a = station_for(&central, &tmp.path().join("a"), "VAN-TA");
    let b = station_for(&central, &tmp.path().join("b"), "VAN-TB");
    let original = std::fs::read_to_string(central.dir.join("centre.pub")).unwrap();
    let old_pin = centre_pub(&central)["tls_cert_sha256"]
        .as_str()
        .unwrap()
        .to_string();

    // Both vans sync over https with the certificate made at `init`.
    let serve = Serve::start_with(&central, &[]);
    let url = format!("https://{}", serve.addr);
    enrol_in(&a, 1, 1);
    enrol_in(&b, 1, 2);
    assert_eq!(sync(&a, &url)["sent"], 1);
    assert_eq!(sync(&b, &url)["sent"], 1);

    // The next certificate, made elsewhere: a key that is not its own is refused.
    let (cert, key) = tasjil_central::tls::self_signed().unwrap();
    let (_, other_key) = tasjil_central::tls::self_signed().unwrap();
    let new_pin = tasjil_sync::tls::fingerprint(&cert);
    let (cert_file, key_file, wrong_key) = (
        tmp.path().join("next-cert.der"),
        tmp.path().join("next-key.der"),
        tmp.path().join("wrong-key.der"),
    );
    std::fs::write(&cert_file, &cert).unwrap();
    std::fs::write(&key_file, &key).unwrap();
    std::fs::write(&wrong_key, &other_key).unwrap();
    let announce = |key: &std::path::Path| {
        central.json(&[
            "keys",
            "announce-tls",
            "--cert",
            cert_file.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ])
    };
    let (code, v) = announce(&wrong_key);
    assert_eq!(code, 1, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("cannot be served together"),
        "{v}"
    );
    assert_eq!(centre_pub(&central).get("version"), None, "nothing issued");

    let (code, v) = announce(&key_file);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (
            v["version"].as_u64(),
            v["current_sha256"].as_str(),
            v["next_sha256"][0].as_str()
        ),
        (Some(1), Some(old_pin.as_str()), Some(new_pin.as_str())),
        "{v}"
    );
    let announced = centre_pub(&central);
    assert_eq!(announced["tls_next_sha256"][0], new_pin.as_str());
    let original_v: Value = serde_json::from_str(&original).unwrap();
    assert_eq!(
        announced["ed25519"], original_v["ed25519"],
        "same signing key"
    );
    assert_eq!(announced["tls_cert_sha256"], old_pin.as_str());

    // The running server still presents the old certificate; A syncs and takes the announcement.
    enrol_in(&a, 1, 3);
    let s = sync(&a, &url);
    assert_eq!(
        (
            s["centre_keys"].as_u64(),
            s["centre_keys_updated"].as_bool()
        ),
        (Some(1), Some(true)),
        "{s}"
    );
    let (_, held) = json_of(&a, &["keys", "show"]);
    assert_eq!(held["tls_next_sha256"][0], new_pin.as_str(), "{held}");

    // Switch and restart: the new certificate is in service, the old pin is dropped.
    let (code, v) = central.json(&["keys", "switch-tls"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (v["version"].as_u64(), v["current_sha256"].as_str()),
        (Some(2), Some(new_pin.as_str())),
        "{v}"
    );
    let switched = centre_pub(&central);
    assert_eq!(switched["tls_cert_sha256"], new_pin.as_str());
    assert_eq!(switched.get("tls_next_sha256"), None, "{switched}");
    assert_eq!(
        std::fs::read(central.dir.join("tls-cert.der")).unwrap(),
        cert,
        "serve presents the new certificate"
    );
    assert!(!central.dir.join("tls-cert.next.der").exists());
    let (code, v) = central.json(&["keys", "switch-tls"]);
    assert_eq!(code, 1, "nothing left to switch to: {v}");

    // The running server presents the new certificate from its next connection: A reaches it
    // through the announced pin, then takes the switch.
    enrol_in(&a, 1, 4);
    let s = sync(&a, &url);
    assert_eq!(
        (s["sent"].as_u64(), s["centre_keys"].as_u64()),
        (Some(1), Some(2)),
        "{s}"
    );
    let (_, held) = json_of(&a, &["keys", "show"]);
    assert_eq!(held["tls_cert_sha256"], new_pin.as_str(), "{held}");
    assert_eq!(held.get("tls_next_sha256"), None, "old pin dropped: {held}");
    assert_eq!(json_of(&a, &["status"]).1["acknowledged"], 3);

    // After a restart too.
    drop(serve);
    let serve = Serve::start_with(&central, &[]);
    let url = format!("https://{}", serve.addr);
    enrol_in(&a, 1, 6);
    assert_eq!(sync(&a, &url)["sent"], 1);

    // B missed the announcement: it cannot tell the new certificate from an impostor's.
    enrol_in(&b, 1, 5);
    let (code, v) = json_of(&b, &["sync", "--central", &url]);
    assert_eq!(code, 1, "{v}");
    let error = v["error"].as_str().unwrap();
    for needed in [
        "does not pin",
        new_pin.as_str(),
        old_pin.as_str(),
        "tasjil-central keys export",
        "tasjil keys import",
    ] {
        assert!(error.contains(needed), "{needed:?} missing from: {error}");
    }
    assert_eq!(ids_of(&central, "VAN-TB").len(), 1, "nothing more from B");

    // A forged announcement (another key adds an impostor's pin) is not taken.
    let mut forged = tasjil_sync::CentrePublic::parse(&original).unwrap();
    forged.version = 1;
    forged.tls_next_sha256 = vec![new_pin.clone()];
    let stranger = tasjil_sync::CentreKeys::generate();
    let forged = tasjil_sync::rotation::KeyRotation::sign(forged, 1, &stranger.signing).unwrap();
    let forged_file = tmp.path().join("forged.json");
    std::fs::write(&forged_file, forged.to_bytes().unwrap()).unwrap();
    let out = run(&b, &["keys", "import", forged_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("not signed by the centre key"),
        "{}",
        text(&out)
    );

    // The way back: the rotations on a stick, imported; then B syncs over the new certificate.
    let file = tmp.path().join("rotations.json");
    let (code, v) = central.json(&["keys", "export", "--out", file.to_str().unwrap()]);
    assert_eq!((code, v["rotations"].as_u64()), (0, Some(2)), "{v}");
    let (code, v) = json_of(&b, &["keys", "import", file.to_str().unwrap()]);
    assert_eq!((code, v["version"].as_u64()), (0, Some(2)), "{v}");
    let s = sync(&b, &url);
    assert_eq!(s["sent"], 1, "{s}");
    assert_eq!(json_of(&b, &["status"]).1["acknowledged"], 2);
    assert_eq!(json_of(&b, &["verify"]).0, 0);
}
