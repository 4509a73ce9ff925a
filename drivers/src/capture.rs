//! The capture data model and the device traits.
//!
//! Owns finger positions and exception reasons, the image containers (greyscale fingerprint
//! images, JPEG face photos, signatures kept both as pen strokes and as a rendered PNG),
//! [`CaptureError`] and the [`Camera`], [`FingerprintScanner`] and [`SignaturePad`] traits.
//! Everything that ends up in a signed record is integer-valued, so canonical JSON can hold it.
//! `Debug` never prints image bytes or pen strokes: they are biometric data and end up in logs.

use std::fmt;

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, ImageFormat};
use serde::{Deserialize, Serialize};

/// Resolution assumed for a PNG that does not state one: the usual fingerprint resolution.
pub const DEFAULT_PPI: u16 = 500;
/// Resolution recorded in a rendered signature PNG (one pad unit is one screen pixel).
pub const SIGNATURE_PPI: u16 = 96;

/// A finger, numbered by its ANSI/NIST-ITL finger position code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FingerPosition {
    RightThumb = 1,
    RightIndex = 2,
    RightMiddle = 3,
    RightRing = 4,
    RightLittle = 5,
    LeftThumb = 6,
    LeftIndex = 7,
    LeftMiddle = 8,
    LeftRing = 9,
    LeftLittle = 10,
}

impl FingerPosition {
    /// All ten fingers, right hand first, in code order.
    pub const ALL: [FingerPosition; 10] = [
        Self::RightThumb,
        Self::RightIndex,
        Self::RightMiddle,
        Self::RightRing,
        Self::RightLittle,
        Self::LeftThumb,
        Self::LeftIndex,
        Self::LeftMiddle,
        Self::LeftRing,
        Self::LeftLittle,
    ];

    /// ANSI/NIST-ITL finger position code: right thumb 1 … right little 5,
    /// left thumb 6 … left little 10.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The snake_case name, identical to the serde form.
    pub fn name(self) -> &'static str {
        match self {
            Self::RightThumb => "right_thumb",
            Self::RightIndex => "right_index",
            Self::RightMiddle => "right_middle",
            Self::RightRing => "right_ring",
            Self::RightLittle => "right_little",
            Self::LeftThumb => "left_thumb",
            Self::LeftIndex => "left_index",
            Self::LeftMiddle => "left_middle",
            Self::LeftRing => "left_ring",
            Self::LeftLittle => "left_little",
        }
    }

    pub fn is_right_hand(self) -> bool {
        self.code() <= 5
    }

    /// Position in [`Self::ALL`], for per-finger tables.
    pub(crate) fn index(self) -> usize {
        usize::from(self.code() - 1)
    }
}

