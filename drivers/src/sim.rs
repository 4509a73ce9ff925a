//! Simulated capture devices, deterministic from a seed.
//!
//! Owns [`SimCamera`], [`SimScanner`] and [`SimSignaturePad`], used by `--simulate`, the demo and
//! most tests. The same seed and the same sequence of calls give byte-identical images; only
//! `captured_at_ms` comes from outside, through each device's `clock`, which tests may pin.
//! A citizen is the seed: the same seed gives the same face and the same ridge pattern on each
//! finger, while pose, placement, exposure and noise change from call to call.
//!
//! The `quality` these devices report is a shortcut the simulator can take because it knows what
//! it drew (and which defect it injected). It is not an assessment: the station's quality engine
//! judges every capture itself. This module touches no hardware, files or network.

use std::f32::consts::TAU;
use std::time::{SystemTime, UNIX_EPOCH};

use image::codecs::jpeg::JpegEncoder;
use image::ExtendedColorType;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::capture::*;

/// Wall-clock time in unix milliseconds; the default `clock` of every simulated device.
pub fn system_clock() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

// Random streams: one per purpose, so that adding a draw to one never shifts another.
const FACE_SUBJECT: u64 = 1;
const FACE_FRAME: u64 = 2;
const SIGNATURE: u64 = 3;
const FINGER_PATTERN: u64 = 0x10; // + finger code
const FINGER_CAPTURE: u64 = 0x20; // + finger code

struct Rng(ChaCha8Rng);

impl Rng {
    fn new(seed: u64, purpose: u64, call: u64) -> Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(purpose << 48 | (call & 0xFFFF_FFFF_FFFF));
        Rng(rng)
    }
    fn unit(&mut self) -> f32 {
        (self.0.next_u32() >> 8) as f32 / (1u32 << 24) as f32
    }
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
    fn below(&mut self, n: u32) -> u32 {
        self.0.next_u32() % n
    }
}

fn to_u8(value: f32) -> u8 {
    value.round().clamp(0.0, 255.0) as u8
}

/// A simulated portrait camera: 480×640 RGB, JPEG quality 85.
#[derive(Debug)]
pub struct SimCamera {
    seed: u64,
    frames: u64,
    pub clock: fn() -> i64,
}

impl SimCamera {
    pub const WIDTH: u32 = 480;
    pub const HEIGHT: u32 = 640;
    pub const JPEG_QUALITY: u8 = 85;

    pub fn new(seed: u64) -> Self {
        SimCamera {
            seed,
            frames: 0,
            clock: system_clock,
        }
    }
}

impl Camera for SimCamera {
    fn name(&self) -> String {
        format!("simulated camera (seed {})", self.seed)
    }

    fn frame(&mut self) -> Result<RgbFrame, CaptureError> {
        let frame = self.frames;
        self.frames += 1;
        let subject = Subject::new(&mut Rng::new(self.seed, FACE_SUBJECT, 0));
        let (rgb, _) = subject.photograph(&mut Rng::new(self.seed, FACE_FRAME, frame));
        Ok(RgbFrame {
            width: Self::WIDTH,
            height: Self::HEIGHT,
            rgb,
            captured_at_ms: (self.clock)(),
        })
    }

    fn capture_still(&mut self) -> Result<FaceCapture, CaptureError> {
        let frame = self.frames;
        self.frames += 1;
        let subject = Subject::new(&mut Rng::new(self.seed, FACE_SUBJECT, 0));
        let (rgb, quality) = subject.photograph(&mut Rng::new(self.seed, FACE_FRAME, frame));
        let mut jpeg = Vec::with_capacity(48 * 1024);
        JpegEncoder::new_with_quality(&mut jpeg, Self::JPEG_QUALITY)
            .encode(&rgb, Self::WIDTH, Self::HEIGHT, ExtendedColorType::Rgb8)
            .map_err(|e| CaptureError::Image(e.to_string()))?;
        Ok(FaceCapture {
            image: FaceImage {
                width: Self::WIDTH,
                height: Self::HEIGHT,
                jpeg,
            },
            quality,
            captured_at_ms: (self.clock)(),
        })
    }
}

/// What stays the same about one simulated person from photo to photo.
struct Subject {
    skin: [f32; 3],
    hair: [f32; 3],
    clothes: [f32; 3],
    face_rx: f32,
    face_ry: f32,
    offset: (f32, f32),
    hair_volume: f32,
}

