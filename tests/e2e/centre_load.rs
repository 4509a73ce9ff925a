//! The real `tasjil-central serve` and `import` as separate processes, under bad luck and bad
//! actors: uploads that nobody signed are refused before their bodies are read, a flood of
//! challenges mints nothing for anyone but a station that signs, a sync and an import of the same
//! records at once leave every payload whole, and a revoked station is refused by both paths.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{json_of, station_for, Central};

/// `tasjil-central serve` as a child process on a port of its choosing.
pub(crate) struct Serve {
    child: Child,
    pub(crate) addr: String,
}

impl Serve {
    pub(crate) fn start(central: &Central) -> Serve {
        Self::start_with(central, &["--plain-http"])
    }

    /// `serve` with other options (`--plain-http` is not implied).
    pub(crate) fn start_with(central: &Central, options: &[&str]) -> Serve {
        let mut child = Command::new(crate::common::central_bin())
            .arg("--data-dir")
            .arg(&central.dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(options)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .rsplit("://")
            .next()
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Serve { child, addr }
    }

    fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Send a request head (and as much of the body as the server takes); return the status code.
fn unsigned_put(addr: &str, len: usize) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let sha = "a".repeat(64);
    let head = format!(
        "PUT /v1/blobs/{sha}?offset=0&total={len} HTTP/1.1\r\nhost: {addr}\r\nx-tasjil-station: VAN-LOAD\r\nx-tasjil-nonce: {n}\r\nx-tasjil-signature: {sig}\r\nx-tasjil-body-sha256: {sha}\r\ncontent-length: {len}\r\n\r\n",
        n = "0".repeat(64),
        sig = "0".repeat(128),
    );
    s.write_all(head.as_bytes()).unwrap();
    // The first megabyte; a server that refuses at the head stops reading long before the rest.
    let _ = s.write_all(&vec![0u8; len.min(1 << 20)]);
    let mut answer = [0u8; 64];
    let n = s.read(&mut answer).unwrap_or(0);
    let text = String::from_utf8_lossy(&answer[..n]);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Approve every record with the supervisor's (simulated) badge and export a bundle to `usb`;
/// returns the bundle's path.
pub(crate) fn approve_and_export(station: &std::path::Path, usb: &std::path::Path) -> String {
    approve_and_export_as(station, usb, "SUP-SIM-1")
}

/// [`approve_and_export`] with the simulated badge of supervisor `supervisor`.
pub(crate) fn approve_and_export_as(
    station: &std::path::Path,
    usb: &std::path::Path,
    supervisor: &str,
) -> String {
    let pin = "123456\n";
    let out = crate::common::run_with_input(
        station,
        &[
            "approve",
            "--all",
            "--supervisor",
            supervisor,
            "--pin-stdin",
        ],
        pin,
    );
    assert!(
        out.status.success(),
        "approve: {}",
        crate::common::text(&out)
    );
    std::fs::create_dir_all(usb).unwrap();
    let export = [
        "export",
        "--to",
        usb.to_str().unwrap(),
        "--supervisor",
        supervisor,
        "--pin-stdin",
        "--json",
    ];
    let out = crate::common::run_with_input(station, &export, pin);
    assert!(
        out.status.success(),
        "export: {}",
        crate::common::text(&out)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["file"].as_str().unwrap().to_string()
}

/// A plain GET; returns the status code and the body.
pub(crate) fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let code = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// `n` unsigned challenges naming `station`, on kept-alive connections (a new one whenever the
/// centre closes one); returns how many were refused with 401.
fn unsigned_challenges(addr: &str, station: &str, n: usize) -> usize {
    let body = format!(r#"{{"station":"{station}"}}"#);
    let req = format!(
        "POST /v1/challenge HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut refused = 0;
    let mut conn: Option<BufReader<TcpStream>> = None;
    for _ in 0..n {
        let r = conn.get_or_insert_with(|| BufReader::new(TcpStream::connect(addr).unwrap()));
        if r.get_mut().write_all(req.as_bytes()).is_err() {
            conn = None;
            continue;
        }
        // Status line, headers, then exactly the body the centre announced.
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            conn = None;
            continue;
        }
        let code: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let (mut len, mut close) = (0usize, false);
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            close |= lower.starts_with("connection: close");
        }
        let mut answer = vec![0u8; len];
        let _ = r.read_exact(&mut answer);
        if code == 401 {
            refused += 1;
        }
        if close {
            conn = None;
        }
    }
    refused
}

#[test]
fn unauthenticated_uploads_and_challenge_floods_cost_the_centre_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let station = station_for(&central, &tmp.path().join("van"), "VAN-LOAD");
    let out = crate::common::run(
        &station,
        &["enrol", "--simulate", "--count", "3", "--seed", "4"],
    );
    assert!(out.status.success(), "{}", crate::common::text(&out));
    let serve = Serve::start(&central);
    let idle = serve.rss_kb();

    let uploads: Vec<_> = (0..50)
        .map(|_| {
            let addr = serve.addr.clone();
            std::thread::spawn(move || unsigned_put(&addr, 8 << 20))
        })
        .collect();
    for u in uploads {
        assert_eq!(u.join().unwrap(), 401, "an unsigned upload was not refused");
    }
    let loaded = serve.rss_kb();
    eprintln!("centre RSS: idle {idle} kB, after 50 unsigned 8 MiB uploads {loaded} kB");
    assert!(
        loaded < idle + 20 * 1024,
        "50 unsigned 8 MiB uploads took the centre from {idle} kB to {loaded} kB"
    );

    // A flood of unsigned challenges naming the station: every one refused, none minted.
    let flood: Vec<_> = (0..4)
        .map(|_| {
            let addr = serve.addr.clone();
            std::thread::spawn(move || unsigned_challenges(&addr, "VAN-LOAD", 25_000))
        })
        .collect();
    let started = std::time::Instant::now();
    let refused: usize = flood.into_iter().map(|t| t.join().unwrap()).sum();
    eprintln!(
        "100,000 unsigned challenges refused in {:?}",
        started.elapsed()
    );
    assert_eq!(refused, 100_000);

    // The real station still syncs, first time.
    let (code, sync) = json_of(
        &station,
        &["sync", "--central", &format!("http://{}", serve.addr)],
    );
    assert_eq!(code, 0, "{sync}");
    assert_eq!(json_of(&station, &["status"]).1["acknowledged"], 3);

    // What operations see: health, and the counts in Prometheus' text format.
    assert_eq!(get(&serve.addr, "/healthz"), (200, "ok\n".to_string()));
    let (code, metrics) = get(&serve.addr, "/metrics");
    assert_eq!(code, 200);
    for line in [
        "tasjil_records 3",
        "tasjil_stations 1",
        "tasjil_envelopes_ingested_total 3",
        "tasjil_requests_total{route=\"/v1/blobs/{sha}\",status=\"401\"} 50",
        "tasjil_requests_total{route=\"/v1/challenge\",status=\"401\"} 100000",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
}

/// The network sync of a station and `tasjil-central import` of a bundle of the same records, as
/// two processes at once on one data directory, round after round: every payload file ends up
/// holding exactly the bytes of its name, every record verifies, the station's chain is whole.
#[test]
fn sync_and_usb_import_of_the_same_records_at_once_never_corrupt_the_centre() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let station = station_for(&central, &tmp.path().join("van"), "VAN-RACE");
    let serve = Serve::start(&central);
    let url = format!("http://{}", serve.addr);
    let rounds = 30;
    for round in 0..rounds {
        crate::common::enrol_in(&station, 2, 100 + round);
        let usb = tmp.path().join(format!("usb-{round}"));
        let bundle = approve_and_export(&station, &usb);
        let importer = {
            let dir = central.dir.clone();
            std::thread::spawn(move || Central { dir }.json(&["import", &bundle]))
        };
        let (code, sync) = json_of(&station, &["sync", "--central", &url]);
        let (icode, import) = importer.join().unwrap();
        assert_eq!(code, 0, "round {round}: sync {sync}");
        assert_eq!(icode, 0, "round {round}: import {import}");
    }
    // One more sync picks up whatever the bundle delivered first.
    let (code, sync) = json_of(&station, &["sync", "--central", &url]);
    assert_eq!(code, 0, "{sync}");
    drop(serve);
    let blobs = central.dir.join("blobs");
    // Payload files live under blobs/<first two hex digits>/.
    let files = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|d| d.unwrap())
        .filter(|d| d.file_name().len() == 2)
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap());
    for entry in files {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.len() == 64 {
            let bytes = std::fs::read(entry.path()).unwrap();
            assert_eq!(
                tasjil_sync::sha256_hex(&bytes),
                name,
                "payload file holds other bytes"
            );
        }
    }
    assert!(
        !blobs.join("damaged").exists(),
        "a payload file was damaged on the way"
    );
    let (code, verify) = central.json(&["verify"]);
    assert_eq!(
        (code, verify["records"].as_u64()),
        (0, Some(2 * rounds)),
        "{verify}"
    );
    let status = json_of(&station, &["status"]).1;
    assert_eq!(
        status["acknowledged"].as_u64(),
        Some(2 * rounds),
        "{status}"
    );
    assert_eq!(status["rejected"], 0, "{status}");
    let (code, v) = json_of(&station, &["verify"]);
    assert_eq!(code, 0, "{v}");
}

