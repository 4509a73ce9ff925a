//! `tasjil bench`: commit latency of real enrolments in a throw-away station.
//!
//! Capture is simulated and not timed; what is timed is what the officer waits for after pressing
//! "confirm": pack + seal (age), co-sign + sign (Ed25519), and the durable SQLite commit
//! (WAL, `synchronous=FULL`, so one fsync per enrolment on the disk the temp dir is on), which
//! includes the ledger's change chunk. The prints are encoded when each finger is accepted, so
//! that cost is timed apart. With `--held N`, the same commits again on a station already
//! holding N records of the day, then `approve --all` of all of them.

use serde::Serialize;
use tasjil_sync::CentreKeys;

use crate::enrolment::record::EncodedPrint;
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
    /// The fresh station's commits.
    pub stats: Vec<Stat>,
    /// The same commits on a station already holding records of the day (`--held`).
    pub busy: Option<Scenario>,
    /// Seconds to commit the `--held` records before the timed ones.
    pub prefill_s: f64,
    pub approve_all: Option<ApproveAll>,
    /// Loading and saving the busy station's whole day document: what every commit and every
    /// approval cost before the ledger was kept loaded and saved in change chunks.
    pub whole_ledger: Option<Stat>,
    pub finger_format: &'static str,
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

/// One station's commits: each stage's timing.
#[derive(Debug, Serialize)]
pub struct Scenario {
    /// What the station held that day before the timed commits.
    pub held_before: u64,
    pub stats: Vec<Stat>,
}

/// `approve --all` of every record the station holds, by a supervisor who enrolled none.
#[derive(Debug, Serialize)]
pub struct ApproveAll {
    pub records: u64,
    pub seconds: f64,
}

