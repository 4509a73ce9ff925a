//! `tasjil bench`: commit latency of real enrolments in a throw-away station.
//!
//! Capture is simulated and not timed; what is timed is what the officer waits for after pressing
//! "confirm": pack + seal (age), co-sign + sign (Ed25519), and the durable SQLite commit
//! (WAL, `synchronous=FULL`, so one fsync per enrolment on the disk the temp dir is on).

use serde::Serialize;
use tasjil_sync::CentreKeys;

use crate::enrolment::{simulate, CapturePolicy, SimBadge};
use crate::station::{self, DataDir, Station};

#[derive(Debug, Serialize)]
pub struct Stat {
    pub name: &'static str,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub enrolments: u64,
    pub stats: Vec<Stat>,
    pub sealed_mean_bytes: u64,
    pub sealed_max_bytes: u64,
    pub plain_mean_bytes: u64,
    /// The face kept in the record: the ISO token image JPEG.
    pub face_mean_bytes: u64,
    /// The station's face check on one 480×640 preview frame of the simulated camera.
    pub face_check: Stat,
    pub data_dir: String,
}

fn stat(name: &'static str, mut us: Vec<u64>) -> Stat {
    us.sort_unstable();
    let pick = |q: f64| {
        let i = ((us.len() as f64 - 1.0) * q).round() as usize;
        us.get(i).copied().unwrap_or(0) as f64 / 1000.0
    };
    Stat {
        name,
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
        max_ms: pick(1.0),
    }
}

pub fn run(count: u64, seed: u64) -> anyhow::Result<BenchReport> {
    let tmp = tempfile::Builder::new().prefix("tasjil-bench-").tempdir()?;
    let centre = CentreKeys::generate();
    let centre_pub = tmp.path().join("centre.pub");
    std::fs::write(&centre_pub, centre.public().to_json())?;
    let dir = DataDir(tmp.path().join("station"));
    station::init(&dir, "BENCH-1", &centre_pub, true)?;
    let mut station = Station::open(&dir)?;
    let mut badge = SimBadge::unlock("OFF-BENCH", crate::enrolment::badge::SIM_PIN)?;
    station.login(&badge)?;
    let policy = CapturePolicy::default();
    let progress = indicatif::ProgressBar::new(count);
    let (mut seal, mut sign, mut commit, mut total) = (vec![], vec![], vec![], vec![]);
    let (mut sealed, mut plain, mut sealed_max, mut face) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..count {
        let done = simulate::run(
            simulate::enrolment_seed(seed, i),
            tasjil_sync::EnrolmentKind::New,
            &station.schema,
            None,
            &policy,
            crate::now_ms,
        )?;
        face += done.face.image.jpeg.len() as u64;
        let c = station.commit(&done, &mut badge)?;
        seal.push(c.seal_us);
        sign.push(c.sign_us);
        commit.push(c.commit_us);
        total.push(c.seal_us + c.sign_us + c.commit_us);
        sealed += c.sealed_len as u64;
        plain += c.plain_len as u64;
        sealed_max = sealed_max.max(c.sealed_len as u64);
        progress.inc(1);
    }
    progress.finish_and_clear();
    let n = count.max(1);
    let face_check = {
        use tasjil_drivers::Camera;
        let analyzer = tasjil_drivers::face::FaceAnalyzer::shared();
        let mut camera = tasjil_drivers::sim::SimCamera::new(seed);
        let mut us = Vec::new();
        for _ in 0..count.clamp(20, 200) {
            let frame = camera.frame()?;
            let t = std::time::Instant::now();
            analyzer.analyze(&frame)?;
            us.push(t.elapsed().as_micros() as u64);
        }
        stat("face check (480x640 frame)", us)
    };
    Ok(BenchReport {
        enrolments: count,
        stats: vec![
            stat("pack + seal (age)", seal),
            stat("co-sign + sign (Ed25519)", sign),
            stat("durable commit (SQLite)", commit),
            stat("total", total),
        ],
        sealed_mean_bytes: sealed / n,
        sealed_max_bytes: sealed_max,
        plain_mean_bytes: plain / n,
        face_mean_bytes: face / n,
        face_check,
        data_dir: tmp.path().display().to_string(),
    })
}

impl BenchReport {
    pub fn table(&self) -> String {
        let mut s = format!(
            "commit latency over {} enrolments\n{:<28} {:>9} {:>9} {:>9}\n",
            self.enrolments, "stage", "p50 ms", "p99 ms", "max ms"
        );
        for st in &self.stats {
            s.push_str(&format!(
                "{:<28} {:>9.2} {:>9.2} {:>9.2}\n",
                st.name, st.p50_ms, st.p99_ms, st.max_ms
            ));
        }
        s.push_str(&format!(
            "sealed payload: mean {:.1} KB, max {:.1} KB (packed plaintext mean {:.1} KB; face token JPEG mean {:.1} KB)\n",
            self.sealed_mean_bytes as f64 / 1024.0,
            self.sealed_max_bytes as f64 / 1024.0,
            self.plain_mean_bytes as f64 / 1024.0,
            self.face_mean_bytes as f64 / 1024.0
        ));
        let f = &self.face_check;
        s.push_str(&format!(
            "{:<28} {:>9.2} {:>9.2} {:>9.2}",
            f.name, f.p50_ms, f.p99_ms, f.max_ms
        ));
        s
    }
}
