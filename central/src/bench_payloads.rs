//! `tasjil-central bench payloads`: what the cross-process payload writer costs. In one run, on
//! one disk, the same payloads are written two ways:
//! - **store**: through [`CentreStore::put_blob_chunk`], as a sync or an import does — the
//!   store-wide writer lock (this process's mutex and the OS lock on `blobs/.writer.lock`), the
//!   existing file's hash check, a temporary name of its own, hash check, fsync, rename, directory
//!   fsync;
//! - **bare**: the floor a writer with no discipline at all would pay for the same durability —
//!   write to a temporary name, fsync, rename, directory fsync.
//!
//! and, on its own, one lock and unlock of an OS file lock. The table gives the per-payload
//! medians and the ratio store / bare.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::CentreStore;

#[derive(Debug, Clone, Serialize)]
pub struct PayloadBench {
    pub payloads: u32,
    pub size_bytes: usize,
    pub store_p50_ms: f64,
    pub store_total_s: f64,
    pub bare_p50_ms: f64,
    pub bare_total_s: f64,
    /// One OS file lock and unlock, median, in microseconds.
    pub lock_pair_us: f64,
    /// store / bare, on the medians.
    pub ratio: f64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Deterministic, distinct, incompressible-looking bytes for payload `i`.
fn payload(i: u32, size: usize) -> Vec<u8> {
    let mut state = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Run the comparison in `dir` (made if missing; the caller removes it).
pub fn payloads(dir: &Path, count: u32, size: usize) -> anyhow::Result<PayloadBench> {
    let store = CentreStore::open(&dir.join("centre"))?;
    let bare_dir = dir.join("bare");
    fs::create_dir_all(&bare_dir)?;
    let (mut store_ms, mut bare_ms) = (Vec::new(), Vec::new());
    let (mut store_total, mut bare_total) = (0.0, 0.0);
    // Interleaved, so that both see the same disk and the same load.
    for i in 0..count {
        let bytes = payload(i, size);
        let sha = tasjil_sync::sha256_hex(&bytes);
        let t = Instant::now();
        store.put_blob_chunk(&sha, 0, bytes.len() as u64, &bytes)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        store_ms.push(ms);
        store_total += ms / 1e3;

        let t = Instant::now();
        let tmp = bare_dir.join(format!(".{sha}.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, bare_dir.join(&sha))?;
        File::open(&bare_dir)?.sync_all()?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        bare_ms.push(ms);
        bare_total += ms / 1e3;
    }
    let lock_file = File::create(dir.join("lock"))?;
    let mut lock_us = Vec::new();
    for _ in 0..1000 {
        let t = Instant::now();
        lock_file.lock()?;
        lock_file.unlock()?;
        lock_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let (store_p50, bare_p50) = (median(&mut store_ms), median(&mut bare_ms));
    Ok(PayloadBench {
        payloads: count,
        size_bytes: size,
        store_p50_ms: store_p50,
        store_total_s: store_total,
        bare_p50_ms: bare_p50,
        bare_total_s: bare_total,
        lock_pair_us: median(&mut lock_us),
        ratio: if bare_p50 > 0.0 {
            store_p50 / bare_p50
        } else {
            0.0
        },
    })
}

/// The table `bench payloads` prints.
pub fn table(b: &PayloadBench, profile: &str) -> String {
    format!(
        "{} payloads of {} KiB, written both ways interleaved, {profile} build\n\n\
         {:<44} {:>10} {:>10}\n\
         {:<44} {:>10.2} {:>10.2}\n\
         {:<44} {:>10.2} {:>10.2}\n\
         {:<44} {:>10.2}×\n\
         {:<44} {:>10.1} µs\n",
        b.payloads,
        b.size_bytes / 1024,
        "way",
        "p50 ms",
        "total s",
        "store (lock, hash checks, temp, fsync, rename)",
        b.store_p50_ms,
        b.store_total_s,
        "bare (temp, fsync, rename)",
        b.bare_p50_ms,
        b.bare_total_s,
        "store / bare (p50)",
        b.ratio,
        "one OS file lock + unlock (p50)",
        b.lock_pair_us,
    )
}
