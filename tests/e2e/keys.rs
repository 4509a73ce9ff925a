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
