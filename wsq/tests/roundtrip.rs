//! Encode/decode round trips on synthetic prints, and the encoder's handling of its inputs.
#![allow(clippy::unwrap_used)]

mod common;

use common::{psnr, ridges, rmse, sim_print};
use tasjil_drivers::capture::FingerPosition;
use tasjil_wsq::{decode, encode, EncodeOptions, WsqError};

#[test]
fn simulated_prints_round_trip_at_the_target_rate() {
    for (seed, position) in [
        (1, FingerPosition::RightThumb),
        (7, FingerPosition::LeftIndex),
        (42, FingerPosition::RightLittle),
    ] {
        let (pixels, w, h) = sim_print(seed, position);
        let wsq = encode(&pixels, w, h, &EncodeOptions::default()).unwrap();
        let img = decode(&wsq).unwrap();
        assert_eq!((img.width, img.height, img.ppi), (w, h, Some(500)));
        let bpp = wsq.len() as f64 * 8.0 / f64::from(w * h);
        let quality = psnr(&pixels, &img.pixels);
        eprintln!(
            "sim print seed {seed}: {} bytes, {bpp:.3} bpp, PSNR {quality:.1} dB",
            wsq.len()
        );
        // The allocation aims at 0.75 bpp of entropy-coded data; headers and tables add ~1 KB.
        assert!((0.45..1.0).contains(&bpp), "{bpp} bpp");
        assert!(quality > 30.0, "PSNR {quality}");
    }
}

#[test]
fn any_size_round_trips_including_odd_sides() {
    for (w, h) in [
        (81, 81),
        (83, 97),
        (100, 85),
        (101, 203),
        (500, 500),
        (417, 333),
    ] {
        let pixels = ridges(w, h, w ^ h);
        let wsq = encode(&pixels, w, h, &EncodeOptions::default()).unwrap();
        let img = decode(&wsq).unwrap();
        assert_eq!((img.width, img.height), (w, h));
        let e = rmse(&pixels, &img.pixels);
        // Against the best flat guess (the mean): the decoded image must carry most of the ridges
        // (81×81 at 0.75 bpp is about 600 bytes of coefficients, hence the loose bound).
        let mean = (pixels.iter().map(|&p| u64::from(p)).sum::<u64>() / pixels.len() as u64) as u8;
        let flat = rmse(&pixels, &vec![mean; pixels.len()]);
        eprintln!(
            "{w}x{h}: RMSE {e:.2} (flat image {flat:.2}), {} bytes",
            wsq.len()
        );
        assert!(e < flat * 0.6, "{w}x{h}: RMSE {e} vs flat {flat}");
    }
}

#[test]
fn higher_rate_costs_bytes_and_buys_fidelity() {
    let pixels = ridges(320, 400, 3);
    let mut last = (0usize, 0.0f64);
    for bitrate in [0.3, 0.75, 1.5, 3.0] {
        let wsq = encode(
            &pixels,
            320,
            400,
            &EncodeOptions {
                bitrate,
                ..Default::default()
            },
        )
        .unwrap();
        let quality = psnr(&pixels, &decode(&wsq).unwrap().pixels);
        assert!(
            wsq.len() > last.0 && quality > last.1,
            "{bitrate} bpp: {} bytes, {quality:.1} dB",
            wsq.len()
        );
        last = (wsq.len(), quality);
    }
}

#[test]
fn flat_and_extreme_images_survive() {
    for value in [0u8, 128, 255] {
        let pixels = vec![value; 96 * 96];
        let img = decode(&encode(&pixels, 96, 96, &EncodeOptions::default()).unwrap()).unwrap();
        assert!(
            img.pixels.iter().all(|&p| p.abs_diff(value) <= 1),
            "flat {value}"
        );
    }
    let checker: Vec<u8> = (0..128 * 128)
        .map(|i| if (i % 128 + i / 128) % 2 == 0 { 0 } else { 255 })
        .collect();
    let img = decode(&encode(&checker, 128, 128, &EncodeOptions::default()).unwrap()).unwrap();
    assert_eq!(img.pixels.len(), checker.len());
}

#[test]
fn comment_and_resolution_are_kept() {
    let pixels = ridges(96, 96, 1);
    let opts = EncodeOptions {
        ppi: 1000,
        comment: Some("station 7, officer 12".into()),
        ..Default::default()
    };
    let img = decode(&encode(&pixels, 96, 96, &opts).unwrap()).unwrap();
    assert_eq!(img.ppi, Some(1000));
    assert!(img.comments[0].starts_with("NIST_COM 9\nPIX_WIDTH 96\n"));
    assert_eq!(img.comments[1], "station 7, officer 12");
}

#[test]
fn bad_inputs_are_refused_with_reasons() {
    assert!(matches!(
        encode(&[0; 100], 10, 10, &EncodeOptions::default()),
        Err(WsqError::Dimensions { .. })
    ));
    assert!(matches!(
        encode(&[0; 100], 96, 96, &EncodeOptions::default()),
        Err(WsqError::PixelCount { .. })
    ));
    let bad_rate = EncodeOptions {
        bitrate: 0.0,
        ..Default::default()
    };
    assert!(matches!(
        encode(&[0; 9216], 96, 96, &bad_rate),
        Err(WsqError::Bitrate(_))
    ));
    assert!(matches!(decode(b"\x89PNG\r\n"), Err(WsqError::NotWsq)));
    assert!(matches!(decode(&[]), Err(WsqError::NotWsq)));
}
