//! Station ↔ centre over real HTTP on loopback.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tasjil_sync::protocol::{
    request_message, StatusRequest, CHALLENGE_NONCE, HEADER_BODY_SHA256, HEADER_NONCE,
    HEADER_SIGNATURE, HEADER_STATION,
};

use crate::centre::TestCentre;
use crate::common::*;

#[test]
fn a_hundred_records_reach_the_centre_once_and_are_acknowledged() {
    let s = Setup::new();
    let centre = TestCentre::start(&s.tmp.path().join("centre"));
    centre.register(&s.station);
    s.enrol(100, 11);

    let (code, first) = s.json(&["sync", "--central", &centre.url]);
    assert_eq!(code, 0, "{first}");
    assert_eq!(first["sent"], 100);
    assert_eq!(first["acknowledged"], 100);
    assert_eq!(first["blobs_uploaded"], 100);
    assert!(first["payload_bytes_sent"].as_u64().unwrap() > 100 * 10_000);

    let records = centre.store.list().unwrap();
    assert_eq!(records.len(), 100);
    assert!(records.iter().all(|r| r.status == "verified"));
    let report = centre.store.verify_all().unwrap();
    assert!(report.ok && report.valid == 100, "{report:?}");

    let (code, second) = s.json(&["sync", "--central", &centre.url]);
    assert_eq!(code, 0);
    assert_eq!(second["records"], 0, "{second}");
    assert_eq!(second["payload_bytes_sent"], 0);

    let (_, status) = s.json(&["status"]);
    assert_eq!(status["acknowledged"], 100);
    assert_eq!(status["unsent"], 0);
    assert!(status["centres"][0]["last_sync_ms"].as_i64().unwrap() > 0);
    // The sync is in the audit chain, which still verifies.
    assert_eq!(s.json(&["verify"]).0, 0);
}

#[test]
fn an_unregistered_station_is_refused_and_loses_nothing() {
    let s = Setup::new();
    let centre = TestCentre::start(&s.tmp.path().join("centre"));
    s.enrol(2, 1);
    let (code, v) = s.json(&["sync", "--central", &centre.url]);
    assert_eq!(code, 1);
    assert!(
        v["error"].as_str().unwrap().contains("not registered"),
        "{v}"
    );
    assert_eq!(centre.store.list().unwrap().len(), 0);
    let (_, status) = s.json(&["status"]);
    assert_eq!(
        (status["records"].clone(), status["unsent"].clone()),
        (Value::from(2), Value::from(2))
    );
}

