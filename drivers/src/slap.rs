//! Slap segmentation: find the separate fingers in a four-finger (or two-thumb) slap image and
//! check that the count is what the officer asked for.
//!
//! Owns the finger count and the finger boxes, nothing else: quality is judged per finger by
//! [`crate::quality`] on the cropped prints, and a vendor slap scanner's own segmentation is never
//! trusted over this one. A three-finger slap offered as a four-finger slap is refused with
//! [`SlapError::FingerCount`], so a missing finger is recorded as an exception by the officer
//! instead of a wrong finger being filed under the wrong position.
//!
//! Method: blocks of 16 px (at 500 ppi) whose grey variance shows ridges are foreground; blocks
//! are joined 8-connected; parts stacked one above the other (a crease across a print) are one
//! finger; what is smaller than a quarter fingertip is dropped as a smudge; the rest, left to
//! right, are the fingers. Fingers must not touch (one clear block, ≈ 1 mm,
//! between them): touching fingers merge, the count comes out short and the slap is refused —
//! never guessed apart.

use crate::capture::GreyImage;
use crate::quality::defaults::{BLOCK_500PPI, FOREGROUND_VARIANCE};

/// A finger found in the slap, in pixels of the slap image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FingerBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SlapError {
    #[error(
        "the slap shows {found} finger(s) where {expected} were expected: place all {expected} \
         fingers flat and apart, or record the missing finger as an exception"
    )]
    FingerCount { expected: usize, found: usize },
    #[error("image is {width}x{height} but holds {len} pixels")]
    PixelCount { width: u32, height: u32, len: usize },
}

/// Smallest finger, as a fraction of a 0.5 × 0.5 inch fingertip (≈ 250 × 250 px at 500 ppi).
const MIN_FINGER_FRACTION: f32 = 0.25;

/// Find the fingers, left to right.
pub fn find_fingers(image: &GreyImage) -> Result<Vec<FingerBox>, SlapError> {
    let (w, h) = (image.width as usize, image.height as usize);
    if image.pixels.len() != w * h {
        return Err(SlapError::PixelCount {
            width: image.width,
            height: image.height,
            len: image.pixels.len(),
        });
    }
    let ppi = u32::from(image.ppi.max(100));
    let block = (BLOCK_500PPI * ppi / 500).max(4) as usize;
    let (bw, bh) = (w / block, h / block);
    if bw == 0 || bh == 0 {
        return Ok(Vec::new());
    }
    let mut fg = vec![false; bw * bh];
    for by in 0..bh {
        for bx in 0..bw {
            let (mut sum, mut sq) = (0f64, 0f64);
            for y in by * block..(by + 1) * block {
                for &p in &image.pixels[y * w + bx * block..y * w + (bx + 1) * block] {
                    sum += f64::from(p);
                    sq += f64::from(p) * f64::from(p);
                }
            }
            let n = (block * block) as f64;
            let var = sq / n - (sum / n).powi(2);
            fg[by * bw + bx] = var > f64::from(FOREGROUND_VARIANCE);
        }
    }

    let fingertip_blocks = (ppi as f32 / 2.0 / block as f32).powi(2);
    let min_blocks = (fingertip_blocks * MIN_FINGER_FRACTION).max(4.0) as usize;
    let mut label = vec![0u32; bw * bh];
    let mut parts = Vec::new();
    let mut next = 0u32;
    for start in 0..bw * bh {
        if !fg[start] || label[start] != 0 {
            continue;
        }
        next += 1;
        let (mut x0, mut y0, mut x1, mut y1, mut area) = (usize::MAX, usize::MAX, 0, 0, 0usize);
        let mut stack = vec![start];
        label[start] = next;
        while let Some(i) = stack.pop() {
            let (x, y) = (i % bw, i / bw);
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            area += 1;
            for dy in -1i64..=1 {
                for dx in -1i64..=1 {
                    let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                    if nx < 0 || ny < 0 || nx >= bw as i64 || ny >= bh as i64 {
                        continue;
                    }
                    let j = ny as usize * bw + nx as usize;
                    if fg[j] && label[j] == 0 {
                        label[j] = next;
                        stack.push(j);
                    }
                }
            }
        }
        parts.push(((x0, y0, x1, y1), area));
    }
    // A finger whose print has a pale band (a crease, a dry patch) comes out as two parts, one
    // above the other; fingers of a slap sit side by side. Parts that share most of their width
    // are one finger.
    parts.sort_by_key(|p| p.0 .0);
    let mut merged: Vec<((usize, usize, usize, usize), usize)> = Vec::new();
    for (r, area) in parts {
        let same = merged.iter_mut().find(|(m, _)| {
            let overlap = (m.2.min(r.2) + 1).saturating_sub(m.0.max(r.0));
            let narrower = (m.2 - m.0 + 1).min(r.2 - r.0 + 1);
            overlap * 2 > narrower
        });
        match same {
            Some((m, a)) => {
                *m = (m.0.min(r.0), m.1.min(r.1), m.2.max(r.2), m.3.max(r.3));
                *a += area;
            }
            None => merged.push((r, area)),
        }
    }
    let fingers = merged
        .into_iter()
        .filter(|&(_, area)| area >= min_blocks)
        .map(|((x0, y0, x1, y1), _)| FingerBox {
            x: (x0 * block) as u32,
            y: (y0 * block) as u32,
            width: ((x1 - x0 + 1) * block) as u32,
            height: ((y1 - y0 + 1) * block) as u32,
        })
        .collect();
    Ok(fingers)
}

