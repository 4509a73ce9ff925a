//! The WSQ byte stream: marker segments, and the encode and decode pipelines that run through them.

use crate::huffman::{self, BitReader, BitWriter, Table, Token};
use crate::quant::{self, BIN_CENTRE};
use crate::tree::{Trees, ALL_SUBBANDS, BLOCK2_START, BLOCK3_START, CODED_SUBBANDS};
use crate::wavelet::{self, Bank, Filters};
use crate::{DecodeLimits, Decoded, EncodeOptions, WsqError, MIN_DIMENSION};

const SOI: u16 = 0xFFA0;
const EOI: u16 = 0xFFA1;
const SOF: u16 = 0xFFA2;
const SOB: u16 = 0xFFA3;
const DTT: u16 = 0xFFA4;
const DQT: u16 = 0xFFA5;
const DHT: u16 = 0xFFA6;
const COM: u16 = 0xFFA8;
const MAX_TABLES: usize = 8;
/// Encoder number written in the frame header (as NIST's reference encoder does).
const ENCODER_ID: u8 = 2;

// ---- scaled numbers: a decimal exponent byte and an integer mantissa ----

fn scaled(v: f64, limit: f64) -> Result<(u8, u32), WsqError> {
    if v == 0.0 {
        return Ok((0, 0));
    }
    if !(v.is_finite() && v > 0.0 && v < limit) {
        return Err(WsqError::Internal(
            "table value out of the representable range",
        ));
    }
    // The largest exponent that keeps the mantissa below the limit: most significant digits.
    let mut e: u8 = 0;
    let mut t = v;
    while t * 10.0 < limit && e < 30 {
        t *= 10.0;
        e += 1;
    }
    Ok((e, t.round() as u32))
}

fn unscaled(e: u8, m: u32) -> f64 {
    f64::from(m) / 10f64.powi(i32::from(e))
}

/// `v` as it will read back from the stream.
fn through_u16(v: f64) -> Result<f64, WsqError> {
    let (e, m) = scaled(v, 65535.0)?;
    Ok(unscaled(e, m))
}

fn put_scaled_u16(out: &mut Vec<u8>, v: f64) -> Result<(), WsqError> {
    let (e, m) = scaled(v, 65535.0)?;
    out.push(e);
    out.extend_from_slice(&(m as u16).to_be_bytes());
    Ok(())
}