#[test]
fn a_tampered_record_is_rejected_with_its_reason_and_shown_at_the_station() {
    let s = Setup::new();
    let centre = TestCentre::start(&s.tmp.path().join("centre"));
    centre.register(&s.station);
    s.enrol(3, 5);
    // Damage the station signature of record 3 (a valid-looking hex change).
    let conn = rusqlite::Connection::open(s.station.join("station.db")).unwrap();
    let env: Vec<u8> = conn
        .query_row("SELECT envelope FROM envelopes WHERE seq = 3", [], |r| {
            r.get(0)
        })
        .unwrap();
    let text = String::from_utf8(env).unwrap();
    let at = text.find("\"station_sig\":\"").unwrap() + 20;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    conn.execute("UPDATE envelopes SET envelope = ?1 WHERE seq = 3", [bytes])
        .unwrap();
    drop(conn);

    let (code, v) = s.json(&["sync", "--central", &centre.url]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["acknowledged"], 2);
    let rejected = v["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1);
    assert!(
        rejected[0]["reason"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{v}"
    );
    assert_eq!(centre.store.list().unwrap().len(), 2);
    let (_, status) = s.json(&["status"]);
    assert_eq!(status["rejected"], 1);
    assert_eq!(status["acknowledged"], 2);
}

/// Hand-made requests: a replayed request and a forged signature are refused.
#[test]
fn replayed_and_forged_requests_are_refused() {
    let s = Setup::new();
    let centre = TestCentre::start(&s.tmp.path().join("centre"));
    centre.register(&s.station);
    let key = tasjil_sync::StationKey::load(&s.station.join("station.key")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _ = tasjil_sync::tls::provider()
        .as_ref()
        .clone()
        .install_default();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let ask = r#"{"station":"VAN-TEST"}"#;
        let challenge_sig = hex::encode(
            key.sign(&request_message(
                "POST",
                "/v1/challenge",
                "VAN-TEST",
                CHALLENGE_NONCE,
                ask.as_bytes(),
            ))
            .to_bytes(),
        );
        let challenge = || async {
            let r = http
                .post(format!("{}/v1/challenge", centre.url))
                .header(HEADER_STATION, "VAN-TEST")
                .header(HEADER_BODY_SHA256, tasjil_sync::sha256_hex(ask.as_bytes()))
                .header(HEADER_SIGNATURE, &challenge_sig)
                .body(ask)
                .send()
                .await
                .unwrap();
            let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            v["nonce"].as_str().unwrap().to_string()
        };
        // An unsigned challenge, or one signed by another key, mints nothing.
        let unsigned = http
            .post(format!("{}/v1/challenge", centre.url))
            .body(ask)
            .send()
            .await
            .unwrap();
        assert_eq!(unsigned.status().as_u16(), 401);
        let stranger = tasjil_sync::StationKey::generate();
        let forged_ask = http
            .post(format!("{}/v1/challenge", centre.url))
            .header(HEADER_STATION, "VAN-TEST")
            .header(HEADER_BODY_SHA256, tasjil_sync::sha256_hex(ask.as_bytes()))
            .header(
                HEADER_SIGNATURE,
                hex::encode(
                    stranger
                        .sign(&request_message(
                            "POST",
                            "/v1/challenge",
                            "VAN-TEST",
                            CHALLENGE_NONCE,
                            ask.as_bytes(),
                        ))
                        .to_bytes(),
                ),
            )
            .body(ask)
            .send()
            .await
            .unwrap();
        assert_eq!(forged_ask.status().as_u16(), 401);
        let body = serde_json::to_vec(&StatusRequest { ids: vec![] }).unwrap();
        let send = |nonce: String, sig: String| {
            let http = http.clone();
            let body = body.clone();
            let url = format!("{}/v1/status", centre.url);
            async move {
                let r = http
                    .post(url)
                    .header(HEADER_STATION, "VAN-TEST")
                    .header(HEADER_NONCE, nonce)
                    .header(HEADER_SIGNATURE, sig)
                    .header(HEADER_BODY_SHA256, tasjil_sync::sha256_hex(&body))
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let v: Value =
                    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null);
                (status, v)
            }
        };
        let nonce = challenge().await;
        let sig = hex::encode(
            key.sign(&request_message(
                "POST",
                "/v1/status",
                "VAN-TEST",
                &nonce,
                &body,
            ))
            .to_bytes(),
        );
        let (ok, _) = send(nonce.clone(), sig.clone()).await;
        assert_eq!(ok, 200);
        let (replayed, v) = send(nonce, sig).await;
        assert_eq!(
            (replayed, v["code"].as_str()),
            (401, Some("bad_nonce")),
            "{v}"
        );

        let nonce = challenge().await;
        let other = tasjil_sync::StationKey::generate();
        let forged = hex::encode(
            other
                .sign(&request_message(
                    "POST",
                    "/v1/status",
                    "VAN-TEST",
                    &nonce,
                    &body,
                ))
                .to_bytes(),
        );
        let (refused, v) = send(nonce, forged).await;
        assert_eq!(
            (refused, v["code"].as_str()),
            (401, Some("bad_signature")),
            "{v}"
        );

        // A signature over another body does not carry over.
        let nonce = challenge().await;
        let sig = hex::encode(
            key.sign(&request_message(
                "POST",
                "/v1/status",
                "VAN-TEST",
                &nonce,
                b"{}",
            ))
            .to_bytes(),
        );
        let (refused, _) = send(nonce, sig).await;
        assert_eq!(refused, 401);
    });
}

