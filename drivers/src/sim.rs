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
use std::sync::OnceLock;
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
const FACE_MOMENT: u64 = 4;
const FACE_MOMENT_POSE: u64 = 5;
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

/// A portrait the simulated camera films: a public-domain photo (see `assets/README.md`) and
/// where its eyes are, in its own pixels (measured with the station's detector on the face
/// enlarged twice, where its keypoints are steadier; a test keeps these in step with it).
struct Portrait {
    name: &'static str,
    jpeg: &'static [u8],
    left_eye: (f32, f32),
    right_eye: (f32, f32),
}

/// Portraits whose background passes the station's checks, so a citizen can be enrolled.
const PORTRAITS: [Portrait; 1] = [Portrait {
    name: "astronaut",
    jpeg: include_bytes!("../../assets/portraits/astronaut.jpg"),
    left_eye: (204.0, 101.6),
    right_eye: (246.5, 104.5),
}];

/// Decoded portraits, shared by every simulated camera of the process.
fn portrait_pixels(index: usize) -> Result<&'static image::RgbImage, CaptureError> {
    static DECODED: OnceLock<Vec<Result<image::RgbImage, String>>> = OnceLock::new();
    let all = DECODED.get_or_init(|| {
        PORTRAITS
            .iter()
            .map(|p| {
                image::load_from_memory_with_format(p.jpeg, image::ImageFormat::Jpeg)
                    .map(|i| i.into_rgb8())
                    .map_err(|e| format!("portrait {}: {e}", p.name))
            })
            .collect()
    });
    match all.get(index) {
        Some(Ok(image)) => Ok(image),
        Some(Err(e)) => Err(CaptureError::Image(e.clone())),
        None => Err(CaptureError::Image(format!("no portrait {index}"))),
    }
}

/// A simulated portrait camera: 480×640 RGB frames filmed from a public-domain portrait.
///
/// The seed picks the citizen (portrait, size, colour tint). No mirror images: the detector reads
/// a mirrored face's eye line a few degrees off, which would blur what the tests measure. The stream is cut
/// into *moments* of [`Self::MOMENT_FRAMES`] frames; each moment is either good (small drift,
/// jitter and lighting changes) or shows one fault — off centre, too far, head tilted, too dark,
/// too bright, blurred — so the station's guidance changes over time. The first moment is always
/// a fault (the citizen is settling), and of any three moments after it at least one is good.
/// A still ([`Camera::capture_still`]) is taken after the officer asked the citizen to pose
/// again: it starts the next moment. The `quality` of a still is the simulator's own figure
/// (100 when it drew a good moment, 30 when it drew a fault); the station ignores it.
#[derive(Debug)]
pub struct SimCamera {
    seed: u64,
    frames: u64,
    pub clock: fn() -> i64,
}

/// What goes wrong during one moment of the simulated camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaceFault {
    OffCentre,
    TooFar,
    Tilted,
    Dark,
    Bright,
    Blurred,
}

impl SimCamera {
    pub const WIDTH: u32 = 480;
    pub const HEIGHT: u32 = 640;
    pub const JPEG_QUALITY: u8 = 85;
    /// Frames per moment (a third of a second at 25 fps).
    pub const MOMENT_FRAMES: u64 = 8;

    pub fn new(seed: u64) -> Self {
        SimCamera {
            seed,
            frames: 0,
            clock: system_clock,
        }
    }

    /// The fault shown during `moment`, or `None` when the moment is good.
    pub fn fault(&self, moment: u64) -> Option<FaceFault> {
        const FAULTS: [FaceFault; 6] = [
            FaceFault::OffCentre,
            FaceFault::TooFar,
            FaceFault::Tilted,
            FaceFault::Dark,
            FaceFault::Bright,
            FaceFault::Blurred,
        ];
        let mut rng = Rng::new(self.seed, FACE_MOMENT, moment);
        let good = moment > 0 && (moment % 3 == 2 || rng.below(100) < 55);
        (!good).then(|| FAULTS[rng.below(FAULTS.len() as u32) as usize])
    }

