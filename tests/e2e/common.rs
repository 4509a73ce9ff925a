//! Helpers: a temporary centre + station, and running the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_tasjil");

pub struct Setup {
    pub tmp: tempfile::TempDir,
    pub station: PathBuf,
    pub centre: tasjil_sync::CentreKeys,
}

impl Setup {
    /// A centre key pair and an initialised station `VAN-TEST`.
    pub fn new() -> Setup {
        Self::named("VAN-TEST")
    }

    /// The same with another station id.
    pub fn named(station_id: &str) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let centre = tasjil_sync::CentreKeys::generate();
        let centre_pub = tmp.path().join("centre.pub");
        std::fs::write(&centre_pub, centre.public().to_json()).unwrap();
        // Where a test's in-process centre lives (`TestCentre::start(tmp/centre)`): it signs its
        // verdicts with this key, as `tasjil-central` does with its own.
        std::fs::create_dir_all(tmp.path().join("centre")).unwrap();
        centre
            .save(&tmp.path().join("centre").join("centre.key"))
            .unwrap();
        let station = tmp.path().join("station");
        init_station(&station, station_id, &centre_pub);
        Setup {
            tmp,
            station,
            centre,
        }
    }

    pub fn tasjil(&self, args: &[&str]) -> Output {
        run(&self.station, args)
    }

    pub fn json(&self, args: &[&str]) -> (i32, Value) {
        json_of(&self.station, args)
    }

    pub fn enrol(&self, count: u32, seed: u64) {
        enrol_in(&self.station, count, seed);
    }
}

/// `tasjil init` of station `station_id` in `dir` for the centre whose keys are `centre_pub`.
pub fn init_station(dir: &Path, station_id: &str, centre_pub: &Path) {
    let out = run(
        dir,
        &[
            "init",
            "--station-id",
            station_id,
            "--central-key",
            centre_pub.to_str().unwrap(),
            // Every end-to-end test drives simulated devices: a training station.
            "--simulation",
        ],
    );
    assert!(out.status.success(), "init failed: {}", text(&out));
}

/// `tasjil enrol --simulate` of `count` citizens in the station at `dir`.
pub fn enrol_in(dir: &Path, count: u32, seed: u64) {
    let out = run(
        dir,
        &[
            "enrol",
            "--simulate",
            "--count",
            &count.to_string(),
            "--seed",
            &seed.to_string(),
        ],
    );
    assert!(out.status.success(), "enrol failed: {}", text(&out));
}

/// `tasjil enrol --simulate` of `count` citizens by officer `officer`.
pub fn enrol_as(dir: &Path, officer: &str, count: u32, seed: u64) {
    let out = run(
        dir,
        &[
            "enrol",
            "--simulate",
            "--officer",
            officer,
            "--count",
            &count.to_string(),
            "--seed",
            &seed.to_string(),
        ],
    );
    assert!(out.status.success(), "enrol failed: {}", text(&out));
}

pub fn run(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("TASJIL_DATA_DIR")
        // A badge in a reader on the test machine must not change what these tests sign with.
        .env("TASJIL_BADGE", "sim")
        .output()
        .unwrap()
}

/// Run with `--json`; returns the exit code and the one JSON object printed.
pub fn json_of(data_dir: &Path, args: &[&str]) -> (i32, Value) {
    let mut a = args.to_vec();
    a.push("--json");
    let out = run(data_dir, &a);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {}", text(&out)));
    (out.status.code().unwrap_or(-1), value)
}

pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every file under `dir`, recursively.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The centre's binary, `tasjil-central`, next to the station's (it belongs to the tasjil-central
/// package, so cargo gives no path for it here): built on first use if missing.
pub fn central_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let path = Path::new(BIN).with_file_name("tasjil-central");
            if !path.exists() {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let status = Command::new(cargo)
                    .args(["build", "-p", "tasjil-central", "--bin", "tasjil-central"])
                    .status()
                    .unwrap();
                assert!(status.success(), "cannot build tasjil-central");
            }
            assert!(path.exists(), "{} is missing", path.display());
            path
        })
        .clone()
}

/// A centre made by `tasjil-central init` in `dir`, driven through its command line.
pub struct Central {
    pub dir: PathBuf,
}

impl Central {
    pub fn init(dir: &Path) -> Central {
        let c = Central {
            dir: dir.to_path_buf(),
        };
        let out = c.run(&["init"]);
        assert!(out.status.success(), "centre init: {}", text(&out));
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(central_bin())
            .arg("--data-dir")
            .arg(&self.dir)
            .args(args)
            .env_remove("TASJIL_CENTRAL_DATA_DIR")
            .output()
            .unwrap()
    }

    pub fn json(&self, args: &[&str]) -> (i32, Value) {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.run(&a);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {}", text(&out)));
        (out.status.code().unwrap_or(-1), value)
    }

    pub fn register(&self, station_dir: &Path) {
        let public = tasjil_sync::StationPublic::load(&station_dir.join("station.pub")).unwrap();
        let key = station_dir.join("station.pub");
        let mut args = vec![
            "station",
            "add",
            "--id",
            &public.station,
            "--key",
            key.to_str().unwrap(),
        ];
        if public.simulation {
            args.push("--simulation");
        }
        let out = self.run(&args);
        assert!(out.status.success(), "station add: {}", text(&out));
    }

    /// What the centre holds, for before/after comparisons: stats and the record list.
    pub fn snapshot(&self) -> (Value, Value) {
        (self.json(&["stats"]).1, self.json(&["list"]).1)
    }
}

/// A station whose centre public key comes from a real `tasjil-central init`.
pub fn station_for(central: &Central, dir: &Path, station_id: &str) -> PathBuf {
    init_station(dir, station_id, &central.dir.join("centre.pub"));
    central.register(dir);
    dir.to_path_buf()
}

/// Run the station binary with `stdin` as standard input.
pub fn run_with_input(data_dir: &Path, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("TASJIL_DATA_DIR")
        // The simulated badge, even while the card-badge test has a card in the reader.
        .env("TASJIL_BADGE", "sim")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
