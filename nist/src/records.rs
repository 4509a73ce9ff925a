//! Builders for the records Tasjil exports: Type-1 header, Type-2 demographics, Type-8 signature,
//! Type-10 face and Type-14 fingerprints. Field numbers and codes are those of ANSI/NIST-ITL
//! 1-2011; values are checked only as far as the standard's syntax needs (digits, lengths).

use crate::{BinaryRecord, Record, TaggedRecord};

/// ANSI/NIST-ITL 1-2011.
pub const VERSION: &str = "0500";
/// 500 ppi in pixels per millimetre, as fields 1.011 and 1.012 state it.
pub const PPMM_500: &str = "19.69";

/// Type-1 transaction information. CNT (1.003) and LEN are computed when writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// 1.004 TOT: type of transaction, per the receiving AFIS's profile.
    pub transaction_type: String,
    /// 1.005 DAT: `YYYYMMDD`.
    pub date: String,
    /// 1.007 DAI: destination agency.
    pub destination: String,
    /// 1.008 ORI: originating agency.
    pub originator: String,
    /// 1.009 TCN: transaction control number.
    pub control_number: String,
    /// 1.013 DOM: domain name and version, e.g. ("TASJIL", "1.0").
    pub domain: Option<(String, String)>,
    /// 1.014 GMT: `YYYYMMDDhhmmssZ`.
    pub gmt: Option<String>,
}

impl Header {
    pub fn record(&self) -> TaggedRecord {
        let mut r = TaggedRecord::new(1)
            .with(2, VERSION)
            .with(4, &self.transaction_type)
            .with(5, &self.date)
            .with(7, &self.destination)
            .with(8, &self.originator)
            .with(9, &self.control_number)
            .with(11, PPMM_500)
            .with(12, PPMM_500);
        if let Some((name, version)) = &self.domain {
            r = r.with_subfields(13, vec![vec![name.clone(), version.clone()]]);
        }
        if let Some(gmt) = &self.gmt {
            r = r.with(14, gmt);
        }
        r
    }
}

fn idc(n: u8) -> String {
    format!("{n:02}")
}

/// Type-2 user-defined descriptive text: `(field number, value)` pairs after the IDC.
pub fn type2(idc_value: u8, fields: &[(u16, String)]) -> Record {
    let mut r = TaggedRecord::new(2).with(2, idc(idc_value));
    for (n, v) in fields {
        r = r.with(*n, v);
    }
    Record::Tagged(r)
}

/// A Type-10 facial image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Face {
    pub idc: u8,
    /// 10.004 SRC: source agency.
    pub source: String,
    /// 10.005 PHD: capture date `YYYYMMDD`.
    pub date: String,
    pub width: u32,
    pub height: u32,
    /// 10.011 CGA: "JPEGB" (baseline JPEG), "PNG", …
    pub compression: String,
    /// 10.012 CSP: "YCC" for colour JPEG, "GRAY", "SRGB".
    pub colour_space: String,
    /// 10.013 SAP: subject acquisition profile (13 = ISO full frontal).
    pub sap: u16,
    pub data: Vec<u8>,
}

impl Face {
    pub fn record(&self) -> Record {
        Record::Tagged(
            TaggedRecord::new(10)
                .with(2, idc(self.idc))
                .with(3, "FACE")
                .with(4, &self.source)
                .with(5, &self.date)
                .with(6, self.width.to_string())
                .with(7, self.height.to_string())
                // No physical scale is known for a camera image: pixel aspect 1:1.
                .with(8, "0")
                .with(9, "1")
                .with(10, "1")
                .with(11, &self.compression)
                .with(12, &self.colour_space)
                .with(13, self.sap.to_string())
                .with_data(self.data.clone()),
        )
    }
}

/// A Type-14 fingerprint image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finger {
    pub idc: u8,
    /// 14.003 IMP: 0 live-scan plain, 1 live-scan rolled.
    pub impression: u8,
    /// 14.004 SRC: source agency.
    pub source: String,
    /// 14.005 FCD: capture date `YYYYMMDD`.
    pub date: String,
    pub width: u32,
    pub height: u32,
    pub ppi: u16,
    /// 14.011 CGA: "WSQ20" for WSQ, "PNG", "NONE".
    pub compression: String,
    /// 14.013 FGP: finger position code (1 right thumb … 10 left little).
    pub position: u8,
    /// Quality score 0–100 (14.024 FQM); 14.022 NQM carries its NFIQ-style 1–5 level.
    pub quality: u8,
    pub data: Vec<u8>,
}

/// NFIQ-style level (1 best … 5 worst) for a 0–100 quality score, in equal bands of 20.
pub fn nfiq_level(quality: u8) -> u8 {
    match quality {
        80.. => 1,
        60..=79 => 2,
        40..=59 => 3,
        20..=39 => 4,
        _ => 5,
    }
}

/// Quality algorithm vendor in 14.024 (QAV): none registered, so the "unregistered" value.
pub const QUALITY_VENDOR: &str = "FFFF";

impl Finger {
    pub fn record(&self) -> Record {
        let fgp = self.position.to_string();
        Record::Tagged(
            TaggedRecord::new(14)
                .with(2, idc(self.idc))
                .with(3, self.impression.to_string())
                .with(4, &self.source)
                .with(5, &self.date)
                .with(6, self.width.to_string())
                .with(7, self.height.to_string())
                // Scale units 1: pixels per inch.
                .with(8, "1")
                .with(9, self.ppi.to_string())
                .with(10, self.ppi.to_string())
                .with(11, &self.compression)
                .with(12, "8")
                .with(13, &fgp)
                .with_subfields(
                    22,
                    vec![vec![fgp.clone(), nfiq_level(self.quality).to_string()]],
                )
                .with_subfields(
                    24,
                    vec![vec![
                        fgp,
                        self.quality.to_string(),
                        QUALITY_VENDOR.into(),
                        "1".into(),
                    ]],
                )
                .with_data(self.data.clone()),
        )
    }
}

/// A Type-8 signature: an uncompressed scanned 8-bit grey image of the subject's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub idc: u8,
    pub width: u16,
    pub height: u16,
    pub pixels: Vec<u8>,
}

impl Signature {
    /// Body layout after LEN and IDC: SIG (0 subject), SRT (0 uncompressed scanned), ISR (0: the
    /// transmitting resolution of 1.012), HLL and VLL as 2-byte big-endian, then the pixels.
    pub fn record(&self) -> Record {
        let mut body = vec![0, 0, 0];
        body.extend_from_slice(&self.width.to_be_bytes());
        body.extend_from_slice(&self.height.to_be_bytes());
        body.extend_from_slice(&self.pixels);
        Record::Binary(BinaryRecord {
            record_type: 8,
            idc: self.idc,
            body,
        })
    }

    /// Reads back a Type-8 body written by [`Signature::record`].
    pub fn from_record(r: &BinaryRecord) -> Option<Signature> {
        let b = &r.body;
        if r.record_type != 8 || b.len() < 7 {
            return None;
        }
        let width = u16::from_be_bytes([b[3], b[4]]);
        let height = u16::from_be_bytes([b[5], b[6]]);
        Some(Signature {
            idc: r.idc,
            width,
            height,
            pixels: b[7..].to_vec(),
        })
    }
}