impl Subject {
    fn new(rng: &mut Rng) -> Subject {
        let (light, dark) = ([236.0, 198.0, 172.0], [92.0, 62.0, 46.0]);
        let t = rng.unit();
        let hair_tone = rng.range(20.0, 90.0);
        Subject {
            skin: std::array::from_fn(|i| light[i] + (dark[i] - light[i]) * t),
            hair: [hair_tone, hair_tone * 0.8, hair_tone * 0.65],
            clothes: [
                rng.range(30.0, 120.0),
                rng.range(30.0, 120.0),
                rng.range(40.0, 140.0),
            ],
            face_rx: rng.range(92.0, 110.0),
            face_ry: rng.range(128.0, 146.0),
            offset: (rng.range(-10.0, 10.0), rng.range(-8.0, 8.0)),
            hair_volume: rng.range(0.9, 1.2),
        }
    }

    /// Renders one frame; returns RGB bytes and the simulator's quality figure.
    fn photograph(&self, rng: &mut Rng) -> (Vec<u8>, u8) {
        let (w, h) = (SimCamera::WIDTH as usize, SimCamera::HEIGHT as usize);
        let motion = (rng.range(-3.0, 3.0), rng.range(-3.0, 3.0));
        let exposure = rng.range(0.94, 1.06);
        let (cx, cy) = (
            240.0 + self.offset.0 + motion.0,
            290.0 + self.offset.1 + motion.1,
        );
        let (rx, ry) = (self.face_rx, self.face_ry);
        let shade = |c: [f32; 3], k: f32| c.map(|v| v * k);

        let mut canvas = Canvas {
            width: w,
            height: h,
            rgb: vec![0.0; w * h * 3],
        };
        for (y, row) in canvas.rgb.chunks_exact_mut(w * 3).enumerate() {
            let fall = y as f32 / h as f32;
            for (x, px) in row.chunks_exact_mut(3).enumerate() {
                let glow = 10.0 * (1.0 - (x as f32 / w as f32 - 0.5).abs() * 2.0);
                px.copy_from_slice(&[
                    208.0 - 22.0 * fall + glow,
                    214.0 - 18.0 * fall + glow,
                    226.0 - 12.0 * fall + glow,
                ]);
            }
        }
        let (skin, hair, eye_y) = (self.skin, self.hair, cy - ry * 0.12);
        let lips = [skin[0] * 0.78, skin[1] * 0.52, skin[2] * 0.52];
        let (left, right) = (cx - rx * 0.38, cx + rx * 0.38);
        let (white, iris) = ([232.0, 230.0, 224.0], [48.0, 34.0, 26.0]);
        let hair_rx = rx * 1.08 * self.hair_volume;
        // A table reads better than rustfmt's one-number-per-line layout of it.
        #[rustfmt::skip]
        let layers = [
            // [centre x, centre y, radius x, radius y], colour, opacity, rim shading; back to front
            ([cx, cy + ry + 35.0, rx * 0.42, 90.0], shade(skin, 0.85), 1.0, 0.1),   // neck
            ([cx, h as f32 + 40.0, 250.0, 200.0], self.clothes, 1.0, 0.25),         // shoulders
            ([cx, cy - ry * 0.12, hair_rx, ry * 1.02], hair, 1.0, 0.15),
            ([cx - rx * 0.97, cy + 5.0, 14.0, 28.0], shade(skin, 0.92), 1.0, 0.2),  // ears
            ([cx + rx * 0.97, cy + 5.0, 14.0, 28.0], shade(skin, 0.92), 1.0, 0.2),
            ([cx, cy, rx, ry], skin, 1.0, 0.22),
            ([cx, cy - ry * 0.78, rx * 0.92, ry * 0.36], hair, 1.0, 0.1),           // fringe
            ([left, eye_y - 20.8, 21.0, 4.0], hair, 0.85, 0.0),                     // brows
            ([right, eye_y - 19.2, 21.0, 4.0], hair, 0.85, 0.0),
            ([left, eye_y - 0.8, 15.0, 7.0], white, 1.0, 0.1),                      // eyes
            ([right, eye_y + 0.8, 15.0, 7.0], white, 1.0, 0.1),
            ([left, eye_y - 0.8, 6.5, 6.5], iris, 1.0, 0.0),
            ([right, eye_y + 0.8, 6.5, 6.5], iris, 1.0, 0.0),
            ([cx, cy + ry * 0.1, 10.0, 28.0], shade(skin, 0.86), 0.5, 0.0),         // nose
            ([cx - 7.0, cy + ry * 0.27, 4.5, 2.5], shade(skin, 0.4), 0.7, 0.0),
            ([cx + 7.0, cy + ry * 0.27, 4.5, 2.5], shade(skin, 0.4), 0.7, 0.0),
            ([cx, cy + ry * 0.5, rx * 0.3, 7.0], lips, 0.9, 0.1),                   // mouth
        ];
        for (ellipse, colour, opacity, rim) in layers {
            canvas.paint(ellipse, colour, opacity, rim);
        }

        let mut rgb = Vec::with_capacity(canvas.rgb.len());
        for &v in &canvas.rgb {
            rgb.push(to_u8(v * exposure + rng.range(-2.5, 2.5)));
        }
        // Exposure is measured on the top corners, which are background in every frame.
        let corner = |x0: usize| {
            let sum: u32 = (0..40)
                .flat_map(|y| (x0..x0 + 40).map(move |x| (y * w + x) * 3))
                .map(|i| {
                    (299 * u32::from(rgb[i])
                        + 587 * u32::from(rgb[i + 1])
                        + 114 * u32::from(rgb[i + 2]))
                        / 1000
                })
                .sum();
            sum as f32 / 1600.0
        };
        let luma = (corner(0) + corner(w - 40)) / 2.0;
        let off_centre = (cx - w as f32 / 2.0).hypot(cy - h as f32 * 0.45);
        let quality = 100.0 - 1.2 * off_centre - 0.8 * (luma - 205.0).abs();
        (rgb, to_u8(quality.clamp(0.0, 100.0)))
    }
}

