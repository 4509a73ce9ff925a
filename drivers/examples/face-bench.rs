//! Face check speed and token image size, on frames of the simulated camera (480×640, the same
//! pixel count as 640×480). One thread.
//!
//! `cargo run -p tasjil-drivers --release --example face-bench [FRAMES]`

use std::time::Instant;

use tasjil_drivers::face::FaceAnalyzer;
use tasjil_drivers::sim::SimCamera;
use tasjil_drivers::Camera;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 200,
    };
    let started = Instant::now();
    let analyzer = FaceAnalyzer::new()?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;

    let mut camera = SimCamera::new(1);
    let frames = (0..count)
        .map(|_| camera.frame())
        .collect::<Result<Vec<_>, _>>()?;
    // Warm-up: first runs allocate the plan's buffers.
    for frame in frames.iter().take(5) {
        analyzer.analyze(frame)?;
    }

    let mut detect_ms = Vec::with_capacity(count);
    let mut analyze_ms = Vec::with_capacity(count);
    let mut token_ms = Vec::new();
    let mut token_bytes = Vec::new();
    let mut passed = 0;
    for frame in &frames {
        let t = Instant::now();
        analyzer.detect(frame)?;
        detect_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let report = analyzer.analyze(frame)?;
        analyze_ms.push(t.elapsed().as_secs_f64() * 1e3);
        if report.passed() {
            passed += 1;
            let t = Instant::now();
            let token = FaceAnalyzer::token_image(frame, &report)?;
            token_ms.push(t.elapsed().as_secs_f64() * 1e3);
            token_bytes.push(token.jpeg.len() as f64);
        }
    }
    let (w, h) = (frames[0].width, frames[0].height);
    println!("model load + optimise: {load_ms:.1} ms");
    println!("{count} frames {w}x{h}, {passed} passing every check");
    println!("{:<28} {:>9} {:>9} {:>9}", "", "median", "mean", "p95");
    for (name, values) in [
        ("detect (ms)", &mut detect_ms),
        ("analyze = detect+checks (ms)", &mut analyze_ms),
        ("token image (ms)", &mut token_ms),
        ("token JPEG (bytes)", &mut token_bytes),
    ] {
        if values.is_empty() {
            continue;
        }
        values.sort_by(f64::total_cmp);
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let at = |p: f64| values[((values.len() - 1) as f64 * p).round() as usize];
        println!(
            "{name:<28} {:>9.1} {:>9.1} {:>9.1}",
            at(0.5),
            mean,
            at(0.95)
        );
    }
    Ok(())
}
