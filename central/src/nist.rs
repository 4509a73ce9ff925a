//! ANSI/NIST-ITL 1-2011 export of one opened payload: the transaction the centre hands its AFIS.
//! Owns the demographic mapping to Type-2 fields (documented in docs/NIST-MAPPING.md; keep both
//! in step). [`transaction`] only reads a [`Payload`]; [`export`] opens one from the store.

use anyhow::{bail, Context};
use tasjil_nist::records::{self, Face, Finger, Header, Signature};
use tasjil_nist::Transaction;

use crate::CentreStore;
use tasjil_sync::record::Payload;
use tasjil_sync::CentreKeys;

/// Type-2 field for each demographic field of the `cnie-v1` schema. 2.018/2.020/2.022/2.024
/// follow the customary meanings (name, place of birth, date of birth, sex); 2.201 onwards hold
/// every schema field verbatim.
pub const TYPE2_FIELDS: &[(&str, u16)] = &[
    ("family_name_latin", 201),
    ("family_name_ar", 202),
    ("given_names_latin", 203),
    ("given_names_ar", 204),
    ("sex", 205),
    ("birth_date_unknown", 206),
    ("birth_date", 207),
    ("birth_place_latin", 208),
    ("birth_place_ar", 209),
    ("father_given_name_latin", 210),
    ("father_given_name_ar", 211),
    ("mother_full_name_latin", 212),
    ("mother_full_name_ar", 213),
    ("address_line_latin", 214),
    ("address_line_ar", 215),
    ("commune", 216),
    ("province", 217),
    ("civil_act_number", 218),
    ("previous_card_number", 219),
    ("replacement_reason", 220),
    ("phone", 221),
    ("consent", 222),
];
/// 2.230 enrolment ID (ULID), 2.231 demographic schema id.
pub const TYPE2_ENROLMENT_ID: u16 = 230;
pub const TYPE2_SCHEMA: u16 = 231;

/// Who sends the transaction to whom, and when.
#[derive(Debug, Clone)]
pub struct ExportContext {
    /// 1.004 TOT, per the receiving AFIS's profile.
    pub transaction_type: String,
    /// 1.007 DAI.
    pub destination: String,
    /// 1.008 ORI: the station that enrolled.
    pub originator: String,
    pub now_ms: i64,
}