/// Linear RGB working buffer for [`Subject::photograph`].
struct Canvas {
    width: usize,
    height: usize,
    rgb: Vec<f32>,
}

impl Canvas {
    /// Blends a filled ellipse with a one-pixel soft edge; `shade` darkens it toward its rim.
    fn paint(&mut self, [cx, cy, rx, ry]: [f32; 4], colour: [f32; 3], alpha: f32, shade: f32) {
        let span = |c: f32, r: f32, max: usize| {
            ((c - r - 1.0).max(0.0) as usize)..((c + r + 2.0).max(0.0) as usize).min(max)
        };
        let edge = rx.min(ry);
        for y in span(cy, ry, self.height) {
            let ny = (y as f32 + 0.5 - cy) / ry;
            for x in span(cx, rx, self.width) {
                let nx = (x as f32 + 0.5 - cx) / rx;
                let d2 = nx * nx + ny * ny;
                let a = alpha * ((1.0 - d2.sqrt()) * edge + 0.5).clamp(0.0, 1.0);
                if a > 0.0 {
                    let i = (y * self.width + x) * 3;
                    for (px, c) in self.rgb[i..i + 3].iter_mut().zip(colour) {
                        *px += (c * (1.0 - shade * d2) - *px) * a;
                    }
                }
            }
        }
    }
}

/// A capture fault to inject on one finger of a [`SimScanner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// Faint, broken ridges.
    Dry,
    /// Blurred, low-contrast ridges.
    Smudged,
    /// Only part of the finger touches the platen.
    Partial,
    /// No finger arrives: capture fails with [`CaptureError::NoFinger`].
    Missing,
}

/// A simulated single-finger scanner: 320×400 greyscale at 500 ppi.
#[derive(Debug)]
pub struct SimScanner {
    seed: u64,
    calls: u64,
    defects: [Option<Defect>; 10],
    pub clock: fn() -> i64,
}

impl SimScanner {
    pub const WIDTH: u32 = 320;
    pub const HEIGHT: u32 = 400;
    pub const PPI: u16 = 500;

    pub fn new(seed: u64) -> Self {
        SimScanner {
            seed,
            calls: 0,
            defects: [None; 10],
            clock: system_clock,
        }
    }

    /// Makes every capture of `position` show `defect`.
    pub fn with_defect(mut self, position: FingerPosition, defect: Defect) -> Self {
        self.defects[position.index()] = Some(defect);
        self
    }
}

impl FingerprintScanner for SimScanner {
    fn name(&self) -> String {
        format!("simulated fingerprint scanner (seed {})", self.seed)
    }

