//! Station-side fingerprint quality: a fast, explainable score with per-check advice.
//!
//! [`finger_quality`] judges a greyscale print (ridges dark on a light background) from four
//! block-wise features. They are inspired by features of NIST's NFIQ 2, but this is *not*
//! NFIQ 2: there is no trained model, no NFIQ 2 feature set and no comparison to its scores.
//! It is a screening aid that tells the officer, in plain words, what to fix before recapture.
//!
//! The image is cut into square blocks of 16 px at 500 ppi (scaled with the image resolution).
//! Every block is read for its mean and variance; only foreground blocks are read again, a few
//! times, for the features below (a resolution of 0 is taken as 500 ppi):
//!
//! - **finger area** (cf. NFIQ 2's foreground / "ImgArea"): the fraction of blocks whose grey
//!   variance shows ridges. A print with only part of the finger on the platen fails it.
//! - **ridge flow** (cf. NFIQ 2's orientation certainty level, OCL): per foreground block, the
//!   coherence `(λ1 − λ2) / (λ1 + λ2 + floor)` of the gradient structure tensor, averaged. The
//!   `floor` is a fixed gradient energy standing for sensor noise, so that ridges too faint to be
//!   told from noise do not count as certain just because what little gradient there is lines
//!   up. Smudged prints fail it.
//! - **ridge clarity** (cf. NFIQ 2's local clarity score, LCS): per foreground block, pixels are
//!   projected across the ridge flow onto a one-pixel-binned profile; bins darker than the block
//!   mean are ridge, the rest valley. The separation of the two grey distributions,
//!   `(mean_valley − mean_ridge) / (std_ridge + std_valley + 1)`, is averaged over blocks and mapped
//!   to 0..1 (a clean sinusoidal ridge gives a separation of about 2). Broken ridges put bright
//!   pixels among the dark ones: dry prints fail it.
//! - **contrast** (cf. NFIQ 2's grey-level mean and variance features): per foreground block, the
//!   5th-to-95th percentile range of grey levels over 255, averaged. Faint or smudged prints fail
//!   it. (Per block, so that the white border around the finger does not count as contrast.)
//!
//! The score combines them as `100 · A · F^0.40 · C^0.35 · K^0.25`: a weighted geometric mean of
//! flow (weight 0.40), clarity (0.35) and contrast (0.25), scaled by area. Each factor is the
//! check's value put on a linear ramp from "no evidence" to "good enough" and clamped to 0..1:
//! area 0 → 0.50 of the image, flow 0.15 → 0.90, clarity 0.20 → 0.90, contrast 0 → 0.50 (the
//! lower ends of flow and clarity are what random noise measures). A geometric mean lets one
//! hopeless feature sink the score, which is what the officer needs: random noise has plenty of
//! area and contrast but no ridge flow.
//!
//! The thresholds below were set on the simulator ([`crate::sim::SimScanner`]), whose platen is
//! 320×400 at 500 ppi. They are defaults, not policy: pass/fail thresholds and the area a full
//! finger covers depend on the scanner model and the programme's acceptance rules, and belong to
//! the station's configuration. Nothing here allocates per pixel; a 320×400 print takes about a
//! millisecond in an optimised build.

use serde::Serialize;

use crate::GreyImage;

/// The quality of one fingerprint image, with the checks that make it up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FingerQuality {
    /// 0 (unusable) to 100.
    pub score: u8,
    pub checks: Vec<Check>,
}

/// One measured feature and whether it passes its threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    /// The measured feature, normalised to 0..1 (higher is better).
    pub value: f32,
    /// What the officer should ask for when the check fails, in plain words.
    pub advice: &'static str,
}

/// Check names, as they appear in [`Check::name`].
pub const FINGER_AREA: &str = "finger area";
pub const RIDGE_FLOW: &str = "ridge flow";
pub const RIDGE_CLARITY: &str = "ridge clarity";
pub const CONTRAST: &str = "contrast";

