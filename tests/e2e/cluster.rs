//! The centre's cluster backend on real engines: PostgreSQL 15 and s3s-fs (a real S3-compatible
//! server), started on loopback by `scripts/dev-cluster`, with real `tasjil-central serve` nodes
//! and real stations syncing to them. Without the engines the tests skip loudly; with `CI=true`
//! they fail.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::centre_load::Serve;
use crate::common::{central_bin, enrol_in, init_station, json_of, text, Central};

/// A running cluster: its directory and the variables `dev-cluster up` printed.
struct Cluster {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    env: Vec<(String, String)>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dev-cluster")
}

impl Cluster {
    /// Start the engines, or `None` (after a loud banner) when they are missing and not on CI.
    fn up(test: &str) -> Option<Cluster> {
        let pg = Path::new("/usr/lib/postgresql/15/bin/initdb").exists();
        let s3 = Command::new("sh")
            .args([
                "-c",
                "command -v s3s-fs || test -x \"$HOME/.cargo/bin/s3s-fs\"",
            ])
            .output()
            .is_ok_and(|o| o.status.success());
        if !(pg && s3) {
            let why = format!(
                "PostgreSQL 15 {} and s3s-fs {} (scripts/install-deps installs both)",
                if pg { "found" } else { "MISSING" },
                if s3 { "found" } else { "MISSING" }
            );
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: the cluster engines are missing on CI: {why}"
            );
            eprintln!("\n{0}\n!! SKIPPED {test}: {why}\n{0}\n", "!".repeat(78));
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        // PostgreSQL runs as the unprivileged `postgres` user: it must get through.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let dir = tmp.path().join("cluster");
        let out = Command::new(script()).arg("up").arg(&dir).output().unwrap();
        assert!(out.status.success(), "dev-cluster up: {}", text(&out));
        let env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
            .collect::<Vec<_>>();
        assert!(
            env.iter().any(|(k, _)| k == "DATABASE_URL")
                && env.iter().any(|(k, _)| k == "BLOBS_URL"),
            "dev-cluster printed no DATABASE_URL / BLOBS_URL: {}",
            text(&out)
        );
        Some(Cluster {
            _tmp: tmp,
            dir,
            env,
        })
    }

    fn script(&self, cmd: &str) {
        let out = Command::new(script())
            .arg(cmd)
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "dev-cluster {cmd}: {}", text(&out));
    }

    /// `tasjil-central` with the centre's keys in `central` and the records in this cluster.
    fn central(&self, central: &Central, args: &[&str]) -> Output {
        Command::new(central_bin())
            .arg("--data-dir")
            .arg(&central.dir)
            .args(args)
            .env_remove("TASJIL_CENTRAL_DATA_DIR")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    }

    fn json(&self, central: &Central, args: &[&str]) -> (i32, Value) {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.central(central, &a);
        let v = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {}", text(&out)));
        (out.status.code().unwrap_or(-1), v)
    }

    /// A `serve` node on this cluster.
    fn node(&self, central: &Central) -> Node {
        let mut child = Command::new(central_bin())
            .arg("--data-dir")
            .arg(&central.dir)
            .args(["serve", "--listen", "127.0.0.1:0", "--plain-http"])
            .env_remove("TASJIL_CENTRAL_DATA_DIR")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
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
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| panic!("node did not start: {line:?}"))
            .to_string();
        Node {
            child,
            url: format!("http://{addr}"),
        }
    }

    /// Everything the cluster holds, checked: `verify` clean, and the records by station.
    fn check(&self, central: &Central) -> BTreeMap<String, Vec<u64>> {
        let (code, verify) = self.json(central, &["verify", "--full"]);
        assert_eq!(code, 0, "verify: {verify}");
        assert_eq!(verify["ok"], true, "{verify}");
        let (code, list) = self.json(central, &["list"]);
        assert_eq!(code, 0, "list: {list}");
        let mut by_station: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut ids = BTreeSet::new();
        for r in list["records"].as_array().unwrap() {
            assert_eq!(r["status"], "verified", "{r}");
            assert!(
                ids.insert(r["id"].as_str().unwrap().to_string()),
                "id twice: {r}"
            );
            by_station
                .entry(r["station"].as_str().unwrap().to_string())
                .or_default()
                .push(r["seq"].as_u64().unwrap());
        }
        assert_eq!(
            verify["records"].as_u64().unwrap() as usize,
            ids.len(),
            "{verify}"
        );
        by_station
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("down").arg(&self.dir).output();
    }
}

