#![no_main]
//! Any bytes: the decoder returns an image or an error, never panics, never allocates past its
//! limits (a small limit keeps each run fast).

use libfuzzer_sys::fuzz_target;
use tasjil_wsq::{decode_with_limits, DecodeLimits};

fuzz_target!(|data: &[u8]| {
    let _ = decode_with_limits(data, &DecodeLimits { max_pixels: 1 << 20 });
});
