//! WSQ (Wavelet Scalar Quantization) fingerprint image compression, as specified by the FBI's
//! *WSQ Gray-scale Fingerprint Image Compression Specification* (version 3.1): 8-bit greyscale in,
//! 8-bit greyscale out, typically 12–15:1 for 500 ppi prints at the usual 0.75 bit per pixel.
//!
//! The codec is written from the structure of the specification: the 9/7 biorthogonal filter
//! bank over 20 transform nodes giving 64 subbands (60 coded), bit allocation to a target rate,
//! dead-zone scalar quantisation, Huffman coding in three blocks, and the marker segments
//! (SOI, COM, DTT, DQT, SOF, DHT, SOB, EOI). Encoded files carry a `NISTCOM` comment with the
//! image attributes, as NIST's reference software writes and expects.
//!
//! ```
//! let (w, h) = (96, 96);
//! let pixels: Vec<u8> = (0..w * h).map(|i| ((i % w) * 4 ^ (i / w) * 3) as u8).collect();
//! let wsq = tasjil_wsq::encode(&pixels, w as u32, h as u32, &tasjil_wsq::EncodeOptions::default())?;
//! let img = tasjil_wsq::decode(&wsq)?;
//! assert_eq!((img.width, img.height, img.ppi), (96, 96, Some(500)));
//! # Ok::<(), tasjil_wsq::WsqError>(())
//! ```
//!
//! The decoder is meant for untrusted input: it never panics, checks every length and count
//! against the data present, and refuses images above [`DecodeLimits::max_pixels`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod codec;
mod huffman;
mod quant;
mod tree;
mod wavelet;

pub use codec::{decode, decode_with_limits, encode};

/// Smallest width and height accepted. Below 81 pixels the coarsest node of the five-level
/// decomposition has lines of 5 samples or fewer, whose subbands are shorter than the synthesis
/// filters' reach; there NIST's reference reconstruction departs from the exact inverse
/// transform, so such streams would not decode the same everywhere (measured: 64×64 and 72×131
/// decode 37 and 3.3 grey levels RMSE apart; 81 and up agree to within one grey level).
pub const MIN_DIMENSION: u32 = 81;

#[derive(Debug, thiserror::Error)]
pub enum WsqError {
    #[error(
        "image is {width}x{height}: WSQ needs both sides between {MIN_DIMENSION} and 65535 pixels"
    )]
    Dimensions { width: u32, height: u32 },
    #[error("{got} pixel bytes for a {width}x{height} image (expected width × height)")]
    PixelCount { width: u32, height: u32, got: usize },
    #[error("bit rate {0} is outside 0.1..=8 bits per pixel")]
    Bitrate(f32),
    #[error("comment of {0} bytes does not fit in one WSQ comment segment (at most 65533)")]
    CommentTooLong(usize),
    #[error("image of {width}x{height} exceeds the decoder's limit of {max} pixels")]
    TooLarge { width: u32, height: u32, max: u64 },
    #[error("not a WSQ stream: it does not start with the SOI marker (FF A0)")]
    NotWsq,
    #[error("WSQ stream ends early: {0}")]
    Truncated(&'static str),
    #[error("malformed WSQ stream: {0}")]
    Malformed(&'static str),
    #[error("WSQ stream uses a feature this decoder does not support: {0}")]
    Unsupported(&'static str),
    #[error("internal encoder error (please report): {0}")]
    Internal(&'static str),
}

/// Settings of the encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeOptions {
    /// Target bit rate in bits per pixel; 0.75 is the usual rate for 500 ppi prints (≈ 15:1).
    pub bitrate: f32,
    /// Scanning resolution in pixels per inch, recorded in the NISTCOM comment.
    pub ppi: u16,
    /// Free text stored in its own comment segment after the NISTCOM one.
    pub comment: Option<String>,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            bitrate: 0.75,
            ppi: 500,
            comment: None,
        }
    }
}

/// Bounds on what the decoder will allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest width × height accepted. The default (32 Mpx) covers a full 10-print card at
    /// 1000 ppi; the decoder allocates about 13 bytes per pixel.
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_pixels: 32 * 1024 * 1024,
        }
    }
}

/// A decoded image.
#[derive(Clone, PartialEq, Eq)]
pub struct Decoded {
    pub width: u32,
    pub height: u32,
    /// Resolution from the NISTCOM comment, if the stream has one that states it.
    pub ppi: Option<u16>,
    /// Row-major 8-bit greyscale, `width * height` bytes.
    pub pixels: Vec<u8>,
    /// Text of every comment segment, NISTCOM included, in stream order.
    pub comments: Vec<String>,
}

impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoded")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("ppi", &self.ppi)
            .field("pixels", &format_args!("{} bytes", self.pixels.len()))
            .field("comments", &self.comments)
            .finish()
    }
}