/// Segment a slap that must hold exactly `expected` fingers.
pub fn segment(image: &GreyImage, expected: usize) -> Result<Vec<FingerBox>, SlapError> {
    let fingers = find_fingers(image)?;
    if fingers.len() != expected {
        return Err(SlapError::FingerCount {
            expected,
            found: fingers.len(),
        });
    }
    Ok(fingers)
}

/// Cut one finger out of the slap (for per-finger quality and storage).
pub fn crop(image: &GreyImage, b: FingerBox) -> GreyImage {
    let (w, x0, y0) = (image.width as usize, b.x as usize, b.y as usize);
    let mut pixels = Vec::with_capacity((b.width * b.height) as usize);
    for y in y0..y0 + b.height as usize {
        pixels.extend_from_slice(&image.pixels[y * w + x0..y * w + x0 + b.width as usize]);
    }
    GreyImage {
        width: b.width,
        height: b.height,
        ppi: image.ppi,
        pixels,
    }
}

/// Lay single prints side by side on a white platen, as a slap scanner would see them: `gap`
/// pixels between fingers, `margin` around, each print shifted down by its `drop` (fingers of a
/// hand do not line up). Used by the simulator and the tests.
pub fn compose(prints: &[&GreyImage], gap: u32, margin: u32, drops: &[u32]) -> GreyImage {
    let drop = |i: usize| drops.get(i).copied().unwrap_or(0);
    let width = margin * 2
        + prints.iter().map(|p| p.width).sum::<u32>()
        + gap * prints.len().saturating_sub(1) as u32;
    let height = margin * 2
        + prints
            .iter()
            .enumerate()
            .map(|(i, p)| p.height + drop(i))
            .max()
            .unwrap_or(0);
    let mut pixels = vec![255u8; (width * height) as usize];
    let mut x = margin;
    for (i, p) in prints.iter().enumerate() {
        let y0 = margin + drop(i);
        for row in 0..p.height {
            let dst = ((y0 + row) * width + x) as usize;
            let src = (row * p.width) as usize;
            pixels[dst..dst + p.width as usize]
                .copy_from_slice(&p.pixels[src..src + p.width as usize]);
        }
        x += p.width + gap;
    }
    GreyImage {
        width,
        height,
        ppi: prints.first().map_or(500, |p| p.ppi),
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimScanner;
    use crate::{FingerPosition as F, FingerprintScanner};

    fn prints(seed: u64, fingers: &[F]) -> Vec<GreyImage> {
        let mut s = SimScanner::new(seed);
        fingers
            .iter()
            .map(|&f| s.capture(f).unwrap().image)
            .collect()
    }

    const RIGHT_FOUR: [F; 4] = [F::RightIndex, F::RightMiddle, F::RightRing, F::RightLittle];

    #[test]
    fn four_finger_slap_segments_into_four_boxes_left_to_right() {
        for seed in 1..=5 {
            let p = prints(seed, &RIGHT_FOUR);
            let refs: Vec<&GreyImage> = p.iter().collect();
            let slap = compose(&refs, 40, 60, &[30, 0, 20, 70]);
            let boxes = segment(&slap, 4).unwrap();
            assert_eq!(boxes.len(), 4);
            for (i, b) in boxes.iter().enumerate() {
                // Each box lies inside its own print's frame (one block of slack) and covers
                // most of it.
                let left = 60 + i as u32 * (SimScanner::WIDTH + 40);
                assert!(b.x + 16 >= left, "seed {seed} box {i}: {b:?}");
                assert!(
                    b.x + b.width <= left + SimScanner::WIDTH + 16,
                    "seed {seed} box {i}: {b:?}"
                );
                assert!(
                    b.width >= SimScanner::WIDTH / 2,
                    "seed {seed} box {i}: {b:?}"
                );
                let cropped = crop(&slap, *b);
                assert_eq!(cropped.pixels.len(), (b.width * b.height) as usize);
            }
        }
    }

    #[test]
    fn three_finger_slap_offered_as_four_is_refused() {
        let p = prints(7, &RIGHT_FOUR[..3]);
        let refs: Vec<&GreyImage> = p.iter().collect();
        let slap = compose(&refs, 40, 60, &[10, 0, 25]);
        let err = segment(&slap, 4).unwrap_err();
        assert_eq!(
            err,
            SlapError::FingerCount {
                expected: 4,
                found: 3
            }
        );
        assert!(err
            .to_string()
            .contains("3 finger(s) where 4 were expected"));
        assert_eq!(segment(&slap, 3).unwrap().len(), 3);
    }

    #[test]
    fn fingers_touching_each_other_count_as_fewer_and_are_refused() {
        // No gap at all: two prints merge into one blob, so the count is wrong and refused
        // rather than guessed.
        let p = prints(3, &RIGHT_FOUR);
        let refs: Vec<&GreyImage> = p.iter().collect();
        let slap = compose(&refs, 0, 60, &[0; 4]);
        assert!(matches!(
            segment(&slap, 4),
            Err(SlapError::FingerCount { expected: 4, found }) if found < 4
        ));
    }

    #[test]
    fn two_thumbs_and_an_empty_platen() {
        let p = prints(2, &[F::LeftThumb, F::RightThumb]);
        let refs: Vec<&GreyImage> = p.iter().collect();
        assert_eq!(segment(&compose(&refs, 80, 60, &[]), 2).unwrap().len(), 2);
        let empty = GreyImage {
            width: 1600,
            height: 800,
            ppi: 500,
            pixels: vec![255; 1600 * 800],
        };
        assert_eq!(find_fingers(&empty).unwrap(), vec![]);
        assert!(matches!(
            segment(&empty, 4),
            Err(SlapError::FingerCount { found: 0, .. })
        ));
    }

    #[test]
    fn a_small_smudge_is_not_a_finger() {
        let p = prints(4, &RIGHT_FOUR[..3]);
        let refs: Vec<&GreyImage> = p.iter().collect();
        let mut slap = compose(&refs, 40, 120, &[0; 3]);
        // A 48x48 px dirty patch on the platen, right of the third finger.
        let x0 = (120 + 3 * SimScanner::WIDTH + 2 * 40 + 20) as usize;
        let w = slap.width as usize;
        for y in 100..148 {
            for x in x0..x0 + 48 {
                slap.pixels[y * w + x] = if (x + y) % 4 < 2 { 0 } else { 255 };
            }
        }
        assert_eq!(find_fingers(&slap).unwrap().len(), 3);
    }

    #[test]
    fn wrong_pixel_count_is_an_error_not_a_panic() {
        let bad = GreyImage {
            width: 100,
            height: 100,
            ppi: 500,
            pixels: vec![0; 10],
        };
        assert!(matches!(
            find_fingers(&bad),
            Err(SlapError::PixelCount { .. })
        ));
    }
}