    fn render(&self, frame: u64) -> Result<(Vec<u8>, Option<FaceFault>), CaptureError> {
        let moment = frame / Self::MOMENT_FRAMES;
        let fault = self.fault(moment);
        let mut subject = Rng::new(self.seed, FACE_SUBJECT, 0);
        let index = subject.below(PORTRAITS.len() as u32) as usize;
        let tint = [
            subject.range(0.92, 1.08),
            subject.range(0.94, 1.04),
            subject.range(0.90, 1.06),
        ];
        let base_eyes = subject.range(88.0, 104.0);
        let portrait = &PORTRAITS[index];
        let pixels = portrait_pixels(index)?;

        // The moment sets the pose; frames within it drift a little.
        let mut m = Rng::new(self.seed, FACE_MOMENT_POSE, moment);
        let mut f = Rng::new(self.seed, FACE_FRAME, frame);
        let (w, h) = (Self::WIDTH as f32, Self::HEIGHT as f32);
        let mut eyes = base_eyes * m.range(0.95, 1.05);
        let mut centre = (
            w / 2.0 + m.range(-0.15, 0.15) * eyes + f.range(-1.5, 1.5),
            h * 0.45 + m.range(-0.15, 0.15) * eyes + f.range(-1.5, 1.5),
        );
        let mut roll = m.range(-2.0, 2.0) + f.range(-0.3, 0.3);
        let mut gain = m.range(0.92, 1.08) * f.range(0.985, 1.015);
        let mut blur = 0usize;
        let side = if m.below(2) == 0 { -1.0 } else { 1.0 };
        match fault {
            Some(FaceFault::OffCentre) => centre.0 += side * m.range(1.0, 1.4) * eyes,
            Some(FaceFault::TooFar) => eyes = m.range(38.0, 50.0),
            Some(FaceFault::Tilted) => roll = side * m.range(12.0, 18.0),
            Some(FaceFault::Dark) => gain = m.range(0.25, 0.4),
            Some(FaceFault::Bright) => gain = m.range(1.6, 1.9),
            Some(FaceFault::Blurred) => blur = (eyes * m.range(0.07, 0.1)) as usize,
            None => {}
        }
        // Light falls from one side by a few percent, changing from moment to moment.
        let slope = m.range(-0.08, 0.08);

        // Output pixel -> portrait pixel: rotate about the eye midpoint, scale.
        let (lx, ly) = portrait.left_eye;
        let (rx, ry) = portrait.right_eye;
        let source_mid = ((lx + rx) / 2.0, (ly + ry) / 2.0);
        let source_roll = (ry - ly).atan2(rx - lx);
        let k = (rx - lx).hypot(ry - ly) / eyes;
        let angle = roll.to_radians() - source_roll;
        let (sin, cos) = angle.sin_cos();
        let (pw, ph) = (pixels.width() as i64, pixels.height() as i64);
        let raw = pixels.as_raw();
        let at = |x: i64, y: i64, c: usize| {
            let (x, y) = (x.clamp(0, pw - 1), y.clamp(0, ph - 1));
            f32::from(raw[((y * pw + x) * 3) as usize + c])
        };
        let mut rgb = Vec::with_capacity((Self::WIDTH * Self::HEIGHT * 3) as usize);
        for y in 0..Self::HEIGHT {
            let dy = y as f32 + 0.5 - centre.1;
            for x in 0..Self::WIDTH {
                let dx = x as f32 + 0.5 - centre.0;
                // Rotate by -angle (the picture turns by +angle), then scale into the portrait.
                let (u, v) = ((dx * cos + dy * sin) * k, (-dx * sin + dy * cos) * k);
                let (sx, sy) = (source_mid.0 + u - 0.5, source_mid.1 + v - 0.5);
                let (x0, y0) = (sx.floor(), sy.floor());
                let (tx, ty) = (sx - x0, sy - y0);
                let (x0, y0) = (x0 as i64, y0 as i64);
                let shade = gain * (1.0 + slope * (x as f32 / w - 0.5));
                for (c, t) in tint.iter().enumerate() {
                    let top = at(x0, y0, c) + (at(x0 + 1, y0, c) - at(x0, y0, c)) * tx;
                    let bottom =
                        at(x0, y0 + 1, c) + (at(x0 + 1, y0 + 1, c) - at(x0, y0 + 1, c)) * tx;
                    let value = (top + (bottom - top) * ty) * t * shade;
                    rgb.push(to_u8(value + f.range(-2.0, 2.0)));
                }
            }
        }
        if blur > 0 {
            blur_rgb(&mut rgb, Self::WIDTH as usize, Self::HEIGHT as usize, blur);
        }
        Ok((rgb, fault))
    }

