//! The citizen's receipt (récépissé) as a printable one-page PDF: the enrolment number, date,
//! station and officer as text, the QR code drawn as vector squares, what happens next, and the
//! receipt as the kiosk rendered it (in the citizen's language and script) as an image.
//!
//! A small writer of its own: a handful of objects, an xref table with exact byte offsets,
//! Helvetica (WinAnsi) for the Latin text and one RGB image with FlateDecode. It writes only
//! what a receipt needs; it reads nothing.

use std::fmt::Write as _;

/// What goes on the receipt.
#[derive(Debug, Clone)]
pub struct ReceiptPage<'a> {
    pub id: &'a str,
    pub seq: u64,
    pub date: &'a str,
    pub station: &'a str,
    pub officer: &'a str,
    /// The text of the QR code (`TASJIL:<station>:<seq>:<id>`).
    pub qr: &'a str,
    /// The receipt as shown on the kiosk: width, height, RGB pixels.
    pub image: Option<(u32, u32, &'a [u8])>,
}

/// A4 in points.
const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 50.0;

/// The PDF file of `page`.
pub fn render(page: &ReceiptPage) -> anyhow::Result<Vec<u8>> {
    let mut content = String::new();
    let mut y = PAGE_H - MARGIN - 20.0;
    let line = |content: &mut String, font: &str, size: f32, y: f32, text: &str| {
        let _ = writeln!(
            content,
            "BT /{font} {size} Tf {MARGIN} {y:.1} Td ({}) Tj ET",
            pdf_text(text)
        );
    };
    line(
        &mut content,
        "F2",
        18.0,
        y,
        "Récépissé d'enrôlement / Enrolment receipt",
    );
    y -= 34.0;
    let qr_top = y + 12.0;
    line(
        &mut content,
        "F1",
        10.0,
        y,
        "Numéro d'enrôlement / Enrolment number",
    );
    y -= 16.0;
    line(&mut content, "F2", 13.0, y, page.id);
    y -= 22.0;
    for text in [
        format!("Date : {}", page.date),
        format!(
            "Station d'enrôlement / Enrolment station : {}",
            page.station
        ),
        format!("Séquence / Sequence : {}", page.seq),
        format!("Agent / Officer : {}", page.officer),
    ] {
        line(&mut content, "F1", 11.0, y, &text);
        y -= 16.0;
    }
    y -= 10.0;
    line(
        &mut content,
        "F2",
        12.0,
        y,
        "Et ensuite / What happens next",
    );
    y -= 17.0;
    for text in [
        "1. Votre dossier est envoyé au centre, qui le vérifie.",
        "    Your file is sent to the centre, which checks it.",
        "2. Vous recevez un SMS quand votre carte est prête.",
        "    You receive a text message when your card is ready.",
        "3. Présentez ce récépissé pour retirer votre carte.",
        "    Bring this receipt to collect your card.",
    ] {
        line(&mut content, "F1", 10.0, y, text);
        y -= 14.0;
    }

    // The QR code on the right of the identity block: one filled square per dark module.
    let code = qrcode::QrCode::new(page.qr.as_bytes())?;
    let n = code.width();
    let colors = code.to_colors();
    let side = 130.0f32;
    let module = side / n as f32;
    let (qx, qy) = (PAGE_W - MARGIN - side, qr_top - side);
    content.push_str("0 0 0 rg\n");
    for row in 0..n {
        // Runs of dark modules in a row become one rectangle.
        let mut col = 0;
        while col < n {
            if colors[row * n + col] != qrcode::Color::Dark {
                col += 1;
                continue;
            }
            let start = col;
            while col < n && colors[row * n + col] == qrcode::Color::Dark {
                col += 1;
            }
            let _ = writeln!(
                content,
                "{:.2} {:.2} {:.2} {:.2} re",
                qx + start as f32 * module,
                qy + (n - 1 - row) as f32 * module,
                (col - start) as f32 * module,
                module
            );
        }
    }
    content.push_str("f\n");

    // The kiosk's rendering, scaled to the page width, below the text.
    let image = page
        .image
        .filter(|(w, h, px)| *w > 0 && *h > 0 && px.len() == (*w as usize) * (*h as usize) * 3);
    if let Some((w, h, _)) = image {
        let width = PAGE_W - 2.0 * MARGIN;
        let height = (width * h as f32 / w as f32).min(y - MARGIN - 10.0);
        let width = height * w as f32 / h as f32;
        let top = y - 10.0;
        let _ = writeln!(
            content,
            "q {width:.2} 0 0 {height:.2} {:.2} {:.2} cm /Im1 Do Q",
            (PAGE_W - width) / 2.0,
            top - height
        );
    }

    let mut pdf = Writer::default();
    pdf.object(1, b"<< /Type /Catalog /Pages 2 0 R >>");
    pdf.object(2, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>");
    let xobject = if image.is_some() {
        " /XObject << /Im1 7 0 R >>"
    } else {
        ""
    };
    pdf.object(
        3,
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] /Contents 4 0 R /Resources << /Font << /F1 5 0 R /F2 6 0 R >>{xobject} >> >>"
        )
        .as_bytes(),
    );
    pdf.stream(4, "", content.as_bytes());
    pdf.object(
        5,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    );
    pdf.object(
        6,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
    );
    if let Some((w, h, px)) = image {
        let packed = miniz_oxide::deflate::compress_to_vec_zlib(px, 6);
        pdf.stream(
            7,
            &format!(
                "/Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode"
            ),
            &packed,
        );
    }
    Ok(pdf.finish(1))
}

