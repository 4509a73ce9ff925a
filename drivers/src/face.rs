//! Station-side face quality and the ISO/IEC 19794-5 token face image.
//!
//! Owns [`FaceAnalyzer`]: it finds faces with MediaPipe's BlazeFace (short range, 128×128,
//! `assets/models/blazeface.onnx`, prepared by `scripts/prepare-face-model`) run by tract, and
//! judges the one face it expects with plain checks, each with a measured value and an instruction
//! the kiosk translates. [`FaceAnalyzer::token_image`] cuts the ISO token image out of a frame.
//! It touches no device, file or network: the model is compiled in.
//!
//! Why compiled in (`include_bytes!`) rather than loaded from a path: the model is part of the
//! product, 0.6 MB, and the station must not start without it or with another one; one binary is
//! one thing to install, verify and roll back. Loading it costs tens of milliseconds, so one
//! analyzer is built per process ([`FaceAnalyzer::shared`]) and reused for every frame.
//!
//! The checks and their defaults (see [`defaults`]) were set on the shipped public-domain
//! portraits and on the simulated camera. They are screening aids, not an ICAO conformance test.

use std::fmt;
use std::sync::{Arc, OnceLock};

use image::codecs::jpeg::JpegEncoder;
use image::ExtendedColorType;
use serde::Serialize;
use tract_onnx::prelude::*;

use crate::capture::{CaptureError, FaceImage, RgbFrame};

/// The prepared BlazeFace model (see the module documentation and `assets/README.md`).
const MODEL: &[u8] = include_bytes!("../../assets/models/blazeface.onnx");
/// Side of the model's square RGB input.
const INPUT: usize = 128;

/// Check names, as they appear in [`FaceCheck::name`].
pub const ONE_FACE: &str = "one face";
pub const SIZE: &str = "size";
pub const CENTRING: &str = "centring";
pub const ROLL: &str = "eye line";
pub const POSE: &str = "pose";
pub const EXPOSURE: &str = "exposure";
pub const CONTRAST: &str = "contrast";
pub const SHARPNESS: &str = "sharpness";
pub const BACKGROUND: &str = "background";

/// Instructions for the officer or citizen, in English: the English text is also the translation
/// key (`lang/*/LC_MESSAGES/tasjil.po`), so keep the strings and the catalogues in step.
pub mod advice {
    pub const NO_FACE: &str = "No face found: look at the camera";
    pub const MANY_FACES: &str = "Only one person in the picture";
    pub const COME_CLOSER: &str = "Come closer to the camera";
    pub const MOVE_BACK: &str = "Move back from the camera";
    pub const CENTRE: &str = "Move to the centre of the picture";
    pub const HEAD_STRAIGHT: &str = "Keep the head straight";
    pub const LOOK_STRAIGHT: &str = "Look straight at the camera";
    pub const TOO_DARK: &str = "Too dark: add light on the face";
    pub const TOO_BRIGHT: &str = "Too bright: reduce the light";
    pub const FLAT_LIGHT: &str = "The face is washed out: change the lighting";
    pub const BLURRED: &str = "Blurred: hold still";
    pub const BACKGROUND: &str = "Use a plain background";
    /// Every instruction, for the translation catalogues and their test.
    pub const ALL: [&str; 12] = [
        NO_FACE,
        MANY_FACES,
        COME_CLOSER,
        MOVE_BACK,
        CENTRE,
        HEAD_STRAIGHT,
        LOOK_STRAIGHT,
        TOO_DARK,
        TOO_BRIGHT,
        FLAT_LIGHT,
        BLURRED,
        BACKGROUND,
    ];
}

/// Default thresholds. Like the fingerprint ones, they belong to the station's configuration.
pub mod defaults {
    /// Least detector confidence of a face.
    pub const MIN_SCORE: f32 = 0.70;
    /// Detections overlapping more than this (intersection over union) are one face.
    pub const NMS_IOU: f32 = 0.30;
    /// Least eye distance in frame pixels: the token image needs 60 (ISO/IEC 19794-5).
    pub const MIN_EYE_DISTANCE: f32 = 60.0;
    /// Largest eye distance as a fraction of the frame width (the token's is 0.25).
    pub const MAX_EYE_DISTANCE_FRACTION: f32 = 0.40;
    /// Largest distance of the eye midpoint from its place in the token geometry, in eye distances.
    pub const MAX_OFF_CENTRE: f32 = 0.60;
    /// Largest tilt of the eye line, degrees (ICAO allows ±8°).
    pub const MAX_ROLL_DEG: f32 = 8.0;
    /// Largest estimated yaw and pitch, degrees.
    pub const MAX_YAW_DEG: f32 = 15.0;
    pub const MAX_PITCH_DEG: f32 = 18.0;
    /// Mean luma of the face, 0..255.
    pub const MIN_LUMA: f32 = 70.0;
    pub const MAX_LUMA: f32 = 200.0;
    /// 5th-to-95th percentile luma range of the face.
    pub const MIN_CONTRAST: f32 = 50.0;
    /// Variance of the Laplacian on the face resampled to a 48 px eye distance, per unit of
    /// face luma variance (so lighting does not move it).
    pub const MIN_SHARPNESS: f32 = 0.04;
    /// Largest standard deviation of luma beside the head, 0..255.
    pub const MAX_BACKGROUND_STD: f32 = 24.0;
}
use defaults::*;