/// Default thresholds and constants. See the module documentation: these belong to configuration.
pub(crate) mod defaults {
    /// Block side at 500 ppi.
    pub const BLOCK_500PPI: u32 = 16;
    /// A block whose grey variance exceeds this shows ridges (background noise is ~3).
    pub const FOREGROUND_VARIANCE: f32 = 40.0;
    /// Gradient energy per pixel (of central differences) taken as sensor noise in the coherence.
    pub const NOISE_ENERGY: f32 = 400.0;
    /// Fraction of the image a full fingertip covers; more area adds nothing to the score.
    pub const FULL_AREA: f32 = 0.50;
    /// Ridge flow and clarity that random noise reaches (no evidence of ridges), and the levels
    /// at and above which they add nothing more to the score.
    pub const NOISE_FLOW: f32 = 0.15;
    pub const FULL_FLOW: f32 = 0.90;
    pub const NOISE_CLARITY: f32 = 0.20;
    pub const FULL_CLARITY: f32 = 0.90;
    /// Contrast (grey range over 255) at and above which contrast adds nothing to the score.
    pub const FULL_CONTRAST: f32 = 0.50;
    /// Separation of ridge and valley grey levels that maps to a clarity of 1.
    pub const FULL_SEPARATION: f32 = 2.0;

    pub const PASS_AREA: f32 = 0.40;
    pub const PASS_FLOW: f32 = 0.55;
    pub const PASS_CLARITY: f32 = 0.70;
    pub const PASS_CONTRAST: f32 = 0.25;

    pub const WEIGHT_FLOW: f32 = 0.40;
    pub const WEIGHT_CLARITY: f32 = 0.35;
    pub const WEIGHT_CONTRAST: f32 = 0.25;
}
use defaults::*;

/// Largest block side; also bounds the profile used for clarity.
const MAX_BLOCK: usize = 32;
/// Profile bins across the ridge flow: a block's diagonal is under `MAX_BLOCK * 1.5`.
const BINS: usize = 2 * MAX_BLOCK;

/// Scores one fingerprint image. Never panics: an image too small for one block, or whose pixel
/// buffer does not match its size, scores 0 with every check failed.
pub fn finger_quality(image: &GreyImage) -> FingerQuality {
    let features = measure(image).unwrap_or_default();
    let score = 100.0
        * ramp(features.area, 0.0, FULL_AREA)
        * ramp(features.flow, NOISE_FLOW, FULL_FLOW).powf(WEIGHT_FLOW)
        * ramp(features.clarity, NOISE_CLARITY, FULL_CLARITY).powf(WEIGHT_CLARITY)
        * ramp(features.contrast, 0.0, FULL_CONTRAST).powf(WEIGHT_CONTRAST);
    let check = |name, value: f32, threshold, advice| Check {
        name,
        passed: value >= threshold,
        value,
        advice,
    };
    FingerQuality {
        score: score.round().clamp(0.0, 100.0) as u8,
        checks: vec![
            check(
                FINGER_AREA,
                features.area,
                PASS_AREA,
                "place the whole fingertip in the middle of the glass, pressed flat",
            ),
            check(
                RIDGE_FLOW,
                features.flow,
                PASS_FLOW,
                "wipe the glass and the finger, then press once without sliding or rolling",
            ),
            check(
                RIDGE_CLARITY,
                features.clarity,
                PASS_CLARITY,
                "the finger is too dry: breathe on it or moisten it lightly, \
                 then press a little harder",
            ),
            check(
                CONTRAST,
                features.contrast,
                PASS_CONTRAST,
                "press the finger flat and a little harder; clean the glass if it stays faint",
            ),
        ],
    }
}

/// 0 at or below `zero`, 1 at or above `full`, linear in between.
fn ramp(value: f32, zero: f32, full: f32) -> f32 {
    ((value - zero) / (full - zero)).clamp(0.0, 1.0)
}

/// The four feature values, each in 0..1.
#[derive(Debug, Default, Clone, Copy)]
struct Features {
    area: f32,
    flow: f32,
    clarity: f32,
    contrast: f32,
}

