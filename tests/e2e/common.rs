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
        let station = tmp.path().join("station");
        let out = run(
            &station,
            &[
                "init",
                "--station-id",
                station_id,
                "--central-key",
                centre_pub.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "init failed: {}", text(&out));
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
        let out = self.tasjil(&[
            "enrol",
            "--simulate",
            "--count",
            &count.to_string(),
            "--seed",
            &seed.to_string(),
        ]);
        assert!(out.status.success(), "enrol failed: {}", text(&out));
    }
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