/// ISO/IEC 19794-5 token face image geometry: width W, height W/0.75, eye midpoint at x = W/2
/// and y = 0.6·W from the top, eye distance W/4; W at least 240 px (eye distance 60 px).
pub mod token {
    /// Least width (the standard's minimum).
    pub const MIN_WIDTH: u32 = 240;
    /// Largest width the station writes: enough for card printing, and no bigger than needed.
    pub const MAX_WIDTH: u32 = 480;
    pub const JPEG_QUALITY: u8 = 90;

    /// The token width for a face whose eyes are `eye_distance` frame pixels apart: the
    /// photo's own resolution (four eye distances, a multiple of 12 so the height is whole),
    /// within the bounds above.
    pub fn width_for(eye_distance: f32) -> u32 {
        let native = (4.0 * eye_distance / 12.0).floor().max(0.0) as u32 * 12;
        native.clamp(MIN_WIDTH, MAX_WIDTH)
    }

    pub fn height(width: u32) -> u32 {
        width * 4 / 3
    }
}

/// A point in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

impl Point {
    fn distance(self, other: Point) -> f32 {
        (self.x - other.x).hypot(self.y - other.y)
    }
}

/// One face found in a frame, in frame pixels. "Left" and "right" are as seen in the picture.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// Box: left, top, width, height.
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
    pub left_eye: Point,
    pub right_eye: Point,
    pub nose: Point,
    pub mouth: Point,
    pub left_ear: Point,
    pub right_ear: Point,
    /// Detector confidence 0..1, after merging overlapping detections.
    pub score: f32,
}

impl Detection {
    pub fn eye_midpoint(&self) -> Point {
        Point {
            x: (self.left_eye.x + self.right_eye.x) / 2.0,
            y: (self.left_eye.y + self.right_eye.y) / 2.0,
        }
    }

    pub fn eye_distance(&self) -> f32 {
        self.left_eye.distance(self.right_eye)
    }

    /// Tilt of the eye line in degrees, positive when the right eye (in the picture) is lower.
    pub fn roll_deg(&self) -> f32 {
        (self.right_eye.y - self.left_eye.y)
            .atan2(self.right_eye.x - self.left_eye.x)
            .to_degrees()
    }

    /// Yaw and pitch in degrees, estimated from where the nose tip sits between the eyes and the
    /// mouth (after levelling the eye line): a frontal face has the nose on the eyes' midline and
    /// about halfway down from eyes to mouth. Rough (±5°), enough to say "look at the camera".
    pub fn yaw_pitch_deg(&self) -> (f32, f32) {
        let mid = self.eye_midpoint();
        let d = self.eye_distance().max(1.0);
        let roll = self.roll_deg().to_radians();
        let (sin, cos) = roll.sin_cos();
        let level = |p: Point| {
            let (dx, dy) = (p.x - mid.x, p.y - mid.y);
            (dx * cos + dy * sin, -dx * sin + dy * cos)
        };
        let (nose_x, nose_y) = level(self.nose);
        let (_, mouth_y) = level(self.mouth);
        // Nose tip sits ~0.6 eye distances in front of the eye plane.
        let yaw = (nose_x / (0.6 * d)).clamp(-1.0, 1.0).asin().to_degrees();
        let along = nose_y / mouth_y.max(1.0);
        let pitch = ((along - FRONTAL_NOSE_ALONG) * mouth_y / (0.6 * d))
            .clamp(-1.0, 1.0)
            .asin()
            .to_degrees();
        (yaw, pitch)
    }

    fn iou(&self, other: &Detection) -> f32 {
        let x0 = self.x.max(other.x);
        let y0 = self.y.max(other.y);
        let x1 = (self.x + self.width).min(other.x + other.width);
        let y1 = (self.y + self.height).min(other.y + other.height);
        let inner = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
        let union = self.width * self.height + other.width * other.height - inner;
        if union > 0.0 {
            inner / union
        } else {
            0.0
        }
    }
}

/// Where BlazeFace puts the nose tip between eye line and mouth on a frontal face.
const FRONTAL_NOSE_ALONG: f32 = 0.55;

/// One check on a frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaceCheck {
    pub name: &'static str,
    pub passed: bool,
    /// The measured value, in the unit of the check (pixels, degrees, luma, ratio).
    pub value: f32,
    /// What to ask for when the check fails (English; the translation key). Empty when passed.
    pub advice: &'static str,
    /// 0..1: how far from hopeless (0) to comfortably passing (1).
    #[serde(skip)]
    grade: f32,
}

/// What [`FaceAnalyzer::analyze`] found in one frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaceReport {
    pub width: u32,
    pub height: u32,
    pub detections: Vec<Detection>,
    /// Every check, in a fixed order; with no single face, only "one face" (failed).
    pub checks: Vec<FaceCheck>,
    /// 0..100: 60 or more when every check passes, below 50 whenever one fails, 0 when there is
    /// not exactly one face.
    pub score: u8,
}

impl FaceReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The first failing check, whose advice the kiosk shows.
    pub fn first_failure(&self) -> Option<&FaceCheck> {
        self.checks.iter().find(|c| !c.passed)
    }

    /// The face the checks judged: present only when exactly one was found.
    pub fn face(&self) -> Option<&Detection> {
        match self.detections.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FaceError {
    #[error("the face model could not be loaded: {0}")]
    Model(String),
    #[error("the frame is {width}x{height} but holds {len} bytes of RGB")]
    FrameSize { width: u32, height: u32, len: usize },
    #[error("no single face to make a token image from")]
    NoFace,
    #[error(transparent)]
    Capture(#[from] CaptureError),
}

type Plan = Arc<TypedRunnableModel>;

/// The face detector and quality checks. Build one per process and reuse it.
pub struct FaceAnalyzer {
    plan: Plan,
}

impl fmt::Debug for FaceAnalyzer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaceAnalyzer")
            .field("model_bytes", &MODEL.len())
            .finish()
    }
}

