//! Cameras through Video4Linux2 (feature `v4l2`): discovery ([`cameras`]) and [`V4l2Camera`], the
//! [`Camera`] the kiosk and `tasjil enrol` use for the face photo.
//!
//! Owns opening a camera, negotiating about 640×480 in MJPEG or YUYV, and turning each frame into
//! RGB ([`yuyv_to_rgb`], [`mjpeg_to_rgb`]). Face quality is not judged here.
//!
//! nokhwa (its Linux backend) opens the camera and negotiates the format. Its negotiation is known
//! to refuse cameras that are fine — frame intervals other than 1/n (e.g. 1001/30000) are dropped
//! from its list, stepwise frame sizes are enumerated wrongly, and a driver that adjusts the frame
//! rate is reported as "Not same/Rejected". When nokhwa refuses, the camera is opened directly
//! with the `v4l` crate (which nokhwa itself uses underneath, so no new dependency): set the
//! format, take what the driver grants if it is MJPEG or YUYV. Both paths end in the same frames.
//!
//! Each open camera lives on its own thread, which owns the device (nokhwa's camera is not
//! `Send`, and a V4L2 read can block in the kernel). [`Camera::frame`] asks that thread for a
//! frame and waits at most [`V4l2Camera::frame_timeout`]: a camera that is unplugged or stops
//! delivering gives [`CaptureError::Disconnected`] / [`CaptureError::Timeout`] instead of a hang,
//! the thread is let go, and the next call opens the camera again.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use crate::capture::{Camera, CaptureError, RgbFrame};

/// Requested frame size: enough for a portrait, cheap to convert at preview rate.
pub const WIDTH: u32 = 640;
pub const HEIGHT: u32 = 480;
const FPS: u32 = 30;

/// A V4L2 capture device as discovery lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraInfo {
    /// `/dev/videoN`
    pub path: PathBuf,
    pub index: u32,
    pub name: String,
}

/// The video devices the kernel shows now. An empty list (not an error) when there is none.
pub fn cameras() -> Result<Vec<CameraInfo>, CaptureError> {
    let found = nokhwa::query(nokhwa::utils::ApiBackend::Video4Linux)
        .map_err(|e| CaptureError::Disconnected(format!("cannot list V4L2 cameras: {e}")))?;
    Ok(found
        .into_iter()
        .filter_map(|info| match info.index() {
            nokhwa::utils::CameraIndex::Index(i) => Some(CameraInfo {
                path: PathBuf::from(format!("/dev/video{i}")),
                index: *i,
                name: info.human_name(),
            }),
            nokhwa::utils::CameraIndex::String(_) => None,
        })
        .collect())
}

/// Which camera to open: `auto` (the first one listed), an index (`0`) or a path (`/dev/video2`,
/// or a stable `/dev/v4l/by-id/...` link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraSelector {
    Auto,
    Index(u32),
    Path(PathBuf),
}

impl CameraSelector {
    /// `"auto"`, `"0"`, `"/dev/video0"`.
    pub fn parse(text: &str) -> CameraSelector {
        match text.trim() {
            "" | "auto" => CameraSelector::Auto,
            t => match t.parse() {
                Ok(i) => CameraSelector::Index(i),
                Err(_) => CameraSelector::Path(PathBuf::from(t)),
            },
        }
    }

    /// The device node this selector means now.
    fn resolve(&self) -> Result<(u32, PathBuf), CaptureError> {
        match self {
            CameraSelector::Auto => cameras()?
                .into_iter()
                .next()
                .map(|c| (c.index, c.path))
                .ok_or_else(|| CaptureError::Disconnected("no camera is attached".into())),
            CameraSelector::Index(i) => {
                let path = PathBuf::from(format!("/dev/video{i}"));
                if !path.exists() {
                    return Err(CaptureError::Disconnected(format!(
                        "no camera at {} (camera index {i})",
                        path.display()
                    )));
                }
                Ok((*i, path))
            }
            CameraSelector::Path(path) => {
                let real = std::fs::canonicalize(path).map_err(|e| {
                    CaptureError::Disconnected(format!("no camera at {}: {e}", path.display()))
                })?;
                let index = video_index(&real).ok_or_else(|| {
                    CaptureError::Disconnected(format!(
                        "{} is not a V4L2 video device (/dev/videoN)",
                        path.display()
                    ))
                })?;
                Ok((index, real))
            }
        }
    }
}

