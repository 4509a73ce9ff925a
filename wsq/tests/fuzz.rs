//! The decoder on hostile input: it must return an error or an image, never panic or hang, and
//! never allocate beyond its limits. Bounded so the suite stays fast; `wsq/fuzz/` has the
//! open-ended libFuzzer target.
#![allow(clippy::unwrap_used)]

mod common;

use proptest::prelude::*;
use tasjil_wsq::{decode_with_limits, encode, DecodeLimits, EncodeOptions};

const LIMITS: DecodeLimits = DecodeLimits {
    max_pixels: 1 << 20,
};

fn sample() -> Vec<u8> {
    let pixels = common::ridges(84, 88, 9);
    encode(
        &pixels,
        84,
        88,
        &EncodeOptions {
            comment: Some("fuzz seed".into()),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn every_truncation_is_an_error() {
    let wsq = sample();
    for len in 0..wsq.len() - 2 {
        assert!(
            decode_with_limits(&wsq[..len], &LIMITS).is_err(),
            "prefix of {len} bytes decoded"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_streams_never_panic(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8)) {
        let mut wsq = sample();
        for (at, byte, kind) in edits {
            let i = at.index(wsq.len());
            match kind {
                0 | 1 => wsq[i] = byte,
                2 => { wsq.insert(i, byte); }
                _ => { wsq.remove(i); }
            }
        }
        let _ = decode_with_limits(&wsq, &LIMITS);
    }

    #[test]
    fn random_bytes_never_panic(tail in prop::collection::vec(any::<u8>(), 0..600), header in any::<bool>()) {
        let mut bytes = if header { vec![0xFF, 0xA0] } else { Vec::new() };
        bytes.extend(tail);
        let _ = decode_with_limits(&bytes, &LIMITS);
    }
}