impl FaceAnalyzer {
    /// Loads and optimises the compiled-in model.
    pub fn new() -> Result<FaceAnalyzer, FaceError> {
        let model = || -> TractResult<Plan> {
            tract_onnx::onnx()
                .model_for_read(&mut &MODEL[..])?
                .with_input_fact(0, f32::fact([1, INPUT, INPUT, 3]).into())?
                .into_optimized()?
                .into_runnable()
        };
        Ok(FaceAnalyzer {
            plan: model().map_err(|e| FaceError::Model(format!("{e:#}")))?,
        })
    }

    /// The process-wide analyzer, built on first use. The model is compiled in and was checked by
    /// this crate's tests, so failing to load it is a build defect: this panics then.
    pub fn shared() -> &'static FaceAnalyzer {
        static SHARED: OnceLock<FaceAnalyzer> = OnceLock::new();
        SHARED.get_or_init(|| FaceAnalyzer::new().expect("the compiled-in face model loads"))
    }

    /// Finds faces (after merging overlaps), strongest first.
    pub fn detect(&self, frame: &RgbFrame) -> Result<Vec<Detection>, FaceError> {
        check_size(frame)?;
        let (w, h) = (frame.width as f32, frame.height as f32);
        // Letterbox: scale the longer side to the input, centre, pad with grey (0 in [-1, 1]).
        let scale = INPUT as f32 / w.max(h);
        let (pad_x, pad_y) = (
            (INPUT as f32 - w * scale) / 2.0,
            (INPUT as f32 - h * scale) / 2.0,
        );
        let input = letterbox(frame, scale, pad_x, pad_y);
        let tensor = Tensor::from_shape(&[1, INPUT, INPUT, 3], &input)
            .map_err(|e| FaceError::Model(e.to_string()))?;
        let outputs = self
            .plan
            .run(tvec!(tensor.into()))
            .map_err(|e| FaceError::Model(format!("{e:#}")))?;
        let view = |i: usize| -> Result<&[f32], FaceError> {
            outputs
                .get(i)
                .and_then(|t| t.as_plain_ram())
                .and_then(|v| v.as_slice::<f32>().ok())
                .ok_or_else(|| FaceError::Model(format!("model output {i} missing")))
        };
        let mut raw = Vec::new();
        // Outputs: scores and regressors for 16×16 cells × 2 anchors, then 8×8 cells × 6 anchors.
        for (scores, boxes, cells, anchors) in
            [(view(0)?, view(2)?, 16, 2), (view(1)?, view(3)?, 8, 6)]
        {
            for (i, &logit) in scores.iter().enumerate() {
                let score = 1.0 / (1.0 + (-logit).exp());
                if score < MIN_SCORE {
                    continue;
                }
                let cell = i / anchors;
                let ax = ((cell % cells) as f32 + 0.5) / cells as f32 * INPUT as f32;
                let ay = ((cell / cells) as f32 + 0.5) / cells as f32 * INPUT as f32;
                let Some(r) = boxes.get(i * 16..i * 16 + 16) else {
                    continue;
                };
                let to_frame = |x: f32, y: f32| Point {
                    x: (ax + x - pad_x) / scale,
                    y: (ay + y - pad_y) / scale,
                };
                let centre = to_frame(r[0], r[1]);
                let (bw, bh) = (r[2] / scale, r[3] / scale);
                let kp = |k: usize| to_frame(r[4 + 2 * k], r[5 + 2 * k]);
                let (eye_a, eye_b) = (kp(0), kp(1));
                let (ear_a, ear_b) = (kp(4), kp(5));
                let (left_eye, right_eye) = if eye_a.x <= eye_b.x {
                    (eye_a, eye_b)
                } else {
                    (eye_b, eye_a)
                };
                let (left_ear, right_ear) = if ear_a.x <= ear_b.x {
                    (ear_a, ear_b)
                } else {
                    (ear_b, ear_a)
                };
                raw.push(Detection {
                    x: centre.x - bw / 2.0,
                    y: centre.y - bh / 2.0,
                    width: bw,
                    height: bh,
                    left_eye,
                    right_eye,
                    nose: kp(2),
                    mouth: kp(3),
                    left_ear,
                    right_ear,
                    score,
                });
            }
        }
        Ok(merge(raw))
    }

    /// Detects faces and runs every check on the one face expected.
    pub fn analyze(&self, frame: &RgbFrame) -> Result<FaceReport, FaceError> {
        let detections = self.detect(frame)?;
        let luma = Luma::of(frame);
        let checks = match detections.as_slice() {
            [face] => judge(face, &luma),
            many => vec![FaceCheck {
                name: ONE_FACE,
                passed: false,
                value: many.len() as f32,
                advice: if many.is_empty() {
                    advice::NO_FACE
                } else {
                    advice::MANY_FACES
                },
                grade: 0.0,
            }],
        };
        let score = overall(&checks);
        Ok(FaceReport {
            width: frame.width,
            height: frame.height,
            detections,
            checks,
            score,
        })
    }

    /// Cuts the ISO/IEC 19794-5 token face image out of `frame`: rotated so the eyes are level,
    /// scaled so they are a quarter of the width apart, placed at the token's eye position
    /// (centre, 0.6·W from the top), cut to W×4W/3 ([`token::width_for`]) and JPEG-encoded.
    /// Parts outside the frame are filled with the nearest edge pixel.
    pub fn token_image(frame: &RgbFrame, report: &FaceReport) -> Result<FaceImage, FaceError> {
        check_size(frame)?;
        let face = report.face().ok_or(FaceError::NoFace)?;
        let width = token::width_for(face.eye_distance());
        let height = token::height(width);
        let (eye_x, eye_y) = (width as f32 * 0.5, width as f32 * 0.6);
        let mid = face.eye_midpoint();
        let roll = face.roll_deg().to_radians();
        let k = face.eye_distance().max(1.0) / (width as f32 * 0.25);
        let (sin, cos) = roll.sin_cos();
        let mut rgb = Vec::with_capacity(width as usize * height as usize * 3);
        for ty in 0..height {
            for tx in 0..width {
                let (dx, dy) = ((tx as f32 + 0.5 - eye_x) * k, (ty as f32 + 0.5 - eye_y) * k);
                let sx = mid.x + dx * cos - dy * sin;
                let sy = mid.y + dx * sin + dy * cos;
                rgb.extend_from_slice(&sample(frame, sx, sy, k));
            }
        }
        let mut jpeg = Vec::with_capacity(32 * 1024);
        JpegEncoder::new_with_quality(&mut jpeg, token::JPEG_QUALITY)
            .encode(&rgb, width, height, ExtendedColorType::Rgb8)
            .map_err(|e| CaptureError::Image(e.to_string()))?;
        Ok(FaceImage {
            width,
            height,
            jpeg,
        })
    }
}

