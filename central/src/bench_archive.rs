//! `tasjil-central bench archive`: what the centre's archive commands cost as the archive grows.
//! Fills a new centre through the real ingest path (each sealed payload through
//! `put_blob_chunk`, the signed, co-signed envelopes through `ingest_batch` in batches of 100,
//! as the sync endpoint does), then runs this binary as a separate process against it and
//! measures: `list --json` peak RSS (`/usr/bin/time -v`'s maximum resident set), `verify --full`,
//! `verify` after `new` more records arrive (incremental), `stats` (the query in process and the
//! whole command), against the goals.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};
use serde::Serialize;
use tasjil_central::CentreStore;
use tasjil_sync::record::{PayloadRef, GENESIS};
use tasjil_sync::roster::{Role, RosterEntry};
use tasjil_sync::{sha256_hex, StationKey, StationPublic};

/// The goals at 100 000 records.
pub const VERIFY_GOAL_S: f64 = 2.0;
pub const LIST_RSS_GOAL_MB: f64 = 50.0;
pub const STATS_GOAL_MS: f64 = 50.0;

#[derive(Debug, Clone, Serialize)]
pub struct ArchiveBench {
    pub records: u64,
    pub new: u64,
    pub stations: u64,
    pub payload_bytes: usize,
    pub fill_s: f64,
    pub db_bytes: u64,
    pub verify_full_s: f64,
    pub verify_incremental_s: f64,
    /// Records the incremental run checked: new, then sampled.
    pub incremental_checked: (u64, u64),
    pub list_rows: u64,
    pub list_s: f64,
    pub list_peak_rss_mb: f64,
    pub stats_query_ms: f64,
    pub stats_command_ms: f64,
}

struct Van {
    name: String,
    key: StationKey,
    officer: StationKey,
    roster: u64,
    seq: u64,
    prev: String,
}

impl Van {
    fn next(&mut self, sealed: &[u8], n: u64) -> anyhow::Result<Vec<u8>> {
        use tasjil_central::bench::{signed_envelope, ulid_like, BenchEnvelope};
        self.seq += 1;
        let bytes = signed_envelope(
            BenchEnvelope {
                id: ulid_like((1_700_000_000_000u128 + u128::from(n)) << 80 | u128::from(n)),
                station: &self.name,
                officer: &format!("OFF-{}", self.name),
                seq: self.seq,
                prev: &self.prev,
                payload: PayloadRef {
                    sha256: sha256_hex(sealed),
                    len: sealed.len() as u64,
                },
                roster: Some(self.roster),
            },
            &self.officer,
            &self.key,
        )?;
        self.prev = sha256_hex(&bytes);
        Ok(bytes)
    }
}

/// Distinct payload bytes for record `n` (a counter-mode SHA-256 stream: incompressible).
fn payload(n: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0u64;
    while out.len() < len {
        let mut seed = n.to_le_bytes().to_vec();
        seed.extend_from_slice(&i.to_le_bytes());
        out.extend_from_slice(&tasjil_sync::canonical::sha256(&seed));
        i += 1;
    }
    out.truncate(len);
    out
}

/// Ingest `count` records spread over the vans, through the real path.
fn ingest(
    store: &CentreStore,
    vans: &mut [Van],
    from: u64,
    count: u64,
    payload_bytes: usize,
    now_ms: i64,
) -> anyhow::Result<()> {
    let per_batch = 100;
    let mut n = from;
    while n < from + count {
        let v = (n / per_batch) as usize % vans.len();
        let van = &mut vans[v];
        let mut batch = Vec::new();
        while batch.len() < per_batch as usize && n < from + count {
            let sealed = payload(n, payload_bytes);
            store.put_blob_chunk(&sha256_hex(&sealed), 0, sealed.len() as u64, &sealed)?;
            batch.push(van.next(&sealed, n)?);
            n += 1;
        }
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        for got in store.ingest_batch(&refs, now_ms)? {
            if !matches!(got, tasjil_central::store::Ingested::Stored { .. }) {
                bail!("the bench's record was not stored: {got:?}");
            }
        }
        if n % 5000 < per_batch {
            eprintln!("  {n} records stored");
        }
    }
    Ok(())
}

/// Run this binary on `dir` with `args`; returns (seconds, stdout).
fn run(dir: &Path, args: &[&str]) -> anyhow::Result<(f64, String)> {
    let exe = std::env::current_exe()?;
    let t = Instant::now();
    let out = Command::new(exe)
        .arg("--data-dir")
        .arg(dir)
        .arg("--json")
        .args(args)
        .stderr(Stdio::inherit())
        .output()?;
    let s = t.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{args:?} failed: {}",
            stdout.chars().take(2000).collect::<String>()
        );
    }
    Ok((s, stdout))
}

/// `list --json` under `/usr/bin/time -v`: (seconds, rows, peak RSS in MB). The output goes to a
/// file (its rows are counted, so it was all written).
fn list_rss(dir: &Path) -> anyhow::Result<(f64, u64, f64)> {
    let exe = std::env::current_exe()?;
    let out_file = dir.join("list.json");
    let t = Instant::now();
    let done = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(exe)
        .arg("--data-dir")
        .arg(dir)
        .args(["--json", "list"])
        .stdout(std::fs::File::create(&out_file)?)
        .stderr(Stdio::piped())
        .output()
        .context("/usr/bin/time is needed to measure the list's peak memory")?;
    let s = t.elapsed().as_secs_f64();
    let report = String::from_utf8_lossy(&done.stderr);
    if !done.status.success() {
        bail!("list failed: {report}");
    }
    let kb: f64 = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
        .context("no maximum resident set size in /usr/bin/time's report")?;
    let listed: serde_json::Value = serde_json::from_reader(std::fs::File::open(&out_file)?)?;
    let rows = listed["records"].as_array().map_or(0, Vec::len) as u64;
    std::fs::remove_file(&out_file)?;
    Ok((s, rows, kb / 1024.0))
}