    fn capture(&mut self, position: FingerPosition) -> Result<FingerCapture, CaptureError> {
        let call = self.calls;
        self.calls += 1;
        let defect = self.defects[position.index()];
        let code = u64::from(position.code());
        let mut rng = Rng::new(self.seed, FINGER_CAPTURE + code, call);
        // Clean prints score 70-95; each defect lands in its own lower band.
        let quality = match defect {
            None => 70 + rng.below(26),
            Some(Defect::Dry) => 35 + rng.below(16),
            Some(Defect::Smudged) => 25 + rng.below(16),
            Some(Defect::Partial) => 20 + rng.below(16),
            Some(Defect::Missing) => return Err(CaptureError::NoFinger(position.name().into())),
        };
        let pattern = Ridges::new(&mut Rng::new(self.seed, FINGER_PATTERN + code, 0), position);
        Ok(FingerCapture {
            position,
            image: GreyImage {
                width: Self::WIDTH,
                height: Self::HEIGHT,
                ppi: Self::PPI,
                pixels: pattern.print(defect, &mut rng),
            },
            quality: quality as u8,
            captured_at_ms: (self.clock)(),
        })
    }
}

/// The shape of the ridge flow around the core.
enum Flow {
    /// Ridges recurve around the core and leave along `exit` (a unit vector).
    Loop { exit: (f32, f32) },
    /// Ridges circle an elongated core (`half` px, along `axis`), spiralling `turns` times.
    Whorl {
        axis: (f32, f32),
        half: f32,
        turns: f32,
    },
    /// Ridges cross the finger, lifted by `lift` px over the core.
    Arch { lift: f32 },
}

/// One finger's ridge pattern: fixed per seed and finger, like a real finger.
struct Ridges {
    flow: Flow,
    core: (f32, f32),
    period: f32,
    finger: (f32, f32),
    warp: [f32; 5],
}

impl Ridges {
    fn new(rng: &mut Rng, position: FingerPosition) -> Ridges {
        let ulnar = if position.is_right_hand() { 1.0 } else { -1.0 };
        let flow = match rng.below(100) {
            0..=59 => {
                let side = if rng.below(5) == 0 { -ulnar } else { ulnar };
                let angle = rng.range(0.35, 0.75);
                Flow::Loop {
                    exit: (side * angle.cos(), angle.sin()),
                }
            }
            60..=89 => {
                let angle = rng.range(0.0, TAU);
                let turns = rng.below(3) as f32 - 1.0;
                Flow::Whorl {
                    axis: (angle.cos(), angle.sin()),
                    half: rng.range(4.0, 16.0),
                    turns,
                }
            }
            _ => Flow::Arch {
                lift: rng.range(20.0, 45.0),
            },
        };
        Ridges {
            flow,
            core: (rng.range(-15.0, 15.0), rng.range(-35.0, 0.0)),
            period: rng.range(9.0, 10.5),
            finger: (rng.range(108.0, 125.0), rng.range(160.0, 180.0)),
            warp: [
                rng.range(3.0, 7.0),
                TAU / rng.range(140.0, 260.0),
                TAU / rng.range(140.0, 260.0),
                rng.range(0.0, TAU),
                rng.range(0.0, TAU),
            ],
        }
    }

    /// Ridge phase in periods at pattern coordinates relative to the core.
    fn phase(&self, x: f32, y: f32) -> f32 {
        match self.flow {
            Flow::Loop { exit } => {
                let along = x * exit.0 + y * exit.1;
                let dist = if along > 0.0 {
                    (x * exit.1 - y * exit.0).abs()
                } else {
                    x.hypot(y)
                };
                dist / self.period
            }
            Flow::Whorl { axis, half, turns } => {
                let along = (x * axis.0 + y * axis.1).clamp(-half, half);
                let dist = (x - along * axis.0).hypot(y - along * axis.1);
                dist / self.period + turns * y.atan2(x) / TAU
            }
            Flow::Arch { lift } => {
                let bump = lift * (-x * x / 5000.0).exp() * (-y.abs() / 120.0).exp();
                (y + bump) / self.period
            }
        }
    }

