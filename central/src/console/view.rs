//! An opened payload as the record page shows it. Images travel inside the page as `data:` URIs
//! (nothing decrypted is written to disk or fetched a second time); fingerprints stored as WSQ are
//! decoded here; the signature is drawn as SVG whose strokes replay with the pen's own timing
//! (SMIL, no script: the console's Content-Security-Policy allows none).

use std::fmt::Write as _;

use base64::Engine;
use tasjil_sync::record::{Payload, PayloadImage, PayloadSignature};

/// A picture ready for an `<img src>`.
#[derive(Debug, Clone)]
pub struct Picture {
    pub label: String,
    pub src: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct OpenedRecord {
    pub face: Picture,
    pub fingers: Vec<Picture>,
    pub exceptions: Vec<(String, String)>,
    pub signature_svg: String,
    pub signature_png: Option<String>,
    pub demographics: Vec<(String, String)>,
    pub previous_card: Option<String>,
}

fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// A browser-displayable form of a payload image: JPEG and PNG as they are, WSQ decoded to PNG.
pub fn image_src(image: &PayloadImage) -> Option<String> {
    match image.format.as_str() {
        "jpeg" => Some(data_uri("image/jpeg", &image.bytes)),
        "png" => Some(data_uri("image/png", &image.bytes)),
        "wsq" => {
            let d = tasjil_wsq::decode(&image.bytes).ok()?;
            let gray = image::GrayImage::from_raw(d.width, d.height, d.pixels)?;
            let mut png = Vec::new();
            gray.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .ok()?;
            Some(data_uri("image/png", &png))
        }
        _ => None,
    }
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The signature's strokes as SVG: each stroke appears when the pen drew it and takes as long as
/// the pen took; a tap on the drawing replays it.
pub fn signature_svg(sig: &PayloadSignature) -> String {
    let points = sig.strokes.iter().flatten();
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0u32, 0u32);
    let mut t0 = u32::MAX;
    for p in points {
        x0 = x0.min(p[0]);
        y0 = y0.min(p[1]);
        x1 = x1.max(p[0]);
        y1 = y1.max(p[1]);
        t0 = t0.min(p[2]);
    }
    if x0 > x1 {
        return String::new();
    }
    let pad = 10;
    let (w, h) = (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad);
    let mut svg = format!(
        "<svg id=\"sig\" class=\"signature\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"{} {} {w} {h}\" role=\"img\">",
        x0.saturating_sub(pad),
        y0.saturating_sub(pad)
    );
    for stroke in &sig.strokes {
        let (Some(first), Some(last)) = (stroke.first(), stroke.last()) else {
            continue;
        };
        let mut d = String::new();
        for (i, p) in stroke.iter().enumerate() {
            let _ = write!(d, "{}{} {} ", if i == 0 { 'M' } else { 'L' }, p[0], p[1]);
        }
        let begin = f64::from(first[2].saturating_sub(t0)) / 1000.0;
        let dur = (f64::from(last[2].saturating_sub(first[2])) / 1000.0).max(0.05);
        let _ = write!(
            svg,
            "<path d=\"{}\" pathLength=\"1\" stroke-dasharray=\"1\" stroke-dashoffset=\"1\">\
             <set attributeName=\"stroke-dashoffset\" to=\"1\" begin=\"sig.click\"/>\
             <animate attributeName=\"stroke-dashoffset\" from=\"1\" to=\"0\" begin=\"{begin:.3}s;sig.click+{begin:.3}s\" dur=\"{dur:.3}s\" fill=\"freeze\"/></path>",
            d.trim_end()
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Everything the record page shows of an opened payload.
pub fn opened(p: &Payload) -> OpenedRecord {
    let picture = |label: &str, image: &PayloadImage, detail: String| Picture {
        label: label.into(),
        src: image_src(image),
        detail,
    };
    OpenedRecord {
        face: picture(
            "face",
            &p.face,
            format!("{}×{} {}", p.face.width, p.face.height, p.face.format),
        ),
        fingers: p
            .fingers
            .iter()
            .map(|f| {
                picture(
                    &f.position,
                    &f.image,
                    format!("{} · {} ppi · {}", f.quality, f.ppi, f.image.format),
                )
            })
            .collect(),
        exceptions: p
            .exceptions
            .iter()
            .map(|e| (e.position.clone(), e.reason.clone()))
            .collect(),
        signature_svg: signature_svg(&p.signature),
        signature_png: image_src(&p.signature.image),
        demographics: p
            .demographics
            .iter()
            .map(|(k, v)| (k.clone(), text(v)))
            .collect(),
        previous_card: p.previous_card.as_ref().map(|c| c.mrz.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_replays_each_stroke_in_pen_time() {
        let sig = PayloadSignature {
            image: PayloadImage {
                format: "png".into(),
                width: 1,
                height: 1,
                bytes: vec![],
            },
            strokes: vec![
                vec![[10, 10, 1000, 1], [50, 20, 1400, 1]],
                vec![[60, 30, 2000, 1], [90, 35, 2100, 1]],
            ],
        };
        let svg = signature_svg(&sig);
        assert_eq!(svg.matches("<path").count(), 2);
        assert!(svg.contains("begin=\"0.000s;sig.click+0.000s\" dur=\"0.400s\""));
        assert!(svg.contains("begin=\"1.000s;sig.click+1.000s\" dur=\"0.100s\""));
        assert!(!svg.contains("<script"));
    }

    #[test]
    fn wsq_prints_are_decoded_for_the_browser() {
        let pixels: Vec<u8> = (0..96 * 96).map(|i| ((i * 7) % 251) as u8).collect();
        let wsq =
            tasjil_wsq::encode(&pixels, 96, 96, &tasjil_wsq::EncodeOptions::default()).unwrap();
        let src = image_src(&PayloadImage {
            format: "wsq".into(),
            width: 64,
            height: 64,
            bytes: wsq,
        })
        .unwrap();
        assert!(src.starts_with("data:image/png;base64,"));
        let garbage = PayloadImage {
            format: "wsq".into(),
            width: 64,
            height: 64,
            bytes: vec![1, 2, 3],
        };
        assert!(
            image_src(&garbage).is_none(),
            "a damaged print shows as unreadable"
        );
    }
}