pub fn archive(
    dir: &Path,
    records: u64,
    new: u64,
    stations: u64,
    payload_bytes: usize,
) -> anyhow::Result<ArchiveBench> {
    run(dir, &["init"])?;
    let now_ms = tasjil_central::now_ms();
    let store = CentreStore::open(dir)?;
    store.sign_verdicts_with(tasjil_sync::CentreKeys::load(&dir.join("centre.key"))?.signing);
    let mut vans = Vec::new();
    for s in 0..stations.max(1) {
        let name = format!("VAN-{:03}", s + 1);
        let (key, officer) = (StationKey::generate(), StationKey::generate());
        store.add_station(&StationPublic::new(&name, &key), now_ms)?;
        let roster = store.roster_add(
            &RosterEntry {
                id: format!("OFF-{name}"),
                name: "Officer".into(),
                role: Role::Officer,
                badge: officer.public_hex(),
                stations: vec![name.clone()],
                valid_from_ms: 0,
                valid_until_ms: None,
                revoked: None,
            },
            now_ms,
        )?;
        vans.push(Van {
            name,
            key,
            officer,
            roster: roster.version(),
            seq: 0,
            prev: GENESIS.into(),
        });
    }
    let t = Instant::now();
    ingest(&store, &mut vans, 0, records, payload_bytes, now_ms)?;
    let fill_s = t.elapsed().as_secs_f64();
    let db_bytes = std::fs::metadata(store.db_path())?.len();

    let (list_s, list_rows, list_peak_rss_mb) = list_rss(dir)?;
    if list_rows != records {
        bail!("list gave {list_rows} rows of {records}");
    }
    let (verify_full_s, full) = run(dir, &["verify", "--full"])?;
    let full: serde_json::Value = serde_json::from_str(&full)?;
    if full["ok"] != true || full["records"] != records {
        bail!("verify --full: {full}");
    }
    ingest(&store, &mut vans, records, new, payload_bytes, now_ms)?;
    let (verify_incremental_s, inc) = run(dir, &["verify"])?;
    let inc: serde_json::Value = serde_json::from_str(&inc)?;
    if inc["ok"] != true || inc["records"] != records + new {
        bail!("verify: {inc}");
    }
    let checked = &inc["checked"];
    let incremental_checked = (
        checked["new"].as_u64().unwrap_or(0),
        checked["sampled"].as_u64().unwrap_or(0),
    );
    let mut query = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let s = store.stats()?;
        query.push(t.elapsed().as_secs_f64() * 1000.0);
        if s.records != records + new {
            bail!("stats counted {} records", s.records);
        }
    }
    query.sort_by(f64::total_cmp);
    let (stats_s, _) = run(dir, &["stats"])?;
    Ok(ArchiveBench {
        records,
        new,
        stations: vans.len() as u64,
        payload_bytes,
        fill_s,
        db_bytes,
        verify_full_s,
        verify_incremental_s,
        incremental_checked,
        list_rows,
        list_s,
        list_peak_rss_mb,
        stats_query_ms: query[query.len() / 2],
        stats_command_ms: stats_s * 1000.0,
    })
}

pub fn table(b: &ArchiveBench, profile: &str) -> String {
    let row = |what: &str, got: f64, unit: &str, goal: f64| {
        format!(
            "\n{what:<34} {got:>10.3} {unit:<3} goal {goal:>6} {unit:<3} {:>6.2}× goal{}",
            got / goal,
            if got <= goal { "" } else { "  OVER" }
        )
    };
    let mut t = format!(
        "archive of {} records + {} new, {} stations, {} KiB payloads ({profile} build; filled in {:.0} s, centre.db {:.0} MB)",
        b.records,
        b.new,
        b.stations,
        b.payload_bytes / 1024,
        b.fill_s,
        b.db_bytes as f64 / 1e6
    );
    t.push_str(&row(
        "verify (incremental)",
        b.verify_incremental_s,
        "s",
        VERIFY_GOAL_S,
    ));
    t.push_str(&format!(
        "\n  checked {} new + {} sampled; verify --full {:.3} s: incremental/full = {:.3}",
        b.incremental_checked.0,
        b.incremental_checked.1,
        b.verify_full_s,
        b.verify_incremental_s / b.verify_full_s
    ));
    t.push_str(&row(
        "list --json peak RSS",
        b.list_peak_rss_mb,
        "MB",
        LIST_RSS_GOAL_MB,
    ));
    t.push_str(&format!("\n  {} rows in {:.2} s", b.list_rows, b.list_s));
    t.push_str(&row(
        "stats (query, median of 20)",
        b.stats_query_ms,
        "ms",
        STATS_GOAL_MS,
    ));
    t.push_str(&row(
        "stats (whole command)",
        b.stats_command_ms,
        "ms",
        STATS_GOAL_MS,
    ));
    t
}

/// A new directory for the bench's centre.
pub fn scratch(keep: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match keep {
        Some(d) => {
            if d.exists() {
                bail!("{} exists: name a new directory", d.display());
            }
            Ok(d)
        }
        None => Ok(tasjil_central::bench::scratch_dir()),
    }
}