fn put_segment(out: &mut Vec<u8>, marker: u16, body: &[u8]) -> Result<(), WsqError> {
    let len =
        u16::try_from(body.len() + 2).map_err(|_| WsqError::Internal("segment over 64 KB"))?;
    out.extend_from_slice(&marker.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}

// ---- encoder ----

/// Compresses `pixels` (row-major, 8-bit grey, `width * height` bytes) to a WSQ byte stream.
pub fn encode(
    pixels: &[u8],
    width: u32,
    height: u32,
    opts: &EncodeOptions,
) -> Result<Vec<u8>, WsqError> {
    if !(MIN_DIMENSION..=65535).contains(&width) || !(MIN_DIMENSION..=65535).contains(&height) {
        return Err(WsqError::Dimensions { width, height });
    }
    let (w, h) = (width as usize, height as usize);
    if pixels.len() as u64 != u64::from(width) * u64::from(height) {
        return Err(WsqError::PixelCount {
            width,
            height,
            got: pixels.len(),
        });
    }
    if !(0.1..=8.0).contains(&opts.bitrate) {
        return Err(WsqError::Bitrate(opts.bitrate));
    }
    if let Some(c) = &opts.comment {
        if c.len() > 65533 {
            return Err(WsqError::CommentTooLong(c.len()));
        }
    }

    // Shift to zero mean and scale into ±128, using the values exactly as the decoder will read them.
    let sum: u64 = pixels.iter().map(|&p| u64::from(p)).sum();
    let mean = sum as f64 / pixels.len() as f64;
    let (lo, hi) = pixels
        .iter()
        .fold((255u8, 0u8), |(l, h), &p| (l.min(p), h.max(p)));
    let spread = (mean - f64::from(lo)).max(f64::from(hi) - mean) / 128.0;
    let m_shift = through_u16(mean)?;
    let r_scale = through_u16(if spread > 0.0 { spread } else { 1.0 })?;
    let mut plane: Vec<f64> = pixels
        .iter()
        .map(|&p| (f64::from(p) - m_shift) / r_scale)
        .collect();

    let trees = Trees::new(w, h);
    let filters = Filters::standard();
    wavelet::decompose(&mut plane, w, &trees, &Bank::new(&filters));

    let var = quant::variances(&plane, w, &trees);
    let widths = quant::bin_widths(&var, f64::from(opts.bitrate));
    let mut q = [0.0; ALL_SUBBANDS];
    let mut z = [0.0; ALL_SUBBANDS];
    for b in 0..CODED_SUBBANDS {
        // A band too coarse to represent would quantise to all zeros anyway.
        if widths[b] > 0.0 && quant::zero_bin(widths[b]) < 65535.0 {
            q[b] = through_u16(widths[b])?;
            z[b] = through_u16(quant::zero_bin(widths[b]))?;
        }
    }

    let mut blocks: [Vec<i32>; 3] = Default::default();
    for b in 0..CODED_SUBBANDS {
        if q[b] == 0.0 {
            continue;
        }
        let block = if b < BLOCK2_START {
            0
        } else if b < BLOCK3_START {
            1
        } else {
            2
        };
        let r = trees.bands[b];
        for y in r.y..r.y + r.h {
            for v in &plane[y * w + r.x..y * w + r.x + r.w] {
                blocks[block].push(quant::quantize(*v, q[b], z[b]));
            }
        }
    }
    let tokens: Vec<Vec<Token>> = blocks.iter().map(|b| huffman::tokenize(b)).collect();
    let table0 = Table::for_tokens(tokens[0].iter());
    let table1 = Table::for_tokens(tokens[1].iter().chain(tokens[2].iter()));

    let mut out = Vec::with_capacity(w * h / 10);
    out.extend_from_slice(&SOI.to_be_bytes());
    let nistcom = format!(
        "NIST_COM 9\nPIX_WIDTH {width}\nPIX_HEIGHT {height}\nPIX_DEPTH 8\nPPI {}\nLOSSY 1\n\
         COLORSPACE GRAY\nCOMPRESSION WSQ\nWSQ_BITRATE {:.6}",
        opts.ppi, opts.bitrate
    );
    put_segment(&mut out, COM, nistcom.as_bytes())?;
    if let Some(c) = &opts.comment {
        put_segment(&mut out, COM, c.as_bytes())?;
    }
    put_segment(&mut out, DTT, &transform_table(&filters)?)?;
    put_segment(&mut out, DQT, &quant_table(&q, &z)?)?;
    let mut sof = vec![0, 255];
    sof.extend_from_slice(&(height as u16).to_be_bytes());
    sof.extend_from_slice(&(width as u16).to_be_bytes());
    put_scaled_u16(&mut sof, m_shift)?;
    put_scaled_u16(&mut sof, r_scale)?;
    sof.push(ENCODER_ID);
    sof.extend_from_slice(&0u16.to_be_bytes());
    put_segment(&mut out, SOF, &sof)?;

    for (i, block) in tokens.iter().enumerate() {
        let (id, table) = if i == 0 {
            (0u8, &table0)
        } else {
            (1u8, &table1)
        };
        if i < 2 {
            let mut dht = vec![id];
            dht.extend_from_slice(&table.counts);
            dht.extend_from_slice(&table.symbols);
            put_segment(&mut out, DHT, &dht)?;
        }
        let enc = huffman::Encoder::new(table)?;
        let mut bits = BitWriter::new();
        for t in block {
            enc.write(&mut bits, t)?;
        }
        put_segment(&mut out, SOB, &[id])?;
        out.extend_from_slice(&bits.finish());
    }
    out.extend_from_slice(&EOI.to_be_bytes());
    Ok(out)
}

fn transform_table(f: &Filters) -> Result<Vec<u8>, WsqError> {
    let mut t = vec![(2 * f.lo.len() - 1) as u8, (2 * f.hi.len() - 1) as u8];
    for &c in f.lo.iter().chain(&f.hi) {
        let (e, m) = scaled(c.abs(), 4_294_967_295.0)?;
        t.push(u8::from(c < 0.0));
        t.push(e);
        t.extend_from_slice(&m.to_be_bytes());
    }
    Ok(t)
}

fn quant_table(q: &[f64; ALL_SUBBANDS], z: &[f64; ALL_SUBBANDS]) -> Result<Vec<u8>, WsqError> {
    let mut t = Vec::with_capacity(3 + 6 * ALL_SUBBANDS);
    put_scaled_u16(&mut t, BIN_CENTRE)?;
    for b in 0..ALL_SUBBANDS {
        put_scaled_u16(&mut t, q[b])?;
        put_scaled_u16(&mut t, z[b])?;
    }
    Ok(t)
}

// ---- decoder ----

/// Reads big-endian fields from a byte slice, failing (never panicking) at its end.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self, what: &'static str) -> Result<u8, WsqError> {
        let b = *self.data.get(self.pos).ok_or(WsqError::Truncated(what))?;
        self.pos += 1;
        Ok(b)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, WsqError> {
        Ok(u16::from(self.u8(what)?) << 8 | u16::from(self.u8(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WsqError> {
        Ok(u32::from(self.u16(what)?) << 16 | u32::from(self.u16(what)?))
    }

    fn scaled16(&mut self, what: &'static str) -> Result<f64, WsqError> {
        let e = self.u8(what)?;
        Ok(unscaled(e, u32::from(self.u16(what)?)))
    }

    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WsqError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or(WsqError::Truncated(what))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The body of a marker segment (after its length field).
    fn segment(&mut self, what: &'static str) -> Result<Reader<'a>, WsqError> {
        let len = self.u16(what)?;
        if len < 2 {
            return Err(WsqError::Malformed("segment length below 2"));
        }
        Ok(Reader {
            data: self.bytes(usize::from(len) - 2, what)?,
            pos: 0,
        })
    }

    fn done(&self, what: &'static str) -> Result<(), WsqError> {
        if self.pos == self.data.len() {
            Ok(())
        } else {
            Err(WsqError::Malformed(what))
        }
    }
}

struct Frame {
    width: u32,
    height: u32,
    m_shift: f64,
    r_scale: f64,
}

struct QuantTable {
    centre: f64,
    q: [f64; ALL_SUBBANDS],
    z: [f64; ALL_SUBBANDS],
}

#[derive(Default)]
struct State {
    filters: Option<Filters>,
    quant: Option<QuantTable>,
    tables: [Option<Table>; MAX_TABLES],
    comments: Vec<String>,
}

impl State {
    /// Handles a table or comment segment; `false` if `marker` is not one.
    fn table(&mut self, marker: u16, r: &mut Reader<'_>) -> Result<bool, WsqError> {
        match marker {
            DTT => {
                let mut s = r.segment("transform table")?;
                let lo_len = s.u8("transform table")?;
                let hi_len = s.u8("transform table")?;
                if lo_len % 2 == 0 || hi_len % 2 == 0 {
                    return Err(WsqError::Unsupported("even-length wavelet filters"));
                }
                let mut read = |n: u8| -> Result<Vec<f64>, WsqError> {
                    (0..n / 2 + 1)
                        .map(|_| {
                            let sign = s.u8("transform table")?;
                            let e = s.u8("transform table")?;
                            let v = f64::from(s.u32("transform table")?) / 10f64.powi(i32::from(e));
                            Ok(if sign != 0 { -v } else { v })
                        })
                        .collect()
                };
                let lo = read(lo_len)?;
                let hi = read(hi_len)?;
                s.done("transform table longer than its filters")?;
                self.filters = Some(Filters { lo, hi });
            }
            DQT => {
                let mut s = r.segment("quantization table")?;
                let centre = s.scaled16("quantization table")?;
                let mut t = QuantTable {
                    centre,
                    q: [0.0; ALL_SUBBANDS],
                    z: [0.0; ALL_SUBBANDS],
                };
                for b in 0..ALL_SUBBANDS {
                    t.q[b] = s.scaled16("quantization table")?;
                    t.z[b] = s.scaled16("quantization table")?;
                }
                s.done("quantization table longer than 64 subbands")?;
                self.quant = Some(t);
            }
            DHT => {
                let mut s = r.segment("Huffman table")?;
                while s.pos < s.data.len() {
                    let id = usize::from(s.u8("Huffman table")?);
                    if id >= MAX_TABLES {
                        return Err(WsqError::Malformed("Huffman table number above 7"));
                    }
                    let mut counts = [0u8; 16];
                    counts.copy_from_slice(s.bytes(16, "Huffman table")?);
                    let n: usize = counts.iter().map(|&c| usize::from(c)).sum();
                    if n > 256 {
                        return Err(WsqError::Malformed(
                            "Huffman table with more than 256 codes",
                        ));
                    }
                    let symbols = s.bytes(n, "Huffman table")?.to_vec();
                    self.tables[id] = Some(Table { counts, symbols });
                }
            }
            COM => {
                let s = r.segment("comment")?;
                self.comments
                    .push(String::from_utf8_lossy(s.data).into_owned());
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Decodes a WSQ byte stream with the default [`DecodeLimits`].
pub fn decode(bytes: &[u8]) -> Result<Decoded, WsqError> {
    decode_with_limits(bytes, &DecodeLimits::default())
}

/// Decodes a WSQ byte stream, refusing images larger than `limits` allows.
pub fn decode_with_limits(bytes: &[u8], limits: &DecodeLimits) -> Result<Decoded, WsqError> {
    let mut r = Reader {
        data: bytes,
        pos: 0,
    };
    if r.u16("no SOI marker").ok() != Some(SOI) {
        return Err(WsqError::NotWsq);
    }
    let mut st = State::default();
    let frame = loop {
        let marker = r.u16("no frame header")?;
        if marker == SOF {
            break frame_header(&mut r, limits)?;
        }
        if !st.table(marker, &mut r)? {
            return Err(WsqError::Malformed(
                "unexpected marker before the frame header",
            ));
        }
    };
    let (w, h) = (frame.width as usize, frame.height as usize);
    let trees = Trees::new(w, h);

    let mut coeffs: Vec<i32> = Vec::new();
    let mut expected: Option<usize> = None;
    loop {
        let marker = r.u16("no EOI marker")?;
        if marker == EOI {
            break;
        }
        if marker == DQT && expected.is_some() {
            return Err(WsqError::Unsupported(
                "quantization table redefined between blocks",
            ));
        }
        if st.table(marker, &mut r)? {
            continue;
        }
        if marker != SOB {
            return Err(WsqError::Malformed(
                "unexpected marker among the data blocks",
            ));
        }
        let mut s = r.segment("block header")?;
        let id = usize::from(s.u8("block header")?);
        s.done("block header longer than 3 bytes")?;
        let quant = st.quant.as_ref().ok_or(WsqError::Malformed(
            "data block before the quantization table",
        ))?;
        let total = *expected
            .get_or_insert_with(|| trees.coded_len(|b| quant.q[b] != 0.0, 0..CODED_SUBBANDS));
        let table = st
            .tables
            .get(id)
            .and_then(Option::as_ref)
            .ok_or(WsqError::Malformed(
                "data block names an undefined Huffman table",
            ))?;
        let decoder = huffman::Decoder::new(table)?;
        let raw = entropy_segment(&mut r)?;
        decode_block(&decoder, &raw, &mut coeffs, total)?;
    }
    let total = expected.ok_or(WsqError::Malformed("no data blocks"))?;
    if coeffs.len() != total {
        return Err(WsqError::Truncated(
            "fewer coefficients than the subbands hold",
        ));
    }
    let quant = st
        .quant
        .as_ref()
        .ok_or(WsqError::Malformed("no quantization table"))?;
    let filters = st
        .filters
        .as_ref()
        .ok_or(WsqError::Malformed("no transform table"))?;

    let mut plane = vec![0.0f64; w * h];
    let mut next = coeffs.iter();
    for b in 0..CODED_SUBBANDS {
        let (q, z) = (quant.q[b], quant.z[b]);
        if q == 0.0 {
            continue;
        }
        let rect = trees.bands[b];
        for y in rect.y..rect.y + rect.h {
            for (v, c) in plane[y * w + rect.x..y * w + rect.x + rect.w]
                .iter_mut()
                .zip(&mut next)
            {
                *v = quant::dequantize(*c, q, z, quant.centre);
            }
        }
    }
    wavelet::reconstruct(&mut plane, w, &trees, &Bank::new(filters));
    let pixels = plane
        .iter()
        .map(|&v| (v * frame.r_scale + frame.m_shift + 0.5).clamp(0.0, 255.0) as u8)
        .collect();
    let ppi = st.comments.iter().find_map(|c| nistcom_ppi(c));
    Ok(Decoded {
        width: frame.width,
        height: frame.height,
        ppi,
        pixels,
        comments: st.comments,
    })
}

fn frame_header(r: &mut Reader<'_>, limits: &DecodeLimits) -> Result<Frame, WsqError> {
    let mut s = r.segment("frame header")?;
    let _black = s.u8("frame header")?;
    let _white = s.u8("frame header")?;
    let height = u32::from(s.u16("frame header")?);
    let width = u32::from(s.u16("frame header")?);
    let m_shift = s.scaled16("frame header")?;
    let r_scale = s.scaled16("frame header")?;
    let _encoder = s.u8("frame header")?;
    let _software = s.u16("frame header")?;
    s.done("frame header longer than 17 bytes")?;
    if width < MIN_DIMENSION || height < MIN_DIMENSION {
        return Err(WsqError::Dimensions { width, height });
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(WsqError::TooLarge {
            width,
            height,
            max: limits.max_pixels,
        });
    }
    Ok(Frame {
        width,
        height,
        m_shift,
        r_scale,
    })
}

/// The bytes of an entropy-coded block with stuffing removed; leaves `r` on the next marker.
fn entropy_segment(r: &mut Reader<'_>) -> Result<Vec<u8>, WsqError> {
    let mut raw = Vec::new();
    loop {
        let b = *r
            .data
            .get(r.pos)
            .ok_or(WsqError::Truncated("data block has no end marker"))?;
        if b == 0xFF {
            let n = *r
                .data
                .get(r.pos + 1)
                .ok_or(WsqError::Truncated("data block has no end marker"))?;
            if n != 0 {
                return Ok(raw);
            }
            r.pos += 2;
        } else {
            r.pos += 1;
        }
        raw.push(b);
    }
}

fn decode_block(
    dec: &huffman::Decoder,
    raw: &[u8],
    coeffs: &mut Vec<i32>,
    total: usize,
) -> Result<(), WsqError> {
    let mut bits = BitReader::new(raw);
    let extra = |bits: &mut BitReader<'_>, n: u32| {
        bits.bits(n)
            .ok_or(WsqError::Truncated("escape value cut off"))
    };
    while coeffs.len() < total {
        let Some(sym) = dec.symbol(&mut bits)? else {
            break;
        };
        let value = match sym {
            1..=100 => None,
            huffman::SYM_RUN8 => None,
            huffman::SYM_RUN16 => None,
            huffman::SYM_POS8 => Some(extra(&mut bits, 8)? as i32),
            huffman::SYM_NEG8 => Some(-(extra(&mut bits, 8)? as i32)),
            huffman::SYM_POS16 => Some(extra(&mut bits, 16)? as i32),
            huffman::SYM_NEG16 => Some(-(extra(&mut bits, 16)? as i32)),
            107..=254 => Some(i32::from(sym) - huffman::COEFF_OFFSET),
            _ => {
                return Err(WsqError::Malformed(
                    "Huffman symbol outside the WSQ alphabet",
                ))
            }
        };
        match value {
            Some(v) => coeffs.push(v),
            None => {
                let run = match sym {
                    huffman::SYM_RUN8 => extra(&mut bits, 8)? as usize,
                    huffman::SYM_RUN16 => extra(&mut bits, 16)? as usize,
                    n => usize::from(n),
                };
                if run > total - coeffs.len() {
                    return Err(WsqError::Malformed("zero run past the end of the subbands"));
                }
                coeffs.resize(coeffs.len() + run, 0);
            }
        }
    }
    // What is left is the padding of the last byte (or data past the last coefficient).
    let _ = bits.remaining();
    Ok(())
}

fn nistcom_ppi(comment: &str) -> Option<u16> {
    if !comment.starts_with("NIST_COM") {
        return None;
    }
    comment
        .lines()
        .find_map(|l| l.strip_prefix("PPI "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_numbers_keep_four_to_five_significant_digits() {
        for v in [0.44, 127.35, 0.997_23, 12.5, 0.000_123_4, 65534.0] {
            let back = through_u16(v).unwrap();
            // A mantissa of at least 6553.5 keeps the relative error below 0.5 / 6553.5.
            assert!((back - v).abs() / v < 8e-5, "{v} -> {back}");
        }
        assert_eq!(scaled(0.0, 65535.0).unwrap(), (0, 0));
        assert!(scaled(70000.0, 65535.0).is_err());
    }
}