#[test]
fn sync_watch_syncs_within_seconds_of_the_centre_starting() {
    let s = Setup::new();
    s.enrol(5, 8);
    // A port with nothing listening yet.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}");
    let mut watch = Command::new(BIN)
        .env("TASJIL_BADGE", "sim") // the simulated badge, even while the card-badge test has a card in the reader
        .args([
            "--data-dir",
            s.station.to_str().unwrap(),
            "sync",
            "--watch",
            "--central",
            &url,
            "--interval",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let centre = TestCentre::start_on(&s.tmp.path().join("centre"), addr);
    centre.register(&s.station);
    let started = Instant::now();
    let mut acknowledged = Value::Null;
    while started.elapsed() < Duration::from_secs(30) {
        acknowledged = s.json(&["status"]).1["acknowledged"].clone();
        if acknowledged == 5 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = started.elapsed();
    watch.kill().unwrap();
    watch.wait().unwrap();
    assert_eq!(
        acknowledged, 5,
        "watch did not sync after the centre came up"
    );
    eprintln!(
        "sync --watch: acknowledged {:.1} s after the centre started",
        took.as_secs_f64()
    );
}

/// Freshness comes from the centre's nonces, never from the van's clock: a station whose clock is
/// three days behind (or ahead) still syncs. Uses libfaketime (Debian `faketime`, installed by
/// scripts/install-deps) to move the station's clock.
#[test]
fn a_station_three_days_off_still_syncs() {
    for offset in ["-3d", "+3d"] {
        let s = Setup::new();
        let centre = TestCentre::start(&s.tmp.path().join("centre"));
        centre.register(&s.station);
        let skewed = |args: &[&str]| {
            Command::new("faketime")
                .env("TASJIL_BADGE", "sim")
                .args(["-f", offset, BIN, "--data-dir", s.station.to_str().unwrap()])
                .args(args)
                .output()
                .expect("faketime is required for this test: run scripts/install-deps")
        };
        let out = skewed(&["enrol", "--simulate", "--count", "3"]);
        assert!(out.status.success(), "{}", text(&out));
        let out = skewed(&["sync", "--central", &centre.url, "--json"]);
        assert!(out.status.success(), "{offset}: {}", text(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["acknowledged"], 3, "{v}");
        // The van's clock really was off: its capture times are days away from the centre's.
        let rec = &centre.store.list().unwrap()[0];
        let envelope = tasjil::store::Store::open(&s.station.join("station.db"))
            .unwrap()
            .envelopes()
            .unwrap()[0]
            .clone();
        let skew_ms = (rec.received_ms - envelope.created_ms).abs();
        assert!(
            skew_ms > 2 * 24 * 3600 * 1000,
            "{offset}: clock was not moved ({skew_ms} ms)"
        );
    }
}

#[test]
fn acknowledged_payloads_are_purged_after_the_retention_and_nothing_else() {
    let s = Setup::new();
    let centre = TestCentre::start(&s.tmp.path().join("centre"));
    centre.register(&s.station);
    s.enrol(3, 2);
    // Default retention (7 days): nothing is purged yet.
    assert_eq!(s.json(&["sync", "--central", &centre.url]).0, 0);
    let sizes = || -> Vec<i64> {
        let conn = rusqlite::Connection::open(s.station.join("station.db")).unwrap();
        let mut stmt = conn
            .prepare("SELECT length(p.sealed) FROM envelopes e JOIN payloads p ON p.sha256 = e.payload ORDER BY e.seq")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(sizes().iter().all(|&n| n > 10_000));
    s.enrol(1, 3);
    // A centre that does not know this station: the sync fails and nothing may be purged.
    let stranger = TestCentre::start(&s.tmp.path().join("other-centre"));
    let (code, _) = s.json(&[
        "sync",
        "--central",
        &stranger.url,
        "--retention-days",
        "0",
        "--retries",
        "1",
    ]);
    assert_eq!(code, 1, "an unregistered sync must fail");
    assert!(
        sizes().iter().all(|&n| n > 10_000),
        "nothing may be purged by a failed sync"
    );
    let (code, v) = s.json(&["sync", "--central", &centre.url, "--retention-days", "0"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(sizes(), vec![0, 0, 0, 0]);
    let (code, report) = s.json(&["verify"]);
    assert_eq!(
        code, 0,
        "purged payloads of acknowledged records are not damage: {report}"
    );
    assert_eq!(s.json(&["status"]).1["acknowledged"], 4);
}

/// A van acts only on verdicts the centre signed: a store edited on disk to mark records
/// acknowledged loses no payload to the retention purge, and `tasjil verify` names the rows; a
/// centre that cannot sign (its key is elsewhere) gets records stored but never acknowledged.
#[test]
fn only_a_signed_verdict_acknowledges_and_lets_a_payload_go() {
    let s = Setup::new();
    let centre = TestCentre::start(&s.tmp.path().join("centre"));
    centre.register(&s.station);
    s.enrol(2, 41);
    let (code, v) = s.json(&["sync", "--central", &centre.url, "--retention-days", "0"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["acknowledged"], 2, "{v}");
    s.enrol(2, 42);
    let db = s.station.join("station.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let n = conn
            .execute(
                "UPDATE envelopes SET acknowledged_ms = 1 WHERE acknowledged_ms IS NULL",
                [],
            )
            .unwrap();
        assert_eq!(n, 2);
    }
    let sizes = || -> Vec<i64> {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut stmt = conn
            .prepare("SELECT length(p.sealed) FROM envelopes e JOIN payloads p ON p.sha256 = e.payload ORDER BY e.seq")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let (code, v) = s.json(&["sync", "--central", &centre.url, "--retention-days", "0"]);
    assert_eq!(code, 0, "{v}");
    let after = sizes();
    assert_eq!(after[..2], [0, 0], "the signed ones were purged");
    assert!(
        after[2] > 10_000 && after[3] > 10_000,
        "the forged ones kept: {after:?}"
    );
    let (code, report) = s.json(&["verify"]);
    assert_eq!(code, 1, "{report}");
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{report}");
    assert!(problems.iter().all(|p| p["reason"]
        .as_str()
        .unwrap()
        .contains("without a verdict signed by the centre")));

    // A centre without its key: the records arrive, nothing is acknowledged.
    let t = Setup::named("VAN-UNSIGNED");
    let unsigned_dir = t.tmp.path().join("centre-without-key");
    let unsigned = TestCentre::start(&unsigned_dir);
    unsigned.register(&t.station);
    t.enrol(1, 43);
    let (code, v) = t.json(&["sync", "--central", &unsigned.url, "--retention-days", "0"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["acknowledged"], 0, "{v}");
    assert_eq!(unsigned.store.stats().unwrap().verified, 1);
    let (_, status) = t.json(&["status"]);
    assert_eq!(status["acknowledged"], 0, "{status}");
}

/// The per-day Automerge ledger travels both ways: the centre learns the station's records and
/// the supervisor's approvals, the station learns the centre's statuses.
#[test]
fn the_ledger_carries_approvals_up_and_statuses_down() {
    use std::io::Write;
    let s = Setup::new();
    let centre = TestCentre::start(&s.tmp.path().join("centre"));
    centre.register(&s.station);
    s.enrol(4, 17);
    let mut approve = Command::new(BIN)
        .env("TASJIL_BADGE", "sim") // the simulated badge, even while the card-badge test has a card in the reader
        .args([
            "--data-dir",
            s.station.to_str().unwrap(),
            "approve",
            "--all",
            "--pin-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(approve.stdin.take().unwrap(), "123456").unwrap();
    assert!(approve.wait().unwrap().success());

    let (code, v) = s.json(&["sync", "--central", &centre.url]);
    assert_eq!(code, 0, "{v}");

    let store = tasjil::store::Store::open(&s.station.join("station.db")).unwrap();
    let rows = store.envelopes().unwrap();
    let name = tasjil_sync::ledger::doc_name(
        "VAN-TEST",
        &tasjil_sync::ledger::day_of_ms(rows[0].created_ms),
    );
    let at_centre = centre
        .store
        .ledger(&name)
        .unwrap()
        .expect("the centre holds the ledger");
    let views = at_centre.records();
    assert_eq!(views.len(), 4, "the centre sees every record of the day");
    for v in &views {
        assert_eq!(v.approvals.len(), 1, "approval reached the centre: {v:?}");
        assert_eq!(v.approvals[0].supervisor, "SUP-SIM-1");
        assert_eq!(
            v.current.as_ref().map(|c| c.status),
            Some(tasjil_sync::ledger::Status::Verified)
        );
        let row = rows.iter().find(|r| r.id == v.entry.id).unwrap();
        assert_eq!(v.entry.envelope_hash, row.hash);
    }
    let (at_station, _) = store.ledger_for_sync("probe", &name).unwrap();
    assert!(at_station
        .records()
        .iter()
        .all(|v| v.current.as_ref().is_some_and(|c| c.status
            == tasjil_sync::ledger::Status::Verified
            && c.by == "centre")));
}

/// TLS with the centre's certificate pinned through centre.pub: the right centre is reached, an
/// impostor with another certificate is refused, plain HTTP off loopback is refused.
#[test]
fn tls_to_the_pinned_centre_only() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tasjil_sync::CentreKeys::generate();
    let (cert, key) = tasjil_central::tls::self_signed().unwrap();
    let mut public = keys.public();
    public.tls_cert_sha256 = Some(tasjil_sync::tls::fingerprint(&cert));
    std::fs::write(tmp.path().join("centre.pub"), public.to_json()).unwrap();
    std::fs::create_dir_all(tmp.path().join("centre")).unwrap();
    keys.save(&tmp.path().join("centre").join("centre.key"))
        .unwrap();
    let station = tmp.path().join("station");
    let out = run(
        &station,
        &[
            "init",
            "--station-id",
            "VAN-TLS",
            "--central-key",
            tmp.path().join("centre.pub").to_str().unwrap(),
            "--simulation",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(run(&station, &["enrol", "--simulate", "--count", "2"])
        .status
        .success());

    let centre = TestCentre::start_tls(&tmp.path().join("centre"), cert, key);
    centre.register(&station);
    assert!(centre.url.starts_with("https://"));
    let (code, v) = json_of(&station, &["sync", "--central", &centre.url]);
    assert_eq!((code, v["acknowledged"].as_u64()), (0, Some(2)), "{v}");

    let (other_cert, other_key) = tasjil_central::tls::self_signed().unwrap();
    let impostor = TestCentre::start_tls(&tmp.path().join("impostor"), other_cert, other_key);
    impostor.register(&station);
    assert!(run(&station, &["enrol", "--simulate", "--count", "1"])
        .status
        .success());
    let (code, v) = json_of(
        &station,
        &["sync", "--central", &impostor.url, "--retries", "1"],
    );
    assert_eq!(code, 1, "{v}");
    assert_eq!(
        impostor.store.list().unwrap().len(),
        0,
        "nothing may reach an impostor"
    );

    let (code, v) = json_of(&station, &["sync", "--central", "http://192.0.2.7:8750"]);
    assert_eq!(code, 1);
    assert!(
        v["error"].as_str().unwrap().contains("only on loopback"),
        "{v}"
    );
}

/// A station may push only its own envelopes, even well-signed ones of another station.
#[test]
fn a_station_cannot_push_another_stations_envelopes() {
    let a = Setup::new();
    let b = Setup::named("VAN-OTHER");
    let centre = TestCentre::start(&a.tmp.path().join("centre"));
    centre.register(&a.station);
    b.enrol(1, 2);
    let theirs: Vec<u8> = rusqlite::Connection::open(b.station.join("station.db"))
        .unwrap()
        .query_row("SELECT envelope FROM envelopes WHERE seq = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    let key = tasjil_sync::StationKey::load(&a.station.join("station.key")).unwrap();
    let mut client = tasjil_sync::client::CentreClient::new(
        &centre.url,
        "VAN-TEST",
        std::sync::Arc::new(key),
        tasjil_sync::client::RetryPolicy::default(),
        &[],
    )
    .unwrap();
    let body =
        serde_json::to_vec(&serde_json::json!({"envelopes": [String::from_utf8(theirs).unwrap()]}))
            .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer = rt
        .block_on(client.call(tasjil_sync::client::Method::POST, "/v1/envelopes", body))
        .unwrap();
    let v: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(v["results"][0]["outcome"], "rejected", "{v}");
    assert!(v["results"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("not from station VAN-TEST"));
    assert_eq!(centre.store.list().unwrap().len(), 0);
}