/// Decodes a JPEG or PNG (or any format the station reads) into a frame for [`FaceAnalyzer`].
pub fn decode_frame(bytes: &[u8], captured_at_ms: i64) -> Result<RgbFrame, CaptureError> {
    let rgb = image::load_from_memory(bytes)
        .map_err(|e| CaptureError::Image(e.to_string()))?
        .into_rgb8();
    Ok(RgbFrame {
        width: rgb.width(),
        height: rgb.height(),
        rgb: rgb.into_raw(),
        captured_at_ms,
    })
}

fn check_size(frame: &RgbFrame) -> Result<(), FaceError> {
    if frame.width == 0
        || frame.height == 0
        || frame.rgb.len() != frame.width as usize * frame.height as usize * 3
    {
        return Err(FaceError::FrameSize {
            width: frame.width,
            height: frame.height,
            len: frame.rgb.len(),
        });
    }
    Ok(())
}

/// Area-averaged RGB at a frame point, `k` frame pixels per output pixel (box filter when
/// shrinking, bilinear when enlarging).
fn sample(frame: &RgbFrame, x: f32, y: f32, k: f32) -> [u8; 3] {
    let (w, h) = (frame.width as i64, frame.height as i64);
    let px = |xi: i64, yi: i64| {
        let i = ((yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)) * 3) as usize;
        [
            f32::from(frame.rgb[i]),
            f32::from(frame.rgb[i + 1]),
            f32::from(frame.rgb[i + 2]),
        ]
    };
    if k > 1.5 {
        let r = (k / 2.0).floor() as i64;
        let (cx, cy) = (x.floor() as i64, y.floor() as i64);
        let mut sum = [0.0f32; 3];
        let mut n = 0.0;
        for yy in cy - r..=cy + r {
            for xx in cx - r..=cx + r {
                let p = px(xx, yy);
                sum.iter_mut().zip(p).for_each(|(s, v)| *s += v);
                n += 1.0;
            }
        }
        return sum.map(|s| (s / n).round().clamp(0.0, 255.0) as u8);
    }
    let (fx, fy) = (x - 0.5, y - 0.5);
    let (x0, y0) = (fx.floor(), fy.floor());
    let (tx, ty) = (fx - x0, fy - y0);
    let (x0, y0) = (x0 as i64, y0 as i64);
    let (a, b, c, d) = (
        px(x0, y0),
        px(x0 + 1, y0),
        px(x0, y0 + 1),
        px(x0 + 1, y0 + 1),
    );
    std::array::from_fn(|i| {
        let top = a[i] + (b[i] - a[i]) * tx;
        let bottom = c[i] + (d[i] - c[i]) * tx;
        (top + (bottom - top) * ty).round().clamp(0.0, 255.0) as u8
    })
}

/// The frame shrunk into the model's square input, values in [-1, 1], RGB interleaved (NHWC).
fn letterbox(frame: &RgbFrame, scale: f32, pad_x: f32, pad_y: f32) -> Vec<f32> {
    let k = 1.0 / scale;
    let mut input = vec![0.0f32; INPUT * INPUT * 3];
    let (w, h) = (frame.width as f32, frame.height as f32);
    for y in 0..INPUT {
        let fy = (y as f32 + 0.5 - pad_y) * k;
        if fy < 0.0 || fy >= h {
            continue;
        }
        for x in 0..INPUT {
            let fx = (x as f32 + 0.5 - pad_x) * k;
            if fx < 0.0 || fx >= w {
                continue;
            }
            let rgb = sample(frame, fx, fy, k);
            let at = (y * INPUT + x) * 3;
            for c in 0..3 {
                input[at + c] = f32::from(rgb[c]) / 127.5 - 1.0;
            }
        }
    }
    input
}