fn measure(image: &GreyImage) -> Option<Features> {
    let (w, h) = (image.width as usize, image.height as usize);
    if w.checked_mul(h)? != image.pixels.len() {
        return None;
    }
    let ppi = if image.ppi == 0 { 500 } else { image.ppi };
    let block = (BLOCK_500PPI * u32::from(ppi) / 500).clamp(8, MAX_BLOCK as u32) as usize;
    let (columns, rows) = (w / block, h / block);
    if columns == 0 || rows == 0 {
        return None;
    }
    // Centre the block grid; the leftover margin is at most one block less a pixel.
    let (left, top) = ((w - columns * block) / 2, (h - rows * block) / 2);

    let (mut foreground, mut flow_sum, mut clarity_sum) = (0usize, 0.0f32, 0.0f32);
    let mut contrast_sum = 0.0f32;
    for row in 0..rows {
        for column in 0..columns {
            let b = Block {
                pixels: &image.pixels,
                width: w,
                height: h,
                x0: left + column * block,
                y0: top + row * block,
                side: block,
            };
            let (mean, variance) = b.mean_variance();
            if variance <= FOREGROUND_VARIANCE {
                continue;
            }
            foreground += 1;
            contrast_sum += b.contrast();
            let tensor = b.structure_tensor();
            flow_sum += tensor.coherence();
            clarity_sum += b.clarity(mean, tensor.normal());
        }
    }
    let blocks = (rows * columns) as f32;
    if foreground == 0 {
        return Some(Features::default());
    }
    let n = foreground as f32;
    Some(Features {
        area: n / blocks,
        flow: (flow_sum / n).clamp(0.0, 1.0),
        clarity: (clarity_sum / n).clamp(0.0, 1.0),
        contrast: (contrast_sum / n).clamp(0.0, 1.0),
    })
}

/// Sums of the gradient structure tensor over a block.
#[derive(Debug, Clone, Copy)]
struct Tensor {
    xx: f32,
    yy: f32,
    xy: f32,
    pixels: f32,
}

impl Tensor {
    /// `(λ1 − λ2) / (λ1 + λ2 + noise)`: 1 for perfectly parallel ridges well above the noise.
    fn coherence(self) -> f32 {
        let spread = (self.xx - self.yy).hypot(2.0 * self.xy);
        let energy = self.xx + self.yy + NOISE_ENERGY * self.pixels;
        if energy > 0.0 {
            spread / energy
        } else {
            0.0
        }
    }

    /// Unit vector across the ridges (the dominant gradient direction).
    fn normal(self) -> (f32, f32) {
        let angle = 0.5 * (2.0 * self.xy).atan2(self.xx - self.yy);
        (angle.cos(), angle.sin())
    }
}

/// One square block of the image; reads pixels in place.
struct Block<'a> {
    pixels: &'a [u8],
    width: usize,
    height: usize,
    x0: usize,
    y0: usize,
    side: usize,
}

