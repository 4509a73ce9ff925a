//! Encode/decode time and size of WSQ prints, ours against NIST's NBIS (through the PyPI `wsq`
//! module in `.venv-xcheck`, timed in the same run), printed as a table.
//!
//! `cargo run -p tasjil-wsq --example bench [-- REPEAT]` (tasjil-wsq is built at opt-level 3 in
//! every profile, see the root Cargo.toml). Times are the best of REPEAT runs (default 20).
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use tasjil_drivers::capture::FingerPosition;
use tasjil_wsq::{decode, encode, EncodeOptions};

fn best_ms<T>(repeat: usize, mut f: impl FnMut() -> T) -> (T, f64) {
    let mut best = f64::MAX;
    let mut out = None;
    for _ in 0..repeat {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed().as_secs_f64() * 1000.0);
        out = Some(v);
    }
    (out.unwrap(), best)
}

fn main() {
    let repeat: usize = std::env::args().nth(1).map_or(20, |s| s.parse().unwrap());
    let (sim, sw, sh) = common::sim_print(7, FingerPosition::RightIndex);
    let images = [
        (
            "ridges 500x500".to_string(),
            common::ridges(500, 500, 500),
            500,
            500,
        ),
        (format!("sim print {sw}x{sh}"), sim, sw, sh),
    ];
    let dir = std::env::temp_dir().join(format!("tasjil-wsq-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ours = Vec::new();
    for (i, (_, px, w, h)) in images.iter().enumerate() {
        let (wsq, enc) = best_ms(repeat, || {
            encode(px, *w, *h, &EncodeOptions::default()).unwrap()
        });
        let (img, dec) = best_ms(repeat, || decode(&wsq).unwrap());
        let psnr = common::psnr(px, &img.pixels);
        std::fs::write(dir.join(format!("img{i}.raw")), px).unwrap();
        std::fs::write(
            dir.join(format!("img{i}.json")),
            format!(r#"{{"width":{w},"height":{h}}}"#),
        )
        .unwrap();
        std::fs::write(dir.join(format!("img{i}.ours.wsq")), &wsq).unwrap();
        ours.push((wsq.len(), enc, dec, psnr));
    }
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-xcheck/bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nbis_xcheck.py");
    let nbis = Command::new(&python)
        .arg(&script)
        .arg(&dir)
        .arg(repeat.to_string())
        .output();
    let nbis: Vec<serde_like::Row> = match nbis {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(serde_like::parse)
            .collect(),
        _ => {
            eprintln!(
                "NBIS not available ({}): run scripts/install-deps",
                python.display()
            );
            Vec::new()
        }
    };
    println!("| image | codec | bytes | bits/pixel | encode ms | decode ms | PSNR dB |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (i, (name, _, w, h)) in images.iter().enumerate() {
        let (bytes, enc, dec, psnr) = ours[i];
        let bpp = bytes as f64 * 8.0 / f64::from(w * h);
        println!("| {name} | tasjil-wsq | {bytes} | {bpp:.3} | {enc:.2} | {dec:.2} | {psnr:.2} |");
        if let Some(n) = nbis.get(i) {
            let nbpp = n.bytes as f64 * 8.0 / f64::from(w * h);
            println!(
                "| {name} | NBIS (PyPI wsq) | {} | {nbpp:.3} | {:.2} | {:.2} | |",
                n.bytes, n.encode_ms, n.decode_ms
            );
            println!(
                "| {name} | ratio ours/NBIS | {:.3} | | {:.2} | {:.2} | |",
                bytes as f64 / n.bytes as f64,
                enc / n.encode_ms,
                dec / n.decode_ms
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The script prints flat JSON objects; three numbers are all this needs.
mod serde_like {
    pub struct Row {
        pub bytes: usize,
        pub encode_ms: f64,
        pub decode_ms: f64,
    }

    fn number(line: &str, key: &str) -> f64 {
        let at = line.find(&format!("\"{key}\": ")).unwrap() + key.len() + 4;
        line[at..]
            .split([',', '}'])
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    pub fn parse(line: &str) -> Row {
        Row {
            bytes: number(line, "nbis_bytes") as usize,
            encode_ms: number(line, "nbis_encode_ms"),
            decode_ms: number(line, "nbis_decode_ms"),
        }
    }
}