/// Weighted non-maximum suppression (as MediaPipe does): overlapping detections become one, their
/// geometry averaged by score, keeping the highest score.
fn merge(mut raw: Vec<Detection>) -> Vec<Detection> {
    raw.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut faces = Vec::new();
    while let Some(best) = raw.first().cloned() {
        let (cluster, rest): (Vec<Detection>, Vec<Detection>) =
            raw.into_iter().partition(|d| d.iou(&best) > NMS_IOU);
        raw = rest;
        let total: f32 = cluster.iter().map(|d| d.score).sum();
        let avg = |f: &dyn Fn(&Detection) -> f32| {
            cluster.iter().map(|d| f(d) * d.score).sum::<f32>() / total
        };
        let avg_point = |f: &dyn Fn(&Detection) -> Point| Point {
            x: avg(&|d| f(d).x),
            y: avg(&|d| f(d).y),
        };
        faces.push(Detection {
            x: avg(&|d| d.x),
            y: avg(&|d| d.y),
            width: avg(&|d| d.width),
            height: avg(&|d| d.height),
            left_eye: avg_point(&|d| d.left_eye),
            right_eye: avg_point(&|d| d.right_eye),
            nose: avg_point(&|d| d.nose),
            mouth: avg_point(&|d| d.mouth),
            left_ear: avg_point(&|d| d.left_ear),
            right_ear: avg_point(&|d| d.right_ear),
            score: best.score,
        });
    }
    faces
}

/// The frame's luma (BT.601), for the photometric checks.
struct Luma {
    width: usize,
    height: usize,
    values: Vec<f32>,
}

impl Luma {
    fn of(frame: &RgbFrame) -> Luma {
        Luma {
            width: frame.width as usize,
            height: frame.height as usize,
            values: frame
                .rgb
                .chunks_exact(3)
                .map(|p| {
                    0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])
                })
                .collect(),
        }
    }

    fn at(&self, x: f32, y: f32) -> f32 {
        let xi = (x.max(0.0) as usize).min(self.width - 1);
        let yi = (y.max(0.0) as usize).min(self.height - 1);
        self.values[yi * self.width + xi]
    }

    /// Values inside a rectangle (clipped to the frame), with its count of pixels.
    fn region(&self, x0: f32, y0: f32, x1: f32, y1: f32) -> Vec<f32> {
        let clip = |v: f32, max: usize| (v.max(0.0) as usize).min(max);
        let (x0, x1) = (clip(x0, self.width), clip(x1, self.width));
        let (y0, y1) = (clip(y0, self.height), clip(y1, self.height));
        (y0..y1)
            .flat_map(|y| {
                self.values[y * self.width + x0..y * self.width + x1]
                    .iter()
                    .copied()
            })
            .collect()
    }
}

fn mean_std(values: &[f32]) -> (f32, f32) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let n = values.len() as f32;
    let mean = values.iter().sum::<f32>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n;
    (mean, var.sqrt())
}

fn percentile(values: &mut [f32], p: f32) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let i = ((values.len() - 1) as f32 * p).round() as usize;
    *values.select_nth_unstable_by(i, f32::total_cmp).1
}

/// 1 at or beyond `good`, 0 at or beyond `hopeless`, linear between.
fn ramp(value: f32, hopeless: f32, good: f32) -> f32 {
    ((value - hopeless) / (good - hopeless)).clamp(0.0, 1.0)
}

fn check(
    name: &'static str,
    value: f32,
    passed: bool,
    advice: &'static str,
    grade: f32,
) -> FaceCheck {
    FaceCheck {
        name,
        passed,
        value,
        advice: if passed { "" } else { advice },
        grade: if passed {
            grade.max(0.6)
        } else {
            grade.min(0.59)
        },
    }
}