impl Block<'_> {
    fn rows(&self) -> impl Iterator<Item = (usize, &[u8])> + '_ {
        (self.y0..self.y0 + self.side).map(move |y| {
            let start = y * self.width + self.x0;
            (y, &self.pixels[start..start + self.side])
        })
    }

    fn mean_variance(&self) -> (f32, f32) {
        let (mut sum, mut squares) = (0u64, 0u64);
        for (_, row) in self.rows() {
            for &v in row {
                sum += u64::from(v);
                squares += u64::from(v) * u64::from(v);
            }
        }
        let n = (self.side * self.side) as f64;
        let mean = sum as f64 / n;
        let variance = (squares as f64 / n - mean * mean).max(0.0);
        (mean as f32, variance as f32)
    }

    /// The 5th-to-95th percentile range of the block's grey levels, over 255.
    fn contrast(&self) -> f32 {
        let mut histogram = [0u16; 256];
        for (_, row) in self.rows() {
            for &v in row {
                histogram[usize::from(v)] += 1;
            }
        }
        let total = self.side * self.side;
        let percentile = |p: usize| {
            let rank = total * p / 100;
            let mut seen = 0usize;
            for (level, &count) in histogram.iter().enumerate() {
                seen += usize::from(count);
                if seen > rank {
                    return level;
                }
            }
            255
        };
        (percentile(95) - percentile(5)) as f32 / 255.0
    }

    /// Central differences, clamped at the image border.
    fn structure_tensor(&self) -> Tensor {
        let at = |x: usize, y: usize| f32::from(self.pixels[y * self.width + x]);
        let (mut xx, mut yy, mut xy) = (0.0f32, 0.0f32, 0.0f32);
        for y in self.y0..self.y0 + self.side {
            let (up, down) = (y.saturating_sub(1), (y + 1).min(self.height - 1));
            for x in self.x0..self.x0 + self.side {
                let (before, after) = (x.saturating_sub(1), (x + 1).min(self.width - 1));
                let gx = at(after, y) - at(before, y);
                let gy = at(x, down) - at(x, up);
                xx += gx * gx;
                yy += gy * gy;
                xy += gx * gy;
            }
        }
        Tensor {
            xx,
            yy,
            xy,
            pixels: (self.side * self.side) as f32,
        }
    }

    /// Ridge/valley separation across the flow, mapped to 0..1.
    fn clarity(&self, mean: f32, (nx, ny): (f32, f32)) -> f32 {
        let centre = (self.side as f32 - 1.0) / 2.0;
        let bin_of = |x: usize, y: usize| {
            let t = (x - self.x0) as f32 - centre;
            let u = (y - self.y0) as f32 - centre;
            ((t * nx + u * ny + (BINS / 2) as f32) as usize).min(BINS - 1)
        };
        let mut sums = [0u32; BINS];
        let mut counts = [0u32; BINS];
        for (y, row) in self.rows() {
            for (i, &v) in row.iter().enumerate() {
                let bin = bin_of(self.x0 + i, y);
                sums[bin] += u32::from(v);
                counts[bin] += 1;
            }
        }
        let mut ridge_bin = [false; BINS];
        for ((is_ridge, &sum), &count) in ridge_bin.iter_mut().zip(&sums).zip(&counts) {
            *is_ridge = count > 0 && (sum as f32) < mean * count as f32;
        }
        // [count, sum, sum of squares] for ridge and valley pixels.
        let mut stats = [[0.0f32; 3]; 2];
        for (y, row) in self.rows() {
            for (i, &v) in row.iter().enumerate() {
                let s = &mut stats[usize::from(ridge_bin[bin_of(self.x0 + i, y)])];
                let v = f32::from(v);
                s[0] += 1.0;
                s[1] += v;
                s[2] += v * v;
            }
        }
        let [valley, ridge] = stats;
        if ridge[0] == 0.0 || valley[0] == 0.0 {
            return 0.0;
        }
        let spread = |s: [f32; 3]| {
            let m = s[1] / s[0];
            (m, (s[2] / s[0] - m * m).max(0.0).sqrt())
        };
        let ((ridge_mean, ridge_std), (valley_mean, valley_std)) = (spread(ridge), spread(valley));
        let separation = (valley_mean - ridge_mean) / (ridge_std + valley_std + 1.0);
        (separation / FULL_SEPARATION).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::FingerPosition::{self, *};
    use crate::sim::{Defect, SimScanner};
    use crate::FingerprintScanner;

    const SEEDS: u64 = 10;
    const KINDS: [Option<Defect>; 4] = [
        None,
        Some(Defect::Dry),
        Some(Defect::Smudged),
        Some(Defect::Partial),
    ];

    fn print(seed: u64, finger: FingerPosition, defect: Option<Defect>) -> GreyImage {
        let mut scanner = SimScanner::new(seed);
        if let Some(defect) = defect {
            scanner = scanner.with_defect(finger, defect);
        }
        scanner.capture(finger).unwrap().image
    }

    /// The finger used for seed `seed`, so that the ten seeds cover all ten fingers.
    fn finger(seed: u64) -> FingerPosition {
        FingerPosition::ALL[seed as usize % 10]
    }

    fn check<'a>(quality: &'a FingerQuality, name: &str) -> &'a Check {
        quality.checks.iter().find(|c| c.name == name).unwrap()
    }

    fn grey(width: u32, height: u32, pixels: Vec<u8>) -> GreyImage {
        GreyImage {
            width,
            height,
            ppi: 500,
            pixels,
        }
    }

    /// Scores of every kind over the seeds: `scores[kind][seed]`, with the checks.
    fn scores() -> Vec<Vec<FingerQuality>> {
        KINDS
            .iter()
            .map(|&kind| {
                (0..SEEDS)
                    .map(|seed| finger_quality(&print(seed, finger(seed), kind)))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn quality_clean_prints_beat_every_defect() {
        let scores = scores();
        let mean =
            |k: usize| scores[k].iter().map(|q| f32::from(q.score)).sum::<f32>() / SEEDS as f32;
        for (k, kind) in KINDS.iter().enumerate() {
            let per_seed: Vec<u8> = scores[k].iter().map(|q| q.score).collect();
            println!("{kind:?}: mean {:.1}, per seed {per_seed:?}", mean(k));
        }
        for k in 1..KINDS.len() {
            assert!(mean(0) > mean(k) + 15.0, "{:?}", KINDS[k]);
            let wins = (0..SEEDS as usize)
                .filter(|&s| scores[0][s].score > scores[k][s].score)
                .count();
            assert!(wins >= 9, "clean beat {:?} on {wins} seeds", KINDS[k]);
        }
        for q in &scores[0] {
            assert!(q.score >= 70, "{q:?}");
            assert!(q.checks.iter().all(|c| c.passed), "{q:?}");
        }
    }

    #[test]
    fn quality_each_defect_fails_its_own_check() {
        let scores = scores();
        for (k, name) in [(1, RIDGE_CLARITY), (2, RIDGE_FLOW), (3, FINGER_AREA)] {
            let failed = scores[k].iter().filter(|q| !check(q, name).passed).count();
            assert!(
                failed >= 8,
                "{:?} failed {name} on {failed} seeds",
                KINDS[k]
            );
        }
        let faint = scores[2]
            .iter()
            .filter(|q| !check(q, CONTRAST).passed)
            .count();
        assert!(faint >= 8, "smudged prints are faint");
    }

    #[test]
    fn quality_checks_are_named_normalised_and_advised() {
        let q = finger_quality(&print(1, RightIndex, Some(Defect::Dry)));
        let names: Vec<&str> = q.checks.iter().map(|c| c.name).collect();
        assert_eq!(names, [FINGER_AREA, RIDGE_FLOW, RIDGE_CLARITY, CONTRAST]);
        for c in &q.checks {
            assert!((0.0..=1.0).contains(&c.value), "{c:?}");
            assert!(!c.advice.is_empty());
        }
        let json = serde_json::to_value(&q).unwrap();
        assert_eq!(json["checks"][2]["name"], "ridge clarity");
        assert_eq!(json["score"], q.score);
    }

    #[test]
    fn quality_blank_grey_and_noise_score_low() {
        let (w, h) = (SimScanner::WIDTH, SimScanner::HEIGHT);
        let n = (w * h) as usize;
        let white = finger_quality(&grey(w, h, vec![255; n]));
        assert!(white.score < 10, "{white:?}");
        assert!(!check(&white, FINGER_AREA).passed);
        let mid = finger_quality(&grey(w, h, vec![128; n]));
        assert!(mid.score < 10, "{mid:?}");
        // Uniform noise from a small linear congruential generator.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let noise: Vec<u8> = (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 56) as u8
            })
            .collect();
        let noisy = finger_quality(&grey(w, h, noise));
        assert!(noisy.score < 10, "{noisy:?}");
        assert!(!check(&noisy, RIDGE_FLOW).passed);
        assert!(!check(&noisy, RIDGE_CLARITY).passed);
    }

    #[test]
    fn quality_never_panics_on_odd_images() {
        let cases = [
            grey(1, 1, vec![0]),
            grey(3, 500, vec![40; 1500]),
            grey(500, 3, (0..1500).map(|i| (i * 37 % 256) as u8).collect()),
            grey(0, 0, vec![]),
            grey(17, 17, (0..289).map(|i| (i * 91 % 256) as u8).collect()),
            grey(10, 10, vec![0; 5]), // pixel count does not match the size
            GreyImage {
                ppi: 0,
                ..grey(40, 40, vec![9; 1600])
            },
            GreyImage {
                ppi: u16::MAX,
                ..grey(70, 70, (0..4900).map(|i| (i % 256) as u8).collect())
            },
        ];
        for image in &cases {
            let q = finger_quality(image);
            assert!(q.score <= 100);
            assert_eq!(q.checks.len(), 4);
        }
        assert_eq!(finger_quality(&cases[0]).score, 0);
    }
}