    /// Renders one placement of this finger on the platen.
    fn print(&self, defect: Option<Defect>, rng: &mut Rng) -> Vec<u8> {
        let (w, h) = (SimScanner::WIDTH as usize, SimScanner::HEIGHT as usize);
        let centre = (160.0 + rng.range(-8.0, 8.0), 210.0 + rng.range(-10.0, 10.0));
        let (rx, ry) = self.finger;
        let (ridge, valley) = match defect {
            Some(Defect::Dry) => (120.0, 222.0),
            Some(Defect::Smudged) => (80.0, 160.0),
            _ => (40.0, 200.0),
        };
        let gaps = (defect == Some(Defect::Dry)).then(|| ValueNoise::new(rng, w, h, 6.0));
        let cut = (defect == Some(Defect::Partial)).then(|| {
            let angle = rng.range(0.0, TAU);
            (angle.cos(), angle.sin(), rng.range(-0.2, 0.25) * ry)
        });
        // Low-frequency warp so ridges wander; sines per row and column, not per pixel.
        let [amp, kx, ky, px, py] = self.warp;
        let shift_x: Vec<f32> = (0..h).map(|y| amp * (y as f32 * ky + py).sin()).collect();
        let shift_y: Vec<f32> = (0..w).map(|x| amp * (x as f32 * kx + px).sin()).collect();

        let mut pixels = Vec::with_capacity(w * h);
        for (y, &sx) in shift_x.iter().enumerate() {
            let fy = y as f32 + 0.5 - centre.1;
            for (x, &sy) in shift_y.iter().enumerate() {
                let fx = x as f32 + 0.5 - centre.0;
                // Contact fades over ~8 px at the rim, as pressure does on a real platen.
                let d = ((fx / rx).powi(2) + (fy / ry).powi(2)).sqrt();
                let mut contact = ((1.0 - d) * rx / 8.0).clamp(0.0, 1.0);
                if let Some((nx, ny, keep)) = cut {
                    contact *= ((keep - fx * nx - fy * ny) / 3.0).clamp(0.0, 1.0);
                }
                let (mut value, mut grain) = (240.0, 3.0);
                if contact > 0.0 {
                    grain += 4.0 * contact;
                    let phase = self.phase(fx - self.core.0 + sx, fy - self.core.1 + sy);
                    let mut depth = 0.5 + 0.5 * (TAU * phase).cos();
                    if let Some(gaps) = &gaps {
                        depth *= (1.6 - 2.5 * gaps.at(x, y)).clamp(0.0, 1.0);
                    }
                    value += (valley - depth * (valley - ridge) - 240.0) * contact;
                }
                pixels.push(to_u8(value + grain * rng.range(-1.0, 1.0)));
            }
        }
        if defect == Some(Defect::Smudged) {
            for _ in 0..2 {
                box_blur(&mut pixels, w, h, 2);
            }
        }
        pixels
    }
}

/// Smooth random field in 0..1: random values on a grid, interpolated bilinearly.
struct ValueNoise {
    cell: f32,
    columns: usize,
    grid: Vec<f32>,
}

impl ValueNoise {
    fn new(rng: &mut Rng, width: usize, height: usize, cell: f32) -> ValueNoise {
        let columns = (width as f32 / cell) as usize + 2;
        let rows = (height as f32 / cell) as usize + 2;
        ValueNoise {
            cell,
            columns,
            grid: (0..columns * rows).map(|_| rng.unit()).collect(),
        }
    }

    fn at(&self, x: usize, y: usize) -> f32 {
        let (gx, gy) = (x as f32 / self.cell, y as f32 / self.cell);
        let (cx, cy) = (gx as usize, gy as usize);
        let (tx, ty) = (gx.fract(), gy.fract());
        let v = |c: usize, r: usize| self.grid[r * self.columns + c];
        let top = v(cx, cy) + (v(cx + 1, cy) - v(cx, cy)) * tx;
        let bottom = v(cx, cy + 1) + (v(cx + 1, cy + 1) - v(cx, cy + 1)) * tx;
        top + (bottom - top) * ty
    }
}

fn box_blur(pixels: &mut [u8], w: usize, h: usize, r: usize) {
    let mean = |sum: u32, n: usize| (sum / n as u32) as u8;
    let mut rows = vec![0u8; pixels.len()];
    for y in 0..h {
        for x in 0..w {
            let (lo, hi) = (x.saturating_sub(r), (x + r).min(w - 1));
            let sum = pixels[y * w + lo..=y * w + hi]
                .iter()
                .map(|&v| u32::from(v))
                .sum();
            rows[y * w + x] = mean(sum, hi - lo + 1);
        }
    }
    for y in 0..h {
        let (lo, hi) = (y.saturating_sub(r), (y + r).min(h - 1));
        for x in 0..w {
            let sum = (lo..=hi).map(|yy| u32::from(rows[yy * w + x])).sum();
            pixels[y * w + x] = mean(sum, hi - lo + 1);
        }
    }
}

