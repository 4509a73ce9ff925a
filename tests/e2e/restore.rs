//! A van restored from a backup still delivers: `tasjil backup`, `tasjil restore` and the signed
//! restore link, through the real `tasjil-central serve` and `import` processes, by network sync
//! and by USB; and a van restored by hand learns it at its next sync.

use std::path::Path;

use serde_json::Value;

use crate::centre_load::{approve_and_export, Serve};
use crate::common::{enrol_in, json_of, station_for, text, Central};

fn sync(station: &Path, url: &str) -> Value {
    let (code, v) = json_of(station, &["sync", "--central", url]);
    assert_eq!(code, 0, "sync: {v}");
    v
}

fn records_of(central: &Central, station: &str) -> Vec<Value> {
    let (_, list) = central.json(&["list"]);
    list.as_array()
        .or_else(|| list["records"].as_array())
        .unwrap_or_else(|| panic!("no record list in {list}"))
        .iter()
        .filter(|r| r["station"] == station)
        .cloned()
        .collect()
}

fn backup(station: &Path, to: &Path) -> Value {
    let (code, v) = json_of(station, &["backup", "--to", to.to_str().unwrap()]);
    assert_eq!(code, 0, "backup: {v}");
    v
}

fn restore(station: &Path, from: &Path) -> Value {
    let (code, v) = json_of(
        station,
        &[
            "restore",
            from.to_str().unwrap(),
            "--reason",
            "disk replaced after a fall",
        ],
    );
    assert_eq!(code, 0, "restore: {v}");
    v
}

fn assert_clean(central: &Central, station: &Path, records: u64) {
    let (code, v) = central.json(&["verify"]);
    assert_eq!(code, 0, "centre verify: {v}");
    assert_eq!(v["records"].as_u64(), Some(records), "{v}");
    let (code, v) = json_of(station, &["verify"]);
    assert_eq!(code, 0, "station verify: {v}");
}

#[test]
fn a_van_restored_from_a_backup_delivers_its_new_records_by_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let station = station_for(&central, &tmp.path().join("van"), "VAN-RESTORE");
    let serve = Serve::start(&central);
    let url = format!("http://{}", serve.addr);

    enrol_in(&station, 3, 1);
    assert_eq!(sync(&station, &url)["acknowledged"], 3);
    let b = backup(&station, &tmp.path().join("stick/backup"));
    assert_eq!(
        (b["records"].as_u64(), b["head_seq"].as_u64()),
        (Some(3), Some(3))
    );
    // The backup holds the key with its mode: nothing readable by others.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(tmp.path().join("stick/backup/station.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "station.key in the backup is {mode:o}");

    // Five more reach the centre; then the disk is lost and the backup put back.
    enrol_in(&station, 5, 2);
    assert_eq!(sync(&station, &url)["sent"], 5);
    let r = restore(&station, &tmp.path().join("stick/backup"));
    assert_eq!(r["from_seq"], 3, "{r}");
    assert!(r["link_seq"].as_u64().unwrap() > 3 + 1_000_000, "{r}");
    let aside = r["replaced"].as_str().expect("the old store is kept aside");
    assert!(Path::new(aside).join("station.db").exists());
    assert_eq!(json_of(&station, &["verify"]).0, 0);

    // Five new records after the restore: none is a fork, all are verified.
    enrol_in(&station, 5, 3);
    let s = sync(&station, &url);
    assert_eq!(
        (s["sent"].as_u64(), s["restore_links_sent"].as_u64()),
        (Some(5), Some(1)),
        "{s}"
    );
    assert_eq!(s["rejected"].as_array().map(Vec::len), Some(0), "{s}");
    assert!(s["behind_centre"].is_null(), "{s}");
    let held = records_of(&central, "VAN-RESTORE");
    assert_eq!(held.len(), 13);
    assert!(held.iter().all(|r| r["status"] == "verified"), "{held:?}");
    assert_clean(&central, &station, 13);
    let (_, status) = json_of(&station, &["status"]);
    assert_eq!(status["rejected"], 0, "{status}");
    drop(serve);

    // The restore is in the audit chain; a link changed on disk is named by `verify`.
    let conn = rusqlite::Connection::open(station.join("station.db")).unwrap();
    let audited: i64 = conn
        .query_row(
            "SELECT count(*) FROM audit WHERE CAST(entry AS TEXT) LIKE '%\"restored\"%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audited, 1);
    conn.execute(
        "UPDATE restores SET link = CAST(replace(CAST(link AS TEXT), 'after a fall', 'after a flood') AS BLOB)",
        [],
    )
    .unwrap();
    drop(conn);
    let (code, v) = json_of(&station, &["verify"]);
    assert_eq!(code, 1, "{v}");
    assert!(v.to_string().contains("restore link at sequence"), "{v}");
}