impl std::fmt::Display for CameraSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CameraSelector::Auto => f.write_str("auto"),
            CameraSelector::Index(i) => write!(f, "{i}"),
            CameraSelector::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

fn video_index(path: &Path) -> Option<u32> {
    path.file_name()?
        .to_str()?
        .strip_prefix("video")?
        .parse()
        .ok()
}

/// Pixel formats this module converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    Mjpeg,
    Yuyv,
}

/// What the camera agreed to deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Negotiated {
    width: u32,
    height: u32,
    format: PixelFormat,
}

/// One frame as the device delivered it, turned into RGB.
fn to_rgb(n: Negotiated, data: &[u8]) -> Result<(u32, u32, Vec<u8>), CaptureError> {
    match n.format {
        PixelFormat::Yuyv => Ok((n.width, n.height, yuyv_to_rgb(n.width, n.height, data)?)),
        PixelFormat::Mjpeg => mjpeg_to_rgb(data),
    }
}

/// YUYV 4:2:2 (Y0 U Y1 V per two pixels, BT.601 limited range, as UVC cameras send it) to RGB8.
pub fn yuyv_to_rgb(width: u32, height: u32, yuyv: &[u8]) -> Result<Vec<u8>, CaptureError> {
    let pixels = width as usize * height as usize;
    if !width.is_multiple_of(2) || yuyv.len() < pixels * 2 {
        return Err(CaptureError::Image(format!(
            "YUYV frame {width}x{height} needs {} bytes, got {}",
            pixels * 2,
            yuyv.len()
        )));
    }
    let mut rgb = Vec::with_capacity(pixels * 3);
    for quad in yuyv[..pixels * 2].chunks_exact(4) {
        let (u, v) = (i32::from(quad[1]) - 128, i32::from(quad[3]) - 128);
        for y in [quad[0], quad[2]] {
            let c = 298 * (i32::from(y) - 16) + 128;
            rgb.push(clamp8((c + 409 * v) >> 8));
            rgb.push(clamp8((c - 100 * u - 208 * v) >> 8));
            rgb.push(clamp8((c + 516 * u) >> 8));
        }
    }
    Ok(rgb)
}

fn clamp8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// The Huffman tables of ITU-T T.81 Annex K.3 (luminance and chrominance, DC and AC), as one
/// DHT segment's payload: class/id byte, 16 code counts by length, then the values.
const ANNEX_K_TABLES: &[(u8, [u8; 16], &[u8])] = &[
    (
        0x00,
        [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
        &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
    ),
    (
        0x01,
        [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
        &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
    ),
    (
        0x10,
        [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d],
        &[
            0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51,
            0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1,
            0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18,
            0x19, 0x1a, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39,
            0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57,
            0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75,
            0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92,
            0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
            0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
            0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8,
            0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2,
            0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
        ],
    ),
    (
        0x11,
        [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77],
        &[
            0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07,
            0x61, 0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09,
            0x23, 0x33, 0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25,
            0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38,
            0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56,
            0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74,
            0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
            0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
            0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba,
            0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6,
            0xd7, 0xd8, 0xd9, 0xda, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2,
            0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
        ],
    ),
];

/// Many USB cameras send MJPEG frames without Huffman tables (no DHT segment): the stream is
/// coded with the tables of T.81 Annex K, which the frame leaves out to save bytes. Such a frame
/// gets those tables inserted just before its scan; a frame with its own tables is unchanged.
pub fn with_default_huffman_tables(jpeg: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    // Walk the marker segments from SOI up to SOS; give up (unchanged) on anything odd.
    let mut at = 2;
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return jpeg.into();
    }
    while at + 4 <= jpeg.len() && jpeg[at] == 0xFF {
        let marker = jpeg[at + 1];
        if marker == 0xC4 {
            return jpeg.into();
        }
        if marker == 0xDA {
            let mut segment = Vec::new();
            for (class_id, counts, values) in ANNEX_K_TABLES {
                segment.push(*class_id);
                segment.extend_from_slice(counts);
                segment.extend_from_slice(values);
            }
            let mut out = Vec::with_capacity(jpeg.len() + segment.len() + 4);
            out.extend_from_slice(&jpeg[..at]);
            out.extend_from_slice(&[0xFF, 0xC4]);
            out.extend_from_slice(&((segment.len() + 2) as u16).to_be_bytes());
            out.extend_from_slice(&segment);
            out.extend_from_slice(&jpeg[at..]);
            return out.into();
        }
        let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        at += 2 + len;
    }
    jpeg.into()
}

/// One MJPEG frame (a baseline JPEG, with or without its Huffman tables) to RGB8; returns width,
/// height and pixels.
pub fn mjpeg_to_rgb(jpeg: &[u8]) -> Result<(u32, u32, Vec<u8>), CaptureError> {
    let jpeg = with_default_huffman_tables(jpeg);
    let image = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg)
        .map_err(|e| CaptureError::Image(format!("MJPEG frame: {e}")))?
        .into_rgb8();
    Ok((image.width(), image.height(), image.into_raw()))
}

