//! Test images and quality measures shared by the integration tests.
#![allow(dead_code)]

use tasjil_drivers::capture::{FingerPosition, FingerprintScanner};
use tasjil_drivers::sim::SimScanner;

/// A synthetic 500 ppi print (320×400) from the drivers' simulated scanner.
pub fn sim_print(seed: u64, position: FingerPosition) -> (Vec<u8>, u32, u32) {
    let capture = SimScanner::new(seed)
        .capture(position)
        .expect("simulated capture");
    (
        capture.image.pixels,
        capture.image.width,
        capture.image.height,
    )
}

/// A print-like image of any size: concentric ridges (period ≈ 9 px, as at 500 ppi) under a
/// soft elliptical mask, with deterministic noise.
pub fn ridges(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let (cx, cy) = (width as f64 * 0.52, height as f64 * 0.47);
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..width * height)
        .map(|i| {
            let (x, y) = ((i % width) as f64, (i / width) as f64);
            let (dx, dy) = (
                (x - cx) / (width as f64 * 0.42),
                (y - cy) / (height as f64 * 0.45),
            );
            let r = ((x - cx).powi(2) + (y - cy).powi(2) * 0.8).sqrt();
            let ridge = (r / 9.0 * std::f64::consts::TAU + (x * 0.013).sin() * 2.0).cos();
            let inside = (1.0 - (dx * dx + dy * dy)).clamp(0.0, 0.3) / 0.3;
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let noise = f64::from(state % 21) - 10.0;
            (235.0 - inside * (110.0 + 90.0 * ridge) + noise).clamp(0.0, 255.0) as u8
        })
        .collect()
}

pub fn rmse(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let se: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    (se / a.len() as f64).sqrt()
}

pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    20.0 * (255.0 / rmse(a, b).max(1e-9)).log10()
}