struct Node {
    child: Child,
    url: String,
}

impl Node {
    /// SIGKILL: the node dies at once, mid-request.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sync(station: &Path, url: &str) -> (i32, Value) {
    json_of(
        station,
        &[
            "sync",
            "--central",
            url,
            "--retries",
            "2",
            "--retry-delay-ms",
            "100",
        ],
    )
}

fn station(central: &Central, cluster: &Cluster, dir: &Path, id: &str) {
    init_station(dir, id, &central.dir.join("centre.pub"));
    let key = dir.join("station.pub");
    let out = cluster.central(
        central,
        &[
            "station",
            "add",
            "--id",
            id,
            "--key",
            key.to_str().unwrap(),
            "--simulation",
        ],
    );
    assert!(out.status.success(), "station add: {}", text(&out));
}

/// Two nodes on one cluster, 8 stations syncing at once, one node SIGKILLed mid-campaign: the
/// stations finish on the other node, and the cluster holds every record exactly once, verified.
#[test]
fn two_nodes_one_killed_mid_campaign() {
    const STATIONS: usize = 8;
    const RECORDS: u32 = 10;
    let Some(cluster) = Cluster::up("two_nodes_one_killed_mid_campaign") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let stations: Vec<PathBuf> = (0..STATIONS)
        .map(|i| {
            let dir = tmp.path().join(format!("van{i}"));
            station(&central, &cluster, &dir, &format!("VAN-C{i}"));
            dir
        })
        .collect();
    std::thread::scope(|s| {
        for (i, dir) in stations.iter().enumerate() {
            s.spawn(move || enrol_in(dir, RECORDS, 100 + i as u64));
        }
    });
    let a = cluster.node(&central);
    let mut b = cluster.node(&central);
    let urls = [a.url.clone(), b.url.clone()];
    let started = Instant::now();
    let mut at_kill = 0;
    std::thread::scope(|s| {
        let handles: Vec<_> = stations
            .iter()
            .enumerate()
            .map(|(i, dir)| {
                let urls = &urls;
                s.spawn(move || {
                    // Half the stations start on each node; a failed sync tries the other one.
                    for attempt in 0..8 {
                        let (code, v) = sync(dir, &urls[(i + attempt) % 2]);
                        if code == 0 && v["acknowledged"].as_u64() == Some(u64::from(RECORDS)) {
                            return v;
                        }
                    }
                    panic!("station {i} never finished");
                })
            })
            .collect();
        // Kill node B once the campaign is under way.
        loop {
            let (_, stats) = cluster.json(&central, &["stats"]);
            at_kill = stats["records"].as_u64().unwrap_or(0);
            if at_kill >= 4 || started.elapsed() > Duration::from_secs(60) {
                break;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        b.kill();
        for h in handles {
            h.join().unwrap();
        }
    });
    let total = STATIONS as u64 * u64::from(RECORDS);
    assert!(
        at_kill < total,
        "node B was killed only after the campaign ended ({at_kill} records)"
    );
    let held = cluster.check(&central);
    assert_eq!(held.len(), STATIONS);
    for (station, seqs) in &held {
        assert_eq!(
            seqs,
            &(1..=u64::from(RECORDS)).collect::<Vec<_>>(),
            "{station}"
        );
    }
    let (_, stats) = cluster.json(&central, &["stats"]);
    assert_eq!(stats["records"], total, "{stats}");
    assert_eq!(stats["verified"], total, "{stats}");
    // Every station holds the centre's signed verdict on every record.
    for dir in &stations {
        let (_, status) = json_of(dir, &["status"]);
        assert_eq!(status["acknowledged"], RECORDS, "{status}");
        assert_eq!(status["unsent"], 0, "{status}");
    }
    // A sync through the surviving node now sends nothing.
    let (code, again) = sync(&stations[0], &a.url);
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["sent"], 0, "{again}");
}

/// PostgreSQL stops during a sync: the sync fails cleanly (nothing half-stored), and succeeds
/// once the database is back, without restarting the node.
#[test]
fn database_down_during_sync_fails_cleanly_then_succeeds() {
    let Some(cluster) = Cluster::up("database_down_during_sync_fails_cleanly_then_succeeds") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let van = tmp.path().join("van");
    station(&central, &cluster, &van, "VAN-PG");
    enrol_in(&van, 12, 7);
    let node = cluster.node(&central);
    let during = std::thread::scope(|s| {
        let h = s.spawn(|| sync(&van, &node.url));
        std::thread::sleep(Duration::from_millis(300));
        cluster.script("stop-db");
        h.join().unwrap()
    });
    // Finished before the stop, or failed with the centre's storage error: either way clean.
    if during.0 != 0 {
        assert!(
            during.1.to_string().contains("storage")
                || during.1.to_string().contains("503")
                || during.1.to_string().contains("unavailable"),
            "{during:?}"
        );
    }
    // While the database is down every sync fails, saying so.
    let (code, down) = sync(&van, &node.url);
    assert_ne!(
        code, 0,
        "a sync while the database is down must fail: {down}"
    );
    cluster.script("up");
    let (code, after) = sync(&van, &node.url);
    assert_eq!(code, 0, "{after}");
    let (_, status) = json_of(&van, &["status"]);
    assert_eq!(status["acknowledged"], 12, "{status}");
    let held = cluster.check(&central);
    assert_eq!(held["VAN-PG"], (1..=12).collect::<Vec<u64>>());
}

/// An embedded centre moved into the cluster with `migrate` (twice: harmless), then its station
/// syncs to the cluster and sends only what the embedded centre never had.
#[test]
fn migrate_then_sync_sends_nothing_twice() {
    let Some(cluster) = Cluster::up("migrate_then_sync_sends_nothing_twice") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let van = crate::common::station_for(&central, &tmp.path().join("van"), "VAN-MIG");
    enrol_in(&van, 6, 3);
    {
        let serve = Serve::start(&central);
        let (code, v) = sync(&van, &format!("http://{}", serve.addr));
        assert_eq!(code, 0, "{v}");
        assert_eq!(v["acknowledged"], 6, "{v}");
    }
    enrol_in(&van, 3, 4);
    let (code, first) = cluster.json(&central, &["migrate"]);
    assert_eq!(code, 0, "{first}");
    assert_eq!(first["stored"], 6, "{first}");
    assert_eq!(first["stations"], 1, "{first}");
    let (code, second) = cluster.json(&central, &["migrate"]);
    assert_eq!(code, 0, "{second}");
    assert_eq!(second["stored"], 0, "{second}");
    assert_eq!(second["already_had"], 6, "{second}");
    assert_eq!(second["stations"], 0, "{second}");
    let node = cluster.node(&central);
    let (code, v) = sync(&van, &node.url);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["sent"], 3, "only the three new records travel: {v}");
    assert_eq!(v["already_there"], 0, "{v}");
    let (_, status) = json_of(&van, &["status"]);
    assert_eq!(status["acknowledged"], 9, "{status}");
    let held = cluster.check(&central);
    assert_eq!(held["VAN-MIG"], (1..=9).collect::<Vec<u64>>());
}