/// The device end, on the camera's own thread.
enum Source {
    Nokhwa(Box<nokhwa::Camera>),
    /// The stream holds its own handle on the device.
    Direct(Box<v4l::io::mmap::Stream<'static>>),
}

impl Source {
    fn open(index: u32, path: &Path) -> Result<(Source, Negotiated, String), CaptureError> {
        match open_nokhwa(index) {
            Ok(opened) => Ok(opened),
            Err(nokhwa_error) => open_direct(path).map_err(|direct| {
                CaptureError::Disconnected(format!(
                    "{}: {direct} (nokhwa: {nokhwa_error})",
                    path.display()
                ))
            }),
        }
    }

    /// The next frame's bytes as delivered.
    fn grab(&mut self) -> Result<Vec<u8>, String> {
        match self {
            Source::Nokhwa(camera) => camera
                .frame_raw()
                .map(|b| b.into_owned())
                .map_err(|e| e.to_string()),
            Source::Direct(stream) => {
                use v4l::io::traits::CaptureStream;
                let (data, meta) = stream.next().map_err(|e| e.to_string())?;
                let used = (meta.bytesused as usize).min(data.len());
                Ok(if used > 0 { &data[..used] } else { data }.to_vec())
            }
        }
    }
}

fn open_nokhwa(index: u32) -> Result<(Source, Negotiated, String), String> {
    use nokhwa::utils::{
        CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType, Resolution,
    };
    let wanted = CameraFormat::new(Resolution::new(WIDTH, HEIGHT), FrameFormat::MJPEG, FPS);
    let request = RequestedFormat::with_formats(
        RequestedFormatType::Closest(wanted),
        &[FrameFormat::MJPEG, FrameFormat::YUYV],
    );
    let mut camera = nokhwa::Camera::with_backend(
        CameraIndex::Index(index),
        request,
        nokhwa::utils::ApiBackend::Video4Linux,
    )
    .map_err(|e| e.to_string())?;
    let f = camera.camera_format();
    let format = match f.format() {
        FrameFormat::MJPEG => PixelFormat::Mjpeg,
        FrameFormat::YUYV => PixelFormat::Yuyv,
        other => return Err(format!("camera offers {other:?}, not MJPEG or YUYV")),
    };
    camera.open_stream().map_err(|e| e.to_string())?;
    let name = camera.info().human_name();
    Ok((
        Source::Nokhwa(Box::new(camera)),
        Negotiated {
            width: f.width(),
            height: f.height(),
            format,
        },
        name,
    ))
}

fn open_direct(path: &Path) -> Result<(Source, Negotiated, String), String> {
    use v4l::video::Capture;
    let device = v4l::Device::with_path(path).map_err(|e| e.to_string())?;
    let name = device
        .query_caps()
        .map(|c| c.card)
        .unwrap_or_else(|_| path.display().to_string());
    let mut granted = None;
    for (fourcc, format) in [(b"MJPG", PixelFormat::Mjpeg), (b"YUYV", PixelFormat::Yuyv)] {
        let asked = v4l::Format::new(WIDTH, HEIGHT, v4l::FourCC::new(fourcc));
        if let Ok(got) = device.set_format(&asked) {
            if got.fourcc == asked.fourcc {
                granted = Some(Negotiated {
                    width: got.width,
                    height: got.height,
                    format,
                });
                break;
            }
        }
    }
    let negotiated = granted.ok_or("the camera delivers neither MJPEG nor YUYV")?;
    let mut stream =
        v4l::io::mmap::Stream::with_buffers(&device, v4l::buffer::Type::VideoCapture, 4)
            .map_err(|e| e.to_string())?;
    stream.set_timeout(Duration::from_secs(2));
    Ok((Source::Direct(Box::new(stream)), negotiated, name))
}

/// The camera's thread, seen from the caller.
struct Worker {
    ask: mpsc::Sender<()>,
    frames: mpsc::Receiver<Result<RgbFrame, CaptureError>>,
}

/// A V4L2 camera as a [`Camera`]. Reopens by itself after a disconnection.
pub struct V4l2Camera {
    selector: CameraSelector,
    name: String,
    worker: Option<Worker>,
    /// Longest wait for one frame (the first after opening included).
    pub frame_timeout: Duration,
    pub clock: fn() -> i64,
}

impl std::fmt::Debug for V4l2Camera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V4l2Camera")
            .field("selector", &self.selector)
            .field("name", &self.name)
            .field("open", &self.worker.is_some())
            .finish_non_exhaustive()
    }
}