/// A stolen van: revoked at the centre, its next sync and its next bundle are refused with a
/// message that says "revoked", and what it sent before stays verified. A suspended van is
/// refused as such until resumed.
#[test]
fn a_revoked_station_is_refused_by_sync_and_by_usb_and_keeps_what_it_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let station = station_for(&central, &tmp.path().join("van"), "VAN-GONE");
    crate::common::enrol_in(&station, 2, 7);
    let serve = Serve::start(&central);
    let url = format!("http://{}", serve.addr);
    let (code, sync) = json_of(&station, &["sync", "--central", &url]);
    assert_eq!(code, 0, "{sync}");

    // Suspended: refused as such, then resumed.
    let out = central.run(&[
        "station", "suspend", "--id", "VAN-GONE", "--reason", "workshop",
    ]);
    assert!(out.status.success(), "{}", crate::common::text(&out));
    crate::common::enrol_in(&station, 1, 8);
    let out = crate::common::run(&station, &["sync", "--central", &url]);
    assert!(!out.status.success());
    assert!(
        crate::common::text(&out).contains("suspended"),
        "{}",
        crate::common::text(&out)
    );
    let out = central.run(&["station", "resume", "--id", "VAN-GONE"]);
    assert!(out.status.success(), "{}", crate::common::text(&out));
    let (code, sync) = json_of(&station, &["sync", "--central", &url]);
    assert_eq!(code, 0, "{sync}");

    // Revoked: no sync, no bundle, no resume.
    let out = central.run(&["station", "revoke", "--id", "VAN-GONE"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "revoke without a reason: {}",
        crate::common::text(&out)
    );
    let (code, v) = central.json(&[
        "station",
        "revoke",
        "--id",
        "VAN-GONE",
        "--reason",
        "van stolen in Azrou",
    ]);
    assert_eq!((code, v["state"].as_str()), (0, Some("revoked")), "{v}");
    crate::common::enrol_in(&station, 1, 9);
    let out = crate::common::run(&station, &["sync", "--central", &url]);
    assert!(!out.status.success());
    let said = crate::common::text(&out);
    assert!(
        said.contains("revoked") && said.contains("van stolen in Azrou"),
        "{said}"
    );

    let bundle = approve_and_export(&station, &tmp.path().join("usb"));
    let out = central.run(&["import", &bundle]);
    assert_eq!(out.status.code(), Some(1), "{}", crate::common::text(&out));
    assert!(
        crate::common::text(&out).contains("revoked"),
        "{}",
        crate::common::text(&out)
    );

    let out = central.run(&["station", "resume", "--id", "VAN-GONE"]);
    assert!(!out.status.success(), "a revoked station was resumed");
    let (code, verify) = central.json(&["verify"]);
    assert_eq!((code, verify["records"].as_u64()), (0, Some(3)), "{verify}");
    let (_, list) = central.json(&["station", "list"]);
    assert_eq!(list["stations"][0]["state"], "revoked", "{list}");
}