/// The checks on the one face found, in the order the officer fixes things.
fn judge(face: &Detection, luma: &Luma) -> Vec<FaceCheck> {
    let (w, h) = (luma.width as f32, luma.height as f32);
    let d = face.eye_distance();
    let mid = face.eye_midpoint();
    let mut checks = vec![check(ONE_FACE, 1.0, true, "", 1.0)];

    let max_d = MAX_EYE_DISTANCE_FRACTION * w;
    checks.push(if d < MIN_EYE_DISTANCE {
        check(SIZE, d, false, advice::COME_CLOSER, d / MIN_EYE_DISTANCE)
    } else if d > max_d {
        check(SIZE, d, false, advice::MOVE_BACK, max_d / d)
    } else {
        check(SIZE, d, true, "", 1.0)
    });

    // Where the token geometry wants the eyes, scaled to the frame: horizontally centred, and
    // the token's top edge (2.4 eye distances above the eyes) inside the frame with the chin
    // (about 2.9 below) too. Off-centre is measured in eye distances.
    let want_y = (h * 0.45).clamp(2.4 * d, (h - 2.9 * d).max(2.4 * d));
    let off = ((mid.x - w / 2.0).powi(2) + (mid.y - want_y).powi(2)).sqrt() / d.max(1.0);
    checks.push(check(
        CENTRING,
        off,
        off <= MAX_OFF_CENTRE,
        advice::CENTRE,
        1.0 - off / (3.0 * MAX_OFF_CENTRE),
    ));

    let roll = face.roll_deg();
    checks.push(check(
        ROLL,
        roll,
        roll.abs() <= MAX_ROLL_DEG,
        advice::HEAD_STRAIGHT,
        1.0 - roll.abs() / (3.0 * MAX_ROLL_DEG),
    ));

    let (yaw, pitch) = face.yaw_pitch_deg();
    let pose = (yaw / MAX_YAW_DEG).abs().max((pitch / MAX_PITCH_DEG).abs());
    checks.push(check(
        POSE,
        if (yaw / MAX_YAW_DEG).abs() >= (pitch / MAX_PITCH_DEG).abs() {
            yaw
        } else {
            pitch
        },
        pose <= 1.0,
        advice::LOOK_STRAIGHT,
        1.0 - pose / 3.0,
    ));

    // Photometry on the inner face: between the eyes' outer corners, brows to mouth.
    let inner = luma.region(
        mid.x - 0.9 * d,
        mid.y - 0.5 * d,
        mid.x + 0.9 * d,
        mid.y + 1.4 * d,
    );
    let (mean, _) = mean_std(&inner);
    checks.push(if mean < MIN_LUMA {
        check(EXPOSURE, mean, false, advice::TOO_DARK, mean / MIN_LUMA)
    } else if mean > MAX_LUMA {
        check(
            EXPOSURE,
            mean,
            false,
            advice::TOO_BRIGHT,
            (255.0 - mean) / (255.0 - MAX_LUMA),
        )
    } else {
        check(EXPOSURE, mean, true, "", 1.0)
    });

    let mut sorted = inner;
    let range = percentile(&mut sorted, 0.95) - percentile(&mut sorted, 0.05);
    checks.push(check(
        CONTRAST,
        range,
        range >= MIN_CONTRAST,
        advice::FLAT_LIGHT,
        ramp(range, 0.0, 1.5 * MIN_CONTRAST),
    ));

    let sharp = sharpness(face, luma);
    checks.push(check(
        SHARPNESS,
        sharp,
        sharp >= MIN_SHARPNESS,
        advice::BLURRED,
        ramp(sharp, 0.0, 2.0 * MIN_SHARPNESS),
    ));

    let background = background_std(face, luma);
    checks.push(check(
        BACKGROUND,
        background,
        background <= MAX_BACKGROUND_STD,
        advice::BACKGROUND,
        ramp(background, 3.0 * MAX_BACKGROUND_STD, 0.0),
    ));
    checks
}

/// Variance of the Laplacian over the face, resampled (levelled) to a 48 px eye distance so the
/// figure does not depend on how close the citizen stands, divided by the face's luma variance
/// so it does not depend on lighting either. Blur removes the fine detail the Laplacian sees.
fn sharpness(face: &Detection, luma: &Luma) -> f32 {
    const EYES: f32 = 48.0;
    const SIDE: usize = 80;
    let d = face.eye_distance().max(1.0);
    let mid = face.eye_midpoint();
    let k = d / EYES;
    let roll = face.roll_deg().to_radians();
    let (sin, cos) = roll.sin_cos();
    // Patch centred a little below the eyes: eyes, nose and mouth.
    let patch: Vec<f32> = (0..SIDE * SIDE)
        .map(|i| {
            let (px, py) = (
                (i % SIDE) as f32 - SIDE as f32 / 2.0,
                (i / SIDE) as f32 - 20.0,
            );
            let (dx, dy) = (px * k, py * k);
            let (sx, sy) = (mid.x + dx * cos - dy * sin, mid.y + dx * sin + dy * cos);
            // Average over the source footprint so shrinking does not alias noise into detail.
            if k > 1.5 {
                let r = k / 2.0;
                let taps = [(-r, -r), (r, -r), (-r, r), (r, r), (0.0, 0.0)];
                taps.iter()
                    .map(|&(ox, oy)| luma.at(sx + ox, sy + oy))
                    .sum::<f32>()
                    / 5.0
            } else {
                luma.at(sx, sy)
            }
        })
        .collect();
    let mut lap = Vec::with_capacity(SIDE * SIDE);
    for y in 1..SIDE - 1 {
        for x in 1..SIDE - 1 {
            let c = patch[y * SIDE + x];
            lap.push(
                patch[y * SIDE + x - 1]
                    + patch[y * SIDE + x + 1]
                    + patch[(y - 1) * SIDE + x]
                    + patch[(y + 1) * SIDE + x]
                    - 4.0 * c,
            );
        }
    }
    let (_, lap_std) = mean_std(&lap);
    let (_, std) = mean_std(&patch);
    lap_std * lap_std / (std * std).max(1.0)
}

/// Standard deviation of luma in two strips beside the head, along the token image's side edges:
/// from near the token's top edge down to half an eye distance above the eye line, between 1.8
/// and 2.1 eye distances from the eye midline (the edges are at 2; big hair reaches 1.75). The
/// larger of the two, so one busy side fails.
fn background_std(face: &Detection, luma: &Luma) -> f32 {
    let d = face.eye_distance().max(1.0);
    let mid = face.eye_midpoint();
    let (top, bottom) = (mid.y - 2.3 * d, mid.y - 0.5 * d);
    let left = luma.region(mid.x - 2.1 * d, top, mid.x - 1.8 * d, bottom);
    let right = luma.region(mid.x + 1.8 * d, top, mid.x + 2.1 * d, bottom);
    let side = |v: &[f32]| if v.len() < 16 { 0.0 } else { mean_std(v).1 };
    side(&left).max(side(&right))
}