impl fmt::Display for FingerPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a finger was not captured. `Other` serialises as `{"other": "text"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionReason {
    Missing,
    Injured,
    Bandaged,
    Unusable,
    Other(String),
}

/// 8-bit greyscale image, row-major, `pixels.len() == width * height`.
#[derive(Clone, PartialEq, Eq)]
pub struct GreyImage {
    pub width: u32,
    pub height: u32,
    pub ppi: u16,
    pub pixels: Vec<u8>,
}

impl GreyImage {
    /// Encodes as an 8-bit greyscale PNG whose `pHYs` chunk records `ppi`.
    pub fn to_png(&self) -> Result<Vec<u8>, CaptureError> {
        let expected = u64::from(self.width) * u64::from(self.height);
        if expected != self.pixels.len() as u64 {
            return Err(CaptureError::PixelCount {
                width: self.width,
                height: self.height,
                len: self.pixels.len(),
            });
        }
        let mut png = Vec::with_capacity(self.pixels.len() / 2);
        PngEncoder::new(&mut png)
            .write_image(&self.pixels, self.width, self.height, ExtendedColorType::L8)
            .map_err(image_error)?;
        insert_phys(&mut png, self.ppi)?;
        Ok(png)
    }

    /// Decodes any PNG, converting colour or 16-bit input to 8-bit luma. The resolution comes
    /// from the `pHYs` chunk when it states one in pixels per metre, else [`DEFAULT_PPI`].
    pub fn from_png(bytes: &[u8]) -> Result<GreyImage, CaptureError> {
        let grey = image::load_from_memory_with_format(bytes, ImageFormat::Png)
            .map_err(image_error)?
            .into_luma8();
        Ok(GreyImage {
            width: grey.width(),
            height: grey.height(),
            ppi: read_phys_ppi(bytes).unwrap_or(DEFAULT_PPI),
            pixels: grey.into_raw(),
        })
    }
}

impl fmt::Debug for GreyImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GreyImage")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("ppi", &self.ppi)
            .finish_non_exhaustive()
    }
}

/// Encoded face photo.
#[derive(Clone, PartialEq, Eq)]
pub struct FaceImage {
    pub width: u32,
    pub height: u32,
    pub jpeg: Vec<u8>,
}

impl fmt::Debug for FaceImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaceImage")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("jpeg_bytes", &self.jpeg.len())
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaceCapture {
    pub image: FaceImage,
    /// 0–100, as reported by the device; the station re-assesses it.
    pub quality: u8,
    pub captured_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FingerCapture {
    pub position: FingerPosition,
    pub image: GreyImage,
    /// 0–100, as reported by the device; the station re-assesses it.
    pub quality: u8,
    pub captured_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FingerException {
    pub position: FingerPosition,
    pub reason: ExceptionReason,
}

/// One pen sample in pad pixels; `t_ms` counts from the first sample of the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PenPoint {
    pub x: u16,
    pub y: u16,
    pub t_ms: u32,
    pub pressure: u8,
}

/// Pen samples between pen-down and pen-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stroke {
    pub points: Vec<PenPoint>,
}

/// A signature: the pen strokes (dynamics) and the same strokes rendered as a greyscale PNG.
#[derive(Clone, PartialEq, Eq)]
pub struct SignatureCapture {
    pub width: u16,
    pub height: u16,
    pub strokes: Vec<Stroke>,
    pub png: Vec<u8>,
    pub captured_at_ms: i64,
}

impl SignatureCapture {
    /// Rasterises `strokes` on a `width`×`height` white canvas in black ink, the line width
    /// following pen pressure, and keeps both. Points outside the canvas are clipped.
    pub fn render(
        width: u16,
        height: u16,
        strokes: Vec<Stroke>,
        captured_at_ms: i64,
    ) -> Result<SignatureCapture, CaptureError> {
        if width == 0 || height == 0 {
            return Err(CaptureError::Image(format!(
                "signature canvas {width}x{height} has no pixels"
            )));
        }
        let mut ink = Ink {
            width: usize::from(width),
            height: usize::from(height),
            pixels: vec![255; usize::from(width) * usize::from(height)],
        };
        for stroke in &strokes {
            match stroke.points.as_slice() {
                [only] => ink.segment(only, only),
                points => points.windows(2).for_each(|p| ink.segment(&p[0], &p[1])),
            }
        }
        let png = GreyImage {
            width: u32::from(width),
            height: u32::from(height),
            ppi: SIGNATURE_PPI,
            pixels: ink.pixels,
        }
        .to_png()?;
        Ok(SignatureCapture {
            width,
            height,
            strokes,
            png,
            captured_at_ms,
        })
    }
}

/// Why a signature is refused: the officer asks the citizen to sign again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureProblem {
    #[error("the signature is empty: ask the citizen to sign")]
    Empty,
    #[error("the signature is too short ({ink_px} px of ink, {span_pct}% of the pad's width): ask the citizen to sign in full")]
    TooShort { ink_px: u32, span_pct: u32 },
    #[error("the signature was drawn in {duration_ms} ms, too fast to be handwritten: ask the citizen to sign again")]
    TooFast { duration_ms: u32 },
}

/// Figures of a signature's pen trace, for the check and the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureStats {
    pub strokes: u32,
    pub points: u32,
    /// Total pen travel while down, in pad pixels.
    pub ink_px: u32,
    /// Width of the bounding box of all points, in percent of the pad's width.
    pub span_pct: u32,
    /// From the first to the last sample.
    pub duration_ms: u32,
}

impl SignatureCapture {
    /// Least pen travel, in percent of the pad's width, of an acceptable signature.
    pub const MIN_INK_PCT: u32 = 25;
    /// Least width of an acceptable signature, in percent of the pad's width.
    pub const MIN_SPAN_PCT: u32 = 10;
    /// A trace drawn faster than this is a swipe, not handwriting. Every input path timestamps
    /// its points (the kiosk's pad since the first pen-down, the simulated pad by its clock).
    pub const MIN_DURATION_MS: u32 = 150;
    pub fn stats(&self) -> SignatureStats {
        let points: Vec<&PenPoint> = self.strokes.iter().flat_map(|s| &s.points).collect();
        let ink: f64 = self
            .strokes
            .iter()
            .flat_map(|s| s.points.windows(2))
            .map(|w| {
                let (dx, dy) = (
                    f64::from(w[1].x) - f64::from(w[0].x),
                    f64::from(w[1].y) - f64::from(w[0].y),
                );
                dx.hypot(dy)
            })
            .sum();
        let (lo, hi) = points
            .iter()
            .fold((u16::MAX, 0u16), |(lo, hi), p| (lo.min(p.x), hi.max(p.x)));
        let span = if points.is_empty() { 0 } else { hi - lo };
        let (t0, t1) = points
            .iter()
            .fold((u32::MAX, 0u32), |(a, b), p| (a.min(p.t_ms), b.max(p.t_ms)));
        SignatureStats {
            strokes: self.strokes.iter().filter(|s| !s.points.is_empty()).count() as u32,
            points: points.len() as u32,
            ink_px: ink.round() as u32,
            span_pct: u32::from(span) * 100 / u32::from(self.width.max(1)),
            duration_ms: if points.is_empty() { 0 } else { t1 - t0 },
        }
    }

    /// Refuse an empty or trivially short signature (a dot, a tick) and one drawn too fast to be
    /// handwritten (a swipe).
    pub fn check(&self) -> Result<SignatureStats, SignatureProblem> {
        let s = self.stats();
        if s.points == 0 {
            return Err(SignatureProblem::Empty);
        }
        let min_ink = u32::from(self.width) * Self::MIN_INK_PCT / 100;
        if s.ink_px < min_ink || s.span_pct < Self::MIN_SPAN_PCT {
            return Err(SignatureProblem::TooShort {
                ink_px: s.ink_px,
                span_pct: s.span_pct,
            });
        }
        if s.duration_ms < Self::MIN_DURATION_MS {
            return Err(SignatureProblem::TooFast {
                duration_ms: s.duration_ms,
            });
        }
        Ok(s)
    }
}

impl fmt::Debug for SignatureCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureCapture")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("strokes", &self.strokes.len())
            .field("png_bytes", &self.png.len())
            .field("captured_at_ms", &self.captured_at_ms)
            .finish()
    }
}

/// Canvas for [`SignatureCapture::render`]: each segment is a capsule, its radius set by pressure.
struct Ink {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl Ink {
    fn segment(&mut self, a: &PenPoint, b: &PenPoint) {
        let radius = |p: &PenPoint| 0.8 + 1.7 * f32::from(p.pressure) / 255.0;
        let (ax, ay, ra) = (f32::from(a.x) + 0.5, f32::from(a.y) + 0.5, radius(a));
        let (bx, by, rb) = (f32::from(b.x) + 0.5, f32::from(b.y) + 0.5, radius(b));
        let reach = ra.max(rb) + 1.0;
        let span = |lo: f32, hi: f32, max: usize| {
            let lo = (lo - reach).floor().max(0.0) as usize;
            let hi = ((hi + reach).ceil().max(0.0) as usize).min(max);
            lo..hi
        };
        let (dx, dy) = (bx - ax, by - ay);
        let len2 = (dx * dx + dy * dy).max(f32::EPSILON);
        for y in span(ay.min(by), ay.max(by), self.height) {
            for x in span(ax.min(bx), ax.max(bx), self.width) {
                let (px, py) = (x as f32 + 0.5 - ax, y as f32 + 0.5 - ay);
                let t = ((px * dx + py * dy) / len2).clamp(0.0, 1.0);
                let dist = (px - t * dx).hypot(py - t * dy);
                let cover = (ra + t * (rb - ra) - dist + 0.5).clamp(0.0, 1.0);
                let ink = (255.0 * (1.0 - cover)) as u8;
                let pixel = &mut self.pixels[y * self.width + x];
                *pixel = (*pixel).min(ink);
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("device {0} is not connected")]
    Disconnected(String),
    #[error("capture timed out on {0}")]
    Timeout(String),
    #[error("image could not be encoded or decoded: {0}")]
    Image(String),
    #[error("no finger on the scanner at {0}")]
    NoFinger(String),
    #[error("image is {width}x{height} but holds {len} pixels")]
    PixelCount { width: u32, height: u32, len: usize },
}

fn image_error(error: image::ImageError) -> CaptureError {
    CaptureError::Image(error.to_string())
}

/// One uncompressed camera frame: RGB8, row-major, no padding.
#[derive(Clone, PartialEq, Eq)]
pub struct RgbFrame {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
    pub captured_at_ms: i64,
}

impl fmt::Debug for RgbFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RgbFrame")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("captured_at_ms", &self.captured_at_ms)
            .finish()
    }
}

impl RgbFrame {
    /// JPEG quality of stills made from frames.
    pub const JPEG_QUALITY: u8 = 85;

    /// Encodes the frame as a JPEG still.
    pub fn to_jpeg(&self) -> Result<FaceImage, CaptureError> {
        let expected = self.width as usize * self.height as usize * 3;
        if self.rgb.len() != expected {
            return Err(CaptureError::PixelCount {
                width: self.width,
                height: self.height,
                len: self.rgb.len() / 3,
            });
        }
        let mut jpeg = Vec::with_capacity(48 * 1024);
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, Self::JPEG_QUALITY)
            .encode(
                &self.rgb,
                self.width,
                self.height,
                image::ExtendedColorType::Rgb8,
            )
            .map_err(image_error)?;
        Ok(FaceImage {
            width: self.width,
            height: self.height,
            jpeg,
        })
    }
}

/// A camera: a stream of preview frames, and stills taken from it.
///
/// A camera that disappears (unplugged, driver reset) returns [`CaptureError::Disconnected`]
/// from the next call; the caller retries, and a camera that comes back answers again.
pub trait Camera: Send {
    fn name(&self) -> String;

    /// The next preview frame; blocks for at most about one frame interval.
    fn frame(&mut self) -> Result<RgbFrame, CaptureError>;

    /// A still portrait. By default the next frame, JPEG-encoded, with no device quality score
    /// (0): the station judges the picture itself.
    fn capture_still(&mut self) -> Result<FaceCapture, CaptureError> {
        let frame = self.frame()?;
        Ok(FaceCapture {
            image: frame.to_jpeg()?,
            quality: 0,
            captured_at_ms: frame.captured_at_ms,
        })
    }
}

/// A single-finger scanner (flat or rolled, one finger per call).
pub trait FingerprintScanner: Send {
    fn name(&self) -> String;
    fn capture(&mut self, position: FingerPosition) -> Result<FingerCapture, CaptureError>;
}

/// A pen or touch surface on which the citizen signs.
pub trait SignaturePad: Send {
    fn name(&self) -> String;
    fn capture(&mut self) -> Result<SignatureCapture, CaptureError>;
}

// The image crate neither writes nor reads PNG resolution, and fingerprint resolution must
// survive a round trip (ANSI/NIST records carry it), so the `pHYs` chunk is handled here.

const PNG_SIGNATURE_LEN: usize = 8;
/// Signature plus the IHDR chunk, which the PNG format requires to come first.
const PNG_IHDR_END: usize = PNG_SIGNATURE_LEN + 4 + 4 + 13 + 4;

fn insert_phys(png: &mut Vec<u8>, ppi: u16) -> Result<(), CaptureError> {
    if png.get(12..16) != Some(b"IHDR".as_slice()) {
        return Err(CaptureError::Image(
            "PNG encoder wrote no IHDR chunk".into(),
        ));
    }
    let per_metre = (u32::from(ppi) * 10_000 + 127) / 254;
    let mut chunk = Vec::with_capacity(21);
    chunk.extend_from_slice(&9u32.to_be_bytes());
    chunk.extend_from_slice(b"pHYs");
    chunk.extend_from_slice(&per_metre.to_be_bytes());
    chunk.extend_from_slice(&per_metre.to_be_bytes());
    chunk.push(1); // unit: metre
    let crc = crc32(&chunk[4..]);
    chunk.extend_from_slice(&crc.to_be_bytes());
    png.splice(PNG_IHDR_END..PNG_IHDR_END, chunk);
    Ok(())
}

fn read_phys_ppi(png: &[u8]) -> Option<u16> {
    let mut at = PNG_SIGNATURE_LEN;
    while let Some(header) = png.get(at..at + 8) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        match &header[4..8] {
            b"IDAT" => return None, // pHYs must precede the image data
            b"pHYs" => {
                let data = png.get(at + 8..at + 17)?;
                let per_metre = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                let ppi = (u64::from(per_metre) * 254 + 5_000) / 10_000;
                return u16::try_from(ppi)
                    .ok()
                    .filter(|&ppi| data[8] == 1 && ppi > 0);
            }
            _ => at = at.checked_add(12 + len)?,
        }
    }
    None
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
};

fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |c, &b| {
        CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finger_codes_are_one_to_ten_in_order_and_names_match_serde() {
        let codes: Vec<u8> = FingerPosition::ALL.iter().map(|f| f.code()).collect();
        assert_eq!(codes, (1..=10).collect::<Vec<u8>>());
        for finger in FingerPosition::ALL {
            let json = serde_json::to_string(&finger).unwrap();
            assert_eq!(json, format!("\"{}\"", finger.name()));
            assert_eq!(FingerPosition::ALL[finger.index()], finger);
        }
        assert!(FingerPosition::RightLittle.is_right_hand());
        assert!(!FingerPosition::LeftThumb.is_right_hand());
    }

    #[test]
    fn exception_reasons_serialise_as_documented() {
        let other = ExceptionReason::Other("burn scar".into());
        assert_eq!(
            serde_json::to_string(&other).unwrap(),
            r#"{"other":"burn scar"}"#
        );
        let json = serde_json::to_string(&FingerException {
            position: FingerPosition::LeftRing,
            reason: ExceptionReason::Bandaged,
        })
        .unwrap();
        assert_eq!(json, r#"{"position":"left_ring","reason":"bandaged"}"#);
        let back: ExceptionReason = serde_json::from_str(r#"{"other":"x"}"#).unwrap();
        assert_eq!(back, ExceptionReason::Other("x".into()));
    }

    fn stroke(points: &[(u16, u16, u32)]) -> Stroke {
        Stroke {
            points: points
                .iter()
                .map(|&(x, y, t_ms)| PenPoint {
                    x,
                    y,
                    t_ms,
                    pressure: 128,
                })
                .collect(),
        }
    }

    #[test]
    fn empty_dotted_swiped_and_real_signatures_are_told_apart() {
        let pad = |strokes| SignatureCapture::render(600, 200, strokes, 0).unwrap();
        assert_eq!(pad(vec![]).check(), Err(SignatureProblem::Empty));
        assert_eq!(pad(vec![stroke(&[])]).check(), Err(SignatureProblem::Empty));
        assert!(matches!(
            pad(vec![stroke(&[(300, 100, 0), (302, 101, 40)])]).check(),
            Err(SignatureProblem::TooShort { .. })
        ));
        // A tall zigzag in one place: ink enough, but no width.
        let zig: Vec<(u16, u16, u32)> = (0u16..40)
            .map(|i| {
                let y = if i % 2 == 0 { 20 } else { 180 };
                (300 + (i % 2) * 8, y, u32::from(i) * 30)
            })
            .collect();
        assert!(matches!(
            pad(vec![stroke(&zig)]).check(),
            Err(SignatureProblem::TooShort { .. })
        ));
        let swipe = pad(vec![stroke(&[(20, 100, 0), (580, 110, 60)])]);
        assert_eq!(swipe.stats().duration_ms, 60);
        assert!(matches!(
            swipe.check(),
            Err(SignatureProblem::TooFast { duration_ms: 60 })
        ));
        let real: Vec<(u16, u16, u32)> = (0u16..120)
            .map(|i| {
                let y = (100.0 + 30.0 * (f32::from(i) / 5.0).sin()) as u16;
                (40 + i * 4, y, u32::from(i) * 12)
            })
            .collect();
        let s = pad(vec![stroke(&real)]).check().unwrap();
        assert_eq!(s.points, 120);
        assert!(s.span_pct >= 75, "{s:?}");
    }

    #[test]
    fn simulated_signatures_pass_the_check() {
        use crate::SignaturePad;
        for seed in 0..40 {
            let sig = crate::sim::SimSignaturePad::new(seed).capture().unwrap();
            if let Err(e) = sig.check() {
                panic!("seed {seed}: {e} ({:?})", sig.stats());
            }
        }
    }

    #[test]
    fn grey_png_keeps_pixels_and_resolution() {
        let image = GreyImage {
            width: 3,
            height: 2,
            ppi: 1000,
            pixels: vec![0, 50, 100, 150, 200, 255],
        };
        let png = image.to_png().unwrap();
        assert_eq!(GreyImage::from_png(&png).unwrap(), image);
    }

    #[test]
    fn png_without_resolution_defaults_to_500_ppi() {
        let mut png = Vec::new();
        PngEncoder::new(&mut png)
            .write_image(&[7; 4], 2, 2, ExtendedColorType::L8)
            .unwrap();
        assert_eq!(GreyImage::from_png(&png).unwrap().ppi, DEFAULT_PPI);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let short = GreyImage {
            width: 4,
            height: 4,
            ppi: 500,
            pixels: vec![0; 15],
        };
        assert!(matches!(
            short.to_png(),
            Err(CaptureError::PixelCount { len: 15, .. })
        ));
        assert!(matches!(
            GreyImage::from_png(b"not a png"),
            Err(CaptureError::Image(_))
        ));
        assert!(SignatureCapture::render(0, 10, Vec::new(), 0).is_err());
    }

    #[test]
    fn debug_prints_no_biometric_bytes() {
        let image = GreyImage {
            width: 1,
            height: 1,
            ppi: 500,
            pixels: vec![123],
        };
        assert!(!format!("{image:?}").contains("123"));
        let face = FaceImage {
            width: 1,
            height: 1,
            jpeg: vec![0xAB; 3],
        };
        assert!(!format!("{face:?}").contains("171"));
    }

    #[test]
    fn signature_render_draws_dark_ink_inside_the_canvas() {
        let point = |x, y, t_ms| PenPoint {
            x,
            y,
            t_ms,
            pressure: 200,
        };
        let strokes = vec![
            Stroke {
                points: vec![point(10, 10, 0), point(90, 40, 10), point(500, 500, 20)],
            },
            Stroke {
                points: vec![point(50, 5, 40)],
            },
        ];
        let signature = SignatureCapture::render(100, 50, strokes.clone(), 42).unwrap();
        assert_eq!(signature.strokes, strokes);
        let image = GreyImage::from_png(&signature.png).unwrap();
        assert_eq!(
            (image.width, image.height, image.ppi),
            (100, 50, SIGNATURE_PPI)
        );
        assert!(
            image.pixels[25 * 100 + 50] < 64,
            "midpoint of the first segment is inked"
        );
        assert_eq!(image.pixels[45 * 100 + 5], 255, "paper stays white");
    }

    proptest! {
        #[test]
        fn grey_png_round_trip_is_lossless(
            (width, height, pixels) in (1u32..24, 1u32..24).prop_flat_map(|(w, h)| {
                (Just(w), Just(h), prop::collection::vec(any::<u8>(), (w * h) as usize))
            }),
            ppi in 1u16..,
        ) {
            let image = GreyImage { width, height, ppi, pixels };
            prop_assert_eq!(GreyImage::from_png(&image.to_png().unwrap()).unwrap(), image);
        }
    }
}