    fn frame_at(&self, frame: u64) -> Result<(RgbFrame, Option<FaceFault>), CaptureError> {
        let (rgb, fault) = self.render(frame)?;
        Ok((
            RgbFrame {
                width: Self::WIDTH,
                height: Self::HEIGHT,
                rgb,
                captured_at_ms: (self.clock)(),
            },
            fault,
        ))
    }
}

impl Camera for SimCamera {
    fn name(&self) -> String {
        format!("simulated camera (seed {})", self.seed)
    }

    fn frame(&mut self) -> Result<RgbFrame, CaptureError> {
        let frame = self.frames;
        self.frames += 1;
        Ok(self.frame_at(frame)?.0)
    }

    fn capture_still(&mut self) -> Result<FaceCapture, CaptureError> {
        // A new pose: the first frame of the next moment.
        let frame = self.frames.div_ceil(Self::MOMENT_FRAMES) * Self::MOMENT_FRAMES;
        self.frames = frame + 1;
        let (frame, fault) = self.frame_at(frame)?;
        let mut jpeg = Vec::with_capacity(48 * 1024);
        JpegEncoder::new_with_quality(&mut jpeg, Self::JPEG_QUALITY)
            .encode(
                &frame.rgb,
                Self::WIDTH,
                Self::HEIGHT,
                ExtendedColorType::Rgb8,
            )
            .map_err(|e| CaptureError::Image(e.to_string()))?;
        Ok(FaceCapture {
            image: FaceImage {
                width: Self::WIDTH,
                height: Self::HEIGHT,
                jpeg,
            },
            quality: if fault.is_none() { 100 } else { 30 },
            captured_at_ms: frame.captured_at_ms,
        })
    }
}