/// Every opening of a citizen's record at the centre is in the access log — who, when, which
/// record, why — signed and chained; the AFIS file is written 0600; one changed byte in the log
/// fails `access-log --verify`.
#[test]
fn export_nist_is_logged_and_the_access_log_catches_a_changed_byte() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let station = station_for(&central, &tmp.path().join("van"), "VAN-AFIS");
    crate::common::enrol_in(&station, 1, 31);
    let serve = Serve::start(&central);
    let (code, sync) = json_of(
        &station,
        &["sync", "--central", &format!("http://{}", serve.addr)],
    );
    assert_eq!(code, 0, "{sync}");
    drop(serve);
    let id = central.json(&["list"]).1["records"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out_file = tmp.path().join("afis.an2");
    let (code, v) = central.json(&[
        "export-nist",
        &id,
        "--out",
        out_file.to_str().unwrap(),
        "--reason",
        "card production",
    ]);
    assert_eq!(code, 0, "{v}");
    let mode = std::fs::metadata(&out_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the AFIS file is {mode:o}");

    let (code, log) = central.json(&["access-log"]);
    assert_eq!(code, 0, "{log}");
    let e = &log["entries"][0];
    assert_eq!(
        (
            e["action"].as_str(),
            e["record"].as_str(),
            e["station"].as_str(),
            e["reason"].as_str()
        ),
        (
            Some("export-nist"),
            Some(id.as_str()),
            Some("VAN-AFIS"),
            Some("card production")
        ),
        "{log}"
    );
    assert!(e["who"].as_str().unwrap().starts_with("os:"), "{log}");
    let (code, v) = central.json(&["access-log", "--verify"]);
    assert_eq!(
        (code, v["ok"].as_bool(), v["entries"].as_u64()),
        (0, Some(true), Some(1)),
        "{v}"
    );

    // One byte of the reason changed in the file's table.
    let db = rusqlite::Connection::open(central.dir.join("centre.db")).unwrap();
    db.execute_batch("DROP TRIGGER access_log_no_update")
        .unwrap();
    let mut entry: Vec<u8> = db
        .query_row("SELECT entry FROM access_log WHERE seq = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    let at = entry.windows(4).position(|w| w == b"card").unwrap();
    entry[at] = b'C';
    db.execute("UPDATE access_log SET entry = ?1 WHERE seq = 1", [&entry])
        .unwrap();
    drop(db);
    let (code, v) = central.json(&["access-log", "--verify"]);
    assert_eq!((code, v["ok"].as_bool()), (1, Some(false)), "{v}");
    assert_eq!(v["problems"][0]["id"], "access-log entry 1", "{v}");
}

/// Open `n` connections that each send `first` (maybe nothing) and then stall; returns, for each,
/// how long the centre took to close it (`None`: still open after `patience`).
fn stalled_clients(
    addr: &str,
    n: usize,
    first: &'static [u8],
    patience: Duration,
) -> Vec<std::thread::JoinHandle<Option<Duration>>> {
    (0..n)
        .map(|_| {
            let addr = addr.to_string();
            std::thread::spawn(move || {
                let started = std::time::Instant::now();
                let mut s = TcpStream::connect(&addr).unwrap();
                s.set_read_timeout(Some(patience)).unwrap();
                let _ = s.write_all(first);
                let mut buf = [0u8; 512];
                loop {
                    match s.read(&mut buf) {
                        // Closed by the centre (possibly after an error answer).
                        Ok(0) => return Some(started.elapsed()),
                        Ok(_) => continue,
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                            return Some(started.elapsed())
                        }
                        Err(_) => return None,
                    }
                }
            })
        })
        .collect()
}

/// Slow clients hold nothing for long: 50 connections that never finish a TLS handshake and 50
/// that never finish a request head are cut after the timeouts, while a real station syncs over
/// TLS and over plain HTTP, first time.
#[test]
fn fifty_slow_clients_are_cut_after_the_timeouts_while_a_station_syncs() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let station = station_for(&central, &tmp.path().join("van"), "VAN-SLOW");
    crate::common::enrol_in(&station, 2, 7);
    let patience = Duration::from_secs(15);

    // TLS: a client that connects and sends half a ClientHello, then nothing.
    let tls = Serve::start_with(
        &central,
        &["--handshake-timeout", "2", "--header-timeout", "2"],
    );
    let slow = stalled_clients(&tls.addr, 50, b"\x16\x03\x01\x00", patience);
    std::thread::sleep(Duration::from_millis(300));
    let (code, sync) = json_of(
        &station,
        &["sync", "--central", &format!("https://{}", tls.addr)],
    );
    assert_eq!(code, 0, "{sync}");
    assert_eq!(sync["acknowledged"], 2, "{sync}");
    let cut: Vec<_> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    let worst = cut
        .iter()
        .map(|c| c.expect("a slow TLS client was never cut"))
        .max()
        .unwrap();
    eprintln!("50 stalled TLS handshakes cut within {worst:?} (timeout 2 s)");
    assert!(
        worst >= Duration::from_millis(1500),
        "cut before the timeout: {worst:?}"
    );
    drop(tls);

    // Plain HTTP: half a request head, then nothing.
    crate::common::enrol_in(&station, 1, 8);
    let plain = Serve::start_with(&central, &["--plain-http", "--header-timeout", "2"]);
    let slow = stalled_clients(
        &plain.addr,
        50,
        b"POST /v1/challenge HTTP/1.1\r\nhost: x\r\n",
        patience,
    );
    std::thread::sleep(Duration::from_millis(300));
    let (code, sync) = json_of(
        &station,
        &["sync", "--central", &format!("http://{}", plain.addr)],
    );
    assert_eq!(code, 0, "{sync}");
    assert_eq!(sync["sent"], 1, "{sync}");
    let worst = slow
        .into_iter()
        .map(|t| t.join().unwrap().expect("a slow HTTP client was never cut"))
        .max()
        .unwrap();
    eprintln!("50 stalled request heads cut within {worst:?} (timeout 2 s)");
    assert!(
        worst >= Duration::from_millis(1500),
        "cut before the timeout: {worst:?}"
    );
}

/// One address holds at most `--max-connections-per-peer` connections; the next is closed at
/// once, and a slot frees when a connection ends.
#[test]
fn one_address_holds_at_most_its_share_of_connections() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let serve = Serve::start_with(
        &central,
        &[
            "--plain-http",
            "--max-connections-per-peer",
            "4",
            "--header-timeout",
            "3",
        ],
    );
    let held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(&serve.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let extra = stalled_clients(&serve.addr, 1, b"", Duration::from_secs(2));
    let closed = extra.into_iter().next().unwrap().join().unwrap();
    assert!(
        closed.is_some_and(|d| d < Duration::from_secs(1)),
        "the fifth connection was not closed at once: {closed:?}"
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(&serve.addr, "/healthz").0, 200);
}
