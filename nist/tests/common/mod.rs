//! A transaction with one record of every type the writer builds.
#![allow(dead_code)]

use tasjil_nist::records::{type2, Face, Finger, Header, Signature};
use tasjil_nist::Transaction;

pub fn sample() -> Transaction {
    let header = Header {
        transaction_type: "NFUF".into(),
        date: "20261127".into(),
        destination: "AFIS-CENTRAL".into(),
        originator: "STATION-07".into(),
        control_number: "01JDX3YV7T0000000000000000".into(),
        domain: Some(("TASJIL".into(), "1.0".into())),
        gmt: Some("20261127080910Z".into()),
    };
    let mut records = vec![type2(
        1,
        &[
            (18, "EL AMRANI".into()),
            (20, "Fatima Zahra".into()),
            (22, "19900214".into()),
        ],
    )];
    records.push(
        Face {
            idc: 2,
            source: "STATION-07".into(),
            date: "20261127".into(),
            width: 480,
            height: 640,
            compression: "JPEGB".into(),
            colour_space: "YCC".into(),
            sap: 13,
            data: (0..5000u32).map(|i| (i * 31) as u8).collect(),
        }
        .record(),
    );
    for (i, pos) in [1u8, 2, 6].into_iter().enumerate() {
        records.push(
            Finger {
                idc: 3 + i as u8,
                impression: 0,
                source: "STATION-07".into(),
                date: "20261127".into(),
                width: 320,
                height: 400,
                ppi: 500,
                compression: "WSQ20".into(),
                position: pos,
                quality: 60 + pos,
                // Image bytes include every separator value: they must pass through untouched.
                data: (0..3000u32).map(|i| (i % 256) as u8).collect(),
            }
            .record(),
        );
    }
    records.push(
        Signature {
            idc: 6,
            width: 40,
            height: 10,
            pixels: vec![0x1C; 400],
        }
        .record(),
    );
    Transaction {
        header: header.record(),
        records,
    }
}