/// Commit `count` simulated enrolments (capture not timed) and time each stage.
fn timed_commits(
    station: &mut Station,
    badge: &mut SimBadge,
    policy: &CapturePolicy,
    count: u64,
    seed: u64,
    sizes: &mut Sizes,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Vec<Stat>> {
    let (mut seal, mut sign, mut commit, mut total) = (vec![], vec![], vec![], vec![]);
    let mut encode = vec![];
    for i in 0..count {
        let done = simulate::run(
            simulate::enrolment_seed(seed, i),
            tasjil_sync::EnrolmentKind::New,
            &station.schema,
            None,
            policy,
            crate::now_ms,
        )?;
        // What encoding the prints costs: done when each finger is accepted (during capture),
        // no longer inside the commit. Timed here again, apart, to show what the commit saves.
        let t = std::time::Instant::now();
        for f in &done.fingers {
            EncodedPrint::encode(policy.finger_format, &f.image)?;
        }
        encode.push(t.elapsed().as_micros() as u64);
        sizes.face += done.face.image.jpeg.len() as u64;
        let c = station.commit(&done, badge)?;
        seal.push(c.seal_us);
        sign.push(c.sign_us);
        commit.push(c.commit_us);
        total.push(c.seal_us + c.sign_us + c.commit_us);
        sizes.sealed += c.sealed_len as u64;
        sizes.plain += c.plain_len as u64;
        sizes.sealed_max = sizes.sealed_max.max(c.sealed_len as u64);
        sizes.n += 1;
        progress.inc(1);
    }
    Ok(vec![
        stat("pack + seal (age)", seal),
        stat("co-sign + sign (Ed25519)", sign),
        stat("durable commit (SQLite)", commit),
        stat("total", total),
        stat("encode prints (at capture)", encode),
    ])
}

#[derive(Default)]
struct Sizes {
    n: u64,
    sealed: u64,
    sealed_max: u64,
    plain: u64,
    face: u64,
}

/// A throw-away simulated station with the bench officer logged in.
fn new_station(root: &std::path::Path, name: &str) -> anyhow::Result<(Station, SimBadge)> {
    let centre = CentreKeys::generate();
    let centre_pub = root.join(format!("{name}-centre.pub"));
    std::fs::write(&centre_pub, centre.public().to_json())?;
    let dir = DataDir(root.join(name));
    station::init(&dir, "BENCH-1", &centre_pub, true)?;
    let mut station = Station::open(&dir)?;
    let badge = SimBadge::unlock("OFF-BENCH", crate::enrolment::badge::SIM_PIN)?;
    station.login(&badge)?;
    Ok((station, badge))
}

/// `count` timed commits on a fresh station; with `held` > 0, the same on a station that
/// already holds `held` records of the day (committed through the same path, from a few
/// captures reused), then `approve --all` of everything that station holds.
pub fn run(count: u64, seed: u64, held: u64) -> anyhow::Result<BenchReport> {
    let tmp = tempfile::Builder::new().prefix("tasjil-bench-").tempdir()?;
    let (mut station, mut badge) = new_station(tmp.path(), "station")?;
    // The station's own capture settings (`TASJIL_CAPTURE_FINGER_FORMAT=png` to compare).
    let policy = crate::config::Config::load(&tmp.path().join("station"))?.capture;
    let progress = indicatif::ProgressBar::new(count * if held > 0 { 2 } else { 1 } + held);
    let mut sizes = Sizes::default();
    let fresh = Scenario {
        held_before: 0,
        stats: timed_commits(
            &mut station,
            &mut badge,
            &policy,
            count,
            seed,
            &mut sizes,
            &progress,
        )?,
    };
    let mut busy = None;
    let mut approve_all = None;
    let mut prefill_s = 0.0;
    let mut whole_ledger = None;
    if held > 0 {
        let (mut station, mut badge) = new_station(tmp.path(), "busy")?;
        let captures = (0..20u64.min(held))
            .map(|i| {
                simulate::run(
                    simulate::enrolment_seed(seed ^ 0x5eed, i),
                    tasjil_sync::EnrolmentKind::New,
                    &station.schema,
                    None,
                    &policy,
                    crate::now_ms,
                )
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let t = std::time::Instant::now();
        for i in 0..held {
            let mut done = captures[(i % captures.len() as u64) as usize].clone();
            done.finished_ms = crate::now_ms();
            station.commit(&done, &mut badge)?;
            progress.inc(1);
        }
        prefill_s = t.elapsed().as_secs_f64();
        busy = Some(Scenario {
            held_before: held,
            stats: timed_commits(
                &mut station,
                &mut badge,
                &policy,
                count,
                seed,
                &mut Sizes::default(),
                &progress,
            )?,
        });
        // What each commit and each approval paid before the ledger was kept loaded: load the
        // whole day's document and save it whole again.
        whole_ledger = {
            use tasjil_sync::ledger::{day_of_ms, doc_name, Ledger};
            let day = day_of_ms(crate::now_ms());
            let stored = station
                .store()
                .ledger_doc(&doc_name("BENCH-1", &day))?
                .unwrap_or_default();
            let compact = Ledger::load("BENCH-1", &day, b"bench-whole-save", &stored)?.save();
            let mut us = Vec::new();
            for _ in 0..20 {
                let t = std::time::Instant::now();
                let mut l = Ledger::load("BENCH-1", &day, b"bench-whole-save", &compact)?;
                std::hint::black_box(l.save());
                us.push(t.elapsed().as_micros() as u64);
            }
            Some(stat("whole ledger load + save", us))
        };
        // As `tasjil approve --all` does it: a newly opened station (the ledger loaded from disk).
        drop(station);
        let mut supervisor = SimBadge::unlock("SUP-BENCH", crate::enrolment::badge::SIM_PIN)?;
        let t = std::time::Instant::now();
        let mut station = Station::open(&DataDir(tmp.path().join("busy")))?;
        let approved = station.approve(&mut supervisor, &[])?;
        approve_all = Some(ApproveAll {
            records: approved.len() as u64,
            seconds: t.elapsed().as_secs_f64(),
        });
    }
    progress.finish_and_clear();
    let n = sizes.n.max(1);
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
        stats: fresh.stats,
        busy,
        prefill_s,
        approve_all,
        whole_ledger,
        finger_format: policy.finger_format.name(),
        sealed_mean_bytes: sizes.sealed / n,
        sealed_max_bytes: sizes.sealed_max,
        plain_mean_bytes: sizes.plain / n,
        face_mean_bytes: sizes.face / n,
        face_check,
        data_dir: tmp.path().display().to_string(),
    })
}

impl BenchReport {
    pub fn table(&self) -> String {
        let mut s = format!(
            "commit latency over {} enrolments, fresh station ({} prints)\n{:<28} {:>9} {:>9} {:>9}\n",
            self.enrolments, self.finger_format, "stage", "p50 ms", "p99 ms", "max ms"
        );
        let rows = |s: &mut String, stats: &[Stat]| {
            for st in stats {
                s.push_str(&format!(
                    "{:<28} {:>9.2} {:>9.2} {:>9.2}\n",
                    st.name, st.p50_ms, st.p99_ms, st.max_ms
                ));
            }
        };
        rows(&mut s, &self.stats);
        if let Some(busy) = &self.busy {
            s.push_str(&format!(
                "the same on a station already holding {} records of the day (committed in {:.1} s)\n",
                busy.held_before, self.prefill_s
            ));
            rows(&mut s, &busy.stats);
        }
        if let Some(w) = &self.whole_ledger {
            s.push_str(&format!(
                "{:<28} {:>9.2} {:>9.2} {:>9.2}  (each commit's ledger cost before)\n",
                w.name, w.p50_ms, w.p99_ms, w.max_ms
            ));
        }
        if let Some(a) = &self.approve_all {
            s.push_str(&format!(
                "approve --all: {} records in {:.3} s\n",
                a.records, a.seconds
            ));
        }
        let goal = |stats: &[Stat]| {
            stats
                .iter()
                .find(|s| s.name == "total")
                .map_or(0.0, |t| t.p99_ms)
        };
        s.push_str(&format!(
            "goals: commit p99 <= 30 ms: fresh {:.2} ms{}; approve --all <= 2 s: {}\n",
            goal(&self.stats),
            self.busy
                .as_ref()
                .map(|b| format!(", holding {} {:.2} ms", b.held_before, goal(&b.stats)))
                .unwrap_or_default(),
            self.approve_all
                .as_ref()
                .map_or("not run (--held 0)".to_string(), |a| format!(
                    "{:.3} s",
                    a.seconds
                )),
        ));
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