/// A simulated signature pad: 600×200, sampling the pen every ~10 ms.
#[derive(Debug)]
pub struct SimSignaturePad {
    seed: u64,
    calls: u64,
    pub clock: fn() -> i64,
}

impl SimSignaturePad {
    pub const WIDTH: u16 = 600;
    pub const HEIGHT: u16 = 200;

    pub fn new(seed: u64) -> Self {
        SimSignaturePad {
            seed,
            calls: 0,
            clock: system_clock,
        }
    }
}

impl SignaturePad for SimSignaturePad {
    fn name(&self) -> String {
        format!("simulated signature pad (seed {})", self.seed)
    }

    fn capture(&mut self) -> Result<SignatureCapture, CaptureError> {
        let mut rng = Rng::new(self.seed, SIGNATURE, self.calls);
        self.calls += 1;
        let count = 2 + rng.below(3);
        let slot = 540.0 / count as f32;
        let mut strokes = Vec::with_capacity(count as usize);
        let mut t_ms = 0u32;
        for k in 0..count {
            // Cursive: a forward drift plus a circular wobble fast enough to loop back on itself.
            let x0 = 30.0 + k as f32 * slot;
            let speed = rng.range(0.25, 0.45);
            let length = slot * rng.range(0.7, 0.95);
            let duration = length / speed;
            let (loop_r, loop_w) = (rng.range(8.0, 16.0), TAU / rng.range(90.0, 160.0));
            let (swing, swing_w) = (rng.range(5.0, 15.0), TAU / rng.range(250.0, 500.0));
            let baseline = 100.0 + rng.range(-15.0, 15.0);
            let height = rng.range(15.0, 35.0);
            let (slant, letter_w) = (rng.range(0.15, 0.45), TAU / rng.range(300.0, 700.0));
            let phases: [f32; 4] = std::array::from_fn(|_| rng.range(0.0, TAU));
            let mut points = Vec::new();
            let mut t = 0.0;
            while t <= duration {
                let wobble = loop_w * t + phases[0];
                let letter = 0.65 + 0.35 * (letter_w * t + phases[3]).sin();
                let rise = height * letter * wobble.sin() + swing * (swing_w * t + phases[1]).sin();
                let x = x0 + speed * t + loop_r * wobble.cos() + slant * rise;
                let y = baseline - rise;
                let taper = (t / 40.0).min((duration - t) / 40.0).clamp(0.25, 1.0);
                let pressure = (130.0 + 60.0 * (TAU * t / 400.0 + phases[2]).sin()) * taper;
                points.push(PenPoint {
                    x: x.round().clamp(0.0, f32::from(Self::WIDTH - 1)) as u16,
                    y: y.round().clamp(0.0, f32::from(Self::HEIGHT - 1)) as u16,
                    t_ms: t_ms + t as u32,
                    pressure: to_u8(pressure),
                });
                t += 9.0 + rng.below(3) as f32;
            }
            t_ms += duration as u32 + 80 + rng.below(170);
            strokes.push(Stroke { points });
        }
        SignatureCapture::render(Self::WIDTH, Self::HEIGHT, strokes, (self.clock)())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::FingerPosition::*;

    fn fixed_clock() -> i64 {
        1_700_000_000_000
    }

    fn scanner(seed: u64) -> SimScanner {
        SimScanner {
            clock: fixed_clock,
            ..SimScanner::new(seed)
        }
    }

    #[test]
    fn camera_is_deterministic_per_seed_and_frame() {
        let shoot = |seed| {
            let mut camera = SimCamera {
                clock: fixed_clock,
                ..SimCamera::new(seed)
            };
            [
                camera.capture_still().unwrap(),
                camera.capture_still().unwrap(),
            ]
        };
        let (a, b) = (shoot(7), shoot(7));
        assert_eq!(a, b);
        assert_ne!(a[0].image, a[1].image, "frames differ a little");
        assert_ne!(a[0].image, shoot(8)[0].image);
        assert_eq!(a[0].captured_at_ms, fixed_clock());
    }

    #[test]
    fn camera_jpeg_decodes_to_a_portrait() {
        let shot = SimCamera::new(1).capture_still().unwrap();
        let decoded =
            image::load_from_memory_with_format(&shot.image.jpeg, image::ImageFormat::Jpeg)
                .unwrap();
        assert_eq!((decoded.width(), decoded.height()), (480, 640));
        assert_eq!((shot.image.width, shot.image.height), (480, 640));
        assert!(
            (60..=100).contains(&shot.quality),
            "quality {}",
            shot.quality
        );
        let rgb = decoded.into_rgb8();
        let face = rgb.get_pixel(240, 330);
        let background = rgb.get_pixel(10, 10);
        assert!(face[0] > face[2], "skin is warmer than blue: {face:?}");
        assert!(
            background[2] > background[0],
            "background is cool: {background:?}"
        );
    }

    #[test]
    fn scanner_is_deterministic_and_sized() {
        let (mut a, mut b, mut c) = (scanner(3), scanner(3), scanner(4));
        for finger in FingerPosition::ALL {
            let print = a.capture(finger).unwrap();
            assert_eq!(print, b.capture(finger).unwrap());
            assert_ne!(print.image, c.capture(finger).unwrap().image);
            assert_eq!(
                (print.image.width, print.image.height, print.image.ppi),
                (320, 400, 500)
            );
            assert_eq!(print.image.pixels.len(), 320 * 400);
            assert_eq!(print.position, finger);
        }
    }

    #[test]
    fn clean_print_has_dark_ridges_light_valleys_and_a_white_border() {
        let print = scanner(5).capture(RightIndex).unwrap().image;
        let centre: Vec<u8> = (190..230)
            .flat_map(|y| print.pixels[y * 320 + 140..y * 320 + 180].to_vec())
            .collect();
        assert!(centre.iter().any(|&v| v < 70) && centre.iter().any(|&v| v > 180));
        assert!(
            print.pixels[..320].iter().all(|&v| v > 220),
            "top row is background"
        );
    }

    #[test]
    fn missing_finger_is_an_error() {
        let mut scanner = scanner(1).with_defect(LeftRing, Defect::Missing);
        let error = scanner.capture(LeftRing).unwrap_err();
        assert!(matches!(&error, CaptureError::NoFinger(name) if name == "left_ring"));
        assert!(scanner.capture(LeftMiddle).is_ok());
    }

    #[test]
    fn defective_prints_score_lower_and_look_different() {
        for seed in 0..8 {
            let clean = scanner(seed).capture(RightThumb).unwrap();
            assert!((70..=95).contains(&clean.quality));
            for defect in [Defect::Dry, Defect::Smudged, Defect::Partial] {
                let bad = scanner(seed)
                    .with_defect(RightThumb, defect)
                    .capture(RightThumb)
                    .unwrap();
                assert!(
                    bad.quality < clean.quality,
                    "{defect:?} {} vs {}",
                    bad.quality,
                    clean.quality
                );
                assert_ne!(bad.image, clean.image);
            }
        }
    }

    #[test]
    fn print_encodes_to_png_and_back() {
        let print = scanner(9).capture(LeftLittle).unwrap().image;
        assert_eq!(
            GreyImage::from_png(&print.to_png().unwrap()).unwrap(),
            print
        );
    }

    #[test]
    fn signature_pad_is_deterministic_and_inks_the_canvas() {
        let sign = |seed| {
            SimSignaturePad {
                clock: fixed_clock,
                ..SimSignaturePad::new(seed)
            }
            .capture()
            .unwrap()
        };
        let signature = sign(11);
        assert_eq!(signature, sign(11));
        assert_ne!(signature.strokes, sign(12).strokes);
        assert!((2..=4).contains(&signature.strokes.len()));
        let points: Vec<&PenPoint> = signature.strokes.iter().flat_map(|s| &s.points).collect();
        assert!(
            points.windows(2).all(|p| p[0].t_ms < p[1].t_ms),
            "time runs forward"
        );
        let image = GreyImage::from_png(&signature.png).unwrap();
        assert_eq!((image.width, image.height), (600, 200));
        let inked = image.pixels.iter().filter(|&&v| v < 100).count();
        assert!(inked > 1000, "{inked} dark pixels");
    }
}
