//! Subband variances, bit allocation to a target bit rate, and the dead-zone scalar quantiser.
//!
//! The allocation follows the specification's informative encoder: each subband `k` gets a bin
//! width `Q_k = Q'_k / q` where `Q'_k` weighs the subband by its variance, and `q` is chosen so the
//! expected bit rate over the subbands that get bits equals the target. Subbands whose variance is
//! below 1.01 are not coded at all. The zero bin is 1.2 times the bin width.

use crate::tree::{Trees, CODED_SUBBANDS};

const VARIANCE_THRESHOLD: f64 = 1.01;
const ZERO_BIN_RATIO: f64 = 1.2;
/// Bin centre used by the decoder, as a fraction of the bin width.
pub(crate) const BIN_CENTRE: f64 = 0.44;

fn band_variance(data: &[f64], width: usize, x: usize, y: usize, w: usize, h: usize) -> f64 {
    let n = w * h;
    if n < 2 {
        return 0.0;
    }
    let (mut sum, mut sq) = (0.0, 0.0);
    for row in y..y + h {
        for v in &data[row * width + x..row * width + x + w] {
            sum += v;
            sq += v * v;
        }
    }
    ((sq - sum * sum / n as f64) / (n as f64 - 1.0)).max(0.0)
}

/// Variance of each coded subband, over a central window that avoids the borders (where the
/// symmetric extension inflates energy), or over the whole band for low-contrast images.
pub(crate) fn variances(data: &[f64], width: usize, trees: &Trees) -> [f64; CODED_SUBBANDS] {
    let cropped = |b: usize| {
        let r = trees.bands[b];
        band_variance(
            data,
            width,
            r.x + r.w / 8,
            r.y + 9 * r.h / 32,
            3 * r.w / 4,
            7 * r.h / 16,
        )
    };
    let whole = |b: usize| {
        let r = trees.bands[b];
        band_variance(data, width, r.x, r.y, r.w, r.h)
    };
    let mut var = [0.0; CODED_SUBBANDS];
    let low_sum: f64 = (0..4).map(cropped).sum();
    for (b, v) in var.iter_mut().enumerate() {
        *v = if low_sum < 20_000.0 {
            whole(b)
        } else {
            cropped(b)
        };
    }
    var
}

/// Subband weights of the specification (the finest-scale bands are weighted per orientation).
fn weight(band: usize) -> f64 {
    match band {
        52 | 56 => 1.32,
        53 | 55 | 58 | 59 => 1.08,
        54 | 57 => 1.42,
        _ => 1.0,
    }
}

/// Reciprocal of the decimation factor of each subband relative to the image.
fn share(band: usize) -> f64 {
    match band {
        0..4 => 1.0 / 1024.0,
        4..51 => 1.0 / 256.0,
        _ => 1.0 / 16.0,
    }
}

/// Bin widths `Q_k` (0 for uncoded subbands) for a target bit rate in bits per pixel.
pub(crate) fn bin_widths(var: &[f64; CODED_SUBBANDS], bitrate: f64) -> [f64; CODED_SUBBANDS] {
    let mut q_prime = [0.0; CODED_SUBBANDS];
    let mut sigma = [0.0; CODED_SUBBANDS];
    let initial: Vec<usize> = (0..CODED_SUBBANDS)
        .filter(|&b| var[b] >= VARIANCE_THRESHOLD)
        .collect();
    for &b in &initial {
        q_prime[b] = if b < 4 {
            1.0
        } else {
            10.0 / (weight(b) * var[b].ln())
        };
        sigma[b] = var[b].sqrt();
    }
    let mut set = initial.clone();
    let mut q = 1.0;
    while !set.is_empty() {
        let s: f64 = set.iter().map(|&b| share(b)).sum();
        let p: f64 = set
            .iter()
            .map(|&b| (sigma[b] / q_prime[b]).powf(share(b)))
            .product();
        q = (2f64.powf(bitrate / s - 1.0) / 2.5) / p.powf(1.0 / s);
        // Subbands that would get a non-positive rate leave the set; repeat until none do.
        let before = set.len();
        set.retain(|&b| q_prime[b] / q < 5.0 * sigma[b]);
        if set.len() == before {
            break;
        }
    }
    let mut widths = [0.0; CODED_SUBBANDS];
    for &b in &initial {
        widths[b] = q_prime[b] / q;
    }
    widths
}

pub(crate) fn zero_bin(width: f64) -> f64 {
    ZERO_BIN_RATIO * width
}

pub(crate) fn quantize(v: f64, q: f64, z: f64) -> i32 {
    let half = z / 2.0;
    if v.abs() <= half {
        0
    } else if v > 0.0 {
        (((v - half) / q) as i64 + 1).min(i64::from(i16::MAX)) as i32
    } else {
        (((v + half) / q) as i64 - 1).max(-i64::from(i16::MAX)) as i32
    }
}

pub(crate) fn dequantize(s: i32, q: f64, z: f64, centre: f64) -> f64 {
    match s {
        0 => 0.0,
        s if s > 0 => q * (f64::from(s) - centre) + z / 2.0,
        s => q * (f64::from(s) + centre) - z / 2.0,
    }
}