#[test]
fn a_van_restored_from_a_backup_delivers_its_new_records_by_usb() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let station = station_for(&central, &tmp.path().join("van"), "VAN-USB-R");
    let import = |bundle: &str| {
        let (code, v) = central.json(&["import", bundle]);
        assert_eq!(code, 0, "import: {v}");
        v
    };

    enrol_in(&station, 2, 1);
    import(&approve_and_export(&station, &tmp.path().join("usb1")));
    backup(&station, &tmp.path().join("backup"));
    enrol_in(&station, 3, 2);
    let v = import(&approve_and_export(&station, &tmp.path().join("usb2")));
    assert_eq!(v["stored"], 3, "{v}");

    restore(&station, &tmp.path().join("backup"));
    enrol_in(&station, 4, 3);
    let bundle = approve_and_export(&station, &tmp.path().join("usb3"));
    let v = import(&bundle);
    // The two records the backup had not seen acknowledged come again (already there) and the
    // four new ones are stored.
    assert_eq!(v["stored"], 4, "{v}");
    assert_eq!(v["rejected"].as_array().map(Vec::len), Some(0), "{v}");
    assert_eq!(v["already"], 2, "{v}");
    let out = crate::common::run(
        &station,
        &["receipt", "import", &format!("{bundle}.receipt")],
    );
    assert!(out.status.success(), "receipt import: {}", text(&out));
    let held = records_of(&central, "VAN-USB-R");
    assert_eq!(held.len(), 9);
    assert!(held.iter().all(|r| r["status"] == "verified"), "{held:?}");
    assert_clean(&central, &station, 9);
}

#[test]
fn a_van_restored_by_hand_learns_it_at_sync_and_its_next_records_deliver() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let station = station_for(&central, &tmp.path().join("van"), "VAN-HAND");
    let serve = Serve::start(&central);
    let url = format!("http://{}", serve.addr);

    enrol_in(&station, 2, 1);
    sync(&station, &url);
    // A copy of the store taken with the station stopped, as the old procedure said.
    let copy = tmp.path().join("copy.db");
    std::fs::copy(station.join("station.db"), &copy).unwrap();
    assert!(
        !station.join("station.db-wal").exists() || {
            // Nothing is running: the WAL was checkpointed at close, or is empty.
            std::fs::metadata(station.join("station.db-wal"))
                .unwrap()
                .len()
                == 0
        }
    );
    enrol_in(&station, 3, 2);
    sync(&station, &url);
    std::fs::copy(&copy, station.join("station.db")).unwrap();
    let _ = std::fs::remove_file(station.join("station.db-wal"));
    let _ = std::fs::remove_file(station.join("station.db-shm"));

    // The next sync finds the centre ahead, says so, and signs a restore link.
    let s = sync(&station, &url);
    let why = s["behind_centre"].as_str().unwrap_or_else(|| panic!("{s}"));
    assert!(why.contains("without `tasjil restore`"), "{why}");
    assert_eq!(s["restore_links_sent"], 1, "{s}");
    enrol_in(&station, 2, 3);
    let s = sync(&station, &url);
    assert_eq!(s["sent"], 2, "{s}");
    assert_eq!(s["rejected"].as_array().map(Vec::len), Some(0), "{s}");
    assert_clean(&central, &station, 7);
    drop(serve);
}