/// Box blur of an RGB image, `r` pixels each way, three passes (close to a Gaussian).
fn blur_rgb(rgb: &mut [u8], w: usize, h: usize, r: usize) {
    let mut plane = vec![0u8; w * h];
    for c in 0..3 {
        for (p, px) in plane.iter_mut().zip(rgb.chunks_exact(3)) {
            *p = px[c];
        }
        for _ in 0..3 {
            box_blur(&mut plane, w, h, r);
        }
        for (p, px) in plane.iter().zip(rgb.chunks_exact_mut(3)) {
            px[c] = *p;
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
    fn camera_still_decodes_to_a_portrait_sized_frame() {
        let shot = SimCamera::new(1).capture_still().unwrap();
        let decoded =
            image::load_from_memory_with_format(&shot.image.jpeg, image::ImageFormat::Jpeg)
                .unwrap();
        assert_eq!((decoded.width(), decoded.height()), (480, 640));
        assert_eq!((shot.image.width, shot.image.height), (480, 640));
        assert!(
            shot.image.jpeg.len() < 120 * 1024,
            "{}",
            shot.image.jpeg.len()
        );
    }

    #[test]
    fn first_moment_is_a_fault_and_every_three_moments_hold_a_good_one() {
        for seed in 0..50 {
            let camera = SimCamera::new(seed);
            assert!(camera.fault(0).is_some(), "seed {seed}");
            for start in 1..30 {
                assert!(
                    (start..start + 3).any(|m| camera.fault(m).is_none()),
                    "seed {seed} from moment {start}"
                );
            }
        }
    }

    #[test]
    fn portrait_eye_positions_match_the_station_detector() {
        use crate::face::{decode_frame, FaceAnalyzer};
        for portrait in &PORTRAITS {
            let source = decode_frame(portrait.jpeg, 0).unwrap();
            let (lx, ly) = portrait.left_eye;
            let (rx, ry) = portrait.right_eye;
            let (cx, cy) = ((lx + rx) / 2.0, (ly + ry) / 2.0);
            // The face enlarged twice around the stated eye midpoint, as the camera films it.
            let (w, h) = (SimCamera::WIDTH, SimCamera::HEIGHT);
            let to_source = |x: u32, y: u32| {
                (
                    cx + (x as f32 + 0.5 - w as f32 / 2.0) / 2.0,
                    cy + (y as f32 + 0.5 - h as f32 * 0.45) / 2.0,
                )
            };
            let mut rgb = Vec::with_capacity((w * h * 3) as usize);
            for y in 0..h {
                for x in 0..w {
                    let (sx, sy) = to_source(x, y);
                    let (sx, sy) = (
                        (sx as u32).min(source.width - 1),
                        (sy.max(0.0) as u32).min(source.height - 1),
                    );
                    let i = ((sy * source.width + sx) * 3) as usize;
                    rgb.extend_from_slice(&source.rgb[i..i + 3]);
                }
            }
            let frame = RgbFrame {
                width: w,
                height: h,
                rgb,
                captured_at_ms: 0,
            };
            let report = FaceAnalyzer::shared().analyze(&frame).unwrap();
            let face = report.face().expect("one face");
            let back = |p: crate::face::Point| {
                (
                    cx + (p.x - w as f32 / 2.0) / 2.0,
                    cy + (p.y - h as f32 * 0.45) / 2.0,
                )
            };
            for (found, stated) in [
                (back(face.left_eye), portrait.left_eye),
                (back(face.right_eye), portrait.right_eye),
            ] {
                let error = (found.0 - stated.0).hypot(found.1 - stated.1);
                assert!(error < 2.5, "{}: {found:?} vs {stated:?}", portrait.name);
            }
        }
    }

    #[test]
    fn the_preview_settles_into_five_passing_frames_in_a_row() {
        use crate::face::FaceAnalyzer;
        for seed in 0..3 {
            let mut camera = SimCamera::new(seed);
            let (mut run, mut best, mut failed_once) = (0, 0, false);
            for _ in 0..4 * SimCamera::MOMENT_FRAMES {
                let report = FaceAnalyzer::shared()
                    .analyze(&camera.frame().unwrap())
                    .unwrap();
                failed_once |= !report.passed();
                run = if report.passed() { run + 1 } else { 0 };
                best = best.max(run);
            }
            assert!(failed_once, "seed {seed}: the first moment shows a fault");
            assert!(best >= 5, "seed {seed}: longest passing run {best}");
        }
    }

    #[test]
    fn the_station_passes_one_of_the_first_three_stills_and_only_good_moments() {
        use crate::face::{decode_frame, FaceAnalyzer};
        for seed in 0..6 {
            let mut camera = SimCamera::new(seed);
            let mut passed = Vec::new();
            for moment in 0..3 {
                let still = camera.capture_still().unwrap();
                let frame = decode_frame(&still.image.jpeg, 0).unwrap();
                let report = FaceAnalyzer::shared().analyze(&frame).unwrap();
                assert_eq!(
                    report.passed(),
                    camera.fault(moment).is_none(),
                    "seed {seed} moment {moment}: {:?} {report:#?}",
                    camera.fault(moment)
                );
                passed.push(report.passed());
            }
            assert!(passed.contains(&true), "seed {seed}");
        }
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