/// A PDF string literal's body in WinAnsi: Latin-1 characters as themselves, anything else as
/// `?` (the image carries other scripts), and `(`, `)`, `\` escaped.
fn pdf_text(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '(' | ')' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            '\u{a0}'..='\u{ff}' => {
                let _ = write!(out, "\\{:03o}", c as u32);
            }
            _ => out.push('?'),
        }
    }
    out
}

/// Objects written in order, each one's byte offset kept for the xref table.
#[derive(Default)]
struct Writer {
    out: Vec<u8>,
    offsets: Vec<(u32, usize)>,
}

impl Writer {
    fn start(&mut self) {
        if self.out.is_empty() {
            // The comment's high bytes tell transfer programs the file is binary.
            self.out.extend_from_slice(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n");
        }
    }

    fn object(&mut self, n: u32, body: &[u8]) {
        self.start();
        self.offsets.push((n, self.out.len()));
        self.out
            .extend_from_slice(format!("{n} 0 obj\n").as_bytes());
        self.out.extend_from_slice(body);
        self.out.extend_from_slice(b"\nendobj\n");
    }

    fn stream(&mut self, n: u32, dict: &str, data: &[u8]) {
        let mut body = format!("<< {dict} /Length {} >>\nstream\n", data.len()).into_bytes();
        body.extend_from_slice(data);
        body.extend_from_slice(b"\nendstream");
        self.object(n, &body);
    }

    fn finish(mut self, root: u32) -> Vec<u8> {
        self.offsets.sort();
        let size = self.offsets.last().map_or(0, |(n, _)| n + 1);
        let xref = self.out.len();
        let mut table = format!("xref\n0 {size}\n0000000000 65535 f \n");
        for n in 1..size {
            match self.offsets.iter().find(|(m, _)| *m == n) {
                Some((_, at)) => {
                    let _ = writeln!(table, "{at:010} 00000 n ");
                }
                None => table.push_str("0000000000 65535 f \n"),
            }
        }
        let _ = write!(
            table,
            "trailer\n<< /Size {size} /Root {root} 0 R >>\nstartxref\n{xref}\n%%EOF\n"
        );
        self.out.extend_from_slice(table.as_bytes());
        self.out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    fn sample(image: Option<(u32, u32, &[u8])>) -> Vec<u8> {
        render(&ReceiptPage {
            id: "01JDXAMPLE0000000000000042",
            seq: 42,
            date: "2026-11-27 10:42 UTC",
            station: "VAN-07-A",
            officer: "OFF-SIM-1",
            qr: "TASJIL:VAN-07-A:42:01JDXAMPLE0000000000000042",
            image,
        })
        .unwrap()
    }

    /// Check header, xref offsets, trailer and startxref; return the offsets by object number.
    pub(crate) fn check_structure(pdf: &[u8]) -> Vec<usize> {
        assert!(pdf.starts_with(b"%PDF-1.4\n"));
        assert!(pdf.ends_with(b"%%EOF\n"));
        let tail = std::str::from_utf8(&pdf[pdf.len() - 40..]).unwrap_or_default();
        let startxref: usize = tail
            .split("startxref\n")
            .nth(1)
            .and_then(|t| t.lines().next())
            .and_then(|n| n.parse().ok())
            .expect("startxref");
        assert_eq!(&pdf[startxref..startxref + 5], b"xref\n");
        let table = std::str::from_utf8(&pdf[startxref..]).unwrap();
        let mut lines = table.lines().skip(1);
        let header: Vec<usize> = lines
            .next()
            .unwrap()
            .split(' ')
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(header[0], 0);
        let size = header[1];
        let mut offsets = Vec::new();
        for n in 0..size {
            let entry = lines.next().unwrap();
            assert_eq!(
                entry.len(),
                19,
                "xref entries are 20 bytes with the newline"
            );
            let at: usize = entry[..10].parse().unwrap();
            if entry.ends_with(" n") || entry.ends_with(" n ") {
                let head = format!("{n} 0 obj\n");
                assert_eq!(
                    &pdf[at..at + head.len()],
                    head.as_bytes(),
                    "xref entry of object {n} points elsewhere"
                );
            }
            offsets.push(at);
        }
        assert_eq!(lines.next(), Some("trailer"));
        let trailer = lines.next().unwrap();
        assert!(trailer.contains(&format!("/Size {size}")), "{trailer}");
        assert!(trailer.contains("/Root 1 0 R"));
        offsets
    }

    #[test]
    fn the_receipt_pdf_has_a_valid_structure_and_carries_the_image() {
        let (w, h) = (40u32, 30u32);
        let px: Vec<u8> = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
        let pdf = sample(Some((w, h, &px)));
        let offsets = check_structure(&pdf);
        assert_eq!(offsets.len(), 8);
        // The image object: its size, and a stream that inflates back to the pixels.
        let at = offsets[7];
        let obj = &pdf[at..];
        let dict_end = find(obj, b">>\nstream\n").unwrap();
        let dict = std::str::from_utf8(&obj[..dict_end]).unwrap();
        assert!(dict.contains("/Width 40 /Height 30"), "{dict}");
        assert!(dict.contains("/FlateDecode"));
        let len: usize = dict
            .split("/Length ")
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let data = &obj[dict_end + 10..dict_end + 10 + len];
        assert_eq!(
            &obj[dict_end + 10 + len..dict_end + 10 + len + 10],
            b"\nendstream"
        );
        let back = miniz_oxide::inflate::decompress_to_vec_zlib(data).unwrap();
        assert_eq!(back, px);
        // The text: the number, and French accents in WinAnsi octal escapes.
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.contains("(01JDXAMPLE0000000000000042) Tj"));
        assert!(text.contains("R\\351c\\351piss\\351"));
        assert!(text.contains("/Im1 Do"));
    }

    #[test]
    fn without_an_image_the_page_still_has_text_and_qr_code() {
        let pdf = sample(None);
        let offsets = check_structure(&pdf);
        assert_eq!(offsets.len(), 7);
        let text = String::from_utf8_lossy(&pdf);
        assert!(!text.contains("/XObject"));
        assert!(text.matches(" re\n").count() > 50, "the QR code's squares");
        // A wrong-sized image is left out rather than written corrupt.
        let pdf = sample(Some((10, 10, &[0u8; 12])));
        assert!(!String::from_utf8_lossy(&pdf).contains("/Im1 Do"));
    }

    #[test]
    fn text_outside_latin1_is_replaced_and_delimiters_escaped() {
        assert_eq!(pdf_text("a(b)c\\"), "a\\(b\\)c\\\\");
        assert_eq!(pdf_text("é محمد"), "\\351 ????");
    }

    /// qpdf, if installed (scripts/install-deps), checks the whole file as a PDF reader would.
    #[test]
    fn qpdf_finds_no_fault_in_the_receipt() {
        let px = vec![200u8; 64 * 48 * 3];
        let pdf = sample(Some((64, 48, &px)));
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("receipt.pdf");
        std::fs::write(&path, &pdf).unwrap();
        match std::process::Command::new("qpdf")
            .arg("--check")
            .arg(&path)
            .output()
        {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(
                    out.status.success(),
                    "qpdf --check: {text}{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(
                    text.contains("No syntax or stream encoding errors"),
                    "{text}"
                );
            }
            Err(e) => {
                assert!(
                    std::env::var("CI").map_or(true, |v| v != "true"),
                    "CI=true: qpdf is required (scripts/install-deps): {e}"
                );
                eprintln!("\n!!!! SKIPPED qpdf_finds_no_fault_in_the_receipt: no qpdf ({e}); run scripts/install-deps !!!!\n");
            }
        }
    }
}
