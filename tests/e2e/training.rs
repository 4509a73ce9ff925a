//! Simulation is never a way in: simulated devices and the simulated badge exist only on a
//! station initialised with `--simulation`, and the centre takes records made that way only from
//! a station it registered as a training station.

use crate::centre::TestCentre;
use crate::common::{json_of, run, run_with_input, text, Central};

/// A real (non-training) station refuses every way of asking for a simulation, and writes
/// nothing.
#[test]
fn a_real_station_refuses_simulated_devices_and_badges_and_writes_nothing() {
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
    let audit_rows = || {
        let conn = rusqlite::Connection::open(station.join("station.db")).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
            .unwrap();
        n
    };
    let before = audit_rows();

    let out = run(&station, &["enrol", "--simulate", "--count", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("not initialised as a training station"),
        "{}",
        text(&out)
    );

    // --badge sim, and TASJIL_BADGE=sim (run_with_input sets it), for approval and export.
    let out = run_with_input(
        &station,
        &["approve", "--all", "--pin-stdin", "--badge", "sim"],
        "123456\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("simulated badge"), "{}", text(&out));
    let usb = tmp.path().join("usb");
    std::fs::create_dir_all(&usb).unwrap();
    let out = run_with_input(
        &station,
        &["export", "--to", usb.to_str().unwrap(), "--pin-stdin"],
        "123456\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("TASJIL_BADGE=sim"), "{}", text(&out));

    // A simulated device in the configuration.
    std::fs::write(station.join("config.toml"), "[devices]\ncamera = \"sim\"\n").unwrap();
    let out = run(&station, &["kiosk", "--exit-after", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("camera = \"sim\" is refused"),
        "{}",
        text(&out)
    );

    assert_eq!(audit_rows(), before, "nothing was written");
    assert_eq!(json_of(&station, &["status"]).1["records"], 0);
    assert!(std::fs::read_dir(&usb).unwrap().next().is_none());

    // The centre registers a real station only as one.
    let out = central.run(&[
        "station",
        "add",
        "--id",
        "VAN-REAL",
        "--key",
        station.join("station.pub").to_str().unwrap(),
        "--simulation",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("not initialised as a training station"),
        "{}",
        text(&out)
    );
}

/// The centre's side: a training station's records are refused unless it was registered as one,
/// and registering it needs `--simulation` on purpose.
#[test]
fn the_centre_takes_training_records_only_from_a_training_station() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let station = tmp.path().join("training");
    crate::common::init_station(&station, "VAN-TRAIN", &central.dir.join("centre.pub"));
    let public = station.join("station.pub");
    let out = central.run(&[
        "station",
        "add",
        "--id",
        "VAN-TRAIN",
        "--key",
        public.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("register it with --simulation"),
        "{}",
        text(&out)
    );

    // Registered as a real station behind the operator's back (in the store directly): every
    // record is refused with the reason, and reaches the van as a rejection.
    crate::common::enrol_in(&station, 2, 5);
    let centre = TestCentre::start(&tmp.path().join("other-centre"));
    let mut as_real = tasjil_sync::StationPublic::load(&public).unwrap();
    as_real.simulation = false;
    centre.store.add_station(&as_real, 0).unwrap();
    let (code, v) = json_of(&station, &["sync", "--central", &centre.url]);
    assert_eq!(code, 1, "refusals are a problem the command names: {v}");
    let reasons = v["rejected"].to_string();
    assert!(reasons.contains("not registered as one"), "{v}");
    assert_eq!(centre.store.stats().unwrap().records, 0);
    assert_eq!(json_of(&station, &["status"]).1["rejected"], 2);
}