impl V4l2Camera {
    /// Open the camera `selector` names; an error naming the device when it is not there or
    /// cannot deliver MJPEG/YUYV.
    pub fn open(selector: CameraSelector) -> Result<V4l2Camera, CaptureError> {
        let mut camera = V4l2Camera {
            name: format!("V4L2 camera {selector}"),
            selector,
            worker: None,
            frame_timeout: Duration::from_secs(3),
            clock: crate::sim::system_clock,
        };
        camera.start()?;
        Ok(camera)
    }

    fn start(&mut self) -> Result<(), CaptureError> {
        let (index, path) = self.selector.resolve()?;
        let (ask, asks) = mpsc::channel::<()>();
        let (send, frames) = mpsc::channel();
        let (ready, opened) = mpsc::channel();
        let clock = self.clock;
        std::thread::Builder::new()
            .name(format!("camera {}", path.display()))
            .spawn(move || {
                let (mut source, negotiated, name) = match Source::open(index, &path) {
                    Ok(o) => o,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let _ = ready.send(Ok(format!("{name} ({})", path.display())));
                // One frame per request; the thread ends when its owner lets go of it.
                while asks.recv().is_ok() {
                    let frame = match source.grab() {
                        Ok(bytes) => {
                            to_rgb(negotiated, &bytes).map(|(width, height, rgb)| RgbFrame {
                                width,
                                height,
                                rgb,
                                captured_at_ms: clock(),
                            })
                        }
                        Err(e) => Err(CaptureError::Disconnected(format!(
                            "{}: {e}",
                            path.display()
                        ))),
                    };
                    let lost = matches!(frame, Err(CaptureError::Disconnected(_)));
                    if send.send(frame).is_err() || lost {
                        return;
                    }
                }
            })
            .map_err(|e| CaptureError::Disconnected(format!("cannot start camera thread: {e}")))?;
        match opened.recv_timeout(self.frame_timeout.max(Duration::from_secs(5))) {
            Ok(Ok(name)) => {
                self.name = name;
                self.worker = Some(Worker { ask, frames });
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(CaptureError::Timeout(format!(
                "{}: the camera did not open",
                self.selector
            ))),
        }
    }
}

impl Camera for V4l2Camera {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn frame(&mut self) -> Result<RgbFrame, CaptureError> {
        if self.worker.is_none() {
            self.start()?;
        }
        let Some(worker) = &self.worker else {
            return Err(CaptureError::Disconnected(self.name.clone()));
        };
        let answer = match worker.ask.send(()) {
            Ok(()) => worker.frames.recv_timeout(self.frame_timeout),
            Err(_) => Err(mpsc::RecvTimeoutError::Disconnected),
        };
        match answer {
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(e @ CaptureError::Image(_))) => Err(e),
            Ok(Err(e)) => {
                self.worker = None;
                Err(e)
            }
            // A thread stuck in the kernel is let go; the device is opened afresh next time.
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.worker = None;
                Err(CaptureError::Timeout(self.name.clone()))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.worker = None;
                Err(CaptureError::Disconnected(self.name.clone()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_without_cameras_is_empty_not_an_error() {
        let listed = cameras().unwrap();
        let nodes = std::fs::read_dir("/dev")
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| video_index(&e.path()).is_some())
            .count();
        if nodes == 0 {
            assert!(listed.is_empty(), "{listed:?}");
        }
        assert!(listed.len() <= nodes, "{listed:?} but {nodes} nodes");
    }

    #[test]
    fn opening_a_missing_camera_names_it() {
        let missing = "/dev/video-tasjil-absent";
        match V4l2Camera::open(CameraSelector::parse(missing)) {
            Err(CaptureError::Disconnected(why)) => assert!(why.contains(missing), "{why}"),
            other => panic!("expected Disconnected, got {other:?}"),
        }
        match V4l2Camera::open(CameraSelector::Index(187)) {
            Err(CaptureError::Disconnected(why)) => {
                assert!(why.contains("/dev/video187"), "{why}")
            }
            other => panic!("expected Disconnected, got {other:?}"),
        }
        // A path that exists but is no video device.
        match V4l2Camera::open(CameraSelector::parse("/dev/null")) {
            Err(CaptureError::Disconnected(why)) => assert!(why.contains("not a V4L2"), "{why}"),
            other => panic!("expected Disconnected, got {other:?}"),
        }
    }

    #[test]
    fn selectors_parse() {
        assert_eq!(CameraSelector::parse("auto"), CameraSelector::Auto);
        assert_eq!(CameraSelector::parse(""), CameraSelector::Auto);
        assert_eq!(CameraSelector::parse("2"), CameraSelector::Index(2));
        assert_eq!(
            CameraSelector::parse("/dev/video2"),
            CameraSelector::Path("/dev/video2".into())
        );
        assert_eq!(video_index(Path::new("/dev/video12")), Some(12));
        assert_eq!(video_index(Path::new("/dev/null")), None);
    }

    #[test]
    fn yuyv_known_pixels_convert_to_known_rgb() {
        // Two pixel pairs: black/white with neutral chroma, then BT.601 red and blue.
        let yuyv = [16, 128, 235, 128, 81, 90, 41, 240];
        let rgb = yuyv_to_rgb(4, 1, &yuyv).unwrap();
        assert_eq!(&rgb[0..3], &[0, 0, 0], "black");
        assert_eq!(&rgb[3..6], &[255, 255, 255], "white");
        // Y=81 U=90 V=240 is pure red in BT.601; Y=41 with the same chroma is a darker red.
        assert_eq!(&rgb[6..9], &[255, 0, 0], "red");
        let dark = &rgb[9..12];
        assert!(dark[0] > 150 && dark[1] == 0 && dark[2] == 0, "{dark:?}");

        // Mid grey, and chroma shared by the two pixels of a pair.
        let rgb = yuyv_to_rgb(2, 1, &[126, 128, 126, 128]).unwrap();
        assert_eq!(rgb, vec![128, 128, 128, 128, 128, 128]);
        let rgb = yuyv_to_rgb(2, 1, &[41, 240, 41, 110]).unwrap();
        assert!(rgb[2] > 200 && rgb[0] < 40, "blue: {rgb:?}");
        assert_eq!(rgb[0..3], rgb[3..6]);
    }

    #[test]
    fn short_or_odd_yuyv_frames_are_errors() {
        assert!(matches!(
            yuyv_to_rgb(4, 2, &[0; 15]),
            Err(CaptureError::Image(_))
        ));
        assert!(matches!(
            yuyv_to_rgb(3, 1, &[0; 6]),
            Err(CaptureError::Image(_))
        ));
    }

    #[test]
    fn mjpeg_frame_decodes_to_its_colours() {
        // A 16×8 frame: left half red, right half blue, JPEG-encoded as a camera would.
        let (w, h) = (16u32, 8u32);
        let rgb: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                if i % w < w / 2 {
                    [220, 20, 20]
                } else {
                    [20, 20, 220]
                }
            })
            .collect();
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .encode(&rgb, w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        let (dw, dh, out) = mjpeg_to_rgb(&jpeg).unwrap();
        assert_eq!((dw, dh), (w, h));
        let at = |x: usize, y: usize| &out[(y * w as usize + x) * 3..][..3];
        assert!(at(2, 4)[0] > 180 && at(2, 4)[2] < 70, "{:?}", at(2, 4));
        assert!(at(13, 4)[2] > 180 && at(13, 4)[0] < 70, "{:?}", at(13, 4));
        assert!(matches!(
            mjpeg_to_rgb(b"\xff\xd8 not a jpeg"),
            Err(CaptureError::Image(_))
        ));
    }

    /// The marker segments of a JPEG up to its scan: `(marker, payload)`.
    fn segments(jpeg: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 2;
        while jpeg[at] == 0xFF && jpeg[at + 1] != 0xDA {
            let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
            out.push((jpeg[at + 1], jpeg[at + 4..at + 2 + len].to_vec()));
            at += 2 + len;
        }
        out
    }

    #[test]
    fn an_mjpeg_frame_without_huffman_tables_decodes_with_annex_k_s() {
        // A colour frame as a camera would code it (the encoder uses T.81 Annex K's tables).
        let (w, h) = (64u32, 48u32);
        let rgb: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                [(x * 4) as u8, (y * 5) as u8, ((x + y) * 2) as u8]
            })
            .collect();
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80)
            .encode(&rgb, w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        // Our tables are byte for byte the ones the encoder wrote (a table typed wrong fails here).
        let written: Vec<u8> = segments(&jpeg)
            .into_iter()
            .filter(|(m, _)| *m == 0xC4)
            .flat_map(|(_, p)| p)
            .collect();
        let inserted = segments(&with_default_huffman_tables(&strip_dht(&jpeg)))
            .into_iter()
            .filter(|(m, _)| *m == 0xC4)
            .flat_map(|(_, p)| p)
            .collect::<Vec<u8>>();
        assert!(!written.is_empty());
        let tables = |bytes: &[u8]| {
            // (class/id, counts, values) in any order.
            let mut t = Vec::new();
            let mut at = 0;
            while at < bytes.len() {
                let n: usize = bytes[at + 1..at + 17].iter().map(|&c| usize::from(c)).sum();
                t.push(bytes[at..at + 17 + n].to_vec());
                at += 17 + n;
            }
            t.sort();
            t
        };
        assert_eq!(tables(&inserted), tables(&written));

        // The frame as such a camera sends it: the same pixels come out.
        let stripped = strip_dht(&jpeg);
        assert!(segments(&stripped).iter().all(|(m, _)| *m != 0xC4));
        assert!(
            image::load_from_memory_with_format(&stripped, image::ImageFormat::Jpeg).is_err(),
            "the JPEG decoder alone refuses a frame without tables"
        );
        let (_, _, want) = mjpeg_to_rgb(&jpeg).unwrap();
        let (dw, dh, got) = mjpeg_to_rgb(&stripped).unwrap();
        assert_eq!((dw, dh), (w, h));
        assert_eq!(got, want);
        // A frame with its own tables is left as it is.
        assert!(matches!(
            with_default_huffman_tables(&jpeg),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    /// `jpeg` without its DHT segments.
    fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut at = 2;
        while jpeg[at] == 0xFF && jpeg[at + 1] != 0xDA {
            let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
            if jpeg[at + 1] != 0xC4 {
                out.extend_from_slice(&jpeg[at..at + 2 + len]);
            }
            at += 2 + len;
        }
        out.extend_from_slice(&jpeg[at..]);
        out
    }
}