/// `YYYYMMDD` and `YYYYMMDDhhmmssZ` (UTC) for a Unix time in milliseconds.
pub fn utc_date_time(ms: i64) -> (String, String) {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let date = format!("{y:04}{m:02}{d:02}");
    let time = format!(
        "{date}{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    (date, time)
}

fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Bool(b) => if *b { "Y" } else { "N" }.into(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The Type-2 fields for a payload's demographics.
pub fn type2_fields(p: &Payload) -> anyhow::Result<Vec<(u16, String)>> {
    let d = &p.demographics;
    for key in d.keys() {
        if !TYPE2_FIELDS.iter().any(|(name, _)| name == key) {
            bail!("demographic field {key:?} has no Type-2 field: extend TYPE2_FIELDS and docs/NIST-MAPPING.md");
        }
    }
    let get = |k: &str| d.get(k).map(text).unwrap_or_default();
    let mut fields = Vec::new();
    fields.push((
        18,
        format!("{},{}", get("family_name_latin"), get("given_names_latin")),
    ));
    fields.push((20, get("birth_place_latin")));
    // Date of birth as YYYYMMDD; an unknown month and day are 00, as AFIS profiles write them.
    let dob: String = get("birth_date")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    fields.push((22, format!("{dob:0<8}")));
    fields.push((24, get("sex")));
    for (name, number) in TYPE2_FIELDS {
        if let Some(v) = d.get(*name) {
            fields.push((*number, text(v)));
        }
    }
    fields.push((TYPE2_ENROLMENT_ID, p.enrolment_id.clone()));
    fields.push((TYPE2_SCHEMA, p.demographics_schema.clone()));
    Ok(fields)
}

fn compression(format: &str) -> anyhow::Result<&'static str> {
    Ok(match format {
        "wsq" => "WSQ20",
        "png" => "PNG",
        "jpeg" => "JPEGB",
        other => bail!("no ANSI/NIST compression code for image format {other:?}"),
    })
}

/// The transaction for one enrolment: Type-1, Type-2 demographics, Type-10 face, one Type-14
/// per captured finger (none for fingers recorded as exceptions), Type-8 signature.
pub fn transaction(p: &Payload, ctx: &ExportContext) -> anyhow::Result<Transaction> {
    let (date, gmt) = utc_date_time(ctx.now_ms);
    let header = Header {
        transaction_type: ctx.transaction_type.clone(),
        date: date.clone(),
        destination: ctx.destination.clone(),
        originator: ctx.originator.clone(),
        control_number: p.enrolment_id.clone(),
        domain: Some(("TASJIL".into(), env!("CARGO_PKG_VERSION").into())),
        gmt: Some(gmt),
    };
    let mut idc = 0u8;
    let mut next = || {
        idc += 1;
        idc
    };
    let mut out = vec![records::type2(next(), &type2_fields(p)?)];
    out.push(
        Face {
            idc: next(),
            source: ctx.originator.clone(),
            date: date.clone(),
            width: p.face.width,
            height: p.face.height,
            compression: compression(&p.face.format)?.into(),
            colour_space: "YCC".into(),
            // ISO full frontal: the station's framing and quality checks follow ISO/IEC 19794-5.
            sap: 13,
            data: p.face.bytes.clone(),
        }
        .record(),
    );
    for f in &p.fingers {
        out.push(
            Finger {
                idc: next(),
                impression: 0,
                source: ctx.originator.clone(),
                date: date.clone(),
                width: f.image.width,
                height: f.image.height,
                ppi: f.ppi,
                compression: compression(&f.image.format)?.into(),
                position: f.code,
                quality: f.quality,
                data: f.image.bytes.clone(),
            }
            .record(),
        );
    }
    if p.signature.image.format != "png" {
        bail!(
            "signature image is {:?}, expected png",
            p.signature.image.format
        );
    }
    let sig =
        image::load_from_memory_with_format(&p.signature.image.bytes, image::ImageFormat::Png)
            .context("signature image is not a readable PNG")?
            .into_luma8();
    out.push(
        Signature {
            idc: next(),
            width: u16::try_from(sig.width()).context("signature wider than 65535")?,
            height: u16::try_from(sig.height()).context("signature taller than 65535")?,
            pixels: sig.into_raw(),
        }
        .record(),
    );
    Ok(Transaction {
        header: header.record(),
        records: out,
    })
}

/// Opens the stored, verified payload of enrolment `id` with the centre's keys and builds its
/// transaction (the station that enrolled is the originator). Returns the bytes and the payload.
/// Enrolment ids are unique per station: `station` picks one when two stations used the id.
/// The opening is written to the access log (`who`, `reason`) before the payload is opened.
#[allow(clippy::too_many_arguments)]
pub fn export(
    store: &CentreStore,
    keys: &CentreKeys,
    who: &str,
    reason: &str,
    station: Option<&str>,
    id: &str,
    transaction_type: &str,
    destination: &str,
    now_ms: i64,
) -> anyhow::Result<(Vec<u8>, Payload)> {
    let mut matches: Vec<_> = store
        .list()?
        .into_iter()
        .filter(|r| r.id == id && station.is_none_or(|s| r.station == s))
        .collect();
    if matches.len() > 1 {
        let stations: Vec<_> = matches.iter().map(|r| r.station.as_str()).collect();
        bail!(
            "enrolment id {id} is used by stations {}: say which with --station",
            stations.join(", ")
        );
    }
    let record = matches
        .pop()
        .with_context(|| format!("no record {id} at this centre (see tasjil-central list)"))?;
    if record.status != "verified" {
        bail!(
            "record {id} is {}, not verified: it cannot be exported",
            record.status
        );
    }
    let sealed = store.read_blob(&record.payload_sha256)?;
    if tasjil_sync::sha256_hex(&sealed) != record.payload_sha256 {
        bail!("the stored payload of {id} does not match its envelope: run tasjil-central verify");
    }
    store.log_access(
        &keys.signing,
        who,
        "export-nist",
        &record.station,
        id,
        reason,
        now_ms,
    )?;
    let payload = Payload::open_with(&sealed, &keys.identities())
        .with_context(|| format!("cannot open the payload of {id}"))?;
    let ctx = ExportContext {
        transaction_type: transaction_type.into(),
        destination: destination.into(),
        originator: record.station,
        now_ms,
    };
    let bytes = transaction(&payload, &ctx)?.to_bytes()?;
    Ok((bytes, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(demographics: serde_json::Value) -> Payload {
        let image = |format: &str| tasjil_sync::record::PayloadImage {
            format: format.into(),
            width: 1,
            height: 1,
            bytes: vec![],
        };
        Payload {
            enrolment_id: "01JDX3YV7T0000000000000000".into(),
            demographics_schema: "cnie-v1".into(),
            demographics: demographics.as_object().unwrap().clone(),
            face: image("jpeg"),
            fingers: vec![],
            exceptions: vec![],
            signature: tasjil_sync::record::PayloadSignature {
                image: image("png"),
                strokes: vec![],
            },
            previous_card: None,
        }
    }

    #[test]
    fn type2_follows_the_documented_mapping() {
        let p = payload(serde_json::json!({
            "family_name_latin": "EL AMRANI", "given_names_latin": "Fatima",
            "birth_date": "1990", "birth_date_unknown": true, "sex": "F", "consent": true
        }));
        let f: std::collections::BTreeMap<u16, String> =
            type2_fields(&p).unwrap().into_iter().collect();
        assert_eq!(f[&18], "EL AMRANI,Fatima");
        assert_eq!(
            f[&22], "19900000",
            "a year-only birth date has 00 month and day"
        );
        assert_eq!(
            (f[&24].as_str(), f[&205].as_str(), f[&206].as_str()),
            ("F", "F", "Y")
        );
        assert_eq!((f[&207].as_str(), f[&222].as_str()), ("1990", "Y"));
        assert_eq!(f[&TYPE2_ENROLMENT_ID], p.enrolment_id);
        let unknown = payload(serde_json::json!({"shoe_size": "42"}));
        let err = type2_fields(&unknown).unwrap_err().to_string();
        assert!(err.contains("shoe_size"), "{err}");
    }

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(
            utc_date_time(0),
            ("19700101".into(), "19700101000000Z".into())
        );
        // 2026-11-27 08:09:10 UTC
        assert_eq!(utc_date_time(1_795_766_950_000).1, "20261127080910Z");
        assert_eq!(utc_date_time(951_782_400_000).0, "20000229");
    }
}