/// 0..100 from the checks' grades (mean, as a percentage; a passing check grades at least 0.6):
/// capped at 49 when one fails, and 0 when there is not exactly one face.
fn overall(checks: &[FaceCheck]) -> u8 {
    if checks.len() <= 1 {
        return 0;
    }
    let mean = checks.iter().map(|c| c.grade).sum::<f32>() / checks.len() as f32;
    let mut score = (100.0 * mean).round();
    if checks.iter().any(|c| !c.passed) {
        score = score.min(49.0);
    }
    score.clamp(0.0, 100.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimCamera;
    use crate::Camera;

    const PORTRAITS: [(&str, &[u8]); 2] = [
        (
            "astronaut",
            include_bytes!("../../assets/portraits/astronaut.jpg"),
        ),
        (
            "grace_hopper",
            include_bytes!("../../assets/portraits/grace_hopper.jpg"),
        ),
    ];

    fn analyze(frame: &RgbFrame) -> FaceReport {
        FaceAnalyzer::shared().analyze(frame).unwrap()
    }

    fn failed(report: &FaceReport) -> Vec<&'static str> {
        report
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect()
    }

    /// A frame of a good moment of the simulated camera: every check should pass on it.
    fn good_frame(seed: u64) -> RgbFrame {
        let mut camera = SimCamera::new(seed);
        let moment = (1..).find(|&m| camera.fault(m).is_none()).unwrap();
        for _ in 0..moment * SimCamera::MOMENT_FRAMES {
            camera.frame().unwrap();
        }
        camera.frame().unwrap()
    }

    /// Resamples `frame` through `map` (output pixel -> source pixel), edges repeated.
    fn warp(frame: &RgbFrame, map: impl Fn(f32, f32) -> (f32, f32)) -> RgbFrame {
        let mut rgb = Vec::with_capacity(frame.rgb.len());
        for y in 0..frame.height {
            for x in 0..frame.width {
                let (sx, sy) = map(x as f32 + 0.5, y as f32 + 0.5);
                rgb.extend_from_slice(&sample(frame, sx, sy, 1.0));
            }
        }
        RgbFrame {
            rgb,
            ..frame.clone()
        }
    }

    fn blurred(frame: &RgbFrame, r: i64) -> RgbFrame {
        let (w, h) = (frame.width as i64, frame.height as i64);
        let mut out = frame.clone();
        for pass in 0..2 {
            let src = out.rgb.clone();
            for y in 0..h {
                for x in 0..w {
                    for c in 0..3 {
                        let mut sum = 0u32;
                        for t in -r..=r {
                            let (xx, yy) = if pass == 0 {
                                ((x + t).clamp(0, w - 1), y)
                            } else {
                                (x, (y + t).clamp(0, h - 1))
                            };
                            sum += u32::from(src[((yy * w + xx) * 3 + c) as usize]);
                        }
                        out.rgb[((y * w + x) * 3 + c) as usize] = (sum / (2 * r as u32 + 1)) as u8;
                    }
                }
            }
        }
        out
    }

    fn plain(width: u32, height: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> RgbFrame {
        let rgb = (0..height)
            .flat_map(|y| (0..width).map(move |x| (x, y)))
            .flat_map(|(x, y)| f(x, y))
            .collect();
        RgbFrame {
            width,
            height,
            rgb,
            captured_at_ms: 0,
        }
    }

    #[test]
    fn finds_exactly_one_face_with_sane_keypoints_on_each_shipped_portrait() {
        for (name, bytes) in PORTRAITS {
            let frame = decode_frame(bytes, 0).unwrap();
            let report = analyze(&frame);
            assert_eq!(report.detections.len(), 1, "{name}: {report:#?}");
            let face = report.face().unwrap();
            assert!(face.score >= MIN_SCORE);
            let inside = |p: Point| {
                p.x > face.x
                    && p.x < face.x + face.width
                    && p.y > face.y
                    && p.y < face.y + face.height
            };
            for p in [face.left_eye, face.right_eye, face.nose, face.mouth] {
                assert!(inside(p), "{name}: {p:?} outside {face:?}");
            }
            assert!(
                face.left_eye.x < face.nose.x && face.nose.x < face.right_eye.x,
                "{name}"
            );
            assert!(
                face.eye_midpoint().y < face.nose.y && face.nose.y < face.mouth.y,
                "{name}"
            );
        }
    }

    #[test]
    fn grace_hoppers_flag_fails_the_background_check() {
        let frame = decode_frame(PORTRAITS[1].1, 0).unwrap();
        let report = analyze(&frame);
        let background = report.checks.iter().find(|c| c.name == BACKGROUND).unwrap();
        assert!(!background.passed, "{report:#?}");
        assert_eq!(background.advice, advice::BACKGROUND);
        assert!(report.score < 50);
    }

    #[test]
    fn no_face_on_a_blank_image_or_a_landscape() {
        let blank = plain(640, 480, |_, _| [128, 128, 128]);
        let landscape = plain(640, 480, |x, y| {
            let hill = 300.0 + 40.0 * (x as f32 / 70.0).sin() + 15.0 * (x as f32 / 23.0).cos();
            if (y as f32) < hill {
                let t = y as f32 / hill;
                [(90.0 + 80.0 * t) as u8, (150.0 + 60.0 * t) as u8, 230]
            } else {
                let grain = ((x * 7 + y * 13) % 17) as u8;
                [60 + grain, 110 + grain, 40]
            }
        });
        for (name, frame) in [("blank", blank), ("landscape", landscape)] {
            let report = analyze(&frame);
            assert!(report.detections.is_empty(), "{name}: {report:#?}");
            assert_eq!(failed(&report), [ONE_FACE], "{name}");
            assert_eq!(report.first_failure().unwrap().advice, advice::NO_FACE);
            assert_eq!(report.score, 0);
            assert!(FaceAnalyzer::token_image(&frame, &report).is_err());
        }
    }

    #[test]
    fn two_people_fail_the_one_face_check() {
        let one = good_frame(1);
        let (w, h) = (one.width, one.height);
        // Two copies of the frame side by side, each shrunk to half width.
        let pair = plain(w, h / 2, |x, y| {
            let sx = (x % (w / 2)) * 2;
            let i = ((y * 2 * w + sx) * 3) as usize;
            [one.rgb[i], one.rgb[i + 1], one.rgb[i + 2]]
        });
        let report = analyze(&pair);
        assert_eq!(report.detections.len(), 2, "{report:#?}");
        assert_eq!(report.first_failure().unwrap().advice, advice::MANY_FACES);
    }

    #[test]
    fn good_simulated_frames_pass_every_check() {
        for seed in 0..6 {
            let report = analyze(&good_frame(seed));
            assert!(
                report.passed(),
                "seed {seed}: {:?} {report:#?}",
                failed(&report)
            );
            assert!(report.score >= 60, "seed {seed}: {}", report.score);
        }
    }

    #[test]
    fn darkened_blurred_off_centre_rotated_and_distant_frames_fail_the_right_check() {
        let good = good_frame(2);
        let face = analyze(&good).face().unwrap().clone();
        let mid = face.eye_midpoint();
        let d = face.eye_distance();

        let mut dark = good.clone();
        dark.rgb
            .iter_mut()
            .for_each(|v| *v = (f32::from(*v) * 0.3) as u8);
        let mut bright = good.clone();
        bright
            .rgb
            .iter_mut()
            .for_each(|v| *v = (f32::from(*v) * 1.7).min(255.0) as u8);
        let blur = blurred(&good, (d * 0.08) as i64);
        let off = warp(&good, |x, y| (x - 1.3 * d, y));
        let rotated = warp(&good, |x, y| {
            let (s, c) = 15f32.to_radians().sin_cos();
            let (dx, dy) = (x - mid.x, y - mid.y);
            (mid.x + dx * c + dy * s, mid.y - dx * s + dy * c)
        });
        let far = warp(&good, |x, y| {
            (mid.x + (x - mid.x) * 2.2, mid.y + (y - mid.y) * 2.2)
        });

        for (name, frame, check, advice) in [
            ("dark", dark, EXPOSURE, advice::TOO_DARK),
            ("bright", bright, EXPOSURE, advice::TOO_BRIGHT),
            ("blurred", blur, SHARPNESS, advice::BLURRED),
            ("off centre", off, CENTRING, advice::CENTRE),
            ("rotated", rotated, ROLL, advice::HEAD_STRAIGHT),
            ("far", far, SIZE, advice::COME_CLOSER),
        ] {
            let report = analyze(&frame);
            assert_eq!(report.detections.len(), 1, "{name}: {report:#?}");
            let c = report.checks.iter().find(|c| c.name == check).unwrap();
            assert!(!c.passed, "{name}: {check} passed: {report:#?}");
            assert_eq!(c.advice, advice, "{name}");
            assert!(report.score < 50, "{name}: {}", report.score);
        }
    }

    #[test]
    fn token_image_puts_the_eyes_where_the_standard_says() {
        let mut tilted = good_frame(3);
        let face = analyze(&tilted).face().unwrap().clone();
        let mid = face.eye_midpoint();
        // Tilt by 6 degrees (still passing) so levelling is tested too.
        tilted = warp(&tilted, |x, y| {
            let (s, c) = 6f32.to_radians().sin_cos();
            let (dx, dy) = (x - mid.x, y - mid.y);
            (mid.x + dx * c + dy * s, mid.y - dx * s + dy * c)
        });
        let report = analyze(&tilted);
        let token = FaceAnalyzer::token_image(&tilted, &report).unwrap();
        assert_eq!(token.height * 3, token.width * 4);
        assert!((token::MIN_WIDTH..=token::MAX_WIDTH).contains(&token.width));
        let decoded = decode_frame(&token.jpeg, 0).unwrap();
        assert_eq!((decoded.width, decoded.height), (token.width, token.height));
        let eyes = analyze(&decoded).face().unwrap().clone();
        let w = token.width as f32;
        let mid = eyes.eye_midpoint();
        assert!((mid.x - w * 0.5).abs() < w * 0.03, "{eyes:?}");
        assert!((mid.y - w * 0.6).abs() < w * 0.03, "{eyes:?}");
        assert!(
            (eyes.eye_distance() - w * 0.25).abs() < w * 0.03,
            "{eyes:?}"
        );
        assert!(eyes.roll_deg().abs() < 2.5, "{}", eyes.roll_deg());
    }

    #[test]
    fn a_frame_whose_buffer_does_not_match_its_size_is_an_error() {
        let mut frame = plain(8, 8, |_, _| [0, 0, 0]);
        frame.rgb.pop();
        assert!(matches!(
            FaceAnalyzer::shared().analyze(&frame),
            Err(FaceError::FrameSize { .. })
        ));
    }
}
